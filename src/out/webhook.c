/*
 * webhook.c - delivering committed events to HTTP endpoints.
 *
 * Each [webhook.NAME] is a durable sink ("webhook.NAME", core/outbox.h): it
 * reads committed events from the outbox after its cursor, POSTs them, and
 * acknowledges them once the endpoint answered 2xx; the next commit makes
 * that its durable cursor.  So delivery is at least once and in seq order,
 * and an endpoint that is down only makes its own events wait in the
 * outbox (which keeps them past events.retention until they are
 * delivered): nothing is dropped and no other webhook is held up.
 *
 * One thread serves every webhook with libcurl's multi interface: each
 * webhook has at most one POST in flight (that is what keeps its order
 * under retries), and curl_multi_poll() waits on all their sockets, on an
 * outbox watch (an eventfd the committer writes when new events are
 * committed) and on the earliest retry.  A POST that fails (no
 * connection, a timeout, any status but 2xx) is retried with the same
 * body after a back-off of 100 ms doubling to 30 s, with jitter so that
 * many lastseen instances do not hammer a recovering endpoint in step.
 *
 * A batch is built from the outbox by reading at most SCAN_MAX events: the
 * ones the webhook's `events` filter leaves out (by the type each record
 * carries) are skipped, the others appended until `batch` are in.  A scan that finds nothing to
 * send simply acknowledges what it skipped.  The body is the event line itself (batch = 1) or a
 * JSON array of lines; with a secret, it is signed with HMAC-SHA256 (OpenSSL) in
 * X-Lastseen-Signature.
 *
 * Cost: an outbox read per READ_CHUNK events looked at, one POST per batch,
 * one acknowledgement (a short critical section) per 2xx.  Memory: one
 * body of at most `batch` events per webhook, and one read buffer.
 */
#include "out/webhook.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "core/outbox.h"
#include "core/prom.h"
#include "core/stats.h"

#define MOD "webhook"
#define SCAN_MAX 4096   /* events looked at to build one batch */
#define READ_CHUNK 1024 /* events per outbox read */
#define READ_BUF ((size_t)1 << 20)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define IDLE_POLL_MS 1000
#define BODY_MAX ((size_t)16 << 20)

typedef struct hook {
    ls_webhook_config cfg;
    char sink_name[LS_SINK_NAME_MAX];
    int sink;
    CURL *easy;
    struct curl_slist *headers; /* of the POST in flight */
    char errbuf[CURL_ERROR_SIZE];
    ls_buf body;
    uint64_t cursor;      /* last seq acknowledged: delivered or skipped */
    uint64_t first, upto; /* in flight: first and last seq of the body */
    uint64_t nevents;     /* in flight: events in the body */
    uint64_t nskipped;    /* in flight: events skipped before `upto` */
    int busy;             /* a POST is in flight */
    int failures;         /* failed attempts in a row */
    int64_t retry_at;     /* mono ms: no POST before */

    /* Figures other threads read (ls_webhooks_stats). */
    _Atomic uint64_t delivered, skipped, failed, cursor_pub; /* relaxed */
    int last_status;                                         /* under stats_mu */
    char last_error[160];                                    /* under stats_mu */
} hook;

struct ls_webhooks {
    struct ls_daemon *d;
    CURLM *multi;
    int efd; /* readable when events are committed (an outbox watch) */
    ls_outbox_rec rec[READ_CHUNK];
    char *buf;            /* READ_BUF bytes for the records */
    _Atomic int stopping; /* set by ls_webhooks_stop() (release / acquire) */
    int running;
    pthread_t thread;
    pthread_mutex_t stats_mu;
    uint64_t rng;
    int n;
    hook hooks[LS_WEBHOOKS_MAX];
};

/* ---- pure parts ------------------------------------------------------- */

int ls_webhook_sign(const char *secret, size_t secret_len, const void *body, size_t body_len,
                    char out[LS_WEBHOOK_SIG_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (secret_len > INT32_MAX ||
        !HMAC(EVP_sha256(), secret, (int)secret_len, body, body_len, mac, &n) || n != 32)
        return -1;
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < n; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 2 * n] = '\0';
    return 0;
}

