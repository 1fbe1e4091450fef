/*
 * test_availability.c - unit tests of the engine's availability rules:
 * the timeout resolution (own inactivityTimeout > own
 * c8y_RequiredAvailability > type > default, state.monitor_by_default),
 * maintenance, device types and their re-evaluation (only the type's own
 * devices are visited), the availability counters behind /stats (checked
 * against a recount after random operations), the class-change callback,
 * record-only activities and session inactivity expiry.
 *
 * Fake clock as in test_engine.c: mono starts at 1000, wall at
 * 1700000000000, so a mix-up of the two shows.
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
#define MIN 60000LL

typedef struct rec {
    ls_event_type type;
    char id[64];
    int64_t ts, at;
    int active;
    uint32_t sessions;
} rec;

typedef struct chg {
    char id[64];
    ls_avail old_cls, new_cls;
    int was_active;
} chg;

typedef struct fx {
    ls_engine *e;
    ls_now now;
    rec ev[256];
    int n;
    chg ch[64];
    int nch;
} fx;

static void event_cb(void *ud, const ls_event *ev)
{
    fx *f = ud;
    if (f->n >= 256) return;
    rec *r = &f->ev[f->n++];
    r->type = ev->type;
    snprintf(r->id, sizeof(r->id), "%s", ls_device_id(ev->dev, (char[LS_ID_BUF]){0}));
    r->ts = ev->ts;
    r->at = ev->detected_at;
    r->active = ev->dev->active;
    r->sessions = ev->dev->sessions;
}

static void avail_cb(void *ud, const ls_device *d, ls_avail old, int was_active, ls_now now)
{
    fx *f = ud;
    (void)now;
    if (f->nch >= 64) return;
    chg *c = &f->ch[f->nch++];
    snprintf(c->id, sizeof(c->id), "%s", ls_device_id(d, (char[LS_ID_BUF]){0}));
    c->old_cls = old;
    c->new_cls = ls_device_avail(d);
    c->was_active = was_active;
}

static fx *fx_new(int64_t def, int64_t grace, int unmonitored, int64_t session_ms)
{
    fx *f = calloc(1, sizeof(*f));
    ls_engine_config cfg = {.default_timeout_ms = def,
                            .max_clock_skew_ms = 5000,
                            .seed = 99,
                            .grace_ms = grace,
                            .unmonitored_default = unmonitored,
                            .session_timeout_ms = session_ms};
    f->now = (ls_now){MONO0, WALL0};
    assert_int_equal(ls_engine_new(&f->e, &cfg, event_cb, f), 0);
    ls_engine_set_avail_cb(f->e, avail_cb, f);
    return f;
}

static void fx_free(fx *f)
{
    ls_engine_close(f->e);
    free(f);
}

static void at(fx *f, int64_t t)
{
    f->now = (ls_now){MONO0 + t, WALL0 + t};
}

static void tick(fx *f)
{
    ls_engine_tick(f->e, f->now);
}

static void act(fx *f, const char *id)
{
    assert_int_equal(ls_engine_activity(f->e, id, strlen(id), 0, f->now), 0);
}

static const ls_device *dev(fx *f, const char *id)
{
    const ls_device *d = ls_engine_find(f->e, id, strlen(id));
    assert_non_null(d);
    return d;
}

static void put(fx *f, const char *id, const ls_device_config *c)
{
    assert_int_equal(ls_engine_put(f->e, id, strlen(id), c, f->now, NULL), 0);
}

static void put_c8y(fx *f, const char *id, int ri)
{
    ls_device_config c = {.set_c8y = 1, .has_c8y = 1, .response_interval = ri};
    put(f, id, &c);
}

static void put_type_of(fx *f, const char *id, const char *type)
{
    ls_device_config c = {.type = type, .type_len = strlen(type)};
    put(f, id, &c);
}

static void type_put(fx *f, const char *name, ls_type_config c)
{
    assert_int_equal(ls_engine_type_put(f->e, name, strlen(name), &c, f->now, NULL), 0);
}

static int count_type(fx *f, ls_event_type t, const char *id)
{
    int n = 0;
    for (int i = 0; i < f->n; i++)
        if (f->ev[i].type == t && (!id || !strcmp(f->ev[i].id, id))) n++;
    return n;
}

static const char *source(fx *f, const char *id, int64_t *timeout)
{
    const char *src;
    *timeout = ls_engine_timeout(f->e, dev(f, id), &src);
    return src;
}

static ls_type_config tc(void)
{
    return (ls_type_config){.monitored = -1, .severity = LS_SEV_MAJOR};
}

/* ls_engine_restore() of the record st under the id given. */
static int restore_as(ls_engine *e, const char *id, size_t len, const ls_device_state *st,
                      ls_restart_policy policy, ls_now now)
{
    ls_device_state r = *st;
    r.id = id;
    r.id_len = len;
    return ls_engine_restore(e, &r, policy, now);
}

