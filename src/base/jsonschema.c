/* JSON Schema draft-04 on top of jansson. Compiling turns the schema document into a graph
 * of nodes (regexes compiled, $refs resolved to nodes, recursive schemas become cycles), so
 * validation is a read-only walk that takes no locks and allocates almost nothing. */
#include "base/jsonschema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FMT_ATTR(f, a) __attribute__((format(printf, f, a)))

/* Comparisons and hashes of instance values recurse on their own, outside the
 * JSCHEMA_MAX_DEPTH accounting; this is jansson's own parser depth limit. */
#define EQ_MAX_DEPTH 2048
/* Upper bound on backtracking work per regex match, so an adversarial instance cannot pin
 * a CPU against a catastrophic pattern; hitting it is reported as an internal error. */
#define REGEX_MATCH_LIMIT 1000000
#define META_DOC "http://json-schema.org/draft-04/schema"

/* The draft-04 meta-schema as published at json-schema.org; embedded so that
 * {"$ref": "http://json-schema.org/draft-04/schema#"} works without network access. */
static const char meta_schema_text[] =
    "{\"id\":\"http://json-schema.org/draft-04/schema#\","
    "\"$schema\":\"http://json-schema.org/draft-04/schema#\","
    "\"description\":\"Core schema meta-schema\","
    "\"definitions\":{"
    "\"schemaArray\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"$ref\":\"#\"}},"
    "\"positiveInteger\":{\"type\":\"integer\",\"minimum\":0},"
    "\"positiveIntegerDefault0\":{\"allOf\":[{\"$ref\":\"#/definitions/positiveInteger\"},"
    "{\"default\":0}]},"
    "\"simpleTypes\":{\"enum\":[\"array\",\"boolean\",\"integer\",\"null\",\"number\","
    "\"object\",\"string\"]},"
    "\"stringArray\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,"
    "\"uniqueItems\":true}},"
    "\"type\":\"object\","
    "\"properties\":{"
    "\"id\":{\"type\":\"string\"},"
    "\"$schema\":{\"type\":\"string\"},"
    "\"title\":{\"type\":\"string\"},"
    "\"description\":{\"type\":\"string\"},"
    "\"default\":{},"
    "\"multipleOf\":{\"type\":\"number\",\"minimum\":0,\"exclusiveMinimum\":true},"
    "\"maximum\":{\"type\":\"number\"},"
    "\"exclusiveMaximum\":{\"type\":\"boolean\",\"default\":false},"
    "\"minimum\":{\"type\":\"number\"},"
    "\"exclusiveMinimum\":{\"type\":\"boolean\",\"default\":false},"
    "\"maxLength\":{\"$ref\":\"#/definitions/positiveInteger\"},"
    "\"minLength\":{\"$ref\":\"#/definitions/positiveIntegerDefault0\"},"
    "\"pattern\":{\"type\":\"string\",\"format\":\"regex\"},"
    "\"additionalItems\":{\"anyOf\":[{\"type\":\"boolean\"},{\"$ref\":\"#\"}],\"default\":{}},"
    "\"items\":{\"anyOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#/definitions/schemaArray\"}],"
    "\"default\":{}},"
    "\"maxItems\":{\"$ref\":\"#/definitions/positiveInteger\"},"
    "\"minItems\":{\"$ref\":\"#/definitions/positiveIntegerDefault0\"},"
    "\"uniqueItems\":{\"type\":\"boolean\",\"default\":false},"
    "\"maxProperties\":{\"$ref\":\"#/definitions/positiveInteger\"},"
    "\"minProperties\":{\"$ref\":\"#/definitions/positiveIntegerDefault0\"},"
    "\"required\":{\"$ref\":\"#/definitions/stringArray\"},"
    "\"additionalProperties\":{\"anyOf\":[{\"type\":\"boolean\"},{\"$ref\":\"#\"}],"
    "\"default\":{}},"
    "\"definitions\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#\"},"
    "\"default\":{}},"
    "\"properties\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#\"},"
    "\"default\":{}},"
    "\"patternProperties\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#\"},"
    "\"default\":{}},"
    "\"dependencies\":{\"type\":\"object\",\"additionalProperties\":{\"anyOf\":["
    "{\"$ref\":\"#\"},{\"$ref\":\"#/definitions/stringArray\"}]}},"
    "\"enum\":{\"type\":\"array\",\"minItems\":1,\"uniqueItems\":true},"
    "\"type\":{\"anyOf\":[{\"$ref\":\"#/definitions/simpleTypes\"},{\"type\":\"array\","
    "\"items\":{\"$ref\":\"#/definitions/simpleTypes\"},\"minItems\":1,\"uniqueItems\":true}]},"
    "\"format\":{\"type\":\"string\"},"
    "\"allOf\":{\"$ref\":\"#/definitions/schemaArray\"},"
    "\"anyOf\":{\"$ref\":\"#/definitions/schemaArray\"},"
    "\"oneOf\":{\"$ref\":\"#/definitions/schemaArray\"},"
    "\"not\":{\"$ref\":\"#\"}},"
    "\"dependencies\":{\"exclusiveMaximum\":[\"maximum\"],\"exclusiveMinimum\":[\"minimum\"]},"
    "\"default\":{}}";

/* ------------------------------------------------------------------------------------ */
/* compiled form                                                                        */

enum {
    T_NULL = 1u << 0,
    T_BOOLEAN = 1u << 1,
    T_INTEGER = 1u << 2,
    T_NUMBER = 1u << 3,
    T_STRING = 1u << 4,
    T_ARRAY = 1u << 5,
    T_OBJECT = 1u << 6,
};

/* Alphabetical, which is also the order used when an error lists several types. */
static const struct {
    const char *name;
    unsigned bit;
} type_names[] = {
    {"array", T_ARRAY},   {"boolean", T_BOOLEAN}, {"integer", T_INTEGER}, {"null", T_NULL},
    {"number", T_NUMBER}, {"object", T_OBJECT},   {"string", T_STRING},
};

enum { FMT_NONE, FMT_DATE_TIME, FMT_EMAIL, FMT_HOSTNAME, FMT_IPV4, FMT_IPV6, FMT_URI, FMT_REGEX };

static const struct {
    const char *name;
    int fmt;
} format_names[] = {
    {"date-time", FMT_DATE_TIME}, {"email", FMT_EMAIL}, {"hostname", FMT_HOSTNAME},
    {"ipv4", FMT_IPV4},           {"ipv6", FMT_IPV6},   {"uri", FMT_URI},
    {"regex", FMT_REGEX},
};

typedef struct jnode jnode;

typedef struct {
    const char *key; /* points into the schema copy */
    size_t len;
    jnode *schema;
} prop_ent;

typedef struct {
    pcre2_code *re;
    jnode *schema;
} pat_ent;

typedef struct {
    const char *key;
    size_t len;
    jnode *schema;       /* schema dependency, or NULL */
    const json_t *names; /* property dependency (array of strings), or NULL */
} dep_ent;

typedef struct {
    jnode **v;
    size_t n;
} node_list;

struct jnode {
    jnode *ref; /* draft-04: a $ref replaces every sibling keyword */
    unsigned types; /* 0 = any */
    const json_t *enum_vals;
    const json_t *multiple_of, *maximum, *minimum;
    bool excl_max, excl_min;
    long long max_len, min_len, max_items, min_items, max_props, min_props; /* -1 = absent */
    pcre2_code *pattern;
    const char *pattern_src;
    int format;
    jnode *items;        /* "items" as one schema for every element */
    node_list items_arr; /* "items" as a tuple */
    bool items_is_arr;
    bool addl_items_false;
    jnode *addl_items;
    bool unique;
    const json_t *required;
    prop_ent *props; /* sorted by key for bsearch */
    size_t nprops;
    pat_ent *pprops;
    size_t npprops;
    bool addl_props_false;
    jnode *addl_props;
    dep_ent *deps;
    size_t ndeps;
    node_list all_of, any_of, one_of;
    jnode *not_schema;
    int mark; /* compile-time only: DFS colour for the cycle check */
};

struct jschema {
    json_t *doc;  /* private deep copy: nodes point into it */
    json_t *meta; /* the embedded meta-schema, parsed only when referenced */
    jnode *root;
    jnode **nodes; /* every node, for freeing */
    size_t nnodes, capnodes;
    pcre2_match_context *mctx; /* read-only after compile, shared by all validations */
};

/* ------------------------------------------------------------------------------------ */
/* small helpers                                                                        */

static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static bool is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int hex_val(int c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }
static double dabs(double d) { return d < 0 ? -d : d; }

/* Grows an array to hold at least `need` elements; on failure the array is untouched. */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    void *p = realloc(arr, nc * elem);
    if (p)
        *cap = nc;
    return p;
}

static int keycmp(const char *a, size_t al, const char *b, size_t bl)
{
    int r = memcmp(a, b, al < bl ? al : bl);
    if (r)
        return r;
    return al < bl ? -1 : al > bl;
}

/* A bounded writer into the caller's error buffer; output is silently truncated. */
typedef struct {
    char *p;
    size_t cap, len;
} outbuf;

static void ob_init(outbuf *o, char *p, size_t cap)
{
    o->p = p;
    o->cap = p ? cap : 0;
    o->len = 0;
    if (o->cap)
        p[0] = '\0';
}

static void ob_write(outbuf *o, const char *s, size_t n)
{
    if (o->cap == 0)
        return;
    size_t room = o->cap - 1 - o->len;
    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void ob_puts(outbuf *o, const char *s) { ob_write(o, s, strlen(s)); }

static void ob_vprintf(outbuf *o, const char *fmt, va_list ap) FMT_ATTR(2, 0);
static void ob_vprintf(outbuf *o, const char *fmt, va_list ap)
{
    if (o->cap == 0)
        return;
    int k = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    if (k < 0)
        return;
    o->len += (size_t)k;
    if (o->len >= o->cap)
        o->len = o->cap - 1;
}

static void ob_printf(outbuf *o, const char *fmt, ...) FMT_ATTR(2, 3);
static void ob_printf(outbuf *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ob_vprintf(o, fmt, ap);
    va_end(ap);
}

/* Printable form of arbitrary bytes: control characters would garble logs and NULs would
 * cut the message short. */
static void ob_text(outbuf *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (unsigned char)s[i] < 0x20 ? '?' : s[i];
        ob_write(o, &c, 1);
    }
}

