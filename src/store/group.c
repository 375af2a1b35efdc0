/* store group commit: one committer thread per group turns many callers' small writes into
 * one transaction and one flush, which is what makes durable acknowledgements cheap. */
#include "store/store.h"

#include <pthread.h>
#include <stdlib.h>

#define MAX_BATCH 512

typedef struct unit {
    store_work_fn work;
    store_done_fn done;
    void *ud;
    int rc;
    struct unit *next;
} unit;

struct store_group {
    store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unit *head, *tail;
    bool stopping;
};

static int exec_simple(store_tx *tx, const char *sql)
{
    return store_exec(tx, sql, "");
}

static void run_batch(store_group *g, unit *batch)
{
    store_tx *tx;
    int rc = store_begin(g->st, true, &tx);
    if (!rc) {
        for (unit *u = batch; u; u = u->next) {
            if ((u->rc = exec_simple(tx, "SAVEPOINT unit")) != 0)
                continue;
            u->rc = u->work(tx, u->ud);
            if (u->rc)
                (void)exec_simple(tx, "ROLLBACK TO unit");
            (void)exec_simple(tx, "RELEASE unit");
        }
        rc = store_commit(tx);
    }
    for (unit *u = batch; u;) {
        unit *next = u->next;
        u->done(u->ud, rc ? rc : u->rc);
        free(u);
        u = next;
    }
}

static void *committer(void *arg)
{
    store_group *g = arg;
    pthread_setname_np(pthread_self(), "store-commit");
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->head && !g->stopping)
            pthread_cond_wait(&g->cv, &g->mu);
        if (!g->head && g->stopping)
            break;
        /* Take up to MAX_BATCH units; whatever arrives meanwhile joins the next batch. */
        unit *batch = g->head, *last = batch;
        for (int n = 1; n < MAX_BATCH && last->next; n++)
            last = last->next;
        g->head = last->next;
        if (!g->head)
            g->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&g->mu);
        run_batch(g, batch);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int store_write(store *st, store_work_fn work, void *ud)
{
    store_tx *tx;
    int rc = store_begin(st, true, &tx);
    if (rc)
        return rc;
    if ((rc = work(tx, ud))) {
        store_rollback(tx);
        return rc;
    }
    return store_commit(tx);
}

int store_group_start(store *st, store_group **out)
{
    store_group *g = calloc(1, sizeof *g);
    if (!g)
        return OSB_E_NOMEM;
    g->st = st;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->thread, NULL, committer, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
        return OSB_E_IO;
    }
    *out = g;
    return 0;
}

int store_group_submit(store_group *g, store_work_fn work, store_done_fn done, void *ud)
{
    unit *u = calloc(1, sizeof *u);
    if (!u)
        return OSB_E_NOMEM;
    u->work = work;
    u->done = done;
    u->ud = ud;
    pthread_mutex_lock(&g->mu);
    if (g->stopping) {
        pthread_mutex_unlock(&g->mu);
        free(u);
        return OSB_E_BUSY;
    }
    if (g->tail)
        g->tail->next = u;
    else
        g->head = u;
    g->tail = u;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void store_group_stop(store_group *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}
