/* catalog: offerings and their plans, prices, brokers and deployments; broker validation;
 * visibility, the publication review and the global catalog. A provider account takes an
 * offering through the six onboarding steps, and the platform checks each one. */
#ifndef OSBILL_CATALOG_H
#define OSBILL_CATALOG_H

#include "base/base.h"
#include "http/http.h"
#include "iam/iam.h"
#include "store/store.h"

typedef struct catalog catalog;

/* Opens the catalog on a migrated store, beside the identity service it authorizes with. */
int catalog_open(store *db, iam *m, catalog **out) WARN_UNUSED;
/* Waits for broker validations in flight, then frees. */
void catalog_close(catalog *c);

/* Registers /v1/offerings/... and /v1/catalog. */
void catalog_routes(catalog *c, http_router *r);

#endif
