/* catalog validation: the platform calls a provider's broker the way its controller will and
 * scores it — the catalog against the offering, a provision-to-deprovision lifecycle on
 * throw-away ids, and the error cases of spec/osb.md — into a scorecard. A run lives on a
 * thread of its own with a time limit on every call, so a hanging broker never holds a server
 * thread; ?wait= defers the request (http_defer) instead of blocking one. */
#include "catalog/catalog_int.h"
#include "http/client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ANSWER (1 << 20)      /* bytes kept of a broker's answer */
#define EXCERPT_CHARS 500         /* of an answer, in a check's "actual" */
#define DEFAULT_TIMEOUT_S 10
#define MAX_TIMEOUT_S 60
#define MAX_WAIT_S 60
/* A deferred request is answered within this, whatever ?wait= asks: the server gives
 * suspended requests 30 s to be answered when it stops. */
#define DEFER_CAP_S 25
#define MAX_RUNNING 16            /* validations in flight per process */
#define MAX_RUNNING_ACCOUNT 4     /* ... per provider account, so no one takes every slot */
#define MAX_RETRY_AFTER_S 3600    /* a broker's Retry-After beyond this is taken as this */
#define RUN_CALLS 40              /* a run's time budget, in per-call timeouts */
#define STALE_MS (3600 * 1000)    /* a 'running' scorecard older than this was interrupted */
#define MAX_PLANS 200
#define TICK_MS 100

/* ---------------------------------------------------------------- the run's state */

typedef struct {
    char id[72], name[128], kind[16];
    int free, bindable, updateable; /* 1, 0, or -1 when the platform does not say */
} vplan;

typedef struct {
    catalog *c;
    /* under c->mu */
    int refs;            /* the thread, and the request that started it until it replied */
    bool finished;
    http_req *waiter;    /* a request deferred by ?wait=, answered by this thread */
    int64_t wait_until_us;

    /* a snapshot taken when the run was asked for: the thread touches no request data */
    char scorecard_id[37], offering_id[65], offering_name[64], account_id[64], initiator[128];
    char broker_id[64], region[40], url[2100], api_version[8];
    bool basic;
    char username[256], password[1100];
    char *token; /* bearer brokers: the platform's own token for them */
    char client_id[128];
    json_t *redirect_uris;
    unsigned char secret_hash[32];
    bool has_secret_hash;
    vplan *plans;
    size_t nplans;
    long timeout_ms;
    int64_t started_ms, finished_ms;

    /* the thread's own */
    int64_t budget_end_us;
    bool aborted; /* the platform is stopping */
    const char *state;
    json_t *checks;
    CURLM *multi;
} job;

static void job_free(job *j)
{
    if (!j)
        return;
    secure_wipe(j->password, sizeof j->password);
    if (j->token)
        secure_wipe(j->token, strlen(j->token));
    free(j->token);
    json_decref(j->redirect_uris);
    json_decref(j->checks);
    free(j->plans);
    free(j);
}

/* ---------------------------------------------------------------- text helpers */

/* Keys whose values never reach a scorecard: a scorecard is stored and shown. */
static bool sensitive_key(const char *k)
{
    static const char *const keys[] = {"secret", "password", "credentials", "client_secret",
                                       "apikey", "api_key", "access_token", "refresh_token",
                                       "token", "private_key"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcasecmp(k, keys[i]) == 0)
            return true;
    return false;
}

static void redact(json_t *v, int depth)
{
    const char *k;
    json_t *e;
    size_t i;
    if (depth > 64)
        return;
    if (json_is_object(v)) {
        json_object_foreach(v, k, e) {
            if (sensitive_key(k) && !json_is_null(e))
                json_object_set_new(v, k, json_string("<redacted>"));
            else
                redact(e, depth + 1);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) redact(e, depth + 1);
    }
}

/* The first EXCERPT_CHARS characters of s as valid UTF-8, bad bytes and control characters
 * (other than newline and tab) as '?'. */
static json_t *utf8_excerpt(const char *s, size_t n)
{
    buf b;
    buf_init(&b, EXCERPT_CHARS * 4 + 8);
    size_t chars = 0;
    int rc = 0;
    for (size_t i = 0; i < n && chars < EXCERPT_CHARS && !rc; chars++) {
        unsigned char c0 = (unsigned char)s[i];
        size_t len = c0 < 0x80 ? 1 : (c0 & 0xe0) == 0xc0 ? 2 : (c0 & 0xf0) == 0xe0 ? 3
                                 : (c0 & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (ok && len == 2)
            ok = c0 >= 0xc2;
        if (ok && len == 3) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = !(c0 == 0xe0 && c1 < 0xa0) && !(c0 == 0xed && c1 >= 0xa0);
        }
        if (ok && len == 4) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = c0 <= 0xf4 && !(c0 == 0xf0 && c1 < 0x90) && !(c0 == 0xf4 && c1 >= 0x90);
        }
        if (ok && len == 1 && ((c0 < ' ' && c0 != '\n' && c0 != '\t') || c0 == 0x7f))
            ok = false;
        if (ok) {
            rc = buf_append(&b, s + i, len);
            i += len;
        } else {
            rc = buf_append(&b, "?", 1);
            i++;
        }
    }
    json_t *j = json_stringn(b.len ? b.data : "", b.len);
    buf_free(&b);
    return j ? j : json_string("");
}

