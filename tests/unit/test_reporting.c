/*
 * test_reporting.c - the activity reporting strategies (src/engine/reporting.c)
 * in front of a real engine, on a fake clock: for each strategy, what
 * reaches the engine, when, and with which time; the FIRST edge case (a
 * deferred activity after an empty period is recorded, never re-activates);
 * per-device period chains; forgetting a deleted device; input errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/reporting.h"

#define MONO0 1000LL
#define WALL0 1700000000000LL
#define P 1000 /* reporting period */

typedef struct fx {
    ls_engine *e;
    ls_reporter *r;
    ls_now now;
    ls_event_type ev[64];
    int64_t ev_ts[64];
    int n;
} fx;

static void event_cb(void *ud, const ls_event *ev)
{
    fx *f = ud;
    if (f->n < 64) {
        f->ev[f->n] = ev->type;
        f->ev_ts[f->n++] = ev->ts;
    }
}

static fx *fx_new(ls_report_strategy s, int64_t timeout, uint64_t max_devices)
{
    fx *f = calloc(1, sizeof(*f));
    ls_engine_config cfg = {.default_timeout_ms = timeout,
                            .max_clock_skew_ms = 5000,
                            .max_devices = max_devices,
                            .seed = 3};
    assert_int_equal(ls_engine_new(&f->e, &cfg, event_cb, f), 0);
    assert_int_equal(ls_reporter_new(&f->r, f->e, s, P, 5), 0);
    f->now = (ls_now){MONO0, WALL0};
    return f;
}

static void fx_free(fx *f)
{
    ls_reporter_close(f->r);
    ls_engine_close(f->e);
    free(f);
}

/* Moves the clock to t ms and runs both timers, as the daemon's loop does. */
static void at(fx *f, int64_t t)
{
    f->now = (ls_now){MONO0 + t, WALL0 + t};
    ls_engine_tick(f->e, f->now);
    ls_reporter_tick(f->r, f->now);
}

static int send_ts(fx *f, const char *id, int64_t ts)
{
    ls_activity a = {.id = id, .len = (uint32_t)strlen(id), .ts = ts};
    int rc = 99;
    ls_reporter_activity_batch(f->r, &a, 1, f->now, &rc);
    return rc;
}

static void send(fx *f, const char *id)
{
    assert_int_equal(send_ts(f, id, 0), 0);
}

static uint64_t engine_activities(fx *f)
{
    ls_engine_stats st;
    ls_engine_get_stats(f->e, &st);
    return st.activities;
}

static int64_t last(fx *f, const char *id)
{
    const ls_device *d = ls_engine_find(f->e, id, strlen(id));
    return d ? d->last_activity : -1;
}

static int active(fx *f, const char *id)
{
    const ls_device *d = ls_engine_find(f->e, id, strlen(id));
    return d && d->active;
}

static void test_all(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_ALL, 10000, 0);
    send(f, "d");
    at(f, 100);
    send(f, "d");
    at(f, 200);
    send(f, "d");
    assert_int_equal(engine_activities(f), 3);
    assert_int_equal(last(f, "d"), WALL0 + 200);
    ls_reporter_stats st;
    ls_reporter_get_stats(f->r, &st);
    assert_int_equal(st.forwarded, 3);
    assert_int_equal(st.tracking, 0); /* ALL keeps no state */
    assert_int_equal(ls_reporter_next_wakeup(f->r), INT64_MAX);
    fx_free(f);
}

