/*
 * daemon.h - the running daemon: its shards, the global lock, sinks, loop.
 *
 * Threads.  The devices live in engine.shards shards (core/shards.h), each
 * one pure engine with its own table and timing wheel, written by one
 * worker thread that applies queued activity batches and fires its wheel.
 * libmicrohttpd's threads serve the API; the main thread runs the loop of
 * the history and alarm pruning; the committer
 * thread writes the store (persist.c); with MQTT on, one thread reads the
 * broker (src/in/mqtt.c) and with UDP on, one thread reads the socket:
 * both feed the shards' queues.  Outputs add one thread for all webhooks
 * (out/webhook.c), one for MQTT publishing and one that wakes event
 * streams (api/stream.c); the events file (out/eventlog.c) is written on
 * the committer's thread, right after each commit.  They read the outbox
 * through core/outbox.h and never touch an engine.
 *
 * Locks.  Each shard has a mutex; the daemon has one global `lock` for
 * what is shared: the event seq and the outbox (pending batch), alarms,
 * history, sinks (each shard's HTTP reporter is under its shard's mutex).
 * Order: shard mutexes in index order, then `lock`.  ls_daemon_lock()
 * takes every shard and the global lock (global operations: stats, types,
 * MQTT source transitions); ls_daemon_lock_id() takes one device's shard
 * and the global lock (device routes); both fill a token (ls_held) that
 * the caller keeps on its stack and hands back to leave: which shards are
 * held is the caller's, not the daemon's, to know.  A shard worker, and
 * HTTP bulk (ls_shards_apply()), hold one shard for one batch and take the
 * global lock only when its engine emits an event.  Which of the two a
 * shard's holder does is its critical section (shards.h), which the
 * engine's event callbacks read.  So every event gets its seq under the
 * global lock, seqs are strictly increasing, and an event is in the same
 * pending batch as the device state that caused it.
 *
 * Checked.  The global and shard locks are ls_mutex (base/assert.h): in
 * Debug and sanitizer builds the functions documented "under the global
 * lock" (ls_daemon__event(), ls_persist_event() and the other outbox
 * writers, the alarm glue) assert that the calling thread holds it, the
 * shard layer asserts its lock wherever it touches an engine (and that an
 * event comes inside a critical section), and the "committer thread"
 * fields below are asserted to be touched by that thread only
 * (committer_thread).  Fields shared without a lock are _Atomic.  make
 * test-tsan runs the threaded tests under ThreadSanitizer.
 */
#ifndef LS_DAEMON_H
#define LS_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/assert.h"
#include "conf/config.h"
#include "core/flush.h"
#include "core/history.h"
#include "core/metrics.h"
#include "core/stats.h"
#include "engine/alarms.h"
#include "engine/engine.h"
#include "engine/reporting.h"
#include "core/outbox.h"
#include "core/shards.h"
#include "store/store.h"

struct ls_webhooks;
struct ls_eventlog_sink;

/* A durable event consumer (core/outbox.h), under `lock`; `deliver` and
 * `deliver_ud` are set before the committer starts and read by it without
 * the lock. */
#define LS_SINKS_MAX 32
typedef struct ls_sink {
    char name[LS_SINK_NAME_MAX];
    uint64_t acked;               /* last seq the sink reported delivered */
    uint64_t saved;               /* last cursor written to the store */
    int behind;                   /* holding events older than events.retention */
    ls_outbox_deliver_cb deliver; /* an inline sink (NULL: its own thread) */
    void *deliver_ud;
} ls_sink;

