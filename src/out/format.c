/*
 * format.c - JSON output of devices and events.
 *
 * Written by hand rather than through a JSON tree: an outage can produce
 * hundreds of thousands of events in one tick, and this path appends
 * straight into the sink's buffer.  Only ids and type names are strings;
 * both are validated UTF-8 without controls, and are escaped anyway.
 */
#include "out/format.h"

#include <string.h>

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
