/* sdk bindings: PUT, GET and DELETE /v2/service_instances/:id/service_bindings/:bid and its
 * last_operation. Credentials are stored (encrypted) so that an identical PUT and a GET
 * return the very same ones, as OSB requires. */
#include "sdk/sdk.h"

#include <stdlib.h>
#include <string.h>

static void binding_body(json_t *j, const sdk_binding *bd)
{
    json_t *creds = sdk_parse_json(bd->credentials), *md = sdk_parse_json(bd->metadata),
           *extra = sdk_parse_json(bd->extra);
    if (creds)
        json_object_set_new(j, "credentials", creds);
    if (md)
        json_object_set_new(j, "metadata", md);
    if (json_is_object(extra))
        json_object_update(j, extra);
    json_decref(extra);
}

static void reply_binding(osb_ctx *x, int status, const sdk_binding *bd)
{
    json_t *j = json_object();
    binding_body(j, bd);
    http_reply_json(x->req, status, j);
    json_decref(j);
}

static void reply_operation(osb_ctx *x, const char *op)
{
    json_t *j = json_object();
    if (op)
        json_object_set_new(j, "operation", json_string(op));
    http_reply_json(x->req, 202, j);
    json_decref(j);
}

static bool load_parent(osb_ctx *x, const char *id, sdk_instance *in)
{
    int rc = sdk_instance_get(&x->b->state, id, in);
    if (rc == OSB_E_NOTFOUND || (!rc && (in->state == ST_GONE || in->state == ST_FAILED))) {
        http_reply_error(x->req, 404, NULL, "No such service instance.", NULL);
        return false;
    }
    if (rc) {
        http_reply_error(x->req, 500, NULL, "The broker's state cannot be read.", NULL);
        return false;
    }
    return true;
}

static bool load_binding(osb_ctx *x, const char *iid, const char *bid, sdk_binding *bd,
                         bool *found)
{
    int rc = sdk_binding_get(&x->b->state, iid, bid, bd);
    *found = rc == 0;
    if (rc && rc != OSB_E_NOTFOUND) {
        http_reply_error(x->req, 500, NULL, "The broker's state cannot be read.", NULL);
        return false;
    }
    return true;
}

