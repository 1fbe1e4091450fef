/*
 * udp_bench.c - lastseen-bench udp: a UDP heartbeat load generator that
 * checks what the daemon received.
 *
 *   lastseen-bench udp --port P --http-port H [--devices N] [--lines L] [--vlen V]
 *                      [--rates R1,R2,...] [--duration-ms D] [--runs R] [--max]
 *                      [--keep-going] [--no-warm] [--seed S] [--keys FILE --sign SOURCE]
 *
 * The daemon runs elsewhere (bench/suite.py starts one) with udp.listen on
 * 127.0.0.1:P and its HTTP API on 127.0.0.1:H; only loopback is used.
 *
 * N devices get 36-character UUID ids (seeded).  All N lines "<id>\n" are
 * laid out once in one buffer, in random order, followed by a copy of the
 * first L, so every datagram is L consecutive lines of that buffer and is
 * sent without copying: sendmmsg(2) hands the kernel V datagrams (iovecs
 * into the buffer) per call, cycling through the devices.
 *
 * Warm-up (unless --no-warm): every device sends once, at 200k lines/s, and
 * the generator waits until the daemon has received them and its outbox
 * has delivered the N ACTIVITY_EVENTs (so the steps measure heartbeats of
 * known, active devices, not device creation).
 *
 * Each step sends at a target rate in lines/s (0 = as fast as the sender
 * can) for D ms, paced against the monotonic clock in whole sendmmsg calls,
 * then reads GET /api/v1/stats until the daemon's udp counters stop moving
 * (at most 10 s): received = growth of udp.activities plus every rejected
 * reason, lost = sent - received.  Steps run in the order given and the
 * ladder stops at the first step that lost a line or that the sender could
 * not reach (97 % of the target), unless --keep-going.  --max adds a final
 * as-fast-as-possible step.  The figure of a run is its last lossless step;
 * with --runs R the ladder is repeated and the median, min and max of that
 * figure are printed.
 *
 * Signed (--keys FILE --sign SOURCE, for a daemon with udp.auth = hmac):
 * each line is "<id> <ts> <source>:<mac>" (in/udp_auth.c, the daemon's own
 * code), signed with SOURCE's first key in FILE.  Lines have a fixed length
 * (13-digit timestamps), so the buffer layout is the same; a line is signed
 * again, with the time then, just before it is sent if it was signed in an
 * earlier second: timestamps stay within a second of the sending time, and
 * the sender signs each device at most once a second (about 0.15 us a line).
 *
 * Output: one "step ..." line per step and a final "udp: ..." summary line,
 * key=value pairs so that scripts can read them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "base/clock.h"
#include "in/udp_auth.h"

#define ID_LEN 36
#define LINE 37 /* unsigned: the 36-character id and '\n' */
#define MAX_RATES 32
#define MAX_RUNS 64
#define MAX_VLEN 1024
#define MAX_REPLY (4 << 20)
#define SETTLE_MAX_S 10.0
#define WARM_RATE 200000.0
#define WARM_MAX_S 300.0

typedef struct {
    int port, http_port;
    uint64_t devices, lines, vlen, duration_ms, runs;
    const char *keys_path, *source; /* --keys, --sign: signed lines */
    double rates[MAX_RATES];
    int nrates;
    int max_step, keep_going, warm;
} udp_opts;

typedef struct {
    int64_t received;  /* udp.activities + every udp.rejected reason */
    int64_t datagrams; /* udp.datagrams */
    int64_t devices, last_seq, committed_seq, max_lag;
} udp_stats;

/* The generator: the line buffer and one sendmmsg batch. */
typedef struct {
    int fd;
    char *buf;
    uint64_t n, lines, vlen, cursor;
    size_t line; /* bytes a line, '\n' included: all lines have the same length */
    struct mmsghdr *msgs;
    struct iovec *iov;
    /* Signed lines: the key, and per line of buf the wall second it was signed at. */
    ls_udp_keys *keys;
    const ls_udp_key *key;
    int64_t *signed_at;
} udp_gen;

/*
 * GET path from 127.0.0.1:port with HTTP/1.1 and "Connection: close";
 * the body is returned in a NUL-terminated buffer the caller frees.
 * 0 on a 200 answer, -1 otherwise (with a message).  Bounded: 5 s per
 * socket operation.
 */
