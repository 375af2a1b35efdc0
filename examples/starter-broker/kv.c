/* The starter broker's key-value store on SQLite: namespaces, values, API keys, usage.
 * Writes are group-committed: concurrent writers share one transaction and one flush (each
 * in its own savepoint, so one's failure is its own), and each returns once its write is on
 * disk. Reads go through a second connection and see only what is committed. */
#include "kv.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JOIN_WAITS 64 /* a leader waits at most this many times 1 ms for joiners */

#define NSTMT 64

struct kv {
    sqlite3 *db;  /* the writer */
    sqlite3 *rdb; /* the reader */
    /* prepared statements, by connection and SQL text (its address: literals only), each
     * used under its connection's mutex */
    struct {
        sqlite3 *db;
        const char *sql;
        sqlite3_stmt *st;
    } stmts[NSTMT];
    pthread_mutex_t mu, rmu;
    /* group commit, under mu */
    pthread_cond_t joined, done;
    bool open, leading;
    uint64_t batch, committed;
    /* each batch's commit result, kept until its writers have read it: a writer may wake
     * after the next batch has committed already */
    struct {
        uint64_t batch;
        int rc;
    } results[64];
    int wanting; /* atomic: writers waiting for mu */
};

static const char schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;"
    "CREATE TABLE IF NOT EXISTS namespaces (instance_id TEXT PRIMARY KEY, plan_id TEXT NOT NULL,"
    " max_keys INTEGER NOT NULL, max_value INTEGER NOT NULL, ready_at INTEGER NOT NULL,"
    " deleting_at INTEGER NOT NULL DEFAULT 0, enabled INTEGER NOT NULL DEFAULT 1,"
    " last_active INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,"
    " nkeys INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS kv (instance_id TEXT NOT NULL, key TEXT NOT NULL, value BLOB,"
    " PRIMARY KEY (instance_id, key));"
    "CREATE TABLE IF NOT EXISTS apikeys (key_hash BLOB PRIMARY KEY, instance_id TEXT NOT NULL,"
    " binding_id TEXT NOT NULL, role TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS usage (instance_id TEXT NOT NULL, plan_id TEXT NOT NULL,"
    " measure TEXT NOT NULL, hour INTEGER NOT NULL, quantity INTEGER NOT NULL,"
    " PRIMARY KEY (instance_id, plan_id, measure, hour));";

int kv_open(const char *data_dir, kv **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/kv.db", data_dir);
    kv *k = calloc(1, sizeof *k);
    if (!k)
        return KV_ERR;
    pthread_mutex_init(&k->mu, NULL);
    pthread_mutex_init(&k->rmu, NULL);
    pthread_cond_init(&k->joined, NULL);
    pthread_cond_init(&k->done, NULL);
    char *err = NULL;
    if (sqlite3_open(path, &k->db) != SQLITE_OK ||
        sqlite3_exec(k->db, schema, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_open_v2(path, &k->rdb, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "starter-broker: %s: %s\n", path,
                err ? err : sqlite3_errmsg(k->rdb ? k->rdb : k->db));
        sqlite3_free(err);
        kv_close(k);
        return KV_ERR;
    }
    sqlite3_busy_timeout(k->db, 5000);
    sqlite3_busy_timeout(k->rdb, 5000);
    *out = k;
    return KV_OK;
}

void kv_close(kv *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < NSTMT; i++)
        sqlite3_finalize(k->stmts[i].st);
    sqlite3_close(k->rdb);
    sqlite3_close(k->db);
    pthread_mutex_destroy(&k->mu);
    pthread_mutex_destroy(&k->rmu);
    pthread_cond_destroy(&k->joined);
    pthread_cond_destroy(&k->done);
    free(k);
}

/* A prepared statement for sql on db (the caller holds db's mutex), kept for the next use;
 * unprep() makes it ready for that. */
static sqlite3_stmt *prep(kv *k, sqlite3 *db, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3 ^ (uintptr_t)db >> 4) % NSTMT;
    for (size_t i = 0; i < NSTMT; i++) {
        size_t j = (h + i) % NSTMT;
        if (k->stmts[j].sql == sql && k->stmts[j].db == db)
            return k->stmts[j].st;
        if (!k->stmts[j].sql) {
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return NULL;
            k->stmts[j].db = db;
            k->stmts[j].sql = sql;
            k->stmts[j].st = st;
            return st;
        }
    }
    return NULL; /* more statements than slots: raise NSTMT */
}

