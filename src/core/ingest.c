/*
 * ingest.c - the ingest port (ingest.h) over the shards and the daemon.
 *
 * Thin on purpose: a producer is a shard producer (shards.c does the
 * batching, queueing and backpressure), a source transition is the
 * shards' transition under the daemon's locks after the producer's sync,
 * and the counters are the daemon's /metrics counters of one source.
 * What the port adds is the boundary: an input holds an ls_ingest, not
 * the daemon, so the core can change behind it.
 *
 * Forwarding (cluster mode): a producer opened on a port with a forwarder
 * keeps no batches; each item goes to the forwarder on its own, and the
 * forwarder's settlement of it becomes a one-item `done` report.  Items
 * are numbered as before; `settled` counts the reports (any thread) and
 * _applied() is the number of items added when every one of them was
 * settled (a lower bound, exact when the producer is idle), _sync() waits
 * until all are: both what an input that acknowledges upstream needs.
 */
#include "core/ingest.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "core/daemon.h"
#include "core/shards.h"
#include "core/stats.h"

struct ls_ingest {
    ls_daemon *d;
    ls_ingest_forwarder fw; /* fw.forward NULL: items go to the shards */
};

struct ls_ingest_producer {
    ls_shard_producer sp;
    const ls_ingest_forwarder *fw; /* the port's, when it forwards; else NULL */
    ls_ingest_done_cb done;
    void *ud;
    uint64_t added;           /* forwarding: items numbered so far */
    uint64_t applied;         /* forwarding: added when every item was last seen settled */
    _Atomic uint64_t settled; /* forwarding: items the forwarder settled (any thread) */
};

int ls_ingest_open(ls_ingest **out, ls_daemon *d)
{
    ls_ingest *in = calloc(1, sizeof(*in));
    *out = in;
    if (!in) return -ENOMEM;
    in->d = d;
    return 0;
}

void ls_ingest_close(ls_ingest *in)
{
    free(in);
}

int ls_ingest_producer_open(ls_ingest *in, ls_ingest_producer **out, ls_ingest_done_cb done,
                            void *ud)
{
    ls_ingest_producer *p = calloc(1, sizeof(*p));
    *out = p;
    if (!p) return -ENOMEM;
    p->done = done;
    p->ud = ud;
    if (in->fw.forward)
        p->fw = &in->fw;
    else
        ls_shard_producer_init(&p->sp, in->d->shards, done, ud);
    return 0;
}

/* A forwarded item is settled: one `done` report. */
static void fwd_stored_cb(void *ud, int rc)
{
    ls_ingest_producer *p = ud;
    ls_ingest_result r = {0};
    if (rc == 0)
        r.applied = 1;
    else
        r.unstored = 1;
    if (p->done) p->done(p->ud, &r);
    atomic_fetch_add_explicit(&p->settled, 1, memory_order_release);
}

static uint64_t fwd_item(ls_ingest_producer *p, unsigned kind, const char *id, size_t len,
                         int64_t ts)
{
    ls_ingest_item it = {.kind = kind, .id = id, .len = len, .ts = ts};
    p->added++;
    if (p->fw->forward(p->fw->fud, &it, 1, fwd_stored_cb, p) < 0) fwd_stored_cb(p, -EIO);
    return p->added;
}

uint64_t ls_ingest_producer_add(ls_ingest_producer *p, const char *id, size_t len, int64_t ts,
                                unsigned source)
{
    if (p->fw) return fwd_item(p, 0, id, len, ts);
    return ls_shard_producer_add(&p->sp, id, len, ts, (uint8_t)source);
}

uint64_t ls_ingest_producer_op(ls_ingest_producer *p, unsigned kind, const char *id, size_t len,
                               unsigned source)
{
    if (p->fw) return fwd_item(p, kind, id, len, 0);
    return ls_shard_producer_op(&p->sp, kind, id, len, (uint8_t)source);
}

void ls_ingest_producer_flush(ls_ingest_producer *p)
{
    if (!p->fw) ls_shard_producer_flush(&p->sp);
}

uint64_t ls_ingest_producer_applied(ls_ingest_producer *p)
{
    if (!p->fw) return ls_shard_producer_applied(&p->sp);
    if (atomic_load_explicit(&p->settled, memory_order_acquire) == p->added) p->applied = p->added;
    return p->applied;
}

void ls_ingest_producer_sync(ls_ingest_producer *p)
{
    if (!p->fw) {
        ls_shard_producer_sync(&p->sp);
        return;
    }
    /* Every forward settles within the forwarder's bounded wait. */
    const struct timespec step = {0, 1000000};
    while (atomic_load_explicit(&p->settled, memory_order_acquire) != p->added)
        nanosleep(&step, NULL);
}

void ls_ingest_producer_close(ls_ingest_producer *p)
{
    if (!p) return;
    if (p->fw)
        ls_ingest_producer_sync(p);
    else
        ls_shard_producer_close(&p->sp);
    free(p);
}

int ls_ingest_source_add(ls_ingest *in, const char *name, int gate)
{
    ls_held h;
    ls_daemon_lock(in->d, &h);
    int rc = ls_shards_source_add(in->d->shards, name, gate);
    ls_daemon_unlock(in->d, &h);
    return rc;
}

void ls_ingest_source_down(ls_ingest *in, ls_ingest_producer *p, unsigned source)
{
    if (p) ls_ingest_producer_sync(p);
    ls_held h;
    ls_daemon_lock(in->d, &h);
    ls_shards_source_down(in->d->shards, source, ls_clock_now());
    ls_daemon_unlock(in->d, &h);
}

void ls_ingest_source_up(ls_ingest *in, ls_ingest_producer *p, unsigned source)
{
    if (p) ls_ingest_producer_sync(p);
    ls_held h;
    ls_daemon_lock(in->d, &h);
    ls_shards_source_up(in->d->shards, source, ls_clock_now());
    ls_daemon_unlock(in->d, &h);
}

int ls_ingest_counters_open(ls_ingest *in, const char *name, ls_ingest_counters *out)
{
    int src = ls_metrics_source(&in->d->metrics, name);
    *out = (ls_ingest_counters){.m = &in->d->metrics, .src = src};
    return src < 0 ? src : 0;
}

void ls_ingest_accepted(const ls_ingest_counters *c, uint64_t n)
{
    if (c->m) ls_metrics_activities(c->m, c->src, n);
}

void ls_ingest_rejected(const ls_ingest_counters *c, ls_reject_reason why, uint64_t n)
{
    if (c->m) ls_metrics_rejected(c->m, c->src, why, n);
}

int ls_ingest_stats_register(ls_ingest *in, const ls_stats_port *sp)
{
    return ls_stats_register(in->d, sp);
}

void ls_ingest_forward_set(ls_ingest *in, const ls_ingest_forwarder *f)
{
    in->fw = f ? *f : (ls_ingest_forwarder){0};
}

int ls_ingest_forwarding(const ls_ingest *in)
{
    return in->fw.forward != NULL;
}

int ls_ingest_forward(ls_ingest *in, const ls_ingest_item *items, size_t n,
                      ls_ingest_stored_cb stored, void *ud)
{
    if (!in->fw.forward) return -ENOTSUP;
    return in->fw.forward(in->fw.fud, items, n, stored, ud);
}
