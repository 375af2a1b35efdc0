/* catalog plans: the Lite, subscription and metered plans of an offering, their metrics and
 * their prices, versioned by month so that a published price never changes under an invoice.
 * Billing reads the prices through catalog_plan_price_at(); the onboarding steps and the OSB
 * catalog export read the plans through catalog_plans_missing() and catalog_plans_osb(). */
#include "catalog/catalog_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/decimal.h"
#include "base/jsonschema.h"

#define MAX_PLAN_ID 64
#define MAX_PLAN_NAME 63
#define MAX_DISPLAY 100
#define MAX_DESCRIPTION 1000
#define MAX_METRICS 20
#define MAX_METRIC_ID 64
#define MAX_UNIT 50
#define MAX_TIERS 20
#define MAX_SCHEMAS (64 * 1024) /* serialised, as the OSB spec caps them */
#define MAX_SEMVER 256
#define PRICE_DIGITS 9   /* fractional digits of a price (spec "Pricing") */
#define PRICE_POW10 15   /* a price is below 10^15, like a line amount */
#define QTY_DIGITS 12    /* rated quantities carry 12 fractional digits */
#define QTY_POW10 18     /* a billable quantity is below 10^18 */
#define DRAFT_MONTH "0000-00" /* the pricing set before publication */

#define FEE_METRIC CATALOG_FEE_METRIC

static const char *const KINDS[] = {"lite", "subscription", "metered", NULL};
static const char *const METERING_MODELS[] = {"standard_add", "standard_max", "standard_avg",
                                              "dailyproration_max", "dailyproration_avg",
                                              "monthlyproration", NULL};
static const char *const PRICING_MODELS[] = {"linear", "simple_tier", "graduated_tier",
                                             "block_tier", NULL};

/* A plans row; doc holds what the provider edits (owned: json_decref). */
typedef struct {
    char id[MAX_PLAN_ID + 1];
    char offering_id[64];
    char name[MAX_PLAN_NAME + 1];
    char kind[16];
    char state[16]; /* active, deprecated */
    bool published;
    int64_t created_ms, updated_ms;
    json_t *doc; /* display_name, description, bindable, plan_updateable, schemas?,
                    maintenance_info?, metrics[] */
} plan_row;

/* ---------------------------------------------------------------- small helpers */

static bool one_of(const char *s, const char *const *set)
{
    for (; s && *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static bool paid(const char *kind)
{
    return strcmp(kind, "lite") != 0;
}

/* A programmatic plan name: 1 to 63 characters of [a-z0-9-], from a letter. */
static bool valid_plan_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_PLAN_NAME || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* ^[A-Z][A-Z0-9_]{0,63}$ */
static bool valid_metric_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_METRIC_ID || s[0] < 'A' || s[0] > 'Z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Dot-separated identifiers of [0-9A-Za-z-]; in a pre-release, numeric ones have no
 * leading zero (semver 2.0.0 items 9 and 10). */
static bool semver_idents(const char *s, size_t n, bool pre)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (i == start)
            return false;
        bool digits = true;
        for (size_t k = start; k < i; k++) {
            char ch = s[k];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= 'A' && ch <= 'Z') || ch == '-'))
                return false;
            digits = digits && ch >= '0' && ch <= '9';
        }
        if (pre && digits && i - start > 1 && s[start] == '0')
            return false;
        start = i + 1;
    }
    return true;
}

/* MAJOR.MINOR.PATCH[-pre][+build], numbers without leading zeros. */
static bool valid_semver(const char *s)
{
    if (!s || strlen(s) > MAX_SEMVER)
        return false;
    const char *p = s;
    for (int k = 0; k < 3; k++) {
        const char *b = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == b || (p - b > 1 && *b == '0'))
            return false;
        if (k < 2 && *p++ != '.')
            return false;
    }
    if (*p == '-') {
        const char *b = ++p;
        while (*p && *p != '+')
            p++;
        if (!semver_idents(b, (size_t)(p - b), true))
            return false;
    }
    if (*p == '+') {
        const char *b = ++p;
        p += strlen(p);
        if (!semver_idents(b, (size_t)(p - b), false))
            return false;
    }
    return *p == '\0';
}

/* "YYYY-MM" with a month from 01 to 12. */
static bool valid_month(const char *s)
{
    if (!s || strlen(s) != 7 || s[4] != '-')
        return false;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9'))
            return false;
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    return month >= 1 && month <= 12 && strncmp(s, "0000", 4) != 0;
}

static void current_month(char out[8])
{
    time_t t = (time_t)(time_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char text[32];
    snprintf(text, sizeof text, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    memcpy(out, text, 7); /* years 1000 to 9999 */
    out[7] = '\0';
}

static bool only_keys(http_req *req, const json_t *obj, const char *prefix,
                      const char *const *keys, const char *what)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (!one_of(k, keys)) {
            char f[256];
            snprintf(f, sizeof f, "%s%s", prefix, k);
            catalog_field_error(req, f, "'%s' is not a field of %s.", f, what);
            return false;
        }
    }
    return true;
}

/* A decimal from a string or a JSON integer into d; replies 400 naming f otherwise. */
static bool dec_field(http_req *req, const char *f, const json_t *v, dec *d, const char *what)
{
    if (json_is_real(v)) {
        catalog_field_error(req, f, "'%s' must be a decimal string such as \"0.10\", not a JSON "
                            "real: a binary number may not hold the digits you wrote.", f);
        return false;
    }
    if (dec_from_json(d, v)) {
        catalog_field_error(req, f, "'%s' must be %s.", f, what);
        return false;
    }
    return true;
}

static json_t *dec_json(const dec *d)
{
    char *s = dec_to_string(d);
    json_t *j = s ? json_string(s) : NULL;
    free(s);
    return j;
}

/* ---------------------------------------------------------------- field validation */

/* One `parameters` schema: a valid draft-04 schema for our validator, whose $refs are all
 * local (the validator refuses the others). */
static bool valid_parameters(http_req *req, const char *f, const json_t *schema)
{
    char err[256];
    jschema *s = NULL, *meta = NULL;
    if (!json_is_object(schema)) {
        catalog_field_error(req, f, "'%s' must be a JSON Schema (draft-04) object.", f);
        return false;
    }
    const json_t *dialect = json_object_get(schema, "$schema");
    const char *d = json_string_value(dialect);
    if (dialect && !(d && (strcmp(d, JSCHEMA_DRAFT04_META) == 0 ||
                           strcmp(d, "http://json-schema.org/draft-04/schema") == 0))) {
        catalog_field_error(req, f, "'%s' must be a draft-04 schema: its $schema names another "
                            "dialect; use \"%s\" or leave it out.", f, JSCHEMA_DRAFT04_META);
        return false;
    }
    if (jschema_compile(schema, &s, err, sizeof err)) {
        catalog_field_error(req, f, "'%s' is not a usable draft-04 schema: %s.", f, err);
        return false;
    }
    jschema_free(s);
    /* The compiler checks what it uses; the meta-schema checks the rest (e.g. "required"
     * must not be empty in draft-04). */
    json_t *ref = json_pack("{s:s}", "$ref", JSCHEMA_DRAFT04_META);
    int rc = ref ? jschema_compile(ref, &meta, err, sizeof err) : -1;
    json_decref(ref);
    if (rc == 0)
        rc = jschema_validate(meta, schema, err, sizeof err);
    jschema_free(meta);
    if (rc == 1) {
        catalog_field_error(req, f, "'%s' is not a valid draft-04 schema: %s.", f, err);
        return false;
    }
    if (rc) {
        http_reply_error(req, 500, "internal_error", "The schema could not be checked.", f);
        return false;
    }
    return true;
}

/* {service_instance: {create: {parameters}, update: {parameters}},
 *  service_binding: {create: {parameters}}}, at most 64 kB serialised. */