typedef struct ls_daemon {
    ls_config cfg;
    struct ls_shards *shards; /* the engines (shards.h) */
    _Atomic uint64_t devices; /* devices of every shard, for state.max_devices (relaxed) */
    ls_mutex lock;            /* the global lock (above) */
    int wake_fd;              /* eventfd: wakes the timer loop */
    int signal_fd;            /* signalfd: SIGINT, SIGTERM (stop), SIGHUP (reload) */
    int lock_fd;              /* flock on <data_dir>/lastseen.lock (lockfile.h) */
    int64_t wake_at;          /* mono ms the loop sleeps until (under lock) */
    int64_t started_wall;
    struct ls_http *http;
    struct ls_udp *udp;                    /* NULL unless udp.listen is set */
    ls_alarms *alarms;                     /* unavailability alarms (alarming.c), under lock */
    uint64_t events_by_type[LS_EV__COUNT]; /* events logged since start, under lock */
    int64_t alarm_prune_mono;              /* timer loop: last alarms.retention pass */
    struct ls_mqtt *mqtt;                  /* MQTT input (src/in/mqtt.c), NULL when off */
    struct ls_mqtt_pub *mqtt_pub;          /* MQTT event publisher (src/out/mqtt_pub.c) */
    struct ls_ingest *ingest;              /* the inputs' port (ingest.h), made by app/root.c */
    struct ls_cluster *cluster;            /* cluster mode (src/cluster/), NULL when off */

    /* Durability (persist.c).  Fields below `lock` are guarded by it, except
     * where noted. */
    ls_store *store;
    ls_store_batch *pending; /* the outbox and changes of the next commit */
    ls_store_batch *spare;
    ls_buf line;                    /* formatting buffer for event lines */
    uint64_t seq;                   /* last event seq assigned */
    uint64_t pending_gen;           /* generation `pending` will commit as */
    _Atomic uint64_t committed_gen; /* last generation on disk and delivered to the inline
                                     * sinks; written under `lock` (release), read without it */
    int want_commit;
    _Atomic int stopping; /* written under `lock`; the committer also reads it without */
    int committer_gone;
    int committer_running;
    pthread_t committer;
    pthread_cond_t work_cv;   /* wakes the committer */
    pthread_cond_t commit_cv; /* wakes requests waiting for a commit */
    /* The thread the "committer thread" fields belong to: the main thread
     * until ls_persist_start() starts the committer, then the committer
     * (LS_ASSERT_THREAD). */
    ls_thread_owner committer_thread;
    _Atomic uint64_t commits, commit_ns, persist_errors; /* counters, any thread (relaxed) */
    /* Store faults (persist.c, "Failure"), written by the committer, read by
     * any thread (relaxed): the code of the last failed write while writes
     * fail (a -errno such as -ENOSPC, or LS_STORE_EFULL), 0 once one
     * succeeds; since when (wall ms); failed writes since start. */
    _Atomic int store_error;
    _Atomic int64_t store_failing_since;
    _Atomic uint64_t store_failures;
    _Atomic int64_t stop_deadline; /* mono ns the final commit is given up at (0: running) */
    _Atomic int unsaved;           /* stopping: something could not be saved (exit 1) */
    ls_flush *flush;               /* committer thread: flush passes (flush.c); the pass's
                                    * tag is written and read (ls_flush_tag()) under `lock` */
    ls_flush_stats flush_stats;    /* the last pass's figures, under `lock` */

    /* The outbox's sinks and watches (outbox.c), under `lock`. */
    ls_sink sinks[LS_SINKS_MAX];
    int nsinks;
    _Atomic uint64_t durable_seq;     /* every event <= it is in the store (release / acquire) */
    _Atomic uint64_t committed_seq;   /* and delivered to the inline sinks: what readers see;
                                       * written under `lock` (release) */
    int watch_fds[LS_OUTBOX_WATCHES]; /* eventfds written when committed_seq moves */
    int nwatch;
    /* Committer thread, while the inline sinks deliver: the batch just
     * written (events deliver_first..deliver_last), which their scans read
     * instead of the map, and where the last scan stopped in it. */
    const ls_store_batch *deliver_batch;
    uint64_t deliver_first, deliver_last, deliver_pos_seq;
    size_t deliver_pos;
    _Atomic uint64_t pruned_upto;   /* written by the committer: outbox holds seq > it */
    _Atomic uint64_t pruned_events; /* written by the committer: total pruned by retention */
    _Atomic uint64_t sinks_behind;  /* written by the committer: sinks holding events past
                                     * events.retention */
    int64_t last_mark_wall;         /* committer thread: last retention mark */
    int64_t last_retention_mono;
    int cvs_ready;     /* the condition variables exist */
    _Atomic int ready; /* devices loaded, API open (release / acquire) */
    /* Called by the committer, without `lock`, after each commit with the
     * committed generation: the HTTP server answers requests waiting on it. */
    void (*on_commit)(void *ud, uint64_t gen);
    void *on_commit_ud;
    _Atomic uint64_t loaded; /* devices restored so far (relaxed) */

    /* Outputs. */
    ls_metrics metrics;                /* counters for /metrics (metrics.h) */
    int http_source;                   /* this input's id in metrics */
    struct ls_eventlog_sink *eventlog; /* events.file (out/eventlog.c) */
    struct ls_webhooks *webhooks;      /* NULL without [webhook.*] sections */

    ls_history history; /* fleet counts every 10 s, under `lock` */

    /* Adapters' figures (stats.h): written before ready, read-only after. */
    ls_stats_port stats_ports[LS_STATS_PORTS_MAX];
    int nstats_ports;
} ls_daemon;

