/*
 * msg.h - the messages of the input stream LS_IN: their subjects and what
 * they say.  See msg.c and docs/cluster.md, "The input message".
 *
 * A message's subject is ls.in.<p>.<token>: the partition and the device
 * (token.h).  What it says is in one optional header, `Ls`; a message
 * without it (what a device publishes on dev.<token>, whatever its
 * payload) is an activity at the time the stream stored it.  The payload
 * is never read.
 *
 *   Ls: act ts=1795326633812   an activity with its own time (wall ms);
 *                              "act" alone is the same as no header
 *   Ls: on                     a session opened (MQTT "online", HTTP connect)
 *   Ls: off                    the open session closed
 *   Ls: on r / Ls: off r       the same from a retained message (a state, not news)
 *
 * Pure; the parsers read outside input and are fuzzed.
 */
#ifndef LS_MSG_H
#define LS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/token.h"

#define LS_MSG_HEADER "Ls"
#define LS_MSG_PREFIX "ls.in."
/* Room for any subject: the prefix, a partition up to 1023, a dot, a token, a NUL. */
#define LS_MSG_SUBJECT_BUF (sizeof(LS_MSG_PREFIX) + 5 + LS_TOKEN_BUF)
/* Room for any header value and its NUL. */
#define LS_MSG_HEADER_BUF 32

/* What one message says.  kind: 0 = an activity, else LS_INGEST_ONLINE or
 * LS_INGEST_OFFLINE (core/ingest.h), or-ed with LS_INGEST_RETAINED. */
typedef struct ls_msg_item {
    unsigned kind;
    int64_t ts; /* an activity's own time (wall ms); 0 = the stream's timestamp */
} ls_msg_item;

/* Writes ls.in.<p>.<token> into buf (LS_MSG_SUBJECT_BUF) and returns its length. */
size_t ls_msg_subject(char *buf, unsigned p, const char *tok, size_t n);

/*
 * Reads a subject ls.in.<p>.<token>: *p (below `partitions`, decimal
 * without leading zeros) and the token (tok[0..*n), inside s).  0, or
 * LS_EINVAL for any other subject.
 */
int ls_msg_parse_subject(const char *s, size_t len, unsigned partitions, unsigned *p,
                         const char **tok, size_t *n);

/*
 * Writes the `Ls` header value for an item into buf (LS_MSG_HEADER_BUF)
 * and returns its length, or 0 when the message needs no header (an
 * activity at the stream's time).  kind as in ls_msg_item; ts only for
 * activities (ignored otherwise).
 */
size_t ls_msg_header(char *buf, unsigned kind, int64_t ts);

/*
 * Reads an `Ls` header value (v NULL: the message has none) into *out.
 * 0, or LS_EINVAL for a value that is not one of the forms above.
 */
int ls_msg_parse_header(const char *v, size_t n, ls_msg_item *out);

#endif
