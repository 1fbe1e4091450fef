/*
 * format.c - JSON output of devices and events.
 *
 * Written by hand rather than through a JSON tree: an outage can produce
 * hundreds of thousands of events in one tick, and this path appends
 * straight into the sink's buffer.  Only ids and type names are strings;
 * both are validated UTF-8 without controls, and are escaped anyway.
 */
#include "out/format.h"

int ls_format_device(ls_buf *b, const ls_engine *e, const ls_device *d)
{
    const char *source;
    const char *type = ls_engine_type_name(e, d);
    int64_t timeout = ls_engine_timeout(e, d, &source);
    size_t tlen = 0;
    while (type[tlen]) tlen++;

    ls_buf_append(b, "{\"id\":", 6);
    ls_buf_json_str(b, ls_device_id(d), d->id_len);
    ls_buf_append(b, ",\"type\":", 8);
    ls_buf_json_str(b, type, tlen);
    ls_buf_printf(b,
                  ",\"active\":%s,\"lastActivityTime\":%lld,\"lastConnectTime\":%lld,"
                  "\"lastDisconnectTime\":%lld,\"inactivityAlarmTime\":%lld,"
                  "\"inactivityTimeout\":%lld,\"inactivityTimeoutSource\":\"%s\",\"sessions\":%u}",
                  d->active ? "true" : "false", (long long)d->last_activity,
                  (long long)d->last_connect, (long long)d->last_disconnect,
                  (long long)d->inactivity_alarm, (long long)timeout, source, d->sessions);
    return b->overflow ? -1 : 0;
}

int ls_format_event(ls_buf *b, const ls_engine *e, uint64_t seq, const ls_event *ev)
{
    ls_buf_printf(b, "{\"seq\":%llu,\"type\":\"%s\",\"device\":", (unsigned long long)seq,
                  ls_event_name(ev->type));
    if (!ev->dev) {
        /* SOURCE_DOWN / SOURCE_UP: about an input, not a device. */
        const char *name = ev->source ? ev->source : "";
        size_t n = 0;
        while (name[n]) n++;
        ls_buf_json_str(b, name, n);
        ls_buf_printf(b, ",\"ts\":%lld,\"detectedAt\":%lld,\"source\":true}", (long long)ev->ts,
                      (long long)ev->detected_at);
        return b->overflow ? -1 : 0;
    }
    ls_buf_json_str(b, ls_device_id(ev->dev), ev->dev->id_len);
    ls_buf_printf(b, ",\"ts\":%lld,\"detectedAt\":%lld,\"state\":", (long long)ev->ts,
                  (long long)ev->detected_at);
    ls_format_device(b, e, ev->dev);
    ls_buf_putc(b, '}');
    return b->overflow ? -1 : 0;
}
