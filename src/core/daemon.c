/*
 * daemon.c - the core's life cycle (open, start, the main loop's turn,
 * close) and its locks.  The adapters around it (HTTP, UDP, MQTT, sinks)
 * are started and stopped by the composition root, app/root.c.
 *
 * The shards' workers fire the engines' deadlines and end the HTTP
 * reporters' periods (shards.c).  The main loop (app/root.c) sleeps in
 * ppoll(2) for a second or until a signal; each turn, ls_core_tick() reads
 * the clock once, hands the fleet counts to the history ring (history.c)
 * and prunes old alarms.
 */
#include "core/daemon.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alarming.h"
#include "base/clock.h"
#include "base/lockfile.h"
#include "base/err.h"
#include "base/log.h"
#include "core/persist.h"
#include "core/shards.h"

#define IDLE_WAKE_MS 1000
#define ALARM_PRUNE_EVERY_MS 60000 /* or a quarter of alarms.retention if shorter */

void ls_daemon__event(ls_daemon *d, const ls_event *ev)
{
    LS_ASSERT_LOCKED(&d->lock);
    if (ev->type == LS_EV_INACTIVITY) {
        int64_t late_ms = ev->detected_at - ev->ts; /* < 0 after a wall clock step back */
        ls_histogram_observe(&d->metrics.lateness, late_ms > 0 ? (uint64_t)late_ms * 1000000 : 0);
    }
    ls_persist_event(d, ev);
    ls_alarming_event(d, ev);
}

ls_engine *ls_daemon_engine(ls_daemon *d, const char *id, size_t len)
{
    return ls_shards_of(d->shards, id, len)->engine;
}

void ls_daemon_lock(ls_daemon *d, ls_held *h)
{
    ls_shards_lock_all(d->shards);
    ls_mutex_lock(&d->lock);
    h->shard = LS_HELD_ALL;
    for (unsigned i = 0; i < d->shards->n; i++)
        ls_shard_section_enter(&d->shards->shard[i], &h->sec, LS_SECTION_GLOBAL_HELD);
}

ls_engine *ls_daemon_lock_id(ls_daemon *d, ls_held *h, const char *id, size_t len)
{
    ls_shard *s = ls_shards_of(d->shards, id, len);
    ls_mutex_lock(&s->lock);
    ls_mutex_lock(&d->lock);
    h->shard = (int)s->index;
    ls_shard_section_enter(s, &h->sec, LS_SECTION_GLOBAL_HELD);
    return s->engine;
}

/* With assertions on: `h` is a token not yet released, and the calling
 * thread holds the shard locks it names, with `h` as their section. */
static inline void assert_shards_held(ls_daemon *d, const ls_held *h)
{
    LS_ASSERT(h->shard >= LS_HELD_ALL && h->shard < (int)d->shards->n);
    for (unsigned i = 0; i < d->shards->n; i++)
        if (h->shard == LS_HELD_ALL || (unsigned)h->shard == i) {
            LS_ASSERT_LOCKED(&d->shards->shard[i].lock);
            LS_ASSERT(d->shards->shard[i].section == &h->sec);
        }
}

void ls_daemon__wake_timer(ls_daemon *d, const ls_held *h)
{
    LS_ASSERT_LOCKED(&d->lock);
    assert_shards_held(d, h);
    if (h->shard >= 0) {
        ls_shard_wake_if_earlier(&d->shards->shard[h->shard]);
    } else {
        for (unsigned i = 0; i < d->shards->n; i++)
            ls_shard_wake_if_earlier(&d->shards->shard[i]);
    }
}

void ls_daemon__release_shards(ls_daemon *d, ls_held *h)
{
    LS_ASSERT_LOCKED(&d->lock);
    assert_shards_held(d, h);
    if (h->shard >= 0) {
        ls_shard *s = &d->shards->shard[h->shard];
        ls_shard_section_leave(s, &h->sec);
        ls_mutex_unlock(&s->lock);
    } else {
        for (unsigned i = 0; i < d->shards->n; i++)
            ls_shard_section_leave(&d->shards->shard[i], &h->sec);
        ls_shards_unlock_all(d->shards);
    }
    h->shard = LS_HELD_NONE;
}

void ls_daemon_unlock(ls_daemon *d, ls_held *h)
{
    ls_daemon__wake_timer(d, h);
    if (d->want_commit) pthread_cond_signal(&d->work_cv);
    ls_daemon__release_shards(d, h);
    ls_mutex_unlock(&d->lock);
}

/* engine.shards, 0 resolved to the online cores. */
static unsigned shard_count(const ls_config *cfg)
{
    long n = cfg->engine_shards;
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > LS_SHARDS_MAX) n = LS_SHARDS_MAX;
    return (unsigned)n;
}

ls_engine_config ls_core_engine_config(const ls_config *cfg)
{
    return (ls_engine_config){
        .default_timeout_ms = cfg->state_default_inactivity_timeout,
        .max_clock_skew_ms = cfg->state_max_clock_skew,
        .max_devices = (uint64_t)cfg->state_max_devices,
        .grace_ms = cfg->availability_grace,
        .unmonitored_default = !cfg->state_monitor_by_default,
        .session_timeout_ms = cfg->transport_session_inactivity_timeout,
        .event_snapshots = 1, /* ls_persist_event() writes the device with its event */
    };
}

