/*
 * daemon.c - start-up, the main loop, shutdown, and the locks.
 *
 * The shards' workers fire the engines' deadlines and end the HTTP
 * reporters' periods (shards.c).  The main loop sleeps in ppoll(2) for a
 * second or until a signal; each turn reads the clock once, hands the
 * fleet counts to the history ring (history.c) and prunes old alarms.
 */
#include "app/daemon.h"

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

#include "api/http.h"
#include "app/alarming.h"
#include "app/clock.h"
#include "app/lockfile.h"
#include "app/log.h"
#include "app/persist.h"
#include "app/shards.h"
#include "in/mqtt.h"
#include "in/udp.h"
#include "out/mqtt_pub.h"
#include "out/webhook.h"

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

void ls_daemon_lock(ls_daemon *d)
{
    ls_shards_lock_all(d->shards);
    ls_mutex_lock(&d->lock);
    d->locked = -1;
}

ls_engine *ls_daemon_lock_id(ls_daemon *d, const char *id, size_t len)
{
    ls_shard *s = ls_shards_of(d->shards, id, len);
    ls_mutex_lock(&s->lock);
    ls_mutex_lock(&d->lock);
    d->locked = (int)s->index;
    return s->engine;
}

/* With assertions on: the calling thread holds the shard locks that `held`
 * (a value of d->locked) names. */
static inline void assert_shards_held(ls_daemon *d, int held)
{
    LS_ASSERT(held >= -1 && held < (int)d->shards->n);
    for (unsigned i = 0; i < d->shards->n; i++)
        if (held < 0 || (unsigned)held == i) LS_ASSERT_LOCKED(&d->shards->shard[i].lock);
}

void ls_daemon__wake_timer(ls_daemon *d)
{
    LS_ASSERT_LOCKED(&d->lock);
    assert_shards_held(d, d->locked);
    if (d->locked >= 0) {
        ls_shard_wake_if_earlier(&d->shards->shard[d->locked]);
    } else {
        for (unsigned i = 0; i < d->shards->n; i++) ls_shard_wake_if_earlier(&d->shards->shard[i]);
    }
}

void ls_daemon__release_shards(ls_daemon *d, int held)
{
    assert_shards_held(d, held);
    if (held >= 0)
        ls_mutex_unlock(&d->shards->shard[held].lock);
    else ls_shards_unlock_all(d->shards);
}