/* A location (in the instance or in the schema) as a linked list living on the C stack:
 * building it costs nothing, and it is only turned into text when an error is reported. */
typedef struct pathseg {
    const struct pathseg *up;
    const char *key; /* member name; NULL for an array index */
    size_t len;
    size_t index;
    bool raw; /* printed verbatim: the URI a schema location was reached by */
} pathseg;

static pathseg seg_key(const pathseg *up, const char *key, size_t len)
{
    return (pathseg){.up = up, .key = key, .len = len};
}

static pathseg seg_kw(const pathseg *up, const char *kw) { return seg_key(up, kw, strlen(kw)); }

static pathseg seg_idx(const pathseg *up, size_t i) { return (pathseg){.up = up, .index = i}; }

static void ob_seg(outbuf *o, const pathseg *p)
{
    if (p->raw) {
        ob_text(o, p->key, p->len);
        return;
    }
    ob_write(o, "/", 1);
    if (!p->key) {
        ob_printf(o, "%zu", p->index);
        return;
    }
    for (size_t i = 0; i < p->len; i++) {
        if (p->key[i] == '~')
            ob_write(o, "~0", 2);
        else if (p->key[i] == '/')
            ob_write(o, "~1", 2);
        else
            ob_text(o, p->key + i, 1);
    }
}

/* Very deep locations keep their first and last levels only, so that the message after
 * the location still fits in the caller's buffer. */
#define PATH_KEEP 8

static void ob_segs_from(outbuf *o, const pathseg *p, size_t idx, size_t total)
{
    if (!p)
        return;
    if (idx > 0)
        ob_segs_from(o, p->up, idx - 1, total);
    if (total > 4 * PATH_KEEP && idx >= PATH_KEEP && idx < total - PATH_KEEP) {
        if (idx == PATH_KEEP)
            ob_printf(o, "/...(%zu levels)...", total - 2 * PATH_KEEP);
        return;
    }
    ob_seg(o, p);
}

static void ob_segs(outbuf *o, const pathseg *p)
{
    size_t total = 0;
    for (const pathseg *q = p; q; q = q->up)
        total++;
    if (total)
        ob_segs_from(o, p, total - 1, total);
}

static void ob_inst_path(outbuf *o, const pathseg *p)
{
    if (!p)
        ob_puts(o, "(root)");
    else
        ob_segs(o, p);
}

static void ob_schema_path(outbuf *o, const pathseg *p)
{
    const pathseg *top = p;
    while (top && top->up)
        top = top->up;
    if (!top || !top->raw)
        ob_write(o, "#", 1);
    ob_segs(o, p);
}

/* ------------------------------------------------------------------------------------ */
/* numbers                                                                              */

static bool real_is_integral(double d)
{
    if (!isfinite(d))
        return false;
    if (dabs(d) >= 4503599627370496.0) /* 2^52: every double this large is an integer */
        return true;
    return (double)(long long)d == d;
}

/* Sign of i - d, exactly (no rounding of i to double). */
static int cmp_int_real(json_int_t i, double d)
{
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    json_int_t t = (json_int_t)d; /* truncation is exact in this range */
    if (i != t)
        return i < t ? -1 : 1;
    double frac = d - (double)t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a))
        return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b))
        return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

/* |x| = m * 10^e with m free of trailing zeros: multipleOf works on these so that
 * 0.0075 / 0.0001 is decided on the decimals the schema author wrote, not on binary
 * approximations of them. */
typedef struct {
    uint64_t m;
    int e;
} decimal;

static void dec_normalize(decimal *d)
{
    if (d->m == 0) {
        d->e = 0;
        return;
    }
    while (d->m % 10 == 0) {
        d->m /= 10;
        d->e++;
    }
}

static void num_to_dec(const json_t *v, decimal *out)
{
    out->e = 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        out->m = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
        dec_normalize(out);
        return;
    }
    double d = dabs(json_real_value(v));
    if (d == 0) {
        out->m = 0;
        return;
    }
    /* Shortest digit string that reads back as the same double: that is what the JSON
     * text said (for up to 17 significant digits). snprintf and strtod share the locale's
     * radix character, and the parse below skips it whatever it is. */
    char buf[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    uint64_t m = 0;
    int nd = 0;
    const char *q = buf;
    for (; *q && *q != 'e'; q++) {
        if (is_digit(*q)) {
            m = m * 10 + (uint64_t)(*q - '0');
            nd++;
        }
    }
    out->m = m;
    out->e = (*q == 'e' ? atoi(q + 1) : 0) - (nd - 1);
    dec_normalize(out);
}

/* Is a an integer multiple of b (b > 0)? Exact for any pair of JSON numbers. */
static bool dec_is_multiple(decimal a, decimal b)
{
    if (a.m == 0)
        return true;
    if (b.m == 0)
        return false;
    /* With trailing zeros stripped, a.m is not divisible by 10, so a finer exponent in
     * b can never divide a. */
    if (a.e < b.e)
        return false;
    uint64_t r = a.m % b.m;
    for (int k = a.e - b.e; k > 0 && r != 0; k--)
        r = (uint64_t)(((unsigned __int128)r * 10) % b.m);
    return r == 0;
}

/* Shortest text for a JSON number, for error messages. */
static void num_text(const json_t *v, char *buf, size_t n)
{
    if (json_is_integer(v)) {
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    }
    double d = json_real_value(v);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* ------------------------------------------------------------------------------------ */
/* JSON equality (1 == 1.0) and a hash consistent with it                               */

/* Returns 1 equal, 0 different, -1 nested too deeply to compare. */
static int json_eq(const json_t *a, const json_t *b, int depth)
{
    if (depth > EQ_MAX_DEPTH)
        return -1;
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return 0;
        for (size_t i = 0; i < n; i++) {
            int r = json_eq(json_array_get(a, i), json_array_get(b, i), depth + 1);
            if (r != 1)
                return r;
        }
        return 1;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        /* jansson's iterator API is not const-qualified; iterating does not modify. */
        for (void *it = json_object_iter((json_t *)a); it; it = json_object_iter_next((json_t *)a, it)) {
            const json_t *bv =
                json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));
            if (!bv)
                return 0;
            int r = json_eq(json_object_iter_value(it), bv, depth + 1);
            if (r != 1)
                return r;
        }
        return 1;
    }
    default: /* true, false, null */
        return 1;
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

static int json_hash(const json_t *v, int depth, uint64_t *out)
{
    if (depth > EQ_MAX_DEPTH)
        return -1;
    uint64_t h;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        h = mix64((uint64_t)json_integer_value(v) ^ 0x1111);
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        /* Integral values must hash like the equal json_integer. */
        if (real_is_integral(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
            h = mix64((uint64_t)(json_int_t)d ^ 0x1111);
        } else {
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            h = mix64(bits ^ 0x2222);
        }
        break;
    }
    case JSON_STRING:
        h = hash_bytes(json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY:
        h = 0x3333;
        for (size_t i = 0; i < json_array_size(v); i++) {
            uint64_t c;
            if (json_hash(json_array_get(v, i), depth + 1, &c))
                return -1;
            h = mix64(h + c);
        }
        break;
    case JSON_OBJECT:
        h = 0x4444;
        for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
            uint64_t c;
            if (json_hash(json_object_iter_value(it), depth + 1, &c))
                return -1;
            /* A sum, so that member order does not matter. */
            h += mix64(hash_bytes(json_object_iter_key(it), json_object_iter_key_len(it)) ^ c);
        }
        h = mix64(h);
        break;
    case JSON_TRUE:
        h = 0x5555;
        break;
    case JSON_FALSE:
        h = 0x6666;
        break;
    default:
        h = 0x7777;
        break;
    }
    *out = h;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* regular expressions: ECMA-262 syntax checked first, then PCRE2 does the work          */

/* PCRE2 accepts a superset of ECMA-262 with different meanings for some of it (\Z, \A,
 * possessive quantifiers, inline options, verbs such as (*LIMIT_MATCH=...)). Schemas are
 * written for ECMA-262, so whatever PCRE2 would read differently is refused up front.
 * The pattern is copied to out (malloc'ed, NUL-terminated, length in *outlen) with one
 * rewrite: PCRE2 10.42 lets a quantified empty class ("[]?") match nothing at all, while
 * "(?:[])?" behaves as ECMA-262 says "[]?" should. */
static int ecma_translate(const char *re, size_t n, char **out, size_t *outlen, char *why,
                          size_t whylen)
{
    char *o = malloc(n * 3 + 1);
    size_t k = 0;
    bool in_class = false;
    *out = NULL;
    if (!o) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = re[i];
        char next = i + 1 < n ? re[i + 1] : '\0';
        if (ch == '\\') {
            o[k++] = ch;
            if (i + 1 >= n)
                continue; /* PCRE2 reports the trailing backslash */
            if (is_alpha(next) && !strchr("bBcdDfknpPrsStuvwWx", next)) {
                snprintf(why, whylen, "\\%c is not an ECMA-262 escape", next);
                goto bad;
            }
            o[k++] = re[++i];
            continue;
        }
        if (in_class) {
            if (ch == ']') {
                in_class = false;
            } else if (ch == '[' && next && strchr(":.=", next)) {
                snprintf(why, whylen, "POSIX bracket expressions are not ECMA-262");
                goto bad;
            }
            o[k++] = ch;
            continue;
        }
        switch (ch) {
        case '[':
            if (next == ']') {
                memcpy(o + k, "(?:[])", 6);
                k += 6;
                i++;
                continue;
            }
            in_class = true;
            break;
        case '(':
            if (next == '*') {
                snprintf(why, whylen, "(* verbs are not ECMA-262");
                goto bad;
            }
            if (next == '?') {
                char a = i + 2 < n ? re[i + 2] : '\0';
                char b = i + 3 < n ? re[i + 3] : '\0';
                if (a == ':' || a == '=' || a == '!')
                    break;
                if (a == '<' && (b == '=' || b == '!' || is_alpha(b) || b == '_' || b == '$'))
                    break;
                snprintf(why, whylen, "(?%c is not ECMA-262 group syntax", a ? a : ' ');
                goto bad;
            }
            break;
        case '*':
        case '+':
        case '?':
            if (next == '+') {
                snprintf(why, whylen, "possessive quantifiers are not ECMA-262");
                goto bad;
            }
            break;
        case '{': {
            size_t j = i + 1;
            while (j < n && is_digit(re[j]))
                j++;
            if (j == i + 1)
                break; /* a literal '{' */
            if (j < n && re[j] == ',')
                for (j++; j < n && is_digit(re[j]); j++)
                    ;
            if (j < n && re[j] == '}' && j + 1 < n && re[j + 1] == '+') {
                snprintf(why, whylen, "possessive quantifiers are not ECMA-262");
                goto bad;
            }
            break;
        }
        default:
            break;
        }
        o[k++] = ch;
    }
    o[k] = '\0';
    *out = o;
    *outlen = k;
    return 0;
