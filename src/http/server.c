/* http server: libmicrohttpd in epoll thread-pool mode, one http_req per request.
 * Responses are queued on a later callback than the first one: libmicrohttpd 0.9.75 drops
 * keep-alive when a response is queued from the very first call for a request. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define JSON_MAX_DEPTH 64

typedef struct route {
    unsigned methods;
    char **segs; /* pattern segments; ":x" marks a parameter */
    int nsegs;
    http_error_style style;
    http_handler handler;
    void *ud;
    struct route *next;
} route;

struct http_router {
    route *head, *tail;
};

struct http_server {
    struct MHD_Daemon *daemon;
    http_router *router;
    http_config cfg;
    char name[64];
    unsigned port;
    int stopping;     /* atomic: no new deferrals once set */
    int deferred_now; /* atomic: requests suspended and not yet answered */
    /* Metrics, updated atomically: by status class (1xx..5xx) and latency bucket. */
    uint64_t by_class[6];
    uint64_t by_bucket[12];
    uint64_t latency_us_sum;
};

static const int64_t bucket_us[11] = {100,   250,   500,   1000,   2500,   5000,
                                      10000, 25000, 50000, 100000, 1000000};

/* ---------------------------------------------------------------- router */

http_router *http_router_new(void)
{
    return calloc(1, sizeof(http_router));
}

void http_router_free(http_router *r)
{
    if (!r)
        return;
    route *rt = r->head;
    while (rt) {
        route *next = rt->next;
        for (int i = 0; i < rt->nsegs; i++)
            free(rt->segs[i]);
        free(rt->segs);
        free(rt);
        rt = next;
    }
    free(r);
}

