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
#include <strings.h>
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

/* Copies the JSON text, turning every number into a string of its text behind the mark, so
 * that jansson keeps what was written ("1.10", "2e3") instead of a binary double. */
json_t *metering_parse(const char *text, size_t n, char *why, size_t whylen)
{
    buf out;
    buf_init(&out, n * 9 + 16); /* at worst every byte a one-digit number: 9 bytes each */
    bool in_string = false;
    size_t run = 0; /* the start of the text not copied yet */
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char ch = text[i];
        if (in_string) {
            if (ch == '\\' && i + 1 < n) {
                /* the mark itself, escaped, would be taken for a number */
                if (text[i + 1] == 'u' && i + 5 < n && strncasecmp(text + i + 2, "0001", 4) == 0) {
                    snprintf(why, whylen, "control characters are not allowed in strings");
                    buf_free(&out);
                    return NULL;
                }
                i++;
            } else if (ch == '"') {
                in_string = false;
            }
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t j = i;
            while (j < n && (isdigit((unsigned char)text[j]) || text[j] == '-' || text[j] == '+' ||
                             text[j] == '.' || text[j] == 'e' || text[j] == 'E'))
                j++;
            rc = buf_append(&out, text + run, i - run);
            if (!rc)
                rc = buf_printf(&out, "\"\\u0001%.*s\"", (int)(j - i), text + i);
            run = j;
            i = j - 1;
        }
    }
    if (!rc)
        rc = buf_append(&out, text + run, n - run);
    if (rc) {
        snprintf(why, whylen, "the body is too large");
        buf_free(&out);
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(out.data ? out.data : "", out.len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        snprintf(why, whylen, "the body is not valid JSON: %s", err.text);
    buf_free(&out);
    return j;
}

/* A marked number's text, or NULL when j is not a number. */
static const char *num_text(const json_t *j)
{
    const char *s = json_string_value(j);
    return s && s[0] == METERING_NUMBER_MARK ? s + 1 : NULL;
}

/* A string the client wrote as a string (not a number). */
static const char *str_value(const json_t *j)
{
    const char *s = json_string_value(j);
    return s && s[0] != METERING_NUMBER_MARK ? s : NULL;
}

/* A JSON integer in int64: -?(0|[1-9][0-9]*). */
static bool int_value(const json_t *j, int64_t *out)
{
    const char *s = num_text(j);
    if (!s)
        return false;
    const char *p = s + (*s == '-');
    if (!*p || (p[0] == '0' && p[1]) || strspn(p, "0123456789") != strlen(p))
        return false;
    return str_to_i64(s, true, out) == 0;
}

/* A quantity: a JSON number (exponents allowed) or a string -?(0|[1-9][0-9]*)(\.[0-9]+)?,
 * with at most 15 integer and 9 fractional digits once trailing zeros are dropped. */
static bool quantity_value(const json_t *j, dec *q)
{
    const char *s = num_text(j);
    if (!s) {
        s = str_value(j);
        if (!s)
            return false;
        const char *p = s + (*s == '-');
        size_t ni = strspn(p, "0123456789");
        if (ni == 0 || (p[0] == '0' && ni > 1))
            return false;
        if (p[ni]) {
            if (p[ni] != '.' || !p[ni + 1] ||
                strspn(p + ni + 1, "0123456789") != strlen(p + ni + 1))
                return false;
        }
    }
    if (dec_parse(q, s, strlen(s)))
        return false;
    char *canon = dec_to_string(q);
    if (!canon)
        return false;
    const char *p = canon + (*canon == '-');
    const char *dot = strchr(p, '.');
    size_t ni = dot ? (size_t)(dot - p) : strlen(p);
    size_t nf = dot ? strlen(dot + 1) : 0;
    free(canon);
    return ni <= MAX_QUANTITY_INT_DIGITS && nf <= MAX_QUANTITY_FRAC_DIGITS;
}

static void month_of(int64_t ms, char out[8])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 8, "%04u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u);
}

/* ---------------------------------------------------------------- one record */

typedef struct {
    int status; /* 0 while it may still be accepted; then 201, 400, 404 or 409 */
    char code[40], message[200];
    char instance[37], consumer[MAX_CONSUMER_ID + 1], plan[72], region[40], offering[72];
    char account[64], first_month[8], month[8];
    int64_t start, end, instant;
    char *measures; /* canonical JSON */
} record;

