/*
 * udp.c - UDP heartbeat input: the cheapest way for a device to say "alive".
 *
 * A datagram carries one or more lines "<device-id>[ <ts-ms>]", separated
 * by '\n' (a '\r' before it is ignored).  Each good line is an activity of
 * that device at ts (wall ms) or at receive time; a bad line is counted by
 * reason and skipped, and the rest of the datagram still counts.  There is
 * no reply: UDP senders do not wait, so nothing here waits for a commit
 * either (transitions are committed with the next group commit, like any).
 *
 * One thread owns the socket.  It sleeps in poll(2), then drains the socket
 * with recvmmsg(2), UDP_VLEN datagrams a call, and hands each good line to
 * the shards through its producer of the ingest port (core/ingest.h, the
 * only part of the core this input sees besides stats.h): the line is
 * copied into the open batch of the device's shard, a full batch is
 * queued to that shard, and every open batch is queued once the socket is
 * drained.  This thread takes no lock; the shards' workers apply the
 * batches with the engine's prefetching batch path, in parallel.  When
 * every batch is in use the thread waits for one (counted in
 * /api/v1/stats as shards.producerWaits) while the socket buffer absorbs
 * the backlog; nothing is dropped by lastseen itself.  Activities and
 * refusals (state.max_devices) are counted when a worker has applied them
 * (the producer's done callback).  UDP has no source to hold: a lost
 * datagram is indistinguishable from a silent device.
 *
 * Loss.  UDP drops datagrams when the socket's receive buffer overflows;
 * udp.rcvbuf sets it (SO_RCVBUFFORCE when running as root, so it is not
 * capped by net.core.rmem_max).  Datagrams larger than UDP_DGRAM_MAX are
 * truncated by the kernel: the complete lines are kept and the datagram is
 * counted as truncated.
 *
 * Signed lines.  With udp.auth = hmac every line must be "<device-id>
 * <ts-ms> <source>:<mac>" (udp_auth.c): lines without a signature, signed by
 * a source without keys, with a MAC that none of its keys made, or with a
 * timestamp outside [now - udp.auth_window, now + state.max_clock_skew] are
 * counted by reason and dropped.  The upper bound is the engine's clamp:
 * a signed timestamp is never replaced by the time it arrived, so a
 * replayed line carries its original time and cannot move lastActivityTime
 * past it.  The keys (udp.keys_file) are this thread's: SIGHUP's reload
 * builds a new table and leaves it in `pending`, which the thread swaps in
 * before its next datagram; the table it replaces is freed by the thread.
 *
 * Memory: UDP_VLEN x UDP_DGRAM_MAX bytes of buffers (4 MiB).
 */
#include "in/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/net.h"
#include "conf/config.h"
#include "core/ingest.h"
#include "core/stats.h"
#include "engine/engine.h"
#include "in/udp_auth.h"

#define UDP_VLEN 64
#define UDP_DGRAM_MAX 65536

/* ls_udp_stats, as relaxed atomic counters. */
typedef struct udp_counters {
    _Atomic uint64_t datagrams;
    _Atomic uint64_t activities;
    _Atomic uint64_t rejected[LS_UDP__REJECTS];
} udp_counters;

struct ls_udp {
    int fd, stop_fd;
    pthread_t thread;
    int running;
    udp_counters stats;          /* written by the thread and the shard workers, read by stats */
    ls_ingest_counters counters; /* this input in the daemon's /metrics */
    char *bufs;
    struct mmsghdr msgs[UDP_VLEN];
    struct iovec iov[UDP_VLEN];
    ls_ingest_producer *prod;
    /* udp.auth = hmac: the keys (this thread's), a reloaded table waiting to
     * be taken, and the timestamp window. */
    ls_udp_keys *keys;
    _Atomic(ls_udp_keys *) pending;
    char *keys_path;
    int64_t back_ms, ahead_ms;
};

static const char *const reject_names[LS_UDP__REJECTS] = {
    "bad_id",   "bad_ts",         "bad_line", "truncated",    "refused",
    "unsigned", "unknown_source", "forged",   "out_of_window"};

