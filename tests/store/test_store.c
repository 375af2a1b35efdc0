/* Unit tests of the store over a temporary SQLite file: migrations, transactions and their
 * visibility, value binding, error mapping and concurrent writers. Every test gets a fresh
 * database in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>

#include "base/base.h"
#include "store/store.h"

typedef struct {
    char dir[256];
    char path[300];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/osbill-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/test.db", f->dir);
    if (store_open(f->path, NULL, &f->st) != 0) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void remove_db_files(const char *path)
{
    static const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    remove_db_files(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Reopens the fixture's database, as a restarted process would. */
static void reopen(fixture *f)
{
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, NULL, &f->st), 0);
}

/* Runs one statement in its own write transaction and commits it. */
static void exec_committed(store *st, const char *sql)
{
    store_tx *tx;
    assert_int_equal(store_begin(st, true, &tx), 0);
    int rc = store_exec(tx, sql, "");
    if (rc)
        fail_msg("%s: %d (%s)", sql, rc, store_errmsg(tx));
    assert_int_equal(store_commit(tx), 0);
}

/* The single integer a query returns, read in its own read transaction. sql: a literal. */
static int64_t query_int(store *st, const char *sql)
{
    store_tx *tx;
    store_stmt *q;
    assert_int_equal(store_begin(st, false, &tx), 0);
    int rc = store_query(tx, sql, &q, "");
    if (rc)
        fail_msg("%s: %d (%s)", sql, rc, store_errmsg(tx));
    assert_int_equal(store_step(q), STORE_ROW);
    int64_t v = store_col_int(q, 0);
    assert_int_equal(store_step(q), STORE_DONE);
    store_done(q);
    store_rollback(tx);
    return v;
}

static bool table_exists(store *st, const char *name)
{
    store_tx *tx;
    store_stmt *q;
    assert_int_equal(store_begin(st, false, &tx), 0);
    assert_int_equal(store_query(tx,
                                 "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                 " AND name = ?",
                                 &q, "s", name),
                     0);
    assert_int_equal(store_step(q), STORE_ROW);
    int64_t n = store_col_int(q, 0);
    store_done(q);
    store_rollback(tx);
    return n == 1;
}

static int schema_version(store *st)
{
    int v = -1;
    assert_int_equal(store_schema_version(st, &v), 0);
    return v;
}

static void test_open_failure_is_error(void **state)
{
    fixture *f = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/no/such/dir/test.db", f->dir);
    store *st = NULL;
    assert_int_equal(store_open(path, NULL, &st), OSB_E_STORE);
    assert_null(st);
}

/* ---------------------------------------------------------------- migrations */

static const store_migration two_migrations[] = {
    {1, "accounts", "CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL)"},
    {2, "offerings",
     "CREATE TABLE offerings (id TEXT PRIMARY KEY, account_id TEXT NOT NULL);"
     "CREATE INDEX offerings_account ON offerings(account_id)"},
};

static void test_fresh_database_is_version_zero(void **state)
{
    fixture *f = *state;
    assert_int_equal(schema_version(f->st), 0);
    assert_int_equal(store_migrate(f->st, NULL, 0), 0);
    assert_int_equal(schema_version(f->st), 0);
}

static void test_migrations_applied_once(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_migrate(f->st, two_migrations, 2), 0);
    assert_int_equal(schema_version(f->st), 2);
    assert_true(table_exists(f->st, "accounts"));
    assert_true(table_exists(f->st, "offerings"));
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM schema_migrations"), 2);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM schema_migrations WHERE version = 2 AND"
                                      " name = 'offerings' AND applied_at > 1600000000000"),
                     1);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                      " AND name = 'offerings_account'"),
                     1);

    /* Running them again is a no-op: the CREATE TABLEs would fail if re-run. */
    exec_committed(f->st, "INSERT INTO accounts VALUES ('a1', 'Acme')");
    assert_int_equal(store_migrate(f->st, two_migrations, 2), 0);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM schema_migrations"), 2);

    /* and so after a restart; the data is still there */
    reopen(f);
    assert_int_equal(schema_version(f->st), 2);
    assert_int_equal(store_migrate(f->st, two_migrations, 2), 0);
    assert_int_equal(schema_version(f->st), 2);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM schema_migrations"), 2);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM accounts"), 1);
}

