/* catalog publish: the offering's way from draft to public — IAM integration (its service
 * ID, API key and dashboard client), visibility and the allowlist of limited testing, the
 * marketing listing's review, and the publication review between provider and operator. */
#include "catalog/catalog_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COMMENT 4000

static bool own(const catalog_offering *o, const iam_principal *p)
{
    return strcmp(o->account_id, p->account_id) == 0;
}

/* The operator acting as operator: its account and a role that may approve. */
static bool operator_may_approve(catalog *c, const catalog_offering *o, const iam_principal *p)
{
    iam_resource r = {.account_id = o->account_id, .resource_type = "offering",
                      .resource = o->id};
    return p->operator && iam_decide(c->iam, p, "catalog.offering.approve", &r);
}

static int add_review(store_tx *tx, const char *offering_id, const iam_principal *p,
                      const char *action, const char *comment)
{
    store_stmt *q;
    int64_t seq = 1;
    int rc = store_query(tx, "SELECT COALESCE(MAX(seq), 0) + 1 FROM offering_reviews WHERE"
                             " offering_id = ?", &q, "s", offering_id);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW)
        seq = store_col_int(q, 0);
    store_done(q);
    return store_exec(tx, "INSERT INTO offering_reviews (offering_id, seq, iam_id, account_id,"
                          " action, comment, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      "sissssi", offering_id, seq, p->iam_id, p->account_id, action,
                      comment ? comment : "", time_now_ms());
}

/* A JSON body that is an object, with an optional comment of bounded length. */
static json_t *action_body(http_req *req, const char **action, const char **comment,
                           bool comment_required)
{
    json_t *body = http_json_body(req);
    if (!body)
        return NULL;
    const json_t *a = json_object_get(body, "action"), *cm = json_object_get(body, "comment");
    *action = json_string_value(a);
    *comment = json_string_value(cm);
    if (!json_is_object(body) || !*action) {
        catalog_field_error(req, "action", "'action' is required.");
    } else if (cm && (!*comment || strlen(*comment) > MAX_COMMENT)) {
        catalog_field_error(req, "comment", "'comment' must be text of at most %d characters.",
                            MAX_COMMENT);
    } else if (comment_required && (!*comment || !**comment)) {
        catalog_field_error(req, "comment", "'comment' is required: say what should change.");
    } else {
        return body;
    }
    json_decref(body);
    return NULL;
}

/* Reloads the offering and answers it (with its steps) after a change. */
static void reply_offering(catalog *c, http_req *req, store_tx *tx, const char *id, int rc,
                           int status)
{
    catalog_offering n;
    json_t *j = NULL, *steps = NULL;
    if (!rc && !(rc = catalog_offering_load(tx, id, &n))) {
        if (!(rc = catalog_steps(tx, &n, &steps, NULL)))
            j = catalog_offering_json(&n, steps);
        catalog_offering_free(&n);
    }
    (void)c;
    catalog_finish(req, tx, rc, status, j);
}

/* ---------------------------------------------------------------- IAM integration */

/* POST /v1/offerings/:id/iam: one action makes the offering's service ID (for its broker's
 * calls to the platform, e.g. usage), an API key for it, and its dashboard OAuth client.
 * Both secrets appear in this answer only. */
static void iam_enable(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    if (o.service_iam_id[0]) {
        http_reply_error(req, 409, "conflict", "IAM is enabled for this offering already; its "
                         "secrets were shown when it was. Make a new API key for the service "
                         "ID if the old one is lost.", NULL);
        catalog_offering_free(&o);
        return;
    }
    store_tx *tx;
    if (!catalog_begin(c, req, true, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    char sid[64], sid_iam[64], key_id[64], key[128], client[64], secret[128], policy[64];
    char name[200], desc[200];
    snprintf(name, sizeof name, "%s", o.name);
    snprintf(desc, sizeof desc, "The service ID of offering %s: its broker's identity", o.name);
    int rc = iam_create_service_id(c->iam, tx, o.account_id, name, desc, sid, sid_iam);
    /* The service ID acts on its own offering's resources only (usage, instances). */
    if (!rc)
        rc = iam_add_policy(c->iam, tx, o.account_id, sid_iam, "Editor,Writer", o.name, NULL,
                            NULL, policy);
    if (!rc)
        rc = iam_create_apikey(c->iam, tx, sid_iam, o.account_id, "broker",
                               "Created when IAM was enabled for the offering", key_id, key,
                               sizeof key);
    if (!rc) {
        snprintf(name, sizeof name, "%s dashboard", o.name);
        rc = iam_create_client(c->iam, tx, o.account_id, name, o.name, NULL, client, secret,
                               sizeof secret);
    }
    if (!rc)
        rc = store_exec(tx, "UPDATE offerings SET service_iam_id = ?, client_id = ?, revision ="
                            " revision + 1, updated_ms = ? WHERE id = ? AND service_iam_id IS"
                            " NULL", "ssis", sid_iam, client, time_now_ms(), o.id);
    if (!rc && store_changes(tx) != 1)
        rc = OSB_E_CONFLICT; /* enabled meanwhile */
    json_t *j = rc ? NULL
                   : json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s, s:[]}, s:s}",
                               "service_id", "id", sid, "iam_id", sid_iam, "apikey", "id",
                               key_id, "apikey", key, "client", "client_id", client,
                               "client_secret", secret, "redirect_uris", "note",
                               "The API key and the client secret are shown only now.");
    secure_wipe(key, sizeof key);
    secure_wipe(secret, sizeof secret);
    catalog_finish(req, tx, rc, 201, j);
    catalog_offering_free(&o);
}

