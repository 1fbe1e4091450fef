/*
 * stats.h - the daemon's figures for /api/v1/stats and /metrics: one
 * snapshot of the core, and the port through which an adapter (an input
 * or a sink) shows its own figures without the API knowing the adapter.
 *
 * The snapshot.  ls_stats_take() takes the daemon's locks once (every
 * shard's and the global lock, ls_daemon_lock()) and copies what they
 * guard: the engines' statistics summed over the shards, device types,
 * events by type, the outbox and sink cursors, the last flush pass,
 * alarms and the HTTP reporters.  So the devices, events and cursors in
 * one snapshot belong together: an event counted by type is counted in
 * lastSeq, and its device's state is the one it caused.  Every figure
 * there is a counter kept up to date as devices change, so the hold costs
 * O(shards + types + sinks), never a walk of the devices: a median of
 * 1 us with a million devices of 10 types in 4 shards, 30 us with 1000
 * types (`lastseen-bench stats`).  The counters kept outside those
 * locks (core/metrics.h, the committer's, the shards' queues) are then
 * read with atomic loads, after the locks are released.  Both renderers
 * (api/stats.c: JSON, api/metrics.c: Prometheus text) render the same
 * snapshot and take no lock of their own, so they agree on every figure
 * they share.
 *
 * The ports.  An adapter registers one ls_stats_port when it starts,
 * before the daemon is ready; the HTTP API calls its writers from its own
 * threads, holding no daemon lock, until the API has stopped (the
 * composition root stops HTTP before it frees any adapter).  So a writer
 * reads the adapter's counters as any other thread would: atomics, or its
 * own small lock.  Cost: nothing until a stats request; then one call per
 * adapter.
 */
#ifndef LS_STATS_H
#define LS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/flush.h"
#include "core/metrics.h"
#include "core/shards.h"
#include "engine/alarms.h"
#include "engine/engine.h"
#include "engine/reporting.h"

struct ls_daemon;

/* ---- the snapshot ------------------------------------------------------- */

#define LS_STATS_SINKS_MAX 32     /* at least the daemon's LS_SINKS_MAX */
#define LS_STATS_SINK_NAME_MAX 64 /* at least its LS_SINK_NAME_MAX */
/* Entries of the shards' type lists copied (a name once per shard that
 * knows it); more are counted in types_left_out. */
#define LS_STATS_TYPES_MAX (1 << 18)

/* A durable sink besides the events file, and its cursor. */
typedef struct ls_stats_sink {
    char name[LS_STATS_SINK_NAME_MAX];
    uint64_t cursor; /* last seq it reported delivered */
} ls_stats_sink;

/* A device type in use or configured, summed over the shards. */
typedef struct ls_stats_type {
    char name[LS_TYPE_MAX + 1];
    int configured;
    uint64_t devices, active;
} ls_stats_type;

typedef struct ls_stats_snapshot {
    const char *version;  /* LS_VERSION */
    int64_t started_wall; /* wall ms the daemon started */

    /* Under the locks: one consistent view. */
    ls_engine_stats engine;        /* every shard's engine, summed (its events[] are
                                    * per shard: use `events` below) */
    uint64_t events[LS_EV__COUNT]; /* events logged since start, by type, each once */
    uint64_t last_seq;             /* the last event seq assigned */
    uint64_t committed_seq;        /* every event <= it is in the store */
    int nsinks;                    /* the other durable sinks */
    ls_stats_sink sinks[LS_STATS_SINKS_MAX];
    ls_flush_stats flush;           /* the last flush pass's figures */
    ls_alarm_stats alarms;          /* alarms by status and severity */
    ls_reporter_stats http_reports; /* the HTTP input's reporters, summed */
    ls_stats_type *types;           /* in use or configured: shard 0's order, then new names */
    size_t ntypes, types_cap;
    size_t types_left_out; /* over LS_STATS_TYPES_MAX, or no memory */

    /* Configuration. */
    int http_reporting_strategy; /* ls_report_strategy */
    int64_t http_reporting_period;

    /* Read atomically after the locks. */
    uint64_t first_seq;     /* the oldest event still in the outbox */
    uint64_t pruned_events; /* by events.retention since start */
    uint64_t sinks_behind;  /* sinks holding events past events.retention */
    uint64_t commits, commit_ns, persist_errors;
    int store_error;         /* 0, or the code of the last failed store write while failing */
    uint64_t store_failures; /* failed store writes since start */
    unsigned shards;         /* engine.shards */
    ls_shards_stats ingest;  /* the shards' queues */
    /* core/metrics.h: inputs, HTTP requests, streams, histograms. */
    int nsources;
    char source_names[LS_SOURCES_MAX][LS_SOURCE_NAME_MAX];
    uint64_t activities[LS_SOURCES_MAX];
    uint64_t rejected[LS_SOURCES_MAX][LS_REJECT__COUNT];
    uint64_t http[LS_ROUTE__COUNT][LS_METHODS][LS_CODES];
    uint64_t streams_open, streams_dropped, streams_refused;
    ls_histogram lateness, commit, flush_time, lock_hold;
    uint64_t lock_hold_max_ns;

    uint64_t hold_ns; /* how long ls_stats_take() held the locks */
} ls_stats_snapshot;

/*
 * Fills *out with the daemon's figures now (any thread that holds no
 * daemon lock; the daemon must be open: ls_core_open()).  Takes the locks
 * once, see above.  `out` may be uninitialised; release it with
 * ls_stats_release().  Allocates only for the types list, and a failure
 * there only shortens the list (types_left_out).
 */
void ls_stats_take(struct ls_daemon *d, ls_stats_snapshot *out);

/* Frees what ls_stats_take() allocated in s (the types list). */
void ls_stats_release(ls_stats_snapshot *s);

/* The lag of a sink at `cursor`: committed events it has yet to deliver. */
static inline uint64_t ls_stats_lag(const ls_stats_snapshot *s, uint64_t cursor)
{
    return s->committed_seq > cursor ? s->committed_seq - cursor : 0;
}

/* ---- the adapters' ports ------------------------------------------------ */

#define LS_STATS_PORTS_MAX 16

typedef struct ls_stats_port {
    const char *key; /* its member of /api/v1/stats: letters, no escaping */
    /* Writes the member's JSON value (an object, an array, a number).  `committed`
     * is the highest committed event seq, for lags. */
    void (*json)(void *ud, ls_buf *b, uint64_t committed);
    /* Writes its Prometheus families (core/prom.h), or NULL for none. */
    void (*prom)(void *ud, ls_buf *b, uint64_t committed);
    void *ud;
} ls_stats_port;

/* Registers a port (copied) before the daemon is ready.  0, or -ENOSPC. */
int ls_stats_register(struct ls_daemon *d, const ls_stats_port *p);

/* Appends ,"key":value for every registered port, in registration order. */
void ls_stats_ports_json(struct ls_daemon *d, ls_buf *b, uint64_t committed);

/* Appends the Prometheus families of every registered port. */
void ls_stats_ports_prom(struct ls_daemon *d, ls_buf *b, uint64_t committed);

#endif
