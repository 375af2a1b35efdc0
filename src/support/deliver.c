/* support deliveries: each event of a routed case (opened, updated by the consumer or the
 * operator) goes to the offering's webhook as JSON, signed with the webhook's secret over a
 * timestamp and the body. An attempt takes a lease on the delivery in the store before it
 * goes on the wire, so a platform that dies mid-attempt tries again after the lease; a 2xx
 * acknowledges it, anything else (a status, a timeout, no connection) is retried with
 * exponential backoff and equal jitter, capped, until acknowledged. A case's events go in
 * order: one waits while an earlier one is pending. Every attempt is recorded. */
#include "support/support_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH      32
#define POLL_MS    30000 /* looks again at least this often (other nodes, a new webhook) */
#define LEASE_MS   5000  /* on top of the attempt's timeout */
#define FIRST_WAIT 1000  /* the first retry's wait; never less, so each attempt has its own t */

int support_queue_delivery(store_tx *tx, const char *case_id, int64_t seq, const char *event,
                           const char *offering_id, int64_t now)
{
    (void)offering_id; /* delivered once the offering has a webhook, whenever that is */
    char id[37];
    uuid_v4(id);
    return store_exec(tx,
                      "INSERT INTO support_deliveries (id, case_id, seq, event, state,"
                      " next_attempt_ms, created_ms) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                      "ssisii", id, case_id, seq, event, now, now);
}

void support_deliver_poke(support *s)
{
    pthread_mutex_lock(&s->mu);
    s->poke = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The wait after a failed attempt n (1, 2, ...): FIRST_WAIT doubling, capped, with equal
 * jitter (half fixed, half random). */
static int64_t backoff_ms(const support *s, int64_t n)
{
    int64_t d = FIRST_WAIT;
    for (int64_t i = 1; i < n && d < s->cfg.retry_max_ms; i++)
        d *= 2;
    if (d > s->cfg.retry_max_ms)
        d = s->cfg.retry_max_ms;
    if (d < 2 * FIRST_WAIT)
        return d < FIRST_WAIT ? FIRST_WAIT : d;
    uint32_t r;
    random_bytes(&r, sizeof r);
    int64_t half = d / 2;
    int64_t w = half + (int64_t)(r % (uint32_t)(half + 1));
    return w < FIRST_WAIT ? FIRST_WAIT : w;
}

/* ---------------------------------------------------------------- one attempt */

typedef struct {
    support *s;
    char id[37], case_id[37], url[1001];
    int64_t attempt, seq;
} attempt;

static void on_answer(void *ud, const http_client_response *r)
{
    attempt *a = ud;
    support *s = a->s;
    bool ok = !r->error && r->status >= 200 && r->status < 300;
    int64_t now = time_now_ms(), wait = ok ? 0 : backoff_ms(s, a->attempt);
    store_tx *tx = NULL;
    int rc = store_begin(s->db, true, &tx);
    if (!rc)
        rc = store_exec(tx,
                        "INSERT INTO support_delivery_attempts (delivery_id, attempt, at_ms,"
                        " url, status, error, elapsed_ms) VALUES (?, ?, ?, ?,"
                        " CASE WHEN ? > 0 THEN ? END, ?, ?) ON CONFLICT (delivery_id, attempt)"
                        " DO UPDATE SET at_ms = excluded.at_ms, url = excluded.url, status ="
                        " excluded.status, error = excluded.error, elapsed_ms ="
                        " excluded.elapsed_ms",
                        "siisiisi", a->id, a->attempt, now, a->url, (int64_t)r->status,
                        (int64_t)r->status, r->error, r->elapsed_us / 1000);
    if (!rc && ok)
        rc = store_exec(tx,
                        "UPDATE support_deliveries SET state = 'delivered', delivered_ms = ?"
                        " WHERE id = ? AND state = 'pending'",
                        "is", now, a->id);
    else if (!rc)
        rc = store_exec(tx,
                        "UPDATE support_deliveries SET next_attempt_ms = ? WHERE id = ? AND"
                        " state = 'pending' AND attempts = ?",
                        "isi", now + wait, a->id, a->attempt);
    if (!rc)
        rc = store_commit(tx);
    else if (tx)
        store_rollback(tx);
    if (rc)
        log_error("support: cannot record delivery %s's attempt %lld (%s)", a->id,
                  (long long)a->attempt, base_strerror(rc));
    if (ok)
        log_info("support: case %s's update %lld delivered to %s (attempt %lld, %d)", a->case_id,
                 (long long)a->seq, a->url, (long long)a->attempt, (int)r->status);
    else if (r->error)
        log_warn("support: delivering case %s's update %lld to %s failed (attempt %lld: %s);"
                 " next in %lld ms",
                 a->case_id, (long long)a->seq, a->url, (long long)a->attempt, r->error,
                 (long long)wait);
    else
        log_warn("support: delivering case %s's update %lld to %s failed (attempt %lld: the"
                 " webhook answered %d); next in %lld ms",
                 a->case_id, (long long)a->seq, a->url, (long long)a->attempt, (int)r->status,
                 (long long)wait);
    free(a);
    support_deliver_poke(s);
}

/* The body of a delivery: the event, the case as it is now, and the update it carries. */
static char *payload(store_tx *tx, const char *id, const char *case_id, int64_t seq,
                     const char *event, int64_t attempt_no)
{
    json_t *c = NULL, *u = NULL;
    if (support_case_json(tx, case_id, &c))
        return NULL;
    store_stmt *q;
    if (!store_query(tx,
                     "SELECT seq, author, author_account_id, side, comment, status_from,"
                     " status_to, created_ms FROM support_updates WHERE case_id = ? AND seq = ?",
                     &q, "si", case_id, seq)) {
        if (store_step(q) == STORE_ROW)
            u = support_update_json(q, 0);
        store_done(q);
    }
    char path[80];
    snprintf(path, sizeof path, "/v1/support/cases/%s/updates", case_id);
    json_t *j =
        u ? json_pack("{s:s, s:s, s:I, s:o, s:o, s:s}", "event", event, "delivery_id", id,
                      "attempt", (json_int_t)attempt_no, "case", c, "update", u, "answer_at", path)
          : NULL;
    if (!u)
        json_decref(c);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return body;
}

/* The signature header's value for body at t (unix seconds). */
static void sign(const char *secret, int64_t t, const char *body, char out[128])
{
    buf b;
    buf_init(&b, strlen(body) + 32);
    unsigned char mac[32];
    char hex[65];
    if (buf_printf(&b, "%lld.", (long long)t) || buf_append(&b, body, strlen(body))) {
        out[0] = '\0';
        buf_free(&b);
        return;
    }
    hmac_sha256(secret, strlen(secret), b.data, b.len, mac);
    hex_encode(mac, sizeof mac, hex);
    snprintf(out, 128, "t=%lld,v1=%s", (long long)t, hex);
    buf_free(&b);
}

typedef struct {
    attempt *a;
    char *body;
    char signature[128];
    char event[32];
} outgoing;

/* Takes a lease on the deliveries that are due and sends them; the earliest time another
 * one falls due (now + POLL_MS at the latest). */
static int64_t send_due(support *s)
{
    int64_t now = time_now_ms(), next = now + POLL_MS;
    outgoing out[BATCH];
    int n = 0;
    store_tx *tx = NULL;
    if (store_begin(s->db, true, &tx))
        return now + FIRST_WAIT;
    store_stmt *q;
    int rc = store_query(
        tx,
        "SELECT d.id, d.case_id, d.seq, d.event, d.attempts, w.url, w.secret_sealed, c.offering_id"
        " FROM support_deliveries d JOIN support_cases c ON c.id = d.case_id"
        " JOIN support_webhooks w ON w.offering_id = c.offering_id"
        " WHERE d.state = 'pending' AND d.next_attempt_ms <= ? AND NOT EXISTS"
        " (SELECT 1 FROM support_deliveries e WHERE e.case_id = d.case_id AND"
        "  e.state = 'pending' AND e.seq < d.seq)"
        " ORDER BY d.next_attempt_ms LIMIT ?",
        &q, "ii", now, (int64_t)BATCH);
    int st = 0;
    while (!rc && n < BATCH && (st = store_step(q)) == STORE_ROW) {
        attempt *a = calloc(1, sizeof *a);
        if (!a)
            break;
        a->s = s;
        str_copy(a->id, sizeof a->id, store_col_text(q, 0));
        str_copy(a->case_id, sizeof a->case_id, store_col_text(q, 1));
        a->seq = store_col_int(q, 2);
        a->attempt = store_col_int(q, 4) + 1;
        str_copy(a->url, sizeof a->url, store_col_text(q, 5));
        size_t sn = 0;
        const void *sealed = store_col_blob(q, 6, &sn);
        char secret[128];
        out[n].a = a;
        str_copy(out[n].event, sizeof out[n].event, store_col_text(q, 3));
        out[n].body = NULL;
        out[n].signature[0] = '\0';
        /* A secret that does not open, or a body that cannot be made, leaves the delivery
         * leased and unsent: it is tried again after the lease, not at once. */
        if (open_secret(s->seal_key, store_col_text(q, 7), sealed, sn, secret, sizeof secret,
                        NULL)) {
            log_error("support: the webhook secret of offering %s does not open",
                      store_col_text(q, 7));
        } else {
            /* the secret is used here, inside the loop, and wiped at once */
            out[n].body = payload(tx, a->id, a->case_id, a->seq, out[n].event, a->attempt);
            if (out[n].body)
                sign(secret, now / 1000, out[n].body, out[n].signature);
            secure_wipe(secret, sizeof secret);
        }
        n++;
    }
    if (!rc)
        store_done(q);
    for (int i = 0; !rc && i < n; i++)
        rc = store_exec(tx,
                        "UPDATE support_deliveries SET attempts = ?, next_attempt_ms = ?"
                        " WHERE id = ?",
                        "iis", out[i].a->attempt, now + s->cfg.timeout_ms + LEASE_MS, out[i].a->id);
    if (!rc && !(rc = store_query(tx,
                                  "SELECT min(d.next_attempt_ms) FROM support_deliveries d"
                                  " JOIN support_cases c ON c.id = d.case_id"
                                  " JOIN support_webhooks w ON w.offering_id = c.offering_id"
                                  " WHERE d.state = 'pending'",
                                  &q, ""))) {
        if (store_step(q) == STORE_ROW && !store_col_null(q, 0) && store_col_int(q, 0) < next)
            next = store_col_int(q, 0);
        store_done(q);
    }
    if (!rc && st < 0)
        rc = st;
    if (rc)
        log_error("support: cannot take the deliveries due (%s)", store_errmsg(tx));
    if (!rc)
        rc = store_commit(tx);
    else
        store_rollback(tx);
    for (int i = 0; i < n; i++) {
        attempt *a = out[i].a;
        bool sent = false;
        if (!rc && out[i].body && out[i].signature[0]) {
            char h_sig[160], h_id[80], h_ev[80];
            snprintf(h_sig, sizeof h_sig, SUPPORT_SIGNATURE_HEADER ": %s", out[i].signature);
            snprintf(h_id, sizeof h_id, SUPPORT_DELIVERY_HEADER ": %s", a->id);
            snprintf(h_ev, sizeof h_ev, SUPPORT_EVENT_HEADER ": %s", out[i].event);
            const char *headers[] = {"Content-Type: application/json", h_sig, h_id, h_ev, NULL};
            http_client_request req = {.method = "POST",
                                       .url = a->url,
                                       .headers = headers,
                                       .body = out[i].body,
                                       .body_len = strlen(out[i].body),
                                       .timeout_ms = s->cfg.timeout_ms,
                                       .max_body = 64 * 1024};
            sent = http_client_send(s->client, &req, on_answer, a) == 0;
            if (!sent)
                log_warn("support: cannot send delivery %s to %s", a->id, a->url);
        } else if (!rc)
            log_error("support: cannot make delivery %s's request", a->id);
        free(out[i].body);
        if (!sent)
            free(a); /* its lease runs out and it is tried again */
    }
    return rc ? now + FIRST_WAIT : next;
}

/* ---------------------------------------------------------------- the thread */

static void *deliver_main(void *ud)
{
    support *s = ud;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        s->poke = false;
        pthread_mutex_unlock(&s->mu);
        int64_t next = send_due(s);
        pthread_mutex_lock(&s->mu);
        while (!s->stop && !s->poke) {
            int64_t now = time_now_ms();
            if (next <= now)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = next - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int support_deliver_start(support *s)
{
    http_client_config cc = {
        .name = "support", .user_agent = "osbill-support", .untrusted_targets = true};
    int rc = http_client_start(&cc, &s->client);
    if (rc)
        return rc;
    if (pthread_create(&s->thread, NULL, deliver_main, s) != 0)
        return OSB_E_NOMEM;
    s->running = true;
    return 0;
}

void support_deliver_stop(support *s)
{
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    http_client_stop(s->client); /* attempts in flight end "canceled", and are retried */
    s->client = NULL;
}