const char *ls_udp_reject_name(ls_udp_reject r)
{
    return (unsigned)r < LS_UDP__REJECTS ? reject_names[r] : "unknown";
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* A rejection, in this input's counters and in /metrics' reasons. */
static void reject(struct ls_udp *u, ls_udp_reject why, uint64_t n)
{
    static const ls_reject_reason as_metric[LS_UDP__REJECTS] = {
        [LS_UDP_BAD_ID] = LS_REJECT_INVALID,
        [LS_UDP_BAD_TS] = LS_REJECT_INVALID,
        [LS_UDP_BAD_LINE] = LS_REJECT_MALFORMED,
        [LS_UDP_TRUNCATED] = LS_REJECT_TOO_LARGE,
        [LS_UDP_REFUSED] = LS_REJECT_DEVICE_LIMIT,
        [LS_UDP_UNSIGNED] = LS_REJECT_UNAUTHENTICATED,
        [LS_UDP_UNKNOWN_SOURCE] = LS_REJECT_UNAUTHENTICATED,
        [LS_UDP_FORGED] = LS_REJECT_UNAUTHENTICATED,
        [LS_UDP_OUT_OF_WINDOW] = LS_REJECT_UNAUTHENTICATED,
    };
    if (n == 0) return;
    count(&u->stats.rejected[why], n);
    ls_ingest_rejected(&u->counters, as_metric[why], n);
}

void ls_udp_get_stats(const struct ls_udp *u, ls_udp_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!u) return;
    out->datagrams = atomic_load_explicit(&u->stats.datagrams, memory_order_relaxed);
    out->activities = atomic_load_explicit(&u->stats.activities, memory_order_relaxed);
    for (int i = 0; i < LS_UDP__REJECTS; i++)
        out->rejected[i] = atomic_load_explicit(&u->stats.rejected[i], memory_order_relaxed);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

int ls_udp_parse_line(const char *p, size_t n, const char **id, size_t *len, int64_t *ts,
                      ls_udp_reject *why)
{
    const char *end = p + n;
    if (end > p && end[-1] == '\r') end--;
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    if (p == end) return 1;
    /* The id ends at the first blank (memchr: vectorised). */
    const char *q = memchr(p, ' ', (size_t)(end - p)), *tab;
    if (!q) q = end;
    if ((tab = memchr(p, '\t', (size_t)(q - p)))) q = tab;
    *id = p;
    *len = (size_t)(q - p);
    *ts = 0;
    if (ls_id_check(p, *len)) {
        *why = LS_UDP_BAD_ID;
        return -1;
    }
    while (q < end && is_space(*q))
        q++;
    if (q == end) return 0;
    int64_t v = 0;
    for (int nd = 1; q < end && !is_space(*q); q++, nd++) {
        int d = *q - '0';
        /* 18 digits always fit in an int64_t: check for overflow past them only. */
        if (d < 0 || d > 9 || (nd > 18 && v > (INT64_MAX - d) / 10)) {
            *why = LS_UDP_BAD_TS;
            return -1;
        }
        v = v * 10 + d;
    }
    if (q != end) {
        *why = LS_UDP_BAD_LINE;
        return -1;
    }
    if (v <= 0) {
        *why = LS_UDP_BAD_TS;
        return -1;
    }
    *ts = v;
    return 0;
}

int ls_udp_parse_signed(ls_udp_keys *keys, const char *p, size_t n, int64_t now, int64_t back_ms,
                        int64_t ahead_ms, const char **id, size_t *len, int64_t *ts,
                        ls_udp_reject *why)
{
    const char *end = p + n;
    if (end > p && end[-1] == '\r') end--;
    while (end > p && is_space(end[-1]))
        end--;
    /* The last field starts after the last blank (memrchr: vectorised). */
    const char *sp = memrchr(p, ' ', (size_t)(end - p)), *tab = memrchr(p, '\t', (size_t)(end - p));
    const char *sig = sp > tab ? sp : tab;
    sig = sig ? sig + 1 : p;
    const char *head = sig;
    while (head > p && is_space(head[-1]))
        head--;
    if (sig == end) return 1; /* blank */
    int rc = ls_udp_parse_line(p, (size_t)(head - p), id, len, ts, why);
    if (rc < 0) return rc;
    if (rc == 1 || *ts == 0) { /* one or two fields */
        *why = LS_UDP_UNSIGNED;
        return -1;
    }
    const char *t = *id + *len;
    while (t < head && is_space(*t))
        t++;
    switch (ls_udp_verify(keys, *id, *len, t, (size_t)(head - t), sig, (size_t)(end - sig))) {
    case 0:
        break;
    case 1:
        *why = LS_UDP_UNKNOWN_SOURCE;
        return -1;
    default:
        *why = LS_UDP_FORGED;
        return -1;
    }
    if (*ts < now - back_ms || *ts > now + ahead_ms) {
        *why = LS_UDP_OUT_OF_WINDOW;
        return -1;
    }
    return 0;
}

/* A worker applied a batch of this input's lines (any thread). */
static void applied_cb(void *ud, const ls_ingest_result *r)
{
    struct ls_udp *u = ud;
    count(&u->stats.activities, r->applied);
    ls_ingest_accepted(&u->counters, r->applied);
    reject(u, LS_UDP_REFUSED, r->full + r->bad_ids + r->invalid);
}

/* Hands every complete line of one datagram to its shard (copied). */
static void datagram(struct ls_udp *u, const char *p, size_t n, int truncated, int64_t now)
{
    const char *end = p + n;
    if (truncated) {
        reject(u, LS_UDP_TRUNCATED, 1);
        const char *nl = memrchr(p, '\n', n);
        end = nl ? nl : p; /* the cut-off last line is not a line */
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *id;
        size_t len;
        int64_t ts;
        ls_udp_reject why;
        int rc = u->keys ? ls_udp_parse_signed(u->keys, p, (size_t)(le - p), now, u->back_ms,
                                               u->ahead_ms, &id, &len, &ts, &why)
                         : ls_udp_parse_line(p, (size_t)(le - p), &id, &len, &ts, &why);
        if (rc < 0) {
            reject(u, why, 1);
        } else if (rc == 0) {
            ls_ingest_producer_add(u->prod, id, len, ts, 0);
        }
        p = le + 1;
    }
}

/* The receiving thread takes a table that SIGHUP's reload left. */
static void take_pending(struct ls_udp *u)
{
    ls_udp_keys *k = atomic_exchange_explicit(&u->pending, NULL, memory_order_acquire);
    if (!k) return;
    ls_udp_keys_free(u->keys);
    u->keys = k;
}

static void *udp_main(void *arg)
{
    pthread_setname_np(pthread_self(), "ls-udp");
    struct ls_udp *u = arg;
    struct pollfd pf[2] = {{.fd = u->fd, .events = POLLIN}, {.fd = u->stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            ls_error("udp", "poll: %s", strerror(errno));
            break;
        }
        if (pf[1].revents) break;
        for (;;) { /* drain what is queued, UDP_VLEN datagrams at a time */
            for (int i = 0; i < UDP_VLEN; i++) {
                u->iov[i] = (struct iovec){u->bufs + (size_t)i * UDP_DGRAM_MAX, UDP_DGRAM_MAX};
                u->msgs[i].msg_hdr = (struct msghdr){.msg_iov = &u->iov[i], .msg_iovlen = 1};
            }
            int got = recvmmsg(u->fd, u->msgs, UDP_VLEN, MSG_DONTWAIT, NULL);
            if (got < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    ls_warn("udp", "recvmmsg: %s", strerror(errno));
                ls_ingest_producer_flush(u->prod); /* drained: nothing lingers */
                break;
            }
            count(&u->stats.datagrams, (uint64_t)got);
            if (u->keys) take_pending(u);
            int64_t now = u->keys ? ls_clock_now().wall : 0;
            for (int i = 0; i < got; i++)
                datagram(u, u->bufs + (size_t)i * UDP_DGRAM_MAX, u->msgs[i].msg_len,
                         (u->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, now);
            if (got < UDP_VLEN) {
                ls_ingest_producer_flush(u->prod);
                break;
            }
        }
    }
    return NULL;
}

static void set_rcvbuf(int fd, int64_t bytes)
{
    int v = bytes > INT32_MAX / 2 ? INT32_MAX / 2 : (int)bytes;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) == 0) return;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) < 0)
        ls_warn("udp", "SO_RCVBUF %d: %s", v, strerror(errno));
    int got = 0;
    socklen_t gl = sizeof(got);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0 && got / 2 < v)
        ls_warn("udp",
                "receive buffer is %d bytes, not the %d of udp.rcvbuf (raise net.core.rmem_max)",
                got / 2, v);
}

