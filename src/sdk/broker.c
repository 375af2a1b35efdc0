/* sdk broker: libosb's life cycle and the checks every OSB request passes before a handler
 * sees it — authentication, X-Broker-API-Version, originating and request identities — and
 * the helpers the instance, binding and IBM handlers share. */
#include "sdk/sdk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN_MINOR 12
#define MAX_ORIG_IDENTITY 8192
#define MAX_REQUEST_IDENTITY 1024

struct osb_route_ud {
    osb_broker *b;
    sdk_osb_handler h;
    bool version_required;
    struct osb_route_ud *next;
};


/* ---------------------------------------------------------------- busy set */

static ssize_t busy_find(osb_broker *b, const char *id)
{
    for (size_t i = 0; i < b->nbusy; i++)
        if (strcmp(b->busy[i], id) == 0)
            return (ssize_t)i;
    return -1;
}

static bool busy_add(osb_broker *b, const char *id)
{
    if (b->nbusy == b->capbusy) {
        size_t cap = b->capbusy ? b->capbusy * 2 : 16;
        char **p = realloc(b->busy, cap * sizeof *p);
        if (!p)
            return false;
        b->busy = p;
        b->capbusy = cap;
    }
    char *d = strdup(id);
    if (!d)
        return false;
    b->busy[b->nbusy++] = d;
    return true;
}

bool sdk_busy_try(osb_broker *b, const char *id)
{
    pthread_mutex_lock(&b->busy_mu);
    bool ok = busy_find(b, id) < 0 && busy_add(b, id);
    pthread_mutex_unlock(&b->busy_mu);
    return ok;
}

void sdk_busy_wait(osb_broker *b, const char *id)
{
    pthread_mutex_lock(&b->busy_mu);
    while (busy_find(b, id) >= 0 || !busy_add(b, id))
        pthread_cond_wait(&b->busy_cv, &b->busy_mu);
    pthread_mutex_unlock(&b->busy_mu);
}

void sdk_busy_release(osb_broker *b, const char *id)
{
    pthread_mutex_lock(&b->busy_mu);
    ssize_t i = busy_find(b, id);
    if (i >= 0) {
        free(b->busy[i]);
        b->busy[i] = b->busy[--b->nbusy];
    }
    pthread_cond_broadcast(&b->busy_cv);
    pthread_mutex_unlock(&b->busy_mu);
}

bool sdk_busy_or_reply(osb_ctx *x, const char *id)
{
    if (sdk_busy_try(x->b, id))
        return false;
    http_reply_error(x->req, 422, OSB_CONCURRENCY_ERROR,
                     "Another request for this service instance is in progress.", NULL);
    return true;
}

/* ---------------------------------------------------------------- authentication */

static void credential_hash(const osb_broker *b, const char *user, size_t ulen, const char *pw,
                            size_t plen, unsigned char out[32])
{
    /* A keyed hash: the password never stays in memory, and checking a request costs one
     * HMAC instead of a slow KDF; the random salt keeps the digest useless elsewhere. */
    buf m;
    buf_init(&m, 0);
    if (buf_append(&m, user, ulen) || buf_append(&m, "\0", 1) || buf_append(&m, pw, plen))
        memset(out, 0, 32);
    else
        hmac_sha256(b->auth_salt, sizeof b->auth_salt, m.data, m.len, out);
    secure_wipe(m.data, m.cap);
    buf_free(&m);
}

static bool check_auth(osb_broker *b, http_req *req)
{
    const char *h = http_header(req, "Authorization");
    if (!h)
        return false;
    if (strncasecmp(h, "Basic ", 6) == 0 && b->has_basic) {
        const char *v = h + 6;
        while (*v == ' ')
            v++;
        unsigned char dec[512];
        int n = b64_decode(v, strlen(v), dec, sizeof dec - 1);
        if (n <= 0)
            return false;
        dec[n] = '\0';
        char *colon = memchr(dec, ':', (size_t)n);
        if (!colon)
            return false;
        unsigned char got[32];
        credential_hash(b, (const char *)dec, (size_t)(colon - (char *)dec), colon + 1,
                        (size_t)n - (size_t)(colon - (char *)dec) - 1, got);
        secure_wipe(dec, sizeof dec);
        return ct_equal(got, b->auth_hash, 32);
    }
    if (strncasecmp(h, "Bearer ", 7) == 0 && (b->jwks || b->cfg.verify_token)) {
        const char *t = h + 7;
        while (*t == ' ')
            t++;
        if (!*t)
            return false;
        if (b->jwks) {
            json_t *claims;
            if (sdk_jwks_verify(b->jwks, t, b->issuer, b->token_client_id, &claims))
                return false;
            json_decref(claims);
        }
        return !b->cfg.verify_token || b->cfg.verify_token(b->cfg.verify_token_ud, t) == 0;
    }
    return false;
}

