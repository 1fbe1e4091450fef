/*
 * http.c - the HTTP server: libmicrohttpd setup, bodies, acknowledgements,
 * errors.  Which handler answers a request is the route table's business
 * (routes.c).
 *
 * Mode: MHD's internal polling thread with poll(2) (or a pool of them with
 * http.threads > 1).  epoll mode is avoided: it was measured collapsing
 * under hundreds of keep-alive connections with this MHD version.
 *
 * Bodies are collected into a per-request buffer capped at http.max_body;
 * a request announcing a larger Content-Length is answered 413 at once
 * (MHD then closes the connection); a chunked one that passes the cap is
 * answered 413 at its end, its excess discarded, not stored (up to 64 MiB
 * past the cap; beyond that the connection is closed without an answer).  The first call of the
 * access handler only sets up the request, which keeps MHD from closing kept-alive connections.
 *
 * Acknowledgement: one policy for every route that changes state (device
 * PUT, DELETE, activity, sessions; device type PUT, DELETE; alarm status
 * PUT; bulk activity): it is answered only once its change is committed
 * (persist.c), and never by blocking an MHD thread for the few ms of a
 * group commit.  The handler gets the commit generation from the service
 * port (core/service.h) and suspends the connection with its reply ready
 * (ls_api_respond_committed); the committer's hook resumes every
 * connection whose generation is now on disk.  So one thread keeps serving
 * while hundreds of requests share one commit, however slow the disk.
 *
 * In cluster mode the routes that feed devices wait for the cluster's
 * input stream instead of a commit (forward.c): such a request is
 * suspended the same way (ls_api_suspend()) and resumed with its answer
 * by whoever settles it (ls_api_resume(), any thread).  The composition
 * root settles them all before HTTP stops; ext_waiting counts them.
 *
 * Suspend/resume is enabled for the event streams (stream.c) too, which
 * must never block this thread either: they sleep suspended between events.
 *
 * Shutdown.  MHD must not stop with a suspended connection, and it drops
 * whatever it has not written when it stops.  The root first commits what
 * waiters wait for (ls_core_commit_waiting()).  ls_http_stop() then sets
 * `stopping` and, under wait_lock, resumes every waiter: with its real
 * answer if its commit is on disk (the committer's hook may not have run
 * yet), else with a 503 (the change may or may not be committed); a request
 * that would suspend after that is answered the same at once, under the
 * same lock, so none can slip in between.  The streams are resumed to end
 * by ls_streams_quiesce().  The resumed replies and the streams' last
 * chunks get up to STOP_DRAIN_MS to go out (replies_due, streams_open);
 * only then is MHD stopped.
 *
 * Credentials (auth.h): the first call checks the Authorization header
 * against what the route table says the route needs (routes.c), before
 * anything else, so that a refused request (401, 403) gets no other
 * answer: its body is discarded as it arrives (up to http.max_body, then
 * the connection is closed), never stored, and it is answered at its end;
 * one that announces a larger body is answered at once.
 *
 * Every answered request is counted in metrics by route template, method
 * and status (completed_cb), and refused ones by reason.
 *
 * Connection limits (the caps, the open-file limit, the deadline for
 * request headers) are guard.c's: it gets MHD's connection notifications,
 * and hears here when a request's headers are in and when it completes.
 * HTTPS (http.tls_cert, http.tls_key) is tls.c's.
 *
 * Paths are routed raw and each parameter is percent-decoded afterwards
 * (MHD's own unescaping is turned off), so a device id may contain an
 * encoded '/' (%2F) - Sparkplug-style ids such as "group/node" do.
 */
#include "api/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/guard.h"
#include "api/routes.h"
#include "api/tls.h"
#include "api/stream.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/net.h"
#include "core/service.h"

#define STOP_DRAIN_MS 1000 /* a stop lets resumed replies and ending streams go out this long */