/* Percent-encodes a query value or path segment. */
static void pct(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < n; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* ---------------------------------------------------------------- calling the broker */

enum {
    SEND_VERSION = 1,    /* X-Broker-API-Version */
    SEND_AUTH = 2,       /* the broker's credentials */
    SEND_WRONG_AUTH = 4, /* credentials that must be refused */
    SEND_IDENTITY = 8,   /* X-Broker-API-Originating-Identity: the user who asked */
    SEND_ANYWAY = 16,    /* cleanup: runs past the time budget */
};
#define STD (SEND_VERSION | SEND_AUTH)

typedef struct {
    long status;      /* 0 when there was no answer */
    char error[200];  /* why there was no answer */
    buf body;
    json_t *json;     /* the body parsed, when it is JSON */
    double retry_after; /* seconds; < 0 when absent */
    char refused[64];   /* an address the platform would not connect to */
} answer;

static void answer_free(answer *a)
{
    buf_free(&a->body);
    json_decref(a->json);
    a->json = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t len = size * n;
    return buf_append(b, p, len) ? 0 : len; /* short: curl aborts, the cap holds */
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name && len < 64 && strncasecmp(p, name, sizeof name - 1) == 0) {
        char v[64];
        memcpy(v, p + sizeof name - 1, len - (sizeof name - 1));
        v[len - (sizeof name - 1)] = '\0';
        char *end;
        long s = strtol(v, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n' || *end == '\t')
            end++;
        if (end != v && !*end && s >= 0)
            a->retry_after = (double)(s > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : s);
    }
    return len;
}

/* Link-local addresses are the clouds' instance metadata services: never a broker, and what
 * a scorecard's excerpts would leak. Loopback and private networks stay allowed: a provider
 * tests its broker on its own machine. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    answer *a = ud;
    char text[64] = "";
    if (purpose == CURLSOCKTYPE_IPCXN && http_metadata_address(&addr->addr, text, sizeof text)) {
        snprintf(a->refused, sizeof a->refused, "%s", text);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

static json_t *scorecard_summary(const json_t *checks);
static json_t *job_json(job *j);

/* Answers the request deferred by ?wait= once its time is up; notices the platform
 * stopping. Runs on the job's thread, between and during calls. */
static void tick(job *j)
{
    http_req *due = NULL;
    int64_t now = time_mono_us();
    pthread_mutex_lock(&j->c->mu);
    if (j->c->closing)
        j->aborted = true;
    if (j->waiter && now >= j->wait_until_us) {
        due = j->waiter;
        j->waiter = NULL;
    }
    pthread_mutex_unlock(&j->c->mu);
    if (due) {
        json_t *s = job_json(j);
        char loc[256];
        snprintf(loc, sizeof loc, "/v1/offerings/%s/scorecards/%s", j->offering_id,
                 j->scorecard_id);
        http_add_header(due, "Location", loc);
        http_add_header(due, "Retry-After", "2");
        http_reply_json(due, 202, s);
        json_decref(s);
        http_resume(due);
    }
}

static void pause_ms(job *j, int64_t ms)
{
    int64_t end = time_mono_us() + ms * 1000;
    for (;;) {
        tick(j);
        int64_t left = end - time_mono_us();
        if (j->aborted || left <= 0)
            return;
        usleep((useconds_t)(left < 50000 ? left : 50000));
    }
}

static void basic_header(const char *user, const char *password, char *out, size_t n)
{
    size_t ul = strlen(user), pl = strlen(password);
    char *raw = malloc(ul + pl + 2);
    int rc = -1;
    if (raw) {
        memcpy(raw, user, ul);
        raw[ul] = ':';
        memcpy(raw + ul + 1, password, pl + 1);
        int k = snprintf(out, n, "Authorization: Basic ");
        rc = b64_encode(raw, ul + pl + 1, out + k, n - (size_t)k);
        secure_wipe(raw, ul + pl + 1);
        free(raw);
    }
    if (rc < 0)
        snprintf(out, n, "X-Osbill-No-Auth: too long");
}

/* One call to the broker, method + path (with its query) relative to the broker's URL,
 * within the run's per-call timeout; the request deferred by ?wait= is answered on time
 * meanwhile. Never fails: *a says what came back or why nothing did. */
static void call(job *j, const char *method, const char *path, const json_t *body, unsigned flags,
                 answer *a)
{
    memset(a, 0, sizeof *a);
    a->retry_after = -1;
    buf_init(&a->body, MAX_ANSWER);
    if (j->aborted) {
        snprintf(a->error, sizeof a->error, "not run: the platform is stopping");
        return;
    }
    if (!(flags & SEND_ANYWAY) && time_mono_us() > j->budget_end_us) {
        snprintf(a->error, sizeof a->error, "not run: the validation ran out of time");
        return;
    }
    char url[4400], version[64], ident[128], origin[512], auth[2048] = "";
    size_t base = strlen(j->url);
    while (base > 0 && j->url[base - 1] == '/')
        base--;
    snprintf(url, sizeof url, "%.*s%s", (int)base, j->url, path);
    char rid[37];
    uuid_v4(rid);
    snprintf(version, sizeof version, "X-Broker-API-Version: %s", j->api_version);
    snprintf(ident, sizeof ident, "X-Broker-API-Request-Identity: %s", rid);
    if (flags & SEND_WRONG_AUTH) {
        char wrong[33];
        unsigned char r[16];
        random_bytes(r, sizeof r);
        hex_encode(r, sizeof r, wrong);
        if (j->basic)
            basic_header(j->username, wrong, auth, sizeof auth);
        else
            snprintf(auth, sizeof auth, "Authorization: Bearer osbill.invalid.%s", wrong);
    } else if ((flags & SEND_AUTH) && j->basic) {
        basic_header(j->username, j->password, auth, sizeof auth);
    } else if ((flags & SEND_AUTH) && j->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", j->token);
    }
    if (flags & SEND_IDENTITY) {
        char who[300], enc[400];
        json_t *w = json_pack("{s:s}", "iam_id", j->initiator);
        char *wj = json_dumps(w, JSON_COMPACT);
        snprintf(who, sizeof who, "%s", wj ? wj : "{}");
        free(wj);
        json_decref(w);
        if (b64_encode(who, strlen(who), enc, sizeof enc) < 0)
            enc[0] = '\0';
        snprintf(origin, sizeof origin, "X-Broker-API-Originating-Identity: osbill %s", enc);
    }
    struct curl_slist *h = NULL, *n;
    const char *lines[] = {"Accept: application/json", "Expect:", ident,
                           (flags & SEND_VERSION) ? version : NULL,
                           auth[0] ? auth : NULL,
                           (flags & SEND_IDENTITY) ? origin : NULL,
                           body ? "Content-Type: application/json" : NULL};
    bool nomem = false;
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
        if (!lines[i])
            continue;
        if ((n = curl_slist_append(h, lines[i])))
            h = n;
        else
            nomem = true;
    }
    secure_wipe(auth, sizeof auth);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    CURL *e = nomem || (body && !text) ? NULL : curl_easy_init();
    if (!e) {
        snprintf(a->error, sizeof a->error, "not run: out of memory");
        goto out;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    /* Straight to the broker: through a proxy the address check above would see the proxy's
     * address instead of the broker's. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, a);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, j->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, j->timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MAX_ANSWER);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "osbill-validation");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (text) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    CURLcode cc = CURLE_OK;
    bool stopped = false;
    if (curl_multi_add_handle(j->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        snprintf(a->error, sizeof a->error, "not run: cannot start the call");
        goto out;
    }
    for (;;) {
        int running = 0;
        if (curl_multi_perform(j->multi, &running) != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
        if (!running)
            break;
        curl_multi_poll(j->multi, NULL, 0, TICK_MS, NULL);
        tick(j);
        if (j->aborted) {
            stopped = true;
            break;
        }
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(j->multi, &left)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == e)
            cc = m->data.result;
    if (stopped) {
        snprintf(a->error, sizeof a->error, "not finished: the platform is stopping");
    } else if (cc != CURLE_OK && a->refused[0]) {
        snprintf(a->error, sizeof a->error, "refused to connect to %s: a link-local (cloud "
                 "metadata) address is not a broker", a->refused);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(a->error, sizeof a->error, "timed out after %ld s", j->timeout_ms / 1000);
    } else if (cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(a->error, sizeof a->error, "the answer exceeds %d bytes", MAX_ANSWER);
    } else if (cc != CURLE_OK) {
        /* Truncation is fine here: the reason is shown, not parsed. */
        int w = snprintf(a->error, sizeof a->error, "%s%s%.150s", curl_easy_strerror(cc),
                         errbuf[0] ? ": " : "", errbuf);
        (void)w;
    } else {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a->status);
        if (a->body.len)
            a->json = json_loadb(a->body.data, a->body.len, 0, NULL);
    }
    curl_multi_remove_handle(j->multi, e);
    curl_easy_cleanup(e);
out:
    for (struct curl_slist *i = h; i; i = i->next)
        secure_wipe(i->data, strlen(i->data));
    curl_slist_free_all(h);
    free(text);
}

/* ---------------------------------------------------------------- recording checks */

/* What came back, as a check shows it: {"status","body"} or {"error"}; secrets redacted. */
static json_t *actual_of(const answer *a)
{
    if (a->error[0])
        return json_pack("{s:s}", "error", a->error);
    json_t *excerpt;
    if (a->json) {
        json_t *copy = json_deep_copy(a->json);
        redact(copy, 0);
        char *s = json_dumps(copy, JSON_COMPACT);
        excerpt = utf8_excerpt(s ? s : "", s ? strlen(s) : 0);
        free(s);
        json_decref(copy);
    } else {
        excerpt = utf8_excerpt(a->body.len ? a->body.data : "", a->body.len);
    }
    return json_pack("{s:I, s:o}", "status", (json_int_t)a->status, "body", excerpt);
}

