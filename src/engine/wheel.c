/*
 * wheel.c - hierarchical timing wheel with paced (pre-)cascading.
 *
 * What: LS_WHEEL_LEVELS levels of 64 slots each.  Level L covers times whose
 * bits above 6L agree with the wheel's clock `now` but whose bits
 * [6L, 6L+6) differ: an entry expiring at E sits at level
 *     L = (index of the highest bit of E ^ now) / 6,  slot (E >> 6L) & 63.
 * Level 0 slots hold exactly one millisecond each, so an entry fires in the
 * millisecond it expires: the precision is one tick (1 ms), whatever the
 * timeout.  Entries of higher levels are cascaded (re-inserted on a lower
 * level) before the clock reaches the start of their slot.
 *
 * Why a hierarchy: a device table of millions needs a timer per device
 * with O(1) arm, move and cancel and no periodic scan.  A binary heap costs
 * O(log n) per re-arm; a single-level hashed wheel costs a scan of long
 * lists per tick or a coarse tick.  The hierarchy gives exact 1 ms firing
 * with O(1) work per entry per level crossed (1-3 for timeouts between
 * seconds and hours).
 *
 * Why paced cascading: a plain wheel cascades a whole slot when the clock
 * reaches its start.  With 10 million deadlines spread over 50 s, a level-2
 * slot (4.1 s) holds ~800k entries, and walking them (randomly placed
 * records, a cache miss each) stalls the tick for 100-250 ms every 4 s;
 * crossing a level-3 boundary (every 262 s) moves millions at once.  Due
 * expiries wait behind that.  So the cascade is done ahead of time, a
 * bounded number of entries per millisecond:
 *
 * - Each level has two banks of 64 lists: the current rotation (the slots
 *   of the level-(L+1) slot the clock is in) and the next one (the slots of
 *   the next level-(L+1) slot, called window W_L).  Which physical bank is
 *   current is the parity of now >> 6(L+1), so no swap step exists: when
 *   the clock enters the next level-(L+1) slot, the next bank becomes the
 *   current one by itself.  Heads are physical list indices, stored in the
 *   first entry's `prev`, so unlink works whatever bank is current.
 * - Placement: an entry inside the current level-1 slot goes to level 0's
 *   current bank; an entry inside some window W_M goes to level M's next
 *   bank (the lowest such M: W_{M-1} lies inside W_M when the clock is in
 *   the last level-M slot); any other entry sits on its level's current
 *   bank as usual, at a slot at least two ahead of the clock's.
 * - The entries of W_M that were armed before the clock entered the
 *   window's previous level-(M+1) slot sit in one list, the source of W_M:
 *   level M+1's slot cur+1, or when cur = 63, slot 0 of level M+1's next
 *   bank.  While the clock is in that level-(M+1) slot, ls_wheel_run moves
 *   the source into W_M a few entries per ms: ceil(2 * left / ms to go) +
 *   PACE_MIN, where `ms to go` runs to the start of the last level-M slot of
 *   the window's predecessor (for M = 0, its last ms).  The factor 2 makes
 *   it finish about halfway; the deadline is the moment W_{M-1} starts
 *   taking its entries from slot 0 of W_M, which therefore must be whole.
 *   Levels are paced top down, so a finished W_{M+1} never feeds an open
 *   source.  Sources never grow: new arms for a window go straight to its
 *   bank.  At 10M devices due over 50 s this is ~400 moves a ms per level
 *   instead of 800k at once.
 * - `left` is an upper bound kept per list (counted on link, and on unlink
 *   when the entry is first; reset when the list empties), so pacing is
 *   never too slow; a list thinned by removals is only moved a bit early.
 * - A source of at most PACE_BATCH entries is not paced but moved in one
 *   go at its deadline, so a lightly loaded wheel wakes once per source,
 *   not every ms (256 moves cost ~50 us; deadlines of different levels
 *   never fall in the same ms).
 * - ls_wheel_next() reports now + 1 while a long source is non-empty (one
 *   wake a ms at most, only while there are entries to move), the time a
 *   long list becomes a source or a short one's deadline, and the exact
 *   time of the next level-0 slot, so it is never later than the next
 *   expiry.  ls_wheel_run() jumps over idle time straight to the next such
 *   event; a clock far behind is caught up tick by tick at the same pace.
 *
 * Skipping idle time: per-list occupancy bitmaps make ls_wheel_next() and
 * each step of ls_wheel_run() O(levels), without walking empty slots.
 *
 * Eleven levels cover every non-negative int64 time, so no placement can
 * overflow the hierarchy whatever the clock's origin.
 *
 * Memory: 2 banks x 11 levels x 64 lists, with a head and a length bound
 * each: 11 KiB per wheel, plus the entry embedded in each timed record
 * (16 bytes: two 32-bit links and the expiry).  Links are handles rather
 * than pointers so that the engine's device record stays small; resolving
 * one is an indexed load through the owner's `at` function.
 *
 * Time is an input: the wheel never reads a clock; `now` only moves forward.
 */
