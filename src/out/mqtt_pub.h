/*
 * mqtt_pub.h - publishes events and retained device states to the MQTT
 * broker, from the durable outbox.  See mqtt_pub.c.
 */
#ifndef LS_MQTT_PUB_H
#define LS_MQTT_PUB_H

#include "base/buf.h"
#include "conf/config.h"
#include "core/outbox.h"

typedef struct ls_mqtt_pub ls_mqtt_pub;

/*
 * Registers the outbox sink "mqtt" and starts the publisher thread.  Call
 * from the composition root (app/root.c) after ls_core_open() and before the daemon is
 * ready, when mqtt.host is set and mqtt.event_topic or mqtt.state_topic is
 * not empty.  Returns 0 or a negative value after logging why.
 */
int ls_mqtt_pub_start(ls_mqtt_pub **out, struct ls_daemon *d, const ls_config *cfg);

/* Stops the thread; what the broker acknowledged is acknowledged to the
 * outbox (made durable by the final commit), the rest is sent next run. */
void ls_mqtt_pub_stop(ls_mqtt_pub *p);

/* Appends the publisher's counters as a JSON object. */
void ls_mqtt_pub_stats_json(ls_mqtt_pub *p, ls_buf *b);

#endif
