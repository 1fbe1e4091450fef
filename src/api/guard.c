/*
 * guard.c - keeps one client from taking the HTTP server from the others.
 *
 * The attack it answers is slowloris: a client opens connections and sends
 * each a part of a request's headers, then nothing, or a byte now and then.
 * libmicrohttpd keeps every such connection (its timeout is an idle one,
 * reset by each byte) and stops accepting at its connection limit; with a
 * soft open-file limit of 1024 and a listen backlog of 1024, about 2,000
 * half-requests from one address made /healthz time out for everyone.
 * Four measures, each cheap:
 *
 *   - The open-file limit is raised at start to what http.max_connections
 *     needs (base/fdlimit.c), up to the hard limit; when the hard limit is
 *     lower, the cap is lowered to fit it and a warning says what to raise.
 *   - A global cap (http.max_connections, MHD_OPTION_CONNECTION_LIMIT) and a
 *     per-address cap (http.max_connections_per_ip,
 *     MHD_OPTION_PER_IP_CONNECTION_LIMIT): a connection over either is
 *     accepted and closed at once, so the listen backlog keeps draining and
 *     other addresses are still served.  libmicrohttpd logs each such close;
 *     the guard counts them and logs one line a second at most.
 *   - libmicrohttpd's other log lines (a client that left with half a
 *     request, ...) are passed on, MHD_LOG_PER_SEC a second at most: many
 *     clients misbehaving at once must not flood the log.
 *   - A deadline for the headers (http.header_timeout): a connection whose
 *     first request's headers (after the TLS handshake, with TLS) are not
 *     all in by then is shut down, however many bytes it dribbled; after a
 *     request completes, a kept-alive connection gets the idle timeout plus
 *     http.header_timeout for its next request's headers.  A request whose
 *     headers are in has no deadline here: its body is bounded by
 *     http.max_body and the idle timeout, and suspended requests and event
 *     streams have their own rules (http.c, stream.c).
 *
 * How the deadline is kept.  Every connection gets a context (ls_conn) from
 * libmicrohttpd's connection notification; while its headers are due it is
 * in one of two lists, new connections and kept-alive ones, each in
 * deadline order because each adds a constant to the time it is linked.
 * The guard's thread ("ls-http-guard") wakes every GUARD_TICK_MS and shuts
 * down (shutdown(2), both ways) the connections at the head of the lists
 * whose deadline has passed; libmicrohttpd's thread then sees the socket end
 * and closes the connection as if the client had left.  The shutdown is
 * done under the guard's mutex, and libmicrohttpd notifies the close
 * (which takes the mutex to unlink the context) before it closes the
 * descriptor, so the descriptor shut down is always still this
 * connection's.  Cost: O(1) per connection and per request (link, unlink),
 * O(expired) per tick; the deadline is kept to within GUARD_TICK_MS.
 *
 * Locks: `mu` guards the lists; it is taken by libmicrohttpd's threads (in
 * their callbacks) and by the guard's thread, never while calling into
 * libmicrohttpd.
 */
#include "api/guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api/tls.h"
#include "base/clock.h"
#include "base/fdlimit.h"
#include "base/log.h"
#include "base/stopper.h"
#include "conf/config.h"
#include "core/prom.h"
#include "core/stats.h"

#define GUARD_TICK_MS 100
/* Descriptors the daemon needs besides HTTP connections: the store, the
 * events file, the inputs' and sinks' sockets, eventfds, the log. */
#define FD_RESERVE 256
#define CAP_LOG_EVERY_MS 1000
#define MHD_LOG_PER_SEC 10

struct ls_guard {
    pthread_mutex_t mu;
    ls_conn fresh, kept; /* sentinels of the deadline lists, under mu */
    int64_t header_ms;
    unsigned max_conns, per_ip;
    struct ls_tls *tls;
    ls_stopper stop;
    pthread_t thread;
    int running;
    _Atomic uint64_t open, header_timeouts, capped; /* any thread (relaxed) */
    uint64_t capped_said;                           /* guard thread: logged up to */
    int64_t said_at;                                /* guard thread, mono ms of the last summary */
    int64_t log_sec;                                /* under mu: the second log_n counts */
    unsigned log_n;                                 /* under mu */
    _Atomic uint64_t log_dropped;                   /* MHD lines not logged */
    uint64_t log_dropped_said;                      /* guard thread: logged up to */
};

static void list_init(ls_conn *s)
{
    s->prev = s->next = s;
}

