/* billing API: live usage and estimated charges, closing a month, invoices (JSON, CSV, HTML),
 * provider statements and the billing preview. Handlers check who asks, then call the
 * ledger (bill_rate) and write or read what a close finalized. */
#include "billing/billing.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/rate.h"

#define DAY_MS 86400000LL
/* Nodes sharing the store close a month once: the one holding its lease, renewed while it
 * rates; the others take a close over once a dead node's lease has expired. */
#define CLOSE_HOLD_MS   15000
#define CLOSE_RENEW_MS  3000
#define RESUME_EVERY_MS 5000

struct billing {
    store *db;
    iam *iam;

    /* The close running in this process, for GET /v1/billing/periods/{month}'s progress. */
    pthread_mutex_t mu;
    struct {
        char month[8];
        const char *phase; /* "rating", "finalizing"; NULL when none runs */
        int64_t done, total, started_ms;
        int64_t renewed_ms; /* its lease's, when the store is shared */
        bool lost;          /* the lease went to another node: the rating stops */
    } closing;

    /* Closes a restart cut off (closed to usage, not finalized), finished from the start. */
    pthread_t resumer;
    bool resuming;
    char (*cut_off)[8];
    size_t ncut_off;

    /* The operators' closes run on threads of their own (under mu): the server's threads
     * keep serving meanwhile. billing_stop() makes them stop rating. */
    pthread_cond_t idle;
    int closes;
    int stopping; /* atomic */
    pthread_cond_t wake; /* the resumer's sleep, cut short by billing_stop() */
};

static void close_lease_name(char name[32], const char *month)
{
    snprintf(name, 32, "billing.close.%.7s", month);
}

/* Takes or renews month's close lease in a transaction of its own: 1 taken, 0 another node
 * holds it, or an error. */
static int close_lease(billing *b, const char *month)
{
    char name[32], holder[96];
    close_lease_name(name, month);
    store_tx *tx;
    int rc = store_begin(b->db, true, &tx);
    if (rc)
        return rc;
    int64_t now = time_now_ms();
    int held = store_lease_take(tx, name, now, now + CLOSE_HOLD_MS, holder, sizeof holder);
    if (held < 0) {
        store_rollback(tx);
        return held;
    }
    if ((rc = store_commit(tx)))
        return rc;
    if (!held)
        log_info("billing: the close of %s runs on node %s", month, holder);
    return held;
}

static void close_lease_drop(billing *b, const char *month)
{
    char name[32];
    close_lease_name(name, month);
    store_tx *tx;
    if (store_begin(b->db, true, &tx))
        return;
    if (store_lease_drop(tx, name))
        store_rollback(tx);
    else if (store_commit(tx))
        log_warn("billing: the close lease of %s is kept until it expires", month);
}

/* Takes the node's one close slot for month; false when a close runs already. */
static bool progress_start(billing *b, const char *month)
{
    pthread_mutex_lock(&b->mu);
    if (b->closing.phase) {
        pthread_mutex_unlock(&b->mu);
        return false;
    }
    str_copy(b->closing.month, sizeof b->closing.month, month);
    b->closing.phase = "counting"; /* until the walks know how much they will visit */
    b->closing.done = b->closing.total = 0;
    b->closing.started_ms = b->closing.renewed_ms = time_now_ms();
    b->closing.lost = false;
    pthread_mutex_unlock(&b->mu);
    return true;
}

static void progress_phase(billing *b, const char *phase)
{
    pthread_mutex_lock(&b->mu);
    b->closing.phase = phase;
    pthread_mutex_unlock(&b->mu);
}

static bool on_progress(void *ud, int64_t done, int64_t total)
{
    billing *b = ud;
    char month[8] = "";
    int64_t now = time_now_ms();
    pthread_mutex_lock(&b->mu);
    b->closing.phase = "rating";
    b->closing.done = done;
    b->closing.total = total;
    if (store_shared(b->db) && now - b->closing.renewed_ms >= CLOSE_RENEW_MS) {
        b->closing.renewed_ms = now;
        str_copy(month, sizeof month, b->closing.month);
    }
    pthread_mutex_unlock(&b->mu);
    /* the lease renewed, or the rating stops: another node has the close now */
    if (month[0] && close_lease(b, month) == 0) {
        pthread_mutex_lock(&b->mu);
        b->closing.lost = true;
        pthread_mutex_unlock(&b->mu);
        return false;
    }
    return !__atomic_load_n(&b->stopping, __ATOMIC_SEQ_CST);
}

/* The progress of month's close in this process, or NULL. */
static json_t *progress_json(billing *b, const char *month)
{
    json_t *j = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->closing.phase && strcmp(b->closing.month, month) == 0)
        j = json_pack("{s:s, s:I, s:I, s:I}", "phase", b->closing.phase, "done",
                      (json_int_t)b->closing.done, "total", (json_int_t)b->closing.total,
                      "elapsed_ms", (json_int_t)(time_now_ms() - b->closing.started_ms));
    pthread_mutex_unlock(&b->mu);
    return j;
}

/* ---------------------------------------------------------------- shapes */

static json_t *dec_text(const dec *d)
{
    char *s = dec_to_string(d);
    json_t *j = s ? json_string(s) : json_null();
    free(s);
    return j;
}

static json_t *money_text(const dec *d, const char *currency)
{
    int minor = currency_minor_units(currency);
    char *s = dec_to_fixed(d, minor < 0 ? 2 : minor);
    json_t *j = s ? json_string(s) : json_null();
    free(s);
    return j;
}

/* A line as consumers read it (the shares are the provider's statement's business). */
static json_t *line_json(const bill_line *l)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s?, s:s, s:o, s:o}",
                     "resource_instance_id", l->instance, "offering_id", l->offering, "plan_id",
                     l->plan, "metric", l->metric, "unit", l->unit, "metering_model",
                     l->metering_model, "quantity", dec_text(&l->billable), "charge_unit_quantity",
                     dec_text(&l->charge_unit), "rateable_quantity", dec_text(&l->rated),
                     "pricing_model", l->pricing_model[0] ? l->pricing_model : NULL, "currency",
                     l->currency, "exact_cost", dec_text(&l->exact), "cost",
                     money_text(&l->amount, l->currency));
}

static bool month_ok(http_req *req, const char *month, int64_t *from, int64_t *to)
{
    if (time_month_range(month, from, to))
        return true;
    http_reply_error(req, 400, "invalid_month", "The month must be YYYY-MM.", "month");
    return false;
}

static void reply_store_error(http_req *req)
{
    http_reply_error(req, 503, "unavailable", "The store failed; try again.", NULL);
}

/* A rating error that names its line is the caller's data, not the platform's health. */
static void reply_rate_error(http_req *req, int rc, const char *why)
{
    if (rc == OSB_E_TOOBIG)
        http_reply_errorf(req, 422, "limit_exceeded", "Cannot rate %s.", why);
    else if (rc == OSB_E_NOTFOUND)
        http_reply_errorf(req, 422, "unpriced", "Cannot rate %s.", why);
    else
        reply_store_error(req);
}

/* The operator's own requests: false (answered) for anyone else. */
static bool operator_only(billing *b, http_req *req, iam_principal *p, const char *refusal)
{
    if (!iam_authenticate(b->iam, req, p))
        return false;
    if (!p->operator) {
        http_reply_error(req, 403, "forbidden", refusal, NULL);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- periods */

typedef struct {
    bool exists, closed, finalized, forced;
    int64_t closed_ms, finalized_ms;
} period;

static int period_get(store_tx *tx, const char *month, period *pd)
{
    memset(pd, 0, sizeof *pd);
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT state, closed_ms, finalized_ms, forced FROM billing_periods"
                         " WHERE month = ?",
                         &q, "s", month);
    if (rc)
        return rc;
    int st = store_step(q);
    if (st == STORE_ROW) {
        pd->exists = true;
        pd->closed = str_eq(store_col_text(q, 0), "closed");
        pd->closed_ms = store_col_null(q, 1) ? 0 : store_col_int(q, 1);
        pd->finalized = !store_col_null(q, 2);
        pd->finalized_ms = pd->finalized ? store_col_int(q, 2) : 0;
        pd->forced = store_col_int(q, 3) != 0;
    }
    store_done(q);
    return st < 0 ? st : 0;
}

/* The grace deadline of a month: the 2nd day of the next one, 00:00 UTC. */
static int64_t grace_deadline(int64_t to)
{
    return to + DAY_MS;
}

static json_t *period_json(const char *month, const period *pd, int64_t to)
{
    char at[32], fin[32], dl[32];
    time_format_rfc3339(pd->closed_ms, at);
    time_format_rfc3339(pd->finalized_ms, fin);
    time_format_rfc3339(grace_deadline(to), dl);
    const char *state = !pd->closed ? "open" : pd->finalized ? "closed" : "closing";
    return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:b}", "month", month, "state", state,
                     "grace_deadline", dl, "closed_at", pd->closed ? at : NULL, "finalized_at",
                     pd->finalized ? fin : NULL, "forced", pd->forced);
}

