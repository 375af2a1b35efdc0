/* jose_bench: what jose adds to OpenSSL. Measures, single-threaded and in one run, raw RS256
 * sign and verify (EVP_DigestSign/EVP_DigestVerify with SHA-256 on a 2048-bit key parsed once)
 * against jose_sign and jose_verify on an access token with the claims of iam.md, and prints a
 * Markdown table with the jose/raw ratios. Build and run: see README.md next to this file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/base.h"
#include "iam/jose.h"

#define ISS "https://osbill.example/identity"

/* Targets of jose/raw, from the module's brief. */
#define SIGN_TARGET   0.80
#define VERIFY_TARGET 0.50
#define MAX_ROUNDS    200

typedef struct {
    EVP_PKEY *priv, *pub; /* raw OpenSSL keys, parsed once */
    jose_key *signer;     /* the platform's key (private) */
    jose_key *set[2];     /* a verifier's key set: active and next, public only */
    json_t *claims;
    char *token;
    const unsigned char *msg; /* header.payload of token, what both sides sign */
    size_t msg_len;
    size_t claims_len; /* the claims as compact JSON */
    unsigned char sig[512];
    size_t sig_len;
    EVP_MD_CTX *verify_tmpl; /* for the "raw, cloned context" row */
} bench;

static void die(const char *what)
{
    fprintf(stderr, "jose_bench: %s failed\n", what);
    exit(1);
}

static jose_key *lookup(void *ud, const char *kid)
{
    bench *b = ud;
    for (size_t i = 0; i < ARRAY_LEN(b->set); i++)
        if (strcmp(jose_key_kid(b->set[i]), kid) == 0)
            return jose_key_ref(b->set[i]);
    return NULL;
}

/* ---------------------------------------------------------------- the four operations */

static void raw_sign(bench *b)
{
    unsigned char sig[512];
    size_t sl = sizeof sig;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    if (!mc || EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, b->priv) != 1 ||
        EVP_DigestSign(mc, sig, &sl, b->msg, b->msg_len) != 1)
        die("raw sign");
    EVP_MD_CTX_free(mc);
}

static void raw_verify(bench *b)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    if (!mc || EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, b->pub) != 1 ||
        EVP_DigestVerify(mc, b->sig, b->sig_len, b->msg, b->msg_len) != 1)
        die("raw verify");
    EVP_MD_CTX_free(mc);
}

static void raw_verify_cloned(bench *b)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    if (!mc || EVP_MD_CTX_copy_ex(mc, b->verify_tmpl) != 1 ||
        EVP_DigestVerify(mc, b->sig, b->sig_len, b->msg, b->msg_len) != 1)
        die("raw verify (cloned context)");
    EVP_MD_CTX_free(mc);
}

static void jose_sign_op(bench *b)
{
    char *tok = NULL;
    if (jose_sign(b->signer, b->claims, &tok) != 0)
        die("jose_sign");
    free(tok);
}

static void jose_verify_op(bench *b)
{
    jose_verify_opts o = {.issuer = ISS, .leeway_s = 30};
    json_t *c = NULL;
    if (jose_verify(b->token, lookup, b, &o, &c, NULL, 0) != JOSE_OK)
        die("jose_verify");
    json_decref(c);
}

/* ---------------------------------------------------------------- timing */

/* Runs op for about seconds and returns ops/s. */
static double measure(void (*op)(bench *), bench *b, double seconds)
{
    long n = 0, batch = 4;
    int64_t start = time_mono_us(), limit = (int64_t)(seconds * 1e6), el;
    do {
        for (long i = 0; i < batch; i++)
            op(b);
        n += batch;
        el = time_mono_us() - start;
    } while (el < limit);
    return (double)n * 1e6 / (double)el;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------- setup */

static EVP_PKEY *pem_key(const char *pem, bool priv)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                       : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!k)
        die("PEM parse");
    return k;
}

