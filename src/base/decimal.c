/* decimal: exact decimals on GMP integers (value = v / 10^scale). Operations align scales by
 * multiplying by powers of ten, so nothing is ever approximated; the only inexact steps are
 * the explicit roundings, all half-up away from zero as the billing spec requires. */
#include "base/decimal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void dec_init(dec *d)
{
    mpz_init(d->v);
    d->scale = 0;
}

void dec_clear(dec *d)
{
    mpz_clear(d->v);
    d->scale = 0;
}

void dec_copy(dec *dst, const dec *src)
{
    if (dst == src)
        return;
    mpz_set(dst->v, src->v);
    dst->scale = src->scale;
}

void dec_set_int(dec *d, long long v)
{
    /* Through the magnitude so that LLONG_MIN and a 32-bit long both work. */
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    mpz_import(d->v, 1, 1, sizeof m, 0, 0, &m);
    if (v < 0)
        mpz_neg(d->v, d->v);
    d->scale = 0;
}

/* out = d's value as an integer count of 10^-scale units; scale >= d->scale. */
static void aligned(mpz_t out, const dec *d, int scale)
{
    assert(scale >= d->scale);
    if (scale == d->scale) {
        mpz_set(out, d->v);
        return;
    }
    mpz_ui_pow_ui(out, 10, (unsigned long)(scale - d->scale));
    mpz_mul(out, out, d->v);
}

/* ---------------------------------------------------------------- parsing */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int dec_parse(dec *d, const char *s, size_t n)
{
    if (!s || n == 0 || n > DEC_MAX_TEXT)
        return OSB_E_INVAL;
    /* The significand's digits, integer and fraction together, without the point. */
    char digits[DEC_MAX_TEXT + 1];
    size_t nd = 0, frac = 0, i = 0;
    bool neg = false;

    if (s[i] == '-') {
        neg = true;
        i++;
    }
    if (i < n && s[i] == '0') {
        digits[nd++] = s[i++];
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i]))
            digits[nd++] = s[i++];
    } else {
        return OSB_E_INVAL;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i]))
            return OSB_E_INVAL;
        while (i < n && is_digit(s[i])) {
            digits[nd++] = s[i++];
            frac++;
        }
    }
    /* Saturates: past a million the value is out of range whatever the significand. */
    long long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= n || !is_digit(s[i]))
            return OSB_E_INVAL;
        while (i < n && is_digit(s[i])) {
            if (exp < 1000000)
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (eneg)
            exp = -exp;
    }
    if (i != n)
        return OSB_E_INVAL;

    long long scale = (long long)frac - exp;
    size_t lead = 0;
    while (lead < nd && digits[lead] == '0')
        lead++;
    if (lead == nd) { /* zero: keep the written scale where it fits */
        mpz_set_ui(d->v, 0);
        d->scale = scale < 0 ? 0 : scale > DEC_MAX_SCALE ? DEC_MAX_SCALE : (int)scale;
        return 0;
    }
    char *sig = digits + lead;
    size_t ns = nd - lead;
    while (scale > DEC_MAX_SCALE && ns > 1 && sig[ns - 1] == '0') {
        ns--;
        scale--;
    }
    if (scale > DEC_MAX_SCALE)
        return OSB_E_TOOBIG;
    if ((long long)ns - scale > DEC_MAX_INT_DIGITS)
        return OSB_E_TOOBIG;
    sig[ns] = '\0';

    mpz_t t;
    mpz_init_set_str(t, sig, 10); /* cannot fail: sig holds only digits */
    if (scale < 0) {
        mpz_t p;
        mpz_init(p);
        mpz_ui_pow_ui(p, 10, (unsigned long)-scale);
        mpz_mul(t, t, p);
        mpz_clear(p);
        scale = 0;
    }
    if (neg)
        mpz_neg(t, t);
    mpz_swap(d->v, t);
    d->scale = (int)scale;
    mpz_clear(t);
    return 0;
}

int dec_from_json(dec *d, const json_t *j)
{
    if (json_is_string(j))
        return dec_parse(d, json_string_value(j), json_string_length(j));
    if (json_is_integer(j)) {
        dec_set_int(d, json_integer_value(j));
        return 0;
    }
    return OSB_E_INVAL;
}

/* ---------------------------------------------------------------- formatting */

