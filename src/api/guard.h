/*
 * guard.h - connection limits of the HTTP server: the open-file limit, a
 * global and a per-address cap, a deadline for request headers.  See
 * guard.c.
 */
#ifndef LS_GUARD_H
#define LS_GUARD_H

#include <microhttpd.h>
#include <stdint.h>

struct ls_config;
struct ls_daemon;
struct ls_guard;
struct ls_tls;
struct ls_tls_cert;

/*
 * What the guard knows of one connection: MHD's socket context, from
 * MHD_CONNECTION_NOTIFY_STARTED to MHD_CONNECTION_NOTIFY_CLOSED.
 */
typedef struct ls_conn {
    struct ls_conn *prev, *next; /* in a deadline list (under the guard's mu), else NULL */
    int64_t deadline;            /* mono ms by which the next request's headers must be in */
    int fd;
    struct ls_guard *guard;
    struct ls_tls_cert *cert; /* the TLS certificate its handshake took (tls.c), or NULL */
} ls_conn;

/*
 * Raises the open-file limit for cfg's http.max_connections (or lowers the
 * cap to what the limit allows, with a warning), registers the figures
 * ("http" in /api/v1/stats, lastseen_http_connections* in /metrics) and
 * starts the thread that enforces http.header_timeout.  `tls` (NULL without
 * TLS) gets each closed connection's certificate back.  0 or < 0 (logged).
 */
int ls_guard_start(struct ls_guard **out, struct ls_daemon *d, const struct ls_config *cfg,
                   struct ls_tls *tls);

/* The server's TLS state (tls.c), NULL without TLS. */
struct ls_tls *ls_guard_tls(const struct ls_guard *g);

/* Stops the deadline thread; the figures stay readable until ls_guard_free(). */
void ls_guard_stop(struct ls_guard *g);
void ls_guard_free(struct ls_guard *g);

/*
 * Appends the guard's MHD options (connection notification, the caps) to
 * opts[*n...], at most LS_GUARD_OPTIONS of them.
 */
#define LS_GUARD_OPTIONS 3
void ls_guard_options(struct ls_guard *g, struct MHD_OptionItem *opts, int *n);

/* The connection's context, or NULL (any MHD thread). */
ls_conn *ls_guard_conn(struct MHD_Connection *c);

/* A request's headers are in (the access handler's first call): the
 * connection has no deadline until the request completes. */
void ls_guard_headers_in(struct MHD_Connection *c);

/* A request completed; if the connection stays open, its next request's
 * headers are due within the idle timeout plus http.header_timeout. */
void ls_guard_request_done(struct MHD_Connection *c);

/* MHD's log line `msg`: returns 1 if the guard counted it (a connection
 * closed at one of the caps, logged at most once a second), else 0. */
int ls_guard_mhd_log(struct ls_guard *g, const char *msg);

/* MHD's idle timeout (s): a connection silent this long is closed. */
#define LS_HTTP_IDLE_TIMEOUT_S 60

#endif
