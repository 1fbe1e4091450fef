/*
 * test_uuid.c - device ids packed into the record (src/engine/uuid.c,
 * uuid.h, and the id forms of table.c).
 *
 * A canonical UUID (36 characters, 8-4-4-4-12 hex digits, letters all
 * lower-case or all upper-case) is kept as 16 bytes and a case bit; every
 * other id as text.  What must hold: the exact original text comes back
 * from ls_device_id() for every form; the packed compare accepts exactly
 * the original text and nothing else (one changed character anywhere, or
 * the other case, is another id); and near misses (mixed case, a dash
 * moved, braces, 35 or 37 characters, 'g', non-ASCII) are never packed.
 * The seed is fixed; LS_TEST_SEED changes it.
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
#include "engine/table.h"
#include "engine/uuid.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int setup_rng(void **state)
{
    (void)state;
    const char *env = getenv("LS_TEST_SEED");
    rng_state = env ? strtoull(env, NULL, 0) : 0x9e3779b97f4a7c15ULL;
    if (!rng_state) rng_state = 1;
    return 0;
}

/* Digit positions of the text, in order. */
static const int digit_at[32] = {0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11, 12, 14, 15, 16, 17,
                                 19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};

static const char lower_digits[] = "0123456789abcdef";
static const char upper_digits[] = "0123456789ABCDEF";

/* A random canonical UUID text in the given case (no NUL). */
static void random_uuid(char t[36], int upper)
{
    const char *digits = upper ? upper_digits : lower_digits;
    for (int i = 0; i < 36; i++)
        t[i] = '-';
    for (int k = 0; k < 32; k++)
        t[digit_at[k]] = digits[rnd() % 16];
}

/* Packs t (which must pack), checks the case bit, unpacks and compares. */
static void round_trip(const char *t, int want_upper)
{
    uint8_t p[16];
    int upper = -1;
    char back[36];
    assert_int_equal(ls_uuid_pack(t, 36, p, &upper), 1);
    assert_int_equal(upper, want_upper);
    ls_uuid_unpack(p, upper, back);
    assert_memory_equal(back, t, 36);
    assert_true(ls_uuid_equal(p, upper, t));
}

/* Every hex digit value at every digit position, in both cases. */
static void test_every_digit_everywhere(void **state)
{
    (void)state;
    char t[36];
    for (int up = 0; up < 2; up++) {
        const char *digits = up ? upper_digits : lower_digits;
        for (int k = 0; k < 32; k++) {
            for (int v = 0; v < 16; v++) {
                random_uuid(t, up);
                /* Keep at least one letter elsewhere so the case is known. */
                t[digit_at[(k + 1) % 32]] = digits[10 + v % 6];
                t[digit_at[k]] = digits[v];
                round_trip(t, up);
            }
        }
    }
}

/* Every byte value at every byte position, through the bytes. */
static void test_every_byte_everywhere(void **state)
{
    (void)state;
    for (int up = 0; up < 2; up++) {
        for (int pos = 0; pos < 16; pos++) {
            for (int v = 0; v < 256; v++) {
                uint8_t p[16], q[16];
                char t[36];
                for (int i = 0; i < 16; i++)
                    p[i] = (uint8_t)rnd();
                p[pos] = (uint8_t)v;
                p[(pos + 1) % 16] = 0xab; /* a letter: the case shows */
                ls_uuid_unpack(p, up, t);
                int upper = -1;
                assert_int_equal(ls_uuid_pack(t, 36, q, &upper), 1);
                assert_int_equal(upper, up);
                assert_memory_equal(q, p, 16);
                assert_true(ls_uuid_equal(p, up, t));
                assert_false(ls_uuid_equal(p, !up, t));
            }
        }
    }
}

/* Letters-free UUIDs pack (as lower case) and come back unchanged. */
static void test_digits_only(void **state)
{
    (void)state;
    round_trip("12345678-1234-5678-9012-345678901234", 0);
    round_trip("00000000-0000-0000-0000-000000000000", 0);
    round_trip("ffffffff-ffff-ffff-ffff-ffffffffffff", 0);
    round_trip("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", 1);
}

/* Any single changed character makes the compare fail. */
static void test_compare_is_exact(void **state)
{
    (void)state;
    char t[36], u[36];
    uint8_t p[16];
    int upper;
    for (int round = 0; round < 200; round++) {
        random_uuid(t, round & 1);
        t[0] = (round & 1) ? 'A' : 'a';
        assert_int_equal(ls_uuid_pack(t, 36, p, &upper), 1);
        for (int i = 0; i < 36; i++) {
            for (int c = 1; c < 256; c += 1 + (int)(rnd() % 7)) {
                memcpy(u, t, 36);
                u[i] = (char)((unsigned char)u[i] ^ (unsigned char)c);
                assert_false(ls_uuid_equal(p, upper, u));
            }
        }
    }
}

static void assert_text(const char *t, size_t len)
{
    uint8_t p[16];
    int upper = -1;
    assert_int_equal(ls_uuid_pack(t, len, p, &upper), 0);
}

