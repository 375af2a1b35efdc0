/* controller keys: /v2/resource_keys in the IBM Cloud resource controller's shapes. A key is
 * an OSB binding of an instance; its credentials come from the broker, are kept sealed, and
 * are shown to the key's own account only. */
#include "controller/controller_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


json_t *rc_key_json(rc_controller *c, store_tx *tx, const char *guid, bool with_credentials)
{
    store_stmt *q;
    json_t *j = NULL;
    if (store_query(tx,
                    "SELECT k.guid, k.crn, k.account_id, k.name, k.role, k.parameters, k.state,"
                    " k.last_operation, k.created_ms, k.updated_ms, k.deleted_ms, i.guid,"
                    " i.crn, i.resource_group_id, k.credentials FROM resource_keys k JOIN"
                    " resource_instances i ON i.guid = k.instance_id WHERE k.guid = ?",
                    &q, "s", guid))
        return NULL;
    if (store_step(q) == STORE_ROW) {
        char url[96], iurl[96];
        snprintf(url, sizeof url, "/v2/resource_keys/%s", store_col_text(q, 0));
        snprintf(iurl, sizeof iurl, "/v2/resource_instances/%s", store_col_text(q, 11));
        j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:o}",
                      "id", store_col_text(q, 1), "guid", store_col_text(q, 0), "crn",
                      store_col_text(q, 1), "url", url, "account_id", store_col_text(q, 2),
                      "resource_group_id", store_col_text(q, 13), "name", store_col_text(q, 3),
                      "role", store_col_text(q, 4), "source_crn", store_col_text(q, 12),
                      "resource_instance_url", iurl, "state", store_col_text(q, 6), "parameters",
                      rc_json_col(q, 5), "last_operation_type", "", "last_operation",
                      rc_json_col(q, 7), "created_at", store_col_json_time(q, 8), "updated_at",
                      store_col_json_time(q, 9), "deleted_at", store_col_json_time(q, 10));
        json_object_del(j, "last_operation_type");
        if (j && with_credentials) {
            size_t n = 0;
            const void *sealed = store_col_blob(q, 14, &n);
            json_t *creds = NULL;
            if (sealed && n && rc_open_credentials(c, store_col_text(q, 0), sealed, n, &creds) == 0)
                json_object_set_new(j, "credentials", creds);
            else
                json_object_set_new(j, "credentials", json_null());
        }
    }
    store_done(q);
    return j;
}

/* The key a request names (guid or CRN), if the caller's account owns it or the caller is the
 * operator; with its instance. */
typedef struct {
    char guid[37], account_id[64], state[16], instance_id[37];
} key_ref;

static int find_key(store_tx *tx, const char *id, const iam_principal *p, key_ref *k)
{
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT guid, account_id, state, instance_id FROM resource_keys WHERE"
                         " guid = ? OR crn = ?",
                         &q, "ss", id, id);
    if (rc)
        return rc;
    rc = OSB_E_NOTFOUND;
    if (store_step(q) == STORE_ROW) {
        snprintf(k->guid, sizeof k->guid, "%s", store_col_text(q, 0));
        snprintf(k->account_id, sizeof k->account_id, "%s", store_col_text(q, 1));
        snprintf(k->state, sizeof k->state, "%s", store_col_text(q, 2));
        snprintf(k->instance_id, sizeof k->instance_id, "%s", store_col_text(q, 3));
        if (p->operator || strcmp(p->account_id, k->account_id) == 0)
            rc = 0;
    }
    store_done(q);
    return rc;
}

/* Service roles, as IBM Cloud names them or as role CRNs. */
static const char *role_name(const char *s)
{
    static const char *const roles[] = {"Reader", "Writer", "Manager"};
    const char *last = strrchr(s, ':');
    const char *r = str_has_prefix(s, "crn:v1:") && last ? last + 1 : s;
    for (size_t i = 0; i < ARRAY_LEN(roles); i++)
        if (strcmp(r, roles[i]) == 0)
            return roles[i];
    return NULL;
}

static void not_found(http_req *req, int rc, const char *what)
{
    if (rc == OSB_E_NOTFOUND)
        http_reply_errorf(req, 404, "not_found", "No such %s.", what);
    else
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
}

/* ---------------------------------------------------------------- create */

