/*
 * sparkplug.c - Eclipse Sparkplug B presence.
 *
 * Topics are spBv1.0/{group}/{type}/{node}[/{device}].  lastseen maps:
 *
 *   NBIRTH  -> node {group}/{node} online      NDEATH -> offline (see bdSeq)
 *   DBIRTH  -> device {group}/{node}/{device}  DDEATH -> offline
 *   NDATA, DDATA -> an activity of the node / device
 *   NCMD, DCMD, STATE -> ignored (they are not from the device)
 *
 * bdSeq.  A node's NDEATH is its Last Will, registered when it connects,
 * and carries the same "bdSeq" metric as the NBIRTH it sends after that
 * connect.  If a node reconnects before the broker notices the old
 * connection died, the old Will (old bdSeq) can arrive after the new
 * NBIRTH: that NDEATH is stale and is ignored, otherwise a live node would
 * be marked gone.  So each node remembers the bdSeq of its current NBIRTH;
 * an NDEATH with a different one is counted and dropped.  An NDEATH without
 * the metric, or for a node whose NBIRTH lastseen never saw, is taken at
 * its word.
 *
 * A valid NDEATH also takes offline every device the node gave birth to
 * (Sparkplug devices have no Will of their own): each node keeps the ids
 * of its devices born and not yet dead.
 *
 * Payloads.  Only births and deaths are decoded (protobuf-c, from
 * sparkplug_b.proto, which declares just the fields read); NDATA/DDATA are
 * activity whatever they hold, so the hot path decodes nothing.  A birth
 * or death that does not decode, or is larger than LS_SP_PAYLOAD_MAX, is
 * counted and skipped.
 *
 * Memory.  Nodes live in a chained hash table (xxh3 of "group/node"),
 * doubled when its load passes 1.  Caps: LS_SP_NODES_MAX nodes and
 * LS_SP_NODE_DEVICES_MAX devices per node; past them births still work
 * but the node or device is not remembered (counted as `untracked`).
 * Single-threaded: the MQTT thread owns it; stats are atomic.
 */
#include "in/sparkplug.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sparkplug_b.pb-c.h"

#define ID_MAX 1024 /* group/node/device, each a topic level; longer ids are refused later */
#define COUNT(f) atomic_fetch_add_explicit(&(f), 1, memory_order_relaxed)

typedef struct sp_node {
    struct sp_node *next;
    uint64_t hash;
    uint64_t bdseq;
    uint8_t has_bdseq;
    char **devices; /* full ids, malloc'd */
    uint32_t ndev, capdev;
    size_t key_len;
    char key[]; /* "group/node" */
} sp_node;

/* ls_sparkplug_stats, field for field, as relaxed atomic counters. */
typedef struct sp_counters {
    _Atomic uint64_t births, deaths, stale_deaths, bad_payloads, bad_topics, ignored, untracked;
} sp_counters;
_Static_assert(sizeof(sp_counters) == sizeof(ls_sparkplug_stats) &&
                   sizeof(sp_counters) % sizeof(_Atomic uint64_t) == 0,
               "sp_counters mirrors ls_sparkplug_stats");

struct ls_sparkplug {
    sp_node **buckets;
    size_t mask; /* buckets - 1 */
    size_t count;
    sp_counters st;
};

int ls_sparkplug_new(ls_sparkplug **out)
{
    ls_sparkplug *sp = calloc(1, sizeof(*sp));
    if (!sp || !(sp->buckets = calloc(64, sizeof(sp_node *)))) {
        free(sp);
        return -1;
    }
    sp->mask = 63;
    *out = sp;
    return 0;
}

static void node_free(sp_node *n)
{
    for (uint32_t i = 0; i < n->ndev; i++)
        free(n->devices[i]);
    free(n->devices);
    free(n);
}

void ls_sparkplug_free(ls_sparkplug *sp)
{
    if (!sp) return;
    for (size_t i = 0; i <= sp->mask; i++) {
        sp_node *n = sp->buckets[i];
        while (n) {
            sp_node *next = n->next;
            node_free(n);
            n = next;
        }
    }
    free(sp->buckets);
    free(sp);
}