/* ---------------------------------------------------------------- live usage */

/* The rated lines summed per offering and plan, in IBM Cloud's usage-report shape: resources
 * [{resource_id, billable_cost, plans: [{plan_id, cost, usage: [{metric, unit, quantity,
 * rateable_quantity, cost}]}]}]. Lines are in (instance, plan, metric) order; sums are exact. */
static json_t *resources_json(const bill_lines *ls, dec *total)
{
    json_t *res = json_array();
    dec t;
    dec_init(&t);
    for (size_t i = 0; i < ls->n; i++) {
        const bill_line *l = &ls->v[i];
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(ls->v[k].offering, l->offering) == 0;
        if (seen)
            continue;
        json_t *plans = json_array();
        dec ocost;
        dec_init(&ocost);
        for (size_t j = i; j < ls->n; j++) {
            const bill_line *pl = &ls->v[j];
            if (strcmp(pl->offering, l->offering) != 0)
                continue;
            bool pseen = false;
            for (size_t k = i; k < j && !pseen; k++)
                pseen = strcmp(ls->v[k].offering, l->offering) == 0 &&
                        strcmp(ls->v[k].plan, pl->plan) == 0;
            if (pseen)
                continue;
            json_t *usage = json_array();
            dec pcost;
            dec_init(&pcost);
            for (size_t m = j; m < ls->n; m++) {
                const bill_line *ml = &ls->v[m];
                if (strcmp(ml->offering, l->offering) != 0 || strcmp(ml->plan, pl->plan) != 0)
                    continue;
                bool mseen = false;
                for (size_t k = j; k < m && !mseen; k++)
                    mseen = strcmp(ls->v[k].offering, l->offering) == 0 &&
                            strcmp(ls->v[k].plan, pl->plan) == 0 &&
                            strcmp(ls->v[k].metric, ml->metric) == 0;
                if (mseen)
                    continue;
                dec qty, rq, cost;
                dec_init(&qty);
                dec_init(&rq);
                dec_init(&cost);
                for (size_t k = m; k < ls->n; k++) {
                    const bill_line *x = &ls->v[k];
                    if (strcmp(x->offering, l->offering) == 0 && strcmp(x->plan, pl->plan) == 0 &&
                        strcmp(x->metric, ml->metric) == 0) {
                        dec_add(&qty, &qty, &x->billable);
                        dec_add(&rq, &rq, &x->rated);
                        dec_add(&cost, &cost, &x->amount);
                    }
                }
                json_array_append_new(
                    usage, json_pack("{s:s, s:s, s:o, s:o, s:o}", "metric", ml->metric, "unit",
                                     ml->unit, "quantity", dec_text(&qty), "rateable_quantity",
                                     dec_text(&rq), "cost", money_text(&cost, ml->currency)));
                dec_add(&pcost, &pcost, &cost);
                dec_clear(&qty);
                dec_clear(&rq);
                dec_clear(&cost);
            }
            json_array_append_new(plans,
                                  json_pack("{s:s, s:o, s:o}", "plan_id", pl->plan, "cost",
                                            money_text(&pcost, pl->currency), "usage", usage));
            dec_add(&ocost, &ocost, &pcost);
            dec_clear(&pcost);
        }
        json_array_append_new(res, json_pack("{s:s, s:o, s:o}", "resource_id", l->offering,
                                             "billable_cost", money_text(&ocost, l->currency),
                                             "plans", plans));
        dec_add(&t, &t, &ocost);
        dec_clear(&ocost);
    }
    dec_copy(total, &t);
    dec_clear(&t);
    return res;
}

/* An invoice's stored lines into ls (every line of the invoices of account and month that
 * are not void), for a closed month's usage. */
static int stored_lines(store_tx *tx, const char *account, const char *month, bill_lines *ls);

static void account_usage(http_req *req, void *ud)
{
    billing *b = ud;
    const char *account = req->params[0], *month = req->params[1];
    iam_principal p;
    if (!iam_authenticate(b->iam, req, &p))
        return;
    if (!p.operator&& strcmp(p.account_id, account) != 0) {
        http_reply_error(req, 403, "forbidden", "An account reads only its own usage.",
                         "account_id");
        return;
    }
    int64_t from, to;
    if (!month_ok(req, month, &from, &to))
        return;
    store_tx *tx;
    if (store_begin(b->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    char currency[4] = "USD";
    store_stmt *q;
    int rc = store_query(tx, "SELECT currency FROM accounts WHERE id = ?", &q, "s", account);
    bool found = false;
    if (!rc) {
        if ((found = store_step(q) == STORE_ROW))
            str_copy(currency, sizeof currency, store_col_text(q, 0));
        store_done(q);
    }
    if (!rc && !found) {
        store_rollback(tx);
        http_reply_error(req, 404, "not_found", "No such account.", "account_id");
        return;
    }
    period pd;
    bill_lines ls = {0};
    char why[400] = "";
    if (!rc)
        rc = period_get(tx, month, &pd);
    int64_t now = time_now_ms();
    if (!rc)
        rc = pd.finalized ? stored_lines(tx, account, month, &ls)
                          : bill_rate(tx, account, month, now, NULL, &ls, why, sizeof why);
    store_rollback(tx);
    if (rc) {
        bill_lines_free(&ls);
        reply_rate_error(req, rc, why);
        return;
    }
    dec total;
    dec_init(&total);
    json_t *res = resources_json(&ls, &total);
    json_t *lines = json_array();
    for (size_t i = 0; i < ls.n; i++)
        json_array_append_new(lines, line_json(&ls.v[i]));
    int64_t days = (to - from) / DAY_MS;
    if (!pd.finalized && now >= from && now < to)
        days = (now - from) / DAY_MS + 1;
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:o, s:o, s:o}", "account_id", account,
                  "billing_month", month, "currency_code", currency, "state",
                  !pd.closed     ? "open"
                  : pd.finalized ? "closed"
                                 : "closing",
                  "estimate", !pd.finalized, "days_counted", (json_int_t)days, "billable_cost",
                  money_text(&total, currency), "resources", res, "lines", lines);
    dec_clear(&total);
    bill_lines_free(&ls);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- stored lines */

static int stored_lines(store_tx *tx, const char *account, const char *month, bill_lines *ls)
{
    store_stmt *q;
    int rc = store_query(
        tx,
        "SELECT i.account_id, l.instance_id, l.offering_id, l.provider_account_id, l.plan_id,"
        " l.metric, l.unit, l.metering_model, coalesce(l.pricing_model, ''), i.currency,"
        " l.billable_quantity, l.charge_unit_quantity, l.rated_quantity, l.exact_amount,"
        " l.amount, l.provider_share, l.platform_share, l.revenue_share"
        " FROM invoices i JOIN invoice_lines l ON l.invoice_id = i.id"
        " WHERE i.account_id = ? AND i.month = ? AND i.state = 'finalized' AND i.kind = 'invoice'"
        " ORDER BY i.number, l.line",
        &q, "ss", account, month);
    if (rc)
        return rc;
    int st;
    while (!rc && (st = store_step(q)) == STORE_ROW) {
        if (ls->n == ls->cap) {
            size_t cap = ls->cap ? ls->cap * 2 : 64;
            bill_line *v = realloc(ls->v, cap * sizeof *v);
            if (!v) {
                rc = OSB_E_NOMEM;
                break;
            }
            ls->v = v;
            ls->cap = cap;
        }
        bill_line *l = &ls->v[ls->n++];
        memset(l, 0, sizeof *l);
        str_copy(l->account, sizeof l->account, store_col_text(q, 0));
        str_copy(l->instance, sizeof l->instance, store_col_text(q, 1));
        str_copy(l->offering, sizeof l->offering, store_col_text(q, 2));
        str_copy(l->provider, sizeof l->provider, store_col_text(q, 3));
        str_copy(l->plan, sizeof l->plan, store_col_text(q, 4));
        str_copy(l->metric, sizeof l->metric, store_col_text(q, 5));
        str_copy(l->unit, sizeof l->unit, store_col_text(q, 6));
        str_copy(l->metering_model, sizeof l->metering_model, store_col_text(q, 7));
        str_copy(l->pricing_model, sizeof l->pricing_model, store_col_text(q, 8));
        str_copy(l->currency, sizeof l->currency, store_col_text(q, 9));
        dec *d[] = {&l->billable, &l->charge_unit,    &l->rated,          &l->exact,
                    &l->amount,   &l->provider_share, &l->platform_share, &l->share};
        for (int k = 0; k < 8; k++) {
            dec_init(d[k]);
            const char *t = store_col_text(q, 10 + k);
            if (!t || dec_parse(d[k], t, strlen(t)))
                rc = OSB_E_STORE;
        }
    }
    if (!rc && st < 0)
        rc = st;
    store_done(q);
    return rc;
}

/* ---------------------------------------------------------------- closing */

static int minor_of(const char *currency)
{
    int minor = currency_minor_units(currency);
    return minor < 0 ? 2 : minor;
}

static int next_number(store_tx *tx, int64_t *number)
{
    store_stmt *q;
    int rc = store_query(tx, "SELECT coalesce(max(number), 0) + 1 FROM invoices", &q, "");
    if (rc)
        return rc;
    int st = store_step(q);
    *number = st == STORE_ROW ? store_col_int(q, 0) : 1;
    store_done(q);
    return st < 0 ? st : 0;
}

#define INVOICE_INSERT                                                                             \
    "INSERT INTO invoices (id, number, account_id, month, currency, state, total, refers_to,"      \
    " issued_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define LINES_INSERT                                                                               \
    "INSERT INTO invoice_lines (invoice_id, line, instance_id, offering_id, provider_account_id,"  \
    " plan_id, metric, unit, metering_model, pricing_model, billable_quantity,"                   \
    " charge_unit_quantity, rated_quantity, exact_amount, amount, provider_share,"               \
    " platform_share, revenue_share) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"  \
    " ?)"

