/* Unit tests of the asynchronous HTTP client against our own server, started in-process on
 * 127.0.0.1:0 with small handlers: answers and echoes, credentials, connection limits and
 * reuse (checked on the server side too, by the clients' source ports), timeouts beside
 * requests that go on, caps, captured headers, redirects left alone and stopping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "http/client.h"
#include "http/http.h"

#define WAIT_MS      15000
#define MAX_DEFERRED 16
#define MAX_PORTS    256

/* ---------------------------------------------------------------- the server */

static struct {
    http_router *router;
    http_server *server;
    unsigned port;
    char base[64];

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    http_req *deferred[MAX_DEFERRED];
    int ndeferred;
    bool answer_slow_now; /* once set, /slow answers at once instead of deferring */
    int json_hits;
    unsigned short ports[MAX_PORTS]; /* distinct client ports seen by /work */
    int nports;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_json(http_req *req, void *ud)
{
    pthread_mutex_lock(&srv.mu);
    srv.json_hits++;
    pthread_mutex_unlock(&srv.mu);
    static const char body[] = "{\"ok\":true,\"n\":42}";
    http_reply(req, 200, "application/json", body, sizeof body - 1);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* Answers with what arrived: method, body, a few headers, the Basic credentials. */
static void on_echo(http_req *req, void *ud)
{
    const char *user = NULL, *password = NULL;
    bool basic = http_basic_credentials(req, &user, &password);
    /* clang-format off */
    json_t *j = json_pack("{s:s, s:s%, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                          "method", req->method_name,
                          "body", req->body.len ? req->body.data : "", req->body.len,
                          "x_test", str_or_null(http_header(req, "X-Test")),
                          "x_other", str_or_null(http_header(req, "X-Other")),
                          "content_type", str_or_null(http_header(req, "Content-Type")),
                          "content_length", str_or_null(http_header(req, "Content-Length")),
                          "authorization", str_or_null(http_header(req, "Authorization")),
                          "user_agent", str_or_null(http_header(req, "User-Agent")),
                          "basic_user", str_or_null(basic ? user : NULL),
                          "basic_password", str_or_null(basic ? password : NULL));
    /* clang-format on */
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* Waits for the test to answer it (answer_deferred), without holding a server thread. */
static void on_slow(http_req *req, void *ud)
{
    pthread_mutex_lock(&srv.mu);
    if (!srv.answer_slow_now && srv.ndeferred < MAX_DEFERRED && http_defer(req)) {
        srv.deferred[srv.ndeferred++] = req;
        pthread_cond_broadcast(&srv.cv);
        pthread_mutex_unlock(&srv.mu);
        return;
    }
    pthread_mutex_unlock(&srv.mu);
    http_reply(req, 200, "text/plain", "late", 4);
}

/* Takes 20 ms on a server thread and records the client's source port. */
static void on_work(http_req *req, void *ud)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned short port = 0;
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)ci->client_addr)->sin_port);
    pthread_mutex_lock(&srv.mu);
    bool seen = false;
    for (int i = 0; i < srv.nports; i++)
        seen |= srv.ports[i] == port;
    if (!seen && srv.nports < MAX_PORTS)
        srv.ports[srv.nports++] = port;
    pthread_mutex_unlock(&srv.mu);
    usleep(20000);
    http_reply(req, 200, "text/plain", "done", 4);
}

static void on_retry(http_req *req, void *ud)
{
    /* Names in odd cases: the client must match them case-insensitively. */
    http_add_header(req, "retry-after", "7");
    http_add_header(req, "LOCATION", "/v2/service_instances/x/last_operation?op=1");
    http_reply(req, 503, "application/json", "{}", 2);
}

static void on_redirect(http_req *req, void *ud)
{
    http_add_header(req, "Location", "/json");
    http_reply(req, 302, "text/plain", "moved", 5);
}

static void on_big(http_req *req, void *ud)
{
    static char body[64 * 1024];
    memset(body, 'x', sizeof body);
    http_reply(req, 200, "text/plain", body, sizeof body);
}

