/* Unit tests of base's exact decimals: the JSON number grammar, canonical and fixed text,
 * exact sums and products, half-up rounding and division, and the spec's worked examples
 * (billing.md "Exact arithmetic", "Pricing", "Money"). Expected values are literal strings. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/decimal.h"

/* ---------------------------------------------------------------- helpers */

static void set(dec *d, const char *s)
{
    int rc = dec_parse(d, s, strlen(s));
    if (rc)
        fail_msg("dec_parse(\"%s\") = %d", s, rc);
}

static void assert_dec(const dec *d, const char *want)
{
    char *s = dec_to_string(d);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

static void assert_fixed(const dec *d, int places, const char *want)
{
    char *s = dec_to_fixed(d, places);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

/* Parses text and checks the canonical text and the scale kept. */
static void check_parse(const char *text, const char *canon, int scale)
{
    dec d;
    dec_init(&d);
    set(&d, text);
    assert_dec(&d, canon);
    if (d.scale != scale)
        fail_msg("\"%s\": scale %d, want %d", text, d.scale, scale);
    dec_clear(&d);
}

/* A refused parse returns rc and leaves the previous value (7) alone. */
static void check_refused(const char *text, size_t n, int rc)
{
    dec d;
    dec_init(&d);
    dec_set_int(&d, 7);
    int got = dec_parse(&d, text, n);
    if (got != rc)
        fail_msg("dec_parse(\"%.*s\") = %d, want %d", (int)n, text, got, rc);
    assert_dec(&d, "7");
    assert_int_equal(d.scale, 0);
    dec_clear(&d);
}

static char *repeat(char c, size_t n, const char *prefix, const char *suffix)
{
    size_t lp = strlen(prefix), ls = strlen(suffix);
    char *s = malloc(lp + n + ls + 1);
    assert_non_null(s);
    memcpy(s, prefix, lp);
    memset(s + lp, c, n);
    memcpy(s + lp + n, suffix, ls + 1);
    return s;
}

/* ---------------------------------------------------------------- parsing */

static void test_parse_valid(void **state)
{
    (void)state;
    check_parse("0", "0", 0);
    check_parse("-0", "0", 0);
    check_parse("-0.00", "0", 2);
    check_parse("0.10", "0.1", 2);
    check_parse("1e3", "1000", 0);
    check_parse("1E+2", "100", 0);
    check_parse("1.5E-2", "0.015", 3);
    check_parse("-12.340", "-12.34", 3);
    check_parse("12.5e1", "125", 0);
    check_parse("12.25e1", "122.5", 1);
    check_parse("5e-1", "0.5", 1);
    check_parse("0e5", "0", 0);
    check_parse("0e999999999999", "0", 0);
    check_parse("0.0e-100", "0", DEC_MAX_SCALE);
    check_parse("10", "10", 0);
    check_parse("-0.000000000001", "-0.000000000001", 12);
    check_parse("123456789012345678901234567890.123456789012",
                "123456789012345678901234567890.123456789012", 12);
    /* the integer part may have DEC_MAX_INT_DIGITS (40) digits */
    check_parse("1e39", "1000000000000000000000000000000000000000", 0);
    check_parse("-9999999999999999999999999999999999999999",
                "-9999999999999999999999999999999999999999", 0);
    /* the smallest step at DEC_MAX_SCALE (64) */
    check_parse("1e-64", "0.0000000000000000000000000000000000000000000000000000000000000001", 64);
    /* written scale 66, but the two trailing zeros can go */
    check_parse("1.000e-63", "0.000000000000000000000000000000000000000000000000000000000000001",
                64);

    /* n bounds the text: no NUL needed, what follows is not read */
    dec d;
    dec_init(&d);
    assert_int_equal(dec_parse(&d, "12.5xyz", 4), 0);
    assert_dec(&d, "12.5");
    /* the longest accepted text, 128 characters */
    char *s = repeat('0', 126, "0.", "");
    assert_int_equal(strlen(s), 128);
    assert_int_equal(dec_parse(&d, s, strlen(s)), 0);
    assert_dec(&d, "0");
    free(s);
    s = repeat('9', 40, "", ".");
    char *t = repeat('9', 64, s, ""); /* 40 + 1 + 64 = 105 characters, both limits reached */
    assert_int_equal(dec_parse(&d, t, strlen(t)), 0);
    char *out = dec_to_string(&d);
    assert_string_equal(out, t);
    free(out);
    free(t);
    free(s);
    dec_clear(&d);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "-",   "01",    "-01",   "00",   "1.",   ".5",   "-.5",   "+1",   "1e",       "1e+",
        "1e-", " 1",    "1 ",    "\t1",  "1\n",  "0x10", "NaN",   "nan",  "Infinity", "-Infinity",
        "inf", "1,5",   "1.2.3", "1..2", "1.e5", "--1",  "1e1.5", "1ee5", "e5",       "1_000",
        "١",   "1e5e5", "0.5.",  "- 1",  "0b1",  "1d",   "1f",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        check_refused(bad[i], strlen(bad[i]), OSB_E_INVAL);
    check_refused("", 0, OSB_E_INVAL);
    check_refused(NULL, 0, OSB_E_INVAL);
    /* an embedded NUL is a character like any other non-digit ("\000" is one NUL) */
    check_refused("1\0", 2, OSB_E_INVAL);
    check_refused("1\0002", 3, OSB_E_INVAL);
    check_refused("\0001", 2, OSB_E_INVAL);

    /* too long: 129 characters, even though the value would be fine */
    char *s = repeat('0', 127, "0.", "");
    assert_int_equal(strlen(s), 129);
    check_refused(s, strlen(s), OSB_E_INVAL);
    free(s);

    /* out of range */
    check_refused("1e999999999999", 14, OSB_E_TOOBIG);
    check_refused("-1e999999999999", 15, OSB_E_TOOBIG);
    check_refused("1e-999999999999", 15, OSB_E_TOOBIG);
    check_refused("1e40", 4, OSB_E_TOOBIG);
    check_refused("-1e40", 5, OSB_E_TOOBIG);
    check_refused("1e-65", 5, OSB_E_TOOBIG);
    check_refused("1.5e-64", 7, OSB_E_TOOBIG);
    s = repeat('9', 41, "", ""); /* 41 integer digits */
    check_refused(s, strlen(s), OSB_E_TOOBIG);
    free(s);
    s = repeat('0', 64, "0.", "1"); /* 65 fractional digits */
    check_refused(s, strlen(s), OSB_E_TOOBIG);
    free(s);
}

static void test_set_int_copy(void **state)
{
    (void)state;
    dec a, b;
    dec_init(&a);
    dec_init(&b);
    assert_dec(&a, "0"); /* dec_init is zero */
    assert_int_equal(a.scale, 0);
    dec_set_int(&a, LLONG_MAX);
    assert_dec(&a, "9223372036854775807");
    dec_set_int(&a, LLONG_MIN);
    assert_dec(&a, "-9223372036854775808");
    dec_set_int(&a, -42);
    assert_dec(&a, "-42");
    set(&a, "-12.340");
    dec_copy(&b, &a);
    assert_dec(&b, "-12.34");
    assert_int_equal(b.scale, 3);
    dec_set_int(&a, 0); /* the copy is independent */
    assert_dec(&b, "-12.34");
    assert_int_equal(a.scale, 0);
    dec_copy(&b, &b);
    assert_dec(&b, "-12.34");
    dec_clear(&a);
    dec_clear(&b);
}

/* ---------------------------------------------------------------- formatting */

static void test_to_string(void **state)
{
    (void)state;
    check_parse("100.000", "100", 3);
    check_parse("-0.0", "0", 1);
    check_parse("0.0001", "0.0001", 4);
    check_parse("-100", "-100", 0);
    check_parse("1000.0010", "1000.001", 4);
    check_parse("-0.5", "-0.5", 1);
}

static void test_to_fixed(void **state)
{
    (void)state;
    dec d;
    dec_init(&d);
    set(&d, "945");
    assert_fixed(&d, 2, "945.00");
    set(&d, "625");
    assert_fixed(&d, 0, "625");
    set(&d, "945.0000000000000000000"); /* scale 19 but only zeros: no rounding needed */
    assert_fixed(&d, 2, "945.00");
    set(&d, "-12.340");
    assert_fixed(&d, 2, "-12.34");
    assert_fixed(&d, 4, "-12.3400");
    assert_fixed(&d, 1, "-12.3");
    assert_fixed(&d, 0, "-12");
    set(&d, "0");
    assert_fixed(&d, 3, "0.000");
    assert_fixed(&d, 0, "0");
    /* rounded half-up away from zero first */
    set(&d, "0.5");
    assert_fixed(&d, 0, "1");
    set(&d, "-0.5");
    assert_fixed(&d, 0, "-1");
    set(&d, "0.015");
    assert_fixed(&d, 2, "0.02");
    set(&d, "1.005");
    assert_fixed(&d, 2, "1.01");
    set(&d, "1.0049999");
    assert_fixed(&d, 2, "1.00");
    set(&d, "99.995");
    assert_fixed(&d, 2, "100.00");
    set(&d, "-99.995");
    assert_fixed(&d, 2, "-100.00");
    /* a negative value that rounds to zero prints unsigned */
    set(&d, "-0.001");
    assert_fixed(&d, 2, "0.00");
    set(&d, "-0.4");
    assert_fixed(&d, 0, "0");
    set(&d, "0.000000000001");
    assert_fixed(&d, 12, "0.000000000001");
    assert_fixed(&d, 14, "0.00000000000100");
    /* places out of range */
    assert_null(dec_to_fixed(&d, -1));
    assert_null(dec_to_fixed(&d, DEC_MAX_SCALE + 1));
    dec_clear(&d);
}

/* ---------------------------------------------------------------- comparison */

static void test_cmp_sign(void **state)
{
    (void)state;
    dec a, b;
    dec_init(&a);
    dec_init(&b);
    set(&a, "0.10");
    set(&b, "0.1");
    assert_int_equal(dec_cmp(&a, &b), 0);
    set(&a, "-1");
    set(&b, "0.5");
    assert_int_equal(dec_cmp(&a, &b), -1);
    assert_int_equal(dec_cmp(&b, &a), 1);
    set(&a, "2");
    set(&b, "1.999999999999");
    assert_int_equal(dec_cmp(&a, &b), 1);
    set(&a, "1000000000000000000000000000000");
    set(&b, "999999999999999999999999999999.999999999999");
    assert_int_equal(dec_cmp(&a, &b), 1);
    assert_int_equal(dec_cmp(&b, &a), -1);
    set(&a, "-0.000");
    set(&b, "0");
    assert_int_equal(dec_cmp(&a, &b), 0);
    assert_int_equal(dec_sign(&a), 0);
    set(&a, "-0.000000000001");
    assert_int_equal(dec_sign(&a), -1);
    assert_int_equal(dec_cmp(&a, &b), -1);
    set(&a, "12e30"); /* dec_cmp answers -1/0/1, not a difference */
    set(&b, "-12e30");
    assert_int_equal(dec_cmp(&a, &b), 1);
    assert_int_equal(dec_sign(&a), 1);
    dec_clear(&a);
    dec_clear(&b);
}

static void test_frac_digits(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int digits;
    } cases[] = {
        {"1.000", 0},           {"0", 0},
        {"0.000", 0},           {"0.10", 1},
        {"-12.340", 2},         {"1e3", 0},
        {"0.000000000001", 12}, {"100", 0},
        {"1.5E-2", 3},          {"-7.0000000000010", 12},
    };
    dec d;
    dec_init(&d);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        set(&d, cases[i].text);
        if (dec_frac_digits(&d) != cases[i].digits)
            fail_msg("dec_frac_digits(%s) = %d, want %d", cases[i].text, dec_frac_digits(&d),
                     cases[i].digits);
    }
    dec_clear(&d);
}

