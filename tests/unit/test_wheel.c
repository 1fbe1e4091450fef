/*
 * test_wheel.c - the timing wheel against a brute-force reference.
 *
 * Every entry must fire exactly once, in the run whose `now` first reaches
 * its expiry, with the callback's time equal to its expiry (1 ms
 * precision), never earlier; removed entries never fire; moved entries
 * fire at their new time only.  Long runs cross level-2..5 boundaries,
 * where entries are moved between levels ahead of time, and the moves done
 * in one millisecond stay bounded however many entries the wheel holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "engine/wheel.h"

typedef struct item {
    ls_wheel_entry e;
    int64_t want;  /* expiry, or -1 when not armed */
    int64_t fired; /* time fired at, -1 if not */
    int fire_count;
    uint32_t h; /* wheel handle, 0 until first used */
} item;

/* Handles: every item the tests use gets the next one on first use. */
#define MAX_ITEMS 65536
static item *reg[MAX_ITEMS];
static uint32_t nreg;

static uint32_t H(item *it)
{
    if (!it->h) {
        assert_true(nreg + 1 < MAX_ITEMS);
        it->h = ++nreg;
        reg[it->h] = it;
    }
    return it->h;
}

static ls_wheel_entry *at_cb(void *ctx, uint32_t h)
{
    (void)ctx;
    return &reg[h]->e;
}

static void wheel_init(ls_wheel *w, int64_t now)
{
    ls_wheel_init(w, now, at_cb, NULL);
}

static int64_t run_now;

static void record_cb(void *ud, uint32_t h, int64_t t)
{
    (void)ud;
    item *it = reg[h];
    it->fired = t;
    it->fire_count++;
    assert_true(t <= run_now);
}

static uint64_t rng_s = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return rng_s;
}

static void test_fires_exactly_at_expiry(void **state)
{
    (void)state;
    ls_wheel w;
    wheel_init(&w, 1000);
    static item items[5000];
    int64_t spans[] = {1, 63, 64, 65, 4095, 4096, 4097, 262144, 300000, 16777216 + 5};
    for (int i = 0; i < 5000; i++) {
        int64_t exp = 1000 + spans[i % 10] + (int64_t)(rnd() % 50);
        items[i] = (item){.want = exp, .fired = -1};
        ls_wheel_add(&w, H(&items[i]), exp);
    }
    assert_int_equal(w.count, 5000);
    /* Step with irregular strides, checking each fires at its own ms. */
    int64_t now = 1000;
    while (w.count) {
        int64_t next = ls_wheel_next(&w);
        assert_true(next > now);
        now += 1 + (int64_t)(rnd() % 3000);
        run_now = now;
        ls_wheel_run(&w, now, record_cb, NULL);
    }
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(items[i].fire_count, 1);
        assert_int_equal(items[i].fired, items[i].want);
    }
}

static void test_next_is_exact_for_level0(void **state)
{
    (void)state;
    ls_wheel w;
    wheel_init(&w, 0);
    item a = {.fired = -1};
    ls_wheel_add(&w, H(&a), 17);
    assert_int_equal(ls_wheel_next(&w), 17);
    run_now = 16;
    assert_int_equal(ls_wheel_run(&w, 16, record_cb, NULL), 0);
    run_now = 17;
    assert_int_equal(ls_wheel_run(&w, 17, record_cb, NULL), 1);
    assert_int_equal(a.fired, 17);
    assert_int_equal(ls_wheel_next(&w), INT64_MAX);
}

static void test_remove_and_move(void **state)
{
    (void)state;
    ls_wheel w;
    wheel_init(&w, 0);
    item a = {.fired = -1}, b = {.fired = -1}, c = {.fired = -1};
    ls_wheel_add(&w, H(&a), 5000);
    ls_wheel_add(&w, H(&b), 5000);
    ls_wheel_add(&w, H(&c), 70);
    ls_wheel_remove(&w, H(&a));
    assert_false(ls_wheel_armed(&a.e));
    ls_wheel_remove(&w, H(&a));      /* idempotent */
    ls_wheel_add(&w, H(&b), 100000); /* moved out */
    ls_wheel_add(&w, H(&c), 30);     /* moved in */
    assert_int_equal(w.count, 2);
    run_now = 99999;
    ls_wheel_run(&w, 99999, record_cb, NULL);
    assert_int_equal(a.fire_count, 0);
    assert_int_equal(b.fire_count, 0);
    assert_int_equal(c.fired, 30);
    run_now = 100000;
    ls_wheel_run(&w, 100000, record_cb, NULL);
    assert_int_equal(b.fired, 100000);
    assert_int_equal(w.count, 0);
}