int64_t ls_webhook_backoff_ms(int failures, uint64_t rnd)
{
    int64_t wait = BACKOFF_MIN_MS;
    for (int i = 1; i < failures && wait < BACKOFF_MAX_MS; i++)
        wait *= 2;
    if (wait > BACKOFF_MAX_MS) wait = BACKOFF_MAX_MS;
    int64_t half = wait / 2;
    return half + (int64_t)(rnd % (uint64_t)(wait - half + 1));
}

static uint64_t rng_next(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* ---- figures ---------------------------------------------------------- */

static void set_result(ls_webhooks *w, hook *h, int status, const char *error)
{
    pthread_mutex_lock(&w->stats_mu);
    h->last_status = status;
    snprintf(h->last_error, sizeof(h->last_error), "%s", error);
    pthread_mutex_unlock(&w->stats_mu);
}

int ls_webhooks_stats(ls_webhooks *w, ls_webhook_stats *out, int max)
{
    if (!w) return 0;
    int n = w->n < max ? w->n : max;
    pthread_mutex_lock(&w->stats_mu);
    for (int i = 0; i < n; i++) {
        hook *h = &w->hooks[i];
        ls_webhook_stats *s = &out[i];
        memcpy(s->name, h->cfg.name, sizeof(s->name));
        s->delivered = atomic_load_explicit(&h->delivered, memory_order_relaxed);
        s->skipped = atomic_load_explicit(&h->skipped, memory_order_relaxed);
        s->failed = atomic_load_explicit(&h->failed, memory_order_relaxed);
        s->cursor = atomic_load_explicit(&h->cursor_pub, memory_order_relaxed);
        s->last_status = h->last_status;
        memcpy(s->last_error, h->last_error, sizeof(s->last_error));
    }
    pthread_mutex_unlock(&w->stats_mu);
    return n;
}

/* Acknowledges everything up to `seq`: delivered or skipped. */
static void advance(ls_webhooks *w, hook *h, uint64_t seq)
{
    if (seq <= h->cursor) return;
    h->cursor = seq;
    atomic_store_explicit(&h->cursor_pub, seq, memory_order_relaxed);
    ls_outbox_ack(w->d, h->sink, seq);
}

/* ---- building a batch ------------------------------------------------- */

typedef struct scan_state {
    hook *h;
    uint64_t scanned; /* last seq looked at */
    uint64_t skipped; /* left out by the filter so far */
    int stop;         /* the batch is full */
} scan_state;

/* Takes one event into the batch or skips it; 1 once the batch is full. */
static int scan_one(scan_state *st, const ls_outbox_rec *r)
{
    hook *h = st->h;
    /* An event of unknown type is sent rather than lost. */
    if (r->type < LS_EV__COUNT && !(h->cfg.events & (INT64_C(1) << r->type))) {
        st->scanned = r->seq;
        st->skipped++;
        return 0;
    }
    if (h->cfg.batch > 1) ls_buf_putc(&h->body, h->nevents ? ',' : '[');
    if (ls_buf_append(&h->body, r->line, r->line_len) < 0)
        return 1; /* cannot happen below BODY_MAX; send what fits */
    st->scanned = r->seq;
    if (!h->nevents) h->first = r->seq;
    h->nevents++;
    h->upto = r->seq;
    h->nskipped = st->skipped;
    return (int64_t)h->nevents >= h->cfg.batch;
}

/*
 * Fills h->body with the next batch after h->cursor, up to `committed`.
 * Returns 1 if there is something to POST, 0 if the scan only skipped
 * events (acknowledged here), < 0 if the outbox could not be read.
 */
static int build(ls_webhooks *w, hook *h, uint64_t committed)
{
    scan_state st = {.h = h, .scanned = h->cursor};
    ls_buf_reset(&h->body);
    h->nevents = h->nskipped = 0;
    /* Read what the batch has room for; more each time the filter skipped some. */
    size_t want = (size_t)h->cfg.batch;
    while (!st.stop && st.scanned < committed && st.scanned - h->cursor < SCAN_MAX) {
        if (want > READ_CHUNK) want = READ_CHUNK;
        int64_t n = ls_outbox_read(w->d, st.scanned, committed, w->rec, want, w->buf, READ_BUF);
        want *= 2;
        if (n < 0) {
            ls_error(MOD, "%s: cannot read events after seq %llu from the outbox", h->sink_name,
                     (unsigned long long)st.scanned);
            return -1;
        }
        if (n == 0) st.scanned = committed; /* a gap up to the end */
        for (int64_t i = 0; i < n && !st.stop; i++)
            st.stop = scan_one(&st, &w->rec[i]);
    }
    if (h->nevents == 0) {
        if (st.skipped) atomic_fetch_add_explicit(&h->skipped, st.skipped, memory_order_relaxed);
        advance(w, h, st.scanned);
        return 0;
    }
    if (h->cfg.batch > 1) ls_buf_putc(&h->body, ']');
    return 1;
}

/* ---- one POST --------------------------------------------------------- */

static size_t discard_cb(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static int post(ls_webhooks *w, hook *h)
{
    char sig[LS_WEBHOOK_SIG_LEN + 32], name[64 + LS_WEBHOOK_NAME_MAX];
    struct curl_slist *l = NULL, *t;

    snprintf(name, sizeof(name), "X-Lastseen-Webhook: %s", h->cfg.name);
    static const char *const fixed[] = {"Content-Type: application/json",
                                        ("User-Agent: lastseen/" LS_VERSION), "Expect:"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (!(t = curl_slist_append(l, fixed[i]))) goto oom;
        l = t;
    }
    if (!(t = curl_slist_append(l, name))) goto oom;
    l = t;
    if (h->cfg.secret[0]) {
        memcpy(sig, "X-Lastseen-Signature: ", 22);
        if (ls_webhook_sign(h->cfg.secret, strlen(h->cfg.secret), h->body.p, h->body.len,
                            sig + 22) < 0) {
            ls_error(MOD, "%s: cannot compute the signature (OpenSSL)", h->sink_name);
            curl_slist_free_all(l);
            return -1;
        }
        if (!(t = curl_slist_append(l, sig))) goto oom;
        l = t;
    }
    h->headers = l;
    h->errbuf[0] = '\0';
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body.p);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body.len);
    if (curl_multi_add_handle(w->multi, h->easy) != CURLM_OK) {
        curl_slist_free_all(h->headers);
        h->headers = NULL;
        return -1;
    }
    h->busy = 1;
    return 0;
oom:
    curl_slist_free_all(l);
    return -ENOMEM;
}

