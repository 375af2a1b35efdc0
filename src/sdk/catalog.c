/* sdk catalog: loads catalog.json (the OSB catalog shape the platform exports for an
 * offering) and checks it as OSB 2.17 and IBM Cloud require, before the broker serves it. */
#include "sdk/sdk.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_MAX_BYTES (64 * 1024)
#define CATALOG_MAX_BYTES (8 * 1024 * 1024)

static int fail(char *err, size_t errlen, const char *where, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
static int fail(char *err, size_t errlen, const char *where, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", where, msg);
    return OSB_E_INVAL;
}

bool sdk_semver_valid(const char *v)
{
    /* MAJOR.MINOR.PATCH with no leading zeros, optional -prerelease and +build parts. */
    const char *p = v;
    for (int part = 0; part < 3; part++) {
        if (!isdigit((unsigned char)*p))
            return false;
        if (*p == '0' && isdigit((unsigned char)p[1]))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
        if (part < 2 && *p++ != '.')
            return false;
    }
    for (char sep = '-'; sep; sep = sep == '-' ? '+' : 0) {
        if (*p != sep)
            continue;
        p++;
        for (;;) {
            const char *start = p;
            while (isalnum((unsigned char)*p) || *p == '-')
                p++;
            if (p == start)
                return false;
            if (sep == '-' && isdigit((unsigned char)*start) && *start == '0' && p - start > 1) {
                bool numeric = true;
                for (const char *q = start; q < p; q++)
                    numeric &= isdigit((unsigned char)*q) != 0;
                if (numeric)
                    return false;
            }
            if (*p != '.')
                break;
            p++;
        }
    }
    return *p == '\0';
}

static int opt_bool(const json_t *obj, const char *key, bool dflt, bool *out, char *err,
                    size_t errlen, const char *where)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v))
        return fail(err, errlen, where, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

static int req_string(const json_t *obj, const char *key, const char **out, char *err,
                      size_t errlen, const char *where)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(err, errlen, where, "'%s' is required and must be a non-empty string", key);
    *out = json_string_value(v);
    return 0;
}

static int compile_schema(const json_t *schemas, const char *a, const char *b, jschema **out,
                          char *err, size_t errlen, const char *where)
{
    const json_t *params = json_object_get(json_object_get(json_object_get(schemas, a), b),
                                           "parameters");
    *out = NULL;
    if (!params)
        return 0;
    char path[300];
    snprintf(path, sizeof path, "%s.schemas.%s.%s.parameters", where, a, b);
    if (!json_is_object(params))
        return fail(err, errlen, path, "a schema must be a JSON object");
    char *text = json_dumps(params, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0;
    free(text);
    if (n > SCHEMA_MAX_BYTES)
        return fail(err, errlen, path, "the schema is %zu bytes; at most %d are allowed", n,
                    SCHEMA_MAX_BYTES);
    const char *dialect = json_string_value(json_object_get(params, "$schema"));
    /* Validating a later draft's keywords as draft-04 would silently skip some of them. */
    if (dialect && strcmp(dialect, "http://json-schema.org/draft-04/schema#") != 0 &&
        strcmp(dialect, "http://json-schema.org/draft-04/schema") != 0)
        return fail(err, errlen, path, "unsupported $schema '%s' (JSON Schema draft-04 is required)",
                    dialect);
    char msg[256];
    if (jschema_compile(params, out, msg, sizeof msg) != 0)
        return fail(err, errlen, path, "%s", msg);
    return 0;
}

static int check_schemas_shape(const json_t *schemas, char *err, size_t errlen, const char *where)
{
    if (!schemas)
        return 0;
    if (!json_is_object(schemas))
        return fail(err, errlen, where, "'schemas' must be an object");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)schemas, k, v) {
        if (strcmp(k, "service_instance") && strcmp(k, "service_binding"))
            continue; /* unknown fields are ignored */
        if (!json_is_object(v))
            return fail(err, errlen, where, "'schemas.%s' must be an object", k);
        const char *action;
        const json_t *a;
        json_object_foreach((json_t *)v, action, a) {
            bool known = strcmp(action, "create") == 0 ||
                         (strcmp(k, "service_instance") == 0 && strcmp(action, "update") == 0);
            if (known && !json_is_object(a))
                return fail(err, errlen, where, "'schemas.%s.%s' must be an object", k, action);
        }
    }
    return 0;
}

