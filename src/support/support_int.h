/* support's parts: the API (support.c) and the webhook deliveries (deliver.c). */
#ifndef OSBILL_SUPPORT_INT_H
#define OSBILL_SUPPORT_INT_H

#include <pthread.h>

#include "http/client.h"
#include "store/store_json.h"
#include "support/support.h"

#define SUPPORT_SECRET_BYTES 32 /* a webhook secret: 32 random bytes, hex; "whsec_" before */

struct support {
    store *db;
    iam *iam;
    support_config cfg;
    unsigned char seal_key[32]; /* seals webhook secrets (the platform signs with them) */

    /* The delivery thread: wakes when a delivery is queued, or when the next one is due. */
    http_client *client;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, poke;
};

/* deliver.c */
int support_deliver_start(support *s) WARN_UNUSED;
void support_deliver_stop(support *s);
/* A delivery was queued: the thread looks at once. */
void support_deliver_poke(support *s);
/* Queues the delivery of a case's update seq to its offering's webhook, if it has one,
 * inside the caller's write transaction. */
int support_queue_delivery(store_tx *tx, const char *case_id, int64_t seq, const char *event,
                           const char *offering_id, int64_t now) WARN_UNUSED;
/* The case and one of its updates as the webhook receives them (and the API shows them). */
int support_case_json(store_tx *tx, const char *case_id, json_t **out) WARN_UNUSED;
json_t *support_update_json(store_stmt *q, int col);

#endif
