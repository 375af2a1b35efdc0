/* jdoc: a JSON text parsed into an arena, every number kept as the digits written. For bodies
 * whose numbers are exact decimals (usage quantities), where a binary double would lose them,
 * and for hot paths where a tree of separately allocated nodes costs more than the work.
 *
 * The parse is strict RFC 8259: UTF-8 only, no duplicate keys in an object, no NUL in a
 * string (escaped or not), nesting bounded by the caller, nothing after the value. */
#ifndef OSBILL_JDOC_H
#define OSBILL_JDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef enum { JD_NULL, JD_FALSE, JD_TRUE, JD_NUMBER, JD_STRING, JD_ARRAY, JD_OBJECT } jd_type;

typedef struct jd_value jd_value;
struct jd_value {
    jd_type type;
    size_t len;            /* bytes of a string or number; members of an array or object */
    const char *text;      /* a string, decoded, or a number as written; NUL-terminated */
    const jd_value *items; /* the members of an array or object, in order */
    const char *key;       /* the member's key when it is in an object, else NULL */
};

/* Parses the n bytes at s into a (which owns everything the result points to). Returns the
 * root, or NULL with a message in why (the byte offset of the fault in it) when the text is
 * not JSON, nests deeper than max_depth, or a (is capped and) runs out. */
const jd_value *jdoc_parse(arena *a, const char *s, size_t n, int max_depth, char *why,
                           size_t whylen);

/* An object's member, NULL when absent or when obj is not an object. */
const jd_value *jd_get(const jd_value *obj, const char *key);
/* A string's text; NULL when v is absent or not a string. */
const char *jd_str(const jd_value *v);
/* A number's text as written; NULL when v is absent or not a number. */
const char *jd_num(const jd_value *v);
/* A JSON integer (no fraction, no exponent) that fits int64_t. */
bool jd_int(const jd_value *v, int64_t *out);

/* Appends s as a JSON string, quotes included; s must be UTF-8 (control characters, '"' and
 * '\\' are escaped, the rest is copied). */
int buf_json_str(buf *b, const char *s) WARN_UNUSED;

#endif