static int group_setup(void **state)
{
    srv.router = http_router_new();
    if (!srv.router)
        return -1;
    unsigned all = HTTP_GET | HTTP_POST | HTTP_PUT | HTTP_PATCH | HTTP_DELETE;
    if (http_route(srv.router, HTTP_GET, "/json", HTTP_STYLE_PLATFORM, on_json, NULL) ||
        http_route(srv.router, all, "/echo", HTTP_STYLE_PLATFORM, on_echo, NULL) ||
        http_route(srv.router, HTTP_GET, "/slow", HTTP_STYLE_PLATFORM, on_slow, NULL) ||
        http_route(srv.router, HTTP_GET, "/work", HTTP_STYLE_PLATFORM, on_work, NULL) ||
        http_route(srv.router, HTTP_GET, "/retry", HTTP_STYLE_PLATFORM, on_retry, NULL) ||
        http_route(srv.router, HTTP_GET, "/redirect", HTTP_STYLE_PLATFORM, on_redirect, NULL) ||
        http_route(srv.router, HTTP_GET, "/big", HTTP_STYLE_PLATFORM, on_big, NULL))
        return -1;
    http_config hc = {.listen = "127.0.0.1:0", .threads = 8, .name = "test-server"};
    if (http_server_start(&hc, srv.router, &srv.server))
        return -1;
    srv.port = http_server_port(srv.server);
    snprintf(srv.base, sizeof srv.base, "http://127.0.0.1:%u", srv.port);
    return 0;
}

/* Answers every deferred request, so that the server can stop. */
static void answer_deferred(void)
{
    pthread_mutex_lock(&srv.mu);
    srv.answer_slow_now = true;
    for (int i = 0; i < srv.ndeferred; i++) {
        http_reply(srv.deferred[i], 200, "text/plain", "late", 4);
        http_resume(srv.deferred[i]);
    }
    srv.ndeferred = 0;
    pthread_mutex_unlock(&srv.mu);
}

static int group_teardown(void **state)
{
    answer_deferred();
    http_server_stop(srv.server);
    http_router_free(srv.router);
    return 0;
}

static int setup(void **state)
{
    pthread_mutex_lock(&srv.mu);
    srv.answer_slow_now = false;
    srv.ndeferred = 0;
    srv.json_hits = 0;
    srv.nports = 0;
    pthread_mutex_unlock(&srv.mu);
    return 0;
}

static int teardown(void **state)
{
    answer_deferred();
    return 0;
}

/* Waits until the server holds n deferred requests. */
static bool wait_deferred(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&srv.mu);
    int rc = 0;
    while (srv.ndeferred < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&srv.cv, &srv.mu, &until);
    bool ok = srv.ndeferred >= n;
    pthread_mutex_unlock(&srv.mu);
    return ok;
}

static void url(char *out, size_t n, const char *path)
{
    snprintf(out, n, "%s%s", srv.base, path);
}

/* ---------------------------------------------------------------- results */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
} tracker;

typedef struct {
    tracker *tr;
    int calls;
    long status;
    char *error;
    bool timed_out;
    char *body;
    size_t body_len;
    char *content_type, *retry_after, *location;
    int64_t elapsed_us;
    int64_t finished_us;
    pthread_t thread;
} result;

static pthread_t main_thread;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void on_done(void *ud, const http_client_response *r)
{
    result *res = ud;
    tracker *tr = res->tr;
    pthread_mutex_lock(&tr->mu);
    res->calls++;
    res->status = r->status;
    free(res->error);
    res->error = dup_or_null(r->error);
    res->timed_out = r->timed_out;
    free(res->body);
    res->body = NULL;
    if (r->body) {
        res->body = malloc(r->body_len + 1);
        memcpy(res->body, r->body, r->body_len);
        res->body[r->body_len] = '\0';
    }
    res->body_len = r->body_len;
    free(res->content_type);
    free(res->retry_after);
    free(res->location);
    res->content_type = dup_or_null(r->content_type);
    res->retry_after = dup_or_null(r->retry_after);
    res->location = dup_or_null(r->location);
    res->elapsed_us = r->elapsed_us;
    res->finished_us = time_mono_us();
    res->thread = pthread_self();
    tr->finished++;
    pthread_cond_broadcast(&tr->cv);
    pthread_mutex_unlock(&tr->mu);
}

static void tracker_init(tracker *tr)
{
    pthread_mutex_init(&tr->mu, NULL);
    pthread_cond_init(&tr->cv, NULL);
    tr->finished = 0;
}

static void tracker_destroy(tracker *tr)
{
    pthread_mutex_destroy(&tr->mu);
    pthread_cond_destroy(&tr->cv);
}

static void results_init(result *r, size_t n, tracker *tr)
{
    memset(r, 0, n * sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i].tr = tr;
}

static void results_free(result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].error);
        free(r[i].body);
        free(r[i].content_type);
        free(r[i].retry_after);
        free(r[i].location);
    }
}

/* Waits until n callbacks have run on tr; false after WAIT_MS. */
static bool wait_finished(tracker *tr, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&tr->mu);
    int rc = 0;
    while (tr->finished < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&tr->cv, &tr->mu, &until);
    bool ok = tr->finished >= n;
    pthread_mutex_unlock(&tr->mu);
    return ok;
}

