/*
 * persist.c - durability: the store and group commit.
 *
 * Flow.  Under the global lock (daemon.h), every event gets the next seq
 * and its JSON line goes into the pending batch (the transactional outbox),
 * with its type, device id and the place of the device's state in the
 * line beside it, so that no sink has to parse the line back (outbox.h);
 * deletes go in as ops.  One committer thread writes two kinds of LMDB
 * transactions, one after the other:
 *   - event commits (commit_events): the pending batch, where every event
 *     came with its device's record as the event left it (taken in
 *     ls_persist_event(), under the locks the event was raised under: the
 *     engines run with event_snapshots), plus the record of every urgent
 *     device (changes without an event: configuration, pings, a session
 *     closed while others stay open: engine.h), copied DRAIN_CHUNK at a
 *     time with the locks released in between.  No event is in a batch
 *     without the state behind it, and however many events a reconnect
 *     storm raises, the committer never has to gather their devices: the
 *     lock holds stay short.  Only then are the batch's events handed to
 *     the inline sinks (the events file: outbox.h), and only then are they
 *     committed for the other sinks and readers and the API requests
 *     waiting on that batch answered.  So a transition is on disk before
 *     anyone hears of it, together with its device, and an acknowledged
 *     change survives kill -9.
 *   - flush passes (flush.c): lastActivityTime of the devices that only
 *     reported activity, copied DRAIN_CHUNK per lock hold and written in
 *     id-ordered slices.  Event commits go between the steps of a pass, so
 *     an event waits for at most one chunk or slice, and the engine lock is
 *     never held for more than one chunk.
 *
 * When.  The committer commits events as soon as there is a waiter or an
 * event (group commit: whatever piled up during the previous write goes
 * into the next one), and starts a flush pass every store.flush_interval,
 * which is how long lastActivityTime of a device that only reports
 * activity can lag on disk (plus the pass itself, on a large fleet).
 *
 * Delivery.  Sinks (the events file, MQTT, webhooks, and whatever comes)
 * read the outbox through the port (outbox.h) and acknowledge; the
 * committer knows none of them, it only calls the inline ones after each
 * commit (and at least every store.flush_interval, or when one asks to be
 * retried).  Each sink's cursor (the last seq it delivered) goes into the
 * next batch that follows its acknowledgement.
 *
 * Retention.  Every RETENTION_CHECK_MS (or a quarter of events.retention if
 * shorter) the committer prunes events older than events.retention that
 * every sink has delivered.  Age comes from retention marks (store.h): at
 * most one a minute (an eighth of the retention if shorter), "events from
 * seq S on were committed at or after T", so an event may outlive the
 * retention by up to that step, never the other way.  A sink still holding such events
 * keeps them: it is logged once and counted, and nothing is pruned past it.
 * One commit prunes at most PRUNE_MAX events, so a first prune after a
 * long outage is spread over several commits.
 *
 * Failure.  A write that fails (disk full, a quota, an I/O error,
 * store.max_size) is retried every RETRY_MS with the same batch; what
 * accumulates meanwhile stays in memory and goes into the next commit once
 * the write succeeds, so nothing acknowledged is lost and nothing is
 * acknowledged that is not on disk.  The fault is said out loud: the cause
 * (the errno the store found: store.c keeps ENOSPC and EDQUOT that LMDB
 * reports as EIO) is logged at once, then at most every FAULT_LOG_MS with
 * the count of failed writes, and once more when writes succeed again; it
 * is kept in the daemon (store_error, store_failing_since, store_failures:
 * atomics) for /healthz, /metrics and /api/v1/stats.  While it lasts, every
 * failed attempt calls the commit hook, so that the HTTP server answers the
 * requests that waited store.commit_wait with 503 storage_unavailable
 * (api/http.c) instead of holding them.  Stopping: ls_core_commit_waiting()
 * and the committer give the final commit until store.shutdown_wait after
 * the stop began; then the committer gives up, logs what was not saved
 * (events and device records) and sets `unsaved`, and the daemon exits 1.
 */
#include "core/persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alarming.h"
#include "base/clock.h"
#include "core/flush.h"
#include "core/load.h"
#include "base/err.h"
#include "base/log.h"
#include "core/outbox.h"
#include "core/shards.h"
#include "core/format.h"

