/*
 * test_engine_source.c - source health gating in the engine.
 *
 * A fake clock drives the engine (mono and wall offset, so a mix-up shows).
 * Each test registers sources, feeds activities through them, holds and
 * releases them, and checks exactly which events fire and when: a held
 * source's devices never go inactive, a released source gives its devices
 * release + timeout, an ungated source or HTTP (source 0) changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

#define MONO0 1000LL
#define WALL0 1700000000000LL
#define TO 1000LL /* default timeout */
#define ID(s) (s), (sizeof(s) - 1)

typedef struct ev {
    ls_event_type type;
    char name[64]; /* device id or source name */
    int64_t ts, at;
    int dev; /* ev->dev was set */
} ev;

typedef struct fx {
    ls_engine *e;
    ev evs[256];
    int n;
} fx;

/* ls_engine_restore() of the record st under the id given. */
static int restore_as(ls_engine *e, const char *id, size_t len, const ls_device_state *st,
                      ls_restart_policy policy, ls_now now)
{
    ls_device_state r = *st;
    r.id = id;
    r.id_len = len;
    return ls_engine_restore(e, &r, policy, now);
}

static void cb(void *ud, const ls_event *e)
{
    fx *f = ud;
    if (f->n >= 256) return;
    ev *r = &f->evs[f->n++];
    r->type = e->type;
    r->ts = e->ts;
    r->at = e->detected_at;
    r->dev = e->dev != NULL;
    if (e->dev) {
        snprintf(r->name, sizeof(r->name), "%s", ls_device_id(e->dev, (char[LS_ID_BUF]){0}));
        assert_null(e->source);
    } else {
        assert_non_null(e->source);
        snprintf(r->name, sizeof(r->name), "%s", e->source);
    }
}

static ls_now at(int64_t t)
{
    ls_now n = {MONO0 + t, WALL0 + t};
    return n;
}

static fx *make(void)
{
    static fx f;
    memset(&f, 0, sizeof(f));
    ls_engine_config cfg = {.default_timeout_ms = TO, .max_clock_skew_ms = 5000, .seed = 3};
    assert_int_equal(ls_engine_new(&f.e, &cfg, cb, &f), 0);
    return &f;
}

static void act(fx *f, const char *id, unsigned src, int64_t t)
{
    ls_activity a = {.id = id, .len = (uint32_t)strlen(id), .source = (uint8_t)src};
    int rc = 99;
    assert_int_equal(ls_engine_activity_batch(f->e, &a, 1, at(t), &rc), 1);
    assert_int_equal(rc, 0);
}

/* Ticks every ms from `from` to `to` inclusive: a deadline is seen in its own ms. */
static void run(fx *f, int64_t from, int64_t to)
{
    for (int64_t t = from; t <= to; t++)
        ls_engine_tick(f->e, at(t));
}

static int count(const fx *f, ls_event_type type)
{
    int n = 0;
    for (int i = 0; i < f->n; i++)
        n += f->evs[i].type == type;
    return n;
}

static const ev *last(const fx *f, ls_event_type type)
{
    for (int i = f->n - 1; i >= 0; i--)
        if (f->evs[i].type == type) return &f->evs[i];
    return NULL;
}

static void test_add_validates(void **state)
{
    (void)state;
    fx *f = make();
    assert_int_equal(ls_engine_source_add(f->e, "", 1), LS_EINVAL);
    assert_int_equal(ls_engine_source_add(f->e, "0123456789012345678901234567890x", 1), LS_EINVAL);
    assert_int_equal(ls_engine_source_add(f->e, "bad\nname", 1), LS_EINVAL);
    for (int i = 1; i <= LS_SOURCE_MAX; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%d", i);
        assert_int_equal(ls_engine_source_add(f->e, name, 1), i);
    }
    assert_int_equal(ls_engine_source_add(f->e, "one-too-many", 1), LS_EFULL);
    assert_string_equal(ls_engine_source_name(f->e, 3), "s3");
    assert_null(ls_engine_source_name(f->e, 0));
    assert_null(ls_engine_source_name(f->e, LS_SOURCE_MAX + 1));
    assert_int_equal(ls_engine_source_down(f->e, 0, at(0)), LS_EINVAL);
    assert_int_equal(ls_engine_source_up(f->e, LS_SOURCE_MAX + 1, at(0)), LS_EINVAL);
    assert_int_equal(ls_engine_source_is_up(f->e, 99), LS_EINVAL);
    assert_int_equal(f->n, 0); /* registering announces nothing */
    ls_engine_close(f->e);
}