static void test_migrations_only_new_ones_run(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_migrate(f->st, two_migrations, 1), 0);
    assert_int_equal(schema_version(f->st), 1);
    assert_false(table_exists(f->st, "offerings"));
    reopen(f);
    /* version 1 is not re-run (its CREATE TABLE would fail), version 2 is */
    assert_int_equal(store_migrate(f->st, two_migrations, 2), 0);
    assert_int_equal(schema_version(f->st), 2);
    assert_true(table_exists(f->st, "offerings"));
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM schema_migrations"), 2);
}

static void test_failing_migration_rolls_back(void **state)
{
    fixture *f = *state;
    const store_migration ms[] = {
        two_migrations[0],
        {2, "half", "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1)"},
        {3, "after", "CREATE TABLE after_half (x INTEGER)"},
    };
    assert_int_not_equal(store_migrate(f->st, ms, 3), 0);
    /* the previous version stays, nothing of migration 2 remains, 3 never ran */
    assert_int_equal(schema_version(f->st), 1);
    assert_true(table_exists(f->st, "accounts"));
    assert_false(table_exists(f->st, "half"));
    assert_false(table_exists(f->st, "after_half"));
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM schema_migrations"), 1);

    /* the store is still usable, and a corrected migration 2 applies */
    const store_migration fixed[] = {
        two_migrations[0],
        {2, "half", "CREATE TABLE half (x INTEGER)"},
        {3, "after", "CREATE TABLE after_half (x INTEGER)"},
    };
    assert_int_equal(store_migrate(f->st, fixed, 3), 0);
    assert_int_equal(schema_version(f->st), 3);
    assert_true(table_exists(f->st, "half"));
    assert_true(table_exists(f->st, "after_half"));
}

static void test_newer_database_refused(void **state)
{
    fixture *f = *state;
    const store_migration three[] = {
        two_migrations[0],
        two_migrations[1],
        {3, "plans", "CREATE TABLE plans (id TEXT PRIMARY KEY)"},
    };
    assert_int_equal(store_migrate(f->st, three, 3), 0);
    reopen(f);
    /* an older program must not run against the newer schema */
    assert_int_not_equal(store_migrate(f->st, two_migrations, 2), 0);
    assert_int_not_equal(store_migrate(f->st, NULL, 0), 0);
    assert_int_equal(schema_version(f->st), 3);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM schema_migrations"), 3);
}

static void test_unordered_migrations_refused_before_applying(void **state)
{
    fixture *f = *state;
    const store_migration unordered[] = {
        {2, "second", "CREATE TABLE second (x INTEGER)"},
        {1, "first", "CREATE TABLE first (x INTEGER)"},
    };
    /* Versions must increase; a list that does not is refused as a whole. */
    assert_int_equal(store_migrate(f->st, unordered, 2), OSB_E_INVAL);
    assert_int_equal(schema_version(f->st), 0);
    assert_false(table_exists(f->st, "second"));
}

/* ---------------------------------------------------------------- transactions */

static void create_kv(store *st)
{
    exec_committed(st, "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)");
}

static void test_commit_visible_rollback_not(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    store_tx *tx;

    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "a", "1"), 0);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), 1);

    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "b", "2"), 0);
    /* the writer sees its own uncommitted row */
    store_stmt *q;
    assert_int_equal(store_query(tx, "SELECT count(*) FROM kv", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), 2);
    store_done(q);
    store_rollback(tx);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), 1);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv WHERE k = 'b'"), 0);

    /* the writer connection is usable after a rollback */
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "b", "3"), 0);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv WHERE k = 'b'"), 1);
}

typedef struct {
    store *st;
    int64_t count;
} counter;

static void *count_on_another_thread(void *arg)
{
    counter *k = arg;
    k->count = query_int(k->st, "SELECT count(*) FROM kv");
    return NULL;
}

