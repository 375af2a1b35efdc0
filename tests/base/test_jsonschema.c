/* Tests for the draft-04 validator: every case of the official JSON Schema Test Suite
 * (draft4 and draft4/optional), plus our own checks of error messages, remote $ref
 * refusal, recursion guards and concurrent use. Usage: test_jsonschema [suite-draft4-dir] */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/jsonschema.h"

#ifndef JSONSCHEMA_SUITE_DIR
#define JSONSCHEMA_SUITE_DIR "/usr/share/json-schema-test-suite/tests/draft4"
#endif

/* Suite groups whose schema $refs a remote document. Remote refs are refused on purpose
 * (a validator must never fetch URLs named by a broker's catalog), so for these the test
 * asserts that compilation fails with a "remote $ref" message. ref.json has no entry: its
 * only non-local ref is the draft-04 meta-schema, which is embedded. */
static const struct {
    const char *file, *group;
} remote_groups[] = {
    {"refRemote.json", "remote ref"},
    {"refRemote.json", "fragment within remote ref"},
    {"refRemote.json", "ref within remote ref"},
    {"refRemote.json", "base URI change"},
    {"refRemote.json", "base URI change - change folder"},
    {"refRemote.json", "base URI change - change folder in subschema"},
    {"refRemote.json", "root ref in remote ref"},
};

/* Suite cases that are known not to pass. Every entry must fail: a listed case that starts
 * passing fails the test as well, so the list cannot go stale. */
static const struct {
    const char *file, *group, *test;
} known_unsupported[] = {
    /* Deliberate: 1.0 is accepted as an integer. jansson hands us 1.0 as a real, callers
     * may serialise whole numbers either way, and later drafts define integers by value;
     * the suite keeps the opposite reading as optional for exactly this reason. */
    {"optional/zeroTerminatedFloats.json",
     "some languages do not distinguish between different types of numeric value",
     "a float is not an integer even without fractional part"},
};

#define N_REMOTE (sizeof remote_groups / sizeof remote_groups[0])
#define N_KNOWN (sizeof known_unsupported / sizeof known_unsupported[0])

typedef struct {
    char *path;
    char *rel; /* relative to the draft4 directory, e.g. "optional/format.json" */
    bool optional;
} suite_file;

typedef struct {
    int passed, failed, expected_fail, refused, unexpected;
} tally;

static tally total_required, total_optional;
static bool remote_seen[N_REMOTE];
static bool known_seen[N_KNOWN];

static int find_remote(const char *file, const char *group)
{
    for (size_t i = 0; i < N_REMOTE; i++)
        if (!strcmp(remote_groups[i].file, file) && !strcmp(remote_groups[i].group, group))
            return (int)i;
    return -1;
}

static int find_known(const char *file, const char *group, const char *test)
{
    for (size_t i = 0; i < N_KNOWN; i++)
        if (!strcmp(known_unsupported[i].file, file) && !strcmp(known_unsupported[i].group, group) &&
            !strcmp(known_unsupported[i].test, test))
            return (int)i;
    return -1;
}

/* One case: checks its outcome against the suite and the known-unsupported list. */
static void run_case(const suite_file *f, const char *group, const json_t *tc, int compile_rc,
                     const jschema *s, const char *compile_err, tally *t)
{
    const char *desc = json_string_value(json_object_get(tc, "description"));
    bool want_valid = json_is_true(json_object_get(tc, "valid"));
    char err[512] = "";
    int rc = -1;
    if (compile_rc == 0)
        rc = jschema_validate(s, json_object_get(tc, "data"), err, sizeof err);
    else
        snprintf(err, sizeof err, "compile: %.480s", compile_err);
    bool ok = rc >= 0 && (rc == 0) == want_valid;
    int k = find_known(f->rel, group, desc ? desc : "");
    if (k >= 0)
        known_seen[k] = true;
    if (ok) {
        t->passed++;
        if (k >= 0) {
            t->unexpected++;
            printf("  LISTED AS UNSUPPORTED BUT PASSES: %s / %s\n", group, desc);
        }
        return;
    }
    t->failed++;
    if (k >= 0) {
        t->expected_fail++;
        return;
    }
    t->unexpected++;
    printf("  FAIL: %s / %s: expected %s, got rc=%d (%s)\n", group, desc,
           want_valid ? "valid" : "invalid", rc, err);
}

