/* store, SQLite backend: one writer connection and a few reader connections on one WAL
 * file. A transaction holds one connection exclusively; statements are prepared once per
 * connection and cached by the address of their SQL text. */
#include "store/store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STMT_CACHE 1024 /* open-addressing slots per connection: every SQL text of the code */
#define NREADERS   4

struct store_stmt {
    bool pg;         /* false: SQLite's (store_int.h) */
    const char *sql; /* cache key */
    sqlite3_stmt *s;
};

struct store_tx {
    bool pg;
    struct conn *c;
    bool write;
    int64_t changes;
};

typedef struct conn {
    pthread_mutex_t mu;
    sqlite3 *db;
    store_stmt cache[STMT_CACHE];
    store_tx tx;
    /* The thread in a transaction on this connection (atomic: others only compare it with
     * themselves), and how many read transactions it opened inside that one. */
    pthread_t owner;
    bool owned;
    int depth;
} conn;

struct store {
    bool pg;
    conn writer;
    conn readers[NREADERS];
    unsigned next_reader;
    char *path;
};

/* Before any connection: no global memory statistics. Their counters sit behind one mutex
 * that every allocation of every connection takes, which the committer and the request
 * threads then fight over. Nothing here reads them. */
static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int open_conn(conn *c, const char *path, const store_options *opt, bool write)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    int flags = SQLITE_OPEN_NOMUTEX |
                (write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        log_error("store: cannot open %s: %s", path, c->db ? sqlite3_errmsg(c->db) : "no memory");
        return OSB_E_STORE;
    }
    sqlite3_busy_timeout(c->db, opt->busy_timeout_ms ? opt->busy_timeout_ms : 5000);
    sqlite3_extended_result_codes(c->db, 1);
    const char *pragmas = write ? (opt->sync == STORE_SYNC_NORMAL
                                       ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                         "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
                                       : "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                         "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;")
                                : "PRAGMA foreign_keys=ON;";
    char *err = NULL;
    int rc = sqlite3_exec(c->db, pragmas, NULL, NULL, &err);
    /* Checkpoints every 16000 pages (64 MiB of WAL) rather than SQLite's 1000: a page that
     * many commits rewrite (an index leaf that every batch touches) is copied back once per
     * checkpoint, not once per few commits. The WAL is cut back to that size after each. */
    if (rc == SQLITE_OK && write)
        rc = sqlite3_exec(c->db,
                          "PRAGMA wal_autocheckpoint=16000; PRAGMA journal_size_limit=67108864;",
                          NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        log_error("store: %s: %s", path, err ? err : "pragma failed");
        sqlite3_free(err);
        return OSB_E_STORE;
    }
    return 0;
}

static void close_conn(conn *c)
{
    for (int i = 0; i < STMT_CACHE; i++)
        if (c->cache[i].s)
            sqlite3_finalize(c->cache[i].s);
    if (c->db)
        sqlite3_close_v2(c->db); /* a zombie until statements others prepared on it go */
    pthread_mutex_destroy(&c->mu);
}

