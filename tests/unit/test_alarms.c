/*
 * test_alarms.c - unit tests of the unavailability alarms (src/engine/alarms.c):
 * raise, deduplication (count, time, first occurrence), clearing by the
 * device, acknowledge then clear, CLEARED being final, listing with filters
 * and pages, restore with ids continuing, pruning by age, the counters.
 * Time is a plain wall-ms value the tests set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/alarms.h"

#define T0 1700000000000LL

typedef struct note {
    ls_event_type what;
    uint64_t id;
    uint8_t status;
    uint32_t count;
    int64_t now;
} note;

typedef struct fx {
    ls_alarms *a;
    note n[64];
    int nn;
} fx;

static void cb(void *ud, ls_event_type what, const ls_alarm *al, int64_t now)
{
    fx *f = ud;
    if (f->nn < 64) f->n[f->nn++] = (note){what, al->id, al->status, al->count, now};
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    if (!f || ls_alarms_new(&f->a, cb, f, 42) < 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ls_alarms_close(f->a);
    free(f);
    return 0;
}

#define ID(s) (s), (sizeof(s) - 1)

static void test_raise_and_dedup(void **state)
{
    fx *f = *state;
    assert_int_equal(ls_alarms_raise(f->a, ID("dev-1"), LS_SEV_MAJOR, T0 - 5000, T0), 0);
    assert_int_equal(f->nn, 1);
    assert_int_equal(f->n[0].what, LS_EV_ALARM_RAISED);
    const ls_alarm *al = ls_alarms_open(f->a, ID("dev-1"));
    assert_non_null(al);
    assert_int_equal(al->id, 1);
    assert_int_equal(al->status, LS_ALARM_ACTIVE);
    assert_int_equal(al->count, 1);
    assert_int_equal(al->time, T0);
    assert_int_equal(al->first, T0);
    assert_int_equal(al->since, T0 - 5000);
    assert_string_equal(al->source, "dev-1");

    /* Again while open: the same alarm, count 2, time moves, first stays. */
    assert_int_equal(ls_alarms_raise(f->a, ID("dev-1"), LS_SEV_CRITICAL, T0 - 5000, T0 + 100), 0);
    assert_int_equal(f->nn, 2);
    assert_int_equal(f->n[1].what, LS_EV_ALARM_UPDATED);
    assert_int_equal(f->n[1].count, 2);
    assert_ptr_equal(ls_alarms_open(f->a, ID("dev-1")), al);
    assert_int_equal(al->count, 2);
    assert_int_equal(al->time, T0 + 100);
    assert_int_equal(al->first, T0);
    assert_int_equal(al->severity, LS_SEV_MAJOR); /* kept from the first raise */

    /* An acknowledged alarm is still open: dedup applies. */
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_ACKNOWLEDGED, T0 + 200), 0);
    assert_int_equal(ls_alarms_raise(f->a, ID("dev-1"), LS_SEV_MAJOR, 0, T0 + 300), 0);
    assert_int_equal(al->count, 3);
    assert_int_equal(al->status, LS_ALARM_ACKNOWLEDGED);

    ls_alarm_stats st;
    ls_alarms_get_stats(f->a, &st);
    assert_int_equal(st.raised, 1);
    assert_int_equal(st.deduplicated, 2);
    assert_int_equal(st.by_status[LS_ALARM_ACKNOWLEDGED], 1);
    assert_int_equal(st.open_by_severity[LS_SEV_MAJOR], 1);

    /* Another device: its own alarm, next id. */
    assert_int_equal(ls_alarms_raise(f->a, ID("dev-2"), LS_SEV_MINOR, 0, T0), 0);
    assert_int_equal(ls_alarms_open(f->a, ID("dev-2"))->id, 2);
    assert_int_equal(ls_alarms_raise(f->a, "", 0, LS_SEV_MINOR, 0, T0), LS_EINVAL);
    assert_int_equal(ls_alarms_raise(f->a, ID("x"), LS_SEV__COUNT, 0, T0), LS_EINVAL);
}