/* Almost UUIDs stay text. */
static void test_near_misses(void **state)
{
    (void)state;
    static const char *const misses[] = {
        "6fa459ea-ee8a-3ca4-894e-db77e160355E", /* mixed case, last digit */
        "6Fa459ea-ee8a-3ca4-894e-db77e160355e", /* mixed case, first */
        "6fa459eA-EE8A-3CA4-894E-DB77E160355E", /* mixed case */
        "6fa459ea-ee8a-3ca4-894e-db77e160355g", /* not hex */
        "6fa459ea-ee8a-3ca4-894e-db77e16035 5", /* space */
        "6fa459eaeee8a-3ca4-894e-db77e160355e", /* dash replaced */
        "6fa459ea-ee8a-3ca4-894edb77e-160355e", /* dash moved */
        "6fa459ea-ee8a-3ca4-894e_db77e160355e", /* underscore */
        "6fa459ea+ee8a-3ca4-894e-db77e160355e",
        "{fa459ea-ee8a-3ca4-894e-db77e160355}",    /* braces, 36 chars */
        "6fa459ea-ee8a-3ca4-894e-db77e160355\xc3", /* non-ASCII */
        "6fa459ea-ee8a-3ca4-894e-db77e16035:e",    /* ':' is '9' + 1 */
        "6fa459ea-ee8a-3ca4-894e-db77e16035/e",    /* '/' is '0' - 1 */
        "6fa459ea-ee8a-3ca4-894e-db77e16035`e",    /* '`' is 'a' - 1 */
        "6fa459ea-ee8a-3ca4-894e-db77e16035@e",    /* '@' is 'A' - 1 */
    };
    for (size_t i = 0; i < sizeof(misses) / sizeof(*misses); i++) {
        assert_int_equal(strlen(misses[i]), 36);
        assert_text(misses[i], 36);
    }
    assert_text("6fa459ea-ee8a-3ca4-894e-db77e160355", 35);
    assert_text("6fa459ea-ee8a-3ca4-894e-db77e160355ee", 37);
    assert_text("6fa459eaee8a3ca4894edb77e160355e", 32);
    char nul[36];
    memcpy(nul, "6fa459ea-ee8a-3ca4-894e-db77e160355e", 36);
    nul[20] = '\0';
    assert_text(nul, 36);
}

/* The table: every form gives its exact text back and finds exactly it. */
static void check_id(ls_table *t, const char *id, size_t len, int want_form)
{
    ls_device *d = NULL;
    uint32_t tag = ls_table_hash(t, id, len);
    assert_null(ls_table_find(t, id, len, tag));
    assert_int_equal(ls_table_insert(t, id, len, tag, &d), 0);
    assert_int_equal(d->id_form, want_form);
    assert_int_equal(d->id_len, len);
    char buf[LS_ID_BUF];
    const char *back = ls_device_id(d, buf);
    assert_memory_equal(back, id, len);
    assert_int_equal(back[len], '\0');
    assert_ptr_equal(ls_table_find(t, id, len, tag), d);
}

static void test_table_forms(void **state)
{
    (void)state;
    ls_table t;
    assert_int_equal(ls_table_init(&t, 42), 0);
    check_id(&t, "6fa459ea-ee8a-3ca4-894e-db77e160355e", 36, LS_ID_UUID_LOWER);
    check_id(&t, "6FA459EA-EE8A-3CA4-894E-DB77E160355E", 36, LS_ID_UUID_UPPER);
    check_id(&t, "6fa459eA-EE8A-3CA4-894E-DB77E160355E", 36, LS_ID_HEAP);
    check_id(&t, "6fa459ea-ee8a-3ca4-894e-db77e160355g", 36, LS_ID_HEAP);
    check_id(&t, "12345678-1234-5678-9012-345678901234", 36, LS_ID_UUID_LOWER);
    check_id(&t, "{6fa459ea-ee8a-3ca4-894e-db77e160355e}", 38, LS_ID_HEAP);
    check_id(&t, "0123456789abcdef", 16, LS_ID_TEXT);
    check_id(&t, "0123456789abcdefg", 17, LS_ID_HEAP);
    check_id(&t, "x", 1, LS_ID_TEXT);
    assert_int_equal(t.count, 9);
    ls_table_close(&t);
}

/*
 * A lookup whose tag matches a packed record's (forced here: the real
 * hashes differ) compares the texts: the other case, or one changed digit,
 * is not that device.
 */
