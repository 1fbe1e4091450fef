/*
 * test_udp.c - the UDP heartbeat line parser: every accepted form, every
 * rejection with its reason; signed lines (udp_auth.c): the key file, the
 * MAC against OpenSSL's HMAC(), rotation, each reason a signed line is
 * dropped for.  (The socket side is covered black-box.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>

#include "in/udp.h"
#include "in/udp_auth.h"

static int parse(const char *line, const char **id, size_t *len, int64_t *ts, ls_udp_reject *why)
{
    return ls_udp_parse_line(line, strlen(line), id, len, ts, why);
}

static void test_good_lines(void **state)
{
    const char *id;
    size_t len;
    int64_t ts;
    ls_udp_reject why;
    (void)state;
    static const struct {
        const char *line, *id;
        int64_t ts;
    } good[] = {
        {"dev-1", "dev-1", 0},
        {"dev-1 1732255200123", "dev-1", 1732255200123},
        {"  dev-1\t 42  ", "dev-1", 42},
        {"dev-1\r", "dev-1", 0},
        {"dev-1 7\r", "dev-1", 7},
        {"grp/node/d\xc3\xa9v", "grp/node/d\xc3\xa9v", 0},
        {"x 9223372036854775807", "x", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(parse(good[i].line, &id, &len, &ts, &why), 0);
        assert_int_equal(len, strlen(good[i].id));
        assert_memory_equal(id, good[i].id, len);
        assert_int_equal(ts, good[i].ts);
    }
    assert_int_equal(parse("", &id, &len, &ts, &why), 1);
    assert_int_equal(parse("  \t\r", &id, &len, &ts, &why), 1);
}

static void test_bad_lines(void **state)
{
    const char *id;
    size_t len;
    int64_t ts;
    ls_udp_reject why;
    char long_id[300];
    (void)state;
    static const struct {
        const char *line;
        ls_udp_reject why;
    } bad[] = {
        {"dev 0", LS_UDP_BAD_TS},
        {"dev -5", LS_UDP_BAD_TS},
        {"dev 12a", LS_UDP_BAD_TS},
        {"dev 9223372036854775808", LS_UDP_BAD_TS},
        {"dev 99999999999999999999999", LS_UDP_BAD_TS},
        {"dev 1 2", LS_UDP_BAD_LINE},
        {"d\x01v", LS_UDP_BAD_ID},
        {"d\xff", LS_UDP_BAD_ID},
        {"\xc3", LS_UDP_BAD_ID},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i].line, &id, &len, &ts, &why), -1);
        assert_int_equal(why, bad[i].why);
    }
    memset(long_id, 'a', 257);
    long_id[257] = '\0';
    assert_int_equal(parse(long_id, &id, &len, &ts, &why), -1);
    assert_int_equal(why, LS_UDP_BAD_ID);
    long_id[256] = '\0'; /* 256 bytes: the longest id */
    assert_int_equal(parse(long_id, &id, &len, &ts, &why), 0);
    assert_int_equal(len, 256);
    /* A NUL inside the line is a control character in the id. */
    assert_int_equal(ls_udp_parse_line("a\0b", 3, &id, &len, &ts, &why), -1);
    assert_int_equal(why, LS_UDP_BAD_ID);
    assert_string_equal(ls_udp_reject_name(LS_UDP_TRUNCATED), "truncated");
    assert_string_equal(ls_udp_reject_name(LS_UDP__REJECTS), "unknown");
}

#define KEY_A "000102030405060708090a0b0c0d0e0f"
#define KEY_B "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a0908070605040302010ff"

