/*
 * test_table.c - unit tests of the engine's device table (src/engine/table.c).
 *
 * The table is an open-addressing index with backward-shift deletion over a
 * slab of records.  These tests run long random sequences of inserts and
 * removes against a reference (an array: key -> record pointer or NULL) and
 * check after every step that lookups agree, including across index growth.
 * The caller supplies the hash tag, so one test feeds crafted tags that pile
 * every key into two clusters, one of them wrapping round the end of the
 * bucket array, which is where backward-shift deletion is easiest to get
 * wrong.  The seed is fixed; LS_TEST_SEED changes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/table.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void seed_rng(uint64_t dflt)
{
    const char *env = getenv("LS_TEST_SEED");
    rng_state = env ? strtoull(env, NULL, 0) : dflt;
    if (!rng_state) rng_state = 1;
}

static int key_id(char *buf, size_t cap, int k)
{
    return snprintf(buf, cap, "key-%d", k);
}

/* Tag policy: the real hash, or crafted clusters. */
typedef uint32_t (*tag_fn)(const ls_table *t, int k, const char *id, size_t len);

static uint32_t tag_real(const ls_table *t, int k, const char *id, size_t len)
{
    (void)k;
    return ls_table_hash(t, id, len);
}

/*
 * Two clusters whatever the bucket count: one at positions 0..3, one at the
 * last 16 positions (tag & mask lands there for any mask >= 15), which
 * wraps into the first.  Distinct keys share tags, so finds compare ids.
 */
static uint32_t tag_clustered(const ls_table *t, int k, const char *id, size_t len)
{
    (void)t;
    (void)id;
    (void)len;
    return k % 3 == 0 ? (uint32_t)(k & 3) : 0xfffffff0u | (uint32_t)(k & 0xf);
}

typedef struct ref {
    ls_device **rec; /* key -> record, NULL = absent */
    int nkeys;
    uint64_t count;
} ref;

static void check_key(ls_table *t, ref *r, tag_fn tag, int k)
{
    char id[32];
    int len = key_id(id, sizeof(id), k);
    ls_device *d = ls_table_find(t, id, (size_t)len, tag(t, k, id, (size_t)len));
    if (d != r->rec[k])
        fail_msg("key %d: find gave %p, expected %p", k, (void *)d, (void *)r->rec[k]);
    if (d) {
        assert_int_equal(d->live, 1);
        assert_int_equal(d->id_len, len);
        assert_string_equal(ls_device_id(d, (char[LS_ID_BUF]){0}), id);
    }
}

static void check_all(ls_table *t, ref *r, tag_fn tag)
{
    assert_int_equal(t->count, r->count);
    for (int k = 0; k < r->nkeys; k++)
        check_key(t, r, tag, k);
    /* The load factor bound holds, so every probe ends at an empty bucket. */
    assert_true(t->count * 4 <= (t->mask + 1) * 3);
    uint64_t used = 0;
    for (uint64_t i = 0; i <= t->mask; i++)
        used += t->buckets[i] != 0;
    assert_int_equal(used, t->count);
}

static void do_insert(ls_table *t, ref *r, tag_fn tag, int k)
{
    char id[32];
    int len = key_id(id, sizeof(id), k);
    ls_device *d = NULL;
    assert_int_equal(ls_table_insert(t, id, (size_t)len, tag(t, k, id, (size_t)len), &d), 0);
    assert_non_null(d);
    r->rec[k] = d;
    r->count++;
}

static void do_remove(ls_table *t, ref *r, tag_fn tag, int k)
{
    char id[32];
    int len = key_id(id, sizeof(id), k);
    ls_table_remove(t, r->rec[k], tag(t, k, id, (size_t)len));
    r->rec[k] = NULL;
    r->count--;
}

/*
 * Runs `ops` random operations over `nkeys` keys in three phases (mostly
 * inserts, balanced, mostly removes), checking the touched key after each
 * step and everything every `full_every` steps.
 */