/* A POST is over: acknowledge, or schedule the retry. */
static void finish(ls_webhooks *w, hook *h, CURLcode res)
{
    long code = 0;
    char why[160];

    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(w->multi, h->easy);
    curl_slist_free_all(h->headers);
    h->headers = NULL;
    h->busy = 0;

    if (res == CURLE_OK && code >= 200 && code < 300) {
        if (h->failures)
            ls_info(MOD, "%s: delivering again after %d failed attempts (HTTP %ld)", h->sink_name,
                    h->failures, code);
        h->failures = 0;
        h->retry_at = 0;
        atomic_fetch_add_explicit(&h->delivered, h->nevents, memory_order_relaxed);
        if (h->nskipped) atomic_fetch_add_explicit(&h->skipped, h->nskipped, memory_order_relaxed);
        set_result(w, h, (int)code, "");
        advance(w, h, h->upto);
        h->nevents = 0;
        return;
    }
    if (res != CURLE_OK)
        snprintf(why, sizeof(why), "%.150s", h->errbuf[0] ? h->errbuf : curl_easy_strerror(res));
    else
        snprintf(why, sizeof(why), "HTTP %ld", code);
    h->failures++;
    atomic_fetch_add_explicit(&h->failed, 1, memory_order_relaxed);
    set_result(w, h, res == CURLE_OK ? (int)code : 0, why);
    int64_t wait = ls_webhook_backoff_ms(h->failures, rng_next(&w->rng));
    h->retry_at = ls_clock_now().mono + wait;
    if (h->failures == 1)
        ls_warn(MOD,
                "%s: POST of seq %llu..%llu failed: %s; retrying with back-off until it succeeds",
                h->sink_name, (unsigned long long)h->first, (unsigned long long)h->upto, why);
    else
        ls_debug(MOD, "%s: attempt %d for seq %llu failed: %s; next in %lld ms", h->sink_name,
                 h->failures, (unsigned long long)h->first, why, (long long)wait);
    /* The body stays as it is: the retry sends the same events. */
}

/* ---- the thread ------------------------------------------------------- */

