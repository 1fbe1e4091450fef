/*
 * test_mqtt_topic.c - topic patterns with {device} and publish templates
 * (src/mqtt/topic.c): parsing, the subscription filter, MQTT matching
 * rules ('+', '#', '$' topics, empty levels) and id escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt/topic.h"

static ls_topic_pattern *parse_ok(const char *s)
{
    static ls_topic_pattern p;
    const char *why = NULL;
    if (ls_topic_pattern_parse(&p, s, strlen(s), &why) != 0) fail_msg("%s: %s", s, why);
    return &p;
}

static void parse_bad(const char *s, const char *want)
{
    ls_topic_pattern p;
    const char *why = NULL;
    if (ls_topic_pattern_parse(&p, s, strlen(s), &why) == 0) fail_msg("%s parsed", s);
    assert_non_null(why);
    if (!strstr(why, want)) fail_msg("%s: %s (wanted %s)", s, why, want);
}

/* Matches topic; returns the device (static buffer) or NULL. */
static const char *match(const ls_topic_pattern *p, const char *topic)
{
    static char dev[600];
    const char *d = NULL;
    size_t n = 0;
    if (!ls_topic_match(p, topic, strlen(topic), &d, &n)) return NULL;
    memcpy(dev, d, n);
    dev[n] = '\0';
    return dev;
}

static void test_parse_and_filter(void **state)
{
    (void)state;
    assert_string_equal(parse_ok("devices/{device}/telemetry")->filter, "devices/+/telemetry");
    assert_string_equal(parse_ok("sensors/+/{device}/#")->filter, "sensors/+/+/#");
    assert_string_equal(parse_ok("{device}")->filter, "+");
    assert_string_equal(parse_ok("{device}/#")->filter, "+/#");
    assert_string_equal(parse_ok("/{device}//x")->filter, "/+//x");
    assert_string_equal(parse_ok("a{b}/{device}")->filter, "a{b}/+");
}

static void test_parse_errors(void **state)
{
    (void)state;
    parse_bad("", "empty");
    parse_bad("devices/telemetry", "{device}");
    parse_bad("a/{device}/{device}", "twice");
    parse_bad("a/dev-{device}", "whole level");
    parse_bad("a/{device}x", "whole level");
    parse_bad("a/#/{device}", "'#' must be the last");
    parse_bad("a+/{device}", "whole levels");
    parse_bad("a/{device}/b#", "whole levels");
    parse_bad("a/{device}/\x01", "control");
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{device}/", 9);
    parse_bad(big, "longer than 512");
    char deep[200] = "{device}";
    for (size_t i = 0, n = strlen(deep); i < 40; i++, n += 2)
        snprintf(deep + n, sizeof(deep) - n, "/x");
    parse_bad(deep, "32 levels");
}

static void test_match(void **state)
{
    (void)state;
    ls_topic_pattern p = *parse_ok("devices/{device}/telemetry");
    assert_string_equal(match(&p, "devices/pump-7/telemetry"), "pump-7");
    assert_string_equal(match(&p, "devices//telemetry"),
                        ""); /* empty level: the engine refuses it */
    assert_null(match(&p, "devices/pump-7/telemetry/x"));
    assert_null(match(&p, "devices/pump-7"));
    assert_null(match(&p, "devices/pump-7/telemetr"));
    assert_null(match(&p, "devices/pump-7/telemetryx"));
    assert_null(match(&p, "Devices/pump-7/telemetry"));
    assert_null(match(&p, ""));

    ls_topic_pattern q = *parse_ok("sensors/+/{device}/#");
    assert_string_equal(match(&q, "sensors/site/dev/a/b/c"), "dev");
    assert_string_equal(match(&q, "sensors/site/dev"), "dev"); /* '#' matches the parent */
    assert_string_equal(match(&q, "sensors/site/dev/"), "dev");
    assert_null(match(&q, "sensors/site"));
    assert_null(match(&q, "other/site/dev"));

    ls_topic_pattern r = *parse_ok("{device}/#");
    assert_string_equal(match(&r, "x"), "x");
    assert_string_equal(match(&r, "x/y/z"), "x");
    assert_null(match(&r, "$SYS/broker/uptime")); /* wildcards never match $ topics */

    ls_topic_pattern s = *parse_ok("$share/{device}");
    assert_string_equal(match(&s, "$share/a"), "a"); /* a literal $ level does */
}

static void test_list(void **state)
{
    (void)state;
    ls_topic_list l;
    const char *why = NULL;
    const char *s =
        " devices/{device}/telemetry ,devices/{device}/attributes,\tsensors/+/{device}/# ";
    assert_int_equal(ls_topic_list_parse(&l, s, strlen(s), &why), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[2].filter, "sensors/+/+/#");
    ls_topic_list_free(&l);
    assert_int_equal(ls_topic_list_parse(&l, "  ", 2, &why), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(ls_topic_list_parse(&l, "", 0, &why), 0);
    const char *bad[] = {"a/{device},", ",a/{device}", "a/{device},,b/{device}", "a/{device}, b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (ls_topic_list_parse(&l, bad[i], strlen(bad[i]), &why) == 0)
            fail_msg("%s parsed", bad[i]);
        assert_non_null(why);
        assert_null(l.v);
    }
    char many[2000] = "";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%st/{device}", i ? "," : "");
    assert_true(ls_topic_list_parse(&l, many, strlen(many), &why) < 0);
    assert_non_null(strstr(why, "32"));
    assert_int_equal(ls_topic_list_check("a/{device}", 10, &why), 0);
    assert_int_equal(ls_topic_pattern_check("", 0, &why), 0);
}

static void test_templates(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(ls_topic_template_check1("lastseen/state/{device}", 23, &why), 0);
    assert_true(ls_topic_template_check1("lastseen/state", 14, &why) < 0);
    assert_int_equal(ls_topic_template_check0("lastseen/events", 15, &why), 0);
    assert_int_equal(ls_topic_template_check0("", 0, &why), 0);
    assert_true(ls_topic_template_check0("a/+/b", 5, &why) < 0);
    assert_true(ls_topic_template_check0("a/#", 3, &why) < 0);
    assert_true(ls_topic_template_check0("{device}/{device}", 17, &why) < 0);
    assert_int_equal(ls_topic_template_prefix("lastseen/events/{device}"), 16);
    assert_int_equal(ls_topic_template_prefix("{device}/events"), 0);
    assert_int_equal(ls_topic_template_prefix("fixed"), 5);

    ls_buf b;
    ls_buf_init(&b, 1024);
    assert_int_equal(ls_topic_expand(&b, "lastseen/events/{device}", "a+b#c%d/e", 9), 0);
    assert_int_equal(b.len, strlen("lastseen/events/a%2Bb%23c%25d/e"));
    assert_memory_equal(b.p, "lastseen/events/a%2Bb%23c%25d/e", b.len);
    ls_buf_reset(&b);
    assert_int_equal(ls_topic_expand(&b, "x/{device}/y", "plain", 5), 0);
    assert_memory_equal(b.p, "x/plain/y", b.len);
    ls_buf_reset(&b);
    assert_int_equal(ls_topic_expand(&b, "all-events", "d", 1), 0);
    assert_memory_equal(b.p, "all-events", b.len);
    ls_buf_free(&b);
    ls_buf_init(&b, 8); /* the cap is reported */
    assert_int_equal(ls_topic_expand(&b, "lastseen/events/{device}", "d", 1), -1);
    ls_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_filter),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_templates),
    };
    return cmocka_run_group_tests_name("mqtt_topic", tests, NULL, NULL);
}