/* ---- resolution -------------------------------------------------------- */

static void test_precedence(void **state)
{
    (void)state;
    fx *f = fx_new(600000, 180000, 0, 0);
    int64_t t;
    act(f, "d");
    assert_string_equal(source(f, "d", &t), "default");
    assert_int_equal(t, 600000);

    put_type_of(f, "d", "meter");
    ls_type_config c = tc();
    c.response_interval = 2;
    c.has_ri = 1;
    type_put(f, "meter", c);
    assert_string_equal(source(f, "d", &t), "type");
    assert_int_equal(t, 2 * MIN + 180000); /* type responseInterval + grace */

    c.timeout_ms = 45000; /* type inactivityTimeout beats type responseInterval */
    type_put(f, "meter", c);
    assert_string_equal(source(f, "d", &t), "type");
    assert_int_equal(t, 45000);

    put_c8y(f, "d", 5); /* own c8y beats the type */
    assert_string_equal(source(f, "d", &t), "c8y_RequiredAvailability");
    assert_int_equal(t, 5 * MIN + 180000);

    ls_device_config own = {.set_timeout = 1, .timeout_ms = 1234}; /* own timeout beats all */
    put(f, "d", &own);
    assert_string_equal(source(f, "d", &t), "device");
    assert_int_equal(t, 1234);

    own.timeout_ms = 0; /* null: back to c8y */
    put(f, "d", &own);
    assert_string_equal(source(f, "d", &t), "c8y_RequiredAvailability");
    ls_device_config noc8y = {.set_c8y = 1, .has_c8y = 0}; /* remove c8y: back to type */
    put(f, "d", &noc8y);
    assert_int_equal(source(f, "d", &t)[0], 't');
    assert_int_equal(t, 45000);
    assert_int_equal(ls_engine_type_delete(f->e, "meter", 5, f->now), 0); /* back to default */
    assert_string_equal(source(f, "d", &t), "default");
    assert_int_equal(t, 600000);
    assert_int_equal(ls_engine_type_delete(f->e, "meter", 5, f->now), LS_ENOTFOUND);
    assert_int_equal(ls_engine_type_delete(f->e, "never", 5, f->now), LS_ENOTFOUND);
    fx_free(f);
}

static void test_monitored_flags(void **state)
{
    (void)state;
    fx *f = fx_new(600000, 180000, 1, 0); /* state.monitor_by_default = false */
    int64_t t;
    act(f, "plain");
    assert_string_equal(source(f, "plain", &t), "default");
    assert_int_equal(t, LS_TIMEOUT_NONE);
    assert_int_equal(ls_device_avail(dev(f, "plain")), LS_AVAIL_UNMONITORED);
    /* Unmonitored: active on its first activity, and never times out. */
    assert_true(dev(f, "plain")->active);
    at(f, 100LL * 24 * 3600 * 1000);
    tick(f);
    assert_true(dev(f, "plain")->active);
    assert_int_equal(count_type(f, LS_EV_INACTIVITY, NULL), 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);

    /* A type with monitored = true gets the default timeout. */
    put_type_of(f, "plain", "watched");
    ls_type_config c = tc();
    c.monitored = 1;
    type_put(f, "watched", c);
    assert_int_equal(ls_device_avail(dev(f, "plain")), LS_AVAIL_MONITORED);
    assert_int_equal(source(f, "plain", &t)[0], 'd');
    assert_int_equal(t, 600000);
    /* Its deadline passed long ago: the re-evaluation fires it now. */
    assert_false(dev(f, "plain")->active);
    assert_int_equal(count_type(f, LS_EV_INACTIVITY, "plain"), 1);

    /* monitored = false beats the type's timeouts. */
    c.monitored = 0;
    c.timeout_ms = 5000;
    type_put(f, "watched", c);
    assert_int_equal(ls_device_avail(dev(f, "plain")), LS_AVAIL_UNMONITORED);
    assert_string_equal(source(f, "plain", &t), "type");
    assert_int_equal(t, LS_TIMEOUT_NONE);
    /* ... but not the device's own timeout. */
    ls_device_config own = {.set_timeout = 1, .timeout_ms = 777};
    put(f, "plain", &own);
    assert_int_equal(ls_device_avail(dev(f, "plain")), LS_AVAIL_MONITORED);
    fx_free(f);
}

