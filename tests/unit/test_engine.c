/*
 * test_engine.c - unit tests of the pure engine (src/engine/).
 *
 * Every test drives the engine with a fake clock: an ls_now the test sets
 * by hand.  The two clocks are deliberately offset (mono starts at 1000,
 * wall at 1700000000000) so that a mix-up between them shows as a wrong
 * value, and some tests step the wall clock alone to model NTP jumps.
 * Events are captured through the engine's callback into an array that
 * keeps a copy of each event: its type, the device id, ts, detected_at and
 * the device's state at emission time.
 *
 * The last tests are heavier: paging over 10k devices and a randomised
 * property test of 20k devices against a reference model of the deadline
 * rule (an INACTIVITY_EVENT fires at the first tick with now.mono >= last
 * activity mono + timeout, never before).  The random seed is fixed and can
 * be changed with LS_TEST_SEED; LS_TEST_FILTER selects tests by name
 * (cmocka's glob).
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

#define MONO0 1000LL
#define WALL0 1700000000000LL
#define T_TIMEOUT 1000LL
#define T_SKEW 5000LL
#define HOUR_MS 3600000LL

/* An id literal as the (pointer, length) pair the engine takes. */
#define ID(s) (s), (sizeof(s) - 1)

typedef struct rec {
    ls_event_type type;
    char id[LS_ID_MAX + 1];
    size_t id_len;
    int64_t ts;
    int64_t detected_at;
    ls_device st; /* copy of the record; id union and timer cleared */
} rec;

typedef struct fx {
    ls_engine *e;
    ls_engine_config cfg;
    ls_now now;
    rec *ev;
    size_t n, cap;
} fx;

#define EV_CAP_MAX ((size_t)1 << 22)

static void event_cb(void *ud, const ls_event *ev)
{
    fx *f = ud;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        if (cap > EV_CAP_MAX) abort(); /* a runaway event storm is a failure */
        rec *nr = realloc(f->ev, cap * sizeof(*nr));
        if (!nr) abort();
        f->ev = nr;
        f->cap = cap;
    }
    rec *r = &f->ev[f->n++];
    r->type = ev->type;
    r->id_len = ev->dev->id_len;
    memcpy(r->id, ls_device_id(ev->dev, (char[LS_ID_BUF]){0}), ev->dev->id_len);
    r->id[ev->dev->id_len] = '\0';
    r->ts = ev->ts;
    r->detected_at = ev->detected_at;
    r->st = *ev->dev;
    memset(&r->st.id, 0, sizeof(r->st.id));
    r->st.timer = (ls_wheel_entry){0};
}

/* (Re)creates the fixture's engine with the given limits; the clock restarts. */
static void fx_open(fx *f, int64_t timeout, int64_t skew, uint64_t max_devices)
{
    ls_engine_close(f->e);
    f->e = NULL;
    f->cfg = (ls_engine_config){.default_timeout_ms = timeout,
                                .max_clock_skew_ms = skew,
                                .max_devices = max_devices,
                                .seed = 0x5eed1234abcdULL};
    f->now = (ls_now){.mono = MONO0, .wall = WALL0};
    f->n = 0;
    assert_int_equal(ls_engine_new(&f->e, &f->cfg, event_cb, f), 0);
    assert_non_null(f->e);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    fx_open(f, T_TIMEOUT, T_SKEW, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ls_engine_close(f->e);
    free(f->ev);
    free(f);
    return 0;
}

/* Sets both clocks to `t` ms after their origins (no jump so far). */
static void at(fx *f, int64_t t)
{
    f->now.mono = MONO0 + t;
    f->now.wall = WALL0 + t;
}

static void advance(fx *f, int64_t ms)
{
    f->now.mono += ms;
    f->now.wall += ms;
}

static uint64_t tick(fx *f)
{
    return ls_engine_tick(f->e, f->now);
}

static int act_ts(fx *f, const char *id, int64_t ts)
{
    return ls_engine_activity(f->e, id, strlen(id), ts, f->now);
}

static void act(fx *f, const char *id)
{
    assert_int_equal(act_ts(f, id, 0), 0);
}

static int put_timeout(fx *f, const char *id, int64_t ms, int *created)
{
    ls_device_config c = {.set_timeout = 1, .timeout_ms = ms};
    return ls_engine_put(f->e, id, strlen(id), &c, f->now, created);
}

static int put_type(fx *f, const char *id, const char *type, size_t type_len)
{
    ls_device_config c = {.type = type, .type_len = type_len};
    return ls_engine_put(f->e, id, strlen(id), &c, f->now, NULL);
}

static const ls_device *dev(fx *f, const char *id)
{
    return ls_engine_find(f->e, id, strlen(id));
}

static ls_engine_stats stats(fx *f)
{
    ls_engine_stats s;
    ls_engine_get_stats(f->e, &s);
    return s;
}

static void check_event(const rec *r, ls_event_type type, const char *id, int64_t ts,
                        int64_t detected_at)
{
    assert_string_equal(ls_event_name(r->type), ls_event_name(type));
    assert_string_equal(r->id, id);
    assert_int_equal(r->id_len, strlen(id));
    assert_int_equal(r->ts, ts);
    assert_int_equal(r->detected_at, detected_at);
}

/*
 * Ticks every millisecond from the current mono up to `limit` (inclusive)
 * and returns the mono at which the first event appeared, or -1.
 */
static int64_t tick_each_ms_until_event(fx *f, int64_t limit)
{
    size_t before = f->n;
    for (; f->now.mono <= limit; advance(f, 1)) {
        tick(f);
        if (f->n > before) return f->now.mono;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Engine creation, names                                              */
/* ------------------------------------------------------------------ */

static void test_new_rejects_bad_config(void **state)
{
    (void)state;
    ls_engine *e = NULL;
    ls_engine_config c = {.default_timeout_ms = 0, .max_clock_skew_ms = 0};
    assert_int_equal(ls_engine_new(&e, &c, NULL, NULL), LS_EINVAL);
    c.default_timeout_ms = LS_TIMEOUT_MAX_MS + 1;
    assert_int_equal(ls_engine_new(&e, &c, NULL, NULL), LS_EINVAL);
    c.default_timeout_ms = 1000;
    c.max_clock_skew_ms = -1;
    assert_int_equal(ls_engine_new(&e, &c, NULL, NULL), LS_EINVAL);
    c.max_clock_skew_ms = 0;
    assert_int_equal(ls_engine_new(&e, &c, NULL, NULL), 0);
    /* No callback is allowed: events are only counted. */
    assert_int_equal(ls_engine_activity(e, ID("x"), 0, (ls_now){MONO0, WALL0}), 0);
    ls_engine_stats s;
    ls_engine_get_stats(e, &s);
    assert_int_equal(s.events[LS_EV_ACTIVITY], 1);
    ls_engine_close(e);
    ls_engine_close(NULL);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ls_event_name(LS_EV_ACTIVITY), "ACTIVITY_EVENT");
    assert_string_equal(ls_event_name(LS_EV_INACTIVITY), "INACTIVITY_EVENT");
    assert_string_equal(ls_event_name(LS_EV_CONNECT), "CONNECT_EVENT");
    assert_string_equal(ls_event_name(LS_EV_DISCONNECT), "DISCONNECT_EVENT");
    assert_string_equal(ls_event_name(LS_EV__COUNT), "UNKNOWN");
    assert_string_equal(ls_strerror(LS_OK), "ok");
    assert_string_equal(ls_strerror(LS_EBADID), "invalid device id");
    assert_string_equal(ls_strerror(LS_ENOTFOUND), "no such device");
    assert_string_equal(ls_strerror(LS_EFULL), "limit reached");
    assert_string_equal(ls_strerror(LS_E__BASE - 999), "unknown error");
}

/* ------------------------------------------------------------------ */
/* New devices and activity                                            */
/* ------------------------------------------------------------------ */

static void test_activity_creates_active_device(void **state)
{
    fx *f = *state;
    assert_null(dev(f, "dev1"));
    act(f, "dev1");
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "dev1", WALL0, WALL0);
    assert_int_equal(f->ev[0].st.active, 1);
    assert_int_equal(f->ev[0].st.last_activity, WALL0);

    const ls_device *d = dev(f, "dev1");
    assert_non_null(d);
    assert_string_equal(ls_device_id(d, (char[LS_ID_BUF]){0}), "dev1");
    assert_int_equal(d->active, 1);
    assert_int_equal(d->last_activity, WALL0);
    assert_int_equal(d->last_activity_mono, MONO0);
    assert_int_equal(d->last_connect, 0);
    assert_int_equal(d->last_disconnect, 0);
    assert_int_equal(d->inactivity_alarm, 0);
    assert_int_equal(d->sessions, 0);

    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, 1);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.inactive, 0);
    assert_int_equal(s.activities, 1);
    assert_int_equal(s.events[LS_EV_ACTIVITY], 1);
    assert_int_equal(s.events[LS_EV_INACTIVITY], 0);
}

static void test_activity_with_ts_reports_ts(void **state)
{
    fx *f = *state;
    at(f, 50);
    assert_int_equal(act_ts(f, "dev1", WALL0 + 20), 0);
    assert_int_equal(f->n, 1);
    /* ts = the activity's time; detected_at = when the engine saw it. */
    check_event(&f->ev[0], LS_EV_ACTIVITY, "dev1", WALL0 + 20, WALL0 + 50);
    assert_int_equal(dev(f, "dev1")->last_activity, WALL0 + 20);
    assert_int_equal(dev(f, "dev1")->last_activity_mono, MONO0 + 20);
}

static void test_second_activity_no_event(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    advance(f, 300);
    act(f, "dev1");
    assert_int_equal(f->n, 1);
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->active, 1);
    assert_int_equal(d->last_activity, WALL0 + 300);
    assert_int_equal(d->last_activity_mono, MONO0 + 300);
    assert_int_equal(stats(f).activities, 2);
    assert_int_equal(stats(f).events[LS_EV_ACTIVITY], 1);
}

static void test_put_creates_inactive_device(void **state)
{
    fx *f = *state;
    ls_device_config c = {0};
    int created = -1;
    assert_int_equal(ls_engine_put(f->e, ID("dev1"), &c, f->now, &created), 0);
    assert_int_equal(created, 1);
    assert_int_equal(f->n, 0);
    const ls_device *d = dev(f, "dev1");
    assert_non_null(d);
    assert_int_equal(d->active, 0);
    assert_int_equal(d->last_activity, 0);
    assert_int_equal(d->last_connect, 0);
    assert_int_equal(d->last_disconnect, 0);
    assert_int_equal(d->inactivity_alarm, 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);

    assert_int_equal(ls_engine_put(f->e, ID("dev1"), &c, f->now, &created), 0);
    assert_int_equal(created, 0);
    assert_int_equal(ls_engine_put(f->e, ID("dev1"), &c, f->now, NULL), 0);
    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, 1);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.inactive, 1);
    assert_int_equal(s.activities, 0);

    /* Nothing ever fires for a device that was never heard from. */
    advance(f, 100 * T_TIMEOUT);
    assert_int_equal(tick(f), 0);
    assert_int_equal(f->n, 0);

    /* First activity: ACTIVITY_EVENT. */
    act(f, "dev1");
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "dev1", f->now.wall, f->now.wall);
}

