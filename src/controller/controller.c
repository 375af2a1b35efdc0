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
#define MAX_CREDENTIALS     (64 * 1024)
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
    rc_object obj;
    char op_id[37], guid[37];
    int ok_status;
    int64_t deadline_us;
};

typedef struct {
    rc_controller *c;
    char op_id[37];
} call_ctx;

/* ---------------------------------------------------------------- helpers */

void rc_pct(const char *s, char *out, size_t n)
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

static bool idset_has(const rc_idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0)
            return true;
    return false;
}

static int idset_add(rc_idset *s, const char *id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char(*n)[37] = realloc(s->ids, cap * sizeof *n);
        if (!n)
            return OSB_E_NOMEM;
        s->ids = n;
        s->cap = cap;
    }
    snprintf(s->ids[s->n++], 37, "%.36s", id);
    return 0;
}

static void idset_remove(rc_idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0) {
            memmove(s->ids[i], s->ids[s->n - 1], 37);
            s->n--;
            return;
        }
}

/* Hands an operation that is due now to the driver, which starts it without looking for
 * due operations in the store; a full look (rc_kick) when memory is short. Under c->mu. */
static void hand_over(rc_controller *c, const char *op_id)
{
    if (!idset_has(&c->fresh, op_id) && idset_add(&c->fresh, op_id))
        c->kick = true;
    pthread_cond_signal(&c->cv);
}

