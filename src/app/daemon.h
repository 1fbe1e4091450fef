/*
 * daemon.h - the running daemon: the engine, its lock, its sinks, its loop.
 *
 * Threads: libmicrohttpd's threads serve the API; the main thread runs the
 * timer loop.  Both touch the engine under `lock` (one writer at a time);
 * every critical section is short and flushes the events it produced
 * before unlocking, so the event log sees events in seq order.
 */
#ifndef LS_DAEMON_H
#define LS_DAEMON_H

#include <pthread.h>
#include <stdint.h>

#include "app/config.h"
#include "engine/engine.h"
#include "out/eventlog.h"

typedef struct ls_daemon {
    ls_config cfg;
    ls_engine *engine;
    ls_eventlog events;
    pthread_mutex_t lock;
    int wake_fd;     /* eventfd: wakes the timer loop */
    int signal_fd;   /* signalfd: SIGINT, SIGTERM */
    int64_t wake_at; /* mono ms the loop sleeps until (under lock) */
    int64_t started_wall;
    struct ls_http *http;
} ls_daemon;

/* Sets up everything but the loop: engine, event log, HTTP.  0 or < 0. */
int ls_daemon_start(ls_daemon *d, const ls_config *cfg);

/* Runs the timer loop until SIGINT/SIGTERM.  Returns 0 on a clean stop. */
int ls_daemon_run(ls_daemon *d);

void ls_daemon_stop(ls_daemon *d);

/* Enter/leave the engine's critical section; leaving flushes new events
 * and wakes the timer loop if its next deadline moved earlier. */
void ls_daemon_lock(ls_daemon *d);
void ls_daemon_unlock(ls_daemon *d);

#endif
