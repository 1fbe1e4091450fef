/*
 * table.h - the device table: stable slab of records + open-addressing index.
 * Internal to the engine; see table.c for the design.
 */
#ifndef LS_TABLE_H
#define LS_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define LS_TABLE_CHUNK_BITS 14 /* 16384 records of 128 B: one 2 MiB huge page */
#define LS_TABLE_CHUNK (1u << LS_TABLE_CHUNK_BITS)

typedef struct ls_table {
    uint64_t seed;
    /* Slab: records never move; slot i is chunks[i >> BITS][i & (CHUNK-1)]. */
    ls_device **chunks;
    uint32_t nchunks;
    uintptr_t *chunk_addr; /* chunk base | chunk index, sorted by base */
    uint32_t high;  /* slots ever used: [0, high) */
    uint32_t *free; /* stack of released slots */
    uint32_t nfree, free_cap;
    /* Index: bucket = hash tag << 32 | (slot + 1); 0 = empty. */
    uint64_t *buckets;
    uint64_t mask;
    uint64_t count;
} ls_table;

int ls_table_init(ls_table *t, uint64_t seed);
void ls_table_close(ls_table *t);

/* Hash tag of an id; the index position derives from it. */
uint32_t ls_table_hash(const ls_table *t, const char *id, size_t len);

ls_device *ls_table_find(const ls_table *t, const char *id, size_t len, uint32_t tag);

/*
 * Inserts a new zeroed record for id (which must not be present), copying
 * the id.  Returns 0 and *out, or LS_ENOMEM.
 */
int ls_table_insert(ls_table *t, const char *id, size_t len, uint32_t tag, ls_device **out);

/* Grows the index now to hold n devices without growing again. */
int ls_table_reserve(ls_table *t, uint64_t n);

/* The slot number of a live record (stable until it is removed).  O(log chunks). */
uint32_t ls_table_slot_of(const ls_table *t, const ls_device *d);

/* Removes d from the index and releases its slot and id. */
void ls_table_remove(ls_table *t, ls_device *d);

static inline ls_device *ls_table_slot(const ls_table *t, uint32_t i)
{
    return &t->chunks[i >> LS_TABLE_CHUNK_BITS][i & (LS_TABLE_CHUNK - 1)];
}

/* Prefetch hints for pipelined lookups: the home bucket of a tag, and the
 * record that bucket points to if its tag matches (it usually does). */
static inline void ls_table_prefetch_bucket(const ls_table *t, uint32_t tag)
{
    __builtin_prefetch(&t->buckets[tag & t->mask]);
}

static inline void ls_table_prefetch_record(const ls_table *t, uint32_t tag)
{
    uint64_t b = t->buckets[tag & t->mask];
    if (b && (uint32_t)(b >> 32) == tag) {
        const char *rec = (const char *)ls_table_slot(t, (uint32_t)b - 1);
        __builtin_prefetch(rec, 1);
        __builtin_prefetch(rec + 64, 1);
    }
}

/* Bytes held by the table's own arrays (not the ids). */
size_t ls_table_overhead(const ls_table *t);

#endif
