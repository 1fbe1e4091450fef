/*
 * map64.c - open addressing with linear probing over parallel key/value
 * arrays, multiplicative hashing (keys are slot numbers: dense small
 * integers, which Fibonacci hashing spreads well), backward-shift deletion
 * (no tombstones), load factor at most 1/2.  Cost: O(1) expected per
 * operation, 16 bytes / load per entry; nothing at all while empty.
 */
#include "engine/map64.h"

#include <stdlib.h>

#include "engine/engine.h"

#define MIN_CAP 16

static uint64_t home(const ls_map64 *m, uint64_t key)
{
    return ((key * 0x9e3779b97f4a7c15ULL) >> 32) & m->mask;
}

void ls_map64_close(ls_map64 *m)
{
    free(m->keys);
    free(m->vals);
    *m = (ls_map64){0};
}

static uint64_t *slot_for(const ls_map64 *m, uint64_t key)
{
    uint64_t i = home(m, key);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return &m->keys[i];
}

static int grow(ls_map64 *m)
{
    uint64_t cap = m->mask ? (m->mask + 1) * 2 : MIN_CAP;
    ls_map64 n = {.mask = cap - 1};
    n.keys = calloc(cap, sizeof(*n.keys));
    n.vals = malloc(cap * sizeof(*n.vals));
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return LS_ENOMEM;
    }
    for (uint64_t i = 0; m->mask && i <= m->mask; i++) {
        if (!m->keys[i]) continue;
        uint64_t *k = slot_for(&n, m->keys[i]);
        *k = m->keys[i];
        n.vals[k - n.keys] = m->vals[i];
    }
    n.count = m->count;
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

int ls_map64_put(ls_map64 *m, uint64_t key, int64_t val)
{
    if (!m->mask || (m->count + 1) * 2 > m->mask + 1) {
        int rc = grow(m);
        if (rc < 0) return rc;
    }
    uint64_t *k = slot_for(m, key);
    if (!*k) m->count++;
    *k = key;
    m->vals[k - m->keys] = val;
    return 0;
}

int ls_map64_get(const ls_map64 *m, uint64_t key, int64_t *val)
{
    if (!m->mask) return 0;
    uint64_t *k = slot_for(m, key);
    if (!*k) return 0;
    *val = m->vals[k - m->keys];
    return 1;
}

void ls_map64_del(ls_map64 *m, uint64_t key)
{
    if (!m->mask) return;
    uint64_t hole = (uint64_t)(slot_for(m, key) - m->keys);
    if (!m->keys[hole]) return;
    /* Pull later members of the run into the hole unless their home lies
     * between the hole and themselves. */
    for (uint64_t j = hole;;) {
        j = (j + 1) & m->mask;
        if (!m->keys[j]) break;
        uint64_t h = home(m, m->keys[j]);
        if (((j - h) & m->mask) >= ((j - hole) & m->mask)) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->count--;
}
