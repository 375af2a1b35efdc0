/* Unit tests of libosb's catalog loader (src/sdk/catalog.c): the starter broker's catalog
 * loads, and every OSB / IBM Cloud catalog rule rejects a broken document with an error
 * that starts with the JSON location of the fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "sdk/sdk.h"

#ifndef STARTER_CATALOG
#error "STARTER_CATALOG must name examples/starter-broker/catalog.json"
#endif

/* A small valid catalog: two services, a bindable one with two plans and a non-bindable one
 * with one plan whose name repeats a plan name of the first service (allowed). */
static const char base_json[] =
    "{\"services\": ["
    " {\"id\": \"svc-a\", \"name\": \"alpha\", \"description\": \"Alpha\", \"bindable\": true,"
    "  \"plans\": ["
    "   {\"id\": \"plan-a1\", \"name\": \"small\", \"description\": \"Small\"},"
    "   {\"id\": \"plan-a2\", \"name\": \"large\", \"description\": \"Large\"}]},"
    " {\"id\": \"svc-b\", \"name\": \"beta\", \"description\": \"Beta\", \"bindable\": false,"
    "  \"plans\": ["
    "   {\"id\": \"plan-b1\", \"name\": \"small\", \"description\": \"Small\"}]}"
    "]}";

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("bad test JSON: %s: %s", je.text, text);
    return j;
}

static json_t *base_doc(void)
{
    return parse(base_json);
}

static json_t *service_of(json_t *doc, size_t i)
{
    json_t *s = json_array_get(json_object_get(doc, "services"), i);
    assert_non_null(s);
    return s;
}

static json_t *plan_of(json_t *doc, size_t i, size_t j)
{
    json_t *p = json_array_get(json_object_get(service_of(doc, i), "plans"), j);
    assert_non_null(p);
    return p;
}

/* Sets obj[key] to the JSON value written in text. */
static void set(json_t *obj, const char *key, const char *text)
{
    assert_int_equal(json_object_set_new(obj, key, parse(text)), 0);
}

/* Expects doc (consumed) to be refused with an error starting with the JSON location
 * `where` (followed by ':' or a deeper path) and mentioning `mention`. */
static void reject_at(json_t *doc, const char *where, const char *mention, int line)
{
    sdk_catalog c;
    char err[1024] = "";
    int rc = sdk_catalog_from_json(doc, &c, err, sizeof err);
    json_decref(doc);
    if (rc == 0) {
        sdk_catalog_free(&c);
        fail_msg("line %d: accepted; expected an error at %s", line, where);
    }
    if (rc != OSB_E_INVAL)
        fail_msg("line %d: rc %d, want OSB_E_INVAL (%s)", line, rc, err);
    size_t wl = strlen(where);
    if (strncmp(err, where, wl) != 0 || !strchr(":.[", err[wl]) || err[wl] == '\0')
        fail_msg("line %d: error \"%s\" does not name the location \"%s\"", line, err, where);
    if (mention && !strstr(err + wl, mention))
        fail_msg("line %d: error \"%s\" does not mention \"%s\"", line, err, mention);
}
#define reject(doc, where, mention) reject_at((doc), (where), (mention), __LINE__)

/* Expects doc (not consumed) to load; the caller frees c. */
static void accept_at(const json_t *doc, sdk_catalog *c, int line)
{
    char err[1024] = "";
    int rc = sdk_catalog_from_json(doc, c, err, sizeof err);
    if (rc)
        fail_msg("line %d: refused (%d): %s", line, rc, err);
}
#define accept(doc, c) accept_at((doc), (c), __LINE__)

/* Loads doc (consumed) and frees the catalog: for cases that only need to be accepted. */
static void accept_only_at(json_t *doc, int line)
{
    sdk_catalog c;
    accept_at(doc, &c, line);
    sdk_catalog_free(&c);
    json_decref(doc);
}
#define accept_only(doc) accept_only_at((doc), __LINE__)

/* ---------------------------------------------------------------- good catalogs */

