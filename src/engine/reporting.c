/*
 * reporting.c - activity reporting strategies (see reporting.h for the
 * rules).
 *
 * ALL is a pass-through to the engine's batch path and keeps no state.
 * The other strategies keep, for each device with a period open, a small
 * heap record (its id, the period's end, the newest held time and three
 * flags) found through a hash map keyed by the id, and timed by this
 * reporter's own timing wheel (the engine's, from wheel.c, whose entries
 * are named by handles: by_handle maps a handle to its record), so a
 * period end costs O(1) and nothing scans the devices.  Records live only while
 * a device reports: one period after its last activity (two under FIRST
 * with a held activity) the record is freed.
 *
 * Why FIRST records its deferred activity instead of reporting it:
 * ThingsBoard's documentation promises that under FIRST "last activity will
 * still be reported if there were no activities for a reporting period",
 * while its code (FirstActivityStrategy.onReportingPeriodEnd() returns
 * false) never reports at a period's end, so lastActivityTime stays at the
 * first activity of the last period and the device is declared inactive up
 * to one period early.  lastseen keeps the documented promise, because an
 * inactivity event must mean a full timeout of silence.  But the deferred
 * activity arrives up to two periods after the first one; with a timeout
 * shorter than that the device may already have gone inactive, and
 * reporting it as a live activity would make the device active again only
 * to go inactive once more: the late-report flip-flop lastseen refuses
 * everywhere else.  So it is recorded: lastActivityTime and the deadline
 * of a device that is still active move to the truth, an inactive device
 * stays inactive.
 */
#include "engine/reporting.h"

#include <stdlib.h>
#include <string.h>

#include "engine/strmap.h"
#include "engine/wheel.h"

typedef struct rep_state {
    ls_wheel_entry timer; /* at period_end */
    uint32_t h;           /* its wheel handle: index into by_handle */
    int64_t period_end;   /* mono ms */
    int64_t held;         /* wall ms of the newest held activity, 0 = none */
    uint8_t activity;     /* the current period had an activity */
    uint8_t first_done;   /* its first activity was reported */
    uint8_t carried;      /* FIRST: `held` belongs to the previous period */
    size_t len;
    char id[];
} rep_state;

struct ls_reporter {
    ls_engine *e;
    ls_report_strategy strategy;
    int64_t period;
    ls_wheel wheel;
    ls_strmap states;
    /* Wheel handles: by_handle[h] is the state with handle h (1..), the
     * handles of freed states are reused from free_h. */
    rep_state **by_handle;
    uint32_t *free_h;
    uint32_t nhandles, handles_cap, nfree;
    ls_reporter_stats st;
    ls_now tick_now; /* of the tick in progress */
};

const char *ls_report_strategy_name(ls_report_strategy s)
{
    switch (s) {
    case LS_REPORT_ALL:
        return "ALL";
    case LS_REPORT_FIRST:
        return "FIRST";
    case LS_REPORT_LAST:
        return "LAST";
    case LS_REPORT_FIRST_AND_LAST:
        return "FIRST_AND_LAST";
    }
    return "UNKNOWN";
}

static ls_wheel_entry *entry_at(void *ctx, uint32_t h)
{
    ls_reporter *r = ctx;
    return &r->by_handle[h]->timer;
}

/* Gives s a wheel handle.  0 or LS_ENOMEM. */
static int handle_take(ls_reporter *r, rep_state *s)
{
    if (r->nfree) {
        s->h = r->free_h[--r->nfree];
    } else {
        if (r->nhandles + 1 >= r->handles_cap) {
            if (r->handles_cap >= LS_WHEEL_HANDLE_MAX / 2) return LS_ENOMEM;
            uint32_t cap = r->handles_cap ? r->handles_cap * 2 : 64;
            rep_state **nb = realloc(r->by_handle, cap * sizeof(*nb));
            if (!nb) return LS_ENOMEM;
            r->by_handle = nb;
            /* Room to free every handle, so that freeing never allocates. */
            uint32_t *nf = realloc(r->free_h, cap * sizeof(*nf));
            if (!nf) return LS_ENOMEM;
            r->free_h = nf;
            r->handles_cap = cap;
        }
        s->h = ++r->nhandles;
    }
    r->by_handle[s->h] = s;
    return 0;
}

int ls_reporter_new(ls_reporter **out, ls_engine *e, ls_report_strategy s, int64_t period_ms,
                    uint64_t seed)
{
    if (period_ms < 1 || (unsigned)s > LS_REPORT_FIRST_AND_LAST) return LS_EINVAL;
    ls_reporter *r = calloc(1, sizeof(*r));
    if (!r) return LS_ENOMEM;
    r->e = e;
    r->strategy = s;
    r->period = period_ms;
    ls_wheel_init(&r->wheel, 0, entry_at, r);
    ls_strmap_init(&r->states, seed);
    *out = r;
    return 0;
}