static bool valid_schemas(http_req *req, const json_t *v)
{
    static const char *const top[] = {"service_instance", "service_binding", NULL};
    static const char *const si[] = {"create", "update", NULL};
    static const char *const sb[] = {"create", NULL};
    static const char *const params[] = {"parameters", NULL};
    if (!json_is_object(v)) {
        catalog_field_error(req, "schemas", "'schemas' must be an object {service_instance: "
                            "{create, update}, service_binding: {create}}.");
        return false;
    }
    char *text = json_dumps(v, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0;
    free(text);
    if (n > MAX_SCHEMAS) {
        catalog_field_error(req, "schemas", "'schemas' is %zu bytes serialised; the limit is "
                            "%d (64 kB).", n, MAX_SCHEMAS);
        return false;
    }
    if (!only_keys(req, v, "schemas.", top, "schemas"))
        return false;
    for (int i = 0; top[i]; i++) {
        const json_t *part = json_object_get(v, top[i]);
        const char *const *ops = i == 0 ? si : sb;
        char f[128], pre[128];
        if (!part)
            continue;
        snprintf(f, sizeof f, "schemas.%s", top[i]);
        snprintf(pre, sizeof pre, "schemas.%s.", top[i]);
        if (!json_is_object(part)) {
            catalog_field_error(req, f, "'%s' must be an object.", f);
            return false;
        }
        if (!only_keys(req, part, pre, ops, f))
            return false;
        for (int k = 0; ops[k]; k++) {
            const json_t *op = json_object_get(part, ops[k]);
            if (!op)
                continue;
            snprintf(f, sizeof f, "schemas.%s.%s", top[i], ops[k]);
            snprintf(pre, sizeof pre, "schemas.%s.%s.", top[i], ops[k]);
            if (!json_is_object(op)) {
                catalog_field_error(req, f, "'%s' must be an object {parameters}.", f);
                return false;
            }
            if (!only_keys(req, op, pre, params, f))
                return false;
            const json_t *p = json_object_get(op, "parameters");
            snprintf(f, sizeof f, "schemas.%s.%s.parameters", top[i], ops[k]);
            if (p && !valid_parameters(req, f, p))
                return false;
        }
    }
    return true;
}

static bool valid_maintenance(http_req *req, const json_t *v)
{
    static const char *const keys[] = {"version", "description", NULL};
    if (!json_is_object(v)) {
        catalog_field_error(req, "maintenance_info", "'maintenance_info' must be an object "
                            "{version, description}.");
        return false;
    }
    if (!only_keys(req, v, "maintenance_info.", keys, "maintenance_info"))
        return false;
    if (!valid_semver(json_string_value(json_object_get(v, "version")))) {
        catalog_field_error(req, "maintenance_info.version", "'maintenance_info.version' is "
                            "required: a semantic version MAJOR.MINOR.PATCH with an optional "
                            "-prerelease and +build, e.g. \"1.2.0\" or \"2.0.0-rc.1\".");
        return false;
    }
    const json_t *d = json_object_get(v, "description");
    if (d && !catalog_valid_text(d, MAX_DESCRIPTION, true)) {
        catalog_field_error(req, "maintenance_info.description", "'maintenance_info.description'"
                            " must be text of 1 to %d characters.", MAX_DESCRIPTION);
        return false;
    }
    return true;
}

static json_t *fee_metric(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", FEE_METRIC, "display_name",
                     "Monthly fee", "unit", "instance-month", "metering_model",
                     "monthlyproration", "charge_unit_quantity", "1", "allow_negative", 0);
}

/* One metric of the provider's list, canonical into *out. */
static bool valid_metric(http_req *req, size_t i, const json_t *m, json_t **out)
{
    static const char *const keys[] = {"id", "display_name", "unit", "metering_model",
                                       "charge_unit_quantity", "allow_negative", NULL};
    char f[96], pre[64];
    snprintf(f, sizeof f, "metrics[%zu]", i);
    snprintf(pre, sizeof pre, "metrics[%zu].", i);
    if (!json_is_object(m)) {
        catalog_field_error(req, f, "'%s' must be an object {id, display_name, unit, "
                            "metering_model, charge_unit_quantity, allow_negative}.", f);
        return false;
    }
    if (!only_keys(req, m, pre, keys, "a metric"))
        return false;
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *model = json_string_value(json_object_get(m, "metering_model"));
    const json_t *neg = json_object_get(m, "allow_negative");
    const json_t *cuq = json_object_get(m, "charge_unit_quantity");
    snprintf(f, sizeof f, "metrics[%zu].id", i);
    if (!valid_metric_id(id)) {
        catalog_field_error(req, f, "'%s' is required: an uppercase letter, then up to 63 "
                            "uppercase letters, digits or '_' (e.g. \"API_CALLS\").", f);
        return false;
    }
    if (strcmp(id, FEE_METRIC) == 0) {
        catalog_field_error(req, f, "'%s': %s is the platform's metric of subscription plans; "
                            "name yours differently.", f, FEE_METRIC);
        return false;
    }
    snprintf(f, sizeof f, "metrics[%zu].display_name", i);
    if (!catalog_valid_text(json_object_get(m, "display_name"), MAX_DISPLAY, false)) {
        catalog_field_error(req, f, "'%s' is required: text of 1 to %d characters.", f,
                            MAX_DISPLAY);
        return false;
    }
    snprintf(f, sizeof f, "metrics[%zu].unit", i);
    if (!catalog_valid_text(json_object_get(m, "unit"), MAX_UNIT, false)) {
        catalog_field_error(req, f, "'%s' is required: text of 1 to %d characters (e.g. "
                            "\"API call\", \"GB-hour\").", f, MAX_UNIT);
        return false;
    }
    snprintf(f, sizeof f, "metrics[%zu].metering_model", i);
    if (!one_of(model, METERING_MODELS)) {
        catalog_field_error(req, f, "'%s' must be one of standard_add, standard_max, "
                            "standard_avg, dailyproration_max, dailyproration_avg, "
                            "monthlyproration.", f);
        return false;
    }
    snprintf(f, sizeof f, "metrics[%zu].allow_negative", i);
    if (neg && !json_is_boolean(neg)) {
        catalog_field_error(req, f, "'%s' must be true or false.", f);
        return false;
    }
    dec u;
    dec_init(&u);
    bool ok = true;
    snprintf(f, sizeof f, "metrics[%zu].charge_unit_quantity", i);
    if (cuq) {
        ok = dec_field(req, f, cuq, &u, "a decimal string greater than 0, e.g. \"1000\"");
        if (ok && (dec_sign(&u) <= 0 || dec_frac_digits(&u) > QTY_DIGITS ||
                   !dec_abs_below_pow10(&u, QTY_POW10))) {
            catalog_field_error(req, f, "'%s' must be greater than 0 and below 10^%d, with at "
                                "most %d fractional digits, e.g. \"1000\" for \"per 1,000\".",
                                f, QTY_POW10, QTY_DIGITS);
            ok = false;
        }
    } else {
        dec_set_int(&u, 1);
    }
    json_t *text = ok ? dec_json(&u) : NULL;
    dec_clear(&u);
    if (!ok)
        return false;
    *out = json_pack("{s:s, s:O, s:O, s:s, s:o, s:b}", "id", id, "display_name",
                     json_object_get(m, "display_name"), "unit", json_object_get(m, "unit"),
                     "metering_model", model, "charge_unit_quantity", text, "allow_negative",
                     neg ? json_is_true(neg) : 0);
    return *out != NULL;
}

/* The plan's metrics from the provider's list v (NULL for none): the platform's monthly fee
 * first on a subscription plan. In a subscription plan's list, the fee metric is the
 * platform's and is taken as it is (a client may send back the list it read). */