static void test_starter_catalog_loads(void **state)
{
    (void)state;
    sdk_catalog c;
    char err[512] = "";
    int rc = sdk_catalog_load(STARTER_CATALOG, &c, err, sizeof err);
    if (rc)
        fail_msg("%s: %s", STARTER_CATALOG, err);
    assert_int_equal(c.nservices, 1);
    const sdk_service *s = &c.services[0];
    assert_string_equal(s->id, "b98be605-e947-4476-8e9c-a62c55ffcb87");
    assert_string_equal(s->name, "starter-kv");
    assert_true(s->bindable);
    assert_true(s->instances_retrievable);
    assert_true(s->bindings_retrievable);
    assert_true(s->plan_updateable);
    assert_true(s->allow_context_updates);
    assert_int_equal(s->nplans, 3);

    const sdk_plan *lite = sdk_find_plan(s, "4b794e00-7040-4b83-b421-f699fb59eda5");
    const sdk_plan *standard = sdk_find_plan(s, "7ae16b40-822a-486e-af2e-55cdc138c742");
    const sdk_plan *premium = sdk_find_plan(s, "538e30dd-9b3f-4196-9d3e-51f21c858cbe");
    assert_non_null(lite);
    assert_non_null(standard);
    assert_non_null(premium);
    assert_string_equal(lite->name, "lite");
    assert_string_equal(standard->name, "standard");
    assert_string_equal(premium->name, "premium");
    assert_ptr_equal(lite->service, s);
    assert_ptr_equal(premium->service, s);

    /* plan flags: inherited from the service unless the plan says otherwise */
    assert_true(lite->bindable);
    assert_true(lite->plan_updateable);
    assert_false(lite->binding_rotatable);
    assert_null(lite->maintenance_version);
    assert_int_equal(lite->max_polling_s, 0);
    assert_true(premium->binding_rotatable);
    assert_non_null(premium->maintenance_version);
    assert_string_equal(premium->maintenance_version, "1.2.0");
    assert_int_equal(premium->max_polling_s, 600);

    /* the schemas each plan publishes, compiled; absent ones stay NULL */
    assert_non_null(lite->instance_create);
    assert_non_null(lite->instance_update);
    assert_non_null(lite->binding_create);
    assert_non_null(standard->instance_create);
    assert_null(standard->instance_update);
    assert_non_null(standard->binding_create);
    assert_null(premium->instance_create);
    assert_null(premium->instance_update);
    assert_null(premium->binding_create);

    /* and each is the schema of its own plan: lite allows 100 keys, standard 100000 */
    json_t *p = parse("{\"max_keys\": 101}");
    char verr[256];
    assert_int_equal(jschema_validate(lite->instance_create, p, verr, sizeof verr), 1);
    assert_int_equal(jschema_validate(lite->instance_update, p, verr, sizeof verr), 1);
    assert_int_equal(jschema_validate(standard->instance_create, p, verr, sizeof verr), 0);
    json_decref(p);
    p = parse("{\"role\": \"admin\"}");
    assert_int_equal(jschema_validate(lite->binding_create, p, verr, sizeof verr), 1);
    json_decref(p);
    p = parse("{\"role\": \"reader\", \"scope\": \"app\"}");
    assert_int_equal(jschema_validate(standard->binding_create, p, verr, sizeof verr), 0);
    json_decref(p);

    /* the served body is the file's JSON */
    assert_non_null(c.body);
    assert_int_equal(c.body_len, strlen(c.body));
    json_error_t je;
    json_t *file = json_load_file(STARTER_CATALOG, 0, &je);
    assert_non_null(file);
    json_t *body = json_loads(c.body, 0, &je);
    assert_non_null(body);
    assert_true(json_equal(file, body));
    json_decref(file);
    json_decref(body);

    assert_ptr_equal(sdk_find_service(&c, "b98be605-e947-4476-8e9c-a62c55ffcb87"), s);
    assert_null(sdk_find_service(&c, "starter-kv")); /* by id, not by name */
    assert_null(sdk_find_service(&c, NULL));
    assert_null(sdk_find_plan(s, "lite"));
    assert_null(sdk_find_plan(s, NULL));
    assert_null(sdk_find_plan(NULL, "4b794e00-7040-4b83-b421-f699fb59eda5"));
    sdk_catalog_free(&c);
    assert_int_equal(c.nservices, 0);
    assert_null(c.services);
}