struct ls_http {
    struct MHD_Daemon *mhd;
    struct ls_daemon *d;
    const ls_config *cfg;
    ls_metrics *metrics;        /* the core's counters (ls_service_metrics()) */
    int http_source;            /* this input in them */
    struct ls_streams *streams; /* GET /api/v1/events/stream (stream.c) */
    ls_auth *auth;              /* credentials (auth.h) */
    pthread_mutex_t wait_lock;  /* guards waiters, stopping; taken before MHD's locks */
    ls_req *waiters;            /* suspended until their commit */
    int stopping;
    _Atomic uint64_t replies_due; /* waiters resumed whose request has not completed */
    struct ls_guard *guard;       /* connection limits (guard.c) */
    struct ls_tls *tls;           /* HTTPS (tls.c), NULL without */
    _Atomic uint64_t ext_waiting; /* suspended by ls_api_suspend(), not resumed yet */
};

/* Queues `body` (NULL: none) of type ctype with status and the headers in
 * hdrs (name, value, ..., NULL; hdrs may be NULL). */
static enum MHD_Result respond_with(ls_req *r, unsigned status, const ls_buf *body,
                                    const char *ctype, const char *const *hdrs)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body ? body->len : 0, body ? body->p : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    if (body) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (; hdrs && hdrs[0]; hdrs += 2)
        MHD_add_response_header(resp, hdrs[0], hdrs[1]);
    if (status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->responded = 1;
    r->status = status;
    return ok;
}

static enum MHD_Result respond(ls_req *r, unsigned status, const ls_buf *json,
                               const char *const *hdrs)
{
    return respond_with(r, status, json, "application/json", hdrs);
}

enum MHD_Result ls_api_respond(ls_req *r, unsigned status, const ls_buf *json)
{
    return respond(r, status, json, NULL);
}

/* Sets a waiter's reply to 503: it stopped waiting without knowing. */
static void reply_unknown(ls_req *r)
{
    ls_buf_free(&r->reply);
    ls_buf_init(&r->reply, 256);
    r->reply_empty = 0;
    ls_buf_printf(&r->reply, "{\"error\":\"unavailable\",\"detail\":\"lastseen is stopping; "
                             "the change may or may not have been committed\"}");
    r->reply_status = 503;
}

/* Sets a waiter's reply to 503 storage_unavailable: its commit did not
 * come within store.commit_wait because store writes fail (rc). */
static void reply_storage(ls_req *r, int rc)
{
    ls_buf_free(&r->reply);
    ls_buf_init(&r->reply, 256);
    r->reply_empty = 0;
    ls_buf_printf(&r->reply,
                  "{\"error\":\"storage_unavailable\",\"detail\":\"store writes fail (%s); the "
                  "change is held in memory and committed when the store accepts writes again, "
                  "unless lastseen stops first\"}",
                  ls_strerror(rc));
    r->reply_status = 503;
}

enum MHD_Result ls_api_respond_committed(ls_req *r, uint64_t gen, unsigned status, ls_buf *json)
{
    struct ls_http *h = r->http;
    pthread_mutex_lock(&h->wait_lock);
    if (ls_service_committed_gen(r->d) >= gen) {
        pthread_mutex_unlock(&h->wait_lock);
        enum MHD_Result ok = respond(r, status, json, NULL);
        if (json) ls_buf_free(json);
        return ok;
    }
    if (h->stopping) { /* no commit will resume it: say so, as ls_http_stop() does */
        pthread_mutex_unlock(&h->wait_lock);
        if (json) ls_buf_free(json);
        reply_unknown(r);
        enum MHD_Result ok = respond(r, r->reply_status, &r->reply, NULL);
        ls_buf_free(&r->reply);
        return ok;
    }
    r->wait_gen = gen;
    r->wait_since = ls_clock_mono_ns();
    r->waiting = 1;
    r->reply_ready = 0;
    r->reply_status = status;
    r->reply_empty = !json;
    if (json) {
        r->reply = *json;
        *json = (ls_buf){0};
    }
    r->wnext = h->waiters;
    h->waiters = r;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&h->wait_lock);
    return MHD_YES;
}

enum MHD_Result ls_api_suspend(ls_req *r)
{
    struct ls_http *h = r->http;
    pthread_mutex_lock(&h->wait_lock);
    r->waiting = 1;
    r->reply_ready = 0;
    atomic_fetch_add_explicit(&h->ext_waiting, 1, memory_order_relaxed);
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&h->wait_lock);
    return MHD_YES;
}