static json_t *actual_json(long status, const json_t *v)
{
    json_t *copy = json_deep_copy(v);
    redact(copy, 0);
    char *s = copy ? json_dumps(copy, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_t *j = json_pack("{s:I, s:o}", "status", (json_int_t)status, "body",
                          utf8_excerpt(s ? s : "", s ? strlen(s) : 0));
    free(s);
    json_decref(copy);
    return j;
}

/* Appends a check; actual is stolen; reason (may be NULL) says what was wrong. */
static bool record(job *j, const char *name, bool passed, const char *expected, json_t *actual,
                   const char *reason)
{
    if (!actual)
        actual = json_object();
    if (reason && !passed)
        json_object_set_new(actual, "reason", utf8_excerpt(reason, strlen(reason)));
    json_array_append_new(j->checks, json_pack("{s:s, s:b, s:s, s:o}", "name", name, "passed",
                                               passed, "expected", expected, "actual", actual));
    return passed;
}

static bool record_answer(job *j, const char *name, bool passed, const char *expected,
                          const answer *a, const char *reason)
{
    return record(j, name, passed, expected, actual_of(a), a->error[0] ? NULL : reason);
}

static void record_not_run(job *j, const char *name, const char *expected, const char *why)
{
    char msg[300];
    snprintf(msg, sizeof msg, "not run: %s", why);
    record(j, name, false, expected, json_pack("{s:s}", "error", msg), NULL);
}

/* A check that does not apply to this broker: shown, and not held against it. */
static void record_skipped(job *j, const char *name, const char *expected, const char *why)
{
    record(j, name, true, expected, json_pack("{s:s}", "skipped", why), NULL);
}

static bool status_in(const answer *a, long s1, long s2)
{
    return !a->error[0] && (a->status == s1 || a->status == s2);
}

/* ---------------------------------------------------------------- 1. the catalog */

static int flag(const json_t *obj, const char *k, int dflt)
{
    const json_t *v = json_object_get(obj, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const json_t *find_by_id(const json_t *arr, const char *id)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e) {
        const char *s = json_string_value(json_object_get(e, "id"));
        if (s && strcmp(s, id) == 0)
            return e;
    }
    return NULL;
}

static void check_dashboard(job *j, const json_t *svc)
{
    static const char *const expected =
        "the offering's client_id, a redirect_uri registered on that client, and its secret";
    const json_t *dc = json_object_get(svc, "dashboard_client");
    if (!dc || json_is_null(dc)) {
        record_skipped(j, "catalog.dashboard_client", expected,
                       "the service declares no dashboard_client");
        return;
    }
    const char *id = json_string_value(json_object_get(dc, "id"));
    const char *secret = json_string_value(json_object_get(dc, "secret"));
    const char *redirect = json_string_value(json_object_get(dc, "redirect_uri"));
    char why[400] = "";
    if (!json_is_object(dc)) {
        snprintf(why, sizeof why, "dashboard_client is not an object");
    } else if (!j->client_id[0]) {
        snprintf(why, sizeof why, "the offering has no OAuth client: enable IAM for it first");
    } else if (!id || strcmp(id, j->client_id) != 0) {
        snprintf(why, sizeof why, "dashboard_client.id is not the offering's client_id %s",
                 j->client_id);
    } else {
        bool registered = false;
        size_t i;
        const json_t *u;
        json_array_foreach(j->redirect_uris, i, u) registered =
            registered || (redirect && str_eq(json_string_value(u), redirect));
        unsigned char h[32];
        bool secret_ok = false;
        if (secret && j->has_secret_hash) {
            iam_hash_secret(j->c->iam, secret, h);
            secret_ok = ct_equal(h, j->secret_hash, sizeof h);
            secure_wipe(h, sizeof h);
        }
        if (!registered)
            snprintf(why, sizeof why, "dashboard_client.redirect_uri is not one of the client's "
                     "redirect_uris (PATCH /v1/offerings/%s/iam)", j->offering_id);
        else if (!secret_ok)
            snprintf(why, sizeof why, "dashboard_client.secret is not the client's secret");
    }
    record(j, "catalog.dashboard_client", !why[0], expected, actual_json(200, dc),
           why[0] ? why : NULL);
}

/* GET /v2/catalog and the offering in it. Returns the broker's service (inside cat->json)
 * or NULL when the lifecycle cannot run. */
static const json_t *check_catalog(job *j, answer *cat)
{
    static const char *const exp_fetch = "200 with a JSON catalog {\"services\": [...]}";
    static const char *const exp_service = "the offering's service, by its id, with its name";
    char name[200], why[600];
    call(j, "GET", "/v2/catalog", NULL, STD, cat);
    const json_t *services = json_object_get(cat->json, "services");
    bool fetched = !cat->error[0] && cat->status == 200 && json_is_array(services);
    const char *reason = cat->status != 200 ? "the status is not 200"
                         : !cat->json       ? "the body is not JSON"
                                            : "the body has no \"services\" array";
    record_answer(j, "catalog.fetch", fetched, exp_fetch, cat, fetched ? NULL : reason);
    const json_t *svc = fetched ? find_by_id(services, j->offering_id) : NULL;
    if (!fetched) {
        record_not_run(j, "catalog.service", exp_service, "the catalog could not be read");
    } else if (!svc) {
        snprintf(why, sizeof why, "the catalog has no service with id %s", j->offering_id);
        record(j, "catalog.service", false, exp_service, actual_of(cat), why);
    } else {
        const char *n = json_string_value(json_object_get(svc, "name"));
        bool same = n && strcmp(n, j->offering_name) == 0;
        json_t *brief = json_deep_copy(svc);
        json_object_del(brief, "plans"); /* shown with each plan's check */
        snprintf(why, sizeof why, "the service's name is \"%.100s\", the offering's is \"%s\"",
                 n ? n : "(none)", j->offering_name);
        record(j, "catalog.service", same, exp_service, actual_json(200, brief),
               same ? NULL : why);
        json_decref(brief);
    }
    const json_t *plans = json_object_get(svc, "plans");
    int svc_bindable = flag(svc, "bindable", 0);
    for (size_t i = 0; i < j->nplans; i++) {
        const vplan *p = &j->plans[i];
        snprintf(name, sizeof name, "catalog.plan.%s", p->name);
        char expected[400];
        snprintf(expected, sizeof expected, "plan id %s named \"%s\"%s%s%s%s", p->id, p->name,
                 p->bindable >= 0 ? ", bindable " : "",
                 p->bindable >= 0 ? (p->bindable ? "true" : "false") : "",
                 p->free >= 0 ? ", free " : "", p->free >= 0 ? (p->free ? "true" : "false") : "");
        if (!svc) {
            record_not_run(j, name, expected, fetched ? "the service is not in the catalog"
                                                      : "the catalog could not be read");
            continue;
        }
        const json_t *bp = find_by_id(plans, p->id);
        if (!bp) {
            snprintf(why, sizeof why, "the service has no plan with id %s", p->id);
            record(j, name, false, expected, actual_json(200, plans ? plans : json_null()), why);
            continue;
        }
        why[0] = '\0';
        const char *bn = json_string_value(json_object_get(bp, "name"));
        int bb = flag(bp, "bindable", svc_bindable), bf = flag(bp, "free", 1);
        size_t w = 0;
        if (!bn || strcmp(bn, p->name) != 0)
            w += (size_t)snprintf(why + w, sizeof why - w, "the name is \"%.100s\"; ",
                                  bn ? bn : "(none)");
        if (p->bindable >= 0 && bb != p->bindable && w < sizeof why)
            w += (size_t)snprintf(why + w, sizeof why - w, "bindable is %s; ",
                                  bb ? "true" : "false");
        if (p->free >= 0 && bf != p->free && w < sizeof why)
            w += (size_t)snprintf(why + w, sizeof why - w, "free is %s; ", bf ? "true" : "false");
        if (w >= 2 && w < sizeof why)
            why[w - 2] = '\0';
        record(j, name, !why[0], expected, actual_json(200, bp), why[0] ? why : NULL);
    }
    if (svc)
        check_dashboard(j, svc);
    else
        record_not_run(j, "catalog.dashboard_client",
                       "the offering's client_id, a redirect_uri registered on that client, "
                       "and its secret", "the service is not in the catalog");
    return svc;
}

/* ---------------------------------------------------------------- 2. the lifecycle */

enum {
    L_PROVISION, L_PROVISION_AGAIN, L_FETCH, L_UPDATE, L_DELETE_NO_IDS, L_BIND, L_BIND_AGAIN,
    L_UNBIND, L_UNBIND_AGAIN, L_DISABLE, L_DISABLED, L_ENABLE, L_ENABLED, L_DEPROVISION,
    L_DEPROVISION_AGAIN, L_COUNT
};
static const struct {
    const char *name, *expected;
} steps[L_COUNT] = {
    {"lifecycle.provision", "201, or 202 and then last_operation \"succeeded\""},
    {"lifecycle.provision_identical", "200 (or 202 while in progress)"},
    {"lifecycle.fetch", "200 with the instance's service_id and plan_id"},
    {"lifecycle.update", "200, or 202 and then last_operation \"succeeded\""},
    {"errors.delete_without_ids", "400, and the instance left alone"},
    {"lifecycle.bind", "201 with credentials"},
    {"lifecycle.bind_identical", "200 with the same credentials"},
    {"lifecycle.unbind", "200"},
    {"lifecycle.unbind_again", "410"},
    {"ibm.disable", "204"},
    {"ibm.state_disabled", "200 with \"enabled\": false"},
    {"ibm.enable", "204"},
    {"ibm.state_enabled", "200 with \"enabled\": true"},
    {"lifecycle.deprovision", "200, or 202 and then last_operation \"succeeded\" or 410"},
    {"lifecycle.deprovision_again", "410"},
};

static void not_run_steps(job *j, int from, int to, const char *why)
{
    for (int s = from; s <= to; s++)
        record_not_run(j, steps[s].name, steps[s].expected, why);
}

static bool step_answer(job *j, int s, bool passed, const answer *a, const char *reason)
{
    return record_answer(j, steps[s].name, passed, steps[s].expected, a, reason);
}

typedef struct {
    const char *iid, *plan;
    char bid[37];
    char path[256];     /* /v2/service_instances/<iid> */
    char ids[512];      /* service_id=..&plan_id=.. */
    json_t *context;
    int64_t poll_us;    /* how long an async operation may take */
} probe;

/* Polls last_operation until the operation is over: true when it succeeded (or, deleting,
 * the instance is gone). *a keeps the last answer; why says what went wrong. */
static bool poll_op(job *j, const probe *pr, const answer *accepted, bool deleting, answer *a,
                    char *why, size_t whyn)
{
    char path[1200], op[300] = "";
    const char *operation = json_string_value(json_object_get(accepted->json, "operation"));
    if (operation && strlen(operation) < 90) {
        char enc[280];
        pct(operation, enc, sizeof enc);
        snprintf(op, sizeof op, "&operation=%s", enc);
    }
    snprintf(path, sizeof path, "%s/last_operation?%s%s", pr->path, pr->ids, op);
    int64_t end = time_mono_us() + pr->poll_us;
    memset(a, 0, sizeof *a);
    for (;;) {
        answer_free(a);
        call(j, "GET", path, NULL, STD, a);
        const char *state = json_string_value(json_object_get(a->json, "state"));
        if (a->error[0])
            return false;
        if (deleting && a->status == 410)
            return true;
        if (a->status != 200 || !state) {
            snprintf(why, whyn, "last_operation answered %ld without a state", a->status);
            return false;
        }
        if (strcmp(state, "succeeded") == 0)
            return true;
        if (strcmp(state, "in progress") != 0) {
            snprintf(why, whyn, "the operation ended \"%.40s\"", state);
            return false;
        }
        double wait_s = a->retry_after >= 0 ? a->retry_after : 1.0;
        if (wait_s < 0.1)
            wait_s = 0.1;
        int64_t wait_us = (int64_t)(wait_s * 1e6);
        if (time_mono_us() + wait_us > end) {
            snprintf(why, whyn, "still in progress after %lld s",
                     (long long)(pr->poll_us / 1000000));
            return false;
        }
        pause_ms(j, wait_us / 1000);
        if (j->aborted) {
            snprintf(why, whyn, "the platform is stopping");
            return false;
        }
    }
}

/* A change the broker may make asynchronously: 2xx right away, or 202 then polling.
 * Records step s. */
static bool async_step(job *j, int s, const probe *pr, const char *method, const char *path,
                       const json_t *body, long sync_status, answer *a)
{
    char why[200] = "";
    call(j, method, path, body, STD | SEND_IDENTITY, a);
    if (status_in(a, sync_status, sync_status))
        return step_answer(j, s, true, a, NULL);
    if (!status_in(a, 202, 202))
        return step_answer(j, s, false, a, "unexpected status");
    answer p;
    bool ok = poll_op(j, pr, a, false, &p, why, sizeof why);
    bool r = step_answer(j, s, ok, &p, ok ? NULL : why);
    answer_free(&p);
    return r;
}

/* After a failure: the probe instance must not stay behind. */
static void cleanup(job *j, const probe *pr)
{
    char path[1000];
    answer a;
    snprintf(path, sizeof path, "%s?%s&accepts_incomplete=true", pr->path, pr->ids);
    call(j, "DELETE", path, NULL, STD | SEND_ANYWAY, &a);
    record_answer(j, "lifecycle.cleanup", status_in(&a, 200, 202) || status_in(&a, 410, 410),
                  "200, 202 or 410: the probe instance removed after the failure", &a,
                  "unexpected status");
    answer_free(&a);
}

/* The probe's plan: one the broker knows, preferably free and synchronous. */
static const vplan *probe_plan(job *j, const json_t *svc, const json_t **bp)
{
    const vplan *best = NULL;
    int best_score = 1000;
    const json_t *plans = json_object_get(svc, "plans");
    for (size_t i = 0; i < j->nplans; i++) {
        const json_t *p = find_by_id(plans, j->plans[i].id);
        if (!p)
            continue;
        int score = (strcmp(j->plans[i].kind, "lite") == 0 ? 0 : 4) +
                    (flag(p, "free", 1) ? 0 : 2) +
                    (json_object_get(p, "maximum_polling_duration") ? 1 : 0);
        if (score < best_score) {
            best_score = score;
            best = &j->plans[i];
            *bp = p;
        }
    }
    return best;
}

static void lifecycle(job *j, const json_t *svc, const vplan *plan, const json_t *bp)
{
    char iid[37], crn[600], rg[300], target[400], why[300];
    uuid_v4(iid);
    probe pr = {.iid = iid, .plan = plan->id};
    uuid_v4(pr.bid);
    char enc_s[200], enc_p[220];
    pct(j->offering_id, enc_s, sizeof enc_s);
    pct(plan->id, enc_p, sizeof enc_p);
    snprintf(pr.path, sizeof pr.path, "/v2/service_instances/%s", iid);
    snprintf(pr.ids, sizeof pr.ids, "service_id=%s&plan_id=%s", enc_s, enc_p);
    int64_t poll_s = 3 * (j->timeout_ms / 1000);
    if (poll_s < 10)
        poll_s = 10;
    const json_t *mpd = json_object_get(bp, "maximum_polling_duration");
    if (json_is_integer(mpd) && json_integer_value(mpd) > 0 && json_integer_value(mpd) < poll_s)
        poll_s = json_integer_value(mpd);
    pr.poll_us = poll_s * 1000000;
    snprintf(crn, sizeof crn, "crn:v1:osbill:public:%s:%s:a/%s:%s::", j->offering_name,
             j->region, j->account_id, iid);
    snprintf(rg, sizeof rg, "crn:v1:osbill:public:resource-controller::a/%s::resource-group:"
             "osbill-validation", j->account_id);
    snprintf(target, sizeof target, "crn:v1:osbill:public:globalcatalog::::deployment:%s:%s",
             plan->id, j->region);
    pr.context = json_pack("{s:s, s:s, s:s, s:s, s:s}", "platform", "osbill", "account_id",
                           j->account_id, "crn", crn, "resource_group_crn", rg, "target_crn",
                           target);
    json_t *prov = json_pack("{s:s, s:s, s:s, s:s, s:O}", "service_id", j->offering_id,
                             "plan_id", plan->id, "organization_guid", "osbill-validation",
                             "space_guid", "osbill-validation", "context", pr.context);
    char path[1200];
    answer a;

    /* provision, and the identical request again */
    snprintf(path, sizeof path, "%s?accepts_incomplete=true", pr.path);
    bool ok = async_step(j, L_PROVISION, &pr, "PUT", path, prov, 201, &a);
    answer_free(&a);
    if (!ok) {
        not_run_steps(j, L_PROVISION_AGAIN, L_DEPROVISION_AGAIN, "the provision failed");
        cleanup(j, &pr);
        goto out;
    }
    call(j, "PUT", path, prov, STD | SEND_IDENTITY, &a);
    if (status_in(&a, 202, 202)) {
        answer p;
        ok = poll_op(j, &pr, &a, false, &p, why, sizeof why);
        step_answer(j, L_PROVISION_AGAIN, ok, &p, ok ? NULL : why);
        answer_free(&p);
    } else {
        step_answer(j, L_PROVISION_AGAIN, status_in(&a, 200, 200), &a, "unexpected status");
    }
    answer_free(&a);

    /* fetch */
    if (flag(svc, "instances_retrievable", 0)) {
        call(j, "GET", pr.path, NULL, STD | SEND_IDENTITY, &a);
        const char *s = json_string_value(json_object_get(a.json, "service_id"));
        const char *p = json_string_value(json_object_get(a.json, "plan_id"));
        bool same = (!s || strcmp(s, j->offering_id) == 0) && (!p || strcmp(p, plan->id) == 0);
        step_answer(j, L_FETCH, status_in(&a, 200, 200) && same, &a,
                    a.status == 200 ? "service_id or plan_id differ" : "unexpected status");
        answer_free(&a);
    } else {
        record_skipped(j, steps[L_FETCH].name, steps[L_FETCH].expected,
                       "the service declares instances_retrievable false");
    }

    /* update: nothing changes (the same plan when plans are updateable) */
    json_t *upd = json_pack("{s:s, s:O}", "service_id", j->offering_id, "context", pr.context);
    if (flag(bp, "plan_updateable", flag(svc, "plan_updateable", 0)))
        json_object_set_new(upd, "plan_id", json_string(plan->id));
    snprintf(path, sizeof path, "%s?accepts_incomplete=true", pr.path);
    async_step(j, L_UPDATE, &pr, "PATCH", path, upd, 200, &a);
    answer_free(&a);
    json_decref(upd);

    /* a DELETE without its query is refused and leaves the instance */
    call(j, "DELETE", pr.path, NULL, STD | SEND_IDENTITY, &a);
    step_answer(j, L_DELETE_NO_IDS, status_in(&a, 400, 400), &a, "unexpected status");
    answer_free(&a);

    /* bind, the identical bind, unbind twice */
    if (flag(bp, "bindable", flag(svc, "bindable", 0))) {
        char bpath[600];
        snprintf(bpath, sizeof bpath, "%s/service_bindings/%s", pr.path, pr.bid);
        json_t *bind = json_pack("{s:s, s:s, s:O}", "service_id", j->offering_id, "plan_id",
                                 plan->id, "context", pr.context);
        call(j, "PUT", bpath, bind, STD | SEND_IDENTITY, &a);
        json_t *creds = json_incref(json_object_get(a.json, "credentials"));
        bool bound = status_in(&a, 201, 201) && json_is_object(creds);
        step_answer(j, L_BIND, bound, &a,
                    a.status == 201 ? "the answer has no \"credentials\" object"
                                    : "unexpected status");
        bool maybe_bound = a.error[0] || a.status < 400 || a.status >= 500;
        answer_free(&a);
        snprintf(path, sizeof path, "%s?%s", bpath, pr.ids);
        if (bound) {
            call(j, "PUT", bpath, bind, STD | SEND_IDENTITY, &a);
            bool same = json_equal(json_object_get(a.json, "credentials"), creds);
            step_answer(j, L_BIND_AGAIN, status_in(&a, 200, 200) && same, &a,
                        a.status == 200 ? "the credentials differ" : "unexpected status");
            answer_free(&a);
            call(j, "DELETE", path, NULL, STD | SEND_IDENTITY, &a);
            step_answer(j, L_UNBIND, status_in(&a, 200, 200), &a, "unexpected status");
            answer_free(&a);
            call(j, "DELETE", path, NULL, STD | SEND_IDENTITY, &a);
            step_answer(j, L_UNBIND_AGAIN, status_in(&a, 410, 410), &a, "unexpected status");
            answer_free(&a);
        } else {
            not_run_steps(j, L_BIND_AGAIN, L_UNBIND_AGAIN, "the bind failed");
            if (maybe_bound) { /* best effort, before the instance goes */
                call(j, "DELETE", path, NULL, STD, &a);
                answer_free(&a);
            }
        }
        json_decref(creds);
        json_decref(bind);
    } else {
        for (int s = L_BIND; s <= L_UNBIND_AGAIN; s++)
            record_skipped(j, steps[s].name, steps[s].expected, "the plan is not bindable");
    }

    /* IBM's enable/disable extension */
    char ibm[300];
    snprintf(ibm, sizeof ibm, "/bluemix_v1/service_instances/%s", iid);
    for (int round = 0; round < 2; round++) {
        bool enable = round == 1;
        json_t *body = json_pack("{s:b, s:s, s:s}", "enabled", enable, "initiator_id", "osbill",
                                 "reason_code", "IBMCLOUD_ADMIN_REQUEST");
        call(j, "PUT", ibm, body, STD, &a);
        step_answer(j, enable ? L_ENABLE : L_DISABLE, status_in(&a, 204, 204), &a,
                    "unexpected status");
        answer_free(&a);
        json_decref(body);
        call(j, "GET", ibm, NULL, STD, &a);
        const json_t *en = json_object_get(a.json, "enabled");
        bool right = json_is_boolean(en) && json_is_true(en) == enable;
        step_answer(j, enable ? L_ENABLED : L_DISABLED, status_in(&a, 200, 200) && right, &a,
                    a.status == 200 ? "\"enabled\" is missing or wrong" : "unexpected status");
        answer_free(&a);
    }

    /* deprovision, and again */
    snprintf(path, sizeof path, "%s?%s&accepts_incomplete=true", pr.path, pr.ids);
    call(j, "DELETE", path, NULL, STD | SEND_IDENTITY, &a);
    if (status_in(&a, 202, 202)) {
        answer p;
        ok = poll_op(j, &pr, &a, true, &p, why, sizeof why);
        step_answer(j, L_DEPROVISION, ok, &p, ok ? NULL : why);
        answer_free(&p);
    } else {
        ok = step_answer(j, L_DEPROVISION, status_in(&a, 200, 200), &a, "unexpected status");
    }
    answer_free(&a);
    if (ok) {
        call(j, "DELETE", path, NULL, STD | SEND_IDENTITY, &a);
        step_answer(j, L_DEPROVISION_AGAIN, status_in(&a, 410, 410), &a, "unexpected status");
        answer_free(&a);
    } else {
        not_run_steps(j, L_DEPROVISION_AGAIN, L_DEPROVISION_AGAIN, "the deprovision failed");
        cleanup(j, &pr);
    }
out:
    json_decref(prov);
    json_decref(pr.context);
}

/* ---------------------------------------------------------------- 3. error cases */

static void error_checks(job *j, const char *plan_id)
{
    answer a;
    char path[1200], iid[37], bid[37], enc_s[200], enc_p[220];
    pct(j->offering_id, enc_s, sizeof enc_s);
    pct(plan_id, enc_p, sizeof enc_p);

    call(j, "GET", "/v2/catalog", NULL, SEND_AUTH, &a);
    record_answer(j, "errors.missing_version", status_in(&a, 412, 412),
                  "412 without X-Broker-API-Version", &a, "unexpected status");
    answer_free(&a);

    call(j, "GET", "/v2/catalog", NULL, SEND_VERSION | SEND_WRONG_AUTH, &a);
    record_answer(j, "errors.wrong_credentials", status_in(&a, 401, 401),
                  "401 with wrong credentials", &a, "unexpected status");
    answer_free(&a);

    /* a plan the service does not have */
    char bogus[37];
    uuid_v4(iid);
    uuid_v4(bogus);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "service_id", j->offering_id,
                             "plan_id", bogus, "organization_guid", "osbill-validation",
                             "space_guid", "osbill-validation", "context", "platform", "osbill",
                             "account_id", j->account_id);
    snprintf(path, sizeof path, "/v2/service_instances/%s?accepts_incomplete=true", iid);
    call(j, "PUT", path, body, STD, &a);
    record_answer(j, "errors.unknown_plan", status_in(&a, 400, 400),
                  "400 for a plan_id the service does not have", &a, "unexpected status");
    if (a.error[0] || (a.status >= 200 && a.status < 300) || a.status >= 500) {
        answer d; /* it may have made one: remove it */
        snprintf(path, sizeof path, "/v2/service_instances/%s?service_id=%s&plan_id=%s"
                 "&accepts_incomplete=true", iid, enc_s, bogus);
        call(j, "DELETE", path, NULL, STD | SEND_ANYWAY, &d);
        answer_free(&d);
    }
    answer_free(&a);
    json_decref(body);

    uuid_v4(iid);
    snprintf(path, sizeof path, "/v2/service_instances/%s/last_operation?service_id=%s"
             "&plan_id=%s", iid, enc_s, enc_p);
    call(j, "GET", path, NULL, STD, &a);
    record_answer(j, "errors.last_operation_unknown", status_in(&a, 404, 410),
                  "404 (or 410) for last_operation of an unknown instance", &a,
                  "unexpected status");
    answer_free(&a);

    uuid_v4(iid);
    uuid_v4(bid);
    snprintf(path, sizeof path, "/v2/service_instances/%s/service_bindings/%s", iid, bid);
    call(j, "GET", path, NULL, STD, &a);
    record_answer(j, "errors.binding_unknown_instance", status_in(&a, 404, 404),
                  "404 for a binding of an unknown instance", &a, "unexpected status");
    answer_free(&a);
}

