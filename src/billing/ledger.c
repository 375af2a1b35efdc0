/* billing ledger: a month's lines from the store. It walks the meters (instance, plan,
 * region) in (account, instance, plan) order, reads each meter's records of the month by the
 * signature index, accumulates every measure of the plan's metrics (billing/rate.h), and
 * rates each (instance, plan, metric) with the plan's price of that month in the account's
 * currency. The walk is a snapshot of one read transaction: what a close rates is exactly
 * what was accepted before the month closed. */
#include "billing/billing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jdoc.h"
#include "billing/rate.h"
#include "catalog/catalog_int.h"

#define DAY_MS      86400000LL
#define MAX_METRICS 32

typedef struct {
    char id[72], unit[64], model_name[24];
    bill_metering model;
    bool allow_negative;
    dec charge_unit;
    bool priced; /* a paid plan's price for this currency */
    char pricing_model[24];
    bill_price price;
} metric_info;

/* What a line needs of its plan, read once per plan and currency. */
typedef struct {
    char plan[72], currency[4];
    bool free_plan;
    size_t n;
    metric_info m[MAX_METRICS];
    char provider[64];
    dec share;
    int rc; /* the plan cannot be rated: OSB_E_NOTFOUND (no price), OSB_E_STORE */
} plan_info;

typedef struct {
    size_t n, cap;
    plan_info **v;
} plan_cache;

static void plan_info_free(plan_info *p)
{
    for (size_t i = 0; i < p->n; i++) {
        dec_clear(&p->m[i].charge_unit);
        bill_price_clear(&p->m[i].price);
    }
    dec_clear(&p->share);
    free(p);
}

static void line_clear(bill_line *l)
{
    dec_clear(&l->billable);
    dec_clear(&l->charge_unit);
    dec_clear(&l->rated);
    dec_clear(&l->exact);
    dec_clear(&l->amount);
    dec_clear(&l->provider_share);
    dec_clear(&l->platform_share);
    dec_clear(&l->share);
}

void bill_lines_free(bill_lines *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        line_clear(&ls->v[i]);
    free(ls->v);
    memset(ls, 0, sizeof *ls);
}

static bill_line *line_new(bill_lines *ls)
{
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 64;
        bill_line *v = realloc(ls->v, cap * sizeof *v);
        if (!v)
            return NULL;
        ls->v = v;
        ls->cap = cap;
    }
    bill_line *l = &ls->v[ls->n++];
    memset(l, 0, sizeof *l);
    dec_init(&l->billable);
    dec_init(&l->charge_unit);
    dec_init(&l->rated);
    dec_init(&l->exact);
    dec_init(&l->amount);
    dec_init(&l->provider_share);
    dec_init(&l->platform_share);
    dec_init(&l->share);
    return l;
}

/* The plan's metrics, its offering's provider and share, and its prices in month for
 * currency. */
