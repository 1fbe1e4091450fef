/*
 * consume.c - one consumer of LS_IN per owned partition, applied into this
 * node's shards, in stream order.
 *
 * A consumer of partition p reads ls.in.<p>.> from the first message
 * stored at or after a start time (a takeover rebuilds the partition
 * from the input stream alone: node.c picks the time), in stream order,
 * headers only (the payload is the device's, never read).  Each message
 * becomes one item of the one producer this file keeps (core/ingest.h),
 * applied at the message's own time: its `Ls` header's ts, else the
 * stream's timestamp, never this node's clock, so that every node
 * derives the same times from the same stream.
 *
 * Ordered, by hand.  The consumer is an ephemeral push consumer (R1, in
 * memory, no acks, flow control, idle heartbeats) and this file keeps the
 * order promise itself: each message must carry the next consumer
 * sequence, and the partition remembers the stream sequence of the last
 * message it applied.  A gap, missed heartbeats or any other error cnats
 * reports about the subscription (its server died, it fell behind) marks
 * the partition for a restart, which the node thread makes: a new
 * consumer from the next stream sequence (or from the start time if
 * nothing was applied yet); the old one's late messages are told apart by
 * a generation number.  cnats's own ordered consumers are not used: in
 * cnats 3.4.1 one started by time cannot be recreated (the recreation
 * keeps OptStartTime beside DeliverByStartSequence, which the server
 * refuses, again and again), and one that has delivered nothing restarts
 * from the stream's first message.
 *
 * Sources.  Items are tagged with the gated source "cluster" (node.c
 * takes it down while the stream cannot be heard), or, while their
 * partition is catching up, "cluster-replay", which is down while any
 * partition catches up: a device replayed from the past is not declared
 * inactive before the replay has reached the present; once it has, it
 * gets a full timeout from then unless it is heard meanwhile.  A
 * partition has caught up when a message stored after its consumer
 * started arrives, or when the servers say nothing is pending.
 *
 * Threads and locks.  cnats delivers every partition's messages on its
 * global delivery thread (nats.c); the producer belongs to whoever holds
 * `mu`: that thread for each message, ls_consumers_stop() while it syncs.
 * `mu` guards the partitions' states and the producer; it is held while
 * a message is applied, which may wait for a free batch (backpressure: the
 * servers then hold the backlog, flow control on).  Subscriptions are
 * created and destroyed on the node thread only (ls_consumers_start(),
 * ls_consumers_check()), so that thread may ask the servers about one
 * without holding `mu`.
 *
 * The seam for checkpoints: each partition keeps the stream sequence of
 * its last message handed to the shards (applied_seq); with the
 * producer's applied watermark it is what a checkpoint will record.
 */
#include "cluster/consume.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "cluster/msg.h"
#include "cluster/token.h"

#define CHECK_EVERY_MS 1000
#define DOOMED_MAX 1024

typedef struct sub_ctx {
    ls_consumers *c;
    unsigned p;
    uint64_t gen;
} sub_ctx;

typedef struct part {
    uint64_t gen; /* bumped by every start, restart and stop */
    int active;   /* started, not stopped */
    int restart;  /* its consumer must be made again (a gap, an error) */
    natsSubscription *sub;
    int catching_up;
    int64_t from_ms;    /* wall ms it started from, while nothing is applied */
    int64_t live_ns;    /* wall ns: a message stored at or after it is live */
    int64_t checked_at; /* mono ms: the servers last asked whether anything is pending */
    uint64_t dseq;      /* the consumer sequence of the last message taken */
    uint64_t applied_seq, applied;
    uint64_t restarts;
} part;

struct ls_consumers {
    ls_consumers_opts o;
    ls_ingest_producer *prod;
    pthread_mutex_t mu;
    part *part;
    unsigned consuming, catching_up;
    natsSubscription *doomed[DOOMED_MAX]; /* stopped, to destroy on the node thread */
    unsigned ndoomed;
    _Atomic uint64_t applied;
    _Atomic uint64_t rejected[LS_CONSUME__REJECTS];
    _Atomic int64_t last_stall;
    _Atomic int warned_partition;
    _Atomic uint64_t restarts;
    _Atomic int aborted; /* ls_consumers_abort() */
};

static const char *const reject_names[LS_CONSUME__REJECTS] = {"subject", "token", "partition",
                                                              "header"};

const char *ls_consume_reject_name(ls_consume_reject r)
{
    return (unsigned)r < LS_CONSUME__REJECTS ? reject_names[r] : "?";
}

static void reject(ls_consumers *c, ls_consume_reject why)
{
    atomic_fetch_add_explicit(&c->rejected[why], 1, memory_order_relaxed);
}

static void caught_up(ls_consumers *c, part *pt)
{
    pt->catching_up = 0;
    c->catching_up--;
}

