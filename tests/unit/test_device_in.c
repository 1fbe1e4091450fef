/*
 * test_device_in.c - unit tests of the device JSON reader (core/device_in.h)
 * together with the writer (core/format.h): what ls_format_record() writes
 * reads back as the same record; PUT bodies (SETTINGS) and import lines
 * (RECORD) are checked by the same rules with the same messages; SETTINGS
 * refuses what it does not take, RECORD ignores what GET derives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/device_in.h"
#include "core/format.h"

typedef struct read_result {
    int rc;
    ls_device_state rec;
    unsigned given;
    char why[256];
    json_t *o; /* kept: rec points into it */
} read_result;

static read_result read_as(const char *text, ls_device_in_mode mode)
{
    read_result r = {0};
    json_error_t err;
    r.o = json_loads(text, JSON_DECODE_ANY, &err);
    assert_non_null(r.o);
    r.rc = ls_device_in(r.o, mode, &r.rec, &r.given, r.why, sizeof(r.why));
    return r;
}

static void done(read_result *r)
{
    json_decref(r->o);
}

/* What ls_format_record() writes of rec (with the availability the rule
 * gives it under cfg) is read back in RECORD mode as rec. */
static void check_round_trip(const ls_device_state *rec)
{
    ls_engine_config cfg = {.default_timeout_ms = 600000, .grace_ms = 180000};
    ls_type_level lvl;
    ls_availability av;
    ls_type_level_of(NULL, &cfg, &lvl);
    ls_availability_of(rec->timeout_ms, rec->has_c8y, rec->response_interval, &lvl, &cfg, &av);
    ls_buf b;
    ls_buf_init(&b, 1 << 16);
    assert_int_equal(ls_format_record(&b, rec, &av, NULL), 0);
    ls_buf_putc(&b, '\0');
    read_result r = read_as(b.p, LS_DEVICE_IN_RECORD);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rec.id_len, rec->id_len);
    assert_memory_equal(r.rec.id, rec->id, rec->id_len);
    assert_int_equal(r.rec.type_len, rec->type_len);
    if (rec->type)
        assert_memory_equal(r.rec.type, rec->type, rec->type_len);
    else
        assert_null(r.rec.type);
    assert_int_equal(r.rec.timeout_ms, rec->timeout_ms);
    assert_int_equal(r.rec.last_activity, rec->last_activity);
    assert_int_equal(r.rec.last_connect, rec->last_connect);
    assert_int_equal(r.rec.last_disconnect, rec->last_disconnect);
    assert_int_equal(r.rec.inactivity_alarm, rec->inactivity_alarm);
    assert_int_equal(r.rec.sessions, rec->sessions);
    assert_int_equal(r.rec.active, rec->active);
    assert_int_equal(r.rec.has_c8y, rec->has_c8y);
    assert_int_equal(r.rec.response_interval, rec->has_c8y ? rec->response_interval : 0);
    done(&r);
    ls_buf_free(&b);
}

static void test_writer_reader_round_trip(void **state)
{
    (void)state;
    ls_device_state plain = {.id = "plain", .id_len = 5};
    check_round_trip(&plain);
    ls_device_state full = {.id = "m\xc3\xa9ter \"7\"/\\x",
                            .id_len = 13,
                            .type = "pump",
                            .type_len = 4,
                            .timeout_ms = 90000,
                            .last_activity = 1700000000123,
                            .last_connect = 1700000000001,
                            .last_disconnect = 1700000000002,
                            .inactivity_alarm = 1700000000003,
                            .sessions = 4294967295u,
                            .active = 1,
                            .has_c8y = 1,
                            .response_interval = -32768};
    check_round_trip(&full);
    /* A derived timeout (c8y, here) is not read as the device's own. */
    ls_device_state c8y = {.id = "c", .id_len = 1, .has_c8y = 1, .response_interval = 7};
    check_round_trip(&c8y);
    ls_device_state maint = {.id = "m", .id_len = 1, .has_c8y = 1, .response_interval = 0};
    check_round_trip(&maint);
}

/* A bad value gets the same message from a PUT body and an import line. */
static void test_same_rules_both_modes(void **state)
{
    (void)state;
    static const struct {
        const char *field, *reason;
    } bad[] = {
        {"\"inactivityTimeout\": 0", "inactivityTimeout must be"},
        {"\"inactivityTimeout\": 315360000001", "inactivityTimeout must be"},
        {"\"inactivityTimeout\": \"5\"", "inactivityTimeout must be"},
        {"\"type\": \"\"", "type must be"},
        {"\"type\": \"a\\u0001b\"", "type must be"},
        {"\"type\": null", "type must be"},
        {"\"c8y_RequiredAvailability\": 5", "c8y_RequiredAvailability must be"},
        {"\"c8y_RequiredAvailability\": {\"responseInterval\": 1, \"x\": 2}",
         "c8y_RequiredAvailability must be"},
        {"\"c8y_RequiredAvailability\": {\"responseInterval\": 1.5}",
         "c8y_RequiredAvailability must be"},
        {"\"id\": 5", "id must be a string"},
        {"\"id\": \"\"", "invalid id: "},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        /* An id first for the import line (it needs one); the bad field's
         * own "id" replaces it. */
        int has_id = strncmp(bad[i].field, "\"id\"", 4) == 0;
        snprintf(text, sizeof(text), "{%s%s}", has_id ? "" : "\"id\": \"d\", ", bad[i].field);
        read_result put = read_as(text, LS_DEVICE_IN_SETTINGS);
        read_result imp = read_as(text, LS_DEVICE_IN_RECORD);
        assert_int_equal(put.rc, -1);
        assert_int_equal(imp.rc, -1);
        assert_string_equal(put.why, imp.why);
        if (!strstr(put.why, bad[i].reason)) fail_msg("%s: %s", bad[i].field, put.why);
        done(&put);
        done(&imp);
    }
}

