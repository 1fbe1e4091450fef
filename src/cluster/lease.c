/*
 * lease.c - the lease thread (ls-lease).
 *
 * One turn every LEASE_TICK_MS (or less for short leases):
 *   1. the member bucket's changes are read from a watcher: a put names a
 *      live member until a TTL after the server stored it, a delete (a
 *      node leaving cleanly) removes it at once.  Watchers do not see a
 *      key expire (nats-server 2.9), so expiry is this clock's business.
 *   2. this node's member key is written every TTL/4;
 *   3. each partition's lease takes its next step (lease_sm.h): drop,
 *      release, create, renew or read back.  A partition is "assigned"
 *      when rendezvous hashing over the live members picks this node,
 *      and not before the first member view has settled (the watcher's
 *      initial values are in and SETTLE has passed since this node's
 *      member key was written), so that nodes started together do not
 *      grab everything and hand most of it back a second later.
 * Every KV call waits at most `wait` (TTL/10, 2 s at most).  When one gets
 * no answer, or no server takes it, the rest of the turn's writes are left
 * for the next turn: the servers are busy (a leader election takes 4-9 s
 * on nats-server 2.9) and a queue of calls each waiting out its timeout
 * would delay the drops, which this thread checks every turn whatever
 * happens to the network.
 *
 * The lease's value is "<node> <instance>", the instance a random number
 * drawn at start, so that a restarted node never adopts a lease its
 * previous process wrote (its age would be unknown).
 *
 * Cost at rest: one watcher message per member per TTL/4, one KV write per
 * held partition per TTL/4, and a walk of the partitions' small states per
 * turn.  lost() runs on this thread and may take as long as removing the
 * partition's devices takes (node.c); the renewals wait meanwhile, which
 * the TTL/4 period leaves ample room for.
 */
#include "cluster/lease.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "cluster/kv.h"
#include "cluster/lease_sm.h"
#include "cluster/turn.h"

#define LEASE_TICK_MS 250
#define SETTLE_MS 2000

typedef struct member {
    char name[LS_LEASE_NODE_MAX + 1];
    int64_t put_wall; /* wall ms the server stored its last put */
} member;

struct ls_leases {
    ls_leases_opts o;
    ls_lease_cbs cb;
    char node[LS_LEASE_NODE_MAX + 1];
    char http[256];
    char value[LS_KV_VALUE_MAX]; /* this node's lease value */
    size_t value_len;
    char instance[17];
    ls_lease_timing t;
    int64_t wait;
    ls_lease *lease; /* partitions of them */
    pthread_t thread;
    int running;
    ls_turn turn; /* its mu also guards the view below */
    /* The view (under turn.mu): live members and held partitions, for stats. */
    member members[LS_LEASE_MEMBERS_MAX];
    unsigned nmembers;
    uint8_t *held;
    unsigned owned;
    _Atomic uint64_t n_acquired, n_renewed, n_refused, n_dropped, n_released, n_unknown;
    /* The thread's own. */
    jsCtx *js;
    kvStore *members_kv;
    kvWatcher *watcher;
    int initial_done;
    int64_t member_at, settled_at;
    int settled;
};

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- members ----------------------------------------------------------------- */

static void member_put(ls_leases *l, const char *name, size_t len, int64_t put_wall)
{
    if (len > LS_LEASE_NODE_MAX) return;
    pthread_mutex_lock(&l->turn.mu);
    unsigned i;
    for (i = 0; i < l->nmembers; i++)
        if (strlen(l->members[i].name) == len && memcmp(l->members[i].name, name, len) == 0) break;
    if (i == l->nmembers) {
        if (l->nmembers == LS_LEASE_MEMBERS_MAX) {
            pthread_mutex_unlock(&l->turn.mu);
            ls_warn("cluster", "more than %d members: %.*s is ignored", LS_LEASE_MEMBERS_MAX,
                    (int)len, name);
            return;
        }
        memcpy(l->members[i].name, name, len);
        l->members[i].name[len] = '\0';
        l->nmembers++;
        ls_info("cluster", "member %.*s is here", (int)len, name);
    }
    l->members[i].put_wall = put_wall;
    pthread_mutex_unlock(&l->turn.mu);
}

static void member_gone(ls_leases *l, unsigned i, const char *why)
{
    ls_info("cluster", "member %s left (%s)", l->members[i].name, why);
    l->members[i] = l->members[--l->nmembers];
}

static void member_del(ls_leases *l, const char *name, size_t len)
{
    pthread_mutex_lock(&l->turn.mu);
    for (unsigned i = 0; i < l->nmembers; i++)
        if (strlen(l->members[i].name) == len && memcmp(l->members[i].name, name, len) == 0) {
            member_gone(l, i, "its key was deleted");
            break;
        }
    pthread_mutex_unlock(&l->turn.mu);
}