#include "engine/wheel.h"

#include <stddef.h>

#define SLOT_MASK (LS_WHEEL_SLOTS - 1)
#define SPAN_MAX ((int64_t)1 << 60)
#define TOP (LS_WHEEL_LEVELS - 1)
#define NLIST (LS_WHEEL_LEVELS * LS_WHEEL_SLOTS) /* lists in a bank */
#define DUE (2 * NLIST)                          /* index of the due list's head */
#define PACE_MIN 16                              /* moves a tick, at least */
#define PACE_BATCH 256 /* a source this short is moved in one go, at its deadline */

static inline ls_wheel_entry *at(const ls_wheel *w, uint32_t h)
{
    return w->at(w->ctx, h);
}

static inline int slot_of(int64_t t, int level)
{
    return (int)((uint64_t)t >> (level * LS_WHEEL_BITS)) & SLOT_MASK;
}

/* The physical bank of level `level`'s current rotation at clock n. */
static inline uint32_t bank_of(int64_t n, int level)
{
    if (level == TOP) return 0;
    return (uint32_t)((uint64_t)n >> ((level + 1) * LS_WHEEL_BITS)) & 1;
}

static inline uint32_t list_of(uint32_t bank, int level, int slot)
{
    return bank * NLIST + (uint32_t)(level * LS_WHEEL_SLOTS + slot);
}

/* The start of the level-(level+1) slot after the one holding n. */
static inline int64_t window_end(int64_t n, int level)
{
    int shift = (level + 1) * LS_WHEEL_BITS;
    return (int64_t)((((uint64_t)n >> shift) + 1) << shift);
}

static int level_of(int64_t expire, int64_t now)
{
    uint64_t x = (uint64_t)expire ^ (uint64_t)now;
    if (x == 0) return 0;
    return (63 - __builtin_clzll(x)) / LS_WHEEL_BITS;
}

/* Pushes entry h (e) on list idx. */
static void push(ls_wheel *w, uint32_t idx, uint32_t h, ls_wheel_entry *e)
{
    e->next = w->heads[idx];
    if (e->next) at(w, e->next)->prev = h;
    e->prev = LS_WHEEL_HEAD | idx;
    w->heads[idx] = h;
    if (idx < DUE) {
        w->est[idx]++;
        w->occupied[idx / LS_WHEEL_SLOTS] |= (uint64_t)1 << (idx % LS_WHEEL_SLOTS);
    }
}

/*
 * The list an entry expiring at E (> now) belongs on now: see "Placement"
 * above.  O(1) in practice: the loop only runs while the clock sits in the
 * last slot of several levels at once.
 */
static uint32_t place(const ls_wheel *w, int64_t e)
{
    int64_t n = w->now;
    int level = level_of(e, n);
    if (level == 0) return list_of(bank_of(n, 0), 0, slot_of(e, 0));
    int slot = slot_of(e, level);
    if (slot != slot_of(n, level) + 1) return list_of(bank_of(n, level), level, slot);
    int m = level - 1; /* e is in W_m; W_{m-1} too when it starts W_m's first slot */
    while (m > 0 && slot_of(e, m) == 0 && slot_of(n, m) == SLOT_MASK)
        m--;
    return list_of(bank_of(n, m) ^ 1, m, slot_of(e, m));
}