/* The UDP input's figures in /api/v1/stats (core/stats.h). */
static void stats_json_cb(void *ud, ls_buf *b, uint64_t committed)
{
    (void)committed;
    ls_udp_stats us;
    ls_udp_get_stats(ud, &us);
    ls_buf_printf(b, "{\"datagrams\":%llu,\"activities\":%llu,\"rejected\":{",
                  (unsigned long long)us.datagrams, (unsigned long long)us.activities);
    for (int i = 0; i < LS_UDP__REJECTS; i++)
        ls_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", ls_udp_reject_name((ls_udp_reject)i),
                      (unsigned long long)us.rejected[i]);
    ls_buf_append(b, "}}", 2);
}

/* Loads the key file at path; logs what it loaded, or why not.  0 or < 0. */
static int keys_load(const char *path, ls_udp_keys **out, const char *what)
{
    char err[256];
    int rc = ls_udp_keys_load(path, out, err, sizeof(err));
    if (rc < 0) {
        ls_error("udp", "udp.keys_file %s: %s", path, err);
        return rc;
    }
    size_t sources, keys = ls_udp_keys_count(*out, &sources);
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 0007))
        ls_warn("udp", "udp.keys_file %s can be read by any user (chmod o-rwx)", path);
    ls_info("udp",
            "%s %zu keys of %zu sources from %s: heartbeats must be signed (udp.auth = hmac)", what,
            keys, sources, path);
    return 0;
}

