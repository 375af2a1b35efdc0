/* controller internals shared by its files: the module's state, the operation driver's
 * hooks for the API handlers, and the JSON of instances and keys. */
#ifndef OSBILL_CONTROLLER_INT_H
#define OSBILL_CONTROLLER_INT_H

#include <pthread.h>

#include "catalog/catalog_int.h"
#include "controller/controller.h"
#include "http/client.h"
#include "store/store_json.h"

#define RC_WAIT_MS            2000 /* a request waits this long for the broker, then gets 202 */
#define RC_DEFAULT_MAX_POLL_S (7LL * 86400)
#define RC_MAX_NAME           180 /* characters of an instance's or key's name */

typedef struct rc_result rc_result;
typedef struct rc_applied rc_applied;
typedef struct rc_waiter rc_waiter;

/* What a waiting request is answered with: an instance, a key with its credentials (only
 * for the key's creator, its own account), or a key without them. */
typedef enum { RC_INSTANCE, RC_KEY, RC_KEY_BARE } rc_object;

/* A small set of operation ids (few enough to scan). */
typedef struct {
    char (*ids)[37];
    size_t n, cap;
} rc_idset;

struct rc_controller {
    store *db;
    iam *iam;
    catalog *cat;
    http_client *client;
    store_group *group; /* every write of the hot path shares its commits */
    rc_options opt;
    unsigned char cred_key[32]; /* seals the brokers' credentials */

    pthread_t driver;
    bool driver_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool closing, kick;
    /* under mu */
    rc_result *results;   /* broker answers waiting for the driver (LIFO; order is free) */
    rc_applied *applied;  /* answers on disk, their waiters to be answered */
    rc_waiter *waiters; /* requests deferred until their operation's first outcome */
    rc_idset flying; /* operations with a broker call in flight */
    rc_idset fresh;  /* operations just written by a request, for the driver to start */

    /* the driver thread's: tokens for brokers that take the platform's bearer token */
    struct rc_broker_token {
        char broker_id[64];
        char *token;
        int64_t exp;
    } tokens[16];
};

/* Hands a deferred request to the driver: it is answered (and resumed) when the operation
 * op_id first reaches an outcome the caller can see, or after RC_WAIT_MS with 202 and the
 * object's state. ok_status is the status of a finished operation (201 create, 200 update,
 * 204 delete). Wakes the driver, which starts the operation at once. */
void rc_wait(rc_controller *c, http_req *req, const char *op_id, rc_object obj, const char *guid,
             int ok_status);
/* Wakes the driver: an operation became due. */
void rc_kick(rc_controller *c);
/* rc_wait when the request can be deferred, else an immediate 202 (the server is stopping). */
void rc_wait_or_accept(rc_controller *c, http_req *req, const char *op_id, rc_object obj,
                       const char *guid, int ok_status);

/* A handler's write through the group commit: the request is deferred while its write waits
 * for the shared commit; then runs (on the committer's thread, or at once when the request
 * cannot be deferred) with the write's result, answers or hands over the request with the
 * rc_write_* helpers, and frees the unit. Embed rc_write first in the unit. */
typedef struct rc_write rc_write;
struct rc_write {
    rc_controller *c;
    http_req *req;
    bool deferred;
    void (*then)(rc_write *w, int rc);
};
void rc_submit(rc_write *w, store_work_fn work, void (*then)(rc_write *w, int rc));
void rc_write_fail(rc_write *w, int status, const char *code, const char *message);
/* The write made operation op_id: the request waits for it as rc_wait says. */
void rc_write_wait(rc_write *w, const char *op_id, rc_object obj, const char *guid,
                   int ok_status);
/* Answers with the object as it is now. */
void rc_write_reply(rc_write *w, rc_object obj, const char *guid, int status);

/* The instance as the API shows it (IBM Cloud resource controller shape); NULL when absent
 * or on a store error. */
json_t *rc_instance_json(store_tx *tx, const char *guid);
/* The key as the API shows it; credentials opened only when with_credentials. */
json_t *rc_key_json(rc_controller *c, store_tx *tx, const char *guid, bool with_credentials);

/* Opens a key's sealed credentials into *out (the caller's). OSB_E_INVAL when they do not
 * open. */
