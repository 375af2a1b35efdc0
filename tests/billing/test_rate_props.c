/* Property tests of billing's rating: thousands of random plans and usage sets, rated and
 * checked against invariants that hold whatever the figures: the same result whatever the
 * records' order, split records prorate to the same quantity, lines add up, shares sum to
 * the line, graduated <= linear at the first price when tier prices fall, the tier
 * structure of each pricing model, and the bounds of each metering model.
 * The generator is seeded (BILL_PROPS_SEED, default fixed) so a failure can be replayed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "billing/rate.h"

#define DAY      86400000LL
#define NOV_FROM 1793491200000LL /* 2026-11-01 */
#define NOV_TO   1796083200000LL
#define ROUNDS   10000

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: small, fast, and the same sequence on every machine */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int64_t below(int64_t n)
{
    return (int64_t)(rnd() % (uint64_t)n);
}

/* A random decimal with up to int_digits integer and frac fractional digits, as text. */
static void rnd_dec(dec *d, int int_digits, int frac, bool negative_ok)
{
    char s[64];
    int n = 0;
    if (negative_ok && below(4) == 0)
        s[n++] = '-';
    int id = 1 + (int)below(int_digits);
    s[n++] = (char)('0' + below(10));
    if (s[n - 1] == '0')
        id = 1;
    for (int i = 1; i < id; i++)
        s[n++] = (char)('0' + below(10));
    int fd = (int)below(frac + 1);
    if (fd) {
        s[n++] = '.';
        for (int i = 0; i < fd; i++)
            s[n++] = (char)('0' + below(10));
    }
    s[n] = '\0';
    if (dec_parse(d, s, (size_t)n))
        fail_msg("generated %s", s);
}

static void assert_same(const dec *a, const dec *b, const char *what)
{
    if (dec_cmp(a, b) != 0) {
        char *x = dec_to_string(a), *y = dec_to_string(b);
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s != %s (seed %llu)", what, x, y,
                 (unsigned long long)rng_state);
        free(x);
        free(y);
        fail_msg("%s", msg);
    }
}

static void assert_le(const dec *a, const dec *b, const char *what)
{
    if (dec_cmp(a, b) > 0) {
        char *x = dec_to_string(a), *y = dec_to_string(b);
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s > %s", what, x, y);
        free(x);
        free(y);
        fail_msg("%s", msg);
    }
}

typedef struct {
    int64_t start, end;
    dec q;
} rec;

static int rnd_records(rec *r, int max, bool monthly)
{
    int n = 1 + (int)below(max);
    for (int i = 0; i < n; i++) {
        dec_init(&r[i].q);
        rnd_dec(&r[i].q, 6, 9, false);
        if (monthly) { /* overlapping the month, possibly from the one before or into the next */
            r[i].start = NOV_FROM - DAY * 3 + below(33 * DAY);
            r[i].end = r[i].start + 1 + below(20 * DAY);
            if (r[i].end <= NOV_FROM)
                r[i].end = NOV_FROM + 1;
            if (r[i].start >= NOV_TO)
                r[i].start = NOV_TO - 1;
        } else {
            /* the instant (end - 1, or end for a zero-length record) is in the month */
            r[i].end = NOV_FROM + 1 + below(NOV_TO - NOV_FROM - 1);
            r[i].start = below(4) ? r[i].end - 1 - below(3600000) : r[i].end;
            if (r[i].start < NOV_FROM - DAY)
                r[i].start = NOV_FROM - DAY;
        }
    }
    return n;
}

static void billable_of(bill_metering m, const rec *r, const int *order, int n, int days, dec *out)
{
    bill_usage u;
    bill_usage_init(&u, m, NOV_FROM, NOV_TO, days);
    for (int i = 0; i < n; i++) {
        const rec *x = &r[order ? order[i] : i];
        assert_int_equal(bill_usage_add(&u, x->start, x->end, &x->q), 0);
    }
    assert_int_equal(bill_usage_billable(&u, out), 0);
    bill_usage_clear(&u);
}

/* ---------------------------------------------------------------- metering properties */

