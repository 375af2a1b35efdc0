/* sdk: libosb's insides. catalog.c loads and checks catalog.json, state.c keeps instances,
 * bindings and operations in SQLite, broker.c serves the OSB API over them. */
#ifndef OSBILL_SDK_H
#define OSBILL_SDK_H

#include <jansson.h>
#include <pthread.h>

#include "base/base.h"
#include "base/jsonschema.h"
#include "http/http.h"
#include "osb/osb.h"
#include "store/store.h"

/* ---- catalog ---- */
typedef struct sdk_service sdk_service;
typedef struct {
    const char *id, *name;
    const json_t *json;
    sdk_service *service;
    jschema *instance_create, *instance_update, *binding_create;
    bool bindable, plan_updateable, binding_rotatable;
    const char *maintenance_version; /* NULL when the plan has no maintenance_info */
    int64_t max_polling_s;           /* 0 = the platform's default */
} sdk_plan;

struct sdk_service {
    const char *id, *name;
    const json_t *json;
    bool bindable, instances_retrievable, bindings_retrievable, plan_updateable;
    bool allow_context_updates;
    sdk_plan *plans;
    size_t nplans;
};

typedef struct {
    json_t *root;
    sdk_service *services;
    size_t nservices;
    char *body; /* the serialised catalog, answered as is to GET /v2/catalog */
    size_t body_len;
} sdk_catalog;

/* Loads path, checks it against the OSB catalog rules and compiles the plans' schemas.
 * On failure err names the JSON location, e.g. "services[0].plans[2].id: ...". */
int sdk_catalog_load(const char *path, sdk_catalog *out, char *err, size_t errlen) WARN_UNUSED;
/* The same from an already-parsed document (not stolen). */
int sdk_catalog_from_json(const json_t *doc, sdk_catalog *out, char *err, size_t errlen) WARN_UNUSED;
void sdk_catalog_free(sdk_catalog *c);
const sdk_service *sdk_find_service(const sdk_catalog *c, const char *id);
const sdk_plan *sdk_find_plan(const sdk_service *s, const char *id);
/* Semantic version check for maintenance_info.version (semver 2.0.0). */
bool sdk_semver_valid(const char *v);

/* ---- state ---- */
typedef enum {
    ST_NONE = 0,
    ST_CREATING,  /* async create in progress */
    ST_READY,
    ST_UPDATING,  /* async update in progress (instances only) */
    ST_DELETING,  /* async delete in progress */
    ST_FAILED,    /* create failed; kept so last_operation can say so */
    ST_GONE,      /* deleted asynchronously: last_operation answers 410 */
} sdk_state;

typedef struct {
    char *id, *service_id, *plan_id;
    char *parameters, *context, *organization_guid, *space_guid; /* JSON text / strings */
    char *maintenance_version;
    char *dashboard_url, *metadata;
    sdk_state state;
    bool enabled;
    int64_t last_active_ms;
    char *op_id;          /* the operation in flight or last finished */
    osb_call_kind op_kind;
    osb_op_state op_state;
    char *op_description;
    int64_t op_started_ms;
    char *pending_plan_id, *pending_parameters, *pending_maintenance_version; /* async update */
    char *prev_plan_id;
    /* A failed update's or deprovision's flags, as last_operation answers them every time. */
    bool op_instance_usable, op_update_repeatable;
} sdk_instance;

typedef struct {
    char *instance_id, *id, *service_id, *plan_id;
    char *parameters, *bind_resource, *app_guid; /* JSON text / string */
    char *credentials; /* decrypted JSON text; wiped on free */
    char *metadata, *extra;
    sdk_state state;
    char *op_id;
    osb_op_state op_state;
    char *op_description;
    int64_t op_started_ms;
} sdk_binding;

typedef struct {
    store *db;
    char *path;            /* data_dir/broker.db */
    store_group *group;    /* group commit of the request path's writes */
    unsigned char key[32]; /* credential encryption key, from data_dir/broker.key */
} sdk_state_db;

int sdk_state_open(const char *data_dir, sdk_state_db *out) WARN_UNUSED;
void sdk_state_close(sdk_state_db *s);
/* OSB_E_NOTFOUND when absent. GONE rows are returned; callers decide. */
int sdk_instance_get(sdk_state_db *s, const char *id, sdk_instance *out) WARN_UNUSED;
int sdk_instance_put(sdk_state_db *s, const sdk_instance *in) WARN_UNUSED;  /* insert or replace */
int sdk_instance_delete(sdk_state_db *s, const char *id) WARN_UNUSED;       /* and its bindings */
void sdk_instance_free(sdk_instance *in);
int sdk_binding_get(sdk_state_db *s, const char *instance_id, const char *id,
                    sdk_binding *out) WARN_UNUSED;