/* unknown -> up -> up (silent) -> down -> down (silent) -> up; unknown -> down. */
static void test_transitions_emit_once(void **state)
{
    (void)state;
    fx *f = make();
    int a = ls_engine_source_add(f->e, "mqtt", 1), b = ls_engine_source_add(f->e, "other", 1);
    assert_int_equal(ls_engine_source_is_up(f->e, (unsigned)a), 0);
    ls_engine_source_up(f->e, (unsigned)a, at(1));
    ls_engine_source_up(f->e, (unsigned)a, at(2));
    ls_engine_source_down(f->e, (unsigned)a, at(3));
    ls_engine_source_down(f->e, (unsigned)a, at(4));
    ls_engine_source_up(f->e, (unsigned)a, at(5));
    ls_engine_source_down(f->e, (unsigned)b, at(6));
    assert_int_equal(f->n, 4);
    ls_event_type want[] = {LS_EV_SOURCE_UP, LS_EV_SOURCE_DOWN, LS_EV_SOURCE_UP, LS_EV_SOURCE_DOWN};
    int64_t when[] = {1, 3, 5, 6};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(f->evs[i].type, want[i]);
        assert_false(f->evs[i].dev);
        assert_int_equal(f->evs[i].ts, WALL0 + when[i]);
        assert_int_equal(f->evs[i].at, WALL0 + when[i]);
    }
    assert_string_equal(f->evs[0].name, "mqtt");
    assert_string_equal(f->evs[3].name, "other");
    assert_string_equal(ls_event_name(LS_EV_SOURCE_DOWN), "SOURCE_DOWN");
    assert_string_equal(ls_event_name(LS_EV_SOURCE_UP), "SOURCE_UP");
    ls_engine_stats st;
    ls_engine_get_stats(f->e, &st);
    assert_int_equal(st.events[LS_EV_SOURCE_UP], 2);
    assert_int_equal(st.events[LS_EV_SOURCE_DOWN], 2);
    ls_engine_close(f->e);
}

/* The core property: an outage far longer than the timeout fires nothing;
 * after release the device gets exactly release + timeout. */
static void test_held_then_grace(void **state)
{
    (void)state;
    fx *f = make();
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    ls_engine_source_up(f->e, s, at(0));
    act(f, "dev", s, 100);
    ls_engine_source_down(f->e, s, at(500));
    run(f, 100, 20000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    const ls_device *d = ls_engine_find(f->e, ID("dev"));
    assert_true(d->active);
    assert_int_equal(ls_device_source(d), s);

    ls_engine_source_up(f->e, s, at(20000));
    run(f, 20001, 20999);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 21000, 21000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    const ev *e = last(f, LS_EV_INACTIVITY);
    assert_int_equal(e->at, WALL0 + 21000);    /* detected at release + timeout */
    assert_int_equal(e->ts, WALL0 + 100 + TO); /* reported: the real deadline */
    ls_engine_close(f->e);
}

/* Heard after the release: its own, later deadline applies. */
static void test_heard_after_release(void **state)
{
    (void)state;
    fx *f = make();
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    ls_engine_source_up(f->e, s, at(0));
    act(f, "dev", s, 0);
    ls_engine_source_down(f->e, s, at(10));
    run(f, 0, 5000);
    ls_engine_source_up(f->e, s, at(5000));
    act(f, "dev", s, 5600);
    run(f, 5001, 6599);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 6600, 6600);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    assert_int_equal(last(f, LS_EV_INACTIVITY)->ts, WALL0 + 6600);
    ls_engine_close(f->e);
}

