/*
 * api.h - what the route handlers share: the request, responses, errors.
 */
#ifndef LS_API_H
#define LS_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#include "app/buf.h"
#include "app/daemon.h"

typedef struct ls_req {
    struct MHD_Connection *conn;
    ls_daemon *d;
    const char *method;
    ls_buf body;
    int too_big;   /* body passed http.max_body: answered 413 */
    uint64_t discarded; /* body bytes dropped after too_big */
    int responded; /* a response is queued */
    unsigned status;
} ls_req;

/* Queues `status` with a JSON body (NULL = empty).  Returns MHD_YES/NO. */
enum MHD_Result ls_api_respond(ls_req *r, unsigned status, const ls_buf *json);

/* Queues {"error": code, "detail": printf(...)}. */
enum MHD_Result ls_api_error(ls_req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 405 with an Allow header. */
enum MHD_Result ls_api_method_not_allowed(ls_req *r, const char *allow);

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

/* Route handlers.  `id` is the percent-decoded device id (len bytes). */
enum MHD_Result ls_api_device(ls_req *r, const char *id, size_t len);
enum MHD_Result ls_api_device_action(ls_req *r, const char *id, size_t len, const char *action);
enum MHD_Result ls_api_device_list(ls_req *r);
enum MHD_Result ls_api_bulk_activity(ls_req *r);
enum MHD_Result ls_api_stats(ls_req *r);

/* The dashboard (assets.c: "/" and "/ui/NAME"; ui.c: what its page asks for). */
enum MHD_Result ls_api_asset(ls_req *r, const char *url);
enum MHD_Result ls_api_stats_history(ls_req *r);
enum MHD_Result ls_api_events_recent(ls_req *r);

#endif
