/*
 * test_stats.c - ls_stats_take() (src/core/stats.c) on a real core: two
 * engine shards, the committer and a store in a mkdtemp directory under
 * /tmp (removed after), no HTTP.  The test acts on the core the way the
 * routes do (ls_shards_apply() for activities, the device lock for a
 * connect and a timeout, every lock for a source going down, the metrics
 * counters an input bumps), lets everything commit, and checks that one
 * snapshot holds every figure, consistent with the others: events by type
 * sum to the last seq, each logged once (a source's SOURCE_DOWN is one
 * event though every shard's engine counts it), the outbox and the events
 * file's cursor are at that seq, device counts, types, the inputs'
 * counters.  A second test lists more types than the snapshot reserves
 * before taking the locks, merged from both shards' lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "conf/config.h"
#include "core/daemon.h"
#include "core/shards.h"
#include "core/stats.h"
#include "testutil.h"

#define N 10

typedef struct fixture {
    char tmp[64];
    ls_daemon d;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    if (ls_test_tmpdir(f->tmp, sizeof(f->tmp), "stats") < 0) return -1;
    ls_config cfg;
    ls_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", f->tmp);
    cfg.engine_shards = 2;
    if (ls_core_open(&f->d, &cfg) < 0 || ls_core_start(&f->d) < 0) return -1;
    ls_core_ready(&f->d);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ls_core_stop_ingest(&f->d);
    ls_core_stop_committer(&f->d);
    ls_core_close(&f->d);
    ls_test_rmtree(f->tmp);
    free(f);
    return 0;
}

/* Everything changed so far committed and delivered to events.jsonl. */
static void commit_all(ls_daemon *d)
{
    ls_held h;
    ls_daemon_lock(d, &h);
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void test_one_consistent_snapshot(void **state)
{
    fixture *f = *state;
    ls_daemon *d = &f->d;
    ls_stats_snapshot *s = malloc(sizeof(*s));
    assert_non_null(s);

    /* N devices by one activity each, as a bulk request applies them. */
    char ids[N][8];
    ls_activity a[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "s-%d", i);
        a[i] = (ls_activity){.id = ids[i], .len = (uint32_t)strlen(ids[i])};
    }
    uint64_t gen = 0;
    assert_int_equal(ls_shards_apply(d->shards, a, N, 0, NULL, &gen), N);
    ls_metrics_activities(&d->metrics, d->http_source, N);
    ls_metrics_rejected(&d->metrics, d->http_source, LS_REJECT_INVALID, 2);

    /* s-1 connects; s-0 gets a 1 ms timeout and goes inactive. */
    ls_held h;
    ls_engine *e = ls_daemon_lock_id(d, &h, "s-1", 3);
    assert_int_equal(ls_engine_connect(e, "s-1", 3, ls_clock_now()), 0);
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
    ls_device_config dc = {.set_timeout = 1, .timeout_ms = 1};
    e = ls_daemon_lock_id(d, &h, "s-0", 3);
    assert_int_equal(ls_engine_put(e, "s-0", 3, &dc, ls_clock_now(), NULL), 0);
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
    for (int i = 0; i < 500; i++) {
        ls_stats_take(d, s);
        uint64_t inactive = s->engine.inactive;
        ls_stats_release(s);
        if (inactive == 1) break;
        sleep_ms(10);
    }

    /* A source goes down: every shard's engine holds its devices, the
     * outbox gets one SOURCE_DOWN. */
    ls_daemon_lock(d, &h);
    int src = ls_shards_source_add(d->shards, "test", 0);
    assert_true(src > 0);
    ls_shards_source_down(d->shards, (unsigned)src, ls_clock_now());
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
    commit_all(d);

    ls_stats_take(d, s);
    assert_string_equal(s->version, LS_VERSION);
    assert_true(s->started_wall > 0);
    assert_int_equal(s->shards, 2);
    assert_int_equal(s->engine.devices, N);
    assert_int_equal(s->engine.active, N - 1);
    assert_int_equal(s->engine.inactive, 1);
    assert_int_equal(s->engine.sessions, 1);
    assert_int_equal(s->engine.activities, N + 1); /* a connect is an activity too */

    assert_int_equal(s->events[LS_EV_ACTIVITY], N);
    assert_int_equal(s->events[LS_EV_CONNECT], 1);
    assert_int_equal(s->events[LS_EV_INACTIVITY], 1);
    assert_int_equal(s->events[LS_EV_SOURCE_DOWN], 1);
    assert_int_equal(s->engine.events[LS_EV_SOURCE_DOWN], 2); /* one per shard */
    assert_int_equal(s->alarms.raised, s->events[LS_EV_ALARM_RAISED]);
    uint64_t sum = 0;
    for (int t = 0; t < LS_EV__COUNT; t++)
        sum += s->events[t];
    assert_int_equal(s->last_seq, sum); /* a fresh store: seq 1 is the first event */
    assert_int_equal(s->committed_seq, s->last_seq);
    assert_int_equal(ls_stats_lag(s, s->committed_seq), 0);
    assert_int_equal(ls_stats_lag(s, 0), s->last_seq);
    assert_int_equal(s->first_seq, 1);
    assert_int_equal(s->nsinks, 0);
    assert_true(s->commits >= 1);
    assert_true(s->commit_ns > 0);
    uint64_t commits = 0;
    for (int i = 0; i <= s->commit.n; i++)
        commits += s->commit.counts[i];
    assert_int_equal(commits, s->commits);
    uint64_t late = 0;
    for (int i = 0; i <= s->lateness.n; i++)
        late += s->lateness.counts[i];
    assert_int_equal(late, 1); /* the INACTIVITY_EVENT */

    assert_int_equal(s->nsources, 1);
    assert_string_equal(s->source_names[0], "http");
    assert_int_equal(s->activities[0], N);
    assert_int_equal(s->rejected[0][LS_REJECT_INVALID], 2);
    assert_int_equal(s->rejected[0][LS_REJECT_MALFORMED], 0);
    assert_int_equal(s->ingest.queued, 0);
    assert_int_equal(s->http_reporting_strategy, d->cfg.http_reporting_strategy);

    assert_int_equal(s->ntypes, 1);
    assert_string_equal(s->types[0].name, "default");
    assert_int_equal(s->types[0].devices, N);
    assert_int_equal(s->types[0].active, N - 1);
    assert_int_equal(s->types_left_out, 0);
    assert_true(s->hold_ns > 0);

    ls_stats_release(s);
    assert_null(s->types);
    free(s);
}

