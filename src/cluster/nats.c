/*
 * nats.c - the NATS connection and the provisioning of the cluster's
 * streams and buckets.
 *
 * One connection per node, made by cnats in the background
 * (RetryOnFailedConnect): starting a node never waits for NATS, and until
 * it is connected and provisioned the node owns nothing and its inputs
 * answer that the stream cannot take their messages.  Reconnects go on
 * forever, 250 ms apart with jitter; pings every `ping_ms` notice a dead
 * server (one that stopped without closing its sockets); requests pending
 * at a disconnect fail at once rather than at their timeout.
 *
 * Subscriptions use cnats's global message delivery: one library thread
 * (nats_SetMessageDeliveryPoolSize, 1 by default) delivers the messages
 * of every partition's consumer, instead of one thread per subscription,
 * which would be up to cluster.partitions threads on one node.  The
 * JetStream publish acknowledgements are on a subscription of their own
 * that cnats keeps out of that pool, so a busy consumer never delays
 * them.
 *
 * Provisioning is idempotent and cheap to repeat: each stream is looked up
 * first and created only if it is missing (two nodes creating it at once
 * is fine: the server takes an identical create as a no-op, and the loser
 * of a race with a different configuration finds the winner's).  Replicas
 * are min(3, servers known), counted when the node provisions: a cluster
 * of one server gets R1 streams.  An existing stream is never changed
 * behind the operator's back; a difference that matters (the lease
 * bucket's TTL) is logged, and the bucket's own value is used.
 */
#include "cluster/nats.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

#define MAX_URLS 32

struct ls_nats {
    natsConnection *nc;
    natsOptions *opts;
    jsCtx *js;
    ls_nats_opts o;
    _Atomic int closed; /* the closed callback ran: no callback comes after it */
};

const char *ls_nats_error(natsStatus s)
{
    const char *t = nats_GetLastError(NULL);
    return t && t[0] ? t : natsStatus_GetText(s);
}

static void changed_cb(natsConnection *nc, void *closure)
{
    ls_nats *n = closure;
    (void)nc;
    if (n->o.changed) n->o.changed(n->o.ud);
}

/* The connection's last callback: n may be freed once it has returned. */
static void closed_cb(natsConnection *nc, void *closure)
{
    ls_nats *n = closure;
    changed_cb(nc, closure);
    atomic_store_explicit(&n->closed, 1, memory_order_release);
}

static void error_cb(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    ls_nats *n = closure;
    (void)nc;
    if (n->o.async_error) n->o.async_error(n->o.ud, sub, err);
}

/* Splits urls at commas into trimmed copies; the count, or -EINVAL. */
static int split_urls(const char *urls, char **out, int max)
{
    int k = 0;
    const char *p = urls;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *a = p, *b = comma ? comma : p + strlen(p);
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a) {
            if (k == max) return -EINVAL;
            out[k] = strndup(a, (size_t)(b - a));
            if (!out[k]) return -ENOMEM;
            k++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return k ? k : -EINVAL;
}