static void test_c8y_only_device(void **state)
{
    (void)state;
    fx *f = fx_new(600000, 180000, 1, 0);
    /* Cumulocity: unavailable after responseInterval minutes + 180 s without a message. */
    put_c8y(f, "c", 1);
    assert_int_equal(ls_device_avail(dev(f, "c")), LS_AVAIL_MONITORED);
    act(f, "c");
    at(f, MIN + 180000 - 1);
    tick(f);
    assert_true(dev(f, "c")->active);
    at(f, MIN + 180000);
    tick(f);
    assert_false(dev(f, "c")->active);
    assert_int_equal(count_type(f, LS_EV_INACTIVITY, "c"), 1);
    assert_int_equal(f->ev[f->n - 1].ts, WALL0 + MIN + 180000);
    fx_free(f);
}

static void test_maintenance(void **state)
{
    (void)state;
    fx *f = fx_new(10000, 0, 0, 0);
    put_c8y(f, "m", 1);
    act(f, "m");
    assert_int_equal(ls_device_avail(dev(f, "m")), LS_AVAIL_MONITORED);
    f->nch = 0;
    put_c8y(f, "m", 0); /* maintenance: no timeout */
    assert_int_equal(ls_device_avail(dev(f, "m")), LS_AVAIL_MAINTENANCE);
    assert_int_equal(f->nch, 1);
    assert_int_equal(f->ch[0].old_cls, LS_AVAIL_MONITORED);
    assert_int_equal(f->ch[0].was_active, 1);
    int64_t t;
    assert_string_equal(source(f, "m", &t), "c8y_RequiredAvailability");
    assert_int_equal(t, LS_TIMEOUT_NONE);
    at(f, 10 * MIN);
    tick(f);
    assert_true(dev(f, "m")->active); /* never times out in maintenance */
    assert_int_equal(count_type(f, LS_EV_INACTIVITY, NULL), 0);

    /* Negative values are maintenance too; an own timeout still times out. */
    put_c8y(f, "m", -32768);
    ls_device_config own = {.set_timeout = 1, .timeout_ms = 1000};
    put(f, "m", &own);
    assert_int_equal(ls_device_avail(dev(f, "m")), LS_AVAIL_MAINTENANCE);
    assert_false(dev(f, "m")->active); /* silent 10 min > 1 s: inactive now */
    assert_int_equal(count_type(f, LS_EV_INACTIVITY, "m"), 1);

    /* Leaving maintenance while inactive: the callback says so. */
    own.timeout_ms = 0;
    put(f, "m", &own);
    f->nch = 0;
    put_c8y(f, "m", 1);
    assert_int_equal(ls_device_avail(dev(f, "m")), LS_AVAIL_MONITORED);
    assert_int_equal(f->nch, 1);
    assert_int_equal(f->ch[0].old_cls, LS_AVAIL_MAINTENANCE);
    assert_int_equal(f->ch[0].was_active, 0);

    /* Type-level maintenance applies to devices without their own c8y. */
    put_type_of(f, "x", "repair");
    ls_type_config c = tc();
    c.has_ri = 1;
    c.response_interval = 0;
    type_put(f, "repair", c);
    assert_int_equal(ls_device_avail(dev(f, "x")), LS_AVAIL_MAINTENANCE);
    put_c8y(f, "x", 3); /* its own responseInterval decides */
    assert_int_equal(ls_device_avail(dev(f, "x")), LS_AVAIL_MONITORED);
    fx_free(f);
}

static void test_invalid_settings(void **state)
{
    (void)state;
    fx *f = fx_new(10000, 0, 0, 0);
    ls_device_config c = {.set_c8y = 1, .has_c8y = 1, .response_interval = 32768};
    assert_int_equal(ls_engine_put(f->e, "d", 1, &c, f->now, NULL), LS_EINVAL);
    c.response_interval = -32769;
    assert_int_equal(ls_engine_put(f->e, "d", 1, &c, f->now, NULL), LS_EINVAL);
    assert_null(ls_engine_find(f->e, "d", 1));
    ls_type_config t = tc();
    t.severity = LS_SEV__COUNT;
    assert_int_equal(ls_engine_type_put(f->e, "t", 1, &t, f->now, NULL), LS_EINVAL);
    t = tc();
    t.monitored = 2;
    assert_int_equal(ls_engine_type_put(f->e, "t", 1, &t, f->now, NULL), LS_EINVAL);
    t = tc();
    t.timeout_ms = -1;
    assert_int_equal(ls_engine_type_put(f->e, "t", 1, &t, f->now, NULL), LS_EINVAL);
    t = tc();
    assert_int_equal(ls_engine_type_put(f->e, "", 0, &t, f->now, NULL), LS_EINVAL);
    assert_int_equal(ls_engine_type_put(f->e, "a\nb", 3, &t, f->now, NULL), LS_EINVAL);
    ls_type_info info;
    assert_int_equal(ls_engine_type_get(f->e, "t", 1, &info), LS_ENOTFOUND);
    int created = 0;
    assert_int_equal(ls_engine_type_put(f->e, "t", 1, &t, f->now, &created), 0);
    assert_int_equal(created, 1);
    assert_int_equal(ls_engine_type_put(f->e, "t", 1, &t, f->now, &created), 0);
    assert_int_equal(created, 0);
    assert_int_equal(ls_engine_type_get(f->e, "t", 1, &info), 0);
    assert_true(info.configured);
    fx_free(f);
}

