/* sdk usage: the provider's metering, spooled in the broker's state database and sent to the
 * platform's metering API (spec/billing.md, "Submitting usage") by a thread of its own: up to
 * 100 records a request, retried with exponential backoff and jitter until the platform
 * answers for each record. A 201 or a 409 takes a record off the spool; a 400 or a 404 moves
 * it to osb_usage_rejected. Nothing leaves the spool before the platform has answered for it,
 * so a crash between the answer and the deletion only sends it again, and the platform's
 * 409 says it was counted already. */
#include "sdk/sdk.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ANSWER      (256 << 10)
#define MAX_BODY        (512 << 10)
#define MAX_MEASURES    32
#define MAX_ID          512
#define TOKEN_MARGIN_MS 60000 /* a token is renewed this long before it expires */
#define SPOOL_FAILED    (-2)  /* a failure streak of our own, not the platform's */
#define APIKEY_GRANT    "urn:ibm:params:oauth:grant-type:apikey"

struct sdk_usage {
    osb_broker *b;
    char *api_key, *platform_cfg, *resource_cfg;
    char *url, *token_url;
    unsigned batch_max, interval_ms, timeout_ms, backoff_min_ms, backoff_max_ms, stop_flush_ms;
    osb_usage_collect_fn collect;
    void *collect_ud;
    /* the usage thread's own */
    char *token;
    int64_t token_until_ms;
    unsigned backoff_ms;
    int failing; /* the status of the failure streak that was logged; 0: none */
    bool started;
    pthread_t thread;
    /* guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping, kick;
    bool urgent;         /* a flush asked: the next attempt goes now, whatever backoff a send in
                          * flight when it asked sets */
    bool in_round;       /* the thread is collecting or sending */
    int64_t retry_at_ms; /* no request before this (backoff); 0: now */
    uint64_t rounds;     /* rounds finished, for osb_usage_flush */
    bool empty;          /* the spool was empty at the end of the last round */
    uint64_t accepted, duplicates, failures;
    int64_t last_success_ms;
};

static void usage_free(sdk_usage *u)
{
    if (!u)
        return;
    sdk_wipe_free(u->api_key);
    sdk_wipe_free(u->token);
    free(u->platform_cfg);
    free(u->resource_cfg);
    free(u->url);
    free(u->token_url);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u);
}

int osb_usage_enable(osb_broker *b, const osb_usage_config *cfg)
{
    if (!b || !cfg || b->usage || !cfg->api_key || !*cfg->api_key || strlen(cfg->api_key) > 4096 ||
        (cfg->platform_url && !sdk_http_url(cfg->platform_url)) ||
        (cfg->resource_id && (!*cfg->resource_id || strlen(cfg->resource_id) > MAX_ID)) ||
        cfg->batch_max > 100)
        return OSB_E_INVAL;
    sdk_usage *u = calloc(1, sizeof *u);
    if (!u)
        return OSB_E_NOMEM;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    u->b = b;
    u->api_key = strdup(cfg->api_key);
    u->platform_cfg = cfg->platform_url ? strdup(cfg->platform_url) : NULL;
    u->resource_cfg = cfg->resource_id ? strdup(cfg->resource_id) : NULL;
    if (!u->api_key || (cfg->platform_url && !u->platform_cfg) ||
        (cfg->resource_id && !u->resource_cfg)) {
        usage_free(u);
        return OSB_E_NOMEM;
    }
    u->batch_max = cfg->batch_max ? cfg->batch_max : 100;
    u->interval_ms = cfg->interval_ms ? cfg->interval_ms : 1000;
    u->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
    u->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 500;
    u->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 60000;
    if (u->backoff_max_ms < u->backoff_min_ms)
        u->backoff_max_ms = u->backoff_min_ms;
    u->stop_flush_ms = cfg->stop_flush_ms ? cfg->stop_flush_ms : 5000;
    u->collect = cfg->collect;
    u->collect_ud = cfg->collect_ud;
    b->usage = u;
    return 0;
}