/* PATCH /v1/offerings/:id/iam {"redirect_uris": [...]}: the dashboard's callbacks. */
static void iam_update(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    json_t *body = http_json_body(req);
    const json_t *uris = json_object_get(body, "redirect_uris");
    size_t i;
    const json_t *u;
    bool ok = json_is_array(uris) && json_array_size(uris) <= 20;
    json_array_foreach(uris, i, u) {
        const char *s = json_string_value(u);
        ok = ok && s && strlen(s) <= 2000 && !strchr(s, '#') &&
             (str_has_prefix(s, "https://") || str_has_prefix(s, "http://")) && strlen(s) > 8;
    }
    if (!body) {
        /* replied */
    } else if (!o.client_id[0]) {
        http_reply_error(req, 409, "conflict", "Enable IAM for the offering first.", "iam");
    } else if (!ok) {
        catalog_field_error(req, "redirect_uris", "'redirect_uris' must be an array of at most "
                            "20 absolute http(s) URIs without fragments.");
    } else {
        store_tx *tx;
        if (catalog_begin(c, req, true, &tx)) {
            char *text = json_dumps(uris, JSON_COMPACT);
            int rc = text ? store_exec(tx, "UPDATE oauth_clients SET redirect_uris = ? WHERE"
                                           " client_id = ?", "ss", text, o.client_id)
                          : OSB_E_NOMEM;
            free(text);
            if (!rc)
                rc = catalog_touch(tx, o.id);
            reply_offering(c, req, tx, o.id, rc, 200);
        }
    }
    json_decref(body);
    catalog_offering_free(&o);
}

/* ---------------------------------------------------------------- visibility */

/* POST /v1/offerings/:id/visibility {"visibility": "draft"|"limited"}: limited makes it
 * visible to the provider's account and the allowlist, for testing; public comes only from
 * the operator's approval. */
static void visibility_set(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    json_t *body = http_json_body(req);
    const char *v = json_string_value(json_object_get(body, "visibility"));
    if (!body) {
        /* replied */
    } else if (!v || (strcmp(v, "draft") && strcmp(v, "limited") && strcmp(v, "public"))) {
        catalog_field_error(req, "visibility", "'visibility' must be \"draft\" or \"limited\".");
    } else if (strcmp(v, "public") == 0) {
        http_reply_error(req, 409, "conflict", "An offering becomes public when the operator "
                         "approves its publication: request it with POST "
                         "/v1/offerings/{id}/publication.", "visibility");
    } else if (strcmp(o.visibility, "public") == 0) {
        http_reply_error(req, 409, "conflict", "A public offering stays public: its consumers "
                         "have instances. Deprecate its plans instead.", "visibility");
    } else if (strcmp(o.publication, "requested") == 0) {
        http_reply_error(req, 409, "conflict", "Publication is under review; wait for the "
                         "operator's answer.", "visibility");
    } else {
        store_tx *tx;
        if (catalog_begin(c, req, true, &tx)) {
            /* Guarded by the state it was read in: an approval landing meanwhile wins. */
            int rc = store_exec(tx, "UPDATE offerings SET visibility = ?, revision = revision"
                                    " + 1, updated_ms = ? WHERE id = ? AND visibility !="
                                    " 'public' AND publication != 'requested'", "sis", v,
                                time_now_ms(), o.id);
            if (!rc && store_changes(tx) != 1) {
                store_rollback(tx);
                http_reply_error(req, 409, "conflict", "The offering's publication changed "
                                 "meanwhile; read it again.", "visibility");
            } else {
                reply_offering(c, req, tx, o.id, rc, 200);
            }
        }
    }
    json_decref(body);
    catalog_offering_free(&o);
}