/* Text of v / 10^scale with all `scale` fractional digits; "-" only when v < 0. */
static char *format_scaled(const mpz_t v, int scale)
{
    bool neg = mpz_sgn(v) < 0;
    mpz_t a;
    mpz_init(a);
    mpz_abs(a, v);
    size_t room = mpz_sizeinbase(a, 10) + 2;
    char *digits = malloc(room);
    if (!digits) {
        mpz_clear(a);
        return NULL;
    }
    mpz_get_str(digits, 10, a);
    mpz_clear(a);
    size_t nd = strlen(digits);
    size_t sc = (size_t)scale;
    /* Leading zeros so that there is at least one integer digit. */
    size_t pad = nd <= sc ? sc + 1 - nd : 0;
    size_t total = (neg ? 1 : 0) + pad + nd + (sc ? 1 : 0) + 1;
    char *out = malloc(total);
    if (!out) {
        free(digits);
        return NULL;
    }
    char *p = out;
    if (neg)
        *p++ = '-';
    size_t len = pad + nd; /* at least sc + 1: one integer digit, then sc fractional ones */
    for (size_t i = 0; i < len; i++) {
        if (sc && i == len - sc)
            *p++ = '.';
        *p++ = i < pad ? '0' : digits[i - pad];
    }
    *p = '\0';
    free(digits);
    return out;
}

char *dec_to_string(const dec *d)
{
    int f = dec_frac_digits(d);
    mpz_t t;
    mpz_init(t);
    /* Dropping the trailing zeros is exact: divide by 10^(scale - f). */
    if (f < d->scale) {
        mpz_ui_pow_ui(t, 10, (unsigned long)(d->scale - f));
        mpz_divexact(t, d->v, t);
    } else {
        mpz_set(t, d->v);
    }
    char *s = format_scaled(t, f);
    mpz_clear(t);
    return s;
}

char *dec_to_fixed(const dec *d, int places)
{
    if (places < 0 || places > DEC_MAX_SCALE)
        return NULL;
    dec r;
    dec_init(&r);
    dec_round(&r, d, places);
    char *s = format_scaled(r.v, places);
    dec_clear(&r);
    return s;
}

/* ---------------------------------------------------------------- comparison */

int dec_cmp(const dec *a, const dec *b)
{
    if (a->scale == b->scale) {
        int c = mpz_cmp(a->v, b->v);
        return (c > 0) - (c < 0);
    }
    int s = a->scale > b->scale ? a->scale : b->scale;
    mpz_t x, y;
    mpz_init(x);
    mpz_init(y);
    aligned(x, a, s);
    aligned(y, b, s);
    int c = mpz_cmp(x, y);
    mpz_clear(x);
    mpz_clear(y);
    return (c > 0) - (c < 0);
}

int dec_sign(const dec *d)
{
    return mpz_sgn(d->v);
}

int dec_frac_digits(const dec *d)
{
    if (mpz_sgn(d->v) == 0 || d->scale == 0)
        return 0;
    int f = d->scale;
    mpz_t t;
    mpz_init_set(t, d->v);
    while (f > 0 && mpz_divisible_ui_p(t, 10)) {
        mpz_divexact_ui(t, t, 10);
        f--;
    }
    mpz_clear(t);
    return f;
}

bool dec_abs_below_pow10(const dec *d, int exp)
{
    /* |v| / 10^scale < 10^exp  <=>  |v| < 10^(exp + scale), with |v| an integer. */
    long long e = (long long)exp + d->scale;
    if (e < 0)
        return mpz_sgn(d->v) == 0;
    mpz_t p;
    mpz_init(p);
    mpz_ui_pow_ui(p, 10, (unsigned long)e);
    bool below = mpz_cmpabs(d->v, p) < 0;
    mpz_clear(p);
    return below;
}

/* ---------------------------------------------------------------- arithmetic */

static void add_sub(dec *r, const dec *a, const dec *b, bool sub)
{
    int s = a->scale > b->scale ? a->scale : b->scale;
    mpz_t x, y;
    mpz_init(x);
    mpz_init(y);
    aligned(x, a, s);
    aligned(y, b, s);
    if (sub)
        mpz_sub(x, x, y);
    else
        mpz_add(x, x, y);
    mpz_swap(r->v, x);
    r->scale = s;
    mpz_clear(x);
    mpz_clear(y);
}

void dec_add(dec *r, const dec *a, const dec *b)
{
    add_sub(r, a, b, false);
}

void dec_sub(dec *r, const dec *a, const dec *b)
{
    add_sub(r, a, b, true);
}

int dec_mul(dec *r, const dec *a, const dec *b)
{
    int s = a->scale + b->scale;
    if (s > DEC_MAX_SCALE)
        return OSB_E_TOOBIG;
    mpz_mul(r->v, a->v, b->v); /* GMP allows the output to alias the inputs */
    r->scale = s;
    return 0;
}