int store_open(const char *path, const store_options *opt, store **out)
{
    if (path && (str_has_prefix(path, "postgres://") || str_has_prefix(path, "postgresql://")))
        return pg_open(path, out);
    store_options defaults = {0};
    if (!opt)
        opt = &defaults;
    store *st = calloc(1, sizeof *st);
    if (!st)
        return OSB_E_NOMEM;
    st->path = strdup(path);
    int rc = st->path ? open_conn(&st->writer, path, opt, true) : OSB_E_NOMEM;
    /* Readers open after the writer has created the file and switched it to WAL. */
    for (int i = 0; !rc && i < NREADERS; i++)
        rc = open_conn(&st->readers[i], path, opt, false);
    if (rc) {
        store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void store_close(store *st)
{
    if (st && store_is_pg(st)) {
        pg_close(st);
        return;
    }
    if (!st)
        return;
    close_conn(&st->writer);
    for (int i = 0; i < NREADERS; i++)
        close_conn(&st->readers[i]);
    free(st->path);
    free(st);
}

static int raw_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        log_error("store: %s: %s", sql, err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return OSB_E_STORE;
    }
    return 0;
}

static store_stmt *cached(conn *c, const char *sql);

/* BEGIN, COMMIT and ROLLBACK from the statement cache: every transaction runs two of them,
 * and parsing them anew each time costs more than the statement itself. */
static int tx_exec(conn *c, const char *sql)
{
    store_stmt *e = cached(c, sql);
    if (!e)
        return raw_exec(c->db, sql);
    int r = sqlite3_step(e->s);
    sqlite3_reset(e->s);
    if (r == SQLITE_DONE)
        return 0;
    log_error("store: %s: %s", sql, sqlite3_errmsg(c->db));
    return OSB_E_STORE;
}

static bool mine(conn *c)
{
    return __atomic_load_n(&c->owned, __ATOMIC_ACQUIRE) &&
           pthread_equal(__atomic_load_n(&c->owner, __ATOMIC_RELAXED), pthread_self());
}

static void own(conn *c, bool on)
{
    if (on)
        __atomic_store_n(&c->owner, pthread_self(), __ATOMIC_RELAXED);
    __atomic_store_n(&c->owned, on, __ATOMIC_RELEASE);
}

/* A thread already in a transaction that asks for a read one gets the same transaction back:
 * waiting for another connection while holding one would deadlock once every reader is held
 * by a thread doing the same (a handler's read that calls the access check, which reads). */
static conn *held_by_this_thread(store *st)
{
    if (mine(&st->writer))
        return &st->writer;
    for (int i = 0; i < NREADERS; i++)
        if (mine(&st->readers[i]))
            return &st->readers[i];
    return NULL;
}

int store_begin(store *st, bool write, store_tx **out)
{
    if (store_is_pg(st))
        return pg_begin(st, write, out);
    conn *c;
    if (!write && (c = held_by_this_thread(st))) {
        c->depth++;
        *out = &c->tx;
        return 0;
    }
    if (write) {
        c = &st->writer;
        pthread_mutex_lock(&c->mu);
    } else {
        /* Take any idle reader; wait on one only when all are busy. */
        unsigned start = __atomic_fetch_add(&st->next_reader, 1, __ATOMIC_RELAXED);
        c = NULL;
        for (unsigned i = 0; i < NREADERS; i++) {
            conn *r = &st->readers[(start + i) % NREADERS];
            if (pthread_mutex_trylock(&r->mu) == 0) {
                c = r;
                break;
            }
        }
        if (!c) {
            c = &st->readers[start % NREADERS];
            pthread_mutex_lock(&c->mu);
        }
    }
    if (tx_exec(c, write ? "BEGIN IMMEDIATE" : "BEGIN")) {
        pthread_mutex_unlock(&c->mu);
        return OSB_E_STORE;
    }
    c->tx.c = c;
    c->tx.write = write;
    c->tx.changes = 0;
    c->depth = 0;
    own(c, true);
    *out = &c->tx;
    return 0;
}

int store_commit(store_tx *tx)
{
    if (store_is_pg(tx))
        return pg_commit(tx);
    conn *c = tx->c;
    if (c->depth > 0) { /* a read inside this thread's transaction ends; the outer goes on */
        c->depth--;
        return 0;
    }
    int rc = tx_exec(c, "COMMIT");
    if (rc)
        tx_exec(c, "ROLLBACK");
    own(c, false);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void store_rollback(store_tx *tx)
{
    if (store_is_pg(tx)) {
        pg_rollback(tx);
        return;
    }
    conn *c = tx->c;
    if (c->depth > 0) {
        c->depth--;
        return;
    }
    if (!sqlite3_get_autocommit(c->db))
        tx_exec(c, "ROLLBACK");
    own(c, false);
    pthread_mutex_unlock(&c->mu);
}

const char *store_errmsg(store_tx *tx)
{
    if (store_is_pg(tx))
        return pg_errmsg(tx);
    return sqlite3_errmsg(tx->c->db);
}

bool store_tx_postgres(store_tx *tx)
{
    return store_is_pg(tx);
}

sqlite3 *store_tx_sqlite(store_tx *tx)
{
    if (store_is_pg(tx))
        return NULL;
    return tx->c->db;
}

static store_stmt *cached(conn *c, const char *sql)
{
    uintptr_t h = ((uintptr_t)sql >> 3) * 2654435761u;
    for (unsigned i = 0; i < STMT_CACHE; i++) {
        store_stmt *e = &c->cache[(h + i) % STMT_CACHE];
        if (e->sql == sql)
            return e;
        if (!e->sql) {
            if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &e->s, NULL) !=
                SQLITE_OK) {
                log_error("store: prepare failed: %s: %s", sqlite3_errmsg(c->db), sql);
                e->s = NULL;
                return NULL;
            }
            e->sql = sql;
            return e;
        }
    }
    log_error("store: statement cache full");
    return NULL;
}

/* copy: SQLite keeps its own copies of texts and blobs, for a statement stepped after the
 * caller's values may be gone; store_exec steps at once and clears, so it lends them. */
