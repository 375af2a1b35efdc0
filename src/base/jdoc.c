/* jdoc: a strict JSON parser into an arena. Members of an array or object are gathered on a
 * scratch stack while their container is open and copied into the arena, contiguous, when it
 * closes, so the tree costs a few arena allocations and no per-node malloc. */
#include "base/jdoc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Objects with more members than this are checked for duplicate keys by sorting. */
#define DUP_LINEAR_MAX 16

typedef struct {
    arena *a;
    const char *s, *p, *end;
    int depth, max_depth;
    jd_value *stack; /* open containers' members */
    size_t top, cap;
    char *why;
    size_t whylen;
    bool failed;
} parser;

static void fail(parser *ps, const char *what)
{
    if (!ps->failed)
        snprintf(ps->why, ps->whylen, "%s at byte %zu", what, (size_t)(ps->p - ps->s));
    ps->failed = true;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int push(parser *ps, const jd_value *v)
{
    if (ps->top == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 64;
        jd_value *n = realloc(ps->stack, cap * sizeof *n);
        if (!n) {
            fail(ps, "out of memory");
            return -1;
        }
        ps->stack = n;
        ps->cap = cap;
    }
    ps->stack[ps->top++] = *v;
    return 0;
}

static bool read_u4(parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(ps->p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return true;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* A string at ps->p (its opening quote), decoded into the arena. */
static const char *parse_string(parser *ps, size_t *len)
{
    const char *q = ++ps->p;
    /* The plain run first: most strings have no escapes and copy in one go. */
    while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
           (unsigned char)*q < 0x80)
        q++;
    /* Decoding never grows the text: an escape is at least as long as what it stands for. */
    size_t room = (size_t)(ps->end - ps->p);
    if (q < ps->end && *q == '"')
        room = (size_t)(q - ps->p);
    char *out = arena_alloc(ps->a, room + 1), *o = out;
    if (!out) {
        fail(ps, "the document is too large");
        return NULL;
    }
    memcpy(o, ps->p, (size_t)(q - ps->p));
    o += q - ps->p;
    ps->p = q;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            *o = '\0';
            *len = (size_t)(o - out);
            return out;
        }
        if (c < 0x20) {
            fail(ps, "a control character in a string");
            return NULL;
        }
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)ps->p, (const unsigned char *)ps->end);
            if (!n) {
                fail(ps, "invalid UTF-8");
                return NULL;
            }
            memcpy(o, ps->p, n);
            o += n;
            ps->p += n;
            continue;
        }
        if (c != '\\') {
            *o++ = (char)c;
            ps->p++;
            continue;
        }
        if (++ps->p == ps->end)
            break;
        char e = *ps->p++;
        unsigned cp;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (!read_u4(ps, &cp)) {
                fail(ps, "a bad \\u escape");
                return NULL;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    fail(ps, "a lone surrogate in a \\u escape");
                    return NULL;
                }
                ps->p += 2;
                if (!read_u4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, "a lone surrogate in a \\u escape");
                    return NULL;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(ps, "a lone surrogate in a \\u escape");
                return NULL;
            } else if (cp == 0) {
                fail(ps, "\\u0000 in a string");
                return NULL;
            }
            o = put_utf8(o, cp);
            break;
        default: fail(ps, "a bad escape in a string"); return NULL;
        }
    }
    fail(ps, "an unterminated string");
    return NULL;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(parser *ps)
{
    const char *p = ps->p, *end = ps->end;
    if (p < end && *p == '-')
        p++;
    if (p == end || *p < '0' || *p > '9')
        return false;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    if (p < end && *p == '.') {
        const char *d = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return false;
    }
    ps->p = p;
    return true;
}

static int key_cmp(const void *a, const void *b)
{
    const jd_value *x = *(const jd_value *const *)a, *y = *(const jd_value *const *)b;
    return strcmp(x->key, y->key);
}

