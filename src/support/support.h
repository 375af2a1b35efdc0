/* support: cases that consumers open on the platform. A case about an instance of a
 * third-party offering is routed to that offering's provider: it is delivered to the
 * provider's support webhook (JSON, signed with HMAC-SHA256 over a timestamp and the body),
 * retried with backoff until acknowledged, and the provider answers through the API. A case
 * about the platform itself goes to the operator. The offering's severity targets give each
 * case a first-response deadline, and a missed one is visible to the operator. */
#ifndef OSBILL_SUPPORT_H
#define OSBILL_SUPPORT_H

#include "http/http.h"
#include "iam/iam.h"
#include "store/store.h"

/* The header of a delivery's signature: "t=<unix seconds>,v1=<hex HMAC-SHA256 of the
 * secret over "<t>.<body>">". A receiver refuses a t more than SUPPORT_REPLAY_WINDOW_S away
 * from its clock, and a (delivery, t) it has seen. */
#define SUPPORT_SIGNATURE_HEADER "X-Osbill-Signature"
#define SUPPORT_DELIVERY_HEADER  "X-Osbill-Delivery"
#define SUPPORT_EVENT_HEADER     "X-Osbill-Event"
#define SUPPORT_REPLAY_WINDOW_S  300

typedef struct support support;

typedef struct {
    int64_t retry_max_ms; /* the longest wait between two attempts; 0 = 10 minutes */
    long timeout_ms;      /* one attempt; 0 = 10 s */
} support_config;

/* Opens the support service and starts its delivery thread (deliveries left pending by an
 * earlier run go out again). */
int support_open(store *db, iam *m, const support_config *cfg, support **out) WARN_UNUSED;
/* /v1/support/cases[/{id}[/updates]], /v1/offerings/{id}/support/webhook */
void support_routes(support *s, http_router *r);
/* Stops the delivery thread (attempts in flight are abandoned and retried by the next run),
 * then frees. */
void support_close(support *s);

#endif