bad:
    free(o);
    return -1;
}

/* ccx may be NULL (default newline convention), which is fine for syntax checks. */
static int re_compile(const char *src, size_t len, pcre2_compile_context *ccx, pcre2_code **out,
                      char *why, size_t whylen)
{
    char *pat;
    size_t plen;
    *out = NULL;
    if (ecma_translate(src, len, &pat, &plen, why, whylen))
        return -1;
    int code;
    PCRE2_SIZE off;
    /* ALT_BSUX: \uHHHH and \xHH as in ECMA-262; ALLOW_EMPTY_CLASS: [] and [^] as in
     * ECMA-262; DOLLAR_ENDONLY: $ does not match before a final newline. */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, plen,
                                   PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS |
                                       PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C,
                                   &code, &off, ccx);
    free(pat);
    if (!re) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", code);
        snprintf(why, whylen, "%s", (const char *)msg);
        return -1;
    }
    /* JIT is an optimisation only: when it is unavailable the interpreter is used.
     * JSCHEMA_NO_JIT is for memory checkers, which cannot see into JIT-generated code. */
#ifndef JSCHEMA_NO_JIT
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
#endif
    *out = re;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* formats (draft-04 section 7.3, plus "regex")                                         */

static bool is_hostname(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_alnum(s[i]) && !(s[i] == '-' && label > 0))
            return false;
        label++;
    }
    return true;
}

static bool is_ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < n && is_digit(s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        /* Leading zeros are refused: some parsers read them as octal. */
        if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
            return false;
    }
    return i == n;
}

static bool is_ipv6(const char *s, size_t n)
{
    char buf[64];
    unsigned char addr[16];
    if (n == 0 || n >= sizeof buf || memchr(s, '\0', n))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1;
}

static bool take_num(const char *s, size_t n, size_t *i, int digits, int *out)
{
    int v = 0;
    for (int k = 0; k < digits; k++, (*i)++) {
        if (*i >= n || !is_digit(s[*i]))
            return false;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return true;
}

static bool take_char(const char *s, size_t n, size_t *i, char c)
{
    if (*i >= n || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

/* RFC 3339 date-time; T and Z may be lower case (section 5.6 note). */
static bool is_date_time(const char *s, size_t n)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    size_t i = 0;
    if (!take_num(s, n, &i, 4, &y) || !take_char(s, n, &i, '-') || !take_num(s, n, &i, 2, &mo) ||
        !take_char(s, n, &i, '-') || !take_num(s, n, &i, 2, &d))
        return false;
    if (i >= n || (s[i] != 'T' && s[i] != 't'))
        return false;
    i++;
    if (!take_num(s, n, &i, 2, &h) || !take_char(s, n, &i, ':') || !take_num(s, n, &i, 2, &mi) ||
        !take_char(s, n, &i, ':') || !take_num(s, n, &i, 2, &sec))
        return false;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i >= n)
        return false;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        i++;
        if (!take_num(s, n, &i, 2, &oh) || !take_char(s, n, &i, ':') ||
            !take_num(s, n, &i, 2, &om))
            return false;
    } else {
        return false;
    }
    if (i != n)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap))
        return false;
    if (h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
        return false;
    if (sec == 60) { /* a leap second only exists at 23:59:60 UTC */
        int utc = ((h * 60 + mi - sign * (oh * 60 + om)) % 1440 + 1440) % 1440;
        if (utc != 23 * 60 + 59)
            return false;
    }
    return true;
}

static bool is_atext(int c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5322 addr-spec without comments or folding whitespace. */
static bool is_email(const char *s, size_t n)
{
    size_t at = n;
    while (at > 0 && s[at - 1] != '@')
        at--;
    if (at == 0)
        return false;
    at--; /* index of the last '@' */
    if (at == 0 || at > 64 || at + 1 >= n)
        return false;
    if (s[0] == '"') {
        if (at < 2 || s[at - 1] != '"')
            return false;
        for (size_t i = 1; i < at - 1; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c > 0x7e || c == '"')
                return false;
            if (c == '\\' && ++i >= at - 1)
                return false;
        }
    } else {
        for (size_t i = 0; i < at; i++) {
            if (s[i] == '.') {
                if (i == 0 || i + 1 == at || s[i - 1] == '.')
                    return false;
            } else if (!is_atext(s[i])) {
                return false;
            }
        }
    }
    const char *dom = s + at + 1;
    size_t dn = n - at - 1;
    if (dom[0] == '[') {
        if (dn < 3 || dom[dn - 1] != ']')
            return false;
        if (dn > 6 && memcmp(dom + 1, "IPv6:", 5) == 0)
            return is_ipv6(dom + 6, dn - 7);
        return is_ipv4(dom + 1, dn - 2);
    }
    return is_hostname(dom, dn);
}

/* Every byte is unreserved, a sub-delim, one of `extra`, or a valid %XX. */
static bool uri_chars(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return false;
            i += 2;
            continue;
        }
        if (is_alnum(c) || (c && strchr("-._~!$&'()*+,;=", c)) || (c && strchr(extra, c)))
            continue;
        return false;
    }
    return true;
}