/* Why the message cannot be applied (a ls_consume_reject), or -1 when it
 * can: its device into id/len, what it says into *it. */
static int parse(ls_consumers *c, unsigned p, natsMsg *msg, char *id, size_t *len, ls_msg_item *it)
{
    const char *subj = natsMsg_GetSubject(msg), *tok, *hv = NULL;
    unsigned mp;
    size_t tn;
    if (!subj || ls_msg_parse_subject(subj, strlen(subj), c->o.partitions, &mp, &tok, &tn) < 0 ||
        mp != p)
        return LS_CONSUME_BAD_SUBJECT;
    if (ls_token_decode(tok, tn, id, len) < 0) return LS_CONSUME_BAD_TOKEN;
    if (ls_token_partition(tok, tn, c->o.partitions) != p) {
        if (!atomic_exchange_explicit(&c->warned_partition, 1, memory_order_relaxed))
            ls_error("cluster",
                     "%s is in partition %u, but with cluster.partitions = %u its device belongs "
                     "to partition %u: the servers' dev.* mapping must use the same partition "
                     "count (refused; counted)",
                     subj, p, c->o.partitions, ls_token_partition(tok, tn, c->o.partitions));
        return LS_CONSUME_BAD_PARTITION;
    }
    if (natsMsgHeader_Get(msg, LS_MSG_HEADER, &hv) != NATS_OK) hv = NULL;
    if (ls_msg_parse_header(hv, hv ? strlen(hv) : 0, it) < 0) return LS_CONSUME_BAD_HEADER;
    return -1;
}

/*
 * Under mu: one message of partition p's current consumer.  Returns 1
 * when p caught up with it, 0, or -1 when the partition must restart its
 * consumer (a gap in the consumer's sequence).
 */
static int apply(ls_consumers *c, unsigned p, part *pt, natsSubscription *sub, natsMsg *msg)
{
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        reject(c, LS_CONSUME_BAD_SUBJECT); /* not a JetStream message: cannot happen */
        return 0;
    }
    if (meta->Sequence.Consumer != pt->dseq + 1) { /* a gap: start again after the last */
        pt->restart = 1;
        pt->gen++; /* what this consumer still delivers is dropped */
        jsMsgMetaData_Destroy(meta);
        return -1;
    }
    pt->dseq = meta->Sequence.Consumer;
    char id[LS_ID_BUF];
    size_t len = 0;
    ls_msg_item it;
    int why = parse(c, p, msg, id, &len, &it);
    if (why >= 0) {
        reject(c, (ls_consume_reject)why);
    } else {
        unsigned src = pt->catching_up ? c->o.src_replay : c->o.src_live;
        if (it.kind)
            ls_ingest_producer_op(c->prod, it.kind, id, len, src);
        else
            ls_ingest_producer_add(c->prod, id, len, it.ts ? it.ts : meta->Timestamp / 1000000,
                                   src);
        pt->applied++;
        atomic_fetch_add_explicit(&c->applied, 1, memory_order_relaxed);
    }
    pt->applied_seq = meta->Sequence.Stream; /* taken, applied or refused */
    int caught = 0;
    if (pt->catching_up && (meta->NumPending == 0 || meta->Timestamp >= pt->live_ns)) {
        caught_up(c, pt);
        caught = 1;
    }
    jsMsgMetaData_Destroy(meta);
    int pending = 0;
    if (natsSubscription_GetPending(sub, &pending, NULL) != NATS_OK || pending == 0)
        ls_ingest_producer_flush(c->prod);
    return caught;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    sub_ctx *x = closure;
    ls_consumers *c = x->c;
    (void)nc;
    int r = 0;
    pthread_mutex_lock(&c->mu);
    part *pt = &c->part[x->p];
    if (pt->active && pt->gen == x->gen) r = apply(c, x->p, pt, sub, msg);
    pthread_mutex_unlock(&c->mu);
    natsMsg_Destroy(msg);
    if (r && c->o.caught_up) c->o.caught_up(c->o.ud); /* caught up, or a restart to make */
}

/* A shard worker applied a batch of ours. */
static void applied_cb(void *ud, const ls_ingest_result *r)
{
    ls_consumers *c = ud;
    if (c->o.counters) ls_ingest_accepted(c->o.counters, r->applied);
}

static void ctx_free(void *closure)
{
    free(closure);
}

