/* osbill instance, key, reclamation: a consumer's resources from the command line through the
 * resource controller (/v2/resource_instances, /v2/resource_keys, /v1/reclamations) — create,
 * read, change and delete instances, wait for a broker's asynchronous work, make resource keys
 * and read their credentials, restore or reclaim a deleted instance. Every command takes
 * --output json for scripts; exit codes are offering.c's: 0 done, 1 refused or failed, 2 usage. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "cli/cli.h"

#define MAX_FLAGS         32
#define MAX_PARAMETERS    (1 << 20) /* a --parameters text or file, as the API's body cap */
#define DEFAULT_TIMEOUT_S 600
#define MAX_TIMEOUT_S     (7 * 86400)
#define POLL_FIRST_MS     500
#define POLL_MAX_MS       5000

static void usage(FILE *to)
{
    fprintf(to,
            "usage: osbill instance|key|reclamation COMMAND [options] [--output json]\n"
            "instances:\n"
            "  instance create --name N --plan PLAN_ID --region R [--resource-group G]\n"
            "                  [--parameters JSON|@FILE] [--wait [--timeout S]]\n"
            "  instance list [--plan PLAN_ID] [--state S] [--limit N] [--start S]\n"
            "  instance get ID\n"
            "  instance update ID [--name N] [--plan PLAN_ID] [--parameters JSON|@FILE]\n"
            "                  [--wait [--timeout S]]\n"
            "  instance delete ID [--recursive]    (an active one waits for its reclamation)\n"
            "  instance wait ID [--timeout S]      until no operation of it is in progress\n"
            "keys (credentials):\n"
            "  key create --name N --instance ID [--role Reader|Writer|Manager]\n"
            "             [--parameters JSON|@FILE]\n"
            "  key list [--instance ID] [--state S] [--limit N] [--start S]\n"
            "  key get ID          key delete ID\n"
            "reclamations (deleted instances kept for their reclamation period):\n"
            "  reclamation list [--instance ID]\n"
            "  reclamation restore ID              reclamation reclaim ID\n"
            "ID is a guid or a CRN; --timeout defaults to %d seconds.\n",
            DEFAULT_TIMEOUT_S);
}

/* ---------------------------------------------------------------- flags */

/* Removes every --name switch (a flag without a value) from argv; true when there was one. */
static bool take_switch(int *argc, char **argv, const char *name)
{
    bool found = false;
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        if (i > 0 && !strncmp(argv[i], "--", 2) && !strcmp(argv[i] + 2, name))
            found = true;
        else
            argv[n++] = argv[i];
    }
    *argc = n;
    return found;
}

/* --parameters: a JSON object, inline or from @FILE. 0 and *out (json_decref), or 2 after
 * printing why: the platform would refuse it anyway, and a local check names the flag. */
static int parameters_flag(const char *v, json_t **out)
{
    json_error_t err;
    json_t *j;
    *out = NULL;
    if (v[0] == '@') {
        j = json_load_file(v + 1, JSON_REJECT_DUPLICATES, &err);
        if (!j) {
            fprintf(stderr, "osbill: --parameters %s: %s (line %d)\n", v, err.text, err.line);
            return 2;
        }
    } else {
        if (strlen(v) > MAX_PARAMETERS) {
            fprintf(stderr, "osbill: --parameters: more than %d bytes\n", MAX_PARAMETERS);
            return 2;
        }
        j = json_loads(v, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
        if (!j) {
            fprintf(stderr, "osbill: --parameters: not valid JSON: %s (column %d)\n", err.text,
                    err.column);
            return 2;
        }
    }
    if (!json_is_object(j)) {
        fprintf(stderr, "osbill: --parameters: must be a JSON object, such as '{\"key\": 1}'\n");
        json_decref(j);
        return 2;
    }
    *out = j;
    return 0;
}

/* --timeout S for waits; 0, or 2 after printing why. */
static int timeout_flag(const char *v, int64_t *out)
{
    *out = DEFAULT_TIMEOUT_S;
    if (!v)
        return 0;
    if (str_to_i64(v, false, out) || *out < 1 || *out > MAX_TIMEOUT_S) {
        fprintf(stderr, "osbill: --timeout is 1 to %d seconds, not '%s'\n", MAX_TIMEOUT_S, v);
        return 2;
    }
    return 0;
}

/* Appends ?key=value or &key=value, the value percent-encoded; absent values add nothing. */
void cli_add_query(char *path, size_t n, const char *key, const char *value)
{
    if (!value)
        return;
    char *e = cli_escape(value);
    size_t len = strlen(path);
    if (e && len < n)
        snprintf(path + len, n - len, "%s%s=%s", strchr(path, '?') ? "&" : "?", key, e);
    free(e);
}

void cli_list_query(const cli_flag *f, int nf, const char *const (*map)[2], size_t n, char *path,
                    size_t pathlen, char *more, size_t morelen)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = cli_get(f, nf, map[i][0]);
        cli_add_query(path, pathlen, map[i][1], v);
        size_t len = strlen(more);
        if (v && strcmp(map[i][0], "start") != 0)
            snprintf(more + len, morelen - len, " --%s %s", map[i][0], v);
    }
}

