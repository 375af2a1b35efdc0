/* store, PostgreSQL backend (libpq): the same interface and the same guarantees as the SQLite
 * one, so that every module runs on either. One writer connection and a few reader
 * connections, a transaction holding one exclusively. Write transactions also take one
 * transaction-scoped advisory lock, so writers run one at a time across every node sharing the
 * database, as SQLite's single writer does (what modules number in a transaction, invoices
 * or cases, stays gapless); readers see one snapshot per transaction (REPEATABLE READ).
 * Statements are prepared once per connection, cached by the address of their SQL text, with
 * SQLite's '?' and '?N' placeholders rewritten as $N. */
#include "store/store_int.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_READERS    4
#define PG_STMT_CACHE 1024
#define PG_MAX_PARAMS 64
#define WRITER_LOCK   7207317 /* the advisory lock every write transaction takes */
#define LOCK_TIMEOUT_MS 5000  /* as SQLite's busy timeout */
#define COPY_CHUNK    (1 << 16) /* the bytes of rows a COPY sends at a time */

typedef struct pg_conn pg_conn;

struct pg_stmt {
    bool pg;         /* first: the backend's mark */
    const char *sql; /* cache key */
    char name[16];
    int nparams;
    pg_conn *c;
    PGresult *res; /* the rows of the current execution */
    int row, nrows;
    unsigned char *blob; /* a bytea column decoded, until the next step */
    /* the values bound for the next execution */
    char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS], formats[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][24];
    bool executed;
};

struct pg_tx {
    bool pg;
    pg_conn *c;
    bool write;
    int64_t changes;
};

struct pg_conn {
    pthread_mutex_t mu;
    PGconn *db;
    pg_stmt cache[PG_STMT_CACHE];
    unsigned nprepared;
    pg_tx tx;
    pthread_t owner;
    bool owned;
    int depth;
};

struct pg_store {
    bool pg;
    pg_conn writer;
    pg_conn readers[PG_READERS];
    unsigned next_reader;
};

/* ---------------------------------------------------------------- connections */

static void quiet(void *ud, const char *message)
{
    (void)ud;
    (void)message;
}

/* The session's settings: UTC, quiet notices, and a write that waits for another node's
 * write lock at most as long as SQLite waits for its writer (then OSB_E_BUSY). */
static int session(pg_conn *c)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SET client_min_messages = warning; SET TIME ZONE 'UTC'; SET lock_timeout = %d",
             LOCK_TIMEOUT_MS);
    PGresult *r = PQexec(c->db, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : OSB_E_STORE;
}

static int connect_one(pg_conn *c, const char *url)
{
    pthread_mutex_init(&c->mu, NULL);
    c->db = PQconnectdb(url);
    if (PQstatus(c->db) != CONNECTION_OK) {
        log_error("store: cannot connect to PostgreSQL: %s", PQerrorMessage(c->db));
        return OSB_E_STORE;
    }
    /* notices (a table that exists already, say) are not the log's business */
    PQsetNoticeProcessor(c->db, quiet, NULL);
    return session(c);
}

/* A connection lost (the server restarted, the network cut) is opened again before the next
 * transaction, with its session settings; what was prepared on it is prepared again. */
static int reconnect(pg_conn *c)
{
    if (PQstatus(c->db) == CONNECTION_OK)
        return 0;
    for (unsigned i = 0; i < PG_STMT_CACHE; i++) {
        PQclear(c->cache[i].res);
        free(c->cache[i].blob);
        c->cache[i] = (pg_stmt){0};
    }
    c->nprepared = 0;
    PQreset(c->db);
    if (PQstatus(c->db) != CONNECTION_OK) {
        log_error("store: the connection to PostgreSQL is lost: %s", PQerrorMessage(c->db));
        return OSB_E_STORE;
    }
    log_info("store: connected to PostgreSQL again");
    return session(c);
}

