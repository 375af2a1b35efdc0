/* catalog offerings: the offering's metadata (docs, listing, support model, revenue share),
 * its validation field by field, and the six onboarding steps computed from what is stored,
 * so the console shows what is still missing instead of trusting a checklist. */
#include "catalog/catalog_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 31 /* "under 32 characters" */
#define MAX_DISPLAY 100
#define MAX_SHORT 200
#define MAX_LONG 20000
#define MAX_URL 2048
#define MAX_TAGS 20
#define MAX_TAG 32
#define MAX_BULLETS 10
#define MAX_MEDIA 10

/* ---------------------------------------------------------------- shared helpers */

void catalog_field_error(http_req *req, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_reply_error(req, 400, "invalid_field", msg, field);
}

bool catalog_begin(catalog *c, http_req *req, bool write, store_tx **tx)
{
    if (store_begin(c->db, write, tx) == 0)
        return true;
    http_reply_error(req, 503, "unavailable", "The catalog store is unavailable.", NULL);
    return false;
}

void catalog_finish(http_req *req, store_tx *tx, int rc, int status, json_t *j)
{
    if (!rc)
        rc = store_commit(tx);
    else
        store_rollback(tx);
    if (rc == OSB_E_CONFLICT)
        http_reply_error(req, 409, "conflict", "It conflicts with what is stored: it exists "
                         "already, or other records (such as instances) still use it.", NULL);
    else if (rc == OSB_E_NOTFOUND)
        http_reply_error(req, 404, "not_found", "No such resource.", NULL);
    else if (rc)
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
    else
        http_reply_json(req, status, j);
    json_decref(j);
}

int catalog_touch(store_tx *tx, const char *offering_id)
{
    return store_exec(tx, "UPDATE offerings SET revision = revision + 1, updated_ms = ?"
                          " WHERE id = ?", "is", time_now_ms(), offering_id);
}

int catalog_offering_load(store_tx *tx, const char *id, catalog_offering *o)
{
    store_stmt *q;
    memset(o, 0, sizeof *o);
    int rc = store_query(tx, "SELECT id, account_id, name, doc, visibility, publication,"
                             " service_iam_id, client_id, revision, created_ms, updated_ms"
                             " FROM offerings WHERE id = ?", &q, "s", id);
    if (rc)
        return rc;
    rc = OSB_E_NOTFOUND;
    if (store_step(q) == STORE_ROW) {
        str_copy(o->id, sizeof o->id, store_col_text(q, 0));
        str_copy(o->account_id, sizeof o->account_id, store_col_text(q, 1));
        str_copy(o->name, sizeof o->name, store_col_text(q, 2));
        const char *doc = store_col_text(q, 3);
        o->doc = json_loads(doc ? doc : "{}", 0, NULL);
        str_copy(o->visibility, sizeof o->visibility, store_col_text(q, 4));
        str_copy(o->publication, sizeof o->publication, store_col_text(q, 5));
        str_copy(o->service_iam_id, sizeof o->service_iam_id, store_col_text(q, 6));
        str_copy(o->client_id, sizeof o->client_id, store_col_text(q, 7));
        o->revision = store_col_int(q, 8);
        o->created_ms = store_col_int(q, 9);
        o->updated_ms = store_col_int(q, 10);
        rc = json_is_object(o->doc) ? 0 : OSB_E_STORE;
    }
    store_done(q);
    if (rc)
        catalog_offering_free(o);
    return rc;
}

void catalog_offering_free(catalog_offering *o)
{
    json_decref(o->doc);
    o->doc = NULL;
}

bool catalog_visible(store_tx *tx, const catalog_offering *o, const iam_principal *p)
{
    if (p->operator || strcmp(o->account_id, p->account_id) == 0 ||
        strcmp(o->visibility, "public") == 0)
        return true;
    if (strcmp(o->visibility, "limited") != 0)
        return false;
    store_stmt *q;
    bool listed = false;
    if (!store_query(tx, "SELECT 1 FROM offering_allowlist WHERE offering_id = ? AND"
                         " account_id = ?", &q, "ss", o->id, p->account_id)) {
        listed = store_step(q) == STORE_ROW;
        store_done(q);
    }
    return listed;
}

bool catalog_offering_for(catalog *c, http_req *req, const char *action, catalog_offering *o,
                          iam_principal *p)
{
    store_tx *tx;
    memset(o, 0, sizeof *o);
    if (!iam_authenticate(c->iam, req, p) || !catalog_begin(c, req, false, &tx))
        return false;
    int rc = catalog_offering_load(tx, req->params[0], o);
    bool visible = !rc && catalog_visible(tx, o, p);
    store_rollback(tx);
    if (rc && rc != OSB_E_NOTFOUND) {
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        return false;
    }
    if (rc || !visible) {
        catalog_offering_free(o);
        http_reply_error(req, 404, "not_found", "No such offering.", NULL);
        return false;
    }
    /* Consumers who can see an offering read it through the catalog's read action; what
     * changes it is the provider's (its account's policies) or the operator's. */
    iam_resource r = {.account_id = o->account_id, .service_name = NULL,
                      .resource_type = "offering", .resource = o->id};
    bool own = p->operator || strcmp(o->account_id, p->account_id) == 0;
    if ((own && iam_decide(c->iam, p, action, &r)) ||
        (!own && strcmp(action, "catalog.offering.read") == 0))
        return true;
    catalog_offering_free(o);
    http_reply_errorf(req, 403, "forbidden", "Not allowed to %s.", action);
    return false;
}