/* ---------------------------------------------------------------- human output */

/* The text of a member (a.b for nested ones): strings as they are, other values as compact
 * JSON, "-" when absent or null. Malloc'd. */
static char *cell(const json_t *j, const char *path)
{
    char name[64];
    const char *dot = strchr(path, '.');
    if (dot) {
        snprintf(name, sizeof name, "%.*s", (int)(dot - path), path);
        return cell(json_object_get(j, name), dot + 1);
    }
    const json_t *v = json_object_get(j, path);
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (!v || json_is_null(v))
        return strdup("-");
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return text ? text : strdup("-");
}

/* label: value lines, aligned. */
static void print_fields(const json_t *j, const cli_column *cols, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(cols[i].label) > w)
            w = (int)strlen(cols[i].label);
    for (size_t i = 0; i < n; i++) {
        char *v = cell(j, cols[i].path);
        printf("%s:%*s %s\n", cols[i].label, w - (int)strlen(cols[i].label), "", v ? v : "-");
        free(v);
    }
}

/* One row a line under a heading, columns as wide as their widest cell. */
void cli_print_table(const json_t *rows, const cli_column *cols, size_t n, const char *none)
{
    size_t nrows = json_array_size(rows);
    if (!nrows) {
        printf("%s\n", none);
        return;
    }
    int w[8] = {0};
    assert(n <= ARRAY_LEN(w));
    for (size_t c = 0; c < n; c++) {
        w[c] = (int)strlen(cols[c].label);
        for (size_t r = 0; r < nrows; r++) {
            char *v = cell(json_array_get(rows, r), cols[c].path);
            if (v && (int)strlen(v) > w[c])
                w[c] = (int)strlen(v);
            free(v);
        }
    }
    for (size_t c = 0; c < n; c++)
        printf("%-*s%s", c + 1 < n ? w[c] : 0, cols[c].label, c + 1 < n ? "  " : "\n");
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < n; c++) {
            char *v = cell(json_array_get(rows, r), cols[c].path);
            printf("%-*s%s", c + 1 < n ? w[c] : 0, v ? v : "-", c + 1 < n ? "  " : "\n");
            free(v);
        }
}

/* After a page: how to get the next one, from next_url's start. */
void cli_print_more(const json_t *page, const char *cmd)
{
    const char *next = json_string_value(json_object_get(page, "next_url"));
    const char *start = next ? strstr(next, "start=") : NULL;
    if (start)
        printf("more: %s --start %.*s\n", cmd, (int)strcspn(start + 6, "&"), start + 6);
}

static const cli_column instance_fields[] = {
    {"name", "name"},
    {"guid", "guid"},
    {"crn", "crn"},
    {"state", "state"},
    {"plan", "resource_plan_id"},
    {"region", "target"},
    {"resource group", "resource_group_id"},
    {"parameters", "parameters"},
    {"last operation", "last_operation.type"},
    {"operation state", "last_operation.state"},
    {"dashboard", "dashboard_url"},
    {"created", "created_at"},
    {"updated", "updated_at"},
};

