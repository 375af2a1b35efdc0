/* controller: the resource controller, the platform side of OSB. Consumers create, read,
 * list and delete instances of the offerings they may see; the controller drives the
 * provider's broker through the asynchronous HTTP client and persists every operation, so a
 * slow broker never holds an API thread and a restart resumes what was in flight. */
#ifndef OSBILL_CONTROLLER_H
#define OSBILL_CONTROLLER_H

#include "base/base.h"
#include "catalog/catalog.h"
#include "http/http.h"
#include "iam/iam.h"
#include "store/store.h"

typedef struct rc_controller rc_controller;

typedef struct {
    /* How long a deleted instance is kept disabled, restorable, before it is deprovisioned;
     * 0 deprovisions at once. rc_open's NULL options: 7 days. */
    int64_t reclamation_s;
    long broker_timeout_ms; /* each call to a broker; 0 = 60 s */
} rc_options;

#define RC_DEFAULT_RECLAMATION_S (7LL * 86400)

/* Opens the controller on a migrated store, beside the identity service and the catalog
 * (whose brokers it calls). Starts its HTTP client and its operation driver, which resumes
 * every unfinished operation. opt may be NULL for the defaults. OSB_E_NOMEM, OSB_E_IO (a
 * thread or the client cannot start). */
int rc_open(store *db, iam *m, catalog *cat, const rc_options *opt,
            rc_controller **out) WARN_UNUSED;

/* Registers /v2/resource_instances, /v2/resource_keys, /v1/reclamations and the operator's
 * account suspension and reactivation. */
void rc_routes(rc_controller *c, http_router *r);

/* Stops the driver and the client; operations in flight stay persisted and are resumed by
 * the next rc_open. Call after the server has stopped. NULL is ignored. */
void rc_close(rc_controller *c);

#endif
