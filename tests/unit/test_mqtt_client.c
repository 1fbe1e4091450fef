/*
 * test_mqtt_client.c - the reconnect backoff and the stoppable sleep of
 * src/mqtt/client.c (the broker side is tested black-box).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/config.h"
#include "mqtt/client.h"

/* Every delay lies in [d/2, d] for d = min(max, min * 2^attempt), and the
 * draws spread over that range (jitter), never all the same. */
static void test_backoff_bounds(void **state)
{
    (void)state;
    ls_config c;
    ls_config_defaults(&c);
    c.mqtt_reconnect_min = 500;
    c.mqtt_reconnect_max = 30000;
    ls_mqtt_opts o;
    ls_config_mqtt_opts(&c, &o);
    unsigned seed = 12345;
    for (unsigned attempt = 0; attempt < 40; attempt++) {
        int64_t d = 500;
        for (unsigned i = 0; i < attempt && d < 30000; i++)
            d *= 2;
        if (d > 30000) d = 30000;
        int64_t lo = INT64_MAX, hi = 0;
        for (int k = 0; k < 200; k++) {
            int64_t v = ls_mqtt_backoff_ms(&o, attempt, &seed);
            if (v < d - d / 2 || v > d)
                fail_msg("attempt %u: %lld outside [%lld, %lld]", attempt, (long long)v,
                         (long long)(d - d / 2), (long long)d);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        assert_true(hi - lo > d / 4); /* jittered */
    }
    /* A huge attempt count neither overflows nor passes the cap. */
    assert_true(ls_mqtt_backoff_ms(&o, 4000000000u, &seed) <= 30000);
    /* min above max: the cap wins. */
    c.mqtt_reconnect_min = 5000;
    c.mqtt_reconnect_max = 1000;
    ls_config_mqtt_opts(&c, &o);
    assert_true(ls_mqtt_backoff_ms(&o, 0, &seed) <= 1000);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *stop_later(void *arg)
{
    usleep(50000);
    ls_stopper_request(arg);
    return NULL;
}

static void test_stopper(void **state)
{
    (void)state;
    ls_stopper s;
    ls_stopper_init(&s);
    double t0 = now_s();
    assert_int_equal(ls_stopper_sleep(&s, 30), 0); /* sleeps its time */
    assert_true(now_s() - t0 >= 0.029);
    assert_false(ls_stopper_requested(&s));

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    t0 = now_s();
    assert_int_equal(ls_stopper_sleep(&s, 10000), 1); /* cut short */
    assert_true(now_s() - t0 < 5.0);
    pthread_join(th, NULL);
    assert_true(ls_stopper_requested(&s));
    assert_int_equal(ls_stopper_sleep(&s, 10000), 1); /* and stays stopped */
    ls_stopper_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_stopper),
    };
    return cmocka_run_group_tests_name("mqtt_client", tests, NULL, NULL);
}