static void test_read_isolation(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    store_tx *w, *r;
    store_stmt *q;

    assert_int_equal(store_begin(f->st, true, &w), 0);
    assert_int_equal(store_exec(w, "INSERT INTO kv VALUES (?, ?)", "ss", "x", "1"), 0);

    /* another thread's reader does not see uncommitted writes */
    counter k = {.st = f->st, .count = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, count_on_another_thread, &k), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(k.count, 0);
    /* ... while a read begun inside the write is that transaction, and sees them */
    assert_int_equal(store_begin(f->st, false, &r), 0);
    assert_ptr_equal(r, w);
    assert_int_equal(store_query(r, "SELECT count(*) FROM kv", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), 1);
    store_done(q);
    store_rollback(r); /* ends the nested read only */
    assert_int_equal(store_exec(w, "INSERT INTO kv VALUES (?, ?)", "ss", "y", "2"), 0);
    assert_int_equal(store_commit(w), 0);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), 2);

    /* a reader keeps the snapshot it started with */
    assert_int_equal(store_begin(f->st, false, &r), 0);
    assert_int_equal(store_query(r, "SELECT count(*) FROM kv", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), 2);
    store_done(q);
    store_tx *w2;
    assert_int_equal(store_begin(f->st, true, &w2), 0);
    assert_int_equal(store_exec(w2, "INSERT INTO kv VALUES (?, ?)", "ss", "z", "3"), 0);
    assert_int_equal(store_commit(w2), 0);
    assert_int_equal(store_query(r, "SELECT count(*) FROM kv", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), 2);
    store_done(q);
    store_rollback(r);

    /* a new read transaction sees the committed row, with its value */
    assert_int_equal(store_begin(f->st, false, &r), 0);
    assert_int_equal(store_query(r, "SELECT v FROM kv WHERE k = ?", &q, "s", "x"), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_string_equal(store_col_text(q, 0), "1");
    assert_int_equal(store_step(q), STORE_DONE);
    store_done(q);
    store_rollback(r);
}

/* Every reader connection held by a thread that asks for another read: each gets its own
 * transaction back instead of waiting for a connection that no one will release. */
typedef struct {
    store *st;
    pthread_barrier_t *all_hold;
    int ok;
} nester;

static void *nest_main(void *arg)
{
    nester *n = arg;
    store_tx *outer, *inner;
    if (store_begin(n->st, false, &outer))
        return NULL;
    pthread_barrier_wait(n->all_hold);
    if (store_begin(n->st, false, &inner) == 0) {
        n->ok = inner == outer;
        store_rollback(inner);
    }
    store_rollback(outer);
    return NULL;
}

static void test_nested_reads_do_not_deadlock(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    enum { THREADS = 8 }; /* more than the store's reader connections */
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 4);
    nester ns[THREADS];
    pthread_t th[THREADS];
    /* four at a time hold every reader, then each asks for one more */
    for (int round = 0; round < THREADS / 4; round++) {
        for (int i = 0; i < 4; i++) {
            ns[round * 4 + i] = (nester){.st = f->st, .all_hold = &b};
            assert_int_equal(pthread_create(&th[round * 4 + i], NULL, nest_main,
                                            &ns[round * 4 + i]),
                             0);
        }
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_join(th[round * 4 + i], NULL), 0);
    }
    pthread_barrier_destroy(&b);
    for (int i = 0; i < THREADS; i++)
        assert_true(ns[i].ok);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), 0);
}

static void test_reads_see_commits_on_every_reader(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    /* enough rounds to go through every reader connection several times */
    for (int i = 0; i < 12; i++) {
        store_tx *tx;
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(store_begin(f->st, true, &tx), 0);
        assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", k, k), 0);
        assert_int_equal(store_commit(tx), 0);
        assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), i + 1);
    }
}

static void test_write_in_read_tx_fails(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    store_tx *r;
    assert_int_equal(store_begin(f->st, false, &r), 0);
    assert_int_not_equal(store_exec(r, "INSERT INTO kv VALUES (?, ?)", "ss", "a", "1"), 0);
    store_rollback(r);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), 0);
}

static void test_write_tx_takes_lock_at_once(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    /* a second store on the same file stands for another process */
    store *other;
    store_options opt = {.sync = STORE_SYNC_FULL, .busy_timeout_ms = 50};
    assert_int_equal(store_open(f->path, &opt, &other), 0);
    store_tx *a, *b;
    assert_int_equal(store_begin(f->st, true, &a), 0);
    /* no statement has run in a yet, but it already holds the write lock */
    assert_int_not_equal(store_begin(other, true, &b), 0);
    /* readers are not blocked by it */
    assert_int_equal(store_begin(other, false, &b), 0);
    store_rollback(b);
    assert_int_equal(store_exec(a, "INSERT INTO kv VALUES (?, ?)", "ss", "a", "1"), 0);
    assert_int_equal(store_commit(a), 0);
    /* once released, the other store writes and sees the row */
    assert_int_equal(store_begin(other, true, &b), 0);
    assert_int_equal(store_exec(b, "UPDATE kv SET v = ? WHERE k = ?", "ss", "2", "a"), 0);
    assert_int_equal(store_changes(b), 1);
    assert_int_equal(store_commit(b), 0);
    store_close(other);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv WHERE v = '2'"), 1);
}