static void test_suite_file(void **state)
{
    const suite_file *f = *state;
    tally t = {0};
    json_error_t jerr;
    json_t *groups = json_load_file(f->path, 0, &jerr);
    bool as_real = false;
    if (!groups && strstr(jerr.text, "too big integer")) {
        /* jansson refuses integers outside int64; callers that want bignums parse with
         * JSON_DECODE_INT_AS_REAL, and integral reals are integers to the validator. */
        groups = json_load_file(f->path, JSON_DECODE_INT_AS_REAL, &jerr);
        as_real = true;
    }
    if (!groups)
        fail_msg("%s: %s (line %d)", f->path, jerr.text, jerr.line);
    assert_true(json_is_array(groups));

    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g) {
        const char *gdesc = json_string_value(json_object_get(g, "description"));
        json_t *tests = json_object_get(g, "tests");
        assert_non_null(gdesc);
        assert_true(json_is_array(tests));
        jschema *s = NULL;
        char cerr[512] = "";
        int crc = jschema_compile(json_object_get(g, "schema"), &s, cerr, sizeof cerr);
        int r = find_remote(f->rel, gdesc);
        if (r >= 0) {
            remote_seen[r] = true;
            if (crc == 0 || !strstr(cerr, "remote $ref")) {
                t.unexpected++;
                printf("  NOT REFUSED: %s: remote $ref schema compiled (rc=%d, %s)\n", gdesc, crc,
                       cerr);
            } else {
                t.refused += (int)json_array_size(tests);
            }
            jschema_free(s);
            continue;
        }
        if (crc != 0)
            printf("  compile failed: %s: %s\n", gdesc, cerr);
        size_t ti;
        json_t *tc;
        json_array_foreach(tests, ti, tc) {
            run_case(f, gdesc, tc, crc, s, cerr, &t);
        }
        jschema_free(s);
    }
    json_decref(groups);

    /* Every list entry for this file must have been met, or the suite has changed. */
    for (size_t i = 0; i < N_REMOTE; i++) {
        if (!strcmp(remote_groups[i].file, f->rel) && !remote_seen[i]) {
            t.unexpected++;
            printf("  remote-ref list entry not in the suite: %s\n", remote_groups[i].group);
        }
    }
    for (size_t i = 0; i < N_KNOWN; i++) {
        if (!strcmp(known_unsupported[i].file, f->rel) && !known_seen[i]) {
            t.unexpected++;
            printf("  known-unsupported entry not in the suite: %s / %s\n",
                   known_unsupported[i].group, known_unsupported[i].test);
        }
    }

    printf("%s: %d passed, %d failed", f->rel, t.passed, t.failed);
    if (t.expected_fail)
        printf(" (%d known-unsupported, listed)", t.expected_fail);
    if (t.refused)
        printf("; %d cases refused at compile as required (remote $ref)", t.refused);
    if (as_real)
        printf("; parsed with JSON_DECODE_INT_AS_REAL");
    printf("\n");
    fflush(stdout);

    tally *tot = f->optional ? &total_optional : &total_required;
    tot->passed += t.passed;
    tot->failed += t.failed;
    tot->expected_fail += t.expected_fail;
    tot->refused += t.refused;
    tot->unexpected += t.unexpected;
    assert_int_equal(t.unexpected, 0);
}

/* ---- our own cases -------------------------------------------------------------------- */

static jschema *compile_ok(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("bad test schema %s: %s", text, jerr.text);
    jschema *s = NULL;
    char err[256];
    int rc = jschema_compile(j, &s, err, sizeof err);
    json_decref(j);
    if (rc != 0)
        fail_msg("compile %s: %s", text, err);
    return s;
}

static int compile_text(const char *text, char *err, size_t errlen)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    jschema *s = NULL;
    int rc = jschema_compile(j, &s, err, errlen);
    json_decref(j);
    if (rc == 0)
        assert_non_null(s);
    else
        assert_null(s);
    jschema_free(s);
    return rc;
}