static void test_past_expiry_fires_next_tick(void **state)
{
    (void)state;
    ls_wheel w;
    wheel_init(&w, 500);
    item a = {.fired = -1};
    ls_wheel_add(&w, H(&a), 10);
    run_now = 501;
    ls_wheel_run(&w, 501, record_cb, NULL);
    assert_int_equal(a.fired, 501);
}

/* A callback that re-arms itself (as the engine's does) and removes its
 * partner, which may be waiting in the same millisecond's due list. */
static item *pair[2];
static void rearm_cb(void *ud, uint32_t h, int64_t t)
{
    ls_wheel *w = ud;
    item *it = reg[h];
    it->fire_count++;
    it->fired = t;
    if (it->fire_count < 3) ls_wheel_add(w, h, t + 1000);
    if (pair[0]) ls_wheel_remove(w, H(pair[it == pair[0]]));
}

static void test_callback_rearms_and_removes(void **state)
{
    (void)state;
    ls_wheel w;
    wheel_init(&w, 0);
    item a = {.fired = -1}, b = {.fired = -1};
    ls_wheel_add(&w, H(&a), 100);
    ls_wheel_add(&w, H(&b), 100); /* due in the same ms: the first removes the other */
    pair[0] = &a;
    pair[1] = &b;
    ls_wheel_run(&w, 100, rearm_cb, &w);
    /* Exactly one of them fired in that ms; the other was removed. */
    assert_int_equal(a.fire_count + b.fire_count, 1);
    assert_false(ls_wheel_armed(a.fire_count ? &b.e : &a.e));
    item *live = a.fire_count ? &a : &b;
    ls_wheel_run(&w, 10000, rearm_cb, &w);
    assert_int_equal(live->fire_count, 3);
    assert_int_equal(live->fired, 2100);
    assert_int_equal(w.count, 0);
}

static void test_random_against_reference(void **state)
{
    (void)state;
    enum { N = 20000 };
    static item items[N];
    ls_wheel w;
    int64_t now = (int64_t)(rnd() % 100000);
    wheel_init(&w, now);
    for (int i = 0; i < N; i++)
        items[i] = (item){.want = -1, .fired = -1};
    for (int round = 0; round < 2000; round++) {
        /* Arm, move or cancel some entries. */
        for (int k = 0; k < 20; k++) {
            item *it = &items[rnd() % N];
            uint64_t op = rnd() % 10;
            if (op < 7) {
                int64_t span = (int64_t)(rnd() % (rnd() % 2 ? 100 : 5000000)) + 1;
                it->want = now + span;
                it->fired = -1;
                it->fire_count = 0;
                ls_wheel_add(&w, H(it), it->want);
            } else if (ls_wheel_armed(&it->e)) {
                ls_wheel_remove(&w, H(it));
                it->want = -1;
            }
        }
        now += (int64_t)(rnd() % 5000);
        run_now = now;
        ls_wheel_run(&w, now, record_cb, NULL);
        for (int i = 0; i < N; i += 97) {
            item *it = &items[i];
            if (it->want < 0) continue;
            if (it->want <= now) {
                assert_int_equal(it->fire_count, 1);
                assert_int_equal(it->fired, it->want);
            } else {
                assert_int_equal(it->fire_count, 0);
                assert_true(ls_wheel_armed(&it->e));
            }
        }
    }
}

static void test_large_clock_values(void **state)
{
    (void)state;
    ls_wheel w;
    int64_t base = ((int64_t)1 << 48) - 3; /* crossing high bit groups */
    wheel_init(&w, base);
    item a = {.fired = -1}, b = {.fired = -1};
    ls_wheel_add(&w, H(&a), base + 5);
    ls_wheel_add(&w, H(&b), base + ((int64_t)1 << 40));
    run_now = base + 5;
    ls_wheel_run(&w, base + 5, record_cb, NULL);
    assert_int_equal(a.fired, base + 5);
    run_now = base + ((int64_t)1 << 40);
    ls_wheel_run(&w, run_now, record_cb, NULL);
    assert_int_equal(b.fired, base + ((int64_t)1 << 40));
}

/* --- long runs against the reference, with callbacks that change the wheel */

enum { LONG_N = 8000 };
static item long_items[LONG_N];
static ls_wheel long_w;
static int64_t long_armed;

/* A time inside the level-(m+1) slot `ahead` slots after the clock's:
 * ahead = 1 is the window whose entries may be being moved right now,
 * ahead = 2 the slot that will be moved next. */
