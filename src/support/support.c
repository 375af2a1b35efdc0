/* support API: opening a case (about an instance of the caller's account, or about the
 * platform), reading cases and their updates (a consumer its account's, a provider those
 * routed to it, the operator every one), answering and changing a case's status, and the
 * offering's support webhook. */
#include "support/support_int.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SUBJECT     200
#define MAX_DESCRIPTION 20000
#define MAX_COMMENT     10000
#define MAX_LIMIT       100

/* ---------------------------------------------------------------- shapes */

#define CASE_COLS                                                                                  \
    "c.id, c.number, c.account_id, c.opened_by, c.instance_id, c.offering_id,"                     \
    " c.provider_account_id, c.severity, c.subject, c.description, c.status, c.created_ms,"        \
    " c.updated_ms, c.first_response_due_ms, c.first_response_ms"

/* A case row (CASE_COLS) as JSON; now decides whether an unanswered case missed its target. */
static json_t *case_row(store_stmt *q, int64_t now)
{
    bool due = !store_col_null(q, 13), answered = !store_col_null(q, 14);
    int64_t due_ms = store_col_int(q, 13), at = store_col_int(q, 14);
    bool missed = due && (answered ? at > due_ms : now > due_ms);
    char created[32], updated[32];
    time_format_rfc3339(store_col_int(q, 11), created);
    time_format_rfc3339(store_col_int(q, 12), updated);
    return json_pack("{s:s, s:I, s:s, s:s, s:o, s:o, s:s, s:o, s:I, s:s, s:s, s:s, s:s, s:s,"
                     " s:{s:o, s:o, s:b}}",
                     "id", store_col_text(q, 0), "number", (json_int_t)store_col_int(q, 1),
                     "account_id", store_col_text(q, 2), "opened_by", store_col_text(q, 3),
                     "instance_id", store_col_json_text(q, 4), "offering_id", store_col_json_text(q, 5),
                     "routed_to", store_col_null(q, 6) ? "operator" : "provider",
                     "provider_account_id", store_col_json_text(q, 6), "severity",
                     (json_int_t)store_col_int(q, 7), "subject", store_col_text(q, 8),
                     "description", store_col_text(q, 9), "status", store_col_text(q, 10),
                     "created_at", created, "updated_at", updated, "first_response", "due_at",
                     store_col_json_time(q, 13), "responded_at", store_col_json_time(q, 14), "missed", missed);
}

#define UPDATE_COLS                                                                                \
    "seq, author, author_account_id, side, comment, status_from, status_to, created_ms"

json_t *support_update_json(store_stmt *q, int col)
{
    char at[32];
    time_format_rfc3339(store_col_int(q, col + 7), at);
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:s}", "seq", (json_int_t)store_col_int(q, col),
        "author", store_col_text(q, col + 1), "author_account_id", store_col_text(q, col + 2),
        "side", store_col_text(q, col + 3), "comment", store_col_json_text(q, col + 4), "status_from",
        store_col_json_text(q, col + 5), "status_to", store_col_json_text(q, col + 6), "created_at", at);
}

int support_case_json(store_tx *tx, const char *case_id, json_t **out)
{
    store_stmt *q;
    *out = NULL;
    int rc = store_query(tx, "SELECT " CASE_COLS " FROM support_cases c WHERE c.id = ?", &q, "s",
                         case_id);
    if (rc)
        return rc;
    int st = store_step(q);
    if (st == STORE_ROW && !(*out = case_row(q, time_now_ms())))
        st = OSB_E_NOMEM;
    store_done(q);
    if (st != STORE_ROW)
        return st < 0 ? st : OSB_E_NOTFOUND;
    /* Where the provider's own support is, from the offering's public support model. */
    const char *offering = json_string_value(json_object_get(*out, "offering_id"));
    if (offering &&
        !(rc = store_query(tx, "SELECT doc FROM offerings WHERE id = ?", &q, "s", offering))) {
        if (store_step(q) == STORE_ROW) {
            json_t *d = json_loads(store_col_text(q, 0), 0, NULL);
            const json_t *sm = json_object_get(d, "support");
            json_t *ps = json_object();
            static const char *const keep[] = {"url", "email", "hours"};
            for (size_t i = 0; i < ARRAY_LEN(keep); i++) {
                const json_t *v = json_object_get(sm, keep[i]);
                json_object_set_new(ps, keep[i],
                                    json_is_string(v) ? json_copy((json_t *)v) : json_null());
            }
            json_object_set_new(*out, "provider_support", ps);
            json_decref(d);
        }
        store_done(q);
    }
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static void reply_store_error(http_req *req)
{
    http_reply_error(req, 503, "unavailable", "The store failed; try again.", NULL);
}

/* ---------------------------------------------------------------- who sees a case */

typedef struct {
    char id[37], account[64], provider[64], offering[64], service[64], status[24];
    bool exists;
} case_ref;

static int case_get(store_tx *tx, const char *id, case_ref *c)
{
    memset(c, 0, sizeof *c);
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT c.id, c.account_id, c.provider_account_id, c.offering_id,"
                         " c.status, o.name FROM support_cases c LEFT JOIN offerings o"
                         " ON o.id = c.offering_id WHERE c.id = ?",
                         &q, "s", id);
    if (rc)
        return rc;
    int st = store_step(q);
    if (st == STORE_ROW) {
        c->exists = true;
        str_copy(c->id, sizeof c->id, store_col_text(q, 0));
        str_copy(c->account, sizeof c->account, store_col_text(q, 1));
        str_copy(c->provider, sizeof c->provider, store_col_text(q, 2));
        str_copy(c->offering, sizeof c->offering, store_col_text(q, 3));
        str_copy(c->status, sizeof c->status, store_col_text(q, 4));
        str_copy(c->service, sizeof c->service, store_col_text(q, 5));
    }
    store_done(q);
    return st < 0 ? st : 0;
}