/* ---------------------------------------------------------------- spooling */

/* -?(0|[1-9][0-9]*)(\.[0-9]+)? */
static bool decimal_text(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static bool id_ok(const char *s, bool optional)
{
    return s ? *s && strlen(s) <= MAX_ID : optional;
}

/* The record as the platform's JSON, or NULL (the reason logged) when it is malformed. */
static char *record_json(const osb_usage_record *r)
{
    const char *bad = NULL;
    if (!id_ok(r->resource_instance_id, false))
        bad = "resource_instance_id";
    else if (!id_ok(r->plan_id, false))
        bad = "plan_id";
    else if (!id_ok(r->region, true))
        bad = "region";
    else if (!id_ok(r->consumer_id, true))
        bad = "consumer_id";
    else if (r->start_ms < 0 || r->end_ms < r->start_ms)
        bad = "start/end";
    else if (r->n_measures < 1 || r->n_measures > MAX_MEASURES || !r->measures)
        bad = "measures";
    for (size_t i = 0; !bad && i < r->n_measures; i++) {
        const osb_measure *m = &r->measures[i];
        if (!id_ok(m->measure, false) || !m->quantity || !decimal_text(m->quantity))
            bad = "measures";
        for (size_t j = 0; !bad && j < i; j++)
            if (strcmp(r->measures[j].measure, m->measure) == 0)
                bad = "measures (a measure twice)";
    }
    if (bad) {
        log_error("libosb: a usage record with a malformed %s is not spooled", bad);
        return NULL;
    }
    json_t *o = json_object(), *mu = json_array();
    int rc = !o || !mu;
    rc = rc || json_object_set_new(o, "resource_instance_id", json_string(r->resource_instance_id));
    rc = rc || json_object_set_new(o, "plan_id", json_string(r->plan_id));
    if (r->region)
        rc = rc || json_object_set_new(o, "region", json_string(r->region));
    if (r->consumer_id)
        rc = rc || json_object_set_new(o, "consumer_id", json_string(r->consumer_id));
    rc = rc || json_object_set_new(o, "start", json_integer(r->start_ms));
    rc = rc || json_object_set_new(o, "end", json_integer(r->end_ms));
    for (size_t i = 0; !rc && i < r->n_measures; i++) {
        json_t *m = json_pack("{s:s, s:s}", "measure", r->measures[i].measure, "quantity",
                              r->measures[i].quantity);
        rc = !m || json_array_append_new(mu, m);
    }
    char *text = NULL;
    if (!rc && json_object_set(o, "measured_usage", mu) == 0)
        text = json_dumps(o, JSON_COMPACT);
    json_decref(mu);
    json_decref(o);
    if (!text)
        log_error("libosb: a usage record is not spooled: out of memory or bad UTF-8");
    return text;
}

int osb_usage_spool(struct sqlite3 *db, const osb_usage_record *r)
{
    char *text = r ? record_json(r) : NULL;
    if (!text)
        return 1;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "INSERT INTO osb_usage_spool (record, spooled_ms) VALUES (?, ?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, time_now_ms());
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE)
        log_error("libosb: cannot spool a usage record: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    free(text);
    return rc == SQLITE_DONE ? 0 : 2;
}

static int spool_one(struct sqlite3 *db, void *ud)
{
    return osb_usage_spool(db, ud);
}

int osb_usage_submit(osb_broker *b, const osb_usage_record *r)
{
    int rc = osb_write(b, spool_one, (void *)r);
    if (rc == 0 && b->usage) {
        pthread_mutex_lock(&b->usage->mu);
        b->usage->kick = true;
        pthread_cond_broadcast(&b->usage->cv);
        pthread_mutex_unlock(&b->usage->mu);
    }
    return rc;
}

/* ---------------------------------------------------------------- the platform */

/* A fresh token for the API key, or the cached one. 0, or the HTTP status (or -1 for no
 * answer) of a failed exchange. */
static int get_token(sdk_usage *u, unsigned timeout_ms)
{
    if (u->token && time_now_ms() < u->token_until_ms)
        return 0;
    sdk_wipe_free(u->token);
    u->token = NULL;
    buf form, out;
    buf_init(&form, 8192);
    buf_init(&out, MAX_ANSWER);
    int rc = buf_puts(&form, "grant_type=");
    rc = rc ? rc : buf_pct(&form, APIKEY_GRANT);
    rc = rc ? rc : buf_puts(&form, "&apikey=");
    rc = rc ? rc : buf_pct(&form, u->api_key);
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                             "Accept: application/json", NULL};
    long status = 0;
    if (!rc)
        rc = sdk_http_call("POST", u->token_url, headers, buf_cstr(&form), timeout_ms, MAX_ANSWER,
                           &status, &out);
    if (form.data)
        secure_wipe(form.data, form.cap);
    buf_free(&form);
    int result = -1;
    if (!rc && status == 200) {
        json_t *j = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "access_token"));
        json_int_t exp = json_integer_value(json_object_get(j, "expires_in"));
        if (t && *t && (u->token = strdup(t))) {
            if (exp <= 0 || exp > 86400)
                exp = 300;
            int64_t life = (int64_t)exp * 1000;
            u->token_until_ms =
                time_now_ms() + (life > 2 * TOKEN_MARGIN_MS ? life - TOKEN_MARGIN_MS : life / 2);
            result = 0;
        }
        json_decref(j);
    } else if (!rc) {
        result = (int)status;
    }
    if (out.data)
        secure_wipe(out.data, out.cap);
    buf_free(&out);
    return result;
}

