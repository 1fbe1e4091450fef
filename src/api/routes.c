/*
 * routes.c - the route table and the dispatcher.
 *
 * Each row is one method set, one path pattern, its handler and the
 * template it is counted under in /metrics.  A pattern is matched
 * literally except for one parameter in braces: "{id}" stands for one
 * path segment (up to the next '/', possibly empty), and a name ending in
 * '*' ("{file*}") for the rest of the path, slashes included.  The kind of
 * the parameter (its name) says how it is read: {id} is a device id and
 * {type} a device type, both percent-decoded; {alarm} is a decimal alarm
 * id; {file*} a file of the dashboard.  One parameter per pattern is all
 * the API needs.
 *
 * Dispatch, in this order (the order fixes which error a request with
 * several faults gets, and the API documents it):
 *   1. the first row whose pattern matches the path picks the pattern;
 *      every row with that same pattern is a candidate.  None: 404 (503
 *      while the devices load);
 *   2. a pattern not marked `loading` is answered 503 "starting" until the
 *      devices are loaded;
 *   3. the parameter is read: too long (422) or malformed escapes (400)
 *      for ids and types, an unknown file (404);
 *   4. the method must be one of the candidates': else 405, with an Allow
 *      header listing theirs, from the table;
 *   5. the parameter is checked (422: an invalid id or type, an alarm id
 *      that is no number), and the candidate for the method answers.
 * Rows are looked at in order, a couple of dozen string comparisons per
 * request.
 *
 * The metrics template of a request is that of the rows its path matches
 * (ls_routes_metric(): by shape only, whatever the method or parameter),
 * known before its body arrives, so that a request answered early (413)
 * is counted under it too.
 */
#include "api/routes.h"

#include <stdio.h>
#include <string.h>

#include "api/assets.h"
#include "core/service.h"

/* ---- path parameters ---------------------------------------------------- */

typedef struct param_kind {
    const char *name; /* between the braces */
    int rest;         /* matches the rest of the path */
    /* Before the method is checked: reads r->param.raw; 0, or -1 with *ok
     * set when it answered. */
    int (*read)(ls_req *r, const char *url, enum MHD_Result *ok);
    /* After it: validates r->param; 0, or -1 with *ok set. */
    int (*check)(ls_req *r, enum MHD_Result *ok);
} param_kind;

static int read_id(ls_req *r, const char *url, enum MHD_Result *ok)
{
    ls_req_param *p = &r->param;
    (void)url;
    /* A decoded id is never longer than its raw form; reject early. */
    if (p->raw_len > LS_ID_MAX * 3) {
        *ok = ls_api_error(r, 422, "invalid", "invalid device id: longer than 256 bytes");
        return -1;
    }
    if (ls_api_pct_decode(p->raw, p->raw_len, p->buf, &p->len) < 0) {
        *ok = ls_api_error(r, 400, "bad_request", "malformed percent-encoding in the device id");
        return -1;
    }
    p->s = p->buf;
    return 0;
}

static int check_id(ls_req *r, enum MHD_Result *ok)
{
    const char *why = ls_id_check(r->param.s, r->param.len);
    if (!why) return 0;
    *ok = ls_api_error(r, 422, "invalid", "invalid device id: %s", why);
    return -1;
}

static int read_type(ls_req *r, const char *url, enum MHD_Result *ok)
{
    ls_req_param *p = &r->param;
    (void)url;
    if (p->raw_len > LS_TYPE_MAX * 3) {
        *ok = ls_api_error(r, 422, "invalid", "invalid device type: longer than %d bytes",
                           LS_TYPE_MAX);
        return -1;
    }
    if (ls_api_pct_decode(p->raw, p->raw_len, p->buf, &p->len) < 0) {
        *ok = ls_api_error(r, 400, "bad_request", "malformed percent-encoding in the device type");
        return -1;
    }
    p->s = p->buf;
    return 0;
}

