/* iam api: /v1/accounts, /v1/users, /v1/serviceids, /v1/apikeys, /v1/policies, /v1/clients,
 * /v2/authz and key rotation, in IBM Cloud IAM's shapes. Every handler goes through
 * iam_require(); another account's resources answer 404, so existence does not leak. */
#include "iam/iam_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 200
#define MAX_LIST 500

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void iso(int64_t ms, char out[32])
{
    time_format_rfc3339(ms, out);
}

static bool valid_name(const char *s)
{
    return s && *s && strlen(s) <= MAX_NAME;
}

/* A required string field of a body: replies 400 naming it when absent or wrong. */
static bool field(http_req *req, const json_t *body, const char *k, const char **out)
{
    const json_t *v = json_object_get(body, k);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4096) {
        http_reply_errorf(req, 400, "invalid_field", "'%s' is required and must be a non-empty "
                          "string.", k);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* Authenticates and authorizes; a refusal about another account's resource answers 404. */
static bool allowed(iam *m, http_req *req, const char *action, const iam_resource *r,
                    iam_principal *p)
{
    if (!iam_authenticate(m, req, p))
        return false;
    if (iam_decide(m, p, action, r))
        return true;
    if (r && r->account_id && strcmp(r->account_id, p->account_id) != 0 && !p->operator)
        http_reply_error(req, 404, "not_found", "No such resource.", NULL);
    else
        http_reply_errorf(req, 403, "forbidden", "Not allowed to %s.", action);
    return false;
}

static bool begin(iam *m, http_req *req, bool write, store_tx **tx)
{
    if (store_begin(m->db, write, tx) == 0)
        return true;
    http_reply_error(req, 503, "unavailable", "The identity store is unavailable.", NULL);
    return false;
}

static void commit_or_fail(http_req *req, store_tx *tx, int rc, int status, json_t *j)
{
    if (!rc)
        rc = store_commit(tx);
    else
        store_rollback(tx);
    if (rc == OSB_E_CONFLICT)
        http_reply_error(req, 409, "conflict", "It exists already.", NULL);
    else if (rc)
        http_reply_error(req, 500, "internal_error", "The identity store failed.", NULL);
    else
        http_reply_json(req, status, j);
    json_decref(j);
}

/* The account a stored row belongs to; false when absent. */
static bool owner_account(iam *m, const char *sql, const char *id, char out[64])
{
    store_tx *tx;
    store_stmt *q;
    bool found = false;
    if (store_begin(m->db, false, &tx))
        return false;
    if (!store_query(tx, sql, &q, "s", id)) {
        if (store_step(q) == STORE_ROW) {
            snprintf(out, 64, "%s", store_col_text(q, 0));
            found = true;
        }
        store_done(q);
    }
    store_rollback(tx);
    return found;
}

/* ---------------------------------------------------------------- accounts */

static json_t *account_json(store_stmt *q)
{
    char at[32];
    iso(store_col_int(q, 5), at);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", store_col_text(q, 0), "name",
                     store_col_text(q, 1), "kind", store_col_text(q, 2), "state",
                     store_col_text(q, 3), "currency", store_col_text(q, 4), "created_at", at);
}

static int hash_password(const char *password, char out[crypto_pwhash_STRBYTES])
{
    return crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0 ? 0 : OSB_E_NOMEM;
}

static bool valid_password(http_req *req, const char *pw)
{
    size_t n = strlen(pw);
    if (n < 8 || n > 256) {
        http_reply_error(req, 400, "invalid_field", "A password has 8 to 256 characters.",
                         "password");
        return false;
    }
    return true;
}

static bool valid_email(const char *e)
{
    const char *at = strchr(e, '@');
    return at && at != e && strchr(at, '.') && !strchr(e, ' ') && strlen(e) <= 254;
}

