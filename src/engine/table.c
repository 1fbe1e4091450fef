/*
 * table.c - the device table.
 *
 * Records live in a slab of 16384-record chunks (2 MiB, allocated aligned
 * and advised as transparent huge pages, as is a large index, so random
 * lookups over millions of devices do not also miss the TLB) that are
 * never moved or freed while the table lives, so a record's address is stable (the timing
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
 * 128-byte record (ids under 40 bytes inside it, longer ones malloc'd),
 * and 8/load bytes of index: 128 + 10.7..21.3 bytes.
 */
#include "engine/table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xxhash.h>

#define MIN_BUCKETS 1024
#define HUGE_PAGE ((size_t)2 << 20)

_Static_assert(sizeof(ls_device) == 128, "a device record is two cache lines");

/* Zeroed memory for big arrays, backed by huge pages where the kernel can. */
static void *big_alloc(size_t size)
{
    if (size < HUGE_PAGE) return calloc(1, size);
    /* Map one huge page more and trim, so the region is 2 MiB aligned. */
    char *p = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    size_t head = (HUGE_PAGE - ((uintptr_t)p & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
    if (head) munmap(p, head);
    munmap(p + head + size, HUGE_PAGE - head);
    madvise(p + head, size, MADV_HUGEPAGE);
    return p + head;
}

static void big_free(void *p, size_t size)
{
    if (!p) return;
    if (size < HUGE_PAGE) free(p);
    else munmap(p, size);
}

#define CHUNK_BYTES (LS_TABLE_CHUNK * sizeof(ls_device))
/* Chunks are huge-page aligned, so a record's chunk base is its address
 * with the low bits cleared, and those bits can hold the chunk index. */
_Static_assert(LS_TABLE_CHUNK * 128 >= 2u << 20, "chunks are allocated 2 MiB aligned");
#define CHUNK_ALIGN ((uintptr_t)HUGE_PAGE)

int ls_table_init(ls_table *t, uint64_t seed)
{
    *t = (ls_table){0};
    t->seed = seed;
    t->buckets = big_alloc(MIN_BUCKETS * sizeof(*t->buckets));
    if (!t->buckets) return LS_ENOMEM;
    t->mask = MIN_BUCKETS - 1;
    return 0;
}

void ls_table_close(ls_table *t)
{
    for (uint32_t i = 0; i < t->high; i++) {
        ls_device *d = ls_table_slot(t, i);
        if (d->live && d->id_len >= LS_ID_INLINE) free(d->id.heap);
    }
    for (uint32_t c = 0; c < t->nchunks; c++) big_free(t->chunks[c], CHUNK_BYTES);
    free(t->chunks);
    free(t->chunk_addr);
    free(t->free);
    big_free(t->buckets, (t->mask + 1) * sizeof(*t->buckets));
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
            if (d->id_len == len && memcmp(ls_device_id(d), id, len) == 0) return d;
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
    uint64_t *nb = big_alloc(n * sizeof(*nb));
    if (!nb) return LS_ENOMEM;
    for (uint64_t i = 0; i <= t->mask; i++)
        if (t->buckets[i]) place(nb, n - 1, t->buckets[i]);
    big_free(t->buckets, (t->mask + 1) * sizeof(*t->buckets));
    t->buckets = nb;
    t->mask = n - 1;
    return 0;
}

int ls_table_reserve(ls_table *t, uint64_t n)
{
    int rc;
    while (n * 4 > (t->mask + 1) * 3)
        if ((rc = grow_index(t)) < 0) return rc;
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
        uintptr_t *na = realloc(t->chunk_addr, (t->nchunks + 1) * sizeof(*na));
        if (!na) return LS_ENOMEM;
        t->chunk_addr = na;
        nc[t->nchunks] = big_alloc(CHUNK_BYTES);
        if (!nc[t->nchunks]) return LS_ENOMEM;
        /* Keep chunk_addr sorted: insert the new base in place. */
        uintptr_t base = (uintptr_t)nc[t->nchunks];
        uint32_t at = t->nchunks;
        while (at > 0 && (na[at - 1] & ~(CHUNK_ALIGN - 1)) > base) {
            na[at] = na[at - 1];
            at--;
        }
        na[at] = base | t->nchunks;
        t->nchunks++;
    }
    *slot = t->high++;
    return 0;
}

int ls_table_insert(ls_table *t, const char *id, size_t len, uint32_t tag, ls_device **out)
{
    int rc;
    if ((t->count + 1) * 4 > (t->mask + 1) * 3 && (rc = grow_index(t)) < 0) return rc;
    if (t->free_cap < t->high + 1) {
        /* Keep room to release every slot, so remove never allocates. */
        uint32_t cap = t->free_cap ? t->free_cap * 2 : 1024;
        if (cap < t->high + 1) cap = t->high + 1;
        uint32_t *nf = realloc(t->free, cap * sizeof(*nf));
        if (!nf) return LS_ENOMEM;
        t->free = nf;
        t->free_cap = cap;
    }
    char *copy = NULL;
    if (len >= LS_ID_INLINE) {
        if (!(copy = malloc(len + 1))) return LS_ENOMEM;
        memcpy(copy, id, len);
        copy[len] = '\0';
    }

    uint32_t slot;
    if ((rc = take_slot(t, &slot)) < 0) {
        free(copy);
        return rc;
    }
    ls_device *d = ls_table_slot(t, slot);
    *d = (ls_device){0};
    if (copy) {
        d->id.heap = copy;
    } else {
        memcpy(d->id.inl, id, len);
        d->id.inl[len] = '\0';
    }
    d->id_len = (uint16_t)len;
    d->hash = tag;
    d->live = 1;
    place(t->buckets, t->mask, (uint64_t)tag << 32 | (uint64_t)(slot + 1));
    t->count++;
    *out = d;
    return 0;
}

uint32_t ls_table_slot_of(const ls_table *t, const ls_device *d)
{
    uintptr_t base = (uintptr_t)d & ~(CHUNK_ALIGN - 1);
    uint32_t lo = 0, hi = t->nchunks;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((t->chunk_addr[mid] & ~(CHUNK_ALIGN - 1)) <= base) lo = mid;
        else hi = mid;
    }
    uint32_t chunk = (uint32_t)(t->chunk_addr[lo] & (CHUNK_ALIGN - 1));
    return chunk << LS_TABLE_CHUNK_BITS | (uint32_t)(d - t->chunks[chunk]);
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

    if (d->id_len >= LS_ID_INLINE) free(d->id.heap);
    *d = (ls_device){0};
    t->free[t->nfree++] = slot;
}

size_t ls_table_overhead(const ls_table *t)
{
    return (t->mask + 1) * sizeof(uint64_t) + (size_t)t->nchunks * LS_TABLE_CHUNK * sizeof(ls_device) +
           t->free_cap * sizeof(uint32_t);
}
