/* sdk sso: dashboard single sign-on against the platform's IAM (iam.md "Authorize flow").
 * osb_sso_require() sends a browser without a session to /identity/authorize (code flow,
 * PKCE S256, state bound to the browser by a signed cookie); GET /sso/callback exchanges the
 * code, verifies the access token with the JWKS cache and sets a signed session cookie that
 * ends with the token; with a session, POST /v2/authz decides per instance and action.
 * Nothing is stored: the cookies are signed, the PKCE verifier is derived from the state. */
#include "sdk/sdk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_TTL_S 600          /* a sign-in must come back within this */
#define PLATFORM_TIMEOUT_MS 5000 /* token exchange and access decisions */
#define MAX_ANSWER (64 << 10)
#define MAX_COOKIE 4096
#define MAX_RETURN_PATH 2048
#define MAX_CODE 512
#define NONCE_LEN 43             /* base64url of 32 bytes */
#define CC_MARGIN_S 60           /* renew the client's own token this long before expiry */
#define CC_RETRY_S 5             /* and after failing to get one, wait this long */

struct sdk_sso {
    char *platform_url, *client_id, *client_secret, *redirect_uri, *service_name;
    char *issuer, *authorize_url, *token_url, *authz_url;
    char *state_path;            /* the callback's path: the state cookie goes only there */
    char session_cookie[32];     /* "osb_sso_<8 hex of the client id>" */
    bool secure;                 /* https: cookies get Secure */
    bool started;
    unsigned char state_key[32], session_key[32], pkce_key[32];
    sdk_jwks *jwks;
    bool own_jwks;
    pthread_mutex_t mu;          /* the client credentials token below */
    char *cc_token;
    int64_t cc_renew_at;         /* seconds since the epoch */
    int64_t cc_retry_at;         /* after a failure, no new try before this */
    int64_t unreachable_until;   /* atomic: the platform did not answer, decisions fail fast */
};

typedef enum { AUTHZ_PERMIT, AUTHZ_DENY, AUTHZ_ERROR } authz_decision;

/* ---------------------------------------------------------------- encodings */

/* Appends "&name=value" (no '&' first), value percent-encoded. */
static int param(buf *b, const char *name, const char *value)
{
    int rc = buf_printf(b, "%s%s=", b->len ? "&" : "", name);
    return rc ? rc : buf_pct(b, value);
}

static int html_escape(buf *b, const char *s)
{
    int rc = 0;
    for (; s && *s && !rc; s++) {
        switch (*s) {
        case '&': rc = buf_puts(b, "&amp;"); break;
        case '<': rc = buf_puts(b, "&lt;"); break;
        case '>': rc = buf_puts(b, "&gt;"); break;
        case '"': rc = buf_puts(b, "&quot;"); break;
        case '\'': rc = buf_puts(b, "&#39;"); break;
        default: rc = buf_append(b, s, 1);
        }
    }
    return rc;
}

static bool b64url_of(const void *p, size_t n, char *out, size_t outsz)
{
    return b64url_encode(p, n, out, outsz) >= 0;
}

/* A JSON string claim without NUL bytes and shorter than max, or NULL. */
static const char *str_claim(const json_t *o, const char *name, size_t max)
{
    const json_t *v = json_object_get(o, name);
    const char *s = json_string_value(v);
    return s && *s && strlen(s) == json_string_length(v) && strlen(s) < max ? s : NULL;
}

/* ---------------------------------------------------------------- signed values */

/* "<base64url(JSON)>.<base64url(HMAC-SHA256(key, first part))>", malloc'd. */
static char *seal(const unsigned char key[32], const json_t *payload)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    if (!text)
        return NULL;
    size_t n = strlen(text), cap = b64_encoded_len(n) + 48;
    char *out = malloc(cap);
    int w = out ? b64url_encode(text, n, out, cap) : -1;
    free(text);
    unsigned char mac[32];
    if (w < 0 || cap - (size_t)w < 45) {
        free(out);
        return NULL;
    }
    hmac_sha256(key, 32, out, (size_t)w, mac);
    out[w] = '.';
    if (!b64url_of(mac, sizeof mac, out + w + 1, cap - (size_t)w - 1)) {
        free(out);
        return NULL;
    }
    return out;
}

/* The payload of a sealed value when its MAC is right and its "x" (expiry, seconds since
 * the epoch) is still ahead; NULL otherwise. The caller owns the result. */
