/*
 * client.h - what the MQTT reader (src/in/mqtt.c) and the MQTT event
 * publisher (src/out/mqtt_pub.c) share: creating a libmosquitto client from
 * the [mqtt] connection options, connecting, reconnect backoff, and a sleep that
 * a stop request cuts short.  See mqtt_client.c.
 */
#ifndef LS_MQTT_CLIENT_H
#define LS_MQTT_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/stopper.h"

struct mosquitto;

/*
 * How to reach the broker: the connection half of the [mqtt] configuration
 * (conf/config.h fills it with ls_config_mqtt_opts()).  Strings are
 * borrowed and must outlive the client; "" means not set.
 */
typedef struct ls_mqtt_opts {
    const char *host;
    int64_t port;
    int v5; /* MQTT 5, else 3.1.1 */
    const char *username, *password;
    const char *cafile, *certfile, *keyfile;
    int tls_insecure;
    int64_t keepalive_ms;
    int64_t session_expiry_ms; /* MQTT 5 */
    int64_t reconnect_min_ms, reconnect_max_ms;
} ls_mqtt_opts;

/* libmosquitto's global init/cleanup, reference counted; init returns 0 or < 0. */
int ls_mqtt_lib_init(void);
void ls_mqtt_lib_cleanup(void);

/*
 * Creates a client with the options' protocol version, credentials and TLS
 * settings.  `persistent` asks for a persistent session (clean session
 * off; with MQTT 5, session expiry mqtt.session_expiry).  Returns 0, or a
 * negative value after logging the reason (a TLS file that cannot be read,
 * ...).  The caller sets callbacks and owns the client.
 */
int ls_mqtt_client_new(struct mosquitto **out, const ls_mqtt_opts *cfg, const char *client_id,
                       int persistent, void *ud);

/*
 * Connects or reconnects the client: the TCP (and TLS) connection and the
 * CONNECT packet; CONNACK arrives later in the loop.  Messages the client
 * had queued or in flight are sent again.  Blocking (name resolution, TCP
 * connect).  Returns a MOSQ_ERR_* value.
 */
int ls_mqtt_client_connect(struct mosquitto *m, const ls_mqtt_opts *cfg, int persistent);

/*
 * One turn of the client's loop, what mosquitto_loop(m, timeout_ms, 1) does
 * but waiting with poll(2), so that any socket number works: waits up to
 * timeout_ms for the socket (and for it to take what the client wants to
 * write), reads and writes a packet, then checks the keepalive.  Returns a
 * MOSQ_ERR_* value (MOSQ_ERR_NO_CONN when not connected).
 */
int ls_mqtt_client_loop(struct mosquitto *m, int timeout_ms);

/* "host:port" for logs. */
const char *ls_mqtt_client_where(const ls_mqtt_opts *cfg, char *buf, size_t len);

/*
 * The delay before reconnect attempt number `attempt` (0 = first retry):
 * d = min(reconnect_max, reconnect_min * 2^attempt), then a uniform draw
 * from [d/2, d] so that many clients cut off at once do not come back in
 * step.  *seed is the caller's rand_r() state.
 */
int64_t ls_mqtt_backoff_ms(const ls_mqtt_opts *cfg, unsigned attempt, unsigned *seed);

#endif
