/* sdk state: the broker's memory of instances, bindings and their operations, in its own
 * SQLite file, so that a restart forgets nothing. Binding credentials are stored encrypted
 * (XChaCha20-Poly1305, the key in broker.key beside the database, bound to the ids). */
#include "sdk/sdk.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const store_migration migrations[] = {
    {1, "instances, bindings and their operations",
     "CREATE TABLE instances ("
     " id TEXT PRIMARY KEY, service_id TEXT NOT NULL, plan_id TEXT NOT NULL,"
     " parameters TEXT, context TEXT, organization_guid TEXT, space_guid TEXT,"
     " maintenance_version TEXT, dashboard_url TEXT, metadata TEXT,"
     " state INTEGER NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, last_active_ms INTEGER,"
     " op_id TEXT, op_kind INTEGER, op_state INTEGER, op_description TEXT, op_started_ms INTEGER,"
     " pending_plan_id TEXT, pending_parameters TEXT, pending_maintenance_version TEXT,"
     " prev_plan_id TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
     "CREATE TABLE bindings ("
     " instance_id TEXT NOT NULL, id TEXT NOT NULL, service_id TEXT NOT NULL,"
     " plan_id TEXT NOT NULL, parameters TEXT, bind_resource TEXT, app_guid TEXT,"
     " credentials BLOB, metadata TEXT, extra TEXT, state INTEGER NOT NULL,"
     " op_id TEXT, op_state INTEGER, op_description TEXT, op_started_ms INTEGER,"
     " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
     " PRIMARY KEY (instance_id, id));"},
    {2, "a failed update's or deprovision's instance_usable and update_repeatable",
     "ALTER TABLE instances ADD COLUMN op_instance_usable INTEGER NOT NULL DEFAULT 1;"
     "ALTER TABLE instances ADD COLUMN op_update_repeatable INTEGER NOT NULL DEFAULT 1;"},
    {3, "the usage client's spool and the records the platform refused",
     "CREATE TABLE osb_usage_spool ("
     " id INTEGER PRIMARY KEY, record TEXT NOT NULL, spooled_ms INTEGER NOT NULL);"
     "CREATE TABLE osb_usage_rejected ("
     " id INTEGER PRIMARY KEY, record TEXT NOT NULL, status INTEGER NOT NULL, code TEXT,"
     " message TEXT, spooled_ms INTEGER NOT NULL, rejected_ms INTEGER NOT NULL);"},
};

static int load_key(const char *data_dir, unsigned char key[32])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/broker.key", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, key, 32);
        close(fd);
        if (n != 32) {
            log_error("libosb: %s is damaged (want 32 bytes)", path);
            return OSB_E_IO;
        }
        return 0;
    }
    if (errno != ENOENT) {
        log_error("libosb: cannot read %s: %s", path, strerror(errno));
        return OSB_E_IO;
    }
    random_bytes(key, 32);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, key, 32) != 32 || fsync(fd) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        log_error("libosb: cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return OSB_E_IO;
    }
    return 0;
}

int sdk_state_open(const char *data_dir, sdk_state_db *out)
{
    memset(out, 0, sizeof *out);
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        log_error("libosb: cannot create %s: %s", data_dir, strerror(errno));
        return OSB_E_IO;
    }
    int rc = load_key(data_dir, out->key);
    if (rc)
        return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/broker.db", data_dir);
    if (!(out->path = strdup(path)))
        return OSB_E_NOMEM;
    if ((rc = store_open(path, NULL, &out->db)))
        return rc;
    if ((rc = store_migrate(out->db, migrations, ARRAY_LEN(migrations))) ||
        (rc = store_group_start(out->db, &out->group))) {
        store_close(out->db);
        out->db = NULL;
    }
    return rc;
}

void sdk_state_close(sdk_state_db *s)
{
    store_group_stop(s->group);
    s->group = NULL;
    store_close(s->db);
    secure_wipe(s->key, sizeof s->key);
    s->db = NULL;
    free(s->path);
    s->path = NULL;
}

static char *dup_col(store_stmt *q, int i)
{
    const char *v = store_col_text(q, i);
    return v ? strdup(v) : NULL;
}

