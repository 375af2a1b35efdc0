/* The store interface on PostgreSQL (tests/pg/with-postgres starts a server of its own and
 * names its database in OSBILL_TEST_PG): migrations, transactions and their isolation, every
 * binding type, the placeholders SQLite's SQL uses, errors, and writers serialized as
 * SQLite's single writer is. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"

static store *st;

static int setup(void **state)
{
    (void)state;
    const char *url = getenv("OSBILL_TEST_PG");
    if (!url) {
        fprintf(stderr, "OSBILL_TEST_PG is not set: run under tests/pg/with-postgres\n");
        return -1;
    }
    return store_open(url, NULL, &st) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_close(st);
    return 0;
}

static const store_migration migrations[] = {
    {1, "things", "CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT UNIQUE, data BYTEA,"
                  " n BIGINT)"},
    {2, "numbers", "CREATE TABLE numbers (n BIGINT PRIMARY KEY, by_thread INTEGER NOT NULL)"},
};

static void test_migrations_applied_once(void **state)
{
    (void)state;
    int v = -1;
    assert_int_equal(store_migrate(st, migrations, 2), 0);
    assert_int_equal(store_schema_version(st, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(store_migrate(st, migrations, 2), 0); /* again: nothing to do */
    /* a database newer than the code is refused */
    assert_int_not_equal(store_migrate(st, migrations, 1), 0);
}

static void test_bind_types_round_trip(void **state)
{
    (void)state;
    store_tx *tx;
    const unsigned char bytes[] = {0, 1, 2, 0xff, 0, '\\', 'x'};
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO things (id, name, data, n) VALUES (?, ?, ?, ?)",
                                "isbd", (int64_t)9007199254740993, "naïve 'quote'",
                                (const void *)bytes, sizeof bytes, -7),
                     0);
    assert_int_equal(store_changes(tx), 1);
    assert_int_equal(store_exec(tx, "INSERT INTO things (id, name, data, n) VALUES (?, ?, ?, ?)",
                                "isnn", (int64_t)2, (const char *)NULL),
                     0);
    assert_int_equal(store_commit(tx), 0);

    assert_int_equal(store_begin(st, false, &tx), 0);
    store_stmt *q;
    /* ?N and ? mixed as SQLite numbers them: the last ? is the third */
    assert_int_equal(store_query(tx, "SELECT name, data, n, id > ?1, ?1 FROM things WHERE id = ?2"
                                     " AND n < ?",
                                 &q, "iii", (int64_t)5, (int64_t)9007199254740993, (int64_t)0),
                     0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_string_equal(store_col_text(q, 0), "naïve 'quote'");
    size_t n = 0;
    const unsigned char *got = store_col_blob(q, 1, &n);
    assert_int_equal(n, sizeof bytes);
    assert_memory_equal(got, bytes, sizeof bytes);
    assert_int_equal(store_col_int(q, 2), -7);
    assert_int_equal(store_col_int(q, 3), 1); /* a boolean reads as 1 */
    assert_int_equal(store_col_int(q, 4), 5);
    assert_int_equal(store_step(q), STORE_DONE);
    store_done(q);
    assert_int_equal(store_query(tx, "SELECT name, data FROM things WHERE id = ?", &q, "i",
                                 (int64_t)2),
                     0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_true(store_col_null(q, 0));
    assert_null(store_col_text(q, 0));
    assert_true(store_col_null(q, 1));
    store_done(q);
    store_rollback(tx);
}

static void test_commit_visible_rollback_not_and_snapshots(void **state)
{
    (void)state;
    store_tx *w, *r;
    assert_int_equal(store_begin(st, false, &r), 0); /* a reader's snapshot, taken first */
    store_stmt *q;
    assert_int_equal(store_query(r, "SELECT count(*) FROM things", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    int64_t before = store_col_int(q, 0);
    store_done(q);

    /* another thread's writes: committed one, rolled back one */
    assert_int_equal(store_begin(st, true, &w), 0);
    assert_int_equal(store_exec(w, "INSERT INTO things (id, name) VALUES (?, ?)", "is",
                                (int64_t)100, "kept"),
                     0);
    assert_int_equal(store_commit(w), 0);
    assert_int_equal(store_begin(st, true, &w), 0);
    assert_int_equal(store_exec(w, "INSERT INTO things (id, name) VALUES (?, ?)", "is",
                                (int64_t)101, "dropped"),
                     0);
    store_rollback(w);

    /* the reader's snapshot still counts what it saw */
    assert_int_equal(store_query(r, "SELECT count(*) FROM things", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), before);
    store_done(q);
    store_rollback(r);

    assert_int_equal(store_begin(st, false, &r), 0);
    assert_int_equal(store_query(r, "SELECT count(*) FROM things WHERE id IN (100, 101)", &q, ""),
                     0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), 1);
    store_done(q);
    store_rollback(r);
}

static void test_errors(void **state)
{
    (void)state;
    store_tx *tx;
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO things (id, name) VALUES (?, ?)", "is",
                                (int64_t)200, "unique"),
                     0);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "INSERT INTO things (id, name) VALUES (?, ?)", "is",
                                (int64_t)201, "unique"),
                     OSB_E_CONFLICT);
    store_rollback(tx);
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "UPDATE things SET n = ? WHERE id = ?", "i", (int64_t)1),
                     OSB_E_INVAL);
    assert_int_not_equal(store_exec(tx, "SELEC nonsense", ""), 0);
    store_rollback(tx);
    /* the connection is fine afterwards */
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "UPDATE things SET n = ? WHERE id = ?", "ii", (int64_t)3,
                                (int64_t)200),
                     0);
    assert_int_equal(store_changes(tx), 1);
    assert_int_equal(store_exec(tx, "UPDATE things SET n = ? WHERE id = ?", "ii", (int64_t)3,
                                (int64_t)-1),
                     0);
    assert_int_equal(store_changes(tx), 0);
    assert_int_equal(store_commit(tx), 0);
}

