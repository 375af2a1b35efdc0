/* mint_token: signs JWTs with the active signing key of an osbill data directory, for the
 * integration tests: tokens the platform does not hand out itself (the controller's
 * resource-controller tokens) and tokens that are malformed on purpose yet correctly signed.
 * The key is loaded exactly as `osbill serve` loads it (iam_open: secret.key, osbill.db,
 * decryption), so the running platform's JWKS holds it.
 *
 *   mint_token DATA_DIR CLAIMS_JSON      a JWT {"alg":"RS256","typ":"JWT","kid":<active>}
 *   mint_token DATA_DIR --sign INPUT     base64url(RS256(INPUT)), for hand-made tokens
 *   mint_token DATA_DIR --kid            the active key's kid
 *   mint_token DATA_DIR --public-pem     the active key's public key (SPKI PEM)
 * DATA_DIR may be followed by --db URL: the platform's database when it is elsewhere
 * (PostgreSQL). */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iam/iam_int.h"
#include "store/store.h"

static int usage(void)
{
    fprintf(stderr, "usage: mint_token DATA_DIR CLAIMS_JSON\n"
                    "       mint_token DATA_DIR --sign SIGNING_INPUT\n"
                    "       mint_token DATA_DIR --kid | --public-pem\n");
    return 2;
}

/* RS256 over arbitrary bytes: jose_sign only signs what it serialises itself. */
static int sign_input(const jose_key *k, const char *input)
{
    char *pem = NULL;
    if (jose_key_private_pem(k, &pem))
        return 1;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t sl = sizeof sig;
    char enc[1500];
    int rc = 1;
    if (pkey && mc && EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, pkey) == 1 &&
        EVP_DigestSign(mc, sig, &sl, (const unsigned char *)input, strlen(input)) == 1 &&
        b64url_encode(sig, sl, enc, sizeof enc) >= 0) {
        printf("%s\n", enc);
        rc = 0;
    }
    EVP_MD_CTX_free(mc);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    secure_wipe(pem, strlen(pem));
    free(pem);
    ERR_clear_error();
    return rc;
}

int main(int argc, char **argv)
{
    /* DATA_DIR [--db URL] ...: the platform's database when it is not DATA_DIR/osbill.db */
    const char *db_url = NULL;
    if (argc >= 4 && strcmp(argv[2], "--db") == 0) {
        db_url = argv[3];
        argv[3] = argv[1];
        argv += 2;
        argc -= 2;
    }
    if (argc != 3 && argc != 4)
        return usage();
    const char *dir = argv[1], *what = argv[2];
    bool sign = strcmp(what, "--sign") == 0;
    if ((sign && argc != 4) || (!sign && argc != 3))
        return usage();
    log_set_level(LOG_WARN);

    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, db_url ? "secret.key" : "osbill.db");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "mint_token: %s: no osbill data directory\n", dir);
        return 1;
    }
    store *db = NULL;
    iam *m = NULL;
    iam_config ic = {.data_dir = dir, .issuer = "mint_token"};
    if (!db_url)
        snprintf(path, sizeof path, "%s/osbill.db", dir);
    if (store_open(db_url ? db_url : path, NULL, &db) || iam_open(db, &ic, &m)) {
        fprintf(stderr, "mint_token: cannot load the signing keys of %s\n", dir);
        store_close(db);
        return 1;
    }
    pthread_rwlock_rdlock(&m->keys_lock);
    jose_key *k = jose_key_ref(m->active);
    pthread_rwlock_unlock(&m->keys_lock);

    int rc = 1;
    if (sign) {
        rc = sign_input(k, argv[3]);
    } else if (strcmp(what, "--kid") == 0) {
        printf("%s\n", jose_key_kid(k));
        rc = 0;
    } else if (strcmp(what, "--public-pem") == 0) {
        char *pem = NULL;
        if (!jose_key_public_pem(k, &pem)) {
            fputs(pem, stdout);
            rc = 0;
        }
        free(pem);
    } else {
        json_error_t je;
        json_t *claims = json_loads(what, JSON_REJECT_DUPLICATES, &je);
        char *jwt = NULL;
        if (!json_is_object(claims))
            fprintf(stderr, "mint_token: the claims are not a JSON object: %s\n", je.text);
        else if (jose_sign(k, claims, &jwt))
            fprintf(stderr, "mint_token: cannot sign\n");
        else {
            printf("%s\n", jwt);
            rc = 0;
        }
        free(jwt);
        json_decref(claims);
    }
    jose_key_free(k);
    iam_close(m);
    store_close(db);
    return rc;
}
