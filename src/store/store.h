/* store: the one storage interface of osbill. Callers write SQL with '?' placeholders and
 * bind values by a type string; the backend (SQLite now, PostgreSQL later) hides the rest:
 * connections, prepared-statement caching, transactions and versioned migrations.
 * Whatever a caller acknowledges to a client is committed first. */
#ifndef OSBILL_STORE_H
#define OSBILL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct store store;
typedef struct store_tx store_tx;
typedef struct store_stmt store_stmt;

typedef struct {
    int version;      /* strictly increasing, never reused */
    const char *name; /* short description, recorded with the version */
    const char *sql;  /* one or more statements */
} store_migration;

typedef enum {
    STORE_SYNC_FULL = 0, /* every commit reaches the disk before it returns (default) */
    STORE_SYNC_NORMAL,   /* survives a process crash; the last commits may be lost on power loss */
} store_sync;

typedef struct {
    store_sync sync;
    int busy_timeout_ms; /* 0 = 5000 */
} store_options;

/* Opens (creating if missing) the database at path: a SQLite file, in WAL mode.
 * opt may be NULL for defaults. */
int store_open(const char *path, const store_options *opt, store **out) WARN_UNUSED;
void store_close(store *st);

/* Applies, in order, every migration whose version is above the recorded one, each in its
 * own transaction, and records it in schema_migrations. Fails on a database newer than
 * the code (a recorded version unknown to it). */
int store_migrate(store *st, const store_migration *m, size_t n) WARN_UNUSED;
int store_schema_version(store *st, int *out) WARN_UNUSED;

/* Transactions. A write transaction takes the writer lock at once (BEGIN IMMEDIATE), so two
 * writers never deadlock on upgrade. Every statement runs inside a transaction. A read
 * transaction begun by a thread that is already in one (read or write) is that same
 * transaction, ended by its own commit or rollback without ending the outer one. */
int store_begin(store *st, bool write, store_tx **out) WARN_UNUSED;
int store_commit(store_tx *tx) WARN_UNUSED; /* on failure the transaction is rolled back */
void store_rollback(store_tx *tx);

/* Binding types, one letter per '?' in the SQL:
 *   s  const char *      text (NULL binds SQL NULL)
 *   i  int64_t           integer
 *   d  int               integer (convenience for int and bool)
 *   b  const void *, size_t   blob
 *   n  (no argument)     NULL */
int store_exec(store_tx *tx, const char *sql, const char *types, ...) WARN_UNUSED;
/* Rows changed by the last store_exec on this transaction. */
int64_t store_changes(store_tx *tx);

/* Queries: prepare with bound values, then step until it returns STORE_DONE.
 * The statement is cached per connection by the address of sql: pass string literals. */
enum { STORE_ROW = 1, STORE_DONE = 0 };
int store_query(store_tx *tx, const char *sql, store_stmt **out, const char *types, ...) WARN_UNUSED;
int store_step(store_stmt *q) WARN_UNUSED; /* STORE_ROW, STORE_DONE or an error */
bool store_col_null(store_stmt *q, int col);
const char *store_col_text(store_stmt *q, int col); /* NULL for SQL NULL; valid until next step */
int64_t store_col_int(store_stmt *q, int col);
const void *store_col_blob(store_stmt *q, int col, size_t *len);
void store_done(store_stmt *q); /* resets the statement for reuse; always call it */

/* ---- group commit ----
 * Many requests' writes share one transaction and one disk flush: a committer thread takes
 * every queued unit of work, runs each inside its own savepoint of one write transaction,
 * commits once, then reports each unit's outcome. A unit's failure rolls back that unit
 * only. Nothing is reported as done before the commit has reached the disk. */
typedef struct store_group store_group;
/* Runs on the committer thread inside the batch's transaction; 0 or an error code. */
typedef int (*store_work_fn)(store_tx *tx, void *ud);
/* Runs on the committer thread after the commit: rc is the unit's result, or the commit's
 * failure. It owns ud from then on. */
typedef void (*store_done_fn)(void *ud, int rc);

/* Runs one unit in a write transaction of its own: committed if it returns 0, rolled
 * back otherwise. */
int store_write(store *st, store_work_fn work, void *ud) WARN_UNUSED;

int store_group_start(store *st, store_group **out) WARN_UNUSED;
/* Queues one unit; done is always called exactly once (with an error if the group stops). */
int store_group_submit(store_group *g, store_work_fn work, store_done_fn done, void *ud) WARN_UNUSED;
/* Finishes the queued work, then stops the thread. */
void store_group_stop(store_group *g);

/* Whether other osbill processes may share this store (PostgreSQL: several nodes): work that
 * must happen once across them is claimed with a lease first (store_lease_*). A SQLite file
 * belongs to one process (osbill serve locks its data directory). */
bool store_shared(store *st);
/* This process's name in leases: host, process id and a random part, fixed for its life. */
const char *store_node(void);
/* Leases on named work ("billing.close.2026-11"), in the store_leases table of the schema:
 * taken when free, expired or this node's already, until until_ms. 1 when taken, 0 when
 * another node holds it (its name in holder, if given), or an error. */
int store_lease_take(store_tx *tx, const char *name, int64_t now_ms, int64_t until_ms,
                     char *holder, size_t holder_len) WARN_UNUSED;
/* Gives it up, if this node holds it. */
int store_lease_drop(store_tx *tx, const char *name) WARN_UNUSED;

/* Many rows into one table in a write transaction, faster than an INSERT each on
 * PostgreSQL (one COPY). insert_sql is "INSERT INTO table (columns) VALUES (?, ...)", a
 * constant as every statement's text is; each row gives its values with the binding letters
 * of store_exec ('s' text or NULL, 'i' int64_t, 'd' int, 'n' NULL). Nothing else may run on
 * the transaction between begin and end. A row's error (a duplicate: OSB_E_CONFLICT) may
 * only be known at the end, which frees r and answers the first error of all. */
typedef struct store_rows store_rows;
int store_rows_begin(store_tx *tx, const char *insert_sql, store_rows **out) WARN_UNUSED;
int store_rows_add(store_rows *r, const char *types, ...);
int store_rows_end(store_rows *r) WARN_UNUSED;

/* The message of the backend's last error on this transaction, for logs. */
const char *store_errmsg(store_tx *tx);
/* Whether a transaction runs on PostgreSQL, for the few statements a module writes for each
 * backend (one round trip for many rows where SQLite's per-row calls cost nothing). */
bool store_tx_postgres(store_tx *tx);
/* The SQLite connection a transaction runs on, for SQL of another module's own (libosb's
 * provider writes): it must leave the transaction itself alone. */
struct sqlite3 *store_tx_sqlite(store_tx *tx);

#endif