int rc_open_credentials(rc_controller *c, const char *key_id, const void *sealed, size_t n,
                        json_t **out) WARN_UNUSED;

/* Answers req with the object's current state: status, or 202 while it is in flight. */
void rc_reply(rc_controller *c, http_req *req, rc_object obj, const char *guid, int status);

/* Records an operation (kind as in rc_operations) of an instance, due now. OSB_E_CONFLICT
 * when another operation of the instance is in flight (the store's unique index). */
typedef struct {
    const char *kind, *instance_id, *key_id, *initiator, *prior_state;
    const char *plan_id, *parameters, *reason;
    int64_t max_polling_s; /* 0: the default */
} rc_new_op;
int rc_insert_op(store_tx *tx, const rc_new_op *n, char id_out[37]) WARN_UNUSED;
/* Sets an instance's (or key's) last_operation. */
int rc_set_last_operation(store_tx *tx, const char *table, const char *guid, const char *type,
                          const char *state, bool async, const char *description) WARN_UNUSED;

/* An instance as the handlers check it. */
typedef struct {
    char guid[37], account_id[64], state[24], offering_id[72], service_name[64];
    char plan_id[72], region[40], broker_id[64], crn[512], visibility[16];
} rc_inst_ref;

/* The instance a request names (guid or CRN, decoded by the router), if the caller's account
 * owns it (or the caller is the operator): existence does not leak across accounts.
 * OSB_E_NOTFOUND, or a store error. */
int rc_find_instance(store_tx *tx, const char *id, const iam_principal *p,
                     rc_inst_ref *out) WARN_UNUSED;
/* The access decision for action on the instance; false after a 403. */
bool rc_allowed(rc_controller *c, http_req *req, const iam_principal *p, const char *action,
                const rc_inst_ref *i);
/* 409 operation_in_progress: one operation at a time per instance (its keys' included). */
void rc_busy(http_req *req);
/* 400 invalid_field naming field. */
void rc_field_error(http_req *req, const char *field, const char *message);
/* Opens a transaction, or replies 503. */
bool rc_begin(rc_controller *c, http_req *req, bool write, store_tx **tx);
/* True when the account is suspended. */
bool rc_account_suspended(store_tx *tx, const char *account_id);

/* Validates params against the plan's schemas.<object>.<action>.parameters, if it has one;
 * false after a 400 naming "parameters". */
bool rc_check_parameters(http_req *req, const json_t *plan_doc, const char *object,
                         const char *action, const json_t *params);

/* A page of a list: limit and start from the query (rc_page_parse: false after a 400), the
 * filters that next_url repeats. */
typedef struct {
    const char *path;
    http_filter filters[5]; /* value NULL: not filtered */
    int64_t limit, after;
} rc_page;
bool rc_page_parse(http_req *req, rc_page *pg);
/* Replies the page of the query q (rows of (guid, rowid), limit + 1 of them, or rc its
 * failure), each row's JSON made by row; ends tx. */
void rc_page_reply(rc_controller *c, http_req *req, store_tx *tx, store_stmt *q, int rc,
                   const rc_page *pg,
                   json_t *(*row)(rc_controller *c, store_tx *tx, const char *guid));
/* A column as RFC 3339 time or null; a column of JSON text as JSON or null. */
json_t *rc_json_col(store_stmt *q, int col);

/* Percent-encodes s for a URL's path segment or query value. */
void rc_pct(const char *s, char *out, size_t n);

void rc_api_routes(rc_controller *c, http_router *r);
void rc_key_routes(rc_controller *c, http_router *r);
void rc_lifecycle_routes(rc_controller *c, http_router *r);
/* lifecycle.c: brings an instance's state and enablement in line with its account (suspended:
 * inactive and disabled; active: active and enabled), queueing an enable or disable, unless
 * another operation of it runs. reason NULL: the account's. */
int rc_reconcile(store_tx *tx, const char *guid, const char *initiator, const char *reason,
                 bool *queued) WARN_UNUSED;
/* lifecycle.c: reclamations that are due become delete operations (driver thread). */
void rc_reclaim_due(rc_controller *c);

#endif
