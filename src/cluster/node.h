/*
 * node.h - a cluster node: what the composition root starts when
 * cluster.nats is set (docs/cluster.md).  See node.c.
 */
#ifndef LS_NODE_H
#define LS_NODE_H

struct ls_config;
struct ls_daemon;
struct ls_ingest;

typedef struct ls_cluster ls_cluster;

/*
 * Starts cluster mode, after the core's shards run and before the inputs
 * start: drops the devices the store restored (the node owns no partition
 * yet), sets the forwarder on `inputs` (the port every input and the HTTP
 * API get: their items go to the input stream from now on), registers the
 * sources "cluster" and "cluster-replay" and the "cluster" figures on
 * `local` (a second port, without forwarder, which the node takes over:
 * its consumers apply the stream into the shards through it), and starts
 * connecting, provisioning and taking partitions in the background.
 * 0, or a negative errno (logged).
 */
int ls_cluster_start(ls_cluster **out, struct ls_daemon *d, struct ls_ingest *inputs,
                     struct ls_ingest *local, const struct ls_config *cfg);

/* Takes nothing more from the inputs and settles what they forwarded
 * (the stream's acknowledgements, else failures): before HTTP stops,
 * after the MQTT input stopped.  NULL is fine. */
void ls_cluster_quiesce(ls_cluster *c);

/* Hands every partition over and leaves, closes the connection and frees:
 * after the inputs stopped, before the shards drain.  NULL is fine. */
void ls_cluster_stop(ls_cluster *c);

#endif
