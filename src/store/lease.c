/* store: leases on work that must happen once across the nodes sharing a store, and the
 * node's name they are held under. A lease is a row of store_leases; taking it is one
 * UPDATE-or-INSERT in the caller's write transaction, so the backend's one-writer rule decides
 * between two nodes that try at once. */
#include "store/store_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static char node[96];
static pthread_once_t node_once = PTHREAD_ONCE_INIT;

static void node_init(void)
{
    char host[64] = "";
    unsigned r = 0;
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (unsigned)getpid() * 2654435761u ^ (unsigned)time_now_ms();
    snprintf(node, sizeof node, "%.60s:%ld:%08x", host, (long)getpid(), r);
}

const char *store_node(void)
{
    pthread_once(&node_once, node_init);
    return node;
}

bool store_shared(store *st)
{
    return st && store_is_pg(st);
}

int store_lease_take(store_tx *tx, const char *name, int64_t now_ms, int64_t until_ms,
                     char *holder, size_t holder_len)
{
    const char *me = store_node();
    int rc = store_exec(tx,
                        "INSERT INTO store_leases (name, node, until_ms) VALUES (?1, ?2, ?3)"
                        " ON CONFLICT (name) DO UPDATE SET node = excluded.node, until_ms ="
                        " excluded.until_ms WHERE store_leases.until_ms < ?4 OR"
                        " store_leases.node = excluded.node",
                        "ssii", name, me, until_ms, now_ms);
    if (rc)
        return rc;
    if (store_changes(tx) > 0)
        return 1;
    if (holder && holder_len) {
        holder[0] = '\0';
        store_stmt *q;
        if (!store_query(tx, "SELECT node FROM store_leases WHERE name = ?", &q, "s", name)) {
            if (store_step(q) == STORE_ROW && store_col_text(q, 0))
                snprintf(holder, holder_len, "%s", store_col_text(q, 0));
            store_done(q);
        }
    }
    return 0;
}

int store_lease_drop(store_tx *tx, const char *name)
{
    return store_exec(tx, "DELETE FROM store_leases WHERE name = ? AND node = ?", "ss", name,
                      store_node());
}
