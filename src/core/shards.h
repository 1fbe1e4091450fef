/*
 * shards.h - the engine split into shards, one writer thread each.
 *
 * A device belongs to exactly one shard, chosen by a seeded hash of its id;
 * each shard owns one pure engine (its own table and timing wheel), one
 * mutex and one worker thread.  engine.shards sets how many (0 = one per
 * online core; 1 = a single engine, as before sharding).
 *
 * Ingest.  Producers (one per input thread; inputs reach them only
 * through the ingest port, core/ingest.h, which wraps the producer API
 * below) copy activities into fixed-size batches taken from a shared pool
 * and hand each full batch to its shard over a bounded lock-free queue
 * (ring.h).  The worker pops batches, applies each with
 * ls_engine_activity_batch() under its shard's mutex (one lock and one
 * clock read per batch, never per activity), fires its wheel's due
 * expiries, and gives the batch back to the pool.  Nothing is allocated
 * and no lock is shared between producers on that path.  Backpressure:
 * when the pool is empty (every batch queued or being applied) the
 * producer waits for one to come back; it never drops.  The UDP socket
 * buffer absorbs the wait (the broker, for MQTT); waits are counted
 * (ls_shards_get_stats()).
 *
 * Locks.  Order: shard mutexes in index order, then the daemon's global
 * `lock` (daemon.h).  A worker holds only its own shard while it applies a
 * batch; when the engine emits an event during that batch (rare next to
 * activities) the worker takes the global lock at the first event and keeps
 * it to the end of the batch, so every event gets its seq and outbox line
 * under the global lock exactly as before sharding, and a batch's events
 * stay contiguous in seq.  Queries lock one shard (device routes) or every
 * shard in turn (lists) and keep each for a bounded time, so they delay a
 * worker by at most that, and never wait behind a queue.
 *
 * Critical sections.  The engine raises events through callbacks that get
 * only the shard, so what the holder of a shard's lock has promised about
 * the global lock is kept in the shard, for the time it holds it: a
 * section (ls_shard_section), an object on the holder's stack that
 * ls_shard_section_enter() hangs on the shard (`section`) right after the
 * shard's lock is taken and ls_shard_section_leave() takes off right
 * before it is released.  An engine call that may raise events runs inside
 * one; s->section is NULL whenever nobody is inside, and the event
 * callbacks assert that it is not.  The two kinds:
 *   - LS_SECTION_LAZY_GLOBAL: the holder does not have the global lock;
 *     the first event takes it and it is kept to the leave, which releases
 *     it and returns the generation the events will commit as.  The
 *     worker's batches and ticks and HTTP bulk (ls_shards_apply()).
 *   - LS_SECTION_GLOBAL_HELD: the holder took the global lock after the
 *     shard's, and holds it for the whole section; events just use it.
 *     The daemon's critical sections (ls_daemon_lock(), ls_daemon_lock_id():
 *     device and type routes, source transitions, the committer's holds,
 *     the main loop's tick).  One such section may hang on every shard at
 *     once; a lazy one is one shard's.
 *
 * Presence.  A batch item is an activity unless the batch lists it among
 * its `ops` (online / offline, see ls_shard_producer_op()): an input with
 * sessions (MQTT) puts them in the same per-shard FIFO as its activities,
 * so a device's operations are applied in the order they were read.  The
 * worker applies the runs of activities between two ops with
 * ls_engine_activity_batch() and each op on its own; a batch without ops
 * (UDP) is applied exactly as before, so plain activities pay nothing for
 * them.  Results come back per batch through the producer's `done`
 * callback, counted by kind (ls_ingest_result), never per item under a lock.
 * Each item gets a number in its producer and each batch remembers its
 * last one: since a shard applies a producer's batches in order, the
 * producer knows up to which item everything is applied
 * (ls_shard_producer_applied()), for inputs that acknowledge upstream.
 *
 * HTTP reporting.  Each shard owns the reporter of the HTTP input's
 * reporting strategy (engine/reporting.h) for its devices, used under the
 * shard's lock only: ls_shards_apply(.., report = 1) hands each shard's
 * part of a bulk to it, and the worker ends its periods (its wake-up is
 * the earlier of the wheel's and the reporter's next deadline).
 *
 * Memory: LS_SHARD_POOL_PER_SHARD batches of ~100 KiB per shard.
 */
#ifndef LS_SHARDS_H
#define LS_SHARDS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/ring.h"
#include "core/ingest.h"
#include "engine/engine.h"
#include "engine/reporting.h"

#define LS_SHARDS_MAX 64
#define LS_SHARD_BATCH_ITEMS 1024
#define LS_SHARD_BATCH_BYTES (64 * 1024)
#define LS_SHARD_POOL_PER_SHARD 16

typedef struct ls_shard_op {
    uint16_t at;  /* index of its item (id, source) in items */
    uint8_t kind; /* ls_ingest_op_kind | LS_INGEST_RETAINED */
} ls_shard_op;

