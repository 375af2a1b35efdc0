/* Unit tests of jose: RS256 signing and the verification contract of iam.md "Verifying a JWT",
 * driven by a matrix of forged tokens (alg confusion, tampering, bad encodings, bad claims),
 * plus RFC 7638 thumbprints, JWK and PEM round trips and concurrent verification. Forged
 * tokens are signed here with OpenSSL directly, so every case fails only where it should. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>

#include "base/base.h"
#include "iam/jose.h"

#define ISS "https://osbill.example/identity"
#define NOW ((int64_t)1764061439)

static jose_key *key_a;  /* the platform key: signs, and is the only one lookup knows */
static jose_key *key_b;  /* another key pair, for "right kid, wrong key" */
static EVP_PKEY *pkey_a; /* key_a's private key, to forge arbitrary tokens */
static EVP_PKEY *pkey_b;

/* ---------------------------------------------------------------- helpers */

static jose_key *lookup_a(void *ud, const char *kid)
{
    (void)ud;
    return strcmp(kid, jose_key_kid(key_a)) == 0 ? jose_key_ref(key_a) : NULL;
}

/* Whatever the kid, answers with key_b: a different key pair behind a known kid. */
static jose_key *lookup_b_always(void *ud, const char *kid)
{
    (void)ud;
    (void)kid;
    return jose_key_ref(key_b);
}

/* ud is a jose_key*: exact kid match against it. */
static jose_key *lookup_ud(void *ud, const char *kid)
{
    jose_key *k = ud;
    return strcmp(kid, jose_key_kid(k)) == 0 ? jose_key_ref(k) : NULL;
}

static EVP_PKEY *evp_of(const jose_key *k)
{
    char *pem = NULL;
    assert_int_equal(jose_key_private_pem(k, &pem), 0);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *p = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    assert_non_null(p);
    BIO_free(bio);
    secure_wipe(pem, strlen(pem));
    free(pem);
    return p;
}

static char *b64(const void *p, size_t n)
{
    size_t sz = b64_encoded_len(n);
    char *s = malloc(sz);
    assert_non_null(s);
    assert_true(b64url_encode(p, n, s, sz) >= 0);
    return s;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s.%s.%s", a, b, c);
    return s;
}

/* RS-signs b64(h).b64(p) with key and digest md ("SHA256", "SHA512"); md NULL leaves the
 * signature segment empty. */
static char *forge_raw(const void *h, size_t hn, const void *p, size_t pn, EVP_PKEY *key,
                       const char *md)
{
    char *h64 = b64(h, hn), *p64 = b64(p, pn);
    char *signing = join3(h64, p64, "");
    signing[strlen(signing) - 1] = '\0';
    char *s64 = NULL;
    if (md) {
        unsigned char sig[1024];
        size_t sl = sizeof sig;
        EVP_MD_CTX *mc = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit_ex(mc, NULL, md, NULL, NULL, key, NULL), 1);
        assert_int_equal(EVP_DigestSign(mc, sig, &sl, (unsigned char *)signing, strlen(signing)),
                         1);
        EVP_MD_CTX_free(mc);
        s64 = b64(sig, sl);
    }
    char *tok = join3(h64, p64, s64 ? s64 : "");
    free(h64);
    free(p64);
    free(s64);
    free(signing);
    return tok;
}

static char *forge(const char *hdr, const char *claims)
{
    return forge_raw(hdr, strlen(hdr), claims, strlen(claims), pkey_a, "SHA256");
}

/* The header jose_sign writes, with extra members spliced in before the closing brace. */
static char *std_header(const char *extra)
{
    static char h[16384];
    snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"%s}",
             jose_key_kid(key_a), extra ? extra : "");
    return h;
}

/* The claims of an access token (iam.md "Tokens"), times relative to NOW; extra is spliced
 * in before the closing brace. */
static char *claims_json(int64_t iat_off, int64_t exp_off, const char *extra)
{
    static char c[70000];
    snprintf(c, sizeof c,
             "{\"iss\":\"" ISS "\",\"sub\":\"osbill-1b4e28ba-2fa1-41d2-883f-0016d3cca427\","
             "\"iam_id\":\"osbill-1b4e28ba-2fa1-41d2-883f-0016d3cca427\","
             "\"account\":{\"bss\":\"a7f3c2e1d0b94f6a8e5d4c3b2a190817\"},"
             "\"client_id\":\"default\",\"grant_type\":\"urn:ibm:params:oauth:grant-type:apikey\","
             "\"scope\":\"osbill\",\"iat\":%lld,\"exp\":%lld,"
             "\"jti\":\"3f0c8d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f\"%s}",
             (long long)(NOW + iat_off), (long long)(NOW + exp_off), extra ? extra : "");
    return c;
}

static jose_verify_opts opts(void)
{
    jose_verify_opts o = {.issuer = ISS, .now = NOW};
    return o;
}

static int verify_with(const char *tok, jose_lookup_fn fn, void *ud, const jose_verify_opts *o)
{
    json_t *claims = (json_t *)1;
    char err[160];
    int rc = jose_verify(tok, fn, ud, o, &claims, err, sizeof err);
    if (rc == JOSE_OK) {
        assert_true(json_is_object(claims));
        assert_string_equal(err, "");
        json_decref(claims);
    } else {
        assert_null(claims);
        assert_true(strlen(err) > 0);
    }
    return rc;
}

static int verify(const char *tok)
{
    jose_verify_opts o = opts();
    return verify_with(tok, lookup_a, NULL, &o);
}

/* Forges with the standard header and given claims, verifies, frees. */
static int verify_claims(const char *claims, const jose_verify_opts *o)
{
    char *t = forge(std_header(NULL), claims);
    int rc = verify_with(t, lookup_a, NULL, o);
    free(t);
    return rc;
}

static int verify_header(const char *hdr)
{
    char *t = forge(hdr, claims_json(0, 600, NULL));
    int rc = verify(t);
    free(t);
    return rc;
}

static char *good_token(void)
{
    char *t = forge(std_header(NULL), claims_json(0, 600, NULL));
    assert_int_equal(verify(t), JOSE_OK);
    return t;
}

static int setup_keys(void **state)
{
    (void)state;
    if (jose_key_generate(&key_a) || jose_key_generate(&key_b))
        return -1;
    pkey_a = evp_of(key_a);
    pkey_b = evp_of(key_b);
    return 0;
}

static int teardown_keys(void **state)
{
    (void)state;
    jose_key_free(key_a);
    jose_key_free(key_b);
    EVP_PKEY_free(pkey_a);
    EVP_PKEY_free(pkey_b);
    return 0;
}

/* ---------------------------------------------------------------- signing and the happy path */

