/*
 * persist.h - the daemon's durability: store, group commit, event delivery.
 * See persist.c.
 */
#ifndef LS_PERSIST_H
#define LS_PERSIST_H

#include "core/daemon.h"

/* Opens the store under data_dir/store.  The engine must exist. */
int ls_persist_open(ls_daemon *d);

/* Restores every device into the engine (counting d->loaded as it goes),
 * catches the events file up and starts the committer thread. */
int ls_persist_start(ls_daemon *d);

/* Commits what is pending, stops the committer, closes the store. */
void ls_persist_stop(ls_daemon *d);

/* Under the global lock: queue an event (assigns its seq) / a deletion. */
void ls_persist_event(ls_daemon *d, const ls_event *ev);
void ls_persist_delete(ls_daemon *d, const char *id, size_t len);
/* Under the global lock: queue a type's settings (NULL: the type has none). */
void ls_persist_type(ls_daemon *d, const char *name, size_t len, const ls_type_config *c);

/*
 * Sinks: durable consumers of committed events (MQTT, webhooks, ...).  A
 * sink runs on its own thread: it reads committed events in seq order with
 * ls_store_read_events(d->store, after, ...), never past
 * ls_persist_committed(), delivers them and acknowledges with
 * ls_persist_sink_ack(); the next commit makes the acknowledgement its
 * durable cursor, and after a restart it resumes after that cursor: at
 * least once, in seq order.  Events a sink has not acknowledged are never
 * pruned by events.retention (a sink holding older ones is logged and
 * counted instead).
 */

/* Registers sink `name` (1..63 bytes) after ls_persist_open() and before the
 * daemon is ready; *cursor gets its last acknowledged seq (0 if never).
 * Returns the sink id >= 0, or -ENOSPC / -EINVAL / -EEXIST. */
int ls_persist_sink_open(ls_daemon *d, const char *name, uint64_t *cursor);

/* Sink `sink` delivered every event up to `seq`.  Any thread. */
void ls_persist_sink_ack(ls_daemon *d, int sink, uint64_t seq);

/* Highest seq in the store: every event up to it can be read.  Any thread. */
uint64_t ls_persist_committed(ls_daemon *d);

/* An eventfd (non-blocking) that becomes readable whenever
 * ls_persist_committed() moves, for sinks that wait in poll(2) rather than
 * in ls_persist_wait().  It belongs to persist: ls_persist_stop() closes
 * it.  Up to 4; before the daemon is ready.  The fd, or a negative errno. */
int ls_persist_watch(ls_daemon *d);

/* Blocks until an event after `after` is committed, the daemon stops, or
 * timeout_ms passes; returns ls_persist_committed().  Any thread but the
 * committer; must not hold any daemon lock. */
uint64_t ls_persist_wait(ls_daemon *d, uint64_t after, int timeout_ms);

#endif
