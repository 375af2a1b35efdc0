/* sdk instances: PUT, GET, PATCH and DELETE /v2/service_instances/:id and its
 * last_operation, as OSB 2.17 specifies them for the broker side. The provider's callback
 * does the work; this file decides what the request means given the stored state, and
 * stores the outcome before answering. */
#include "sdk/sdk.h"

#include <stdlib.h>
#include <string.h>

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* A body field that must be a non-empty string when present. */
static bool opt_string_field(osb_ctx *x, const json_t *body, const char *k, const char **out)
{
    const json_t *v = json_object_get(body, k);
    *out = NULL;
    if (!v)
        return true;
    if (!json_is_string(v) || json_string_length(v) == 0) {
        http_reply_errorf(x->req, 400, NULL, "%s must be a non-empty string.", k);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool opt_object_field(osb_ctx *x, const json_t *body, const char *k, const json_t **out)
{
    const json_t *v = json_object_get(body, k);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_object(v)) {
        http_reply_errorf(x->req, 400, NULL, "%s must be a JSON object.", k);
        return false;
    }
    *out = v;
    return true;
}

static void set_opt_string(json_t *j, const char *k, const char *v)
{
    if (v)
        json_object_set_new(j, k, json_string(v));
}

static json_t *created_body(const char *dashboard_url, const char *op, const char *metadata)
{
    json_t *j = json_object();
    set_opt_string(j, "dashboard_url", dashboard_url);
    set_opt_string(j, "operation", op);
    json_t *md = sdk_parse_json(metadata);
    if (md)
        json_object_set_new(j, "metadata", md);
    return j;
}

static void reply_created(osb_ctx *x, int status, const char *dashboard_url, const char *op,
                          const char *metadata)
{
    json_t *j = created_body(dashboard_url, op, metadata);
    http_reply_json(x->req, status, j);
    json_decref(j);
}

static const sdk_plan *lookup_plan(osb_ctx *x, const char *service_id, const char *plan_id)
{
    const sdk_service *s = sdk_find_service(&x->b->catalog, service_id);
    if (!s) {
        http_reply_errorf(x->req, 400, NULL, "service_id '%.100s' is not in the catalog.",
                          service_id);
        return NULL;
    }
    const sdk_plan *p = sdk_find_plan(s, plan_id);
    if (!p) {
        http_reply_errorf(x->req, 400, NULL, "plan_id '%.100s' is not a plan of service '%s'.",
                          plan_id, s->name);
        return NULL;
    }
    return p;
}

/* Loads the instance; replies 500 on a storage failure. *found is false when absent. */
static bool load_instance(osb_ctx *x, const char *id, sdk_instance *in, bool *found)
{
    int rc = sdk_instance_get(&x->b->state, id, in);
    *found = rc == 0;
    if (rc && rc != OSB_E_NOTFOUND) {
        http_reply_error(x->req, 500, NULL, "The broker's state cannot be read.", NULL);
        return false;
    }
    return true;
}

static void fill_call_from_plan(osb_call *c, const sdk_plan *p)
{
    c->plan = p->json;
    c->service = p->service->json;
    c->service_id = p->service->id;
    c->plan_id = p->id;
}

static void provision(osb_ctx *x)
{
    const char *id = x->req->params[0];
    json_t *body = http_json_body(x->req);
    if (!body)
        return;
    osb_call c;
    struct osb_call_result res;
    sdk_instance in = {0}, old = {0};
    bool found = false, locked = false;
    sdk_call_init(x, &c, &res, OSB_PROVISION);

    if (!json_is_object(body)) {
        http_reply_error(x->req, 400, NULL, "The body must be a JSON object.", NULL);
        goto out;
    }
    const char *service_id = jstr(body, "service_id"), *plan_id = jstr(body, "plan_id");
    if (!service_id || !*service_id || !plan_id || !*plan_id) {
        http_reply_error(x->req, 400, NULL, "service_id and plan_id are required strings.", NULL);
        goto out;
    }
    const sdk_plan *plan = lookup_plan(x, service_id, plan_id);
    if (!plan)
        goto out;
    const json_t *context, *params, *mi;
    const char *org, *space;
    if (!opt_object_field(x, body, "context", &context) ||
        !opt_string_field(x, body, "organization_guid", &org) ||
        !opt_string_field(x, body, "space_guid", &space) ||
        !sdk_accepts_incomplete(x, &c.accepts_incomplete))
        goto out;
    if (!context && (!org || !space)) {
        http_reply_error(x->req, 400, NULL, "organization_guid and space_guid are required when "
                         "no context is given.", NULL);
        goto out;
    }
    params = json_object_get(body, "parameters");
    if (json_is_null(params))
        params = NULL;
    if (!sdk_check_params(x, plan->instance_create, params, "parameters"))
        goto out;
    mi = json_object_get(body, "maintenance_info");
    if (!sdk_check_maintenance(x, mi, plan))
        goto out;
    if (sdk_busy_or_reply(x, id))
        goto out;
    locked = true;
    if (!load_instance(x, id, &old, &found))
        goto out;
    if (found && old.state != ST_GONE) {
        bool same = str_eq(old.service_id, service_id) && str_eq(old.plan_id, plan_id) &&
                    sdk_json_same(old.parameters, params) &&
                    str_eq(old.organization_guid, org) && str_eq(old.space_guid, space);
        if (old.state == ST_UPDATING || old.state == ST_DELETING) {
            http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR,
                             "The service instance is being changed or deleted.", NULL);
            goto out;
        }
        if (!same) {
            http_reply_error(x->req, 409, NULL, "A service instance with this id exists with "
                             "different attributes.", NULL);
            goto out;
        }
        if (old.state == ST_CREATING) {
            if (!c.accepts_incomplete) {
                http_reply_error(x->req, 422, OSB_ASYNC_REQUIRED, "The service instance is being "
                                 "provisioned asynchronously.", NULL);
                goto out;
            }
            reply_created(x, 202, old.dashboard_url, old.op_id, NULL);
            goto out;
        }
        if (old.state == ST_READY) {
            reply_created(x, 200, old.dashboard_url, NULL, old.metadata);
            goto out;
        }
        /* ST_FAILED: an identical request may try again. */
    }

    fill_call_from_plan(&c, plan);
    c.instance_id = id;
    c.parameters = params;
    c.context = context;
    c.organization_guid = org;
    c.space_guid = space;
    c.maintenance_info = mi;
    if (x->b->cb.provision(&c) != 0 || res.failed) {
        sdk_reply_failure(x, &c);
        goto out;
    }
    if (!sdk_async_allowed(x, &c))
        goto out;

    char *params_text = sdk_dump(params), *context_text = sdk_dump(context),
         *md_text = sdk_dump(res.metadata);
    in = (sdk_instance){
        .id = (char *)id, .service_id = (char *)service_id, .plan_id = (char *)plan_id,
        .parameters = params_text, .context = context_text,
        .organization_guid = (char *)org, .space_guid = (char *)space,
        .maintenance_version = (char *)plan->maintenance_version,
        .dashboard_url = res.dashboard_url, .metadata = md_text,
        .state = res.async ? ST_CREATING : ST_READY, .enabled = true,
        .last_active_ms = time_now_ms(),
        .op_id = res.async ? res.operation : NULL, .op_kind = OSB_PROVISION,
        .op_state = res.async ? OSB_IN_PROGRESS : OSB_SUCCEEDED,
        .op_started_ms = time_now_ms(),
    };
    sdk_commit_reply(x, &c, SDK_PUT_INSTANCE, &in, NULL, res.async ? 202 : 201,
                     created_body(res.dashboard_url, res.async ? res.operation : NULL, md_text),
                     id);
    locked = false;
    free(params_text);
    free(context_text);
    free(md_text);
out:
    if (locked)
        sdk_busy_release(x->b, id);
    sdk_instance_free(&old);
    sdk_call_clear(&c);
    json_decref(body);
}

