/*
 * mqtt.h - the MQTT input: device activity and presence from a broker.
 * See mqtt.c.
 */
#ifndef LS_MQTT_H
#define LS_MQTT_H

#include "base/buf.h"
#include "conf/config.h"
#include "core/ingest.h"

typedef struct ls_mqtt ls_mqtt;

/*
 * Registers the "mqtt" source through the ingest port `in`, creates the
 * client from cfg's [mqtt] keys and starts the reader thread, which
 * connects (and keeps reconnecting) on its own.  cfg must outlive the
 * input (the daemon's copy).  Call from the composition root (app/root.c)
 * after the store is loaded, only when mqtt.host is set.  Returns 0, or a
 * negative value after logging why (bad TLS files, a topic that would read
 * back lastseen's own events, ...).
 */
int ls_mqtt_start(ls_mqtt **out, ls_ingest *in, const ls_config *cfg);

/* Stops the thread (applying what it read) and disconnects cleanly; the
 * counters stay readable (ls_mqtt_stats_json()) until ls_mqtt_free(). */
void ls_mqtt_stop(ls_mqtt *m);
/* Frees (after ls_mqtt_stop(), once nothing reads its counters). */
void ls_mqtt_free(ls_mqtt *m);

/* 1 while the source is up (connected, backlog read).  Any thread. */
int ls_mqtt_is_up(ls_mqtt *m);

/* Appends the reader's counters as a JSON object (for /api/v1/stats). */
void ls_mqtt_stats_json(ls_mqtt *m, ls_buf *b);

#endif