void rc_kick(rc_controller *c)
{
    pthread_mutex_lock(&c->mu);
    c->kick = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void rc_wait(rc_controller *c, http_req *req, const char *op_id, rc_object obj, const char *guid,
             int ok_status)
{
    rc_waiter *w = calloc(1, sizeof *w);
    if (!w) {
        rc_reply(c, req, obj, guid, 202);
        http_resume(req);
        rc_kick(c);
        return;
    }
    w->req = req;
    w->obj = obj;
    snprintf(w->op_id, sizeof w->op_id, "%s", op_id);
    snprintf(w->guid, sizeof w->guid, "%s", guid);
    w->ok_status = ok_status;
    w->deadline_us = time_mono_us() + (int64_t)RC_WAIT_MS * 1000;
    pthread_mutex_lock(&c->mu);
    w->next = c->waiters;
    c->waiters = w;
    hand_over(c, op_id);
    pthread_mutex_unlock(&c->mu);
}

void rc_wait_or_accept(rc_controller *c, http_req *req, const char *op_id, rc_object obj,
                       const char *guid, int ok_status)
{
    if (http_defer(req)) {
        rc_wait(c, req, op_id, obj, guid, ok_status);
    } else {
        rc_reply(c, req, obj, guid, 202);
        rc_kick(c);
    }
}

static void write_done(void *ud, int rc)
{
    rc_write *w = ud;
    w->then(w, rc);
}

void rc_submit(rc_write *w, store_work_fn work, void (*then)(rc_write *w, int rc))
{
    w->then = then;
    w->deferred = http_defer(w->req);
    if (w->deferred && store_group_submit(w->c->group, work, write_done, w) == 0)
        return;
    then(w, store_write(w->c->db, work, w));
}

void rc_write_fail(rc_write *w, int status, const char *code, const char *message)
{
    http_reply_error(w->req, status, code, message, NULL);
    if (w->deferred)
        http_resume(w->req);
}

void rc_write_wait(rc_write *w, const char *op_id, rc_object obj, const char *guid,
                   int ok_status)
{
    if (w->deferred) {
        rc_wait(w->c, w->req, op_id, obj, guid, ok_status);
    } else {
        rc_reply(w->c, w->req, obj, guid, 202);
        rc_kick(w->c);
    }
}

void rc_write_reply(rc_write *w, rc_object obj, const char *guid, int status)
{
    rc_reply(w->c, w->req, obj, guid, status);
    if (w->deferred)
        http_resume(w->req);
    rc_kick(w->c);
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

/* Whether a waiter is answered with its instance when its operation succeeds. */
static bool answers_instance(const rc_waiter *w)
{
    return w->obj == RC_INSTANCE && w->ok_status != 204;
}

/* Whether a request waits for op_id's instance as its answer (built in the answer's own
 * transaction then, instead of read again). */
static bool instance_wanted(rc_controller *c, const char *op_id)
{
    bool wanted = false;
    pthread_mutex_lock(&c->mu);
    for (rc_waiter *w = c->waiters; w && !wanted; w = w->next)
        wanted = answers_instance(w) && !strcmp(w->op_id, op_id);
    pthread_mutex_unlock(&c->mu);
    return wanted;
}

/* Answers the requests waiting on op_id; instance, when not NULL, is the instance as the
 * outcome left it. */
static void answer_waiters(rc_controller *c, const char *op_id, const outcome *oc,
                           const json_t *instance)
{
    if (!oc->status)
        return;
    rc_waiter *w = take_waiters(c, op_id, false);
    while (w) {
        rc_waiter *next = w->next;
        if (oc->status == -1 && instance && answers_instance(w)) {
            http_reply_json(w->req, w->ok_status, instance);
        } else if (oc->status == -1 || oc->status == 202) {
            rc_reply(c, w->req, w->obj, w->guid, oc->status == -1 ? w->ok_status : 202);
        } else {
            http_reply_error(w->req, oc->status, oc->code, oc->message, NULL);
        }
        http_resume(w->req);
        free(w);
        w = next;
    }
}

/* ---------------------------------------------------------------- operations in the store */

int rc_insert_op(store_tx *tx, const rc_new_op *n, char id_out[37])
{
    int64_t now = time_now_ms();
    int64_t poll = n->max_polling_s > 0 ? n->max_polling_s : RC_DEFAULT_MAX_POLL_S;
    uuid_v7(id_out);
    return store_exec(tx,
                      "INSERT INTO rc_operations (id, kind, instance_id, key_id, initiator,"
                      " prior_state, plan_id, parameters, reason, state, next_at_ms,"
                      " deadline_ms, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                      " 'pending', ?, ?, ?, ?)",
                      "sssssssssiiii", id_out, n->kind, n->instance_id, n->key_id, n->initiator,
                      n->prior_state, n->plan_id, n->parameters, n->reason, now,
                      now + poll * 1000, now, now);
}

int rc_set_last_operation(store_tx *tx, const char *table, const char *guid, const char *type,
                          const char *state, bool async, const char *description)
{
    json_t *lo = json_pack("{s:s,s:s,s:b,s:s,s:I}", "type", type, "state", state, "async", async,
                           "description", description ? description : "", "updated_ms",
                           (json_int_t)time_now_ms());
    char *s = lo ? json_dumps(lo, JSON_COMPACT) : NULL;
    json_decref(lo);
    if (!s)
        return OSB_E_NOMEM;
    /* Literal SQL only: the store caches statements by the text's address. */
    int rc = strcmp(table, "resource_keys") == 0
                 ? store_exec(tx,
                              "UPDATE resource_keys SET last_operation = ?, updated_ms = ? WHERE"
                              " guid = ?",
                              "sis", s, time_now_ms(), guid)
                 : store_exec(tx,
                              "UPDATE resource_instances SET last_operation = ?, updated_ms = ?"
                              " WHERE guid = ?",
                              "sis", s, time_now_ms(), guid);
    free(s);
    return rc;
}

static int set_last_operation(store_tx *tx, const char *guid, const char *type, const char *state,
                              bool async, const char *description)
{
    return rc_set_last_operation(tx, "resource_instances", guid, type, state, async, description);
}

/* The instance's new state (NULL: unchanged) and last operation, in one write. */
static int instance_moves(store_tx *tx, const char *guid, const char *state, const char *type,
                          const char *lo_state, bool async, const char *description)
{
    json_t *lo = json_pack("{s:s,s:s,s:b,s:s,s:I}", "type", type, "state", lo_state, "async",
                           async, "description", description ? description : "", "updated_ms",
                           (json_int_t)time_now_ms());
    char *s = lo ? json_dumps(lo, JSON_COMPACT) : NULL;
    json_decref(lo);
    if (!s)
        return OSB_E_NOMEM;
    int64_t now = time_now_ms();
    int rc = store_exec(tx,
                        "UPDATE resource_instances SET state = coalesce(?1, state), deleted_ms ="
                        " CASE WHEN ?1 = 'removed' THEN ?2 ELSE deleted_ms END, last_operation"
                        " = ?3, updated_ms = ?2 WHERE guid = ?4",
                        "siss", state, now, s, guid);
    free(s);
    return rc;
}

/* A key's state; "removed" dates it and erases its credentials. */
static int set_key_state(store_tx *tx, const char *guid, const char *state)
{
    if (strcmp(state, "removed") == 0)
        return store_exec(tx,
                          "UPDATE resource_keys SET state = 'removed', credentials = NULL,"
                          " deleted_ms = ?1, updated_ms = ?1 WHERE guid = ?2",
                          "is", time_now_ms(), guid);
    return store_exec(tx, "UPDATE resource_keys SET state = ?, updated_ms = ? WHERE guid = ?",
                      "sis", state, time_now_ms(), guid);
}

/* The lease a node holds on an operation while it calls the broker for it (store_shared):
 * longer than the call may take, so that it is never lost mid-call to a live node. */
static void op_lease_name(char name[48], const char *id)
{
    snprintf(name, 48, "rc.op.%.36s", id);
}

static int64_t op_hold_ms(const rc_controller *c)
{
    return c->opt.broker_timeout_ms + 10000;
}

static int finish_op(store_tx *tx, const char *id, const char *state, const char *error)
{
    char name[48];
    op_lease_name(name, id);
    int rc = store_exec(tx,
                        "UPDATE rc_operations SET state = ?, error = ?, updated_ms = ? WHERE"
                        " id = ?",
                        "ssis", state, error, time_now_ms(), id);
    /* leases are taken on a shared store only (start_due) */
    return rc || !store_tx_postgres(tx) ? rc : store_lease_drop(tx, name);
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
 * broker answers 200 or 410; key_id names a binding, NULL the instance. */
static int queue_orphan_mitigation(store_tx *tx, const char *guid, const char *key_id)
{
    char id[37];
    rc_new_op n = {.kind = "orphan_mitigation", .instance_id = guid, .key_id = key_id};
    return rc_insert_op(tx, &n, id);
}

/* ---------------------------------------------------------------- one operation, loaded */

typedef struct {
    char id[37], kind[24], state[16], phase[16], key_id[37], initiator[130], prior_state[24];
    char target_plan[72], reason[48];
    char *target_params, *broker_op;
    int64_t attempts, deadline_ms;
    /* the instance */
    char instance_id[37], crn[512], account[64], group[64], offering[72], plan[72];
    char inst_state[24];
    char *inst_params;
    /* the key */
    char key_crn[512], key_role[64];
    char *key_params;
    char bound_key[37]; /* a delete without key_id: a key still bound, if any */
    /* the broker */
    char broker_id[64], url[2100], auth[16], user[256], version[16];
    const void *sealed;
    size_t nsealed;
} op_row;

static void op_row_free(op_row *o)
{
    free(o->target_params);
    free(o->broker_op);
    free(o->inst_params);
    free(o->key_params);
    memset(o, 0, sizeof *o);
}

static char *dup_col(store_stmt *q, int i)
{
    const char *s = store_col_text(q, i);
    return s ? strdup(s) : NULL;
}

/* An operation with its instance, key and broker, as the driver reads it. */
#define OP_SELECT                                                                                  \
    "SELECT o.id, o.kind, o.state, o.phase, o.key_id, o.initiator, o.prior_state, o.plan_id,"      \
    " o.reason, o.parameters, o.broker_operation, o.attempts, o.deadline_ms, i.guid, i.crn,"       \
    " i.account_id, i.resource_group_id, i.offering_id, i.plan_id, i.state, i.parameters,"         \
    " k.crn, k.role, k.parameters, b.id, b.url, b.auth, b.username, b.api_version, b.secret,"      \
    " CASE WHEN o.kind = 'delete' AND o.key_id IS NULL THEN (SELECT guid FROM resource_keys"     \
    " WHERE instance_id = o.instance_id AND state IN ('active', 'removing') LIMIT 1) END FROM"    \
    " rc_operations o JOIN resource_instances i ON i.guid = o.instance_id JOIN brokers b ON"       \
    " b.id = i.broker_id LEFT JOIN resource_keys k ON k.guid = o.key_id"

/* The same columns for recording an answer, which needs neither the broker's address and
 * credentials nor a key still bound (both only start calls): no join of brokers, no
 * subquery. */
#define OP_SELECT_TO_APPLY                                                                         \
    "SELECT o.id, o.kind, o.state, o.phase, o.key_id, o.initiator, o.prior_state, o.plan_id,"      \
    " o.reason, o.parameters, o.broker_operation, o.attempts, o.deadline_ms, i.guid, i.crn,"       \
    " i.account_id, i.resource_group_id, i.offering_id, i.plan_id, i.state, i.parameters,"         \
    " k.crn, k.role, k.parameters, i.broker_id, NULL, NULL, NULL, NULL, NULL, NULL FROM"           \
    " rc_operations o JOIN resource_instances i ON i.guid = o.instance_id LEFT JOIN resource_keys" \
    " k ON k.guid = o.key_id"

/* An operation's row of OP_SELECT (or OP_SELECT_TO_APPLY). With password (≥ 1100 bytes) the broker's Basic password
 * is opened into it. */
static void fill_op(rc_controller *c, store_stmt *q, op_row *o, char *password, size_t pwsz)
{
    memset(o, 0, sizeof *o);
#define COL(i, dst)                                                                                \
    snprintf(dst, sizeof dst, "%s", store_col_text(q, i) ? store_col_text(q, i) : "")
    COL(0, o->id);
    COL(1, o->kind);
    COL(2, o->state);
    COL(3, o->phase);
    COL(4, o->key_id);
    COL(5, o->initiator);
    COL(6, o->prior_state);
    if (!o->prior_state[0])
        snprintf(o->prior_state, sizeof o->prior_state, "active");
    COL(7, o->target_plan);
    COL(8, o->reason);
    o->target_params = dup_col(q, 9);
    o->broker_op = dup_col(q, 10);
    o->attempts = store_col_int(q, 11);
    o->deadline_ms = store_col_int(q, 12);
    COL(13, o->instance_id);
    COL(14, o->crn);
    COL(15, o->account);
    COL(16, o->group);
    COL(17, o->offering);
    COL(18, o->plan);
    COL(19, o->inst_state);
    o->inst_params = dup_col(q, 20);
    COL(21, o->key_crn);
    COL(22, o->key_role);
    o->key_params = dup_col(q, 23);
    COL(24, o->broker_id);
    COL(25, o->url);
    COL(26, o->auth);
    COL(27, o->user);
    COL(28, o->version);
    COL(30, o->bound_key);
#undef COL
    if (password) {
        size_t n = 0;
        const void *sealed = store_col_blob(q, 29, &n);
        password[0] = '\0';
        if (strcmp(o->auth, "basic") == 0 &&
            catalog_broker_password(c->cat, o->broker_id, sealed, n, password, pwsz))
            password[0] = '\0';
    }
    for (size_t ul = strlen(o->url); ul > 0 && o->url[ul - 1] == '/';)
        o->url[--ul] = '\0';
}

/* Loads an operation with its instance and key, to record what became of it. */
static int load_op(rc_controller *c, store_tx *tx, const char *id, op_row *o)
{
    store_stmt *q;
    memset(o, 0, sizeof *o);
    int rc = store_query(tx, OP_SELECT_TO_APPLY " WHERE o.id = ?", &q, "s", id);
    if (rc)
        return rc;
    rc = store_step(q);
    if (rc == STORE_ROW) {
        fill_op(c, q, o, NULL, 0);
        rc = 0;
    } else if (rc == STORE_DONE) {
        rc = OSB_E_NOTFOUND;
    }
    store_done(q);
    return rc;
}

/* ---------------------------------------------------------------- the broker's answers */

/* An instance of an offering in limited visibility that was created and then deleted: what
 * onboarding step 5 asks for. */
static int record_evidence(store_tx *tx, const op_row *o)
{
    store_stmt *q;
    bool wanted = false;
    /* Cheapest first: most offerings are public, and one piece of evidence is enough. */
    int rc = store_query(tx,
                         "SELECT 1 FROM offerings WHERE id = ? AND visibility = 'limited' AND"
                         " NOT EXISTS (SELECT 1 FROM offering_evidence WHERE offering_id = ? AND"
                         " kind = 'instance_lifecycle') AND EXISTS (SELECT 1 FROM rc_operations"
                         " WHERE instance_id = ? AND kind = 'create' AND state = 'succeeded')",
                         &q, "sss", o->offering, o->offering, o->instance_id);
    if (rc)
        return rc;
    wanted = store_step(q) == STORE_ROW;
    store_done(q);
    if (!wanted)
        return 0;
    char detail[96];
    snprintf(detail, sizeof detail, "{\"instance\":\"%s\"}", o->instance_id);
    return store_exec(tx,
                      "INSERT INTO offering_evidence (offering_id, kind, detail, created_ms)"
                      " VALUES (?, 'instance_lifecycle', ?, ?)",
                      "ssi", o->offering, detail, time_now_ms());
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

static const char *operation_of(const json_t *body)
{
    const char *bop = json_string_value(json_object_get(body, "operation"));
    return bop && strlen(bop) <= MAX_OPERATION_CHARS ? bop : "";
}

/* A 4xx from the broker, as the caller sees it: the broker's 400/409/422 pass through. */
static void refused(outcome *oc, long status, const char *what, const char *description)
{
    oc->status = (status == 400 || status == 409 || status == 422) ? (int)status : 502;
    snprintf(oc->code, sizeof oc->code, "%s",
             oc->status == 502 ? "broker_error" : "broker_refused");
    if (status == 401 || status == 403)
        description = "it does not accept the platform's credentials; the provider must correct"
                      " the broker's registration";
    snprintf(oc->message, sizeof oc->message, "The service's broker refused the %s (HTTP %ld)%s%s",
             what, status, description[0] ? ": " : ".", description);
}

/* A timeout, a 5xx, an unexpected 2xx or a malformed answer. */
static void broken(outcome *oc, const rc_result *r, bool obj, const char *what,
                   const char *consequence)
{
    oc->status = 502;
    snprintf(oc->code, sizeof oc->code, "broker_error");
    bool malformed = !obj && r->status >= 200 && r->status <= 202;
    if (r->status)
        snprintf(oc->message, sizeof oc->message,
                 "The service's broker answered the %s with HTTP %ld%s; %s", what, r->status,
                 malformed ? " and a malformed body" : "", consequence);
    else
        snprintf(oc->message, sizeof oc->message,
                 "The service's broker did not answer the %s (%s); %s", what, r->error,
                 consequence);
}

static void failed_async(outcome *oc, const char *code, const char *what, const json_t *body)
{
    oc->status = 502;
    snprintf(oc->code, sizeof oc->code, "%s", code);
    snprintf(oc->message, sizeof oc->message, "The service's broker failed the %s%s%s", what,
             description_of(body)[0] ? ": " : ".", description_of(body));
}

/* The poll's verdict: 1 succeeded, -1 failed, 0 in progress, -2 nonsense. gone_is_success
 * for deletes, where 410 means done. */
static int poll_verdict(const rc_result *r, const json_t *body, bool gone_is_success)
{
    if (r->status == 410)
        return gone_is_success ? 1 : -1;
    const char *st = json_string_value(json_object_get(body, "state"));
    if (r->status != 200 || !st)
        return -2;
    if (strcmp(st, "succeeded") == 0)
        return 1;
    if (strcmp(st, "failed") == 0)
        return -1;
    if (strcmp(st, "in progress") == 0)
        return 0;
    return -2;
}

static int retry_poll(store_tx *tx, const op_row *o, const rc_result *r, outcome *oc)
{
    oc->status = 202; /* a poll that went wrong is retried; the caller sees it in progress */
    return reschedule(tx, o->id, "in_progress", time_now_ms() + backoff_ms(o->attempts), true,
                      NULL, r->status ? "last_operation answered unexpectedly" : r->error);
}

/* Keeps a key's credentials, sealed to the key. */
static int store_credentials(rc_controller *c, store_tx *tx, const char *key_id,
                             const json_t *creds)
{
    char *s = json_dumps(creds ? creds : json_object(), JSON_COMPACT);
    if (!s)
        return OSB_E_NOMEM;
    char ad[80];
    snprintf(ad, sizeof ad, "osbill credentials %s", key_id);
    unsigned char *sealed = NULL;
    size_t n = 0;
    int rc = seal_secret(c->cred_key, ad, s, strlen(s), &sealed, &n);
    secure_wipe(s, strlen(s));
    free(s);
    if (!rc)
        rc = store_exec(tx, "UPDATE resource_keys SET credentials = ? WHERE guid = ?", "bs",
                        sealed, n, key_id);
    free(sealed);
    return rc;
}

int rc_open_credentials(rc_controller *c, const char *key_id, const void *sealed, size_t n,
                        json_t **out)
{
    char ad[80];
    snprintf(ad, sizeof ad, "osbill credentials %s", key_id);
    char *plain = malloc(MAX_CREDENTIALS + 1);
    if (!plain)
        return OSB_E_NOMEM;
    size_t pn = 0;
    int rc = open_secret(c->cred_key, ad, sealed, n, plain, MAX_CREDENTIALS + 1, &pn);
    if (!rc) {
        *out = json_loadb(plain, pn, 0, NULL);
        rc = *out ? 0 : OSB_E_INVAL;
    }
    secure_wipe(plain, MAX_CREDENTIALS + 1);
    free(plain);
    return rc;
}

static int apply_create(store_tx *tx, const op_row *o, const rc_result *r, const json_t *body,
                        outcome *oc)
{
    const char *g = o->instance_id;
    int rc;
    bool obj = json_is_object(body);
    if (strcmp(o->state, "pending") == 0) { /* the PUT's answer */
        if ((r->status == 200 || r->status == 201 || r->status == 202) && obj) {
            const char *dash = json_string_value(json_object_get(body, "dashboard_url"));
            bool async = r->status == 202;
            oc->status = async ? 202 : -1;
            if (dash && (rc = store_exec(tx,
                                         "UPDATE resource_instances SET dashboard_url = ? WHERE"
                                         " guid = ?",
                                         "ss", dash, g)))
                return rc;
            if (async) {
                if ((rc = set_last_operation(tx, g, "create", "in progress", true, "")))
                    return rc;
                return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false,
                                  operation_of(body), NULL);
            }
            if ((rc = instance_moves(tx, g, "active", "create", "succeeded", false, "")))
                return rc;
            return finish_op(tx, o->id, "succeeded", NULL);
        }
        if (r->status >= 400 && r->status < 500) {
            /* The broker created nothing: no orphan mitigation (spec/osb.md). */
            refused(oc, r->status, "provision", description_of(body));
            if ((rc = instance_moves(tx, g, "failed", "create", "failed", false, oc->message)))
                return rc;
            return finish_op(tx, o->id, "failed", oc->message);
        }
        /* What the broker holds is unknown, so the platform deletes it (orphan mitigation);
         * except after a malformed 200, which OSB counts as a plain failure. */
        broken(oc, r, obj, "provision", "the instance failed.");
        if ((rc = instance_moves(tx, g, "failed", "create", "failed", false, oc->message)) ||
            (rc = finish_op(tx, o->id, "failed", oc->message)) || r->status == 200)
            return rc;
        return queue_orphan_mitigation(tx, g, NULL);
    }
    switch (poll_verdict(r, body, false)) {
    case 1:
        oc->status = -1;
        if ((rc = instance_moves(tx, g, "active", "create", "succeeded", true, description_of(body))))
            return rc;
        return finish_op(tx, o->id, "succeeded", NULL);
    case -1:
        failed_async(oc, "provision_failed", "provision", body);
        if ((rc = instance_moves(tx, g, "failed", "create", "failed", true, oc->message)))
            return rc;
        return finish_op(tx, o->id, "failed", oc->message);
    case 0:
        oc->status = 202;
        return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false, NULL, NULL);
    default:
        return retry_poll(tx, o, r, oc);
    }
}

/* The plan change or parameters the broker accepted become the instance's. */
static int updated(store_tx *tx, const op_row *o, bool async, const char *description)
{
    const char *g = o->instance_id;
    int rc = 0;
    if (o->target_plan[0] && strcmp(o->target_plan, o->plan) != 0) {
        int64_t now = time_now_ms();
        if ((rc = store_exec(tx, "UPDATE resource_instances SET plan_id = ? WHERE guid = ?", "ss",
                             o->target_plan, g)) ||
            (rc = store_exec(tx,
                             "INSERT INTO instance_plan_history (instance_id, plan_id, from_ms)"
                             " VALUES (?, ?, ?) ON CONFLICT (instance_id, from_ms) DO UPDATE"
                             " SET plan_id = excluded.plan_id",
                             "ssi", g, o->target_plan, now)))
            return rc;
    }
    if (o->target_params) {
        json_t *now = o->inst_params ? json_loads(o->inst_params, 0, NULL) : NULL;
        json_t *add = json_loads(o->target_params, 0, NULL);
        if (!json_is_object(now)) {
            json_decref(now);
            now = json_object();
        }
        if (json_is_object(add))
            json_object_update(now, add);
        char *s = now ? json_dumps(now, JSON_COMPACT) : NULL;
        json_decref(now);
        json_decref(add);
        if (!s)
            return OSB_E_NOMEM;
        rc = store_exec(tx, "UPDATE resource_instances SET parameters = ? WHERE guid = ?", "ss", s,
                        g);
        free(s);
        if (rc)
            return rc;
    }
    if ((rc = instance_moves(tx, g, o->prior_state, "update", "succeeded", async, description)))
        return rc;
    return finish_op(tx, o->id, "succeeded", NULL);
}

/* A failed update leaves the instance as it was: no orphan mitigation (spec/osb.md). */
static int update_failed(store_tx *tx, const op_row *o, bool async, const outcome *oc)
{
    int rc;
    if ((rc = instance_moves(tx, o->instance_id, o->prior_state, "update", "failed", async, oc->message)))
        return rc;
    return finish_op(tx, o->id, "failed", oc->message);
}

static int apply_update(store_tx *tx, const op_row *o, const rc_result *r, const json_t *body,
                        outcome *oc)
{
    bool obj = json_is_object(body);
    if (strcmp(o->state, "pending") == 0) {
        if (r->status == 200 && obj) {
            oc->status = -1;
            return updated(tx, o, false, "");
        }
        if (r->status == 202 && obj) {
            oc->status = 202;
            int rc = set_last_operation(tx, o->instance_id, "update", "in progress", true, "");
            return rc ? rc
                      : reschedule(tx, o->id, "in_progress", next_poll_ms(r), false,
                                   operation_of(body), NULL);
        }
        if (r->status >= 400 && r->status < 500)
            refused(oc, r->status, "update", description_of(body));
        else
            broken(oc, r, obj, "update", "the instance is unchanged.");
        return update_failed(tx, o, false, oc);
    }
    switch (poll_verdict(r, body, false)) {
    case 1:
        oc->status = -1;
        return updated(tx, o, true, description_of(body));
    case -1:
        failed_async(oc, "update_failed", "update", body);
        return update_failed(tx, o, true, oc);
    case 0:
        oc->status = 202;
        return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false, NULL, NULL);
    default:
        return retry_poll(tx, o, r, oc);
    }
}