static void allowlist_get(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    store_tx *tx;
    store_stmt *q;
    if (catalog_begin(c, req, false, &tx)) {
        json_t *list = json_array();
        int rc = store_query(tx, "SELECT l.account_id, a.name, l.created_ms FROM"
                                 " offering_allowlist l JOIN accounts a ON a.id = l.account_id"
                                 " WHERE l.offering_id = ? ORDER BY l.created_ms", &q, "s",
                             o.id);
        if (!rc) {
            while (store_step(q) == STORE_ROW) {
                char at[32];
                time_format_rfc3339(store_col_int(q, 2), at);
                json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "account_id",
                                                      store_col_text(q, 0), "name",
                                                      store_col_text(q, 1), "added_at", at));
            }
            store_done(q);
        }
        store_rollback(tx);
        json_t *j = json_pack("{s:o}", "accounts", list);
        if (rc)
            http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        else
            http_reply_json(req, 200, j);
        json_decref(j);
    }
    catalog_offering_free(&o);
}

static void allowlist_change(http_req *req, void *ud, bool add)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &p))
        return;
    const char *account = req->params[1];
    store_tx *tx;
    if (catalog_begin(c, req, true, &tx)) {
        store_stmt *q;
        bool exists = false;
        int rc = store_query(tx, "SELECT 1 FROM accounts WHERE id = ?", &q, "s", account);
        if (!rc) {
            exists = store_step(q) == STORE_ROW;
            store_done(q);
        }
        if (!rc && !exists) {
            store_rollback(tx);
            http_reply_error(req, 404, "not_found", "No such account.", "account_id");
        } else {
            if (!rc)
                rc = add ? store_exec(tx, "INSERT INTO offering_allowlist (offering_id,"
                                          " account_id, created_ms) VALUES (?, ?, ?)"
                                          " ON CONFLICT DO NOTHING", "ssi",
                                      o.id, account, time_now_ms())
                         : store_exec(tx, "DELETE FROM offering_allowlist WHERE offering_id = ?"
                                          " AND account_id = ?", "ss", o.id, account);
            if (!rc)
                rc = catalog_touch(tx, o.id);
            if (!rc)
                rc = store_commit(tx);
            else
                store_rollback(tx);
            if (rc)
                http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
            else
                http_reply(req, 204, NULL, NULL, 0);
        }
    }
    catalog_offering_free(&o);
}

static void allowlist_add(http_req *req, void *ud)
{
    allowlist_change(req, ud, true);
}

static void allowlist_remove(http_req *req, void *ud)
{
    allowlist_change(req, ud, false);
}

/* ---------------------------------------------------------------- the listing's review */

/* POST /v1/offerings/:id/listing/review {"action": "submit"|"approve"|"request_changes",
 * "comment"}: the provider submits its marketing listing; the operator approves it or asks
 * for changes. Editing the listing puts it back to draft. */
static void listing_review(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    const char *action, *comment;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &p))
        return;
    json_t *body = action_body(req, &action, &comment, false);
    const char *state =
        json_string_value(json_object_get(json_object_get(o.doc, "listing_review"), "state"));
    const char *next = NULL;
    iam_resource r = {.account_id = o.account_id, .resource_type = "offering", .resource = o.id};
    if (!body)
        goto out;
    if (strcmp(action, "submit") == 0) {
        if (!own(&o, &p) || !iam_decide(c->iam, &p, "catalog.offering.update", &r)) {
            http_reply_error(req, 403, "forbidden", "Only the provider submits its listing.", NULL);
            goto out;
        }
        if (!json_array_size(json_object_get(json_object_get(o.doc, "listing"), "bullets"))) {
            catalog_field_error(req, "listing.bullets", "The listing needs at least one bullet "
                                "before review.");
            goto out;
        }
        if (state && strcmp(state, "in_review") == 0) {
            http_reply_error(req, 409, "conflict", "The listing is under review already.", NULL);
            goto out;
        }
        next = "in_review";
    } else if (strcmp(action, "approve") == 0 || strcmp(action, "request_changes") == 0) {
        if (!operator_may_approve(c, &o, &p)) {
            http_reply_error(req, 403, "forbidden", "Only the operator reviews listings.", NULL);
            goto out;
        }
        if (!state || strcmp(state, "in_review") != 0) {
            http_reply_error(req, 409, "conflict", "The listing was not submitted for review.",
                             NULL);
            goto out;
        }
        if (strcmp(action, "request_changes") == 0 && (!comment || !*comment)) {
            catalog_field_error(req, "comment", "'comment' is required: say what should change.");
            goto out;
        }
        next = strcmp(action, "approve") == 0 ? "approved" : "changes_requested";
    } else {
        catalog_field_error(req, "action", "'action' must be \"submit\", \"approve\" or "
                            "\"request_changes\".");
        goto out;
    }
    char at[32];
    time_format_rfc3339(time_now_ms(), at);
    json_object_set_new(o.doc, "listing_review",
                        json_pack("{s:s, s:s, s:s, s:s}", "state", next, "comment",
                                  comment ? comment : "", "by", p.iam_id, "at", at));
    store_tx *tx;
    if (catalog_begin(c, req, true, &tx)) {
        char *text = json_dumps(o.doc, JSON_COMPACT);
        int rc = text ? store_exec(tx, "UPDATE offerings SET doc = ?, revision = revision + 1,"
                                       " updated_ms = ? WHERE id = ? AND revision = ?", "sisi",
                                   text, time_now_ms(), o.id, o.revision)
                      : OSB_E_NOMEM;
        free(text);
        if (!rc && store_changes(tx) != 1) {
            store_rollback(tx);
            http_reply_error(req, 409, "conflict", "The offering changed meanwhile; read it "
                             "again.", NULL);
        } else {
            reply_offering(c, req, tx, o.id, rc, 200);
        }
    }
