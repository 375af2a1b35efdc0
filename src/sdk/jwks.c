/* sdk jwks: the platform's signing keys, for verifying the JWTs its IAM issues (the
 * controller's bearer tokens and the users' tokens of dashboard sign-in). Keys come from the
 * platform's JWKS over HTTP and are cached parsed; the platform publishes the next key ahead
 * of a rotation, so a refresh is rarely on a request's path. Also the one HTTP client helper
 * libosb uses to talk to the platform. */
#include "sdk/sdk.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iam/jose.h"

#define JWKS_TIMEOUT_MS 2000
#define JWKS_MAX_BODY (256 << 10)
#define JWKS_MAX_KEYS 32
#define MISS_INTERVAL_MS 30000           /* unknown kids refresh at most this often */
#define REFRESH_INTERVAL_MS (5 * 60000)  /* background refresh after a success */
#define RETRY_FIRST_MS 1000              /* ... and after a failure, doubling to */
#define RETRY_MAX_MS 60000
#define TOKEN_LEEWAY_S 30
#define REVOCATIONS_MAX_BODY (4 << 20)
#define REVOCATIONS_INTERVAL_MS 10000    /* default poll of the revocation list */

struct sdk_jwks {
    char *url;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* a fetch finished, or stop was asked (CLOCK_MONOTONIC) */
    jose_key *keys[JWKS_MAX_KEYS];
    size_t nkeys;
    bool fetching;            /* one fetch at a time, whoever started it */
    bool stop;
    bool missed;              /* an unknown kid has caused a fetch before */
    int64_t last_miss_ms;     /* monotonic, when it last did */
    uint64_t fetches;         /* completed fetch attempts */
    pthread_t thread;
    bool thread_started;
    /* The platform's revoked access tokens: jtis, sorted, replaced whole by each poll. */
    char *revocations_url;    /* NULL: revocation is not checked */
    int64_t revocations_interval_ms;
    char **revoked;
    size_t nrevoked;
    bool revocations_loaded;  /* a poll has succeeded once */
};

/* ---------------------------------------------------------------- HTTP */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

static void curl_setup(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t len = size * n;
    /* Returning less than len aborts the transfer: the cap holds whatever the server sends. */
    return buf_append(b, p, len) ? 0 : len;
}

/* Header lines can carry a client secret or a token: wiped before curl frees them. */
static void free_headers(struct curl_slist *h)
{
    for (struct curl_slist *i = h; i; i = i->next)
        secure_wipe(i->data, strlen(i->data));
    curl_slist_free_all(h);
}

int sdk_http_call(const char *method, const char *url, const char *const *headers,
                  const char *body, long timeout_ms, size_t max_body, long *status, buf *out)
{
    *status = 0;
    pthread_once(&curl_once, curl_setup);
    if (!curl_ready)
        return OSB_E_IO;
    CURL *c = curl_easy_init();
    if (!c)
        return OSB_E_NOMEM;
    struct curl_slist *h = NULL;
    int rc = 0;
    for (size_t i = 0; headers && headers[i] && !rc; i++) {
        struct curl_slist *next = curl_slist_append(h, headers[i]);
        if (next)
            h = next;
        else
            rc = OSB_E_NOMEM;
    }
    out->limit = max_body;
    if (!rc) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "libosb/" OSB_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        if (body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        CURLcode cc = curl_easy_perform(c);
        if (cc == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        } else {
            rc = cc == CURLE_WRITE_ERROR ? OSB_E_TOOBIG : OSB_E_IO;
            log_warn("libosb: %s %s: %s", method, url,
                     cc == CURLE_WRITE_ERROR ? "the answer is too large" : curl_easy_strerror(cc));
        }
    }
    free_headers(h);
    curl_easy_cleanup(c);
    return rc;
}

bool sdk_json_str_is(const json_t *v, const char *want)
{
    size_t n = strlen(want);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), want, n) == 0;
}

/* ---------------------------------------------------------------- fetching */

static int64_t mono_ms(void)
{
    return time_mono_us() / 1000;
}

static struct timespec mono_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Downloads and parses the JWKS: keys that do not parse are skipped, and a document without
 * one usable key counts as a failure, so a broken answer never empties the cache. */
static int download(const char *url, jose_key **keys, size_t *nkeys)
{
    static const char *const headers[] = {"Accept: application/json", NULL};
    buf body;
    long status;
    *nkeys = 0;
    buf_init(&body, JWKS_MAX_BODY);
    int rc = sdk_http_call("GET", url, headers, NULL, JWKS_TIMEOUT_MS, JWKS_MAX_BODY, &status,
                           &body);
    if (!rc && status != 200) {
        log_warn("libosb: %s answered %ld", url, status);
        rc = OSB_E_IO;
    }
    json_t *doc = NULL;
    if (!rc) {
        doc = json_loadb(body.data ? body.data : "", body.len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_array(json_object_get(doc, "keys"))) {
            log_warn("libosb: %s is not a JWKS", url);
            rc = OSB_E_INVAL;
        }
    }
    size_t i, skipped = 0;
    const json_t *jwk;
    if (!rc) {
        json_array_foreach(json_object_get(doc, "keys"), i, jwk) {
            jose_key *k;
            if (*nkeys == JWKS_MAX_KEYS || jose_key_from_jwk(jwk, &k) != 0) {
                skipped++;
                continue;
            }
            keys[(*nkeys)++] = k;
        }
        if (skipped)
            log_warn("libosb: %s: %zu keys skipped (not RS256 RSA keys with their thumbprint "
                     "as kid, or too many)", url, skipped);
        if (*nkeys == 0) {
            log_warn("libosb: %s holds no usable key", url);
            rc = OSB_E_INVAL;
        }
    }
    json_decref(doc);
    buf_free(&body);
    return rc;
}

