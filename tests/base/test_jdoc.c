/* Unit tests of base's jdoc parser: what it accepts and refuses (RFC 8259 and the rules on
 * top: UTF-8, no duplicate keys, no NUL, bounded depth), numbers kept as written, escapes
 * decoded, and a differential test against jansson on random documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/jdoc.h"

static const jd_value *parse(arena *a, const char *s, size_t n)
{
    char why[120];
    return jdoc_parse(a, s, n, 64, why, sizeof why);
}

static void assert_refused(const char *s, size_t n, const char *why_part)
{
    arena a;
    arena_init(&a, 0);
    char why[120] = "";
    const jd_value *v = jdoc_parse(&a, s, n, 64, why, sizeof why);
    if (v)
        fail_msg("accepted: %.*s", (int)n, s);
    if (why_part && !strstr(why, why_part))
        fail_msg("'%.*s': '%s' does not say '%s'", (int)n, s, why, why_part);
    arena_free(&a);
}

#define REFUSED(lit, why) assert_refused(lit, sizeof(lit) - 1, why)

static void test_refusals(void **state)
{
    (void)state;
    REFUSED("", "end of text");
    REFUSED("   ", "end of text");
    REFUSED("[1,]", "unexpected");
    REFUSED("[1 2]", "expected ','");
    REFUSED("{\"a\" 1}", "expected ':'");
    REFUSED("{1: 2}", "expected a key");
    REFUSED("{\"a\": 1,}", "expected a key");
    REFUSED("[1] x", "text after");
    REFUSED("[01]", "expected ','");
    REFUSED("01", "text after");
    REFUSED("[1.]", "malformed number");
    REFUSED("[.5]", "unexpected");
    REFUSED("[-]", "malformed number");
    REFUSED("[1e]", "malformed number");
    REFUSED("[+1]", "unexpected");
    REFUSED("[NaN]", "unexpected");
    REFUSED("[Infinity]", "unexpected");
    REFUSED("[tru]", "unexpected");
    REFUSED("[\"abc]", "unterminated");
    REFUSED("[\"a\\x\"]", "bad escape");
    REFUSED("[\"a\\u12\"]", "\\u escape");
    REFUSED("[\"\\ud800\"]", "surrogate");
    REFUSED("[\"\\udc00\"]", "surrogate");
    REFUSED("[\"\\ud800\\u0041\"]", "surrogate");
    REFUSED("[\"\\u0000\"]", "\\u0000");
    REFUSED("[\"tab\there\"]", "control character");
    REFUSED("[\"\xff\"]", "UTF-8");
    REFUSED("[\"\xc0\xaf\"]", "UTF-8");         /* overlong '/' */
    REFUSED("[\"\xed\xa0\x80\"]", "UTF-8");     /* an encoded surrogate */
    REFUSED("[\"\xf4\x90\x80\x80\"]", "UTF-8"); /* past U+10FFFF */
    REFUSED("[\"\xe2\x82\"]", "UTF-8");         /* cut short */
    REFUSED("{\"a\": 1, \"a\": 2}", "duplicate");
    REFUSED("[\"a\x00\"]", "control character");
    /* a duplicate among many keys is found by sorting */
    char big[4096];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "\"k%d\": %d,", i, i);
    n += (size_t)snprintf(big + n, sizeof big - n, "\"k57\": 0}");
    assert_refused(big, n, "duplicate");
    /* nesting: 64 deep is fine, 65 is not */
    char deep[200];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    arena a;
    arena_init(&a, 0);
    assert_non_null(parse(&a, deep, 128));
    arena_free(&a);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    assert_refused(deep, 130, "too deep");
}