static void print_instance(const json_t *j)
{
    print_fields(j, instance_fields, ARRAY_LEN(instance_fields));
    const char *why =
        json_string_value(json_object_get(json_object_get(j, "last_operation"), "description"));
    if (why && why[0])
        printf("description:     %s\n", why);
    if (!json_is_null(json_object_get(j, "deleted_at")) && json_object_get(j, "deleted_at"))
        printf("deleted:         %s\n", json_string_value(json_object_get(j, "deleted_at")));
}

static const cli_column instance_columns[] = {
    {"NAME", "name"}, {"STATE", "state"}, {"REGION", "target"}, {"PLAN", "resource_plan_id"},
    {"GUID", "guid"},
};

static const cli_column key_fields[] = {
    {"name", "name"},
    {"guid", "guid"},
    {"crn", "crn"},
    {"state", "state"},
    {"role", "role"},
    {"instance", "source_crn"},
    {"parameters", "parameters"},
    {"created", "created_at"},
};

static void print_key(const json_t *j)
{
    print_fields(j, key_fields, ARRAY_LEN(key_fields));
    const json_t *creds = json_object_get(j, "credentials");
    if (json_is_object(creds)) {
        printf("credentials:\n");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)creds, k, v)
        {
            char *text = json_is_string(v) ? strdup(json_string_value(v))
                                           : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            printf("  %s: %s\n", k, text ? text : "-");
            if (text)
                secure_wipe(text, strlen(text));
            free(text);
        }
    } else if (json_object_get(j, "credentials")) {
        printf("credentials: -\n");
    }
}

static const cli_column key_columns[] = {
    {"NAME", "name"},          {"STATE", "state"}, {"ROLE", "role"},
    {"CREATED", "created_at"}, {"GUID", "guid"},
};

static const cli_column reclamation_fields[] = {
    {"id", "id"},
    {"state", "state"},
    {"instance", "resource_instance_id"},
    {"instance crn", "resource_instance_crn"},
    {"reclaim at", "target_time"},
};

static const cli_column reclamation_columns[] = {
    {"ID", "id"},
    {"STATE", "state"},
    {"RECLAIM AT", "target_time"},
    {"INSTANCE", "resource_instance_id"},
};

/* ---------------------------------------------------------------- waiting */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* No operation of the instance in progress: the broker has answered. */
static bool settled(const json_t *inst)
{
    const char *state = json_string_value(json_object_get(inst, "state"));
    const char *op =
        json_string_value(json_object_get(json_object_get(inst, "last_operation"), "state"));
    return !str_eq(state, "provisioning") && !str_eq(state, "removing") &&
           !str_eq(op, "in progress");
}

/* Polls GET /v2/resource_instances/ID until settled or timeout_s has passed; *out the last
 * answer (json_decref). 0 when settled, 1 after printing why not. */
static int wait_instance(json_t *s, const char *id, int64_t timeout_s, bool quiet, json_t **out)
{
    char path[2048];
    char *eid = cli_escape(id);
    snprintf(path, sizeof path, "/v2/resource_instances/%s", eid ? eid : "");
    free(eid);
    int64_t deadline = time_mono_us() + timeout_s * 1000000;
    int64_t delay = POLL_FIRST_MS;
    bool told = false;
    *out = NULL;
    for (;;) {
        json_t *j = NULL;
        long status = 0;
        if (cli_request(s, "GET", path, NULL, &j, &status)) {
            json_decref(j);
            return 1;
        }
        if (settled(j)) {
            *out = j;
            return 0;
        }
        int64_t left_ms = (deadline - time_mono_us()) / 1000;
        const char *state = json_string_value(json_object_get(j, "state"));
        if (left_ms <= 0) {
            fprintf(stderr, "osbill: timed out after %llds: instance %s is still %s\n",
                    (long long)timeout_s, id, state ? state : "busy");
            *out = j;
            return 1;
        }
        if (!quiet && !told) {
            fprintf(stderr, "osbill: waiting for instance %s (%s)...\n", id,
                    state ? state : "busy");
            told = true;
        }
        json_decref(j);
        sleep_ms(delay < left_ms ? delay : left_ms);
        delay = delay * 2 > POLL_MAX_MS ? POLL_MAX_MS : delay * 2;
    }
}