/* ---------------------------------------------------------------- GET (fetch) */

static void fetch(osb_ctx *x)
{
    const char *id = x->req->params[0];
    const char *qs, *qp;
    sdk_instance in;
    bool found;
    if (!sdk_query_optional(x, "service_id", &qs) || !sdk_query_optional(x, "plan_id", &qp))
        return;
    if (!load_instance(x, id, &in, &found))
        return;
    osb_call c;
    struct osb_call_result res;
    sdk_call_init(x, &c, &res, OSB_FETCH_INSTANCE);
    const sdk_service *svc = found ? sdk_find_service(&x->b->catalog, in.service_id) : NULL;
    const sdk_plan *plan = svc ? sdk_find_plan(svc, in.plan_id) : NULL;
    if (!found || in.state == ST_GONE || in.state == ST_FAILED || in.state == ST_CREATING) {
        http_reply_error(x->req, 404, NULL, found && in.state == ST_CREATING
                                                ? "The service instance is still being provisioned."
                                                : "No such service instance.", NULL);
        goto out;
    }
    if (in.state == ST_UPDATING) {
        http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR,
                         "The service instance is being updated.", NULL);
        goto out;
    }
    if (!svc || !plan) {
        http_reply_error(x->req, 500, NULL, "The instance's plan is no longer in the catalog.",
                         NULL);
        goto out;
    }
    if (!svc->instances_retrievable) {
        http_reply_error(x->req, 400, NULL, "Instances of this service are not retrievable.", NULL);
        goto out;
    }
    if (x->b->cb.fetch_instance) {
        fill_call_from_plan(&c, plan);
        c.instance_id = id;
        json_t *params = sdk_parse_json(in.parameters), *ctx = sdk_parse_json(in.context);
        c.parameters = params;
        c.context = ctx;
        c.enabled = in.enabled;
        int rc = x->b->cb.fetch_instance(&c);
        json_decref(params);
        json_decref(ctx);
        if (rc != 0 || res.failed) {
            sdk_reply_failure(x, &c);
            goto out;
        }
        if (sdk_call_write_state(x->b, &c, NULL, NULL)) {
            http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
            goto out;
        }
    }
    json_t *j = json_pack("{s:s, s:s}", "service_id", in.service_id, "plan_id", in.plan_id);
    const char *dash = res.dashboard_url ? res.dashboard_url : in.dashboard_url;
    set_opt_string(j, "dashboard_url", dash);
    json_t *params = sdk_parse_json(in.parameters);
    json_object_set_new(j, "parameters", params ? params : json_object());
    if (in.maintenance_version)
        json_object_set_new(j, "maintenance_info", json_pack("{s:s}", "version",
                                                             in.maintenance_version));
    if (res.metadata)
        json_object_set(j, "metadata", res.metadata);
    else if (in.metadata)
        json_object_set_new(j, "metadata", sdk_parse_json(in.metadata));
    http_reply_json(x->req, 200, j);
    json_decref(j);