bool catalog_offering_for_provider(catalog *c, http_req *req, const char *what,
                                   catalog_offering *o, iam_principal *p)
{
    if (!catalog_offering_for(c, req, "catalog.offering.read", o, p))
        return false;
    if (p->operator || strcmp(o->account_id, p->account_id) == 0)
        return true;
    catalog_offering_free(o);
    http_reply_errorf(req, 403, "forbidden", "Only the offering's provider sees its %s.", what);
    return false;
}

/* ---------------------------------------------------------------- field validation */

static bool is_http_url(const char *s)
{
    if (!s || strlen(s) > MAX_URL ||
        !(str_has_prefix(s, "https://") || str_has_prefix(s, "http://")))
        return false;
    const char *host = strstr(s, "://") + 3;
    if (!*host || *host == '/' || *host == '?' || *host == '#')
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '"' || *c == '<' || *c == '>' ||
            *c == '\\')
            return false;
    return true;
}

static bool is_email(const char *s)
{
    const char *at = s ? strchr(s, '@') : NULL;
    if (!at || at == s || strchr(at + 1, '@') || !strchr(at + 1, '.') || strlen(s) > 254)
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '<' || *c == '>' || *c == '"')
            return false;
    return at[1] != '.' && s[strlen(s) - 1] != '.';
}

/* Plain text without control characters (newlines and tabs allowed where multiline). */
bool catalog_valid_text(const json_t *v, size_t max, bool multiline)
{
    /* max counts characters: jansson's strings are valid UTF-8, so the characters are the
     * bytes that do not continue a sequence. Four bytes at most per character. */
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4 * max)
        return false;
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return false; /* embedded NUL */
    size_t chars = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c < ' ' && !(multiline && (*c == '\n' || *c == '\t' || *c == '\r'))) ||
            *c == 0x7f)
            return false;
        chars += (*c & 0xC0) != 0x80;
    }
    return chars <= max;
}

bool catalog_valid_service_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_NAME || s[0] < 'a' || s[0] > 'z' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
        if (ch == '-' && s[i + 1] == '-')
            return false;
    }
    return true;
}

/* An OSB id given by the provider (one its broker already uses): 1 to 64 characters. */
bool catalog_valid_osb_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
                              (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static bool valid_tag(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_TAG)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == ':' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

/* "0.87": a decimal fraction in [0, 1] with at most four digits. */
static bool valid_share(const char *s)
{
    if (!s)
        return false;
    if (strcmp(s, "1") == 0 || strcmp(s, "0") == 0)
        return true;
    const char *frac;
    if (str_has_prefix(s, "0."))
        frac = s + 2;
    else if (str_has_prefix(s, "1."))
        frac = s + 2;
    else
        return false;
    size_t n = strlen(frac);
    if (n == 0 || n > 4)
        return false;
    for (size_t i = 0; i < n; i++)
        if (frac[i] < '0' || frac[i] > '9' || (s[0] == '1' && frac[i] != '0'))
            return false;
    return true;
}

static bool only_keys(http_req *req, const json_t *obj, const char *prefix,
                      const char *const *keys)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool known = false;
        for (const char *const *w = keys; *w && !known; w++)
            known = strcmp(*w, k) == 0;
        if (!known) {
            char f[128];
            snprintf(f, sizeof f, "%s%s", prefix, k);
            const char *of = *prefix ? prefix : "an offering";
            size_t n = strlen(of); /* "listing." names "listing" */
            catalog_field_error(req, f, "'%s' is not a field of %.*s.", f,
                                (int)(n - (of[n - 1] == '.')), of);
            return false;
        }
    }
    return true;
}