static void test_find_distinguishes_prefixes(void **state)
{
    fx *f = *state;
    act(f, "dev");
    act(f, "dev1");
    act(f, "de");
    assert_int_equal(f->n, 3);
    assert_string_equal(ls_device_id(dev(f, "dev"), (char[LS_ID_BUF]){0}), "dev");
    assert_string_equal(ls_device_id(dev(f, "dev1"), (char[LS_ID_BUF]){0}), "dev1");
    assert_string_equal(ls_device_id(dev(f, "de"), (char[LS_ID_BUF]){0}), "de");
    assert_null(dev(f, "d"));
    assert_null(dev(f, "dev12"));
    /* The id is matched by length, not by NUL. */
    assert_ptr_equal(ls_engine_find(f->e, "devX", 3), dev(f, "dev"));
}

/* ------------------------------------------------------------------ */
/* Inactivity                                                          */
/* ------------------------------------------------------------------ */

static void test_inactivity_fires_exactly_at_deadline(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, T_TIMEOUT - 1);
    assert_int_equal(tick(f), 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(dev(f, "dev1")->active, 1);

    at(f, T_TIMEOUT);
    assert_int_equal(tick(f), 1);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + T_TIMEOUT, WALL0 + T_TIMEOUT);
    assert_int_equal(f->ev[0].st.active, 0);
    assert_int_equal(f->ev[0].st.inactivity_alarm, WALL0 + T_TIMEOUT);

    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->active, 0);
    assert_int_equal(d->inactivity_alarm, WALL0 + T_TIMEOUT);
    assert_int_equal(d->last_activity, WALL0);
    ls_engine_stats s = stats(f);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.inactive, 1);
    assert_int_equal(s.events[LS_EV_INACTIVITY], 1);

    /* Once only. */
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    advance(f, 10 * T_TIMEOUT);
    assert_int_equal(tick(f), 0);
    assert_int_equal(f->n, 1);
}

static void test_inactivity_each_ms(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 3 * T_TIMEOUT);
    assert_int_equal(fired, MONO0 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + T_TIMEOUT, WALL0 + T_TIMEOUT);
}

static void test_inactivity_late_tick(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, T_TIMEOUT + 500);
    assert_int_equal(tick(f), 1);
    assert_int_equal(f->n, 1);
    /* ts is still the deadline; detected_at is the late tick's wall time. */
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + T_TIMEOUT, WALL0 + T_TIMEOUT + 500);
    assert_int_equal(dev(f, "dev1")->inactivity_alarm, WALL0 + T_TIMEOUT + 500);
}

static void test_inactivity_after_long_idle_without_tick(void **state)
{
    fx *f = *state;
    /* The wheel has not been run for a long time when the device arrives. */
    at(f, 123456789);
    act(f, "dev1");
    f->n = 0;
    at(f, 123456789 + T_TIMEOUT - 1);
    assert_int_equal(tick(f), 0);
    at(f, 123456789 + T_TIMEOUT);
    assert_int_equal(tick(f), 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 123456789 + T_TIMEOUT,
                WALL0 + 123456789 + T_TIMEOUT);
}

static void test_reactivation_after_inactivity(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    at(f, T_TIMEOUT);
    tick(f);
    assert_int_equal(f->n, 2);

    at(f, 5000);
    act(f, "dev1");
    assert_int_equal(f->n, 3);
    check_event(&f->ev[2], LS_EV_ACTIVITY, "dev1", WALL0 + 5000, WALL0 + 5000);
    assert_int_equal(f->ev[2].st.active, 1);
    /* The old alarm time stays until the next one. */
    assert_int_equal(f->ev[2].st.inactivity_alarm, WALL0 + T_TIMEOUT);

    at(f, 5000 + T_TIMEOUT - 1);
    assert_int_equal(tick(f), 0);
    at(f, 5000 + T_TIMEOUT);
    assert_int_equal(tick(f), 1);
    check_event(&f->ev[3], LS_EV_INACTIVITY, "dev1", WALL0 + 5000 + T_TIMEOUT,
                WALL0 + 5000 + T_TIMEOUT);
    assert_int_equal(dev(f, "dev1")->inactivity_alarm, WALL0 + 5000 + T_TIMEOUT);
}

static void test_inactivity_several_devices_order(void **state)
{
    fx *f = *state;
    /* Devices with staggered deadlines fire each at its own millisecond. */
    char id[16];
    for (int i = 0; i < 50; i++) {
        at(f, i * 7);
        snprintf(id, sizeof(id), "d%02d", i);
        act(f, id);
    }
    f->n = 0;
    at(f, 0);
    for (int64_t t = 0; t <= 50 * 7 + T_TIMEOUT; t++) {
        at(f, t);
        size_t before = f->n;
        tick(f);
        if ((t - T_TIMEOUT) >= 0 && (t - T_TIMEOUT) % 7 == 0 && (t - T_TIMEOUT) / 7 < 50) {
            assert_int_equal(f->n, before + 1);
            snprintf(id, sizeof(id), "d%02d", (int)((t - T_TIMEOUT) / 7));
            check_event(&f->ev[before], LS_EV_INACTIVITY, id, WALL0 + t, WALL0 + t);
        } else {
            assert_int_equal(f->n, before);
        }
    }
    assert_int_equal(f->n, 50);
}

static void test_many_devices_same_deadline(void **state)
{
    fx *f = *state;
    char id[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "same%d", i);
        act(f, id);
    }
    f->n = 0;
    at(f, T_TIMEOUT - 1);
    assert_int_equal(tick(f), 0);
    at(f, T_TIMEOUT);
    assert_int_equal(tick(f), 1000);
    assert_int_equal(f->n, 1000);
    for (size_t i = 0; i < f->n; i++) {
        assert_int_equal(f->ev[i].type, LS_EV_INACTIVITY);
        assert_int_equal(f->ev[i].ts, WALL0 + T_TIMEOUT);
        assert_int_equal(f->ev[i].detected_at, WALL0 + T_TIMEOUT);
    }
    assert_int_equal(stats(f).active, 0);
}

static void test_extreme_timeouts(void **state)
{
    fx *f = *state;
    /* 1 ms and the maximum (10 years): both exact. */
    assert_int_equal(put_timeout(f, "short", 1, NULL), 0);
    assert_int_equal(put_timeout(f, "long", LS_TIMEOUT_MAX_MS, NULL), 0);
    act(f, "short");
    act(f, "long");
    f->n = 0;
    assert_int_equal(tick(f), 0);
    advance(f, 1);
    assert_int_equal(tick(f), 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "short", WALL0 + 1, WALL0 + 1);

    /* Walk the wheel's levels with big strides, then land exactly. */
    at(f, LS_TIMEOUT_MAX_MS / 3);
    assert_int_equal(tick(f), 0);
    at(f, LS_TIMEOUT_MAX_MS - 1);
    assert_int_equal(tick(f), 0);
    assert_true(ls_engine_next_wakeup(f->e) <= MONO0 + LS_TIMEOUT_MAX_MS);
    at(f, LS_TIMEOUT_MAX_MS);
    assert_int_equal(tick(f), 1);
    check_event(&f->ev[1], LS_EV_INACTIVITY, "long", WALL0 + LS_TIMEOUT_MAX_MS,
                WALL0 + LS_TIMEOUT_MAX_MS);
}

/* ------------------------------------------------------------------ */
/* Lazy re-arm and next_wakeup                                         */
/* ------------------------------------------------------------------ */

static void test_lazy_rearm_keeps_alive(void **state)
{
    fx *f = *state;
    /* Activities at t = 0, 100, ..., 2500 (well past the first deadline at
     * t = 1000), ticking every millisecond. */
    int64_t last = 0;
    for (int64_t t = 0; t <= 2500 + 2 * T_TIMEOUT; t++) {
        at(f, t);
        if (t % 100 == 0 && t <= 2500) {
            act(f, "dev1");
            last = t;
        }
        size_t before = f->n;
        tick(f);
        const ls_device *d = dev(f, "dev1");
        int64_t deadline = MONO0 + last + T_TIMEOUT;
        if (f->now.mono < deadline) {
            assert_int_equal(f->n, before);
            assert_int_equal(d->active, 1);
            int64_t w = ls_engine_next_wakeup(f->e);
            assert_true(w <= deadline);
            assert_true(w > f->now.mono);
        } else if (f->now.mono == deadline) {
            assert_int_equal(f->n, before + 1);
            check_event(&f->ev[before], LS_EV_INACTIVITY, "dev1", WALL0 + 2500 + T_TIMEOUT,
                        WALL0 + 2500 + T_TIMEOUT);
            assert_int_equal(d->active, 0);
        } else {
            assert_int_equal(f->n, before);
        }
    }
    assert_int_equal(last, 2500);
    assert_int_equal(stats(f).events[LS_EV_ACTIVITY], 1);
    assert_int_equal(stats(f).events[LS_EV_INACTIVITY], 1);
}

static void test_lazy_rearm_sparse_ticks(void **state)
{
    fx *f = *state;
    /* Ticks only now and then: the stale timer at the first deadline must
     * re-arm to the real one, and fire there when the tick is past both. */
    act(f, "dev1");
    at(f, 600);
    act(f, "dev1");
    at(f, 900);
    act(f, "dev1");
    f->n = 0;
    at(f, 1899);
    assert_int_equal(tick(f), 0);
    assert_int_equal(dev(f, "dev1")->active, 1);
    at(f, 5000);
    assert_int_equal(tick(f), 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 1900, WALL0 + 5000);
}

static void test_next_wakeup_loop_fires_on_time(void **state)
{
    fx *f = *state;
    /* A daemon loop that sleeps until next_wakeup() sees the event at the
     * deadline exactly, even with lazy re-arms in between. */
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    act(f, "dev1");
    at(f, 700);
    act(f, "dev1"); /* real deadline: 1700 */
    f->n = 0;
    int wakeups = 0;
    for (;;) {
        int64_t w = ls_engine_next_wakeup(f->e);
        if (w == INT64_MAX) break;
        assert_true(w > f->now.mono);
        assert_true(w <= MONO0 + 1700);
        at(f, w - MONO0);
        tick(f);
        assert_true(++wakeups < 100);
    }
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 1700, WALL0 + 1700);
    assert_int_equal(f->now.mono, MONO0 + 1700);
}

/* ------------------------------------------------------------------ */
/* Timeout changes                                                     */
/* ------------------------------------------------------------------ */

static void test_timeout_shortened_below_elapsed(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 600);
    assert_int_equal(put_timeout(f, "dev1", 500, NULL), 0);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 500, WALL0 + 600);
    assert_int_equal(f->ev[0].st.active, 0);
    assert_int_equal(f->ev[0].st.timeout_ms, 500);
    assert_int_equal(dev(f, "dev1")->inactivity_alarm, WALL0 + 600);
    assert_int_equal(stats(f).active, 0);
    /* The timer went with it. */
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    at(f, 100000);
    assert_int_equal(tick(f), 0);
    assert_int_equal(f->n, 1);
}