static bool build_metrics(http_req *req, const json_t *v, const char *kind, json_t **out)
{
    *out = NULL;
    if (v && (!json_is_array(v) || json_array_size(v) > MAX_METRICS)) {
        catalog_field_error(req, "metrics", "'metrics' must be an array of at most %d metrics.",
                            MAX_METRICS);
        return false;
    }
    json_t *list = json_array();
    if (strcmp(kind, "subscription") == 0)
        json_array_append_new(list, fee_metric());
    size_t i;
    const json_t *m;
    json_array_foreach(v, i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (strcmp(kind, "subscription") == 0 && str_eq(id, FEE_METRIC))
            continue;
        json_t *one = NULL;
        if (!valid_metric(req, i, m, &one)) {
            json_decref(list);
            return false;
        }
        size_t k;
        const json_t *seen;
        json_array_foreach(list, k, seen) {
            if (strcmp(json_string_value(json_object_get(seen, "id")), id) == 0) {
                char f[64];
                snprintf(f, sizeof f, "metrics[%zu].id", i);
                catalog_field_error(req, f, "'%s': the metric %s is defined twice in the plan.",
                                    f, id);
                json_decref(one);
                json_decref(list);
                return false;
            }
        }
        json_array_append_new(list, one);
    }
    *out = list;
    return true;
}

const json_t *catalog_metric(const json_t *metrics, const char *id)
{
    size_t i;
    const json_t *m;
    json_array_foreach(metrics, i, m)
        if (str_eq(json_string_value(json_object_get(m, "id")), id))
            return m;
    return NULL;
}

/* The provider's own metrics of a plan (without the platform's fee), a new array. */
static json_t *own_metrics(const json_t *doc)
{
    json_t *list = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "metrics"), i, m)
        if (!str_eq(json_string_value(json_object_get(m, "id")), FEE_METRIC))
            json_array_append(list, m);
    return list;
}

/* The tiers of one metric's price in one currency, canonical into *out. */
static bool valid_tiers(http_req *req, const char *base, const char *model, const json_t *v,
                        json_t **out)
{
    static const char *const keys[] = {"up_to", "price", NULL};
    char f[400], pre[400]; /* base is at most 319 characters */
    snprintf(f, sizeof f, "%s.tiers", base);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_TIERS) {
        catalog_field_error(req, f, "'%s' must be an array of 1 to %d tiers [{\"up_to\": "
                            "\"<quantity>\" or null, \"price\": \"<decimal>\"}].", f, MAX_TIERS);
        return false;
    }
    size_t n = json_array_size(v);
    if (strcmp(model, "linear") == 0 && n != 1) {
        catalog_field_error(req, f, "'%s': a linear price has exactly one tier, open "
                            "({\"up_to\": null, \"price\": ...}).", f);
        return false;
    }
    json_t *tiers = json_array();
    dec prev, up, price;
    dec_init(&prev);
    dec_init(&up);
    dec_init(&price);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const json_t *t = json_array_get(v, i);
        snprintf(f, sizeof f, "%s.tiers[%zu]", base, i);
        snprintf(pre, sizeof pre, "%s.tiers[%zu].", base, i);
        if (!json_is_object(t)) {
            catalog_field_error(req, f, "'%s' must be an object {up_to, price}.", f);
            ok = false;
            break;
        }
        if (!(ok = only_keys(req, t, pre, keys, "a tier")))
            break;
        const json_t *u = json_object_get(t, "up_to");
        bool open = !u || json_is_null(u);
        bool last = i + 1 == n;
        snprintf(f, sizeof f, "%s.tiers[%zu].up_to", base, i);
        if (open && !last) {
            catalog_field_error(req, f, "'%s': only the last tier is open (null); this one "
                                "needs an upper bound.", f);
            ok = false;
        } else if (!open && last) {
            catalog_field_error(req, f, "'%s': the last tier must be open (null), so that "
                                "every quantity has a price.", f);
            ok = false;
        } else if (!open) {
            ok = dec_field(req, f, u, &up, "a decimal quantity greater than 0");
            if (ok && (dec_sign(&up) <= 0 || dec_frac_digits(&up) > QTY_DIGITS ||
                       !dec_abs_below_pow10(&up, QTY_POW10))) {
                catalog_field_error(req, f, "'%s' must be greater than 0 and below 10^%d, with "
                                    "at most %d fractional digits.", f, QTY_POW10, QTY_DIGITS);
                ok = false;
            }
            if (ok && i > 0 && dec_cmp(&up, &prev) <= 0) {
                catalog_field_error(req, f, "'%s' must be greater than the bound of the tier "
                                    "before it: tiers ascend strictly.", f);
                ok = false;
            }
            if (ok)
                dec_copy(&prev, &up);
        }
        if (!ok)
            break;
        snprintf(f, sizeof f, "%s.tiers[%zu].price", base, i);
        const json_t *p = json_object_get(t, "price");
        if (!p) {
            catalog_field_error(req, f, "'%s' is required: a decimal string such as \"0.10\".",
                                f);
            ok = false;
            break;
        }
        ok = dec_field(req, f, p, &price, "a decimal string such as \"0.10\"");
        if (ok && dec_sign(&price) < 0) {
            catalog_field_error(req, f, "'%s' must not be negative.", f);
            ok = false;
        }
        if (ok && dec_frac_digits(&price) > PRICE_DIGITS) {
            catalog_field_error(req, f, "'%s' has more than %d fractional digits.", f,
                                PRICE_DIGITS);
            ok = false;
        }
        if (ok && !dec_abs_below_pow10(&price, PRICE_POW10)) {
            catalog_field_error(req, f, "'%s' must be below 10^%d.", f, PRICE_POW10);
            ok = false;
        }
        if (ok)
            json_array_append_new(tiers, json_pack("{s:o, s:o}", "up_to",
                                                   open ? json_null() : dec_json(&up), "price",
                                                   dec_json(&price)));
    }
    dec_clear(&prev);
    dec_clear(&up);
    dec_clear(&price);
    if (!ok) {
        json_decref(tiers);
        return false;
    }
    *out = tiers;
    return true;
}

/* True when every metric is priced, all in the same non-empty set of currencies. */
static bool pricing_complete(const json_t *pricing, const json_t *metrics, const char **metric,
                             const char **currency)
{
    const json_t *first = NULL;
    size_t i;
    const json_t *m;
    *metric = *currency = NULL;
    json_array_foreach(metrics, i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        const json_t *p = json_object_get(pricing, id);
        if (!json_object_size(p)) {
            *metric = id;
            return false;
        }
        if (!first)
            first = p;
    }
    if (!first)
        return false;
    /* Same set: every metric has every currency some metric has. */
    json_array_foreach(metrics, i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        size_t k;
        const json_t *other;
        json_array_foreach(metrics, k, other) {
            const char *cur;
            const json_t *x;
            json_object_foreach((json_t *)json_object_get(pricing, json_string_value(
                                    json_object_get(other, "id"))), cur, x) {
                if (!json_object_get(json_object_get(pricing, id), cur)) {
                    *metric = id;
                    *currency = cur;
                    return false;
                }
            }
        }
    }
    return true;
}

/* A pricing document for a plan of this kind with these metrics, canonical into *out:
 * {"<METRIC>": {"<CUR>": {"model", "tiers": [{"up_to", "price"}]}}}. */