static bool valid_listing(http_req *req, const json_t *v)
{
    static const char *const keys[] = {"bullets", "media", NULL};
    static const char *const bullet_keys[] = {"title", "description", NULL};
    static const char *const media_keys[] = {"type", "url", "caption", NULL};
    char f[96];
    if (!json_is_object(v)) {
        catalog_field_error(req, "listing", "'listing' must be an object with 'bullets' and "
                            "'media'.");
        return false;
    }
    if (!only_keys(req, v, "listing.", keys))
        return false;
    const json_t *bullets = json_object_get(v, "bullets"), *media = json_object_get(v, "media");
    if (bullets && (!json_is_array(bullets) || json_array_size(bullets) > MAX_BULLETS)) {
        catalog_field_error(req, "listing.bullets", "'listing.bullets' must be an array of at "
                            "most %d bullets.", MAX_BULLETS);
        return false;
    }
    if (media && (!json_is_array(media) || json_array_size(media) > MAX_MEDIA)) {
        catalog_field_error(req, "listing.media", "'listing.media' must be an array of at most "
                            "%d items.", MAX_MEDIA);
        return false;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(bullets, i, e) {
        snprintf(f, sizeof f, "listing.bullets[%zu]", i);
        if (!json_is_object(e)) {
            catalog_field_error(req, f, "'%s' must be an object {title, description}.", f);
            return false;
        }
        snprintf(f, sizeof f, "listing.bullets[%zu].", i);
        if (!only_keys(req, e, f, bullet_keys))
            return false;
        snprintf(f, sizeof f, "listing.bullets[%zu].title", i);
        if (!catalog_valid_text(json_object_get(e, "title"), 100, false)) {
            catalog_field_error(req, f, "'%s' is required: text of 1 to 100 characters.", f);
            return false;
        }
        snprintf(f, sizeof f, "listing.bullets[%zu].description", i);
        if (!catalog_valid_text(json_object_get(e, "description"), 500, true)) {
            catalog_field_error(req, f, "'%s' is required: text of 1 to 500 characters.", f);
            return false;
        }
    }
    json_array_foreach(media, i, e) {
        snprintf(f, sizeof f, "listing.media[%zu]", i);
        if (!json_is_object(e)) {
            catalog_field_error(req, f, "'%s' must be an object {type, url, caption}.", f);
            return false;
        }
        snprintf(f, sizeof f, "listing.media[%zu].", i);
        if (!only_keys(req, e, f, media_keys))
            return false;
        const char *type = json_string_value(json_object_get(e, "type"));
        snprintf(f, sizeof f, "listing.media[%zu].type", i);
        if (!type || (strcmp(type, "image") && strcmp(type, "video"))) {
            catalog_field_error(req, f, "'%s' must be \"image\" or \"video\".", f);
            return false;
        }
        snprintf(f, sizeof f, "listing.media[%zu].url", i);
        if (!is_http_url(json_string_value(json_object_get(e, "url")))) {
            catalog_field_error(req, f, "'%s' must be an absolute http(s) URL.", f);
            return false;
        }
        const json_t *cap = json_object_get(e, "caption");
        snprintf(f, sizeof f, "listing.media[%zu].caption", i);
        if (cap && !catalog_valid_text(cap, 200, false)) {
            catalog_field_error(req, f, "'%s' must be text of 1 to 200 characters.", f);
            return false;
        }
    }
    return true;
}

static bool valid_support(http_req *req, const json_t *v)
{
    static const char *const keys[] = {"url", "email", "hours", "severity_targets", NULL};
    if (!json_is_object(v)) {
        catalog_field_error(req, "support", "'support' must be an object {url, email, hours, "
                            "severity_targets}.");
        return false;
    }
    if (!only_keys(req, v, "support.", keys))
        return false;
    const json_t *url = json_object_get(v, "url"), *email = json_object_get(v, "email");
    const json_t *hours = json_object_get(v, "hours");
    const json_t *targets = json_object_get(v, "severity_targets");
    if (url && !is_http_url(json_string_value(url))) {
        catalog_field_error(req, "support.url", "'support.url' must be an absolute http(s) URL.");
        return false;
    }
    if (email && !is_email(json_string_value(email))) {
        catalog_field_error(req, "support.email", "'support.email' must be an email address.");
        return false;
    }
    if (hours && !catalog_valid_text(hours, 200, false)) {
        catalog_field_error(req, "support.hours", "'support.hours' must be text of 1 to 200 "
                            "characters, e.g. \"24x7\" or \"Mon-Fri 08:00-18:00 CET\".");
        return false;
    }
    if (targets) {
        static const char *const sev[] = {"1", "2", "3", "4", NULL};
        if (!json_is_object(targets)) {
            catalog_field_error(req, "support.severity_targets", "'support.severity_targets' "
                                "must map severities \"1\" to \"4\" to first-response minutes.");
            return false;
        }
        if (!only_keys(req, targets, "support.severity_targets.", sev))
            return false;
        const json_t *m;
        json_int_t prev = 0;
        for (int i = 0; sev[i]; i++) {
            char f[64];
            snprintf(f, sizeof f, "support.severity_targets.%s", sev[i]);
            m = json_object_get(targets, sev[i]);
            if (!json_is_integer(m) || json_integer_value(m) <= 0 ||
                json_integer_value(m) > 60 * 24 * 30 || json_integer_value(m) < prev) {
                catalog_field_error(req, f, "'%s' must be a number of minutes from 1 to 43200, "
                                    "no shorter than the target of a more severe case.", f);
                return false;
            }
            prev = json_integer_value(m);
        }
    }
    return true;
}

/* Validates one top-level field of an offering (value not NULL; JSON null handled by the
 * caller); replies 400 naming it when wrong. */
static bool valid_field(http_req *req, const char *k, const json_t *v)
{
    if (strcmp(k, "display_name") == 0) {
        if (catalog_valid_text(v, MAX_DISPLAY, false))
            return true;
        catalog_field_error(req, k, "'display_name' must be text of 1 to %d characters.",
                            MAX_DISPLAY);
    } else if (strcmp(k, "short_description") == 0) {
        if (catalog_valid_text(v, MAX_SHORT, false))
            return true;
        catalog_field_error(req, k, "'short_description' must be text of 1 to %d characters.",
                            MAX_SHORT);
    } else if (strcmp(k, "long_description") == 0) {
        if (catalog_valid_text(v, MAX_LONG, true))
            return true;
        catalog_field_error(req, k, "'long_description' must be text of 1 to %d characters.",
                            MAX_LONG);
    } else if (strcmp(k, "tags") == 0) {
        size_t i;
        const json_t *t;
        bool ok = json_is_array(v) && json_array_size(v) <= MAX_TAGS;
        json_array_foreach(v, i, t) ok = ok && valid_tag(json_string_value(t));
        if (ok)
            return true;
        catalog_field_error(req, k, "'tags' must be an array of at most %d tags, each 1 to %d "
                            "characters of a-z, 0-9, '-', ':', '_' or '.'.", MAX_TAGS, MAX_TAG);
    } else if (strcmp(k, "icon_url") == 0 || strcmp(k, "documentation_url") == 0 ||
               strcmp(k, "instructions_url") == 0 || strcmp(k, "terms_url") == 0) {
        if (is_http_url(json_string_value(v)))
            return true;
        catalog_field_error(req, k, "'%s' must be an absolute http(s) URL of at most %d "
                            "characters.", k, MAX_URL);
    } else if (strcmp(k, "listing") == 0) {
        return valid_listing(req, v);
    } else if (strcmp(k, "support") == 0) {
        return valid_support(req, v);
    } else if (strcmp(k, "revenue_share") == 0) {
        if (valid_share(json_string_value(v)))
            return true;
        catalog_field_error(req, k, "'revenue_share' must be a decimal string from \"0\" to "
                            "\"1\" with at most 4 digits, e.g. \"0.87\".");
    } else {
        catalog_field_error(req, k, "'%s' is not a field of an offering.", k);
    }
    return false;
}

/* Applies a create/patch body's metadata fields to doc; false after replying 400. Keys the
 * caller handles itself (name, account_id) are skipped. */
static bool apply_fields(http_req *req, json_t *doc, const json_t *body, bool operator)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) {
        if (strcmp(k, "name") == 0 || strcmp(k, "account_id") == 0 || strcmp(k, "id") == 0)
            continue;
        if (json_is_null(v)) {
            static const char *const removable[] = {
                "short_description", "long_description", "tags", "icon_url",
                "documentation_url", "instructions_url", "terms_url", "listing", "support",
                NULL};
            bool ok = false;
            for (const char *const *w = removable; *w && !ok; w++)
                ok = strcmp(*w, k) == 0;
            if (!ok) {
                catalog_field_error(req, k, "'%s' cannot be removed.", k);
                return false;
            }
            json_object_del(doc, k);
            continue;
        }
        if (!valid_field(req, k, v))
            return false;
        /* The share of the revenue is the program's term, not the provider's to set. */
        if (strcmp(k, "revenue_share") == 0 && !operator &&
            !json_equal(v, json_object_get(doc, "revenue_share"))) {
            http_reply_error(req, 403, "forbidden", "The revenue share is set by the platform's "
                             "operator.", "revenue_share");
            return false;
        }
        json_object_set(doc, k, v);
        if (strcmp(k, "listing") == 0) /* an edited listing is reviewed again */
            json_object_set_new(doc, "listing_review", json_pack("{s:s}", "state", "draft"));
    }
    return true;
}

