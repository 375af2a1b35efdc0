/* catalog internals shared by its files: the module's state, the loaded offering, access
 * checks, field errors, and what each file contributes to the onboarding steps. */
#ifndef OSBILL_CATALOG_INT_H
#define OSBILL_CATALOG_INT_H

#include <pthread.h>

#include "catalog/catalog.h"

/* The metric the platform adds to a subscription plan and meters itself (billing prorates
 * it over the time an instance is active on the plan); providers do not submit it. */
#define CATALOG_FEE_METRIC "MONTHLY_FEE"

struct catalog {
    store *db;
    iam *iam;
    unsigned char seal_key[32]; /* encrypts broker passwords (the platform must send them) */

    /* Broker validations run on threads of their own, never on a server thread. */
    pthread_mutex_t mu;
    pthread_cond_t idle;
    int running;  /* validations in flight */
    bool closing;
};

/* An offering row. doc holds the provider-edited metadata (owned: json_decref). */
typedef struct {
    char id[64];
    char account_id[64];
    char name[64];
    char visibility[16];  /* draft, limited, public */
    char publication[24]; /* none, requested, changes_requested, approved */
    char service_iam_id[128];
    char client_id[128];
    int64_t revision;
    int64_t created_ms, updated_ms;
    json_t *doc;
} catalog_offering;

int catalog_offering_load(store_tx *tx, const char *id, catalog_offering *o) WARN_UNUSED;
void catalog_offering_free(catalog_offering *o);

/* The offering a request names in its first path parameter, loaded and checked against the
 * caller for action ("catalog.offering.<verb>"): 401/403 as iam_require says, 404 when it
 * does not exist or the caller may not see it (existence does not leak). true with *o
 * loaded (free it) and *p the caller. */
bool catalog_offering_for(catalog *c, http_req *req, const char *action, catalog_offering *o,
                          iam_principal *p);

/* catalog_offering_for() reading, then only for the provider (or the operator): a consumer
 * who may see the offering gets 403 for its internals ("brokers", "scorecards"). */
bool catalog_offering_for_provider(catalog *c, http_req *req, const char *what,
                                   catalog_offering *o, iam_principal *p);

/* True when the principal may see the offering: the operator, the provider's own account, an
 * allowlisted account while limited, anyone once public. */
bool catalog_visible(store_tx *tx, const catalog_offering *o, const iam_principal *p);

/* Lowercase letters, digits and single hyphens, under 32 characters, from a letter. */
bool catalog_valid_service_name(const char *s);
/* A JSON string of 1 to max bytes of text without control characters (newlines and tabs
 * allowed when multiline) or embedded NULs. */
bool catalog_valid_text(const json_t *v, size_t max, bool multiline);
/* An OSB id chosen by the provider: 1 to 64 characters of letters, digits, '-', '_', '.'. */
bool catalog_valid_osb_id(const char *s);
/* The six onboarding steps [{step, id, title, complete, missing[]}]; *ready (may be NULL)
 * tells whether steps 1 to 5 are complete, which publication requires. */
int catalog_steps(store_tx *tx, const catalog_offering *o, json_t **out, bool *ready) WARN_UNUSED;
/* The offering as the API shows it to its provider (steps stolen, may be NULL). */
json_t *catalog_offering_json(const catalog_offering *o, json_t *steps);

/* 400 invalid_field with target = the field's path ("listing.bullets[0].title"). */
void catalog_field_error(http_req *req, const char *field, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Opens a transaction, or replies 503. */
bool catalog_begin(catalog *c, http_req *req, bool write, store_tx **tx);
/* Commits (or rolls back when rc) and replies j with status, or the error; j is stolen. */
void catalog_finish(http_req *req, store_tx *tx, int rc, int status, json_t *j);
/* Bumps an offering's revision and updated time: every change to it or its parts does. */
int catalog_touch(store_tx *tx, const char *offering_id) WARN_UNUSED;

/* ---- the onboarding steps: each part adds the names of what is still missing ---- */
/* plans.c: step 2's plans and pricing ("plans", "plans.<name>.metrics",
 * "plans.<name>.pricing"). */
int catalog_plans_missing(store_tx *tx, const char *offering_id, json_t *missing) WARN_UNUSED;
/* brokers.c: step 3 ("broker", "deployments.<plan>", "scorecard"). */
int catalog_brokers_missing(store_tx *tx, const char *offering_id, json_t *missing) WARN_UNUSED;

/* plans.c: the offering's plans in the OSB catalog shape, for catalog.json; only_published
 * limits them to what consumers may provision. */
int catalog_plans_osb(store_tx *tx, const char *offering_id, bool only_published,
                      json_t **plans) WARN_UNUSED;
/* plans.c: the plan's pricing in force in month ("YYYY-MM"): the version with the latest
 * effective month not after it ("0000-00" is the pricing set before publication). 0 with
 * *pricing the caller's; OSB_E_NOTFOUND when the plan has none (lite, not priced yet). */
int catalog_plan_price_at(store_tx *tx, const char *plan_id, const char *month,
                          json_t **pricing) WARN_UNUSED;
/* plans.c: marks every active plan published (the operator approved the offering). */
int catalog_plans_publish(store_tx *tx, const char *offering_id) WARN_UNUSED;

/* brokers.c: opens a broker's sealed Basic password into out (NUL-terminated). */
int catalog_broker_password(const catalog *c, const char *broker_id, const void *sealed,
                            size_t n, char *out, size_t outsz) WARN_UNUSED;
/* brokers.c: a region name: [a-z][a-z0-9-]{1,31}. */
bool catalog_valid_region(const char *s);
/* plans.c: the metric of a plan's metrics array with that id, or NULL. */
const json_t *catalog_metric(const json_t *metrics, const char *id);

void catalog_offering_routes(catalog *c, http_router *r);
void catalog_validate_routes(catalog *c, http_router *r);
void catalog_plan_routes(catalog *c, http_router *r);
void catalog_broker_routes(catalog *c, http_router *r);
void catalog_publish_routes(catalog *c, http_router *r);
void catalog_browse_routes(catalog *c, http_router *r);

#endif
