/* http form: application/x-www-form-urlencoded bodies and Basic credentials, as OAuth 2.0
 * endpoints receive them. */
#include "http/http.h"

#include <string.h>
#include <strings.h>

static int decode_component(char *s)
{
    for (char *c = s; *c; c++)
        if (*c == '+')
            *c = ' ';
    return url_decode_inplace(s);
}

bool http_is_form(http_req *req)
{
    const char *ct = http_header(req, "Content-Type");
    const char *want = "application/x-www-form-urlencoded";
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

int http_form_value(http_req *req, const char *name, const char **out)
{
    const char *p = req->body.data ? req->body.data : "";
    const char *end = p + req->body.len;
    size_t nlen = strlen(name);
    const char *found = NULL;
    size_t found_len = 0;
    if (memchr(p, '\0', req->body.len))
        return OSB_E_INVAL;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        char *key = arena_strndup(&req->arena, p, (size_t)(kend - p));
        if (!key || decode_component(key) < 0)
            return OSB_E_INVAL;
        if (strlen(key) == nlen && strcmp(key, name) == 0) {
            if (found)
                return OSB_E_CONFLICT;
            found = eq ? eq + 1 : stop;
            found_len = (size_t)(stop - found);
        }
        p = stop + (amp ? 1 : 0);
    }
    if (!found)
        return OSB_E_NOTFOUND;
    char *v = arena_strndup(&req->arena, found, found_len);
    if (!v || decode_component(v) < 0)
        return OSB_E_INVAL;
    *out = v;
    return 0;
}

bool http_basic_credentials(http_req *req, const char **user, const char **password)
{
    const char *h = http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return false;
    h += 6;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    unsigned char *dec = arena_alloc(&req->arena, n + 1);
    if (!dec)
        return false;
    int len = b64_decode(h, n, dec, n);
    if (len <= 0)
        return false;
    dec[len] = '\0';
    if (memchr(dec, '\0', (size_t)len))
        return false;
    char *colon = strchr((char *)dec, ':');
    if (!colon)
        return false;
    *colon = '\0';
    char *u = (char *)dec, *pw = colon + 1;
    if (decode_component(u) < 0 || decode_component(pw) < 0)
        return false;
    *user = u;
    *password = pw;
    return true;
}
