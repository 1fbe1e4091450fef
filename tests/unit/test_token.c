/*
 * test_token.c - src/cluster/token.c and msg.c: device ids as NATS subject
 * tokens (safe ids as themselves, the others '~' + base64url, one token
 * per id, every other spelling refused), FNV-1a-32 and partitions against
 * known values, and the input stream's subjects and `Ls` header.  That
 * the partitions agree with nats-server's partition() mapping is checked
 * against a real server by tests/blackbox/test_cluster.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cluster/msg.h"
#include "cluster/token.h"
#include "core/ingest.h"

static void round_trip(const char *id, size_t len, const char *want_token)
{
    char tok[LS_TOKEN_BUF], back[LS_ID_BUF];
    size_t n = ls_token_encode(id, len, tok), blen = 0;
    assert_int_equal(strlen(tok), n);
    assert_true(n <= LS_TOKEN_MAX);
    if (want_token) assert_string_equal(tok, want_token);
    for (size_t i = 0; i < n; i++)
        assert_true(tok[i] != '.' && tok[i] != ' ' && tok[i] != '*' && tok[i] != '>' &&
                    tok[i] != '/' && (unsigned char)tok[i] > 0x20 && (unsigned char)tok[i] < 0x7f);
    assert_int_equal(ls_token_decode(tok, n, back, &blen), 0);
    assert_int_equal(blen, len);
    assert_memory_equal(back, id, len);
}

static void test_safe_ids_are_their_own_token(void **state)
{
    (void)state;
    round_trip("pump-7", 6, "pump-7");
    round_trip("AA:BB:CC:DD:EE:FF", 17, "AA:BB:CC:DD:EE:FF");
    round_trip("a_b@c!$%&'()+,;=", 16, "a_b@c!$%&'()+,;=");
    round_trip("550e8400-e29b-41d4-a716-446655440000", 36, NULL);
}

static void test_unsafe_ids_are_escaped(void **state)
{
    (void)state;
    round_trip("a.b", 3, "~YS5i");
    round_trip("a b", 3, "~YSBi");
    round_trip("*", 1, "~Kg");
    round_trip(">", 1, "~Pg");
    round_trip("a.b c*>", 7, NULL);
    round_trip("group/node", 10, "~Z3JvdXAvbm9kZQ");
    round_trip("~tilde", 6, NULL);                  /* '~' is not safe: escaped */
    round_trip("\xc3\xa9t\xc3\xa9", 5, "~w6l0w6k"); /* "été" */
    round_trip("??", 2, "~Pz8");
    char big[LS_ID_MAX];
    memset(big, '.', sizeof(big));
    round_trip(big, sizeof(big), NULL);
    char tok[LS_TOKEN_BUF];
    assert_int_equal(ls_token_encode(big, sizeof(big), tok), LS_TOKEN_MAX);
    for (int len = 1; len <= 7; len++) /* every tail length of base64 */
        round_trip("*******", (size_t)len, NULL);
}

static void test_decode_refuses_other_spellings(void **state)
{
    (void)state;
    const char *bad[] = {
        "",       /* empty */
        "~",      /* nothing after the mark */
        "~YWJj",  /* "abc": a safe id has only its plain token */
        "~YS5",   /* "a." is ~YS4: the unused low bits of the 5 are not zero */
        "~Y",     /* 1 char: no whole byte */
        "~YS5i=", /* padding */
        "~YS+i",  /* '+' is standard base64, not base64url */
        "~YS/i",  /* '/' likewise */
        "a.b",    /* not a token at all */
        "a b",
        "x*",
        "~Kh",         /* "*" with a non-zero unused bit */
        "~AA",         /* a NUL byte: not a valid id */
        "~fw",         /* 0x7f: a control character */
        "caf\xc3\xa9", /* non-ASCII bytes without the '~' form */
    };
    char out[LS_ID_BUF];
    size_t len;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ls_token_decode(bad[i], strlen(bad[i]), out, &len) == 0)
            fail_msg("token \"%s\" decoded to \"%.*s\"", bad[i], (int)len, out);
    char big[LS_ID_MAX + 2];
    memset(big, 'a', sizeof(big));
    assert_int_equal(ls_token_decode(big, LS_ID_MAX, out, &len), 0);
    assert_int_equal(ls_token_decode(big, LS_ID_MAX + 1, out, &len), LS_EINVAL);
}

