/*
 * ring.c - the bounded MPMC queue (see ring.h for the algorithm).
 *
 * Memory order: a cell's `seq` is the only synchronisation.  The producer's
 * release store of seq = pos + 1 publishes `v`; the consumer's acquire load
 * of seq sees it.  The consumer's release store of seq = pos + capacity
 * hands the cell back; the producer's acquire load sees that `v` was read.
 * head and tail themselves are only claimed with relaxed CAS.
 */
#include "base/ring.h"

#include <errno.h>
#include <stdlib.h>

int ls_ring_init(ls_ring *r, size_t capacity)
{
    *r = (ls_ring){0};
    if (capacity < 2 || capacity > ((size_t)1 << 30)) return -EINVAL;
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    r->cells = calloc(cap, sizeof(*r->cells));
    if (!r->cells) return -ENOMEM;
    r->mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        atomic_init(&r->cells[i].seq, i);
    return 0;
}

void ls_ring_close(ls_ring *r)
{
    free(r->cells);
    r->cells = NULL;
}

int ls_ring_push(ls_ring *r, void *v)
{
    uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        ls_ring_cell *c = &r->cells[pos & r->mask];
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->v = v;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return 0;
            }
            /* lost the race: pos now holds the new head */
        } else if (dif < 0) {
            return -EAGAIN; /* the cell still holds a value a lap behind: full */
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

void *ls_ring_pop(ls_ring *r)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        ls_ring_cell *c = &r->cells[pos & r->mask];
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                void *v = c->v;
                atomic_store_explicit(&c->seq, pos + r->mask + 1, memory_order_release);
                return v;
            }
        } else if (dif < 0) {
            return NULL; /* not published yet: empty */
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

int ls_ring_empty(const ls_ring *r)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_acquire);
    const ls_ring_cell *c = &r->cells[pos & r->mask];
    return atomic_load_explicit(&c->seq, memory_order_acquire) != pos + 1;
}