/* ---------------------------------------------------------------- binding */

static void test_bind_types(void **state)
{
    fixture *f = *state;
    exec_committed(f->st, "CREATE TABLE vals (id INTEGER PRIMARY KEY, s TEXT, i INTEGER,"
                          " d INTEGER, b BLOB, n TEXT)");
    static const unsigned char blob[] = {0x00, 0xff, 0x10, 0x00, 0x7f};
    store_tx *tx;
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO vals VALUES (?, ?, ?, ?, ?, ?)", "dsidbn", 1,
                                "h\xc3\xa9llo 'quoted'", (int64_t)INT64_MAX, -7, blob, sizeof blob),
                     0);
    assert_int_equal(store_exec(tx, "INSERT INTO vals VALUES (?, ?, ?, ?, ?, ?)", "dsidbn", 2,
                                (const char *)NULL, (int64_t)INT64_MIN, 2147483647, blob,
                                (size_t)1),
                     0);
    assert_int_equal(store_commit(tx), 0);

    store_stmt *q;
    assert_int_equal(store_begin(f->st, false, &tx), 0);
    assert_int_equal(store_query(tx,
                                 "SELECT s, i, d, b, n, typeof(s), typeof(i), typeof(d),"
                                 " typeof(b), typeof(n) FROM vals WHERE id = ?",
                                 &q, "i", (int64_t)1),
                     0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_string_equal(store_col_text(q, 0), "h\xc3\xa9llo 'quoted'");
    assert_true(store_col_int(q, 1) == INT64_MAX);
    assert_true(store_col_int(q, 2) == -7);
    size_t len = 0;
    const void *p = store_col_blob(q, 3, &len);
    assert_int_equal(len, sizeof blob);
    assert_memory_equal(p, blob, sizeof blob);
    assert_true(store_col_null(q, 4));
    assert_null(store_col_text(q, 4));
    assert_false(store_col_null(q, 0));
    assert_string_equal(store_col_text(q, 5), "text");
    assert_string_equal(store_col_text(q, 6), "integer");
    assert_string_equal(store_col_text(q, 7), "integer");
    assert_string_equal(store_col_text(q, 8), "blob");
    assert_string_equal(store_col_text(q, 9), "null");
    assert_int_equal(store_step(q), STORE_DONE);
    store_done(q);

    /* the same cached statement, rebound */
    assert_int_equal(store_query(tx,
                                 "SELECT s, i, d, b, n, typeof(s), typeof(i), typeof(d),"
                                 " typeof(b), typeof(n) FROM vals WHERE id = ?",
                                 &q, "d", 2),
                     0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_true(store_col_null(q, 0)); /* NULL text binds SQL NULL */
    assert_null(store_col_text(q, 0));
    assert_string_equal(store_col_text(q, 5), "null");
    assert_true(store_col_int(q, 1) == INT64_MIN);
    assert_int_equal(store_col_int(q, 2), 2147483647);
    p = store_col_blob(q, 3, &len);
    assert_int_equal(len, 1);
    assert_int_equal(((const unsigned char *)p)[0], 0x00);
    assert_int_equal(store_step(q), STORE_DONE);
    store_done(q);
    store_rollback(tx);
}

static void test_unique_violation_is_conflict(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    store_tx *tx;
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "dup", "1"), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "dup", "2"),
                     OSB_E_CONFLICT);
    /* the failed statement undid only itself; the transaction goes on */
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "other", "3"), 0);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), 2);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv WHERE k = 'dup' AND v = '1'"), 1);

    /* across transactions too */
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "dup", "4"),
                     OSB_E_CONFLICT);
    store_rollback(tx);
}

