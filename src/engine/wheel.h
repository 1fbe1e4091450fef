/*
 * wheel.h - a hierarchical timing wheel with intrusive entries.
 * See wheel.c for the design, its cost and its precision.
 */
#ifndef LS_WHEEL_H
#define LS_WHEEL_H

#include <stdint.h>

#define LS_WHEEL_BITS 6
#define LS_WHEEL_SLOTS (1 << LS_WHEEL_BITS) /* 64 slots a level */
#define LS_WHEEL_LEVELS 11                  /* 66 bits: any int64 time */

/* Embed one in the record to be timed; zero-initialised = not armed. */
typedef struct ls_wheel_entry {
    struct ls_wheel_entry *next;
    struct ls_wheel_entry **pprev; /* NULL when not armed */
    int64_t expire;                /* ms on the wheel's clock */
} ls_wheel_entry;

typedef struct ls_wheel {
    int64_t now; /* every time <= now has been processed */
    uint64_t count;
    uint64_t occupied[LS_WHEEL_LEVELS]; /* bit s set = slot s non-empty */
    ls_wheel_entry *slots[LS_WHEEL_LEVELS][LS_WHEEL_SLOTS];
} ls_wheel;

/* Called for each expired entry, already disarmed; it may re-arm it. */
typedef void (*ls_wheel_cb)(void *ud, ls_wheel_entry *e, int64_t now);

void ls_wheel_init(ls_wheel *w, int64_t now);

/*
 * Arms e to fire at `expire` (clamped to now+1 and to now + 2^48-1).  An armed
 * entry is moved.  O(1).
 */
void ls_wheel_add(ls_wheel *w, ls_wheel_entry *e, int64_t expire);

/* Disarms e if armed.  O(1). */
void ls_wheel_remove(ls_wheel *w, ls_wheel_entry *e);

static inline int ls_wheel_armed(const ls_wheel_entry *e)
{
    return e->pprev != 0;
}

/*
 * Processes every time up to `now`, calling cb for each entry whose expire
 * is <= now, in order of slot time.  Returns the number of entries fired.
 */
uint64_t ls_wheel_run(ls_wheel *w, int64_t now, ls_wheel_cb cb, void *ud);

/* The earliest time at which ls_wheel_run() has work, INT64_MAX if none. */
int64_t ls_wheel_next(const ls_wheel *w);

#endif