out:
    sdk_call_clear(&c);
    sdk_instance_free(&in);
}

/* ---------------------------------------------------------------- PATCH (update) */

static void update(osb_ctx *x)
{
    const char *id = x->req->params[0];
    json_t *body = http_json_body(x->req);
    if (!body)
        return;
    osb_call c;
    struct osb_call_result res;
    sdk_instance in = {0};
    bool found = false, locked = false;
    char *params_text = NULL, *context_text = NULL;
    sdk_call_init(x, &c, &res, OSB_UPDATE);

    if (!json_is_object(body)) {
        http_reply_error(x->req, 400, NULL, "The body must be a JSON object.", NULL);
        goto out;
    }
    const char *service_id = jstr(body, "service_id");
    if (!service_id || !*service_id) {
        http_reply_error(x->req, 400, NULL, "service_id is a required string.", NULL);
        goto out;
    }
    const json_t *pv = json_object_get(body, "plan_id");
    if (pv && (!json_is_string(pv) || json_string_length(pv) == 0)) {
        http_reply_error(x->req, 400, NULL, "plan_id must be a non-empty string.", NULL);
        goto out;
    }
    const json_t *context, *prev, *params = json_object_get(body, "parameters");
    if (json_is_null(params))
        params = NULL;
    if (!opt_object_field(x, body, "context", &context) ||
        !opt_object_field(x, body, "previous_values", &prev) ||
        !sdk_accepts_incomplete(x, &c.accepts_incomplete))
        goto out;
    if (params && !json_is_object(params)) {
        http_reply_error(x->req, 400, NULL, "parameters must be a JSON object.", NULL);
        goto out;
    }
    if (sdk_busy_or_reply(x, id))
        goto out;
    locked = true;
    if (!load_instance(x, id, &in, &found))
        goto out;
    if (!found || in.state == ST_GONE || in.state == ST_FAILED) {
        http_reply_error(x->req, 404, NULL, "No such service instance.", NULL);
        goto out;
    }
    if (in.state != ST_READY) {
        http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR, in.state == ST_CREATING
                         ? "The service instance is still being provisioned."
                         : "Another operation on this service instance is in progress.", NULL);
        goto out;
    }
    if (strcmp(service_id, in.service_id) != 0) {
        http_reply_error(x->req, 400, NULL, "service_id does not match the service instance.",
                         NULL);
        goto out;
    }
    const char *plan_id = pv ? json_string_value(pv) : in.plan_id;
    const sdk_plan *cur = lookup_plan(x, in.service_id, in.plan_id);
    const sdk_plan *plan = cur ? lookup_plan(x, service_id, plan_id) : NULL;
    if (!plan)
        goto out;
    bool plan_change = strcmp(plan_id, in.plan_id) != 0;
    if (plan_change && !cur->plan_updateable) {
        http_reply_errorf(x->req, 422, NULL, "The plan of this service instance cannot be "
                          "changed from '%s'.", cur->name);
        goto out;
    }
    const json_t *mi = json_object_get(body, "maintenance_info");
    if (!sdk_check_maintenance(x, mi, plan))
        goto out;
    const jschema *schema = plan->instance_update ? plan->instance_update : NULL;
    if (params && !sdk_check_params(x, schema, params, "parameters"))
        goto out;
    const sdk_service *svc = plan->service;
    bool mi_change = mi && !str_eq(in.maintenance_version, plan->maintenance_version);
    bool ctx_change = context && svc->allow_context_updates && !sdk_json_same(in.context, context);
    bool params_change = params && !sdk_json_same(in.parameters, params);
    if (!plan_change && !mi_change && !ctx_change && !params_change) {
        http_reply(x->req, 200, "application/json", "{}", 2);
        goto out;
    }
    if (!x->b->cb.update) {
        http_reply_error(x->req, 422, NULL, "This service does not support updates.", NULL);
        goto out;
    }
    json_t *old_params = sdk_parse_json(in.parameters);
    fill_call_from_plan(&c, plan);
    c.instance_id = id;
    c.previous_plan_id = in.plan_id;
    c.parameters = params ? params : old_params;
    c.context = context;
    c.previous_values = prev;
    c.maintenance_info = mi;
    c.enabled = in.enabled;
    int rc = x->b->cb.update(&c);
    json_decref(old_params);
    if (rc != 0 || res.failed) {
        sdk_reply_failure(x, &c);
        goto out;
    }
    if (!sdk_async_allowed(x, &c))
        goto out;
    params_text = params ? sdk_dump(params) : NULL;
    context_text = ctx_change ? sdk_dump(context) : NULL;
    if (res.async) {
        in.state = ST_UPDATING;
        free(in.pending_plan_id);
        free(in.pending_parameters);
        free(in.pending_maintenance_version);
        in.pending_plan_id = strdup(plan_id);
        in.pending_parameters = params_text ? strdup(params_text) : NULL;
        in.pending_maintenance_version =
            plan->maintenance_version ? strdup(plan->maintenance_version) : NULL;
        free(in.op_id);
        in.op_id = strdup(res.operation);
    } else {
        char *new_plan = strdup(plan_id); /* plan_id may point into in.plan_id */
        free(in.prev_plan_id);
        in.prev_plan_id = plan_change ? in.plan_id : NULL;
        if (!plan_change)
            free(in.plan_id);
        in.plan_id = new_plan;
        if (params_text) {
            free(in.parameters);
            in.parameters = strdup(params_text);
        }
        free(in.maintenance_version);
        in.maintenance_version = plan->maintenance_version ? strdup(plan->maintenance_version) : NULL;
        free(in.op_id);
        in.op_id = NULL;
    }
    if (context_text) {
        free(in.context);
        in.context = strdup(context_text);
    }
    if (res.dashboard_url) {
        free(in.dashboard_url);
        in.dashboard_url = strdup(res.dashboard_url);
    }
    in.op_kind = OSB_UPDATE;
    in.op_state = res.async ? OSB_IN_PROGRESS : OSB_SUCCEEDED;
    in.op_started_ms = time_now_ms();
    free(in.op_description);
    in.op_description = NULL;
    sdk_commit_reply(x, &c, SDK_PUT_INSTANCE, &in, NULL, res.async ? 202 : 200,
                     created_body(res.dashboard_url, res.async ? res.operation : NULL, NULL), id);
    locked = false;
