/* catalog brokers: the provider's Open Service Brokers, one per offering and region, and the
 * deployments of plans to regions through them. A Basic password is kept sealed with the
 * catalog's key, bound to its broker's id, because the platform must send it; it is never
 * shown again. Validation (the scorecards) lives in validate.c. */
#include "catalog/catalog_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_URL 2048
#define MAX_USERNAME 255
#define MAX_PASSWORD 1024
#define MAX_BROKERS 64 /* per offering: one per region */
#define SEAL_AD_PREFIX "osbill broker password "

/* ---------------------------------------------------------------- sealed passwords */

/* The additional data ties a sealed password to its broker: a sealed value copied onto
 * another broker's row does not open. */
static void seal_ad(const char *broker_id, char *ad, size_t n)
{
    snprintf(ad, n, SEAL_AD_PREFIX "%s", broker_id);
}

static int seal_password(const catalog *c, const char *broker_id, const char *password,
                         unsigned char **out, size_t *outn)
{
    char ad[128];
    seal_ad(broker_id, ad, sizeof ad);
    return seal_secret(c->seal_key, ad, password, strlen(password), out, outn);
}

int catalog_broker_password(const catalog *c, const char *broker_id, const void *sealed,
                            size_t n, char *out, size_t outsz)
{
    char ad[128];
    seal_ad(broker_id, ad, sizeof ad);
    return open_secret(c->seal_key, ad, sealed, n, out, outsz, NULL);
}

/* ---------------------------------------------------------------- field checks */

/* ^[a-z][a-z0-9-]{1,31}$ */
bool catalog_valid_region(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || n > 32 || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* An absolute http(s) URL of printable ASCII, without user info, query or fragment: the
 * password goes in a header, never in the URL, and OSB paths are appended to it. */
static bool valid_broker_url(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    const char *rest;
    if (n == 0 || n > MAX_URL)
        return false;
    if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch >= 0x7f || strchr("\"<>\\^`{|}?#", ch))
            return false;
    }
    size_t alen = strcspn(rest, "/");
    if (alen == 0 || memchr(rest, '@', alen))
        return false;
    /* host[:port] or [v6]:port */
    const char *host = rest, *end = rest + alen, *port = NULL;
    if (*host == '[') {
        const char *close = memchr(host, ']', alen);
        if (!close || close == host + 1)
            return false;
        for (const char *p = host + 1; p < close; p++)
            if (!(strchr("0123456789abcdefABCDEF:.", *p)))
                return false;
        if (close + 1 < end) {
            if (close[1] != ':')
                return false;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', alen);
        const char *hend = colon ? colon : end;
        if (hend == host)
            return false;
        for (const char *p = host; p < hend; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
                return false;
        if (colon)
            port = colon + 1;
    }
    if (port) {
        long v = 0;
        if (port == end || end - port > 5)
            return false;
        for (const char *p = port; p < end; p++) {
            if (*p < '0' || *p > '9')
                return false;
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535)
            return false;
    }
    return true;
}

/* Text of 1 to max bytes without control characters or an embedded NUL. */
static bool plain_text(const json_t *v, size_t max)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
        return false;
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < ' ' || *p == 0x7f)
            return false;
    return true;
}

static bool valid_api_version(const char *s)
{
    static const char *const ok[] = {"2.12", "2.13", "2.14", "2.15", "2.16", "2.17"};
    for (size_t i = 0; s && i < ARRAY_LEN(ok); i++)
        if (strcmp(s, ok[i]) == 0)
            return true;
    return false;
}

static bool known_keys(http_req *req, const json_t *obj, const char *prefix,
                       const char *const *keys, const char *what)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool known = false;
        for (const char *const *w = keys; *w && !known; w++)
            known = strcmp(*w, k) == 0;
        if (!known) {
            char f[160];
            snprintf(f, sizeof f, "%s%.100s", prefix, k);
            catalog_field_error(req, f, "'%s' is not a field of %s.", f, what);
            return false;
        }
    }
    return true;
}