static void test_base_catalog_defaults(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    sdk_catalog c;
    accept(doc, &c);
    /* the document is copied, not stolen: the catalog outlives it */
    json_decref(doc);
    assert_int_equal(c.nservices, 2);
    const sdk_service *a = sdk_find_service(&c, "svc-a");
    const sdk_service *b = sdk_find_service(&c, "svc-b");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->name, "alpha");
    assert_string_equal(b->name, "beta");
    assert_false(a->instances_retrievable);
    assert_false(a->bindings_retrievable);
    assert_false(a->plan_updateable);
    assert_false(a->allow_context_updates);
    assert_int_equal(a->nplans, 2);
    assert_int_equal(b->nplans, 1);
    const sdk_plan *a1 = sdk_find_plan(a, "plan-a1");
    const sdk_plan *b1 = sdk_find_plan(b, "plan-b1");
    assert_non_null(a1);
    assert_non_null(b1);
    assert_null(sdk_find_plan(a, "plan-b1")); /* plans are looked up within their service */
    assert_string_equal(a1->name, "small");
    assert_string_equal(b1->name, "small");
    assert_true(a1->bindable);  /* from its service */
    assert_false(b1->bindable); /* from its service */
    assert_false(a1->plan_updateable);
    assert_false(a1->binding_rotatable);
    assert_null(a1->maintenance_version);
    assert_int_equal(a1->max_polling_s, 0);
    assert_null(a1->instance_create);
    assert_string_equal(json_string_value(json_object_get(a1->json, "id")), "plan-a1");
    assert_string_equal(json_string_value(json_object_get(a->json, "id")), "svc-a");
    sdk_catalog_free(&c);
}

static void test_plan_overrides_service_flags(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(plan_of(doc, 0, 1), "bindable", "false");
    set(plan_of(doc, 0, 1), "plan_updateable", "true");
    set(plan_of(doc, 1, 0), "bindable", "true");
    set(plan_of(doc, 1, 0), "binding_rotatable", "true");
    set(plan_of(doc, 1, 0), "maximum_polling_duration", "1");
    set(plan_of(doc, 1, 0), "free", "false");
    set(plan_of(doc, 1, 0), "maintenance_info",
        "{\"version\": \"1.2.3-alpha.1+build.5\", \"description\": \"d\"}");
    set(service_of(doc, 0), "requires",
        "[\"syslog_drain\", \"route_forwarding\", \"volume_mount\"]");
    set(service_of(doc, 0), "tags", "[\"a\", \"b\"]");
    set(service_of(doc, 0), "metadata", "{\"displayName\": \"Alpha\"}");
    set(service_of(doc, 0), "dashboard_client",
        "{\"id\": \"dash\", \"secret\": \"s3cret\", \"redirect_uri\": \"https://x.example\"}");
    set(service_of(doc, 1), "dashboard_client", "null");
    sdk_catalog c;
    accept(doc, &c);
    const sdk_plan *a2 = sdk_find_plan(&c.services[0], "plan-a2");
    const sdk_plan *b1 = sdk_find_plan(&c.services[1], "plan-b1");
    assert_false(a2->bindable);
    assert_true(a2->plan_updateable);
    assert_true(b1->bindable);
    assert_true(b1->binding_rotatable);
    assert_int_equal(b1->max_polling_s, 1);
    assert_string_equal(b1->maintenance_version, "1.2.3-alpha.1+build.5");
    sdk_catalog_free(&c);
    json_decref(doc);
}

/* ---------------------------------------------------------------- structure */

static void test_services_required(void **state)
{
    (void)state;
    reject(parse("{}"), "services", "services");
    reject(parse("{\"services\": []}"), "services", "services");
    reject(parse("{\"services\": {}}"), "services", "services");
    reject(parse("{\"services\": \"alpha\"}"), "services", "services");
    reject(parse("[]"), "services", "services");
    json_t *doc = base_doc();
    set(doc, "services", "[1]");
    reject(doc, "services[0]", "object");
}

static void test_plans_required(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(service_of(doc, 1), "plans", "[]");
    reject(doc, "services[1]", "plans");
    doc = base_doc();
    json_object_del(service_of(doc, 0), "plans");
    reject(doc, "services[0]", "plans");
    doc = base_doc();
    set(service_of(doc, 0), "plans", "{\"id\": \"p\"}");
    reject(doc, "services[0]", "plans");
    doc = base_doc();
    json_array_append_new(json_object_get(service_of(doc, 0), "plans"), json_string("plan"));
    reject(doc, "services[0].plans[2]", "object");
}

static void test_service_required_strings(void **state)
{
    (void)state;
    static const char *keys[] = {"id", "name", "description"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        char quoted[32];
        snprintf(quoted, sizeof quoted, "'%s'", keys[i]);
        json_t *doc = base_doc();
        json_object_del(service_of(doc, 1), keys[i]);
        reject(doc, "services[1]", quoted);
        doc = base_doc();
        set(service_of(doc, 1), keys[i], "\"\"");
        reject(doc, "services[1]", quoted);
        doc = base_doc();
        set(service_of(doc, 1), keys[i], "42");
        reject(doc, "services[1]", quoted);
        doc = base_doc();
        set(service_of(doc, 1), keys[i], "null");
        reject(doc, "services[1]", quoted);
    }
}