static bool valid_pricing(http_req *req, const json_t *v, const json_t *metrics,
                          const char *kind, json_t **out)
{
    static const char *const keys[] = {"model", "tiers", NULL};
    *out = NULL;
    if (!paid(kind)) {
        catalog_field_error(req, "pricing", "A lite plan is free: it has no pricing.");
        return false;
    }
    if (!json_is_object(v)) {
        catalog_field_error(req, "pricing", "'pricing' must be an object {\"<METRIC>\": "
                            "{\"<CURRENCY>\": {\"model\", \"tiers\"}}}.");
        return false;
    }
    json_t *canon = json_object();
    const char *mid;
    const json_t *per;
    char f[320], pre[320];
    json_object_foreach((json_t *)v, mid, per) {
        snprintf(f, sizeof f, "pricing.%s", mid);
        if (!catalog_metric(metrics, mid)) {
            catalog_field_error(req, f, "'%s': the plan has no metric %s.", f, mid);
            goto fail;
        }
        if (!json_is_object(per) || json_object_size(per) == 0) {
            catalog_field_error(req, f, "'%s' must map currencies (\"USD\", \"EUR\", ...) to "
                                "prices.", f);
            goto fail;
        }
        json_t *mc = json_object();
        json_object_set_new(canon, mid, mc);
        const char *cur;
        const json_t *price;
        json_object_foreach((json_t *)per, cur, price) {
            snprintf(f, sizeof f, "pricing.%s.%s", mid, cur);
            snprintf(pre, sizeof pre, "pricing.%s.%s.", mid, cur);
            if (currency_minor_units(cur) < 0) {
                catalog_field_error(req, f, "'%s': %s is not an ISO 4217 currency code.", f, cur);
                goto fail;
            }
            if (!json_is_object(price)) {
                catalog_field_error(req, f, "'%s' must be an object {model, tiers}.", f);
                goto fail;
            }
            if (!only_keys(req, price, pre, keys, "a price"))
                goto fail;
            const char *model = json_string_value(json_object_get(price, "model"));
            snprintf(f, sizeof f, "pricing.%s.%s.model", mid, cur);
            if (!one_of(model, PRICING_MODELS)) {
                catalog_field_error(req, f, "'%s' must be one of linear, simple_tier, "
                                    "graduated_tier, block_tier.", f);
                goto fail;
            }
            if (strcmp(mid, FEE_METRIC) == 0 && strcmp(model, "linear") != 0) {
                catalog_field_error(req, f, "'%s': the monthly fee is priced linear.", f);
                goto fail;
            }
            snprintf(f, sizeof f, "pricing.%s.%s", mid, cur);
            json_t *tiers;
            if (!valid_tiers(req, f, model, json_object_get(price, "tiers"), &tiers))
                goto fail;
            json_object_set_new(mc, cur, json_pack("{s:s, s:o}", "model", model, "tiers",
                                                   tiers));
        }
    }
    const char *metric, *currency;
    if (!pricing_complete(canon, metrics, &metric, &currency)) {
        if (metric && currency) {
            snprintf(f, sizeof f, "pricing.%s.%s", metric, currency);
            catalog_field_error(req, f, "'%s' is missing: every metric is priced in the same "
                                "currencies.", f);
        } else if (metric) {
            snprintf(f, sizeof f, "pricing.%s", metric);
            catalog_field_error(req, f, "'%s' is missing: a paid plan prices every metric.", f);
        } else {
            catalog_field_error(req, "pricing", "'pricing' must price the plan's metrics in at "
                                "least one currency%s.", json_array_size(metrics) ? ""
                                : " (the plan has no metrics yet)");
        }
        goto fail;
    }
    *out = canon;
    return true;
fail:
    json_decref(canon);
    return false;
}

/* Applies display_name, description, bindable, plan_updateable, schemas and maintenance_info
 * from a create or patch body to doc; false after replying 400. */
static bool apply_fields(http_req *req, json_t *doc, const json_t *body, bool create)
{
    const json_t *v;
    v = json_object_get(body, "display_name");
    if ((v || create) && !catalog_valid_text(v, MAX_DISPLAY, false)) {
        catalog_field_error(req, "display_name", "'display_name' is required: text of 1 to %d "
                            "characters.", MAX_DISPLAY);
        return false;
    }
    if (v)
        json_object_set(doc, "display_name", (json_t *)v);
    v = json_object_get(body, "description");
    if ((v || create) && !catalog_valid_text(v, MAX_DESCRIPTION, true)) {
        catalog_field_error(req, "description", "'description' is required: text of 1 to %d "
                            "characters.", MAX_DESCRIPTION);
        return false;
    }
    if (v)
        json_object_set(doc, "description", (json_t *)v);
    static const char *const flags[] = {"bindable", "plan_updateable"};
    for (size_t i = 0; i < ARRAY_LEN(flags); i++) {
        v = json_object_get(body, flags[i]);
        if (v && !json_is_boolean(v)) {
            catalog_field_error(req, flags[i], "'%s' must be true or false.", flags[i]);
            return false;
        }
        if (v)
            json_object_set(doc, flags[i], (json_t *)v);
    }
    v = json_object_get(body, "schemas");
    if (v && !json_is_null(v) && !valid_schemas(req, v))
        return false;
    if (json_is_null(v))
        json_object_del(doc, "schemas");
    else if (v)
        json_object_set(doc, "schemas", (json_t *)v);
    v = json_object_get(body, "maintenance_info");
    if (v && !json_is_null(v) && !valid_maintenance(req, v))
        return false;
    if (json_is_null(v))
        json_object_del(doc, "maintenance_info");
    else if (v)
        json_object_set(doc, "maintenance_info", (json_t *)v);
    return true;
}

/* `free`, when given, must agree with the kind. */
static bool valid_free(http_req *req, const json_t *body, const char *kind)
{
    const json_t *v = json_object_get(body, "free");
    if (!v || (json_is_boolean(v) && json_is_true(v) == !paid(kind)))
        return true;
    catalog_field_error(req, "free", "'free' is %s for a %s plan (it follows the kind).",
                        paid(kind) ? "false" : "true", kind);
    return false;
}

/* ---------------------------------------------------------------- store */

static void row_fill(store_stmt *q, plan_row *p)
{
    memset(p, 0, sizeof *p);
    str_copy(p->id, sizeof p->id, store_col_text(q, 0));
    str_copy(p->offering_id, sizeof p->offering_id, store_col_text(q, 1));
    str_copy(p->name, sizeof p->name, store_col_text(q, 2));
    str_copy(p->kind, sizeof p->kind, store_col_text(q, 3));
    const char *doc = store_col_text(q, 4);
    p->doc = json_loads(doc ? doc : "{}", 0, NULL);
    str_copy(p->state, sizeof p->state, store_col_text(q, 5));
    p->published = store_col_int(q, 6) != 0;
    p->created_ms = store_col_int(q, 7);
    p->updated_ms = store_col_int(q, 8);
}

static void plan_free(plan_row *p)
{
    json_decref(p->doc);
    p->doc = NULL;
}

static int plan_load(store_tx *tx, const char *offering_id, const char *id, plan_row *p)
{
    store_stmt *q;
    memset(p, 0, sizeof *p);
    int rc = store_query(tx, "SELECT id, offering_id, name, kind, doc, state, published,"
                             " created_ms, updated_ms FROM plans WHERE id = ? AND"
                             " offering_id = ?", &q, "ss", id, offering_id);
    if (rc)
        return rc;
    rc = OSB_E_NOTFOUND;
    if (store_step(q) == STORE_ROW) {
        row_fill(q, p);
        rc = json_is_object(p->doc) ? 0 : OSB_E_STORE;
    }
    store_done(q);
    return rc;
}

static int plan_save(store_tx *tx, const plan_row *p)
{
    char *text = json_dumps(p->doc, JSON_COMPACT);
    if (!text)
        return OSB_E_NOMEM;
    int rc = store_exec(tx, "UPDATE plans SET kind = ?, doc = ?, state = ?, published = ?,"
                            " updated_ms = ? WHERE id = ?", "sssdis", p->kind, text, p->state,
                        p->published ? 1 : 0, time_now_ms(), p->id);
    free(text);
    return rc ? rc : catalog_touch(tx, p->offering_id);
}

/* The pricing row in force in month (the latest effective_month <= month); *eff (may be
 * NULL, 8 bytes) receives its month. */
