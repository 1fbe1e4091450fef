/*
 * test_lease_sm.c - src/cluster/lease_sm.c: rendezvous hashing (every
 * partition has one owner, the spread is even, a join or a leave moves only
 * the partitions it must) and one partition's lease driven by KV results
 * and a fake clock (mono ms): acquire, renew every TTL/4, drop at a refused
 * renewal and at 0.8 TTL without a confirmed one, release when no longer
 * assigned, and the read-back after a create or an update whose outcome is
 * unknown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "cluster/lease_sm.h"

#define P 64

static void owners(const char *const *names, size_t n, int *out)
{
    for (unsigned p = 0; p < P; p++)
        out[p] = ls_rendezvous_owner(names, n, p);
}

static void test_rendezvous(void **state)
{
    (void)state;
    const char *three[] = {"n1", "n2", "n3"};
    const char *four[] = {"n1", "n2", "n3", "n4"};
    const char *two[] = {"n1", "n3"}; /* n2 left */
    int o3[P], o4[P], o2[P], count[4] = {0};
    owners(three, 3, o3);
    owners(four, 4, o4);
    owners(two, 2, o2);
    for (unsigned p = 0; p < P; p++) {
        assert_true(o3[p] >= 0 && o3[p] < 3);
        count[o3[p]]++;
        /* n4 joins: a partition either stays or goes to n4. */
        assert_true(o4[p] == o3[p] || o4[p] == 3);
        /* n2 leaves: only n2's partitions move. */
        if (o3[p] != 1) assert_string_equal(two[o2[p]], three[o3[p]]);
    }
    for (int i = 0; i < 3; i++)
        assert_true(count[i] >= 12 && count[i] <= 32); /* 64 / 3 = 21 each, roughly */
    /* The order of the list does not matter; no members, no owner. */
    const char *shuffled[] = {"n3", "n1", "n2"};
    for (unsigned p = 0; p < P; p++)
        assert_string_equal(shuffled[ls_rendezvous_owner(shuffled, 3, p)], three[o3[p]]);
    assert_int_equal(ls_rendezvous_owner(NULL, 0, 5), -1);
    /* Stable across builds: a weight is a fixed function of name and partition. */
    assert_true(ls_rendezvous_weight("n1", 2, 0) != ls_rendezvous_weight("n1", 2, 1));
    assert_true(ls_rendezvous_weight("n1", 2, 0) == ls_rendezvous_weight("n1", 2, 0));
}

/* ---- one lease ------------------------------------------------------------------ */

#define TTL 20000

static ls_lease_timing T;

static int setup(void **state)
{
    (void)state;
    T = ls_lease_timing_of(TTL);
    return 0;
}

/* Acquires at `now` with revision rev. */
static void acquire(ls_lease *l, int64_t now, uint64_t rev)
{
    assert_int_equal(ls_lease_next(&T, l, 1, now), LS_LEASE_DO_CREATE);
    assert_int_equal(ls_lease_done(&T, l, LS_LEASE_DO_CREATE, LS_LEASE_OK, rev, now, now + 1),
                     LS_LEASE_ACQUIRED);
    assert_int_equal(l->state, LS_LEASE_HELD);
    assert_int_equal(l->rev, rev);
}

static void test_timing(void **state)
{
    (void)state;
    assert_int_equal(T.renew, 5000);
    assert_int_equal(T.drop, 16000);
    assert_int_equal(T.retry, 1000);
    ls_lease_timing s = ls_lease_timing_of(3000);
    assert_int_equal(s.renew, 750);
    assert_int_equal(s.drop, 2400);
    assert_int_equal(s.retry, 375);
}

static void test_acquire_and_renew(void **state)
{
    (void)state;
    ls_lease l = {0};
    assert_int_equal(ls_lease_next(&T, &l, 0, 0), LS_LEASE_DO_NOTHING); /* not ours to take */
    acquire(&l, 100, 7);
    assert_int_equal(ls_lease_next(&T, &l, 1, 100 + 4999), LS_LEASE_DO_NOTHING);
    /* Renewed every TTL/4 from when the last confirmed write was sent. */
    for (int64_t t = 5100, rev = 8; t < 60000; t += 5000, rev++) {
        assert_int_equal(ls_lease_next(&T, &l, 1, t), LS_LEASE_DO_UPDATE);
        assert_int_equal(
            ls_lease_done(&T, &l, LS_LEASE_DO_UPDATE, LS_LEASE_OK, (uint64_t)rev, t, t + 3),
            LS_LEASE_KEPT);
        assert_int_equal(l.rev, (uint64_t)rev);
        assert_int_equal(l.proven, t);
    }
}

