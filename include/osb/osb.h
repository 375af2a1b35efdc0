/* libosb: write an Open Service Broker (OSB API 2.12 to 2.17, with IBM Cloud's extensions)
 * in C. The library serves the catalog, checks every request (version, authentication,
 * identities, ids, bodies, parameters against the plan's schemas), keeps the broker's state
 * (instances, bindings, operations) durable in its own SQLite file, and calls the provider
 * only for the work that is the provider's: creating, changing and deleting its resources.
 *
 * Callbacks run on the server's worker threads, several at a time, never two at a time for
 * the same instance. They must not block for long: slow work is started, reported as an
 * asynchronous operation, and finished later (polled through last_operation, or pushed
 * with osb_operation_done). */
#ifndef OSB_OSB_H
#define OSB_OSB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OSB_VERSION "0.1.0"

typedef struct osb_broker osb_broker;
typedef struct osb_call osb_call;

typedef enum {
    OSB_PROVISION = 1,
    OSB_UPDATE,
    OSB_DEPROVISION,
    OSB_BIND,
    OSB_UNBIND,
    OSB_LAST_OPERATION, /* polling an operation of one of the kinds above: see op_kind */
    OSB_FETCH_INSTANCE,
    OSB_FETCH_BINDING,
    OSB_ENABLE,  /* IBM Cloud: PUT /bluemix_v1/service_instances/:id {"enabled": true} */
    OSB_DISABLE, /* ... {"enabled": false} */
    OSB_STATE,   /* IBM Cloud: GET /bluemix_v1/service_instances/:id */
} osb_call_kind;

typedef enum {
    OSB_IN_PROGRESS = 0,
    OSB_SUCCEEDED,
    OSB_FAILED,
} osb_op_state;

/* What a callback is asked to do. Every pointer is owned by libosb and valid during the
 * callback only; absent values are NULL. */
struct osb_call {
    osb_call_kind kind;
    osb_call_kind op_kind;   /* for OSB_LAST_OPERATION: the kind of operation polled */
    const char *instance_id; /* decoded (an IBM CRN arrives URL-encoded) */
    const char *binding_id;  /* bind, unbind, fetch binding */
    const char *service_id;
    const char *plan_id; /* the requested plan (update: the new plan, or the current one) */
    const char *previous_plan_id; /* update: the plan before the change */
    const json_t *parameters;     /* validated against the plan's schema */
    const json_t *context;        /* e.g. {"platform","account_id","crn",...} */
    const json_t *previous_values;
    const json_t *maintenance_info;
    const json_t *bind_resource;
    const char *app_guid;               /* bind_resource.app_guid or the deprecated app_guid */
    const char *predecessor_binding_id; /* bind: rotating credentials of that binding */
    const char *organization_guid;
    const char *space_guid;
    const char *operation; /* last_operation: the provider's operation id */
    bool accepts_incomplete;
    bool enabled;                     /* the instance's IBM enablement */
    const char *initiator_id;         /* enable/disable */
    const char *reason_code;          /* enable/disable */
    const char *api_version;          /* "2.17" */
    const char *originating_platform; /* from X-Broker-API-Originating-Identity */
    const json_t *originating_identity;
    const char *request_identity;   /* X-Broker-API-Request-Identity */
    const json_t *service;          /* the catalog's service offering */
    const json_t *plan;             /* the catalog's plan */
    void *user;                     /* osb_config.user */
    struct osb_call_result *result; /* private: written by the setters below */
};

/* Results. A callback returns 0 on success, or calls osb_fail() and returns its value.
 * A non-zero return without osb_fail() becomes a 500. */
/* Marks the work as started, not finished; answers 202 with this operation id (copied;
 * NULL lets libosb make one). Only allowed when call->accepts_incomplete is true: check it
 * and fail with OSB_ASYNC_REQUIRED otherwise. */
void osb_set_async(osb_call *c, const char *operation);
void osb_set_dashboard_url(osb_call *c, const char *url);
/* Takes ownership of j. Metadata: instance {labels, attributes}, binding {expires_at,
 * renew_before}. */
void osb_set_metadata(osb_call *c, json_t *j);
/* bind: takes ownership of the credentials object; stored encrypted, returned on identical
 * PUTs and GETs, never logged. */
