/* osbill init and osbill serve: the platform's data directory and its server. The server
 * is the modules' routes on one HTTP server over one store. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "console/console.h"
#include "http/http.h"
#include "catalog/catalog.h"
#include "controller/controller.h"
#include "iam/iam.h"
#include "billing/billing.h"
#include "metering/metering.h"
#include "store/store.h"
#include "support/support.h"

extern const store_migration osbill_migrations[];
extern const size_t osbill_migrations_count;
extern const store_migration osbill_migrations_pg[];
extern const size_t osbill_migrations_pg_count;

static bool is_postgres(const char *db_url)
{
    return db_url && (str_has_prefix(db_url, "postgres://") ||
                      str_has_prefix(db_url, "postgresql://"));
}

/* The database: a PostgreSQL URL, sqlite:PATH, or DATA/osbill.db; migrated to this version. */
static int open_store(const char *data, const char *db_url, store **out)
{
    char path[4096];
    if (is_postgres(db_url))
        snprintf(path, sizeof path, "%s", db_url);
    else if (db_url)
        snprintf(path, sizeof path, "%s", db_url + strlen("sqlite:"));
    else
        snprintf(path, sizeof path, "%s/osbill.db", data);
    int rc = store_open(path, NULL, out);
    if (rc)
        return rc;
    rc = is_postgres(db_url)
             ? store_migrate(*out, osbill_migrations_pg, osbill_migrations_pg_count)
             : store_migrate(*out, osbill_migrations, osbill_migrations_count);
    if (rc) {
        store_close(*out);
        *out = NULL;
    }
    return rc;
}

/* A SQLite file serves one process: nodes that share work share a PostgreSQL database. The
 * lock (beside the file) goes with the process, however it ends. The descriptor, -2 when
 * another process holds it (said on stderr), -1 when it cannot be taken (then unlocked). */
static int lock_sqlite(const char *data, const char *db_url)
{
    char path[4096];
    if (db_url)
        snprintf(path, sizeof path, "%s.serve-lock", db_url + strlen("sqlite:"));
    else
        snprintf(path, sizeof path, "%s/osbill.db.serve-lock", data);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    int e = errno;
    close(fd);
    if (e != EWOULDBLOCK)
        return -1;
    fprintf(stderr,
            "osbill serve: another osbill serve uses %s already (several nodes share a"
            " PostgreSQL database: --db postgres://...)\n",
            path);
    return -2;
}

/* A data directory is initialised once its secret key is there (osbill init writes it with
 * the operator's account, in whichever database). */
static bool initialized(const char *data, const char *db_url)
{
    char path[4096];
    if (db_url)
        snprintf(path, sizeof path, "%s/secret.key", data);
    else
        snprintf(path, sizeof path, "%s/osbill.db", data);
    return access(path, F_OK) == 0;
}

static bool db_url_ok(const char *db_url)
{
    return !db_url || is_postgres(db_url) || (str_has_prefix(db_url, "sqlite:") && db_url[7]);
}

/* ---------------------------------------------------------------- init */