out:
    if (locked)
        sdk_busy_release(x->b, id);
    free(params_text);
    free(context_text);
    sdk_instance_free(&in);
    sdk_call_clear(&c);
    json_decref(body);
}

/* ---------------------------------------------------------------- DELETE (deprovision) */

static void deprovision(osb_ctx *x)
{
    const char *id = x->req->params[0];
    const char *service_id, *plan_id;
    osb_call c;
    struct osb_call_result res;
    sdk_instance in = {0};
    bool found = false, locked = false;
    sdk_call_init(x, &c, &res, OSB_DEPROVISION);
    if (!sdk_query_required(x, "service_id", &service_id) ||
        !sdk_query_required(x, "plan_id", &plan_id) ||
        !sdk_accepts_incomplete(x, &c.accepts_incomplete))
        goto out;
    const sdk_plan *plan = lookup_plan(x, service_id, plan_id);
    if (!plan)
        goto out;
    if (sdk_busy_or_reply(x, id))
        goto out;
    locked = true;
    if (!load_instance(x, id, &in, &found))
        goto out;
    if (!found || in.state == ST_GONE) {
        http_reply(x->req, 410, "application/json", "{}", 2);
        goto out;
    }
    if (in.state == ST_UPDATING) {
        http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR,
                         "The service instance is being updated.", NULL);
        goto out;
    }
    if (in.state == ST_DELETING) {
        if (!c.accepts_incomplete) {
            http_reply_error(x->req, 422, OSB_ASYNC_REQUIRED,
                             "The service instance is being deleted asynchronously.", NULL);
            goto out;
        }
        reply_created(x, 202, NULL, in.op_id, NULL);
        goto out;
    }
    /* The instance's own plan, not the query's: a plan change may still be settling. */
    const sdk_plan *own = lookup_plan(x, in.service_id, in.plan_id);
    if (!own)
        goto out;
    fill_call_from_plan(&c, own);
    c.instance_id = id;
    c.enabled = in.enabled;
    /* A DELETE during an async create halts it: the provider sees op_kind PROVISION. */
    c.op_kind = in.state == ST_CREATING ? OSB_PROVISION : 0;
    c.operation = in.state == ST_CREATING ? in.op_id : NULL;
    json_t *params = sdk_parse_json(in.parameters), *ctx = sdk_parse_json(in.context);
    c.parameters = params;
    c.context = ctx;
    int rc = x->b->cb.deprovision(&c);
    json_decref(params);
    json_decref(ctx);
    if (rc != 0 || res.failed) {
        sdk_reply_failure(x, &c);
        goto out;
    }
    if (!sdk_async_allowed(x, &c))
        goto out;
    if (!res.async) {
        sdk_commit_reply(x, &c, SDK_DELETE_INSTANCE, &in, NULL, 200, NULL, id);
        locked = false;
        goto out;
    }
    in.state = ST_DELETING;
    free(in.op_id);
    in.op_id = strdup(res.operation);
    in.op_kind = OSB_DEPROVISION;
    in.op_state = OSB_IN_PROGRESS;
    in.op_started_ms = time_now_ms();
    free(in.op_description);
    in.op_description = NULL;
    sdk_commit_reply(x, &c, SDK_PUT_INSTANCE, &in, NULL, 202, created_body(NULL, res.operation, NULL),
                     id);
    locked = false;
