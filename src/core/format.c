/*
 * format.c - JSON output of devices, alarms and events.
 *
 * Written by hand rather than through a JSON tree: an outage can produce
 * hundreds of thousands of events in one tick, and this path appends
 * straight into the sink's buffer.  Only ids and type names are strings;
 * both are validated UTF-8 without controls, and are escaped anyway.
 *
 * A device is written from its record and its resolved availability
 * (ls_format_record()), whether it comes from an engine (the API, events,
 * the MQTT state topic, which is an event's "state") or from a store
 * (`lastseen export`, which resolves the availability with the engine's
 * own rule): so every one of them writes the same object.
 *
 * Cumulocity's fragments are computed from the device's state when it is
 * written, never stored: c8y_Availability.status is MAINTENANCE in
 * maintenance, else AVAILABLE while the device is active and UNAVAILABLE
 * when it is not; c8y_Connection.status is MAINTENANCE, else CONNECTED
 * while a session is open, else DISCONNECTED.  A device that is not
 * monitored has neither.  Times inside Cumulocity's objects are ISO-8601
 * strings, as Cumulocity writes them; lastseen's own fields stay ms.
 */
#include "core/format.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Appends a string literal. */
#define LIT(b, s) ls_buf_append((b), (s), sizeof(s) - 1)

