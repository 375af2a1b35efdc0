/* iam keys: the RS256 signing keys. One is active (it signs), one is next (published ahead
 * so verifiers already hold it when it becomes active), and retired ones stay published
 * until every token they signed has expired. Private keys are stored encrypted. */
#include "iam/iam_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define AEAD_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AEAD_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

static int seal_key(iam *m, jose_key *k, unsigned char **out, size_t *outlen)
{
    char *pem = NULL;
    int rc = jose_key_private_pem(k, &pem);
    if (rc)
        return OSB_E_INVAL;
    size_t n = strlen(pem);
    unsigned char *c = malloc(AEAD_NONCE + n + AEAD_TAG);
    if (!c) {
        secure_wipe(pem, n);
        free(pem);
        return OSB_E_NOMEM;
    }
    const char *kid = jose_key_kid(k);
    random_bytes(c, AEAD_NONCE);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(c + AEAD_NONCE, &clen, (unsigned char *)pem, n,
                                               (const unsigned char *)kid, strlen(kid), NULL, c,
                                               m->enc_key);
    secure_wipe(pem, n);
    free(pem);
    *out = c;
    *outlen = AEAD_NONCE + (size_t)clen;
    return 0;
}

static int open_key(iam *m, const char *kid, const unsigned char *c, size_t n, jose_key **out)
{
    if (n < AEAD_NONCE + AEAD_TAG)
        return OSB_E_STORE;
    size_t mlen = n - AEAD_NONCE - AEAD_TAG;
    char *pem = malloc(mlen + 1);
    if (!pem)
        return OSB_E_NOMEM;
    unsigned long long got;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)pem, &got, NULL,
                                                   c + AEAD_NONCE, n - AEAD_NONCE,
                                                   (const unsigned char *)kid, strlen(kid), c,
                                                   m->enc_key) != 0) {
        free(pem);
        log_error("iam: signing key %s cannot be decrypted (wrong secret.key?)", kid);
        return OSB_E_STORE;
    }
    int rc = jose_key_from_pem(pem, (size_t)got, out) ? OSB_E_STORE : 0;
    secure_wipe(pem, (size_t)got);
    free(pem);
    if (!rc && strcmp(jose_key_kid(*out), kid) != 0) {
        jose_key_free(*out);
        *out = NULL;
        rc = OSB_E_STORE;
    }
    return rc;
}

static int insert_new_key(iam *m, store_tx *tx, const char *state)
{
    jose_key *k;
    unsigned char *sealed;
    size_t n;
    if (jose_key_generate(&k))
        return OSB_E_NOMEM;
    int rc = seal_key(m, k, &sealed, &n);
    if (!rc) {
        rc = store_exec(tx, "INSERT INTO signing_keys (kid, state, private_key, created_ms)"
                            " VALUES (?, ?, ?, ?)", "ssbi", jose_key_kid(k), state,
                        (const void *)sealed, n, time_now_ms());
        free(sealed);
    }
    jose_key_free(k);
    return rc;
}

int iam_keys_ensure(iam *m)
{
    store_tx *tx;
    store_stmt *q;
    int rc = store_begin(m->db, true, &tx);
    if (rc)
        return rc;
    int active = 0, next = 0;
    if (!(rc = store_query(tx, "SELECT state FROM signing_keys WHERE state != 'retired'", &q,
                           ""))) {
        while (store_step(q) == STORE_ROW) {
            const char *s = store_col_text(q, 0);
            active += strcmp(s, "active") == 0;
            next += strcmp(s, "next") == 0;
        }
        store_done(q);
    }
    if (!rc && !active)
        rc = insert_new_key(m, tx, "active");
    if (!rc && !next)
        rc = insert_new_key(m, tx, "next");
    if (rc) {
        store_rollback(tx);
        return rc;
    }
    return store_commit(tx);
}