static void unlink_conn(ls_conn *c)
{
    if (!c->next) return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void link_tail(ls_conn *s, ls_conn *c)
{
    c->prev = s->prev;
    c->next = s;
    s->prev->next = c;
    s->prev = c;
}

/* Shuts down the connections at the head of list s whose deadline passed (under mu). */
static uint64_t expire(ls_conn *s, int64_t now)
{
    uint64_t n = 0;
    while (s->next != s && s->next->deadline <= now) {
        ls_conn *c = s->next;
        unlink_conn(c);
        shutdown(c->fd, SHUT_RDWR);
        n++;
    }
    return n;
}

static void *guard_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ls-http-guard");
    struct ls_guard *g = arg;
    while (!ls_stopper_sleep(&g->stop, GUARD_TICK_MS)) {
        int64_t now = ls_clock_now().mono;
        pthread_mutex_lock(&g->mu);
        uint64_t n = expire(&g->fresh, now) + expire(&g->kept, now);
        pthread_mutex_unlock(&g->mu);
        if (n) {
            atomic_fetch_add_explicit(&g->header_timeouts, n, memory_order_relaxed);
            ls_debug("http",
                     "closed %llu connections whose request headers were not in within "
                     "http.header_timeout (%lld ms)",
                     (unsigned long long)n, (long long)g->header_ms);
        }
        if (now - g->said_at < CAP_LOG_EVERY_MS) continue;
        uint64_t capped = atomic_load_explicit(&g->capped, memory_order_relaxed);
        uint64_t dropped = atomic_load_explicit(&g->log_dropped, memory_order_relaxed);
        if (capped != g->capped_said)
            ls_warn("http",
                    "closed %llu new connections at http.max_connections (%u) or "
                    "http.max_connections_per_ip (%u) since the last such line",
                    (unsigned long long)(capped - g->capped_said), g->max_conns, g->per_ip);
        if (dropped != g->log_dropped_said)
            ls_warn("http", "%llu more libmicrohttpd messages not logged (at most %d a second)",
                    (unsigned long long)(dropped - g->log_dropped_said), MHD_LOG_PER_SEC);
        if (capped != g->capped_said || dropped != g->log_dropped_said) g->said_at = now;
        g->capped_said = capped;
        g->log_dropped_said = dropped;
    }
    return NULL;
}

static void notify_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe)
{
    struct ls_guard *g = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        ls_conn *c = calloc(1, sizeof(*c));
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!c || !fi) { /* no deadline for it: the caps and the idle timeout still hold */
            free(c);
            *socket_context = NULL;
            return;
        }
        c->fd = fi->connect_fd;
        c->guard = g;
        c->deadline = ls_clock_now().mono + g->header_ms;
        pthread_mutex_lock(&g->mu);
        link_tail(&g->fresh, c);
        pthread_mutex_unlock(&g->mu);
        atomic_fetch_add_explicit(&g->open, 1, memory_order_relaxed);
        *socket_context = c;
        return;
    }
    ls_conn *c = *socket_context;
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    unlink_conn(c);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_sub_explicit(&g->open, 1, memory_order_relaxed);
    ls_tls_unpin(c->cert); /* MHD has deinitialised the TLS session by now */
    free(c);
    *socket_context = NULL;
}

ls_conn *ls_guard_conn(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

void ls_guard_headers_in(struct MHD_Connection *conn)
{
    ls_conn *c = ls_guard_conn(conn);
    if (!c) return;
    pthread_mutex_lock(&c->guard->mu);
    unlink_conn(c);
    pthread_mutex_unlock(&c->guard->mu);
}

void ls_guard_request_done(struct MHD_Connection *conn)
{
    ls_conn *c = ls_guard_conn(conn);
    if (!c) return;
    struct ls_guard *g = c->guard;
    pthread_mutex_lock(&g->mu);
    if (!c->next) {
        c->deadline = ls_clock_now().mono + LS_HTTP_IDLE_TIMEOUT_S * 1000 + g->header_ms;
        link_tail(&g->kept, c);
    }
    pthread_mutex_unlock(&g->mu);
}

int ls_guard_mhd_log(struct ls_guard *g, const char *msg)
{
    if (!g) return 0;
    if (strncmp(msg, "Server reached connection limit", 31) == 0) {
        atomic_fetch_add_explicit(&g->capped, 1, memory_order_relaxed);
        return 1;
    }
    int64_t sec = ls_clock_now().mono / 1000;
    pthread_mutex_lock(&g->mu);
    if (sec != g->log_sec) {
        g->log_sec = sec;
        g->log_n = 0;
    }
    int quiet = ++g->log_n > MHD_LOG_PER_SEC;
    pthread_mutex_unlock(&g->mu);
    if (quiet) atomic_fetch_add_explicit(&g->log_dropped, 1, memory_order_relaxed);
    return quiet;
}

void ls_guard_options(struct ls_guard *g, struct MHD_OptionItem *opts, int *n)
{
    opts[(*n)++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_cb, g};
    opts[(*n)++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)g->max_conns, NULL};
    /* 0 would make MHD count for nothing; leave the option out instead. */
    if (g->per_ip)
        opts[(*n)++] =
            (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)g->per_ip, NULL};
}

