/*
 * format.c - JSON output of devices and events.
 *
 * Written by hand rather than through a JSON tree: an outage can produce
 * hundreds of thousands of events in one tick, and this path appends
 * straight into the sink's buffer.  Only ids and type names are strings;
 * both are validated UTF-8 without controls, and are escaped anyway.
 * ls_format_device_fields() is the one writer of a device's JSON: the API,
 * the events and `lastseen export` (which has store records, not engine
 * devices) all go through it.
 */
#include "out/format.h"

#include <string.h>

int ls_format_device_fields(ls_buf *b, const ls_device_fields *f)
{
    ls_buf_append(b, "{\"id\":", 6);
    ls_buf_json_str(b, f->id, f->id_len);
    ls_buf_append(b, ",\"type\":", 8);
    ls_buf_json_str(b, f->type, f->type_len);
    ls_buf_printf(b,
                  ",\"active\":%s,\"lastActivityTime\":%lld,\"lastConnectTime\":%lld,"
                  "\"lastDisconnectTime\":%lld,\"inactivityAlarmTime\":%lld,"
                  "\"inactivityTimeout\":%lld,\"inactivityTimeoutSource\":\"%s\",\"sessions\":%u}",
                  f->active ? "true" : "false", (long long)f->last_activity,
                  (long long)f->last_connect, (long long)f->last_disconnect,
                  (long long)f->inactivity_alarm, (long long)f->timeout_ms, f->timeout_source,
                  f->sessions);
    return b->overflow ? -1 : 0;
}

int ls_format_device(ls_buf *b, const ls_engine *e, const ls_device *d)
{
    ls_device_fields f = {
        .id = ls_device_id(d),
        .id_len = d->id_len,
        .type = ls_engine_type_name(e, d),
        .active = d->active,
        .last_activity = d->last_activity,
        .last_connect = d->last_connect,
        .last_disconnect = d->last_disconnect,
        .inactivity_alarm = d->inactivity_alarm,
        .sessions = d->sessions,
    };
    f.type_len = strlen(f.type);
    f.timeout_ms = ls_engine_timeout(e, d, &f.timeout_source);
    return ls_format_device_fields(b, &f);
}

int ls_format_event(ls_buf *b, const ls_engine *e, uint64_t seq, const ls_event *ev)
{
    ls_buf_printf(b, "{\"seq\":%llu,\"type\":\"%s\",\"device\":", (unsigned long long)seq,
                  ls_event_name(ev->type));
    ls_buf_json_str(b, ls_device_id(ev->dev), ev->dev->id_len);
    ls_buf_printf(b, ",\"ts\":%lld,\"detectedAt\":%lld,\"state\":", (long long)ev->ts,
                  (long long)ev->detected_at);
    ls_format_device(b, e, ev->dev);
    ls_buf_putc(b, '}');
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
