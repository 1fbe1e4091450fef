/*
 * persist.c - durability: the store, group commit, and event delivery.
 *
 * Flow.  Under the engine lock, every event gets the next seq and its JSON
 * line goes into the pending batch (the transactional outbox); deletes go
 * in as ops.  One committer thread turns the pending batch into an LMDB
 * transaction: it takes the lock briefly, drains the engine's dirty devices
 * into the batch as records, swaps in an empty batch, and writes the full
 * one outside the lock.  Only then are the batch's events handed to the
 * sinks (today events.jsonl), and only then are API requests waiting on
 * that batch answered.  So a transition is on disk before anyone hears of
 * it, and an acknowledged change survives kill -9.
 *
 * When.  The committer commits as soon as there is a waiter or an event
 * (group commit: whatever piled up during the previous write goes into the
 * next one), and otherwise every store.flush_interval, which is how long
 * lastActivityTime of a device that only reports activity can lag on disk.
 *
 * Delivery.  Each sink keeps a durable cursor (the last seq it delivered),
 * written in the next batch.  The events file sink also knows the last seq
 * in the file itself, so after a crash between writing lines and saving
 * its cursor it skips what the file already has: at least once, in order,
 * and in practice exactly once for the file.  The cursor only moves past
 * what write(2) accepted.  When the file cannot be written, the outbox is
 * the backlog: delivery rewinds to what the file holds, the file is opened
 * again every second, and once it works the missing events are read from
 * the outbox and written in order (also after a crash meanwhile).  The
 * path is also checked for a rename once a second (rotation).
 *
 * Failure.  A write that fails (disk full, store.max_size) is retried every
 * second with the same batch plus whatever accumulated; nothing is dropped
 * and waiters keep waiting, so the API stalls rather than lies.
 */
#include "app/persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/clock.h"
#include "app/log.h"
#include "out/format.h"

#define SINK_JSONL "events.jsonl"
#define DELIVER_BATCH 4096
#define SINK_RETRY_MS 1000 /* a failed events file is retried this often */
#define SINK_CHECK_MS 1000 /* and its path checked for a rename this often */

static void put_dirty_cb(void *ud, const ls_device *dev)
{
    ls_daemon *d = ud;
    const char *type = ls_engine_type_name(d->engine, dev);
    ls_store_device rec = {
        .id = ls_device_id(dev),
        .id_len = dev->id_len,
        .type = dev->type ? type : NULL,
        .type_len = dev->type ? strlen(type) : 0,
        .timeout_ms = dev->timeout_ms,
        .last_activity = dev->last_activity,
        .last_connect = dev->last_connect,
        .last_disconnect = dev->last_disconnect,
        .inactivity_alarm = dev->inactivity_alarm,
        .sessions = dev->sessions,
        .active = dev->active,
    };
    if (ls_store_batch_put_device(d->pending, &rec) < 0) d->persist_errors++;
}

void ls_persist_event(ls_daemon *d, const ls_event *ev)
{
    uint64_t seq = ++d->seq;
    ls_buf_reset(&d->line);
    if (ls_format_event(&d->line, d->engine, seq, ev) < 0 ||
        ls_store_batch_event(d->pending, seq, d->line.p, d->line.len) < 0) {
        d->persist_errors++;
        ls_error("persist", "event seq %llu (%s %s) could not be queued", (unsigned long long)seq,
                 ls_event_name(ev->type), ls_device_id(ev->dev));
    }
    d->want_commit = 1;
}

void ls_persist_delete(ls_daemon *d, const char *id, size_t len)
{
    if (ls_store_batch_del_device(d->pending, id, len) < 0) d->persist_errors++;
}

void ls_daemon_commit_unlock(ls_daemon *d)
{
    uint64_t gen = d->pending_gen;
    ls_daemon__wake_timer(d);
    d->want_commit = 1;
    pthread_cond_signal(&d->work_cv);
    while (d->committed_gen < gen && !d->committer_gone) pthread_cond_wait(&d->commit_cv, &d->lock);
    pthread_mutex_unlock(&d->lock);
}

typedef struct deliver_state {
    ls_daemon *d;
    int refused; /* the event log did not take a line */
} deliver_state;

static int deliver_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    deliver_state *ds = ud;
    if (ls_eventlog_append_line(&ds->d->events, seq, line, len) < 0) {
        ds->refused = 1;
        return -1;
    }
    ds->d->delivered = seq;
    return 0;
}