/* ---- types: re-evaluation -------------------------------------------- */

static void test_type_change_reevaluates_its_devices_only(void **state)
{
    (void)state;
    fx *f = fx_new(60000, 0, 0, 0);
    char id[32];
    /* 2000 devices of the default type, 10 of "meter" (3 of them moved away
     * and back, 2 deleted): the walk visits the type's live devices only. */
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "plain-%d", i);
        act(f, id);
    }
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof(id), "m-%d", i);
        act(f, id);
        put_type_of(f, id, "meter");
    }
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "m-%d", i);
        put_type_of(f, id, "other");
        put_type_of(f, id, "meter");
    }
    assert_int_equal(ls_engine_delete(f->e, "m-10", 4), 0);
    assert_int_equal(ls_engine_delete(f->e, "m-11", 4), 0);
    at(f, 5000);
    act(f, "m-5"); /* heard again at 5 s */
    ls_engine_stats before, after;
    ls_engine_get_stats(f->e, &before);
    f->n = 0;
    ls_type_config c = tc();
    c.timeout_ms = 3000; /* shorter than the 5 s of silence of the others */
    type_put(f, "meter", c);
    ls_engine_get_stats(f->e, &after);
    assert_int_equal(after.type_visits - before.type_visits, 10);
    assert_int_equal(count_type(f, LS_EV_INACTIVITY, NULL), 9); /* all but m-5, at once */
    for (int i = 0; i < f->n; i++)
        assert_int_equal(f->ev[i].ts, WALL0 + 3000);
    assert_true(dev(f, "m-5")->active);
    assert_true(dev(f, "plain-7")->active);
    /* m-5 goes at 5 s + 3 s, not at its old deadline. */
    at(f, 7999);
    tick(f);
    assert_true(dev(f, "m-5")->active);
    at(f, 8000);
    tick(f);
    assert_false(dev(f, "m-5")->active);
    /* Lengthening moves deadlines out: nothing at the old one. */
    act(f, "m-5");
    c.timeout_ms = 20000;
    type_put(f, "meter", c);
    at(f, 8000 + 3000);
    tick(f);
    assert_true(dev(f, "m-5")->active);
    at(f, 8000 + 20000);
    tick(f);
    assert_false(dev(f, "m-5")->active);
    ls_type_info info;
    assert_int_equal(ls_engine_type_get(f->e, "meter", 5, &info), 0);
    assert_int_equal(info.devices, 10);
    assert_int_equal(info.active, 0);
    fx_free(f);
}

static void test_default_type_walk(void **state)
{
    (void)state;
    fx *f = fx_new(60000, 0, 0, 0);
    act(f, "a");
    act(f, "b");
    put_type_of(f, "b", "other");
    at(f, 2000);
    ls_type_config c = tc();
    c.timeout_ms = 1000;
    type_put(f, "default", c);
    assert_false(dev(f, "a")->active);
    assert_true(dev(f, "b")->active);
    int64_t t;
    assert_string_equal(source(f, "a", &t), "type");
    fx_free(f);
}

/* Many devices churning between types keep the arrays within bounds and the
 * walks exact: each device is refreshed once, whatever its history. */
static void test_type_churn(void **state)
{
    (void)state;
    fx *f = fx_new(60000, 0, 0, 0);
    char id[32];
    const char *types[] = {"ta", "tb", "tc"};
    srand(7);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 300; i++) {
            snprintf(id, sizeof(id), "d-%d", rand() % 200);
            if (rand() % 10 == 0)
                ls_engine_delete(f->e, id, strlen(id));
            else
                put_type_of(f, id, types[rand() % 3]);
        }
    }
    for (int k = 0; k < 3; k++) {
        ls_type_info info;
        assert_int_equal(ls_engine_type_get(f->e, types[k], 2, &info), 0);
        ls_engine_stats before, after;
        ls_engine_get_stats(f->e, &before);
        ls_type_config c = tc();
        c.timeout_ms = 1000 + k;
        type_put(f, types[k], c);
        ls_engine_get_stats(f->e, &after);
        assert_int_equal(after.type_visits - before.type_visits, info.devices);
    }
    fx_free(f);
}

/* ---- counters -------------------------------------------------------- */

