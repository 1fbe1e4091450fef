/*
 * test_ring.c - the bounded MPMC queue: FIFO order, a full ring refusing a
 * push, wrap-around over many laps, and several producers (and consumers)
 * on real threads losing, duplicating or reordering nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/ring.h"

/* Values are never NULL: encode (producer, counter) as producer << 32 | counter + 1. */
#define VAL(p, i) ((void *)(uintptr_t)(((uint64_t)(p) << 32) | ((uint64_t)(i) + 1)))
#define VAL_P(v) ((unsigned)((uintptr_t)(v) >> 32))
#define VAL_I(v) ((uint32_t)((uintptr_t)(v)&0xffffffffu) - 1)

static void test_init_bounds(void **state)
{
    (void)state;
    ls_ring r;
    assert_int_equal(ls_ring_init(&r, 1), -EINVAL);
    assert_int_equal(ls_ring_init(&r, 5), 0);
    assert_int_equal(ls_ring_capacity(&r), 8); /* rounded up to a power of two */
    ls_ring_close(&r);
}

static void test_fifo_and_full(void **state)
{
    (void)state;
    ls_ring r;
    assert_int_equal(ls_ring_init(&r, 8), 0);
    assert_true(ls_ring_empty(&r));
    assert_null(ls_ring_pop(&r));
    for (int i = 0; i < 8; i++)
        assert_int_equal(ls_ring_push(&r, VAL(0, i)), 0);
    assert_false(ls_ring_empty(&r));
    assert_int_equal(ls_ring_push(&r, VAL(0, 8)), -EAGAIN); /* full: refused, not overwritten */
    assert_ptr_equal(ls_ring_pop(&r), VAL(0, 0));
    assert_int_equal(ls_ring_push(&r, VAL(0, 8)), 0); /* one cell free again */
    assert_int_equal(ls_ring_push(&r, VAL(0, 9)), -EAGAIN);
    for (int i = 1; i <= 8; i++)
        assert_ptr_equal(ls_ring_pop(&r), VAL(0, i));
    assert_null(ls_ring_pop(&r));
    assert_true(ls_ring_empty(&r));
    ls_ring_close(&r);
}

/* Many laps around a small ring with a varying fill level. */
static void test_wrap_around(void **state)
{
    (void)state;
    ls_ring r;
    assert_int_equal(ls_ring_init(&r, 4), 0);
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 100000; round++) {
        int k = 1 + round % 4; /* push 1..4, pop the same: crosses the array end in every phase */
        for (int i = 0; i < k; i++)
            assert_int_equal(ls_ring_push(&r, VAL(0, next_in++)), 0);
        if (k == 4) assert_int_equal(ls_ring_push(&r, VAL(0, next_in)), -EAGAIN);
        for (int i = 0; i < k; i++) {
            void *v = ls_ring_pop(&r);
            assert_non_null(v);
            assert_int_equal(VAL_I(v), next_out++);
        }
        assert_null(ls_ring_pop(&r));
    }
    assert_int_equal(next_in, next_out);
    assert_true(r.head > 4 * ls_ring_capacity(&r)); /* really lapped */
    ls_ring_close(&r);
}

#define PRODUCERS 4
#define PER_PRODUCER 200000

typedef struct prod_arg {
    ls_ring *r;
    unsigned id;
    uint64_t full; /* pushes refused because the ring was full */
} prod_arg;

static void *producer_main(void *p)
{
    prod_arg *a = p;
    for (uint32_t i = 0; i < PER_PRODUCER; i++)
        while (ls_ring_push(a->r, VAL(a->id, i)) == -EAGAIN)
            a->full++;
    return NULL;
}

/* Several producers, one consumer: each producer's values arrive complete and in its order. */
static void test_multi_producer(void **state)
{
    (void)state;
    ls_ring r;
    assert_int_equal(ls_ring_init(&r, 64), 0);
    pthread_t t[PRODUCERS];
    prod_arg a[PRODUCERS];
    for (unsigned p = 0; p < PRODUCERS; p++) {
        a[p] = (prod_arg){.r = &r, .id = p};
        assert_int_equal(pthread_create(&t[p], NULL, producer_main, &a[p]), 0);
    }
    uint32_t next[PRODUCERS] = {0};
    uint64_t got = 0, bad = 0;
    while (got < (uint64_t)PRODUCERS * PER_PRODUCER) {
        void *v = ls_ring_pop(&r);
        if (!v) continue;
        unsigned p = VAL_P(v);
        if (p >= PRODUCERS || VAL_I(v) != next[p])
            bad++;
        else
            next[p]++;
        got++;
    }
    for (unsigned p = 0; p < PRODUCERS; p++)
        pthread_join(t[p], NULL);
    assert_int_equal(bad, 0);
    for (unsigned p = 0; p < PRODUCERS; p++)
        assert_int_equal(next[p], PER_PRODUCER);
    assert_null(ls_ring_pop(&r));
    ls_ring_close(&r);
}

typedef struct cons_arg {
    ls_ring *r;
    uint8_t *seen; /* PRODUCERS * PER_PRODUCER counters */
    uint64_t *remaining;
    uint64_t bad;
} cons_arg;

static void *consumer_main(void *p)
{
    cons_arg *c = p;
    while (__atomic_load_n(c->remaining, __ATOMIC_RELAXED) > 0) {
        void *v = ls_ring_pop(c->r);
        if (!v) continue;
        unsigned pr = VAL_P(v);
        uint32_t i = VAL_I(v);
        if (pr >= PRODUCERS || i >= PER_PRODUCER)
            c->bad++;
        else
            __atomic_fetch_add(&c->seen[(size_t)pr * PER_PRODUCER + i], 1, __ATOMIC_RELAXED);
        __atomic_fetch_sub(c->remaining, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Several producers and two consumers: every value is taken exactly once. */
static void test_multi_consumer(void **state)
{
    (void)state;
    ls_ring r;
    assert_int_equal(ls_ring_init(&r, 16), 0);
    uint8_t *seen = calloc((size_t)PRODUCERS * PER_PRODUCER, 1);
    assert_non_null(seen);
    uint64_t remaining = (uint64_t)PRODUCERS * PER_PRODUCER;
    pthread_t t[PRODUCERS], ct[2];
    prod_arg a[PRODUCERS];
    cons_arg c[2];
    for (int k = 0; k < 2; k++) {
        c[k] = (cons_arg){.r = &r, .seen = seen, .remaining = &remaining};
        assert_int_equal(pthread_create(&ct[k], NULL, consumer_main, &c[k]), 0);
    }
    for (unsigned p = 0; p < PRODUCERS; p++) {
        a[p] = (prod_arg){.r = &r, .id = p};
        assert_int_equal(pthread_create(&t[p], NULL, producer_main, &a[p]), 0);
    }
    for (unsigned p = 0; p < PRODUCERS; p++)
        pthread_join(t[p], NULL);
    for (int k = 0; k < 2; k++)
        pthread_join(ct[k], NULL);
    assert_int_equal(c[0].bad + c[1].bad, 0);
    size_t wrong = 0;
    for (size_t i = 0; i < (size_t)PRODUCERS * PER_PRODUCER; i++)
        wrong += seen[i] != 1;
    assert_int_equal(wrong, 0);
    free(seen);
    ls_ring_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_bounds),    cmocka_unit_test(test_fifo_and_full),
        cmocka_unit_test(test_wrap_around),    cmocka_unit_test(test_multi_producer),
        cmocka_unit_test(test_multi_consumer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