/* ---------------------------------------------------------------- steps */

static bool has_text(const json_t *doc, const char *k)
{
    const char *s = json_string_value(json_object_get(doc, k));
    return s && *s;
}

static void need(json_t *missing, bool ok, const char *what)
{
    if (!ok)
        json_array_append_new(missing, json_string(what));
}

static int client_redirects(store_tx *tx, const char *client_id, size_t *n)
{
    store_stmt *q;
    *n = 0;
    int rc = store_query(tx, "SELECT redirect_uris FROM oauth_clients WHERE client_id = ?", &q,
                         "s", client_id);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW) {
        json_t *u = json_loads(store_col_text(q, 0), 0, NULL);
        *n = json_array_size(u);
        json_decref(u);
    }
    store_done(q);
    return 0;
}

static int has_evidence(store_tx *tx, const char *offering_id, const char *kind, bool *yes)
{
    store_stmt *q;
    *yes = false;
    int rc = store_query(tx, "SELECT 1 FROM offering_evidence WHERE offering_id = ? AND kind = ?"
                             " LIMIT 1", &q, "ss", offering_id, kind);
    if (rc)
        return rc;
    *yes = store_step(q) == STORE_ROW;
    store_done(q);
    return 0;
}

/* Whether a plan of the offering has a metric the provider meters (any but the platform's
 * monthly fee): then onboarding wants accepted usage before publication. */