struct ls_shard_producer;
typedef struct ls_shard_batch {
    struct ls_shard_producer *prod; /* whose it is while queued */
    uint32_t n;                     /* items */
    uint32_t used;                  /* bytes of ids */
    uint32_t nops;                  /* items that are ops, listed in ops in order */
    uint64_t last;                  /* the producer's number of its last item */
    ls_activity items[LS_SHARD_BATCH_ITEMS];
    ls_shard_op ops[LS_SHARD_BATCH_ITEMS];
    char ids[LS_SHARD_BATCH_BYTES]; /* the items' ids, NUL-terminated */
} ls_shard_batch;

struct ls_daemon;
struct ls_shards;

/* A critical section on a shard (above): its kind, and whether an event
 * of a lazy one has taken the global lock. */
typedef enum ls_section_mode { LS_SECTION_LAZY_GLOBAL, LS_SECTION_GLOBAL_HELD } ls_section_mode;
typedef struct ls_shard_section {
    ls_section_mode mode;
    int global_taken; /* LS_SECTION_LAZY_GLOBAL: the global lock is taken */
} ls_shard_section;

typedef struct ls_shard {
    struct ls_shards *set;
    unsigned index;
    ls_engine *engine;
    ls_mutex lock;
    ls_ring queue;             /* of ls_shard_batch *, as large as the pool */
    int wake_fd;               /* eventfd: wakes the worker */
    _Atomic int sleeping;      /* the worker is (about to be) in ppoll (see wake() in shards.c) */
    int64_t wake_at;           /* under lock: mono ms the worker sleeps until */
    ls_shard_section *section; /* under lock: the holder's section, NULL outside one */
    pthread_t thread;
    ls_thread_owner worker; /* the worker thread, for LS_ASSERT_THREAD */
    int running;
    _Atomic uint64_t batches, activities; /* applied by the worker (relaxed counters) */
    ls_reporter *reporter;                /* under lock: the HTTP input's strategy for this shard */
    int rcs[LS_SHARD_BATCH_ITEMS];        /* the worker's: results of a batch with ops */
} ls_shard;

/*
 * Enters the section `sec` (the caller's, for the span) on shard s, whose
 * lock the caller holds and in which it is in no section yet.  With
 * LS_SECTION_GLOBAL_HELD the caller holds the global lock and keeps it to
 * the leave; with LS_SECTION_LAZY_GLOBAL it must not hold it.
 */
void ls_shard_section_enter(ls_shard *s, ls_shard_section *sec, ls_section_mode mode);
/* Leaves it, still under s's lock (and, GLOBAL_HELD, the global lock):
 * `sec` must be the section entered.  A lazy section that took the global
 * lock releases it (waking the committer if events wait) and returns the
 * generation its events will commit as; otherwise 0. */
uint64_t ls_shard_section_leave(ls_shard *s, ls_shard_section *sec);

typedef struct ls_shards {
    struct ls_daemon *d;
    unsigned n;
    uint64_t seed;
    ls_shard *shard;                 /* n of them */
    ls_ring pool;                    /* free batches */
    ls_shard_batch *batches;         /* all of them, n * LS_SHARD_POOL_PER_SHARD */
    _Atomic int stopping;            /* set by ls_shards_stop() (release / acquire) */
    _Atomic uint64_t producer_waits; /* a producer found the pool empty (relaxed) */
} ls_shards;

typedef struct ls_shards_stats {
    uint64_t batches, activities, producer_waits;
    uint64_t queued; /* batches waiting in queues right now */
} ls_shards_stats;

/*
 * Creates n shards (1..LS_SHARDS_MAX), each with an engine made from `ec`
 * (every engine gets the same configuration and seed), the class-change
 * callback and the daemon's event glue set.  No thread yet.  0 or < 0.
 */
int ls_shards_new(ls_shards **out, struct ls_daemon *d, unsigned n, const ls_engine_config *ec);

/* Gives every shard a reporter for the HTTP input (before start).  0 or
 * an LS_E* code. */
int ls_shards_set_reporting(ls_shards *sh, ls_report_strategy s, int64_t period_ms, uint64_t seed);

/* Under every shard lock: the reporters' statistics summed. */
void ls_shards_reporter_stats(ls_shards *sh, ls_reporter_stats *out);

/* Starts the workers (after the devices are loaded).  0 or -errno. */
int ls_shards_start(ls_shards *sh);

/* Applies what is queued, then stops the workers.  Producers must be gone. */
void ls_shards_stop(ls_shards *sh);

/* Closes the engines and frees everything (after stop). */
void ls_shards_close(ls_shards *sh);

/* The shard that owns id (no lock: the mapping never changes). */
unsigned ls_shards_index(const ls_shards *sh, const char *id, size_t len);
static inline ls_shard *ls_shards_of(ls_shards *sh, const char *id, size_t len)
{
    return &sh->shard[ls_shards_index(sh, id, len)];
}

/* Lock every shard in index order / unlock them. */
void ls_shards_lock_all(ls_shards *sh);
void ls_shards_unlock_all(ls_shards *sh);

/* Under s's lock: wakes its worker if its engine's next deadline moved
 * earlier than the time the worker sleeps until. */
void ls_shard_wake_if_earlier(ls_shard *s);

