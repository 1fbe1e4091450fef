/*
 * node.c - a cluster node: the glue between NATS (nats.c), the leases
 * (lease.c), this node's inputs (publish.c) and its shards (consume.c),
 * and the node thread (ls-cluster) that drives what may wait on a server.
 *
 * Start (ls_cluster_start(), on the main thread, before the inputs): the
 * devices restored from the local store are dropped, since the node owns
 * no partition yet and the input stream is where a partition is rebuilt
 * from; the ingest port of the inputs gets the publisher as its forwarder
 * (core/ingest.h); the sources and figures are registered; the connection
 * starts in the background and the node thread takes over.
 *
 * The node thread, every TICK_MS or when woken:
 *   - until provisioned: provisions the streams and buckets once connected
 *     (every second until it works), then starts the lease thread with the
 *     lease bucket's TTL;
 *   - starts the consumer of each partition the lease thread acquired,
 *     from (now - the longest timeout of the configuration, at most
 *     cluster.input_retention): what the partition needs to rebuild every
 *     device that can still go inactive, from the stream alone.  A failed
 *     start is tried again next turn while the partition is owned;
 *   - asks the servers about partitions still catching up, destroys
 *     stopped subscriptions (consume.c);
 *   - probes LS_IN every PROBE_MS (stream info: answered by the stream's
 *     leader only);
 *   - sets the sources: "cluster" is up while the node is connected, the
 *     stream answers its probe and no consumer missed its heartbeats
 *     lately; "cluster-replay" is up while no partition catches up, and
 *     is taken down before a partition's replay starts.  Transitions are
 *     made here only.
 *
 * The lease thread calls acquired() (noted, the node thread starts the
 * consumer) and lost(): the partition's consumer stops (its items applied:
 * consume.c), then its devices leave the shards without events
 * (core/partition.h), all before lost() returns, so a handed-over
 * partition's lease is deleted only once nothing of it is left here.
 * While the node stops, lost() keeps the devices (the process is about to
 * exit, the sources are down, and the next start drops them anyway).
 *
 * Locks: `turn.mu` guards the partitions' wanted/owned/revision (and the
 * turn's flags); never held across a call into another part.
 */
#include "cluster/node.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "cluster/consume.h"
#include "cluster/lease.h"
#include "cluster/nats.h"
#include "cluster/publish.h"
#include "cluster/token.h"
#include "cluster/turn.h"
#include "conf/config.h"
#include "core/ingest.h"
#include "core/partition.h"
#include "core/prom.h"
#include "core/stats.h"

#define TICK_MS 250
#define PROBE_MS 1000
#define PROBE_FRESH_MS 2500 /* the stream counts as heard this long after a probe answered */
#define HEARTBEAT_MS 1000   /* consumers' idle heartbeat; a stall shows within 2-4 of them */
#define WAIT_MS 2000        /* a request's wait; also a publish's */
#define PING_MS 1000

struct ls_cluster {
    struct ls_daemon *d;
    ls_ingest *inputs, *local;
    char node[LS_LEASE_NODE_MAX + 1];
    char http[256];
    unsigned partitions;
    int64_t lookback_ms, input_retention_ms, lease_ttl_cfg;
    ls_nats *nats;
    ls_publisher *pub;
    ls_consumers *cons;
    ls_leases *leases;
    ls_ingest_counters counters;
    unsigned src_live, src_replay;
    pthread_t thread;
    int running;
    ls_turn turn;          /* its mu guards the three below */
    uint8_t *want, *owned; /* under turn.mu */
    uint64_t *rev;         /* under turn.mu */
    _Atomic int leaving;
    _Atomic uint64_t dropped_devices;
    /* The node thread's; read by the stats writer as atomics. */
    _Atomic int provisioned, live_up, replay_up;
    int64_t provision_at, probe_at, probe_ok_at;
    int64_t lease_ttl;
    int64_t async_logged_at; /* NATS's async error thread */
    _Atomic int cons_ready;  /* cons is set: NATS's threads may use it */
};

/* ---- the node thread ------------------------------------------------------------ */

static void wake(ls_cluster *c)
{
    ls_turn_wake(&c->turn);
}

static void wake_cb(void *ud)
{
    wake(ud);
}

/* A consumer that missed its heartbeats, could not be recreated after
 * that, or fell behind (slow consumer: cnats dropped messages and the
 * ordered consumer starts again after the gap) is a stall: its partition
 * cannot be heard meanwhile. */