static int64_t ahead_target(int64_t now, int m, int ahead)
{
    int shift = (m + 1) * LS_WHEEL_BITS;
    int64_t start = (int64_t)((((uint64_t)now >> shift) + (uint64_t)ahead) << shift);
    return start + (int64_t)(rnd() % ((uint64_t)1 << shift));
}

/* A target time: near, far, just before or after a slot boundary, or in a
 * slot being moved or about to be. */
static int64_t long_target(int64_t now)
{
    switch (rnd() % 8) {
    case 0:
        return now + 1 + (int64_t)(rnd() % 100);
    case 1:
        return now + 1 + (int64_t)(rnd() % 5000);
    case 2:
        return now + 1 + (int64_t)(rnd() % 300000);
    case 3:
        return now + 1 + (int64_t)(rnd() % 20000000);
    case 4:
        return now - (int64_t)(rnd() % 10); /* past: fires next ms */
    case 5:
        return ahead_target(now, (int)(rnd() % 4), 2);
    case 6: {
        int shift = (int)(1 + rnd() % 4) * LS_WHEEL_BITS;
        return (int64_t)((((uint64_t)now >> shift) + 1) << shift) - 1 + (int64_t)(rnd() % 3);
    }
    default:
        return ahead_target(now, (int)(rnd() % 4), 1);
    }
}

static void long_arm(item *it, int64_t now)
{
    int64_t t = long_target(now);
    if (t <= now) t = now + 1;
    if (it->want < 0) long_armed++;
    it->want = t;
    ls_wheel_add(&long_w, H(it), t);
}

static void long_disarm(item *it)
{
    if (it->want < 0) return;
    long_armed--;
    it->want = -1;
    ls_wheel_remove(&long_w, H(it));
    assert_false(ls_wheel_armed(&it->e));
}

static void long_cb(void *ud, uint32_t h, int64_t t)
{
    (void)ud;
    item *it = reg[h];
    assert_true(it >= long_items && it < long_items + LONG_N);
    assert_int_equal(t, it->want); /* neither early nor late */
    assert_true(t <= run_now);
    assert_false(ls_wheel_armed(&it->e));
    it->fire_count++;
    it->want = -1;
    long_armed--;
    uint64_t op = rnd() % 8;
    if (op < 4)
        long_arm(it, t); /* re-arm itself */
    else if (op == 4)
        long_disarm(&long_items[rnd() % LONG_N]); /* maybe due now too */
    else if (op == 5)
        long_arm(&long_items[rnd() % LONG_N], t); /* arm or move another */
}

static void long_check(int64_t now)
{
    int64_t min_want = INT64_MAX, armed = 0;
    for (int i = 0; i < LONG_N; i++) {
        item *it = &long_items[i];
        if (it->want < 0) {
            assert_false(ls_wheel_armed(&it->e));
            continue;
        }
        assert_true(it->want > now); /* due ones have fired */
        assert_true(ls_wheel_armed(&it->e));
        armed++;
        if (it->want < min_want) min_want = it->want;
    }
    assert_int_equal(armed, long_armed);
    assert_int_equal(long_w.count, (uint64_t)armed);
    int64_t next = ls_wheel_next(&long_w);
    assert_true(next > now);
    assert_true(next <= min_want);
}

static void long_ops(int64_t now, int k)
{
    for (int j = 0; j < k; j++) {
        item *it = &long_items[rnd() % LONG_N];
        if (rnd() % 4)
            long_arm(it, now);
        else
            long_disarm(it);
    }
}

/* Half the items start in the level-2 and level-3 slots two ahead, so
 * that long lists are moved a few at a time while the callbacks and the
 * ops arm, move and remove entries in them. */
static void long_setup(int64_t now)
{
    wheel_init(&long_w, now);
    long_armed = 0;
    for (int i = 0; i < LONG_N; i++) {
        item *it = &long_items[i];
        *it = (item){.want = -1, .fired = -1, .h = it->h};
        if (i % 2) {
            long_arm(it, now);
            continue;
        }
        it->want = ahead_target(now, 1 + i % 4 / 2, 2);
        ls_wheel_add(&long_w, H(it), it->want);
        long_armed++;
    }
}

/* One ms at a time for 300 s across a level-4 boundary (3 * 2^24 ms) and
 * the level-3 boundaries around it. */
