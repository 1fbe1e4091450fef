/*
 * ingest.h - the port through which an input (UDP, MQTT, later a NATS
 * JetStream consumer) hands device activity and presence to the engine
 * shards, says when its source cannot be heard, and counts what it took.
 * An input includes this header (and core/stats.h for its own figures),
 * never core/daemon.h or core/shards.h: scripts/check-layers.sh says so.
 *
 * The handle.  The composition root (app/root.c) opens one ls_ingest once
 * the shards run and gives it to every input's start function with the
 * configuration; an input keeps the handle, never the daemon.  Everything
 * an input may do to the core goes through a function here, so a new
 * input is one file that talks to this port, and the core can change how
 * it queues, locks or partitions without touching the inputs.
 *
 * What a producer promises.
 *   - Order: the items (activities and presence ops) that one producer
 *     hands over for one device are applied in the order they were added.
 *     A device lives in one shard, a producer keeps one open batch per
 *     shard, and each shard's worker applies its queue in order.  Nothing
 *     is promised between two producers, nor between devices.
 *   - No drop: an added item is applied (or refused by the engine, and
 *     counted in the result).  When every batch is in use the producer
 *     waits for one to come back (backpressure: the socket buffer or the
 *     broker holds the backlog meanwhile); the waits are counted in
 *     /api/v1/stats as shards.producerWaits.
 *   - Results per batch: after a shard's worker has applied one batch of
 *     the producer it calls the producer's `done` callback once with what
 *     happened to the batch's items (ls_ingest_result), on the worker's
 *     thread and outside every lock.  ls_ingest_producer_applied() says
 *     up to which item everything is applied, for an input that must
 *     acknowledge its upstream (a stream consumer's checkpoint).
 *   - Delay: an item waits in its open batch until the batch is full or
 *     the input calls ls_ingest_producer_flush(); an input flushes when it
 *     has nothing more to read (or after a few ms under a steady trickle),
 *     so that nothing lingers.
 *
 * What it costs.  Per item: a hash of the id and a copy of it into the
 * open batch of its shard; no lock, no allocation, and a system call only
 * to wake a sleeping worker.  Per batch (up to 1024 items or 64 KiB of
 * ids): one hold of one shard's lock by its worker, one clock read, one
 * `done` call.  Memory: the batches are a pool shared by all producers
 * (16 of ~100 KiB per shard, core/shards.h); a producer itself is about
 * 1.5 KiB.  A source transition takes every shard's lock and the
 * global lock once and does O(shards) work: holding and releasing never
 * scan the devices (engine.h, "Source health gating").
 *
 * Threads.
 *   - ls_ingest_open()/ls_ingest_close(): the composition root, before
 *     the inputs start / after they stopped.
 *   - ls_ingest_source_add(), ls_ingest_counters_open(),
 *     ls_ingest_stats_register(): while the input starts, before the
 *     daemon is ready (they are not thread-safe against each other).
 *   - A producer belongs to one thread at a time: every ls_ingest_producer_*
 *     call on it, and the source transitions given it, from that thread.
 *     ls_ingest_producer_sync(), _close() and the transitions wait for the
 *     workers, so that thread must not hold any lock a worker takes, and a
 *     `done` callback must never call them.
 *   - `done` runs on a shard's worker thread, outside every lock, possibly
 *     on several workers at once: it counts (atomics) and returns; what it
 *     does delays that shard's next batch.
 *   - The counters (ls_ingest_accepted(), ls_ingest_rejected()): any thread.
 *
 * Sources.  An input that can lose its upstream (a broker connection, a
 * stream's leader election, a replay still catching up) registers a
 * source, tags every item with it and says when it is down and up: while
 * a gated source is down the deadlines of the devices last heard through
 * it are held (they do not go inactive), and once it is up again each of
 * them gets at least a full timeout from that moment.  A transition first
 * waits until the given producer's earlier items are applied, so a
 * backlog read before SOURCE_UP counts as heard before it.  A source per
 * partition of devices (one per owned stream partition) works the same
 * way, up to the engine's LS_SOURCE_MAX (14) sources in all.
 *
 * What this leaves room for.  Handing a partition of devices over to
 * another node needs a barrier (every item of the partition applied: a
 * producer per partition and ls_ingest_producer_sync() or _applied()) and
 * a way to take the partition's devices out of the shards and put them in;
 * taking them out is core/partition.h's, putting them in is a producer's.
 *
 * Forwarding (cluster mode, docs/cluster.md).  In a cluster an input's
 * items belong to the node that owns each device, through the cluster's
 * input stream.  The composition root then sets a forwarder on the port
 * it gives the inputs (ls_ingest_forward_set(), before they start): their
 * producers hand every item to it instead of the shards, and the HTTP API
 * forwards its activities and sessions with ls_ingest_forward().  The
 * inputs do not change.  A forwarding producer reports each item through
 * `done` once the stream stored it (result.applied) or could not
 * (result.unstored), on a thread of the forwarder's; _applied() and
 * _sync() count those reports, and source transitions still apply to
 * this node's shards only.  The cluster's own consumer, which applies
 * the stream into the shards, uses a port without a forwarder.  Without
 * one nothing here costs more than a test of a pointer per item.
 */