#define INSTANCE_COLS                                                                         \
    "id, service_id, plan_id, parameters, context, organization_guid, space_guid,"            \
    " maintenance_version, dashboard_url, metadata, state, enabled, last_active_ms, op_id,"   \
    " op_kind, op_state, op_description, op_started_ms, pending_plan_id, pending_parameters," \
    " pending_maintenance_version, prev_plan_id, op_instance_usable, op_update_repeatable"

int sdk_instance_get(sdk_state_db *s, const char *id, sdk_instance *in)
{
    static const char sql[] = "SELECT " INSTANCE_COLS " FROM instances WHERE id = ?";
    store_tx *tx;
    store_stmt *q;
    memset(in, 0, sizeof *in);
    int rc = store_begin(s->db, false, &tx);
    if (rc)
        return rc;
    if ((rc = store_query(tx, sql, &q, "s", id))) {
        store_rollback(tx);
        return rc;
    }
    rc = store_step(q);
    if (rc == STORE_ROW) {
        in->id = dup_col(q, 0);
        in->service_id = dup_col(q, 1);
        in->plan_id = dup_col(q, 2);
        in->parameters = dup_col(q, 3);
        in->context = dup_col(q, 4);
        in->organization_guid = dup_col(q, 5);
        in->space_guid = dup_col(q, 6);
        in->maintenance_version = dup_col(q, 7);
        in->dashboard_url = dup_col(q, 8);
        in->metadata = dup_col(q, 9);
        in->state = (sdk_state)store_col_int(q, 10);
        in->enabled = store_col_int(q, 11) != 0;
        in->last_active_ms = store_col_int(q, 12);
        in->op_id = dup_col(q, 13);
        in->op_kind = (osb_call_kind)store_col_int(q, 14);
        in->op_state = (osb_op_state)store_col_int(q, 15);
        in->op_description = dup_col(q, 16);
        in->op_started_ms = store_col_int(q, 17);
        in->pending_plan_id = dup_col(q, 18);
        in->pending_parameters = dup_col(q, 19);
        in->pending_maintenance_version = dup_col(q, 20);
        in->prev_plan_id = dup_col(q, 21);
        in->op_instance_usable = store_col_int(q, 22) != 0;
        in->op_update_repeatable = store_col_int(q, 23) != 0;
        rc = in->id ? 0 : OSB_E_NOMEM;
    } else if (rc == STORE_DONE) {
        rc = OSB_E_NOTFOUND;
    }
    store_done(q);
    store_rollback(tx);
    return rc;
}

int sdk_instance_write(store_tx *tx, const sdk_instance *in)
{
    static const char sql[] =
        "INSERT OR REPLACE INTO instances (" INSTANCE_COLS ", created_ms, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " coalesce((SELECT created_ms FROM instances WHERE id = ?), ?), ?)";
    int64_t now = time_now_ms();
    return store_exec(tx, sql, "ssssssssssddisddsissssddsii", in->id, in->service_id, in->plan_id,
                      in->parameters, in->context, in->organization_guid, in->space_guid,
                      in->maintenance_version, in->dashboard_url, in->metadata, (int)in->state,
                      (int)in->enabled, in->last_active_ms, in->op_id, (int)in->op_kind,
                      (int)in->op_state, in->op_description, in->op_started_ms,
                      in->pending_plan_id, in->pending_parameters,
                      in->pending_maintenance_version, in->prev_plan_id,
                      (int)in->op_instance_usable, (int)in->op_update_repeatable, in->id, now,
                      now);
}

int sdk_instance_remove(store_tx *tx, const char *id)
{
    int rc = store_exec(tx, "DELETE FROM bindings WHERE instance_id = ?", "s", id);
    return rc ? rc : store_exec(tx, "DELETE FROM instances WHERE id = ?", "s", id);
}

static int put_fn(store_tx *tx, void *ud)
{
    return sdk_instance_write(tx, ud);
}

static int delete_fn(store_tx *tx, void *ud)
{
    return sdk_instance_remove(tx, ud);
}

int sdk_instance_put(sdk_state_db *s, const sdk_instance *in)
{
    return store_write(s->db, put_fn, (void *)in);
}

int sdk_instance_delete(sdk_state_db *s, const char *id)
{
    return store_write(s->db, delete_fn, (void *)id);
}