int http_route(http_router *r, unsigned methods, const char *pattern, http_error_style style,
               http_handler h, void *ud)
{
    if (!r || !pattern || pattern[0] != '/' || !h)
        return OSB_E_INVAL;
    route *rt = calloc(1, sizeof *rt);
    if (!rt)
        return OSB_E_NOMEM;
    int nparams = 0;
    const char *p = pattern + 1;
    for (;;) { /* a trailing slash is one more, empty, segment */
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char **segs = realloc(rt->segs, sizeof(char *) * (size_t)(rt->nsegs + 1));
        if (!segs)
            goto fail;
        rt->segs = segs;
        if (!(rt->segs[rt->nsegs] = strndup(p, n)))
            goto fail;
        if (p[0] == ':')
            nparams++;
        rt->nsegs++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (nparams > HTTP_MAX_PARAMS)
        goto fail;
    rt->methods = methods;
    rt->style = style;
    rt->handler = h;
    rt->ud = ud;
    if (r->tail)
        r->tail->next = rt;
    else
        r->head = rt;
    r->tail = rt;
    return 0;
fail:
    for (int i = 0; i < rt->nsegs; i++)
        free(rt->segs[i]);
    free(rt->segs);
    free(rt);
    return OSB_E_INVAL;
}

/* Matches the raw path against one route; on success the decoded parameters are in req. */
static bool route_match(const route *rt, http_req *req, const char **segv, const size_t *segl,
                        int nseg)
{
    if (nseg != rt->nsegs)
        return false;
    int np = 0;
    for (int i = 0; i < nseg; i++) {
        const char *ps = rt->segs[i];
        if (ps[0] == ':') {
            if (segl[i] == 0)
                return false;
            continue;
        }
        if (strlen(ps) != segl[i] || memcmp(ps, segv[i], segl[i]) != 0)
            return false;
    }
    for (int i = 0; i < nseg; i++) {
        if (rt->segs[i][0] != ':')
            continue;
        char *v = arena_strndup(&req->arena, segv[i], segl[i]);
        if (!v || url_decode_inplace(v) <= 0)
            return false;
        req->params[np++] = v;
    }
    req->nparams = np;
    return true;
}

static void dispatch(http_server *s, http_req *req)
{
    const char *segv[64];
    size_t segl[64];
    int nseg = 0;
    const char *p = req->path;
    if (p[0] != '/') {
        http_reply_error(req, 400, "bad_request", "The request path must start with '/'.", NULL);
        return;
    }
    p++;
    for (;;) {
        if (nseg == (int)ARRAY_LEN(segv)) {
            http_reply_error(req, 404, "not_found", "No such resource.", NULL);
            return;
        }
        const char *slash = strchr(p, '/');
        segv[nseg] = p;
        segl[nseg] = slash ? (size_t)(slash - p) : strlen(p);
        nseg++;
        if (!slash)
            break;
        p = slash + 1;
    }
    unsigned allowed = 0;
    http_method m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
    for (route *rt = s->router->head; rt; rt = rt->next) {
        if (!route_match(rt, req, segv, segl, nseg))
            continue;
        if (rt->methods & m) {
            req->style = rt->style;
            req->route_ud = rt->ud;
            rt->handler(req, rt->ud);
            if (!req->replied && !req->deferred)
                http_reply_error(req, 500, "internal_error", "The handler gave no answer.", NULL);
            return;
        }
        allowed |= rt->methods;
        req->style = rt->style;
    }
    if (allowed) {
        static const struct {
            unsigned m;
            const char *name;
        } names[] = {{HTTP_GET, "GET"},     {HTTP_POST, "POST"},     {HTTP_PUT, "PUT"},
                     {HTTP_PATCH, "PATCH"}, {HTTP_DELETE, "DELETE"}, {HTTP_OPTIONS, "OPTIONS"}};
        char allow[64] = "";
        for (size_t i = 0; i < ARRAY_LEN(names); i++) {
            if (allowed & names[i].m) {
                if (allow[0])
                    strcat(allow, ", ");
                strcat(allow, names[i].name);
            }
        }
        http_add_header(req, "Allow", allow);
        http_reply_errorf(req, 405, "method_not_allowed", "%s is not allowed here; allowed: %s.",
                          req->method_name, allow);
        return;
    }
    http_reply_error(req, 404, "not_found", "No such resource.", NULL);
}

/* ---------------------------------------------------------------- request helpers */

const char *http_header(http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

const char *http_query(http_req *req, const char *name)
{
    const char *raw = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!raw)
        return NULL;
    char *v = arena_strdup(&req->arena, raw);
    if (!v)
        return NULL;
    for (char *c = v; *c; c++)
        if (*c == '+')
            *c = ' ';
    if (url_decode_inplace(v) < 0)
        return NULL;
    return v;
}

static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* Rejects nesting deeper than max before jansson recurses into it. */
static bool json_depth_ok(const char *s, size_t n, int max)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

json_t *http_json_body(http_req *req)
{
    if (!is_json_type(http_header(req, "Content-Type"))) {
        http_reply_error(req, 400, "bad_content_type",
                         "The body must be JSON with Content-Type: application/json.", NULL);
        return NULL;
    }
    if (req->body.len == 0) {
        http_reply_error(req, 400, "bad_json",
                         "The request body is empty; a JSON body is required.", NULL);
        return NULL;
    }
    if (!json_depth_ok(req->body.data, req->body.len, JSON_MAX_DEPTH)) {
        http_reply_errorf(req, 400, "bad_json", "The JSON body is nested deeper than %d levels.",
                          JSON_MAX_DEPTH);
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        http_reply_errorf(req, 400, "bad_json",
                          "The body is not valid JSON: %s (line %d, column %d).", err.text,
                          err.line, err.column);
        return NULL;
    }
    return j;
}

const jd_value *http_jdoc_body(http_req *req)
{
    if (!is_json_type(http_header(req, "Content-Type"))) {
        http_reply_error(req, 400, "bad_content_type",
                         "The body must be JSON with Content-Type: application/json.", NULL);
        return NULL;
    }
    if (req->body.len == 0) {
        http_reply_error(req, 400, "bad_json",
                         "The request body is empty; a JSON body is required.", NULL);
        return NULL;
    }
    char why[120];
    const jd_value *v =
        jdoc_parse(&req->arena, req->body.data, req->body.len, JSON_MAX_DEPTH, why, sizeof why);
    if (!v)
        http_reply_errorf(req, 400, "bad_json", "The body is not valid JSON: %s.", why);
    return v;
}

/* ---------------------------------------------------------------- responses */

void http_add_header(http_req *req, const char *name, const char *value)
{
    if (req->nresp_hdrs >= HTTP_MAX_RESP_HEADERS)
        return;
    const char *n = arena_strdup(&req->arena, name), *v = arena_strdup(&req->arena, value);
    if (!n || !v)
        return;
    /* Header values come from request data at times: no line breaks may pass. */
    for (char *c = (char *)v; *c; c++)
        if (*c == '\r' || *c == '\n')
            *c = ' ';
    req->resp_hdr_name[req->nresp_hdrs] = n;
    req->resp_hdr_value[req->nresp_hdrs] = v;
    req->nresp_hdrs++;
}

void http_reply(http_req *req, int status, const char *content_type, const void *body, size_t n)
{
    if (req->replied)
        return;
    buf_reset(&req->resp);
    if (n && buf_append(&req->resp, body, n)) {
        buf_reset(&req->resp);
        status = 500;
        content_type = NULL;
    }
    req->status = status;
    req->content_type = content_type;
    req->replied = true;
}

void http_reply_json(http_req *req, int status, const json_t *j)
{
    if (req->replied)
        return;
    buf_reset(&req->resp);
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!s || buf_puts(&req->resp, s)) {
        free(s);
        buf_reset(&req->resp);
        req->status = 500;
        req->replied = true;
        return;
    }
    free(s);
    req->status = status;
    req->content_type = "application/json";
    req->replied = true;
}