static int plan_load(store_tx *tx, const char *plan, const char *currency, const char *month,
                     plan_info *p)
{
    str_copy(p->plan, sizeof p->plan, plan);
    str_copy(p->currency, sizeof p->currency, currency);
    dec_init(&p->share);
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT p.kind, p.doc, o.account_id, o.doc FROM plans p"
                         " JOIN offerings o ON o.id = p.offering_id WHERE p.id = ?",
                         &q, "s", plan);
    if (rc)
        return rc;
    json_t *doc = NULL, *odoc = NULL;
    if (store_step(q) == STORE_ROW) {
        p->free_plan = str_eq(store_col_text(q, 0), "lite");
        doc = json_loads(store_col_text(q, 1), 0, NULL);
        str_copy(p->provider, sizeof p->provider, store_col_text(q, 2));
        odoc = json_loads(store_col_text(q, 3), 0, NULL);
    }
    store_done(q);
    if (!doc || !odoc) {
        json_decref(doc);
        json_decref(odoc);
        return OSB_E_STORE;
    }
    const json_t *share = json_object_get(odoc, "revenue_share");
    if (!share || dec_from_json(&p->share, share))
        rc = dec_parse(&p->share, "0.87", 4);
    json_t *pricing = NULL;
    if (!rc && !p->free_plan) {
        rc = catalog_plan_price_at(tx, plan, month, &pricing);
        if (rc == OSB_E_NOTFOUND) /* a paid plan never priced: its lines cannot be rated */
            p->rc = OSB_E_NOTFOUND, rc = 0;
    }
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(doc, "metrics"), i, m)
    {
        if (rc || p->n == MAX_METRICS)
            break;
        int model = bill_metering_parse(json_string_value(json_object_get(m, "metering_model")));
        const char *id = json_string_value(json_object_get(m, "id"));
        if (model < 0 || !id)
            continue;
        metric_info *pm = &p->m[p->n++];
        str_copy(pm->id, sizeof pm->id, id);
        str_copy(pm->unit, sizeof pm->unit, json_string_value(json_object_get(m, "unit")));
        str_copy(pm->model_name, sizeof pm->model_name,
                 json_string_value(json_object_get(m, "metering_model")));
        pm->model = (bill_metering)model;
        pm->allow_negative = json_is_true(json_object_get(m, "allow_negative"));
        dec_init(&pm->charge_unit);
        bill_price_init(&pm->price);
        const json_t *cu = json_object_get(m, "charge_unit_quantity");
        if (!cu || dec_from_json(&pm->charge_unit, cu))
            dec_set_int(&pm->charge_unit, 1);
        const json_t *pj = json_object_get(json_object_get(pricing, id), currency);
        if (pj) {
            if (bill_price_from_json(&pm->price, pj))
                rc = OSB_E_STORE;
            pm->priced = !rc;
            str_copy(pm->pricing_model, sizeof pm->pricing_model,
                     json_string_value(json_object_get(pj, "model")));
        }
    }
    json_decref(pricing);
    json_decref(doc);
    json_decref(odoc);
    return rc;
}

static int plan_get(store_tx *tx, plan_cache *pc, const char *plan, const char *currency,
                    const char *month, plan_info **out)
{
    for (size_t i = pc->n; i-- > 0;)
        if (strcmp(pc->v[i]->plan, plan) == 0 && strcmp(pc->v[i]->currency, currency) == 0) {
            *out = pc->v[i];
            return 0;
        }
    if (pc->n == pc->cap) {
        size_t cap = pc->cap ? pc->cap * 2 : 16;
        plan_info **v = realloc(pc->v, cap * sizeof *v);
        if (!v)
            return OSB_E_NOMEM;
        pc->v = v;
        pc->cap = cap;
    }
    plan_info *p = calloc(1, sizeof *p);
    if (!p)
        return OSB_E_NOMEM;
    int rc = plan_load(tx, plan, currency, month, p);
    if (rc) {
        plan_info_free(p);
        return rc;
    }
    pc->v[pc->n++] = p;
    *out = p;
    return 0;
}

/* The usage of one (instance, plan) group, every metric of the plan. */
typedef struct {
    char account[64], instance[40], plan[72], offering[64], currency[4];
    plan_info *pi;
    bill_usage u[MAX_METRICS];
    bool open;
} group;

static int account_currency(store_tx *tx, const char *account, char out[4])
{
    store_stmt *q;
    int rc = store_query(tx, "SELECT currency FROM accounts WHERE id = ?", &q, "s", account);
    if (rc)
        return rc;
    str_copy(out, 4, store_step(q) == STORE_ROW ? store_col_text(q, 0) : "USD");
    store_done(q);
    return 0;
}

