/*
 * publish.c - the forwarder of cluster mode: this node's input items
 * become messages of LS_IN, and whoever waits for them (an HTTP request,
 * a producer's `done`) learns when the stream stored them.
 *
 * Each item is one JetStream asynchronous publish to ls.in.<p>.<token>
 * (token.h, msg.h) with a MaxWait: cnats calls the acknowledgement
 * handler for every message, with the stream's ack or an error, at the
 * latest when the wait is over (without MaxWait a message whose ack was
 * lost in a leader change would never be settled).  The handler runs on
 * the one thread cnats keeps for acknowledgements; it must be quick.
 *
 * Tickets.  Items published for a waiter share one ticket (its callback,
 * the items left, the first failure); each of their messages is found
 * again in the handler through a table keyed by the natsMsg pointer (cnats
 * gives the handler the message it was given, and nothing else of ours).
 * The entry goes in before the publish, since the ack can come before
 * js_PublishMsgAsync returns.  Items nobody waits for (stored == NULL)
 * have no entry: the handler only counts them.  Under `mu`: the table,
 * `closing`, `in_cb`.
 *
 * Failures are never silent: every one is counted (timeouts apart), the
 * waiter gets it (an HTTP 503), and a warning is logged at most every
 * LOG_EVERY_MS with the count since the last.
 *
 * Cost per item: a token (a copy, base64url for unsafe ids), a subject,
 * a natsMsg and its header for anything but a plain activity, cnats's own
 * bookkeeping (a reply inbox, a timeout entry); with a waiter, one table
 * entry and two short holds of `mu`.
 */
#include "cluster/publish.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "cluster/msg.h"
#include "cluster/token.h"

#define TABLE_BUCKETS 4096
#define LOG_EVERY_MS 10000

typedef struct ticket {
    ls_ingest_stored_cb cb;
    void *ud;
    _Atomic size_t left; /* items not settled */
    _Atomic int rc;      /* the first failure */
} ticket;

typedef struct entry {
    natsMsg *msg;
    ticket *t;
    int64_t sent_ns;
    struct entry *next;
} entry;

static const uint64_t lat_le_ns[] = {250000,    500000,     1000000,   2000000,   5000000,
                                     10000000,  20000000,   50000000,  100000000, 200000000,
                                     500000000, 1000000000, 2000000000};
static const char *const lat_le_text[] = {"0.00025", "0.0005", "0.001", "0.002", "0.005",
                                          "0.01",    "0.02",   "0.05",  "0.1",   "0.2",
                                          "0.5",     "1",      "2"};

struct ls_publisher {
    ls_nats *nats;
    jsCtx *js;
    unsigned partitions;
    int64_t wait_ms;
    pthread_mutex_t mu;
    entry *table[TABLE_BUCKETS];
    int closing;
    int in_cb; /* stored callbacks being made outside mu */
    _Atomic uint64_t published, stored, duplicates, timeouts, failed, inflight;
    _Atomic uint64_t failed_logged; /* failures + timeouts at the last warning */
    _Atomic int64_t logged_at;      /* mono ms of the last warning */
    ls_histogram latency;
};

