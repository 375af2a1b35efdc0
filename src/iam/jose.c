/* jose: RS256 compact JWS, RSA keys as PEM and JWK, RFC 7638 kids — on OpenSSL 3 EVP.
 * Keys keep their parsed EVP_PKEY and a precomputed signing header, so signing and verifying
 * add little to the RSA operation itself; verification decodes into stack buffers sized by
 * the segment caps and rejects anything that is not exactly what osbill issues. */
#include "iam/jose.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define MIN_BITS        2048
#define MAX_BITS        8192
#define MAX_SIG         (MAX_BITS / 8)
#define MAX_SIG_B64     ((MAX_SIG * 4 + 2) / 3) /* 1366 */
#define MAX_HEADER_RAW  (JOSE_MAX_HEADER_B64 / 4 * 3)
#define STACK_PAYLOAD   6144 /* decoded payload of a default 8192-byte token */
#define DEFAULT_MAX_LEN 8192
#define MAX_PEM         65536
#define MAX_LEEWAY      60
#define KID_LEN         43 /* base64url of 32 bytes */

struct jose_key {
    atomic_uint refs;
    EVP_PKEY *pkey;
    bool priv;
    size_t sig_len; /* modulus size in bytes: every RS256 signature has it */
    char kid[KID_LEN + 1];
    char *n_b64, *e_b64; /* the JWK members */
    char *hdr_b64;       /* base64url of {"alg":"RS256","typ":"JWT","kid":"<kid>"} */
    size_t hdr_b64_len;
    /* Initialised once for RS256 verification and only ever copied from (a const use, safe
     * from many threads): a copy costs far less than EVP_DigestVerifyInit's fetches. */
    EVP_MD_CTX *verify_tmpl;
    EVP_MD_CTX *sign_tmpl; /* the same for RS256 signing, on private keys */
};

/* ---------------------------------------------------------------- base64url */

/* Value + 1 of each base64url character (RFC 4648 section 5); 0 for everything else,
 * including every byte >= 0x80. */
/* clang-format off */
static const unsigned char b64url_value[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 63,  0,  0,
    53, 54, 55, 56, 57, 58, 59, 60, 61, 62,  0,  0,  0,  0,  0,  0,
     0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,  0,  0,  0,  0, 64,
     0, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
    42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,  0,  0,  0,  0,  0,
};
/* clang-format on */

/* Strict base64url decoding of untrusted input: alphabet only, no padding, no length that
 * cannot occur (n % 4 == 1), and unused trailing bits must be zero, so every byte string has
 * exactly one accepted spelling. base's b64url_decode is not used here: libsodium 1.0.18
 * decodes bytes 0x80-0xff as if they were '_'. Returns the decoded length, or -1. */
static long b64url_strict(const char *in, size_t n, unsigned char *out, size_t outsz)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t rem = n % 4;
    if (rem == 1 || n / 4 * 3 + (rem ? rem - 1 : 0) > outsz)
        return -1;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        unsigned a = b64url_value[p[i]], b = b64url_value[p[i + 1]], c = b64url_value[p[i + 2]],
                 d = b64url_value[p[i + 3]];
        if (!a || !b || !c || !d)
            return -1;
        uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    if (rem) {
        unsigned a = b64url_value[p[i]], b = b64url_value[p[i + 1]];
        unsigned c = rem == 3 ? b64url_value[p[i + 2]] : 1;
        if (!a || !b || !c)
            return -1;
        a--;
        b--;
        c--;
        if (rem == 2 && (b & 0x0f))
            return -1;
        if (rem == 3 && (c & 0x03))
            return -1;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        if (rem == 3)
            out[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
    }
    return (long)o;
}

/* ---------------------------------------------------------------- keys */

static char *b64url_dup(const unsigned char *p, size_t n)
{
    size_t sz = b64_encoded_len(n);
    char *s = malloc(sz);
    if (s && b64url_encode(p, n, s, sz) < 0) {
        free(s);
        s = NULL;
    }
    return s;
}

static char *bn_b64url(const BIGNUM *bn)
{
    unsigned char tmp[MAX_SIG];
    int n = BN_num_bytes(bn);
    if (n <= 0 || n > (int)sizeof tmp)
        return NULL;
    BN_bn2bin(bn, tmp);
    return b64url_dup(tmp, (size_t)n);
}

/* e must be odd, above 2^16 (what OpenSSL's SP 800-56B check wants) and below 2^32 (keeps
 * verification cheap: a huge public exponent would make every verify expensive). */