static http_client *start_client(unsigned per_host)
{
    http_client_config cfg = {.max_host_connections = per_host, .name = "test"};
    http_client *c = NULL;
    assert_int_equal(http_client_start(&cfg, &c), 0);
    assert_non_null(c);
    return c;
}

static void send_get(http_client *c, const char *path, long timeout_ms, size_t max_body,
                     result *res)
{
    char u[128];
    url(u, sizeof u, path);
    http_client_request rq = {
        .method = "GET", .url = u, .timeout_ms = timeout_ms, .max_body = max_body};
    assert_int_equal(http_client_send(c, &rq, on_done, res), 0);
}

static void assert_accounted(http_client *c)
{
    uint64_t sent, done, failed;
    http_client_stats(c, &sent, &done, &failed, NULL);
    assert_int_equal(sent, done + failed);
}

/* ---------------------------------------------------------------- tests */

static void test_get_json(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[1];
    results_init(r, 1, &tr);
    send_get(c, "/json", 0, 0, &r[0]);
    assert_true(wait_finished(&tr, 1));
    assert_int_equal(r[0].calls, 1);
    assert_null(r[0].error);
    assert_false(r[0].timed_out);
    assert_int_equal(r[0].status, 200);
    assert_string_equal(r[0].body, "{\"ok\":true,\"n\":42}");
    assert_int_equal(r[0].body_len, strlen("{\"ok\":true,\"n\":42}"));
    assert_non_null(r[0].content_type);
    assert_string_equal(r[0].content_type, "application/json");
    assert_null(r[0].retry_after);
    assert_null(r[0].location);
    assert_true(r[0].elapsed_us > 0);
    /* The callback runs on the client's thread, never the caller's. */
    assert_false(pthread_equal(r[0].thread, main_thread));

    uint64_t sent, done, failed, connects;
    http_client_stats(c, &sent, &done, &failed, &connects);
    assert_int_equal(sent, 1);
    assert_int_equal(done, 1);
    assert_int_equal(failed, 0);
    assert_int_equal(connects, 1);
    buf m;
    buf_init(&m, 0);
    assert_int_equal(http_client_metrics(c, &m), 0);
    assert_non_null(strstr(buf_cstr(&m), "osbill_http_client_requests_total{client=\"test\"} 1\n"));
    assert_non_null(strstr(buf_cstr(&m), "osbill_http_client_in_flight{client=\"test\"} 0\n"));
    buf_free(&m);
    http_client_stop(c);
    results_free(r, 1);
    tracker_destroy(&tr);
}

static json_t *body_json(const result *r)
{
    assert_non_null(r->body);
    json_t *j = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    return j;
}

static const char *field(json_t *j, const char *name)
{
    return json_string_value(json_object_get(j, name)); /* NULL for JSON null */
}

static void test_put_body_and_headers_echoed(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[5];
    results_init(r, 5, &tr);
    char u[128];
    url(u, sizeof u, "/echo");
    /* The request is copied: the caller's storage is overwritten right after sending. */
    char body[] = "{\"plan_id\":\"p1\",\"parameters\":{\"a\":1}}";
    char h1[] = "X-Test: hello world", h2[] = "Content-Type: application/json";
    const char *headers[] = {h1, h2, "X-Other: 2.17", NULL};
    http_client_request rq = {
        .method = "PUT", .url = u, .headers = headers, .body = body, .body_len = strlen(body)};
    assert_int_equal(http_client_send(c, &rq, on_done, &r[0]), 0);
    memset(body, '#', strlen(body));
    memset(h1, '#', strlen(h1));
    memset(h2, '#', strlen(h2));

    /* The other methods; POST without a body; PATCH with a body but no Content-Type. */
    http_client_request post = {.method = "POST", .url = u};
    http_client_request patch = {.method = "PATCH", .url = u, .body = "abc", .body_len = 3};
    http_client_request del = {.method = "DELETE", .url = u};
    /* Binary bodies keep their NUL bytes. */
    http_client_request post_bin = {.method = "POST", .url = u, .body = "a\0b", .body_len = 3};
    assert_int_equal(http_client_send(c, &post, on_done, &r[1]), 0);
    assert_int_equal(http_client_send(c, &patch, on_done, &r[2]), 0);
    assert_int_equal(http_client_send(c, &del, on_done, &r[3]), 0);
    assert_int_equal(http_client_send(c, &post_bin, on_done, &r[4]), 0);
    assert_true(wait_finished(&tr, 5));

    assert_int_equal(r[0].status, 200);
    json_t *j = body_json(&r[0]);
    assert_string_equal(field(j, "method"), "PUT");
    assert_string_equal(field(j, "body"), "{\"plan_id\":\"p1\",\"parameters\":{\"a\":1}}");
    assert_string_equal(field(j, "x_test"), "hello world");
    assert_string_equal(field(j, "x_other"), "2.17");
    assert_string_equal(field(j, "content_type"), "application/json");
    assert_string_equal(field(j, "user_agent"), "osbill");
    assert_null(field(j, "authorization"));
    json_decref(j);

    j = body_json(&r[1]);
    assert_string_equal(field(j, "method"), "POST");
    assert_string_equal(field(j, "body"), "");
    assert_string_equal(field(j, "content_length"), "0");
    json_decref(j);

    j = body_json(&r[2]);
    assert_string_equal(field(j, "method"), "PATCH");
    assert_string_equal(field(j, "body"), "abc");
    /* libcurl's default would have been application/x-www-form-urlencoded. */
    assert_null(field(j, "content_type"));
    json_decref(j);

    j = body_json(&r[3]);
    assert_string_equal(field(j, "method"), "DELETE");
    assert_string_equal(field(j, "body"), "");
    json_decref(j);

    j = body_json(&r[4]);
    json_t *b = json_object_get(j, "body");
    assert_int_equal(json_string_length(b), 3);
    assert_memory_equal(json_string_value(b), "a\0b", 3);
    json_decref(j);

    for (int i = 0; i < 5; i++)
        assert_int_equal(r[i].calls, 1);
    assert_accounted(c);
    http_client_stop(c);
    results_free(r, 5);
    tracker_destroy(&tr);
}

