/* iam token: the OAuth 2.0 / OIDC endpoints under /identity — token (apikey, authorization
 * code with PKCE, refresh token with rotation and reuse detection, client credentials),
 * keys (JWKS), discovery, introspection (RFC 7662) and revocation (RFC 7009). */
#include "iam/iam_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APIKEY_GRANT "urn:ibm:params:oauth:grant-type:apikey"
#define REFRESH_TTL_MS (30LL * 24 * 3600 * 1000)
#define DEFAULT_CLIENT "osbill"

/* ---------------------------------------------------------------- issuing */

int iam_issue_access_token(iam *m, const char *iam_id, const char *account_id,
                           const char *client_id, const char *grant_type, const char *scope,
                           char **token, int64_t *exp)
{
    char jti[37];
    uuid_v4(jti);
    int64_t now = time_now_ms() / 1000;
    *exp = now + m->ttl_s;
    json_t *claims = json_pack("{s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:s, s:I, s:I, s:s}", "iss",
                               m->issuer, "sub", iam_id, "iam_id", iam_id, "account", "bss",
                               account_id, "client_id", client_id, "grant_type", grant_type,
                               "scope", scope, "iat", (json_int_t)now, "exp", (json_int_t)*exp,
                               "jti", jti);
    if (!claims)
        return OSB_E_NOMEM;
    if (str_has_prefix(iam_id, "iam-ServiceId-"))
        json_object_set_new(claims, "sub_type", json_string("ServiceId"));
    iam_keys_fresh(m, false);
    pthread_rwlock_rdlock(&m->keys_lock);
    jose_key *k = jose_key_ref(m->active);
    pthread_rwlock_unlock(&m->keys_lock);
    int rc = jose_sign(k, claims, token) ? OSB_E_INVAL : 0;
    jose_key_free(k);
    json_decref(claims);
    return rc;
}

/* Refresh tokens are sealed: the claims travel inside the token, encrypted and authenticated
 * (XChaCha20-Poly1305 with a key derived from the data directory's secret), so issuing one
 * writes nothing. Redeeming one records its jti, and a second redemption of the same jti is
 * a reuse that revokes the whole family; revocation records the family. A token that does
 * not open under the key is simply invalid. */
#define REFRESH_VERSION 1
#define REFRESH_AD "osbill refresh token v1"
#define REFRESH_MAX 2048 /* characters of a sealed token: anything longer is not ours */
#define REFRESH_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define REFRESH_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

typedef struct {
    char jti[37], family[37];
    char iam_id[128], account[64], client[128], scope[256];
    int64_t exp_ms;
} refresh_claims;

/* New claims for a refresh token of family (a new family when NULL). */
static void refresh_new(refresh_claims *t, const char *family, const char *iam_id,
                        const char *account_id, const char *client_id, const char *scope)
{
    memset(t, 0, sizeof *t);
    uuid_v4(t->jti);
    if (family)
        snprintf(t->family, sizeof t->family, "%s", family);
    else
        uuid_v4(t->family);
    snprintf(t->iam_id, sizeof t->iam_id, "%s", iam_id);
    snprintf(t->account, sizeof t->account, "%s", account_id);
    snprintf(t->client, sizeof t->client, "%s", client_id);
    snprintf(t->scope, sizeof t->scope, "%s", scope);
    t->exp_ms = time_now_ms() + REFRESH_TTL_MS;
}

