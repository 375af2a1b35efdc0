/* osbill client commands: log in with an API key, keep the session, and call the platform
 * API. The session file holds the short-lived access token and the refresh token, readable
 * by its owner only (0600), as ssh keys are. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"

#define MAX_RESPONSE (16 << 20)

static long request_timeout_s = 60;

void cli_set_timeout(long seconds)
{
    request_timeout_s = seconds;
}

typedef struct {
    long status;
    buf body;
} response;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    response *r = ud;
    return buf_append(&r->body, p, size * n) ? 0 : size * n;
}

/* One HTTP request; body may be NULL. Returns 0 when a response arrived (any status). */
static int call(const char *method, const char *url, const char *token, const char *ctype,
                const char *body, response *r)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    struct curl_slist *h = NULL;
    char auth[8192];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (ctype) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
    }
    h = curl_slist_append(h, "Accept: application/json");
    buf_init(&r->body, MAX_RESPONSE);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, request_timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else
        fprintf(stderr, "osbill: %s: %s\n", url, curl_easy_strerror(rc));
    secure_wipe(auth, sizeof auth);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

/* ---------------------------------------------------------------- session */

static void session_path(char *out, size_t n)
{
    const char *home = getenv("OSBILL_HOME");
    if (home)
        snprintf(out, n, "%s/session.json", home);
    else
        snprintf(out, n, "%s/.osbill/session.json", getenv("HOME") ? getenv("HOME") : ".");
}