static void test_key_file(void **state)
{
    static const char good[] = "# sources and keys\n"
                               "gw-1 " KEY_A "  # current\n"
                               "\n"
                               "  fleet.b\t" KEY_B "\r\n"
                               "gw-1 " KEY_B "\n";
    ls_udp_keys *k;
    char err[128];
    size_t sources;
    (void)state;
    assert_int_equal(ls_udp_keys_parse(good, strlen(good), &k, err, sizeof(err)), 0);
    assert_int_equal(ls_udp_keys_count(k, &sources), 3);
    assert_int_equal(sources, 2);
    assert_non_null(ls_udp_keys_signer(k, "gw-1"));
    assert_non_null(ls_udp_keys_signer(k, "fleet.b"));
    assert_null(ls_udp_keys_signer(k, "gw-2"));
    ls_udp_keys_free(k);
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"", "no key in it"},
        {"# only a comment\n", "no key in it"},
        {"gw-1\n", "line 1: expected"},
        {"gw-1 " KEY_A " extra\n", "line 1: expected"},
        {"\ngw/1 " KEY_A "\n", "line 2: a source name is"},
        {"a23456789012345678901234567890123 " KEY_A, "longer than 32"},
        {"gw-1 0011\n", "line 1: a key is 32 to 128 hex digits"},
        {"gw-1 " KEY_A "0\n", "line 1: a key is"},
        {"gw-1 000102030405060708090a0b0c0d0eXX\n", "line 1: the key is not hex"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        k = (ls_udp_keys *)1;
        assert_int_equal(ls_udp_keys_parse(bad[i].text, strlen(bad[i].text), &k, err, sizeof(err)),
                         -EINVAL);
        assert_null(k);
        if (!strstr(err, bad[i].err)) fail_msg("%zu: \"%s\" lacks \"%s\"", i, err, bad[i].err);
    }
}

static void test_sign_matches_openssl(void **state)
{
    ls_udp_keys *k;
    char err[128], line[256], hex[65];
    unsigned char key[16], mac[32];
    unsigned ml, ml2;
    static const char text[] = "gw-1 " KEY_A "\n";
    (void)state;
    assert_int_equal(ls_udp_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0);
    size_t n =
        ls_udp_sign(ls_udp_keys_signer(k, "gw-1"), "pump-7", 6, 1732255200123, line, sizeof(line));
    assert_true(n > 0);
    line[n] = '\0';
    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    HMAC(EVP_sha256(), key, 16, (const unsigned char *)"pump-7 1732255200123", 20, mac, &ml);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    char want[256];
    snprintf(want, sizeof(want), "pump-7 1732255200123 gw-1:%s", hex);
    assert_string_equal(line, want);
    assert_int_equal(ls_udp_sign(ls_udp_keys_signer(k, "gw-1"), "pump-7", 6, 1, line, 20), 0);
    /* Messages around and over one block (55 bytes), against HMAC() too. */
    char id[200], msg[240];
    memset(id, 'x', sizeof(id));
    for (size_t idl = 38; idl <= 120; idl += 1) {
        int msl = snprintf(msg, sizeof(msg), "%.*s 1732255200123", (int)idl, id);
        HMAC(EVP_sha256(), key, 16, (const unsigned char *)msg, (size_t)msl, mac, &ml2);
        n = ls_udp_sign(ls_udp_keys_signer(k, "gw-1"), id, idl, 1732255200123, line, sizeof(line));
        assert_true(n > 32);
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        assert_memory_equal(line + n - 32, hex, 32);
    }
    ls_udp_keys_free(k);
}

static int signed_parse(ls_udp_keys *k, const char *line, int64_t now, const char **id, size_t *len,
                        int64_t *ts, ls_udp_reject *why)
{
    return ls_udp_parse_signed(k, line, strlen(line), now, 60000, 5000, id, len, ts, why);
}