void ls_api_resume(ls_req *r, unsigned status, ls_buf *json)
{
    struct ls_http *h = r->http;
    pthread_mutex_lock(&h->wait_lock);
    r->reply_status = status;
    r->reply_empty = !json;
    ls_buf_free(&r->reply);
    if (json) {
        r->reply = *json;
        *json = (ls_buf){0};
    }
    r->reply_ready = 1;
    r->resumed = 1;
    atomic_fetch_add_explicit(&h->replies_due, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&h->ext_waiting, 1, memory_order_release);
    MHD_resume_connection(r->conn);
    pthread_mutex_unlock(&h->wait_lock);
}

/* The committer's hook: resumes every request whose commit is on disk,
 * and, while store writes fail (the committer calls it after each failed
 * attempt), those that have waited store.commit_wait, with 503. */
static void commit_cb(void *ud, uint64_t gen)
{
    struct ls_http *h = ud;
    int store_rc = ls_service_store_error(h->d, NULL, NULL);
    int64_t now = ls_clock_mono_ns(), wait = h->cfg->store_commit_wait * 1000000;
    pthread_mutex_lock(&h->wait_lock);
    ls_req **pp = &h->waiters;
    while (!h->stopping && *pp) {
        ls_req *r = *pp;
        if (r->wait_gen > gen && (store_rc == 0 || now - r->wait_since < wait)) {
            pp = &r->wnext;
            continue;
        }
        if (r->wait_gen > gen) reply_storage(r, store_rc);
        *pp = r->wnext;
        r->reply_ready = 1;
        r->resumed = 1;
        atomic_fetch_add_explicit(&h->replies_due, 1, memory_order_relaxed);
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&h->wait_lock);
}

enum MHD_Result ls_api_respond_type(ls_req *r, unsigned status, const ls_buf *body,
                                    const char *ctype)
{
    return respond_with(r, status, body, ctype, NULL);
}

