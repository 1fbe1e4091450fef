/*
 * devices.c - the device routes: state, configuration, activity, sessions,
 * listing (with an id substring search).
 *
 * The handlers of one device and of the list parse their request (path,
 * query, body) into plain inputs and validate all of it first, then call
 * the service port (core/service.h), which takes the device's shard lock
 * and does the work, and format its result.  A change is answered once it
 * is committed (ls_api_respond_committed()), which is also when the events
 * it caused have been written to the event log.
 *
 * Activities (single and bulk) go through the HTTP input's reporting
 * strategy (http.reporting_strategy: the reporter of the device's shard,
 * under that shard's lock); sessions and pings do not.  A PUT
 * whose body is {} or only {"id": ...} is Cumulocity's "ping" of an
 * existing device: an activity at now and nothing else.  Bulk requests
 * take each shard's lock per part of 4096 items, so a large bulk never
 * holds a shard's worker back for long.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "core/device_in.h"
#include "core/service.h"

#define BULK_LOCK_ITEMS 4096
#define BULK_REJECTED_MAX 1000
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000

static enum MHD_Result respond_buf(ls_req *r, unsigned status, ls_buf *b)
{
    enum MHD_Result ok = ls_api_respond(r, status, b);
    ls_buf_free(b);
    return ok;
}

/* Is the body empty or only whitespace? */
static int body_blank(const ls_req *r)
{
    for (size_t i = 0; i < r->body.len; i++)
        if (!strchr(" \t\r\n", r->body.p[i])) return 0;
    return 1;
}

