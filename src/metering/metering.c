/* metering: POST /v4/metering/resources/{resource_id}/usage. A request's records are checked
 * in one read transaction on the handler's thread, then the ones that passed go to the group
 * commit as one unit: there each is checked against the closed months and inserted under its
 * unique signature, so a duplicate (in the batch, an earlier one, or a concurrent submitter's)
 * is a 409 decided by the same transaction that would have stored it. The answer waits for
 * that commit. */
#include "metering/metering.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/decimal.h"
#include "catalog/catalog_int.h"

#define MAX_CONSUMER_ID          255
#define MAX_QUANTITY_INT_DIGITS  15
#define MAX_QUANTITY_FRAC_DIGITS 9

struct metering {
    store *db;
    iam *iam;
    store_group *group;
};

/* ---------------------------------------------------------------- exact numbers */

#define MAX_QUANTITY_TEXT (1 + MAX_QUANTITY_INT_DIGITS + 1 + MAX_QUANTITY_FRAC_DIGITS)

/* The canonical text of a plain decimal -?(0|[1-9][0-9]*)(\.[0-9]+)?: trailing fractional
 * zeros and a bare '.' dropped, "0" never signed; what dec_to_string gives, without GMP. */
static bool plain_canonical(const char *s, char out[MAX_QUANTITY_TEXT + 1], int *sign)
{
    const char *p = s + (*s == '-');
    size_t ni = strspn(p, "0123456789");
    if (ni == 0 || (p[0] == '0' && ni > 1))
        return false;
    size_t nf = 0;
    if (p[ni] == '.') {
        nf = strspn(p + ni + 1, "0123456789");
        if (nf == 0 || p[ni + 1 + nf])
            return false;
        while (nf && p[ni + nf] == '0')
            nf--;
    } else if (p[ni]) {
        return false;
    }
    if (ni > MAX_QUANTITY_INT_DIGITS || nf > MAX_QUANTITY_FRAC_DIGITS)
        return false;
    bool zero = ni == 1 && p[0] == '0' && nf == 0;
    *sign = zero ? 0 : *s == '-' ? -1 : 1;
    char *o = out;
    if (*sign < 0)
        *o++ = '-';
    memcpy(o, p, ni);
    o += ni;
    if (nf) {
        memcpy(o, p + ni, nf + 1);
        o += nf + 1;
    }
    *o = '\0';
    return true;
}

/* A quantity: a JSON number (exponents allowed) or a string -?(0|[1-9][0-9]*)(\.[0-9]+)?,
 * with at most 15 integer and 9 fractional digits once trailing zeros are dropped. Its
 * canonical text goes to out, its sign to *sign. */
static bool quantity_value(const jd_value *j, char out[MAX_QUANTITY_TEXT + 1], int *sign)
{
    const char *s = jd_num(j);
    bool number = s != NULL;
    if (!s && !(s = jd_str(j)))
        return false;
    if (plain_canonical(s, out, sign))
        return true;
    if (!number || !strpbrk(s, "eE"))
        return false; /* not a plain decimal, or one with too many digits */
    dec q;
    dec_init(&q);
    char *canon = dec_parse(&q, s, strlen(s)) ? NULL : dec_to_string(&q);
    dec_clear(&q);
    bool ok = canon && plain_canonical(canon, out, sign);
    free(canon);
    return ok;
}

/* ---------------------------------------------------------------- one record */

typedef struct {
    int status; /* 0 while it may still be accepted; then 201, 400, 404 or 409 */
    char code[40], message[200];
    char instance[37], consumer[MAX_CONSUMER_ID + 1], plan[72], region[40], offering[72];
    char account[64], first_month[8], month[8];
    int64_t start, end, instant;
    int64_t meter;  /* usage_meters.id when the meter existed at the check; else 0 */
    char *measures; /* canonical JSON */
} record;

