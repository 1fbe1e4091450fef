/*
 * mqtt_client.c - libmosquitto clients made from the [mqtt] configuration.
 *
 * Both MQTT threads (the reader and the publisher) run their own client on
 * their own thread with their own loop: libmosquitto's mosquitto_loop()
 * driven by the thread, not mosquitto_loop_start(), because each thread
 * needs to act between loop turns (the reader applies its batch when the
 * socket runs dry; the publisher reads the outbox) and to choose its own
 * reconnect policy.  So every libmosquitto call on a client happens on its
 * own thread and the library's internal locking is never relied upon.
 *
 * Reconnects use capped exponential backoff with jitter (see
 * ls_mqtt_backoff_ms); a stop request interrupts the wait at once.
 */
#include "in/mqtt_client.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/log.h"

#define MOD "mqtt"
#define RECEIVE_MAXIMUM 1000 /* MQTT 5: QoS 1/2 messages the broker may have in flight to us */

static pthread_mutex_t lib_mu = PTHREAD_MUTEX_INITIALIZER;
static int lib_refs;

int ls_mqtt_lib_init(void)
{
    int rc = 0;
    pthread_mutex_lock(&lib_mu);
    if (lib_refs == 0 && mosquitto_lib_init() != MOSQ_ERR_SUCCESS) rc = -EIO;
    if (rc == 0) lib_refs++;
    pthread_mutex_unlock(&lib_mu);
    return rc;
}

void ls_mqtt_lib_cleanup(void)
{
    pthread_mutex_lock(&lib_mu);
    if (lib_refs > 0 && --lib_refs == 0) mosquitto_lib_cleanup();
    pthread_mutex_unlock(&lib_mu);
}

const char *ls_mqtt_client_where(const ls_config *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%lld", cfg->mqtt_host, (long long)cfg->mqtt_port);
    return buf;
}

int ls_mqtt_client_new(struct mosquitto **out, const ls_config *cfg, const char *client_id,
                       int persistent, void *ud)
{
    int rc;
    struct mosquitto *m = mosquitto_new(client_id[0] ? client_id : NULL, !persistent, ud);
    if (!m) {
        ls_error(MOD, "cannot create an MQTT client with id \"%s\": %s", client_id,
                 strerror(errno));
        return -EINVAL;
    }
    int version = cfg->mqtt_protocol == LS_MQTT_V5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, version);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    if (version == MQTT_PROTOCOL_V5)
        mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, RECEIVE_MAXIMUM);
    if (cfg->mqtt_username[0] &&
        (rc = mosquitto_username_pw_set(m, cfg->mqtt_username,
                                        cfg->mqtt_password[0] ? cfg->mqtt_password : NULL)) !=
            MOSQ_ERR_SUCCESS) {
        ls_error(MOD, "mqtt.username: %s", mosquitto_strerror(rc));
        mosquitto_destroy(m);
        return -EINVAL;
    }
    if (cfg->mqtt_cafile[0]) {
        rc = mosquitto_tls_set(m, cfg->mqtt_cafile, NULL,
                               cfg->mqtt_certfile[0] ? cfg->mqtt_certfile : NULL,
                               cfg->mqtt_keyfile[0] ? cfg->mqtt_keyfile : NULL, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            ls_error(MOD, "TLS setup (mqtt.cafile %s, mqtt.certfile %s, mqtt.keyfile %s): %s%s",
                     cfg->mqtt_cafile, cfg->mqtt_certfile[0] ? cfg->mqtt_certfile : "-",
                     cfg->mqtt_keyfile[0] ? cfg->mqtt_keyfile : "-", mosquitto_strerror(rc),
                     rc == MOSQ_ERR_INVAL
                         ? " (a file missing or unreadable, or certfile without keyfile)"
                         : "");
            mosquitto_destroy(m);
            return -EINVAL;
        }
        mosquitto_tls_insecure_set(m, cfg->mqtt_tls_insecure ? true : false);
    } else if (cfg->mqtt_certfile[0] || cfg->mqtt_keyfile[0]) {
        ls_error(MOD,
                 "mqtt.certfile and mqtt.keyfile need mqtt.cafile (TLS is on when cafile is set)");
        mosquitto_destroy(m);
        return -EINVAL;
    }
    *out = m;
    return 0;
}

int ls_mqtt_client_connect(struct mosquitto *m, const ls_config *cfg, int persistent)
{
    int keepalive = (int)(cfg->mqtt_keepalive / 1000);
    if (cfg->mqtt_protocol != LS_MQTT_V5)
        return mosquitto_connect(m, cfg->mqtt_host, (int)cfg->mqtt_port, keepalive);
    mosquitto_property *props = NULL;
    if (persistent) {
        int64_t secs = cfg->mqtt_session_expiry / 1000;
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     (uint32_t)(secs > UINT32_MAX ? UINT32_MAX : secs));
    }
    int rc =
        mosquitto_connect_bind_v5(m, cfg->mqtt_host, (int)cfg->mqtt_port, keepalive, NULL, props);
    mosquitto_property_free_all(&props);
    return rc;
}

int64_t ls_mqtt_backoff_ms(const ls_config *cfg, unsigned attempt, unsigned *seed)
{
    int64_t d = cfg->mqtt_reconnect_min;
    for (unsigned i = 0; i < attempt && d < cfg->mqtt_reconnect_max; i++)
        d *= 2;
    if (d > cfg->mqtt_reconnect_max) d = cfg->mqtt_reconnect_max;
    int64_t half = d / 2;
    return d - half + (half > 0 ? (int64_t)rand_r(seed) % (half + 1) : 0);
}

void ls_stopper_init(ls_stopper *s)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->stop, 0);
}

void ls_stopper_close(ls_stopper *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

void ls_stopper_request(ls_stopper *s)
{
    pthread_mutex_lock(&s->mu);
    atomic_store_explicit(&s->stop, 1, memory_order_release);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int ls_stopper_requested(ls_stopper *s)
{
    return atomic_load_explicit(&s->stop, memory_order_acquire);
}

int ls_stopper_sleep(ls_stopper *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&s->mu);
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0) {
    }
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}
