/*
 * ring.h - a bounded lock-free multi-producer multi-consumer queue of
 * pointers (Dmitry Vyukov's bounded MPMC queue).
 *
 * Each cell carries a sequence number that says whose turn it is: a
 * producer claims the cell at `head` with one compare-and-swap when the
 * cell's sequence equals the position, writes the value, then publishes it
 * by storing position + 1; a consumer claims the cell at `tail` when the
 * sequence equals position + 1 and hands it back to the producers by
 * storing position + capacity.  No locks, no allocation after init, one
 * CAS per push or pop; producers and consumers touch different cache lines
 * (head and tail are padded apart).  Positions are 64-bit: they never wrap
 * in practice, and cells wrap around the array by masking.
 *
 * The shard layer (shards.h) uses it for the queues of activity batches
 * and for the pool of free batches.  Both rings are as large as the pool,
 * so a push there never finds the ring full; ls_ring_push() still reports
 * it for other uses (and the unit tests).
 */
#ifndef LS_RING_H
#define LS_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ls_ring_cell {
    _Atomic uint64_t seq; /* whose turn the cell is (see ring.c) */
    void *v;
} ls_ring_cell;

typedef struct ls_ring {
    ls_ring_cell *cells;
    uint64_t mask;
    char pad0[64 - sizeof(void *) - sizeof(uint64_t)];
    _Atomic uint64_t head; /* next position to push */
    char pad1[64 - sizeof(uint64_t)];
    _Atomic uint64_t tail; /* next position to pop */
    char pad2[64 - sizeof(uint64_t)];
} ls_ring;

/* Capacity is rounded up to a power of two, 2 .. 2^30.  0 or -ENOMEM/-EINVAL. */
int ls_ring_init(ls_ring *r, size_t capacity);
void ls_ring_close(ls_ring *r);

/* Pushes v (not NULL).  0, or -EAGAIN when the ring is full (v not queued). */
int ls_ring_push(ls_ring *r, void *v);

/* Pops the oldest value, or NULL when the ring is empty. */
void *ls_ring_pop(ls_ring *r);

/* Whether the ring looked empty at some instant during the call. */
int ls_ring_empty(const ls_ring *r);

static inline size_t ls_ring_capacity(const ls_ring *r)
{
    return (size_t)r->mask + 1;
}

#endif
