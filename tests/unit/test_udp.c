/*
 * test_udp.c - the UDP heartbeat line parser: every accepted form, every
 * rejection with its reason.  (The socket side is covered black-box.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "in/udp.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_lines),
        cmocka_unit_test(test_bad_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