static void test_placeholder_mismatch_is_error(void **state)
{
    fixture *f = *state;
    create_kv(f->st);
    store_tx *tx;
    store_stmt *q = NULL;
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    /* too few values */
    assert_int_not_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "s", "a"), 0);
    /* too many */
    assert_int_not_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "sss", "a", "b", "c"), 0);
    /* none where some are needed */
    assert_int_not_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", ""), 0);
    /* a type letter that does not exist */
    assert_int_not_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "sx", "a", "b"), 0);
    /* the same for queries */
    assert_int_not_equal(store_query(tx, "SELECT v FROM kv WHERE k = ?", &q, ""), 0);
    assert_int_not_equal(store_query(tx, "SELECT v FROM kv WHERE k = ?", &q, "ss", "a", "b"), 0);
    /* nothing was inserted, and the statements still work when called right */
    assert_int_equal(store_exec(tx, "INSERT INTO kv VALUES (?, ?)", "ss", "a", "1"), 0);
    assert_int_equal(store_changes(tx), 1);
    assert_int_equal(store_query(tx, "SELECT v FROM kv WHERE k = ?", &q, "s", "a"), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_string_equal(store_col_text(q, 0), "1");
    assert_int_equal(store_step(q), STORE_DONE);
    store_done(q);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM kv"), 1);
}

static void test_bad_sql_is_error(void **state)
{
    fixture *f = *state;
    store_tx *tx;
    store_stmt *q;
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO nowhere VALUES (?)", "d", 1), OSB_E_STORE);
    /* a failed prepare is not cached as if it had worked */
    assert_int_equal(store_exec(tx, "INSERT INTO nowhere VALUES (?)", "d", 1), OSB_E_STORE);
    assert_int_equal(store_query(tx, "SELEKT 1", &q, ""), OSB_E_STORE);
    assert_non_null(store_errmsg(tx));
    assert_int_equal(store_exec(tx, "CREATE TABLE t (x INTEGER)", ""), 0);
    assert_int_equal(store_commit(tx), 0);
    assert_true(table_exists(f->st, "t"));
}

static void test_store_changes(void **state)
{
    fixture *f = *state;
    exec_committed(f->st, "CREATE TABLE n (x INTEGER PRIMARY KEY, y INTEGER)");
    store_tx *tx;
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_changes(tx), 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(store_exec(tx, "INSERT INTO n VALUES (?, ?)", "dd", i, i % 2), 0);
        assert_int_equal(store_changes(tx), 1);
    }
    assert_int_equal(store_exec(tx, "UPDATE n SET y = 7 WHERE y = ?", "d", 1), 0);
    assert_int_equal(store_changes(tx), 3);
    assert_int_equal(store_exec(tx, "UPDATE n SET y = 8 WHERE x > ?", "d", 100), 0);
    assert_int_equal(store_changes(tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO n SELECT x + 10, y FROM n WHERE x <= ?", "d", 2),
                     0);
    assert_int_equal(store_changes(tx), 2);
    /* a failed insert changed nothing */
    assert_int_equal(store_exec(tx, "INSERT INTO n VALUES (?, ?)", "dd", 1, 0), OSB_E_CONFLICT);
    assert_int_equal(store_changes(tx), 0);
    assert_int_equal(store_exec(tx, "DELETE FROM n WHERE x < ?", "d", 4), 0);
    assert_int_equal(store_changes(tx), 3);
    assert_int_equal(store_commit(tx), 0);

    /* a new transaction starts from zero */
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_changes(tx), 0);
    store_rollback(tx);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM n"), 4);
}

