/*
 * alarms.c - the alarm routes (Cumulocity's shapes):
 *
 *   GET /api/v1/alarms?status=&source=&severity=&limit=&after=
 *   GET /api/v1/alarms/{id}
 *   PUT /api/v1/alarms/{id}   {"status": "ACKNOWLEDGED" | "CLEARED"}
 *
 * Listing is in id order (oldest first) in pages, like the device list;
 * a page looks at a bounded number of alarms so that a filter matching
 * few never holds the lock for long (core/service.h).  A status change is
 * an ALARM_UPDATED or ALARM_CLEARED event and is committed before the
 * answer: the request waits suspended for that commit, not a server
 * thread.
 */
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "core/format.h"
#include "core/service.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000

static enum MHD_Result respond_buf(ls_req *r, unsigned status, ls_buf *b)
{
    enum MHD_Result ok = ls_api_respond(r, status, b);
    ls_buf_free(b);
    return ok;
}

typedef struct list_state {
    ls_buf *b;
    size_t n;
} list_state;

static void list_visit(void *ud, const ls_alarm *a)
{
    list_state *s = ud;
    if (s->n++) ls_buf_putc(s->b, ',');
    ls_format_alarm(s->b, a);
}

enum MHD_Result ls_api_alarm_list(ls_req *r)
{
    char status[32], severity[32], source[LS_ID_MAX * 3 + 1], limit_s[32], after_s[32];
    int hs = ls_api_arg(r, "status", status, sizeof(status));
    int hv = ls_api_arg(r, "severity", severity, sizeof(severity));
    int hr = ls_api_arg(r, "source", source, sizeof(source));
    int hl = ls_api_arg(r, "limit", limit_s, sizeof(limit_s));
    int ha = ls_api_arg(r, "after", after_s, sizeof(after_s));
    if (hs < 0 || hv < 0 || hr < 0 || hl < 0 || ha < 0)
        return ls_api_error(r, 422, "invalid", "malformed query parameter");
    ls_alarm_filter f = {.status = -1, .severity = -1};
    uint64_t limit = LIMIT_DEFAULT, after = 0;
    if (hs && (f.status = ls_alarm_status_parse(status, strlen(status))) < 0)
        return ls_api_error(r, 422, "invalid", "status must be ACTIVE, ACKNOWLEDGED or CLEARED");
    if (hv && (f.severity = ls_severity_parse(severity, strlen(severity))) < 0)
        return ls_api_error(r, 422, "invalid",
                            "severity must be CRITICAL, MAJOR, MINOR or WARNING");
    if (hr) {
        f.source = source;
        f.source_len = strlen(source);
        if (ls_id_check(source, f.source_len))
            return ls_api_error(r, 422, "invalid", "invalid source device id");
    }
    if (hl && ls_api_parse_u64(limit_s, 1, LIMIT_MAX, &limit) < 0)
        return ls_api_error(r, 422, "invalid", "limit must be an integer between 1 and %d",
                            LIMIT_MAX);
    if (ha && after_s[0] && ls_api_parse_u64(after_s, 0, UINT64_MAX, &after) < 0)
        return ls_api_error(r, 422, "invalid", "after must be a cursor returned as \"next\"");

    ls_buf b;
    ls_buf_init(&b, (size_t)64 << 20);
    ls_buf_append(&b, "{\"alarms\":[", 11);
    list_state s = {.b = &b};
    uint64_t next = ls_service_alarms(r->d, after, &f, limit, list_visit, &s);
    if (next)
        ls_buf_printf(&b, "],\"next\":\"%llu\"}", (unsigned long long)next);
    else
        ls_buf_append(&b, "],\"next\":null}", 14);
    return respond_buf(r, 200, &b);
}

enum MHD_Result ls_api_alarm_get(ls_req *r)
{
    ls_alarm_copy a;
    if (ls_service_alarm_get(r->d, r->param.num, &a) < 0)
        return ls_api_error(r, 404, "not_found", "no such alarm");
    ls_buf b;
    ls_buf_init(&b, 4096);
    ls_format_alarm(&b, &a.a);
    return respond_buf(r, 200, &b);
}

enum MHD_Result ls_api_alarm_put(ls_req *r)
{
    json_error_t err;
    json_t *j =
        ls_api_json_parse(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        return ls_api_error(r, 400, "bad_request", "malformed JSON at line %d column %d: %s",
                            err.line, err.column, err.text);
    json_t *v = json_is_object(j) ? json_object_get(j, "status") : NULL;
    int bad_shape = !json_is_object(j), st = -1;
    if (v && json_is_string(v))
        st = ls_alarm_status_parse(json_string_value(v), json_string_length(v));
    size_t fields = bad_shape ? 0 : json_object_size(j);
    json_decref(j);
    if (bad_shape) return ls_api_error(r, 400, "bad_request", "the body must be a JSON object");
    if (!v || fields != 1 || (st != LS_ALARM_ACKNOWLEDGED && st != LS_ALARM_CLEARED))
        return ls_api_error(
            r, 422, "invalid",
            "the body must be {\"status\": \"ACKNOWLEDGED\"} or {\"status\": \"CLEARED\"}");

    ls_alarm_copy a;
    ls_service_result res;
    ls_actor by;
    uint64_t gen = ls_service_alarm_set_status(r->d, r->param.num, (ls_alarm_status)st,
                                               ls_api_actor(r, &by), &a, &res);
    if (res.rc == LS_ENOTFOUND) return ls_api_error(r, 404, "not_found", "no such alarm");
    if (res.rc < 0)
        return ls_api_error(r, 409, "conflict",
                            "the alarm is CLEARED; a cleared alarm cannot change");
    ls_buf b;
    ls_buf_init(&b, 4096);
    ls_format_alarm(&b, &a.a);
    return ls_api_respond_committed(r, gen, 200, &b);
}