static int meters_usage(store_tx *tx, const char *offering_id, bool *yes)
{
    store_stmt *q;
    *yes = false;
    int rc = store_query(tx, "SELECT doc FROM plans WHERE offering_id = ?", &q, "s", offering_id);
    if (rc)
        return rc;
    int st = STORE_DONE;
    while (!*yes && (st = store_step(q)) == STORE_ROW) {
        json_t *d = json_loads(store_col_text(q, 0), 0, NULL);
        size_t i;
        const json_t *m;
        json_array_foreach(json_object_get(d, "metrics"), i, m) {
            const char *id = json_string_value(json_object_get(m, "id"));
            if (id && strcmp(id, "MONTHLY_FEE") != 0)
                *yes = true;
        }
        json_decref(d);
    }
    store_done(q);
    return *yes || st >= 0 ? 0 : st;
}

static json_t *step(int n, const char *id, const char *title, json_t *missing)
{
    return json_pack("{s:i, s:s, s:s, s:b, s:o}", "step", n, "id", id, "title", title,
                     "complete", json_array_size(missing) == 0, "missing", missing);
}

/* The six steps of onboarding with what each still misses; *all_before_publish tells
 * whether steps 1 to 5 are complete. */
int catalog_steps(store_tx *tx, const catalog_offering *o, json_t **out,
                  bool *all_before_publish)
{
    const json_t *d = o->doc;
    const json_t *listing = json_object_get(d, "listing");
    const json_t *support = json_object_get(d, "support");
    const char *review =
        json_string_value(json_object_get(json_object_get(d, "listing_review"), "state"));
    json_t *m1 = json_array(), *m2 = json_array(), *m3 = json_array(), *m4 = json_array(),
           *m5 = json_array(), *m6 = json_array();
    need(m1, has_text(d, "documentation_url"), "documentation_url");
    need(m1, json_array_size(json_object_get(listing, "bullets")) > 0, "listing.bullets");
    need(m1, review && strcmp(review, "approved") == 0, "listing_review");

    need(m2, has_text(d, "display_name"), "display_name");
    need(m2, has_text(d, "short_description"), "short_description");
    need(m2, has_text(d, "long_description"), "long_description");
    need(m2, has_text(d, "icon_url"), "icon_url");
    need(m2, has_text(d, "terms_url"), "terms_url");
    need(m2, has_text(support, "url") || has_text(support, "email"), "support.url");
    need(m2, has_text(support, "hours"), "support.hours");
    need(m2, json_object_size(json_object_get(support, "severity_targets")) == 4,
         "support.severity_targets");
    int rc = catalog_plans_missing(tx, o->id, m2);
    need(m2, o->service_iam_id[0] && o->client_id[0], "iam");

    if (!rc)
        rc = catalog_brokers_missing(tx, o->id, m3);

    size_t redirects = 0;
    if (!rc && o->client_id[0])
        rc = client_redirects(tx, o->client_id, &redirects);
    need(m4, o->client_id[0], "iam");
    need(m4, redirects > 0, "sso.redirect_uris");

    bool lifecycle = false, usage = false, metered = false;
    if (!rc)
        rc = has_evidence(tx, o->id, "instance_lifecycle", &lifecycle);
    if (!rc)
        rc = has_evidence(tx, o->id, "usage", &usage);
    if (!rc)
        rc = meters_usage(tx, o->id, &metered);
    need(m5, strcmp(o->visibility, "draft") != 0, "visibility.limited");
    need(m5, lifecycle, "evidence.instance_lifecycle");
    need(m5, usage || !metered, "evidence.usage");

    need(m6, strcmp(o->visibility, "public") == 0, "publication");
    if (all_before_publish)
        *all_before_publish = !json_array_size(m1) && !json_array_size(m2) &&
                              !json_array_size(m3) && !json_array_size(m4) &&
                              !json_array_size(m5);
    *out = json_pack("[o, o, o, o, o, o]",
                     step(1, "docs_and_listing", "Documentation and marketing listing", m1),
                     step(2, "offering", "Offering: catalog metadata, plans and pricing, IAM", m2),
                     step(3, "broker", "Service broker: registered, deployed, validated", m3),
                     step(4, "sso", "Dashboard single sign-on", m4),
                     step(5, "limited", "Tested in limited visibility", m5),
                     step(6, "publish", "Published to every account", m6));
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- JSON */

json_t *catalog_offering_json(const catalog_offering *o, json_t *steps)
{
    char created[32], updated[32];
    time_format_rfc3339(o->created_ms, created);
    time_format_rfc3339(o->updated_ms, updated);
    json_t *j = json_deep_copy(o->doc);
    json_object_set_new(j, "id", json_string(o->id));
    json_object_set_new(j, "account_id", json_string(o->account_id));
    json_object_set_new(j, "name", json_string(o->name));
    json_object_set_new(j, "visibility", json_string(o->visibility));
    json_object_set_new(j, "publication", json_string(o->publication));
    json_object_set_new(j, "iam", o->service_iam_id[0]
                                      ? json_pack("{s:s, s:s}", "service_id", o->service_iam_id,
                                                  "client_id", o->client_id)
                                      : json_null());
    json_object_set_new(j, "revision", json_integer(o->revision));
    json_object_set_new(j, "created_at", json_string(created));
    json_object_set_new(j, "updated_at", json_string(updated));
    if (steps)
        json_object_set_new(j, "steps", steps);
    return j;
}

/* ---------------------------------------------------------------- handlers */

static int account_kind(store_tx *tx, const char *account_id, char kind[16])
{
    store_stmt *q;
    kind[0] = '\0';
    int rc = store_query(tx, "SELECT kind FROM accounts WHERE id = ?", &q, "s", account_id);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW)
        str_copy(kind, 16, store_col_text(q, 0));
    store_done(q);
    return kind[0] ? 0 : OSB_E_NOTFOUND;
}