static void bind(osb_ctx *x)
{
    const char *iid = x->req->params[0], *bid = x->req->params[1];
    json_t *body = http_json_body(x->req);
    if (!body)
        return;
    osb_call c;
    struct osb_call_result res;
    sdk_instance in = {0};
    sdk_binding old = {0}, bd = {0};
    bool found = false, locked = false;
    char *params_text = NULL, *br_text = NULL, *creds_text = NULL, *md_text = NULL,
         *extra_text = NULL;
    sdk_call_init(x, &c, &res, OSB_BIND);

    if (!json_is_object(body)) {
        http_reply_error(x->req, 400, NULL, "The body must be a JSON object.", NULL);
        goto out;
    }
    const char *service_id = json_string_value(json_object_get(body, "service_id"));
    const char *plan_id = json_string_value(json_object_get(body, "plan_id"));
    if (!service_id || !*service_id || !plan_id || !*plan_id) {
        http_reply_error(x->req, 400, NULL, "service_id and plan_id are required strings.", NULL);
        goto out;
    }
    const json_t *params = json_object_get(body, "parameters");
    const json_t *br = json_object_get(body, "bind_resource");
    const json_t *ctx = json_object_get(body, "context");
    const json_t *pred = json_object_get(body, "predecessor_binding_id");
    if (json_is_null(params))
        params = NULL;
    if ((br && !json_is_object(br)) || (ctx && !json_is_object(ctx))) {
        http_reply_error(x->req, 400, NULL, "bind_resource and context must be JSON objects.",
                         NULL);
        goto out;
    }
    if (pred && (!json_is_string(pred) || json_string_length(pred) == 0)) {
        http_reply_error(x->req, 400, NULL, "predecessor_binding_id must be a non-empty string.",
                         NULL);
        goto out;
    }
    const char *app_guid = json_string_value(json_object_get(br, "app_guid"));
    if (!app_guid)
        app_guid = json_string_value(json_object_get(body, "app_guid"));
    if (!sdk_accepts_incomplete(x, &c.accepts_incomplete))
        goto out;
    const sdk_service *svc = sdk_find_service(&x->b->catalog, service_id);
    const sdk_plan *plan = sdk_find_plan(svc, plan_id);
    if (!plan) {
        http_reply_error(x->req, 400, NULL, "service_id and plan_id must name a plan in the "
                         "catalog.", NULL);
        goto out;
    }
    if (!plan->bindable) {
        http_reply_errorf(x->req, 400, NULL, "Plan '%s' is not bindable.", plan->name);
        goto out;
    }
    if (pred && !plan->binding_rotatable) {
        http_reply_errorf(x->req, 400, NULL, "Bindings of plan '%s' cannot be rotated.",
                          plan->name);
        goto out;
    }
    if (!sdk_check_params(x, plan->binding_create, params, "parameters"))
        goto out;
    if (sdk_busy_or_reply(x, iid))
        goto out;
    locked = true;
    if (!load_parent(x, iid, &in))
        goto out;
    if (strcmp(in.service_id, service_id) != 0 || strcmp(in.plan_id, plan_id) != 0) {
        http_reply_error(x->req, 400, NULL, "service_id and plan_id do not match the service "
                         "instance.", NULL);
        goto out;
    }
    if (in.state == ST_CREATING || in.state == ST_DELETING) {
        http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR, in.state == ST_CREATING
                         ? "The service instance is still being provisioned."
                         : "The service instance is being deleted.", NULL);
        goto out;
    }
    if (!in.enabled) {
        http_reply_error(x->req, 422, NULL, "The service instance is disabled; it cannot be "
                         "bound until it is enabled again.", NULL);
        goto out;
    }
    if (!load_binding(x, iid, bid, &old, &found))
        goto out;
    if (found && old.state != ST_GONE && old.state != ST_FAILED) {
        bool same = str_eq(old.service_id, service_id) && str_eq(old.plan_id, plan_id) &&
                    sdk_json_same(old.parameters, params) &&
                    sdk_json_same(old.bind_resource, br) && str_eq(old.app_guid, app_guid);
        if (old.state == ST_DELETING) {
            http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR, "The binding is being deleted.",
                             NULL);
            goto out;
        }
        if (!same) {
            http_reply_error(x->req, 409, NULL, "A binding with this id exists with different "
                             "attributes.", NULL);
            goto out;
        }
        if (old.state == ST_CREATING) {
            if (!c.accepts_incomplete) {
                http_reply_error(x->req, 422, OSB_ASYNC_REQUIRED, "The binding is being "
                                 "created asynchronously.", NULL);
                goto out;
            }
            reply_operation(x, old.op_id);
            goto out;
        }
        reply_binding(x, 200, &old);
        goto out;
    }
    if (pred) {
        sdk_binding p;
        bool pfound;
        if (!load_binding(x, iid, json_string_value(pred), &p, &pfound))
            goto out;
        bool ok = pfound && p.state == ST_READY;
        sdk_binding_free(&p);
        if (!ok) {
            http_reply_error(x->req, 400, NULL, "predecessor_binding_id names no binding of this "
                             "service instance.", NULL);
            goto out;
        }
    }
    c.service = svc->json;
    c.plan = plan->json;
    c.service_id = service_id;
    c.plan_id = plan_id;
    c.instance_id = iid;
    c.binding_id = bid;
    c.parameters = params;
    c.bind_resource = br;
    c.context = ctx;
    c.app_guid = app_guid;
    c.predecessor_binding_id = json_string_value(pred);
    c.enabled = in.enabled;
    if (!x->b->cb.bind) {
        http_reply_error(x->req, 400, NULL, "This service is not bindable.", NULL);
        goto out;
    }
    if (x->b->cb.bind(&c) != 0 || res.failed) {
        sdk_reply_failure(x, &c);
        goto out;
    }
    if (!sdk_async_allowed(x, &c))
        goto out;
    params_text = sdk_dump(params);
    br_text = sdk_dump(br);
    creds_text = res.async ? NULL : sdk_dump(res.credentials ? res.credentials : json_object());
    md_text = sdk_dump(res.metadata);
    extra_text = sdk_dump(res.extra);
    bd = (sdk_binding){
        .instance_id = (char *)iid, .id = (char *)bid, .service_id = (char *)service_id,
        .plan_id = (char *)plan_id, .parameters = params_text, .bind_resource = br_text,
        .app_guid = (char *)app_guid, .credentials = creds_text, .metadata = md_text,
        .extra = extra_text, .state = res.async ? ST_CREATING : ST_READY,
        .op_id = res.async ? res.operation : NULL,
        .op_state = res.async ? OSB_IN_PROGRESS : OSB_SUCCEEDED, .op_started_ms = time_now_ms(),
    };
    json_t *reply = json_object();
    if (res.async)
        json_object_set_new(reply, "operation", json_string(res.operation));
    else
        binding_body(reply, &bd);
    sdk_commit_reply(x, &c, SDK_PUT_BINDING, NULL, &bd, res.async ? 202 : 201, reply, iid);
    locked = false;