static void test_clear_by_device_then_new_alarm(void **state)
{
    fx *f = *state;
    assert_int_equal(ls_alarms_clear_source(f->a, ID("d"), T0), 0);
    assert_int_equal(ls_alarms_raise(f->a, ID("d"), LS_SEV_MAJOR, T0 - 1, T0), 0);
    assert_int_equal(ls_alarms_clear_source(f->a, ID("d"), T0 + 10), 1);
    assert_int_equal(f->n[f->nn - 1].what, LS_EV_ALARM_CLEARED);
    assert_null(ls_alarms_open(f->a, ID("d")));
    const ls_alarm *old = ls_alarms_get(f->a, 1);
    assert_int_equal(old->status, LS_ALARM_CLEARED);
    assert_int_equal(old->updated, T0 + 10);
    assert_int_equal(ls_alarms_clear_source(f->a, ID("d"), T0 + 20), 0); /* nothing open */
    /* The next unavailability is a new alarm. */
    assert_int_equal(ls_alarms_raise(f->a, ID("d"), LS_SEV_MAJOR, T0 + 5, T0 + 30), 0);
    assert_int_equal(ls_alarms_open(f->a, ID("d"))->id, 2);
    assert_int_equal(ls_alarms_open(f->a, ID("d"))->count, 1);
}

static void test_status_changes(void **state)
{
    fx *f = *state;
    assert_int_equal(ls_alarms_raise(f->a, ID("d"), LS_SEV_WARNING, 0, T0), 0);
    f->nn = 0;
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_ACTIVE, T0), 1); /* already */
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_ACKNOWLEDGED, T0 + 1), 0);
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_ACKNOWLEDGED, T0 + 2), 1);
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_ACTIVE, T0 + 2), LS_EINVAL);
    assert_int_equal(f->nn, 1);
    assert_int_equal(f->n[0].what, LS_EV_ALARM_UPDATED);
    assert_int_equal(f->n[0].status, LS_ALARM_ACKNOWLEDGED);
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_CLEARED, T0 + 3), 0);
    assert_int_equal(f->n[1].what, LS_EV_ALARM_CLEARED);
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_CLEARED, T0 + 4), 1);
    assert_int_equal(ls_alarms_set_status(f->a, 1, LS_ALARM_ACKNOWLEDGED, T0 + 4),
                     LS_EINVAL); /* final */
    assert_int_equal(ls_alarms_set_status(f->a, 99, LS_ALARM_CLEARED, T0), LS_ENOTFOUND);
    assert_int_equal(ls_alarms_set_status(f->a, 0, LS_ALARM_CLEARED, T0), LS_ENOTFOUND);
    ls_alarm_stats st;
    ls_alarms_get_stats(f->a, &st);
    assert_int_equal(st.by_status[LS_ALARM_CLEARED], 1);
    assert_int_equal(st.by_status[LS_ALARM_ACTIVE] + st.by_status[LS_ALARM_ACKNOWLEDGED], 0);
    assert_int_equal(st.open_by_severity[LS_SEV_WARNING], 0);
    /* Cleared by the API: the device's next raise is a new alarm. */
    assert_int_equal(ls_alarms_raise(f->a, ID("d"), LS_SEV_WARNING, 0, T0 + 5), 0);
    assert_int_equal(ls_alarms_open(f->a, ID("d"))->id, 2);
}

typedef struct collected {
    uint64_t ids[64];
    int n;
} collected;

static void collect(void *ud, const ls_alarm *al)
{
    collected *c = ud;
    c->ids[c->n++] = al->id;
}