static void unprep(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs one statement with text/int64/blob arguments described by types ("s", "i", "b"). */
static int run(kv *k, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st;
    if (!(st = prep(k, k->db, sql))) {
        fprintf(stderr, "starter-broker: %s\n", sqlite3_errmsg(k->db));
        return KV_ERR;
    }
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        if (types[i] == 's')
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else if (types[i] == 'i')
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        else {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            sqlite3_bind_blob64(st, i + 1, p, n, SQLITE_TRANSIENT);
        }
    }
    va_end(ap);
    int r = sqlite3_step(st);
    unprep(st);
    if (r == SQLITE_DONE || r == SQLITE_ROW)
        return KV_OK;
    if ((r & 0xff) == SQLITE_CONSTRAINT)
        return KV_EXISTS;
    fprintf(stderr, "starter-broker: %s\n", sqlite3_errmsg(k->db));
    return KV_ERR;
}

/* ---- group commit ---- */

static void lock_writer(kv *k)
{
    __atomic_add_fetch(&k->wanting, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&k->mu);
    __atomic_sub_fetch(&k->wanting, 1, __ATOMIC_RELAXED);
}

/* With mu held: joins the open batch (or opens one) in a savepoint of its own. */
static int unit_begin(kv *k, uint64_t *batch)
{
    if (!k->open) {
        if (run(k, "BEGIN IMMEDIATE", ""))
            return KV_ERR;
        k->open = true;
        k->batch++;
    }
    *batch = k->batch;
    return run(k, "SAVEPOINT unit", "");
}

/* With mu held: ends the unit (undone when rc says it failed) and returns once its batch is
 * committed: the first unit of a batch commits it, after letting the writers that were
 * waiting join it; the others wait for that commit. */
static int unit_end(kv *k, int rc, uint64_t batch)
{
    if (!k->open)
        return rc; /* unit_begin could not open the batch */
    if (rc)
        run(k, "ROLLBACK TO unit", "");
    run(k, "RELEASE unit", "");
    if (k->leading) {
        pthread_cond_signal(&k->joined);
        while (k->committed < batch)
            pthread_cond_wait(&k->done, &k->mu);
        int brc = k->results[batch % 64].batch == batch ? k->results[batch % 64].rc : KV_ERR;
        return rc ? rc : brc;
    }
    k->leading = true;
    for (int i = 0; i < MAX_JOIN_WAITS && __atomic_load_n(&k->wanting, __ATOMIC_RELAXED) > 0; i++) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 1000000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&k->joined, &k->mu, &until);
    }
    int crc = run(k, "COMMIT", "");
    if (crc)
        run(k, "ROLLBACK", "");
    k->open = false;
    k->leading = false;
    k->committed = batch;
    k->results[batch % 64].batch = batch;
    k->results[batch % 64].rc = crc;
    pthread_cond_broadcast(&k->done);
    return rc ? rc : crc;
}