void sdk_instance_free(sdk_instance *in)
{
    char **fields[] = {&in->id, &in->service_id, &in->plan_id, &in->parameters, &in->context,
                       &in->organization_guid, &in->space_guid, &in->maintenance_version,
                       &in->dashboard_url, &in->metadata, &in->op_id, &in->op_description,
                       &in->pending_plan_id, &in->pending_parameters,
                       &in->pending_maintenance_version, &in->prev_plan_id};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
}

/* ---------------------------------------------------------------- bindings */

#define AEAD_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AEAD_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

static void binding_ad(const char *instance_id, const char *id, buf *ad)
{
    /* NUL separators keep ("ab","c") and ("a","bc") apart. */
    buf_init(ad, 0);
    if (buf_append(ad, instance_id, strlen(instance_id) + 1) || buf_puts(ad, id))
        buf_reset(ad);
}

static int seal(sdk_state_db *s, const sdk_binding *b, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (!b->credentials)
        return 0;
    size_t m = strlen(b->credentials);
    unsigned char *c = malloc(AEAD_NONCE + m + AEAD_TAG);
    if (!c)
        return OSB_E_NOMEM;
    buf ad;
    binding_ad(b->instance_id, b->id, &ad);
    random_bytes(c, AEAD_NONCE);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(c + AEAD_NONCE, &clen,
                                               (const unsigned char *)b->credentials, m,
                                               (const unsigned char *)ad.data, ad.len, NULL, c,
                                               s->key);
    buf_free(&ad);
    *out = c;
    *outlen = AEAD_NONCE + (size_t)clen;
    return 0;
}

static int unseal(sdk_state_db *s, sdk_binding *b, const unsigned char *c, size_t n)
{
    if (!c || n == 0)
        return 0;
    if (n < AEAD_NONCE + AEAD_TAG)
        return OSB_E_STORE;
    size_t mlen = n - AEAD_NONCE - AEAD_TAG;
    char *m = malloc(mlen + 1);
    if (!m)
        return OSB_E_NOMEM;
    buf ad;
    binding_ad(b->instance_id, b->id, &ad);
    unsigned long long got = 0;
    int r = crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)m, &got, NULL,
                                                       c + AEAD_NONCE, n - AEAD_NONCE,
                                                       (const unsigned char *)ad.data, ad.len,
                                                       c, s->key);
    buf_free(&ad);
    if (r != 0) {
        free(m);
        log_error("libosb: credentials of binding %s cannot be decrypted (wrong broker.key?)",
                  b->id);
        return OSB_E_STORE;
    }
    m[got] = '\0';
    b->credentials = m;
    return 0;
}

int sdk_binding_get(sdk_state_db *s, const char *instance_id, const char *id, sdk_binding *b)
{
    static const char sql[] =
        "SELECT instance_id, id, service_id, plan_id, parameters, bind_resource, app_guid,"
        " credentials, metadata, extra, state, op_id, op_state, op_description, op_started_ms"
        " FROM bindings WHERE instance_id = ? AND id = ?";
    store_tx *tx;
    store_stmt *q;
    memset(b, 0, sizeof *b);
    int rc = store_begin(s->db, false, &tx);
    if (rc)
        return rc;
    if ((rc = store_query(tx, sql, &q, "ss", instance_id, id))) {
        store_rollback(tx);
        return rc;
    }
    rc = store_step(q);
    if (rc == STORE_ROW) {
        b->instance_id = dup_col(q, 0);
        b->id = dup_col(q, 1);
        b->service_id = dup_col(q, 2);
        b->plan_id = dup_col(q, 3);
        b->parameters = dup_col(q, 4);
        b->bind_resource = dup_col(q, 5);
        b->app_guid = dup_col(q, 6);
        size_t n;
        const void *c = store_col_blob(q, 7, &n);
        b->metadata = dup_col(q, 8);
        b->extra = dup_col(q, 9);
        b->state = (sdk_state)store_col_int(q, 10);
        b->op_id = dup_col(q, 11);
        b->op_state = (osb_op_state)store_col_int(q, 12);
        b->op_description = dup_col(q, 13);
        b->op_started_ms = store_col_int(q, 14);
        rc = b->id && b->instance_id ? unseal(s, b, c, n) : OSB_E_NOMEM;
    } else if (rc == STORE_DONE) {
        rc = OSB_E_NOTFOUND;
    }
    store_done(q);
    store_rollback(tx);
    if (rc && rc != OSB_E_NOTFOUND)
        sdk_binding_free(b);
    return rc;
}