int ls_core_open(ls_daemon *d, const ls_config *cfg)
{
    int rc;
    *d = (ls_daemon){.cfg = *cfg, .wake_fd = -1, .signal_fd = -1, .wake_at = INT64_MAX};
    d->lock_fd = -1;
    ls_mutex_init(&d->lock);
    ls_metrics_init(&d->metrics);
    d->http_source = ls_metrics_source(&d->metrics, "http");
    d->started_wall = ls_clock_now().wall;

    /* Signals are taken by signalfd in the loop; block them before any
     * thread starts so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->signal_fd < 0 || d->wake_fd < 0) {
        ls_error("daemon", "signalfd/eventfd: %s", strerror(errno));
        return -errno;
    }

    /* Creates store.data_dir if needed; one daemon per directory. */
    if ((rc = ls_lockfile_acquire(cfg->data_dir, "refusing to start a second daemon on it",
                                  &d->lock_fd)) < 0)
        return rc;
    ls_engine_config ec = ls_core_engine_config(cfg);
    if (getrandom(&ec.seed, sizeof(ec.seed), 0) != sizeof(ec.seed))
        ec.seed = (uint64_t)ls_clock_mono_ns();
    ec.shared_devices = &d->devices;
    if ((rc = ls_alarming_open(d, ec.seed * 3 + 1)) < 0) return rc;
    if ((rc = ls_shards_new(&d->shards, d, shard_count(cfg), &ec)) < 0) {
        ls_error("daemon", "engine: %s", ls_strerror(rc));
        return rc;
    }
    if ((rc = ls_shards_set_reporting(d->shards, (ls_report_strategy)cfg->http_reporting_strategy,
                                      cfg->http_reporting_period, ec.seed * 5 + 3)) < 0) {
        ls_error("daemon", "http reporting strategy: %s", ls_strerror(rc));
        return rc;
    }
    /* HTTP answers /healthz with "starting" while the devices load. */
    if ((rc = ls_persist_open(d)) < 0) return rc;
    return 0;
}

int ls_core_start(ls_daemon *d)
{
    int rc;
    if ((rc = ls_persist_start(d)) < 0) return rc;
    return ls_shards_start(d->shards);
}

void ls_core_ready(ls_daemon *d)
{
    atomic_store_explicit(&d->ready, 1, memory_order_release);
}

int64_t ls_core_tick(ls_daemon *d)
{
    ls_held h;
    ls_daemon_lock(d, &h);
    ls_now now = ls_clock_now();
    ls_engine_stats st;
    ls_shards_engine_stats(d->shards, &st);
    ls_history_tick(&d->history, now, &st);
    int64_t prune_every = d->cfg.alarms_retention / 4;
    if (prune_every > ALARM_PRUNE_EVERY_MS) prune_every = ALARM_PRUNE_EVERY_MS;
    if (now.mono - d->alarm_prune_mono >= prune_every) {
        d->alarm_prune_mono = now.mono;
        ls_alarming_prune(d, now.wall);
    }
    int64_t next = now.mono + IDLE_WAKE_MS;
    d->wake_at = next;
    if (d->want_commit) pthread_cond_signal(&d->work_cv);
    ls_daemon__release_shards(d, &h);
    ls_mutex_unlock(&d->lock);
    return next;
}

/* The stop begins: the final commit has store.shutdown_wait from now. */
void ls_core_commit_waiting(ls_daemon *d)
{
    if (!d->committer_running) return;
    int64_t dl = ls_clock_mono_ns() + d->cfg.store_shutdown_wait * 1000000;
    atomic_store_explicit(&d->stop_deadline, dl, memory_order_relaxed);
    ls_held h;
    ls_daemon_lock(d, &h);
    int rc = ls_daemon_commit_unlock(d, &h, dl);
    if (rc < 0)
        ls_error("daemon",
                 "stopping: what requests wait for is not committed after store.shutdown_wait "
                 "(%s)",
                 ls_strerror(rc));
}

int ls_core_unsaved(const ls_daemon *d)
{
    return atomic_load_explicit(&d->unsaved, memory_order_relaxed);
}

void ls_core_stop_ingest(ls_daemon *d)
{
    ls_shards_stop(d->shards); /* applies what is queued: the final commit has it */
}

void ls_core_stop_committer(ls_daemon *d)
{
    ls_persist_stop(d);
}

void ls_core_close(ls_daemon *d)
{
    ls_persist_close(d);
    ls_shards_close(d->shards);
    d->shards = NULL;
    ls_alarming_close(d);
    if (d->wake_fd >= 0) close(d->wake_fd);
    if (d->signal_fd >= 0) close(d->signal_fd);
    d->wake_fd = d->signal_fd = -1;
    ls_mutex_destroy(&d->lock);
    ls_lockfile_release(d->lock_fd);
    d->lock_fd = -1;
}