static void test_plan_required_strings(void **state)
{
    (void)state;
    static const char *keys[] = {"id", "name", "description"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        char quoted[32];
        snprintf(quoted, sizeof quoted, "'%s'", keys[i]);
        json_t *doc = base_doc();
        json_object_del(plan_of(doc, 0, 1), keys[i]);
        reject(doc, "services[0].plans[1]", quoted);
        doc = base_doc();
        set(plan_of(doc, 1, 0), keys[i], "\"\"");
        reject(doc, "services[1].plans[0]", quoted);
        doc = base_doc();
        set(plan_of(doc, 0, 0), keys[i], "[\"x\"]");
        reject(doc, "services[0].plans[0]", quoted);
    }
}

static void test_bindable_must_be_boolean(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    json_object_del(service_of(doc, 0), "bindable"); /* required on services */
    reject(doc, "services[0]", "bindable");
    static const char *bad[] = {"\"true\"", "1", "0", "null", "{}"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        doc = base_doc();
        set(service_of(doc, 1), "bindable", bad[i]);
        reject(doc, "services[1]", "bindable");
        doc = base_doc();
        set(plan_of(doc, 0, 1), "bindable", bad[i]);
        reject(doc, "services[0].plans[1]", "bindable");
    }
}

static void test_other_booleans(void **state)
{
    (void)state;
    static const char *service_keys[] = {"instances_retrievable", "bindings_retrievable",
                                         "plan_updateable", "allow_context_updates"};
    for (size_t i = 0; i < ARRAY_LEN(service_keys); i++) {
        json_t *doc = base_doc();
        set(service_of(doc, 0), service_keys[i], "\"yes\"");
        reject(doc, "services[0]", service_keys[i]);
    }
    static const char *plan_keys[] = {"free", "plan_updateable", "binding_rotatable"};
    for (size_t i = 0; i < ARRAY_LEN(plan_keys); i++) {
        json_t *doc = base_doc();
        set(plan_of(doc, 0, 0), plan_keys[i], "1");
        reject(doc, "services[0].plans[0]", plan_keys[i]);
    }
}

static void test_metadata_tags_shapes(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(service_of(doc, 0), "metadata", "[]");
    reject(doc, "services[0]", "metadata");
    doc = base_doc();
    set(plan_of(doc, 1, 0), "metadata", "\"x\"");
    reject(doc, "services[1].plans[0]", "metadata");
    doc = base_doc();
    set(service_of(doc, 0), "tags", "\"kv\"");
    reject(doc, "services[0]", "tags");
    doc = base_doc();
    set(service_of(doc, 0), "tags", "[\"kv\", 7]");
    reject(doc, "services[0]", "tags[1]");
}

/* ---------------------------------------------------------------- uniqueness */

static void test_duplicate_service_names(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(service_of(doc, 1), "name", "\"alpha\"");
    reject(doc, "services", "'alpha'");
}

static void test_duplicate_service_ids(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(service_of(doc, 1), "id", "\"svc-a\"");
    reject(doc, "services", "'svc-a'");
}

static void test_duplicate_plan_names_in_service(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(plan_of(doc, 0, 1), "name", "\"small\"");
    reject(doc, "services[0].plans[1]", "'small'");
}

static void test_duplicate_plan_ids(void **state)
{
    (void)state;
    /* across services */
    json_t *doc = base_doc();
    set(plan_of(doc, 1, 0), "id", "\"plan-a2\"");
    reject(doc, "services", "'plan-a2'");
    /* within one service */
    doc = base_doc();
    set(plan_of(doc, 0, 1), "id", "\"plan-a1\"");
    reject(doc, "services", "'plan-a1'");
    /* a plan id equal to a service id is not a clash */
    doc = base_doc();
    set(plan_of(doc, 1, 0), "id", "\"svc-a\"");
    accept_only(doc);
}

/* ---------------------------------------------------------------- maintenance_info */

