/*
 * mqtt_client.h - what the MQTT reader (src/in/mqtt.c) and the MQTT event
 * publisher (src/out/mqtt_pub.c) share: creating a libmosquitto client from
 * the [mqtt] configuration, connecting, reconnect backoff, and a sleep that
 * a stop request cuts short.  See mqtt_client.c.
 */
#ifndef LS_MQTT_CLIENT_H
#define LS_MQTT_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "app/config.h"

struct mosquitto;

/* libmosquitto's global init/cleanup, reference counted; init returns 0 or < 0. */
int ls_mqtt_lib_init(void);
void ls_mqtt_lib_cleanup(void);

/*
 * Creates a client with cfg's protocol version, credentials and TLS
 * settings.  `persistent` asks for a persistent session (clean session
 * off; with MQTT 5, session expiry mqtt.session_expiry).  Returns 0, or a
 * negative value after logging the reason (a TLS file that cannot be read,
 * ...).  The caller sets callbacks and owns the client.
 */
int ls_mqtt_client_new(struct mosquitto **out, const ls_config *cfg, const char *client_id,
                       int persistent, void *ud);

/*
 * Connects or reconnects the client: the TCP (and TLS) connection and the
 * CONNECT packet; CONNACK arrives later in the loop.  Messages the client
 * had queued or in flight are sent again.  Blocking (name resolution, TCP
 * connect).  Returns a MOSQ_ERR_* value.
 */
int ls_mqtt_client_connect(struct mosquitto *m, const ls_config *cfg, int persistent);

/* "host:port" for logs. */
const char *ls_mqtt_client_where(const ls_config *cfg, char *buf, size_t len);

/*
 * The delay before reconnect attempt number `attempt` (0 = first retry):
 * d = min(reconnect_max, reconnect_min * 2^attempt), then a uniform draw
 * from [d/2, d] so that many clients cut off at once do not come back in
 * step.  *seed is the caller's rand_r() state.
 */
int64_t ls_mqtt_backoff_ms(const ls_config *cfg, unsigned attempt, unsigned *seed);

/* A flag plus a condition variable: stop requests wake sleepers. */
typedef struct ls_stopper {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    _Atomic int stop;  /* written under mu; ls_stopper_requested() reads it without */
} ls_stopper;

void ls_stopper_init(ls_stopper *s);
void ls_stopper_close(ls_stopper *s);
void ls_stopper_request(ls_stopper *s);
int ls_stopper_requested(ls_stopper *s);
/* Sleeps ms or until a stop request; returns 1 if stopping. */
int ls_stopper_sleep(ls_stopper *s, int64_t ms);

#endif