static void test_timeout_shortened_to_exactly_elapsed(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 500);
    assert_int_equal(put_timeout(f, "dev1", 500, NULL), 0);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 500, WALL0 + 500);
}

static void test_timeout_shortened_not_elapsed(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 200);
    assert_int_equal(put_timeout(f, "dev1", 500, NULL), 0);
    assert_int_equal(f->n, 0);
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 2000);
    assert_int_equal(fired, MONO0 + 500);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 500, WALL0 + 500);
}

static void test_timeout_shortened_after_lazy_activity(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    at(f, 800);
    act(f, "dev1"); /* timer still at 1000, real deadline 1800 */
    f->n = 0;
    at(f, 900);
    assert_int_equal(put_timeout(f, "dev1", 500, NULL), 0); /* deadline 1300 */
    assert_int_equal(f->n, 0);
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 3000);
    assert_int_equal(fired, MONO0 + 1300);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 1300, WALL0 + 1300);
}

static void test_timeout_lengthened(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 200);
    assert_int_equal(put_timeout(f, "dev1", 3000, NULL), 0);
    assert_int_equal(f->n, 0);
    at(f, T_TIMEOUT);
    assert_int_equal(tick(f), 0);
    assert_int_equal(dev(f, "dev1")->active, 1);
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 10000);
    assert_int_equal(fired, MONO0 + 3000);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 3000, WALL0 + 3000);
}

static void test_timeout_zero_restores_default(void **state)
{
    fx *f = *state;
    const char *src = NULL;
    assert_int_equal(put_timeout(f, "dev1", 3000, NULL), 0);
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(ls_engine_timeout(f->e, d, &src), 3000);
    assert_string_equal(src, "device");
    assert_int_equal(ls_engine_timeout(f->e, d, NULL), 3000);

    act(f, "dev1");
    f->n = 0;
    at(f, 1500);
    assert_int_equal(tick(f), 0);
    /* Back to the 1000 ms default: its deadline (t = 1000) has passed. */
    assert_int_equal(put_timeout(f, "dev1", 0, NULL), 0);
    assert_int_equal(ls_engine_timeout(f->e, d, &src), T_TIMEOUT);
    assert_string_equal(src, "default");
    assert_false(d->flags & LS_DEV_OWN_TIMEOUT); /* no timeout of its own any more */
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + T_TIMEOUT, WALL0 + 1500);
}

static void test_timeout_zero_restores_default_not_elapsed(void **state)
{
    fx *f = *state;
    assert_int_equal(put_timeout(f, "dev1", 3000, NULL), 0);
    act(f, "dev1");
    f->n = 0;
    at(f, 400);
    assert_int_equal(put_timeout(f, "dev1", 0, NULL), 0);
    assert_int_equal(f->n, 0);
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 5000);
    assert_int_equal(fired, MONO0 + T_TIMEOUT);
}

static void test_timeout_on_inactive_device(void **state)
{
    fx *f = *state;
    int created = 0;
    assert_int_equal(put_timeout(f, "dev1", 50, &created), 0);
    assert_int_equal(created, 1);
    assert_int_equal(dev(f, "dev1")->timeout_ms, 50);
    assert_int_equal(put_timeout(f, "dev1", 5000, &created), 0);
    assert_int_equal(created, 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(dev(f, "dev1")->active, 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    /* The device's own timeout is used from the first activity on. */
    act(f, "dev1");
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 10000), MONO0 + 5000);
}

static void test_timeout_invalid_values(void **state)
{
    fx *f = *state;
    assert_int_equal(put_timeout(f, "dev1", -1, NULL), LS_EINVAL);
    assert_int_equal(put_timeout(f, "dev1", LS_TIMEOUT_MAX_MS + 1, NULL), LS_EINVAL);
    assert_int_equal(put_timeout(f, "dev1", INT64_MIN, NULL), LS_EINVAL);
    assert_null(dev(f, "dev1")); /* a failed put creates nothing */
    assert_int_equal(put_timeout(f, "dev1", LS_TIMEOUT_MIN_MS, NULL), 0);
    assert_int_equal(put_timeout(f, "dev1", LS_TIMEOUT_MAX_MS, NULL), 0);
    assert_int_equal(dev(f, "dev1")->timeout_ms, LS_TIMEOUT_MAX_MS);
    /* Unset set_timeout keeps the value whatever timeout_ms says. */
    ls_device_config c = {.set_timeout = 0, .timeout_ms = -5};
    assert_int_equal(ls_engine_put(f->e, ID("dev1"), &c, f->now, NULL), 0);
    assert_int_equal(dev(f, "dev1")->timeout_ms, LS_TIMEOUT_MAX_MS);
}

/* ------------------------------------------------------------------ */
/* Timestamps                                                          */
/* ------------------------------------------------------------------ */

static void test_ts_older_never_moves_back(void **state)
{
    fx *f = *state;
    at(f, 500);
    act(f, "dev1");
    at(f, 600);
    assert_int_equal(act_ts(f, "dev1", WALL0 + 300), 0);
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->last_activity, WALL0 + 500);
    assert_int_equal(d->last_activity_mono, MONO0 + 500);
    assert_int_equal(f->n, 1);
    assert_int_equal(stats(f).stale_activities, 0);
    assert_int_equal(stats(f).activities, 2);
    /* The deadline is still from t = 500. */
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 5000), MONO0 + 500 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 500 + T_TIMEOUT,
                WALL0 + 500 + T_TIMEOUT);
}

static void test_ts_in_past_maps_to_mono(void **state)
{
    fx *f = *state;
    at(f, 2000);
    assert_int_equal(act_ts(f, "dev1", WALL0 + 2000 - 300), 0);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "dev1", WALL0 + 1700, WALL0 + 2000);
    assert_int_equal(dev(f, "dev1")->last_activity_mono, MONO0 + 1700);
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 5000), MONO0 + 1700 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 2700, WALL0 + 2700);
}

static void test_ts_stale_on_inactive_device(void **state)
{
    fx *f = *state;
    at(f, 10000);
    /* Older than now - timeout: recorded, but not an activation. */
    assert_int_equal(act_ts(f, "dev1", WALL0 + 10000 - 1500), 0);
    const ls_device *d = dev(f, "dev1");
    assert_non_null(d);
    assert_int_equal(d->active, 0);
    assert_int_equal(d->last_activity, WALL0 + 8500);
    assert_int_equal(f->n, 0);
    ls_engine_stats s = stats(f);
    assert_int_equal(s.stale_activities, 1);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.inactive, 1);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);

    /* An even older one does not move lastActivityTime back. */
    assert_int_equal(act_ts(f, "dev1", WALL0 + 10000 - 2000), 0);
    assert_int_equal(d->last_activity, WALL0 + 8500);
    /* A newer but still stale one moves it forward. */
    assert_int_equal(act_ts(f, "dev1", WALL0 + 10000 - 1200), 0);
    assert_int_equal(d->last_activity, WALL0 + 8800);
    assert_int_equal(d->active, 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(stats(f).stale_activities, 3);
    assert_int_equal(stats(f).activities, 3);

    advance(f, 10 * T_TIMEOUT);
    assert_int_equal(tick(f), 0);
    assert_int_equal(f->n, 0);
}

static void test_ts_staleness_boundary(void **state)
{
    fx *f = *state;
    at(f, 10000);
    /* Age == timeout: its deadline is now, so it is already stale. */
    assert_int_equal(act_ts(f, "edge", WALL0 + 10000 - T_TIMEOUT), 0);
    assert_int_equal(dev(f, "edge")->active, 0);
    assert_int_equal(stats(f).stale_activities, 1);
    assert_int_equal(f->n, 0);
    /* Age == timeout - 1: active for one more millisecond. */
    assert_int_equal(act_ts(f, "fresh", WALL0 + 10000 - T_TIMEOUT + 1), 0);
    assert_int_equal(dev(f, "fresh")->active, 1);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "fresh", WALL0 + 9001, WALL0 + 10000);
    assert_int_equal(tick(f), 0);
    advance(f, 1);
    assert_int_equal(tick(f), 1);
    check_event(&f->ev[1], LS_EV_INACTIVITY, "fresh", WALL0 + 10001, WALL0 + 10001);
}

static void test_ts_stale_on_active_device(void **state)
{
    fx *f = *state;
    at(f, 10000);
    act(f, "dev1");
    at(f, 10500);
    assert_int_equal(act_ts(f, "dev1", WALL0 + 5000), 0);
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->active, 1);
    assert_int_equal(d->last_activity, WALL0 + 10000);
    assert_int_equal(d->last_activity_mono, MONO0 + 10000);
    assert_int_equal(stats(f).stale_activities, 1);
    assert_int_equal(f->n, 1);
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 20000), MONO0 + 10000 + T_TIMEOUT);
}

static void test_ts_stale_uses_device_timeout(void **state)
{
    fx *f = *state;
    assert_int_equal(put_timeout(f, "dev1", 5000, NULL), 0);
    at(f, 10000);
    /* 1500 ms old: stale under the 1000 ms default, fresh under 5000. */
    assert_int_equal(act_ts(f, "dev1", WALL0 + 8500), 0);
    assert_int_equal(dev(f, "dev1")->active, 1);
    assert_int_equal(stats(f).stale_activities, 0);
    assert_int_equal(f->n, 1);
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 20000), MONO0 + 8500 + 5000);
}

static void test_ts_future_beyond_skew_clamped(void **state)
{
    fx *f = *state;
    at(f, 100);
    assert_int_equal(act_ts(f, "dev1", WALL0 + 100 + T_SKEW + 1), 0);
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->last_activity, WALL0 + 100);
    assert_int_equal(d->last_activity_mono, MONO0 + 100);
    assert_int_equal(stats(f).clamped_future, 1);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "dev1", WALL0 + 100, WALL0 + 100);
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 20000), MONO0 + 100 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 100 + T_TIMEOUT,
                WALL0 + 100 + T_TIMEOUT);

    /* Far in the future (year 2100) too. */
    assert_int_equal(act_ts(f, "dev2", 4102444800000LL), 0);
    assert_int_equal(dev(f, "dev2")->last_activity, f->now.wall);
    assert_int_equal(stats(f).clamped_future, 2);
}

static void test_ts_future_within_skew_kept(void **state)
{
    fx *f = *state;
    at(f, 100);
    assert_int_equal(act_ts(f, "dev1", WALL0 + 100 + T_SKEW), 0);
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->last_activity, WALL0 + 100 + T_SKEW);
    assert_int_equal(d->last_activity_mono, MONO0 + 100 + T_SKEW);
    assert_int_equal(stats(f).clamped_future, 0);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "dev1", WALL0 + 100 + T_SKEW, WALL0 + 100);
    f->n = 0;
    int64_t deadline = 100 + T_SKEW + T_TIMEOUT;
    at(f, deadline - 1);
    assert_int_equal(tick(f), 0);
    at(f, deadline);
    assert_int_equal(tick(f), 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + deadline, WALL0 + deadline);
}

