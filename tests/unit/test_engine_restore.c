/*
 * test_engine_restore.c - restart semantics and dirty tracking of the engine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/engine_int.h"

#define WALL0 1700000000000LL

typedef struct captured {
    int n;
    ls_event_type type[64];
    int64_t ts[64], at[64];
    char id[64][LS_ID_BUF];
} captured;

/* ls_engine_restore() of the record st under the id given. */
static int restore_as(ls_engine *e, const char *id, size_t len, const ls_device_state *st,
                      ls_restart_policy policy, ls_now now)
{
    ls_device_state r = *st;
    r.id = id;
    r.id_len = len;
    return ls_engine_restore(e, &r, policy, now);
}

static void capture_cb(void *ud, const ls_event *ev)
{
    captured *c = ud;
    if (c->n >= 64) return;
    c->type[c->n] = ev->type;
    c->ts[c->n] = ev->ts;
    c->at[c->n] = ev->detected_at;
    snprintf(c->id[c->n], sizeof(c->id[0]), "%s", ls_device_id(ev->dev, (char[LS_ID_BUF]){0}));
    c->n++;
}

static ls_engine *make(captured *c)
{
    ls_engine *e;
    ls_engine_config cfg = {.default_timeout_ms = 10000, .max_clock_skew_ms = 5000, .seed = 7};
    assert_int_equal(ls_engine_new(&e, &cfg, capture_cb, c), 0);
    return e;
}

static ls_now at(int64_t mono, int64_t wall)
{
    ls_now n = {mono, wall};
    return n;
}

/* Down for 60 s: the device's old deadline (last + 10 s) passed meanwhile. */
static void test_grace_holds_deadline_past_downtime(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_device_state st = {.active = 1, .last_activity = WALL0 - 60000};
    ls_now now = at(500, WALL0);
    assert_int_equal(restore_as(e, "d1", 2, &st, LS_RESTART_GRACE, now), 0);
    const ls_device *d = ls_engine_find(e, "d1", 2);
    assert_non_null(d);
    assert_true(d->active);
    assert_int_equal(d->last_activity, WALL0 - 60000); /* reported time unchanged */
    ls_engine_tick(e, at(500 + 9999, WALL0 + 9999));
    assert_int_equal(c.n, 0);
    ls_engine_tick(e, at(500 + 10000, WALL0 + 10000));
    assert_int_equal(c.n, 1);
    assert_int_equal(c.type[0], LS_EV_INACTIVITY);
    assert_int_equal(c.at[0], WALL0 + 10000);
    ls_engine_stats s;
    ls_engine_get_stats(e, &s);
    assert_int_equal(s.active, 0);
    ls_engine_close(e);
}

/* Grace keeps a later old deadline: max(old, restart + timeout).  The old
 * one is later only for a last activity in the (skew-tolerated) future. */
static void test_grace_keeps_later_old_deadline(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_device_state st = {.active = 1, .timeout_ms = 100000, .last_activity = WALL0 + 3000};
    assert_int_equal(restore_as(e, "d", 1, &st, LS_RESTART_GRACE, at(0, WALL0)), 0);
    ls_engine_tick(e, at(102999, WALL0 + 102999));
    assert_int_equal(c.n, 0);
    ls_engine_tick(e, at(103000, WALL0 + 103000));
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ts[0], WALL0 + 103000);
    ls_engine_close(e);
}

/* And restart + timeout when that is later (the usual case). */
static void test_grace_uses_restart_plus_timeout(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_device_state st = {.active = 1, .timeout_ms = 100000, .last_activity = WALL0 - 1000};
    assert_int_equal(restore_as(e, "d", 1, &st, LS_RESTART_GRACE, at(0, WALL0)), 0);
    ls_engine_tick(e, at(99999, WALL0 + 99999));
    assert_int_equal(c.n, 0);
    ls_engine_tick(e, at(100000, WALL0 + 100000));
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ts[0], WALL0 - 1000 + 100000); /* reported: its wall deadline */
    ls_engine_close(e);
}

