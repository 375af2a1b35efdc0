/* cli: the osbill command. Each subcommand is a function taking its own arguments. */
#ifndef OSBILL_CLI_H
#define OSBILL_CLI_H

int cli_init(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_login(int argc, char **argv);
/* Resource commands that call the platform API with the saved session. */
int cli_api(const char *group, int argc, char **argv);

/* ---- shared by the client commands ---- */
#include <jansson.h>
#include <stdbool.h>

typedef struct {
    const char *name;
    const char *value;
} cli_flag;
/* --name value pairs (--public: a boolean, "true"), and positional arguments. */
int cli_parse_flags(int argc, char **argv, int from, cli_flag *flags, int maxf, int *nf,
                    const char **pos, int maxp, int *np);
const char *cli_get(const cli_flag *f, int n, const char *name); /* last NULL when absent */
/* The saved session with a usable access token (refreshed if needed), or NULL (printed). */
json_t *cli_session(void);
/* Percent-encodes for a URL path segment or query value (curl_free not needed: malloc'd). */
char *cli_escape(const char *s);
/* Calls the platform API with the session's token; errors are printed with the fields they
 * name. 0 on 2xx; *out the parsed answer (json_decref; may be NULL), *status the status. */
int cli_request(json_t *s, const char *method, const char *path, const json_t *body, json_t **out,
                long *status);
/* The same with a JSON body sent as written (text may be NULL): numbers keep their digits. */
int cli_request_text(json_t *s, const char *method, const char *path, const char *text,
                     json_t **out, long *status);
/* A GET whose answer is not JSON (CSV, HTML): *body (malloc'd, NUL-terminated) of n bytes. */
int cli_request_raw(json_t *s, const char *path, char **body, size_t *n, long *status);
/* The timeout of every later request, in seconds (default 60). */
void cli_set_timeout(long seconds);
/* Pretty JSON, or compact with --output json. */
void cli_print(const json_t *j, bool json_out);
/* Appends ?key=value (or &key=value) to path, value percent-encoded; nothing for NULL. */
void cli_add_query(char *path, size_t n, const char *key, const char *value);
/* For a list command: each --flag of map ({flag, query name}) given is added to path's query
 * and, but --start, to more (the command that lists the next page). */
void cli_list_query(const cli_flag *f, int nf, const char *const (*map)[2], size_t n, char *path,
                    size_t pathlen, char *more, size_t morelen);
typedef struct {
    const char *label; /* table heading or field name */
    const char *path;  /* member, a.b for nested ones */
} cli_column;
/* One row a line under a heading, columns as wide as their widest cell (at most 8); none is
 * printed for no rows. */
void cli_print_table(const json_t *rows, const cli_column *cols, size_t n, const char *none);
/* After a page: how to get the next one (cmd --start N), from next_url's start. */
void cli_print_more(const json_t *page, const char *cmd);
/* osbill offering ... */
int cli_offering(int argc, char **argv);
/* osbill instance|key|reclamation ... (instance.c): the resource controller's resources. */
int cli_instance(int argc, char **argv);
int cli_key(int argc, char **argv);
int cli_reclamation(int argc, char **argv);
/* osbill usage ... (usage.c): metering. */
int cli_usage(int argc, char **argv);
/* osbill billing|invoice|statement ... (billing.c): months, invoices, statements. */
int cli_billing(int argc, char **argv);
int cli_invoice(int argc, char **argv);
int cli_statement(int argc, char **argv);
/* osbill case ... (support.c): support cases and an offering's support webhook. */
int cli_case(int argc, char **argv);

#endif
