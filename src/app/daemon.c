/*
 * daemon.c - start-up, the timer loop, shutdown.
 *
 * The timer loop sleeps in ppoll(2) until the engine's next wheel event
 * (to the nanosecond, so a deadline is processed in the millisecond it
 * falls due), a wake-up from an API thread that armed an earlier timer, or
 * a signal.  Each turn reads the clock once, ticks the engine, flushes the
 * events and hands the fleet counts to the history ring (history.c).
 * Idle, it wakes at most once a second.
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
#include "app/clock.h"
#include "app/log.h"
#include "app/persist.h"

#define IDLE_WAKE_MS 1000

static void on_event(void *ud, const ls_event *ev)
{
    ls_daemon *d = ud;
    ls_persist_event(d, ev);
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
            tmp[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

void ls_daemon_lock(ls_daemon *d)
{
    pthread_mutex_lock(&d->lock);
}

void ls_daemon__wake_timer(ls_daemon *d)
{
    int64_t next = ls_engine_next_wakeup(d->engine);
    if (next < d->wake_at) {
        d->wake_at = next;
        uint64_t one = 1;
        ssize_t w = write(d->wake_fd, &one, sizeof(one));
        (void)w;
    }
}

void ls_daemon_unlock(ls_daemon *d)
{
    ls_daemon__wake_timer(d);
    if (d->want_commit) pthread_cond_signal(&d->work_cv);
    pthread_mutex_unlock(&d->lock);
}

int ls_daemon_start(ls_daemon *d, const ls_config *cfg)
{
    int rc;
    *d = (ls_daemon){.cfg = *cfg, .wake_fd = -1, .signal_fd = -1, .wake_at = INT64_MAX};
    d->events.fd = -1;
    pthread_mutex_init(&d->lock, NULL);
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

    if ((rc = make_dirs(cfg->data_dir)) < 0) {
        ls_error("daemon", "cannot create store.data_dir %s: %s", cfg->data_dir, strerror(-rc));
        return rc;
    }
    if ((rc = ls_eventlog_open(&d->events, cfg->data_dir, cfg->events_stdout)) < 0) return rc;

    ls_engine_config ec = {
        .default_timeout_ms = cfg->state_default_inactivity_timeout,
        .max_clock_skew_ms = cfg->state_max_clock_skew,
        .max_devices = (uint64_t)cfg->state_max_devices,
    };
    if (getrandom(&ec.seed, sizeof(ec.seed), 0) != sizeof(ec.seed)) ec.seed = (uint64_t)ls_clock_mono_ns();
    if ((rc = ls_engine_new(&d->engine, &ec, on_event, d)) < 0) {
        ls_error("daemon", "engine: %s", ls_strerror(rc));
        return rc;
    }
    /* HTTP answers /healthz with "starting" while the devices load. */
    if ((rc = ls_persist_open(d)) < 0) return rc;
    if ((rc = ls_http_start(&d->http, d)) < 0) return rc;
    if ((rc = ls_persist_start(d)) < 0) return rc;
    __atomic_store_n(&d->ready, 1, __ATOMIC_RELEASE);
    ls_info("daemon", "lastseen %s started: data_dir=%s default_inactivity_timeout=%lldms events seq=%llu",
            LS_VERSION, cfg->data_dir, (long long)cfg->state_default_inactivity_timeout,
            (unsigned long long)d->seq);
    return 0;
}

int ls_daemon_run(ls_daemon *d)
{
    for (;;) {
        ls_daemon_lock(d);
        ls_now now = ls_clock_now();
        ls_engine_tick(d->engine, now);
        ls_engine_stats st;
        ls_engine_get_stats(d->engine, &st);
        ls_history_tick(&d->history, now, &st);
        int64_t next = ls_engine_next_wakeup(d->engine);
        if (next > now.mono + IDLE_WAKE_MS) next = now.mono + IDLE_WAKE_MS;
        d->wake_at = next;
        if (d->want_commit) pthread_cond_signal(&d->work_cv);
        pthread_mutex_unlock(&d->lock);

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
    if (d->http) ls_http_stop(d->http);
    d->http = NULL;
    ls_persist_stop(d);
    ls_eventlog_close(&d->events);
    ls_engine_close(d->engine);
    d->engine = NULL;
    if (d->wake_fd >= 0) close(d->wake_fd);
    if (d->signal_fd >= 0) close(d->signal_fd);
    d->wake_fd = d->signal_fd = -1;
    pthread_mutex_destroy(&d->lock);
}