/*
 * Hands committed events up to `upto` to the events file.  Committer thread
 * only (and start-up, before it runs).  A failed write rewinds `delivered`
 * to what the file holds; the next call at or after `sink_retry_at` reopens
 * the file and reads the missing events from the outbox again, so the file
 * gets every event once, in seq order, however long the outage.  Every
 * SINK_CHECK_MS it also reopens the file if its path was renamed away.
 */
static void deliver(ls_daemon *d, uint64_t upto)
{
    ls_eventlog *l = &d->events;
    int64_t now = ls_clock_mono_ns() / 1000000;
    if (l->failed) {
        if (now < d->sink_retry_at) return;
        if (ls_eventlog_reopen(l) < 0) {
            d->sink_retry_at = now + SINK_RETRY_MS;
            return;
        }
        d->delivered = l->seq;
    } else if (now >= d->sink_check_at) {
        d->sink_check_at = now + SINK_CHECK_MS;
        if (ls_eventlog_moved(l)) {
            /* Pending lines go to the old file first: they belong before the rename. */
            if (ls_eventlog_flush(l) == 0) ls_eventlog_reopen(l);
            d->delivered = l->seq;
            if (l->failed) {
                d->sink_retry_at = now + SINK_RETRY_MS;
                return;
            }
        }
    }
    while (d->delivered < upto) {
        uint64_t before = d->delivered;
        deliver_state ds = {.d = d};
        int64_t n = ls_store_read_events(d->store, d->delivered, DELIVER_BATCH, deliver_cb, &ds);
        if (ls_eventlog_flush(l) < 0) {
            d->delivered = l->seq; /* what the file is known to hold */
            d->sink_retry_at = now + SINK_RETRY_MS;
            return;
        }
        if ((n < 0 && !ds.refused) || d->delivered == before) {
            ls_error("persist", "cannot read events after seq %llu from the store",
                     (unsigned long long)d->delivered);
            break;
        }
    }
}