/* What a registration or change asks for, checked field by field. */
typedef struct {
    const char *region, *url, *api_version;
    const char *auth_type; /* NULL: auth not given */
    const char *username, *password;
} broker_fields;

/* Fills f from body; false after replying 400 naming the field. creating: the required
 * fields must be there. */
static bool parse_fields(http_req *req, const json_t *body, bool creating, broker_fields *f)
{
    static const char *const keys[] = {"region", "url", "auth", "api_version", NULL};
    static const char *const basic_keys[] = {"type", "username", "password", NULL};
    static const char *const bearer_keys[] = {"type", NULL};
    memset(f, 0, sizeof *f);
    if (!json_is_object(body)) {
        catalog_field_error(req, "", "The body must be a JSON object.");
        return false;
    }
    if (!known_keys(req, body, "", keys, "a broker"))
        return false;
    const json_t *region = json_object_get(body, "region"), *url = json_object_get(body, "url");
    const json_t *auth = json_object_get(body, "auth"), *ver = json_object_get(body, "api_version");
    if ((region || creating) && !catalog_valid_region(json_string_value(region))) {
        catalog_field_error(req, "region", "'region' is required: 2 to 32 characters of "
                            "lowercase letters, digits and hyphens, starting with a letter "
                            "(e.g. \"us-south\").");
        return false;
    }
    if ((url || creating) && !valid_broker_url(json_string_value(url))) {
        catalog_field_error(req, "url", "'url' is required: an absolute http(s) URL of at most "
                            "%d characters, without user info, query or fragment (the broker's "
                            "base, e.g. \"https://broker.example.com\").", MAX_URL);
        return false;
    }
    if (ver && !valid_api_version(json_string_value(ver))) {
        catalog_field_error(req, "api_version", "'api_version' must be one of \"2.12\" to "
                            "\"2.17\" (the X-Broker-API-Version the platform sends).");
        return false;
    }
    if (!auth && creating) {
        catalog_field_error(req, "auth", "'auth' is required: {\"type\":\"basic\",\"username\","
                            "\"password\"} or {\"type\":\"bearer\"}.");
        return false;
    }
    if (auth) {
        const char *type = json_string_value(json_object_get(auth, "type"));
        if (!json_is_object(auth)) {
            catalog_field_error(req, "auth", "'auth' must be {\"type\":\"basic\",\"username\","
                                "\"password\"} or {\"type\":\"bearer\"}.");
            return false;
        }
        if (!type || (strcmp(type, "basic") != 0 && strcmp(type, "bearer") != 0)) {
            catalog_field_error(req, "auth.type", "'auth.type' must be \"basic\" or \"bearer\".");
            return false;
        }
        bool basic = strcmp(type, "basic") == 0;
        if (!known_keys(req, auth, "auth.", basic ? basic_keys : bearer_keys,
                        basic ? "basic auth" : "bearer auth (the platform sends its own token)"))
            return false;
        if (basic) {
            const json_t *u = json_object_get(auth, "username");
            const json_t *p = json_object_get(auth, "password");
            if (!plain_text(u, MAX_USERNAME) || strchr(json_string_value(u), ':')) {
                catalog_field_error(req, "auth.username", "'auth.username' is required: 1 to %d "
                                    "characters without ':' or control characters.", MAX_USERNAME);
                return false;
            }
            if (p && !plain_text(p, MAX_PASSWORD)) {
                catalog_field_error(req, "auth.password", "'auth.password' must be 1 to %d "
                                    "characters without control characters.", MAX_PASSWORD);
                return false;
            }
            f->username = json_string_value(u);
            f->password = json_string_value(p);
        }
        f->auth_type = type;
    }
    f->region = json_string_value(region);
    f->url = json_string_value(url);
    f->api_version = json_string_value(ver);
    return true;
}

/* ---------------------------------------------------------------- JSON */