static void test_create_refused_retries_later(void **state)
{
    (void)state;
    ls_lease l = {0};
    assert_int_equal(ls_lease_next(&T, &l, 1, 0), LS_LEASE_DO_CREATE);
    assert_int_equal(ls_lease_done(&T, &l, LS_LEASE_DO_CREATE, LS_LEASE_REFUSED, 0, 0, 2),
                     LS_LEASE_KEPT);
    assert_int_equal(l.state, LS_LEASE_FREE);
    assert_int_equal(ls_lease_next(&T, &l, 1, 500), LS_LEASE_DO_NOTHING);
    assert_int_equal(ls_lease_next(&T, &l, 1, 1002), LS_LEASE_DO_CREATE);
    assert_int_equal(ls_lease_done(&T, &l, LS_LEASE_DO_CREATE, LS_LEASE_FAILED, 0, 1002, 1003),
                     LS_LEASE_KEPT);
    assert_int_equal(ls_lease_next(&T, &l, 1, 2003), LS_LEASE_DO_CREATE);
}

static void test_refused_renewal_drops_at_once(void **state)
{
    (void)state;
    ls_lease l = {0};
    acquire(&l, 0, 3);
    assert_int_equal(ls_lease_done(&T, &l, LS_LEASE_DO_UPDATE, LS_LEASE_REFUSED, 0, 5000, 5001),
                     LS_LEASE_LOST);
    assert_int_equal(l.state, LS_LEASE_FREE);
}

static void test_drop_without_confirmed_renewal(void **state)
{
    (void)state;
    ls_lease l = {0};
    acquire(&l, 0, 3);
    /* Renewals go unanswered (not applied: no server took them)... */
    int64_t t = 5000;
    for (; t < 16000; t += 1000) {
        ls_lease_do d = ls_lease_next(&T, &l, 1, t);
        assert_true(d == LS_LEASE_DO_UPDATE || d == LS_LEASE_DO_NOTHING);
        if (d == LS_LEASE_DO_UPDATE)
            assert_int_equal(ls_lease_done(&T, &l, d, LS_LEASE_FAILED, 0, t, t + 1), LS_LEASE_KEPT);
    }
    /* ...so at 0.8 TTL after the last confirmed write it is dropped, whatever else. */
    assert_true(ls_lease_next(&T, &l, 1, 15999) != LS_LEASE_DO_DROP);
    assert_int_equal(ls_lease_next(&T, &l, 1, 16000), LS_LEASE_DO_DROP);
    assert_int_equal(ls_lease_next(&T, &l, 0, 16000), LS_LEASE_DO_DROP); /* before a release */
    l.unsure = LS_LEASE_DO_UPDATE;
    assert_int_equal(ls_lease_next(&T, &l, 1, 16000), LS_LEASE_DO_DROP); /* before a read */
    ls_lease_freed(&T, &l, 16000);
    assert_int_equal(l.state, LS_LEASE_FREE);
    assert_int_equal(l.unsure, 0);
    assert_int_equal(ls_lease_next(&T, &l, 1, 16500), LS_LEASE_DO_NOTHING);
    assert_int_equal(ls_lease_next(&T, &l, 1, 17000), LS_LEASE_DO_CREATE);
}

static void test_release_when_not_assigned(void **state)
{
    (void)state;
    ls_lease l = {0};
    acquire(&l, 0, 9);
    assert_int_equal(ls_lease_next(&T, &l, 0, 10), LS_LEASE_DO_RELEASE);
    ls_lease_freed(&T, &l, 11);
    assert_int_equal(ls_lease_next(&T, &l, 0, 5000), LS_LEASE_DO_NOTHING);
}