static void test_read_inside_write_is_the_same_transaction(void **state)
{
    (void)state;
    store_tx *w, *r;
    assert_int_equal(store_begin(st, true, &w), 0);
    assert_int_equal(store_exec(w, "INSERT INTO things (id, name) VALUES (?, ?)", "is",
                                (int64_t)300, "mine"),
                     0);
    assert_int_equal(store_begin(st, false, &r), 0);
    store_stmt *q;
    assert_int_equal(store_query(r, "SELECT name FROM things WHERE id = 300", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW); /* it sees the uncommitted row */
    store_done(q);
    assert_int_equal(store_commit(r), 0); /* ends the inner one only */
    assert_int_equal(store_commit(w), 0);
}

/* Writers one at a time: each takes the next number as max + 1 in its transaction, as the
 * platform numbers invoices and cases; none is taken twice and none is skipped. */
#define THREADS 4
#define EACH    50

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < EACH; i++) {
        store_tx *tx;
        if (store_begin(st, true, &tx))
            return (void *)1;
        store_stmt *q;
        int64_t next = 0;
        if (store_query(tx, "SELECT coalesce(max(n), 0) + 1 FROM numbers", &q, "") ||
            store_step(q) != STORE_ROW) {
            store_rollback(tx);
            return (void *)1;
        }
        next = store_col_int(q, 0);
        store_done(q);
        if (store_exec(tx, "INSERT INTO numbers (n, by_thread) VALUES (?, ?)", "id", next, id) ||
            store_commit(tx))
            return (void *)1;
    }
    return NULL;
}

static void test_writers_are_serialized(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
    store_tx *tx;
    assert_int_equal(store_begin(st, false, &tx), 0);
    store_stmt *q;
    assert_int_equal(store_query(tx, "SELECT count(*), min(n), max(n) FROM numbers", &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), THREADS * EACH);
    assert_int_equal(store_col_int(q, 1), 1);
    assert_int_equal(store_col_int(q, 2), THREADS * EACH);
    store_done(q);
    store_rollback(tx);
}

static const store_migration with_leases[] = {
    {1, "things", ""}, /* applied above */
    {2, "numbers", ""},
    {3, "leases", "CREATE TABLE store_leases (name TEXT PRIMARY KEY, node TEXT NOT NULL,"
                  " until_ms BIGINT NOT NULL)"},
};

static int64_t count_of(const char *sql)
{
    store_tx *tx;
    store_stmt *q;
    assert_int_equal(store_begin(st, false, &tx), 0);
    assert_int_equal(store_query(tx, sql, &q, ""), 0);
    assert_int_equal(store_step(q), STORE_ROW);
    int64_t n = store_col_int(q, 0);
    store_done(q);
    store_rollback(tx);
    return n;
}

/* Many rows by COPY: every value as it was (the text format's escapes, NULL), and a
 * duplicate refuses the whole at the end. */