/* Retention works in steps of a fraction of events.retention, at most these. */
#define RETENTION_CHECK_MS 10000
#define MARK_EVERY_MS 60000
#define PRUNE_MAX 100000
#define DRAIN_CHUNK 1024   /* devices copied from the engine per lock hold (under 1 ms) */
#define DRAIN_ROUNDS 32    /* chunks of urgent devices an event commit takes one by one */
#define LOCK_GAP_NS 50000  /* the committer stays off the lock between two chunks */
#define RETRY_MS 1000      /* a failed store write is tried again after this */
#define FAULT_LOG_MS 60000 /* a lasting store fault is logged again after this */

/* What the store keeps of a device (points into dev, e and idb). */
static ls_device_state record_of(const ls_engine *e, const ls_device *dev, char idb[LS_ID_BUF])
{
    ls_device_state rec;
    ls_engine_snapshot(e, dev, idb, &rec, NULL);
    return rec;
}

/* ls_store_batch_each_device callback: marks the device urgent again (its
 * record was dropped).  Under every shard lock. */
static void urge_cb(void *ud, const char *id, size_t len, uint64_t tag)
{
    (void)tag;
    ls_daemon *d = ud;
    LS_ASSERT_LOCKED(&ls_shards_of(d->shards, id, len)->lock);
    ls_engine_urge(ls_daemon_engine(d, id, len), id, len);
}

/* ls_visit_cb of the urgent drain: the device's whole record into `b`. */
typedef struct record_ctx {
    ls_daemon *d;
    const ls_engine *e; /* the shard being drained */
    ls_store_batch *b;
} record_ctx;

static void put_record_cb(void *ud, const ls_device *dev)
{
    record_ctx *rc = ud;
    char idb[LS_ID_BUF];
    ls_device_state rec = record_of(rc->e, dev, idb);
    if (ls_store_batch_put_device(rc->b, &rec) < 0)
        atomic_fetch_add_explicit(&rc->d->persist_errors, 1, memory_order_relaxed);
}

/* Puts the event line just written into d->line (seq, type, its device
 * id, where the line's spans are) into the pending batch.  Under the lock.
 * 0, or < 0 (counted and logged by the caller). */
static int queue_line(ls_daemon *d, uint64_t seq, ls_event_type type, const char *id, size_t id_len,
                      const ls_event_spans *sp)
{
    /* The id the line holds, unless escaping changed it (then the store
     * keeps the id beside the line). */
    if (sp->device_len == id_len + 2) id = d->line.p + sp->device_off + 1;
    ls_store_event se = {.seq = seq,
                         .type = (int)type,
                         .line = d->line.p,
                         .line_len = d->line.len,
                         .device = id,
                         .device_len = id_len,
                         .state_off = sp->state_off,
                         .state_len = sp->state_len};
    return ls_store_batch_put_event(d->pending, &se);
}

void ls_persist_event(ls_daemon *d, const ls_event *ev)
{
    LS_ASSERT_LOCKED(&d->lock);
    uint64_t seq = ++d->seq;
    char idb[LS_ID_BUF];
    ls_buf_reset(&d->line);
    if ((unsigned)ev->type < LS_EV__COUNT) d->events_by_type[ev->type]++;
    const ls_engine *e =
        ev->dev ? ls_daemon_engine(d, ls_device_id(ev->dev, idb), ev->dev->id_len) : NULL;
    ls_event_spans sp;
    int rc = ls_format_event(&d->line, e, d->alarms, seq, ev, &sp);
    if (rc == 0) {
        const char *id = ev->alarm    ? ev->alarm->source
                         : ev->dev    ? ls_device_id(ev->dev, idb)
                         : ev->source ? ev->source
                                      : "";
        size_t id_len = ev->alarm ? ev->alarm->source_len : ev->dev ? ev->dev->id_len : strlen(id);
        rc = queue_line(d, seq, ev->type, id, id_len, &sp);
    }
    if (rc < 0) {
        atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
        ls_error("persist", "event seq %llu (%s %s) could not be queued", (unsigned long long)seq,
                 ls_event_name(ev->type),
                 ev->alarm ? ev->alarm->source
                 : ev->dev ? ls_device_id(ev->dev, idb)
                           : ev->source);
    }
    if (ev->dev) {
        /* The device's record goes with its event (engine.h,
         * event_snapshots): the state after the event, whatever the
         * device does before the commit is built. */
        ls_device_state rec = record_of(e, ev->dev, idb);
        if (ls_store_batch_put_device_tagged(d->pending, &rec, ls_flush_tag(d->flush)) < 0) {
            /* No record with the event (out of memory, or the batch cap):
             * the committer copies the device instead. */
            atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
            ls_engine_urge(ls_daemon_engine(d, rec.id, rec.id_len), rec.id, rec.id_len);
        }
    }
    d->want_commit = 1;
}

