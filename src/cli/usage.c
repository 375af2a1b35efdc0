/* cli usage: osbill usage submit --offering ID -f records.json. The file's text is sent as
 * written, so quantities keep every digit (a JSON parser would make 0.1 a binary double);
 * the platform checks it. Each record's outcome is printed in order.
 * osbill usage list [filters]: the accepted records the caller may read, a page at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"

#define MAX_FILE (4 << 20)

static void usage(FILE *f)
{
    fprintf(f, "usage: osbill usage submit --offering ID -f records.json [--output json]\n"
               "  records.json: a JSON array of 1 to 100 usage records (spec: billing.md);\n"
               "  '-' reads standard input. Exit status 0 when every record was accepted now\n"
               "  or before (201, 409), 1 otherwise.\n"
               "       osbill usage list [--account ID] [--offering ID] [--instance ID|CRN]\n"
               "                         [--plan ID] [--month YYYY-MM] [--from MS] [--to MS]\n"
               "                         [--limit N] [--start N] [--output json]\n"
               "  the accepted records of your account, and of your offerings as a provider\n"
               "  (the operator: every account's); --from/--to bound the record's instant.\n");
}

/* The filters of usage list: flag, query parameter. */
static const struct {
    const char *flag, *query;
} list_flags[] = {
    {"account", "account_id"},
    {"offering", "offering_id"},
    {"instance", "instance"},
    {"plan", "plan_id"},
    {"month", "month"},
    {"from", "from"},
    {"to", "to"},
    {"limit", "limit"},
    {"start", "start"},
};

static const cli_column record_columns[] = {
    {"id", "id"},        {"instance", "resource_instance_id"},
    {"plan", "plan_id"}, {"month", "month"},
    {"start", "start"},  {"end", "end"},
    {"usage", "usage"},
};

static int list(const cli_flag *f, int nf)
{
    char path[8192] = "/v1/usage/records", more[4096] = "osbill usage list";
    for (size_t i = 0; i < ARRAY_LEN(list_flags); i++) {
        const char *v = cli_get(f, nf, list_flags[i].flag);
        cli_add_query(path, sizeof path, list_flags[i].query, v);
        size_t len = strlen(more);
        if (v && strcmp(list_flags[i].flag, "start") != 0 && len < sizeof more)
            snprintf(more + len, sizeof more - len, " --%s %s", list_flags[i].flag, v);
    }
    json_t *s = cli_session();
    if (!s)
        return 1;
    json_t *out = NULL;
    long status = 0;
    int rc = cli_request(s, "GET", path, NULL, &out, &status);
    json_decref(s);
    if (rc) {
        json_decref(out);
        return 1;
    }
    if (str_eq(cli_get(f, nf, "output"), "json")) {
        cli_print(out, true);
        json_decref(out);
        return 0;
    }
    /* measured_usage as MEASURE=QUANTITY words, for the table */
    size_t i, j;
    json_t *r;
    const json_t *m;
    json_array_foreach(json_object_get(out, "resources"), i, r)
    {
        buf b;
        buf_init(&b, 8192);
        int brc = 0;
        json_array_foreach(json_object_get(r, "measured_usage"), j, m)
        {
            brc |= buf_printf(&b, "%s%s=%s", j ? " " : "",
                              json_string_value(json_object_get(m, "measure")),
                              json_string_value(json_object_get(m, "quantity")));
        }
        json_object_set_new(r, "usage", json_string(brc ? "?" : buf_cstr(&b)));
        buf_free(&b);
    }
    cli_print_table(json_object_get(out, "resources"), record_columns, ARRAY_LEN(record_columns),
                    "no usage records");
    cli_print_more(out, more);
    json_decref(out);
    return 0;
}

static char *read_all(const char *path, size_t *n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        perror(path);
        return NULL;
    }
    buf b;
    buf_init(&b, MAX_FILE);
    char chunk[65536];
    size_t got;
    int rc = 0;
    while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(&b, chunk, got);
    bool err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (rc || err) {
        fprintf(stderr, "osbill usage: cannot read %s%s\n", path, rc ? " (larger than 4 MiB)" : "");
        buf_free(&b);
        return NULL;
    }
    *n = b.len;
    return buf_take(&b);
}

int cli_usage(int argc, char **argv)
{
    cli_flag f[16];
    const char *pos[2];
    int nf, np;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    /* -f is the one short flag: spelled as --file for the parser */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-f"))
            argv[i] = "--file";
    if (cli_parse_flags(argc, argv, 1, f, ARRAY_LEN(f), &nf, pos, 2, &np) || np != 1) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(pos[0], "list"))
        return list(f, nf);
    if (strcmp(pos[0], "submit") != 0 || !cli_get(f, nf, "offering") || !cli_get(f, nf, "file")) {
        usage(stderr);
        return 2;
    }
    bool json_out = str_eq(cli_get(f, nf, "output"), "json");
    size_t n = 0;
    char *text = read_all(cli_get(f, nf, "file"), &n);
    if (!text)
        return 1;
    if (n == 0) {
        fprintf(stderr, "osbill usage: the file is empty\n");
        free(text);
        return 1;
    }
    json_t *s = cli_session();
    if (!s) {
        free(text);
        return 1;
    }
    char *eo = cli_escape(cli_get(f, nf, "offering"));
    char path[1024];
    snprintf(path, sizeof path, "/v4/metering/resources/%s/usage", eo ? eo : "");
    free(eo);
    json_t *out = NULL;
    long status = 0;
    int rc = cli_request_text(s, "POST", path, text, &out, &status);
    free(text);
    json_decref(s);
    if (rc) {
        json_decref(out);
        return 1;
    }
    const json_t *res = json_object_get(out, "resources");
    if (json_out) {
        cli_print(out, true);
    } else {
        size_t i;
        const json_t *e;
        json_array_foreach(res, i, e)
        {
            const char *code = json_string_value(json_object_get(e, "code"));
            printf("%zu\t%lld\t%s%s%s\n", i,
                   (long long)json_integer_value(json_object_get(e, "status")),
                   code ? code : "accepted", code ? ": " : "",
                   code ? json_string_value(json_object_get(e, "message")) : "");
        }
    }
    size_t i;
    const json_t *e;
    int bad = 0;
    json_array_foreach(res, i, e)
    {
        json_int_t st = json_integer_value(json_object_get(e, "status"));
        bad |= st != 201 && st != 409;
    }
    json_decref(out);
    return bad;
}
