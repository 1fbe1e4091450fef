/*
 * table.c - the device table.
 *
 * Records live in a slab of 4096-record chunks that are never moved or
 * freed while the table lives, so a record's address is stable (the timing
 * wheel links records by pointer) and its slot number gives a paging order
 * that concurrent inserts and deletes cannot shuffle.  Deleted slots are
 * reused, last freed first.
 *
 * The index is open addressing with linear probing over 8-byte buckets:
 * the high 32 bits hold the id's hash tag, the low 32 bits slot + 1.  The
 * bucket position is tag & mask, so growing rehashes from the buckets alone
 * without touching a record or an id, and a lookup compares ids only when
 * the tag matches.  Deletion shifts followers back (no tombstones), so probe
 * lengths stay short under churn.  The load factor stays at or below 3/4.
 *
 * The hash is XXH3 with a per-process random seed: ids come from outside,
 * and a fixed hash would let a client pick colliding ids.
 *
 * Cost: O(1) expected find/insert/remove; growth doubles the bucket array
 * (O(n) once per doubling, 8 bytes a bucket).  Memory per device: the
 * record (sizeof(ls_device)), its id (malloc'd, len + 1), and 8/load bytes
 * of index.
 */
#include "engine/table.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#define MIN_BUCKETS 1024

int ls_table_init(ls_table *t, uint64_t seed)
{
    *t = (ls_table){0};
    t->seed = seed;
    t->buckets = calloc(MIN_BUCKETS, sizeof(*t->buckets));
    if (!t->buckets) return LS_ENOMEM;
    t->mask = MIN_BUCKETS - 1;
    return 0;
}

void ls_table_close(ls_table *t)
{
    for (uint32_t i = 0; i < t->high; i++) {
        ls_device *d = ls_table_slot(t, i);
        if (d->live) free(d->id);
    }
    for (uint32_t c = 0; c < t->nchunks; c++) free(t->chunks[c]);
    free(t->chunks);
    free(t->free);
    free(t->buckets);
    *t = (ls_table){0};
}

uint32_t ls_table_hash(const ls_table *t, const char *id, size_t len)
{
    return (uint32_t)(XXH3_64bits_withSeed(id, len, t->seed) >> 32);
}

ls_device *ls_table_find(const ls_table *t, const char *id, size_t len, uint32_t tag)
{
    uint64_t i = tag & t->mask;
    for (;;) {
        uint64_t b = t->buckets[i];
        if (!b) return NULL;
        if ((uint32_t)(b >> 32) == tag) {
            ls_device *d = ls_table_slot(t, (uint32_t)b - 1);
            if (d->id_len == len && memcmp(d->id, id, len) == 0) return d;
        }
        i = (i + 1) & t->mask;
    }
}

static void place(uint64_t *buckets, uint64_t mask, uint64_t b)
{
    uint64_t i = (b >> 32) & mask;
    while (buckets[i]) i = (i + 1) & mask;
    buckets[i] = b;
}

static int grow_index(ls_table *t)
{
    uint64_t n = (t->mask + 1) * 2;
    if (n > ((uint64_t)1 << 32)) return LS_ENOMEM; /* position comes from a 32-bit tag */
    uint64_t *nb = calloc(n, sizeof(*nb));
    if (!nb) return LS_ENOMEM;
    for (uint64_t i = 0; i <= t->mask; i++)
        if (t->buckets[i]) place(nb, n - 1, t->buckets[i]);
    free(t->buckets);
    t->buckets = nb;
    t->mask = n - 1;
    return 0;
}

static int take_slot(ls_table *t, uint32_t *slot)
{
    if (t->nfree) {
        *slot = t->free[--t->nfree];
        return 0;
    }
    if (t->high == UINT32_MAX - 1) return LS_ENOMEM;
    if ((t->high & (LS_TABLE_CHUNK - 1)) == 0 && (t->high >> LS_TABLE_CHUNK_BITS) == t->nchunks) {
        ls_device **nc = realloc(t->chunks, (t->nchunks + 1) * sizeof(*nc));
        if (!nc) return LS_ENOMEM;
        t->chunks = nc;
        nc[t->nchunks] = calloc(LS_TABLE_CHUNK, sizeof(ls_device));
        if (!nc[t->nchunks]) return LS_ENOMEM;
        t->nchunks++;
    }
    *slot = t->high++;
    return 0;
}

int ls_table_insert(ls_table *t, const char *id, size_t len, uint32_t tag, ls_device **out)
{
    int rc;
    if ((t->count + 1) * 4 > (t->mask + 1) * 3 && (rc = grow_index(t)) < 0) return rc;
    if (t->nfree == t->free_cap) {
        /* Keep room to release every slot, so remove never allocates. */
        uint32_t cap = t->free_cap ? t->free_cap * 2 : 1024;
        uint32_t *nf = realloc(t->free, cap * sizeof(*nf));
        if (!nf) return LS_ENOMEM;
        t->free = nf;
        t->free_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return LS_ENOMEM;
    memcpy(copy, id, len);
    copy[len] = '\0';

    uint32_t slot;
    if ((rc = take_slot(t, &slot)) < 0) {
        free(copy);
        return rc;
    }
    ls_device *d = ls_table_slot(t, slot);
    *d = (ls_device){0};
    d->id = copy;
    d->id_len = (uint16_t)len;
    d->hash = tag;
    d->live = 1;
    place(t->buckets, t->mask, (uint64_t)tag << 32 | (uint64_t)(slot + 1));
    t->count++;
    *out = d;
    return 0;
}

void ls_table_remove(ls_table *t, ls_device *d)
{
    uint64_t i = d->hash & t->mask;
    uint32_t slot = UINT32_MAX;
    /* Find the bucket whose record is d. */
    for (;;) {
        uint64_t b = t->buckets[i];
        if (!b) abort(); /* d is not indexed: a caller bug */
        if ((uint32_t)(b >> 32) == d->hash && ls_table_slot(t, (uint32_t)b - 1) == d) {
            slot = (uint32_t)b - 1;
            break;
        }
        i = (i + 1) & t->mask;
    }
    /* Backward-shift deletion: pull later members of the run into the hole
     * when their home position is not between the hole and themselves. */
    uint64_t hole = i;
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        uint64_t b = t->buckets[j];
        if (!b) break;
        uint64_t home = (b >> 32) & t->mask;
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            t->buckets[hole] = b;
            hole = j;
        }
    }
    t->buckets[hole] = 0;
    t->count--;

    free(d->id);
    *d = (ls_device){0};
    t->free[t->nfree++] = slot;
}

size_t ls_table_overhead(const ls_table *t)
{
    return (t->mask + 1) * sizeof(uint64_t) + (size_t)t->nchunks * LS_TABLE_CHUNK * sizeof(ls_device) +
           t->free_cap * sizeof(uint32_t);
}