/* RFC 3986 URI (absolute: a scheme is required; a fragment is allowed). */
static bool is_uri(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_alpha(s[0]))
        return false;
    while (i < n && (is_alnum(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i >= n || s[i] != ':')
        return false;
    i++;
    size_t hend = i;
    while (hend < n && s[hend] != '?' && s[hend] != '#')
        hend++;
    const char *path = s + i;
    size_t plen = hend - i;
    if (plen >= 2 && path[0] == '/' && path[1] == '/') {
        const char *auth = path + 2;
        size_t alen = 0;
        while (2 + alen < plen && auth[alen] != '/')
            alen++;
        path = auth + alen;
        plen -= 2 + alen;
        const char *host = auth;
        size_t hlen = alen;
        const char *atp = memchr(auth, '@', alen);
        if (atp) {
            if (!uri_chars(auth, (size_t)(atp - auth), ":"))
                return false;
            host = atp + 1;
            hlen = alen - (size_t)(host - auth);
        }
        size_t port_at = hlen;
        if (hlen > 0 && host[0] == '[') {
            const char *close = memchr(host, ']', hlen);
            if (!close)
                return false;
            size_t in = (size_t)(close - host) - 1;
            if (in > 0 && (host[1] == 'v' || host[1] == 'V')) {
                /* IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
                size_t k = 2;
                while (k <= in && is_hex(host[k]))
                    k++;
                if (k == 2 || k > in || host[k] != '.' || k + 1 > in ||
                    !uri_chars(host + k + 1, in - k, ":"))
                    return false;
            } else if (!is_ipv6(host + 1, in)) {
                return false;
            }
            port_at = (size_t)(close - host) + 1;
            if (port_at < hlen && host[port_at] != ':')
                return false;
        } else {
            const char *colon = memchr(host, ':', hlen);
            if (colon)
                port_at = (size_t)(colon - host);
            if (!uri_chars(host, port_at, ""))
                return false;
        }
        for (size_t k = port_at + 1; k < hlen; k++)
            if (!is_digit(host[k]))
                return false;
    }
    if (!uri_chars(path, plen, ":@/"))
        return false;
    i = hend;
    if (i < n && s[i] == '?') {
        size_t q = ++i;
        while (i < n && s[i] != '#')
            i++;
        if (!uri_chars(s + q, i - q, ":@/?"))
            return false;
    }
    if (i < n && s[i] == '#') {
        i++;
        if (!uri_chars(s + i, n - i, ":@/?"))
            return false;
    }
    return true;
}

static bool is_regex(const char *s, size_t n)
{
    char why[200];
    pcre2_code *re;
    if (re_compile(s, n, NULL, &re, why, sizeof why))
        return false;
    pcre2_code_free(re);
    return true;
}

static bool format_ok(int fmt, const char *s, size_t n)
{
    switch (fmt) {
    case FMT_DATE_TIME:
        return is_date_time(s, n);
    case FMT_EMAIL:
        return is_email(s, n);
    case FMT_HOSTNAME:
        return is_hostname(s, n);
    case FMT_IPV4:
        return is_ipv4(s, n);
    case FMT_IPV6:
        return is_ipv6(s, n);
    case FMT_URI:
        return is_uri(s, n);
    case FMT_REGEX:
        return is_regex(s, n);
    default:
        return true;
    }
}

/* ------------------------------------------------------------------------------------ */
/* URI references (RFC 3986 section 5) for id and $ref                                  */

enum { U_SCHEME, U_AUTH, U_PATH, U_QUERY, U_FRAG, U_PARTS };

typedef struct {
    const char *s[U_PARTS];
    size_t n[U_PARTS];
    bool has[U_PARTS];
} uri_ref;

/* The component split of RFC 3986 appendix B; it never fails. */
static void uri_split(const char *u, uri_ref *r)
{
    memset(r, 0, sizeof *r);
    const char *p = u, *c = u;
    while (*c && !strchr(":/?#", *c))
        c++;
    if (*c == ':' && c > p) {
        r->has[U_SCHEME] = true;
        r->s[U_SCHEME] = p;
        r->n[U_SCHEME] = (size_t)(c - p);
        p = c + 1;
    }
    if (p[0] == '/' && p[1] == '/') {
        p += 2;
        for (c = p; *c && !strchr("/?#", *c); c++)
            ;
        r->has[U_AUTH] = true;
        r->s[U_AUTH] = p;
        r->n[U_AUTH] = (size_t)(c - p);
        p = c;
    }
    for (c = p; *c && *c != '?' && *c != '#'; c++)
        ;
    r->has[U_PATH] = true;
    r->s[U_PATH] = p;
    r->n[U_PATH] = (size_t)(c - p);
    p = c;
    if (*p == '?') {
        for (c = ++p; *c && *c != '#'; c++)
            ;
        r->has[U_QUERY] = true;
        r->s[U_QUERY] = p;
        r->n[U_QUERY] = (size_t)(c - p);
        p = c;
    }
    if (*p == '#') {
        p++;
        r->has[U_FRAG] = true;
        r->s[U_FRAG] = p;
        r->n[U_FRAG] = strlen(p);
    }
}

/* remove_dot_segments (RFC 3986 5.2.4) from buf[0..n) into out; returns the new length.
 * buf is scratch space and gets modified. */
static size_t remove_dots(char *buf, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        char *s = buf + i;
        size_t rem = n - i;
        if (rem >= 3 && memcmp(s, "../", 3) == 0) {
            i += 3;
        } else if (rem >= 2 && memcmp(s, "./", 2) == 0) {
            i += 2;
        } else if (rem >= 3 && memcmp(s, "/./", 3) == 0) {
            i += 2;
        } else if (rem == 2 && memcmp(s, "/.", 2) == 0) {
            i += 1;
            buf[i] = '/';
        } else if ((rem >= 4 && memcmp(s, "/../", 4) == 0) ||
                   (rem == 3 && memcmp(s, "/..", 3) == 0)) {
            if (rem == 3) {
                i += 2;
                buf[i] = '/';
            } else {
                i += 3;
            }
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else if ((rem == 1 && s[0] == '.') || (rem == 2 && memcmp(s, "..", 2) == 0)) {
            i = n;
        } else {
            if (buf[i] == '/')
                out[o++] = buf[i++];
            while (i < n && buf[i] != '/')
                out[o++] = buf[i++];
        }
    }
    return o;
}

/* Resolves `ref` against `base` (RFC 3986 5.2.2). Returns a malloc'ed string or NULL. */
static char *uri_resolve(const char *base, const char *ref)
{
    uri_ref b, r;
    uri_split(base, &b);
    uri_split(ref, &r);
    const char *t[U_PARTS] = {0};
    size_t tn[U_PARTS] = {0};
    bool th[U_PARTS] = {0};
    char *path = NULL;
    size_t pathn = 0;
#define TAKE(dst, src, part) (t[part] = (src).s[part], tn[part] = (src).n[part], th[part] = (src).has[part])
    if (r.has[U_SCHEME]) {
        TAKE(t, r, U_SCHEME);
        TAKE(t, r, U_AUTH);
        TAKE(t, r, U_QUERY);
    } else {
        if (r.has[U_AUTH]) {
            TAKE(t, r, U_AUTH);
            TAKE(t, r, U_QUERY);
        } else {
            TAKE(t, b, U_AUTH);
            if (r.n[U_PATH] == 0) {
                if (r.has[U_QUERY])
                    TAKE(t, r, U_QUERY);
                else
                    TAKE(t, b, U_QUERY);
            } else {
                TAKE(t, r, U_QUERY);
            }
        }
        TAKE(t, b, U_SCHEME);
    }
    TAKE(t, r, U_FRAG);
#undef TAKE
    /* The raw path before dot removal: the reference's own, the base's, or a merge. */
    size_t cap = b.n[U_PATH] + r.n[U_PATH] + 2;
    path = malloc(cap);
    char *scratch = malloc(cap);
    if (!path || !scratch) {
        free(path);
        free(scratch);
        return NULL;
    }
    if (r.has[U_SCHEME] || r.has[U_AUTH] || (r.n[U_PATH] > 0 && r.s[U_PATH][0] == '/')) {
        memcpy(scratch, r.s[U_PATH], r.n[U_PATH]);
        pathn = r.n[U_PATH];
    } else if (r.n[U_PATH] == 0) {
        memcpy(scratch, b.s[U_PATH], b.n[U_PATH]);
        pathn = b.n[U_PATH];
    } else if (b.has[U_AUTH] && b.n[U_PATH] == 0) {
        scratch[0] = '/';
        memcpy(scratch + 1, r.s[U_PATH], r.n[U_PATH]);
        pathn = r.n[U_PATH] + 1;
    } else {
        size_t keep = b.n[U_PATH];
        while (keep > 0 && b.s[U_PATH][keep - 1] != '/')
            keep--;
        memcpy(scratch, b.s[U_PATH], keep);
        memcpy(scratch + keep, r.s[U_PATH], r.n[U_PATH]);
        pathn = keep + r.n[U_PATH];
    }
    pathn = remove_dots(scratch, pathn, path);
    free(scratch);

    size_t total = tn[U_SCHEME] + tn[U_AUTH] + pathn + tn[U_QUERY] + tn[U_FRAG] + 8;
    char *out = malloc(total);
    if (!out) {
        free(path);
        return NULL;
    }
    size_t o = 0;
    if (th[U_SCHEME]) {
        memcpy(out + o, t[U_SCHEME], tn[U_SCHEME]);
        o += tn[U_SCHEME];
        out[o++] = ':';
    }
    if (th[U_AUTH]) {
        out[o++] = '/';
        out[o++] = '/';
        memcpy(out + o, t[U_AUTH], tn[U_AUTH]);
        o += tn[U_AUTH];
    }
    memcpy(out + o, path, pathn);
    o += pathn;
    if (th[U_QUERY]) {
        out[o++] = '?';
        memcpy(out + o, t[U_QUERY], tn[U_QUERY]);
        o += tn[U_QUERY];
    }
    if (th[U_FRAG]) {
        out[o++] = '#';
        memcpy(out + o, t[U_FRAG], tn[U_FRAG]);
        o += tn[U_FRAG];
    }
    out[o] = '\0';
    free(path);
    return out;
}

/* "x#" and "x" name the same document. */
static void uri_drop_empty_fragment(char *u)
{
    char *h = strchr(u, '#');
    if (h && h[1] == '\0')
        *h = '\0';
}

/* ------------------------------------------------------------------------------------ */
/* compiler                                                                             */

typedef struct {
    char *uri;
    json_t *schema;
} id_ent;

typedef struct {
    jnode *node;
    char *uri;   /* resolved $ref */
    char *where; /* schema location of the $ref, for error messages */
} pending_ref;

typedef struct {
    const json_t *key;
    jnode *node;
} memo_ent;

typedef struct {
    jschema *s;
    id_ent *ids;
    size_t nids, capids;
    pending_ref *pend;
    size_t npend, cappend;
    memo_ent *memo; /* open addressing, keyed by schema object: one node per object */
    size_t memo_cap, memo_n;
    pcre2_compile_context *ccx;
    char *err;
    size_t errlen;
} cctx;

static int cerr(cctx *cc, const pathseg *p, const char *fmt, ...) FMT_ATTR(3, 4);
static int cerr(cctx *cc, const pathseg *p, const char *fmt, ...)
{
    outbuf o;
    ob_init(&o, cc->err, cc->errlen);
    ob_schema_path(&o, p);
    ob_puts(&o, ": ");
    va_list ap;
    va_start(ap, fmt);
    ob_vprintf(&o, fmt, ap);
    va_end(ap);
    return -1;
}

static int cnomem(cctx *cc)
{
    outbuf o;
    ob_init(&o, cc->err, cc->errlen);
    ob_puts(&o, "out of memory");
    return -1;
}

static size_t memo_slot(const void *key, size_t cap)
{
    return (size_t)(mix64((uint64_t)(uintptr_t)key) & (cap - 1));
}

static jnode *memo_get(const cctx *cc, const json_t *key)
{
    if (!cc->memo_cap)
        return NULL;
    for (size_t i = memo_slot(key, cc->memo_cap);; i = (i + 1) & (cc->memo_cap - 1)) {
        if (!cc->memo[i].key)
            return NULL;
        if (cc->memo[i].key == key)
            return cc->memo[i].node;
    }
}

static int memo_put(cctx *cc, const json_t *key, jnode *node)
{
    if ((cc->memo_n + 1) * 2 > cc->memo_cap) {
        size_t nc = cc->memo_cap ? cc->memo_cap * 2 : 64;
        memo_ent *nm = calloc(nc, sizeof *nm);
        if (!nm)
            return -1;
        for (size_t i = 0; i < cc->memo_cap; i++) {
            if (!cc->memo[i].key)
                continue;
            size_t j = memo_slot(cc->memo[i].key, nc);
            while (nm[j].key)
                j = (j + 1) & (nc - 1);
            nm[j] = cc->memo[i];
        }
        free(cc->memo);
        cc->memo = nm;
        cc->memo_cap = nc;
    }
    size_t j = memo_slot(key, cc->memo_cap);
    while (cc->memo[j].key)
        j = (j + 1) & (cc->memo_cap - 1);
    cc->memo[j].key = key;
    cc->memo[j].node = node;
    cc->memo_n++;
    return 0;
}

static int add_id(cctx *cc, const char *uri, json_t *schema)
{
    for (size_t i = 0; i < cc->nids; i++)
        if (strcmp(cc->ids[i].uri, uri) == 0)
            return 0; /* the first definition wins */
    id_ent *ids = grow(cc->ids, &cc->capids, cc->nids + 1, sizeof *ids);
    if (!ids)
        return -1;
    cc->ids = ids;
    char *u = strdup(uri);
    if (!u)
        return -1;
    cc->ids[cc->nids].uri = u;
    cc->ids[cc->nids].schema = schema;
    cc->nids++;
    return 0;
}

static const id_ent *find_id(const cctx *cc, const char *uri)
{
    for (size_t i = 0; i < cc->nids; i++)
        if (strcmp(cc->ids[i].uri, uri) == 0)
            return &cc->ids[i];
    return NULL;
}

static bool has_nul(const json_t *str)
{
    return strlen(json_string_value(str)) != json_string_length(str);
}

static int index_ids(cctx *cc, json_t *js, const char *base, int depth, bool is_root);

static int index_children(cctx *cc, json_t *v, const char *base, int depth, int shape)
{
    /* shape: 0 a schema, 1 an array of schemas, 2 an object whose values are schemas */
    if (shape == 0)
        return index_ids(cc, v, base, depth, false);
    if (shape == 1 && json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (index_ids(cc, json_array_get(v, i), base, depth, false))
                return -1;
    }
    if (shape == 2 && json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) {
            if (index_ids(cc, c, base, depth, false))
                return -1;
        }
    }
    return 0;
}

/* Records every "id" in schema positions, so that id-relative refs ("node",
 * "http://x/tree", "#foo") can be resolved without fetching anything. */
static int index_ids(cctx *cc, json_t *js, const char *base, int depth, bool is_root)
{
    static const struct {
        const char *kw;
        int shape;
    } kids[] = {
        {"items", 0},        {"items", 1},  {"additionalItems", 0}, {"properties", 2},
        {"patternProperties", 2}, {"additionalProperties", 0}, {"dependencies", 2},
        {"allOf", 1},        {"anyOf", 1},  {"oneOf", 1},           {"not", 0},
        {"definitions", 2},
    };
    if (!json_is_object(js) || depth > JSCHEMA_MAX_SCHEMA_DEPTH)
        return 0; /* the compiler reports these */
    int rc = -1;
    char *doc = NULL;
    json_t *id = json_object_get(js, "id");
    char *nb = json_is_string(id) ? uri_resolve(base, json_string_value(id)) : strdup(base);
    if (!nb) {
        cnomem(cc);
        goto done;
    }
    if (json_is_string(id) || is_root) {
        doc = strdup(nb);
        if (doc)
            uri_drop_empty_fragment(doc);
        if (!doc || add_id(cc, doc, js)) {
            cnomem(cc);
            goto done;
        }
        /* A document is also reachable by its URI without any fragment. */
        char *h = strchr(doc, '#');
        if (is_root && h) {
            *h = '\0';
            if (add_id(cc, doc, js)) {
                cnomem(cc);
                goto done;
            }
        }
    }
    for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++) {
        json_t *v = json_object_get(js, kids[i].kw);
        if (v && index_children(cc, v, nb, depth + 1, kids[i].shape))
            goto done;
    }
    rc = 0;
done:
    free(doc);
    free(nb);
    return rc;
}

static jnode *node_new(jschema *s)
{
    jnode **nodes = grow(s->nodes, &s->capnodes, s->nnodes + 1, sizeof *nodes);
    if (!nodes)
        return NULL;
    s->nodes = nodes;
    jnode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->max_len = n->min_len = n->max_items = n->min_items = n->max_props = n->min_props = -1;
    s->nodes[s->nnodes++] = n;
    return n;
}

static void node_free(jnode *n)
{
    free(n->items_arr.v);
    free(n->props);
    for (size_t i = 0; i < n->npprops; i++)
        pcre2_code_free(n->pprops[i].re);
    free(n->pprops);
    free(n->deps);
    free(n->all_of.v);
    free(n->any_of.v);
    free(n->one_of.v);
    pcre2_code_free(n->pattern);
    free(n);
}

static int compile_node(cctx *cc, json_t *js, const char *base, const pathseg *p, int depth,
                        jnode **out);

static int get_count(cctx *cc, const pathseg *p, const json_t *v, long long *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    /* 2.0 is an integer to draft-04 validators; accept it here too. */
    if (json_is_real(v) && json_real_value(v) >= 0 && real_is_integral(json_real_value(v))) {
        double d = json_real_value(v);
        *out = d >= 9.2e18 ? LLONG_MAX : (long long)d;
        return 0;
    }
    return cerr(cc, p, "must be a non-negative integer");
}

static int get_bool(cctx *cc, const pathseg *p, const json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return cerr(cc, p, "must be a boolean");
    *out = json_is_true(v);
    return 0;
}

static int compile_list(cctx *cc, json_t *v, const char *base, const pathseg *kp, int depth,
                        node_list *out)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cerr(cc, kp, "must be a non-empty array of schemas");
    size_t n = json_array_size(v);
    out->v = calloc(n, sizeof *out->v);
    if (!out->v)
        return cnomem(cc);
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        pathseg ip = seg_idx(kp, i);
        if (compile_node(cc, json_array_get(v, i), base, &ip, depth, &out->v[i]))
            return -1;
    }
    return 0;
}

/* Either a boolean (only false matters) or a schema. */
static int compile_bool_or_schema(cctx *cc, json_t *v, const char *base, const pathseg *kp,
                                  int depth, bool *is_false, jnode **schema)
{
    if (json_is_boolean(v)) {
        *is_false = json_is_false(v);
        return 0;
    }
    if (!json_is_object(v))
        return cerr(cc, kp, "must be a boolean or a schema");
    return compile_node(cc, v, base, kp, depth, schema);
}

static int cmp_prop(const void *a, const void *b)
{
    const prop_ent *x = a, *y = b;
    return keycmp(x->key, x->len, y->key, y->len);
}

static int compile_props(cctx *cc, json_t *v, const char *base, const pathseg *kp, int depth,
                         jnode *n)
{
    if (!json_is_object(v))
        return cerr(cc, kp, "must be an object of schemas");
    size_t cnt = json_object_size(v);
    n->props = calloc(cnt ? cnt : 1, sizeof *n->props);
    if (!n->props)
        return cnomem(cc);
    const char *k;
    size_t klen;
    json_t *c;
    json_object_keylen_foreach(v, k, klen, c) {
        prop_ent *e = &n->props[n->nprops++];
        pathseg pp = seg_key(kp, k, klen);
        e->key = k;
        e->len = klen;
        if (compile_node(cc, c, base, &pp, depth, &e->schema))
            return -1;
    }
    qsort(n->props, n->nprops, sizeof *n->props, cmp_prop);
    return 0;
}

static int compile_pattern_props(cctx *cc, json_t *v, const char *base, const pathseg *kp,
                                 int depth, jnode *n)
{
    if (!json_is_object(v))
        return cerr(cc, kp, "must be an object of schemas");
    size_t cnt = json_object_size(v);
    n->pprops = calloc(cnt ? cnt : 1, sizeof *n->pprops);
    if (!n->pprops)
        return cnomem(cc);
    const char *k;
    size_t klen;
    json_t *c;
    json_object_keylen_foreach(v, k, klen, c) {
        pat_ent *e = &n->pprops[n->npprops++];
        pathseg pp = seg_key(kp, k, klen);
        char why[200];
        if (re_compile(k, klen, cc->ccx, &e->re, why, sizeof why))
            return cerr(cc, &pp, "invalid regex: %s", why);
        if (compile_node(cc, c, base, &pp, depth, &e->schema))
            return -1;
    }
    return 0;
}

static int compile_string_array(cctx *cc, const json_t *v, const pathseg *kp)
{
    if (!json_is_array(v))
        return cerr(cc, kp, "must be an array of strings");
    for (size_t i = 0; i < json_array_size(v); i++) {
        if (!json_is_string(json_array_get(v, i))) {
            pathseg ip = seg_idx(kp, i);
            return cerr(cc, &ip, "must be a string");
        }
    }
    return 0;
}

static int compile_deps(cctx *cc, json_t *v, const char *base, const pathseg *kp, int depth,
                        jnode *n)
{
    if (!json_is_object(v))
        return cerr(cc, kp, "must be an object");
    size_t cnt = json_object_size(v);
    n->deps = calloc(cnt ? cnt : 1, sizeof *n->deps);
    if (!n->deps)
        return cnomem(cc);
    const char *k;
    size_t klen;
    json_t *c;
    json_object_keylen_foreach(v, k, klen, c) {
        dep_ent *e = &n->deps[n->ndeps++];
        pathseg pp = seg_key(kp, k, klen);
        e->key = k;
        e->len = klen;
        if (json_is_array(c)) {
            if (compile_string_array(cc, c, &pp))
                return -1;
            e->names = c;
        } else if (json_is_object(c)) {
            if (compile_node(cc, c, base, &pp, depth, &e->schema))
                return -1;
        } else {
            return cerr(cc, &pp, "must be a schema or an array of property names");
        }
    }
    return 0;
}

static int compile_type(cctx *cc, const json_t *v, const pathseg *kp, unsigned *out)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n == 0)
        return cerr(cc, kp, "must not be an empty array");
    *out = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(t))
            return cerr(cc, kp, "must be a type name or an array of type names");
        size_t k = 0;
        while (k < sizeof type_names / sizeof type_names[0] &&
               strcmp(type_names[k].name, json_string_value(t)) != 0)
            k++;
        if (k == sizeof type_names / sizeof type_names[0] || has_nul(t))
            return cerr(cc, kp, "unknown type \"%s\"", json_string_value(t));
        *out |= type_names[k].bit;
    }
    return 0;
}