static void test_ts_negative_rejected(void **state)
{
    fx *f = *state;
    assert_int_equal(act_ts(f, "dev1", -1), LS_EINVAL);
    assert_int_equal(act_ts(f, "dev1", INT64_MIN), LS_EINVAL);
    assert_null(dev(f, "dev1"));
    assert_int_equal(stats(f).devices, 0);
    assert_int_equal(stats(f).activities, 0);
    act(f, "dev1");
    assert_int_equal(act_ts(f, "dev1", -1), LS_EINVAL);
    assert_int_equal(dev(f, "dev1")->last_activity, WALL0);
    assert_int_equal(stats(f).activities, 1);
}

/* ------------------------------------------------------------------ */
/* Wall clock jumps                                                    */
/* ------------------------------------------------------------------ */

static void test_wall_jump_forward(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 200);
    f->now.wall += HOUR_MS; /* NTP step: wall +1 h, mono steady */
    assert_int_equal(tick(f), 0);
    /* Nothing before the monotonic deadline, however late the wall is. */
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 5000);
    assert_int_equal(fired, MONO0 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + T_TIMEOUT,
                WALL0 + HOUR_MS + T_TIMEOUT);
}

static void test_wall_jump_forward_then_activity(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    at(f, 200);
    f->now.wall += HOUR_MS;
    act(f, "dev1"); /* ts = now: the jumped wall */
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->last_activity, WALL0 + HOUR_MS + 200);
    assert_int_equal(d->last_activity_mono, MONO0 + 200);
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 5000), MONO0 + 200 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + HOUR_MS + 200 + T_TIMEOUT,
                WALL0 + HOUR_MS + 200 + T_TIMEOUT);
}

static void test_wall_jump_backward(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 200);
    f->now.wall -= HOUR_MS;
    assert_int_equal(tick(f), 0);
    /* On time by the monotonic clock, not an hour late. */
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 5000);
    assert_int_equal(fired, MONO0 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + T_TIMEOUT,
                WALL0 - HOUR_MS + T_TIMEOUT);
    assert_int_equal(dev(f, "dev1")->inactivity_alarm, WALL0 - HOUR_MS + T_TIMEOUT);
}

static void test_wall_jump_backward_activities_keep_alive(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 200);
    f->now.wall -= HOUR_MS;
    const ls_device *d = dev(f, "dev1");
    /* Activities (ts = now) every 500 ms for 3 s: the device stays active
     * because the monotonic twin moves, while lastActivityTime stays at the
     * pre-jump value. */
    int64_t last_mono = MONO0;
    for (int64_t k = 0; k < 3000; k++) {
        if (k % 500 == 0) {
            act(f, "dev1");
            last_mono = f->now.mono;
            assert_int_equal(d->last_activity, WALL0);
            assert_int_equal(d->last_activity_mono, last_mono);
        }
        tick(f);
        assert_int_equal(f->n, 0);
        assert_int_equal(d->active, 1);
        advance(f, 1);
    }
    assert_int_equal(last_mono, MONO0 + 200 + 2500);
    int64_t fired = tick_each_ms_until_event(f, MONO0 + 10000);
    assert_int_equal(fired, last_mono + T_TIMEOUT);
    /* Reported: lastActivityTime + timeout (the wall times never went back). */
    assert_int_equal(f->ev[0].type, LS_EV_INACTIVITY);
    assert_int_equal(f->ev[0].ts, WALL0 + T_TIMEOUT);
    assert_int_equal(f->ev[0].ts, f->ev[0].st.last_activity + T_TIMEOUT);
    assert_int_equal(f->ev[0].detected_at, WALL0 - HOUR_MS + 2700 + T_TIMEOUT);
    assert_int_equal(d->last_activity, WALL0);
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

static void test_connect_new_device(void **state)
{
    fx *f = *state;
    at(f, 10);
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 2);
    check_event(&f->ev[0], LS_EV_CONNECT, "dev1", WALL0 + 10, WALL0 + 10);
    check_event(&f->ev[1], LS_EV_ACTIVITY, "dev1", WALL0 + 10, WALL0 + 10);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f->ev[i].st.sessions, 1);
        assert_int_equal(f->ev[i].st.active, 1);
        assert_int_equal(f->ev[i].st.last_connect, WALL0 + 10);
        assert_int_equal(f->ev[i].st.last_activity, WALL0 + 10);
    }
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->sessions, 1);
    assert_int_equal(d->last_connect, WALL0 + 10);
    assert_int_equal(d->last_disconnect, 0);
    ls_engine_stats s = stats(f);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(s.activities, 1);
    assert_int_equal(s.events[LS_EV_CONNECT], 1);
    assert_int_equal(s.events[LS_EV_ACTIVITY], 1);
}

static void test_connect_active_device(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    at(f, 300);
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 2);
    check_event(&f->ev[1], LS_EV_CONNECT, "dev1", WALL0 + 300, WALL0 + 300);
    /* It counts as an activity: the deadline moves. */
    assert_int_equal(dev(f, "dev1")->last_activity, WALL0 + 300);
    f->n = 0;
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 5000), MONO0 + 300 + T_TIMEOUT);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev1", WALL0 + 1300, WALL0 + 1300);
    /* An open session does not hold the device active by itself. */
    assert_int_equal(f->ev[0].st.sessions, 1);
}

static void test_connect_put_created_device(void **state)
{
    fx *f = *state;
    ls_device_config c = {0};
    assert_int_equal(ls_engine_put(f->e, ID("dev1"), &c, f->now, NULL), 0);
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->ev[0].type, LS_EV_CONNECT);
    assert_int_equal(f->ev[1].type, LS_EV_ACTIVITY);
}

static void test_sessions_nest(void **state)
{
    fx *f = *state;
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    at(f, 100);
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 3); /* CONNECT, ACTIVITY, CONNECT */
    check_event(&f->ev[2], LS_EV_CONNECT, "dev1", WALL0 + 100, WALL0 + 100);
    assert_int_equal(f->ev[2].st.sessions, 2);
    assert_int_equal(dev(f, "dev1")->last_connect, WALL0 + 100);
    assert_int_equal(stats(f).sessions, 2);

    at(f, 200);
    assert_int_equal(ls_engine_disconnect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 3);
    assert_int_equal(dev(f, "dev1")->sessions, 1);
    assert_int_equal(dev(f, "dev1")->last_disconnect, 0);
    assert_int_equal(stats(f).sessions, 1);

    at(f, 300);
    assert_int_equal(ls_engine_disconnect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 4);
    check_event(&f->ev[3], LS_EV_DISCONNECT, "dev1", WALL0 + 300, WALL0 + 300);
    assert_int_equal(f->ev[3].st.sessions, 0);
    assert_int_equal(f->ev[3].st.last_disconnect, WALL0 + 300);
    assert_int_equal(f->ev[3].st.active, 1); /* unchanged */
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->sessions, 0);
    assert_int_equal(d->last_disconnect, WALL0 + 300);
    assert_int_equal(d->active, 1);
    /* Disconnect is not an activity. */
    assert_int_equal(d->last_activity, WALL0 + 100);
    ls_engine_stats s = stats(f);
    assert_int_equal(s.sessions, 0);
    assert_int_equal(s.events[LS_EV_DISCONNECT], 1);
    assert_int_equal(s.events[LS_EV_CONNECT], 2);
    assert_int_equal(s.activities, 2);
}

static void test_disconnect_without_session(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    f->n = 0;
    at(f, 50);
    assert_int_equal(ls_engine_disconnect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(dev(f, "dev1")->last_disconnect, 0);
    assert_int_equal(dev(f, "dev1")->sessions, 0);
    assert_int_equal(stats(f).sessions, 0);
    assert_int_equal(stats(f).events[LS_EV_DISCONNECT], 0);

    /* Once more after a full connect/disconnect cycle. */
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(ls_engine_disconnect(f->e, ID("dev1"), f->now), 0);
    f->n = 0;
    assert_int_equal(ls_engine_disconnect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(stats(f).sessions, 0);
}

static void test_disconnect_unknown(void **state)
{
    fx *f = *state;
    assert_int_equal(ls_engine_disconnect(f->e, ID("ghost"), f->now), LS_ENOTFOUND);
    assert_null(dev(f, "ghost"));
    assert_int_equal(stats(f).devices, 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(ls_engine_disconnect(f->e, ID("bad\n"), f->now), LS_EBADID);
}

static void test_disconnect_inactive_device(void **state)
{
    fx *f = *state;
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    at(f, T_TIMEOUT);
    assert_int_equal(tick(f), 1);
    at(f, 5000);
    assert_int_equal(ls_engine_disconnect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(f->n, 4);
    check_event(&f->ev[3], LS_EV_DISCONNECT, "dev1", WALL0 + 5000, WALL0 + 5000);
    assert_int_equal(f->ev[3].st.active, 0);
    assert_int_equal(dev(f, "dev1")->active, 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
}

/* ------------------------------------------------------------------ */
/* Delete                                                              */
/* ------------------------------------------------------------------ */

static void test_delete_cancels_timer(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    act(f, "dev2");
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    f->n = 0;
    at(f, 500);
    assert_int_equal(ls_engine_delete(f->e, ID("dev1")), 0);
    assert_null(dev(f, "dev1"));
    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, 1);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.inactive, 0);
    assert_int_equal(s.sessions, 0);
    /* Delete emits nothing. */
    assert_int_equal(f->n, 0);

    /* dev2 still fires on time, dev1 never. */
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 5000), MONO0 + T_TIMEOUT);
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_INACTIVITY, "dev2", WALL0 + T_TIMEOUT, WALL0 + T_TIMEOUT);
    assert_int_equal(ls_engine_delete(f->e, ID("dev2")), 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    at(f, 1000000000);
    assert_int_equal(tick(f), 0);
    assert_int_equal(f->n, 1);
    s = stats(f);
    assert_int_equal(s.devices, 0);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.inactive, 0);
}