typedef struct recount {
    uint64_t avail[LS_AVAIL__COUNT], active[LS_AVAIL__COUNT], connected[LS_AVAIL__COUNT];
    uint64_t devices, act, sessions;
    fx *f;
    int64_t def, grace; /* the fixture's configuration, for the oracle */
} recount;

/* The timeout a device without its own gets from type t: the resolution
 * rules written out again, independently of types.c. */
static int64_t oracle_type_timeout(const ls_type_info *t, int64_t def, int64_t grace)
{
    const ls_type_config *c = &t->cfg;
    if (!t->configured) return def;
    if (c->monitored == 0) return LS_TIMEOUT_NONE;
    if (c->timeout_ms) return c->timeout_ms;
    if (c->has_ri)
        return c->response_interval > 0 ? c->response_interval * MIN + grace : LS_TIMEOUT_NONE;
    return def;
}

static void recount_cb(void *ud, const ls_device *d)
{
    recount *r = ud;
    ls_avail c = ls_device_avail(d);
    ls_availability av;
    ls_engine_availability(r->f->e, d, &av);
    if (!(d->flags & LS_DEV_OWN_TIMEOUT)) {
        int64_t want;
        if (av.has_c8y) {
            want =
                av.response_interval > 0 ? av.response_interval * MIN + r->grace : LS_TIMEOUT_NONE;
        } else {
            ls_type_info t;
            const char *name = ls_engine_type_name(r->f->e, d);
            assert_int_equal(ls_engine_type_get(r->f->e, name, strlen(name), &t), 0);
            want = oracle_type_timeout(&t, r->def, r->grace);
        }
        assert_int_equal(av.timeout_ms, want);
    }
    /* The class, from the same rules. */
    int maint;
    if (av.has_c8y) {
        maint = av.response_interval <= 0;
    } else {
        ls_type_info t;
        const char *name = ls_engine_type_name(r->f->e, d);
        ls_engine_type_get(r->f->e, name, strlen(name), &t);
        maint =
            t.configured && t.cfg.monitored != 0 && t.cfg.has_ri && t.cfg.response_interval <= 0;
    }
    assert_int_equal(c, maint               ? LS_AVAIL_MAINTENANCE
                        : av.timeout_ms > 0 ? LS_AVAIL_MONITORED
                                            : LS_AVAIL_UNMONITORED);
    r->avail[c]++;
    r->devices++;
    r->sessions += d->sessions;
    if (d->active) r->active[c]++, r->act++;
    if (d->sessions) r->connected[c]++;
}

static void check_counters_cfg(fx *f, int64_t def, int64_t grace)
{
    recount r = {.f = f, .def = def, .grace = grace};
    ls_engine_scan(f->e, 0, -1, SIZE_MAX, 0, recount_cb, &r);
    ls_engine_stats st;
    ls_engine_get_stats(f->e, &st);
    assert_int_equal(st.devices, r.devices);
    assert_int_equal(st.active, r.act);
    assert_int_equal(st.sessions, r.sessions);
    uint64_t type_devices = 0, type_active = 0;
    for (uint32_t i = 0; i < ls_engine_type_count(f->e); i++) {
        ls_type_info t;
        ls_engine_type_at(f->e, i, &t);
        type_devices += t.devices;
        type_active += t.active;
    }
    assert_int_equal(type_devices, r.devices);
    assert_int_equal(type_active, r.act);
    for (int c = 0; c < LS_AVAIL__COUNT; c++) {
        assert_int_equal(st.avail[c], r.avail[c]);
        assert_int_equal(st.avail_active[c], r.active[c]);
        assert_int_equal(st.avail_connected[c], r.connected[c]);
    }
}

static void check_counters(fx *f)
{
    check_counters_cfg(f, 60000, 180000);
}