/* Validates `inst` (JSON text) and returns the rc; err gets the message. */
static int check(const jschema *s, const char *inst, char *err, size_t errlen)
{
    json_t *j = json_loads(inst, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    int rc = jschema_validate(s, j, err, errlen);
    json_decref(j);
    return rc;
}

static void expect_error(const jschema *s, const char *inst, const char *msg)
{
    char err[256];
    assert_int_equal(check(s, inst, err, sizeof err), 1);
    assert_string_equal(err, msg);
}

static void test_error_messages(void **state)
{
    (void)state;
    jschema *s = compile_ok(
        "{\"type\": \"object\", \"required\": [\"name\"], \"additionalProperties\": false,"
        " \"properties\": {"
        "  \"name\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 5,"
        "            \"pattern\": \"^[a-z]+$\"},"
        "  \"max_keys\": {\"type\": \"integer\", \"maximum\": 100, \"minimum\": 1},"
        "  \"ratio\": {\"type\": \"number\", \"maximum\": 1.5, \"exclusiveMaximum\": true,"
        "            \"multipleOf\": 0.25},"
        "  \"tags\": {\"type\": \"array\", \"items\": {\"type\": [\"string\", \"null\"]},"
        "            \"uniqueItems\": true, \"maxItems\": 3},"
        "  \"plan\": {\"enum\": [\"small\", \"large\", 3]},"
        "  \"a/b~c\": {\"type\": \"boolean\"},"
        "  \"tier\": {\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 2}]},"
        "  \"mode\": {\"not\": {\"type\": \"string\"}},"
        "  \"email\": {\"format\": \"email\"}"
        " },"
        " \"dependencies\": {\"tier\": [\"plan\"]}}");
    char err[256];
    assert_int_equal(check(s, "{\"name\": \"abc\", \"max_keys\": 100}", err, sizeof err), 0);
    assert_string_equal(err, "");
    expect_error(s, "[]", "(root): must be object (type)");
    expect_error(s, "{}", "(root): missing required property \"name\" (required)");
    expect_error(s, "{\"name\": \"abc\", \"max_keys\": 101}", "/max_keys: must be <= 100 (maximum)");
    expect_error(s, "{\"name\": \"abc\", \"max_keys\": 0}", "/max_keys: must be >= 1 (minimum)");
    expect_error(s, "{\"name\": \"abc\", \"max_keys\": 1.5}", "/max_keys: must be integer (type)");
    expect_error(s, "{\"name\": \"abc\", \"ratio\": 1.5}", "/ratio: must be < 1.5 (exclusiveMaximum)");
    expect_error(s, "{\"name\": \"abc\", \"ratio\": 0.3}",
                 "/ratio: must be a multiple of 0.25 (multipleOf)");
    expect_error(s, "{\"name\": \"a\"}", "/name: must be at least 2 characters long (minLength)");
    expect_error(s, "{\"name\": \"abcdef\"}", "/name: must be at most 5 characters long (maxLength)");
    expect_error(s, "{\"name\": \"ab1\"}", "/name: must match the pattern \"^[a-z]+$\" (pattern)");
    expect_error(s, "{\"name\": \"abc\", \"tags\": [\"x\", 2]}", "/tags/1: must be null or string (type)");
    expect_error(s, "{\"name\": \"abc\", \"tags\": [\"x\", null, \"x\"]}",
                 "/tags: items 0 and 2 are equal (uniqueItems)");
    expect_error(s, "{\"name\": \"abc\", \"tags\": [1, 2, 3, 4]}", "/tags: must have at most 3 items (maxItems)");
    expect_error(s, "{\"name\": \"abc\", \"plan\": \"medium\"}",
                 "/plan: must be one of \"small\", \"large\", 3 (enum)");
    expect_error(s, "{\"name\": \"abc\", \"a/b~c\": 1}", "/a~1b~0c: must be boolean (type)");
    expect_error(s, "{\"name\": \"abc\", \"extra\": 1}", "/extra: property is not allowed (additionalProperties)");
    expect_error(s, "{\"name\": \"abc\", \"tier\": 3, \"plan\": 3}",
                 "/tier: must match exactly one of the oneOf schemas, matches several (oneOf)");
    expect_error(s, "{\"name\": \"abc\", \"tier\": 1.5}",
                 "/tier: must match exactly one of the oneOf schemas, matches none (oneOf)");
    expect_error(s, "{\"name\": \"abc\", \"tier\": 1}",
                 "(root): property \"plan\" is required when \"tier\" is present (dependencies)");
    expect_error(s, "{\"name\": \"abc\", \"mode\": \"x\"}", "/mode: must not match the \"not\" schema (not)");
    expect_error(s, "{\"name\": \"abc\", \"email\": \"nope\"}", "/email: must be a valid email (format)");

    /* A tiny buffer truncates but stays terminated; no buffer at all is allowed. */
    char tiny[8];
    assert_int_equal(check(s, "{\"name\": \"abc\", \"max_keys\": 101}", tiny, sizeof tiny), 1);
    assert_string_equal(tiny, "/max_ke");
    assert_int_equal(check(s, "{\"name\": \"abc\", \"max_keys\": 101}", NULL, 0), 1);
    jschema_free(s);
}

static void test_remote_ref_rejected(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(compile_text("{\"$ref\": \"http://example.com/schema.json\"}", err, sizeof err), -1);
    assert_string_equal(err, "#/$ref: remote $ref \"http://example.com/schema.json\" is not supported "
                             "(only local refs and the draft-04 meta-schema)");
    /* A relative ref that does not name an id of the document is remote too. */
    assert_int_equal(compile_text("{\"properties\": {\"a\": {\"$ref\": \"other.json#/x\"}}}", err, sizeof err), -1);
    assert_non_null(strstr(err, "#/properties/a/$ref: remote $ref \"other.json#/x\""));
    assert_int_equal(compile_text("{\"id\": \"http://x.test/root.json\","
                                  " \"items\": {\"$ref\": \"sub.json\"}}", err, sizeof err), -1);
    assert_non_null(strstr(err, "\"http://x.test/sub.json\" is not supported"));
    /* Hidden in an unused definition: still refused at compile time. */
    assert_int_equal(compile_text("{\"definitions\": {\"u\": {\"$ref\": \"https://evil.test/#\"}}}",
                                  err, sizeof err), -1);
    assert_non_null(strstr(err, "remote $ref"));
    /* Local forms compile: "#", pointers with escapes, ids (absolute, relative, plain name). */
    assert_int_equal(compile_text("{\"properties\": {\"a\": {\"$ref\": \"#\"}}}", err, sizeof err), 0);
    assert_int_equal(compile_text("{\"x~/%\": {\"type\": \"integer\"}, \"$ref\": \"#/x~0~1%25\"}", err, sizeof err), 0);
    assert_int_equal(compile_text("{\"id\": \"http://x.test/a/root.json\", \"definitions\": {"
                                  " \"b\": {\"id\": \"b.json\", \"type\": \"integer\"},"
                                  " \"c\": {\"id\": \"#c\", \"type\": \"string\"}},"
                                  " \"items\": [{\"$ref\": \"b.json\"}, {\"$ref\": \"#c\"},"
                                  "  {\"$ref\": \"http://x.test/a/root.json#/definitions/b\"}]}",
                                  err, sizeof err), 0);
    /* ids resolve like URIs, dot segments included. */
    jschema *dots = compile_ok("{\"id\": \"http://x.test/dir/r.json\", \"definitions\": {\"a\": {"
                               " \"id\": \"../other/./\", \"definitions\": {\"b\": {\"id\": \"b.json\","
                               " \"type\": \"string\"}}}}, \"items\": {\"$ref\": \"http://x.test/other/b.json\"}}");
    expect_error(dots, "[1]", "/0: must be string (type)");
    jschema_free(dots);
    /* Pointers to nothing, or to non-schemas, are errors rather than silently ignored. */
    assert_int_equal(compile_text("{\"$ref\": \"#/definitions/missing\"}", err, sizeof err), -1);
    assert_non_null(strstr(err, "points to nothing"));
    assert_int_equal(compile_text("{\"required\": [\"a\"], \"$ref\": \"#/required\"}", err, sizeof err), -1);
    assert_non_null(strstr(err, "does not point to a schema"));
    assert_int_equal(compile_text("{\"$ref\": \"#nowhere\"}", err, sizeof err), -1);

    /* The meta-schema is embedded and validates schemas. */
    jschema *meta = compile_ok("{\"$ref\": \"" JSCHEMA_DRAFT04_META "\"}");
    assert_int_equal(check(meta, "{\"type\": \"string\", \"minLength\": 2}", err, sizeof err), 0);
    assert_int_equal(check(meta, "{\"type\": \"strin\"}", err, sizeof err), 1);
    assert_int_equal(check(meta, "{\"pattern\": \"\\\\Z\"}", err, sizeof err), 1);
    assert_string_equal(err, "/pattern: must be a valid regex (format)");
    jschema_free(meta);
}

static void test_invalid_schemas(void **state)
{
    (void)state;
    static const struct {
        const char *schema, *msg;
    } bad[] = {
        {"[]", "#: a schema must be an object"},
        {"{\"type\": 5}", "#/type: must be a type name or an array of type names"},
        {"{\"type\": \"strin\"}", "#/type: unknown type \"strin\""},
        {"{\"type\": []}", "#/type: must not be an empty array"},
        {"{\"minLength\": -1}", "#/minLength: must be a non-negative integer"},
        {"{\"maxItems\": 1.5}", "#/maxItems: must be a non-negative integer"},
        {"{\"multipleOf\": 0}", "#/multipleOf: must be a number greater than 0"},
        {"{\"maximum\": \"5\"}", "#/maximum: must be a number"},
        {"{\"exclusiveMinimum\": 1}", "#/exclusiveMinimum: must be a boolean"},
        {"{\"required\": \"a\"}", "#/required: must be an array of strings"},
        {"{\"required\": [\"a\", 1]}", "#/required/1: must be a string"},
        {"{\"enum\": []}", "#/enum: must be a non-empty array"},
        {"{\"allOf\": []}", "#/allOf: must be a non-empty array of schemas"},
        {"{\"anyOf\": [{}, 3]}", "#/anyOf/1: a schema must be an object"},
        {"{\"properties\": {\"a\": {\"type\": \"x\"}}}", "#/properties/a/type: unknown type \"x\""},
        {"{\"additionalProperties\": 1}", "#/additionalProperties: must be a boolean or a schema"},
        {"{\"dependencies\": {\"a\": 1}}", "#/dependencies/a: must be a schema or an array of property names"},
        {"{\"$ref\": 1}", "#/$ref: must be a string"},
        {"{\"id\": 1}", "#/id: must be a string"},
        {"{\"pattern\": \"(\"}", NULL},
        {"{\"pattern\": \"^a\\\\Z\"}", "#/pattern: invalid regex: \\Z is not an ECMA-262 escape"},
        {"{\"pattern\": \"a++\"}", "#/pattern: invalid regex: possessive quantifiers are not ECMA-262"},
        {"{\"pattern\": \"(?i)a\"}", "#/pattern: invalid regex: (?i is not ECMA-262 group syntax"},
        {"{\"pattern\": \"(*LIMIT_MATCH=99999999)a\"}", "#/pattern: invalid regex: (* verbs are not ECMA-262"},
        {"{\"patternProperties\": {\"[[:alpha:]]\": {}}}", NULL},
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (compile_text(bad[i].schema, err, sizeof err) != -1)
            fail_msg("schema %s compiled", bad[i].schema);
        if (bad[i].msg && strcmp(err, bad[i].msg) != 0)
            fail_msg("schema %s: got \"%s\", want \"%s\"", bad[i].schema, err, bad[i].msg);
        if (!bad[i].msg && !strstr(err, "invalid regex"))
            fail_msg("schema %s: got \"%s\"", bad[i].schema, err);
    }
    /* Unknown keywords and formats are ignored; so is everything beside a $ref. */
    assert_int_equal(compile_text("{\"x-ui\": 1, \"format\": \"color\", \"title\": 2}", err, sizeof err), 0);
    assert_int_equal(compile_text("{\"$ref\": \"#/definitions/a\", \"type\": 5, \"definitions\": {\"a\": {}}}",
                                  err, sizeof err), 0);
}

static void test_recursion_guards(void **state)
{
    (void)state;
    char err[256];
    /* Recursion that never moves into the instance is refused when compiling. */
    assert_int_equal(compile_text("{\"$ref\": \"#\"}", err, sizeof err), -1);
    assert_string_equal(err, "#/$ref: $ref \"#\" recurses without consuming any of the instance");
    assert_int_equal(compile_text("{\"definitions\": {\"a\": {\"anyOf\": [{\"$ref\": \"#/definitions/b\"}]},"
                                  " \"b\": {\"not\": {\"$ref\": \"#/definitions/a\"}}}}", err, sizeof err), -1);
    assert_non_null(strstr(err, "recurses without consuming any of the instance"));
    assert_int_equal(compile_text("{\"items\": [{\"$ref\": \"#/items/1\"}, {\"$ref\": \"#/items/0\"}]}",
                                  err, sizeof err), -1);
    assert_int_equal(compile_text("{\"dependencies\": {\"a\": {\"allOf\": [{\"$ref\": \"#\"}]}}}", err, sizeof err), -1);

    /* A finite but absurdly long chain of $refs at one location stops at the cap. */
    char chain[8192];
    size_t n = (size_t)snprintf(chain, sizeof chain, "{\"$ref\": \"#/definitions/d0\", \"definitions\": {");
    for (int i = 0; i < JSCHEMA_MAX_REF_CHAIN + 1; i++)
        n += (size_t)snprintf(chain + n, sizeof chain - n, "\"d%d\": {\"$ref\": \"#/definitions/d%d\"}, ", i, i + 1);
    snprintf(chain + n, sizeof chain - n, "\"d%d\": {\"type\": \"integer\"}}}", JSCHEMA_MAX_REF_CHAIN + 1);
    jschema *s = compile_ok(chain);
    assert_int_equal(check(s, "1", err, sizeof err), -1);
    assert_string_equal(err, "(root): more than 64 $refs in a row without progress (recursive schema)");
    jschema_free(s);

    /* Legitimate recursion follows the instance down, up to the depth cap. */
    s = compile_ok("{\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}");
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < 100; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_int_equal(jschema_validate(s, deep, err, sizeof err), 0);
    json_array_append_new(cur, json_integer(1));
    assert_int_equal(jschema_validate(s, deep, err, sizeof err), 1);
    assert_string_equal(err, "/0/0/0/0/0/0/0/0/...(85 levels).../0/0/0/0/0/0/0/0: must be array (type)");
    json_array_clear(cur);
    for (int i = 0; i < 5000; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_int_equal(jschema_validate(s, deep, err, sizeof err), -1);
    assert_non_null(strstr(err, "/0/0/0/0/0/0/0/0/...("));
    assert_non_null(strstr(err, "levels).../0/0/0/0/0/0/0/0: validation nested more than 512"));
    json_decref(deep);
    jschema_free(s);

    /* Comparisons of absurdly deep values stop instead of overflowing the stack. */
    s = compile_ok("{\"uniqueItems\": true}");
    json_t *arr = json_array(), *a = json_array(), *b = json_array();
    json_t *ca = a, *cb = b;
    for (int i = 0; i < 3000; i++) {
        json_t *na = json_array(), *nb = json_array();
        json_array_append_new(ca, na);
        json_array_append_new(cb, nb);
        ca = na;
        cb = nb;
    }
    json_array_append_new(arr, a);
    json_array_append_new(arr, b);
    assert_int_equal(jschema_validate(s, arr, err, sizeof err), -1);
    json_decref(arr);
    jschema_free(s);

    /* A schema nested deeper than the cap is refused at compile time. */
    char *text = malloc(20 * 300 + 16);
    assert_non_null(text);
    size_t o = 0;
    for (int i = 0; i < 300; i++)
        o += (size_t)sprintf(text + o, "{\"not\":");
    o += (size_t)sprintf(text + o, "{}");
    for (int i = 0; i < 300; i++)
        text[o++] = '}';
    text[o] = '\0';
    assert_int_equal(compile_text(text, err, sizeof err), -1);
    assert_non_null(strstr(err, "levels deep"));
    free(text);
}

static void test_numbers(void **state)
{
    (void)state;
    char err[256];
    jschema *s = compile_ok("{\"multipleOf\": 0.01}");
    assert_int_equal(check(s, "19.99", err, sizeof err), 0);
    assert_int_equal(check(s, "0.07", err, sizeof err), 0);
    assert_int_equal(check(s, "1e10", err, sizeof err), 0);
    assert_int_equal(check(s, "0.075", err, sizeof err), 1);
    jschema_free(s);
    s = compile_ok("{\"multipleOf\": 0.1}");
    assert_int_equal(check(s, "0.3", err, sizeof err), 0);
    assert_int_equal(check(s, "-4.2", err, sizeof err), 0);
    jschema_free(s);
    s = compile_ok("{\"multipleOf\": 3}");
    assert_int_equal(check(s, "9007199254740993", err, sizeof err), 0); /* 2^53 + 1 = 3 * ... */
    assert_int_equal(check(s, "9007199254740994", err, sizeof err), 1);
    assert_int_equal(check(s, "-9223372036854775806", err, sizeof err), 0);
    assert_int_equal(check(s, "-9223372036854775808", err, sizeof err), 1);
    assert_int_equal(check(s, "6.0", err, sizeof err), 0);
    assert_int_equal(check(s, "1e300", err, sizeof err), 1);
    jschema_free(s);
    s = compile_ok("{\"multipleOf\": 0.123456789}");
    assert_int_equal(check(s, "1e308", err, sizeof err), 1);
    jschema_free(s);
    /* Exact comparison of int64 against a double bound. */
    s = compile_ok("{\"maximum\": 9007199254740992.0}");
    assert_int_equal(check(s, "9007199254740992", err, sizeof err), 0);
    assert_int_equal(check(s, "9007199254740993", err, sizeof err), 1);
    jschema_free(s);
    s = compile_ok("{\"type\": \"integer\", \"enum\": [1, 2.5, {\"a\": [1.0]}]}");
    assert_int_equal(check(s, "1.0", err, sizeof err), 0);
    assert_int_equal(check(s, "{\"a\": [1]}", err, sizeof err), 1); /* enum ok, not an integer */
    jschema_free(s);
    s = compile_ok("{\"enum\": [1, 2.5, {\"a\": [1.0]}]}");
    assert_int_equal(check(s, "{\"a\": [1]}", err, sizeof err), 0);
    assert_int_equal(check(s, "2.50", err, sizeof err), 0);
    assert_int_equal(check(s, "true", err, sizeof err), 1);
    jschema_free(s);
}

static void test_unique_large(void **state)
{
    (void)state;
    char err[256];
    jschema *s = compile_ok("{\"uniqueItems\": true}");
    json_t *arr = json_array();
    for (int i = 0; i < 20000; i++)
        json_array_append_new(arr, json_integer(i));
    json_array_append_new(arr, json_pack("{s:i,s:[i,s]}", "a", 1, "b", 2, "x"));
    json_array_append_new(arr, json_pack("{s:[f,s],s:f}", "b", 2.0, "x", "a", 1.0));
    assert_int_equal(jschema_validate(s, arr, err, sizeof err), 1);
    assert_string_equal(err, "(root): items 20000 and 20001 are equal (uniqueItems)");
    json_array_remove(arr, 20001);
    assert_int_equal(jschema_validate(s, arr, err, sizeof err), 0);
    json_array_append_new(arr, json_real(17.0));
    assert_int_equal(jschema_validate(s, arr, err, sizeof err), 1);
    assert_string_equal(err, "(root): items 17 and 20001 are equal (uniqueItems)");
    json_decref(arr);
    jschema_free(s);
}

static void test_regex_semantics(void **state)
{
    (void)state;
    char err[256];
    jschema *s = compile_ok("{\"pattern\": \"^a.c$\"}");
    assert_int_equal(check(s, "\"abc\"", err, sizeof err), 0);
    assert_int_equal(check(s, "\"abc\\n\"", err, sizeof err), 1); /* $ is end only */
    assert_int_equal(check(s, "\"a\\rc\"", err, sizeof err), 1);  /* . excludes \r */
    assert_int_equal(check(s, "\"a\xc3\xa9" "c\"", err, sizeof err), 0); /* one code point */
    jschema_free(s);
    s = compile_ok("{\"pattern\": \"^\\\\u00e9[^]?x[]?$\"}");
    assert_int_equal(check(s, "\"\xc3\xa9x\"", err, sizeof err), 0);
    assert_int_equal(check(s, "\"\xc3\xa9\\nx\"", err, sizeof err), 0); /* [^] is any char */
    assert_int_equal(check(s, "\"\xc3\xa9xxx\"", err, sizeof err), 1);
    jschema_free(s);
    s = compile_ok("{\"maxLength\": 2, \"minLength\": 2}");
    assert_int_equal(check(s, "\"\xf0\x9f\x92\xa9\xc3\xa9\"", err, sizeof err), 0);
    assert_int_equal(check(s, "\"abc\"", err, sizeof err), 1);
    jschema_free(s);
    /* Backtracking blow-up ends as an internal error, not a hung thread. */
    s = compile_ok("{\"pattern\": \"^(a|a)*$\"}");
    char inst[80];
    memset(inst, 'a', sizeof inst);
    inst[0] = '"';
    inst[sizeof inst - 3] = 'b';
    inst[sizeof inst - 2] = '"';
    inst[sizeof inst - 1] = '\0';
    assert_int_equal(check(s, inst, err, sizeof err), -1);
    assert_non_null(strstr(err, "regex match failed"));
    jschema_free(s);
}

static void test_formats(void **state)
{
    (void)state;
    static const struct {
        const char *fmt, *value;
        int valid;
    } cases[] = {
        {"date-time", "2026-02-28T12:00:60Z", 0},
        {"date-time", "2026-02-28T23:59:60Z", 1},
        {"date-time", "2024-02-29T00:00:00.5+01:00", 1},
        {"date-time", "1998-12-31T23:59:60Z", 1},
        {"date-time", "1998-12-31T15:59:60-08:00", 1},
        {"date-time", "2026-11-25T09:03:59", 0},
        {"hostname", "a.b-c.example", 1},
        {"hostname", "a..b", 0},
        {"ipv4", "10.0.0.01", 0},
        {"ipv6", "::ffff:192.0.2.1", 1},
        {"ipv6", "fe80::1%eth0", 0},
        {"email", "\"a b\"@example.com", 1},
        {"email", "a..b@example.com", 0},
        {"email", "a@[192.0.2.1]", 1},
        {"uri", "https://user@[v7.abc]:8443/p?q#f", 1},
        {"uri", "https://h/%zz", 0},
        {"uri", "https://h:80x/", 0},
        {"regex", "^[a-z]+$", 1},
        {"regex", "a{1}+", 0},
    };
    char text[256], err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "{\"format\": \"%s\"}", cases[i].fmt);
        jschema *s = compile_ok(text);
        json_t *v = json_string(cases[i].value);
        int rc = jschema_validate(s, v, err, sizeof err);
        json_decref(v);
        jschema_free(s);
        if (rc != !cases[i].valid)
            fail_msg("%s \"%s\": rc %d", cases[i].fmt, cases[i].value, rc);
    }
}

