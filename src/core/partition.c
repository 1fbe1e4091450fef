/*
 * partition.c - removing a set of devices without events (partition.h).
 *
 * Two phases per chunk, so that no lock is held across a removal's store
 * work: a scan of one shard under its lock alone collects the ids the
 * predicate picks (up to DROP_CHUNK of them), then each is removed as a
 * DELETE of the service removes one (ls_daemon_lock_id(): its shard and
 * the global lock), minus the alarm glue, whose clearing would be an
 * event.  A device that changed between the two phases is removed all
 * the same: the caller guarantees nothing of it is still arriving.
 */
#include "core/partition.h"

#include <stdlib.h>
#include <string.h>

#include "core/daemon.h"
#include "core/persist.h"
#include "core/shards.h"

#define DROP_CHUNK 4096

typedef struct drop_state {
    ls_partition_match_cb match;
    void *ud;
    char (*ids)[LS_ID_BUF];
    size_t *lens;
    size_t n;
} drop_state;

static int drop_match(void *ud, const ls_device *dev)
{
    drop_state *s = ud;
    if (!s->match) return 1;
    char idb[LS_ID_BUF];
    const char *id = ls_device_id(dev, idb);
    return s->match(s->ud, id, dev->id_len);
}

static void drop_visit(void *ud, const ls_device *dev)
{
    drop_state *s = ud;
    char idb[LS_ID_BUF];
    const char *id = ls_device_id(dev, idb);
    memcpy(s->ids[s->n], id, dev->id_len);
    s->ids[s->n][dev->id_len] = '\0';
    s->lens[s->n++] = dev->id_len;
}

static uint64_t remove_ids(ls_daemon *d, drop_state *s)
{
    uint64_t removed = 0;
    for (size_t i = 0; i < s->n; i++) {
        const char *id = s->ids[i];
        size_t len = s->lens[i];
        ls_held h;
        ls_engine *e = ls_daemon_lock_id(d, &h, id, len);
        if (ls_engine_delete(e, id, len) == 0) {
            ls_persist_delete(d, id, len);
            ls_reporter_forget(ls_shards_of(d->shards, id, len)->reporter, id, len);
            removed++;
        }
        ls_daemon_unlock_to_commit(d, &h);
    }
    return removed;
}

uint64_t ls_partition_drop(ls_daemon *d, ls_partition_match_cb match, void *ud)
{
    drop_state s = {.match = match, .ud = ud};
    s.ids = malloc(DROP_CHUNK * sizeof(*s.ids));
    s.lens = malloc(DROP_CHUNK * sizeof(*s.lens));
    uint64_t removed = 0;
    if (!s.ids || !s.lens) {
        free(s.ids);
        free(s.lens);
        return 0;
    }
    ls_shards *sh = d->shards;
    for (unsigned k = 0; k < sh->n; k++) {
        uint64_t cursor = 0;
        do {
            ls_shard *shard = &sh->shard[k];
            s.n = 0;
            ls_mutex_lock(&shard->lock);
            cursor = ls_engine_scan_match(shard->engine, cursor, -1, DROP_CHUNK, LS_PARTITION_SCAN,
                                          drop_match, drop_visit, &s);
            ls_mutex_unlock(&shard->lock);
            removed += remove_ids(d, &s);
        } while (cursor);
    }
    free(s.ids);
    free(s.lens);
    return removed;
}