static void test_basic_and_bearer_auth(void **state)
{
    http_client_config cfg = {.user_agent = "osbill-controller/1"};
    http_client *c = NULL;
    assert_int_equal(http_client_start(&cfg, &c), 0);
    tracker tr;
    tracker_init(&tr);
    result r[2];
    results_init(r, 2, &tr);
    char u[128];
    url(u, sizeof u, "/echo");
    char user[] = "broker-admin", password[] = "s3cr:et pass=!";
    char token[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    http_client_request basic = {
        .method = "GET", .url = u, .basic_user = user, .basic_password = password};
    http_client_request bearer = {.method = "GET", .url = u, .bearer_token = token};
    assert_int_equal(http_client_send(c, &basic, on_done, &r[0]), 0);
    assert_int_equal(http_client_send(c, &bearer, on_done, &r[1]), 0);
    memset(user, 'x', strlen(user));
    memset(password, 'x', strlen(password));
    memset(token, 'x', strlen(token));
    assert_true(wait_finished(&tr, 2));

    json_t *j = body_json(&r[0]);
    assert_string_equal(field(j, "basic_user"), "broker-admin");
    assert_string_equal(field(j, "basic_password"), "s3cr:et pass=!");
    assert_string_equal(field(j, "user_agent"), "osbill-controller/1");
    json_decref(j);
    j = body_json(&r[1]);
    assert_string_equal(field(j, "authorization"),
                        "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
    assert_null(field(j, "basic_user"));
    json_decref(j);
    http_client_stop(c);
    results_free(r, 2);
    tracker_destroy(&tr);
}

#define CONCURRENT 100

static void test_concurrent_within_host_limit(void **state)
{
    http_client *c = start_client(4);
    tracker tr;
    tracker_init(&tr);
    result *r = calloc(CONCURRENT, sizeof *r);
    assert_non_null(r);
    results_init(r, CONCURRENT, &tr);
    for (int i = 0; i < CONCURRENT; i++)
        send_get(c, "/work", 0, 0, &r[i]);
    assert_true(wait_finished(&tr, CONCURRENT));
    for (int i = 0; i < CONCURRENT; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_null(r[i].error);
        assert_int_equal(r[i].status, 200);
        assert_string_equal(r[i].body, "done");
    }
    uint64_t sent, done, failed, connects;
    http_client_stats(c, &sent, &done, &failed, &connects);
    assert_int_equal(sent, CONCURRENT);
    assert_int_equal(done, CONCURRENT);
    assert_int_equal(failed, 0);
    /* Parallel, but never beyond the per-host limit: by the client's count and by the
     * source ports the server saw. */
    assert_in_range(connects, 2, 4);
    pthread_mutex_lock(&srv.mu);
    int nports = srv.nports;
    pthread_mutex_unlock(&srv.mu);
    assert_in_range(nports, 2, 4);
    http_client_stop(c);
    results_free(r, CONCURRENT);
    free(r);
    tracker_destroy(&tr);
}

/* Twenty requests one after the other, each sent from the previous one's callback. */
typedef struct {
    http_client *c;
    tracker tr;
    int sent, ok;
    char url[128];
} chain;

static void on_chain_done(void *ud, const http_client_response *r)
{
    chain *ch = ud;
    pthread_mutex_lock(&ch->tr.mu);
    if (!r->error && r->status == 200)
        ch->ok++;
    bool more = ch->sent < 20;
    if (more)
        ch->sent++;
    else
        ch->tr.finished = 1;
    pthread_cond_broadcast(&ch->tr.cv);
    pthread_mutex_unlock(&ch->tr.mu);
    if (more) {
        http_client_request rq = {.method = "GET", .url = ch->url};
        if (http_client_send(ch->c, &rq, on_chain_done, ch) != 0) {
            pthread_mutex_lock(&ch->tr.mu);
            ch->tr.finished = 1;
            pthread_cond_broadcast(&ch->tr.cv);
            pthread_mutex_unlock(&ch->tr.mu);
        }
    }
}

static void test_keep_alive_reuse(void **state)
{
    chain ch = {.c = start_client(0)};
    tracker_init(&ch.tr);
    url(ch.url, sizeof ch.url, "/work");
    http_client_request rq = {.method = "GET", .url = ch.url};
    ch.sent = 1;
    assert_int_equal(http_client_send(ch.c, &rq, on_chain_done, &ch), 0);
    assert_true(wait_finished(&ch.tr, 1));
    pthread_mutex_lock(&ch.tr.mu);
    int sent = ch.sent, ok = ch.ok;
    pthread_mutex_unlock(&ch.tr.mu);
    assert_int_equal(sent, 20);
    assert_int_equal(ok, 20);
    uint64_t done, connects;
    http_client_stats(ch.c, NULL, &done, NULL, &connects);
    assert_int_equal(done, 20);
    assert_int_equal(connects, 1);
    pthread_mutex_lock(&srv.mu);
    int nports = srv.nports;
    pthread_mutex_unlock(&srv.mu);
    assert_int_equal(nports, 1);
    http_client_stop(ch.c);
    tracker_destroy(&ch.tr);
}

static void test_timeout_does_not_stall_others(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[12];
    results_init(r, 12, &tr);
    send_get(c, "/slow", 300, 0, &r[0]);
    assert_true(wait_deferred(1));
    int64_t deferred_at = time_mono_us();
    for (int i = 1; i < 11; i++)
        send_get(c, "/json", 0, 0, &r[i]);
    assert_true(wait_finished(&tr, 11));

    assert_int_equal(r[0].calls, 1);
    assert_non_null(r[0].error);
    assert_string_equal(r[0].error, "timeout");
    assert_true(r[0].timed_out);
    assert_int_equal(r[0].status, 0);
    assert_null(r[0].body);
    assert_in_range(r[0].elapsed_us, 250000, 1500000);
    for (int i = 1; i < 11; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_null(r[i].error);
        assert_int_equal(r[i].status, 200);
        /* Answered while the slow request was still waiting. */
        assert_true(r[i].finished_us < r[0].finished_us);
    }
    /* The client goes on working after a timeout. */
    send_get(c, "/json", 0, 0, &r[11]);
    assert_true(wait_finished(&tr, 12));
    assert_int_equal(r[11].status, 200);
    uint64_t failed;
    http_client_stats(c, NULL, NULL, &failed, NULL);
    assert_int_equal(failed, 1);
    assert_accounted(c);
    /* Stopped before the late answer: here libmicrohttpd 0.9.75 did not finish a resumed
     * connection whose client had gone while the client's other keep-alive connections
     * stayed open, and http_server_stop then waited 30 s for it. */
    http_client_stop(c);

    /* The handler answers only 2 s after it deferred, long after the client gave up. */
    int64_t wait = 2000000 - (time_mono_us() - deferred_at);
    if (wait > 0)
        usleep((useconds_t)wait);
    answer_deferred();
    results_free(r, 12);
    tracker_destroy(&tr);
}

static void test_connection_refused(void **state)
{
    /* A port that was just free: bound, then closed. */
    int fd;
    unsigned port;
    assert_int_equal(http_listen("127.0.0.1:0", &fd, &port), 0);
    close(fd);
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[1];
    results_init(r, 1, &tr);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/json", port);
    http_client_request rq = {.method = "GET", .url = u};
    assert_int_equal(http_client_send(c, &rq, on_done, &r[0]), 0);
    assert_true(wait_finished(&tr, 1));
    assert_int_equal(r[0].calls, 1);
    assert_non_null(r[0].error);
    assert_string_equal(r[0].error, "connect");
    assert_false(r[0].timed_out);
    assert_int_equal(r[0].status, 0);
    assert_null(r[0].body);
    uint64_t failed;
    http_client_stats(c, NULL, NULL, &failed, NULL);
    assert_int_equal(failed, 1);
    http_client_stop(c);
    results_free(r, 1);
    tracker_destroy(&tr);
}

/* A client for brokers' addresses: a metadata address is refused before any connection is
 * made, and a proxy named by the environment is not used (the request still reaches our
 * server directly). */
static void test_untrusted_targets(void **state)
{
    http_client_config cfg = {.name = "untrusted", .untrusted_targets = true};
    http_client *c = NULL;
    assert_int_equal(http_client_start(&cfg, &c), 0);
    tracker tr;
    tracker_init(&tr);
    result r[3];
    results_init(r, 3, &tr);
    const char *urls[] = {"http://169.254.169.254/latest/meta-data", "http://[fe80::1]:80/x"};
    for (int i = 0; i < 2; i++) {
        http_client_request rq = {.method = "GET", .url = urls[i], .timeout_ms = 5000};
        assert_int_equal(http_client_send(c, &rq, on_done, &r[i]), 0);
    }
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    send_get(c, "/json", 0, 0, &r[2]);
    assert_true(wait_finished(&tr, 3));
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    for (int i = 0; i < 2; i++) {
        assert_non_null(r[i].error);
        assert_string_equal(r[i].error, "refused");
        assert_int_equal(r[i].status, 0);
    }
    assert_null(r[2].error);
    assert_int_equal(r[2].status, 200);
    char text[64];
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "169.254.1.2", &in.sin_addr);
    assert_true(http_metadata_address((struct sockaddr *)&in, text, sizeof text));
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    assert_false(http_metadata_address((struct sockaddr *)&in, text, sizeof text));
    http_client_stop(c);
    results_free(r, 3);
    tracker_destroy(&tr);
}

/* A raw server that answers one request with a body of unknown length, so that only the
 * streaming cap can stop it. */
typedef struct {
    int fd;
    unsigned port;
} raw_server;

static void *raw_serve(void *arg)
{
    raw_server *rs = arg;
    int s = accept(rs->fd, NULL, NULL);
    if (s < 0)
        return NULL;
    char in[4096];
    size_t have = 0;
    while (have < sizeof in - 1) {
        ssize_t n = recv(s, in + have, sizeof in - 1 - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
        in[have] = '\0';
        if (strstr(in, "\r\n\r\n"))
            break;
    }
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Connection: close\r\n\r\n";
    if (send(s, head, sizeof head - 1, MSG_NOSIGNAL) > 0) {
        char chunk[4096];
        memset(chunk, 'y', sizeof chunk);
        for (int i = 0; i < 64; i++)
            if (send(s, chunk, sizeof chunk, MSG_NOSIGNAL) < 0)
                break;
    }
    close(s);
    return NULL;
}

static void test_answer_over_max_body(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[3];
    results_init(r, 3, &tr);
    send_get(c, "/big", 0, 1024, &r[0]);      /* Content-Length says 64 KiB: over */
    send_get(c, "/big", 0, 64 * 1024, &r[1]); /* exactly at the cap: fine */
    assert_true(wait_finished(&tr, 2));
    assert_non_null(r[0].error);
    assert_string_equal(r[0].error, "too_big");
    assert_int_equal(r[0].status, 0);
    assert_null(r[0].body);
    assert_null(r[1].error);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(r[1].body_len, 64 * 1024);
    assert_int_equal(r[1].body[0], 'x');

    raw_server rs;
    assert_int_equal(http_listen("127.0.0.1:0", &rs.fd, &rs.port), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_serve, &rs), 0);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/stream", rs.port);
    http_client_request rq = {.method = "GET", .url = u, .max_body = 10000};
    assert_int_equal(http_client_send(c, &rq, on_done, &r[2]), 0);
    assert_true(wait_finished(&tr, 3));
    pthread_join(th, NULL);
    close(rs.fd);
    assert_non_null(r[2].error);
    assert_string_equal(r[2].error, "too_big");
    assert_int_equal(r[2].status, 0);
    assert_accounted(c);
    http_client_stop(c);
    results_free(r, 3);
    tracker_destroy(&tr);
}

static void test_retry_after_and_location(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[1];
    results_init(r, 1, &tr);
    send_get(c, "/retry", 0, 0, &r[0]);
    assert_true(wait_finished(&tr, 1));
    assert_null(r[0].error);
    assert_int_equal(r[0].status, 503);
    assert_non_null(r[0].retry_after);
    assert_string_equal(r[0].retry_after, "7");
    assert_non_null(r[0].location);
    assert_string_equal(r[0].location, "/v2/service_instances/x/last_operation?op=1");
    assert_non_null(r[0].content_type);
    assert_string_equal(r[0].content_type, "application/json");
    assert_string_equal(r[0].body, "{}");
    http_client_stop(c);
    results_free(r, 1);
    tracker_destroy(&tr);
}

static void test_redirect_not_followed(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[1];
    results_init(r, 1, &tr);
    send_get(c, "/redirect", 0, 0, &r[0]);
    assert_true(wait_finished(&tr, 1));
    assert_null(r[0].error);
    assert_int_equal(r[0].status, 302);
    assert_string_equal(r[0].location, "/json");
    assert_string_equal(r[0].body, "moved");
    pthread_mutex_lock(&srv.mu);
    int hits = srv.json_hits;
    pthread_mutex_unlock(&srv.mu);
    assert_int_equal(hits, 0);
    http_client_stop(c);
    results_free(r, 1);
    tracker_destroy(&tr);
}

/* A server that reads requests and never answers them: the client's requests stay in
 * flight for as long as the test wants, without a deferred request on our own server. */
typedef struct {
    int fd;
    unsigned port;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int conns[16];
    int nconns;
    int requests; /* requests read in full */
    bool stop;
} black_hole;

static void *black_hole_serve(void *arg)
{
    black_hole *bh = arg;
    for (;;) {
        pthread_mutex_lock(&bh->mu);
        bool stop = bh->stop;
        pthread_mutex_unlock(&bh->mu);
        if (stop)
            break;
        struct pollfd pfd = {.fd = bh->fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int s = accept(bh->fd, NULL, NULL);
        if (s < 0)
            continue;
        struct timeval tv = {.tv_sec = 2};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char in[4096];
        size_t have = 0;
        bool whole = false;
        while (!whole && have < sizeof in - 1) {
            ssize_t n = recv(s, in + have, sizeof in - 1 - have, 0);
            if (n <= 0)
                break;
            have += (size_t)n;
            in[have] = '\0';
            whole = strstr(in, "\r\n\r\n") != NULL;
        }
        pthread_mutex_lock(&bh->mu);
        if (bh->nconns < (int)ARRAY_LEN(bh->conns))
            bh->conns[bh->nconns++] = s;
        else
            close(s);
        bh->requests += whole;
        pthread_cond_broadcast(&bh->cv);
        pthread_mutex_unlock(&bh->mu);
    }
    return NULL;
}

static void black_hole_start(black_hole *bh)
{
    memset(bh, 0, sizeof *bh);
    pthread_mutex_init(&bh->mu, NULL);
    pthread_cond_init(&bh->cv, NULL);
    assert_int_equal(http_listen("127.0.0.1:0", &bh->fd, &bh->port), 0);
    assert_int_equal(pthread_create(&bh->thread, NULL, black_hole_serve, bh), 0);
}

static bool black_hole_wait(black_hole *bh, int requests)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&bh->mu);
    int rc = 0;
    while (bh->requests < requests && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&bh->cv, &bh->mu, &until);
    bool ok = bh->requests >= requests;
    pthread_mutex_unlock(&bh->mu);
    return ok;
}

