/* osbill offering: the provider's onboarding from the command line — create and edit an
 * offering, see its six steps, enable IAM, limited visibility and the allowlist, the
 * listing and publication reviews, the catalog.json export, and the global catalog. Every
 * command takes --output json for scripts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"

#define MAX_FLAGS 32

static void usage(FILE *to)
{
    fprintf(to,
            "usage: osbill offering COMMAND [options] [--output json]\n"
            "  create --name N --display-name D [--file F.json] [--account ID] [--set K=V]...\n"
            "  list [--account ID]            get ID            steps ID\n"
            "  update ID [--file F.json] [--set K=V]... [--unset K]...\n"
            "  delete ID\n"
            "  iam ID                         enable IAM: service ID, API key, dashboard client\n"
            "  redirect-uris ID --uri URI...  the dashboard client's redirect URIs\n"
            "  visibility ID draft|limited\n"
            "  allow ID ACCOUNT | disallow ID ACCOUNT | allowlist ID\n"
            "  listing ID submit|approve|request-changes [--comment C]\n"
            "  publication ID request|approve|request-changes|comment [--comment C]\n"
            "  reviews ID\n"
            "  catalog-json ID [--out FILE]   the broker's catalog.json\n"
            "  search [--tag T] [--query TEXT]  the global catalog\n"
            "plans:\n"
            "  plan-create ID [--file PLAN.json] [--set K=V]...   plans ID\n"
            "  plan-update ID PLAN [--file F] [--set K=V]...      plan-delete ID PLAN\n"
            "  plan-deprecate ID PLAN         plan-approve ID PLAN (operator)\n"
            "  pricing ID PLAN [--file PRICING.json] [--effective-month YYYY-MM]\n"
            "brokers:\n"
            "  broker-register ID --region R --url URL [--user U] [--api-version 2.17]\n"
            "                  (password from OSB_BROKER_PASSWORD; no --user: bearer auth)\n"
            "  brokers ID    broker-delete ID BROKER    deployments ID\n"
            "  deploy ID PLAN REGION          undeploy ID PLAN REGION\n"
            "  validate ID [--broker B] [--timeout S] [--wait N]   scorecards ID   scorecard ID SC\n"
            "--set K=V: V is JSON when it starts with { [ or \" or is true/false/null, else text.\n");
}

/* Merges --file and --set/--unset into body; 0, or 2 after printing why. */
static int body_from_flags(const cli_flag *f, int nf, json_t *body)
{
    const char *file = cli_get(f, nf, "file");
    if (file) {
        json_error_t err;
        json_t *j = json_load_file(file, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(j)) {
            fprintf(stderr, "osbill: %s: %s (line %d)\n", file,
                    j ? "not a JSON object" : err.text, err.line);
            json_decref(j);
            return 2;
        }
        json_object_update(body, j);
        json_decref(j);
    }
    for (int i = 0; i < nf; i++) {
        if (!strcmp(f[i].name, "set")) {
            const char *eq = strchr(f[i].value, '=');
            if (!eq || eq == f[i].value) {
                fprintf(stderr, "osbill: --set wants KEY=VALUE, not '%s'\n", f[i].value);
                return 2;
            }
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(eq - f[i].value), f[i].value);
            /* Objects, arrays, booleans, null and quoted strings as JSON; the rest as text,
             * so decimals such as 0.87 stay exact strings and never become JSON reals. */
            const char *val = eq + 1;
            bool as_json = strchr("{[\"", val[0]) && val[0] ? true
                           : !strcmp(val, "true") || !strcmp(val, "false") || !strcmp(val, "null");
            json_t *v = as_json ? json_loads(val, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL)
                                : NULL;
            if (as_json && !v) {
                fprintf(stderr, "osbill: --set %s: the value is not valid JSON\n", key);
                return 2;
            }
            json_object_set_new(body, key, v ? v : json_string(val));
        } else if (!strcmp(f[i].name, "unset")) {
            json_object_set_new(body, f[i].value, json_null());
        }
    }
    return 0;
}

/* The steps as a console would show them. */
static void print_steps(const json_t *offering)
{
    size_t i;
    json_t *s;
    printf("%s (%s): %s\n", json_string_value(json_object_get(offering, "name")),
           json_string_value(json_object_get(offering, "id")),
           json_string_value(json_object_get(offering, "visibility")));
    json_array_foreach(json_object_get(offering, "steps"), i, s) {
        bool done = json_is_true(json_object_get(s, "complete"));
        printf("  [%s] %d. %s\n", done ? "x" : " ",
               (int)json_integer_value(json_object_get(s, "step")),
               json_string_value(json_object_get(s, "title")));
        size_t k;
        json_t *m;
        json_array_foreach(json_object_get(s, "missing"), k, m)
            printf("        missing: %s\n", json_string_value(m));
    }
}