int cli_init(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"email", required_argument, 0, 'e'},
                                         {"password", required_argument, 0, 'p'},
                                         {"output", required_argument, 0, 'o'},
                                         {"db", required_argument, 0, 'b'},
                                         {0, 0, 0, 0}};
    const char *data = getenv("OSBILL_DATA"), *email = "admin@osbill.local", *password = NULL;
    const char *db_url = getenv("OSBILL_DB");
    bool json_out = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd': data = optarg; break;
        case 'e': email = optarg; break;
        case 'p': password = optarg; break;
        case 'o': json_out = strcmp(optarg, "json") == 0; break;
        case 'b': db_url = optarg; break;
        default:
            fprintf(stderr, "usage: osbill init --data DIR [--db postgres://...|sqlite:PATH]"
                            " [--email E] [--password P] [--output json]\n");
            return 2;
        }
    }
    if (!data) {
        fprintf(stderr, "osbill init: --data DIR is required\n");
        return 2;
    }
    if (!db_url_ok(db_url)) {
        fprintf(stderr, "osbill init: --db is postgres://... or sqlite:PATH\n");
        return 2;
    }
    if (initialized(data, db_url)) {
        fprintf(stderr, "osbill init: %s is initialised already\n", data);
        return 1;
    }
    if (mkdir(data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "osbill init: cannot create %s: %s\n", data, strerror(errno));
        return 1;
    }
    char generated[48] = "";
    if (!password) {
        unsigned char raw[18];
        random_bytes(raw, sizeof raw);
        if (b64url_encode(raw, sizeof raw, generated, sizeof generated) < 0)
            return 1;
        password = generated;
    }
    if (strlen(password) < 8) {
        fprintf(stderr, "osbill init: the password needs at least 8 characters\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    store *db = NULL;
    iam *m = NULL;
    json_t *result = NULL;
    iam_config ic = {.data_dir = data, .issuer = "http://127.0.0.1:8080/identity"};
    int rc = open_store(data, db_url, &db);
    if (!rc)
        rc = iam_open(db, &ic, &m);
    if (!rc)
        rc = iam_bootstrap(m, email, password, &result);
    if (rc) {
        fprintf(stderr, "osbill init: %s\n", base_strerror(rc));
    } else {
        if (generated[0])
            json_object_set_new(result, "password", json_string(generated));
        if (json_out) {
            char *s = json_dumps(result, JSON_COMPACT);
            printf("%s\n", s);
            free(s);
        } else {
            printf("osbill initialised in %s\n"
                   "  operator account: %s\n"
                   "  operator user:    %s%s%s\n"
                   "  API key:          %s   (shown once: keep it safe)\n"
                   "  next: osbill serve --data %s\n"
                   "        osbill login --endpoint http://127.0.0.1:8080 --apikey <the key>\n",
                   data, json_string_value(json_object_get(result, "account_id")), email,
                   generated[0] ? "  password: " : "", generated,
                   json_string_value(json_object_get(result, "api_key")), data);
        }
    }
    json_decref(result);
    iam_close(m);
    store_close(db);
    secure_wipe(generated, sizeof generated);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------- serve */

typedef struct {
    store *db;
    http_server *server;
    iam *iam;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
} ops_ctx;

/* Periodic upkeep, every five minutes until the server stops. */
static void *housekeeper(void *arg)
{
    ops_ctx *o = arg;
    pthread_mutex_lock(&o->mu);
    while (!o->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 300;
        pthread_cond_timedwait(&o->cv, &o->mu, &until);
        if (o->stop)
            break;
        pthread_mutex_unlock(&o->mu);
        if (iam_housekeeping(o->iam))
            log_warn("housekeeping failed; it runs again in five minutes");
        pthread_mutex_lock(&o->mu);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

static void healthz(http_req *req, void *ud)
{
    (void)ud;
    http_reply(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void readyz(http_req *req, void *ud)
{
    ops_ctx *o = ud;
    store_tx *tx;
    int rc = store_begin(o->db, false, &tx);
    if (!rc) {
        store_stmt *q;
        if (!(rc = store_query(tx, "SELECT 1", &q, ""))) {
            rc = store_step(q) == STORE_ROW ? 0 : OSB_E_STORE;
            store_done(q);
        }
        store_rollback(tx);
    }
    if (rc)
        http_reply_error(req, 503, "not_ready", "The store does not answer.", NULL);
    else
        http_reply(req, 200, "application/json", "{\"status\":\"ready\"}", 18);
}

static void metrics(http_req *req, void *ud)
{
    (void)ud;
    buf b;
    buf_init(&b, 1 << 20);
    if (http_server_metrics(req->server, &b) ||
        buf_printf(&b,
                   "# HELP osbill_build_info Version of the running platform.\n"
                   "# TYPE osbill_build_info gauge\nosbill_build_info{version=\"%s\"} 1\n",
                   OSBILL_VERSION)) {
        http_reply_error(req, 500, "internal_error", "Metrics are unavailable.", NULL);
    } else {
        http_reply(req, 200, "text/plain; version=0.0.4", b.data, b.len);
    }
    buf_free(&b);
}

int cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"db", required_argument, 0, 'b'},
                                         {"public-url", required_argument, 0, 'u'},
                                         {"log-level", required_argument, 0, 'L'},
                                         {"access-log", no_argument, 0, 'A'},
                                         {"reclamation-period", required_argument, 0, 'R'},
                                         {"broker-timeout", required_argument, 0, 'T'},
                                         {"support-retry-max", required_argument, 0, 'S'},
                                         {0, 0, 0, 0}};
    const char *data = getenv("OSBILL_DATA");
    const char *listen = getenv("OSBILL_LISTEN") ? getenv("OSBILL_LISTEN") : "127.0.0.1:8080";
    const char *db_url = getenv("OSBILL_DB"), *public_url = getenv("OSBILL_PUBLIC_URL");
    const char *level = getenv("OSBILL_LOG_LEVEL");
    const char *reclaim = getenv("OSBILL_RECLAMATION_PERIOD");
    const char *btimeout = getenv("OSBILL_BROKER_TIMEOUT");
    const char *sretry = getenv("OSBILL_SUPPORT_RETRY_MAX");
    bool access_log = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd': data = optarg; break;
        case 'l': listen = optarg; break;
        case 'b': db_url = optarg; break;
        case 'u': public_url = optarg; break;
        case 'L': level = optarg; break;
        case 'A': access_log = true; break;
        case 'R': reclaim = optarg; break;
        case 'T': btimeout = optarg; break;
        case 'S': sretry = optarg; break;
        default:
            fprintf(stderr, "usage: osbill serve --data DIR [--listen HOST:PORT] [--db URL]"
                            " [--public-url URL] [--log-level L] [--access-log]"
                            " [--reclamation-period SECONDS] [--broker-timeout SECONDS]"
                            " [--support-retry-max SECONDS]\n");
            return 2;
        }
    }
    log_level lv = LOG_INFO;
    if (level && log_parse_level(level, &lv)) {
        fprintf(stderr, "osbill serve: log level is debug, info, warn or error\n");
        return 2;
    }
    log_set_level(lv);
    rc_options ro = {.reclamation_s = RC_DEFAULT_RECLAMATION_S};
    int64_t bt = 0;
    if (reclaim && str_to_i64(reclaim, false, &ro.reclamation_s)) {
        fprintf(stderr, "osbill serve: --reclamation-period is a number of seconds\n");
        return 2;
    }
    if (btimeout && (str_to_i64(btimeout, false, &bt) || bt < 1 || bt > 3600)) {
        fprintf(stderr, "osbill serve: --broker-timeout is 1 to 3600 seconds\n");
        return 2;
    }
    ro.broker_timeout_ms = (long)bt * 1000;
    int64_t sr = 600;
    if (sretry && (str_to_i64(sretry, false, &sr) || sr < 1 || sr > 86400)) {
        fprintf(stderr, "osbill serve: --support-retry-max is 1 to 86400 seconds\n");
        return 2;
    }
    support_config so = {.retry_max_ms = sr * 1000};
    if (!data) {
        fprintf(stderr, "osbill serve: --data DIR is required\n");
        return 2;
    }
    if (!db_url_ok(db_url)) {
        fprintf(stderr, "osbill serve: --db is postgres://... or sqlite:PATH\n");
        return 2;
    }
    if (!initialized(data, db_url)) {
        fprintf(stderr, "osbill serve: %s is not initialised; run osbill init --data %s\n", data,
                data);
        return 1;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    store *db = NULL;
    catalog *cat = NULL;
    rc_controller *ctl = NULL;
    metering *mt = NULL;
    billing *bl = NULL;
    support *sup = NULL;
    console *con = NULL;
    iam *m = NULL;
    http_router *router = http_router_new();
    ops_ctx ops = {0};
    int lock = is_postgres(db_url) ? -1 : lock_sqlite(data, db_url);
    if (lock == -2) {
        http_router_free(router);
        return 1;
    }
    int rc = router ? open_store(data, db_url, &db) : OSB_E_NOMEM;
    if (rc) {
        fprintf(stderr, "osbill serve: cannot open the store in %s\n", data);
        http_router_free(router);
        if (lock >= 0)
            close(lock);
        return 1;
    }
    ops.db = db;
    /* Bind first: the issuer follows the listening address unless --public-url names it,
     * and every route must be in place before the server takes a request. */
    int fd = -1;
    unsigned port = 0;
    char base[600], issuer[700];
    rc = http_listen(listen, &fd, &port);
    if (!rc) {
        char host[256];
        const char *colon = strrchr(listen, ':');
        snprintf(host, sizeof host, "%.*s", (int)(colon ? colon - listen : 0), listen);
        if (!host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "*"))
            snprintf(host, sizeof host, "127.0.0.1");
        snprintf(base, sizeof base, "http://%s:%u", host, port);
        snprintf(issuer, sizeof issuer, "%s/identity", public_url ? public_url : base);
        iam_config ic = {.data_dir = data, .issuer = issuer};
        rc = iam_open(db, &ic, &m);
    }
    if (!rc) {
        rc = http_route(router, HTTP_GET, "/healthz", HTTP_STYLE_PLATFORM, healthz, &ops);
        rc |= http_route(router, HTTP_GET, "/readyz", HTTP_STYLE_PLATFORM, readyz, &ops);
        rc |= http_route(router, HTTP_GET, "/metrics", HTTP_STYLE_PLATFORM, metrics, &ops);
        iam_routes(m, router);
        if (!rc)
            rc = catalog_open(db, m, &cat);
    }
    if (!rc)
        catalog_routes(cat, router);
    if (!rc)
        rc = rc_open(db, m, cat, &ro, &ctl);
    if (!rc)
        rc_routes(ctl, router);
    if (!rc)
        rc = metering_open(db, m, &mt);
    if (!rc)
        metering_routes(mt, router);
    if (!rc)
        rc = billing_open(db, m, &bl);
    if (!rc)
        billing_routes(bl, router);
    if (!rc)
        rc = support_open(db, m, &so, &sup);
    if (!rc)
        support_routes(sup, router);
    if (!rc) {
        char site[600];
        snprintf(site, sizeof site, "%s", public_url ? public_url : base);
        size_t n = strlen(site);
        while (n > 0 && site[n - 1] == '/')
            site[--n] = '\0';
        rc = console_open(m, site, &con);
    }
    if (!rc)
        console_routes(con, router);
    http_config hc = {.listen = listen,
                      .listen_fd = fd,
                      .access_log = access_log,
                      .name = "osbill",
                      .style = HTTP_STYLE_PLATFORM};
    if (!rc)
        rc = http_server_start(&hc, router, &ops.server);
    if (rc) {
        fprintf(stderr, "osbill serve: cannot start (%s)\n", base_strerror(rc));
        if (fd >= 0 && !ops.server)
            close(fd);
        http_server_stop(ops.server);
        console_close(con);
        support_close(sup);
        billing_close(bl);
        metering_close(mt);
        rc_close(ctl);
        catalog_close(cat);
        iam_close(m);
        http_router_free(router);
        store_close(db);
        if (lock >= 0)
            close(lock);
        return 1;
    }
    ops.iam = m;
    pthread_mutex_init(&ops.mu, NULL);
    pthread_cond_init(&ops.cv, NULL);
    pthread_t keeper;
    bool keeping = pthread_create(&keeper, NULL, housekeeper, &ops) == 0;
    printf("osbill listening on %s (data: %s, issuer: %s)\n", base, data, issuer);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    printf("osbill: stopping\n");
    fflush(stdout);
    billing_stop(bl); /* a close running answers now; the next start finishes it */
    http_server_stop(ops.server);
    pthread_mutex_lock(&ops.mu);
    ops.stop = true;
    pthread_cond_signal(&ops.cv);
    pthread_mutex_unlock(&ops.mu);
    if (keeping)
        pthread_join(keeper, NULL);
    pthread_mutex_destroy(&ops.mu);
    pthread_cond_destroy(&ops.cv);
    console_close(con);
    support_close(sup);
    billing_close(bl);
    metering_close(mt);
    rc_close(ctl);
    catalog_close(cat);
    iam_close(m);
    http_router_free(router);
    store_close(db);
    if (lock >= 0)
        close(lock);
    return 0;
}