static void test_abs_below_pow10(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int exp;
        bool below;
    } cases[] = {
        {"999999999999999.999999999999", 15, true}, /* 10^15 - 10^-12: a record may have it */
        {"-999999999999999.999999999999", 15, true},
        {"1000000000000000", 15, false},
        {"1e15", 15, false},
        {"-1e15", 15, false},
        {"1000000000000000.000000000000", 15, false},
        {"999999999999999999", 18, true}, /* billable quantity < 10^18 */
        {"1e18", 18, false},
        {"0", 0, true},
        {"0.9", 0, true},
        {"1", 0, false},
        {"0.001", -2, true},
        {"0.01", -2, false},
        {"5", -1, false},
        {"0", -5, true},
    };
    dec d;
    dec_init(&d);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        set(&d, cases[i].text);
        if (dec_abs_below_pow10(&d, cases[i].exp) != cases[i].below)
            fail_msg("dec_abs_below_pow10(%s, %d) != %d", cases[i].text, cases[i].exp,
                     cases[i].below);
    }
    dec_clear(&d);
}

/* ---------------------------------------------------------------- arithmetic */

static void test_add_sub(void **state)
{
    (void)state;
    dec a, b, r;
    dec_init(&a);
    dec_init(&b);
    dec_init(&r);
    set(&a, "1e30");
    set(&b, "1e-12");
    dec_add(&r, &a, &b);
    assert_dec(&r, "1000000000000000000000000000000.000000000001");
    assert_int_equal(r.scale, 12);
    dec_sub(&r, &a, &b);
    assert_dec(&r, "999999999999999999999999999999.999999999999");
    dec_sub(&r, &b, &a);
    assert_dec(&r, "-999999999999999999999999999999.999999999999");
    /* the float trap */
    set(&a, "0.1");
    set(&b, "0.2");
    dec_add(&r, &a, &b);
    assert_dec(&r, "0.3");
    set(&a, "0.3");
    assert_int_equal(dec_cmp(&r, &a), 0);
    /* the result keeps the larger scale */
    set(&a, "1.50");
    set(&b, "2.5");
    dec_add(&r, &a, &b);
    assert_dec(&r, "4");
    assert_int_equal(r.scale, 2);
    set(&a, "-5.25");
    set(&b, "-5.25");
    dec_sub(&r, &a, &b);
    assert_dec(&r, "0");
    assert_int_equal(dec_sign(&r), 0);
    /* aliasing: a += b, a -= a */
    set(&a, "0.000000000001");
    set(&b, "999999999999999.999999999999");
    dec_add(&a, &a, &b);
    assert_dec(&a, "1000000000000000");
    dec_add(&b, &a, &b);
    assert_dec(&b, "1999999999999999.999999999999");
    dec_sub(&a, &a, &a);
    assert_dec(&a, "0");
    set(&a, "-3.5");
    dec_add(&a, &a, &a);
    assert_dec(&a, "-7");
    dec_clear(&a);
    dec_clear(&b);
    dec_clear(&r);
}

