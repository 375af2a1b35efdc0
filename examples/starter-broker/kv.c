/* The starter broker's key-value store: namespaces, values, API keys, usage, in tables of
 * its own in libosb's state database (broker.db). Writes go through libosb: those a callback
 * makes join the transaction that records the call (osb_call_write), so a provision costs one
 * flush, not two; the data API's go through the same group commit (osb_write). Each returns
 * once it is on disk. Reads use a connection of their own and see only what is committed. */
#include "kv.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NSTMT 32

/* Prepared statements by connection and SQL text (its address: literals only). */
typedef struct {
    struct {
        sqlite3 *db;
        const char *sql;
        sqlite3_stmt *st;
    } slot[NSTMT];
} stmt_cache;

struct kv {
    osb_broker *b;
    sqlite3 *rdb; /* the reader */
    pthread_mutex_t rmu;
    stmt_cache rcache; /* the reader's, under rmu */
    stmt_cache wcache; /* on libosb's writer connection: used only while libosb runs a write */
    bool submit;       /* usage goes to the platform through libosb's usage client */
    int64_t period_ms; /* a usage record covers at most one such period */
};

/* Internal failure of a write function; callers see KV_ERR. */
#define KV_BROKEN 4

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
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
    " PRIMARY KEY (instance_id, plan_id, measure, hour));"
    /* The usage not yet handed to libosb's usage client: per instance and plan, the calls
     * and the storage peak since start_ms, until the period of start_ms is over. */
    "CREATE TABLE IF NOT EXISTS usage_open (instance_id TEXT NOT NULL, plan_id TEXT NOT NULL,"
    " start_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, calls INTEGER NOT NULL,"
    " peak_bytes INTEGER NOT NULL, PRIMARY KEY (instance_id, plan_id));"
    /* The platform's support deliveries received, one row per (delivery, signed time): a
     * retry has a new time, a replay the same. */
    "CREATE TABLE IF NOT EXISTS support_received (delivery_id TEXT NOT NULL, t INTEGER NOT NULL,"
    " event TEXT NOT NULL, case_id TEXT NOT NULL, body TEXT NOT NULL, received_ms INTEGER NOT"
    " NULL, PRIMARY KEY (delivery_id, t));";

/* The last period (its start) for which a namespace's usage was spooled: a period without
 * calls still gets its storage record. */
static const char add_columns[] =
    "ALTER TABLE namespaces ADD COLUMN usage_period INTEGER NOT NULL DEFAULT -1;";

/* Earlier versions kept the data in kv.db: moved into broker.db once, then renamed. */
static const char move_old[] = "BEGIN;"
                               "INSERT OR IGNORE INTO main.namespaces (instance_id, plan_id,"
                               " max_keys, max_value, ready_at, deleting_at, enabled,"
                               " last_active, bytes, nkeys) SELECT instance_id, plan_id,"
                               " max_keys, max_value, ready_at, deleting_at, enabled,"
                               " last_active, bytes, nkeys FROM old.namespaces;"
                               "INSERT OR IGNORE INTO main.kv SELECT * FROM old.kv;"
                               "INSERT OR IGNORE INTO main.apikeys SELECT * FROM old.apikeys;"
                               "INSERT OR IGNORE INTO main.usage SELECT * FROM old.usage;"
                               "COMMIT;";

