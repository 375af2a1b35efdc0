/* catalog browse: the global catalog as the calling account may see it (public offerings,
 * limited ones it is allowlisted for, its own), with tag and text search; and the
 * catalog.json export in the OSB catalog shape, which libosb loads as the broker's catalog
 * as it is, so the broker and the platform cannot disagree. */
#include "catalog/catalog_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY     200
#define DEFAULT_LIMIT 100
#define MAX_LIMIT     500

/* Case-insensitive substring search (ASCII folding; the rest compares as is). */
static bool contains(const char *hay, const char *needle)
{
    if (!hay)
        return false;
    size_t n = strlen(needle);
    for (const char *h = hay; *h; h++)
        if (strncasecmp(h, needle, n) == 0)
            return true;
    return false;
}

static bool matches(const catalog_offering *o, const char *tag, const char *text)
{
    const json_t *tags = json_object_get(o->doc, "tags");
    if (tag) {
        bool found = false;
        size_t i;
        const json_t *t;
        json_array_foreach(tags, i, t) found = found || strcmp(json_string_value(t), tag) == 0;
        if (!found)
            return false;
    }
    if (!text || !*text)
        return true;
    if (contains(o->name, text))
        return true;
    static const char *const fields[] = {"display_name", "short_description", "long_description"};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++)
        if (contains(json_string_value(json_object_get(o->doc, fields[i])), text))
            return true;
    size_t i;
    const json_t *t;
    json_array_foreach(tags, i, t) if (contains(json_string_value(t), text)) return true;
    return false;
}

/* What a consumer sees of an offering in the catalog. */
static json_t *entry_json(store_tx *tx, const catalog_offering *o, int *rc)
{
    json_t *plans = NULL;
    /* Limited: the allowlisted testers see the plans under test, published or not. */
    *rc = catalog_plans_osb(tx, o->id, strcmp(o->visibility, "limited") != 0, &plans);
    if (*rc)
        return NULL;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", o->id, "name", o->name, "visibility",
                          o->visibility, "provider_account_id", o->account_id);
    static const char *const fields[] = {
        "display_name",      "short_description", "long_description", "tags",    "icon_url",
        "documentation_url", "instructions_url",  "terms_url",        "listing", "support"};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        json_t *v = json_object_get(o->doc, fields[i]);
        if (v)
            json_object_set(j, fields[i], v);
    }
    /* Where each plan can be provisioned: the regions it is deployed in. */
    size_t i;
    json_t *pl;
    json_array_foreach(plans, i, pl)
    {
        json_t *regions = json_array();
        store_stmt *q;
        if (!(*rc = store_query(tx,
                                "SELECT region FROM deployments WHERE plan_id = ? ORDER BY"
                                " region",
                                &q, "s", json_string_value(json_object_get(pl, "id"))))) {
            while (store_step(q) == STORE_ROW)
                json_array_append_new(regions, json_string(store_col_text(q, 0)));
            store_done(q);
        }
        json_object_set_new(pl, "regions", regions);
        if (*rc) {
            json_decref(plans);
            json_decref(j);
            return NULL;
        }
    }
    json_object_set_new(j, "plans", plans);
    return j;
}