static void test_mul(void **state)
{
    (void)state;
    dec a, b, r;
    dec_init(&a);
    dec_init(&b);
    dec_init(&r);
    /* a rated quantity (12 fractional digits) times a price (9): 21 digits, all kept */
    set(&a, "123456.789012345678");
    set(&b, "0.123456789");
    assert_int_equal(dec_mul(&r, &a, &b), 0);
    assert_int_equal(r.scale, 21);
    assert_dec(&r, "15241.578751714678763907942");
    /* its integer count of 10^-21 units is past 2^128 */
    set(&a, "99999999999999.999999999999");
    set(&b, "999999.999999999");
    assert_int_equal(dec_mul(&r, &a, &b), 0);
    assert_dec(&r, "99999999999999899999.999999000000000000001");
    set(&a, "-1e30");
    set(&b, "1e30");
    assert_int_equal(dec_mul(&r, &a, &b), 0);
    assert_dec(&r, "-1000000000000000000000000000000000000000000000000000000000000");
    set(&a, "-0.5");
    set(&b, "-0.5");
    assert_int_equal(dec_mul(&r, &a, &b), 0);
    assert_dec(&r, "0.25");
    set(&a, "0");
    set(&b, "-3.14");
    assert_int_equal(dec_mul(&r, &a, &b), 0);
    assert_dec(&r, "0");
    /* aliasing: a *= a */
    set(&a, "1.1");
    assert_int_equal(dec_mul(&a, &a, &a), 0);
    assert_dec(&a, "1.21");
    assert_int_equal(a.scale, 2);
    /* scales add up to at most DEC_MAX_SCALE */
    set(&a, "1e-32");
    set(&b, "3e-32");
    assert_int_equal(dec_mul(&r, &a, &b), 0);
    assert_dec(&r, "0.0000000000000000000000000000000000000000000000000000000000000003");
    set(&b, "3e-33");
    dec_set_int(&r, 9);
    assert_int_equal(dec_mul(&r, &a, &b), OSB_E_TOOBIG);
    assert_dec(&r, "9"); /* untouched */
    dec_clear(&a);
    dec_clear(&b);
    dec_clear(&r);
}