/* Warns about a member whose partitions differ from ours (its value's "partitions"). */
static void member_check(ls_leases *l, const char *key, const char *v, int n)
{
    json_error_t err;
    json_t *j = json_loadb(v, n > 0 ? (size_t)n : 0, 0, &err);
    json_int_t p = json_integer_value(json_object_get(j, "partitions"));
    if (j && p && p != (json_int_t)l->o.partitions)
        ls_error("cluster",
                 "member %s runs with cluster.partitions = %lld, this node with %u: every node "
                 "must use the same",
                 key, (long long)p, l->o.partitions);
    json_decref(j);
}

/* Reads what the watcher has (without waiting); drops members a TTL old. */
static void members_refresh(ls_leases *l, int64_t now_wall)
{
    if (!l->watcher && l->members_kv &&
        kvStore_WatchAll(&l->watcher, l->members_kv, NULL) != NATS_OK)
        l->watcher = NULL;
    for (int k = 0; l->watcher && k < 1000; k++) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, l->watcher, 1);
        if (s != NATS_OK) break;
        if (!e) { /* the initial values are all in */
            l->initial_done = 1;
            continue;
        }
        const char *key = kvEntry_Key(e);
        size_t len = strlen(key);
        if (kvEntry_Operation(e) == kvOp_Put) {
            if (strcmp(key, l->node) != 0)
                member_check(l, key, kvEntry_ValueString(e), kvEntry_ValueLen(e));
            member_put(l, key, len, kvEntry_Created(e) / 1000000);
        } else {
            member_del(l, key, len);
        }
        kvEntry_Destroy(e);
    }
    pthread_mutex_lock(&l->turn.mu);
    for (unsigned i = 0; i < l->nmembers;) {
        if (strcmp(l->members[i].name, l->node) != 0 &&
            now_wall - l->members[i].put_wall >= l->t.ttl)
            member_gone(l, i, "its key expired");
        else
            i++;
    }
    pthread_mutex_unlock(&l->turn.mu);
}

static void member_value(ls_leases *l, char *buf, size_t len)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "node", l->node, "instance", l->instance, "http",
                          l->http, "partitions", (json_int_t)l->o.partitions);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    snprintf(buf, len, "%s", s ? s : "{}");
    free(s);
    json_decref(j);
}

/* Writes this node's member key when due. */
static void member_renew(ls_leases *l, int64_t now)
{
    if (now < l->member_at) return;
    char v[512];
    member_value(l, v, sizeof(v));
    ls_kv_key k = {
        .js = l->js, .bucket = LS_NATS_BUCKET_MEMBERS, .key = l->node, .wait_ms = l->wait};
    if (ls_kv_put(&k, v, strlen(v)) == LS_LEASE_OK) {
        if (!l->settled_at) l->settled_at = now + SETTLE_MS;
        l->member_at = now + l->t.renew;
    } else {
        l->member_at = now + l->t.retry;
    }
}

/* ---- partitions ---------------------------------------------------------------- */

/* The live members' names, this node always among them. */
static size_t live_names(ls_leases *l, const char **names, char (*buf)[LS_LEASE_NODE_MAX + 1])
{
    size_t n = 0;
    int self = 0;
    pthread_mutex_lock(&l->turn.mu);
    for (unsigned i = 0; i < l->nmembers; i++) {
        memcpy(buf[n], l->members[i].name, sizeof(buf[n]));
        if (strcmp(buf[n], l->node) == 0) self = 1;
        names[n] = buf[n];
        n++;
    }
    pthread_mutex_unlock(&l->turn.mu);
    if (!self && n < LS_LEASE_MEMBERS_MAX) {
        snprintf(buf[n], sizeof(buf[n]), "%s", l->node);
        names[n] = buf[n];
        n++;
    }
    return n;
}

static void set_held(ls_leases *l, unsigned p, int held)
{
    pthread_mutex_lock(&l->turn.mu);
    if (l->held[p] != held) l->owned += held ? 1 : (unsigned)-1;
    l->held[p] = (uint8_t)held;
    pthread_mutex_unlock(&l->turn.mu);
}

static void acquired(ls_leases *l, unsigned p)
{
    count(&l->n_acquired);
    set_held(l, p, 1);
    ls_debug("cluster", "partition %u acquired at revision %" PRIu64, p, l->lease[p].rev);
    l->cb.acquired(l->cb.ud, p, l->lease[p].rev);
}

static void lost(ls_leases *l, unsigned p, const char *why)
{
    ls_info("cluster", "partition %u lost: %s", p, why);
    set_held(l, p, 0);
    l->cb.lost(l->cb.ud, p);
}