static void async_error_cb(void *ud, natsSubscription *sub, natsStatus s)
{
    ls_cluster *c = ud;
    int64_t now = ls_clock_now().mono;
    if (now - c->async_logged_at >= 5000) { /* at most one line every 5 s */
        c->async_logged_at = now;
        ls_warn("cluster", "NATS: %s",
                s == NATS_SLOW_CONSUMER ? "a subscription fell behind and lost messages"
                                        : ls_nats_error(s));
    }
    if (sub && atomic_load_explicit(&c->cons_ready, memory_order_acquire)) {
        ls_consumers_stalled(c->cons, sub);
        wake(c);
    }
}

typedef struct part_match {
    unsigned p, partitions;
} part_match;

static int match_partition(void *ud, const char *id, size_t len)
{
    const part_match *m = ud;
    char tok[LS_TOKEN_BUF];
    size_t n = ls_token_encode(id, len, tok);
    return ls_token_partition(tok, n, m->partitions) == m->p;
}

static void acquired_cb(void *ud, unsigned p, uint64_t rev)
{
    ls_cluster *c = ud;
    pthread_mutex_lock(&c->turn.mu);
    c->owned[p] = 1;
    c->want[p] = 1;
    c->rev[p] = rev;
    pthread_mutex_unlock(&c->turn.mu);
    wake(c);
}

static void lost_cb(void *ud, unsigned p)
{
    ls_cluster *c = ud;
    pthread_mutex_lock(&c->turn.mu);
    c->owned[p] = 0;
    c->want[p] = 0;
    pthread_mutex_unlock(&c->turn.mu);
    ls_consumers_stop(c->cons, p);
    if (!atomic_load_explicit(&c->leaving, memory_order_acquire)) {
        part_match m = {.p = p, .partitions = c->partitions};
        uint64_t n = ls_partition_drop(c->d, match_partition, &m);
        atomic_fetch_add_explicit(&c->dropped_devices, n, memory_order_relaxed);
        if (n)
            ls_info("cluster", "partition %u: %llu device(s) left this node", p,
                    (unsigned long long)n);
    }
    wake(c);
}

/* The node thread (and ls_cluster_stop() once it is gone).  A source still
 * unknown (-1: held since it was registered) goes up, never "down". */
static void set_source(ls_cluster *c, _Atomic int *state, unsigned src, int up)
{
    int was = atomic_load_explicit(state, memory_order_relaxed);
    if (was == up || (was < 0 && !up)) return;
    if (up)
        ls_ingest_source_up(c->local, NULL, src);
    else
        ls_ingest_source_down(c->local, NULL, src);
    atomic_store_explicit(state, up, memory_order_relaxed);
}

static void provision(ls_cluster *c, int64_t now)
{
    if (atomic_load_explicit(&c->provisioned, memory_order_relaxed) || now < c->provision_at ||
        !ls_nats_connected(c->nats))
        return;
    ls_nats_layout lay = {.input_retention_ms = c->input_retention_ms,
                          .lease_ttl_ms = c->lease_ttl_cfg,
                          .wait_ms = WAIT_MS};
    int64_t ttl = c->lease_ttl_cfg;
    if (ls_nats_provision(c->nats, &lay, &ttl) < 0) {
        c->provision_at = now + 1000;
        return;
    }
    if (ttl < 3000) {
        ls_error("cluster",
                 "bucket " LS_NATS_BUCKET_LEASE " keeps keys %lld ms (under 3 s, or forever): this "
                 "node takes no partition",
                 (long long)ttl);
        c->provision_at = INT64_MAX;
        return;
    }
    c->lease_ttl = ttl;
    ls_leases_opts lo = {
        .nats = c->nats, .node = c->node, .http = c->http, .partitions = c->partitions, .ttl = ttl};
    ls_lease_cbs cb = {.acquired = acquired_cb, .lost = lost_cb, .ud = c};
    ls_leases *leases = NULL;
    int rc = ls_leases_start(&leases, &lo, &cb);
    if (rc < 0) ls_error("cluster", "cannot start the lease thread: %s", strerror(-rc));
    pthread_mutex_lock(&c->turn.mu);
    c->leases = leases;
    pthread_mutex_unlock(&c->turn.mu);
    atomic_store_explicit(&c->provisioned, 1, memory_order_relaxed);
    ls_info("cluster", "node %s: streams and buckets ready (lease_ttl %lld ms)", c->node,
            (long long)ttl);
}

