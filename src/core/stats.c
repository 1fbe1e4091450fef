/*
 * stats.c - the stats snapshot and the adapters' stats ports (see stats.h).
 *
 * The snapshot's lock hold copies counters, and each shard's list of
 * device types as it is (O(types) per shard); the lists are merged by
 * name after the locks are released, with a hash map, where a merge under
 * them (ls_shards_types(): a lookup by name in every other shard per
 * type) would cost O(types^2 * shards^2) of the workers' time.  Nothing
 * is allocated under the locks: TYPES_RESERVE entries are reserved
 * before, and a fleet with more types than that makes the snapshot let go
 * of the locks, grow the list and take them again (lock_with_room()).
 *
 * The ports' table is written before the daemon is ready and only read
 * after, so reads take no lock.
 */
#include "core/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "core/daemon.h"
#include "core/shards.h"
#include "engine/strmap.h"

#define TYPES_RESERVE 64

_Static_assert(LS_STATS_SINKS_MAX >= LS_SINKS_MAX, "every sink fits in a snapshot");
_Static_assert(LS_STATS_SINK_NAME_MAX >= LS_SINK_NAME_MAX, "every sink name fits");

/* Under the locks: the entries of every shard's list of types. */
static size_t type_entries(ls_shards *sh)
{
    size_t total = 0;
    for (unsigned k = 0; k < sh->n; k++)
        total += ls_engine_type_count(sh->shard[k].engine);
    return total < LS_STATS_TYPES_MAX ? total : LS_STATS_TYPES_MAX;
}

/*
 * Takes the daemon's locks with room in s->types for every shard's list
 * of types: when they hold more than there is room for, it lets go, grows
 * the list (touching it, so that no page fault is left for the copy) and
 * takes them again.  Types are never removed, so this ends.  Out of
 * memory: it keeps the locks and the room it has.  `h` gets the locks'
 * token (ls_daemon_lock()).
 */
static void lock_with_room(ls_daemon *d, ls_stats_snapshot *s, ls_held *h)
{
    ls_daemon_lock(d, h);
    for (size_t want; (want = type_entries(d->shards)) > s->types_cap;) {
        ls_daemon_unlock(d, h);
        ls_stats_type *nt = realloc(s->types, want * sizeof(*nt));
        if (nt) {
            memset(nt + s->types_cap, 0, (want - s->types_cap) * sizeof(*nt));
            s->types = nt;
            s->types_cap = want;
        }
        ls_daemon_lock(d, h);
        if (!nt) break;
    }
}

/*
 * Under the locks: copies every shard's own list of types, shard after
 * shard, into s->types (unmerged: a name each shard knows is there once
 * per shard), as far as there is room.
 */
static void copy_types(ls_stats_snapshot *s, ls_shards *sh)
{
    for (unsigned k = 0; k < sh->n; k++) {
        const ls_engine *e = sh->shard[k].engine;
        uint32_t n = ls_engine_type_count(e);
        for (uint32_t i = 0; i < n; i++) {
            if (s->ntypes == s->types_cap) {
                s->types_left_out++;
                continue;
            }
            ls_type_info t;
            ls_engine_type_at(e, i, &t);
            ls_stats_type *o = &s->types[s->ntypes++];
            size_t len = strlen(t.name);
            if (len > LS_TYPE_MAX) len = LS_TYPE_MAX; /* the engine's names are never longer */
            memcpy(o->name, t.name, len);
            o->name[len] = '\0';
            o->configured = t.configured;
            o->devices = t.devices;
            o->active = t.active;
        }
    }
}

/* The index of `name` among out[0..n), or -1 (without the map: out of memory). */
static long find_type(const ls_stats_type *out, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i].name, name) == 0) return (long)i;
    return -1;
}

/*
 * After the locks: merges the shards' lists by name, in place, as
 * ls_shards_types() lists them: shard 0's order first, then the names
 * only later shards know; devices and active summed, `configured` from
 * the first shard that knows the name (puts go to every shard alike).
 * Then drops the names nothing uses any more.  O(entries) expected.
 */
static void merge_types(ls_stats_snapshot *s, uint64_t seed)
{
    ls_stats_type *t = s->types;
    ls_strmap seen;
    ls_strmap_init(&seen, seed);
    int indexed = 1;
    size_t n = 0;
    for (size_t i = 0; i < s->ntypes; i++) {
        size_t len = strlen(t[i].name);
        long at = -1;
        if (indexed) {
            void *v = ls_strmap_get(&seen, t[i].name, len);
            at = v ? (long)((uintptr_t)v - 1) : -1;
        } else {
            at = find_type(t, n, t[i].name);
        }
        if (at >= 0) {
            t[at].devices += t[i].devices;
            t[at].active += t[i].active;
            continue;
        }
        if (n != i) t[n] = t[i]; /* t[n] was merged away already */
        if (indexed && ls_strmap_put(&seen, t[n].name, len, (void *)(uintptr_t)(n + 1)) < 0)
            indexed = 0; /* out of memory: look the rest up the slow way */
        n++;
    }
    ls_strmap_close(&seen);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].devices || t[i].configured) t[kept++] = t[i];
    s->ntypes = kept;
}