static int check_type(ls_req *r, enum MHD_Result *ok)
{
    const ls_req_param *p = &r->param;
    if (p->len > 0 && p->len <= LS_TYPE_MAX && !ls_id_check(p->s, p->len)) return 0;
    *ok = ls_api_error(r, 422, "invalid",
                       "invalid device type: 1..%d bytes of UTF-8 without control characters",
                       LS_TYPE_MAX);
    return -1;
}

static int check_alarm(ls_req *r, enum MHD_Result *ok)
{
    ls_req_param *p = &r->param;
    char num[32];
    if (p->raw_len < sizeof(num)) {
        memcpy(num, p->raw, p->raw_len);
        num[p->raw_len] = '\0';
        if (ls_api_parse_u64(num, 1, UINT64_MAX, &p->num) == 0) return 0;
    }
    *ok = ls_api_error(r, 422, "invalid", "an alarm id is a decimal number");
    return -1;
}

/* A rest-of-path parameter runs to the end of the URL: raw is NUL-terminated. */
static int read_file(ls_req *r, const char *url, enum MHD_Result *ok)
{
    r->param.asset = ls_api_asset_find(r->param.raw);
    if (r->param.asset) return 0;
    *ok = ls_api_error(r, 404, "not_found", "no route for %s", url);
    return -1;
}

static const param_kind kinds[] = {
    {"id", 0, read_id, check_id},
    {"type", 0, read_type, check_type},
    {"alarm", 0, NULL, check_alarm},
    {"file*", 1, read_file, NULL},
};

static const param_kind *kind_of(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strlen(kinds[i].name) == n && memcmp(kinds[i].name, name, n) == 0) return &kinds[i];
    return NULL;
}

/* ---- the table ---------------------------------------------------------- */

static enum MHD_Result healthz(ls_req *r)
{
    uint64_t loaded;
    int ready = ls_service_ready(r->d, &loaded);
    int64_t since;
    uint64_t failures;
    int store_rc = ls_service_store_error(r->d, &since, &failures);
    ls_buf b;
    ls_buf_init(&b, 256);
    unsigned status = 200;
    if (!ready) {
        ls_buf_printf(&b, "{\"status\":\"starting\",\"devicesLoaded\":%llu}",
                      (unsigned long long)loaded);
        status = 503;
    } else if (store_rc < 0) {
        /* Not ready for changes: a load balancer takes it out (docs/api.md). */
        ls_buf_printf(&b,
                      "{\"status\":\"degraded\",\"reason\":\"storage: %s\",\"since\":%lld,"
                      "\"failedCommits\":%llu}",
                      ls_strerror(store_rc), (long long)since, (unsigned long long)failures);
        status = 503;
    } else {
        ls_buf_printf(&b, "{\"status\":\"ok\"}");
    }
    enum MHD_Result ok = ls_api_respond(r, status, &b);
    ls_buf_free(&b);
    return ok;
}

#define GET LS_M_GET
#define GET_HEAD (LS_M_GET | LS_M_HEAD)
#define POST LS_M_POST
#define PUT LS_M_PUT
#define DELETE LS_M_DELETE

#define PUBLIC LS_ACCESS_PUBLIC
#define READ LS_SCOPE_READ
#define INGEST LS_SCOPE_INGEST
#define ADMIN LS_SCOPE_ADMIN

/* Mutating handlers answer once their change is committed (api.h).  The
 * credential column is what docs/api.md's table and the black-box route
 * walk (tests/blackbox/test_auth.py) are checked against. */