static void test_sign_verify_roundtrip(void **state)
{
    (void)state;
    json_t *in =
        json_loads(claims_json(0, 3600, ",\"name\":\"Zoë ✓\",\"aud\":[\"a\",\"b\"]"), 0, NULL);
    assert_non_null(in);
    char *tok = NULL;
    assert_int_equal(jose_sign(key_a, in, &tok), 0);
    assert_non_null(tok);

    /* The header is exactly what the contract says, in that order. */
    const char *dot = strchr(tok, '.');
    unsigned char h[256];
    int hn = b64url_decode(tok, (size_t)(dot - tok), h, sizeof h);
    assert_true(hn > 0);
    char want[160];
    snprintf(want, sizeof want, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
             jose_key_kid(key_a));
    assert_int_equal((size_t)hn, strlen(want));
    assert_memory_equal(h, want, (size_t)hn);

    jose_verify_opts o = opts();
    json_t *out = NULL;
    char err[128] = "x";
    assert_int_equal(jose_verify(tok, lookup_a, NULL, &o, &out, err, sizeof err), JOSE_OK);
    assert_string_equal(err, "");
    assert_true(json_equal(in, out));
    json_decref(out);

    /* err may be NULL; the signature is RS256 over the exact bytes: OpenSSL agrees. */
    assert_int_equal(jose_verify(tok, lookup_a, NULL, &o, &out, NULL, 0), JOSE_OK);
    json_decref(out);
    json_decref(in);
    free(tok);
}

static void test_sign_refuses(void **state)
{
    (void)state;
    json_t *arr = json_array(), *obj = json_object();
    char *tok = (char *)1;
    assert_int_not_equal(jose_sign(key_a, arr, &tok), 0);
    assert_null(tok);
    assert_int_not_equal(jose_sign(NULL, obj, &tok), 0);
    assert_int_not_equal(jose_sign(key_a, NULL, &tok), 0);

    json_t *jwk = jose_key_jwk(key_a);
    jose_key *pub = NULL;
    assert_int_equal(jose_key_from_jwk(jwk, &pub), 0);
    assert_false(jose_key_is_private(pub));
    assert_int_not_equal(jose_sign(pub, obj, &tok), 0);
    assert_null(tok);
    jose_key_free(pub);
    json_decref(jwk);
    json_decref(arr);
    json_decref(obj);
}

static void test_sign_large_claims(void **state)
{
    (void)state;
    /* Larger than the signer's stack buffer and the verifier's stack buffer. */
    char *pad = malloc(20001);
    memset(pad, 'p', 20000);
    pad[20000] = '\0';
    json_t *c = json_loads(claims_json(0, 600, NULL), 0, NULL);
    json_object_set_new(c, "pad", json_string(pad));
    char *tok = NULL;
    assert_int_equal(jose_sign(key_a, c, &tok), 0);
    assert_true(strlen(tok) > 8192);
    assert_int_equal(verify(tok), JOSE_E_MALFORMED); /* default cap 8192 */
    jose_verify_opts o = opts();
    o.max_len = 65536;
    json_t *out = NULL;
    assert_int_equal(jose_verify(tok, lookup_a, NULL, &o, &out, NULL, 0), JOSE_OK);
    assert_true(json_equal(c, out));
    json_decref(out);
    json_decref(c);
    free(tok);
    free(pad);
}

/* ---------------------------------------------------------------- algorithm confusion */

static void test_alg_none(void **state)
{
    (void)state;
    char hdr[256];
    const char *claims = claims_json(0, 600, NULL);
    static const char *const nones[] = {"none", "None", "NONE", "nOnE", ""};
    for (size_t i = 0; i < ARRAY_LEN(nones); i++) {
        snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", nones[i],
                 jose_key_kid(key_a));
        /* No signature: "h.p." */
        char *t = forge_raw(hdr, strlen(hdr), claims, strlen(claims), NULL, NULL);
        assert_int_equal(t[strlen(t) - 1], '.');
        assert_int_equal(verify(t), JOSE_E_ALG);
        /* Only two segments: "h.p" */
        t[strlen(t) - 1] = '\0';
        assert_int_equal(verify(t), JOSE_E_MALFORMED);
        free(t);
        /* With a valid RS256 signature over the same bytes. */
        t = forge(hdr, claims);
        assert_int_equal(verify(t), JOSE_E_ALG);
        free(t);
    }
    /* Without a kid, none is still refused for its alg first. */
    const char *h2 = "{\"alg\":\"none\"}";
    char *t = forge_raw(h2, strlen(h2), claims, strlen(claims), NULL, NULL);
    assert_int_equal(verify(t), JOSE_E_ALG);
    free(t);
}

static void hs256_with_secret(const void *secret, size_t sn)
{
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
             jose_key_kid(key_a));
    const char *claims = claims_json(0, 600, NULL);
    char *h64 = b64(hdr, strlen(hdr)), *p64 = b64(claims, strlen(claims));
    size_t mn = strlen(h64) + strlen(p64) + 2;
    char *msg = malloc(mn);
    snprintf(msg, mn, "%s.%s", h64, p64);
    unsigned char mac[32];
    unsigned int ml = sizeof mac;
    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)sn, (unsigned char *)msg, strlen(msg), mac, &ml));
    char *m64 = b64(mac, ml);
    char *t = join3(h64, p64, m64);
    assert_int_equal(verify(t), JOSE_E_ALG);
    free(t);
    free(m64);
    free(msg);
    free(h64);
    free(p64);
}

static void test_alg_hs256_with_public_key(void **state)
{
    (void)state;
    /* The classic confusion: HMAC keyed with the RSA public key's PEM, then its DER. */
    char *pem = NULL;
    assert_int_equal(jose_key_public_pem(key_a, &pem), 0);
    hs256_with_secret(pem, strlen(pem));
    size_t n = strlen(pem);
    while (n && pem[n - 1] == '\n')
        n--;
    hs256_with_secret(pem, n); /* without the trailing newline */
    free(pem);

    unsigned char *der = NULL;
    int dn = i2d_PUBKEY(pkey_a, &der);
    assert_true(dn > 0);
    hs256_with_secret(der, (size_t)dn);
    OPENSSL_free(der);

    /* And the JWK n as the secret, for good measure. */
    json_t *jwk = jose_key_jwk(key_a);
    const char *nv = json_string_value(json_object_get(jwk, "n"));
    hs256_with_secret(nv, strlen(nv));
    json_decref(jwk);
}

static void test_alg_others(void **state)
{
    (void)state;
    char hdr[256];
    const char *claims = claims_json(0, 600, NULL);
    /* Really signed with SHA-512 (RS512) by the right key. */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS512\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
             jose_key_kid(key_a));
    char *t = forge_raw(hdr, strlen(hdr), claims, strlen(claims), pkey_a, "SHA512");
    assert_int_equal(verify(t), JOSE_E_ALG);
    free(t);

    static const char *const algs[] = {
        "\"RS384\"",   "\"PS256\"",           "\"ES256\"",  "\"HS512\"",
        "\"rs256\"",   "\"RS256 \"",          "\" RS256\"", "\"RS2560\"",
        "\"RS25\"",    "\"EdDSA\"",           "null",       "256",
        "[\"RS256\"]", "{\"alg\":\"RS256\"}", "true",       "\"RS\\u003256x\""};
    for (size_t i = 0; i < ARRAY_LEN(algs); i++) {
        snprintf(hdr, sizeof hdr, "{\"alg\":%s,\"typ\":\"JWT\",\"kid\":\"%s\"}", algs[i],
                 jose_key_kid(key_a));
        assert_int_equal(verify_header(hdr), JOSE_E_ALG);
    }
    /* alg missing */
    snprintf(hdr, sizeof hdr, "{\"typ\":\"JWT\",\"kid\":\"%s\"}", jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_E_ALG);
    /* An escaped but equal spelling is the same string: accepted. */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS\\u003256\",\"kid\":\"%s\"}", jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_OK);
}