void ls_format_iso8601(char *out, size_t len, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(out, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* {"critical":1,...}: open alarms of one device or the fleet, by severity, zeros left out. */
static void severity_counts(ls_buf *b, const uint64_t *by_sev)
{
    int n = 0;
    ls_buf_putc(b, '{');
    for (int s = 0; s < LS_SEV__COUNT; s++)
        if (by_sev[s])
            ls_buf_printf(b, "%s\"%s\":%llu", n++ ? "," : "", ls_severity_key(s),
                          (unsigned long long)by_sev[s]);
    ls_buf_putc(b, '}');
}

int ls_format_record(ls_buf *b, const ls_device_state *rec, const ls_availability *av,
                     const ls_alarms *alarms)
{
    LIT(b, "{\"id\":");
    ls_buf_json_str(b, rec->id, rec->id_len);
    LIT(b, ",\"type\":");
    if (rec->type && rec->type_len)
        ls_buf_json_str(b, rec->type, rec->type_len);
    else
        LIT(b, "\"default\"");
    ls_buf_printf(b,
                  ",\"active\":%s,\"lastActivityTime\":%lld,\"lastConnectTime\":%lld,"
                  "\"lastDisconnectTime\":%lld,\"inactivityAlarmTime\":%lld,\"inactivityTimeout\":",
                  rec->active ? "true" : "false", (long long)rec->last_activity,
                  (long long)rec->last_connect, (long long)rec->last_disconnect,
                  (long long)rec->inactivity_alarm);
    if (av->timeout_ms > 0)
        ls_buf_i64(b, av->timeout_ms);
    else
        LIT(b, "null");
    ls_buf_printf(b, ",\"inactivityTimeoutSource\":\"%s\",\"sessions\":%u", av->source,
                  rec->sessions);
    if (av->has_c8y)
        ls_buf_printf(b, ",\"c8y_RequiredAvailability\":{\"responseInterval\":%d}",
                      av->response_interval);
    if (av->cls != LS_AVAIL_UNMONITORED) {
        int maint = av->cls == LS_AVAIL_MAINTENANCE;
        ls_buf_printf(b, ",\"c8y_Availability\":{\"status\":\"%s\"",
                      maint         ? "MAINTENANCE"
                      : rec->active ? "AVAILABLE"
                                    : "UNAVAILABLE");
        if (rec->last_activity) {
            char iso[40];
            ls_format_iso8601(iso, sizeof(iso), rec->last_activity);
            ls_buf_printf(b, ",\"lastMessage\":\"%s\"", iso);
        }
        ls_buf_printf(b, "},\"c8y_Connection\":{\"status\":\"%s\"}",
                      maint           ? "MAINTENANCE"
                      : rec->sessions ? "CONNECTED"
                                      : "DISCONNECTED");
    }
    if (alarms) {
        uint64_t by_sev[LS_SEV__COUNT] = {0};
        const ls_alarm *a = ls_alarms_open(alarms, rec->id, rec->id_len);
        if (a) by_sev[a->severity]++;
        LIT(b, ",\"c8y_ActiveAlarmsStatus\":");
        severity_counts(b, by_sev);
    }
    ls_buf_putc(b, '}');
    return b->overflow ? -1 : 0;
}

int ls_format_device(ls_buf *b, const ls_engine *e, const ls_alarms *alarms, const ls_device *d)
{
    char idb[LS_ID_BUF];
    ls_device_state rec;
    ls_availability av;
    ls_engine_snapshot(e, d, idb, &rec, &av);
    return ls_format_record(b, &rec, &av, alarms);
}

int ls_format_alarm(ls_buf *b, const ls_alarm *a)
{
    char time[40], first[40], updated[40], since[40];
    ls_format_iso8601(time, sizeof(time), a->time);
    ls_format_iso8601(first, sizeof(first), a->first);
    ls_format_iso8601(updated, sizeof(updated), a->updated);
    ls_format_iso8601(since, sizeof(since), a->since);
    ls_buf_printf(b,
                  "{\"id\":\"%llu\",\"type\":\"" LS_ALARM_TYPE
                  "\",\"text\":\"No communication with device",
                  (unsigned long long)a->id);
    if (a->since) ls_buf_printf(b, " since %s", since);
    ls_buf_printf(b, "\",\"status\":\"%s\",\"severity\":\"%s\",\"source\":",
                  ls_alarm_status_name(a->status), ls_severity_name(a->severity));
    ls_buf_json_str(b, a->source, a->source_len);
    ls_buf_printf(
        b, ",\"time\":\"%s\",\"firstOccurrenceTime\":\"%s\",\"lastUpdated\":\"%s\",\"count\":%u}",
        time, first, updated, a->count);
    return b->overflow ? -1 : 0;
}

int ls_format_type(ls_buf *b, const ls_type_info *t)
{
    const ls_type_config *c = &t->cfg;
    LIT(b, "{\"type\":");
    ls_buf_json_str(b, t->name, strlen(t->name));
    ls_buf_printf(b, ",\"configured\":%s,\"inactivityTimeout\":", t->configured ? "true" : "false");
    if (c->timeout_ms)
        ls_buf_i64(b, c->timeout_ms);
    else
        LIT(b, "null");
    LIT(b, ",\"responseInterval\":");
    if (c->has_ri)
        ls_buf_i64(b, c->response_interval);
    else
        LIT(b, "null");
    ls_buf_printf(b, ",\"monitored\":%s,\"alarmSeverity\":\"%s\",\"devices\":%llu,\"active\":%llu}",
                  c->monitored < 0 ? "null"
                  : c->monitored   ? "true"
                                   : "false",
                  ls_severity_name(c->severity), (unsigned long long)t->devices,
                  (unsigned long long)t->active);
    return b->overflow ? -1 : 0;
}

/* A JSON object given as text, or null. */
static void object_or_null(ls_buf *b, const char *json, size_t len)
{
    if (json)
        ls_buf_append(b, json, len);
    else
        LIT(b, "null");
}

int ls_format_audit(ls_buf *b, uint64_t seq, const ls_audit *a, ls_event_spans *spans)
{
    ls_event_spans sp = {0};
    size_t start = b->len;
    ls_buf_printf(b, "{\"seq\":%llu,\"type\":\"%s\",\"device\":", (unsigned long long)seq,
                  ls_event_name(LS_EV_AUDIT));
    sp.device_off = b->len - start;
    ls_buf_json_str(b, a->subject, a->subject_len);
    sp.device_len = b->len - start - sp.device_off;
    ls_buf_printf(b, ",\"ts\":%lld,\"detectedAt\":%lld,\"audit\":{\"who\":", (long long)a->ts,
                  (long long)a->ts);
    if (a->who)
        ls_buf_json_str(b, a->who, strlen(a->who));
    else
        LIT(b, "null");
    LIT(b, ",\"action\":");
    ls_buf_json_str(b, a->action, strlen(a->action));
    LIT(b, ",\"target\":");
    ls_buf_json_str(b, a->target, a->target_len);
    LIT(b, ",\"before\":");
    object_or_null(b, a->before, a->before_len);
    LIT(b, ",\"after\":");
    object_or_null(b, a->after, a->after_len);
    LIT(b, "}}");
    if (spans) *spans = sp;
    return b->overflow ? -1 : 0;
}

int ls_format_event(ls_buf *b, const ls_engine *e, const ls_alarms *alarms, uint64_t seq,
                    const ls_event *ev, ls_event_spans *spans)
{
    ls_event_spans sp = {0};
    size_t start = b->len;
    ls_buf_printf(b, "{\"seq\":%llu,\"type\":\"%s\",\"device\":", (unsigned long long)seq,
                  ls_event_name(ev->type));
    sp.device_off = b->len - start;
    if (!ev->dev && !ev->alarm) {
        /* SOURCE_DOWN / SOURCE_UP: about an input, not a device. */
        const char *name = ev->source ? ev->source : "";
        ls_buf_json_str(b, name, strlen(name));
        sp.device_len = b->len - start - sp.device_off;
        ls_buf_printf(b, ",\"ts\":%lld,\"detectedAt\":%lld,\"source\":true}", (long long)ev->ts,
                      (long long)ev->detected_at);
        if (spans) *spans = sp;
        return b->overflow ? -1 : 0;
    }
    if (ev->alarm)
        ls_buf_json_str(b, ev->alarm->source, ev->alarm->source_len);
    else {
        char idb[LS_ID_BUF];
        ls_buf_json_str(b, ls_device_id(ev->dev, idb), ev->dev->id_len);
    }
    sp.device_len = b->len - start - sp.device_off;
    ls_buf_printf(b, ",\"ts\":%lld,\"detectedAt\":%lld,", (long long)ev->ts,
                  (long long)ev->detected_at);
    if (ev->alarm) {
        LIT(b, "\"alarm\":");
        ls_format_alarm(b, ev->alarm);
    } else {
        LIT(b, "\"state\":");
        sp.state_off = b->len - start;
        ls_format_device(b, e, alarms, ev->dev);
        sp.state_len = b->len - start - sp.state_off;
    }
    ls_buf_putc(b, '}');
    if (spans) *spans = sp;
    return b->overflow ? -1 : 0;
}
/* Skips the literal `lit` at *p; 0 or -1. */
static int expect(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return -1;
    *p += n;
    return 0;
}

int ls_format_event_peek(const char *line, size_t len, const char **dev, size_t *dev_len)
{
    const char *p = line, *end = line + len;
    int type = -1;
    if (expect(&p, end, "{\"seq\":") < 0) return -1;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    if (expect(&p, end, ",\"type\":\"") < 0) return -1;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q) return -1;
    for (int t = 0; t < LS_EV__COUNT; t++) {
        const char *name = ls_event_name((ls_event_type)t);
        if (strlen(name) == (size_t)(q - p) && memcmp(name, p, (size_t)(q - p)) == 0) type = t;
    }
    p = q + 1;
    if (type < 0 || expect(&p, end, ",\"device\":") < 0 || p == end || *p != '"') return -1;
    for (q = p + 1; q < end && *q != '"'; q++)
        if (*q == '\\') q++; /* an escaped character, '"' included */
    if (q >= end) return -1;
    *dev = p;
    *dev_len = (size_t)(q + 1 - p);
    return type;
}
