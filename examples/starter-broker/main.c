/* starter-broker: a metered key-value store offered as a service, built on libosb.
 * Each service instance is a namespace; each binding returns {url, apikey} for the data API
 * PUT|GET|DELETE /kv/{instance}/{key}. Plans lite and standard provision at once; premium
 * provisions and deprovisions asynchronously, as a dedicated backend would.
 * It counts API_CALLS and STORAGE_BYTES per hour; with a usage API key it submits them to the
 * platform's metering through libosb's usage client (one record per instance, plan and
 * period, sent once the period is over, spooled across restarts and outages). With the
 * platform's dashboard client it serves a dashboard per instance behind the platform's
 * sign-in (GET /dashboard/{instance}). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <osb/osb.h>

#include "kv.h"

typedef struct {
    kv *kv;
    osb_broker *broker;
    char public_url[1024];
    int async_ms;
    char platform[512];
    bool dashboards;      /* dashboard SSO is configured */
    char *support_secret; /* the offering's support webhook secret: POST /support/webhook */
} starter;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Plan sizes come from the plan's name, so the catalog stays the single source of plans. */
static const char *plan_name(const osb_call *c)
{
    const char *n = json_string_value(json_object_get(c->plan, "name"));
    return n ? n : "";
}

static bool plan_is_async(const osb_call *c)
{
    return strcmp(plan_name(c), "premium") == 0;
}

static void plan_limits(const char *name, int64_t *max_keys, int64_t *max_value)
{
    if (strcmp(name, "lite") == 0) {
        *max_keys = 100;
        *max_value = 1024;
    } else if (strcmp(name, "premium") == 0) {
        *max_keys = 1000000;
        *max_value = 1 << 20;
    } else {
        *max_keys = 100000;
        *max_value = 64 << 10;
    }
}

