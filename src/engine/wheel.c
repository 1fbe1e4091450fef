/*
 * wheel.c - hierarchical timing wheel.
 *
 * What: LS_WHEEL_LEVELS levels of 64 slots each.  Level L covers times whose
 * bits above 6L agree with the wheel's clock `now` but whose bits
 * [6L, 6L+6) differ: an entry expiring at E sits at level
 *     L = (index of the highest bit of E ^ now) / 6,  slot (E >> 6L) & 63.
 * Level 0 slots hold exactly one millisecond each, so an entry fires in the
 * millisecond it expires: the precision is one tick (1 ms), whatever the
 * timeout.  Entries of higher levels are cascaded (re-inserted relative to
 * the new clock, landing on a lower level) when the clock reaches the start
 * of their slot.
 *
 * Why: a device table of millions needs a timer per device with O(1) arm,
 * move and cancel and no periodic scan.  A binary heap costs O(log n) per
 * re-arm; a single-level hashed wheel costs a scan of long lists per tick or
 * a coarse tick.  The hierarchy gives exact 1 ms firing with O(1) work per
 * entry per level crossed (at most LS_WHEEL_LEVELS - 1 cascades per entry,
 * in practice 1-3 for timeouts between seconds and hours).
 *
 * Skipping idle time: each level keeps a 64-bit occupancy bitmap, so
 * ls_wheel_next() finds the next time anything happens in O(levels) without
 * walking empty slots, and ls_wheel_run() jumps straight to it.  A wheel
 * that sleeps for an hour wakes with work proportional to what expired.
 *
 * Eleven levels cover every non-negative int64 time, so no placement can
 * overflow the hierarchy whatever the clock's origin; empty levels cost one
 * bitmap test.
 *
 * Memory: 11 levels x 64 slot heads = 2.8 KiB per wheel, plus the entry
 * embedded in each timed record (16 bytes: two 32-bit links and the
 * expiry).  Links are handles rather than pointers so that the engine's
 * device record stays small; resolving one is an indexed load through the
 * owner's `at` function.
 *
 * Time is an input: the wheel never reads a clock; `now` only moves forward.
 */
#include "engine/wheel.h"

#include <stddef.h>

#define SLOT_MASK (LS_WHEEL_SLOTS - 1)
#define SPAN_MAX ((int64_t)1 << 60)
#define DUE (LS_WHEEL_LEVELS * LS_WHEEL_SLOTS) /* index of the due list's head */

static inline ls_wheel_entry *at(const ls_wheel *w, uint32_t h)
{
    return w->at(w->ctx, h);
}

static int level_of(int64_t expire, int64_t now)
{
    uint64_t x = (uint64_t)expire ^ (uint64_t)now;
    if (x == 0) return 0;
    return (63 - __builtin_clzll(x)) / LS_WHEEL_BITS;
}

/* Pushes entry h (e) on the list whose head is heads[idx]. */
static void push(ls_wheel *w, uint32_t idx, uint32_t h, ls_wheel_entry *e)
{
    e->next = w->heads[idx];
    if (e->next) at(w, e->next)->prev = h;
    e->prev = LS_WHEEL_HEAD | idx;
    w->heads[idx] = h;
}

static void link_entry(ls_wheel *w, uint32_t h, ls_wheel_entry *e)
{
    int level = level_of(e->expire, w->now);
    int slot = (int)((uint64_t)e->expire >> (level * LS_WHEEL_BITS)) & SLOT_MASK;
    push(w, (uint32_t)(level * LS_WHEEL_SLOTS + slot), h, e);
    w->occupied[level] |= (uint64_t)1 << slot;
}

static void unlink_entry(ls_wheel *w, ls_wheel_entry *e)
{
    if (e->next) at(w, e->next)->prev = e->prev;
    if (e->prev & LS_WHEEL_HEAD) {
        uint32_t idx = e->prev & ~LS_WHEEL_HEAD;
        w->heads[idx] = e->next;
        /* The slot's occupancy bit goes when its list empties. */
        if (!e->next && idx < DUE)
            w->occupied[idx / LS_WHEEL_SLOTS] &= ~((uint64_t)1 << (idx % LS_WHEEL_SLOTS));
    } else {
        at(w, e->prev)->next = e->next;
    }
    e->next = 0;
    e->prev = 0;
}

