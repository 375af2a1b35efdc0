/* sdk_verify_bench: libosb's real bearer-token path against raw OpenSSL, in-process. Given a
 * running platform's URL and one of its access tokens, it creates an sdk_jwks for
 * <url>/identity/keys (revocation list <url>/identity/revocations), as the starter broker does
 * when it is given the platform's URL, waits for the keys (and, given a revoked token, for the
 * revocation list), then verifies the same token in a loop through sdk_jwks_verify, with the
 * issuer and client_id checks of broker.c, on 1..N threads. Each measured slice is paired with
 * a slice of raw RS256 verification (EVP_DigestVerifyInit + EVP_DigestVerify, SHA-256, a
 * context per operation, as jose_bench's raw row) of the same token with the same public key
 * (from the platform's JWKS), run on the same number of threads, in alternating order.
 * It starts nothing itself: bench/run-token-bench starts the platform and mints the tokens.
 *
 *   sdk_verify_bench --url URL --token-file FILE [--revoked-token-file FILE]
 *                    [--client-id ID] [-t SECONDS] [-r ROUNDS] [-j THREADS[,THREADS...]]
 *
 * Prints a Markdown table on stdout, then one machine-readable line per thread count:
 *   SDKVERIFY threads=T sdk=OPS raw=OPS ratio=R rounds=N seconds=S
 * (ops/s summed over the threads, medians over the rounds; ratio is the median of the
 * per-round sdk/raw ratios). Per-round figures go to stderr. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "iam/jose.h"
#include "sdk/sdk.h"

#define MAX_ROUNDS 200
#define MAX_THREADS 64
#define MAX_CONFIGS 8
#define LOAD_TIMEOUT_MS 10000

typedef struct {
    sdk_jwks *jwks;
    const char *token, *issuer, *client_id;
    EVP_PKEY *pub;                 /* the token's key, for the raw rows */
    const unsigned char *msg;      /* header.payload */
    size_t msg_len;
    unsigned char sig[1024];
    size_t sig_len;
} bench;

typedef void (*op_fn)(bench *);

static void die(const char *what)
{
    fprintf(stderr, "sdk_verify_bench: %s\n", what);
    exit(1);
}

/* ---------------------------------------------------------------- the two operations */

static void sdk_verify_op(bench *b)
{
    json_t *claims = NULL;
    if (sdk_jwks_verify(b->jwks, b->token, b->issuer, b->client_id, &claims) != 0)
        die("sdk_jwks_verify refused the token during the run");
    json_decref(claims);
}

static void raw_verify_op(bench *b)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    if (!mc || EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, b->pub) != 1 ||
        EVP_DigestVerify(mc, b->sig, b->sig_len, b->msg, b->msg_len) != 1)
        die("raw verify failed");
    EVP_MD_CTX_free(mc);
}

/* ---------------------------------------------------------------- timing on T threads */

typedef struct {
    bench *b;
    op_fn op;
    pthread_barrier_t *start;
    atomic_bool *stop;
    long n;
    int64_t elapsed_us;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    long n = 0;
    pthread_barrier_wait(w->start);
    int64_t t0 = time_mono_us();
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        for (int i = 0; i < 4; i++)
            w->op(w->b);
        n += 4;
    }
    w->elapsed_us = time_mono_us() - t0;
    w->n = n;
    return NULL;
}