void ls_persist_audit(ls_daemon *d, const ls_audit *a)
{
    LS_ASSERT_LOCKED(&d->lock);
    uint64_t seq = ++d->seq;
    ls_buf_reset(&d->line);
    d->events_by_type[LS_EV_AUDIT]++;
    ls_event_spans sp;
    int rc = ls_format_audit(&d->line, seq, a, &sp);
    if (rc == 0) rc = queue_line(d, seq, LS_EV_AUDIT, a->subject, a->subject_len, &sp);
    if (rc < 0) {
        atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
        ls_error("persist", "event seq %llu (AUDIT %s %.*s) could not be queued",
                 (unsigned long long)seq, a->action, (int)a->target_len, a->target);
    }
    d->want_commit = 1;
}

void ls_persist_type(ls_daemon *d, const char *name, size_t len, const ls_type_config *c)
{
    LS_ASSERT_LOCKED(&d->lock);
    int rc = c ? ls_store_batch_put_type(d->pending, name, len, c)
               : ls_store_batch_del_type(d->pending, name, len);
    if (rc < 0) atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
}

void ls_persist_delete(ls_daemon *d, const char *id, size_t len)
{
    LS_ASSERT_LOCKED(&d->lock);
    /* Tagged like an event's record: a pass's copies made after the
     * delete (of the device created again) are newer than it. */
    if (ls_store_batch_del_device_tagged(d->pending, id, len, ls_flush_tag(d->flush)) < 0)
        atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
}

/* Inside the section `h`: asks the committer for a commit of everything
 * changed in it, wakes the workers whose deadline moved earlier and leaves
 * the section's shards (the committer needs them to drain); returns the
 * generation that commit will have.  The global lock is still held. */
static uint64_t ask_commit(ls_daemon *d, ls_held *h)
{
    LS_ASSERT_LOCKED(&d->lock);
    uint64_t gen = d->pending_gen;
    ls_daemon__wake_timer(d, h);
    d->want_commit = 1;
    pthread_cond_signal(&d->work_cv);
    ls_daemon__release_shards(d, h);
    return gen;
}

int ls_daemon_commit_unlock(ls_daemon *d, ls_held *h, int64_t deadline_ns)
{
    uint64_t gen = ask_commit(d, h);
    while (d->committed_gen < gen && !d->committer_gone) {
        if (ls_clock_mono_ns() >= deadline_ns) {
            int rc = atomic_load_explicit(&d->store_error, memory_order_relaxed);
            ls_mutex_unlock(&d->lock);
            return rc < 0 ? rc : -ETIMEDOUT;
        }
        struct timespec ts;
        int64_t wake = ls_clock_mono_ns() + 100000000; /* rechecks the deadline */
        if (wake > deadline_ns) wake = deadline_ns;
        ts.tv_sec = wake / 1000000000;
        ts.tv_nsec = wake % 1000000000;
        ls_cond_timedwait(&d->commit_cv, &d->lock, &ts);
    }
    int rc = d->committed_gen >= gen ? 0 : -ECANCELED;
    ls_mutex_unlock(&d->lock);
    return rc;
}

uint64_t ls_daemon_unlock_to_commit(ls_daemon *d, ls_held *h)
{
    uint64_t gen = ask_commit(d, h);
    ls_mutex_unlock(&d->lock);
    return gen;
}

/* Notes whether a sink holds events older than the retention; logs changes. */
static int held(const char *name, uint64_t cursor, uint64_t upto, int *behind)
{
    int now_behind = cursor < upto;
    if (now_behind && !*behind)
        ls_warn("persist",
                "sink %s is behind events.retention: it has not delivered seq %llu, older than the "
                "retention; its events are kept until it does",
                name, (unsigned long long)cursor + 1);
    else if (!now_behind && *behind)
        ls_info("persist", "sink %s has caught up with events.retention", name);
    *behind = now_behind;
    return now_behind;
}

/* Adds to `batch` the prune of events older than events.retention that
 * every sink has delivered.  Committer thread, without the lock. */