static void *webhooks_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ls-webhooks");
    ls_webhooks *w = arg;
    uint64_t v;

    while (!atomic_load_explicit(&w->stopping, memory_order_acquire)) {
        int64_t now = ls_clock_now().mono;
        uint64_t committed = ls_outbox_committed(w->d);
        int again = 0, running = 0;

        for (int i = 0; i < w->n; i++) {
            hook *h = &w->hooks[i];
            if (h->busy || now < h->retry_at) continue;
            if (h->nevents) { /* a retry: same body */
                if (post(w, h) < 0) h->retry_at = now + BACKOFF_MAX_MS;
                continue;
            }
            if (h->cursor >= committed) continue;
            int rc = build(w, h, committed);
            if (rc > 0 && post(w, h) < 0) h->retry_at = now + BACKOFF_MAX_MS;
            if (rc < 0) h->retry_at = now + BACKOFF_MAX_MS;
            if (rc == 0 && h->cursor < committed) again = 1; /* more to scan */
        }
        curl_multi_perform(w->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(w->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            hook *h = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&h);
            if (h) finish(w, h, msg->data.result);
            again = 1;
        }
        if (again) continue;

        int64_t timeout = IDLE_POLL_MS;
        for (int i = 0; i < w->n; i++) {
            hook *h = &w->hooks[i];
            if (!h->busy && h->retry_at > now && (h->nevents || h->cursor < committed) &&
                h->retry_at - now < timeout)
                timeout = h->retry_at - now;
        }
        struct curl_waitfd wfd = {.fd = w->efd, .events = CURL_WAIT_POLLIN};
        curl_multi_poll(w->multi, &wfd, 1, (int)timeout, NULL);
        if (wfd.revents) {
            ssize_t r = read(w->efd, &v, sizeof(v));
            (void)r;
        }
    }
    return NULL;
}

/* ---- start and stop --------------------------------------------------- */

static int hook_init(ls_webhooks *w, hook *h, const ls_webhook_config *cfg)
{
    h->cfg = *cfg;
    snprintf(h->sink_name, sizeof(h->sink_name), "webhook.%s", cfg->name);
    ls_buf_init(&h->body, BODY_MAX);
    if ((h->sink = ls_outbox_sink_open(w->d, h->sink_name, 0, &h->cursor)) < 0) return h->sink;
    atomic_init(&h->cursor_pub, h->cursor);
    if (!(h->easy = curl_easy_init())) return -ENOMEM;
    curl_easy_setopt(h->easy, CURLOPT_URL, cfg->url);
    curl_easy_setopt(h->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)cfg->timeout);
    curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->timeout);
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, (char *)h);
    ls_info(MOD, "%s: events %s%s%s%s, batch %lld, timeout %lld ms, delivered up to seq %llu",
            h->sink_name, cfg->events & 1 ? "A" : "-", cfg->events & 2 ? "I" : "-",
            cfg->events & 4 ? "C" : "-", cfg->events & 8 ? "D" : "-", (long long)cfg->batch,
            (long long)cfg->timeout, (unsigned long long)h->cursor);
    return 0;
}

static void free_all(ls_webhooks *w)
{
    for (int i = 0; i < w->n; i++) {
        hook *h = &w->hooks[i];
        if (h->easy) {
            if (h->busy) curl_multi_remove_handle(w->multi, h->easy);
            curl_easy_cleanup(h->easy);
        }
        curl_slist_free_all(h->headers);
        ls_buf_free(&h->body);
    }
    if (w->multi) curl_multi_cleanup(w->multi);
    ls_outbox_unwatch(w->d, w->efd);
    pthread_mutex_destroy(&w->stats_mu);
    free(w->buf);
    free(w);
}