out:
    if (locked)
        sdk_busy_release(x->b, iid);
    if (creds_text) {
        secure_wipe(creds_text, strlen(creds_text));
        free(creds_text);
    }
    free(params_text);
    free(br_text);
    free(md_text);
    free(extra_text);
    sdk_binding_free(&old);
    sdk_instance_free(&in);
    sdk_call_clear(&c);
    json_decref(body);
}

/* ---------------------------------------------------------------- GET */

static void fetch(osb_ctx *x)
{
    const char *iid = x->req->params[0], *bid = x->req->params[1];
    const char *qs, *qp;
    sdk_instance in = {0};
    sdk_binding bd = {0};
    bool found = false;
    osb_call c;
    struct osb_call_result res;
    sdk_call_init(x, &c, &res, OSB_FETCH_BINDING);
    if (!sdk_query_optional(x, "service_id", &qs) || !sdk_query_optional(x, "plan_id", &qp))
        goto out;
    if (!load_parent(x, iid, &in) || !load_binding(x, iid, bid, &bd, &found))
        goto out;
    const sdk_service *svc = sdk_find_service(&x->b->catalog, in.service_id);
    if (!found || bd.state != ST_READY) {
        http_reply_error(x->req, 404, NULL, found && bd.state == ST_CREATING
                                                ? "The binding is still being created."
                                                : "No such binding.", NULL);
        goto out;
    }
    if (!svc || !svc->bindings_retrievable) {
        http_reply_error(x->req, 400, NULL, "Bindings of this service are not retrievable.", NULL);
        goto out;
    }
    if (x->b->cb.fetch_binding) {
        const sdk_plan *plan = sdk_find_plan(svc, bd.plan_id);
        c.service = svc->json;
        c.plan = plan ? plan->json : NULL;
        c.service_id = bd.service_id;
        c.plan_id = bd.plan_id;
        c.instance_id = iid;
        c.binding_id = bid;
        c.enabled = in.enabled;
        if (x->b->cb.fetch_binding(&c) != 0 || res.failed) {
            sdk_reply_failure(x, &c);
            goto out;
        }
        if (sdk_call_write_state(x->b, &c, NULL, NULL)) {
            http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
            goto out;
        }
    }
    json_t *j = json_object();
    binding_body(j, &bd);
    json_t *params = sdk_parse_json(bd.parameters);
    json_object_set_new(j, "parameters", params ? params : json_object());
    if (res.metadata)
        json_object_set(j, "metadata", res.metadata);
    http_reply_json(x->req, 200, j);
    json_decref(j);
out:
    sdk_call_clear(&c);
    sdk_binding_free(&bd);
    sdk_instance_free(&in);
}

/* ---------------------------------------------------------------- DELETE (unbind) */

