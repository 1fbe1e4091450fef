/*
 * lease_sm.h - the pure part of partition ownership: which node should own
 * a partition (rendezvous hashing), and one partition's lease as a state
 * machine driven by the results of KV operations and a clock passed in.
 * The lease thread (lease.c) does the I/O; docs/cluster.md, "Ownership",
 * is the design.  See lease_sm.c.
 *
 * The lease of partition p is the KV key p<N> of bucket LS_LEASE, whose
 * bucket max age is cluster.lease_ttl: a key nobody rewrites vanishes a
 * TTL after its last write.  A node holds p while it has written the key
 * (create, then compare-and-swap updates) with its own value, and its
 * revision is the fencing token.
 *
 * The rules, with TTL the lease time:
 *   - a free partition this node should own is taken with a create (it
 *     fails if the key exists);
 *   - a held one is renewed with an update at the last revision every
 *     TTL/4 (counted from when the last successful write was *sent*: the
 *     key lives at least TTL from then);
 *   - it is dropped the moment an update is refused, and when 0.8 TTL has
 *     passed since the last write the server confirmed was sent, whatever
 *     is happening to the network: the key may be gone by TTL, and another
 *     node may create it then;
 *   - one this node should no longer own is released (the driver stops
 *     applying it, then deletes the key at its revision);
 *   - a create or update whose outcome is unknown (a timeout: it may have
 *     been applied) is followed by a read of the key before anything else;
 *     the node adopts the revision only if the value is its own (the
 *     value names the node and its process instance), counting the lease
 *     from when the uncertain write was sent.
 *
 * Pure: no I/O, no clock reads (`now` and send times are mono ms from the
 * caller), no allocation; one lease is used by one thread.
 */
#ifndef LS_LEASE_SM_H
#define LS_LEASE_SM_H

#include <stddef.h>
#include <stdint.h>

/* ---- rendezvous hashing --------------------------------------------------- */

/* The weight of node name[0..len) for partition p: the highest weight
 * among the live nodes owns p. */
uint64_t ls_rendezvous_weight(const char *name, size_t len, unsigned p);

/* The index in names[0..n) of the node that should own p (the highest
 * weight, ties to the smaller name), or -1 when n is 0. */
int ls_rendezvous_owner(const char *const *names, size_t n, unsigned p);

/* ---- one partition's lease -------------------------------------------------- */

typedef struct ls_lease_timing {
    int64_t ttl;   /* ms: the bucket's max age */
    int64_t renew; /* ms between renewals: ttl / 4 */
    int64_t drop;  /* ms after the last confirmed write that the lease is given up: 0.8 ttl */
    int64_t retry; /* ms between create attempts for a partition held elsewhere */
} ls_lease_timing;

/* The timing of a lease of ttl ms (>= 3000). */
ls_lease_timing ls_lease_timing_of(int64_t ttl);

typedef enum ls_lease_state { LS_LEASE_FREE = 0, LS_LEASE_HELD } ls_lease_state;

typedef enum ls_lease_do {
    LS_LEASE_DO_NOTHING = 0,
    LS_LEASE_DO_CREATE,  /* create the key with this node's value */
    LS_LEASE_DO_UPDATE,  /* update it at lease.rev (renewal) */
    LS_LEASE_DO_READ,    /* read it back: an earlier create / update has an unknown outcome */
    LS_LEASE_DO_DROP,    /* stop applying the partition now: the lease may be gone */
    LS_LEASE_DO_RELEASE, /* stop applying it, then delete the key at lease.rev */
} ls_lease_do;

/* What a create or an update came to. */
typedef enum ls_lease_outcome {
    LS_LEASE_OK = 0,  /* applied: the new revision is given */
    LS_LEASE_REFUSED, /* the key exists (create) / is at another revision (update) */
    LS_LEASE_FAILED,  /* not applied (no server took it) */
    LS_LEASE_UNKNOWN, /* no answer in time: it may have been applied */
} ls_lease_outcome;

typedef struct ls_lease {
    uint8_t state;     /* ls_lease_state */
    uint8_t unsure;    /* 0, or the ls_lease_do (CREATE, UPDATE) whose outcome is unknown */
    uint64_t rev;      /* held: the key's revision, the fencing token */
    int64_t proven;    /* held: when the last write the server confirmed was sent */
    int64_t renew_at;  /* held: when to renew */
    int64_t unsure_at; /* when the uncertain write was sent */
    int64_t retry_at;  /* free: not before this, try to create it */
} ls_lease;

/* What ls_lease_done() / ls_lease_read_done() did to ownership. */
enum { LS_LEASE_KEPT = 0, LS_LEASE_ACQUIRED = 1, LS_LEASE_LOST = -1 };

/*
 * What to do next for this lease at `now`, `assigned` saying whether this
 * node should own the partition.  Drop comes before anything else; an
 * unknown outcome is read back before any other write.
 */
ls_lease_do ls_lease_next(const ls_lease_timing *t, const ls_lease *l, int assigned, int64_t now);

/*
 * The result of a CREATE or UPDATE sent at `sent`: `rev` is the new
 * revision when o is LS_LEASE_OK.  Returns LS_LEASE_ACQUIRED (a create
 * applied), LS_LEASE_LOST (an update refused) or LS_LEASE_KEPT.
 */
int ls_lease_done(const ls_lease_timing *t, ls_lease *l, ls_lease_do op, ls_lease_outcome o,
                  uint64_t rev, int64_t sent, int64_t now);

/*
 * The result of a READ: `known` 0 when the read itself got no answer (it
 * is tried again); else `exists` whether the key holds a value, `mine`
 * whether it is this node's, `rev` its revision.  Returns as
 * ls_lease_done().
 */
int ls_lease_read_done(const ls_lease_timing *t, ls_lease *l, int known, int exists, int mine,
                       uint64_t rev, int64_t now);

/* The driver dropped or released the lease (DROP, RELEASE): it is free. */
void ls_lease_freed(const ls_lease_timing *t, ls_lease *l, int64_t now);

#endif
