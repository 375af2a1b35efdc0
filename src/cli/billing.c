/* cli billing: osbill billing usage|period|close, osbill invoice list|show|void, osbill
 * statement list|show. A close runs as one request; on a terminal the command meanwhile
 * polls the period and draws the close's progress on standard error. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"

static void billing_usage(FILE *f)
{
    fprintf(f, "usage: osbill billing usage YYYY-MM [--account ID] [--output json]\n"
               "         an account's usage and (estimated) charges of a month\n"
               "       osbill billing period YYYY-MM [--output json]\n"
               "       osbill billing close YYYY-MM [--force] [--output json]\n"
               "         the operator closes a month: from its grace deadline (the 2nd of the\n"
               "         next month, 00:00 UTC) on, or before it with --force\n");
}

static bool month_arg(const char *m)
{
    return m && strlen(m) == 7 && m[4] == '-';
}

static int get_json(const char *path, json_t **out)
{
    json_t *s = cli_session();
    if (!s)
        return 1;
    long status = 0;
    int rc = cli_request(s, "GET", path, NULL, out, &status);
    json_decref(s);
    return rc;
}

/* The caller's own account when --account is not given: the one GET /v1/accounts shows. */
static int own_account(char *out, size_t n)
{
    json_t *j = NULL;
    int rc = get_json("/v1/accounts", &j);
    const json_t *rows = json_object_get(j, "resources");
    if (!rc && json_array_size(rows) == 1)
        str_copy(out, n, json_string_value(json_object_get(json_array_get(rows, 0), "id")));
    else if (!rc) {
        fprintf(stderr, "osbill billing: name the account with --account ID\n");
        rc = 1;
    }
    json_decref(j);
    return rc;
}

static const cli_column line_columns[] = {
    {"instance", "resource_instance_id"},
    {"plan", "plan_id"},
    {"metric", "metric"},
    {"quantity", "quantity"},
    {"rated", "rateable_quantity"},
    {"cost", "cost"},
};

static int usage_cmd(const char *month, const cli_flag *f, int nf)
{
    char account[128] = "";
    if (cli_get(f, nf, "account"))
        str_copy(account, sizeof account, cli_get(f, nf, "account"));
    else if (own_account(account, sizeof account))
        return 1;
    char *ea = cli_escape(account), *em = cli_escape(month);
    char path[1024];
    snprintf(path, sizeof path, "/v4/accounts/%s/usage/%s", ea ? ea : "", em ? em : "");
    free(ea);
    free(em);
    json_t *j = NULL;
    int rc = get_json(path, &j);
    if (!rc && str_eq(cli_get(f, nf, "output"), "json")) {
        cli_print(j, true);
    } else if (!rc) {
        cli_print_table(json_object_get(j, "lines"), line_columns, ARRAY_LEN(line_columns),
                        "no usage this month");
        printf("%s %s: %s %s (%s)\n", json_string_value(json_object_get(j, "account_id")), month,
               json_string_value(json_object_get(j, "billable_cost")),
               json_string_value(json_object_get(j, "currency_code")),
               json_is_true(json_object_get(j, "estimate")) ? "estimate so far" : "invoiced");
    }
    json_decref(j);
    return rc;
}

static void print_period(const json_t *j)
{
    printf("%s: %s", json_string_value(json_object_get(j, "month")),
           json_string_value(json_object_get(j, "state")));
    const json_t *inv = json_object_get(j, "invoices");
    if (inv)
        printf(", %lld invoices, %lld statements", (long long)json_integer_value(inv),
               (long long)json_integer_value(json_object_get(j, "statements")));
    const char *dl = json_string_value(json_object_get(j, "grace_deadline"));
    if (str_eq(json_string_value(json_object_get(j, "state")), "open") && dl)
        printf(" (closes from %s)", dl);
    printf("\n");
}

typedef struct {
    json_t *session;
    char path[256];
    const char *body;
    json_t *out;
    int rc;
    atomic_bool done;
} close_call;

static void *close_thread(void *ud)
{
    close_call *c = ud;
    long status = 0;
    c->rc = cli_request_text(c->session, "POST", c->path, c->body, &c->out, &status);
    c->done = true;
    return NULL;
}

/* One line of progress on standard error: [#####     ]  50%  rating 5,000 of 10,000 */
static void draw(const json_t *pg)
{
    long long done = json_integer_value(json_object_get(pg, "done"));
    long long total = json_integer_value(json_object_get(pg, "total"));
    const char *phase = json_string_value(json_object_get(pg, "phase"));
    int pct = total > 0 ? (int)(done * 100 / total) : 0;
    if (str_eq(phase, "finalizing"))
        pct = 100;
    char bar[31];
    for (int i = 0; i < 30; i++)
        bar[i] = i < pct * 30 / 100 ? '#' : ' ';
    bar[30] = '\0';
    if (total > 0)
        fprintf(stderr, "\r[%s] %3d%%  %s %lld of %lld   ", bar, pct, phase ? phase : "", done,
                total);
    else
        fprintf(stderr, "\r[%s] %3d%%  %s   ", bar, pct, phase ? phase : "");
    fflush(stderr);
}