static enum MHD_Result error_v(ls_req *r, unsigned status, const char *code,
                               const char *const *hdrs, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
static enum MHD_Result error_v(ls_req *r, unsigned status, const char *code,
                               const char *const *hdrs, const char *fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    ls_buf b;
    ls_buf_init(&b, 4096);
    ls_buf_printf(&b, "{\"error\":\"%s\",\"detail\":", code);
    /* details may quote outside input: escape, and keep only valid text */
    ls_buf_json_str(&b, detail, strlen(detail));
    ls_buf_putc(&b, '}');
    enum MHD_Result ok = respond(r, status, &b, hdrs);
    ls_buf_free(&b);
    return ok;
}

enum MHD_Result ls_api_error(ls_req *r, unsigned status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ok = error_v(r, status, code, NULL, fmt, ap);
    va_end(ap);
    return ok;
}

static enum MHD_Result error_hdrs(ls_req *r, unsigned status, const char *code,
                                  const char *const *hdrs, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result error_hdrs(ls_req *r, unsigned status, const char *code,
                                  const char *const *hdrs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ok = error_v(r, status, code, hdrs, fmt, ap);
    va_end(ap);
    return ok;
}

enum MHD_Result ls_api_method_not_allowed(ls_req *r, const char *allow)
{
    const char *hdrs[] = {MHD_HTTP_HEADER_ALLOW, allow, NULL};
    return error_hdrs(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", hdrs,
                      "method %s not allowed here; allowed: %s", r->method, allow);
}

/* 401 with its challenges (RFC 7235, RFC 6750), or 403 for a credential
 * that lacks the scope; the reason is in r->auth. */
static enum MHD_Result respond_denied(ls_req *r)
{
    const ls_auth_result *a = &r->auth;
    char bearer[160], scopes[32];
    if (a->status == 403) {
        ls_scopes_format(a->need, scopes, sizeof(scopes));
        for (char *p = strchr(scopes, ','); p; p = strchr(p, ','))
            *p = ' ';
        snprintf(bearer, sizeof(bearer),
                 "Bearer realm=\"lastseen\", error=\"insufficient_scope\", scope=\"%s\"", scopes);
        const char *hdrs[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE, bearer, NULL};
        return error_hdrs(r, 403, "forbidden", hdrs, "%s", a->detail);
    }
    snprintf(bearer, sizeof(bearer), "Bearer realm=\"lastseen\"%s",
             a->bearer ? ", error=\"invalid_token\"" : "");
    const char *hdrs[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE, bearer,
                          MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                          "Basic realm=\"lastseen\", charset=\"UTF-8\"", NULL};
    return error_hdrs(r, 401, "unauthorized", hdrs, "%s", a->detail);
}

enum MHD_Result ls_api_forbidden(ls_req *r, unsigned need, const char *why)
{
    r->auth.status = 403;
    r->auth.need = need;
    snprintf(r->auth.detail, sizeof(r->auth.detail), "token \"%s\": %s", r->auth.who, why);
    return respond_denied(r);
}

const ls_actor *ls_api_actor(const ls_req *r, ls_actor *buf)
{
    const char *who = r->auth.who[0] ? r->auth.who : NULL;
    int cfg = r->cfg->audit_events;
    if (cfg == LS_AUDIT_OFF || (cfg == LS_AUDIT_AUTO && !who)) return NULL;
    buf->who = who;
    return buf;
}

enum MHD_Result ls_api_engine_error(ls_req *r, int rc, const char *what)
{
    switch (rc) {
    case LS_EBADID:
        return ls_api_error(r, 422, "invalid", "invalid device id");
    case LS_ENOTFOUND:
        return ls_api_error(r, 404, "not_found", "no such device");
    case LS_EFULL:
        return ls_api_error(r, 507, "device_limit", "state.max_devices (%lld) reached; %s refused",
                            (long long)r->cfg->state_max_devices, what);
    case LS_EINVAL:
        return ls_api_error(r, 422, "invalid", "invalid %s", what);
    default:
        return ls_api_error(r, 500, "internal", "%s: %s", what, ls_strerror(rc));
    }
}

int ls_api_pct_decode(const char *in, size_t n, char *out, size_t *outlen)
{
    static const signed char hexval[256] = {
        ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
        ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
        ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12,
        ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
    };
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '%') {
            out[o++] = in[i];
            continue;
        }
        if (i + 2 >= n) return -1; /* "%" or "%x" at the end */
        int hi = hexval[(unsigned char)in[i + 1]], lo = hexval[(unsigned char)in[i + 2]];
        if (!hi || !lo) return -1;
        out[o++] = (char)((hi - 1) << 4 | (lo - 1));
        i += 2;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

int ls_api_arg(ls_req *r, const char *key, char *buf, size_t len)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
    if (!v) return 0;
    size_t n = strlen(v), out;
    if (n >= len || ls_api_pct_decode(v, n, buf, &out) < 0 || out != strlen(buf)) return -1;
    return 1;
}

/* MHD's unescaping is replaced by a no-op: routing needs the raw path. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void log_cb(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void log_cb(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    struct ls_http *h = cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (ls_guard_mhd_log(h->guard, msg)) return; /* counted, logged once a second */
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    ls_warn("http", "%s", msg);
}

