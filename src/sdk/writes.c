/* sdk writes: the provider's own changes in the broker's state database, committed with
 * libosb's record of a call (osb_call_write) or through the same group commit on their own
 * (osb_write), so that a provider pays one flush per answer, not two. */
#include "sdk/sdk.h"

#include <pthread.h>
#include <stdlib.h>

int osb_call_write(osb_call *c, osb_write_fn fn, void *ud, void (*free_ud)(void *))
{
    struct osb_call_result *r = c->result;
    sdk_write *w = calloc(1, sizeof *w);
    if (!w) {
        if (free_ud)
            free_ud(ud);
        return -1;
    }
    w->fn = fn;
    w->ud = ud;
    w->free_ud = free_ud;
    if (!r->writes_tail)
        r->writes_tail = &r->writes;
    *r->writes_tail = w;
    r->writes_tail = &w->next;
    return 0;
}

int sdk_writes_run(store_tx *tx, const sdk_write *w)
{
    for (; w; w = w->next) {
        int rc = w->fn(store_tx_sqlite(tx), w->ud);
        if (rc) {
            log_error("libosb: the provider's write failed (%d): the call is not recorded", rc);
            return OSB_E_STORE;
        }
    }
    return 0;
}

void sdk_writes_free(sdk_write *w)
{
    while (w) {
        sdk_write *next = w->next;
        if (w->free_ud)
            w->free_ud(w->ud);
        free(w);
        w = next;
    }
}

sdk_write *sdk_call_take_writes(osb_call *c)
{
    struct osb_call_result *r = c->result;
    sdk_write *w = r->writes;
    r->writes = NULL;
    r->writes_tail = NULL;
    return w;
}

typedef struct {
    const sdk_write *writes;
    store_work_fn work;
    void *ud;
} call_state;

static int call_state_work(store_tx *tx, void *ud)
{
    call_state *s = ud;
    int rc = sdk_writes_run(tx, s->writes);
    return rc ? rc : s->work ? s->work(tx, s->ud) : 0;
}

int sdk_call_write_state(osb_broker *b, osb_call *c, store_work_fn work, void *ud)
{
    sdk_write *w = sdk_call_take_writes(c);
    if (!w && !work)
        return 0;
    call_state s = {w, work, ud};
    int rc = store_write(b->state.db, call_state_work, &s);
    sdk_writes_free(w);
    return rc;
}

/* ---------------------------------------------------------------- outside calls */

typedef struct {
    osb_write_fn fn;
    void *ud;
    int fn_rc, rc;
    bool done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} blocking;

static int blocking_work(store_tx *tx, void *ud)
{
    blocking *w = ud;
    w->fn_rc = w->fn(store_tx_sqlite(tx), w->ud);
    return w->fn_rc ? OSB_E_CONFLICT : 0;
}

static void blocking_done(void *ud, int rc)
{
    blocking *w = ud;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int osb_write(osb_broker *b, osb_write_fn fn, void *ud)
{
    if (!b || !b->state.db)
        return -1;
    blocking w = {.fn = fn, .ud = ud};
    int rc;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (b->state.group &&
        store_group_submit(b->state.group, blocking_work, blocking_done, &w) == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
    } else {
        rc = store_write(b->state.db, blocking_work, &w); /* stopping: no group */
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (w.fn_rc)
        return w.fn_rc; /* its savepoint was rolled back */
    return rc ? -1 : 0;
}

const char *osb_state_path(const osb_broker *b)
{
    return b->state.path;
}
