/*
 * persist.c - durability: the store, group commit, and event delivery.
 *
 * Flow.  Under the global lock (daemon.h), every event gets the next seq
 * and its JSON line goes into the pending batch (the transactional outbox);
 * deletes go in as ops.  One committer thread turns the pending batch into
 * an LMDB transaction: it takes every shard and the global lock briefly,
 * drains each shard's dirty devices into the batch as records, swaps in an
 * empty batch, and writes the full one outside the locks.  Holding every
 * shard for the drain keeps each event in the same batch as the device
 * state that caused it.  Only then are the batch's events handed to the
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
 * Other sinks (MQTT, webhooks: persist.h) run on their own threads, read
 * the committed outbox themselves and acknowledge; their cursors go into
 * the next batch like the file's.
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
 * Failure.  A write that fails (disk full, store.max_size) is retried every
 * second with the same batch plus whatever accumulated; nothing is dropped
 * and waiters keep waiting, so the API stalls rather than lies.
 */
#include "app/persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "app/alarming.h"
#include "app/clock.h"
#include "app/load.h"
#include "app/log.h"
#include "app/shards.h"
#include "out/format.h"

#define SINK_JSONL "events.jsonl"
#define DELIVER_BATCH 4096
/* Retention works in steps of a fraction of events.retention, at most these. */
#define RETENTION_CHECK_MS 10000
#define MARK_EVERY_MS 60000
#define PRUNE_MAX 100000
#define SINK_RETRY_MS 1000 /* a failed events file is retried this often */
#define SINK_CHECK_MS 1000 /* and its path checked for a rename this often */

typedef struct drain_state {
    ls_daemon *d;
    const ls_engine *e; /* the shard being drained */
} drain_state;

static void put_dirty_cb(void *ud, const ls_device *dev)
{
    const drain_state *ds = ud;
    ls_daemon *d = ds->d;
    const char *type = ls_engine_type_name(ds->e, dev);
    ls_availability av = {0};
    if (dev->flags & LS_DEV_C8Y) ls_engine_availability(ds->e, dev, &av);
    ls_store_device rec = {
        .id = ls_device_id(dev),
        .id_len = dev->id_len,
        .type = dev->type ? type : NULL,
        .type_len = dev->type ? strlen(type) : 0,
        .timeout_ms = (dev->flags & LS_DEV_OWN_TIMEOUT) ? dev->timeout_ms : 0,
        .has_c8y = (uint8_t)av.has_c8y,
        .response_interval = av.response_interval,
        .last_activity = dev->last_activity,
        .last_connect = dev->last_connect,
        .last_disconnect = dev->last_disconnect,
        .inactivity_alarm = dev->inactivity_alarm,
        .sessions = dev->sessions,
        .active = dev->active,
    };
    if (ls_store_batch_put_device(d->pending, &rec) < 0)
        __atomic_fetch_add(&d->persist_errors, 1, __ATOMIC_RELAXED);
}

void ls_persist_event(ls_daemon *d, const ls_event *ev)
{
    uint64_t seq = ++d->seq;
    ls_buf_reset(&d->line);
    if ((unsigned)ev->type < LS_EV__COUNT) d->events_by_type[ev->type]++;
    const ls_engine *e = ev->dev ? ls_daemon_engine(d, ls_device_id(ev->dev), ev->dev->id_len) : NULL;
    if (ls_format_event(&d->line, e, d->alarms, seq, ev) < 0 ||
        ls_store_batch_event(d->pending, seq, d->line.p, d->line.len) < 0) {
        __atomic_fetch_add(&d->persist_errors, 1, __ATOMIC_RELAXED);
        ls_error("persist", "event seq %llu (%s %s) could not be queued", (unsigned long long)seq,
                 ls_event_name(ev->type),
                 ev->alarm ? ev->alarm->source : ev->dev ? ls_device_id(ev->dev) : ev->source);
    }
    d->want_commit = 1;
}

void ls_persist_type(ls_daemon *d, const char *name, size_t len, const ls_type_config *c)
{
    int rc;
    if (c) {
        ls_store_type t = {
            .name = name,
            .name_len = len,
            .timeout_ms = c->timeout_ms,
            .has_ri = c->has_ri,
            .response_interval = c->response_interval,
            .monitored = c->monitored,
            .severity = (int)c->severity,
        };
        rc = ls_store_batch_put_type(d->pending, &t);
    } else {
        rc = ls_store_batch_del_type(d->pending, name, len);
    }
    if (rc < 0) d->persist_errors++;
}