static void test_store_changes_of_statements_that_change_nothing(void **state)
{
    fixture *f = *state;
    exec_committed(f->st, "CREATE TABLE n (x INTEGER)");
    store_tx *tx;
    assert_int_equal(store_begin(f->st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO n VALUES (1), (2), (3)", ""), 0);
    assert_int_equal(store_changes(tx), 3);
    /* "rows changed by the last store_exec": a SELECT or a CREATE changed none */
    assert_int_equal(store_exec(tx, "SELECT x FROM n", ""), 0);
    assert_int_equal(store_changes(tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO n VALUES (4)", ""), 0);
    assert_int_equal(store_changes(tx), 1);
    assert_int_equal(store_exec(tx, "CREATE TABLE m (y INTEGER)", ""), 0);
    assert_int_equal(store_changes(tx), 0);
    store_rollback(tx);
}

/* ---------------------------------------------------------------- concurrency */

enum { WRITERS = 4, ROWS_PER_WRITER = 500, READERS = 2 };

typedef struct {
    store *st;
    int id;
    int failures;
    int64_t last_seen;
    volatile int *stop;
} worker;

static void *writer_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < ROWS_PER_WRITER; i++) {
        store_tx *tx;
        if (store_begin(w->st, true, &tx)) {
            w->failures++;
            continue;
        }
        int rc = store_exec(tx, "INSERT INTO events (writer, seq) VALUES (?, ?)", "dd", w->id, i);
        if (rc || store_changes(tx) != 1) {
            store_rollback(tx);
            w->failures++;
            continue;
        }
        if (store_commit(tx))
            w->failures++;
    }
    return NULL;
}

/* Counts rows while the writers run: the count never goes down and never exceeds the total. */
static void *reader_main(void *arg)
{
    worker *w = arg;
    while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE)) {
        store_tx *tx;
        store_stmt *q;
        if (store_begin(w->st, false, &tx)) {
            w->failures++;
            continue;
        }
        if (store_query(tx, "SELECT count(*) FROM events", &q, "") == 0) {
            if (store_step(q) == STORE_ROW) {
                int64_t n = store_col_int(q, 0);
                if (n < w->last_seen || n > WRITERS * ROWS_PER_WRITER)
                    w->failures++;
                w->last_seen = n;
            } else {
                w->failures++;
            }
            store_done(q);
        } else {
            w->failures++;
        }
        store_rollback(tx);
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    fixture *f = *state;
    /* NORMAL sync keeps 2000 commits fast; the locking under test is the same. */
    store_close(f->st);
    store_options opt = {.sync = STORE_SYNC_NORMAL, .busy_timeout_ms = 0};
    assert_int_equal(store_open(f->path, &opt, &f->st), 0);
    exec_committed(f->st, "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                          " writer INTEGER NOT NULL, seq INTEGER NOT NULL,"
                          " UNIQUE (writer, seq))");

    volatile int stop = 0;
    worker ws[WRITERS + READERS];
    pthread_t th[WRITERS + READERS];
    for (int i = 0; i < WRITERS + READERS; i++) {
        ws[i] = (worker){.st = f->st, .id = i, .stop = &stop};
        assert_int_equal(
            pthread_create(&th[i], NULL, i < WRITERS ? writer_main : reader_main, &ws[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = WRITERS; i < WRITERS + READERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    for (int i = 0; i < WRITERS + READERS; i++)
        if (ws[i].failures)
            fail_msg("%s %d: %d failures", i < WRITERS ? "writer" : "reader", i, ws[i].failures);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM events"), WRITERS * ROWS_PER_WRITER);
    assert_int_equal(query_int(f->st, "SELECT count(DISTINCT writer) FROM events"), WRITERS);
    assert_int_equal(query_int(f->st, "SELECT max(n) FROM (SELECT count(*) AS n FROM events"
                                      " GROUP BY writer)"),
                     ROWS_PER_WRITER);
    assert_int_equal(query_int(f->st, "SELECT min(n) FROM (SELECT count(*) AS n FROM events"
                                      " GROUP BY writer)"),
                     ROWS_PER_WRITER);

    /* and they are durable: a reopened store sees every row */
    reopen(f);
    assert_int_equal(query_int(f->st, "SELECT count(*) FROM events"), WRITERS * ROWS_PER_WRITER);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    /* The failure cases log errors by design; keep the test output to the results. */
    log_set_level(LOG_OFF);
    const struct CMUnitTest tests[] = {
        T(test_open_failure_is_error),
        T(test_fresh_database_is_version_zero),
        T(test_migrations_applied_once),
        T(test_migrations_only_new_ones_run),
        T(test_failing_migration_rolls_back),
        T(test_newer_database_refused),
        T(test_unordered_migrations_refused_before_applying),
        T(test_commit_visible_rollback_not),
        T(test_read_isolation),
        T(test_nested_reads_do_not_deadlock),
        T(test_reads_see_commits_on_every_reader),
        T(test_write_in_read_tx_fails),
        T(test_write_tx_takes_lock_at_once),
        T(test_bind_types),
        T(test_unique_violation_is_conflict),
        T(test_placeholder_mismatch_is_error),
        T(test_bad_sql_is_error),
        T(test_store_changes),
        T(test_store_changes_of_statements_that_change_nothing),
        T(test_concurrent_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
