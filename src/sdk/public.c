/* sdk public helpers: the setters a provider's callbacks use to answer, and the thin
 * request/response API for the provider's own routes. */
#include "sdk/sdk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void replace(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? strdup(v) : NULL;
}

void osb_set_async(osb_call *c, const char *operation)
{
    char id[37];
    if (!operation) {
        uuid_v4(id);
        operation = id;
    }
    c->result->async = true;
    /* The OSB spec caps an operation at 10,000 characters. */
    replace(&c->result->operation, strnlen(operation, 10001) <= 10000 ? operation : NULL);
    if (!c->result->operation) {
        uuid_v4(id);
        replace(&c->result->operation, id);
    }
}

void osb_set_dashboard_url(osb_call *c, const char *url)
{
    replace(&c->result->dashboard_url, url);
}

void osb_set_metadata(osb_call *c, json_t *j)
{
    json_decref(c->result->metadata);
    c->result->metadata = j;
}

void osb_set_credentials(osb_call *c, json_t *credentials)
{
    json_decref(c->result->credentials);
    c->result->credentials = credentials;
}

void osb_set_binding_extra(osb_call *c, const char *field, json_t *value)
{
    if (!c->result->extra)
        c->result->extra = json_object();
    json_object_set_new(c->result->extra, field, value);
}

void osb_set_state(osb_call *c, osb_op_state state, const char *description, int retry_after_s)
{
    c->result->state_set = true;
    c->result->state = state;
    c->result->retry_after = retry_after_s > 0 ? retry_after_s : 0;
    replace(&c->result->state_description, description);
}

void osb_set_activity(osb_call *c, bool active, int64_t last_active_ms)
{
    c->result->activity_set = true;
    c->result->active = active;
    c->result->last_active_ms = last_active_ms;
}

int osb_fail(osb_call *c, int status, const char *error, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->result->failed = true;
    c->result->status = status;
    replace(&c->result->error, error);
    replace(&c->result->description, msg);
    return -1;
}

void osb_set_failure_flags(osb_call *c, bool instance_usable, bool update_repeatable)
{
    c->result->flags_set = true;
    c->result->instance_usable = instance_usable;
    c->result->update_repeatable = update_repeatable;
}

/* ---------------------------------------------------------------- provider routes */

const char *osb_http_method(osb_http *h)
{
    return ((http_req *)h)->method_name;
}

const char *osb_http_param(osb_http *h, int i)
{
    http_req *req = (http_req *)h;
    return i >= 0 && i < req->nparams ? req->params[i] : NULL;
}

const char *osb_http_header(osb_http *h, const char *name)
{
    return http_header((http_req *)h, name);
}

const char *osb_http_query(osb_http *h, const char *name)
{
    return http_query((http_req *)h, name);
}

const void *osb_http_body(osb_http *h, size_t *len)
{
    http_req *req = (http_req *)h;
    *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

void osb_http_set_header(osb_http *h, const char *name, const char *value)
{
    http_add_header((http_req *)h, name, value);
}

void osb_http_reply(osb_http *h, int status, const char *content_type, const void *body,
                    size_t len)
{
    http_reply((http_req *)h, status, content_type, body, len);
}

void osb_http_reply_json(osb_http *h, int status, const json_t *j)
{
    http_reply_json((http_req *)h, status, j);
}

void osb_http_reply_error(osb_http *h, int status, const char *error, const char *description)
{
    http_reply_error((http_req *)h, status, error, description, NULL);
}