static void accounts_create(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    if (!allowed(m, req, "iam.account.create", NULL, &p))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const char *name, *kind, *email = NULL, *uname = NULL, *pw = NULL;
    const char *currency = jstr(body, "currency");
    const json_t *owner = json_object_get(body, "owner");
    if (!field(req, body, "name", &name) || !field(req, body, "kind", &kind))
        goto out;
    if (strcmp(kind, "provider") && strcmp(kind, "consumer")) {
        http_reply_error(req, 400, "invalid_field", "kind is provider or consumer.", "kind");
        goto out;
    }
    if (!valid_name(name)) {
        http_reply_error(req, 400, "invalid_field", "name has 1 to 200 characters.", "name");
        goto out;
    }
    if (currency && (strlen(currency) != 3 || currency[0] < 'A' || currency[0] > 'Z')) {
        http_reply_error(req, 400, "invalid_field", "currency is an ISO 4217 code.", "currency");
        goto out;
    }
    if (owner && (!json_is_object(owner) || !field(req, owner, "email", &email) ||
                  !field(req, owner, "name", &uname) || !field(req, owner, "password", &pw)))
        goto out;
    if (email && !valid_email(email)) {
        http_reply_error(req, 400, "invalid_field", "owner.email is not an email address.",
                         "owner.email");
        goto out;
    }
    if (pw && !valid_password(req, pw))
        goto out;
    char uuid[37], id[40], iam_id[64] = "", policy[64], pwhash[crypto_pwhash_STRBYTES];
    uuid_v4(uuid);
    snprintf(id, sizeof id, "%.8s%.4s%.4s%.4s%.12s", uuid, uuid + 9, uuid + 14, uuid + 19,
             uuid + 24);
    if (pw && hash_password(pw, pwhash)) {
        http_reply_error(req, 500, "internal_error", "Cannot hash the password.", NULL);
        goto out;
    }
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        goto out;
    int64_t now = time_now_ms();
    int rc = store_exec(tx, "INSERT INTO accounts (id, name, kind, currency, created_ms)"
                            " VALUES (?, ?, ?, ?, ?)", "ssssi", id, name, kind,
                        currency ? currency : "USD", now);
    if (!rc && email) {
        uuid_v4(uuid);
        snprintf(iam_id, sizeof iam_id, "osbill-%s", uuid);
        rc = store_exec(tx, "INSERT INTO users (iam_id, email, name, password_hash, created_ms)"
                            " VALUES (?, ?, ?, ?, ?)", "ssssi", iam_id, email, uname, pwhash, now);
        if (!rc)
            rc = store_exec(tx, "INSERT INTO account_users (account_id, iam_id, created_ms)"
                                " VALUES (?, ?, ?)", "ssi", id, iam_id, now);
        if (!rc)
            rc = iam_add_policy(m, tx, id, iam_id, "Administrator,Manager", NULL, NULL, NULL,
                                policy);
    }
    secure_wipe(pwhash, sizeof pwhash);
    char at[32];
    iso(now, at);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "name", name, "kind", kind,
                          "state", "active", "currency", currency ? currency : "USD",
                          "created_at", at);
    if (iam_id[0])
        json_object_set_new(j, "owner_iam_id", json_string(iam_id));
    commit_or_fail(req, tx, rc, 201, j);
out:
    json_decref(body);
}

static void accounts_list(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    if (!iam_authenticate(m, req, &p))
        return;
    bool all = p.operator && iam_decide(m, &p, "iam.account.list", NULL);
    store_tx *tx;
    store_stmt *q;
    if (!begin(m, req, false, &tx))
        return;
    json_t *list = json_array();
    int rc = all ? store_query(tx, "SELECT id, name, kind, state, currency, created_ms FROM"
                                   " accounts ORDER BY created_ms LIMIT 500", &q, "")
                 : store_query(tx, "SELECT a.id, a.name, a.kind, a.state, a.currency,"
                                   " a.created_ms FROM accounts a JOIN account_users u ON"
                                   " u.account_id = a.id WHERE u.iam_id = ? ORDER BY"
                                   " a.created_ms LIMIT 500", &q, "s", p.iam_id);
    if (!rc) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(list, account_json(q));
        store_done(q);
    }
    store_rollback(tx);
    json_t *j = json_pack("{s:o}", "resources", list);
    http_reply_json(req, rc ? 500 : 200, j);
    json_decref(j);
}

static void accounts_get(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    iam_resource r = {.account_id = req->params[0]};
    if (!allowed(m, req, "iam.account.read", &r, &p))
        return;
    store_tx *tx;
    store_stmt *q;
    if (!begin(m, req, false, &tx))
        return;
    json_t *j = NULL;
    if (!store_query(tx, "SELECT id, name, kind, state, currency, created_ms FROM accounts"
                         " WHERE id = ?", &q, "s", r.account_id)) {
        if (store_step(q) == STORE_ROW)
            j = account_json(q);
        store_done(q);
    }
    store_rollback(tx);
    if (j)
        http_reply_json(req, 200, j);
    else
        http_reply_error(req, 404, "not_found", "No such account.", NULL);
    json_decref(j);
}

/* ---------------------------------------------------------------- users */

static void users_create(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const char *account, *email, *name, *pw;
    if (!field(req, body, "account_id", &account))
        goto out;
    iam_resource r = {.account_id = account};
    if (!allowed(m, req, "iam.user.create", &r, &p) || !field(req, body, "email", &email) ||
        !field(req, body, "name", &name) || !field(req, body, "password", &pw))
        goto out;
    if (!valid_email(email) || !valid_name(name)) {
        http_reply_error(req, 400, "invalid_field", "email or name is not valid.", NULL);
        goto out;
    }
    if (!valid_password(req, pw))
        goto out;
    char uuid[37], iam_id[64], policy[64], pwhash[crypto_pwhash_STRBYTES];
    if (hash_password(pw, pwhash)) {
        http_reply_error(req, 500, "internal_error", "Cannot hash the password.", NULL);
        goto out;
    }
    uuid_v4(uuid);
    snprintf(iam_id, sizeof iam_id, "osbill-%s", uuid);
    int64_t now = time_now_ms();
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        goto out;
    int rc = store_exec(tx, "INSERT INTO users (iam_id, email, name, password_hash, created_ms)"
                            " VALUES (?, ?, ?, ?, ?)", "ssssi", iam_id, email, name, pwhash, now);
    if (!rc)
        rc = store_exec(tx, "INSERT INTO account_users (account_id, iam_id, created_ms)"
                            " VALUES (?, ?, ?)", "ssi", account, iam_id, now);
    /* New members can look; more takes a policy from an administrator. */
    if (!rc)
        rc = iam_add_policy(m, tx, account, iam_id, "Viewer", NULL, NULL, NULL, policy);
    secure_wipe(pwhash, sizeof pwhash);
    commit_or_fail(req, tx, rc, 201,
                   json_pack("{s:s, s:s, s:s, s:s}", "iam_id", iam_id, "email", email, "name",
                             name, "account_id", account));
out:
    json_decref(body);
}