static void refuse(record *r, int status, const char *code, const char *fmt, ...) PRINTF_LIKE(4, 5);
static void refuse(record *r, int status, const char *code, const char *fmt, ...)
{
    r->status = status;
    snprintf(r->code, sizeof r->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

/* The plan's metrics, cached for the request: the plan of the last record checked. */
typedef struct {
    char plan[72];
    json_t *metrics;
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
    snprintf(pc->plan, sizeof pc->plan, "%s", plan);
    return 0;
}

/* Checks a record in the spec's order (404, then each 400); leaves status 0 when it passed. */
static int check_record(store_tx *tx, const char *offering, const json_t *j, plan_cache *pc,
                        int64_t now, record *r)
{
    const char *iid =
        json_is_object(j) ? str_value(json_object_get(j, "resource_instance_id")) : NULL;
    if (!json_is_object(j)) {
        refuse(r, 400, "invalid_record", "A usage record is a JSON object.");
        return 0;
    }
    if (!iid || !*iid || strlen(iid) > 600) {
        refuse(r, 400, "invalid_resource_instance_id",
               "'resource_instance_id' must name an instance (its id or CRN).");
        return 0;
    }
    /* The instance and its plan at the record's instant in one query: the times are read
     * first, but refused only after the instance is known, in the spec's order. */
    int64_t start = 0, end = 0;
    bool times = int_value(json_object_get(j, "start"), &start) &&
                 int_value(json_object_get(j, "end"), &end) && start >= 0 && end >= start;
    int64_t instant = !times ? 0 : end > start ? end - 1 : end;
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT i.guid, i.offering_id, i.region, i.account_id, i.deleted_ms,"
                         " (SELECT h.plan_id FROM instance_plan_history h WHERE h.instance_id ="
                         " i.guid AND h.from_ms <= ?2 ORDER BY h.from_ms DESC LIMIT 1)"
                         " FROM resource_instances i WHERE i.guid = ?1 OR i.crn = ?1",
                         &q, "si", iid, instant);
    if (rc)
        return rc;
    int64_t deleted_ms = -1;
    char inst_region[40] = "", at_plan[72] = "";
    bool found = false;
    if (store_step(q) == STORE_ROW && str_eq(store_col_text(q, 1), offering)) {
        found = true;
        snprintf(r->instance, sizeof r->instance, "%s", store_col_text(q, 0));
        snprintf(inst_region, sizeof inst_region, "%s", store_col_text(q, 2));
        snprintf(r->account, sizeof r->account, "%s", store_col_text(q, 3));
        if (!store_col_null(q, 4))
            deleted_ms = store_col_int(q, 4);
        if (!store_col_null(q, 5))
            snprintf(at_plan, sizeof at_plan, "%s", store_col_text(q, 5));
    }
    store_done(q);
    if (!found) {
        refuse(r, 404, "not_found", "No such instance of this offering.");
        return 0;
    }
    snprintf(r->offering, sizeof r->offering, "%s", offering);

    if (!int_value(json_object_get(j, "start"), &r->start) || r->start < 0) {
        refuse(r, 400, "invalid_start", "'start' must be a time: ms since the epoch, an integer.");
        return 0;
    }
    if (!int_value(json_object_get(j, "end"), &r->end) || r->end < r->start) {
        refuse(r, 400, "invalid_end", "'end' must be an integer time not before 'start'.");
        return 0;
    }
    if (r->end > now + METERING_FUTURE_MS) {
        refuse(r, 400, "invalid_end", "'end' is more than 5 minutes in the future.");
        return 0;
    }
    r->instant = r->end > r->start ? r->end - 1 : r->end;
    month_of(r->start, r->first_month);
    month_of(r->instant, r->month);

    const char *plan = str_value(json_object_get(j, "plan_id"));
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
    snprintf(r->plan, sizeof r->plan, "%s", plan);

    const json_t *mu = json_object_get(j, "measured_usage");
    if (!json_is_array(mu) || json_array_size(mu) == 0) {
        refuse(r, 400, "invalid_measured_usage", "'measured_usage' must be a non-empty array.");
        return 0;
    }
    if ((rc = load_metrics(tx, pc, plan)))
        return rc;
    json_t *canon = json_array();
    size_t i;
    const json_t *m;
    json_array_foreach(mu, i, m)
    {
        const char *measure = json_is_object(m) ? str_value(json_object_get(m, "measure")) : NULL;
        const json_t *metric = measure ? catalog_metric(pc->metrics, measure) : NULL;
        if (!metric) {
            refuse(r, 400, "invalid_measured_usage",
                   "measured_usage[%zu]: '%.60s' is not a measure of the plan.", i,
                   measure ? measure : "");
            break;
        }
        size_t k;
        const json_t *seen;
        bool twice = false;
        json_array_foreach(canon, k, seen)
        {
            twice |= str_eq(json_string_value(json_object_get(seen, "measure")), measure);
        }
        if (twice) {
            refuse(r, 400, "invalid_measured_usage",
                   "measured_usage[%zu]: '%.60s' appears twice in the record.", i, measure);
            break;
        }
        dec qv;
        dec_init(&qv);
        if (!quantity_value(json_object_get(m, "quantity"), &qv)) {
            dec_clear(&qv);
            refuse(r, 400, "invalid_quantity",
                   "measured_usage[%zu].quantity must be a decimal of at most 15 integer and 9 "
                   "fractional digits.",
                   i);
            break;
        }
        if (dec_sign(&qv) < 0 && !json_is_true(json_object_get(metric, "allow_negative"))) {
            dec_clear(&qv);
            refuse(r, 400, "invalid_quantity",
                   "measured_usage[%zu].quantity: '%.60s' does not allow negative quantities.", i,
                   measure);
            break;
        }
        char *text = dec_to_string(&qv);
        dec_clear(&qv);
        json_array_append_new(
            canon, json_pack("{s:s,s:s}", "measure", measure, "quantity", text ? text : "0"));
        free(text);
    }
    if (r->status) {
        json_decref(canon);
        return 0;
    }

    const json_t *cj = json_object_get(j, "consumer_id");
    if (cj) {
        const char *cid = str_value(cj);
        if (!cid || !*cid || strlen(cid) > MAX_CONSUMER_ID) {
            json_decref(canon);
            refuse(r, 400, "invalid_consumer_id",
                   "'consumer_id', when present, must be text of 1 to 255 characters.");
            return 0;
        }
        snprintf(r->consumer, sizeof r->consumer, "%s", cid);
    }
    const json_t *rj = json_object_get(j, "region");
    if (rj) {
        const char *region = str_value(rj);
        bool deployed = false;
        if (region && strlen(region) < sizeof r->region) {
            if ((rc = store_query(tx, "SELECT 1 FROM deployments WHERE plan_id = ? AND region = ?",
                                  &q, "ss", plan, region))) {
                json_decref(canon);
                return rc;
            }
            deployed = store_step(q) == STORE_ROW;
            store_done(q);
        }
        if (!deployed) {
            json_decref(canon);
            refuse(r, 400, "invalid_region", "'region' must be a region the plan is deployed in.");
            return 0;
        }
        snprintf(r->region, sizeof r->region, "%s", region);
    } else {
        snprintf(r->region, sizeof r->region, "%s", inst_region);
    }
    r->measures = json_dumps(canon, JSON_COMPACT);
    json_decref(canon);
    return r->measures ? 0 : OSB_E_NOMEM;
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

/* In the group commit: the months, the signature, the row. */
static int store_records(store_tx *tx, void *ud)
{
    submission *s = ud;
    int64_t now = time_now_ms();
    bool evidence = false;
    /* The closed months a record of this unit may overlap, read once: from the earliest
     * first month on, in order. */
    const char *earliest = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (!s->recs[i].status && (!earliest || strcmp(s->recs[i].first_month, earliest) < 0))
            earliest = s->recs[i].first_month;
    char(*closed)[8] = NULL;
    size_t nclosed = 0, cap = 0;
    store_stmt *q;
    int rc = 0;
    if (earliest) {
        if ((rc = store_query(tx,
                              "SELECT month FROM billing_periods WHERE state = 'closed' AND"
                              " month >= ? ORDER BY month",
                              &q, "s", earliest)))
            return rc;
        int st;
        while ((st = store_step(q)) == STORE_ROW) {
            if (nclosed == cap) {
                void *p = realloc(closed, (cap = cap ? 2 * cap : 16) * sizeof *closed);
                if (!p) {
                    st = OSB_E_NOMEM;
                    break;
                }
                closed = p;
            }
            snprintf(closed[nclosed++], sizeof closed[0], "%s", store_col_text(q, 0));
        }
        store_done(q);
        if (st < 0) {
            free(closed);
            return st;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
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
        if ((rc = store_exec(tx,
                             "INSERT INTO usage_records (instance_id, consumer_id, plan_id,"
                             " region, start_ms, end_ms, instant_ms, month, offering_id,"
                             " account_id, measured_usage, submitted_by, accepted_ms) VALUES"
                             " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id,"
                             " consumer_id, plan_id, region, start_ms, end_ms) DO NOTHING",
                             "ssssiiisssssi", r->instance, r->consumer, r->plan, r->region,
                             r->start, r->end, r->instant, r->month, r->offering, r->account,
                             r->measures, s->iam_id, now)))
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
    json_t *res = json_array();
    for (size_t i = 0; i < s->n; i++) {
        record *r = &s->recs[i];
        json_t *e = json_pack("{s:i}", "status", r->status);
        if (r->status != 201) {
            json_object_set_new(e, "code", json_string(r->code));
            json_object_set_new(e, "message", json_string(r->message));
        }
        json_array_append_new(res, e);
    }
    json_t *body = json_pack("{s:o}", "resources", res);
    http_reply_json(s->req, 202, body);
    json_decref(body);
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
    json_t *body = NULL;
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
        snprintf(owner, sizeof owner, "%s", store_col_text(q, 0));
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
    const char *ct = http_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        http_reply_error(req, 415, "unsupported_media_type", "The body must be application/json.",
                         NULL);
        goto out;
    }
    char why[200];
    body = metering_parse(req->body.data ? req->body.data : "", req->body.len, why, sizeof why);
    if (!body) {
        http_reply_error(req, 400, "invalid_json", why, NULL);
        goto out;
    }
    size_t n = json_array_size(body);
    if (!json_is_array(body) || n < 1 || n > METERING_MAX_RECORDS) {
        http_reply_error(req, 400, "invalid_body",
                         "The body must be a JSON array of 1 to 100 usage records.", NULL);
        goto out;
    }
    if (!(s = calloc(1, sizeof *s)) || !(s->recs = calloc(n, sizeof *s->recs))) {
        http_reply_error(req, 500, "internal_error", "Out of memory.", NULL);
        goto out;
    }
    s->mt = mt;
    s->req = req;
    s->n = n;
    snprintf(s->iam_id, sizeof s->iam_id, "%s", p.iam_id);
    plan_cache pc = {0};
    int64_t now = time_now_ms();
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = check_record(tx, offering, json_array_get(body, i), &pc, now, &s->recs[i]);
    json_decref(pc.metrics);
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
    json_decref(body);
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
    json_t *mu = json_loads(store_col_text(q, 10), 0, NULL);
    if (!mu)
        return NULL;
    return json_pack("{s:I, s:s, s:o, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:o, s:I}", "id",
                     (json_int_t)store_col_int(q, 0), "resource_instance_id", store_col_text(q, 1),
                     "consumer_id", consumer && *consumer ? json_string(consumer) : json_null(),
                     "plan_id", store_col_text(q, 3), "region", store_col_text(q, 4), "start",
                     (json_int_t)store_col_int(q, 5), "end", (json_int_t)store_col_int(q, 6),
                     "month", store_col_text(q, 7), "offering_id", store_col_text(q, 8),
                     "account_id", store_col_text(q, 9), "measured_usage", mu, "accepted_at",
                     (json_int_t)store_col_int(q, 11));
}

static bool month_text(const char *m)
{
    return strlen(m) == 7 && isdigit((unsigned char)m[0]) && isdigit((unsigned char)m[1]) &&
           isdigit((unsigned char)m[2]) && isdigit((unsigned char)m[3]) && m[4] == '-' &&
           ((m[5] == '0' && m[6] >= '1' && m[6] <= '9') ||
            (m[5] == '1' && m[6] >= '0' && m[6] <= '2'));
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
        rc = store_query(
            tx,
            "SELECT id, instance_id, consumer_id, plan_id, region, start_ms, end_ms, month,"
            " offering_id, account_id, measured_usage, accepted_ms FROM usage_records"
            " WHERE id > ?1"
            " AND (?2 IS NULL OR account_id = ?2"
            "      OR offering_id IN (SELECT id FROM offerings WHERE account_id = ?2))"
            " AND (?3 IS NULL OR account_id = ?3) AND (?4 IS NULL OR offering_id = ?4)"
            " AND (?5 IS NULL OR instance_id = ?5) AND (?6 IS NULL OR plan_id = ?6)"
            " AND (?7 IS NULL OR month = ?7) AND (?8 IS NULL OR instant_ms >= ?8)"
            " AND (?9 IS NULL OR instant_ms < ?9) ORDER BY id LIMIT ?10",
            &q, "issssssiii", after, p.operator? NULL : p.account_id, v[0], v[1],
            v[2] ? guid : NULL, v[3], v[4], v[5] ? from : (int64_t)-1, v[6] ? to : INT64_MAX,
            limit + 1);
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
