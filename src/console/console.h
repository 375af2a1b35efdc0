/* console: the web console, plain HTML, CSS and JavaScript carried in the binary and served at
 * /console/. It holds no logic of its own: every page calls the platform API with the token
 * it gets through the platform's own /identity/authorize flow (PKCE, public client). */
#ifndef OSBILL_CONSOLE_H
#define OSBILL_CONSOLE_H

#include "http/http.h"
#include "iam/iam.h"

typedef struct console console;

/* base_url: where browsers reach the platform (its public URL), without a trailing slash;
 * the console's OAuth client is registered with base_url + "/console/" as its redirect URI. */
int console_open(iam *m, const char *base_url, console **out) WARN_UNUSED;
void console_routes(console *c, http_router *r);
void console_close(console *c);

#endif