static void users_list(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    const char *account = http_query(req, "account_id");
    if (!account) {
        http_reply_error(req, 400, "missing_query", "account_id is required.", "account_id");
        return;
    }
    iam_resource r = {.account_id = account};
    if (!allowed(m, req, "iam.user.list", &r, &p))
        return;
    store_tx *tx;
    store_stmt *q;
    if (!begin(m, req, false, &tx))
        return;
    json_t *list = json_array();
    if (!store_query(tx, "SELECT u.iam_id, u.email, u.name, u.state FROM users u JOIN"
                         " account_users a ON a.iam_id = u.iam_id WHERE a.account_id = ?"
                         " ORDER BY u.created_ms LIMIT 500", &q, "s", account)) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s}", "iam_id",
                                                  store_col_text(q, 0), "email",
                                                  store_col_text(q, 1), "name",
                                                  store_col_text(q, 2), "state",
                                                  store_col_text(q, 3), "account_id", account));
        store_done(q);
    }
    store_rollback(tx);
    json_t *j = json_pack("{s:o}", "resources", list);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- service IDs */

static json_t *serviceid_json(store_stmt *q)
{
    char at[32];
    iso(store_col_int(q, 5), at);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", store_col_text(q, 0), "iam_id",
                     store_col_text(q, 1), "account_id", store_col_text(q, 2), "name",
                     store_col_text(q, 3), "description", store_col_text(q, 4), "created_at", at);
}

static void serviceids_create(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const char *account, *name, *desc = jstr(body, "description");
    if (!field(req, body, "account_id", &account))
        goto out;
    iam_resource r = {.account_id = account};
    if (!allowed(m, req, "iam.serviceid.create", &r, &p) || !field(req, body, "name", &name))
        goto out;
    if (!valid_name(name) || (desc && strlen(desc) > 1000)) {
        http_reply_error(req, 400, "invalid_field", "name or description is too long.", NULL);
        goto out;
    }
    char id[64], iam_id[64], at[32];
    int64_t now = time_now_ms();
    iso(now, at);
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        goto out;
    int rc = iam_create_service_id(m, tx, account, name, desc, id, iam_id);
    commit_or_fail(req, tx, rc, 201,
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "iam_id", iam_id,
                             "account_id", account, "name", name, "description",
                             desc ? desc : "", "created_at", at));
out:
    json_decref(body);
}

static void serviceids_list(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    const char *account = http_query(req, "account_id");
    if (!account) {
        http_reply_error(req, 400, "missing_query", "account_id is required.", "account_id");
        return;
    }
    iam_resource r = {.account_id = account};
    if (!allowed(m, req, "iam.serviceid.list", &r, &p))
        return;
    store_tx *tx;
    store_stmt *q;
    if (!begin(m, req, false, &tx))
        return;
    json_t *list = json_array();
    if (!store_query(tx, "SELECT id, iam_id, account_id, name, description, created_ms FROM"
                         " service_ids WHERE account_id = ? ORDER BY created_ms LIMIT 500", &q,
                     "s", account)) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(list, serviceid_json(q));
        store_done(q);
    }
    store_rollback(tx);
    json_t *j = json_pack("{s:o}", "serviceids", list);
    http_reply_json(req, 200, j);
    json_decref(j);
}

static void serviceids_get(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    char account[64];
    const char *id = req->params[0];
    if (!iam_authenticate(m, req, &p))
        return;
    if (!owner_account(m, "SELECT account_id FROM service_ids WHERE id = ?", id, account)) {
        http_reply_error(req, 404, "not_found", "No such service ID.", NULL);
        return;
    }
    iam_resource r = {.account_id = account};
    if (!allowed(m, req, "iam.serviceid.read", &r, &p))
        return;
    store_tx *tx;
    store_stmt *q;
    json_t *j = NULL;
    if (!begin(m, req, false, &tx))
        return;
    if (!store_query(tx, "SELECT id, iam_id, account_id, name, description, created_ms FROM"
                         " service_ids WHERE id = ?", &q, "s", id)) {
        if (store_step(q) == STORE_ROW)
            j = serviceid_json(q);
        store_done(q);
    }
    store_rollback(tx);
    if (j)
        http_reply_json(req, 200, j);
    else
        http_reply_error(req, 404, "not_found", "No such service ID.", NULL);
    json_decref(j);
}