/* The guard's figures in /api/v1/stats ("httpConnections") and /metrics. */
static void stats_json_cb(void *ud, ls_buf *b, uint64_t committed)
{
    struct ls_guard *g = ud;
    (void)committed;
    ls_buf_printf(
        b,
        "{\"open\":%llu,\"max\":%u,\"maxPerIp\":%u,\"closedAtCaps\":%llu,"
        "\"headerTimeouts\":%llu}",
        (unsigned long long)atomic_load_explicit(&g->open, memory_order_relaxed), g->max_conns,
        g->per_ip, (unsigned long long)atomic_load_explicit(&g->capped, memory_order_relaxed),
        (unsigned long long)atomic_load_explicit(&g->header_timeouts, memory_order_relaxed));
}

static void stats_prom_cb(void *ud, ls_buf *b, uint64_t committed)
{
    struct ls_guard *g = ud;
    (void)committed;
    ls_prom_family(b, "lastseen_http_connections", "gauge", "HTTP connections open now.");
    ls_prom_u64(b, "lastseen_http_connections", NULL,
                atomic_load_explicit(&g->open, memory_order_relaxed));
    ls_prom_family(b, "lastseen_http_connections_closed_total", "counter",
                   "HTTP connections closed by lastseen: at http.max_connections or "
                   "http.max_connections_per_ip (caps), or when their request headers were not "
                   "in within http.header_timeout (header_timeout).");
    const char *caps[] = {"reason", "caps", NULL}, *hdr[] = {"reason", "header_timeout", NULL};
    ls_prom_u64(b, "lastseen_http_connections_closed_total", caps,
                atomic_load_explicit(&g->capped, memory_order_relaxed));
    ls_prom_u64(b, "lastseen_http_connections_closed_total", hdr,
                atomic_load_explicit(&g->header_timeouts, memory_order_relaxed));
}

/* The cap on connections that the open-file limit allows, raising it if it can. */
static unsigned connection_cap(const ls_config *cfg)
{
    uint64_t want = (uint64_t)cfg->http_max_connections + FD_RESERVE, before, after, hard;
    int rc = ls_fdlimit_raise(want, &before, &after, &hard);
    if (after >= want) {
        if (after > before)
            ls_info("http",
                    "open-file limit raised from %llu to %llu for http.max_connections = %lld",
                    (unsigned long long)before, (unsigned long long)after,
                    (long long)cfg->http_max_connections);
        return (unsigned)cfg->http_max_connections;
    }
    unsigned cap = after > 2 * FD_RESERVE ? (unsigned)(after - FD_RESERVE) : (unsigned)(after / 2);
    if (cap < 1) cap = 1;
    ls_warn("http",
            "cannot raise the open-file limit to %llu for http.max_connections = %lld (soft limit "
            "%llu, hard limit %llu%s%s): at most %u HTTP connections at once; raise the hard "
            "limit (LimitNOFILE= in the systemd unit, ulimit -Hn) or lower http.max_connections",
            (unsigned long long)want, (long long)cfg->http_max_connections,
            (unsigned long long)after, (unsigned long long)hard, rc < 0 ? ": " : "",
            rc < 0 ? strerror(-rc) : "", cap);
    return cap;
}

struct ls_tls *ls_guard_tls(const struct ls_guard *g)
{
    return g->tls;
}

int ls_guard_start(struct ls_guard **out, struct ls_daemon *d, const ls_config *cfg,
                   struct ls_tls *tls)
{
    struct ls_guard *g = calloc(1, sizeof(*g));
    *out = NULL;
    if (!g) return -ENOMEM;
    pthread_mutex_init(&g->mu, NULL);
    list_init(&g->fresh);
    list_init(&g->kept);
    ls_stopper_init(&g->stop);
    g->header_ms = cfg->http_header_timeout;
    g->tls = tls;
    g->max_conns = connection_cap(cfg);
    g->per_ip = (unsigned)cfg->http_max_connections_per_ip;
    int rc = -pthread_create(&g->thread, NULL, guard_main, g);
    if (rc < 0) {
        ls_error("http", "cannot start the connection guard: %s", strerror(-rc));
        ls_guard_free(g);
        return rc;
    }
    g->running = 1;
    *out = g;
    ls_stats_port port = {
        .key = "httpConnections", .json = stats_json_cb, .prom = stats_prom_cb, .ud = g};
    return ls_stats_register(d, &port);
}

void ls_guard_stop(struct ls_guard *g)
{
    if (!g || !g->running) return;
    ls_stopper_request(&g->stop);
    pthread_join(g->thread, NULL);
    g->running = 0;
}

void ls_guard_free(struct ls_guard *g)
{
    if (!g) return;
    ls_guard_stop(g);
    ls_stopper_close(&g->stop);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