/* Runs one fetch; the caller has set j->fetching and holds no lock. Returns true when the
 * cache was replaced. */
static bool fetch(sdk_jwks *j)
{
    jose_key *fresh[JWKS_MAX_KEYS], *old[JWKS_MAX_KEYS];
    size_t nfresh = 0, nold = 0;
    bool changed = false;
    int rc = download(j->url, fresh, &nfresh);
    pthread_mutex_lock(&j->mu);
    if (!rc) {
        nold = j->nkeys;
        memcpy(old, j->keys, nold * sizeof *old);
        memcpy(j->keys, fresh, nfresh * sizeof *fresh);
        j->nkeys = nfresh;
        changed = nold != nfresh;
        for (size_t i = 0; i < nfresh && !changed; i++)
            changed = strcmp(jose_key_kid(fresh[i]), jose_key_kid(old[i])) != 0;
    }
    j->fetching = false;
    j->fetches++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    for (size_t i = 0; i < nold; i++)
        jose_key_free(old[i]);
    if (changed)
        log_info("libosb: %zu signing keys from %s", nfresh, j->url);
    else if (!rc)
        log_debug("libosb: the signing keys from %s are unchanged", j->url);
    return rc == 0;
}

static jose_key *find_locked(sdk_jwks *j, const char *kid)
{
    for (size_t i = 0; i < j->nkeys; i++)
        if (strcmp(jose_key_kid(j->keys[i]), kid) == 0)
            return j->keys[i];
    return NULL;
}

/* jose_verify's key lookup: the cache, then, for an unknown kid, the fetch in flight or a
 * new one if none ran for an unknown kid in the last 30 s. */
