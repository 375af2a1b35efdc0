/* controller: the operation driver. One thread takes due operations from rc_operations,
 * sends the broker call through the asynchronous HTTP client, and applies each answer to the
 * store (the client's thread only queues it). Every state change is committed before a
 * waiting request hears of it; a restart finds unfinished operations in the table. */
#include "controller/controller_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS             100
#define MAX_ANSWER          (1 << 20)
#define DEFAULT_POLL_S      1 /* between last_operation polls without Retry-After */
#define MAX_RETRY_AFTER_S   3600
#define MAX_BACKOFF_S       300
#define MAX_OPERATION_CHARS 10000 /* OSB caps a broker's "operation" */
#define DUE_BATCH           32

struct rc_result {
    rc_result *next;
    char op_id[37];
    long status;   /* 0: no answer */
    bool canceled; /* the client stopped: nothing is known */
    char error[64];
    char *body;
    int64_t retry_after_s; /* < 0 when absent */
};

struct rc_waiter {
    rc_waiter *next;
    http_req *req;
    char op_id[37], guid[37];
    int ok_status;
    int64_t deadline_us;
};

typedef struct {
    rc_controller *c;
    char op_id[37];
} call_ctx;

/* ---------------------------------------------------------------- helpers */

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

static int64_t backoff_ms(int64_t attempts)
{
    int64_t s = 1;
    for (int64_t i = 0; i < attempts && s < MAX_BACKOFF_S; i++)
        s *= 2;
    return (s > MAX_BACKOFF_S ? MAX_BACKOFF_S : s) * 1000;
}

static bool flying_has(rc_controller *c, const char *id)
{
    for (size_t i = 0; i < c->nflying; i++)
        if (strcmp(c->flying[i], id) == 0)
            return true;
    return false;
}

static int flying_add(rc_controller *c, const char *id)
{
    if (c->nflying == c->capflying) {
        size_t cap = c->capflying ? c->capflying * 2 : 16;
        char(*n)[37] = realloc(c->flying, cap * sizeof *n);
        if (!n)
            return OSB_E_NOMEM;
        c->flying = n;
        c->capflying = cap;
    }
    snprintf(c->flying[c->nflying++], 37, "%s", id);
    return 0;
}

static void flying_remove(rc_controller *c, const char *id)
{
    for (size_t i = 0; i < c->nflying; i++)
        if (strcmp(c->flying[i], id) == 0) {
            memmove(c->flying[i], c->flying[c->nflying - 1], 37);
            c->nflying--;
            return;
        }
}