static void test_strict_fires_passed_deadline_with_real_ts(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_device_state late = {.active = 1, .last_activity = WALL0 - 60000};
    ls_device_state ok = {.active = 1, .last_activity = WALL0 - 2000};
    ls_now now = at(100, WALL0);
    assert_int_equal(restore_as(e, "late", 4, &late, LS_RESTART_STRICT, now), 0);
    assert_int_equal(restore_as(e, "ok", 2, &ok, LS_RESTART_STRICT, now), 0);
    ls_engine_tick(e, at(101, WALL0 + 1));
    assert_int_equal(c.n, 1);
    assert_string_equal(c.id[0], "late");
    assert_int_equal(c.ts[0], WALL0 - 60000 + 10000); /* the real deadline */
    /* The other keeps its old deadline: last + 10 s = WALL0 + 8000. */
    ls_engine_tick(e, at(100 + 7999, WALL0 + 7999));
    assert_int_equal(c.n, 1);
    ls_engine_tick(e, at(100 + 8000, WALL0 + 8000));
    assert_int_equal(c.n, 2);
    assert_string_equal(c.id[1], "ok");
    assert_int_equal(c.ts[1], WALL0 + 8000);
    ls_engine_close(e);
}

/*
 * The wall clock was stepped 2 h back while the daemon was down: the stored
 * lastActivityTime lies 2 h in the future.  Under either policy the device
 * stays active and goes inactive one timeout after the restart (it was heard
 * "now" at the latest), not 2 h + timeout later; lastActivityTime and the
 * reported deadline keep the stored wall time.
 */
static void restore_after_step_back(ls_restart_policy policy)
{
    captured c = {0};
    ls_engine *e = make(&c);
    int64_t last = WALL0 + 2 * 3600 * 1000LL;
    ls_device_state st = {.active = 1, .last_activity = last};
    assert_int_equal(restore_as(e, "d", 1, &st, policy, at(1000, WALL0)), 0);
    ls_engine_tick(e, at(1000, WALL0));
    assert_int_equal(c.n, 0);
    assert_true(ls_engine_find(e, "d", 1)->active);
    assert_int_equal(ls_engine_find(e, "d", 1)->last_activity, last);
    ls_engine_tick(e, at(1000 + 9999, WALL0 + 9999));
    assert_int_equal(c.n, 0);
    ls_engine_tick(e, at(1000 + 10000, WALL0 + 10000));
    assert_int_equal(c.n, 1);
    assert_int_equal(c.type[0], LS_EV_INACTIVITY);
    assert_int_equal(c.ts[0], last + 10000);
    assert_int_equal(c.at[0], WALL0 + 10000);
    ls_engine_close(e);
}

static void test_grace_after_clock_step_back(void **state)
{
    (void)state;
    restore_after_step_back(LS_RESTART_GRACE);
}

static void test_strict_after_clock_step_back(void **state)
{
    (void)state;
    restore_after_step_back(LS_RESTART_STRICT);
}

/* Within max_clock_skew (5 s) a future lastActivityTime is taken as it is,
 * as a live activity's ts would be: strict keeps that deadline. */
static void test_strict_keeps_deadline_within_skew(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_device_state st = {.active = 1, .last_activity = WALL0 + 5000};
    assert_int_equal(restore_as(e, "d", 1, &st, LS_RESTART_STRICT, at(0, WALL0)), 0);
    ls_engine_tick(e, at(14999, WALL0 + 14999));
    assert_int_equal(c.n, 0);
    ls_engine_tick(e, at(15000, WALL0 + 15000));
    assert_int_equal(c.n, 1);
    ls_engine_close(e);
}