static int save_session(const json_t *s)
{
    char path[4096], dir[4096], tmp[4200];
    session_path(path, sizeof path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "osbill: cannot create %s: %s\n", dir, strerror(errno));
            return -1;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    mode_t old = umask(077);
    int rc = json_dump_file(s, tmp, JSON_COMPACT);
    umask(old);
    if (rc != 0 || chmod(tmp, 0600) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "osbill: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int token_request(const char *endpoint, const char *form, json_t *session)
{
    char url[2048];
    response r;
    snprintf(url, sizeof url, "%s/identity/token", endpoint);
    if (call("POST", url, NULL, "application/x-www-form-urlencoded", form, &r)) {
        buf_free(&r.body);
        return -1;
    }
    json_t *j = json_loadb(buf_cstr(&r.body), r.body.len, 0, NULL);
    int rc = -1;
    if (r.status == 200 && json_string_value(json_object_get(j, "access_token"))) {
        json_object_set_new(session, "endpoint", json_string(endpoint));
        json_object_set(session, "access_token", json_object_get(j, "access_token"));
        json_object_set(session, "expiration", json_object_get(j, "expiration"));
        if (json_object_get(j, "refresh_token"))
            json_object_set(session, "refresh_token", json_object_get(j, "refresh_token"));
        else
            json_object_del(session, "refresh_token");
        rc = 0;
    } else {
        const char *d = json_string_value(json_object_get(j, "error_description"));
        fprintf(stderr, "osbill: login failed (%ld): %s\n", r.status, d ? d : buf_cstr(&r.body));
    }
    json_decref(j);
    secure_wipe(r.body.data, r.body.cap);
    buf_free(&r.body);
    return rc;
}

/* "a b" -> "a%20b" for form bodies. */
static char *form_escape(const char *s)
{
    CURL *c = curl_easy_init();
    char *e = c ? curl_easy_escape(c, s, 0) : NULL;
    char *out = e ? strdup(e) : NULL;
    curl_free(e);
    curl_easy_cleanup(c);
    return out;
}

int cli_login(int argc, char **argv)
{
    const char *endpoint = NULL, *apikey = getenv("OSBILL_APIKEY");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--endpoint") && i + 1 < argc)
            endpoint = argv[++i];
        else if (!strcmp(argv[i], "--apikey") && i + 1 < argc)
            apikey = argv[++i];
        else {
            fprintf(stderr, "usage: osbill login --endpoint URL --apikey KEY\n");
            return 2;
        }
    }
    if (!endpoint || !apikey) {
        fprintf(stderr, "usage: osbill login --endpoint URL --apikey KEY (or OSBILL_APIKEY)\n");
        return 2;
    }
    char *key = form_escape(apikey);
    if (!key)
        return 1;
    size_t n = strlen(key) + 128;
    char *form = malloc(n);
    snprintf(form, n, "grant_type=urn%%3Aibm%%3Aparams%%3Aoauth%%3Agrant-type%%3Aapikey&apikey=%s",
             key);
    json_t *s = json_object();
    int rc = token_request(endpoint, form, s);
    secure_wipe(form, n);
    secure_wipe(key, strlen(key));
    free(form);
    free(key);
    if (!rc && !(rc = save_session(s)))
        printf("logged in to %s\n", endpoint);
    json_decref(s);
    return rc ? 1 : 0;
}

/* The saved session with a usable access token, refreshed when it is about to expire. */
json_t *cli_session(void)
{
    char path[4096];
    session_path(path, sizeof path);
    json_t *s = json_load_file(path, 0, NULL);
    if (!s) {
        fprintf(stderr, "osbill: not logged in (osbill login --endpoint URL --apikey KEY)\n");
        return NULL;
    }
    int64_t exp = json_integer_value(json_object_get(s, "expiration"));
    const char *refresh = json_string_value(json_object_get(s, "refresh_token"));
    if (exp - time_now_ms() / 1000 < 60) {
        char *rt = refresh ? form_escape(refresh) : NULL, *form = NULL;
        int rc = -1;
        if (rt && asprintf(&form, "grant_type=refresh_token&refresh_token=%s", rt) > 0) {
            rc = token_request(json_string_value(json_object_get(s, "endpoint")), form, s);
            secure_wipe(form, strlen(form));
            free(form);
        }
        if (rt)
            secure_wipe(rt, strlen(rt));
        free(rt);
        if (rc || save_session(s)) {
            fprintf(stderr, "osbill: the session has expired; log in again\n");
            json_decref(s);
            return NULL;
        }
    }
    return s;
}

/* ---------------------------------------------------------------- commands */

typedef cli_flag flag;

/* --name value pairs, --bool flags (value "true"), and positional arguments. */
int cli_parse_flags(int argc, char **argv, int from, cli_flag *flags, int maxf, int *nf,
                    const char **pos, int maxp, int *np)
{
    *nf = *np = 0;
    for (int i = from; i < argc; i++) {
        if (!strncmp(argv[i], "--", 2)) {
            if (*nf == maxf)
                return -1;
            flags[*nf].name = argv[i] + 2;
            bool boolean = !strcmp(argv[i], "--public") || !strcmp(argv[i], "--force") ||
                           !strcmp(argv[i], "--missed") || !strcmp(argv[i], "--rotate-secret");
            flags[*nf].value = boolean ? "true" : (i + 1 < argc ? argv[++i] : NULL);
            if (!flags[*nf].value)
                return -1;
            (*nf)++;
        } else {
            if (*np == maxp)
                return -1;
            pos[(*np)++] = argv[i];
        }
    }
    return 0;
}

const char *cli_get(const cli_flag *f, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].name, name))
            return f[i].value;
    return NULL;
}

char *cli_escape(const char *s)
{
    return form_escape(s ? s : "");
}

static char *q(const char *s)
{
    return cli_escape(s);
}

int cli_request(json_t *s, const char *method, const char *path, const json_t *body, json_t **out,
                long *status)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc = cli_request_text(s, method, path, text, out, status);
    free(text);
    return rc;
}