static void serviceids_delete(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    char account[64], iam_id[128];
    const char *id = req->params[0];
    if (!iam_authenticate(m, req, &p))
        return;
    if (!owner_account(m, "SELECT account_id FROM service_ids WHERE id = ?", id, account) ||
        !owner_account(m, "SELECT iam_id FROM service_ids WHERE id = ?", id, iam_id)) {
        http_reply_error(req, 404, "not_found", "No such service ID.", NULL);
        return;
    }
    iam_resource r = {.account_id = account};
    if (!allowed(m, req, "iam.serviceid.delete", &r, &p))
        return;
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        return;
    int rc = store_exec(tx, "DELETE FROM api_keys WHERE iam_id = ?", "s", iam_id);
    if (!rc)
        rc = store_exec(tx, "DELETE FROM policies WHERE subject = ?", "s", iam_id);
    if (!rc)
        rc = store_exec(tx, "DELETE FROM service_ids WHERE id = ?", "s", id);
    if (!rc && !(rc = store_commit(tx))) {
        http_reply(req, 204, NULL, NULL, 0);
        return;
    }
    if (rc)
        store_rollback(tx);
    http_reply_error(req, 500, "internal_error", "The identity store failed.", NULL);
}

/* ---------------------------------------------------------------- API keys */

/* The account an identity (user membership or service ID) acts in; for users, the account
 * asked for must be one of theirs. */
static bool identity_account(iam *m, const char *iam_id, const char *wanted, char out[64])
{
    if (str_has_prefix(iam_id, "iam-ServiceId-"))
        return owner_account(m, "SELECT account_id FROM service_ids WHERE iam_id = ?", iam_id,
                             out);
    if (!wanted)
        return false;
    store_tx *tx;
    store_stmt *q;
    bool found = false;
    if (store_begin(m->db, false, &tx))
        return false;
    if (!store_query(tx, "SELECT 1 FROM account_users WHERE iam_id = ? AND account_id = ?", &q,
                     "ss", iam_id, wanted)) {
        found = store_step(q) == STORE_ROW;
        store_done(q);
    }
    store_rollback(tx);
    if (found)
        snprintf(out, 64, "%s", wanted);
    return found;
}

static json_t *apikey_json(store_stmt *q)
{
    char at[32];
    iso(store_col_int(q, 6), at);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "id", store_col_text(q, 0),
                     "iam_id", store_col_text(q, 1), "account_id", store_col_text(q, 2), "name",
                     store_col_text(q, 3), "description", store_col_text(q, 4), "locked",
                     (int)store_col_int(q, 5), "created_at", at);
}

#define APIKEY_COLS "id, iam_id, account_id, name, description, locked, created_ms"

static void apikeys_create(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const char *name, *iam_id, *desc = jstr(body, "description");
    char account[64];
    if (!iam_authenticate(m, req, &p) || !field(req, body, "name", &name) ||
        !field(req, body, "iam_id", &iam_id))
        goto out;
    if (!valid_name(name) || (desc && strlen(desc) > 1000)) {
        http_reply_error(req, 400, "invalid_field", "name or description is too long.", NULL);
        goto out;
    }
    const char *want = jstr(body, "account_id");
    if (!identity_account(m, iam_id, want ? want : p.account_id, account)) {
        http_reply_error(req, 404, "not_found", "No such identity in that account.", "iam_id");
        goto out;
    }
    /* Anyone may make keys for themselves; keys for others need the account's consent. */
    iam_resource r = {.account_id = account, .resource_type = "apikey", .resource = iam_id};
    if (strcmp(iam_id, p.iam_id) != 0 || strcmp(account, p.account_id) != 0) {
        if (!allowed(m, req, "iam.apikey.create", &r, &p))
            goto out;
    }
    char id[64], key[96], at[32];
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        goto out;
    int rc = iam_create_apikey(m, tx, iam_id, account, name, desc, id, key, sizeof key);
    iso(time_now_ms(), at);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "id", id, "apikey", key,
                          "iam_id", iam_id, "account_id", account, "name", name, "description",
                          desc ? desc : "", "locked", 0, "created_at", at);
    secure_wipe(key, sizeof key);
    commit_or_fail(req, tx, rc, 201, j);
out:
    json_decref(body);
}