int kv_ns_create(kv *k, const char *instance, const char *plan_id, int64_t max_keys,
                 int64_t max_value, int64_t now, int64_t ready_at)
{
    uint64_t b = 0;
    lock_writer(k);
    /* A retried creation after a failure or an orphan clean-up starts afresh. */
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = unit_end(
            k,
            run(k,
                "INSERT OR REPLACE INTO namespaces (instance_id, plan_id, max_keys, max_value,"
                " ready_at, last_active) VALUES (?, ?, ?, ?, ?, ?)",
                "ssiiii", instance, plan_id, max_keys, max_value, ready_at, now),
            b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_ns_get(kv *k, const char *instance, kv_namespace *ns)
{
    sqlite3_stmt *st;
    int rc = KV_NOTFOUND;
    pthread_mutex_lock(&k->rmu);
    if (!(st = prep(k, k->rdb, "SELECT plan_id, max_keys, max_value, ready_at, deleting_at, enabled,"
                           " last_active, bytes, nkeys FROM namespaces WHERE instance_id = ?"))) {
        pthread_mutex_unlock(&k->rmu);
        return KV_ERR;
    }
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        memset(ns, 0, sizeof *ns);
        snprintf(ns->plan_id, sizeof ns->plan_id, "%s", sqlite3_column_text(st, 0));
        ns->max_keys = sqlite3_column_int64(st, 1);
        ns->max_value = sqlite3_column_int64(st, 2);
        ns->ready_at = sqlite3_column_int64(st, 3);
        ns->deleting_at = sqlite3_column_int64(st, 4);
        ns->enabled = sqlite3_column_int(st, 5) != 0;
        ns->last_active = sqlite3_column_int64(st, 6);
        ns->bytes = sqlite3_column_int64(st, 7);
        ns->keys = sqlite3_column_int64(st, 8);
        rc = KV_OK;
    }
    unprep(st);
    pthread_mutex_unlock(&k->rmu);
    return rc;
}

int kv_ns_update(kv *k, const char *instance, const char *plan_id, int64_t max_keys,
                 int64_t max_value)
{
    uint64_t b = 0;
    lock_writer(k);
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = unit_end(k,
                      run(k,
                          "UPDATE namespaces SET plan_id = ?, max_keys = ?, max_value = ?"
                          " WHERE instance_id = ?",
                          "siis", plan_id, max_keys, max_value, instance),
                      b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_ns_set_enabled(kv *k, const char *instance, bool enabled)
{
    uint64_t b = 0;
    lock_writer(k);
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = unit_end(k,
                      run(k, "UPDATE namespaces SET enabled = ? WHERE instance_id = ?", "is",
                          (int64_t)enabled, instance),
                      b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_ns_mark_deleting(kv *k, const char *instance, int64_t deleting_at)
{
    uint64_t b = 0;
    lock_writer(k);
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = unit_end(k,
                      run(k, "UPDATE namespaces SET deleting_at = ? WHERE instance_id = ?", "is",
                          deleting_at, instance),
                      b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_ns_purge(kv *k, const char *instance)
{
    uint64_t b = 0;
    lock_writer(k);
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = run(k, "DELETE FROM kv WHERE instance_id = ?", "s", instance);
    if (!rc)
        rc = run(k, "DELETE FROM apikeys WHERE instance_id = ?", "s", instance);
    if (!rc)
        rc = run(k, "DELETE FROM namespaces WHERE instance_id = ?", "s", instance);
    rc = unit_end(k, rc, b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

static void key_hash(const char *apikey, unsigned char out[32])
{
    SHA256((const unsigned char *)apikey, strlen(apikey), out);
}

int kv_apikey_add(kv *k, const char *instance, const char *binding, const char *apikey,
                  const char *role)
{
    unsigned char h[32];
    key_hash(apikey, h);
    uint64_t b = 0;
    lock_writer(k);
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = unit_end(k,
                      run(k,
                          "INSERT OR REPLACE INTO apikeys (key_hash, instance_id, binding_id, role)"
                          " VALUES (?, ?, ?, ?)",
                          "bsss", (const void *)h, sizeof h, instance, binding, role),
                      b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_apikey_remove(kv *k, const char *instance, const char *binding)
{
    uint64_t b = 0;
    lock_writer(k);
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = unit_end(k,
                      run(k, "DELETE FROM apikeys WHERE instance_id = ? AND binding_id = ?", "ss",
                          instance, binding),
                      b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_apikey_check(kv *k, const char *apikey, const char *instance, char role[16])
{
    unsigned char h[32];
    sqlite3_stmt *st;
    int rc = KV_NOTFOUND;
    /* The lookup is by digest of a 256-bit random key: timing reveals nothing usable. */
    key_hash(apikey, h);
    pthread_mutex_lock(&k->rmu);
    if (!(st = prep(k, k->rdb, "SELECT role FROM apikeys WHERE key_hash = ? AND instance_id = ?"))) {
        pthread_mutex_unlock(&k->rmu);
        return KV_ERR;
    }
    sqlite3_bind_blob(st, 1, h, sizeof h, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, instance, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(role, 16, "%s", sqlite3_column_text(st, 0));
        rc = KV_OK;
    }
    unprep(st);
    pthread_mutex_unlock(&k->rmu);
    return rc;
}

int kv_put(kv *k, const char *instance, const char *key, const void *val, size_t n)
{
    sqlite3_stmt *st;
    int rc;
    uint64_t b = 0;
    lock_writer(k);
    if ((rc = unit_begin(k, &b)))
        goto out;
    int64_t old = -1, max_keys = 0, nkeys = 0;
    if (!(st = prep(k, k->db, "SELECT (SELECT length(value) FROM kv WHERE instance_id = ?1 AND key = ?2),"
            " max_keys, nkeys FROM namespaces WHERE instance_id = ?1"))) {
        rc = KV_ERR;
        goto rollback;
    }
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        unprep(st);
        rc = KV_NOTFOUND;
        goto rollback;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        old = sqlite3_column_int64(st, 0);
    max_keys = sqlite3_column_int64(st, 1);
    nkeys = sqlite3_column_int64(st, 2);
    unprep(st);
    if (old < 0 && nkeys >= max_keys) {
        rc = KV_FULL;
        goto rollback;
    }
    if ((rc = run(k, "INSERT OR REPLACE INTO kv (instance_id, key, value) VALUES (?, ?, ?)", "ssb",
                  instance, key, val, n)) ||
        (rc = run(k,
                  "UPDATE namespaces SET bytes = bytes + ?, nkeys = nkeys + ?"
                  " WHERE instance_id = ?",
                  "iis", (int64_t)n - (old < 0 ? 0 : old), (int64_t)(old < 0 ? 1 : 0), instance)))
        goto rollback;
    rc = unit_end(k, 0, b);
    goto out;
rollback:
    rc = unit_end(k, rc, b);
out:
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_get(kv *k, const char *instance, const char *key, void **val, size_t *n)
{
    sqlite3_stmt *st;
    int rc = KV_NOTFOUND;
    pthread_mutex_lock(&k->rmu);
    if (!(st = prep(k, k->rdb, "SELECT value FROM kv WHERE instance_id = ? AND key = ?"))) {
        pthread_mutex_unlock(&k->rmu);
        return KV_ERR;
    }
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *n = (size_t)sqlite3_column_bytes(st, 0);
        *val = malloc(*n + 1);
        if (*val) {
            if (*n)
                memcpy(*val, sqlite3_column_blob(st, 0), *n);
            rc = KV_OK;
        } else {
            rc = KV_ERR;
        }
    }
    unprep(st);
    pthread_mutex_unlock(&k->rmu);
    return rc;
}

int kv_del(kv *k, const char *instance, const char *key)
{
    sqlite3_stmt *st;
    int rc;
    uint64_t b = 0;
    lock_writer(k);
    if ((rc = unit_begin(k, &b)))
        goto out;
    if (!(st = prep(k, k->db, "SELECT length(value) FROM kv WHERE instance_id = ? AND key = ?"))) {
        rc = KV_ERR;
        goto rollback;
    }
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    int64_t len = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        len = sqlite3_column_int64(st, 0);
    unprep(st);
    if (len < 0) {
        rc = KV_NOTFOUND;
        goto rollback;
    }
    if ((rc = run(k, "DELETE FROM kv WHERE instance_id = ? AND key = ?", "ss", instance, key)) ||
        (rc = run(k,
                  "UPDATE namespaces SET bytes = bytes - ?, nkeys = nkeys - 1"
                  " WHERE instance_id = ?",
                  "is", len, instance)))
        goto rollback;
    rc = unit_end(k, 0, b);
    goto out;
rollback:
    rc = unit_end(k, rc, b);
out:
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_list(kv *k, const char *instance, char **out)
{
    sqlite3_stmt *st;
    json_t *a = json_array();
    pthread_mutex_lock(&k->rmu);
    if (!(st = prep(k, k->rdb, "SELECT key FROM kv WHERE instance_id = ? ORDER BY key LIMIT 1000"))) {
        pthread_mutex_unlock(&k->rmu);
        json_decref(a);
        return KV_ERR;
    }
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    unprep(st);
    pthread_mutex_unlock(&k->rmu);
    *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return *out ? KV_OK : KV_ERR;
}

int kv_meter_call(kv *k, const char *instance, int64_t now_ms)
{
    int64_t hour = now_ms / 3600000 * 3600000;
    uint64_t b = 0;
    lock_writer(k);
    int rc = unit_begin(k, &b);
    if (!rc)
        rc = run(k,
                 "INSERT INTO usage (instance_id, plan_id, measure, hour, quantity)"
                 " SELECT instance_id, plan_id, 'API_CALLS', ?, 1 FROM namespaces"
                 " WHERE instance_id = ?"
                 " ON CONFLICT (instance_id, plan_id, measure, hour)"
                 " DO UPDATE SET quantity = quantity + 1",
                 "is", hour, instance);
    if (!rc)
        rc = run(k,
                 "INSERT INTO usage (instance_id, plan_id, measure, hour, quantity)"
                 " SELECT instance_id, plan_id, 'STORAGE_BYTES', ?, bytes FROM namespaces"
                 " WHERE instance_id = ?"
                 " ON CONFLICT (instance_id, plan_id, measure, hour)"
                 " DO UPDATE SET quantity = max(quantity, excluded.quantity)",
                 "is", hour, instance);
    if (!rc)
        rc = run(k, "UPDATE namespaces SET last_active = ? WHERE instance_id = ?", "is", now_ms,
                 instance);
    rc = unit_end(k, rc, b);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int kv_usage(kv *k, const char *instance, char **out)
{
    sqlite3_stmt *st;
    json_t *a = json_array();
    pthread_mutex_lock(&k->rmu);
    if (!(st = prep(k, k->rdb, "SELECT plan_id, measure, hour, quantity FROM usage WHERE instance_id = ?"
            " ORDER BY hour, measure"))) {
        pthread_mutex_unlock(&k->rmu);
        json_decref(a);
        return KV_ERR;
    }
    sqlite3_bind_text(st, 1, instance, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:I}", "plan_id",
                                           sqlite3_column_text(st, 0), "measure",
                                           sqlite3_column_text(st, 1), "hour",
                                           (json_int_t)sqlite3_column_int64(st, 2), "quantity",
                                           (json_int_t)sqlite3_column_int64(st, 3)));
    unprep(st);
    pthread_mutex_unlock(&k->rmu);
    *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return *out ? KV_OK : KV_ERR;
}