/* ---------------------------------------------------------------- headers and kids */

static void test_banned_headers(void **state)
{
    (void)state;
    static const char *const extras[] = {
        ",\"crit\":[\"exp\"]",
        ",\"crit\":[]",
        ",\"jku\":\"https://evil.example/jwks\"",
        ",\"x5u\":\"https://evil.example/cert.pem\"",
        ",\"jwk\":{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
        ",\"x5c\":[\"MIIB\"]",
        ",\"jku\":null",
        ",\"typ\":\"JWS\"",
        ",\"typ\":7",
        ",\"typ\":\"\"",
    };
    for (size_t i = 0; i < ARRAY_LEN(extras); i++) {
        char hdr[512];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"%s}", jose_key_kid(key_a),
                 extras[i]);
        assert_int_equal(verify_header(hdr), JOSE_E_HEADER);
    }
    /* typ at+jwt (RFC 9068), JWT in any case, or none at all: fine; unknown members too. */
    static const char *const fine[] = {",\"typ\":\"at+jwt\"", ",\"typ\":\"jwt\"", "",
                                       ",\"cty\":\"x\"", ",\"x5t#S256\":\"abc\""};
    for (size_t i = 0; i < ARRAY_LEN(fine); i++) {
        char hdr[512];
        snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"%s}", jose_key_kid(key_a),
                 fine[i]);
        assert_int_equal(verify_header(hdr), JOSE_OK);
    }
}

static void test_kid(void **state)
{
    (void)state;
    char hdr[512];
    /* missing */
    assert_int_equal(verify_header("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"), JOSE_E_KID);
    /* not a string, empty, too long */
    assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":42}"), JOSE_E_KID);
    assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":null}"), JOSE_E_KID);
    assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":[\"x\"]}"), JOSE_E_KID);
    assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"\"}"), JOSE_E_KID);
    char longkid[300];
    memset(longkid, 'k', 200);
    longkid[200] = '\0';
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", longkid);
    assert_int_equal(verify_header(hdr), JOSE_E_KID);
    /* unknown, and near misses of the real one (exact match only) */
    assert_int_equal(verify_header("{\"alg\":\"RS256\",\"kid\":\"unknown\"}"), JOSE_E_KID);
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s \"}", jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_E_KID);
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%.42s\"}", jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_E_KID);
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", jose_key_kid(key_b));
    assert_int_equal(verify_header(hdr), JOSE_E_KID);

    /* The log reason names a printable kid, never other bytes. */
    char *t = forge("{\"alg\":\"RS256\",\"kid\":\"abc\\n\\u001b[31m\"}", claims_json(0, 600, NULL));
    jose_verify_opts o = opts();
    json_t *c = NULL;
    char err[128];
    assert_int_equal(jose_verify(t, lookup_a, NULL, &o, &c, err, sizeof err), JOSE_E_KID);
    assert_null(strchr(err, '\n'));
    assert_null(strchr(err, '\x1b'));
    free(t);
}

static void test_other_key_same_kid(void **state)
{
    (void)state;
    char *t = good_token();
    jose_verify_opts o = opts();
    assert_int_equal(verify_with(t, lookup_b_always, NULL, &o), JOSE_E_SIGNATURE);
    free(t);
    /* Signed by key B but claiming key A's kid. */
    const char *hdr = std_header(NULL), *claims = claims_json(0, 600, NULL);
    t = forge_raw(hdr, strlen(hdr), claims, strlen(claims), pkey_b, "SHA256");
    assert_int_equal(verify(t), JOSE_E_SIGNATURE);
    free(t);
}

/* ---------------------------------------------------------------- tampering */

static void test_tampered(void **state)
{
    (void)state;
    char *good = good_token();
    char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    *d1 = *d2 = '\0';
    const char *h64 = good, *p64 = d1 + 1, *s64 = d2 + 1;

    /* payload: same header and signature, other claims (a longer exp) */
    const char *evil = claims_json(0, 999999, NULL);
    char *e64 = b64(evil, strlen(evil));
    char *t = join3(h64, e64, s64);
    assert_int_equal(verify(t), JOSE_E_SIGNATURE);
    free(t);
    free(e64);

    /* header: an extra member, still RS256 with the right kid */
    const char *hdr = std_header(",\"x\":1");
    e64 = b64(hdr, strlen(hdr));
    t = join3(e64, p64, s64);
    assert_int_equal(verify(t), JOSE_E_SIGNATURE);
    free(t);
    free(e64);

    /* signature: each of a few bits flipped in the decoded bytes */
    unsigned char sig[512];
    int sn = b64url_decode(s64, strlen(s64), sig, sizeof sig);
    assert_int_equal(sn, 256);
    static const int where[] = {0, 1, 127, 254, 255};
    for (size_t i = 0; i < ARRAY_LEN(where); i++) {
        sig[where[i]] ^= 0x01;
        char *x = b64(sig, (size_t)sn);
        t = join3(h64, p64, x);
        assert_int_equal(verify(t), JOSE_E_SIGNATURE);
        free(t);
        free(x);
        sig[where[i]] ^= 0x01;
    }
    /* truncated signature: whole bytes missing, then a dangling base64url character */
    char *x = b64(sig, 255);
    t = join3(h64, p64, x);
    assert_int_equal(verify(t), JOSE_E_SIGNATURE);
    free(t);
    free(x);
    x = b64(sig, 0);
    t = join3(h64, p64, x);
    assert_int_equal(verify(t), JOSE_E_SIGNATURE);
    free(t);
    free(x);
    size_t sl = strlen(s64);
    char *cut = strdup(s64);
    cut[sl - 1] = '\0'; /* 341 characters: not a base64url length */
    t = join3(h64, p64, cut);
    assert_int_equal(verify(t), JOSE_E_MALFORMED);
    free(t);
    free(cut);
    /* signature with a byte appended (257 bytes) or doubled */
    unsigned char big[600];
    memcpy(big, sig, 256);
    big[256] = 0;
    x = b64(big, 257);
    t = join3(h64, p64, x);
    assert_int_equal(verify(t), JOSE_E_SIGNATURE);
    free(t);
    free(x);
    memcpy(big + 256, sig, 256);
    x = b64(big, 512);
    t = join3(h64, p64, x);
    assert_int_equal(verify(t), JOSE_E_SIGNATURE);
    free(t);
    free(x);
    /* last character with non-zero unused bits: another spelling of the same bytes */
    char *alt = strdup(s64);
    char last = alt[sl - 1];
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int idx = (int)(strchr(alpha, last) - alpha);
    alt[sl - 1] = alpha[idx ^ 1];
    t = join3(h64, p64, alt);
    assert_int_equal(verify(t), JOSE_E_MALFORMED);
    free(t);
    free(alt);
    free(good);
}