/* A reclamation whose deprovisioning failed is tried again in an hour. */
static int reclamation_retry(store_tx *tx, const char *guid)
{
    return store_exec(tx,
                      "UPDATE reclamations SET state = 'SCHEDULED', reclaim_at_ms = ?,"
                      " updated_ms = ? WHERE instance_id = ? AND state = 'RECLAIMING'",
                      "iis", time_now_ms() + 3600 * 1000, time_now_ms(), guid);
}

/* Is the binding gone (1), still going (0), refused (-1) or unknown (-2)? For the answer to
 * a DELETE (polling false) or its last_operation. */
static int unbind_verdict(const op_row *o, const rc_result *r, const json_t *body)
{
    if (strcmp(o->state, "in_progress") == 0)
        return poll_verdict(r, body, true);
    if (r->status == 200 || r->status == 410)
        return 1;
    if (r->status == 202 && json_is_object(body))
        return 0;
    if (r->status >= 400 && r->status < 500)
        return -1;
    return -2;
}

/* A delete first unbinds the instance's keys, one call each (key_id names the one in
 * flight), then deprovisions it. */
static int apply_delete(store_tx *tx, const op_row *o, const rc_result *r, const json_t *body,
                        outcome *oc)
{
    const char *g = o->instance_id;
    bool polling = strcmp(o->state, "in_progress") == 0;
    int rc;
    if (o->key_id[0]) {
        switch (unbind_verdict(o, r, body)) {
        case 1:
            if ((rc = set_key_state(tx, o->key_id, "removed")))
                return rc;
            return store_exec(tx,
                              "UPDATE rc_operations SET state = 'pending', key_id = NULL,"
                              " broker_operation = NULL, next_at_ms = 0, updated_ms = ? WHERE"
                              " id = ?",
                              "is", time_now_ms(), o->id);
        case 0:
            if (polling)
                return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false, NULL, NULL);
            return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false,
                              operation_of(body), NULL);
        case -1:
            if (polling)
                failed_async(oc, "delete_failed", "unbind before the delete", body);
            else
                refused(oc, r->status, "unbind before the delete", description_of(body));
            if ((rc = set_key_state(tx, o->key_id, "active")) ||
                (rc = instance_moves(tx, g, o->prior_state, "delete", "failed", polling,
                                     oc->message)) ||
                (rc = reclamation_retry(tx, g)))
                return rc;
            return finish_op(tx, o->id, "failed", oc->message);
        default:
            oc->status = 202;
            return reschedule(tx, o->id, o->state, time_now_ms() + backoff_ms(o->attempts), true,
                              NULL, r->status ? "the broker answered unexpectedly" : r->error);
        }
    }
    const char *st = json_string_value(json_object_get(body, "state"));
    bool gone = polling ? (r->status == 410 || (r->status == 200 && st && !strcmp(st, "succeeded")))
                        : (r->status == 200 || r->status == 410);
    if (gone) {
        oc->status = -1;
        if ((rc = instance_moves(tx, g, "removed", "delete", "succeeded", polling, "")) ||
            (rc = finish_op(tx, o->id, "succeeded", NULL)) ||
            (rc = store_exec(tx,
                             "UPDATE reclamations SET state = 'RECLAIMED', updated_ms = ? WHERE"
                             " instance_id = ? AND state = 'RECLAIMING'",
                             "is", time_now_ms(), g)))
            return rc;
        return record_evidence(tx, o);
    }
    if (!polling && r->status == 202 && json_is_object(body)) {
        oc->status = 202;
        if ((rc = set_last_operation(tx, g, "delete", "in progress", true, "")))
            return rc;
        return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false, operation_of(body),
                          NULL);
    }
    bool failed = polling ? (r->status == 200 && st && !strcmp(st, "failed"))
                          : (r->status >= 400 && r->status < 500);
    if (failed) {
        if (polling)
            failed_async(oc, "delete_failed", "delete", body);
        else
            refused(oc, r->status, "delete", description_of(body));
        if ((rc = instance_moves(tx, g, o->prior_state, "delete", "failed", polling, oc->message)))
            return rc;
        /* A reclamation the broker refused is tried again in an hour. */
        if ((rc = reclamation_retry(tx, g)))
            return rc;
        return finish_op(tx, o->id, "failed", oc->message);
    }
    if (polling && r->status == 200 && st && !strcmp(st, "in progress")) {
        oc->status = 202;
        return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false, NULL, NULL);
    }
    /* No answer, a 5xx or nonsense: DELETE is idempotent, try again later. */
    oc->status = 202;
    return reschedule(tx, o->id, o->state, time_now_ms() + backoff_ms(o->attempts), true, NULL,
                      r->status ? "the broker answered unexpectedly" : r->error);
}