#define BROKER_COLS "id, offering_id, region, url, auth, username, api_version, created_ms," \
                    " updated_ms"

static json_t *broker_json(store_tx *tx, store_stmt *q, int *rc)
{
    char created[32], updated[32], id[64];
    str_copy(id, sizeof id, store_col_text(q, 0));
    time_format_rfc3339(store_col_int(q, 7), created);
    time_format_rfc3339(store_col_int(q, 8), updated);
    const char *auth = store_col_text(q, 4);
    json_t *a = auth && strcmp(auth, "basic") == 0
                    ? json_pack("{s:s, s:s?}", "type", "basic", "username", store_col_text(q, 5))
                    : json_pack("{s:s}", "type", "bearer");
    json_t *j = json_pack("{s:s, s:s?, s:s?, s:s?, s:o, s:s?, s:s, s:s}", "id", id,
                          "offering_id", store_col_text(q, 1), "region", store_col_text(q, 2),
                          "url", store_col_text(q, 3), "auth", a, "api_version",
                          store_col_text(q, 6), "created_at", created, "updated_at", updated);
    /* The newest validation of this broker, so the console shows where it stands. */
    store_stmt *s;
    json_t *last = json_null();
    *rc = store_query(tx, "SELECT id, state, started_ms, finished_ms FROM scorecards WHERE"
                          " broker_id = ? ORDER BY started_ms DESC, rowid DESC LIMIT 1", &s,
                      "s", id);
    if (!*rc) {
        if (store_step(s) == STORE_ROW) {
            char started[32], finished[32];
            time_format_rfc3339(store_col_int(s, 2), started);
            time_format_rfc3339(store_col_int(s, 3), finished);
            json_decref(last);
            last = json_pack("{s:s?, s:s?, s:s, s:s?}", "id", store_col_text(s, 0), "state",
                             store_col_text(s, 1), "started_at", started, "finished_at",
                             store_col_null(s, 3) ? NULL : finished);
        }
        store_done(s);
    }
    json_object_set_new(j, "scorecard", last ? last : json_null());
    return j;
}

static int broker_load_json(store_tx *tx, const char *offering_id, const char *id, json_t **out)
{
    store_stmt *q;
    *out = NULL;
    int rc = store_query(tx, "SELECT " BROKER_COLS " FROM brokers WHERE id = ? AND"
                             " offering_id = ?", &q, "ss", id, offering_id);
    if (rc)
        return rc;
    rc = OSB_E_NOTFOUND;
    if (store_step(q) == STORE_ROW)
        *out = broker_json(tx, q, &rc);
    store_done(q);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- onboarding step 3 */

int catalog_brokers_missing(store_tx *tx, const char *offering_id, json_t *missing)
{
    /* A broker counts as validated when its newest finished scorecard passed and was taken
     * after the broker last changed (a new URL, password or API version) and after the
     * offering's plans last changed (the broker must know every plan): else a new run. */
    store_stmt *q;
    int brokers = 0;
    bool validated = true;
    int64_t plans_changed = 0;
    int rc = store_query(tx, "SELECT COALESCE(MAX(updated_ms), 0) FROM plans WHERE"
                             " offering_id = ?", &q, "s", offering_id);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW)
        plans_changed = store_col_int(q, 0);
    store_done(q);
    rc = store_query(tx, "SELECT b.updated_ms, s.state, s.started_ms FROM brokers b LEFT JOIN"
                         " scorecards s ON s.id = (SELECT id FROM scorecards WHERE broker_id ="
                         " b.id AND state != 'running' ORDER BY started_ms DESC, rowid DESC"
                         " LIMIT 1) WHERE b.offering_id = ?", &q, "s", offering_id);
    if (rc)
        return rc;
    int step;
    while ((step = store_step(q)) == STORE_ROW) {
        brokers++;
        const char *state = store_col_text(q, 1);
        int64_t started = store_col_int(q, 2);
        if (!state || strcmp(state, "passed") != 0 || started < store_col_int(q, 0) ||
            started < plans_changed)
            validated = false;
    }
    store_done(q);
    if (step < 0)
        return step;
    if (brokers == 0)
        json_array_append_new(missing, json_string("broker"));

    rc = store_query(tx, "SELECT p.name FROM plans p WHERE p.offering_id = ? AND p.state ="
                         " 'active' AND NOT EXISTS (SELECT 1 FROM deployments d WHERE"
                         " d.plan_id = p.id) ORDER BY p.name", &q, "s", offering_id);
    if (rc)
        return rc;
    while ((step = store_step(q)) == STORE_ROW) {
        char what[128];
        snprintf(what, sizeof what, "deployments.%s", store_col_text(q, 0));
        json_array_append_new(missing, json_string(what));
    }
    store_done(q);
    if (step < 0)
        return step;
    if (brokers == 0 || !validated)
        json_array_append_new(missing, json_string("scorecard"));
    return 0;
}

