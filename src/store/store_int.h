/*
 * store_int.h - internals shared by store.c and batch.c: the batch's op
 * records and the little-endian / big-endian helpers of the on-disk format.
 * Not for use outside src/store/.
 */
#ifndef LS_STORE_INT_H
#define LS_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Longest key LMDB 0.9 accepts (mdb_env_get_maxkeysize() with the default build). */
#define STORE__MAX_KEY 511
/* Fixed part of a device record (see the format in store.c): version 1,
 * and version 2 with the c8y flags and responseInterval (store.h's
 * LS_STORE_DEVICE_FIXED). */
#define STORE__DEVICE_FIXED 48
#define STORE__DEVICE_FIXED_V2 LS_STORE_DEVICE_FIXED
#define STORE__DEVICE_VERSION 2 /* written by this build; 1 is still read */
#define STORE__TYPE_SIZE 16
#define STORE__TYPE_VERSION 1
#define STORE__ALARM_FIXED 40
#define STORE__ALARM_VERSION 1
/* Outbox event record (see the format in store.c): version 2 has a header;
 * version 1 is the bare JSON line. */
#define STORE__EVENT_VERSION 2
#define STORE__EVENT_HDR 20
#define STORE__EVENT_UNTYPED 255
/* A batch never holds more than this many bytes of op records. */
#define STORE__BATCH_CAP ((size_t)1 << 30)

enum {
    STORE__OP_PUT_DEVICE = 1, /* key = id, val = encoded record */
    STORE__OP_DEL_DEVICE,     /* key = id */
    STORE__OP_EVENT,          /* num = seq, val = encoded event record */
    STORE__OP_CURSOR,         /* key = sink, num = seq */
    STORE__OP_PRUNE,          /* num = upto */
    STORE__OP_MARK,           /* num = seq, val = i64 LE wall ms */
    STORE__OP_PUT_TYPE,       /* key = name, val = encoded type */
    STORE__OP_DEL_TYPE,       /* key = name */
    STORE__OP_PUT_ALARM,      /* num = id, val = encoded alarm */
    STORE__OP_DEL_ALARM,      /* num = id */
};

/* One decoded op: views into the batch's arena. */
typedef struct store__op {
    int type;
    const unsigned char *key;
    size_t klen;
    const unsigned char *val;
    size_t vlen;
    uint64_t num;
} store__op;

/* Decodes the outbox record of event `seq` (a version-2 record, or a
 * version-1 bare line) into *ev, pointing into v.  NULL, or why it does not
 * add up. */
const char *store__event_decode(uint64_t seq, const unsigned char *v, size_t n, ls_store_event *ev);

/* Iterates the ops of `b` in order: start with *pos = 0; returns 1 with *op filled, 0 at the end.
 */
int store__batch_next(const ls_store_batch *b, size_t *pos, store__op *op);

static inline void store__put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
/* Written out byte by byte, not as a loop, so that the compiler merges the
 * stores into one on a little-endian machine: a device record is encoded
 * under the engine lock (flush passes stage encoded records). */
static inline void store__put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static inline void store__put_le64(unsigned char *p, uint64_t v)
{
    store__put_le32(p, (uint32_t)v);
    store__put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline void store__put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}
static inline uint16_t store__get_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t store__get_le32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t store__get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t store__get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