void ls_sparkplug_get_stats(const ls_sparkplug *sp, ls_sparkplug_stats *out)
{
    const _Atomic uint64_t *src = (const _Atomic uint64_t *)&sp->st;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
}

static void grow(ls_sparkplug *sp)
{
    size_t nb = (sp->mask + 1) * 2;
    sp_node **b = calloc(nb, sizeof(*b));
    if (!b) return; /* keep the longer chains */
    for (size_t i = 0; i <= sp->mask; i++) {
        sp_node *n = sp->buckets[i];
        while (n) {
            sp_node *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(sp->buckets);
    sp->buckets = b;
    sp->mask = nb - 1;
}

/* Finds the node of key; creates it if `create`.  NULL if absent or past the cap. */
static sp_node *node_get(ls_sparkplug *sp, const char *key, size_t len, int create)
{
    uint64_t h = XXH3_64bits(key, len);
    for (sp_node *n = sp->buckets[h & sp->mask]; n; n = n->next)
        if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0) return n;
    if (!create) return NULL;
    sp_node *n;
    if (sp->count >= LS_SP_NODES_MAX || !(n = calloc(1, sizeof(*n) + len + 1))) {
        COUNT(sp->st.untracked);
        return NULL;
    }
    n->hash = h;
    n->key_len = len;
    memcpy(n->key, key, len);
    n->next = sp->buckets[h & sp->mask];
    sp->buckets[h & sp->mask] = n;
    if (++sp->count > sp->mask + 1) grow(sp);
    return n;
}

static int device_index(const sp_node *n, const char *id, size_t len)
{
    for (uint32_t i = 0; i < n->ndev; i++)
        if (strlen(n->devices[i]) == len && memcmp(n->devices[i], id, len) == 0) return (int)i;
    return -1;
}

static void device_add(ls_sparkplug *sp, sp_node *n, const char *id, size_t len)
{
    if (device_index(n, id, len) >= 0) return;
    if (n->ndev == n->capdev) {
        uint32_t cap = n->capdev ? n->capdev * 2 : 8;
        char **nd;
        if (cap > LS_SP_NODE_DEVICES_MAX || !(nd = realloc(n->devices, cap * sizeof(*nd)))) {
            COUNT(sp->st.untracked);
            return;
        }
        n->devices = nd;
        n->capdev = cap;
    }
    if (!(n->devices[n->ndev] = strndup(id, len))) {
        COUNT(sp->st.untracked);
        return;
    }
    n->ndev++;
}

static void device_remove(sp_node *n, const char *id, size_t len)
{
    int i = device_index(n, id, len);
    if (i < 0) return;
    free(n->devices[i]);
    n->devices[i] = n->devices[--n->ndev];
}

int ls_sparkplug_bdseq(const void *payload, size_t plen, uint64_t *out)
{
    if (plen > LS_SP_PAYLOAD_MAX) return -1;
    Lastseen__Sparkplug__Payload *p = lastseen__sparkplug__payload__unpack(NULL, plen, payload);
    if (!p) return -1;
    int found = 0;
    for (size_t i = 0; i < p->n_metrics && !found; i++) {
        const Lastseen__Sparkplug__Payload__Metric *m = p->metrics[i];
        if (!m->name || strcmp(m->name, "bdSeq") != 0) continue;
        if (m->has_long_value)
            *out = m->long_value, found = 1;
        else if (m->has_int_value)
            *out = m->int_value, found = 1;
    }
    lastseen__sparkplug__payload__free_unpacked(p, NULL);
    return found;
}

/* One topic level: [*p, next '/' or end). */
typedef struct level {
    const char *p;
    size_t n;
} level;

static size_t split(const char *t, size_t len, level *lv, size_t max)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && t[i] != '/') continue;
        if (k == max) return max + 1;
        lv[k].p = t + start;
        lv[k].n = i - start;
        k++;
        start = i + 1;
    }
    return k;
}