/* One step of partition p; returns 1 when a KV call got no answer or no taker. */
static int step(ls_leases *l, unsigned p, int assigned, int stalled)
{
    ls_lease *ls = &l->lease[p];
    int64_t now = ls_clock_now().mono;
    ls_lease_do act = ls_lease_next(&l->t, ls, assigned, now);
    char key[16];
    snprintf(key, sizeof(key), "p%u", p);
    ls_kv_key k = {.js = l->js, .bucket = LS_NATS_BUCKET_LEASE, .key = key, .wait_ms = l->wait};
    uint64_t rev = 0;
    ls_lease_outcome o;
    int r;
    switch (act) {
    case LS_LEASE_DO_NOTHING:
        return 0;
    case LS_LEASE_DO_DROP:
        count(&l->n_dropped);
        lost(l, p, "no renewal confirmed within 0.8 lease_ttl");
        ls_lease_freed(&l->t, ls, now);
        return 0;
    case LS_LEASE_DO_RELEASE:
        count(&l->n_released);
        lost(l, p, "handed over");
        if (!stalled) ls_kv_delete(&k, ls->rev); /* else it expires */
        ls_lease_freed(&l->t, ls, ls_clock_now().mono);
        return 0;
    case LS_LEASE_DO_READ: {
        if (stalled) return 0;
        int exists, known;
        char v[LS_KV_VALUE_MAX];
        size_t n;
        known = ls_kv_read(&k, &exists, &rev, v, &n);
        int mine = exists && n == l->value_len && memcmp(v, l->value, n) == 0;
        r = ls_lease_read_done(&l->t, ls, known, exists, mine, rev, ls_clock_now().mono);
        if (r == LS_LEASE_ACQUIRED) acquired(l, p);
        if (r == LS_LEASE_LOST) {
            count(&l->n_refused);
            lost(l, p, "another node holds it");
        }
        return !known;
    }
    case LS_LEASE_DO_CREATE:
    case LS_LEASE_DO_UPDATE:
        if (stalled) return 0;
        o = act == LS_LEASE_DO_CREATE ? ls_kv_create(&k, l->value, l->value_len, &rev)
                                      : ls_kv_update(&k, l->value, l->value_len, ls->rev, &rev);
        if (o == LS_LEASE_UNKNOWN) count(&l->n_unknown);
        if (o == LS_LEASE_OK && act == LS_LEASE_DO_UPDATE) count(&l->n_renewed);
        r = ls_lease_done(&l->t, ls, act, o, rev, now, ls_clock_now().mono);
        if (r == LS_LEASE_ACQUIRED) acquired(l, p);
        if (r == LS_LEASE_LOST) {
            count(&l->n_refused);
            lost(l, p, "its renewal was refused");
        }
        return o == LS_LEASE_UNKNOWN || o == LS_LEASE_FAILED;
    }
    return 0;
}

/* Binds the member bucket (once the servers answer). */
static void bind(ls_leases *l)
{
    if (l->members_kv) return;
    if (js_KeyValue(&l->members_kv, l->js, LS_NATS_BUCKET_MEMBERS) != NATS_OK) l->members_kv = NULL;
}

static void turn(ls_leases *l)
{
    ls_now now = ls_clock_now();
    bind(l);
    members_refresh(l, now.wall);
    member_renew(l, now.mono);
    if (!l->settled && l->initial_done && l->settled_at && now.mono >= l->settled_at) {
        l->settled = 1;
        ls_info("cluster", "member view settled: taking partitions");
    }
    const char *names[LS_LEASE_MEMBERS_MAX];
    char buf[LS_LEASE_MEMBERS_MAX][LS_LEASE_NODE_MAX + 1];
    size_t n = live_names(l, names, buf);
    int stalled = 0;
    for (unsigned p = 0; p < l->o.partitions; p++) {
        int owner = ls_rendezvous_owner(names, n, p);
        int assigned = l->settled && owner >= 0 && strcmp(names[owner], l->node) == 0;
        if (step(l, p, assigned, stalled)) stalled = 1;
    }
}

/*
 * Stopping: every held lease handed over, the member key deleted, so that
 * the others take the partitions at once rather than a TTL later.  A stop
 * must be quick whatever the servers do: without a connection nothing is
 * deleted (the keys expire), each delete waits LEAVE_WAIT_MS at most, and
 * after one without an answer the rest are left to expire.
 */