/* ---------------------------------------------------------------- request pipeline */

static bool parse_version(const char *v, int *major, int *minor)
{
    int64_t ma, mi;
    char text[32];
    /* Whitespace around a header value is not part of it (RFC 9110, 5.5). */
    while (*v == ' ' || *v == '\t')
        v++;
    size_t len = strlen(v);
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof text)
        return false;
    memcpy(text, v, len);
    text[len] = '\0';
    char *dot = strchr(text, '.');
    if (!dot || dot == text || dot[1] == '\0')
        return false;
    *dot = '\0';
    if (str_to_i64(text, false, &ma) || str_to_i64(dot + 1, false, &mi) || ma > 1000 || mi > 1000)
        return false;
    *major = (int)ma;
    *minor = (int)mi;
    return true;
}

/* "<platform> <base64(JSON object)>" */
static bool parse_originating(osb_ctx *x, const char *h)
{
    const char *sp = strchr(h, ' ');
    if (!sp || sp == h || strlen(h) > MAX_ORIG_IDENTITY)
        return false;
    const char *v = sp + 1;
    while (*v == ' ')
        v++;
    size_t vlen = strlen(v);
    while (vlen && v[vlen - 1] == ' ')
        vlen--;
    if (!vlen)
        return false;
    x->orig_platform = arena_strndup(&x->req->arena, h, (size_t)(sp - h));
    unsigned char *dec = arena_alloc(&x->req->arena, vlen);
    if (!x->orig_platform || !dec)
        return false;
    int n = b64_decode(v, vlen, dec, vlen);
    if (n <= 0)
        n = b64url_decode(v, vlen, dec, vlen); /* unpadded variants seen in the wild */
    if (n <= 0)
        return false;
    json_t *j = json_loadb((const char *)dec, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return false;
    }
    x->orig_identity = j;
    return true;
}

static void osb_entry(http_req *req, void *ud)
{
    osb_route_ud *r = ud;
    osb_broker *b = r->b;
    osb_ctx x = {.b = b, .req = req};

    const char *rid = http_header(req, "X-Broker-API-Request-Identity");
    if (rid && strlen(rid) > MAX_REQUEST_IDENTITY) {
        http_reply_errorf(req, 400, NULL, "X-Broker-API-Request-Identity is longer than %d "
                          "characters.", MAX_REQUEST_IDENTITY);
        return;
    }
    if (rid && *rid) {
        x.request_identity = rid;
        http_add_header(req, "X-Broker-API-Request-Identity", rid);
    }
    if (!check_auth(b, req)) {
        http_add_header(req, "WWW-Authenticate", "Basic realm=\"osb\"");
        http_reply_error(req, 401, NULL, "Authentication is required: Basic credentials or a "
                                         "valid bearer token.", NULL);
        return;
    }
    const char *v = http_header(req, "X-Broker-API-Version");
    if (v || r->version_required) {
        int major, minor;
        if (!v) {
            http_reply_error(req, 412, NULL, "The X-Broker-API-Version header is required "
                                             "(this broker supports 2.12 to 2.17).", NULL);
            return;
        }
        if (!parse_version(v, &major, &minor)) {
            http_reply_errorf(req, 412, NULL, "X-Broker-API-Version '%.32s' is not MAJOR.MINOR.",
                              v);
            return;
        }
        if (major != 2 || minor < MIN_MINOR) {
            http_reply_errorf(req, 412, NULL, "API version %d.%d is not supported; this broker "
                              "supports 2.12 to 2.17.", major, minor);
            return;
        }
        x.api_version = v;
    }
    const char *oi = http_header(req, "X-Broker-API-Originating-Identity");
    if (oi && !parse_originating(&x, oi)) {
        http_reply_error(req, 400, NULL, "X-Broker-API-Originating-Identity must be "
                         "'<platform> <base64 of a JSON object>'.", NULL);
        return;
    }
    r->h(&x);
    json_decref(x.orig_identity);
}

int sdk_osb_route(osb_broker *b, unsigned methods, const char *pattern, sdk_osb_handler h,
                  bool version_required)
{
    osb_route_ud *r = calloc(1, sizeof *r);
    if (!r)
        return OSB_E_NOMEM;
    r->b = b;
    r->h = h;
    r->version_required = version_required;
    r->next = b->osb_routes;
    b->osb_routes = r;
    return http_route(b->router, methods, pattern, HTTP_STYLE_OSB, osb_entry, r);
}