typedef struct {
    int64_t id;
    char *record;
    int64_t spooled_ms;
    int status; /* the platform's answer for it; 0: none */
    char *code, *message;
} row;

typedef struct {
    row *rows;
    size_t n;
} batch;

static void batch_clear(batch *bt)
{
    for (size_t i = 0; i < bt->n; i++) {
        free(bt->rows[i].record);
        free(bt->rows[i].code);
        free(bt->rows[i].message);
    }
    free(bt->rows);
    bt->rows = NULL;
    bt->n = 0;
}

static int batch_load(sdk_usage *u, batch *bt)
{
    store_tx *tx;
    store_stmt *q;
    int rc = store_begin(u->b->state.db, false, &tx);
    if (rc)
        return rc;
    if (!(bt->rows = calloc(u->batch_max, sizeof *bt->rows))) {
        store_rollback(tx);
        return OSB_E_NOMEM;
    }
    rc = store_query(tx, "SELECT id, record, spooled_ms FROM osb_usage_spool ORDER BY id LIMIT ?",
                     &q, "i", (int64_t)u->batch_max);
    while (!rc && (rc = store_step(q)) == STORE_ROW) {
        row *r = &bt->rows[bt->n];
        r->id = store_col_int(q, 0);
        r->spooled_ms = store_col_int(q, 2);
        if (!(r->record = strdup(store_col_text(q, 1))))
            rc = OSB_E_NOMEM;
        else
            bt->n++, rc = 0;
    }
    if (q)
        store_done(q);
    store_rollback(tx);
    return rc;
}

static char *dup_str(const json_t *v)
{
    const char *s = json_string_value(v);
    return s ? strndup(s, 1000) : NULL;
}

/* Reads the platform's 202: one answer per record, in order. False when it is not that. */
static bool read_answers(batch *bt, const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    const json_t *res = json_object_get(j, "resources");
    bool ok = json_is_array(res) && json_array_size(res) == bt->n;
    for (size_t i = 0; ok && i < bt->n; i++) {
        const json_t *e = json_array_get(res, i), *s = json_object_get(e, "status");
        if (!json_is_integer(s)) {
            ok = false;
            break;
        }
        bt->rows[i].status = (int)json_integer_value(s);
        bt->rows[i].code = dup_str(json_object_get(e, "code"));
        bt->rows[i].message = dup_str(json_object_get(e, "message"));
    }
    json_decref(j);
    return ok;
}

