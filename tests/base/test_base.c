/* Unit tests of base: arenas, capped buffers, encodings, ids, hashes, time formatting and
 * the small string helpers every module leans on. Vectors come from the RFCs that define
 * the encodings and hashes (RFC 4648, FIPS 180-2, RFC 4231). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"

/* ---------------------------------------------------------------- arena */

static void test_arena_alignment(void **state)
{
    (void)state;
    arena a;
    arena_init(&a, 0);
    static const size_t sizes[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 100, 4095, 4096, 4097, 9000, 1};
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        unsigned char *p = arena_alloc(&a, sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0x5a, sizes[i]); /* the whole size is usable (ASan checks the bounds) */
    }
    /* used counts rounded sizes, so it stays a multiple of 16 too */
    assert_int_equal(a.used % 16, 0);
    arena_free(&a);
    assert_null(a.head);
    assert_int_equal(a.used, 0);
}

static void test_arena_limit(void **state)
{
    (void)state;
    arena a;
    arena_init(&a, 1000);
    void *p1 = arena_alloc(&a, 512);
    assert_non_null(p1);
    assert_int_equal(a.used, 512);
    /* 512 + 512 > 1000: refused, and the refusal does not count */
    assert_null(arena_alloc(&a, 512));
    assert_int_equal(a.used, 512);
    assert_null(arena_zalloc(&a, 600));
    assert_null(arena_strndup(&a, "x", 600));
    /* what still fits is handed out */
    void *p2 = arena_alloc(&a, 480);
    assert_non_null(p2);
    assert_int_equal(a.used, 992);
    assert_null(arena_alloc(&a, 9)); /* rounds to 16: 1008 > 1000 */
    assert_null(arena_printf(&a, "%s", "0123456789"));
    arena_free(&a);

    /* an exact fit at the limit is allowed */
    arena_init(&a, 64);
    assert_non_null(arena_alloc(&a, 64));
    assert_null(arena_alloc(&a, 1));
    arena_free(&a);

    /* sizes that overflow when rounded are refused, limited or not */
    arena_init(&a, 0);
    assert_null(arena_alloc(&a, SIZE_MAX));
    assert_null(arena_alloc(&a, SIZE_MAX - 3));
    assert_int_equal(a.used, 0);
    arena_free(&a);
}

static void test_arena_many_allocs(void **state)
{
    (void)state;
    enum { N = 20000 };
    arena a;
    arena_init(&a, 0);
    unsigned char **ptrs = calloc(N, sizeof *ptrs);
    assert_non_null(ptrs);
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + i % 97;
        ptrs[i] = arena_alloc(&a, n);
        assert_non_null(ptrs[i]);
        memset(ptrs[i], (int)(i & 0xff), n);
    }
    /* no allocation overlapped another: every pattern is intact */
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + i % 97;
        for (size_t j = 0; j < n; j++)
            assert_int_equal(ptrs[i][j], i & 0xff);
    }
    /* a large allocation after many small ones gets a block of its own */
    unsigned char *big = arena_alloc(&a, 3u << 20);
    assert_non_null(big);
    memset(big, 0xee, 3u << 20);
    assert_int_equal(ptrs[0][0], 0);
    free(ptrs);
    arena_free(&a);
}

static void test_arena_strings_and_zalloc(void **state)
{
    (void)state;
    arena a;
    arena_init(&a, 0);
    /* dirty memory first, so that zalloc has something to clear if it reuses it */
    unsigned char *dirty = arena_alloc(&a, 2000);
    assert_non_null(dirty);
    memset(dirty, 0xaa, 2000);
    arena_free(&a);
    arena_init(&a, 0);
    unsigned char *z = arena_zalloc(&a, 2000);
    assert_non_null(z);
    for (size_t i = 0; i < 2000; i++)
        assert_int_equal(z[i], 0);

    char *s = arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    assert_null(arena_strdup(&a, NULL));
    char *t = arena_strndup(&a, "hello world", 5);
    assert_string_equal(t, "hello");
    char *u = arena_printf(&a, "%s-%d-%04x", "id", 42, 0xbeef);
    assert_string_equal(u, "id-42-beef");
    /* a long formatted string spans more than one minimum block */
    char *l = arena_printf(&a, "%9000s|", "x");
    assert_non_null(l);
    assert_int_equal(strlen(l), 9001);
    assert_int_equal(l[8999], 'x');
    assert_int_equal(l[9000], '|');
    /* earlier strings survive later allocations */
    assert_string_equal(s, "hello");
    assert_string_equal(u, "id-42-beef");
    arena_free(&a);
}

