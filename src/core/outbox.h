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
 *     change behind it, and in every awaited sink, below), never before:
 *     ls_outbox_committed() is the highest such seq.  Reads return events
 *     in seq order, each with its seq, type, device id, the JSON line
 *     (the bytes of events.jsonl) and the device's state object inside
 *     it, as the committer stored them: no reader parses the line back.
 *   - A sink's acknowledgement becomes its durable cursor with the next
 *     commit; after a restart ls_outbox_sink_open() returns it, so
 *     delivery is at least once and in seq order.  A sink that keeps its
 *     own copy (the events file) says how far it reaches when it opens:
 *     its cursor is at least that, and seqs continue after it.
 *   - Events a sink has not acknowledged are never pruned by
 *     events.retention: the sink is logged once as behind and counted
 *     (outbox.sinksBehindRetention), and the outbox grows meanwhile.
 *   - One wake mechanism: a watch is an eventfd that becomes readable
 *     when the committed (or durable) seq moves and when the daemon stops.  A sink
 *     that waits in poll(2) (or curl_multi_poll) polls it; a thread that
 *     blocks calls ls_outbox_wait() on it.
 *   - An awaited sink (LS_OUTBOX_AWAITED) comes first: it reads events as
 *     soon as they are on disk (up to ls_outbox_durable()), and they are
 *     committed for everyone else, and the answers of API requests that
 *     wait for their commit are given, only once it has acknowledged
 *     them.  So a client that got its answer, or read an event anywhere
 *     else, finds the event in that sink, as it always found it in
 *     events.jsonl.  The sink lifts that while it cannot deliver
 *     (ls_outbox_sink_await()).
 *
 * What it costs: a read is one LMDB read transaction (no lock shared with
 * the engines or the committer) and a copy of the events into the caller's
 * buffer; an acknowledgement is a short critical section on the daemon's
 * lock; each commit writes every watch (one write(2) each; once more when
 * an awaited sink releases it: the others may wake for nothing) and saves
 * each moved cursor (one store op each).  The slowest sink holds back
 * retention, so its backlog is disk (up to store.max_size).  An awaited
 * sink adds its delivery to the latency of the answers whose commit
 * carried events, and to every other reader's view of them.
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

/* ls_outbox_sink_open() flags. */
#define LS_OUTBOX_AWAITED 1 /* answers to the API wait for this sink (see above) */

/*
 * Registers the durable sink `name` (1..63 bytes; its cursor's key in the
 * store) and returns its id >= 0, with *cursor = the last seq it
 * acknowledged (0 if never), or `holds` if that is more: the seq up to
 * which the sink has its own copy of the events (0: none).  A `holds`
 * above every seq so far makes new events continue after it; that must
 * happen before the core starts (else -EBUSY).  -EINVAL (a bad name),
 * -EEXIST, -ENOSPC (LS_SINKS_MAX); logged.
 */
int ls_outbox_sink_open(struct ls_daemon *d, const char *name, int flags, uint64_t holds,
                        uint64_t *cursor);

/* Sink `sink` delivered every event up to `seq` (at most the durable
 * seq; a smaller seq than before is ignored).  Any thread. */
void ls_outbox_ack(struct ls_daemon *d, int sink, uint64_t seq);

/* An awaited sink says whether answers should wait for it (0: it cannot
 * deliver for now, so they do not; 1: it delivers again). */
void ls_outbox_sink_await(struct ls_daemon *d, int sink, int on);

/* The highest committed seq: every event up to it can be read. */
uint64_t ls_outbox_committed(struct ls_daemon *d);

/* The highest seq on disk: what an awaited sink reads up to (the others
 * wait for ls_outbox_committed()). */
uint64_t ls_outbox_durable(struct ls_daemon *d);

/* The oldest seq retention has not pruned (committed + 1 when there is none). */
uint64_t ls_outbox_first(struct ls_daemon *d);

/*
 * Reads up to `max` events with after < seq <= min(upto,
 * ls_outbox_durable()) into rec[], their bytes into buf (buflen >=
 * LS_OUTBOX_BUF_MIN); stops early when buf is full.  Readers other than
 * an awaited sink pass ls_outbox_committed() (or less) as upto.  Events
 * pruned by retention are simply not there: the first may come after a gap, and 0
 * means nothing is left up to the bound.  Returns the count, or a negative
 * store error (logged by the store).
 */
int64_t ls_outbox_read(struct ls_daemon *d, uint64_t after, uint64_t upto, ls_outbox_rec *rec,
                       size_t max, char *buf, size_t buflen);

/*
 * A watch: an eventfd (non-blocking) that becomes readable whenever
 * ls_outbox_committed() or ls_outbox_durable() moves and when the daemon
 * stops.  Its owner may
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
 * The core's side (persist.c, daemon.c), under the daemon's lock.
 * ls_outbox__committed(): the commit of generation `gen` is over (`ok`:
 * written, making every event up to `upto` durable); moves the durable
 * seq, releases what the awaited sinks allow, writes the watches and
 * returns the generation released for the answers (0: none; the caller
 * runs the on_commit hook after unlocking).
 * ls_outbox__wake_all(): writes every watch (stop).  ls_outbox__close():
 * closes the watches left.
 */
uint64_t ls_outbox__committed(struct ls_daemon *d, uint64_t gen, uint64_t upto, int ok);
void ls_outbox__wake_all(struct ls_daemon *d);
void ls_outbox__close(struct ls_daemon *d);

#endif