static void check_round(const char *text, int places, const char *want)
{
    dec a, r;
    dec_init(&a);
    dec_init(&r);
    set(&a, text);
    dec_round(&r, &a, places);
    assert_int_equal(r.scale, places);
    char *got = dec_to_string(&r);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("round(%s, %d) = %s, want %s", text, places, got, want);
    free(got);
    /* in place gives the same */
    dec_round(&a, &a, places);
    assert_int_equal(dec_cmp(&a, &r), 0);
    dec_clear(&a);
    dec_clear(&r);
}

static void test_round(void **state)
{
    (void)state;
    check_round("2.5", 0, "3");
    check_round("-2.5", 0, "-3");
    check_round("3.5", 0, "4");
    check_round("-3.5", 0, "-4");
    check_round("2.4999999999999", 0, "2");
    check_round("-2.4999999999999", 0, "-2");
    check_round("0.5", 0, "1");
    check_round("-0.5", 0, "-1");
    check_round("0.4", 0, "0");
    check_round("-0.4", 0, "0");
    check_round("1.45", 1, "1.5");
    check_round("-1.45", 1, "-1.5");
    check_round("9.999", 2, "10");
    /* 12 places, the spec's r12 */
    check_round("0.0000000000005", 12, "0.000000000001");
    check_round("-0.0000000000005", 12, "-0.000000000001");
    check_round("0.00000000000049999", 12, "0");
    check_round("-0.00000000000049999", 12, "0");
    check_round("1.2345678901235", 12, "1.234567890124");
    check_round("1.23456789012349", 12, "1.234567890123");
    check_round("-1.2345678901235", 12, "-1.234567890124");
    check_round("15241.578751714678763907942", 12, "15241.578751714679");
    check_round("999999999999999.9999999999995", 12, "1000000000000000");
    /* fewer digits than asked: only the scale grows */
    check_round("1.5", 3, "1.5");
    check_round("7", 12, "7");
    check_round("0", 2, "0");
}

