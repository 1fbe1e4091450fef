/*
 * persist.h - the daemon's durability: store, group commit, event delivery.
 * See persist.c.
 */
#ifndef LS_PERSIST_H
#define LS_PERSIST_H

#include "app/daemon.h"

/* Opens the store under data_dir/store, restores every device into the
 * engine, catches the sinks up and starts the committer thread. */
int ls_persist_start(ls_daemon *d);

/* Commits what is pending, stops the committer, closes the store. */
void ls_persist_stop(ls_daemon *d);

/* Under the engine lock: queue an event (assigns its seq) / a deletion. */
void ls_persist_event(ls_daemon *d, const ls_event *ev);
void ls_persist_delete(ls_daemon *d, const char *id, size_t len);

#endif