static void test_delete_only_timer(void **state)
{
    fx *f = *state;
    act(f, "dev1");
    assert_int_equal(ls_engine_delete(f->e, ID("dev1")), 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    for (int64_t t = 0; t <= 3 * T_TIMEOUT; t++) {
        at(f, t);
        assert_int_equal(tick(f), 0);
    }
    assert_int_equal(f->n, 1);
    assert_int_equal(stats(f).events[LS_EV_INACTIVITY], 0);
}

static void test_delete_among_staggered_timers(void **state)
{
    fx *f = *state;
    char id[16];
    /* 200 devices, one per ms; delete every third; the rest fire exactly. */
    for (int i = 0; i < 200; i++) {
        at(f, i);
        snprintf(id, sizeof(id), "s%03d", i);
        act(f, id);
    }
    for (int i = 0; i < 200; i += 3) {
        snprintf(id, sizeof(id), "s%03d", i);
        assert_int_equal(ls_engine_delete(f->e, id, strlen(id)), 0);
    }
    f->n = 0;
    for (int64_t t = 200; t <= 200 + T_TIMEOUT; t++) {
        at(f, t);
        size_t before = f->n;
        tick(f);
        int i = (int)(t - T_TIMEOUT);
        if (i >= 0 && i < 200 && i % 3 != 0) {
            assert_int_equal(f->n, before + 1);
            snprintf(id, sizeof(id), "s%03d", i);
            check_event(&f->ev[before], LS_EV_INACTIVITY, id, WALL0 + t, WALL0 + t);
        } else {
            assert_int_equal(f->n, before);
        }
    }
}

static void test_delete_recreate_fresh(void **state)
{
    fx *f = *state;
    assert_int_equal(put_timeout(f, "dev1", 5000, NULL), 0);
    assert_int_equal(put_type(f, "dev1", ID("sensor")), 0);
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    at(f, 100);
    assert_int_equal(ls_engine_connect(f->e, ID("dev1"), f->now), 0);
    assert_int_equal(ls_engine_disconnect(f->e, ID("dev1"), f->now), 0);
    at(f, 300);
    assert_int_equal(put_timeout(f, "dev1", 50, NULL), 0); /* goes inactive */
    assert_int_equal(dev(f, "dev1")->active, 0);
    assert_int_equal(dev(f, "dev1")->inactivity_alarm, WALL0 + 300);

    assert_int_equal(ls_engine_delete(f->e, ID("dev1")), 0);
    int created = 0;
    ls_device_config c = {0};
    at(f, 400);
    assert_int_equal(ls_engine_put(f->e, ID("dev1"), &c, f->now, &created), 0);
    assert_int_equal(created, 1);
    const ls_device *d = dev(f, "dev1");
    assert_int_equal(d->active, 0);
    assert_int_equal(d->last_activity, 0);
    assert_int_equal(d->last_connect, 0);
    assert_int_equal(d->last_disconnect, 0);
    assert_int_equal(d->inactivity_alarm, 0);
    assert_int_equal(d->sessions, 0);
    assert_false(d->flags & LS_DEV_OWN_TIMEOUT);
    assert_int_equal(ls_engine_timeout(f->e, d, NULL), T_TIMEOUT);
    assert_string_equal(ls_engine_type_name(f->e, d), "default");
    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, 1);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.sessions, 0);

    /* Behaves like a brand-new device. */
    f->n = 0;
    act(f, "dev1");
    assert_int_equal(f->n, 1);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "dev1", WALL0 + 400, WALL0 + 400);
    assert_int_equal(tick_each_ms_until_event(f, MONO0 + 10000), MONO0 + 400 + T_TIMEOUT);
}

static void test_delete_unknown(void **state)
{
    fx *f = *state;
    assert_int_equal(ls_engine_delete(f->e, ID("ghost")), LS_ENOTFOUND);
    act(f, "dev1");
    assert_int_equal(ls_engine_delete(f->e, ID("dev1")), 0);
    assert_int_equal(ls_engine_delete(f->e, ID("dev1")), LS_ENOTFOUND);
    assert_int_equal(ls_engine_delete(f->e, "", 0), LS_EBADID);
    assert_int_equal(stats(f).devices, 0);
}

/* Creates n devices, deletes them all, and does it again: the table must
 * release every slot it ever handed out. */
static void test_delete_many_then_recreate(void **state)
{
    fx *f = *state;
    char id[32];
    const int n = 3000;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < n; i++) {
            int len = snprintf(id, sizeof(id), "many-%d", i);
            assert_int_equal(ls_engine_activity(f->e, id, (size_t)len, 0, f->now), 0);
        }
        assert_int_equal(stats(f).devices, n);
        assert_int_equal(stats(f).active, n);
        for (int i = 0; i < n; i++) {
            int len = snprintf(id, sizeof(id), "many-%d", i);
            assert_int_equal(ls_engine_delete(f->e, id, (size_t)len), 0);
        }
        ls_engine_stats s = stats(f);
        assert_int_equal(s.devices, 0);
        assert_int_equal(s.active, 0);
        assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    }
    advance(f, 10 * T_TIMEOUT);
    assert_int_equal(tick(f), 0);
}

/* ------------------------------------------------------------------ */
/* Ids                                                                 */
/* ------------------------------------------------------------------ */

typedef struct bytes {
    const char *p;
    size_t len;
} bytes;

#define B(s)                                                                                       \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }

static void test_id_check_accepts(void **state)
{
    (void)state;
    char max[LS_ID_MAX];
    memset(max, 'x', sizeof(max));
    const bytes ok[] = {
        B("a"),
        {max, LS_ID_MAX},
        B("\xc3\xa9"),                 /* é */
        B("caf\xc3\xa9"),              /* café */
        B("\xe6\x97\xa5\xe6\x9c\xac"), /* 日本 */
        B("\xf0\x9f\x98\x80"),         /* 😀 */
        B("\xf4\x8f\xbf\xbf"),         /* U+10FFFF */
        B("\xc2\xa0"),                 /* U+00A0: first after C1 */
        B("\xef\xbf\xbd"),             /* U+FFFD */
        B("\xee\x80\x80"),             /* U+E000: first after surrogates */
        B("\xed\x9f\xbf"),             /* U+D7FF: last before surrogates */
        B("a/b"),
        B("with space"),
        B(" "),
        B("~"),
        B("dev-01.site_2:x@y#z"),
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *why = ls_id_check(ok[i].p, ok[i].len);
        if (why) fail_msg("id #%zu rejected: %s", i, why);
    }
    /* 256 bytes made of multi-byte characters. */
    char cjk[LS_ID_MAX + 3];
    size_t n = 0;
    while (n + 3 <= LS_ID_MAX) {
        memcpy(cjk + n, "\xe6\x97\xa5", 3);
        n += 3;
    }
    cjk[n++] = 'a'; /* 255 + 1 = 256 */
    assert_int_equal(n, LS_ID_MAX);
    assert_null(ls_id_check(cjk, n));
}

static const bytes bad_ids[] = {
    {"", 0},
    B("a\0b"),
    B("\0"),
    B("a\x01"),
    B("\x1f"),
    B("tab\there"),
    B("new\nline"),
    B("\x7f"),
    B("\xc2\x80"), /* C1 */
    B("\xc2\x9f"), /* C1 */
    B("\xc2\x85"), /* NEL */
    B("\xc0\xaf"), /* overlong '/' */
    B("\xc1\xbf"), /* overlong */
    B("\xc0\x80"), /* overlong NUL */
    B("\xe0\x80\xaf"),
    B("\xe0\x9f\xbf"),     /* overlong U+07FF */
    B("\xf0\x8f\xbf\xbf"), /* overlong U+FFFF */
    B("\xed\xa0\x80"),     /* U+D800 */
    B("\xed\xbf\xbf"),     /* U+DFFF */
    B("\xf4\x90\x80\x80"), /* U+110000 */
    B("\xf5\x80\x80\x80"),
    B("\xf7\xbf\xbf\xbf"),
    B("\xc3"),         /* truncated */
    B("a\xe6\x97"),    /* truncated */
    B("\xf0\x9f\x98"), /* truncated */
    B("\x80"),         /* lone continuation */
    B("a\xbf"),
    B("\xe6\x97\xa5\x97"), /* extra continuation */
    B("\xc3\x28"),         /* bad continuation */
    B("\xe6\x28\xa5"),
    B("\xff"),
    B("\xfe"),
    B("\xf8\x88\x80\x80\x80"), /* 5-byte form */
};

static void test_id_check_rejects(void **state)
{
    (void)state;
    char big[LS_ID_MAX + 1];
    memset(big, 'x', sizeof(big));
    assert_non_null(ls_id_check(big, LS_ID_MAX + 1));
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        if (!ls_id_check(bad_ids[i].p, bad_ids[i].len)) fail_msg("bad id #%zu accepted", i);
    }
    /* A trailing multi-byte char cut at the 256-byte limit. */
    char cut[LS_ID_MAX];
    memset(cut, 'x', sizeof(cut));
    memcpy(cut + LS_ID_MAX - 2, "\xe6\x97", 2);
    assert_non_null(ls_id_check(cut, LS_ID_MAX));
}

static void test_engine_rejects_bad_ids(void **state)
{
    fx *f = *state;
    char big[LS_ID_MAX + 1];
    memset(big, 'x', sizeof(big));
    ls_device_config c = {.set_timeout = 1, .timeout_ms = 100};
    for (size_t i = 0; i <= sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        const char *p = i < sizeof(bad_ids) / sizeof(bad_ids[0]) ? bad_ids[i].p : big;
        size_t len = i < sizeof(bad_ids) / sizeof(bad_ids[0]) ? bad_ids[i].len : sizeof(big);
        assert_int_equal(ls_engine_activity(f->e, p, len, 0, f->now), LS_EBADID);
        assert_int_equal(ls_engine_connect(f->e, p, len, f->now), LS_EBADID);
        assert_int_equal(ls_engine_disconnect(f->e, p, len, f->now), LS_EBADID);
        assert_int_equal(ls_engine_put(f->e, p, len, &c, f->now, NULL), LS_EBADID);
        assert_int_equal(ls_engine_delete(f->e, p, len), LS_EBADID);
        assert_null(ls_engine_find(f->e, p, len));
    }
    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, 0);
    assert_int_equal(s.activities, 0);
    assert_int_equal(s.sessions, 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
}

static void test_engine_accepts_edge_ids(void **state)
{
    fx *f = *state;
    char max[LS_ID_MAX];
    memset(max, 'm', sizeof(max));
    assert_int_equal(ls_engine_activity(f->e, max, sizeof(max), 0, f->now), 0);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->ev[0].id_len, LS_ID_MAX);
    assert_memory_equal(f->ev[0].id, max, LS_ID_MAX);
    const ls_device *d = ls_engine_find(f->e, max, sizeof(max));
    assert_non_null(d);
    assert_int_equal(d->id_len, LS_ID_MAX);
    assert_int_equal(ls_device_id(d, (char[LS_ID_BUF]){0})[LS_ID_MAX], '\0');
    assert_null(ls_engine_find(f->e, max, sizeof(max) - 1));

    act(f, "\xf0\x9f\x98\x80 sensor/\xe6\x97\xa5\xe6\x9c\xac");
    assert_non_null(dev(f, "\xf0\x9f\x98\x80 sensor/\xe6\x97\xa5\xe6\x9c\xac"));
    assert_string_equal(f->ev[1].id, "\xf0\x9f\x98\x80 sensor/\xe6\x97\xa5\xe6\x9c\xac");
    act(f, "a");
    assert_int_equal(stats(f).devices, 3);
}

/* ------------------------------------------------------------------ */
/* max_devices                                                         */
/* ------------------------------------------------------------------ */

