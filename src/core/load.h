/*
 * load.h - start-up: every device of a store into an engine.  See load.c.
 */
#ifndef LS_LOAD_H
#define LS_LOAD_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine/engine.h"
#include "store/store.h"

typedef struct ls_load_result {
    uint64_t loaded;  /* devices restored */
    uint64_t refused; /* stored devices the engine refused (logged each) */
} ls_load_result;

/*
 * Restores every device of `s` into `e` under `policy` at `now`.  If
 * progress is not NULL it is advanced (a relaxed store) as devices load, for a
 * readiness probe.  Returns 0, or the store's error (a damaged record).
 */
int ls_load_devices(ls_store *s, ls_engine *e, ls_restart_policy policy, ls_now now,
                    _Atomic uint64_t *progress, ls_load_result *out);

/* The same into a daemon's shards, each device into its own shard's engine
 * (ls_shards_index()); batches are split by shard, order kept per shard. */
struct ls_shards;
int ls_load_devices_sharded(ls_store *s, struct ls_shards *sh, ls_restart_policy policy, ls_now now,
                            _Atomic uint64_t *progress, ls_load_result *out);

#endif