/* Starts the consumers of the partitions acquired since the last turn. */
static void start_consumers(ls_cluster *c)
{
    for (unsigned p = 0; p < c->partitions; p++) {
        pthread_mutex_lock(&c->turn.mu);
        int want = c->want[p];
        c->want[p] = 0;
        pthread_mutex_unlock(&c->turn.mu);
        if (!want) continue;
        set_source(c, &c->replay_up, c->src_replay, 0); /* before any replayed item */
        ls_consumers_start(c->cons, p, ls_clock_now().wall - c->lookback_ms); /* retried by check */
    }
}

static void probe(ls_cluster *c, int64_t now)
{
    if (!atomic_load_explicit(&c->provisioned, memory_order_relaxed) || now < c->probe_at) return;
    c->probe_at = now + PROBE_MS;
    if (!ls_nats_connected(c->nats)) return;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = PROBE_MS;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, ls_nats_js(c->nats), LS_NATS_STREAM_IN, &jo, &jerr) == NATS_OK)
        c->probe_ok_at = ls_clock_now().mono;
    jsStreamInfo_Destroy(si);
}

static void set_sources(ls_cluster *c, int64_t now)
{
    ls_consumers_stats cs;
    ls_consumers_stats_get(c->cons, &cs);
    int stalled = cs.last_stall_mono && now - cs.last_stall_mono < 2 * HEARTBEAT_MS + 1000;
    int live = ls_nats_connected(c->nats) &&
               atomic_load_explicit(&c->provisioned, memory_order_relaxed) && c->probe_ok_at &&
               now - c->probe_ok_at < PROBE_FRESH_MS && !stalled;
    set_source(c, &c->live_up, c->src_live, live);
    set_source(c, &c->replay_up, c->src_replay, cs.catching_up == 0);
}

static void *node_main(void *arg)
{
    ls_cluster *c = arg;
    do {
        int64_t now = ls_clock_now().mono;
        provision(c, now);
        start_consumers(c);
        ls_consumers_check(c->cons);
        probe(c, now);
        set_sources(c, ls_clock_now().mono);
    } while (!ls_turn_wait(&c->turn, TICK_MS));
    nats_ReleaseThreadMemory();
    return NULL;
}

/* ---- figures ------------------------------------------------------------------ */

/* The parts' figures for one stats request; f.ls (zero before the lease
 * thread starts; NULL without memory) is to be freed. */
typedef struct figures {
    ls_publisher_stats ps;
    ls_consumers_stats cs;
    ls_leases_stats *ls;
} figures;

static void figures_take(ls_cluster *c, figures *f)
{
    ls_publisher_stats_get(c->pub, &f->ps);
    ls_consumers_stats_get(c->cons, &f->cs);
    f->ls = calloc(1, sizeof(*f->ls));
    pthread_mutex_lock(&c->turn.mu);
    ls_leases *l = c->leases;
    pthread_mutex_unlock(&c->turn.mu);
    if (l && f->ls) ls_leases_stats_get(l, f->ls);
}