#define DISCARD_MAX ((uint64_t)64 << 20)

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct ls_http *h = cls;
    ls_req *r = *con_cls;
    (void)version;

    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r) return MHD_NO;
        r->conn = conn;
        r->d = h->d;
        r->cfg = h->cfg;
        r->metrics = h->metrics;
        r->http_source = h->http_source;
        r->streams = h->streams;
        r->http = h;
        r->method = method;
        r->route = ls_routes_metric(url);
        r->method_idx = ls_method_index(method);
        ls_guard_headers_in(conn);
        ls_buf_init(&r->body, (size_t)h->cfg->http_max_body + 1); /* + its NUL */
        *con_cls = r;
        /* The credential first: a refused request's body is discarded,
         * not stored, and it learns nothing else (not even a 404). */
        ls_auth_check(
            h->auth,
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
            ls_routes_access(url, method), ls_clock_mono_ns() / 1000000, &r->auth);
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && r->auth.status) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > (unsigned long long)h->cfg->http_max_body)
                return respond_denied(r); /* at once: MHD closes the connection */
        } else if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || *end || n > (unsigned long long)h->cfg->http_max_body) {
                r->too_big = 1;
                return ls_api_error(r, 413, "payload_too_large",
                                    "body of %s bytes is over http.max_body (%lld)", cl,
                                    (long long)h->cfg->http_max_body);
            }
        }
        return MHD_YES;
    }
    if (r->waiting) { /* resumed after its commit (or at shutdown) */
        if (!r->reply_ready) return MHD_YES;
        r->waiting = 0;
        enum MHD_Result ok = respond(r, r->reply_status, r->reply_empty ? NULL : &r->reply, NULL);
        ls_buf_free(&r->reply);
        return ok;
    }
    if (*upload_size) {
        /* MHD accepts a response only before or after the body, so a body
         * that passes the cap is discarded until its end, then answered
         * 413; past DISCARD_MAX more the connection is simply closed. */
        if (!r->responded && !r->too_big && !r->auth.status &&
            ls_buf_append(&r->body, upload, *upload_size) < 0) {
            r->too_big = 1;
            ls_buf_free(&r->body);
        }
        if (r->too_big || r->auth.status) {
            r->discarded += *upload_size;
            if (r->discarded > (r->auth.status ? 0 : DISCARD_MAX) + (uint64_t)h->cfg->http_max_body)
                return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->responded) return MHD_YES;
    if (r->auth.status) return respond_denied(r);
    if (r->too_big)
        return ls_api_error(r, 413, "payload_too_large", "body is over http.max_body (%lld bytes)",
                            (long long)h->cfg->http_max_body);
    return ls_routes_dispatch(r, url);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ls_http *h = cls;
    ls_req *r = *con_cls;
    (void)toe;
    ls_guard_request_done(conn);
    if (!r) return;
    if (r->resumed) atomic_fetch_sub_explicit(&h->replies_due, 1, memory_order_release);
    if (r->responded) {
        ls_metrics *m = h->metrics;
        ls_metrics_add(&m->http[r->route][r->method_idx][ls_code_index(r->status)], 1);
        int why = r->status == 400   ? LS_REJECT_MALFORMED
                  : r->status == 422 ? LS_REJECT_INVALID
                  : r->status == 413 ? LS_REJECT_TOO_LARGE
                  : r->status == 507 ? LS_REJECT_DEVICE_LIMIT
                                     : -1;
        if (why >= 0) ls_metrics_rejected(m, h->http_source, (ls_reject_reason)why, 1);
    }
    ls_buf_free(&r->body);
    ls_buf_free(&r->reply);
    free(r);
    *con_cls = NULL;
}

int ls_http_check(const ls_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (ls_net_parse_addr(cfg->http_listen, &ss, &sl) < 0) {
        snprintf(err, errlen, "http.listen = \"%s\": expected host:port with a numeric address",
                 cfg->http_listen);
        return -EINVAL;
    }
    return ls_auth_precheck(cfg, ls_net_is_loopback(&ss), err, errlen);
}

int ls_http_start(struct ls_http **out, struct ls_daemon *d, const ls_config *cfg)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int family = ls_net_parse_addr(cfg->http_listen, &ss, &sl);
    if (family < 0) {
        ls_error("http", "http.listen = \"%s\": expected host:port with a numeric address",
                 cfg->http_listen);
        return -EINVAL;
    }
    struct ls_http *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    h->d = d;
    h->cfg = cfg;
    h->metrics = ls_service_metrics(d, &h->http_source);
    int rc = ls_auth_open(&h->auth, cfg, ls_net_is_loopback(&ss));
    if (rc < 0) {
        free(h);
        return rc;
    }
    pthread_mutex_init(&h->wait_lock, NULL);
    rc = ls_streams_start(&h->streams, d, cfg, h->metrics, h->auth);
    if (rc < 0) {
        ls_error("http", "cannot start the event streams: %s", ls_strerror(rc));
        pthread_mutex_destroy(&h->wait_lock);
        ls_auth_close(h->auth);
        free(h);
        return rc;
    }
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (family == AF_INET6) flags |= MHD_USE_IPv6;
    if (cfg->http_tls_cert[0]) {
        flags |= MHD_USE_TLS;
        rc = ls_tls_open(&h->tls, cfg->http_tls_cert, cfg->http_tls_key);
    }
    if (rc < 0 || (rc = ls_guard_start(&h->guard, d, cfg, h->tls)) < 0) {
        ls_tls_free(h->tls);
        ls_streams_quiesce(h->streams);
        ls_streams_free(h->streams);
        pthread_mutex_destroy(&h->wait_lock);
        free(h);
        return rc;
    }
    /* The fixed ones, the guard's and TLS's, the pool, the end. */
    _Static_assert(7 + LS_GUARD_OPTIONS + LS_TLS_OPTIONS + 2 <= 16, "opts[] is too small");
    struct MHD_OptionItem opts[16] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)log_cb, h},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed_cb, h},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)no_unescape, h},
        {MHD_OPTION_CONNECTION_TIMEOUT, LS_HTTP_IDLE_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
    };
    int nopts = 7;
    ls_guard_options(h->guard, opts, &nopts);
    if (h->tls) ls_tls_options(h->tls, opts, &nopts);
    /* A pool option of 0 or 1 makes MHD warn: pass it only for a real pool. */
    if (cfg->http_threads > 1)
        opts[nopts++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->http_threads, NULL};
    opts[nopts] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, h, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (!h->mhd) {
        ls_error("http", "cannot listen on %s: %s", cfg->http_listen, strerror(errno));
        ls_guard_free(h->guard);
        ls_tls_free(h->tls);
        pthread_mutex_destroy(&h->wait_lock);
        ls_streams_quiesce(h->streams);
        ls_streams_free(h->streams);
        ls_auth_close(h->auth);
        free(h);
        return -EADDRINUSE;
    }
    ls_auth_log(h->auth);
    ls_service_on_commit(d, commit_cb, h);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    char host[256];
    ls_net_host_part(cfg->http_listen, host, sizeof(host));
    ls_info("http", "listening on %s:%u%s", host, info ? info->port : 0, h->tls ? " (https)" : "");
    *out = h;
    return 0;
}