static void free_route_uds(osb_broker *b)
{
    while (b->osb_routes) {
        osb_route_ud *next = b->osb_routes->next;
        free(b->osb_routes);
        b->osb_routes = next;
    }
}

/* ---------------------------------------------------------------- shared helpers */

void sdk_call_init(osb_ctx *x, osb_call *c, struct osb_call_result *res, osb_call_kind kind)
{
    memset(c, 0, sizeof *c);
    memset(res, 0, sizeof *res);
    c->kind = kind;
    c->result = res;
    c->api_version = x->api_version;
    c->originating_platform = x->orig_platform;
    c->originating_identity = x->orig_identity;
    c->request_identity = x->request_identity;
    c->user = x->b->cfg.user_data;
    c->enabled = true;
}

void sdk_call_clear(osb_call *c)
{
    struct osb_call_result *r = c->result;
    if (!r)
        return;
    free(r->error);
    free(r->description);
    free(r->operation);
    free(r->dashboard_url);
    free(r->state_description);
    json_decref(r->metadata);
    json_decref(r->credentials);
    json_decref(r->extra);
    sdk_writes_free(r->writes); /* not taken: the call failed or recorded nothing */
    memset(r, 0, sizeof *r);
}

void sdk_reply_failure(osb_ctx *x, osb_call *c)
{
    struct osb_call_result *r = c->result;
    int status = r->failed && r->status >= 400 && r->status <= 599 ? r->status : 500;
    json_t *j = json_object();
    if (r->failed && r->error)
        json_object_set_new(j, "error", json_string(r->error));
    json_object_set_new(j, "description",
                        json_string(r->failed && r->description ? r->description
                                                                : "The service broker failed."));
    if (r->flags_set) {
        json_object_set_new(j, "instance_usable", json_boolean(r->instance_usable));
        if (c->kind == OSB_UPDATE)
            json_object_set_new(j, "update_repeatable", json_boolean(r->update_repeatable));
    }
    http_reply_json(x->req, status, j);
    json_decref(j);
}

bool sdk_accepts_incomplete(osb_ctx *x, bool *out)
{
    const char *v = http_query(x->req, "accepts_incomplete");
    *out = false;
    if (!v || strcmp(v, "false") == 0)
        return true;
    if (strcmp(v, "true") == 0) {
        *out = true;
        return true;
    }
    http_reply_error(x->req, 400, NULL, "accepts_incomplete must be true or false.", NULL);
    return false;
}

bool sdk_query_required(osb_ctx *x, const char *name, const char **out)
{
    const char *v = http_query(x->req, name);
    if (!v || !*v) {
        http_reply_errorf(x->req, 400, NULL, "The query parameter %s is required.", name);
        return false;
    }
    *out = v;
    return true;
}

bool sdk_query_optional(osb_ctx *x, const char *name, const char **out)
{
    const char *v = http_query(x->req, name);
    if (v && !*v) {
        http_reply_errorf(x->req, 400, NULL, "The query parameter %s must not be empty.", name);
        return false;
    }
    *out = v;
    return true;
}

char *sdk_dump(const json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
}

static bool empty_json(const json_t *j)
{
    return !j || json_is_null(j) || (json_is_object(j) && json_object_size(j) == 0);
}

bool sdk_json_same(const char *stored, const json_t *j)
{
    json_t *s = sdk_parse_json(stored);
    bool same = (empty_json(s) && empty_json(j)) || (s && j && json_equal(s, j));
    json_decref(s);
    return same;
}

json_t *sdk_parse_json(const char *stored)
{
    return stored ? json_loads(stored, 0, NULL) : NULL;
}

/* Async answers need accepts_incomplete; a provider that went async anyway is refused here
 * so that the platform retries with it. */
bool sdk_async_allowed(osb_ctx *x, osb_call *c)
{
    if (!c->result->async || c->accepts_incomplete)
        return true;
    log_warn("libosb: the provider answered asynchronously to a request without "
             "accepts_incomplete=true; answering 422 AsyncRequired");
    http_reply_error(x->req, 422, OSB_ASYNC_REQUIRED,
                     "This request can only be completed asynchronously; repeat it with "
                     "accepts_incomplete=true.", NULL);
    return false;
}

bool sdk_check_params(osb_ctx *x, const jschema *schema, const json_t *params, const char *what)
{
    if (params && !json_is_object(params)) {
        http_reply_errorf(x->req, 400, NULL, "%s must be a JSON object.", what);
        return false;
    }
    if (!schema)
        return true;
    json_t *empty = NULL;
    if (!params)
        params = empty = json_object();
    char msg[512];
    int rc = jschema_validate(schema, params, msg, sizeof msg);
    json_decref(empty);
    if (rc != 0) {
        http_reply_errorf(x->req, 400, NULL, "%s do not match the plan's schema: %s", what,
                          rc > 0 ? msg : "the schema could not be evaluated");
        return false;
    }
    return true;
}