static void unbind(osb_ctx *x)
{
    const char *iid = x->req->params[0], *bid = x->req->params[1];
    const char *service_id, *plan_id;
    sdk_binding bd = {0};
    sdk_instance in = {0};
    bool found = false, locked = false;
    osb_call c;
    struct osb_call_result res;
    sdk_call_init(x, &c, &res, OSB_UNBIND);
    if (!sdk_query_required(x, "service_id", &service_id) ||
        !sdk_query_required(x, "plan_id", &plan_id) ||
        !sdk_accepts_incomplete(x, &c.accepts_incomplete))
        goto out;
    const sdk_service *svc = sdk_find_service(&x->b->catalog, service_id);
    const sdk_plan *plan = sdk_find_plan(svc, plan_id);
    if (!plan) {
        http_reply_error(x->req, 400, NULL, "service_id and plan_id must name a plan in the "
                         "catalog.", NULL);
        goto out;
    }
    if (sdk_busy_or_reply(x, iid))
        goto out;
    locked = true;
    int rc = sdk_instance_get(&x->b->state, iid, &in);
    if (rc && rc != OSB_E_NOTFOUND) {
        http_reply_error(x->req, 500, NULL, "The broker's state cannot be read.", NULL);
        goto out;
    }
    if (!load_binding(x, iid, bid, &bd, &found))
        goto out;
    if (rc == OSB_E_NOTFOUND || !found || bd.state == ST_GONE) {
        http_reply(x->req, 410, "application/json", "{}", 2);
        goto out;
    }
    if (bd.state == ST_DELETING) {
        if (!c.accepts_incomplete) {
            http_reply_error(x->req, 422, OSB_ASYNC_REQUIRED,
                             "The binding is being deleted asynchronously.", NULL);
            goto out;
        }
        reply_operation(x, bd.op_id);
        goto out;
    }
    const sdk_plan *own = sdk_find_plan(sdk_find_service(&x->b->catalog, bd.service_id),
                                        bd.plan_id);
    c.service = own ? own->service->json : NULL;
    c.plan = own ? own->json : NULL;
    c.service_id = bd.service_id;
    c.plan_id = bd.plan_id;
    c.instance_id = iid;
    c.binding_id = bid;
    c.enabled = in.enabled;
    c.op_kind = bd.state == ST_CREATING ? OSB_BIND : 0;
    c.operation = bd.state == ST_CREATING ? bd.op_id : NULL;
    if (x->b->cb.unbind && (x->b->cb.unbind(&c) != 0 || res.failed)) {
        sdk_reply_failure(x, &c);
        goto out;
    }
    if (!sdk_async_allowed(x, &c))
        goto out;
    if (!res.async) {
        sdk_commit_reply(x, &c, SDK_DELETE_BINDING, NULL, &bd, 200, NULL, iid);
        locked = false;
        goto out;
    }
    bd.state = ST_DELETING;
    free(bd.op_id);
    bd.op_id = strdup(res.operation);
    bd.op_state = OSB_IN_PROGRESS;
    bd.op_started_ms = time_now_ms();
    json_t *reply = json_pack("{s:s}", "operation", res.operation);
    sdk_commit_reply(x, &c, SDK_PUT_BINDING, NULL, &bd, 202, reply, iid);
    locked = false;
out:
    if (locked)
        sdk_busy_release(x->b, iid);
    sdk_binding_free(&bd);
    sdk_instance_free(&in);
    sdk_call_clear(&c);
}

/* ---------------------------------------------------------------- operations */

static void finish_binding_op(sdk_binding *bd, osb_op_state st, const char *desc,
                              const json_t *creds, const json_t *md)
{
    bd->op_state = st;
    free(bd->op_description);
    bd->op_description = desc ? strdup(desc) : NULL;
    if (st == OSB_IN_PROGRESS)
        return;
    if (bd->state == ST_CREATING) {
        bd->state = st == OSB_SUCCEEDED ? ST_READY : ST_FAILED;
        if (st == OSB_SUCCEEDED) {
            if (bd->credentials) {
                secure_wipe(bd->credentials, strlen(bd->credentials));
                free(bd->credentials);
            }
            bd->credentials = sdk_dump(creds ? creds : json_object());
            if (md) {
                free(bd->metadata);
                bd->metadata = sdk_dump(md);
            }
        }
    } else if (bd->state == ST_DELETING) {
        bd->state = st == OSB_SUCCEEDED ? ST_GONE : ST_READY;
        if (bd->state == ST_GONE && bd->credentials) {
            secure_wipe(bd->credentials, strlen(bd->credentials));
            free(bd->credentials);
            bd->credentials = NULL;
        }
    }
}

typedef struct {
    sdk_state_db *s;
    const sdk_binding *bd;
} binding_put;

static int binding_put_work(store_tx *tx, void *ud)
{
    binding_put *p = ud;
    return sdk_binding_write(p->s, tx, p->bd);
}