static void test_order_does_not_matter(void **state)
{
    (void)state;
    rec r[40];
    int order[40];
    dec a, b;
    dec_init(&a);
    dec_init(&b);
    for (int round = 0; round < ROUNDS; round++) {
        bill_metering m = (bill_metering)below(6);
        int n = rnd_records(r, 40, m == BILL_MONTHLYPRORATION);
        for (int i = 0; i < n; i++)
            order[i] = i;
        for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)below(i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int days = 30;
        billable_of(m, r, NULL, n, days, &a);
        billable_of(m, r, order, n, days, &b);
        assert_same(&a, &b, "shuffled records");
        for (int i = 0; i < n; i++)
            dec_clear(&r[i].q);
    }
    dec_clear(&a);
    dec_clear(&b);
}

static void test_model_bounds(void **state)
{
    (void)state;
    rec r[40];
    dec add, mx, avg, dmax, davg, lo, t, thirty;
    dec *all[] = {&add, &mx, &avg, &dmax, &davg, &lo, &t, &thirty};
    for (size_t i = 0; i < 8; i++)
        dec_init(all[i]);
    dec_set_int(&thirty, 30);
    for (int round = 0; round < ROUNDS; round++) {
        int n = rnd_records(r, 40, false);
        billable_of(BILL_STANDARD_ADD, r, NULL, n, 30, &add);
        billable_of(BILL_STANDARD_MAX, r, NULL, n, 30, &mx);
        billable_of(BILL_STANDARD_AVG, r, NULL, n, 30, &avg);
        billable_of(BILL_DAILYPRORATION_MAX, r, NULL, n, 30, &dmax);
        billable_of(BILL_DAILYPRORATION_AVG, r, NULL, n, 30, &davg);
        dec_copy(&lo, &r[0].q);
        dec_set_int(&t, 0);
        for (int i = 0; i < n; i++) {
            if (dec_cmp(&r[i].q, &lo) < 0)
                dec_copy(&lo, &r[i].q);
            dec_add(&t, &t, &r[i].q);
            assert_le(&r[i].q, &mx, "a quantity <= standard_max");
        }
        assert_same(&add, &t, "standard_add = the sum");
        assert_le(&lo, &avg, "min <= standard_avg");
        assert_le(&avg, &mx, "standard_avg <= max");
        assert_le(&mx, &add, "max <= sum (non-negative)");
        assert_le(&dmax, &mx, "dailyproration_max <= max");
        assert_le(&davg, &dmax, "dailyproration_avg <= dailyproration_max");
        /* each day's max is at most that day's sum, so over 30 days: */
        int rc = dec_div_round(&t, &add, &thirty, BILL_R12);
        assert_int_equal(rc, 0);
        assert_le(&dmax, &t, "dailyproration_max <= r12(sum / 30)");
        for (int i = 0; i < n; i++)
            dec_clear(&r[i].q);
    }
    for (size_t i = 0; i < 8; i++)
        dec_clear(all[i]);
}

static void test_monthly_proration_splits(void **state)
{
    (void)state;
    /* A record split in two at any instant prorates to the same quantity: the products are
     * summed exactly and divided once. */
    dec a, b;
    dec_init(&a);
    dec_init(&b);
    for (int round = 0; round < ROUNDS; round++) {
        rec r[3];
        rnd_records(r, 1, true);
        if (r[0].end - r[0].start < 2) {
            dec_clear(&r[0].q);
            continue;
        }
        int64_t cut = r[0].start + 1 + below(r[0].end - r[0].start - 1);
        r[1].start = r[0].start, r[1].end = cut;
        r[2].start = cut, r[2].end = r[0].end;
        dec_init(&r[1].q);
        dec_init(&r[2].q);
        dec_copy(&r[1].q, &r[0].q);
        dec_copy(&r[2].q, &r[0].q);
        billable_of(BILL_MONTHLYPRORATION, r, NULL, 1, 30, &a);
        /* parts outside the month are refused by the accumulator; add only those inside */
        bill_usage u;
        bill_usage_init(&u, BILL_MONTHLYPRORATION, NOV_FROM, NOV_TO, 30);
        for (int i = 1; i < 3; i++) {
            int rc = bill_usage_add(&u, r[i].start, r[i].end, &r[i].q);
            assert_true(rc == 0 || rc == OSB_E_INVAL);
        }
        assert_int_equal(bill_usage_billable(&u, &b), 0);
        bill_usage_clear(&u);
        assert_same(&a, &b, "split record");
        for (int i = 0; i < 3; i++)
            dec_clear(&r[i].q);
    }
    dec_clear(&a);
    dec_clear(&b);
}