/* The side p speaks for on case c, or NULL when the case is none of its business. */
static const char *side_of(const iam_principal *p, const case_ref *c)
{
    if (p->operator)
        return "operator";
    if (c->provider[0] && str_eq(p->account_id, c->provider))
        return "provider";
    if (str_eq(p->account_id, c->account))
        return "consumer";
    return NULL;
}

/* Whether p's roles allow action (support.case.read, support.case.update) on case c from
 * side: the consumer's account's policies, the provider's (narrowed to the offering's
 * service, as its service ID's policy is), or the operator's. */
static bool may(support *s, const iam_principal *p, const case_ref *c, const char *side,
                const char *action)
{
    bool provider = str_eq(side, "provider");
    iam_resource r = {.account_id = provider ? c->provider : c->account,
                      .service_name = provider && c->service[0] ? c->service : NULL,
                      .resource_type = "support-case",
                      .resource = c->id};
    return iam_decide(s->iam, p, action, &r);
}

/* The same on the caller's own account, for listing and opening cases. */
static bool may_own(support *s, const iam_principal *p, const char *action)
{
    iam_resource r = {.account_id = p->account_id, .resource_type = "support-case"};
    return iam_decide(s->iam, p, action, &r);
}

/* ---------------------------------------------------------------- checks */

/* A text field of 1 to max characters with no control characters but line breaks and tabs;
 * false (400 naming it) otherwise. *out NULL when absent and optional. */
static bool text_field(http_req *req, const json_t *body, const char *name, size_t max,
                       bool required, const char **out)
{
    const json_t *v = json_object_get(body, name);
    *out = NULL;
    if (!v && !required)
        return true;
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    bool ok = s && n >= 1 && n <= max && strlen(s) == n;
    for (const char *c = s; ok && *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\n' && *c != '\t' && *c != '\r')
            ok = false;
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof msg, "'%s' is %stext of 1 to %zu characters (no control characters).",
                 name, required ? "required: " : "", max);
        http_reply_error(req, 400, "invalid_field", msg, name);
        return false;
    }
    *out = s;
    return true;
}

static bool only_fields(http_req *req, const json_t *body, const char *const *allowed)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = str_eq(k, *a);
        if (!known) {
            char msg[200];
            snprintf(msg, sizeof msg, "'%.120s' is not a field of this request.", k);
            http_reply_error(req, 400, "unknown_field", msg, k);
            return false;
        }
    }
    return true;
}

static json_t *object_body(http_req *req)
{
    json_t *body = http_json_body(req);
    if (body && !json_is_object(body)) {
        json_decref(body);
        http_reply_error(req, 400, "invalid_body", "The body must be a JSON object.", NULL);
        return NULL;
    }
    return body;
}

/* ---------------------------------------------------------------- opening a case */

/* The first-response target of severity in the offering's support model, in minutes; 0 when
 * it has none. */
static int64_t target_minutes(const char *offering_doc, int severity)
{
    json_t *d = offering_doc ? json_loads(offering_doc, 0, NULL) : NULL;
    char k[4];
    snprintf(k, sizeof k, "%d", severity);
    const json_t *t =
        json_object_get(json_object_get(json_object_get(d, "support"), "severity_targets"), k);
    int64_t m = json_is_integer(t) && json_integer_value(t) > 0 ? json_integer_value(t) : 0;
    json_decref(d);
    return m;
}