static int prepare_file(const char *data_dir, const char *path)
{
    sqlite3 *db = NULL;
    char *err = NULL, old[4200], moved[4300];
    snprintf(old, sizeof old, "%s/kv.db", data_dir);
    int rc = sqlite3_open(path, &db) != SQLITE_OK || sqlite3_busy_timeout(db, 5000) != SQLITE_OK ||
             sqlite3_exec(db, schema, NULL, NULL, &err) != SQLITE_OK;
    if (!rc && access(old, F_OK) == 0) {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, "ATTACH ? AS old", -1, &st, NULL) != SQLITE_OK ||
             sqlite3_bind_text(st, 1, old, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
             sqlite3_step(st) != SQLITE_DONE;
        sqlite3_finalize(st);
        rc = rc || sqlite3_exec(db, move_old, NULL, NULL, &err) != SQLITE_OK ||
             sqlite3_exec(db, "DETACH old", NULL, NULL, &err) != SQLITE_OK;
        snprintf(moved, sizeof moved, "%s.moved", old);
        if (!rc && rename(old, moved) != 0) {
            fprintf(stderr, "starter-broker: cannot rename %s: %s\n", old, strerror(errno));
            rc = 1;
        }
        if (!rc)
            printf("starter-broker: moved the data of %s into %s\n", old, path);
    }
    /* Later versions' columns, added to a file an earlier version made. */
    if (!rc && sqlite3_exec(db, "SELECT usage_period FROM namespaces LIMIT 0", NULL, NULL, NULL) !=
                   SQLITE_OK)
        rc = sqlite3_exec(db, add_columns, NULL, NULL, &err) != SQLITE_OK;
    if (rc)
        fprintf(stderr, "starter-broker: %s: %s\n", path, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    sqlite3_close(db);
    return rc ? KV_ERR : KV_OK;
}

int kv_open(const char *data_dir, osb_broker *b, kv **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/broker.db", data_dir);
    if (prepare_file(data_dir, path) != KV_OK)
        return KV_ERR;
    kv *k = calloc(1, sizeof *k);
    if (!k)
        return KV_ERR;
    k->b = b;
    pthread_mutex_init(&k->rmu, NULL);
    if (sqlite3_open_v2(path, &k->rdb, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "starter-broker: %s: %s\n", path, sqlite3_errmsg(k->rdb));
        kv_close(k);
        return KV_ERR;
    }
    sqlite3_busy_timeout(k->rdb, 5000);
    *out = k;
    return KV_OK;
}

static void cache_free(stmt_cache *c)
{
    for (size_t i = 0; i < NSTMT; i++)
        sqlite3_finalize(c->slot[i].st);
}

void kv_close(kv *k)
{
    if (!k)
        return;
    /* The writer's statements go after libosb's connection has closed: it closes once the
     * last of them is finalized. */
    cache_free(&k->wcache);
    cache_free(&k->rcache);
    sqlite3_close(k->rdb);
    pthread_mutex_destroy(&k->rmu);
    free(k);
}

/* A prepared statement for sql on db, kept for the next use; unprep() readies it for that. */
static sqlite3_stmt *prep(stmt_cache *c, sqlite3 *db, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3 ^ (uintptr_t)db >> 4) % NSTMT;
    for (size_t i = 0; i < NSTMT; i++) {
        size_t j = (h + i) % NSTMT;
        if (c->slot[j].sql == sql && c->slot[j].db == db)
            return c->slot[j].st;
        if (!c->slot[j].sql) {
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return NULL;
            c->slot[j].db = db;
            c->slot[j].sql = sql;
            c->slot[j].st = st;
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

static sqlite3_stmt *rprep(kv *k, const char *sql)
{
    return prep(&k->rcache, k->rdb, sql);
}

/* ---- writes ---- */

typedef enum {
    W_NS_CREATE,
    W_NS_UPDATE,
    W_NS_ENABLED,
    W_NS_DELETING,
    W_NS_PURGE,
    W_KEY_ADD,
    W_KEY_REMOVE,
    W_PUT,
    W_DEL,
    W_METER,
    W_ROLL,
    W_SUPPORT,
} wkind;

/* One write: its kind and arguments. Deferred ones (in a call) own copies of their strings. */
typedef struct {
    kv *k;
    wkind kind;
    char *instance, *plan_id, *binding, *key, *role;
    unsigned char hash[32];
    const void *val; /* W_PUT: never deferred, so not copied */
    size_t n;
    int64_t a, b, c, d; /* see each kind */
} wop;

/* Runs one statement on db with text/int64/blob arguments described by types ("s", "i",
 * "b" = pointer and size). */
static int run(kv *k, sqlite3 *db, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st;
    if (!(st = prep(&k->wcache, db, sql))) {
        fprintf(stderr, "starter-broker: %s\n", sqlite3_errmsg(db));
        return KV_BROKEN;
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
    fprintf(stderr, "starter-broker: %s\n", sqlite3_errmsg(db));
    return KV_BROKEN;
}

static int put(kv *k, sqlite3 *db, const wop *w)
{
    sqlite3_stmt *st = prep(&k->wcache, db,
                            "SELECT (SELECT length(value) FROM kv WHERE instance_id = ?1 AND"
                            " key = ?2), max_keys, nkeys FROM namespaces WHERE instance_id = ?1");
    if (!st)
        return KV_BROKEN;
    sqlite3_bind_text(st, 1, w->instance, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, w->key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        unprep(st);
        return KV_NOTFOUND;
    }
    int64_t old = sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) : -1;
    int64_t max_keys = sqlite3_column_int64(st, 1), nkeys = sqlite3_column_int64(st, 2);
    unprep(st);
    if (old < 0 && nkeys >= max_keys)
        return KV_FULL;
    int rc = run(k, db, "INSERT OR REPLACE INTO kv (instance_id, key, value) VALUES (?, ?, ?)",
                 "ssb", w->instance, w->key, w->val, w->n);
    return rc ? rc
              : run(k, db,
                    "UPDATE namespaces SET bytes = bytes + ?, nkeys = nkeys + ? WHERE"
                    " instance_id = ?",
                    "iis", (int64_t)w->n - (old < 0 ? 0 : old), (int64_t)(old < 0 ? 1 : 0),
                    w->instance);
}

static int del(kv *k, sqlite3 *db, const wop *w)
{
    sqlite3_stmt *st =
        prep(&k->wcache, db, "SELECT length(value) FROM kv WHERE instance_id = ? AND key = ?");
    if (!st)
        return KV_BROKEN;
    sqlite3_bind_text(st, 1, w->instance, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, w->key, -1, SQLITE_TRANSIENT);
    int64_t len = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    unprep(st);
    if (len < 0)
        return KV_NOTFOUND;
    int rc =
        run(k, db, "DELETE FROM kv WHERE instance_id = ? AND key = ?", "ss", w->instance, w->key);
    return rc ? rc
              : run(k, db,
                    "UPDATE namespaces SET bytes = bytes - ?, nkeys = nkeys - 1 WHERE"
                    " instance_id = ?",
                    "is", len, w->instance);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Hands the open usage that started before before_ms (of one instance, or of all when
 * instance is NULL) to libosb's usage client: one record per instance and plan, covering
 * [first call, last call + 1), with its calls and its storage peak. */
static int roll(kv *k, sqlite3 *db, const char *instance, int64_t before_ms)
{
    sqlite3_stmt *st =
        instance ? prep(&k->wcache, db,
                        "SELECT instance_id, plan_id, start_ms, last_ms, calls, peak_bytes"
                        " FROM usage_open WHERE start_ms < ? AND instance_id = ?")
                 : prep(&k->wcache, db,
                        "SELECT instance_id, plan_id, start_ms, last_ms, calls, peak_bytes"
                        " FROM usage_open WHERE start_ms < ?");
    if (!st)
        return KV_BROKEN;
    sqlite3_bind_int64(st, 1, before_ms);
    if (instance)
        sqlite3_bind_text(st, 2, instance, -1, SQLITE_TRANSIENT);
    int rc = KV_OK, r;
    while (rc == KV_OK && (r = sqlite3_step(st)) == SQLITE_ROW) {
        char calls[24], peak[24];
        snprintf(calls, sizeof calls, "%lld", (long long)sqlite3_column_int64(st, 4));
        snprintf(peak, sizeof peak, "%lld", (long long)sqlite3_column_int64(st, 5));
        osb_measure m[] = {{"API_CALLS", calls}, {"STORAGE_BYTES", peak}};
        osb_usage_record rec = {
            .resource_instance_id = (const char *)sqlite3_column_text(st, 0),
            .plan_id = (const char *)sqlite3_column_text(st, 1),
            .start_ms = sqlite3_column_int64(st, 2),
            .end_ms = sqlite3_column_int64(st, 3) + 1,
            .measures = m,
            .n_measures = 2,
        };
        if (osb_usage_spool(db, &rec) != 0)
            rc = KV_BROKEN;
        else
            rc = run(k, db,
                     "UPDATE namespaces SET usage_period = max(usage_period, ?) WHERE"
                     " instance_id = ?",
                     "is", rec.start_ms - rec.start_ms % k->period_ms, rec.resource_instance_id);
    }
    unprep(st);
    if (rc != KV_OK)
        return rc;
    return instance ? run(k, db, "DELETE FROM usage_open WHERE start_ms < ? AND instance_id = ?",
                          "is", before_ms, instance)
                    : run(k, db, "DELETE FROM usage_open WHERE start_ms < ?", "i", before_ms);
}

/* The storage of the namespaces without calls in the periods up to the one that starts at
 * period_ms (just ended): one record a period, covering it whole, with its STORAGE_BYTES, so
 * that stored bytes are billed on days without calls too. Bytes change only with calls, so
 * an idle period holds what the namespace holds now. Periods missed while the broker was
 * down or busy are caught up, at most IDLE_CATCH_UP of them; a namespace has none before it
 * was ready, nor while it is being deleted. */
#define IDLE_CATCH_UP 24
static int roll_idle(kv *k, sqlite3 *db, int64_t period_ms)
{
    sqlite3_stmt *st = prep(&k->wcache, db,
                            "SELECT instance_id, plan_id, bytes, usage_period, ready_at FROM"
                            " namespaces WHERE bytes > 0 AND usage_period < ?1 AND"
                            " ready_at < ?1 AND deleting_at = 0");
    if (!st)
        return KV_BROKEN;
    sqlite3_bind_int64(st, 1, period_ms);
    int64_t p_ms = k->period_ms;
    int rc = KV_OK;
    while (rc == KV_OK && sqlite3_step(st) == SQLITE_ROW) {
        char bytes[24];
        snprintf(bytes, sizeof bytes, "%lld", (long long)sqlite3_column_int64(st, 2));
        int64_t last = sqlite3_column_int64(st, 3), ready = sqlite3_column_int64(st, 4);
        int64_t first = last + p_ms;
        if (first < ready - ready % p_ms + p_ms)
            first = ready - ready % p_ms + p_ms;
        if (first < period_ms - (IDLE_CATCH_UP - 1) * p_ms)
            first = period_ms - (IDLE_CATCH_UP - 1) * p_ms;
        first -= first % p_ms;
        osb_measure m[] = {{"STORAGE_BYTES", bytes}};
        for (int64_t p = first; rc == KV_OK && p <= period_ms; p += p_ms) {
            osb_usage_record rec = {
                .resource_instance_id = (const char *)sqlite3_column_text(st, 0),
                .plan_id = (const char *)sqlite3_column_text(st, 1),
                .start_ms = p,
                .end_ms = p + p_ms,
                .measures = m,
                .n_measures = 1,
            };
            if (osb_usage_spool(db, &rec) != 0)
                rc = KV_BROKEN;
        }
    }
    unprep(st);
    return rc ? rc
              : run(k, db,
                    "UPDATE namespaces SET usage_period = ?1 WHERE bytes > 0 AND"
                    " usage_period < ?1 AND ready_at < ?1 AND deleting_at = 0",
                    "i", period_ms);
}

/* The usage of one call for the platform: the instance's usage of an earlier period goes to
 * the spool first. The time is read here, on the writer, so that a call is never counted
 * into a period that roll() has already handed over. */
static int meter_open(kv *k, sqlite3 *db, const wop *w)
{
    int64_t now = wall_ms(), period = now - now % k->period_ms;
    int rc = roll(k, db, w->instance, period);
    return rc ? rc
              : run(k, db,
                    "INSERT INTO usage_open (instance_id, plan_id, start_ms, last_ms, calls,"
                    " peak_bytes) SELECT instance_id, plan_id, ?1, ?1, 1, bytes FROM namespaces"
                    " WHERE instance_id = ?2"
                    " ON CONFLICT (instance_id, plan_id) DO UPDATE SET"
                    " last_ms = max(last_ms, excluded.last_ms), calls = calls + 1,"
                    " peak_bytes = max(peak_bytes, excluded.peak_bytes)",
                    "is", now, w->instance);
}

static int meter(kv *k, sqlite3 *db, const wop *w)
{
    if (k->submit) {
        int rc = meter_open(k, db, w);
        if (rc)
            return rc;
    }
    int64_t hour = w->a / 3600000 * 3600000;
    int rc = run(k, db,
                 "INSERT INTO usage (instance_id, plan_id, measure, hour, quantity)"
                 " SELECT instance_id, plan_id, 'API_CALLS', ?, 1 FROM namespaces"
                 " WHERE instance_id = ?"
                 " ON CONFLICT (instance_id, plan_id, measure, hour)"
                 " DO UPDATE SET quantity = quantity + 1",
                 "is", hour, w->instance);
    if (!rc)
        rc = run(k, db,
                 "INSERT INTO usage (instance_id, plan_id, measure, hour, quantity)"
                 " SELECT instance_id, plan_id, 'STORAGE_BYTES', ?, bytes FROM namespaces"
                 " WHERE instance_id = ?"
                 " ON CONFLICT (instance_id, plan_id, measure, hour)"
                 " DO UPDATE SET quantity = max(quantity, excluded.quantity)",
                 "is", hour, w->instance);
    return rc ? rc
              : run(k, db, "UPDATE namespaces SET last_active = ? WHERE instance_id = ?", "is",
                    w->a, w->instance);
}

/* Runs on libosb's writer connection, inside its transaction (libosb's osb_write_fn). */
static int apply(struct sqlite3 *db, void *ud)
{
    const wop *w = ud;
    kv *k = w->k;
    int rc;
    switch (w->kind) {
    case W_NS_CREATE: /* a retried creation after a failure or an orphan clean-up starts afresh */
        return run(k, db,
                   "INSERT OR REPLACE INTO namespaces (instance_id, plan_id, max_keys, max_value,"
                   " ready_at, last_active) VALUES (?, ?, ?, ?, ?, ?)",
                   "ssiiii", w->instance, w->plan_id, w->a, w->b, w->c, w->d);
    case W_NS_UPDATE:
        return run(k, db,
                   "UPDATE namespaces SET plan_id = ?, max_keys = ?, max_value = ? WHERE"
                   " instance_id = ?",
                   "siis", w->plan_id, w->a, w->b, w->instance);
    case W_NS_ENABLED:
        return run(k, db, "UPDATE namespaces SET enabled = ? WHERE instance_id = ?", "is", w->a,
                   w->instance);
    case W_NS_DELETING:
        return run(k, db, "UPDATE namespaces SET deleting_at = ? WHERE instance_id = ?", "is", w->a,
                   w->instance);
    case W_NS_PURGE: /* the instance's last usage is complete: it goes now */
        if ((k->submit && (rc = roll(k, db, w->instance, INT64_MAX))) ||
            (rc = run(k, db, "DELETE FROM kv WHERE instance_id = ?", "s", w->instance)) ||
            (rc = run(k, db, "DELETE FROM apikeys WHERE instance_id = ?", "s", w->instance)))
            return rc;
        return run(k, db, "DELETE FROM namespaces WHERE instance_id = ?", "s", w->instance);
    case W_KEY_ADD:
        return run(k, db,
                   "INSERT OR REPLACE INTO apikeys (key_hash, instance_id, binding_id, role)"
                   " VALUES (?, ?, ?, ?)",
                   "bsss", (const void *)w->hash, sizeof w->hash, w->instance, w->binding, w->role);
    case W_KEY_REMOVE:
        return run(k, db, "DELETE FROM apikeys WHERE instance_id = ? AND binding_id = ?", "ss",
                   w->instance, w->binding);
    case W_PUT: return put(k, db, w);
    case W_DEL: return del(k, db, w);
    case W_METER: return meter(k, db, w);
    case W_SUPPORT: /* key: the delivery, a: its signed time, b: now; KV_EXISTS: a replay */
        return run(k, db,
                   "INSERT INTO support_received (delivery_id, t, event, case_id, body,"
                   " received_ms) VALUES (?, ?, ?, ?, ?, ?)",
                   "sissbi", w->key, w->a, w->binding, w->instance, w->val, w->n, w->b);
    case W_ROLL: /* a: before this, b: the period that just ended (-1: none, stopping) */
        rc = roll(k, db, NULL, w->a);
        return rc || w->b < 0 ? rc : roll_idle(k, db, w->b);
    }
    return KV_BROKEN;
}

static void wop_free(void *ud)
{
    wop *w = ud;
    free(w->instance);
    free(w->plan_id);
    free(w->binding);
    free(w->key);
    free(w->role);
    free(w);
}

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* In a callback (c): joins the call's transaction, and KV_OK says it is queued. Outside one:
 * runs in the next group commit, and the result says how it went once it is on disk. */
static int submit(kv *k, osb_call *c, const wop *w)
{
    if (!c) {
        int rc = osb_write(k->b, apply, (void *)w);
        return rc == 0 ? KV_OK : rc > 0 && rc != KV_BROKEN ? rc : KV_ERR;
    }
    wop *d = malloc(sizeof *d);
    if (!d)
        return KV_ERR;
    *d = *w;
    d->instance = dupstr(w->instance);
    d->plan_id = dupstr(w->plan_id);
    d->binding = dupstr(w->binding);
    d->key = dupstr(w->key);
    d->role = dupstr(w->role);
    if ((w->instance && !d->instance) || (w->plan_id && !d->plan_id) ||
        (w->binding && !d->binding) || (w->key && !d->key) || (w->role && !d->role)) {
        wop_free(d);
        return KV_ERR;
    }
    return osb_call_write(c, apply, d, wop_free) == 0 ? KV_OK : KV_ERR;
}

int kv_ns_create(kv *k, osb_call *c, const char *instance, const char *plan_id, int64_t max_keys,
                 int64_t max_value, int64_t now, int64_t ready_at)
{
    wop w = {.k = k,
             .kind = W_NS_CREATE,
             .instance = (char *)instance,
             .plan_id = (char *)plan_id,
             .a = max_keys,
             .b = max_value,
             .c = ready_at,
             .d = now};
    return submit(k, c, &w);
}

int kv_ns_update(kv *k, osb_call *c, const char *instance, const char *plan_id, int64_t max_keys,
                 int64_t max_value)
{
    wop w = {.k = k,
             .kind = W_NS_UPDATE,
             .instance = (char *)instance,
             .plan_id = (char *)plan_id,
             .a = max_keys,
             .b = max_value};
    return submit(k, c, &w);
}

int kv_ns_set_enabled(kv *k, osb_call *c, const char *instance, bool enabled)
{
    wop w = {.k = k, .kind = W_NS_ENABLED, .instance = (char *)instance, .a = enabled};
    return submit(k, c, &w);
}

int kv_ns_mark_deleting(kv *k, osb_call *c, const char *instance, int64_t deleting_at)
{
    wop w = {.k = k, .kind = W_NS_DELETING, .instance = (char *)instance, .a = deleting_at};
    return submit(k, c, &w);
}

int kv_ns_purge(kv *k, osb_call *c, const char *instance)
{
    wop w = {.k = k, .kind = W_NS_PURGE, .instance = (char *)instance};
    return submit(k, c, &w);
}

static void key_hash(const char *apikey, unsigned char out[32])
{
    SHA256((const unsigned char *)apikey, strlen(apikey), out);
}

int kv_apikey_add(kv *k, osb_call *c, const char *instance, const char *binding, const char *apikey,
                  const char *role)
{
    wop w = {.k = k,
             .kind = W_KEY_ADD,
             .instance = (char *)instance,
             .binding = (char *)binding,
             .role = (char *)role};
    key_hash(apikey, w.hash);
    return submit(k, c, &w);
}

int kv_apikey_remove(kv *k, osb_call *c, const char *instance, const char *binding)
{
    wop w = {
        .k = k, .kind = W_KEY_REMOVE, .instance = (char *)instance, .binding = (char *)binding};
    return submit(k, c, &w);
}

int kv_put(kv *k, const char *instance, const char *key, const void *val, size_t n)
{
    wop w = {.k = k,
             .kind = W_PUT,
             .instance = (char *)instance,
             .key = (char *)key,
             .val = val,
             .n = n};
    return submit(k, NULL, &w);
}

int kv_del(kv *k, const char *instance, const char *key)
{
    wop w = {.k = k, .kind = W_DEL, .instance = (char *)instance, .key = (char *)key};
    return submit(k, NULL, &w);
}

int kv_meter_call(kv *k, const char *instance, int64_t now_ms)
{
    wop w = {.k = k, .kind = W_METER, .instance = (char *)instance, .a = now_ms};
    return submit(k, NULL, &w);
}

void kv_submit_usage(kv *k, int64_t period_ms)
{
    k->submit = true;
    k->period_ms = period_ms > 0 ? period_ms : 3600000;
}

int kv_collect_usage(kv *k, int64_t now_ms, bool final)
{
    int64_t period = now_ms - now_ms % k->period_ms;
    wop w = {.k = k,
             .kind = W_ROLL,
             .a = final ? INT64_MAX : period,
             .b = final ? -1 : period - k->period_ms};
    return submit(k, NULL, &w);
}

/* ---- reads ---- */

int kv_ns_get(kv *k, const char *instance, kv_namespace *ns)
{
    sqlite3_stmt *st;
    int rc = KV_NOTFOUND;
    pthread_mutex_lock(&k->rmu);
    if (!(st = rprep(k, "SELECT plan_id, max_keys, max_value, ready_at, deleting_at, enabled,"
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

int kv_apikey_check(kv *k, const char *apikey, const char *instance, char role[16])
{
    unsigned char h[32];
    sqlite3_stmt *st;
    int rc = KV_NOTFOUND;
    /* The lookup is by digest of a 256-bit random key: timing reveals nothing usable. */
    key_hash(apikey, h);
    pthread_mutex_lock(&k->rmu);
    if (!(st = rprep(k, "SELECT role FROM apikeys WHERE key_hash = ? AND instance_id = ?"))) {
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

int kv_get(kv *k, const char *instance, const char *key, void **val, size_t *n)
{
    sqlite3_stmt *st;
    int rc = KV_NOTFOUND;
    pthread_mutex_lock(&k->rmu);
    if (!(st = rprep(k, "SELECT value FROM kv WHERE instance_id = ? AND key = ?"))) {
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

int kv_list(kv *k, const char *instance, char **out)
{
    sqlite3_stmt *st;
    json_t *a = json_array();
    pthread_mutex_lock(&k->rmu);
    if (!(st = rprep(k, "SELECT key FROM kv WHERE instance_id = ? ORDER BY key LIMIT 1000"))) {
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

int kv_usage(kv *k, const char *instance, char **out)
{
    sqlite3_stmt *st;
    json_t *a = json_array();
    pthread_mutex_lock(&k->rmu);
    if (!(st = rprep(k, "SELECT plan_id, measure, hour, quantity FROM usage WHERE instance_id = ?"
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

int kv_support_receive(kv *k, const char *delivery, int64_t t, const char *event,
                       const char *case_id, const void *body, size_t n, int64_t now, bool *again)
{
    *again = false;
    wop w = {.k = k,
             .kind = W_SUPPORT,
             .key = (char *)delivery,
             .binding = (char *)event,
             .instance = (char *)case_id,
             .val = body,
             .n = n,
             .a = t,
             .b = now};
    int rc = submit(k, NULL, &w);
    if (rc != KV_OK)
        return rc;
    pthread_mutex_lock(&k->rmu);
    sqlite3_stmt *st = rprep(k, "SELECT count(*) FROM support_received WHERE delivery_id = ?");
    if (st) {
        sqlite3_bind_text(st, 1, delivery, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
            *again = sqlite3_column_int64(st, 0) > 1;
        unprep(st);
    }
    pthread_mutex_unlock(&k->rmu);
    return KV_OK;
}

int kv_support_list(kv *k, char **out)
{
    sqlite3_stmt *st;
    json_t *a = json_array();
    pthread_mutex_lock(&k->rmu);
    if (!(st = rprep(k,
                     "SELECT delivery_id, event, case_id, count(*), min(received_ms),"
                     " (SELECT body FROM support_received r WHERE r.delivery_id ="
                     " s.delivery_id ORDER BY t DESC LIMIT 1)"
                     " FROM support_received s GROUP BY delivery_id ORDER BY min(received_ms)"))) {
        pthread_mutex_unlock(&k->rmu);
        json_decref(a);
        return KV_ERR;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *body = (const char *)sqlite3_column_text(st, 5);
        json_t *payload = body ? json_loads(body, 0, NULL) : NULL;
        json_array_append_new(
            a,
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "delivery_id", sqlite3_column_text(st, 0),
                      "event", sqlite3_column_text(st, 1), "case_id", sqlite3_column_text(st, 2),
                      "received", (json_int_t)sqlite3_column_int64(st, 3), "first_received_ms",
                      (json_int_t)sqlite3_column_int64(st, 4), "payload",
                      payload ? payload : json_null()));
    }
    unprep(st);
    pthread_mutex_unlock(&k->rmu);
    *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return *out ? KV_OK : KV_ERR;
}