/*
 * Applies n activities from a thread holding no lock (HTTP bulk): shard by
 * shard, each under its own lock only, in a lazy section like a worker's
 * (events take the global lock).  With `report`, each shard's part goes through its
 * reporter (ls_reporter_activity_batch()) instead of straight to its
 * engine.  rcs[i] (if not NULL) gets item i's result; *gen the commit
 * generation of the events emitted, 0 if none.  Returns the number
 * accepted.  Order is kept per device.
 */
size_t ls_shards_apply(ls_shards *sh, const ls_activity *a, size_t n, int report, int *rcs,
                       uint64_t *gen);

/* Under every shard lock: the sum of the engines' statistics. */
void ls_shards_engine_stats(ls_shards *sh, ls_engine_stats *out);

/*
 * Device types across shards, under every shard lock.  Each engine interns
 * names on its own, so a type is listed once by name (shard 0's order
 * first, then names only later shards know) with devices and active summed
 * and the settings of the shards (which are equal: puts go to all).
 */
typedef void (*ls_type_visit_cb)(void *ud, const ls_type_info *t);
void ls_shards_types(ls_shards *sh, ls_type_visit_cb cb, void *ud);
/* 0 and *out summed over the shards, LS_ENOTFOUND if no shard knows it. */
int ls_shards_type_get(ls_shards *sh, const char *name, size_t len, ls_type_info *out);
/* Puts (deletes) the settings in every shard.  Returns shard 0's result
 * (the shards agree but for allocation failures, which are logged). */
int ls_shards_type_put(ls_shards *sh, const char *name, size_t len, const ls_type_config *c,
                       ls_now now, int *created);
int ls_shards_type_delete(ls_shards *sh, const char *name, size_t len, ls_now now);

/* Input sources, in every shard (under every shard lock): the same index
 * everywhere.  Only shard 0's SOURCE_UP/DOWN events reach the outbox. */
int ls_shards_source_add(ls_shards *sh, const char *name, int gate);
void ls_shards_source_down(ls_shards *sh, unsigned source, ls_now now);
void ls_shards_source_up(ls_shards *sh, unsigned source, ls_now now);

void ls_shards_get_stats(ls_shards *sh, ls_shards_stats *out);

/*
 * A producer: one per input thread, not shared.  It keeps one open batch
 * per shard; ls_shard_producer_add() copies the activity (id and all) into
 * its shard's batch and queues the batch when it is full;
 * ls_shard_producer_flush() queues every open batch: call it when the
 * input goes idle, so that nothing lingers (ids are copied, so the input's
 * buffers can be reused at once).  Both may wait for a free batch.
 */
typedef struct ls_shard_producer {
    ls_shards *sh;
    ls_ingest_done_cb done;
    void *ud;
    _Atomic uint64_t inflight; /* batches queued and not yet applied */
    ls_shard_batch *open[LS_SHARDS_MAX];
    uint64_t added;                      /* items numbered so far (ls_shard_producer_applied()) */
    uint64_t pushed_last[LS_SHARDS_MAX]; /* per shard: `last` of the batch queued last */
    _Atomic uint64_t applied_last[LS_SHARDS_MAX]; /* per shard (release / acquire): `last` of the
                                                     batch applied last */
} ls_shard_producer;

void ls_shard_producer_init(ls_shard_producer *p, ls_shards *sh, ls_ingest_done_cb done, void *ud);
/* id must be valid (ls_id_check) and at most LS_ID_MAX bytes.  Returns the
 * item's number in this producer (1, 2, ...; ops are numbered too). */
uint64_t ls_shard_producer_add(ls_shard_producer *p, const char *id, size_t len, int64_t ts,
                               uint8_t source);
/*
 * Adds a presence operation (kind: ls_ingest_op_kind, or-ed with
 * LS_INGEST_RETAINED) for device id from input `source`: it is applied
 * after the producer's earlier items for the device and before its later
 * ones.  ONLINE opens a session (ls_engine_connect_src()) if the device
 * has none, and otherwise, unless retained, counts as an activity;
 * OFFLINE closes the open session (ls_engine_disconnect()), if any.  id
 * and the return value as for ls_shard_producer_add().
 */
uint64_t ls_shard_producer_op(ls_shard_producer *p, unsigned kind, const char *id, size_t len,
                              uint8_t source);
void ls_shard_producer_flush(ls_shard_producer *p);
/*
 * The highest item number n such that every item numbered <= n is applied
 * and reported through `done`.  A worker applies a producer's batches in
 * the order they were queued, so a shard holds the number back only while
 * it has items of this producer not yet applied, and then only to the last
 * item of the last batch it applied: O(shards), no lock.  The producer's
 * thread.
 */
uint64_t ls_shard_producer_applied(ls_shard_producer *p);
/* Flushes and waits until the workers have applied (and reported through
 * `done`) every batch of this producer; it stays usable.  The workers must
 * be running. */
void ls_shard_producer_sync(ls_shard_producer *p);
/* ls_shard_producer_sync(), then unusable. */
void ls_shard_producer_close(ls_shard_producer *p);

#endif