static void random_ops(tag_fn tag, int nkeys, int ops, int full_every, uint64_t seed)
{
    ls_table t;
    ref r = {.nkeys = nkeys};
    r.rec = calloc((size_t)nkeys, sizeof(*r.rec));
    assert_non_null(r.rec);
    seed_rng(seed);
    assert_int_equal(ls_table_init(&t, 0x1234), 0);

    uint64_t grown = 0, last_mask = t.mask;
    for (int op = 0; op < ops; op++) {
        int insert_pct = op < ops * 3 / 10 ? 80 : op < ops * 7 / 10 ? 50 : 20;
        int k = (int)(rnd() % (uint64_t)nkeys);
        int want_insert = (int)(rnd() % 100) < insert_pct;
        if (want_insert && !r.rec[k])
            do_insert(&t, &r, tag, k);
        else if (!want_insert && r.rec[k])
            do_remove(&t, &r, tag, k);
        check_key(&t, &r, tag, k);
        /* A neighbour key too: removes shift other keys' buckets. */
        check_key(&t, &r, tag, (k + 1) % nkeys);
        if (t.mask != last_mask) {
            grown++;
            last_mask = t.mask;
            check_all(&t, &r, tag);
        }
        if ((op + 1) % full_every == 0) check_all(&t, &r, tag);
    }
    check_all(&t, &r, tag);
    /* Empty it completely, then check every key is gone. */
    for (int k = 0; k < nkeys; k++)
        if (r.rec[k]) do_remove(&t, &r, tag, k);
    check_all(&t, &r, tag);
    for (uint64_t i = 0; i <= t.mask; i++)
        assert_int_equal(t.buckets[i], 0);
    print_message("%d ops over %d keys: index grew %llu times, %llu buckets\n", ops, nkeys,
                  (unsigned long long)grown, (unsigned long long)(t.mask + 1));
    ls_table_close(&t);
    free(r.rec);
}

static void test_table_random_ops(void **state)
{
    (void)state;
    random_ops(tag_real, 20000, 100000, 10000, 0x2545f4914f6cdd1dULL);
}

static void test_table_random_ops_clustered(void **state)
{
    (void)state;
    /* Probes are long here (every key in two clusters): fewer keys. */
    random_ops(tag_clustered, 1500, 100000, 5000, 0x9e3779b97f4a7c15ULL);
}

static void test_table_growth_keeps_records(void **state)
{
    (void)state;
    enum { N = 50000 };
    ls_table t;
    assert_int_equal(ls_table_init(&t, 99), 0);
    ls_device **recs = calloc(N, sizeof(*recs));
    assert_non_null(recs);
    char id[32];
    uint64_t mask0 = t.mask;
    for (int k = 0; k < N; k++) {
        int len = key_id(id, sizeof(id), k);
        assert_null(ls_table_find(&t, id, (size_t)len, ls_table_hash(&t, id, (size_t)len)));
        assert_int_equal(
            ls_table_insert(&t, id, (size_t)len, ls_table_hash(&t, id, (size_t)len), &recs[k]), 0);
        recs[k]->last_activity = k; /* a mark that must survive growth */
    }
    assert_true(t.mask > mask0);
    assert_int_equal(t.count, N);
    assert_true(t.count * 4 <= (t.mask + 1) * 3);
    for (int k = 0; k < N; k++) {
        int len = key_id(id, sizeof(id), k);
        ls_device *d = ls_table_find(&t, id, (size_t)len, ls_table_hash(&t, id, (size_t)len));
        assert_ptr_equal(d, recs[k]); /* records never move */
        assert_int_equal(d->last_activity, k);
        assert_string_equal(ls_device_id(d, (char[LS_ID_BUF]){0}), id);
    }
    ls_table_close(&t);
    free(recs);
}