int sdk_binding_put(sdk_state_db *s, const sdk_binding *b) WARN_UNUSED;
int sdk_binding_delete(sdk_state_db *s, const char *instance_id, const char *id) WARN_UNUSED;
/* Counts bindings of an instance that are not GONE. */
int sdk_binding_count(sdk_state_db *s, const char *instance_id, int *out) WARN_UNUSED;
void sdk_binding_free(sdk_binding *b);
/* The same writes inside a caller's transaction (group commit). */
int sdk_instance_write(store_tx *tx, const sdk_instance *in) WARN_UNUSED;
int sdk_instance_remove(store_tx *tx, const char *id) WARN_UNUSED;
int sdk_binding_write(sdk_state_db *s, store_tx *tx, const sdk_binding *b) WARN_UNUSED;
int sdk_binding_remove(store_tx *tx, const char *instance_id, const char *id) WARN_UNUSED;


/* ---- platform tokens (jwks.c) ---- */
typedef struct sdk_jwks sdk_jwks;

/* A cache of the platform's signing keys from the JWKS at url, safe to use from any thread.
 * A background thread fetches it at once, then every few minutes (retrying with backoff after
 * a failure); a token naming an unknown kid causes at most one more fetch per 30 s, which
 * concurrent requests share. Fetches time out after 2 s. With revocations_url, the same
 * thread polls the platform's list of revoked access tokens every revocations_interval_ms
 * (0: 10 s), and tokens on it (or without a jti) are refused; a failed poll keeps the last
 * list. */
int sdk_jwks_new(const char *url, const char *revocations_url, unsigned revocations_interval_ms,
                 sdk_jwks **out) WARN_UNUSED;
/* Stops the background thread (waiting for a fetch in flight) and frees the keys. */
void sdk_jwks_free(sdk_jwks *j);
/* Verifies a platform JWT with the cached keys (iam.md "Verifying a JWT"): iss exactly
 * issuer, and, when client_id is not NULL, the client_id claim exactly client_id; not on the
 * revocation list. 0 with
 * *claims the caller's (json_decref), or OSB_E_INVAL. Reasons go to the debug log only. */
int sdk_jwks_verify(sdk_jwks *j, const char *token, const char *issuer, const char *client_id,
                    json_t **claims) WARN_UNUSED;

/* One HTTP request to the platform (libcurl): headers a NULL-terminated list of "Name: value"
 * lines, body NULL for none. The answer's status and body (capped at max_body) come back in
 * *status and out. No redirects are followed; only http and https. OSB_E_IO on a transport
 * failure or timeout, OSB_E_TOOBIG past max_body. */
int sdk_http_call(const char *method, const char *url, const char *const *headers,
                  const char *body, long timeout_ms, size_t max_body, long *status,
                  buf *out) WARN_UNUSED;

/* Wipes a secret string (NULL is fine) and frees it. */
void sdk_wipe_free(char *p);
/* True for an http or https URL without spaces, fragment or line breaks, under 2000 bytes. */
bool sdk_http_url(const char *u);

/* True when a JSON value is a string equal to want, with no NUL inside. */
bool sdk_json_str_is(const json_t *v, const char *want);

/* ---- the usage client (usage.c) ---- */
typedef struct sdk_usage sdk_usage;

/* Completes osb_usage_enable's setup once the catalog and the state are open, and starts the
 * usage thread. */
int sdk_usage_start(osb_broker *b, char *err, size_t errlen) WARN_UNUSED;
/* The broker stops: the provider's final collect, then sending until the spool is empty or
 * stop_flush_ms passed; then the thread ends and everything is freed. Needs the state's
 * group commit still running. */
void sdk_usage_stop(sdk_usage *u);

/* ---- dashboard single sign-on (sso.c) ---- */
typedef struct sdk_sso sdk_sso;

/* Completes osb_sso_enable's setup once the catalog is loaded and the port is bound. */
int sdk_sso_start(osb_broker *b, const char *listen, unsigned port, char *err,
                  size_t errlen) WARN_UNUSED;
void sdk_sso_free(sdk_sso *s);

/* ---- broker ---- */
/* A provider's write (osb_call_write), run in the transaction that records its call. */
typedef struct sdk_write {
    osb_write_fn fn;
    void *ud;
    void (*free_ud)(void *);
    struct sdk_write *next;
} sdk_write;

/* Runs the writes in order inside tx; the first failure stops them (OSB_E_STORE). */
int sdk_writes_run(store_tx *tx, const sdk_write *w) WARN_UNUSED;
/* Frees the writes (free_ud on each). */
void sdk_writes_free(sdk_write *w);
/* Takes the call's writes (the caller runs or frees them). */
sdk_write *sdk_call_take_writes(osb_call *c);
/* The call's writes and then work (may be NULL), in one transaction of their own: for the
 * calls whose outcome is not recorded through sdk_commit_reply. 0 when there was nothing to
 * write. */
int sdk_call_write_state(osb_broker *b, osb_call *c, store_work_fn work, void *ud) WARN_UNUSED;

struct osb_call_result {
    bool failed;
    int status;
    char *error, *description;
    bool async;
    char *operation;
    char *dashboard_url;
    json_t *metadata, *credentials, *extra;
    bool state_set;
    osb_op_state state;
    char *state_description;
    int retry_after;
    bool flags_set, instance_usable, update_repeatable;
    bool activity_set, active;
    int64_t last_active_ms;
    sdk_write *writes, **writes_tail; /* osb_call_write, in order */
};