typedef struct {
    support *s;
    const iam_principal *p;
    const char *instance, *subject, *description;
    int severity;
    int64_t now;
    /* out */
    char id[37];
    bool no_instance, delivering;
} open_work;

static int open_case(store_tx *tx, void *ud)
{
    open_work *w = ud;
    char guid[64] = "", offering[64] = "", provider[64] = "";
    int64_t target = 0;
    store_stmt *q;
    int rc, st;
    if (w->instance) {
        rc = store_query(
            tx,
            "SELECT i.guid, i.offering_id, o.account_id, o.doc FROM resource_instances i"
            " JOIN offerings o ON o.id = i.offering_id"
            " WHERE (i.guid = ?1 OR i.crn = ?1) AND i.account_id = ?2",
            &q, "ss", w->instance, w->p->account_id);
        if (rc)
            return rc;
        if ((st = store_step(q)) == STORE_ROW) {
            str_copy(guid, sizeof guid, store_col_text(q, 0));
            str_copy(offering, sizeof offering, store_col_text(q, 1));
            str_copy(provider, sizeof provider, store_col_text(q, 2));
            target = target_minutes(store_col_text(q, 3), w->severity);
        }
        store_done(q);
        if (st < 0)
            return st;
        if (!guid[0]) {
            w->no_instance = true;
            return OSB_E_NOTFOUND;
        }
    }
    int64_t number = 1;
    if ((rc = store_query(tx, "SELECT coalesce(max(number), 0) + 1 FROM support_cases", &q, "")))
        return rc;
    if ((st = store_step(q)) == STORE_ROW)
        number = store_col_int(q, 0);
    store_done(q);
    if (st < 0)
        return st;
    uuid_v4(w->id);
    rc = store_exec(tx,
                    "INSERT INTO support_cases (id, number, account_id, opened_by, instance_id,"
                    " offering_id, provider_account_id, severity, subject, description, status,"
                    " created_ms, updated_ms, first_response_due_ms) VALUES (?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?, ?, 'new', ?, ?, CASE WHEN ? > 0 THEN ? END)",
                    "sisssssdssiiii", w->id, number, w->p->account_id, w->p->iam_id,
                    guid[0] ? guid : NULL, offering[0] ? offering : NULL,
                    provider[0] ? provider : NULL, w->severity, w->subject, w->description, w->now,
                    w->now, target, w->now + target * 60000);
    if (!rc)
        rc = store_exec(tx,
                        "INSERT INTO support_updates (case_id, seq, author, author_account_id,"
                        " side, comment, status_to, created_ms) VALUES (?, 1, ?, ?, 'consumer',"
                        " ?, 'new', ?)",
                        "ssssi", w->id, w->p->iam_id, w->p->account_id, w->description, w->now);
    if (!rc && offering[0]) {
        rc = support_queue_delivery(tx, w->id, 1, "case.created", offering, w->now);
        w->delivering = true;
    }
    return rc;
}