out:
    if (locked)
        sdk_busy_release(x->b, id);
    sdk_instance_free(&in);
    sdk_call_clear(&c);
}

/* ---------------------------------------------------------------- operations */

/* Applies a finished operation to the stored instance; res (NULL for a pushed completion)
 * carries the provider's failure flags. */
static void finish_instance_op(sdk_instance *in, osb_op_state st, const char *desc,
                               const struct osb_call_result *res)
{
    in->op_state = st;
    free(in->op_description);
    in->op_description = desc ? strdup(desc) : NULL;
    if (st == OSB_IN_PROGRESS)
        return;
    /* Kept with the outcome, so that every later poll reports the same flags. */
    bool flags = res && res->flags_set;
    in->op_instance_usable = flags ? res->instance_usable : true;
    in->op_update_repeatable = flags ? res->update_repeatable : true;
    switch (in->state) {
    case ST_CREATING:
        in->state = st == OSB_SUCCEEDED ? ST_READY : ST_FAILED;
        break;
    case ST_UPDATING:
        if (st == OSB_SUCCEEDED) {
            if (strcmp(in->plan_id, in->pending_plan_id) != 0) {
                free(in->prev_plan_id);
                in->prev_plan_id = in->plan_id;
            } else {
                free(in->plan_id);
            }
            in->plan_id = in->pending_plan_id;
            in->pending_plan_id = NULL;
            if (in->pending_parameters) {
                free(in->parameters);
                in->parameters = in->pending_parameters;
                in->pending_parameters = NULL;
            }
            free(in->maintenance_version);
            in->maintenance_version = in->pending_maintenance_version;
            in->pending_maintenance_version = NULL;
        }
        free(in->pending_plan_id);
        free(in->pending_parameters);
        free(in->pending_maintenance_version);
        in->pending_plan_id = in->pending_parameters = in->pending_maintenance_version = NULL;
        in->state = ST_READY;
        break;
    case ST_DELETING:
        in->state = st == OSB_SUCCEEDED ? ST_GONE : ST_READY;
        break;
    default:
        break;
    }
}