/* ---------------------------------------------------------------- buf */

static void test_buf_basic(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(buf_append(&b, "\0def", 4), 0); /* binary-safe */
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "abc\0def", 7);
    assert_int_equal(b.data[7], '\0');
    assert_int_equal(buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 7);
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_printf(&b, "%d+%d=%s", 2, 2, "four"), 0);
    assert_string_equal(buf_cstr(&b), "2+2=four");
    /* a shorter append over stale bytes still ends where it should */
    buf_reset(&b);
    assert_int_equal(buf_append(&b, "xy", 2), 0);
    assert_string_equal(buf_cstr(&b), "xy");
    assert_int_equal(buf_puts(&b, "z"), 0);
    assert_string_equal(buf_cstr(&b), "xyz");
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_buf_cap(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    /* 5 + 6 > 10: refused and nothing is appended */
    assert_int_equal(buf_append(&b, "world!", 6), OSB_E_TOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(buf_cstr(&b), "hello");
    assert_int_equal(buf_printf(&b, "%s", "123456"), OSB_E_TOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(buf_cstr(&b), "hello");
    assert_int_equal(buf_puts(&b, "abcdefghijk"), OSB_E_TOOBIG);
    assert_string_equal(buf_cstr(&b), "hello");
    /* exactly up to the cap is fine, one more byte is not */
    assert_int_equal(buf_printf(&b, "%05d", 42), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(buf_cstr(&b), "hello00042");
    assert_int_equal(buf_append(&b, "x", 1), OSB_E_TOOBIG);
    assert_int_equal(buf_printf(&b, "x"), OSB_E_TOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(buf_cstr(&b), "hello00042");
    /* empty appends still succeed at the cap */
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 10);
    /* after a reset the full cap is available again */
    buf_reset(&b);
    assert_int_equal(buf_puts(&b, "0123456789"), 0);
    assert_int_equal(buf_puts(&b, "a"), OSB_E_TOOBIG);
    buf_free(&b);
}

static void test_buf_take(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, "owned"), 0);
    char *p = buf_take(&b);
    assert_non_null(p);
    assert_string_equal(p, "owned");
    /* the buffer is empty and no longer refers to p */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_puts(&b, "again"), 0);
    assert_true(b.data != p);
    assert_string_equal(buf_cstr(&b), "again");
    assert_string_equal(p, "owned");
    free(p);
    buf_free(&b);

    /* taking an empty buffer gives a freeable empty string, not NULL */
    buf_init(&b, 0);
    char *e = buf_take(&b);
    assert_non_null(e);
    assert_string_equal(e, "");
    free(e);
    buf_free(&b);
}

static void test_buf_printf_growth(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 1 << 20);
    char expect[8192];
    size_t elen = 0;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(buf_printf(&b, "%d,", i), 0);
        elen += (size_t)snprintf(expect + elen, sizeof expect - elen, "%d,", i);
    }
    assert_int_equal(b.len, elen);
    assert_string_equal(buf_cstr(&b), expect);
    assert_true(b.cap > b.len);
    /* one printf far larger than the current capacity */
    size_t before = b.len;
    assert_int_equal(buf_printf(&b, "%5000s", "y"), 0);
    assert_int_equal(b.len, before + 5000);
    assert_int_equal(b.data[b.len - 1], 'y');
    assert_int_equal(b.data[before], ' ');
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data, expect, elen);
    buf_free(&b);
}

