/* http: the HTTP server every osbill process uses (libmicrohttpd, epoll thread pool), its
 * router, the request/response object and the two JSON error styles of the API.
 * A handler sees one http_req: its arena, its decoded path parameters, its capped body. */
#ifndef OSBILL_HTTP_H
#define OSBILL_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "base/jdoc.h"

typedef enum {
    HTTP_GET = 1,
    HTTP_HEAD = 2,
    HTTP_POST = 4,
    HTTP_PUT = 8,
    HTTP_PATCH = 16,
    HTTP_DELETE = 32,
    HTTP_OPTIONS = 64,
} http_method;

/* How errors are shaped on a route:
 * platform: {"errors":[{"code","message","target"}],"trace":"<request id>"}
 * osb:      {"error":"<CamelCase, optional>","description":"..."} */
typedef enum { HTTP_STYLE_PLATFORM = 0, HTTP_STYLE_OSB = 1 } http_error_style;

typedef struct http_req http_req;
typedef struct http_server http_server;
typedef struct http_router http_router;
typedef void (*http_handler)(http_req *req, void *ud);

#define HTTP_MAX_PARAMS       8
#define HTTP_MAX_RESP_HEADERS 16

struct http_req {
    arena arena; /* freed with the request */
    http_method method;
    const char *method_name;
    const char *path;                    /* raw, still percent-encoded, without the query */
    const char *params[HTTP_MAX_PARAMS]; /* decoded path parameters, in pattern order */
    int nparams;
    buf body; /* capped at the server's max_body */
    char request_id[65];
    http_error_style style;
    void *route_ud;
    int64_t start_us;

    /* response */
    int status;
    const char *content_type;
    buf resp;
    const char *resp_hdr_name[HTTP_MAX_RESP_HEADERS];
    const char *resp_hdr_value[HTTP_MAX_RESP_HEADERS];
    int nresp_hdrs;

    /* internal */
    struct MHD_Connection *conn;
    http_server *server;
    int phase;
    bool replied, deferred, body_too_big;
};

typedef struct {
    const char *listen;          /* "127.0.0.1:8090", "[::1]:0", ":8080"; port 0 = ephemeral */
    unsigned threads;            /* 0 = one per core */
    size_t max_body;             /* bytes; 0 = 1 MiB */
    size_t max_header;           /* request line and headers, bytes (431 past it); 0 = 32 KiB */
    unsigned max_connections;    /* 0 = 4096 */
    unsigned per_ip_connections; /* 0 = no per-address limit */
    unsigned timeout_s;          /* idle connections are closed after this; 0 = 30 s */
    bool access_log;             /* one line per request at info level */
    http_error_style style;      /* shape of errors for unrouted requests */
    const char *name;            /* for log lines and the Server header */
    int listen_fd;               /* > 0: serve this bound socket (http_listen) instead */
} http_config;

/* Binds a listening socket before the server starts, so the port is known (port 0 picks
 * one) while the routes are still being set up. */
int http_listen(const char *listen, int *fd, unsigned *port) WARN_UNUSED;

/* ---- router ---- */
http_router *http_router_new(void);
void http_router_free(http_router *r);
/* Patterns are literal segments and ":name" segments, e.g.
 * "/v2/service_instances/:id/service_bindings/:bid". A ":name" matches one non-empty
 * segment, percent-decoded (so an encoded CRN with "%2F" is one parameter). methods is a
 * mask of http_method. A path that matches with another method gets 405. */
int http_route(http_router *r, unsigned methods, const char *pattern, http_error_style style,
               http_handler h, void *ud) WARN_UNUSED;

/* ---- server ---- */
/* Starts listening and serving; the router must outlive the server. */
int http_server_start(const http_config *cfg, http_router *router, http_server **out) WARN_UNUSED;
unsigned http_server_port(const http_server *s);
/* Stops accepting, finishes the requests in flight, frees the server. */
void http_server_stop(http_server *s);

/* ---- request ---- */
const char *http_header(http_req *req, const char *name); /* NULL when absent */
const char *http_cookie(http_req *req, const char *name); /* NULL when absent */
/* A query parameter, percent- and '+'-decoded into the request arena; NULL when absent. */
const char *http_query(http_req *req, const char *name);

/* Parses the body as JSON: the content type must be application/json, the text parse
 * with duplicate keys rejected and nesting at most 64 deep. On failure it replies 400 in
 * the route's style and returns NULL. The caller owns the result (json_decref). */
json_t *http_json_body(http_req *req);
/* The same checks, parsed into the request's arena with every number's digits kept
 * (base/jdoc.h); NULL after a 400. */
const jd_value *http_jdoc_body(http_req *req);

/* A field of an application/x-www-form-urlencoded body, decoded into the request arena:
 * 0 when it occurs exactly once, OSB_E_NOTFOUND when absent, OSB_E_CONFLICT when repeated
 * (OAuth forbids repeated parameters), OSB_E_INVAL when the body is malformed. */
int http_form_value(http_req *req, const char *name, const char **out) WARN_UNUSED;
/* True when the Content-Type is application/x-www-form-urlencoded. */
bool http_is_form(http_req *req);
/* The credentials of an HTTP Basic Authorization header, decoded into the arena
 * (user and password are URL-decoded too, as RFC 6749 2.3.1 asks of clients). */
bool http_basic_credentials(http_req *req, const char **user, const char **password);

/* ---- response: the first reply wins; later calls are ignored ---- */
void http_add_header(http_req *req, const char *name, const char *value); /* copies both */
void http_reply(http_req *req, int status, const char *content_type, const void *body, size_t n);
/* Serialises j (not stolen) as the body; 500 if it cannot be serialised. */
void http_reply_json(http_req *req, int status, const json_t *j);
/* An error in the route's style. code may be NULL on OSB routes (no "error" field);
 * target may be NULL. */
void http_reply_error(http_req *req, int status, const char *code, const char *message,
                      const char *target);
void http_reply_errorf(http_req *req, int status, const char *code, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

/* A page of a list, as the platform's list endpoints answer it: 200 {"rows_count",
 * "next_url", "resources": rows (stolen)}. With more, next_url is
 * path?limit=LIMIT&start=LAST and each filter whose value is not NULL, percent-encoded;
 * otherwise null. */
typedef struct {
    const char *name, *value;
} http_filter;
void http_reply_page(http_req *req, json_t *rows, bool more, const char *path, int64_t limit,
                     int64_t last, const http_filter *filters, size_t nfilters);

/* ---- deferred replies ----
 * A handler that waits for something (a group commit, a backend) calls http_defer() and
 * returns; the connection is suspended without holding a worker thread. Whoever finishes
 * the work calls http_reply*() and then http_resume() from any thread, exactly once.
 * http_defer() returns false while the server is stopping: then answer synchronously. */
bool http_defer(http_req *req) WARN_UNUSED;
void http_resume(http_req *req);

const char *http_status_text(int status);

/* Prometheus text of the server's counters: requests by method and status class, and a
 * latency histogram. Appends to out. */
int http_server_metrics(http_server *s, buf *out) WARN_UNUSED;

#endif