int bench_http_get(int port, const char *path, char **body)
{
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[512];
    int rl = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    char *buf = malloc(MAX_REPLY + 1);
    size_t len = 0;
    int rc = -1;
    if (!buf || rl <= 0 || (size_t)rl >= sizeof(req)) goto out;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send(fd, req, (size_t)rl, 0) != rl) {
        fprintf(stderr, "GET 127.0.0.1:%d%s: %s\n", port, path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t got = recv(fd, buf + len, MAX_REPLY - len, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            fprintf(stderr, "GET 127.0.0.1:%d%s: %s\n", port, path, strerror(errno));
            goto out;
        }
        if (got == 0 || (len += (size_t)got) == MAX_REPLY) break;
    }
    buf[len] = '\0';
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (!hdr_end || strncmp(buf, "HTTP/1.1 200", 12)) {
        fprintf(stderr, "GET 127.0.0.1:%d%s: unexpected answer: %.80s\n", port, path, buf);
        goto out;
    }
    size_t off = (size_t)(hdr_end + 4 - buf);
    memmove(buf, buf + off, len - off + 1);
    *body = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static int64_t json_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Reads the daemon's counters; 0, or -1 if the input is off or the answer bad. */
static int stats_read(int http_port, udp_stats *st)
{
    char *body;
    if (bench_http_get(http_port, "/api/v1/stats", &body) < 0) return -1;
    json_error_t err;
    json_t *root = json_loads(body, 0, &err);
    free(body);
    json_t *udp = json_object_get(root, "udp");
    json_t *outbox = json_object_get(root, "outbox");
    if (!json_is_object(udp) || !json_is_object(outbox)) {
        fprintf(stderr, "stats: no \"udp\" or \"outbox\" object (is udp.listen set?)\n");
        json_decref(root);
        return -1;
    }
    memset(st, 0, sizeof(*st));
    st->received = json_int(udp, "activities");
    st->datagrams = json_int(udp, "datagrams");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(udp, "rejected"), k, v) st->received +=
        json_integer_value(v);
    st->devices = json_int(root, "devices");
    st->last_seq = json_int(root, "lastSeq");
    st->committed_seq = json_int(outbox, "committedSeq");
    size_t i;
    json_array_foreach(json_object_get(outbox, "sinks"), i, v)
    {
        int64_t lag = json_int(v, "lag");
        if (lag > st->max_lag) st->max_lag = lag;
    }
    json_decref(root);
    return 0;
}

/*
 * Polls the counters until `received` reaches `want` or stops moving for
 * 300 ms (lines lost: they will not come), at most max_s seconds.  With
 * `drained`, also until the outbox has delivered every event.  0, or -1 if
 * the stats could not be read.
 */
static int stats_settle(int http_port, int64_t want, int drained, double max_s, udp_stats *st)
{
    double t0 = bench_secs(), moved = t0;
    int64_t last = -1;
    for (;;) {
        if (stats_read(http_port, st) < 0) return -1;
        double now = bench_secs();
        if (st->received != last) {
            last = st->received;
            moved = now;
        }
        int received = st->received >= want || now - moved > 0.3;
        int delivered = !drained || (st->max_lag == 0 && st->committed_seq == st->last_seq);
        if ((received && delivered) || now - t0 > max_s) return 0;
        usleep(20000);
    }
}

/* Signs line i of the buffer (its id is the first ID_LEN bytes) with the time now. */
static void sign_line(udp_gen *g, uint64_t i, int64_t now_ms)
{
    char *p = g->buf + i * g->line;
    char id[ID_LEN];
    memcpy(id, p, ID_LEN);
    size_t n = ls_udp_sign(g->key, id, ID_LEN, now_ms, p, g->line - 1);
    (void)n; /* the length is fixed: 13-digit timestamps until the year 2286 */
    p[g->line - 1] = '\n';
    g->signed_at[i] = now_ms / 1000;
}