static int compile_keywords(cctx *cc, json_t *js, jnode *n, const char *base,
                            const pathseg *p, int depth)
{
    json_t *v;
    pathseg kp;

#define KW(name) (kp = seg_kw(p, name), (v = json_object_get(js, name)) != NULL)
    if (KW("type") && compile_type(cc, v, &kp, &n->types))
        return -1;
    if (KW("enum")) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return cerr(cc, &kp, "must be a non-empty array");
        n->enum_vals = v;
    }
    if (KW("multipleOf")) {
        if (!json_is_number(v) || json_number_value(v) <= 0)
            return cerr(cc, &kp, "must be a number greater than 0");
        n->multiple_of = v;
    }
    if (KW("maximum")) {
        if (!json_is_number(v))
            return cerr(cc, &kp, "must be a number");
        n->maximum = v;
    }
    if (KW("exclusiveMaximum") && get_bool(cc, &kp, v, &n->excl_max))
        return -1;
    if (KW("minimum")) {
        if (!json_is_number(v))
            return cerr(cc, &kp, "must be a number");
        n->minimum = v;
    }
    if (KW("exclusiveMinimum") && get_bool(cc, &kp, v, &n->excl_min))
        return -1;
    if (KW("maxLength") && get_count(cc, &kp, v, &n->max_len))
        return -1;
    if (KW("minLength") && get_count(cc, &kp, v, &n->min_len))
        return -1;
    if (KW("pattern")) {
        char why[200];
        if (!json_is_string(v))
            return cerr(cc, &kp, "must be a string");
        if (re_compile(json_string_value(v), json_string_length(v), cc->ccx, &n->pattern, why,
                       sizeof why))
            return cerr(cc, &kp, "invalid regex: %s", why);
        n->pattern_src = json_string_value(v);
    }
    if (KW("format")) {
        if (!json_is_string(v))
            return cerr(cc, &kp, "must be a string");
        /* Unknown formats are ignored, as draft-04 section 7.1 allows. */
        for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
            if (strcmp(format_names[i].name, json_string_value(v)) == 0 && !has_nul(v))
                n->format = format_names[i].fmt;
    }
    if (KW("items")) {
        if (json_is_array(v)) {
            n->items_is_arr = true;
            if (json_array_size(v) > 0 &&
                compile_list(cc, v, base, &kp, depth + 1, &n->items_arr))
                return -1;
        } else if (json_is_object(v)) {
            if (compile_node(cc, v, base, &kp, depth + 1, &n->items))
                return -1;
        } else {
            return cerr(cc, &kp, "must be a schema or an array of schemas");
        }
    }
    if (KW("additionalItems") &&
        compile_bool_or_schema(cc, v, base, &kp, depth + 1, &n->addl_items_false, &n->addl_items))
        return -1;
    if (KW("maxItems") && get_count(cc, &kp, v, &n->max_items))
        return -1;
    if (KW("minItems") && get_count(cc, &kp, v, &n->min_items))
        return -1;
    if (KW("uniqueItems") && get_bool(cc, &kp, v, &n->unique))
        return -1;
    if (KW("maxProperties") && get_count(cc, &kp, v, &n->max_props))
        return -1;
    if (KW("minProperties") && get_count(cc, &kp, v, &n->min_props))
        return -1;
    if (KW("required")) {
        if (compile_string_array(cc, v, &kp))
            return -1;
        n->required = v;
    }
    if (KW("properties") && compile_props(cc, v, base, &kp, depth + 1, n))
        return -1;
    if (KW("patternProperties") && compile_pattern_props(cc, v, base, &kp, depth + 1, n))
        return -1;
    if (KW("additionalProperties") &&
        compile_bool_or_schema(cc, v, base, &kp, depth + 1, &n->addl_props_false, &n->addl_props))
        return -1;
    if (KW("dependencies") && compile_deps(cc, v, base, &kp, depth + 1, n))
        return -1;
    if (KW("allOf") && compile_list(cc, v, base, &kp, depth + 1, &n->all_of))
        return -1;
    if (KW("anyOf") && compile_list(cc, v, base, &kp, depth + 1, &n->any_of))
        return -1;
    if (KW("oneOf") && compile_list(cc, v, base, &kp, depth + 1, &n->one_of))
        return -1;
    if (KW("not")) {
        if (!json_is_object(v))
            return cerr(cc, &kp, "must be a schema");
        if (compile_node(cc, v, base, &kp, depth + 1, &n->not_schema))
            return -1;
    }
    if (KW("definitions")) {
        /* Compiled even when unused, so that a broken or remote definition is reported
         * when the schema is registered rather than never. */
        if (!json_is_object(v))
            return cerr(cc, &kp, "must be an object of schemas");
        const char *k;
        size_t klen;
        json_t *c;
        json_object_keylen_foreach(v, k, klen, c) {
            pathseg dp = seg_key(&kp, k, klen);
            jnode *unused;
            if (compile_node(cc, c, base, &dp, depth + 1, &unused))
                return -1;
        }
    }