static int price_row_at(store_tx *tx, const char *plan_id, const char *month, json_t **pricing,
                        char *eff)
{
    store_stmt *q;
    *pricing = NULL;
    int rc = store_query(tx, "SELECT pricing, effective_month FROM plan_prices WHERE"
                             " plan_id = ? AND effective_month <= ?"
                             " ORDER BY effective_month DESC LIMIT 1", &q, "ss", plan_id, month);
    if (rc)
        return rc;
    rc = OSB_E_NOTFOUND;
    if (store_step(q) == STORE_ROW) {
        *pricing = json_loads(store_col_text(q, 0), 0, NULL);
        if (eff)
            str_copy(eff, 8, store_col_text(q, 1));
        rc = json_is_object(*pricing) ? 0 : OSB_E_STORE;
    }
    store_done(q);
    if (rc == OSB_E_STORE) {
        json_decref(*pricing);
        *pricing = NULL;
    }
    return rc;
}

/* For billing: the pricing of a plan in force in month ("YYYY-MM"), canonical JSON that the
 * caller owns. 0; OSB_E_NOTFOUND when the plan has no pricing then (a lite plan, or a paid
 * plan not yet priced); OSB_E_INVAL for a malformed month; a store error. */
int catalog_plan_price_at(store_tx *tx, const char *plan_id, const char *month,
                          json_t **pricing)
{
    *pricing = NULL;
    if (!valid_month(month))
        return OSB_E_INVAL;
    return price_row_at(tx, plan_id, month, pricing, NULL);
}

/* The pricing in force now: the current month's, or the draft before any month. */
static int current_pricing(store_tx *tx, const char *plan_id, json_t **pricing)
{
    char month[8];
    current_month(month);
    int rc = price_row_at(tx, plan_id, month, pricing, NULL);
    return rc == OSB_E_NOTFOUND ? 0 : rc;
}

