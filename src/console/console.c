/* console: serves the web console's embedded files and its configuration (the OAuth client
 * and endpoints it signs in with). Pages get a strict Content-Security-Policy: scripts,
 * styles and API calls from this origin only, no framing. */
#include "console/console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const unsigned char *data;
    size_t len;
} embedded_file;

extern const embedded_file console_files[];
extern const size_t console_files_count;

struct console {
    char redirect_uri[600];
};

static const char *content_type(const char *name)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < ARRAY_LEN(types); i++)
        if (str_eq(dot, types[i][0]))
            return types[i][1];
    return "application/octet-stream";
}

static void security_headers(http_req *req)
{
    http_add_header(req, "Content-Security-Policy",
                    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' "
                    "data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                    "base-uri 'none'; object-src 'none'");
    http_add_header(req, "X-Content-Type-Options", "nosniff");
    http_add_header(req, "X-Frame-Options", "DENY");
    http_add_header(req, "Referrer-Policy", "no-referrer");
    /* small files: revalidate each time, so a new platform version shows at once */
    http_add_header(req, "Cache-Control", "no-cache");
}

static void send_file(http_req *req, const char *name)
{
    for (size_t i = 0; i < console_files_count; i++) {
        if (str_eq(console_files[i].name, name)) {
            security_headers(req);
            http_reply(req, 200, content_type(name), console_files[i].data, console_files[i].len);
            return;
        }
    }
    http_reply_error(req, 404, "not_found", "No such page of the console.", NULL);
}

static void to_index(http_req *req, void *ud)
{
    (void)ud;
    http_add_header(req, "Location", "/console/");
    http_reply(req, 301, NULL, NULL, 0);
}

static void index_page(http_req *req, void *ud)
{
    (void)ud;
    send_file(req, "index.html");
}

/* GET /console/config.json: what the console signs in with. */
static void config(http_req *req, void *ud)
{
    console *c = ud;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "client_id", IAM_CONSOLE_CLIENT,
                          "redirect_uri", c->redirect_uri, "authorize_url", "/identity/authorize",
                          "token_url", "/identity/token", "revoke_url", "/identity/revoke",
                          "logout_url", "/identity/logout");
    security_headers(req);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* Only the embedded files' names are found: no path reaches the file system. */
static void asset(http_req *req, void *ud)
{
    (void)ud;
    send_file(req, req->params[0]);
}

int console_open(iam *m, const char *base_url, console **out)
{
    console *c = calloc(1, sizeof *c);
    if (!c)
        return OSB_E_NOMEM;
    snprintf(c->redirect_uri, sizeof c->redirect_uri, "%s/console/", base_url);
    int rc = iam_console_client(m, c->redirect_uri);
    if (rc && rc != OSB_E_NOTFOUND) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void console_routes(console *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_GET, "/console", P, to_index, c);
    rc |= http_route(r, HTTP_GET, "/console/", P, index_page, c);
    rc |= http_route(r, HTTP_GET, "/console/config.json", P, config, c);
    rc |= http_route(r, HTTP_GET, "/console/:file", P, asset, c);
    if (rc)
        log_error("console: cannot register its routes");
}

void console_close(console *c)
{
    free(c);
}
