/*
 * lease.h - the lease thread: this node's member key, and the leases of
 * the partitions rendezvous hashing gives it.  See lease.c, lease_sm.h
 * and docs/cluster.md, "Ownership".
 */
#ifndef LS_LEASE_H
#define LS_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/nats.h"

#define LS_LEASE_MEMBERS_MAX 64
#define LS_LEASE_NODE_MAX 64

typedef struct ls_leases ls_leases;

/* What the node is told, always on the lease thread. */
typedef struct ls_lease_cbs {
    /* Partition p is this node's from now on, at revision rev (the
     * fencing token).  Must return quickly: the lease thread renews
     * every lease, so slow work (subscribing) belongs to another thread. */
    void (*acquired)(void *ud, unsigned p, uint64_t rev);
    /* p is not this node's any more (renewal refused, lease too old to
     * count on, or handed over).  Returns once nothing of p is applied
     * any more; a handed-over lease is deleted only after it returns. */
    void (*lost)(void *ud, unsigned p);
    void *ud;
} ls_lease_cbs;

typedef struct ls_leases_opts {
    ls_nats *nats;
    const char *node;    /* this node's name: one token, unique in the cluster */
    const char *http;    /* its HTTP address, in its member value */
    unsigned partitions; /* cluster.partitions */
    int64_t ttl;         /* ms: the lease bucket's max age */
} ls_leases_opts;

/* Counters and the current view (ls_leases_stats()). */
typedef struct ls_leases_stats {
    uint64_t acquired, renewed, refused, dropped, released, unknown;
    unsigned owned;    /* partitions held now */
    unsigned nmembers; /* live members, this node included */
    char members[LS_LEASE_MEMBERS_MAX][LS_LEASE_NODE_MAX + 1];
    uint8_t held[1024]; /* held[p]: 1 while this node holds p */
} ls_leases_stats;

/* Starts the lease thread.  0, or -ENOMEM / -errno of pthread_create. */
int ls_leases_start(ls_leases **out, const ls_leases_opts *o, const ls_lease_cbs *cb);

/*
 * Stops the thread: every lease held is handed over (lost(), then the key
 * deleted) and the member key deleted, each with the usual bounded wait.
 * NULL is fine.
 */
void ls_leases_stop(ls_leases *l);

/* A copy of the counters and of the view; any thread. */
void ls_leases_stats_get(ls_leases *l, ls_leases_stats *out);

#endif
