/*
 * format.h - the JSON shapes of a device, an alarm and an event, written
 * once and shared by the HTTP API and every sink so they cannot drift apart.
 */
#ifndef LS_FORMAT_H
#define LS_FORMAT_H

#include "app/buf.h"
#include "engine/alarms.h"
#include "engine/engine.h"

/*
 * {"id":..,"type":..,"active":..,"lastActivityTime":..,...,"sessions":..,
 *  "c8y_RequiredAvailability":{..} (if set), "c8y_Availability":{..} and
 *  "c8y_Connection":{..} (unless not monitored), "c8y_ActiveAlarmsStatus":{..}
 *  (when `alarms` is given)}
 */
int ls_format_device(ls_buf *b, const ls_engine *e, const ls_alarms *alarms, const ls_device *d);

/* {"id":"7","type":"c8y_UnavailabilityAlarm","text":..,"status":..,..,"count":..} */
int ls_format_alarm(ls_buf *b, const ls_alarm *a);

/* Device events: {"seq":..,"type":..,"device":..,"ts":..,"detectedAt":..,"state":{device}};
 * alarm events: the same with "alarm":{alarm} instead of "state". */
int ls_format_event(ls_buf *b, const ls_engine *e, const ls_alarms *alarms, uint64_t seq,
                    const ls_event *ev);

/* Wall ms as ISO-8601 UTC with milliseconds ("2024-05-21T10:00:00.123Z"). */
void ls_format_iso8601(char *out, size_t len, int64_t ms);

#endif