void http_reply_page(http_req *req, json_t *rows, bool more, const char *path, int64_t limit,
                     int64_t last, const http_filter *filters, size_t nfilters)
{
    json_t *next = json_null();
    if (more) {
        buf b;
        buf_init(&b, 16384);
        int rc =
            buf_printf(&b, "%s?limit=%lld&start=%lld", path, (long long)limit, (long long)last);
        for (size_t i = 0; i < nfilters && !rc; i++) {
            if (!filters[i].name || !filters[i].value)
                continue;
            rc = buf_printf(&b, "&%s=", filters[i].name);
            rc = rc ? rc : buf_pct(&b, filters[i].value);
        }
        if (!rc)
            next = json_string(buf_cstr(&b));
        buf_free(&b);
    }
    json_t *j = json_pack("{s:I, s:o, s:o}", "rows_count", (json_int_t)json_array_size(rows),
                          "next_url", next, "resources", rows);
    http_reply_json(req, 200, j);
    json_decref(j);
}

void http_reply_error(http_req *req, int status, const char *code, const char *message,
                      const char *target)
{
    if (req->replied)
        return;
    json_t *j;
    if (req->style == HTTP_STYLE_OSB) {
        j = json_object();
        if (code && code[0] >= 'A' && code[0] <= 'Z') /* OSB codes are CamelCase, else omitted */
            json_object_set_new(j, "error", json_string(code));
        json_object_set_new(j, "description", json_string(message ? message : ""));
    } else {
        json_t *e = json_pack("{s:s, s:s}", "code", code ? code : "error", "message",
                              message ? message : "");
        if (e && target)
            json_object_set_new(e, "target", json_string(target));
        j = json_pack("{s:[o], s:s}", "errors", e, "trace", req->request_id);
    }
    if (!j) {
        http_reply(req, 500, NULL, NULL, 0);
        return;
    }
    http_reply_json(req, status, j);
    json_decref(j);
}

void http_reply_errorf(http_req *req, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_reply_error(req, status, code, msg, NULL);
}

bool http_defer(http_req *req)
{
    http_server *s = req->server;
    __atomic_add_fetch(&s->deferred_now, 1, __ATOMIC_SEQ_CST);
    /* libmicrohttpd aborts when stopped with suspended connections: once stopping, the
     * caller answers synchronously instead. */
    if (__atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST)) {
        __atomic_sub_fetch(&s->deferred_now, 1, __ATOMIC_SEQ_CST);
        return false;
    }
    req->deferred = true;
    MHD_suspend_connection(req->conn);
    return true;
}

void http_resume(http_req *req)
{
    MHD_resume_connection(req->conn);
}

const char *http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

static void free_cb(void *p)
{
    free(p);
}