/* A whole-request refusal (400, 413, 415): the records themselves are at fault, so each of
 * them is refused with the request's answer. */
static void refuse_all(batch *bt, int status, const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    for (size_t i = 0; i < bt->n; i++) {
        bt->rows[i].status = status;
        bt->rows[i].code = dup_str(json_object_get(j, "error"));
        bt->rows[i].message = dup_str(json_object_get(j, "description"));
        if (!bt->rows[i].message)
            bt->rows[i].message = dup_str(json_object_get(j, "message"));
    }
    json_decref(j);
}

/* Sends a loaded batch. 0 with every row's status filled in (those without a final answer
 * keep 0), or the HTTP status (-1: no answer) of a failure of the whole request. */
static int batch_send(sdk_usage *u, batch *bt, unsigned timeout_ms)
{
    /* The platform takes bodies of up to 1 MiB: a batch stops at half of that. */
    size_t size = 2, keep = 0;
    while (keep < bt->n && (keep == 0 || size + strlen(bt->rows[keep].record) + 1 <= MAX_BODY))
        size += strlen(bt->rows[keep++].record) + 1;
    for (size_t i = keep; i < bt->n; i++)
        free(bt->rows[i].record);
    bt->n = keep;
    buf body, out, auth;
    buf_init(&body, size + 16);
    buf_init(&out, MAX_ANSWER);
    buf_init(&auth, 16384);
    int rc = buf_puts(&body, "[");
    for (size_t i = 0; !rc && i < bt->n; i++)
        rc = buf_printf(&body, "%s%s", i ? "," : "", bt->rows[i].record);
    rc = rc ? rc : buf_puts(&body, "]");
    int result = -1;
    for (int attempt = 0; !rc && attempt < 2; attempt++) {
        bool cached = u->token != NULL;
        int t = get_token(u, timeout_ms);
        if (t) {
            result = t > 0 ? 1000 + t : -1; /* the token endpoint's status, told apart */
            break;
        }
        buf_reset(&auth);
        if (buf_printf(&auth, "Authorization: Bearer %s", u->token)) {
            rc = OSB_E_NOMEM;
            break;
        }
        const char *headers[] = {buf_cstr(&auth), "Content-Type: application/json",
                                 "Accept: application/json", NULL};
        long status = 0;
        buf_reset(&out);
        if (sdk_http_call("POST", u->url, headers, buf_cstr(&body), timeout_ms, MAX_ANSWER, &status,
                          &out)) {
            result = -1;
            break;
        }
        if (status == 401 && cached) { /* expired or revoked early: one more, with a new one */
            sdk_wipe_free(u->token);
            u->token = NULL;
            continue;
        }
        if (status == 202 && read_answers(bt, buf_cstr(&out), out.len))
            result = 0;
        else if (status == 400 || status == 413 || status == 415) {
            refuse_all(bt, (int)status, buf_cstr(&out), out.len);
            result = 0;
        } else
            result = status == 202 ? 502 : (int)status; /* a 202 we cannot read: a bad gateway */
        break;
    }
    if (auth.data)
        secure_wipe(auth.data, auth.cap);
    buf_free(&auth);
    buf_free(&body);
    buf_free(&out);
    return rc ? -1 : result;
}

/* Takes the answered rows off the spool: 201 and 409 deleted, 400 and 404 moved to
 * osb_usage_rejected. */