int cli_request_text(json_t *s, const char *method, const char *path, const char *text,
                     json_t **out, long *status)
{
    char url[4096];
    response r;
    *out = NULL;
    snprintf(url, sizeof url, "%s%s", json_string_value(json_object_get(s, "endpoint")), path);
    int rc = call(method, url, json_string_value(json_object_get(s, "access_token")),
                  text ? "application/json" : NULL, text, &r);
    if (rc) {
        buf_free(&r.body);
        return 1;
    }
    *status = r.status;
    json_t *j = json_loadb(buf_cstr(&r.body), r.body.len, 0, NULL);
    if (r.status >= 400) {
        json_t *errs = json_object_get(j, "errors");
        size_t i;
        json_t *e;
        json_array_foreach(errs, i, e)
        {
            const char *target = json_string_value(json_object_get(e, "target"));
            fprintf(stderr, "osbill: %ld: %s%s%s%s\n", r.status,
                    json_string_value(json_object_get(e, "message")), target ? " [" : "",
                    target ? target : "", target ? "]" : "");
        }
        if (!json_array_size(errs))
            fprintf(stderr, "osbill: %ld: %s\n", r.status, buf_cstr(&r.body));
        rc = 1;
    }
    *out = j;
    buf_free(&r.body);
    return rc;
}

int cli_request_raw(json_t *s, const char *path, char **body, size_t *n, long *status)
{
    char url[4096];
    response r;
    *body = NULL;
    snprintf(url, sizeof url, "%s%s", json_string_value(json_object_get(s, "endpoint")), path);
    int rc =
        call("GET", url, json_string_value(json_object_get(s, "access_token")), NULL, NULL, &r);
    if (rc) {
        buf_free(&r.body);
        return 1;
    }
    *status = r.status;
    if (r.status >= 400) {
        fprintf(stderr, "osbill: %ld: %s\n", r.status, buf_cstr(&r.body));
        buf_free(&r.body);
        return 1;
    }
    *n = r.body.len;
    buf_cstr(&r.body);
    *body = buf_take(&r.body);
    if (!*body)
        *body = strdup("");
    return *body ? 0 : 1;
}

void cli_print(const json_t *j, bool json_out)
{
    if (!j)
        return;
    char *text = json_dumps(j, json_out ? JSON_COMPACT : JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "");
    free(text);
}

/* An account's suspension or reactivation, as a line. */
static void print_account_state(const json_t *j)
{
    printf("account %s: %s (%lld instances changing)\n",
           json_string_value(json_object_get(j, "account_id")),
           json_string_value(json_object_get(j, "state")),
           (long long)json_integer_value(json_object_get(j, "instances_changing")));
}

/* Calls and prints the answer: JSON, or human when given and not --output json. */
static int run(json_t *s, const char *method, const char *path, json_t *body, bool json_out,
               void (*human)(const json_t *))
{
    json_t *j;
    long status = 0;
    int rc = cli_request(s, method, path, body, &j, &status);
    if (!rc && human && !json_out && j)
        human(j);
    else if (!rc)
        cli_print(j, json_out);
    json_decref(j);
    return rc;
}

