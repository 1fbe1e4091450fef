/*
 * store.h - lastseen's durable state on LMDB: devices, device types,
 * alarms, the event outbox, sink cursors and metadata.  See store.c for
 * the on-disk format.
 *
 * The store keeps the engine's own records - a device is an
 * ls_device_state, a type's settings an ls_type_config, an alarm an
 * ls_alarm (engine.h, alarms.h) - and encodes them itself; nothing above
 * it copies their fields into a shape of its own.
 *
 * Writes are batches: the caller fills an ls_store_batch in memory (no
 * LMDB transaction is open meanwhile) and ls_store_write() applies it in
 * one write transaction, growing the map and retrying when it is full.
 * One writer thread at a time; reads may run from any thread.
 *
 * Errors are 0 or negative, from base/err.h: -errno, LS_ENOMEM, and the
 * store's own LS_STORE_EVERSION, LS_STORE_ECORRUPT and LS_STORE_EFULL.
 */
#ifndef LS_STORE_H
#define LS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "engine/alarms.h"
#include "engine/engine.h"

#define LS_STORE_FORMAT 2 /* on-disk format version written by this build (1 is still read) */

/*
 * Limits of the records the store takes: a device id, a type name and an
 * alarm's source are 1..511 bytes (the longest LMDB key), a device's type
 * at most 65535; a responseInterval is -32768..32767.  An encoded device
 * record is LS_STORE_DEVICE_FIXED bytes plus its type.
 */
#define LS_STORE_DEVICE_FIXED 52

typedef struct ls_store_options {
    uint64_t initial_size; /* map size to start with (bytes), e.g. 64 MiB */
    uint64_t max_size;     /* store.max_size: never grow past this; 0 = no cap */
    int sync;              /* 1 = fsync each commit (durable against power loss) */
    int read_only;         /* 1 = open an existing store for reading only */
} ls_store_options;

typedef struct ls_store ls_store;

/*
 * Opens (creating) the store in directory `dir`.  A store written with a
 * newer format returns LS_STORE_EVERSION; a file that is not an LMDB store
 * or is damaged returns LS_STORE_ECORRUPT.  Each failure is logged once with
 * the path and the reason.
 *
 * With o->read_only the store must exist (-ENOENT, logged, when `dir` or
 * dir/data.mdb is missing or was never initialised) and nothing is created,
 * grown or written: the environment is opened MDB_RDONLY, and
 * ls_store_write() returns -EROFS.  It may be opened while another process
 * (a running daemon) writes the same store: each read function sees one
 * committed state.
 */
int ls_store_open(ls_store **out, const char *dir, const ls_store_options *o);
void ls_store_close(ls_store *s);

/* A batch of writes, built in memory.  Every op copies its arguments. */
typedef struct ls_store_batch ls_store_batch;
ls_store_batch *ls_store_batch_new(void);
void ls_store_batch_free(ls_store_batch *b);
void ls_store_batch_clear(ls_store_batch *b);
size_t ls_store_batch_ops(const ls_store_batch *b);
int ls_store_batch_put_device(ls_store_batch *b, const ls_device_state *d);
/* The same with a tag kept beside the op for ls_store_batch_each_device()
 * (the store ignores it; the committer notes when the record was taken). */
int ls_store_batch_put_device_tagged(ls_store_batch *b, const ls_device_state *d, uint64_t tag);
/*
 * A device's record (not its id) in the store's encoding, for a caller that
 * keeps many records for a while before it writes them (flush passes): the
 * encoding is compact and ls_store_batch_put_device_encoded() only copies
 * it.  Writes it to out when it fits in cap bytes; returns its length
 * either way, or -EINVAL for a record the store does not take.
 */
int ls_store_device_encode(const ls_device_state *d, unsigned char *out, size_t cap);
/* Puts device `id` with a record from ls_store_device_encode() (len bytes). */
int ls_store_batch_put_device_encoded(ls_store_batch *b, const char *id, size_t id_len,
                                      const unsigned char *rec, size_t len, uint64_t tag);
int ls_store_batch_del_device(ls_store_batch *b, const char *id, size_t len);
int ls_store_batch_del_device_tagged(ls_store_batch *b, const char *id, size_t len, uint64_t tag);
/*
 * An outbox event: its JSON line and, beside it, what readers select and
 * route by, so that none of them parses the line back.  The store does not
 * interpret any of it; `type` is an ls_event_type for the core.
 */
typedef struct ls_store_event {
    uint64_t seq;
    int type; /* 0..254; -1 = not recorded (a format-1 record, or written without) */
    const char *line;
    size_t line_len;
    const char *device; /* NULL = not recorded; may point into line */
    size_t device_len;  /* 0..65535 */
    size_t state_off;   /* the device's state object: line[state_off..+state_len] */
    size_t state_len;   /* 0 = none (or not recorded) */
} ls_store_event;

/* Queues an outbox event: seq must increase across the batches of a store.
 * A device that points into the line is stored as a reference to it. */
int ls_store_batch_put_event(ls_store_batch *b, const ls_store_event *ev);
/* The same with the line only (type -1, no device, no state): tools, tests. */
int ls_store_batch_event(ls_store_batch *b, uint64_t seq, const char *line, size_t len);
int ls_store_batch_cursor(ls_store_batch *b, const char *sink, uint64_t seq);
/* Deletes outbox events with seq <= upto (and their retention marks). */
int ls_store_batch_prune(ls_store_batch *b, uint64_t upto);
/* Retention mark: events from `seq` on were committed at or after `wall` (ms). */
int ls_store_batch_mark(ls_store_batch *b, uint64_t seq, int64_t wall);
/* A type's settings (c->severity 0..255 and the other fields in the
 * ranges of ls_type_config; the engine checks the rest when it loads them). */