static int settle(struct sqlite3 *db, void *ud)
{
    const batch *bt = ud;
    sqlite3_stmt *del = NULL, *rej = NULL;
    int rc = sqlite3_prepare_v2(db, "DELETE FROM osb_usage_spool WHERE id = ?", -1, &del, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO osb_usage_rejected (record, status, code, message,"
                                " spooled_ms, rejected_ms) VALUES (?, ?, ?, ?, ?, ?)",
                                -1, &rej, NULL);
    int64_t now = time_now_ms();
    for (size_t i = 0; rc == SQLITE_OK && i < bt->n; i++) {
        const row *r = &bt->rows[i];
        bool refused = r->status == 400 || r->status == 404 || r->status == 413 || r->status == 415;
        if (r->status != 201 && r->status != 409 && !refused)
            continue;
        if (refused) {
            sqlite3_bind_text(rej, 1, r->record, -1, SQLITE_STATIC);
            sqlite3_bind_int(rej, 2, r->status);
            sqlite3_bind_text(rej, 3, r->code, -1, SQLITE_STATIC);
            sqlite3_bind_text(rej, 4, r->message, -1, SQLITE_STATIC);
            sqlite3_bind_int64(rej, 5, r->spooled_ms);
            sqlite3_bind_int64(rej, 6, now);
            rc = sqlite3_step(rej) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
            sqlite3_reset(rej);
        }
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(del, 1, r->id);
            rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
            sqlite3_reset(del);
        }
    }
    if (rc != SQLITE_OK)
        log_error("libosb: cannot settle sent usage records: %s", sqlite3_errmsg(db));
    sqlite3_finalize(del);
    sqlite3_finalize(rej);
    return rc == SQLITE_OK ? 0 : 1;
}

static void log_refused(const row *r)
{
    json_t *j = json_loads(r->record, 0, NULL);
    const char *instance = json_string_value(json_object_get(j, "resource_instance_id"));
    log_warn("libosb: the platform refused a usage record of instance %s: %d %s: %s; it is "
             "kept in osb_usage_rejected",
             instance ? instance : "?", r->status, r->code ? r->code : "-",
             r->message ? r->message : "-");
    json_decref(j);
}

static void backoff(sdk_usage *u, int status)
{
    u->backoff_ms = u->backoff_ms ? u->backoff_ms * 2 : u->backoff_min_ms;
    if (u->backoff_ms > u->backoff_max_ms)
        u->backoff_ms = u->backoff_max_ms;
    /* Equal jitter: between half the delay and all of it, so that many brokers that lost
     * the platform together do not come back together. */
    uint32_t r;
    random_bytes(&r, sizeof r);
    unsigned half = u->backoff_ms / 2;
    unsigned wait = half + (half ? r % (half + 1) : 0);
    if (u->failing != status) {
        if (status > 1000)
            log_warn("libosb: usage not sent: the platform's token endpoint answered %d "
                     "(is the usage API key valid?); retrying",
                     status - 1000);
        else if (status > 0)
            log_warn("libosb: usage not sent: the platform answered %d; retrying", status);
        else if (status == SPOOL_FAILED)
            log_warn("libosb: usage not sent: the spool cannot be read or written; retrying");
        else
            log_warn("libosb: usage not sent: the platform cannot be reached; retrying");
        u->failing = status;
    }
    pthread_mutex_lock(&u->mu);
    u->failures++;
    u->retry_at_ms = time_now_ms() + wait;
    pthread_mutex_unlock(&u->mu);
}

/* One batch: loaded, sent and settled. 1 when a batch went and more may follow, 0 when the
 * spool is empty, -1 after a failure (backoff set). */