/* The total of lines [i, j) of ls in their currency's minor units; NULL when out of memory. */
static char *lines_total(const bill_lines *ls, size_t i, size_t j)
{
    dec total;
    dec_init(&total);
    for (size_t k = i; k < j; k++)
        dec_add(&total, &total, &ls->v[k].amount);
    char *t = dec_to_fixed(&total, minor_of(ls->v[i].currency));
    dec_clear(&total);
    return t;
}

/* Lines [i, j) of ls as the rows of invoice id. */
static int add_lines(store_rows *r, const char *id, const bill_lines *ls, size_t i, size_t j)
{
    int minor = minor_of(ls->v[i].currency), rc = 0;
    for (size_t k = i; k < j && !rc; k++) {
        const bill_line *l = &ls->v[k];
        char *v[8] = {dec_to_string(&l->billable),
                      dec_to_string(&l->charge_unit),
                      dec_to_string(&l->rated),
                      dec_to_string(&l->exact),
                      dec_to_fixed(&l->amount, minor),
                      dec_to_fixed(&l->provider_share, minor),
                      dec_to_fixed(&l->platform_share, minor),
                      dec_to_string(&l->share)};
        bool ok = true;
        for (int m = 0; m < 8; m++)
            ok = ok && v[m];
        rc = ok ? store_rows_add(r, "sissssssssssssssss", id, (int64_t)(k - i + 1), l->instance,
                                 l->offering, l->provider, l->plan, l->metric, l->unit,
                                 l->metering_model, l->pricing_model[0] ? l->pricing_model : NULL,
                                 v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7])
                : OSB_E_NOMEM;
        for (int m = 0; m < 8; m++)
            free(v[m]);
    }
    return rc;
}

/* One invoice of lines [i, j) of ls (one account, one currency), numbered next. */
static int insert_invoice(store_tx *tx, const char *month, const bill_lines *ls, size_t i, size_t j,
                          const char *refers_to, int64_t now, char id[37])
{
    int64_t number;
    int rc = next_number(tx, &number);
    if (rc)
        return rc;
    const bill_line *first = &ls->v[i];
    uuid_v4(id);
    char *t = lines_total(ls, i, j);
    rc = t ? store_exec(tx, INVOICE_INSERT, "sissssssi", id, number, first->account, month,
                        first->currency, "finalized", t, refers_to, now)
           : OSB_E_NOMEM;
    free(t);
    store_rows *r;
    if (!rc && !(rc = store_rows_begin(tx, LINES_INSERT, &r))) {
        rc = add_lines(r, id, ls, i, j);
        int end = store_rows_end(r);
        rc = rc ? rc : end;
    }
    return rc;
}

/* The month's statements, per provider and currency, from its finalized invoices' lines,
 * summed exactly. A statement keeps its id when a correction changes its sums; one whose
 * lines are all gone drops to zero. */
static int statements_rebuild(store_tx *tx, const char *month, int64_t now, int *n)
{
    *n = 0;
    int rc = store_exec(tx,
                        "UPDATE statements SET gross = '0', provider_share = '0',"
                        " platform_share = '0', issued_ms = ? WHERE month = ?",
                        "is", now, month);
    store_stmt *q;
    if (!rc)
        rc = store_query(tx,
                         "SELECT l.provider_account_id, i.currency, l.amount,"
                         " l.provider_share, l.platform_share FROM invoice_lines l"
                         " JOIN invoices i ON i.id = l.invoice_id WHERE i.month = ?"
                         " AND i.state = 'finalized' AND i.kind = 'invoice'"
                         " ORDER BY l.provider_account_id, i.currency",
                         &q, "s", month);
    if (rc)
        return rc;
    /* Sums are collected first, then written: a write between steps would disturb the read. */
    typedef struct {
        char provider[64], currency[4];
        dec sum[3];
    } sums;
    sums *v = NULL;
    size_t nv = 0, cap = 0;
    dec x;
    dec_init(&x);
    int st;
    while (!rc && (st = store_step(q)) == STORE_ROW) {
        const char *prov = store_col_text(q, 0), *cur = store_col_text(q, 1);
        if (!nv || strcmp(v[nv - 1].provider, prov) || strcmp(v[nv - 1].currency, cur)) {
            if (nv == cap) {
                cap = cap ? cap * 2 : 16;
                sums *w = realloc(v, cap * sizeof *w);
                if (!w) {
                    rc = OSB_E_NOMEM;
                    break;
                }
                v = w;
            }
            str_copy(v[nv].provider, sizeof v[nv].provider, prov);
            str_copy(v[nv].currency, sizeof v[nv].currency, cur);
            for (int k = 0; k < 3; k++)
                dec_init(&v[nv].sum[k]);
            nv++;
        }
        for (int k = 0; k < 3 && !rc; k++) {
            const char *t = store_col_text(q, 2 + k);
            if (!t || dec_parse(&x, t, strlen(t)))
                rc = OSB_E_STORE;
            else
                dec_add(&v[nv - 1].sum[k], &v[nv - 1].sum[k], &x);
        }
    }
    if (!rc && st < 0)
        rc = st;
    store_done(q);
    dec_clear(&x);
    for (size_t k = 0; k < nv; k++) {
        int minor = minor_of(v[k].currency);
        char *t[3] = {dec_to_fixed(&v[k].sum[0], minor), dec_to_fixed(&v[k].sum[1], minor),
                      dec_to_fixed(&v[k].sum[2], minor)};
        char id[37];
        uuid_v4(id);
        if (!rc)
            rc = t[0] && t[1] && t[2]
                     ? store_exec(tx,
                                  "INSERT INTO statements (id, provider_account_id, month,"
                                  " currency, gross, provider_share, platform_share,"
                                  " issued_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                                  " ON CONFLICT (provider_account_id, month, currency) DO"
                                  " UPDATE SET gross = excluded.gross, provider_share ="
                                  " excluded.provider_share, platform_share ="
                                  " excluded.platform_share, issued_ms = excluded.issued_ms",
                                  "sssssssi", id, v[k].provider, month, v[k].currency, t[0], t[1],
                                  t[2], now)
                     : OSB_E_NOMEM;
        for (int m = 0; m < 3; m++) {
            free(t[m]);
            dec_clear(&v[k].sum[m]);
        }
    }
    free(v);
    *n = (int)nv;
    return rc;
}

/* Whether line j of ls is on line i's invoice: one account, one currency. */
static bool same_invoice(const bill_lines *ls, size_t i, size_t j)
{
    return strcmp(ls->v[j].account, ls->v[i].account) == 0 &&
           strcmp(ls->v[j].currency, ls->v[i].currency) == 0;
}