static void test_semver(void **state)
{
    (void)state;
    static const char *good[] = {
        "1.2.3",
        "0.0.0",
        "10.20.30",
        "1.2.3-alpha.1+build.5",
        "1.0.0-0",
        "1.0.0-alpha",
        "1.0.0-alpha.beta",
        "1.0.0-x.7.z.92",
        "1.0.0-x-y-z.--",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
        "1.0.0+21AF26D3----117B344092BD",
        "1.2.3-0a",
        "1.2.3+001",
        "1.2.3-rc.10",
        "999999999.0.0",
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++)
        if (!sdk_semver_valid(good[i]))
            fail_msg("\"%s\" is a semantic version", good[i]);
    static const char *bad[] = {
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2",
        "1",
        "",
        "1.2.3-01",
        "1.2.3-alpha.01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-alpha..1",
        "1.2.3-alpha.",
        "1.2.3+build.",
        "1.2.3.4",
        "v1.2.3",
        "1.2.3 ",
        " 1.2.3",
        "1.2.3-alpha_1",
        "1.2.3+a+b",
        "-1.2.3",
        "1..3",
        "1.2.",
        "1.2.x",
        "a.b.c",
        "1.2.3-+",
        "1.2.3-beta!",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (sdk_semver_valid(bad[i]))
            fail_msg("\"%s\" is not a semantic version", bad[i]);
}

static void test_maintenance_info_version(void **state)
{
    (void)state;
    static const char *ok[] = {"\"1.2.3\"", "\"1.2.3-alpha.1+build.5\""};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        json_t *doc = base_doc();
        json_t *mi = json_object();
        json_object_set_new(mi, "version", parse(ok[i]));
        json_object_set_new(plan_of(doc, 0, 1), "maintenance_info", mi);
        accept_only(doc);
    }
    static const char *bad[] = {"\"01.2.3\"", "\"1.2\"", "\"1.2.3-01\"", "\"\"", "123", "null"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        json_t *doc = base_doc();
        json_t *mi = json_object();
        json_object_set_new(mi, "version", parse(bad[i]));
        json_object_set_new(plan_of(doc, 0, 1), "maintenance_info", mi);
        reject(doc, "services[0].plans[1]", "maintenance_info");
    }
    json_t *doc = base_doc();
    set(plan_of(doc, 1, 0), "maintenance_info", "{}");
    reject(doc, "services[1].plans[0]", "maintenance_info");
    doc = base_doc();
    set(plan_of(doc, 1, 0), "maintenance_info", "\"1.2.3\"");
    reject(doc, "services[1].plans[0]", "maintenance_info");
    doc = base_doc();
    set(plan_of(doc, 1, 0), "maintenance_info", "{\"version\": \"1.2.3\", \"description\": 5}");
    reject(doc, "services[1].plans[0]", "description");
}

/* ---------------------------------------------------------------- schemas */

#define CREATE_AT "services[0].plans[1].schemas.service_instance.create.parameters"
#define UPDATE_AT "services[0].plans[1].schemas.service_instance.update.parameters"
#define BIND_AT   "services[0].plans[1].schemas.service_binding.create.parameters"

/* A plan's schemas object with one schema at the given place. */
static json_t *doc_with_schema(const char *which, const char *action, json_t *params)
{
    json_t *doc = base_doc();
    json_t *schemas = parse("{}");
    json_t *outer = json_object();
    json_t *inner = json_object();
    json_object_set_new(inner, "parameters", params);
    json_object_set_new(outer, action, inner);
    json_object_set_new(schemas, which, outer);
    json_object_set_new(plan_of(doc, 0, 1), "schemas", schemas);
    return doc;
}

static void test_schema_must_be_object(void **state)
{
    (void)state;
    static const char *bad[] = {"\"object\"", "[]", "null", "7", "true"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        reject(doc_with_schema("service_instance", "create", parse(bad[i])), CREATE_AT, "object");
        reject(doc_with_schema("service_instance", "update", parse(bad[i])), UPDATE_AT, "object");
        reject(doc_with_schema("service_binding", "create", parse(bad[i])), BIND_AT, "object");
    }
    /* the containers too */
    json_t *doc = base_doc();
    set(plan_of(doc, 0, 1), "schemas", "[]");
    reject(doc, "services[0].plans[1]", "schemas");
    doc = base_doc();
    set(plan_of(doc, 0, 1), "schemas", "{\"service_instance\": \"x\"}");
    reject(doc, "services[0].plans[1]", "service_instance");
    doc = base_doc();
    set(plan_of(doc, 0, 1), "schemas", "{\"service_binding\": 1}");
    reject(doc, "services[0].plans[1]", "service_binding");
}