static void stats_json_cb(void *ud, ls_buf *b, uint64_t committed)
{
    ls_webhook_stats ws[LS_WEBHOOKS_MAX];
    int nw = ls_webhooks_stats(ud, ws, LS_WEBHOOKS_MAX);
    ls_buf_putc(b, '[');
    for (int i = 0; i < nw; i++) {
        ls_buf_append(b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        ls_buf_json_str(b, ws[i].name, strlen(ws[i].name));
        ls_buf_printf(
            b,
            ",\"delivered\":%llu,\"skipped\":%llu,\"failedAttempts\":%llu,\"lastStatus\":%d,"
            "\"lastError\":",
            (unsigned long long)ws[i].delivered, (unsigned long long)ws[i].skipped,
            (unsigned long long)ws[i].failed, ws[i].last_status);
        if (ws[i].last_error[0])
            ls_buf_json_str(b, ws[i].last_error, strlen(ws[i].last_error));
        else
            ls_buf_append(b, "null", 4);
        ls_buf_printf(
            b, ",\"cursor\":%llu,\"lag\":%llu}", (unsigned long long)ws[i].cursor,
            (unsigned long long)(committed > ws[i].cursor ? committed - ws[i].cursor : 0));
    }
    ls_buf_putc(b, ']');
}

static void stats_prom_cb(void *ud, ls_buf *b, uint64_t committed)
{
    ls_webhook_stats ws[LS_WEBHOOKS_MAX];
    int n = ls_webhooks_stats(ud, ws, LS_WEBHOOKS_MAX);
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"lastseen_webhook_delivered_events_total", "counter",
         "Events a webhook endpoint accepted (2xx)."},
        {"lastseen_webhook_skipped_events_total", "counter",
         "Events left out by a webhook's events filter (acknowledged without sending)."},
        {"lastseen_webhook_failed_attempts_total", "counter",
         "Webhook POSTs that failed: no connection, timeout or a non-2xx status."},
        {"lastseen_webhook_last_status", "gauge",
         "HTTP status of a webhook's last attempt; 0 = no response."},
        {"lastseen_webhook_lag_events", "gauge", "Committed events a webhook has yet to deliver."},
    };
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        ls_prom_family(b, fam[f].name, fam[f].type, fam[f].help);
        for (int i = 0; i < n; i++) {
            const char *l[] = {"webhook", ws[i].name, NULL};
            uint64_t v = f == 0   ? ws[i].delivered
                         : f == 1 ? ws[i].skipped
                         : f == 2 ? ws[i].failed
                         : f == 3 ? (uint64_t)ws[i].last_status
                                  : (committed > ws[i].cursor ? committed - ws[i].cursor : 0);
            ls_prom_u64(b, fam[f].name, l, v);
        }
    }
}

/* The webhooks' figures in /api/v1/stats and /metrics (core/stats.h); w may
 * be NULL (no webhook configured: an empty list). */
static int register_stats(struct ls_daemon *d, ls_webhooks *w)
{
    ls_stats_port port = {.key = "webhooks", .json = stats_json_cb, .prom = stats_prom_cb, .ud = w};
    return ls_stats_register(d, &port);
}

int ls_webhooks_start(ls_webhooks **out, struct ls_daemon *d, const ls_config *cfg)
{
    int rc;
    *out = NULL;
    if (cfg->nwebhooks == 0) return register_stats(d, NULL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ls_error(MOD, "libcurl cannot be initialised");
        return -EIO;
    }
    ls_webhooks *w = calloc(1, sizeof(*w));
    if (!w) return -ENOMEM;
    w->d = d;
    w->efd = ls_outbox_watch(d);
    w->buf = malloc(READ_BUF);
    pthread_mutex_init(&w->stats_mu, NULL);
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || !w->rng)
        w->rng = (uint64_t)ls_clock_mono_ns() | 1;
    if (w->efd < 0 || !w->buf || !(w->multi = curl_multi_init())) {
        ls_error(MOD, "cannot set up: %s",
                 w->efd < 0 ? ls_strerror(w->efd)
                 : !w->buf  ? "out of memory"
                            : "curl_multi_init failed");
        free_all(w);
        return -ENOMEM;
    }
    for (int i = 0; i < cfg->nwebhooks; i++) {
        w->n = i + 1;
        if ((rc = hook_init(w, &w->hooks[i], &cfg->webhooks[i])) < 0) {
            ls_error(MOD, "webhook.%s cannot start: %s", cfg->webhooks[i].name, ls_strerror(rc));
            free_all(w);
            return rc;
        }
    }
    if ((rc = -pthread_create(&w->thread, NULL, webhooks_main, w)) < 0) {
        ls_error(MOD, "cannot start the delivery thread: %s", ls_strerror(rc));
        free_all(w);
        return rc;
    }
    w->running = 1;
    *out = w;
    return register_stats(d, w);
}

void ls_webhooks_stop(ls_webhooks *w)
{
    if (!w) return;
    if (w->running) {
        atomic_store_explicit(&w->stopping, 1, memory_order_release);
        curl_multi_wakeup(w->multi);
        pthread_join(w->thread, NULL);
    }
    free_all(w);
}
