/*
 * stream.c - GET /api/v1/events/stream: committed events as Server-Sent
 * Events, live, resumable with Last-Event-ID.
 *
 * Threads.  libmicrohttpd serves every connection from its polling thread
 * (or one of a pool): nothing here may block it.  A stream is a
 * callback response of unknown size (chunked); MHD calls stream_cb() when
 * the socket can take more.  The callback reads the next events through the
 * outbox port after the stream's cursor (an LMDB read transaction,
 * microseconds, no lock shared with the engine, copied into a per-stream
 * read buffer), matches them with the filter by the type and device each
 * record carries, formats them into a small per-stream buffer and hands
 * MHD what fits.  When there is nothing to
 * send it suspends the connection (MHD_suspend_connection, allowed from a
 * content reader) and returns 0; MHD then leaves it alone.  One pump
 * thread waits for commits (ls_outbox_wait() on an outbox watch) and
 * resumes the suspended streams that have something new, or whose
 * keep-alive is due.  Streams are not sinks: no durable cursor.
 * MHD_USE_THREAD_PER_CONNECTION would let a callback simply block, but MHD
 * does not combine it with a thread pool (http.threads > 1), and a thread
 * per client does not scale to many dashboards; suspend/resume works in
 * both of lastseen's modes.
 *
 * Back-pressure.  Events are read from the outbox only as fast as the
 * client takes them, so a slow client holds no more than its buffers
 * (FILL_BYTES, and LS_OUTBOX_BUF_MIN to read into) and a bounded socket
 * send buffer, and nothing waits for it.
 * Its backlog - committed events not yet sent to it - is checked by the
 * pump on every commit and tick: once it has stayed over
 * http.stream_max_backlog (beyond the backlog the stream started with,
 * which shrinks as it catches up, so a long replay is allowed) for
 * BACKLOG_GRACE_MS, the stream is dropped with a logged reason.  The grace
 * lets a client that reads well absorb a burst (a commit can hold
 * hundreds of thousands of events after an outage) without being dropped
 * for a backlog it is about to clear; a client that stopped reading stays
 * over and goes.  A suspended stream
 * is resumed so that its callback ends it; one stuck in a full socket is
 * shut down (shutdown(2) on its socket, under the hub lock, which the
 * response's free callback also takes before MHD closes that socket).
 *
 * Locks: the pump never calls into MHD while holding the hub lock (it
 * collects the connections to resume and resumes them after unlocking),
 * because MHD may hold its own locks while it frees a response, and the
 * free callback takes the hub lock.  A suspended connection cannot go away
 * before it is resumed, so resuming it after unlocking is safe.
 *
 * Suspended connections neither time out nor notice a client leaving, so
 * each is resumed at least every http.stream_keepalive to write a
 * keep-alive comment, which also detects a closed client.  All are
 * resumed before MHD is stopped (MHD requires it).
 *
 * Credentials (auth.h): a stream outlives the check of its request, so it
 * keeps the credential it was let in with and looks again whenever the
 * tokens change (the pump makes the daemon look at the token file every
 * second, and resumes the streams when they changed): a stream whose token
 * was revoked, or that came without one when one is now required, ends
 * before it sends anything more.
 *
 * Limits: http.max_streams streams at once (503 beyond).
 */
#include "api/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api/api.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/outbox.h"

#define MOD "stream"
#define FILL_BYTES 32768    /* formatted frames buffered per stream */
#define READ_CHUNK 128      /* events per outbox read (the buffer may hold fewer) */
#define SKIP_MARK 10000     /* events passed over before an id-only frame */
#define MAX_ROUNDS 8        /* fills per callback before giving up the thread */
#define SNDBUF_BYTES 262144 /* kernel send buffer of a stream socket */
#define PUMP_TICK_MS 250
#define BACKLOG_GRACE_MS 5000 /* over the backlog bound this long: dropped */

