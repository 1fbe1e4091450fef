/*
 * now.h - the time every engine call takes: `ls_now`, read once per loop
 * turn by the runtime (base/clock.h) and passed down.  A type only: the
 * engine includes it and never reads a clock.
 */
#ifndef LS_NOW_H
#define LS_NOW_H

#include <stdint.h>

typedef struct ls_now {
    int64_t mono; /* monotonic ms: deadlines */
    int64_t wall; /* ms since the Unix epoch: what is reported */
} ls_now;

#endif