/* A short blip does not stretch a deadline that was later anyway. */
static void test_short_outage_keeps_later_deadline(void **state)
{
    (void)state;
    fx *f = make();
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    ls_engine_source_up(f->e, s, at(0));
    ls_device_config c = {.set_timeout = 1, .timeout_ms = 10000};
    assert_int_equal(ls_engine_put(f->e, ID("slow"), &c, at(0), NULL), 0);
    act(f, "slow", s, 0);
    ls_engine_source_down(f->e, s, at(1000));
    ls_engine_source_up(f->e, s, at(2000)); /* release + 10 s = 12 s > 10 s? yes: grace wins */
    run(f, 0, 11999);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 12000, 12000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);

    /* A blip before the device's last activity changes nothing. */
    ls_engine_source_down(f->e, s, at(12001));
    ls_engine_source_up(f->e, s, at(12002));
    act(f, "slow", s, 13000);
    run(f, 12001, 22999);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    run(f, 23000, 23000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 2);
    ls_engine_close(f->e);
}

/* HTTP devices (source 0) and devices of an ungated source are never held. */
static void test_ungated_and_http(void **state)
{
    (void)state;
    fx *f = make();
    unsigned g = (unsigned)ls_engine_source_add(f->e, "gated", 1);
    unsigned u = (unsigned)ls_engine_source_add(f->e, "free", 0);
    ls_engine_source_up(f->e, g, at(0));
    ls_engine_source_up(f->e, u, at(0));
    act(f, "via-free", u, 0);
    assert_int_equal(ls_engine_activity(f->e, ID("via-http"), 0, at(0)), 0);
    act(f, "via-gated", g, 0);
    ls_engine_source_down(f->e, u, at(10));
    ls_engine_source_down(f->e, g, at(10));
    run(f, 0, 999);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 1000, 1000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 2);
    assert_true(ls_engine_find(f->e, ID("via-gated"))->active);
    assert_false(ls_engine_find(f->e, ID("via-free"))->active);
    assert_false(ls_engine_find(f->e, ID("via-http"))->active);
    ls_engine_close(f->e);
}

/* A device last heard over HTTP is no longer held by its old source. */
static void test_source_follows_last_activity(void **state)
{
    (void)state;
    fx *f = make();
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    ls_engine_source_up(f->e, s, at(0));
    act(f, "d", s, 0);
    assert_int_equal(ls_engine_activity(f->e, ID("d"), 0, at(100)), 0);
    assert_int_equal(ls_device_source(ls_engine_find(f->e, ID("d"))), 0);
    ls_engine_source_down(f->e, s, at(200));
    run(f, 0, 1100);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);

    /* and back: a connect through the source attributes it again */
    assert_int_equal(ls_engine_connect_src(f->e, ID("d"), s, at(2000)), 0);
    assert_int_equal(ls_device_source(ls_engine_find(f->e, ID("d"))), s);
    run(f, 1101, 10000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    assert_int_equal(ls_engine_connect_src(f->e, ID("d"), LS_SOURCE_MAX + 1, at(2000)), LS_EINVAL);
    ls_engine_close(f->e);
}

/* A new source is held before its first report: devices heard through it
 * while it connects do not expire. */
static void test_unknown_is_held(void **state)
{
    (void)state;
    fx *f = make();
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    act(f, "d", s, 0);
    run(f, 0, 5000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    ls_engine_source_up(f->e, s, at(5000));
    run(f, 5001, 6000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    assert_int_equal(last(f, LS_EV_INACTIVITY)->at, WALL0 + 6000);
    ls_engine_close(f->e);
}

/* Shortening a timeout while held does not fire; after release it does, on time. */
static void test_put_while_held(void **state)
{
    (void)state;
    fx *f = make();
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    ls_engine_source_up(f->e, s, at(0));
    act(f, "d", s, 0);
    ls_engine_source_down(f->e, s, at(100));
    ls_device_config c = {.set_timeout = 1, .timeout_ms = 50};
    assert_int_equal(ls_engine_put(f->e, ID("d"), &c, at(500), NULL), 0);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 500, 3000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    ls_engine_source_up(f->e, s, at(3000));
    run(f, 3001, 3049);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 3050, 3050);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    /* Released: shortening now fires at once, as without gating. */
    act(f, "d", s, 4000);
    c.timeout_ms = 10;
    assert_int_equal(ls_engine_put(f->e, ID("d"), &c, at(4020), NULL), 0);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 2);
    ls_engine_close(f->e);
}