static void test_mutations_never_verify(void **state)
{
    (void)state;
    char *good = good_token();
    size_t n = strlen(good);
    static const char set[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \t\n\x80\xff{}\"";
    uint32_t seed = 0x12345678;
    char *m = malloc(n + 8);
    for (int i = 0; i < 3000; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t at = (seed >> 8) % n;
        char c = set[(seed >> 20) % (sizeof set - 1)];
        int op = (int)((seed >> 4) % 4);
        size_t mn;
        if (op == 0) { /* replace */
            memcpy(m, good, n + 1);
            m[at] = c;
            mn = n;
        } else if (op == 1) { /* delete */
            memcpy(m, good, at);
            memcpy(m + at, good + at + 1, n - at);
            mn = n - 1;
        } else if (op == 2) { /* insert */
            memcpy(m, good, at);
            m[at] = c;
            memcpy(m + at + 1, good + at, n - at + 1);
            mn = n + 1;
        } else { /* truncate */
            memcpy(m, good, at);
            m[at] = '\0';
            mn = at;
        }
        (void)mn;
        if (strcmp(m, good) == 0)
            continue;
        assert_int_not_equal(verify(m), JOSE_OK);
    }
    free(m);
    free(good);
}

/* ---------------------------------------------------------------- claims */

static void test_expiry(void **state)
{
    (void)state;
    jose_verify_opts o = opts();
    assert_int_equal(verify_claims(claims_json(-600, -10, NULL), &o), JOSE_E_EXPIRED);
    assert_int_equal(verify_claims(claims_json(-600, 0, NULL), &o), JOSE_E_EXPIRED); /* exp==now */
    assert_int_equal(verify_claims(claims_json(-600, 1, NULL), &o), JOSE_OK);
    o.leeway_s = 30;
    assert_int_equal(verify_claims(claims_json(-600, -10, NULL), &o), JOSE_OK);
    assert_int_equal(verify_claims(claims_json(-600, -29, NULL), &o), JOSE_OK);
    assert_int_equal(verify_claims(claims_json(-600, -30, NULL), &o), JOSE_E_EXPIRED);
    /* leeway is capped at 60 s */
    o.leeway_s = 3600;
    assert_int_equal(verify_claims(claims_json(-600, -59, NULL), &o), JOSE_OK);
    assert_int_equal(verify_claims(claims_json(-600, -90, NULL), &o), JOSE_E_EXPIRED);
    o.leeway_s = -100; /* counts as 0 */
    assert_int_equal(verify_claims(claims_json(-600, 1, NULL), &o), JOSE_OK);
    assert_int_equal(verify_claims(claims_json(-600, 0, NULL), &o), JOSE_E_EXPIRED);
    /* now = 0 means the real clock: a token that expired in 2025 is expired today */
    o = opts();
    o.now = 0;
    assert_int_equal(verify_claims(claims_json(-600, 10, NULL), &o), JOSE_E_EXPIRED);
    /* extreme values do not overflow */
    o = opts();
    char c[512];
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"exp\":%lld}", (long long)INT64_MIN);
    assert_int_equal(verify_claims(c, &o), JOSE_E_EXPIRED);
    snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"exp\":%lld}", (long long)INT64_MAX);
    assert_int_equal(verify_claims(c, &o), JOSE_OK);
}

static void test_not_yet_valid(void **state)
{
    (void)state;
    jose_verify_opts o = opts();
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"nbf\":1764061539"), &o),
                     JOSE_E_NOT_YET_VALID); /* nbf = now + 100 */
    assert_int_equal(verify_claims(claims_json(100, 600, NULL), &o), JOSE_E_NOT_YET_VALID);
    assert_int_equal(verify_claims(claims_json(1, 600, NULL), &o), JOSE_E_NOT_YET_VALID);
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"nbf\":1764061439"), &o), JOSE_OK);
    o.leeway_s = 30;
    assert_int_equal(verify_claims(claims_json(20, 600, ",\"nbf\":1764061459"), &o), JOSE_OK);
    assert_int_equal(verify_claims(claims_json(31, 600, NULL), &o), JOSE_E_NOT_YET_VALID);
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"nbf\":1764061470"), &o),
                     JOSE_E_NOT_YET_VALID);
}

static void test_bad_time_claims(void **state)
{
    (void)state;
    jose_verify_opts o = opts();
    static const char *const bad_exp[] = {"\"1764062039\"", "1764062039.0", "1.8e9", "null",
                                          "true",           "[1764062039]", "{}"};
    for (size_t i = 0; i < ARRAY_LEN(bad_exp); i++) {
        char c[512];
        snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"exp\":%s}", bad_exp[i]);
        assert_int_equal(verify_claims(c, &o), JOSE_E_CLAIMS);
        snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"exp\":1764062039,\"nbf\":%s}", bad_exp[i]);
        assert_int_equal(verify_claims(c, &o), JOSE_E_CLAIMS);
        snprintf(c, sizeof c, "{\"iss\":\"" ISS "\",\"exp\":1764062039,\"iat\":%s}", bad_exp[i]);
        assert_int_equal(verify_claims(c, &o), JOSE_E_CLAIMS);
    }
    /* exp missing */
    assert_int_equal(verify_claims("{\"iss\":\"" ISS "\",\"iat\":1764061439}", &o), JOSE_E_CLAIMS);
    assert_int_equal(verify_claims("{}", &o), JOSE_E_CLAIMS);
    /* an integer too big for 64 bits is not JSON jansson accepts: malformed */
    assert_int_equal(verify_claims("{\"iss\":\"" ISS "\",\"exp\":99999999999999999999}", &o),
                     JOSE_E_MALFORMED);
}

static void test_issuer(void **state)
{
    (void)state;
    jose_verify_opts o = opts();
    static const char *const bad[] = {
        ",\"iss\":\"https://evil.example/identity\"",
        ",\"iss\":\"" ISS "/\"",
        ",\"iss\":\"https://osbill.example\"",
        ",\"iss\":\"HTTPS://OSBILL.EXAMPLE/IDENTITY\"",
        ",\"iss\":[\"" ISS "\"]",
        ",\"iss\":null",
        ",\"iss\":\"" ISS "\\u0000\"",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char c[512];
        snprintf(c, sizeof c, "{\"exp\":1764062039%s}", bad[i]);
        int rc = verify_claims(c, &o);
        /* \u0000 is not accepted by the JSON parser at all */
        assert_true(rc == JOSE_E_ISSUER || (i == ARRAY_LEN(bad) - 1 && rc == JOSE_E_MALFORMED));
    }
    assert_int_equal(verify_claims("{\"exp\":1764062039}", &o), JOSE_E_ISSUER);
    /* issuer is required of the caller too */
    o.issuer = NULL;
    assert_int_equal(verify_claims(claims_json(0, 600, NULL), &o), JOSE_E_ISSUER);
}