static int gen_init(udp_gen *g, const udp_opts *o)
{
    memset(g, 0, sizeof(*g));
    g->n = o->devices;
    g->lines = o->lines;
    g->vlen = o->vlen;
    g->line = LINE;
    if (o->keys_path) {
        char err[256];
        if (ls_udp_keys_load(o->keys_path, &g->keys, err, sizeof(err)) < 0 ||
            !(g->key = ls_udp_keys_signer(g->keys, o->source))) {
            fprintf(stderr, "udp: --keys %s: %s\n", o->keys_path,
                    g->keys ? "no key of the --sign source in it" : err);
            return -1;
        }
        /* "<id> <13-digit ts> <source>:<mac>\n" */
        g->line = ID_LEN + 1 + 13 + 1 + strlen(o->source) + 1 + LS_UDP_MAC_HEX + 1;
        g->signed_at = calloc(g->n + g->lines, sizeof(*g->signed_at));
        if (!g->signed_at) return -1;
    }
    g->buf = malloc((g->n + g->lines) * g->line);
    g->msgs = calloc(g->vlen, sizeof(*g->msgs));
    g->iov = calloc(g->vlen, sizeof(*g->iov));
    if (!g->buf || !g->msgs || !g->iov) {
        fprintf(stderr, "out of memory for %llu devices\n", (unsigned long long)g->n);
        return -1;
    }
    size_t L = g->line;
    for (uint64_t i = 0; i < g->n; i++) {
        bench_uuid(g->buf + i * L);
        memset(g->buf + i * L + ID_LEN, ' ', L - ID_LEN - 1);
        g->buf[i * L + L - 1] = '\n';
    }
    /* Random order, so that consecutive lines hit unrelated table slots. */
    char *tmp = malloc(L);
    if (!tmp) return -1;
    for (uint64_t i = g->n - 1; i > 0; i--) {
        uint64_t j = bench_rng() % (i + 1);
        memcpy(tmp, g->buf + i * L, L);
        memcpy(g->buf + i * L, g->buf + j * L, L);
        memcpy(g->buf + j * L, tmp, L);
    }
    free(tmp);
    for (uint64_t i = 0; i < g->lines; i++)
        memcpy(g->buf + (g->n + i) * L, g->buf + (i % g->n) * L, L);
    if (g->key) {
        int64_t now = ls_clock_now().wall;
        for (uint64_t i = 0; i < g->n + g->lines; i++)
            sign_line(g, i, now);
    }

    g->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sndbuf = 4 << 20;
    if (g->fd < 0 || connect(g->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "udp socket to 127.0.0.1:%d: %s\n", o->port, strerror(errno));
        return -1;
    }
    setsockopt(g->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    return 0;
}

static void gen_close(udp_gen *g)
{
    if (g->fd > 0) close(g->fd);
    free(g->buf);
    free(g->msgs);
    free(g->iov);
    free(g->signed_at);
    ls_udp_keys_free(g->keys);
}

/*
 * Sends up to `max_lines` lines (whole datagrams, at most vlen of them) in
 * one sendmmsg call; a datagram is min(lines, what is left of the device
 * list before it wraps) lines.  Returns the lines sent, or -1 on an error
 * other than a full buffer.
 */
static int64_t gen_send(udp_gen *g, uint64_t max_lines, uint64_t *datagrams)
{
    uint64_t k = 0, lines = 0;
    uint64_t c = g->cursor;
    int64_t now = g->key ? ls_clock_now().wall : 0;
    while (k < g->vlen && lines < max_lines) {
        uint64_t l = g->lines;
        if (l > max_lines - lines) l = max_lines - lines;
        /* Signed: a line signed in an earlier second is signed again, now,
         * so timestamps stay within a second of the time they are sent. */
        for (uint64_t i = c; g->key && i < c + l; i++)
            if (g->signed_at[i] != now / 1000) sign_line(g, i, now);
        g->iov[k] = (struct iovec){g->buf + c * g->line, l * g->line};
        g->msgs[k].msg_hdr = (struct msghdr){.msg_iov = &g->iov[k], .msg_iovlen = 1};
        c = (c + l) % g->n;
        lines += l;
        k++;
    }
    int sent = sendmmsg(g->fd, g->msgs, (unsigned)k, 0);
    if (sent < 0) {
        if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) return 0;
        fprintf(stderr, "sendmmsg: %s\n", strerror(errno));
        return -1;
    }
    lines = 0;
    for (int i = 0; i < sent; i++) {
        lines += g->iov[i].iov_len / g->line;
        g->cursor = (g->cursor + g->iov[i].iov_len / g->line) % g->n;
    }
    *datagrams += (uint64_t)sent;
    return (int64_t)lines;
}

