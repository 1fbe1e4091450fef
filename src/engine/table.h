/*
 * table.h - the device table: stable slab of records + open-addressing index.
 * Internal to the engine; see table.c for the design.
 */
#ifndef LS_TABLE_H
#define LS_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/engine.h"

#define LS_TABLE_CHUNK_BITS 16 /* 65536 records of 96 B: three 2 MiB huge pages */
#define LS_TABLE_CHUNK (1u << LS_TABLE_CHUNK_BITS)

typedef struct ls_table {
    uint64_t seed;
    /* Slab: records never move; slot i is chunks[i >> BITS][i & (CHUNK-1)]. */
    ls_device **chunks;
    uint32_t nchunks;
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

/* Whether d's id is the len bytes at id. */
static inline int ls_table_id_equal(const ls_device *d, const char *id, size_t len)
{
    if (d->id_len != len) return 0;
    switch (d->id_form) {
    case LS_ID_TEXT:
        return memcmp(d->id.inl, id, len) == 0;
    case LS_ID_HEAP:
        return memcmp(d->id.heap, id, len) == 0;
    default:
        return ls_uuid_equal(d->id.uuid, d->id_form == LS_ID_UUID_UPPER, id);
    }
}

ls_device *ls_table_find(const ls_table *t, const char *id, size_t len, uint32_t tag);

/*
 * Inserts a new zeroed record for id (which must not be present), copying
 * the id (packed if it is a canonical UUID).  Returns 0 and *out, or
 * LS_ENOMEM.
 */
int ls_table_insert(ls_table *t, const char *id, size_t len, uint32_t tag, ls_device **out);

/* Grows the index now to hold n devices without growing again. */
int ls_table_reserve(ls_table *t, uint64_t n);

/* The slot number of a live record (stable until it is removed). */
static inline uint32_t ls_table_slot_of(const ls_table *t, const ls_device *d)
{
    (void)t;
    return d->slot;
}

/* Removes d, whose id has hash tag `tag`, from the index and releases its
 * slot and id. */
void ls_table_remove(ls_table *t, ls_device *d, uint32_t tag);

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
        __builtin_prefetch(rec + 55, 1); /* the hot part may span two lines */
    }
}

/* Bytes held by the table's own arrays (not the ids). */
size_t ls_table_overhead(const ls_table *t);

#endif
