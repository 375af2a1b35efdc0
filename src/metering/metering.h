/* metering: usage ingestion (spec/billing.md, "Submitting usage"). Providers submit records
 * for instances of their offerings; each is checked (instance, window, plan at its instant,
 * measures and exact quantities, region, open month), de-duplicated by its signature in the
 * same transaction that stores it, and acknowledged 201 only once that transaction is on
 * disk. Many requests share one commit (group commit). */
#ifndef OSBILL_METERING_H
#define OSBILL_METERING_H

#include "http/http.h"
#include "iam/iam.h"
#include "store/store.h"

#define METERING_MAX_RECORDS 100
#define METERING_FUTURE_MS   (5 * 60 * 1000) /* how far in the future a record may end */

typedef struct metering metering;

int metering_open(store *db, iam *m, metering **out) WARN_UNUSED;
/* POST /v4/metering/resources/{resource_id}/usage */
void metering_routes(metering *mt, http_router *r);
/* Finishes the writes in flight, then frees. */
void metering_close(metering *mt);

#endif
