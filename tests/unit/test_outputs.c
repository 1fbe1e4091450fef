/*
 * test_outputs.c - unit tests for the pure parts of the outputs: the
 * webhook signature (RFC 4231 vectors and the header's shape) and back-off,
 * the Prometheus text writer (escaping, histograms, seconds), the metric
 * tables (methods, codes, sources; route templates: test_routes.c), and reading the type
 * and device back from event lines written by ls_format_event().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "engine/engine.h"
#include "core/format.h"
#include "core/prom.h"
#include "out/webhook.h"

/* ---- webhook signature and back-off ----------------------------------- */

static void test_sign_rfc4231(void **state)
{
    char sig[LS_WEBHOOK_SIG_LEN];
    (void)state;

    /* RFC 4231, test case 2. */
    const char *data = "what do ya want for nothing?";
    assert_int_equal(ls_webhook_sign("Jefe", 4, data, strlen(data), sig), 0);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* Test case 6: a key longer than the block size (131 bytes of 0xaa). */
    char key[131];
    memset(key, 0xaa, sizeof key);
    const char *big = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_int_equal(ls_webhook_sign(key, sizeof key, big, strlen(big), sig), 0);
    assert_string_equal(sig,
                        "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    assert_int_equal(strlen(sig), LS_WEBHOOK_SIG_LEN - 1);
}

static void test_sign_body(void **state)
{
    char a[LS_WEBHOOK_SIG_LEN], b[LS_WEBHOOK_SIG_LEN];
    const char *body = "{\"seq\":1,\"type\":\"ACTIVITY_EVENT\"}";
    (void)state;

    assert_int_equal(ls_webhook_sign("s3cret", 6, body, strlen(body), a), 0);
    /* Lower-case hex only, after the prefix. */
    assert_int_equal(strncmp(a, "sha256=", 7), 0);
    for (const char *p = a + 7; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    /* Any change of key or body changes it; an empty body is signed too. */
    assert_int_equal(ls_webhook_sign("s3cres", 6, body, strlen(body), b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(ls_webhook_sign("s3cret", 6, body, strlen(body) - 1, b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(ls_webhook_sign("s3cret", 6, "", 0, b), 0);
    /* python3: hmac.new(b"s3cret", b"", hashlib.sha256).hexdigest() */
    assert_string_equal(b,
                        "sha256=91dfac70c5348b04e1babb8b421ac92cec08b565b49ca16130dccb72503647b7");
}

static void test_backoff(void **state)
{
    (void)state;
    /* The first retry waits 50..100 ms, then doubling, capped at 15..30 s. */
    assert_int_equal(ls_webhook_backoff_ms(1, 0), 50);
    assert_int_equal(ls_webhook_backoff_ms(1, 50), 100);
    assert_int_equal(ls_webhook_backoff_ms(1, 51), 50);
    assert_int_equal(ls_webhook_backoff_ms(2, 0), 100);
    assert_int_equal(ls_webhook_backoff_ms(3, 0), 200);
    assert_int_equal(ls_webhook_backoff_ms(9, 0), 12800);
    assert_int_equal(ls_webhook_backoff_ms(10, 0), 15000);
    assert_int_equal(ls_webhook_backoff_ms(10, 15000), 30000);
    assert_int_equal(ls_webhook_backoff_ms(1000000, 0), 15000);
    for (uint64_t r = 0; r < 100000; r += 997) {
        for (int f = 1; f < 40; f++) {
            int64_t w = ls_webhook_backoff_ms(f, r * 2654435761u);
            int64_t full = f >= 10 ? 30000 : (int64_t)100 << (f - 1);
            assert_true(w >= full / 2 && w <= full);
        }
    }
}

/* ---- Prometheus text -------------------------------------------------- */

static void test_prom_escaping(void **state)
{
    ls_buf b;
    (void)state;

    ls_buf_init(&b, 1 << 16);
    ls_prom_family(&b, "x_total", "counter",
                   "Help with a \\ backslash\nand a newline, \"quotes\" kept.");
    const char *l[] = {"path", "a\\b\"c\nd", "k", "", NULL};
    ls_prom_u64(&b, "x_total", l, 18446744073709551615ULL);
    ls_prom_i64(&b, "y", NULL, -5);
    assert_string_equal(
        b.p, "# HELP x_total Help with a \\\\ backslash\\nand a newline, \"quotes\" kept.\n"
             "# TYPE x_total counter\n"
             "x_total{path=\"a\\\\b\\\"c\\nd\",k=\"\"} 18446744073709551615\n"
             "y -5\n");
    ls_buf_free(&b);
}

static void test_prom_seconds(void **state)
{
    ls_buf b;
    (void)state;
    static const struct {
        uint64_t ns;
        const char *text;
    } cases[] = {{0, "0"},          {1, "0.000000001"},   {1500000, "0.0015"},
                 {1000000000, "1"}, {2500000000u, "2.5"}, {123456789012, "123.456789012"},
                 {100000, "0.0001"}};
    ls_buf_init(&b, 256);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ls_buf_reset(&b);
        ls_prom_seconds(&b, cases[i].ns);
        assert_string_equal(b.p, cases[i].text);
    }
    ls_buf_free(&b);
}

static void test_prom_histogram(void **state)
{
    ls_metrics *m = malloc(sizeof *m);
    ls_buf b;
    (void)state;

    assert_non_null(m);
    ls_metrics_init(m);
    assert_int_equal(m->lateness.n, 13);
    ls_histogram_observe(&m->lateness, 0);            /* <= 1 ms */
    ls_histogram_observe(&m->lateness, 1000000);      /* exactly 1 ms: le is inclusive */
    ls_histogram_observe(&m->lateness, 1000001);      /* 2.5 ms bucket */
    ls_histogram_observe(&m->lateness, 7000000000u);  /* 10 s bucket */
    ls_histogram_observe(&m->lateness, 60000000000u); /* +Inf */
    ls_buf_init(&b, 1 << 16);
    const char *l[] = {"k", "v", NULL};
    ls_prom_histogram(&b, "h_seconds", l, &m->lateness);
    assert_non_null(strstr(b.p, "h_seconds_bucket{k=\"v\",le=\"0.001\"} 2\n"
                                "h_seconds_bucket{k=\"v\",le=\"0.0025\"} 3\n"));
    assert_non_null(strstr(b.p, "h_seconds_bucket{k=\"v\",le=\"5\"} 3\n"
                                "h_seconds_bucket{k=\"v\",le=\"10\"} 4\n"
                                "h_seconds_bucket{k=\"v\",le=\"+Inf\"} 5\n"
                                "h_seconds_sum{k=\"v\"} 67.002000001\n"
                                "h_seconds_count{k=\"v\"} 5\n"));
    /* Buckets never decrease; 13 finite + +Inf + sum + count lines. */
    size_t lines = 0;
    for (const char *p = b.p; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 16);
    ls_buf_reset(&b);
    ls_prom_histogram(&b, "c_seconds", NULL, &m->commit);
    assert_non_null(strstr(b.p, "c_seconds_bucket{le=\"0.0001\"} 0\n"));
    assert_non_null(strstr(b.p, "c_seconds_sum 0\nc_seconds_count 0\n"));
    ls_buf_free(&b);
    free(m);
}

/* ---- metric tables ---------------------------------------------------- */

static void test_methods_codes(void **state)
{
    (void)state;
    assert_string_equal(ls_method_name(ls_method_index("GET")), "GET");
    assert_string_equal(ls_method_name(ls_method_index("DELETE")), "DELETE");
    assert_string_equal(ls_method_name(ls_method_index("PATCH")), "other");
    assert_string_equal(ls_method_name(ls_method_index("get")), "other");
    static const unsigned sent[] = {200, 201, 202, 204, 400, 404, 405, 413, 422, 500, 503, 507};
    for (size_t i = 0; i < sizeof sent / sizeof sent[0]; i++) {
        char want[8];
        snprintf(want, sizeof want, "%u", sent[i]);
        assert_string_equal(ls_code_name(ls_code_index(sent[i])), want);
    }
    assert_string_equal(ls_code_name(ls_code_index(418)), "other");
    assert_string_equal(ls_code_name(ls_code_index(0)), "other");
}

static void test_sources(void **state)
{
    ls_metrics *m = malloc(sizeof *m);
    char name[16];
    (void)state;

    assert_non_null(m);
    ls_metrics_init(m);
    int http = ls_metrics_source(m, "http");
    assert_int_equal(http, 0);
    assert_int_equal(ls_metrics_source(m, "mqtt"), 1);
    assert_int_equal(ls_metrics_source(m, "http"), 0); /* same name, same id */
    assert_int_equal(ls_metrics_source(m, ""), -EINVAL);
    assert_int_equal(ls_metrics_source(m, "0123456789abcdef"), -EINVAL); /* 16 bytes */
    for (int i = 2; i < LS_SOURCES_MAX; i++) {
        snprintf(name, sizeof name, "s%d", i);
        assert_int_equal(ls_metrics_source(m, name), i);
    }
    assert_int_equal(ls_metrics_source(m, "udp"), -ENOSPC);
    ls_metrics_activities(m, http, 5);
    ls_metrics_activities(m, http, 0);
    ls_metrics_activities(m, -1, 7);             /* ignored */
    ls_metrics_activities(m, LS_SOURCES_MAX, 7); /* ignored */
    assert_int_equal(ls_metrics_get(&m->activities[http]), 5);
    ls_metrics_rejected(m, 1, LS_REJECT_TOO_LARGE, 2);
    ls_metrics_rejected(m, 1, (ls_reject_reason)99, 2); /* ignored */
    assert_int_equal(ls_metrics_get(&m->rejected[1][LS_REJECT_TOO_LARGE]), 2);
    assert_string_equal(ls_reject_name(LS_REJECT_DEVICE_LIMIT), "device_limit");
    ls_metrics_http(m, LS_ROUTE_DEVICE, "PUT", 201);
    ls_metrics_http(m, (ls_route)500, "BREW", 418);
    assert_int_equal(
        ls_metrics_get(&m->http[LS_ROUTE_DEVICE][ls_method_index("PUT")][ls_code_index(201)]), 1);
    assert_int_equal(ls_metrics_get(&m->http[LS_ROUTE_OTHER][LS_METHODS - 1][LS_CODES - 1]), 1);
    free(m);
}

/* ---- reading event lines back ----------------------------------------- */

typedef struct lines {
    ls_engine *e;
    ls_buf b[8];
    int n;
} lines;

static void capture_cb(void *ud, const ls_event *ev)
{
    lines *l = ud;
    if (l->n < 8) {
        ls_buf_init(&l->b[l->n], 1 << 16);
        ls_format_event(&l->b[l->n], l->e, NULL, (uint64_t)(l->n + 1), ev, NULL);
        l->n++;
    }
}

static void test_event_peek(void **state)
{
    lines l = {0};
    ls_engine_config c = {.default_timeout_ms = 1000, .max_clock_skew_ms = 0};
    ls_now now = {.mono = 1000000, .wall = 1700000000000};
    const char *dev;
    size_t dev_len;
    (void)state;

    assert_int_equal(ls_engine_new(&l.e, &c, capture_cb, &l), 0);
    static const char weird[] = "q\"uo\\te/\xc3\xa9";
    assert_int_equal(ls_engine_activity(l.e, weird, strlen(weird), 0, now), 0);
    assert_int_equal(ls_engine_connect(l.e, "plain", 5, now), 0);
    assert_int_equal(ls_engine_disconnect(l.e, "plain", 5, now), 0);
    now.mono += 2000;
    now.wall += 2000;
    ls_engine_tick(l.e, now);
    /* Source events have no device record: their line names the source. */
    unsigned src = (unsigned)ls_engine_source_add(l.e, "mqtt", 1);
    ls_engine_source_up(l.e, src, now);
    ls_engine_source_down(l.e, src, now);
    assert_true(l.n >= 7);

    ls_buf want;
    ls_buf_init(&want, 4096);
    ls_buf_json_str(&want, weird, strlen(weird));
    assert_int_equal(ls_format_event_peek(l.b[0].p, l.b[0].len, &dev, &dev_len), LS_EV_ACTIVITY);
    assert_int_equal(dev_len, want.len);
    assert_memory_equal(dev, want.p, want.len);
    int seen[LS_EV__COUNT] = {0};
    for (int i = 0; i < l.n; i++) {
        int t = ls_format_event_peek(l.b[i].p, l.b[i].len, &dev, &dev_len);
        assert_true(t >= 0 && t < LS_EV__COUNT);
        seen[t]++;
        assert_non_null(strstr(l.b[i].p, ls_event_name((ls_event_type)t)));
    }
    for (int t = 0; t <= LS_EV_DISCONNECT;
         t++) /* the engine's own; alarm events come from alarming.c */
        assert_true(seen[t] > 0);

    /* Lines of another shape are refused, never misread. */
    static const char *const bad[] = {
        "",
        "{}",
        "{\"seq\":1}",
        "{\"seq\":1,\"type\":\"NOPE\",\"device\":\"x\"}",
        "{\"seq\":1,\"type\":\"ACTIVITY_EVENT\",\"device\":x}",
        "{\"seq\":1,\"type\":\"ACTIVITY_EVENT\",\"device\":\"unterminated",
        "{\"seq\":1,\"type\":\"ACTIVITY_EVENT\",\"device\":\"esc\\\"",
        "{\"type\":\"ACTIVITY_EVENT\",\"seq\":1,\"device\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ls_format_event_peek(bad[i], strlen(bad[i]), &dev, &dev_len) != -1)
            fail_msg("accepted %s", bad[i]);
    const char *ok =
        "{\"seq\":12,\"type\":\"DISCONNECT_EVENT\",\"device\":\"a\\\\\\\"b\",\"ts\":1}";
    assert_int_equal(ls_format_event_peek(ok, strlen(ok), &dev, &dev_len), LS_EV_DISCONNECT);
    assert_int_equal(dev_len, 8);
    assert_memory_equal(dev, "\"a\\\\\\\"b\"", 8);
    /* The length bounds the read: a cut line is refused. */
    assert_int_equal(ls_format_event_peek(ok, 48, &dev, &dev_len), -1);

    ls_buf_free(&want);
    for (int i = 0; i < l.n; i++)
        ls_buf_free(&l.b[i]);
    ls_engine_close(l.e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_rfc4231),  cmocka_unit_test(test_sign_body),
        cmocka_unit_test(test_backoff),       cmocka_unit_test(test_prom_escaping),
        cmocka_unit_test(test_prom_seconds),  cmocka_unit_test(test_prom_histogram),
        cmocka_unit_test(test_methods_codes), cmocka_unit_test(test_sources),
        cmocka_unit_test(test_event_peek),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