bool sdk_check_maintenance(osb_ctx *x, const json_t *mi, const sdk_plan *plan)
{
    if (!mi)
        return true;
    const char *v = json_string_value(json_object_get(mi, "version"));
    if (!json_is_object(mi) || !v) {
        http_reply_error(x->req, 400, NULL, "maintenance_info must be an object with a version.",
                         NULL);
        return false;
    }
    if (!plan->maintenance_version || strcmp(v, plan->maintenance_version) != 0) {
        http_reply_errorf(x->req, 422, OSB_MAINTENANCE_INFO_CONFLICT,
                          "maintenance_info.version %s does not match the plan's %s.", v,
                          plan->maintenance_version ? plan->maintenance_version : "(none)");
        return false;
    }
    return true;
}

const char *sdk_state_name(osb_op_state s)
{
    return s == OSB_SUCCEEDED ? "succeeded" : s == OSB_FAILED ? "failed" : "in progress";
}

/* ---------------------------------------------------------------- catalog */

static void catalog_get(osb_ctx *x)
{
    const sdk_catalog *c = &x->b->catalog;
    http_reply(x->req, 200, "application/json", c->body, c->body_len);
}

/* ---------------------------------------------------------------- provider routes */

static void extra_entry(http_req *req, void *ud)
{
    extra_route *r = ud;
    r->handler((osb_http *)req, r->ud);
}

int osb_http_route(osb_broker *b, unsigned methods, const char *pattern, osb_http_handler h,
                   void *ud)
{
    extra_route *r = calloc(1, sizeof *r);
    if (!r || !(r->pattern = strdup(pattern))) {
        free(r);
        return OSB_E_NOMEM;
    }
    r->methods = methods;
    r->handler = h;
    r->ud = ud;
    extra_route **pp = &b->routes;
    while (*pp)
        pp = &(*pp)->next;
    *pp = r;
    return 0;
}

bool osb_http_authorized(osb_broker *b, osb_http *h)
{
    return check_auth(b, (http_req *)h);
}

/* ---------------------------------------------------------------- life cycle */