static json_t *role_list(const char *roles)
{
    json_t *a = json_array();
    char *copy = strdup(roles ? roles : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(a, json_pack("{s:s}", "role_id", t));
    free(copy);
    return a;
}

int cli_api(const char *group, int argc, char **argv)
{
    flag f[16];
    const char *pos[4];
    int nf, np;
    if (cli_parse_flags(argc, argv, 1, f, 16, &nf, pos, 4, &np)) {
        fprintf(stderr, "osbill %s: bad arguments (see osbill --help)\n", group);
        return 2;
    }
    bool json_out = str_eq(cli_get(f, nf, "output"), "json");
    const char *verb = np > 0 ? pos[0] : "";
    const char *id = np > 1 ? pos[1] : NULL;
    json_t *s = cli_session();
    if (!s)
        return 1;
    char path[2048];
    json_t *body = NULL;
    const char *method = "GET";
    int rc = 2;
    char *e1 = NULL;
    void (*human)(const json_t *) = NULL;
#define NEED(x)                                                                                    \
    do {                                                                                           \
        if (!(x))                                                                                  \
            goto usage;                                                                            \
    } while (0)
    if (!strcmp(group, "token")) {
        printf("%s\n", json_string_value(json_object_get(s, "access_token")));
        rc = 0;
        goto out;
    } else if (!strcmp(group, "account")) {
        if (!strcmp(verb, "create")) {
            NEED(cli_get(f, nf, "name") && cli_get(f, nf, "kind"));
            method = "POST";
            snprintf(path, sizeof path, "/v1/accounts");
            body = json_pack("{s:s, s:s}", "name", cli_get(f, nf, "name"), "kind",
                             cli_get(f, nf, "kind"));
            if (cli_get(f, nf, "currency"))
                json_object_set_new(body, "currency", json_string(cli_get(f, nf, "currency")));
            if (cli_get(f, nf, "owner-email"))
                json_object_set_new(
                    body, "owner",
                    json_pack("{s:s, s:s, s:s}", "email", cli_get(f, nf, "owner-email"), "name",
                              cli_get(f, nf, "owner-name") ? cli_get(f, nf, "owner-name") : "Owner",
                              "password",
                              cli_get(f, nf, "owner-password") ? cli_get(f, nf, "owner-password")
                                                               : ""));
        } else if (!strcmp(verb, "list")) {
            snprintf(path, sizeof path, "/v1/accounts");
        } else if (!strcmp(verb, "get")) {
            NEED(id);
            e1 = q(id);
            snprintf(path, sizeof path, "/v1/accounts/%s", e1);
        } else if (!strcmp(verb, "suspend") || !strcmp(verb, "reactivate")) {
            NEED(id);
            e1 = q(id);
            method = "POST";
            snprintf(path, sizeof path, "/v1/accounts/%s/%s", e1, verb);
            human = print_account_state;
        } else {
            goto usage;
        }
    } else if (!strcmp(group, "user")) {
        if (!strcmp(verb, "create")) {
            NEED(cli_get(f, nf, "account") && cli_get(f, nf, "email") && cli_get(f, nf, "name") &&
                 cli_get(f, nf, "password"));
            method = "POST";
            snprintf(path, sizeof path, "/v1/users");
            body = json_pack("{s:s, s:s, s:s, s:s}", "account_id", cli_get(f, nf, "account"),
                             "email", cli_get(f, nf, "email"), "name", cli_get(f, nf, "name"),
                             "password", cli_get(f, nf, "password"));
        } else if (!strcmp(verb, "list")) {
            NEED(cli_get(f, nf, "account"));
            e1 = q(cli_get(f, nf, "account"));
            snprintf(path, sizeof path, "/v1/users?account_id=%s", e1);
        } else {
            goto usage;
        }
    } else if (!strcmp(group, "serviceid")) {
        if (!strcmp(verb, "create")) {
            NEED(cli_get(f, nf, "account") && cli_get(f, nf, "name"));
            method = "POST";
            snprintf(path, sizeof path, "/v1/serviceids");
            body = json_pack("{s:s, s:s, s:s}", "account_id", cli_get(f, nf, "account"), "name",
                             cli_get(f, nf, "name"), "description",
                             cli_get(f, nf, "description") ? cli_get(f, nf, "description") : "");
        } else if (!strcmp(verb, "list")) {
            NEED(cli_get(f, nf, "account"));
            e1 = q(cli_get(f, nf, "account"));
            snprintf(path, sizeof path, "/v1/serviceids?account_id=%s", e1);
        } else if (!strcmp(verb, "get") || !strcmp(verb, "delete")) {
            NEED(id);
            e1 = q(id);
            method = !strcmp(verb, "get") ? "GET" : "DELETE";
            snprintf(path, sizeof path, "/v1/serviceids/%s", e1);
        } else {
            goto usage;
        }
    } else if (!strcmp(group, "apikey")) {
        if (!strcmp(verb, "create")) {
            NEED(cli_get(f, nf, "name"));
            method = "POST";
            snprintf(path, sizeof path, "/v1/apikeys");
            /* Without --iam-id: a key for the caller, whose identity the token names. */
            body = json_pack("{s:s}", "name", cli_get(f, nf, "name"));
            if (cli_get(f, nf, "iam-id"))
                json_object_set_new(body, "iam_id", json_string(cli_get(f, nf, "iam-id")));
            if (cli_get(f, nf, "account"))
                json_object_set_new(body, "account_id", json_string(cli_get(f, nf, "account")));
            if (cli_get(f, nf, "description"))
                json_object_set_new(body, "description",
                                    json_string(cli_get(f, nf, "description")));
            if (!cli_get(f, nf, "iam-id")) {
                fprintf(stderr, "osbill apikey create: --iam-id is required\n");
                goto out;
            }
        } else if (!strcmp(verb, "list")) {
            if (cli_get(f, nf, "iam-id")) {
                e1 = q(cli_get(f, nf, "iam-id"));
                snprintf(path, sizeof path, "/v1/apikeys?iam_id=%s", e1);
            } else {
                snprintf(path, sizeof path, "/v1/apikeys");
            }
        } else if (!strcmp(verb, "get") || !strcmp(verb, "delete") || !strcmp(verb, "lock") ||
                   !strcmp(verb, "unlock")) {
            NEED(id);
            e1 = q(id);
            method = !strcmp(verb, "get") ? "GET" : !strcmp(verb, "lock") ? "POST" : "DELETE";
            snprintf(path, sizeof path, "/v1/apikeys/%s%s", e1,
                     !strcmp(verb, "lock") || !strcmp(verb, "unlock") ? "/lock" : "");
        } else {
            goto usage;
        }
    } else if (!strcmp(group, "policy")) {
        if (!strcmp(verb, "create")) {
            NEED(cli_get(f, nf, "account") && cli_get(f, nf, "subject") && cli_get(f, nf, "roles"));
            method = "POST";
            snprintf(path, sizeof path, "/v1/policies");
            json_t *rattrs =
                json_pack("[{s:s, s:s}]", "name", "accountId", "value", cli_get(f, nf, "account"));
            if (cli_get(f, nf, "service"))
                json_array_append_new(rattrs, json_pack("{s:s, s:s}", "name", "serviceName",
                                                        "value", cli_get(f, nf, "service")));
            if (cli_get(f, nf, "resource"))
                json_array_append_new(rattrs, json_pack("{s:s, s:s}", "name", "serviceInstance",
                                                        "value", cli_get(f, nf, "resource")));
            body = json_pack("{s:s, s:[{s:[{s:s, s:s}]}], s:o, s:[{s:o}]}", "type", "access",
                             "subjects", "attributes", "name", "iam_id", "value",
                             cli_get(f, nf, "subject"), "roles", role_list(cli_get(f, nf, "roles")),
                             "resources", "attributes", rattrs);
        } else if (!strcmp(verb, "list")) {
            NEED(cli_get(f, nf, "account"));
            e1 = q(cli_get(f, nf, "account"));
            snprintf(path, sizeof path, "/v1/policies?account_id=%s", e1);
        } else if (!strcmp(verb, "delete")) {
            NEED(id);
            e1 = q(id);
            method = "DELETE";
            snprintf(path, sizeof path, "/v1/policies/%s", e1);
        } else {
            goto usage;
        }
    } else if (!strcmp(group, "client")) {
        NEED(!strcmp(verb, "create") && cli_get(f, nf, "account") && cli_get(f, nf, "name"));
        method = "POST";
        snprintf(path, sizeof path, "/v1/clients");
        json_t *uris = json_array();
        for (int i = 0; i < nf; i++)
            if (!strcmp(f[i].name, "redirect-uri"))
                json_array_append_new(uris, json_string(f[i].value));
        body = json_pack("{s:s, s:s, s:o, s:b}", "account_id", cli_get(f, nf, "account"), "name",
                         cli_get(f, nf, "name"), "redirect_uris", uris, "public",
                         cli_get(f, nf, "public") != NULL);
        if (cli_get(f, nf, "service"))
            json_object_set_new(body, "service_name", json_string(cli_get(f, nf, "service")));
    } else if (!strcmp(group, "keys")) {
        NEED(!strcmp(verb, "rotate"));
        method = "POST";
        snprintf(path, sizeof path, "/identity/keys/rotate");
    }
    rc = run(s, method, path, body, json_out, human);
    goto out;
usage:
    fprintf(stderr, "osbill %s: missing or unknown arguments (see osbill --help)\n", group);
    rc = 2;
out:
#undef NEED
    curl_free(NULL);
    free(e1);
    json_decref(body);
    json_decref(s);
    return rc;
}