static int send_one(sdk_usage *u, unsigned timeout_ms)
{
    batch bt = {0};
    if (batch_load(u, &bt)) {
        batch_clear(&bt);
        backoff(u, SPOOL_FAILED);
        return -1;
    }
    if (bt.n == 0) {
        batch_clear(&bt);
        return 0;
    }
    int status = batch_send(u, &bt, timeout_ms);
    if (status != 0) {
        batch_clear(&bt);
        backoff(u, status);
        return -1;
    }
    if (u->failing) {
        log_info("libosb: the platform takes usage again");
        u->failing = 0;
    }
    u->backoff_ms = 0;
    uint64_t accepted = 0, duplicates = 0;
    bool unanswered = false;
    for (size_t i = 0; i < bt.n; i++) {
        int s = bt.rows[i].status;
        if (s == 201)
            accepted++;
        else if (s == 409)
            duplicates++;
        else if (s == 400 || s == 404 || s == 413 || s == 415)
            log_refused(&bt.rows[i]);
        else
            unanswered = true;
    }
    int rc = osb_write(u->b, settle, &bt);
    batch_clear(&bt);
    pthread_mutex_lock(&u->mu);
    u->last_success_ms = time_now_ms();
    if (rc == 0) {
        u->accepted += accepted;
        u->duplicates += duplicates;
    }
    pthread_mutex_unlock(&u->mu);
    if (rc != 0 || unanswered) {
        /* Sent again later: what was accepted answers 409 then and is settled. */
        backoff(u, unanswered ? 500 : SPOOL_FAILED);
        return -1;
    }
    return 1;
}

/* Sends batches until the spool is empty, a failure, the backoff or deadline_ms (0: none). */
static bool send_round(sdk_usage *u, int64_t deadline_ms)
{
    for (;;) {
        int64_t now = time_now_ms();
        pthread_mutex_lock(&u->mu);
        bool wait = now < u->retry_at_ms && !u->urgent;
        u->urgent = false;
        pthread_mutex_unlock(&u->mu);
        if (wait || (deadline_ms && now >= deadline_ms))
            return false;
        unsigned timeout = u->timeout_ms;
        if (deadline_ms && deadline_ms - now < timeout)
            timeout = (unsigned)(deadline_ms - now) + 1;
        int r = send_one(u, timeout);
        if (r <= 0)
            return r == 0;
    }
}

static void round_done(sdk_usage *u, bool empty)
{
    pthread_mutex_lock(&u->mu);
    u->rounds++;
    u->empty = empty;
    u->in_round = false;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

static void timed_wait(sdk_usage *u, int64_t until_ms)
{
    struct timespec ts = {.tv_sec = until_ms / 1000, .tv_nsec = until_ms % 1000 * 1000000};
    pthread_cond_timedwait(&u->cv, &u->mu, &ts); /* CLOCK_REALTIME, like time_now_ms */
}

static void *usage_main(void *arg)
{
    sdk_usage *u = arg;
    pthread_mutex_lock(&u->mu);
    while (!u->stopping) {
        int64_t now = time_now_ms(), until = now + u->interval_ms;
        if (u->retry_at_ms > now && u->retry_at_ms < until)
            until = u->retry_at_ms;
        if (!u->kick)
            timed_wait(u, until);
        if (u->stopping)
            break;
        u->kick = false;
        u->in_round = true;
        pthread_mutex_unlock(&u->mu);
        if (u->collect)
            u->collect(u->b, u->collect_ud, time_now_ms(), false);
        round_done(u, send_round(u, 0));
        pthread_mutex_lock(&u->mu);
    }
    pthread_mutex_unlock(&u->mu);
    /* Stopping: what the provider accumulated, then as much of the spool as time allows. */
    if (u->collect)
        u->collect(u->b, u->collect_ud, time_now_ms(), true);
    int64_t deadline = time_now_ms() + u->stop_flush_ms;
    pthread_mutex_lock(&u->mu);
    u->retry_at_ms = 0;
    pthread_mutex_unlock(&u->mu);
    bool empty = false;
    while (!(empty = send_round(u, deadline)) && time_now_ms() < deadline) {
        pthread_mutex_lock(&u->mu);
        int64_t until = u->retry_at_ms < deadline ? u->retry_at_ms : deadline;
        while (time_now_ms() < until)
            timed_wait(u, until);
        pthread_mutex_unlock(&u->mu);
    }
    if (!empty)
        log_warn("libosb: stopping with usage records left on the spool; they are sent on the "
                 "next start");
    round_done(u, empty);
    return NULL;
}

int sdk_usage_start(osb_broker *b, char *err, size_t errlen)
{
    sdk_usage *u = b->usage;
    if (!u)
        return 0;
    const char *platform = u->platform_cfg ? u->platform_cfg : b->platform_url;
    const char *resource = u->resource_cfg;
    if (!resource) {
        const json_t *svc = json_array_get(json_object_get(b->catalog.root, "services"), 0);
        resource = json_string_value(json_object_get(svc, "id"));
    }
    if (!platform || !resource) {
        if (err && errlen)
            snprintf(err, errlen, "the usage client needs the platform's URL and an offering id");
        return OSB_E_INVAL;
    }
    size_t n = strlen(platform);
    while (n && platform[n - 1] == '/')
        n--;
    buf path;
    buf_init(&path, 4096);
    int rc = buf_pct(&path, resource);
    if (rc ||
        asprintf(&u->url, "%.*s/v4/metering/resources/%s/usage", (int)n, platform,
                 buf_cstr(&path)) < 0 ||
        asprintf(&u->token_url, "%.*s/identity/token", (int)n, platform) < 0) {
        u->url = u->token_url = NULL;
        buf_free(&path);
        return OSB_E_NOMEM;
    }
    buf_free(&path);
    if (pthread_create(&u->thread, NULL, usage_main, u) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "cannot start the usage thread");
        return OSB_E_IO;
    }
    u->started = true;
    return 0;
}