static int key_failed(store_tx *tx, const op_row *o, bool async, const outcome *oc);

static int key_bound(rc_controller *c, store_tx *tx, const op_row *o, const json_t *body,
                     bool async, outcome *oc)
{
    const json_t *creds = json_object_get(body, "credentials");
    int rc;
    char *text = json_is_object(creds) ? json_dumps(creds, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0;
    if (text)
        secure_wipe(text, len);
    free(text);
    if (len > MAX_CREDENTIALS) {
        /* Credentials the platform could not give back: the binding is undone. */
        oc->status = 502;
        snprintf(oc->code, sizeof oc->code, "broker_error");
        snprintf(oc->message, sizeof oc->message,
                 "The service's broker answered the binding with credentials of %zu bytes; the"
                 " limit is %d. The key failed.",
                 len, MAX_CREDENTIALS);
        if ((rc = key_failed(tx, o, async, oc)))
            return rc;
        return queue_orphan_mitigation(tx, o->instance_id, o->key_id);
    }
    oc->status = -1;
    if ((rc = store_credentials(c, tx, o->key_id, json_is_object(creds) ? creds : NULL)) ||
        (rc = set_key_state(tx, o->key_id, "active")) ||
        (rc = rc_set_last_operation(tx, "resource_keys", o->key_id, "create", "succeeded", async,
                                    "")))
        return rc;
    return finish_op(tx, o->id, "succeeded", NULL);
}

static int key_failed(store_tx *tx, const op_row *o, bool async, const outcome *oc)
{
    int rc;
    if ((rc = set_key_state(tx, o->key_id, "failed")) ||
        (rc = rc_set_last_operation(tx, "resource_keys", o->key_id, "create", "failed", async,
                                    oc->message)))
        return rc;
    return finish_op(tx, o->id, "failed", oc->message);
}

static int apply_bind(rc_controller *c, store_tx *tx, const op_row *o, const rc_result *r,
                      const json_t *body, outcome *oc)
{
    bool obj = json_is_object(body);
    int rc;
    if (strcmp(o->phase, "fetch") == 0) { /* GET of an asynchronous binding */
        if (r->status == 200 && obj)
            return key_bound(c, tx, o, body, true, oc);
        oc->status = 202;
        return reschedule(tx, o->id, "in_progress", time_now_ms() + backoff_ms(o->attempts), true,
                          NULL, "the binding's credentials cannot be fetched yet");
    }
    if (strcmp(o->state, "pending") == 0) {
        if ((r->status == 200 || r->status == 201) && obj)
            return key_bound(c, tx, o, body, false, oc);
        if (r->status == 202 && obj) {
            oc->status = 202;
            if ((rc = rc_set_last_operation(tx, "resource_keys", o->key_id, "create",
                                            "in progress", true, "")))
                return rc;
            return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false,
                              operation_of(body), NULL);
        }
        if (r->status >= 400 && r->status < 500) {
            refused(oc, r->status, "binding", description_of(body));
            return key_failed(tx, o, false, oc);
        }
        broken(oc, r, obj, "binding", "the key failed.");
        if ((rc = key_failed(tx, o, false, oc)) || r->status == 200)
            return rc; /* a malformed 200: failed, without orphan mitigation */
        return queue_orphan_mitigation(tx, o->instance_id, o->key_id);
    }
    switch (poll_verdict(r, body, false)) {
    case 1: /* the credentials come with a GET of the binding */
        oc->status = 0;
        return store_exec(tx,
                          "UPDATE rc_operations SET phase = 'fetch', next_at_ms = 0,"
                          " updated_ms = ? WHERE id = ?",
                          "is", time_now_ms(), o->id);
    case -1:
        failed_async(oc, "binding_failed", "binding", body);
        return key_failed(tx, o, true, oc);
    case 0:
        oc->status = 202;
        return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false, NULL, NULL);
    default:
        return retry_poll(tx, o, r, oc);
    }
}