/* Adds the meter's records of the month to g: each measure to its metric's usage. */
static int add_records(store_tx *tx, group *g, int64_t meter, int64_t from, int64_t to)
{
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT start_ms, end_ms, measured_usage FROM usage_records"
                         " WHERE meter = ? AND end_ms >= ? AND start_ms < ?",
                         &q, "iii", meter, from, to);
    if (rc)
        return rc;
    arena a;
    arena_init(&a, 1 << 20);
    dec d;
    dec_init(&d);
    int st;
    size_t nrec = 0;
    while (!rc && (st = store_step(q)) == STORE_ROW) {
        int64_t s = store_col_int(q, 0), e = store_col_int(q, 1);
        const char *mu = store_col_text(q, 2);
        if (++nrec % 1024 == 0) { /* the arena holds a bounded number of records */
            arena_free(&a);
            arena_init(&a, 1 << 20);
        }
        char why[64];
        const jd_value *arr = jdoc_parse(&a, mu, strlen(mu), 4, why, sizeof why);
        if (!arr || arr->type != JD_ARRAY) {
            rc = OSB_E_STORE;
            break;
        }
        for (size_t i = 0; i < arr->len && !rc; i++) {
            const char *measure = jd_str(jd_get(&arr->items[i], "measure"));
            const char *qty = jd_str(jd_get(&arr->items[i], "quantity"));
            if (!measure || !qty) {
                rc = OSB_E_STORE;
                break;
            }
            for (size_t k = 0; k < g->pi->n; k++) {
                if (strcmp(g->pi->m[k].id, measure) != 0)
                    continue;
                /* a record outside the month for this model is simply not this month's:
                 * bill_usage_add refuses it and it is not counted */
                int arc = dec_parse(&d, qty, strlen(qty)) ? OSB_E_STORE
                                                          : bill_usage_add(&g->u[k], s, e, &d);
                if (arc != OSB_E_INVAL)
                    rc = arc;
                break;
            }
        }
    }
    if (!rc && st < 0)
        rc = st;
    store_done(q);
    dec_clear(&d);
    arena_free(&a);
    return rc;
}

/* Rates the group's metrics with usage into lines, then clears it. */
static int flush_group(group *g, bill_lines *out, char *why, size_t whylen)
{
    if (!g->open)
        return 0;
    g->open = false;
    int rc = 0;
    plan_info *pi = g->pi;
    int minor = currency_minor_units(g->currency);
    if (minor < 0)
        minor = 2;
    for (size_t k = 0; k < pi->n; k++) {
        bill_usage *u = &g->u[k];
        if (rc || u->n == 0) {
            bill_usage_clear(u);
            continue;
        }
        bill_line *l = line_new(out);
        if (!l) {
            rc = OSB_E_NOMEM;
            bill_usage_clear(u);
            continue;
        }
        str_copy(l->account, sizeof l->account, g->account);
        str_copy(l->instance, sizeof l->instance, g->instance);
        str_copy(l->offering, sizeof l->offering, g->offering);
        str_copy(l->provider, sizeof l->provider, pi->provider);
        str_copy(l->plan, sizeof l->plan, g->plan);
        str_copy(l->metric, sizeof l->metric, pi->m[k].id);
        str_copy(l->unit, sizeof l->unit, pi->m[k].unit);
        str_copy(l->metering_model, sizeof l->metering_model, pi->m[k].model_name);
        str_copy(l->currency, sizeof l->currency, g->currency);
        dec_copy(&l->charge_unit, &pi->m[k].charge_unit);
        dec_copy(&l->share, &pi->share);
        rc = bill_usage_billable(u, &l->billable);
        bill_usage_clear(u);
        if (rc == OSB_E_TOOBIG) {
            snprintf(why, whylen,
                     "instance %s, plan %s, metric %s: the billable quantity is "
                     "10^18 or more",
                     g->instance, g->plan, pi->m[k].id);
            continue;
        }
        if (!rc)
            rc = bill_rated_quantity(&l->rated, &l->billable, &l->charge_unit);
        if (rc)
            continue;
        if (pi->free_plan) {
            dec_set_int(&l->exact, 0);
        } else if (!pi->m[k].priced || pi->rc) {
            rc = OSB_E_NOTFOUND;
            snprintf(why, whylen,
                     "instance %s, plan %s, metric %s: the plan has no price in "
                     "%s",
                     g->instance, g->plan, pi->m[k].id, g->currency);
            continue;
        } else {
            str_copy(l->pricing_model, sizeof l->pricing_model, pi->m[k].pricing_model);
            rc = bill_amount(&l->exact, &pi->m[k].price, &l->rated);
            if (rc == OSB_E_TOOBIG) {
                snprintf(why, whylen,
                         "instance %s, plan %s, metric %s: the amount is 10^15 "
                         "%s or more",
                         g->instance, g->plan, pi->m[k].id, g->currency);
                continue;
            }
        }
        if (!rc)
            bill_split(&l->amount, &l->provider_share, &l->platform_share, &l->exact, minor,
                       &l->share);
    }
    return rc;
}

