/*
 * reporting.h - ThingsBoard's activity reporting strategies, per input.
 *
 * An input (the HTTP ingest today; MQTT and UDP later) hands its activities
 * to a reporter instead of the engine; the reporter decides, per device and
 * per reporting period, which of them reach the engine and when:
 *
 *   ALL             every activity, at once, with its own time (default);
 *   FIRST           the first activity of each period at once; the others
 *                   are held, and if a period with held activities is
 *                   followed by a whole period without any, the newest held
 *                   one is recorded then (it corrects lastActivityTime and
 *                   the deadline of a device still active, and never makes
 *                   an inactive device active);
 *   LAST            the newest activity of each period, when it ends;
 *   FIRST_AND_LAST  the first at once, the newest of the others at its end.
 *
 * Periods are counted per device from its first activity: consecutive
 * periods of `period_ms` while it keeps reporting; a period with no
 * activity ends the chain, and the next activity starts a new one.  A held
 * activity keeps its own time (its `ts`, or its arrival time when it had
 * none), so a late report is placed where it happened; staleness and
 * future clamping are judged when it reaches the engine.  See reporting.c.
 *
 * Pure like the engine (time is an input); one writer: the caller holds
 * what guards its engine around every call, ticks included.  The daemon
 * gives each shard its own reporter feeding that shard's engine
 * (core/shards.h), used under the shard's lock only: by HTTP activities of
 * the shard's devices, and ticked by the shard's worker, whose sleep ends
 * at ls_reporter_next_wakeup() at the latest.
 */
#ifndef LS_REPORTING_H
#define LS_REPORTING_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef enum ls_report_strategy {
    LS_REPORT_ALL = 0,
    LS_REPORT_FIRST,
    LS_REPORT_LAST,
    LS_REPORT_FIRST_AND_LAST,
} ls_report_strategy;

typedef struct ls_reporter_stats {
    uint64_t forwarded; /* activities passed to the engine as they came */
    uint64_t held;      /* activities held back */
    uint64_t reported;  /* held activities reported at a period's end */
    uint64_t recorded;  /* FIRST: newest held activities recorded after an empty period */
    uint64_t failed;    /* held activities the engine refused at the end (state.max_devices) */
    uint64_t tracking;  /* devices with a period open now */
} ls_reporter_stats;

typedef struct ls_reporter ls_reporter;

/* A reporter feeding engine e.  0, LS_EINVAL (period < 1 ms) or LS_ENOMEM. */
int ls_reporter_new(ls_reporter **out, ls_engine *e, ls_report_strategy s, int64_t period_ms,
                    uint64_t seed);
void ls_reporter_close(ls_reporter *r);

/*
 * Takes n activities at `now` as ls_engine_activity_batch() would (same
 * validation, same per-item results in rcs, including LS_EFULL for a new
 * device over state.max_devices), applying or holding each one per the
 * strategy.  Returns the number accepted.
 */
size_t ls_reporter_activity_batch(ls_reporter *r, const ls_activity *a, size_t n, ls_now now,
                                  int *rcs);

/* Ends every period due by now.mono, reporting what they held.  Returns
 * the number of activities that reached the engine. */
uint64_t ls_reporter_tick(ls_reporter *r, ls_now now);

/* Monotonic ms of the next period end, INT64_MAX if none. */
int64_t ls_reporter_next_wakeup(const ls_reporter *r);

/* Drops what is held for a device (it was deleted). */
void ls_reporter_forget(ls_reporter *r, const char *id, size_t len);

void ls_reporter_get_stats(const ls_reporter *r, ls_reporter_stats *out);
ls_report_strategy ls_reporter_strategy(const ls_reporter *r);
const char *ls_report_strategy_name(ls_report_strategy s);

#endif
