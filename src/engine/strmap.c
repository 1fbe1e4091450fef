/*
 * strmap.c - linear probing over 32-byte entries that keep the key's full
 * 64-bit hash (XXH3, seeded), so probes compare bytes only on a hash match
 * and growing rehashes nothing.  Backward-shift deletion, load at most 1/2.
 * O(1) expected per operation; nothing allocated while empty.
 */
#include "engine/strmap.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "engine/engine.h"

#define MIN_CAP 16

void ls_strmap_init(ls_strmap *m, uint64_t seed)
{
    *m = (ls_strmap){.seed = seed};
}

void ls_strmap_close(ls_strmap *m)
{
    free(m->e);
    m->e = NULL;
    m->mask = m->count = 0;
}

static ls_strmap_entry *probe(const ls_strmap *m, uint64_t h, const char *key, size_t len)
{
    uint64_t i = h & m->mask;
    for (;;) {
        ls_strmap_entry *x = &m->e[i];
        if (!x->key || (x->hash == h && x->len == len && memcmp(x->key, key, len) == 0)) return x;
        i = (i + 1) & m->mask;
    }
}

void *ls_strmap_get(const ls_strmap *m, const char *key, size_t len)
{
    if (!m->mask) return NULL;
    ls_strmap_entry *x = probe(m, XXH3_64bits_withSeed(key, len, m->seed), key, len);
    return x->key ? x->val : NULL;
}

static int grow(ls_strmap *m)
{
    uint64_t cap = m->mask ? (m->mask + 1) * 2 : MIN_CAP;
    ls_strmap n = {.mask = cap - 1, .count = m->count, .seed = m->seed};
    if (!(n.e = calloc(cap, sizeof(*n.e)))) return LS_ENOMEM;
    for (uint64_t i = 0; m->mask && i <= m->mask; i++)
        if (m->e[i].key) *probe(&n, m->e[i].hash, m->e[i].key, m->e[i].len) = m->e[i];
    free(m->e);
    *m = n;
    return 0;
}

int ls_strmap_put(ls_strmap *m, const char *key, size_t len, void *val)
{
    if (!m->mask || (m->count + 1) * 2 > m->mask + 1) {
        int rc = grow(m);
        if (rc < 0) return rc;
    }
    uint64_t h = XXH3_64bits_withSeed(key, len, m->seed);
    ls_strmap_entry *x = probe(m, h, key, len);
    if (!x->key) m->count++;
    *x = (ls_strmap_entry){.hash = h, .key = key, .len = len, .val = val};
    return 0;
}

void *ls_strmap_del(ls_strmap *m, const char *key, size_t len)
{
    if (!m->mask) return NULL;
    ls_strmap_entry *x = probe(m, XXH3_64bits_withSeed(key, len, m->seed), key, len);
    if (!x->key) return NULL;
    void *val = x->val;
    uint64_t hole = (uint64_t)(x - m->e);
    for (uint64_t j = hole;;) {
        j = (j + 1) & m->mask;
        if (!m->e[j].key) break;
        uint64_t home = m->e[j].hash & m->mask;
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->e[hole] = m->e[j];
            hole = j;
        }
    }
    m->e[hole] = (ls_strmap_entry){0};
    m->count--;
    return val;
}
