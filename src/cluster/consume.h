/*
 * consume.h - the input stream into this node's shards: one ordered
 * consumer per owned partition, applied through an ingest producer.  See
 * consume.c.
 */
#ifndef LS_CONSUME_H
#define LS_CONSUME_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/nats.h"
#include "core/ingest.h"

typedef struct ls_consumers ls_consumers;

typedef struct ls_consumers_opts {
    ls_nats *nats;
    ls_ingest *in;                      /* a port without forwarder: this node's shards */
    const ls_ingest_counters *counters; /* lastseen_activities_total{source="cluster"} */
    unsigned partitions;                /* cluster.partitions */
    unsigned src_live;                  /* the gated source "cluster" */
    unsigned src_replay;                /* the gated source "cluster-replay" */
    int64_t heartbeat_ms;
    int64_t wait_ms;
    /* A partition caught up (the delivery thread, holding no lock). */
    void (*caught_up)(void *ud);
    void *ud;
} ls_consumers_opts;

/* Why a message was not applied. */
typedef enum ls_consume_reject {
    LS_CONSUME_BAD_SUBJECT = 0, /* not ls.in.<p>.<token> */
    LS_CONSUME_BAD_TOKEN,       /* not the token of a valid id */
    LS_CONSUME_BAD_PARTITION,   /* the token belongs to another partition: a mapping with
                                 * another partition count */
    LS_CONSUME_BAD_HEADER,      /* an Ls header this version does not know */
    LS_CONSUME__REJECTS
} ls_consume_reject;

/* One owned partition, as ls_consumers_partition() reports it. */
typedef struct ls_consume_part {
    int consuming;        /* a consumer delivers it */
    int catching_up;      /* still reading what was stored before it started */
    uint64_t applied_seq; /* the stream sequence of its last message handed to the shards */
    uint64_t applied;     /* messages applied since it started */
    uint64_t restarts;    /* consumers made again after a gap or an error */
} ls_consume_part;

typedef struct ls_consumers_stats {
    uint64_t applied;
    uint64_t rejected[LS_CONSUME__REJECTS];
    unsigned consuming, catching_up;
    int64_t last_stall_mono; /* when a consumer last missed its heartbeats (0: never) */
    uint64_t restarts;       /* consumers made again */
} ls_consumers_stats;

/* Opens the producer; no consumer yet.  0 or -ENOMEM. */
int ls_consumers_open(ls_consumers **out, const ls_consumers_opts *o);

/*
 * Starts partition p's consumer from the first message stored at or
 * after from_wall_ms; it catches up (its items tagged src_replay) until a
 * message stored after the start arrives or none is pending.  0, or a
 * negative errno when the server did not make the consumer: it is tried
 * again by ls_consumers_check(), as after a gap or an error.  The node
 * thread.
 */
int ls_consumers_start(ls_consumers *c, unsigned p, int64_t from_wall_ms);

/*
 * Stops p's consumer, if any, and returns once every item of p handed
 * over is applied: no message of p reaches the shards afterwards.  Any
 * thread holding no daemon lock.
 */
void ls_consumers_stop(ls_consumers *c, unsigned p);

/* The node thread, every turn: makes the consumers to be made again,
 * destroys stopped ones, and asks the servers whether the partitions
 * still catching up have anything left to read (at most every second). */
void ls_consumers_check(ls_consumers *c);

/* cnats reported an error about sub (missed heartbeats, fell behind):
 * if it is a partition's consumer, it is made again (and the stall is
 * noted). */
void ls_consumers_stalled(ls_consumers *c, natsSubscription *sub);

/* Partitions catching up now. */
unsigned ls_consumers_catching_up(ls_consumers *c);

void ls_consumers_stats_get(ls_consumers *c, ls_consumers_stats *out);
void ls_consumers_partition(ls_consumers *c, unsigned p, ls_consume_part *out);
const char *ls_consume_reject_name(ls_consume_reject r);

/* From any thread: consumers are no longer made (the node is stopping),
 * so that the node thread's turn ends without waiting on more servers. */
void ls_consumers_abort(ls_consumers *c);

/* Stops every consumer and closes the producer (before the shards stop). */
void ls_consumers_close(ls_consumers *c);

#endif