static void retention(ls_daemon *d, ls_store_batch *batch, int64_t now_wall)
{
    LS_ASSERT_THREAD(&d->committer_thread);
    uint64_t upto = ls_store_prunable(d->store, now_wall - d->cfg.events_retention);
    if (upto <= d->pruned_upto) return;
    uint64_t keep = UINT64_MAX, behind = 0;
    ls_mutex_lock(&d->lock);
    for (int i = 0; i < d->nsinks; i++) {
        ls_sink *k = &d->sinks[i];
        behind += (uint64_t)held(k->name, k->acked, upto, &k->behind);
        if (k->acked < keep) keep = k->acked;
    }
    ls_mutex_unlock(&d->lock);
    atomic_store_explicit(&d->sinks_behind, behind, memory_order_relaxed);
    if (keep < upto) upto = keep;
    if (upto - d->pruned_upto > PRUNE_MAX) upto = d->pruned_upto + PRUNE_MAX;
    if (upto <= d->pruned_upto || ls_store_batch_prune(batch, upto) < 0) return;
    atomic_fetch_add_explicit(&d->pruned_events, upto - d->pruned_upto, memory_order_relaxed);
    atomic_store_explicit(&d->pruned_upto, upto, memory_order_relaxed);
}

/* The committer's own state (its thread only). */
typedef struct committer {
    ls_daemon *d;
    uint64_t batched;    /* last seq put in a batch */
    int64_t deliver_due; /* mono ms an inline sink wants to be called by (0: none) */
    int64_t mark_every, check_every;
    ls_held held;         /* the locks of the current hold (hold_begin()) */
    int64_t hold_t0;      /* when the committer took the engine lock */
    int staging;          /* a flush pass is copying devices from the engines */
    unsigned flush_shard; /* the shard the pass is copying from */
    int64_t fault_logged; /* mono ns of the last log line of a lasting store fault */
    uint64_t fault_count; /* failed writes since the fault began */
    int gave_up;          /* stopping, the final commit failed past store.shutdown_wait */
} committer;

/* A store write failed with rc: keeps the cause for /healthz and the
 * metrics, and logs it now if it is new or changed, else at most every
 * FAULT_LOG_MS. */
static void store_failed(committer *c, int rc, const char *what)
{
    ls_daemon *d = c->d;
    int64_t now = ls_clock_mono_ns();
    int prev = atomic_load_explicit(&d->store_error, memory_order_relaxed);
    atomic_fetch_add_explicit(&d->store_failures, 1, memory_order_relaxed);
    c->fault_count++;
    if (prev == 0)
        atomic_store_explicit(&d->store_failing_since, ls_clock_now().wall, memory_order_relaxed);
    atomic_store_explicit(&d->store_error, rc, memory_order_relaxed);
    if (prev == 0 || prev != rc) {
        ls_error("persist",
                 "store write (%s) failed: %s; what is not written is kept in memory and retried "
                 "every %d ms; requests waiting for a commit get 503 after store.commit_wait",
                 what, ls_strerror(rc), RETRY_MS);
        c->fault_logged = now;
    } else if (now - c->fault_logged >= (int64_t)FAULT_LOG_MS * 1000000) {
        ls_error("persist", "store writes still failing: %s (%llu failed writes since it began)",
                 ls_strerror(rc), (unsigned long long)c->fault_count);
        c->fault_logged = now;
    }
}

/* A store write succeeded: ends a fault, saying so. */
static void store_ok(committer *c)
{
    ls_daemon *d = c->d;
    if (atomic_load_explicit(&d->store_error, memory_order_relaxed) == 0) return;
    int64_t since = atomic_load_explicit(&d->store_failing_since, memory_order_relaxed);
    ls_info("persist",
            "store writes succeed again after %.1f s and %llu failed writes; what was held in "
            "memory is committed",
            (double)(ls_clock_now().wall - since) / 1e3, (unsigned long long)c->fault_count);
    atomic_store_explicit(&d->store_error, 0, memory_order_relaxed);
    c->fault_count = 0;
}

/* Stopping, and store.shutdown_wait has passed since the stop began. */
static int past_stop_deadline(ls_daemon *d)
{
    if (!atomic_load_explicit(&d->stopping, memory_order_relaxed)) return 0;
    int64_t dl = atomic_load_explicit(&d->stop_deadline, memory_order_relaxed);
    return dl && ls_clock_mono_ns() >= dl;
}

/* Calls the commit hook with what is committed, without the lock: the HTTP
 * server answers the requests that waited too long while writes fail. */
static void poke_waiters(ls_daemon *d)
{
    ls_mutex_lock(&d->lock);
    void (*hook)(void *, uint64_t) = d->on_commit;
    void *ud = d->on_commit_ud;
    uint64_t gen = atomic_load_explicit(&d->committed_gen, memory_order_relaxed);
    ls_mutex_unlock(&d->lock);
    if (hook) hook(ud, gen);
}