/* What the walks share: the month, its divisor, the plans read so far, the group open. */
typedef struct {
    store_tx *tx;
    const char *month;
    int64_t from, to;
    int days;
    plan_cache pc;
    group g;
    bill_lines *out;
    char *why;
    size_t whylen;
    const bill_progress *pg;
    int64_t done, total;
} walk;

/* One more meter or stretch walked; the listener hears of every 256th and of the last, and
 * may stop the walk (OSB_E_BUSY). */
static int step_done(walk *w)
{
    w->done++;
    if (w->pg && (w->done % 256 == 0 || w->done == w->total))
        return w->pg->fn(w->pg->ud, w->done, w->total) ? 0 : OSB_E_BUSY;
    return 0;
}

/* How many meters and subscription stretches the walks will visit, for the progress. */
static int count_work(walk *w, const char *account)
{
    store_stmt *q;
    int rc = store_query(w->tx,
                         "SELECT (SELECT count(*) FROM usage_meters WHERE ?1 IS NULL OR"
                         " account_id = ?1), (SELECT count(*) FROM instance_plan_history h"
                         " JOIN resource_instances i ON i.guid = h.instance_id"
                         " JOIN plans p ON p.id = h.plan_id WHERE p.kind = 'subscription'"
                         " AND h.from_ms < ?2 AND (?1 IS NULL OR i.account_id = ?1))",
                         &q, "si", account, w->to);
    if (rc)
        return rc;
    int st = store_step(q);
    if (st == STORE_ROW)
        w->total = store_col_int(q, 0) + store_col_int(q, 1);
    store_done(q);
    return st < 0 ? st : 0;
}

/* Makes (account, instance, plan) the open group, rating the one before if it differs. */
static int group_at(walk *w, const char *acct, const char *inst, const char *plan,
                    const char *offering)
{
    group *g = &w->g;
    if (g->open && strcmp(g->account, acct) == 0 && strcmp(g->instance, inst) == 0 &&
        strcmp(g->plan, plan) == 0)
        return 0;
    int rc = flush_group(g, w->out, w->why, w->whylen);
    if (!rc && strcmp(g->account, acct) != 0)
        rc = account_currency(w->tx, acct, g->currency);
    if (rc)
        return rc;
    str_copy(g->account, sizeof g->account, acct);
    str_copy(g->instance, sizeof g->instance, inst);
    str_copy(g->plan, sizeof g->plan, plan);
    str_copy(g->offering, sizeof g->offering, offering);
    if ((rc = plan_get(w->tx, &w->pc, plan, g->currency, w->month, &g->pi)))
        return rc;
    for (size_t k = 0; k < g->pi->n; k++)
        bill_usage_init(&g->u[k], g->pi->m[k].model, w->from, w->to, w->days);
    g->open = true;
    return 0;
}

