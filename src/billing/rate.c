/* billing rate: metering models (records -> billable quantity), pricing models (rated
 * quantity -> exact amount), and the rounding of a line into provider and platform shares.
 * The spec's tables are the reference; each function names the row it implements. */
#include "billing/rate.h"

#include <assert.h>
#include <string.h>

#define DAY_MS 86400000LL

static const char *const METERING[] = {"standard_add",       "standard_max",
                                       "standard_avg",       "dailyproration_max",
                                       "dailyproration_avg", "monthlyproration"};
static const char *const PRICING[] = {"linear", "simple_tier", "graduated_tier", "block_tier"};

static int find_name(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

int bill_metering_parse(const char *name)
{
    return find_name(METERING, sizeof METERING / sizeof *METERING, name);
}

int bill_pricing_parse(const char *name)
{
    return find_name(PRICING, sizeof PRICING / sizeof *PRICING, name);
}

/* ---------------------------------------------------------------- usage */

void bill_usage_init(bill_usage *u, bill_metering model, int64_t month_from, int64_t month_to,
                     int divisor_days)
{
    assert(month_to > month_from && divisor_days >= 1 && divisor_days <= BILL_MAX_DAYS);
    u->model = model;
    u->from_ms = month_from;
    u->to_ms = month_to;
    u->divisor_days = divisor_days;
    u->n = 0;
    dec_init(&u->sum);
    dec_init(&u->max);
    for (int d = 0; d < BILL_MAX_DAYS; d++) {
        u->day_n[d] = 0;
        dec_init(&u->day_sum[d]);
        dec_init(&u->day_max[d]);
    }
}

void bill_usage_clear(bill_usage *u)
{
    dec_clear(&u->sum);
    dec_clear(&u->max);
    for (int d = 0; d < BILL_MAX_DAYS; d++) {
        dec_clear(&u->day_sum[d]);
        dec_clear(&u->day_max[d]);
    }
}

int bill_usage_add(bill_usage *u, int64_t start_ms, int64_t end_ms, const dec *q)
{
    if (start_ms > end_ms)
        return OSB_E_INVAL;
    if (u->model == BILL_MONTHLYPRORATION) {
        /* quantity x (ms of [start, end) inside the month); the division comes at the end */
        int64_t a = start_ms > u->from_ms ? start_ms : u->from_ms;
        int64_t b = end_ms < u->to_ms ? end_ms : u->to_ms;
        if (start_ms >= u->to_ms || end_ms <= u->from_ms || (start_ms == end_ms))
            return OSB_E_INVAL;
        dec ms, part;
        dec_init(&ms);
        dec_init(&part);
        dec_set_int(&ms, b - a);
        int rc = dec_mul(&part, q, &ms);
        if (!rc)
            dec_add(&u->sum, &u->sum, &part);
        dec_clear(&ms);
        dec_clear(&part);
        if (!rc)
            u->n++;
        return rc;
    }
    int64_t instant = end_ms > start_ms ? end_ms - 1 : end_ms;
    if (instant < u->from_ms || instant >= u->to_ms)
        return OSB_E_INVAL;
    int day = (int)((instant - u->from_ms) / DAY_MS);
    assert(day < BILL_MAX_DAYS);
    if (u->n == 0 || dec_cmp(q, &u->max) > 0)
        dec_copy(&u->max, q);
    dec_add(&u->sum, &u->sum, q);
    if (u->day_n[day] == 0 || dec_cmp(q, &u->day_max[day]) > 0)
        dec_copy(&u->day_max[day], q);
    dec_add(&u->day_sum[day], &u->day_sum[day], q);
    u->day_n[day]++;
    u->n++;
    return 0;
}

int bill_usage_billable(const bill_usage *u, dec *billable)
{
    dec num, den, t;
    dec_init(&num);
    dec_init(&den);
    dec_init(&t);
    int rc = 0;
    if (u->n == 0) {
        dec_set_int(billable, 0);
        goto out;
    }
    switch (u->model) {
    case BILL_STANDARD_ADD: /* Σ quantities */ dec_copy(billable, &u->sum); break;
    case BILL_STANDARD_MAX: /* max quantity */ dec_copy(billable, &u->max); break;
    case BILL_STANDARD_AVG: /* r12(Σ quantities ÷ their number) */
        dec_set_int(&den, u->n);
        rc = dec_div_round(billable, &u->sum, &den, BILL_R12);
        break;
    case BILL_DAILYPRORATION_MAX: /* r12(Σ_d max of day d ÷ D) */
        for (int d = 0; d < BILL_MAX_DAYS; d++)
            if (u->day_n[d])
                dec_add(&num, &num, &u->day_max[d]);
        dec_set_int(&den, u->divisor_days);
        rc = dec_div_round(billable, &num, &den, BILL_R12);
        break;
    case BILL_DAILYPRORATION_AVG: /* r12(Σ_d r12(Σ of d ÷ their number) ÷ D) */
        for (int d = 0; d < BILL_MAX_DAYS && !rc; d++) {
            if (!u->day_n[d])
                continue;
            dec_set_int(&den, u->day_n[d]);
            if (!(rc = dec_div_round(&t, &u->day_sum[d], &den, BILL_R12)))
                dec_add(&num, &num, &t);
        }
        dec_set_int(&den, u->divisor_days);
        if (!rc)
            rc = dec_div_round(billable, &num, &den, BILL_R12);
        break;
    case BILL_MONTHLYPRORATION: /* r12(Σ q × ms inside ÷ ms in the month) */
        dec_set_int(&den, u->to_ms - u->from_ms);
        rc = dec_div_round(billable, &u->sum, &den, BILL_R12);
        break;
    }
    if (!rc && !dec_abs_below_pow10(billable, BILL_BILLABLE_POW10))
        rc = OSB_E_TOOBIG;
out:
    dec_clear(&num);
    dec_clear(&den);
    dec_clear(&t);
    return rc;
}

/* ---------------------------------------------------------------- prices */

void bill_price_init(bill_price *p)
{
    p->model = BILL_LINEAR;
    p->n = 0;
}

void bill_price_clear(bill_price *p)
{
    for (size_t i = 0; i < p->n; i++) {
        dec_clear(&p->tiers[i].up_to);
        dec_clear(&p->tiers[i].price);
    }
    p->n = 0;
}

int bill_price_from_json(bill_price *p, const json_t *j)
{
    bill_price_clear(p);
    int model = bill_pricing_parse(json_string_value(json_object_get(j, "model")));
    const json_t *tiers = json_object_get(j, "tiers");
    size_t n = json_array_size(tiers);
    if (model < 0 || n == 0 || n > BILL_MAX_TIERS || (model == BILL_LINEAR && n != 1))
        return OSB_E_INVAL;
    p->model = (bill_pricing)model;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tiers, i);
        bill_tier *bt = &p->tiers[i];
        dec_init(&bt->up_to);
        dec_init(&bt->price);
        p->n++;
        const json_t *up = json_object_get(t, "up_to");
        bt->open = !up || json_is_null(up);
        if (bt->open != (i + 1 == n) || dec_from_json(&bt->price, json_object_get(t, "price")) ||
            dec_sign(&bt->price) < 0 ||
            (!bt->open && (dec_from_json(&bt->up_to, up) || dec_sign(&bt->up_to) <= 0 ||
                           (i > 0 && dec_cmp(&bt->up_to, &p->tiers[i - 1].up_to) <= 0)))) {
            bill_price_clear(p);
            return OSB_E_INVAL;
        }
    }
    return 0;
}