static void close_one(pg_conn *c)
{
    for (unsigned i = 0; i < PG_STMT_CACHE; i++) {
        PQclear(c->cache[i].res);
        free(c->cache[i].blob);
    }
    if (c->db)
        PQfinish(c->db);
    pthread_mutex_destroy(&c->mu);
}

int pg_open(const char *url, store **out)
{
    pg_store *st = calloc(1, sizeof *st);
    if (!st)
        return OSB_E_NOMEM;
    st->pg = true;
    int rc = connect_one(&st->writer, url);
    for (int i = 0; !rc && i < PG_READERS; i++)
        rc = connect_one(&st->readers[i], url);
    if (rc) {
        pg_close((store *)st);
        return rc;
    }
    *out = (store *)st;
    return 0;
}

void pg_close(store *s)
{
    pg_store *st = (pg_store *)s;
    if (!st)
        return;
    close_one(&st->writer);
    for (int i = 0; i < PG_READERS; i++)
        close_one(&st->readers[i]);
    free(st);
}

static int map_error(PGresult *r, const char *sql);

static int simple(pg_conn *c, const char *sql)
{
    PGresult *r = PQexec(c->db, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : map_error(r, sql);
    PQclear(r);
    return rc;
}

/* ---------------------------------------------------------------- transactions */

static bool mine(pg_conn *c)
{
    return __atomic_load_n(&c->owned, __ATOMIC_ACQUIRE) && pthread_equal(c->owner, pthread_self());
}

static void own(pg_conn *c, bool on)
{
    if (on) {
        c->owner = pthread_self();
        __atomic_store_n(&c->owned, true, __ATOMIC_RELEASE);
    } else {
        __atomic_store_n(&c->owned, false, __ATOMIC_RELEASE);
    }
}

static pg_conn *held_by_this_thread(pg_store *st)
{
    if (mine(&st->writer))
        return &st->writer;
    for (int i = 0; i < PG_READERS; i++)
        if (mine(&st->readers[i]))
            return &st->readers[i];
    return NULL;
}

int pg_begin(store *s, bool write, store_tx **out)
{
    pg_store *st = (pg_store *)s;
    pg_conn *c;
    if (!write && (c = held_by_this_thread(st))) {
        c->depth++;
        *out = (store_tx *)&c->tx;
        return 0;
    }
    if (write) {
        c = &st->writer;
        pthread_mutex_lock(&c->mu);
    } else {
        unsigned start = __atomic_fetch_add(&st->next_reader, 1, __ATOMIC_RELAXED);
        c = NULL;
        for (unsigned i = 0; i < PG_READERS; i++) {
            pg_conn *r = &st->readers[(start + i) % PG_READERS];
            if (pthread_mutex_trylock(&r->mu) == 0) {
                c = r;
                break;
            }
        }
        if (!c) {
            c = &st->readers[start % PG_READERS];
            pthread_mutex_lock(&c->mu);
        }
    }
    char begin[128];
    snprintf(begin, sizeof begin,
             write ? "BEGIN; SELECT pg_advisory_xact_lock(%d)"
                   : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
             WRITER_LOCK);
    int rc = reconnect(c);
    if (!rc && (rc = simple(c, begin)) != 0 && PQstatus(c->db) == CONNECTION_BAD) {
        /* lost since its last use (the server restarted, say): once more, connected again */
        if (!(rc = reconnect(c)))
            rc = simple(c, begin);
    }
    if (rc)
        simple(c, "ROLLBACK");
    if (rc) {
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    c->tx = (pg_tx){.pg = true, .c = c, .write = write};
    c->depth = 0;
    own(c, true);
    *out = (store_tx *)&c->tx;
    return 0;
}

int pg_commit(store_tx *t)
{
    pg_conn *c = ((pg_tx *)t)->c;
    if (c->depth > 0) {
        c->depth--;
        return 0;
    }
    int rc = simple(c, "COMMIT");
    if (rc)
        simple(c, "ROLLBACK");
    own(c, false);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void pg_rollback(store_tx *t)
{
    pg_conn *c = ((pg_tx *)t)->c;
    if (c->depth > 0) {
        c->depth--;
        return;
    }
    if (PQtransactionStatus(c->db) != PQTRANS_IDLE)
        simple(c, "ROLLBACK");
    own(c, false);
    pthread_mutex_unlock(&c->mu);
}

const char *pg_errmsg(store_tx *t)
{
    return PQerrorMessage(((pg_tx *)t)->c->db);
}

/* ---------------------------------------------------------------- statements */

/* SQLite's placeholders as PostgreSQL's: '?N' is the N-th, '?' one more than the largest
 * number so far; quoted text and identifiers are left alone. */
static char *rewrite(const char *sql, int *nparams)
{
    size_t n = strlen(sql);
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    int max = 0;
    char quote = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = sql[i];
        if (quote) {
            out[o++] = ch;
            if (ch == quote)
                quote = 0;
            continue;
        }
        if (ch == '\'' || ch == '"') {
            quote = ch;
            out[o++] = ch;
            continue;
        }
        if (ch != '?') {
            out[o++] = ch;
            continue;
        }
        int k;
        if (sql[i + 1] >= '0' && sql[i + 1] <= '9') {
            k = 0;
            while (sql[i + 1] >= '0' && sql[i + 1] <= '9')
                k = k * 10 + (sql[++i] - '0');
        } else {
            k = max + 1; /* SQLite's rule: one more than the largest number so far */
        }
        if (k > max)
            max = k;
        o += (size_t)snprintf(out + o, 8, "$%d", k);
    }
    out[o] = '\0';
    *nparams = max;
    return out;
}

/* The type of a parameter, from the letter that binds it: PostgreSQL cannot tell the type
 * of one that is only compared with NULL, or only a CASE's result. */
static Oid param_type(char t)
{
    switch (t) {
    case 's': return 25; /* text */
    case 'i':
    case 'd': return 20; /* int8 */
    case 'b': return 17; /* bytea */
    default: return 0;   /* NULL: let the server infer it */
    }
}

static pg_stmt *cached(pg_conn *c, const char *sql, const char *types)
{
    uintptr_t h = ((uintptr_t)sql >> 3) * 2654435761u;
    for (unsigned i = 0; i < PG_STMT_CACHE; i++) {
        pg_stmt *e = &c->cache[(h + i) % PG_STMT_CACHE];
        if (e->sql == sql)
            return e;
        if (e->sql)
            continue;
        int np = 0;
        char *text = rewrite(sql, &np);
        if (!text || np > PG_MAX_PARAMS) {
            free(text);
            log_error("store: cannot prepare (%d placeholders): %s", np, sql);
            return NULL;
        }
        pg_stmt fresh = {.pg = true, .sql = sql, .nparams = np, .c = c};
        snprintf(fresh.name, sizeof fresh.name, "s%u", c->nprepared);
        Oid oids[PG_MAX_PARAMS] = {0};
        for (int k = 0; k < np && types[k]; k++)
            oids[k] = param_type(types[k]);
        PGresult *r = PQprepare(c->db, fresh.name, text, np, oids);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            log_error("store: prepare failed: %s: %s", PQresultErrorMessage(r), sql);
        PQclear(r);
        free(text);
        if (!ok)
            return NULL;
        c->nprepared++;
        *e = fresh;
        return e;
    }
    log_error("store: statement cache full");
    return NULL;
}

static void reset(pg_stmt *e)
{
    PQclear(e->res);
    e->res = NULL;
    free(e->blob);
    e->blob = NULL;
    e->row = -1;
    e->nrows = 0;
    e->executed = false;
}

static int bind_args(pg_stmt *e, const char *types, va_list ap)
{
    int n = (int)strlen(types);
    if (n != e->nparams) {
        log_error("store: %d values bound to %d placeholders: %s", n, e->nparams, e->sql);
        return OSB_E_INVAL;
    }
    for (int i = 0; i < n; i++) {
        e->formats[i] = 0;
        e->lengths[i] = 0;
        switch (types[i]) {
        case 's': e->values[i] = (char *)va_arg(ap, const char *); break;
        case 'i':
            snprintf(e->num[i], sizeof e->num[i], "%lld", (long long)va_arg(ap, int64_t));
            e->values[i] = e->num[i];
            break;
        case 'd':
            snprintf(e->num[i], sizeof e->num[i], "%d", va_arg(ap, int));
            e->values[i] = e->num[i];
            break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            e->values[i] = (char *)(p ? p : "");
            e->lengths[i] = (int)len;
            e->formats[i] = 1; /* binary: the bytes as they are */
            break;
        }
        case 'n': e->values[i] = NULL; break;
        default: return OSB_E_INVAL;
        }
    }
    return 0;
}

static int map_error(PGresult *r, const char *sql)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && strncmp(state, "23", 2) == 0) /* integrity: unique, foreign key, check */
        return OSB_E_CONFLICT;
    if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03")))
        return OSB_E_BUSY;
    log_error("store: %s: %s", PQresultErrorMessage(r), sql);
    return OSB_E_STORE;
}