/* A settled instance whose operation failed: 1 after printing the broker's description. */
static int outcome(const json_t *inst)
{
    const json_t *lo = json_object_get(inst, "last_operation");
    const char *op = json_string_value(json_object_get(lo, "state"));
    if (!str_eq(json_string_value(json_object_get(inst, "state")), "failed") &&
        !str_eq(op, "failed"))
        return 0;
    const char *type = json_string_value(json_object_get(lo, "type"));
    const char *why = json_string_value(json_object_get(lo, "description"));
    fprintf(stderr, "osbill: instance %s: %s failed%s%s\n",
            json_string_value(json_object_get(inst, "guid")), type ? type : "the operation",
            why && why[0] ? ": " : "", why && why[0] ? why : "");
    return 1;
}

/* ---------------------------------------------------------------- commands */

typedef enum {
    VIEW_RAW,
    VIEW_INSTANCE,
    VIEW_INSTANCES,
    VIEW_KEY,
    VIEW_KEYS,
    VIEW_RECLAMATION,
    VIEW_RECLAMATIONS,
} view;

/* What a command sends and how its answer is shown; built by one group's parser. */
typedef struct {
    const char *method;
    char path[2048];
    json_t *body;
    view view;
    bool wait; /* poll the instance until settled */
    int64_t timeout_s;
    const char *more; /* the list command, for the next page's hint */
} command;

/* Sets a body member from a flag, when given. */
static void set_text(json_t *body, const char *key, const char *value)
{
    if (value)
        json_object_set_new(body, key, json_string(value));
}

/* Parses osbill instance ...; 0, or 2 after printing why. */
static int instance_command(const char *verb, const char *id, const cli_flag *f, int nf, bool wait,
                            bool recursive, command *c)
{
    const char *params = cli_get(f, nf, "parameters");
    char *eid = id ? cli_escape(id) : NULL;
    json_t *p = NULL;
    int rc = 2;
    if (params && (rc = parameters_flag(params, &p)))
        goto out;
    rc = 2;
    if ((wait || cli_get(f, nf, "timeout")) &&
        timeout_flag(cli_get(f, nf, "timeout"), &c->timeout_s))
        goto out;
    c->view = VIEW_INSTANCE;
    if (!strcmp(verb, "create")) {
        if (!cli_get(f, nf, "name") || !cli_get(f, nf, "plan") || !cli_get(f, nf, "region")) {
            fprintf(stderr, "osbill instance create: --name, --plan and --region are required\n");
            goto out;
        }
        c->method = "POST";
        snprintf(c->path, sizeof c->path, "/v2/resource_instances");
        c->body = json_pack("{s:s, s:s, s:s}", "name", cli_get(f, nf, "name"), "target",
                            cli_get(f, nf, "region"), "resource_plan_id", cli_get(f, nf, "plan"));
        set_text(c->body, "resource_group", cli_get(f, nf, "resource-group"));
        c->wait = wait;
    } else if (!strcmp(verb, "list")) {
        snprintf(c->path, sizeof c->path, "/v2/resource_instances");
        cli_add_query(c->path, sizeof c->path, "resource_plan_id", cli_get(f, nf, "plan"));
        cli_add_query(c->path, sizeof c->path, "state", cli_get(f, nf, "state"));
        cli_add_query(c->path, sizeof c->path, "limit", cli_get(f, nf, "limit"));
        cli_add_query(c->path, sizeof c->path, "start", cli_get(f, nf, "start"));
        c->view = VIEW_INSTANCES;
        c->more = "osbill instance list";
    } else if (!strcmp(verb, "get") || !strcmp(verb, "wait")) {
        if (!id)
            goto missing;
        snprintf(c->path, sizeof c->path, "/v2/resource_instances/%s", eid);
        c->wait = !strcmp(verb, "wait");
    } else if (!strcmp(verb, "update")) {
        if (!id)
            goto missing;
        if (!cli_get(f, nf, "name") && !cli_get(f, nf, "plan") && !p) {
            fprintf(stderr, "osbill instance update: nothing to change: give --name, --plan or "
                            "--parameters\n");
            goto out;
        }
        c->method = "PATCH";
        snprintf(c->path, sizeof c->path, "/v2/resource_instances/%s", eid);
        c->body = json_object();
        set_text(c->body, "name", cli_get(f, nf, "name"));
        set_text(c->body, "resource_plan_id", cli_get(f, nf, "plan"));
        c->wait = wait;
    } else if (!strcmp(verb, "delete")) {
        if (!id)
            goto missing;
        c->method = "DELETE";
        snprintf(c->path, sizeof c->path, "/v2/resource_instances/%s%s", eid,
                 recursive ? "?recursive=true" : "");
    } else {
        fprintf(stderr, "osbill instance: unknown command '%s'\n", verb);
        usage(stderr);
        goto out;
    }
    if (p && c->body)
        json_object_set(c->body, "parameters", p);
    rc = 0;
    goto out;
missing:
    fprintf(stderr, "osbill instance %s: which instance? (an ID: guid or CRN)\n", verb);
out:
    json_decref(p);
    free(eid);
    return rc;
}