/*
 * Waits, at most STOP_DRAIN_MS, until the requests resumed for the stop and
 * the streams told to end have been answered: MHD_stop_daemon() closes
 * every connection at once, whatever it has not written yet.
 */
static void drain(struct ls_http *h)
{
    const struct timespec step = {0, 2 * 1000 * 1000};
    for (int ms = 0; ms < STOP_DRAIN_MS; ms += 2) {
        if (!atomic_load_explicit(&h->replies_due, memory_order_acquire) &&
            !atomic_load_explicit(&h->ext_waiting, memory_order_acquire) &&
            !ls_metrics_get(&h->metrics->streams_open))
            return;
        nanosleep(&step, NULL);
    }
    if (atomic_load_explicit(&h->ext_waiting, memory_order_acquire))
        ls_error("http", "stopping with %llu requests still waiting for the cluster's stream",
                 (unsigned long long)atomic_load_explicit(&h->ext_waiting, memory_order_acquire));
    ls_warn("http", "stopping with %llu replies and %llu event streams not sent in %d ms",
            (unsigned long long)atomic_load_explicit(&h->replies_due, memory_order_acquire),
            (unsigned long long)ls_metrics_get(&h->metrics->streams_open), STOP_DRAIN_MS);
}

void ls_http_stop(struct ls_http *h)
{
    if (!h || !h->mhd) return;
    pthread_mutex_lock(&h->wait_lock);
    h->stopping = 1;
    /* The root committed what they wait for just before, but the commit
     * hook that resumes them may not have run yet: those whose commit is
     * on disk get their real answer, the others 503. */
    uint64_t committed = ls_service_committed_gen(h->d);
    for (ls_req *r = h->waiters; r; r = r->wnext) {
        if (r->wait_gen > committed) reply_unknown(r);
        r->reply_ready = 1;
        r->resumed = 1;
        atomic_fetch_add_explicit(&h->replies_due, 1, memory_order_relaxed);
        MHD_resume_connection(r->conn);
    }
    h->waiters = NULL;
    pthread_mutex_unlock(&h->wait_lock);
    ls_streams_quiesce(h->streams); /* MHD must not stop with suspended connections */
    drain(h);
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
    ls_guard_stop(h->guard);
    ls_streams_free(h->streams);
    h->streams = NULL;
}

void ls_http_free(struct ls_http *h)
{
    if (!h) return;
    ls_http_stop(h);
    ls_guard_free(h->guard);
    ls_tls_free(h->tls);
    pthread_mutex_destroy(&h->wait_lock);
    ls_auth_close(h->auth);
    free(h);
}

int ls_http_reload_tls(struct ls_http *h)
{
    return h && h->tls ? ls_tls_reload(h->tls) : 1;
}