/* The sealed token (malloc'd), or NULL. */
static char *refresh_seal(const iam *m, const refresh_claims *t)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "jti", t->jti, "fam",
                          t->family, "sub", t->iam_id, "acct", t->account, "cid", t->client,
                          "scope", t->scope, "exp", (json_int_t)t->exp_ms);
    char *plain = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!plain)
        return NULL;
    size_t pn = strlen(plain), rn = 1 + REFRESH_NONCE + pn + REFRESH_TAG;
    size_t on = b64_encoded_len(rn) + 1;
    unsigned char *raw = malloc(rn);
    char *out = raw && on <= REFRESH_MAX + 1 ? malloc(on) : NULL;
    if (out) {
        raw[0] = REFRESH_VERSION;
        randombytes_buf(raw + 1, REFRESH_NONCE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(
            raw + 1 + REFRESH_NONCE, NULL, (const unsigned char *)plain, pn,
            (const unsigned char *)REFRESH_AD, strlen(REFRESH_AD), NULL, raw + 1, m->refresh_key);
        if (b64url_encode(raw, rn, out, on) < 0) {
            free(out);
            out = NULL;
        }
    }
    secure_wipe(plain, pn);
    free(plain);
    free(raw);
    return out;
}

static bool copy_claim(json_t *j, const char *name, char *dst, size_t dstsz)
{
    const char *v = json_string_value(json_object_get(j, name));
    return v && strlen(v) < dstsz && snprintf(dst, dstsz, "%s", v) >= 0;
}

/* Opens a sealed token: false for anything that was not sealed by this platform. */
static bool refresh_open(const iam *m, const char *token, refresh_claims *t)
{
    size_t n = strlen(token);
    unsigned char raw[REFRESH_MAX], plain[REFRESH_MAX];
    unsigned long long pn = 0;
    memset(t, 0, sizeof *t);
    if (n == 0 || n > REFRESH_MAX)
        return false;
    int rn = b64url_decode(token, n, raw, sizeof raw);
    if (rn < (int)(1 + REFRESH_NONCE + REFRESH_TAG) || raw[0] != REFRESH_VERSION ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain, &pn, NULL, raw + 1 + REFRESH_NONCE, (unsigned long long)rn - 1 - REFRESH_NONCE,
            (const unsigned char *)REFRESH_AD, strlen(REFRESH_AD), raw + 1, m->refresh_key) != 0)
        return false;
    json_t *j = json_loadb((const char *)plain, (size_t)pn, JSON_REJECT_DUPLICATES, NULL);
    secure_wipe(plain, sizeof plain);
    json_t *exp = json_object_get(j, "exp");
    bool ok = json_is_object(j) && copy_claim(j, "jti", t->jti, sizeof t->jti) &&
              copy_claim(j, "fam", t->family, sizeof t->family) &&
              copy_claim(j, "sub", t->iam_id, sizeof t->iam_id) &&
              copy_claim(j, "acct", t->account, sizeof t->account) &&
              copy_claim(j, "cid", t->client, sizeof t->client) &&
              copy_claim(j, "scope", t->scope, sizeof t->scope) && json_is_integer(exp);
    if (ok)
        t->exp_ms = json_integer_value(exp);
    json_decref(j);
    return ok;
}

/* ---------------------------------------------------------------- answers */

static void no_store(http_req *req)
{
    http_add_header(req, "Cache-Control", "no-store");
    http_add_header(req, "Pragma", "no-cache");
}

static void oauth_error(http_req *req, int status, const char *error, const char *description)
{
    json_t *j = json_pack("{s:s, s:s}", "error", error, "error_description", description);
    no_store(req);
    if (status == 401)
        http_add_header(req, "WWW-Authenticate", "Basic realm=\"osbill\"");
    http_reply_json(req, status, j);
    json_decref(j);
}

/* The success body of the token endpoint, or NULL when signing fails. */
static json_t *token_body(iam *m, const char *iam_id, const char *account_id,
                          const char *client_id, const char *grant, const char *scope,
                          const char *refresh)
{
    char *access = NULL;
    int64_t exp;
    if (iam_issue_access_token(m, iam_id, account_id, client_id, grant, scope, &access, &exp))
        return NULL;
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:s}", "access_token", access, "token_type",
                          "Bearer", "expires_in", (json_int_t)m->ttl_s, "expiration",
                          (json_int_t)exp, "scope", scope);
    if (j && refresh && json_object_set_new(j, "refresh_token", json_string(refresh))) {
        json_decref(j);
        j = NULL;
    }
    secure_wipe(access, strlen(access));
    free(access);
    return j;
}

