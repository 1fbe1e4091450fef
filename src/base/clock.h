/*
 * clock.h - the daemon's only clock reads.  The engine never calls these:
 * the loops read the clock once per turn and pass `ls_now` down.
 */
#ifndef LS_CLOCK_H
#define LS_CLOCK_H

#include <time.h>

#include "base/now.h"

static inline int64_t ls_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Both clocks in ms.  The wall reading is the monotonic ms plus the current
 * offset between the clocks, so the two tick over together: a deadline that
 * falls due at a monotonic ms is reported at the matching wall ms, never a
 * truncation step before it.  The wall value is within 1 ms of the truth
 * and still follows every wall clock step.
 */
static inline ls_now ls_clock_now(void)
{
    struct timespec w;
    int64_t mono_ns = ls_clock_mono_ns();
    clock_gettime(CLOCK_REALTIME, &w);
    int64_t wall_ns = (int64_t)w.tv_sec * 1000000000 + w.tv_nsec;
    int64_t mono = mono_ns / 1000000;
    int64_t off = (wall_ns - mono_ns) / 1000000; /* stable while the clocks agree */
    ls_now n = {.mono = mono, .wall = mono + off};
    return n;
}

#endif