static jose_key *public_copy(const jose_key *k)
{
    json_t *jwk = jose_key_jwk(k); /* through the JWKS, as libosb gets it */
    jose_key *pub = NULL;
    if (!jwk || jose_key_from_jwk(jwk, &pub) != 0)
        die("jose_key_from_jwk");
    json_decref(jwk);
    return pub;
}

static void setup(bench *b)
{
    jose_key *next = NULL;
    char *pem;
    if (jose_key_generate(&b->signer) || jose_key_generate(&next))
        die("jose_key_generate");
    b->set[0] = public_copy(next);
    b->set[1] = public_copy(b->signer);
    jose_key_free(next);

    if (jose_key_private_pem(b->signer, &pem))
        die("jose_key_private_pem");
    b->priv = pem_key(pem, true);
    secure_wipe(pem, strlen(pem));
    free(pem);
    if (jose_key_public_pem(b->signer, &pem))
        die("jose_key_public_pem");
    b->pub = pem_key(pem, false);
    free(pem);

    /* iam.md "Tokens": what iam_issue_access_token puts in an access token. */
    int64_t now = time_now_ms() / 1000;
    char jti[37];
    uuid_v4(jti);
    b->claims = json_pack("{s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", ISS,
                          "sub", "osbill-1b4e28ba-2fa1-41d2-883f-0016d3cca427", "iam_id",
                          "osbill-1b4e28ba-2fa1-41d2-883f-0016d3cca427", "account", "bss",
                          "a7f3c2e1d0b94f6a8e5d4c3b2a190817", "client_id", "default", "grant_type",
                          "urn:ibm:params:oauth:grant-type:apikey", "scope", "osbill", "iat",
                          (json_int_t)now, "exp", (json_int_t)(now + 3600), "jti", jti);
    if (!b->claims || jose_sign(b->signer, b->claims, &b->token))
        die("jose_sign");
    b->claims_len = json_dumpb(b->claims, NULL, 0, JSON_COMPACT);
    const char *dot = strrchr(b->token, '.');
    b->msg = (const unsigned char *)b->token;
    b->msg_len = (size_t)(dot - b->token);
    int sl = b64url_decode(dot + 1, strlen(dot + 1), b->sig, sizeof b->sig);
    if (sl <= 0)
        die("signature decode");
    b->sig_len = (size_t)sl;
    b->verify_tmpl = EVP_MD_CTX_new();
    if (!b->verify_tmpl ||
        EVP_DigestVerifyInit(b->verify_tmpl, NULL, EVP_sha256(), NULL, b->pub) != 1)
        die("template init");
}

static void teardown(bench *b)
{
    EVP_MD_CTX_free(b->verify_tmpl);
    EVP_PKEY_free(b->priv);
    EVP_PKEY_free(b->pub);
    jose_key_free(b->signer);
    jose_key_free(b->set[0]);
    jose_key_free(b->set[1]);
    json_decref(b->claims);
    free(b->token);
}

