/* iam: the service's state, its secrets, bootstrap, and the one authentication and
 * authorization check of the platform. */
#include "iam/iam_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- secrets */

static int load_secret(const char *data_dir, unsigned char secret[32])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/secret.key", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, secret, 32);
        close(fd);
        if (n == 32)
            return 0;
        log_error("iam: %s is damaged (want 32 bytes)", path);
        return OSB_E_IO;
    }
    if (errno != ENOENT) {
        log_error("iam: cannot read %s: %s", path, strerror(errno));
        return OSB_E_IO;
    }
    random_bytes(secret, 32);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, secret, 32) != 32 || fsync(fd) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        log_error("iam: cannot write %s: %s", path, strerror(errno));
        return OSB_E_IO;
    }
    return 0;
}

void iam_hash_secret(const iam *m, const char *secret, unsigned char out[32])
{
    hmac_sha256(m->hash_key, sizeof m->hash_key, secret, strlen(secret), out);
}

void iam_new_secret(const char *prefix, char *out, size_t outsz)
{
    unsigned char raw[32];
    char enc[64];
    random_bytes(raw, sizeof raw);
    if (b64url_encode(raw, sizeof raw, enc, sizeof enc) < 0)
        enc[0] = '\0';
    snprintf(out, outsz, "%s%s", prefix, enc);
    secure_wipe(raw, sizeof raw);
}

/* ---------------------------------------------------------------- open / close */

static int find_operator(iam *m)
{
    store_tx *tx;
    store_stmt *q;
    int rc = store_begin(m->db, false, &tx);
    if (rc)
        return rc;
    m->operator_account[0] = '\0';
    if (!(rc = store_query(tx, "SELECT id FROM accounts WHERE kind = 'operator'", &q, ""))) {
        if (store_step(q) == STORE_ROW)
            snprintf(m->operator_account, sizeof m->operator_account, "%s", store_col_text(q, 0));
        store_done(q);
    }
    store_rollback(tx);
    return rc;
}