#undef KW
    return 0;
}

static int push_pending(cctx *cc, jnode *n, char *uri, const pathseg *p)
{
    char where[512];
    outbuf o;
    ob_init(&o, where, sizeof where);
    ob_schema_path(&o, p);
    pending_ref *pend = grow(cc->pend, &cc->cappend, cc->npend + 1, sizeof *pend);
    if (!pend) {
        free(uri);
        return cnomem(cc);
    }
    cc->pend = pend;
    char *w = strdup(where);
    if (!w) {
        free(uri);
        return cnomem(cc);
    }
    cc->pend[cc->npend].node = n;
    cc->pend[cc->npend].uri = uri;
    cc->pend[cc->npend].where = w;
    cc->npend++;
    return 0;
}

static int compile_node(cctx *cc, json_t *js, const char *base, const pathseg *p, int depth,
                        jnode **out)
{
    if (depth > JSCHEMA_MAX_SCHEMA_DEPTH)
        return cerr(cc, p, "schema nested more than %d levels deep", JSCHEMA_MAX_SCHEMA_DEPTH);
    if (!json_is_object(js))
        return cerr(cc, p, "a schema must be an object");
    jnode *n = memo_get(cc, js);
    if (n) {
        *out = n;
        return 0;
    }
    n = node_new(cc->s);
    if (!n || memo_put(cc, js, n))
        return cnomem(cc);
    *out = n; /* before the children: recursive schemas find it in the memo */

    json_t *ref = json_object_get(js, "$ref");
    if (ref) {
        pathseg kp = seg_kw(p, "$ref");
        if (!json_is_string(ref) || has_nul(ref))
            return cerr(cc, &kp, "must be a string");
        /* Resolved once the whole document is compiled: the target may be anywhere. A
         * sibling "id" does not change the base of a $ref (siblings are ignored). */
        char *uri = uri_resolve(base, json_string_value(ref));
        if (!uri)
            return cnomem(cc);
        return push_pending(cc, n, uri, &kp);
    }

    json_t *id = json_object_get(js, "id");
    if (id && (!json_is_string(id) || has_nul(id))) {
        pathseg kp = seg_kw(p, "id");
        return cerr(cc, &kp, "must be a string");
    }
    char *nbase = id ? uri_resolve(base, json_string_value(id)) : strdup(base);
    if (!nbase)
        return cnomem(cc);
    int rc = compile_keywords(cc, js, n, nbase, p, depth);
    free(nbase);
    return rc;
}

/* Percent-decodes a URI fragment (JSON pointers in URIs are percent-encoded). */
static char *pct_decode(const char *s, size_t *outlen)
{
    size_t n = strlen(s), o = 0;
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            d[o++] = (char)(hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]));
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    d[o] = '\0';
    *outlen = o;
    return d;
}

/* Follows a JSON pointer from `anchor`, applying every "id" met on the way to the base
 * URI, since the target's own relative refs resolve against that. */
static int pointer_walk(cctx *cc, const pathseg *where, const char *uri, json_t *anchor,
                        const char *anchor_base, const char *ptr, size_t n, json_t **target,
                        char **target_base)
{
    json_t *cur = anchor;
    char *b = strdup(anchor_base);
    char *tok = malloc(n + 1);
    int rc = -1;
    if (!b || !tok) {
        cnomem(cc);
        goto done;
    }
    size_t i = 0;
    while (i < n) {
        size_t j = ++i, tl = 0; /* skip the '/' */
        for (; j < n && ptr[j] != '/'; j++) {
            if (ptr[j] == '~') {
                if (j + 1 < n && (ptr[j + 1] == '0' || ptr[j + 1] == '1')) {
                    tok[tl++] = ptr[j + 1] == '0' ? '~' : '/';
                    j++;
                    continue;
                }
                cerr(cc, where, "$ref \"%s\": bad ~ escape in JSON pointer", uri);
                goto done;
            }
            tok[tl++] = ptr[j];
        }
        tok[tl] = '\0';
        json_t *next = NULL;
        if (json_is_object(cur)) {
            next = json_object_getn(cur, tok, tl);
        } else if (json_is_array(cur) && tl > 0 && (tl == 1 || tok[0] != '0')) {
            size_t idx = 0;
            bool ok = true;
            for (size_t k = 0; k < tl && ok; k++) {
                ok = is_digit(tok[k]) && idx < SIZE_MAX / 10;
                idx = idx * 10 + (size_t)(tok[k] - '0');
            }
            if (ok)
                next = json_array_get(cur, idx);
        }
        if (!next) {
            cerr(cc, where, "$ref \"%s\" points to nothing", uri);
            goto done;
        }
        cur = next;
        json_t *id = json_object_get(cur, "id");
        if (json_is_string(id)) {
            char *nb = uri_resolve(b, json_string_value(id));
            if (!nb) {
                cnomem(cc);
                goto done;
            }
            free(b);
            b = nb;
        }
        i = j;
    }
    *target = cur;
    *target_base = b;
    b = NULL;
    rc = 0;
done:
    free(b);
    free(tok);
    return rc;
}

static int load_meta(cctx *cc)
{
    json_error_t jerr;
    cc->s->meta = json_loads(meta_schema_text, 0, &jerr);
    if (!cc->s->meta) {
        outbuf o;
        ob_init(&o, cc->err, cc->errlen);
        ob_printf(&o, "embedded meta-schema does not parse: %s", jerr.text);
        return -1;
    }
    return index_ids(cc, cc->s->meta, "", 0, true);
}

/* Finds the schema object a resolved $ref URI names, and the base URI in effect there. */
static int resolve_ref(cctx *cc, const pathseg *where, const char *uri, json_t **target,
                       char **target_base)
{
    int rc = -1;
    char *norm = strdup(uri), *frag = NULL;
    if (!norm)
        return cnomem(cc);
    uri_drop_empty_fragment(norm);
    for (int attempt = 0; attempt < 2; attempt++) {
        const id_ent *e = find_id(cc, norm);
        if (e) { /* a document, or a plain-name fragment declared with "id" */
            *target = e->schema;
            *target_base = strdup(e->uri);
            rc = *target_base ? 0 : cnomem(cc);
            goto done;
        }
        char *hash = strchr(norm, '#');
        if (hash)
            *hash = '\0';
        e = find_id(cc, norm);
        if (hash)
            *hash = '#';
        if (e) {
            const char *f = hash ? hash + 1 : "";
            size_t flen;
            frag = pct_decode(f, &flen);
            if (!frag) {
                rc = cnomem(cc);
                goto done;
            }
            if (flen > 0 && frag[0] != '/') {
                rc = cerr(cc, where, "$ref \"%s\": no schema has id \"#%s\"", uri, f);
                goto done;
            }
            rc = pointer_walk(cc, where, uri, e->schema, e->uri, frag, flen, target, target_base);
            goto done;
        }
        bool is_meta = strncmp(norm, META_DOC, strlen(META_DOC)) == 0 &&
                       (norm[strlen(META_DOC)] == '\0' || norm[strlen(META_DOC)] == '#');
        if (!is_meta || cc->s->meta)
            break;
        if (load_meta(cc))
            goto done;
    }
    rc = cerr(cc, where,
              "remote $ref \"%s\" is not supported (only local refs and the draft-04 "
              "meta-schema)",
              uri);
done:
    free(norm);
    free(frag);
    return rc;
}