static int close_cmd(const char *month, const cli_flag *f, int nf)
{
    json_t *s = cli_session();
    if (!s)
        return 1;
    close_call c = {.session = s, .body = cli_get(f, nf, "force") ? "{\"force\": true}" : NULL};
    char *em = cli_escape(month);
    snprintf(c.path, sizeof c.path, "/v1/billing/periods/%s/close", em ? em : "");
    char ppath[256];
    snprintf(ppath, sizeof ppath, "/v1/billing/periods/%s", em ? em : "");
    free(em);
    cli_set_timeout(3600); /* a big month takes a while; the server answers when it is done */
    bool tty = isatty(STDERR_FILENO) && !str_eq(cli_get(f, nf, "output"), "json");
    pthread_t t;
    bool threaded = tty && pthread_create(&t, NULL, close_thread, &c) == 0;
    if (threaded) {
        bool drew = false;
        while (!c.done) {
            struct timespec ts = {0, 250 * 1000 * 1000};
            nanosleep(&ts, NULL);
            json_t *p = NULL;
            long st = 0;
            if (!c.done && cli_request(s, "GET", ppath, NULL, &p, &st) == 0) {
                const json_t *pg = json_object_get(p, "progress");
                if (pg) {
                    draw(pg);
                    drew = true;
                }
            }
            json_decref(p);
        }
        pthread_join(t, NULL);
        if (drew)
            fprintf(stderr, "\r%60s\r", "");
    } else {
        close_thread(&c);
    }
    int rc = c.rc;
    if (!rc) {
        if (str_eq(cli_get(f, nf, "output"), "json"))
            cli_print(c.out, true);
        else
            print_period(c.out);
    }
    json_decref(c.out);
    json_decref(s);
    return rc;
}

int cli_billing(int argc, char **argv)
{
    cli_flag f[8];
    const char *pos[3];
    int nf, np;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        billing_usage(stdout);
        return 0;
    }
    if (cli_parse_flags(argc, argv, 1, f, ARRAY_LEN(f), &nf, pos, 3, &np) || np != 2 ||
        !month_arg(pos[1])) {
        billing_usage(stderr);
        return 2;
    }
    if (!strcmp(pos[0], "usage"))
        return usage_cmd(pos[1], f, nf);
    if (!strcmp(pos[0], "close"))
        return close_cmd(pos[1], f, nf);
    if (!strcmp(pos[0], "period")) {
        char *em = cli_escape(pos[1]);
        char path[256];
        snprintf(path, sizeof path, "/v1/billing/periods/%s", em ? em : "");
        free(em);
        json_t *j = NULL;
        int rc = get_json(path, &j);
        if (!rc && str_eq(cli_get(f, nf, "output"), "json"))
            cli_print(j, true);
        else if (!rc)
            print_period(j);
        json_decref(j);
        return rc;
    }
    billing_usage(stderr);
    return 2;
}

/* ---------------------------------------------------------------- invoices */

static void invoice_usage(FILE *f)
{
    fprintf(f, "usage: osbill invoice list [--month YYYY-MM] [--account ID] [--limit N]\n"
               "                           [--start N] [--output json]\n"
               "       osbill invoice show ID [--format json|csv|html]\n"
               "       osbill invoice void ID --reason TEXT   (the operator's correction)\n");
}

static const cli_column invoice_columns[] = {
    {"number", "number"}, {"id", "id"},       {"account", "account_id"}, {"month", "month"},
    {"kind", "kind"},     {"state", "state"}, {"total", "total"},        {"currency", "currency"},
};