void rc_kick(rc_controller *c)
{
    pthread_mutex_lock(&c->mu);
    c->kick = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void rc_wait(rc_controller *c, http_req *req, const char *op_id, const char *guid, int ok_status)
{
    rc_waiter *w = calloc(1, sizeof *w);
    if (!w) {
        rc_reply_instance(c, req, guid, 202);
        http_resume(req);
        rc_kick(c);
        return;
    }
    w->req = req;
    snprintf(w->op_id, sizeof w->op_id, "%s", op_id);
    snprintf(w->guid, sizeof w->guid, "%s", guid);
    w->ok_status = ok_status;
    w->deadline_us = time_mono_us() + (int64_t)RC_WAIT_MS * 1000;
    pthread_mutex_lock(&c->mu);
    w->next = c->waiters;
    c->waiters = w;
    c->kick = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Removes and returns the waiters of op_id (all of them, when op_id is NULL and only the
 * expired ones when expired_only). */
static rc_waiter *take_waiters(rc_controller *c, const char *op_id, bool expired_only)
{
    rc_waiter *out = NULL, **pp;
    int64_t now = time_mono_us();
    pthread_mutex_lock(&c->mu);
    for (pp = &c->waiters; *pp;) {
        rc_waiter *w = *pp;
        bool take = expired_only ? w->deadline_us <= now : (!op_id || !strcmp(w->op_id, op_id));
        if (take) {
            *pp = w->next;
            w->next = out;
            out = w;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return out;
}

/* How an answer ends for the request waiting on it. */
typedef struct {
    int status; /* 0: keep waiting; 202; the waiter's ok_status (-1); an error */
    char code[32];
    char message[600];
} outcome;

static void answer_waiters(rc_controller *c, const char *op_id, const outcome *oc)
{
    if (!oc->status)
        return;
    rc_waiter *w = take_waiters(c, op_id, false);
    while (w) {
        rc_waiter *next = w->next;
        if (oc->status == -1 || oc->status == 202) {
            rc_reply_instance(c, w->req, w->guid, oc->status == -1 ? w->ok_status : 202);
        } else {
            http_reply_error(w->req, oc->status, oc->code, oc->message, NULL);
        }
        http_resume(w->req);
        free(w);
        w = next;
    }
}

/* ---------------------------------------------------------------- the broker's answers */

typedef struct {
    char kind[24], state[16], instance_id[37], prior_state[16], offering_id[72];
    int64_t attempts, deadline_ms;
} op_row;

static int load_op(store_tx *tx, const char *id, op_row *o)
{
    store_stmt *q;
    int rc = store_query(tx,
                         "SELECT o.kind, o.state, o.instance_id, o.prior_state, o.attempts,"
                         " o.deadline_ms, i.offering_id FROM rc_operations o JOIN"
                         " resource_instances i ON i.guid = o.instance_id WHERE o.id = ?",
                         &q, "s", id);
    if (rc)
        return rc;
    rc = store_step(q);
    if (rc == STORE_ROW) {
        snprintf(o->kind, sizeof o->kind, "%s", store_col_text(q, 0));
        snprintf(o->state, sizeof o->state, "%s", store_col_text(q, 1));
        snprintf(o->instance_id, sizeof o->instance_id, "%s", store_col_text(q, 2));
        snprintf(o->prior_state, sizeof o->prior_state, "%s",
                 store_col_text(q, 3) ? store_col_text(q, 3) : "active");
        o->attempts = store_col_int(q, 4);
        o->deadline_ms = store_col_int(q, 5);
        snprintf(o->offering_id, sizeof o->offering_id, "%s", store_col_text(q, 6));
        rc = 0;
    } else if (rc == STORE_DONE) {
        rc = OSB_E_NOTFOUND;
    }
    store_done(q);
    return rc;
}

static int set_last_operation(store_tx *tx, const char *guid, const char *type, const char *state,
                              bool async, const char *description)
{
    json_t *lo = json_pack("{s:s,s:s,s:b,s:s,s:I}", "type", type, "state", state, "async", async,
                           "description", description ? description : "", "updated_ms",
                           (json_int_t)time_now_ms());
    char *s = lo ? json_dumps(lo, JSON_COMPACT) : NULL;
    json_decref(lo);
    if (!s)
        return OSB_E_NOMEM;
    int rc = store_exec(tx,
                        "UPDATE resource_instances SET last_operation = ?, updated_ms = ?"
                        " WHERE guid = ?",
                        "sis", s, time_now_ms(), guid);
    free(s);
    return rc;
}

static int set_instance_state(store_tx *tx, const char *guid, const char *state)
{
    if (strcmp(state, "removed") == 0)
        return store_exec(tx,
                          "UPDATE resource_instances SET state = 'removed', deleted_ms = ?,"
                          " updated_ms = ? WHERE guid = ?",
                          "iis", time_now_ms(), time_now_ms(), guid);
    return store_exec(tx, "UPDATE resource_instances SET state = ?, updated_ms = ? WHERE guid = ?",
                      "sis", state, time_now_ms(), guid);
}

static int finish_op(store_tx *tx, const char *id, const char *state, const char *error)
{
    return store_exec(tx,
                      "UPDATE rc_operations SET state = ?, error = ?, updated_ms = ? WHERE"
                      " id = ?",
                      "ssis", state, error, time_now_ms(), id);
}

static int reschedule(store_tx *tx, const char *id, const char *state, int64_t at_ms,
                      bool count_attempt, const char *broker_op, const char *error)
{
    if (broker_op)
        return store_exec(tx,
                          "UPDATE rc_operations SET state = ?, next_at_ms = ?, attempts ="
                          " attempts + ?, broker_operation = ?, error = ?, updated_ms = ?"
                          " WHERE id = ?",
                          "sidssis", state, at_ms, count_attempt ? 1 : 0, broker_op, error,
                          time_now_ms(), id);
    return store_exec(tx,
                      "UPDATE rc_operations SET state = ?, next_at_ms = ?, attempts = attempts"
                      " + ?, error = ?, updated_ms = ? WHERE id = ?",
                      "sidsis", state, at_ms, count_attempt ? 1 : 0, error, time_now_ms(), id);
}

/* Orphan mitigation: a DELETE without the user's identity, retried with backoff until the
 * broker answers 200 or 410. */
static int queue_orphan_mitigation(store_tx *tx, const char *guid)
{
    char id[37];
    uuid_v4(id);
    int64_t now = time_now_ms();
    return store_exec(tx,
                      "INSERT INTO rc_operations (id, kind, instance_id, state, next_at_ms,"
                      " deadline_ms, created_ms, updated_ms) VALUES (?, 'orphan_mitigation',"
                      " ?, 'pending', ?, ?, ?, ?)",
                      "ssiiii", id, guid, now, now + 7LL * 86400 * 1000, now, now);
}

/* An instance of an offering in limited visibility that was created and then deleted: what
 * onboarding step 5 asks for. */
static int record_evidence(store_tx *tx, const op_row *o)
{
    store_stmt *q;
    bool limited = false, created = false;
    int rc = store_query(tx,
                         "SELECT visibility = 'limited', EXISTS (SELECT 1 FROM rc_operations"
                         " WHERE instance_id = ? AND kind = 'create' AND state = 'succeeded')"
                         " FROM offerings WHERE id = ?",
                         &q, "ss", o->instance_id, o->offering_id);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW) {
        limited = store_col_int(q, 0) != 0;
        created = store_col_int(q, 1) != 0;
    }
    store_done(q);
    if (!limited || !created)
        return 0;
    char detail[96];
    snprintf(detail, sizeof detail, "{\"instance\":\"%s\"}", o->instance_id);
    return store_exec(tx,
                      "INSERT INTO offering_evidence (offering_id, kind, detail, created_ms)"
                      " VALUES (?, 'instance_lifecycle', ?, ?)",
                      "ssi", o->offering_id, detail, time_now_ms());
}

static const char *description_of(const json_t *body)
{
    const char *d = json_string_value(json_object_get(body, "description"));
    return d ? d : "";
}

static int64_t next_poll_ms(const rc_result *r)
{
    int64_t s = r->retry_after_s >= 0 ? r->retry_after_s : DEFAULT_POLL_S;
    if (s > MAX_RETRY_AFTER_S)
        s = MAX_RETRY_AFTER_S;
    return time_now_ms() + s * 1000;
}

/* A 4xx from the broker, as the caller sees it: the broker's 400/409/422 pass through. */
static void refused(outcome *oc, long status, const char *what, const char *description)
{
    oc->status = (status == 400 || status == 409 || status == 422) ? (int)status : 502;
    snprintf(oc->code, sizeof oc->code, "%s",
             oc->status == 502 ? "broker_error" : "broker_refused");
    snprintf(oc->message, sizeof oc->message, "The service's broker refused the %s (HTTP %ld)%s%s",
             what, status, description[0] ? ": " : ".", description);
}

static int apply_create(store_tx *tx, const char *id, const op_row *o, const rc_result *r,
                        const json_t *body, outcome *oc)
{
    const char *g = o->instance_id;
    int rc;
    bool obj = json_is_object(body);
    if (strcmp(o->state, "pending") == 0) { /* the PUT's answer */
        if ((r->status == 200 || r->status == 201) && obj) {
            const char *dash = json_string_value(json_object_get(body, "dashboard_url"));
            oc->status = -1;
            if ((rc = store_exec(tx,
                                 "UPDATE resource_instances SET dashboard_url = ? WHERE"
                                 " guid = ?",
                                 "ss", dash, g)) ||
                (rc = set_instance_state(tx, g, "active")) ||
                (rc = set_last_operation(tx, g, "create", "succeeded", false, "")))
                return rc;
            return finish_op(tx, id, "succeeded", NULL);
        }
        if (r->status == 202 && obj) {
            const char *bop = json_string_value(json_object_get(body, "operation"));
            if (bop && strlen(bop) > MAX_OPERATION_CHARS)
                bop = NULL;
            const char *dash = json_string_value(json_object_get(body, "dashboard_url"));
            oc->status = 202;
            if ((rc = store_exec(tx,
                                 "UPDATE resource_instances SET dashboard_url = ? WHERE"
                                 " guid = ?",
                                 "ss", dash, g)) ||
                (rc = set_last_operation(tx, g, "create", "in progress", true, "")))
                return rc;
            return reschedule(tx, id, "in_progress", next_poll_ms(r), false, bop ? bop : "", NULL);
        }
        if (r->status >= 400 && r->status < 500) {
            /* The broker created nothing: no orphan mitigation (spec/osb.md). */
            refused(oc, r->status, "provision", description_of(body));
            if ((rc = set_instance_state(tx, g, "failed")) ||
                (rc = set_last_operation(tx, g, "create", "failed", false, oc->message)))
                return rc;
            return finish_op(tx, id, "failed", oc->message);
        }
        /* A timeout, 5xx, another 2xx or a malformed answer: what the broker holds is
         * unknown, so the platform deletes it (orphan mitigation). */
        oc->status = 502;
        snprintf(oc->code, sizeof oc->code, "broker_error");
        if (r->status)
            snprintf(oc->message, sizeof oc->message,
                     "The service's broker answered the "
                     "provision with HTTP %ld%s; the instance failed.",
                     r->status, obj || r->status >= 300 ? "" : " and a malformed body");
        else
            snprintf(oc->message, sizeof oc->message,
                     "The service's broker did not answer the "
                     "provision (%s); the instance failed.",
                     r->error);
        if ((rc = set_instance_state(tx, g, "failed")) ||
            (rc = set_last_operation(tx, g, "create", "failed", false, oc->message)) ||
            (rc = finish_op(tx, id, "failed", oc->message)))
            return rc;
        return queue_orphan_mitigation(tx, g);
    }
    /* last_operation's answer */
    const char *st = json_string_value(json_object_get(body, "state"));
    if (r->status == 200 && st && strcmp(st, "succeeded") == 0) {
        oc->status = -1;
        if ((rc = set_instance_state(tx, g, "active")) ||
            (rc = set_last_operation(tx, g, "create", "succeeded", true, description_of(body))))
            return rc;
        return finish_op(tx, id, "succeeded", NULL);
    }
    if ((r->status == 200 && st && strcmp(st, "failed") == 0) || r->status == 410) {
        oc->status = 502;
        snprintf(oc->code, sizeof oc->code, "provision_failed");
        snprintf(oc->message, sizeof oc->message, "The service's broker failed the provision%s%s",
                 description_of(body)[0] ? ": " : ".", description_of(body));
        if ((rc = set_instance_state(tx, g, "failed")) ||
            (rc = set_last_operation(tx, g, "create", "failed", true, oc->message)))
            return rc;
        return finish_op(tx, id, "failed", oc->message);
    }
    if (r->status == 200 && st && strcmp(st, "in progress") == 0) {
        oc->status = 202;
        return reschedule(tx, id, "in_progress", next_poll_ms(r), false, NULL, NULL);
    }
    oc->status = 202; /* a poll that went wrong is retried; the caller sees it in progress */
    return reschedule(tx, id, "in_progress", time_now_ms() + backoff_ms(o->attempts), true, NULL,
                      r->status ? "last_operation answered unexpectedly" : r->error);
}

static int apply_delete(store_tx *tx, const char *id, const op_row *o, const rc_result *r,
                        const json_t *body, outcome *oc)
{
    const char *g = o->instance_id;
    int rc;
    const char *st = json_string_value(json_object_get(body, "state"));
    bool polling = strcmp(o->state, "in_progress") == 0;
    bool gone = polling ? (r->status == 410 || (r->status == 200 && st && !strcmp(st, "succeeded")))
                        : (r->status == 200 || r->status == 410);
    if (gone) {
        oc->status = -1;
        if ((rc = set_instance_state(tx, g, "removed")) ||
            (rc = set_last_operation(tx, g, "delete", "succeeded", polling, "")) ||
            (rc = finish_op(tx, id, "succeeded", NULL)))
            return rc;
        return record_evidence(tx, o);
    }
    if (!polling && r->status == 202 && json_is_object(body)) {
        const char *bop = json_string_value(json_object_get(body, "operation"));
        if (bop && strlen(bop) > MAX_OPERATION_CHARS)
            bop = NULL;
        oc->status = 202;
        if ((rc = set_last_operation(tx, g, "delete", "in progress", true, "")))
            return rc;
        return reschedule(tx, id, "in_progress", next_poll_ms(r), false, bop ? bop : "", NULL);
    }
    bool failed = polling ? (r->status == 200 && st && !strcmp(st, "failed"))
                          : (r->status >= 400 && r->status < 500);
    if (failed) {
        if (polling) {
            oc->status = 502;
            snprintf(oc->code, sizeof oc->code, "delete_failed");
            snprintf(oc->message, sizeof oc->message, "The service's broker failed the delete%s%s",
                     description_of(body)[0] ? ": " : ".", description_of(body));
        } else {
            refused(oc, r->status, "delete", description_of(body));
        }
        if ((rc = set_instance_state(tx, g, o->prior_state)) ||
            (rc = set_last_operation(tx, g, "delete", "failed", polling, oc->message)))
            return rc;
        return finish_op(tx, id, "failed", oc->message);
    }
    if (polling && r->status == 200 && st && !strcmp(st, "in progress")) {
        oc->status = 202;
        return reschedule(tx, id, "in_progress", next_poll_ms(r), false, NULL, NULL);
    }
    /* No answer, a 5xx or nonsense: DELETE is idempotent, try again later. */
    oc->status = 202;
    return reschedule(tx, id, o->state, time_now_ms() + backoff_ms(o->attempts), true, NULL,
                      r->status ? "the broker answered unexpectedly" : r->error);
}

static int apply_orphan(store_tx *tx, const char *id, const op_row *o, const rc_result *r)
{
    if (r->status == 200 || r->status == 410)
        return finish_op(tx, id, "succeeded", NULL);
    return reschedule(tx, id, "pending", time_now_ms() + backoff_ms(o->attempts), true, NULL,
                      r->status ? "the broker has not confirmed the delete" : r->error);
}

static void apply_result(rc_controller *c, rc_result *r)
{
    json_t *body = r->body ? json_loads(r->body, JSON_REJECT_DUPLICATES, NULL) : NULL;
    outcome oc = {0};
    store_tx *tx;
    op_row o;
    int rc = store_begin(c->db, true, &tx);
    if (!rc) {
        rc = load_op(tx, r->op_id, &o);
        if (!rc && strcmp(o.state, "pending") && strcmp(o.state, "in_progress"))
            rc = OSB_E_CONFLICT; /* finished meanwhile: the answer is stale */
        if (!rc) {
            if (strcmp(o.kind, "create") == 0)
                rc = apply_create(tx, r->op_id, &o, r, body, &oc);
            else if (strcmp(o.kind, "delete") == 0)
                rc = apply_delete(tx, r->op_id, &o, r, body, &oc);
            else
                rc = apply_orphan(tx, r->op_id, &o, r);
        }
        rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    }
    if (rc == OSB_E_CONFLICT || rc == OSB_E_NOTFOUND) {
        /* A late answer to an operation that has finished or gone: nothing to do. */
    } else if (rc) {
        /* Nothing was recorded: the operation stays due and is tried again. */
        log_msg(LOG_WARN, "controller: operation %s: cannot record the broker's answer (%s)",
                r->op_id, base_strerror(rc));
    } else {
        answer_waiters(c, r->op_id, &oc);
    }
    json_decref(body);
}

/* ---------------------------------------------------------------- calling the broker */

static void on_done(void *ud, const http_client_response *resp)
{
    call_ctx *x = ud;
    rc_controller *c = x->c;
    rc_result *r = calloc(1, sizeof *r);
    if (r) {
        snprintf(r->op_id, sizeof r->op_id, "%s", x->op_id);
        r->status = resp->status;
        r->canceled = resp->error && strcmp(resp->error, "canceled") == 0;
        snprintf(r->error, sizeof r->error, "%s", resp->error ? resp->error : "");
        r->body = resp->body ? strndup(resp->body, resp->body_len) : NULL;
        r->retry_after_s = -1;
        int64_t ra;
        if (resp->retry_after && !str_to_i64(resp->retry_after, false, &ra))
            r->retry_after_s = ra;
    }
    pthread_mutex_lock(&c->mu);
    if (r) {
        r->next = c->results;
        c->results = r;
    } else {
        flying_remove(c, x->op_id); /* lost: the operation becomes due again */
    }
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    free(x);
}

/* Fails an operation that has run past its deadline (the plan's maximum polling duration). */
static void expire_op(rc_controller *c, const char *id)
{
    store_tx *tx;
    op_row o;
    outcome oc = {.status = 502, .code = "operation_expired"};
    snprintf(oc.message, sizeof oc.message,
             "The broker did not finish the operation within its "
             "maximum polling duration.");
    if (store_begin(c->db, true, &tx))
        return;
    int rc = load_op(tx, id, &o);
    if (!rc && strcmp(o.kind, "orphan_mitigation") != 0) {
        const char *back = strcmp(o.kind, "create") == 0 ? "failed" : o.prior_state;
        rc = set_instance_state(tx, o.instance_id, back);
        if (!rc)
            rc = set_last_operation(tx, o.instance_id, o.kind, "failed", true, oc.message);
    }
    if (!rc)
        rc = finish_op(tx, id, "failed", oc.message);
    rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    if (!rc)
        answer_waiters(c, id, &oc);
}

/* Sends the broker call operation id is waiting for. */
static void start_op(rc_controller *c, const char *id)
{
    store_tx *tx;
    store_stmt *q;
    char kind[24] = "", state[16] = "", guid[37] = "", initiator[130] = "", bop[10001] = "";
    char crn[512] = "", account[64] = "", group[64] = "", offering[72] = "", plan[72] = "";
    char broker_id[64] = "", url[2100] = "", auth[16] = "", user[256] = "", version[16] = "";
    char password[1100] = "";
    char *params = NULL;
    int64_t deadline = 0;
    bool found = false;
    int rc = store_begin(c->db, false, &tx);
    if (rc)
        return;
    rc = store_query(tx,
                     "SELECT o.kind, o.state, o.instance_id, o.initiator, o.broker_operation,"
                     " o.deadline_ms, i.crn, i.account_id, i.resource_group_id,"
                     " i.offering_id, i.plan_id, i.parameters, b.id, b.url, b.auth,"
                     " b.username, b.secret, b.api_version FROM rc_operations o JOIN"
                     " resource_instances i ON i.guid = o.instance_id JOIN brokers b ON"
                     " b.id = i.broker_id WHERE o.id = ?",
                     &q, "s", id);
    if (!rc) {
        if (store_step(q) == STORE_ROW) {
            found = true;
#define COL(i, dst)                                                                                \
    snprintf(dst, sizeof dst, "%s", store_col_text(q, i) ? store_col_text(q, i) : "")
            COL(0, kind);
            COL(1, state);
            COL(2, guid);
            COL(3, initiator);
            COL(4, bop);
            deadline = store_col_int(q, 5);
            COL(6, crn);
            COL(7, account);
            COL(8, group);
            COL(9, offering);
            COL(10, plan);
            params = store_col_text(q, 11) ? strdup(store_col_text(q, 11)) : NULL;
            COL(12, broker_id);
            COL(13, url);
            COL(14, auth);
            COL(15, user);
            COL(17, version);
#undef COL
            size_t n = 0;
            const void *sealed = store_col_blob(q, 16, &n);
            if (strcmp(auth, "basic") == 0 &&
                catalog_broker_password(c->cat, broker_id, sealed, n, password, sizeof password))
                password[0] = '\0';
        }
        store_done(q);
    }
    store_rollback(tx);
    if (!found) {
        free(params);
        return;
    }
    for (size_t ul = strlen(url); ul > 0 && url[ul - 1] == '/';)
        url[--ul] = '\0';
    if (time_now_ms() > deadline) {
        free(params);
        expire_op(c, id);
        return;
    }

    char ecrn[1100], eop[30100], esvc[220], eplan[220];
    pct(crn, ecrn, sizeof ecrn);
    pct(offering, esvc, sizeof esvc);
    pct(plan, eplan, sizeof eplan);
    pct(bop, eop, sizeof eop);
    const char *method = "GET";
    char *body = NULL;
    bool polling = strcmp(state, "in_progress") == 0;
    bool identity = initiator[0] && strcmp(kind, "orphan_mitigation") != 0;
    buf u;
    buf_init(&u, 64 * 1024);
    int urc;
    if (polling) {
        urc = buf_printf(&u,
                         "%s/v2/service_instances/%s/last_operation?service_id=%s&plan_id=%s"
                         "%s%s",
                         url, ecrn, esvc, eplan, eop[0] ? "&operation=" : "", eop);
        identity = false;
    } else if (strcmp(kind, "create") == 0) {
        method = "PUT";
        json_t *ctx = json_pack("{s:s,s:s,s:s,s:s}", "platform", "osbill", "account_id", account,
                                "crn", crn, "resource_group_crn", "");
        char rg[256];
        snprintf(rg, sizeof rg, "crn:v1:osbill:public:resource-controller::a/%s::resource-group:%s",
                 account, group);
        json_object_set_new(ctx, "resource_group_crn", json_string(rg));
        json_t *b =
            json_pack("{s:s,s:s,s:o}", "service_id", offering, "plan_id", plan, "context", ctx);
        json_t *p = params ? json_loads(params, 0, NULL) : NULL;
        if (b && p)
            json_object_set_new(b, "parameters", p);
        else
            json_decref(p);
        body = b ? json_dumps(b, JSON_COMPACT) : NULL;
        json_decref(b);
        urc = buf_printf(&u, "%s/v2/service_instances/%s?accepts_incomplete=true", url, ecrn);
    } else {
        method = "DELETE";
        urc = buf_printf(&u,
                         "%s/v2/service_instances/%s?service_id=%s&plan_id=%s"
                         "&accepts_incomplete=true",
                         url, ecrn, esvc, eplan);
    }
    free(params);
    char *full = urc ? NULL : buf_take(&u);
    buf_free(&u);
    char hv[64], hid[96], horigin[600] = "";
    char rid[37];
    uuid_v4(rid);
    snprintf(hv, sizeof hv, "X-Broker-API-Version: %s", version[0] ? version : "2.17");
    snprintf(hid, sizeof hid, "X-Broker-API-Request-Identity: %s", rid);
    if (identity) {
        json_t *w = json_pack("{s:s}", "iam_id", initiator);
        char *wj = w ? json_dumps(w, JSON_COMPACT) : NULL;
        char enc[400];
        if (wj && b64_encode(wj, strlen(wj), enc, sizeof enc) >= 0)
            snprintf(horigin, sizeof horigin, "X-Broker-API-Originating-Identity: osbill %s", enc);
        free(wj);
        json_decref(w);
    }
    const char *headers[7];
    size_t nh = 0;
    headers[nh++] = "Accept: application/json";
    headers[nh++] = hv;
    headers[nh++] = hid;
    if (horigin[0])
        headers[nh++] = horigin;
    if (body)
        headers[nh++] = "Content-Type: application/json";
    headers[nh] = NULL;

    http_client_request req = {
        .method = method,
        .url = full,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .max_body = MAX_ANSWER,
        .basic_user = strcmp(auth, "basic") == 0 && user[0] ? user : NULL,
        .basic_password = strcmp(auth, "basic") == 0 && user[0] ? password : NULL,
    };
    call_ctx *x = calloc(1, sizeof *x);
    rc = (!full || !x || (strcmp(method, "PUT") == 0 && !body)) ? OSB_E_NOMEM : 0;
    if (!rc) {
        x->c = c;
        snprintf(x->op_id, sizeof x->op_id, "%s", id);
        pthread_mutex_lock(&c->mu);
        rc = flying_add(c, id);
        pthread_mutex_unlock(&c->mu);
    }
    if (!rc && (rc = http_client_send(c->client, &req, on_done, x))) {
        pthread_mutex_lock(&c->mu);
        flying_remove(c, id);
        pthread_mutex_unlock(&c->mu);
    }
    secure_wipe(password, sizeof password);
    free(full);
    free(body);
    if (rc) {
        free(x);
        log_msg(LOG_WARN, "controller: operation %s: cannot call the broker (%s); retrying", id,
                base_strerror(rc));
        store_tx *wtx;
        if (!store_begin(c->db, true, &wtx)) {
            if (store_exec(wtx,
                           "UPDATE rc_operations SET next_at_ms = ?, attempts = attempts + 1"
                           " WHERE id = ?",
                           "is", time_now_ms() + 1000, id))
                store_rollback(wtx);
            else if (store_commit(wtx))
                log_msg(LOG_WARN, "controller: cannot reschedule operation %s", id);
        }
    }
}

/* Starts every due operation that has no call in flight. */
static void start_due(rc_controller *c)
{
    char ids[DUE_BATCH][37];
    size_t n = 0;
    store_tx *tx;
    store_stmt *q;
    if (store_begin(c->db, false, &tx))
        return;
    if (!store_query(tx,
                     "SELECT id FROM rc_operations WHERE state IN ('pending', 'in_progress')"
                     " AND next_at_ms <= ? ORDER BY next_at_ms LIMIT 256",
                     &q, "i", time_now_ms())) {
        pthread_mutex_lock(&c->mu);
        while (n < DUE_BATCH && store_step(q) == STORE_ROW) {
            const char *id = store_col_text(q, 0);
            if (id && strlen(id) < 37 && !flying_has(c, id))
                snprintf(ids[n++], 37, "%s", id);
        }
        pthread_mutex_unlock(&c->mu);
        store_done(q);
    }
    store_rollback(tx);
    for (size_t i = 0; i < n; i++)
        start_op(c, ids[i]);
}

static void *driver_main(void *arg)
{
    rc_controller *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->closing) {
        rc_result *rs = c->results;
        c->results = NULL;
        c->kick = false;
        pthread_mutex_unlock(&c->mu);
        while (rs) {
            rc_result *next = rs->next;
            if (!rs->canceled)
                apply_result(c, rs);
            pthread_mutex_lock(&c->mu);
            flying_remove(c, rs->op_id);
            pthread_mutex_unlock(&c->mu);
            free(rs->body);
            free(rs);
            rs = next;
        }
        for (rc_waiter *w = take_waiters(c, NULL, true), *next; w; w = next) {
            next = w->next;
            rc_reply_instance(c, w->req, w->guid, 202);
            http_resume(w->req);
            free(w);
        }
        start_due(c);
        pthread_mutex_lock(&c->mu);
        if (!c->results && !c->kick && !c->closing) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += TICK_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &until);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---------------------------------------------------------------- module */

int rc_open(store *db, iam *m, catalog *cat, rc_controller **out)
{
    rc_controller *c = calloc(1, sizeof *c);
    if (!c)
        return OSB_E_NOMEM;
    c->db = db;
    c->iam = m;
    c->cat = cat;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    http_client_config cc = {.name = "controller", .user_agent = "osbill-controller",
                             .untrusted_targets = true};
    int rc = http_client_start(&cc, &c->client);
    if (!rc) {
        /* Unfinished operations are due at once: polls and sends resume where they were. */
        if (pthread_create(&c->driver, NULL, driver_main, c) == 0)
            c->driver_started = true;
        else
            rc = OSB_E_IO;
    }
    if (rc) {
        rc_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void rc_close(rc_controller *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->driver_started)
        pthread_join(c->driver, NULL);
    /* Calls in flight end "canceled"; their operations stay due for the next start. */
    http_client_stop(c->client);
    for (rc_result *r = c->results, *next; r; r = next) {
        next = r->next;
        free(r->body);
        free(r);
    }
    for (rc_waiter *w = take_waiters(c, NULL, false), *next; w; w = next) {
        next = w->next;
        http_reply_error(w->req, 503, "unavailable",
                         "The platform is stopping; read the "
                         "instance again.",
                         NULL);
        http_resume(w->req);
        free(w);
    }
    free(c->flying);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void rc_routes(rc_controller *c, http_router *r)
{
    rc_api_routes(c, r);
}