void osb_set_credentials(osb_call *c, json_t *credentials);
void osb_set_binding_extra(
    osb_call *c, const char *field,
    json_t *value); /* syslog_drain_url, route_service_url, volume_mounts, endpoints */
/* last_operation: where the operation stands; retry_after_s 0 = no Retry-After header. */
void osb_set_state(osb_call *c, osb_op_state state, const char *description, int retry_after_s);
/* OSB_STATE: whether the instance is active and when it last was (ms since the epoch). */
void osb_set_activity(osb_call *c, bool active, int64_t last_active_ms);

/* Fails the call with an HTTP status, an optional OSB error code (NULL or one of the codes
 * below, or the provider's own CamelCase code) and a human description. Returns -1. */
int osb_fail(osb_call *c, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* update/deprovision failures: whether the instance is still usable, and whether the same
 * update may be repeated. Set it with osb_fail() in the update/deprovision callback, or in
 * last_operation with osb_set_state(OSB_FAILED) for an async one (kept with the outcome for
 * every later poll); a flag never set is answered as true. */
void osb_set_failure_flags(osb_call *c, bool instance_usable, bool update_repeatable);

/* The provider's own data may live in the broker's state database (broker.db in data_dir,
 * SQLite in WAL mode), in tables of its own, so that its changes and libosb's record of an
 * answer reach the disk together, in one flush. fn runs on libosb's writer connection inside
 * a transaction (each write in a savepoint of its own) on libosb's committer thread; it must
 * not begin, commit or roll back, and returns 0 or a positive code of its own, which undoes
 * its changes. Readers open their own connections on osb_state_path(). */
struct sqlite3;
typedef int (*osb_write_fn)(struct sqlite3 *db, void *ud);

/* In a callback: fn(db, ud) runs in the transaction that records the call's outcome, after
 * the callback returns and before the answer, so the answer is given only once both are on
 * disk. A call that fails (osb_fail or a non-zero return) drops its writes unrun; a write
 * that fails fails the call with a 500 and nothing of it is recorded. free_ud (may be NULL)
 * is called on ud once the write ran or was dropped. Returns 0, or -1 when out of memory
 * (free_ud was called). */
int osb_call_write(osb_call *c, osb_write_fn fn, void *ud, void (*free_ud)(void *));
/* Outside callbacks (e.g. in an osb_http_route handler): runs fn(db, ud) in the next group
 * commit of the running broker and returns once it is on disk: 0, fn's own non-zero code
 * (its changes undone), or -1 when the state cannot be written. Blocks the calling thread. */
int osb_write(osb_broker *b, osb_write_fn fn, void *ud);
/* The state database's path (data_dir + "/broker.db"), for the provider's readers. */
const char *osb_state_path(const osb_broker *b);

#define OSB_ASYNC_REQUIRED            "AsyncRequired"
#define OSB_CONCURRENCY_ERROR         "ConcurrencyError"
#define OSB_REQUIRES_APP              "RequiresApp"
#define OSB_MAINTENANCE_INFO_CONFLICT "MaintenanceInfoConflict"

typedef struct {
    int (*provision)(osb_call *c);
    int (*update)(osb_call *c); /* NULL: plan changes and parameter updates are refused */
    int (*deprovision)(osb_call *c);
    int (*bind)(osb_call *c); /* NULL: nothing is bindable */
    int (*unbind)(osb_call *c);
    /* Polls an operation that a callback above reported as async; call->operation and
     * call->op_kind say which. Sets osb_set_state(). NULL: operations finish only through
     * osb_operation_done(). */
    int (*last_operation)(osb_call *c);
    int (*fetch_instance)(osb_call *c); /* optional: refresh dashboard_url/metadata on GET */
    int (*fetch_binding)(osb_call *c);  /* optional */
    int (*set_enabled)(osb_call *c);    /* OSB_ENABLE / OSB_DISABLE; NULL: only recorded */
    int (*get_state)(osb_call *c);      /* OSB_STATE; NULL: active = enabled */
} osb_callbacks;

/* Verifies a bearer token. Returns 0 to accept. With platform_url set it runs after libosb's
 * own verification of the platform's JWT (an extra check, e.g. of sub); without it, it is the
 * only check. NULL: no extra check. */
typedef int (*osb_token_verifier)(void *ud, const char *token);

typedef struct {
    const char *listen;       /* "127.0.0.1:8090"; port 0 picks a free one */
    const char *data_dir;     /* holds broker.db (state) and broker.key (credential encryption) */
    const char *catalog_path; /* catalog.json in the OSB catalog shape */
    const char *user;         /* Basic credentials; kept only as a salted hash */
    const char *password;
    osb_token_verifier verify_token;
    void *verify_token_ud;
    unsigned threads; /* 0 = one per core */
    size_t max_body;  /* 0 = 1 MiB */
    bool access_log;
    const char *name; /* for logs */
    void *user_data;  /* handed to callbacks as call->user */
    /* The platform's base URL, e.g. "http://127.0.0.1:8080". When set, requests may carry
     * "Authorization: Bearer <JWT>" issued by the platform's IAM: RS256, signed by a key of
     * platform_url + "/identity/keys" (cached; fetched at start, every few minutes, and at
     * most once per 30 s when a token names an unknown kid), iss exactly platform_url +
     * "/identity", exp/nbf/iat within 30 s of skew, client_id equal to token_client_id, and
     * not revoked: the platform's list of revoked tokens (platform_url +
     * "/identity/revocations") is polled every revocation_poll_ms, so a revocation takes
     * effect here within that delay. NULL: Basic (and verify_token) only. */
    const char *platform_url;
    const char *token_client_id; /* NULL = "resource-controller", the platform's controller */
    unsigned revocation_poll_ms; /* 0 = 10 s */
} osb_config;

/* Loads and validates the catalog (the error names the offending JSON path), opens the
 * state, and starts serving. err (may be NULL) receives a message on failure. */
int osb_broker_start(const osb_config *cfg, const osb_callbacks *cb, osb_broker **out, char *err,
                     size_t errlen);
unsigned osb_broker_port(const osb_broker *b);
/* The loaded catalog ({"services": [...]}); owned by the broker. */
const json_t *osb_broker_catalog(const osb_broker *b);
/* Stops serving (requests in flight finish) and frees everything. */
void osb_broker_stop(osb_broker *b);

/* Finishes an async operation from outside a request (e.g. a provider's worker thread).
 * binding_id NULL for instance operations. Returns 0, or -1 if no such operation runs. */
int osb_operation_done(osb_broker *b, const char *instance_id, const char *binding_id,
                       osb_op_state state, const char *description);

/* ---- the provider's own HTTP endpoints, served beside the OSB API (dashboards, data APIs,
 * health). These requests are not OSB requests: no OSB authentication or version check. */
typedef struct osb_http osb_http;
typedef void (*osb_http_handler)(osb_http *h, void *ud);
enum { OSB_GET = 1, OSB_HEAD = 2, OSB_POST = 4, OSB_PUT = 8, OSB_PATCH = 16, OSB_DELETE = 32 };
/* Must be called before osb_broker_start; patterns as "/kv/:instance/:key". */
int osb_http_route(osb_broker *b, unsigned methods, const char *pattern, osb_http_handler h,
                   void *ud);
/* For routes: osb_broker_new + osb_http_route + osb_broker_run instead of osb_broker_start. */
osb_broker *osb_broker_new(void);
int osb_broker_run(osb_broker *b, const osb_config *cfg, const osb_callbacks *cb, char *err,
                   size_t errlen);

const char *osb_http_method(osb_http *h);
const char *osb_http_param(osb_http *h, int i); /* decoded path parameter */
const char *osb_http_header(osb_http *h, const char *name);
const char *osb_http_query(osb_http *h, const char *name);
const void *osb_http_body(osb_http *h, size_t *len);
void osb_http_set_header(osb_http *h, const char *name, const char *value);
void osb_http_reply(osb_http *h, int status, const char *content_type, const void *body,
                    size_t len);
void osb_http_reply_json(osb_http *h, int status, const json_t *j);
void osb_http_reply_error(osb_http *h, int status, const char *error, const char *description);
/* True when the request carries the broker's own credentials (as the OSB API requires):
 * for the provider's administrative routes. */
bool osb_http_authorized(osb_broker *b, osb_http *h);

/* ---- usage: the provider's metering, submitted to the platform (POST
 * /v4/metering/resources/{resource_id}/usage). Records are spooled in the broker's state
 * database first, in the provider's own transaction if it likes, and a background thread
 * sends them in batches of up to 100. A 201 or a 409 (already accepted: a retry of a record
 * that was delivered before a crash) takes a record off the spool; a 400 or a 404 (or a 400,
 * 413 or 415 for the whole request) moves it to the table osb_usage_rejected (with the platform's
 * status, code and message, logged once) and it is never sent again; a 5xx, a timeout, a broken
 * answer or a platform that cannot be reached keeps the batch on the spool, retried with
 * exponential backoff and jitter. Spooled records survive restarts of the broker and outages of the
 * platform; osb_broker_stop sends what it can before it returns, and the rest goes on the next
 * start. A record's signature (instance, consumer, plan, region, start, end) is its identity at the
 * platform: two different records must not share one. */
typedef struct {
    const char *measure;  /* a metric id of the plan, e.g. "API_CALLS" */
    const char *quantity; /* a decimal, exact as written: -?(0|[1-9][0-9]*)(\.[0-9]+)? */
} osb_measure;

typedef struct {
    const char *resource_instance_id; /* the instance id (or CRN) */
    const char *plan_id;              /* the instance's plan at the record's instant */
    const char *region;               /* NULL: the instance's region */
    const char *consumer_id;          /* NULL: none */
    int64_t start_ms, end_ms;         /* [start, end), ms since the epoch; start <= end */
    const osb_measure *measures;
    size_t n_measures; /* 1 to 32, each measure once */
} osb_usage_record;

/* Called on the usage thread before each round of sending (now_ms: the time), and once more
 * with final = true when the broker stops, so that a provider that meters by accumulating
 * (calls per hour, peak storage) spools what it has. It spools with osb_write and
 * osb_usage_spool. Its return value is ignored. */
typedef void (*osb_usage_collect_fn)(osb_broker *b, void *ud, int64_t now_ms, bool final);

typedef struct {
    /* required: an API key of a service ID (or a user) of the provider account that owns
     * the offering, exchanged for the platform's tokens; kept in memory only, never logged */
    const char *api_key;
    const char *platform_url;     /* NULL: osb_config's platform_url */
    const char *resource_id;      /* the offering's catalog service id; NULL: the catalog's first */
    unsigned batch_max;           /* records per request, 1 to 100; 0 = 100 */
    unsigned interval_ms;         /* how often the spool is looked at; 0 = 1000 */
    unsigned timeout_ms;          /* per request to the platform; 0 = 10000 */
    unsigned backoff_min_ms;      /* the first retry's delay; 0 = 500 */
    unsigned backoff_max_ms;      /* the delay doubles up to this; 0 = 60000 */
    unsigned stop_flush_ms;       /* how long osb_broker_stop keeps sending; 0 = 5000 */
    osb_usage_collect_fn collect; /* may be NULL */
    void *collect_ud;
} osb_usage_config;

/* Enables the usage client. Call before osb_broker_run; cfg is copied. Returns 0, or
 * non-zero for a missing or malformed field, a second call, or no memory. */
int osb_usage_enable(osb_broker *b, const osb_usage_config *cfg);

/* Inside an osb_write_fn (osb_call_write or osb_write): puts the record on the spool in that
 * transaction, so it is sent if and only if the provider's own changes commit. Returns 0, or
 * a positive code: 1 for a malformed record (the reason is logged), 2 when the spool cannot
 * be written. */
int osb_usage_spool(struct sqlite3 *db, const osb_usage_record *r);

/* Outside callbacks: spools one record through the group commit (osb_write) and returns once
 * it is on disk: 0, or the code of osb_usage_spool, or -1. Blocks the calling thread. */
int osb_usage_submit(osb_broker *b, const osb_usage_record *r);

typedef struct {
    int64_t spooled;         /* records waiting on the spool */
    int64_t rejected;        /* records in osb_usage_rejected */
    uint64_t accepted;       /* since the start: answered 201 */
    uint64_t duplicates;     /* since the start: answered 409 */
    uint64_t failures;       /* since the start: requests that will be retried */
    int64_t last_success_ms; /* the last answer from the platform (0: none yet) */
} osb_usage_stats;

/* Sends what is on the spool now and waits until it is empty or timeout_ms passed: 0 when
 * empty, 1 when records are left, -1 when the client is not enabled. stats may be NULL. */
int osb_usage_flush(osb_broker *b, unsigned timeout_ms, osb_usage_stats *stats);

/* ---- dashboard single sign-on: the platform's users open the provider's dashboard (the
 * dashboard_url a provision answers) and are signed in through the platform's IAM (OAuth 2.0
 * authorization code flow with PKCE S256), then allowed per instance by the platform's
 * access policies (POST /v2/authz). */
typedef struct {
    const char *platform_url;  /* required: the platform's base URL */
    const char *client_id;     /* required: the offering's dashboard client at the platform */
    const char *client_secret; /* required; kept in memory only, never logged */
    /* This broker's GET /sso/callback as the browser reaches it, registered exactly with the
     * client, e.g. "https://kv.example.com/sso/callback". NULL = http://<listen address>
     * /sso/callback with the port actually bound. */
    const char *redirect_uri;
    /* The serviceName of IAM policies. NULL = the name of the catalog's first service. */
    const char *service_name;
    /* Signs the session and state cookies. Set it (32+ random bytes of text) to keep
     * sessions across restarts or share them between replicas; NULL = a random key per
     * process. */
    const char *session_secret;
} osb_sso_config;

/* The signed-in user of a dashboard request. */
typedef struct {
    char iam_id[128];
    char account_id[64]; /* the user's account, from the platform's token */
    int64_t expires_at;  /* the session's end (the token's exp), seconds since the epoch */
} osb_sso_user;

/* Enables dashboard SSO and registers GET /sso/callback. Call before osb_broker_run; cfg is
 * copied. Returns 0, or non-zero for a missing or malformed field, a second call, or no
 * memory. */
int osb_sso_enable(osb_broker *b, const osb_sso_config *cfg);

/* For a dashboard route: true when the browser has a valid dashboard session and the
 * platform permits action (e.g. "starter-kv.dashboard.view") on the instance to the user;
 * *out is the user then. The instance's account is the account_id of the context it was
 * provisioned with. Otherwise the request has been answered and the handler just returns:
 * 302 to the platform's sign-in (coming back to this path afterwards; its query is not
 * kept), 403 when the platform denies or the instance is unknown, 502 when the platform
 * cannot be asked, 500 when SSO is not enabled. Blocks the calling thread on the platform
 * (a few seconds at most). */
bool osb_sso_require(osb_broker *b, osb_http *h, const char *instance_id, const char *action,
                     osb_sso_user *out);

/* ---- support: the platform delivers the support cases of the provider's offering to its
 * webhook (PUT /v1/offerings/{id}/support/webhook sets it and shows its secret once) as a
 * JSON POST with the headers
 *   X-Osbill-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 with the secret of "<t>.<body>">
 *   X-Osbill-Delivery: the delivery's id (the same on every retry of it)
 *   X-Osbill-Event: case.created or case.updated
 * An answer 2xx acknowledges a delivery; anything else has it retried, with backoff. */
typedef enum {
    OSB_WEBHOOK_OK = 0,
    OSB_WEBHOOK_MALFORMED,     /* no header, or not t=...,v1=<64 hex digits> */
    OSB_WEBHOOK_BAD_SIGNATURE, /* not signed with this secret over this body and t */
    OSB_WEBHOOK_STALE,         /* t is more than the tolerance away from now */
} osb_webhook_verdict;

#define OSB_WEBHOOK_TOLERANCE_S 300

/* Checks a delivery: its signature header's value, the body exactly as received, the
 * webhook's secret, now (unix seconds; 0 = the clock) and the tolerance (seconds; 0 =
 * OSB_WEBHOOK_TOLERANCE_S). Compares in constant time. *t (may be NULL) receives the signed
 * time: a receiver also refuses a (delivery id, t) it has seen, a replay within the window. */
osb_webhook_verdict osb_webhook_verify(const char *secret, const char *signature, const void *body,
                                       size_t n, int64_t now, int64_t tolerance_s, int64_t *t);

#ifdef __cplusplus
}
#endif
#endif