/* Parses osbill key ...; 0, or 2 after printing why. */
static int key_command(const char *verb, const char *id, const cli_flag *f, int nf, command *c)
{
    char *eid = id ? cli_escape(id) : NULL;
    json_t *p = NULL;
    int rc = 2;
    c->view = VIEW_KEY;
    if (!strcmp(verb, "create")) {
        if (!cli_get(f, nf, "name") || !cli_get(f, nf, "instance")) {
            fprintf(stderr, "osbill key create: --name and --instance are required\n");
            goto out;
        }
        if (cli_get(f, nf, "parameters") &&
            (rc = parameters_flag(cli_get(f, nf, "parameters"), &p)))
            goto out;
        c->method = "POST";
        snprintf(c->path, sizeof c->path, "/v2/resource_keys");
        c->body = json_pack("{s:s, s:s}", "name", cli_get(f, nf, "name"), "source",
                            cli_get(f, nf, "instance"));
        set_text(c->body, "role", cli_get(f, nf, "role"));
        if (p)
            json_object_set(c->body, "parameters", p);
    } else if (!strcmp(verb, "list")) {
        snprintf(c->path, sizeof c->path, "/v2/resource_keys");
        cli_add_query(c->path, sizeof c->path, "source", cli_get(f, nf, "instance"));
        cli_add_query(c->path, sizeof c->path, "state", cli_get(f, nf, "state"));
        cli_add_query(c->path, sizeof c->path, "limit", cli_get(f, nf, "limit"));
        cli_add_query(c->path, sizeof c->path, "start", cli_get(f, nf, "start"));
        c->view = VIEW_KEYS;
        c->more = "osbill key list";
    } else if (!strcmp(verb, "get") || !strcmp(verb, "delete")) {
        if (!id) {
            fprintf(stderr, "osbill key %s: which key? (an ID: guid or CRN)\n", verb);
            goto out;
        }
        c->method = !strcmp(verb, "get") ? "GET" : "DELETE";
        snprintf(c->path, sizeof c->path, "/v2/resource_keys/%s", eid);
    } else {
        fprintf(stderr, "osbill key: unknown command '%s'\n", verb);
        usage(stderr);
        goto out;
    }
    rc = 0;
out:
    json_decref(p);
    free(eid);
    return rc;
}

/* Parses osbill reclamation ...; 0, or 2 after printing why. */
static int reclamation_command(const char *verb, const char *id, const cli_flag *f, int nf,
                               command *c)
{
    if (!strcmp(verb, "list")) {
        snprintf(c->path, sizeof c->path, "/v1/reclamations");
        cli_add_query(c->path, sizeof c->path, "resource_instance_id", cli_get(f, nf, "instance"));
        c->view = VIEW_RECLAMATIONS;
        return 0;
    }
    if (strcmp(verb, "restore") != 0 && strcmp(verb, "reclaim") != 0) {
        fprintf(stderr, "osbill reclamation: unknown command '%s'\n", verb);
        usage(stderr);
        return 2;
    }
    if (!id) {
        fprintf(stderr,
                "osbill reclamation %s: which reclamation? (its ID, from osbill "
                "reclamation list)\n",
                verb);
        return 2;
    }
    char *eid = cli_escape(id);
    c->method = "POST";
    snprintf(c->path, sizeof c->path, "/v1/reclamations/%s/actions/%s", eid ? eid : "", verb);
    free(eid);
    c->view = VIEW_RECLAMATION;
    return 0;
}

