/*
 * client.c - libmosquitto clients made from the [mqtt] configuration.
 *
 * Both MQTT threads (the reader and the publisher) run their own client on
 * their own thread with their own loop (ls_mqtt_client_loop()) driven by
 * the thread, not mosquitto_loop_start(), because each thread needs to act
 * between loop turns (the reader applies its batch when the socket runs
 * dry; the publisher reads the outbox) and to choose its own reconnect
 * policy.  So every libmosquitto call on a client happens on its own thread
 * and the library's internal locking is never relied upon.
 *
 * The loop waits with poll(2), not with mosquitto_loop(): that one uses
 * select(2) and refuses a socket numbered FD_SETSIZE (1024) or more, which a
 * reconnect gets once the HTTP server holds a thousand connections (the
 * daemon raises its open-file limit for them, app/root.c).
 *
 * Reconnects use capped exponential backoff with jitter (see
 * ls_mqtt_backoff_ms); a stop request interrupts the wait at once.
 */
#include "mqtt/client.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

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

const char *ls_mqtt_client_where(const ls_mqtt_opts *cfg, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%lld", cfg->host, (long long)cfg->port);
    return buf;
}

int ls_mqtt_client_new(struct mosquitto **out, const ls_mqtt_opts *cfg, const char *client_id,
                       int persistent, void *ud)
{
    int rc;
    struct mosquitto *m = mosquitto_new(client_id[0] ? client_id : NULL, !persistent, ud);
    if (!m) {
        ls_error(MOD, "cannot create an MQTT client with id \"%s\": %s", client_id,
                 strerror(errno));
        return -EINVAL;
    }
    int version = cfg->v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, version);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    if (version == MQTT_PROTOCOL_V5)
        mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, RECEIVE_MAXIMUM);
    if (cfg->username[0] &&
        (rc = mosquitto_username_pw_set(
             m, cfg->username, cfg->password[0] ? cfg->password : NULL)) != MOSQ_ERR_SUCCESS) {
        ls_error(MOD, "mqtt.username: %s", mosquitto_strerror(rc));
        mosquitto_destroy(m);
        return -EINVAL;
    }
    if (cfg->cafile[0]) {
        rc = mosquitto_tls_set(m, cfg->cafile, NULL, cfg->certfile[0] ? cfg->certfile : NULL,
                               cfg->keyfile[0] ? cfg->keyfile : NULL, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            ls_error(MOD, "TLS setup (mqtt.cafile %s, mqtt.certfile %s, mqtt.keyfile %s): %s%s",
                     cfg->cafile, cfg->certfile[0] ? cfg->certfile : "-",
                     cfg->keyfile[0] ? cfg->keyfile : "-", mosquitto_strerror(rc),
                     rc == MOSQ_ERR_INVAL
                         ? " (a file missing or unreadable, or certfile without keyfile)"
                         : "");
            mosquitto_destroy(m);
            return -EINVAL;
        }
        mosquitto_tls_insecure_set(m, cfg->tls_insecure ? true : false);
    } else if (cfg->certfile[0] || cfg->keyfile[0]) {
        ls_error(MOD,
                 "mqtt.certfile and mqtt.keyfile need mqtt.cafile (TLS is on when cafile is set)");
        mosquitto_destroy(m);
        return -EINVAL;
    }
    *out = m;
    return 0;
}

int ls_mqtt_client_connect(struct mosquitto *m, const ls_mqtt_opts *cfg, int persistent)
{
    int keepalive = (int)(cfg->keepalive_ms / 1000);
    if (!cfg->v5) return mosquitto_connect(m, cfg->host, (int)cfg->port, keepalive);
    mosquitto_property *props = NULL;
    if (persistent) {
        int64_t secs = cfg->session_expiry_ms / 1000;
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     (uint32_t)(secs > UINT32_MAX ? UINT32_MAX : secs));
    }
    int rc = mosquitto_connect_bind_v5(m, cfg->host, (int)cfg->port, keepalive, NULL, props);
    mosquitto_property_free_all(&props);
    return rc;
}

int64_t ls_mqtt_backoff_ms(const ls_mqtt_opts *cfg, unsigned attempt, unsigned *seed)
{
    int64_t d = cfg->reconnect_min_ms;
    for (unsigned i = 0; i < attempt && d < cfg->reconnect_max_ms; i++)
        d *= 2;
    if (d > cfg->reconnect_max_ms) d = cfg->reconnect_max_ms;
    int64_t half = d / 2;
    return d - half + (half > 0 ? (int64_t)rand_r(seed) % (half + 1) : 0);
}

int ls_mqtt_client_loop(struct mosquitto *m, int timeout_ms)
{
    int fd = mosquitto_socket(m);
    if (fd < 0) return MOSQ_ERR_NO_CONN;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (mosquitto_want_write(m)) pf.events |= POLLOUT;
    int n = poll(&pf, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (n < 0) return errno == EINTR ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ERRNO;
    int rc;
    if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
        rc = mosquitto_loop_read(m, 1);
        if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(m) < 0) return rc;
    }
    if (pf.revents & POLLOUT) {
        rc = mosquitto_loop_write(m, 1);
        if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(m) < 0) return rc;
    }
    return mosquitto_loop_misc(m);
}