static void test_schema_action_must_be_object(void **state)
{
    (void)state;
    /* "create" holds a Schema Parameters object; anything else is not a valid catalog */
    json_t *doc = base_doc();
    set(plan_of(doc, 0, 1), "schemas", "{\"service_instance\": {\"create\": \"x\"}}");
    reject(doc, "services[0].plans[1]", "create");
    doc = base_doc();
    set(plan_of(doc, 0, 1), "schemas", "{\"service_binding\": {\"create\": [1]}}");
    reject(doc, "services[0].plans[1]", "create");
}

static void test_schema_valid_ones_compile(void **state)
{
    (void)state;
    json_t *doc = doc_with_schema(
        "service_instance", "create",
        parse("{\"$schema\": \"http://json-schema.org/draft-04/schema#\", \"type\": \"object\","
              " \"definitions\": {\"n\": {\"type\": \"integer\"}},"
              " \"properties\": {\"size\": {\"$ref\": \"#/definitions/n\"}}}"));
    sdk_catalog c;
    accept(doc, &c);
    const sdk_plan *p = sdk_find_plan(&c.services[0], "plan-a2");
    assert_non_null(p->instance_create);
    assert_null(p->instance_update);
    assert_null(p->binding_create);
    json_t *v = parse("{\"size\": \"big\"}");
    assert_int_equal(jschema_validate(p->instance_create, v, NULL, 0), 1);
    json_decref(v);
    sdk_catalog_free(&c);
    json_decref(doc);
}

static void test_schema_size_limit(void **state)
{
    (void)state;
    /* 64 kB of schema text at most (measured compactly) */
    size_t n = 70000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    json_t *params = json_object();
    json_object_set_new(params, "type", json_string("object"));
    json_object_set_new(params, "description", json_string(big));
    reject(doc_with_schema("service_binding", "create", params), BIND_AT, "bytes");

    /* a schema just under the limit is fine */
    big[60000] = '\0';
    params = json_object();
    json_object_set_new(params, "type", json_string("object"));
    json_object_set_new(params, "description", json_string(big));
    accept_only(doc_with_schema("service_binding", "create", params));
    free(big);
}

static void test_schema_remote_ref(void **state)
{
    (void)state;
    static const char *refs[] = {
        "{\"$ref\": \"http://example.com/schema.json#\"}",
        "{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"https://example.com/s#/x\"}}}",
        "{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": "
        "\"other.json#/definitions/a\"}}}",
    };
    for (size_t i = 0; i < ARRAY_LEN(refs); i++) {
        reject(doc_with_schema("service_instance", "create", parse(refs[i])), CREATE_AT, "$ref");
        reject(doc_with_schema("service_binding", "create", parse(refs[i])), BIND_AT, "$ref");
    }
}

static void test_schema_unsupported_dialect(void **state)
{
    (void)state;
    reject(doc_with_schema("service_instance", "update",
                           parse("{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
                                 " \"type\": \"object\"}")),
           UPDATE_AT, "$schema");
    reject(doc_with_schema("service_instance", "update", parse("{\"type\": \"objekt\"}")),
           UPDATE_AT, NULL);
}

/* ---------------------------------------------------------------- IBM Cloud and OSB rules */

static void test_service_name_spaces(void **state)
{
    (void)state;
    static const char *bad[] = {"\"my service\"", "\" alpha\"", "\"alpha \"", "\"al\\tpha\"",
                                "\"al\\npha\""};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        json_t *doc = base_doc();
        set(service_of(doc, 1), "name", bad[i]);
        reject(doc, "services[1]", "name");
    }
    json_t *doc = base_doc();
    set(service_of(doc, 1), "name", "\"beta-2_x.y\"");
    accept_only(doc);
}

static void test_requires_values(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(service_of(doc, 0), "requires", "[\"syslog_drain\", \"bogus\"]");
    reject(doc, "services[0]", "requires[1]");
    doc = base_doc();
    set(service_of(doc, 0), "requires", "[\"SYSLOG_DRAIN\"]");
    reject(doc, "services[0]", "requires[0]");
    doc = base_doc();
    set(service_of(doc, 1), "requires", "[\"\"]");
    reject(doc, "services[1]", "requires[0]");
    doc = base_doc();
    set(service_of(doc, 1), "requires", "[1]");
    reject(doc, "services[1]", "requires[0]");
    doc = base_doc();
    set(service_of(doc, 1), "requires", "\"volume_mount\"");
    reject(doc, "services[1]", "requires");
    doc = base_doc();
    set(service_of(doc, 1), "requires", "{}");
    reject(doc, "services[1]", "requires");
    doc = base_doc();
    set(service_of(doc, 1), "requires", "[]");
    accept_only(doc);
}