static void refuse(record *r, int status, const char *code, const char *fmt, ...) PRINTF_LIKE(4, 5);
static void refuse(record *r, int status, const char *code, const char *fmt, ...)
{
    r->status = status;
    str_copy(r->code, sizeof r->code, code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

/* Up to max bytes of s, cut where a UTF-8 sequence starts, for quoting client text. */
static const char *clip(const char *s, char *out, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* What find_instance read for a record: the instance, its plan at the instant, its meter. */
typedef struct {
    bool found;
    char instance[37], region[40], account[64], at_plan[72];
    int64_t deleted_ms; /* -1 when not deleted */
    int64_t meter;
} instance_at;

/* One lookup of the request, keyed by what the query depends on (the texts are the body's). */
typedef struct {
    uint32_t hash;
    const char *iid, *plan, *region; /* region NULL: the record names none */
    int64_t instant;
    instance_at at;
} lookup;

/* Cached for the request, which reads one snapshot: the plan's metrics (the plan of the last
 * record checked), and every instance lookup, since a batch often has many records of one
 * instance at one time (hourly records sent together, several measures' consumers). */
typedef struct {
    char plan[72];
    json_t *metrics;
    size_t nlookups;
    lookup *lookups; /* METERING_MAX_RECORDS of them, or NULL: no memo */
} plan_cache;

static int load_metrics(store_tx *tx, plan_cache *pc, const char *plan)
{
    if (pc->metrics && strcmp(pc->plan, plan) == 0)
        return 0;
    json_decref(pc->metrics);
    pc->metrics = NULL;
    store_stmt *q;
    int rc = store_query(tx, "SELECT doc FROM plans WHERE id = ?", &q, "s", plan);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW) {
        json_t *doc = json_loads(store_col_text(q, 0), 0, NULL);
        json_t *m = json_object_get(doc, "metrics");
        pc->metrics = json_is_array(m) ? json_incref(m) : json_array();
        json_decref(doc);
    }
    store_done(q);
    if (!pc->metrics)
        pc->metrics = json_array();
    str_copy(pc->plan, sizeof pc->plan, plan);
    return 0;
}

/* The instance named by its id or its CRN, its plan at the record's instant, and the meter of
 * (instance, plan, region) if there is one: one query. */
static int query_instance(store_tx *tx, const char *iid, int64_t instant, const char *plan,
                          const char *region, store_stmt **q)
{
    if (str_has_prefix(iid, "crn:"))
        return store_query(tx,
                           "SELECT i.guid, i.offering_id, i.region, i.account_id, i.deleted_ms,"
                           " (SELECT h.plan_id FROM instance_plan_history h WHERE h.instance_id"
                           " = i.guid AND h.from_ms <= ?2 ORDER BY h.from_ms DESC LIMIT 1),"
                           " (SELECT m.id FROM usage_meters m WHERE m.instance_id = i.guid AND"
                           " m.plan_id = ?3 AND m.region = coalesce(?4, i.region))"
                           " FROM resource_instances i WHERE i.crn = ?1",
                           q, "siss", iid, instant, plan, region);
    return store_query(tx,
                       "SELECT i.guid, i.offering_id, i.region, i.account_id, i.deleted_ms,"
                       " (SELECT h.plan_id FROM instance_plan_history h WHERE h.instance_id ="
                       " i.guid AND h.from_ms <= ?2 ORDER BY h.from_ms DESC LIMIT 1),"
                       " (SELECT m.id FROM usage_meters m WHERE m.instance_id = i.guid AND"
                       " m.plan_id = ?3 AND m.region = coalesce(?4, i.region))"
                       " FROM resource_instances i WHERE i.guid = ?1",
                       q, "siss", iid, instant, plan, region);
}

static uint32_t lookup_hash(const char *iid, int64_t instant, const char *plan, const char *region)
{
    uint32_t h = 2166136261u;
    for (const char *t = iid; *t; t++)
        h = (h ^ (unsigned char)*t) * 16777619u;
    h = (h ^ (uint32_t)instant) * 16777619u;
    h = (h ^ (uint32_t)((uint64_t)instant >> 32)) * 16777619u;
    h = (h ^ (uint32_t)strlen(plan)) * 16777619u;
    return h ^ (region ? (uint32_t)strlen(region) + 1 : 0);
}

/* find the instance of `offering` for a record, from the request's memo or with one query */
static int find_instance(store_tx *tx, plan_cache *pc, const char *offering, const char *iid,
                         int64_t instant, const char *plan, const char *region, instance_at *at)
{
    uint32_t h = lookup_hash(iid, instant, plan, region);
    for (size_t k = 0; k < pc->nlookups; k++) {
        const lookup *e = &pc->lookups[k];
        if (e->hash == h && e->instant == instant && strcmp(e->iid, iid) == 0 &&
            strcmp(e->plan, plan) == 0 &&
            (e->region ? region && strcmp(e->region, region) == 0 : !region)) {
            *at = e->at;
            return 0;
        }
    }
    store_stmt *q;
    int rc = query_instance(tx, iid, instant, plan, region, &q);
    if (rc)
        return rc;
    memset(at, 0, sizeof *at);
    at->deleted_ms = -1;
    int st = store_step(q);
    if (st == STORE_ROW && str_eq(store_col_text(q, 1), offering)) {
        at->found = true;
        str_copy(at->instance, sizeof at->instance, store_col_text(q, 0));
        str_copy(at->region, sizeof at->region, store_col_text(q, 2));
        str_copy(at->account, sizeof at->account, store_col_text(q, 3));
        if (!store_col_null(q, 4))
            at->deleted_ms = store_col_int(q, 4);
        if (!store_col_null(q, 5))
            str_copy(at->at_plan, sizeof at->at_plan, store_col_text(q, 5));
        at->meter = store_col_null(q, 6) ? 0 : store_col_int(q, 6);
    }
    store_done(q);
    if (st < 0)
        return st;
    if (pc->lookups && pc->nlookups < METERING_MAX_RECORDS)
        pc->lookups[pc->nlookups++] = (lookup){h, iid, plan, region, instant, *at};
    return 0;
}

/* measured_usage, checked against the plan's metrics, as canonical JSON in r->measures. */
static int check_measures(const jd_value *mu, const json_t *metrics, record *r)
{
    char shown[64];
    buf out;
    buf_init(&out, 0);
    int rc = buf_append(&out, "[", 1);
    for (size_t i = 0; i < mu->len && !rc; i++) {
        const jd_value *m = &mu->items[i];
        const char *measure = jd_str(jd_get(m, "measure"));
        const json_t *metric = measure ? catalog_metric(metrics, measure) : NULL;
        if (!metric) {
            refuse(r, 400, "invalid_measured_usage",
                   "measured_usage[%zu]: '%s' is not a measure of the plan.", i,
                   clip(measure ? measure : "", shown, 60));
            break;
        }
        if (strcmp(measure, CATALOG_FEE_METRIC) == 0) {
            refuse(r, 400, "invalid_measured_usage",
                   "measured_usage[%zu]: '" CATALOG_FEE_METRIC "' is metered by the platform,"
                   " from the time the instance is active on the plan.", i);
            break;
        }
        bool twice = false;
        for (size_t k = 0; k < i && !twice; k++)
            twice = strcmp(jd_str(jd_get(&mu->items[k], "measure")), measure) == 0;
        if (twice) {
            refuse(r, 400, "invalid_measured_usage",
                   "measured_usage[%zu]: '%s' appears twice in the record.", i,
                   clip(measure, shown, 60));
            break;
        }
        char q[MAX_QUANTITY_TEXT + 1];
        int sign;
        if (!quantity_value(jd_get(m, "quantity"), q, &sign)) {
            refuse(r, 400, "invalid_quantity",
                   "measured_usage[%zu].quantity must be a decimal of at most 15 integer and 9 "
                   "fractional digits.",
                   i);
            break;
        }
        if (sign < 0 && !json_is_true(json_object_get(metric, "allow_negative"))) {
            refuse(r, 400, "invalid_quantity",
                   "measured_usage[%zu].quantity: '%s' does not allow negative quantities.", i,
                   clip(measure, shown, 60));
            break;
        }
        if (i)
            rc = buf_append(&out, ",", 1);
        if (!rc)
            rc = buf_puts(&out, "{\"measure\":");
        if (!rc)
            rc = buf_json_str(&out, measure);
        if (!rc)
            rc = buf_puts(&out, ",\"quantity\":\"");
        if (!rc)
            rc = buf_puts(&out, q);
        if (!rc)
            rc = buf_puts(&out, "\"}");
    }
    if (!rc && !r->status && !(rc = buf_append(&out, "]", 1)))
        r->measures = buf_take(&out);
    buf_free(&out);
    return rc;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* The members of a record the checks read, found in one pass over it. */
typedef struct {
    const jd_value *iid, *plan, *region, *start, *end, *consumer, *measured_usage;
} record_fields;

static void record_fields_of(const jd_value *j, record_fields *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < j->len; i++) {
        const jd_value *m = &j->items[i];
        const char *k = m->key;
        const jd_value **slot = NULL;
        switch (k[0]) {
        case 'r':
            slot = strcmp(k, "resource_instance_id") == 0 ? &f->iid
                   : strcmp(k, "region") == 0             ? &f->region
                                                          : NULL;
            break;
        case 'p': slot = strcmp(k, "plan_id") == 0 ? &f->plan : NULL; break;
        case 's': slot = strcmp(k, "start") == 0 ? &f->start : NULL; break;
        case 'e': slot = strcmp(k, "end") == 0 ? &f->end : NULL; break;
        case 'c': slot = strcmp(k, "consumer_id") == 0 ? &f->consumer : NULL; break;
        case 'm': slot = strcmp(k, "measured_usage") == 0 ? &f->measured_usage : NULL; break;
        default: break;
        }
        if (slot)
            *slot = m;
    }
}

/* Checks a record in the spec's order (404, then each 400); leaves status 0 when it passed. */
static int check_record(store_tx *tx, const char *offering, const jd_value *j, plan_cache *pc,
                        int64_t now, record *r)
{
    if (j->type != JD_OBJECT) {
        refuse(r, 400, "invalid_record", "A usage record is a JSON object.");
        return 0;
    }
    record_fields f;
    record_fields_of(j, &f);
    const char *iid = jd_str(f.iid);
    if (!iid || !*iid || strlen(iid) > 600) {
        refuse(r, 400, "invalid_resource_instance_id",
               "'resource_instance_id' must name an instance (its id or CRN).");
        return 0;
    }
    /* The instance and its plan at the record's instant in one query: the times are read
     * first, but refused only after the instance is known, in the spec's order. */
    int64_t start = 0, end = 0;
    bool times = jd_int(f.start, &start) && jd_int(f.end, &end) && start >= 0 && end >= start;
    int64_t instant = !times ? 0 : end > start ? end - 1 : end;
    const char *plan = jd_str(f.plan);
    const jd_value *rj = f.region;
    const char *region = jd_str(rj);
    instance_at at;
    int rc = find_instance(tx, pc, offering, iid, instant, plan ? plan : "",
                           rj ? (region ? region : "") : NULL, &at);
    if (rc)
        return rc;
    if (!at.found) {
        refuse(r, 404, "not_found", "No such instance of this offering.");
        return 0;
    }
    memcpy(r->instance, at.instance, sizeof r->instance);
    memcpy(r->account, at.account, sizeof r->account);
    r->meter = at.meter;
    int64_t deleted_ms = at.deleted_ms;
    char *at_plan = at.at_plan;
    str_copy(r->offering, sizeof r->offering, offering);

    if (!jd_int(f.start, &r->start) || r->start < 0) {
        refuse(r, 400, "invalid_start", "'start' must be a time: ms since the epoch, an integer.");
        return 0;
    }
    if (!jd_int(f.end, &r->end) || r->end < r->start) {
        refuse(r, 400, "invalid_end", "'end' must be an integer time not before 'start'.");
        return 0;
    }
    if (r->end > now + METERING_FUTURE_MS) {
        refuse(r, 400, "invalid_end", "'end' is more than 5 minutes in the future.");
        return 0;
    }
    r->instant = instant;
    time_month_of(r->start, r->first_month);
    time_month_of(r->instant, r->month);

    if (deleted_ms >= 0 && r->instant >= deleted_ms)
        at_plan[0] = '\0'; /* deleted by then: no plan */
    if (!plan || !at_plan[0] || strcmp(plan, at_plan) != 0) {
        if (!at_plan[0])
            refuse(r, 400, "invalid_plan_id", "The instance had no plan at the record's time.");
        else
            refuse(r, 400, "invalid_plan_id",
                   "'plan_id' is not the instance's plan at the "
                   "record's time (%s).",
                   at_plan);
        return 0;
    }
    str_copy(r->plan, sizeof r->plan, plan);

    const jd_value *mu = f.measured_usage;
    if (!mu || mu->type != JD_ARRAY || mu->len == 0) {
        refuse(r, 400, "invalid_measured_usage", "'measured_usage' must be a non-empty array.");
        return 0;
    }
    if ((rc = load_metrics(tx, pc, plan)) || (rc = check_measures(mu, pc->metrics, r)) || r->status)
        return rc;

    const jd_value *cj = f.consumer;
    if (cj) {
        const char *cid = jd_str(cj);
        if (!cid || !*cid || strlen(cid) > MAX_CONSUMER_ID || has_control(cid)) {
            refuse(r, 400, "invalid_consumer_id",
                   "'consumer_id', when present, must be text of 1 to 255 characters, without "
                   "control characters.");
            return 0;
        }
        str_copy(r->consumer, sizeof r->consumer, cid);
    }
    if (rj) {
        bool deployed = false;
        if (region && strlen(region) < sizeof r->region) {
            store_stmt *q;
            if ((rc = store_query(tx, "SELECT 1 FROM deployments WHERE plan_id = ? AND region = ?",
                                  &q, "ss", plan, region)))
                return rc;
            deployed = store_step(q) == STORE_ROW;
            store_done(q);
        }
        if (!deployed) {
            refuse(r, 400, "invalid_region", "'region' must be a region the plan is deployed in.");
            return 0;
        }
        str_copy(r->region, sizeof r->region, region);
    } else {
        str_copy(r->region, sizeof r->region, at.region);
    }
    return 0;
}

/* ---------------------------------------------------------------- the request */

typedef struct {
    metering *mt;
    http_req *req;
    bool deferred;
    char iam_id[130];
    size_t n;
    record *recs;
} submission;

/* Onboarding's step 5 wants accepted usage of an instance while the offering is in limited
 * visibility: the first such record is its evidence. */
static int record_evidence(store_tx *tx, const record *r)
{
    char detail[160];
    snprintf(detail, sizeof detail, "{\"instance\":\"%s\"}", r->instance);
    return store_exec(tx,
                      "INSERT INTO offering_evidence (offering_id, kind, detail, created_ms)"
                      " SELECT id, 'usage', ?, ? FROM offerings WHERE id = ? AND visibility ="
                      " 'limited' AND NOT EXISTS (SELECT 1 FROM offering_evidence WHERE"
                      " offering_id = ? AND kind = 'usage')",
                      "siss", detail, time_now_ms(), r->offering, r->offering);
}

/* The record's meter: the one the check found, one an earlier record of this unit made, or
 * a new one (or, when a concurrent submitter's unit made it first, that one). */
static int meter_of(store_tx *tx, submission *s, size_t i)
{
    record *r = &s->recs[i];
    if (r->meter)
        return 0;
    for (size_t k = 0; k < i; k++) {
        const record *o = &s->recs[k];
        if (o->meter && strcmp(o->instance, r->instance) == 0 && strcmp(o->plan, r->plan) == 0 &&
            strcmp(o->region, r->region) == 0) {
            r->meter = o->meter;
            return 0;
        }
    }
    int rc = store_exec(tx,
                        "INSERT INTO usage_meters (instance_id, plan_id, region, offering_id,"
                        " account_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        "sssss", r->instance, r->plan, r->region, r->offering, r->account);
    if (rc)
        return rc;
    store_stmt *q;
    if ((rc = store_query(tx,
                          "SELECT id FROM usage_meters WHERE instance_id = ? AND plan_id = ? AND"
                          " region = ?",
                          &q, "sss", r->instance, r->plan, r->region)))
        return rc;
    int st = store_step(q);
    if (st == STORE_ROW)
        r->meter = store_col_int(q, 0);
    store_done(q);
    return st == STORE_ROW ? 0 : st < 0 ? st : OSB_E_STORE;
}

/* The closed months from `earliest` on, in order, into *out (the caller frees it). */
static int closed_months(store_tx *tx, const char *earliest, char (**out)[8], size_t *n)
{
    store_stmt *q;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    int rc = store_query(tx,
                         "SELECT month FROM billing_periods WHERE state = 'closed' AND month >= ?"
                         " ORDER BY month",
                         &q, "s", earliest);
    if (rc)
        return rc;
    int st;
    while ((st = store_step(q)) == STORE_ROW) {
        if (*n == cap) {
            void *p = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof **out);
            if (!p) {
                st = OSB_E_NOMEM;
                break;
            }
            *out = p;
        }
        snprintf((*out)[(*n)++], sizeof **out, "%s", store_col_text(q, 0));
    }
    store_done(q);
    return st < 0 ? st : 0;
}

/* One element of a PostgreSQL array literal appended to b: a text quoted with '"' and '\'
 * escaped, else the integer num; first opens the array. */
static int array_elem(buf *b, const char *text, int64_t num, bool first)
{
    int rc = buf_append(b, first ? "{" : ",", 1);
    if (!text)
        return rc ? rc : buf_printf(b, "%lld", (long long)num);
    rc = rc ? rc : buf_append(b, "\"", 1);
    for (const char *c = text; !rc && *c; c++) {
        if (*c == '"' || *c == '\\')
            rc = buf_append(b, "\\", 1);
        if (!rc)
            rc = buf_append(b, c, 1);
    }
    return rc ? rc : buf_append(b, "\"", 1);
}

/* PostgreSQL: the unit's new records in one INSERT of arrays, a round trip for all of them
 * rather than one each; what it inserted comes back by signature, first occurrence first
 * (a record whose signature is already stored, or earlier in the unit, is a duplicate). */
static int insert_records_pg(store_tx *tx, submission *s, int64_t batch)
{
    buf a[5];
    for (int k = 0; k < 5; k++)
        buf_init(&a[k], (size_t)64 << 20); /* far above a request's 1 MiB, doubled by quoting */
    bool any = false;
    int rc = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        const record *r = &s->recs[i];
        if (r->status)
            continue;
        if (!(rc = array_elem(&a[0], NULL, r->meter, !any)) &&
            !(rc = array_elem(&a[1], r->consumer, 0, !any)) &&
            !(rc = array_elem(&a[2], NULL, r->start, !any)) &&
            !(rc = array_elem(&a[3], NULL, r->end, !any)))
            rc = array_elem(&a[4], r->measures, 0, !any);
        any = true;
    }
    for (int k = 0; k < 5 && !rc && any; k++)
        rc = buf_append(&a[k], "}", 1);
    store_stmt *q = NULL;
    if (!rc && any)
        rc = store_query(tx,
                         "INSERT INTO usage_records (meter, consumer_id, start_ms, end_ms,"
                         " measured_usage, batch) SELECT m, c, s, e, u, ? FROM"
                         " unnest(?::bigint[], ?::text[], ?::bigint[], ?::bigint[], ?::text[])"
                         " AS t(m, c, s, e, u) ON CONFLICT (meter, end_ms, start_ms, consumer_id)"
                         " DO NOTHING RETURNING meter, start_ms, end_ms, consumer_id",
                         &q, "isssss", batch, buf_cstr(&a[0]), buf_cstr(&a[1]),
                         buf_cstr(&a[2]), buf_cstr(&a[3]), buf_cstr(&a[4]));
    int st = 0;
    while (!rc && any && (st = store_step(q)) == STORE_ROW) {
        int64_t meter = store_col_int(q, 0), start = store_col_int(q, 1), end = store_col_int(q, 2);
        const char *consumer = store_col_text(q, 3);
        for (size_t i = 0; i < s->n; i++) {
            record *r = &s->recs[i];
            if (!r->status && r->meter == meter && r->start == start && r->end == end &&
                consumer && strcmp(r->consumer, consumer) == 0) {
                r->status = 201;
                break;
            }
        }
    }
    if (!rc && st < 0)
        rc = st;
    if (q)
        store_done(q);
    for (int k = 0; k < 5; k++)
        buf_free(&a[k]);
    for (size_t i = 0; !rc && i < s->n; i++)
        if (!s->recs[i].status)
            refuse(&s->recs[i], 409, "duplicate",
                   "A record with the same signature was accepted already.");
    return rc;
}

/* In the group commit: the months, the meter, the signature, the row. */
static int store_records(store_tx *tx, void *ud)
{
    submission *s = ud;
    /* The closed months a record of this unit may overlap, read once. */
    const char *earliest = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (!s->recs[i].status && (!earliest || strcmp(s->recs[i].first_month, earliest) < 0))
            earliest = s->recs[i].first_month;
    if (!earliest)
        return 0;
    char(*closed)[8];
    size_t nclosed;
    int rc = closed_months(tx, earliest, &closed, &nclosed);
    int64_t batch = 0;
    bool evidence = false, pg = store_tx_postgres(tx);
    for (size_t i = 0; i < s->n && !rc; i++) {
        record *r = &s->recs[i];
        if (r->status)
            continue;
        const char *hit = NULL;
        for (size_t k = 0; k < nclosed && !hit; k++)
            if (strcmp(closed[k], r->first_month) >= 0 && strcmp(closed[k], r->month) <= 0)
                hit = closed[k];
        if (hit) {
            refuse(r, 400, "month_closed", "The record overlaps %s, a closed month.", hit);
            continue;
        }
        if (!batch) {
            store_stmt *q;
            if ((rc = store_query(tx,
                                  "INSERT INTO usage_batches (submitted_by, accepted_ms) VALUES"
                                  " (?, ?) RETURNING id",
                                  &q, "si", s->iam_id, time_now_ms())))
                break;
            int st = store_step(q);
            if (st == STORE_ROW)
                batch = store_col_int(q, 0);
            store_done(q);
            if (!batch) {
                rc = st < 0 ? st : OSB_E_STORE;
                break;
            }
        }
        if ((rc = meter_of(tx, s, i)) || pg)
            continue; /* on PostgreSQL the rows go in one statement, below */
        if ((rc =
                 store_exec(tx,
                            "INSERT INTO usage_records (meter, consumer_id, start_ms, end_ms,"
                            " measured_usage, batch) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT"
                            " (meter, end_ms, start_ms, consumer_id) DO NOTHING",
                            "isiisi", r->meter, r->consumer, r->start, r->end, r->measures, batch)))
            break;
        if (store_changes(tx) == 0) {
            refuse(r, 409, "duplicate", "A record with the same signature was accepted already.");
        } else {
            r->status = 201;
            if (!evidence && (rc = record_evidence(tx, r)))
                break;
            evidence = true;
        }
    }
    if (!rc && pg && batch && !(rc = insert_records_pg(tx, s, batch)))
        for (size_t i = 0; i < s->n && !rc; i++)
            if (s->recs[i].status == 201) {
                rc = record_evidence(tx, &s->recs[i]);
                break;
            }
    free(closed);
    return rc;
}

static void submission_free(submission *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->recs[i].measures);
    free(s->recs);
    free(s);
}