void sdk_usage_stop(sdk_usage *u)
{
    if (!u)
        return;
    if (u->started) {
        pthread_mutex_lock(&u->mu);
        u->stopping = true;
        pthread_cond_broadcast(&u->cv);
        pthread_mutex_unlock(&u->mu);
        pthread_join(u->thread, NULL);
    }
    usage_free(u);
}

static int64_t count(osb_broker *b, bool rejected)
{
    store_tx *tx;
    store_stmt *q = NULL;
    int64_t n = -1;
    if (store_begin(b->state.db, false, &tx))
        return -1;
    int rc = rejected ? store_query(tx, "SELECT count(*) FROM osb_usage_rejected", &q, "")
                      : store_query(tx, "SELECT count(*) FROM osb_usage_spool", &q, "");
    if (!rc && store_step(q) == STORE_ROW)
        n = store_col_int(q, 0);
    if (q)
        store_done(q);
    store_rollback(tx);
    return n;
}

int osb_usage_flush(osb_broker *b, unsigned timeout_ms, osb_usage_stats *stats)
{
    sdk_usage *u = b ? b->usage : NULL;
    if (!u || !u->started)
        return -1;
    int64_t deadline = time_now_ms() + timeout_ms;
    pthread_mutex_lock(&u->mu);
    for (;;) {
        /* A round that starts after this moment sees every record spooled before it. */
        uint64_t want = u->rounds + (u->in_round ? 2 : 1);
        u->kick = true;
        u->urgent = true;
        u->retry_at_ms = 0;
        pthread_cond_broadcast(&u->cv);
        while (u->rounds < want && !u->stopping && time_now_ms() < deadline)
            timed_wait(u, deadline);
        if (u->rounds >= want && u->empty)
            break;
        if (u->stopping || time_now_ms() >= deadline)
            break;
        /* not empty: wait out the backoff the round set, then go again */
        int64_t until = u->retry_at_ms < deadline ? u->retry_at_ms : deadline;
        while (!u->stopping && time_now_ms() < until)
            timed_wait(u, until);
    }
    bool empty = u->empty;
    if (stats) {
        stats->accepted = u->accepted;
        stats->duplicates = u->duplicates;
        stats->failures = u->failures;
        stats->last_success_ms = u->last_success_ms;
    }
    pthread_mutex_unlock(&u->mu);
    if (stats) {
        stats->spooled = count(b, false);
        stats->rejected = count(b, true);
        empty = stats->spooled == 0;
    }
    return empty ? 0 : 1;
}