static int apply_unbind(store_tx *tx, const op_row *o, const rc_result *r, const json_t *body,
                        outcome *oc)
{
    bool polling = strcmp(o->state, "in_progress") == 0;
    int rc;
    switch (unbind_verdict(o, r, body)) {
    case 1:
        oc->status = -1;
        if ((rc = set_key_state(tx, o->key_id, "removed")) ||
            (rc = rc_set_last_operation(tx, "resource_keys", o->key_id, "delete", "succeeded",
                                        polling, "")))
            return rc;
        return finish_op(tx, o->id, "succeeded", NULL);
    case 0:
        oc->status = 202;
        return reschedule(tx, o->id, "in_progress", next_poll_ms(r), false,
                          polling ? NULL : operation_of(body), NULL);
    case -1:
        if (polling)
            failed_async(oc, "delete_failed", "unbinding", body);
        else
            refused(oc, r->status, "unbinding", description_of(body));
        if ((rc = set_key_state(tx, o->key_id, "active")) ||
            (rc = rc_set_last_operation(tx, "resource_keys", o->key_id, "delete", "failed",
                                        polling, oc->message)))
            return rc;
        return finish_op(tx, o->id, "failed", oc->message);
    default:
        oc->status = 202;
        return reschedule(tx, o->id, o->state, time_now_ms() + backoff_ms(o->attempts), true, NULL,
                          r->status ? "the broker answered unexpectedly" : r->error);
    }
}

/* /bluemix_v1 enable or disable. The instance's state changed when the operation was made;
 * the broker is told until it confirms (or the instance is unknown to it). */
/* What the broker was last told; a finished enable also ends a restore waiting for it. */
static int toggle_recorded(store_tx *tx, const op_row *o, bool enable)
{
    int rc = store_exec(tx, "UPDATE resource_instances SET enabled = ? WHERE guid = ?", "is",
                        (int64_t)enable, o->instance_id);
    if (!rc && enable)
        rc = store_exec(tx,
                        "UPDATE reclamations SET state = 'RESTORED', updated_ms = ? WHERE"
                        " instance_id = ? AND state = 'RESTORING'",
                        "is", time_now_ms(), o->instance_id);
    return rc;
}

static int apply_toggle(store_tx *tx, const op_row *o, const rc_result *r)
{
    bool enable = strcmp(o->kind, "enable") == 0;
    int rc;
    if (r->status == 200 || r->status == 204) {
        if ((rc = toggle_recorded(tx, o, enable)))
            return rc;
        return finish_op(tx, o->id, "succeeded", NULL);
    }
    if (r->status == 404 || (r->status >= 400 && r->status < 500 && r->status != 408 &&
                             r->status != 429)) {
        char why[96];
        snprintf(why, sizeof why, "the broker refused to %s the instance (HTTP %ld)",
                 enable ? "enable" : "disable", r->status);
        /* Final: recorded as done so that reconciling does not ask again and again. */
        if ((rc = toggle_recorded(tx, o, enable)))
            return rc;
        return finish_op(tx, o->id, "failed", why);
    }
    return reschedule(tx, o->id, "pending", time_now_ms() + backoff_ms(o->attempts), true, NULL,
                      r->status ? "the broker answered unexpectedly" : r->error);
}

static int apply_orphan(store_tx *tx, const op_row *o, const rc_result *r)
{
    if (r->status == 200 || r->status == 410)
        return finish_op(tx, o->id, "succeeded", NULL);
    return reschedule(tx, o->id, "pending", time_now_ms() + backoff_ms(o->attempts), true, NULL,
                      r->status ? "the broker has not confirmed the delete" : r->error);
}

/* One broker answer, applied inside the group commit's transaction (on its thread) and then
 * handed back to the driver, which answers the waiting requests. */
struct rc_applied {
    rc_applied *next;
    rc_controller *c;
    rc_result *r;
    json_t *body;
    outcome oc;
    json_t *instance; /* the instance the outcome left, for a request waiting for it */
    int rc;
};

static int apply_work(store_tx *tx, void *ud)
{
    rc_applied *a = ud;
    rc_controller *c = a->c;
    const rc_result *r = a->r;
    const json_t *body = a->body;
    outcome *oc = &a->oc;
    op_row o = {0};
    int rc = load_op(c, tx, r->op_id, &o);
    if (!rc && strcmp(o.state, "pending") && strcmp(o.state, "in_progress"))
        rc = OSB_E_CONFLICT; /* finished meanwhile: the answer is stale */
    if (!rc && store_shared(c->db)) { /* another node took the operation over: stale too */
        char name[48];
        int64_t t = time_now_ms();
        op_lease_name(name, r->op_id);
        int held = store_lease_take(tx, name, t, t + op_hold_ms(c), NULL, 0);
        rc = held == 1 ? 0 : held < 0 ? held : OSB_E_CONFLICT;
    }
    if (!rc) {
        if (strcmp(o.kind, "create") == 0)
            rc = apply_create(tx, &o, r, body, oc);
        else if (strcmp(o.kind, "update") == 0)
            rc = apply_update(tx, &o, r, body, oc);
        else if (strcmp(o.kind, "delete") == 0)
            rc = apply_delete(tx, &o, r, body, oc);
        else if (strcmp(o.kind, "bind") == 0)
            rc = apply_bind(c, tx, &o, r, body, oc);
        else if (strcmp(o.kind, "unbind") == 0)
            rc = apply_unbind(tx, &o, r, body, oc);
        else if (strcmp(o.kind, "enable") == 0 || strcmp(o.kind, "disable") == 0)
            rc = apply_toggle(tx, &o, r);
        else
            rc = apply_orphan(tx, &o, r);
    }
    /* An operation that ended may leave an instance out of line with its account (it was
     * suspended or reactivated meanwhile). */
    if (!rc && oc->status != 202)
        rc = rc_reconcile(tx, o.instance_id, NULL, NULL, NULL);
    if (!rc && oc->status == -1 && instance_wanted(c, r->op_id))
        a->instance = rc_instance_json(tx, o.instance_id);
    op_row_free(&o);
    return rc;
}