static void test_long_run_tick_by_tick(void **state)
{
    (void)state;
    int64_t now = 3 * ((int64_t)1 << 24) - 280000 + (int64_t)(rnd() % 1000);
    long_setup(now);
    uint64_t fired = 0, worst = 0;
    for (int tick = 0; tick < 300000; tick++) {
        if (rnd() % 8 == 0) long_ops(now, 1 + (int)(rnd() % 4));
        now++;
        run_now = now;
        uint64_t moved = long_w.moved;
        fired += ls_wheel_run(&long_w, now, long_cb, NULL);
        if (long_w.moved - moved > worst) worst = long_w.moved - moved;
        if (tick % 997 == 0) long_check(now);
    }
    long_check(now);
    assert_true(fired > 10000);
    assert_true(long_w.moved > 10000);
    /* The ~2000 entries that started in one level-2 slot were moved a few
     * at a time, not in one go. */
    assert_true(worst < 1000);
}

/* Random strides from 1 ms to 5 min across level-4 and level-5 boundaries
 * (2^30 - 2^24 and 2^30): a clock that wakes late catches up exactly. */
static void test_long_run_big_jumps(void **state)
{
    (void)state;
    int64_t now = ((int64_t)1 << 30) - ((int64_t)1 << 24) - 5000 + (int64_t)(rnd() % 1000);
    int64_t end = ((int64_t)1 << 30) + ((int64_t)1 << 24) + 100000;
    long_setup(now);
    uint64_t fired = 0;
    while (now < end) {
        long_ops(now, 1 + (int)(rnd() % 40));
        static const int64_t strides[] = {10, 5000, 300000};
        now += 1 + (int64_t)(rnd() % (uint64_t)strides[rnd() % 3]);
        run_now = now;
        fired += ls_wheel_run(&long_w, now, long_cb, NULL);
        long_check(now);
    }
    assert_true(fired > 10000);
}

/* --- the work of one millisecond stays bounded */

enum { BIG_N = 2000000 };
typedef struct big {
    ls_wheel w;
    ls_wheel_entry *ent;
    int64_t *want;
    uint64_t bad;
} big;

static ls_wheel_entry *big_at(void *ctx, uint32_t h)
{
    return &((big *)ctx)->ent[h - 1];
}

static void big_cb(void *ud, uint32_t h, int64_t t)
{
    big *b = ud;
    if (b->want[h - 1] != t) b->bad++;
    b->want[h - 1] = t + 50000 + (int64_t)(rnd() % 50001);
    ls_wheel_add(&b->w, h, b->want[h - 1]);
}

/* 2M deadlines 50..100 s ahead, each re-armed 50..100 s on when it fires,
 * 1 ms at a time for 300 s (crossing the level-3 boundary at 262144 ms):
 * no millisecond may move more than a few thousand entries besides the
 * ones it fires (a whole level-2 slot holds ~160k here, a level-3 one all). */
static void test_moves_per_tick_bounded(void **state)
{
    (void)state;
    static big b;
    b.ent = calloc(BIG_N, sizeof(*b.ent));
    b.want = calloc(BIG_N, sizeof(*b.want));
    assert_non_null(b.ent);
    assert_non_null(b.want);
    ls_wheel_init(&b.w, 0, big_at, &b);
    for (uint32_t i = 0; i < BIG_N; i++) {
        b.want[i] = 50000 + (int64_t)(rnd() % 50001);
        ls_wheel_add(&b.w, i + 1, b.want[i]);
    }
    uint64_t worst = 0, fired = 0;
    for (int64_t t = 1; t <= 300000; t++) {
        uint64_t moved = b.w.moved;
        uint64_t f = ls_wheel_run(&b.w, t, big_cb, &b);
        fired += f;
        moved = b.w.moved - moved;
        if (moved > f && moved - f > worst) worst = moved - f;
    }
    print_message("most entries moved in one ms, beyond those fired: %llu\n",
                  (unsigned long long)worst);
    assert_int_equal(b.bad, 0);
    assert_int_equal(b.w.count, BIG_N);
    assert_true(fired > 2 * (uint64_t)BIG_N);
    assert_true(worst <= 4096);
    free(b.ent);
    free(b.want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_exactly_at_expiry),
        cmocka_unit_test(test_next_is_exact_for_level0),
        cmocka_unit_test(test_remove_and_move),
        cmocka_unit_test(test_past_expiry_fires_next_tick),
        cmocka_unit_test(test_callback_rearms_and_removes),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_large_clock_values),
        cmocka_unit_test(test_long_run_tick_by_tick),
        cmocka_unit_test(test_long_run_big_jumps),
        cmocka_unit_test(test_moves_per_tick_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