void ls_persist_delete(ls_daemon *d, const char *id, size_t len)
{
    if (ls_store_batch_del_device(d->pending, id, len) < 0)
        __atomic_fetch_add(&d->persist_errors, 1, __ATOMIC_RELAXED);
}

void ls_daemon_commit_unlock(ls_daemon *d)
{
    uint64_t gen = d->pending_gen;
    ls_daemon__wake_timer(d);
    d->want_commit = 1;
    pthread_cond_signal(&d->work_cv);
    ls_daemon__release_shards(d, d->locked); /* the committer needs them to drain */
    while (d->committed_gen < gen && !d->committer_gone) pthread_cond_wait(&d->commit_cv, &d->lock);
    pthread_mutex_unlock(&d->lock);
}

uint64_t ls_daemon_unlock_to_commit(ls_daemon *d)
{
    uint64_t gen = d->pending_gen;
    ls_daemon__wake_timer(d);
    d->want_commit = 1;
    pthread_cond_signal(&d->work_cv);
    int held = d->locked;
    pthread_mutex_unlock(&d->lock);
    ls_daemon__release_shards(d, held);
    return gen;
}

uint64_t ls_daemon_committed_gen(ls_daemon *d)
{
    return __atomic_load_n(&d->committed_gen, __ATOMIC_ACQUIRE);
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
    uint64_t upto = ls_store_prunable(d->store, now_wall - d->cfg.events_retention);
    if (upto <= d->pruned_upto) return;
    uint64_t keep = d->events.written;
    uint64_t behind = (uint64_t)held(SINK_JSONL, keep, upto, &d->events_behind);
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->nsinks; i++) {
        ls_sink *k = &d->sinks[i];
        behind += (uint64_t)held(k->name, k->acked, upto, &k->behind);
        if (k->acked < keep) keep = k->acked;
    }
    pthread_mutex_unlock(&d->lock);
    __atomic_store_n(&d->sinks_behind, behind, __ATOMIC_RELAXED);
    if (keep < upto) upto = keep;
    if (upto - d->pruned_upto > PRUNE_MAX) upto = d->pruned_upto + PRUNE_MAX;
    if (upto <= d->pruned_upto || ls_store_batch_prune(batch, upto) < 0) return;
    __atomic_fetch_add(&d->pruned_events, upto - d->pruned_upto, __ATOMIC_RELAXED);
    __atomic_store_n(&d->pruned_upto, upto, __ATOMIC_RELAXED);
}