/* The accepted usage: every meter's records of the month. */
static int usage_walk(walk *w, const char *account)
{
    store_stmt *q;
    int rc = account ? store_query(w->tx,
                                   "SELECT m.id, m.account_id, m.instance_id, m.plan_id,"
                                   " m.offering_id FROM usage_meters m WHERE m.account_id = ?"
                                   " ORDER BY m.account_id, m.instance_id, m.plan_id, m.id",
                                   &q, "s", account)
                     : store_query(w->tx,
                                   "SELECT m.id, m.account_id, m.instance_id, m.plan_id,"
                                   " m.offering_id FROM usage_meters m"
                                   " ORDER BY m.account_id, m.instance_id, m.plan_id, m.id",
                                   &q, "");
    if (rc)
        return rc;
    int st;
    while (!rc && (st = store_step(q)) == STORE_ROW) {
        rc = group_at(w, store_col_text(q, 1), store_col_text(q, 2), store_col_text(q, 3),
                      store_col_text(q, 4));
        if (!rc)
            rc = add_records(w->tx, &w->g, store_col_int(q, 0), w->from, w->to);
        if (!rc)
            rc = step_done(w);
    }
    if (!rc && st < 0)
        rc = st;
    store_done(q);
    return rc;
}

/* Adds to usage u the parts of [a, b) inside the month during which the instance was
 * active, one instance-month per month of them. */
static int add_active(store_tx *tx, const char *instance, int64_t a, int64_t b, bill_usage *u)
{
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT state, from_ms FROM instance_state_history"
                         " WHERE instance_id = ? ORDER BY from_ms, rowid",
                         &q, "s", instance);
    if (rc)
        return rc;
    dec one;
    dec_init(&one);
    dec_set_int(&one, 1);
    bool active = false;
    int64_t since = 0;
    int st;
    for (;;) {
        st = store_step(q);
        bool row = st == STORE_ROW;
        int64_t at = row ? store_col_int(q, 1) : INT64_MAX;
        if (active) { /* [since, at) was active */
            int64_t s0 = since > a ? since : a, s1 = at < b ? at : b;
            if (s0 < s1 && (rc = bill_usage_add(u, s0, s1, &one)) == OSB_E_INVAL)
                rc = 0; /* not inside the month */
            if (rc)
                break;
        }
        if (!row)
            break;
        active = str_eq(store_col_text(q, 0), "active");
        since = at;
    }
    if (!rc && st < 0)
        rc = st;
    store_done(q);
    dec_clear(&one);
    return rc;
}

/* An instance's stretches on subscription plans, each with the start of the next one. An
 * account's own are found from its instances (an index) rather than by a scan of them all. */
#define FEE_COLUMNS                                                                                \
    "SELECT h.instance_id, i.account_id, i.offering_id, h.plan_id, h.from_ms,"                     \
    " (SELECT min(h2.from_ms) FROM instance_plan_history h2"                                       \
    "  WHERE h2.instance_id = h.instance_id AND h2.from_ms > h.from_ms)"
#define FEE_WHERE " WHERE p.kind = 'subscription' AND h.from_ms < ?2"
#define FEE_ORDER " ORDER BY i.account_id, h.instance_id, h.plan_id, h.from_ms"

/* The platform's monthly fee of subscription plans: for each stretch of an instance on such
 * a plan, the time it was active, prorated over the month (monthlyproration, 1 per month). */
