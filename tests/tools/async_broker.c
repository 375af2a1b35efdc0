/* async_broker: a test broker on libosb's public API only, whose every operation is
 * asynchronous, so the integration tests can drive the OSB rules the starter broker never
 * reaches (async update, bind and unbind, failed operations and their flags).
 *
 * Plans are told apart by name (tests/tools/async_catalog.json):
 *   async       provision, update, deprovision, bind and unbind answer 202 and succeed on the
 *               Nth last_operation poll (--polls, default 2);
 *   async-fail  the same, but each operation fails on the Nth poll: a failed update reports
 *               instance_usable=true, update_repeatable=false, a failed deprovision
 *               instance_usable=false. parameters.succeed lists operations that succeed
 *               instead (provision, update, deprovision in the instance's parameters, bind in
 *               the binding's), so an instance can exist to fail its later operations;
 *               unbind on this plan always fails.
 * Without accepts_incomplete=true every operation answers 422 AsyncRequired. A DELETE during
 * an async create (or unbind during an async bind) halts it at once.
 * Each accepted provision also writes a row of the provider's own (table provider_ledger in
 * broker.db) with osb_call_write; on the async plan, parameters.fail_write=true makes that
 * write fail, which must fail the call and leave neither the row nor the instance.
 *
 *   async_broker --listen HOST:PORT --data DIR --user U --password P [--catalog F] [--polls N]
 * prints "async-broker listening on http://HOST:PORT" and stops on SIGTERM. */
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <string.h>

#include <osb/osb.h>

/* How many polls each operation has had, by operation id (the provider's own memory). */
typedef struct poll_count {
    char *operation;
    int polls;
    struct poll_count *next;
} poll_count;

typedef struct {
    int polls_needed;
    pthread_mutex_t mu;
    poll_count *counts;
    unsigned long long seq;
} async_broker;

static const char *plan_name(const osb_call *c)
{
    const char *n = json_string_value(json_object_get(c->plan, "name"));
    return n ? n : "";
}

static const char *kind_name(osb_call_kind k)
{
    switch (k) {
    case OSB_PROVISION: return "provision";
    case OSB_UPDATE: return "update";
    case OSB_DEPROVISION: return "deprovision";
    case OSB_BIND: return "bind";
    case OSB_UNBIND: return "unbind";
    default: return "other";
    }
}

/* Whether an operation of kind k on this call's plan is to succeed. */
static bool succeeds(const osb_call *c, osb_call_kind k)
{
    if (strcmp(plan_name(c), "async-fail") != 0)
        return true;
    if (k == OSB_UNBIND)
        return false;
    const json_t *list = json_object_get(c->parameters, "succeed"), *v;
    size_t i;
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), kind_name(k)) == 0)
            return true;
    }
    return false;
}

/* Answers 202 with an operation id that carries its kind and outcome: "bind.fail.7". */
static int go_async(osb_call *c, osb_call_kind k)
{
    async_broker *ab = c->user;
    if (!c->accepts_incomplete)
        return osb_fail(c, 422, OSB_ASYNC_REQUIRED,
                        "This broker %ss asynchronously only; send "
                        "accepts_incomplete=true.",
                        kind_name(k));
    pthread_mutex_lock(&ab->mu);
    unsigned long long n = ++ab->seq;
    pthread_mutex_unlock(&ab->mu);
    char op[96];
    snprintf(op, sizeof op, "%s.%s.%llu", kind_name(k), succeeds(c, k) ? "ok" : "fail", n);
    osb_set_async(c, op);
    return 0;
}

/* Counts a poll of operation; returns the number of polls so far (the first is 1), and
 * forgets the operation once it has reached done_at. */
static int count_poll(async_broker *ab, const char *operation, int done_at)
{
    pthread_mutex_lock(&ab->mu);
    poll_count **pp = &ab->counts, *p;
    for (p = *pp; p && strcmp(p->operation, operation) != 0; pp = &p->next, p = *pp)
        ;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (p && !(p->operation = strdup(operation))) {
            free(p);
            p = NULL;
        }
        if (!p) {
            pthread_mutex_unlock(&ab->mu);
            return done_at; /* out of memory: finish now rather than never */
        }
        p->next = ab->counts;
        ab->counts = p;
        pp = &ab->counts;
    }
    int n = ++p->polls;
    if (n >= done_at) {
        *pp = p->next;
        free(p->operation);
        free(p);
    }
    pthread_mutex_unlock(&ab->mu);
    return n;
}

