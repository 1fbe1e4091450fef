/*
 * lease_sm.c - rendezvous hashing and the lease state machine (lease_sm.h).
 *
 * Rendezvous ("highest random weight") hashing: each node has a
 * pseudo-random weight per partition, and the live node with the highest
 * weight owns it.  A node that joins takes exactly the partitions where
 * it now weighs most (about P/n of them), a node that leaves gives up
 * only its own, and nodes never trade partitions among themselves, so a
 * change of membership moves the fewest partitions possible.  The weight
 * is splitmix64's finaliser over the FNV-1a-64 of the name and the
 * partition: stable across builds, machines and restarts, since every
 * node must compute the same owner.  O(nodes) per partition.
 *
 * The state machine keeps one lease's facts (held or free, revision, when
 * the last confirmed write was sent, an outcome still unknown) and turns
 * each result into the next step; the caller's clock is the only clock.
 * Every time here is a mono ms.
 */
#include "cluster/lease_sm.h"

#include <string.h>

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t ls_rendezvous_weight(const char *name, size_t len, unsigned p)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211ull;
    }
    return mix64(h ^ mix64(p));
}

int ls_rendezvous_owner(const char *const *names, size_t n, unsigned p)
{
    int best = -1;
    uint64_t best_w = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t w = ls_rendezvous_weight(names[i], strlen(names[i]), p);
        if (best < 0 || w > best_w || (w == best_w && strcmp(names[i], names[best]) < 0)) {
            best = (int)i;
            best_w = w;
        }
    }
    return best;
}

ls_lease_timing ls_lease_timing_of(int64_t ttl)
{
    ls_lease_timing t = {.ttl = ttl, .renew = ttl / 4, .drop = ttl * 8 / 10, .retry = ttl / 8};
    if (t.retry > 1000) t.retry = 1000;
    return t;
}

ls_lease_do ls_lease_next(const ls_lease_timing *t, const ls_lease *l, int assigned, int64_t now)
{
    if (l->state == LS_LEASE_HELD && now - l->proven >= t->drop) return LS_LEASE_DO_DROP;
    if (l->unsure) return LS_LEASE_DO_READ;
    if (l->state == LS_LEASE_HELD) {
        if (!assigned) return LS_LEASE_DO_RELEASE;
        return now >= l->renew_at ? LS_LEASE_DO_UPDATE : LS_LEASE_DO_NOTHING;
    }
    return assigned && now >= l->retry_at ? LS_LEASE_DO_CREATE : LS_LEASE_DO_NOTHING;
}

static int hold(const ls_lease_timing *t, ls_lease *l, uint64_t rev, int64_t sent)
{
    l->state = LS_LEASE_HELD;
    l->rev = rev;
    l->proven = sent;
    l->renew_at = sent + t->renew;
    return LS_LEASE_ACQUIRED;
}

int ls_lease_done(const ls_lease_timing *t, ls_lease *l, ls_lease_do op, ls_lease_outcome o,
                  uint64_t rev, int64_t sent, int64_t now)
{
    if (o == LS_LEASE_UNKNOWN) {
        l->unsure = (uint8_t)op;
        l->unsure_at = sent;
        return LS_LEASE_KEPT;
    }
    if (op == LS_LEASE_DO_CREATE) {
        if (o == LS_LEASE_OK) return hold(t, l, rev, sent);
        l->retry_at = now + t->retry; /* held elsewhere, or no server took it */
        return LS_LEASE_KEPT;
    }
    if (op != LS_LEASE_DO_UPDATE || l->state != LS_LEASE_HELD) return LS_LEASE_KEPT;
    switch (o) {
    case LS_LEASE_OK:
        l->rev = rev;
        l->proven = sent;
        l->renew_at = sent + t->renew;
        return LS_LEASE_KEPT;
    case LS_LEASE_REFUSED: /* superseded: another revision is there */
        ls_lease_freed(t, l, now);
        return LS_LEASE_LOST;
    default: /* not applied: try again soon; the drop deadline keeps running */
        l->renew_at = now + t->retry;
        return LS_LEASE_KEPT;
    }
}

int ls_lease_read_done(const ls_lease_timing *t, ls_lease *l, int known, int exists, int mine,
                       uint64_t rev, int64_t now)
{
    if (!known) return LS_LEASE_KEPT; /* still unsure: read again */
    int op = l->unsure;
    l->unsure = 0;
    if (op == LS_LEASE_DO_CREATE) {
        /* Ours, and written recently enough to count on: the create was
         * applied, and the key lives at least TTL from when it was sent. */
        if (l->state == LS_LEASE_FREE && exists && mine && now - l->unsure_at < t->drop) {
            hold(t, l, rev, l->unsure_at);
            l->renew_at = now; /* renew at once: the lease may be old already */
            return LS_LEASE_ACQUIRED;
        }
        if (l->state == LS_LEASE_FREE) l->retry_at = now + t->retry;
        return LS_LEASE_KEPT;
    }
    if (op != LS_LEASE_DO_UPDATE || l->state != LS_LEASE_HELD) return LS_LEASE_KEPT;
    if (!exists || !mine) { /* expired, or someone else's now */
        ls_lease_freed(t, l, now);
        return LS_LEASE_LOST;
    }
    if (rev != l->rev) { /* the update was applied */
        l->rev = rev;
        l->proven = l->unsure_at;
        l->renew_at = l->unsure_at + t->renew;
    } else { /* it was not: renew again now */
        l->renew_at = now;
    }
    return LS_LEASE_KEPT;
}

void ls_lease_freed(const ls_lease_timing *t, ls_lease *l, int64_t now)
{
    *l = (ls_lease){.state = LS_LEASE_FREE, .retry_at = now + t->retry};
}