/* ---------------------------------------------------------------- handlers: brokers */

/* Brokers are the provider's business: a consumer who can see the offering is refused. */
static bool provider_read(catalog *c, http_req *req, catalog_offering *o, iam_principal *p)
{
    return catalog_offering_for_provider(c, req, "brokers", o, p);
}

static int region_taken(store_tx *tx, const char *offering_id, const char *region,
                        const char *except_id, bool *taken)
{
    store_stmt *q;
    int rc = store_query(tx, "SELECT 1 FROM brokers WHERE offering_id = ? AND region = ? AND"
                             " id != ?", &q, "sss", offering_id, region, except_id);
    if (rc)
        return rc;
    *taken = store_step(q) == STORE_ROW;
    store_done(q);
    return 0;
}

static void region_conflict(http_req *req, const char *region)
{
    http_reply_errorf(req, 409, "conflict", "The offering has a broker for region %s already; "
                      "change that one instead.", region);
}

static void brokers_create(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    json_t *body = http_json_body(req), *j = NULL;
    broker_fields f;
    unsigned char *sealed = NULL;
    size_t sealed_n = 0;
    if (!body || !parse_fields(req, body, true, &f))
        goto out;
    if (strcmp(f.auth_type, "basic") == 0 && !f.password) {
        catalog_field_error(req, "auth.password", "'auth.password' is required with basic auth.");
        goto out;
    }
    char id[37];
    uuid_v4(id);
    if (f.password && seal_password(c, id, f.password, &sealed, &sealed_n)) {
        http_reply_error(req, 500, "internal_error", "Out of memory.", NULL);
        goto out;
    }
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    bool taken = false;
    int count = 0;
    store_stmt *q;
    int rc = region_taken(tx, o.id, f.region, "", &taken);
    if (!rc && !(rc = store_query(tx, "SELECT count(*) FROM brokers WHERE offering_id = ?", &q,
                                  "s", o.id))) {
        if (store_step(q) == STORE_ROW)
            count = (int)store_col_int(q, 0);
        store_done(q);
    }
    if (!rc && (taken || count >= MAX_BROKERS)) {
        store_rollback(tx);
        if (taken)
            region_conflict(req, f.region);
        else
            http_reply_errorf(req, 409, "conflict", "An offering has at most %d brokers.",
                              MAX_BROKERS);
        goto out;
    }
    int64_t now = time_now_ms();
    if (!rc)
        rc = store_exec(tx, "INSERT INTO brokers (id, offering_id, region, url, auth, username,"
                            " secret, api_version, created_ms, updated_ms) VALUES (?, ?, ?, ?,"
                            " ?, ?, ?, ?, ?, ?)", "ssssssbsii", id, o.id, f.region, f.url,
                        f.auth_type, f.username, (const void *)sealed, sealed_n,
                        f.api_version ? f.api_version : "2.17", now, now);
    if (rc == OSB_E_CONFLICT) { /* the same region, registered meanwhile */
        store_rollback(tx);
        region_conflict(req, f.region);
        goto out;
    }
    if (!rc)
        rc = catalog_touch(tx, o.id);
    if (!rc)
        rc = broker_load_json(tx, o.id, id, &j);
    if (!rc) {
        char loc[256];
        snprintf(loc, sizeof loc, "/v1/offerings/%s/brokers/%s", o.id, id);
        http_add_header(req, "Location", loc);
    }
    catalog_finish(req, tx, rc, 201, j);
out:
    if (sealed) {
        secure_wipe(sealed, sealed_n);
        free(sealed);
    }
    /* The body held the password in clear. */
    const json_t *pw = json_object_get(json_object_get(body, "auth"), "password");
    if (json_is_string(pw))
        secure_wipe((char *)json_string_value(pw), json_string_length(pw));
    if (req->body.data && req->body.len)
        secure_wipe(req->body.data, req->body.len);
    json_decref(body);
    catalog_offering_free(&o);
}

