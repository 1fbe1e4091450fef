/*
 * webhook.h - POSTing committed events to the [webhook.NAME] endpoints.
 * See webhook.c.
 */
#ifndef LS_WEBHOOK_H
#define LS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "core/outbox.h"

typedef struct ls_webhooks ls_webhooks;

/*
 * Registers one sink per configured webhook (named "webhook.NAME") and
 * starts the delivery thread.  Call after ls_persist_start() and before
 * the daemon is ready.  *out stays NULL when no webhook is configured.
 * 0 or negative (logged).
 */
int ls_webhooks_start(ls_webhooks **out, struct ls_daemon *d, const ls_config *cfg);

/* Stops the thread (a POST in flight is abandoned: it is sent again after
 * a restart) and frees everything.  NULL is fine. */
void ls_webhooks_stop(ls_webhooks *w);

/* One webhook's delivery figures, for /api/v1/stats and /metrics. */
typedef struct ls_webhook_stats {
    char name[LS_WEBHOOK_NAME_MAX + 1];
    uint64_t delivered;   /* events acknowledged by a 2xx */
    uint64_t skipped;     /* events left out by its events filter */
    uint64_t failed;      /* failed attempts */
    uint64_t cursor;      /* last seq delivered or skipped */
    int last_status;      /* HTTP status of the last attempt, 0 = none */
    char last_error[160]; /* "" after a success */
} ls_webhook_stats;

/* Copies up to `max` webhooks' figures into out; returns how many. */
int ls_webhooks_stats(ls_webhooks *w, ls_webhook_stats *out, int max);

/*
 * The value of X-Lastseen-Signature: "sha256=" and the lower-case hex
 * HMAC-SHA256 of body under key `secret` (OpenSSL).  out needs
 * LS_WEBHOOK_SIG_LEN bytes (NUL included).  0, or -1 if OpenSSL fails.
 */
#define LS_WEBHOOK_SIG_LEN (7 + 64 + 1)
int ls_webhook_sign(const char *secret, size_t secret_len, const void *body, size_t body_len,
                    char out[LS_WEBHOOK_SIG_LEN]);

/*
 * The wait before retry number `failures` (1 = after the first failure):
 * 100 ms doubling up to 30 s, then "equal jitter": a uniform draw in
 * [wait/2, wait] from `rnd`.  Pure, for the tests.
 */
int64_t ls_webhook_backoff_ms(int failures, uint64_t rnd);

#endif