int ls_consumers_open(ls_consumers **out, const ls_consumers_opts *o)
{
    *out = NULL;
    ls_consumers *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    c->o = *o;
    c->part = calloc(o->partitions, sizeof(*c->part));
    if (!c->part || ls_ingest_producer_open(o->in, &c->prod, applied_cb, c) < 0) {
        free(c->part);
        free(c);
        return -ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

/* Did the servers say p's consumer has nothing pending and delivered nothing? */
static int nothing_pending(ls_consumers *c, natsSubscription *sub)
{
    jsConsumerInfo *ci = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = c->o.wait_ms;
    jsErrCode jerr = 0;
    if (natsSubscription_GetConsumerInfo(&ci, sub, &jo, &jerr) != NATS_OK) return 0;
    int none = ci->NumPending == 0 && ci->NumAckPending == 0 && ci->Delivered.Consumer == 0;
    jsConsumerInfo_Destroy(ci);
    return none;
}

/*
 * The node thread: makes partition p's consumer, from the stream sequence
 * after its last applied message, else from its start time; installs it
 * unless p was stopped or restarted meanwhile.  A failure leaves p marked
 * for a restart (ls_consumers_check() tries again).
 */
static int subscribe(ls_consumers *c, unsigned p)
{
    if (atomic_load_explicit(&c->aborted, memory_order_acquire)) return -ESHUTDOWN;
    sub_ctx *x = malloc(sizeof(*x));
    pthread_mutex_lock(&c->mu);
    part *pt = &c->part[p];
    if (!pt->active || !x) {
        if (pt->active) pt->restart = 1;
        pthread_mutex_unlock(&c->mu);
        free(x);
        return x ? 0 : -ENOMEM;
    }
    if (pt->sub) { /* a restart: the old one goes */
        if (c->ndoomed < DOOMED_MAX) c->doomed[c->ndoomed++] = pt->sub;
        pt->sub = NULL;
    }
    pt->gen++;
    pt->restart = 0;
    pt->dseq = 0;
    uint64_t from_seq = pt->applied_seq ? pt->applied_seq + 1 : 0;
    int64_t from_ms = pt->from_ms;
    int fresh = pt->catching_up && !pt->applied_seq;
    *x = (sub_ctx){.c = c, .p = p, .gen = pt->gen};
    pthread_mutex_unlock(&c->mu);

    char subj[64];
    snprintf(subj, sizeof(subj), LS_MSG_PREFIX "%u.>", p);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = c->o.wait_ms;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = LS_NATS_STREAM_IN;
    so.Config.AckPolicy = js_AckNone;
    so.Config.FlowControl = true;
    so.Config.Heartbeat = c->o.heartbeat_ms * 1000000;
    so.Config.HeadersOnly = true;
    so.Config.MemoryStorage = true;
    so.Config.Replicas = 1;
    so.Config.InactiveThreshold = (int64_t)5000 * 1000000;
    if (from_seq) {
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = from_seq;
    } else {
        so.Config.DeliverPolicy = js_DeliverByStartTime;
        so.Config.OptStartTime = from_ms * 1000000;
    }
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Subscribe(&sub, ls_nats_js(c->o.nats), subj, on_msg, x, &jo, &so, &jerr);
    if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(sub, ctx_free, x);
    int empty = s == NATS_OK && fresh && !atomic_load_explicit(&c->aborted, memory_order_acquire) &&
                nothing_pending(c, sub);

    pthread_mutex_lock(&c->mu);
    int current = pt->gen == x->gen && pt->active;
    if (current && s == NATS_OK) {
        pt->sub = sub;
        sub = NULL;
        if (empty && pt->catching_up) caught_up(c, pt);
    } else if (current) {
        pt->restart = 1;
    }
    pthread_mutex_unlock(&c->mu);
    if (s != NATS_OK) {
        ls_warn("cluster", "partition %u: cannot make its consumer (tried again): %s", p,
                ls_nats_error(s));
        natsSubscription_Destroy(sub);
        if (!sub) free(x);
        return s == NATS_TIMEOUT ? -ETIMEDOUT : -EIO;
    }
    natsSubscription_Destroy(sub); /* stopped meanwhile: NULL otherwise */
    if (empty && c->o.caught_up) c->o.caught_up(c->o.ud);
    return 0;
}

int ls_consumers_start(ls_consumers *c, unsigned p, int64_t from_wall_ms)
{
    pthread_mutex_lock(&c->mu);
    part *pt = &c->part[p];
    if (pt->active) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    pt->active = 1;
    pt->catching_up = 1;
    c->catching_up++;
    c->consuming++;
    pt->from_ms = from_wall_ms;
    pt->live_ns = ls_clock_now().wall * 1000000;
    pt->checked_at = ls_clock_now().mono;
    pt->applied = 0;
    pt->applied_seq = 0;
    pthread_mutex_unlock(&c->mu);
    return subscribe(c, p);
}

void ls_consumers_stop(ls_consumers *c, unsigned p)
{
    pthread_mutex_lock(&c->mu);
    part *pt = &c->part[p];
    pt->gen++;
    if (pt->active) {
        pt->active = 0;
        c->consuming--;
        if (pt->catching_up) caught_up(c, pt);
        if (pt->sub) {
            if (c->ndoomed < DOOMED_MAX)
                c->doomed[c->ndoomed++] = pt->sub;
            else
                natsSubscription_Destroy(pt->sub);
            pt->sub = NULL;
        }
        ls_ingest_producer_sync(c->prod); /* p's items are applied before the caller goes on */
    }
    pthread_mutex_unlock(&c->mu);
}

void ls_consumers_check(ls_consumers *c)
{
    natsSubscription *doomed[DOOMED_MAX], *ask[64];
    unsigned nd, nask = 0, which[64];
    uint64_t gens[64];
    int64_t now = ls_clock_now().mono;
    for (unsigned p = 0; p < c->o.partitions; p++) { /* restarts first */
        pthread_mutex_lock(&c->mu);
        int due = c->part[p].active && c->part[p].restart;
        if (due) c->part[p].restarts++;
        pthread_mutex_unlock(&c->mu);
        if (due) {
            atomic_fetch_add_explicit(&c->restarts, 1, memory_order_relaxed);
            subscribe(c, p);
        }
    }
    pthread_mutex_lock(&c->mu);
    nd = c->ndoomed;
    memcpy(doomed, c->doomed, nd * sizeof(doomed[0]));
    c->ndoomed = 0;
    for (unsigned p = 0; p < c->o.partitions && nask < 64; p++) {
        part *pt = &c->part[p];
        if (pt->active && pt->catching_up && pt->sub && pt->applied == 0 &&
            now - pt->checked_at >= CHECK_EVERY_MS) {
            pt->checked_at = now;
            which[nask] = p;
            gens[nask] = pt->gen;
            ask[nask++] = pt->sub;
        }
    }
    pthread_mutex_unlock(&c->mu);
    for (unsigned i = 0; i < nd; i++)
        natsSubscription_Destroy(doomed[i]);
    int any = 0;
    for (unsigned i = 0; i < nask; i++) {
        if (atomic_load_explicit(&c->aborted, memory_order_acquire)) break;
        if (!nothing_pending(c, ask[i])) continue; /* this thread alone destroys: ask[i] lives */
        pthread_mutex_lock(&c->mu);
        part *pt = &c->part[which[i]];
        if (pt->gen == gens[i] && pt->catching_up) {
            caught_up(c, pt);
            any = 1;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (any && c->o.caught_up) c->o.caught_up(c->o.ud);
}

void ls_consumers_stalled(ls_consumers *c, natsSubscription *sub)
{
    int ours = 0;
    pthread_mutex_lock(&c->mu);
    for (unsigned p = 0; p < c->o.partitions && !ours; p++)
        if (c->part[p].sub == sub) {
            ours = 1;
            c->part[p].restart = 1;
        }
    pthread_mutex_unlock(&c->mu);
    if (ours) atomic_store_explicit(&c->last_stall, ls_clock_now().mono, memory_order_relaxed);
}

unsigned ls_consumers_catching_up(ls_consumers *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned n = c->catching_up;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void ls_consumers_stats_get(ls_consumers *c, ls_consumers_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->applied = atomic_load_explicit(&c->applied, memory_order_relaxed);
    for (int i = 0; i < LS_CONSUME__REJECTS; i++)
        out->rejected[i] = atomic_load_explicit(&c->rejected[i], memory_order_relaxed);
    out->last_stall_mono = atomic_load_explicit(&c->last_stall, memory_order_relaxed);
    out->restarts = atomic_load_explicit(&c->restarts, memory_order_relaxed);
    pthread_mutex_lock(&c->mu);
    out->consuming = c->consuming;
    out->catching_up = c->catching_up;
    pthread_mutex_unlock(&c->mu);
}

void ls_consumers_partition(ls_consumers *c, unsigned p, ls_consume_part *out)
{
    pthread_mutex_lock(&c->mu);
    const part *pt = &c->part[p];
    *out = (ls_consume_part){.consuming = pt->active && pt->sub,
                             .catching_up = pt->catching_up,
                             .applied_seq = pt->applied_seq,
                             .applied = pt->applied,
                             .restarts = pt->restarts};
    pthread_mutex_unlock(&c->mu);
}

void ls_consumers_abort(ls_consumers *c)
{
    if (c) atomic_store_explicit(&c->aborted, 1, memory_order_release);
}

void ls_consumers_close(ls_consumers *c)
{
    if (!c) return;
    for (unsigned p = 0; p < c->o.partitions; p++)
        ls_consumers_stop(c, p);
    ls_consumers_check(c); /* destroys the stopped subscriptions */
    ls_ingest_producer_close(c->prod);
    pthread_mutex_destroy(&c->mu);
    free(c->part);
    free(c);
}
