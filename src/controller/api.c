/* controller API: /v2/resource_instances in the IBM Cloud resource controller's shapes.
 * Handlers check the caller and the catalog, record the instance and its operation in one
 * transaction, and hand the broker call to the driver (controller.c); the request waits for
 * it without a worker thread (http_defer) and gets 202 when the broker takes longer. */
#include "controller/controller_int.h"

#include "base/jsonschema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIMIT 100

/* ---------------------------------------------------------------- instance JSON */

json_t *rc_json_col(store_stmt *q, int col)
{
    const char *s = store_col_text(q, col);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    return j ? j : json_null();
}

json_t *rc_instance_json(store_tx *tx, const char *guid)
{
    store_stmt *q;
    json_t *j = NULL;
    if (store_query(tx,
                    "SELECT guid, crn, account_id, resource_group_id, name, offering_id,"
                    " plan_id, region, parameters, state, dashboard_url, last_operation,"
                    " created_ms, updated_ms, deleted_ms FROM resource_instances WHERE"
                    " guid = ?",
                    &q, "s", guid))
        return NULL;
    if (store_step(q) == STORE_ROW) {
        char url[96];
        snprintf(url, sizeof url, "/v2/resource_instances/%s", store_col_text(q, 0));
        j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:o,"
                      "s:o}",
                      "id", store_col_text(q, 1), "guid", store_col_text(q, 0), "crn",
                      store_col_text(q, 1), "url", url, "account_id", store_col_text(q, 2),
                      "resource_group_id", store_col_text(q, 3), "name", store_col_text(q, 4),
                      "resource_id", store_col_text(q, 5), "resource_plan_id", store_col_text(q, 6),
                      "region_id", store_col_text(q, 7), "target", store_col_text(q, 7),
                      "parameters", rc_json_col(q, 8), "state", store_col_text(q, 9),
                      "dashboard_url", store_col_json_text(q, 10), "last_operation", rc_json_col(q, 11),
                      "created_at", store_col_json_time(q, 12), "updated_at", store_col_json_time(q, 13),
                      "deleted_at", store_col_json_time(q, 14));
    }
    store_done(q);
    if (j && strcmp(json_string_value(json_object_get(j, "state")), "removed") != 0) {
        json_t *hist = json_array();
        if (!store_query(tx,
                         "SELECT plan_id, from_ms FROM instance_plan_history WHERE"
                         " instance_id = ? ORDER BY from_ms",
                         &q, "s", guid)) {
            while (store_step(q) == STORE_ROW)
                json_array_append_new(hist, json_pack("{s:s,s:o}", "resource_plan_id",
                                                      store_col_text(q, 0), "from",
                                                      store_col_json_time(q, 1)));
            store_done(q);
        }
        json_object_set_new(j, "plan_history", hist);
    }
    if (j) {
        json_t *hist = json_array();
        if (!store_query(tx,
                         "SELECT state, from_ms FROM instance_state_history WHERE"
                         " instance_id = ? ORDER BY from_ms, rowid",
                         &q, "s", guid)) {
            while (store_step(q) == STORE_ROW)
                json_array_append_new(hist, json_pack("{s:s,s:o}", "state", store_col_text(q, 0),
                                                      "from", store_col_json_time(q, 1)));
            store_done(q);
        }
        json_object_set_new(j, "state_history", hist);
    }
    return j;
}