static void *committer_main(void *arg)
{
    ls_daemon *d = arg;
    int64_t last_flush = ls_clock_mono_ns();
    uint64_t cursor_saved = d->delivered;

    pthread_mutex_lock(&d->lock);
    for (;;) {
        int stopping = d->stopping;
        while (!d->want_commit && !stopping) {
            int64_t due = last_flush + d->cfg.store_flush_interval * 1000000;
            if (d->events.failed && d->sink_retry_at * 1000000 < due) due = d->sink_retry_at * 1000000;
            int64_t now = ls_clock_mono_ns();
            if (now >= due) break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t abs = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (due - now);
            ts.tv_sec = abs / 1000000000;
            ts.tv_nsec = abs % 1000000000;
            pthread_cond_timedwait(&d->work_cv, &d->lock, &ts);
            stopping = d->stopping;
        }
        /* Take the pending batch with every device changed since. */
        ls_engine_drain_dirty(d->engine, put_dirty_cb, d);
        /* The file's cursor: only what write(2) accepted. */
        if (d->events.written > cursor_saved) {
            ls_store_batch_cursor(d->pending, SINK_JSONL, d->events.written);
            cursor_saved = d->events.written;
        }
        ls_store_batch *batch = d->pending;
        d->pending = d->spare;
        d->spare = NULL;
        uint64_t gen = d->pending_gen++;
        uint64_t upto = d->seq;
        d->want_commit = 0;
        pthread_mutex_unlock(&d->lock);

        int rc = 0;
        if (ls_store_batch_ops(batch) > 0) {
            int64_t t0 = ls_clock_mono_ns();
            while ((rc = ls_store_write(d->store, batch)) < 0) {
                ls_error("persist", "store write failed: %s; retrying in 1 s", ls_store_strerror(rc));
                if (d->stopping) break;
                sleep(1);
            }
            d->commits++;
            d->commit_ns += (uint64_t)(ls_clock_mono_ns() - t0);
        }
        if (rc == 0) deliver(d, upto);
        last_flush = ls_clock_mono_ns();

        pthread_mutex_lock(&d->lock);
        if (rc < 0) {
            /* Stopping with a failed batch: nothing more can be done. */
            ls_error("persist", "%zu store operations not written", ls_store_batch_ops(batch));
        }
        ls_store_batch_clear(batch);
        d->spare = batch;
        d->committed_gen = gen;
        pthread_cond_broadcast(&d->commit_cv);
        if (stopping && !d->want_commit && ls_store_batch_ops(d->pending) == 0) break;
    }
    d->committer_gone = 1;
    pthread_cond_broadcast(&d->commit_cv);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

typedef struct load_state {
    ls_daemon *d;
    ls_now now;
    uint64_t loaded, refused;
} load_state;

static int load_cb(void *ud, const ls_store_device *rec)
{
    load_state *ls = ud;
    ls_device_state st = {
        .type = rec->type,
        .type_len = rec->type_len,
        .timeout_ms = rec->timeout_ms,
        .last_activity = rec->last_activity,
        .last_connect = rec->last_connect,
        .last_disconnect = rec->last_disconnect,
        .inactivity_alarm = rec->inactivity_alarm,
        .sessions = rec->sessions,
        .active = rec->active,
    };
    int rc = ls_engine_restore(ls->d->engine, rec->id, rec->id_len, &st,
                               (ls_restart_policy)ls->d->cfg.state_restart_policy, ls->now);
    if (rc < 0) {
        ls->refused++;
        ls_error("persist", "stored device %.*s not restored: %s", (int)rec->id_len, rec->id, ls_strerror(rc));
        return 0;
    }
    ls->loaded++;
    return 0;
}

int ls_persist_start(ls_daemon *d)
{
    char dir[4200];
    int rc;
    snprintf(dir, sizeof(dir), "%s/store", d->cfg.data_dir);
    ls_store_options o = {.initial_size = (uint64_t)64 << 20,
                          .max_size = (uint64_t)d->cfg.store_max_size,
                          .sync = d->cfg.store_sync};
    if ((rc = ls_store_open(&d->store, dir, &o)) < 0) return rc;
    d->pending = ls_store_batch_new();
    d->spare = ls_store_batch_new();
    ls_buf_init(&d->line, 1 << 20);
    if (!d->pending || !d->spare) return -ENOMEM;

    int64_t t0 = ls_clock_mono_ns();
    load_state ls = {.d = d, .now = ls_clock_now()};
    if ((rc = ls_store_load_devices(d->store, load_cb, &ls)) < 0) {
        ls_error("persist", "cannot load devices from %s: %s", dir, ls_store_strerror(rc));
        return rc;
    }
    /* seq continues after both the outbox and the file. */
    uint64_t last = ls_store_last_seq(d->store);
    d->seq = last > d->events.seq ? last : d->events.seq;
    /* Delivered: the sink's cursor (never past the outbox), or what the file
     * itself already holds if that is more. */
    uint64_t cursor = ls_store_cursor(d->store, SINK_JSONL);
    if (cursor > last) cursor = last;
    d->delivered = cursor > d->events.seq ? cursor : d->events.seq;
    d->pending_gen = 1;
    d->committed_gen = 0;
    ls_info("persist", "loaded %llu devices (%llu refused) in %.1f ms; restart policy %s; events seq %llu",
            (unsigned long long)ls.loaded, (unsigned long long)ls.refused,
            (double)(ls_clock_mono_ns() - t0) / 1e6, d->cfg.state_restart_policy ? "strict" : "grace",
            (unsigned long long)d->seq);

    /* Catch the file up with what the store committed but never delivered. */
    deliver(d, last);
    pthread_condattr_t ca; /* the committer's timed waits run on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&d->commit_cv, NULL);
    if ((rc = pthread_create(&d->committer, NULL, committer_main, d)) != 0) return -rc;
    d->committer_running = 1;
    return 0;
}

void ls_persist_stop(ls_daemon *d)
{
    if (d->committer_running) {
        pthread_mutex_lock(&d->lock);
        d->stopping = 1;
        d->want_commit = 1;
        pthread_cond_signal(&d->work_cv);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->committer, NULL);
        d->committer_running = 0;
        pthread_cond_destroy(&d->work_cv);
        pthread_cond_destroy(&d->commit_cv);
    }
    ls_store_batch_free(d->pending);
    ls_store_batch_free(d->spare);
    d->pending = d->spare = NULL;
    ls_buf_free(&d->line);
    ls_store_close(d->store);
    d->store = NULL;
}