static enum MHD_Result queue(http_req *req)
{
    size_t n = req->resp.len;
    char *body = buf_take(&req->resp);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(n, body, free_cb);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    if (req->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    for (int i = 0; i < req->nresp_hdrs; i++)
        MHD_add_response_header(r, req->resp_hdr_name[i], req->resp_hdr_value[i]);
    enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)req->status, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---------------------------------------------------------------- libmicrohttpd glue */

static http_method parse_method(const char *m)
{
    static const struct {
        const char *name;
        http_method m;
    } tab[] = {{"GET", HTTP_GET},        {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},
               {"PUT", HTTP_PUT},        {"PATCH", HTTP_PATCH}, {"DELETE", HTTP_DELETE},
               {"OPTIONS", HTTP_OPTIONS}};
    for (size_t i = 0; i < ARRAY_LEN(tab); i++)
        if (strcmp(m, tab[i].name) == 0)
            return tab[i].m;
    return 0;
}

static bool request_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static http_req *req_new(http_server *s, struct MHD_Connection *conn, const char *url,
                         const char *method)
{
    http_req *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    arena_init(&req->arena, 0);
    buf_init(&req->body, s->cfg.max_body);
    buf_init(&req->resp, 0);
    req->conn = conn;
    req->server = s;
    req->start_us = time_mono_us();
    req->style = s->cfg.style;
    req->method = parse_method(method);
    req->method_name = arena_strndup(&req->arena, method, strnlen(method, 16));
    req->path = arena_strdup(&req->arena, url);
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid))
        snprintf(req->request_id, sizeof req->request_id, "%s", rid);
    else
        uuid_v4(req->request_id);
    if (!req->method_name || !req->path) {
        arena_free(&req->arena);
        free(req);
        return NULL;
    }
    return req;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_server *s = cls;
    http_req *req = *con_cls;

    if (!req) {
        req = req_new(s, conn, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
        if (ci && ci->header_size > s->cfg.max_header) {
            http_reply_errorf(req, 431, "HeadersTooLarge",
                              "The request line and headers exceed %zu bytes.", s->cfg.max_header);
            req->phase = 2;
            return queue(req);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        int64_t len;
        if (cl && (str_to_i64(cl, false, &len) != 0 || (uint64_t)len > s->cfg.max_body)) {
            /* Refuse before reading the body; libmicrohttpd then closes the connection.
             * (A response cannot be queued while a body is being read.) */
            http_reply_errorf(req, 413, "PayloadTooLarge", "The request body exceeds %zu bytes.",
                              s->cfg.max_body);
            req->phase = 2;
            return queue(req);
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        /* A chunked body over the cap is read and dropped, then refused at its end. */
        if (!req->body_too_big && buf_append(&req->body, upload_data, *upload_data_size)) {
            req->body_too_big = true;
            buf_free(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (req->phase == 0) {
        req->phase = 1;
        if (req->body_too_big)
            http_reply_errorf(req, 413, "PayloadTooLarge", "The request body exceeds %zu bytes.",
                              s->cfg.max_body);
        else if (!req->method)
            http_reply_error(req, 405, "method_not_allowed", "Unsupported HTTP method.", NULL);
        else
            dispatch(s, req);
        /* Suspended: the reply belongs to another thread until it calls http_resume(), and
         * libmicrohttpd calls again afterwards. */
        if (req->deferred)
            return MHD_YES;
    }
    if (req->phase == 2)
        return MHD_YES;
    if (req->deferred)
        __atomic_sub_fetch(&s->deferred_now, 1, __ATOMIC_SEQ_CST);
    req->phase = 2;
    if (!req->replied)
        http_reply_error(req, 500, "internal_error", "No response was produced.", NULL);
    return queue(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    http_req *req = *con_cls;
    if (!req)
        return;
    /* A deferred request whose client went away is ended here without the handler being
     * called again after http_resume(): it is no longer waiting either. */
    if (req->deferred && req->phase != 2)
        __atomic_sub_fetch(&s->deferred_now, 1, __ATOMIC_SEQ_CST);
    int64_t us = time_mono_us() - req->start_us;
    int cls_i = req->status >= 100 && req->status < 600 ? req->status / 100 : 0;
    int b = 0;
    while (b < 11 && us > bucket_us[b])
        b++;
    __atomic_add_fetch(&s->by_class[cls_i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->by_bucket[b], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->latency_us_sum, (uint64_t)us, __ATOMIC_RELAXED);
    if (s->cfg.access_log) {
        log_info("%s %s %s %d %lldus rid=%s%s", s->name, req->method_name, req->path, req->status,
                 (long long)us, req->request_id,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
    }
    buf_free(&req->body);
    buf_free(&req->resp);
    arena_free(&req->arena);
    free(req);
    *con_cls = NULL;
}

/* libmicrohttpd would decode the path in place; keeping it raw lets the router tell an
 * encoded "%2F" inside a CRN from a real segment separator. */
static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, bool *v6)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return OSB_E_INVAL;
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        return OSB_E_INVAL;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    int64_t port;
    if (str_to_i64(colon + 1, false, &port) || port > 65535)
        return OSB_E_INVAL;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[') {
        size_t l = strlen(host);
        if (l < 2 || host[l - 1] != ']')
            return OSB_E_INVAL;
        host[l - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return OSB_E_INVAL;
        *v6 = true;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return OSB_E_INVAL;
    *v6 = false;
    return 0;
}

static int listen_backlog(int fd)
{
    return listen(fd, 1024);
}

/* Many idle keep-alive clients must not exhaust descriptors before the connection limit. */
static void raise_fd_limit(unsigned want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t target = want + 256;
    if (rl.rlim_cur >= target)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > target ? target : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int http_server_start(const http_config *cfg, http_router *router, http_server **out)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return OSB_E_NOMEM;
    s->cfg = *cfg;
    s->router = router;
    if (!s->cfg.threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->cfg.threads = n > 0 ? (unsigned)n : 1;
    }
    if (!s->cfg.max_body)
        s->cfg.max_body = 1u << 20;
    if (!s->cfg.max_header)
        s->cfg.max_header = 32u << 10;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 4096;
    if (!s->cfg.timeout_s)
        s->cfg.timeout_s = 30;
    snprintf(s->name, sizeof s->name, "%s", cfg->name ? cfg->name : "http");
    s->cfg.name = s->name;

    struct sockaddr_storage ss;
    bool v6 = false;
    if (parse_listen(cfg->listen ? cfg->listen : "127.0.0.1:0", &ss, &v6)) {
        log_error("%s: bad listen address '%s' (want HOST:PORT)", s->name,
                  cfg->listen ? cfg->listen : "");
        free(s);
        return OSB_E_INVAL;
    }
    raise_fd_limit(s->cfg.max_connections);

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        cfg->listen_fd > 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
        cfg->listen_fd > 0 ? (void *)(intptr_t)cfg->listen_fd : (void *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, s->cfg.threads, MHD_OPTION_CONNECTION_LIMIT,
        s->cfg.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->cfg.per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
        /* libmicrohttpd keeps the request line, headers and every query argument record in
         * this pool, and hangs instead of answering when the records do not fit: give it
         * room beyond the header cap, which on_request enforces itself. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->cfg.max_header * 4, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        1024u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, keep_raw,
        NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_END);
    if (!s->daemon) {
        log_error("%s: cannot listen on %s: %s", s->name, cfg->listen ? cfg->listen : "",
                  strerror(errno));
        free(s);
        return OSB_E_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return 0;
}

int http_server_metrics(http_server *s, buf *out)
{
    int rc = buf_puts(out, "# HELP osbill_http_requests_total Requests answered, by status class.\n"
                           "# TYPE osbill_http_requests_total counter\n");
    for (int c = 1; !rc && c < 6; c++)
        rc = buf_printf(out, "osbill_http_requests_total{server=\"%s\",code=\"%dxx\"} %llu\n",
                        s->name, c,
                        (unsigned long long)__atomic_load_n(&s->by_class[c], __ATOMIC_RELAXED));
    if (!rc)
        rc = buf_puts(out, "# HELP osbill_http_request_duration_seconds Time to answer.\n"
                           "# TYPE osbill_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; !rc && b < 12; b++) {
        cum += __atomic_load_n(&s->by_bucket[b], __ATOMIC_RELAXED);
        if (b < 11)
            rc = buf_printf(out,
                            "osbill_http_request_duration_seconds_bucket{server=\"%s\","
                            "le=\"%g\"} %llu\n",
                            s->name, (double)bucket_us[b] / 1e6, (unsigned long long)cum);
        else
            rc = buf_printf(out,
                            "osbill_http_request_duration_seconds_bucket{server=\"%s\","
                            "le=\"+Inf\"} %llu\n",
                            s->name, (unsigned long long)cum);
    }
    if (!rc)
        rc =
            buf_printf(out,
                       "osbill_http_request_duration_seconds_sum{server=\"%s\"} %.6f\n"
                       "osbill_http_request_duration_seconds_count{server=\"%s\"} %llu\n",
                       s->name, (double)__atomic_load_n(&s->latency_us_sum, __ATOMIC_RELAXED) / 1e6,
                       s->name, (unsigned long long)cum);
    return rc;
}

int http_listen(const char *listen, int *fd, unsigned *port)
{
    struct sockaddr_storage ss;
    bool v6 = false;
    if (parse_listen(listen, &ss, &v6)) {
        log_error("bad listen address '%s' (want HOST:PORT)", listen);
        return OSB_E_INVAL;
    }
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s, (struct sockaddr *)&ss, len) != 0 || listen_backlog(s) != 0 ||
        getsockname(s, (struct sockaddr *)&ss, &len) != 0) {
        log_error("cannot listen on %s: %s", listen, strerror(errno));
        if (s >= 0)
            close(s);
        return OSB_E_IO;
    }
    *fd = s;
    *port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

unsigned http_server_port(const http_server *s)
{
    return s->port;
}

void http_server_stop(http_server *s)
{
    if (!s)
        return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
    /* Let the suspended requests be answered first (their work is already queued). */
    for (int i = 0; i < 30000 && __atomic_load_n(&s->deferred_now, __ATOMIC_SEQ_CST) > 0; i++)
        usleep(1000);
    if (__atomic_load_n(&s->deferred_now, __ATOMIC_SEQ_CST) > 0)
        log_warn("%s: stopping with requests still waiting", s->name);
    MHD_stop_daemon(s->daemon);
    free(s);
}