osb_broker *osb_broker_new(void)
{
    osb_broker *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pthread_mutex_init(&b->busy_mu, NULL);
    pthread_cond_init(&b->busy_cv, NULL);
    return b;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int osb_broker_run(osb_broker *b, const osb_config *cfg, const osb_callbacks *cb, char *err,
                   size_t errlen)
{
    int rc;
    if (!cfg->data_dir || !cfg->catalog_path || !cb || !cb->provision || !cb->deprovision) {
        seterr(err, errlen, "data_dir, catalog_path and the provision and deprovision callbacks "
                            "are required");
        return OSB_E_INVAL;
    }
    bool basic = cfg->user && *cfg->user && cfg->password && *cfg->password;
    bool platform = cfg->platform_url && *cfg->platform_url;
    if (!basic && !cfg->verify_token && !platform) {
        seterr(err, errlen, "a broker needs credentials: a user and password, the platform's "
                            "URL, or a token verifier");
        return OSB_E_INVAL;
    }
    if (cfg->user && strchr(cfg->user, ':')) {
        seterr(err, errlen, "the broker user must not contain ':'");
        return OSB_E_INVAL;
    }
    if (platform && !str_has_prefix(cfg->platform_url, "http://") &&
        !str_has_prefix(cfg->platform_url, "https://")) {
        seterr(err, errlen, "the platform URL must be an http:// or https:// URL");
        return OSB_E_INVAL;
    }
    b->cfg = *cfg;
    b->cb = *cb;
    b->cfg.user = b->cfg.password = NULL; /* only the hash is kept */
    b->cfg.listen = b->cfg.data_dir = b->cfg.catalog_path = b->cfg.name = NULL;
    b->cfg.platform_url = b->cfg.token_client_id = NULL; /* copies below */
    if (basic) {
        random_bytes(b->auth_salt, sizeof b->auth_salt);
        credential_hash(b, cfg->user, strlen(cfg->user), cfg->password, strlen(cfg->password),
                        b->auth_hash);
        b->has_basic = true;
    }
    if ((rc = sdk_catalog_load(cfg->catalog_path, &b->catalog, err, errlen)))
        return rc;
    if ((rc = sdk_state_open(cfg->data_dir, &b->state))) {
        seterr(err, errlen, "cannot open the broker state in %s", cfg->data_dir);
        return rc;
    }
    if (platform) {
        size_t n = strlen(cfg->platform_url);
        while (n && cfg->platform_url[n - 1] == '/')
            n--;
        b->platform_url = strndup(cfg->platform_url, n);
        b->token_client_id = strdup(cfg->token_client_id && *cfg->token_client_id
                                        ? cfg->token_client_id
                                        : "resource-controller");
        char *issuer = NULL, *keys = NULL, *revoked = NULL;
        if (!b->platform_url || !b->token_client_id ||
            asprintf(&issuer, "%s/identity", b->platform_url) < 0 ||
            asprintf(&keys, "%s/identity/keys", b->platform_url) < 0 ||
            asprintf(&revoked, "%s/identity/revocations", b->platform_url) < 0) {
            free(issuer);
            free(keys);
            return OSB_E_NOMEM;
        }
        b->issuer = issuer;
        /* Fetching starts now, in the background, so the keys are usually in place before
         * the first token arrives. */
        rc = sdk_jwks_new(keys, revoked, b->cfg.revocation_poll_ms, &b->jwks);
        free(keys);
        free(revoked);
        if (rc)
            return rc;
    }
    if (!(b->router = http_router_new()))
        return OSB_E_NOMEM;
    if ((rc = sdk_osb_route(b, HTTP_GET, "/v2/catalog", catalog_get, true))) {
        seterr(err, errlen, "cannot set up routes");
        return rc;
    }
    sdk_instances_routes(b);
    sdk_bindings_routes(b);
    sdk_ibm_routes(b);
    for (extra_route *r = b->routes; r; r = r->next) {
        if ((rc = http_route(b->router, r->methods, r->pattern, HTTP_STYLE_OSB, extra_entry, r))) {
            seterr(err, errlen, "bad route pattern '%s'", r->pattern);
            return rc;
        }
    }
    http_config hc = {
        .listen = cfg->listen ? cfg->listen : "127.0.0.1:8090",
        .threads = cfg->threads,
        .max_body = cfg->max_body,
        .access_log = cfg->access_log,
        .style = HTTP_STYLE_OSB,
        .name = cfg->name ? cfg->name : "broker",
    };
    /* Bound first, so that the port is known to what needs it (SSO's default redirect URI)
     * before any request is served. */
    int fd = -1;
    unsigned port = 0;
    if ((rc = http_listen(hc.listen, &fd, &port))) {
        seterr(err, errlen, "cannot listen on %s", hc.listen);
        return rc;
    }
    hc.listen_fd = fd;
    if (b->sso && (rc = sdk_sso_start(b, hc.listen, port, err, errlen))) {
        close(fd);
        return rc;
    }
    if ((rc = http_server_start(&hc, b->router, &b->server))) {
        close(fd);
        seterr(err, errlen, "cannot listen on %s", hc.listen);
        return rc;
    }
    return sdk_usage_start(b, err, errlen);
}

int osb_broker_start(const osb_config *cfg, const osb_callbacks *cb, osb_broker **out, char *err,
                     size_t errlen)
{
    osb_broker *b = osb_broker_new();
    if (!b)
        return OSB_E_NOMEM;
    int rc = osb_broker_run(b, cfg, cb, err, errlen);
    if (rc) {
        osb_broker_stop(b);
        return rc;
    }
    *out = b;
    return 0;
}

unsigned osb_broker_port(const osb_broker *b)
{
    return b->server ? http_server_port(b->server) : 0;
}

const json_t *osb_broker_catalog(const osb_broker *b)
{
    return b->catalog.root;
}

void osb_broker_stop(osb_broker *b)
{
    if (!b)
        return;
    http_server_stop(b->server);
    /* After the last request and before the state closes: the final usage is spooled and
     * sent through the state's group commit. */
    sdk_usage_stop(b->usage);
    sdk_sso_free(b->sso);
    sdk_jwks_free(b->jwks);
    free(b->platform_url);
    free(b->issuer);
    free(b->token_client_id);
    http_router_free(b->router);
    free_route_uds(b);
    sdk_state_close(&b->state);
    sdk_catalog_free(&b->catalog);
    for (extra_route *r = b->routes; r;) {
        extra_route *next = r->next;
        free(r->pattern);
        free(r);
        r = next;
    }
    for (size_t i = 0; i < b->nbusy; i++)
        free(b->busy[i]);
    free(b->busy);
    pthread_mutex_destroy(&b->busy_mu);
    pthread_cond_destroy(&b->busy_cv);
    secure_wipe(b->auth_hash, sizeof b->auth_hash);
    free(b);
}
