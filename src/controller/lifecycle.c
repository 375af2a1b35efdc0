/* controller lifecycle: the operator suspends and reactivates accounts, which disables and
 * enables their instances at the brokers (/bluemix_v1); a deleted instance waits, disabled,
 * for its reclamation, and its owner may restore it or reclaim it at once. */
#include "controller/controller_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECLAIM_BATCH 32

/* Brings one instance's enablement in line with its account and state: an instance of a
 * suspended account is inactive and disabled; one of an active account is active and enabled.
 * Does nothing while another operation of the instance runs (the driver calls it again when
 * that one ends). *queued tells whether an operation was made. */
int rc_reconcile(store_tx *tx, const char *guid, const char *initiator, const char *reason,
                 bool *queued)
{
    store_stmt *q;
    char account_state[16] = "", state[24] = "";
    bool enabled = true, busy = false;
    if (queued)
        *queued = false;
    int rc = store_query(tx,
                         "SELECT a.state, i.state, i.enabled, EXISTS (SELECT 1 FROM rc_operations"
                         " WHERE instance_id = i.guid AND state IN ('pending', 'in_progress'))"
                         " FROM resource_instances i JOIN accounts a ON a.id = i.account_id WHERE"
                         " i.guid = ?",
                         &q, "s", guid);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW) {
        snprintf(account_state, sizeof account_state, "%s", store_col_text(q, 0));
        snprintf(state, sizeof state, "%s", store_col_text(q, 1));
        enabled = store_col_int(q, 2) != 0;
        busy = store_col_int(q, 3) != 0;
    }
    store_done(q);
    if (busy || (strcmp(state, "active") != 0 && strcmp(state, "inactive") != 0))
        return 0;
    bool want = strcmp(account_state, "active") == 0;
    const char *new_state = want ? "active" : "inactive";
    /* A restore waiting for the broker: its enable carries the restore's reason, and when the
     * broker already serves the instance, the restore is done. */
    bool restoring = false;
    if ((rc = store_query(tx,
                          "SELECT 1 FROM reclamations WHERE instance_id = ? AND state ="
                          " 'RESTORING'",
                          &q, "s", guid)))
        return rc;
    restoring = store_step(q) == STORE_ROW;
    store_done(q);
    if (restoring && want && !reason)
        reason = "IBMCLOUD_RECLAMATION_RESTORE";
    if (restoring && want && enabled &&
        (rc = store_exec(tx,
                         "UPDATE reclamations SET state = 'RESTORED', updated_ms = ? WHERE"
                         " instance_id = ? AND state = 'RESTORING'",
                         "is", time_now_ms(), guid)))
        return rc;
    if (strcmp(state, new_state) != 0 &&
        (rc = store_exec(tx, "UPDATE resource_instances SET state = ?, updated_ms = ? WHERE guid = ?",
                         "sis", new_state, time_now_ms(), guid)))
        return rc;
    if (want == enabled)
        return 0;
    char id[37];
    rc_new_op n = {.kind = want ? "enable" : "disable", .instance_id = guid,
                   .initiator = initiator,
                   .reason = reason ? reason
                                    : (want ? "IBMCLOUD_ACCT_ACTIVATE" : "IBMCLOUD_ACCT_SUSPEND")};
    rc = rc_insert_op(tx, &n, id);
    if (!rc && queued)
        *queued = true;
    return rc;
}

/* ---------------------------------------------------------------- accounts */

