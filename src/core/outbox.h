/*
 * outbox.h - the port for sinks: the committed events, in seq order, to
 * whoever reads them (events.jsonl, webhooks, MQTT, the API's replay and
 * streams, and any sink to come).  See outbox.c.
 *
 * The outbox is the ordered log of committed events, kept in the store
 * beside the state that raised them (persist.c).  A sink is a named
 * durable cursor over that log: it reads the events after its cursor,
 * delivers them however it likes, and acknowledges.  Nothing in the core
 * knows what a sink does with them.
 *
 * What it promises:
 *   - An event can be read once it is committed (on disk, with the state
 *     change behind it, and delivered by every inline sink, below), never
 *     before: ls_outbox_committed() is the highest such seq.  Reads return
 *     events in seq order, each with its seq, type, device id, the JSON
 *     line (the bytes of events.jsonl) and the device's state object
 *     inside it, as the committer stored them: no reader parses the line
 *     back.
 *   - A sink's acknowledgement becomes its durable cursor with the next
 *     commit; after a restart ls_outbox_sink_open() returns it, so
 *     delivery is at least once and in seq order.  A sink that keeps its
 *     own copy (the events file) says how far it reaches when it opens:
 *     its cursor is at least that, and seqs continue after it.
 *   - Events a sink has not acknowledged are never pruned by
 *     events.retention: the sink is logged once as behind and counted
 *     (outbox.sinksBehindRetention), and the outbox grows meanwhile.
 *   - One wake mechanism: a watch is an eventfd that becomes readable
 *     when the committed seq moves and when the daemon stops.  A sink that
 *     waits in poll(2) (or curl_multi_poll) polls it; a thread that blocks
 *     calls ls_outbox_wait() on it.
 *   - A sink runs on a thread of its own, or inline: an inline sink
 *     (ls_outbox_sink_inline()) is called on the committer's thread right
 *     after each commit, before the events are committed for anyone else
 *     and before the requests that wait for that commit are answered.  So
 *     a client that got its answer, or read an event anywhere else, finds
 *     the event in that sink (when it could deliver it), as it always
 *     found it in events.jsonl.
 *
 * What it costs: a read is one LMDB read transaction (no lock shared with
 * the engines or the committer) and a copy of the events into the caller's
 * buffer (a scan: no copy, but the caller works inside the transaction);
 * an acknowledgement is a short critical section on the daemon's lock;
 * each commit writes every watch (one write(2) each) and saves each moved
 * cursor (one store op each).  The slowest sink holds back retention, so
 * its backlog is disk (up to store.max_size).  An inline sink's delivery
 * is part of every commit, so it must be quick and must not block (a
 * local file, not a network); in exchange it costs no thread hop: the
 * events file on a thread of its own, reading the commit back from the
 * map, moved about 15 % fewer events per second through the core (200,000
 * events raised by two threads, on two cores) than inline.
 *
 * Threads: sinks open, and say how far their own copy reaches, before the
 * core starts (events get their seqs from then on) or, without such a
 * copy, before the daemon is ready; everything else from any thread that
 * holds no daemon lock.
 */
#ifndef LS_OUTBOX_H
#define LS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct ls_daemon;

#define LS_SINK_NAME_MAX 64 /* a sink's name, its NUL included */

/* One committed event as a sink reads it; the pointers are into the
 * caller's buffer (ls_outbox_read()). */
typedef struct ls_outbox_rec {
    uint64_t seq;
    ls_event_type type; /* LS_EV__COUNT: not known (a record in an unexpected shape) */
    const char *device; /* the device id, or the source's name for SOURCE_*; raw bytes */
    size_t device_len;  /* 0 (device NULL): not known */
    const char *line;   /* the event's JSON line, without its newline */
    size_t line_len;
    const char *state; /* the device's state object inside `line`; NULL: none */
    size_t state_len;
} ls_outbox_rec;

/* Room a read buffer needs for any single event. */
#define LS_OUTBOX_BUF_MIN ((size_t)64 << 10)

/*
 * Registers the durable sink `name` (1..63 bytes; its cursor's key in the
 * store) and returns its id >= 0, with *cursor = the last seq it
 * acknowledged (0 if never), or `holds` if that is more: the seq up to
 * which the sink has its own copy of the events (0: none).  A `holds`
 * above every seq so far makes new events continue after it; that must
 * happen before the core starts (else -EBUSY).  -EINVAL (a bad name),
 * -EEXIST, -ENOSPC (LS_SINKS_MAX); logged.
 */
