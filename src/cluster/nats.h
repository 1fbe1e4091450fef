/*
 * nats.h - the node's NATS connection, its JetStream context, and the
 * streams and buckets of the cluster (provisioned idempotently).  See
 * nats.c.
 *
 * Names (docs/cluster.md, "Names"): the input stream LS_IN (subjects
 * ls.in.>), the lease bucket LS_LEASE and the member bucket LS_MEMBERS.
 * Every call that waits for a server says how long: nothing here blocks
 * without a bound.
 */
#ifndef LS_NATS_H
#define LS_NATS_H

#include <stdint.h>

#include <nats/nats.h>

#define LS_NATS_STREAM_IN "LS_IN"
#define LS_NATS_SUBJECTS_IN "ls.in.>"
#define LS_NATS_BUCKET_LEASE "LS_LEASE"
#define LS_NATS_BUCKET_MEMBERS "LS_MEMBERS"
#define LS_NATS_DUPLICATES_MS (2 * 60 * 1000) /* LS_IN's duplicate window */

typedef struct ls_nats ls_nats;

typedef struct ls_nats_opts {
    const char *urls; /* cluster.nats: comma-separated nats:// URLs */
    const char *name; /* the connection's name, as servers list it */
    int64_t ping_ms;  /* a dead connection is noticed within about twice this */
    int64_t wait_ms;  /* the JetStream context's default wait */
    /* Any thread (a NATS one): the connection was lost, came back or closed. */
    void (*changed)(void *ud);
    /* A NATS thread: an asynchronous error about subscription `sub` (NULL:
     * about the connection), such as NATS_MISSED_HEARTBEAT. */
    void (*async_error)(void *ud, natsSubscription *sub, natsStatus s);
    void *ud;
} ls_nats_opts;

/*
 * Starts connecting to the servers (in the background: the call does not
 * wait for them) with reconnects forever, global message delivery for
 * subscriptions and pending requests failed at a disconnect.  0, or
 * -EINVAL / -ENOMEM (logged).
 */
int ls_nats_open(ls_nats **out, const ls_nats_opts *o);

/* Closes the connection (every subscription must be destroyed) and frees,
 * once cnats has made its last callback (the closed one): the callbacks'
 * ud must live until this returns. */
void ls_nats_close(ls_nats *n);

/* 1 while connected. */
int ls_nats_connected(ls_nats *n);

natsConnection *ls_nats_conn(ls_nats *n);
jsCtx *ls_nats_js(ls_nats *n);

/* Servers known to the connection (given and discovered); at least 1. */
int ls_nats_servers(ls_nats *n);

/* What ls_nats_provision() sets up. */
typedef struct ls_nats_layout {
    int64_t input_retention_ms; /* LS_IN's max age */
    int64_t lease_ttl_ms;       /* the buckets' max age */
    int64_t wait_ms;            /* per request */
} ls_nats_layout;

/*
 * Creates LS_IN, LS_LEASE and LS_MEMBERS with replicas = min(3, servers
 * known) unless they exist; existing ones are kept as they are (a
 * difference from `lay` is logged once).  *lease_ttl_ms gets the lease
 * bucket's max age, which rules the leases' timing.  0, or a negative
 * errno when a server did not answer or refused (the caller tries again).
 */
int ls_nats_provision(ls_nats *n, const ls_nats_layout *lay, int64_t *lease_ttl_ms);

/* A short text for a status and the thread's last NATS error. */
const char *ls_nats_error(natsStatus s);

#endif