static int resolve_pending(cctx *cc, size_t i)
{
    /* Copy out: compiling the target may grow (and move) the pending array. */
    jnode *n = cc->pend[i].node;
    const char *uri = cc->pend[i].uri;
    pathseg where = {.key = cc->pend[i].where, .len = strlen(cc->pend[i].where), .raw = true};
    json_t *target = NULL;
    char *tbase = NULL;
    if (resolve_ref(cc, &where, uri, &target, &tbase))
        return -1;
    if (!json_is_object(target)) {
        free(tbase);
        return cerr(cc, &where, "$ref \"%s\" does not point to a schema", uri);
    }
    pathseg at = {.key = uri, .len = strlen(uri), .raw = true};
    jnode *t;
    int rc = compile_node(cc, target, tbase, &at, 0, &t);
    free(tbase);
    if (rc)
        return -1;
    n->ref = t;
    return 0;
}

/* A cycle of edges that stay at the same instance location ($ref, allOf, anyOf, oneOf,
 * not, schema dependencies) would recurse forever on some instance, so such schemas are
 * refused when compiled instead of failing at validation time. Returns 0, -1 when the
 * cycle was reported, -2 while the report still needs a $ref location. */
static int find_cycle(cctx *cc, jnode *n)
{
    if (n->mark == 2)
        return 0;
    if (n->mark == 1)
        return -2;
    n->mark = 1;
    int rc = 0;
    if (n->ref && (rc = find_cycle(cc, n->ref)) == -2) {
        /* Every cycle passes through a $ref (the document itself is a tree). */
        for (size_t i = 0; i < cc->npend; i++) {
            if (cc->pend[i].node == n) {
                pathseg where = {.key = cc->pend[i].where,
                                 .len = strlen(cc->pend[i].where),
                                 .raw = true};
                return cerr(cc, &where,
                            "$ref \"%s\" recurses without consuming any of the instance",
                            cc->pend[i].uri);
            }
        }
    }
    const node_list *lists[] = {&n->all_of, &n->any_of, &n->one_of};
    for (size_t l = 0; l < 3 && rc == 0; l++)
        for (size_t i = 0; i < lists[l]->n && rc == 0; i++)
            rc = find_cycle(cc, lists[l]->v[i]);
    if (rc == 0 && n->not_schema)
        rc = find_cycle(cc, n->not_schema);
    for (size_t i = 0; i < n->ndeps && rc == 0; i++)
        if (n->deps[i].schema)
            rc = find_cycle(cc, n->deps[i].schema);
    if (rc)
        return rc;
    n->mark = 2;
    return 0;
}

void jschema_free(jschema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++)
        node_free(s->nodes[i]);
    free(s->nodes);
    json_decref(s->doc);
    json_decref(s->meta);
    pcre2_match_context_free(s->mctx);
    free(s);
}

int jschema_compile(const json_t *schema, jschema **out, char *err, size_t errlen)
{
    cctx cc = {.err = err, .errlen = errlen};
    outbuf o;
    int rc = -1;
    ob_init(&o, err, errlen);
    *out = NULL;
    if (!schema)
        return cerr(&cc, NULL, "no schema");
    cc.s = calloc(1, sizeof *cc.s);
    if (!cc.s)
        return cnomem(&cc);
    cc.s->doc = json_deep_copy(schema);
    cc.ccx = pcre2_compile_context_create(NULL);
    cc.s->mctx = pcre2_match_context_create(NULL);
    if (!cc.s->doc || !cc.ccx || !cc.s->mctx) {
        cnomem(&cc);
        goto done;
    }
    /* ECMA-262 "." excludes \r as well as \n. */
    pcre2_set_newline(cc.ccx, PCRE2_NEWLINE_ANYCRLF);
    pcre2_set_match_limit(cc.s->mctx, REGEX_MATCH_LIMIT);

    if (index_ids(&cc, cc.s->doc, "", 0, true))
        goto done;
    if (compile_node(&cc, cc.s->doc, "", NULL, 0, &cc.s->root))
        goto done;
    for (size_t i = 0; i < cc.npend; i++)
        if (resolve_pending(&cc, i))
            goto done;
    for (size_t i = 0; i < cc.s->nnodes; i++)
        if (find_cycle(&cc, cc.s->nodes[i]))
            goto done;
    rc = 0;
done:
    for (size_t i = 0; i < cc.nids; i++)
        free(cc.ids[i].uri);
    free(cc.ids);
    for (size_t i = 0; i < cc.npend; i++) {
        free(cc.pend[i].uri);
        free(cc.pend[i].where);
    }
    free(cc.pend);
    free(cc.memo);
    pcre2_compile_context_free(cc.ccx);
    if (rc == 0) {
        ob_init(&o, err, errlen);
        *out = cc.s;
    } else {
        jschema_free(cc.s);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* validator                                                                            */

typedef struct {
    const jschema *s;
    char *err;
    size_t errlen;
    int quiet; /* > 0 inside anyOf/oneOf/not branches, whose failures are expected */
    int depth;
    int refs; /* $refs followed since the last step into the instance */
    pcre2_match_data *md;
} vctx;

static int vfail(vctx *c, const pathseg *p, const char *kw, const char *fmt, ...) FMT_ATTR(4, 5);
static int vfail(vctx *c, const pathseg *p, const char *kw, const char *fmt, ...)
{
    if (c->quiet)
        return 1;
    outbuf o;
    ob_init(&o, c->err, c->errlen);
    ob_inst_path(&o, p);
    ob_puts(&o, ": ");
    va_list ap;
    va_start(ap, fmt);
    ob_vprintf(&o, fmt, ap);
    va_end(ap);
    ob_printf(&o, " (%s)", kw);
    return 1;
}

/* Internal errors abort the whole validation, so they are reported even when quiet. */
static int vinternal(vctx *c, const pathseg *p, const char *fmt, ...) FMT_ATTR(3, 4);
static int vinternal(vctx *c, const pathseg *p, const char *fmt, ...)
{
    outbuf o;
    ob_init(&o, c->err, c->errlen);
    ob_inst_path(&o, p);
    ob_puts(&o, ": ");
    va_list ap;
    va_start(ap, fmt);
    ob_vprintf(&o, fmt, ap);
    va_end(ap);
    return -1;
}

static int vnode(vctx *c, const jnode *n, const json_t *v, const pathseg *p);

/* Stepping into the instance is progress, so the $ref chain count starts over. */
static int vchild(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    int saved = c->refs;
    c->refs = 0;
    int rc = vnode(c, n, v, p);
    c->refs = saved;
    return rc;
}

static unsigned inst_types(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_STRING:
        return T_STRING;
    case JSON_INTEGER:
        return T_INTEGER | T_NUMBER;
    case JSON_REAL:
        /* draft-04 integers are mathematical: 1.0 (a real to jansson) is one. */
        return real_is_integral(json_real_value(v)) ? T_INTEGER | T_NUMBER : T_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOLEAN;
    default:
        return T_NULL;
    }
}

static int fail_type(vctx *c, const jnode *n, const pathseg *p)
{
    if (c->quiet)
        return 1;
    char list[128];
    outbuf o;
    ob_init(&o, list, sizeof list);
    unsigned left = n->types;
    /* "integer" is implied by "number"; listing both would read oddly. */
    if (left & T_NUMBER)
        left &= ~(unsigned)T_INTEGER;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (!(left & type_names[i].bit))
            continue;
        left &= ~type_names[i].bit;
        ob_puts(&o, type_names[i].name);
        if (left)
            ob_puts(&o, (left & (left - 1)) ? ", " : " or ");
    }
    return vfail(c, p, "type", "must be %s", list);
}

static int fail_enum(vctx *c, const jnode *n, const pathseg *p)
{
    if (c->quiet)
        return 1;
    /* Lists the allowed values when they are all scalars and the list is short. */
    char list[200];
    outbuf o;
    ob_init(&o, list, sizeof list);
    size_t cnt = json_array_size(n->enum_vals);
    for (size_t i = 0; i < cnt && cnt <= 10; i++) {
        const json_t *e = json_array_get(n->enum_vals, i);
        char num[40];
        if (i)
            ob_puts(&o, ", ");
        if (json_is_string(e)) {
            ob_puts(&o, "\"");
            ob_text(&o, json_string_value(e), json_string_length(e));
            ob_puts(&o, "\"");
        } else if (json_is_number(e)) {
            num_text(e, num, sizeof num);
            ob_puts(&o, num);
        } else if (json_is_boolean(e) || json_is_null(e)) {
            ob_puts(&o, json_is_null(e) ? "null" : json_is_true(e) ? "true" : "false");
        } else {
            cnt = 11;
        }
    }
    if (cnt > 10 || o.len + 1 >= sizeof list)
        return vfail(c, p, "enum", "must be one of the allowed values");
    return vfail(c, p, "enum", "must be one of %s", list);
}

static int v_enum(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    for (size_t i = 0; i < json_array_size(n->enum_vals); i++) {
        int r = json_eq(v, json_array_get(n->enum_vals, i), 0);
        if (r < 0)
            return vinternal(c, p, "value nested too deeply to compare (enum)");
        if (r)
            return 0;
    }
    return fail_enum(c, n, p);
}

static int v_number(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    char num[40];
    if (n->multiple_of) {
        decimal a, b;
        num_to_dec(v, &a);
        num_to_dec(n->multiple_of, &b);
        if (!dec_is_multiple(a, b)) {
            num_text(n->multiple_of, num, sizeof num);
            return vfail(c, p, "multipleOf", "must be a multiple of %s", num);
        }
    }
    if (n->maximum) {
        int cmp = num_cmp(v, n->maximum);
        if (n->excl_max ? cmp >= 0 : cmp > 0) {
            num_text(n->maximum, num, sizeof num);
            return vfail(c, p, n->excl_max ? "exclusiveMaximum" : "maximum", "must be %s %s",
                         n->excl_max ? "<" : "<=", num);
        }
    }
    if (n->minimum) {
        int cmp = num_cmp(v, n->minimum);
        if (n->excl_min ? cmp <= 0 : cmp < 0) {
            num_text(n->minimum, num, sizeof num);
            return vfail(c, p, n->excl_min ? "exclusiveMinimum" : "minimum", "must be %s %s",
                         n->excl_min ? ">" : ">=", num);
        }
    }
    return 0;
}

