/*
 * ingest.c - the ingest port (ingest.h) over the shards and the daemon.
 *
 * Thin on purpose: a producer is a shard producer (shards.c does the
 * batching, queueing and backpressure), a source transition is the
 * shards' transition under the daemon's locks after the producer's sync,
 * and the counters are the daemon's /metrics counters of one source.
 * What the port adds is the boundary: an input holds an ls_ingest, not
 * the daemon, so the core can change behind it.
 */
#include "core/ingest.h"

#include <errno.h>
#include <stdlib.h>

#include "base/clock.h"
#include "core/daemon.h"
#include "core/shards.h"
#include "core/stats.h"

struct ls_ingest {
    ls_daemon *d;
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
    ls_shard_producer *p = malloc(sizeof(*p));
    *out = p;
    if (!p) return -ENOMEM;
    ls_shard_producer_init(p, in->d->shards, done, ud);
    return 0;
}

uint64_t ls_ingest_producer_add(ls_ingest_producer *p, const char *id, size_t len, int64_t ts,
                                unsigned source)
{
    return ls_shard_producer_add(p, id, len, ts, (uint8_t)source);
}

uint64_t ls_ingest_producer_op(ls_ingest_producer *p, unsigned kind, const char *id, size_t len,
                               unsigned source)
{
    return ls_shard_producer_op(p, kind, id, len, (uint8_t)source);
}

void ls_ingest_producer_flush(ls_ingest_producer *p)
{
    ls_shard_producer_flush(p);
}

uint64_t ls_ingest_producer_applied(ls_ingest_producer *p)
{
    return ls_shard_producer_applied(p);
}

void ls_ingest_producer_sync(ls_ingest_producer *p)
{
    ls_shard_producer_sync(p);
}

void ls_ingest_producer_close(ls_ingest_producer *p)
{
    if (!p) return;
    ls_shard_producer_close(p);
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
    if (p) ls_shard_producer_sync(p);
    ls_held h;
    ls_daemon_lock(in->d, &h);
    ls_shards_source_down(in->d->shards, source, ls_clock_now());
    ls_daemon_unlock(in->d, &h);
}

void ls_ingest_source_up(ls_ingest *in, ls_ingest_producer *p, unsigned source)
{
    if (p) ls_shard_producer_sync(p);
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