static void check_div(const char *a_text, const char *b_text, int places, const char *want)
{
    dec a, b, r;
    dec_init(&a);
    dec_init(&b);
    dec_init(&r);
    set(&a, a_text);
    set(&b, b_text);
    assert_int_equal(dec_div_round(&r, &a, &b, places), 0);
    assert_int_equal(r.scale, places);
    char *got = dec_to_string(&r);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("%s / %s (%d) = %s, want %s", a_text, b_text, places, got, want);
    free(got);
    dec_clear(&a);
    dec_clear(&b);
    dec_clear(&r);
}

static void test_div_round(void **state)
{
    (void)state;
    check_div("1", "3", 12, "0.333333333333");
    check_div("2", "3", 12, "0.666666666667");
    check_div("-2", "3", 12, "-0.666666666667");
    check_div("2", "-3", 12, "-0.666666666667");
    check_div("-2", "-3", 12, "0.666666666667");
    check_div("10", "4", 12, "2.5");
    check_div("1", "0.3", 12, "3.333333333333");
    check_div("0.5", "0.25", 12, "2");
    check_div("5", "2", 0, "3");
    check_div("-5", "2", 0, "-3");
    check_div("7", "2", 0, "4");
    /* the half at the 13th digit: 1 / (2 * 10^12) = 0.0000000000005 */
    check_div("1", "2000000000000", 12, "0.000000000001");
    check_div("-1", "2000000000000", 12, "-0.000000000001");
    check_div("1", "2000000000001", 12, "0");
    check_div("1e30", "7", 12, "142857142857142857142857142857.142857142857");
    /* an average over 30 days: 100 / 30 */
    check_div("100", "30", 12, "3.333333333333");
    check_div("0", "-3", 12, "0");

    dec a, b, r;
    dec_init(&a);
    dec_init(&b);
    dec_init(&r);
    set(&a, "10.000");
    assert_int_equal(dec_div_round(&r, &a, &b, 12), OSB_E_INVAL); /* b is 0 */
    set(&b, "0.000");
    dec_set_int(&r, 9);
    assert_int_equal(dec_div_round(&r, &a, &b, 12), OSB_E_INVAL);
    assert_dec(&r, "9");
    assert_int_equal(r.scale, 0);
    set(&b, "4");
    assert_int_equal(dec_div_round(&r, &a, &b, -1), OSB_E_INVAL);
    assert_int_equal(dec_div_round(&r, &a, &b, DEC_MAX_SCALE + 1), OSB_E_INVAL);
    /* aliasing: a = a / b, b = a / b */
    assert_int_equal(dec_div_round(&a, &a, &b, 12), 0);
    assert_dec(&a, "2.5");
    assert_int_equal(dec_div_round(&b, &a, &b, 2), 0);
    assert_dec(&b, "0.63");
    dec_clear(&a);
    dec_clear(&b);
    dec_clear(&r);
}