/* GET /v1/catalog?tag=&q=&limit=&offset= */
static void catalog_list(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    const char *tag = http_query(req, "tag"), *text = http_query(req, "q");
    const char *limit_s = http_query(req, "limit"), *offset_s = http_query(req, "offset");
    long limit = DEFAULT_LIMIT, offset = 0;
    char *end;
    if (text && strlen(text) > MAX_QUERY) {
        http_reply_error(req, 400, "invalid_query", "'q' is at most 200 characters.", "q");
        return;
    }
    if (limit_s &&
        ((limit = strtol(limit_s, &end, 10)) < 1 || limit > MAX_LIMIT || *end || !*limit_s)) {
        http_reply_error(req, 400, "invalid_query", "'limit' must be from 1 to 500.", "limit");
        return;
    }
    errno = 0;
    if (offset_s &&
        ((offset = strtol(offset_s, &end, 10)) < 0 || *end || !*offset_s || errno == ERANGE)) {
        http_reply_error(req, 400, "invalid_query", "'offset' must be 0 or more.", "offset");
        return;
    }
    store_tx *tx;
    store_stmt *q;
    if (!catalog_begin(c, req, false, &tx))
        return;
    /* The operator sees every offering out of draft; others what visibility allows. */
    json_t *list = json_array(), *ids = json_array();
    int rc = store_query(tx,
                         "SELECT id FROM offerings WHERE visibility != 'draft' OR"
                         " account_id = ? ORDER BY name",
                         &q, "s", p.account_id);
    if (!rc) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(ids, json_string(store_col_text(q, 0)));
        store_done(q);
    }
    long total = 0;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (rc)
            break;
        catalog_offering o;
        if ((rc = catalog_offering_load(tx, json_string_value(id), &o)))
            break;
        if (catalog_visible(tx, &o, &p) && matches(&o, tag, text)) {
            if (total >= offset && total - offset < limit) { /* offset + limit may overflow */
                json_t *e = entry_json(tx, &o, &rc);
                if (e)
                    json_array_append_new(list, e);
            }
            total++;
        }
        catalog_offering_free(&o);
    }
    store_rollback(tx);
    json_decref(ids);
    if (rc) {
        json_decref(list);
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        return;
    }
    json_t *j = json_pack("{s:I, s:I, s:I, s:o}", "total_count", (json_int_t)total, "offset",
                          (json_int_t)offset, "limit", (json_int_t)limit, "offerings", list);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* GET /v1/offerings/:id/catalog.json: {"services": [the offering]} in the OSB shape, every
 * active plan included (the broker must know a plan before it is published). No dashboard
 * client: its secret was shown once and is not kept; the broker adds it from its own
 * configuration. */
static void catalog_export(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &p))
        return;
    if (!p.operator&& strcmp(o.account_id, p.account_id) != 0) {
        http_reply_error(req, 404, "not_found", "No such offering.", NULL);
        catalog_offering_free(&o);
        return;
    }
    store_tx *tx;
    if (!catalog_begin(c, req, false, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    json_t *plans = NULL;
    int rc = catalog_plans_osb(tx, o.id, false, &plans);
    store_rollback(tx);
    if (rc) {
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        catalog_offering_free(&o);
        return;
    }
    bool bindable = false, updateable = false;
    size_t i;
    json_t *pl;
    json_array_foreach(plans, i, pl)
    {
        bindable = bindable || json_is_true(json_object_get(pl, "bindable"));
        updateable = updateable || json_is_true(json_object_get(pl, "plan_updateable"));
    }
    const json_t *d = o.doc;
    const char *desc = json_string_value(json_object_get(d, "short_description"));
    json_t *meta = json_object();
    static const char *const map[][2] = {
        {"display_name", "displayName"},           {"long_description", "longDescription"},
        {"documentation_url", "documentationUrl"}, {"icon_url", "imageUrl"},
        {"instructions_url", "instructionsUrl"},   {"terms_url", "termsUrl"}};
    for (size_t k = 0; k < ARRAY_LEN(map); k++) {
        json_t *v = json_object_get(d, map[k][0]);
        if (v)
            json_object_set(meta, map[k][1], v);
    }
    const json_t *support = json_object_get(d, "support");
    if (json_object_get(support, "url"))
        json_object_set(meta, "supportUrl", json_object_get(support, "url"));
    json_t *svc = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:o, s:o}", "id", o.id,
                            "name", o.name, "description",
                            desc ? desc : json_string_value(json_object_get(d, "display_name")),
                            "bindable", bindable, "plan_updateable", updateable,
                            "instances_retrievable", true, "bindings_retrievable", true,
                            "allow_context_updates", true, "metadata", meta, "plans", plans);
    json_t *tags = json_object_get(d, "tags");
    if (tags)
        json_object_set(svc, "tags", tags);
    json_t *j = json_pack("{s:[o]}", "services", svc);
    char disposition[128];
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s-catalog.json\"", o.name);
    http_add_header(req, "Content-Disposition", disposition);
    http_reply_json(req, 200, j);
    json_decref(j);
    catalog_offering_free(&o);
}

void catalog_browse_routes(catalog *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_GET, "/v1/catalog", P, catalog_list, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/catalog.json", P, catalog_export, c);
    if (rc)
        log_error("catalog: cannot register the catalog routes");
}