static jose_key *lookup(void *ud, const char *kid)
{
    sdk_jwks *j = ud;
    pthread_mutex_lock(&j->mu);
    jose_key *k = find_locked(j, kid);
    if (!k && !j->stop) {
        int64_t now = mono_ms();
        if (j->fetching) {
            uint64_t seen = j->fetches;
            struct timespec until = mono_deadline(JWKS_TIMEOUT_MS + 500);
            while (j->fetching && j->fetches == seen && !j->stop &&
                   pthread_cond_timedwait(&j->cv, &j->mu, &until) != ETIMEDOUT)
                ;
            k = find_locked(j, kid);
        } else if (!j->missed || now - j->last_miss_ms >= MISS_INTERVAL_MS) {
            j->missed = true;
            j->last_miss_ms = now;
            j->fetching = true;
            pthread_mutex_unlock(&j->mu);
            fetch(j);
            pthread_mutex_lock(&j->mu);
            k = find_locked(j, kid);
        }
    }
    k = jose_key_ref(k);
    pthread_mutex_unlock(&j->mu);
    return k;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* Polls the revocation list; on any failure the previous list stays. */
static bool fetch_revocations(sdk_jwks *j)
{
    static const char *const headers[] = {"Accept: application/json", NULL};
    buf body;
    long status;
    buf_init(&body, REVOCATIONS_MAX_BODY);
    int rc = sdk_http_call("GET", j->revocations_url, headers, NULL, JWKS_TIMEOUT_MS,
                           REVOCATIONS_MAX_BODY, &status, &body);
    json_t *doc = NULL, *arr = NULL;
    char **list = NULL;
    size_t n = 0;
    if (!rc && status != 200)
        rc = OSB_E_IO;
    if (!rc) {
        doc = json_loadb(body.data ? body.data : "", body.len, JSON_REJECT_DUPLICATES, NULL);
        arr = json_object_get(doc, "revocations");
        if (!json_is_array(arr))
            rc = OSB_E_INVAL;
    }
    if (!rc && json_array_size(arr) && !(list = calloc(json_array_size(arr), sizeof *list)))
        rc = OSB_E_NOMEM;
    size_t i;
    json_t *e;
    if (!rc) {
        json_array_foreach(arr, i, e) {
            const char *jti = json_string_value(json_object_get(e, "jti"));
            if (!jti || !(list[n] = strdup(jti))) {
                rc = jti ? OSB_E_NOMEM : OSB_E_INVAL;
                break;
            }
            n++;
        }
    }
    json_decref(doc);
    buf_free(&body);
    if (rc) {
        free_list(list, n);
        log_warn("libosb: cannot read the revocation list at %s (%s); keeping the last one",
                 j->revocations_url, status && status != 200 ? "bad status" : base_strerror(rc));
        return false;
    }
    if (n > 1)
        qsort(list, n, sizeof *list, cmp_str);
    pthread_mutex_lock(&j->mu);
    char **old = j->revoked;
    size_t nold = j->nrevoked;
    j->revoked = list;
    j->nrevoked = n;
    j->revocations_loaded = true;
    pthread_mutex_unlock(&j->mu);
    free_list(old, nold);
    return true;
}

static bool is_revoked(sdk_jwks *j, const char *jti)
{
    pthread_mutex_lock(&j->mu);
    bool hit = j->nrevoked &&
               bsearch(&jti, j->revoked, j->nrevoked, sizeof *j->revoked, cmp_str) != NULL;
    pthread_mutex_unlock(&j->mu);
    return hit;
}

/* The background thread: the keys every few minutes (with backoff while the platform is
 * unreachable), and the revocation list every few seconds. */
static void *refresher(void *arg)
{
    sdk_jwks *j = arg;
    int64_t retry_ms = RETRY_FIRST_MS, rev_retry_ms = RETRY_FIRST_MS;
    int64_t keys_due = mono_ms(), rev_due = keys_due;
    pthread_mutex_lock(&j->mu);
    while (!j->stop) {
        if (mono_ms() >= keys_due) {
            if (!j->fetching) {
                j->fetching = true;
                pthread_mutex_unlock(&j->mu);
                bool ok = fetch(j);
                pthread_mutex_lock(&j->mu);
                keys_due = mono_ms() + (ok ? REFRESH_INTERVAL_MS : retry_ms);
                retry_ms = ok ? RETRY_FIRST_MS : retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
                                                                              : retry_ms * 2;
            } else {
                keys_due = mono_ms() + RETRY_FIRST_MS; /* a lookup is fetching */
            }
        }
        if (j->revocations_url && !j->stop && mono_ms() >= rev_due) {
            pthread_mutex_unlock(&j->mu);
            bool ok = fetch_revocations(j);
            pthread_mutex_lock(&j->mu);
            int64_t wait = ok ? j->revocations_interval_ms : rev_retry_ms;
            if (wait > j->revocations_interval_ms)
                wait = j->revocations_interval_ms;
            rev_due = mono_ms() + wait;
            rev_retry_ms = ok ? RETRY_FIRST_MS : rev_retry_ms * 2;
        }
        int64_t due = j->revocations_url && rev_due < keys_due ? rev_due : keys_due;
        int64_t wait_ms = due - mono_ms();
        if (wait_ms < 1)
            continue;
        struct timespec until = mono_deadline(wait_ms);
        while (!j->stop && pthread_cond_timedwait(&j->cv, &j->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---------------------------------------------------------------- life cycle */

int sdk_jwks_new(const char *url, const char *revocations_url, unsigned revocations_interval_ms,
                 sdk_jwks **out)
{
    *out = NULL;
    sdk_jwks *j = calloc(1, sizeof *j);
    if (!j || !(j->url = strdup(url)) ||
        (revocations_url && !(j->revocations_url = strdup(revocations_url)))) {
        if (j)
            free(j->url);
        free(j);
        return OSB_E_NOMEM;
    }
    j->revocations_interval_ms =
        revocations_interval_ms ? revocations_interval_ms : REVOCATIONS_INTERVAL_MS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&j->mu, NULL);
    pthread_once(&curl_once, curl_setup);
    if (pthread_create(&j->thread, NULL, refresher, j) != 0) {
        sdk_jwks_free(j);
        return OSB_E_NOMEM;
    }
    j->thread_started = true;
    *out = j;
    return 0;
}

void sdk_jwks_free(sdk_jwks *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->thread_started)
        pthread_join(j->thread, NULL);
    for (size_t i = 0; i < j->nkeys; i++)
        jose_key_free(j->keys[i]);
    free_list(j->revoked, j->nrevoked);
    free(j->revocations_url);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->url);
    free(j);
}

/* ---------------------------------------------------------------- verification */

int sdk_jwks_verify(sdk_jwks *j, const char *token, const char *issuer, const char *client_id,
                    json_t **claims)
{
    jose_verify_opts o = {.issuer = issuer, .leeway_s = TOKEN_LEEWAY_S};
    char why[160];
    *claims = NULL;
    int rc = jose_verify(token, lookup, j, &o, claims, why, sizeof why);
    if (rc != JOSE_OK) {
        log_debug("libosb: bearer token refused: %s", why);
        return OSB_E_INVAL;
    }
    if (client_id && !sdk_json_str_is(json_object_get(*claims, "client_id"), client_id)) {
        log_debug("libosb: bearer token refused: it was not issued to %s", client_id);
        json_decref(*claims);
        *claims = NULL;
        return OSB_E_INVAL;
    }
    if (j->revocations_url) {
        const char *jti = json_string_value(json_object_get(*claims, "jti"));
        if (!jti || is_revoked(j, jti)) {
            log_debug("libosb: bearer token refused: %s", jti ? "revoked" : "no jti");
            json_decref(*claims);
            *claims = NULL;
            return OSB_E_INVAL;
        }
    }
    return 0;
}