static void black_hole_stop(black_hole *bh)
{
    pthread_mutex_lock(&bh->mu);
    bh->stop = true;
    pthread_mutex_unlock(&bh->mu);
    pthread_join(bh->thread, NULL);
    for (int i = 0; i < bh->nconns; i++)
        close(bh->conns[i]);
    close(bh->fd);
    pthread_mutex_destroy(&bh->mu);
    pthread_cond_destroy(&bh->cv);
}

static void test_stop_cancels_in_flight(void **state)
{
    black_hole bh;
    black_hole_start(&bh);
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[6];
    results_init(r, 6, &tr);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%u/v2/service_instances/x", bh.port);
    http_client_request rq = {.method = "PUT", .url = u, .body = "{}", .body_len = 2};
    for (int i = 0; i < 3; i++)
        assert_int_equal(http_client_send(c, &rq, on_done, &r[i]), 0);
    assert_true(black_hole_wait(&bh, 3)); /* in flight: the server has read them */
    for (int i = 3; i < 6; i++)           /* queued, or just started */
        assert_int_equal(http_client_send(c, &rq, on_done, &r[i]), 0);
    int64_t t0 = time_mono_us();
    http_client_stop(c);
    /* Stopping does not wait for answers (the default timeout is 60 s). */
    assert_true(time_mono_us() - t0 < 1000000);
    assert_int_equal(tr.finished, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_non_null(r[i].error);
        assert_string_equal(r[i].error, "canceled");
        assert_int_equal(r[i].status, 0);
        assert_null(r[i].body);
    }
    black_hole_stop(&bh);
    results_free(r, 6);
    tracker_destroy(&tr);
}