static void last_operation(osb_ctx *x)
{
    const char *iid = x->req->params[0], *bid = x->req->params[1];
    const char *qs, *qp, *qop;
    sdk_binding bd = {0};
    bool found = false, locked = false;
    osb_call c;
    struct osb_call_result res;
    sdk_call_init(x, &c, &res, OSB_LAST_OPERATION);
    if (!sdk_query_optional(x, "service_id", &qs) || !sdk_query_optional(x, "plan_id", &qp) ||
        !sdk_query_optional(x, "operation", &qop))
        goto out;
    if (sdk_busy_or_reply(x, iid))
        goto out;
    locked = true;
    if (!load_binding(x, iid, bid, &bd, &found))
        goto out;
    if (!found) {
        http_reply_error(x->req, 404, NULL, "No such binding.", NULL);
        goto out;
    }
    if (bd.state == ST_GONE) {
        http_reply(x->req, 410, "application/json", "{}", 2);
        goto out;
    }
    if (qop && !str_eq(qop, bd.op_id)) {
        http_reply_error(x->req, 400, NULL, "No such operation on this binding.", NULL);
        goto out;
    }
    bool running = bd.op_state == OSB_IN_PROGRESS &&
                   (bd.state == ST_CREATING || bd.state == ST_DELETING);
    if (running && x->b->cb.last_operation) {
        const sdk_service *svc = sdk_find_service(&x->b->catalog, bd.service_id);
        const sdk_plan *plan = sdk_find_plan(svc, bd.plan_id);
        c.service = svc ? svc->json : NULL;
        c.plan = plan ? plan->json : NULL;
        c.service_id = bd.service_id;
        c.plan_id = bd.plan_id;
        c.instance_id = iid;
        c.binding_id = bid;
        c.operation = bd.op_id;
        c.op_kind = bd.state == ST_CREATING ? OSB_BIND : OSB_UNBIND;
        if (x->b->cb.last_operation(&c) != 0 || res.failed) {
            sdk_reply_failure(x, &c);
            goto out;
        }
        if (res.state_set && res.state != OSB_IN_PROGRESS) {
            finish_binding_op(&bd, res.state, res.state_description, res.credentials,
                              res.metadata);
            binding_put pw = {&x->b->state, &bd};
            if (sdk_call_write_state(x->b, &c, binding_put_work, &pw)) {
                http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
                goto out;
            }
        } else {
            if (sdk_call_write_state(x->b, &c, NULL, NULL)) {
                http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
                goto out;
            }
            if (res.state_description) {
                free(bd.op_description);
                bd.op_description = strdup(res.state_description);
            }
        }
    }
    json_t *j = json_pack("{s:s}", "state", sdk_state_name(bd.op_state));
    if (bd.op_description)
        json_object_set_new(j, "description", json_string(bd.op_description));
    if (res.retry_after > 0 && bd.op_state == OSB_IN_PROGRESS) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", res.retry_after);
        http_add_header(x->req, "Retry-After", ra);
    }
    http_reply_json(x->req, 200, j);
    json_decref(j);
out:
    if (locked)
        sdk_busy_release(x->b, iid);
    sdk_binding_free(&bd);
    sdk_call_clear(&c);
}

int sdk_binding_op_done(osb_broker *b, const char *instance_id, const char *binding_id,
                        osb_op_state state, const char *description)
{
    sdk_binding bd;
    sdk_busy_wait(b, instance_id);
    int rc = sdk_binding_get(&b->state, instance_id, binding_id, &bd);
    if (!rc && (bd.op_state != OSB_IN_PROGRESS ||
                (bd.state != ST_CREATING && bd.state != ST_DELETING)))
        rc = OSB_E_NOTFOUND;
    if (!rc) {
        finish_binding_op(&bd, state, description, NULL, NULL);
        rc = sdk_binding_put(&b->state, &bd);
    }
    sdk_binding_free(&bd);
    sdk_busy_release(b, instance_id);
    return rc ? -1 : 0;
}

void sdk_bindings_routes(osb_broker *b)
{
    const char *p = "/v2/service_instances/:id/service_bindings/:bid";
    int rc = sdk_osb_route(b, HTTP_PUT, p, bind, true);
    rc |= sdk_osb_route(b, HTTP_GET, p, fetch, true);
    rc |= sdk_osb_route(b, HTTP_DELETE, p, unbind, true);
    rc |= sdk_osb_route(b, HTTP_GET, "/v2/service_instances/:id/service_bindings/:bid/last_operation",
                        last_operation, true);
    if (rc)
        log_error("libosb: cannot register the binding routes");
}
