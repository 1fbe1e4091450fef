/*
 * stats.h - the port through which an adapter (an input or a sink) shows
 * its own figures in /api/v1/stats and /metrics, without the API knowing
 * the adapter.
 *
 * An adapter registers one ls_stats_port when it starts, before the
 * daemon is ready; the HTTP API calls its writers from its own threads,
 * holding no daemon lock, until the API has stopped (the composition root
 * stops HTTP before it frees any adapter).  So a writer reads the
 * adapter's counters as any other thread would: atomics, or its own small
 * lock.  Cost: nothing until a stats request; then one call per adapter.
 */
#ifndef LS_STATS_H
#define LS_STATS_H

#include <stdint.h>

#include "base/buf.h"

struct ls_daemon;

#define LS_STATS_PORTS_MAX 16

typedef struct ls_stats_port {
    const char *key; /* its member of /api/v1/stats: letters, no escaping */
    /* Writes the member's JSON value (an object, an array, a number).  `committed`
     * is the highest committed event seq, for lags. */
    void (*json)(void *ud, ls_buf *b, uint64_t committed);
    /* Writes its Prometheus families (core/prom.h), or NULL for none. */
    void (*prom)(void *ud, ls_buf *b, uint64_t committed);
    void *ud;
} ls_stats_port;

/* Registers a port (copied) before the daemon is ready.  0, or -ENOSPC. */
int ls_stats_register(struct ls_daemon *d, const ls_stats_port *p);

/* Appends ,"key":value for every registered port, in registration order. */
void ls_stats_ports_json(struct ls_daemon *d, ls_buf *b, uint64_t committed);

/* Appends the Prometheus families of every registered port. */
void ls_stats_ports_prom(struct ls_daemon *d, ls_buf *b, uint64_t committed);

#endif