static void test_counters_property(void **state)
{
    (void)state;
    fx *f = fx_new(5000, 1000, 0, 30000);
    char id[32];
    const char *types[] = {"ta", "tb"};
    srand(11);
    int64_t t = 0;
    for (int step = 0; step < 20000; step++) {
        snprintf(id, sizeof(id), "d-%d", rand() % 100);
        size_t len = strlen(id);
        int op = rand() % 13;
        ls_device_config c = {0};
        ls_type_config tcfg = tc();
        switch (op) {
        case 0:
        case 1:
        case 2:
            ls_engine_activity(f->e, id, len, 0, f->now);
            break;
        case 3:
            ls_engine_connect(f->e, id, len, f->now);
            break;
        case 4:
            ls_engine_disconnect(f->e, id, len, f->now);
            break;
        case 5:
            ls_engine_delete(f->e, id, len);
            break;
        case 6:
            c.set_c8y = 1;
            c.has_c8y = rand() % 3 != 0;
            c.response_interval = rand() % 3 - 1;
            ls_engine_put(f->e, id, len, &c, f->now, NULL);
            break;
        case 7:
            c.set_timeout = 1;
            c.timeout_ms = rand() % 2 ? 0 : 100 + rand() % 9000;
            ls_engine_put(f->e, id, len, &c, f->now, NULL);
            break;
        case 8:
            c.type = types[rand() % 2];
            c.type_len = 2;
            ls_engine_put(f->e, id, len, &c, f->now, NULL);
            break;
        case 9:
            tcfg.monitored = rand() % 3 - 1;
            tcfg.has_ri = rand() % 2;
            tcfg.response_interval = rand() % 2;
            tcfg.timeout_ms = rand() % 2 ? 0 : 2000;
            ls_engine_type_put(f->e, types[rand() % 2], 2, &tcfg, f->now, NULL);
            break;
        case 10:
            ls_engine_type_delete(f->e, types[rand() % 2], 2, f->now);
            break;
        case 11:
            ls_engine_record(f->e, id, len, 0, f->now);
            break;
        default:
            t += rand() % 3000;
            at(f, t);
            tick(f);
            break;
        }
        if (step % 500 == 0) check_counters_cfg(f, 5000, 1000);
    }
    check_counters_cfg(f, 5000, 1000);
    fx_free(f);
}

/* ---- record-only and admit -------------------------------------------- */

static void test_record_never_activates(void **state)
{
    (void)state;
    fx *f = fx_new(1000, 0, 0, 0);
    assert_int_equal(ls_engine_record(f->e, "x", 1, 0, f->now), LS_ENOTFOUND); /* never creates */
    assert_null(ls_engine_find(f->e, "x", 1));
    act(f, "x");
    at(f, 1500);
    tick(f);
    assert_false(dev(f, "x")->active);
    f->n = 0;
    assert_int_equal(ls_engine_record(f->e, "x", 1, WALL0 + 1400, f->now), 0);
    assert_false(dev(f, "x")->active);
    assert_int_equal(dev(f, "x")->last_activity, WALL0 + 1400);
    assert_int_equal(f->n, 0);
    /* On an active device it moves the deadline like an activity. */
    act(f, "x");
    at(f, 2000);
    assert_int_equal(ls_engine_record(f->e, "x", 1, WALL0 + 1900, f->now), 0);
    at(f, 2899);
    tick(f);
    assert_true(dev(f, "x")->active);
    at(f, 2900);
    tick(f);
    assert_false(dev(f, "x")->active);
    assert_int_equal(ls_engine_record(f->e, "x", 1, -1, f->now), LS_EINVAL);
    fx_free(f);
}

static void test_admit(void **state)
{
    (void)state;
    fx *f = calloc(1, sizeof(*f));
    ls_engine_config cfg = {.default_timeout_ms = 1000, .max_devices = 1, .seed = 1};
    assert_int_equal(ls_engine_new(&f->e, &cfg, event_cb, f), 0);
    assert_int_equal(ls_engine_admit(f->e, "a", 1), 0);
    assert_int_equal(ls_engine_admit(f->e, "", 0), LS_EBADID);
    assert_int_equal(ls_engine_activity(f->e, "a", 1, 0, f->now), 0);
    assert_int_equal(ls_engine_admit(f->e, "a", 1), 0);
    assert_int_equal(ls_engine_admit(f->e, "b", 1), LS_EFULL);
    fx_free(f);
}

/* ---- sessions --------------------------------------------------------- */

static void test_session_expiry(void **state)
{
    (void)state;
    fx *f = fx_new(60000, 0, 0, 10000); /* sessions expire after 10 s of silence */
    assert_int_equal(ls_engine_connect(f->e, "s", 1, f->now), 0);
    assert_int_equal(ls_engine_connect(f->e, "s", 1, f->now), 0);
    at(f, 6000);
    act(f, "s"); /* keeps the session alive */
    at(f, 15999);
    tick(f);
    assert_int_equal(dev(f, "s")->sessions, 2);
    f->n = 0;
    at(f, 16000);
    tick(f);
    assert_int_equal(dev(f, "s")->sessions, 0);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->ev[0].type, LS_EV_DISCONNECT);
    assert_int_equal(f->ev[0].ts, WALL0 + 16000);
    assert_int_equal(dev(f, "s")->last_disconnect, WALL0 + 16000);
    assert_true(dev(f, "s")->active); /* the device's own timeout is 60 s */
    ls_engine_stats st;
    ls_engine_get_stats(f->e, &st);
    assert_int_equal(st.sessions, 0);
    assert_int_equal(st.sessions_expired, 1);
    /* The inactivity deadline still fires at its time. */
    at(f, 66000);
    tick(f);
    assert_false(dev(f, "s")->active);
    assert_int_equal(count_type(f, LS_EV_INACTIVITY, "s"), 1);
    assert_int_equal(count_type(f, LS_EV_DISCONNECT, "s"), 1);
    fx_free(f);
}