static void account_state(http_req *req, rc_controller *c, bool suspend)
{
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    if (!p.operator || !iam_decide(c->iam, &p, "resource-controller.account.manage", NULL)) {
        http_reply_error(req, 403, "forbidden",
                         "Only the platform's operator suspends and reactivates accounts.", NULL);
        return;
    }
    const char *id = req->params[0];
    store_tx *tx;
    store_stmt *q;
    if (!rc_begin(c, req, true, &tx))
        return;
    char kind[16] = "";
    int rc = store_query(tx, "SELECT kind FROM accounts WHERE id = ?", &q, "s", id);
    if (!rc) {
        if (store_step(q) == STORE_ROW)
            snprintf(kind, sizeof kind, "%s", store_col_text(q, 0));
        store_done(q);
    }
    if (!rc && !kind[0]) {
        store_rollback(tx);
        http_reply_error(req, 404, "not_found", "No such account.", NULL);
        return;
    }
    if (!rc && strcmp(kind, "operator") == 0) {
        store_rollback(tx);
        http_reply_error(req, 409, "operator_account",
                         "The operator's own account cannot be suspended.", NULL);
        return;
    }
    if (!rc)
        rc = store_exec(tx, "UPDATE accounts SET state = ? WHERE id = ?", "ss",
                        suspend ? "suspended" : "active", id);
    /* Every instance of the account, now or when its operation in flight ends. */
    int64_t changed = 0;
    if (!rc)
        rc = store_query(tx,
                         "SELECT guid FROM resource_instances WHERE account_id = ? AND state IN"
                         " ('active', 'inactive')",
                         &q, "s", id);
    if (!rc) {
        char(*ids)[37] = NULL;
        size_t n = 0, cap = 0;
        while (!rc && store_step(q) == STORE_ROW) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                char(*nids)[37] = realloc(ids, cap * sizeof *ids);
                if (!nids) {
                    rc = OSB_E_NOMEM;
                    break;
                }
                ids = nids;
            }
            snprintf(ids[n++], 37, "%s", store_col_text(q, 0));
        }
        store_done(q);
        for (size_t i = 0; !rc && i < n; i++) {
            bool queued = false;
            rc = rc_reconcile(tx, ids[i], p.iam_id, NULL, &queued);
            changed += queued;
        }
        free(ids);
    }
    rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    if (rc) {
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        return;
    }
    rc_kick(c);
    json_t *j = json_pack("{s:s,s:s,s:I}", "account_id", id, "state",
                          suspend ? "suspended" : "active", "instances_changing",
                          (json_int_t)changed);
    http_reply_json(req, 200, j);
    json_decref(j);
}

static void account_suspend(http_req *req, void *ud)
{
    account_state(req, ud, true);
}

static void account_reactivate(http_req *req, void *ud)
{
    account_state(req, ud, false);
}

/* ---------------------------------------------------------------- reclamations */

static json_t *reclamation_json(store_stmt *q)
{
    char t[3][32];
    time_format_rfc3339(store_col_int(q, 5), t[0]);
    time_format_rfc3339(store_col_int(q, 6), t[1]);
    time_format_rfc3339(store_col_int(q, 7), t[2]);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", store_col_text(q, 0),
                     "resource_instance_id", store_col_text(q, 1), "resource_instance_crn",
                     store_col_text(q, 8), "account_id", store_col_text(q, 2), "state",
                     store_col_text(q, 3), "target_time", t[0], "created_at", t[1],
                     "updated_at", t[2]);
}

#define RECLAMATION_COLS                                                                           \
    "SELECT r.id, r.instance_id, r.account_id, r.state, r.initiator, r.reclaim_at_ms,"             \
    " r.created_ms, r.updated_ms, i.crn FROM reclamations r JOIN resource_instances i ON"          \
    " i.guid = r.instance_id"

static void reclamations_list(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    iam_resource r = {.account_id = p.account_id, .resource_type = "resource-instance"};
    if (!iam_decide(c->iam, &p, "resource-controller.instance.read", &r)) {
        http_reply_errorf(req, 403, "forbidden", "%s is not allowed to list reclamations here.",
                          p.iam_id);
        return;
    }
    const char *instance = http_query(req, "resource_instance_id");
    store_tx *tx;
    store_stmt *q;
    if (!rc_begin(c, req, false, &tx))
        return;
    json_t *rows = json_array();
    int rc = store_query(tx,
                         RECLAMATION_COLS " WHERE r.account_id = ? AND (? IS NULL OR"
                                          " r.instance_id = ? OR i.crn = ?) ORDER BY r.created_ms"
                                          " DESC LIMIT 100",
                         &q, "ssss", p.account_id, instance, instance, instance);
    if (!rc) {
        while (store_step(q) == STORE_ROW)
            json_array_append_new(rows, reclamation_json(q));
        store_done(q);
    }
    store_rollback(tx);
    if (rc) {
        json_decref(rows);
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        return;
    }
    json_t *j = json_pack("{s:o}", "resources", rows);
    http_reply_json(req, 200, j);
    json_decref(j);
}