static void test_list(void **state)
{
    fx *f = *state;
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "d%d", i % 5);
        ls_alarms_raise(f->a, id, strlen(id), i % 2 ? LS_SEV_MINOR : LS_SEV_MAJOR, 0, T0 + i);
        if (i < 5) ls_alarms_clear_source(f->a, id, strlen(id), T0 + i); /* ids 1..5 cleared */
    }
    /* Alarms 1..5 cleared, 6..10 active (d0..d4). */
    ls_alarm_filter all = {.status = -1, .severity = -1};
    collected c = {0};
    uint64_t next = ls_alarms_list(f->a, 0, &all, 4, 0, collect, &c);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.ids[0], 1);
    assert_int_equal(next, 4);
    next = ls_alarms_list(f->a, next, &all, 4, 0, collect, &c);
    next = ls_alarms_list(f->a, next, &all, 4, 0, collect, &c);
    assert_int_equal(next, 0);
    assert_int_equal(c.n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(c.ids[i], i + 1);

    ls_alarm_filter active = {.status = LS_ALARM_ACTIVE, .severity = -1};
    c.n = 0;
    assert_int_equal(ls_alarms_list(f->a, 0, &active, 100, 0, collect, &c), 0);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.ids[0], 6);

    ls_alarm_filter minor_d1 = {
        .status = -1, .severity = LS_SEV_MINOR, .source = "d1", .source_len = 2};
    c.n = 0;
    ls_alarms_list(f->a, 0, &minor_d1, 100, 0, collect, &c);
    assert_int_equal(c.n, 1); /* id 2 (i=1); id 7 (i=6) is MAJOR */
    assert_int_equal(c.ids[0], 2);

    /* A bounded scan returns a cursor even when nothing matched yet. */
    ls_alarm_filter none = {.status = -1, .severity = -1, .source = "zz", .source_len = 2};
    c.n = 0;
    next = ls_alarms_list(f->a, 0, &none, 100, 3, collect, &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(next, 3);
}

static void test_restore_and_ids(void **state)
{
    fx *f = *state;
    ls_alarm rec = {.id = 7,
                    .time = T0,
                    .first = T0 - 10,
                    .since = T0 - 20,
                    .updated = T0,
                    .count = 3,
                    .status = LS_ALARM_ACKNOWLEDGED,
                    .severity = LS_SEV_CRITICAL,
                    .source_len = 1,
                    .source = "a"};
    assert_int_equal(ls_alarms_restore(f->a, &rec), 0);
    assert_int_equal(ls_alarms_restore(f->a, &rec), LS_EINVAL); /* same id twice */
    ls_alarm old = rec;
    old.id = 3;
    old.status = LS_ALARM_CLEARED;
    assert_int_equal(ls_alarms_restore(f->a, &old), 0); /* out of order is fine */
    ls_alarm bad = rec;
    bad.id = 9;
    bad.status = 3;
    assert_int_equal(ls_alarms_restore(f->a, &bad), LS_EINVAL);
    bad.status = 0;
    bad.source_len = 0;
    assert_int_equal(ls_alarms_restore(f->a, &bad), LS_EINVAL);
    assert_int_equal(f->nn, 0);      /* restoring tells nobody */
    ls_alarms_set_last_id(f->a, 20); /* the store remembers pruned ids */
    ls_alarms_set_last_id(f->a, 5);
    assert_int_equal(ls_alarms_last_id(f->a), 20);

    /* The restored open alarm deduplicates. */
    assert_int_equal(ls_alarms_raise(f->a, ID("a"), LS_SEV_MAJOR, 0, T0 + 1), 0);
    assert_int_equal(ls_alarms_open(f->a, ID("a"))->id, 7);
    assert_int_equal(ls_alarms_open(f->a, ID("a"))->count, 4);
    assert_int_equal(ls_alarms_raise(f->a, ID("b"), LS_SEV_MAJOR, 0, T0 + 1), 0);
    assert_int_equal(ls_alarms_open(f->a, ID("b"))->id, 21);
    collected c = {0};
    ls_alarm_filter all = {.status = -1, .severity = -1};
    ls_alarms_list(f->a, 0, &all, 100, 0, collect, &c);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.ids[0], 3);
    assert_int_equal(c.ids[1], 7);
    assert_int_equal(c.ids[2], 21);
    ls_alarm_stats st;
    ls_alarms_get_stats(f->a, &st);
    assert_int_equal(st.by_status[LS_ALARM_CLEARED], 1);
    assert_int_equal(st.open_by_severity[LS_SEV_CRITICAL], 1);
    assert_int_equal(st.open_by_severity[LS_SEV_MAJOR], 1);
}

