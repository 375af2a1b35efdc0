/* http client: one thread per client drives a libcurl multi handle; other threads hand it
 * fully prepared transfers through a mutex-protected queue and wake it with curl_multi_wakeup.
 * The multi handle's connection cache gives keep-alive reuse per host:port. */
#include "http/client.h"

#include <arpa/inet.h>
#include <assert.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_CONNECTIONS      64
#define DEFAULT_MAX_HOST_CONNECTIONS 8
#define DEFAULT_TIMEOUT_MS           60000L
#define DEFAULT_CONNECT_TIMEOUT_MS   10000L
#define DEFAULT_MAX_BODY             (1u << 20)
#define MAX_HEADER_VALUE             8192 /* a captured response header's value */
#define POLL_MS                      1000

typedef enum { FAIL_NONE = 0, FAIL_TOO_BIG, FAIL_NOMEM, FAIL_REFUSED } fail_reason;

/* A response header the client hands to the callback; set tells "absent" from "empty". */
typedef struct {
    buf value;
    bool set;
} captured;

typedef struct transfer {
    struct transfer *next, *prev; /* the queue (next only), then the active list */
    http_client *client;
    CURL *easy;
    struct curl_slist *headers; /* may hold credentials: wiped before freeing */
    char *body;                 /* the request body's copy: wiped before freeing */
    size_t body_len;
    buf answer;
    captured content_type, retry_after, location;
    fail_reason fail;
    bool in_multi;
    http_client_done_fn done;
    void *ud;
    const char *method; /* a static string */
    int64_t start_us;
    char errbuf[CURL_ERROR_SIZE];
} transfer;