static void test_maximum_polling_duration(void **state)
{
    (void)state;
    static const char *bad[] = {"0", "-1", "-600", "1.5", "60.0", "\"60\"", "true", "null"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        json_t *doc = base_doc();
        set(plan_of(doc, 0, 0), "maximum_polling_duration", bad[i]);
        reject(doc, "services[0].plans[0]", "maximum_polling_duration");
    }
    json_t *doc = base_doc();
    set(plan_of(doc, 0, 0), "maximum_polling_duration", "86400");
    sdk_catalog c;
    accept(doc, &c);
    assert_int_equal(sdk_find_plan(&c.services[0], "plan-a1")->max_polling_s, 86400);
    sdk_catalog_free(&c);
    json_decref(doc);
}

static void test_binding_rotatable_needs_bindable(void **state)
{
    (void)state;
    /* the plan says it is not bindable */
    json_t *doc = base_doc();
    set(plan_of(doc, 0, 1), "bindable", "false");
    set(plan_of(doc, 0, 1), "binding_rotatable", "true");
    reject(doc, "services[0].plans[1]", "binding_rotatable");
    /* the plan inherits "not bindable" from its service */
    doc = base_doc();
    set(plan_of(doc, 1, 0), "binding_rotatable", "true");
    reject(doc, "services[1].plans[0]", "binding_rotatable");
    /* false is always fine */
    doc = base_doc();
    set(plan_of(doc, 1, 0), "binding_rotatable", "false");
    accept_only(doc);
    /* bindable through the service */
    doc = base_doc();
    set(plan_of(doc, 0, 0), "binding_rotatable", "true");
    accept_only(doc);
}

static void test_dashboard_client(void **state)
{
    (void)state;
    json_t *doc = base_doc();
    set(service_of(doc, 0), "dashboard_client",
        "{\"id\": \"dash\", \"redirect_uri\": \"https://x\"}");
    reject(doc, "services[0].dashboard_client", "secret");
    doc = base_doc();
    set(service_of(doc, 0), "dashboard_client", "{\"id\": \"dash\", \"secret\": \"\"}");
    reject(doc, "services[0].dashboard_client", "secret");
    doc = base_doc();
    set(service_of(doc, 1), "dashboard_client", "{\"id\": \"dash\", \"secret\": 5}");
    reject(doc, "services[1].dashboard_client", "secret");
    doc = base_doc();
    set(service_of(doc, 1), "dashboard_client", "{\"secret\": \"s\"}");
    reject(doc, "services[1].dashboard_client", "'id'");
    doc = base_doc();
    set(service_of(doc, 1), "dashboard_client", "\"dash\"");
    reject(doc, "services[1].dashboard_client", "object");
    doc = base_doc();
    set(service_of(doc, 1), "dashboard_client",
        "{\"id\": \"dash\", \"secret\": \"s\", \"redirect_uri\": 7}");
    reject(doc, "services[1].dashboard_client", "redirect_uri");
    doc = base_doc();
    set(service_of(doc, 1), "dashboard_client", "{\"id\": \"dash\", \"secret\": \"s\"}");
    accept_only(doc);
}

static void test_first_fault_wins_and_err_is_optional(void **state)
{
    (void)state;
    /* the earliest fault in document order is the one reported */
    json_t *doc = base_doc();
    json_object_del(plan_of(doc, 0, 1), "name");
    json_object_del(service_of(doc, 1), "description");
    reject(doc, "services[0].plans[1]", "'name'");

    /* no error buffer, or a tiny one, is safe */
    doc = base_doc();
    set(service_of(doc, 0), "bindable", "\"yes\"");
    sdk_catalog c;
    assert_int_equal(sdk_catalog_from_json(doc, &c, NULL, 0), OSB_E_INVAL);
    char tiny[8];
    memset(tiny, 'z', sizeof tiny);
    assert_int_equal(sdk_catalog_from_json(doc, &c, tiny, sizeof tiny), OSB_E_INVAL);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_memory_equal(tiny, "service", 7);
    json_decref(doc);
}

/* ---------------------------------------------------------------- loading files */

typedef struct {
    char dir[256];
} tmpdir;

static int tmp_setup(void **state)
{
    tmpdir *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/osbill-catalog-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    tmpdir *t = *state;
    static const char *names[] = {"ok.json", "broken.json", "dup.json", "rules.json", "big.json"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char p[320];
        snprintf(p, sizeof p, "%s/%s", t->dir, names[i]);
        unlink(p);
    }
    rmdir(t->dir);
    free(t);
    return 0;
}