int sdk_binding_write(sdk_state_db *s, store_tx *tx, const sdk_binding *b)
{
    static const char sql[] =
        "INSERT OR REPLACE INTO bindings (instance_id, id, service_id, plan_id, parameters,"
        " bind_resource, app_guid, credentials, metadata, extra, state, op_id, op_state,"
        " op_description, op_started_ms, created_ms, updated_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " coalesce((SELECT created_ms FROM bindings WHERE instance_id = ? AND id = ?), ?), ?)";
    unsigned char *sealed;
    size_t sealed_len;
    int rc = seal(s, b, &sealed, &sealed_len);
    if (rc)
        return rc;
    int64_t now = time_now_ms();
    if (sealed)
        rc = store_exec(tx, sql, "sssssssbssdsdsissii", b->instance_id, b->id, b->service_id,
                        b->plan_id, b->parameters, b->bind_resource, b->app_guid,
                        (const void *)sealed, sealed_len, b->metadata, b->extra, (int)b->state,
                        b->op_id, (int)b->op_state, b->op_description, b->op_started_ms,
                        b->instance_id, b->id, now, now);
    else
        rc = store_exec(tx, sql, "sssssssnssdsdsissii", b->instance_id, b->id, b->service_id,
                        b->plan_id, b->parameters, b->bind_resource, b->app_guid, b->metadata,
                        b->extra, (int)b->state, b->op_id, (int)b->op_state, b->op_description,
                        b->op_started_ms, b->instance_id, b->id, now, now);
    free(sealed);
    return rc;
}

int sdk_binding_remove(store_tx *tx, const char *instance_id, const char *id)
{
    return store_exec(tx, "DELETE FROM bindings WHERE instance_id = ? AND id = ?", "ss",
                      instance_id, id);
}

typedef struct {
    sdk_state_db *s;
    const sdk_binding *b;
    const char *instance_id, *id;
} binding_write;

static int binding_put_fn(store_tx *tx, void *ud)
{
    binding_write *w = ud;
    return sdk_binding_write(w->s, tx, w->b);
}

static int binding_delete_fn(store_tx *tx, void *ud)
{
    binding_write *w = ud;
    return sdk_binding_remove(tx, w->instance_id, w->id);
}

int sdk_binding_put(sdk_state_db *s, const sdk_binding *b)
{
    binding_write w = {.s = s, .b = b};
    return store_write(s->db, binding_put_fn, &w);
}

int sdk_binding_delete(sdk_state_db *s, const char *instance_id, const char *id)
{
    binding_write w = {.s = s, .instance_id = instance_id, .id = id};
    return store_write(s->db, binding_delete_fn, &w);
}

int sdk_binding_count(sdk_state_db *s, const char *instance_id, int *out)
{
    static const char sql[] =
        "SELECT count(*) FROM bindings WHERE instance_id = ? AND state != ?";
    store_tx *tx;
    store_stmt *q;
    int rc = store_begin(s->db, false, &tx);
    if (rc)
        return rc;
    if ((rc = store_query(tx, sql, &q, "sd", instance_id, (int)ST_GONE))) {
        store_rollback(tx);
        return rc;
    }
    rc = store_step(q);
    if (rc == STORE_ROW) {
        *out = (int)store_col_int(q, 0);
        rc = 0;
    }
    store_done(q);
    store_rollback(tx);
    return rc;
}

void sdk_binding_free(sdk_binding *b)
{
    if (b->credentials) {
        secure_wipe(b->credentials, strlen(b->credentials));
        free(b->credentials);
    }
    char **fields[] = {&b->instance_id, &b->id, &b->service_id, &b->plan_id, &b->parameters,
                       &b->bind_resource, &b->app_guid, &b->metadata, &b->extra, &b->op_id,
                       &b->op_description};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
    b->credentials = NULL;
}