/* Sleeps RETRY_MS, or less if the stop deadline comes first. */
static void retry_pause(ls_daemon *d)
{
    int64_t ns = (int64_t)RETRY_MS * 1000000;
    int64_t dl = atomic_load_explicit(&d->stop_deadline, memory_order_relaxed);
    if (dl) {
        int64_t left = dl - ls_clock_mono_ns();
        if (left < ns) ns = left > 10000000 ? left : 10000000;
    }
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    nanosleep(&ts, NULL);
}

/* ls_store_batch_each_device callback: counts device records. */
static void count_cb(void *ud, const char *id, size_t len, uint64_t tag)
{
    (void)id, (void)len, (void)tag;
    (*(uint64_t *)ud)++;
}

/* Takes every shard and the global lock (ls_daemon_lock()). */
static void hold_begin(committer *c)
{
    ls_daemon_lock(c->d, &c->held);
    c->hold_t0 = ls_clock_mono_ns();
}

/* Leaves the locks, counting how long the committer held them. */
static void hold_end(committer *c)
{
    LS_ASSERT_LOCKED(&c->d->lock);
    uint64_t ns = (uint64_t)(ls_clock_mono_ns() - c->hold_t0);
    ls_daemon__release_shards(c->d, &c->held);
    ls_mutex_unlock(&c->d->lock);
    ls_histogram_observe(&c->d->metrics.lock_hold, ns);
    if (ns > atomic_load_explicit(&c->d->metrics.lock_hold_max_ns, memory_order_relaxed))
        atomic_store_explicit(&c->d->metrics.lock_hold_max_ns, ns, memory_order_relaxed);
}

/* Between two chunks: stay off the lock long enough for a waiting thread
 * (the timer loop, a request) to take it; a mutex handed back at once
 * would usually go to the committer again. */
static void lock_gap(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = LOCK_GAP_NS};
    nanosleep(&ts, NULL);
}

/*
 * One event commit: the pending batch (events, deletions, types, alarms,
 * cursors) and the record of every urgent device, in one transaction; then
 * the inline sinks deliver its events (outbox.c), and only then are they
 * committed for the other sinks and readers and the requests waiting on it
 * answered.
 * The urgent devices are copied DRAIN_CHUNK at a time, the lock released in
 * between; whatever the other threads queue meanwhile is appended behind,
 * so the batch holds everything in the order it was taken, and the
 * transaction closes only once no urgent device is left (after DRAIN_ROUNDS
 * chunks, the rest in one hold): a request waiting for its change is
 * answered after a commit that has it.  Events need no such closure: each
 * brought its device's record with it.  Without the lock on
 * entry and return.
 */