/* POST /v1/reclamations/:id/actions/:action: restore (the instance is active and enabled
 * again) or reclaim (deprovisioned now instead of at the end of the period). */
static void reclamation_action(http_req *req, void *ud)
{
    rc_controller *c = ud;
    iam_principal p;
    if (!iam_authenticate(c->iam, req, &p))
        return;
    const char *action = req->params[1];
    bool restore = strcmp(action, "restore") == 0;
    if (!restore && strcmp(action, "reclaim") != 0) {
        http_reply_error(req, 400, "invalid_field", "The action is restore or reclaim.",
                         "action_name");
        return;
    }
    store_tx *tx;
    store_stmt *q;
    if (!rc_begin(c, req, true, &tx))
        return;
    char id[37] = "", guid[37] = "", account[64] = "", state[16] = "";
    int rc = store_query(tx,
                         "SELECT id, instance_id, account_id, state FROM reclamations WHERE"
                         " id = ?",
                         &q, "s", req->params[0]);
    if (!rc) {
        if (store_step(q) == STORE_ROW) {
            snprintf(id, sizeof id, "%s", store_col_text(q, 0));
            snprintf(guid, sizeof guid, "%s", store_col_text(q, 1));
            snprintf(account, sizeof account, "%s", store_col_text(q, 2));
            snprintf(state, sizeof state, "%s", store_col_text(q, 3));
        }
        store_done(q);
    }
    rc_inst_ref i;
    if (!rc && (!id[0] || (!p.operator && strcmp(account, p.account_id) != 0))) {
        store_rollback(tx);
        http_reply_error(req, 404, "not_found", "No such reclamation.", NULL);
        return;
    }
    if (!rc)
        rc = rc_find_instance(tx, guid, &p, &i);
    if (rc) {
        store_rollback(tx);
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        return;
    }
    if (!rc_allowed(c, req, &p,
                    restore ? "resource-controller.instance.update"
                            : "resource-controller.instance.delete",
                    &i)) {
        store_rollback(tx);
        return;
    }
    if (strcmp(state, "SCHEDULED") != 0) {
        store_rollback(tx);
        http_reply_errorf(req, 409, "invalid_state", "The reclamation is %s already.", state);
        return;
    }
    int64_t now = time_now_ms();
    if (restore) {
        if (!rc && rc_account_suspended(tx, account)) {
            store_rollback(tx);
            http_reply_error(req, 409, "account_suspended",
                             "The account is suspended: its instances stay disabled.", NULL);
            return;
        }
        /* RESTORING until the broker has enabled it (the disable that scheduled the
         * reclamation may still be on its way: the enable follows it). */
        if (!rc)
            rc = store_exec(tx,
                            "UPDATE reclamations SET state = 'RESTORING', updated_ms = ? WHERE"
                            " id = ?",
                            "is", now, id);
        if (!rc)
            rc = store_exec(tx,
                            "UPDATE resource_instances SET state = 'active', updated_ms = ? WHERE"
                            " guid = ?",
                            "is", now, guid);
        if (!rc)
            rc = rc_reconcile(tx, guid, p.iam_id, "IBMCLOUD_RECLAMATION_RESTORE", NULL);
    } else {
        rc = store_exec(tx,
                        "UPDATE reclamations SET reclaim_at_ms = ?, updated_ms = ? WHERE id = ?",
                        "iis", now, now, id);
    }
    if (!rc)
        rc = store_query(tx, RECLAMATION_COLS " WHERE r.id = ?", &q, "s", id);
    json_t *j = NULL;
    if (!rc) {
        if (store_step(q) == STORE_ROW)
            j = reclamation_json(q);
        store_done(q);
    }
    rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    if (rc || !j) {
        json_decref(j);
        http_reply_error(req, 500, "internal_error", "The store failed.", NULL);
        return;
    }
    rc_kick(c);
    http_reply_json(req, restore ? 200 : 202, j);
    json_decref(j);
}