static bool has_duplicates(parser *ps, const jd_value *m, size_t n)
{
    if (n <= DUP_LINEAR_MAX) {
        for (size_t i = 1; i < n; i++)
            for (size_t k = 0; k < i; k++)
                if (strcmp(m[i].key, m[k].key) == 0)
                    return true;
        return false;
    }
    const jd_value **v = malloc(n * sizeof *v);
    if (!v) {
        fail(ps, "out of memory");
        return true;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = &m[i];
    qsort(v, n, sizeof *v, key_cmp);
    bool dup = false;
    for (size_t i = 1; i < n && !dup; i++)
        dup = strcmp(v[i - 1]->key, v[i]->key) == 0;
    free(v);
    return dup;
}

static bool parse_value(parser *ps, jd_value *v);

/* An array or object at ps->p; its members end up contiguous in the arena. */
static bool parse_container(parser *ps, jd_value *v, bool object)
{
    if (++ps->depth > ps->max_depth) {
        fail(ps, "nesting too deep");
        return false;
    }
    char close = object ? '}' : ']';
    size_t base = ps->top;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            jd_value m = {0};
            const char *key = NULL;
            if (object) {
                skip_ws(ps);
                if (ps->p == ps->end || *ps->p != '"') {
                    fail(ps, "expected a key");
                    return false;
                }
                size_t kl;
                if (!(key = parse_string(ps, &kl)))
                    return false;
                skip_ws(ps);
                if (ps->p == ps->end || *ps->p != ':') {
                    fail(ps, "expected ':'");
                    return false;
                }
                ps->p++;
            }
            if (!parse_value(ps, &m))
                return false;
            m.key = key;
            if (push(ps, &m))
                return false;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                break;
            }
            fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
            return false;
        }
    }
    size_t n = ps->top - base;
    jd_value *items = NULL;
    if (n) {
        if (!(items = arena_alloc(ps->a, n * sizeof *items))) {
            fail(ps, "the document is too large");
            return false;
        }
        memcpy(items, ps->stack + base, n * sizeof *items);
    }
    ps->top = base;
    if (object && has_duplicates(ps, items, n)) {
        fail(ps, "a duplicate key");
        return false;
    }
    ps->depth--;
    *v = (jd_value){.type = object ? JD_OBJECT : JD_ARRAY, .len = n, .items = items};
    return true;
}

static bool literal(parser *ps, const char *word, jd_type t, jd_value *v)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        fail(ps, "an unexpected character");
        return false;
    }
    ps->p += n;
    *v = (jd_value){.type = t};
    return true;
}

static bool parse_value(parser *ps, jd_value *v)
{
    skip_ws(ps);
    if (ps->p == ps->end) {
        fail(ps, "unexpected end of text");
        return false;
    }
    switch (*ps->p) {
    case '{': return parse_container(ps, v, true);
    case '[': return parse_container(ps, v, false);
    case '"': {
        size_t n;
        const char *s = parse_string(ps, &n);
        if (!s)
            return false;
        *v = (jd_value){.type = JD_STRING, .len = n, .text = s};
        return true;
    }
    case 't': return literal(ps, "true", JD_TRUE, v);
    case 'f': return literal(ps, "false", JD_FALSE, v);
    case 'n': return literal(ps, "null", JD_NULL, v);
    default: {
        const char *start = ps->p;
        if (!scan_number(ps)) {
            fail(ps, *start == '-' || (*start >= '0' && *start <= '9') ? "a malformed number"
                                                                       : "an unexpected character");
            return false;
        }
        size_t n = (size_t)(ps->p - start);
        const char *t = arena_strndup(ps->a, start, n);
        if (!t) {
            fail(ps, "the document is too large");
            return false;
        }
        *v = (jd_value){.type = JD_NUMBER, .len = n, .text = t};
        return true;
    }
    }
}

const jd_value *jdoc_parse(arena *a, const char *s, size_t n, int max_depth, char *why,
                           size_t whylen)
{
    parser ps = {
        .a = a, .s = s, .p = s, .end = s + n, .max_depth = max_depth, .why = why, .whylen = whylen};
    jd_value *root = arena_alloc(a, sizeof *root);
    bool ok = root && parse_value(&ps, root);
    if (!root)
        fail(&ps, "out of memory");
    if (ok) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            fail(&ps, "text after the value");
            ok = false;
        }
    }
    free(ps.stack);
    return ok ? root : NULL;
}

const jd_value *jd_get(const jd_value *obj, const char *key)
{
    if (!obj || obj->type != JD_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (strcmp(obj->items[i].key, key) == 0)
            return &obj->items[i];
    return NULL;
}

const char *jd_str(const jd_value *v)
{
    return v && v->type == JD_STRING ? v->text : NULL;
}

const char *jd_num(const jd_value *v)
{
    return v && v->type == JD_NUMBER ? v->text : NULL;
}

bool jd_int(const jd_value *v, int64_t *out)
{
    const char *s = jd_num(v);
    return s && !strpbrk(s, ".eE") && str_to_i64(s, true, out) == 0;
}

int buf_json_str(buf *b, const char *s)
{
    int rc = buf_append(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; !rc && *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = buf_append(b, run, (size_t)(p - run));
        if (!rc)
            rc = c == '"'    ? buf_append(b, "\\\"", 2)
                 : c == '\\' ? buf_append(b, "\\\\", 2)
                 : c == '\n' ? buf_append(b, "\\n", 2)
                             : buf_printf(b, "\\u%04x", c);
        run = p + 1;
    }
    if (!rc)
        rc = buf_append(b, run, strlen(run));
    return rc ? rc : buf_append(b, "\"", 1);
}