static void test_audience(void **state)
{
    (void)state;
    jose_verify_opts o = opts();
    /* not required: any aud is fine */
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"aud\":\"other\""), &o), JOSE_OK);
    o.audience = "dashboard-kv";
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"aud\":\"dashboard-kv\""), &o), JOSE_OK);
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"aud\":[\"x\",\"dashboard-kv\"]"), &o),
                     JOSE_OK);
    /* client_id "default" in the standard claims; then one that matches */
    assert_int_equal(verify_claims(claims_json(0, 600, NULL), &o), JOSE_E_AUDIENCE);
    o.audience = "default";
    assert_int_equal(verify_claims(claims_json(0, 600, NULL), &o), JOSE_OK);
    o.audience = "dashboard-kv";
    static const char *const bad[] = {",\"aud\":\"other\"",
                                      ",\"aud\":[\"x\",\"y\"]",
                                      ",\"aud\":[]",
                                      ",\"aud\":42",
                                      ",\"aud\":[[\"dashboard-kv\"]]",
                                      ",\"aud\":\"dashboard-kv \"",
                                      ",\"aud\":\"DASHBOARD-KV\""};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(verify_claims(claims_json(0, 600, bad[i]), &o), JOSE_E_AUDIENCE);
}

/* ---------------------------------------------------------------- JSON */

static void test_duplicate_keys(void **state)
{
    (void)state;
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"%s\"}",
             jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_E_MALFORMED);
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"kid\":\"%s\",\"kid\":\"%s\"}",
             jose_key_kid(key_a), jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_E_MALFORMED);
    /* escaped duplicates are duplicates too */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"\\u0061lg\":\"RS256\",\"kid\":\"%s\"}",
             jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_E_MALFORMED);

    jose_verify_opts o = opts();
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"exp\":1764062039"), &o),
                     JOSE_E_MALFORMED);
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"iss\":\"https://evil.example\""), &o),
                     JOSE_E_MALFORMED);
    assert_int_equal(verify_claims(claims_json(0, 600, ",\"x\":{\"sub\":1,\"sub\":2}"), &o),
                     JOSE_E_MALFORMED);
}

static void test_not_objects(void **state)
{
    (void)state;
    jose_verify_opts o = opts();
    static const char *const bad[] = {
        "[]",
        "[{\"alg\":\"RS256\"}]",
        "\"x\"",
        "42",
        "null",
        "true",
        "{",
        "{\"a\":1}x",
        "{\"a\":1}{\"b\":2}",
        "not json",
        "{'alg':'RS256'}",
        "{\"a\":\"\xc3\x28\"}",
        " ",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(verify_header(bad[i]), JOSE_E_MALFORMED);
        assert_int_equal(verify_claims(bad[i], &o), JOSE_E_MALFORMED);
    }
    /* a header array that would otherwise be perfect */
    char hdr[256];
    snprintf(hdr, sizeof hdr, "[{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}]",
             jose_key_kid(key_a));
    assert_int_equal(verify_header(hdr), JOSE_E_MALFORMED);
    /* binary garbage */
    unsigned char junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 37 + 11);
    const char *claims = claims_json(0, 600, NULL);
    char *t = forge_raw(junk, sizeof junk, claims, strlen(claims), pkey_a, "SHA256");
    assert_int_equal(verify(t), JOSE_E_MALFORMED);
    free(t);
}

/* ---------------------------------------------------------------- encodings and shape */

static char *splice(const char *tok, size_t at, const char *ins)
{
    size_t n = strlen(tok), in = strlen(ins);
    char *s = malloc(n + in + 1);
    memcpy(s, tok, at);
    memcpy(s + at, ins, in);
    memcpy(s + at + in, tok + at, n - at + 1);
    return s;
}

static void test_padding_and_alphabet(void **state)
{
    (void)state;
    char *good = good_token();
    size_t d1 = (size_t)(strchr(good, '.') - good);
    size_t d2 = (size_t)(strchr(good + d1 + 1, '.') - good);
    size_t n = strlen(good);
    const size_t ends[] = {d1, d2, n};         /* end of each segment */
    const size_t mids[] = {5, d1 + 5, d2 + 5}; /* inside each segment */
    static const char *const bad[] = {"=", "==", "+",        "/",    " ",  "\t", "\n",   "\r",
                                      "%", "*",  "\xc3\xa9", "\x7f", "\\", "\"", "\x80", "\xff"};
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
            char *t = splice(good, ends[s], bad[i]);
            assert_int_equal(verify(t), JOSE_E_MALFORMED);
            free(t);
            t = splice(good, mids[s], bad[i]);
            assert_int_equal(verify(t), JOSE_E_MALFORMED);
            free(t);
        }
        /* a character replaced by a byte >= 0x80, same length (some decoders read '_') */
        static const char high[] = {'\x80', '\xbf', '\xdf', '\xff'};
        for (size_t i = 0; i < sizeof high; i++) {
            char *t = strdup(good);
            t[mids[s]] = high[i];
            assert_int_equal(verify(t), JOSE_E_MALFORMED);
            free(t);
        }
        /* a character replaced by its standard-base64 twin */
        char *t = strdup(good);
        for (size_t j = (s ? ends[s - 1] + 1 : 0); j < ends[s]; j++) {
            if (t[j] == '-' || t[j] == '_') {
                t[j] = t[j] == '-' ? '+' : '/';
                assert_int_equal(verify(t), JOSE_E_MALFORMED);
                break;
            }
        }
        free(t);
        /* a NUL inside a segment ends the string early: never a valid token */
        t = strdup(good);
        t[mids[s]] = '\0';
        assert_int_not_equal(verify(t), JOSE_OK);
        free(t);
    }
    /* every segment padded to a multiple of four, the way standard base64 would be */
    char padded[4096];
    size_t w = 0, seg = 0;
    for (size_t i = 0; i <= n; i++) {
        if (good[i] == '.' || good[i] == '\0') {
            while (seg % 4)
                padded[w++] = '=', seg++;
            seg = 0;
            padded[w++] = good[i];
            continue;
        }
        padded[w++] = good[i];
        seg++;
    }
    assert_true(strlen(padded) > n);
    assert_int_equal(verify(padded), JOSE_E_MALFORMED);
    free(good);
}

static void test_segments(void **state)
{
    (void)state;
    char *good = good_token();
    char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    char tb[4096];
    /* two segments */
    snprintf(tb, sizeof tb, "%.*s", (int)(d2 - good), good);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    /* four segments, including a trailing dot */
    snprintf(tb, sizeof tb, "%s.", good);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    snprintf(tb, sizeof tb, "%s.%s", good, d2 + 1);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    snprintf(tb, sizeof tb, "%.*s.%s", (int)(d1 - good), good, d1);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    /* empty header, empty payload */
    snprintf(tb, sizeof tb, "%s", d1);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    snprintf(tb, sizeof tb, "%.*s.%s", (int)(d1 - good), good, d2);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    static const char *const tiny[] = {"",    ".",     "..",  "...", "....",  "a",
                                       "a.b", "a.b.c", "a..", "..c", " . . ", "\n"};
    for (size_t i = 0; i < ARRAY_LEN(tiny); i++)
        assert_int_equal(verify(tiny[i]), JOSE_E_MALFORMED);
    /* a leading or trailing space, as a sloppy Authorization parser might leave */
    snprintf(tb, sizeof tb, " %s", good);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    snprintf(tb, sizeof tb, "%s ", good);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    snprintf(tb, sizeof tb, "%s\n", good);
    assert_int_equal(verify(tb), JOSE_E_MALFORMED);
    free(good);
}