static void apikeys_list(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    const char *iam_id = http_query(req, "iam_id");
    const char *account = http_query(req, "account_id");
    if (!iam_authenticate(m, req, &p))
        return;
    if (!account)
        account = p.account_id;
    bool own = iam_id && strcmp(iam_id, p.iam_id) == 0 && strcmp(account, p.account_id) == 0;
    iam_resource r = {.account_id = account, .resource_type = "apikey"};
    if (!own && !allowed(m, req, "iam.apikey.list", &r, &p))
        return;
    store_tx *tx;
    store_stmt *q;
    if (!begin(m, req, false, &tx))
        return;
    json_t *list = json_array();
    int rc = iam_id ? store_query(tx, "SELECT " APIKEY_COLS " FROM api_keys WHERE account_id = ?"
                                      " AND iam_id = ? ORDER BY created_ms LIMIT 500", &q, "ss",
                                  account, iam_id)
                    : store_query(tx, "SELECT " APIKEY_COLS " FROM api_keys WHERE account_id = ?"
                                      " ORDER BY created_ms LIMIT 500", &q, "s", account);
    if (!rc) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(list, apikey_json(q));
        store_done(q);
    }
    store_rollback(tx);
    json_t *j = json_pack("{s:o}", "apikeys", list);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* Loads a key's owner and account, and checks the caller may act on it. */
static bool apikey_access(iam *m, http_req *req, const char *id, const char *action,
                          iam_principal *p)
{
    char account[64], owner[128];
    if (!iam_authenticate(m, req, p))
        return false;
    if (!owner_account(m, "SELECT account_id FROM api_keys WHERE id = ?", id, account) ||
        !owner_account(m, "SELECT iam_id FROM api_keys WHERE id = ?", id, owner)) {
        http_reply_error(req, 404, "not_found", "No such API key.", NULL);
        return false;
    }
    if (strcmp(owner, p->iam_id) == 0 && strcmp(account, p->account_id) == 0)
        return true;
    iam_resource r = {.account_id = account, .resource_type = "apikey", .resource = owner};
    return allowed(m, req, action, &r, p);
}

static void apikeys_get(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    const char *id = req->params[0];
    if (!apikey_access(m, req, id, "iam.apikey.read", &p))
        return;
    store_tx *tx;
    store_stmt *q;
    json_t *j = NULL;
    if (!begin(m, req, false, &tx))
        return;
    if (!store_query(tx, "SELECT " APIKEY_COLS " FROM api_keys WHERE id = ?", &q, "s", id)) {
        if (store_step(q) == STORE_ROW)
            j = apikey_json(q);
        store_done(q);
    }
    store_rollback(tx);
    if (j)
        http_reply_json(req, 200, j);
    else
        http_reply_error(req, 404, "not_found", "No such API key.", NULL);
    json_decref(j);
}

static void apikeys_change(http_req *req, const char *id, const char *action, const char *sql,
                           bool refuse_locked, iam *m)
{
    iam_principal p;
    if (!apikey_access(m, req, id, action, &p))
        return;
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        return;
    int rc = 0;
    if (refuse_locked) {
        store_stmt *q;
        bool locked = false;
        if (!(rc = store_query(tx, "SELECT locked FROM api_keys WHERE id = ?", &q, "s", id))) {
            locked = store_step(q) == STORE_ROW && store_col_int(q, 0);
            store_done(q);
        }
        if (locked) {
            store_rollback(tx);
            http_reply_error(req, 409, "locked", "A locked API key must be unlocked before it "
                             "is deleted.", NULL);
            return;
        }
    }
    if (!rc)
        rc = store_exec(tx, sql, "s", id);
    if (!rc && !(rc = store_commit(tx))) {
        http_reply(req, 204, NULL, NULL, 0);
        return;
    }
    if (rc)
        store_rollback(tx);
    http_reply_error(req, 500, "internal_error", "The identity store failed.", NULL);
}

static void apikeys_delete(http_req *req, void *ud)
{
    apikeys_change(req, req->params[0], "iam.apikey.delete", "DELETE FROM api_keys WHERE id = ?",
                   true, ud);
}

static void apikeys_lock(http_req *req, void *ud)
{
    bool lock = req->method == HTTP_POST;
    apikeys_change(req, req->params[0], "iam.apikey.update",
                   lock ? "UPDATE api_keys SET locked = 1 WHERE id = ?"
                        : "UPDATE api_keys SET locked = 0 WHERE id = ?",
                   false, ud);
}

/* ---------------------------------------------------------------- policies */

/* "crn:v1:bluemix:public:iam::::role:Viewer", "...::serviceRole:Reader" or a bare name. */
static const char *role_name(const char *role_id)
{
    static const char *const known[] = {"Viewer", "Operator", "Editor", "Administrator",
                                        "Reader", "Writer", "Manager"};
    const char *colon = strrchr(role_id, ':');
    const char *name = colon ? colon + 1 : role_id;
    for (size_t i = 0; i < ARRAY_LEN(known); i++)
        if (strcmp(name, known[i]) == 0)
            return known[i];
    return NULL;
}

static const char *attr_value(const json_t *attrs, const char *name)
{
    size_t i;
    const json_t *a;
    json_array_foreach(attrs, i, a) {
        if (str_eq(jstr(a, "name"), name))
            return jstr(a, "value");
    }
    return NULL;
}