/* What a close finalizes, from the rated lines: an invoice per account (an account bills in
 * one currency), in account order, then the statements. Inside the write transaction that
 * sets finalized_ms. */
static int finalize(store_tx *tx, const char *month, const bill_lines *ls, int64_t now,
                    int *ninvoices, int *nstatements)
{
    *ninvoices = *nstatements = 0;
    /* the invoices, numbered on from the last, then all their lines: two bulk writes (a
     * COPY each on PostgreSQL) rather than a statement per row */
    size_t n = 0;
    for (size_t i = 0; i < ls->n; n++) {
        size_t j = i;
        while (j < ls->n && same_invoice(ls, i, j))
            j++;
        i = j;
    }
    char(*ids)[37] = n ? calloc(n, sizeof *ids) : NULL;
    if (n && !ids)
        return OSB_E_NOMEM;
    int64_t number;
    int rc = next_number(tx, &number);
    store_rows *r;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        if ((rc = store_rows_begin(tx, pass ? LINES_INSERT : INVOICE_INSERT, &r)))
            break;
        size_t k = 0;
        for (size_t i = 0; i < ls->n && !rc; k++) {
            size_t j = i;
            while (j < ls->n && same_invoice(ls, i, j))
                j++;
            if (pass) {
                rc = add_lines(r, ids[k], ls, i, j);
            } else {
                uuid_v4(ids[k]);
                char *t = lines_total(ls, i, j);
                rc = t ? store_rows_add(r, "sissssssi", ids[k], number + (int64_t)k,
                                        ls->v[i].account, month, ls->v[i].currency, "finalized",
                                        t, NULL, now)
                       : OSB_E_NOMEM;
                free(t);
            }
            i = j;
        }
        int end = store_rows_end(r);
        rc = rc ? rc : end;
    }
    free(ids);
    *ninvoices = (int)n;
    return rc ? rc : statements_rebuild(tx, month, now, nstatements);
}

/* Steps 2 and 3 of a close, once month takes no more usage: rates it from one snapshot and
 * finalizes it, once (a close that ran meanwhile may have done it). Errors that name a line
 * are logged: the close stopped on the platform's data. */
static int close_finish(billing *b, const char *month, int64_t now, char *why, size_t whylen)
{
    bill_lines ls = {0};
    store_tx *tx;
    if (!progress_start(b, month))
        return OSB_E_CONFLICT; /* one close at a time on a node */
    bool shared = store_shared(b->db);
    int rc = shared ? close_lease(b, month) : 1;
    if (rc != 1) {
        progress_phase(b, NULL);
        return rc == 0 ? OSB_E_CONFLICT : rc;
    }
    rc = store_begin(b->db, false, &tx);
    if (rc) {
        progress_phase(b, NULL);
        if (shared)
            close_lease_drop(b, month);
        return rc;
    }
    bill_progress pg = {on_progress, b};
    rc = bill_rate(tx, NULL, month, 0, &pg, &ls, why, whylen);
    progress_phase(b, "finalizing");
    store_rollback(tx);
    pthread_mutex_lock(&b->mu);
    if (rc && b->closing.lost)
        rc = OSB_E_CONFLICT; /* another node finishes it */
    pthread_mutex_unlock(&b->mu);
    /* held on through the finalizing, which can take seconds of its own */
    if (!rc && shared && (rc = close_lease(b, month)) >= 0)
        rc = rc == 1 ? 0 : OSB_E_CONFLICT;
    if (!rc && !(rc = store_begin(b->db, true, &tx))) {
        period again;
        int ninv = 0, nst = 0;
        rc = period_get(tx, month, &again);
        if (!rc && !again.finalized) {
            rc = finalize(tx, month, &ls, now, &ninv, &nst);
            if (!rc)
                rc = store_exec(tx, "UPDATE billing_periods SET finalized_ms = ? WHERE month = ?",
                                "is", now, month);
        }
        if (!rc)
            rc = store_commit(tx);
        else
            store_rollback(tx);
    }
    bill_lines_free(&ls);
    if (shared)
        close_lease_drop(b, month);
    progress_phase(b, NULL);
    if (rc == OSB_E_TOOBIG || rc == OSB_E_NOTFOUND)
        log_error("billing: closing %s stopped: %s", month, why);
    else if (rc == OSB_E_BUSY)
        log_warn("billing: the close of %s stops with the platform; it is finished when the"
                 " platform starts again",
                 month);
    return rc;
}

