/* cli support: osbill case create|list|show|update, and osbill case webhook set|get|delete
 * for a provider's offering (where its cases are delivered). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"

static void case_usage(FILE *f)
{
    fprintf(f, "usage: osbill case create --severity 1-4 --subject TEXT --description TEXT\n"
               "                          [--instance ID|CRN] [--output json]\n"
               "         a case about an instance goes to its provider; without one, to the\n"
               "         platform's operator (1: critical, 2: high, 3: medium, 4: a question)\n"
               "       osbill case list [--status S] [--instance ID] [--offering ID] [--missed]\n"
               "                        [--account ID] [--limit N] [--start N] [--output json]\n"
               "         --missed: the cases past their first-response target\n"
               "       osbill case show ID [--output json]   the case, its updates and (for the\n"
               "                                             provider and operator) deliveries\n"
               "       osbill case update ID [--comment TEXT] [--status S] [--output json]\n"
               "         S: new, in_progress, waiting_on_client, resolved, closed\n"
               "       osbill case webhook set --offering ID --url URL [--rotate-secret]\n"
               "       osbill case webhook get|delete --offering ID\n"
               "         where an offering's cases are delivered; the signing secret is shown\n"
               "         when the webhook is first set and when it is rotated, never again\n");
}

static const cli_column case_columns[] = {
    {"number", "number"},      {"id", "id"},           {"severity", "severity"},
    {"status", "status"},      {"to", "routed_to"},    {"missed", "first_response.missed"},
    {"updated", "updated_at"}, {"subject", "subject"},
};

static const cli_column delivery_columns[] = {
    {"update", "seq"},
    {"event", "event"},
    {"state", "state"},
    {"attempts", "attempts"},
    {"status", "last_attempt.status"},
    {"error", "last_attempt.error"},
    {"next", "next_attempt_at"},
};

static int call(const char *method, const char *path, const json_t *body, json_t **out)
{
    json_t *s = cli_session();
    if (!s)
        return 1;
    long status = 0;
    int rc = cli_request(s, method, path, body, out, &status);
    json_decref(s);
    return rc;
}

static void print_case(const json_t *c)
{
    const json_t *fr = json_object_get(c, "first_response");
    printf("case %lld (%s): %s\n", (long long)json_integer_value(json_object_get(c, "number")),
           json_string_value(json_object_get(c, "id")),
           json_string_value(json_object_get(c, "subject")));
    printf("  severity %lld, %s, routed to the %s\n",
           (long long)json_integer_value(json_object_get(c, "severity")),
           json_string_value(json_object_get(c, "status")),
           json_string_value(json_object_get(c, "routed_to")));
    const char *inst = json_string_value(json_object_get(c, "instance_id"));
    if (inst)
        printf("  instance %s of offering %s\n", inst,
               json_string_value(json_object_get(c, "offering_id")));
    const json_t *ps = json_object_get(c, "provider_support");
    const char *url = json_string_value(json_object_get(ps, "url"));
    const char *email = json_string_value(json_object_get(ps, "email"));
    if (url || email)
        printf("  the provider's support: %s%s%s\n", url ? url : "", url && email ? ", " : "",
               email ? email : "");
    const char *due = json_string_value(json_object_get(fr, "due_at"));
    const char *at = json_string_value(json_object_get(fr, "responded_at"));
    if (due)
        printf("  first response due %s: %s%s\n", due, at ? "answered " : "not answered yet",
               json_is_true(json_object_get(fr, "missed")) ? " (missed)"
               : at                                        ? at
                                                           : "");
}

/* Each update as a heading line (who, when, the status it set) over its comment, indented. */
static void print_updates(const json_t *ups)
{
    size_t i;
    const json_t *u;
    json_array_foreach(ups, i, u)
    {
        const char *from = json_string_value(json_object_get(u, "status_from"));
        const char *to = json_string_value(json_object_get(u, "status_to"));
        printf("\n#%lld %s, %s (%s)", (long long)json_integer_value(json_object_get(u, "seq")),
               json_string_value(json_object_get(u, "created_at")),
               json_string_value(json_object_get(u, "author")),
               json_string_value(json_object_get(u, "side")));
        if (to && from)
            printf(": %s -> %s", from, to);
        else if (to)
            printf(": %s", to);
        printf("\n");
        const char *c = json_string_value(json_object_get(u, "comment"));
        while (c && *c) {
            size_t n = strcspn(c, "\n");
            printf("  %.*s\n", (int)n, c);
            c += n + (c[n] == '\n');
        }
    }
}

