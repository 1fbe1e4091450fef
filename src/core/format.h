/*
 * format.h - the JSON shapes of a device, an alarm and an event, written
 * once and shared by the HTTP API, `lastseen export` and every sink so they
 * cannot drift apart.
 */
#ifndef LS_FORMAT_H
#define LS_FORMAT_H

#include "base/buf.h"
#include "engine/alarms.h"
#include "engine/engine.h"

/*
 * A device as GET /api/v1/devices/{id} shows it: its record (engine.h),
 * its resolved availability (ls_availability_of(), ls_engine_availability())
 * and, when `alarms` is given, its open alarm:
 * {"id":..,"type":..,"active":..,"lastActivityTime":..,...,"sessions":..,
 *  "c8y_RequiredAvailability":{..} (if set), "c8y_Availability":{..} and
 *  "c8y_Connection":{..} (unless not monitored), "c8y_ActiveAlarmsStatus":{..}
 *  (when `alarms` is given)}.  The one writer of a device's JSON: everything
 * that shows a device goes through it.  0, or -1 when b is full.
 */
int ls_format_record(ls_buf *b, const ls_device_state *rec, const ls_availability *av,
                     const ls_alarms *alarms);

/* ls_format_record() of a live device of engine e. */
int ls_format_device(ls_buf *b, const ls_engine *e, const ls_alarms *alarms, const ls_device *d);

/* {"id":"7","type":"c8y_UnavailabilityAlarm","text":..,"status":..,..,"count":..} */
int ls_format_alarm(ls_buf *b, const ls_alarm *a);

/* A device type as GET /api/v1/device-types/{type} shows it:
 * {"type":..,"configured":..,"inactivityTimeout":..,"responseInterval":..,
 *  "monitored":..,"alarmSeverity":..,"devices":..,"active":..}. */
int ls_format_type(ls_buf *b, const ls_type_info *t);

/* Where ls_format_event() put what readers of the outbox select and route
 * by, as offsets from the start of the line it wrote. */
typedef struct ls_event_spans {
    size_t device_off, device_len; /* the "device" value: a JSON string, quotes included */
    size_t state_off, state_len;   /* the "state" object; state_len 0: none */
} ls_event_spans;

/* Device events: {"seq":..,"type":..,"device":..,"ts":..,"detectedAt":..,"state":{device}};
 * alarm events: the same with "alarm":{alarm} instead of "state"; SOURCE_DOWN/SOURCE_UP:
 * "device" is the source's name, no "state" (there is no device), and "source":true.
 * `spans` (may be NULL) gets where the device and the state are. */
int ls_format_event(ls_buf *b, const ls_engine *e, const ls_alarms *alarms, uint64_t seq,
                    const ls_event *ev, ls_event_spans *spans);

/*
 * An admin change, for its AUDIT event: who made it (the credential's
 * name; NULL when none was needed), what (the action and what it names)
 * and the thing changed before and after, as the API shows it (JSON
 * objects; NULL: it did not exist).  `subject` is the event's "device":
 * the device changed, an alarm's source, or the device type's name.
 */
typedef struct ls_audit {
    const char *who;
    const char *action; /* "device.put", "device.delete", "deviceType.put", ... */
    const char *subject;
    size_t subject_len;
    const char *target; /* the device id, type name or alarm id the action names */
    size_t target_len;
    const char *before, *after; /* JSON objects, or NULL */
    size_t before_len, after_len;
    int64_t ts; /* wall ms of the change */
} ls_audit;

/* {"seq":..,"type":"AUDIT","device":subject,"ts":..,"detectedAt":..,
 *  "audit":{"who":..,"action":..,"target":..,"before":..,"after":..}};
 * spans as for ls_format_event() (no state). */
int ls_format_audit(ls_buf *b, uint64_t seq, const ls_audit *a, ls_event_spans *spans);

/* Wall ms as ISO-8601 UTC with milliseconds ("2024-05-21T10:00:00.123Z"). */
void ls_format_iso8601(char *out, size_t len, int64_t ms);

/*
 * The type and device of an event line written by ls_format_event(), read
 * from its fixed prefix without parsing the JSON: the device as the
 * escaped JSON string it was written as (quotes included), which equals
 * ls_buf_json_str() of the id.  Returns the ls_event_type, or -1 if the
 * line does not start the way ls_format_event() writes it.  For outbox
 * records of store format 1, which kept the line alone (core/outbox.c).
 */
int ls_format_event_peek(const char *line, size_t len, const char **dev, size_t *dev_len);

#endif
