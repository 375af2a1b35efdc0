/* sdk commit: answers OSB requests only once their state change is on disk, without holding
 * a server thread while the disk flushes. The request is suspended, its write joins the
 * next group commit, and the committer thread answers and resumes it. */
#include "sdk/sdk.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    osb_broker *b;
    http_req *req;
    sdk_write_kind kind;
    sdk_instance in;
    sdk_binding bd;
    int status;
    json_t *reply;
    const char *busy_id; /* a path parameter: lives as long as the request */
    sdk_write *writes;   /* the provider's, first */
} pending;

static char *dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void copy_instance(sdk_instance *d, const sdk_instance *s)
{
    *d = *s;
    char **fields[] = {&d->id, &d->service_id, &d->plan_id, &d->parameters, &d->context,
                       &d->organization_guid, &d->space_guid, &d->maintenance_version,
                       &d->dashboard_url, &d->metadata, &d->op_id, &d->op_description,
                       &d->pending_plan_id, &d->pending_parameters,
                       &d->pending_maintenance_version, &d->prev_plan_id};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++)
        *fields[i] = dup(*fields[i]);
}

static void copy_binding(sdk_binding *d, const sdk_binding *s)
{
    *d = *s;
    char **fields[] = {&d->instance_id, &d->id, &d->service_id, &d->plan_id, &d->parameters,
                       &d->bind_resource, &d->app_guid, &d->credentials, &d->metadata,
                       &d->extra, &d->op_id, &d->op_description};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++)
        *fields[i] = dup(*fields[i]);
}

static int work(store_tx *tx, void *ud)
{
    pending *p = ud;
    int rc = sdk_writes_run(tx, p->writes);
    if (rc)
        return rc;
    switch (p->kind) {
    case SDK_PUT_INSTANCE: return sdk_instance_write(tx, &p->in);
    case SDK_DELETE_INSTANCE: return sdk_instance_remove(tx, p->in.id);
    case SDK_PUT_BINDING: return sdk_binding_write(&p->b->state, tx, &p->bd);
    case SDK_DELETE_BINDING: return sdk_binding_remove(tx, p->bd.instance_id, p->bd.id);
    }
    return OSB_E_INVAL;
}

static void finish(pending *p, int rc)
{
    if (rc) {
        log_error("libosb: storing the broker's state failed: %s", base_strerror(rc));
        http_reply_error(p->req, 500, NULL, "The broker's state cannot be written.", NULL);
    } else if (p->reply) {
        http_reply_json(p->req, p->status, p->reply);
    } else {
        http_reply(p->req, p->status, "application/json", "{}", 2);
    }
    sdk_busy_release(p->b, p->busy_id);
    sdk_writes_free(p->writes);
    json_decref(p->reply);
    sdk_instance_free(&p->in);
    sdk_binding_free(&p->bd);
}

static void done(void *ud, int rc)
{
    pending *p = ud;
    http_req *req = p->req;
    finish(p, rc);
    free(p);
    http_resume(req);
}

void sdk_commit_reply(osb_ctx *x, osb_call *c, sdk_write_kind kind, const sdk_instance *in,
                      const sdk_binding *bd, int status, json_t *reply, const char *busy_id)
{
    pending *p = calloc(1, sizeof *p);
    sdk_write *writes = sdk_call_take_writes(c);
    if (!p) {
        sdk_writes_free(writes);
        json_decref(reply);
        sdk_busy_release(x->b, busy_id);
        http_reply_error(x->req, 500, NULL, "Out of memory.", NULL);
        return;
    }
    p->b = x->b;
    p->req = x->req;
    p->kind = kind;
    p->status = status;
    p->reply = reply;
    p->busy_id = busy_id;
    p->writes = writes;
    if (in)
        copy_instance(&p->in, in);
    if (bd)
        copy_binding(&p->bd, bd);
    /* Suspend first: the committer may answer before this thread returns. */
    if (!http_defer(x->req)) {
        finish(p, store_write(p->b->state.db, work, p)); /* stopping: no group */
        free(p);
        return;
    }
    if (store_group_submit(x->b->state.group, work, done, p) != 0) {
        finish(p, OSB_E_BUSY);
        free(p);
        http_resume(x->req);
    }
}