static void write_json(ls_cluster *c, const figures *f, ls_buf *b)
{
    const ls_publisher_stats ps = f->ps;
    const ls_consumers_stats cs = f->cs;
    const ls_leases_stats *ls = f->ls;
    ls_buf_printf(b, "{\"node\":");
    ls_buf_json_str(b, c->node, strlen(c->node));
    ls_buf_printf(b,
                  ",\"partitions\":%u,\"connected\":%s,\"provisioned\":%s,\"streamHeard\":%s,"
                  "\"catchingUp\":%u,\"members\":[",
                  c->partitions, ls_nats_connected(c->nats) ? "true" : "false",
                  atomic_load_explicit(&c->provisioned, memory_order_relaxed) ? "true" : "false",
                  atomic_load_explicit(&c->live_up, memory_order_relaxed) == 1 ? "true" : "false",
                  cs.catching_up);
    for (unsigned i = 0; ls && i < ls->nmembers; i++) {
        if (i) ls_buf_putc(b, ',');
        ls_buf_json_str(b, ls->members[i], strlen(ls->members[i]));
    }
    ls_buf_printf(b, "],\"owned\":[");
    int first = 1;
    for (unsigned p = 0; p < c->partitions; p++) {
        pthread_mutex_lock(&c->turn.mu);
        int owned = c->owned[p];
        uint64_t rev = c->rev[p];
        pthread_mutex_unlock(&c->turn.mu);
        if (!owned) continue;
        ls_consume_part cp;
        ls_consumers_partition(c->cons, p, &cp);
        ls_buf_printf(b,
                      "%s{\"partition\":%u,\"revision\":%" PRIu64 ",\"consuming\":%s,"
                      "\"catchingUp\":%s,\"appliedSeq\":%" PRIu64 ",\"applied\":%" PRIu64
                      ",\"restarts\":%" PRIu64 "}",
                      first ? "" : ",", p, rev, cp.consuming ? "true" : "false",
                      cp.catching_up ? "true" : "false", cp.applied_seq, cp.applied, cp.restarts);
        first = 0;
    }
    ls_buf_printf(b,
                  "],\"leases\":{\"acquired\":%" PRIu64 ",\"renewed\":%" PRIu64
                  ",\"refused\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"released\":%" PRIu64
                  ",\"unknownOutcomes\":%" PRIu64 "}",
                  ls ? ls->acquired : 0, ls ? ls->renewed : 0, ls ? ls->refused : 0,
                  ls ? ls->dropped : 0, ls ? ls->released : 0, ls ? ls->unknown : 0);
    ls_buf_printf(b,
                  ",\"published\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"duplicates\":%" PRIu64
                  ",\"publishTimeouts\":%" PRIu64 ",\"publishFailures\":%" PRIu64
                  ",\"publishInFlight\":%" PRIu64 ",\"applied\":%" PRIu64
                  ",\"consumerRestarts\":%" PRIu64 ",\"devicesDropped\":%" PRIu64 ",\"rejected\":{",
                  ps.published, ps.stored, ps.duplicates, ps.timeouts, ps.failed, ps.inflight,
                  cs.applied, cs.restarts,
                  atomic_load_explicit(&c->dropped_devices, memory_order_relaxed));
    for (int i = 0; i < LS_CONSUME__REJECTS; i++)
        ls_buf_printf(b, "%s\"%s\":%" PRIu64, i ? "," : "",
                      ls_consume_reject_name((ls_consume_reject)i), cs.rejected[i]);
    ls_buf_printf(b, "}}");
}

static void write_prom(ls_cluster *c, const figures *f, ls_buf *b)
{
    const ls_publisher_stats ps = f->ps;
    const ls_consumers_stats cs = f->cs;
    const ls_leases_stats *ls = f->ls;
    ls_prom_family(b, "lastseen_cluster_connected", "gauge", "1 while connected to NATS");
    ls_prom_u64(b, "lastseen_cluster_connected", NULL, (uint64_t)ls_nats_connected(c->nats));
    ls_prom_family(b, "lastseen_cluster_stream_heard", "gauge",
                   "1 while the input stream is heard (the source \"cluster\" is up)");
    ls_prom_u64(b, "lastseen_cluster_stream_heard", NULL,
                atomic_load_explicit(&c->live_up, memory_order_relaxed) == 1);
    ls_prom_family(b, "lastseen_cluster_members", "gauge", "live members this node sees");
    ls_prom_u64(b, "lastseen_cluster_members", NULL, ls ? ls->nmembers : 0);
    ls_prom_family(b, "lastseen_cluster_partitions_owned", "gauge", "partitions this node holds");
    ls_prom_u64(b, "lastseen_cluster_partitions_owned", NULL, ls ? ls->owned : 0);
    ls_prom_family(b, "lastseen_cluster_partitions_catching_up", "gauge",
                   "owned partitions still replaying the input stream");
    ls_prom_u64(b, "lastseen_cluster_partitions_catching_up", NULL, cs.catching_up);
    ls_prom_family(b, "lastseen_cluster_lease_events_total", "counter",
                   "lease changes and renewals of this node, by kind");
    const char *kinds[] = {"acquired", "renewed", "refused", "dropped", "released", "unknown"};
    uint64_t vals[] = {ls ? ls->acquired : 0, ls ? ls->renewed : 0,  ls ? ls->refused : 0,
                       ls ? ls->dropped : 0,  ls ? ls->released : 0, ls ? ls->unknown : 0};
    for (int i = 0; i < 6; i++) {
        const char *lab[] = {"event", kinds[i], NULL};
        ls_prom_u64(b, "lastseen_cluster_lease_events_total", lab, vals[i]);
    }
    ls_prom_family(b, "lastseen_cluster_published_total", "counter",
                   "input items this node published to the input stream");
    ls_prom_u64(b, "lastseen_cluster_published_total", NULL, ps.published);
    ls_prom_family(b, "lastseen_cluster_publish_results_total", "counter",
                   "what became of them: stored (duplicates included), timeout, failed");
    const char *res[] = {"stored", "duplicate", "timeout", "failed"};
    uint64_t rv[] = {ps.stored, ps.duplicates, ps.timeouts, ps.failed};
    for (int i = 0; i < 4; i++) {
        const char *lab[] = {"result", res[i], NULL};
        ls_prom_u64(b, "lastseen_cluster_publish_results_total", lab, rv[i]);
    }
    ls_prom_family(b, "lastseen_cluster_publish_seconds", "histogram",
                   "from publishing an item someone waits for to the stream's acknowledgement");
    ls_prom_histogram(b, "lastseen_cluster_publish_seconds", NULL, ls_publisher_latency(c->pub));
    ls_prom_family(b, "lastseen_cluster_applied_total", "counter",
                   "input stream messages this node applied to its shards");
    ls_prom_u64(b, "lastseen_cluster_applied_total", NULL, cs.applied);
    ls_prom_family(b, "lastseen_cluster_consumer_restarts_total", "counter",
                   "partition consumers made again after a gap, missed heartbeats or an error");
    ls_prom_u64(b, "lastseen_cluster_consumer_restarts_total", NULL, cs.restarts);
    ls_prom_family(b, "lastseen_cluster_rejected_total", "counter",
                   "input stream messages this node refused, by reason");
    for (int i = 0; i < LS_CONSUME__REJECTS; i++) {
        const char *lab[] = {"reason", ls_consume_reject_name((ls_consume_reject)i), NULL};
        ls_prom_u64(b, "lastseen_cluster_rejected_total", lab, cs.rejected[i]);
    }
}

