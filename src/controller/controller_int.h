/* controller internals shared by its files: the module's state, the operation driver's
 * hooks for the API handlers, and the instance's JSON. */
#ifndef OSBILL_CONTROLLER_INT_H
#define OSBILL_CONTROLLER_INT_H

#include <pthread.h>

#include "catalog/catalog_int.h"
#include "controller/controller.h"
#include "http/client.h"

#define RC_WAIT_MS 2000 /* a request waits this long for the broker, then gets 202 */

typedef struct rc_result rc_result;
typedef struct rc_waiter rc_waiter;

struct rc_controller {
    store *db;
    iam *iam;
    catalog *cat;
    http_client *client;

    pthread_t driver;
    bool driver_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool closing, kick;
    /* under mu */
    rc_result *results; /* broker answers waiting for the driver (LIFO; order is free) */
    rc_waiter *waiters; /* requests deferred until their operation's first outcome */
    char (*flying)[37]; /* ids of operations with a broker call in flight */
    size_t nflying, capflying;
};

/* Hands a deferred request to the driver: it is answered (and resumed) when the operation
 * op_id first reaches an outcome the caller can see, or after RC_WAIT_MS with 202. ok_status
 * is the status of a finished operation (201 create, 204 delete). Wakes the driver, which
 * starts the operation at once. */
void rc_wait(rc_controller *c, http_req *req, const char *op_id, const char *guid, int ok_status);
/* Wakes the driver: an operation became due. */
void rc_kick(rc_controller *c);

/* The instance as the API shows it (IBM Cloud resource controller shape); NULL when absent
 * or on a store error. */
json_t *rc_instance_json(store_tx *tx, const char *guid);

/* Answers req with the instance's current state: status, or 202 while it is in flight. */
void rc_reply_instance(rc_controller *c, http_req *req, const char *guid, int status);

void rc_api_routes(rc_controller *c, http_router *r);

#endif
