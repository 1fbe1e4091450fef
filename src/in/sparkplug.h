/*
 * sparkplug.h - Eclipse Sparkplug B presence: births, deaths and bdSeq.
 * See sparkplug.c.
 */
#ifndef LS_SPARKPLUG_H
#define LS_SPARKPLUG_H

#include <stddef.h>
#include <stdint.h>

#define LS_SP_PREFIX "spBv1.0/"
#define LS_SP_PREFIX_LEN 8
#define LS_SP_FILTER "spBv1.0/#"
#define LS_SP_PAYLOAD_MAX (16u << 20) /* larger births/deaths are refused */
#define LS_SP_NODES_MAX (1u << 20)
#define LS_SP_NODE_DEVICES_MAX 65536

/* What a message means for a device id. */
typedef enum ls_sp_op {
    LS_SP_ACTIVITY = 0, /* NDATA, DDATA */
    LS_SP_ONLINE,       /* NBIRTH, DBIRTH */
    LS_SP_OFFLINE,      /* NDEATH (and every device of that node), DDEATH */
} ls_sp_op;

/* Receives each resulting operation, in order; id is only valid during the call. */
typedef void (*ls_sp_op_cb)(void *ud, ls_sp_op op, const char *id, size_t len, int retained);

/* Counters, written by the thread that calls ls_sparkplug_message(), read
 * anywhere with relaxed atomic loads. */
typedef struct ls_sparkplug_stats {
    uint64_t births, deaths;
    uint64_t stale_deaths; /* NDEATH whose bdSeq is not the current NBIRTH's */
    uint64_t bad_payloads; /* births/deaths that do not decode */
    uint64_t bad_topics;   /* spBv1.0/... without the levels its type needs */
    uint64_t ignored;      /* NCMD, DCMD, STATE, unknown types */
    uint64_t untracked;    /* devices or nodes past the caps, not remembered */
} ls_sparkplug_stats;

typedef struct ls_sparkplug ls_sparkplug;

int ls_sparkplug_new(ls_sparkplug **out);
void ls_sparkplug_free(ls_sparkplug *sp);

/*
 * Handles one message whose topic starts with LS_SP_PREFIX.  Births and
 * deaths are decoded (protobuf-c); an NDEATH is checked against the bdSeq
 * of the node's current NBIRTH and, if it is not stale, takes every device
 * born under the node offline too.  Calls cb for each resulting operation.
 * Returns the number of operations, or -1 if the message was counted as
 * bad or ignored.
 */
int ls_sparkplug_message(ls_sparkplug *sp, const char *topic, size_t tlen, const void *payload,
                         size_t plen, int retained, ls_sp_op_cb cb, void *ud);

/*
 * Finds the "bdSeq" metric of a payload.  Returns 1 and *out, 0 if the
 * payload decodes but has no such metric, -1 if it does not decode.
 */
int ls_sparkplug_bdseq(const void *payload, size_t plen, uint64_t *out);

void ls_sparkplug_get_stats(const ls_sparkplug *sp, ls_sparkplug_stats *out);

#endif