static void brokers_list(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!provider_read(c, req, &o, &p))
        return;
    store_tx *tx;
    if (!catalog_begin(c, req, false, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    store_stmt *q;
    json_t *list = json_array();
    int rc = store_query(tx, "SELECT " BROKER_COLS " FROM brokers WHERE offering_id = ? ORDER"
                             " BY region", &q, "s", o.id);
    if (!rc) {
        while (!rc && store_step(q) == STORE_ROW)
            json_array_append_new(list, broker_json(tx, q, &rc));
        store_done(q);
    }
    json_t *j = json_pack("{s:I, s:o}", "total_count", (json_int_t)json_array_size(list),
                          "brokers", list);
    catalog_finish(req, tx, rc, 200, j);
    catalog_offering_free(&o);
}

static void brokers_get(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!provider_read(c, req, &o, &p))
        return;
    store_tx *tx;
    json_t *j = NULL;
    if (catalog_begin(c, req, false, &tx)) {
        int rc = broker_load_json(tx, o.id, req->params[1], &j);
        catalog_finish(req, tx, rc, 200, j);
    }
    catalog_offering_free(&o);
}

static void brokers_patch(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    const char *bid = req->params[1];
    json_t *body = http_json_body(req), *j = NULL;
    broker_fields f;
    unsigned char *sealed = NULL;
    size_t sealed_n = 0;
    if (!body || !parse_fields(req, body, false, &f))
        goto out;
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    if (json_object_size(body) == 0) { /* nothing changes: not even the time it changed */
        int rc = broker_load_json(tx, o.id, bid, &j);
        catalog_finish(req, tx, rc, 200, j);
        goto out;
    }
    store_stmt *q;
    char region[40] = "", url[MAX_URL + 1] = "", auth[16] = "";
    bool found = false;
    int rc = store_query(tx, "SELECT region, url, auth FROM brokers WHERE id = ? AND"
                             " offering_id = ?", &q, "ss", bid, o.id);
    if (!rc) {
        if ((found = store_step(q) == STORE_ROW)) {
            str_copy(region, sizeof region, store_col_text(q, 0));
            str_copy(url, sizeof url, store_col_text(q, 1));
            str_copy(auth, sizeof auth, store_col_text(q, 2));
        }
        store_done(q);
    }
    if (!rc && !found)
        rc = OSB_E_NOTFOUND;
    if (rc) {
        catalog_finish(req, tx, rc, 200, NULL);
        goto out;
    }
    bool url_changes = f.url && strcmp(f.url, url) != 0;
    bool now_basic = f.auth_type ? strcmp(f.auth_type, "basic") == 0 : strcmp(auth, "basic") == 0;
    /* The stored password goes only to the URL it was given for: whoever may edit the
     * broker must not be able to send it elsewhere without knowing it. */
    if (now_basic && !f.password && (url_changes || strcmp(auth, "basic") != 0)) {
        store_rollback(tx);
        catalog_field_error(req, "auth.password", url_changes
                            ? "'auth.password' is required when the url of a broker with "
                              "basic auth changes: the stored one is sent only to its own URL."
                            : "'auth.password' is required with basic auth.");
        goto out;
    }
    if (f.region && strcmp(f.region, region) != 0) {
        bool taken = false, deployed = false;
        rc = region_taken(tx, o.id, f.region, bid, &taken);
        if (!rc && !(rc = store_query(tx, "SELECT 1 FROM deployments WHERE broker_id = ? LIMIT 1",
                                      &q, "s", bid))) {
            deployed = store_step(q) == STORE_ROW;
            store_done(q);
        }
        if (!rc && (taken || deployed)) {
            store_rollback(tx);
            if (taken)
                region_conflict(req, f.region);
            else
                http_reply_errorf(req, 409, "conflict", "Plans are deployed to region %s "
                                  "through this broker; remove the deployments before moving "
                                  "it.", region);
            goto out;
        }
    }
    int64_t now = time_now_ms();
    if (!rc && f.password && seal_password(c, bid, f.password, &sealed, &sealed_n))
        rc = OSB_E_NOMEM;
    if (!rc)
        rc = store_exec(tx, "UPDATE brokers SET region = coalesce(?, region), url = coalesce(?,"
                            " url), api_version = coalesce(?, api_version), updated_ms = ?"
                            " WHERE id = ?", "sssis", f.region, f.url, f.api_version, now, bid);
    if (!rc && f.auth_type && !now_basic)
        rc = store_exec(tx, "UPDATE brokers SET auth = 'bearer', username = NULL, secret = NULL"
                            " WHERE id = ?", "s", bid);
    else if (!rc && f.auth_type)
        rc = store_exec(tx, "UPDATE brokers SET auth = 'basic', username = ? WHERE id = ?", "ss",
                        f.username, bid);
    if (!rc && sealed)
        rc = store_exec(tx, "UPDATE brokers SET secret = ? WHERE id = ?", "bs",
                        (const void *)sealed, sealed_n, bid);
    if (rc == OSB_E_CONFLICT) {
        store_rollback(tx);
        region_conflict(req, f.region ? f.region : region);
        goto out;
    }
    if (!rc)
        rc = catalog_touch(tx, o.id);
    if (!rc)
        rc = broker_load_json(tx, o.id, bid, &j);
    catalog_finish(req, tx, rc, 200, j);
out:
    if (sealed) {
        secure_wipe(sealed, sealed_n);
        free(sealed);
    }
    const json_t *pw = json_object_get(json_object_get(body, "auth"), "password");
    if (json_is_string(pw))
        secure_wipe((char *)json_string_value(pw), json_string_length(pw));
    if (req->body.data && req->body.len)
        secure_wipe(req->body.data, req->body.len);
    json_decref(body);
    catalog_offering_free(&o);
}