/* ls_shards_types()' list, filtered as /api/v1/stats always has. */
typedef struct type_list {
    ls_stats_type t[256];
    size_t n;
} type_list;

static void list_cb(void *ud, const ls_type_info *t)
{
    type_list *l = ud;
    if (!t->devices && !t->configured) return;
    assert_true(l->n < 256);
    ls_stats_type *o = &l->t[l->n++];
    snprintf(o->name, sizeof(o->name), "%s", t->name);
    o->configured = t->configured;
    o->devices = t->devices;
    o->active = t->active;
}

/* More types than the snapshot reserves: the list grows before the locks
 * are taken again, and the shards' lists merge by name as
 * ls_shards_types() lists them: shard 0's order first, then names only
 * another shard knows; devices summed; names nothing uses left out. */
static void test_many_types(void **state)
{
    fixture *f = *state;
    ls_daemon *d = &f->d;
    enum { TYPES = 150, DEVS = 8 };
    ls_type_config tc = {.timeout_ms = 60000, .monitored = -1};
    ls_held h;
    ls_daemon_lock(d, &h);
    for (int i = 0; i < TYPES; i++) {
        char name[16];
        int len = snprintf(name, sizeof(name), "t-%03d", i);
        assert_int_equal(
            ls_shards_type_put(d->shards, name, (size_t)len, &tc, ls_clock_now(), NULL), 0);
    }
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
    /* DEVS devices of t-000, spread over both shards, and one of a type
     * only its own shard knows. */
    int in_shard[2] = {0, 0};
    for (int i = 0; i <= DEVS; i++) {
        char id[16];
        int len = snprintf(id, sizeof(id), "x-%d", i);
        ls_device_config dc = {.type = i < DEVS ? "t-000" : "solo", .type_len = i < DEVS ? 5 : 4};
        ls_engine *e = ls_daemon_lock_id(d, &h, id, (size_t)len);
        assert_int_equal(ls_engine_put(e, id, (size_t)len, &dc, ls_clock_now(), NULL), 0);
        ls_daemon_commit_unlock(d, &h, INT64_MAX);
        if (i < DEVS) in_shard[ls_shards_index(d->shards, id, (size_t)len)]++;
    }
    assert_true(in_shard[0] > 0 && in_shard[1] > 0); /* the sum is over both shards */

    ls_stats_snapshot *s = malloc(sizeof(*s));
    assert_non_null(s);
    ls_stats_take(d, s);
    /* "default" is used by no device and has no settings: left out. */
    assert_int_equal(s->ntypes, TYPES + 1);
    for (int i = 0; i < TYPES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t-%03d", i);
        assert_string_equal(s->types[i].name, name);
        assert_true(s->types[i].configured);
        assert_int_equal(s->types[i].devices, i == 0 ? DEVS : 0);
    }
    assert_string_equal(s->types[TYPES].name, "solo");
    assert_false(s->types[TYPES].configured);
    assert_int_equal(s->types[TYPES].devices, 1);
    assert_int_equal(s->types_left_out, 0);

    /* The same list as ls_shards_types() makes under the locks. */
    type_list *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    ls_daemon_lock(d, &h);
    ls_shards_types(d->shards, list_cb, l);
    ls_daemon_unlock(d, &h);
    assert_int_equal(l->n, s->ntypes);
    for (size_t i = 0; i < l->n; i++) {
        assert_string_equal(l->t[i].name, s->types[i].name);
        assert_int_equal(l->t[i].configured, s->types[i].configured);
        assert_int_equal(l->t[i].devices, s->types[i].devices);
        assert_int_equal(l->t[i].active, s->types[i].active);
    }
    free(l);
    ls_stats_release(s);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_consistent_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_types, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
