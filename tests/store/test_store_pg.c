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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_applied_once),
        cmocka_unit_test(test_bind_types_round_trip),
        cmocka_unit_test(test_commit_visible_rollback_not_and_snapshots),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_read_inside_write_is_the_same_transaction),
        cmocka_unit_test(test_writers_are_serialized),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