static int bind_args(conn *c, sqlite3_stmt *s, const char *types, va_list ap, bool copy)
{
    sqlite3_destructor_type keep = copy ? SQLITE_TRANSIENT : SQLITE_STATIC;
    int n = (int)strlen(types);
    if (n != sqlite3_bind_parameter_count(s)) {
        log_error("store: %d values bound to %d placeholders: %s", n,
                  sqlite3_bind_parameter_count(s), sqlite3_sql(s));
        return OSB_E_INVAL;
    }
    for (int i = 0; i < n; i++) {
        int r;
        switch (types[i]) {
        case 's': {
            const char *v = va_arg(ap, const char *);
            r = v ? sqlite3_bind_text(s, i + 1, v, -1, keep) : sqlite3_bind_null(s, i + 1);
            break;
        }
        case 'i': r = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t)); break;
        case 'd': r = sqlite3_bind_int64(s, i + 1, va_arg(ap, int)); break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            r = sqlite3_bind_blob64(s, i + 1, p ? p : "", len, keep);
            break;
        }
        case 'n': r = sqlite3_bind_null(s, i + 1); break;
        default: return OSB_E_INVAL;
        }
        if (r != SQLITE_OK) {
            log_error("store: bind %d: %s", i + 1, sqlite3_errmsg(c->db));
            return OSB_E_STORE;
        }
    }
    return 0;
}

static int map_step_error(conn *c, int r)
{
    if ((r & 0xff) == SQLITE_CONSTRAINT)
        return OSB_E_CONFLICT;
    if ((r & 0xff) == SQLITE_BUSY || (r & 0xff) == SQLITE_LOCKED)
        return OSB_E_BUSY;
    log_error("store: %s", sqlite3_errmsg(c->db));
    return OSB_E_STORE;
}

static int lite_vexec(store_tx *tx, const char *sql, const char *types, va_list ap)
{
    conn *c = tx->c;
    store_stmt *e = cached(c, sql);
    if (!e)
        return OSB_E_STORE;
    int rc = bind_args(c, e->s, types, ap, false);
    if (!rc) {
        /* sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE even across a
         * SELECT; the difference of the running total is this statement's own. */
        int64_t before = sqlite3_total_changes64(c->db);
        int r = sqlite3_step(e->s);
        while (r == SQLITE_ROW)
            r = sqlite3_step(e->s);
        rc = r == SQLITE_DONE ? 0 : map_step_error(c, r);
        tx->changes = sqlite3_total_changes64(c->db) - before;
    }
    sqlite3_reset(e->s);
    sqlite3_clear_bindings(e->s);
    return rc;
}

int store_exec(store_tx *tx, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = store_is_pg(tx) ? pg_vexec(tx, sql, types, ap) : lite_vexec(tx, sql, types, ap);
    va_end(ap);
    return rc;
}

/* Many rows: on SQLite the INSERT itself, prepared once, for each. */
struct store_rows {
    bool pg;
    store_tx *tx;
    const char *sql;
    int rc;
};

int store_rows_begin(store_tx *tx, const char *insert_sql, store_rows **out)
{
    if (store_is_pg(tx))
        return pg_rows_begin(tx, insert_sql, out);
    store_rows *r = calloc(1, sizeof *r);
    if (!r)
        return OSB_E_NOMEM;
    *r = (store_rows){.tx = tx, .sql = insert_sql};
    *out = r;
    return 0;
}

int store_rows_add(store_rows *r, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc;
    if (store_is_pg(r)) { /* a struct of postgres.c's */
        rc = pg_rows_vadd(r, types, ap);
    } else {
        rc = r->rc ? r->rc : lite_vexec(r->tx, r->sql, types, ap);
        if (rc && !r->rc)
            r->rc = rc;
    }
    va_end(ap);
    return rc;
}

int store_rows_end(store_rows *r)
{
    if (store_is_pg(r))
        return pg_rows_end(r);
    int rc = r->rc;
    free(r);
    return rc;
}

int64_t store_changes(store_tx *tx)
{
    if (store_is_pg(tx))
        return pg_changes(tx);
    return tx->changes;
}

int store_query(store_tx *tx, const char *sql, store_stmt **out, const char *types, ...)
{
    if (store_is_pg(tx)) {
        va_list ap;
        va_start(ap, types);
        int rc = pg_vquery(tx, sql, out, types, ap);
        va_end(ap);
        return rc;
    }
    conn *c = tx->c;
    store_stmt *e = cached(c, sql);
    if (!e)
        return OSB_E_STORE;
    va_list ap;
    va_start(ap, types);
    int rc = bind_args(c, e->s, types, ap, true);
    va_end(ap);
    if (rc) {
        sqlite3_reset(e->s);
        sqlite3_clear_bindings(e->s);
        return rc;
    }
    *out = e;
    return 0;
}