static void commit_events(committer *c)
{
    ls_daemon *d = c->d;
    ls_store_batch *batch = NULL;
    record_ctx rx = {.d = d};
    LS_ASSERT_THREAD(&d->committer_thread);
    for (int round = 1;; round++) {
        hold_begin(c);
        if (!batch) {
            batch = d->pending;
            d->pending = d->spare;
            d->spare = NULL;
        } else if (ls_store_batch_ops(d->pending) > 0) {
            if (ls_store_batch_append(batch, d->pending) < 0) {
                atomic_fetch_add_explicit(&d->persist_errors, ls_store_batch_ops(d->pending),
                                          memory_order_relaxed);
                ls_error("persist", "%zu store operations dropped: the commit is over its size cap",
                         ls_store_batch_ops(d->pending));
                /* The devices those records were for are copied again by a later commit. */
                ls_store_batch_each_device(d->pending, urge_cb, d);
            }
            ls_store_batch_clear(d->pending);
        }
        rx.b = batch;
        /* While urgent changes keep coming (API requests; transitions
         * bring their records with their events), the chunks could run on:
         * after DRAIN_ROUNDS the rest goes in this hold, however many, so
         * that the commit closes. */
        size_t left = 0, room = round < DRAIN_ROUNDS ? DRAIN_CHUNK : SIZE_MAX;
        for (unsigned i = 0; i < d->shards->n; i++) {
            ls_engine *e = d->shards->shard[i].engine;
            rx.e = e;
            if (room) {
                size_t got = ls_engine_drain_urgent(e, room, put_record_cb, &rx);
                room = got < room ? room - got : 0;
            }
            left += ls_engine_urgent_left(e);
        }
        if (left == 0) break;
        hold_end(c);
        lock_gap();
    }
    for (int i = 0; i < d->nsinks; i++) {
        ls_sink *k = &d->sinks[i];
        if (k->acked > k->saved && ls_store_batch_cursor(batch, k->name, k->acked) == 0)
            k->saved = k->acked;
    }
    uint64_t gen = d->pending_gen++;
    uint64_t upto = d->seq;
    d->want_commit = 0;
    int ready = atomic_load_explicit(&d->ready, memory_order_acquire);
    hold_end(c);

    ls_now now = ls_clock_now();
    if (upto > c->batched && now.wall - d->last_mark_wall >= c->mark_every &&
        ls_store_batch_mark(batch, c->batched + 1, now.wall) == 0)
        d->last_mark_wall = now.wall;
    if (ready && now.mono - d->last_retention_mono >= c->check_every) {
        d->last_retention_mono = now.mono;
        retention(d, batch, now.wall);
    }
    /* A flush pass under way must not write these devices back to older states. */
    ls_flush_supersede(d->flush, batch);

    int rc = 0;
    if (ls_store_batch_ops(batch) > 0) {
        int64_t t0 = ls_clock_mono_ns();
        while ((rc = ls_store_write(d->store, batch)) < 0) {
            store_failed(c, rc, "events and device records");
            if (past_stop_deadline(d)) break;
            poke_waiters(d);
            retry_pause(d);
        }
        if (rc == 0) store_ok(c);
        uint64_t took = (uint64_t)(ls_clock_mono_ns() - t0);
        atomic_fetch_add_explicit(&d->commits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&d->commit_ns, took, memory_order_relaxed);
        ls_histogram_observe(&d->metrics.commit, took);
    }
    /* The inline sinks (the events file) get the events before anyone else. */
    if (rc == 0) c->deliver_due = ls_outbox__deliver(d, upto, batch, c->batched + 1);

    uint64_t urgent = 0;
    if (rc < 0) {
        ls_shards_lock_all(d->shards); /* lock order: shards before the global lock */
        for (unsigned i = 0; i < d->shards->n; i++)
            urgent += ls_engine_urgent_left(d->shards->shard[i].engine);
        ls_shards_unlock_all(d->shards);
    }
    ls_mutex_lock(&d->lock);
    if (rc < 0) {
        /* Stopping, store.shutdown_wait over, the batch still not written:
         * nothing more can be done.  The requests waiting on it are not
         * told it is committed (committed_gen stays). */
        uint64_t devices = urgent, unsaved = d->seq - c->batched;
        ls_store_batch_each_device(batch, count_cb, &devices);
        ls_store_batch_each_device(d->pending, count_cb, &devices);
        ls_error("persist",
                 "stopping after store.shutdown_wait with the store failing (%s): %llu events "
                 "and %llu device records not saved (%zu store operations)",
                 ls_strerror(rc), (unsigned long long)unsaved, (unsigned long long)devices,
                 ls_store_batch_ops(batch) + ls_store_batch_ops(d->pending));
        atomic_store_explicit(&d->unsaved, 1, memory_order_relaxed);
        c->gave_up = 1;
    } else {
        atomic_store_explicit(&d->committed_gen, gen, memory_order_release);
    }
    ls_store_batch_clear(batch);
    d->spare = batch;
    pthread_cond_broadcast(&d->commit_cv);
    if (rc == 0) {
        c->batched = upto;
        ls_outbox__committed(d, upto);
    }
    void (*hook)(void *, uint64_t) = d->on_commit;
    void *ud = d->on_commit_ud;
    ls_mutex_unlock(&d->lock);
    if (hook) hook(ud, gen);
}

/*
 * One step of a flush pass (flush.c): a chunk of dirty devices copied under
 * the lock, or, once they are all copied, one slice written.  `begin`
 * starts the pass.  Returns 1 while the pass goes on, 0 once it is written.
 */