const ls_route_def ls_routes[] = {
    /* {methods, pattern, handler, metrics template, served while the devices load, credential} */
    {GET_HEAD, "/healthz", healthz, LS_ROUTE_HEALTHZ, 1, LS_ACCESS_ANY | LS_ACCESS_HEALTHZ},
    /* The dashboard's files need no engine: served while loading too; and
     * no credential: they hold no data, and the page asks for the token. */
    {GET_HEAD, "/", ls_api_asset, LS_ROUTE_OTHER, 1, PUBLIC},
    {GET_HEAD, "/ui/{file*}", ls_api_asset, LS_ROUTE_OTHER, 1, PUBLIC},
    {GET, "/metrics", ls_api_metrics, LS_ROUTE_METRICS, 0, READ | LS_ACCESS_METRICS},
    {GET, "/api/v1/stats", ls_api_stats, LS_ROUTE_STATS, 0, READ},
    {GET, "/api/v1/stats/history", ls_api_stats_history, LS_ROUTE_OTHER, 0, READ},
    {GET, "/api/v1/events", ls_api_events, LS_ROUTE_EVENTS, 0, READ},
    {GET, "/api/v1/events/stream", ls_api_events_stream, LS_ROUTE_EVENTS_STREAM, 0, READ},
    {GET, "/api/v1/events/recent", ls_api_events_recent, LS_ROUTE_OTHER, 0, READ},
    {POST, "/api/v1/activity", ls_api_bulk_activity, LS_ROUTE_BULK_ACTIVITY, 0, INGEST},
    {GET, "/api/v1/devices", ls_api_device_list, LS_ROUTE_DEVICES, 0, READ},
    {GET, "/api/v1/devices/{id}", ls_api_device_get, LS_ROUTE_DEVICE, 0, READ},
    /* A ping (Cumulocity's PUT {}) is a device's report: ingest will do (devices.c). */
    {PUT, "/api/v1/devices/{id}", ls_api_device_put, LS_ROUTE_DEVICE, 0, ADMIN | LS_ACCESS_PING},
    {DELETE, "/api/v1/devices/{id}", ls_api_device_delete, LS_ROUTE_DEVICE, 0, ADMIN},
    {POST, "/api/v1/devices/{id}/activity", ls_api_device_activity, LS_ROUTE_DEVICE_ACTIVITY, 0,
     INGEST},
    {POST, "/api/v1/devices/{id}/connect", ls_api_device_connect, LS_ROUTE_DEVICE_CONNECT, 0,
     INGEST},
    {POST, "/api/v1/devices/{id}/disconnect", ls_api_device_disconnect, LS_ROUTE_DEVICE_DISCONNECT,
     0, INGEST},
    {GET, "/api/v1/device-types", ls_api_type_list, LS_ROUTE_OTHER, 0, READ},
    {GET, "/api/v1/device-types/{type}", ls_api_type_get, LS_ROUTE_OTHER, 0, READ},
    {PUT, "/api/v1/device-types/{type}", ls_api_type_put, LS_ROUTE_OTHER, 0, ADMIN},
    {DELETE, "/api/v1/device-types/{type}", ls_api_type_delete, LS_ROUTE_OTHER, 0, ADMIN},
    {GET, "/api/v1/alarms", ls_api_alarm_list, LS_ROUTE_OTHER, 0, READ},
    {GET, "/api/v1/alarms/{alarm}", ls_api_alarm_get, LS_ROUTE_OTHER, 0, READ},
    {PUT, "/api/v1/alarms/{alarm}", ls_api_alarm_put, LS_ROUTE_OTHER, 0, ADMIN},
};
const size_t ls_routes_count = sizeof(ls_routes) / sizeof(ls_routes[0]);

/* ---- matching ----------------------------------------------------------- */

/* Does `path` have the shape of `pat`?  *kind gets its parameter's kind
 * (NULL: none) and *raw, *n the parameter's text in path. */
static int shape(const char *pat, const char *path, const param_kind **kind, const char **raw,
                 size_t *n)
{
    *kind = NULL;
    while (*pat) {
        if (*pat == '{') {
            const char *end = strchr(pat, '}');
            if (!end || !(*kind = kind_of(pat + 1, (size_t)(end - pat - 1)))) return 0;
            *raw = path;
            *n = (*kind)->rest ? strlen(path) : strcspn(path, "/");
            path += *n;
            pat = end + 1;
        } else if (*pat++ != *path++) {
            return 0;
        }
    }
    return *path == '\0';
}

