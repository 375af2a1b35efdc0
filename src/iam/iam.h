/* iam: the platform's identity service — accounts, users, service IDs, API keys, OAuth
 * clients, RS256 signing keys and tokens, access policies and decisions. Every platform API
 * authenticates and authorizes through iam_require(), the one check of the platform. */
#ifndef OSBILL_IAM_H
#define OSBILL_IAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "http/http.h"
#include "store/store.h"

typedef struct iam iam;

typedef struct {
    const char *data_dir; /* holds secret.key */
    const char *issuer;   /* the platform's base URL + "/identity" */
    int token_ttl_s;      /* access token lifetime, at most 3600; 0 = 3600 */
} iam_config;

/* Opens the identity service on an open, migrated store. Creates the data directory's secret
 * and the first signing keys when missing. */
int iam_open(store *db, const iam_config *cfg, iam **out) WARN_UNUSED;
void iam_close(iam *m);
const char *iam_issuer(const iam *m);

/* Creates the operator account, its first user (an Administrator of the account) and an API
 * key for that user. *result: {"account_id","user","iam_id","api_key"}; the key is shown
 * only here. Fails with OSB_E_CONFLICT when an operator account exists. */
int iam_bootstrap(iam *m, const char *email, const char *password, json_t **result) WARN_UNUSED;

/* Who a request is, from its bearer token. */
typedef struct {
    char iam_id[128];
    char account_id[64];
    char client_id[128];
    char grant_type[64];
    char jti[64];
    bool operator; /* the token's account is the platform operator's */
    int64_t exp;
} iam_principal;

/* What an action is about. NULL fields match nothing specific (the account as a whole). */
typedef struct {
    const char *account_id;
    const char *service_name;
    const char *resource_type;
    const char *resource; /* an instance id or CRN, a service ID, ... */
} iam_resource;

/* Authenticates the request's bearer token (401 on failure, with the reason in the body).
 * Returns true and fills *p on success. */
bool iam_authenticate(iam *m, http_req *req, iam_principal *p);
/* The access decision: true when a policy of the resource's account grants the principal a
 * role that allows the action ("<service>.<resource>.<verb>", e.g. "iam.apikey.create"). */
bool iam_decide(iam *m, const iam_principal *p, const char *action, const iam_resource *r);
/* Authenticate + decide, replying 401 or 403 when refused. The single check of every API. */
bool iam_require(iam *m, http_req *req, const char *action, const iam_resource *r,
                 iam_principal *p);

/* ---- records, for the API layer and other modules, inside the caller's write transaction */
/* An API key for iam_id; key receives the secret (shown once, stored as a keyed hash). */
int iam_create_apikey(iam *m, store_tx *tx, const char *iam_id, const char *account_id,
                      const char *name, const char *description, char id[64], char *key,
                      size_t keysz) WARN_UNUSED;
/* A policy granting roles ("Editor,Manager") to subject, optionally narrowed. */
int iam_add_policy(iam *m, store_tx *tx, const char *account_id, const char *subject,
                   const char *roles, const char *service_name, const char *resource_type,
                   const char *resource, char id[64]) WARN_UNUSED;
/* A service ID of the account. */
int iam_create_service_id(iam *m, store_tx *tx, const char *account_id, const char *name,
                          const char *description, char id[64], char iam_id[64]) WARN_UNUSED;
/* An OAuth client of the account; confidential when secret is not NULL (it receives the
 * secret, shown once). redirect_uris: a JSON array (NULL for none); service_name: the
 * offering a dashboard client belongs to, or NULL. */
int iam_create_client(iam *m, store_tx *tx, const char *account_id, const char *name,
                      const char *service_name, const json_t *redirect_uris, char client_id[64],
                      char *secret, size_t secretsz) WARN_UNUSED;
/* Removes a service ID with its API keys and policies, and an OAuth client (either may be
 * NULL): what an offering's IAM integration made, when the offering goes away. */
/* The web console's own OAuth client: public (PKCE), first-party (no consent page), its one
 * redirect URI the console's address; created or brought up to date. */
#define IAM_CONSOLE_CLIENT "osbill-console"
int iam_console_client(iam *m, const char *redirect_uri) WARN_UNUSED;
int iam_delete_service_identity(iam *m, store_tx *tx, const char *service_iam_id,
                                const char *client_id) WARN_UNUSED;
/* The client_id of the tokens the platform sends to brokers (spec/iam.md); the platform's own
 * APIs refuse them. */
#define IAM_BROKER_CLIENT "resource-controller"

/* Issues the token the platform sends to a broker (the controller's calls, validation):
 * sub = iam_id = the broker's CRN, client_id = IAM_BROKER_CLIENT, the operator's account.
 * *token is malloc'd (the caller's), *exp its expiry in seconds since the epoch. OSB_E_NOMEM,
 * OSB_E_INVAL (signing failed). */
int iam_issue_broker_token(iam *m, const char *broker_id, char **token, int64_t *exp) WARN_UNUSED;

/* Derives a 32-byte key for another module's own encryption, from the data directory's
 * secret and a purpose string. */
void iam_derive_key(const iam *m, const char *purpose, unsigned char out[32]);

/* Keyed hash of a secret (API key, client secret, code, refresh token); out is 32 bytes. */
void iam_hash_secret(const iam *m, const char *secret, unsigned char out[32]);

/* Rotates the signing keys: the next key becomes active, a new next key is made, the old
 * active key stays published until the tokens it signed have expired. */
int iam_rotate_keys(iam *m) WARN_UNUSED;

/* Deletes what has expired: authorization codes, sessions, refresh tokens, and revocations
 * of tokens past their expiry. Safe to call at any time; the server calls it periodically. */
int iam_housekeeping(iam *m) WARN_UNUSED;

/* Registers /identity/... and /v1/{accounts,users,serviceids,apikeys,policies,clients}
 * and /v2/authz. */
void iam_routes(iam *m, http_router *r);

#endif