struct http_client {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    transfer *queue_head, *queue_tail; /* under mu */
    bool stopping;                     /* under mu */
    transfer *active;                  /* the client's thread only */
    char *user_agent;
    char *name;
    bool untrusted; /* untrusted_targets */
    /* Updated atomically. */
    uint64_t sent, done, failed, connects;
    int64_t in_flight;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

static void curl_setup(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* ---------------------------------------------------------------- transfers */

static void wipe_headers(struct curl_slist *h)
{
    for (struct curl_slist *i = h; i; i = i->next)
        secure_wipe(i->data, strlen(i->data));
    curl_slist_free_all(h);
}

static void transfer_free(transfer *t)
{
    if (!t)
        return;
    if (t->easy)
        curl_easy_cleanup(t->easy);
    wipe_headers(t->headers);
    if (t->body) {
        secure_wipe(t->body, t->body_len);
        free(t->body);
    }
    /* Bind answers carry credentials. */
    if (t->answer.data)
        secure_wipe(t->answer.data, t->answer.len);
    buf_free(&t->answer);
    buf_free(&t->content_type.value);
    buf_free(&t->retry_after.value);
    buf_free(&t->location.value);
    free(t);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    transfer *t = ud;
    size_t len = size * n;
    int rc = buf_append(&t->answer, p, len);
    if (rc) {
        t->fail = rc == OSB_E_TOOBIG ? FAIL_TOO_BIG : FAIL_NOMEM;
        return 0; /* short: libcurl aborts the transfer */
    }
    return len;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    transfer *t = ud;
    size_t len = size * n;
    /* A status line starts another response (after 100 Continue or a proxy's CONNECT):
     * only the last one's headers count. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        t->content_type.set = t->retry_after.set = t->location.set = false;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - p);
    captured *cap = NULL;
    if (name_len == 12 && strncasecmp(p, "content-type", 12) == 0)
        cap = &t->content_type;
    else if (name_len == 11 && strncasecmp(p, "retry-after", 11) == 0)
        cap = &t->retry_after;
    else if (name_len == 8 && strncasecmp(p, "location", 8) == 0)
        cap = &t->location;
    if (!cap)
        return len;
    const char *v = colon + 1, *end = p + len;
    while (v < end && is_space(*v))
        v++;
    while (end > v && is_space(end[-1]))
        end--;
    buf_reset(&cap->value);
    int rc = buf_append(&cap->value, v, (size_t)(end - v));
    if (rc) {
        t->fail = rc == OSB_E_TOOBIG ? FAIL_TOO_BIG : FAIL_NOMEM;
        return 0;
    }
    cap->set = true;
    return len;
}

static const char *captured_value(captured *c)
{
    return c->set ? buf_cstr(&c->value) : NULL;
}

/* Takes t out of the multi handle, runs its callback and frees it; the caller has unlinked
 * it from the queue or the active list. canceled: the client is stopping, t did not finish. */
static void finish(http_client *c, transfer *t, CURLcode cc, bool canceled)
{
    if (t->in_multi) {
        curl_multi_remove_handle(c->multi, t->easy);
        t->in_multi = false;
    }
    long nconn = 0;
    if (curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK && nconn > 0)
        __atomic_add_fetch(&c->connects, (uint64_t)nconn, __ATOMIC_RELAXED);

    http_client_response r = {0};
    char error[CURL_ERROR_SIZE + 64];
    if (canceled) {
        r.error = "canceled";
    } else if (t->fail == FAIL_TOO_BIG || cc == CURLE_FILESIZE_EXCEEDED) {
        r.error = "too_big";
    } else if (t->fail == FAIL_NOMEM) {
        r.error = "out of memory";
    } else if (t->fail == FAIL_REFUSED) {
        r.error = "refused";
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        r.error = "timeout";
        r.timed_out = true;
    } else if (cc == CURLE_COULDNT_CONNECT) {
        r.error = "connect";
    } else if (cc != CURLE_OK) {
        snprintf(error, sizeof error, "%s%s%s", curl_easy_strerror(cc), t->errbuf[0] ? ": " : "",
                 t->errbuf);
        r.error = error;
    } else {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = buf_cstr(&t->answer);
        r.body_len = t->answer.len;
    }
    r.content_type = captured_value(&t->content_type);
    r.retry_after = captured_value(&t->retry_after);
    r.location = captured_value(&t->location);
    r.elapsed_us = time_mono_us() - t->start_us;

    if (log_get_level() <= LOG_DEBUG) {
        char *url = NULL;
        curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
        log_debug("%s: %s %s: %ld%s%s in %lld us", c->name, t->method, url ? url : "?", r.status,
                  r.error ? " " : "", r.error ? r.error : "", (long long)r.elapsed_us);
    }
    /* Counted before the callback, so whoever it wakes sees the counters include it. */
    __atomic_add_fetch(r.error ? &c->failed : &c->done, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&c->in_flight, 1, __ATOMIC_RELAXED);
    t->done(t->ud, &r);
    transfer_free(t);
}

static void active_add(http_client *c, transfer *t)
{
    t->prev = NULL;
    t->next = c->active;
    if (c->active)
        c->active->prev = t;
    c->active = t;
}

static void active_remove(http_client *c, transfer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        c->active = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

/* ---------------------------------------------------------------- the client's thread */

static void start_queued(http_client *c, transfer *q, bool stopping)
{
    while (q) {
        transfer *t = q;
        q = q->next;
        t->next = NULL;
        if (stopping) {
            finish(c, t, CURLE_OK, true);
            continue;
        }
        CURLMcode mc = curl_multi_add_handle(c->multi, t->easy);
        if (mc != CURLM_OK) {
            snprintf(t->errbuf, sizeof t->errbuf, "%s", curl_multi_strerror(mc));
            finish(c, t, CURLE_FAILED_INIT, false);
            continue;
        }
        t->in_multi = true;
        active_add(c, t);
    }
}

static void reap(http_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode cc = m->data.result; /* m is invalid once the handle is removed */
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        transfer *t = (transfer *)priv;
        assert(t); /* every easy handle in the multi is a transfer */
        active_remove(c, t);
        finish(c, t, cc, false);
    }
}

static void *run(void *arg)
{
    http_client *c = arg;
    pthread_setname_np(pthread_self(), "http-client");
    for (;;) {
        pthread_mutex_lock(&c->mu);
        transfer *q = c->queue_head;
        c->queue_head = c->queue_tail = NULL;
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->mu);
        start_queued(c, q, stopping);
        if (stopping)
            break;
        int running = 0;
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK)
            log_error("%s: curl_multi_perform: %s", c->name, curl_multi_strerror(mc));
        reap(c);
        mc = curl_multi_poll(c->multi, NULL, 0, POLL_MS, NULL);
        if (mc != CURLM_OK)
            log_error("%s: curl_multi_poll: %s", c->name, curl_multi_strerror(mc));
    }
    while (c->active) {
        transfer *t = c->active;
        active_remove(c, t);
        finish(c, t, CURLE_OK, true);
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

int http_client_start(const http_client_config *cfg, http_client **out)
{
    static const http_client_config defaults = {0};
    if (!cfg)
        cfg = &defaults;
    *out = NULL;
    pthread_once(&curl_once, curl_setup);
    if (!curl_ready)
        return OSB_E_IO;
    http_client *c = calloc(1, sizeof *c);
    if (!c)
        return OSB_E_NOMEM;
    int rc = 0;
    c->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "osbill");
    c->name = strdup(cfg->name ? cfg->name : "client");
    c->untrusted = cfg->untrusted_targets;
    c->multi = curl_multi_init();
    if (!c->user_agent || !c->name || !c->multi) {
        rc = OSB_E_NOMEM;
        goto fail;
    }
    long total = cfg->max_connections ? (long)cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
    long per_host =
        cfg->max_host_connections ? (long)cfg->max_host_connections : DEFAULT_MAX_HOST_CONNECTIONS;
    /* MAXCONNECTS sizes the cache of idle connections kept for reuse. */
    if (curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, total) != CURLM_OK) {
        rc = OSB_E_IO;
        goto fail;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        rc = OSB_E_IO;
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        pthread_mutex_destroy(&c->mu);
        rc = OSB_E_IO;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c->user_agent);
    free(c->name);
    free(c);
    return rc;
}

static const char *known_method(const char *m)
{
    static const char *const methods[] = {"GET", "PUT", "PATCH", "DELETE", "POST"};
    for (size_t i = 0; m && i < ARRAY_LEN(methods); i++)
        if (strcmp(m, methods[i]) == 0)
            return methods[i];
    return NULL;
}

/* http(s) only, and no credentials in the URL: they would bypass the wiping. */
static bool acceptable_url(const char *url)
{
    const char *rest;
    if (!url)
        return false;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else
        return false;
    size_t authority = strcspn(rest, "/?#");
    if (authority == 0 || memchr(rest, '@', authority))
        return false;
    return !strpbrk(url, "\r\n");
}

static bool header_named(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static bool acceptable_header(const char *line)
{
    const char *colon = strchr(line, ':');
    return colon && colon != line && !strpbrk(line, "\r\n");
}

static int append_line(struct curl_slist **h, const char *line)
{
    struct curl_slist *n = curl_slist_append(*h, line);
    if (!n)
        return OSB_E_NOMEM;
    *h = n;
    return 0;
}

/* "Authorization: Basic ..." or "... Bearer ..." for the header list; every intermediate
 * copy of the secret is wiped. */
static int append_authorization(struct curl_slist **h, const http_client_request *req)
{
    static const char basic[] = "Authorization: Basic ", bearer[] = "Authorization: Bearer ";
    if (req->bearer_token) {
        if (strpbrk(req->bearer_token, "\r\n"))
            return OSB_E_INVAL;
        size_t n = sizeof bearer + strlen(req->bearer_token);
        char *line = malloc(n);
        if (!line)
            return OSB_E_NOMEM;
        snprintf(line, n, "%s%s", bearer, req->bearer_token);
        int rc = append_line(h, line);
        secure_wipe(line, n);
        free(line);
        return rc;
    }
    if (!req->basic_user)
        return 0;
    const char *pw = req->basic_password ? req->basic_password : "";
    if (strchr(req->basic_user, ':')) /* RFC 7617: the user-id cannot hold a colon */
        return OSB_E_INVAL;
    size_t prefix = sizeof basic - 1;
    size_t plain_len = strlen(req->basic_user) + 1 + strlen(pw);
    size_t line_len = prefix + b64_encoded_len(plain_len);
    char *plain = malloc(plain_len + 1), *line = malloc(line_len);
    int rc = plain && line ? 0 : OSB_E_NOMEM;
    if (!rc) {
        snprintf(plain, plain_len + 1, "%s:%s", req->basic_user, pw);
        memcpy(line, basic, prefix);
        if (b64_encode(plain, plain_len, line + prefix, line_len - prefix) < 0)
            rc = OSB_E_NOMEM;
        else
            rc = append_line(h, line);
    }
    if (plain)
        secure_wipe(plain, plain_len + 1);
    if (line)
        secure_wipe(line, line_len);
    free(plain);
    free(line);
    return rc;
}

static int build_headers(const http_client_request *req, struct curl_slist **out)
{
    bool has_expect = false, has_type = false, has_auth = false;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        if (!acceptable_header(req->headers[i]))
            return OSB_E_INVAL;
        has_expect |= header_named(req->headers[i], "Expect");
        has_type |= header_named(req->headers[i], "Content-Type");
        has_auth |= header_named(req->headers[i], "Authorization");
    }
    if ((req->bearer_token && req->basic_user) ||
        (has_auth && (req->bearer_token || req->basic_user)))
        return OSB_E_INVAL;
    struct curl_slist *h = NULL;
    int rc = 0;
    /* libcurl would wait for "100 Continue" before larger bodies; brokers seldom send it. */
    if (!has_expect)
        rc = append_line(&h, "Expect:");
    /* Without one, libcurl would label a body application/x-www-form-urlencoded. */
    if (!rc && req->body && !has_type)
        rc = append_line(&h, "Content-Type:");
    for (size_t i = 0; !rc && req->headers && req->headers[i]; i++)
        rc = append_line(&h, req->headers[i]);
    if (!rc)
        rc = append_authorization(&h, req);
    if (rc) {
        wipe_headers(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* Every option is checked: an unsupported one must not silently weaken a request. */
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)

bool http_metadata_address(const struct sockaddr *sa, char *text, size_t n)
{
    static const unsigned char aws6[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                           0,    0,    0,    0,    0, 0, 0x02, 0x54};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)n);
        return (ntohl(in->sin_addr.s_addr) & 0xffff0000u) == 0xa9fe0000u;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *b = in6->sin6_addr.s6_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)n);
        return (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || memcmp(b, aws6, 16) == 0 ||
               (memcmp(b, mapped, 12) == 0 && b[12] == 169 && b[13] == 254);
    }
    return false;
}

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    transfer *t = ud;
    char text[64] = "";
    if (purpose == CURLSOCKTYPE_IPCXN && http_metadata_address(&addr->addr, text, sizeof text)) {
        t->fail = FAIL_REFUSED;
        log_warn("%s: refused to connect to %s (a link-local, metadata address)",
                 t->client->name, text);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

static int configure(http_client *c, transfer *t, const http_client_request *req)
{
    CURL *e = t->easy;
    CURLcode cc = CURLE_OK;
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PRIVATE, (void *)t);
    SET(CURLOPT_HTTPHEADER, t->headers);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        req->connect_timeout_ms ? req->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS);
    /* Refuses an announced Content-Length over the cap before any of the body arrives;
     * on_body enforces the cap on answers without one. */
    if (t->answer.limit <= (size_t)INT64_MAX)
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->answer.limit);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)t);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
    if (c->untrusted) {
        SET(CURLOPT_PROXY, "");
        SET(CURLOPT_NOPROXY, "*");
        SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
        SET(CURLOPT_OPENSOCKETDATA, (void *)t);
    }
    if (strcmp(t->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, t->method);
        /* POST, PUT and PATCH always carry a body (Content-Length: 0 when empty). */
        if (t->body || strcmp(t->method, "DELETE") != 0) {
            SET(CURLOPT_POSTFIELDS, t->body ? t->body : "");
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
        }
    }
    if (cc != CURLE_OK) {
        log_error("%s: cannot set up a request: %s", c->name, curl_easy_strerror(cc));
        return cc == CURLE_OUT_OF_MEMORY ? OSB_E_NOMEM : OSB_E_INVAL;
    }
    return 0;
}