static void test_values(void **state)
{
    (void)state;
    arena a;
    arena_init(&a, 0);
    const char *s =
        " {\"q\": -12.340e+2, \"i\": 9223372036854775807, \"big\": 9223372036854775808,"
        " \"s\": \"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\xe2\x82\xac\", \"t\": true,"
        " \"f\": false, \"n\": null, \"e\": [], \"o\": {}, \"a\": [1, [2], {\"x\": 3}]} ";
    const jd_value *v = parse(&a, s, strlen(s));
    assert_non_null(v);
    assert_int_equal(v->type, JD_OBJECT);
    assert_int_equal(v->len, 10);
    assert_string_equal(jd_num(jd_get(v, "q")), "-12.340e+2");
    int64_t i;
    assert_true(jd_int(jd_get(v, "i"), &i));
    assert_true(i == INT64_MAX);
    assert_false(jd_int(jd_get(v, "big"), &i));
    assert_false(jd_int(jd_get(v, "q"), &i));
    assert_null(jd_num(jd_get(v, "s")));
    assert_string_equal(jd_str(jd_get(v, "s")), "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac");
    assert_int_equal(jd_get(v, "s")->len, strlen("a\"b\\c/d\n") + 2 + 4 + 3);
    assert_int_equal(jd_get(v, "t")->type, JD_TRUE);
    assert_int_equal(jd_get(v, "f")->type, JD_FALSE);
    assert_int_equal(jd_get(v, "n")->type, JD_NULL);
    assert_int_equal(jd_get(v, "e")->len, 0);
    assert_int_equal(jd_get(v, "o")->type, JD_OBJECT);
    const jd_value *arr = jd_get(v, "a");
    assert_int_equal(arr->len, 3);
    assert_null(arr->items[0].key);
    assert_string_equal(arr->items[0].text, "1");
    assert_int_equal(arr->items[1].items[0].type, JD_NUMBER);
    assert_string_equal(jd_num(jd_get(&arr->items[2], "x")), "3");
    assert_null(jd_get(v, "missing"));
    assert_null(jd_get(arr, "x"));
    assert_null(jd_str(NULL));
    /* a bare scalar is a document too */
    assert_string_equal(jd_num(parse(&a, "0", 1)), "0");
    assert_string_equal(jd_str(parse(&a, "\"\"", 2)), "");
    arena_free(&a);
}

static void test_json_str(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9"), 0);
    assert_string_equal(buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    /* and it reads back */
    arena a;
    arena_init(&a, 0);
    assert_string_equal(jd_str(parse(&a, b.data, b.len)), "a\"b\\c\n\x01\xc3\xa9");
    arena_free(&a);
    buf_free(&b);
}

/* ---------------------------------------------------------------- differential */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned next(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static json_t *random_json(int depth)
{
    static const char *const strings[] = {
        "",      "a",           "quantity",    "\xc3\xa9t\xc3\xa9",
        "\"q\"", "back\\slash", "line\nbreak", "\xf0\x9f\x98\x80",
        "\x01"};
    switch (depth > 4 ? next(5) : next(7)) {
    case 0: return json_integer((json_int_t)next(2000000) - 1000000);
    case 1: return json_string(strings[next(ARRAY_LEN(strings))]);
    case 2: return json_true();
    case 3: return json_false();
    case 4: return json_null();
    case 5: {
        json_t *a = json_array();
        for (unsigned i = next(6); i; i--)
            json_array_append_new(a, random_json(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = next(20); i; i--) {
            char key[16];
            snprintf(key, sizeof key, "k%u", next(40));
            json_object_set_new(o, key, random_json(depth + 1));
        }
        return o;
    }
    }
}

/* jdoc's tree as jansson would have it (numbers are integers in these documents). */
static json_t *to_jansson(const jd_value *v)
{
    switch (v->type) {
    case JD_NULL: return json_null();
    case JD_TRUE: return json_true();
    case JD_FALSE: return json_false();
    case JD_NUMBER: return json_integer(strtoll(v->text, NULL, 10));
    case JD_STRING: return json_stringn(v->text, v->len);
    case JD_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < v->len; i++)
            json_array_append_new(a, to_jansson(&v->items[i]));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = 0; i < v->len; i++)
            json_object_set_new(o, v->items[i].key, to_jansson(&v->items[i]));
        return o;
    }
    }
}

static void test_against_jansson(void **state)
{
    (void)state;
    for (int round = 0; round < 3000; round++) {
        json_t *j = random_json(0);
        char *text = json_dumps(j, JSON_ENCODE_ANY | (round % 2 ? JSON_INDENT(2) : JSON_COMPACT) |
                                       (round % 3 ? 0 : JSON_ENSURE_ASCII));
        assert_non_null(text);
        arena a;
        arena_init(&a, 0);
        const jd_value *v = parse(&a, text, strlen(text));
        if (!v)
            fail_msg("refused: %s", text);
        json_t *back = to_jansson(v);
        if (!json_equal(j, back))
            fail_msg("differs: %s", text);
        json_decref(back);
        /* every cut of the text short of its end is refused (a bare number cut short is a
         * shorter number, so only containers and strings are cut) */
        if (text[0] == '[' || text[0] == '{' || text[0] == '"') {
            size_t n = strlen(text), cut = n > 1 ? (size_t)next((unsigned)n - 1) + 1 : 0;
            while (cut && (text[cut - 1] == ' ' || text[cut - 1] == '\n'))
                cut--;
            if (cut && cut < n)
                assert_null(parse(&a, text, cut));
        }
        arena_free(&a);
        free(text);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_against_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