static void sleep_secs(double s)
{
    if (s <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/*
 * Sends `total` lines (0: for duration_s) at `rate` lines/s (0: as fast as
 * possible).  Returns the lines sent and stores the elapsed time.
 */
static int64_t gen_run(udp_gen *g, double rate, uint64_t total, double duration_s,
                       uint64_t *datagrams, double *elapsed)
{
    uint64_t sent = 0;
    uint64_t chunk = g->lines * g->vlen;
    double t0 = bench_secs();
    for (;;) {
        double el = bench_secs() - t0;
        if (total ? sent >= total : el >= duration_s) break;
        if (rate > 0 && (double)sent >= rate * el) {
            sleep_secs(((double)sent + 1) / rate - el);
            continue;
        }
        uint64_t want = chunk;
        if (total && total - sent < want) want = total - sent;
        int64_t n = gen_send(g, want, datagrams);
        if (n < 0) return -1;
        sent += (uint64_t)n;
    }
    *elapsed = bench_secs() - t0;
    return (int64_t)sent;
}

static int warm_up(udp_gen *g, const udp_opts *o)
{
    udp_stats before, after;
    if (stats_read(o->http_port, &before) < 0) return -1;
    uint64_t dg = 0;
    double el;
    double t0 = bench_secs();
    int64_t sent = gen_run(g, WARM_RATE, g->n, 0, &dg, &el);
    if (sent < 0) return -1;
    if (stats_settle(o->http_port, before.received + sent, 1, WARM_MAX_S, &after) < 0) return -1;
    printf("warm: devices=%llu sent=%lld received=%lld daemon_devices=%lld outbox_lag=%lld "
           "secs=%.1f\n",
           (unsigned long long)g->n, (long long)sent, (long long)(after.received - before.received),
           (long long)after.devices, (long long)after.max_lag, bench_secs() - t0);
    g->cursor = 0;
    return 0;
}

/* One step; returns 1 if lossless and reached, 0 if not, -1 on error. */
static int step(udp_gen *g, const udp_opts *o, int run, double rate, double *achieved)
{
    udp_stats before, after;
    if (stats_read(o->http_port, &before) < 0) return -1;
    uint64_t dg = 0;
    double el;
    int64_t sent = gen_run(g, rate, 0, (double)o->duration_ms / 1000.0, &dg, &el);
    if (sent < 0) return -1;
    if (stats_settle(o->http_port, before.received + sent, 0, SETTLE_MAX_S, &after) < 0) return -1;
    int64_t got = after.received - before.received;
    int64_t got_dg = after.datagrams - before.datagrams;
    *achieved = (double)sent / el;
    int reached = rate == 0 || *achieved >= 0.97 * rate;
    int64_t lost = sent - got;
    printf("step run=%d target=%.0f sent=%lld secs=%.3f sent_rate=%.0f received=%lld lost=%lld "
           "loss_pct=%.4f datagrams=%llu datagrams_received=%lld lines_per_datagram=%llu%s\n",
           run, rate, (long long)sent, el, *achieved, (long long)got, (long long)lost,
           sent ? 100.0 * (double)lost / (double)sent : 0.0, (unsigned long long)dg,
           (long long)got_dg, (unsigned long long)o->lines, reached ? "" : " sender_bound=1");
    fflush(stdout);
    return lost == 0 && reached;
}

static int parse_rates(const char *s, udp_opts *o)
{
    o->nrates = 0;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0 || o->nrates == MAX_RATES || (*end && *end != ',')) {
            fprintf(stderr, "bad --rates: %s\n", s);
            return -1;
        }
        o->rates[o->nrates++] = v;
        s = *end ? end + 1 : end;
    }
    return o->nrates ? 0 : -1;
}