static void test_max_devices(void **state)
{
    fx *f = *state;
    fx_open(f, T_TIMEOUT, T_SKEW, 3);
    act(f, "a");
    act(f, "b");
    ls_device_config c = {0};
    assert_int_equal(ls_engine_put(f->e, ID("c"), &c, f->now, NULL), 0);
    size_t n = f->n;
    assert_int_equal(act_ts(f, "d", 0), LS_EFULL);
    assert_int_equal(ls_engine_connect(f->e, ID("d"), f->now), LS_EFULL);
    int created = -1;
    assert_int_equal(ls_engine_put(f->e, ID("d"), &c, f->now, &created), LS_EFULL);
    assert_null(dev(f, "d"));
    assert_int_equal(f->n, n);
    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, 3);
    assert_int_equal(s.sessions, 0);

    /* Existing devices still work. */
    advance(f, 10);
    act(f, "a");
    assert_int_equal(dev(f, "a")->last_activity, WALL0 + 10);
    act(f, "c");
    assert_int_equal(f->n, n + 1);
    assert_int_equal(ls_engine_connect(f->e, ID("b"), f->now), 0);
    assert_int_equal(put_timeout(f, "b", 500, NULL), 0);

    assert_int_equal(ls_engine_delete(f->e, ID("b")), 0);
    act(f, "d");
    assert_non_null(dev(f, "d"));
    assert_int_equal(stats(f).devices, 3);
    assert_int_equal(act_ts(f, "e", 0), LS_EFULL);
}

/* ------------------------------------------------------------------ */
/* Types                                                               */
/* ------------------------------------------------------------------ */

static void test_types(void **state)
{
    fx *f = *state;
    act(f, "plain");
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "plain")), "default");

    assert_int_equal(put_type(f, "s1", ID("sensor")), 0);
    assert_int_equal(put_type(f, "s2", ID("sensor")), 0);
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s1")), "sensor");
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s2")), "sensor");
    assert_int_equal(dev(f, "s1")->type, dev(f, "s2")->type);
    assert_int_equal(dev(f, "s1")->active, 0);

    /* Length-delimited, not NUL-delimited. */
    assert_int_equal(put_type(f, "s3", "sensorXYZ", 6), 0);
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s3")), "sensor");

    /* NULL keeps; a put without type leaves it. */
    assert_int_equal(put_timeout(f, "s1", 2000, NULL), 0);
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s1")), "sensor");
    assert_int_equal(put_type(f, "s1", ID("gateway")), 0);
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s1")), "gateway");
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s2")), "sensor");
    assert_int_equal(dev(f, "s1")->timeout_ms, 2000);
    assert_int_equal(put_type(f, "s1", ID("default")), 0);
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s1")), "default");

    char t64[LS_TYPE_MAX];
    memset(t64, 't', sizeof(t64));
    assert_int_equal(put_type(f, "s4", t64, sizeof(t64)), 0);
    assert_int_equal(strlen(ls_engine_type_name(f->e, dev(f, "s4"))), LS_TYPE_MAX);
    assert_int_equal(put_type(f, "s4", ID("\xe6\x97\xa5\xe6\x9c\xac")), 0);
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "s4")), "\xe6\x97\xa5\xe6\x9c\xac");
}

static void test_types_invalid(void **state)
{
    fx *f = *state;
    char t65[LS_TYPE_MAX + 1];
    memset(t65, 't', sizeof(t65));
    assert_int_equal(put_type(f, "n1", "", 0), LS_EINVAL);
    assert_int_equal(put_type(f, "n1",
                              "a\x01"
                              "b",
                              3),
                     LS_EINVAL);
    assert_int_equal(put_type(f, "n1", "a\nb", 3), LS_EINVAL);
    assert_int_equal(put_type(f, "n1", "\x7f", 1), LS_EINVAL);
    assert_int_equal(put_type(f, "n1", "\xc0\xaf", 2), LS_EINVAL);
    assert_int_equal(put_type(f, "n1", t65, sizeof(t65)), LS_EINVAL);
    /* Failing puts create nothing. */
    assert_null(dev(f, "n1"));
    assert_int_equal(stats(f).devices, 0);

    /* On an existing device: the type is kept. */
    assert_int_equal(put_type(f, "n2", ID("sensor")), 0);
    assert_int_equal(put_type(f, "n2", "", 0), LS_EINVAL);
    assert_int_equal(put_type(f, "n2", t65, sizeof(t65)), LS_EINVAL);
    assert_string_equal(ls_engine_type_name(f->e, dev(f, "n2")), "sensor");

    /* A put with an invalid type applies nothing else either. */
    ls_device_config c = {.set_timeout = 1, .timeout_ms = 42, .type = "", .type_len = 0};
    assert_int_equal(ls_engine_put(f->e, ID("n2"), &c, f->now, NULL), LS_EINVAL);
    assert_false(dev(f, "n2")->flags & LS_DEV_OWN_TIMEOUT);
    assert_int_equal(ls_engine_timeout(f->e, dev(f, "n2"), NULL), T_TIMEOUT);
}

/* ------------------------------------------------------------------ */
/* Stats                                                               */
/* ------------------------------------------------------------------ */

static void count_cb(void *ud, const ls_device *d)
{
    (void)d;
    (*(uint64_t *)ud)++;
}

static void test_stats_mixed(void **state)
{
    fx *f = *state;
    ls_device_config c = {0};
    act(f, "a");                                                   /* ACT */
    assert_int_equal(ls_engine_connect(f->e, ID("b"), f->now), 0); /* CONNECT, ACT */
    assert_int_equal(ls_engine_put(f->e, ID("c"), &c, f->now, NULL), 0);
    at(f, 5000);
    assert_int_equal(act_ts(f, "d", WALL0 + 1000), 0); /* stale */
    at(f, 0);
    assert_int_equal(act_ts(f, "e", WALL0 + T_SKEW + 99), 0); /* clamped, ACT */
    assert_int_equal(act_ts(f, "f", 0), 0);                   /* ACT */
    assert_int_equal(ls_engine_delete(f->e, ID("f")), 0);

    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, 5);
    assert_int_equal(s.active, 3);
    assert_int_equal(s.inactive, 2);

    at(f, T_TIMEOUT);
    assert_int_equal(tick(f), 3);                                     /* a, b, e */
    assert_int_equal(ls_engine_disconnect(f->e, ID("b"), f->now), 0); /* DISCONNECT */
    at(f, 1500);
    act(f, "a"); /* ACT */

    s = stats(f);
    assert_int_equal(s.devices, 5);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.inactive, 4);
    assert_int_equal(s.sessions, 0);
    assert_int_equal(s.activities, 6);
    assert_int_equal(s.stale_activities, 1);
    assert_int_equal(s.clamped_future, 1);
    assert_int_equal(s.events[LS_EV_ACTIVITY], 5);
    assert_int_equal(s.events[LS_EV_INACTIVITY], 3);
    assert_int_equal(s.events[LS_EV_CONNECT], 1);
    assert_int_equal(s.events[LS_EV_DISCONNECT], 1);
    assert_int_equal(s.devices, s.active + s.inactive);

    /* The stats agree with the events seen and with a scan. */
    uint64_t by_type[LS_EV__COUNT] = {0};
    for (size_t i = 0; i < f->n; i++)
        by_type[f->ev[i].type]++;
    for (int t = 0; t < LS_EV__COUNT; t++)
        assert_int_equal(by_type[t], s.events[t]);
    uint64_t n_active = 0, n_inactive = 0, n_all = 0;
    assert_int_equal(ls_engine_scan(f->e, 0, 1, 0, 0, count_cb, &n_active), 0);
    assert_int_equal(ls_engine_scan(f->e, 0, 0, 0, 0, count_cb, &n_inactive), 0);
    assert_int_equal(ls_engine_scan(f->e, 0, -1, 0, 0, count_cb, &n_all), 0);
    assert_int_equal(n_active, s.active);
    assert_int_equal(n_inactive, s.inactive);
    assert_int_equal(n_all, s.devices);
}

/* ------------------------------------------------------------------ */
/* Scan / paging                                                       */
/* ------------------------------------------------------------------ */

#define SCAN_N 10000

typedef struct seen {
    int orig[SCAN_N];  /* visits of s%05d */
    int added[SCAN_N]; /* visits of n%05d */
    int filter;        /* expected active value, -1 any */
    size_t visits;
} seen;

static void seen_cb(void *ud, const ls_device *d)
{
    seen *s = ud;
    assert_true(d->live);
    if (s->filter >= 0) assert_int_equal(d->active, s->filter);
    const char *id = ls_device_id(d, (char[LS_ID_BUF]){0});
    long k = strtol(id + 1, NULL, 10);
    assert_true(k >= 0 && k < SCAN_N);
    if (id[0] == 's')
        s->orig[k]++;
    else if (id[0] == 'n')
        s->added[k]++;
    else
        fail_msg("unexpected id %s", id);
    s->visits++;
}

static void scan_populate(fx *f, int n)
{
    char id[16];
    ls_device_config c = {0};
    for (int i = 0; i < n; i++) {
        int len = snprintf(id, sizeof(id), "s%05d", i);
        if (i % 2 == 0)
            assert_int_equal(ls_engine_activity(f->e, id, (size_t)len, 0, f->now), 0);
        else
            assert_int_equal(ls_engine_put(f->e, id, (size_t)len, &c, f->now, NULL), 0);
    }
}

static void test_scan_empty(void **state)
{
    fx *f = *state;
    seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->filter = -1;
    assert_int_equal(ls_engine_scan(f->e, 0, -1, 100, 0, seen_cb, s), 0);
    assert_int_equal(s->visits, 0);
    free(s);
}

static void test_scan_paging_visits_each_once(void **state)
{
    fx *f = *state;
    scan_populate(f, SCAN_N);
    seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    for (int filter = -1; filter <= 1; filter++) {
        memset(s, 0, sizeof(*s));
        s->filter = filter;
        uint64_t cursor = 0;
        int pages = 0;
        do {
            size_t before = s->visits;
            cursor = ls_engine_scan(f->e, cursor, filter, 100, 0, seen_cb, s);
            assert_true(s->visits - before <= 100);
            if (cursor) assert_int_equal(s->visits - before, 100);
            assert_true(++pages <= SCAN_N);
        } while (cursor);
        size_t expect = filter < 0 ? SCAN_N : SCAN_N / 2;
        assert_int_equal(s->visits, expect);
        /* 100 per page; the last full page may or may not return 0. */
        assert_true(pages == (int)(expect / 100) || pages == (int)(expect / 100) + 1);
        for (int i = 0; i < SCAN_N; i++) {
            int want = filter < 0 ? 1 : (i % 2 == 0) == (filter == 1);
            if (s->orig[i] != want)
                fail_msg("filter %d: s%05d seen %d times", filter, i, s->orig[i]);
        }
    }
    free(s);
}