/* ---------------------------------------------------------------- the run */

static json_t *scorecard_summary(const json_t *checks)
{
    size_t i, passed = 0, failed = 0, skipped = 0;
    const json_t *e;
    json_array_foreach(checks, i, e) {
        if (json_object_get(json_object_get(e, "actual"), "skipped"))
            skipped++;
        else if (json_is_true(json_object_get(e, "passed")))
            passed++;
        else
            failed++;
    }
    return json_pack("{s:I, s:I, s:I, s:I}", "total", (json_int_t)json_array_size(checks),
                     "passed", (json_int_t)passed, "failed", (json_int_t)failed, "skipped",
                     (json_int_t)skipped);
}

static json_t *scorecard_json(const char *id, const char *offering_id, const char *broker_id,
                              const char *region, const char *state, json_t *checks,
                              int64_t started_ms, int64_t finished_ms, bool with_checks)
{
    char started[32], finished[32];
    time_format_rfc3339(started_ms, started);
    time_format_rfc3339(finished_ms, finished);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:o, s:s, s:s?}", "id", id, "offering_id",
                          offering_id, "broker_id", broker_id, "region", region, "state", state,
                          "summary", scorecard_summary(checks), "started_at", started,
                          "finished_at", finished_ms ? finished : NULL);
    if (with_checks)
        json_object_set(j, "checks", checks);
    json_decref(checks);
    return j;
}

