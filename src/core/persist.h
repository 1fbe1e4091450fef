/*
 * persist.h - the daemon's durability: the store and group commit.
 * See persist.c.
 */
#ifndef LS_PERSIST_H
#define LS_PERSIST_H

#include "core/daemon.h"
#include "core/format.h"

/* Opens the store under data_dir/store.  The engine must exist. */
int ls_persist_open(ls_daemon *d);

/* Restores every device into the engine (counting d->loaded as it goes)
 * and starts the committer thread. */
int ls_persist_start(ls_daemon *d);

/* Commits what is pending and stops the committer; the outbox can still be
 * read (sinks deliver the final commit) until ls_persist_close(). */
void ls_persist_stop(ls_daemon *d);

/* Stops the committer if it runs and closes the store. */
void ls_persist_close(ls_daemon *d);

/* Under the global lock: queue an event (assigns its seq) / a deletion. */
void ls_persist_event(ls_daemon *d, const ls_event *ev);
void ls_persist_delete(ls_daemon *d, const char *id, size_t len);
/* Under the global lock: queue an AUDIT event (core/format.h), in the same
 * commit as the change it describes when queued under the same lock hold. */
void ls_persist_audit(ls_daemon *d, const ls_audit *a);
/* Under the global lock: queue a type's settings (NULL: the type has none). */
void ls_persist_type(ls_daemon *d, const char *name, size_t len, const ls_type_config *c);

/* Sinks read the committed events and keep their cursors through the
 * outbox port, core/outbox.h. */

#endif