static size_t bucket(const natsMsg *m)
{
    uintptr_t x = (uintptr_t)m;
    return (size_t)((x >> 4) ^ (x >> 16)) % TABLE_BUCKETS;
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Logs failures, at most every LOG_EVERY_MS. */
static void warn_failures(ls_publisher *p, const char *why)
{
    int64_t now = ls_clock_now().mono;
    int64_t at = atomic_load_explicit(&p->logged_at, memory_order_relaxed);
    if (now - at < LOG_EVERY_MS ||
        !atomic_compare_exchange_strong_explicit(&p->logged_at, &at, now, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    uint64_t total = atomic_load_explicit(&p->failed, memory_order_relaxed) +
                     atomic_load_explicit(&p->timeouts, memory_order_relaxed);
    uint64_t before = atomic_exchange_explicit(&p->failed_logged, total, memory_order_relaxed);
    ls_warn("cluster", "the input stream did not store %llu message(s) since the last report: %s",
            (unsigned long long)(total - before), why);
}

/* One item of ticket t is settled with rc; the last one calls back. */
static void ticket_settle(ticket *t, int rc)
{
    if (rc < 0) {
        int zero = 0;
        atomic_compare_exchange_strong_explicit(&t->rc, &zero, rc, memory_order_acq_rel,
                                                memory_order_acquire);
    }
    if (atomic_fetch_sub_explicit(&t->left, 1, memory_order_acq_rel) != 1) return;
    if (t->cb) t->cb(t->ud, atomic_load_explicit(&t->rc, memory_order_acquire));
    free(t);
}

/* Removes m's entry (NULL if it has none); counts a callback to be made. */
static entry *take(ls_publisher *p, natsMsg *m)
{
    pthread_mutex_lock(&p->mu);
    entry **pp = &p->table[bucket(m)], *e;
    while ((e = *pp) && e->msg != m)
        pp = &e->next;
    if (e) {
        *pp = e->next;
        p->in_cb++;
    }
    pthread_mutex_unlock(&p->mu);
    return e;
}

static void callback_done(ls_publisher *p)
{
    pthread_mutex_lock(&p->mu);
    p->in_cb--;
    pthread_mutex_unlock(&p->mu);
}

static void ack_cb(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    ls_publisher *p = closure;
    (void)js;
    int rc = 0;
    if (pa) {
        count(&p->stored, 1);
        if (pa->Duplicate) count(&p->duplicates, 1);
    } else {
        natsStatus s = pae ? pae->Err : NATS_ERR;
        rc = s == NATS_TIMEOUT ? -ETIMEDOUT : -EIO;
        count(s == NATS_TIMEOUT ? &p->timeouts : &p->failed, 1);
        warn_failures(p, pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(s));
    }
    atomic_fetch_sub_explicit(&p->inflight, 1, memory_order_relaxed);
    entry *e = take(p, msg);
    natsMsg_Destroy(msg);
    if (!e) return;
    if (rc == 0) ls_histogram_observe(&p->latency, (uint64_t)(ls_clock_mono_ns() - e->sent_ns));
    ticket_settle(e->t, rc);
    free(e);
    callback_done(p);
}

int ls_publisher_open(ls_publisher **out, ls_nats *n, unsigned partitions, int64_t wait_ms)
{
    *out = NULL;
    ls_publisher *p = calloc(1, sizeof(*p));
    if (!p) return -ENOMEM;
    p->nats = n;
    p->partitions = partitions;
    p->wait_ms = wait_ms;
    p->latency.n = (int)(sizeof(lat_le_ns) / sizeof(lat_le_ns[0]));
    p->latency.le_ns = lat_le_ns;
    p->latency.le_text = lat_le_text;
    pthread_mutex_init(&p->mu, NULL);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = wait_ms;
    jo.PublishAsync.AckHandler = ack_cb;
    jo.PublishAsync.AckHandlerClosure = p;
    jo.PublishAsync.MaxPending = 65536;
    jo.PublishAsync.StallWait = wait_ms;
    if (natsConnection_JetStream(&p->js, ls_nats_conn(n), &jo) != NATS_OK) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return -EIO;
    }
    *out = p;
    return 0;
}

/* Publishes one item; 0, or < 0 when it was not sent (t's entry removed). */
static int publish_one(ls_publisher *p, const ls_ingest_item *it, ticket *t)
{
    char tok[LS_TOKEN_BUF], subj[LS_MSG_SUBJECT_BUF], hdr[LS_MSG_HEADER_BUF];
    size_t tn = ls_token_encode(it->id, it->len, tok);
    ls_msg_subject(subj, ls_token_partition(tok, tn, p->partitions), tok, tn);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subj, NULL, NULL, 0);
    if (s == NATS_OK && ls_msg_header(hdr, it->kind, it->ts))
        s = natsMsgHeader_Set(m, LS_MSG_HEADER, hdr);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return -ENOMEM;
    }
    entry *e = NULL;
    if (t) {
        e = malloc(sizeof(*e));
        if (!e) {
            natsMsg_Destroy(m);
            return -ENOMEM;
        }
        *e = (entry){.msg = m, .t = t, .sent_ns = ls_clock_mono_ns()};
        pthread_mutex_lock(&p->mu);
        e->next = p->table[bucket(m)];
        p->table[bucket(m)] = e;
        pthread_mutex_unlock(&p->mu);
    }
    count(&p->inflight, 1);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = p->wait_ms;
    natsMsg *sent = m;
    s = js_PublishMsgAsync(p->js, &m, &po);
    if (s == NATS_OK) {
        count(&p->published, 1);
        return 0;
    }
    /* Not taken (m is still ours): no ack will come for it. */
    atomic_fetch_sub_explicit(&p->inflight, 1, memory_order_relaxed);
    count(&p->failed, 1);
    warn_failures(p, natsStatus_GetText(s));
    if (e) {
        entry *got = take(p, sent);
        free(got);
        if (got) callback_done(p);
    }
    natsMsg_Destroy(m);
    return s == NATS_TIMEOUT ? -ETIMEDOUT : -EIO;
}