static void test_sizes(void **state)
{
    (void)state;
    jose_verify_opts o = opts();
    /* whole token over the default cap of 8192 */
    char pad[9000];
    memset(pad, 'p', 8000);
    pad[8000] = '\0';
    char extra[9100];
    snprintf(extra, sizeof extra, ",\"pad\":\"%s\"", pad);
    char *t = forge(std_header(NULL), claims_json(0, 600, extra));
    assert_true(strlen(t) > 8192);
    assert_int_equal(verify(t), JOSE_E_MALFORMED);
    o.max_len = 1u << 30; /* asks for more than the hard cap: still fine at this size */
    assert_int_equal(verify_with(t, lookup_a, NULL, &o), JOSE_OK);
    free(t);
    /* a small caller cap */
    t = good_token();
    o = opts();
    o.max_len = strlen(t);
    assert_int_equal(verify_with(t, lookup_a, NULL, &o), JOSE_OK);
    o.max_len = strlen(t) - 1;
    assert_int_equal(verify_with(t, lookup_a, NULL, &o), JOSE_E_MALFORMED);
    free(t);
    /* header segment over its cap (1024 encoded) in an otherwise small token */
    memset(pad, 'h', 800);
    pad[800] = '\0';
    snprintf(extra, sizeof extra, ",\"x\":\"%s\"", pad);
    assert_int_equal(verify_header(std_header(extra)), JOSE_E_MALFORMED);
    pad[600] = '\0';
    snprintf(extra, sizeof extra, ",\"x\":\"%s\"", pad);
    assert_int_equal(verify_header(std_header(extra)), JOSE_OK);
    /* signature segment over its cap (8192-bit signatures at most) */
    char *good = good_token();
    char *d2 = strrchr(good, '.');
    unsigned char sig[1100];
    memset(sig, 0x41, sizeof sig);
    char *s64 = b64(sig, sizeof sig);
    size_t tn = (size_t)(d2 - good) + strlen(s64) + 2;
    t = malloc(tn);
    snprintf(t, tn, "%.*s.%s", (int)(d2 - good), good, s64);
    assert_int_equal(verify(t), JOSE_E_MALFORMED);
    free(t);
    free(s64);
    /* over the hard cap, whatever max_len says */
    size_t big = JOSE_MAX_TOKEN + 10;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[10] = '.';
    huge[20] = '.';
    huge[big] = '\0';
    o = opts();
    o.max_len = (size_t)-1;
    assert_int_equal(verify_with(huge, lookup_a, NULL, &o), JOSE_E_MALFORMED);
    free(huge);
    free(good);
}

static void test_arguments_and_errors(void **state)
{
    (void)state;
    char *t = good_token();
    jose_verify_opts o = opts();
    json_t *c = NULL;
    assert_int_equal(jose_verify(NULL, lookup_a, NULL, &o, &c, NULL, 0), JOSE_E_MALFORMED);
    assert_int_equal(jose_verify(t, NULL, NULL, &o, &c, NULL, 0), JOSE_E_MALFORMED);
    assert_int_equal(jose_verify(t, lookup_a, NULL, NULL, &c, NULL, 0), JOSE_E_MALFORMED);
    assert_int_equal(jose_verify(t, lookup_a, NULL, &o, NULL, NULL, 0), JOSE_E_MALFORMED);
    /* tiny error buffers are filled safely */
    char e1[1] = {'x'}, e8[8];
    assert_int_equal(jose_verify("x", lookup_a, NULL, &o, &c, e1, sizeof e1), JOSE_E_MALFORMED);
    assert_int_equal(e1[0], '\0');
    assert_int_equal(jose_verify("x", lookup_a, NULL, &o, &c, e8, sizeof e8), JOSE_E_MALFORMED);
    assert_int_equal(strlen(e8), 7);
    for (int rc = 0; rc <= JOSE_E_NOMEM + 1; rc++)
        assert_non_null(jose_strerror(rc));
    assert_string_equal(jose_strerror(-3), "unknown error");
    free(t);
}

static void test_peek_kid(void **state)
{
    (void)state;
    char *t = good_token();
    char kid[64];
    assert_int_equal(jose_peek_kid(t, kid, sizeof kid), 0);
    assert_string_equal(kid, jose_key_kid(key_a));
    assert_int_equal(jose_peek_kid(t, kid, 43), -1); /* no room for the NUL */
    assert_int_equal(jose_peek_kid(t, kid, 44), 0);
    assert_int_equal(jose_peek_kid("", kid, sizeof kid), -1);
    assert_int_equal(jose_peek_kid("abc", kid, sizeof kid), -1);
    assert_int_equal(jose_peek_kid(".x.y", kid, sizeof kid), -1);
    assert_int_equal(jose_peek_kid("e30.x.y", kid, sizeof kid), -1); /* {} */
    assert_int_equal(jose_peek_kid(NULL, kid, sizeof kid), -1);
    free(t);
    t = forge("{\"alg\":\"none\",\"kid\":7}", "{}");
    assert_int_equal(jose_peek_kid(t, kid, sizeof kid), -1);
    free(t);
}

/* ---------------------------------------------------------------- keys */

/* RFC 7638 section 3.1 */
#define RFC7638_N                                                                                  \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"      \
    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_"                              \
    "RN5w6Cf0h4QyQ5v-65YGjQR0_"                                                                    \
    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbI"                         \
    "SD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"            \
    "kEgU8awapJzKnqDKgw"

