/*
 * map64.h - a small open-addressing hash map from non-zero u64 keys to i64
 * values, for data that only a few devices carry (side tables keyed by a
 * device's slot, so the device record does not grow).  See map64.c.
 */
#ifndef LS_MAP64_H
#define LS_MAP64_H

#include <stddef.h>
#include <stdint.h>

typedef struct ls_map64 {
    uint64_t *keys; /* 0 = empty */
    int64_t *vals;
    uint64_t mask; /* capacity - 1, capacity a power of two; 0 when never used */
    uint64_t count;
} ls_map64;

/* Zero-initialised is an empty map; ls_map64_close() frees it. */
void ls_map64_close(ls_map64 *m);

/* Sets key (!= 0) to val.  0, or LS_ENOMEM (the map is unchanged). */
int ls_map64_put(ls_map64 *m, uint64_t key, int64_t val);

/* 1 and *val if present, else 0. */
int ls_map64_get(const ls_map64 *m, uint64_t key, int64_t *val);

/* Removes key if present. */
void ls_map64_del(ls_map64 *m, uint64_t key);

#endif