#ifndef LS_INGEST_H
#define LS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h" /* ls_reject_reason, for ls_ingest_rejected() */

struct ls_daemon;
struct ls_metrics;
struct ls_shard_producer;
struct ls_stats_port;

/* The port: one per daemon, made by the composition root. */
typedef struct ls_ingest ls_ingest;

/* What a worker did with one batch of a producer. */
typedef struct ls_ingest_result {
    size_t applied;     /* activities taken */
    size_t full;        /* refused: state.max_devices (LS_EFULL, LS_ENOMEM) */
    size_t bad_ids;     /* refused: LS_EBADID */
    size_t invalid;     /* refused: any other error (a bad timestamp) */
    size_t connects;    /* online ops that opened a session */
    size_t disconnects; /* offline ops that closed one */
    size_t unstored;    /* forwarding: items the cluster's stream could not store */
} ls_ingest_result;

/* Called by a worker after applying a batch of the producer: see above. */
typedef void (*ls_ingest_done_cb)(void *ud, const ls_ingest_result *r);

/* Presence operations (ls_ingest_producer_op()). */
typedef enum ls_ingest_op_kind {
    LS_INGEST_ONLINE = 1,  /* open a session unless one is open */
    LS_INGEST_OFFLINE = 2, /* close the session if one is open */
} ls_ingest_op_kind;
#define LS_INGEST_RETAINED 0x80 /* or-ed in: a retained copy (a state, not news) */

/* ---- the composition root ---------------------------------------------- */

/* Opens the port on a core whose shards exist (ls_core_open()).  0 or
 * -ENOMEM. */
int ls_ingest_open(ls_ingest **out, struct ls_daemon *d);
/* After every input has stopped.  NULL is fine. */
void ls_ingest_close(ls_ingest *in);

/* ---- producers ----------------------------------------------------------- */

/*
 * A producer is one input thread's stream of items to the shards.
 * ls_ingest_producer_open() makes one whose batches are reported to
 * done(ud, ...) (done may be NULL).  0 or -ENOMEM.
 */
typedef struct ls_ingest_producer ls_ingest_producer;
int ls_ingest_producer_open(ls_ingest *in, ls_ingest_producer **out, ls_ingest_done_cb done,
                            void *ud);

/*
 * Hands over an activity of device id at ts (wall ms; 0 = when applied),
 * heard through `source` (0 = none, or an index from
 * ls_ingest_source_add()).  The id must be valid (ls_id_check() is 0: the
 * input checks it and counts its own refusals) and is copied: the input's
 * buffer may be reused at once.  May wait for a free batch.  Returns the
 * item's number in this producer (1, 2, ...; ops count too), for
 * ls_ingest_producer_applied().
 */
uint64_t ls_ingest_producer_add(ls_ingest_producer *p, const char *id, size_t len, int64_t ts,
                                unsigned source);

/*
 * Hands over a presence operation (kind: ls_ingest_op_kind, or-ed with
 * LS_INGEST_RETAINED) of device id heard through `source`, applied after
 * this producer's earlier items of the device and before its later ones.
 * ONLINE opens a session if the device has none and otherwise, unless
 * retained, counts as an activity; OFFLINE closes the open session, if
 * any.  Sessions are a state: a retained "online" repeated on every
 * resubscribe opens no second session.  id and the return value as for
 * ls_ingest_producer_add().
 */
uint64_t ls_ingest_producer_op(ls_ingest_producer *p, unsigned kind, const char *id, size_t len,
                               unsigned source);

/* Queues every open batch (the input is idle, or its oldest item is due).
 * May wait for a free batch. */
void ls_ingest_producer_flush(ls_ingest_producer *p);