/* ---------------------------------------------------------------- pricing properties */

/* Random tiers: ascending bounds, prices non-increasing when falling is set. */
static void rnd_price(bill_price *p, bill_pricing model, bool falling)
{
    bill_price_init(p);
    p->model = model;
    p->n = model == BILL_LINEAR ? 1 : 1 + (size_t)below(6);
    dec bound, step;
    dec_init(&bound);
    dec_init(&step);
    for (size_t i = 0; i < p->n; i++) {
        bill_tier *t = &p->tiers[i];
        dec_init(&t->up_to);
        dec_init(&t->price);
        t->open = i + 1 == p->n;
        if (!t->open) {
            rnd_dec(&step, 4, 3, false);
            if (dec_sign(&step) == 0)
                dec_set_int(&step, 1);
            dec_add(&bound, &bound, &step);
            dec_copy(&t->up_to, &bound);
        }
        rnd_dec(&t->price, 3, 9, false);
        if (falling && i > 0 && dec_cmp(&t->price, &p->tiers[i - 1].price) > 0)
            dec_copy(&t->price, &p->tiers[i - 1].price);
    }
    dec_clear(&bound);
    dec_clear(&step);
}

static void amount_of(const bill_price *p, const dec *q, dec *out)
{
    int rc = bill_amount(out, p, q);
    if (rc)
        fail_msg("bill_amount = %d", rc);
}

static void test_pricing_models(void **state)
{
    (void)state;
    dec q, q2, g, s, b, lin, last, t, bound, g_at, part;
    dec *all[] = {&q, &q2, &g, &s, &b, &lin, &last, &t, &bound, &g_at, &part};
    for (size_t i = 0; i < 11; i++)
        dec_init(all[i]);
    for (int round = 0; round < ROUNDS; round++) {
        bill_price gp, sp, bp;
        rnd_price(&gp, BILL_GRADUATED_TIER, true);
        /* the same tiers under the other models */
        bill_price_init(&sp);
        bill_price_init(&bp);
        sp.model = BILL_SIMPLE_TIER, bp.model = BILL_BLOCK_TIER;
        sp.n = bp.n = gp.n;
        for (size_t i = 0; i < gp.n; i++) {
            bill_tier *x[] = {&sp.tiers[i], &bp.tiers[i]};
            for (int k = 0; k < 2; k++) {
                dec_init(&x[k]->up_to);
                dec_init(&x[k]->price);
                dec_copy(&x[k]->up_to, &gp.tiers[i].up_to);
                dec_copy(&x[k]->price, &gp.tiers[i].price);
                x[k]->open = gp.tiers[i].open;
            }
        }
        rnd_dec(&q, 6, 12, false);
        amount_of(&gp, &q, &g);
        amount_of(&sp, &q, &s);
        amount_of(&bp, &q, &b);
        int rc = dec_mul(&lin, &q, &gp.tiers[0].price);
        assert_int_equal(rc, 0);
        rc = dec_mul(&last, &q, &gp.tiers[gp.n - 1].price);
        assert_int_equal(rc, 0);
        /* falling prices: q x last price <= graduated <= q x first price; simple likewise */
        assert_le(&g, &lin, "graduated <= linear at the first price");
        assert_le(&last, &g, "linear at the last price <= graduated");
        assert_le(&s, &g, "simple <= graduated with falling prices");
        /* simple is q x the price of q's tier, and block that tier's price */
        size_t k = 0;
        while (k + 1 < gp.n && dec_cmp(&q, &gp.tiers[k].up_to) > 0)
            k++;
        if (dec_sign(&q) == 0) {
            assert_int_equal(dec_sign(&s), 0);
            assert_int_equal(dec_sign(&b), 0);
        } else {
            rc = dec_mul(&t, &q, &gp.tiers[k].price);
            assert_int_equal(rc, 0);
            assert_same(&s, &t, "simple = q x its tier's price");
            assert_same(&b, &gp.tiers[k].price, "block = its tier's price");
        }
        /* graduated above a bound = graduated at the bound + the rest at the next price */
        if (k > 0) {
            dec_copy(&bound, &gp.tiers[k - 1].up_to);
            amount_of(&gp, &bound, &g_at);
            dec_sub(&part, &q, &bound);
            rc = dec_mul(&t, &part, &gp.tiers[k].price);
            assert_int_equal(rc, 0);
            dec_add(&t, &t, &g_at);
            assert_same(&g, &t, "graduated is additive across a bound");
        }
        /* graduated is monotone in q */
        rnd_dec(&q2, 6, 12, false);
        dec_add(&q2, &q2, &q);
        amount_of(&gp, &q2, &t);
        assert_le(&g, &t, "graduated is non-decreasing");
        bill_price_clear(&gp);
        bill_price_clear(&sp);
        bill_price_clear(&bp);
    }
    for (size_t i = 0; i < 11; i++)
        dec_clear(all[i]);
}