int bench_udp(int argc, char **argv)
{
    udp_opts o = {
        .devices = 1000000, .lines = 64, .vlen = 32, .duration_ms = 2000, .runs = 1, .warm = 1};
    parse_rates("250000,500000,750000,1000000,1250000,1500000,2000000,2500000,3000000,4000000", &o);
    uint64_t port = 0, http_port = 0, seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--max")) {
            o.max_step = 1;
            continue;
        } else if (!strcmp(a, "--keep-going")) {
            o.keep_going = 1;
            continue;
        } else if (!strcmp(a, "--no-warm")) {
            o.warm = 0;
            continue;
        } else if (!strcmp(a, "--port"))
            rc = bench_arg_u64(a, v, &port);
        else if (!strcmp(a, "--http-port"))
            rc = bench_arg_u64(a, v, &http_port);
        else if (!strcmp(a, "--devices"))
            rc = bench_arg_u64(a, v, &o.devices);
        else if (!strcmp(a, "--lines"))
            rc = bench_arg_u64(a, v, &o.lines);
        else if (!strcmp(a, "--vlen"))
            rc = bench_arg_u64(a, v, &o.vlen);
        else if (!strcmp(a, "--duration-ms"))
            rc = bench_arg_u64(a, v, &o.duration_ms);
        else if (!strcmp(a, "--runs"))
            rc = bench_arg_u64(a, v, &o.runs);
        else if (!strcmp(a, "--seed"))
            rc = bench_arg_u64(a, v, &seed);
        else if (!strcmp(a, "--rates"))
            rc = v ? parse_rates(v, &o) : -1;
        else if (!strcmp(a, "--keys"))
            rc = (o.keys_path = v) ? 0 : -1;
        else if (!strcmp(a, "--sign"))
            rc = v && strlen(v) <= LS_UDP_SOURCE_MAX ? ((o.source = v), 0) : -1;
        else {
            fprintf(stderr, "udp: unknown option %s\n", a);
            return 2;
        }
        if (rc < 0) return 2;
        i++;
    }
    if (!port || port > 65535 || !http_port || http_port > 65535) {
        fprintf(stderr, "udp: --port and --http-port (1..65535) are required\n");
        return 2;
    }
    if (!o.keys_path != !o.source) {
        fprintf(stderr, "udp: --keys and --sign go together\n");
        return 2;
    }
    size_t line = o.source ? ID_LEN + 1 + 13 + 1 + strlen(o.source) + 1 + LS_UDP_MAC_HEX + 1 : LINE;
    if (o.lines * line > 65000 || o.vlen > MAX_VLEN || o.runs > MAX_RUNS) {
        fprintf(stderr, "udp: --lines at most %zu, --vlen at most %d, --runs at most %d\n",
                65000 / line, MAX_VLEN, MAX_RUNS);
        return 2;
    }
    o.port = (int)port;
    o.http_port = (int)http_port;
    bench_seed(seed);

    udp_gen g;
    if (gen_init(&g, &o) < 0) {
        gen_close(&g);
        return 1;
    }
    printf("udp: devices=%llu lines_per_datagram=%llu datagram_bytes=%llu vlen=%llu "
           "duration_ms=%llu runs=%llu signed=%d\n",
           (unsigned long long)o.devices, (unsigned long long)o.lines,
           (unsigned long long)(o.lines * line), (unsigned long long)o.vlen,
           (unsigned long long)o.duration_ms, (unsigned long long)o.runs, o.source != NULL);
    int rc = 0;
    if (o.warm && warm_up(&g, &o) < 0) rc = 1;
    double best[MAX_RUNS];
    for (uint64_t r = 0; r < o.runs && rc == 0; r++) {
        best[r] = 0;
        int stopped = 0;
        for (int s = 0; s < o.nrates && rc == 0 && !stopped; s++) {
            double got;
            int ok = step(&g, &o, (int)r + 1, o.rates[s], &got);
            if (ok < 0)
                rc = 1;
            else if (ok && o.rates[s] > best[r])
                best[r] = o.rates[s];
            else if (!ok && !o.keep_going)
                stopped = 1;
        }
        double fastest;
        if (o.max_step && rc == 0 && step(&g, &o, (int)r + 1, 0, &fastest) < 0) rc = 1;
        printf("run %llu: max_lossless=%.0f\n", (unsigned long long)r + 1, best[r]);
        fflush(stdout);
    }
    if (rc == 0) {
        double med, lo, hi;
        bench_stats(best, (int)o.runs, &med, &lo, &hi);
        printf("udp: max_lossless_median=%.0f min=%.0f max=%.0f runs=%llu\n", med, lo, hi,
               (unsigned long long)o.runs);
    }
    gen_close(&g);
    return rc;
}
