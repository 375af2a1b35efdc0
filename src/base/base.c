/* base: error strings, arenas, capped buffers, logging, time, ids, encodings, secrets.
 * Kept in one file because each piece is small and they are always linked together. */
#include "base/base.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

const char *base_strerror(int rc)
{
    switch (rc) {
    case OSB_E_OK: return "ok";
    case OSB_E_NOMEM: return "out of memory";
    case OSB_E_INVAL: return "invalid input";
    case OSB_E_TOOBIG: return "too large";
    case OSB_E_NOTFOUND: return "not found";
    case OSB_E_IO: return "I/O error";
    case OSB_E_STORE: return "storage error";
    case OSB_E_CONFLICT: return "conflict";
    case OSB_E_BUSY: return "busy";
    default: return "unknown error";
    }
}

/* ---------------------------------------------------------------- arena */

struct arena_block {
    arena_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK_MIN 4096

void arena_init(arena *a, size_t limit)
{
    a->head = NULL;
    a->used = 0;
    a->limit = limit;
}

void *arena_alloc(arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n)
        return NULL;
    if (a->limit && (a->used + need > a->limit || a->used + need < a->used))
        return NULL;
    arena_block *b = a->head;
    if (!b || b->size - b->used < need) {
        size_t sz = need > ARENA_BLOCK_MIN ? need : ARENA_BLOCK_MIN;
        /* Grow geometrically so a request with many small allocations makes few blocks. */
        if (b && sz < b->size * 2 && b->size * 2 <= (1u << 20))
            sz = b->size * 2;
        b = malloc(sizeof(*b) + sz);
        if (!b)
            return NULL;
        b->size = sz;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used += need;
    return p;
}

void *arena_zalloc(arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena *a, const char *s)
{
    return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *arena_printf(arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = NULL;
    if (n >= 0 && (p = arena_alloc(a, (size_t)n + 1)))
        vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void arena_free(arena *a)
{
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---------------------------------------------------------------- buf */

void buf_init(buf *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit ? limit : SIZE_MAX / 2;
}

static int buf_reserve(buf *b, size_t extra)
{
    if (extra > b->limit - b->len)
        return OSB_E_TOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return OSB_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return OSB_E_INVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *buf_cstr(buf *b)
{
    return b->data ? b->data : "";
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *buf_take(buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int buf_pct(buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            rc = buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = buf_append(b, e, 3);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- logging */

static log_level g_log_level = LOG_INFO;

void log_set_level(log_level l)
{
    g_log_level = l;
}
log_level log_get_level(void)
{
    return g_log_level;
}

int log_parse_level(const char *s, log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (s && strcasecmp(s, names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return OSB_E_INVAL;
}

void log_msg(log_level l, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    if (l < g_log_level || l >= LOG_OFF)
        return;
    char line[2048], ts[32];
    time_format_rfc3339(time_now_ms(), ts);
    int n = snprintf(line, sizeof line, "%s %-5s ", ts, tags[l]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* Control characters from request data must not forge extra log lines. */
    for (size_t i = (size_t)n; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    line[len++] = '\n';
    /* One write per line keeps lines from several threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* ---------------------------------------------------------------- time */

int64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* YYYY-MM of a UTC time, by the days-to-civil arithmetic of H. Hinnant's date algorithms
 * (gmtime_r would take the time zone lock for every record). */
void time_month_of(int64_t ms, char out[8])
{
    int64_t days = (ms >= 0 ? ms : ms - 86399999) / 86400000;
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (m <= 2);
    unsigned yy = (unsigned)(y % 10000 + 10000) % 10000u;
    out[0] = (char)('0' + yy / 1000);
    out[1] = (char)('0' + yy / 100 % 10);
    out[2] = (char)('0' + yy / 10 % 10);
    out[3] = (char)('0' + yy % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '\0';
}

/* Days from 1970-01-01 to y-m-1 (proleptic Gregorian), the inverse of time_month_of's. */
static int64_t days_from_civil(int64_t y, int64_t m)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool time_month_range(const char *month, int64_t *from, int64_t *to)
{
    if (!month || strlen(month) != 7 || month[4] != '-')
        return false;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (month[i] < '0' || month[i] > '9'))
            return false;
    int64_t y =
        (month[0] - '0') * 1000 + (month[1] - '0') * 100 + (month[2] - '0') * 10 + (month[3] - '0');
    int64_t m = (month[5] - '0') * 10 + (month[6] - '0');
    if (y == 0 || m < 1 || m > 12)
        return false;
    *from = days_from_civil(y, m) * 86400000;
    *to = (m == 12 ? days_from_civil(y + 1, 1) : days_from_civil(y, m + 1)) * 86400000;
    return true;
}

void time_format_rfc3339(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Years past 9999 do not occur; the cast keeps the compiler's width estimate honest. */
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)frac % 1000u);
}

/* ---------------------------------------------------------------- random, ids */

void random_bytes(void *p, size_t n)
{
    randombytes_buf(p, n); /* libsodium: getrandom(2), never fails once initialised */
}

__attribute__((constructor)) static void base_init(void)
{
    if (sodium_init() < 0)
        abort();
}

static void uuid_text(const unsigned char b[16], char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void uuid_v4(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_text(b, out);
}

void uuid_v7(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof b);
    uint64_t ms = (uint64_t)time_now_ms();
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_text(b, out);
}

bool uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- encodings */

size_t b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4 + 1;
}

static int b64_enc(const void *in, size_t n, char *out, size_t outsz, int variant)
{
    size_t need = sodium_base64_encoded_len(n, variant);
    if (outsz < need)
        return OSB_E_TOOBIG;
    sodium_bin2base64(out, outsz, in, n, variant);
    return (int)strlen(out);
}

/* libsodium 1.0.18 lets bytes from 0x80 up through as alphabet characters: check the
 * alphabet first, so one value has one spelling. */
static bool b64_alphabet_ok(const char *in, size_t n, int variant)
{
    bool url = variant == sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (url ? c == '-' || c == '_' : c == '+' || c == '/' || c == '=');
        if (!ok)
            return false;
    }
    return true;
}

static int b64_dec(const char *in, size_t n, unsigned char *out, size_t outsz, int variant)
{
    size_t len = 0;
    const char *end = NULL;
    if (!b64_alphabet_ok(in, n, variant))
        return OSB_E_INVAL;
    if (sodium_base642bin(out, outsz, in, n, NULL, &len, &end, variant) != 0) {
        /* Tell a short output buffer from bad input by decoding into one that is big enough. */
        size_t big = n / 4 * 3 + 3;
        unsigned char *tmp = big > outsz ? malloc(big) : NULL;
        int rc = OSB_E_INVAL;
        if (tmp && sodium_base642bin(tmp, big, in, n, NULL, &len, &end, variant) == 0 &&
            end == in + n)
            rc = OSB_E_TOOBIG;
        if (tmp) {
            sodium_memzero(tmp, big);
            free(tmp);
        }
        return rc;
    }
    if (end != in + n)
        return OSB_E_INVAL;
    if (len > INT_MAX)
        return OSB_E_TOOBIG;
    return (int)len;
}

int b64_encode(const void *in, size_t n, char *out, size_t outsz)
{
    return b64_enc(in, n, out, outsz, sodium_base64_VARIANT_ORIGINAL);
}

int b64_decode(const char *in, size_t n, unsigned char *out, size_t outsz)
{
    return b64_dec(in, n, out, outsz, sodium_base64_VARIANT_ORIGINAL);
}

int b64url_encode(const void *in, size_t n, char *out, size_t outsz)
{
    return b64_enc(in, n, out, outsz, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int b64url_decode(const char *in, size_t n, unsigned char *out, size_t outsz)
{
    return b64_dec(in, n, out, outsz, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void hex_encode(const void *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int url_decode_inplace(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = hex_value(r[1]), lo = hi < 0 ? -1 : hex_value(r[2]);
            if (hi < 0 || lo < 0)
                return OSB_E_INVAL;
            char c = (char)(hi * 16 + lo);
            if (c == '\0')
                return OSB_E_INVAL;
            *w++ = c;
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    size_t n = (size_t)(w - s);
    return n > INT_MAX ? OSB_E_TOOBIG : (int)n;
}

/* ---------------------------------------------------------------- secrets */

bool ct_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

/* libsodium's, not OpenSSL's: for the short inputs hashed per request (keys, secrets, PKCE
 * verifiers), OpenSSL 3's per-call algorithm fetch costs more than the hashing. */
void sha256(const void *in, size_t n, unsigned char out[32])
{
    crypto_hash_sha256(out, in, n);
}

void hmac_sha256(const void *key, size_t keylen, const void *in, size_t n, unsigned char out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, in, n);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void secure_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}

#define SEAL_VERSION 1
#define SEAL_HEAD    (1 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)

int seal_secret(const unsigned char key[32], const char *ad, const void *plain, size_t n,
                unsigned char **out, size_t *outn)
{
    size_t total = SEAL_HEAD + n + crypto_aead_xchacha20poly1305_ietf_ABYTES;
    unsigned char *b = malloc(total);
    if (!b)
        return OSB_E_NOMEM;
    b[0] = SEAL_VERSION;
    randombytes_buf(b + 1, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        b + SEAL_HEAD, &clen, plain, n, (const unsigned char *)ad, strlen(ad), NULL, b + 1, key);
    *out = b;
    *outn = SEAL_HEAD + (size_t)clen;
    return 0;
}

int open_secret(const unsigned char key[32], const char *ad, const void *sealed, size_t n,
                char *out, size_t outsz, size_t *plainn)
{
    const unsigned char *b = sealed;
    if (!b || n < SEAL_HEAD + crypto_aead_xchacha20poly1305_ietf_ABYTES || b[0] != SEAL_VERSION)
        return OSB_E_INVAL;
    size_t plain = n - SEAL_HEAD - crypto_aead_xchacha20poly1305_ietf_ABYTES;
    if (plain + 1 > outsz)
        return OSB_E_TOOBIG;
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)out, &mlen, NULL, b + SEAL_HEAD,
                                                   n - SEAL_HEAD, (const unsigned char *)ad,
                                                   strlen(ad), b + 1, key) != 0) {
        secure_wipe(out, outsz);
        return OSB_E_INVAL;
    }
    out[mlen] = '\0';
    if (plainn)
        *plainn = (size_t)mlen;
    return 0;
}

/* ---------------------------------------------------------------- strings */

bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

bool str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

void str_copy(char *dst, size_t n, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= n)
        len = n - 1;
    memcpy(dst, src ? src : "", len);
    dst[len] = '\0';
}

int str_to_i64(const char *s, bool allow_neg, int64_t *out)
{
    if (!s || !*s)
        return OSB_E_INVAL;
    const char *p = s;
    bool neg = false;
    if (*p == '-') {
        if (!allow_neg)
            return OSB_E_INVAL;
        neg = true;
        p++;
    }
    if (!*p)
        return OSB_E_INVAL;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return OSB_E_INVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return OSB_E_TOOBIG;
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return OSB_E_TOOBIG;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}
