/*
 * partition.h - the port through which cluster mode takes a partition's
 * devices out of this node's shards (docs/cluster.md): when a node stops
 * owning a partition, and at start, when the devices its store restored
 * are not its own until it acquires their partitions.  See partition.c.
 *
 * What it promises: every device the caller's predicate picks is gone
 * from its shard (record, timer, what the HTTP reporter holds of it) and
 * from the store with the next commit, and no event is raised for it:
 * the node that owns it now reports it.  Devices the predicate does not
 * pick are untouched.  An open unavailability alarm of a removed device
 * stays in this node's alarm table (alarms move with their partitions in
 * a later version).
 *
 * What it costs: one walk of every shard's table, each shard locked for
 * at most LS_PARTITION_SCAN slots at a time (its worker waits that long
 * at most), the predicate called for every device under that lock; then
 * one shard and global lock hold per removed device, and a commit.
 *
 * Threads: any thread that holds no daemon lock, while the shards run.
 * The caller makes sure nothing of the partition is still on its way into
 * the shards (its producer synced), or the device comes back.
 */
#ifndef LS_PARTITION_H
#define LS_PARTITION_H

#include <stddef.h>
#include <stdint.h>

struct ls_daemon;

#define LS_PARTITION_SCAN 65536 /* slots walked per lock hold */

/* Picks a device by its id (id_len bytes, NUL-terminated).  Called under a
 * shard's lock: pure computation only. */
typedef int (*ls_partition_match_cb)(void *ud, const char *id, size_t len);

/* Removes every device match() picks (match NULL: every device), without
 * events.  Returns how many were removed. */
uint64_t ls_partition_drop(struct ls_daemon *d, ls_partition_match_cb match, void *ud);

#endif