static void offerings_create(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    json_t *body = http_json_body(req);
    if (!body)
        return;
    json_t *doc = NULL;
    const json_t *acct = json_object_get(body, "account_id");
    if (!json_is_object(body)) {
        catalog_field_error(req, "", "The body must be a JSON object.");
        goto out;
    }
    if (acct && !json_is_string(acct)) {
        catalog_field_error(req, "account_id", "'account_id' must be a string.");
        goto out;
    }
    const char *account = acct ? json_string_value(acct) : p.account_id;
    iam_resource r = {.account_id = account, .resource_type = "offering"};
    if (!iam_decide(c->iam, &p, "catalog.offering.create", &r)) {
        if (strcmp(account, p.account_id) != 0 && !p.operator)
            http_reply_error(req, 404, "not_found", "No such account.", "account_id");
        else
            http_reply_error(req, 403, "forbidden", "Not allowed to catalog.offering.create.",
                             NULL);
        goto out;
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!catalog_valid_service_name(name)) {
        catalog_field_error(req, "name", "'name' is required: 1 to %d characters of lowercase "
                            "letters, digits and single hyphens, starting with a letter and not "
                            "ending with a hyphen.", MAX_NAME);
        goto out;
    }
    if (!json_object_get(body, "display_name")) {
        catalog_field_error(req, "display_name", "'display_name' is required.");
        goto out;
    }
    const json_t *given = json_object_get(body, "id");
    if (given && !catalog_valid_osb_id(json_string_value(given))) {
        catalog_field_error(req, "id", "'id' (the OSB service id, optional) must be 1 to 64 "
                            "characters of letters, digits, '-', '_' or '.'.");
        goto out;
    }
    doc = json_pack("{s:s, s:{s:s}}", "revenue_share", "0.87", "listing_review", "state",
                    "draft");
    if (!apply_fields(req, doc, body, p.operator))
        goto out;
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    char kind[16];
    int rc = account_kind(tx, account, kind);
    if (rc == OSB_E_NOTFOUND || (!rc && strcmp(kind, "consumer") == 0)) {
        store_rollback(tx);
        if (rc)
            http_reply_error(req, 404, "not_found", "No such account.", "account_id");
        else
            http_reply_error(req, 403, "forbidden", "Only provider accounts offer services; "
                             "this account is a consumer account.", "account_id");
        goto out;
    }
    char id[65];
    if (given)
        snprintf(id, sizeof id, "%s", json_string_value(given));
    else
        uuid_v4(id);
    if (!rc && given) {
        store_stmt *q;
        if (!(rc = store_query(tx, "SELECT 1 FROM offerings WHERE id = ?", &q, "s", id))) {
            bool taken = store_step(q) == STORE_ROW;
            store_done(q);
            if (taken) {
                store_rollback(tx);
                http_reply_error(req, 409, "conflict", "An offering has this id.", "id");
                goto out;
            }
        }
    }
    int64_t now = time_now_ms();
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!rc)
        rc = text ? store_exec(tx, "INSERT INTO offerings (id, account_id, name, doc, created_ms,"
                                   " updated_ms) VALUES (?, ?, ?, ?, ?, ?)", "ssssii", id,
                               account, name, text, now, now)
                  : OSB_E_NOMEM;
    free(text);
    catalog_offering o;
    json_t *j = NULL, *steps = NULL;
    if (!rc && !(rc = catalog_offering_load(tx, id, &o))) {
        rc = catalog_steps(tx, &o, &steps, NULL);
        j = rc ? NULL : catalog_offering_json(&o, steps);
        catalog_offering_free(&o);
    }
    if (rc == OSB_E_CONFLICT) {
        store_rollback(tx);
        http_reply_error(req, 409, "conflict", "The service name is taken.", "name");
        goto out;
    }
    catalog_finish(req, tx, rc, 201, j);
out:
    json_decref(doc);
    json_decref(body);
}

