/* iam authorize: the login and consent pages of dashboard single sign-on (OAuth 2.0
 * authorization code flow, PKCE S256). A provider's dashboard sends the user here; the user
 * signs in once per browser session and consents once per client; the platform redirects
 * back with a single-use code bound to the client, the redirect URI and the PKCE challenge. */
#include "iam/iam_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CODE_TTL_MS (60 * 1000)
#define SESSION_TTL_MS (8LL * 3600 * 1000)
#define COOKIE "osbill_session"

typedef struct {
    const char *client_id, *redirect_uri, *response_type, *state, *scope, *challenge, *method;
    char client_name[256];
    char client_account[64];
    bool confidential;
} authz_req;

/* ---------------------------------------------------------------- HTML */

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

static int hidden(buf *b, const char *name, const char *value)
{
    if (!value)
        return 0;
    int rc = buf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"", name);
    rc = rc ? rc : html_escape(b, value);
    return rc ? rc : buf_puts(b, "\">");
}

static int hidden_params(buf *b, const authz_req *a)
{
    int rc = hidden(b, "client_id", a->client_id);
    rc = rc ? rc : hidden(b, "redirect_uri", a->redirect_uri);
    rc = rc ? rc : hidden(b, "response_type", a->response_type);
    rc = rc ? rc : hidden(b, "state", a->state);
    rc = rc ? rc : hidden(b, "scope", a->scope);
    rc = rc ? rc : hidden(b, "code_challenge", a->challenge);
    return rc ? rc : hidden(b, "code_challenge_method", a->method);
}

