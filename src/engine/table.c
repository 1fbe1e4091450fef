/*
 * table.c - the device table.
 *
 * Records live in a slab of 65536-record chunks (6 MiB: three huge pages,
 * allocated aligned and advised as transparent huge pages, as is a large
 * index, so random lookups over millions of devices do not also miss the
 * TLB) that are never moved or freed while the table lives, so a record's
 * address is stable and its slot number (kept in the record: the timing
 * wheel and the dirty list name records by slot) gives a paging order that
 * concurrent inserts and deletes cannot shuffle.  Deleted slots are
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
 * Ids: a canonical UUID is packed into the record's 16 id bytes (uuid.h),
 * as is any id of up to 16 bytes; other ids are malloc'd.  A lookup
 * compares the incoming text with a packed id by formatting the 16 bytes
 * in registers (ls_uuid_equal), never by parsing the text.
 *
 * Cost: O(1) expected find/insert/remove; growth doubles the bucket array
 * (O(n) once per doubling, 8 bytes a bucket).  Memory per device: the
 * 96-byte record, the id's heap copy when it has one (17+ bytes and not a
 * canonical UUID), and 8/load bytes of index: 96 + 10.7..21.3 bytes.
 */
#include "engine/table.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The hash of every lookup: inlined here rather than called in the shared
 * library, whose entry point dispatches on the length at run time. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define MIN_BUCKETS 1024
#define HUGE_PAGE ((size_t)2 << 20)

_Static_assert(sizeof(ls_device) == 96, "a device record is 96 bytes");
_Static_assert(offsetof(ls_device, timer) == 56, "the hot fields come first");

/* Zeroed memory for big arrays, backed by huge pages where the kernel can. */
static void *big_alloc(size_t size)
{
    if (size < HUGE_PAGE) return calloc(1, size);
    /* Map one huge page more and trim, so the region is 2 MiB aligned. */
    char *p =
        mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
    if (size < HUGE_PAGE)
        free(p);
    else
        munmap(p, size);
}

#define CHUNK_BYTES (LS_TABLE_CHUNK * sizeof(ls_device))
_Static_assert(CHUNK_BYTES % (2u << 20) == 0, "chunks are whole huge pages");

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
        if (d->live && d->id_form == LS_ID_HEAP) free(d->id.heap);
    }
    for (uint32_t c = 0; c < t->nchunks; c++)
        big_free(t->chunks[c], CHUNK_BYTES);
    free(t->chunks);
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
            if (ls_table_id_equal(d, id, len)) return d;
        }
        i = (i + 1) & t->mask;
    }
}

static void place(uint64_t *buckets, uint64_t mask, uint64_t b)
{
    uint64_t i = (b >> 32) & mask;
    while (buckets[i])
        i = (i + 1) & mask;
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
    if (t->high >= LS_WHEEL_HANDLE_MAX - 1) return LS_ENOMEM; /* handles are slot + 1 */
    if ((t->high & (LS_TABLE_CHUNK - 1)) == 0 && (t->high >> LS_TABLE_CHUNK_BITS) == t->nchunks) {
        ls_device **nc = realloc(t->chunks, (t->nchunks + 1) * sizeof(*nc));
        if (!nc) return LS_ENOMEM;
        t->chunks = nc;
        nc[t->nchunks] = big_alloc(CHUNK_BYTES);
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
    if (t->free_cap < t->high + 1) {
        /* Keep room to release every slot, so remove never allocates. */
        uint32_t cap = t->free_cap ? t->free_cap * 2 : 1024;
        if (cap < t->high + 1) cap = t->high + 1;
        uint32_t *nf = realloc(t->free, cap * sizeof(*nf));
        if (!nf) return LS_ENOMEM;
        t->free = nf;
        t->free_cap = cap;
    }
    uint8_t uuid[16];
    int upper = 0, packed = len > LS_ID_INLINE && ls_uuid_pack(id, len, uuid, &upper);
    char *copy = NULL;
    if (len > LS_ID_INLINE && !packed) {
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
        d->id_form = LS_ID_HEAP;
    } else if (packed) {
        memcpy(d->id.uuid, uuid, 16);
        d->id_form = upper ? LS_ID_UUID_UPPER : LS_ID_UUID_LOWER;
    } else {
        memcpy(d->id.inl, id, len);
        d->id_form = LS_ID_TEXT;
    }
    d->id_len = len & 0x1ffu;
    d->slot = slot;
    d->live = 1;
    place(t->buckets, t->mask, (uint64_t)tag << 32 | (uint64_t)(slot + 1));
    t->count++;
    *out = d;
    return 0;
}

const char *ls_device_id(const ls_device *d, char *buf)
{
    switch (d->id_form) {
    case LS_ID_HEAP:
        return d->id.heap;
    case LS_ID_TEXT:
        memcpy(buf, d->id.inl, d->id_len);
        break;
    default:
        ls_uuid_unpack(d->id.uuid, d->id_form == LS_ID_UUID_UPPER, buf);
        break;
    }
    buf[d->id_len] = '\0';
    return buf;
}

void ls_table_remove(ls_table *t, ls_device *d, uint32_t tag)
{
    uint64_t i = tag & t->mask;
    uint32_t slot = d->slot;
    /* Find the bucket whose record is d. */
    for (;;) {
        uint64_t b = t->buckets[i];
        if (!b) abort(); /* d is not indexed: a caller bug */
        if (b == ((uint64_t)tag << 32 | (uint64_t)(slot + 1))) break;
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

    if (d->id_form == LS_ID_HEAP) free(d->id.heap);
    *d = (ls_device){0};
    t->free[t->nfree++] = slot;
}

size_t ls_table_overhead(const ls_table *t)
{
    return (t->mask + 1) * sizeof(uint64_t) +
           (size_t)t->nchunks * LS_TABLE_CHUNK * sizeof(ls_device) + t->free_cap * sizeof(uint32_t);
}