/* POST /v1/support/cases {"instance_id"?, "severity", "subject", "description"} */
static void cases_create(http_req *req, void *ud)
{
    support *s = ud;
    iam_principal p;
    if (!iam_authenticate(s->iam, req, &p))
        return;
    if (!may_own(s, &p, "support.case.create")) {
        http_reply_error(req, 403, "forbidden", "Not allowed to support.case.create.", NULL);
        return;
    }
    json_t *body = object_body(req);
    if (!body)
        return;
    static const char *const fields[] = {"instance_id", "severity", "subject", "description", NULL};
    open_work w = {.s = s, .p = &p, .now = time_now_ms()};
    const json_t *sev = json_object_get(body, "severity");
    bool ok = only_fields(req, body, fields);
    if (ok &&
        (!json_is_integer(sev) || json_integer_value(sev) < 1 || json_integer_value(sev) > 4)) {
        http_reply_error(req, 400, "invalid_field",
                         "'severity' is required: 1 (critical) to 4 (a question).", "severity");
        ok = false;
    }
    ok = ok && text_field(req, body, "instance_id", 200, false, &w.instance) &&
         text_field(req, body, "subject", MAX_SUBJECT, true, &w.subject) &&
         text_field(req, body, "description", MAX_DESCRIPTION, true, &w.description);
    if (!ok) {
        json_decref(body);
        return;
    }
    w.severity = (int)json_integer_value(sev);
    int rc = store_write(s->db, open_case, &w);
    json_decref(body);
    if (rc == OSB_E_NOTFOUND && w.no_instance) {
        http_reply_error(req, 404, "not_found", "Your account has no such instance.",
                         "instance_id");
        return;
    }
    if (rc) {
        reply_store_error(req);
        return;
    }
    if (w.delivering)
        support_deliver_poke(s);
    store_tx *tx = NULL;
    json_t *j = NULL;
    if (!store_begin(s->db, false, &tx)) {
        rc = support_case_json(tx, w.id, &j);
        store_rollback(tx);
    }
    if (!j) {
        reply_store_error(req);
        return;
    }
    log_info("support: case %s opened by %s (severity %d), routed to %s", w.id, p.iam_id,
             w.severity, json_string_value(json_object_get(j, "routed_to")));
    http_reply_json(req, 201, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- reading */

static const char *const STATUSES[] = {"new",      "in_progress", "waiting_on_client",
                                       "resolved", "closed",      NULL};

static bool is_status(const char *s)
{
    for (const char *const *v = STATUSES; *v; v++)
        if (str_eq(s, *v))
            return true;
    return false;
}

/* GET /v1/support/cases?status=&offering_id=&instance_id=&first_response=missed&limit=&start= */
static void cases_list(http_req *req, void *ud)
{
    support *s = ud;
    iam_principal p;
    if (!iam_authenticate(s->iam, req, &p))
        return;
    if (!may_own(s, &p, "support.case.list")) {
        http_reply_error(req, 403, "forbidden", "Not allowed to support.case.list.", NULL);
        return;
    }
    const char *status = http_query(req, "status"), *offering = http_query(req, "offering_id");
    const char *instance = http_query(req, "instance_id"), *fr = http_query(req, "first_response");
    const char *account = http_query(req, "account_id");
    const char *ls = http_query(req, "limit"), *start = http_query(req, "start");
    int64_t limit = MAX_LIMIT, after = 0;
    if (status && !is_status(status)) {
        http_reply_error(req, 400, "invalid_query",
                         "'status' is new, in_progress, waiting_on_client, resolved or closed.",
                         "status");
        return;
    }
    if (fr && !str_eq(fr, "missed")) {
        http_reply_error(req, 400, "invalid_query", "'first_response' filters only 'missed'.",
                         "first_response");
        return;
    }
    if ((ls && (str_to_i64(ls, false, &limit) || limit < 1 || limit > MAX_LIMIT)) ||
        (start && (str_to_i64(start, false, &after) || after < 0))) {
        http_reply_error(req, 400, "invalid_query", "'limit' is 1 to 100; 'start' a next_url's.",
                         ls ? "limit" : "start");
        return;
    }
    if (account && !p.operator&& !str_eq(account, p.account_id)) {
        http_reply_error(req, 403, "forbidden", "An account reads only its own cases.",
                         "account_id");
        return;
    }
    store_tx *tx = NULL;
    if (store_begin(s->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    int64_t now = time_now_ms();
    /* Who sees what: the operator every case; an account the cases it opened and the cases
     * routed to it as a provider. */
    const char *me = p.operator? NULL : p.account_id;
    store_stmt *q;
    json_t *rows = json_array();
    bool more = false;
    int64_t last = 0;
    int rc = store_query(
        tx,
        "SELECT " CASE_COLS " FROM support_cases c WHERE c.number > ?1"
        " AND (?2 IS NULL OR c.account_id = ?2 OR c.provider_account_id = ?2)"
        " AND (?3 IS NULL OR c.status = ?3) AND (?4 IS NULL OR c.offering_id = ?4)"
        " AND (?5 IS NULL OR c.instance_id = ?5) AND (?6 IS NULL OR c.account_id = ?6)"
        " AND (?7 IS NULL OR (c.first_response_due_ms IS NOT NULL AND"
        "  coalesce(c.first_response_ms, ?8) > c.first_response_due_ms))"
        " ORDER BY c.number LIMIT ?9",
        &q, "issssssii", after, me, status, offering, instance, account, fr, now, limit + 1);
    if (!rc) {
        int st;
        while ((st = store_step(q)) == STORE_ROW) {
            if ((int64_t)json_array_size(rows) == limit) {
                more = true;
                break;
            }
            json_array_append_new(rows, case_row(q, now));
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
    http_filter f[] = {{"status", status},
                       {"offering_id", offering},
                       {"instance_id", instance},
                       {"account_id", account},
                       {"first_response", fr}};
    http_reply_page(req, rows, more, "/v1/support/cases", limit, last, f, ARRAY_LEN(f));
}

/* The case's updates, and for its provider and the operator its deliveries. */
static int case_details(store_tx *tx, json_t *j, const char *id, bool deliveries)
{
    store_stmt *q;
    json_t *ups = json_array();
    json_object_set_new(j, "updates", ups);
    int rc = store_query(tx,
                         "SELECT " UPDATE_COLS " FROM support_updates WHERE case_id = ?"
                         " ORDER BY seq",
                         &q, "s", id);
    int st = 0;
    while (!rc && (st = store_step(q)) == STORE_ROW)
        json_array_append_new(ups, support_update_json(q, 0));
    if (!rc)
        store_done(q);
    if (rc || st < 0 || !deliveries)
        return rc ? rc : st < 0 ? st : 0;
    json_t *ds = json_array();
    json_object_set_new(j, "deliveries", ds);
    rc = store_query(tx,
                     "SELECT d.id, d.seq, d.event, d.state, d.attempts, d.next_attempt_ms,"
                     " d.delivered_ms, a.status, a.error, a.at_ms FROM support_deliveries d"
                     " LEFT JOIN support_delivery_attempts a ON a.delivery_id = d.id AND"
                     " a.attempt = d.attempts WHERE d.case_id = ? ORDER BY d.seq",
                     &q, "s", id);
    while (!rc && (st = store_step(q)) == STORE_ROW) {
        bool pending = str_eq(store_col_text(q, 3), "pending");
        json_t *lastj =
            store_col_null(q, 9)
                ? json_null()
                : json_pack("{s:o, s:o, s:o}", "status",
                            store_col_null(q, 7) ? json_null() : json_integer(store_col_int(q, 7)),
                            "error", store_col_json_text(q, 8), "at", store_col_json_time(q, 9));
        json_array_append_new(
            ds,
            json_pack("{s:s, s:I, s:s, s:s, s:I, s:o, s:o, s:o}", "id", store_col_text(q, 0), "seq",
                      (json_int_t)store_col_int(q, 1), "event", store_col_text(q, 2), "state",
                      store_col_text(q, 3), "attempts", (json_int_t)store_col_int(q, 4),
                      "next_attempt_at", pending ? store_col_json_time(q, 5) : json_null(), "delivered_at",
                      store_col_json_time(q, 6), "last_attempt", lastj));
    }
    if (!rc)
        store_done(q);
    return rc ? rc : st < 0 ? st : 0;
}

/* GET /v1/support/cases/{id}: the case, its updates, and (for its provider and the operator)
 * its deliveries to the webhook. */
static void cases_show(http_req *req, void *ud)
{
    support *s = ud;
    iam_principal p;
    if (!iam_authenticate(s->iam, req, &p))
        return;
    store_tx *tx = NULL;
    if (store_begin(s->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    case_ref c;
    json_t *j = NULL;
    int rc = case_get(tx, req->params[0], &c);
    const char *side = !rc && c.exists ? side_of(&p, &c) : NULL;
    bool allowed = side && may(s, &p, &c, side, "support.case.read");
    if (allowed && !(rc = support_case_json(tx, c.id, &j)))
        rc = case_details(tx, j, c.id, !str_eq(side, "consumer"));
    store_rollback(tx);
    if (rc) {
        json_decref(j);
        reply_store_error(req);
        return;
    }
    if (!side) {
        http_reply_error(req, 404, "not_found", "No such support case.", "id");
        return;
    }
    if (!allowed) {
        http_reply_error(req, 403, "forbidden", "Not allowed to support.case.read.", NULL);
        return;
    }
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- updates */

typedef struct {
    support *s;
    const iam_principal *p;
    const char *id, *comment, *status;
    int64_t now;
    /* out */
    int refusal; /* 404, 409 or 400 (with why) */
    char why[160];
    int64_t seq;
    bool delivering;
} update_work;

static int add_update(store_tx *tx, void *ud)
{
    update_work *w = ud;
    case_ref c;
    int rc = case_get(tx, w->id, &c);
    if (rc)
        return rc;
    const char *side = c.exists ? side_of(w->p, &c) : NULL;
    if (!side) {
        w->refusal = 404;
        return OSB_E_NOTFOUND;
    }
    if (!may(w->s, w->p, &c, side, "support.case.update")) {
        w->refusal = 403;
        snprintf(w->why, sizeof w->why, "Not allowed to support.case.update.");
        return OSB_E_INVAL;
    }
    if (str_eq(c.status, "closed")) {
        w->refusal = 409;
        snprintf(w->why, sizeof w->why, "The case is closed; open a new one.");
        return OSB_E_CONFLICT;
    }
    bool consumer = str_eq(side, "consumer");
    const char *to = w->status;
    if (to && str_eq(to, c.status))
        to = NULL; /* no change */
    if (to && consumer && (str_eq(to, "waiting_on_client") || str_eq(to, "new"))) {
        w->refusal = 400;
        snprintf(w->why, sizeof w->why, "A consumer sets a case in_progress, resolved or closed.");
        return OSB_E_INVAL;
    }
    if (!to && !w->comment) {
        w->refusal = 409;
        snprintf(w->why, sizeof w->why, "The case is %s already.", c.status);
        return OSB_E_CONFLICT;
    }
    /* A consumer's answer to a question puts the case back in progress; so does the support
     * side's first word on a new case. */
    if (!to && consumer && str_eq(c.status, "waiting_on_client"))
        to = "in_progress";
    if (!to && !consumer && str_eq(c.status, "new"))
        to = "in_progress";
    store_stmt *q;
    if ((rc = store_query(tx, "SELECT max(seq) + 1 FROM support_updates WHERE case_id = ?", &q, "s",
                          c.id)))
        return rc;
    int st = store_step(q);
    w->seq = st == STORE_ROW ? store_col_int(q, 0) : 0;
    store_done(q);
    if (st < 0)
        return st;
    rc = store_exec(tx,
                    "INSERT INTO support_updates (case_id, seq, author, author_account_id, side,"
                    " comment, status_from, status_to, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?)",
                    "sissssssi", c.id, w->seq, w->p->iam_id, w->p->account_id, side, w->comment,
                    to ? c.status : NULL, to, w->now);
    if (!rc)
        rc = store_exec(tx,
                        "UPDATE support_cases SET status = coalesce(?, status), updated_ms = ?,"
                        " first_response_ms = CASE WHEN first_response_ms IS NULL AND ? <> 0 THEN ?"
                        " ELSE first_response_ms END WHERE id = ?",
                        "sidis", to, w->now, consumer ? 0 : 1, w->now, c.id);
    /* The provider's own answers come from it: only the others' go to its webhook. */
    if (!rc && c.offering[0] && !str_eq(side, "provider")) {
        rc = support_queue_delivery(tx, c.id, w->seq, "case.updated", c.offering, w->now);
        w->delivering = true;
    }
    return rc;
}

/* POST /v1/support/cases/{id}/updates {"comment"?, "status"?} */
static void cases_update(http_req *req, void *ud)
{
    support *s = ud;
    iam_principal p;
    if (!iam_authenticate(s->iam, req, &p))
        return;
    json_t *body = object_body(req);
    if (!body)
        return;
    static const char *const fields[] = {"comment", "status", NULL};
    update_work w = {.s = s, .p = &p, .id = req->params[0], .now = time_now_ms()};
    const json_t *st = json_object_get(body, "status");
    bool ok = only_fields(req, body, fields) &&
              text_field(req, body, "comment", MAX_COMMENT, false, &w.comment);
    if (ok && st &&
        (!json_is_string(st) || !is_status(json_string_value(st)) ||
         str_eq(json_string_value(st), "new"))) {
        http_reply_error(req, 400, "invalid_field",
                         "'status' is in_progress, waiting_on_client, resolved or closed.",
                         "status");
        ok = false;
    }
    if (ok && !st && !w.comment) {
        http_reply_error(req, 400, "invalid_body", "An update has a 'comment', a 'status' or both.",
                         NULL);
        ok = false;
    }
    if (!ok) {
        json_decref(body);
        return;
    }
    w.status = json_string_value(st);
    int rc = store_write(s->db, add_update, &w);
    json_decref(body);
    if (rc && w.refusal == 404) {
        http_reply_error(req, 404, "not_found", "No such support case.", "id");
        return;
    }
    if (rc && w.refusal == 403) {
        http_reply_error(req, 403, "forbidden", w.why, NULL);
        return;
    }
    if (rc && w.refusal) {
        http_reply_error(req, w.refusal, w.refusal == 409 ? "conflict" : "invalid_field", w.why,
                         w.refusal == 409 ? "id" : "status");
        return;
    }
    if (rc) {
        reply_store_error(req);
        return;
    }
    if (w.delivering)
        support_deliver_poke(s);
    store_tx *tx = NULL;
    json_t *j = NULL;
    if (!store_begin(s->db, false, &tx)) {
        if (!support_case_json(tx, w.id, &j) && case_details(tx, j, w.id, false)) {
            json_decref(j);
            j = NULL;
        }
        store_rollback(tx);
    }
    if (!j) {
        reply_store_error(req);
        return;
    }
    http_reply_json(req, 201, j);
    json_decref(j);
}

/* ---------------------------------------------------------------- the webhook */

/* The offering's account (or the operator) reads its webhook, and its administrators change
 * it (action support.webhook.read or .manage, on the offering's service): false (answered)
 * otherwise. */
static bool offering_owner(support *s, http_req *req, iam_principal *p, const char *offering,
                           const char *action)
{
    if (!iam_authenticate(s->iam, req, p))
        return false;
    store_tx *tx = NULL;
    if (store_begin(s->db, false, &tx)) {
        reply_store_error(req);
        return false;
    }
    store_stmt *q;
    char owner[64] = "", name[64] = "";
    int rc =
        store_query(tx, "SELECT account_id, name FROM offerings WHERE id = ?", &q, "s", offering);
    if (!rc) {
        if (store_step(q) == STORE_ROW) {
            str_copy(owner, sizeof owner, store_col_text(q, 0));
            str_copy(name, sizeof name, store_col_text(q, 1));
        }
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        reply_store_error(req);
        return false;
    }
    if (!owner[0] || (!p->operator&& !str_eq(owner, p->account_id))) {
        http_reply_error(req, 404, "not_found", "No such offering of your account.", "id");
        return false;
    }
    iam_resource r = {.account_id = owner,
                      .service_name = name,
                      .resource_type = "offering",
                      .resource = offering};
    if (!iam_decide(s->iam, p, action, &r)) {
        http_reply_errorf(req, 403, "forbidden", "Not allowed to %s.", action);
        return false;
    }
    return true;
}

static json_t *webhook_json(const char *offering, store_stmt *q)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:i}", "offering_id", offering, "url",
                     store_col_text(q, 0), "created_at", store_col_json_time(q, 1), "updated_at",
                     store_col_json_time(q, 2), "signature_header", SUPPORT_SIGNATURE_HEADER,
                     "replay_window_seconds", SUPPORT_REPLAY_WINDOW_S);
}

/* An absolute http(s) URL without user information (credentials in a URL end up in logs:
 * the signature is the webhook's authentication). */
static bool webhook_url_ok(const char *url)
{
    if (!url || !(str_has_prefix(url, "https://") || str_has_prefix(url, "http://")) ||
        strlen(url) > 1000 || strpbrk(url, " \t\r\n\\"))
        return false;
    const char *host = strstr(url, "://") + 3;
    size_t authority = strcspn(host, "/?#");
    return authority > 0 && !memchr(host, '@', authority);
}

/* PUT /v1/offerings/{id}/support/webhook {"url", "rotate_secret"?}: sets where the offering's
 * cases go. The secret is made with the first URL and on rotate_secret, and shown then only. */
static void webhook_put(http_req *req, void *ud)
{
    support *s = ud;
    const char *offering = req->params[0];
    iam_principal p;
    if (!offering_owner(s, req, &p, offering, "support.webhook.manage"))
        return;
    json_t *body = object_body(req);
    if (!body)
        return;
    static const char *const fields[] = {"url", "rotate_secret", NULL};
    const char *url = json_string_value(json_object_get(body, "url"));
    const json_t *rot = json_object_get(body, "rotate_secret");
    if (!only_fields(req, body, fields)) {
        json_decref(body);
        return;
    }
    if (!webhook_url_ok(url) || (rot && !json_is_boolean(rot))) {
        http_reply_error(req, 400, "invalid_field",
                         !webhook_url_ok(url) ? "'url' is required: an http(s) URL, with no"
                                                " user name or password in it."
                                              : "'rotate_secret' is true or false.",
                         !webhook_url_ok(url) ? "url" : "rotate_secret");
        json_decref(body);
        return;
    }
    int64_t now = time_now_ms();
    char secret[8 + 2 * SUPPORT_SECRET_BYTES + 1] = "";
    store_tx *tx = NULL;
    int rc = store_begin(s->db, true, &tx);
    store_stmt *q;
    bool exists = false;
    if (!rc && !(rc = store_query(tx, "SELECT 1 FROM support_webhooks WHERE offering_id = ?", &q,
                                  "s", offering))) {
        exists = store_step(q) == STORE_ROW;
        store_done(q);
    }
    if (!rc && (!exists || json_is_true(rot))) {
        unsigned char raw[SUPPORT_SECRET_BYTES];
        random_bytes(raw, sizeof raw);
        memcpy(secret, "whsec_", 6);
        hex_encode(raw, sizeof raw, secret + 6);
        secure_wipe(raw, sizeof raw);
        unsigned char *sealed = NULL;
        size_t n = 0;
        rc = seal_secret(s->seal_key, offering, secret, strlen(secret), &sealed, &n);
        if (!rc)
            rc = store_exec(tx,
                            "INSERT INTO support_webhooks (offering_id, url, secret_sealed,"
                            " created_ms, updated_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT"
                            " (offering_id) DO UPDATE SET url = excluded.url, secret_sealed ="
                            " excluded.secret_sealed, updated_ms = excluded.updated_ms",
                            "ssbii", offering, url, sealed, n, now, now);
        free(sealed);
    } else if (!rc) {
        rc = store_exec(tx,
                        "UPDATE support_webhooks SET url = ?, updated_ms = ? WHERE offering_id = ?",
                        "sis", url, now, offering);
    }
    json_t *j = NULL;
    if (!rc && !(rc = store_query(tx,
                                  "SELECT url, created_ms, updated_ms FROM support_webhooks"
                                  " WHERE offering_id = ?",
                                  &q, "s", offering))) {
        if (store_step(q) == STORE_ROW)
            j = webhook_json(offering, q);
        store_done(q);
    }
    if (!rc && j)
        rc = store_commit(tx);
    else if (tx)
        store_rollback(tx);
    if (!rc && j)
        log_info("support: offering %s's webhook set to %s by %s%s", offering, url, p.iam_id,
                 secret[0] ? " (a new secret)" : "");
    json_decref(body); /* url was in it */
    if (rc || !j) {
        secure_wipe(secret, sizeof secret);
        json_decref(j);
        reply_store_error(req);
        return;
    }
    if (secret[0])
        json_object_set_new(j, "secret", json_string(secret));
    secure_wipe(secret, sizeof secret);
    support_deliver_poke(s); /* cases waiting for a webhook go now */
    http_reply_json(req, exists ? 200 : 201, j);
    json_decref(j);
}

static void webhook_get(http_req *req, void *ud)
{
    support *s = ud;
    const char *offering = req->params[0];
    iam_principal p;
    if (!offering_owner(s, req, &p, offering, "support.webhook.read"))
        return;
    store_tx *tx = NULL;
    if (store_begin(s->db, false, &tx)) {
        reply_store_error(req);
        return;
    }
    store_stmt *q;
    json_t *j = NULL;
    int rc = store_query(tx,
                         "SELECT url, created_ms, updated_ms FROM support_webhooks"
                         " WHERE offering_id = ?",
                         &q, "s", offering);
    if (!rc) {
        if (store_step(q) == STORE_ROW)
            j = webhook_json(offering, q);
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        reply_store_error(req);
        return;
    }
    if (!j) {
        http_reply_error(req, 404, "not_found", "The offering has no support webhook.", "id");
        return;
    }
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* DELETE /v1/offerings/{id}/support/webhook: its cases are no longer delivered (they stay
 * readable through the API); deliveries still pending wait for a webhook again. */
static void webhook_delete(http_req *req, void *ud)
{
    support *s = ud;
    const char *offering = req->params[0];
    iam_principal p;
    if (!offering_owner(s, req, &p, offering, "support.webhook.manage"))
        return;
    store_tx *tx = NULL;
    int rc = store_begin(s->db, true, &tx);
    if (!rc)
        rc = store_exec(tx, "DELETE FROM support_webhooks WHERE offering_id = ?", "s", offering);
    int64_t n = rc ? 0 : store_changes(tx);
    if (!rc)
        rc = store_commit(tx);
    else if (tx)
        store_rollback(tx);
    if (rc) {
        reply_store_error(req);
        return;
    }
    if (!n) {
        http_reply_error(req, 404, "not_found", "The offering has no support webhook.", "id");
        return;
    }
    http_reply(req, 204, NULL, NULL, 0);
}

/* ---------------------------------------------------------------- life cycle */

int support_open(store *db, iam *m, const support_config *cfg, support **out)
{
    support *s = calloc(1, sizeof *s);
    if (!s)
        return OSB_E_NOMEM;
    s->db = db;
    s->iam = m;
    if (cfg)
        s->cfg = *cfg;
    if (s->cfg.retry_max_ms <= 0)
        s->cfg.retry_max_ms = 10 * 60 * 1000;
    if (s->cfg.timeout_ms <= 0)
        s->cfg.timeout_ms = 10000;
    iam_derive_key(m, "osbill support webhook secrets", s->seal_key);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = support_deliver_start(s);
    if (rc) {
        support_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void support_routes(support *s, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/support/cases", P, cases_create, s);
    rc |= http_route(r, HTTP_GET, "/v1/support/cases", P, cases_list, s);
    rc |= http_route(r, HTTP_GET, "/v1/support/cases/:id", P, cases_show, s);
    rc |= http_route(r, HTTP_POST, "/v1/support/cases/:id/updates", P, cases_update, s);
    rc |= http_route(r, HTTP_PUT, "/v1/offerings/:id/support/webhook", P, webhook_put, s);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/support/webhook", P, webhook_get, s);
    rc |= http_route(r, HTTP_DELETE, "/v1/offerings/:id/support/webhook", P, webhook_delete, s);
    if (rc)
        log_error("support: cannot register its routes");
}

void support_close(support *s)
{
    if (!s)
        return;
    support_deliver_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    secure_wipe(s->seal_key, sizeof s->seal_key);
    free(s);
}