/* A callback that holds the client's thread until the test opens the gate. */
typedef struct {
    result res;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
} gate;

static void on_done_gated(void *ud, const http_client_response *r)
{
    gate *g = ud;
    on_done(&g->res, r);
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void *stop_thread(void *arg)
{
    http_client_stop(arg);
    return NULL;
}

/* Requests still in the queue when stopping begins are canceled too, and sends from then
 * on are refused with OSB_E_BUSY. */
static void test_stop_cancels_queued(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    g.res.tr = &tr;
    result r[64];
    results_init(r, 64, &tr);
    char u[128];
    url(u, sizeof u, "/json");
    http_client_request rq = {.method = "GET", .url = u};
    assert_int_equal(http_client_send(c, &rq, on_done_gated, &g), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);

    /* The client's thread is held in a callback: these stay queued. */
    int queued = 0;
    for (; queued < 3; queued++)
        assert_int_equal(http_client_send(c, &rq, on_done, &r[queued]), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_thread, c), 0);
    int rc;
    while ((rc = http_client_send(c, &rq, on_done, &r[queued])) == 0 && queued < 63) {
        queued++;
        usleep(1000);
    }
    assert_int_equal(rc, OSB_E_BUSY);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);

    assert_int_equal(g.res.calls, 1);
    assert_null(g.res.error);
    assert_int_equal(g.res.status, 200);
    assert_int_equal(tr.finished, 1 + queued);
    for (int i = 0; i < queued; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_non_null(r[i].error);
        assert_string_equal(r[i].error, "canceled");
        assert_int_equal(r[i].status, 0);
    }
    assert_int_equal(r[queued].calls, 0); /* the refused one never calls back */
    results_free(r, 64);
    results_free(&g.res, 1);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    tracker_destroy(&tr);
}

