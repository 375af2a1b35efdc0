/* libosb: checking the signature of the platform's support webhook deliveries. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <osb/osb.h>

#include "base/base.h"

osb_webhook_verdict osb_webhook_verify(const char *secret, const char *signature, const void *body,
                                       size_t n, int64_t now, int64_t tolerance_s, int64_t *t)
{
    if (t)
        *t = 0;
    if (!secret || !*secret || !signature || (!body && n))
        return OSB_WEBHOOK_MALFORMED;
    /* t=<digits>,v1=<64 hex> */
    if (strncmp(signature, "t=", 2) != 0)
        return OSB_WEBHOOK_MALFORMED;
    const char *p = signature + 2, *comma = strchr(p, ',');
    if (!comma || comma == p || comma - p > 18 || strncmp(comma, ",v1=", 4) != 0)
        return OSB_WEBHOOK_MALFORMED;
    int64_t ts = 0;
    for (const char *c = p; c < comma; c++) {
        if (*c < '0' || *c > '9')
            return OSB_WEBHOOK_MALFORMED;
        ts = ts * 10 + (*c - '0');
    }
    const char *hex = comma + 4;
    if (strlen(hex) != 64)
        return OSB_WEBHOOK_MALFORMED;
    unsigned char got[32];
    for (int i = 0; i < 32; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return OSB_WEBHOOK_MALFORMED;
        got[i] = (unsigned char)(hi << 4 | lo);
    }
    /* The MAC is checked before the time, so that a stale verdict says the signature held. */
    char prefix[24];
    int pn = snprintf(prefix, sizeof prefix, "%lld.", (long long)ts);
    size_t total = (size_t)pn + n;
    unsigned char *msg = malloc(total ? total : 1);
    if (!msg)
        return OSB_WEBHOOK_MALFORMED;
    memcpy(msg, prefix, (size_t)pn);
    if (n)
        memcpy(msg + pn, body, n);
    unsigned char want[32];
    hmac_sha256(secret, strlen(secret), msg, total, want);
    free(msg);
    bool same = ct_equal(got, want, sizeof want);
    secure_wipe(want, sizeof want);
    if (!same)
        return OSB_WEBHOOK_BAD_SIGNATURE;
    if (t)
        *t = ts;
    if (now <= 0)
        now = (int64_t)time(NULL);
    if (tolerance_s <= 0)
        tolerance_s = OSB_WEBHOOK_TOLERANCE_S;
    if (ts > now + tolerance_s || ts < now - tolerance_s)
        return OSB_WEBHOOK_STALE;
    return OSB_WEBHOOK_OK;
}