/* The provider's own table, created through libosb's writer once the broker runs. */
static int create_ledger(struct sqlite3 *db, void *ud)
{
    (void)ud;
    return sqlite3_exec(db,
                        "CREATE TABLE IF NOT EXISTS provider_ledger (instance_id TEXT PRIMARY"
                        " KEY, operation TEXT NOT NULL)",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : 1;
}

typedef struct {
    char *instance_id, *operation;
    bool fail;
} ledger_row;

static int write_ledger(struct sqlite3 *db, void *ud)
{
    ledger_row *r = ud;
    if (r->fail)
        return 7; /* the provider's own failure code */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO provider_ledger VALUES (?, ?)", -1, &st, NULL) !=
        SQLITE_OK)
        return 1;
    sqlite3_bind_text(st, 1, r->instance_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r->operation, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : 1;
    sqlite3_finalize(st);
    return rc;
}

static void free_ledger(void *ud)
{
    ledger_row *r = ud;
    free(r->instance_id);
    free(r->operation);
    free(r);
}

static int on_provision(osb_call *c)
{
    int rc = go_async(c, OSB_PROVISION);
    if (rc || !c->accepts_incomplete)
        return rc;
    ledger_row *r = calloc(1, sizeof *r);
    if (!r || !(r->instance_id = strdup(c->instance_id)) ||
        !(r->operation = strdup(kind_name(c->kind)))) {
        if (r)
            free_ledger(r);
        return osb_fail(c, 500, NULL, "Out of memory.");
    }
    r->fail = json_is_true(json_object_get(c->parameters, "fail_write"));
    if (osb_call_write(c, write_ledger, r, free_ledger) != 0)
        return osb_fail(c, 500, NULL, "Out of memory.");
    return 0;
}

static int on_update(osb_call *c)
{
    return go_async(c, OSB_UPDATE);
}

static int on_deprovision(osb_call *c)
{
    if (c->op_kind == OSB_PROVISION)
        return 0; /* halting a creation in progress: nothing was built yet */
    return go_async(c, OSB_DEPROVISION);
}

static int on_bind(osb_call *c)
{
    return go_async(c, OSB_BIND);
}

static int on_unbind(osb_call *c)
{
    if (c->op_kind == OSB_BIND)
        return 0; /* halting a bind in progress */
    return go_async(c, OSB_UNBIND);
}

static int on_last_operation(osb_call *c)
{
    async_broker *ab = c->user;
    const char *what = kind_name(c->op_kind);
    const char *op = c->operation ? c->operation : "";
    size_t wl = strlen(what);
    if (strncmp(op, what, wl) != 0 || op[wl] != '.')
        return osb_fail(c, 500, NULL, "Operation '%.100s' is not a %s.", op, what);
    bool ok = strncmp(op + wl, ".ok.", 4) == 0;
    int n = count_poll(ab, op, ab->polls_needed);
    char desc[160];
    if (n < ab->polls_needed) {
        snprintf(desc, sizeof desc, "The %s is in progress (poll %d of %d).", what, n,
                 ab->polls_needed);
        osb_set_state(c, OSB_IN_PROGRESS, desc, 1);
        return 0;
    }
    if (ok) {
        if (c->op_kind == OSB_BIND)
            osb_set_credentials(
                c, json_pack("{s:s, s:s}", "username", c->binding_id, "password", "async-secret"));
        snprintf(desc, sizeof desc, "The %s succeeded.", what);
        osb_set_state(c, OSB_SUCCEEDED, desc, 0);
        return 0;
    }
    if (c->op_kind == OSB_UPDATE)
        osb_set_failure_flags(c, true, false);
    else if (c->op_kind == OSB_DEPROVISION)
        osb_set_failure_flags(c, false, false);
    snprintf(desc, sizeof desc, "The %s failed, as plan %s wants.", what, plan_name(c));
    osb_set_state(c, OSB_FAILED, desc, 0);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: async_broker --listen HOST:PORT --data DIR --user U --password P\n"
               "                    [--catalog FILE] [--polls N]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},  {"data", required_argument, 0, 'd'},
        {"user", required_argument, 0, 'u'},    {"password", required_argument, 0, 'p'},
        {"catalog", required_argument, 0, 'c'}, {"polls", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *listen = "127.0.0.1:0", *data = NULL, *catalog = ASYNC_CATALOG;
    const char *user = NULL, *password = NULL;
    int polls = 2, o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l': listen = optarg; break;
        case 'd': data = optarg; break;
        case 'u': user = optarg; break;
        case 'p': password = optarg; break;
        case 'c': catalog = optarg; break;
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || !*optarg || v < 1 || v > 1000) {
                fprintf(stderr, "async_broker: --polls wants 1 to 1000\n");
                return 2;
            }
            polls = (int)v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!data || !user || !password || optind != argc) {
        usage(stderr);
        return 2;
    }

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    async_broker ab = {.polls_needed = polls};
    pthread_mutex_init(&ab.mu, NULL);
    osb_callbacks cb = {
        .provision = on_provision,
        .update = on_update,
        .deprovision = on_deprovision,
        .bind = on_bind,
        .unbind = on_unbind,
        .last_operation = on_last_operation,
    };
    osb_config cfg = {.listen = listen,
                      .data_dir = data,
                      .catalog_path = catalog,
                      .user = user,
                      .password = password,
                      .name = "async-broker",
                      .user_data = &ab};
    osb_broker *b;
    char err[512] = "";
    if (osb_broker_start(&cfg, &cb, &b, err, sizeof err) != 0) {
        fprintf(stderr, "async_broker: %s\n", err[0] ? err : "cannot start");
        return 1;
    }
    if (osb_write(b, create_ledger, NULL) != 0) {
        fprintf(stderr, "async_broker: cannot create the provider's table\n");
        osb_broker_stop(b);
        return 1;
    }
    const char *colon = strrchr(listen, ':');
    int hostlen = colon ? (int)(colon - listen) : 0;
    printf("async-broker listening on http://%.*s:%u\n", hostlen ? hostlen : 9,
           hostlen ? listen : "127.0.0.1", osb_broker_port(b));
    fflush(stdout);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    osb_broker_stop(b);
    while (ab.counts) {
        poll_count *p = ab.counts;
        ab.counts = p->next;
        free(p->operation);
        free(p);
    }
    pthread_mutex_destroy(&ab.mu);
    return 0;
}
