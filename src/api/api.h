/*
 * api.h - what the route handlers share: the request, responses, errors.
 *
 * Handlers only parse and format: the route table (routes.c) picks the
 * handler and reads the path parameter into r->param; the handler parses
 * the query or body into plain C inputs, calls the service port
 * (core/service.h) and formats the answer.  A handler that changes state
 * answers with ls_api_respond_committed() and the generation the service
 * returned: the reply goes out once the change is committed, and the
 * server thread is never blocked meanwhile.
 */
#ifndef LS_API_H
#define LS_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#include "api/auth.h"
#include "base/buf.h"
#include "conf/config.h"
#include "core/metrics.h"
#include "core/outbox.h"
#include "core/stats.h"

struct ls_asset;
struct ls_daemon; /* the core, opaque: reached through its ports (service.h, stats.h, outbox.h) */
struct ls_streams;

/* The parameter of the route's pattern ({id}, {type}, {alarm}, {file*}),
 * read by the router (routes.c). */
typedef struct ls_req_param {
    const char *raw; /* as it is in the path */
    size_t raw_len;
    const char *s; /* {id}, {type}: percent-decoded into buf, NUL-terminated */
    size_t len;
    uint64_t num;                 /* {alarm}: the alarm id */
    const struct ls_asset *asset; /* {file*}: the dashboard's file */
    char buf[LS_ID_MAX * 3 + 1];
} ls_req_param;

typedef struct ls_req {
    struct MHD_Connection *conn;
    struct ls_daemon *d;
    const ls_config *cfg;       /* the server's (read-only) */
    ls_metrics *metrics;        /* the core's counters (ls_service_metrics()) */
    int http_source;            /* the HTTP input in them */
    struct ls_streams *streams; /* the event streams (stream.c) */
    const char *method;
    ls_buf body;
    int too_big;        /* body passed http.max_body: answered 413 */
    uint64_t discarded; /* body bytes dropped after too_big */
    int responded;      /* a response is queued */
    unsigned status;
    /* A reply held until the commit of generation wait_gen (suspended). */
    struct ls_http *http;
    uint64_t wait_gen;
    int64_t wait_since; /* mono ns: store.commit_wait counts from here */
    int waiting, reply_ready, reply_empty;
    int resumed; /* resumed with its reply: counted in the server's replies_due */
    unsigned reply_status;
    ls_buf reply;
    struct ls_req *wnext;
    ls_route route; /* template of the path, for metrics */
    int method_idx; /* ls_method_index(method), for metrics */
    ls_req_param param;
    ls_auth_result auth; /* its credential (auth.h): who, scopes; status: refused */
} ls_req;

/* Queues `status` with a JSON body (NULL = empty).  Returns MHD_YES/NO. */
enum MHD_Result ls_api_respond(ls_req *r, unsigned status, const ls_buf *json);

/*
 * Answers `status` with `json` once the commit of generation `gen` (from
 * the service port, core/service.h; 0 = nothing to wait for) is on disk:
 * at once if it already is, else the connection is suspended and resumed
 * by the commit, so one thread can hold any number of requests waiting for
 * one group commit.  Once the server is stopping, a change not yet
 * committed is answered 503 instead (its outcome is unknown).  Takes over
 * `json` (frees it); NULL = no body.  Every mutating route answers this way.
 */
enum MHD_Result ls_api_respond_committed(ls_req *r, uint64_t gen, unsigned status, ls_buf *json);
/*
 * For a reply that waits on something else than a commit (cluster mode:
 * the input stream's acknowledgement, forward.c): ls_api_suspend()
 * suspends r and returns MHD_YES for the handler to return; whoever
 * settles the request calls ls_api_resume() exactly once, from any
 * thread, with its answer (json taken over; NULL = no body), and always
 * before HTTP stops.
 */
enum MHD_Result ls_api_suspend(ls_req *r);
void ls_api_resume(ls_req *r, unsigned status, ls_buf *json);

/* The same with another Content-Type (body required). */
enum MHD_Result ls_api_respond_type(ls_req *r, unsigned status, const ls_buf *body,
                                    const char *ctype);