/* Restored under grace: held until every gated source is up, then
 * the last release + timeout. */
static void test_restored_waits_for_all_sources(void **state)
{
    (void)state;
    fx *f = make();
    unsigned a = (unsigned)ls_engine_source_add(f->e, "a", 1);
    unsigned b = (unsigned)ls_engine_source_add(f->e, "b", 1);
    (void)ls_engine_source_add(f->e, "ungated", 0); /* never up: does not matter */
    ls_device_state st = {.active = 1, .last_activity = WALL0 - 60000};
    assert_int_equal(restore_as(f->e, ID("r"), &st, LS_RESTART_GRACE, at(0)), 0);
    assert_int_equal(ls_device_source(ls_engine_find(f->e, ID("r"))), LS_SOURCE_RESTORED);
    ls_engine_source_up(f->e, a, at(100));
    run(f, 0, 4000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    ls_engine_source_up(f->e, b, at(4000));
    run(f, 4001, 4999);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 5000, 5000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    assert_int_equal(last(f, LS_EV_INACTIVITY)->ts, WALL0 - 60000 + TO);
    ls_engine_close(f->e);
}

/* The batched restore of start-up attributes devices the same way. */
static void test_restore_batch_attributes(void **state)
{
    (void)state;
    fx *f = make();
    unsigned a = (unsigned)ls_engine_source_add(f->e, "a", 1);
    ls_device_state it[2] = {{.id = "r1", .id_len = 2, .active = 1, .last_activity = WALL0 - 1000},
                             {.id = "r2", .id_len = 2, .active = 0, .last_activity = WALL0 - 1000}};
    assert_int_equal(ls_engine_restore_batch(f->e, it, 2, LS_RESTART_GRACE, at(0), NULL), 2);
    assert_int_equal(ls_device_source(ls_engine_find(f->e, ID("r1"))), LS_SOURCE_RESTORED);
    run(f, 0, 3000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    ls_engine_source_up(f->e, a, at(3000));
    run(f, 3001, 4000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    assert_int_equal(last(f, LS_EV_INACTIVITY)->at, WALL0 + 4000);
    assert_int_equal(ls_engine_restore_batch(f->e, it, 1, LS_RESTART_STRICT, at(5000), NULL), 1);
    assert_int_equal(ls_device_source(ls_engine_find(f->e, ID("r1"))), 0);
    ls_engine_close(f->e);
}

/* Strict restores are not attributed to any source: their deadlines stand. */
static void test_restored_strict_not_held(void **state)
{
    (void)state;
    fx *f = make();
    (void)ls_engine_source_add(f->e, "a", 1);
    ls_device_state st = {.active = 1, .last_activity = WALL0 - 60000};
    assert_int_equal(restore_as(f->e, ID("r"), &st, LS_RESTART_STRICT, at(0)), 0);
    assert_int_equal(ls_device_source(ls_engine_find(f->e, ID("r"))), 0);
    run(f, 0, 1);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    ls_engine_close(f->e);
}

/* Without any source the restored pseudo-source holds nothing. */
static void test_restored_without_sources(void **state)
{
    (void)state;
    fx *f = make();
    ls_device_state st = {.active = 1, .last_activity = WALL0 - 60000};
    assert_int_equal(restore_as(f->e, ID("r"), &st, LS_RESTART_GRACE, at(0)), 0);
    run(f, 0, 999);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    run(f, 1000, 1000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 1);
    ls_engine_close(f->e);
}

/* Many devices, a long hold: no event, and after release each fires once,
 * at release + its own timeout. */
static void test_many_devices(void **state)
{
    (void)state;
    fx *f = make();
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    ls_engine_source_up(f->e, s, at(0));
    char id[32];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        ls_device_config c = {.set_timeout = 1, .timeout_ms = 100 + i * 10};
        assert_int_equal(ls_engine_put(f->e, id, strlen(id), &c, at(0), NULL), 0);
        act(f, id, s, i);
    }
    ls_engine_source_down(f->e, s, at(50));
    run(f, 0, 30000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    ls_engine_source_up(f->e, s, at(30000));
    run(f, 30001, 32000);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 100);
    for (int i = 0; i < f->n; i++) {
        if (f->evs[i].type != LS_EV_INACTIVITY) continue;
        int k;
        assert_int_equal(sscanf(f->evs[i].name, "dev-%d", &k), 1);
        assert_int_equal(f->evs[i].at, WALL0 + 30000 + 100 + k * 10);
    }
    ls_engine_close(f->e);
}

/* Session expiry (state.session_timeout) is held like inactivity. */
static void test_sessions_held(void **state)
{
    (void)state;
    fx *f = make();
    ls_engine_close(f->e);
    ls_engine_config cfg = {.default_timeout_ms = 60000,
                            .max_clock_skew_ms = 5000,
                            .seed = 3,
                            .session_timeout_ms = 1000};
    assert_int_equal(ls_engine_new(&f->e, &cfg, cb, f), 0);
    unsigned s = (unsigned)ls_engine_source_add(f->e, "mqtt", 1);
    ls_engine_source_up(f->e, s, at(0));
    assert_int_equal(ls_engine_connect_src(f->e, ID("d"), s, at(0)), 0);
    ls_engine_source_down(f->e, s, at(100));
    run(f, 0, 5000);
    assert_int_equal(count(f, LS_EV_DISCONNECT), 0);
    assert_int_equal(ls_engine_find(f->e, ID("d"))->sessions, 1);
    ls_engine_source_up(f->e, s, at(5000));
    run(f, 5001, 5999);
    assert_int_equal(count(f, LS_EV_DISCONNECT), 0);
    run(f, 6000, 6000);
    assert_int_equal(count(f, LS_EV_DISCONNECT), 1);
    assert_int_equal(count(f, LS_EV_INACTIVITY), 0);
    ls_engine_close(f->e);
}

static void test_batch_rejects_bad_source(void **state)
{
    (void)state;
    fx *f = make();
    ls_activity a[2] = {{.id = "x", .len = 1, .source = LS_SOURCE_MAX + 1}, {.id = "y", .len = 1}};
    int rc[2];
    assert_int_equal(ls_engine_activity_batch(f->e, a, 2, at(0), rc), 1);
    assert_int_equal(rc[0], LS_EINVAL);
    assert_int_equal(rc[1], 0);
    assert_null(ls_engine_find(f->e, ID("x")));
    ls_engine_close(f->e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_validates),
        cmocka_unit_test(test_transitions_emit_once),
        cmocka_unit_test(test_held_then_grace),
        cmocka_unit_test(test_heard_after_release),
        cmocka_unit_test(test_short_outage_keeps_later_deadline),
        cmocka_unit_test(test_ungated_and_http),
        cmocka_unit_test(test_source_follows_last_activity),
        cmocka_unit_test(test_unknown_is_held),
        cmocka_unit_test(test_put_while_held),
        cmocka_unit_test(test_restored_waits_for_all_sources),
        cmocka_unit_test(test_restored_strict_not_held),
        cmocka_unit_test(test_restore_batch_attributes),
        cmocka_unit_test(test_restored_without_sources),
        cmocka_unit_test(test_many_devices),
        cmocka_unit_test(test_sessions_held),
        cmocka_unit_test(test_batch_rejects_bad_source),
    };
    return cmocka_run_group_tests_name("engine_source", tests, NULL, NULL);
}