static void test_settings_mode(void **state)
{
    (void)state;
    read_result r = read_as("{\"inactivityTimeout\": null, \"type\": \"default\", "
                            "\"c8y_RequiredAvailability\": {\"responseInterval\": 99999}}",
                            LS_DEVICE_IN_SETTINGS);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.given, LS_DEVICE_IN_TIMEOUT | LS_DEVICE_IN_TYPE | LS_DEVICE_IN_C8Y);
    assert_null(r.rec.type);                              /* "default" is no type */
    assert_int_equal(r.rec.response_interval, LS_RI_MAX); /* clamped */
    ls_device_config c;
    ls_device_in_config(&r.rec, r.given, &c);
    assert_int_equal(c.set_timeout, 1);
    assert_int_equal(c.timeout_ms, 0);
    assert_string_equal(c.type, "default");
    assert_int_equal(c.type_len, 7);
    assert_int_equal(c.set_c8y, 1);
    assert_int_equal(c.has_c8y, 1);
    done(&r);

    r = read_as("{\"c8y_RequiredAvailability\": null}", LS_DEVICE_IN_SETTINGS);
    assert_int_equal(r.rc, 0);
    ls_device_in_config(&r.rec, r.given, &c);
    assert_int_equal(c.set_c8y, 1);
    assert_int_equal(c.has_c8y, 0);
    assert_null(c.type); /* not given: kept */
    assert_int_equal(c.set_timeout, 0);
    done(&r);

    /* Only the settings: the state fields of an export line are refused. */
    const char *refused[] = {"{\"active\": true}", "{\"lastActivityTime\": 5}",
                             "{\"sessions\": 1}",  "{\"inactivityTimeoutSource\": \"device\"}",
                             "{\"foo\": 1}",       "{\"InactivityTimeout\": 5}"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = read_as(refused[i], LS_DEVICE_IN_SETTINGS);
        assert_int_equal(r.rc, -1);
        assert_non_null(strstr(r.why, "unknown field"));
        done(&r);
    }
    r = read_as("{}", LS_DEVICE_IN_SETTINGS);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.given, 0);
    done(&r);
}

static void test_record_mode(void **state)
{
    (void)state;
    /* Derived and unknown fields are ignored; the timeout is the device's
     * own only with source "device". */
    read_result r =
        read_as("{\"id\": \"a\", \"inactivityTimeout\": 120000, "
                "\"inactivityTimeoutSource\": \"type\", \"c8y_Availability\": "
                "{\"status\": \"AVAILABLE\"}, \"c8y_ActiveAlarmsStatus\": {\"major\": 1},"
                " \"extra\": [1]}",
                LS_DEVICE_IN_RECORD);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rec.timeout_ms, 0);
    assert_int_equal(r.given & LS_DEVICE_IN_TIMEOUT, 0);
    done(&r);
    r = read_as("{\"id\": \"a\", \"inactivityTimeout\": 120000, \"inactivityTimeoutSource\": "
                "\"device\", \"sessions\": 2, \"active\": true}",
                LS_DEVICE_IN_RECORD);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.rec.timeout_ms, 120000);
    assert_int_equal(r.rec.sessions, 2);
    assert_int_equal(r.rec.active, 1);
    assert_int_equal(r.given, LS_DEVICE_IN_ID | LS_DEVICE_IN_TIMEOUT | LS_DEVICE_IN_STATE);
    done(&r);

    static const struct {
        const char *line, *reason;
    } bad[] = {
        {"{\"type\": \"t\"}", "no id"},
        {"[1]", "not a JSON object"},
        {"{\"id\": \"a\", \"inactivityTimeoutSource\": \"device\"}", "no inactivityTimeout"},
        {"{\"id\": \"a\", \"inactivityTimeout\": null, \"inactivityTimeoutSource\": \"device\"}",
         "no inactivityTimeout"},
        {"{\"id\": \"a\", \"inactivityTimeout\": -5}", "inactivityTimeout must be"},
        {"{\"id\": \"a\", \"lastActivityTime\": -1}", "lastActivityTime must be"},
        {"{\"id\": \"a\", \"inactivityAlarmTime\": 253402300800000}",
         "inactivityAlarmTime must be"},
        {"{\"id\": \"a\", \"sessions\": 4294967296}", "sessions must be"},
        {"{\"id\": \"a\", \"active\": 1}", "active must be"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = read_as(bad[i].line, LS_DEVICE_IN_RECORD);
        assert_int_equal(r.rc, -1);
        if (!strstr(r.why, bad[i].reason)) fail_msg("%s: %s", bad[i].line, r.why);
        done(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_reader_round_trip),
        cmocka_unit_test(test_same_rules_both_modes),
        cmocka_unit_test(test_settings_mode),
        cmocka_unit_test(test_record_mode),
    };
    return cmocka_run_group_tests_name("device_in", tests, NULL, NULL);
}