static int execute(pg_stmt *e)
{
    e->res = PQexecPrepared(e->c->db, e->name, e->nparams, (const char *const *)e->values,
                            e->lengths, e->formats, 0);
    e->executed = true;
    ExecStatusType s = PQresultStatus(e->res);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
        e->nrows = s == PGRES_TUPLES_OK ? PQntuples(e->res) : 0;
        e->row = -1;
        return 0;
    }
    return map_error(e->res, e->sql);
}

int pg_vexec(store_tx *t, const char *sql, const char *types, va_list ap)
{
    pg_tx *tx = (pg_tx *)t;
    pg_stmt *e = cached(tx->c, sql, types);
    if (!e)
        return OSB_E_STORE;
    reset(e);
    int rc = bind_args(e, types, ap);
    if (!rc)
        rc = execute(e);
    tx->changes = !rc ? strtoll(PQcmdTuples(e->res), NULL, 10) : 0;
    reset(e);
    return rc;
}

int64_t pg_changes(store_tx *t)
{
    return ((pg_tx *)t)->changes;
}

int pg_vquery(store_tx *t, const char *sql, store_stmt **out, const char *types, va_list ap)
{
    pg_tx *tx = (pg_tx *)t;
    pg_stmt *e = cached(tx->c, sql, types);
    if (!e)
        return OSB_E_STORE;
    reset(e);
    int rc = bind_args(e, types, ap);
    if (rc)
        return rc;
    /* the texts bound may be gone when the caller steps: run it now */
    rc = execute(e);
    if (rc) {
        reset(e);
        return rc;
    }
    *out = (store_stmt *)e;
    return 0;
}