static void *committer_main(void *arg)
{
    ls_daemon *d = arg;
    int64_t last_flush = ls_clock_mono_ns();
    uint64_t cursor_saved = d->delivered;
    uint64_t batched = d->seq; /* last seq put in a batch */
    int64_t mark_every = d->cfg.events_retention / 8, check_every = d->cfg.events_retention / 4;
    if (mark_every > MARK_EVERY_MS) mark_every = MARK_EVERY_MS;
    if (check_every > RETENTION_CHECK_MS) check_every = RETENTION_CHECK_MS;

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
        /* Take the pending batch with every device changed since: every
         * shard held (lock order: shards, then global), so that no event
         * lands in this batch without the device state that caused it. */
        pthread_mutex_unlock(&d->lock);
        ls_daemon_lock(d);
        for (unsigned i = 0; i < d->shards->n; i++) {
            drain_state ds = {.d = d, .e = d->shards->shard[i].engine};
            ls_engine_drain_dirty(d->shards->shard[i].engine, put_dirty_cb, &ds);
        }
        ls_shards_unlock_all(d->shards); /* the global lock stays held */
        /* The file's cursor: only what write(2) accepted. */
        if (d->events.written > cursor_saved) {
            ls_store_batch_cursor(d->pending, SINK_JSONL, d->events.written);
            cursor_saved = d->events.written;
        }
        for (int i = 0; i < d->nsinks; i++) {
            ls_sink *k = &d->sinks[i];
            if (k->acked > k->saved && ls_store_batch_cursor(d->pending, k->name, k->acked) == 0)
                k->saved = k->acked;
        }
        ls_store_batch *batch = d->pending;
        d->pending = d->spare;
        d->spare = NULL;
        uint64_t gen = d->pending_gen++;
        uint64_t upto = d->seq;
        d->want_commit = 0;
        int ready = __atomic_load_n(&d->ready, __ATOMIC_ACQUIRE);
        pthread_mutex_unlock(&d->lock);

        ls_now now = ls_clock_now();
        if (upto > batched && now.wall - d->last_mark_wall >= mark_every &&
            ls_store_batch_mark(batch, batched + 1, now.wall) == 0)
            d->last_mark_wall = now.wall;
        if (ready && now.mono - d->last_retention_mono >= check_every) {
            d->last_retention_mono = now.mono;
            retention(d, batch, now.wall);
        }

        int rc = 0;
        if (ls_store_batch_ops(batch) > 0) {
            int64_t t0 = ls_clock_mono_ns();
            while ((rc = ls_store_write(d->store, batch)) < 0) {
                ls_error("persist", "store write failed: %s; retrying in 1 s", ls_store_strerror(rc));
                if (d->stopping) break;
                sleep(1);
            }
            uint64_t took = (uint64_t)(ls_clock_mono_ns() - t0);
            __atomic_fetch_add(&d->commits, 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&d->commit_ns, took, __ATOMIC_RELAXED);
            ls_histogram_observe(&d->metrics.commit, took);
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
        __atomic_store_n(&d->committed_gen, gen, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&d->commit_cv);
        if (rc == 0) {
            batched = upto;
            __atomic_store_n(&d->committed_seq, upto, __ATOMIC_RELEASE);
            pthread_cond_broadcast(&d->sink_cv);
            for (int i = 0; i < d->ncommit_fds; i++) {
                uint64_t one = 1;
                ssize_t w = write(d->commit_fds[i], &one, sizeof(one));
                (void)w; /* full (EAGAIN): the reader has a wake-up pending anyway */
            }
        }
        if (d->on_commit) {
            void (*hook)(void *, uint64_t) = d->on_commit;
            void *ud = d->on_commit_ud;
            pthread_mutex_unlock(&d->lock);
            hook(ud, gen);
            pthread_mutex_lock(&d->lock);
        }
        if (stopping && !d->want_commit && ls_store_batch_ops(d->pending) == 0) break;
    }
    d->committer_gone = 1;
    pthread_cond_broadcast(&d->commit_cv);
    pthread_mutex_unlock(&d->lock);
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
    if ((rc = ls_store_open(&d->store, dir, &o)) < 0) return rc;
    d->pending = ls_store_batch_new();
    d->spare = ls_store_batch_new();
    ls_buf_init(&d->line, 1 << 20);
    if (!d->pending || !d->spare) return -ENOMEM;

    /* seq continues after both the outbox and the file. */
    uint64_t last = ls_store_last_seq(d->store);
    d->seq = last > d->events.seq ? last : d->events.seq;
    d->committed_seq = last;
    uint64_t first = ls_store_first_seq(d->store);
    d->pruned_upto = first ? first - 1 : last;
    /* Delivered: the sink's cursor (never past the outbox), or what the file
     * itself already holds if that is more. */
    uint64_t cursor = ls_store_cursor(d->store, SINK_JSONL);
    if (cursor > last) cursor = last;
    d->delivered = cursor > d->events.seq ? cursor : d->events.seq;
    d->pending_gen = 1;
    d->committed_gen = 0;

    pthread_condattr_t ca; /* timed waits run on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->work_cv, &ca);
    pthread_cond_init(&d->sink_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&d->commit_cv, NULL);
    d->cvs_ready = 1;
    return 0;
}

static int load_type_cb(void *ud, const ls_store_type *t)
{
    type_load *ls = ud;
    ls_type_config c = {
        .timeout_ms = t->timeout_ms,
        .has_ri = t->has_ri,
        .response_interval = t->response_interval,
        .monitored = t->monitored,
        .severity = (ls_severity)t->severity,
    };
    int rc = ls_shards_type_put(ls->d->shards, t->name, t->name_len, &c, ls->now, NULL);
    if (rc < 0)
        ls_error("persist", "stored device type %.*s not restored: %s", (int)t->name_len, t->name, ls_strerror(rc));
    return 0;
}

int ls_persist_start(ls_daemon *d)
{
    int rc;
    int64_t t0 = ls_clock_mono_ns();
    ls_now now = ls_clock_now();
    type_load tl = {.d = d, .now = now};
    if ((rc = ls_store_load_types(d->store, load_type_cb, &tl)) < 0) {
        ls_error("persist", "cannot load device types from %s/store: %s", d->cfg.data_dir, ls_store_strerror(rc));
        return rc;
    }
    ls_load_result ls;
    if ((rc = ls_load_devices_sharded(d->store, d->shards, (ls_restart_policy)d->cfg.state_restart_policy, now,
                                      &d->loaded, &ls)) < 0) {
        ls_error("persist", "cannot load devices from %s/store: %s", d->cfg.data_dir, ls_store_strerror(rc));
        return rc;
    }
    if ((rc = ls_alarming_load(d)) < 0) return rc;
    ls_info("persist", "loaded %llu devices (%llu refused) in %.1f ms; restart policy %s; events seq %llu",
            (unsigned long long)ls.loaded, (unsigned long long)ls.refused,
            (double)(ls_clock_mono_ns() - t0) / 1e6, d->cfg.state_restart_policy ? "strict" : "grace",
            (unsigned long long)d->seq);

    /* Catch the file up with what the store committed but never delivered. */
    deliver(d, d->committed_seq);
    if ((rc = pthread_create(&d->committer, NULL, committer_main, d)) != 0) return -rc;
    d->committer_running = 1;
    return 0;
}

