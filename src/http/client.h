/* http client: asynchronous HTTP calls (libcurl multi) for code that must never block an API
 * worker thread, such as the resource controller calling providers' OSB brokers. One thread
 * per client runs every transfer; connections are kept alive and reused per host:port. */
#ifndef OSBILL_HTTP_CLIENT_H
#define OSBILL_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct http_client http_client;

typedef struct {
    unsigned max_connections;      /* open at once, all hosts; 0 = 64 */
    unsigned max_host_connections; /* open at once per host:port; 0 = 8. Transfers beyond it
                                    * wait for a connection to come free and then reuse it. */
    const char *user_agent;        /* NULL = "osbill"; copied */
    const char *name;              /* for log lines and metric labels; NULL = "client"; copied */
    /* For calls to addresses that third parties choose (providers' brokers): never through
     * a proxy from the environment, and never to a link-local address (the clouds' instance
     * metadata services); such a connection fails with error "refused". */
    bool untrusted_targets;
} http_client_config;

typedef struct {
    const char *method;         /* GET, PUT, PATCH, DELETE or POST */
    const char *url;            /* http:// or https:// only; no redirects followed */
    const char *const *headers; /* NULL-terminated "Name: value" lines; copied */
    const void *body;           /* copied; NULL for none (not with GET) */
    size_t body_len;
    const char *basic_user, *basic_password; /* HTTP Basic; copied, wiped after use; or NULL */
    const char *bearer_token;                /* copied, wiped after use; or NULL */
    long timeout_ms;                         /* the whole request; 0 = 60 s */
    long connect_timeout_ms;                 /* 0 = 10 s */
    size_t max_body;                         /* cap on the answer's body; 0 = 1 MiB */
} http_client_request;

typedef struct {
    long status;       /* the HTTP status; 0 whenever error is set */
    const char *error; /* NULL when an answer arrived; else "timeout", "connect" (refused
                        * or unreachable), "too_big" (body or a captured header over its
                        * cap), "canceled" (the client stopped), "refused" (a metadata
                        * address, see untrusted_targets) or libcurl's own text */
    bool timed_out;    /* the whole-request or connect timeout expired */
    const char *body;  /* NUL-terminated ("" when empty); NULL whenever error is set */
    size_t body_len;
    /* The last response's headers of these names (NULL when absent), trimmed. */
    const char *content_type, *retry_after, *location;
    int64_t elapsed_us; /* from http_client_send to the answer or the error */
} http_client_response;

/* True for link-local addresses (169.254.0.0/16, fe80::/10, their IPv4-mapped forms) and
 * fd00:ec2::254: cloud instance metadata services, never a broker. text receives the
 * address. */
struct sockaddr;
bool http_metadata_address(const struct sockaddr *sa, char *text, size_t n);

/* Called exactly once per accepted request, on the client's thread. Everything r points to
 * is valid during the call only. Keep it short: no transfer progresses while it runs. It may
 * call http_client_send (not http_client_stop). */
typedef void (*http_client_done_fn)(void *ud, const http_client_response *r);

/* Starts a client and its thread. OSB_E_NOMEM, or OSB_E_IO when libcurl cannot start. */
int http_client_start(const http_client_config *cfg, http_client **out) WARN_UNUSED;

/* Queues a request and returns at once; thread-safe. Everything in req is copied, so the
 * caller may free it on return. Authorization is sent as a header built from basic_user and
 * basic_password or bearer_token (not both); the copies are wiped when the transfer ends.
 * On 0, done(ud, ...) will run exactly once. On an error it never runs:
 * OSB_E_INVAL for a method other than the five, a URL that is not http(s), a header line
 * without a name or with CR/LF, a basic user with ':', both kinds of credentials, negative
 * timeouts or a body with GET; OSB_E_BUSY once http_client_stop has begun; OSB_E_NOMEM. */
int http_client_send(http_client *c, const http_client_request *req, http_client_done_fn done,
                     void *ud) WARN_UNUSED;

/* Stops the client: requests in flight and queued ones finish with error "canceled" (their
 * done runs on the client's thread before this returns), then everything is freed. Sends
 * racing with it fail with OSB_E_BUSY; none may begin after it returns. Not from a done
 * callback. NULL is ignored. */
void http_client_stop(http_client *c);

/* Counters since start: requests accepted by http_client_send, requests that got an HTTP
 * answer (any status), requests that ended with an error (canceled ones included), and
 * connections opened (libcurl's CURLINFO_NUM_CONNECTS summed over transfers). Any pointer
 * may be NULL. */
void http_client_stats(http_client *c, uint64_t *sent, uint64_t *done, uint64_t *failed,
                       uint64_t *connects);

/* Prometheus text of the counters above and of the requests in flight, labelled with the
 * client's name. Appends to out. */
int http_client_metrics(http_client *c, buf *out) WARN_UNUSED;

#endif
