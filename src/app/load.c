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
#include "app/load.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app/log.h"

#define LOAD_BATCH 512
#define PROGRESS_EVERY 65536

typedef struct load_state {
    ls_engine *e;
    ls_restart_policy policy;
    ls_now now;
    uint64_t *progress;
    ls_load_result res;
    size_t n, used;
    ls_restore_item items[LOAD_BATCH];
    int rcs[LOAD_BATCH];
    /* Copies of ids and types: the store's buffers are reused per device. */
    char arena[LOAD_BATCH * (LS_ID_MAX + LS_TYPE_MAX + 2)];
} load_state;

static void flush(load_state *ls)
{
    if (ls->n == 0) return;
    ls_engine_restore_batch(ls->e, ls->items, ls->n, ls->policy, ls->now, ls->rcs);
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->rcs[i] == 0) {
            ls->res.loaded++;
            continue;
        }
        ls->res.refused++;
        ls_error("load", "stored device %.*s not restored: %s", (int)ls->items[i].len, ls->items[i].id,
                 ls_strerror(ls->rcs[i]));
    }
    ls->n = ls->used = 0;
    if (ls->progress) __atomic_store_n(ls->progress, ls->res.loaded, __ATOMIC_RELAXED);
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

static int load_cb(void *ud, const ls_store_device *rec)
{
    load_state *ls = ud;
    ls_restore_item *it = &ls->items[ls->n++];
    it->len = rec->id_len;
    it->id = keep(ls, rec->id, &it->len, LS_ID_MAX);
    it->st = (ls_device_state){
        .type_len = rec->type_len,
        .timeout_ms = rec->timeout_ms,
        .last_activity = rec->last_activity,
        .last_connect = rec->last_connect,
        .last_disconnect = rec->last_disconnect,
        .inactivity_alarm = rec->inactivity_alarm,
        .sessions = rec->sessions,
        .active = rec->active,
        .has_c8y = rec->has_c8y,
        .response_interval = rec->response_interval,
    };
    if (rec->type) it->st.type = keep(ls, rec->type, &it->st.type_len, LS_TYPE_MAX);
    if (ls->n == LOAD_BATCH) flush(ls);
    return 0;
}

int ls_load_devices(ls_store *s, ls_engine *e, ls_restart_policy policy, ls_now now, uint64_t *progress,
                    ls_load_result *out)
{
    load_state *ls = malloc(sizeof(*ls));
    if (!ls) return -ENOMEM;
    ls->e = e;
    ls->policy = policy;
    ls->now = now;
    ls->progress = progress;
    ls->res = (ls_load_result){0};
    ls->n = ls->used = 0;
    if (ls_engine_reserve(e, ls_store_device_count(s)) < 0)
        ls_warn("load", "cannot size the index in advance; it grows as devices load");
    int rc = ls_store_load_devices(s, load_cb, ls);
    if (rc == 0) flush(ls);
    *out = ls->res;
    free(ls);
    return rc;
}