/* Persists a finished instance operation; a deleted instance's bindings go with it. */
static int finished_work(store_tx *tx, void *ud)
{
    const sdk_instance *in = ud;
    if (in->state == ST_GONE) {
        int rc = sdk_instance_remove(tx, in->id);
        if (rc)
            return rc;
    }
    return sdk_instance_write(tx, in);
}

static void last_operation(osb_ctx *x)
{
    const char *id = x->req->params[0];
    const char *qs, *qp, *qop;
    sdk_instance in = {0};
    bool found = false, locked = false;
    osb_call c;
    struct osb_call_result res;
    sdk_call_init(x, &c, &res, OSB_LAST_OPERATION);
    if (!sdk_query_optional(x, "service_id", &qs) || !sdk_query_optional(x, "plan_id", &qp) ||
        !sdk_query_optional(x, "operation", &qop))
        goto out;
    if (sdk_busy_or_reply(x, id))
        goto out;
    locked = true;
    if (!load_instance(x, id, &in, &found))
        goto out;
    if (!found) {
        http_reply_error(x->req, 404, NULL, "No such service instance.", NULL);
        goto out;
    }
    if (in.state == ST_GONE) {
        http_reply(x->req, 410, "application/json", "{}", 2);
        goto out;
    }
    if (qop && !str_eq(qop, in.op_id)) {
        http_reply_error(x->req, 400, NULL, "No such operation on this service instance.", NULL);
        goto out;
    }
    bool running = in.op_state == OSB_IN_PROGRESS &&
                   (in.state == ST_CREATING || in.state == ST_UPDATING || in.state == ST_DELETING);
    if (running && x->b->cb.last_operation) {
        const sdk_plan *plan = lookup_plan(x, in.service_id,
                                           in.state == ST_UPDATING ? in.pending_plan_id
                                                                   : in.plan_id);
        if (!plan)
            goto out;
        fill_call_from_plan(&c, plan);
        c.instance_id = id;
        c.operation = in.op_id;
        c.op_kind = in.op_kind;
        c.previous_plan_id = in.state == ST_UPDATING ? in.plan_id : NULL;
        c.enabled = in.enabled;
        if (x->b->cb.last_operation(&c) != 0 || res.failed) {
            sdk_reply_failure(x, &c);
            goto out;
        }
        if (res.state_set && res.state != OSB_IN_PROGRESS) {
            osb_call_kind kind = in.op_kind;
            finish_instance_op(&in, res.state, res.state_description, &res);
            if (sdk_call_write_state(x->b, &c, finished_work, &in)) {
                http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
                goto out;
            }
            in.op_kind = kind;
        } else {
            if (sdk_call_write_state(x->b, &c, NULL, NULL)) {
                http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
                goto out;
            }
            if (res.state_description && !str_eq(res.state_description, in.op_description)) {
                free(in.op_description);
                in.op_description = strdup(res.state_description);
            }
        }
    }
    json_t *j = json_pack("{s:s}", "state", sdk_state_name(in.op_state));
    set_opt_string(j, "description", in.op_description);
    if (in.op_state == OSB_FAILED && (in.op_kind == OSB_UPDATE || in.op_kind == OSB_DEPROVISION)) {
        json_object_set_new(j, "instance_usable", json_boolean(in.op_instance_usable));
        if (in.op_kind == OSB_UPDATE)
            json_object_set_new(j, "update_repeatable", json_boolean(in.op_update_repeatable));
    }
    if (res.retry_after > 0 && in.op_state == OSB_IN_PROGRESS) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", res.retry_after);
        http_add_header(x->req, "Retry-After", ra);
    }
    http_reply_json(x->req, 200, j);
    json_decref(j);
