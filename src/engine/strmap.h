/*
 * strmap.h - an open-addressing hash map from byte-string keys to pointers.
 * The map does not copy keys: each key must stay valid while its entry is
 * in the map (keep it inside the value).  See strmap.c.
 */
#ifndef LS_STRMAP_H
#define LS_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ls_strmap_entry {
    uint64_t hash;
    const char *key; /* NULL = empty */
    size_t len;
    void *val;
} ls_strmap_entry;

typedef struct ls_strmap {
    ls_strmap_entry *e;
    uint64_t mask; /* capacity - 1; 0 while never used */
    uint64_t count;
    uint64_t seed;
} ls_strmap;

/* An empty map hashing with `seed` (keys come from outside: randomise it). */
void ls_strmap_init(ls_strmap *m, uint64_t seed);
void ls_strmap_close(ls_strmap *m);

void *ls_strmap_get(const ls_strmap *m, const char *key, size_t len);

/* Sets key -> val (replacing).  0, or LS_ENOMEM with the map unchanged. */
int ls_strmap_put(ls_strmap *m, const char *key, size_t len, void *val);

/* Removes key; returns its value, or NULL if absent. */
void *ls_strmap_del(ls_strmap *m, const char *key, size_t len);

#endif