int iam_open(store *db, const iam_config *cfg, iam **out)
{
    iam *m = calloc(1, sizeof *m);
    unsigned char secret[32];
    if (!m)
        return OSB_E_NOMEM;
    m->db = db;
    m->issuer = strdup(cfg->issuer);
    m->ttl_s = cfg->token_ttl_s > 0 && cfg->token_ttl_s <= 3600 ? cfg->token_ttl_s : 3600;
    pthread_rwlock_init(&m->keys_lock, NULL);
    pthread_mutex_init(&m->verified_lock, NULL);
    m->verified = calloc(IAM_VERIFIED_SLOTS, sizeof *m->verified);
    int rc = m->issuer && m->verified ? load_secret(cfg->data_dir, secret) : OSB_E_NOMEM;
    if (!rc) {
        /* Separate keys for separate uses, derived from the one secret. */
        hmac_sha256(secret, 32, "osbill secret hashing", 21, m->hash_key);
        hmac_sha256(secret, 32, "osbill key encryption", 21, m->enc_key);
        hmac_sha256(secret, 32, "osbill refresh tokens", 21, m->refresh_key);
        secure_wipe(secret, sizeof secret);
        rc = iam_keys_ensure(m);
    }
    if (!rc)
        rc = iam_keys_load(m);
    if (!rc)
        rc = find_operator(m);
    if (rc) {
        iam_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void iam_close(iam *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->npublished; i++)
        jose_key_free(m->published[i]);
    jose_key_free(m->active);
    free(m->jwks);
    free(m->issuer);
    secure_wipe(m->hash_key, sizeof m->hash_key);
    secure_wipe(m->enc_key, sizeof m->enc_key);
    secure_wipe(m->refresh_key, sizeof m->refresh_key);
    pthread_rwlock_destroy(&m->keys_lock);
    pthread_mutex_destroy(&m->verified_lock);
    free(m->verified);
    free(m);
}

const char *iam_issuer(const iam *m)
{
    return m->issuer;
}

/* ---------------------------------------------------------------- records */

int iam_create_apikey(iam *m, store_tx *tx, const char *iam_id, const char *account_id,
                      const char *name, const char *description, char id[64], char *key,
                      size_t keysz)
{
    char uuid[37];
    unsigned char h[32];
    uuid_v4(uuid);
    snprintf(id, 64, "ApiKey-%s", uuid);
    iam_new_secret("", key, keysz);
    iam_hash_secret(m, key, h);
    return store_exec(tx,
                      "INSERT INTO api_keys (id, iam_id, account_id, name, description, key_hash,"
                      " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      "sssssbi", id, iam_id, account_id, name, description ? description : "",
                      (const void *)h, sizeof h, time_now_ms());
}

int iam_create_service_id(iam *m, store_tx *tx, const char *account_id, const char *name,
                          const char *description, char id[64], char iam_id[64])
{
    (void)m;
    char uuid[37];
    uuid_v4(uuid);
    snprintf(id, 64, "ServiceId-%s", uuid);
    snprintf(iam_id, 64, "iam-ServiceId-%s", uuid);
    return store_exec(tx, "INSERT INTO service_ids (id, iam_id, account_id, name, description,"
                          " created_ms) VALUES (?, ?, ?, ?, ?, ?)", "sssssi", id, iam_id,
                      account_id, name, description ? description : "", time_now_ms());
}

int iam_create_client(iam *m, store_tx *tx, const char *account_id, const char *name,
                      const char *service_name, const json_t *redirect_uris, char client_id[64],
                      char *secret, size_t secretsz)
{
    char uuid[37];
    unsigned char h[32];
    uuid_v4(uuid);
    snprintf(client_id, 64, "client-%s", uuid);
    json_t *none = redirect_uris ? NULL : json_array();
    char *uris = json_dumps(redirect_uris ? redirect_uris : none, JSON_COMPACT);
    json_decref(none);
    if (!uris)
        return OSB_E_NOMEM;
    int rc;
    if (secret) {
        iam_new_secret("", secret, secretsz);
        iam_hash_secret(m, secret, h);
        rc = store_exec(tx, "INSERT INTO oauth_clients (client_id, account_id, name, secret_hash,"
                            " redirect_uris, service_name, created_ms)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)", "sssbssi", client_id, account_id,
                        name, (const void *)h, sizeof h, uris, service_name, time_now_ms());
    } else {
        rc = store_exec(tx, "INSERT INTO oauth_clients (client_id, account_id, name, secret_hash,"
                            " redirect_uris, service_name, created_ms)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)", "sssnssi", client_id, account_id,
                        name, uris, service_name, time_now_ms());
    }
    free(uris);
    return rc;
}

int iam_console_client(iam *m, const char *redirect_uri)
{
    if (!m->operator_account[0])
        return OSB_E_NOTFOUND;
    json_t *u = json_pack("[s]", redirect_uri);
    char *uris = u ? json_dumps(u, JSON_COMPACT) : NULL;
    json_decref(u);
    if (!uris)
        return OSB_E_NOMEM;
    store_tx *tx;
    int rc = store_begin(m->db, true, &tx);
    if (!rc) {
        rc = store_exec(tx,
                        "INSERT INTO oauth_clients (client_id, account_id, name, secret_hash,"
                        " redirect_uris, created_ms) VALUES (?, ?, 'the osbill console', NULL, ?,"
                        " ?) ON CONFLICT (client_id) DO UPDATE SET redirect_uris ="
                        " excluded.redirect_uris, secret_hash = NULL",
                        "sssi", IAM_CONSOLE_CLIENT, m->operator_account, uris, time_now_ms());
        rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    }
    free(uris);
    return rc;
}

int iam_delete_service_identity(iam *m, store_tx *tx, const char *service_iam_id,
                                const char *client_id)
{
    (void)m;
    int rc = 0;
    if (service_iam_id && *service_iam_id) {
        if (!(rc = store_exec(tx, "DELETE FROM api_keys WHERE iam_id = ?", "s", service_iam_id)))
            rc = store_exec(tx, "DELETE FROM policies WHERE subject = ?", "s", service_iam_id);
        if (!rc)
            rc = store_exec(tx, "DELETE FROM service_ids WHERE iam_id = ?", "s", service_iam_id);
    }
    if (!rc && client_id && *client_id) {
        if (!(rc = store_exec(tx, "DELETE FROM consents WHERE client_id = ?", "s", client_id)))
            rc = store_exec(tx, "DELETE FROM oauth_clients WHERE client_id = ?", "s", client_id);
    }
    return rc;
}

void iam_derive_key(const iam *m, const char *purpose, unsigned char out[32])
{
    hmac_sha256(m->enc_key, sizeof m->enc_key, purpose, strlen(purpose), out);
}

int iam_add_policy(iam *m, store_tx *tx, const char *account_id, const char *subject,
                   const char *roles, const char *service_name, const char *resource_type,
                   const char *resource, char id[64])
{
    (void)m;
    char uuid[37];
    uuid_v4(uuid);
    snprintf(id, 64, "%s", uuid);
    return store_exec(tx,
                      "INSERT INTO policies (id, account_id, subject, roles, service_name,"
                      " resource_type, resource, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      "sssssssi", id, account_id, subject, roles, service_name, resource_type,
                      resource, time_now_ms());
}

int iam_bootstrap(iam *m, const char *email, const char *password, json_t **result)
{
    char account[64], uuid[37], iam_id[64], key_id[64], key[128], policy[64];
    char pwhash[crypto_pwhash_STRBYTES];
    if (m->operator_account[0])
        return OSB_E_CONFLICT;
    if (crypto_pwhash_str(pwhash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return OSB_E_NOMEM;
    uuid_v4(uuid);
    snprintf(account, sizeof account, "%.8s%.4s%.4s%.4s%.12s", uuid, uuid + 9, uuid + 14,
             uuid + 19, uuid + 24);
    uuid_v4(uuid);
    snprintf(iam_id, sizeof iam_id, "osbill-%s", uuid);
    int64_t now = time_now_ms();
    store_tx *tx;
    int rc = store_begin(m->db, true, &tx);
    if (rc)
        return rc;
    if ((rc = store_exec(tx, "INSERT INTO accounts (id, name, kind, created_ms) VALUES (?, ?, "
                             "'operator', ?)", "ssi", account, "Platform operator", now)) ||
        (rc = store_exec(tx, "INSERT INTO users (iam_id, email, name, password_hash, created_ms)"
                             " VALUES (?, ?, ?, ?, ?)", "ssssi", iam_id, email, "Operator",
                         pwhash, now)) ||
        (rc = store_exec(tx, "INSERT INTO account_users (account_id, iam_id, created_ms)"
                             " VALUES (?, ?, ?)", "ssi", account, iam_id, now)) ||
        (rc = iam_add_policy(m, tx, account, iam_id, "Administrator,Manager", NULL, NULL, NULL,
                             policy)) ||
        (rc = iam_create_apikey(m, tx, iam_id, account, "operator-initial",
                                "Created by osbill init", key_id, key, sizeof key))) {
        store_rollback(tx);
        return rc;
    }
    if ((rc = store_commit(tx)))
        return rc;
    snprintf(m->operator_account, sizeof m->operator_account, "%s", account);
    *result = json_pack("{s:s, s:s, s:s, s:s, s:s}", "account_id", account, "user", email,
                        "iam_id", iam_id, "api_key", key, "api_key_id", key_id);
    secure_wipe(key, sizeof key);
    return *result ? 0 : OSB_E_NOMEM;
}

/* ---------------------------------------------------------------- authentication */

static bool revoked(iam *m, const char *jti)
{
    store_tx *tx;
    store_stmt *q;
    bool found = false;
    if (store_begin(m->db, false, &tx))
        return true; /* fail closed */
    if (!store_query(tx, "SELECT 1 FROM revoked_tokens WHERE jti = ?", &q, "s", jti)) {
        found = store_step(q) == STORE_ROW;
        store_done(q);
    }
    store_rollback(tx);
    return found;
}

static void unauthorized(http_req *req, const char *why)
{
    http_add_header(req, "WWW-Authenticate", "Bearer realm=\"osbill\"");
    http_reply_error(req, 401, "unauthorized", why, NULL);
}

/* What every request's token passes after its signature and claims: not revoked, and not
 * one the platform issued for brokers (a broker replaying what it was sent is refused,
 * whatever account it names). */
static bool admitted(iam *m, http_req *req, const iam_principal *p)
{
    if (revoked(m, p->jti)) {
        unauthorized(req, "The bearer token is not valid.");
        return false;
    }
    if (strcmp(p->client_id, IAM_BROKER_CLIENT) == 0) {
        unauthorized(req, "The bearer token was issued for service brokers, not for this API.");
        return false;
    }
    return true;
}

bool iam_authenticate(iam *m, http_req *req, iam_principal *p)
{
    const char *h = http_header(req, "Authorization");
    memset(p, 0, sizeof *p);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(req, "A bearer token is required (POST /identity/token).");
        return false;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    unsigned char digest[32];
    sha256(tok, strlen(tok), digest);
    struct iam_verified *slot = &m->verified[(digest[0] | digest[1] << 8) % IAM_VERIFIED_SLOTS];
    bool known = false;
    pthread_mutex_lock(&m->verified_lock);
    if (slot->exp > time_now_ms() / 1000 && memcmp(slot->digest, digest, 32) == 0) {
        *p = slot->p;
        known = true;
    }
    pthread_mutex_unlock(&m->verified_lock);
    if (known)
        return admitted(m, req, p);
    jose_verify_opts o = {.issuer = m->issuer, .leeway_s = 30};
    json_t *claims = NULL;
    char why[128];
    if (jose_verify(tok, iam_key_lookup, m, &o, &claims, why, sizeof why) != JOSE_OK) {
        log_debug("iam: token refused: %s", why);
        unauthorized(req, "The bearer token is not valid.");
        return false;
    }
    const char *iam_id = json_string_value(json_object_get(claims, "iam_id"));
    const char *acct = json_string_value(json_object_get(json_object_get(claims, "account"), "bss"));
    const char *client = json_string_value(json_object_get(claims, "client_id"));
    const char *grant = json_string_value(json_object_get(claims, "grant_type"));
    const char *jti = json_string_value(json_object_get(claims, "jti"));
    bool ok = iam_id && acct && jti && strlen(iam_id) < sizeof p->iam_id &&
              strlen(acct) < sizeof p->account_id && strlen(jti) < sizeof p->jti;
    if (ok) {
        snprintf(p->iam_id, sizeof p->iam_id, "%s", iam_id);
        snprintf(p->account_id, sizeof p->account_id, "%s", acct);
        snprintf(p->client_id, sizeof p->client_id, "%s", client ? client : "");
        snprintf(p->grant_type, sizeof p->grant_type, "%s", grant ? grant : "");
        snprintf(p->jti, sizeof p->jti, "%s", jti);
        p->exp = json_integer_value(json_object_get(claims, "exp"));
        p->operator = m->operator_account[0] && strcmp(acct, m->operator_account) == 0;
    }
    json_decref(claims);
    if (!ok) {
        unauthorized(req, "The bearer token is not valid.");
        return false;
    }
    pthread_mutex_lock(&m->verified_lock);
    memcpy(slot->digest, digest, 32);
    slot->exp = p->exp;
    slot->p = *p;
    pthread_mutex_unlock(&m->verified_lock);
    return admitted(m, req, p);
}

int iam_issue_broker_token(iam *m, const char *broker_id, char **token, int64_t *exp)
{
    char crn[160];
    snprintf(crn, sizeof crn, "crn:v1:osbill:public:resource-controller::::broker:%.64s",
             broker_id);
    return iam_issue_access_token(m, crn, m->operator_account, IAM_BROKER_CLIENT,
                                  "urn:osbill:params:oauth:grant-type:platform", "osb", token,
                                  exp);
}

/* ---------------------------------------------------------------- decisions */

/* How much an action asks, by its verb: read 1, operate 2, write 3, manage 4. */
static int action_level(const char *action)
{
    static const struct { const char *verb; int level; } verbs[] = {
        {"read", 1}, {"view", 1}, {"list", 1}, {"get", 1}, {"retrieve", 1},
        {"operate", 2}, {"bind", 2},
        {"create", 3}, {"update", 3}, {"delete", 3}, {"write", 3}, {"submit", 3},
        {"manage", 4}, {"approve", 4}, {"admin", 4},
    };
    const char *dot = strrchr(action, '.');
    const char *verb = dot ? dot + 1 : action;
    for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
        if (strcmp(verb, verbs[i].verb) == 0)
            return verbs[i].level;
    return 4; /* an unknown verb needs the most */
}

static bool platform_action(const char *action)
{
    static const char *const ns[] = {"iam.", "resource-controller.", "catalog.", "billing.",
                                     "metering.", "support.", "platform."};
    for (size_t i = 0; i < ARRAY_LEN(ns); i++)
        if (str_has_prefix(action, ns[i]))
            return true;
    return false;
}

/* The highest level the roles of a policy give for this kind of action. */
static int roles_level(const char *roles, bool platform)
{
    static const struct { const char *role; int level; bool platform; } tab[] = {
        {"Viewer", 1, true}, {"Operator", 2, true}, {"Editor", 3, true},
        {"Administrator", 4, true}, {"Reader", 1, false}, {"Writer", 3, false},
        {"Manager", 4, false},
    };
    int best = 0;
    const char *p = roles;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        for (size_t i = 0; i < ARRAY_LEN(tab); i++)
            if (tab[i].platform == platform && strlen(tab[i].role) == n &&
                strncmp(p, tab[i].role, n) == 0 && tab[i].level > best)
                best = tab[i].level;
        p += n + (comma ? 1 : 0);
    }
    return best;
}

static bool attr_matches(const char *policy_value, const char *resource_value)
{
    return !policy_value || (resource_value && strcmp(policy_value, resource_value) == 0);
}

static bool policies_allow(iam *m, const char *subject, const char *account, const char *action,
                           const iam_resource *r)
{
    store_tx *tx;
    store_stmt *q;
    bool allow = false;
    int need = action_level(action);
    bool platform = platform_action(action);
    if (store_begin(m->db, false, &tx))
        return false;
    if (!store_query(tx, "SELECT roles, service_name, resource_type, resource FROM policies"
                         " WHERE subject = ? AND account_id = ?", &q, "ss", subject, account)) {
        while (!allow && store_step(q) == STORE_ROW) {
            if (!attr_matches(store_col_text(q, 1), r ? r->service_name : NULL) ||
                !attr_matches(store_col_text(q, 2), r ? r->resource_type : NULL) ||
                !attr_matches(store_col_text(q, 3), r ? r->resource : NULL))
                continue;
            allow = roles_level(store_col_text(q, 0), platform) >= need;
        }
        store_done(q);
    }
    store_rollback(tx);
    return allow;
}

bool iam_decide(iam *m, const iam_principal *p, const char *action, const iam_resource *r)
{
    /* The operator's administrators act on every account; their policies live in the
     * operator account and are checked there. */
    if (p->operator && policies_allow(m, p->iam_id, m->operator_account, action, NULL))
        return true;
    if (!r || !r->account_id)
        return false;
    /* A token is for one account: it never reaches into another. */
    if (strcmp(p->account_id, r->account_id) != 0)
        return false;
    return policies_allow(m, p->iam_id, r->account_id, action, r);
}

bool iam_require(iam *m, http_req *req, const char *action, const iam_resource *r,
                 iam_principal *p)
{
    if (!iam_authenticate(m, req, p))
        return false;
    if (iam_decide(m, p, action, r))
        return true;
    http_reply_errorf(req, 403, "forbidden", "%s is not allowed to %s here.", p->iam_id, action);
    return false;
}

int iam_housekeeping(iam *m)
{
    store_tx *tx;
    int64_t now = time_now_ms();
    int rc = store_begin(m->db, true, &tx);
    if (rc)
        return rc;
    /* Used codes and refresh tokens are kept a while past expiry, so that a late replay is
     * still recognised as one. */
    if ((rc = store_exec(tx, "DELETE FROM auth_codes WHERE expires_ms < ?", "i", now - 3600000)) ||
        (rc = store_exec(tx, "DELETE FROM sessions WHERE expires_ms < ?", "i", now)) ||
        (rc = store_exec(tx, "DELETE FROM refresh_used WHERE expires_ms < ?", "i",
                         now - 86400000)) ||
        (rc = store_exec(tx, "DELETE FROM refresh_revoked WHERE expires_ms < ?", "i", now)) ||
        (rc = store_exec(tx, "DELETE FROM revoked_tokens WHERE expires_ms < ?", "i",
                         now - 120000))) {
        store_rollback(tx);
        return rc;
    }
    return store_commit(tx);
}