static const char page_head[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>%s - osbill</title><style>"
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;color:#1d2330}"
    "main{max-width:26rem;margin:8vh auto;background:#fff;padding:2rem;border-radius:8px;"
    "box-shadow:0 1px 4px #0002}h1{font-size:1.3rem;margin-top:0}"
    "label{display:block;margin:.8rem 0 .3rem}input[type=email],input[type=password]{width:100%%;"
    "padding:.55rem;box-sizing:border-box;border:1px solid #99a;border-radius:4px;font-size:1rem}"
    "button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:4px;"
    "background:#0f62fe;color:#fff;cursor:pointer}button.secondary{background:#6f7785;margin-left:.5rem}"
    ".error{color:#a2191f;background:#fff1f1;padding:.6rem;border-radius:4px}"
    "</style></head><body><main>";

static void send_page(http_req *req, int status, buf *b)
{
    http_add_header(req, "Cache-Control", "no-store");
    http_add_header(req, "X-Frame-Options", "DENY");
    http_add_header(req, "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                    "frame-ancestors 'none'");
    http_reply(req, status, "text/html; charset=utf-8", b->data, b->len);
}

static void error_page(http_req *req, int status, const char *message)
{
    buf b;
    buf_init(&b, 1 << 16);
    if (buf_printf(&b, page_head, "Sign-in error") ||
        buf_puts(&b, "<h1>This sign-in request cannot be used</h1><p class=\"error\">") ||
        html_escape(&b, message) || buf_puts(&b, "</p></main></body></html>"))
        http_reply(req, 500, NULL, NULL, 0);
    else
        send_page(req, status, &b);
    buf_free(&b);
}

static void login_page_status(http_req *req, const authz_req *a, const char *error, int status)
{
    buf b;
    buf_init(&b, 1 << 16);
    int rc = buf_printf(&b, page_head, "Sign in");
    rc = rc ? rc : buf_puts(&b, "<h1>Sign in to continue to ");
    rc = rc ? rc : html_escape(&b, a->client_name);
    rc = rc ? rc : buf_puts(&b, "</h1>");
    if (!rc && error) {
        rc = buf_puts(&b, "<p class=\"error\" role=\"alert\">");
        rc = rc ? rc : html_escape(&b, error);
        rc = rc ? rc : buf_puts(&b, "</p>");
    }
    rc = rc ? rc : buf_puts(&b, "<form method=\"post\" action=\"authorize\">"
                                "<input type=\"hidden\" name=\"action\" value=\"login\">");
    rc = rc ? rc : hidden_params(&b, a);
    rc = rc ? rc : buf_puts(&b, "<label for=\"email\">Email</label>"
                                "<input id=\"email\" name=\"email\" type=\"email\" required "
                                "autocomplete=\"username\" autofocus>"
                                "<label for=\"password\">Password</label>"
                                "<input id=\"password\" name=\"password\" type=\"password\" "
                                "required autocomplete=\"current-password\">"
                                "<button type=\"submit\">Sign in</button></form>"
                                "</main></body></html>");
    if (rc)
        http_reply(req, 500, NULL, NULL, 0);
    else
        send_page(req, status, &b);
    buf_free(&b);
}

static void login_page(http_req *req, const authz_req *a, const char *error)
{
    login_page_status(req, a, error, error ? 401 : 200);
}

static void consent_page(iam *m, http_req *req, const authz_req *a, const char *session)
{
    unsigned char mac[32];
    char csrf[64];
    hmac_sha256(m->hash_key, sizeof m->hash_key, session, strlen(session), mac);
    if (b64url_encode(mac, sizeof mac, csrf, sizeof csrf) < 0)
        csrf[0] = '\0';
    buf b;
    buf_init(&b, 1 << 16);
    int rc = buf_printf(&b, page_head, "Allow access");
    rc = rc ? rc : buf_puts(&b, "<h1>Allow ");
    rc = rc ? rc : html_escape(&b, a->client_name);
    rc = rc ? rc : buf_puts(&b, " to know who you are?</h1><p>It will receive your identity and "
                                "can ask the platform what you may do with its service. It gets "
                                "no password and nothing else.</p>"
                                "<form method=\"post\" action=\"authorize\">");
    rc = rc ? rc : hidden_params(&b, a);
    rc = rc ? rc : hidden(&b, "csrf", csrf);
    rc = rc ? rc : buf_puts(&b, "<button type=\"submit\" name=\"action\" value=\"approve\">Allow"
                                "</button><button class=\"secondary\" type=\"submit\" "
                                "name=\"action\" value=\"deny\">Deny</button></form>"
                                "</main></body></html>");
    if (rc)
        http_reply(req, 500, NULL, NULL, 0);
    else
        send_page(req, 200, &b);
    buf_free(&b);
}

/* ---------------------------------------------------------------- redirects */

static void redirect_to(http_req *req, const authz_req *a, const char *k1, const char *v1,
                        const char *k2, const char *v2)
{
    buf b;
    buf_init(&b, 16384);
    static const char unreserved[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    int rc = buf_puts(&b, a->redirect_uri);
    const char *keys[3] = {k1, k2, a->state ? "state" : NULL};
    const char *vals[3] = {v1, v2, a->state};
    char sep = strchr(a->redirect_uri, '?') ? '&' : '?';
    for (int i = 0; i < 3 && !rc; i++) {
        if (!keys[i] || !vals[i])
            continue;
        rc = buf_printf(&b, "%c%s=", sep, keys[i]);
        sep = '&';
        for (const char *c = vals[i]; *c && !rc; c++)
            rc = strchr(unreserved, *c) ? buf_append(&b, c, 1)
                                        : buf_printf(&b, "%%%02X", (unsigned char)*c);
    }
    if (rc) {
        error_page(req, 400, "The redirect is too long.");
    } else {
        http_add_header(req, "Location", b.data);
        http_add_header(req, "Cache-Control", "no-store");
        http_reply(req, 302, NULL, NULL, 0);
    }
    buf_free(&b);
}

/* ---------------------------------------------------------------- checks */

static const char *param(http_req *req, const char *name, bool post)
{
    if (!post)
        return http_query(req, name);
    const char *v;
    return http_form_value(req, name, &v) == 0 ? v : NULL;
}

/* Space-separated scope tokens, each one the platform knows. */
static bool scope_known(const char *scope)
{
    static const char *const known[] = {"openid", "profile", "email", "osbill"};
    size_t len = strlen(scope);
    if (len == 0 || len > 200)
        return false;
    const char *p = scope;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        bool ok = false;
        for (size_t i = 0; i < ARRAY_LEN(known) && !ok; i++)
            ok = strlen(known[i]) == n && strncmp(p, known[i], n) == 0;
        if (!ok)
            return false;
        p += n + (sp ? 1 : 0);
    }
    return true;
}

/* Validates client and redirect URI (errors shown here, never redirected), then the rest
 * (errors redirected to the client). Returns true when the request may proceed. */
static bool check_request(iam *m, http_req *req, bool post, authz_req *a)
{
    memset(a, 0, sizeof *a);
    a->client_id = param(req, "client_id", post);
    a->redirect_uri = param(req, "redirect_uri", post);
    a->response_type = param(req, "response_type", post);
    a->state = param(req, "state", post);
    a->scope = param(req, "scope", post);
    a->challenge = param(req, "code_challenge", post);
    a->method = param(req, "code_challenge_method", post);
    if (!a->client_id || !a->redirect_uri) {
        error_page(req, 400, "client_id and redirect_uri are required.");
        return false;
    }
    store_tx *tx;
    store_stmt *q;
    bool found = false, uri_ok = false;
    if (store_begin(m->db, false, &tx)) {
        error_page(req, 503, "The identity service is unavailable.");
        return false;
    }
    if (!store_query(tx, "SELECT name, account_id, secret_hash IS NOT NULL, redirect_uris FROM"
                         " oauth_clients WHERE client_id = ?", &q, "s", a->client_id)) {
        if (store_step(q) == STORE_ROW) {
            found = true;
            snprintf(a->client_name, sizeof a->client_name, "%s", store_col_text(q, 0));
            snprintf(a->client_account, sizeof a->client_account, "%s", store_col_text(q, 1));
            a->confidential = store_col_int(q, 2) != 0;
            json_t *uris = json_loads(store_col_text(q, 3), 0, NULL);
            size_t i;
            json_t *u;
            json_array_foreach(uris, i, u) {
                if (str_eq(json_string_value(u), a->redirect_uri))
                    uri_ok = true; /* exact match only */
            }
            json_decref(uris);
        }
        store_done(q);
    }
    store_rollback(tx);
    if (!found) {
        error_page(req, 400, "The application asking you to sign in is not registered.");
        return false;
    }
    if (!uri_ok) {
        error_page(req, 400, "The application's redirect URI is not one it registered.");
        return false;
    }
    if (!str_eq(a->response_type, "code")) {
        redirect_to(req, a, "error", "unsupported_response_type", "error_description",
                    "response_type must be code");
        return false;
    }
    if (a->method && strcmp(a->method, "S256") != 0) {
        redirect_to(req, a, "error", "invalid_request", "error_description",
                    "code_challenge_method must be S256");
        return false;
    }
    if (a->challenge && (strlen(a->challenge) != 43 || !a->method)) {
        redirect_to(req, a, "error", "invalid_request", "error_description",
                    "code_challenge must be a base64url SHA-256 with method S256");
        return false;
    }
    if (!a->confidential && !a->challenge) {
        redirect_to(req, a, "error", "invalid_request", "error_description",
                    "public clients must use PKCE (code_challenge, S256)");
        return false;
    }
    if (!a->scope)
        a->scope = "openid";
    if (!scope_known(a->scope)) {
        redirect_to(req, a, "error", "invalid_scope", "error_description",
                    "scope may hold openid, profile, email and osbill");
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- sessions */

typedef struct {
    char iam_id[128];
    char account_id[64];
    char token[96];
} session;

static bool current_session(iam *m, http_req *req, session *s)
{
    const char *cookie = http_cookie(req, COOKIE);
    memset(s, 0, sizeof *s);
    if (!cookie || strlen(cookie) >= sizeof s->token)
        return false;
    unsigned char h[32];
    iam_hash_secret(m, cookie, h);
    store_tx *tx;
    store_stmt *q;
    bool ok = false;
    if (store_begin(m->db, false, &tx))
        return false;
    if (!store_query(tx, "SELECT iam_id, account_id FROM sessions WHERE token_hash = ? AND"
                         " expires_ms > ?", &q, "bi", (const void *)h, sizeof h, time_now_ms())) {
        if (store_step(q) == STORE_ROW) {
            snprintf(s->iam_id, sizeof s->iam_id, "%s", store_col_text(q, 0));
            snprintf(s->account_id, sizeof s->account_id, "%s", store_col_text(q, 1));
            snprintf(s->token, sizeof s->token, "%s", cookie);
            ok = true;
        }
        store_done(q);
    }
    store_rollback(tx);
    return ok;
}

static bool has_consent(iam *m, const char *iam_id, const char *client_id)
{
    store_tx *tx;
    store_stmt *q;
    bool ok = false;
    if (str_eq(client_id, IAM_CONSOLE_CLIENT))
        return true; /* the platform's own console asks nothing of the user */
    if (store_begin(m->db, false, &tx))
        return false;
    if (!store_query(tx, "SELECT 1 FROM consents WHERE iam_id = ? AND client_id = ?", &q, "ss",
                     iam_id, client_id)) {
        ok = store_step(q) == STORE_ROW;
        store_done(q);
    }
    store_rollback(tx);
    return ok;
}

/* Issues the code and redirects back to the client. */
static void grant_code(iam *m, http_req *req, const authz_req *a, const session *s)
{
    char code[96];
    unsigned char h[32];
    iam_new_secret("", code, sizeof code);
    iam_hash_secret(m, code, h);
    store_tx *tx;
    int rc = store_begin(m->db, true, &tx);
    if (!rc) {
        rc = store_exec(tx, "INSERT INTO auth_codes (code_hash, client_id, iam_id, account_id,"
                            " redirect_uri, scope, code_challenge, expires_ms) VALUES"
                            " (?, ?, ?, ?, ?, ?, ?, ?)", "bssssssi", (const void *)h, sizeof h,
                        a->client_id, s->iam_id, s->account_id, a->redirect_uri, a->scope,
                        a->challenge, time_now_ms() + CODE_TTL_MS);
        rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    }
    if (rc)
        error_page(req, 503, "The identity service is unavailable.");
    else
        redirect_to(req, a, "code", code, NULL, NULL);
    secure_wipe(code, sizeof code);
}

/* ---- sign-in throttling: after LOGIN_MAX_FAILURES wrong passwords for one email within
 * LOGIN_WINDOW_MS, that email's sign-ins are refused without checking the password until the
 * window ends. In memory, per process: a restart forgets, and that is acceptable for a delay
 * whose purpose is to make online guessing slow. Slots are keyed by a keyed hash of the
 * lowercased email, so no one can aim collisions at somebody else's slot. */
#define LOGIN_SLOTS 4096
#define LOGIN_MAX_FAILURES 5
#define LOGIN_WINDOW_MS (15 * 60 * 1000)

typedef struct {
    unsigned char key[16];
    int failures;
    int64_t first_ms;
} login_slot;

static pthread_mutex_t login_mu = PTHREAD_MUTEX_INITIALIZER;
static login_slot login_slots[LOGIN_SLOTS];

static login_slot *login_slot_for(iam *m, const char *email, unsigned char key[16])
{
    char lower[320];
    size_t n = 0;
    for (; email[n] && n < sizeof lower - 1; n++)
        lower[n] = (char)((email[n] >= 'A' && email[n] <= 'Z') ? email[n] + 32 : email[n]);
    lower[n] = '\0';
    unsigned char h[32];
    iam_hash_secret(m, lower, h);
    memcpy(key, h, 16);
    return &login_slots[(h[16] | h[17] << 8) % LOGIN_SLOTS];
}

/* Seconds until email may try again, or 0. */
static int64_t login_throttled(iam *m, const char *email)
{
    unsigned char key[16];
    int64_t now = time_now_ms(), wait = 0;
    pthread_mutex_lock(&login_mu);
    login_slot *sl = login_slot_for(m, email, key);
    if (memcmp(sl->key, key, 16) == 0 && sl->failures >= LOGIN_MAX_FAILURES &&
        now - sl->first_ms < LOGIN_WINDOW_MS)
        wait = (sl->first_ms + LOGIN_WINDOW_MS - now + 999) / 1000;
    pthread_mutex_unlock(&login_mu);
    return wait;
}

static void login_record(iam *m, const char *email, bool ok)
{
    unsigned char key[16];
    int64_t now = time_now_ms();
    pthread_mutex_lock(&login_mu);
    login_slot *sl = login_slot_for(m, email, key);
    if (ok) {
        if (memcmp(sl->key, key, 16) == 0)
            memset(sl, 0, sizeof *sl);
    } else if (memcmp(sl->key, key, 16) != 0 || now - sl->first_ms >= LOGIN_WINDOW_MS) {
        memcpy(sl->key, key, 16);
        sl->failures = 1;
        sl->first_ms = now;
    } else {
        sl->failures++;
    }
    pthread_mutex_unlock(&login_mu);
}

/* Checks email and password; opens a session in the user's first account. *retry_s is set
 * when the email is throttled. */
static bool sign_in(iam *m, http_req *req, session *s, int64_t *retry_s)
{
    const char *email = param(req, "email", true), *pw = param(req, "password", true);
    char hash[crypto_pwhash_STRBYTES] = "";
    store_tx *tx;
    store_stmt *q;
    memset(s, 0, sizeof *s);
    *retry_s = 0;
    if (!email || !pw || strlen(pw) > 256 || strlen(email) > 254)
        return false;
    if ((*retry_s = login_throttled(m, email)) > 0)
        return false;
    if (store_begin(m->db, false, &tx))
        return false;
    if (!store_query(tx, "SELECT u.iam_id, u.password_hash, a.account_id FROM users u JOIN"
                         " account_users a ON a.iam_id = u.iam_id WHERE u.email = ? AND"
                         " u.state = 'active' ORDER BY a.created_ms LIMIT 1", &q, "s", email)) {
        if (store_step(q) == STORE_ROW) {
            snprintf(s->iam_id, sizeof s->iam_id, "%s", store_col_text(q, 0));
            snprintf(hash, sizeof hash, "%s", store_col_text(q, 1));
            snprintf(s->account_id, sizeof s->account_id, "%s", store_col_text(q, 2));
        }
        store_done(q);
    }
    store_rollback(tx);
    /* Verify against a real hash even for unknown emails, so timing tells nothing. */
    static const char dummy[] =
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "4lLNx6JWJ2s0mYxC5QnmS2V5oG3fL7Qb9yP3yR9yW4s";
    bool ok = crypto_pwhash_str_verify(hash[0] ? hash : dummy, pw, strlen(pw)) == 0 && hash[0];
    secure_wipe(hash, sizeof hash);
    login_record(m, email, ok);
    if (!ok)
        return false;
    unsigned char h[32];
    iam_new_secret("", s->token, sizeof s->token);
    iam_hash_secret(m, s->token, h);
    /* a sign-in over an older session (prompt=login, another user) ends the older one */
    const char *old = http_cookie(req, COOKIE);
    unsigned char oh[32];
    if (old && *old)
        iam_hash_secret(m, old, oh);
    int rc = store_begin(m->db, true, &tx);
    if (!rc) {
        if (old && *old)
            rc = store_exec(tx, "DELETE FROM sessions WHERE token_hash = ?", "b",
                            (const void *)oh, sizeof oh);
        if (!rc)
            rc = store_exec(tx, "INSERT INTO sessions (token_hash, iam_id, account_id,"
                                " expires_ms) VALUES (?, ?, ?, ?)", "bssi", (const void *)h,
                            sizeof h, s->iam_id, s->account_id, time_now_ms() + SESSION_TTL_MS);
        rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    }
    if (rc)
        return false;
    char cookie[256];
    snprintf(cookie, sizeof cookie, COOKIE "=%s; Path=/identity; HttpOnly; SameSite=Lax; "
             "Max-Age=%lld", s->token, SESSION_TTL_MS / 1000);
    http_add_header(req, "Set-Cookie", cookie);
    secure_wipe(cookie, sizeof cookie);
    return true;
}

/* ---------------------------------------------------------------- handlers */

static void authorize_get(iam *m, http_req *req)
{
    authz_req a;
    session s;
    if (!check_request(m, req, false, &a))
        return;
    /* prompt=login: sign in again (another user, say) whatever session there is */
    if (str_eq(http_query(req, "prompt"), "login") || !current_session(m, req, &s)) {
        login_page(req, &a, NULL);
        return;
    }
    if (has_consent(m, s.iam_id, a.client_id))
        grant_code(m, req, &a, &s);
    else
        consent_page(m, req, &a, s.token);
}

/* A POST sent by a page of another origin (login CSRF: signing the victim in as someone
 * else), by the browser's own word: Sec-Fetch-Site when it sends one (only same-origin
 * passes), else an Origin whose host is not the one asked. Clients that are not browsers
 * send neither. ("Origin: null" is what a same-origin page with no-referrer sends.) */
static bool cross_site(http_req *req)
{
    const char *site = http_header(req, "Sec-Fetch-Site");
    if (site)
        return !str_eq(site, "same-origin");
    const char *origin = http_header(req, "Origin"), *host = http_header(req, "Host");
    if (!origin || str_eq(origin, "null"))
        return false;
    const char *sep = strstr(origin, "://");
    return !host || !sep || !str_eq(sep + 3, host);
}

static void authorize_post(iam *m, http_req *req)
{
    authz_req a;
    session s;
    if (cross_site(req)) {
        error_page(req, 403, "This form was sent from another site; sign in from the page "
                             "itself.");
        return;
    }
    if (!http_is_form(req)) {
        error_page(req, 400, "The form was not sent as a form.");
        return;
    }
    if (!check_request(m, req, true, &a))
        return;
    const char *action = param(req, "action", true);
    if (str_eq(action, "login")) {
        int64_t retry_s;
        if (!sign_in(m, req, &s, &retry_s)) {
            if (retry_s > 0) {
                char v[24];
                snprintf(v, sizeof v, "%lld", (long long)retry_s);
                http_add_header(req, "Retry-After", v);
                login_page_status(req, &a, "Too many failed sign-ins for this email. Try again "
                                           "in a few minutes.", 429);
            } else {
                login_page(req, &a, "The email or password is not right.");
            }
            return;
        }
        if (has_consent(m, s.iam_id, a.client_id))
            grant_code(m, req, &a, &s);
        else
            consent_page(m, req, &a, s.token);
        return;
    }
    if (!str_eq(action, "approve") && !str_eq(action, "deny")) {
        error_page(req, 400, "Unknown action.");
        return;
    }
    if (!current_session(m, req, &s)) {
        login_page(req, &a, NULL);
        return;
    }
    /* The consent form carries a value only this session's page could show. */
    const char *csrf = param(req, "csrf", true);
    unsigned char mac[32];
    char want[64];
    hmac_sha256(m->hash_key, sizeof m->hash_key, s.token, strlen(s.token), mac);
    if (b64url_encode(mac, sizeof mac, want, sizeof want) < 0 || !csrf ||
        strlen(csrf) != strlen(want) || !ct_equal(csrf, want, strlen(want))) {
        error_page(req, 403, "This consent form has expired; start again from the application.");
        return;
    }
    if (str_eq(action, "deny")) {
        redirect_to(req, &a, "error", "access_denied", "error_description",
                    "the user denied access");
        return;
    }
    store_tx *tx;
    int rc = store_begin(m->db, true, &tx);
    if (!rc) {
        rc = store_exec(tx, "INSERT INTO consents (iam_id, client_id, scope, created_ms)"
                            " VALUES (?, ?, ?, ?) ON CONFLICT (iam_id, client_id) DO UPDATE"
                            " SET scope = excluded.scope, created_ms = excluded.created_ms",
                        "sssi", s.iam_id, a.client_id, a.scope, time_now_ms());
        rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    }
    if (rc)
        error_page(req, 503, "The identity service is unavailable.");
    else
        grant_code(m, req, &a, &s);
}

static void authorize(http_req *req, void *ud)
{
    if (req->method == HTTP_POST)
        authorize_post(ud, req);
    else
        authorize_get(ud, req);
}

/* POST /identity/logout: ends the sign-in session of the cookie (the next authorize asks for
 * the password again) and clears the cookie. 204 whether or not there was one. */
static void logout(http_req *req, void *ud)
{
    iam *m = ud;
    if (cross_site(req)) {
        http_reply_error(req, 403, "forbidden", "Signing out is for the platform's own pages.",
                         NULL);
        return;
    }
    const char *cookie = http_cookie(req, COOKIE);
    if (cookie && *cookie) {
        unsigned char h[32];
        iam_hash_secret(m, cookie, h);
        store_tx *tx;
        int rc = store_begin(m->db, true, &tx);
        if (!rc) {
            rc = store_exec(tx, "DELETE FROM sessions WHERE token_hash = ?", "b", (const void *)h,
                            sizeof h);
            rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
        }
        if (rc) {
            http_reply_error(req, 503, "unavailable", "The identity service is unavailable.",
                             NULL);
            return;
        }
    }
    http_add_header(req, "Set-Cookie", COOKIE "=; Path=/identity; HttpOnly; SameSite=Lax; Max-Age=0");
    http_add_header(req, "Cache-Control", "no-store");
    http_reply(req, 204, NULL, NULL, 0);
}

void iam_authorize_routes(iam *m, http_router *r)
{
    if (http_route(r, HTTP_GET | HTTP_POST, "/identity/authorize", HTTP_STYLE_PLATFORM, authorize,
                   m) ||
        http_route(r, HTTP_POST, "/identity/logout", HTTP_STYLE_PLATFORM, logout, m))
        log_error("iam: cannot register /identity/authorize or /identity/logout");
}