static void test_rfc7638_thumbprint(void **state)
{
    (void)state;
    json_t *jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", RFC7638_N, "e", "AQAB");
    jose_key *k = NULL;
    assert_int_equal(jose_key_from_jwk(jwk, &k), 0);
    assert_string_equal(jose_key_kid(k), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_false(jose_key_is_private(k));
    /* the published JWK carries it back unchanged */
    json_t *out = jose_key_jwk(k);
    assert_string_equal(json_string_value(json_object_get(out, "n")), RFC7638_N);
    assert_string_equal(json_string_value(json_object_get(out, "e")), "AQAB");
    assert_string_equal(json_string_value(json_object_get(out, "kid")),
                        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_string_equal(json_string_value(json_object_get(out, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(out, "use")), "sig");
    assert_string_equal(json_string_value(json_object_get(out, "kty")), "RSA");
    assert_int_equal(json_object_size(out), 6);
    json_decref(out);
    jose_key_free(k);
    /* The RFC's example carries kid "2011-04-29": our kids are thumbprints, so it is refused. */
    json_object_set_new(jwk, "kid", json_string("2011-04-29"));
    assert_int_not_equal(jose_key_from_jwk(jwk, &k), 0);
    assert_null(k);
    json_object_set_new(jwk, "kid", json_string("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    assert_int_equal(jose_key_from_jwk(jwk, &k), 0);
    jose_key_free(k);
    json_decref(jwk);
}

static void test_kid_is_thumbprint(void **state)
{
    (void)state;
    json_t *jwk = jose_key_jwk(key_a);
    char in[2048];
    snprintf(in, sizeof in, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}",
             json_string_value(json_object_get(jwk, "e")),
             json_string_value(json_object_get(jwk, "n")));
    unsigned char d[32];
    sha256(in, strlen(in), d);
    char want[64];
    assert_int_equal(b64url_encode(d, sizeof d, want, sizeof want), 43);
    assert_string_equal(jose_key_kid(key_a), want);
    assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
    assert_int_equal(strlen(json_string_value(json_object_get(jwk, "n"))), 342);
    assert_string_not_equal(jose_key_kid(key_a), jose_key_kid(key_b));
    json_decref(jwk);
}

static void test_jwk_roundtrip(void **state)
{
    (void)state;
    json_t *jwk = jose_key_jwk(key_a);
    char *s = json_dumps(jwk, JSON_COMPACT); /* through text, as a JWKS fetch would */
    json_t *back = json_loads(s, 0, NULL);
    jose_key *pub = NULL;
    assert_int_equal(jose_key_from_jwk(back, &pub), 0);
    assert_string_equal(jose_key_kid(pub), jose_key_kid(key_a));
    json_t *tok_claims = json_loads(claims_json(0, 600, NULL), 0, NULL);
    char *tok = NULL;
    assert_int_equal(jose_sign(key_a, tok_claims, &tok), 0);
    jose_verify_opts o = opts();
    assert_int_equal(verify_with(tok, lookup_ud, pub, &o), JOSE_OK);
    char *priv = NULL;
    assert_int_not_equal(jose_key_private_pem(pub, &priv), 0);
    assert_null(priv);
    free(tok);
    json_decref(tok_claims);
    jose_key_free(pub);
    json_decref(back);
    json_decref(jwk);
    free(s);
}

static json_t *jwk_with(const char *member, json_t *value)
{
    json_t *j = jose_key_jwk(key_a);
    if (value)
        json_object_set_new(j, member, value);
    else
        json_object_del(j, member);
    return j;
}

static void expect_jwk_refused(json_t *j)
{
    jose_key *k = (jose_key *)1;
    assert_int_not_equal(jose_key_from_jwk(j, &k), 0);
    assert_null(k);
    json_decref(j);
}

static void test_jwk_refused(void **state)
{
    (void)state;
    json_t *ref = jose_key_jwk(key_a);
    const char *n = json_string_value(json_object_get(ref, "n"));
    size_t nl = strlen(n);
    char tb[2048];

    expect_jwk_refused(jwk_with("kty", json_string("EC")));
    expect_jwk_refused(jwk_with("kty", json_string("oct")));
    expect_jwk_refused(jwk_with("kty", json_string("rsa")));
    expect_jwk_refused(jwk_with("kty", NULL));
    expect_jwk_refused(jwk_with("alg", json_string("RS512")));
    expect_jwk_refused(jwk_with("alg", json_string("HS256")));
    expect_jwk_refused(jwk_with("alg", json_string("none")));
    expect_jwk_refused(jwk_with("alg", json_integer(1)));
    expect_jwk_refused(jwk_with("use", json_string("enc")));
    expect_jwk_refused(jwk_with("kid", json_string("not-the-thumbprint")));
    expect_jwk_refused(jwk_with("kid", json_integer(5)));
    expect_jwk_refused(jwk_with("n", NULL));
    expect_jwk_refused(jwk_with("e", NULL));
    expect_jwk_refused(jwk_with("n", json_integer(3)));
    expect_jwk_refused(jwk_with("e", json_integer(65537)));
    expect_jwk_refused(jwk_with("e", json_string("")));
    expect_jwk_refused(jwk_with("e", json_string("AQ")));      /* 1 */
    expect_jwk_refused(jwk_with("e", json_string("Aw")));      /* 3: below 2^16 */
    expect_jwk_refused(jwk_with("e", json_string("AQAA")));    /* even */
    expect_jwk_refused(jwk_with("e", json_string("AAEAAQ")));  /* leading zero */
    expect_jwk_refused(jwk_with("e", json_string("AQAAAAE"))); /* 2^32+1: 5 bytes */
    expect_jwk_refused(jwk_with("e", json_string("AQAB=")));
    expect_jwk_refused(jwk_with("e", json_string("AQA+")));
    /* n with a leading zero octet, padded, with '+', truncated to 1024 bits, made even */
    unsigned char raw[1100];
    int rn = b64url_decode(n, nl, raw, sizeof raw);
    assert_int_equal(rn, 256);
    unsigned char z[1100] = {0};
    memcpy(z + 1, raw, 256);
    char *x = b64(z, 257);
    expect_jwk_refused(jwk_with("n", json_string(x)));
    free(x);
    snprintf(tb, sizeof tb, "%s==", n);
    expect_jwk_refused(jwk_with("n", json_string(tb)));
    snprintf(tb, sizeof tb, "+%s", n + 1);
    expect_jwk_refused(jwk_with("n", json_string(tb)));
    snprintf(tb, sizeof tb, "%s", n);
    tb[7] = '\xff'; /* not UTF-8 either, so build the string member by length */
    expect_jwk_refused(jwk_with("n", json_stringn_nocheck(tb, nl)));
    x = b64(raw, 128);
    expect_jwk_refused(jwk_with("n", json_string(x)));
    free(x);
    x = b64(raw, 255); /* 2040 bits */
    expect_jwk_refused(jwk_with("n", json_string(x)));
    free(x);
    raw[255] &= 0xfe;
    x = b64(raw, 256);
    expect_jwk_refused(jwk_with("n", json_string(x)));
    free(x);
    /* a 2048-bit odd n that is not an RSA modulus (0xff..ff has small factors) */
    memset(raw, 0xff, 256);
    x = b64(raw, 256);
    json_t *j = jwk_with("n", json_string(x));
    json_object_del(j, "kid");
    expect_jwk_refused(j);
    free(x);
    /* over 8192 bits */
    memset(raw, 0xab, sizeof raw);
    x = b64(raw, 1025);
    expect_jwk_refused(jwk_with("n", json_string(x)));
    free(x);
    /* not an object */
    json_t *arr = json_array();
    json_array_append(arr, ref);
    expect_jwk_refused(arr);
    expect_jwk_refused(json_string("RSA"));
    jose_key *k = NULL;
    assert_int_not_equal(jose_key_from_jwk(NULL, &k), 0);
    json_decref(ref);
}

static void test_pem_roundtrip(void **state)
{
    (void)state;
    char *priv = NULL, *pub = NULL;
    assert_int_equal(jose_key_private_pem(key_a, &priv), 0);
    assert_true(str_has_prefix(priv, "-----BEGIN PRIVATE KEY-----\n"));
    assert_int_equal(jose_key_public_pem(key_a, &pub), 0);
    assert_true(str_has_prefix(pub, "-----BEGIN PUBLIC KEY-----\n"));

    /* private: same kid, signs tokens the original verifies, and re-exports identically */
    jose_key *k = NULL;
    assert_int_equal(jose_key_from_pem(priv, strlen(priv), &k), 0);
    assert_true(jose_key_is_private(k));
    assert_string_equal(jose_key_kid(k), jose_key_kid(key_a));
    char *again = NULL;
    assert_int_equal(jose_key_private_pem(k, &again), 0);
    assert_string_equal(again, priv);
    free(again);
    json_t *c = json_loads(claims_json(0, 600, NULL), 0, NULL);
    char *tok = NULL;
    assert_int_equal(jose_sign(k, c, &tok), 0);
    assert_int_equal(verify(tok), JOSE_OK);
    jose_key_free(k);

    /* public: verifies, cannot sign or export a private key; not NUL-terminated input is ok */
    char *copy = malloc(strlen(pub));
    memcpy(copy, pub, strlen(pub));
    assert_int_equal(jose_key_from_pem(copy, strlen(pub), &k), 0);
    free(copy);
    assert_false(jose_key_is_private(k));
    assert_string_equal(jose_key_kid(k), jose_key_kid(key_a));
    jose_verify_opts o = opts();
    assert_int_equal(verify_with(tok, lookup_ud, k, &o), JOSE_OK);
    char *t2 = NULL, *p2 = NULL;
    assert_int_not_equal(jose_sign(k, c, &t2), 0);
    assert_int_not_equal(jose_key_private_pem(k, &p2), 0);
    jose_key_free(k);
    free(tok);
    json_decref(c);

    /* refused: empty, garbage, truncated, traditional RSA PEM, encrypted, EC, RSA-1024 */
    k = (jose_key *)1;
    assert_int_not_equal(jose_key_from_pem(priv, 0, &k), 0);
    assert_null(k);
    assert_int_not_equal(jose_key_from_pem("hello", 5, &k), 0);
    assert_int_not_equal(jose_key_from_pem(priv, strlen(priv) / 2, &k), 0);
    assert_int_not_equal(jose_key_from_pem(NULL, 10, &k), 0);

    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    long pl;
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, pkey_a, NULL, NULL, 0, NULL, NULL),
                     1);
    pl = BIO_get_mem_data(bio, &p);
    assert_true(memmem(p, (size_t)pl, "BEGIN RSA PRIVATE KEY", 21) != NULL);
    assert_int_not_equal(jose_key_from_pem(p, (size_t)pl, &k), 0);
    BIO_free(bio);

    bio = BIO_new(BIO_s_mem());
    assert_int_equal(
        PEM_write_bio_PKCS8PrivateKey(bio, pkey_a, EVP_aes_256_cbc(), "secret", 6, NULL, NULL), 1);
    pl = BIO_get_mem_data(bio, &p);
    assert_int_not_equal(jose_key_from_pem(p, (size_t)pl, &k), 0);
    BIO_free(bio);

    EVP_PKEY *ec = EVP_EC_gen("P-256");
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL), 1);
    pl = BIO_get_mem_data(bio, &p);
    assert_int_not_equal(jose_key_from_pem(p, (size_t)pl, &k), 0);
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, ec), 1);
    pl = BIO_get_mem_data(bio, &p);
    assert_int_not_equal(jose_key_from_pem(p, (size_t)pl, &k), 0);
    BIO_free(bio);
    EVP_PKEY_free(ec);

    EVP_PKEY *small = EVP_RSA_gen(1024);
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, small, NULL, NULL, 0, NULL, NULL), 1);
    pl = BIO_get_mem_data(bio, &p);
    assert_int_not_equal(jose_key_from_pem(p, (size_t)pl, &k), 0);
    BIO_free(bio);
    EVP_PKEY_free(small);
    assert_null(k);

    free(priv);
    free(pub);
}

