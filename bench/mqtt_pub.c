/*
 * mqtt_pub.c - `lastseen-bench mqtt-pub`: an MQTT load generator for
 * bench/mqtt_ingest.py.
 *
 * Publishes --messages messages round-robin over --devices topics
 * "<prefix>dev-<n>/t" to a broker on 127.0.0.1:--port, at --rate messages/s
 * (0 = as fast as the socket takes them), QoS --qos.  With QoS 1 at most
 * --window messages are unacknowledged at once, so the broker's pace sets
 * the rate and nothing piles up in this process.  One libmosquitto client,
 * no thread: the loop is driven here.  Prints one JSON line:
 * {"sent":N,"seconds":S,"rate":R}.
 */
#include <mosquitto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

typedef struct pub {
    uint64_t acked;
    int connected;
} pub;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    ((pub *)ud)->connected = rc == 0 ? 1 : -1;
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    (void)mid;
    ((pub *)ud)->acked++;
}

int bench_mqtt_pub(int argc, char **argv)
{
    int port = 1883, qos = 0;
    uint64_t devices = 10000, messages = 100000, rate = 0, window = 1000, size = 16;
    const char *prefix = "bench/";
    for (int i = 1; i + 1 < argc; i += 2) {
        unsigned long long v = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--port"))
            port = (int)v;
        else if (!strcmp(argv[i], "--qos"))
            qos = (int)v;
        else if (!strcmp(argv[i], "--devices"))
            devices = v;
        else if (!strcmp(argv[i], "--messages"))
            messages = v;
        else if (!strcmp(argv[i], "--rate"))
            rate = v;
        else if (!strcmp(argv[i], "--window"))
            window = v;
        else if (!strcmp(argv[i], "--size"))
            size = v;
        else if (!strcmp(argv[i], "--prefix"))
            prefix = argv[i + 1];
        else {
            fprintf(stderr, "mqtt-pub: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (devices == 0 || size > 65536) return 2;
    mosquitto_lib_init();
    pub st = {0};
    struct mosquitto *m = mosquitto_new(NULL, true, &st);
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, (int)window);
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mqtt-pub: cannot connect to port %d\n", port);
        return 1;
    }
    while (st.connected == 0)
        if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS) return 1;
    if (st.connected < 0) return 1;

    char *payload = malloc(size + 1);
    memset(payload, 'x', size);
    char topic[256];
    double t0 = now_s();
    uint64_t sent = 0;
    while (sent < messages) {
        if (rate) { /* pace: never ahead of the schedule */
            double due = t0 + (double)sent / (double)rate;
            double wait = due - now_s();
            if (wait > 0) {
                mosquitto_loop(m, wait > 0.001 ? 1 : 0, 1);
                continue;
            }
        }
        if (qos > 0 && sent - st.acked >= window) {
            if (mosquitto_loop(m, 10, 1) != MOSQ_ERR_SUCCESS) break;
            continue;
        }
        snprintf(topic, sizeof(topic), "%sdev-%06llu/t", prefix,
                 (unsigned long long)(sent % devices));
        int rc = mosquitto_publish(m, NULL, topic, (int)size, payload, qos, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "mqtt-pub: publish: %s\n", mosquitto_strerror(rc));
            break;
        }
        sent++;
        if ((sent & 63) == 0 || mosquitto_want_write(m)) mosquitto_loop(m, 0, 1);
    }
    /* Everything written (and, with QoS 1, acknowledged). */
    while (mosquitto_want_write(m) || (qos > 0 && st.acked < sent))
        if (mosquitto_loop(m, 10, 1) != MOSQ_ERR_SUCCESS) break;
    double t = now_s() - t0;
    printf("{\"sent\":%llu,\"seconds\":%.3f,\"rate\":%.0f}\n", (unsigned long long)sent, t,
           (double)sent / t);
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    free(payload);
    return 0;
}