static json_t *unseal(const unsigned char key[32], const char *value)
{
    if (!value)
        return NULL;
    size_t len = strnlen(value, MAX_COOKIE + 1);
    const char *dot = memchr(value, '.', len);
    if (len > MAX_COOKIE || !dot || dot == value)
        return NULL;
    size_t pn = (size_t)(dot - value);
    unsigned char mac[32];
    char want[64];
    hmac_sha256(key, 32, value, pn, mac);
    if (!b64url_of(mac, sizeof mac, want, sizeof want) || strlen(dot + 1) != strlen(want) ||
        !ct_equal(dot + 1, want, strlen(want)))
        return NULL;
    unsigned char raw[MAX_COOKIE];
    int n = b64url_decode(value, pn, raw, sizeof raw);
    if (n <= 0)
        return NULL;
    json_t *j = json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    const json_t *x = json_object_get(j, "x");
    if (!json_is_object(j) || !json_is_integer(x) ||
        json_integer_value(x) <= time_now_ms() / 1000) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---------------------------------------------------------------- answers */

static void no_store(http_req *req)
{
    http_add_header(req, "Cache-Control", "no-store");
    http_add_header(req, "Referrer-Policy", "no-referrer");
}

static void page(http_req *req, int status, const char *title, const char *message)
{
    buf b;
    buf_init(&b, 1 << 16);
    int rc = buf_puts(&b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                          "<title>");
    rc = rc ? rc : html_escape(&b, title);
    rc = rc ? rc : buf_puts(&b, "</title><style>body{font-family:system-ui,sans-serif;"
                                "max-width:36rem;margin:10vh auto;padding:0 1rem;color:#1d2330}"
                                "</style></head><body><h1>");
    rc = rc ? rc : html_escape(&b, title);
    rc = rc ? rc : buf_puts(&b, "</h1><p>");
    rc = rc ? rc : html_escape(&b, message);
    rc = rc ? rc : buf_puts(&b, "</p></body></html>");
    no_store(req);
    http_add_header(req, "X-Frame-Options", "DENY");
    http_add_header(req, "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
    if (rc)
        http_reply(req, 500, NULL, NULL, 0);
    else
        http_reply(req, status, "text/html; charset=utf-8", b.data, b.len);
    buf_free(&b);
}

static void set_cookie(const sdk_sso *s, http_req *req, const char *name, const char *value,
                       const char *path, int64_t max_age)
{
    buf b;
    buf_init(&b, MAX_COOKIE + 512);
    if (!buf_printf(&b, "%s=%s; Path=%s; Max-Age=%lld; HttpOnly; SameSite=Lax%s", name, value,
                    path, (long long)(max_age > 0 ? max_age : 0), s->secure ? "; Secure" : ""))
        http_add_header(req, "Set-Cookie", b.data);
    secure_wipe(b.data, b.cap);
    buf_free(&b);
}

/* The state cookie of one sign-in: its name carries the start of the state, so that sign-ins
 * in several tabs do not overwrite each other. */
static void state_cookie_name(const sdk_sso *s, const char *nonce, char out[48])
{
    snprintf(out, 48, "%s_s%.8s", s->session_cookie, nonce);
}

static bool nonce_valid(const char *n)
{
    if (!n || strlen(n) != NONCE_LEN)
        return false;
    for (; *n; n++)
        if (!((*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') ||
              *n == '-' || *n == '_'))
            return false;
    return true;
}

/* RFC 7636: the verifier of a sign-in, derived from its state with a key of this process, so
 * that nothing needs to be kept between the redirect and the callback. */
static void pkce_verifier(const sdk_sso *s, const char *nonce, char out[48])
{
    unsigned char mac[32];
    hmac_sha256(s->pkce_key, sizeof s->pkce_key, nonce, strlen(nonce), mac);
    if (!b64url_of(mac, sizeof mac, out, 48))
        out[0] = '\0';
    secure_wipe(mac, sizeof mac);
}

/* Where to come back to: the request's own path, when it is a plain local path. */
static const char *return_path(http_req *req)
{
    const char *p = req->path;
    if (!p || p[0] != '/' || p[1] == '/' || strlen(p) > MAX_RETURN_PATH)
        return "/";
    for (const char *c = p; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || *c == '\\')
            return "/";
    return p;
}

/* ---------------------------------------------------------------- sign-in */

static void begin_sign_in(sdk_sso *s, http_req *req)
{
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        page(req, 401, "Sign-in required", "Open the dashboard again to sign in.");
        return;
    }
    unsigned char raw[32];
    char nonce[48] = "", verifier[48] = "", challenge[48] = "", name[48];
    random_bytes(raw, sizeof raw);
    unsigned char digest[32];
    bool ok = b64url_of(raw, sizeof raw, nonce, sizeof nonce);
    if (ok) {
        pkce_verifier(s, nonce, verifier);
        sha256(verifier, strlen(verifier), digest);
        ok = verifier[0] && b64url_of(digest, sizeof digest, challenge, sizeof challenge);
        secure_wipe(verifier, sizeof verifier);
    }
    json_t *st = ok ? json_pack("{s:s, s:s, s:I}", "n", nonce, "r", return_path(req), "x",
                                (json_int_t)(time_now_ms() / 1000 + STATE_TTL_S))
                    : NULL;
    char *sealed = st ? seal(s->state_key, st) : NULL;
    json_decref(st);
    buf loc, q;
    buf_init(&loc, 16384);
    buf_init(&q, 16384);
    int rc = sealed ? 0 : OSB_E_NOMEM;
    rc = rc ? rc : param(&q, "response_type", "code");
    rc = rc ? rc : param(&q, "client_id", s->client_id);
    rc = rc ? rc : param(&q, "redirect_uri", s->redirect_uri);
    rc = rc ? rc : param(&q, "scope", "openid");
    rc = rc ? rc : param(&q, "state", nonce);
    rc = rc ? rc : param(&q, "code_challenge", challenge);
    rc = rc ? rc : param(&q, "code_challenge_method", "S256");
    rc = rc ? rc : buf_printf(&loc, "%s?%s", s->authorize_url, buf_cstr(&q));
    if (rc) {
        page(req, 500, "Sign-in unavailable", "The sign-in could not be started.");
    } else {
        state_cookie_name(s, nonce, name);
        set_cookie(s, req, name, sealed, s->state_path, STATE_TTL_S);
        no_store(req);
        http_add_header(req, "Location", loc.data);
        http_reply(req, 302, NULL, NULL, 0);
    }
    free(sealed);
    buf_free(&q);
    buf_free(&loc);
}

/* "Authorization: Basic ..." of the client (RFC 6749 2.3.1: both parts form-encoded first),
 * malloc'd; the caller wipes and frees it. */
static char *client_basic(const sdk_sso *s)
{
    buf pair;
    buf_init(&pair, 4096);
    char *line = NULL;
    if (!buf_pct(&pair, s->client_id) && !buf_puts(&pair, ":") &&
        !buf_pct(&pair, s->client_secret)) {
        size_t cap = b64_encoded_len(pair.len) + 32;
        if ((line = malloc(cap))) {
            int w = snprintf(line, cap, "Authorization: Basic ");
            if (b64_encode(pair.data, pair.len, line + w, cap - (size_t)w) < 0) {
                free(line);
                line = NULL;
            }
        }
    }
    secure_wipe(pair.data, pair.cap);
    buf_free(&pair);
    return line;
}

/* POSTs a form to the token endpoint with the client's credentials. */
static int token_request(const sdk_sso *s, const char *form, long *status, json_t **answer)
{
    char *auth = client_basic(s);
    *answer = NULL;
    if (!auth)
        return OSB_E_NOMEM;
    const char *headers[] = {auth, "Content-Type: application/x-www-form-urlencoded",
                             "Accept: application/json", NULL};
    buf out;
    buf_init(&out, MAX_ANSWER);
    int rc = sdk_http_call("POST", s->token_url, headers, form, PLATFORM_TIMEOUT_MS, MAX_ANSWER,
                           status, &out);
    sdk_wipe_free(auth);
    if (!rc)
        *answer = json_loadb(out.data ? out.data : "", out.len, JSON_REJECT_DUPLICATES, NULL);
    if (out.data)
        secure_wipe(out.data, out.cap);
    buf_free(&out);
    return rc;
}

/* Exchanges the code of a sign-in whose state checked out, and on success opens the session
 * and sends the browser back to where it started (back, from the state cookie). */
static void finish_sign_in(sdk_sso *s, http_req *req, const char *nonce, const char *code,
                           const char *back)
{
    char verifier[48];
    json_t *answer = NULL, *claims = NULL, *sess = NULL;
    char *sealed = NULL, *form_text = NULL;
    buf form;
    buf_init(&form, 8192);
    pkce_verifier(s, nonce, verifier);
    int rc = param(&form, "grant_type", "authorization_code");
    rc = rc ? rc : param(&form, "code", code);
    rc = rc ? rc : param(&form, "redirect_uri", s->redirect_uri);
    rc = rc ? rc : param(&form, "code_verifier", verifier);
    secure_wipe(verifier, sizeof verifier);
    form_text = rc ? NULL : buf_take(&form);
    if (form.data)
        secure_wipe(form.data, form.cap);
    buf_free(&form);
    long status = 0;
    rc = form_text ? token_request(s, form_text, &status, &answer) : OSB_E_NOMEM;
    sdk_wipe_free(form_text);
    if (rc || status >= 500) {
        page(req, 502, "Sign-in unavailable", "The platform cannot be reached; try again in a "
                                              "moment.");
        goto out;
    }
    if (status != 200) {
        /* invalid_grant: a used, expired or foreign code; nothing to retry with it. */
        const char *why = str_claim(answer, "error", 64);
        log_info("libosb: the platform refused a dashboard sign-in code (%ld %s)", status,
                 why ? why : "");
        page(req, 400, "Sign-in failed", "This sign-in cannot be completed; open the dashboard "
                                         "again.");
        goto out;
    }
    const char *token = json_string_value(json_object_get(answer, "access_token"));
    if (!token || sdk_jwks_verify(s->jwks, token, s->issuer, s->client_id, &claims)) {
        log_warn("libosb: the platform's access token for a dashboard sign-in does not verify");
        page(req, 502, "Sign-in failed", "The platform's answer could not be verified.");
        goto out;
    }
    const char *iam_id = str_claim(claims, "iam_id", sizeof ((osb_sso_user *)0)->iam_id);
    const char *account = str_claim(json_object_get(claims, "account"), "bss",
                                    sizeof ((osb_sso_user *)0)->account_id);
    json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
    int64_t now = time_now_ms() / 1000;
    if (!iam_id || !account || exp <= now) {
        page(req, 502, "Sign-in failed", "The platform's token does not name a user.");
        goto out;
    }
    sess = json_pack("{s:s, s:s, s:I}", "s", iam_id, "a", account, "x", exp);
    if (!sess || !(sealed = seal(s->session_key, sess))) {
        page(req, 500, "Sign-in failed", "The session could not be made.");
        goto out;
    }
    set_cookie(s, req, s->session_cookie, sealed, "/", exp - now);
    no_store(req);
    http_add_header(req, "Location", back);
    http_reply(req, 302, NULL, NULL, 0);
out:
    sdk_wipe_free(sealed);
    json_decref(answer);
    json_decref(claims);
    json_decref(sess);
}

static void callback(osb_http *h, void *ud)
{
    sdk_sso *s = ud;
    http_req *req = (http_req *)h;
    const char *state = http_query(req, "state"), *code = http_query(req, "code");
    const char *error = http_query(req, "error");
    char name[48];
    json_t *st = NULL;
    if (nonce_valid(state)) {
        state_cookie_name(s, state, name);
        st = unseal(s->state_key, http_cookie(req, name));
    }
    const json_t *n = json_object_get(st, "n");
    const char *back = json_string_value(json_object_get(st, "r"));
    /* The state must be the one this browser was sent off with. */
    if (!st || !json_is_string(n) || json_string_length(n) != NONCE_LEN ||
        !ct_equal(json_string_value(n), state, NONCE_LEN) || !back || back[0] != '/') {
        page(req, 400, "Sign-in failed", "This sign-in link is not valid here; open the "
                                         "dashboard again.");
        json_decref(st);
        return;
    }
    /* This sign-in is over whatever happens next. */
    set_cookie(s, req, name, "", s->state_path, 0);
    if (error && strcmp(error, "access_denied") == 0)
        page(req, 403, "Access not granted", "The sign-in was declined.");
    else if (error)
        page(req, 400, "Sign-in failed", "The platform could not sign you in; open the "
                                         "dashboard again to retry.");
    else if (!code || !*code || strlen(code) > MAX_CODE)
        page(req, 400, "Sign-in failed", "The platform's answer holds no code.");
    else
        finish_sign_in(s, req, state, code, back);
    json_decref(st);
}

/* ---------------------------------------------------------------- access decisions */

/* The client's own token (client credentials grant), cached until shortly before it ends;
 * a malloc'd copy for the caller, or NULL. */
static char *client_token(sdk_sso *s, bool renew)
{
    int64_t now = time_now_ms() / 1000;
    pthread_mutex_lock(&s->mu);
    /* While the platform fails, dashboards fail fast instead of each waiting for it. */
    if ((renew || now >= s->cc_renew_at) && now >= s->cc_retry_at) {
        sdk_wipe_free(s->cc_token);
        s->cc_token = NULL;
        long status;
        json_t *answer = NULL;
        int rc = token_request(s, "grant_type=client_credentials", &status, &answer);
        const char *t = json_string_value(json_object_get(answer, "access_token"));
        const json_t *ttl = json_object_get(answer, "expires_in");
        if (!rc && status == 200 && t && json_is_integer(ttl)) {
            s->cc_token = strdup(t);
            s->cc_renew_at = now + json_integer_value(ttl) - CC_MARGIN_S;
        } else {
            if (!rc)
                log_warn("libosb: the platform refused the dashboard client's credentials "
                         "(%ld)", status);
            s->cc_retry_at = now + CC_RETRY_S;
        }
        json_decref(answer);
    } else if (now >= s->cc_renew_at) {
        sdk_wipe_free(s->cc_token);
        s->cc_token = NULL;
    }
    char *copy = s->cc_token ? strdup(s->cc_token) : NULL;
    pthread_mutex_unlock(&s->mu);
    return copy;
}

static authz_decision ask_once(sdk_sso *s, const char *token, const char *body, long *status)
{
    char *auth = NULL;
    if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
        return AUTHZ_ERROR;
    const char *headers[] = {auth, "Content-Type: application/json", "Accept: application/json",
                             NULL};
    buf out;
    buf_init(&out, MAX_ANSWER);
    authz_decision d = AUTHZ_ERROR;
    int rc = sdk_http_call("POST", s->authz_url, headers, body, PLATFORM_TIMEOUT_MS, MAX_ANSWER,
                           status, &out);
    sdk_wipe_free(auth);
    if (rc == OSB_E_IO) {
        /* A platform that does not answer would hold every dashboard request for the whole
         * timeout; the next ones fail at once for a few seconds instead. */
        __atomic_store_n(&s->unreachable_until, time_now_ms() / 1000 + CC_RETRY_S,
                         __ATOMIC_RELAXED);
    }
    if (!rc && *status == 200) {
        json_t *j = json_loadb(out.data ? out.data : "", out.len, JSON_REJECT_DUPLICATES, NULL);
        const json_t *r = json_array_get(json_object_get(j, "responses"), 0);
        const json_t *decision = json_object_get(r, "decision");
        if (sdk_json_str_is(decision, "Permit"))
            d = AUTHZ_PERMIT;
        else if (sdk_json_str_is(decision, "Deny"))
            d = AUTHZ_DENY;
        else
            log_warn("libosb: /v2/authz gave no decision (status %s); is the dashboard client "
                     "registered for service %s?",
                     str_claim(r, "status", 16) ? str_claim(r, "status", 16) : "?",
                     s->service_name);
        json_decref(j);
    } else if (!rc && *status != 401) {
        log_warn("libosb: /v2/authz answered %ld", *status);
    }
    buf_free(&out);
    return d;
}

static authz_decision decide(sdk_sso *s, const char *iam_id, const char *account,
                             const char *instance_id, const char *action)
{
    json_t *q = json_pack("[{s:s, s:{s:{s:s}}, s:s, s:{s:{s:s, s:s, s:s}}}]", "requestId",
                          "osb-dashboard", "subject", "attributes", "id", iam_id, "action",
                          action, "resource", "attributes", "accountId", account, "serviceName",
                          s->service_name, "serviceInstance", instance_id);
    char *body = q ? json_dumps(q, JSON_COMPACT) : NULL;
    json_decref(q);
    authz_decision d = AUTHZ_ERROR;
    if (time_now_ms() / 1000 < __atomic_load_n(&s->unreachable_until, __ATOMIC_RELAXED)) {
        free(body);
        return AUTHZ_ERROR;
    }
    for (int attempt = 0; body && attempt < 2; attempt++) {
        /* A cached token the platform no longer takes (revoked, keys rotated away) is
         * replaced once. */
        char *token = client_token(s, attempt > 0);
        long status = 0;
        if (!token)
            break;
        d = ask_once(s, token, body, &status);
        sdk_wipe_free(token);
        if (status != 401)
            break;
    }
    free(body);
    return d;
}

/* The account the instance was provisioned for (context.account_id); false when the
 * instance is unknown, gone or failed, or has no account. */
static bool instance_account(osb_broker *b, const char *instance_id, char *out, size_t outsz)
{
    sdk_instance in;
    if (sdk_instance_get(&b->state, instance_id, &in))
        return false;
    bool ok = false;
    if (in.state == ST_READY || in.state == ST_UPDATING || in.state == ST_CREATING) {
        json_t *ctx = sdk_parse_json(in.context);
        const char *acct = str_claim(ctx, "account_id", outsz);
        if (acct) {
            snprintf(out, outsz, "%s", acct);
            ok = true;
        }
        json_decref(ctx);
    }
    sdk_instance_free(&in);
    return ok;
}

bool osb_sso_require(osb_broker *b, osb_http *h, const char *instance_id, const char *action,
                     osb_sso_user *out)
{
    http_req *req = (http_req *)h;
    sdk_sso *s = b ? b->sso : NULL;
    if (out)
        memset(out, 0, sizeof *out);
    if (!s || !s->started || !instance_id || !action || !out) {
        page(req, 500, "Dashboard unavailable", "Single sign-on is not set up on this broker.");
        return false;
    }
    json_t *sess = unseal(s->session_key, http_cookie(req, s->session_cookie));
    const char *iam_id = str_claim(sess, "s", sizeof out->iam_id);
    const char *account = str_claim(sess, "a", sizeof out->account_id);
    if (!iam_id || !account) {
        json_decref(sess);
        begin_sign_in(s, req);
        return false;
    }
    char owner[128];
    /* An unknown instance and a refusal look alike: existence is not for everyone to learn. */
    authz_decision d = instance_account(b, instance_id, owner, sizeof owner)
                           ? decide(s, iam_id, owner, instance_id, action)
                           : AUTHZ_DENY;
    if (d == AUTHZ_PERMIT) {
        snprintf(out->iam_id, sizeof out->iam_id, "%s", iam_id);
        snprintf(out->account_id, sizeof out->account_id, "%s", account);
        out->expires_at = json_integer_value(json_object_get(sess, "x"));
    } else if (d == AUTHZ_DENY) {
        page(req, 403, "Not allowed", "You are signed in, but you may not use this service "
                                      "instance, or it does not exist.");
    } else {
        page(req, 502, "Dashboard unavailable", "The platform cannot say what you may do right "
                                                "now; try again in a moment.");
    }
    json_decref(sess);
    return d == AUTHZ_PERMIT;
}

/* ---------------------------------------------------------------- life cycle */

void sdk_wipe_free(char *p)
{
    if (p) {
        secure_wipe(p, strlen(p));
        free(p);
    }
}

bool sdk_http_url(const char *u)
{
    return u && (str_has_prefix(u, "http://") || str_has_prefix(u, "https://")) &&
           strlen(u) < 2000 && !strpbrk(u, " \t\r\n#");
}

static void derive(const char *secret, size_t n, const char *label, unsigned char out[32])
{
    hmac_sha256(secret, n, label, strlen(label), out);
}

int osb_sso_enable(osb_broker *b, const osb_sso_config *cfg)
{
    if (!b || !cfg || b->sso || !sdk_http_url(cfg->platform_url) || !cfg->client_id ||
        !*cfg->client_id || !cfg->client_secret || !*cfg->client_secret ||
        (cfg->redirect_uri && !sdk_http_url(cfg->redirect_uri)) ||
        (cfg->service_name && !*cfg->service_name))
        return OSB_E_INVAL;
    sdk_sso *s = calloc(1, sizeof *s);
    if (!s)
        return OSB_E_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    size_t n = strlen(cfg->platform_url);
    while (n && cfg->platform_url[n - 1] == '/')
        n--;
    s->platform_url = strndup(cfg->platform_url, n);
    s->client_id = strdup(cfg->client_id);
    s->client_secret = strdup(cfg->client_secret);
    s->redirect_uri = cfg->redirect_uri ? strdup(cfg->redirect_uri) : NULL;
    s->service_name = cfg->service_name ? strdup(cfg->service_name) : NULL;
    if (!s->platform_url || !s->client_id || !s->client_secret ||
        (cfg->redirect_uri && !s->redirect_uri) || (cfg->service_name && !s->service_name)) {
        sdk_sso_free(s);
        return OSB_E_NOMEM;
    }
    unsigned char random_secret[32];
    const char *secret = cfg->session_secret;
    size_t sn = secret ? strlen(secret) : 0;
    if (!sn) {
        random_bytes(random_secret, sizeof random_secret);
        secret = (const char *)random_secret;
        sn = sizeof random_secret;
    }
    derive(secret, sn, "osb sso state", s->state_key);
    derive(secret, sn, "osb sso session", s->session_key);
    derive(secret, sn, "osb sso pkce", s->pkce_key);
    secure_wipe(random_secret, sizeof random_secret);
    /* One cookie name per client: two brokers on one host keep apart. */
    unsigned char d[32];
    char hex[9];
    sha256(s->client_id, strlen(s->client_id), d);
    hex_encode(d, 4, hex);
    snprintf(s->session_cookie, sizeof s->session_cookie, "osb_sso_%s", hex);
    int rc = osb_http_route(b, OSB_GET, "/sso/callback", callback, s);
    if (rc) {
        sdk_sso_free(s);
        return rc;
    }
    b->sso = s;
    return 0;
}

/* The path of an absolute http(s) URL ("/" when it has none). */
static char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    if (!p)
        return strdup("/");
    size_t n = strcspn(p, "?");
    return strndup(p, n);
}

int sdk_sso_start(osb_broker *b, const char *listen, unsigned port, char *err, size_t errlen)
{
    sdk_sso *s = b->sso;
    if (!s->service_name) {
        const char *name = b->catalog.nservices ? b->catalog.services[0].name : NULL;
        if (!name || !(s->service_name = strdup(name)))
            return OSB_E_NOMEM;
    }
    if (!s->redirect_uri) {
        const char *colon = strrchr(listen, ':');
        int hl = colon ? (int)(colon - listen) : 0;
        const char *host = listen;
        if (hl == 0 || (hl == 7 && strncmp(listen, "0.0.0.0", 7) == 0)) {
            host = "127.0.0.1";
            hl = 9;
        }
        if (asprintf(&s->redirect_uri, "http://%.*s:%u/sso/callback", hl, host, port) < 0) {
            s->redirect_uri = NULL;
            return OSB_E_NOMEM;
        }
    }
    s->secure = str_has_prefix(s->redirect_uri, "https://");
    if (asprintf(&s->issuer, "%s/identity", s->platform_url) < 0 ||
        asprintf(&s->authorize_url, "%s/identity/authorize", s->platform_url) < 0 ||
        asprintf(&s->token_url, "%s/identity/token", s->platform_url) < 0 ||
        asprintf(&s->authz_url, "%s/v2/authz", s->platform_url) < 0 ||
        !(s->state_path = url_path(s->redirect_uri)))
        return OSB_E_NOMEM;
    if (b->jwks && strcmp(b->platform_url, s->platform_url) == 0) {
        s->jwks = b->jwks;
    } else {
        char *keys = NULL, *revoked = NULL;
        if (asprintf(&keys, "%s/identity/keys", s->platform_url) < 0 ||
            asprintf(&revoked, "%s/identity/revocations", s->platform_url) < 0) {
            free(keys);
            return OSB_E_NOMEM;
        }
        int rc = sdk_jwks_new(keys, revoked, 0, &s->jwks);
        free(keys);
        free(revoked);
        if (rc) {
            if (err && errlen)
                snprintf(err, errlen, "cannot start the platform key cache");
            return rc;
        }
        s->own_jwks = true;
    }
    s->started = true;
    log_info("libosb: dashboard sign-in through %s for %s, callback %s", s->platform_url,
             s->service_name, s->redirect_uri);
    return 0;
}

void sdk_sso_free(sdk_sso *s)
{
    if (!s)
        return;
    if (s->own_jwks)
        sdk_jwks_free(s->jwks);
    free(s->platform_url);
    free(s->client_id);
    sdk_wipe_free(s->client_secret);
    sdk_wipe_free(s->cc_token);
    free(s->redirect_uri);
    free(s->service_name);
    free(s->issuer);
    free(s->authorize_url);
    free(s->token_url);
    free(s->authz_url);
    free(s->state_path);
    secure_wipe(s->state_key, sizeof s->state_key);
    secure_wipe(s->session_key, sizeof s->session_key);
    secure_wipe(s->pkce_key, sizeof s->pkce_key);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