static json_t *policy_json(store_stmt *q)
{
    json_t *roles = json_array(), *rattrs = json_array();
    const char *p = store_col_text(q, 3);
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char role[64];
        snprintf(role, sizeof role, "%.*s", (int)n, p);
        bool service = !strcmp(role, "Reader") || !strcmp(role, "Writer") || !strcmp(role, "Manager");
        char crn[128];
        snprintf(crn, sizeof crn, "crn:v1:bluemix:public:iam::::%s:%s",
                 service ? "serviceRole" : "role", role);
        json_array_append_new(roles, json_pack("{s:s}", "role_id", crn));
        p += n + (comma ? 1 : 0);
    }
    json_array_append_new(rattrs, json_pack("{s:s, s:s}", "name", "accountId", "value",
                                            store_col_text(q, 1)));
    const char *names[] = {"serviceName", "resourceType", "resource"};
    for (int i = 0; i < 3; i++)
        if (!store_col_null(q, 4 + i))
            json_array_append_new(rattrs, json_pack("{s:s, s:s}", "name", names[i], "value",
                                                    store_col_text(q, 4 + i)));
    return json_pack("{s:s, s:s, s:[{s:[{s:s, s:s}]}], s:o, s:[{s:o}]}", "id",
                     store_col_text(q, 0), "type", "access", "subjects", "attributes", "name",
                     "iam_id", "value", store_col_text(q, 2), "roles", roles, "resources",
                     "attributes", rattrs);
}

#define POLICY_COLS "id, account_id, subject, roles, service_name, resource_type, resource"

static void policies_create(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const json_t *sattrs = json_object_get(json_array_get(json_object_get(body, "subjects"), 0),
                                           "attributes");
    const json_t *rattrs = json_object_get(json_array_get(json_object_get(body, "resources"), 0),
                                           "attributes");
    const json_t *roles = json_object_get(body, "roles");
    const char *subject = attr_value(sattrs, "iam_id");
    const char *account = attr_value(rattrs, "accountId");
    if (!subject || !account || !json_is_array(roles) || json_array_size(roles) == 0 ||
        json_array_size(roles) > 7) {
        http_reply_error(req, 400, "invalid_policy", "A policy needs subjects[0] with an iam_id, "
                         "resources[0] with an accountId, and 1 to 7 roles.", NULL);
        goto out;
    }
    iam_resource r = {.account_id = account, .resource_type = "policy"};
    if (!allowed(m, req, "iam.policy.manage", &r, &p))
        goto out;
    char list[128] = "", owner[64];
    size_t i;
    const json_t *role;
    json_array_foreach(roles, i, role) {
        const char *name = role_name(jstr(role, "role_id") ? jstr(role, "role_id") : "");
        if (!name) {
            http_reply_error(req, 400, "invalid_role", "A role_id is not a known role.", "roles");
            goto out;
        }
        if (!strstr(list, name)) {
            strcat(list, list[0] ? "," : "");
            strcat(list, name);
        }
    }
    /* The subject must belong to the account: a policy never reaches outside it. */
    if (!identity_account(m, subject, account, owner) || strcmp(owner, account) != 0) {
        http_reply_error(req, 400, "invalid_subject", "The subject is not an identity of this "
                         "account.", "subjects");
        goto out;
    }
    char id[64];
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        goto out;
    const char *svc = attr_value(rattrs, "serviceName");
    const char *type = attr_value(rattrs, "resourceType");
    const char *res = attr_value(rattrs, "serviceInstance");
    if (!res)
        res = attr_value(rattrs, "resource");
    int rc = iam_add_policy(m, tx, account, subject, list, svc, type, res, id);
    json_t *j = json_deep_copy(body);
    json_object_set_new(j, "id", json_string(id));
    commit_or_fail(req, tx, rc, 201, j);
out:
    json_decref(body);
}

static void policies_list(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    const char *account = http_query(req, "account_id");
    if (!account) {
        http_reply_error(req, 400, "missing_query", "account_id is required.", "account_id");
        return;
    }
    iam_resource r = {.account_id = account, .resource_type = "policy"};
    if (!allowed(m, req, "iam.policy.list", &r, &p))
        return;
    store_tx *tx;
    store_stmt *q;
    if (!begin(m, req, false, &tx))
        return;
    json_t *list = json_array();
    if (!store_query(tx, "SELECT " POLICY_COLS " FROM policies WHERE account_id = ?"
                         " ORDER BY created_ms LIMIT 500", &q, "s", account)) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(list, policy_json(q));
        store_done(q);
    }
    store_rollback(tx);
    json_t *j = json_pack("{s:o}", "policies", list);
    http_reply_json(req, 200, j);
    json_decref(j);
}

static void policies_delete(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    char account[64];
    if (!iam_authenticate(m, req, &p))
        return;
    if (!owner_account(m, "SELECT account_id FROM policies WHERE id = ?", req->params[0],
                       account)) {
        http_reply_error(req, 404, "not_found", "No such policy.", NULL);
        return;
    }
    iam_resource r = {.account_id = account, .resource_type = "policy"};
    if (!allowed(m, req, "iam.policy.manage", &r, &p))
        return;
    store_tx *tx;
    if (!begin(m, req, true, &tx))
        return;
    int rc = store_exec(tx, "DELETE FROM policies WHERE id = ?", "s", req->params[0]);
    if (!rc && !(rc = store_commit(tx))) {
        http_reply(req, 204, NULL, NULL, 0);
        return;
    }
    if (rc)
        store_rollback(tx);
    http_reply_error(req, 500, "internal_error", "The identity store failed.", NULL);
}