static void test_fnv_and_partitions(void **state)
{
    (void)state;
    /* FNV-1a 32 test vectors (Go's hash/fnv, which nats-server uses). */
    assert_int_equal(ls_token_fnv1a32("", 0), 0x811c9dc5u);
    assert_int_equal(ls_token_fnv1a32("a", 1), 0xe40c292cu);
    assert_int_equal(ls_token_fnv1a32("foobar", 6), 0xbf9cf968u);
    assert_int_equal(ls_token_partition("foobar", 6, 64), 0xbf9cf968u % 64);
    assert_int_equal(ls_token_partition("anything", 8, 1), 0);
    /* Spread: 64 partitions over 100,000 ids, none far from the mean. */
    static unsigned hits[64];
    char id[32];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(id, sizeof(id), "dev-%d", i);
        hits[ls_token_partition(id, (size_t)n, 64)]++;
    }
    for (int p = 0; p < 64; p++)
        assert_true(hits[p] > 1300 && hits[p] < 1830);
}

static void test_subjects(void **state)
{
    (void)state;
    char subj[LS_MSG_SUBJECT_BUF];
    assert_int_equal(ls_msg_subject(subj, 17, "pump-7", 6), strlen("ls.in.17.pump-7"));
    assert_string_equal(subj, "ls.in.17.pump-7");
    unsigned p;
    const char *tok;
    size_t n;
    assert_int_equal(ls_msg_parse_subject(subj, strlen(subj), 64, &p, &tok, &n), 0);
    assert_int_equal(p, 17);
    assert_int_equal(n, 6);
    assert_memory_equal(tok, "pump-7", 6);
    assert_int_equal(ls_msg_parse_subject("ls.in.0.x", 9, 1, &p, &tok, &n), 0);
    const char *bad[] = {
        "ls.in.64.x", "ls.in.07.x", "ls.in..x", "ls.in.1.",   "ls.in.1.a.b",
        "ls.in.1",    "ls.in.x.y",  "dev.x",    "ls.in.-1.x", "ls.in.99999999999999999999.x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ls_msg_parse_subject(bad[i], strlen(bad[i]), 64, &p, &tok, &n) == 0)
            fail_msg("subject \"%s\" parsed", bad[i]);
}

static void header_round_trip(unsigned kind, int64_t ts, const char *want)
{
    char h[LS_MSG_HEADER_BUF];
    size_t n = ls_msg_header(h, kind, ts);
    if (!want) {
        assert_int_equal(n, 0);
        return;
    }
    assert_string_equal(h, want);
    ls_msg_item it;
    assert_int_equal(ls_msg_parse_header(h, n, &it), 0);
    assert_int_equal(it.kind, kind);
    assert_int_equal(it.ts, kind ? 0 : ts);
}

static void test_header(void **state)
{
    (void)state;
    header_round_trip(0, 0, NULL); /* a plain activity has no header */
    header_round_trip(0, 1795326633812, "act ts=1795326633812");
    header_round_trip(LS_INGEST_ONLINE, 0, "on");
    header_round_trip(LS_INGEST_OFFLINE, 0, "off");
    header_round_trip(LS_INGEST_ONLINE | LS_INGEST_RETAINED, 0, "on r");
    header_round_trip(LS_INGEST_OFFLINE | LS_INGEST_RETAINED, 0, "off r");
    ls_msg_item it;
    assert_int_equal(ls_msg_parse_header(NULL, 0, &it), 0);
    assert_int_equal(it.kind, 0);
    assert_int_equal(it.ts, 0);
    assert_int_equal(ls_msg_parse_header("act", 3, &it), 0);
    assert_int_equal(it.ts, 0);
    const char *bad[] = {"",
                         "act ts=0",
                         "act ts=",
                         "act ts=-5",
                         "act r",
                         "on ts=5",
                         "on r r",
                         "on  r",
                         "on r ",
                         "ON",
                         "online",
                         "act ts=1 ts=2",
                         "act ts=99999999999999999999",
                         "off x",
                         " on"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ls_msg_parse_header(bad[i], strlen(bad[i]), &it) == 0)
            fail_msg("header \"%s\" parsed", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_ids_are_their_own_token),
        cmocka_unit_test(test_unsafe_ids_are_escaped),
        cmocka_unit_test(test_decode_refuses_other_spellings),
        cmocka_unit_test(test_fnv_and_partitions),
        cmocka_unit_test(test_subjects),
        cmocka_unit_test(test_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