static void test_rows_by_copy(void **state)
{
    (void)state;
    store_tx *tx;
    store_rows *r;
    static const char *const odd[] = {"tab\there", "new\nline", "back\\slash\\", "\\N",
                                      "cr\r", "plain", "", "ünïcode"};
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "DELETE FROM things", ""), 0);
    assert_int_equal(store_rows_begin(tx, "INSERT INTO things (id, name, n) VALUES (?, ?, ?)",
                                      &r),
                     0);
    for (int i = 0; i < 20000; i++) {
        char name[64];
        const char *nm = name;
        if (i < 8)
            nm = odd[i];
        else if (i == 8)
            nm = NULL;
        else
            snprintf(name, sizeof name, "row %d", i);
        assert_int_equal(store_rows_add(r, "isi", (int64_t)i, nm, (int64_t)i * 3), 0);
    }
    assert_int_equal(store_rows_end(r), 0);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(count_of("SELECT count(*) FROM things"), 20000);
    assert_int_equal(count_of("SELECT sum(n) FROM things"), 3LL * 20000 * 19999 / 2);
    assert_int_equal(count_of("SELECT count(*) FROM things WHERE name IS NULL"), 1);
    assert_int_equal(store_begin(st, false, &tx), 0);
    store_stmt *q;
    assert_int_equal(store_query(tx, "SELECT name FROM things WHERE id < 8 ORDER BY id", &q, ""),
                     0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(store_step(q), STORE_ROW);
        assert_string_equal(store_col_text(q, 0), odd[i]);
    }
    store_done(q);
    store_rollback(tx);

    /* a duplicate id: the COPY fails at its end, and its transaction writes nothing */
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "DELETE FROM things WHERE id >= 100", ""), 0);
    assert_int_equal(store_rows_begin(tx, "INSERT INTO things (id, name, n) VALUES (?, ?, ?)",
                                      &r),
                     0);
    assert_int_equal(store_rows_add(r, "isi", (int64_t)100, "a", (int64_t)1), 0);
    assert_int_equal(store_rows_add(r, "isi", (int64_t)5, "b", (int64_t)1), 0);
    assert_int_equal(store_rows_end(r), OSB_E_CONFLICT);
    store_rollback(tx);
    assert_int_equal(count_of("SELECT count(*) FROM things"), 20000);
    /* not an INSERT of rows */
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_rows_begin(tx, "DELETE FROM things", &r), OSB_E_INVAL);
    assert_int_equal(store_rows_begin(tx, "INSERT INTO things (id, name) VALUES (?, 'x')", &r),
                     OSB_E_INVAL); /* a constant COPY cannot give */
    store_rollback(tx);
}

static int take(int64_t now, int64_t until, char *holder)
{
    store_tx *tx;
    assert_int_equal(store_begin(st, true, &tx), 0);
    int rc = store_lease_take(tx, "work", now, until, holder, holder ? 96 : 0);
    assert_int_equal(store_commit(tx), 0);
    return rc;
}

static void set_holder(const char *node)
{
    store_tx *tx;
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "UPDATE store_leases SET node = ?", "s", node), 0);
    assert_int_equal(store_commit(tx), 0);
}

/* A lease: taken when free, renewed by its holder, refused while another node's is live
 * (naming it), taken over once that one expires; dropped only by its holder. */
static void test_leases(void **state)
{
    (void)state;
    assert_true(store_shared(st));
    assert_int_equal(store_migrate(st, with_leases, 3), 0);
    char holder[96];
    assert_int_equal(take(1000, 2000, NULL), 1);
    assert_int_equal(take(1500, 2500, NULL), 1); /* renewed */
    set_holder("another-node:1:0");
    assert_int_equal(take(2400, 3400, holder), 0);
    assert_string_equal(holder, "another-node:1:0");
    assert_int_equal(take(2501, 3500, NULL), 1); /* it expired at 2500 */
    assert_int_equal(count_of("SELECT count(*) FROM store_leases"), 1);
    store_tx *tx;
    set_holder("another-node:1:0");
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_lease_drop(tx, "work"), 0);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(count_of("SELECT count(*) FROM store_leases"), 1); /* not ours */
    set_holder(store_node());
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_lease_drop(tx, "work"), 0);
    assert_int_equal(store_commit(tx), 0);
    assert_int_equal(count_of("SELECT count(*) FROM store_leases"), 0);
    assert_non_null(strchr(store_node(), ':'));
}

/* Connections the server dropped (a restart, an administrator) are opened again: the next
 * transaction on each works. */
static void test_lost_connections_are_opened_again(void **state)
{
    (void)state;
    store_tx *tx;
    store_stmt *q;
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_query(tx,
                                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                 " WHERE datname = current_database() AND pid <> pg_backend_pid()",
                                 &q, ""),
                     0);
    assert_int_equal(store_step(q), STORE_ROW);
    assert_true(store_col_int(q, 0) >= 1); /* the readers */
    store_done(q);
    assert_int_equal(store_commit(tx), 0);
    for (int i = 0; i < 8; i++) /* every reader, twice */
        assert_int_equal(count_of("SELECT count(*) FROM things"), 20000);
    /* and the writer */
    assert_int_equal(store_begin(st, false, &tx), 0);
    store_rollback(tx);
    assert_int_equal(store_begin(st, true, &tx), 0);
    int rc = store_query(tx, "SELECT pg_terminate_backend(pg_backend_pid())", &q, "");
    if (!rc) {
        rc = store_step(q);
        store_done(q);
    }
    assert_true(rc < 0); /* it ended under the statement */
    store_rollback(tx);
    assert_int_equal(store_begin(st, true, &tx), 0);
    assert_int_equal(store_exec(tx, "UPDATE things SET n = n WHERE id = 1", ""), 0);
    assert_int_equal(store_commit(tx), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_applied_once),
        cmocka_unit_test(test_bind_types_round_trip),
        cmocka_unit_test(test_commit_visible_rollback_not_and_snapshots),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_read_inside_write_is_the_same_transaction),
        cmocka_unit_test(test_writers_are_serialized),
        cmocka_unit_test(test_rows_by_copy),
        cmocka_unit_test(test_leases),
        cmocka_unit_test(test_lost_connections_are_opened_again),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