static void reply_submission(submission *s, int rc)
{
    if (rc) {
        log_error("metering: storing usage failed: %s", base_strerror(rc));
        http_reply_error(s->req, 503, "unavailable",
                         "The usage could not be stored; nothing of this request was kept. Send "
                         "it again.",
                         NULL);
        return;
    }
    buf out;
    buf_init(&out, 0);
    rc = buf_puts(&out, "{\"resources\":[");
    for (size_t i = 0; i < s->n && !rc; i++) {
        const record *r = &s->recs[i];
        char head[24] = ",{\"status\":";
        size_t hl = strlen(head);
        head[hl++] = (char)('0' + r->status / 100);
        head[hl++] = (char)('0' + r->status / 10 % 10);
        head[hl++] = (char)('0' + r->status % 10);
        rc = buf_append(&out, head + !i, hl - !i);
        if (!rc && r->status != 201) {
            rc = buf_puts(&out, ",\"code\":");
            if (!rc)
                rc = buf_json_str(&out, r->code);
            if (!rc)
                rc = buf_puts(&out, ",\"message\":");
            if (!rc)
                rc = buf_json_str(&out, r->message);
        }
        if (!rc)
            rc = buf_append(&out, "}", 1);
    }
    if (!rc)
        rc = buf_puts(&out, "]}");
    if (rc)
        http_reply_error(s->req, 500, "internal_error", "Out of memory.", NULL);
    else
        http_reply(s->req, 202, "application/json", out.data, out.len);
    buf_free(&out);
}

