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
    uint64_t seq;     /* last seq assigned */
    ls_buf pending;   /* formatted lines not yet written */
    uint64_t write_errors;
    char path[4200];
} ls_eventlog;

/*
 * Opens (creating) <dir>/events.jsonl for appending and recovers the last
 * seq from its tail.  A torn last line (a crash mid-write) is cut off.
 */
int ls_eventlog_open(ls_eventlog *l, const char *dir, int to_stdout);

/* Assigns the next seq and buffers the event's line. */
void ls_eventlog_append(ls_eventlog *l, const ls_engine *e, const ls_event *ev);

/* Writes buffered lines.  0, or -1 on a write error (lines kept for retry). */
int ls_eventlog_flush(ls_eventlog *l);

void ls_eventlog_close(ls_eventlog *l);

#endif
