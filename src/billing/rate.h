/* billing rate: spec/billing.md's arithmetic, from one line's usage records to its money.
 * Pure functions over exact decimals (base/decimal, GMP): no store, no clock, no HTTP, so
 * that the close, the live estimate and the provider's preview rate alike and the unit tests
 * pin every model on hand-computed figures. Every division is rounded half-up to 12
 * fractional digits at the points the spec names, and nowhere else. */
#ifndef OSBILL_BILLING_RATE_H
#define OSBILL_BILLING_RATE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/decimal.h"

#define BILL_R12            12 /* fractional digits of every rounded division */
#define BILL_QTY_POW10      15 /* a record quantity < 10^15 */
#define BILL_BILLABLE_POW10 18 /* a billable quantity < 10^18 */
#define BILL_AMOUNT_POW10   15 /* a line amount < 10^15 currency units */
#define BILL_MAX_TIERS      20
#define BILL_MAX_DAYS       31

/* Metering models (a plan metric's metering_model). */
typedef enum {
    BILL_STANDARD_ADD,
    BILL_STANDARD_MAX,
    BILL_STANDARD_AVG,
    BILL_DAILYPRORATION_MAX,
    BILL_DAILYPRORATION_AVG,
    BILL_MONTHLYPRORATION,
} bill_metering;

/* Pricing models (a price's model). */
typedef enum {
    BILL_LINEAR,
    BILL_SIMPLE_TIER,
    BILL_GRADUATED_TIER,
    BILL_BLOCK_TIER,
} bill_pricing;

/* The model named, or -1 for an unknown name (NULL included). */
int bill_metering_parse(const char *name);
int bill_pricing_parse(const char *name);

/* The billable quantity of one (instance, plan, measure) in one month, accumulated record by
 * record. Every step is exact and commutative (sums, counts, maxima), so the result does not
 * depend on the order the records come in. Initialise with bill_usage_init, free with
 * bill_usage_clear. */
typedef struct {
    bill_metering model;
    int64_t from_ms, to_ms; /* the month, [from, to) */
    int divisor_days;       /* D, or the days passed so far for a live estimate */
    long long n;            /* quantities added */
    dec sum;                /* Σ q, or for monthlyproration Σ q × ms inside the month */
    dec max;
    long long day_n[BILL_MAX_DAYS];
    dec day_sum[BILL_MAX_DAYS], day_max[BILL_MAX_DAYS];
} bill_usage;

/* month_from/to: the month's bounds (UTC ms); divisor_days: the days the daily models divide
 * by (the month's days when closing; the days passed, today included, for a live estimate;
 * 1 to 31, asserted). */
void bill_usage_init(bill_usage *u, bill_metering model, int64_t month_from, int64_t month_to,
                     int divisor_days);
void bill_usage_clear(bill_usage *u);

/* Adds one record's quantity of the measure. A record belongs to the month of its instant
 * (end - 1 ms when end > start, else end), except under monthlyproration, which takes the
 * part of [start, end) inside the month. OSB_E_INVAL, and nothing added, for a record that
 * is not in the month (or, under monthlyproration, does not overlap it) or has start > end. */
int bill_usage_add(bill_usage *u, int64_t start_ms, int64_t end_ms, const dec *q) WARN_UNUSED;

/* The month's billable quantity by the model (scale 12 for the averaged and prorated models,
 * the records' otherwise); 0 when nothing was added. OSB_E_TOOBIG when |billable| >= 10^18. */
int bill_usage_billable(const bill_usage *u, dec *billable) WARN_UNUSED;

/* One currency's price of a metric: tiers ascend, the last one open. */
typedef struct {
    bool open; /* the last tier: no upper bound */
    dec up_to;
    dec price;
} bill_tier;

typedef struct {
    bill_pricing model;
    size_t n;
    bill_tier tiers[BILL_MAX_TIERS];
} bill_price;

void bill_price_init(bill_price *p);
void bill_price_clear(bill_price *p);

/* From the catalog's canonical form {"model", "tiers": [{"up_to": "<dec>"|null, "price"}]}.
 * OSB_E_INVAL when it is not that (an unknown model, 0 or too many tiers, bounds that do not
 * ascend or a last tier that is not open, a negative price); *p is then left empty. */
int bill_price_from_json(bill_price *p, const json_t *j) WARN_UNUSED;

/* q = r12(billable / unit); OSB_E_INVAL when unit <= 0. */
int bill_rated_quantity(dec *q, const dec *billable, const dec *unit) WARN_UNUSED;

/* The exact amount of rated quantity q (21 fractional digits with a 12-digit q and 9-digit
 * prices). q = 0 costs 0; a negative q costs q x the first tier's price. OSB_E_TOOBIG when
 * |amount| >= 10^15. */
int bill_amount(dec *amount, const bill_price *p, const dec *q) WARN_UNUSED;

/* An invoice line's money from its exact amount: line = the amount rounded half-up to the
 * currency's `minor` units; provider = line x share rounded likewise; platform = line -
 * provider. minor in [0, 4]; share in [0, 1]. */
void bill_split(dec *line, dec *provider, dec *platform, const dec *exact, int minor,
                const dec *share);

#endif
