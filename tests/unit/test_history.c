/*
 * test_history.c - unit tests of the fleet history ring (src/core/history.c):
 * when samples are taken (first tick, then every step of monotonic time,
 * whatever the wall clock does), what they hold, and the ring's order and
 * wrap-around.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/history.h"

static ls_engine_stats counts(uint64_t active, uint64_t inactive)
{
    ls_engine_stats st = {0};
    st.active = active;
    st.inactive = inactive;
    st.devices = active + inactive;
    return st;
}

static void test_first_tick_samples_then_every_step(void **state)
{
    (void)state;
    ls_history *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    ls_history_sample out[LS_HISTORY_LEN];
    assert_int_equal(ls_history_copy(h, out, LS_HISTORY_LEN), 0);

    ls_engine_stats st = counts(5, 1);
    ls_now now = {.mono = 1000, .wall = 1700000000000};
    assert_int_equal(ls_history_tick(h, now, &st), 1);
    /* Not again until a step of monotonic time has passed. */
    for (int64_t dt = 1; dt < LS_HISTORY_STEP_MS; dt += 997) {
        ls_now t = {.mono = now.mono + dt, .wall = now.wall + dt};
        assert_int_equal(ls_history_tick(h, t, &st), 0);
    }
    st = counts(4, 2);
    ls_now t2 = {.mono = now.mono + LS_HISTORY_STEP_MS, .wall = now.wall + LS_HISTORY_STEP_MS};
    assert_int_equal(ls_history_tick(h, t2, &st), 1);
    assert_int_equal(ls_history_copy(h, out, LS_HISTORY_LEN), 2);
    assert_int_equal(out[0].t, now.wall);
    assert_int_equal(out[0].active, 5);
    assert_int_equal(out[0].inactive, 1);
    assert_int_equal(out[0].devices, 6);
    assert_int_equal(out[1].t, t2.wall);
    assert_int_equal(out[1].active, 4);
    assert_int_equal(out[1].inactive, 2);
    free(h);
}

static void test_wall_clock_steps_do_not_change_the_pace(void **state)
{
    (void)state;
    ls_history *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    ls_engine_stats st = counts(1, 0);
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 0, .wall = 5000000}, &st), 1);
    /* The wall clock jumps an hour back, then a day forward: each sample
     * carries the wall time it was taken at, the pace stays the same. */
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 5000, .wall = 5000000 - 3600000}, &st), 0);
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 10000, .wall = 5000000 - 3600000}, &st),
                     1);
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 15000, .wall = 5000000 + 86400000}, &st),
                     0);
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 20000, .wall = 5000000 + 86400000}, &st),
                     1);
    ls_history_sample out[4];
    assert_int_equal(ls_history_copy(h, out, 4), 3);
    assert_int_equal(out[1].t, 5000000 - 3600000);
    assert_int_equal(out[2].t, 5000000 + 86400000);
    free(h);
}

static void test_late_tick_does_not_catch_up(void **state)
{
    (void)state;
    ls_history *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    ls_engine_stats st = counts(1, 0);
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 0, .wall = 0}, &st), 1);
    /* A loop held up for 35 s takes one sample, not three. */
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 35000, .wall = 35000}, &st), 1);
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 35001, .wall = 35001}, &st), 0);
    assert_int_equal(ls_history_tick(h, (ls_now){.mono = 45000, .wall = 45000}, &st), 1);
    ls_history_sample out[8];
    assert_int_equal(ls_history_copy(h, out, 8), 3);
    free(h);
}

static void test_ring_keeps_the_last_hour_in_order(void **state)
{
    (void)state;
    ls_history *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    ls_history_sample *out = calloc(LS_HISTORY_LEN, sizeof(*out));
    assert_non_null(out);
    int total = LS_HISTORY_LEN * 2 + 17;
    for (int i = 0; i < total; i++) {
        ls_engine_stats st = counts((uint64_t)i, 0);
        ls_now t = {.mono = (int64_t)i * LS_HISTORY_STEP_MS,
                    .wall = 1000 + (int64_t)i * LS_HISTORY_STEP_MS};
        assert_int_equal(ls_history_tick(h, t, &st), 1);
        size_t n = ls_history_copy(h, out, LS_HISTORY_LEN);
        assert_int_equal(n, i + 1 < LS_HISTORY_LEN ? (size_t)i + 1 : (size_t)LS_HISTORY_LEN);
        /* Oldest first, ending with the sample just taken. */
        assert_int_equal(out[n - 1].active, (uint64_t)i);
        for (size_t k = 1; k < n; k++)
            assert_int_equal(out[k].active, out[k - 1].active + 1);
    }
    assert_int_equal(out[0].active, (uint64_t)(total - LS_HISTORY_LEN));
    /* A smaller copy gets the newest samples, oldest first. */
    ls_history_sample few[5];
    assert_int_equal(ls_history_copy(h, few, 5), 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(few[k].active, (uint64_t)(total - 5 + k));
    free(out);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_tick_samples_then_every_step),
        cmocka_unit_test(test_wall_clock_steps_do_not_change_the_pace),
        cmocka_unit_test(test_late_tick_does_not_catch_up),
        cmocka_unit_test(test_ring_keeps_the_last_hour_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