/* The answer to a close once month is finalized (or a refusal of step 2 or 3). */
static void close_answer(billing *b, http_req *req, const char *month, int64_t to, int rc,
                         const char *why)
{
    if (rc == OSB_E_BUSY) {
        http_reply_error(req, 503, "unavailable",
                         "The platform is stopping; the close is finished when it starts again.",
                         NULL);
        return;
    }
    if (rc == OSB_E_CONFLICT) {
        http_reply_error(req, 409, "close_running",
                         "A close runs already, on this node or another; follow it with GET"
                         " /v1/billing/periods/{month} and ask again once it is done.",
                         NULL);
        return;
    }
    if (rc) {
        reply_rate_error(req, rc, why);
        return;
    }
    store_tx *tx;
    period pd;
    if (store_begin(b->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    rc = period_get(tx, month, &pd);
    store_stmt *q;
    int64_t invoices = 0, statements = 0;
    if (!rc && !(rc = store_query(tx,
                                  "SELECT (SELECT count(*) FROM invoices WHERE month = ?1"
                                  " AND kind = 'invoice'), (SELECT count(*) FROM statements"
                                  " WHERE month = ?1)",
                                  &q, "s", month))) {
        if (store_step(q) == STORE_ROW) {
            invoices = store_col_int(q, 0);
            statements = store_col_int(q, 1);
        }
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        reply_store_error(req);
        return;
    }
    json_t *j = period_json(month, &pd, to);
    json_object_set_new(j, "invoices", json_integer(invoices));
    json_object_set_new(j, "statements", json_integer(statements));
    http_reply_json(req, 200, j);
    json_decref(j);
}

static void close_done(billing *b)
{
    pthread_mutex_lock(&b->mu);
    if (--b->closes == 0)
        pthread_cond_broadcast(&b->idle);
    pthread_mutex_unlock(&b->mu);
}

typedef struct {
    billing *b;
    http_req *req;
    char month[8];
    int64_t now, to;
} close_job;

static void *close_main(void *ud)
{
    close_job *job = ud;
    billing *b = job->b;
    char why[400] = "";
    int rc = close_finish(b, job->month, job->now, why, sizeof why);
    close_answer(b, job->req, job->month, job->to, rc, why);
    http_resume(job->req);
    free(job);
    close_done(b);
    return NULL;
}

/* Steps 2 and 3 on a thread of their own, the request suspended meanwhile; false when that
 * cannot be (the server is stopping): then the caller runs them itself. */
static bool close_in_background(billing *b, http_req *req, const char *month, int64_t now,
                                int64_t to)
{
    close_job *job = calloc(1, sizeof *job);
    pthread_attr_t at;
    if (!job || pthread_attr_init(&at) != 0) {
        free(job);
        return false;
    }
    *job = (close_job){.b = b, .req = req, .now = now, .to = to};
    str_copy(job->month, sizeof job->month, month);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&b->mu);
    b->closes++;
    pthread_mutex_unlock(&b->mu);
    bool deferred = http_defer(req);
    pthread_t t;
    if (deferred && pthread_create(&t, &at, close_main, job) != 0)
        close_main(job); /* no thread: the request is suspended, so answer it from here */
    pthread_attr_destroy(&at);
    if (!deferred) {
        free(job);
        close_done(b);
    }
    return deferred;
}

static void period_close(http_req *req, void *ud)
{
    billing *b = ud;
    const char *month = req->params[0];
    iam_principal p;
    if (!operator_only(b, req, &p, "Only the platform's operator closes a month."))
        return;
    int64_t from, to;
    if (!month_ok(req, month, &from, &to))
        return;
    bool force = false;
    if (req->body.len) {
        json_t *body = http_json_body(req);
        if (!body)
            return;
        const json_t *f = json_object_get(body, "force");
        if (!json_is_object(body) || (f && !json_is_boolean(f))) {
            json_decref(body);
            http_reply_error(req, 400, "invalid_body", "The body is {\"force\": true|false}.",
                             "force");
            return;
        }
        force = json_is_true(f);
        json_decref(body);
    }
    int64_t now = time_now_ms();
    store_tx *tx;
    period pd;
    /* Step 1: the month is closed to new usage, unless it was already. */
    if (store_begin(b->db, true, &tx)) {
        reply_store_error(req);
        return;
    }
    int rc = period_get(tx, month, &pd);
    if (!rc && !pd.closed) {
        if (from > now) {
            store_rollback(tx);
            http_reply_error(req, 409, "month_not_started", "That month has not begun.", "month");
            return;
        }
        if (now < grace_deadline(to) && !force) {
            store_rollback(tx);
            char dl[32];
            time_format_rfc3339(grace_deadline(to), dl);
            http_reply_errorf(req, 409, "too_early",
                              "%s can be closed from its grace deadline, %s; before that only "
                              "with {\"force\": true}.",
                              month, dl);
            return;
        }
        rc = store_exec(tx,
                        "INSERT INTO billing_periods (month, state, closed_ms, forced,"
                        " closed_by) VALUES (?, 'closed', ?, ?, ?) ON CONFLICT (month)"
                        " DO UPDATE SET state = 'closed', closed_ms = excluded.closed_ms,"
                        " forced = excluded.forced, closed_by = excluded.closed_by",
                        "sids", month, now, force ? 1 : 0, p.iam_id);
        if (!rc && store_shared(b->db)) { /* claimed with it: no other node takes it over */
            char name[32];
            close_lease_name(name, month);
            int held = store_lease_take(tx, name, now, now + CLOSE_HOLD_MS, NULL, 0);
            rc = held < 0 ? held : 0;
        }
        if (!rc)
            rc = store_commit(tx);
        else
            store_rollback(tx);
    } else {
        store_rollback(tx);
    }
    if (rc) {
        reply_store_error(req);
        return;
    }
    if (pd.finalized) {
        close_answer(b, req, month, to, 0, NULL);
        return;
    }
    if (close_in_background(b, req, month, now, to))
        return;
    char why[400] = "";
    rc = close_finish(b, month, now, why, sizeof why);
    close_answer(b, req, month, to, rc, why);
}

static void period_show(http_req *req, void *ud)
{
    billing *b = ud;
    const char *month = req->params[0];
    iam_principal p;
    if (!iam_authenticate(b->iam, req, &p))
        return;
    int64_t from, to;
    if (!month_ok(req, month, &from, &to))
        return;
    store_tx *tx;
    period pd;
    if (store_begin(b->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    int rc = period_get(tx, month, &pd);
    store_rollback(tx);
    if (rc) {
        reply_store_error(req);
        return;
    }
    json_t *j = period_json(month, &pd, to);
    json_t *pj = pd.finalized ? NULL : progress_json(b, month);
    if (pj)
        json_object_set_new(j, "progress", pj);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- invoices */

#define INVOICE_COLS                                                                               \
    "id, number, account_id, month, currency, state, total, issued_ms, kind, refers_to,"           \
    " voided_ms, void_reason"

static json_t *invoice_row(store_stmt *q)
{
    char at[32], voided[32];
    time_format_rfc3339(store_col_int(q, 7), at);
    time_format_rfc3339(store_col_null(q, 10) ? 0 : store_col_int(q, 10), voided);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?}", "id",
                     store_col_text(q, 0), "number", (json_int_t)store_col_int(q, 1), "account_id",
                     store_col_text(q, 2), "month", store_col_text(q, 3), "currency",
                     store_col_text(q, 4), "state", store_col_text(q, 5), "total",
                     store_col_text(q, 6), "issued_at", at, "kind", store_col_text(q, 8),
                     "refers_to", store_col_text(q, 9), "voided_at",
                     store_col_null(q, 10) ? NULL : voided, "void_reason", store_col_text(q, 11));
}

static void invoices_list(http_req *req, void *ud)
{
    billing *b = ud;
    iam_principal p;
    if (!iam_authenticate(b->iam, req, &p))
        return;
    const char *account = http_query(req, "account_id"), *month = http_query(req, "month");
    int64_t from, to;
    if (month && !month_ok(req, month, &from, &to))
        return;
    if (account && !p.operator&& strcmp(account, p.account_id) != 0) {
        http_reply_error(req, 403, "forbidden", "An account reads only its own invoices.",
                         "account_id");
        return;
    }
    if (!p.operator)
        account = p.account_id;
    int64_t limit = 100, after = 0;
    const char *ls = http_query(req, "limit"), *start = http_query(req, "start");
    if ((ls && (str_to_i64(ls, false, &limit) || limit < 1 || limit > 1000)) ||
        (start && (str_to_i64(start, false, &after) || after < 0))) {
        http_reply_error(req, 400, "invalid_query", "'limit' is 1 to 1000; 'start' a next_url's.",
                         ls ? "limit" : "start");
        return;
    }
    store_tx *tx;
    if (store_begin(b->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    store_stmt *q;
    json_t *rows = json_array();
    bool more = false;
    int64_t last = 0;
    int rc = store_query(tx,
                         "SELECT " INVOICE_COLS " FROM invoices WHERE number > ?"
                         " AND (?2 IS NULL OR account_id = ?2) AND (?3 IS NULL OR month = ?3)"
                         " ORDER BY number LIMIT ?",
                         &q, "issi", after, account, month, limit + 1);
    if (!rc) {
        int st;
        while ((st = store_step(q)) == STORE_ROW) {
            if ((int64_t)json_array_size(rows) == limit) {
                more = true;
                break;
            }
            json_array_append_new(rows, invoice_row(q));
            last = store_col_int(q, 1);
        }
        if (st < 0)
            rc = st;
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        json_decref(rows);
        reply_store_error(req);
        return;
    }
    http_filter f[] = {{"account_id", p.operator? account : NULL }, {"month", month}};
    http_reply_page(req, rows, more, "/v1/invoices", limit, last, f, 2);
}

/* CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
static int csv_field(buf *out, const char *s, bool last)
{
    int rc = 0;
    if (strpbrk(s, ",\"\r\n")) {
        rc = buf_puts(out, "\"");
        for (const char *c = s; *c && !rc; c++)
            rc = *c == '"' ? buf_puts(out, "\"\"") : buf_append(out, c, 1);
        if (!rc)
            rc = buf_puts(out, "\"");
    } else {
        rc = buf_puts(out, s);
    }
    return rc ? rc : buf_puts(out, last ? "\r\n" : ",");
}

static int html_text(buf *out, const char *s)
{
    int rc = 0;
    for (const char *c = s; *c && !rc; c++) {
        switch (*c) {
        case '<': rc = buf_puts(out, "&lt;"); break;
        case '>': rc = buf_puts(out, "&gt;"); break;
        case '&': rc = buf_puts(out, "&amp;"); break;
        case '"': rc = buf_puts(out, "&quot;"); break;
        case '\'': rc = buf_puts(out, "&#39;"); break;
        default: rc = buf_append(out, c, 1);
        }
    }
    return rc;
}

static const char *const LINE_COLS[] = {"line",
                                        "resource_instance_id",
                                        "offering_id",
                                        "plan_id",
                                        "metric",
                                        "unit",
                                        "metering_model",
                                        "quantity",
                                        "charge_unit_quantity",
                                        "rateable_quantity",
                                        "pricing_model",
                                        "exact_cost",
                                        "cost"};

static void invoice_show(http_req *req, void *ud)
{
    billing *b = ud;
    const char *id = req->params[0];
    iam_principal p;
    if (!iam_authenticate(b->iam, req, &p))
        return;
    const char *format = http_query(req, "format");
    if (format && strcmp(format, "json") && strcmp(format, "csv") && strcmp(format, "html")) {
        http_reply_error(req, 400, "invalid_query", "'format' is json, csv or html.", "format");
        return;
    }
    store_tx *tx;
    if (store_begin(b->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    store_stmt *q;
    json_t *inv = NULL, *lines = json_array();
    int rc = store_query(tx, "SELECT " INVOICE_COLS " FROM invoices WHERE id = ?", &q, "s", id);
    if (!rc) {
        if (store_step(q) == STORE_ROW && (p.operator|| str_eq(store_col_text(q, 2), p.account_id)))
            inv = invoice_row(q);
        store_done(q);
    }
    if (!rc && inv)
        rc = store_query(tx,
                         "SELECT line, instance_id, offering_id, plan_id, metric, unit,"
                         " metering_model, billable_quantity, charge_unit_quantity,"
                         " rated_quantity, pricing_model, exact_amount, amount"
                         " FROM invoice_lines WHERE invoice_id = ? ORDER BY line",
                         &q, "s", id);
    if (!rc && inv) {
        int st;
        while ((st = store_step(q)) == STORE_ROW) {
            json_t *l = json_object();
            for (int c = 0; c < 13; c++)
                json_object_set_new(l, LINE_COLS[c],
                                    c == 0                 ? json_integer(store_col_int(q, 0))
                                    : store_col_null(q, c) ? json_null()
                                                           : json_string(store_col_text(q, c)));
            json_array_append_new(lines, l);
        }
        if (st < 0)
            rc = st;
        store_done(q);
    }
    store_rollback(tx);
    if (rc || !inv) {
        json_decref(inv);
        json_decref(lines);
        if (rc)
            reply_store_error(req);
        else /* another account's invoice is as unknown as a missing one */
            http_reply_error(req, 404, "not_found", "No such invoice.", "id");
        return;
    }
    json_object_set_new(inv, "lines", lines);
    if (!format || strcmp(format, "json") == 0) {
        http_reply_json(req, 200, inv);
        json_decref(inv);
        return;
    }
    buf out;
    buf_init(&out, 64u << 20);
    size_t i;
    const json_t *l;
    if (strcmp(format, "csv") == 0) {
        for (int c = 0; c < 13 && !rc; c++)
            rc = csv_field(&out, LINE_COLS[c], c == 12);
        json_array_foreach(lines, i, l)
        {
            for (int c = 0; c < 13 && !rc; c++) {
                const json_t *v = json_object_get(l, LINE_COLS[c]);
                char n[24];
                snprintf(n, sizeof n, "%lld", (long long)json_integer_value(v));
                rc = csv_field(&out,
                               json_is_integer(v)  ? n
                               : json_is_string(v) ? json_string_value(v)
                                                   : "",
                               c == 12);
            }
        }
        if (!rc) {
            char disp[128];
            snprintf(disp, sizeof disp, "attachment; filename=\"invoice-%lld.csv\"",
                     (long long)json_integer_value(json_object_get(inv, "number")));
            http_add_header(req, "Content-Disposition", disp);
            http_reply(req, 200, "text/csv; charset=utf-8", out.data, out.len);
        }
    } else {
        rc = buf_printf(&out,
                        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                        "<title>Invoice %lld</title><style>body{font-family:sans-serif;"
                        "margin:2em}table{border-collapse:collapse;width:100%%}td,th{border-"
                        "bottom:1px solid #ccc;padding:.3em;text-align:left}td.n{text-align:"
                        "right}@media print{body{margin:0}}</style></head><body>\n"
                        "<h1>Invoice %lld</h1>\n<p>Account ",
                        (long long)json_integer_value(json_object_get(inv, "number")),
                        (long long)json_integer_value(json_object_get(inv, "number")));
        const char *head[] = {"account_id", "month", "currency", "state", "issued_at"};
        for (int k = 0; k < 5 && !rc; k++) {
            if (k)
                rc = buf_printf(&out, " &middot; %s ", head[k]);
            if (!rc)
                rc = html_text(&out, json_string_value(json_object_get(inv, head[k])));
        }
        if (!rc)
            rc = buf_puts(&out, "</p>\n<table><thead><tr><th>#</th><th>Instance</th><th>Plan"
                                "</th><th>Metric</th><th>Quantity</th><th>Rated</th><th>Cost"
                                "</th></tr></thead><tbody>\n");
        json_array_foreach(lines, i, l)
        {
            if (rc)
                break;
            rc = buf_printf(&out, "<tr><td>%lld</td>",
                            (long long)json_integer_value(json_object_get(l, "line")));
            const char *cols[] = {"resource_instance_id", "plan_id", "metric", "quantity",
                                  "rateable_quantity",    "cost"};
            for (int c = 0; c < 6 && !rc; c++) {
                rc = buf_puts(&out, c >= 3 ? "<td class=\"n\">" : "<td>");
                if (!rc)
                    rc = html_text(&out, json_string_value(json_object_get(l, cols[c])));
                if (!rc)
                    rc = buf_puts(&out, "</td>");
            }
            if (!rc)
                rc = buf_puts(&out, "</tr>\n");
        }
        if (!rc)
            rc = buf_puts(&out, "</tbody><tfoot><tr><th colspan=\"6\">Total</th><td class=\"n\">");
        if (!rc)
            rc = html_text(&out, json_string_value(json_object_get(inv, "total")));
        if (!rc)
            rc = buf_puts(&out, " ");
        if (!rc)
            rc = html_text(&out, json_string_value(json_object_get(inv, "currency")));
        if (!rc)
            rc = buf_puts(&out, "</td></tr></tfoot></table>\n</body></html>\n");
        if (!rc)
            http_reply(req, 200, "text/html; charset=utf-8", out.data, out.len);
    }
    if (rc)
        http_reply_error(req, 500, "internal", "The invoice could not be rendered.", NULL);
    buf_free(&out);
    json_decref(inv);
}

/* SQL: a decimal text column negated as text ("0" and "0.00" stay unsigned). */
// clang-format off
#define NEGATED(c) \
    "CASE WHEN " c " LIKE '-%' THEN substr(" c ", 2)" \
    " WHEN replace(replace(replace(" c ", '0', ''), '.', ''), '-', '') <> ''" \
    " THEN '-' || " c " ELSE " c " END"

/* A credit note's lines: the voided invoice's, with every amount negated. */
static const char CREDIT_LINES_SQL[] =
    "INSERT INTO invoice_lines (invoice_id, line, instance_id, offering_id,"
    " provider_account_id, plan_id, metric, unit, metering_model, pricing_model,"
    " billable_quantity, charge_unit_quantity, rated_quantity, exact_amount, amount,"
    " provider_share, platform_share, revenue_share)"
    " SELECT ?, line, instance_id, offering_id, provider_account_id, plan_id, metric, unit,"
    " metering_model, pricing_model, billable_quantity, charge_unit_quantity, rated_quantity, "
    NEGATED("exact_amount") ", " NEGATED("amount") ", " NEGATED("provider_share") ", "
    NEGATED("platform_share") ", revenue_share FROM invoice_lines WHERE invoice_id = ?";

static const char CREDIT_NOTE_SQL[] =
    "INSERT INTO invoices (id, number, account_id, month, currency, state, kind, total,"
    " refers_to, issued_ms) SELECT ?, ?, account_id, month, currency, 'finalized',"
    " 'credit_note', " NEGATED("total") ", id, ? FROM invoices WHERE id = ?";
// clang-format on

/* POST /v1/invoices/{id}/void {"reason"}: the operator's correction. The invoice turns void
 * (its figures stay as issued), a credit note with its lines negated refers to it, and the
 * account's month is rated again from what is stored now (a corrected price of that month,
 * say) into a new invoice that refers to it too; the month's statements follow. */
static void invoice_void(http_req *req, void *ud)
{
    billing *b = ud;
    const char *id = req->params[0];
    iam_principal p;
    if (!operator_only(b, req, &p, "Only the platform's operator voids an invoice."))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const json_t *reason = json_object_get(body, "reason");
    if (!json_is_object(body) || !json_is_string(reason) || !json_string_length(reason) ||
        json_string_length(reason) > 500) {
        json_decref(body);
        http_reply_error(req, 400, "invalid_field",
                         "'reason' is required: text of 1 to 500 "
                         "characters.",
                         "reason");
        return;
    }
    store_tx *tx;
    char account[64] = "", month[8] = "", state[16] = "", kind[16] = "";
    bill_lines ls = {0};
    char why[400] = "";
    int rc = store_begin(b->db, false, &tx);
    store_stmt *q;
    if (!rc && !(rc = store_query(tx,
                                  "SELECT account_id, month, state, kind FROM invoices"
                                  " WHERE id = ?",
                                  &q, "s", id))) {
        if (store_step(q) == STORE_ROW) {
            str_copy(account, sizeof account, store_col_text(q, 0));
            str_copy(month, sizeof month, store_col_text(q, 1));
            str_copy(state, sizeof state, store_col_text(q, 2));
            str_copy(kind, sizeof kind, store_col_text(q, 3));
        }
        store_done(q);
    }
    bool can = account[0] && str_eq(state, "finalized") && str_eq(kind, "invoice");
    if (!rc && can)
        rc = bill_rate(tx, account, month, 0, NULL, &ls, why, sizeof why);
    if (tx)
        store_rollback(tx);
    if (rc || !can) {
        json_decref(body);
        bill_lines_free(&ls);
        if (rc)
            reply_rate_error(req, rc, why);
        else if (!account[0])
            http_reply_error(req, 404, "not_found", "No such invoice.", "id");
        else
            http_reply_error(req, 409, str_eq(kind, "invoice") ? "already_void" : "not_an_invoice",
                             str_eq(kind, "invoice") ? "The invoice is void already."
                                                     : "A credit note is not voided.",
                             "id");
        return;
    }
    int64_t now = time_now_ms();
    char credit[37] = "", reissue[37] = "";
    int nst = 0;
    rc = store_begin(b->db, true, &tx);
    if (!rc) {
        /* voided by a concurrent correction meanwhile: nothing changes twice */
        rc = store_exec(tx,
                        "UPDATE invoices SET state = 'void', voided_ms = ?, void_reason = ?"
                        " WHERE id = ? AND state = 'finalized'",
                        "iss", now, json_string_value(reason), id);
        if (!rc && store_changes(tx) != 1)
            rc = OSB_E_CONFLICT;
        int64_t number = 0;
        if (!rc)
            rc = next_number(tx, &number);
        uuid_v4(credit);
        if (!rc)
            rc = store_exec(tx, CREDIT_NOTE_SQL, "siis", credit, number, now, id);
        if (!rc)
            rc = store_exec(tx, CREDIT_LINES_SQL, "ss", credit, id);
        if (!rc && ls.n)
            rc = insert_invoice(tx, month, &ls, 0, ls.n, id, now, reissue);
        if (!rc)
            rc = statements_rebuild(tx, month, now, &nst);
        if (!rc)
            rc = store_commit(tx);
        else
            store_rollback(tx);
    }
    json_decref(body);
    bill_lines_free(&ls);
    if (rc == OSB_E_CONFLICT) {
        http_reply_error(req, 409, "already_void", "The invoice is void already.", "id");
        return;
    }
    if (rc) {
        reply_store_error(req);
        return;
    }
    json_t *j = json_pack("{s:s, s:s, s:s?}", "voided", id, "credit_note", credit, "reissued",
                          reissue[0] ? reissue : NULL);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- statements */

static void statements_list(http_req *req, void *ud)
{
    billing *b = ud;
    iam_principal p;
    if (!iam_authenticate(b->iam, req, &p))
        return;
    const char *month = http_query(req, "month");
    int64_t from, to;
    if (month && !month_ok(req, month, &from, &to))
        return;
    store_tx *tx;
    if (store_begin(b->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    store_stmt *q;
    json_t *rows = json_array();
    int rc = store_query(tx,
                         "SELECT id, provider_account_id, month, currency, gross,"
                         " provider_share, platform_share, issued_ms FROM statements"
                         " WHERE (?1 IS NULL OR provider_account_id = ?1)"
                         " AND (?2 IS NULL OR month = ?2) ORDER BY month, provider_account_id,"
                         " currency LIMIT 1000",
                         &q, "ss", p.operator? NULL : p.account_id, month);
    if (!rc) {
        int st;
        while ((st = store_step(q)) == STORE_ROW) {
            char at[32];
            time_format_rfc3339(store_col_int(q, 7), at);
            json_array_append_new(
                rows,
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", store_col_text(q, 0),
                          "provider_account_id", store_col_text(q, 1), "month",
                          store_col_text(q, 2), "currency", store_col_text(q, 3), "gross",
                          store_col_text(q, 4), "provider_share", store_col_text(q, 5),
                          "platform_share", store_col_text(q, 6), "issued_at", at));
        }
        if (st < 0)
            rc = st;
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        json_decref(rows);
        reply_store_error(req);
        return;
    }
    http_reply_page(req, rows, false, "/v1/statements", 1000, 0, NULL, 0);
}

/* A statement with its sums per offering and plan (the finalized lines behind it). */
static void statement_show(http_req *req, void *ud)
{
    billing *b = ud;
    iam_principal p;
    if (!iam_authenticate(b->iam, req, &p))
        return;
    store_tx *tx;
    if (store_begin(b->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    store_stmt *q;
    json_t *st_j = NULL;
    char provider[64] = "", month[8] = "", currency[4] = "";
    int rc = store_query(tx,
                         "SELECT id, provider_account_id, month, currency, gross,"
                         " provider_share, platform_share, issued_ms FROM statements"
                         " WHERE id = ?",
                         &q, "s", req->params[0]);
    if (!rc) {
        if (store_step(q) == STORE_ROW &&
            (p.operator|| str_eq(store_col_text(q, 1), p.account_id))) {
            char at[32];
            time_format_rfc3339(store_col_int(q, 7), at);
            str_copy(provider, sizeof provider, store_col_text(q, 1));
            str_copy(month, sizeof month, store_col_text(q, 2));
            str_copy(currency, sizeof currency, store_col_text(q, 3));
            st_j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", store_col_text(q, 0),
                             "provider_account_id", provider, "month", month, "currency", currency,
                             "gross", store_col_text(q, 4), "provider_share", store_col_text(q, 5),
                             "platform_share", store_col_text(q, 6), "issued_at", at);
        }
        store_done(q);
    }
    json_t *plans = json_array();
    if (!rc && st_j)
        rc = store_query(tx,
                         "SELECT l.offering_id, l.plan_id, l.amount, l.provider_share,"
                         " l.platform_share FROM invoice_lines l JOIN invoices i"
                         " ON i.id = l.invoice_id WHERE l.provider_account_id = ?"
                         " AND i.month = ? AND i.currency = ? AND i.state = 'finalized'"
                         " AND i.kind = 'invoice' ORDER BY l.offering_id, l.plan_id",
                         &q, "sss", provider, month, currency);
    if (!rc && st_j) {
        /* consecutive rows of one (offering, plan) summed exactly */
        dec s[3], v;
        for (int k = 0; k < 3; k++)
            dec_init(&s[k]);
        dec_init(&v);
        char off[64] = "", plan[72] = "";
        long long n = 0;
        int sr;
        for (;;) {
            sr = store_step(q);
            bool row = sr == STORE_ROW;
            if (n &&
                (!row || strcmp(off, store_col_text(q, 0)) || strcmp(plan, store_col_text(q, 1)))) {
                json_array_append_new(plans,
                                      json_pack("{s:s, s:s, s:I, s:o, s:o, s:o}", "offering_id",
                                                off, "plan_id", plan, "lines", (json_int_t)n,
                                                "gross", money_text(&s[0], currency),
                                                "provider_share", money_text(&s[1], currency),
                                                "platform_share", money_text(&s[2], currency)));
                for (int k = 0; k < 3; k++)
                    dec_set_int(&s[k], 0);
                n = 0;
            }
            if (!row)
                break;
            str_copy(off, sizeof off, store_col_text(q, 0));
            str_copy(plan, sizeof plan, store_col_text(q, 1));
            for (int k = 0; k < 3; k++) {
                const char *t = store_col_text(q, 2 + k);
                if (!t || dec_parse(&v, t, strlen(t)))
                    rc = OSB_E_STORE;
                else
                    dec_add(&s[k], &s[k], &v);
            }
            n++;
        }
        if (sr < 0)
            rc = sr;
        store_done(q);
        for (int k = 0; k < 3; k++)
            dec_clear(&s[k]);
        dec_clear(&v);
    }
    store_rollback(tx);
    if (rc || !st_j) {
        json_decref(st_j);
        json_decref(plans);
        if (rc)
            reply_store_error(req);
        else
            http_reply_error(req, 404, "not_found", "No such statement.", "id");
        return;
    }
    json_object_set_new(st_j, "plans", plans);
    http_reply_json(req, 200, st_j);
    json_decref(st_j);
}

/* ---------------------------------------------------------------- preview */

/* POST /v1/offerings/{id}/plans/{pid}/estimate {"currency", "month", "usage": [{"metric",
 * "quantity"}]}: the offering's provider (or the operator) sees what a customer would pay. */
static void plan_estimate(http_req *req, void *ud)
{
    billing *b = ud;
    const char *offering = req->params[0], *plan = req->params[1];
    iam_principal p;
    if (!iam_authenticate(b->iam, req, &p))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    const json_t *usage = json_object_get(body, "usage");
    const json_t *cur = json_object_get(body, "currency"), *mon = json_object_get(body, "month");
    const char *bad = !json_is_object(body)                                  ? "body"
                      : !json_is_array(usage) || json_array_size(usage) > 64 ? "usage"
                      : cur && !json_is_string(cur)                          ? "currency"
                      : mon && !json_is_string(mon)                          ? "month"
                                                                             : NULL;
    if (bad) {
        json_decref(body);
        http_reply_errorf(req, 400, "invalid_field",
                          "'%s' is wrong: the body is {\"currency\", "
                          "\"month\", \"usage\": [{\"metric\", \"quantity\"}]} with at most 64 "
                          "metrics.",
                          bad);
        return;
    }
    char month[8];
    time_month_of(time_now_ms(), month);
    int64_t from, to;
    if (mon && !time_month_range(json_string_value(mon), &from, &to)) {
        json_decref(body);
        http_reply_error(req, 400, "invalid_month", "The month must be YYYY-MM.", "month");
        return;
    }
    if (mon)
        str_copy(month, sizeof month, json_string_value(mon));
    store_tx *tx;
    if (store_begin(b->db, false, &tx)) {
        json_decref(body);
        reply_store_error(req);
        return;
    }
    store_stmt *q;
    char owner[64] = "", currency[4] = "USD";
    int rc = store_query(tx,
                         "SELECT o.account_id, coalesce(a.currency, 'USD') FROM plans p"
                         " JOIN offerings o ON o.id = p.offering_id"
                         " LEFT JOIN accounts a ON a.id = o.account_id"
                         " WHERE p.id = ? AND p.offering_id = ?",
                         &q, "ss", plan, offering);
    if (!rc) {
        if (store_step(q) == STORE_ROW) {
            str_copy(owner, sizeof owner, store_col_text(q, 0));
            str_copy(currency, sizeof currency, store_col_text(q, 1));
        }
        store_done(q);
    }
    if (cur)
        str_copy(currency, sizeof currency, json_string_value(cur));
    json_t *j = NULL;
    char why[200] = "";
    if (!rc && owner[0] && (p.operator|| strcmp(owner, p.account_id) == 0))
        rc = bill_estimate(tx, plan, currency, month, usage, &j, why, sizeof why);
    store_rollback(tx);
    json_decref(body);
    if (!rc && !owner[0]) {
        http_reply_error(req, 404, "not_found", "No such plan of this offering.", "plan_id");
    } else if (!rc && !j) {
        http_reply_error(req, 403, "forbidden",
                         "Only the offering's provider previews its "
                         "billing.",
                         NULL);
    } else if (rc == OSB_E_INVAL) {
        http_reply_errorf(req, 400, "invalid_field", "'%s' is not valid for this plan.", why);
    } else if (rc) {
        reply_rate_error(req, rc, why);
    } else {
        http_reply_json(req, 200, j);
    }
    json_decref(j);
}

/* ---------------------------------------------------------------- life cycle */

static void resume_one(billing *b, const char *month, const char *what)
{
    char why[400] = "";
    log_info("billing: finishing the close of %s, %s", month, what);
    int rc = close_finish(b, month, time_now_ms(), why, sizeof why);
    if (rc == OSB_E_CONFLICT)
        return; /* another node has it */
    if (rc)
        log_error("billing: the close of %s is still unfinished (%s); POST"
                  " /v1/billing/periods/%s/close finishes it",
                  month, rc == OSB_E_TOOBIG || rc == OSB_E_NOTFOUND ? why : base_strerror(rc),
                  month);
    else
        log_info("billing: the close of %s is finished", month);
}

/* The months closed to usage, not finalized, whose close no node holds (shared store). */
static size_t find_orphaned(billing *b, char months[][8], size_t max)
{
    store_tx *tx;
    store_stmt *q;
    size_t n = 0;
    if (store_begin(b->db, false, &tx))
        return 0;
    if (!store_query(tx,
                     "SELECT month FROM billing_periods p WHERE state = 'closed' AND finalized_ms"
                     " IS NULL AND NOT EXISTS (SELECT 1 FROM store_leases l WHERE l.name ="
                     " 'billing.close.' || p.month AND l.until_ms >= ?) ORDER BY month",
                     &q, "i", time_now_ms())) {
        while (n < max && store_step(q) == STORE_ROW)
            str_copy(months[n++], 8, store_col_text(q, 0));
        store_done(q);
    }
    store_rollback(tx);
    return n;
}

/* Finishes the closes that were cut off, oldest month first; an operator's POST meanwhile
 * finishes them as well (whichever finalizes first, the other finds it done). On a shared
 * store it then keeps watching for closes a node stopped in, and takes them over once their
 * lease has expired. */
static void *resume_closes(void *ud)
{
    billing *b = ud;
    for (size_t i = 0; i < b->ncut_off; i++)
        resume_one(b, b->cut_off[i], "cut off before the restart");
    if (!store_shared(b->db))
        return NULL;
    pthread_mutex_lock(&b->mu);
    while (!__atomic_load_n(&b->stopping, __ATOMIC_SEQ_CST)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += RESUME_EVERY_MS / 1000;
        pthread_cond_timedwait(&b->wake, &b->mu, &until);
        if (__atomic_load_n(&b->stopping, __ATOMIC_SEQ_CST))
            break;
        pthread_mutex_unlock(&b->mu);
        char months[4][8];
        size_t n = find_orphaned(b, months, 4);
        for (size_t i = 0; i < n && !__atomic_load_n(&b->stopping, __ATOMIC_SEQ_CST); i++)
            resume_one(b, months[i], "left by a node that stopped");
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* The months closed to usage whose close did not finalize (the process stopped during it). */
static int find_cut_off(billing *b)
{
    store_tx *tx;
    store_stmt *q = NULL;
    int rc = store_begin(b->db, false, &tx);
    if (rc)
        return rc;
    rc = store_query(tx,
                     "SELECT month FROM billing_periods WHERE state = 'closed' AND"
                     " finalized_ms IS NULL ORDER BY month",
                     &q, "");
    int st = 0;
    while (!rc && (st = store_step(q)) == STORE_ROW) {
        char(*v)[8] = realloc(b->cut_off, (b->ncut_off + 1) * sizeof *v);
        if (!v) {
            rc = OSB_E_NOMEM;
            break;
        }
        b->cut_off = v;
        str_copy(v[b->ncut_off++], sizeof *v, store_col_text(q, 0));
    }
    if (!rc && st < 0)
        rc = st;
    if (q)
        store_done(q);
    store_rollback(tx);
    return rc;
}

int billing_open(store *db, iam *m, billing **out)
{
    billing *b = calloc(1, sizeof *b);
    if (!b)
        return OSB_E_NOMEM;
    b->db = db;
    b->iam = m;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->idle, NULL);
    pthread_cond_init(&b->wake, NULL);
    int rc = find_cut_off(b);
    if (rc) {
        log_error("billing: cannot read the billing periods (%s)", base_strerror(rc));
        billing_close(b);
        return rc;
    }
    if (b->ncut_off || store_shared(db))
        b->resuming = pthread_create(&b->resumer, NULL, resume_closes, b) == 0;
    *out = b;
    return 0;
}

void billing_routes(billing *b, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_GET, "/v4/accounts/:id/usage/:month", P, account_usage, b);
    rc |= http_route(r, HTTP_GET, "/v1/billing/periods/:month", P, period_show, b);
    rc |= http_route(r, HTTP_POST, "/v1/billing/periods/:month/close", P, period_close, b);
    rc |= http_route(r, HTTP_GET, "/v1/invoices", P, invoices_list, b);
    rc |= http_route(r, HTTP_GET, "/v1/invoices/:id", P, invoice_show, b);
    rc |= http_route(r, HTTP_POST, "/v1/invoices/:id/void", P, invoice_void, b);
    rc |= http_route(r, HTTP_GET, "/v1/statements", P, statements_list, b);
    rc |= http_route(r, HTTP_GET, "/v1/statements/:id", P, statement_show, b);
    rc |= http_route(r, HTTP_POST, "/v1/offerings/:id/plans/:pid/estimate", P, plan_estimate, b);
    if (rc)
        log_error("billing: cannot register its routes");
}

void billing_stop(billing *b)
{
    if (!b)
        return;
    __atomic_store_n(&b->stopping, 1, __ATOMIC_SEQ_CST);
    /* the closes answer their requests (their rating ends at once; a finalizing one commits
     * first), before the server that holds the requests stops */
    pthread_mutex_lock(&b->mu);
    pthread_cond_broadcast(&b->wake);
    while (b->closes > 0)
        pthread_cond_wait(&b->idle, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

void billing_close(billing *b)
{
    if (!b)
        return;
    billing_stop(b); /* the closes of requests are over when it returns */
    if (b->resuming)
        pthread_join(b->resumer, NULL); /* a close finalizes in one transaction or not at all */
    pthread_cond_destroy(&b->idle);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->mu);
    free(b->cut_off);
    free(b);
}