/* Queues {"error": code, "detail": printf(...)}. */
enum MHD_Result ls_api_error(ls_req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 405 with an Allow header. */
enum MHD_Result ls_api_method_not_allowed(ls_req *r, const char *allow);

/* 403 for a credential that lacks `need` (LS_SCOPE_* bits) for what the request asks. */
enum MHD_Result ls_api_forbidden(ls_req *r, unsigned need, const char *why);

/*
 * Who makes this request's admin change, for its AUDIT event
 * (core/service.h): *buf filled and returned, or NULL when audit.events
 * wants no event for it (auto: the request presented no credential).
 */
struct ls_actor;
const struct ls_actor *ls_api_actor(const ls_req *r, struct ls_actor *buf);

/* Maps an engine error to its HTTP error response. */
enum MHD_Result ls_api_engine_error(ls_req *r, int rc, const char *what);

/*
 * Strict percent-decoding of n bytes into out (room for n + 1): "%" must be
 * followed by two hex digits.  Sets *outlen (a %00 stays in, as a NUL).
 * Returns 0, or -1 on a malformed escape.
 */
int ls_api_pct_decode(const char *in, size_t n, char *out, size_t *outlen);

/* A query argument, percent-decoded into buf: 1 present, 0 absent, -1 malformed
 * (bad escape, NUL, or longer than buf). */
int ls_api_arg(ls_req *r, const char *key, char *buf, size_t len);

/* json_loadb() for request bodies: NULs allowed in strings (ids are checked
 * later), and integers too big for int64 read as reals, so that they fail
 * the value's own integer check (422) instead of the whole body (400). */
json_t *ls_api_json_parse(const char *p, size_t n, size_t flags, json_error_t *err);

/* Parses a decimal in [min, max]; 0 or -1 (no sign, no blanks, no overflow). */
int ls_api_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * Which events a reader wants (GET /api/v1/events, the stream, the
 * dashboard's recent events): a set of types and optionally one device,
 * compared with the fields of the outbox records.
 */
typedef struct ls_event_filter {
    int64_t types;  /* bit (1 << ls_event_type) per type wanted */
    size_t dev_len; /* 0 = every device */
    char dev[LS_ID_BUF];
} ls_event_filter;

/*
 * Reads the query parameters `after`, `type` and `device` into *after
 * (0 if absent; *has_after says whether it was given) and *f.  On a bad
 * one it answers 422 and returns -1 with *ok set to the MHD result.
 */
int ls_api_event_query(ls_req *r, ls_event_filter *f, uint64_t *after, int *has_after,
                       enum MHD_Result *ok);

/* Does the event pass the filter?  One whose type or device the record
 * does not know passes: an event is never hidden for its shape. */
int ls_event_filter_match(const ls_event_filter *f, const ls_outbox_rec *r);

/* Appends the availability part of /api/v1/stats from a snapshot,
 * starting with a comma (availability.c). */
void ls_api_stats_availability(ls_buf *b, const ls_stats_snapshot *s);

/*
 * Route handlers (routes.c's table says which answers what; the path
 * parameter, if any, is in r->param and valid).
 */
enum MHD_Result ls_api_device_get(ls_req *r);    /* GET /api/v1/devices/{id} */
enum MHD_Result ls_api_device_put(ls_req *r);    /* PUT /api/v1/devices/{id} */
enum MHD_Result ls_api_device_delete(ls_req *r); /* DELETE /api/v1/devices/{id} */
enum MHD_Result ls_api_device_activity(ls_req *r);
enum MHD_Result ls_api_device_connect(ls_req *r);
enum MHD_Result ls_api_device_disconnect(ls_req *r);
enum MHD_Result ls_api_device_list(ls_req *r);
enum MHD_Result ls_api_bulk_activity(ls_req *r);
enum MHD_Result ls_api_stats(ls_req *r);
enum MHD_Result ls_api_events(ls_req *r);
enum MHD_Result ls_api_events_stream(ls_req *r);
enum MHD_Result ls_api_metrics(ls_req *r);
enum MHD_Result ls_api_type_list(ls_req *r);   /* GET /api/v1/device-types */
enum MHD_Result ls_api_type_get(ls_req *r);    /* GET /api/v1/device-types/{type} */
enum MHD_Result ls_api_type_put(ls_req *r);    /* PUT /api/v1/device-types/{type} */
enum MHD_Result ls_api_type_delete(ls_req *r); /* DELETE /api/v1/device-types/{type} */
enum MHD_Result ls_api_alarm_list(ls_req *r);  /* GET /api/v1/alarms */
enum MHD_Result ls_api_alarm_get(ls_req *r);   /* GET /api/v1/alarms/{alarm} */
enum MHD_Result ls_api_alarm_put(ls_req *r);   /* PUT /api/v1/alarms/{alarm} */

/*
 * Cluster mode (forward.c): the routes that feed devices forward their
 * items to the cluster's input stream and answer once it stored them.
 * ls_api_forwarding(): is this node in cluster mode?  ls_api_forward_one():
 * forwards one item of the path's device and answers 202 {"accepted":1}
 * (or 503).  For more items: ls_api_fwd_begin() suspends the request
 * (NULL: out of memory, nothing suspended), ls_api_fwd_items() forwards
 * (any number of times), ls_api_fwd_end() gives the answer for when every
 * item is stored (reply taken over) and returns what the handler returns.
 * ls_api_cluster_refuse(): 501 for a route cluster mode has no answer for yet.
 */
struct ls_ingest_item;
typedef struct ls_api_fwd ls_api_fwd;
int ls_api_forwarding(ls_req *r);
enum MHD_Result ls_api_forward_one(ls_req *r, unsigned kind, int64_t ts);
ls_api_fwd *ls_api_fwd_begin(ls_req *r);
void ls_api_fwd_items(ls_api_fwd *f, const struct ls_ingest_item *items, size_t n);
enum MHD_Result ls_api_fwd_end(ls_api_fwd *f, unsigned status, ls_buf *reply);
enum MHD_Result ls_api_cluster_refuse(ls_req *r, const char *what);

/* The dashboard (assets.c: "/" and "/ui/{file*}"; ui.c: what its page asks for). */
enum MHD_Result ls_api_asset(ls_req *r);
/* The embedded file `name` ("app.js"), or NULL. */
const struct ls_asset *ls_api_asset_find(const char *name);
enum MHD_Result ls_api_stats_history(ls_req *r);
enum MHD_Result ls_api_events_recent(ls_req *r);

#endif