int ls_nats_open(ls_nats **out, const ls_nats_opts *o)
{
    *out = NULL;
    char *urls[MAX_URLS] = {0};
    int nurls = split_urls(o->urls, urls, MAX_URLS);
    if (nurls < 0) {
        for (int i = 0; i < MAX_URLS; i++)
            free(urls[i]);
        ls_error("cluster", "cluster.nats = \"%s\": expected 1..%d nats:// URLs", o->urls,
                 MAX_URLS);
        return nurls;
    }
    ls_nats *n = calloc(1, sizeof(*n));
    if (!n) {
        for (int i = 0; i < nurls; i++)
            free(urls[i]);
        return -ENOMEM;
    }
    n->o = *o;
    natsStatus s = natsOptions_Create(&n->opts);
    if (s == NATS_OK) s = natsOptions_SetServers(n->opts, (const char **)urls, nurls);
    for (int i = 0; i < nurls; i++)
        free(urls[i]);
    if (s == NATS_OK) s = natsOptions_SetName(n->opts, o->name);
    if (s == NATS_OK) s = natsOptions_SetTimeout(n->opts, 2000);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(n->opts, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(n->opts, 250);
    if (s == NATS_OK) s = natsOptions_SetReconnectJitter(n->opts, 250, 1000);
    if (s == NATS_OK) s = natsOptions_SetPingInterval(n->opts, o->ping_ms);
    if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(n->opts, 2);
    if (s == NATS_OK) s = natsOptions_SetFailRequestsOnDisconnect(n->opts, true);
    if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(n->opts, true);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(n->opts, changed_cb, n);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(n->opts, changed_cb, n);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(n->opts, closed_cb, n);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(n->opts, error_cb, n);
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(n->opts, true, changed_cb, n);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&n->nc, n->opts);
        if (s == NATS_NOT_YET_CONNECTED) s = NATS_OK; /* it goes on in the background */
    }
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = o->wait_ms;
        s = natsConnection_JetStream(&n->js, n->nc, &jo);
    }
    if (s != NATS_OK) {
        ls_error("cluster", "cannot set up the NATS connection to %s: %s", o->urls,
                 ls_nats_error(s));
        ls_nats_close(n);
        return s == NATS_NO_MEMORY ? -ENOMEM : -EINVAL;
    }
    *out = n;
    return 0;
}

/*
 * cnats calls the connection's callbacks on a thread of its own, in order,
 * the closed callback last, possibly after natsConnection_Close() and
 * _Destroy() returned: n (their closure) is freed only once that last one
 * ran (CLOSE_WAIT_MS at most; past it n is left allocated rather than
 * freed under a callback).
 */
#define CLOSE_WAIT_MS 2000
void ls_nats_close(ls_nats *n)
{
    if (!n) return;
    jsCtx_Destroy(n->js);
    int done = 1;
    if (n->nc) {
        natsConnection_Close(n->nc);
        const struct timespec step = {0, 1000000};
        for (int ms = 0; ms < CLOSE_WAIT_MS; ms++) {
            if (atomic_load_explicit(&n->closed, memory_order_acquire)) break;
            nanosleep(&step, NULL);
        }
        done = atomic_load_explicit(&n->closed, memory_order_acquire);
        natsConnection_Destroy(n->nc);
    }
    natsOptions_Destroy(n->opts);
    if (done)
        free(n);
    else
        ls_warn("cluster", "the NATS connection did not report closed in %d ms", CLOSE_WAIT_MS);
}

int ls_nats_connected(ls_nats *n)
{
    return natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED;
}

natsConnection *ls_nats_conn(ls_nats *n)
{
    return n->nc;
}

jsCtx *ls_nats_js(ls_nats *n)
{
    return n->js;
}

int ls_nats_servers(ls_nats *n)
{
    char **servers = NULL;
    int count = 0;
    if (natsConnection_GetServers(n->nc, &servers, &count) != NATS_OK) return 1;
    for (int i = 0; i < count; i++)
        free(servers[i]);
    free(servers);
    return count > 0 ? count : 1;
}

/* ---- provisioning ---------------------------------------------------------- */

/* 1 if the stream exists (its info into *si, if given), 0 if not, < 0 on a failure. */
static int stream_lookup(ls_nats *n, const char *name, jsOptions *jo, jsStreamInfo **si)
{
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&info, n->js, name, jo, &jerr);
    if (s == NATS_OK) {
        if (si)
            *si = info;
        else
            jsStreamInfo_Destroy(info);
        return 1;
    }
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return 0;
    ls_warn("cluster", "stream %s: no answer: %s", name, ls_nats_error(s));
    return s == NATS_TIMEOUT ? -ETIMEDOUT : -EIO;
}

