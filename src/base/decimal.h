/* decimal: exact decimal numbers for quantities and money (spec "Exact arithmetic"), on GMP.
 * A value is an integer over a power of ten; sums and products are exact, and rounding
 * (half-up, away from zero) happens only where a caller asks for it. No binary floating point.
 * GMP aborts the process when it cannot allocate; these functions do not report that. */
#ifndef OSBILL_DECIMAL_H
#define OSBILL_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>

#include <gmp.h>
#include <jansson.h>

#include "base/base.h"

#define DEC_MAX_SCALE      64  /* fractional digits a value may carry */
#define DEC_MAX_INT_DIGITS 40  /* integer digits dec_parse accepts (any value < 10^40) */
#define DEC_MAX_TEXT       128 /* longest text dec_parse accepts */

/* value = v / 10^scale, 0 <= scale <= DEC_MAX_SCALE. The scale is kept as written or as an
 * operation leaves it ("0.10" has scale 2); nothing normalises it unless documented. */
typedef struct {
    mpz_t v;
    int scale;
} dec;

/* dec_init sets 0 (scale 0); every dec must be initialised before use and cleared after. */
void dec_init(dec *d);
void dec_clear(dec *d);
void dec_copy(dec *dst, const dec *src);
void dec_set_int(dec *d, long long v);

/* Parses the n bytes at s (need not be NUL-terminated) as a JSON number:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? — no '+' sign, spaces, hex, inf or nan.
 * The scale is the number of fractional digits written minus the exponent, at least 0
 * ("-12.340" has scale 3, "1e3" is 1000 with scale 0); where it would pass DEC_MAX_SCALE,
 * trailing zeros are dropped to fit. Returns 0; OSB_E_INVAL for bad syntax, an empty text or
 * one longer than DEC_MAX_TEXT; OSB_E_TOOBIG when the value needs more than DEC_MAX_SCALE
 * fractional or DEC_MAX_INT_DIGITS integer digits. On error *d is unchanged. */
int dec_parse(dec *d, const char *s, size_t n) WARN_UNUSED;

/* From JSON: a string holding decimal text (dec_parse), or a JSON integer. A JSON real is
 * refused (OSB_E_INVAL) because its text is gone; so is anything else. On error *d is
 * unchanged. */
int dec_from_json(dec *d, const json_t *j) WARN_UNUSED;

/* Canonical text: no exponent, no trailing fractional zeros, "0" for zero (never "-0").
 * The caller frees it; NULL when out of memory. */
char *dec_to_string(const dec *d);

/* Text with exactly `places` fractional digits and no '.' when places is 0 ("945.00",
 * JPY "625"); a value with more fractional digits is rounded half-up away from zero first.
 * Zero is never signed. The caller frees it; NULL when out of memory or places is outside
 * [0, DEC_MAX_SCALE]. */
char *dec_to_fixed(const dec *d, int places);

/* -1, 0 or 1 as a <, =, > b; scales do not matter (0.10 == 0.1). */
int dec_cmp(const dec *a, const dec *b);
int dec_sign(const dec *d); /* -1, 0 or 1 */

/* Exact; the result's scale is the larger of the two. r may alias a or b. */
void dec_add(dec *r, const dec *a, const dec *b);
void dec_sub(dec *r, const dec *a, const dec *b);
/* Exact; the result's scale is the sum of the two (12 + 9 = 21 for quantity x price).
 * OSB_E_TOOBIG, and *r unchanged, when that sum passes DEC_MAX_SCALE. r may alias a or b. */
int dec_mul(dec *r, const dec *a, const dec *b) WARN_UNUSED;

/* r = a rounded half-up, away from zero (2.5 -> 3, -2.5 -> -3), to `places` fractional
 * digits; r's scale is exactly `places` (0 <= places <= DEC_MAX_SCALE, asserted; out-of-range
 * values are clamped). r may alias a. */
void dec_round(dec *r, const dec *a, int places);

/* r = a / b rounded half-up away from zero to `places` fractional digits (scale `places`,
 * in [0, DEC_MAX_SCALE]). OSB_E_INVAL, and *r unchanged, when b is zero or places is out of
 * range. r may alias a or b. */
int dec_div_round(dec *r, const dec *a, const dec *b, int places) WARN_UNUSED;

/* Fractional digits once trailing zeros are dropped: 0 for integers and for 1.000. */
int dec_frac_digits(const dec *d);

/* true when |d| < 10^exp (the spec's limits: a record quantity < 10^15, ...). */
bool dec_abs_below_pow10(const dec *d, int exp);

/* ISO 4217 minor units of a currency code: 2 for most (USD, EUR, ...), 0 for JPY, KRW and
 * the other 0-digit ones, 3 for KWD, BHD, OMR, JOD, TND, IQD, LYD; -1 for anything that is not
 * a known active code of three uppercase letters (NULL included). */
int currency_minor_units(const char *code);

#endif