/* ---------------------------------------------------------------- base64 */

static void test_b64_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *std, *url;
    } v[] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        char out[32];
        unsigned char dec[32];
        size_t n = strlen(v[i].in);
        assert_int_equal(b64_encoded_len(n), strlen(v[i].std) + 1);
        assert_int_equal(b64_encode(v[i].in, n, out, sizeof out), (int)strlen(v[i].std));
        assert_string_equal(out, v[i].std);
        assert_int_equal(b64url_encode(v[i].in, n, out, sizeof out), (int)strlen(v[i].url));
        assert_string_equal(out, v[i].url);
        assert_int_equal(b64_decode(v[i].std, strlen(v[i].std), dec, sizeof dec), (int)n);
        assert_memory_equal(dec, v[i].in, n);
        assert_int_equal(b64url_decode(v[i].url, strlen(v[i].url), dec, sizeof dec), (int)n);
        assert_memory_equal(dec, v[i].in, n);
    }
    /* the two alphabets differ in the last two characters */
    static const unsigned char hi[] = {0xfb, 0xff, 0xbf};
    char out[16];
    assert_int_equal(b64_encode(hi, 3, out, sizeof out), 4);
    assert_string_equal(out, "+/+/");
    assert_int_equal(b64url_encode(hi, 3, out, sizeof out), 4);
    assert_string_equal(out, "-_-_");
}

static void test_b64_round_trip(void **state)
{
    (void)state;
    unsigned char in[200], dec[200];
    char enc[300];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        int len = b64_encode(in, n, enc, sizeof enc);
        assert_int_equal(len, (int)(b64_encoded_len(n) - 1));
        assert_int_equal(b64_decode(enc, (size_t)len, dec, sizeof dec), (int)n);
        assert_memory_equal(dec, in, n);
        len = b64url_encode(in, n, enc, sizeof enc);
        assert_true(len >= 0);
        assert_null(memchr(enc, '=', (size_t)len));
        assert_null(memchr(enc, '+', (size_t)len));
        assert_null(memchr(enc, '/', (size_t)len));
        assert_int_equal(b64url_decode(enc, (size_t)len, dec, sizeof dec), (int)n);
        assert_memory_equal(dec, in, n);
    }
}