static void test_table_long_and_inline_ids(void **state)
{
    (void)state;
    ls_table t;
    assert_int_equal(ls_table_init(&t, 7), 0);
    char id[LS_ID_MAX + 1];
    ls_device *d[LS_ID_MAX + 1] = {0};
    /* Every length from 1 to 256: inline and heap ids around LS_ID_INLINE. */
    for (int len = 1; len <= LS_ID_MAX; len++) {
        memset(id, 'a' + len % 26, (size_t)len);
        id[0] = (char)('A' + len % 26);
        assert_int_equal(
            ls_table_insert(&t, id, (size_t)len, ls_table_hash(&t, id, (size_t)len), &d[len]), 0);
    }
    for (int len = 1; len <= LS_ID_MAX; len++) {
        memset(id, 'a' + len % 26, (size_t)len);
        id[0] = (char)('A' + len % 26);
        ls_device *x = ls_table_find(&t, id, (size_t)len, ls_table_hash(&t, id, (size_t)len));
        assert_ptr_equal(x, d[len]);
        assert_int_equal(x->id_len, len);
        assert_memory_equal(ls_device_id(x, (char[LS_ID_BUF]){0}), id, (size_t)len);
        assert_int_equal(ls_device_id(x, (char[LS_ID_BUF]){0})[len], '\0');
    }
    for (int len = 1; len <= LS_ID_MAX; len += 2) {
        memset(id, 'a' + len % 26, (size_t)len);
        id[0] = (char)('A' + len % 26);
        ls_table_remove(&t, d[len], ls_table_hash(&t, id, (size_t)len));
    }
    for (int len = 1; len <= LS_ID_MAX; len++) {
        memset(id, 'a' + len % 26, (size_t)len);
        id[0] = (char)('A' + len % 26);
        ls_device *x = ls_table_find(&t, id, (size_t)len, ls_table_hash(&t, id, (size_t)len));
        if (len % 2)
            assert_null(x);
        else
            assert_ptr_equal(x, d[len]);
    }
    ls_table_close(&t);
}

static void test_table_slot_reuse(void **state)
{
    (void)state;
    ls_table t;
    assert_int_equal(ls_table_init(&t, 1), 0);
    ls_device *a, *b, *c, *x;
    assert_int_equal(ls_table_insert(&t, "a", 1, ls_table_hash(&t, "a", 1), &a), 0);
    assert_int_equal(ls_table_insert(&t, "b", 1, ls_table_hash(&t, "b", 1), &b), 0);
    assert_int_equal(ls_table_insert(&t, "c", 1, ls_table_hash(&t, "c", 1), &c), 0);
    assert_int_equal(t.high, 3);
    ls_table_remove(&t, a, ls_table_hash(&t, "a", 1));
    ls_table_remove(&t, c, ls_table_hash(&t, "c", 1));
    assert_int_equal(a->live, 0);
    /* Last freed first; no new slot. */
    assert_int_equal(ls_table_insert(&t, "x", 1, ls_table_hash(&t, "x", 1), &x), 0);
    assert_ptr_equal(x, c);
    assert_int_equal(x->live, 1);
    assert_int_equal(x->last_activity, 0);
    assert_string_equal(ls_device_id(x, (char[LS_ID_BUF]){0}), "x");
    assert_int_equal(t.high, 3);
    assert_null(ls_table_find(&t, "c", 1, ls_table_hash(&t, "c", 1)));
    assert_ptr_equal(ls_table_find(&t, "b", 1, ls_table_hash(&t, "b", 1)), b);
    ls_table_close(&t);
}

/*
 * Every slot ever handed out can be released at once: insert n, remove all
 * n, twice.  n is above the free-slot stack's first capacity.
 */
static void test_table_remove_all_reinsert(void **state)
{
    (void)state;
    enum { N = 5000 };
    ls_table t;
    assert_int_equal(ls_table_init(&t, 3), 0);
    ls_device **recs = calloc(N, sizeof(*recs));
    assert_non_null(recs);
    char id[32];
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < N; k++) {
            int len = key_id(id, sizeof(id), k);
            assert_int_equal(
                ls_table_insert(&t, id, (size_t)len, ls_table_hash(&t, id, (size_t)len), &recs[k]),
                0);
        }
        assert_int_equal(t.count, N);
        for (int k = 0; k < N; k++) {
            int len = key_id(id, sizeof(id), k);
            ls_table_remove(&t, recs[k], ls_table_hash(&t, id, (size_t)len));
        }
        assert_int_equal(t.count, 0);
        assert_int_equal(t.nfree, t.high);
    }
    assert_int_equal(t.high, N); /* the second round reused the first's slots */
    ls_table_close(&t);
    free(recs);
}

int main(void)
{
    const char *filter = getenv("LS_TEST_FILTER");
    if (filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_slot_reuse),
        cmocka_unit_test(test_table_long_and_inline_ids),
        cmocka_unit_test(test_table_growth_keeps_records),
        cmocka_unit_test(test_table_remove_all_reinsert),
        cmocka_unit_test(test_table_random_ops),
        cmocka_unit_test(test_table_random_ops_clustered),
    };
    return cmocka_run_group_tests_name("table", tests, NULL, NULL);
}