/* Returns 1 on a match, 0 on none, -1 on an error (reported). */
static int re_search(vctx *c, const pcre2_code *re, const char *s, size_t len, const pathseg *p)
{
    if (!c->md) {
        /* One pair is enough: only whether it matched matters (rc 0 still means a match). */
        c->md = pcre2_match_data_create(1, NULL);
        if (!c->md)
            return vinternal(c, p, "out of memory");
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, c->md, c->s->mctx);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    PCRE2_UCHAR msg[120];
    if (pcre2_get_error_message(rc, msg, sizeof msg) < 0)
        snprintf((char *)msg, sizeof msg, "error %d", rc);
    return vinternal(c, p, "regex match failed: %s", (const char *)msg);
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static int v_string(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (n->max_len >= 0 || n->min_len >= 0) {
        long long k = (long long)utf8_chars(s, len);
        if (n->max_len >= 0 && k > n->max_len)
            return vfail(c, p, "maxLength", "must be at most %lld characters long", n->max_len);
        if (n->min_len >= 0 && k < n->min_len)
            return vfail(c, p, "minLength", "must be at least %lld characters long", n->min_len);
    }
    if (n->pattern) {
        int r = re_search(c, n->pattern, s, len, p);
        if (r < 0)
            return -1;
        if (r == 0)
            return vfail(c, p, "pattern", "must match the pattern \"%s\"", n->pattern_src);
    }
    if (n->format != FMT_NONE && !format_ok(n->format, s, len)) {
        const char *name = "";
        for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++)
            if (format_names[i].fmt == n->format)
                name = format_names[i].name;
        return vfail(c, p, "format", "must be a valid %s", name);
    }
    return 0;
}

typedef struct {
    uint64_t h;
    size_t i;
} hashed;

static int cmp_hashed(const void *a, const void *b)
{
    const hashed *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int v_unique(vctx *c, const json_t *v, const pathseg *p)
{
    size_t n = json_array_size(v);
    /* Small arrays: pairwise. Large ones: sort by a hash consistent with equality and
     * compare only within runs of equal hashes, so a long array costs n log n, not n^2. */
    if (n <= 16) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = i + 1; j < n; j++) {
                int r = json_eq(json_array_get(v, i), json_array_get(v, j), 0);
                if (r < 0)
                    return vinternal(c, p, "value nested too deeply to compare (uniqueItems)");
                if (r)
                    return vfail(c, p, "uniqueItems", "items %zu and %zu are equal", i, j);
            }
        }
        return 0;
    }
    hashed *h = malloc(n * sizeof *h);
    if (!h)
        return vinternal(c, p, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        h[i].i = i;
        if (json_hash(json_array_get(v, i), 0, &h[i].h)) {
            rc = vinternal(c, p, "value nested too deeply to compare (uniqueItems)");
            goto done;
        }
    }
    qsort(h, n, sizeof *h, cmp_hashed);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && h[j].h == h[i].h; j++)
            ;
        for (size_t a = i; a < j; a++) {
            for (size_t b = a + 1; b < j; b++) {
                int r = json_eq(json_array_get(v, h[a].i), json_array_get(v, h[b].i), 0);
                if (r < 0) {
                    rc = vinternal(c, p, "value nested too deeply to compare (uniqueItems)");
                    goto done;
                }
                if (r) {
                    rc = vfail(c, p, "uniqueItems", "items %zu and %zu are equal", h[a].i, h[b].i);
                    goto done;
                }
            }
        }
    }
done:
    free(h);
    return rc;
}

static int v_array(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    size_t sz = json_array_size(v);
    int rc;
    if (n->max_items >= 0 && (long long)sz > n->max_items)
        return vfail(c, p, "maxItems", "must have at most %lld items", n->max_items);
    if (n->min_items >= 0 && (long long)sz < n->min_items)
        return vfail(c, p, "minItems", "must have at least %lld items", n->min_items);
    if (n->items) {
        for (size_t i = 0; i < sz; i++) {
            pathseg ip = seg_idx(p, i);
            if ((rc = vchild(c, n->items, json_array_get(v, i), &ip)))
                return rc;
        }
    } else if (n->items_is_arr) {
        for (size_t i = 0; i < sz; i++) {
            pathseg ip = seg_idx(p, i);
            const jnode *sub = i < n->items_arr.n ? n->items_arr.v[i] : n->addl_items;
            if (i >= n->items_arr.n && n->addl_items_false)
                return vfail(c, p, "additionalItems", "must have at most %zu items",
                             n->items_arr.n);
            if (sub && (rc = vchild(c, sub, json_array_get(v, i), &ip)))
                return rc;
        }
    }
    if (n->unique && sz > 1)
        return v_unique(c, v, p);
    return 0;
}

static const prop_ent *find_prop(const jnode *n, const char *key, size_t len)
{
    size_t lo = 0, hi = n->nprops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = keycmp(key, len, n->props[mid].key, n->props[mid].len);
        if (r == 0)
            return &n->props[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int v_object(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    size_t sz = json_object_size(v);
    int rc;
    if (n->max_props >= 0 && (long long)sz > n->max_props)
        return vfail(c, p, "maxProperties", "must have at most %lld properties", n->max_props);
    if (n->min_props >= 0 && (long long)sz < n->min_props)
        return vfail(c, p, "minProperties", "must have at least %lld properties", n->min_props);
    for (size_t i = 0; n->required && i < json_array_size(n->required); i++) {
        const json_t *name = json_array_get(n->required, i);
        if (!json_object_getn(v, json_string_value(name), json_string_length(name)))
            return vfail(c, p, "required", "missing required property \"%s\"",
                         json_string_value(name));
    }
    if (n->nprops || n->npprops || n->addl_props || n->addl_props_false) {
        for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            const json_t *val = json_object_iter_value(it);
            pathseg kp = seg_key(p, key, klen);
            bool matched = false;
            const prop_ent *pe = find_prop(n, key, klen);
            if (pe) {
                matched = true;
                if ((rc = vchild(c, pe->schema, val, &kp)))
                    return rc;
            }
            for (size_t i = 0; i < n->npprops; i++) {
                int r = re_search(c, n->pprops[i].re, key, klen, &kp);
                if (r < 0)
                    return -1;
                if (r) {
                    matched = true;
                    if ((rc = vchild(c, n->pprops[i].schema, val, &kp)))
                        return rc;
                }
            }
            if (matched)
                continue;
            if (n->addl_props_false)
                return vfail(c, &kp, "additionalProperties", "property is not allowed");
            if (n->addl_props && (rc = vchild(c, n->addl_props, val, &kp)))
                return rc;
        }
    }
    for (size_t i = 0; i < n->ndeps; i++) {
        const dep_ent *d = &n->deps[i];
        if (!json_object_getn(v, d->key, d->len))
            continue;
        if (d->schema) {
            if ((rc = vnode(c, d->schema, v, p)))
                return rc;
            continue;
        }
        for (size_t k = 0; k < json_array_size(d->names); k++) {
            const json_t *name = json_array_get(d->names, k);
            if (!json_object_getn(v, json_string_value(name), json_string_length(name)))
                return vfail(c, p, "dependencies", "property \"%s\" is required when \"%s\" is present",
                             json_string_value(name), d->key);
        }
    }
    return 0;
}

static int v_combinators(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    int rc;
    for (size_t i = 0; i < n->all_of.n; i++)
        if ((rc = vnode(c, n->all_of.v[i], v, p)))
            return rc;
    if (n->any_of.n) {
        rc = 1;
        c->quiet++;
        for (size_t i = 0; i < n->any_of.n && rc == 1; i++)
            rc = vnode(c, n->any_of.v[i], v, p);
        c->quiet--;
        if (rc < 0)
            return rc;
        if (rc)
            return vfail(c, p, "anyOf", "must match at least one of the anyOf schemas");
    }
    if (n->one_of.n) {
        size_t matched = 0;
        rc = 0;
        c->quiet++;
        for (size_t i = 0; i < n->one_of.n && matched < 2; i++) {
            rc = vnode(c, n->one_of.v[i], v, p);
            if (rc < 0)
                break;
            matched += rc == 0;
        }
        c->quiet--;
        if (rc < 0)
            return rc;
        if (matched == 0)
            return vfail(c, p, "oneOf", "must match exactly one of the oneOf schemas, matches none");
        if (matched > 1)
            return vfail(c, p, "oneOf", "must match exactly one of the oneOf schemas, matches several");
    }
    if (n->not_schema) {
        c->quiet++;
        rc = vnode(c, n->not_schema, v, p);
        c->quiet--;
        if (rc < 0)
            return rc;
        if (rc == 0)
            return vfail(c, p, "not", "must not match the \"not\" schema");
    }
    return 0;
}

static int vbody(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    int rc;
    if (n->types && !(n->types & inst_types(v)))
        return fail_type(c, n, p);
    if (n->enum_vals && (rc = v_enum(c, n, v, p)))
        return rc;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        rc = v_number(c, n, v, p);
        break;
    case JSON_STRING:
        rc = v_string(c, n, v, p);
        break;
    case JSON_ARRAY:
        rc = v_array(c, n, v, p);
        break;
    case JSON_OBJECT:
        rc = v_object(c, n, v, p);
        break;
    default:
        rc = 0;
        break;
    }
    if (rc)
        return rc;
    return v_combinators(c, n, v, p);
}

static int vnode(vctx *c, const jnode *n, const json_t *v, const pathseg *p)
{
    int rc;
    if (c->depth >= JSCHEMA_MAX_DEPTH)
        return vinternal(c, p, "validation nested more than %d levels deep", JSCHEMA_MAX_DEPTH);
    c->depth++;
    if (n->ref) {
        if (c->refs >= JSCHEMA_MAX_REF_CHAIN) {
            rc = vinternal(c, p, "more than %d $refs in a row without progress (recursive schema)",
                           JSCHEMA_MAX_REF_CHAIN);
        } else {
            c->refs++;
            rc = vnode(c, n->ref, v, p);
            c->refs--;
        }
    } else {
        rc = vbody(c, n, v, p);
    }
    c->depth--;
    return rc;
}

int jschema_validate(const jschema *s, const json_t *instance, char *err, size_t errlen)
{
    vctx c = {.s = s, .err = err, .errlen = err ? errlen : 0};
    outbuf o;
    ob_init(&o, c.err, c.errlen);
    if (!s || !instance)
        return vinternal(&c, NULL, "no schema or no instance");
    c.quiet = c.errlen == 0; /* nowhere to write: skip formatting altogether */
    int rc = vnode(&c, s->root, instance, NULL);
    pcre2_match_data_free(c.md);
    return rc;
}