/* The compiled schema is shared, read-only: many threads validate at once. */
typedef struct {
    const jschema *s;
    int bad;
} thread_arg;

static void *validate_loop(void *p)
{
    thread_arg *a = p;
    json_t *good = json_loads("{\"name\": \"abc\", \"n\": [1, 2, 3], \"t\": {\"name\": \"x\"}}", 0, NULL);
    json_t *bad = json_loads("{\"name\": \"ab1\", \"n\": [1, 2, 2]}", 0, NULL);
    char err[128];
    for (int i = 0; i < 2000; i++) {
        if (jschema_validate(a->s, good, err, sizeof err) != 0)
            a->bad++;
        if (jschema_validate(a->s, bad, err, sizeof err) != 1 ||
            strcmp(err, "/name: must match the pattern \"^[a-z]+$\" (pattern)") != 0)
            a->bad++;
    }
    json_decref(good);
    json_decref(bad);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    jschema *s = compile_ok("{\"properties\": {\"name\": {\"pattern\": \"^[a-z]+$\"},"
                            " \"n\": {\"uniqueItems\": true}, \"t\": {\"$ref\": \"#\"}},"
                            " \"patternProperties\": {\"^x-\": {\"type\": \"string\"}}}");
    pthread_t th[8];
    thread_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (thread_arg){.s = s};
        assert_int_equal(pthread_create(&th[i], NULL, validate_loop, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    jschema_free(s);
}

static void test_schema_is_copied(void **state)
{
    (void)state;
    json_t *j = json_loads("{\"properties\": {\"a\": {\"type\": \"string\"}}}", 0, NULL);
    jschema *s = NULL;
    char err[128];
    assert_int_equal(jschema_compile(j, &s, err, sizeof err), 0);
    json_object_clear(j);
    json_decref(j);
    assert_int_equal(check(s, "{\"a\": 1}", err, sizeof err), 1);
    jschema_free(s);
    jschema_free(NULL);
}

/* ---- runner ------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the *.json files of dir (sorted) to the file list. */
static int list_dir(const char *root, const char *sub, suite_file **files, size_t *n)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s%s%s", root, sub ? "/" : "", sub ? sub : "");
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    size_t cnt = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char **more = realloc(names, (cnt + 1) * sizeof *names);
        if (!more)
            abort();
        names = more;
        names[cnt++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, cnt, sizeof *names, cmp_str);
    for (size_t i = 0; i < cnt; i++) {
        suite_file *grown = realloc(*files, (*n + 1) * sizeof **files);
        if (!grown)
            abort();
        *files = grown;
        suite_file *f = &grown[(*n)++];
        size_t pl = strlen(dir) + strlen(names[i]) + 2, rl = strlen(names[i]) + (sub ? strlen(sub) + 2 : 1);
        f->path = malloc(pl);
        f->rel = malloc(rl);
        snprintf(f->path, pl, "%s/%s", dir, names[i]);
        snprintf(f->rel, rl, "%s%s%s", sub ? sub : "", sub ? "/" : "", names[i]);
        f->optional = sub != NULL;
        free(names[i]);
    }
    free(names);
    return 0;
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : JSONSCHEMA_SUITE_DIR;
    suite_file *files = NULL;
    size_t nfiles = 0;
    if (list_dir(root, NULL, &files, &nfiles) || nfiles == 0) {
        fprintf(stderr, "no JSON Schema Test Suite files in %s\n", root);
        return 1;
    }
    if (list_dir(root, "optional", &files, &nfiles))
        fprintf(stderr, "note: no optional directory in %s\n", root);

    static const struct CMUnitTest own[] = {
        cmocka_unit_test(test_error_messages),  cmocka_unit_test(test_remote_ref_rejected),
        cmocka_unit_test(test_invalid_schemas), cmocka_unit_test(test_recursion_guards),
        cmocka_unit_test(test_numbers),         cmocka_unit_test(test_unique_large),
        cmocka_unit_test(test_regex_semantics), cmocka_unit_test(test_formats),
        cmocka_unit_test(test_threads),         cmocka_unit_test(test_schema_is_copied),
    };
    size_t nown = sizeof own / sizeof own[0];
    struct CMUnitTest *tests = calloc(nfiles + nown, sizeof *tests);
    for (size_t i = 0; i < nfiles; i++) {
        tests[i] = (struct CMUnitTest){.name = files[i].rel,
                                       .test_func = test_suite_file,
                                       .initial_state = &files[i]};
    }
    memcpy(tests + nfiles, own, sizeof own);
    int failed = _cmocka_run_group_tests("jsonschema", tests, nfiles + nown, NULL, NULL);

    printf("draft4 required: %d passed, %d failed, %d refused (remote $ref)\n",
           total_required.passed, total_required.failed, total_required.refused);
    printf("draft4 optional: %d passed, %d failed (%d known-unsupported)\n", total_optional.passed,
           total_optional.failed, total_optional.expected_fail);
    printf("jsonschema: %s (%d unexpected suite results, %d failed tests)\n",
           failed ? "FAIL" : "OK", total_required.unexpected + total_optional.unexpected, failed);

    for (size_t i = 0; i < nfiles; i++) {
        free(files[i].path);
        free(files[i].rel);
    }
    free(files);
    free(tests);
    return failed ? 1 : 0;
}
