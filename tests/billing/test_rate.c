/* Unit tests of billing's rating (src/billing/rate.c): each metering and pricing model of
 * spec/billing.md on hand-computed examples, the spec's worked example, tier boundaries,
 * zero usage, the 12-digit rounding points, month boundaries, JPY and KWD rounding, the
 * revenue share, and the limits. Expected values are literal strings worked out by hand. */
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
#define NOV_FROM 1793491200000LL /* 2026-11-01T00:00:00Z */
#define NOV_TO   1796083200000LL /* 2026-12-01 */
#define OCT_FROM 1790812800000LL /* 2026-10-01 */
#define FEB_FROM 1832976000000LL /* 2028-02-01, a leap year's February */
#define FEB_TO   1835481600000LL

/* ---------------------------------------------------------------- helpers */

static void set(dec *d, const char *s)
{
    if (dec_parse(d, s, strlen(s)))
        fail_msg("dec_parse(\"%s\")", s);
}

static void assert_dec(const dec *d, const char *want)
{
    char *s = dec_to_string(d);
    assert_non_null(s);
    if (strcmp(s, want) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "got %s, want %s", s, want);
        free(s);
        fail_msg("%s", msg);
    }
    free(s);
}

static void assert_fixed(const dec *d, int places, const char *want)
{
    char *s = dec_to_fixed(d, places);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

static void add(bill_usage *u, int64_t start, int64_t end, const char *q)
{
    dec d;
    dec_init(&d);
    set(&d, q);
    assert_int_equal(bill_usage_add(u, start, end, &d), 0);
    dec_clear(&d);
}

/* The billable quantity of a usage, as canonical text compared with want. */
static void assert_billable(const bill_usage *u, const char *want)
{
    dec b;
    dec_init(&b);
    assert_int_equal(bill_usage_billable(u, &b), 0);
    assert_dec(&b, want);
    dec_clear(&b);
}

/* A price from JSON text; fails the test when it does not parse. */
static void price(bill_price *p, const char *json)
{
    json_error_t e;
    json_t *j = json_loads(json, 0, &e);
    assert_non_null(j);
    bill_price_init(p);
    assert_int_equal(bill_price_from_json(p, j), 0);
    json_decref(j);
}

static void assert_amount(const bill_price *p, const char *q, const char *want)
{
    dec dq, a;
    dec_init(&dq);
    dec_init(&a);
    set(&dq, q);
    assert_int_equal(bill_amount(&a, p, &dq), 0);
    assert_dec(&a, want);
    dec_clear(&dq);
    dec_clear(&a);
}

#define GRADUATED                                                                                  \
    "{\"model\": \"%s\", \"tiers\": [{\"up_to\": \"1000\", \"price\": \"0.10\"},"                  \
    " {\"up_to\": \"10000\", \"price\": \"0.08\"}, {\"up_to\": null, \"price\": \"0.05\"}]}"

static void spec_tiers(bill_price *p, const char *model)
{
    char json[256];
    snprintf(json, sizeof json, GRADUATED, model);
    price(p, json);
}

/* ---------------------------------------------------------------- names */

static void test_model_names(void **state)
{
    (void)state;
    assert_int_equal(bill_metering_parse("standard_add"), BILL_STANDARD_ADD);
    assert_int_equal(bill_metering_parse("standard_max"), BILL_STANDARD_MAX);
    assert_int_equal(bill_metering_parse("standard_avg"), BILL_STANDARD_AVG);
    assert_int_equal(bill_metering_parse("dailyproration_max"), BILL_DAILYPRORATION_MAX);
    assert_int_equal(bill_metering_parse("dailyproration_avg"), BILL_DAILYPRORATION_AVG);
    assert_int_equal(bill_metering_parse("monthlyproration"), BILL_MONTHLYPRORATION);
    assert_int_equal(bill_metering_parse("standard_sum"), -1);
    assert_int_equal(bill_metering_parse(NULL), -1);
    assert_int_equal(bill_pricing_parse("linear"), BILL_LINEAR);
    assert_int_equal(bill_pricing_parse("simple_tier"), BILL_SIMPLE_TIER);
    assert_int_equal(bill_pricing_parse("graduated_tier"), BILL_GRADUATED_TIER);
    assert_int_equal(bill_pricing_parse("block_tier"), BILL_BLOCK_TIER);
    assert_int_equal(bill_pricing_parse("volume"), -1);
}

/* ---------------------------------------------------------------- metering models */

static void test_standard_add(void **state)
{
    (void)state;
    bill_usage u;
    bill_usage_init(&u, BILL_STANDARD_ADD, NOV_FROM, NOV_TO, 30);
    assert_billable(&u, "0"); /* zero usage */
    add(&u, NOV_FROM, NOV_FROM + 3600000, "1.5");
    add(&u, NOV_FROM + DAY, NOV_FROM + DAY, "2.25");
    add(&u, NOV_TO - 1, NOV_TO - 1, "3");
    assert_billable(&u, "6.75");
    bill_usage_clear(&u);
}

static void test_standard_max(void **state)
{
    (void)state;
    bill_usage u;
    bill_usage_init(&u, BILL_STANDARD_MAX, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "5");
    add(&u, NOV_FROM + 1, NOV_FROM + 1, "12.5");
    add(&u, NOV_FROM + 2, NOV_FROM + 2, "-3");
    add(&u, NOV_FROM + 3, NOV_FROM + 3, "12.49");
    assert_billable(&u, "12.5");
    bill_usage_clear(&u);

    /* all negative: the max is the least negative, not 0 */
    bill_usage_init(&u, BILL_STANDARD_MAX, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "-7");
    add(&u, NOV_FROM, NOV_FROM + 5, "-2");
    assert_billable(&u, "-2");
    bill_usage_clear(&u);
}

static void test_standard_avg_rounds_at_12_digits(void **state)
{
    (void)state;
    bill_usage u;
    bill_usage_init(&u, BILL_STANDARD_AVG, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "1");
    add(&u, NOV_FROM, NOV_FROM, "2");
    add(&u, NOV_FROM, NOV_FROM, "2");
    assert_billable(&u, "1.666666666667"); /* 5/3, the 13th digit 6 rounds up */
    bill_usage_clear(&u);

    /* exactly half a unit of the 12th digit rounds away from zero */
    bill_usage_init(&u, BILL_STANDARD_AVG, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "0.000000000001");
    add(&u, NOV_FROM, NOV_FROM, "0");
    assert_billable(&u, "0.000000000001");
    bill_usage_clear(&u);

    bill_usage_init(&u, BILL_STANDARD_AVG, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "-0.000000000001");
    add(&u, NOV_FROM, NOV_FROM, "0");
    assert_billable(&u, "-0.000000000001");
    bill_usage_clear(&u);

    /* 1/3: the 13th digit 3 rounds down */
    bill_usage_init(&u, BILL_STANDARD_AVG, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "1");
    add(&u, NOV_FROM, NOV_FROM, "0");
    add(&u, NOV_FROM, NOV_FROM, "0");
    assert_billable(&u, "0.333333333333");
    bill_usage_clear(&u);
}

static void test_dailyproration_max(void **state)
{
    (void)state;
    bill_usage u;
    /* day 1: 10 and 20 (max 20); day 2: 5; the other 28 days add zero: (20 + 5) / 30 */
    bill_usage_init(&u, BILL_DAILYPRORATION_MAX, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM + 1000, "10");
    add(&u, NOV_FROM + 5000, NOV_FROM + 9000, "20");
    add(&u, NOV_FROM + DAY, NOV_FROM + DAY + 1, "5");
    assert_billable(&u, "0.833333333333");
    bill_usage_clear(&u);

    /* live, 2 days passed: (20 + 5) / 2 */
    bill_usage_init(&u, BILL_DAILYPRORATION_MAX, NOV_FROM, NOV_TO, 2);
    add(&u, NOV_FROM, NOV_FROM + 1000, "10");
    add(&u, NOV_FROM + 5000, NOV_FROM + 9000, "20");
    add(&u, NOV_FROM + DAY, NOV_FROM + DAY + 1, "5");
    assert_billable(&u, "12.5");
    bill_usage_clear(&u);

    /* a record that ends at the next day's first ms belongs to the day it ends in: [s, e)
     * has its instant at e - 1 */
    bill_usage_init(&u, BILL_DAILYPRORATION_MAX, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM + DAY, "30");
    add(&u, NOV_FROM + 10, NOV_FROM + 20, "60");
    assert_billable(&u, "2"); /* one day, max 60, / 30 */
    bill_usage_clear(&u);
}

static void test_dailyproration_avg_rounds_twice(void **state)
{
    (void)state;
    bill_usage u;
    /* day 1: 1, 2 -> 1.5; day 3: 1, 1, 2 -> r12(4/3) = 1.333333333333;
     * r12(2.833333333333 / 30) = 0.094444444444 */
    bill_usage_init(&u, BILL_DAILYPRORATION_AVG, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "1");
    add(&u, NOV_FROM + 1, NOV_FROM + 1, "2");
    add(&u, NOV_FROM + 2 * DAY, NOV_FROM + 2 * DAY, "1");
    add(&u, NOV_FROM + 2 * DAY + 7, NOV_FROM + 2 * DAY + 7, "1");
    add(&u, NOV_FROM + 3 * DAY - 1, NOV_FROM + 3 * DAY - 1, "2");
    assert_billable(&u, "0.094444444444");
    bill_usage_clear(&u);

    /* The inner rounding shows: three days each r12(2/3) = 0.666666666667, over 1 day:
     * 2.000000000001, where one rounding of 2/3 x 3 would give 2. */
    bill_usage_init(&u, BILL_DAILYPRORATION_AVG, NOV_FROM, NOV_TO, 1);
    for (int d = 0; d < 3; d++) {
        add(&u, NOV_FROM + d * DAY, NOV_FROM + d * DAY, "0");
        add(&u, NOV_FROM + d * DAY, NOV_FROM + d * DAY, "1");
        add(&u, NOV_FROM + d * DAY, NOV_FROM + d * DAY, "1");
    }
    assert_billable(&u, "2.000000000001");
    bill_usage_clear(&u);
}

static void test_monthlyproration(void **state)
{
    (void)state;
    bill_usage u;
    /* the whole month */
    bill_usage_init(&u, BILL_MONTHLYPRORATION, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_TO, "1");
    assert_billable(&u, "1");
    bill_usage_clear(&u);

    /* half of it, then 15 days of 30 of a record that began in October */
    bill_usage_init(&u, BILL_MONTHLYPRORATION, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM + 15 * DAY, NOV_TO, "1");
    add(&u, OCT_FROM + 15 * DAY, NOV_FROM + 15 * DAY, "2");
    assert_billable(&u, "1.5"); /* 0.5 + 2 x 0.5 */
    bill_usage_clear(&u);

    /* October's part of that record: 16 days of 31, 2 x 16/31 */
    bill_usage_init(&u, BILL_MONTHLYPRORATION, OCT_FROM, NOV_FROM, 31);
    add(&u, OCT_FROM + 15 * DAY, NOV_FROM + 15 * DAY, "2");
    assert_billable(&u, "1.032258064516");
    bill_usage_clear(&u);

    /* across a month change, each month gets its own part; the sum of the parts is the
     * record (1 instance-month of 31 + 30 days: 0.516129032258 + 0.5 rounded separately) */
    bill_usage_init(&u, BILL_MONTHLYPRORATION, OCT_FROM, NOV_FROM, 31);
    add(&u, OCT_FROM + 15 * DAY, NOV_FROM + 15 * DAY, "1");
    assert_billable(&u, "0.516129032258");
    bill_usage_clear(&u);

    /* a zero-length record and one outside the month are refused, not counted */
    bill_usage_init(&u, BILL_MONTHLYPRORATION, NOV_FROM, NOV_TO, 30);
    dec one;
    dec_init(&one);
    dec_set_int(&one, 1);
    assert_int_equal(bill_usage_add(&u, NOV_FROM, NOV_FROM, &one), OSB_E_INVAL);
    assert_int_equal(bill_usage_add(&u, OCT_FROM, NOV_FROM, &one), OSB_E_INVAL);
    assert_int_equal(bill_usage_add(&u, NOV_TO, NOV_TO + DAY, &one), OSB_E_INVAL);
    assert_int_equal(bill_usage_add(&u, NOV_TO, NOV_FROM, &one), OSB_E_INVAL);
    assert_billable(&u, "0");
    dec_clear(&one);
    bill_usage_clear(&u);
}

static void test_month_boundaries(void **state)
{
    (void)state;
    int64_t from, to;
    assert_true(time_month_range("2026-11", &from, &to));
    assert_true(from == NOV_FROM && to == NOV_TO);
    assert_true(time_month_range("2028-02", &from, &to));
    assert_true(from == FEB_FROM && to == FEB_TO && to - from == 29 * DAY);
    assert_true(time_month_range("1970-01", &from, &to));
    assert_true(from == 0 && to == 31 * DAY);
    assert_false(time_month_range("2026-13", &from, &to));
    assert_false(time_month_range("0000-01", &from, &to));
    assert_false(time_month_range("2026-1", &from, &to));
    assert_false(time_month_range("2026-11x", &from, &to));
    assert_false(time_month_range(NULL, &from, &to));

    /* the last millisecond of November is November's; the first of December is not */
    bill_usage u;
    dec q;
    dec_init(&q);
    dec_set_int(&q, 4);
    bill_usage_init(&u, BILL_STANDARD_ADD, NOV_FROM, NOV_TO, 30);
    assert_int_equal(bill_usage_add(&u, NOV_TO - 1, NOV_TO - 1, &q), 0);
    assert_int_equal(bill_usage_add(&u, NOV_TO - 1000, NOV_TO, &q), 0); /* instant to - 1 */
    assert_int_equal(bill_usage_add(&u, NOV_TO, NOV_TO, &q), OSB_E_INVAL);
    assert_int_equal(bill_usage_add(&u, NOV_FROM - 1, NOV_FROM - 1, &q), OSB_E_INVAL);
    assert_int_equal(bill_usage_add(&u, NOV_FROM - 1, NOV_FROM, &q), OSB_E_INVAL);
    assert_int_equal(bill_usage_add(&u, NOV_FROM, NOV_FROM, &q), 0);
    assert_int_equal(bill_usage_add(&u, 5, 4, &q), OSB_E_INVAL);
    assert_billable(&u, "12");
    bill_usage_clear(&u);

    /* February of a leap year: D = 29; a record on the 29th is day 29's */
    bill_usage_init(&u, BILL_DAILYPRORATION_MAX, FEB_FROM, FEB_TO, 29);
    add(&u, FEB_TO - 1, FEB_TO - 1, "29");
    assert_billable(&u, "1");
    bill_usage_clear(&u);
    bill_usage_init(&u, BILL_MONTHLYPRORATION, FEB_FROM, FEB_TO, 29);
    add(&u, FEB_FROM + 28 * DAY, FEB_TO + DAY, "29");
    assert_billable(&u, "1"); /* one day of 29, x 29 */
    bill_usage_clear(&u);
    dec_clear(&q);
}

/* ---------------------------------------------------------------- pricing models */

static void test_spec_worked_example(void **state)
{
    (void)state;
    bill_price g, s;
    spec_tiers(&g, "graduated_tier");
    spec_tiers(&s, "simple_tier");
    /* 1000 x 0.10 + 9000 x 0.08 + 2500 x 0.05 = 945.00 */
    dec q, a, line, prov, plat, share;
    dec_init(&q);
    dec_init(&a);
    dec_init(&line);
    dec_init(&prov);
    dec_init(&plat);
    dec_init(&share);
    set(&q, "12500");
    assert_int_equal(bill_amount(&a, &g, &q), 0);
    set(&share, "0.87");
    bill_split(&line, &prov, &plat, &a, 2, &share);
    assert_fixed(&line, 2, "945.00");
    assert_fixed(&prov, 2, "822.15");
    assert_fixed(&plat, 2, "122.85");
    assert_int_equal(bill_amount(&a, &s, &q), 0);
    bill_split(&line, &prov, &plat, &a, 2, &share);
    assert_fixed(&line, 2, "625.00");
    assert_fixed(&prov, 2, "543.75");
    assert_fixed(&plat, 2, "81.25");
    dec_clear(&q);
    dec_clear(&a);
    dec_clear(&line);
    dec_clear(&prov);
    dec_clear(&plat);
    dec_clear(&share);
    bill_price_clear(&g);
    bill_price_clear(&s);
}

static void test_tier_boundaries(void **state)
{
    (void)state;
    bill_price g, s, b;
    spec_tiers(&g, "graduated_tier");
    spec_tiers(&s, "simple_tier");
    spec_tiers(&b, "block_tier");

    /* exactly at up_to: the tier's own price (bounds are inclusive) */
    assert_amount(&s, "1000", "100");
    assert_amount(&g, "1000", "100");
    assert_amount(&b, "1000", "0.1");
    /* just above, by one unit of the 12th digit */
    assert_amount(&s, "1000.000000000001", "80.00000000000008");
    assert_amount(&g, "1000.000000000001", "100.00000000000008");
    assert_amount(&b, "1000.000000000001", "0.08");
    /* the second bound, and into the open tier */
    assert_amount(&g, "10000", "820");
    assert_amount(&g, "10000.5", "820.025");
    assert_amount(&s, "10000", "800");
    assert_amount(&s, "10000.5", "500.025");
    assert_amount(&b, "10000", "0.08");
    assert_amount(&b, "10000.5", "0.05");
    /* small quantities */
    assert_amount(&g, "0.000000000001", "0.0000000000001");
    assert_amount(&b, "0.000000000001", "0.1");
    /* zero costs zero in every model, block included */
    assert_amount(&g, "0", "0");
    assert_amount(&s, "0", "0");
    assert_amount(&b, "0", "0");
    /* negative (allow_negative): q x the first tier's price */
    assert_amount(&g, "-3", "-0.3");
    assert_amount(&s, "-20000", "-2000");
    assert_amount(&b, "-1", "-0.1");
    bill_price_clear(&g);
    bill_price_clear(&s);
    bill_price_clear(&b);
}

static void test_linear_and_rated_quantity(void **state)
{
    (void)state;
    bill_price p;
    price(&p,
          "{\"model\": \"linear\", \"tiers\": [{\"up_to\": null, \"price\": \"0.123456789\"}]}");
    assert_amount(&p, "3.5", "0.4320987615");
    /* a 12-digit quantity times a 9-digit price keeps all 21 digits */
    assert_amount(&p, "0.333333333333", "0.041152262999958847737");
    bill_price_clear(&p);

    dec b, u, q;
    dec_init(&b);
    dec_init(&u);
    dec_init(&q);
    set(&b, "12345");
    set(&u, "1000"); /* per 1,000 API calls */
    assert_int_equal(bill_rated_quantity(&q, &b, &u), 0);
    assert_dec(&q, "12.345");
    set(&b, "1");
    set(&u, "3");
    assert_int_equal(bill_rated_quantity(&q, &b, &u), 0);
    assert_dec(&q, "0.333333333333");
    set(&b, "2");
    assert_int_equal(bill_rated_quantity(&q, &b, &u), 0);
    assert_dec(&q, "0.666666666667");
    set(&u, "0");
    assert_int_equal(bill_rated_quantity(&q, &b, &u), OSB_E_INVAL);
    set(&u, "-1");
    assert_int_equal(bill_rated_quantity(&q, &b, &u), OSB_E_INVAL);
    dec_clear(&b);
    dec_clear(&u);
    dec_clear(&q);
}

static void test_free_plan_rates_to_zero(void **state)
{
    (void)state;
    /* a free plan has no price: its usage still has a billable quantity, and its line is 0 */
    bill_usage u;
    bill_usage_init(&u, BILL_STANDARD_ADD, NOV_FROM, NOV_TO, 30);
    add(&u, NOV_FROM, NOV_FROM, "1234.5");
    assert_billable(&u, "1234.5");
    bill_usage_clear(&u);
    bill_price p;
    price(&p, "{\"model\": \"linear\", \"tiers\": [{\"up_to\": null, \"price\": \"0\"}]}");
    assert_amount(&p, "1234.5", "0");
    bill_price_clear(&p);
}

static void test_bad_prices(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"model\": \"volume\", \"tiers\": [{\"up_to\": null, \"price\": \"1\"}]}",
        "{\"model\": \"linear\", \"tiers\": []}",
        "{\"model\": \"linear\", \"tiers\": [{\"up_to\": \"5\", \"price\": \"1\"},"
        " {\"up_to\": null, \"price\": \"1\"}]}",
        "{\"model\": \"simple_tier\", \"tiers\": [{\"up_to\": \"5\", \"price\": \"1\"}]}",
        "{\"model\": \"simple_tier\", \"tiers\": [{\"up_to\": null, \"price\": \"1\"},"
        " {\"up_to\": null, \"price\": \"1\"}]}",
        "{\"model\": \"simple_tier\", \"tiers\": [{\"up_to\": \"5\", \"price\": \"1\"},"
        " {\"up_to\": \"5\", \"price\": \"1\"}, {\"up_to\": null, \"price\": \"1\"}]}",
        "{\"model\": \"simple_tier\", \"tiers\": [{\"up_to\": \"0\", \"price\": \"1\"},"
        " {\"up_to\": null, \"price\": \"1\"}]}",
        "{\"model\": \"linear\", \"tiers\": [{\"up_to\": null, \"price\": \"-1\"}]}",
        "{\"model\": \"linear\", \"tiers\": [{\"up_to\": null, \"price\": 0.5}]}",
        "{\"model\": \"linear\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        bill_price p;
        bill_price_init(&p);
        if (bill_price_from_json(&p, j) != OSB_E_INVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(p.n, 0);
        json_decref(j);
    }
}

/* ---------------------------------------------------------------- money */

static void split(const char *exact, int minor, const char *share, const char *line,
                  const char *provider, const char *platform)
{
    dec e, s, l, pr, pl;
    dec_init(&e);
    dec_init(&s);
    dec_init(&l);
    dec_init(&pr);
    dec_init(&pl);
    set(&e, exact);
    set(&s, share);
    bill_split(&l, &pr, &pl, &e, minor, &s);
    assert_fixed(&l, minor, line);
    assert_fixed(&pr, minor, provider);
    assert_fixed(&pl, minor, platform);
    dec_add(&pr, &pr, &pl);
    assert_int_equal(dec_cmp(&pr, &l), 0); /* the shares sum to the line */
    dec_clear(&e);
    dec_clear(&s);
    dec_clear(&l);
    dec_clear(&pr);
    dec_clear(&pl);
}

static void test_currency_rounding_and_share(void **state)
{
    (void)state;
    assert_int_equal(currency_minor_units("USD"), 2);
    assert_int_equal(currency_minor_units("JPY"), 0);
    assert_int_equal(currency_minor_units("KWD"), 3);
    /* USD: half a cent rounds up, away from zero below zero too */
    split("0.005", 2, "0.87", "0.01", "0.01", "0.00");
    split("-0.005", 2, "0.87", "-0.01", "-0.01", "0.00");
    split("0.004999999999999999999", 2, "0.87", "0.00", "0.00", "0.00");
    split("945", 2, "0.87", "945.00", "822.15", "122.85");
    /* JPY: no minor unit */
    split("625.5", 0, "0.87", "626", "545", "81"); /* 626 x 0.87 = 544.62 */
    split("101", 0, "0.87", "101", "88", "13");    /* 87.87 */
    split("0.4999", 0, "0.87", "0", "0", "0");
    /* KWD: three digits */
    split("1.2345", 3, "0.87", "1.235", "1.074", "0.161"); /* 1.07445 -> 1.074 */
    split("1.2355", 3, "0.87", "1.236", "1.075", "0.161"); /* 1.07532 */
    /* shares at the ends of [0, 1] and with 4 digits */
    split("10", 2, "0", "10.00", "0.00", "10.00");
    split("10", 2, "1", "10.00", "10.00", "0.00");
    split("0.03", 2, "0.8333", "0.03", "0.02", "0.01"); /* 0.024999 */
    split("0.06", 2, "0.8333", "0.06", "0.05", "0.01"); /* 0.049998 */
}

static void test_limits(void **state)
{
    (void)state;
    /* a billable quantity of 10^18 or more stops rating, it does not wrap */
    bill_usage u;
    bill_usage_init(&u, BILL_STANDARD_ADD, NOV_FROM, NOV_TO, 30);
    for (int i = 0; i < 1000; i++)
        add(&u, NOV_FROM, NOV_FROM, "999999999999999.999999999");
    dec b;
    dec_init(&b);
    assert_int_equal(bill_usage_billable(&u, &b), 0); /* just below 10^18 */
    assert_dec(&b, "999999999999999999.999999");
    bill_usage_clear(&u);
    bill_usage_init(&u, BILL_STANDARD_ADD, NOV_FROM, NOV_TO, 30);
    for (int i = 0; i < 1001; i++)
        add(&u, NOV_FROM, NOV_FROM, "999999999999999");
    assert_int_equal(bill_usage_billable(&u, &b), OSB_E_TOOBIG);
    bill_usage_clear(&u);
    bill_usage_init(&u, BILL_STANDARD_ADD, NOV_FROM, NOV_TO, 30);
    for (int i = 0; i < 1000; i++)
        add(&u, NOV_FROM, NOV_FROM, "999999999999999");
    assert_int_equal(bill_usage_billable(&u, &b), 0);
    assert_dec(&b, "999999999999999000");
    bill_usage_clear(&u);

    /* an amount of 10^15 or more: just below passes, at the limit it is an error */
    bill_price p;
    price(&p, "{\"model\": \"linear\", \"tiers\": [{\"up_to\": null, \"price\": \"10\"}]}");
    dec q, a;
    dec_init(&q);
    dec_init(&a);
    set(&q, "99999999999999.999999999999");
    assert_int_equal(bill_amount(&a, &p, &q), 0);
    assert_dec(&a, "999999999999999.99999999999");
    set(&q, "100000000000000");
    assert_int_equal(bill_amount(&a, &p, &q), OSB_E_TOOBIG);
    set(&q, "-100000000000000");
    assert_int_equal(bill_amount(&a, &p, &q), OSB_E_TOOBIG);
    bill_price_clear(&p);
    /* a block price can reach the limit on its own */
    price(&p, "{\"model\": \"block_tier\", \"tiers\": [{\"up_to\": \"1\", \"price\": \"1\"},"
              " {\"up_to\": null, \"price\": \"1000000000000000\"}]}");
    set(&q, "2");
    assert_int_equal(bill_amount(&a, &p, &q), OSB_E_TOOBIG);
    set(&q, "1");
    assert_int_equal(bill_amount(&a, &p, &q), 0);
    bill_price_clear(&p);
    dec_clear(&q);
    dec_clear(&a);
    dec_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_names),
        cmocka_unit_test(test_standard_add),
        cmocka_unit_test(test_standard_max),
        cmocka_unit_test(test_standard_avg_rounds_at_12_digits),
        cmocka_unit_test(test_dailyproration_max),
        cmocka_unit_test(test_dailyproration_avg_rounds_twice),
        cmocka_unit_test(test_monthlyproration),
        cmocka_unit_test(test_month_boundaries),
        cmocka_unit_test(test_spec_worked_example),
        cmocka_unit_test(test_tier_boundaries),
        cmocka_unit_test(test_linear_and_rated_quantity),
        cmocka_unit_test(test_free_plan_rates_to_zero),
        cmocka_unit_test(test_bad_prices),
        cmocka_unit_test(test_currency_rounding_and_share),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