int ls_publisher_forward(void *ud, const ls_ingest_item *items, size_t n,
                         ls_ingest_stored_cb stored, void *stored_ud)
{
    ls_publisher *p = ud;
    pthread_mutex_lock(&p->mu);
    int closing = p->closing;
    pthread_mutex_unlock(&p->mu);
    if (closing) return -ESHUTDOWN;
    ticket *t = NULL;
    if (stored) {
        t = malloc(sizeof(*t));
        if (!t) return -ENOMEM;
        t->cb = stored;
        t->ud = stored_ud;
        atomic_init(&t->left, n + 1); /* + 1: ours, until every item is out */
        atomic_init(&t->rc, 0);
    }
    for (size_t i = 0; i < n; i++) {
        int rc = publish_one(p, &items[i], t);
        if (t && rc < 0) ticket_settle(t, rc);
    }
    if (t) ticket_settle(t, 0);
    return 0;
}

static void fail_all(ls_publisher *p)
{
    for (;;) {
        entry *e = NULL;
        pthread_mutex_lock(&p->mu);
        for (size_t b = 0; b < TABLE_BUCKETS && !e; b++)
            if ((e = p->table[b])) {
                p->table[b] = e->next;
                p->in_cb++;
            }
        pthread_mutex_unlock(&p->mu);
        if (!e) return;
        ticket_settle(e->t, -ESHUTDOWN);
        free(e);
        callback_done(p);
    }
}

static int table_empty(ls_publisher *p)
{
    for (size_t b = 0; b < TABLE_BUCKETS; b++)
        if (p->table[b]) return 0;
    return 1;
}

void ls_publisher_quiesce(ls_publisher *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->closing = 1;
    pthread_mutex_unlock(&p->mu);
    const struct timespec step = {0, 2000000};
    int64_t until = ls_clock_now().mono + p->wait_ms + 500;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int idle = table_empty(p) && p->in_cb == 0;
        pthread_mutex_unlock(&p->mu);
        if (idle || ls_clock_now().mono >= until) break;
        nanosleep(&step, NULL);
    }
    fail_all(p);
    for (;;) { /* a handler may still be calling back */
        pthread_mutex_lock(&p->mu);
        int busy = p->in_cb;
        pthread_mutex_unlock(&p->mu);
        if (!busy) break;
        nanosleep(&step, NULL);
    }
}

void ls_publisher_close(ls_publisher *p)
{
    if (!p) return;
    ls_publisher_quiesce(p);
    jsCtx_Destroy(p->js);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void ls_publisher_stats_get(ls_publisher *p, ls_publisher_stats *out)
{
    out->published = atomic_load_explicit(&p->published, memory_order_relaxed);
    out->stored = atomic_load_explicit(&p->stored, memory_order_relaxed);
    out->duplicates = atomic_load_explicit(&p->duplicates, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&p->timeouts, memory_order_relaxed);
    out->failed = atomic_load_explicit(&p->failed, memory_order_relaxed);
    out->inflight = atomic_load_explicit(&p->inflight, memory_order_relaxed);
}

const ls_histogram *ls_publisher_latency(ls_publisher *p)
{
    return &p->latency;
}
