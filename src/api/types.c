/*
 * types.c - the device type (profile) routes:
 *
 *   GET    /api/v1/device-types          every type name known, with counts
 *   GET    /api/v1/device-types/{type}   one type
 *   PUT    /api/v1/device-types/{type}   set its settings (unset fields keep theirs)
 *   DELETE /api/v1/device-types/{type}   drop its settings (devices keep the name)
 *
 * A type's settings apply at once to every device of the type (the engine
 * re-evaluates exactly those devices) and are committed to the store
 * before the answer, like a device PUT.
 */
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "base/clock.h"
#include "core/device_in.h"
#include "core/persist.h"
#include "core/shards.h"

#define LIST_MAX_BYTES ((size_t)64 << 20)

static void type_json(ls_buf *b, const ls_type_info *t)
{
    const ls_type_config *c = &t->cfg;
    ls_buf_append(b, "{\"type\":", 8);
    ls_buf_json_str(b, t->name, strlen(t->name));
    ls_buf_printf(b, ",\"configured\":%s,\"inactivityTimeout\":", t->configured ? "true" : "false");
    if (c->timeout_ms)
        ls_buf_i64(b, c->timeout_ms);
    else
        ls_buf_append(b, "null", 4);
    ls_buf_append(b, ",\"responseInterval\":", 20);
    if (c->has_ri)
        ls_buf_i64(b, c->response_interval);
    else
        ls_buf_append(b, "null", 4);
    ls_buf_printf(b, ",\"monitored\":%s,\"alarmSeverity\":\"%s\",\"devices\":%llu,\"active\":%llu}",
                  c->monitored < 0 ? "null"
                  : c->monitored   ? "true"
                                   : "false",
                  ls_severity_name(c->severity), (unsigned long long)t->devices,
                  (unsigned long long)t->active);
}

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
    type_json(ls->b, t);
}

static enum MHD_Result type_list(ls_req *r)
{
    ls_buf b;
    ls_buf_init(&b, LIST_MAX_BYTES);
    ls_buf_append(&b, "{\"types\":[", 10);
    ls_daemon_lock(r->d);
    list_state ls = {.b = &b};
    ls_shards_types(r->d->shards, list_visit, &ls);
    ls_daemon_unlock(r->d);
    ls_buf_append(&b, "]}", 2);
    return respond_buf(r, 200, &b);
}

/* A PUT body: which fields it sets, and to what. */
typedef struct type_patch {
    int set_timeout, set_ri, set_monitored, set_severity;
    ls_type_config v;
} type_patch;

/* Parses a PUT body into *p.  NULL, or the error text (422). */
static const char *parse_patch(json_t *j, const char *name, size_t len, type_patch *p)
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

static enum MHD_Result type_put(ls_req *r, const char *name, size_t len)
{
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
    type_patch p = {0};
    const char *why = parse_patch(j, name, len, &p);
    json_decref(j);
    if (why) return ls_api_error(r, 422, "invalid", "%s", why);

    ls_buf b;
    ls_buf_init(&b, 4096);
    ls_daemon_lock(r->d);
    ls_type_info cur;
    ls_type_config c = {.monitored = -1, .severity = LS_SEV_MAJOR};
    if (ls_shards_type_get(r->d->shards, name, len, &cur) == 0 && cur.configured) c = cur.cfg;
    if (p.set_timeout) c.timeout_ms = p.v.timeout_ms;
    if (p.set_ri) {
        c.has_ri = p.v.has_ri;
        c.response_interval = p.v.has_ri ? p.v.response_interval : 0;
    }
    if (p.set_monitored) c.monitored = p.v.monitored;
    if (p.set_severity) c.severity = p.v.severity;
    int created = 0;
    int rc = ls_shards_type_put(r->d->shards, name, len, &c, ls_clock_now(), &created);
    if (rc == 0) {
        ls_persist_type(r->d, name, len, &c);
        ls_shards_type_get(r->d->shards, name, len, &cur);
        type_json(&b, &cur);
        ls_daemon_commit_unlock(r->d);
    } else {
        ls_daemon_unlock(r->d);
    }
    if (rc < 0) {
        ls_buf_free(&b);
        if (rc == LS_EFULL)
            return ls_api_error(r, 507, "type_limit", "65535 type names exist already");
        return ls_api_engine_error(r, rc, "device type");
    }
    return respond_buf(r, created ? 201 : 200, &b);
}

static enum MHD_Result type_item(ls_req *r, const char *name, size_t len)
{
    if (strcmp(r->method, "PUT") == 0) return type_put(r, name, len);
    ls_daemon_lock(r->d);
    if (strcmp(r->method, "DELETE") == 0) {
        int rc = ls_shards_type_delete(r->d->shards, name, len, ls_clock_now());
        if (rc == 0) {
            ls_persist_type(r->d, name, len, NULL);
            ls_daemon_commit_unlock(r->d);
            return ls_api_respond(r, 204, NULL);
        }
        ls_daemon_unlock(r->d);
        return ls_api_error(r, 404, "not_found", "device type has no settings");
    }
    ls_type_info t;
    ls_buf b;
    ls_buf_init(&b, 4096);
    int rc = ls_shards_type_get(r->d->shards, name, len, &t);
    if (rc == 0) type_json(&b, &t);
    ls_daemon_unlock(r->d);
    if (rc < 0) {
        ls_buf_free(&b);
        return ls_api_error(r, 404, "not_found", "no such device type");
    }
    return respond_buf(r, 200, &b);
}

enum MHD_Result ls_api_device_types(ls_req *r, const char *rest)
{
    if (rest[0] == '\0') {
        if (strcmp(r->method, "GET")) return ls_api_method_not_allowed(r, "GET");
        return type_list(r);
    }
    if (rest[0] != '/' || strchr(rest + 1, '/'))
        return ls_api_error(r, 404, "not_found", "no route for /api/v1/device-types%.200s", rest);
    size_t raw = strlen(rest + 1), len;
    if (raw > LS_TYPE_MAX * 3)
        return ls_api_error(r, 422, "invalid", "invalid device type: longer than %d bytes",
                            LS_TYPE_MAX);
    char name[LS_TYPE_MAX * 3 + 1];
    if (ls_api_pct_decode(rest + 1, raw, name, &len) < 0)
        return ls_api_error(r, 400, "bad_request", "malformed percent-encoding in the device type");
    if (strcmp(r->method, "GET") && strcmp(r->method, "PUT") && strcmp(r->method, "DELETE"))
        return ls_api_method_not_allowed(r, "GET, PUT, DELETE");
    if (len == 0 || len > LS_TYPE_MAX || ls_id_check(name, len))
        return ls_api_error(r, 422, "invalid",
                            "invalid device type: 1..%d bytes of UTF-8 without control characters",
                            LS_TYPE_MAX);
    return type_item(r, name, len);
}