static int webhook_cmd(const char **pos, int np, const cli_flag *f, int nf, bool json_out)
{
    const char *offering = cli_get(f, nf, "offering");
    if (np != 2 || !offering) {
        case_usage(stderr);
        return 2;
    }
    char *eo = cli_escape(offering);
    char path[1024];
    snprintf(path, sizeof path, "/v1/offerings/%s/support/webhook", eo ? eo : "");
    free(eo);
    json_t *body = NULL, *j = NULL;
    const char *method;
    if (!strcmp(pos[1], "set")) {
        const char *url = cli_get(f, nf, "url");
        if (!url) {
            case_usage(stderr);
            return 2;
        }
        body = json_pack("{s:s, s:b}", "url", url, "rotate_secret",
                         cli_get(f, nf, "rotate-secret") != NULL);
        method = "PUT";
    } else if (!strcmp(pos[1], "get")) {
        method = "GET";
    } else if (!strcmp(pos[1], "delete")) {
        method = "DELETE";
    } else {
        case_usage(stderr);
        return 2;
    }
    int rc = call(method, path, body, &j);
    json_decref(body);
    if (!rc && json_out) {
        cli_print(j ? j : json_object(), true);
    } else if (!rc && !strcmp(method, "DELETE")) {
        printf("offering %s: no webhook; its cases wait on the platform until one is set\n",
               offering);
    } else if (!rc) {
        printf("offering %s: cases go to %s\n", offering,
               json_string_value(json_object_get(j, "url")));
        printf("  signed in %s: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">; "
               "refuse a t more than %lld s off your clock\n",
               json_string_value(json_object_get(j, "signature_header")),
               (long long)json_integer_value(json_object_get(j, "replay_window_seconds")));
        const char *secret = json_string_value(json_object_get(j, "secret"));
        if (secret)
            printf("  secret (shown this once; give it to your receiver): %s\n", secret);
    }
    json_decref(j);
    return rc;
}

int cli_case(int argc, char **argv)
{
    cli_flag f[12];
    const char *pos[3];
    int nf, np;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        case_usage(stdout);
        return 0;
    }
    if (cli_parse_flags(argc, argv, 1, f, ARRAY_LEN(f), &nf, pos, 3, &np) || np < 1) {
        case_usage(stderr);
        return 2;
    }
    bool json_out = str_eq(cli_get(f, nf, "output"), "json");
    if (!strcmp(pos[0], "webhook"))
        return webhook_cmd(pos, np, f, nf, json_out);
    if (!strcmp(pos[0], "create") && np == 1) {
        const char *sev = cli_get(f, nf, "severity"), *inst = cli_get(f, nf, "instance");
        int64_t n = 0;
        if (!sev || str_to_i64(sev, false, &n)) {
            fprintf(stderr, "osbill case create: --severity is 1 (critical) to 4 (a question)\n");
            return 2;
        }
        json_t *body = json_pack("{s:I}", "severity", (json_int_t)n);
        const char *text[][2] = {{"subject", cli_get(f, nf, "subject")},
                                 {"description", cli_get(f, nf, "description")},
                                 {"instance_id", inst}};
        for (size_t i = 0; i < ARRAY_LEN(text); i++)
            if (text[i][1])
                json_object_set_new(body, text[i][0], json_string(text[i][1]));
        json_t *j = NULL;
        int rc = call("POST", "/v1/support/cases", body, &j);
        json_decref(body);
        if (!rc && json_out)
            cli_print(j, true);
        else if (!rc)
            print_case(j);
        json_decref(j);
        return rc;
    }
    if (!strcmp(pos[0], "list") && np == 1) {
        char path[2048] = "/v1/support/cases", more[1024] = "osbill case list";
        static const char *const q[][2] = {{"status", "status"},        {"instance", "instance_id"},
                                           {"offering", "offering_id"}, {"account", "account_id"},
                                           {"limit", "limit"},          {"start", "start"}};
        cli_list_query(f, nf, q, ARRAY_LEN(q), path, sizeof path, more, sizeof more);
        if (cli_get(f, nf, "missed")) {
            cli_add_query(path, sizeof path, "first_response", "missed");
            size_t len = strlen(more);
            snprintf(more + len, sizeof more - len, " --missed");
        }
        json_t *j = NULL;
        int rc = call("GET", path, NULL, &j);
        if (!rc && json_out)
            cli_print(j, true);
        else if (!rc) {
            cli_print_table(json_object_get(j, "resources"), case_columns, ARRAY_LEN(case_columns),
                            "no cases");
            cli_print_more(j, more);
        }
        json_decref(j);
        return rc;
    }
    if (np != 2 || (strcmp(pos[0], "show") != 0 && strcmp(pos[0], "update") != 0)) {
        case_usage(stderr);
        return 2;
    }
    char *eid = cli_escape(pos[1]);
    char path[1024];
    snprintf(path, sizeof path, "/v1/support/cases/%s", eid ? eid : "");
    free(eid);
    json_t *j = NULL;
    int rc;
    if (!strcmp(pos[0], "update")) {
        const char *comment = cli_get(f, nf, "comment"), *status = cli_get(f, nf, "status");
        if (!comment && !status) {
            fprintf(stderr, "osbill case update: give --comment TEXT, --status S or both\n");
            return 2;
        }
        json_t *body = json_object();
        if (comment)
            json_object_set_new(body, "comment", json_string(comment));
        if (status)
            json_object_set_new(body, "status", json_string(status));
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "/updates");
        rc = call("POST", path, body, &j);
        json_decref(body);
    } else {
        rc = call("GET", path, NULL, &j);
    }
    if (!rc && json_out) {
        cli_print(j, true);
    } else if (!rc) {
        print_case(j);
        print_updates(json_object_get(j, "updates"));
        const json_t *ds = json_object_get(j, "deliveries");
        if (ds) {
            printf("\ndeliveries to the provider's webhook:\n");
            cli_print_table(ds, delivery_columns, ARRAY_LEN(delivery_columns), "none");
        }
    }
    json_decref(j);
    return rc;
}
