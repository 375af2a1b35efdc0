/* base: the small things every module needs — error codes, arenas, capped buffers,
 * logging, time, random ids, encodings and constant-time compares.
 * Nothing here knows about HTTP, storage or the OSB domain. */
#ifndef OSBILL_BASE_H
#define OSBILL_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WARN_UNUSED       __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define ARRAY_LEN(a)      (sizeof(a) / sizeof((a)[0]))

/* Error codes shared by all modules: 0 is success, the rest are negative. */
enum {
    OSB_E_OK = 0,
    OSB_E_NOMEM = -1,    /* allocation failed */
    OSB_E_INVAL = -2,    /* bad argument or input */
    OSB_E_TOOBIG = -3,   /* a capped buffer or limit would be exceeded */
    OSB_E_NOTFOUND = -4, /* no such thing */
    OSB_E_IO = -5,       /* a system call failed; errno says more */
    OSB_E_STORE = -6,    /* the storage backend failed */
    OSB_E_CONFLICT = -7, /* a uniqueness or state conflict */
    OSB_E_BUSY = -8,     /* something else holds the resource */
};
const char *base_strerror(int rc);

/* ---- arena: bump allocator owned by one request or one job; freed at once ---- */
typedef struct arena_block arena_block;
typedef struct {
    arena_block *head;
    size_t used;  /* bytes handed out, for caps and metrics */
    size_t limit; /* 0 = unlimited; otherwise allocations past it fail */
} arena;

void arena_init(arena *a, size_t limit);
/* Returns NULL when out of memory or past the limit. Memory is 16-byte aligned. */
void *arena_alloc(arena *a, size_t n);
void *arena_zalloc(arena *a, size_t n);
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_printf(arena *a, const char *fmt, ...) PRINTF_LIKE(2, 3);
void arena_free(arena *a);

/* ---- buf: a growable byte buffer with a hard cap (curl's dynbuf) ---- */
typedef struct {
    char *data; /* always NUL-terminated when len > 0 or after buf_cstr */
    size_t len;
    size_t cap;   /* allocated */
    size_t limit; /* hard cap on len; appends past it fail with OSB_E_TOOBIG */
} buf;

void buf_init(buf *b, size_t limit);
int buf_append(buf *b, const void *p, size_t n) WARN_UNUSED;
int buf_puts(buf *b, const char *s) WARN_UNUSED;
int buf_printf(buf *b, const char *fmt, ...) PRINTF_LIKE(2, 3) WARN_UNUSED;
int buf_vprintf(buf *b, const char *fmt, va_list ap) WARN_UNUSED;
const char *buf_cstr(buf *b); /* "" for an empty buffer */
void buf_reset(buf *b);       /* len = 0, keeps memory */
/* Hands the memory over to the caller (free() it); the buffer is empty afterwards. */
char *buf_take(buf *b);
void buf_free(buf *b);
/* Appends s percent-encoded: everything but RFC 3986's unreserved characters. */
int buf_pct(buf *b, const char *s) WARN_UNUSED;

/* ---- logging: one line per call, to stderr, with level and UTC time ---- */
typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level;
void log_set_level(log_level l);
log_level log_get_level(void);
int log_parse_level(const char *s, log_level *out) WARN_UNUSED;
void log_msg(log_level l, const char *fmt, ...) PRINTF_LIKE(2, 3);
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() <= LOG_DEBUG)                                                          \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* ---- time ---- */
int64_t time_now_ms(void);  /* wall clock, UTC ms since the epoch */
int64_t time_mono_us(void); /* monotonic microseconds, for durations */
/* RFC 3339 UTC with milliseconds, "2026-11-25T09:03:59.123Z"; out needs 25 bytes. */
void time_format_rfc3339(int64_t ms, char out[32]);
/* "YYYY-MM" of the UTC month holding ms (years taken mod 10000), without the time zone lock
 * that gmtime_r takes. */