/* The run as it stands, from the job's thread (or once it is finished). */
static json_t *job_json(job *j)
{
    return scorecard_json(j->scorecard_id, j->offering_id, j->broker_id, j->region,
                          j->state ? j->state : "running", json_incref(j->checks), j->started_ms,
                          j->finished_ms, true);
}

static int save(job *j)
{
    char *text = json_dumps(j->checks, JSON_COMPACT);
    if (!text)
        return OSB_E_NOMEM;
    store_tx *tx;
    int rc = store_begin(j->c->db, true, &tx);
    if (!rc) {
        rc = store_exec(tx, "UPDATE scorecards SET state = ?, checks = ?, finished_ms = ? WHERE"
                            " id = ?", "ssis", j->state, text, j->finished_ms, j->scorecard_id);
        if (!rc)
            rc = store_commit(tx);
        else
            store_rollback(tx);
    }
    free(text);
    return rc;
}

static void run(job *j)
{
    answer cat = {0};
    j->budget_end_us = time_mono_us() + (int64_t)j->timeout_ms * 1000 * RUN_CALLS;
    if (!j->multi) {
        record_not_run(j, "catalog.fetch", "200 with a JSON catalog", "out of memory");
        return;
    }
    if (!j->basic && !j->token) {
        static const char *const why = "the platform could not issue its token for the broker";
        record_not_run(j, "catalog.fetch", "200 with a JSON catalog {\"services\": [...]}", why);
        not_run_steps(j, L_PROVISION, L_DEPROVISION_AGAIN, why);
        return;
    }
    const json_t *svc = check_catalog(j, &cat);
    const json_t *bp = NULL;
    const vplan *plan = svc ? probe_plan(j, svc, &bp) : NULL;
    if (plan)
        lifecycle(j, svc, plan, bp);
    else
        not_run_steps(j, L_PROVISION, L_DEPROVISION_AGAIN,
                      !svc ? "the offering's service is not in the broker's catalog"
                      : j->nplans ? "no active plan of the offering is in the broker's catalog"
                                  : "the offering has no active plan");
    error_checks(j, plan ? plan->id : j->nplans ? j->plans[0].id : "osbill-no-plan");
    answer_free(&cat);
}

