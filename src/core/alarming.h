/*
 * alarming.h - the daemon's unavailability alarms: driven by engine events
 * under the daemon lock, persisted with the next commit.  See alarming.c.
 */
#ifndef LS_ALARMING_H
#define LS_ALARMING_H

#include "core/daemon.h"

/* Creates d->alarms (before the engine emits anything); seed: the hash seed. */
int ls_alarming_open(ls_daemon *d, uint64_t seed);
void ls_alarming_close(ls_daemon *d);

/* Loads the stored alarms (start-up, after ls_persist_open()). */
int ls_alarming_load(ls_daemon *d);

/* Under the lock.  An engine event: raise on INACTIVITY_EVENT, clear on ACTIVITY_EVENT. */
void ls_alarming_event(ls_daemon *d, const ls_event *ev);
/* The engine's class-change callback (ls_avail_cb). */
void ls_alarming_avail_cb(void *ud, const ls_device *dev, ls_avail old_cls, int was_active,
                          ls_now now);
/* A device was deleted: its open alarm is cleared. */
void ls_alarming_deleted(ls_daemon *d, const char *id, size_t len, int64_t now_wall);
/* Deletes CLEARED alarms older than alarms.retention (a bounded number per call). */
void ls_alarming_prune(ls_daemon *d, int64_t now_wall);

#endif