out:
    if (locked)
        sdk_busy_release(x->b, id);
    sdk_instance_free(&in);
    sdk_call_clear(&c);
}

int osb_operation_done(osb_broker *b, const char *instance_id, const char *binding_id,
                       osb_op_state state, const char *description)
{
    if (binding_id) {
        return sdk_binding_op_done(b, instance_id, binding_id, state, description);
    }
    sdk_instance in;
    sdk_busy_wait(b, instance_id);
    int rc = sdk_instance_get(&b->state, instance_id, &in);
    if (!rc && (in.op_state != OSB_IN_PROGRESS || in.state == ST_READY || in.state == ST_GONE))
        rc = OSB_E_NOTFOUND;
    if (!rc) {
        finish_instance_op(&in, state, description, NULL);
        rc = store_write(b->state.db, finished_work, &in);
    }
    sdk_instance_free(&in);
    sdk_busy_release(b, instance_id);
    return rc ? -1 : 0;
}

void sdk_instances_routes(osb_broker *b)
{
    int rc = sdk_osb_route(b, HTTP_PUT, "/v2/service_instances/:id", provision, true);
    rc |= sdk_osb_route(b, HTTP_GET, "/v2/service_instances/:id", fetch, true);
    rc |= sdk_osb_route(b, HTTP_PATCH, "/v2/service_instances/:id", update, true);
    rc |= sdk_osb_route(b, HTTP_DELETE, "/v2/service_instances/:id", deprovision, true);
    rc |= sdk_osb_route(b, HTTP_GET, "/v2/service_instances/:id/last_operation", last_operation,
                        true);
    if (rc)
        log_error("libosb: cannot register the instance routes");
}