static void test_refuses_bad_requests(void **state)
{
    http_client *c = start_client(0);
    tracker tr;
    tracker_init(&tr);
    result r[1];
    results_init(r, 1, &tr);
    char u[128];
    url(u, sizeof u, "/echo");
    const char *crlf[] = {"X-Test: a\r\nX-Injected: b", NULL};
    const char *no_name[] = {": value", NULL};
    const char *no_colon[] = {"X-Test", NULL};
    const char *auth[] = {"Authorization: Basic eDp5", NULL};
    http_client_request bad[] = {
        {.method = "TRACE", .url = u},
        {.method = NULL, .url = u},
        {.method = "get", .url = u},
        {.method = "GET", .url = NULL},
        {.method = "GET", .url = "ftp://127.0.0.1/x"},
        {.method = "GET", .url = "file:///etc/passwd"},
        {.method = "GET", .url = "http://user:pw@127.0.0.1/x"},
        {.method = "GET", .url = "http:///x"},
        {.method = "GET", .url = u, .headers = crlf},
        {.method = "GET", .url = u, .headers = no_name},
        {.method = "GET", .url = u, .headers = no_colon},
        {.method = "GET", .url = u, .headers = auth, .bearer_token = "t"},
        {.method = "GET", .url = u, .basic_user = "a", .bearer_token = "t"},
        {.method = "GET", .url = u, .basic_user = "a:b", .basic_password = "c"},
        {.method = "GET", .url = u, .basic_password = "c"},
        {.method = "GET", .url = u, .bearer_token = "t\r\nX: y"},
        {.method = "GET", .url = u, .body = "x", .body_len = 1},
        {.method = "GET", .url = u, .timeout_ms = -1},
        {.method = "GET", .url = u, .connect_timeout_ms = -1},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int rc = http_client_send(c, &bad[i], on_done, &r[0]);
        if (rc != OSB_E_INVAL)
            fail_msg("request %zu: got %d, want OSB_E_INVAL", i, rc);
    }
    http_client_request ok = {.method = "GET", .url = u};
    assert_int_equal(http_client_send(c, &ok, NULL, NULL), OSB_E_INVAL);
    uint64_t sent;
    http_client_stats(c, &sent, NULL, NULL, NULL);
    assert_int_equal(sent, 0);
    http_client_stop(c);
    assert_int_equal(r[0].calls, 0); /* refused requests never call back */
    results_free(r, 1);
    tracker_destroy(&tr);
}

/* `test_client PATTERN` runs the tests whose names match PATTERN (cmocka's filter). */
int main(int argc, char **argv)
{
    main_thread = pthread_self();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    if (argc > 2)
        cmocka_set_skip_filter(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_body_and_headers_echoed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_and_bearer_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_within_host_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_does_not_stall_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_over_max_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_and_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_cancels_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_cancels_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_requests, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