static int load_plan(const json_t *pj, sdk_plan *p, sdk_service *s, char *err, size_t errlen,
                     const char *where)
{
    int rc;
    if (!json_is_object(pj))
        return fail(err, errlen, where, "a plan must be an object");
    p->json = pj;
    p->service = s;
    if ((rc = req_string(pj, "id", &p->id, err, errlen, where)) ||
        (rc = req_string(pj, "name", &p->name, err, errlen, where)))
        return rc;
    const char *desc;
    if ((rc = req_string(pj, "description", &desc, err, errlen, where)))
        return rc;
    bool free_plan;
    if ((rc = opt_bool(pj, "free", true, &free_plan, err, errlen, where)) ||
        (rc = opt_bool(pj, "bindable", s->bindable, &p->bindable, err, errlen, where)) ||
        (rc = opt_bool(pj, "plan_updateable", s->plan_updateable, &p->plan_updateable, err,
                       errlen, where)) ||
        (rc = opt_bool(pj, "binding_rotatable", false, &p->binding_rotatable, err, errlen, where)))
        return rc;
    if (p->binding_rotatable && !p->bindable)
        return fail(err, errlen, where, "'binding_rotatable' needs a bindable plan");
    const json_t *md = json_object_get(pj, "metadata");
    if (md && !json_is_object(md))
        return fail(err, errlen, where, "'metadata' must be an object");
    const json_t *mpd = json_object_get(pj, "maximum_polling_duration");
    if (mpd) {
        if (!json_is_integer(mpd) || json_integer_value(mpd) <= 0)
            return fail(err, errlen, where,
                        "'maximum_polling_duration' must be a positive integer (seconds)");
        p->max_polling_s = json_integer_value(mpd);
    }
    const json_t *mi = json_object_get(pj, "maintenance_info");
    if (mi) {
        const char *ver = json_string_value(json_object_get(mi, "version"));
        if (!json_is_object(mi) || !ver)
            return fail(err, errlen, where, "'maintenance_info' needs a string 'version'");
        if (!sdk_semver_valid(ver))
            return fail(err, errlen, where,
                        "'maintenance_info.version' '%s' is not a semantic version", ver);
        const json_t *d = json_object_get(mi, "description");
        if (d && !json_is_string(d))
            return fail(err, errlen, where, "'maintenance_info.description' must be a string");
        p->maintenance_version = ver;
    }
    const json_t *schemas = json_object_get(pj, "schemas");
    if ((rc = check_schemas_shape(schemas, err, errlen, where)) ||
        (rc = compile_schema(schemas, "service_instance", "create", &p->instance_create, err,
                             errlen, where)) ||
        (rc = compile_schema(schemas, "service_instance", "update", &p->instance_update, err,
                             errlen, where)) ||
        (rc = compile_schema(schemas, "service_binding", "create", &p->binding_create, err,
                             errlen, where)))
        return rc;
    return 0;
}

static int check_string_array(const json_t *obj, const char *key, char *err, size_t errlen,
                              const char *where)
{
    const json_t *a = json_object_get(obj, key), *v;
    size_t i;
    if (!a)
        return 0;
    if (!json_is_array(a))
        return fail(err, errlen, where, "'%s' must be an array of strings", key);
    json_array_foreach(a, i, v) {
        if (!json_is_string(v))
            return fail(err, errlen, where, "'%s[%zu]' must be a string", key, i);
    }
    return 0;
}

static int load_service(const json_t *sj, sdk_service *s, char *err, size_t errlen,
                        const char *where)
{
    int rc;
    if (!json_is_object(sj))
        return fail(err, errlen, where, "a service must be an object");
    s->json = sj;
    const char *desc;
    if ((rc = req_string(sj, "id", &s->id, err, errlen, where)) ||
        (rc = req_string(sj, "name", &s->name, err, errlen, where)) ||
        (rc = req_string(sj, "description", &desc, err, errlen, where)))
        return rc;
    for (const char *c = s->name; *c; c++)
        if (isspace((unsigned char)*c))
            return fail(err, errlen, where, "'name' must not contain spaces (CLI-friendly)");
    if (!json_is_boolean(json_object_get(sj, "bindable")))
        return fail(err, errlen, where, "'bindable' is required and must be a boolean");
    s->bindable = json_is_true(json_object_get(sj, "bindable"));
    if ((rc = opt_bool(sj, "instances_retrievable", false, &s->instances_retrievable, err, errlen,
                       where)) ||
        (rc = opt_bool(sj, "bindings_retrievable", false, &s->bindings_retrievable, err, errlen,
                       where)) ||
        (rc = opt_bool(sj, "plan_updateable", false, &s->plan_updateable, err, errlen, where)) ||
        (rc = opt_bool(sj, "allow_context_updates", false, &s->allow_context_updates, err, errlen,
                       where)) ||
        (rc = check_string_array(sj, "tags", err, errlen, where)) ||
        (rc = check_string_array(sj, "requires", err, errlen, where)))
        return rc;
    const json_t *req = json_object_get(sj, "requires"), *v;
    size_t i;
    json_array_foreach(req, i, v) {
        const char *r = json_string_value(v);
        if (strcmp(r, "syslog_drain") && strcmp(r, "route_forwarding") && strcmp(r, "volume_mount"))
            return fail(err, errlen, where,
                        "'requires[%zu]' must be syslog_drain, route_forwarding or volume_mount", i);
    }
    const json_t *md = json_object_get(sj, "metadata");
    if (md && !json_is_object(md))
        return fail(err, errlen, where, "'metadata' must be an object");
    const json_t *dc = json_object_get(sj, "dashboard_client");
    if (dc && !json_is_null(dc)) {
        const char *x;
        char w[256];
        snprintf(w, sizeof w, "%s.dashboard_client", where);
        if (!json_is_object(dc))
            return fail(err, errlen, w, "must be an object");
        if ((rc = req_string(dc, "id", &x, err, errlen, w)) ||
            (rc = req_string(dc, "secret", &x, err, errlen, w)))
            return rc;
        const json_t *ru = json_object_get(dc, "redirect_uri");
        if (ru && !json_is_string(ru))
            return fail(err, errlen, w, "'redirect_uri' must be a string");
    }
    const json_t *plans = json_object_get(sj, "plans");
    if (!json_is_array(plans) || json_array_size(plans) == 0)
        return fail(err, errlen, where, "'plans' must be a non-empty array");
    s->nplans = json_array_size(plans);
    s->plans = calloc(s->nplans, sizeof *s->plans);
    if (!s->plans)
        return OSB_E_NOMEM;
    for (size_t j = 0; j < s->nplans; j++) {
        char w[256];
        snprintf(w, sizeof w, "%s.plans[%zu]", where, j);
        if ((rc = load_plan(json_array_get(plans, j), &s->plans[j], s, err, errlen, w)))
            return rc;
        for (size_t k = 0; k < j; k++)
            if (strcmp(s->plans[k].name, s->plans[j].name) == 0)
                return fail(err, errlen, w, "plan name '%s' is used twice in this service",
                            s->plans[j].name);
    }
    return 0;
}