static void test_signed_lines(void **state)
{
    static const char text[] = "gw-1 " KEY_A "\ngw-1 " KEY_B "\nother " KEY_B "\n";
    static const char old_only[] = "gw-1 " KEY_B "\n";
    ls_udp_keys *k, *signer;
    char err[128], line[256], buf[300];
    const char *id;
    size_t len;
    int64_t ts, now = 1732255200000;
    ls_udp_reject why;
    (void)state;
    assert_int_equal(ls_udp_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0);
    const ls_udp_key *a = ls_udp_keys_signer(k, "gw-1");
    size_t n = ls_udp_sign(a, "pump-7", 6, now - 1000, line, sizeof(line));
    line[n] = '\0';
    assert_int_equal(signed_parse(k, line, now, &id, &len, &ts, &why), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(id, "pump-7", 6);
    assert_int_equal(ts, now - 1000);
    /* Blanks around the fields and a \r are allowed, as in unsigned lines. */
    snprintf(buf, sizeof(buf), "  %.*s  %s\r", 6, line, line + 7);
    assert_int_equal(signed_parse(k, buf, now, &id, &len, &ts, &why), 0);
    /* The second key of the source (a rotation) works too. */
    assert_int_equal(ls_udp_keys_parse(old_only, strlen(old_only), &signer, err, sizeof(err)), 0);
    n = ls_udp_sign(ls_udp_keys_signer(signer, "gw-1"), "pump-8", 6, now, line, sizeof(line));
    line[n] = '\0';
    assert_int_equal(signed_parse(k, line, now, &id, &len, &ts, &why), 0);
    assert_int_equal(signed_parse(k, line, now, &id, &len, &ts, &why), 0);
    ls_udp_keys_free(signer);
    assert_int_equal(signed_parse(k, "", now, &id, &len, &ts, &why), 1);
    assert_int_equal(signed_parse(k, "  \r", now, &id, &len, &ts, &why), 1);

    n = ls_udp_sign(a, "pump-7", 6, now, line, sizeof(line));
    line[n] = '\0';
    char *mac = strchr(line, ':') + 1;
    static const struct {
        const char *pre; /* then the first `maclen` characters of the MAC, then post */
        int maclen;
        const char *post;
        ls_udp_reject why;
    } bad[] = {
        {"pump-7", 0, "", LS_UDP_UNSIGNED},
        {"pump-7 1732255200000", 0, "", LS_UDP_UNSIGNED},
        {"pump-7 gw-1:", 32, "", LS_UDP_UNSIGNED},
        {"pump-7 1732255200000 nobody:", 32, "", LS_UDP_UNKNOWN_SOURCE},
        {"pump-7 1732255200000 other:", 32, "", LS_UDP_FORGED}, /* another source's key */
        {"pump-8 1732255200000 gw-1:", 32, "", LS_UDP_FORGED},  /* another device */
        {"pump-7 1732255200001 gw-1:", 32, "", LS_UDP_FORGED},  /* another time */
        {"pump-7 01732255200000 gw-1:", 32, "", LS_UDP_FORGED}, /* the digits as sent count */
        {"pump-7 1732255200000 gw-1:", 30, "", LS_UDP_FORGED},  /* cut short */
        {"pump-7 1732255200000 gw-1", 32, "", LS_UDP_FORGED},   /* no ':' */
        {"pump-7 1732255200000 gw-1:", 31, "g", LS_UDP_FORGED}, /* not hex */
        {"pump-7 1732255200000 gw-1:", 32, " x", LS_UDP_BAD_LINE},
        {"pump\x01 1732255200000 gw-1:", 32, "", LS_UDP_BAD_ID},
        {"pump-7 17x gw-1:", 32, "", LS_UDP_BAD_TS},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "%s%.*s%s", bad[i].pre, bad[i].maclen, mac, bad[i].post);
        if (signed_parse(k, buf, now, &id, &len, &ts, &why) != -1 || why != bad[i].why)
            fail_msg("%zu: %s: expected %s, got %s", i, buf, ls_udp_reject_name(bad[i].why),
                     ls_udp_reject_name(why));
    }
    /* The window: 60 s back, 5 s ahead, inclusive. */
    static const int64_t offsets[][2] = {{-60000, 0}, {-60001, -1}, {5000, 0}, {5001, -1}};
    for (size_t i = 0; i < 4; i++) {
        n = ls_udp_sign(a, "pump-7", 6, now + offsets[i][0], line, sizeof(line));
        line[n] = '\0';
        assert_int_equal(signed_parse(k, line, now, &id, &len, &ts, &why), (int)offsets[i][1]);
        if (offsets[i][1]) assert_int_equal(why, LS_UDP_OUT_OF_WINDOW);
    }
    assert_string_equal(ls_udp_reject_name(LS_UDP_OUT_OF_WINDOW), "out_of_window");
    assert_string_equal(ls_udp_reject_name(LS_UDP_UNSIGNED), "unsigned");
    ls_udp_keys_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_lines),   cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_key_file),     cmocka_unit_test(test_sign_matches_openssl),
        cmocka_unit_test(test_signed_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
