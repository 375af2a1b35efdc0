/* iam internals shared by its files: the service state and the helpers between them. */
#ifndef OSBILL_IAM_INT_H
#define OSBILL_IAM_INT_H

#include <pthread.h>

#include "iam/iam.h"
#include "iam/jose.h"

#define IAM_MAX_KEYS 16

struct iam {
    store *db;
    char *issuer;
    int ttl_s;
    unsigned char hash_key[32]; /* keyed hashes of secrets */
    unsigned char enc_key[32];  /* encryption of private signing keys */
    unsigned char refresh_key[32]; /* sealing of refresh tokens */
    char operator_account[64];

    pthread_rwlock_t keys_lock;
    jose_key *active;                /* signs */
    jose_key *published[IAM_MAX_KEYS]; /* verify: active, next, retired until expiry */
    int npublished;
    int64_t keys_loaded_ms; /* atomic: when they were last read from the store */
    char *jwks;                      /* serialised {"keys":[...]} */

    /* Tokens already verified, by SHA-256 of the token, until they expire: a client sends the
     * same token for up to an hour, and an RSA verification is most of a request's cost.
     * Revocation is still looked up on every request. */
    pthread_mutex_t verified_lock;
    struct iam_verified {
        unsigned char digest[32];
        int64_t exp; /* seconds since the epoch; 0: empty */
        iam_principal p;
    } *verified; /* IAM_VERIFIED_SLOTS, direct-mapped */
};

#define IAM_VERIFIED_SLOTS 1024

/* Reloads the signing keys from the store into memory (after init or rotation). */
int iam_keys_load(iam *m) WARN_UNUSED;
/* On a shared store another node may rotate the keys: they are read again every 10 s when
 * used, and within a second of a token signed by a key this node does not know (missed). */
void iam_keys_fresh(iam *m, bool missed);
/* Creates an active and a next key when the store has none. */
int iam_keys_ensure(iam *m) WARN_UNUSED;
/* A referenced public key by kid, or NULL. */
jose_key *iam_key_lookup(void *m, const char *kid);

/* Issues an access token for a principal; *token malloc'd. */
int iam_issue_access_token(iam *m, const char *iam_id, const char *account_id,
                           const char *client_id, const char *grant_type, const char *scope,
                           char **token, int64_t *exp) WARN_UNUSED;

/* New random secrets in base64url (43 characters for 32 bytes), with a readable prefix. */
void iam_new_secret(const char *prefix, char *out, size_t outsz);

void iam_token_routes(iam *m, http_router *r);
void iam_authorize_routes(iam *m, http_router *r);
void iam_api_routes(iam *m, http_router *r);

#endif