int pg_step(store_stmt *q)
{
    pg_stmt *e = (pg_stmt *)q;
    free(e->blob);
    e->blob = NULL;
    if (++e->row < e->nrows)
        return STORE_ROW;
    return STORE_DONE;
}

bool pg_col_null(store_stmt *q, int col)
{
    pg_stmt *e = (pg_stmt *)q;
    return PQgetisnull(e->res, e->row, col);
}

const char *pg_col_text(store_stmt *q, int col)
{
    pg_stmt *e = (pg_stmt *)q;
    return PQgetisnull(e->res, e->row, col) ? NULL : PQgetvalue(e->res, e->row, col);
}

int64_t pg_col_int(store_stmt *q, int col)
{
    const char *v = pg_col_text(q, col);
    if (!v)
        return 0;
    if (v[0] == 't' && !v[1]) /* a boolean, as SQLite's 1 */
        return 1;
    if (v[0] == 'f' && !v[1])
        return 0;
    return strtoll(v, NULL, 10);
}

const void *pg_col_blob(store_stmt *q, int col, size_t *len)
{
    pg_stmt *e = (pg_stmt *)q;
    *len = 0;
    if (PQgetisnull(e->res, e->row, col))
        return NULL;
    free(e->blob);
    size_t n = 0;
    e->blob = PQunescapeBytea((const unsigned char *)PQgetvalue(e->res, e->row, col), &n);
    *len = n;
    return e->blob;
}