/*
 * The core's life cycle, driven by the composition root (app/root.c):
 * ls_core_open() sets up the engine shards and the alarms and opens the
 * store (the sinks that keep their own copy of the events open then, and
 * the API may start after it and answer "starting");
 * ls_core_start() restores the devices, starts the committer and the shard
 * workers; ls_core_ready() opens the API for requests.  ls_core_tick() is
 * one turn of the main loop (history, alarm pruning) and returns the mono
 * ms of the next.  Stopping: ls_core_commit_waiting() commits what requests
 * wait for, ls_core_stop_ingest() drains and stops the shard workers,
 * ls_core_stop_committer() makes the final commit and stops the committer
 * (its last commit hook runs then: the API must be stopped, not yet freed;
 * the inline sinks deliver the final commit then, and the outbox can
 * still be read), ls_core_close() closes the store and frees the rest.
 */
int ls_core_open(ls_daemon *d, const ls_config *cfg);
int ls_core_start(ls_daemon *d);
void ls_core_ready(ls_daemon *d);
int64_t ls_core_tick(ls_daemon *d);
void ls_core_commit_waiting(ls_daemon *d);
/* After ls_core_close(): 1 if the final commit could not save everything
 * (the store failed past store.shutdown_wait). */
int ls_core_unsaved(const ls_daemon *d);
void ls_core_stop_ingest(ls_daemon *d);
void ls_core_stop_committer(ls_daemon *d);
void ls_core_close(ls_daemon *d);

/* The engine settings of configuration cfg, as every shard's engine runs
 * with them (the seed and the shared device count are left 0 for the
 * caller).  Also what `lastseen export` resolves stored devices with. */
ls_engine_config ls_core_engine_config(const ls_config *cfg);

/*
 * The critical sections of the daemon's state.  ls_daemon_lock() enters
 * the section of every shard and the global state; ls_daemon_lock_id()
 * that of one device's shard and the global state, and returns that
 * shard's engine (for calls that touch one device only).  Either fills
 * the caller's token `h`, which names the shards held and is the
 * GLOBAL_HELD section hung on them (shards.h, "Critical sections"), so
 * that the engines' events find the global lock held: the caller keeps it
 * on its stack for the span of the section, does not copy it, and passes
 * it to the call that leaves, which takes the section off the shards and
 * marks the token released (with assertions on, a token used again after
 * that, or a copy, fails).  Leaving with ls_daemon_unlock() wakes the
 * shards' workers whose next deadline moved earlier, and the committer if
 * events wait.
 */
#define LS_HELD_ALL (-1)  /* every shard */
#define LS_HELD_NONE (-2) /* released */
typedef struct ls_held {
    int shard;            /* the one shard held, LS_HELD_ALL or LS_HELD_NONE */
    ls_shard_section sec; /* on the shards held, for the span */
} ls_held;

void ls_daemon_lock(ls_daemon *d, ls_held *h);
ls_engine *ls_daemon_lock_id(ls_daemon *d, ls_held *h, const char *id, size_t len);
void ls_daemon_unlock(ls_daemon *d, ls_held *h);

/* The engine owning a device (any thread; use it under the right lock). */
ls_engine *ls_daemon_engine(ls_daemon *d, const char *id, size_t len);

/* Leaves the critical section `h` and waits until everything changed in it
 * is committed to the store and its events delivered, or until the mono
 * ns deadline_ns.  Returns 0 once committed; the store's error (a -errno,
 * LS_STORE_EFULL) or -ETIMEDOUT at the deadline; -ECANCELED if the
 * committer stopped without committing it. */
int ls_daemon_commit_unlock(ls_daemon *d, ls_held *h, int64_t deadline_ns);

/* Leaves the critical section `h` at once, asking for a commit of
 * everything changed in it; returns the generation that commit will have.
 * The change is durable once committed_gen reaches it (on_commit says
 * when; ls_service_committed_gen() reads it). */
uint64_t ls_daemon_unlock_to_commit(ls_daemon *d, ls_held *h);

/* Inside the section `h`: wakes the workers of the shards it holds whose
 * next deadline (wheel or reporter) moved earlier than the time they sleep
 * until (for daemon.c and persist.c). */
void ls_daemon__wake_timer(ls_daemon *d, const ls_held *h);

/* Takes the section `h` off its shards and releases their locks (the
 * global lock is still held: it is released after them) and marks `h`
 * released, for persist.c's commit variants and the committer's own
 * holds. */
void ls_daemon__release_shards(ls_daemon *d, ls_held *h);

/* An event from an engine, under the global lock: seq, outbox, alarms. */
void ls_daemon__event(ls_daemon *d, const ls_event *ev);

#endif