static void offerings_list(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    const char *account = http_query(req, "account_id");
    /* ?awaiting=operator: what waits for the operator (a listing in review, a publication
     * requested), across accounts; the operator's only. */
    const char *awaiting = http_query(req, "awaiting");
    if (awaiting && (!str_eq(awaiting, "operator") || account)) {
        http_reply_error(req, 400, "invalid_query",
                         "'awaiting' is 'operator', without 'account_id'.", "awaiting");
        return;
    }
    if (awaiting && !p.operator) {
        http_reply_error(req, 403, "forbidden", "Only the operator sees what awaits it.",
                         "awaiting");
        return;
    }
    if (!account)
        account = p.account_id;
    iam_resource r = {.account_id = account, .resource_type = "offering"};
    if (!awaiting && !iam_decide(c->iam, &p, "catalog.offering.list", &r)) {
        if (strcmp(account, p.account_id) != 0 && !p.operator)
            http_reply_error(req, 404, "not_found", "No such account.", "account_id");
        else
            http_reply_error(req, 403, "forbidden", "Not allowed to catalog.offering.list.", NULL);
        return;
    }
    store_tx *tx;
    store_stmt *q;
    if (!catalog_begin(c, req, false, &tx))
        return;
    json_t *list = json_array();
    int rc = awaiting ? store_query(tx, "SELECT id FROM offerings ORDER BY updated_ms", &q, "")
                      : store_query(tx, "SELECT id FROM offerings WHERE account_id = ? ORDER BY"
                                        " name",
                                    &q, "s", account);
    if (!rc) {
        while (!rc && store_step(q) == STORE_ROW) {
            catalog_offering o;
            json_t *steps;
            char id[64];
            str_copy(id, sizeof id, store_col_text(q, 0));
            if (!(rc = catalog_offering_load(tx, id, &o))) {
                const char *review = json_string_value(
                    json_object_get(json_object_get(o.doc, "listing_review"), "state"));
                bool waits = str_eq(review, "in_review") || str_eq(o.publication, "requested");
                if ((!awaiting || waits) && !(rc = catalog_steps(tx, &o, &steps, NULL)))
                    json_array_append_new(list, catalog_offering_json(&o, steps));
                catalog_offering_free(&o);
            }
        }
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        json_decref(list);
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        return;
    }
    json_t *j = json_pack("{s:I, s:o}", "total_count", (json_int_t)json_array_size(list),
                          "offerings", list);
    http_reply_json(req, 200, j);
    json_decref(j);
}

static void offerings_get(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &p))
        return;
    bool own = p.operator || strcmp(o.account_id, p.account_id) == 0;
    json_t *steps = NULL;
    store_tx *tx;
    int rc = 0;
    if (own) { /* the steps are the provider's console; consumers see the listing only */
        if (!catalog_begin(c, req, false, &tx)) {
            catalog_offering_free(&o);
            return;
        }
        rc = catalog_steps(tx, &o, &steps, NULL);
        store_rollback(tx);
    }
    if (rc) {
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
    } else {
        json_t *j = catalog_offering_json(&o, steps);
        if (!own) {
            json_object_del(j, "iam");
            json_object_del(j, "revenue_share");
            json_object_del(j, "publication");
            json_object_del(j, "listing_review");
        }
        http_reply_json(req, 200, j);
        json_decref(j);
    }
    catalog_offering_free(&o);
}