/* q = num / den rounded half-up away from zero; den != 0. q may not alias num or den. */
static void div_half_up(mpz_t q, const mpz_t num, const mpz_t den)
{
    mpz_t rem;
    mpz_init(rem);
    mpz_tdiv_qr(q, rem, num, den); /* truncates: rem has num's sign */
    mpz_abs(rem, rem);
    mpz_mul_2exp(rem, rem, 1);
    if (mpz_cmpabs(rem, den) >= 0) {
        if ((mpz_sgn(num) < 0) != (mpz_sgn(den) < 0))
            mpz_sub_ui(q, q, 1);
        else
            mpz_add_ui(q, q, 1);
    }
    mpz_clear(rem);
}

void dec_round(dec *r, const dec *a, int places)
{
    assert(places >= 0 && places <= DEC_MAX_SCALE);
    if (places < 0)
        places = 0;
    if (places > DEC_MAX_SCALE)
        places = DEC_MAX_SCALE;
    if (places >= a->scale) {
        mpz_t x;
        mpz_init(x);
        aligned(x, a, places);
        mpz_swap(r->v, x);
        mpz_clear(x);
    } else {
        mpz_t p, q;
        mpz_init(p);
        mpz_init(q);
        mpz_ui_pow_ui(p, 10, (unsigned long)(a->scale - places));
        div_half_up(q, a->v, p);
        mpz_swap(r->v, q);
        mpz_clear(p);
        mpz_clear(q);
    }
    r->scale = places;
}

int dec_div_round(dec *r, const dec *a, const dec *b, int places)
{
    if (mpz_sgn(b->v) == 0 || places < 0 || places > DEC_MAX_SCALE)
        return OSB_E_INVAL;
    /* a / b = (va / 10^sa) / (vb / 10^sb); in units of 10^-places that is
     * va * 10^(sb + places) / (vb * 10^sa). */
    mpz_t num, den, p, q;
    mpz_init(num);
    mpz_init(den);
    mpz_init(p);
    mpz_init(q);
    mpz_ui_pow_ui(p, 10, (unsigned long)(b->scale + places));
    mpz_mul(num, a->v, p);
    mpz_ui_pow_ui(p, 10, (unsigned long)a->scale);
    mpz_mul(den, b->v, p);
    div_half_up(q, num, den);
    mpz_swap(r->v, q);
    r->scale = places;
    mpz_clear(num);
    mpz_clear(den);
    mpz_clear(p);
    mpz_clear(q);
    return 0;
}

/* ---------------------------------------------------------------- currencies */

/* Active ISO 4217 codes and their minor units (the standard's list, not local practice:
 * HUF and IDR have 2 there, ISK and UGX 0). */
static const struct {
    char code[4];
    signed char units;
} currencies[] = {
    {"AED", 2}, {"ARS", 2}, {"AUD", 2}, {"BDT", 2}, {"BGN", 2}, {"BHD", 3}, {"BIF", 0}, {"BRL", 2},
    {"CAD", 2}, {"CHF", 2}, {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"CZK", 2}, {"DJF", 0}, {"DKK", 2},
    {"EGP", 2}, {"EUR", 2}, {"GBP", 2}, {"GHS", 2}, {"GNF", 0}, {"HKD", 2}, {"HUF", 2}, {"IDR", 2},
    {"ILS", 2}, {"INR", 2}, {"IQD", 3}, {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KES", 2}, {"KMF", 0},
    {"KRW", 0}, {"KWD", 3}, {"KZT", 2}, {"LKR", 2}, {"LYD", 3}, {"MAD", 2}, {"MXN", 2}, {"MYR", 2},
    {"NGN", 2}, {"NOK", 2}, {"NZD", 2}, {"OMR", 3}, {"PEN", 2}, {"PHP", 2}, {"PKR", 2}, {"PLN", 2},
    {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2}, {"RWF", 0}, {"SAR", 2}, {"SEK", 2},
    {"SGD", 2}, {"THB", 2}, {"TND", 3}, {"TRY", 2}, {"TWD", 2}, {"UAH", 2}, {"UGX", 0}, {"USD", 2},
    {"VND", 0}, {"VUV", 0}, {"XAF", 0}, {"XOF", 0}, {"XPF", 0}, {"ZAR", 2},
};

int currency_minor_units(const char *code)
{
    if (!code)
        return -1;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z')
            return -1;
    if (code[3] != '\0')
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(currencies); i++)
        if (memcmp(currencies[i].code, code, 4) == 0)
            return currencies[i].units;
    return -1;
}