static int64_t requested_keys(const osb_call *c, int64_t dflt)
{
    const json_t *v = json_object_get(c->parameters, "max_keys");
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* ---------------------------------------------------------------- OSB callbacks */

static void url_encode(const char *in, char *out, size_t outsz);

static int on_provision(osb_call *c)
{
    starter *s = c->user;
    bool async = plan_is_async(c);
    if (async && !c->accepts_incomplete)
        return osb_fail(c, 422, OSB_ASYNC_REQUIRED,
                        "The %s plan provisions dedicated storage asynchronously; send "
                        "accepts_incomplete=true.",
                        plan_name(c));
    int64_t max_keys, max_value;
    plan_limits(plan_name(c), &max_keys, &max_value);
    max_keys = requested_keys(c, max_keys);
    int64_t now = now_ms(), ready_at = now + (async ? s->async_ms : 0);
    if (kv_ns_create(s->kv, c, c->instance_id, c->plan_id, max_keys, max_value, now, ready_at) !=
        KV_OK)
        return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
    if (s->dashboards) {
        char enc[2048], url[4096];
        url_encode(c->instance_id, enc, sizeof enc);
        snprintf(url, sizeof url, "%s/dashboard/%s", s->public_url, enc);
        osb_set_dashboard_url(c, url);
    }
    if (async) {
        char op[128];
        snprintf(op, sizeof op, "provision:%lld", (long long)ready_at);
        osb_set_async(c, op);
    }
    return 0;
}

static int on_update(osb_call *c)
{
    starter *s = c->user;
    kv_namespace ns;
    if (kv_ns_get(s->kv, c->instance_id, &ns) != KV_OK)
        return osb_fail(c, 500, NULL, "The instance's namespace is missing.");
    int64_t max_keys, max_value;
    plan_limits(plan_name(c), &max_keys, &max_value);
    max_keys = requested_keys(c, max_keys);
    if (max_keys < ns.keys) {
        osb_set_failure_flags(c, true, false);
        return osb_fail(c, 422, NULL,
                        "The instance holds %lld keys; max_keys cannot go below "
                        "that.",
                        (long long)ns.keys);
    }
    if (kv_ns_update(s->kv, c, c->instance_id, c->plan_id, max_keys, max_value) != KV_OK)
        return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
    return 0;
}

static int on_deprovision(osb_call *c)
{
    starter *s = c->user;
    /* Halting a creation in progress, or a plan without dedicated storage: at once. */
    if (c->op_kind == OSB_PROVISION || !plan_is_async(c)) {
        if (kv_ns_purge(s->kv, c, c->instance_id) != KV_OK)
            return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
        return 0;
    }
    if (!c->accepts_incomplete)
        return osb_fail(
            c, 422, OSB_ASYNC_REQUIRED,
            "Dedicated storage is removed asynchronously; send accepts_incomplete=true.");
    int64_t at = now_ms() + s->async_ms;
    if (kv_ns_mark_deleting(s->kv, c, c->instance_id, at) != KV_OK)
        return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
    char op[128];
    snprintf(op, sizeof op, "deprovision:%lld", (long long)at);
    osb_set_async(c, op);
    return 0;
}

static int on_last_operation(osb_call *c)
{
    starter *s = c->user;
    kv_namespace ns;
    int rc = kv_ns_get(s->kv, c->instance_id, &ns);
    int64_t now = now_ms();
    if (c->op_kind == OSB_PROVISION) {
        if (rc != KV_OK) {
            osb_set_state(c, OSB_FAILED, "The namespace was lost during creation.", 0);
        } else if (now >= ns.ready_at) {
            osb_set_state(c, OSB_SUCCEEDED, "The dedicated namespace is ready.", 0);
        } else {
            int left = (int)((ns.ready_at - now + 999) / 1000);
            osb_set_state(c, OSB_IN_PROGRESS, "Allocating dedicated storage.", left > 0 ? 1 : 0);
        }
        return 0;
    }
    if (c->op_kind == OSB_DEPROVISION) {
        if (rc != KV_OK) {
            osb_set_state(c, OSB_SUCCEEDED, "The namespace is gone.", 0);
        } else if (now >= ns.deleting_at) {
            if (kv_ns_purge(s->kv, c, c->instance_id) != KV_OK)
                return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
            osb_set_state(c, OSB_SUCCEEDED, "The dedicated namespace was removed.", 0);
        } else {
            osb_set_state(c, OSB_IN_PROGRESS, "Wiping dedicated storage.", 1);
        }
        return 0;
    }
    osb_set_state(c, OSB_SUCCEEDED, NULL, 0);
    return 0;
}

static int random_key(char *out, size_t outsz)
{
    unsigned char raw[32];
    static const char hex[] = "0123456789abcdef";
    if (outsz < 2 * sizeof raw + 1 || RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * sizeof raw] = '\0';
    return 0;
}

/* Percent-encodes everything but RFC 3986's unreserved characters (CRNs hold ':' and '/'). */
static void url_encode(const char *in, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < outsz; in++) {
        unsigned char ch = (unsigned char)*in;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

static int on_bind(osb_call *c)
{
    starter *s = c->user;
    const char *role = json_string_value(json_object_get(c->parameters, "role"));
    const char *scope = json_string_value(json_object_get(c->parameters, "scope"));
    if (!role)
        role = "writer";
    if (scope && strcmp(scope, "app") == 0 && !c->app_guid)
        return osb_fail(c, 422, OSB_REQUIRES_APP,
                        "An app-scoped key needs the application: send bind_resource.app_guid.");
    char apikey[72];
    if (random_key(apikey, sizeof apikey) != 0)
        return osb_fail(c, 500, NULL, "No randomness available.");
    if (kv_apikey_add(s->kv, c, c->instance_id, c->binding_id, apikey, role) != KV_OK)
        return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
    char enc[2048], url[4096];
    url_encode(c->instance_id, enc, sizeof enc);
    snprintf(url, sizeof url, "%s/kv/%s", s->public_url, enc);
    json_t *creds = json_pack("{s:s, s:s, s:s}", "url", url, "apikey", apikey, "role", role);
    if (c->app_guid)
        json_object_set_new(creds, "app_guid", json_string(c->app_guid));
    osb_set_credentials(c, creds);
    memset(apikey, 0, sizeof apikey);
    return 0;
}

static int on_unbind(osb_call *c)
{
    starter *s = c->user;
    if (kv_apikey_remove(s->kv, c, c->instance_id, c->binding_id) != KV_OK)
        return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
    return 0;
}

static int on_set_enabled(osb_call *c)
{
    starter *s = c->user;
    if (kv_ns_set_enabled(s->kv, c, c->instance_id, c->kind == OSB_ENABLE) != KV_OK)
        return osb_fail(c, 500, NULL, "The storage backend is unavailable.");
    return 0;
}

static int on_get_state(osb_call *c)
{
    starter *s = c->user;
    kv_namespace ns;
    if (kv_ns_get(s->kv, c->instance_id, &ns) != KV_OK)
        return osb_fail(c, 404, NULL, "No such instance.");
    osb_set_activity(c, ns.enabled && now_ms() >= ns.ready_at, ns.last_active);
    return 0;
}

/* ---------------------------------------------------------------- data API */

static const char *presented_key(osb_http *h)
{
    const char *k = osb_http_header(h, "X-Api-Key");
    if (k)
        return k;
    const char *a = osb_http_header(h, "Authorization");
    if (a && strncasecmp(a, "Bearer ", 7) == 0)
        return a + 7;
    return NULL;
}

/* Checks the API key against the instance in the path; replies and returns false if not. */
static bool data_auth(starter *s, osb_http *h, const char *instance, bool write, kv_namespace *ns)
{
    const char *key = presented_key(h);
    char role[16];
    if (!key || kv_apikey_check(s->kv, key, instance, role) != KV_OK) {
        osb_http_set_header(h, "WWW-Authenticate", "Bearer");
        osb_http_reply_error(h, 401, "Unauthorized",
                             "A valid API key for this instance is "
                             "required (X-Api-Key or Bearer).");
        return false;
    }
    if (kv_ns_get(s->kv, instance, ns) != KV_OK) {
        osb_http_reply_error(h, 404, "NotFound", "No such instance.");
        return false;
    }
    if (!ns->enabled) {
        osb_http_reply_error(h, 403, "InstanceDisabled", "This instance is disabled.");
        return false;
    }
    if (now_ms() < ns->ready_at || ns->deleting_at) {
        osb_http_reply_error(h, 409, "InstanceNotReady", "This instance is not available now.");
        return false;
    }
    if (write && strcmp(role, "writer") != 0) {
        osb_http_reply_error(h, 403, "Forbidden", "This API key may only read.");
        return false;
    }
    return true;
}

static void data_call(starter *s, osb_http *h, const char *instance, const char *key, const char *m,
                      const kv_namespace *ns);

static void data_item(osb_http *h, void *ud)
{
    starter *s = ud;
    const char *instance = osb_http_param(h, 0), *key = osb_http_param(h, 1);
    const char *m = osb_http_method(h);
    bool write = strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0;
    kv_namespace ns;
    if (strlen(key) > 512) {
        osb_http_reply_error(h, 400, "BadKey", "Keys are at most 512 bytes.");
        return;
    }
    if (!data_auth(s, h, instance, write, &ns))
        return;
    data_call(s, h, instance, key, m, &ns);
    kv_meter_call(s->kv, instance, now_ms());
}

static void data_call(starter *s, osb_http *h, const char *instance, const char *key, const char *m,
                      const kv_namespace *nsp)
{
    kv_namespace ns = *nsp;
    if (strcmp(m, "PUT") == 0) {
        size_t n;
        const void *body = osb_http_body(h, &n);
        if ((int64_t)n > ns.max_value) {
            char msg[128];
            snprintf(msg, sizeof msg, "Values on this plan are at most %lld bytes.",
                     (long long)ns.max_value);
            osb_http_reply_error(h, 413, "ValueTooLarge", msg);
            return;
        }
        int rc = kv_put(s->kv, instance, key, body, n);
        if (rc == KV_FULL)
            osb_http_reply_error(h, 507, "QuotaExceeded",
                                 "This instance holds its maximum "
                                 "number of keys.");
        else if (rc != KV_OK)
            osb_http_reply_error(h, 500, NULL, "The storage backend is unavailable.");
        else
            osb_http_reply(h, 204, NULL, NULL, 0);
    } else if (strcmp(m, "DELETE") == 0) {
        int rc = kv_del(s->kv, instance, key);
        if (rc == KV_NOTFOUND)
            osb_http_reply_error(h, 404, "NotFound", "No such key.");
        else if (rc != KV_OK)
            osb_http_reply_error(h, 500, NULL, "The storage backend is unavailable.");
        else
            osb_http_reply(h, 204, NULL, NULL, 0);
    } else {
        void *val = NULL;
        size_t n = 0;
        int rc = kv_get(s->kv, instance, key, &val, &n);
        if (rc == KV_NOTFOUND)
            osb_http_reply_error(h, 404, "NotFound", "No such key.");
        else if (rc != KV_OK)
            osb_http_reply_error(h, 500, NULL, "The storage backend is unavailable.");
        else
            osb_http_reply(h, 200, "application/octet-stream", val, n);
        free(val);
    }
}

static void data_list(osb_http *h, void *ud)
{
    starter *s = ud;
    const char *instance = osb_http_param(h, 0);
    kv_namespace ns;
    if (!data_auth(s, h, instance, false, &ns))
        return;
    kv_meter_call(s->kv, instance, now_ms());
    char *json = NULL;
    if (kv_list(s->kv, instance, &json) != KV_OK) {
        osb_http_reply_error(h, 500, NULL, "The storage backend is unavailable.");
        return;
    }
    osb_http_reply(h, 200, "application/json", json, strlen(json));
    free(json);
}

/* The provider's own routes take the broker's Basic credentials; false after a 401. */
static bool provider_only(starter *s, osb_http *h)
{
    if (osb_http_authorized(s->broker, h))
        return true;
    osb_http_set_header(h, "WWW-Authenticate", "Basic realm=\"osb\"");
    osb_http_reply_error(h, 401, NULL, "The broker's credentials are required.");
    return false;
}

/* The usage counted for an instance, for the provider (broker credentials required). */
static void usage_get(osb_http *h, void *ud)
{
    starter *s = ud;
    if (!provider_only(s, h))
        return;
    char *json = NULL;
    if (kv_usage(s->kv, osb_http_param(h, 0), &json) != KV_OK) {
        osb_http_reply_error(h, 500, NULL, "The storage backend is unavailable.");
        return;
    }
    osb_http_reply(h, 200, "application/json", json, strlen(json));
    free(json);
}

/* Sends the spooled usage now and says what is left (broker credentials required): for an
 * operator before maintenance, and for tests. 200 when the spool is empty, 503 otherwise. */
static void usage_flush(osb_http *h, void *ud)
{
    starter *s = ud;
    if (!provider_only(s, h))
        return;
    osb_usage_stats st;
    int rc = osb_usage_flush(s->broker, 5000, &st);
    if (rc < 0) {
        osb_http_reply_error(h, 404, "NotEnabled", "This broker does not submit usage.");
        return;
    }
    json_t *j =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "spooled", (json_int_t)st.spooled, "rejected",
                  (json_int_t)st.rejected, "accepted", (json_int_t)st.accepted, "duplicates",
                  (json_int_t)st.duplicates, "failures", (json_int_t)st.failures, "last_success_ms",
                  (json_int_t)st.last_success_ms);
    osb_http_reply_json(h, rc == 0 ? 200 : 503, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- support */

/* POST /support/webhook: the platform's delivery of a support case of this offering. The
 * signature must hold over the body and a time within the window, and a (delivery, time)
 * seen before is a replay; a retry of a delivery (a new time) is acknowledged again. */
static void support_webhook(osb_http *h, void *ud)
{
    starter *s = ud;
    size_t n = 0;
    const void *body = osb_http_body(h, &n);
    const char *id = osb_http_header(h, "X-Osbill-Delivery");
    const char *event = osb_http_header(h, "X-Osbill-Event");
    int64_t t = 0;
    osb_webhook_verdict v = osb_webhook_verify(
        s->support_secret, osb_http_header(h, "X-Osbill-Signature"), body, n, 0, 0, &t);
    if (v != OSB_WEBHOOK_OK) {
        const char *why = v == OSB_WEBHOOK_STALE       ? "the signed time is outside the window"
                          : v == OSB_WEBHOOK_MALFORMED ? "no valid X-Osbill-Signature header"
                                                       : "the signature does not match";
        fprintf(stderr, "starter-broker: support delivery refused: %s\n", why);
        osb_http_reply_error(h, 401, "Unauthorized", why);
        return;
    }
    json_t *j = json_loadb(body, n, 0, NULL);
    const char *case_id = json_string_value(json_object_get(json_object_get(j, "case"), "id"));
    const char *inner = json_string_value(json_object_get(j, "delivery_id"));
    /* what is kept comes from the signed body; the headers only have to agree with it */
    const char *signed_event = json_string_value(json_object_get(j, "event"));
    if (!id || !event || !case_id || !inner || strcmp(id, inner) != 0 || strlen(id) > 64 ||
        !signed_event || strcmp(event, signed_event) != 0) {
        json_decref(j);
        osb_http_reply_error(h, 400, "BadRequest", "Not a support delivery.");
        return;
    }
    bool again = false;
    int rc = kv_support_receive(s->kv, id, t, event, case_id, body, n, now_ms(), &again);
    if (rc == KV_EXISTS) {
        json_decref(j);
        fprintf(stderr, "starter-broker: support delivery %s refused: a replay\n", id);
        osb_http_reply_error(h, 409, "Replayed", "This delivery was received already.");
        return;
    }
    if (rc != KV_OK) {
        json_decref(j);
        osb_http_reply_error(h, 503, NULL, "The storage backend is unavailable.");
        return;
    }
    printf("starter-broker: support %s for case %s (%s)%s\n", event, case_id,
           json_string_value(json_object_get(json_object_get(j, "case"), "subject")),
           again ? ", again" : "");
    fflush(stdout);
    json_decref(j);
    json_t *ack = json_pack("{s:s, s:b}", "received", id, "again", again);
    osb_http_reply_json(h, 200, ack);
    json_decref(ack);
}

/* GET /support/cases: the deliveries received (broker credentials required). */
static void support_cases(osb_http *h, void *ud)
{
    starter *s = ud;
    if (!provider_only(s, h))
        return;
    char *json = NULL;
    if (kv_support_list(s->kv, &json) != KV_OK) {
        osb_http_reply_error(h, 500, NULL, "The storage backend is unavailable.");
        return;
    }
    osb_http_reply(h, 200, "application/json", json, strlen(json));
    free(json);
}

static void healthz(osb_http *h, void *ud)
{
    osb_http_reply(h, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

/* ---------------------------------------------------------------- dashboard */

static void html_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *catalog_plan_name(starter *s, const char *plan_id)
{
    size_t i, j;
    const json_t *svc, *plan;
    json_array_foreach(json_object_get(osb_broker_catalog(s->broker), "services"), i, svc)
    {
        json_array_foreach(json_object_get(svc, "plans"), j, plan)
        {
            const char *id = json_string_value(json_object_get(plan, "id"));
            if (id && strcmp(id, plan_id) == 0)
                return json_string_value(json_object_get(plan, "name"));
        }
    }
    return NULL;
}

/* API calls counted in the current hour, from the usage the broker meters. */
static long long calls_this_hour(starter *s, const char *instance)
{
    char *text = NULL;
    long long n = 0;
    int64_t hour = now_ms() / 3600000 * 3600000;
    if (kv_usage(s->kv, instance, &text) != KV_OK)
        return 0;
    json_t *rows = json_loads(text, 0, NULL);
    size_t i;
    const json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "measure"));
        if (m && strcmp(m, "API_CALLS") == 0 &&
            json_integer_value(json_object_get(r, "hour")) == hour)
            n += json_integer_value(json_object_get(r, "quantity"));
    }
    json_decref(rows);
    free(text);
    return n;
}

/* GET /dashboard/:instance: the instance at a glance, for users the platform lets view it. */
static void dashboard(osb_http *h, void *ud)
{
    starter *s = ud;
    const char *instance = osb_http_param(h, 0);
    /* The action is the service's own, as the platform's policies name it. */
    const char *svc = json_string_value(json_object_get(
        json_array_get(json_object_get(osb_broker_catalog(s->broker), "services"), 0), "name"));
    char action[256];
    snprintf(action, sizeof action, "%s.dashboard.view", svc ? svc : "starter-kv");
    osb_sso_user user;
    if (!osb_sso_require(s->broker, h, instance, action, &user))
        return;
    kv_namespace ns;
    osb_http_set_header(h, "Cache-Control", "no-store");
    osb_http_set_header(h, "X-Frame-Options", "DENY");
    osb_http_set_header(h, "X-Content-Type-Options", "nosniff");
    osb_http_set_header(h, "Content-Security-Policy",
                        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
    if (kv_ns_get(s->kv, instance, &ns) != KV_OK) {
        static const char gone[] = "<!doctype html><title>Not found</title>"
                                   "<h1>This instance has no storage</h1>";
        osb_http_reply(h, 404, "text/html; charset=utf-8", gone, sizeof gone - 1);
        return;
    }
    const char *plan = catalog_plan_name(s, ns.plan_id);
    long long calls = calls_this_hour(s, instance);
    char *page = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&page, &len);
    if (!f) {
        osb_http_reply_error(h, 500, NULL, "Out of memory.");
        return;
    }
    fputs("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<title>Starter KV dashboard</title><style>body{font-family:system-ui,sans-serif;"
          "max-width:40rem;margin:6vh auto;padding:0 1rem;color:#1d2330}"
          "dt{font-weight:600;margin-top:.8rem}dd{margin:0}</style></head><body>"
          "<h1>Starter KV</h1><dl><dt>Instance</dt><dd id=\"instance\">",
          f);
    html_text(f, instance);
    fputs("</dd><dt>Plan</dt><dd id=\"plan\">", f);
    html_text(f, plan ? plan : ns.plan_id);
    fprintf(f,
            "</dd><dt>Keys stored</dt><dd id=\"keys\">%lld</dd>"
            "<dt>Bytes stored</dt><dd id=\"bytes\">%lld</dd>"
            "<dt>API calls this hour</dt><dd id=\"calls\">%lld</dd>"
            "<dt>Signed in as</dt><dd id=\"user\">",
            (long long)ns.keys, (long long)ns.bytes, calls);
    html_text(f, user.iam_id);
    fputs("</dd></dl></body></html>", f);
    if (fclose(f) != 0 || !page) {
        free(page);
        osb_http_reply_error(h, 500, NULL, "Out of memory.");
        return;
    }
    osb_http_reply(h, 200, "text/html; charset=utf-8", page, len);
    free(page);
}

/* libosb's usage client asks before each round of sending, and once more when stopping. */
static void collect_usage(osb_broker *b, void *ud, int64_t now, bool final)
{
    starter *s = ud;
    (void)b;
    if (kv_collect_usage(s->kv, now, final) != KV_OK)
        fprintf(stderr, "starter-broker: cannot spool the usage of the last period\n");
}

/* ---------------------------------------------------------------- main */

/* A whole number option within [lo, hi]; false (said on stderr) otherwise. */
static bool whole(const char *flag, const char *arg, long lo, long hi, const char *unit, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (*end || !*arg || errno || v < lo || v > hi) {
        fprintf(stderr, "starter-broker: %s wants %ld to %ld %s\n", flag, lo, hi, unit);
        return false;
    }
    *out = v;
    return true;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: starter-broker --listen HOST:PORT --data DIR [options]\n"
            "  --listen HOST:PORT     address to serve on (default 127.0.0.1:8090; port 0 = any)\n"
            "  --data DIR             state directory (created if missing)\n"
            "  --user U --password P  Basic credentials (or OSB_BROKER_USER, OSB_BROKER_PASSWORD)\n"
            "  --catalog FILE         catalog.json (default: the one shipped with the broker)\n"
            "  --public-url URL       base URL for credentials (default http://LISTEN)\n"
            "  --platform URL         the platform's endpoint (IAM and metering); its bearer\n"
            "                         tokens are accepted besides Basic credentials\n"
            "  --token-client-id ID   the client_id the platform's tokens must carry\n"
            "                         (default resource-controller)\n"
            "  --revocation-poll MS   how often to poll the platform's revoked tokens\n"
            "                         (default 10000)\n"
            "  --sso-client-id ID     the offering's dashboard client (or OSB_SSO_CLIENT_ID):\n"
            "  --sso-client-secret S  with its secret (or OSB_SSO_CLIENT_SECRET) and --platform,\n"
            "                         serves /dashboard/{instance} behind the platform's sign-in\n"
            "                         (callback: PUBLIC_URL/sso/callback)\n"
            "  --async-seconds N      how long premium creation and deletion take (default 3)\n"
            "  --usage-apikey KEY     an API key of the provider's service ID (or\n"
            "                         OSB_USAGE_APIKEY): with --platform, the usage is\n"
            "                         submitted to the platform's metering\n"
            "  --usage-period N       seconds of usage per record (default 3600)\n"
            "  --usage-timeout N      seconds a metering request may take (default 10)\n"
            "  --support-secret S     the offering's support webhook secret (or\n"
            "                         OSB_SUPPORT_SECRET): receives its cases at\n"
            "                         POST /support/webhook (GET /support/cases lists them)\n"
            "  --threads N            worker threads (default 4 per core)\n"
            "  --access-log           log one line per request\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, 0, 'l'},
                                         {"data", required_argument, 0, 'd'},
                                         {"user", required_argument, 0, 'u'},
                                         {"password", required_argument, 0, 'p'},
                                         {"catalog", required_argument, 0, 'c'},
                                         {"public-url", required_argument, 0, 'U'},
                                         {"platform", required_argument, 0, 'P'},
                                         {"async-seconds", required_argument, 0, 'a'},
                                         {"access-log", no_argument, 0, 'A'},
                                         {"help", no_argument, 0, 'h'},
                                         {"sso-client-id", required_argument, 0, 'i'},
                                         {"sso-client-secret", required_argument, 0, 's'},
                                         {"revocation-poll", required_argument, 0, 'r'},
                                         {"token-client-id", required_argument, 0, 'T'},
                                         {"threads", required_argument, 0, 't'},
                                         {"usage-apikey", required_argument, 0, 'k'},
                                         {"usage-period", required_argument, 0, 'y'},
                                         {"usage-timeout", required_argument, 0, 'w'},
                                         {"support-secret", required_argument, 0, 'S'},
                                         {0, 0, 0, 0}};
    const char *listen = "127.0.0.1:8090", *data = NULL, *catalog = STARTER_CATALOG;
    const char *user = getenv("OSB_BROKER_USER"), *password = getenv("OSB_BROKER_PASSWORD");
    const char *public_url = NULL, *platform = NULL, *token_client = NULL;
    const char *sso_id = getenv("OSB_SSO_CLIENT_ID");
    char *sso_secret =
        getenv("OSB_SSO_CLIENT_SECRET") ? strdup(getenv("OSB_SSO_CLIENT_SECRET")) : NULL;
    char *usage_key = getenv("OSB_USAGE_APIKEY") ? strdup(getenv("OSB_USAGE_APIKEY")) : NULL;
    /* A fixed buffer rather than a copy on the heap: nothing to free on the early exits. */
    static char support_secret[256];
    snprintf(support_secret, sizeof support_secret, "%s",
             getenv("OSB_SUPPORT_SECRET") ? getenv("OSB_SUPPORT_SECRET") : "");
    long usage_period_s = 3600, usage_timeout_s = 10, v = 0;
    bool ok = true;
    double async_s = 3;
    unsigned revocation_poll_ms = 0;
    /* Callbacks wait for the disk (each write of the store is flushed before it returns):
     * more threads than cores keep requests moving while some wait, and let the store's
     * group commit flush many writes at once. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = (unsigned)(cores > 0 ? 4 * cores : 8);
    bool access_log = false;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l': listen = optarg; break;
        case 'd': data = optarg; break;
        case 'u': user = optarg; break;
        case 'p': password = optarg; break;
        case 'c': catalog = optarg; break;
        case 'U': public_url = optarg; break;
        case 'P': platform = optarg; break;
        case 'a': {
            char *end;
            async_s = strtod(optarg, &end);
            if (*end || async_s < 0 || async_s > 3600) {
                fprintf(stderr, "starter-broker: --async-seconds wants 0 to 3600\n");
                ok = false;
            }
            break;
        }
        case 'r':
            ok = whole("--revocation-poll", optarg, 100, 3600000, "ms", &v);
            revocation_poll_ms = (unsigned)v;
            break;
        case 'T': token_client = optarg; break;
        case 't':
            ok = whole("--threads", optarg, 1, 256, "threads", &v);
            threads = (unsigned)v;
            break;
        case 'k':
            free(usage_key);
            usage_key = strdup(optarg);
            memset(optarg, 'x', strlen(optarg));
            break;
        case 'y': ok = whole("--usage-period", optarg, 1, 86400, "seconds", &usage_period_s); break;
        case 'w': ok = whole("--usage-timeout", optarg, 1, 300, "seconds", &usage_timeout_s); break;
        case 'A': access_log = true; break;
        case 'S':
            snprintf(support_secret, sizeof support_secret, "%s", optarg);
            memset(optarg, 'x', strlen(optarg));
            break;
        case 'i': sso_id = optarg; break;
        case 's':
            free(sso_secret);
            sso_secret = strdup(optarg);
            /* Out of the process's command line, where ps would show it. */
            memset(optarg, 'x', strlen(optarg));
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            free(sso_secret);
            free(usage_key);
            return 2;
        }
    }
    bool sso = (sso_id && *sso_id) || (sso_secret && *sso_secret);
    if (sso && (!sso_id || !*sso_id || !sso_secret || !*sso_secret || !platform)) {
        fprintf(stderr, "starter-broker: dashboard sign-in needs --sso-client-id, "
                        "--sso-client-secret and --platform\n");
        free(sso_secret);
        free(usage_key);
        return 2;
    }
    if (usage_key && *usage_key && !platform) {
        fprintf(stderr, "starter-broker: submitting usage needs --platform\n");
        free(sso_secret);
        free(usage_key);
        return 2;
    }
    if (!data || optind != argc) {
        usage(stderr);
        free(sso_secret);
        free(usage_key);
        return 2;
    }
    if (!user || !*user || !password || !*password) {
        fprintf(stderr, "starter-broker: Basic credentials are required: --user/--password or "
                        "OSB_BROKER_USER/OSB_BROKER_PASSWORD\n");
        free(sso_secret);
        free(usage_key);
        return 2;
    }
    if (mkdir(data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "starter-broker: cannot create %s: %s\n", data, strerror(errno));
        free(sso_secret);
        free(usage_key);
        return 1;
    }

    starter s = {.async_ms = (int)(async_s * 1000), .dashboards = sso};
    s.support_secret = support_secret[0] ? support_secret : NULL;
    snprintf(s.platform, sizeof s.platform, "%s", platform ? platform : "");
    if (public_url)
        snprintf(s.public_url, sizeof s.public_url, "%s", public_url);

    /* Blocked before any thread starts, so every thread inherits the mask and the
     * signals wait for sigwait() below instead of landing on a server thread. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    osb_callbacks cb = {
        .provision = on_provision,
        .update = on_update,
        .deprovision = on_deprovision,
        .bind = on_bind,
        .unbind = on_unbind,
        .last_operation = on_last_operation,
        .set_enabled = on_set_enabled,
        .get_state = on_get_state,
    };
    osb_config cfg = {
        .listen = listen,
        .data_dir = data,
        .catalog_path = catalog,
        .user = user,
        .password = password,
        .access_log = access_log,
        .name = "starter-broker",
        .user_data = &s,
        .platform_url = platform,
        .revocation_poll_ms = revocation_poll_ms,
        .token_client_id = token_client,
        .threads = threads,
    };
    s.broker = osb_broker_new();
    int rc = !s.broker;
    if (!rc && kv_open(data, s.broker, &s.kv) != KV_OK) {
        free(sso_secret);
        free(usage_key);
        osb_broker_stop(s.broker);
        return 1;
    }
    rc = rc || osb_http_route(s.broker, OSB_GET | OSB_PUT | OSB_DELETE, "/kv/:instance/:key",
                              data_item, &s);
    rc = rc || osb_http_route(s.broker, OSB_GET, "/kv/:instance", data_list, &s);
    rc = rc || osb_http_route(s.broker, OSB_GET, "/usage/:instance", usage_get, &s);
    rc = rc || osb_http_route(s.broker, OSB_POST, "/usage/flush", usage_flush, &s);
    rc = rc || osb_http_route(s.broker, OSB_GET, "/healthz", healthz, &s);
    if (s.support_secret) {
        rc = rc || osb_http_route(s.broker, OSB_POST, "/support/webhook", support_webhook, &s);
        rc = rc || osb_http_route(s.broker, OSB_GET, "/support/cases", support_cases, &s);
    }
    char callback[1100];
    if (!rc && sso) {
        snprintf(callback, sizeof callback, "%s/sso/callback", s.public_url);
        osb_sso_config sc = {
            .platform_url = platform,
            .client_id = sso_id,
            .client_secret = sso_secret,
            /* Without --public-url libosb derives it from the address it listens on. */
            .redirect_uri = public_url ? callback : NULL,
        };
        rc = osb_sso_enable(s.broker, &sc) != 0;
        rc = rc || osb_http_route(s.broker, OSB_GET, "/dashboard/:instance", dashboard, &s);
    }
    if (!rc && usage_key && *usage_key) {
        kv_submit_usage(s.kv, (int64_t)usage_period_s * 1000);
        osb_usage_config uc = {
            .api_key = usage_key,
            .collect = collect_usage,
            .collect_ud = &s,
            .timeout_ms = (unsigned)usage_timeout_s * 1000,
        };
        rc = osb_usage_enable(s.broker, &uc) != 0;
    }
    if (sso_secret) {
        memset(sso_secret, 0, strlen(sso_secret));
        free(sso_secret);
    }
    if (usage_key) {
        memset(usage_key, 0, strlen(usage_key));
        free(usage_key);
    }
    char err[512] = "";
    if (rc || osb_broker_run(s.broker, &cfg, &cb, err, sizeof err) != 0) {
        fprintf(stderr, "starter-broker: %s\n", err[0] ? err : "cannot start");
        osb_broker_stop(s.broker);
        kv_close(s.kv);
        return 1;
    }

    /* The port is known only now when 0 was asked for. */
    char host[256];
    const char *colon = strrchr(listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon ? colon - listen : 0), listen);
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    char url[600];
    snprintf(url, sizeof url, "http://%s:%u", host, osb_broker_port(s.broker));
    if (!public_url)
        snprintf(s.public_url, sizeof s.public_url, "%s", url);
    printf("starter-broker listening on %s (catalog: %s, data: %s)\n", url, catalog, data);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    printf("starter-broker: stopping\n");
    fflush(stdout);
    osb_broker_stop(s.broker);
    kv_close(s.kv);
    explicit_bzero(support_secret, sizeof support_secret);
    return 0;
}