void rc_reply(rc_controller *c, http_req *req, rc_object obj, const char *guid, int status)
{
    if (status == 204) {
        http_reply(req, 204, NULL, NULL, 0);
        return;
    }
    store_tx *tx;
    json_t *j = NULL;
    if (!store_begin(c->db, false, &tx)) {
        j = obj == RC_INSTANCE ? rc_instance_json(tx, guid)
                               : rc_key_json(c, tx, guid, obj == RC_KEY);
        store_rollback(tx);
    }
    if (!j) {
        http_reply_error(req, 500, "internal_error", "The resource cannot be read.", NULL);
        return;
    }
    if (status == 202)
        http_add_header(req, "Retry-After", "1");
    http_reply_json(req, status, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- helpers */

bool rc_check_parameters(http_req *req, const json_t *plan_doc, const char *object,
                         const char *action, const json_t *params)
{
    const json_t *schema = json_object_get(
        json_object_get(json_object_get(json_object_get(plan_doc, "schemas"), object), action),
        "parameters");
    if (!json_is_object(schema) || !params)
        return true;
    jschema *js = NULL;
    char err[512];
    if (jschema_compile(schema, &js, err, sizeof err)) {
        /* The catalog validated it on entry: a schema that no longer compiles checks nothing
         * here; the broker still validates. */
        log_msg(LOG_WARN, "controller: a plan's %s.%s schema does not compile: %s", object, action,
                err);
        return true;
    }
    int v = jschema_validate(js, params, err, sizeof err);
    jschema_free(js);
    if (v == 0)
        return true;
    if (v < 0)
        snprintf(err, sizeof err, "(root): too complex to validate");
    char msg[700];
    snprintf(msg, sizeof msg, "'parameters' do not match the plan's schema: %s", err);
    http_reply_error(req, 400, "invalid_field", msg, "parameters");
    return false;
}

void rc_field_error(http_req *req, const char *field, const char *message)
{
    http_reply_error(req, 400, "invalid_field", message, field);
}

bool rc_begin(rc_controller *c, http_req *req, bool write, store_tx **tx)
{
    if (store_begin(c->db, write, tx) == 0)
        return true;
    http_reply_error(req, 503, "unavailable", "The store is unavailable.", NULL);
    return false;
}

/* The instance a request names (guid or CRN, decoded by the router), if the caller's account
 * owns it (or the caller is the operator): existence does not leak across accounts. */
int rc_find_instance(store_tx *tx, const char *id, const iam_principal *p, rc_inst_ref *out)
{
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT i.guid, i.account_id, i.state, i.offering_id, o.name,"
                         " i.plan_id, i.region, i.broker_id, i.crn, o.visibility FROM"
                         " resource_instances i JOIN offerings o ON o.id = i.offering_id"
                         " WHERE i.guid = ? OR i.crn = ?",
                         &q, "ss", id, id);
    if (rc)
        return rc;
    rc = OSB_E_NOTFOUND;
    if (store_step(q) == STORE_ROW) {
#define COL(i, dst)                                                                                \
    snprintf(dst, sizeof dst, "%s", store_col_text(q, i) ? store_col_text(q, i) : "")
        COL(0, out->guid);
        COL(1, out->account_id);
        COL(2, out->state);
        COL(3, out->offering_id);
        COL(4, out->service_name);
        COL(5, out->plan_id);
        COL(6, out->region);
        COL(7, out->broker_id);
        COL(8, out->crn);
        COL(9, out->visibility);
#undef COL
        if (p->operator|| strcmp(p->account_id, out->account_id) == 0)
            rc = 0;
    }
    store_done(q);
    return rc;
}

bool rc_allowed(rc_controller *c, http_req *req, const iam_principal *p, const char *action,
                const rc_inst_ref *i)
{
    iam_resource r = {.account_id = i->account_id,
                      .service_name = i->service_name,
                      .resource_type = "resource-instance",
                      .resource = i->guid};
    if (iam_decide(c->iam, p, action, &r))
        return true;
    http_reply_errorf(req, 403, "forbidden", "%s is not allowed to %s here.", p->iam_id, action);
    return false;
}

static bool valid_group(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

bool rc_account_suspended(store_tx *tx, const char *account_id)
{
    store_stmt *q;
    bool s = false;
    if (store_query(tx, "SELECT state = 'suspended' FROM accounts WHERE id = ?", &q, "s",
                    account_id))
        return false;
    if (store_step(q) == STORE_ROW)
        s = store_col_int(q, 0) != 0;
    store_done(q);
    return s;
}

/* ---------------------------------------------------------------- create */

/* A new instance and its create operation, written through the group commit. */
typedef struct {
    rc_write w;
    char guid[37], op_id[37], crn[512], account[64], group[64], offering[72], plan[72];
    char region[40], broker[64], iam_id[130];
    char *name, *params;
    int64_t max_polling_s;
} create_unit;

static int create_work(store_tx *tx, void *ud)
{
    create_unit *u = ud;
    int64_t now = time_now_ms();
    int rc;
    if ((rc = store_exec(tx,
                         "INSERT INTO resource_instances (guid, crn, account_id,"
                         " resource_group_id, name, offering_id, plan_id, region, broker_id,"
                         " parameters, state, last_operation, created_ms, updated_ms) VALUES"
                         " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'provisioning', ?, ?, ?)",
                         "sssssssssssii", u->guid, u->crn, u->account, u->group, u->name,
                         u->offering, u->plan, u->region, u->broker, u->params,
                         "{\"type\":\"create\",\"state\":\"in progress\",\"async\":false,"
                         "\"description\":\"\"}",
                         now, now)) ||
        (rc = store_exec(tx,
                         "INSERT INTO instance_plan_history (instance_id, plan_id, from_ms)"
                         " VALUES (?, ?, ?)",
                         "ssi", u->guid, u->plan, now)))
        return rc;
    return store_exec(tx,
                      "INSERT INTO rc_operations (id, kind, instance_id, initiator, state,"
                      " next_at_ms, deadline_ms, created_ms, updated_ms) VALUES (?, 'create', ?,"
                      " ?, 'pending', ?, ?, ?, ?)",
                      "sssiiii", u->op_id, u->guid, u->iam_id, now, now + u->max_polling_s * 1000,
                      now, now);
}

static void create_then(rc_write *w, int rc)
{
    create_unit *u = (create_unit *)w;
    if (rc)
        rc_write_fail(w, 500, "internal_error", "The store failed.");
    else
        rc_write_wait(w, u->op_id, RC_INSTANCE, u->guid, 201);
    free(u->name);
    free(u->params);
    free(u);
}

static void instance_create(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    store_tx *tx = NULL;
    /* One read transaction for the whole check: the token's, the catalog's and the
     * account's reads share one snapshot (each read transaction after a commit starts from
     * a cold page cache). */
    if (!rc_begin(c, req, false, &tx))
        return;
    if (!iam_authenticate(c->iam, req, &p)) {
        store_rollback(tx);
        return;
    }
    json_t *body = http_json_body(req);
    if (!body) {
        store_rollback(tx);
        return;
    }
    const json_t *jname = json_object_get(body, "name");
    const char *name = json_string_value(jname);
    const char *region = json_string_value(json_object_get(body, "target"));
    const char *plan_id = json_string_value(json_object_get(body, "resource_plan_id"));
    const json_t *jgroup = json_object_get(body, "resource_group");
    const char *group = jgroup ? json_string_value(jgroup) : "default";
    json_t *params = json_object_get(body, "parameters");
    catalog_offering o = {0};
    json_t *plan_doc = NULL;
    char *params_text = NULL;
    int rc = 0;

    if (!catalog_valid_text(jname, RC_MAX_NAME, false)) {
        rc_field_error(req, "name", "'name' must be text of 1 to 180 characters.");
        goto out;
    }
    if (!region || !catalog_valid_region(region)) {
        rc_field_error(req, "target", "'target' must name a region.");
        goto out;
    }
    if (!plan_id || !catalog_valid_osb_id(plan_id)) {
        rc_field_error(req, "resource_plan_id", "'resource_plan_id' must name a plan.");
        goto out;
    }
    if (!group || !valid_group(group)) {
        rc_field_error(req, "resource_group", "'resource_group' must be a resource group id.");
        goto out;
    }
    if (params && !json_is_object(params)) {
        rc_field_error(req, "parameters", "'parameters' must be an object.");
        goto out;
    }
    if (params && !(params_text = json_dumps(params, JSON_COMPACT))) {
        http_reply_error(req, 500, "internal_error", "Out of memory.", NULL);
        goto out;
    }

    /* The plan, its offering as the caller may see it, and a deployment in the region. */
    char offering_id[72] = "", plan_state[16] = "";
    bool published = false;
    int64_t max_polling_s = RC_DEFAULT_MAX_POLL_S;
    store_stmt *q;
    if ((rc = store_query(tx, "SELECT offering_id, state, published, doc FROM plans WHERE id = ?",
                          &q, "s", plan_id)))
        goto store_fail;
    if (store_step(q) == STORE_ROW) {
        snprintf(offering_id, sizeof offering_id, "%s", store_col_text(q, 0));
        snprintf(plan_state, sizeof plan_state, "%s", store_col_text(q, 1));
        published = store_col_int(q, 2) != 0;
        plan_doc = json_loads(store_col_text(q, 3), 0, NULL);
        json_int_t mpd = json_integer_value(json_object_get(plan_doc, "maximum_polling_duration"));
        if (mpd > 0)
            max_polling_s = mpd;
    }
    store_done(q);
    rc = offering_id[0] ? catalog_offering_load(tx, offering_id, &o) : OSB_E_NOTFOUND;
    if (rc && rc != OSB_E_NOTFOUND)
        goto store_fail;
    if (rc || !catalog_visible(tx, &o, &p)) {
        rc_field_error(req, "resource_plan_id", "No such plan.");
        goto out;
    }
    iam_resource r = {
        .account_id = p.account_id, .service_name = o.name, .resource_type = "resource-instance"};
    if (!iam_decide(c->iam, &p, "resource-controller.instance.create", &r)) {
        http_reply_errorf(req, 403, "forbidden", "%s is not allowed to create instances of %s.",
                          p.iam_id, o.name);
        goto out;
    }
    if (strcmp(plan_state, "active") != 0 || !(published || strcmp(o.visibility, "limited") == 0)) {
        rc_field_error(req, "resource_plan_id", "The plan is not available for new instances.");
        goto out;
    }
    if (!rc_check_parameters(req, plan_doc, "service_instance", "create", params))
        goto out;
    if (rc_account_suspended(tx, p.account_id)) {
        http_reply_error(req, 403, "account_suspended",
                         "The account is suspended: it cannot create instances.", NULL);
        goto out;
    }
    char broker_id[64] = "";
    if ((rc = store_query(tx,
                          "SELECT broker_id FROM deployments WHERE plan_id = ? AND"
                          " region = ?",
                          &q, "ss", plan_id, region)))
        goto store_fail;
    if (store_step(q) == STORE_ROW)
        snprintf(broker_id, sizeof broker_id, "%s", store_col_text(q, 0));
    store_done(q);
    if (!broker_id[0]) {
        rc_field_error(req, "target", "The plan is not offered in this region.");
        goto out;
    }

    store_rollback(tx);
    tx = NULL;
    create_unit *u = calloc(1, sizeof *u);
    if (!u || !(u->name = strdup(name))) {
        free(u);
        rc = OSB_E_NOMEM;
        goto store_fail;
    }
    u->w.c = c;
    u->w.req = req;
    uuid_v7(u->guid);
    uuid_v7(u->op_id);
    snprintf(u->crn, sizeof u->crn, "crn:v1:osbill:public:%s:%s:a/%s:%s::", o.name, region,
             p.account_id, u->guid);
    snprintf(u->account, sizeof u->account, "%s", p.account_id);
    snprintf(u->group, sizeof u->group, "%s", group);
    snprintf(u->offering, sizeof u->offering, "%s", o.id);
    snprintf(u->plan, sizeof u->plan, "%s", plan_id);
    snprintf(u->region, sizeof u->region, "%s", region);
    snprintf(u->broker, sizeof u->broker, "%s", broker_id);
    snprintf(u->iam_id, sizeof u->iam_id, "%s", p.iam_id);
    u->params = params_text;
    params_text = NULL;
    u->max_polling_s = max_polling_s;
    rc_submit(&u->w, create_work, create_then);
    goto out;

store_fail:
    http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
out:
    if (tx)
        store_rollback(tx);
    catalog_offering_free(&o);
    json_decref(plan_doc);
    free(params_text);
    json_decref(body);
}

/* ---------------------------------------------------------------- read, list */

static void instance_get(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    store_tx *tx;
    rc_inst_ref i;
    if (!iam_authenticate(c->iam, req, &p) || !rc_begin(c, req, false, &tx))
        return;
    int rc = rc_find_instance(tx, req->params[0], &p, &i);
    json_t *j = rc ? NULL : rc_instance_json(tx, i.guid);
    store_rollback(tx);
    if (rc == OSB_E_NOTFOUND)
        http_reply_error(req, 404, "not_found", "No such instance.", NULL);
    else if (rc || !j)
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
    else if (rc_allowed(c, req, &p, "resource-controller.instance.read", &i))
        http_reply_json(req, 200, j);
    json_decref(j);
}

bool rc_page_parse(http_req *req, rc_page *pg)
{
    const char *ls = http_query(req, "limit"), *start = http_query(req, "start");
    pg->limit = MAX_LIMIT;
    pg->after = 0;
    if (ls && (str_to_i64(ls, false, &pg->limit) || pg->limit < 1 || pg->limit > MAX_LIMIT)) {
        rc_field_error(req, "limit", "'limit' must be 1 to 100.");
        return false;
    }
    if (start && (str_to_i64(start, false, &pg->after) || pg->after < 0)) {
        rc_field_error(req, "start", "'start' must be a next_url's start.");
        return false;
    }
    return true;
}

void rc_page_reply(rc_controller *c, http_req *req, store_tx *tx, store_stmt *q, int rc,
                   const rc_page *pg,
                   json_t *(*row)(rc_controller *c, store_tx *tx, const char *guid))
{
    json_t *rows = json_array();
    int64_t last = 0;
    bool more = false;
    if (!rc) {
        int s;
        while ((s = store_step(q)) == STORE_ROW) {
            if ((int64_t)json_array_size(rows) == pg->limit) {
                more = true;
                break;
            }
            json_t *j = row(c, tx, store_col_text(q, 0));
            if (!j) {
                rc = OSB_E_STORE;
                break;
            }
            json_array_append_new(rows, j);
            last = store_col_int(q, 1);
        }
        if (s < 0)
            rc = s;
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        json_decref(rows);
        return;
    }
    http_reply_page(req, rows, more, pg->path, pg->limit, last, pg->filters,
                    ARRAY_LEN(pg->filters));
}

static json_t *instance_row(rc_controller *c, store_tx *tx, const char *guid)
{
    (void)c;
    return rc_instance_json(tx, guid);
}

static void instance_list(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    iam_resource r = {.account_id = p.account_id, .resource_type = "resource-instance"};
    if (!iam_decide(c->iam, &p, "resource-controller.instance.read", &r)) {
        http_reply_errorf(req, 403, "forbidden", "%s is not allowed to list instances here.",
                          p.iam_id);
        return;
    }
    const char *plan = http_query(req, "resource_plan_id"), *state = http_query(req, "state");
    const char *offering = http_query(req, "resource_id"), *name = http_query(req, "name");
    const char *group = http_query(req, "resource_group_id");
    rc_page pg = {.path = "/v2/resource_instances",
                  .filters = {{"resource_plan_id", plan},
                              {"state", state},
                              {"resource_id", offering},
                              {"name", name},
                              {"resource_group_id", group}}};
    store_tx *tx;
    store_stmt *q = NULL;
    if (!rc_page_parse(req, &pg) || !rc_begin(c, req, false, &tx))
        return;
    int rc = store_query(tx,
                         "SELECT guid, rowid FROM resource_instances WHERE account_id = ?1"
                         " AND (?2 IS NULL OR plan_id = ?2) AND (state = ?3 OR (?3 IS NULL AND"
                         " state != 'removed')) AND (?4 IS NULL OR offering_id = ?4) AND (?5 IS"
                         " NULL OR name = ?5) AND (?6 IS NULL OR resource_group_id = ?6) AND"
                         " rowid > ?7 ORDER BY rowid LIMIT ?8",
                         &q, "ssssssii", p.account_id, plan, state, offering, name, group, pg.after,
                         pg.limit + 1);
    rc_page_reply(c, req, tx, q, rc, &pg, instance_row);
}

/* ---------------------------------------------------------------- update */

#define BUSY_MESSAGE                                                                               \
    "Another operation of this instance is in progress; try again when it has finished."

void rc_busy(http_req *req)
{
    http_reply_error(req, 409, "operation_in_progress", BUSY_MESSAGE, NULL);
}

/* PATCH: a new name (the platform's alone), and a plan change or parameters, which go to the
 * broker; the instance keeps its plan until the broker has accepted the change. */
static void instance_update(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    store_tx *tx = NULL;
    rc_inst_ref i;
    json_t *plan_doc = NULL, *old_doc = NULL;
    char *params_text = NULL;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const json_t *jname = json_object_get(body, "name");
    const json_t *jplan = json_object_get(body, "resource_plan_id");
    json_t *params = json_object_get(body, "parameters");
    const char *plan_id = json_string_value(jplan);
    int rc;
    if (jname && !catalog_valid_text(jname, RC_MAX_NAME, false)) {
        rc_field_error(req, "name", "'name' must be text of 1 to 180 characters.");
        goto out;
    }
    if (jplan && (!plan_id || !catalog_valid_osb_id(plan_id))) {
        rc_field_error(req, "resource_plan_id", "'resource_plan_id' must name a plan.");
        goto out;
    }
    if (params && !json_is_object(params)) {
        rc_field_error(req, "parameters", "'parameters' must be an object.");
        goto out;
    }
    if (!jname && !jplan && !params) {
        rc_field_error(req, "name",
                       "Nothing to change: send name, resource_plan_id or parameters.");
        goto out;
    }
    if (!rc_begin(c, req, true, &tx))
        goto out;
    if ((rc = rc_find_instance(tx, req->params[0], &p, &i))) {
        store_rollback(tx);
        if (rc == OSB_E_NOTFOUND)
            http_reply_error(req, 404, "not_found", "No such instance.", NULL);
        else
            http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        goto out;
    }
    if (!rc_allowed(c, req, &p, "resource-controller.instance.update", &i)) {
        store_rollback(tx);
        goto out;
    }
    if (strcmp(i.state, "active") != 0) {
        store_rollback(tx);
        http_reply_errorf(req, strcmp(i.state, "removed") == 0 ? 410 : 409, "invalid_state",
                          "The instance is %s: only an active instance can be changed.", i.state);
        goto out;
    }
    if (jname && (rc = store_exec(tx,
                                  "UPDATE resource_instances SET name = ?, updated_ms = ? WHERE"
                                  " guid = ?",
                                  "sis", json_string_value(jname), time_now_ms(), i.guid)))
        goto store_fail;
    if (plan_id && strcmp(plan_id, i.plan_id) == 0)
        plan_id = NULL; /* the plan it has: no change */
    if (!plan_id && !params) {
        if ((rc = store_commit(tx))) {
            tx = NULL;
            goto store_fail;
        }
        rc_reply(c, req, RC_INSTANCE, i.guid, 200);
        goto out;
    }

    /* The plans: the current one says whether it may change, the new one must be of the same
     * offering, available and served by the same broker in the instance's region. */
    store_stmt *q;
    bool updateable = false;
    int64_t max_polling_s = 0;
    if ((rc = store_query(tx, "SELECT doc FROM plans WHERE id = ?", &q, "s", i.plan_id)))
        goto store_fail;
    if (store_step(q) == STORE_ROW)
        old_doc = json_loads(store_col_text(q, 0), 0, NULL);
    store_done(q);
    if (plan_id) {
        char offering[72] = "", state[16] = "", broker[64] = "";
        bool published = false;
        if ((rc = store_query(tx,
                              "SELECT p.offering_id, p.state, p.published, p.doc, d.broker_id"
                              " FROM plans p LEFT JOIN deployments d ON d.plan_id = p.id AND"
                              " d.region = ? WHERE p.id = ?",
                              &q, "ss", i.region, plan_id)))
            goto store_fail;
        if (store_step(q) == STORE_ROW) {
            snprintf(offering, sizeof offering, "%s", store_col_text(q, 0));
            snprintf(state, sizeof state, "%s", store_col_text(q, 1));
            published = store_col_int(q, 2) != 0;
            plan_doc = json_loads(store_col_text(q, 3), 0, NULL);
            snprintf(broker, sizeof broker, "%s", store_col_text(q, 4) ? store_col_text(q, 4) : "");
        }
        store_done(q);
        updateable = json_is_true(json_object_get(old_doc, "plan_updateable"));
        if (strcmp(offering, i.offering_id) != 0) {
            store_rollback(tx);
            rc_field_error(req, "resource_plan_id", "No such plan of this instance's service.");
            goto out;
        }
        if (!updateable) {
            store_rollback(tx);
            http_reply_error(req, 422, "plan_not_updateable",
                             "The instance's plan cannot be changed to another one.",
                             "resource_plan_id");
            goto out;
        }
        if (strcmp(state, "active") != 0 || !(published || strcmp(i.visibility, "limited") == 0)) {
            store_rollback(tx);
            rc_field_error(req, "resource_plan_id", "The plan is not available.");
            goto out;
        }
        if (strcmp(broker, i.broker_id) != 0) {
            store_rollback(tx);
            rc_field_error(req, "resource_plan_id",
                           "The plan is not served by this instance's broker in its region.");
            goto out;
        }
        json_int_t mpd = json_integer_value(json_object_get(plan_doc, "maximum_polling_duration"));
        if (mpd > 0)
            max_polling_s = mpd;
    }
    if (!rc_check_parameters(req, plan_doc ? plan_doc : old_doc, "service_instance", "update",
                             params)) {
        store_rollback(tx);
        goto out;
    }
    if (params && !(params_text = json_dumps(params, JSON_COMPACT))) {
        rc = OSB_E_NOMEM;
        goto store_fail;
    }
    char op_id[37];
    rc_new_op n = {.kind = "update",
                   .instance_id = i.guid,
                   .initiator = p.iam_id,
                   .prior_state = i.state,
                   .plan_id = plan_id,
                   .parameters = params_text,
                   .max_polling_s = max_polling_s};
    rc = rc_insert_op(tx, &n, op_id);
    if (rc == OSB_E_CONFLICT) {
        store_rollback(tx);
        rc_busy(req);
        goto out;
    }
    if (rc || (rc = rc_set_last_operation(tx, "resource_instances", i.guid, "update", "in progress",
                                          false, "")))
        goto store_fail;
    if ((rc = store_commit(tx))) {
        tx = NULL;
        goto store_fail;
    }
    rc_wait_or_accept(c, req, op_id, RC_INSTANCE, i.guid, 200);
    goto out;

store_fail:
    if (tx)
        store_rollback(tx);
    http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
out:
    json_decref(plan_doc);
    json_decref(old_doc);
    free(params_text);
    json_decref(body);
}

/* ---------------------------------------------------------------- delete */

static bool has_keys(store_tx *tx, const char *guid)
{
    store_stmt *q;
    bool any = false;
    if (store_query(tx,
                    "SELECT 1 FROM resource_keys WHERE instance_id = ? AND state IN"
                    " ('provisioning', 'active', 'removing') LIMIT 1",
                    &q, "s", guid))
        return true;
    any = store_step(q) == STORE_ROW;
    store_done(q);
    return any;
}

/* DELETE's write, through the group commit: checked again inside it, since the instance
 * may have changed since the handler looked. */
typedef struct {
    rc_write w;
    char guid[37], account[64], state[24], iam_id[130], op_id[37];
    bool recursive, reclaim;
    int64_t reclamation_s;
    const char *refusal; /* why work refused: "keys", "changed" */
} delete_unit;

static int delete_work(store_tx *tx, void *ud)
{
    delete_unit *u = ud;
    store_stmt *q;
    char now_state[24] = "";
    int rc =
        store_query(tx, "SELECT state FROM resource_instances WHERE guid = ?", &q, "s", u->guid);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW)
        snprintf(now_state, sizeof now_state, "%s", store_col_text(q, 0));
    store_done(q);
    if (strcmp(now_state, u->state) != 0) {
        u->refusal = "changed";
        return OSB_E_CONFLICT;
    }
    if (!u->recursive && has_keys(tx, u->guid)) {
        u->refusal = "keys";
        return OSB_E_CONFLICT;
    }
    int64_t now = time_now_ms();
    if (u->reclaim) {
        /* Disabled at the broker now, deprovisioned when the period is over. */
        rc_new_op n = {.kind = "disable",
                       .instance_id = u->guid,
                       .initiator = u->iam_id,
                       .prior_state = u->state,
                       .reason = "IBMCLOUD_RECLAMATION_SCHEDULE"};
        char rid[37];
        uuid_v7(rid);
        if ((rc = rc_insert_op(tx, &n, u->op_id)) ||
            (rc = store_exec(tx,
                             "INSERT INTO reclamations (id, instance_id, account_id, state,"
                             " initiator, reclaim_at_ms, created_ms, updated_ms) VALUES (?, ?,"
                             " ?, 'SCHEDULED', ?, ?, ?, ?)",
                             "ssssiii", rid, u->guid, u->account, u->iam_id,
                             now + u->reclamation_s * 1000, now, now)))
            return rc;
        return store_exec(tx,
                          "UPDATE resource_instances SET state = 'pending_reclamation',"
                          " updated_ms = ? WHERE guid = ?",
                          "is", now, u->guid);
    }
    rc_new_op n = {
        .kind = "delete", .instance_id = u->guid, .initiator = u->iam_id, .prior_state = u->state};
    if ((rc = rc_insert_op(tx, &n, u->op_id)))
        return rc;
    return store_exec(tx,
                      "UPDATE resource_instances SET state = 'removing', last_operation = ?,"
                      " updated_ms = ? WHERE guid = ?",
                      "sis",
                      "{\"type\":\"delete\",\"state\":\"in progress\",\"async\":false,"
                      "\"description\":\"\"}",
                      now, u->guid);
}

static void delete_then(rc_write *w, int rc)
{
    delete_unit *u = (delete_unit *)w;
    if (rc == OSB_E_CONFLICT && str_eq(u->refusal, "keys"))
        rc_write_fail(w, 409, "instance_has_keys",
                      "The instance has resource keys: delete them first, or delete with "
                      "recursive=true.");
    else if (rc == OSB_E_CONFLICT)
        rc_write_fail(w, 409, "operation_in_progress", BUSY_MESSAGE);
    else if (rc)
        rc_write_fail(w, 500, "internal_error", "The store failed.");
    else if (u->reclaim)
        rc_write_reply(w, RC_INSTANCE, u->guid, 202);
    else
        rc_write_wait(w, u->op_id, RC_INSTANCE, u->guid, 204);
    free(u);
}

/* DELETE: with keys, only when recursive=true (the delete unbinds them first). An active
 * instance is kept for the reclamation period, disabled, before it is deprovisioned; one
 * that never became active (failed) is deprovisioned at once. */
static void instance_delete(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    store_tx *tx;
    rc_inst_ref i;
    /* The token, the instance and the policies, in one read transaction. */
    if (!rc_begin(c, req, false, &tx))
        return;
    if (!iam_authenticate(c->iam, req, &p)) {
        store_rollback(tx);
        return;
    }
    const char *recursive = http_query(req, "recursive");
    if (recursive && strcmp(recursive, "true") != 0 && strcmp(recursive, "false") != 0) {
        store_rollback(tx);
        rc_field_error(req, "recursive", "'recursive' is true or false.");
        return;
    }
    int rc = rc_find_instance(tx, req->params[0], &p, &i);
    if (rc) {
        store_rollback(tx);
        if (rc == OSB_E_NOTFOUND)
            http_reply_error(req, 404, "not_found", "No such instance.", NULL);
        else
            http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        return;
    }
    bool allowed = rc_allowed(c, req, &p, "resource-controller.instance.delete", &i);
    store_rollback(tx);
    if (!allowed)
        return;
    if (strcmp(i.state, "removed") == 0) {
        http_reply_error(req, 410, "gone", "The instance has been deleted.", NULL);
        return;
    }
    if (strcmp(i.state, "pending_reclamation") == 0) {
        http_reply_error(req, 409, "pending_reclamation",
                         "The instance is already deleted and waits for its reclamation; "
                         "reclaim or restore it through /v1/reclamations.",
                         NULL);
        return;
    }
    delete_unit *u = calloc(1, sizeof *u);
    if (!u) {
        http_reply_error(req, 500, "internal_error", "Out of memory.", NULL);
        return;
    }
    u->w.c = c;
    u->w.req = req;
    snprintf(u->guid, sizeof u->guid, "%s", i.guid);
    snprintf(u->account, sizeof u->account, "%s", i.account_id);
    snprintf(u->state, sizeof u->state, "%s", i.state);
    snprintf(u->iam_id, sizeof u->iam_id, "%s", p.iam_id);
    u->recursive = str_eq(recursive, "true");
    u->reclamation_s = c->opt.reclamation_s;
    u->reclaim = c->opt.reclamation_s > 0 &&
                 (strcmp(i.state, "active") == 0 || strcmp(i.state, "inactive") == 0);
    rc_submit(&u->w, delete_work, delete_then);
}

void rc_api_routes(rc_controller *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v2/resource_instances", P, instance_create, c);
    rc |= http_route(r, HTTP_GET, "/v2/resource_instances", P, instance_list, c);
    rc |= http_route(r, HTTP_GET, "/v2/resource_instances/:id", P, instance_get, c);
    rc |= http_route(r, HTTP_PATCH, "/v2/resource_instances/:id", P, instance_update, c);
    rc |= http_route(r, HTTP_DELETE, "/v2/resource_instances/:id", P, instance_delete, c);
    if (rc)
        log_msg(LOG_ERROR, "controller: cannot register its routes");
}