void ls_daemon_unlock(ls_daemon *d)
{
    ls_daemon__wake_timer(d);
    if (d->want_commit) pthread_cond_signal(&d->work_cv);
    int held = d->locked;
    ls_mutex_unlock(&d->lock);
    ls_daemon__release_shards(d, held);
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

int ls_daemon_start(ls_daemon *d, const ls_config *cfg)
{
    int rc;
    *d = (ls_daemon){.cfg = *cfg, .wake_fd = -1, .signal_fd = -1, .wake_at = INT64_MAX};
    d->events.fd = -1;
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
    char events_path[LS_EVENTLOG_PATH_MAX];
    if (snprintf(events_path, sizeof(events_path), "%s%s%s", cfg->events_file[0] == '/' ? "" : cfg->data_dir,
                 cfg->events_file[0] == '/' ? "" : "/", cfg->events_file) >= (int)sizeof(events_path)) {
        ls_error("daemon", "events.file: path too long");
        return -ENAMETOOLONG;
    }
    if ((rc = ls_eventlog_open(&d->events, events_path, cfg->events_stdout)) < 0) return rc;

    ls_engine_config ec = {
        .default_timeout_ms = cfg->state_default_inactivity_timeout,
        .max_clock_skew_ms = cfg->state_max_clock_skew,
        .max_devices = (uint64_t)cfg->state_max_devices,
        .grace_ms = cfg->availability_grace,
        .unmonitored_default = !cfg->state_monitor_by_default,
        .session_timeout_ms = cfg->transport_session_inactivity_timeout,
        .event_snapshots = 1, /* ls_persist_event() writes the device with its event */
    };
    if (getrandom(&ec.seed, sizeof(ec.seed), 0) != sizeof(ec.seed)) ec.seed = (uint64_t)ls_clock_mono_ns();
    ec.shared_devices = &d->devices;
    if ((rc = ls_alarming_open(d, ec.seed * 3 + 1)) < 0) return rc;
    if ((rc = ls_shards_new(&d->shards, d, shard_count(cfg), &ec)) < 0) {
        ls_error("daemon", "engine: %s", strerror(-rc));
        return rc;
    }
    if ((rc = ls_shards_set_reporting(d->shards, (ls_report_strategy)cfg->http_reporting_strategy,
                                      cfg->http_reporting_period, ec.seed * 5 + 3)) < 0) {
        ls_error("daemon", "http reporting strategy: %s", ls_strerror(rc));
        return rc;
    }
    /* HTTP answers /healthz with "starting" while the devices load. */
    if ((rc = ls_persist_open(d)) < 0) return rc;
    if ((rc = ls_http_start(&d->http, d)) < 0) return rc;
    if ((rc = ls_persist_start(d)) < 0) return rc;
    if ((rc = ls_shards_start(d->shards)) < 0) return rc;
    if (cfg->udp_listen[0] && (rc = ls_udp_start(&d->udp, d)) < 0) return rc;
    if (cfg->mqtt_host[0] && (rc = ls_mqtt_start(&d->mqtt, d)) < 0) return rc;
    if ((rc = ls_webhooks_start(&d->webhooks, d)) < 0) return rc;
    if (cfg->mqtt_host[0] && (cfg->mqtt_event_topic[0] || cfg->mqtt_state_topic[0]) &&
        (rc = ls_mqtt_pub_start(&d->mqtt_pub, d)) < 0)
        return rc;
    atomic_store_explicit(&d->ready, 1, memory_order_release);
    /* The inputs run already: an MQTT source transition may be raising an
     * event right now. */
    ls_mutex_lock(&d->lock);
    uint64_t seq = d->seq;
    ls_mutex_unlock(&d->lock);
    ls_info("daemon",
            "lastseen %s started: data_dir=%s shards=%u default_inactivity_timeout=%lldms "
            "monitor_by_default=%s "
            "http.reporting_strategy=%s events seq=%llu",
            LS_VERSION, cfg->data_dir, d->shards->n,
            (long long)cfg->state_default_inactivity_timeout,
            cfg->state_monitor_by_default ? "true" : "false",
            ls_report_strategy_name((ls_report_strategy)cfg->http_reporting_strategy),
            (unsigned long long)seq);
    return 0;
}

int ls_daemon_run(ls_daemon *d)
{
    for (;;) {
        ls_daemon_lock(d);
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
        ls_mutex_unlock(&d->lock);
        ls_shards_unlock_all(d->shards);

        int64_t wait_ns = next * 1000000 - ls_clock_mono_ns();
        if (wait_ns < 0) wait_ns = 0;
        struct timespec ts = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
        struct pollfd fds[2] = {{.fd = d->signal_fd, .events = POLLIN}, {.fd = d->wake_fd, .events = POLLIN}};
        int n = ppoll(fds, 2, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            ls_error("daemon", "ppoll: %s", strerror(errno));
            return -errno;
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                ls_info("daemon", "signal %u: stopping", si.ssi_signo);
                return 0;
            }
        }
        if (n > 0 && (fds[1].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(d->wake_fd, &v, sizeof(v));
            (void)r;
        }
    }
}

void ls_daemon_stop(ls_daemon *d)
{
    ls_mqtt_stop(d->mqtt); /* first: what it read is applied before the final commit */
    /* Commit what requests wait for, so they get their real answer. */
    if (d->committer_running) {
        ls_daemon_lock(d);
        ls_daemon_commit_unlock(d);
    }
    ls_http_stop(d->http);
    ls_mqtt_free(d->mqtt); /* HTTP threads read its counters until here */
    d->mqtt = NULL;
    ls_udp_stop(d->udp);
    d->udp = NULL;
    ls_shards_stop(d->shards); /* applies what is queued: the final commit has it */
    /* Sinks before the store closes, so that their last acknowledgements are saved. */
    ls_webhooks_stop(d->webhooks);
    d->webhooks = NULL;
    ls_mqtt_pub_stop(d->mqtt_pub);
    d->mqtt_pub = NULL;
    ls_persist_stop(d); /* the committer's last commit hook finds HTTP stopped */
    ls_http_free(d->http);
    d->http = NULL;
    ls_eventlog_close(&d->events);
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