int ls_udp_reload_keys(struct ls_udp *u)
{
    if (!u || !u->keys_path) return 1;
    ls_udp_keys *k;
    int rc = keys_load(u->keys_path, &k, "reloaded");
    if (rc < 0) {
        ls_error("udp", "UDP keys not reloaded: the ones loaded before stay in use");
        return rc;
    }
    ls_udp_keys_free(atomic_exchange_explicit(&u->pending, k, memory_order_acq_rel));
    return 0;
}

int ls_udp_start(struct ls_udp **out, ls_ingest *in, const ls_config *cfg)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    *out = NULL;
    int family = ls_net_parse_addr(cfg->udp_listen, &ss, &sl);
    if (family < 0) {
        ls_error("udp", "udp.listen = \"%s\": expected host:port with a numeric address",
                 cfg->udp_listen);
        return -EINVAL;
    }
    struct ls_udp *u = calloc(1, sizeof(*u));
    if (!u || !(u->bufs = malloc((size_t)UDP_VLEN * UDP_DGRAM_MAX))) {
        free(u);
        return -ENOMEM;
    }
    u->fd = u->stop_fd = -1;
    if (cfg->udp_auth == LS_UDP_AUTH_HMAC) {
        u->back_ms = cfg->udp_auth_window;
        u->ahead_ms = cfg->state_max_clock_skew;
        int rc = (u->keys_path = strdup(cfg->udp_keys_file)) ? 0 : -ENOMEM;
        if (rc == 0) rc = keys_load(u->keys_path, &u->keys, "loaded");
        if (rc < 0) {
            ls_udp_stop(u);
            return rc;
        }
    }
    ls_ingest_counters_open(in, "udp", &u->counters);
    int rc = ls_ingest_producer_open(in, &u->prod, applied_cb, u);
    if (rc < 0) {
        ls_udp_stop(u);
        return rc;
    }
    u->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    u->fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (u->fd < 0 || u->stop_fd < 0) {
        rc = -errno;
        ls_error("udp", "socket: %s", strerror(errno));
    } else {
        set_rcvbuf(u->fd, cfg->udp_rcvbuf);
        if (bind(u->fd, (struct sockaddr *)&ss, sl) < 0) {
            rc = -errno;
            ls_error("udp", "cannot bind %s: %s", cfg->udp_listen, strerror(errno));
        }
    }
    if (rc == 0 && (rc = -pthread_create(&u->thread, NULL, udp_main, u)) == 0) u->running = 1;
    if (rc < 0) {
        ls_udp_stop(u);
        return rc;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    unsigned port = 0;
    if (getsockname(u->fd, (struct sockaddr *)&bound, &bl) == 0)
        port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                 : ((struct sockaddr_in *)&bound)->sin_port);
    char host[256];
    ls_net_host_part(cfg->udp_listen, host, sizeof(host));
    ls_info("udp", "receiving heartbeats on %s:%u", host, port);
    *out = u;
    ls_stats_port sp = {.key = "udp", .json = stats_json_cb, .ud = u};
    return ls_ingest_stats_register(in, &sp);
}

void ls_udp_stop(struct ls_udp *u)
{
    if (!u) return;
    if (u->running) {
        uint64_t one = 1;
        ssize_t w = write(u->stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(u->thread, NULL);
    }
    ls_ingest_producer_close(u->prod);
    if (u->fd >= 0) close(u->fd);
    if (u->stop_fd >= 0) close(u->stop_fd);
    ls_udp_keys_free(u->keys);
    ls_udp_keys_free(atomic_load(&u->pending));
    free(u->keys_path);
    free(u->bufs);
    free(u);
}