static void test_b64_rejects(void **state)
{
    (void)state;
    unsigned char dec[64];
    /* bad characters */
    assert_int_equal(b64_decode("Zm9v!", 5, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zm 9v", 5, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zm9-", 4, dec, sizeof dec), OSB_E_INVAL); /* url char */
    assert_int_equal(b64_decode("Zm9_", 4, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64url_decode("Zm+v", 4, dec, sizeof dec), OSB_E_INVAL); /* std char */
    assert_int_equal(b64url_decode("Zm/v", 4, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64url_decode("Zm9v\n", 5, dec, sizeof dec), OSB_E_INVAL);
    /* the length argument is honoured: a bad byte inside it counts, one after it does not */
    assert_int_equal(b64_decode("Zm9v*", 4, dec, sizeof dec), 3);
    assert_memory_equal(dec, "foo", 3);
    /* padding: required by the standard decoder, refused by the url one */
    assert_int_equal(b64url_decode("Zg==", 4, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64url_decode("Zm8=", 4, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zg", 2, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zg=", 3, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zg===", 5, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zm9v=", 5, dec, sizeof dec), OSB_E_INVAL);
    /* impossible lengths and non-canonical trailing bits */
    assert_int_equal(b64url_decode("Z", 1, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64url_decode("Zh", 2, dec, sizeof dec), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zh==", 4, dec, sizeof dec), OSB_E_INVAL);
}

/* One value, one spelling: bytes outside the alphabet (0x80 and up included) are refused. */
static void test_b64_rejects_high_bytes(void **state)
{
    (void)state;
    unsigned char out[16];
    char in[] = "Zm9v\x80";
    assert_int_equal(b64url_decode(in, 5, out, sizeof out), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zm9v\xff\xff\xff\xff", 8, out, sizeof out), OSB_E_INVAL);
    assert_int_equal(b64url_decode("Zm9v+A", 6, out, sizeof out), OSB_E_INVAL);
    assert_int_equal(b64_decode("Zm9v-A==", 8, out, sizeof out), OSB_E_INVAL);
    assert_int_equal(b64url_decode("Zm9vYg", 6, out, sizeof out), 4);
}

static void test_b64_small_output(void **state)
{
    (void)state;
    char out[16];
    unsigned char dec[16];
    /* encoders need room for the NUL too */
    assert_int_equal(b64_encode("foo", 3, out, 4), OSB_E_TOOBIG);
    assert_int_equal(b64_encode("foo", 3, out, 5), 4);
    assert_int_equal(b64url_encode("foo", 3, out, 4), OSB_E_TOOBIG);
    assert_int_equal(b64url_encode("fo", 2, out, 3), OSB_E_TOOBIG);
    assert_int_equal(b64url_encode("fo", 2, out, 4), 3);
    assert_string_equal(out, "Zm8");
    /* decoders: output one byte short of the decoded length */
    assert_int_equal(b64_decode("Zm9vYmFy", 8, dec, 5), OSB_E_TOOBIG);
    assert_int_equal(b64_decode("Zm9vYg==", 8, dec, 3), OSB_E_TOOBIG);
    assert_int_equal(b64_decode("Zm9vYmFy", 8, dec, 6), 6);
    assert_int_equal(b64url_decode("Zm9vYmFy", 8, dec, 5), OSB_E_TOOBIG);
    assert_int_equal(b64url_decode("Zm9vYmE", 7, dec, 5), 5);
    /* unpadded input whose decoded length is not a multiple of 3 */
    assert_int_equal(b64url_decode("Zm9vYmE", 7, dec, 4), OSB_E_TOOBIG);
    assert_int_equal(b64url_decode("Zm8", 3, dec, 1), OSB_E_TOOBIG);
}

/* ---------------------------------------------------------------- url, hex */

static void test_url_decode(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"", ""},
        {"plain", "plain"},
        {"a%2Fb", "a/b"},
        {"a%2fb", "a/b"},
        {"a+b", "a+b"},
        {"%41%42%43", "ABC"},
        {"%252F", "%2F"}, /* decoded once, not twice */
        {"crn%3Av1%3Abluemix%3Apublic", "crn:v1:bluemix:public"},
        {"%e2%82%ac", "\xe2\x82\xac"},
        {"%7E", "~"},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        char s[64];
        snprintf(s, sizeof s, "%s", ok[i].in);
        assert_int_equal(url_decode_inplace(s), (int)strlen(ok[i].out));
        assert_string_equal(s, ok[i].out);
    }
    static const char *bad[] = {"%",  "%2",  "a%",    "100%", "%G1", "%1G",
                                "%%", "%00", "a%00b", "% 1",  "%-1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char s[64];
        snprintf(s, sizeof s, "%s", bad[i]);
        assert_int_equal(url_decode_inplace(s), OSB_E_INVAL);
    }
}

static void test_hex_encode(void **state)
{
    (void)state;
    static const unsigned char in[] = {0x00, 0x01, 0x0f, 0x10, 0xab, 0xcd, 0xef, 0xff};
    char out[2 * sizeof in + 1];
    memset(out, 'z', sizeof out);
    hex_encode(in, sizeof in, out);
    assert_string_equal(out, "00010f10abcdefff");
    out[0] = 'z';
    hex_encode(in, 0, out);
    assert_string_equal(out, "");
}

/* ---------------------------------------------------------------- str */

static void test_str_to_i64(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool neg;
        int64_t v;
    } ok[] = {
        {"0", false, 0},
        {"7", false, 7},
        {"007", false, 7},
        {"123456789", false, 123456789},
        {"9223372036854775807", false, INT64_MAX},
        {"-5", true, -5},
        {"-0", true, 0},
        {"5", true, 5},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775807", true, INT64_MAX},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        int64_t v = 12345;
        assert_int_equal(str_to_i64(ok[i].s, ok[i].neg, &v), 0);
        assert_true(v == ok[i].v);
    }
    static const struct {
        const char *s;
        bool neg;
        int rc;
    } bad[] = {
        {"", false, OSB_E_INVAL},
        {"", true, OSB_E_INVAL},
        {"-", true, OSB_E_INVAL},
        {"-5", false, OSB_E_INVAL},
        {"-0", false, OSB_E_INVAL},
        {"+5", false, OSB_E_INVAL},
        {"+5", true, OSB_E_INVAL},
        {" 5", false, OSB_E_INVAL},
        {"5 ", false, OSB_E_INVAL},
        {"12a", false, OSB_E_INVAL},
        {"0x10", false, OSB_E_INVAL},
        {"1.5", false, OSB_E_INVAL},
        {"--5", true, OSB_E_INVAL},
        {"9223372036854775808", false, OSB_E_TOOBIG},
        {"9223372036854775808", true, OSB_E_TOOBIG},
        {"-9223372036854775809", true, OSB_E_TOOBIG},
        {"18446744073709551615", false, OSB_E_TOOBIG},
        {"18446744073709551616", false, OSB_E_TOOBIG},
        {"99999999999999999999999", true, OSB_E_TOOBIG},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = 12345;
        int rc = str_to_i64(bad[i].s, bad[i].neg, &v);
        if (rc != bad[i].rc)
            fail_msg("str_to_i64(\"%s\", %d) = %d, want %d", bad[i].s, bad[i].neg, rc, bad[i].rc);
        assert_true(v == 12345); /* untouched on failure */
    }
    int64_t v = 1;
    assert_int_equal(str_to_i64(NULL, true, &v), OSB_E_INVAL);
}

static void test_str_helpers(void **state)
{
    (void)state;
    assert_true(str_eq("a", "a"));
    assert_false(str_eq("a", "b"));
    assert_false(str_eq("a", NULL));
    assert_false(str_eq(NULL, "a"));
    assert_true(str_eq(NULL, NULL));
    assert_true(str_has_prefix("/v2/catalog", "/v2/"));
    assert_true(str_has_prefix("abc", ""));
    assert_false(str_has_prefix("/v2", "/v2/"));
    assert_false(str_has_prefix("/v1/x", "/v2/"));
    assert_string_equal(base_strerror(OSB_E_OK), "ok");
    assert_string_equal(base_strerror(OSB_E_TOOBIG), "too large");
    assert_string_equal(base_strerror(OSB_E_CONFLICT), "conflict");
    assert_string_equal(base_strerror(12345), "unknown error");
}

/* ---------------------------------------------------------------- ids */

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void test_uuid_v4(void **state)
{
    (void)state;
    char prev[37] = "";
    for (int n = 0; n < 200; n++) {
        char u[37];
        memset(u, 'x', sizeof u);
        uuid_v4(u);
        assert_int_equal(strlen(u), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                assert_int_equal(u[i], '-');
            else
                assert_true(is_lower_hex(u[i]));
        }
        assert_int_equal(u[14], '4');           /* version */
        assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
        assert_true(uuid_valid(u));
        assert_string_not_equal(u, prev);
        memcpy(prev, u, sizeof u);
    }
}

static void test_uuid_v7(void **state)
{
    (void)state;
    char a[37], b[37];
    int64_t before = time_now_ms();
    uuid_v7(a);
    assert_true(uuid_valid(a));
    assert_int_equal(a[14], '7');
    assert_non_null(strchr("89ab", a[19]));
    /* the first 48 bits are the milliseconds it was made in */
    char hex[13];
    memcpy(hex, a, 8);
    memcpy(hex + 8, a + 9, 4);
    hex[12] = '\0';
    int64_t ms = (int64_t)strtoll(hex, NULL, 16);
    assert_true(ms >= before && ms <= time_now_ms());
    /* ids of later milliseconds sort after earlier ones */
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL);
    uuid_v7(b);
    assert_true(strcmp(a, b) < 0);
    assert_string_not_equal(a, b);
}

static void test_uuid_valid(void **state)
{
    (void)state;
    assert_true(uuid_valid("123e4567-e89b-42d3-a456-426614174000"));
    assert_true(uuid_valid("00000000-0000-0000-0000-000000000000"));
    assert_false(uuid_valid(NULL));
    assert_false(uuid_valid(""));
    assert_false(uuid_valid("123e4567-e89b-42d3-a456-42661417400"));   /* short */
    assert_false(uuid_valid("123e4567-e89b-42d3-a456-4266141740000")); /* long */
    assert_false(uuid_valid("123e4567e89b-42d3-a456-4266141740000"));  /* hyphen moved */
    assert_false(uuid_valid("123e4567-e89b-42d3-a456_426614174000"));
    assert_false(uuid_valid("123e4567-e89b-42d3-a456-42661417400g"));
    assert_false(uuid_valid("{23e4567-e89b-42d3-a456-42661417400}"));
    assert_false(uuid_valid("123e4567-e89b-42d3-a456-42661417400\n"));
}

/* ---------------------------------------------------------------- secrets */

static void test_ct_equal(void **state)
{
    (void)state;
    unsigned char a[64], b[64];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (unsigned char)i;
    assert_true(ct_equal(a, b, sizeof a));
    assert_true(ct_equal(a, b, 0));
    b[0] ^= 1;
    assert_false(ct_equal(a, b, sizeof a));
    assert_true(ct_equal(a + 1, b + 1, sizeof a - 1));
    b[0] ^= 1;
    b[63] ^= 0x80;
    assert_false(ct_equal(a, b, sizeof a));
    assert_true(ct_equal(a, b, 63));
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    unsigned char d[32];
    char hex[65];
    sha256("abc", 3, d);
    hex_encode(d, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256("", 0, d);
    hex_encode(d, 32, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256(two_blocks, strlen(two_blocks), d);
    hex_encode(d, 32, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_hmac_sha256_vectors(void **state)
{
    (void)state;
    unsigned char d[32];
    char hex[65];
    /* RFC 4231 test case 1 */
    unsigned char key1[20];
    memset(key1, 0x0b, sizeof key1);
    hmac_sha256(key1, sizeof key1, "Hi There", 8, d);
    hex_encode(d, 32, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* RFC 4231 test case 2 */
    static const char msg2[] = "what do ya want for nothing?";
    hmac_sha256("Jefe", 4, msg2, strlen(msg2), d);
    hex_encode(d, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 6: a key longer than the block is hashed first */
    unsigned char key6[131];
    memset(key6, 0xaa, sizeof key6);
    static const char msg6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_sha256(key6, sizeof key6, msg6, strlen(msg6), d);
    hex_encode(d, 32, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_secure_wipe(void **state)
{
    (void)state;
    unsigned char s[48];
    memset(s, 0x77, sizeof s);
    secure_wipe(s + 8, 32);
    for (size_t i = 0; i < sizeof s; i++)
        assert_int_equal(s[i], (i >= 8 && i < 40) ? 0 : 0x77);
}

/* ---------------------------------------------------------------- time */

static void test_time_format(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *s;
    } v[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {999, "1970-01-01T00:00:00.999Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-999, "1969-12-31T23:59:59.001Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {-1001, "1969-12-31T23:59:58.999Z"},
        {-31536000001, "1968-12-31T23:59:59.999Z"},
        {951782400000, "2000-02-29T00:00:00.000Z"},
        {1234567890123, "2009-02-13T23:31:30.123Z"},
        {1764061439123, "2025-11-25T09:03:59.123Z"},
        {253402300799999, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        char out[32];
        memset(out, 'x', sizeof out);
        time_format_rfc3339(v[i].ms, out);
        assert_string_equal(out, v[i].s);
    }
}

/* time_month_of agrees with gmtime_r, at month edges and at random instants. */
static void test_time_month_of(void **state)
{
    (void)state;
    char m[8];
    time_month_of(0, m);
    assert_string_equal(m, "1970-01");
    time_month_of(1709251199999, m); /* the last ms of February 2024, a leap year */
    assert_string_equal(m, "2024-02");
    time_month_of(1709251200000, m);
    assert_string_equal(m, "2024-03");
    time_month_of(-1, m);
    assert_string_equal(m, "1969-12");
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t)(x % 253402300800000ull); /* up to 9999-12-31 */
        if (i % 4 == 0)
            ms -= ms % 86400000; /* midnight */
        if (i % 4 == 1)
            ms = ms - ms % 86400000 - 1; /* the last ms of a day */
        time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char want[32];
        snprintf(want, sizeof want, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
        time_month_of(ms, m);
        if (strcmp(m, want) != 0)
            fail_msg("%lld: %s, not %s", (long long)ms, m, want);
    }
}

static void test_time_clocks(void **state)
{
    (void)state;
    int64_t now = time_now_ms();
    assert_true(now > 1600000000000LL); /* after 2020 */
    int64_t a = time_mono_us(), b = time_mono_us();
    assert_true(b >= a);
}

/* ---------------------------------------------------------------- logging */

static void test_log_parse_level(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        log_level l;
    } ok[] = {
        {"debug", LOG_DEBUG}, {"info", LOG_INFO},   {"warn", LOG_WARN}, {"error", LOG_ERROR},
        {"off", LOG_OFF},     {"DEBUG", LOG_DEBUG}, {"Warn", LOG_WARN},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        log_level l = (log_level)99;
        assert_int_equal(log_parse_level(ok[i].s, &l), 0);
        assert_int_equal(l, ok[i].l);
    }
    static const char *bad[] = {"", "warning", "debug ", " info", "err", "none", "0", "infos"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        log_level l = LOG_ERROR;
        assert_int_equal(log_parse_level(bad[i], &l), OSB_E_INVAL);
        assert_int_equal(l, LOG_ERROR);
    }
    log_level l = LOG_WARN;
    assert_int_equal(log_parse_level(NULL, &l), OSB_E_INVAL);
    assert_int_equal(l, LOG_WARN);
}

static void test_log_level_roundtrip(void **state)
{
    (void)state;
    log_level saved = log_get_level();
    log_set_level(LOG_ERROR);
    assert_int_equal(log_get_level(), LOG_ERROR);
    log_set_level(LOG_OFF);
    assert_int_equal(log_get_level(), LOG_OFF);
    log_error("not printed at level off");
    log_set_level(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alignment),
        cmocka_unit_test(test_arena_limit),
        cmocka_unit_test(test_arena_many_allocs),
        cmocka_unit_test(test_arena_strings_and_zalloc),
        cmocka_unit_test(test_buf_basic),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_take),
        cmocka_unit_test(test_buf_printf_growth),
        cmocka_unit_test(test_b64_vectors),
        cmocka_unit_test(test_b64_round_trip),
        cmocka_unit_test(test_b64_rejects),
        cmocka_unit_test(test_b64_small_output),
        cmocka_unit_test(test_b64_rejects_high_bytes),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_hex_encode),
        cmocka_unit_test(test_str_to_i64),
        cmocka_unit_test(test_str_helpers),
        cmocka_unit_test(test_uuid_v4),
        cmocka_unit_test(test_uuid_v7),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_hmac_sha256_vectors),
        cmocka_unit_test(test_secure_wipe),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_month_of),
        cmocka_unit_test(test_time_clocks),
        cmocka_unit_test(test_log_parse_level),
        cmocka_unit_test(test_log_level_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