static void *job_main(void *arg)
{
    job *j = arg;
    catalog *c = j->c;
    j->multi = curl_multi_init();
    run(j);
    if (j->multi)
        curl_multi_cleanup(j->multi);
    j->multi = NULL;
    secure_wipe(j->password, sizeof j->password);

    bool all = json_array_size(j->checks) > 0;
    size_t i;
    const json_t *e;
    json_array_foreach(j->checks, i, e) all = all && json_is_true(json_object_get(e, "passed"));
    j->state = all ? "passed" : "failed";
    j->finished_ms = time_now_ms();
    int rc = save(j);
    if (rc)
        log_error("catalog: cannot store scorecard %s: %s", j->scorecard_id, base_strerror(rc));
    log_info("catalog: validation %s of broker %s (%s): %s", j->scorecard_id, j->broker_id,
             j->url, j->state);

    pthread_mutex_lock(&c->mu);
    j->finished = true;
    http_req *due = j->waiter;
    j->waiter = NULL;
    pthread_mutex_unlock(&c->mu);
    if (due) {
        json_t *s = job_json(j);
        char loc[256];
        snprintf(loc, sizeof loc, "/v1/offerings/%s/scorecards/%s", j->offering_id,
                 j->scorecard_id);
        http_add_header(due, "Location", loc);
        if (rc)
            http_reply_error(due, 500, "internal_error", "The scorecard could not be stored.",
                             NULL);
        else
            http_reply_json(due, 200, s);
        json_decref(s);
        http_resume(due);
    }

    pthread_mutex_lock(&c->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        job_free(j);
    /* Last: catalog_close may free c as soon as running reaches 0. */
    pthread_mutex_lock(&c->mu);
    c->running--;
    pthread_cond_broadcast(&c->idle);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---------------------------------------------------------------- starting a run */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

static void curl_setup(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* The broker to validate (by id, or the offering's only one), decrypted, into j. */
static int load_broker(catalog *c, store_tx *tx, const char *offering_id, const char *broker_id,
                       job *j, int *count)
{
    store_stmt *q;
    *count = 0;
    int rc = store_query(tx, "SELECT id, region, url, auth, username, secret, api_version FROM"
                             " brokers WHERE offering_id = ? AND (? IS NULL OR id = ?) ORDER BY"
                             " region LIMIT 2", &q, "sss", offering_id, broker_id, broker_id);
    if (rc)
        return rc;
    while (store_step(q) == STORE_ROW) {
        if (++*count > 1)
            break;
        str_copy(j->broker_id, sizeof j->broker_id, store_col_text(q, 0));
        str_copy(j->region, sizeof j->region, store_col_text(q, 1));
        str_copy(j->url, sizeof j->url, store_col_text(q, 2));
        j->basic = str_eq(store_col_text(q, 3), "basic");
        str_copy(j->username, sizeof j->username, store_col_text(q, 4));
        str_copy(j->api_version, sizeof j->api_version, store_col_text(q, 6));
        if (j->basic) {
            size_t n = 0;
            const void *sealed = store_col_blob(q, 5, &n);
            rc = catalog_broker_password(c, j->broker_id, sealed, n, j->password,
                                         sizeof j->password);
        } else {
            int64_t exp;
            free(j->token);
            j->token = NULL;
            if (iam_issue_broker_token(c->iam, j->broker_id, &j->token, &exp))
                j->token = NULL; /* the run records why nothing could be checked */
        }
    }
    store_done(q);
    return rc;
}

static int load_plans(store_tx *tx, const char *offering_id, job *j)
{
    store_stmt *q;
    int rc = store_query(tx, "SELECT id, name, kind, doc FROM plans WHERE offering_id = ? AND"
                             " state = 'active' ORDER BY name LIMIT 200", &q, "s", offering_id);
    if (rc)
        return rc;
    j->plans = calloc(MAX_PLANS, sizeof *j->plans);
    if (!j->plans) {
        store_done(q);
        return OSB_E_NOMEM;
    }
    while (store_step(q) == STORE_ROW && j->nplans < MAX_PLANS) {
        vplan *p = &j->plans[j->nplans++];
        str_copy(p->id, sizeof p->id, store_col_text(q, 0));
        str_copy(p->name, sizeof p->name, store_col_text(q, 1));
        str_copy(p->kind, sizeof p->kind, store_col_text(q, 2));
        json_t *doc = json_loads(store_col_text(q, 3) ? store_col_text(q, 3) : "{}", 0, NULL);
        p->free = flag(doc, "free", strcmp(p->kind, "lite") == 0);
        p->bindable = flag(doc, "bindable", -1);
        p->updateable = flag(doc, "plan_updateable", -1);
        json_decref(doc);
    }
    store_done(q);
    /* The OSB shape plans.c makes for catalog.json is what the platform says about a plan;
     * where it has the plan, it wins over the raw document. */
    json_t *osb = NULL;
    if (catalog_plans_osb(tx, offering_id, false, &osb) == 0) {
        for (size_t i = 0; i < j->nplans; i++) {
            const json_t *e = find_by_id(osb, j->plans[i].id);
            if (!e)
                continue;
            j->plans[i].free = flag(e, "free", j->plans[i].free);
            j->plans[i].bindable = flag(e, "bindable", j->plans[i].bindable);
            j->plans[i].updateable = flag(e, "plan_updateable", j->plans[i].updateable);
        }
    }
    json_decref(osb);
    return 0; /* without the OSB shape, the documents say enough */
}

static int load_client(store_tx *tx, job *j)
{
    store_stmt *q;
    j->redirect_uris = json_array();
    if (!j->client_id[0])
        return 0;
    int rc = store_query(tx, "SELECT secret_hash, redirect_uris FROM oauth_clients WHERE"
                             " client_id = ?", &q, "s", j->client_id);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW) {
        size_t n = 0;
        const void *h = store_col_blob(q, 0, &n);
        if (h && n == sizeof j->secret_hash) {
            memcpy(j->secret_hash, h, n);
            j->has_secret_hash = true;
        }
        json_t *u = json_loads(store_col_text(q, 1) ? store_col_text(q, 1) : "[]", 0, NULL);
        if (json_is_array(u)) {
            json_decref(j->redirect_uris);
            j->redirect_uris = u;
        } else {
            json_decref(u);
        }
    }
    store_done(q);
    return 0;
}

static void validate(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    json_t *body = req->body.len ? http_json_body(req) : json_object();
    job *j = NULL;
    bool counted = false;
    if (!body)
        goto out;
    const char *k;
    const json_t *v;
    if (!json_is_object(body)) {
        catalog_field_error(req, "", "The body must be a JSON object {broker_id, timeout_s}.");
        goto out;
    }
    json_object_foreach(body, k, v) {
        if (strcmp(k, "broker_id") != 0 && strcmp(k, "timeout_s") != 0) {
            catalog_field_error(req, k, "'%s' is not a field of a validation.", k);
            goto out;
        }
    }
    const json_t *bid = json_object_get(body, "broker_id"), *t = json_object_get(body, "timeout_s");
    if (bid && (!json_is_string(bid) || json_string_length(bid) == 0 ||
                json_string_length(bid) > 63)) {
        catalog_field_error(req, "broker_id", "'broker_id' must be the id of one of the "
                            "offering's brokers.");
        goto out;
    }
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1 ||
              json_integer_value(t) > MAX_TIMEOUT_S)) {
        catalog_field_error(req, "timeout_s", "'timeout_s' must be a whole number of seconds "
                            "from 1 to %d: the limit on each call to the broker.", MAX_TIMEOUT_S);
        goto out;
    }
    int64_t wait_s = 0;
    const char *w = http_query(req, "wait");
    if (w && (str_to_i64(w, false, &wait_s) || wait_s > MAX_WAIT_S)) {
        catalog_field_error(req, "wait", "'wait' must be a whole number of seconds from 0 to %d.",
                            MAX_WAIT_S);
        goto out;
    }
    pthread_once(&curl_once, curl_setup);
    if (!curl_ready) {
        http_reply_error(req, 503, "unavailable", "The HTTP client cannot start.", NULL);
        goto out;
    }
    if (!(j = calloc(1, sizeof *j)) || !(j->checks = json_array())) {
        http_reply_error(req, 500, "internal_error", "Out of memory.", NULL);
        goto out;
    }
    j->c = c;
    j->timeout_ms = (t ? (long)json_integer_value(t) : DEFAULT_TIMEOUT_S) * 1000L;
    str_copy(j->offering_id, sizeof j->offering_id, o.id);
    str_copy(j->offering_name, sizeof j->offering_name, o.name);
    str_copy(j->account_id, sizeof j->account_id, o.account_id);
    str_copy(j->client_id, sizeof j->client_id, o.client_id);
    str_copy(j->initiator, sizeof j->initiator, p.iam_id);
    uuid_v4(j->scorecard_id);

    store_tx *tx;
    if (!catalog_begin(c, req, false, &tx))
        goto out;
    int count = 0;
    int rc = load_broker(c, tx, o.id, json_string_value(bid), j, &count);
    if (!rc && count == 1)
        rc = load_plans(tx, o.id, j);
    if (!rc && count == 1)
        rc = load_client(tx, j);
    store_rollback(tx);
    if (rc == OSB_E_INVAL || rc == OSB_E_TOOBIG) {
        http_reply_error(req, 409, "conflict", "The broker's stored password cannot be read "
                         "(the data directory's key changed?); set it again with PATCH.", NULL);
        goto out;
    } else if (rc) {
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        goto out;
    } else if (count != 1) {
        if (bid)
            http_reply_error(req, 404, "not_found", "No such broker in this offering.",
                             "broker_id");
        else if (count == 0)
            http_reply_error(req, 409, "conflict", "The offering has no broker; register one "
                             "first.", NULL);
        else
            catalog_field_error(req, "broker_id", "'broker_id' is required: the offering has "
                                "several brokers.");
        goto out;
    }

    pthread_mutex_lock(&c->mu);
    bool closing = c->closing, busy = c->running >= MAX_RUNNING;
    if (!closing && !busy) {
        c->running++;
        counted = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (closing || busy) {
        if (busy)
            http_add_header(req, "Retry-After", "10");
        http_reply_error(req, closing ? 503 : 429, closing ? "unavailable" : "too_many_requests",
                         closing ? "The platform is stopping." : "Too many validations are "
                         "running; try again shortly.", NULL);
        goto out;
    }

    j->started_ms = time_now_ms();
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    /* A run the platform's stop (or crash) cut short stays 'running': close it. */
    rc = store_exec(tx, "UPDATE scorecards SET state = 'failed', finished_ms = ? WHERE"
                        " broker_id = ? AND state = 'running' AND started_ms < ?", "isi",
                    j->started_ms, j->broker_id, j->started_ms - STALE_MS);
    /* One run per broker at a time, and a few per provider account. */
    int64_t broker_runs = 0, account_runs = 0;
    store_stmt *cq;
    if (!rc && !(rc = store_query(tx, "SELECT (SELECT COUNT(*) FROM scorecards WHERE broker_id ="
                                      " ? AND state = 'running'), (SELECT COUNT(*) FROM"
                                      " scorecards s JOIN offerings f ON f.id = s.offering_id"
                                      " WHERE f.account_id = ? AND s.state = 'running')", &cq,
                                  "ss", j->broker_id, o.account_id))) {
        if (store_step(cq) == STORE_ROW) {
            broker_runs = store_col_int(cq, 0);
            account_runs = store_col_int(cq, 1);
        }
        store_done(cq);
    }
    if (!rc && (broker_runs > 0 || account_runs >= MAX_RUNNING_ACCOUNT)) {
        store_rollback(tx);
        if (broker_runs > 0) {
            http_reply_error(req, 409, "conflict", "A validation of this broker is running; "
                             "wait for its scorecard.", "broker_id");
        } else {
            http_add_header(req, "Retry-After", "10");
            http_reply_error(req, 429, "too_many_requests", "This account has too many "
                             "validations running; try again shortly.", NULL);
        }
        goto out;
    }
    if (!rc)
        rc = store_exec(tx, "INSERT INTO scorecards (id, offering_id, broker_id, state, checks,"
                            " started_ms) VALUES (?, ?, ?, 'running', '[]', ?)", "sssi",
                        j->scorecard_id, o.id, j->broker_id, j->started_ms);
    if (!rc)
        rc = store_commit(tx);
    else
        store_rollback(tx);
    if (rc) {
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        goto out;
    }

    j->refs = 2;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&th, &attr, job_main, j);
    pthread_attr_destroy(&attr);
    if (rc) {
        j->state = "failed";
        j->finished_ms = time_now_ms();
        record_not_run(j, "catalog.fetch", "200 with a JSON catalog", "no thread to run on");
        if (save(j))
            log_error("catalog: cannot store scorecard %s", j->scorecard_id);
        http_reply_error(req, 503, "unavailable", "The validation cannot start now.", NULL);
        goto out;
    }
    counted = false; /* the thread counts itself out */

    /* The thread owns the run now; this request only reads what it will not change. */
    bool deferred = false, finished;
    pthread_mutex_lock(&c->mu);
    finished = j->finished;
    if (wait_s > 0 && !finished && http_defer(req)) {
        j->waiter = req;
        j->wait_until_us = time_mono_us() + (wait_s < DEFER_CAP_S ? wait_s : DEFER_CAP_S) *
                                                1000000;
        deferred = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (!deferred) {
        char loc[256];
        snprintf(loc, sizeof loc, "/v1/offerings/%s/scorecards/%s", j->offering_id,
                 j->scorecard_id);
        http_add_header(req, "Location", loc);
        json_t *s;
        if (finished && wait_s > 0) {
            s = job_json(j);
        } else {
            http_add_header(req, "Retry-After", "2");
            s = scorecard_json(j->scorecard_id, j->offering_id, j->broker_id, j->region,
                               "running", json_array(), j->started_ms, 0, true);
        }
        http_reply_json(req, finished && wait_s > 0 ? 200 : 202, s);
        json_decref(s);
    }
    pthread_mutex_lock(&c->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        j = NULL;
out:
    if (counted) {
        pthread_mutex_lock(&c->mu);
        c->running--;
        pthread_cond_broadcast(&c->idle);
        pthread_mutex_unlock(&c->mu);
    }
    job_free(j);
    json_decref(body);
    catalog_offering_free(&o);
}

/* ---------------------------------------------------------------- scorecards */

static bool provider_read(catalog *c, http_req *req, catalog_offering *o, iam_principal *p)
{
    return catalog_offering_for_provider(c, req, "scorecards", o, p);
}

static json_t *row_json(store_stmt *q, bool with_checks)
{
    json_t *checks = json_loads(store_col_text(q, 4) ? store_col_text(q, 4) : "[]", 0, NULL);
    if (!json_is_array(checks)) {
        json_decref(checks);
        checks = json_array();
    }
    return scorecard_json(store_col_text(q, 0), store_col_text(q, 1), store_col_text(q, 2),
                          store_col_text(q, 7), store_col_text(q, 3), checks,
                          store_col_int(q, 5), store_col_null(q, 6) ? 0 : store_col_int(q, 6),
                          with_checks);
}

static void scorecards_list(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!provider_read(c, req, &o, &p))
        return;
    int64_t limit = 20;
    const char *l = http_query(req, "limit"), *broker = http_query(req, "broker_id");
    if (l && (str_to_i64(l, false, &limit) || limit < 1 || limit > 100)) {
        catalog_field_error(req, "limit", "'limit' must be 1 to 100.");
        catalog_offering_free(&o);
        return;
    }
    store_tx *tx;
    if (!catalog_begin(c, req, false, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    store_stmt *q;
    json_t *list = json_array();
    int rc = store_query(tx, "SELECT s.id, s.offering_id, s.broker_id, s.state, s.checks,"
                             " s.started_ms, s.finished_ms, b.region FROM scorecards s LEFT JOIN"
                             " brokers b ON b.id = s.broker_id WHERE s.offering_id = ? AND"
                             " (? IS NULL OR s.broker_id = ?) ORDER BY s.started_ms DESC,"
                             " s.rowid DESC LIMIT ?", &q, "sssi", o.id, broker, broker, limit);
    if (!rc) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(list, row_json(q, false));
        store_done(q);
    }
    json_t *j = json_pack("{s:I, s:o}", "total_count", (json_int_t)json_array_size(list),
                          "scorecards", list);
    catalog_finish(req, tx, rc, 200, j);
    catalog_offering_free(&o);
}

static void scorecards_get(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!provider_read(c, req, &o, &p))
        return;
    store_tx *tx;
    if (!catalog_begin(c, req, false, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    store_stmt *q;
    json_t *j = NULL;
    int rc = store_query(tx, "SELECT s.id, s.offering_id, s.broker_id, s.state, s.checks,"
                             " s.started_ms, s.finished_ms, b.region FROM scorecards s LEFT JOIN"
                             " brokers b ON b.id = s.broker_id WHERE s.id = ? AND"
                             " s.offering_id = ?", &q, "ss", req->params[1], o.id);
    if (!rc) {
        if (store_step(q) == STORE_ROW)
            j = row_json(q, true);
        else
            rc = OSB_E_NOTFOUND;
        store_done(q);
    }
    if (j && strcmp(json_string_value(json_object_get(j, "state")), "running") == 0)
        http_add_header(req, "Retry-After", "2");
    catalog_finish(req, tx, rc, 200, j);
    catalog_offering_free(&o);
}

void catalog_validate_routes(catalog *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/offerings/:id/validate", P, validate, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/scorecards", P, scorecards_list, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/scorecards/:sid", P, scorecards_get, c);
    if (rc)
        log_error("catalog: cannot register the validation routes");
}