static int put_pricing(store_tx *tx, const char *plan_id, const char *month,
                       const json_t *pricing)
{
    char *text = json_dumps(pricing, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return OSB_E_NOMEM;
    int rc = store_exec(tx, "INSERT INTO plan_prices (plan_id, effective_month, pricing,"
                            " created_ms) VALUES (?, ?, ?, ?) ON CONFLICT (plan_id,"
                            " effective_month) DO UPDATE SET pricing = excluded.pricing,"
                            " created_ms = excluded.created_ms", "sssi", plan_id, month, text,
                        time_now_ms());
    free(text);
    return rc;
}

/* After an unpublished plan's kind or metrics changed: the draft pricing keeps the prices of
 * the metrics that remain (the steps then say what is missing); a lite plan keeps none. */
static int refit_draft_pricing(store_tx *tx, const plan_row *p)
{
    json_t *pricing = NULL;
    int rc = price_row_at(tx, p->id, DRAFT_MONTH, &pricing, NULL);
    if (rc == OSB_E_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    const json_t *metrics = json_object_get(p->doc, "metrics");
    const char *mid;
    json_t *v, *tmp;
    json_object_foreach_safe(pricing, tmp, mid, v) {
        if (!paid(p->kind) || !catalog_metric(metrics, mid))
            json_object_del(pricing, mid);
    }
    if (json_object_size(pricing) == 0)
        rc = store_exec(tx, "DELETE FROM plan_prices WHERE plan_id = ?", "s", p->id);
    else
        rc = put_pricing(tx, p->id, DRAFT_MONTH, pricing);
    json_decref(pricing);
    return rc;
}

/* ---------------------------------------------------------------- JSON */

static bool shell_word(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* A curl command that submits one usage record for the plan, every metric at quantity 1,
 * over the last hour. $TOKEN and $INSTANCE_ID (and $REGION until the plan is deployed) come
 * from the shell; the JSON is single-quoted, so they are spliced in between quotes. */
static int sample_curl(catalog *c, store_tx *tx, const plan_row *p, json_t **out)
{
    store_stmt *q;
    char region[64] = "";
    int rc = store_query(tx, "SELECT region FROM deployments WHERE plan_id = ?"
                             " ORDER BY region LIMIT 1", &q, "s", p->id);
    if (rc)
        return rc;
    if (store_step(q) == STORE_ROW)
        str_copy(region, sizeof region, store_col_text(q, 0));
    store_done(q);

    const char *issuer = iam_issuer(c->iam);
    size_t n = strlen(issuer);
    if (n >= 9 && strcmp(issuer + n - 9, "/identity") == 0)
        n -= 9;
    buf b;
    buf_init(&b, 16 * 1024);
    /* one clock reading for both ends: the hour just past, exactly */
    rc = buf_puts(&b, "NOW=$(( $(date +%s) * 1000 )); curl -X POST \"");
    for (size_t i = 0; i < n && !rc; i++) { /* inside double quotes: escape what expands */
        char ch = issuer[i];
        if (ch == '"' || ch == '$' || ch == '`' || ch == '\\')
            rc = buf_append(&b, "\\", 1);
        if (!rc)
            rc = buf_append(&b, &ch, 1);
    }
    if (!rc)
        rc = buf_printf(&b, "/v4/metering/resources/%s/usage\" -H \"Authorization: Bearer $TOKEN\""
                        " -H \"Content-Type: application/json\" -d '[{\"resource_instance_id\":"
                        "\"'\"$INSTANCE_ID\"'\",\"plan_id\":\"%s\",\"region\":\"%s\","
                        "\"start\":'\"$(( NOW - 3600000 ))\"',"
                        "\"end\":'\"$NOW\"',\"measured_usage\":[",
                        p->offering_id, p->id,
                        shell_word(region) ? region : "'\"$REGION\"'");
    size_t i, n_shown = 0;
    const json_t *m;
    json_array_foreach(json_object_get(p->doc, "metrics"), i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (!rc && !str_eq(id, FEE_METRIC)) /* the platform meters the fee itself */
            rc = buf_printf(&b, "%s{\"measure\":\"%s\",\"quantity\":1}",
                            n_shown++ ? "," : "", id);
    }
    if (!rc)
        rc = buf_puts(&b, "]}]'");
    if (!rc)
        *out = json_string(buf_cstr(&b));
    buf_free(&b);
    return rc;
}

/* A plan as the API shows it; own: to its provider (or the operator), with the state and
 * the usage sample; otherwise as a consumer sees a plan it may choose. */
static int plan_json(catalog *c, store_tx *tx, const plan_row *p, bool own, json_t **out)
{
    char created[32], updated[32];
    json_t *pricing = NULL, *curl = NULL;
    int rc = current_pricing(tx, p->id, &pricing);
    /* a sample for the metrics the provider meters: a plan with only the fee has none */
    bool metered = false;
    size_t mi;
    const json_t *mj;
    json_array_foreach(json_object_get(p->doc, "metrics"), mi, mj)
        metered = metered || !str_eq(json_string_value(json_object_get(mj, "id")), FEE_METRIC);
    if (!rc && own && paid(p->kind) && metered)
        rc = sample_curl(c, tx, p, &curl);
    if (rc) {
        json_decref(pricing);
        return rc;
    }
    time_format_rfc3339(p->created_ms, created);
    time_format_rfc3339(p->updated_ms, updated);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:b, s:O, s:O, s:O}", "id", p->id,
                          "offering_id", p->offering_id, "name", p->name, "kind", p->kind,
                          "display_name", json_object_get(p->doc, "display_name"),
                          "description", json_object_get(p->doc, "description"), "free",
                          !paid(p->kind), "bindable", json_object_get(p->doc, "bindable"),
                          "plan_updateable", json_object_get(p->doc, "plan_updateable"),
                          "metrics", json_object_get(p->doc, "metrics"));
    if (!j) {
        json_decref(pricing);
        json_decref(curl);
        return OSB_E_STORE;
    }
    static const char *const optional[] = {"schemas", "maintenance_info"};
    for (size_t i = 0; i < ARRAY_LEN(optional); i++) {
        json_t *v = json_object_get(p->doc, optional[i]);
        if (v)
            json_object_set(j, optional[i], v);
    }
    json_object_set_new(j, "pricing", pricing ? pricing : json_null());
    if (own) {
        json_object_set_new(j, "state", json_string(p->state));
        json_object_set_new(j, "published", json_boolean(p->published));
        if (curl)
            json_object_set_new(j, "sample_usage_curl", curl);
        json_object_set_new(j, "created_at", json_string(created));
        json_object_set_new(j, "updated_at", json_string(updated));
    }
    *out = j;
    return 0;
}

/* {"current": <pricing>|null, "versions": [{effective_month, pricing, created_at}]} */
static int pricing_view(store_tx *tx, const char *plan_id, json_t **out)
{
    store_stmt *q;
    json_t *current = NULL, *versions = json_array();
    int rc = current_pricing(tx, plan_id, &current);
    if (!rc)
        rc = store_query(tx, "SELECT effective_month, pricing, created_ms FROM plan_prices"
                             " WHERE plan_id = ? ORDER BY effective_month", &q, "s", plan_id);
    if (!rc) {
        int s;
        while ((s = store_step(q)) == STORE_ROW) {
            char at[32];
            time_format_rfc3339(store_col_int(q, 2), at);
            json_t *p = json_loads(store_col_text(q, 1), 0, NULL);
            if (!p) {
                rc = OSB_E_STORE;
                break;
            }
            json_array_append_new(versions, json_pack("{s:s, s:o, s:s}", "effective_month",
                                                      store_col_text(q, 0), "pricing", p,
                                                      "created_at", at));
        }
        if (s < 0)
            rc = s;
        store_done(q);
    }
    if (rc) {
        json_decref(current);
        json_decref(versions);
        return rc;
    }
    *out = json_pack("{s:o, s:o}", "current", current ? current : json_null(), "versions",
                     versions);
    return 0;
}

/* ---------------------------------------------------------------- for the other files */

int catalog_plans_missing(store_tx *tx, const char *offering_id, json_t *missing)
{
    store_stmt *q;
    bool any = false;
    int rc = store_query(tx, "SELECT id, offering_id, name, kind, doc, state, published,"
                             " created_ms, updated_ms FROM plans WHERE offering_id = ? AND"
                             " state = 'active' ORDER BY created_ms, name", &q, "s",
                         offering_id);
    if (rc)
        return rc;
    int s = 0;
    while (!rc && (s = store_step(q)) == STORE_ROW) {
        plan_row p;
        row_fill(q, &p);
        any = true;
        const json_t *metrics = json_object_get(p.doc, "metrics");
        char what[128];
        if (strcmp(p.kind, "metered") == 0 && json_array_size(metrics) == 0) {
            snprintf(what, sizeof what, "plans.%s.metrics", p.name);
            json_array_append_new(missing, json_string(what));
        }
        if (paid(p.kind)) {
            json_t *pricing = NULL;
            const char *m, *cur;
            rc = current_pricing(tx, p.id, &pricing);
            if (!rc && !pricing_complete(pricing, metrics, &m, &cur)) {
                snprintf(what, sizeof what, "plans.%s.pricing", p.name);
                json_array_append_new(missing, json_string(what));
            }
            json_decref(pricing);
        }
        plan_free(&p);
    }
    if (!rc && s < 0)
        rc = s;
    store_done(q);
    if (!rc && !any)
        json_array_append_new(missing, json_string("plans"));
    return rc;
}

int catalog_plans_osb(store_tx *tx, const char *offering_id, bool only_published, json_t **plans)
{
    store_stmt *q;
    *plans = NULL;
    int rc = store_query(tx, "SELECT id, offering_id, name, kind, doc, state, published,"
                             " created_ms, updated_ms FROM plans WHERE offering_id = ?"
                             " ORDER BY created_ms, name", &q, "s", offering_id);
    if (rc)
        return rc;
    json_t *list = json_array();
    int s;
    while ((s = store_step(q)) == STORE_ROW) {
        plan_row p;
        row_fill(q, &p);
        if (!only_published || p.published) {
            json_t *meta = json_pack("{s:O}", "displayName",
                                     json_object_get(p.doc, "display_name"));
            if (strcmp(p.state, "deprecated") == 0)
                json_object_set_new(meta, "deprecated", json_true());
            json_t *j = json_pack("{s:s, s:s, s:O, s:b, s:O, s:O, s:o}", "id", p.id, "name",
                                  p.name, "description", json_object_get(p.doc, "description"),
                                  "free", !paid(p.kind), "bindable",
                                  json_object_get(p.doc, "bindable"), "plan_updateable",
                                  json_object_get(p.doc, "plan_updateable"), "metadata", meta);
            static const char *const optional[] = {"schemas", "maintenance_info"};
            for (size_t i = 0; j && i < ARRAY_LEN(optional); i++) {
                json_t *v = json_object_get(p.doc, optional[i]);
                if (v)
                    json_object_set(j, optional[i], v);
            }
            if (!j)
                rc = OSB_E_STORE;
            else
                json_array_append_new(list, j);
        }
        plan_free(&p);
        if (rc)
            break;
    }
    if (!rc && s < 0)
        rc = s;
    store_done(q);
    if (rc)
        json_decref(list);
    else
        *plans = list;
    return rc;
}

int catalog_plans_publish(store_tx *tx, const char *offering_id)
{
    return store_exec(tx, "UPDATE plans SET published = 1 WHERE offering_id = ? AND"
                          " state = 'active'", "s", offering_id);
}

/* ---------------------------------------------------------------- handlers */

static bool is_own(const catalog_offering *o, const iam_principal *p)
{
    return p->operator || strcmp(o->account_id, p->account_id) == 0;
}

/* What an account other than the provider sees: active plans that are published, or, while
 * the offering is in limited visibility (so the account is on its allowlist), every active
 * plan: testers must be able to pick the plans under test. */
static bool consumer_sees(const catalog_offering *o, const plan_row *p)
{
    return strcmp(p->state, "active") == 0 &&
           (p->published || strcmp(o->visibility, "limited") == 0);
}

/* Loads the plan the request names (its second path parameter) inside tx; on failure rolls
 * tx back and replies 404 (or 500). */
static bool plan_for(http_req *req, store_tx *tx, const catalog_offering *o, plan_row *p)
{
    int rc = plan_load(tx, o->id, req->params[1], p);
    if (!rc)
        return true;
    store_rollback(tx);
    if (rc == OSB_E_NOTFOUND)
        http_reply_error(req, 404, "not_found", "No such plan.", NULL);
    else
        http_reply_error(req, 500, "internal_error", "The catalog store failed.", NULL);
    return false;
}

/* The body as an object with only the given keys; NULL after replying 400. */
static json_t *object_body(http_req *req, const char *const *keys, const char *what)
{
    json_t *body = http_json_body(req);
    if (!body)
        return NULL;
    if (!json_is_object(body)) {
        catalog_field_error(req, "", "The body must be a JSON object.");
    } else if (only_keys(req, body, "", keys, what)) {
        return body;
    }
    json_decref(body);
    return NULL;
}

static void plans_create(http_req *req, void *ud)
{
    static const char *const keys[] = {"id", "name", "kind", "display_name", "description",
                                       "free", "bindable", "plan_updateable", "schemas",
                                       "maintenance_info", "metrics", "pricing", NULL};
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &pr))
        return;
    json_t *body = object_body(req, keys, "a plan"), *doc = NULL, *metrics = NULL;
    json_t *pricing = NULL;
    if (!body)
        goto out;
    const json_t *idv = json_object_get(body, "id");
    char id[MAX_PLAN_ID + 1];
    if (idv && !catalog_valid_osb_id(json_string_value(idv))) {
        catalog_field_error(req, "id", "'id' must be 1 to %d characters of letters, digits, "
                            "'.', '_' and '-'; leave it out for a generated UUID.", MAX_PLAN_ID);
        goto out;
    }
    if (idv)
        str_copy(id, sizeof id, json_string_value(idv));
    else
        uuid_v4(id);
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!valid_plan_name(name)) {
        catalog_field_error(req, "name", "'name' is required: 1 to %d characters of lowercase "
                            "letters, digits and '-', starting with a letter.", MAX_PLAN_NAME);
        goto out;
    }
    const char *kind = json_string_value(json_object_get(body, "kind"));
    if (!one_of(kind, KINDS)) {
        catalog_field_error(req, "kind", "'kind' is required: \"lite\" (free), \"subscription\""
                            " (a monthly fee) or \"metered\" (priced by usage).");
        goto out;
    }
    if (strcmp(kind, "lite") == 0 && strcmp(name, "lite") != 0) {
        catalog_field_error(req, "name", "A lite plan is named \"lite\".");
        goto out;
    }
    if (!valid_free(req, body, kind))
        goto out;
    doc = json_pack("{s:b, s:b}", "bindable", 1, "plan_updateable", 0);
    if (!apply_fields(req, doc, body, true))
        goto out;
    const json_t *mv = json_object_get(body, "metrics");
    if (!build_metrics(req, json_is_null(mv) ? NULL : mv, kind, &metrics))
        goto out;
    json_object_set(doc, "metrics", metrics);
    const json_t *pv = json_object_get(body, "pricing");
    if (pv && !json_is_null(pv) && !valid_pricing(req, pv, metrics, kind, &pricing))
        goto out;

    store_tx *tx;
    store_stmt *q;
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    const char *taken = NULL;
    int rc = store_query(tx, "SELECT 1 FROM plans WHERE id = ?", &q, "s", id);
    if (!rc) {
        if (store_step(q) == STORE_ROW)
            taken = "id";
        store_done(q);
    }
    if (!rc && !taken && !(rc = store_query(tx, "SELECT 1 FROM plans WHERE offering_id = ? AND"
                                                " name = ?", &q, "ss", o.id, name))) {
        if (store_step(q) == STORE_ROW)
            taken = "name";
        store_done(q);
    }
    if (taken) {
        store_rollback(tx);
        http_reply_error(req, 409, "conflict", strcmp(taken, "id") == 0
                         ? "A plan with this id exists already: plan ids are unique on the "
                           "platform."
                         : "The offering has a plan with this name already.", taken);
        goto out;
    }
    int64_t now = time_now_ms();
    char *text = rc ? NULL : json_dumps(doc, JSON_COMPACT);
    if (!rc)
        rc = text ? store_exec(tx, "INSERT INTO plans (id, offering_id, name, kind, doc,"
                                   " created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               "sssssii", id, o.id, name, kind, text, now, now)
                  : OSB_E_NOMEM;
    free(text);
    if (!rc && pricing)
        rc = put_pricing(tx, id, DRAFT_MONTH, pricing);
    if (!rc)
        rc = catalog_touch(tx, o.id);
    json_t *j = NULL;
    plan_row p;
    if (!rc && !(rc = plan_load(tx, o.id, id, &p))) {
        rc = plan_json(c, tx, &p, true, &j);
        plan_free(&p);
    }
    catalog_finish(req, tx, rc, 201, j);
out:
    json_decref(pricing);
    json_decref(metrics);
    json_decref(doc);
    json_decref(body);
    catalog_offering_free(&o);
}