int iam_keys_load(iam *m)
{
    store_tx *tx;
    store_stmt *q = NULL;
    jose_key *active = NULL, *pub[IAM_MAX_KEYS];
    int npub = 0;
    /* Retired keys are published for as long as a token they signed can live. */
    int64_t keep_after = time_now_ms() - (int64_t)(m->ttl_s + 60) * 1000;
    int rc = store_begin(m->db, false, &tx);
    if (rc)
        return rc;
    rc = store_query(tx, "SELECT kid, state, private_key FROM signing_keys"
                         " WHERE state != 'retired' OR retired_ms > ? ORDER BY created_ms DESC",
                     &q, "i", keep_after);
    while (!rc && store_step(q) == STORE_ROW && npub < IAM_MAX_KEYS) {
        size_t n;
        const void *c = store_col_blob(q, 2, &n);
        jose_key *k;
        if ((rc = open_key(m, store_col_text(q, 0), c, n, &k)))
            break;
        if (strcmp(store_col_text(q, 1), "active") == 0)
            active = jose_key_ref(k);
        pub[npub++] = k;
    }
    if (q)
        store_done(q);
    store_rollback(tx);
    json_t *keys = json_array();
    for (int i = 0; !rc && i < npub; i++)
        json_array_append_new(keys, jose_key_jwk(pub[i]));
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *jwks = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (rc || !active || !jwks) {
        for (int i = 0; i < npub; i++)
            jose_key_free(pub[i]);
        jose_key_free(active);
        free(jwks);
        if (!rc)
            log_error("iam: no active signing key");
        return rc ? rc : OSB_E_STORE;
    }
    pthread_rwlock_wrlock(&m->keys_lock);
    jose_key *old_active = m->active, *old_pub[IAM_MAX_KEYS];
    int old_n = m->npublished;
    memcpy(old_pub, m->published, sizeof old_pub);
    char *old_jwks = m->jwks;
    m->active = active;
    memcpy(m->published, pub, sizeof(jose_key *) * (size_t)npub);
    m->npublished = npub;
    m->jwks = jwks;
    pthread_rwlock_unlock(&m->keys_lock);
    __atomic_store_n(&m->keys_loaded_ms, time_now_ms(), __ATOMIC_RELEASE);
    for (int i = 0; i < old_n; i++)
        jose_key_free(old_pub[i]);
    jose_key_free(old_active);
    free(old_jwks);
    return 0;
}

void iam_keys_fresh(iam *m, bool missed)
{
    if (!store_shared(m->db))
        return;
    int64_t now = time_now_ms(), at = __atomic_load_n(&m->keys_loaded_ms, __ATOMIC_ACQUIRE);
    if (now - at < (missed ? 1000 : 10000))
        return;
    /* one thread reads them; the others go on with the keys they have */
    if (!__atomic_compare_exchange_n(&m->keys_loaded_ms, &at, now, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    if (iam_keys_load(m))
        log_warn("iam: cannot read the signing keys again; the ones loaded stay");
}

static jose_key *lookup(iam *m, const char *kid)
{
    jose_key *found = NULL;
    pthread_rwlock_rdlock(&m->keys_lock);
    for (int i = 0; i < m->npublished; i++) {
        if (strcmp(jose_key_kid(m->published[i]), kid) == 0) {
            found = jose_key_ref(m->published[i]);
            break;
        }
    }
    pthread_rwlock_unlock(&m->keys_lock);
    return found;
}

jose_key *iam_key_lookup(void *ud, const char *kid)
{
    iam *m = ud;
    jose_key *found = lookup(m, kid);
    if (!found && store_shared(m->db)) { /* rotated on another node, perhaps */
        iam_keys_fresh(m, true);
        found = lookup(m, kid);
    }
    return found;
}

int iam_rotate_keys(iam *m)
{
    store_tx *tx;
    int64_t now = time_now_ms();
    int rc = store_begin(m->db, true, &tx);
    if (rc)
        return rc;
    if ((rc = store_exec(tx, "UPDATE signing_keys SET state = 'retired', retired_ms = ?"
                             " WHERE state = 'active'", "i", now)) ||
        (rc = store_exec(tx, "UPDATE signing_keys SET state = 'active' WHERE state = 'next'",
                         "")) ||
        (rc = insert_new_key(m, tx, "next")) ||
        (rc = store_exec(tx, "DELETE FROM signing_keys WHERE state = 'retired' AND retired_ms < ?",
                         "i", now - (int64_t)(m->ttl_s + 3600) * 1000))) {
        store_rollback(tx);
        return rc;
    }
    if ((rc = store_commit(tx)))
        return rc;
    log_info("iam: signing keys rotated");
    return iam_keys_load(m);
}
