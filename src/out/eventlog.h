/*
 * eventlog.h - the event log: one JSON line per event, appended to a file
 * (events.file, by default events.jsonl in the data directory), as a sink
 * of the outbox.  See eventlog.c.
 */
#ifndef LS_EVENTLOG_H
#define LS_EVENTLOG_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "conf/config.h"
#include "core/outbox.h"

#define LS_EVENTLOG_PATH_MAX 8200

/* One thread writes the log (the committer, or start-up before it runs);
 * `written` and `write_errors` are also read by others (stats, /metrics). */
typedef struct ls_eventlog {
    int fd;                        /* -1 while the file could not be opened */
    int to_stdout;                 /* events.stdout */
    int failed;                    /* the last write or open failed: reopen before writing */
    int outage;                    /* failing since the last successful write (logged once) */
    uint64_t seq;                  /* last seq buffered or written */
    _Atomic uint64_t written;      /* last seq known to be in the file (relaxed) */
    ls_buf pending;                /* formatted lines not yet written */
    _Atomic uint64_t write_errors; /* failed writes and failed reopens (relaxed) */
    uint64_t reopens;              /* successful reopens (after a failure or a rename) */
    dev_t dev;                     /* identity of the open file, to notice a rename */
    ino_t ino;
    char path[LS_EVENTLOG_PATH_MAX];
} ls_eventlog;

/*
 * Opens (creating) `path` for appending and recovers the last seq from its
 * tail.  A torn last line (a crash mid-write) is cut off.  0, or a negative
 * errno (-EINVAL: the last line is not an event), logged with the path.
 */
int ls_eventlog_open(ls_eventlog *l, const char *path, int to_stdout);

/*
 * Buffers an already formatted event line (without its newline), unless the
 * file already holds seq (at-least-once delivery made idempotent).  Lines
 * must come in seq order.  Returns 0 (buffered or already there), or a
 * negative code when the line was not taken: LS_ENOMEM (the buffer is full),
 * or the write's -errno, -EIO while `failed` is set (see ls_eventlog_flush);
 * the caller offers it again later.
 */
int ls_eventlog_append_line(ls_eventlog *l, uint64_t seq, const char *line, size_t len);

/*
 * Writes the buffered lines.  Returns 0, or -errno on a write error: then the
 * lines not known to be complete in the file are dropped, `seq` goes back to
 * `written`, and `failed` is set, so the caller must offer those lines again
 * from its own durable copy after a successful ls_eventlog_reopen().  Also
 * -EIO without writing while `failed` is set (or no file is open).
 */
int ls_eventlog_flush(ls_eventlog *l);

/*
 * Closes the file and opens `path` again: for a retry after a failure, or
 * because the path now names another file (rotation by rename).  The
 * file's tail is recovered as at open (a torn last line is cut off) and
 * `seq` = `written` = max(written, the file's last seq): a fresh empty file
 * continues after what the old one held, and lines the file already has are
 * not written twice.  Drops anything still buffered.  0, or a negative errno
 * with `failed` set (counted in write_errors).  Failures are logged once
 * per outage, and the first successful write after one says so.
 */
int ls_eventlog_reopen(ls_eventlog *l);

/* 1 if `path` no longer names the open file (renamed, replaced, deleted). */
int ls_eventlog_moved(const ls_eventlog *l);

/* Flushes what it can and closes. */
void ls_eventlog_close(ls_eventlog *l);

/*
 * The sink: events.file written from the outbox, inline (core/outbox.h):
 * on the committer's thread, right after each commit.
 */
typedef struct ls_eventlog_sink ls_eventlog_sink;

/*
 * Opens events.file, registers the inline sink "events.jsonl" (its seqs
 * continue after the file's last line) and writes the events the store
 * committed but the file lacks.  Call from the composition root after
 * ls_core_open() and before ls_core_start().  0, or a negative errno
 * (logged).
 */
int ls_eventlog_sink_start(ls_eventlog_sink **out, struct ls_daemon *d, const ls_config *cfg);

/* Closes the file; after ls_core_stop_committer() (whose final commit it
 * writes).  NULL is fine. */
void ls_eventlog_sink_stop(ls_eventlog_sink *s);

#endif