static int fee_walk(walk *w, const char *account)
{
    store_stmt *q;
    int rc = account
                 ? store_query(w->tx,
                               FEE_COLUMNS " FROM resource_instances i"
                                           " JOIN instance_plan_history h"
                                           " ON h.instance_id = i.guid"
                                           " JOIN plans p ON p.id = h.plan_id" FEE_WHERE
                                           " AND i.account_id = ?1" FEE_ORDER,
                               &q, "si", account, w->to)
                 : store_query(w->tx,
                               FEE_COLUMNS " FROM instance_plan_history h"
                                           " JOIN resource_instances i"
                                           " ON i.guid = h.instance_id"
                                           " JOIN plans p ON p.id = h.plan_id" FEE_WHERE FEE_ORDER,
                               &q, "si", NULL, w->to);
    if (rc)
        return rc;
    int st;
    while (!rc && (st = store_step(q)) == STORE_ROW) {
        int64_t a = store_col_int(q, 4), b = store_col_null(q, 5) ? INT64_MAX : store_col_int(q, 5);
        if ((rc = step_done(w)))
            break;
        if (b <= w->from)
            continue;
        const char *inst = store_col_text(q, 0);
        rc = group_at(w, store_col_text(q, 1), inst, store_col_text(q, 3), store_col_text(q, 2));
        for (size_t k = 0; !rc && k < w->g.pi->n; k++)
            if (strcmp(w->g.pi->m[k].id, CATALOG_FEE_METRIC) == 0)
                rc = add_active(w->tx, inst, a, b, &w->g.u[k]);
    }
    if (!rc && st < 0)
        rc = st;
    store_done(q);
    return rc;
}

static int line_cmp(const void *x, const void *y)
{
    const bill_line *a = x, *b = y;
    int c = strcmp(a->account, b->account);
    if (!c)
        c = strcmp(a->instance, b->instance);
    if (!c)
        c = strcmp(a->plan, b->plan);
    return c ? c : strcmp(a->metric, b->metric);
}

int bill_rate(store_tx *tx, const char *account, const char *month, int64_t now_ms,
              const bill_progress *pg, bill_lines *out, char *why, size_t whylen)
{
    walk w = {.tx = tx, .month = month, .out = out, .why = why, .whylen = whylen, .pg = pg};
    if (!time_month_range(month, &w.from, &w.to))
        return OSB_E_INVAL;
    w.days = (int)((w.to - w.from) / DAY_MS);
    if (now_ms > 0 && now_ms >= w.from && now_ms < w.to)
        w.days = (int)((now_ms - w.from) / DAY_MS) + 1;
    why[0] = '\0';
    int rc = pg ? count_work(&w, account) : 0;
    if (!rc && pg && !pg->fn(pg->ud, 0, w.total)) /* counted: rating begins */
        rc = OSB_E_BUSY;
    if (!rc)
        rc = usage_walk(&w, account);
    int frc = flush_group(&w.g, out, why, whylen); /* clears the group's usage in any case */
    if (!rc)
        rc = frc;
    if (!rc)
        rc = fee_walk(&w, account);
    frc = flush_group(&w.g, out, why, whylen);
    if (!rc)
        rc = frc;
    for (size_t i = 0; i < w.pc.n; i++)
        plan_info_free(w.pc.v[i]);
    free(w.pc.v);
    /* one order whatever the walks: (account, instance, plan, metric) */
    if (!rc && out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, line_cmp);
    return rc;
}

/* ---------------------------------------------------------------- preview */

/* One metric's line of an estimate into out, from its billable quantity. */
static int estimate_line(const plan_info *pi, const metric_info *mi, const dec *billable, int minor,
                         json_t *lines, dec *total, char *why, size_t whylen)
{
    dec rated, exact, line, prov, plat;
    dec *all[] = {&rated, &exact, &line, &prov, &plat};
    for (size_t i = 0; i < 5; i++)
        dec_init(all[i]);
    int rc = bill_rated_quantity(&rated, billable, &mi->charge_unit);
    if (!rc && pi->free_plan)
        dec_set_int(&exact, 0);
    else if (!rc && !mi->priced) {
        rc = OSB_E_NOTFOUND;
        snprintf(why, whylen, "%s: the plan has no price in %s", mi->id, pi->currency);
    } else if (!rc && (rc = bill_amount(&exact, &mi->price, &rated)) == OSB_E_TOOBIG)
        snprintf(why, whylen, "%s: the amount is 10^15 %s or more", mi->id, pi->currency);
    if (!rc) {
        bill_split(&line, &prov, &plat, &exact, minor, &pi->share);
        dec_add(total, total, &line);
        char *t[4] = {dec_to_string(billable), dec_to_string(&mi->charge_unit),
                      dec_to_string(&rated), dec_to_string(&exact)};
        char *c = dec_to_fixed(&line, minor);
        json_t *j =
            t[0] && t[1] && t[2] && t[3] && c
                ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:s}", "metric", mi->id,
                            "unit", mi->unit, "quantity", t[0], "charge_unit_quantity", t[1],
                            "rateable_quantity", t[2], "metering_model", mi->model_name,
                            "pricing_model", pi->free_plan ? NULL : mi->pricing_model, "exact_cost",
                            t[3], "cost", c)
                : NULL;
        rc = j ? json_array_append_new(lines, j) ? OSB_E_NOMEM : 0 : OSB_E_NOMEM;
        for (int i = 0; i < 4; i++)
            free(t[i]);
        free(c);
    }
    for (size_t i = 0; i < 5; i++)
        dec_clear(all[i]);
    return rc;
}