/* Runs op on nthreads threads for about seconds; returns the ops/s of all threads together. */
static double measure(op_fn op, bench *b, int nthreads, double seconds)
{
    pthread_t th[MAX_THREADS];
    worker w[MAX_THREADS];
    pthread_barrier_t start;
    atomic_bool stop = false;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        w[i] = (worker){.b = b, .op = op, .start = &start, .stop = &stop};
        if (pthread_create(&th[i], NULL, work, &w[i]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&start);
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, true);
    double rate = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        if (w[i].elapsed_us > 0)
            rate += (double)w[i].n * 1e6 / (double)w[i].elapsed_us;
    }
    pthread_barrier_destroy(&start);
    return rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *in, int n)
{
    double v[MAX_ROUNDS];
    memcpy(v, in, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------- setup */

static char *read_token(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f)
        die("cannot open the token file");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (f != stdin)
        fclose(f);
    if (n <= 0)
        die("the token file is empty");
    line[strcspn(line, " \r\n")] = '\0';
    if (!*line)
        die("the token file is empty");
    return line;
}

/* The raw rows' inputs: the token's signed part and signature, and its key as the platform
 * publishes it (fetched and parsed here, apart from the cache under test). */
static void raw_setup(bench *b, const char *keys_url)
{
    static const char *const headers[] = {"Accept: application/json", NULL};
    char kid[128];
    if (jose_peek_kid(b->token, kid, sizeof kid) != 0)
        die("the token has no kid");
    const char *dot = strrchr(b->token, '.');
    b->msg = (const unsigned char *)b->token;
    b->msg_len = (size_t)(dot - b->token);
    int sl = b64url_decode(dot + 1, strlen(dot + 1), b->sig, sizeof b->sig);
    if (sl <= 0)
        die("cannot decode the token's signature");
    b->sig_len = (size_t)sl;

    buf body;
    long status;
    buf_init(&body, 1 << 20);
    if (sdk_http_call("GET", keys_url, headers, NULL, 5000, 1 << 20, &status, &body) ||
        status != 200)
        die("cannot fetch the JWKS for the raw rows");
    json_t *doc = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    buf_free(&body);
    size_t i;
    json_t *jwk;
    json_array_foreach(json_object_get(doc, "keys"), i, jwk) {
        jose_key *k = NULL;
        if (jose_key_from_jwk(jwk, &k) != 0)
            continue;
        if (strcmp(jose_key_kid(k), kid) == 0 && !b->pub) {
            char *pem = NULL;
            if (jose_key_public_pem(k, &pem) != 0)
                die("jose_key_public_pem failed");
            BIO *bio = BIO_new_mem_buf(pem, -1);
            b->pub = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
            BIO_free(bio);
            free(pem);
        }
        jose_key_free(k);
    }
    json_decref(doc);
    if (!b->pub)
        die("the token's kid is not in the platform's JWKS");
}

/* Waits until the cache holds the token's key (sdk_jwks_verify accepts it) and, when a revoked
 * token is given, until the revocation list is loaded (that token is refused). */
static void wait_loaded(bench *b, const char *revoked)
{
    int64_t until = time_mono_us() + (int64_t)LOAD_TIMEOUT_MS * 1000;
    json_t *claims = NULL;
    while (sdk_jwks_verify(b->jwks, b->token, b->issuer, b->client_id, &claims) != 0) {
        if (time_mono_us() > until)
            die("the token was not accepted within 10 s (JWKS not loaded, or a wrong token, "
                "issuer or client_id)");
        usleep(20000);
    }
    json_decref(claims);
    if (!revoked) {
        usleep(200000); /* the revocation list is fetched right after the keys */
        return;
    }
    while (sdk_jwks_verify(b->jwks, revoked, b->issuer, b->client_id, &claims) == 0) {
        json_decref(claims);
        if (time_mono_us() > until)
            die("the revoked token was still accepted after 10 s (revocation list not loaded)");
        usleep(20000);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: sdk_verify_bench --url URL --token-file FILE "
                    "[--revoked-token-file FILE] [--client-id ID]\n"
                    "                        [-t SECONDS] [-r ROUNDS] [-j THREADS[,THREADS...]]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *token_file = NULL, *revoked_file = NULL, *client_id = "default";
    const char *threads_arg = "1,2";
    double seconds = 2;
    int rounds = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        if (strcmp(a, "--url") == 0)
            url = argv[++i];
        else if (strcmp(a, "--token-file") == 0)
            token_file = argv[++i];
        else if (strcmp(a, "--revoked-token-file") == 0)
            revoked_file = argv[++i];
        else if (strcmp(a, "--client-id") == 0)
            client_id = argv[++i];
        else if (strcmp(a, "-t") == 0)
            seconds = atof(argv[++i]);
        else if (strcmp(a, "-r") == 0)
            rounds = atoi(argv[++i]);
        else if (strcmp(a, "-j") == 0)
            threads_arg = argv[++i];
        else
            usage();
    }
    if (!url || !token_file || seconds <= 0 || rounds < 1 || rounds > MAX_ROUNDS)
        usage();
    int threads[MAX_CONFIGS], nconf = 0;
    for (const char *p = threads_arg; *p && nconf < MAX_CONFIGS;) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p || t < 1 || t > MAX_THREADS)
            usage();
        threads[nconf++] = (int)t;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            usage();
    }
    if (!nconf)
        usage();
    log_set_level(LOG_WARN);

    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    char *base = strndup(url, n), *issuer = NULL, *keys = NULL, *revocations = NULL;
    if (!base || asprintf(&issuer, "%s/identity", base) < 0 ||
        asprintf(&keys, "%s/identity/keys", base) < 0 ||
        asprintf(&revocations, "%s/identity/revocations", base) < 0)
        die("out of memory");

    bench b = {.issuer = issuer, .client_id = client_id};
    char *token = read_token(token_file), *revoked = revoked_file ? read_token(revoked_file) : NULL;
    b.token = token;
    raw_setup(&b, keys);
    if (sdk_jwks_new(keys, revocations, 0, &b.jwks) != 0)
        die("sdk_jwks_new failed");
    int64_t t_load = time_mono_us();
    wait_loaded(&b, revoked);
    double load_ms = (double)(time_mono_us() - t_load) / 1000;

    static double sdk_r[MAX_CONFIGS][MAX_ROUNDS], raw_r[MAX_CONFIGS][MAX_ROUNDS],
        ratio_r[MAX_CONFIGS][MAX_ROUNDS];
    measure(raw_verify_op, &b, 1, seconds / 4); /* warm caches and lazily fetched algorithms */
    measure(sdk_verify_op, &b, 1, seconds / 4);
    for (int c = 0; c < nconf; c++) {
        for (int r = 0; r < rounds; r++) {
            bool sdk_first = (r + c) % 2;
            if (sdk_first)
                sdk_r[c][r] = measure(sdk_verify_op, &b, threads[c], seconds);
            raw_r[c][r] = measure(raw_verify_op, &b, threads[c], seconds);
            if (!sdk_first)
                sdk_r[c][r] = measure(sdk_verify_op, &b, threads[c], seconds);
            ratio_r[c][r] = sdk_r[c][r] / raw_r[c][r];
            fprintf(stderr, "threads %d round %d/%d  raw %7.0f  sdk_jwks_verify %7.0f  (%.2f)\n",
                    threads[c], r + 1, rounds, raw_r[c][r], sdk_r[c][r], ratio_r[c][r]);
        }
    }
    /* The cache must still be serving the token after the run (no refetch broke it). */
    json_t *claims = NULL;
    if (sdk_jwks_verify(b.jwks, b.token, b.issuer, b.client_id, &claims) != 0)
        die("the token is refused after the run");
    json_decref(claims);
    if (revoked && sdk_jwks_verify(b.jwks, revoked, b.issuer, b.client_id, &claims) == 0)
        die("the revoked token is accepted after the run");

    printf("### libosb sdk_jwks_verify vs raw OpenSSL RS256 verify, in-process\n\n");
    printf("%s; platform %s; token %zu bytes; client_id check \"%s\"; revocation list %s; keys "
           "loaded %.0f ms after sdk_jwks_new; %d rounds of %.2f s slices, medians.\n\n",
           OpenSSL_version(OPENSSL_VERSION), base, strlen(b.token), client_id,
           revoked ? "loaded (a revoked token is refused)" : "polled", load_ms, rounds, seconds);
    printf("| threads | raw verify ops/s | sdk_jwks_verify ops/s | raw µs/op/thread "
           "| sdk µs/op/thread | sdk/raw |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
    double sdk_med[MAX_CONFIGS], raw_med[MAX_CONFIGS], ratio_med[MAX_CONFIGS];
    for (int c = 0; c < nconf; c++) {
        sdk_med[c] = median(sdk_r[c], rounds);
        raw_med[c] = median(raw_r[c], rounds);
        ratio_med[c] = median(ratio_r[c], rounds);
        printf("| %d | %.0f | %.0f | %.1f | %.1f | %.2f |\n", threads[c], raw_med[c], sdk_med[c],
               1e6 * threads[c] / raw_med[c], 1e6 * threads[c] / sdk_med[c], ratio_med[c]);
    }
    printf("\n");
    for (int c = 0; c < nconf; c++)
        printf("SDKVERIFY threads=%d sdk=%.0f raw=%.0f ratio=%.3f rounds=%d seconds=%.2f\n",
               threads[c], sdk_med[c], raw_med[c], ratio_med[c], rounds, seconds);

    sdk_jwks_free(b.jwks);
    EVP_PKEY_free(b.pub);
    secure_wipe(token, strlen(token));
    free(token);
    free(revoked);
    free(base);
    free(issuer);
    free(keys);
    free(revocations);
    return 0;
}