static void stored(void *ud, int rc)
{
    submission *s = ud;
    http_req *req = s->req;
    bool deferred = s->deferred;
    reply_submission(s, rc);
    submission_free(s);
    if (deferred)
        http_resume(req);
}

static void usage_submit(http_req *req, void *ud)
{
    metering *mt = ud;
    iam_principal p;
    store_tx *tx = NULL;
    submission *s = NULL;
    if (!iam_authenticate(mt->iam, req, &p))
        return;
    const char *offering = req->params[0];
    if (store_begin(mt->db, false, &tx)) {
        http_reply_error(req, 503, "unavailable", "The store is unavailable.", NULL);
        return;
    }
    store_stmt *q;
    char owner[64] = "";
    if (store_query(tx, "SELECT account_id FROM offerings WHERE id = ?", &q, "s", offering))
        goto store_fail;
    if (store_step(q) == STORE_ROW)
        str_copy(owner, sizeof owner, store_col_text(q, 0));
    store_done(q);
    if (!owner[0]) {
        http_reply_error(req, 404, "not_found", "No such offering.", NULL);
        goto out;
    }
    if (strcmp(owner, p.account_id) != 0) {
        http_reply_error(req, 403, "forbidden",
                         "Only the provider account of the offering submits its usage.", NULL);
        goto out;
    }
    const jd_value *body = http_jdoc_body(req);
    if (!body)
        goto out;
    if (body->type != JD_ARRAY || body->len < 1 || body->len > METERING_MAX_RECORDS) {
        http_reply_error(req, 400, "invalid_body",
                         "The body must be a JSON array of 1 to 100 usage records.", NULL);
        goto out;
    }
    size_t n = body->len;
    if (!(s = calloc(1, sizeof *s)) || !(s->recs = calloc(n, sizeof *s->recs))) {
        http_reply_error(req, 500, "internal_error", "Out of memory.", NULL);
        goto out;
    }
    s->mt = mt;
    s->req = req;
    s->n = n;
    str_copy(s->iam_id, sizeof s->iam_id, p.iam_id);
    plan_cache pc = {.lookups = malloc(METERING_MAX_RECORDS * sizeof *pc.lookups)};
    int64_t now = time_now_ms();
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = check_record(tx, offering, &body->items[i], &pc, now, &s->recs[i]);
    json_decref(pc.metrics);
    free(pc.lookups);
    if (rc)
        goto store_fail;
    store_rollback(tx);
    tx = NULL;
    s->deferred = http_defer(req);
    if (s->deferred && store_group_submit(mt->group, store_records, stored, s) == 0) {
        s = NULL;
        goto out;
    }
    stored(s, store_write(mt->db, store_records, s)); /* stopping: no group */
    s = NULL;
    goto out;
store_fail:
    http_reply_error(req, 503, "unavailable", "The store failed.", NULL);
out:
    if (tx)
        store_rollback(tx);
    if (s)
        submission_free(s);
}