typedef struct pruned {
    uint64_t ids[16];
    int n;
} pruned;

static void on_prune(void *ud, uint64_t id)
{
    pruned *p = ud;
    p->ids[p->n++] = id;
}

static void test_prune(void **state)
{
    fx *f = *state;
    ls_alarms_raise(f->a, ID("a"), LS_SEV_MAJOR, 0, T0); /* 1: cleared at T0 + 10 */
    ls_alarms_clear_source(f->a, ID("a"), T0 + 10);
    ls_alarms_raise(f->a, ID("b"), LS_SEV_MAJOR, 0, T0); /* 2: stays open */
    ls_alarms_raise(f->a, ID("c"), LS_SEV_MAJOR, 0, T0); /* 3: cleared at T0 + 100 */
    ls_alarms_clear_source(f->a, ID("c"), T0 + 100);
    ls_alarms_raise(f->a, ID("d"), LS_SEV_MAJOR, 0, T0); /* 4: cleared at T0 + 20 */
    ls_alarms_clear_source(f->a, ID("d"), T0 + 20);
    pruned p = {0};
    assert_int_equal(ls_alarms_prune(f->a, T0 + 50, 1, on_prune, &p), 1); /* at most 1 */
    assert_int_equal(ls_alarms_prune(f->a, T0 + 50, 10, on_prune, &p), 1);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.ids[0], 1);
    assert_int_equal(p.ids[1], 4);
    assert_null(ls_alarms_get(f->a, 1));
    assert_non_null(ls_alarms_get(f->a, 2)); /* open alarms are never pruned */
    assert_non_null(ls_alarms_get(f->a, 3));
    assert_int_equal(ls_alarms_get(f->a, 3)->id, 3);
    ls_alarm_stats st;
    ls_alarms_get_stats(f->a, &st);
    assert_int_equal(st.by_status[LS_ALARM_CLEARED], 1);
    assert_int_equal(st.pruned, 2);
    /* Ids never go back. */
    ls_alarms_raise(f->a, ID("e"), LS_SEV_MAJOR, 0, T0);
    assert_int_equal(ls_alarms_open(f->a, ID("e"))->id, 5);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ls_alarm_status_name(LS_ALARM_ACKNOWLEDGED), "ACKNOWLEDGED");
    assert_string_equal(ls_severity_name(LS_SEV_CRITICAL), "CRITICAL");
    assert_string_equal(ls_severity_key(LS_SEV_WARNING), "warning");
    assert_int_equal(ls_alarm_status_parse(ID("CLEARED")), LS_ALARM_CLEARED);
    assert_int_equal(ls_alarm_status_parse(ID("cleared")), -1);
    assert_int_equal(ls_severity_parse(ID("MINOR")), LS_SEV_MINOR);
    assert_int_equal(ls_severity_parse(ID("MINO")), -1);
    assert_string_equal(ls_event_name(LS_EV_ALARM_RAISED), "ALARM_RAISED");
    assert_string_equal(ls_event_name(LS_EV_ALARM_CLEARED), "ALARM_CLEARED");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_raise_and_dedup),      T(test_clear_by_device_then_new_alarm),
        T(test_status_changes),       T(test_list),
        T(test_restore_and_ids),      T(test_prune),
        cmocka_unit_test(test_names),
    };
#undef T
    return cmocka_run_group_tests_name("alarms", tests, NULL, NULL);
}