static void test_table_same_tag_other_text(void **state)
{
    (void)state;
    ls_table t;
    assert_int_equal(ls_table_init(&t, 1), 0);
    const char *lower = "6fa459ea-ee8a-3ca4-894e-db77e160355e";
    const char *upper = "6FA459EA-EE8A-3CA4-894E-DB77E160355E";
    const char *other = "6fa459ea-ee8a-3ca4-894e-db77e160355f";
    const char *mixed = "6fa459ea-ee8a-3ca4-894e-DB77E160355E";
    ls_device *a, *b, *c;
    assert_int_equal(ls_table_insert(&t, lower, 36, 7, &a), 0);
    assert_null(ls_table_find(&t, upper, 36, 7));
    assert_null(ls_table_find(&t, other, 36, 7));
    assert_null(ls_table_find(&t, mixed, 36, 7));
    assert_int_equal(ls_table_insert(&t, upper, 36, 7, &b), 0);
    assert_int_equal(ls_table_insert(&t, mixed, 36, 7, &c), 0);
    assert_ptr_equal(ls_table_find(&t, lower, 36, 7), a);
    assert_ptr_equal(ls_table_find(&t, upper, 36, 7), b);
    assert_ptr_equal(ls_table_find(&t, mixed, 36, 7), c);
    ls_table_remove(&t, b, 7);
    assert_null(ls_table_find(&t, upper, 36, 7));
    assert_ptr_equal(ls_table_find(&t, lower, 36, 7), a);
    assert_ptr_equal(ls_table_find(&t, mixed, 36, 7), c);
    ls_table_close(&t);
}

/* Through the engine: case variants are distinct devices, ids come back
 * exactly in events, and bad ids are refused whatever is stored. */
typedef struct seen {
    char id[LS_ID_BUF];
    size_t n;
} seen;

static void event_cb(void *ud, const ls_event *ev)
{
    seen *s = ud;
    char buf[LS_ID_BUF];
    if (!ev->dev) return;
    snprintf(s->id, sizeof(s->id), "%s", ls_device_id(ev->dev, buf));
    s->n++;
}

static void test_engine_ids(void **state)
{
    (void)state;
    seen s = {0};
    ls_engine *e;
    ls_engine_config cfg = {.default_timeout_ms = 1000, .max_clock_skew_ms = 5000, .seed = 3};
    ls_now now = {.mono = 1000, .wall = 1700000000000};
    assert_int_equal(ls_engine_new(&e, &cfg, event_cb, &s), 0);
    static const char *const ids[] = {
        "6fa459ea-ee8a-3ca4-894e-db77e160355e",  "6FA459EA-EE8A-3CA4-894E-DB77E160355E",
        "6fa459ea-EE8A-3ca4-894e-db77e160355e",  "6fa459ea-ee8a-3ca4-894e-db77e160355",
        "6fa459ea-ee8a-3ca4-894e-db77e160355e0", "device-with-a-rather-long-name-0001",
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(*ids); i++) {
        size_t len = strlen(ids[i]);
        assert_int_equal(ls_engine_activity(e, ids[i], len, 0, now), 0);
        assert_int_equal(s.n, i + 1); /* ACTIVITY_EVENT: a new device each time */
        assert_string_equal(s.id, ids[i]);
        const ls_device *d = ls_engine_find(e, ids[i], len);
        assert_non_null(d);
        char buf[LS_ID_BUF];
        assert_string_equal(ls_device_id(d, buf), ids[i]);
    }
    /* Known ids again: no new device, no event. */
    for (size_t i = 0; i < sizeof(ids) / sizeof(*ids); i++)
        assert_int_equal(ls_engine_activity(e, ids[i], strlen(ids[i]), 0, now), 0);
    assert_int_equal(s.n, sizeof(ids) / sizeof(*ids));
    /* Invalid ids are refused on every path, found or not. */
    const char bad[] = "6fa459ea-ee8a-3ca4-894e-db77e160355\x01";
    ls_activity a[3] = {{.id = ids[0], .len = 36}, {.id = bad, .len = 36}, {.id = "", .len = 0}};
    int rcs[3];
    assert_int_equal(ls_engine_activity_batch(e, a, 3, now, rcs), 1);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], LS_EBADID);
    assert_int_equal(rcs[2], LS_EBADID);
    assert_int_equal(ls_engine_activity(e, bad, 36, 0, now), LS_EBADID);
    assert_int_equal(ls_engine_record(e, bad, 36, 0, now), LS_EBADID);
    assert_int_equal(ls_engine_admit(e, bad, 36), LS_EBADID);
    assert_int_equal(ls_engine_admit(e, ids[1], 36), 0);
    assert_null(ls_engine_find(e, bad, 36));
    ls_engine_stats st;
    ls_engine_get_stats(e, &st);
    assert_int_equal(st.devices, sizeof(ids) / sizeof(*ids));
    /* Delete one case; the other stays. */
    assert_int_equal(ls_engine_delete(e, ids[1], 36), 0);
    assert_null(ls_engine_find(e, ids[1], 36));
    assert_non_null(ls_engine_find(e, ids[0], 36));
    ls_engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_digit_everywhere),
        cmocka_unit_test(test_every_byte_everywhere),
        cmocka_unit_test(test_digits_only),
        cmocka_unit_test(test_compare_is_exact),
        cmocka_unit_test(test_near_misses),
        cmocka_unit_test(test_table_forms),
        cmocka_unit_test(test_table_same_tag_other_text),
        cmocka_unit_test(test_engine_ids),
    };
    return cmocka_run_group_tests(tests, setup_rng, NULL);
}