int bill_rated_quantity(dec *q, const dec *billable, const dec *unit)
{
    if (dec_sign(unit) <= 0)
        return OSB_E_INVAL;
    return dec_div_round(q, billable, unit, BILL_R12);
}

/* The first tier whose (inclusive) bound holds q. */
static const bill_tier *tier_of(const bill_price *p, const dec *q)
{
    for (size_t i = 0; i + 1 < p->n; i++)
        if (dec_cmp(q, &p->tiers[i].up_to) <= 0)
            return &p->tiers[i];
    return &p->tiers[p->n - 1];
}

int bill_amount(dec *amount, const bill_price *p, const dec *q)
{
    assert(p->n > 0);
    int rc = 0;
    int sign = dec_sign(q);
    if (sign == 0) { /* q = 0 costs 0 in every model */
        dec_set_int(amount, 0);
        return 0;
    }
    if (sign < 0) /* only with allow_negative: q x the first tier's price */
        rc = dec_mul(amount, q, &p->tiers[0].price);
    else if (p->model == BILL_LINEAR)
        rc = dec_mul(amount, q, &p->tiers[0].price);
    else if (p->model == BILL_SIMPLE_TIER) /* all of q at the price of q's tier */
        rc = dec_mul(amount, q, &tier_of(p, q)->price);
    else if (p->model == BILL_BLOCK_TIER) /* the tier's price, whatever q is inside it */
        dec_copy(amount, &tier_of(p, q)->price);
    else { /* graduated: each tier prices the part of q inside it */
        dec sum, lower, part, cost;
        dec_init(&sum);
        dec_init(&lower);
        dec_init(&part);
        dec_init(&cost);
        for (size_t i = 0; i < p->n && !rc && dec_cmp(q, &lower) > 0; i++) {
            const bill_tier *t = &p->tiers[i];
            bool inside = t->open || dec_cmp(q, &t->up_to) <= 0;
            dec_sub(&part, inside ? q : &t->up_to, &lower);
            if (!(rc = dec_mul(&cost, &part, &t->price)))
                dec_add(&sum, &sum, &cost);
            if (!t->open)
                dec_copy(&lower, &t->up_to);
        }
        if (!rc)
            dec_copy(amount, &sum);
        dec_clear(&sum);
        dec_clear(&lower);
        dec_clear(&part);
        dec_clear(&cost);
    }
    if (!rc && !dec_abs_below_pow10(amount, BILL_AMOUNT_POW10))
        rc = OSB_E_TOOBIG;
    return rc;
}

/* ---------------------------------------------------------------- money */

void bill_split(dec *line, dec *provider, dec *platform, const dec *exact, int minor,
                const dec *share)
{
    assert(minor >= 0 && minor <= 4);
    dec t;
    dec_init(&t);
    dec_round(line, exact, minor);
    /* a share has at most 4 digits and a line at most 4: the product fits any scale */
    int rc = dec_mul(&t, line, share);
    assert(rc == 0);
    (void)rc;
    dec_round(provider, &t, minor);
    dec_sub(platform, line, provider);
    dec_round(platform, platform, minor);
    dec_clear(&t);
}