static void brokers_delete(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    const char *bid = req->params[1];
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    store_stmt *q;
    bool found = false;
    int deployed = 0;
    int rc = store_query(tx, "SELECT (SELECT count(*) FROM deployments WHERE broker_id = b.id)"
                             " FROM brokers b WHERE b.id = ? AND b.offering_id = ?", &q, "ss",
                         bid, o.id);
    if (!rc) {
        if ((found = store_step(q) == STORE_ROW))
            deployed = (int)store_col_int(q, 0);
        store_done(q);
    }
    if (!rc && found && deployed) {
        store_rollback(tx);
        http_reply_errorf(req, 409, "conflict", "%d plan deployment%s use%s this broker; remove "
                          "them first.", deployed, deployed == 1 ? "" : "s",
                          deployed == 1 ? "s" : "");
        catalog_offering_free(&o);
        return;
    }
    /* Instances keep the broker that serves them (and, removed, on record): it stays. */
    int live = 0, kept = 0;
    if (!rc && found && !(rc = store_query(tx, "SELECT count(*), coalesce(sum(CASE WHEN state"
                                               " != 'removed' THEN 1 ELSE 0 END), 0) FROM"
                                               " resource_instances WHERE broker_id = ?", &q,
                                           "s", bid))) {
        if (store_step(q) == STORE_ROW) {
            kept = (int)store_col_int(q, 0);
            live = (int)store_col_int(q, 1);
        }
        store_done(q);
    }
    if (!rc && kept) {
        store_rollback(tx);
        if (live)
            http_reply_errorf(req, 409, "conflict", "%d instance%s of the offering %s served by "
                              "this broker; delete them first.", live, live == 1 ? "" : "s",
                              live == 1 ? "is" : "are");
        else
            http_reply_errorf(req, 409, "conflict", "This broker served %d instance%s, kept on "
                              "record: it stays (change its URL or credentials instead).", kept,
                              kept == 1 ? "" : "s");
        catalog_offering_free(&o);
        return;
    }
    if (!rc && !found)
        rc = OSB_E_NOTFOUND;
    /* Its scorecards go with it; a validation still running finds its row gone and stops
     * writing. */
    if (!rc)
        rc = store_exec(tx, "DELETE FROM scorecards WHERE broker_id = ?", "s", bid);
    if (!rc)
        rc = store_exec(tx, "DELETE FROM brokers WHERE id = ?", "s", bid);
    if (!rc)
        rc = catalog_touch(tx, o.id);
    if (!rc) {
        if (store_commit(tx))
            http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        else
            http_reply(req, 204, NULL, NULL, 0);
    } else {
        store_rollback(tx);
        if (rc == OSB_E_NOTFOUND)
            http_reply_error(req, 404, "not_found", "No such broker.", NULL);
        else
            http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
    }
    catalog_offering_free(&o);
}

