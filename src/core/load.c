/*
 * load.c - start-up: every device of a store into an engine.
 *
 * The store hands out devices in key order; their hashes, and so their
 * index buckets, are random, and at start-up nearly every one is a miss
 * that inserts.  Restoring them one by one pays one cache miss per device
 * in the index; instead they are copied into batches of LOAD_BATCH and
 * restored with ls_engine_restore_batch(), which prefetches each bucket a
 * few devices ahead.  The index is sized for the store's device count
 * first, so it is never rehashed during the load.  Measured figures are in
 * docs/benchmarks.md (bench: lastseen-bench store-load).
 */
#include "core/load.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "core/shards.h"

#define LOAD_BATCH 512
#define PROGRESS_EVERY 65536

typedef struct load_state {
    ls_engine *e;
    ls_shards *sh; /* or NULL: everything into e */
    ls_restart_policy policy;
    ls_now now;
    _Atomic uint64_t *progress;
    ls_load_result res;
    size_t n, used;
    ls_device_state items[LOAD_BATCH];
    int rcs[LOAD_BATCH];
    ls_device_state part[LOAD_BATCH]; /* one shard's items of a batch */
    uint16_t pos[LOAD_BATCH];
    uint8_t which[LOAD_BATCH];
    int prc[LOAD_BATCH];
    /* Copies of ids and types: the store's buffers are reused per device. */
    char arena[LOAD_BATCH * (LS_ID_MAX + LS_TYPE_MAX + 2)];
} load_state;

static void flush(load_state *ls)
{
    if (ls->n == 0) return;
    if (!ls->sh || ls->sh->n == 1) {
        ls_engine_restore_batch(ls->sh ? ls->sh->shard[0].engine : ls->e, ls->items, ls->n,
                                ls->policy, ls->now, ls->rcs);
    } else { /* each shard's items, in their order, through its engine */
        for (size_t i = 0; i < ls->n; i++)
            ls->which[i] = (uint8_t)ls_shards_index(ls->sh, ls->items[i].id, ls->items[i].id_len);
        for (unsigned k = 0; k < ls->sh->n; k++) {
            size_t np = 0;
            for (size_t i = 0; i < ls->n; i++)
                if (ls->which[i] == k) {
                    ls->part[np] = ls->items[i];
                    ls->pos[np++] = (uint16_t)i;
                }
            if (!np) continue;
            ls_engine_restore_batch(ls->sh->shard[k].engine, ls->part, np, ls->policy, ls->now,
                                    ls->prc);
            for (size_t j = 0; j < np; j++)
                ls->rcs[ls->pos[j]] = ls->prc[j];
        }
    }
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->rcs[i] == 0) {
            ls->res.loaded++;
            continue;
        }
        ls->res.refused++;
        ls_error("load", "stored device %.*s not restored: %s", (int)ls->items[i].id_len,
                 ls->items[i].id, ls_strerror(ls->rcs[i]));
    }
    ls->n = ls->used = 0;
    if (ls->progress) atomic_store_explicit(ls->progress, ls->res.loaded, memory_order_relaxed);
}

/* Copies n bytes into the arena; the store never hands out more than the
 * engine's limits allow to be restored, and anything longer is cut (and
 * then refused by the engine as a bad id or type). */
static const char *keep(load_state *ls, const char *p, size_t *n, size_t max)
{
    if (*n > max) *n = max + 1;
    char *dst = ls->arena + ls->used;
    memcpy(dst, p, *n);
    ls->used += *n;
    return dst;
}

static int load_cb(void *ud, const ls_device_state *rec)
{
    load_state *ls = ud;
    ls_device_state *it = &ls->items[ls->n++];
    *it = *rec;
    it->id = keep(ls, rec->id, &it->id_len, LS_ID_MAX);
    if (rec->type) it->type = keep(ls, rec->type, &it->type_len, LS_TYPE_MAX);
    if (ls->n == LOAD_BATCH) flush(ls);
    return 0;
}

static int load(ls_store *s, ls_engine *e, ls_shards *sh, ls_restart_policy policy, ls_now now,
                _Atomic uint64_t *progress, ls_load_result *out)
{
    load_state *ls = malloc(sizeof(*ls));
    if (!ls) return -ENOMEM;
    ls->e = e;
    ls->sh = sh;
    ls->policy = policy;
    ls->now = now;
    ls->progress = progress;
    ls->res = (ls_load_result){0};
    ls->n = ls->used = 0;
    uint64_t count = ls_store_device_count(s);
    int reserved = 0;
    if (!sh) {
        reserved = ls_engine_reserve(e, count);
    } else { /* the hash spreads devices evenly: a share each, with some slack */
        uint64_t share = sh->n == 1 ? count : count / sh->n + count / (8 * sh->n) + 64;
        for (unsigned k = 0; k < sh->n && reserved == 0; k++)
            reserved = ls_engine_reserve(sh->shard[k].engine, share);
    }
    if (reserved < 0) ls_warn("load", "cannot size the index in advance; it grows as devices load");
    int rc = ls_store_load_devices(s, load_cb, ls);
    if (rc == 0) flush(ls);
    *out = ls->res;
    free(ls);
    return rc;
}

int ls_load_devices(ls_store *s, ls_engine *e, ls_restart_policy policy, ls_now now,
                    _Atomic uint64_t *progress, ls_load_result *out)
{
    return load(s, e, NULL, policy, now, progress, out);
}

int ls_load_devices_sharded(ls_store *s, ls_shards *sh, ls_restart_policy policy, ls_now now,
                            _Atomic uint64_t *progress, ls_load_result *out)
{
    return load(s, NULL, sh, policy, now, progress, out);
}