static void key_create(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    store_tx *tx = NULL;
    rc_inst_ref i;
    json_t *plan_doc = NULL;
    char *params_text = NULL;
    int rc;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const json_t *jname = json_object_get(body, "name");
    const char *source = json_string_value(json_object_get(body, "source"));
    const json_t *jrole = json_object_get(body, "role");
    json_t *params = json_object_get(body, "parameters");
    const char *role = jrole ? (json_string_value(jrole) ? role_name(json_string_value(jrole))
                                                         : NULL)
                             : "Writer";
    if (!catalog_valid_text(jname, RC_MAX_NAME, false)) {
        rc_field_error(req, "name", "'name' must be text of 1 to 180 characters.");
        goto out;
    }
    if (!source || !source[0] || strlen(source) > 512) {
        rc_field_error(req, "source", "'source' must name an instance (its guid or CRN).");
        goto out;
    }
    if (!role) {
        rc_field_error(req, "role", "'role' is Reader, Writer or Manager (or its role CRN).");
        goto out;
    }
    if (params && !json_is_object(params)) {
        rc_field_error(req, "parameters", "'parameters' must be an object.");
        goto out;
    }
    if (!rc_begin(c, req, true, &tx))
        goto out;
    if ((rc = rc_find_instance(tx, source, &p, &i))) {
        store_rollback(tx);
        if (rc == OSB_E_NOTFOUND)
            rc_field_error(req, "source", "No such instance.");
        else
            http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        goto out;
    }
    if (!rc_allowed(c, req, &p, "resource-controller.key.create", &i)) {
        store_rollback(tx);
        goto out;
    }
    if (strcmp(i.account_id, p.account_id) != 0) {
        /* Credentials belong to the instance's account: the operator creates none. */
        store_rollback(tx);
        http_reply_error(req, 403, "forbidden",
                         "Keys are created by the instance's own account.", NULL);
        goto out;
    }
    if (rc_account_suspended(tx, i.account_id)) {
        store_rollback(tx);
        http_reply_error(req, 403, "account_suspended",
                         "The account is suspended: it cannot create keys.", NULL);
        goto out;
    }
    if (strcmp(i.state, "active") != 0) {
        store_rollback(tx);
        http_reply_errorf(req, 409, "invalid_state",
                          "The instance is %s: keys are made for active instances only.",
                          i.state);
        goto out;
    }
    store_stmt *q;
    if ((rc = store_query(tx, "SELECT doc FROM plans WHERE id = ?", &q, "s", i.plan_id)))
        goto store_fail;
    if (store_step(q) == STORE_ROW)
        plan_doc = json_loads(store_col_text(q, 0), 0, NULL);
    store_done(q);
    if (!json_is_true(json_object_get(plan_doc, "bindable"))) {
        store_rollback(tx);
        rc_field_error(req, "source", "The instance's plan is not bindable.");
        goto out;
    }
    if (!rc_check_parameters(req, plan_doc, "service_binding", "create", params)) {
        store_rollback(tx);
        goto out;
    }
    if (params && !(params_text = json_dumps(params, JSON_COMPACT))) {
        rc = OSB_E_NOMEM;
        goto store_fail;
    }
    char guid[37], crn[700], op_id[37];
    int64_t now = time_now_ms();
    uuid_v7(guid);
    snprintf(crn, sizeof crn, "crn:v1:osbill:public:%s:%s:a/%s:%s:resource-key:%s",
             i.service_name, i.region, i.account_id, i.guid, guid);
    if ((rc = store_exec(tx,
                         "INSERT INTO resource_keys (guid, crn, account_id, instance_id, name,"
                         " role, parameters, state, last_operation, created_ms, updated_ms)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, 'provisioning', ?, ?, ?)",
                         "ssssssssii", guid, crn, i.account_id, i.guid,
                         json_string_value(jname), role, params_text,
                         "{\"type\":\"create\",\"state\":\"in progress\",\"async\":false,"
                         "\"description\":\"\"}",
                         now, now)))
        goto store_fail;
    rc_new_op n = {.kind = "bind", .instance_id = i.guid, .key_id = guid, .initiator = p.iam_id};
    rc = rc_insert_op(tx, &n, op_id);
    if (rc == OSB_E_CONFLICT) {
        store_rollback(tx);
        rc_busy(req);
        goto out;
    }
    if (rc)
        goto store_fail;
    if ((rc = store_commit(tx))) {
        tx = NULL;
        goto store_fail;
    }
    rc_wait_or_accept(c, req, op_id, RC_KEY, guid, 201);
    goto out;

store_fail:
    if (tx)
        store_rollback(tx);
    http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
out:
    json_decref(plan_doc);
    free(params_text);
    json_decref(body);
}

/* ---------------------------------------------------------------- read, list */

static void key_get(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    store_tx *tx;
    key_ref k;
    if (!iam_authenticate(c->iam, req, &p) || !rc_begin(c, req, false, &tx))
        return;
    int rc = find_key(tx, req->params[0], &p, &k);
    iam_resource r = {.account_id = k.account_id, .resource_type = "resource-key",
                      .resource = k.guid};
    json_t *j = rc ? NULL
                   : rc_key_json(c, tx, k.guid, strcmp(p.account_id, k.account_id) == 0);
    store_rollback(tx);
    if (rc)
        not_found(req, rc, "key");
    else if (!j)
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
    else if (!iam_decide(c->iam, &p, "resource-controller.key.read", &r))
        http_reply_errorf(req, 403, "forbidden", "%s is not allowed to read this key.", p.iam_id);
    else
        http_reply_json(req, 200, j);
    json_decref(j);
}