/* ---------------------------------------------------------------- handlers: deployments */

static json_t *deployment_json(const char *plan_id, const char *plan_name, const char *region,
                               const char *broker_id, int64_t created_ms)
{
    char created[32];
    time_format_rfc3339(created_ms, created);
    return json_pack("{s:s, s:s?, s:s, s:s, s:s}", "plan_id", plan_id, "plan_name", plan_name,
                     "region", region, "broker_id", broker_id, "created_at", created);
}

static void deployments_put(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    const char *pid = req->params[1], *region = req->params[2];
    if (!catalog_valid_region(region)) {
        catalog_field_error(req, "region", "The region must be 2 to 32 characters of lowercase "
                            "letters, digits and hyphens, starting with a letter.");
        catalog_offering_free(&o);
        return;
    }
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    store_stmt *q;
    char plan_name[128] = "", state[16] = "", broker[64] = "", current[64] = "";
    int64_t created = 0;
    int rc = store_query(tx, "SELECT name, state FROM plans WHERE id = ? AND offering_id = ?",
                         &q, "ss", pid, o.id);
    if (!rc) {
        if (store_step(q) == STORE_ROW) {
            str_copy(plan_name, sizeof plan_name, store_col_text(q, 0));
            str_copy(state, sizeof state, store_col_text(q, 1));
        }
        store_done(q);
    }
    if (!rc && !(rc = store_query(tx, "SELECT id FROM brokers WHERE offering_id = ? AND region"
                                      " = ?", &q, "ss", o.id, region))) {
        if (store_step(q) == STORE_ROW)
            str_copy(broker, sizeof broker, store_col_text(q, 0));
        store_done(q);
    }
    if (!rc && !(rc = store_query(tx, "SELECT broker_id, created_ms FROM deployments WHERE"
                                      " plan_id = ? AND region = ?", &q, "ss", pid, region))) {
        if (store_step(q) == STORE_ROW) {
            str_copy(current, sizeof current, store_col_text(q, 0));
            created = store_col_int(q, 1);
        }
        store_done(q);
    }
    const char *refusal = NULL;
    int status = 0;
    if (!rc && !plan_name[0]) {
        status = 404;
        refusal = "No such plan in this offering.";
    } else if (!rc && strcmp(state, "active") != 0) {
        status = 409;
        refusal = "The plan is deprecated: it is not deployed anywhere new.";
    } else if (!rc && !broker[0]) {
        status = 409;
        refusal = "The offering has no broker in this region; register one first.";
    }
    if (refusal) {
        store_rollback(tx);
        http_reply_error(req, status, status == 404 ? "not_found" : "conflict", refusal,
                         status == 409 && broker[0] == '\0' ? "region" : NULL);
        catalog_offering_free(&o);
        return;
    }
    int code = 200;
    if (!rc && !current[0]) {
        created = time_now_ms();
        code = 201;
        rc = store_exec(tx, "INSERT INTO deployments (plan_id, region, broker_id, created_ms)"
                            " VALUES (?, ?, ?, ?)", "sssi", pid, region, broker, created);
        if (!rc)
            rc = catalog_touch(tx, o.id);
    }
    json_t *j = rc ? NULL : deployment_json(pid, plan_name, region, broker, created);
    catalog_finish(req, tx, rc, code, j);
    catalog_offering_free(&o);
}