int cli_invoice(int argc, char **argv)
{
    cli_flag f[8];
    const char *pos[3];
    int nf, np;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        invoice_usage(stdout);
        return 0;
    }
    if (cli_parse_flags(argc, argv, 1, f, ARRAY_LEN(f), &nf, pos, 3, &np) || np < 1) {
        invoice_usage(stderr);
        return 2;
    }
    bool json_out = str_eq(cli_get(f, nf, "output"), "json");
    if (!strcmp(pos[0], "list") && np == 1) {
        char path[2048] = "/v1/invoices", more[512] = "osbill invoice list";
        static const char *const q[][2] = {
            {"month", "month"}, {"account", "account_id"}, {"limit", "limit"}, {"start", "start"}};
        cli_list_query(f, nf, q, ARRAY_LEN(q), path, sizeof path, more, sizeof more);
        json_t *j = NULL;
        int rc = get_json(path, &j);
        if (!rc && json_out)
            cli_print(j, true);
        else if (!rc) {
            cli_print_table(json_object_get(j, "resources"), invoice_columns,
                            ARRAY_LEN(invoice_columns), "no invoices");
            cli_print_more(j, more);
        }
        json_decref(j);
        return rc;
    }
    if (np != 2) {
        invoice_usage(stderr);
        return 2;
    }
    char *eid = cli_escape(pos[1]);
    char path[1024];
    snprintf(path, sizeof path, "/v1/invoices/%s", eid ? eid : "");
    free(eid);
    if (!strcmp(pos[0], "show")) {
        const char *format = cli_get(f, nf, "format");
        if (format && (!strcmp(format, "csv") || !strcmp(format, "html"))) {
            cli_add_query(path, sizeof path, "format", format);
            json_t *s = cli_session();
            if (!s)
                return 1;
            char *body = NULL;
            size_t n = 0;
            long st = 0;
            int rc = cli_request_raw(s, path, &body, &n, &st);
            json_decref(s);
            if (!rc)
                fwrite(body, 1, n, stdout);
            free(body);
            return rc;
        }
        json_t *j = NULL;
        int rc = get_json(path, &j);
        if (!rc && (json_out || str_eq(format, "json"))) {
            cli_print(j, true);
        } else if (!rc) {
            printf("invoice %lld (%s, %s) of %s for %s: %s %s\n",
                   (long long)json_integer_value(json_object_get(j, "number")),
                   json_string_value(json_object_get(j, "kind")),
                   json_string_value(json_object_get(j, "state")),
                   json_string_value(json_object_get(j, "month")),
                   json_string_value(json_object_get(j, "account_id")),
                   json_string_value(json_object_get(j, "total")),
                   json_string_value(json_object_get(j, "currency")));
            cli_print_table(json_object_get(j, "lines"), line_columns, ARRAY_LEN(line_columns),
                            "no lines");
        }
        json_decref(j);
        return rc;
    }
    if (!strcmp(pos[0], "void") && cli_get(f, nf, "reason")) {
        json_t *s = cli_session();
        if (!s)
            return 1;
        size_t plen = strlen(path);
        snprintf(path + plen, sizeof path - plen, "/void");
        json_t *body = json_pack("{s:s}", "reason", cli_get(f, nf, "reason")), *j = NULL;
        long st = 0;
        int rc = cli_request(s, "POST", path, body, &j, &st);
        json_decref(body);
        json_decref(s);
        if (!rc && json_out)
            cli_print(j, true);
        else if (!rc)
            printf("voided %s; credit note %s; reissued %s\n",
                   json_string_value(json_object_get(j, "voided")),
                   json_string_value(json_object_get(j, "credit_note")),
                   json_is_string(json_object_get(j, "reissued"))
                       ? json_string_value(json_object_get(j, "reissued"))
                       : "(nothing to bill)");
        json_decref(j);
        return rc;
    }
    invoice_usage(stderr);
    return 2;
}

/* ---------------------------------------------------------------- statements */

static const cli_column statement_columns[] = {
    {"id", "id"},
    {"provider", "provider_account_id"},
    {"month", "month"},
    {"gross", "gross"},
    {"provider share", "provider_share"},
    {"platform share", "platform_share"},
    {"currency", "currency"},
};

int cli_statement(int argc, char **argv)
{
    cli_flag f[4];
    const char *pos[3];
    int nf, np;
    if (cli_parse_flags(argc, argv, 1, f, ARRAY_LEN(f), &nf, pos, 3, &np) || np < 1 ||
        (strcmp(pos[0], "list") == 0) != (np == 1) || (strcmp(pos[0], "show") == 0) != (np == 2)) {
        fprintf(argc > 1 && argv[1] && !strcmp(argv[1], "--help") ? stdout : stderr,
                "usage: osbill statement list [--month YYYY-MM] [--output json]\n"
                "       osbill statement show ID [--output json]\n");
        return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    bool json_out = str_eq(cli_get(f, nf, "output"), "json");
    char path[1024] = "/v1/statements";
    if (np == 2) {
        char *eid = cli_escape(pos[1]);
        snprintf(path, sizeof path, "/v1/statements/%s", eid ? eid : "");
        free(eid);
    } else {
        cli_add_query(path, sizeof path, "month", cli_get(f, nf, "month"));
    }
    json_t *j = NULL;
    int rc = get_json(path, &j);
    if (!rc && json_out) {
        cli_print(j, true);
    } else if (!rc && np == 1) {
        cli_print_table(json_object_get(j, "resources"), statement_columns,
                        ARRAY_LEN(statement_columns), "no statements");
    } else if (!rc) {
        json_t *rows = json_array();
        json_array_append(rows, j);
        cli_print_table(rows, statement_columns, ARRAY_LEN(statement_columns), "");
        json_decref(rows);
        static const cli_column plan_columns[] = {
            {"offering", "offering_id"},
            {"plan", "plan_id"},
            {"lines", "lines"},
            {"gross", "gross"},
            {"provider share", "provider_share"},
            {"platform share", "platform_share"},
        };
        cli_print_table(json_object_get(j, "plans"), plan_columns, ARRAY_LEN(plan_columns),
                        "no lines");
    }
    json_decref(j);
    return rc;
}