/* A scorecard, check by check. */
static void print_scorecard(const json_t *sc)
{
    const json_t *sum = json_object_get(sc, "summary");
    printf("scorecard %s: %s (%d passed, %d failed)\n",
           json_string_value(json_object_get(sc, "id")),
           json_string_value(json_object_get(sc, "state")),
           (int)json_integer_value(json_object_get(sum, "passed")),
           (int)json_integer_value(json_object_get(sum, "failed")));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(sc, "checks"), i, c) {
        bool ok = json_is_true(json_object_get(c, "passed"));
        const json_t *actual = json_object_get(c, "actual");
        printf("  [%s] %-34s expected %s", ok ? "pass" : "FAIL",
               json_string_value(json_object_get(c, "name")),
               json_string_value(json_object_get(c, "expected")));
        if (!ok) {
            if (json_object_get(actual, "status"))
                printf("; got %d", (int)json_integer_value(json_object_get(actual, "status")));
            else if (json_object_get(actual, "error"))
                printf("; %s", json_string_value(json_object_get(actual, "error")));
            const char *why = json_string_value(json_object_get(actual, "reason"));
            if (why)
                printf(" (%s)", why);
        }
        printf("\n");
    }
}

/* The nth positional argument, percent-encoded for a path. */
static char *seg(const char **pos, int np, int n)
{
    return n < np ? cli_escape(pos[n]) : NULL;
}