static void plans_list(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &pr))
        return;
    bool own = is_own(&o, &pr);
    store_tx *tx;
    store_stmt *q;
    if (!catalog_begin(c, req, false, &tx)) {
        catalog_offering_free(&o);
        return;
    }
    json_t *list = json_array();
    int rc = store_query(tx, "SELECT id, offering_id, name, kind, doc, state, published,"
                             " created_ms, updated_ms FROM plans WHERE offering_id = ?"
                             " ORDER BY created_ms, name", &q, "s", o.id);
    if (!rc) {
        int s = 0;
        while (!rc && (s = store_step(q)) == STORE_ROW) {
            plan_row p;
            row_fill(q, &p);
            json_t *j = NULL;
            if (own || consumer_sees(&o, &p)) {
                if (!(rc = plan_json(c, tx, &p, own, &j)))
                    json_array_append_new(list, j);
            }
            plan_free(&p);
        }
        if (!rc && s < 0)
            rc = s;
        store_done(q);
    }
    json_t *j = json_pack("{s:I, s:o}", "total_count", (json_int_t)json_array_size(list),
                          "plans", list);
    catalog_finish(req, tx, rc, 200, j);
    catalog_offering_free(&o);
}

static void plans_get(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &pr))
        return;
    bool own = is_own(&o, &pr);
    store_tx *tx;
    plan_row p;
    if (catalog_begin(c, req, false, &tx) && plan_for(req, tx, &o, &p)) {
        json_t *j = NULL;
        if (!own && !consumer_sees(&o, &p)) {
            store_rollback(tx);
            http_reply_error(req, 404, "not_found", "No such plan.", NULL);
        } else {
            int rc = plan_json(c, tx, &p, own, &j);
            catalog_finish(req, tx, rc, 200, j);
        }
        plan_free(&p);
    }
    catalog_offering_free(&o);
}

static void plans_patch(http_req *req, void *ud)
{
    static const char *const keys[] = {"display_name", "description", "free", "bindable",
                                       "plan_updateable", "schemas", "maintenance_info",
                                       "metrics", "kind", NULL};
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &pr))
        return;
    json_t *body = http_json_body(req), *metrics = NULL, *j = NULL;
    store_tx *tx;
    plan_row p = {0};
    if (!body)
        goto out;
    if (!json_is_object(body)) {
        catalog_field_error(req, "", "The body must be a JSON object.");
        goto out;
    }
    static const char *const fixed[] = {"id", "name", "pricing", "state", "published", NULL};
    const char *k;
    const json_t *v;
    json_object_foreach(body, k, v) {
        if (one_of(k, fixed)) {
            catalog_field_error(req, k, strcmp(k, "pricing") == 0
                                ? "Prices change with PUT .../plans/:id/pricing."
                                : strcmp(k, "state") == 0
                                ? "A plan is deprecated with POST .../plans/:id/deprecate."
                                : strcmp(k, "published") == 0
                                ? "A plan is published when the operator approves it."
                                : "A plan's id and name are fixed: brokers and instances use "
                                  "them.");
            goto out;
        }
    }
    if (!only_keys(req, body, "", keys, "a plan"))
        goto out;
    if (!catalog_begin(c, req, true, &tx))
        goto out;
    if (!plan_for(req, tx, &o, &p))
        goto out;
    const json_t *kv = json_object_get(body, "kind"), *mv = json_object_get(body, "metrics");
    const char *kind = kv ? json_string_value(kv) : p.kind;
    bool ok = true;
    if (!one_of(kind, KINDS)) {
        catalog_field_error(req, "kind", "'kind' must be \"lite\", \"subscription\" or "
                            "\"metered\".");
        ok = false;
    } else if (strcmp(kind, "lite") == 0 && strcmp(p.name, "lite") != 0) {
        catalog_field_error(req, "kind", "A lite plan is named \"lite\"; this plan is named "
                            "\"%s\".", p.name);
        ok = false;
    }
    ok = ok && valid_free(req, body, kind);
    bool rekind = ok && strcmp(kind, p.kind) != 0;
    if (ok && (rekind || mv)) {
        json_t *own = NULL;
        if (!mv || json_is_null(mv))
            own = mv ? json_array() : own_metrics(p.doc);
        ok = build_metrics(req, own ? own : mv, kind, &metrics);
        json_decref(own);
    }
    bool remetric = ok && metrics && !json_equal(metrics, json_object_get(p.doc, "metrics"));
    if (ok && p.published && (rekind || remetric)) {
        store_rollback(tx);
        http_reply_error(req, 409, "conflict", "The plan is published: its kind and metrics "
                         "no longer change (instances are billed by them); add a new plan "
                         "instead.", rekind ? "kind" : "metrics");
        goto out;
    }
    ok = ok && apply_fields(req, p.doc, body, false);
    if (!ok) {
        store_rollback(tx);
        goto out;
    }
    if (rekind) /* kind points into p.kind otherwise */
        str_copy(p.kind, sizeof p.kind, kind);
    if (metrics)
        json_object_set(p.doc, "metrics", metrics);
    int rc = plan_save(tx, &p);
    if (!rc && (rekind || remetric))
        rc = refit_draft_pricing(tx, &p);
    if (!rc) {
        plan_free(&p);
        rc = plan_load(tx, o.id, req->params[1], &p) ? OSB_E_STORE : 0;
    }
    if (!rc)
        rc = plan_json(c, tx, &p, true, &j);
    catalog_finish(req, tx, rc, 200, j);