static void unlink_entry(ls_wheel *w, ls_wheel_entry *e)
{
    if (e->next) at(w, e->next)->prev = e->prev;
    if (e->prev & LS_WHEEL_HEAD) {
        uint32_t idx = e->prev & ~LS_WHEEL_HEAD;
        w->heads[idx] = e->next;
        if (idx < DUE) {
            /* The occupancy bit and the length bound go when the list empties. */
            if (!e->next) {
                w->occupied[idx / LS_WHEEL_SLOTS] &= ~((uint64_t)1 << (idx % LS_WHEEL_SLOTS));
                w->est[idx] = 0;
            } else if (w->est[idx]) {
                w->est[idx]--;
            }
        }
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
    if (e->prev)
        unlink_entry(w, e);
    else
        w->count++;
    if (expire <= w->now) expire = w->now + 1;
    if (expire - w->now >= SPAN_MAX) expire = w->now + SPAN_MAX - 1; /* w->now < 2^62 */
    e->expire = expire;
    push(w, place(w, expire), h, e);
}

void ls_wheel_remove(ls_wheel *w, uint32_t h)
{
    ls_wheel_entry *e = at(w, h);
    if (!e->prev) return;
    unlink_entry(w, e);
    w->count--;
}

/*
 * The time at which level `level`, slot `slot` of the clock's current
 * rotation starts: the clock's bits above the level's group, the slot in
 * the group, zeros below.
 */
static int64_t slot_time(int64_t now, int level, int slot)
{
    int shift = level * LS_WHEEL_BITS;
    int above = shift + LS_WHEEL_BITS;
    uint64_t high = above >= 64 ? 0 : (uint64_t)now >> above << above;
    return (int64_t)(high | ((uint64_t)slot << shift));
}

/* The source of window W_m (m < TOP) at clock n: see the design above. */
static uint32_t source_of(int64_t n, int m)
{
    int cur = slot_of(n, m + 1);
    if (cur < SLOT_MASK) return list_of(bank_of(n, m + 1), m + 1, cur + 1);
    return list_of(bank_of(n, m + 1) ^ 1, m + 1, 0);
}

/*
 * When list idx, a slot of level >= 1 starting at T, needs the next call:
 * when it becomes a source (T - span(level)), or, for a short list, the
 * last moment it must be moved (T - span(level - 1)); now + 1 if past.
 */
static int64_t source_time(const ls_wheel *w, uint32_t idx, int64_t t, int level)
{
    int lead = w->est[idx] <= PACE_BATCH ? 0 : LS_WHEEL_BITS;
    t -= (int64_t)1 << ((level - 1) * LS_WHEEL_BITS + lead);
    return t > w->now ? t : w->now + 1;
}

/*
 * Every list of a current bank is strictly after the clock's slot at that
 * level (entries are placed by the highest differing bit and expire after
 * now; level L >= 1 slot cur + 1 is a source, emptied before its start).
 * So a level's next event is the first occupied slot's: for level 0, when
 * it fires; above, source_time().  Next banks likewise, one rotation on.
 */
int64_t ls_wheel_next(const ls_wheel *w)
{
    int64_t n = w->now, best = INT64_MAX;
    for (int level = 0; level < LS_WHEEL_LEVELS; level++) {
        uint32_t bank = bank_of(n, level);
        int cur = slot_of(n, level);
        uint64_t occ = w->occupied[bank * LS_WHEEL_LEVELS + (uint32_t)level];
        uint64_t above = cur == SLOT_MASK ? 0 : occ & (~(uint64_t)0 << (cur + 1));
        if (above) {
            int s = __builtin_ctzll(above);
            int64_t t = slot_time(n, level, s);
            if (level > 0) t = source_time(w, list_of(bank, level, s), t, level);
            if (t < best) best = t;
        }
        if (level == TOP) break;
        occ = w->occupied[(bank ^ 1) * LS_WHEEL_LEVELS + (uint32_t)level];
        if (occ) {
            int s = __builtin_ctzll(occ);
            int64_t t = window_end(n, level) + (int64_t)((uint64_t)s << (level * LS_WHEEL_BITS));
            if (level > 0) t = source_time(w, list_of(bank ^ 1, level, s), t, level);
            if (t < best) best = t;
        }
    }
    return best;
}

/*
 * Moves part of each window's source into the window, top level first,
 * at the clock w->now (see the design above for the pace).
 */
static void pace(ls_wheel *w)
{
    int64_t n = w->now;
    for (int m = TOP - 1; m >= 0; m--) {
        uint32_t src = source_of(n, m);
        if (!w->heads[src]) continue;
        int64_t due = window_end(n, m) - ((int64_t)1 << (m * LS_WHEEL_BITS)), togo = due - n;
        uint64_t quota = UINT64_MAX;
        if (togo > 0 && w->est[src] <= PACE_BATCH) continue; /* all at once, at `due` */
        if (togo > 0)
            quota = (2 * (uint64_t)w->est[src] + (uint64_t)togo - 1) / (uint64_t)togo + PACE_MIN;
        while (quota-- && w->heads[src]) {
            uint32_t h = w->heads[src];
            ls_wheel_entry *e = at(w, h);
            unlink_entry(w, e);
            push(w, place(w, e->expire), h, e);
            w->moved++;
        }
    }
}

uint64_t ls_wheel_run(ls_wheel *w, int64_t now, ls_wheel_cb cb, void *ud)
{
    uint64_t fired = 0;

    while (w->now < now) {
        int64_t t = ls_wheel_next(w);
        if (t > now) {
            /* Nothing to do until then: moving the clock keeps every
             * placement valid (no list becomes a source or falls due, and a
             * bank whose rotation ends is empty). */
            w->now = now;
            break;
        }
        w->now = t;
        pace(w);
        /* The level-0 slot of t holds exactly the entries expiring at t.
         * It becomes the due list (heads[DUE]), a proper list because a
         * callback may remove a due entry. */
        uint32_t idx = list_of(bank_of(t, 0), 0, slot_of(t, 0));
        uint32_t list = w->heads[idx];
        if (!list) continue;
        w->heads[idx] = 0;
        w->est[idx] = 0;
        w->occupied[idx / LS_WHEEL_SLOTS] &= ~((uint64_t)1 << (idx % LS_WHEEL_SLOTS));
        w->heads[DUE] = list;
        at(w, list)->prev = LS_WHEEL_HEAD | DUE;
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