static int provision_input(ls_nats *n, const ls_nats_layout *lay, jsOptions *jo, int replicas)
{
    jsStreamInfo *si = NULL;
    int rc = stream_lookup(n, LS_NATS_STREAM_IN, jo, &si);
    if (rc < 0) return rc;
    if (rc == 1) {
        int64_t age = si->Config->MaxAge / 1000000;
        if (age != lay->input_retention_ms)
            ls_warn("cluster",
                    "stream " LS_NATS_STREAM_IN " keeps messages %lld ms, cluster.input_retention "
                    "says %lld ms: the stream's setting stays",
                    (long long)age, (long long)lay->input_retention_ms);
        jsStreamInfo_Destroy(si);
        return 0;
    }
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    const char *subjects[] = {LS_NATS_SUBJECTS_IN};
    c.Name = LS_NATS_STREAM_IN;
    c.Description = "lastseen: every activity, online and offline of every device";
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Retention = js_LimitsPolicy;
    c.MaxAge = lay->input_retention_ms * 1000000;
    c.Storage = js_FileStorage;
    c.Replicas = replicas;
    c.Duplicates = (int64_t)LS_NATS_DUPLICATES_MS * 1000000;
    c.Discard = js_DiscardOld;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(NULL, n->js, &c, jo, &jerr);
    if (s == NATS_OK) {
        ls_info("cluster", "created stream " LS_NATS_STREAM_IN " (R%d, max age %lld ms)", replicas,
                (long long)lay->input_retention_ms);
        return 0;
    }
    if (jerr == JSStreamNameExistErr) return 0; /* another node was first */
    ls_warn("cluster", "cannot create stream " LS_NATS_STREAM_IN ": %s", ls_nats_error(s));
    return s == NATS_TIMEOUT ? -ETIMEDOUT : -EIO;
}

/* A KV bucket of max age ttl_ms; *ttl_out gets the existing bucket's. */
static int provision_bucket(ls_nats *n, const char *bucket, int64_t ttl_ms, jsOptions *jo,
                            int replicas, int64_t *ttl_out)
{
    char stream[64];
    snprintf(stream, sizeof(stream), "KV_%s", bucket);
    jsStreamInfo *si = NULL;
    int rc = stream_lookup(n, stream, jo, &si);
    if (rc < 0) return rc;
    if (rc == 1) {
        int64_t age = si->Config->MaxAge / 1000000;
        jsStreamInfo_Destroy(si);
        if (ttl_out) *ttl_out = age;
        if (age != ttl_ms)
            ls_warn("cluster",
                    "bucket %s keeps keys %lld ms, cluster.lease_ttl says %lld ms: the bucket's "
                    "setting rules",
                    bucket, (long long)age, (long long)ttl_ms);
        return 0;
    }
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = 1;
    kc.TTL = ttl_ms * 1000000;
    kc.Replicas = replicas;
    kc.StorageType = js_FileStorage;
    kvStore *kv = NULL;
    natsStatus s = js_CreateKeyValue(&kv, n->js, &kc);
    kvStore_Destroy(kv);
    if (s != NATS_OK && (rc = stream_lookup(n, stream, jo, NULL)) != 1) {
        ls_warn("cluster", "cannot create bucket %s: %s", bucket, ls_nats_error(s));
        return rc < 0 ? rc : -EIO;
    }
    if (s == NATS_OK)
        ls_info("cluster", "created bucket %s (R%d, max age %lld ms)", bucket, replicas,
                (long long)ttl_ms);
    if (ttl_out) *ttl_out = ttl_ms;
    return 0;
}

int ls_nats_provision(ls_nats *n, const ls_nats_layout *lay, int64_t *lease_ttl_ms)
{
    if (!ls_nats_connected(n)) return -ENOTCONN;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = lay->wait_ms;
    int replicas = ls_nats_servers(n);
    if (replicas > 3) replicas = 3;
    int rc;
    if ((rc = provision_input(n, lay, &jo, replicas)) < 0) return rc;
    if ((rc = provision_bucket(n, LS_NATS_BUCKET_LEASE, lay->lease_ttl_ms, &jo, replicas,
                               lease_ttl_ms)) < 0)
        return rc;
    return provision_bucket(n, LS_NATS_BUCKET_MEMBERS, lay->lease_ttl_ms, &jo, replicas, NULL);
}