int ls_persist_sink_open(ls_daemon *d, const char *name, uint64_t *cursor)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= LS_SINK_NAME_MAX || !strcmp(name, SINK_JSONL)) return -EINVAL;
    pthread_mutex_lock(&d->lock);
    int id = -ENOSPC;
    for (int i = 0; i < d->nsinks; i++)
        if (!strcmp(d->sinks[i].name, name)) id = -EEXIST;
    if (id == -ENOSPC && d->nsinks < LS_SINKS_MAX) {
        uint64_t c = ls_store_cursor(d->store, name);
        if (c > d->committed_seq) c = d->committed_seq; /* never past the outbox */
        id = d->nsinks++;
        ls_sink *k = &d->sinks[id];
        memcpy(k->name, name, n + 1);
        k->acked = k->saved = c;
        *cursor = c;
    }
    pthread_mutex_unlock(&d->lock);
    if (id < 0) ls_error("persist", "sink %s: cannot register: %s", name, strerror(-id));
    return id;
}

void ls_persist_sink_ack(ls_daemon *d, int sink, uint64_t seq)
{
    if (sink < 0) return;
    pthread_mutex_lock(&d->lock);
    if (sink < d->nsinks && seq > d->sinks[sink].acked && seq <= d->committed_seq)
        d->sinks[sink].acked = seq;
    pthread_mutex_unlock(&d->lock);
}

uint64_t ls_persist_committed(ls_daemon *d)
{
    return __atomic_load_n(&d->committed_seq, __ATOMIC_ACQUIRE);
}

int ls_persist_watch(ls_daemon *d)
{
    int rc = -ENOSPC;
    pthread_mutex_lock(&d->lock);
    if (d->ncommit_fds < (int)(sizeof(d->commit_fds) / sizeof(d->commit_fds[0]))) {
        rc = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (rc < 0) rc = -errno;
        else d->commit_fds[d->ncommit_fds++] = rc;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

uint64_t ls_persist_wait(ls_daemon *d, uint64_t after, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t abs = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (int64_t)timeout_ms * 1000000;
    ts.tv_sec = abs / 1000000000;
    ts.tv_nsec = abs % 1000000000;
    pthread_mutex_lock(&d->lock);
    while (d->committed_seq <= after && !d->stopping)
        if (pthread_cond_timedwait(&d->sink_cv, &d->lock, &ts) != 0) break;
    uint64_t c = d->committed_seq;
    pthread_mutex_unlock(&d->lock);
    return c;
}

void ls_persist_stop(ls_daemon *d)
{
    if (d->committer_running) {
        pthread_mutex_lock(&d->lock);
        d->stopping = 1;
        d->want_commit = 1;
        pthread_cond_signal(&d->work_cv);
        pthread_cond_broadcast(&d->sink_cv);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->committer, NULL);
        d->committer_running = 0;
    }
    if (d->cvs_ready) {
        pthread_cond_destroy(&d->work_cv);
        pthread_cond_destroy(&d->commit_cv);
        pthread_cond_destroy(&d->sink_cv);
        d->cvs_ready = 0;
    }
    for (int i = 0; i < d->ncommit_fds; i++)
        close(d->commit_fds[i]);
    d->ncommit_fds = 0;
    ls_store_batch_free(d->pending);
    ls_store_batch_free(d->spare);
    d->pending = d->spare = NULL;
    ls_buf_free(&d->line);
    ls_store_close(d->store);
    d->store = NULL;
}
