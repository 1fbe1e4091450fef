/*
 * eventlog.h - the event log: events.jsonl in the data directory.
 */
#ifndef LS_EVENTLOG_H
#define LS_EVENTLOG_H

#include <stdint.h>

#include "app/buf.h"
#include "engine/engine.h"

typedef struct ls_eventlog {
    int fd;
    int to_stdout;    /* events.stdout */
    uint64_t seq;     /* last seq buffered or written */
    uint64_t written; /* last seq known to be in the file */
    ls_buf pending;   /* formatted lines not yet written */
    uint64_t write_errors;
    char path[4200];
} ls_eventlog;

/*
 * Opens (creating) <dir>/events.jsonl for appending and recovers the last
 * seq from its tail.  A torn last line (a crash mid-write) is cut off.
 */
int ls_eventlog_open(ls_eventlog *l, const char *dir, int to_stdout);

/* Buffers an already formatted event line (without its newline), unless
 * the file already holds seq (at-least-once delivery made idempotent).
 * Returns -1, buffering nothing, when the buffer is full because writes
 * keep failing: the caller stops and offers the line again later. */
int ls_eventlog_append_line(ls_eventlog *l, uint64_t seq, const char *line, size_t len);

/* Writes buffered lines.  0, or -1 on a write error (lines kept for retry). */
int ls_eventlog_flush(ls_eventlog *l);

void ls_eventlog_close(ls_eventlog *l);

#endif