/* ---------------------------------------------------------------- OAuth clients */

static bool valid_redirects(const json_t *uris)
{
    size_t i;
    const json_t *u;
    if (!json_is_array(uris) || json_array_size(uris) > 20)
        return false;
    json_array_foreach(uris, i, u) {
        const char *s = json_string_value(u);
        /* Exact, absolute URIs without fragments (RFC 6749 3.1.2). */
        if (!s || strlen(s) > 2000 || strchr(s, '#') ||
            !(str_has_prefix(s, "https://") || str_has_prefix(s, "http://")))
            return false;
    }
    return true;
}

static void clients_create(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const char *account, *name, *svc = jstr(body, "service_name");
    const json_t *uris = json_object_get(body, "redirect_uris");
    const json_t *pub = json_object_get(body, "public");
    if (!field(req, body, "account_id", &account))
        goto out;
    iam_resource r = {.account_id = account, .resource_type = "client"};
    if (!allowed(m, req, "iam.client.create", &r, &p) || !field(req, body, "name", &name))
        goto out;
    if ((uris && !valid_redirects(uris)) || (pub && !json_is_boolean(pub)) || !valid_name(name)) {
        http_reply_error(req, 400, "invalid_field", "redirect_uris must be absolute http(s) URIs "
                         "without fragments; public a boolean.", "redirect_uris");
        goto out;
    }
    char client_id[64], secret[96] = "";
    bool confidential = !json_is_true(pub);
    json_t *list = uris ? json_incref((json_t *)uris) : json_array();
    store_tx *tx;
    if (!begin(m, req, true, &tx)) {
        json_decref(list);
        goto out;
    }
    int rc = iam_create_client(m, tx, account, name, svc, list, client_id,
                               confidential ? secret : NULL, sizeof secret);
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:b}", "client_id", client_id, "account_id",
                          account, "name", name, "redirect_uris", list, "public", !confidential);
    if (confidential)
        json_object_set_new(j, "client_secret", json_string(secret));
    if (svc)
        json_object_set_new(j, "service_name", json_string(svc));
    secure_wipe(secret, sizeof secret);
    commit_or_fail(req, tx, rc, 201, j);
out:
    json_decref(body);
}

static void clients_update(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    char account[64];
    if (!iam_authenticate(m, req, &p))
        return;
    if (!owner_account(m, "SELECT account_id FROM oauth_clients WHERE client_id = ?",
                       req->params[0], account)) {
        http_reply_error(req, 404, "not_found", "No such client.", NULL);
        return;
    }
    iam_resource r = {.account_id = account, .resource_type = "client"};
    if (!allowed(m, req, "iam.client.update", &r, &p))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const json_t *uris = json_object_get(body, "redirect_uris");
    if (!valid_redirects(uris)) {
        http_reply_error(req, 400, "invalid_field", "redirect_uris must be absolute http(s) URIs "
                         "without fragments.", "redirect_uris");
        json_decref(body);
        return;
    }
    char *text = json_dumps(uris, JSON_COMPACT);
    store_tx *tx;
    if (begin(m, req, true, &tx)) {
        int rc = store_exec(tx, "UPDATE oauth_clients SET redirect_uris = ? WHERE client_id = ?",
                            "ss", text, req->params[0]);
        commit_or_fail(req, tx, rc, 200,
                       json_pack("{s:s, s:O}", "client_id", req->params[0], "redirect_uris",
                                 uris));
    }
    free(text);
    json_decref(body);
}

/* ---------------------------------------------------------------- decisions, keys */

/* POST /v2/authz: [{subject:{attributes:{id}}, action, resource:{attributes:{...}}}].
 * A caller asks about its own account, or, as an offering's dashboard client, about the
 * actions of its own service. */