out:
    plan_free(&p);
    json_decref(metrics);
    json_decref(body);
    catalog_offering_free(&o);
}

static void plans_delete(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &pr))
        return;
    store_tx *tx;
    plan_row p;
    if (catalog_begin(c, req, true, &tx) && plan_for(req, tx, &o, &p)) {
        if (p.published) {
            store_rollback(tx);
            http_reply_error(req, 409, "conflict", "The plan is published: deprecate it instead "
                             "(POST .../deprecate), so that its instances keep running.", NULL);
        } else {
            static const char *const sql[] = {
                "DELETE FROM deployments WHERE plan_id = ?",
                "DELETE FROM plan_prices WHERE plan_id = ?",
                "DELETE FROM plans WHERE id = ?",
            };
            int rc = 0;
            for (size_t i = 0; i < ARRAY_LEN(sql) && !rc; i++)
                rc = store_exec(tx, sql[i], "s", p.id);
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
        plan_free(&p);
    }
    catalog_offering_free(&o);
}

static void plans_deprecate(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &pr))
        return;
    store_tx *tx;
    plan_row p;
    if (catalog_begin(c, req, true, &tx) && plan_for(req, tx, &o, &p)) {
        int rc = 0;
        json_t *j = NULL;
        if (strcmp(p.state, "deprecated") != 0) { /* idempotent: a repeat changes nothing */
            str_copy(p.state, sizeof p.state, "deprecated");
            if (!(rc = plan_save(tx, &p))) {
                plan_free(&p);
                rc = plan_load(tx, o.id, req->params[1], &p) ? OSB_E_STORE : 0;
            }
        }
        if (!rc)
            rc = plan_json(c, tx, &p, true, &j);
        catalog_finish(req, tx, rc, 200, j);
        plan_free(&p);
    }
    catalog_offering_free(&o);
}

static void plans_approve(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.approve", &o, &pr))
        return;
    store_tx *tx;
    plan_row p;
    if (!pr.operator) {
        http_reply_error(req, 403, "forbidden", "Only the platform operator approves plans.",
                         NULL);
    } else if (catalog_begin(c, req, true, &tx) && plan_for(req, tx, &o, &p)) {
        catalog_offering now;
        int rc = catalog_offering_load(tx, o.id, &now); /* as of this transaction */
        const char *why = NULL;
        if (!rc && strcmp(now.visibility, "public") != 0)
            why = "The offering is not public: its plans are published with it when the "
                  "operator approves the offering.";
        else if (!rc && p.published)
            why = "The plan is published already.";
        else if (!rc && strcmp(p.state, "active") != 0)
            why = "The plan is deprecated.";
        catalog_offering_free(&now);
        json_t *j = NULL;
        if (why) {
            store_rollback(tx);
            http_reply_error(req, 409, "conflict", why, NULL);
        } else {
            p.published = true;
            if (!rc && !(rc = plan_save(tx, &p))) {
                plan_free(&p);
                rc = plan_load(tx, o.id, req->params[1], &p) ? OSB_E_STORE : 0;
            }
            if (!rc)
                rc = plan_json(c, tx, &p, true, &j);
            catalog_finish(req, tx, rc, 200, j);
        }
        plan_free(&p);
    }
    catalog_offering_free(&o);
}

static void pricing_get(http_req *req, void *ud)
{
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.read", &o, &pr))
        return;
    bool own = is_own(&o, &pr);
    store_tx *tx;
    plan_row p;
    if (catalog_begin(c, req, false, &tx) && plan_for(req, tx, &o, &p)) {
        if (!own && !consumer_sees(&o, &p)) {
            store_rollback(tx);
            http_reply_error(req, 404, "not_found", "No such plan.", NULL);
        } else {
            json_t *j = NULL;
            int rc = pricing_view(tx, p.id, &j);
            catalog_finish(req, tx, rc, 200, j);
        }
        plan_free(&p);
    }
    catalog_offering_free(&o);
}

static void pricing_put(http_req *req, void *ud)
{
    static const char *const keys[] = {"pricing", "effective_month", NULL};
    catalog *c = ud;
    iam_principal pr;
    catalog_offering o;
    if (!catalog_offering_for(c, req, "catalog.offering.update", &o, &pr))
        return;
    json_t *body = object_body(req, keys, "a pricing change"), *pricing = NULL, *j = NULL;
    store_tx *tx;
    plan_row p = {0};
    if (!body || !catalog_begin(c, req, true, &tx))
        goto out;
    if (!plan_for(req, tx, &o, &p))
        goto out;
    const json_t *pv = json_object_get(body, "pricing");
    const json_t *mv = json_object_get(body, "effective_month");
    const char *month = json_string_value(mv);
    char now[8];
    current_month(now);
    bool ok = true;
    if (!pv && paid(p.kind)) {
        catalog_field_error(req, "pricing", "'pricing' is required.");
        ok = false;
    }
    ok = ok && valid_pricing(req, pv, json_object_get(p.doc, "metrics"), p.kind, &pricing);
    if (ok && !p.published && mv) {
        catalog_field_error(req, "effective_month", "'effective_month' is for published plans; "
                            "until publication the pricing is a draft that applies from the "
                            "start.");
        ok = false;
    } else if (ok && p.published && !valid_month(month)) {
        catalog_field_error(req, "effective_month", "'effective_month' is required once the "
                            "plan is published: the month (\"YYYY-MM\") the new prices apply "
                            "from.");
        ok = false;
    } else if (ok && p.published && strcmp(month, now) <= 0) {
        catalog_field_error(req, "effective_month", "'effective_month' must be after the "
                            "current month (%s): prices of the current and past months never "
                            "change.", now);
        ok = false;
    }
    if (!ok) {
        store_rollback(tx);
        goto out;
    }
    /* Prices are the platform's business, not the broker's: the plan itself is unchanged
     * (its updated_at, and the broker's validation, stand); the version has its own time. */
    int rc = put_pricing(tx, p.id, p.published ? month : DRAFT_MONTH, pricing);
    if (!rc)
        rc = catalog_touch(tx, o.id);
    if (!rc)
        rc = pricing_view(tx, p.id, &j);
    catalog_finish(req, tx, rc, 200, j);
out:
    plan_free(&p);
    json_decref(pricing);
    json_decref(body);
    catalog_offering_free(&o);
}

void catalog_plan_routes(catalog *c, http_router *r)
{
    const http_error_style P = HTTP_STYLE_PLATFORM;
    int rc = http_route(r, HTTP_POST, "/v1/offerings/:id/plans", P, plans_create, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/plans", P, plans_list, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/plans/:pid", P, plans_get, c);
    rc |= http_route(r, HTTP_PATCH, "/v1/offerings/:id/plans/:pid", P, plans_patch, c);
    rc |= http_route(r, HTTP_DELETE, "/v1/offerings/:id/plans/:pid", P, plans_delete, c);
    rc |= http_route(r, HTTP_POST, "/v1/offerings/:id/plans/:pid/deprecate", P, plans_deprecate,
                     c);
    rc |= http_route(r, HTTP_POST, "/v1/offerings/:id/plans/:pid/approve", P, plans_approve, c);
    rc |= http_route(r, HTTP_GET, "/v1/offerings/:id/plans/:pid/pricing", P, pricing_get, c);
    rc |= http_route(r, HTTP_PUT, "/v1/offerings/:id/plans/:pid/pricing", P, pricing_put, c);
    if (rc)
        log_error("catalog: cannot register the plan routes");
}