static void test_session_expiry_order_and_inactive(void **state)
{
    (void)state;
    fx *f = fx_new(3000, 0, 0, 5000);
    /* Inactivity (3 s) before session expiry (5 s) on the same device. */
    assert_int_equal(ls_engine_connect(f->e, "s", 1, f->now), 0);
    f->n = 0;
    at(f, 10000);
    tick(f); /* both overdue: they fire in deadline order */
    assert_int_equal(f->n, 2);
    assert_int_equal(f->ev[0].type, LS_EV_INACTIVITY);
    assert_int_equal(f->ev[1].type, LS_EV_DISCONNECT);
    /* An inactive device with a session: expiry still comes. */
    assert_int_equal(ls_engine_connect(f->e, "s", 1, f->now), 0);
    at(f, 14000);
    tick(f);
    assert_false(dev(f, "s")->active);
    assert_int_equal(dev(f, "s")->sessions, 1);
    at(f, 15000);
    tick(f);
    assert_int_equal(dev(f, "s")->sessions, 0);
    assert_int_equal(ls_engine_next_wakeup(f->e), INT64_MAX);
    /* Disconnected in time: nothing expires later. */
    assert_int_equal(ls_engine_connect(f->e, "s", 1, f->now), 0);
    assert_int_equal(ls_engine_disconnect(f->e, "s", 1, f->now), 0);
    f->n = 0;
    at(f, 40000);
    tick(f);
    assert_int_equal(count_type(f, LS_EV_DISCONNECT, NULL), 0);
    fx_free(f);
}

static void test_session_expiry_disabled(void **state)
{
    (void)state;
    fx *f = fx_new(3000, 0, 0, 0);
    assert_int_equal(ls_engine_connect(f->e, "s", 1, f->now), 0);
    at(f, 24LL * 3600 * 1000);
    tick(f);
    assert_int_equal(dev(f, "s")->sessions, 1);
    fx_free(f);
}

static void test_restore_c8y_and_sessions(void **state)
{
    (void)state;
    fx *f = fx_new(60000, 180000, 0, 10000);
    ls_device_state st = {.active = 1,
                          .last_activity = WALL0 - 1000,
                          .sessions = 1,
                          .has_c8y = 1,
                          .response_interval = 2};
    assert_int_equal(restore_as(f->e, "r", 1, &st, LS_RESTART_GRACE, f->now), 0);
    ls_availability av;
    ls_engine_availability(f->e, dev(f, "r"), &av);
    assert_true(av.has_c8y);
    assert_int_equal(av.response_interval, 2);
    assert_int_equal(av.timeout_ms, 2 * MIN + 180000);
    assert_int_equal(av.cls, LS_AVAIL_MONITORED);
    /* GRACE: the session deadline counts from the restart, not from the last activity. */
    at(f, 9999);
    tick(f);
    assert_int_equal(dev(f, "r")->sessions, 1);
    at(f, 10000);
    tick(f);
    assert_int_equal(dev(f, "r")->sessions, 0);
    st.response_interval = 40000;
    assert_int_equal(restore_as(f->e, "r", 1, &st, LS_RESTART_GRACE, f->now), LS_EINVAL);
    /* A maintenance device restores as such, with its counters. */
    st.response_interval = 0;
    assert_int_equal(restore_as(f->e, "r2", 2, &st, LS_RESTART_STRICT, f->now), 0);
    assert_int_equal(ls_device_avail(dev(f, "r2")), LS_AVAIL_MAINTENANCE);
    check_counters(f);
    fx_free(f);
}

/*
 * The pure rule (ls_type_level_of() + ls_availability_of(), what `lastseen
 * export` computes from a store) against what the engine holds and acts
 * on (the cached timeout and class), for every combination of a device's
 * own settings, its type's settings and the configuration; plus the
 * expected values of a few.
 */