/* The index of the first row matching path (ls_routes_count if none). */
static size_t find(const char *path, const param_kind **kind, const char **raw, size_t *n)
{
    size_t i = 0;
    while (i < ls_routes_count && !shape(ls_routes[i].pattern, path, kind, raw, n))
        i++;
    return i;
}

/* The methods of row i's pattern (every row that has it).  *hit gets the
 * row among them answering `m` (NULL if none). */
static unsigned methods_of(size_t i, unsigned m, const ls_route_def **hit)
{
    unsigned all = 0;
    *hit = NULL;
    for (size_t k = i; k < ls_routes_count; k++) {
        if (strcmp(ls_routes[k].pattern, ls_routes[i].pattern)) continue;
        all |= ls_routes[k].methods;
        if (ls_routes[k].methods & m) *hit = &ls_routes[k];
    }
    return all;
}

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
#define NMETHODS (sizeof(method_names) / sizeof(method_names[0]))

static unsigned method_bit(const char *method)
{
    for (unsigned i = 0; i < NMETHODS; i++)
        if (strcmp(method, method_names[i]) == 0) return 1u << i;
    return 0;
}

static void allow_text(unsigned methods, char *buf, size_t len)
{
    ls_str_join_bits(buf, len, methods, method_names, NMETHODS, ", ");
}

ls_route ls_routes_metric(const char *path)
{
    const param_kind *kind;
    const char *raw;
    size_t n, i = find(path, &kind, &raw, &n);
    return i < ls_routes_count ? ls_routes[i].metric : LS_ROUTE_OTHER;
}

unsigned ls_routes_access(const char *path, const char *method)
{
    const param_kind *kind;
    const char *raw;
    const ls_route_def *hit;
    size_t n, i = find(path, &kind, &raw, &n);
    if (i == ls_routes_count) return LS_ACCESS_ANY;
    methods_of(i, method_bit(method), &hit);
    return hit ? hit->access : LS_ACCESS_ANY;
}

void ls_routes_print_markdown(FILE *f)
{
    fprintf(f, "| method | path | credential |\n| --- | --- | --- |\n");
    for (size_t i = 0; i < ls_routes_count; i++) {
        char methods[64], access[96];
        allow_text(ls_routes[i].methods, methods, sizeof(methods));
        ls_access_format(ls_routes[i].access, access, sizeof(access));
        fprintf(f, "| %s | `%s` | %s |\n", methods, ls_routes[i].pattern, access);
    }
}

int ls_routes_allow(const char *path, char *buf, size_t len)
{
    const param_kind *kind;
    const char *raw;
    const ls_route_def *hit;
    size_t n, i = find(path, &kind, &raw, &n);
    if (i == ls_routes_count) return -1;
    allow_text(methods_of(i, 0, &hit), buf, len);
    return 0;
}

enum MHD_Result ls_routes_dispatch(ls_req *r, const char *url)
{
    const param_kind *kind;
    const char *raw = NULL;
    size_t n = 0, i = find(url, &kind, &raw, &n);
    uint64_t loaded;
    int ready = ls_service_ready(r->d, &loaded);
    /* Nothing but the `loading` rows may touch the engine before the devices are loaded. */
    if (!ready && (i == ls_routes_count || !ls_routes[i].loading))
        return ls_api_error(r, 503, "starting", "lastseen is loading its devices; retry shortly");
    if (i == ls_routes_count) return ls_api_error(r, 404, "not_found", "no route for %s", url);

    enum MHD_Result ok;
    r->param.raw = raw;
    r->param.raw_len = n;
    if (kind && kind->read && kind->read(r, url, &ok) < 0) return ok;
    const ls_route_def *hit;
    unsigned all = methods_of(i, method_bit(r->method), &hit);
    if (!hit) {
        char allow[64];
        allow_text(all, allow, sizeof(allow));
        return ls_api_method_not_allowed(r, allow);
    }
    if (kind && kind->check && kind->check(r, &ok) < 0) return ok;
    return hit->handler(r);
}
