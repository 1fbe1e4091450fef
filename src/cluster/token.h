/*
 * token.h - device ids as NATS subject tokens, and the partition of a
 * device.  See token.c.
 *
 * A device's messages travel on subjects (ls.in.<p>.<token>, dev.<token>)
 * and a subject token cannot hold '.', a blank, '*' or '>'; MQTT topics
 * mapped onto subjects refuse '.' and blanks too.  So an id that is one
 * safe token is its own token, and any other id is written '~' and its
 * bytes in base64url (docs/cluster.md, "Tokens").  Every id has exactly
 * one token: decoding refuses every other spelling, so that a device can
 * never land in two partitions.
 *
 * The partition of a device is FNV-1a-32 of its token modulo the number
 * of partitions: what nats-server's subject mapping
 * `dev.*` -> `ls.in.{{partition(P,1)}}.{{wildcard(1)}}` computes, so a
 * node puts a message where the server would.
 *
 * Pure: no allocation, no locks; any thread.
 */
#ifndef LS_TOKEN_H
#define LS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* The longest token: '~' and the base64url of LS_ID_MAX bytes (no padding). */
#define LS_TOKEN_MAX (1 + (LS_ID_MAX / 3) * 4 + (LS_ID_MAX % 3 ? LS_ID_MAX % 3 + 1 : 0))
#define LS_TOKEN_BUF (LS_TOKEN_MAX + 1) /* and its NUL */

/* Is c allowed in a token that is its own id?  [A-Za-z0-9_:@!$%&'()+,;=-] */
int ls_token_safe_char(unsigned char c);

/*
 * Writes the token of id (1..LS_ID_MAX bytes, as ls_id_check() accepts)
 * into out (LS_TOKEN_BUF bytes), NUL-terminated, and returns its length.
 */
size_t ls_token_encode(const char *id, size_t len, char *out);

/*
 * Reads a token back into its id: out (LS_ID_BUF bytes) gets the id and a
 * NUL, *len its length.  0, or LS_EINVAL when tok is not the token of a
 * valid id (empty, a character outside the safe set without the '~'
 * form, bad base64url, a '~' form of an id that is its own token, an id
 * ls_id_check() refuses).  Outside input: fuzzed.
 */
int ls_token_decode(const char *tok, size_t n, char *out, size_t *len);

/* FNV-1a, 32 bits, of n bytes (Go's hash/fnv New32a). */
uint32_t ls_token_fnv1a32(const char *s, size_t n);

/* The partition (0..partitions-1) of a device whose token is tok[0..n). */
static inline unsigned ls_token_partition(const char *tok, size_t n, unsigned partitions)
{
    return ls_token_fnv1a32(tok, n) % partitions;
}

#endif
