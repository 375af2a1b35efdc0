/* jose: the small part of JOSE that osbill needs — RS256 JWS in compact form, RSA keys as PEM
 * and as JWK with RFC 7638 thumbprints for kids — on OpenSSL 3 EVP. The platform signs and
 * verifies access tokens with it and libosb verifies the platform's tokens with it. There is
 * no algorithm negotiation: a key is RS256 and nothing else, so alg confusion cannot happen. */
#ifndef OSBILL_IAM_JOSE_H
#define OSBILL_IAM_JOSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/base.h"

/* An RSA key, 2048 to 8192 bits, e = 65537-like (odd, > 2^16, < 2^32): private (can sign and
 * verify) or public only (verifies). Immutable once made and reference counted, so one key can
 * be shared by a key set and by any number of threads. */
typedef struct jose_key jose_key;

/* A new RSA 2048 key with e = 65537. Returns 0 or OSB_E_NOMEM / OSB_E_INVAL. */
int jose_key_generate(jose_key **out) WARN_UNUSED;
/* Parses a PEM "PRIVATE KEY" (unencrypted PKCS#8) or "PUBLIC KEY" (SPKI) holding an RSA key.
 * pem need not be NUL-terminated. Encrypted and non-RSA keys are refused (OSB_E_INVAL). */
int jose_key_from_pem(const char *pem, size_t len, jose_key **out) WARN_UNUSED;
/* The private key as unencrypted PKCS#8 PEM, NUL-terminated, malloc'd: the caller wipes
 * (secure_wipe) and frees it. OSB_E_INVAL for a public-only key. */
int jose_key_private_pem(const jose_key *k, char **pem) WARN_UNUSED;
/* The public key as SPKI PEM ("PUBLIC KEY"), NUL-terminated, malloc'd. */
int jose_key_public_pem(const jose_key *k, char **pem) WARN_UNUSED;
/* The RFC 7638 JWK thumbprint, base64url(SHA-256), 43 characters. Owned by the key. */
const char *jose_key_kid(const jose_key *k);
/* True when the key can sign. */
bool jose_key_is_private(const jose_key *k);
/* The public JWK {"kty":"RSA","kid","use":"sig","alg":"RS256","n","e"}; a new reference for
 * the caller, NULL when out of memory. */
json_t *jose_key_jwk(const jose_key *k);
/* A public key from an RSA JWK. Refused (OSB_E_INVAL): kty other than "RSA", n or e that are
 * not strict base64url of a minimal big-endian integer, n under 2048 or over 8192 bits, an
 * unusable e, "alg" other than "RS256", "use" other than "sig", and "kid" other than the
 * key's thumbprint (kids are thumbprints by contract, so a mismatch means a broken JWKS).
 * Private members are ignored: only the public key is loaded. */
int jose_key_from_jwk(const json_t *jwk, jose_key **out) WARN_UNUSED;
/* Drops one reference; the last one frees the key. NULL is fine. */
void jose_key_free(jose_key *k);
/* Takes one more reference (thread-safe) and returns k. NULL is fine (returns NULL). */
jose_key *jose_key_ref(jose_key *k);

/* Signs claims (a JSON object) as a compact JWS with the header exactly
 * {"alg":"RS256","typ":"JWT","kid":"<kid>"}. *out is malloc'd and NUL-terminated.
 * OSB_E_INVAL for a public-only key or claims that are not an object, OSB_E_NOMEM. */
int jose_sign(const jose_key *k, const json_t *claims, char **out) WARN_UNUSED;

/* Key lookup for verification: returns a referenced key for an exact kid match (the caller
 * drops it with jose_key_free) or NULL. Called at most once per jose_verify. */
typedef jose_key *(*jose_lookup_fn)(void *ud, const char *kid);

typedef struct {
    const char *issuer;   /* required: iss must equal it exactly */
    const char *audience; /* optional: when set, aud (string or array) or client_id must hold it */
    int64_t now;          /* seconds since the epoch; 0 = now */
    int leeway_s;         /* clock skew allowance, capped at 60; negative counts as 0 */
    size_t max_len;       /* whole-token cap; 0 = 8192; never above JOSE_MAX_TOKEN */
} jose_verify_opts;

#define JOSE_MAX_TOKEN      65536 /* hard cap on a token whatever max_len says */
#define JOSE_MAX_HEADER_B64 1024  /* cap on the encoded header segment */
#define JOSE_MAX_KID        128   /* cap on a kid, in bytes */

enum {
    JOSE_OK = 0,
    JOSE_E_MALFORMED = 1, /* not three strict base64url segments of JSON objects, too big */
    JOSE_E_ALG,           /* header alg missing or not exactly "RS256" */
    JOSE_E_HEADER,        /* crit, jku, x5u, jwk, x5c present, or a bad typ */
    JOSE_E_KID,           /* kid missing, not a string, or not found */
    JOSE_E_SIGNATURE,     /* signature does not verify with the kid's key */
    JOSE_E_EXPIRED,       /* exp is past (beyond leeway) */
    JOSE_E_NOT_YET_VALID, /* nbf or iat in the future (beyond leeway) */
    JOSE_E_ISSUER,        /* iss missing or not the expected issuer */
    JOSE_E_AUDIENCE,      /* the expected audience is not among aud / client_id */
    JOSE_E_CLAIMS,        /* exp missing or not an integer, nbf / iat not integers */
    JOSE_E_NOMEM,
};

/* Verifies a compact JWS per iam.md "Verifying a JWT", in this order: exactly three strict
 * base64url segments within caps; header and claims JSON objects without duplicate keys;
 * alg exactly "RS256" (checked before any crypto); no crit / jku / x5u / jwk / x5c; typ, if
 * present, "JWT" or "at+jwt" (case-insensitive, as media types are); kid present and known to
 * lookup; the RS256 signature over the received header.payload bytes; then exp (required integer),
 * nbf and iat (integers, not in the future), iss, and audience. On JOSE_OK *claims is the caller's
 * claims object (decref it); otherwise *claims is NULL. err (may be NULL) gets a short reason for
 * logs, never token bytes beyond a kid. Safe on any input and from any number of threads. */
int jose_verify(const char *jwt, jose_lookup_fn lookup, void *ud, const jose_verify_opts *o,
                json_t **claims, char *err, size_t errlen) WARN_UNUSED;

/* The kid of a token's header without verifying anything (for key-set refresh decisions):
 * 0 with kid NUL-terminated, or -1 when the token has no readable header kid or it does not
 * fit in kidlen. */
int jose_peek_kid(const char *jwt, char *kid, size_t kidlen);

/* A short English name of a JOSE_* code, for logs. */
const char *jose_strerror(int rc);

#endif
