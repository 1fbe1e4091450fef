/*
 * flush.h - flush passes: the records of devices that only reported
 * activity, copied from the engine in bounded chunks and written to the
 * store in key-ordered slices.  See flush.c.  Committer thread only.
 */
#ifndef LS_FLUSH_H
#define LS_FLUSH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "store/store.h"

typedef struct ls_flush ls_flush;

/* What one pass did, for metrics. */
typedef struct ls_flush_stats {
    uint64_t passes;               /* passes completed */
    uint64_t records;              /* records written by them */
    uint64_t superseded;           /* staged records dropped: a later commit wrote the device */
    uint64_t slices;               /* transactions */
    uint64_t last_staged, last_ns; /* the last pass: records staged, begin to end */
    uint64_t max_staged, max_ns;   /* the pass with the most records since start */
} ls_flush_stats;

/* A flush for `engine` (read only while the caller holds the engine lock). */
int ls_flush_new(ls_flush **out, const ls_engine *engine);

/* The engine the next ls_flush_stage_cb() calls read from (a shard's). */
void ls_flush_set_engine(ls_flush *f, const ls_engine *engine);
void ls_flush_free(ls_flush *f);

/* 1 while a pass is staged or being written: commits of other records must
 * then be reported with ls_flush_supersede(). */
int ls_flush_active(const ls_flush *f);

/* Starts a pass, or the next chunk of one: records staged by
 * ls_flush_stage_cb() until the next call belong to this chunk. */
void ls_flush_chunk(ls_flush *f);

/*
 * Under the engine locks (which ls_flush_chunk() is called under): a tag
 * for a device record taken now, outside a commit (a record taken with its
 * event: persist.c).  Put in the batch with ls_store_batch_put_device_tagged(),
 * it tells ls_flush_supersede() which staged records are older than the
 * record (those staged before it), however late the commit is built.
 * f may be NULL (0: untagged).
 */
uint64_t ls_flush_tag(const ls_flush *f);

/* Makes room for `records` more staged records, so that staging them
 * under the engine lock allocates nothing.  Call without the lock.
 * 0 or -ENOMEM (staging then counts what does not fit as errors). */
int ls_flush_reserve(ls_flush *f, size_t records);

/* ls_visit_cb for ls_engine_flush_next() (ud = the flush), under the engine
 * lock: keeps the device's id and record (ls_engine_snapshot()), the record
 * in the store's encoding, which the write only copies.  A record that
 * cannot be staged (out of memory) is counted: ls_flush_errors(). */
void ls_flush_stage_cb(void *ud, const ls_device *dev);

/* Records staged so far in this pass that could not be (out of memory). */
uint64_t ls_flush_errors(const ls_flush *f);

/*
 * The records of `b` (device puts and deletes), about to be committed: an
 * untagged one was taken after every chunk staged so far, a tagged one
 * (ls_flush_tag()) after the chunks up to its tag.  The staged records of
 * the same devices from those chunks are older and are dropped, so that the
 * pass never writes a device back to an older state; chunks staged later
 * are newer and kept.  No-op when no pass is active.
 */
void ls_flush_supersede(ls_flush *f, const ls_store_batch *b);

/*
 * Writes the next slice of the staged pass (after the last chunk): up to a
 * number of records, in id order, in one transaction, sized so that one
 * takes about FLUSH_SLICE_MS.  Sets *done after the last slice (the pass
 * ends; stats updated).  0, or the store's error: the same slice is tried
 * again by the next call.
 */
int ls_flush_write(ls_flush *f, ls_store *s, int *done);

void ls_flush_get_stats(const ls_flush *f, ls_flush_stats *out);

#endif