static void deployments_delete(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    const char *pid = req->params[1], *region = req->params[2];
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    int rc = store_exec(tx, "DELETE FROM deployments WHERE plan_id = ? AND region = ? AND"
                            " plan_id IN (SELECT id FROM plans WHERE offering_id = ?)", "sss",
                        pid, region, o.id);
    if (!rc && store_changes(tx) == 0)
        rc = OSB_E_NOTFOUND;
    if (!rc)
        rc = catalog_touch(tx, o.id);
    if (!rc)
        rc = store_commit(tx);
    else
        store_rollback(tx);
    if (rc == OSB_E_NOTFOUND)
        http_reply_error(req, 404, "not_found", "The plan is not deployed to this region.", NULL);
    else if (rc)
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
    else
        http_reply(req, 204, NULL, NULL, 0);
    catalog_offering_free(&o);
}

static void deployments_list(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!provider_read(c, req, &o, &p))
        return;
    store_tx *tx;
    if (!catalog_begin(c, req, false, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    store_stmt *q;
    json_t *list = json_array();
    int rc = store_query(tx, "SELECT d.plan_id, p.name, d.region, d.broker_id, d.created_ms FROM"
                             " deployments d JOIN plans p ON p.id = d.plan_id WHERE"
                             " p.offering_id = ? ORDER BY p.name, d.region", &q, "s", o.id);
    if (!rc) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(list, deployment_json(store_col_text(q, 0),
                                                        store_col_text(q, 1),
                                                        store_col_text(q, 2),
                                                        store_col_text(q, 3),
                                                        store_col_int(q, 4)));
        store_done(q);
    }
    json_t *j = json_pack("{s:I, s:o}", "total_count", (json_int_t)json_array_size(list),
                          "deployments", list);
    catalog_finish(req, tx, rc, 200, j);
    catalog_offering_free(&o);
}

void catalog_broker_routes(catalog *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/offerings/:id/brokers", P, brokers_create, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/brokers", P, brokers_list, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/brokers/:bid", P, brokers_get, c);
    rc |= http_route(r, HTTP_PATCH, "/v1/offerings/:id/brokers/:bid", P, brokers_patch, c);
    rc |= http_route(r, HTTP_DELETE, "/v1/offerings/:id/brokers/:bid", P, brokers_delete, c);
    rc |= http_route(r, HTTP_PUT, "/v1/offerings/:id/plans/:pid/deployments/:region", P,
                     deployments_put, c);
    rc |= http_route(r, HTTP_DELETE, "/v1/offerings/:id/plans/:pid/deployments/:region", P,
                     deployments_delete, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/deployments", P, deployments_list, c);
    if (rc)
        log_error("catalog: cannot register the broker routes");
    catalog_validate_routes(c, r);
}