static bool exponent_ok(const BIGNUM *e)
{
    return BN_is_odd(e) && BN_num_bits(e) > 16 && BN_num_bits(e) <= 32;
}

/* Checks an RSA EVP_PKEY and wraps it: computes the JWK members, the RFC 7638 thumbprint and
 * the signing header. Takes ownership of pkey whatever happens. */
static int key_wrap(EVP_PKEY *pkey, bool priv, jose_key **out)
{
    BIGNUM *n = NULL, *e = NULL;
    char *thumb_in = NULL;
    EVP_PKEY_CTX *pc = NULL;
    int rc = OSB_E_INVAL;
    *out = NULL;
    jose_key *k = calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pkey);
        return OSB_E_NOMEM;
    }
    atomic_init(&k->refs, 1);
    k->pkey = pkey;
    k->priv = priv;
    if (!EVP_PKEY_is_a(pkey, "RSA"))
        goto out;
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < MIN_BITS || bits > MAX_BITS)
        goto out;
    k->sig_len = (size_t)EVP_PKEY_get_size(pkey);
    if (k->sig_len != ((size_t)bits + 7) / 8)
        goto out;
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) || !exponent_ok(e))
        goto out;
    /* Keys come from storage or a JWKS: check them once here rather than trust them forever. */
    pc = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!pc || (priv ? EVP_PKEY_pairwise_check(pc) : EVP_PKEY_public_check(pc)) != 1)
        goto out;
    rc = OSB_E_NOMEM;
    if (!(k->n_b64 = bn_b64url(n)) || !(k->e_b64 = bn_b64url(e)))
        goto out;
    /* RFC 7638: the required members in lexicographic order, no whitespace. */
    size_t tn = strlen(k->n_b64) + strlen(k->e_b64) + 32;
    if (!(thumb_in = malloc(tn)))
        goto out;
    int tl =
        snprintf(thumb_in, tn, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", k->e_b64, k->n_b64);
    unsigned char digest[32];
    sha256(thumb_in, (size_t)tl, digest);
    if (b64url_encode(digest, sizeof digest, k->kid, sizeof k->kid) != KID_LEN)
        goto out;
    char hdr[128];
    int hl =
        snprintf(hdr, sizeof hdr, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->kid);
    if (!(k->hdr_b64 = b64url_dup((unsigned char *)hdr, (size_t)hl)))
        goto out;
    k->hdr_b64_len = strlen(k->hdr_b64);
    if (!(k->verify_tmpl = EVP_MD_CTX_new()))
        goto out;
    rc = OSB_E_INVAL;
    if (EVP_DigestVerifyInit_ex(k->verify_tmpl, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1)
        goto out;
    if (priv && (!(k->sign_tmpl = EVP_MD_CTX_new()) ||
                 EVP_DigestSignInit_ex(k->sign_tmpl, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1))
        goto out;
    rc = 0;
out:
    BN_free(n);
    BN_free(e);
    free(thumb_in);
    EVP_PKEY_CTX_free(pc);
    ERR_clear_error();
    if (rc) {
        jose_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int jose_key_generate(jose_key **out)
{
    *out = NULL;
    EVP_PKEY *pkey = EVP_RSA_gen(2048); /* e = 65537 */
    if (!pkey) {
        ERR_clear_error();
        return OSB_E_NOMEM;
    }
    return key_wrap(pkey, true, out);
}

int jose_key_from_pem(const char *pem, size_t len, jose_key **out)
{
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    EVP_PKEY *pkey = NULL;
    bool priv = false;
    *out = NULL;
    if (!pem || len == 0 || len > MAX_PEM)
        return OSB_E_INVAL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return OSB_E_NOMEM;
    /* PEM_read_bio rather than PEM_read_bio_PrivateKey: no password callback that could
     * prompt on a terminal, and the label tells exactly which structure is inside. */
    if (PEM_read_bio(bio, &name, &header, &data, &dlen) == 1 && header && !header[0] && dlen > 0) {
        const unsigned char *p = data;
        if (strcmp(name, "PRIVATE KEY") == 0) {
            PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, dlen);
            if (p8 && p == data + dlen)
                pkey = EVP_PKCS82PKEY(p8);
            PKCS8_PRIV_KEY_INFO_free(p8);
            priv = true;
        } else if (strcmp(name, "PUBLIC KEY") == 0) {
            pkey = d2i_PUBKEY(NULL, &p, dlen);
            if (pkey && p != data + dlen) {
                EVP_PKEY_free(pkey);
                pkey = NULL;
            }
        }
    }
    BIO_free(bio);
    OPENSSL_free(name);
    OPENSSL_free(header);
    if (data)
        OPENSSL_clear_free(data, (size_t)dlen);
    ERR_clear_error();
    if (!pkey)
        return OSB_E_INVAL;
    return key_wrap(pkey, priv, out);
}

static int bio_to_string(BIO *bio, char **pem)
{
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    if (n <= 0)
        return OSB_E_INVAL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return OSB_E_NOMEM;
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    *pem = s;
    return 0;
}

int jose_key_private_pem(const jose_key *k, char **pem)
{
    *pem = NULL;
    if (!k || !k->priv)
        return OSB_E_INVAL;
    BIO *bio = BIO_new(BIO_s_secmem()); /* cleared when freed */
    if (!bio)
        return OSB_E_NOMEM;
    int rc = PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) == 1
                 ? bio_to_string(bio, pem)
                 : OSB_E_INVAL;
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int jose_key_public_pem(const jose_key *k, char **pem)
{
    *pem = NULL;
    if (!k)
        return OSB_E_INVAL;
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return OSB_E_NOMEM;
    int rc = PEM_write_bio_PUBKEY(bio, k->pkey) == 1 ? bio_to_string(bio, pem) : OSB_E_INVAL;
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

const char *jose_key_kid(const jose_key *k)
{
    return k ? k->kid : "";
}

bool jose_key_is_private(const jose_key *k)
{
    return k && k->priv;
}

json_t *jose_key_jwk(const jose_key *k)
{
    if (!k)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", k->kid, "use", "sig",
                     "alg", "RS256", "n", k->n_b64, "e", k->e_b64);
}

/* A JWK member that must be exactly want when present. */
static bool member_is(const json_t *jwk, const char *name, const char *want, bool required)
{
    const json_t *v = json_object_get(jwk, name);
    if (!v)
        return !required;
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0 &&
           json_string_length(v) == strlen(want);
}

/* A JWK integer: strict base64url of a minimal (no leading zero octet) big-endian value. */
static BIGNUM *jwk_uint(const json_t *jwk, const char *name, size_t max_bytes)
{
    unsigned char raw[MAX_SIG + 1];
    const json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v) || json_string_length(v) > MAX_SIG_B64)
        return NULL;
    long n = b64url_strict(json_string_value(v), json_string_length(v), raw, sizeof raw);
    if (n <= 0 || (size_t)n > max_bytes || raw[0] == 0)
        return NULL;
    return BN_bin2bn(raw, (int)n, NULL);
}

int jose_key_from_jwk(const json_t *jwk, jose_key **out)
{
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pc = NULL;
    EVP_PKEY *pkey = NULL;
    int rc = OSB_E_INVAL;
    *out = NULL;
    if (!json_is_object(jwk) || !member_is(jwk, "kty", "RSA", true) ||
        !member_is(jwk, "alg", "RS256", false) || !member_is(jwk, "use", "sig", false))
        return OSB_E_INVAL;
    const json_t *kid = json_object_get(jwk, "kid");
    if (kid && (!json_is_string(kid) || json_string_length(kid) != KID_LEN))
        return OSB_E_INVAL;
    if (!(n = jwk_uint(jwk, "n", MAX_SIG)) || !(e = jwk_uint(jwk, "e", 4)))
        goto out;
    if (BN_num_bits(n) < MIN_BITS || BN_num_bits(n) > MAX_BITS || !BN_is_odd(n) || !exponent_ok(e))
        goto out;
    rc = OSB_E_NOMEM;
    if (!(bld = OSSL_PARAM_BLD_new()) || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)))
        goto out;
    rc = OSB_E_INVAL;
    if (EVP_PKEY_fromdata_init(pc) != 1 ||
        EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    rc = key_wrap(pkey, false, out);
    pkey = NULL;
    if (!rc && kid && strcmp(json_string_value(kid), (*out)->kid) != 0) {
        jose_key_free(*out);
        *out = NULL;
        rc = OSB_E_INVAL;
    }
out:
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

jose_key *jose_key_ref(jose_key *k)
{
    if (k)
        atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void jose_key_free(jose_key *k)
{
    if (!k || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    EVP_MD_CTX_free(k->verify_tmpl);
    EVP_MD_CTX_free(k->sign_tmpl);
    EVP_PKEY_free(k->pkey);
    free(k->n_b64);
    free(k->e_b64);
    free(k->hdr_b64);
    free(k);
}

/* ---------------------------------------------------------------- signing */

int jose_sign(const jose_key *k, const json_t *claims, char **out)
{
    char stack[2048];
    char *payload = stack;
    char *tok = NULL;
    EVP_MD_CTX *mc = NULL;
    int rc = OSB_E_INVAL;
    *out = NULL;
    if (!k || !k->priv || !json_is_object(claims))
        return OSB_E_INVAL;
    size_t pn = json_dumpb(claims, stack, sizeof stack, JSON_COMPACT);
    if (pn == 0)
        return OSB_E_INVAL;
    if (pn > sizeof stack) {
        if (pn > JOSE_MAX_TOKEN || !(payload = malloc(pn)))
            return pn > JOSE_MAX_TOKEN ? OSB_E_TOOBIG : OSB_E_NOMEM;
        if (json_dumpb(claims, payload, pn, JSON_COMPACT) != pn)
            goto out;
    }
    size_t p64 = b64_encoded_len(pn), s64 = b64_encoded_len(k->sig_len);
    size_t total = k->hdr_b64_len + 1 + p64 + 1 + s64;
    rc = OSB_E_NOMEM;
    if (!(tok = malloc(total)))
        goto out;
    memcpy(tok, k->hdr_b64, k->hdr_b64_len);
    size_t at = k->hdr_b64_len;
    tok[at++] = '.';
    int w = b64url_encode(payload, pn, tok + at, total - at);
    if (w < 0)
        goto out;
    at += (size_t)w;
    unsigned char sig[MAX_SIG];
    size_t sl = sizeof sig;
    if (!(mc = EVP_MD_CTX_new()))
        goto out;
    rc = OSB_E_INVAL;
    if (EVP_MD_CTX_copy_ex(mc, k->sign_tmpl) != 1 ||
        EVP_DigestSign(mc, sig, &sl, (const unsigned char *)tok, at) != 1 || sl != k->sig_len)
        goto out;
    tok[at++] = '.';
    if (b64url_encode(sig, sl, tok + at, total - at) < 0)
        goto out;
    *out = tok;
    tok = NULL;
    rc = 0;
out:
    EVP_MD_CTX_free(mc);
    ERR_clear_error();
    free(tok);
    if (payload != stack)
        free(payload);
    return rc;
}

/* ---------------------------------------------------------------- verification */

static const char *const jose_errors[] = {
    [JOSE_OK] = "ok",
    [JOSE_E_MALFORMED] = "malformed token",
    [JOSE_E_ALG] = "algorithm not allowed",
    [JOSE_E_HEADER] = "header not allowed",
    [JOSE_E_KID] = "unknown or missing kid",
    [JOSE_E_SIGNATURE] = "bad signature",
    [JOSE_E_EXPIRED] = "token expired",
    [JOSE_E_NOT_YET_VALID] = "token not yet valid",
    [JOSE_E_ISSUER] = "wrong issuer",
    [JOSE_E_AUDIENCE] = "wrong audience",
    [JOSE_E_CLAIMS] = "bad claims",
    [JOSE_E_NOMEM] = "out of memory",
};

const char *jose_strerror(int rc)
{
    if (rc < 0 || (size_t)rc >= ARRAY_LEN(jose_errors) || !jose_errors[rc])
        return "unknown error";
    return jose_errors[rc];
}

static int fail(char *err, size_t errlen, int code, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", jose_strerror(code), why);
    return code;
}

/* Strictly decodes one segment; false for bad characters, padding or a short buffer. */
static bool seg_decode(const char *s, size_t n, unsigned char *out, size_t outsz, size_t *got)
{
    long r = b64url_strict(s, n, out, outsz);
    if (r < 0)
        return false;
    *got = (size_t)r;
    return true;
}

static json_t *parse_object(const unsigned char *p, size_t n)
{
    json_error_t je;
    json_t *v = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static bool str_is(const json_t *v, const char *want)
{
    size_t n = strlen(want);
    return json_string_length(v) == n && memcmp(json_string_value(v), want, n) == 0;
}

static bool kid_printable(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

/* An optional time claim: absent is fine, present must be an integer. */
static bool time_claim(const json_t *c, const char *name, bool *present, json_int_t *v)
{
    const json_t *t = json_object_get(c, name);
    *present = t != NULL;
    if (!t)
        return true;
    if (!json_is_integer(t))
        return false;
    *v = json_integer_value(t);
    return true;
}

static bool audience_ok(const json_t *c, const char *want)
{
    const json_t *aud = json_object_get(c, "aud");
    if (json_is_string(aud) && str_is(aud, want))
        return true;
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) {
        const json_t *v = json_array_get(aud, i);
        if (json_is_string(v) && str_is(v, want))
            return true;
    }
    const json_t *cid = json_object_get(c, "client_id");
    return json_is_string(cid) && str_is(cid, want);
}

static int check_claims(const json_t *c, const jose_verify_opts *o, char *err, size_t errlen)
{
    json_int_t exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat;
    if (!time_claim(c, "exp", &has_exp, &exp) || !has_exp)
        return fail(err, errlen, JOSE_E_CLAIMS, "exp missing or not an integer");
    if (!time_claim(c, "nbf", &has_nbf, &nbf))
        return fail(err, errlen, JOSE_E_CLAIMS, "nbf not an integer");
    if (!time_claim(c, "iat", &has_iat, &iat))
        return fail(err, errlen, JOSE_E_CLAIMS, "iat not an integer");
    int64_t now = o->now ? o->now : time_now_ms() / 1000;
    int64_t leeway = o->leeway_s < 0 ? 0 : o->leeway_s > MAX_LEEWAY ? MAX_LEEWAY : o->leeway_s;
    if (exp <= now - leeway)
        return fail(err, errlen, JOSE_E_EXPIRED, "exp is past");
    if (has_nbf && nbf > now + leeway)
        return fail(err, errlen, JOSE_E_NOT_YET_VALID, "nbf is in the future");
    if (has_iat && iat > now + leeway)
        return fail(err, errlen, JOSE_E_NOT_YET_VALID, "iat is in the future");
    const json_t *iss = json_object_get(c, "iss");
    if (!o->issuer || !json_is_string(iss) || !str_is(iss, o->issuer))
        return fail(err, errlen, JOSE_E_ISSUER, "iss is not the expected issuer");
    if (o->audience && !audience_ok(c, o->audience))
        return fail(err, errlen, JOSE_E_AUDIENCE, "audience not in aud or client_id");
    return JOSE_OK;
}

static bool rs256_verify(const jose_key *k, const unsigned char *sig, size_t sl, const char *msg,
                         size_t ml)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    if (!mc)
        return false;
    bool ready = EVP_MD_CTX_copy_ex(mc, k->verify_tmpl) == 1;
    if (!ready) { /* a provider that cannot duplicate contexts: initialise afresh */
        EVP_MD_CTX_reset(mc);
        ready = EVP_DigestVerifyInit_ex(mc, NULL, "SHA256", NULL, NULL, k->pkey, NULL) == 1;
    }
    bool ok = ready && EVP_DigestVerify(mc, sig, sl, (const unsigned char *)msg, ml) == 1;
    EVP_MD_CTX_free(mc);
    if (!ok)
        ERR_clear_error();
    return ok;
}

int jose_verify(const char *jwt, jose_lookup_fn lookup, void *ud, const jose_verify_opts *o,
                json_t **claims, char *err, size_t errlen)
{
    unsigned char hraw[MAX_HEADER_RAW + 3];
    unsigned char sraw[MAX_SIG + 3];
    unsigned char pstack[STACK_PAYLOAD];
    unsigned char *praw = pstack;
    json_t *h = NULL, *c = NULL;
    jose_key *k = NULL;
    size_t hn, pn, sn;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (claims)
        *claims = NULL;
    if (!jwt || !lookup || !o || !claims)
        return fail(err, errlen, JOSE_E_MALFORMED, "missing argument");

    /* 1. Shape: three segments within caps, strictly base64url. */
    size_t cap = o->max_len ? o->max_len : DEFAULT_MAX_LEN;
    if (cap > JOSE_MAX_TOKEN)
        cap = JOSE_MAX_TOKEN;
    size_t len = strnlen(jwt, cap + 1);
    if (len > cap)
        return fail(err, errlen, JOSE_E_MALFORMED, "token too long");
    const char *d1 = memchr(jwt, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt)) : NULL;
    if (!d2)
        return fail(err, errlen, JOSE_E_MALFORMED, "fewer than three segments");
    const char *sig = d2 + 1;
    size_t hl = (size_t)(d1 - jwt), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(sig - jwt);
    if (memchr(sig, '.', sl))
        return fail(err, errlen, JOSE_E_MALFORMED, "more than three segments");
    if (hl == 0 || pl == 0)
        return fail(err, errlen, JOSE_E_MALFORMED, "empty segment");
    if (hl > JOSE_MAX_HEADER_B64 || sl > MAX_SIG_B64)
        return fail(err, errlen, JOSE_E_MALFORMED, "segment too long");
    size_t pcap = pl / 4 * 3 + 3;
    if (pcap <= sizeof pstack)
        pcap = sizeof pstack;
    else if (!(praw = malloc(pcap)))
        return fail(err, errlen, JOSE_E_NOMEM, "payload buffer");
    if (!seg_decode(jwt, hl, hraw, sizeof hraw, &hn) || !seg_decode(d1 + 1, pl, praw, pcap, &pn) ||
        !seg_decode(sig, sl, sraw, sizeof sraw, &sn)) {
        rc = fail(err, errlen, JOSE_E_MALFORMED, "bad base64url");
        goto out;
    }

    /* 1b. Both JSON objects, duplicate keys refused (two parsers must not disagree). */
    if (!(h = parse_object(hraw, hn))) {
        rc = fail(err, errlen, JOSE_E_MALFORMED, "header is not a JSON object");
        goto out;
    }
    if (!(c = parse_object(praw, pn))) {
        rc = fail(err, errlen, JOSE_E_MALFORMED, "claims are not a JSON object");
        goto out;
    }

    /* 2. The algorithm is fixed by the key type; nothing in the header may pick another. */
    const json_t *alg = json_object_get(h, "alg");
    if (!json_is_string(alg) || !str_is(alg, "RS256")) {
        rc = fail(err, errlen, JOSE_E_ALG, "alg is not RS256");
        goto out;
    }
    static const char *const banned[] = {"crit", "jku", "x5u", "jwk", "x5c"};
    for (size_t i = 0; i < ARRAY_LEN(banned); i++) {
        if (json_object_get(h, banned[i])) {
            rc = fail(err, errlen, JOSE_E_HEADER, banned[i]);
            goto out;
        }
    }
    const json_t *typ = json_object_get(h, "typ");
    if (typ && !(json_is_string(typ) && (strcasecmp(json_string_value(typ), "JWT") == 0 ||
                                         strcasecmp(json_string_value(typ), "at+jwt") == 0))) {
        rc = fail(err, errlen, JOSE_E_HEADER, "typ is not JWT");
        goto out;
    }

    /* 3. kid: exact match in the caller's key set only. */
    const json_t *kid = json_object_get(h, "kid");
    if (!json_is_string(kid) || json_string_length(kid) == 0 ||
        json_string_length(kid) > JOSE_MAX_KID) {
        rc = fail(err, errlen, JOSE_E_KID, "kid missing or not a string");
        goto out;
    }
    if (!(k = lookup(ud, json_string_value(kid)))) {
        const char *ks = json_string_value(kid);
        if (err && errlen && kid_printable(ks))
            snprintf(err, errlen, "%s: %s", jose_strerror(JOSE_E_KID), ks);
        else
            fail(err, errlen, JOSE_E_KID, "not in the key set");
        rc = JOSE_E_KID;
        goto out;
    }

    /* 4. The signature over the bytes as received. */
    if (sn != k->sig_len || !rs256_verify(k, sraw, sn, jwt, (size_t)(d2 - jwt))) {
        rc = fail(err, errlen, JOSE_E_SIGNATURE, "signature does not verify");
        goto out;
    }

    /* 5. Claims. */
    if ((rc = check_claims(c, o, err, errlen)) != JOSE_OK)
        goto out;
    *claims = c;
    c = NULL;
out:
    jose_key_free(k);
    json_decref(h);
    json_decref(c);
    if (praw != pstack)
        free(praw);
    return rc;
}

int jose_peek_kid(const char *jwt, char *kid, size_t kidlen)
{
    unsigned char hraw[MAX_HEADER_RAW + 3];
    size_t hn;
    if (!jwt || !kid || kidlen == 0)
        return -1;
    size_t len = strnlen(jwt, JOSE_MAX_HEADER_B64 + 1);
    const char *d1 = memchr(jwt, '.', len);
    if (!d1 || d1 == jwt || !seg_decode(jwt, (size_t)(d1 - jwt), hraw, sizeof hraw, &hn))
        return -1;
    json_t *h = parse_object(hraw, hn);
    const json_t *v = json_object_get(h, "kid");
    int rc = -1;
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < kidlen &&
        json_string_length(v) <= JOSE_MAX_KID) {
        memcpy(kid, json_string_value(v), json_string_length(v) + 1);
        rc = 0;
    }
    json_decref(h);
    return rc;
}
