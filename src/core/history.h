/*
 * history.h - the fleet's recent past: active/inactive counts sampled every
 * LS_HISTORY_STEP_MS into a ring of LS_HISTORY_LEN samples (one hour), so
 * the dashboard can draw the last hour the moment it opens.  See history.c.
 */
#ifndef LS_HISTORY_H
#define LS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define LS_HISTORY_STEP_MS 10000
#define LS_HISTORY_LEN 360

typedef struct ls_history_sample {
    int64_t t; /* wall ms when taken */
    uint64_t devices, active, inactive;
} ls_history_sample;

/* A zeroed ls_history is empty and takes its first sample on the first tick. */
typedef struct ls_history {
    ls_history_sample ring[LS_HISTORY_LEN];
    size_t head;       /* where the next sample goes */
    size_t n;          /* samples held, <= LS_HISTORY_LEN */
    int64_t next_mono; /* monotonic ms the next sample is due */
} ls_history;

/*
 * Takes a sample of `st` at `now` if one is due (the first call always
 * takes one; then every LS_HISTORY_STEP_MS of monotonic time, so wall clock
 * steps neither stop nor hurry the sampling).  Returns 1 if it took one.
 */
int ls_history_tick(ls_history *h, ls_now now, const ls_engine_stats *st);

/* Copies the newest `max` samples (or all) into out, oldest first; returns how many. */
size_t ls_history_copy(const ls_history *h, ls_history_sample *out, size_t max);

#endif
