/* The starter broker's service itself: a key-value store where each service instance is a
 * namespace and each binding an API key. It also counts the usage the provider bills:
 * API_CALLS per hour and the peak STORAGE_BYTES per hour. */
#ifndef STARTER_KV_H
#define STARTER_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <osb/osb.h>

typedef struct kv kv;

typedef struct {
    char plan_id[64];
    int64_t max_keys, max_value;
    int64_t ready_at;    /* ms; creation finishes then */
    int64_t deleting_at; /* ms; 0 = not being deleted */
    bool enabled;
    int64_t last_active;
    int64_t bytes, keys;
} kv_namespace;

enum { KV_OK = 0, KV_NOTFOUND = 1, KV_FULL = 2, KV_EXISTS = 3, KV_ERR = -1 };

/* Creates the tables in data_dir/broker.db (moving an older kv.db's data there) before the
 * broker b runs; writes go through b once it does. Close after osb_broker_stop(). */
int kv_open(const char *data_dir, osb_broker *b, kv **out);
void kv_close(kv *k);

/* The writes that take an osb_call run in the transaction that records that call: KV_OK
 * means queued, and the call fails if the write then does (see osb_call_write). */
int kv_ns_create(kv *k, osb_call *c, const char *instance, const char *plan_id, int64_t max_keys,
                 int64_t max_value, int64_t now, int64_t ready_at);
int kv_ns_get(kv *k, const char *instance, kv_namespace *out);
int kv_ns_update(kv *k, osb_call *c, const char *instance, const char *plan_id, int64_t max_keys,
                 int64_t max_value);
int kv_ns_set_enabled(kv *k, osb_call *c, const char *instance, bool enabled);
int kv_ns_mark_deleting(kv *k, osb_call *c, const char *instance, int64_t deleting_at);
/* Removes the namespace, its keys and its API keys. */
int kv_ns_purge(kv *k, osb_call *c, const char *instance);

/* API keys are stored as SHA-256 digests; the key itself is only ever shown once. */
int kv_apikey_add(kv *k, osb_call *c, const char *instance, const char *binding, const char *apikey,
                  const char *role);
int kv_apikey_remove(kv *k, osb_call *c, const char *instance, const char *binding);
/* KV_OK with the key's role when the presented key belongs to the instance. */
int kv_apikey_check(kv *k, const char *apikey, const char *instance, char role[16]);

int kv_put(kv *k, const char *instance, const char *key, const void *val, size_t n);
/* *val is malloc'd. */
int kv_get(kv *k, const char *instance, const char *key, void **val, size_t *n);
int kv_del(kv *k, const char *instance, const char *key);
/* JSON array text of the namespace's keys (malloc'd). */
int kv_list(kv *k, const char *instance, char **json);

/* Counts one API call and records the storage peak for the current hour; called after the
 * call's own change, so the peak includes it. */
int kv_meter_call(kv *k, const char *instance, int64_t now_ms);
/* From now on each metered call also counts into the usage handed to libosb's usage client
 * (osb_usage_enable): per instance and plan, one record per period_ms (aligned to the epoch)
 * with the calls and the storage peak, spooled once its period is over. */
void kv_submit_usage(kv *k, int64_t period_ms);
/* Spools the usage of the periods that ended before now_ms; all of it when final. For the
 * usage client's collect callback. */
int kv_collect_usage(kv *k, int64_t now_ms, bool final);
/* JSON text (malloc'd) of the usage counted for an instance: [{measure, hour, quantity}]. */
int kv_usage(kv *k, const char *instance, char **json);

/* Records a support delivery from the platform (its signature already checked): KV_EXISTS
 * when this very (delivery, t) was received before, a replay; *again when the delivery was
 * received before at another time (the platform retried: acknowledge it again). */
int kv_support_receive(kv *k, const char *delivery, int64_t t, const char *event,
                       const char *case_id, const void *body, size_t n, int64_t now, bool *again);
/* JSON text (malloc'd) of the deliveries received: [{delivery_id, event, case_id, received,
 * first_received_ms, payload}], oldest first. */
int kv_support_list(kv *k, char **json);

#endif