static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        const char *c = strchr(line, ':');
        if (str_has_prefix(line, "model name") && c) {
            snprintf(out, n, "%s", c + 2);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

static void usage(void)
{
    fprintf(stderr, "usage: jose_bench [-t seconds per slice] [-r rounds] [--check]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 0.25;
    int rounds = 15;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--check") == 0)
            check = true;
        else
            usage();
    }
    if (seconds <= 0 || rounds < 1 || rounds > MAX_ROUNDS)
        usage();

    bench b = {0};
    setup(&b);

    enum { RAW_SIGN, JOSE_SIGN, RAW_VERIFY, JOSE_VERIFY, RAW_VERIFY_CLONED, NOPS };
    static void (*const ops[NOPS])(bench *) = {raw_sign, jose_sign_op, raw_verify, jose_verify_op,
                                               raw_verify_cloned};
    static double runs[NOPS][MAX_ROUNDS], sign_r[MAX_ROUNDS], verify_r[MAX_ROUNDS];
    double med[NOPS];
    for (int i = 0; i < NOPS; i++) /* warm caches and lazily fetched algorithms */
        measure(ops[i], &b, seconds / 4);
    /* Short slices, raw and jose back to back in alternating order: a shared machine's noise
     * and clock drift then hit both sides of each pair alike, and the median of the per-pair
     * ratios shrugs off the slices that were disturbed. */
    for (int r = 0; r < rounds; r++) {
        int first = r % 2;
        for (int pair = 0; pair < 2; pair++) {
            int raw = pair ? RAW_VERIFY : RAW_SIGN, ours = pair ? JOSE_VERIFY : JOSE_SIGN;
            int order[2] = {first ? ours : raw, first ? raw : ours};
            for (int j = 0; j < 2; j++)
                runs[order[j]][r] = measure(ops[order[j]], &b, seconds);
        }
        runs[RAW_VERIFY_CLONED][r] = measure(ops[RAW_VERIFY_CLONED], &b, seconds);
        sign_r[r] = runs[JOSE_SIGN][r] / runs[RAW_SIGN][r];
        verify_r[r] = runs[JOSE_VERIFY][r] / runs[RAW_VERIFY][r];
        fprintf(
            stderr,
            "round %2d/%d  sign raw %6.0f jose %6.0f (%.2f)  verify raw %6.0f jose %6.0f (%.2f)\n",
            r + 1, rounds, runs[RAW_SIGN][r], runs[JOSE_SIGN][r], sign_r[r], runs[RAW_VERIFY][r],
            runs[JOSE_VERIFY][r], verify_r[r]);
    }
    for (int i = 0; i < NOPS; i++)
        med[i] = median(runs[i], rounds);
    double sign_ratio = median(sign_r, rounds), verify_ratio = median(verify_r, rounds);
    bool ok = sign_ratio >= SIGN_TARGET && verify_ratio >= VERIFY_TARGET;
    char cpu[128];
    cpu_model(cpu, sizeof cpu);

    printf("### jose vs raw OpenSSL, RS256 (RSA 2048, e = 65537), one thread\n\n");
    printf("%s; %s; token %zu bytes (signed part %zu, claims %zu); %d rounds of %.2f s slices, "
           "medians.\n\n",
           OpenSSL_version(OPENSSL_VERSION), cpu, strlen(b.token), b.msg_len, b.claims_len, rounds,
           seconds);
    printf("| operation | raw OpenSSL ops/s | jose ops/s | raw µs/op | jose µs/op | jose/raw "
           "| target |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    printf("| sign | %.0f | %.0f | %.1f | %.1f | %.2f | ≥ %.2f %s |\n", med[RAW_SIGN],
           med[JOSE_SIGN], 1e6 / med[RAW_SIGN], 1e6 / med[JOSE_SIGN], sign_ratio, SIGN_TARGET,
           sign_ratio >= SIGN_TARGET ? "met" : "MISSED");
    printf("| verify | %.0f | %.0f | %.1f | %.1f | %.2f | ≥ %.2f %s |\n", med[RAW_VERIFY],
           med[JOSE_VERIFY], 1e6 / med[RAW_VERIFY], 1e6 / med[JOSE_VERIFY], verify_ratio,
           VERIFY_TARGET, verify_ratio >= VERIFY_TARGET ? "met" : "MISSED");
    printf("\njose/raw is the median of the per-round ratios. raw = EVP_MD_CTX_new, "
           "EVP_Digest{Sign,Verify}Init with SHA-256, EVP_Digest{Sign,Verify}, free, per "
           "operation, over the token's header.payload bytes.\n");
    printf("jose_verify includes splitting and strict base64url decoding, parsing header and "
           "claims with jansson, the kid lookup and every claim check; jose_sign includes "
           "serialising and encoding the claims.\n");
    printf("Raw verify from a cloned pre-initialised context (what jose_verify does inside): "
           "%.0f ops/s, %.1f µs/op.\n",
           med[RAW_VERIFY_CLONED], 1e6 / med[RAW_VERIFY_CLONED]);
    teardown(&b);
    return check && !ok ? 1 : 0;
}
