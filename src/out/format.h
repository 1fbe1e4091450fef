/*
 * format.h - the JSON shapes of a device and of an event, written once and
 * shared by the HTTP API and every sink so they cannot drift apart.
 */
#ifndef LS_FORMAT_H
#define LS_FORMAT_H

#include "app/buf.h"
#include "engine/engine.h"

/* {"id":..,"type":..,"active":..,"lastActivityTime":..,...,"sessions":..} */
int ls_format_device(ls_buf *b, const ls_engine *e, const ls_device *d);

/* What a device's JSON reports, for callers without an engine (export). */
typedef struct ls_device_fields {
    const char *id;
    size_t id_len;
    const char *type; /* its name: "default" when it has none */
    size_t type_len;
    int active;
    int64_t last_activity, last_connect, last_disconnect, inactivity_alarm;
    int64_t timeout_ms;         /* the effective timeout */
    const char *timeout_source; /* "device" or "default" */
    uint32_t sessions;
} ls_device_fields;

/* The same JSON as ls_format_device(), from the field values.  0, or -1 when b is full. */
int ls_format_device_fields(ls_buf *b, const ls_device_fields *f);

/* {"seq":..,"type":..,"device":..,"ts":..,"detectedAt":..,"state":{device}}, or for
 * SOURCE_DOWN/SOURCE_UP {"seq":..,"type":..,"device":source name,"ts":..,"detectedAt":..,
 * "source":true} (no state: there is no device). */
int ls_format_event(ls_buf *b, const ls_engine *e, uint64_t seq, const ls_event *ev);

#endif