static void state_free(ls_reporter *r, rep_state *s)
{
    ls_wheel_remove(&r->wheel, s->h);
    r->by_handle[s->h] = NULL;
    r->free_h[r->nfree++] = s->h;
    ls_strmap_del(&r->states, s->id, s->len);
    r->st.tracking--;
    free(s);
}

void ls_reporter_close(ls_reporter *r)
{
    if (!r) return;
    for (uint64_t i = 0; r->states.mask && i <= r->states.mask; i++)
        if (r->states.e[i].key) free(r->states.e[i].val);
    ls_strmap_close(&r->states);
    free(r->by_handle);
    free(r->free_h);
    free(r);
}

ls_report_strategy ls_reporter_strategy(const ls_reporter *r)
{
    return r->strategy;
}

/* The state of a device, opening a period at now if it has none.  NULL on ENOMEM. */
static rep_state *state_of(ls_reporter *r, const char *id, size_t len, ls_now now)
{
    rep_state *s = ls_strmap_get(&r->states, id, len);
    if (s) return s;
    if (!(s = calloc(1, sizeof(*s) + len + 1))) return NULL;
    memcpy(s->id, id, len);
    s->len = len;
    if (handle_take(r, s) < 0) {
        free(s);
        return NULL;
    }
    if (ls_strmap_put(&r->states, s->id, len, s) < 0) {
        r->by_handle[s->h] = NULL;
        r->free_h[r->nfree++] = s->h;
        free(s);
        return NULL;
    }
    s->period_end = now.mono + r->period;
    ls_wheel_add(&r->wheel, s->h, s->period_end);
    r->st.tracking++;
    return s;
}

/* One activity under FIRST, LAST or FIRST_AND_LAST.  0 or an engine error. */
static int take(ls_reporter *r, const char *id, size_t len, int64_t ts, ls_now now)
{
    int rc = ts < 0 ? LS_EINVAL : ls_engine_admit(r->e, id, len);
    if (rc < 0) return rc;
    rep_state *s = state_of(r, id, len, now);
    if (!s) return LS_ENOMEM;
    s->activity = 1;
    if (r->strategy != LS_REPORT_LAST && !s->first_done) {
        s->first_done = 1;
        if (s->carried) s->held = 0; /* FIRST: this report supersedes the deferred one */
        s->carried = 0;
        r->st.forwarded++;
        return ls_engine_activity(r->e, id, len, ts, now);
    }
    int64_t t = ts ? ts : now.wall;
    if (t > s->held) s->held = t;
    r->st.held++;
    return 0;
}

size_t ls_reporter_activity_batch(ls_reporter *r, const ls_activity *a, size_t n, ls_now now,
                                  int *rcs)
{
    if (r->strategy == LS_REPORT_ALL) {
        size_t applied = ls_engine_activity_batch(r->e, a, n, now, rcs);
        r->st.forwarded += applied;
        return applied;
    }
    size_t applied = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = take(r, a[i].id, a[i].len, a[i].ts, now);
        if (rc == 0) applied++;
        if (rcs) rcs[i] = rc;
    }
    return applied;
}

/* A period of s ended at t: report what it held, open the next or forget the device. */
static void period_end_cb(void *ud, uint32_t h, int64_t t)
{
    ls_reporter *r = ud;
    rep_state *s = r->by_handle[h];
    ls_now now = r->tick_now;
    (void)t;
    if (r->strategy == LS_REPORT_FIRST) {
        if (!s->activity && s->carried) {
            if (ls_engine_record(r->e, s->id, s->len, s->held, now) == 0) r->st.recorded++;
            s->held = 0;
            s->carried = 0;
        } else if (s->activity) {
            s->carried = s->held != 0;
        }
    } else if (s->held) {
        if (ls_engine_activity(r->e, s->id, s->len, s->held, now) == 0)
            r->st.reported++;
        else
            r->st.failed++;
        s->held = 0;
    }
    if (!s->activity && !s->carried) {
        state_free(r, s);
        return;
    }
    s->activity = 0;
    s->first_done = 0;
    s->period_end += r->period;
    if (s->period_end <= now.mono) /* the tick came late: skip the periods that passed */
        s->period_end += ((now.mono - s->period_end) / r->period + 1) * r->period;
    ls_wheel_add(&r->wheel, s->h, s->period_end);
}

uint64_t ls_reporter_tick(ls_reporter *r, ls_now now)
{
    uint64_t before = r->st.reported + r->st.recorded;
    r->tick_now = now;
    ls_wheel_run(&r->wheel, now.mono, period_end_cb, r);
    return r->st.reported + r->st.recorded - before;
}

int64_t ls_reporter_next_wakeup(const ls_reporter *r)
{
    return ls_wheel_next(&r->wheel);
}

void ls_reporter_forget(ls_reporter *r, const char *id, size_t len)
{
    rep_state *s = ls_strmap_get(&r->states, id, len);
    if (s) state_free(r, s);
}

void ls_reporter_get_stats(const ls_reporter *r, ls_reporter_stats *out)
{
    *out = r->st;
}