static void apply_done(void *ud, int rc)
{
    rc_applied *a = ud;
    rc_controller *c = a->c;
    a->rc = rc;
    pthread_mutex_lock(&c->mu);
    a->next = c->applied;
    c->applied = a;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void applied_free(rc_applied *a)
{
    json_decref(a->instance);
    json_decref(a->body);
    free(a->r->body);
    free(a->r);
    free(a);
}

/* On the driver's thread, once the answer's effects are on disk (or failed to get there). */
static void finish_applied(rc_controller *c, rc_applied *a)
{
    const char *op_id = a->r->op_id;
    if (a->rc == OSB_E_CONFLICT || a->rc == OSB_E_NOTFOUND) {
        /* A late answer to an operation that has finished or gone: nothing to do. */
    } else if (a->rc) {
        /* Nothing was recorded: the operation stays due and is tried again. */
        log_msg(LOG_WARN, "controller: operation %s: cannot record the broker's answer (%s)",
                op_id, base_strerror(a->rc));
    } else {
        answer_waiters(c, op_id, &a->oc, a->rc ? NULL : a->instance);
    }
    pthread_mutex_lock(&c->mu);
    idset_remove(&c->flying, op_id);
    /* Its next step may be due at once (a delete's next key, or the deprovision after the
     * last one): an answer that finished it (-1) or set a time (202) leaves nothing due now.
     * Operations an answer queued (an orphan mitigation, a reconcile's) are found on the
     * next tick. */
    if (!a->rc && !a->oc.status)
        hand_over(c, op_id);
    pthread_mutex_unlock(&c->mu);
    applied_free(a);
}

/* Queues a broker answer for the group commit. */
static void apply_result(rc_controller *c, rc_result *r)
{
    rc_applied *a = calloc(1, sizeof *a);
    if (a) {
        a->c = c;
        a->r = r;
        a->body = r->body ? json_loads(r->body, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (store_group_submit(c->group, apply_work, apply_done, a) == 0)
            return;
        a->r = NULL;
        json_decref(a->body);
        free(a);
    }
    /* Not queued: the operation stays due and is sent again. */
    pthread_mutex_lock(&c->mu);
    idset_remove(&c->flying, r->op_id);
    pthread_mutex_unlock(&c->mu);
    free(r->body);
    free(r);
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
        idset_remove(&c->flying, x->op_id); /* lost: the operation becomes due again */
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
    int rc = load_op(c, tx, id, &o);
    bool toggle = !rc && (strcmp(o.kind, "enable") == 0 || strcmp(o.kind, "disable") == 0);
    if (!rc && (strcmp(o.kind, "create") == 0 || strcmp(o.kind, "update") == 0 ||
                strcmp(o.kind, "delete") == 0)) {
        const char *back = strcmp(o.kind, "create") == 0 ? "failed" : o.prior_state;
        rc = instance_moves(tx, o.instance_id, back, o.kind, "failed", true, oc.message);
        /* a delete that expired while unbinding a key leaves the key as it was */
        if (!rc && o.key_id[0] && strcmp(o.kind, "delete") == 0)
            rc = set_key_state(tx, o.key_id, "active");
        if (!rc && strcmp(o.kind, "delete") == 0)
            rc = reclamation_retry(tx, o.instance_id);
    } else if (toggle) {
        /* Final, as a refusal is: reconciling does not ask again and again. */
        rc = toggle_recorded(tx, &o, strcmp(o.kind, "enable") == 0);
    } else if (!rc && (strcmp(o.kind, "bind") == 0 || strcmp(o.kind, "unbind") == 0)) {
        rc = set_key_state(tx, o.key_id, strcmp(o.kind, "bind") == 0 ? "failed" : "active");
        if (!rc)
            rc = rc_set_last_operation(tx, "resource_keys", o.key_id,
                                       strcmp(o.kind, "bind") == 0 ? "create" : "delete",
                                       "failed", true, oc.message);
    }
    if (!rc)
        rc = finish_op(tx, id, "failed", oc.message);
    if (!rc)
        rc = rc_reconcile(tx, o.instance_id, NULL, NULL, NULL);
    rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    if (!rc)
        answer_waiters(c, id, &oc, NULL);
    op_row_free(&o);
}

/* The OSB body's "context" (IBM Cloud's shape). */
static json_t *osb_context(const op_row *o)
{
    char rg[256];
    snprintf(rg, sizeof rg, "crn:v1:osbill:public:resource-controller::a/%s::resource-group:%s",
             o->account, o->group);
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "platform", "osbill", "account_id", o->account,
                     "crn", o->crn, "resource_group_crn", rg, "target_crn", o->crn);
}

static void set_json_text(json_t *b, const char *key, const char *text)
{
    json_t *p = text ? json_loads(text, 0, NULL) : NULL;
    if (p)
        json_object_set_new(b, key, p);
}

/* A delete unbinds the instance's keys first: the next one still bound, if any. */
static int next_key_to_unbind(rc_controller *c, op_row *o)
{
    store_tx *tx;
    store_stmt *q;
    char key[37] = "";
    int rc = store_begin(c->db, true, &tx);
    if (rc)
        return rc;
    rc = store_query(tx,
                     "SELECT guid FROM resource_keys WHERE instance_id = ? AND state IN"
                     " ('active', 'removing') ORDER BY created_ms LIMIT 1",
                     &q, "s", o->instance_id);
    if (!rc) {
        if (store_step(q) == STORE_ROW)
            snprintf(key, sizeof key, "%s", store_col_text(q, 0));
        store_done(q);
    }
    if (!rc && key[0])
        rc = store_exec(tx, "UPDATE resource_keys SET state = 'removing' WHERE guid = ?", "s",
                        key);
    if (!rc && key[0])
        rc = store_exec(tx, "UPDATE rc_operations SET key_id = ? WHERE id = ?", "ss", key, o->id);
    if (!rc && key[0]) {
        store_stmt *k;
        rc = store_query(tx, "SELECT crn FROM resource_keys WHERE guid = ?", &k, "s", key);
        if (!rc) {
            if (store_step(k) == STORE_ROW) {
                snprintf(o->key_id, sizeof o->key_id, "%s", key);
                snprintf(o->key_crn, sizeof o->key_crn, "%s", store_col_text(k, 0));
            }
            store_done(k);
        }
    }
    return rc ? (store_rollback(tx), rc) : store_commit(tx);
}

/* The broker call an operation waits for: method, URL (malloc'd) and JSON body (malloc'd or
 * NULL). *identity tells whether the user's identity goes with it. */
static int build_call(const op_row *o, const char **method, char **url, char **body,
                      bool *identity)
{
    char ecrn[1600], ekey[1600], esvc[220], eplan[220];
    char *eop = malloc(3 * MAX_OPERATION_CHARS + 1);
    if (!eop)
        return OSB_E_NOMEM;
    rc_pct(o->crn, ecrn, sizeof ecrn);
    rc_pct(o->key_crn, ekey, sizeof ekey);
    rc_pct(o->offering, esvc, sizeof esvc);
    rc_pct(o->plan, eplan, sizeof eplan);
    rc_pct(o->broker_op ? o->broker_op : "", eop, 3 * MAX_OPERATION_CHARS + 1);
    const char *amp = eop[0] ? "&operation=" : "";
    bool polling = strcmp(o->state, "in_progress") == 0;
    bool binding = o->key_id[0] != '\0';
    const char *k = o->kind;
    json_t *b = NULL;
    buf u;
    buf_init(&u, 64 * 1024);
    int rc = 0;
    *method = "GET";
    *body = NULL;
    *identity = o->initiator[0] && strcmp(k, "orphan_mitigation") != 0 && !polling;
    if (strcmp(k, "bind") == 0 && strcmp(o->phase, "fetch") == 0) {
        rc = buf_printf(&u, "%s/v2/service_instances/%s/service_bindings/%s", o->url, ecrn, ekey);
        *identity = false;
    } else if (polling && binding) {
        rc = buf_printf(&u,
                        "%s/v2/service_instances/%s/service_bindings/%s/last_operation?"
                        "service_id=%s&plan_id=%s%s%s",
                        o->url, ecrn, ekey, esvc, eplan, amp, eop);
    } else if (polling) {
        rc = buf_printf(&u,
                        "%s/v2/service_instances/%s/last_operation?service_id=%s&plan_id=%s%s%s",
                        o->url, ecrn, esvc, eplan, amp, eop);
    } else if (strcmp(k, "create") == 0) {
        *method = "PUT";
        b = json_pack("{s:s,s:s,s:o}", "service_id", o->offering, "plan_id", o->plan, "context",
                      osb_context(o));
        if (b)
            set_json_text(b, "parameters", o->inst_params);
        rc = buf_printf(&u, "%s/v2/service_instances/%s?accepts_incomplete=true", o->url, ecrn);
    } else if (strcmp(k, "update") == 0) {
        *method = "PATCH";
        b = json_pack("{s:s,s:s,s:o,s:{s:s,s:s}}", "service_id", o->offering, "plan_id",
                      o->target_plan[0] ? o->target_plan : o->plan, "context", osb_context(o),
                      "previous_values", "service_id", o->offering, "plan_id", o->plan);
        if (b)
            set_json_text(b, "parameters", o->target_params);
        rc = buf_printf(&u, "%s/v2/service_instances/%s?accepts_incomplete=true", o->url, ecrn);
    } else if (strcmp(k, "bind") == 0) {
        *method = "PUT";
        b = json_pack("{s:s,s:s,s:o,s:{s:s}}", "service_id", o->offering, "plan_id", o->plan,
                      "context", osb_context(o), "bind_resource", "app_guid", o->key_crn);
        if (b) {
            /* IBM Cloud sends the key's role in the parameters as well. */
            json_t *p = o->key_params ? json_loads(o->key_params, 0, NULL) : NULL;
            if (p)
                json_object_set_new(b, "parameters", p);
        }
        rc = buf_printf(&u,
                        "%s/v2/service_instances/%s/service_bindings/%s?accepts_incomplete=true",
                        o->url, ecrn, ekey);
    } else if (binding) { /* unbind, a delete's unbind, a binding's orphan mitigation */
        *method = "DELETE";
        rc = buf_printf(&u,
                        "%s/v2/service_instances/%s/service_bindings/%s?service_id=%s&plan_id=%s"
                        "&accepts_incomplete=true",
                        o->url, ecrn, ekey, esvc, eplan);
    } else if (strcmp(k, "enable") == 0 || strcmp(k, "disable") == 0) {
        *method = "PUT";
        b = json_pack("{s:b,s:s,s:s}", "enabled", strcmp(k, "enable") == 0, "initiator_id",
                      o->initiator[0] ? o->initiator : "osbill", "reason_code",
                      o->reason[0] ? o->reason : "IBMCLOUD_ADMIN_REQUEST");
        rc = buf_printf(&u, "%s/bluemix_v1/service_instances/%s", o->url, ecrn);
        *identity = false;
    } else { /* delete, an instance's orphan mitigation */
        *method = "DELETE";
        rc = buf_printf(&u,
                        "%s/v2/service_instances/%s?service_id=%s&plan_id=%s"
                        "&accepts_incomplete=true",
                        o->url, ecrn, esvc, eplan);
    }
    free(eop);
    if (b) {
        *body = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        if (!*body)
            rc = OSB_E_NOMEM;
    } else if (strcmp(*method, "PUT") == 0 || strcmp(*method, "PATCH") == 0) {
        rc = OSB_E_NOMEM;
    }
    *url = rc ? NULL : buf_take(&u);
    buf_free(&u);
    if (!rc && !*url)
        rc = OSB_E_NOMEM;
    if (rc) {
        free(*body);
        *body = NULL;
    }
    return rc;
}

/* The platform's token for a broker (driver thread), renewed well before it expires. NULL
 * when none can be issued. */
static const char *broker_token(rc_controller *c, const char *broker_id)
{
    int64_t now = time_now_ms() / 1000;
    struct rc_broker_token *slot = NULL, *oldest = &c->tokens[0];
    for (size_t i = 0; i < ARRAY_LEN(c->tokens); i++) {
        struct rc_broker_token *t = &c->tokens[i];
        if (strcmp(t->broker_id, broker_id) == 0) {
            slot = t;
            break;
        }
        if (t->exp < oldest->exp)
            oldest = t;
    }
    if (slot && slot->token && slot->exp - now > 300)
        return slot->token;
    if (!slot)
        slot = oldest;
    if (slot->token)
        secure_wipe(slot->token, strlen(slot->token));
    free(slot->token);
    memset(slot, 0, sizeof *slot);
    if (iam_issue_broker_token(c->iam, broker_id, &slot->token, &slot->exp))
        return NULL;
    snprintf(slot->broker_id, sizeof slot->broker_id, "%s", broker_id);
    return slot->token;
}

/* Sends the broker call a loaded operation is waiting for; frees o and wipes password. */
static void start_op(rc_controller *c, op_row *op, char *password, size_t pwsz)
{
    op_row o = *op;
    const char *id = op->id;
    int rc;
    if (time_now_ms() > o.deadline_ms) {
        secure_wipe(password, pwsz);
        expire_op(c, id);
        op_row_free(&o);
        return;
    }
    if (strcmp(o.kind, "delete") == 0 && strcmp(o.state, "pending") == 0 && !o.key_id[0] &&
        o.bound_key[0] && next_key_to_unbind(c, &o)) {
        secure_wipe(password, pwsz);
        op_row_free(&o);
        return; /* tried again on the next tick */
    }

    const char *method = "GET";
    char *url = NULL, *body = NULL;
    bool identity = false;
    rc = build_call(&o, &method, &url, &body, &identity);
    char hv[64], hid[96], horigin[600] = "";
    char rid[37];
    uuid_v4(rid);
    snprintf(hv, sizeof hv, "X-Broker-API-Version: %s", o.version[0] ? o.version : "2.17");
    snprintf(hid, sizeof hid, "X-Broker-API-Request-Identity: %s", rid);
    if (!rc && identity) {
        json_t *w = json_pack("{s:s}", "iam_id", o.initiator);
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

    bool basic = strcmp(o.auth, "basic") == 0 && o.user[0];
    const char *bearer = strcmp(o.auth, "bearer") == 0 ? broker_token(c, o.broker_id) : NULL;
    if (!rc && strcmp(o.auth, "bearer") == 0 && !bearer)
        rc = OSB_E_NOMEM;
    http_client_request req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .max_body = MAX_ANSWER,
        .timeout_ms = c->opt.broker_timeout_ms,
        .basic_user = basic ? o.user : NULL,
        .basic_password = basic ? password : NULL,
        .bearer_token = bearer,
    };
    call_ctx *x = rc ? NULL : calloc(1, sizeof *x);
    if (!rc && !x)
        rc = OSB_E_NOMEM;
    if (!rc) {
        x->c = c;
        snprintf(x->op_id, sizeof x->op_id, "%.36s", id);
        pthread_mutex_lock(&c->mu);
        rc = idset_add(&c->flying, id);
        pthread_mutex_unlock(&c->mu);
    }
    if (!rc && (rc = http_client_send(c->client, &req, on_done, x))) {
        pthread_mutex_lock(&c->mu);
        idset_remove(&c->flying, id);
        pthread_mutex_unlock(&c->mu);
    }
    secure_wipe(password, pwsz);
    free(url);
    free(body);
    op_row_free(&o);
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

/* Adds id to the ids to start unless it is there already or has a call in flight. Under
 * c->mu. */
static void pick(rc_controller *c, char ids[][37], size_t *nids, const char *id)
{
    if (idset_has(&c->flying, id))
        return;
    for (size_t i = 0; i < *nids; i++)
        if (strcmp(ids[i], id) == 0)
            return;
    memcpy(ids[(*nids)++], id, 37);
}

/* Starts due operations that have no call in flight: those handed over (fresh), and with
 * scan every one the store has due. Their ids come from the due index alone; only the
 * operations started are read with their instance, key and broker. */
static void start_due(rc_controller *c, bool scan, const rc_idset *fresh)
{
    typedef struct {
        op_row o;
        char password[1100];
    } due;
    char ids[DUE_BATCH][37];
    due *d[DUE_BATCH];
    size_t nids = 0, n = 0, nfresh = 0;
    store_tx *tx;
    store_stmt *q;
    if (store_begin(c->db, false, &tx))
        return;
    int64_t now = time_now_ms(), after_at = INT64_MIN;
    bool shared = store_shared(c->db);
    pthread_mutex_lock(&c->mu);
    for (; nfresh < fresh->n && nids < DUE_BATCH; nfresh++)
        pick(c, ids, &nids, fresh->ids[nfresh]);
    pthread_mutex_unlock(&c->mu);
    /* Calls in flight keep their due time and sort first: page past them (by due time, then
     * id) so that a broker with many hanging calls never holds up the others'. */
    char after_id[37] = "";
    for (int page = 0; scan && page < 16 && nids < DUE_BATCH; page++) {
        size_t seen = 0;
        /* shared: past those another node has claimed, too */
        if (store_query(tx,
                        shared ? "SELECT id, next_at_ms FROM rc_operations o WHERE state IN"
                                 " ('pending', 'in_progress') AND next_at_ms <= ?1 AND"
                                 " (next_at_ms > ?2 OR (next_at_ms = ?2 AND id > ?3)) AND NOT"
                                 " EXISTS (SELECT 1 FROM store_leases l WHERE l.name = 'rc.op.'"
                                 " || o.id AND l.until_ms >= ?1 AND l.node <> ?4) ORDER BY"
                                 " next_at_ms, id LIMIT 256"
                               : "SELECT id, next_at_ms FROM rc_operations WHERE state IN"
                                 " ('pending', 'in_progress') AND next_at_ms <= ?1 AND"
                                 " (next_at_ms > ?2 OR (next_at_ms = ?2 AND id > ?3)) ORDER BY"
                                 " next_at_ms, id LIMIT 256",
                        &q, shared ? "iiss" : "iis", now, after_at, after_id, store_node()))
            break;
        pthread_mutex_lock(&c->mu);
        while (nids < DUE_BATCH && store_step(q) == STORE_ROW) {
            const char *id = store_col_text(q, 0);
            seen++;
            after_at = store_col_int(q, 1);
            snprintf(after_id, sizeof after_id, "%.36s", id ? id : "");
            if (id && strlen(id) < 37)
                pick(c, ids, &nids, after_id);
        }
        pthread_mutex_unlock(&c->mu);
        store_done(q);
        if (seen < 256)
            break;
    }
    for (size_t i = 0; i < nids; i++) {
        if (store_query(tx,
                        OP_SELECT " WHERE o.id = ? AND o.state IN ('pending', 'in_progress')"
                                  " AND o.next_at_ms <= ?",
                        &q, "si", ids[i], now))
            break;
        if (store_step(q) == STORE_ROW && (d[n] = malloc(sizeof *d[n]))) {
            fill_op(c, q, &d[n]->o, d[n]->password, sizeof d[n]->password);
            n++;
        }
        store_done(q);
    }
    store_rollback(tx);
    /* Nodes sharing the store start an operation once: the one whose claim on it commits.
     * The claim outlives the broker's call, so a node that dies mid-call leaves it to the
     * others once it expires; a claim already held (this node's, from its last call) is
     * renewed. */
    if (n && shared) {
        bool mine[DUE_BATCH] = {false};
        int64_t t = time_now_ms();
        if (!store_begin(c->db, true, &tx)) {
            int rc = 0;
            for (size_t i = 0; i < n && rc >= 0; i++) {
                char name[48];
                op_lease_name(name, d[i]->o.id);
                rc = store_lease_take(tx, name, t, t + op_hold_ms(c), NULL, 0);
                mine[i] = rc == 1;
            }
            if (rc < 0 || store_commit(tx)) {
                if (rc < 0)
                    store_rollback(tx);
                memset(mine, 0, sizeof mine);
            }
        }
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (mine[i]) {
                d[kept++] = d[i];
            } else {
                op_row_free(&d[i]->o);
                secure_wipe(d[i], sizeof *d[i]);
                free(d[i]);
            }
        }
        n = kept;
    }
    for (size_t i = 0; i < n; i++) {
        start_op(c, &d[i]->o, d[i]->password, sizeof d[i]->password);
        secure_wipe(d[i], sizeof *d[i]);
        free(d[i]);
    }
    if (nfresh < fresh->n) { /* more than a batch handed over: the rest next time */
        pthread_mutex_lock(&c->mu);
        for (size_t i = nfresh; i < fresh->n; i++)
            hand_over(c, fresh->ids[i]);
        pthread_mutex_unlock(&c->mu);
    }
}

static void *driver_main(void *arg)
{
    rc_controller *c = arg;
    pthread_setname_np(pthread_self(), "rc-driver");
    int64_t last_reclaim_us = 0, last_scan_us = 0;
    rc_idset fresh = {0};
    pthread_mutex_lock(&c->mu);
    while (!c->closing) {
        rc_result *rs = c->results;
        c->results = NULL;
        /* Take the handed-over ids (swap the sets: no copy, no allocation). */
        rc_idset t = fresh;
        fresh = c->fresh;
        c->fresh = t;
        c->fresh.n = 0;
        bool scan = c->kick;
        c->kick = false;
        rc_applied *done = c->applied;
        c->applied = NULL;
        pthread_mutex_unlock(&c->mu);
        while (rs) {
            rc_result *next = rs->next;
            if (!rs->canceled) {
                apply_result(c, rs); /* owns rs from here */
            } else {
                pthread_mutex_lock(&c->mu);
                idset_remove(&c->flying, rs->op_id);
                pthread_mutex_unlock(&c->mu);
                free(rs->body);
                free(rs);
            }
            rs = next;
        }
        while (done) {
            rc_applied *next = done->next;
            finish_applied(c, done);
            done = next;
        }
        for (rc_waiter *w = take_waiters(c, NULL, true), *next; w; w = next) {
            next = w->next;
            rc_reply(c, w->req, w->obj, w->guid, 202);
            http_resume(w->req);
            free(w);
        }
        if (time_mono_us() - last_reclaim_us > 1000000) {
            rc_reclaim_due(c);
            last_reclaim_us = time_mono_us();
        }
        if (time_mono_us() - last_scan_us >= (int64_t)TICK_MS * 1000)
            scan = true;
        if (scan)
            last_scan_us = time_mono_us();
        start_due(c, scan, &fresh);
        fresh.n = 0;
        pthread_mutex_lock(&c->mu);
        if (!c->results && !c->applied && !c->kick && !c->fresh.n && !c->closing) {
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
    free(fresh.ids);
    return NULL;
}

/* ---------------------------------------------------------------- module */

int rc_open(store *db, iam *m, catalog *cat, const rc_options *opt, rc_controller **out)
{
    rc_controller *c = calloc(1, sizeof *c);
    if (!c)
        return OSB_E_NOMEM;
    c->db = db;
    c->iam = m;
    c->cat = cat;
    c->opt.reclamation_s = RC_DEFAULT_RECLAMATION_S;
    if (opt)
        c->opt = *opt;
    iam_derive_key(m, "controller credentials", c->cred_key);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    /* Up to 32 calls at once per broker: a broker that commits its state in groups (as
     * libosb does) gets groups worth the flush. */
    http_client_config cc = {.name = "controller", .user_agent = "osbill-controller",
                             .untrusted_targets = true, .max_host_connections = 32,
                             .max_connections = 256};
    int rc = http_client_start(&cc, &c->client);
    if (!rc)
        rc = store_group_start(db, &c->group);
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
    /* What is queued for the disk gets there; its waiters hear 503 below. */
    store_group_stop(c->group);
    for (rc_result *r = c->results, *next; r; r = next) {
        next = r->next;
        free(r->body);
        free(r);
    }
    for (rc_applied *a = c->applied, *next; a; a = next) {
        next = a->next;
        applied_free(a);
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
    free(c->flying.ids);
    free(c->fresh.ids);
    for (size_t i = 0; i < ARRAY_LEN(c->tokens); i++) {
        if (c->tokens[i].token)
            secure_wipe(c->tokens[i].token, strlen(c->tokens[i].token));
        free(c->tokens[i].token);
    }
    secure_wipe(c->cred_key, sizeof c->cred_key);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void rc_routes(rc_controller *c, http_router *r)
{
    rc_api_routes(c, r);
    rc_key_routes(c, r);
    rc_lifecycle_routes(c, r);
}