static void offerings_patch(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    json_t *body = http_json_body(req), *j = NULL;
    if (!body)
        goto out;
    if (!json_is_object(body)) {
        catalog_field_error(req, "", "The body must be a JSON object.");
        goto out;
    }
    const json_t *name = json_object_get(body, "name");
    if (json_object_get(body, "account_id")) {
        catalog_field_error(req, "account_id", "An offering cannot change accounts.");
        goto out;
    }
    if (name && !catalog_valid_service_name(json_string_value(name))) {
        catalog_field_error(req, "name", "'name' must be 1 to %d characters of lowercase "
                            "letters, digits and single hyphens, starting with a letter.",
                            MAX_NAME);
        goto out;
    }
    if (json_object_get(body, "id")) {
        catalog_field_error(req, "id", "An offering's id (its OSB service id) never changes.");
        goto out;
    }
    bool rename = name && strcmp(json_string_value(name), o.name) != 0;
    if (rename && (strcmp(o.visibility, "draft") != 0 || o.service_iam_id[0])) {
        catalog_field_error(req, "name", "The service name is fixed once IAM is enabled or the "
                            "offering left draft: its service ID's policy, its dashboard client, "
                            "brokers and instances use it.");
        goto out;
    }
    /* Optimistic concurrency for the console: If-Match: <revision>. */
    const char *if_match = http_header(req, "If-Match");
    char rev[32];
    snprintf(rev, sizeof rev, "%lld", (long long)o.revision);
    if (if_match && strcmp(if_match, rev) != 0 && strcmp(if_match, "*") != 0) {
        http_reply_error(req, 412, "precondition_failed", "The offering changed since it was "
                         "read; read it again.", NULL);
        goto out;
    }
    if (!apply_fields(req, o.doc, body, p.operator))
        goto out;
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    int rc = 0;
    if (rename) { /* a registered broker serves the name it was validated with */
        store_stmt *bq;
        bool brokers = false;
        if (!(rc = store_query(tx, "SELECT 1 FROM brokers WHERE offering_id = ? LIMIT 1", &bq,
                               "s", o.id))) {
            brokers = store_step(bq) == STORE_ROW;
            store_done(bq);
        }
        if (!rc && brokers) {
            store_rollback(tx);
            catalog_field_error(req, "name", "The service name is fixed once a broker is "
                                "registered: the broker's catalog names it.");
            goto out;
        }
    }
    char *text = rc ? NULL : json_dumps(o.doc, JSON_COMPACT);
    if (!rc)
        rc = text ? store_exec(tx, "UPDATE offerings SET doc = ?, name = ?, revision ="
                                   " revision + 1, updated_ms = ? WHERE id = ? AND revision = ?",
                               "ssisi", text, name ? json_string_value(name) : o.name,
                               time_now_ms(), o.id, o.revision)
                  : OSB_E_NOMEM;
    free(text);
    if (!rc && store_changes(tx) == 0)
        rc = OSB_E_BUSY; /* changed meanwhile */
    catalog_offering n;
    json_t *steps;
    if (!rc && !(rc = catalog_offering_load(tx, o.id, &n))) {
        if (!(rc = catalog_steps(tx, &n, &steps, NULL)))
            j = catalog_offering_json(&n, steps);
        catalog_offering_free(&n);
    }
    if (rc == OSB_E_BUSY || rc == OSB_E_CONFLICT) {
        store_rollback(tx);
        if (rc == OSB_E_BUSY)
            http_reply_error(req, 409, "conflict", "The offering changed meanwhile; retry.", NULL);
        else
            http_reply_error(req, 409, "conflict", "The service name is taken.", "name");
        goto out;
    }
    catalog_finish(req, tx, rc, 200, j);
out:
    json_decref(body);
    catalog_offering_free(&o);
}

static void offerings_delete(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.delete", &o, &p))
        return;
    if (strcmp(o.visibility, "draft") != 0) {
        http_reply_error(req, 409, "conflict", "Only a draft offering can be deleted; a "
                         "published one keeps its plans for the instances that use them.", NULL);
        catalog_offering_free(&o);
        return;
    }
    store_tx *tx;
    if (catalog_begin(c, req, true, &tx)) {
        static const char *const sql[] = {
            "DELETE FROM deployments WHERE plan_id IN (SELECT id FROM plans WHERE offering_id = ?)",
            "DELETE FROM plan_prices WHERE plan_id IN (SELECT id FROM plans WHERE offering_id = ?)",
            "DELETE FROM plans WHERE offering_id = ?",
            "DELETE FROM scorecards WHERE offering_id = ?",
            "DELETE FROM brokers WHERE offering_id = ?",
            "DELETE FROM offering_allowlist WHERE offering_id = ?",
            "DELETE FROM offering_reviews WHERE offering_id = ?",
            "DELETE FROM offering_evidence WHERE offering_id = ?",
            "DELETE FROM offerings WHERE id = ?",
        };
        /* Still a draft now, inside the transaction (not only when it was read). */
        catalog_offering cur;
        int rc = catalog_offering_load(tx, o.id, &cur);
        bool draft = !rc && strcmp(cur.visibility, "draft") == 0;
        if (!rc)
            catalog_offering_free(&cur);
        if (!rc && !draft) {
            store_rollback(tx);
            http_reply_error(req, 409, "conflict", "The offering left draft meanwhile.", NULL);
            catalog_offering_free(&o);
            return;
        }
        for (size_t i = 0; i < ARRAY_LEN(sql) && !rc; i++)
            rc = store_exec(tx, sql[i], "s", o.id);
        /* What enabling IAM made goes with it: no key or client outlives the offering. */
        if (!rc)
            rc = iam_delete_service_identity(c->iam, tx, cur.service_iam_id, cur.client_id);
        if (!rc)
            rc = store_commit(tx);
        else
            store_rollback(tx);
        if (rc == OSB_E_NOTFOUND)
            http_reply_error(req, 404, "not_found", "No such offering.", NULL);
        else if (rc == OSB_E_CONFLICT)
            http_reply_error(req, 409, "conflict", "Instances were created from this offering: "
                             "it stays, with its plans, for their history.", NULL);
        else if (rc)
            http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        else
            http_reply(req, 204, NULL, NULL, 0);
    }
    catalog_offering_free(&o);
}

void catalog_offering_routes(catalog *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/offerings", P, offerings_create, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings", P, offerings_list, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id", P, offerings_get, c);
    rc |= http_route(r, HTTP_PATCH, "/v1/offerings/:id", P, offerings_patch, c);
    rc |= http_route(r, HTTP_DELETE, "/v1/offerings/:id", P, offerings_delete, c);
    if (rc)
        log_error("catalog: cannot register the offering routes");
}