static int flush_step(committer *c, int begin)
{
    ls_daemon *d = c->d;
    LS_ASSERT_THREAD(&d->committer_thread);
    if (c->staging) {
        int done = 0;
        ls_flush_reserve(d->flush, DRAIN_CHUNK); /* no allocation under the lock */
        hold_begin(c);
        if (begin) {
            for (unsigned i = 0; i < d->shards->n; i++)
                ls_engine_flush_begin(d->shards->shard[i].engine);
            c->flush_shard = 0;
        }
        /* The shards one after the other, a chunk a step. */
        ls_engine *e = d->shards->shard[c->flush_shard].engine;
        ls_flush_set_engine(d->flush, e);
        ls_flush_chunk(d->flush);
        ls_engine_flush_next(e, DRAIN_CHUNK, ls_flush_stage_cb, d->flush, &done);
        if (done) done = ++c->flush_shard == d->shards->n;
        hold_end(c);
        if (done)
            c->staging = 0;
        else
            lock_gap();
        return 1;
    }
    int done = 0, rc = ls_flush_write(d->flush, d->store, &done);
    if (rc < 0) {
        store_failed(c, rc, "flush of lastActivityTime");
        if (past_stop_deadline(d) || c->gave_up) {
            ls_error("persist",
                     "stopping: lastActivityTime of the devices left in the flush not written");
            atomic_store_explicit(&d->unsaved, 1, memory_order_relaxed);
            return 0;
        }
        retry_pause(d);
        return 1;
    }
    store_ok(c);
    if (!done) return 1;
    ls_flush_stats fs;
    ls_flush_get_stats(d->flush, &fs);
    uint64_t errs = ls_flush_errors(d->flush);
    if (errs) atomic_fetch_add_explicit(&d->persist_errors, errs, memory_order_relaxed);
    ls_mutex_lock(&d->lock);
    d->flush_stats = fs;
    ls_mutex_unlock(&d->lock);
    ls_histogram_observe(&d->metrics.flush, fs.last_ns);
    return 0;
}

static void *committer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ls-committer");
    ls_daemon *d = arg;
    ls_thread_claim(&d->committer_thread); /* from the main thread (ls_persist_open()) */
    committer c = {.d = d, .batched = d->seq};
    int64_t interval = d->cfg.store_flush_interval * 1000000;
    int64_t next_pass = ls_clock_mono_ns() + interval, last_commit = 0;
    int pass = 0; /* a flush pass is under way */
    c.mark_every = d->cfg.events_retention / 8;
    c.check_every = d->cfg.events_retention / 4;
    if (c.mark_every > MARK_EVERY_MS) c.mark_every = MARK_EVERY_MS;
    if (c.check_every > RETENTION_CHECK_MS) c.check_every = RETENTION_CHECK_MS;

    for (;;) {
        ls_mutex_lock(&d->lock);
        int stopping = d->stopping;
        while (!d->want_commit && !stopping && !pass) {
            int64_t due = next_pass;
            if (c.deliver_due && c.deliver_due * 1000000 < due) due = c.deliver_due * 1000000;
            int64_t now = ls_clock_mono_ns();
            if (now >= due) break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t abs = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (due - now);
            ts.tv_sec = abs / 1000000000;
            ts.tv_nsec = abs % 1000000000;
            ls_cond_timedwait(&d->work_cv, &d->lock, &ts);
            stopping = d->stopping;
        }
        int want = d->want_commit || ls_store_batch_ops(d->pending) > 0;
        ls_mutex_unlock(&d->lock);
        int dirty = 0;
        ls_shards_lock_all(d->shards); /* lock order: shards before the global lock */
        for (unsigned i = 0; i < d->shards->n; i++) {
            want |= ls_engine_urgent_left(d->shards->shard[i].engine) > 0;
            dirty |= ls_engine_dirty_left(d->shards->shard[i].engine) > 0;
        }
        ls_shards_unlock_all(d->shards);

        /* Events first; when idle, woken by the clock (and at that pace
         * during a long pass): cursors, retention, the inline sinks' retries. */
        int64_t now = ls_clock_mono_ns();
        if (want || !pass || now - last_commit >= interval) {
            commit_events(&c);
            last_commit = now = ls_clock_mono_ns();
        }
        int begin = 0;
        if (!pass && (now >= next_pass || (stopping && dirty))) {
            pass = begin = c.staging = 1;
            next_pass = now + interval;
        }
        if (pass) pass = flush_step(&c, begin);
        if (stopping && (c.gave_up || (!pass && !want && !dirty))) break;
    }
    ls_mutex_lock(&d->lock);
    d->committer_gone = 1;
    pthread_cond_broadcast(&d->commit_cv);
    ls_mutex_unlock(&d->lock);
    return NULL;
}

/* Device types are restored before the devices, so that each device
 * resolves its timeout at once. */
typedef struct type_load {
    ls_daemon *d;
    ls_now now;
} type_load;