/*
 * The highest item number n such that every item of this producer
 * numbered <= n has been applied and reported through `done` (0: none
 * yet).  It trails the items handed over by the batches not yet applied,
 * and by the open ones until a flush.  Non-blocking; the producer's thread.
 */
uint64_t ls_ingest_producer_applied(ls_ingest_producer *p);

/* Flushes and waits until every item handed over is applied and reported;
 * the producer stays usable.  The shards must be running. */
void ls_ingest_producer_sync(ls_ingest_producer *p);

/* ls_ingest_producer_sync(), then frees the producer.  NULL is fine. */
void ls_ingest_producer_close(ls_ingest_producer *p);

/* ---- sources --------------------------------------------------------------- */

/*
 * Registers input source `name` (1..31 bytes) in every shard; with `gate`
 * its devices are held while it is down.  A new source is "unknown": held
 * (if gated) until its first ls_ingest_source_up(), never announced.
 * Returns its index (1..14) for the items and transitions, or LS_EINVAL /
 * LS_EFULL (engine.h).
 */
int ls_ingest_source_add(ls_ingest *in, const char *name, int gate);

/*
 * The source cannot be heard (down) / is heard live again (up): once p's
 * items handed over so far are applied (p may be NULL), every shard marks
 * it so at one instant, and a SOURCE_DOWN / SOURCE_UP event is logged
 * unless it already was in that state.  Up releases the held devices: each
 * gets at least a full timeout from now.
 */
void ls_ingest_source_down(ls_ingest *in, ls_ingest_producer *p, unsigned source);
void ls_ingest_source_up(ls_ingest *in, ls_ingest_producer *p, unsigned source);

/* ---- figures ----------------------------------------------------------------- */

/* An input's counters in /metrics (lastseen_activities_total and
 * lastseen_rejected_inputs_total, labelled source=name). */
typedef struct ls_ingest_counters {
    struct ls_metrics *m;
    int src;
} ls_ingest_counters;

/* Names the input's counters (1..15 bytes; the same name gives the same
 * counters).  0, or -ENOSPC / -EINVAL. */
int ls_ingest_counters_open(ls_ingest *in, const char *name, ls_ingest_counters *out);

/* Counts n activities taken / n inputs refused for `why`.  Any thread. */
void ls_ingest_accepted(const ls_ingest_counters *c, uint64_t n);
void ls_ingest_rejected(const ls_ingest_counters *c, ls_reject_reason why, uint64_t n);

/* Registers the input's own figures for /api/v1/stats and /metrics
 * (core/stats.h: the port is copied).  0, or -ENOSPC. */
int ls_ingest_stats_register(ls_ingest *in, const struct ls_stats_port *sp);

/* ---- forwarding (cluster mode) ------------------------------------------------ */

/* One item as a forwarder takes it. */
typedef struct ls_ingest_item {
    unsigned kind;  /* 0 = an activity, else ls_ingest_op_kind | LS_INGEST_RETAINED */
    const char *id; /* valid (ls_id_check()), len bytes */
    size_t len;
    int64_t ts; /* an activity's time, wall ms; 0 = when the stream stores it */
} ls_ingest_item;

/* The items of one forward are all stored (rc 0), or one could not be
 * (rc < 0: -ETIMEDOUT, -ENOTCONN, -ESHUTDOWN, -EIO).  Called once, on
 * any thread, holding no lock of the caller's. */
typedef void (*ls_ingest_stored_cb)(void *ud, int rc);

typedef struct ls_ingest_forwarder {
    /* Takes n items (copied before it returns) and calls stored(ud, rc)
     * once they are settled, possibly before it returns; or returns < 0
     * having taken none, and never calls it.  stored may be NULL: nobody
     * waits (the forwarder counts).  Any thread. */
    int (*forward)(void *fud, const ls_ingest_item *items, size_t n, ls_ingest_stored_cb stored,
                   void *ud);
    void *fud;
} ls_ingest_forwarder;

/* Sets the port's forwarder (copied; NULL clears it) before the inputs
 * start and their producers open. */
void ls_ingest_forward_set(ls_ingest *in, const ls_ingest_forwarder *f);

/* 1 when the port forwards (cluster mode).  Any thread. */
int ls_ingest_forwarding(const ls_ingest *in);

/* Forwards items as the forwarder's `forward` does; -ENOTSUP without one. */
int ls_ingest_forward(ls_ingest *in, const ls_ingest_item *items, size_t n,
                      ls_ingest_stored_cb stored, void *ud);

#endif