static void test_rule_without_engine(void **state)
{
    (void)state;
    const int64_t owns[] = {0, 4000};
    const int c8ys[][2] = {{0, 0}, {1, 3}, {1, 0}, {1, -2}};
    ls_type_config types[7];
    for (int i = 0; i < 7; i++)
        types[i] = tc();
    types[1].timeout_ms = 7000;
    types[2].has_ri = 1, types[2].response_interval = 5;
    types[3].has_ri = 1, types[3].response_interval = 0;
    types[4].monitored = 0;
    types[5].monitored = 1;
    types[6].timeout_ms = 9000, types[6].has_ri = 1, types[6].response_interval = -1;
    int checked = 0;
    for (int unmon = 0; unmon < 2; unmon++) {
        for (int ti = -1; ti < 7; ti++) { /* -1: a type without settings */
            fx *f = fx_new(600000, 180000, unmon, 0);
            ls_engine_config cfg = {
                .default_timeout_ms = 600000, .grace_ms = 180000, .unmonitored_default = unmon};
            if (ti >= 0) type_put(f, "t", types[ti]);
            ls_type_level lvl;
            ls_type_level_of(ti >= 0 ? &types[ti] : NULL, &cfg, &lvl);
            for (size_t o = 0; o < 2; o++) {
                for (size_t k = 0; k < 4; k++) {
                    char id[32];
                    snprintf(id, sizeof(id), "d%zu-%zu", o, k);
                    ls_device_config c = {.set_timeout = 1,
                                          .timeout_ms = owns[o],
                                          .type = "t",
                                          .type_len = 1,
                                          .set_c8y = 1,
                                          .has_c8y = c8ys[k][0],
                                          .response_interval = c8ys[k][1]};
                    put(f, id, &c);
                    ls_availability want, got;
                    ls_availability_of(owns[o], c8ys[k][0], c8ys[k][1], &lvl, &cfg, &want);
                    ls_engine_availability(f->e, dev(f, id), &got);
                    assert_int_equal(want.timeout_ms, ls_engine_timeout(f->e, dev(f, id), NULL));
                    assert_int_equal(want.cls, ls_device_avail(dev(f, id)));
                    assert_int_equal(want.timeout_ms, got.timeout_ms);
                    assert_string_equal(want.source, got.source);
                    assert_int_equal(want.has_c8y, got.has_c8y);
                    assert_int_equal(want.response_interval, got.response_interval);
                    checked++;
                }
            }
            fx_free(f);
        }
    }
    assert_int_equal(checked, 2 * 8 * 2 * 4);

    /* A few by value. */
    ls_engine_config cfg = {.default_timeout_ms = 600000, .grace_ms = 180000};
    ls_type_level lvl;
    ls_availability av;
    ls_type_level_of(NULL, &cfg, &lvl);
    ls_availability_of(0, 0, 0, &lvl, &cfg, &av);
    assert_int_equal(av.timeout_ms, 600000);
    assert_string_equal(av.source, "default");
    assert_int_equal(av.cls, LS_AVAIL_MONITORED);
    ls_availability_of(0, 1, 3, &lvl, &cfg, &av);
    assert_int_equal(av.timeout_ms, 3 * MIN + 180000);
    assert_string_equal(av.source, "c8y_RequiredAvailability");
    ls_availability_of(4000, 1, 0, &lvl, &cfg, &av); /* own timeout, own maintenance */
    assert_int_equal(av.timeout_ms, 4000);
    assert_string_equal(av.source, "device");
    assert_int_equal(av.cls, LS_AVAIL_MAINTENANCE);
    ls_type_level_of(&types[1], &cfg, &lvl);
    ls_availability_of(0, 0, 0, &lvl, &cfg, &av);
    assert_int_equal(av.timeout_ms, 7000);
    assert_string_equal(av.source, "type");
    ls_type_level_of(&types[4], &cfg, &lvl);
    ls_availability_of(0, 0, 0, &lvl, &cfg, &av);
    assert_int_equal(av.timeout_ms, LS_TIMEOUT_NONE);
    assert_int_equal(av.cls, LS_AVAIL_UNMONITORED);
    cfg.unmonitored_default = 1;
    ls_type_level_of(&types[5], &cfg, &lvl); /* monitored: the default timeout anyway */
    assert_int_equal(lvl.timeout_ms, 600000);
    assert_string_equal(lvl.source, "default");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_monitored_flags),
        cmocka_unit_test(test_c8y_only_device),
        cmocka_unit_test(test_maintenance),
        cmocka_unit_test(test_invalid_settings),
        cmocka_unit_test(test_type_change_reevaluates_its_devices_only),
        cmocka_unit_test(test_default_type_walk),
        cmocka_unit_test(test_type_churn),
        cmocka_unit_test(test_counters_property),
        cmocka_unit_test(test_record_never_activates),
        cmocka_unit_test(test_admit),
        cmocka_unit_test(test_session_expiry),
        cmocka_unit_test(test_session_expiry_order_and_inactive),
        cmocka_unit_test(test_session_expiry_disabled),
        cmocka_unit_test(test_restore_c8y_and_sessions),
        cmocka_unit_test(test_rule_without_engine),
    };
    return cmocka_run_group_tests_name("availability", tests, NULL, NULL);
}