/* Shows an answer as the command's view asks. */
static void show(const command *c, const json_t *out, long status, const char *group,
                 const char *id)
{
    const json_t *rows = json_object_get(out, "resources");
    switch (c->view) {
    case VIEW_INSTANCES:
        cli_print_table(rows, instance_columns, ARRAY_LEN(instance_columns), "no instances");
        cli_print_more(out, c->more);
        return;
    case VIEW_KEYS:
        cli_print_table(rows, key_columns, ARRAY_LEN(key_columns), "no keys");
        cli_print_more(out, c->more);
        return;
    case VIEW_RECLAMATIONS:
        cli_print_table(rows, reclamation_columns, ARRAY_LEN(reclamation_columns),
                        "no reclamations");
        return;
    default: break;
    }
    if (status == 204 || !out) {
        printf("deleted %s %s\n", group, id);
        return;
    }
    if (c->view == VIEW_INSTANCE)
        print_instance(out);
    else if (c->view == VIEW_KEY)
        print_key(out);
    else if (c->view == VIEW_RECLAMATION)
        print_fields(out, reclamation_fields, ARRAY_LEN(reclamation_fields));
    else
        cli_print(out, false);
    const char *state = json_string_value(json_object_get(out, "state"));
    const char *guid = json_string_value(json_object_get(out, "guid"));
    if (c->view == VIEW_INSTANCE && str_eq(state, "pending_reclamation"))
        printf("note: kept disabled for its reclamation period; to undo, osbill reclamation "
               "restore ID (osbill reclamation list --instance %s)\n",
               guid);
    else if (status == 202 && c->view == VIEW_INSTANCE && !c->wait)
        printf("in progress: osbill instance wait %s\n", guid);
    else if (status == 202 && c->view == VIEW_KEY)
        printf("in progress: osbill key get %s\n", guid);
}

/* One group's command: parse, call, wait, show. */
static int run_group(const char *group, int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    bool wait = take_switch(&argc, argv, "wait");
    bool recursive = take_switch(&argc, argv, "recursive");
    cli_flag f[MAX_FLAGS];
    const char *pos[4];
    int nf, np;
    if (cli_parse_flags(argc, argv, 1, f, MAX_FLAGS, &nf, pos, 4, &np) || np < 1) {
        usage(stderr);
        return 2;
    }
    bool json_out = str_eq(cli_get(f, nf, "output"), "json");
    const char *verb = pos[0], *id = np > 1 ? pos[1] : NULL;
    command c = {.method = "GET", .view = VIEW_RAW, .timeout_s = DEFAULT_TIMEOUT_S};
    json_t *s = NULL, *out = NULL;
    int rc;
    if (!strcmp(group, "instance"))
        rc = instance_command(verb, id, f, nf, wait, recursive, &c);
    else if (!strcmp(group, "key"))
        rc = key_command(verb, id, f, nf, &c);
    else
        rc = reclamation_command(verb, id, f, nf, &c);
    if (rc)
        goto out;
    if (!(s = cli_session())) {
        rc = 1;
        goto out;
    }
    long status = 0;
    if (strcmp(verb, "wait") != 0 && (rc = cli_request(s, c.method, c.path, c.body, &out, &status)))
        goto out;
    if (c.wait) {
        /* The instance's guid from the answer: an update may have named it by its CRN. */
        const char *guid = json_string_value(json_object_get(out, "guid"));
        json_t *last = NULL;
        rc = wait_instance(s, guid ? guid : id, c.timeout_s, json_out, &last);
        if (last) {
            json_decref(out);
            out = last;
            status = 200;
        }
        if (!rc)
            rc = outcome(out);
    }
    if (json_out)
        cli_print(out, true);
    else if (!rc || out)
        show(&c, out, status, group, id);
out:
    json_decref(c.body);
    json_decref(out);
    json_decref(s);
    return rc;
}

int cli_instance(int argc, char **argv)
{
    return run_group("instance", argc, argv);
}

int cli_key(int argc, char **argv)
{
    return run_group("key", argc, argv);
}

int cli_reclamation(int argc, char **argv)
{
    return run_group("reclamation", argc, argv);
}