/* ---------------------------------------------------------------- reading records */

#define LIST_DEFAULT 100
#define LIST_MAX     1000

/* The query filters of GET /v1/usage/records, in the order of their SQL parameters ?3 to ?9. */
static const char *const list_filters[] = {"account_id", "offering_id", "instance", "plan_id",
                                           "month",      "from",        "to"};

static json_t *record_row(store_stmt *q)
{
    const char *consumer = store_col_text(q, 2);
    json_t *mu = json_loads(store_col_text(q, 9), 0, NULL);
    if (!mu)
        return NULL;
    char month[8];
    time_month_of(store_col_int(q, 7), month);
    return json_pack("{s:I, s:s, s:o, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:o, s:I}", "id",
                     (json_int_t)store_col_int(q, 0), "resource_instance_id", store_col_text(q, 1),
                     "consumer_id", consumer && *consumer ? json_string(consumer) : json_null(),
                     "plan_id", store_col_text(q, 3), "region", store_col_text(q, 4), "start",
                     (json_int_t)store_col_int(q, 5), "end", (json_int_t)store_col_int(q, 6),
                     "month", month, "offering_id", store_col_text(q, 8), "account_id",
                     store_col_text(q, 10), "measured_usage", mu, "accepted_at",
                     (json_int_t)store_col_int(q, 11));
}

