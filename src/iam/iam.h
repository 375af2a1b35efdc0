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