static void test_restore_inactive_and_fields(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_device_state st = {.type = "meter",
                          .type_len = 5,
                          .timeout_ms = 1234,
                          .last_activity = 11,
                          .last_connect = 22,
                          .last_disconnect = 33,
                          .inactivity_alarm = 44,
                          .sessions = 2};
    assert_int_equal(restore_as(e, "m", 1, &st, LS_RESTART_GRACE, at(0, WALL0)), 0);
    const ls_device *d = ls_engine_find(e, "m", 1);
    assert_false(d->active);
    assert_string_equal(ls_engine_type_name(e, d), "meter");
    assert_int_equal(d->timeout_ms, 1234);
    assert_int_equal(d->last_connect, 22);
    assert_int_equal(d->last_disconnect, 33);
    assert_int_equal(d->inactivity_alarm, 44);
    assert_int_equal(d->sessions, 2);
    assert_int_equal(ls_engine_next_wakeup(e), INT64_MAX); /* inactive: no timer */
    ls_engine_stats s;
    ls_engine_get_stats(e, &s);
    assert_int_equal(s.sessions, 2);
    assert_int_equal(s.devices, 1);
    /* A restored device is not dirty: nothing to write back. */
    assert_int_equal(ls_engine_drain_dirty(e, (ls_visit_cb)capture_cb, NULL), 0);
    /* Bad input. */
    ls_device_state bad = {.timeout_ms = -5};
    assert_int_equal(restore_as(e, "x", 1, &bad, LS_RESTART_GRACE, at(0, WALL0)), LS_EINVAL);
    assert_int_equal(restore_as(e, "", 0, &st, LS_RESTART_GRACE, at(0, WALL0)), LS_EBADID);
    assert_int_equal(c.n, 0);
    ls_engine_close(e);
}

static int visited;
static char visited_ids[16][LS_ID_BUF];
static void visit(void *ud, const ls_device *d)
{
    (void)ud;
    char buf[LS_ID_BUF];
    if (visited < 16)
        snprintf(visited_ids[visited], sizeof(visited_ids[0]), "%s", ls_device_id(d, buf));
    visited++;
}

static void test_dirty_tracking(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_now now = at(1000, WALL0);
    assert_int_equal(ls_engine_activity(e, "a", 1, 0, now), 0);
    assert_int_equal(ls_engine_activity(e, "a", 1, 0, now), 0);
    assert_int_equal(ls_engine_connect(e, "b", 1, now), 0);
    ls_device_config cfg = {.set_timeout = 1, .timeout_ms = 500};
    assert_int_equal(ls_engine_put(e, "c", 1, &cfg, now, NULL), 0);
    visited = 0;
    assert_int_equal(ls_engine_drain_dirty(e, visit, NULL), 3); /* a once, b, c */
    assert_int_equal(visited, 3);
    visited = 0;
    assert_int_equal(ls_engine_drain_dirty(e, visit, NULL), 0);
    /* A transition by the wheel marks the device too. */
    ls_engine_tick(e, at(1000 + 10000, WALL0 + 10000));
    visited = 0;
    assert_int_equal(ls_engine_drain_dirty(e, visit, NULL), 2); /* a and b expired */
    /* A deleted device is not visited; a re-created one in its slot is, once. */
    assert_int_equal(ls_engine_activity(e, "d", 1, 0, now), 0);
    assert_int_equal(ls_engine_delete(e, "d", 1), 0);
    assert_int_equal(ls_engine_activity(e, "f", 1, 0, now), 0);
    visited = 0;
    assert_int_equal(ls_engine_drain_dirty(e, visit, NULL), 1);
    assert_string_equal(visited_ids[0], "f");
    ls_engine_close(e);
}

/*
 * After a burst (every device dirty at once) a light drain gives the dirty
 * list's memory back, and the lists that follow, shorter or growing again,
 * still name every changed device exactly once.
 */
static void count_visit(void *ud, const ls_device *d)
{
    (void)d;
    (*(size_t *)ud)++;
}