/* ---------------------------------------------------------------- the spec's examples */

/* Graduated tiers 1000 @ 0.10, 10000 @ 0.08, open @ 0.05 on q = 12,500, as billing will
 * compute them: each tier's part of q, times its price, summed exactly. */
static void test_worked_example(void **state)
{
    (void)state;
    static const struct {
        const char *up_to; /* NULL = open */
        const char *price;
    } tiers[] = {{"1000", "0.10"}, {"10000", "0.08"}, {NULL, "0.05"}};
    dec q, lower, upper, part, price, cost, total;
    dec_init(&q);
    dec_init(&lower);
    dec_init(&upper);
    dec_init(&part);
    dec_init(&price);
    dec_init(&cost);
    dec_init(&total);
    /* q as rating produces it: r12(billable / charge_unit_quantity) */
    dec billable, unit;
    dec_init(&billable);
    dec_init(&unit);
    set(&billable, "12500000");
    set(&unit, "1000");
    assert_int_equal(dec_div_round(&q, &billable, &unit, 12), 0);
    assert_fixed(&q, 12, "12500.000000000000");

    static const char *const parts[] = {"1000", "9000", "2500"};
    static const char *const costs[] = {"100", "720", "125"};
    for (size_t i = 0; i < ARRAY_LEN(tiers) && dec_cmp(&q, &lower) > 0; i++) {
        if (tiers[i].up_to) {
            set(&upper, tiers[i].up_to);
            if (dec_cmp(&q, &upper) < 0)
                dec_copy(&upper, &q);
        } else {
            dec_copy(&upper, &q);
        }
        dec_sub(&part, &upper, &lower);
        assert_dec(&part, parts[i]);
        set(&price, tiers[i].price);
        assert_int_equal(dec_mul(&cost, &part, &price), 0);
        assert_dec(&cost, costs[i]);
        dec_add(&total, &total, &cost);
        dec_copy(&lower, &upper);
    }
    assert_int_equal(total.scale, 14);
    assert_dec(&total, "945");
    dec_round(&total, &total, currency_minor_units("USD"));
    assert_fixed(&total, 2, "945.00");

    /* simple tier on the same q: all of it at the price of the tier q falls in */
    set(&price, "0.05");
    assert_int_equal(dec_mul(&cost, &q, &price), 0);
    assert_fixed(&cost, 2, "625.00");
    assert_fixed(&cost, currency_minor_units("JPY"), "625");

    dec_clear(&q);
    dec_clear(&lower);
    dec_clear(&upper);
    dec_clear(&part);
    dec_clear(&price);
    dec_clear(&cost);
    dec_clear(&total);
    dec_clear(&billable);
    dec_clear(&unit);
}