/* Due reclamations become delete operations once their instance has no operation in flight
 * (its disable may still be running). */
void rc_reclaim_due(rc_controller *c)
{
    store_tx *tx;
    store_stmt *q;
    char ids[RECLAIM_BATCH][37], guids[RECLAIM_BATCH][37], who[RECLAIM_BATCH][130];
    size_t n = 0;
    if (store_begin(c->db, false, &tx))
        return;
    int rc = store_query(tx,
                         "SELECT r.id, r.instance_id, coalesce(r.initiator, '') FROM"
                         " reclamations r WHERE r.state = 'SCHEDULED' AND r.reclaim_at_ms <= ?"
                         " AND NOT EXISTS (SELECT 1 FROM rc_operations WHERE instance_id ="
                         " r.instance_id AND state IN ('pending', 'in_progress')) LIMIT ?",
                         &q, "ii", time_now_ms(), (int64_t)RECLAIM_BATCH);
    if (!rc) {
        while (n < RECLAIM_BATCH && store_step(q) == STORE_ROW) {
            snprintf(ids[n], 37, "%s", store_col_text(q, 0));
            snprintf(guids[n], 37, "%s", store_col_text(q, 1));
            snprintf(who[n], 130, "%s", store_col_text(q, 2));
            n++;
        }
        store_done(q);
    }
    store_rollback(tx);
    if (rc || n == 0 || store_begin(c->db, true, &tx))
        return;
    for (size_t i = 0; !rc && i < n; i++) {
        char op[37];
        rc_new_op o = {.kind = "delete", .instance_id = guids[i],
                       .initiator = who[i][0] ? who[i] : NULL,
                       .prior_state = "pending_reclamation"};
        /* Restored or reclaimed since the look: not this one. */
        if ((rc = store_exec(tx,
                             "UPDATE reclamations SET state = 'RECLAIMING', updated_ms = ? WHERE"
                             " id = ? AND state = 'SCHEDULED'",
                             "is", time_now_ms(), ids[i])))
            break;
        if (store_changes(tx) != 1)
            continue;
        /* Only the driver starts reclamations, and an operation made since the look is
         * refused by the store: then this one waits for the next round. */
        if ((rc = rc_insert_op(tx, &o, op)) ||
            (rc = store_exec(tx,
                             "UPDATE resource_instances SET state = 'removing', updated_ms = ?"
                             " WHERE guid = ?",
                             "is", time_now_ms(), guids[i])) ||
            (rc = rc_set_last_operation(tx, "resource_instances", guids[i], "delete",
                                        "in progress", true, "")))
            break;
    }
    rc = rc ? (store_rollback(tx), rc) : store_commit(tx);
    if (rc)
        log_msg(LOG_WARN, "controller: cannot start due reclamations (%s)", base_strerror(rc));
}

void rc_lifecycle_routes(rc_controller *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/accounts/:id/suspend", P, account_suspend, c);
    rc |= http_route(r, HTTP_POST, "/v1/accounts/:id/reactivate", P, account_reactivate, c);
    rc |= http_route(r, HTTP_GET, "/v1/reclamations", P, reclamations_list, c);
    rc |= http_route(r, HTTP_POST, "/v1/reclamations/:id/actions/:action", P,
                     reclamation_action, c);
    if (rc)
        log_msg(LOG_ERROR, "controller: cannot register the lifecycle routes");
}