#undef SET

int http_client_send(http_client *c, const http_client_request *req, http_client_done_fn done,
                     void *ud)
{
    const char *method = req ? known_method(req->method) : NULL;
    if (!method || !done || !acceptable_url(req->url) || req->timeout_ms < 0 ||
        req->connect_timeout_ms < 0 || (req->body && strcmp(method, "GET") == 0) ||
        (req->basic_password && !req->basic_user))
        return OSB_E_INVAL;
    transfer *t = calloc(1, sizeof *t);
    if (!t)
        return OSB_E_NOMEM;
    t->client = c;
    t->method = method;
    t->done = done;
    t->ud = ud;
    buf_init(&t->answer, req->max_body ? req->max_body : DEFAULT_MAX_BODY);
    buf_init(&t->content_type.value, MAX_HEADER_VALUE);
    buf_init(&t->retry_after.value, MAX_HEADER_VALUE);
    buf_init(&t->location.value, MAX_HEADER_VALUE);
    int rc = build_headers(req, &t->headers);
    if (!rc && req->body) {
        t->body = malloc(req->body_len ? req->body_len : 1);
        if (t->body) {
            memcpy(t->body, req->body, req->body_len);
            t->body_len = req->body_len;
        } else {
            rc = OSB_E_NOMEM;
        }
    }
    if (!rc && !(t->easy = curl_easy_init()))
        rc = OSB_E_NOMEM;
    if (!rc)
        rc = configure(c, t, req);
    if (rc) {
        transfer_free(t);
        return rc;
    }
    t->start_us = time_mono_us();

    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        transfer_free(t);
        return OSB_E_BUSY;
    }
    if (c->queue_tail)
        c->queue_tail->next = t;
    else
        c->queue_head = t;
    c->queue_tail = t;
    __atomic_add_fetch(&c->sent, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->in_flight, 1, __ATOMIC_RELAXED);
    /* Under the lock: a concurrent http_client_stop cannot free the multi handle first. */
    curl_multi_wakeup(c->multi);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void http_client_stop(http_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_mutex_unlock(&c->mu);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);
    curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->mu);
    free(c->user_agent);
    free(c->name);
    free(c);
}