int store_step(store_stmt *q)
{
    if (store_is_pg(q))
        return pg_step(q);
    int r = sqlite3_step(q->s);
    if (r == SQLITE_ROW)
        return STORE_ROW;
    if (r == SQLITE_DONE)
        return STORE_DONE;
    sqlite3 *db = sqlite3_db_handle(q->s);
    log_error("store: step: %s", sqlite3_errmsg(db));
    return (r & 0xff) == SQLITE_CONSTRAINT ? OSB_E_CONFLICT : OSB_E_STORE;
}

bool store_col_null(store_stmt *q, int col)
{
    if (store_is_pg(q))
        return pg_col_null(q, col);
    return sqlite3_column_type(q->s, col) == SQLITE_NULL;
}

const char *store_col_text(store_stmt *q, int col)
{
    if (store_is_pg(q))
        return pg_col_text(q, col);
    return (const char *)sqlite3_column_text(q->s, col);
}

int64_t store_col_int(store_stmt *q, int col)
{
    if (store_is_pg(q))
        return pg_col_int(q, col);
    return sqlite3_column_int64(q->s, col);
}

const void *store_col_blob(store_stmt *q, int col, size_t *len)
{
    if (store_is_pg(q))
        return pg_col_blob(q, col, len);
    const void *p = sqlite3_column_blob(q->s, col);
    *len = (size_t)sqlite3_column_bytes(q->s, col);
    return p;
}

void store_done(store_stmt *q)
{
    if (store_is_pg(q)) {
        pg_done(q);
        return;
    }
    sqlite3_reset(q->s);
    sqlite3_clear_bindings(q->s);
}

/* ---------------------------------------------------------------- migrations */

int store_schema_version(store *st, int *out)
{
    if (store_is_pg(st))
        return pg_schema_version(st, out);
    conn *c = &st->writer;
    pthread_mutex_lock(&c->mu);
    int rc = raw_exec(c->db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                             " applied_at INTEGER NOT NULL)");
    sqlite3_stmt *s = NULL;
    if (!rc &&
        sqlite3_prepare_v2(c->db, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0);
    else
        rc = OSB_E_STORE;
    sqlite3_finalize(s);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* The last step of SQLite's procedure for editing sqlite_schema in place (a migration under
 * PRAGMA writable_schema): a new schema version, so that every connection reads it again. */
static int bump_schema_version(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA schema_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (v < 0)
        return OSB_E_STORE;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA schema_version = %d", v + 1);
    return raw_exec(db, sql);
}

int store_migrate(store *st, const store_migration *m, size_t n)
{
    if (store_is_pg(st))
        return pg_migrate(st, m, n);
    int current;
    int rc = store_schema_version(st, &current);
    if (rc)
        return rc;
    int known = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].version <= known) {
            log_error("store: migration versions must increase (%d after %d)", m[i].version, known);
            return OSB_E_INVAL;
        }
        known = m[i].version;
    }
    if (current > known) {
        log_error("store: database schema version %d is newer than this program's %d", current,
                  known);
        return OSB_E_STORE;
    }
    conn *c = &st->writer;
    for (size_t i = 0; i < n; i++) {
        if (m[i].version <= current)
            continue;
        pthread_mutex_lock(&c->mu);
        rc = raw_exec(c->db, "BEGIN IMMEDIATE");
        if (!rc)
            rc = raw_exec(c->db, m[i].sql);
        if (!rc && strstr(m[i].sql, "PRAGMA writable_schema"))
            rc = bump_schema_version(c->db);
        sqlite3_stmt *s = NULL;
        if (!rc) {
            if (sqlite3_prepare_v2(c->db,
                                   "INSERT INTO schema_migrations(version, name, applied_at)"
                                   " VALUES (?, ?, ?)",
                                   -1, &s, NULL) != SQLITE_OK)
                rc = OSB_E_STORE;
            else {
                sqlite3_bind_int(s, 1, m[i].version);
                sqlite3_bind_text(s, 2, m[i].name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(s, 3, time_now_ms());
                if (sqlite3_step(s) != SQLITE_DONE)
                    rc = OSB_E_STORE;
            }
            sqlite3_finalize(s);
        }
        rc = rc ? rc : raw_exec(c->db, "COMMIT");
        if (rc) {
            raw_exec(c->db, "ROLLBACK");
            pthread_mutex_unlock(&c->mu);
            log_error("store: migration %d (%s) failed", m[i].version, m[i].name);
            return rc;
        }
        pthread_mutex_unlock(&c->mu);
        log_info("store: applied migration %d: %s", m[i].version, m[i].name);
    }
    return 0;
}