static json_t *key_row(rc_controller *c, store_tx *tx, const char *guid)
{
    return rc_key_json(c, tx, guid, false); /* lists never carry credentials */
}

static void key_list(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    iam_resource r = {.account_id = p.account_id, .resource_type = "resource-key"};
    if (!iam_decide(c->iam, &p, "resource-controller.key.read", &r)) {
        http_reply_errorf(req, 403, "forbidden", "%s is not allowed to list keys here.",
                          p.iam_id);
        return;
    }
    const char *source = http_query(req, "source"), *state = http_query(req, "state");
    rc_page pg = {.path = "/v2/resource_keys", .filters = {{"source", source}, {"state", state}}};
    store_tx *tx;
    store_stmt *q = NULL;
    if (!rc_page_parse(req, &pg) || !rc_begin(c, req, false, &tx))
        return;
    int rc = store_query(tx,
                         "SELECT k.guid, k.rowid FROM resource_keys k JOIN resource_instances i"
                         " ON i.guid = k.instance_id WHERE k.account_id = ? AND (? IS NULL OR"
                         " i.guid = ? OR i.crn = ?) AND (k.state = ? OR (? IS NULL AND k.state"
                         " != 'removed')) AND k.rowid > ? ORDER BY k.rowid LIMIT ?",
                         &q, "ssssssii", p.account_id, source, source, source, state, state,
                         pg.after, pg.limit + 1);
    rc_page_reply(c, req, tx, q, rc, &pg, key_row);
}

/* ---------------------------------------------------------------- delete */

static void key_delete(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    store_tx *tx;
    key_ref k;
    if (!iam_authenticate(c->iam, req, &p) || !rc_begin(c, req, true, &tx))
        return;
    int rc = find_key(tx, req->params[0], &p, &k);
    if (rc) {
        store_rollback(tx);
        not_found(req, rc, "key");
        return;
    }
    iam_resource r = {.account_id = k.account_id, .resource_type = "resource-key",
                      .resource = k.guid};
    if (!iam_decide(c->iam, &p, "resource-controller.key.delete", &r)) {
        store_rollback(tx);
        http_reply_errorf(req, 403, "forbidden", "%s is not allowed to delete this key.",
                          p.iam_id);
        return;
    }
    if (strcmp(k.state, "removed") == 0) {
        store_rollback(tx);
        http_reply_error(req, 410, "gone", "The key has been deleted.", NULL);
        return;
    }
    char op_id[37];
    bool local = strcmp(k.state, "failed") == 0; /* nothing bound at the broker any more */
    if (local) {
        /* ... unless its orphan mitigation still runs: then it waits for that. */
        store_stmt *q;
        bool running = false;
        if (!(rc = store_query(tx,
                               "SELECT 1 FROM rc_operations WHERE key_id = ? AND state IN"
                               " ('pending', 'in_progress')",
                               &q, "s", k.guid))) {
            running = store_step(q) == STORE_ROW;
            store_done(q);
        }
        if (!rc && running)
            rc = OSB_E_CONFLICT;
        if (!rc)
            rc = store_exec(tx,
                            "UPDATE resource_keys SET state = 'removed', credentials = NULL,"
                            " deleted_ms = ?, updated_ms = ? WHERE guid = ?",
                            "iis", time_now_ms(), time_now_ms(), k.guid);
    } else {
        rc_new_op n = {.kind = "unbind", .instance_id = k.instance_id, .key_id = k.guid,
                       .initiator = p.iam_id};
        rc = rc_insert_op(tx, &n, op_id);
        if (!rc)
            rc = store_exec(tx,
                            "UPDATE resource_keys SET state = 'removing', updated_ms = ? WHERE"
                            " guid = ?",
                            "is", time_now_ms(), k.guid);
        if (!rc)
            rc = rc_set_last_operation(tx, "resource_keys", k.guid, "delete", "in progress",
                                       false, "");
    }
    if (rc == OSB_E_CONFLICT) {
        store_rollback(tx);
        rc_busy(req);
        return;
    }
    rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    if (rc) {
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        return;
    }
    if (local)
        http_reply(req, 204, NULL, NULL, 0);
    else
        rc_wait_or_accept(c, req, op_id, RC_KEY_BARE, k.guid, 204);
}

void rc_key_routes(rc_controller *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v2/resource_keys", P, key_create, c);
    rc |= http_route(r, HTTP_GET, "/v2/resource_keys", P, key_list, c);
    rc |= http_route(r, HTTP_GET, "/v2/resource_keys/:id", P, key_get, c);
    rc |= http_route(r, HTTP_DELETE, "/v2/resource_keys/:id", P, key_delete, c);
    if (rc)
        log_msg(LOG_ERROR, "controller: cannot register the key routes");
}