int sdk_catalog_from_json(const json_t *doc, sdk_catalog *c, char *err, size_t errlen)
{
    int rc;
    memset(c, 0, sizeof *c);
    c->root = json_deep_copy(doc);
    if (!c->root)
        return OSB_E_NOMEM;
    const json_t *services = json_object_get(c->root, "services");
    if (!json_is_array(services) || json_array_size(services) == 0) {
        rc = fail(err, errlen, "services", "the catalog needs a non-empty 'services' array");
        goto out;
    }
    c->nservices = json_array_size(services);
    c->services = calloc(c->nservices, sizeof *c->services);
    if (!c->services) {
        rc = OSB_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < c->nservices; i++) {
        char w[64];
        snprintf(w, sizeof w, "services[%zu]", i);
        if ((rc = load_service(json_array_get(services, i), &c->services[i], err, errlen, w)))
            goto out;
    }
    /* Ids are global: a plan id names one plan of one service on the whole platform. */
    for (size_t i = 0; i < c->nservices; i++) {
        sdk_service *s = &c->services[i];
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->services[j].name, s->name) == 0) {
                rc = fail(err, errlen, "services", "service name '%s' is used twice", s->name);
                goto out;
            }
            if (strcmp(c->services[j].id, s->id) == 0) {
                rc = fail(err, errlen, "services", "service id '%s' is used twice", s->id);
                goto out;
            }
        }
        for (size_t p = 0; p < s->nplans; p++) {
            for (size_t i2 = 0; i2 <= i; i2++) {
                const sdk_service *o = &c->services[i2];
                size_t lim = i2 == i ? p : o->nplans;
                for (size_t q = 0; q < lim; q++) {
                    if (strcmp(o->plans[q].id, s->plans[p].id) == 0) {
                        rc = fail(err, errlen, "services", "plan id '%s' is used twice",
                                  s->plans[p].id);
                        goto out;
                    }
                }
            }
        }
    }
    c->body = json_dumps(c->root, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!c->body) {
        rc = OSB_E_NOMEM;
        goto out;
    }
    c->body_len = strlen(c->body);
    rc = 0;
out:
    if (rc)
        sdk_catalog_free(c);
    return rc;
}

int sdk_catalog_load(const char *path, sdk_catalog *out, char *err, size_t errlen)
{
    json_error_t je;
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, path, "cannot open the catalog file");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (size > CATALOG_MAX_BYTES)
        return fail(err, errlen, path, "the catalog is larger than %d bytes", CATALOG_MAX_BYTES);
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return fail(err, errlen, path, "line %d, column %d: %s", je.line, je.column, je.text);
    int rc = sdk_catalog_from_json(doc, out, err, errlen);
    json_decref(doc);
    return rc;
}

void sdk_catalog_free(sdk_catalog *c)
{
    for (size_t i = 0; i < c->nservices; i++) {
        sdk_service *s = &c->services[i];
        for (size_t j = 0; s->plans && j < s->nplans; j++) {
            jschema_free(s->plans[j].instance_create);
            jschema_free(s->plans[j].instance_update);
            jschema_free(s->plans[j].binding_create);
        }
        free(s->plans);
    }
    free(c->services);
    free(c->body);
    json_decref(c->root);
    memset(c, 0, sizeof *c);
}

const sdk_service *sdk_find_service(const sdk_catalog *c, const char *id)
{
    for (size_t i = 0; id && i < c->nservices; i++)
        if (strcmp(c->services[i].id, id) == 0)
            return &c->services[i];
    return NULL;
}

const sdk_plan *sdk_find_plan(const sdk_service *s, const char *id)
{
    for (size_t i = 0; s && id && i < s->nplans; i++)
        if (strcmp(s->plans[i].id, id) == 0)
            return &s->plans[i];
    return NULL;
}