static int is(const level *l, const char *word)
{
    return l->n == strlen(word) && memcmp(l->p, word, l->n) == 0;
}

/* Writes "a/b[/c]" into buf (room for ID_MAX); returns its length, 0 if too long. */
static size_t join(char *buf, const level *a, const level *b, const level *c)
{
    size_t n = a->n + 1 + b->n + (c ? 1 + c->n : 0);
    if (n > ID_MAX) return 0;
    memcpy(buf, a->p, a->n);
    buf[a->n] = '/';
    memcpy(buf + a->n + 1, b->p, b->n);
    if (c) {
        buf[a->n + 1 + b->n] = '/';
        memcpy(buf + a->n + 2 + b->n, c->p, c->n);
    }
    buf[n] = '\0';
    return n;
}

int ls_sparkplug_message(ls_sparkplug *sp, const char *topic, size_t tlen, const void *payload,
                         size_t plen, int retained, ls_sp_op_cb cb, void *ud)
{
    level lv[6];
    char node_id[ID_MAX + 1], dev_id[ID_MAX + 1];
    size_t k = split(topic + LS_SP_PREFIX_LEN, tlen - LS_SP_PREFIX_LEN, lv, 5);
    uint64_t bdseq = 0;
    int has;

    if (k >= 2 && is(&lv[0], "STATE")) goto ignored; /* a host application's state */
    if (k < 3) goto bad_topic;
    if (is(&lv[1], "NCMD") || is(&lv[1], "DCMD")) goto ignored; /* to the device, not from it */
    int device = lv[1].n > 0 && lv[1].p[0] == 'D';
    int data = is(&lv[1], "NDATA") || is(&lv[1], "DDATA");
    int birth = is(&lv[1], "NBIRTH") || is(&lv[1], "DBIRTH");
    int death = is(&lv[1], "NDEATH") || is(&lv[1], "DDEATH");
    if (!data && !birth && !death) goto ignored;
    if (k != (size_t)(device ? 4 : 3)) goto bad_topic;
    size_t nlen = join(node_id, &lv[0], &lv[2], NULL);
    size_t dlen = device ? join(dev_id, &lv[0], &lv[2], &lv[3]) : 0;
    if (nlen == 0 || (device && dlen == 0)) goto bad_topic;

    if (data) {
        cb(ud, LS_SP_ACTIVITY, device ? dev_id : node_id, device ? dlen : nlen, retained);
        return 1;
    }
    if ((has = ls_sparkplug_bdseq(payload, plen, &bdseq)) < 0) {
        COUNT(sp->st.bad_payloads);
        return -1;
    }
    COUNT(*(birth ? &sp->st.births : &sp->st.deaths));

    if (device) {
        sp_node *n = node_get(sp, node_id, nlen, birth);
        if (birth && n) device_add(sp, n, dev_id, dlen);
        if (!birth && n) device_remove(n, dev_id, dlen);
        cb(ud, birth ? LS_SP_ONLINE : LS_SP_OFFLINE, dev_id, dlen, retained);
        return 1;
    }
    if (birth) {
        sp_node *n = node_get(sp, node_id, nlen, 1);
        if (n) {
            n->has_bdseq = (uint8_t)has;
            n->bdseq = bdseq;
        }
        cb(ud, LS_SP_ONLINE, node_id, nlen, retained);
        return 1;
    }
    sp_node *n = node_get(sp, node_id, nlen, 0);
    if (n && n->has_bdseq && has && bdseq != n->bdseq) {
        COUNT(sp->st.stale_deaths);
        return -1;
    }
    int ops = 0;
    if (n) {
        for (uint32_t i = 0; i < n->ndev; i++, ops++) {
            cb(ud, LS_SP_OFFLINE, n->devices[i], strlen(n->devices[i]), retained);
            free(n->devices[i]);
        }
        n->ndev = 0;
    }
    cb(ud, LS_SP_OFFLINE, node_id, nlen, retained);
    return ops + 1;

bad_topic:
    COUNT(sp->st.bad_topics);
    return -1;
ignored:
    COUNT(sp->st.ignored);
    return -1;
}