typedef struct ls_stream {
    struct ls_streams *hub;
    struct MHD_Connection *conn;
    int fd;
    int slot;
    char peer[64];
    ls_event_filter f;
    ls_outbox_rec rec[READ_CHUNK]; /* the last read (MHD thread only) */
    char *rbuf;                    /* LS_OUTBOX_BUF_MIN bytes for it */
    ls_buf out;                    /* frames not yet handed to MHD (MHD thread only) */
    size_t off;
    _Atomic uint64_t cursor;    /* last seq put into `out` (or passed over): written by MHD's
                                 * thread, read by the pump (relaxed) */
    uint64_t skipped;           /* events passed over since the last frame */
    uint64_t id_sent;           /* last seq an id: line was written for */
    _Atomic int64_t last_write; /* mono ms bytes were last handed to MHD (as cursor) */
    /* Under hub->mu: */
    int suspended;
    const char *drop;   /* why the stream is being dropped */
    uint64_t best_lag;  /* smallest backlog seen: the allowance's base */
    int64_t over_since; /* mono ms the backlog went over its bound, 0 = not over */
    /* MHD thread only: the credential it came with, checked again when the
     * tokens' generation moves from auth_gen. */
    ls_auth_result cred;
    uint64_t auth_gen;
} ls_stream;

struct ls_streams {
    struct ls_daemon *d;
    const ls_config *cfg;
    ls_metrics *metrics;  /* streams_open, _dropped, _refused */
    struct ls_auth *auth; /* NULL: no credentials to keep checking */
    int wfd;              /* the pump's outbox watch */
    pthread_mutex_t mu;
    int stopping;
    int open;
    int max;
    ls_stream **slots;
    struct MHD_Connection **resume; /* pump thread: to resume after unlocking */
    pthread_t pump;
    int pump_running;
};

static int64_t mono_ms(void)
{
    return ls_clock_mono_ns() / 1000000;
}

/* ---- the content reader (MHD's thread) -------------------------------- */

/* Formats one event into `out` (or passes over it); 1 to stop filling. */
static int fill_one(ls_stream *s, const ls_outbox_rec *r)
{
    atomic_store_explicit(&s->cursor, r->seq, memory_order_relaxed);
    if (!ls_event_filter_match(&s->f, r)) {
        if (++s->skipped >= SKIP_MARK) { /* move the client's Last-Event-ID on */
            ls_buf_printf(&s->out, "id: %llu\n\n", (unsigned long long)r->seq);
            s->skipped = 0;
            s->id_sent = r->seq;
            return 1;
        }
        return 0;
    }
    ls_buf_printf(&s->out, "id: %llu\nevent: %s\ndata: ", (unsigned long long)r->seq,
                  r->type < LS_EV__COUNT ? ls_event_name(r->type) : "message");
    ls_buf_append(&s->out, r->line, r->line_len);
    ls_buf_append(&s->out, "\n\n", 2);
    s->skipped = 0;
    s->id_sent = r->seq;
    return s->out.len >= FILL_BYTES;
}