static void token_reply(http_req *req, json_t *body)
{
    if (!body) {
        oauth_error(req, 500, "server_error", "The token could not be issued.");
        return;
    }
    no_store(req);
    http_reply_json(req, 200, body);
}

static void token_answer(iam *m, http_req *req, const char *iam_id, const char *account_id,
                         const char *client_id, const char *grant, const char *scope,
                         const char *refresh)
{
    json_t *j = token_body(m, iam_id, account_id, client_id, grant, scope, refresh);
    token_reply(req, j);
    json_decref(j);
}

/* An access token with the first refresh token of a new family. */
static void answer_with_refresh(iam *m, http_req *req, const char *iam_id,
                                const char *account_id, const char *client_id,
                                const char *grant, const char *scope)
{
    refresh_claims t;
    refresh_new(&t, NULL, iam_id, account_id, client_id, scope);
    char *refresh = refresh_seal(m, &t);
    if (!refresh) {
        oauth_error(req, 500, "server_error", "The token could not be issued.");
        return;
    }
    token_answer(m, req, iam_id, account_id, client_id, grant, scope, refresh);
    secure_wipe(refresh, strlen(refresh));
    free(refresh);
}

/* A form parameter: NULL when absent; replies invalid_request when repeated or malformed. */
static bool form_param(http_req *req, const char *name, const char **out, bool required)
{
    int rc = http_form_value(req, name, out);
    if (rc == OSB_E_NOTFOUND) {
        *out = NULL;
        if (!required)
            return true;
        char msg[128];
        snprintf(msg, sizeof msg, "The %s parameter is required.", name);
        oauth_error(req, 400, "invalid_request", msg);
        return false;
    }
    if (rc) {
        char msg[128];
        snprintf(msg, sizeof msg, "The %s parameter is %s.", name,
                 rc == OSB_E_CONFLICT ? "repeated" : "malformed");
        oauth_error(req, 400, "invalid_request", msg);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- clients */

typedef struct {
    char client_id[128];
    char account_id[64];
    bool confidential;
    char *redirect_uris; /* JSON text, malloc'd */
} client_row;

static int load_client(iam *m, const char *client_id, client_row *c, unsigned char hash[32],
                       bool *has_secret)
{
    store_tx *tx;
    store_stmt *q;
    memset(c, 0, sizeof *c);
    int rc = store_begin(m->db, false, &tx);
    if (rc)
        return rc;
    if ((rc = store_query(tx, "SELECT account_id, secret_hash, redirect_uris FROM oauth_clients"
                              " WHERE client_id = ?", &q, "s", client_id))) {
        store_rollback(tx);
        return rc;
    }
    rc = OSB_E_NOTFOUND;
    if (store_step(q) == STORE_ROW) {
        size_t n;
        const void *h = store_col_blob(q, 1, &n);
        snprintf(c->client_id, sizeof c->client_id, "%s", client_id);
        snprintf(c->account_id, sizeof c->account_id, "%s", store_col_text(q, 0));
        *has_secret = h && n == 32;
        if (*has_secret)
            memcpy(hash, h, 32);
        c->confidential = *has_secret;
        c->redirect_uris = strdup(store_col_text(q, 2));
        rc = c->redirect_uris ? 0 : OSB_E_NOMEM;
    }
    store_done(q);
    store_rollback(tx);
    return rc;
}

/* Authenticates the calling client: Basic credentials for confidential clients, or a bare
 * client_id for public ones when allow_public. Replies invalid_client on failure. */
static bool authenticate_client(iam *m, http_req *req, bool allow_public, client_row *c)
{
    const char *id = NULL, *secret = NULL, *form_id = NULL;
    bool basic = http_basic_credentials(req, &id, &secret);
    if (!form_param(req, "client_id", &form_id, false))
        return false;
    if (!basic)
        id = form_id;
    else if (form_id && strcmp(form_id, id) != 0) {
        oauth_error(req, 400, "invalid_request", "client_id differs from the authenticated client.");
        return false;
    }
    unsigned char stored[32], got[32];
    bool has_secret = false;
    if (id && !basic && allow_public && strcmp(id, DEFAULT_CLIENT) == 0) {
        /* The platform's own public client (the CLI): no registration, no secret. */
        memset(c, 0, sizeof *c);
        snprintf(c->client_id, sizeof c->client_id, "%s", DEFAULT_CLIENT);
        return true;
    }
    if (!id || strlen(id) >= sizeof c->client_id ||
        load_client(m, id, c, stored, &has_secret) != 0) {
        oauth_error(req, 401, "invalid_client", "Client authentication failed.");
        return false;
    }
    bool ok;
    if (has_secret) {
        ok = basic && secret;
        if (ok) {
            iam_hash_secret(m, secret, got);
            ok = ct_equal(got, stored, 32);
        }
    } else {
        ok = allow_public && !basic;
    }
    if (!ok) {
        free(c->redirect_uris);
        c->redirect_uris = NULL;
        oauth_error(req, 401, "invalid_client", "Client authentication failed.");
    }
    return ok;
}

/* ---------------------------------------------------------------- grants */

static void grant_apikey(iam *m, http_req *req)
{
    const char *apikey;
    if (!form_param(req, "apikey", &apikey, true))
        return;
    unsigned char h[32];
    iam_hash_secret(m, apikey, h);
    store_tx *tx;
    store_stmt *q;
    char iam_id[128] = "", account[64] = "";
    bool locked = false, found = false;
    if (store_begin(m->db, false, &tx)) {
        oauth_error(req, 500, "server_error", "The identity store is unavailable.");
        return;
    }
    if (!store_query(tx, "SELECT k.iam_id, k.account_id, k.locked, a.state FROM api_keys k"
                         " JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = ?",
                     &q, "b", (const void *)h, sizeof h)) {
        if (store_step(q) == STORE_ROW) {
            found = strcmp(store_col_text(q, 3), "active") == 0;
            snprintf(iam_id, sizeof iam_id, "%s", store_col_text(q, 0));
            snprintf(account, sizeof account, "%s", store_col_text(q, 1));
            locked = store_col_int(q, 2) != 0;
        }
        store_done(q);
    }
    store_rollback(tx);
    /* One answer for unknown, locked and suspended: nothing to probe keys with. */
    if (!found || locked) {
        oauth_error(req, 400, "invalid_grant", "The API key is not valid.");
        return;
    }
    /* Users get a refresh token too (the CLI's session); service IDs log in again. */
    if (str_has_prefix(iam_id, "osbill-"))
        answer_with_refresh(m, req, iam_id, account, DEFAULT_CLIENT, APIKEY_GRANT, "osbill");
    else
        token_answer(m, req, iam_id, account, DEFAULT_CLIENT, APIKEY_GRANT, "osbill", NULL);
}

static void grant_refresh(iam *m, http_req *req)
{
    const char *token, *cid;
    client_row c;
    if (!form_param(req, "refresh_token", &token, true) ||
        !form_param(req, "client_id", &cid, false))
        return;
    /* A refresh token only works for the client it was issued to; the CLI's own client is
     * public and may be left implicit. */
    if (cid || http_header(req, "Authorization")) {
        if (!authenticate_client(m, req, true, &c))
            return;
        free(c.redirect_uris);
    } else {
        memset(&c, 0, sizeof c);
        snprintf(c.client_id, sizeof c.client_id, "%s", DEFAULT_CLIENT);
    }
    refresh_claims t;
    /* Not ours, expired, or another client's: the same answer for each. */
    if (!refresh_open(m, token, &t) || t.exp_ms <= time_now_ms() ||
        strcmp(t.client, c.client_id) != 0) {
        secure_wipe(&t, sizeof t);
        oauth_error(req, 400, "invalid_grant", "The refresh token is not valid.");
        return;
    }
    store_tx *tx;
    store_stmt *q;
    int state = 0; /* 0 usable, 1 reused, 2 revoked family or principal gone */
    if (store_begin(m->db, true, &tx)) {
        oauth_error(req, 500, "server_error", "The identity store is unavailable.");
        return;
    }
    int rc = store_query(tx, "SELECT 1 FROM refresh_revoked WHERE family = ?", &q, "s", t.family);
    if (!rc) {
        if (store_step(q) == STORE_ROW)
            state = 2;
        store_done(q);
    }
    if (!rc && state == 0 &&
        !(rc = store_query(tx, "SELECT 1 FROM refresh_used WHERE jti = ?", &q, "s", t.jti))) {
        if (store_step(q) == STORE_ROW)
            state = 1;
        store_done(q);
    }
    /* The user must still be an active member of an active account. */
    if (!rc && state == 0 &&
        !(rc = store_query(tx, "SELECT 1 FROM users u JOIN account_users m ON m.iam_id ="
                               " u.iam_id JOIN accounts a ON a.id = m.account_id WHERE"
                               " u.iam_id = ? AND m.account_id = ? AND u.state = 'active'"
                               " AND a.state = 'active'", &q, "ss", t.iam_id, t.account))) {
        if (store_step(q) != STORE_ROW)
            state = 2;
        store_done(q);
    }
    char *next = NULL;
    if (!rc && state == 1) {
        /* A used token presented again: someone holds a copy. End the whole family; no
         * token of it outlives now + the refresh lifetime. */
        rc = store_exec(tx, "INSERT INTO refresh_revoked (family, expires_ms)"
                            " VALUES (?, ?) ON CONFLICT DO NOTHING", "si", t.family, time_now_ms() + REFRESH_TTL_MS);
        log_warn("iam: refresh token reuse for %s; its token family is revoked", t.iam_id);
    } else if (!rc && state == 0) {
        rc = store_exec(tx, "INSERT INTO refresh_used (jti, family, expires_ms) VALUES (?, ?, ?)",
                        "ssi", t.jti, t.family, t.exp_ms);
        refresh_claims n;
        refresh_new(&n, t.family, t.iam_id, t.account, t.client, t.scope);
        if (!rc && !(next = refresh_seal(m, &n)))
            rc = OSB_E_NOMEM;
        secure_wipe(&n, sizeof n);
    }
    if (rc || store_commit(tx)) {
        if (rc)
            store_rollback(tx);
        free(next);
        oauth_error(req, 500, "server_error", "The identity store is unavailable.");
        return;
    }
    if (state != 0) {
        oauth_error(req, 400, "invalid_grant", "The refresh token is not valid.");
        return;
    }
    token_answer(m, req, t.iam_id, t.account, t.client, "refresh_token", t.scope, next);
    secure_wipe(next, strlen(next));
    free(next);
    secure_wipe(&t, sizeof t);
}

static void grant_client_credentials(iam *m, http_req *req)
{
    client_row c;
    /* Public clients fail authentication here: they have no secret to prove. */
    if (!authenticate_client(m, req, false, &c))
        return;
    free(c.redirect_uris);
    token_answer(m, req, c.client_id, c.account_id, c.client_id, "client_credentials", "osbill",
                 NULL);
}

static bool pkce_ok(const char *challenge, const char *verifier)
{
    /* RFC 7636: 43 to 128 unreserved characters; S256 = base64url(SHA-256(verifier)). */
    size_t n = strlen(verifier);
    if (n < 43 || n > 128)
        return false;
    for (const char *c = verifier; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.' || *c == '_' || *c == '~'))
            return false;
    unsigned char d[32];
    char enc[64];
    sha256(verifier, n, d);
    if (b64url_encode(d, sizeof d, enc, sizeof enc) < 0)
        return false;
    return strlen(enc) == strlen(challenge) && ct_equal(enc, challenge, strlen(enc));
}

static void grant_authorization_code(iam *m, http_req *req)
{
    const char *code, *redirect_uri, *verifier;
    client_row c;
    if (!form_param(req, "code", &code, true) ||
        !form_param(req, "redirect_uri", &redirect_uri, true) ||
        !form_param(req, "code_verifier", &verifier, false) ||
        !authenticate_client(m, req, true, &c))
        return;
    free(c.redirect_uris);
    unsigned char h[32];
    iam_hash_secret(m, code, h);
    store_tx *tx;
    store_stmt *q;
    char client[128] = "", iam_id[128] = "", account[64] = "", stored_uri[2048] = "",
         scope[256] = "", challenge[256] = "";
    int state = -1; /* -1 unknown, 0 usable, 1 used, 2 expired */
    if (store_begin(m->db, true, &tx)) {
        oauth_error(req, 500, "server_error", "The identity store is unavailable.");
        return;
    }
    int rc = store_query(tx, "SELECT client_id, iam_id, account_id, redirect_uri, scope,"
                             " code_challenge, expires_ms, used FROM auth_codes"
                             " WHERE code_hash = ?", &q, "b", (const void *)h, sizeof h);
    if (!rc) {
        if (store_step(q) == STORE_ROW) {
            snprintf(client, sizeof client, "%s", store_col_text(q, 0));
            snprintf(iam_id, sizeof iam_id, "%s", store_col_text(q, 1));
            snprintf(account, sizeof account, "%s", store_col_text(q, 2));
            snprintf(stored_uri, sizeof stored_uri, "%s", store_col_text(q, 3));
            snprintf(scope, sizeof scope, "%s", store_col_text(q, 4));
            const char *ch = store_col_text(q, 5);
            snprintf(challenge, sizeof challenge, "%s", ch ? ch : "");
            state = store_col_int(q, 7) ? 1 : store_col_int(q, 6) <= time_now_ms() ? 2 : 0;
        }
        store_done(q);
    }
    /* Single use, whatever happens next: a second try finds it used. */
    if (!rc && state >= 0)
        rc = store_exec(tx, "UPDATE auth_codes SET used = 1 WHERE code_hash = ?", "b",
                        (const void *)h, sizeof h);
    if (rc || store_commit(tx)) {
        if (rc)
            store_rollback(tx);
        oauth_error(req, 500, "server_error", "The identity store is unavailable.");
        return;
    }
    if (state != 0) {
        if (state == 1)
            log_warn("iam: authorization code reused by client %s", c.client_id);
        oauth_error(req, 400, "invalid_grant", "The authorization code is not valid.");
        return;
    }
    if (strcmp(client, c.client_id) != 0 || strcmp(stored_uri, redirect_uri) != 0) {
        oauth_error(req, 400, "invalid_grant",
                    "The authorization code was issued to another client or redirect URI.");
        return;
    }
    if (challenge[0] ? !verifier || !pkce_ok(challenge, verifier) : !c.confidential) {
        oauth_error(req, 400, "invalid_grant", "The PKCE code_verifier does not match.");
        return;
    }
    answer_with_refresh(m, req, iam_id, account, client, "authorization_code", scope);
}

static void token_endpoint(http_req *req, void *ud)
{
    iam *m = ud;
    const char *grant;
    if (!http_is_form(req)) {
        oauth_error(req, 400, "invalid_request",
                    "The body must be application/x-www-form-urlencoded.");
        return;
    }
    if (!form_param(req, "grant_type", &grant, true))
        return;
    if (strcmp(grant, APIKEY_GRANT) == 0)
        grant_apikey(m, req);
    else if (strcmp(grant, "refresh_token") == 0)
        grant_refresh(m, req);
    else if (strcmp(grant, "client_credentials") == 0)
        grant_client_credentials(m, req);
    else if (strcmp(grant, "authorization_code") == 0)
        grant_authorization_code(m, req);
    else
        oauth_error(req, 400, "unsupported_grant_type", "This grant type is not supported.");
}

/* ---------------------------------------------------------------- keys, discovery */

static void keys_endpoint(http_req *req, void *ud)
{
    iam *m = ud;
    iam_keys_fresh(m, false);
    pthread_rwlock_rdlock(&m->keys_lock);
    http_reply(req, 200, "application/json", m->jwks, strlen(m->jwks));
    pthread_rwlock_unlock(&m->keys_lock);
    http_add_header(req, "Cache-Control", "public, max-age=60");
}

/* GET /identity/revocations: the access tokens revoked before their expiry, by jti, for
 * resource servers that verify tokens offline (libosb polls it). Public, as the JWKS: a jti
 * grants nothing. Only unexpired entries are listed, so the list stays short. */
static void revocations_endpoint(http_req *req, void *ud)
{
    iam *m = ud;
    store_tx *tx;
    store_stmt *q;
    json_t *list = json_array();
    int rc = store_begin(m->db, false, &tx);
    if (!rc) {
        rc = store_query(tx, "SELECT jti, expires_ms FROM revoked_tokens WHERE expires_ms > ?"
                             " ORDER BY jti", &q, "i", time_now_ms());
        if (!rc) {
            while (store_step(q) == STORE_ROW)
                json_array_append_new(list, json_pack("{s:s, s:I}", "jti", store_col_text(q, 0),
                                                      "exp", (json_int_t)(store_col_int(q, 1) / 1000)));
            store_done(q);
        }
        store_rollback(tx);
    }
    if (rc) {
        json_decref(list);
        http_reply_error(req, 503, "unavailable", "The identity store is unavailable.", NULL);
        return;
    }
    json_t *j = json_pack("{s:o}", "revocations", list);
    http_add_header(req, "Cache-Control", "no-cache");
    http_reply_json(req, 200, j);
    json_decref(j);
}

static void discovery(http_req *req, void *ud)
{
    iam *m = ud;
    char url[6][512];
    const char *paths[] = {"/authorize", "/token", "/keys", "/introspect", "/revoke", "/revocations"};
    for (int i = 0; i < 6; i++)
        snprintf(url[i], sizeof url[i], "%s%s", m->issuer, paths[i]);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:[s,s,s,s], s:[s], s:[s,s], s:[s], s:[s], s:[s,s]}",
        "issuer", m->issuer, "authorization_endpoint", url[0], "token_endpoint", url[1],
        "jwks_uri", url[2], "introspection_endpoint", url[3], "revocation_endpoint", url[4],
        "response_types_supported", "code", "grant_types_supported", "authorization_code",
        "refresh_token", "client_credentials", APIKEY_GRANT, "code_challenge_methods_supported",
        "S256", "token_endpoint_auth_methods_supported", "client_secret_basic", "none",
        "id_token_signing_alg_values_supported", "RS256", "subject_types_supported", "public",
        "scopes_supported", "openid", "osbill");
    json_object_set_new(j, "revocation_list_uri", json_string(url[5]));
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- introspect, revoke */

static void introspect(http_req *req, void *ud)
{
    iam *m = ud;
    client_row c;
    const char *token;
    if (!http_is_form(req)) {
        oauth_error(req, 400, "invalid_request",
                    "The body must be application/x-www-form-urlencoded.");
        return;
    }
    if (!authenticate_client(m, req, false, &c))
        return;
    free(c.redirect_uris);
    if (!form_param(req, "token", &token, true))
        return;
    json_t *claims = NULL;
    jose_verify_opts o = {.issuer = m->issuer, .leeway_s = 0};
    json_t *j;
    if (jose_verify(token, iam_key_lookup, m, &o, &claims, NULL, 0) == JOSE_OK) {
        const char *jti = json_string_value(json_object_get(claims, "jti"));
        store_tx *tx;
        store_stmt *q;
        bool is_revoked = true;
        if (jti && !store_begin(m->db, false, &tx)) {
            if (!store_query(tx, "SELECT 1 FROM revoked_tokens WHERE jti = ?", &q, "s", jti)) {
                is_revoked = store_step(q) == STORE_ROW;
                store_done(q);
            }
            store_rollback(tx);
        }
        if (is_revoked) {
            j = json_pack("{s:b}", "active", 0);
        } else {
            j = json_deep_copy(claims);
            json_object_set_new(j, "active", json_true());
            json_object_set_new(j, "token_type", json_string("Bearer"));
        }
        json_decref(claims);
    } else {
        j = json_pack("{s:b}", "active", 0);
    }
    no_store(req);
    http_reply_json(req, 200, j);
    json_decref(j);
}

static void revoke(http_req *req, void *ud)
{
    iam *m = ud;
    client_row c;
    const char *token, *hint;
    if (!http_is_form(req)) {
        oauth_error(req, 400, "invalid_request",
                    "The body must be application/x-www-form-urlencoded.");
        return;
    }
    if (!authenticate_client(m, req, true, &c))
        return;
    free(c.redirect_uris);
    if (!form_param(req, "token", &token, true) ||
        !form_param(req, "token_type_hint", &hint, false))
        return;
    if (hint && strcmp(hint, "access_token") && strcmp(hint, "refresh_token")) {
        oauth_error(req, 400, "unsupported_token_type", "token_type_hint is not known.");
        return;
    }
    store_tx *tx;
    if (store_begin(m->db, true, &tx)) {
        oauth_error(req, 503, "temporarily_unavailable", "The identity store is unavailable.");
        return;
    }
    int rc = 0;
    json_t *claims = NULL;
    jose_verify_opts o = {.issuer = m->issuer, .leeway_s = 60};
    if (jose_verify(token, iam_key_lookup, m, &o, &claims, NULL, 0) == JOSE_OK) {
        /* Only the client a token was issued to may revoke it (RFC 7009 2.1). */
        const char *cid = json_string_value(json_object_get(claims, "client_id"));
        const char *jti = json_string_value(json_object_get(claims, "jti"));
        if (jti && str_eq(cid, c.client_id))
            rc = store_exec(tx, "INSERT INTO revoked_tokens (jti, expires_ms)"
                                " VALUES (?, ?) ON CONFLICT DO NOTHING", "si", jti,
                            (int64_t)json_integer_value(json_object_get(claims, "exp")) * 1000);
        json_decref(claims);
    } else {
        refresh_claims t;
        if (refresh_open(m, token, &t) && str_eq(t.client, c.client_id))
            rc = store_exec(tx, "INSERT INTO refresh_revoked (family, expires_ms)"
                                " VALUES (?, ?) ON CONFLICT DO NOTHING", "si", t.family,
                            time_now_ms() + REFRESH_TTL_MS);
        secure_wipe(&t, sizeof t);
    }
    if (rc || store_commit(tx)) {
        if (rc)
            store_rollback(tx);
        oauth_error(req, 503, "temporarily_unavailable", "The identity store is unavailable.");
        return;
    }
    /* RFC 7009: 200 whether or not the token was known. */
    no_store(req);
    http_reply(req, 200, "application/json", "{}", 2);
}

void iam_token_routes(iam *m, http_router *r)
{
    int rc = http_route(r, HTTP_POST, "/identity/token", HTTP_STYLE_PLATFORM, token_endpoint, m);
    rc |= http_route(r, HTTP_GET, "/identity/keys", HTTP_STYLE_PLATFORM, keys_endpoint, m);
    rc |= http_route(r, HTTP_GET, "/identity/.well-known/openid-configuration",
                     HTTP_STYLE_PLATFORM, discovery, m);
    rc |= http_route(r, HTTP_POST, "/identity/introspect", HTTP_STYLE_PLATFORM, introspect, m);
    rc |= http_route(r, HTTP_POST, "/identity/revoke", HTTP_STYLE_PLATFORM, revoke, m);
    rc |= http_route(r, HTTP_GET, "/identity/revocations", HTTP_STYLE_PLATFORM,
                     revocations_endpoint, m);
    if (rc)
        log_error("iam: cannot register the identity routes");
}
