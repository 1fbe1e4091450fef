/*
 * sim_mqtt.c - lastseen-sim's MQTT transport (libmosquitto, when the build
 * found it; otherwise sim_mqtt_open() says so and the simulator stops).
 *
 * Each report is one QoS 0 publish of {"ts": ms} on the topic pattern with
 * "{id}" replaced by the device id (default devices/{id}/telemetry).
 * The simulator starts once the broker has accepted the connection (it
 * gives up after 5 s); then libmosquitto's own thread keeps the connection
 * and reconnects, and a publish while it is down counts as failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#ifdef SIM_HAVE_MQTT
#include <mosquitto.h>

#define TOPIC_MAX 1024
#define CONNECT_WAIT_MS 5000

typedef struct mqtt_out {
    sim_out base;
    struct mosquitto *m;
    char topic[TOPIC_MAX];
    char host[256];
    int port;
    int connected; /* set by the callbacks on libmosquitto's thread */
} mqtt_out;

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    __atomic_store_n(&((mqtt_out *)ud)->connected, rc == 0, __ATOMIC_RELEASE);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    (void)rc;
    __atomic_store_n(&((mqtt_out *)ud)->connected, 0, __ATOMIC_RELEASE);
}

/* topic with every "{id}" replaced by id; 0 or -1 if it does not fit. */
static int make_topic(const char *pattern, const char *id, char *out, size_t cap)
{
    size_t o = 0, idl = strlen(id);
    for (const char *p = pattern; *p;) {
        if (strncmp(p, "{id}", 4) == 0) {
            if (o + idl >= cap) return -1;
            memcpy(out + o, id, idl);
            o += idl;
            p += 4;
        } else {
            if (o + 1 >= cap) return -1;
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return 0;
}

static int mqtt_send(sim_out *o, const sim_batch *b, sim_result *res)
{
    mqtt_out *q = (mqtt_out *)o;
    char topic[TOPIC_MAX + 512], payload[64];
    int plen = snprintf(payload, sizeof(payload), "{\"ts\":%lld}", (long long)b->ts);
    if (!__atomic_load_n(&q->connected, __ATOMIC_ACQUIRE)) {
        res->failed += b->n;
        snprintf(res->error, sizeof(res->error), "MQTT: not connected to %.200s:%d", q->host,
                 q->port);
        return 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (make_topic(q->topic, b->ids[i], topic, sizeof(topic)) < 0) {
            res->rejected++;
            snprintf(res->error, sizeof(res->error), "MQTT: topic too long for id %.64s",
                     b->ids[i]);
            continue;
        }
        int rc = mosquitto_publish(q->m, NULL, topic, plen, payload, 0, false);
        if (rc == MOSQ_ERR_SUCCESS) {
            res->accepted++; /* handed to the client library: QoS 0 */
        } else {
            res->failed++;
            snprintf(res->error, sizeof(res->error), "MQTT publish: %s", mosquitto_strerror(rc));
        }
    }
    return 0;
}

static void mqtt_close(sim_out *o)
{
    mqtt_out *q = (mqtt_out *)o;
    if (!q) return;
    if (q->m) {
        mosquitto_disconnect(q->m);
        mosquitto_loop_stop(q->m, false);
        mosquitto_destroy(q->m);
    }
    mosquitto_lib_cleanup();
    free(q);
}

int sim_mqtt_open(sim_out **out, const char *url, const char *topic, const char *client_id)
{
    const char *hp = strncmp(url, "mqtt://", 7) == 0 ? url + 7 : NULL;
    if (!hp) {
        fprintf(stderr, "lastseen-sim: --url %s: expected mqtt://HOST:PORT\n", url);
        return -EINVAL;
    }
    mqtt_out *q = calloc(1, sizeof(*q));
    if (!q) return -ENOMEM;
    q->base.send = mqtt_send;
    q->base.close = mqtt_close;
    q->port = 1883;
    const char *colon = strrchr(hp, ':');
    size_t hl = colon ? (size_t)(colon - hp) : strlen(hp);
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535) {
            fprintf(stderr, "lastseen-sim: --url %s: bad port\n", url);
            free(q);
            return -EINVAL;
        }
        q->port = (int)port;
    }
    if (hl == 0 || hl >= sizeof(q->host) || strlen(topic) >= sizeof(q->topic) ||
        !strstr(topic, "{id}")) {
        fprintf(stderr, "lastseen-sim: bad MQTT host or topic (the topic must contain {id})\n");
        free(q);
        return -EINVAL;
    }
    memcpy(q->host, hp, hl);
    q->host[hl] = '\0';
    snprintf(q->topic, sizeof(q->topic), "%s", topic);

    mosquitto_lib_init();
    q->m = mosquitto_new(client_id, true, q);
    if (!q->m) {
        mqtt_close(&q->base);
        return -ENOMEM;
    }
    mosquitto_connect_callback_set(q->m, on_connect);
    mosquitto_disconnect_callback_set(q->m, on_disconnect);
    mosquitto_reconnect_delay_set(q->m, 1, 10, false);
    /* The QoS 0 queue must hold a tick's worth of publishes. */
    mosquitto_int_option(q->m, MOSQ_OPT_SEND_MAXIMUM, 65535);
    int rc = mosquitto_connect_async(q->m, q->host, q->port, 30);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_start(q->m);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "lastseen-sim: MQTT %s:%d: %s\n", q->host, q->port,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        mqtt_close(&q->base);
        return -EIO;
    }
    /* Start only once connected, so the first ticks are not lost. */
    for (int waited = 0; !__atomic_load_n(&q->connected, __ATOMIC_ACQUIRE); waited += 10) {
        if (waited >= CONNECT_WAIT_MS) {
            fprintf(stderr, "lastseen-sim: MQTT %s:%d: not connected after %d ms\n", q->host,
                    q->port, CONNECT_WAIT_MS);
            mqtt_close(&q->base);
            return -ETIMEDOUT;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    *out = &q->base;
    return 0;
}

#else

int sim_mqtt_open(sim_out **out, const char *url, const char *topic, const char *client_id)
{
    (void)out;
    (void)url;
    (void)topic;
    (void)client_id;
    fprintf(stderr, "lastseen-sim: --protocol mqtt: not built: this lastseen-sim was built without "
                    "libmosquitto "
                    "(install libmosquitto-dev and rebuild)\n");
    return -ENOTSUP;
}

#endif