static void write_file(const char *dir, const char *name, const char *text, char *path,
                       size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_load_files(void **state)
{
    tmpdir *t = *state;
    char path[320], err[1024];
    sdk_catalog c;

    write_file(t->dir, "ok.json", base_json, path, sizeof path);
    err[0] = '\0';
    assert_int_equal(sdk_catalog_load(path, &c, err, sizeof err), 0);
    assert_int_equal(c.nservices, 2);
    sdk_catalog_free(&c);

    /* a missing file: the error names it */
    snprintf(path, sizeof path, "%s/absent.json", t->dir);
    assert_int_not_equal(sdk_catalog_load(path, &c, err, sizeof err), 0);
    assert_memory_equal(err, path, strlen(path));

    /* unparsable JSON: the error names the file and the line */
    write_file(t->dir, "broken.json", "{\"services\": [\n  {\"id\": }\n]}", path, sizeof path);
    assert_int_not_equal(sdk_catalog_load(path, &c, err, sizeof err), 0);
    assert_memory_equal(err, path, strlen(path));
    assert_non_null(strstr(err, "line 2"));

    /* duplicate keys are refused: which one would win is not obvious to the author */
    write_file(t->dir, "dup.json",
               "{\"services\": [{\"id\": \"a\", \"id\": \"b\", \"name\": \"n\","
               " \"description\": \"d\", \"bindable\": false,"
               " \"plans\": [{\"id\": \"p\", \"name\": \"p\", \"description\": \"d\"}]}]}",
               path, sizeof path);
    assert_int_not_equal(sdk_catalog_load(path, &c, err, sizeof err), 0);
    assert_memory_equal(err, path, strlen(path));

    /* a well-formed file that breaks a rule names the JSON location */
    write_file(t->dir, "rules.json",
               "{\"services\": [{\"id\": \"a\", \"name\": \"n\", \"description\": \"d\","
               " \"bindable\": false, \"plans\": [{\"id\": \"p\", \"name\": \"p\","
               " \"description\": \"d\", \"maximum_polling_duration\": 0}]}]}",
               path, sizeof path);
    assert_int_equal(sdk_catalog_load(path, &c, err, sizeof err), OSB_E_INVAL);
    assert_memory_equal(err, "services[0].plans[0]:", strlen("services[0].plans[0]:"));

    /* a file over the 8 MB cap is refused before it is parsed */
    snprintf(path, sizeof path, "%s/big.json", t->dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 8 * 1024 * 1024 + 1), 0);
    assert_int_equal(fclose(f), 0);
    assert_int_not_equal(sdk_catalog_load(path, &c, err, sizeof err), 0);
    assert_memory_equal(err, path, strlen(path));
    assert_non_null(strstr(err, "larger"));
}

int main(void)
{
    log_set_level(LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starter_catalog_loads),
        cmocka_unit_test(test_base_catalog_defaults),
        cmocka_unit_test(test_plan_overrides_service_flags),
        cmocka_unit_test(test_services_required),
        cmocka_unit_test(test_plans_required),
        cmocka_unit_test(test_service_required_strings),
        cmocka_unit_test(test_plan_required_strings),
        cmocka_unit_test(test_bindable_must_be_boolean),
        cmocka_unit_test(test_other_booleans),
        cmocka_unit_test(test_metadata_tags_shapes),
        cmocka_unit_test(test_duplicate_service_names),
        cmocka_unit_test(test_duplicate_service_ids),
        cmocka_unit_test(test_duplicate_plan_names_in_service),
        cmocka_unit_test(test_duplicate_plan_ids),
        cmocka_unit_test(test_semver),
        cmocka_unit_test(test_maintenance_info_version),
        cmocka_unit_test(test_schema_must_be_object),
        cmocka_unit_test(test_schema_action_must_be_object),
        cmocka_unit_test(test_schema_valid_ones_compile),
        cmocka_unit_test(test_schema_size_limit),
        cmocka_unit_test(test_schema_remote_ref),
        cmocka_unit_test(test_schema_unsupported_dialect),
        cmocka_unit_test(test_service_name_spaces),
        cmocka_unit_test(test_requires_values),
        cmocka_unit_test(test_maximum_polling_duration),
        cmocka_unit_test(test_binding_rotatable_needs_bindable),
        cmocka_unit_test(test_dashboard_client),
        cmocka_unit_test(test_first_fault_wins_and_err_is_optional),
        cmocka_unit_test_setup_teardown(test_load_files, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
