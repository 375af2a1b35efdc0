/* store internals: the two backends behind store.h. Every store, store_tx and store_stmt
 * starts with a bool that says whether it is PostgreSQL's; the functions of store.h (in
 * sqlite.c) hand PostgreSQL's to postgres.c. */
#ifndef OSBILL_STORE_INT_H
#define OSBILL_STORE_INT_H

#include <stdarg.h>

#include "store/store.h"

typedef struct pg_store pg_store;
typedef struct pg_tx pg_tx;
typedef struct pg_stmt pg_stmt;

static inline bool store_is_pg(const void *x)
{
    return *(const bool *)x;
}

/* url: postgres://... or postgresql://... (libpq's connection URI) */
int pg_open(const char *url, store **out);
void pg_close(store *st);
int pg_migrate(store *st, const store_migration *m, size_t n);
int pg_schema_version(store *st, int *out);
int pg_begin(store *st, bool write, store_tx **out);
int pg_commit(store_tx *tx);
void pg_rollback(store_tx *tx);
int pg_vexec(store_tx *tx, const char *sql, const char *types, va_list ap);
int64_t pg_changes(store_tx *tx);
int pg_vquery(store_tx *tx, const char *sql, store_stmt **out, const char *types, va_list ap);
int pg_step(store_stmt *q);
bool pg_col_null(store_stmt *q, int col);
const char *pg_col_text(store_stmt *q, int col);
int64_t pg_col_int(store_stmt *q, int col);
const void *pg_col_blob(store_stmt *q, int col, size_t *len);
void pg_done(store_stmt *q);
const char *pg_errmsg(store_tx *tx);
int pg_rows_begin(store_tx *tx, const char *insert_sql, store_rows **out);
int pg_rows_vadd(store_rows *r, const char *types, va_list ap);
int pg_rows_end(store_rows *r);

#endif