/* Reads events after the cursor into `out`, up to `committed`. */
static void fill(ls_stream *s, uint64_t committed)
{
    int stop = 0;
    while (!stop && s->out.len == 0 && s->cursor < committed) {
        uint64_t before = s->cursor;
        int64_t n = ls_outbox_read(s->hub->d, before, committed, s->rec, READ_CHUNK, s->rbuf,
                                   LS_OUTBOX_BUF_MIN);
        if (n < 0) {
            ls_error(MOD, "%s: cannot read events after seq %llu", s->peer,
                     (unsigned long long)before);
            return;
        }
        if (n == 0) atomic_store_explicit(&s->cursor, committed, memory_order_relaxed);
        for (int64_t i = 0; i < n && !stop; i++)
            stop = fill_one(s, &s->rec[i]);
    }
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    ls_stream *s = cls;
    struct ls_streams *h = s->hub;
    int64_t now = mono_ms();
    (void)pos;

    uint64_t gen = ls_auth_poll(h->auth, now);
    if (gen != s->auth_gen) {
        s->auth_gen = gen;
        if (!ls_auth_holds(h->auth, &s->cred, LS_SCOPE_READ)) {
            ls_info(MOD, "stream from %s ended: its credential%s%s%s is no longer valid", s->peer,
                    s->cred.who[0] ? " (token \"" : "", s->cred.who, s->cred.who[0] ? "\")" : "");
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    for (int round = 0;; round++) {
        if (s->off < s->out.len) {
            size_t n = s->out.len - s->off;
            if (n > max) n = max;
            memcpy(buf, s->out.p + s->off, n);
            s->off += n;
            if (s->off == s->out.len) {
                ls_buf_reset(&s->out);
                s->off = 0;
            }
            atomic_store_explicit(&s->last_write, now, memory_order_relaxed);
            return (ssize_t)n;
        }
        pthread_mutex_lock(&h->mu);
        const char *drop = s->drop;
        int stopping = h->stopping;
        pthread_mutex_unlock(&h->mu);
        if (drop) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (stopping) return MHD_CONTENT_READER_END_OF_STREAM;

        uint64_t committed = ls_outbox_committed(h->d);
        if (s->cursor < committed && round < MAX_ROUNDS) {
            fill(s, committed);
            continue;
        }
        if (s->cursor > s->id_sent && round >= MAX_ROUNDS) { /* busy and filtered: mark progress */
            ls_buf_printf(&s->out, "id: %llu\n\n", (unsigned long long)s->cursor);
            s->id_sent = s->cursor;
            s->skipped = 0;
            continue;
        }
        int64_t last = atomic_load_explicit(&s->last_write, memory_order_relaxed);
        if (now - last >= h->cfg->http_stream_keepalive) {
            ls_buf_append(&s->out, ": keep-alive\n\n", 14);
            continue;
        }
        /* Nothing to send: sleep until the pump resumes us.  The check and
         * the suspension are one step under the lock the pump takes. */
        pthread_mutex_lock(&h->mu);
        if (!h->stopping && !s->drop && ls_outbox_committed(h->d) <= s->cursor) {
            s->suspended = 1;
            MHD_suspend_connection(s->conn);
            pthread_mutex_unlock(&h->mu);
            return 0;
        }
        pthread_mutex_unlock(&h->mu);
        if (round > 2 * MAX_ROUNDS) /* events keep coming, none for us: yield the thread */
            ls_buf_append(&s->out, ": keep-alive\n\n", 14);
    }
}

static void stream_free_cb(void *cls)
{
    ls_stream *s = cls;
    struct ls_streams *h = s->hub;
    pthread_mutex_lock(&h->mu);
    h->slots[s->slot] = NULL;
    h->open--;
    pthread_mutex_unlock(&h->mu);
    atomic_fetch_sub_explicit(&h->metrics->streams_open, 1, memory_order_relaxed);
    ls_debug(MOD, "%s: closed at seq %llu", s->peer, (unsigned long long)s->cursor);
    ls_buf_free(&s->out);
    free(s->rbuf);
    free(s);
}

/* ---- the pump --------------------------------------------------------- */

/* Under h->mu.  Returns the connection to resume after unlocking, or NULL. */
static struct MHD_Connection *drop_locked(struct ls_streams *h, ls_stream *s, uint64_t lag)
{
    s->drop = "backlog";
    atomic_fetch_add_explicit(&h->metrics->streams_dropped, 1, memory_order_relaxed);
    ls_warn(MOD,
            "stream from %s dropped: %llu events behind, over http.stream_max_backlog (%lld) "
            "beyond its best (%llu) for %d s; the client can resume with Last-Event-ID %llu",
            s->peer, (unsigned long long)lag, (long long)h->cfg->http_stream_max_backlog,
            (unsigned long long)s->best_lag, BACKLOG_GRACE_MS / 1000,
            (unsigned long long)s->cursor);
    if (s->suspended) {
        s->suspended = 0;
        return s->conn;
    }
    if (s->fd >= 0) shutdown(s->fd, SHUT_RDWR); /* MHD's next write fails: it closes */
    return NULL;
}

static void *pump_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ls-stream");
    struct ls_streams *h = arg;
    struct ls_daemon *d = h->d;
    uint64_t seen = ls_outbox_committed(d);
    uint64_t auth_seen = ls_auth_poll(h->auth, mono_ms());

    for (;;) {
        uint64_t c = ls_outbox_wait(d, h->wfd, seen, PUMP_TICK_MS);
        int64_t now = mono_ms();
        uint64_t auth_gen = ls_auth_poll(h->auth, now);
        int n = 0;
        pthread_mutex_lock(&h->mu);
        if (h->stopping) {
            pthread_mutex_unlock(&h->mu);
            break;
        }
        for (int i = 0; i < h->max; i++) {
            ls_stream *s = h->slots[i];
            if (!s || s->drop) continue;
            uint64_t cur = atomic_load_explicit(&s->cursor, memory_order_relaxed);
            uint64_t lag = c > cur ? c - cur : 0;
            if (lag < s->best_lag) s->best_lag = lag;
            if (lag <= s->best_lag + (uint64_t)h->cfg->http_stream_max_backlog) {
                s->over_since = 0;
            } else if (!s->over_since) {
                s->over_since = now;
            } else if (now - s->over_since >= BACKLOG_GRACE_MS) {
                struct MHD_Connection *conn = drop_locked(h, s, lag);
                if (conn) h->resume[n++] = conn;
                continue;
            }
            int64_t quiet = now - atomic_load_explicit(&s->last_write, memory_order_relaxed);
            if (s->suspended &&
                (cur < c || quiet >= h->cfg->http_stream_keepalive || auth_gen != auth_seen)) {
                s->suspended = 0;
                h->resume[n++] = s->conn;
            }
        }
        pthread_mutex_unlock(&h->mu);
        for (int i = 0; i < n; i++)
            MHD_resume_connection(h->resume[i]);
        seen = c;
        auth_seen = auth_gen;
    }
    return NULL;
}

/* ---- the route -------------------------------------------------------- */

static void peer_name(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%u", host, port);
}

enum MHD_Result ls_api_events_stream(ls_req *r)
{
    struct ls_streams *h = r->streams;
    ls_event_filter f;
    uint64_t after;
    int has_after;
    enum MHD_Result ok;

    if (ls_api_event_query(r, &f, &after, &has_after, &ok) < 0) return ok;
    const char *leid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (leid) {
        if (ls_api_parse_u64(leid, 0, (uint64_t)INT64_MAX, &after) < 0)
            return ls_api_error(r, 422, "invalid", "Last-Event-ID must be an event seq");
        has_after = 1;
    }
    uint64_t committed = ls_outbox_committed(r->d);
    if (!has_after) after = committed; /* live only */

    ls_stream *s = calloc(1, sizeof(*s));
    if (s && !(s->rbuf = malloc(LS_OUTBOX_BUF_MIN))) {
        free(s);
        s = NULL;
    }
    if (!s) return ls_api_error(r, 503, "unavailable", "out of memory");
    s->hub = h;
    s->conn = r->conn;
    s->cred = r->auth; /* auth_gen 0: checked again at the first callback */
    s->f = f;
    atomic_init(&s->cursor, after);
    s->id_sent = after;
    s->best_lag = committed > after ? committed - after : 0;
    atomic_init(&s->last_write, mono_ms());
    s->fd = -1;
    ls_buf_init(&s->out, (size_t)FILL_BYTES + 2 * (LS_ID_MAX * 6 + 1024));
    peer_name(r->conn, s->peer, sizeof(s->peer));
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fi) s->fd = fi->connect_fd;

    pthread_mutex_lock(&h->mu);
    int slot = -1;
    if (!h->stopping && h->open < h->max)
        for (int i = 0; i < h->max && slot < 0; i++)
            if (!h->slots[i]) slot = i;
    if (slot >= 0) {
        h->slots[slot] = s;
        h->open++;
        s->slot = slot;
    }
    pthread_mutex_unlock(&h->mu);
    if (slot < 0) {
        ls_buf_free(&s->out);
        free(s->rbuf);
        free(s);
        atomic_fetch_add_explicit(&r->metrics->streams_refused, 1, memory_order_relaxed);
        return ls_api_error(r, 503, "too_many_streams",
                            "http.max_streams (%lld) event streams are open",
                            (long long)r->cfg->http_max_streams);
    }
    atomic_fetch_add_explicit(&r->metrics->streams_open, 1, memory_order_relaxed);

    /* A bounded kernel buffer keeps a stalled client's cost small and makes
     * it visible as backlog soon. */
    int sndbuf = SNDBUF_BYTES;
    if (s->fd >= 0) setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    ls_buf_printf(&s->out, "retry: 1000\n: lastseen events after %llu\n\n",
                  (unsigned long long)after);

    /* From here the response owns s: stream_free_cb releases it, even if
     * queueing fails. */
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_cb, s, stream_free_cb);
    if (!resp) {
        stream_free_cb(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    ok = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    r->responded = 1;
    r->status = 200;
    ls_info(MOD, "stream from %s opened after seq %llu (%llu behind)", s->peer,
            (unsigned long long)after,
            (unsigned long long)(committed > after ? committed - after : 0));
    return ok;
}

/* ---- start and stop --------------------------------------------------- */

int ls_streams_start(struct ls_streams **out, struct ls_daemon *d, const ls_config *cfg,
                     ls_metrics *m, struct ls_auth *auth)
{
    struct ls_streams *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    h->d = d;
    h->cfg = cfg;
    h->metrics = m;
    h->auth = auth;
    h->max = (int)cfg->http_max_streams;
    h->slots = calloc((size_t)h->max, sizeof(*h->slots));
    h->resume = calloc((size_t)h->max, sizeof(*h->resume));
    h->wfd = ls_outbox_watch(d);
    if (!h->slots || !h->resume || h->wfd < 0) {
        int rc = h->wfd < 0 ? h->wfd : -ENOMEM;
        ls_outbox_unwatch(d, h->wfd);
        free(h->slots);
        free(h->resume);
        free(h);
        return rc;
    }
    pthread_mutex_init(&h->mu, NULL);
    int rc = pthread_create(&h->pump, NULL, pump_main, h);
    if (rc) {
        pthread_mutex_destroy(&h->mu);
        ls_outbox_unwatch(d, h->wfd);
        free(h->slots);
        free(h->resume);
        free(h);
        return -rc;
    }
    h->pump_running = 1;
    *out = h;
    return 0;
}

void ls_streams_quiesce(struct ls_streams *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_mutex_unlock(&h->mu);
    if (h->pump_running) pthread_join(h->pump, NULL); /* wakes within PUMP_TICK_MS */
    h->pump_running = 0;
    /* With the pump gone and `stopping` set, no stream suspends again. */
    int n = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->max; i++) {
        ls_stream *s = h->slots[i];
        if (s && s->suspended) {
            s->suspended = 0;
            h->resume[n++] = s->conn;
        }
    }
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < n; i++)
        MHD_resume_connection(h->resume[i]);
}

void ls_streams_free(struct ls_streams *h)
{
    if (!h) return;
    ls_outbox_unwatch(h->d, h->wfd);
    pthread_mutex_destroy(&h->mu);
    free(h->slots);
    free(h->resume);
    free(h);
}