int bill_estimate(store_tx *tx, const char *plan, const char *currency, const char *month,
                  const json_t *usage, json_t **out, char *why, size_t whylen)
{
    *out = NULL;
    why[0] = '\0';
    int minor = currency_minor_units(currency);
    if (minor < 0) {
        snprintf(why, whylen, "currency");
        return OSB_E_INVAL;
    }
    plan_info *pi = calloc(1, sizeof *pi);
    if (!pi)
        return OSB_E_NOMEM;
    int rc = plan_load(tx, plan, currency, month, pi);
    json_t *lines = json_array();
    dec total, q;
    dec_init(&total);
    dec_init(&q);
    bool fee_given = false;
    size_t i;
    const json_t *u;
    json_array_foreach(usage, i, u)
    {
        if (rc)
            break;
        const char *metric = json_string_value(json_object_get(u, "metric"));
        const metric_info *mi = NULL;
        for (size_t k = 0; metric && k < pi->n && !mi; k++)
            if (strcmp(pi->m[k].id, metric) == 0)
                mi = &pi->m[k];
        bool twice = false;
        for (size_t k = 0; k < i && !twice; k++)
            twice = str_eq(json_string_value(json_object_get(json_array_get(usage, k), "metric")),
                           metric);
        if (!json_is_object(u) || !mi || twice) {
            snprintf(why, whylen, "usage[%zu].metric", i);
            rc = OSB_E_INVAL;
        } else if (dec_from_json(&q, json_object_get(u, "quantity")) ||
                   !dec_abs_below_pow10(&q, BILL_BILLABLE_POW10) || dec_frac_digits(&q) > 12 ||
                   (dec_sign(&q) < 0 && !mi->allow_negative)) {
            snprintf(why, whylen, "usage[%zu].quantity", i);
            rc = OSB_E_INVAL;
        } else {
            fee_given = fee_given || strcmp(mi->id, CATALOG_FEE_METRIC) == 0;
            rc = estimate_line(pi, mi, &q, minor, lines, &total, why, whylen);
        }
    }
    /* a subscription's fee is part of what a customer pays: one month of it unless given */
    for (size_t k = 0; !rc && !fee_given && k < pi->n; k++)
        if (strcmp(pi->m[k].id, CATALOG_FEE_METRIC) == 0) {
            dec_set_int(&q, 1);
            rc = estimate_line(pi, &pi->m[k], &q, minor, lines, &total, why, whylen);
        }
    if (!rc) {
        char *t = dec_to_fixed(&total, minor);
        *out =
            t ? json_pack("{s:s, s:s, s:s, s:b, s:o, s:s}", "plan_id", plan, "currency", currency,
                          "month", month, "free", pi->free_plan, "lines", lines, "total", t)
              : NULL;
        free(t);
        lines = NULL;
        if (!*out)
            rc = OSB_E_NOMEM;
    }
    json_decref(lines);
    dec_clear(&total);
    dec_clear(&q);
    plan_info_free(pi);
    return rc;
}