typedef struct extra_route {
    unsigned methods;
    char *pattern;
    osb_http_handler handler;
    void *ud;
    struct extra_route *next;
} extra_route;

typedef struct osb_route_ud osb_route_ud;

struct osb_broker {
    osb_config cfg;
    osb_callbacks cb;
    sdk_catalog catalog;
    sdk_state_db state;
    http_router *router;
    http_server *server;
    unsigned char auth_salt[16], auth_hash[32];
    bool has_basic;
    sdk_jwks *jwks;         /* platform tokens: set when cfg.platform_url is */
    char *platform_url;     /* without a trailing slash */
    char *issuer;           /* platform_url + "/identity" */
    char *token_client_id;
    sdk_sso *sso;           /* dashboard SSO, when enabled */
    sdk_usage *usage;       /* the usage client, when enabled */
    extra_route *routes;       /* the provider's own routes */
    osb_route_ud *osb_routes;  /* the OSB routes' handler data */
    /* Instances with a request or a pushed completion in progress: one at a time each. */
    pthread_mutex_t busy_mu;
    pthread_cond_t busy_cv;
    char **busy;
    size_t nbusy, capbusy;
};

/* What the OSB pipeline learned from a request's headers, for the handlers. */
typedef struct {
    osb_broker *b;
    http_req *req;
    const char *api_version;
    const char *orig_platform;
    json_t *orig_identity; /* owned */
    const char *request_identity;
} osb_ctx;

/* Per-instance mutual exclusion. try: false when busy. wait: blocks until free.
 * or_reply: true (after answering 422 ConcurrencyError) when busy. */
bool sdk_busy_try(osb_broker *b, const char *instance_id);
bool sdk_busy_or_reply(osb_ctx *x, const char *instance_id);
void sdk_busy_wait(osb_broker *b, const char *instance_id);
void sdk_busy_release(osb_broker *b, const char *instance_id);

/* A call prepared from the request context; free with sdk_call_clear. */
void sdk_call_init(osb_ctx *x, osb_call *c, struct osb_call_result *res, osb_call_kind kind);
void sdk_call_clear(osb_call *c);
/* Replies with the provider's failure (status, error, description, failure flags). */
void sdk_reply_failure(osb_ctx *x, osb_call *c);
/* Parses accepts_incomplete; replies 400 and returns false on a bad value. */
bool sdk_accepts_incomplete(osb_ctx *x, bool *out);
/* A required / optional non-empty query parameter; replies 400 and returns false if bad. */
bool sdk_query_required(osb_ctx *x, const char *name, const char **out);
bool sdk_query_optional(osb_ctx *x, const char *name, const char **out);
/* Stored JSON text back to JSON (NULL for NULL); the caller owns the result. */
json_t *sdk_parse_json(const char *stored);
/* False, after answering 422 AsyncRequired, when the provider went async without
 * accepts_incomplete. */
bool sdk_async_allowed(osb_ctx *x, osb_call *c);
/* JSON text of j, or NULL for NULL (the caller frees). */
char *sdk_dump(const json_t *j);
/* True when the stored JSON text and j are the same JSON (NULL, absent and {} are equal). */
bool sdk_json_same(const char *stored, const json_t *j);
/* Validates parameters against a compiled schema; replies 400 and returns false if not. */
bool sdk_check_params(osb_ctx *x, const jschema *schema, const json_t *params, const char *what);
/* maintenance_info in a body against the plan: 422 MaintenanceInfoConflict on mismatch. */
bool sdk_check_maintenance(osb_ctx *x, const json_t *mi, const sdk_plan *plan);
/* Adds the state answer of last_operation to j and the Retry-After header. */
const char *sdk_state_name(osb_op_state s);

/* osb_operation_done for a binding. */
int sdk_binding_op_done(osb_broker *b, const char *instance_id, const char *binding_id,
                        osb_op_state state, const char *description);

void sdk_instances_routes(osb_broker *b);
void sdk_bindings_routes(osb_broker *b);
void sdk_ibm_routes(osb_broker *b);
/* Durable reply: stores the write, after the call's own writes (osb_call_write; taken),
 * through the group commit, then answers status with reply (stolen; NULL = "{}") and
 * releases the busy lock of busy_id (a path parameter of the request), which it takes over.
 * The handler returns right after; the request is answered from the committer thread. */
typedef enum { SDK_PUT_INSTANCE, SDK_DELETE_INSTANCE, SDK_PUT_BINDING, SDK_DELETE_BINDING } sdk_write_kind;
void sdk_commit_reply(osb_ctx *x, osb_call *c, sdk_write_kind kind, const sdk_instance *in,
                      const sdk_binding *bd, int status, json_t *reply, const char *busy_id);

/* Wraps an OSB handler: authentication, version, identities, then h. */
typedef void (*sdk_osb_handler)(osb_ctx *x);
int sdk_osb_route(osb_broker *b, unsigned methods, const char *pattern, sdk_osb_handler h,
                  bool version_required) WARN_UNUSED;

#endif