static void check_money(const char *amount, const char *currency, const char *want)
{
    dec a, r;
    dec_init(&a);
    dec_init(&r);
    set(&a, amount);
    int units = currency_minor_units(currency);
    assert_true(units >= 0);
    dec_round(&r, &a, units);
    char *got = dec_to_fixed(&r, units);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("%s %s = %s, want %s", amount, currency, got, want);
    free(got);
    dec_clear(&a);
    dec_clear(&r);
}

static void test_money_rounding(void **state)
{
    (void)state;
    check_money("1234.5", "JPY", "1235");
    check_money("-1234.5", "JPY", "-1235");
    check_money("1234.4999", "KRW", "1234");
    check_money("1.2345", "KWD", "1.235");
    check_money("1.2344999", "BHD", "1.234");
    check_money("0.005", "USD", "0.01");
    check_money("-0.005", "USD", "-0.01");
    check_money("0.004999999999999999999", "USD", "0.00");
    check_money("-0.004999999999999999999", "EUR", "0.00");
    check_money("945.000000000000000000000", "USD", "945.00");
    check_money("12", "OMR", "12.000");
}

/* provider share = line x share rounded to the minor unit; platform = line - provider */
static void check_share(const char *line_text, const char *share_text, const char *currency,
                        const char *provider_want, const char *platform_want)
{
    int units = currency_minor_units(currency);
    dec line, share, provider, platform, sum;
    dec_init(&line);
    dec_init(&share);
    dec_init(&provider);
    dec_init(&platform);
    dec_init(&sum);
    set(&line, line_text);
    set(&share, share_text);
    assert_int_equal(dec_mul(&provider, &line, &share), 0);
    dec_round(&provider, &provider, units);
    dec_sub(&platform, &line, &provider);
    assert_fixed(&provider, units, provider_want);
    assert_fixed(&platform, units, platform_want);
    dec_add(&sum, &provider, &platform);
    assert_int_equal(dec_cmp(&sum, &line), 0);
    dec_clear(&line);
    dec_clear(&share);
    dec_clear(&provider);
    dec_clear(&platform);
    dec_clear(&sum);
}

static void test_revenue_share(void **state)
{
    (void)state;
    check_share("10.01", "0.87", "USD", "8.71", "1.30"); /* 8.7087 */
    check_share("0.01", "0.87", "USD", "0.01", "0.00");  /* 0.0087 */
    check_share("945.00", "0.87", "USD", "822.15", "122.85");
    check_share("999", "0.87", "JPY", "869", "130");         /* 869.13 */
    check_share("1.005", "0.8765", "KWD", "0.881", "0.124"); /* 0.8808825 */
    check_share("-10.01", "0.87", "USD", "-8.71", "-1.30");  /* a credit */
    check_share("10.01", "1", "USD", "10.01", "0.00");
    check_share("10.01", "0", "USD", "0.00", "10.01");
}

/* ---------------------------------------------------------------- JSON */