static void test_scan_limit_and_end(void **state)
{
    fx *f = *state;
    scan_populate(f, 10);
    seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->filter = -1;
    /* limit exactly the count: done in one call. */
    assert_int_equal(ls_engine_scan(f->e, 0, -1, 10, 0, seen_cb, s), 0);
    assert_int_equal(s->visits, 10);
    /* limit 0 = unlimited. */
    assert_int_equal(ls_engine_scan(f->e, 0, -1, 0, 0, seen_cb, s), 0);
    assert_int_equal(s->visits, 20);
    /* A cursor past the end. */
    assert_int_equal(ls_engine_scan(f->e, 1000000, -1, 10, 0, seen_cb, s), 0);
    assert_int_equal(s->visits, 20);
    /* limit 1: ten pages. */
    memset(s, 0, sizeof(*s));
    s->filter = -1;
    uint64_t cursor = 0;
    int pages = 0;
    do {
        cursor = ls_engine_scan(f->e, cursor, -1, 1, 0, seen_cb, s);
        pages++;
    } while (cursor && pages < 100);
    assert_int_equal(pages, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(s->orig[i], 1);
    free(s);
}

static void test_scan_stable_under_change(void **state)
{
    fx *f = *state;
    scan_populate(f, SCAN_N);
    seen *s = calloc(1, sizeof(*s));
    uint8_t *deleted = calloc(SCAN_N, 1);
    assert_non_null(s);
    assert_non_null(deleted);
    s->filter = -1;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    int added = 0;
    char id[16];
    uint64_t cursor = 0;
    int pages = 0;
    do {
        cursor = ls_engine_scan(f->e, cursor, -1, 100, 0, seen_cb, s);
        /* Between pages: delete 5 random originals (seen or not), then add
         * 5 new devices, which reuse the freed slots. */
        for (int k = 0; k < 5; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            int i = (int)(rng % SCAN_N);
            int len = snprintf(id, sizeof(id), "s%05d", i);
            int rc = ls_engine_delete(f->e, id, (size_t)len);
            assert_int_equal(rc, deleted[i] ? LS_ENOTFOUND : 0);
            deleted[i] = 1;
        }
        for (int k = 0; k < 5 && added < SCAN_N; k++, added++) {
            int len = snprintf(id, sizeof(id), "n%05d", added);
            assert_int_equal(ls_engine_activity(f->e, id, (size_t)len, 0, f->now), 0);
        }
        assert_true(++pages < 1000);
    } while (cursor);
    int survivors = 0;
    for (int i = 0; i < SCAN_N; i++) {
        if (deleted[i]) {
            if (s->orig[i] > 1) fail_msg("deleted s%05d seen %d times", i, s->orig[i]);
        } else {
            if (s->orig[i] != 1) fail_msg("s%05d seen %d times", i, s->orig[i]);
            survivors++;
        }
    }
    for (int i = 0; i < added; i++)
        if (s->added[i] > 1) fail_msg("n%05d seen %d times", i, s->added[i]);
    assert_true(survivors > SCAN_N - 5 * pages);
    assert_int_equal(stats(f).devices, (uint64_t)(survivors + added));
    free(deleted);
    free(s);
}

/* Matches ids whose number is a multiple of 7. */
static int seventh_match(void *ud, const ls_device *d)
{
    (void)ud;
    return strtol(ls_device_id(d, (char[LS_ID_BUF]){0}) + 1, NULL, 10) % 7 == 0;
}

static void test_scan_match(void **state)
{
    fx *f = *state;
    scan_populate(f, 1000);
    seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    for (int filter = -1; filter <= 1; filter++) {
        memset(s, 0, sizeof(*s));
        s->filter = filter;
        uint64_t cursor = 0;
        int pages = 0;
        do {
            size_t before = s->visits;
            cursor = ls_engine_scan_match(f->e, cursor, filter, 10, 0, seventh_match, seen_cb, s);
            /* Only matches count towards the limit: full pages until the end. */
            if (cursor) assert_int_equal(s->visits - before, 10);
            assert_true(++pages < 1000);
        } while (cursor);
        for (int i = 0; i < 1000; i++) {
            int want = i % 7 == 0 && (filter < 0 || (i % 2 == 0) == (filter == 1));
            if (s->orig[i] != want)
                fail_msg("filter %d: s%05d seen %d times", filter, i, s->orig[i]);
        }
    }
    /* max_scan counts slots, matching or not: 1000 slots, 50 a call. */
    memset(s, 0, sizeof(*s));
    s->filter = -1;
    uint64_t cursor = 0;
    int calls = 0;
    do {
        cursor = ls_engine_scan_match(f->e, cursor, -1, 1000, 50, seventh_match, seen_cb, s);
        calls++;
    } while (cursor && calls < 1000);
    assert_int_equal(calls, 1000 / 50);
    assert_int_equal(s->visits, 1000 / 7 + 1);
    free(s);
}

static void test_scan_max_scan(void **state)
{
    fx *f = *state;
    scan_populate(f, 1000);
    /* Leave one device in ten. */
    char id[16];
    for (int i = 0; i < 1000; i++) {
        if (i % 10 == 0) continue;
        int len = snprintf(id, sizeof(id), "s%05d", i);
        assert_int_equal(ls_engine_delete(f->e, id, (size_t)len), 0);
    }
    seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->filter = -1;
    uint64_t cursor = ls_engine_scan(f->e, 0, -1, 1000, 50, seen_cb, s);
    /* The bound stopped it before the limit, with a cursor to go on. */
    assert_true(cursor != 0);
    assert_true(s->visits <= 50);
    assert_true(s->visits < 100);
    int calls = 1;
    while (cursor) {
        size_t before = s->visits;
        cursor = ls_engine_scan(f->e, cursor, -1, 1000, 50, seen_cb, s);
        assert_true(s->visits - before <= 50);
        assert_true(++calls < 1000);
    }
    assert_true(calls >= 1000 / 50);
    assert_int_equal(s->visits, 100);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(s->orig[i], i % 10 == 0 ? 1 : 0);

    /* With a filter matching nothing, max_scan still bounds each call. */
    memset(s, 0, sizeof(*s));
    s->filter = 1;
    at(f, T_TIMEOUT);
    tick(f);
    cursor = 0;
    calls = 0;
    do {
        cursor = ls_engine_scan(f->e, cursor, 1, 10, 7, seen_cb, s);
        calls++;
    } while (cursor && calls < 10000);
    assert_int_equal(s->visits, 0);
    assert_true(calls >= 1000 / 7);
    free(s);
}

/* ------------------------------------------------------------------ */
/* Property test against a reference model                             */
/* ------------------------------------------------------------------ */

#define P_N 20000
#define P_SPAN 20000

typedef struct model {
    int64_t timeout;
    int64_t last_mono;
    int64_t last_wall;
    int active;
} model;

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int64_t rnd_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static int pid(char *buf, size_t cap, int i)
{
    return snprintf(buf, cap, "p%05d", i);
}

static int id_index(const char *id)
{
    assert_int_equal(id[0], 'p');
    return (int)strtol(id + 1, NULL, 10);
}

/* Checks an INACTIVITY event against the model and applies it. */
static void model_inactive(model *m, const rec *r, ls_now now)
{
    int i = id_index(r->id);
    model *d = &m[i];
    if (!d->active) fail_msg("%s: INACTIVITY while inactive in the model", r->id);
    if (d->last_mono + d->timeout > now.mono)
        fail_msg("%s: fired early at mono %lld, deadline %lld", r->id, (long long)now.mono,
                 (long long)(d->last_mono + d->timeout));
    assert_int_equal(r->ts, d->last_wall + d->timeout);
    assert_int_equal(r->detected_at, now.wall);
    assert_int_equal(r->st.active, 0);
    assert_int_equal(r->st.inactivity_alarm, now.wall);
    d->active = 0;
}

static void test_property_random(void **state)
{
    fx *f = *state;
    const char *env = getenv("LS_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x1234abcd5678ef01ULL;
    if (!seed) seed = 1;
    rng_state = seed;
    print_message("property seed 0x%llx\n", (unsigned long long)seed);

    model *m = calloc(P_N, sizeof(*m));
    assert_non_null(m);
    char id[16];
    for (int i = 0; i < P_N; i++) {
        int len = pid(id, sizeof(id), i);
        m[i].timeout = rnd_range(1, 5000);
        ls_device_config c = {.set_timeout = 1, .timeout_ms = m[i].timeout};
        assert_int_equal(ls_engine_put(f->e, id, (size_t)len, &c, f->now, NULL), 0);
    }
    assert_int_equal(f->n, 0);

    uint64_t n_inact = 0, n_act = 0, n_stale = 0, n_put_inact = 0;
    int64_t end = MONO0 + P_SPAN;
    while (f->now.mono < end) {
        advance(f, rnd_range(1, 50));

        /* Tick first: every device whose deadline has come must fire now,
         * and no other. */
        f->n = 0;
        uint64_t fired = tick(f);
        assert_int_equal(fired, f->n);
        for (size_t k = 0; k < f->n; k++) {
            assert_int_equal(f->ev[k].type, LS_EV_INACTIVITY);
            model_inactive(m, &f->ev[k], f->now);
        }
        n_inact += f->n;
        int64_t min_deadline = INT64_MAX;
        for (int i = 0; i < P_N; i++) {
            if (!m[i].active) continue;
            int64_t dl = m[i].last_mono + m[i].timeout;
            if (dl <= f->now.mono)
                fail_msg("p%05d: deadline %lld passed at mono %lld, still active", i, (long long)dl,
                         (long long)f->now.mono);
            if (dl < min_deadline) min_deadline = dl;
        }
        int64_t w = ls_engine_next_wakeup(f->e);
        assert_true(w <= min_deadline);
        if (w != INT64_MAX) assert_true(w > f->now.mono);

        /* Then activities at this instant: mostly a hot set, some device
         * timestamps in the past (stale or not). */
        int nact = (int)rnd_range(0, 80);
        for (int k = 0; k < nact; k++) {
            int i = (rnd() % 4) ? (int)rnd_range(0, 1999) : (int)rnd_range(0, P_N - 1);
            int64_t ts = 0;
            if (rnd() % 5 == 0) ts = f->now.wall - rnd_range(0, 6000);
            int len = pid(id, sizeof(id), i);
            f->n = 0;
            assert_int_equal(ls_engine_activity(f->e, id, (size_t)len, ts, f->now), 0);

            model *d = &m[i];
            int64_t wall = ts ? ts : f->now.wall;
            int64_t mono = f->now.mono - (f->now.wall - wall);
            if (mono > d->last_mono || d->last_wall == 0) d->last_mono = mono;
            if (wall > d->last_wall) d->last_wall = wall;
            if (f->now.wall - wall >= d->timeout) {
                n_stale++;
                assert_int_equal(f->n, 0);
            } else if (!d->active) {
                d->active = 1;
                n_act++;
                assert_int_equal(f->n, 1);
                check_event(&f->ev[0], LS_EV_ACTIVITY, id, d->last_wall, f->now.wall);
            } else {
                assert_int_equal(f->n, 0);
            }
        }

        /* Now and then a timeout change or a delete + re-create. */
        if (rnd() % 4 == 0) {
            int i = (int)rnd_range(0, P_N - 1);
            int len = pid(id, sizeof(id), i);
            model *d = &m[i];
            f->n = 0;
            if (rnd() % 3 == 0) {
                assert_int_equal(ls_engine_delete(f->e, id, (size_t)len), 0);
                *d = (model){.timeout = rnd_range(1, 5000)};
                ls_device_config c = {.set_timeout = 1, .timeout_ms = d->timeout};
                int created = 0;
                assert_int_equal(ls_engine_put(f->e, id, (size_t)len, &c, f->now, &created), 0);
                assert_int_equal(created, 1);
                assert_int_equal(f->n, 0);
            } else {
                d->timeout = rnd_range(1, 5000);
                ls_device_config c = {.set_timeout = 1, .timeout_ms = d->timeout};
                assert_int_equal(ls_engine_put(f->e, id, (size_t)len, &c, f->now, NULL), 0);
                if (d->active && d->last_mono + d->timeout <= f->now.mono) {
                    assert_int_equal(f->n, 1);
                    assert_int_equal(f->ev[0].type, LS_EV_INACTIVITY);
                    model_inactive(m, &f->ev[0], f->now);
                    n_put_inact++;
                } else {
                    assert_int_equal(f->n, 0);
                }
            }
        }
    }

    /* Final tick and full comparison. */
    f->n = 0;
    tick(f);
    for (size_t k = 0; k < f->n; k++)
        model_inactive(m, &f->ev[k], f->now);
    uint64_t n_active = 0;
    for (int i = 0; i < P_N; i++) {
        int len = pid(id, sizeof(id), i);
        const ls_device *d = ls_engine_find(f->e, id, (size_t)len);
        assert_non_null(d);
        if (d->active != m[i].active)
            fail_msg("p%05d: engine active %d, model %d", i, d->active, m[i].active);
        assert_int_equal(d->last_activity, m[i].last_wall);
        assert_int_equal(d->timeout_ms, m[i].timeout);
        if (m[i].active) {
            assert_true(m[i].last_mono + m[i].timeout > f->now.mono);
            assert_int_equal(d->last_activity_mono, m[i].last_mono);
            n_active++;
        }
    }
    ls_engine_stats s = stats(f);
    assert_int_equal(s.devices, P_N);
    assert_int_equal(s.active, n_active);
    assert_int_equal(s.stale_activities, n_stale);
    print_message("property: %llu activations, %llu inactivations (+%llu by put), %llu stale\n",
                  (unsigned long long)n_act, (unsigned long long)n_inact,
                  (unsigned long long)n_put_inact, (unsigned long long)n_stale);
    assert_true(n_inact > 1000);
    assert_true(n_act > 1000);
    free(m);
}

/* ------------------------------------------------------------------ */
/* Batched activities                                                  */
/* ------------------------------------------------------------------ */

/* Compares two engines' view of one device. */
static void same_device(fx *a, fx *b, const char *id, size_t len)
{
    const ls_device *x = ls_engine_find(a->e, id, len);
    const ls_device *y = ls_engine_find(b->e, id, len);
    assert_true((x == NULL) == (y == NULL));
    if (!x) return;
    assert_int_equal(x->active, y->active);
    assert_int_equal(x->last_activity, y->last_activity);
    assert_int_equal(x->last_activity_mono, y->last_activity_mono);
    assert_int_equal(x->inactivity_alarm, y->inactivity_alarm);
}

static void test_batch_matches_single(void **state)
{
    fx *f = *state;
    fx *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    fx_open(g, T_TIMEOUT, T_SKEW, 0);

    enum { N = 1000 };
    static char ids[N][16];
    ls_activity *a = calloc(N, sizeof(*a));
    int *rcs = calloc(N, sizeof(*rcs));
    assert_non_null(a);
    assert_non_null(rcs);
    rng_state = 0xabcdef12345ULL;
    at(f, 20000);
    at(g, 20000);
    int64_t wall = f->now.wall;
    for (int i = 0; i < N; i++) {
        /* 300 distinct ids: repeats both far apart and inside the pipeline
         * window (the item right before creates the device). */
        int k = (i % 7 == 0 && i > 0) ? (int)((rnd() % 300)) : i % 300;
        int len = snprintf(ids[i], sizeof(ids[i]), "b%03d", k);
        a[i].id = ids[i];
        a[i].len = (uint32_t)len;
        switch (rnd() % 8) {
        case 0:
            a[i].ts = wall - (int64_t)(rnd() % 3000);
            break; /* maybe stale */
        case 1:
            a[i].ts = wall + (int64_t)(rnd() % (2 * T_SKEW));
            break; /* maybe clamped */
        case 2:
            a[i].ts = -1;
            break;
        default:
            a[i].ts = 0;
            break;
        }
        /* Bad ids with a valid ts (both wrong: see test_batch_error_order). */
        if (i % 97 == 0 || i % 89 == 0) a[i].ts = 0;
        if (i % 97 == 0) {
            a[i].id = "bad\x01id";
            a[i].len = 6;
        }
        if (i % 89 == 0) {
            a[i].id = "\xc0\xaf";
            a[i].len = 2;
        }
    }
    size_t applied = ls_engine_activity_batch(f->e, a, N, f->now, rcs);
    size_t ok = 0;
    for (int i = 0; i < N; i++) {
        int rc = ls_engine_activity(g->e, a[i].id, a[i].len, a[i].ts, g->now);
        if (rc != rcs[i]) fail_msg("item %d: batch rc %d, single rc %d", i, rcs[i], rc);
        if (rc == 0) ok++;
    }
    assert_int_equal(applied, ok);
    assert_true(ok > N / 2 && ok < N);

    /* The same events in the same order, and the same state. */
    assert_int_equal(f->n, g->n);
    for (size_t i = 0; i < f->n; i++) {
        assert_int_equal(f->ev[i].type, g->ev[i].type);
        assert_string_equal(f->ev[i].id, g->ev[i].id);
        assert_int_equal(f->ev[i].ts, g->ev[i].ts);
        assert_int_equal(f->ev[i].detected_at, g->ev[i].detected_at);
    }
    ls_engine_stats sf = stats(f), sg = stats(g);
    assert_memory_equal(&sf, &sg, sizeof(sf));
    for (int i = 0; i < N; i++)
        same_device(f, g, a[i].id, a[i].len);

    /* And the same inactivity afterwards. */
    for (int64_t t = 20000; t <= 20000 + T_SKEW + 2 * T_TIMEOUT; t += 1) {
        at(f, t);
        at(g, t);
        assert_int_equal(tick(f), tick(g));
    }
    assert_int_equal(f->n, g->n);
    assert_int_equal(stats(f).active, 0);

    /* rcs may be NULL. */
    assert_int_equal(ls_engine_activity_batch(f->e, a, N, f->now, NULL), applied);
    free(rcs);
    free(a);
    ls_engine_close(g->e);
    free(g->ev);
    free(g);
}

static void test_batch_edges(void **state)
{
    fx *f = *state;
    fx_open(f, T_TIMEOUT, T_SKEW, 2);
    assert_int_equal(ls_engine_activity_batch(f->e, NULL, 0, f->now, NULL), 0);
    ls_activity a[] = {
        {ID("x"), 0, 0},  {ID("x"), 0, 0}, /* same device, right after its creation */
        {ID("y"), 0, -5}, {"", 0, 0, 0},   {ID("y"), 0, 0}, {ID("z"), 0, 0}, /* the third: full */
        {ID("x"), 0, 0},
    };
    int rcs[7];
    memset(rcs, 0x55, sizeof(rcs));
    assert_int_equal(ls_engine_activity_batch(f->e, a, 7, f->now, rcs), 4);
    int want[7] = {0, 0, LS_EINVAL, LS_EBADID, 0, LS_EFULL, 0};
    for (int i = 0; i < 7; i++)
        assert_int_equal(rcs[i], want[i]);
    assert_int_equal(f->n, 2);
    check_event(&f->ev[0], LS_EV_ACTIVITY, "x", WALL0, WALL0);
    check_event(&f->ev[1], LS_EV_ACTIVITY, "y", WALL0, WALL0);
    assert_null(dev(f, "z"));
    assert_int_equal(stats(f).activities, 4);
}

/* An item that is wrong twice (bad id and ts < 0) gets the same code as the
 * single call gives: "as ls_engine_activity() would one by one". */
static void test_batch_error_order(void **state)
{
    fx *f = *state;
    int single = ls_engine_activity(f->e, "\xc0\xaf", 2, -1, f->now);
    ls_activity a[] = {{"\xc0\xaf", 2, 0, -1}};
    int rc = 12345;
    assert_int_equal(ls_engine_activity_batch(f->e, a, 1, f->now, &rc), 0);
    assert_int_equal(rc, single);
}

int main(void)
{
    const char *filter = getenv("LS_TEST_FILTER");
    if (filter) cmocka_set_test_filter(filter);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_rejects_bad_config),
        T(test_names),
        T(test_activity_creates_active_device),
        T(test_activity_with_ts_reports_ts),
        T(test_second_activity_no_event),
        T(test_put_creates_inactive_device),
        T(test_find_distinguishes_prefixes),
        T(test_inactivity_fires_exactly_at_deadline),
        T(test_inactivity_each_ms),
        T(test_inactivity_late_tick),
        T(test_inactivity_after_long_idle_without_tick),
        T(test_reactivation_after_inactivity),
        T(test_inactivity_several_devices_order),
        T(test_many_devices_same_deadline),
        T(test_extreme_timeouts),
        T(test_lazy_rearm_keeps_alive),
        T(test_lazy_rearm_sparse_ticks),
        T(test_next_wakeup_loop_fires_on_time),
        T(test_timeout_shortened_below_elapsed),
        T(test_timeout_shortened_to_exactly_elapsed),
        T(test_timeout_shortened_not_elapsed),
        T(test_timeout_shortened_after_lazy_activity),
        T(test_timeout_lengthened),
        T(test_timeout_zero_restores_default),
        T(test_timeout_zero_restores_default_not_elapsed),
        T(test_timeout_on_inactive_device),
        T(test_timeout_invalid_values),
        T(test_ts_older_never_moves_back),
        T(test_ts_in_past_maps_to_mono),
        T(test_ts_stale_on_inactive_device),
        T(test_ts_staleness_boundary),
        T(test_ts_stale_on_active_device),
        T(test_ts_stale_uses_device_timeout),
        T(test_ts_future_beyond_skew_clamped),
        T(test_ts_future_within_skew_kept),
        T(test_ts_negative_rejected),
        T(test_wall_jump_forward),
        T(test_wall_jump_forward_then_activity),
        T(test_wall_jump_backward),
        T(test_wall_jump_backward_activities_keep_alive),
        T(test_connect_new_device),
        T(test_connect_active_device),
        T(test_connect_put_created_device),
        T(test_sessions_nest),
        T(test_disconnect_without_session),
        T(test_disconnect_unknown),
        T(test_disconnect_inactive_device),
        T(test_delete_cancels_timer),
        T(test_delete_only_timer),
        T(test_delete_among_staggered_timers),
        T(test_delete_recreate_fresh),
        T(test_delete_unknown),
        T(test_id_check_accepts),
        T(test_id_check_rejects),
        T(test_engine_rejects_bad_ids),
        T(test_engine_accepts_edge_ids),
        T(test_max_devices),
        T(test_types),
        T(test_types_invalid),
        T(test_stats_mixed),
        T(test_scan_empty),
        T(test_scan_paging_visits_each_once),
        T(test_scan_limit_and_end),
        T(test_scan_stable_under_change),
        T(test_scan_max_scan),
        T(test_scan_match),
        T(test_batch_matches_single),
        T(test_batch_edges),
        T(test_batch_error_order),
        T(test_property_random),
        /* Last: releases more slots at once than the table has freed before. */
        T(test_delete_many_then_recreate),
    };
#undef T
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