static void stats_json(void *ud, ls_buf *b, uint64_t committed)
{
    figures f;
    (void)committed;
    figures_take(ud, &f);
    write_json(ud, &f, b);
    free(f.ls);
}

static void stats_prom(void *ud, ls_buf *b, uint64_t committed)
{
    figures f;
    (void)committed;
    figures_take(ud, &f);
    write_prom(ud, &f, b);
    free(f.ls);
}

/* ---- life cycle ------------------------------------------------------------------- */

/* cluster.node, or the host name up to its first dot.  0 or -EINVAL. */
static int node_name(const ls_config *cfg, char *out, size_t len)
{
    char host[256] = "";
    const char *name = cfg->cluster_node;
    if (!name[0]) {
        if (gethostname(host, sizeof(host) - 1) < 0) host[0] = '\0';
        char *dot = strchr(host, '.');
        if (dot) *dot = '\0';
        name = host;
    }
    size_t n = strlen(name);
    int ok = n > 0 && n <= LS_LEASE_NODE_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
             (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-';
    if (!ok) {
        ls_error("cluster",
                 "the host name \"%s\" is no node name (1..64 letters, digits, _ or -): set "
                 "cluster.node",
                 name);
        return -EINVAL;
    }
    if (n >= len) return -EINVAL;
    memcpy(out, name, n + 1);
    return 0;
}

static void free_cluster(ls_cluster *c)
{
    ls_consumers_close(c->cons);
    ls_publisher_close(c->pub);
    ls_nats_close(c->nats);
    ls_ingest_close(c->local);
    ls_turn_destroy(&c->turn);
    free(c->want);
    free(c->owned);
    free(c->rev);
    free(c);
}

int ls_cluster_start(ls_cluster **out, struct ls_daemon *d, ls_ingest *inputs, ls_ingest *local,
                     const ls_config *cfg)
{
    *out = NULL;
    ls_cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        ls_ingest_close(local);
        return -ENOMEM;
    }
    c->d = d;
    c->inputs = inputs;
    c->local = local;
    c->partitions = (unsigned)cfg->cluster_partitions;
    c->input_retention_ms = cfg->cluster_input_retention;
    c->lease_ttl_cfg = cfg->cluster_lease_ttl;
    snprintf(c->http, sizeof(c->http), "%s", cfg->http_listen);
    int64_t look = cfg->state_default_inactivity_timeout;
    if (cfg->transport_session_inactivity_timeout > look)
        look = cfg->transport_session_inactivity_timeout;
    c->lookback_ms = look < cfg->cluster_input_retention ? look : cfg->cluster_input_retention;
    ls_turn_init(&c->turn); /* before anything calls back */
    c->want = calloc(c->partitions, 1);
    c->owned = calloc(c->partitions, 1);
    c->rev = calloc(c->partitions, sizeof(*c->rev));
    atomic_init(&c->live_up, -1);
    atomic_init(&c->replay_up, -1);
    int rc = !c->want || !c->owned || !c->rev ? -ENOMEM : node_name(cfg, c->node, sizeof(c->node));
    if (rc < 0) {
        free_cluster(c);
        return rc;
    }

    /* The store's devices are no partition's until this node acquires it. */
    uint64_t dropped = ls_partition_drop(d, NULL, NULL);
    if (dropped)
        ls_info("cluster",
                "%llu device(s) restored from the store left: partitions are rebuilt "
                "from the input stream",
                (unsigned long long)dropped);

    int live = ls_ingest_source_add(local, "cluster", 1);
    int replay = ls_ingest_source_add(local, "cluster-replay", 1);
    if (live < 0 || replay < 0) {
        ls_error("cluster", "cannot register the sources \"cluster\" and \"cluster-replay\"");
        free_cluster(c);
        return -ENOSPC;
    }
    c->src_live = (unsigned)live;
    c->src_replay = (unsigned)replay;
    ls_ingest_counters_open(local, "cluster", &c->counters);

    char name[128];
    snprintf(name, sizeof(name), "lastseen %s", c->node);
    ls_nats_opts no = {.urls = cfg->cluster_nats,
                       .name = name,
                       .ping_ms = PING_MS,
                       .wait_ms = WAIT_MS,
                       .changed = wake_cb,
                       .async_error = async_error_cb,
                       .ud = c};
    if ((rc = ls_nats_open(&c->nats, &no)) < 0 ||
        (rc = ls_publisher_open(&c->pub, c->nats, c->partitions, WAIT_MS)) < 0) {
        free_cluster(c);
        return rc;
    }
    ls_consumers_opts co = {.nats = c->nats,
                            .in = local,
                            .counters = &c->counters,
                            .partitions = c->partitions,
                            .src_live = c->src_live,
                            .src_replay = c->src_replay,
                            .heartbeat_ms = HEARTBEAT_MS,
                            .wait_ms = WAIT_MS,
                            .caught_up = wake_cb,
                            .ud = c};
    if ((rc = ls_consumers_open(&c->cons, &co)) < 0) {
        free_cluster(c);
        return rc;
    }
    atomic_store_explicit(&c->cons_ready, 1, memory_order_release);
    ls_stats_port sp = {.key = "cluster", .json = stats_json, .prom = stats_prom, .ud = c};
    ls_ingest_stats_register(local, &sp);
    ls_ingest_forwarder fw = {.forward = ls_publisher_forward, .fud = c->pub};
    ls_ingest_forward_set(inputs, &fw);

    c->running = 1;
    if ((rc = pthread_create(&c->thread, NULL, node_main, c)) != 0) {
        ls_ingest_forward_set(inputs, NULL);
        c->running = 0;
        free_cluster(c);
        return -rc;
    }
    pthread_setname_np(c->thread, "ls-cluster");
    ls_info("cluster",
            "node %s: %u partitions, NATS %s, a takeover replays the last %lld ms of input",
            c->node, c->partitions, cfg->cluster_nats, (long long)c->lookback_ms);
    *out = c;
    return 0;
}

void ls_cluster_quiesce(ls_cluster *c)
{
    if (c) ls_publisher_quiesce(c->pub);
}

void ls_cluster_stop(ls_cluster *c)
{
    if (!c) return;
    ls_consumers_abort(c->cons); /* the node thread stops making consumers */
    ls_turn_stop(&c->turn);
    pthread_join(c->thread, NULL);
    /* Nothing this node still holds may fire once its leases are gone. */
    set_source(c, &c->live_up, c->src_live, 0);
    set_source(c, &c->replay_up, c->src_replay, 0);
    atomic_store_explicit(&c->leaving, 1, memory_order_release);
    ls_leases_stop(c->leases); /* hands every partition over */
    c->leases = NULL;
    ls_ingest_forward_set(c->inputs, NULL);
    free_cluster(c);
    nats_CloseAndWait(1000);
}