static void test_refcount(void **state)
{
    (void)state;
    jose_key *k = NULL;
    assert_int_equal(jose_key_generate(&k), 0);
    assert_ptr_equal(jose_key_ref(k), k);
    assert_ptr_equal(jose_key_ref(k), k);
    jose_key_free(k);
    jose_key_free(k);
    assert_true(strlen(jose_key_kid(k)) == 43); /* still alive */
    jose_key_free(k);
    assert_null(jose_key_ref(NULL));
    jose_key_free(NULL);
}

/* ---------------------------------------------------------------- threads */

#define THREADS    8
#define PER_THREAD 200

typedef struct {
    jose_key *shared;
    const char *tokens[2]; /* one good, one tampered */
    int ok, bad;
} thread_job;

static void *verifier(void *arg)
{
    thread_job *j = arg;
    jose_verify_opts o = {.issuer = ISS, .now = NOW};
    for (int i = 0; i < PER_THREAD; i++) {
        json_t *c = NULL;
        int rc = jose_verify(j->tokens[i & 1], lookup_ud, j->shared, &o, &c, NULL, 0);
        if (rc == JOSE_OK && json_is_object(c))
            j->ok++;
        else if (rc == JOSE_E_SIGNATURE)
            j->bad++;
        json_decref(c);
    }
    /* and a signature each, with the same key */
    json_t *c = json_pack("{s:s, s:I}", "iss", ISS, "exp", (json_int_t)(NOW + 60));
    char *t = NULL;
    if (jose_sign(j->shared, c, &t) == 0) {
        json_t *out = NULL;
        if (jose_verify(t, lookup_ud, j->shared, &o, &out, NULL, 0) == JOSE_OK)
            j->ok++;
        json_decref(out);
    }
    free(t);
    json_decref(c);
    return NULL;
}

static void test_threads_share_key(void **state)
{
    (void)state;
    /* The shared key is reached only through a reference the test drops early: the verifiers'
     * own references must keep it alive. */
    char *priv = NULL;
    assert_int_equal(jose_key_private_pem(key_a, &priv), 0);
    jose_key *shared = NULL;
    assert_int_equal(jose_key_from_pem(priv, strlen(priv), &shared), 0);
    free(priv);
    char *good = good_token();
    char *tampered = strdup(good);
    char *s = strrchr(tampered, '.') + 10; /* inside the signature */
    *s = *s == 'A' ? 'B' : 'A';

    pthread_t th[THREADS];
    thread_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (thread_job){.shared = jose_key_ref(shared), .tokens = {good, tampered}};
        assert_int_equal(pthread_create(&th[i], NULL, verifier, &jobs[i]), 0);
    }
    jose_key_free(shared);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].ok, PER_THREAD / 2 + 1);
        assert_int_equal(jobs[i].bad, PER_THREAD / 2);
        jose_key_free(jobs[i].shared);
    }
    free(tampered);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_roundtrip),
        cmocka_unit_test(test_sign_refuses),
        cmocka_unit_test(test_sign_large_claims),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_hs256_with_public_key),
        cmocka_unit_test(test_alg_others),
        cmocka_unit_test(test_banned_headers),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_other_key_same_kid),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_mutations_never_verify),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_bad_time_claims),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_not_objects),
        cmocka_unit_test(test_padding_and_alphabet),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_arguments_and_errors),
        cmocka_unit_test(test_peek_kid),
        cmocka_unit_test(test_rfc7638_thumbprint),
        cmocka_unit_test(test_kid_is_thumbprint),
        cmocka_unit_test(test_jwk_roundtrip),
        cmocka_unit_test(test_jwk_refused),
        cmocka_unit_test(test_pem_roundtrip),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_threads_share_key),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