static bool month_text(const char *m)
{
    return strlen(m) == 7 && isdigit((unsigned char)m[0]) && isdigit((unsigned char)m[1]) &&
           isdigit((unsigned char)m[2]) && isdigit((unsigned char)m[3]) && m[4] == '-' &&
           ((m[5] == '0' && m[6] >= '1' && m[6] <= '9') ||
            (m[5] == '1' && m[6] >= '0' && m[6] <= '2'));
}

/* The first millisecond of the month YYYY-MM (month_text), or of the one after when next. */
static int64_t month_start_ms(const char *m, bool next)
{
    struct tm tm = {.tm_year = atoi(m) - 1900, .tm_mon = atoi(m + 5) - 1 + next, .tm_mday = 1};
    return (int64_t)timegm(&tm) * 1000;
}

/* The accepted records the caller may read: its account's (as a consumer), and those of its
 * offerings (as a provider); the operator's, every record. Ordered by id, in pages. */
static void usage_list(http_req *req, void *ud)
{
    metering *mt = ud;
    iam_principal p;
    if (!iam_authenticate(mt->iam, req, &p))
        return;
    const char *v[ARRAY_LEN(list_filters)];
    for (size_t i = 0; i < ARRAY_LEN(list_filters); i++) {
        v[i] = http_query(req, list_filters[i]);
        if (v[i] && !*v[i]) {
            http_reply_error(req, 400, "invalid_query", "A filter must not be empty.",
                             list_filters[i]);
            return;
        }
    }
    int64_t limit = LIST_DEFAULT, after = 0, from = 0, to = 0;
    const char *ls = http_query(req, "limit"), *start = http_query(req, "start");
    if (ls && (str_to_i64(ls, false, &limit) || limit < 1 || limit > LIST_MAX)) {
        http_reply_error(req, 400, "invalid_query", "'limit' must be 1 to 1000.", "limit");
        return;
    }
    if (start && (str_to_i64(start, false, &after) || after < 0)) {
        http_reply_error(req, 400, "invalid_query", "'start' must be a next_url's start.", "start");
        return;
    }
    if (v[4] && !month_text(v[4])) {
        http_reply_error(req, 400, "invalid_query", "'month' must be YYYY-MM.", "month");
        return;
    }
    bool bad_from = v[5] && str_to_i64(v[5], false, &from);
    bool bad_to = v[6] && str_to_i64(v[6], false, &to);
    if (bad_from || bad_to) {
        http_reply_error(req, 400, "invalid_query",
                         "'from' and 'to' must be milliseconds since the epoch.",
                         bad_from ? "from" : "to");
        return;
    }
    /* Every filter on time is a range of instants: [lo, hi). */
    int64_t lo = v[5] ? from : INT64_MIN, hi = v[6] ? to : INT64_MAX;
    if (v[4]) {
        int64_t m0 = month_start_ms(v[4], 0), m1 = month_start_ms(v[4], 1);
        lo = lo > m0 ? lo : m0;
        hi = hi < m1 ? hi : m1;
    }
    store_tx *tx;
    if (store_begin(mt->db, false, &tx)) {
        http_reply_error(req, 503, "unavailable", "The store is unavailable.", NULL);
        return;
    }
    /* An instance by its guid or its CRN; an unknown one matches nothing. */
    char guid[64] = "";
    store_stmt *q;
    int rc = 0;
    if (v[2]) {
        rc = store_query(tx, "SELECT guid FROM resource_instances WHERE guid = ?1 OR crn = ?1", &q,
                         "s", v[2]);
        if (!rc) {
            snprintf(guid, sizeof guid, "%s",
                     store_step(q) == STORE_ROW ? store_col_text(q, 0) : "-");
            store_done(q);
        }
    }
    json_t *rows = json_array();
    int64_t last = 0;
    bool more = false;
    if (!rc)
        rc = store_query(tx,
                         "SELECT id, instance_id, consumer_id, plan_id, region, start_ms, end_ms,"
                         " instant_ms, offering_id, measured_usage, account_id, accepted_ms"
                         " FROM usage_records_full WHERE id > ?1"
                         " AND (?2 IS NULL OR account_id = ?2"
                         "      OR offering_id IN (SELECT id FROM offerings WHERE account_id = ?2))"
                         " AND (?3 IS NULL OR account_id = ?3) AND (?4 IS NULL OR offering_id = ?4)"
                         " AND (?5 IS NULL OR instance_id = ?5) AND (?6 IS NULL OR plan_id = ?6)"
                         " AND instant_ms >= ?7 AND instant_ms < ?8 ORDER BY id LIMIT ?9",
                         &q, "isssssiii", after, p.operator? NULL : p.account_id, v[0], v[1],
                         v[2] ? guid : NULL, v[3], lo, hi, limit + 1);
    if (!rc) {
        int st;
        while ((st = store_step(q)) == STORE_ROW) {
            if ((int64_t)json_array_size(rows) == limit) {
                more = true;
                break;
            }
            json_t *j = record_row(q);
            if (!j || json_array_append_new(rows, j)) {
                rc = OSB_E_STORE;
                break;
            }
            last = store_col_int(q, 0);
        }
        if (st < 0)
            rc = st;
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        json_decref(rows);
        http_reply_error(req, 503, "unavailable", "The store failed.", NULL);
        return;
    }
    http_filter f[ARRAY_LEN(list_filters)];
    for (size_t i = 0; i < ARRAY_LEN(list_filters); i++)
        f[i] = (http_filter){list_filters[i], v[i]};
    http_reply_page(req, rows, more, "/v1/usage/records", limit, last, f, ARRAY_LEN(f));
}

/* ---------------------------------------------------------------- life cycle */

int metering_open(store *db, iam *m, metering **out)
{
    metering *mt = calloc(1, sizeof *mt);
    if (!mt)
        return OSB_E_NOMEM;
    mt->db = db;
    mt->iam = m;
    int rc = store_group_start(db, &mt->group);
    if (rc) {
        free(mt);
        return rc;
    }
    *out = mt;
    return 0;
}

void metering_routes(metering *mt, http_router *r)
{
    if (http_route(r, HTTP_POST, "/v4/metering/resources/:id/usage", HTTP_STYLE_PLATFORM,
                   usage_submit, mt) ||
        http_route(r, HTTP_GET, "/v1/usage/records", HTTP_STYLE_PLATFORM, usage_list, mt))
        log_error("metering: cannot register its routes");
}

void metering_close(metering *mt)
{
    if (!mt)
        return;
    store_group_stop(mt->group);
    free(mt);
}
