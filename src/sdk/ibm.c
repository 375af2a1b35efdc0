/* sdk ibm: IBM Cloud's broker extension, /bluemix_v1/service_instances/:id — the platform
 * disables an instance (account suspended, reclamation, over its cap) and enables it again,
 * and asks whether it is active. */
#include "sdk/sdk.h"

#include <stdlib.h>
#include <string.h>

static const char *const enable_codes[] = {"IBMCLOUD_ACCT_ACTIVATE", "IBMCLOUD_RECLAMATION_RESTORE",
                                           "IBMCLOUD_SERVICE_INSTANCE_BELOW_CAP",
                                           "IBMCLOUD_ADMIN_REQUEST"};
static const char *const disable_codes[] = {"IBMCLOUD_ACCT_SUSPEND", "IBMCLOUD_RECLAMATION_SCHEDULE",
                                            "IBMCLOUD_SERVICE_INSTANCE_ABOVE_CAP",
                                            "IBMCLOUD_ADMIN_REQUEST"};

static bool code_in(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return true;
    return false;
}

static bool load(osb_ctx *x, const char *id, sdk_instance *in)
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

static int instance_put_work(store_tx *tx, void *ud)
{
    return sdk_instance_write(tx, ud);
}

static void set_enabled(osb_ctx *x)
{
    const char *id = x->req->params[0];
    json_t *body = http_json_body(x->req);
    if (!body)
        return;
    sdk_instance in = {0};
    bool locked = false;
    osb_call c;
    struct osb_call_result res;
    const json_t *en = json_object_get(body, "enabled");
    const json_t *ini = json_object_get(body, "initiator_id");
    const json_t *rc_j = json_object_get(body, "reason_code");
    sdk_call_init(x, &c, &res, OSB_ENABLE);
    if (!json_is_object(body) || !json_is_boolean(en)) {
        http_reply_error(x->req, 400, NULL, "The body must be an object with a boolean 'enabled'.",
                         NULL);
        goto out;
    }
    if ((ini && !json_is_string(ini)) || (rc_j && !json_is_string(rc_j))) {
        http_reply_error(x->req, 400, NULL, "initiator_id and reason_code must be strings.", NULL);
        goto out;
    }
    bool enable = json_is_true(en);
    const char *reason = json_string_value(rc_j);
    if (reason && !(enable ? code_in(reason, enable_codes, ARRAY_LEN(enable_codes))
                           : code_in(reason, disable_codes, ARRAY_LEN(disable_codes)))) {
        http_reply_errorf(x->req, 400, NULL, "reason_code '%.64s' is not a reason to %s an "
                          "instance.", reason, enable ? "enable" : "disable");
        goto out;
    }
    if (!sdk_busy_try(x->b, id)) {
        http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR,
                         "Another request for this service instance is in progress.", NULL);
        goto out;
    }
    locked = true;
    if (!load(x, id, &in))
        goto out;
    if (x->b->cb.set_enabled) {
        const sdk_plan *plan =
            sdk_find_plan(sdk_find_service(&x->b->catalog, in.service_id), in.plan_id);
        c.kind = enable ? OSB_ENABLE : OSB_DISABLE;
        c.instance_id = id;
        c.service_id = in.service_id;
        c.plan_id = in.plan_id;
        c.plan = plan ? plan->json : NULL;
        c.service = plan ? plan->service->json : NULL;
        c.enabled = enable;
        c.initiator_id = json_string_value(ini);
        c.reason_code = reason;
        if (x->b->cb.set_enabled(&c) != 0 || res.failed) {
            sdk_reply_failure(x, &c);
            goto out;
        }
    }
    in.enabled = enable;
    if (sdk_call_write_state(x->b, &c, instance_put_work, &in)) {
        http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
        goto out;
    }
    log_info("libosb: instance %s %s by %s (%s)", id, enable ? "enabled" : "disabled",
             c.initiator_id ? c.initiator_id : "-", reason ? reason : "-");
    http_reply(x->req, 204, NULL, NULL, 0);
out:
    if (locked)
        sdk_busy_release(x->b, id);
    sdk_instance_free(&in);
    sdk_call_clear(&c);
    json_decref(body);
}

static void get_state(osb_ctx *x)
{
    const char *id = x->req->params[0];
    sdk_instance in = {0};
    osb_call c;
    struct osb_call_result res;
    sdk_call_init(x, &c, &res, OSB_STATE);
    if (!load(x, id, &in))
        goto out;
    bool active = in.enabled && in.state != ST_CREATING;
    int64_t last = in.last_active_ms;
    if (x->b->cb.get_state) {
        c.instance_id = id;
        c.service_id = in.service_id;
        c.plan_id = in.plan_id;
        c.enabled = in.enabled;
        if (x->b->cb.get_state(&c) != 0 || res.failed) {
            sdk_reply_failure(x, &c);
            goto out;
        }
        if (sdk_call_write_state(x->b, &c, NULL, NULL)) {
            http_reply_error(x->req, 500, NULL, "The broker's state cannot be written.", NULL);
            goto out;
        }
        if (res.activity_set) {
            active = res.active && in.enabled;
            last = res.last_active_ms;
        }
    }
    json_t *j = json_pack("{s:b, s:b, s:I}", "enabled", in.enabled, "active", active,
                          "last_active", (json_int_t)last);
    http_reply_json(x->req, 200, j);
    json_decref(j);
out:
    sdk_instance_free(&in);
    sdk_call_clear(&c);
}

void sdk_ibm_routes(osb_broker *b)
{
    int rc = sdk_osb_route(b, HTTP_PUT, "/bluemix_v1/service_instances/:id", set_enabled, false);
    rc |= sdk_osb_route(b, HTTP_GET, "/bluemix_v1/service_instances/:id", get_state, false);
    if (rc)
        log_error("libosb: cannot register the IBM Cloud routes");
}