int ls_store_batch_put_type(ls_store_batch *b, const char *name, size_t len,
                            const ls_type_config *c);
int ls_store_batch_del_type(ls_store_batch *b, const char *name, size_t len);
/* Puts an alarm and raises the stored highest alarm id to its id. */
int ls_store_batch_put_alarm(ls_store_batch *b, const ls_alarm *a);
int ls_store_batch_del_alarm(ls_store_batch *b, uint64_t id);
/* Moves every op of `src` to the end of `dst`, in order (no copy: src's
 * blocks change hands), leaving `src` empty.  0, or -ENOMEM (past the
 * batch cap, or no memory for the block list) with both unchanged. */
int ls_store_batch_append(ls_store_batch *dst, ls_store_batch *src);
/* Calls cb with the id of every device put or deleted by the batch, in
 * order, and the op's tag (0 for untagged ops). */
void ls_store_batch_each_device(const ls_store_batch *b,
                                void (*cb)(void *ud, const char *id, size_t len, uint64_t tag),
                                void *ud);

/*
 * Applies the batch in one transaction (ops in order).  On MDB_MAP_FULL the
 * map is doubled (capped at max_size) and the batch retried; past the cap,
 * LS_STORE_EFULL and nothing of the batch is applied.  0 or negative.
 */
int ls_store_write(ls_store *s, const ls_store_batch *b);

/*
 * Reads.  Each record handed to a callback is valid during the callback
 * only (its strings are NUL-terminated copies, reused for the next one);
 * a negative cb result stops the read and is returned.
 */
typedef int (*ls_store_device_cb)(void *ud, const ls_device_state *d);
/* Calls cb for every device (in key order). */
int ls_store_load_devices(ls_store *s, ls_store_device_cb cb, void *ud);
uint64_t ls_store_device_count(ls_store *s);

typedef int (*ls_store_type_cb)(void *ud, const char *name, size_t len, const ls_type_config *c);
int ls_store_load_types(ls_store *s, ls_store_type_cb cb, void *ud);
typedef int (*ls_store_alarm_cb)(void *ud, const ls_alarm *a);
/* Calls cb for every alarm in id order. */
int ls_store_load_alarms(ls_store *s, ls_store_alarm_cb cb, void *ud);
/* The highest alarm id ever stored (pruned alarms included), 0 if none. */
uint64_t ls_store_alarm_last_id(ls_store *s);

/*
 * Calls cb for up to `max` outbox events with after < seq <= upto, in seq
 * order, in one read transaction: the event's pointers are into the map,
 * valid only during the call.  A negative cb result stops the read and is
 * returned.  Returns the count, or < 0 (LS_STORE_ECORRUPT, logged with the
 * seq, for a record that does not add up).
 */
typedef int (*ls_store_outbox_cb)(void *ud, const ls_store_event *ev);
int64_t ls_store_read_outbox(ls_store *s, uint64_t after, uint64_t upto, size_t max,
                             ls_store_outbox_cb cb, void *ud);

/* The same with the line only, for tools and tests.  Returns the count or < 0. */
typedef int (*ls_store_event_cb)(void *ud, uint64_t seq, const char *line, size_t len);
int64_t ls_store_read_events(ls_store *s, uint64_t after, size_t max, ls_store_event_cb cb,
                             void *ud);
/*
 * ls_store_read_outbox() over the events of batch b, in the batch's order,
 * from position *pos (0: the start), which is left at the first event not
 * handed over: the next call goes on from there.  For a writer that hands
 * what it just wrote to a reader without reading it back from the map.
 */
int64_t ls_store_batch_read_outbox(const ls_store_batch *b, size_t *pos, uint64_t after,
                                   uint64_t upto, size_t max, ls_store_outbox_cb cb, void *ud);

/* Calls cb for every event of batch b with seq > after, in the batch's
 * order, until cb returns nonzero.  Returns the count of events cb took. */
int64_t ls_store_batch_each_event(const ls_store_batch *b, uint64_t after, ls_store_event_cb cb,
                                  void *ud);
/* Highest seq in the outbox, or the highest ever pruned; 0 if none ever. */
uint64_t ls_store_last_seq(ls_store *s);
/* Lowest seq still in the outbox, 0 if empty. */
uint64_t ls_store_first_seq(ls_store *s);

/*
 * The highest seq that was certainly committed before `cutoff` (wall ms),
 * judged by the retention marks: prune up to it to keep what is younger.
 * 0 when nothing is known to be that old.
 */
uint64_t ls_store_prunable(ls_store *s, int64_t cutoff);

/* A sink's durable cursor (last delivered seq); 0 if never set. */
uint64_t ls_store_cursor(ls_store *s, const char *sink);

/*
 * Drops the pages of the map that this process has read from its resident
 * set (madvise MADV_DONTNEED on the whole read-only map).  The data stays
 * in the OS page cache and later reads fault it back in, so nothing is
 * lost: call it after a read that touched much of the file (the start-up
 * load), so that those pages do not count in the process's RSS forever.
 */
void ls_store_drop_pages(ls_store *s);

/* Current map size and bytes in use, for metrics and logs. */
void ls_store_usage(ls_store *s, uint64_t *map_size, uint64_t *used);

#endif