/* A histogram's buckets and sum, each read atomically. */
static void copy_histogram(ls_histogram *out, const ls_histogram *h)
{
    out->n = h->n;
    out->le_ns = h->le_ns;
    out->le_text = h->le_text;
    for (int i = 0; i <= LS_HIST_BUCKETS_MAX; i++)
        out->counts[i] = ls_metrics_get(&h->counts[i]);
    out->sum_ns = ls_metrics_get(&h->sum_ns);
}

/* The counters of core/metrics.h, each read atomically. */
static void copy_metrics(ls_stats_snapshot *s, ls_metrics *m)
{
    int n = atomic_load_explicit(&m->nsources, memory_order_acquire);
    s->nsources = n;
    memcpy(s->source_names, m->source_names, sizeof(s->source_names[0]) * (size_t)n);
    for (int i = 0; i < n; i++) {
        s->activities[i] = ls_metrics_get(&m->activities[i]);
        for (int why = 0; why < LS_REJECT__COUNT; why++)
            s->rejected[i][why] = ls_metrics_get(&m->rejected[i][why]);
    }
    for (int rt = 0; rt < LS_ROUTE__COUNT; rt++)
        for (int me = 0; me < LS_METHODS; me++)
            for (int co = 0; co < LS_CODES; co++)
                s->http[rt][me][co] = ls_metrics_get(&m->http[rt][me][co]);
    s->streams_open = ls_metrics_get(&m->streams_open);
    s->streams_dropped = ls_metrics_get(&m->streams_dropped);
    s->streams_refused = ls_metrics_get(&m->streams_refused);
    copy_histogram(&s->lateness, &m->lateness);
    copy_histogram(&s->commit, &m->commit);
    copy_histogram(&s->flush_time, &m->flush);
    copy_histogram(&s->lock_hold, &m->lock_hold);
    s->lock_hold_max_ns = ls_metrics_get(&m->lock_hold_max_ns);
}

void ls_stats_take(ls_daemon *d, ls_stats_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    out->version = LS_VERSION;
    out->started_wall = d->started_wall;
    out->http_reporting_strategy = d->cfg.http_reporting_strategy;
    out->http_reporting_period = d->cfg.http_reporting_period;
    out->shards = d->shards->n;
    out->types = malloc(TYPES_RESERVE * sizeof(*out->types));
    out->types_cap = out->types ? TYPES_RESERVE : 0;

    ls_held h;
    lock_with_room(d, out, &h);
    int64_t t0 = ls_clock_mono_ns();
    ls_shards_engine_stats(d->shards, &out->engine);
    memcpy(out->events, d->events_by_type, sizeof(out->events));
    out->last_seq = d->seq;
    out->committed_seq = atomic_load_explicit(&d->committed_seq, memory_order_acquire);
    out->nsinks = d->nsinks;
    for (int i = 0; i < d->nsinks; i++) {
        memcpy(out->sinks[i].name, d->sinks[i].name, sizeof(d->sinks[i].name));
        out->sinks[i].cursor = d->sinks[i].acked;
    }
    out->flush = d->flush_stats;
    ls_alarms_get_stats(d->alarms, &out->alarms);
    ls_shards_reporter_stats(d->shards, &out->http_reports);
    copy_types(out, d->shards);
    out->hold_ns = (uint64_t)(ls_clock_mono_ns() - t0);
    ls_daemon_unlock(d, &h);

    out->first_seq = atomic_load_explicit(&d->pruned_upto, memory_order_relaxed) + 1;
    out->pruned_events = atomic_load_explicit(&d->pruned_events, memory_order_relaxed);
    out->sinks_behind = atomic_load_explicit(&d->sinks_behind, memory_order_relaxed);
    out->commits = atomic_load_explicit(&d->commits, memory_order_relaxed);
    out->commit_ns = atomic_load_explicit(&d->commit_ns, memory_order_relaxed);
    out->persist_errors = atomic_load_explicit(&d->persist_errors, memory_order_relaxed);
    out->store_error = atomic_load_explicit(&d->store_error, memory_order_relaxed);
    out->store_failures = atomic_load_explicit(&d->store_failures, memory_order_relaxed);
    merge_types(out, d->shards->seed);
    ls_shards_get_stats(d->shards, &out->ingest);
    copy_metrics(out, &d->metrics);
}

void ls_stats_release(ls_stats_snapshot *s)
{
    free(s->types);
    s->types = NULL;
    s->ntypes = s->types_cap = 0;
}

int ls_stats_register(ls_daemon *d, const ls_stats_port *p)
{
    if (d->nstats_ports >= LS_STATS_PORTS_MAX) return -ENOSPC;
    d->stats_ports[d->nstats_ports++] = *p;
    return 0;
}

void ls_stats_ports_json(ls_daemon *d, ls_buf *b, uint64_t committed)
{
    for (int i = 0; i < d->nstats_ports; i++) {
        const ls_stats_port *p = &d->stats_ports[i];
        ls_buf_printf(b, ",\"%s\":", p->key);
        p->json(p->ud, b, committed);
    }
}

void ls_stats_ports_prom(ls_daemon *d, ls_buf *b, uint64_t committed)
{
    for (int i = 0; i < d->nstats_ports; i++) {
        const ls_stats_port *p = &d->stats_ports[i];
        if (p->prom) p->prom(p->ud, b, committed);
    }
}
