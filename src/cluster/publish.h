/*
 * publish.h - this node's inputs into the input stream LS_IN: the ingest
 * port's forwarder in cluster mode (core/ingest.h).  See publish.c.
 */
#ifndef LS_PUBLISH_H
#define LS_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/nats.h"
#include "core/ingest.h"
#include "core/prom.h"

typedef struct ls_publisher ls_publisher;

typedef struct ls_publisher_stats {
    uint64_t published;  /* messages handed to NATS */
    uint64_t stored;     /* acknowledged by the stream */
    uint64_t duplicates; /* of which the stream had already (its duplicate window) */
    uint64_t timeouts;   /* no acknowledgement within the wait */
    uint64_t failed;     /* refused, no stream (no responders), not sent */
    uint64_t inflight;   /* handed over, not settled */
} ls_publisher_stats;

/*
 * A publisher of device items to ls.in.<p>.<token> (msg.h) on n's
 * connection, each acknowledged by the stream within wait_ms or failed.
 * 0 or -ENOMEM / -EIO.
 */
int ls_publisher_open(ls_publisher **out, ls_nats *n, unsigned partitions, int64_t wait_ms);

/* The forwarder's `forward` (ud = the publisher): see ls_ingest_forwarder.
 * -ESHUTDOWN (nothing taken) once the publisher is quiesced. */
int ls_publisher_forward(void *ud, const ls_ingest_item *items, size_t n,
                         ls_ingest_stored_cb stored, void *stored_ud);

/*
 * Takes nothing more (-ESHUTDOWN) and settles what is in flight: waits
 * for the acknowledgements up to the wait, then fails the rest
 * (-ESHUTDOWN) and waits for every callback being made to return.  After
 * it no stored callback is made.  NULL is fine.
 */
void ls_publisher_quiesce(ls_publisher *p);

/* Quiesces and frees (before the connection closes).  NULL is fine. */
void ls_publisher_close(ls_publisher *p);

void ls_publisher_stats_get(ls_publisher *p, ls_publisher_stats *out);

/* The time from publishing to the stream's acknowledgement, for items
 * someone waits for (the HTTP API's). */
const ls_histogram *ls_publisher_latency(ls_publisher *p);

#endif
