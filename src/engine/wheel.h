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

/*
 * Entries are named by 32-bit handles (1..2^31-1; the engine uses slot + 1),
 * not pointers: links cost 4 bytes each.  The wheel finds an entry through
 * the `at` function given to ls_wheel_init().  Embed one in the record to
 * be timed; zero-initialised = not armed.
 */
typedef struct ls_wheel_entry {
    uint32_t next;  /* handle of the next entry of the slot's list, 0 = last */
    uint32_t prev;  /* 0 = not armed; the previous entry's handle, or
                       LS_WHEEL_HEAD | slot head index when first */
    int64_t expire; /* ms on the wheel's clock */
} ls_wheel_entry;

#define LS_WHEEL_HEAD 0x80000000u
#define LS_WHEEL_HANDLE_MAX 0x7fffffffu

/* The entry of handle h (never 0); called on every link and unlink. */
typedef ls_wheel_entry *(*ls_wheel_at_fn)(void *ctx, uint32_t h);

typedef struct ls_wheel {
    int64_t now; /* every time <= now has been processed */
    uint64_t count;
    uint64_t moved; /* entries moved from one level to another, ever */
    ls_wheel_at_fn at;
    void *ctx;
    /* Two banks of 64 lists a level (the current rotation and the next
     * one, see wheel.c).  List i = bank * 704 + level * 64 + slot; bit
     * (i % 64) of occupied[i / 64] is set when list i is non-empty. */
    uint64_t occupied[2 * LS_WHEEL_LEVELS];
    /* List heads, 0 = empty; the last one is the list of entries due in
     * the millisecond being processed. */
    uint32_t heads[2 * LS_WHEEL_LEVELS * LS_WHEEL_SLOTS + 1];
    /* Per list, an upper bound on its length (exact unless an entry other
     * than the first was unlinked since it was last empty): paces moves. */
    uint32_t est[2 * LS_WHEEL_LEVELS * LS_WHEEL_SLOTS];
} ls_wheel;

/* Called for each expired entry, already disarmed; it may re-arm it. */
typedef void (*ls_wheel_cb)(void *ud, uint32_t h, int64_t now);

void ls_wheel_init(ls_wheel *w, int64_t now, ls_wheel_at_fn at, void *ctx);

/*
 * Arms entry h to fire at `expire` (clamped to now+1 and to now + 2^60-1).
 * An armed entry is moved.  O(1).
 */
void ls_wheel_add(ls_wheel *w, uint32_t h, int64_t expire);

/* Disarms entry h if armed.  O(1). */
void ls_wheel_remove(ls_wheel *w, uint32_t h);

static inline int ls_wheel_armed(const ls_wheel_entry *e)
{
    return e->prev != 0;
}

/*
 * Processes every time up to `now`, calling cb for each entry whose expire
 * is <= now, in order of slot time.  Returns the number of entries fired.
 */
uint64_t ls_wheel_run(ls_wheel *w, int64_t now, ls_wheel_cb cb, void *ud);

/*
 * The earliest time at which ls_wheel_run() has work, INT64_MAX if none:
 * never later than the next expiry; now + 1 while entries are being moved
 * ahead of a slot boundary (at most one wake-up per ms, see wheel.c).
 */
int64_t ls_wheel_next(const ls_wheel *w);

#endif