out:
    json_decref(body);
    catalog_offering_free(&o);
}

/* ---------------------------------------------------------------- publication */

/* 409 listing each missing item of steps 1 to 5, one error per item, so the console can
 * point at each. */
static void not_ready(http_req *req, json_t *steps)
{
    json_t *errors = json_array();
    size_t i, k;
    json_t *s, *m;
    json_array_foreach(steps, i, s) {
        if (json_integer_value(json_object_get(s, "step")) == 6)
            continue;
        json_array_foreach(json_object_get(s, "missing"), k, m) {
            char msg[300];
            snprintf(msg, sizeof msg, "Step %d (%s) is not complete: %s is missing.",
                     (int)json_integer_value(json_object_get(s, "step")),
                     json_string_value(json_object_get(s, "title")), json_string_value(m));
            json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "code", "step_incomplete",
                                                    "message", msg, "target",
                                                    json_string_value(m)));
        }
    }
    json_t *j = json_pack("{s:o, s:s}", "errors", errors, "trace", req->request_id);
    http_reply_json(req, 409, j);
    json_decref(j);
}

/* POST /v1/offerings/:id/publication {"action", "comment"}: the provider requests
 * publication (every step up to 5 done, the offering in limited visibility); the operator
 * approves (public, plans published) or requests changes with a comment; either side may
 * comment, and the provider requests again after changes. */
static void publication(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    const char *action, *comment;
    store_tx *tx = NULL;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &p))
        return;
    json_t *body = action_body(req, &action, &comment, false), *steps = NULL;
    iam_resource r = {.account_id = o.account_id, .resource_type = "offering", .resource = o.id};
    bool provider = own(&o, &p) && iam_decide(c->iam, &p, "catalog.offering.update", &r);
    bool op = operator_may_approve(c, &o, &p);
    if (!body)
        goto out;
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    int rc = 0;
    if (strcmp(action, "request") == 0) {
        bool ready = false;
        if (!provider) {
            http_reply_error(req, 403, "forbidden", "Only the provider requests publication.",
                             NULL);
            goto out;
        }
        if (strcmp(o.publication, "requested") == 0 || strcmp(o.visibility, "public") == 0) {
            http_reply_error(req, 409, "conflict", strcmp(o.visibility, "public") == 0
                                                       ? "The offering is public already."
                                                       : "Publication is under review already.",
                             NULL);
            goto out;
        }
        if ((rc = catalog_steps(tx, &o, &steps, &ready)))
            goto fail;
        if (!ready) {
            not_ready(req, steps);
            goto out;
        }
        rc = store_exec(tx, "UPDATE offerings SET publication = 'requested', revision ="
                            " revision + 1, updated_ms = ? WHERE id = ? AND revision = ?", "isi",
                        time_now_ms(), o.id, o.revision);
        if (!rc && store_changes(tx) != 1)
            goto changed;
    } else if (strcmp(action, "approve") == 0 || strcmp(action, "request_changes") == 0) {
        if (!op) {
            http_reply_error(req, 403, "forbidden", "Only the operator approves publication.",
                             NULL);
            goto out;
        }
        if (strcmp(o.publication, "requested") != 0) {
            http_reply_error(req, 409, "conflict", "Publication was not requested.", NULL);
            goto out;
        }
        if (strcmp(action, "request_changes") == 0) {
            if (!comment || !*comment) {
                catalog_field_error(req, "comment", "'comment' is required: say what should "
                                    "change.");
                goto out;
            }
            rc = store_exec(tx, "UPDATE offerings SET publication = 'changes_requested',"
                                " revision = revision + 1, updated_ms = ? WHERE id = ?", "is",
                            time_now_ms(), o.id);
        } else {
            /* What was checked at request time must still hold. */
            bool ready = false;
            if ((rc = catalog_steps(tx, &o, &steps, &ready)))
                goto fail;
            if (!ready) {
                not_ready(req, steps);
                goto out;
            }
            rc = store_exec(tx, "UPDATE offerings SET publication = 'approved', visibility ="
                                " 'public', revision = revision + 1, updated_ms = ? WHERE"
                                " id = ? AND revision = ?", "isi", time_now_ms(), o.id,
                            o.revision);
            if (!rc && store_changes(tx) != 1)
                goto changed;
            if (!rc)
                rc = catalog_plans_publish(tx, o.id);
        }
    } else if (strcmp(action, "comment") == 0) {
        if (!provider && !op) {
            http_reply_error(req, 403, "forbidden", "Only the provider and the operator take "
                             "part in the review.", NULL);
            goto out;
        }
        if (!comment || !*comment) {
            catalog_field_error(req, "comment", "'comment' is required.");
            goto out;
        }
    } else {
        catalog_field_error(req, "action", "'action' must be \"request\", \"approve\", "
                            "\"request_changes\" or \"comment\".");
        goto out;
    }
    if (!rc)
        rc = add_review(tx, o.id, &p, action, comment);
    json_decref(steps);
    steps = NULL;
    reply_offering(c, req, tx, o.id, rc, 200);
    tx = NULL;
    goto out;