void pg_done(store_stmt *q)
{
    reset((pg_stmt *)q);
}

/* ---------------------------------------------------------------- migrations */

int pg_schema_version(store *s, int *out)
{
    pg_store *st = (pg_store *)s;
    pg_conn *c = &st->writer;
    pthread_mutex_lock(&c->mu);
    int rc = simple(c, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY"
                       " KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    PGresult *r = rc ? NULL
                     : PQexec(c->db, "SELECT coalesce(max(version), 0) FROM"
                                     " schema_migrations");
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        *out = atoi(PQgetvalue(r, 0, 0));
    else
        rc = OSB_E_STORE;
    PQclear(r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int pg_migrate(store *s, const store_migration *m, size_t n)
{
    pg_store *st = (pg_store *)s;
    int current;
    int rc = pg_schema_version(s, &current);
    if (rc)
        return rc;
    for (size_t i = 1; i < n; i++)
        if (m[i].version <= m[i - 1].version) {
            log_error("store: migrations out of order at version %d", m[i].version);
            return OSB_E_INVAL;
        }
    if (n && current > m[n - 1].version) {
        log_error("store: the database is at version %d, newer than this osbill (%d)", current,
                  m[n - 1].version);
        return OSB_E_INVAL;
    }
    pg_conn *c = &st->writer;
    for (size_t i = 0; i < n && !rc; i++) {
        if (m[i].version <= current)
            continue;
        pthread_mutex_lock(&c->mu);
        char head[128];
        snprintf(head, sizeof head, "BEGIN; SELECT pg_advisory_xact_lock(%d)", WRITER_LOCK);
        rc = simple(c, head);
        /* another node may have applied it meanwhile */
        char v[16];
        snprintf(v, sizeof v, "%d", m[i].version);
        const char *vv[] = {v};
        PGresult *r =
            rc ? NULL
               : PQexecParams(c->db, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1,
                              NULL, vv, NULL, NULL, 0);
        bool done = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        PQclear(r);
        if (!rc && !done)
            rc = simple(c, m[i].sql);
        if (!rc && !done) {
            char ms[24];
            snprintf(ms, sizeof ms, "%lld", (long long)time_now_ms());
            const char *vals[] = {v, m[i].name, ms};
            r = PQexecParams(c->db,
                             "INSERT INTO schema_migrations (version, name, applied_at)"
                             " VALUES ($1::int, $2, $3::bigint)",
                             3, NULL, vals, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                rc = map_error(r, "INSERT INTO schema_migrations");
            PQclear(r);
        }
        if (!rc)
            rc = simple(c, "COMMIT");
        if (rc) {
            simple(c, "ROLLBACK");
            log_error("store: migration %d (%s) failed", m[i].version, m[i].name);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* ---------------------------------------------------------------- many rows: COPY */

struct store_rows {
    bool pg;
    pg_conn *c;
    buf out; /* rows not sent yet */
    int rc;
};

/* "INSERT INTO t (a, b) VALUES (...)" as "COPY t (a, b) FROM STDIN". */
static int copy_sql(const char *insert_sql, char *out, size_t outlen)
{
    const char *p = insert_sql, *head = "INSERT INTO ";
    if (strncmp(p, head, strlen(head)) != 0)
        return OSB_E_INVAL;
    p += strlen(head);
    const char *close = strchr(p, ')'), *values = close ? strstr(close, " VALUES") : NULL;
    if (!strchr(p, '(') || !close || strchr(p, '(') > close || !values)
        return OSB_E_INVAL;
    /* a row's values all come from the caller: COPY has no constants */
    values += strlen(" VALUES");
    if (strspn(values, " (?,)") != strlen(values))
        return OSB_E_INVAL;
    int n = snprintf(out, outlen, "COPY %.*s FROM STDIN", (int)(close + 1 - p), p);
    return n > 0 && (size_t)n < outlen ? 0 : OSB_E_INVAL;
}

int pg_rows_begin(store_tx *t, const char *insert_sql, store_rows **out)
{
    pg_conn *c = ((pg_tx *)t)->c;
    char sql[2048];
    if (copy_sql(insert_sql, sql, sizeof sql)) {
        log_error("store: not an INSERT of rows: %s", insert_sql);
        return OSB_E_INVAL;
    }
    store_rows *r = calloc(1, sizeof *r);
    if (!r)
        return OSB_E_NOMEM;
    r->pg = true;
    r->c = c;
    buf_init(&r->out, (size_t)16 << 20); /* sent from COPY_CHUNK on: a row may be long */
    PGresult *res = PQexec(c->db, sql);
    int rc = PQresultStatus(res) == PGRES_COPY_IN ? 0 : map_error(res, sql);
    PQclear(res);
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static bool put(store_rows *r, const char *s, size_t n)
{
    return buf_append(&r->out, s, n) == 0;
}

/* COPY's text format: a backslash, tab, newline or carriage return escaped; \N is NULL. */
static bool put_text(store_rows *r, const char *s)
{
    if (!s)
        return put(r, "\\N", 2);
    for (const char *p = s; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '\t' ? "\\t" : *p == '\n' ? "\\n"
                        : *p == '\r' ? "\\r" : NULL;
        if (!(esc ? put(r, esc, 2) : put(r, p, 1)))
            return false;
    }
    return true;
}

static int rows_vadd(store_rows *r, const char *types, va_list ap);

static int flush_rows(store_rows *r)
{
    if (r->out.len && PQputCopyData(r->c->db, r->out.data, (int)r->out.len) != 1) {
        log_error("store: COPY: %s", PQerrorMessage(r->c->db));
        return OSB_E_STORE;
    }
    buf_reset(&r->out);
    return 0;
}

int pg_rows_vadd(store_rows *r, const char *types, va_list ap)
{
    if (r->rc)
        return r->rc;
    r->rc = rows_vadd(r, types, ap);
    return r->rc;
}

static int rows_vadd(store_rows *r, const char *types, va_list ap)
{
    bool ok = true;
    char num[24];
    for (size_t i = 0; ok && types[i]; i++) {
        if (i)
            ok = put(r, "\t", 1);
        switch (types[i]) {
        case 's': ok = ok && put_text(r, va_arg(ap, const char *)); break;
        case 'i':
            snprintf(num, sizeof num, "%lld", (long long)va_arg(ap, int64_t));
            ok = ok && put(r, num, strlen(num));
            break;
        case 'd':
            snprintf(num, sizeof num, "%d", va_arg(ap, int));
            ok = ok && put(r, num, strlen(num));
            break;
        case 'n': ok = ok && put(r, "\\N", 2); break;
        default: return OSB_E_INVAL;
        }
    }
    if (!ok || !put(r, "\n", 1))
        return OSB_E_NOMEM;
    return r->out.len >= COPY_CHUNK ? flush_rows(r) : 0;
}

int pg_rows_end(store_rows *r)
{
    int rc = r->rc ? r->rc : flush_rows(r);
    /* ended either way: a failed one aborts the COPY (and the transaction with it) */
    if (PQputCopyEnd(r->c->db, rc ? "a row could not be sent" : NULL) != 1 && !rc) {
        log_error("store: COPY: %s", PQerrorMessage(r->c->db));
        rc = OSB_E_STORE;
    }
    PGresult *res;
    while ((res = PQgetResult(r->c->db))) {
        if (!rc && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = map_error(res, "COPY");
        PQclear(res);
    }
    buf_free(&r->out);
    free(r);
    return rc;
}