void time_month_of(int64_t ms, char out[8]);
/* The UTC month "YYYY-MM" (year 0001 to 9999, month 01 to 12) as [*from, *to) in ms since the
 * epoch. false, and nothing set, for any other text (NULL included). */
bool time_month_range(const char *month, int64_t *from, int64_t *to) WARN_UNUSED;

/* ---- randomness and ids ---- */
void random_bytes(void *p, size_t n);
/* A random (v4) UUID in lowercase canonical form; out needs 37 bytes. */
void uuid_v4(char out[37]);
/* A time-ordered UUID (RFC 9562 version 7: milliseconds since the epoch, then random bits):
 * ids made one after another sort together, so a table keyed by them grows at its end
 * instead of dirtying a random page of every index on each insert. */
void uuid_v7(char out[37]);
bool uuid_valid(const char *s);

/* ---- encodings ---- */
/* base64 (standard alphabet, padded) and base64url (no padding). Output is NUL-terminated.
 * Decoders reject bad characters; the url decoder rejects padding. Return the length or
 * OSB_E_INVAL / OSB_E_TOOBIG. */
size_t b64_encoded_len(size_t n);
int b64_encode(const void *in, size_t n, char *out, size_t outsz) WARN_UNUSED;
int b64_decode(const char *in, size_t n, unsigned char *out, size_t outsz) WARN_UNUSED;
int b64url_encode(const void *in, size_t n, char *out, size_t outsz) WARN_UNUSED;
int b64url_decode(const char *in, size_t n, unsigned char *out, size_t outsz) WARN_UNUSED;
void hex_encode(const void *in, size_t n, char *out); /* out needs 2n+1 bytes */
int hex_value(char c); /* 0 to 15 for a hex digit (either case), -1 otherwise */
/* Percent-decodes in place ("%2F" -> "/"); '+' stays '+'. Fails on a bad escape or an
 * embedded NUL. Returns the new length or OSB_E_INVAL. */
int url_decode_inplace(char *s) WARN_UNUSED;

/* ---- secrets ---- */
/* Constant-time equality of two equal-length byte strings. */
bool ct_equal(const void *a, const void *b, size_t n);
/* SHA-256 of a message; out needs 32 bytes. */
void sha256(const void *in, size_t n, unsigned char out[32]);
/* HMAC-SHA256; out needs 32 bytes. */
void hmac_sha256(const void *key, size_t keylen, const void *in, size_t n, unsigned char out[32]);
/* Overwrites memory that held a secret, in a way the compiler keeps. */
void secure_wipe(void *p, size_t n);
/* Seals a secret for storage: version (1) || nonce (24) || XChaCha20-Poly1305(plain), with ad
 * as additional data (what the secret belongs to: a sealed value copied onto another row
 * does not open). *out is malloc'd (the caller frees it), *outn its length. OSB_E_NOMEM. */
int seal_secret(const unsigned char key[32], const char *ad, const void *plain, size_t n,
                unsigned char **out, size_t *outn) WARN_UNUSED;
/* Opens what seal_secret sealed with the same key and ad into out (outsz bytes, plain text
 * NUL-terminated after *plainn bytes). OSB_E_INVAL for a wrong key, ad or a tampered value
 * (out is wiped), OSB_E_TOOBIG when out is too small. */
int open_secret(const unsigned char key[32], const char *ad, const void *sealed, size_t n,
                char *out, size_t outsz, size_t *plainn) WARN_UNUSED;

/* ---- strings ---- */
bool str_eq(const char *a, const char *b); /* NULL-safe */
/* Copies src (NULL: "") into dst of size n > 0, cut to fit; snprintf's "%s" without its cost. */
void str_copy(char *dst, size_t n, const char *src);
bool str_has_prefix(const char *s, const char *prefix);
/* Parses a decimal int64 that fills the whole string; no sign unless allow_neg. */
int str_to_i64(const char *s, bool allow_neg, int64_t *out) WARN_UNUSED;

#endif