static void test_first_silent_after(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_FIRST, 10000, 0);
    send(f, "d"); /* 0: reported at once */
    assert_int_equal(engine_activities(f), 1);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->ev[0], LS_EV_ACTIVITY);
    at(f, 100);
    send(f, "d");
    at(f, 200);
    send(f, "d");
    assert_int_equal(engine_activities(f), 1); /* held */
    assert_int_equal(last(f, "d"), WALL0);
    at(f, P); /* first period ends: nothing reported (FIRST) */
    assert_int_equal(engine_activities(f), 1);
    at(f, 2 * P - 1);
    assert_int_equal(last(f, "d"), WALL0);
    at(f, 2 * P); /* a whole period without activity: the newest held one is recorded */
    assert_int_equal(engine_activities(f), 2);
    assert_int_equal(last(f, "d"), WALL0 + 200);
    ls_reporter_stats st;
    ls_reporter_get_stats(f->r, &st);
    assert_int_equal(st.recorded, 1);
    assert_int_equal(st.held, 2);
    assert_int_equal(st.tracking, 0); /* and the device is forgotten */
    /* So the device goes inactive a full timeout after its real last activity. */
    at(f, 10199);
    assert_true(active(f, "d"));
    at(f, 10200);
    assert_false(active(f, "d"));
    assert_int_equal(f->ev[f->n - 1], LS_EV_INACTIVITY);
    assert_int_equal(f->ev_ts[f->n - 1], WALL0 + 10200);
    fx_free(f);
}

static void test_first_continuing(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_FIRST, 10000, 0);
    send(f, "d");
    at(f, 100);
    send(f, "d"); /* held */
    at(f, 1200);  /* period 2's first: reported, and it supersedes the held one */
    send(f, "d");
    assert_int_equal(engine_activities(f), 2);
    assert_int_equal(last(f, "d"), WALL0 + 1200);
    at(f, 2 * P);
    at(f, 3 * P); /* period 3 empty, nothing held from period 2: nothing recorded */
    assert_int_equal(engine_activities(f), 2);
    ls_reporter_stats st;
    ls_reporter_get_stats(f->r, &st);
    assert_int_equal(st.recorded, 0);
    assert_int_equal(st.tracking, 0);
    fx_free(f);
}

/* The decided edge case: the deferred activity arrives after the device
 * went inactive; it corrects lastActivityTime but does not flip the device
 * back to active (no ACTIVITY_EVENT, no second INACTIVITY_EVENT). */
static void test_first_edge_no_flip_flop(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_FIRST, 1500, 0); /* timeout < 2 periods */
    send(f, "d");
    at(f, 600);
    send(f, "d"); /* held */
    at(f, 1500);  /* deadline of the first: inactive */
    assert_false(active(f, "d"));
    int events = f->n;
    at(f, 2 * P); /* the held 600 is recorded */
    assert_int_equal(last(f, "d"), WALL0 + 600);
    assert_false(active(f, "d"));
    at(f, 5000);
    assert_int_equal(f->n, events); /* no ACTIVITY_EVENT, no second INACTIVITY_EVENT */
    fx_free(f);
}

static void test_last(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_LAST, 10000, 0);
    send(f, "d");
    at(f, 300);
    send_ts(f, "d", WALL0 + 50); /* an older device time: the newest one wins */
    at(f, 600);
    send(f, "d");
    at(f, P - 1);
    assert_null(ls_engine_find(f->e, "d", 1)); /* nothing has reached the engine */
    assert_int_equal(engine_activities(f), 0);
    at(f, P); /* the period ends: its newest activity, with its own time */
    assert_int_equal(engine_activities(f), 1);
    assert_int_equal(last(f, "d"), WALL0 + 600);
    assert_true(active(f, "d"));
    assert_int_equal(f->ev[0], LS_EV_ACTIVITY);
    assert_int_equal(f->ev_ts[0], WALL0 + 600);
    /* Periods are consecutive from the first activity: 1500 belongs to [1000, 2000). */
    at(f, 1500);
    send(f, "d");
    at(f, 1999);
    assert_int_equal(last(f, "d"), WALL0 + 600);
    at(f, 2000);
    assert_int_equal(last(f, "d"), WALL0 + 1500);
    at(f, 3000); /* an empty period ends the chain */
    ls_reporter_stats st;
    ls_reporter_get_stats(f->r, &st);
    assert_int_equal(st.tracking, 0);
    assert_int_equal(st.reported, 2);
    assert_int_equal(st.held, 4);
    /* A new chain starts at the next activity. */
    at(f, 3300);
    send(f, "d");
    at(f, 4299);
    assert_int_equal(last(f, "d"), WALL0 + 1500);
    at(f, 4300);
    assert_int_equal(last(f, "d"), WALL0 + 3300);
    fx_free(f);
}