int ls_outbox_sink_open(struct ls_daemon *d, const char *name, uint64_t holds, uint64_t *cursor);

/*
 * Makes `sink` inline: deliver(ud, durable) is called on the committer's
 * thread after every commit (and at least every store.flush_interval
 * while idle), when every event up to `durable` is on disk and readable
 * by it (ls_outbox_scan() or _read() with upto = durable) but committed
 * for no one else yet.  It delivers, acknowledges, and returns the mono
 * ms by which it wants to be called again (a retry), or 0.  Before the
 * core starts (-EBUSY after); deliver NULL, once the committer has
 * stopped, unregisters it.  0, or -EINVAL / -EBUSY.
 */
typedef int64_t (*ls_outbox_deliver_cb)(void *ud, uint64_t durable);
int ls_outbox_sink_inline(struct ls_daemon *d, int sink, ls_outbox_deliver_cb deliver, void *ud);

/* Sink `sink` delivered every event up to `seq` (at most the last seq on
 * disk; a smaller seq than before is ignored).  Any thread. */
void ls_outbox_ack(struct ls_daemon *d, int sink, uint64_t seq);

/* The highest committed seq: every event up to it can be read. */
uint64_t ls_outbox_committed(struct ls_daemon *d);

/* The oldest seq retention has not pruned (committed + 1 when there is none). */
uint64_t ls_outbox_first(struct ls_daemon *d);

/*
 * Reads up to `max` events with after < seq <= upto into rec[], their
 * bytes into buf (buflen >= LS_OUTBOX_BUF_MIN); stops early when buf is
 * full.  upto is ls_outbox_committed() (or less), or an inline sink's
 * `durable`; never past what is on disk.  Events pruned by retention are
 * simply not there: the first may come after a gap, and 0 means nothing
 * is left up to the bound.  Returns the count, or a negative store error
 * (logged by the store).
 */
int64_t ls_outbox_read(struct ls_daemon *d, uint64_t after, uint64_t upto, ls_outbox_rec *rec,
                       size_t max, char *buf, size_t buflen);

/*
 * The same without a copy: calls cb for each event, with the record
 * pointing into the store's map, valid only during the call, which runs
 * inside a read transaction: keep it short (no blocking, no other outbox
 * or store call); a resize of the store waits for it.  A negative cb
 * result stops the scan and is returned.  Returns the count, or a
 * negative store error.
 */
typedef int (*ls_outbox_scan_cb)(void *ud, const ls_outbox_rec *r);
int64_t ls_outbox_scan(struct ls_daemon *d, uint64_t after, uint64_t upto, size_t max,
                       ls_outbox_scan_cb cb, void *ud);

/*
 * A watch: an eventfd (non-blocking) that becomes readable whenever
 * ls_outbox_committed() moves and when the daemon stops.  Its owner may
 * also write it to wake its own thread.  Up to LS_OUTBOX_WATCHES; the fd,
 * or a negative errno.  ls_outbox_unwatch() closes it (the core closes
 * the ones left when it closes).
 */
#define LS_OUTBOX_WATCHES 16
int ls_outbox_watch(struct ls_daemon *d);
void ls_outbox_unwatch(struct ls_daemon *d, int fd);

/*
 * Blocks on watch `fd` until an event after `after` is committed, the fd
 * is written (at stop, or by its owner) or timeout_ms passes; returns
 * ls_outbox_committed(), which may still be <= after: callers loop.
 */
uint64_t ls_outbox_wait(struct ls_daemon *d, int fd, uint64_t after, int timeout_ms);

/*
 * The core's side (persist.c, daemon.c).  After a commit that made every
 * event up to `upto` durable (those from `first` on are in `batch`), the
 * committer, without the lock, calls ls_outbox__deliver(): it runs the
 * inline sinks (their scans of the batch's events read the batch, not the
 * map) and returns the earliest
 * mono ms one of them wants to be called again (0: none); then, under the
 * lock, ls_outbox__committed() commits those events for every reader and
 * writes the watches.  ls_outbox__wake_all(): writes every watch, under
 * the lock (stop).  ls_outbox__close(): closes the watches left.
 */
struct ls_store_batch;
int64_t ls_outbox__deliver(struct ls_daemon *d, uint64_t upto, const struct ls_store_batch *batch,
                           uint64_t first);
void ls_outbox__committed(struct ls_daemon *d, uint64_t upto);
void ls_outbox__wake_all(struct ls_daemon *d);
void ls_outbox__close(struct ls_daemon *d);

#endif
