/* billing: accepted usage into money (spec/billing.md). An account's live usage and estimated
 * charges for a month, closing a month into gapless invoices and provider statements, the
 * invoices as JSON, CSV and HTML, and a provider's billing preview of a plan. The arithmetic
 * is billing/rate.h's; this module reads the store and writes what a close finalizes. */
#ifndef OSBILL_BILLING_H
#define OSBILL_BILLING_H

#include "base/decimal.h"
#include "http/http.h"
#include "iam/iam.h"
#include "store/store.h"

/* One rated line: an (instance, plan, metric) of a month with accepted usage. */
typedef struct {
    char account[64], instance[40], offering[64], provider[64], plan[72];
    char metric[72], unit[64], metering_model[24], pricing_model[24]; /* "" for a free plan */
    char currency[4];
    dec billable, charge_unit, rated, exact, amount, provider_share, platform_share, share;
} bill_line;

typedef struct {
    size_t n, cap;
    bill_line *v;
} bill_lines;

void bill_lines_free(bill_lines *ls);

/* Rates month ("YYYY-MM") from the records in tx's snapshot: every line of account (NULL:
 * of every account), in the order (account, instance, plan, metric of the plan). now_ms > 0
 * asks for a live estimate (the daily models divide by the days passed by then, today
 * included); 0 for the whole month, as a close rates it. pg (may be NULL) hears how many of the
 * meters and subscription stretches are done. On an error that concerns a line (a limit passed, a
 * paid plan with no price in the account's currency) why names the line. 0; OSB_E_INVAL for a bad
 * month; OSB_E_TOOBIG, OSB_E_NOTFOUND for a line; OSB_E_BUSY when pg stopped it; a store error. */
typedef struct {
    /* Called now and then, and at the end; false stops the rating with OSB_E_BUSY. */
    bool (*fn)(void *ud, int64_t done, int64_t total);
    void *ud;
} bill_progress;

int bill_rate(store_tx *tx, const char *account, const char *month, int64_t now_ms,
              const bill_progress *pg, bill_lines *out, char *why, size_t whylen) WARN_UNUSED;

/* A provider's billing preview: what a customer billing in currency would pay in month
 * for the plan, given each metric's billable quantity of the month (usage: [{"metric",
 * "quantity"}]; a subscription's MONTHLY_FEE counts one month unless given). *out: {plan_id,
 * currency, month, free, lines: [...], total}. OSB_E_INVAL with the offending field in why;
 * OSB_E_NOTFOUND (no price in the currency) or OSB_E_TOOBIG with the metric in why. */
int bill_estimate(store_tx *tx, const char *plan, const char *currency, const char *month,
                  const json_t *usage, json_t **out, char *why, size_t whylen) WARN_UNUSED;

typedef struct billing billing;

int billing_open(store *db, iam *m, billing **out) WARN_UNUSED;
/* GET /v4/accounts/{id}/usage/{month}, POST|GET /v1/billing/periods/{month}[/close],
 * GET /v1/invoices[/{id}], GET /v1/statements[/{id}],
 * POST /v1/offerings/{id}/plans/{pid}/estimate */
void billing_routes(billing *b, http_router *r);
/* Stops the closes running (their rating ends; a month cut off this way is finished when the
 * platform starts again); called before the HTTP server stops, so that their requests are
 * answered (503) rather than waited for. */
void billing_stop(billing *b);
void billing_close(billing *b);

#endif