static void test_first_and_last(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_FIRST_AND_LAST, 10000, 0);
    send(f, "d"); /* first: at once */
    assert_int_equal(engine_activities(f), 1);
    at(f, 300);
    send(f, "d");
    at(f, 600);
    send(f, "d");
    assert_int_equal(last(f, "d"), WALL0);
    at(f, P); /* last: at the period's end */
    assert_int_equal(engine_activities(f), 2);
    assert_int_equal(last(f, "d"), WALL0 + 600);
    /* One activity in a period is both first and last: reported once. */
    at(f, 1400);
    send(f, "d");
    at(f, 2 * P);
    at(f, 3 * P);
    assert_int_equal(engine_activities(f), 3);
    assert_int_equal(last(f, "d"), WALL0 + 1400);
    fx_free(f);
}

static void test_forget_and_errors(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_LAST, 10000, 1);
    send(f, "a");
    ls_reporter_forget(f->r, "a", 1); /* deleted while held: never reported */
    at(f, 2 * P);
    assert_null(ls_engine_find(f->e, "a", 1));
    assert_int_equal(send_ts(f, "", 0), LS_EBADID);
    assert_int_equal(send_ts(f, "a", -5), LS_EINVAL);
    send(f, "a");
    at(f, 3 * P);
    assert_non_null(ls_engine_find(f->e, "a", 1));
    /* state.max_devices is enforced when the activity arrives. */
    assert_int_equal(send_ts(f, "b", 0), LS_EFULL);
    ls_activity batch[3] = {
        {.id = "a", .len = 1}, {.id = "b", .len = 1}, {.id = "a", .len = 1, .ts = -1}};
    int rcs[3];
    assert_int_equal(ls_reporter_activity_batch(f->r, batch, 3, f->now, rcs), 1);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], LS_EFULL);
    assert_int_equal(rcs[2], LS_EINVAL);
    assert_int_equal(ls_reporter_new(&(ls_reporter *){NULL}, f->e, LS_REPORT_LAST, 0, 1),
                     LS_EINVAL);
    assert_string_equal(ls_report_strategy_name(LS_REPORT_FIRST_AND_LAST), "FIRST_AND_LAST");
    fx_free(f);
}

/* Many devices, each with its own period: the wheel wakes exactly at each end. */
static void test_many_devices_own_periods(void **state)
{
    (void)state;
    fx *f = fx_new(LS_REPORT_LAST, 60000, 0);
    char id[16];
    for (int i = 0; i < 100; i++) {
        at(f, i * 7);
        snprintf(id, sizeof(id), "d%d", i);
        send(f, id);
    }
    /* The wheel may wake earlier to cascade, never later than the first end. */
    int64_t next = ls_reporter_next_wakeup(f->r);
    assert_true(next > f->now.mono && next <= MONO0 + P);
    for (int i = 0; i < 100; i++) {
        at(f, P + i * 7);
        snprintf(id, sizeof(id), "d%d", i);
        assert_int_equal(last(f, id), WALL0 + i * 7);
        if (i + 1 < 100) {
            snprintf(id, sizeof(id), "d%d", i + 1);
            assert_null(ls_engine_find(f->e, id, strlen(id)));
        }
    }
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all),
        cmocka_unit_test(test_first_silent_after),
        cmocka_unit_test(test_first_continuing),
        cmocka_unit_test(test_first_edge_no_flip_flop),
        cmocka_unit_test(test_last),
        cmocka_unit_test(test_first_and_last),
        cmocka_unit_test(test_forget_and_errors),
        cmocka_unit_test(test_many_devices_own_periods),
    };
    return cmocka_run_group_tests_name("reporting", tests, NULL, NULL);
}