static void test_dirty_list_shrinks_after_burst(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    ls_now now = at(1000, WALL0);
    enum { N = 300000 };
    char id[32];
    for (int i = 0; i < N; i++) {
        int len = snprintf(id, sizeof(id), "dev-%d", i);
        ls_device_state st = {.last_activity = WALL0};
        assert_int_equal(restore_as(e, id, (size_t)len, &st, LS_RESTART_GRACE, now), 0);
    }
    for (int round = 0; round < 3; round++) {
        int touch = round == 1 ? 10 : N; /* burst, light, burst again */
        for (int i = 0; i < touch; i++) {
            int len = snprintf(id, sizeof(id), "dev-%d", i);
            ls_engine_record(e, id, (size_t)len, WALL0 + round + 1, now);
        }
        size_t n = 0;
        assert_int_equal(ls_engine_drain_dirty(e, count_visit, &n), (size_t)touch);
        assert_int_equal(n, (size_t)touch);
        if (round == 0) assert_true(e->dirty.cap >= N);
        if (round == 1) assert_true(e->dirty.cap < N / 2); /* given back after a light drain */
    }
    for (int i = 0; i < N; i += 997) {
        int len = snprintf(id, sizeof(id), "dev-%d", i);
        assert_int_equal(ls_engine_find(e, id, (size_t)len)->last_activity, WALL0 + 3);
    }
    ls_engine_close(e);
}

/* The batch path restores exactly what one-by-one restores would, in a
 * pre-sized index, and reports each item's result. */
static void test_restore_batch_matches_single(void **state)
{
    (void)state;
    enum { N = 3000 };
    static ls_device_state items[N + 3];
    static char ids[N][16];
    static int rcs[N + 3];
    captured c1 = {0}, c2 = {0};
    ls_engine *one = make(&c1), *batch = make(&c2);
    ls_now now = at(1000, WALL0);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "dev-%d", i);
        items[i] = (ls_device_state){.id = ids[i],
                                     .id_len = strlen(ids[i]),
                                     .active = (uint8_t)(i % 3 != 0),
                                     .last_activity = WALL0 - i,
                                     .timeout_ms = i % 5 ? 0 : 1000 + i,
                                     .sessions = (uint32_t)(i % 2),
                                     .type = i % 7 ? NULL : "meter",
                                     .type_len = i % 7 ? 0 : 5};
    }
    items[N] = (ls_device_state){.id = "bad\x01id", .id_len = 6, .active = 1};
    items[N + 1] = (ls_device_state){.id = "tmo", .id_len = 3, .timeout_ms = -5};
    items[N + 2] = items[5]; /* a repeat replaces, as a single restore does */
    assert_int_equal(ls_engine_reserve(batch, N), 0);
    assert_int_equal(ls_engine_restore_batch(batch, items, N + 3, LS_RESTART_GRACE, now, rcs),
                     N + 1);
    assert_int_equal(rcs[N], LS_EBADID);
    assert_int_equal(rcs[N + 1], LS_EINVAL);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[N + 2], 0);
    for (int i = 0; i < N + 3; i++) {
        int rc = ls_engine_restore(one, &items[i], LS_RESTART_GRACE, now);
        assert_int_equal(rc, rcs[i]);
    }
    ls_engine_stats s1, s2;
    ls_engine_get_stats(one, &s1);
    ls_engine_get_stats(batch, &s2);
    assert_int_equal(s2.devices, N);
    assert_int_equal(s1.devices, s2.devices);
    assert_int_equal(s1.active, s2.active);
    assert_int_equal(s1.sessions, s2.sessions);
    for (int i = 0; i < N; i++) {
        const ls_device *a = ls_engine_find(one, ids[i], strlen(ids[i]));
        const ls_device *b = ls_engine_find(batch, ids[i], strlen(ids[i]));
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(a->active, b->active);
        assert_int_equal(a->last_activity, b->last_activity);
        assert_int_equal(a->timeout_ms, b->timeout_ms);
        assert_string_equal(ls_engine_type_name(one, a), ls_engine_type_name(batch, b));
        assert_int_equal(ls_engine_next_wakeup(one), ls_engine_next_wakeup(batch));
    }
    assert_int_equal(c1.n + c2.n, 0); /* restoring emits nothing */
    ls_engine_close(one);
    ls_engine_close(batch);
}