static void authz(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal caller;
    if (!iam_authenticate(m, req, &caller))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    if (!json_is_array(body) || json_array_size(body) == 0 || json_array_size(body) > 100) {
        http_reply_error(req, 400, "invalid_request", "The body is an array of 1 to 100 "
                         "requests.", NULL);
        json_decref(body);
        return;
    }
    char client_service[128] = "";
    if (caller.client_id[0] && strcmp(caller.grant_type, "client_credentials") == 0)
        owner_account(m, "SELECT coalesce(service_name, '') FROM oauth_clients WHERE client_id = ?",
                      caller.client_id, client_service);
    json_t *out = json_array();
    size_t i;
    const json_t *rq;
    json_array_foreach(body, i, rq) {
        const json_t *sa = json_object_get(json_object_get(rq, "subject"), "attributes");
        const json_t *ra = json_object_get(json_object_get(rq, "resource"), "attributes");
        const char *subject = jstr(sa, "id"), *action = jstr(rq, "action");
        const char *account = jstr(ra, "accountId"), *svc = jstr(ra, "serviceName");
        const char *inst = jstr(ra, "serviceInstance");
        json_t *resp = json_object();
        if (jstr(rq, "requestId"))
            json_object_set_new(resp, "requestId", json_string(jstr(rq, "requestId")));
        if (!subject || !action || !account || strlen(subject) >= sizeof caller.iam_id ||
            strlen(account) >= sizeof caller.account_id) {
            json_object_set_new(resp, "status", json_string("400"));
            json_object_set_new(resp, "error", json_string("subject.attributes.id, action and "
                                                           "resource.attributes.accountId are "
                                                           "required"));
            json_array_append_new(out, resp);
            continue;
        }
        bool may_ask = caller.operator || strcmp(account, caller.account_id) == 0 ||
                       (client_service[0] && svc && strcmp(svc, client_service) == 0 &&
                        str_has_prefix(action, client_service) &&
                        action[strlen(client_service)] == '.');
        if (!may_ask) {
            json_object_set_new(resp, "status", json_string("403"));
            json_object_set_new(resp, "error", json_string("not allowed to ask about this "
                                                           "resource"));
            json_array_append_new(out, resp);
            continue;
        }
        iam_principal subj = {0};
        snprintf(subj.iam_id, sizeof subj.iam_id, "%s", subject);
        snprintf(subj.account_id, sizeof subj.account_id, "%s", account);
        iam_resource r = {.account_id = account, .service_name = svc, .resource = inst,
                          .resource_type = jstr(ra, "resourceType")};
        bool permit = iam_decide(m, &subj, action, &r);
        json_object_set_new(resp, "status", json_string("200"));
        json_object_set_new(resp, "decision", json_string(permit ? "Permit" : "Deny"));
        json_array_append_new(out, resp);
    }
    json_t *j = json_pack("{s:o}", "responses", out);
    http_reply_json(req, 200, j);
    json_decref(j);
    json_decref(body);
}

static void keys_rotate(http_req *req, void *ud)
{
    iam *m = ud;
    iam_principal p;
    if (!allowed(m, req, "iam.keys.manage", NULL, &p))
        return;
    if (iam_rotate_keys(m)) {
        http_reply_error(req, 500, "internal_error", "The keys could not be rotated.", NULL);
        return;
    }
    pthread_rwlock_rdlock(&m->keys_lock);
    json_t *j = json_pack("{s:s}", "active_kid", jose_key_kid(m->active));
    pthread_rwlock_unlock(&m->keys_lock);
    http_reply_json(req, 200, j);
    json_decref(j);
}

void iam_api_routes(iam *m, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/accounts", P, accounts_create, m);
    rc |= http_route(r, HTTP_GET, "/v1/accounts", P, accounts_list, m);
    rc |= http_route(r, HTTP_GET, "/v1/accounts/:id", P, accounts_get, m);
    rc |= http_route(r, HTTP_POST, "/v1/users", P, users_create, m);
    rc |= http_route(r, HTTP_GET, "/v1/users", P, users_list, m);
    rc |= http_route(r, HTTP_POST, "/v1/serviceids", P, serviceids_create, m);
    rc |= http_route(r, HTTP_GET, "/v1/serviceids", P, serviceids_list, m);
    rc |= http_route(r, HTTP_GET, "/v1/serviceids/:id", P, serviceids_get, m);
    rc |= http_route(r, HTTP_DELETE, "/v1/serviceids/:id", P, serviceids_delete, m);
    rc |= http_route(r, HTTP_POST, "/v1/apikeys", P, apikeys_create, m);
    rc |= http_route(r, HTTP_GET, "/v1/apikeys", P, apikeys_list, m);
    rc |= http_route(r, HTTP_GET, "/v1/apikeys/:id", P, apikeys_get, m);
    rc |= http_route(r, HTTP_DELETE, "/v1/apikeys/:id", P, apikeys_delete, m);
    rc |= http_route(r, HTTP_POST | HTTP_DELETE, "/v1/apikeys/:id/lock", P, apikeys_lock, m);
    rc |= http_route(r, HTTP_POST, "/v1/policies", P, policies_create, m);
    rc |= http_route(r, HTTP_GET, "/v1/policies", P, policies_list, m);
    rc |= http_route(r, HTTP_DELETE, "/v1/policies/:id", P, policies_delete, m);
    rc |= http_route(r, HTTP_POST, "/v1/clients", P, clients_create, m);
    rc |= http_route(r, HTTP_PATCH, "/v1/clients/:id", P, clients_update, m);
    rc |= http_route(r, HTTP_POST, "/v2/authz", P, authz, m);
    rc |= http_route(r, HTTP_POST, "/identity/keys/rotate", P, keys_rotate, m);
    if (rc)
        log_error("iam: cannot register the API routes");
}

void iam_routes(iam *m, http_router *r)
{
    iam_token_routes(m, r);
    iam_authorize_routes(m, r);
    iam_api_routes(m, r);
}