static void test_lines_add_up(void **state)
{
    (void)state;
    static const char *const currencies[] = {"USD", "JPY", "KWD", "EUR"};
    dec exact, share, line, prov, plat, sum, zero, half, diff, t, lines_sum, ex_sum;
    dec *all[] = {&exact, &share, &line, &prov, &plat,      &sum,
                  &zero,  &half,  &diff, &t,    &lines_sum, &ex_sum};
    for (size_t i = 0; i < 12; i++)
        dec_init(all[i]);
    for (int round = 0; round < ROUNDS; round++) {
        const char *cur = currencies[below(4)];
        int minor = currency_minor_units(cur);
        /* half a minor unit */
        dec_set_int(&half, 5);
        half.scale = minor + 1;
        rnd_dec(&share, 1, 4, false);
        dec_set_int(&t, 1);
        if (dec_cmp(&share, &t) > 0)
            dec_copy(&share, &t);
        int n = 1 + (int)below(30);
        dec_set_int(&lines_sum, 0);
        dec_set_int(&ex_sum, 0);
        dec_set_int(&prov, 0);
        for (int i = 0; i < n; i++) {
            rnd_dec(&exact, 7, 21, true);
            bill_split(&line, &prov, &plat, &exact, minor, &share);
            dec_add(&sum, &prov, &plat);
            assert_same(&sum, &line, "provider + platform = line");
            dec_sub(&diff, &line, &exact);
            if (dec_sign(&diff) < 0)
                dec_sub(&diff, &zero, &diff);
            assert_le(&diff, &half, "|line - exact| <= half a minor unit");
            assert_true(dec_frac_digits(&line) <= minor);
            assert_true(dec_frac_digits(&prov) <= minor);
            /* the provider's share has the line's sign and is no larger */
            if (dec_sign(&line) >= 0) {
                assert_true(dec_sign(&prov) >= 0);
                assert_le(&prov, &line, "provider share <= line");
            }
            dec_add(&lines_sum, &lines_sum, &line);
            dec_add(&ex_sum, &ex_sum, &exact);
        }
        /* the invoice total is the sum of its rounded lines: within n half-units of exact */
        dec_sub(&diff, &lines_sum, &ex_sum);
        if (dec_sign(&diff) < 0)
            dec_sub(&diff, &zero, &diff);
        dec_set_int(&t, n);
        int rc = dec_mul(&t, &t, &half);
        assert_int_equal(rc, 0);
        assert_le(&diff, &t, "total within n half-units of the exact sum");
    }
    for (size_t i = 0; i < 12; i++)
        dec_clear(all[i]);
}

int main(void)
{
    const char *seed = getenv("BILL_PROPS_SEED");
    rng_state = seed ? strtoull(seed, NULL, 10) : 20261203ULL;
    if (!rng_state)
        rng_state = 1;
    printf("billing properties: seed %llu, %d rounds each\n", (unsigned long long)rng_state,
           ROUNDS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_does_not_matter),
        cmocka_unit_test(test_model_bounds),
        cmocka_unit_test(test_monthly_proration_splits),
        cmocka_unit_test(test_pricing_models),
        cmocka_unit_test(test_lines_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
