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

/* {"seq":..,"type":..,"device":..,"ts":..,"detectedAt":..,"state":{device}}, or for
 * SOURCE_DOWN/SOURCE_UP {"seq":..,"type":..,"device":source name,"ts":..,"detectedAt":..,
 * "source":true} (no state: there is no device). */
int ls_format_event(ls_buf *b, const ls_engine *e, uint64_t seq, const ls_event *ev);

#endif