int cli_offering(int argc, char **argv)
{
    cli_flag f[MAX_FLAGS];
    const char *pos[4];
    int nf, np;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    if (cli_parse_flags(argc, argv, 1, f, MAX_FLAGS, &nf, pos, 4, &np) || np < 1) {
        usage(stderr);
        return 2;
    }
    bool json_out = str_eq(cli_get(f, nf, "output"), "json");
    const char *verb = pos[0], *id = np > 1 ? pos[1] : NULL, *arg = np > 2 ? pos[2] : NULL;
    char *eid = id ? cli_escape(id) : NULL, *earg = arg ? cli_escape(arg) : NULL;
    char *e3 = seg(pos, np, 3);
    bool scorecard_view = false;
    char path[2048];
    const char *method = "GET";
    json_t *body = NULL, *out = NULL, *s = NULL;
    int rc = 2;
    bool steps_view = false;
#define NEED(x) do { if (!(x)) goto usage; } while (0)
    if (!strcmp(verb, "create")) {
        NEED(cli_get(f, nf, "name") && cli_get(f, nf, "display-name"));
        body = json_object();
        if ((rc = body_from_flags(f, nf, body)))
            goto out;
        json_object_set_new(body, "name", json_string(cli_get(f, nf, "name")));
        json_object_set_new(body, "display_name", json_string(cli_get(f, nf, "display-name")));
        if (cli_get(f, nf, "account"))
            json_object_set_new(body, "account_id", json_string(cli_get(f, nf, "account")));
        method = "POST";
        snprintf(path, sizeof path, "/v1/offerings");
        steps_view = true;
    } else if (!strcmp(verb, "list")) {
        char *a = cli_get(f, nf, "account") ? cli_escape(cli_get(f, nf, "account")) : NULL;
        snprintf(path, sizeof path, "/v1/offerings%s%s", a ? "?account_id=" : "", a ? a : "");
        free(a);
    } else if (!strcmp(verb, "get") || !strcmp(verb, "steps")) {
        NEED(id);
        snprintf(path, sizeof path, "/v1/offerings/%s", eid);
        steps_view = !strcmp(verb, "steps");
    } else if (!strcmp(verb, "update")) {
        NEED(id);
        body = json_object();
        if ((rc = body_from_flags(f, nf, body)))
            goto out;
        method = "PATCH";
        snprintf(path, sizeof path, "/v1/offerings/%s", eid);
        steps_view = true;
    } else if (!strcmp(verb, "delete")) {
        NEED(id);
        method = "DELETE";
        snprintf(path, sizeof path, "/v1/offerings/%s", eid);
    } else if (!strcmp(verb, "iam")) {
        NEED(id);
        method = "POST";
        snprintf(path, sizeof path, "/v1/offerings/%s/iam", eid);
    } else if (!strcmp(verb, "redirect-uris")) {
        NEED(id);
        json_t *uris = json_array();
        for (int i = 0; i < nf; i++)
            if (!strcmp(f[i].name, "uri"))
                json_array_append_new(uris, json_string(f[i].value));
        body = json_pack("{s:o}", "redirect_uris", uris);
        method = "PATCH";
        snprintf(path, sizeof path, "/v1/offerings/%s/iam", eid);
        steps_view = true;
    } else if (!strcmp(verb, "visibility")) {
        NEED(id && arg);
        body = json_pack("{s:s}", "visibility", arg);
        method = "POST";
        snprintf(path, sizeof path, "/v1/offerings/%s/visibility", eid);
        steps_view = true;
    } else if (!strcmp(verb, "allow") || !strcmp(verb, "disallow")) {
        NEED(id && arg);
        method = !strcmp(verb, "allow") ? "PUT" : "DELETE";
        snprintf(path, sizeof path, "/v1/offerings/%s/allowlist/%s", eid, earg);
    } else if (!strcmp(verb, "allowlist")) {
        NEED(id);
        snprintf(path, sizeof path, "/v1/offerings/%s/allowlist", eid);
    } else if (!strcmp(verb, "listing") || !strcmp(verb, "publication")) {
        NEED(id && arg);
        char action[32];
        snprintf(action, sizeof action, "%s", arg);
        for (char *c = action; *c; c++)
            if (*c == '-')
                *c = '_';
        body = json_pack("{s:s}", "action", action);
        if (cli_get(f, nf, "comment"))
            json_object_set_new(body, "comment", json_string(cli_get(f, nf, "comment")));
        method = "POST";
        snprintf(path, sizeof path, "/v1/offerings/%s/%s", eid,
                 !strcmp(verb, "listing") ? "listing/review" : "publication");
        steps_view = true;
    } else if (!strcmp(verb, "reviews")) {
        NEED(id);
        snprintf(path, sizeof path, "/v1/offerings/%s/reviews", eid);
    } else if (!strcmp(verb, "catalog-json")) {
        NEED(id);
        snprintf(path, sizeof path, "/v1/offerings/%s/catalog.json", eid);
    } else if (!strcmp(verb, "plan-create") || !strcmp(verb, "plan-update")) {
        bool create = !strcmp(verb, "plan-create");
        NEED(id && (create || arg));
        body = json_object();
        if ((rc = body_from_flags(f, nf, body)))
            goto out;
        method = create ? "POST" : "PATCH";
        snprintf(path, sizeof path, "/v1/offerings/%s/plans%s%s", eid, create ? "" : "/",
                 create ? "" : earg);
    } else if (!strcmp(verb, "plans")) {
        NEED(id);
        snprintf(path, sizeof path, "/v1/offerings/%s/plans", eid);
    } else if (!strcmp(verb, "plan-delete")) {
        NEED(id && arg);
        method = "DELETE";
        snprintf(path, sizeof path, "/v1/offerings/%s/plans/%s", eid, earg);
    } else if (!strcmp(verb, "plan-deprecate") || !strcmp(verb, "plan-approve")) {
        NEED(id && arg);
        method = "POST";
        snprintf(path, sizeof path, "/v1/offerings/%s/plans/%s/%s", eid, earg,
                 !strcmp(verb, "plan-deprecate") ? "deprecate" : "approve");
    } else if (!strcmp(verb, "pricing")) {
        NEED(id && arg);
        snprintf(path, sizeof path, "/v1/offerings/%s/plans/%s/pricing", eid, earg);
        if (cli_get(f, nf, "file")) {
            json_t *pricing = json_load_file(cli_get(f, nf, "file"), JSON_REJECT_DUPLICATES, NULL);
            if (!json_is_object(pricing)) {
                fprintf(stderr, "osbill: %s is not a JSON object\n", cli_get(f, nf, "file"));
                json_decref(pricing);
                goto out;
            }
            body = json_pack("{s:o}", "pricing", pricing);
            if (cli_get(f, nf, "effective-month"))
                json_object_set_new(body, "effective_month",
                                    json_string(cli_get(f, nf, "effective-month")));
            method = "PUT";
        }
    } else if (!strcmp(verb, "broker-register")) {
        NEED(id && cli_get(f, nf, "region") && cli_get(f, nf, "url"));
        const char *user = cli_get(f, nf, "user"), *pw = getenv("OSB_BROKER_PASSWORD");
        if (user && (!pw || !*pw)) {
            fprintf(stderr, "osbill: set OSB_BROKER_PASSWORD to the broker's Basic password\n");
            goto out;
        }
        body = json_pack("{s:s, s:s, s:o}", "region", cli_get(f, nf, "region"), "url",
                         cli_get(f, nf, "url"), "auth",
                         user ? json_pack("{s:s, s:s, s:s}", "type", "basic", "username", user,
                                          "password", pw)
                              : json_pack("{s:s}", "type", "bearer"));
        if (cli_get(f, nf, "api-version"))
            json_object_set_new(body, "api_version", json_string(cli_get(f, nf, "api-version")));
        method = "POST";
        snprintf(path, sizeof path, "/v1/offerings/%s/brokers", eid);
    } else if (!strcmp(verb, "brokers") || !strcmp(verb, "deployments") ||
               !strcmp(verb, "scorecards")) {
        NEED(id);
        snprintf(path, sizeof path, "/v1/offerings/%s/%s", eid, verb);
    } else if (!strcmp(verb, "broker-delete")) {
        NEED(id && arg);
        method = "DELETE";
        snprintf(path, sizeof path, "/v1/offerings/%s/brokers/%s", eid, earg);
    } else if (!strcmp(verb, "deploy") || !strcmp(verb, "undeploy")) {
        NEED(id && arg && e3);
        method = !strcmp(verb, "deploy") ? "PUT" : "DELETE";
        snprintf(path, sizeof path, "/v1/offerings/%s/plans/%s/deployments/%s", eid, earg, e3);
    } else if (!strcmp(verb, "validate")) {
        NEED(id);
        body = json_object();
        if (cli_get(f, nf, "broker"))
            json_object_set_new(body, "broker_id", json_string(cli_get(f, nf, "broker")));
        if (cli_get(f, nf, "timeout"))
            json_object_set_new(body, "timeout_s", json_integer(atoi(cli_get(f, nf, "timeout"))));
        method = "POST";
        snprintf(path, sizeof path, "/v1/offerings/%s/validate?wait=%d", eid,
                 cli_get(f, nf, "wait") ? atoi(cli_get(f, nf, "wait")) : 25);
        scorecard_view = true;
    } else if (!strcmp(verb, "scorecard")) {
        NEED(id && arg);
        snprintf(path, sizeof path, "/v1/offerings/%s/scorecards/%s", eid, earg);
        scorecard_view = true;
    } else if (!strcmp(verb, "search")) {
        char *t = cli_get(f, nf, "tag") ? cli_escape(cli_get(f, nf, "tag")) : NULL;
        char *qq = cli_get(f, nf, "query") ? cli_escape(cli_get(f, nf, "query")) : NULL;
        snprintf(path, sizeof path, "/v1/catalog?limit=500%s%s%s%s", t ? "&tag=" : "",
                 t ? t : "", qq ? "&q=" : "", qq ? qq : "");
        free(t);
        free(qq);
    } else {
        goto usage;
    }
    if (!(s = cli_session())) {
        rc = 1;
        goto out;
    }
    long status = 0;
    rc = cli_request(s, method, path, body, &out, &status);
    if (!rc) {
        if (!strcmp(verb, "catalog-json") && cli_get(f, nf, "out")) {
            if (json_dump_file(out, cli_get(f, nf, "out"), JSON_INDENT(2) | JSON_PRESERVE_ORDER)) {
                fprintf(stderr, "osbill: cannot write %s\n", cli_get(f, nf, "out"));
                rc = 1;
            } else if (!json_out) {
                printf("wrote %s\n", cli_get(f, nf, "out"));
            }
        } else if (steps_view && !json_out && json_object_get(out, "steps")) {
            print_steps(out);
        } else if (scorecard_view && !json_out && json_object_get(out, "checks")) {
            print_scorecard(out);
            if (!strcmp(verb, "validate") && status == 202)
                printf("still running: osbill offering scorecard %s %s\n", id,
                       json_string_value(json_object_get(out, "id")));
        } else if (out || json_out) {
            cli_print(out, json_out);
        }
        if (!strcmp(verb, "iam") && !json_out)
            fprintf(stderr, "osbill: the API key and the client secret above are shown only "
                            "now; store them with the broker's configuration.\n");
    }
    goto out;
usage:
    usage(stderr);
    rc = 2;
out:
#undef NEED
    free(eid);
    free(earg);
    free(e3);
    json_decref(body);
    json_decref(out);
    json_decref(s);
    return rc;
}