static void test_unknown_create_read_back(void **state)
{
    (void)state;
    /* Applied after all: adopted, counted from when it was sent, renewed at once. */
    ls_lease l = {0};
    assert_int_equal(ls_lease_done(&T, &l, LS_LEASE_DO_CREATE, LS_LEASE_UNKNOWN, 0, 100, 2100),
                     LS_LEASE_KEPT);
    assert_int_equal(ls_lease_next(&T, &l, 1, 2100), LS_LEASE_DO_READ);
    assert_int_equal(ls_lease_next(&T, &l, 0, 2100), LS_LEASE_DO_READ);
    assert_int_equal(ls_lease_read_done(&T, &l, 0, 0, 0, 0, 4100), LS_LEASE_KEPT); /* no answer */
    assert_int_equal(ls_lease_next(&T, &l, 1, 4100), LS_LEASE_DO_READ);
    assert_int_equal(ls_lease_read_done(&T, &l, 1, 1, 1, 12, 4200), LS_LEASE_ACQUIRED);
    assert_int_equal(l.state, LS_LEASE_HELD);
    assert_int_equal(l.rev, 12);
    assert_int_equal(l.proven, 100);
    assert_int_equal(ls_lease_next(&T, &l, 1, 4200), LS_LEASE_DO_UPDATE);
    assert_int_equal(ls_lease_next(&T, &l, 1, 16100), LS_LEASE_DO_DROP);

    /* Someone else's, or nobody's: free, tried again later. */
    ls_lease m = {0};
    ls_lease_done(&T, &m, LS_LEASE_DO_CREATE, LS_LEASE_UNKNOWN, 0, 0, 2000);
    assert_int_equal(ls_lease_read_done(&T, &m, 1, 1, 0, 5, 2100), LS_LEASE_KEPT);
    assert_int_equal(m.state, LS_LEASE_FREE);
    assert_int_equal(ls_lease_next(&T, &m, 1, 2200), LS_LEASE_DO_NOTHING);
    assert_int_equal(ls_lease_next(&T, &m, 1, 3100), LS_LEASE_DO_CREATE);

    /* Ours, but written too long ago to count on: not adopted. */
    ls_lease o = {0};
    ls_lease_done(&T, &o, LS_LEASE_DO_CREATE, LS_LEASE_UNKNOWN, 0, 0, 2000);
    assert_int_equal(ls_lease_read_done(&T, &o, 1, 1, 1, 5, 16000), LS_LEASE_KEPT);
    assert_int_equal(o.state, LS_LEASE_FREE);
}

static void test_unknown_update_read_back(void **state)
{
    (void)state;
    /* The update was applied: the new revision, proven when it was sent. */
    ls_lease l = {0};
    acquire(&l, 0, 3);
    assert_int_equal(ls_lease_done(&T, &l, LS_LEASE_DO_UPDATE, LS_LEASE_UNKNOWN, 0, 5000, 7000),
                     LS_LEASE_KEPT);
    assert_int_equal(ls_lease_next(&T, &l, 1, 7000), LS_LEASE_DO_READ);
    assert_int_equal(ls_lease_read_done(&T, &l, 1, 1, 1, 4, 7100), LS_LEASE_KEPT);
    assert_int_equal(l.rev, 4);
    assert_int_equal(l.proven, 5000);
    assert_int_equal(ls_lease_next(&T, &l, 1, 9999), LS_LEASE_DO_NOTHING);
    assert_int_equal(ls_lease_next(&T, &l, 1, 10000), LS_LEASE_DO_UPDATE);

    /* It was not: same revision, no new proof, renewed again at once. */
    ls_lease_done(&T, &l, LS_LEASE_DO_UPDATE, LS_LEASE_UNKNOWN, 0, 10000, 12000);
    assert_int_equal(ls_lease_read_done(&T, &l, 1, 1, 1, 4, 12100), LS_LEASE_KEPT);
    assert_int_equal(l.proven, 5000);
    assert_int_equal(ls_lease_next(&T, &l, 1, 12100), LS_LEASE_DO_UPDATE);
    assert_int_equal(ls_lease_next(&T, &l, 1, 21000), LS_LEASE_DO_DROP);

    /* Gone, or someone else's: lost. */
    ls_lease m = {0};
    acquire(&m, 0, 3);
    ls_lease_done(&T, &m, LS_LEASE_DO_UPDATE, LS_LEASE_UNKNOWN, 0, 5000, 7000);
    assert_int_equal(ls_lease_read_done(&T, &m, 1, 0, 0, 0, 7100), LS_LEASE_LOST);
    assert_int_equal(m.state, LS_LEASE_FREE);
    ls_lease o = {0};
    acquire(&o, 0, 3);
    ls_lease_done(&T, &o, LS_LEASE_DO_UPDATE, LS_LEASE_UNKNOWN, 0, 5000, 7000);
    assert_int_equal(ls_lease_read_done(&T, &o, 1, 1, 0, 9, 7100), LS_LEASE_LOST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rendezvous),
        cmocka_unit_test_setup(test_timing, setup),
        cmocka_unit_test_setup(test_acquire_and_renew, setup),
        cmocka_unit_test_setup(test_create_refused_retries_later, setup),
        cmocka_unit_test_setup(test_refused_renewal_drops_at_once, setup),
        cmocka_unit_test_setup(test_drop_without_confirmed_renewal, setup),
        cmocka_unit_test_setup(test_release_when_not_assigned, setup),
        cmocka_unit_test_setup(test_unknown_create_read_back, setup),
        cmocka_unit_test_setup(test_unknown_update_read_back, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