void http_client_stats(http_client *c, uint64_t *sent, uint64_t *done, uint64_t *failed,
                       uint64_t *connects)
{
    if (sent)
        *sent = __atomic_load_n(&c->sent, __ATOMIC_RELAXED);
    if (done)
        *done = __atomic_load_n(&c->done, __ATOMIC_RELAXED);
    if (failed)
        *failed = __atomic_load_n(&c->failed, __ATOMIC_RELAXED);
    if (connects)
        *connects = __atomic_load_n(&c->connects, __ATOMIC_RELAXED);
}

int http_client_metrics(http_client *c, buf *out)
{
    uint64_t sent, done, failed, connects;
    http_client_stats(c, &sent, &done, &failed, &connects);
    int64_t in_flight = __atomic_load_n(&c->in_flight, __ATOMIC_RELAXED);
    return buf_printf(
        out,
        "# HELP osbill_http_client_requests_total Requests sent by the HTTP client.\n"
        "# TYPE osbill_http_client_requests_total counter\n"
        "osbill_http_client_requests_total{client=\"%s\"} %llu\n"
        "# HELP osbill_http_client_answers_total Requests that got an HTTP answer.\n"
        "# TYPE osbill_http_client_answers_total counter\n"
        "osbill_http_client_answers_total{client=\"%s\"} %llu\n"
        "# HELP osbill_http_client_failures_total Requests that ended without an answer.\n"
        "# TYPE osbill_http_client_failures_total counter\n"
        "osbill_http_client_failures_total{client=\"%s\"} %llu\n"
        "# HELP osbill_http_client_connections_total Connections opened.\n"
        "# TYPE osbill_http_client_connections_total counter\n"
        "osbill_http_client_connections_total{client=\"%s\"} %llu\n"
        "# HELP osbill_http_client_in_flight Requests queued or in progress.\n"
        "# TYPE osbill_http_client_in_flight gauge\n"
        "osbill_http_client_in_flight{client=\"%s\"} %lld\n",
        c->name, (unsigned long long)sent, c->name, (unsigned long long)done, c->name,
        (unsigned long long)failed, c->name, (unsigned long long)connects, c->name,
        (long long)in_flight);
}
