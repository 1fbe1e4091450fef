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
        r->cells[i].seq = i;
    return 0;
}

void ls_ring_close(ls_ring *r)
{
    free(r->cells);
    r->cells = NULL;
}

int ls_ring_push(ls_ring *r, void *v)
{
    uint64_t pos = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
    for (;;) {
        ls_ring_cell *c = &r->cells[pos & r->mask];
        uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (__atomic_compare_exchange_n(&r->head, &pos, pos + 1, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                c->v = v;
                __atomic_store_n(&c->seq, pos + 1, __ATOMIC_RELEASE);
                return 0;
            }
            /* lost the race: pos now holds the new head */
        } else if (dif < 0) {
            return -EAGAIN; /* the cell still holds a value a lap behind: full */
        } else {
            pos = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
        }
    }
}

void *ls_ring_pop(ls_ring *r)
{
    uint64_t pos = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
    for (;;) {
        ls_ring_cell *c = &r->cells[pos & r->mask];
        uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (__atomic_compare_exchange_n(&r->tail, &pos, pos + 1, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                void *v = c->v;
                __atomic_store_n(&c->seq, pos + r->mask + 1, __ATOMIC_RELEASE);
                return v;
            }
        } else if (dif < 0) {
            return NULL; /* not published yet: empty */
        } else {
            pos = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
        }
    }
}

int ls_ring_empty(const ls_ring *r)
{
    uint64_t pos = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    const ls_ring_cell *c = &r->cells[pos & r->mask];
    return __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) != pos + 1;
}