int ls_persist_open(ls_daemon *d)
{
    char dir[4200];
    int rc;
    snprintf(dir, sizeof(dir), "%s/store", d->cfg.data_dir);
    ls_store_options o = {.initial_size = (uint64_t)64 << 20,
                          .max_size = (uint64_t)d->cfg.store_max_size,
                          .sync = d->cfg.store_sync};
    ls_thread_claim(&d->committer_thread); /* until the committer starts */
    if ((rc = ls_store_open(&d->store, dir, &o)) < 0) return rc;
    d->pending = ls_store_batch_new();
    d->spare = ls_store_batch_new();
    ls_buf_init(&d->line, 1 << 20);
    if (!d->pending || !d->spare || ls_flush_new(&d->flush, d->shards->shard[0].engine) < 0)
        return -ENOMEM;

    /* seq continues after the outbox (and after a sink's own copy of the
     * events, if that goes further: ls_outbox_sink_open()). */
    uint64_t last = ls_store_last_seq(d->store);
    d->seq = last;
    d->durable_seq = d->committed_seq = last;
    uint64_t first = ls_store_first_seq(d->store);
    d->pruned_upto = first ? first - 1 : last;
    d->pending_gen = 1;
    d->committed_gen = 0;

    pthread_condattr_t ca; /* timed waits run on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->work_cv, &ca);
    pthread_cond_init(&d->commit_cv, &ca);
    pthread_condattr_destroy(&ca);
    d->cvs_ready = 1;
    return 0;
}

static int load_type_cb(void *ud, const char *name, size_t len, const ls_type_config *c)
{
    type_load *ls = ud;
    int rc = ls_shards_type_put(ls->d->shards, name, len, c, ls->now, NULL);
    if (rc < 0)
        ls_error("persist", "stored device type %.*s not restored: %s", (int)len, name,
                 ls_strerror(rc));
    return 0;
}

int ls_persist_start(ls_daemon *d)
{
    int rc;
    int64_t t0 = ls_clock_mono_ns();
    ls_now now = ls_clock_now();
    type_load tl = {.d = d, .now = now};
    /* No worker runs yet, but the types go in like any others: under
     * every shard lock (ls_shards_type_put()). */
    ls_held h;
    ls_daemon_lock(d, &h);
    rc = ls_store_load_types(d->store, load_type_cb, &tl);
    ls_daemon_unlock(d, &h);
    if (rc < 0) {
        ls_error("persist", "cannot load device types from %s/store: %s", d->cfg.data_dir,
                 ls_strerror(rc));
        return rc;
    }
    ls_load_result ls;
    if ((rc = ls_load_devices_sharded(d->store, d->shards,
                                      (ls_restart_policy)d->cfg.state_restart_policy, now,
                                      &d->loaded, &ls)) < 0) {
        ls_error("persist", "cannot load devices from %s/store: %s", d->cfg.data_dir,
                 ls_strerror(rc));
        return rc;
    }
    if ((rc = ls_alarming_load(d)) < 0) return rc;
    /* The load read the whole file through the map: keep it in the page
     * cache, not in this process's resident set. */
    ls_store_drop_pages(d->store);
    ls_info("persist",
            "loaded %llu devices (%llu refused) in %.1f ms; restart policy %s; events seq %llu",
            (unsigned long long)ls.loaded, (unsigned long long)ls.refused,
            (double)(ls_clock_mono_ns() - t0) / 1e6,
            d->cfg.state_restart_policy ? "strict" : "grace", (unsigned long long)d->seq);

    if ((rc = pthread_create(&d->committer, NULL, committer_main, d)) != 0) return -rc;
    d->committer_running = 1;
    return 0;
}

void ls_persist_stop(ls_daemon *d)
{
    if (!d->committer_running) return;
    ls_mutex_lock(&d->lock);
    int64_t dl = ls_clock_mono_ns() + d->cfg.store_shutdown_wait * 1000000;
    int64_t none = 0; /* the stop may have begun earlier (ls_core_commit_waiting()) */
    atomic_compare_exchange_strong(&d->stop_deadline, &none, dl);
    d->stopping = 1;
    d->want_commit = 1;
    pthread_cond_signal(&d->work_cv);
    ls_outbox__wake_all(d);
    ls_mutex_unlock(&d->lock);
    pthread_join(d->committer, NULL);
    d->committer_running = 0;
}

void ls_persist_close(ls_daemon *d)
{
    ls_persist_stop(d);
    if (d->cvs_ready) {
        pthread_cond_destroy(&d->work_cv);
        pthread_cond_destroy(&d->commit_cv);
        d->cvs_ready = 0;
    }
    ls_outbox__close(d);
    ls_store_batch_free(d->pending);
    ls_store_batch_free(d->spare);
    ls_flush_free(d->flush);
    d->flush = NULL;
    d->pending = d->spare = NULL;
    ls_buf_free(&d->line);
    ls_store_close(d->store);
    d->store = NULL;
}
