/* catalog: opening and closing the module, and its routes. */
#include "catalog/catalog_int.h"

#include <stdlib.h>

int catalog_open(store *db, iam *m, catalog **out)
{
    catalog *c = calloc(1, sizeof *c);
    if (!c)
        return OSB_E_NOMEM;
    c->db = db;
    c->iam = m;
    iam_derive_key(m, "osbill catalog broker secrets", c->seal_key);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->idle, NULL);
    /* A validation that was running when the server stopped (or died) never finished. */
    store_tx *tx;
    int rc = store_begin(db, true, &tx);
    if (!rc) {
        rc = store_exec(tx, "UPDATE scorecards SET state = 'failed', finished_ms = ? WHERE"
                            " state = 'running'", "i", time_now_ms());
        rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    }
    if (rc) {
        catalog_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void catalog_close(catalog *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    while (c->running > 0)
        pthread_cond_wait(&c->idle, &c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->idle);
    secure_wipe(c->seal_key, sizeof c->seal_key);
    free(c);
}

void catalog_routes(catalog *c, http_router *r)
{
    catalog_offering_routes(c, r);
    catalog_plan_routes(c, r);
    catalog_broker_routes(c, r);
    catalog_publish_routes(c, r);
    catalog_browse_routes(c, r);
}