/* Parses the body as one JSON object; on failure answers 400 and returns NULL. */
static json_t *body_object(ls_req *r, enum MHD_Result *ok)
{
    json_error_t err;
    json_t *j =
        ls_api_json_parse(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        *ok = ls_api_error(r, 400, "bad_request", "malformed JSON at line %d column %d: %s",
                           err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        *ok = ls_api_error(r, 400, "bad_request", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Reads an optional "ts": 0 when absent; < 0 with *why set when invalid. */
static int64_t parse_ts(json_t *v, const char **why)
{
    if (!v) return 0;
    if (!json_is_integer(v)) {
        *why = "ts must be an integer: ms since the Unix epoch";
        return -1;
    }
    json_int_t ts = json_integer_value(v);
    if (ts <= 0) {
        *why = "ts must be > 0: ms since the Unix epoch";
        return -1;
    }
    return (int64_t)ts;
}

enum MHD_Result ls_api_device_get(ls_req *r)
{
    ls_buf b;
    ls_buf_init(&b, 1 << 16);
    if (ls_service_device_get(r->d, r->param.s, r->param.len, &b) < 0) {
        ls_buf_free(&b);
        return ls_api_error(r, 404, "not_found", "no such device");
    }
    return respond_buf(r, 200, &b);
}

enum MHD_Result ls_api_device_put(ls_req *r)
{
    const char *id = r->param.s;
    size_t len = r->param.len;
    enum MHD_Result ok;
    json_t *j = body_object(r, &ok);
    if (!j) return ok;

    ls_device_state rec = {0};
    ls_device_config c;
    unsigned given;
    char why[256];
    if (ls_device_in(j, LS_DEVICE_IN_SETTINGS, &rec, &given, why, sizeof(why)) < 0) {
        json_decref(j);
        return ls_api_error(r, 422, "invalid", "%s", why);
    }
    if ((given & LS_DEVICE_IN_ID) && (rec.id_len != len || memcmp(rec.id, id, len) != 0)) {
        json_decref(j);
        return ls_api_error(r, 422, "invalid", "id in the body differs from the id in the path");
    }
    ls_device_in_config(&rec, given, &c); /* points into j until the put */
    int fields = (given & ~(unsigned)LS_DEVICE_IN_ID) != 0;
    /* Without admin (an ingest credential: routes.c), only a ping of a device that exists. */
    int admin = (r->auth.scopes & LS_SCOPE_ADMIN) != 0;
    if (fields && !admin) {
        json_decref(j);
        return ls_api_forbidden(r, LS_SCOPE_ADMIN, "configuring a device needs the admin scope");
    }
    if (ls_api_forwarding(r)) { /* cluster mode: a ping is an activity; settings are not yet */
        json_decref(j);
        return fields ? ls_api_cluster_refuse(r, "a device's settings")
                      : ls_api_forward_one(r, 0, 0);
    }
    ls_actor by;
    ls_device_put_req req = {.id = id,
                             .len = len,
                             .cfg = c,
                             .ping = fields == 0,
                             .ping_only = !admin,
                             .by = ls_api_actor(r, &by)};
    ls_service_result res;
    ls_buf b;
    ls_buf_init(&b, 1 << 16);
    uint64_t gen = ls_service_device_put(r->d, &req, &b, &res);
    json_decref(j); /* c.type lives in j */
    if (res.rc < 0) {
        ls_buf_free(&b);
        if (res.rc == LS_ENOTFOUND && !admin)
            return ls_api_forbidden(r, LS_SCOPE_ADMIN,
                                    "no such device, and creating one needs the admin scope");
        return ls_api_engine_error(r, res.rc, "device");
    }
    return ls_api_respond_committed(r, gen, res.created ? 201 : 200, &b);
}

enum MHD_Result ls_api_device_delete(ls_req *r)
{
    if (ls_api_forwarding(r)) return ls_api_cluster_refuse(r, "deleting a device");
    ls_service_result res;
    ls_actor by;
    uint64_t gen =
        ls_service_device_delete(r->d, r->param.s, r->param.len, ls_api_actor(r, &by), &res);
    if (res.rc < 0) return ls_api_engine_error(r, res.rc, "device");
    return ls_api_respond_committed(r, gen, 204, NULL);
}

enum MHD_Result ls_api_device_activity(ls_req *r)
{
    int64_t ts = 0;
    if (!body_blank(r)) {
        enum MHD_Result ok;
        json_t *j = body_object(r, &ok);
        if (!j) return ok;
        const char *why = NULL;
        ts = parse_ts(json_object_get(j, "ts"), &why);
        json_decref(j);
        if (ts < 0) return ls_api_error(r, 422, "invalid", "%s", why);
    }
    if (ls_api_forwarding(r)) return ls_api_forward_one(r, 0, ts);
    ls_service_result res;
    uint64_t gen = ls_service_device_activity(r->d, r->param.s, r->param.len, ts, &res);
    if (res.rc < 0) return ls_api_engine_error(r, res.rc, "device");
    ls_metrics_activities(r->metrics, r->http_source, 1);
    ls_buf b;
    ls_buf_init(&b, 256);
    ls_buf_printf(&b, "{\"accepted\":1}");
    return ls_api_respond_committed(r, gen, 202, &b); /* gen 0: no transition, at once */
}

/* connect / disconnect: 202 {"sessions": n} once the session change is committed. */
static enum MHD_Result session_reply(ls_req *r, uint64_t gen, const ls_service_result *res)
{
    if (res->rc < 0) return ls_api_engine_error(r, res->rc, "device");
    ls_buf b;
    ls_buf_init(&b, 256);
    ls_buf_printf(&b, "{\"sessions\":%u}", res->sessions);
    return ls_api_respond_committed(r, gen, 202, &b);
}

enum MHD_Result ls_api_device_connect(ls_req *r)
{
    if (ls_api_forwarding(r)) return ls_api_forward_one(r, LS_INGEST_ONLINE, 0);
    ls_service_result res;
    uint64_t gen = ls_service_device_connect(r->d, r->param.s, r->param.len, &res);
    return session_reply(r, gen, &res);
}

enum MHD_Result ls_api_device_disconnect(ls_req *r)
{
    if (ls_api_forwarding(r)) return ls_api_forward_one(r, LS_INGEST_OFFLINE, 0);
    ls_service_result res;
    uint64_t gen = ls_service_device_disconnect(r->d, r->param.s, r->param.len, &res);
    return session_reply(r, gen, &res);
}

/* One bulk item: a string id or {"id": "...", "ts": ms}.  0 or sets *why. */
static int bulk_item(json_t *item, const char **id, size_t *len, int64_t *ts, const char **why)
{
    json_t *jid = item;
    *ts = 0;
    if (json_is_object(item)) {
        jid = json_object_get(item, "id");
        *ts = parse_ts(json_object_get(item, "ts"), why);
        if (*ts < 0) return -1;
    }
    if (!json_is_string(jid)) {
        *why = json_is_object(item) ? "missing \"id\" string"
                                    : "item must be an id string or an object";
        return -1;
    }
    *id = json_string_value(jid);
    *len = json_string_length(jid);
    const char *bad = ls_id_check(*id, *len);
    if (bad) {
        *why = bad;
        return -1;
    }
    return 0;
}

/*
 * Bulk items are validated as they are parsed and applied in batches of
 * BULK_LOCK_ITEMS through the engine's pipelined batch path: each batch
 * is split by shard and each part handed to its shard's reporter (the
 * reporting strategy; ALL is a pass-through to the engine) under that
 * shard's lock only (ls_service_activities()), so bulk requests on several HTTP
 * threads, MQTT and the UDP workers run in parallel whatever the strategy.
 * The JSON values the batch points into are kept alive until it is applied.
 */
typedef struct bulk_reject_rec {
    size_t index;
    const char *why; /* static text */
} bulk_reject_rec;

typedef struct bulk_state {
    ls_req *r;
    uint64_t accepted, nrejected;
    bulk_reject_rec rejected[BULK_REJECTED_MAX];
    size_t n;        /* items pending */
    uint64_t gen;    /* commit the answer waits for, 0 = none */
    ls_api_fwd *fwd; /* cluster mode: the items go to the input stream (forward.c) */
    ls_activity items[BULK_LOCK_ITEMS];
    size_t index[BULK_LOCK_ITEMS];
    json_t *keep[BULK_LOCK_ITEMS];
    int rcs[BULK_LOCK_ITEMS];
} bulk_state;

static void bulk_reject(bulk_state *s, size_t index, const char *why, ls_reject_reason reason)
{
    ls_metrics_rejected(s->r->metrics, s->r->http_source, reason, 1);
    if (s->nrejected < BULK_REJECTED_MAX) s->rejected[s->nrejected] = (bulk_reject_rec){index, why};
    s->nrejected++;
}

/* Cluster mode: the batch goes to the input stream; the answer waits for it. */
static void bulk_forward(bulk_state *s)
{
    ls_ingest_item items[BULK_LOCK_ITEMS];
    for (size_t i = 0; i < s->n; i++)
        items[i] =
            (ls_ingest_item){.id = s->items[i].id, .len = s->items[i].len, .ts = s->items[i].ts};
    ls_api_fwd_items(s->fwd, items, s->n);
    s->accepted += s->n;
    for (size_t i = 0; i < s->n; i++)
        json_decref(s->keep[i]);
    s->n = 0;
}

static void bulk_flush(bulk_state *s)
{
    if (!s->n) return;
    if (s->fwd) {
        bulk_forward(s);
        return;
    }
    uint64_t gen = ls_service_activities(s->r->d, s->items, s->n, s->rcs);
    if (gen > s->gen) s->gen = gen; /* transitions: durable first */
    for (size_t i = 0; i < s->n; i++) {
        if (s->rcs[i] == 0)
            s->accepted++;
        else if (s->rcs[i] == LS_EFULL)
            bulk_reject(s, s->index[i], "state.max_devices reached", LS_REJECT_DEVICE_LIMIT);
        else
            bulk_reject(s, s->index[i], ls_strerror(s->rcs[i]), LS_REJECT_INVALID);
        json_decref(s->keep[i]);
    }
    s->n = 0;
}

/* Queues one item; takes a reference to it while it is pending. */
static void bulk_add(bulk_state *s, size_t index, json_t *item)
{
    const char *id, *why = NULL;
    size_t len;
    int64_t ts;
    if (bulk_item(item, &id, &len, &ts, &why) < 0) {
        bulk_reject(s, index, why, LS_REJECT_INVALID);
        return;
    }
    s->items[s->n] = (ls_activity){.id = id, .len = (uint32_t)len, .ts = ts};
    s->index[s->n] = index;
    s->keep[s->n] = json_incref(item);
    if (++s->n == BULK_LOCK_ITEMS) bulk_flush(s);
}

static int cmp_reject(const void *a, const void *b)
{
    size_t x = ((const bulk_reject_rec *)a)->index, y = ((const bulk_reject_rec *)b)->index;
    return x < y ? -1 : x > y;
}

enum MHD_Result ls_api_bulk_activity(ls_req *r)
{
    bulk_state *s = calloc(1, sizeof(*s));
    if (!s) return ls_api_error(r, 503, "unavailable", "out of memory");
    s->r = r;
    /* Cluster mode: suspended from here; every answer goes through fwd. */
    if (ls_api_forwarding(r) && !(s->fwd = ls_api_fwd_begin(r))) {
        free(s);
        return ls_api_error(r, 503, "unavailable", "out of memory");
    }
    const char *p = r->body.p ? r->body.p : "";
    size_t n = r->body.len, i = 0;
    while (i < n && strchr(" \t\r\n", p[i]))
        i++;

    if (i < n && p[i] == '[') {
        json_error_t err;
        json_t *arr = ls_api_json_parse(p, n, 0, &err);
        if (!arr && s->fwd) { /* suspended already: the answer goes through fwd */
            ls_buf b;
            ls_buf_init(&b, 1024);
            ls_buf_printf(&b, "{\"error\":\"bad_request\",\"detail\":");
            char detail[512];
            snprintf(detail, sizeof(detail), "malformed JSON at line %d column %d: %s", err.line,
                     err.column, err.text);
            ls_buf_json_str(&b, detail, strlen(detail));
            ls_buf_putc(&b, '}');
            enum MHD_Result ok = ls_api_fwd_end(s->fwd, 400, &b);
            free(s);
            return ok;
        }
        if (!arr) {
            free(s);
            return ls_api_error(r, 400, "bad_request", "malformed JSON at line %d column %d: %s",
                                err.line, err.column, err.text);
        }
        size_t idx;
        json_t *item;
        json_array_foreach(arr, idx, item) bulk_add(s, idx, item);
        bulk_flush(s);
        json_decref(arr);
    } else {
        /* NDJSON: one JSON value a line; blank lines are skipped. */
        size_t index = 0;
        while (i < n) {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t end = nl ? (size_t)(nl - p) : n;
            size_t a = i, b = end;
            while (a < b && strchr(" \t\r", p[a]))
                a++;
            while (b > a && strchr(" \t\r", p[b - 1]))
                b--;
            if (b > a) {
                json_error_t err;
                json_t *item = ls_api_json_parse(p + a, b - a, JSON_DECODE_ANY, &err);
                if (!item)
                    bulk_reject(s, index, "malformed JSON line", LS_REJECT_MALFORMED);
                else
                    bulk_add(s, index, item);
                json_decref(item);
                index++;
            }
            i = end + 1;
        }
    }
    bulk_flush(s);
    if (!s->fwd) /* forwarded ones count once stored (forward.c) */
        ls_metrics_activities(r->metrics, r->http_source, s->accepted);

    size_t kept = s->nrejected < BULK_REJECTED_MAX ? (size_t)s->nrejected : BULK_REJECTED_MAX;
    qsort(s->rejected, kept, sizeof(s->rejected[0]), cmp_reject);
    ls_buf b;
    ls_buf_init(&b, (size_t)1 << 20);
    ls_buf_printf(&b, "{\"accepted\":%llu,\"rejectedCount\":%llu,\"rejected\":[",
                  (unsigned long long)s->accepted, (unsigned long long)s->nrejected);
    for (size_t k = 0; k < kept; k++) {
        ls_buf_printf(&b, "%s{\"index\":%zu,\"error\":", k ? "," : "", s->rejected[k].index);
        ls_buf_json_str(&b, s->rejected[k].why, strlen(s->rejected[k].why));
        ls_buf_putc(&b, '}');
    }
    ls_buf_append(&b, "]}", 2);
    uint64_t gen = s->gen;
    ls_api_fwd *fwd = s->fwd;
    free(s);
    if (fwd) return ls_api_fwd_end(fwd, 202, &b);
    if (gen) return ls_api_respond_committed(r, gen, 202, &b);
    return respond_buf(r, 202, &b);
}

int ls_api_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (!s[0] || s[0] == '-' || s[0] == '+' || s[0] == ' ') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

enum MHD_Result ls_api_device_list(ls_req *r)
{
    char abuf[16], lbuf[32], cbuf[32],
        qbuf[LS_ID_MAX * 3 + 1]; /* q percent-encoded: up to 3 bytes a byte */
    int ha = ls_api_arg(r, "active", abuf, sizeof(abuf));
    int hl = ls_api_arg(r, "limit", lbuf, sizeof(lbuf));
    int hc = ls_api_arg(r, "after", cbuf, sizeof(cbuf));
    int hq = ls_api_arg(r, "q", qbuf, sizeof(qbuf));
    if (hq < 0 || (hq && strlen(qbuf) > LS_ID_MAX))
        return ls_api_error(r, 422, "invalid", "q must be at most %d bytes, without NUL",
                            LS_ID_MAX);
    if (ha < 0 || hl < 0 || hc < 0)
        return ls_api_error(r, 422, "invalid", "malformed query parameter");
    const char *active = ha ? abuf : NULL, *limit_s = hl ? lbuf : NULL, *after = hc ? cbuf : NULL;
    int filter = -1;
    uint64_t limit = LIST_LIMIT_DEFAULT, cursor = 0;

    if (active) {
        if (strcmp(active, "true") == 0)
            filter = 1;
        else if (strcmp(active, "false") == 0)
            filter = 0;
        else
            return ls_api_error(r, 422, "invalid", "active must be true or false");
    }
    if (limit_s && ls_api_parse_u64(limit_s, 1, LIST_LIMIT_MAX, &limit) < 0)
        return ls_api_error(r, 422, "invalid", "limit must be an integer between 1 and %d",
                            LIST_LIMIT_MAX);
    if (after && after[0] && ls_api_parse_u64(after, 0, UINT64_MAX / 2, &cursor) < 0)
        return ls_api_error(r, 422, "invalid", "after must be a cursor returned as \"next\"");

    ls_device_query dq = {.active = filter,
                          .limit = limit,
                          .cursor = cursor,
                          .q = hq ? qbuf : NULL,
                          .qlen = hq ? strlen(qbuf) : 0};
    ls_buf b;
    ls_buf_init(&b, (size_t)64 << 20);
    ls_buf_append(&b, "{\"devices\":[", 12);
    uint64_t next = ls_service_device_list(r->d, &dq, &b);
    if (next)
        ls_buf_printf(&b, "],\"next\":\"%llu\"}", (unsigned long long)next);
    else
        ls_buf_append(&b, "],\"next\":null}", 14);
    return respond_buf(r, 200, &b);
}