changed: /* checked on one revision, changed before the write: nothing is decided */
    http_reply_error(req, 409, "conflict", "The offering changed meanwhile; read it again.",
                     NULL);
    goto out;
fail:
    http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
out:
    if (tx)
        store_rollback(tx);
    json_decref(steps);
    json_decref(body);
    catalog_offering_free(&o);
}

/* GET /v1/offerings/:id/reviews: the publication conversation, oldest first. */
static void reviews(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal p;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &p))
        return;
    if (!own(&o, &p) && !p.operator) {
        http_reply_error(req, 404, "not_found", "No such offering.", NULL);
        catalog_offering_free(&o);
        return;
    }
    store_tx *tx;
    store_stmt *q;
    if (catalog_begin(c, req, false, &tx)) {
        json_t *list = json_array();
        int rc = store_query(tx, "SELECT seq, iam_id, account_id, action, comment, created_ms"
                                 " FROM offering_reviews WHERE offering_id = ? ORDER BY seq",
                             &q, "s", o.id);
        if (!rc) {
            while (store_step(q) == STORE_ROW) {
                char at[32];
                time_format_rfc3339(store_col_int(q, 5), at);
                json_array_append_new(
                    list, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "seq",
                                    (json_int_t)store_col_int(q, 0), "iam_id",
                                    store_col_text(q, 1), "account_id", store_col_text(q, 2),
                                    "action", store_col_text(q, 3), "comment",
                                    store_col_text(q, 4), "at", at));
            }
            store_done(q);
        }
        store_rollback(tx);
        json_t *j = json_pack("{s:s, s:o}", "publication", o.publication, "reviews", list);
        if (rc)
            http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
        else
            http_reply_json(req, 200, j);
        json_decref(j);
    }
    catalog_offering_free(&o);
}

void catalog_publish_routes(catalog *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/offerings/:id/iam", P, iam_enable, c);
    rc |= http_route(r, HTTP_PATCH, "/v1/offerings/:id/iam", P, iam_update, c);
    rc |= http_route(r, HTTP_POST, "/v1/offerings/:id/visibility", P, visibility_set, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/allowlist", P, allowlist_get, c);
    rc |= http_route(r, HTTP_PUT, "/v1/offerings/:id/allowlist/:account", P, allowlist_add, c);
    rc |= http_route(r, HTTP_DELETE, "/v1/offerings/:id/allowlist/:account", P,
                     allowlist_remove, c);
    rc |= http_route(r, HTTP_POST, "/v1/offerings/:id/listing/review", P, listing_review, c);
    rc |= http_route(r, HTTP_POST, "/v1/offerings/:id/publication", P, publication, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/reviews", P, reviews, c);
    if (rc)
        log_error("catalog: cannot register the publication routes");
}