void ls_wheel_init(ls_wheel *w, int64_t now, ls_wheel_at_fn at_fn, void *ctx)
{
    *w = (ls_wheel){0};
    w->now = now;
    w->at = at_fn;
    w->ctx = ctx;
}

void ls_wheel_add(ls_wheel *w, uint32_t h, int64_t expire)
{
    ls_wheel_entry *e = at(w, h);
    if (e->prev) unlink_entry(w, e);
    else w->count++;
    if (expire <= w->now) expire = w->now + 1;
    if (expire - w->now >= SPAN_MAX) expire = w->now + SPAN_MAX - 1; /* w->now < 2^62 */
    e->expire = expire;
    link_entry(w, h, e);
}

void ls_wheel_remove(ls_wheel *w, uint32_t h)
{
    ls_wheel_entry *e = at(w, h);
    if (!e->prev) return;
    unlink_entry(w, e);
    w->count--;
}

/*
 * The time at which level `level`, slot `slot` is processed: the clock's bits
 * above the level's group, the slot in the group, zeros below.
 */
static int64_t slot_time(int64_t now, int level, int slot)
{
    int shift = level * LS_WHEEL_BITS;
    int above = shift + LS_WHEEL_BITS;
    uint64_t high = above >= 64 ? 0 : (uint64_t)now >> above << above;
    return (int64_t)(high | ((uint64_t)slot << shift));
}

/*
 * Every occupied slot of level L is strictly after the clock's own index at
 * that level (entries are placed by the highest differing bit and expire
 * after now), so the next event of a level is its lowest occupied slot
 * above the current index.
 */
static int64_t level_next(const ls_wheel *w, int level, int *slot_out)
{
    int idx = (int)((uint64_t)w->now >> (level * LS_WHEEL_BITS)) & SLOT_MASK;
    uint64_t above = idx == SLOT_MASK ? 0 : w->occupied[level] & (~(uint64_t)0 << (idx + 1));
    if (!above) return INT64_MAX;
    int slot = __builtin_ctzll(above);
    if (slot_out) *slot_out = slot;
    return slot_time(w->now, level, slot);
}

int64_t ls_wheel_next(const ls_wheel *w)
{
    int64_t best = INT64_MAX;
    for (int level = 0; level < LS_WHEEL_LEVELS; level++) {
        if (!w->occupied[level]) continue;
        int64_t t = level_next(w, level, NULL);
        if (t < best) best = t;
    }
    return best;
}

uint64_t ls_wheel_run(ls_wheel *w, int64_t now, ls_wheel_cb cb, void *ud)
{
    uint64_t fired = 0;

    while (w->now < now) {
        int64_t t = ls_wheel_next(w);
        if (t > now) {
            /* Nothing due: moving the clock keeps every placement valid,
             * because no occupied slot's start is crossed. */
            w->now = now;
            break;
        }
        w->now = t;
        /* Cascade higher levels whose slot starts at t, highest first, so
         * that their entries land on lower levels relative to the new clock.
         * Entries expiring exactly at t go to the due list, a proper list
         * (heads[DUE]) because a callback may remove a due entry. */
        for (int level = LS_WHEEL_LEVELS - 1; level >= 0; level--) {
            int slot = (int)((uint64_t)t >> (level * LS_WHEEL_BITS)) & SLOT_MASK;
            if (!(w->occupied[level] & ((uint64_t)1 << slot))) continue;
            if (slot_time(t, level, slot) != t) continue;
            uint32_t *head = &w->heads[level * LS_WHEEL_SLOTS + slot];
            uint32_t list = *head;
            *head = 0;
            w->occupied[level] &= ~((uint64_t)1 << slot);
            while (list) {
                uint32_t h = list;
                ls_wheel_entry *e = at(w, h);
                list = e->next;
                w->moved++;
                if (e->expire <= t) push(w, DUE, h, e);
                else link_entry(w, h, e);
            }
        }
        while (w->heads[DUE]) {
            uint32_t h = w->heads[DUE];
            unlink_entry(w, at(w, h));
            w->count--;
            fired++;
            cb(ud, h, t);
        }
    }
    return fired;
}