#define LEAVE_WAIT_MS 500
static void leave(ls_leases *l)
{
    int net = ls_nats_connected(l->o.nats);
    for (unsigned p = 0; p < l->o.partitions; p++) {
        ls_lease *ls = &l->lease[p];
        if (ls->state != LS_LEASE_HELD) continue;
        lost(l, p, "stopping");
        char key[16];
        snprintf(key, sizeof(key), "p%u", p);
        ls_kv_key k = {
            .js = l->js, .bucket = LS_NATS_BUCKET_LEASE, .key = key, .wait_ms = LEAVE_WAIT_MS};
        if (net && ls_kv_delete(&k, ls->rev) == LS_LEASE_UNKNOWN) net = 0;
        count(&l->n_released);
        ls_lease_freed(&l->t, ls, 0);
    }
    if (!net) return;
    ls_kv_key m = {
        .js = l->js, .bucket = LS_NATS_BUCKET_MEMBERS, .key = l->node, .wait_ms = LEAVE_WAIT_MS};
    ls_kv_delete_any(&m);
}

static void *lease_main(void *arg)
{
    ls_leases *l = arg;
    int64_t tick = l->t.renew / 4 < LEASE_TICK_MS ? l->t.renew / 4 : LEASE_TICK_MS;
    do
        turn(l);
    while (!ls_turn_wait(&l->turn, tick));
    leave(l);
    kvWatcher_Destroy(l->watcher);
    kvStore_Destroy(l->members_kv);
    jsCtx_Destroy(l->js);
    nats_ReleaseThreadMemory();
    return NULL;
}

int ls_leases_start(ls_leases **out, const ls_leases_opts *o, const ls_lease_cbs *cb)
{
    *out = NULL;
    ls_leases *l = calloc(1, sizeof(*l));
    if (!l) return -ENOMEM;
    l->lease = calloc(o->partitions, sizeof(*l->lease));
    l->held = calloc(o->partitions, 1);
    if (!l->lease || !l->held) {
        free(l->lease);
        free(l->held);
        free(l);
        return -ENOMEM;
    }
    l->o = *o;
    l->cb = *cb;
    snprintf(l->node, sizeof(l->node), "%s", o->node);
    snprintf(l->http, sizeof(l->http), "%s", o->http);
    l->o.node = l->node;
    l->o.http = l->http;
    l->t = ls_lease_timing_of(o->ttl);
    l->wait = o->ttl / 10 < 2000 ? o->ttl / 10 : 2000;
    uint64_t r = (uint64_t)ls_clock_mono_ns() ^ ((uint64_t)ls_clock_now().wall << 20) ^
                 (uint64_t)(uintptr_t)l;
    snprintf(l->instance, sizeof(l->instance), "%016" PRIx64,
             (uint64_t)(r * 0x9e3779b97f4a7c15ull));
    int k = snprintf(l->value, sizeof(l->value), "%s %s", l->node, l->instance);
    l->value_len = k > 0 ? (size_t)k : 0;
    ls_turn_init(&l->turn);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = l->wait;
    natsStatus s = natsConnection_JetStream(&l->js, ls_nats_conn(o->nats), &jo);
    int rc = s == NATS_OK ? pthread_create(&l->thread, NULL, lease_main, l) : ENOMEM;
    if (rc) {
        jsCtx_Destroy(l->js);
        ls_turn_destroy(&l->turn);
        free(l->lease);
        free(l->held);
        free(l);
        return -rc;
    }
    pthread_setname_np(l->thread, "ls-lease");
    l->running = 1;
    *out = l;
    return 0;
}

void ls_leases_stop(ls_leases *l)
{
    if (!l) return;
    if (l->running) {
        ls_turn_stop(&l->turn);
        pthread_join(l->thread, NULL);
    }
    ls_turn_destroy(&l->turn);
    free(l->lease);
    free(l->held);
    free(l);
}

void ls_leases_stats_get(ls_leases *l, ls_leases_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->acquired = atomic_load_explicit(&l->n_acquired, memory_order_relaxed);
    out->renewed = atomic_load_explicit(&l->n_renewed, memory_order_relaxed);
    out->refused = atomic_load_explicit(&l->n_refused, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&l->n_dropped, memory_order_relaxed);
    out->released = atomic_load_explicit(&l->n_released, memory_order_relaxed);
    out->unknown = atomic_load_explicit(&l->n_unknown, memory_order_relaxed);
    pthread_mutex_lock(&l->turn.mu);
    out->owned = l->owned;
    int self = 0;
    for (unsigned i = 0; i < l->nmembers; i++) {
        snprintf(out->members[out->nmembers++], sizeof(out->members[0]), "%s", l->members[i].name);
        if (strcmp(l->members[i].name, l->node) == 0) self = 1;
    }
    if (!self && out->nmembers < LS_LEASE_MEMBERS_MAX)
        snprintf(out->members[out->nmembers++], sizeof(out->members[0]), "%s", l->node);
    for (unsigned p = 0; p < l->o.partitions && p < sizeof(out->held); p++)
        out->held[p] = l->held[p];
    pthread_mutex_unlock(&l->turn.mu);
}