/* A restored record comes back whole from ls_engine_snapshot(): the one
 * record goes into an engine and out of it unchanged (what a restart and
 * the next commit of the device rely on). */
static void test_snapshot_gives_the_record_back(void **state)
{
    (void)state;
    captured c = {0};
    ls_engine *e = make(&c);
    const char *long_id = "a-device-id-longer-than-sixteen-bytes";
    ls_device_state recs[3] = {
        {.id = "plain", .id_len = 5, .last_activity = WALL0 - 5},
        {.id = long_id,
         .id_len = strlen(long_id),
         .type = "meter",
         .type_len = 5,
         .timeout_ms = 7000,
         .last_activity = WALL0 - 1,
         .last_connect = WALL0 - 2,
         .last_disconnect = WALL0 - 3,
         .inactivity_alarm = WALL0 - 4,
         .sessions = 2,
         .active = 1,
         .has_c8y = 1,
         .response_interval = -3},
        {.id = "c8y",
         .id_len = 3,
         .has_c8y = 1,
         .response_interval = 4,
         .active = 1,
         .last_activity = WALL0},
    };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ls_engine_restore(e, &recs[i], LS_RESTART_STRICT, at(0, WALL0)), 0);
        char idb[LS_ID_BUF];
        ls_device_state got;
        ls_availability av;
        const ls_device *d = ls_engine_find(e, recs[i].id, recs[i].id_len);
        ls_engine_snapshot(e, d, idb, &got, &av);
        const ls_device_state *w = &recs[i];
        assert_int_equal(got.id_len, w->id_len);
        assert_memory_equal(got.id, w->id, w->id_len);
        assert_int_equal(got.type_len, w->type_len);
        if (w->type)
            assert_memory_equal(got.type, w->type, w->type_len);
        else
            assert_null(got.type);
        assert_int_equal(got.timeout_ms, w->timeout_ms);
        assert_int_equal(got.last_activity, w->last_activity);
        assert_int_equal(got.last_connect, w->last_connect);
        assert_int_equal(got.last_disconnect, w->last_disconnect);
        assert_int_equal(got.inactivity_alarm, w->inactivity_alarm);
        assert_int_equal(got.sessions, w->sessions);
        assert_int_equal(got.active, w->active);
        assert_int_equal(got.has_c8y, w->has_c8y);
        assert_int_equal(got.response_interval, w->response_interval);
        ls_availability want;
        ls_engine_availability(e, d, &want);
        assert_int_equal(av.timeout_ms, want.timeout_ms);
        assert_string_equal(av.source, want.source);
        assert_int_equal(av.cls, want.cls);
    }
    ls_engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grace_holds_deadline_past_downtime),
        cmocka_unit_test(test_grace_keeps_later_old_deadline),
        cmocka_unit_test(test_grace_uses_restart_plus_timeout),
        cmocka_unit_test(test_strict_fires_passed_deadline_with_real_ts),
        cmocka_unit_test(test_grace_after_clock_step_back),
        cmocka_unit_test(test_strict_after_clock_step_back),
        cmocka_unit_test(test_strict_keeps_deadline_within_skew),
        cmocka_unit_test(test_restore_inactive_and_fields),
        cmocka_unit_test(test_dirty_tracking),
        cmocka_unit_test(test_dirty_list_shrinks_after_burst),
        cmocka_unit_test(test_restore_batch_matches_single),
        cmocka_unit_test(test_snapshot_gives_the_record_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
