/*
 * types.c - the device type (profile) routes:
 *
 *   GET    /api/v1/device-types          every type name known, with counts
 *   GET    /api/v1/device-types/{type}   one type
 *   PUT    /api/v1/device-types/{type}   set its settings (unset fields keep theirs)
 *   DELETE /api/v1/device-types/{type}   drop its settings (devices keep the name)
 *
 * A type's settings apply at once to every device of the type (the engine
 * re-evaluates exactly those devices: core/service.h) and are committed to
 * the store before the answer, like a device PUT: the request waits
 * suspended for that commit, not a server thread.
 */
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "core/device_in.h"
#include "core/format.h"
#include "core/service.h"

#define LIST_MAX_BYTES ((size_t)64 << 20)

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

static void list_visit(void *ud, const ls_type_info *t)
{
    list_state *ls = ud;
    if (ls->n++) ls_buf_putc(ls->b, ',');
    ls_format_type(ls->b, t);
}

enum MHD_Result ls_api_type_list(ls_req *r)
{
    ls_buf b;
    ls_buf_init(&b, LIST_MAX_BYTES);
    ls_buf_append(&b, "{\"types\":[", 10);
    list_state ls = {.b = &b};
    ls_service_types(r->d, list_visit, &ls);
    ls_buf_append(&b, "]}", 2);
    return respond_buf(r, 200, &b);
}

/* Parses a PUT body into *p (which fields it sets, and to what).  NULL, or
 * the error text (422). */
static const char *parse_patch(json_t *j, const char *name, size_t len, ls_type_patch *p)
{
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "inactivityTimeout") == 0) {
            p->set_timeout = 1;
            if (json_is_null(v))
                p->v.timeout_ms = 0;
            else if (json_is_integer(v) && json_integer_value(v) >= LS_TIMEOUT_MIN_MS &&
                     json_integer_value(v) <= LS_TIMEOUT_MAX_MS)
                p->v.timeout_ms = json_integer_value(v);
            else
                return "inactivityTimeout must be an integer of ms between 1 and 315360000000, or "
                       "null";
        } else if (strcmp(key, "responseInterval") == 0) {
            p->set_ri = 1;
            p->v.has_ri = !json_is_null(v);
            if (p->v.has_ri && ls_json_response_interval(v, &p->v.response_interval) < 0)
                return "responseInterval must be an integer of minutes (clamped to -32768..32767), "
                       "or null";
        } else if (strcmp(key, "monitored") == 0) {
            p->set_monitored = 1;
            if (json_is_null(v))
                p->v.monitored = -1;
            else if (json_is_boolean(v))
                p->v.monitored = json_is_true(v);
            else
                return "monitored must be true, false or null";
        } else if (strcmp(key, "alarmSeverity") == 0) {
            int sev = json_is_string(v)
                          ? ls_severity_parse(json_string_value(v), json_string_length(v))
                          : -1;
            p->set_severity = 1;
            if (json_is_null(v)) sev = LS_SEV_MAJOR;
            if (sev < 0) return "alarmSeverity must be CRITICAL, MAJOR, MINOR or WARNING";
            p->v.severity = (ls_severity)sev;
        } else if (strcmp(key, "type") == 0) {
            if (!json_is_string(v) || json_string_length(v) != len ||
                memcmp(json_string_value(v), name, len))
                return "type in the body differs from the type in the path";
        } else {
            return "unknown field; known: inactivityTimeout, responseInterval, monitored, "
                   "alarmSeverity, type";
        }
    }
    return NULL;
}

enum MHD_Result ls_api_type_put(ls_req *r)
{
    if (ls_api_forwarding(r)) return ls_api_cluster_refuse(r, "a device type's settings");
    const char *name = r->param.s;
    size_t len = r->param.len;
    json_error_t err;
    json_t *j =
        ls_api_json_parse(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        return ls_api_error(r, 400, "bad_request", "malformed JSON at line %d column %d: %s",
                            err.line, err.column, err.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return ls_api_error(r, 400, "bad_request", "the body must be a JSON object");
    }
    ls_type_patch p = {0};
    const char *why = parse_patch(j, name, len, &p);
    json_decref(j);
    if (why) return ls_api_error(r, 422, "invalid", "%s", why);

    ls_type_info t;
    ls_service_result res;
    ls_actor by;
    uint64_t gen = ls_service_type_put(r->d, name, len, &p, ls_api_actor(r, &by), &t, &res);
    if (res.rc == LS_EFULL)
        return ls_api_error(r, 507, "type_limit", "65535 type names exist already");
    if (res.rc < 0) return ls_api_engine_error(r, res.rc, "device type");
    ls_buf b;
    ls_buf_init(&b, 4096);
    ls_format_type(&b, &t);
    return ls_api_respond_committed(r, gen, res.created ? 201 : 200, &b);
}

enum MHD_Result ls_api_type_delete(ls_req *r)
{
    if (ls_api_forwarding(r)) return ls_api_cluster_refuse(r, "a device type's settings");
    ls_service_result res;
    ls_actor by;
    uint64_t gen =
        ls_service_type_delete(r->d, r->param.s, r->param.len, ls_api_actor(r, &by), &res);
    if (res.rc < 0) return ls_api_error(r, 404, "not_found", "device type has no settings");
    return ls_api_respond_committed(r, gen, 204, NULL);
}

enum MHD_Result ls_api_type_get(ls_req *r)
{
    ls_type_info t;
    if (ls_service_type_get(r->d, r->param.s, r->param.len, &t) < 0)
        return ls_api_error(r, 404, "not_found", "no such device type");
    ls_buf b;
    ls_buf_init(&b, 4096);
    ls_format_type(&b, &t);
    return respond_buf(r, 200, &b);
}