static void test_from_json(void **state)
{
    (void)state;
    dec d;
    dec_init(&d);
    json_t *j = json_string("12.50");
    assert_int_equal(dec_from_json(&d, j), 0);
    assert_dec(&d, "12.5");
    assert_int_equal(d.scale, 2);
    json_decref(j);
    j = json_integer(-42);
    assert_int_equal(dec_from_json(&d, j), 0);
    assert_dec(&d, "-42");
    assert_int_equal(d.scale, 0);
    json_decref(j);
    j = json_integer(LLONG_MAX);
    assert_int_equal(dec_from_json(&d, j), 0);
    assert_dec(&d, "9223372036854775807");
    json_decref(j);

    dec_set_int(&d, 7);
    /* a real, as a parser makes it from text: its digits are gone */
    json_error_t err;
    j = json_loads("0.1", JSON_DECODE_ANY, &err);
    assert_non_null(j);
    assert_true(json_is_real(j));
    assert_int_equal(dec_from_json(&d, j), OSB_E_INVAL);
    json_decref(j);
    static const char *const refused[] = {"null",    "true", "{}",     "[\"1\"]",
                                          "\"abc\"", "\"\"", "\" 1\"", "\"1e999999999999\""};
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        j = json_loads(refused[i], JSON_DECODE_ANY, &err);
        assert_non_null(j);
        int rc = dec_from_json(&d, j);
        if (rc == 0)
            fail_msg("dec_from_json(%s) accepted", refused[i]);
        json_decref(j);
    }
    j = json_loads("\"1e999999999999\"", JSON_DECODE_ANY, &err);
    assert_int_equal(dec_from_json(&d, j), OSB_E_TOOBIG);
    json_decref(j);
    j = json_stringn("1\0002", 3); /* JSON strings may hold a NUL */
    assert_non_null(j);
    assert_int_equal(dec_from_json(&d, j), OSB_E_INVAL);
    json_decref(j);
    assert_int_equal(dec_from_json(&d, NULL), OSB_E_INVAL);
    assert_dec(&d, "7"); /* every refusal left it alone */
    dec_clear(&d);
}

/* ---------------------------------------------------------------- currencies */

static void test_currency_minor_units(void **state)
{
    (void)state;
    static const char *const two[] = {"USD", "EUR", "GBP", "CHF", "CAD", "AUD", "CNY", "INR",
                                      "BRL", "MXN", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF",
                                      "SGD", "HKD", "NZD", "ZAR", "TRY", "ILS", "AED", "SAR",
                                      "THB", "IDR", "TWD", "PHP", "MYR", "RON"};
    static const char *const zero[] = {"JPY", "KRW", "CLP", "ISK", "VND",
                                       "UGX", "PYG", "XAF", "XOF", "XPF"};
    static const char *const three[] = {"KWD", "BHD", "OMR", "JOD", "TND", "IQD", "LYD"};
    static const char *const unknown[] = {"usd", "Usd", "US",  "USDX", "",     "US1",       "U D",
                                          "XXX", "ABC", "XTS", "JPY ", "EURO", "\xc3\x89UR"};
    for (size_t i = 0; i < ARRAY_LEN(two); i++)
        if (currency_minor_units(two[i]) != 2)
            fail_msg("%s: %d, want 2", two[i], currency_minor_units(two[i]));
    for (size_t i = 0; i < ARRAY_LEN(zero); i++)
        if (currency_minor_units(zero[i]) != 0)
            fail_msg("%s: %d, want 0", zero[i], currency_minor_units(zero[i]));
    for (size_t i = 0; i < ARRAY_LEN(three); i++)
        if (currency_minor_units(three[i]) != 3)
            fail_msg("%s: %d, want 3", three[i], currency_minor_units(three[i]));
    for (size_t i = 0; i < ARRAY_LEN(unknown); i++)
        if (currency_minor_units(unknown[i]) != -1)
            fail_msg("\"%s\": %d, want -1", unknown[i], currency_minor_units(unknown[i]));
    assert_int_equal(currency_minor_units(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_set_int_copy),
        cmocka_unit_test(test_to_string),
        cmocka_unit_test(test_to_fixed),
        cmocka_unit_test(test_cmp_sign),
        cmocka_unit_test(test_frac_digits),
        cmocka_unit_test(test_abs_below_pow10),
        cmocka_unit_test(test_add_sub),
        cmocka_unit_test(test_mul),
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_div_round),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_money_rounding),
        cmocka_unit_test(test_revenue_share),
        cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_currency_minor_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
