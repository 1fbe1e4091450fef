/*
 * batch.c - a batch of store writes, built in memory with no LMDB
 * transaction open.
 *
 * Every op is a 24-byte header (type, key length, value length, a number)
 * followed by the key and value bytes, padded to 8 bytes.  Device records
 * are encoded here, at batch time, so ls_store_write() only copies bytes
 * into LMDB and a retry after a map resize re-encodes nothing.
 *
 * Ops are appended to blocks of BLOCK bytes (an op larger than that gets a
 * block of its own), never to one growing arena: the event path adds an
 * op per event under the daemon's lock, and a reconnect storm adds
 * hundreds of megabytes between two commits; an arena that doubles copies
 * all of it at every step and touches fresh pages each time, where blocks
 * cost one allocation per BLOCK bytes and nothing is ever copied.
 * ls_store_batch_append() moves the source's blocks over instead of
 * copying them.  The batch never grows past STORE__BATCH_CAP (1 GiB): an
 * op that would cross it fails with -ENOMEM and leaves the batch as it
 * was.  ls_store_batch_clear() keeps KEEP_BLOCKS blocks for reuse, so a
 * steady-state writer allocates nothing, and frees the rest (a burst is
 * over).
 *
 * A position (store__batch_next()) is the block's index times POS_SPAN plus
 * the offset in the block.
 *
 * Arguments are validated here (key lengths LMDB accepts, seq > 0, type
 * length fitting the record's u16), so a batch that was built can only
 * fail to apply for reasons of the disk or the map.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define OP_HDR 24
#define BLOCK ((size_t)256 << 10)
#define KEEP_BLOCKS 4
#define POS_SPAN ((size_t)1 << 31) /* > any block: ops are at most STORE__BATCH_CAP */

typedef struct blk {
    unsigned char *p;
    size_t len, cap;
} blk;

struct ls_store_batch {
    blk *blk;
    size_t nblk, blk_cap; /* blocks in use (the last one open), allocated slots */
    size_t nspare;        /* kept blocks after the used ones: blk[nblk .. nblk + nspare) */
    size_t bytes;         /* ops' bytes in all blocks */
    size_t nops;
};

ls_store_batch *ls_store_batch_new(void)
{
    return calloc(1, sizeof(ls_store_batch));
}

void ls_store_batch_free(ls_store_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->nblk + b->nspare; i++)
        free(b->blk[i].p);
    free(b->blk);
    free(b);
}

void ls_store_batch_clear(ls_store_batch *b)
{
    size_t keep = 0, total = b->nblk + b->nspare;
    for (size_t i = 0; i < total; i++) {
        if (keep < KEEP_BLOCKS && b->blk[i].cap == BLOCK) {
            b->blk[keep] = b->blk[i];
            b->blk[keep++].len = 0;
        } else {
            free(b->blk[i].p);
        }
    }
    b->nblk = 0;
    b->nspare = keep;
    b->bytes = 0;
    b->nops = 0;
}

size_t ls_store_batch_ops(const ls_store_batch *b)
{
    return b->nops;
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Room for `slots` block descriptors; 0 or LS_ENOMEM. */
static int blk_room(ls_store_batch *b, size_t slots)
{
    if (slots <= b->blk_cap) return 0;
    size_t cap = b->blk_cap ? b->blk_cap : 16;
    while (cap < slots)
        cap *= 2;
    blk *v = realloc(b->blk, cap * sizeof(*v));
    if (!v) return LS_ENOMEM;
    b->blk = v;
    b->blk_cap = cap;
    return 0;
}

/* A block with `need` free bytes at its end, opened if needed; NULL when
 * malloc refuses. */
static blk *open_block(ls_store_batch *b, size_t need)
{
    if (b->nblk && b->blk[b->nblk - 1].cap - b->blk[b->nblk - 1].len >= need)
        return &b->blk[b->nblk - 1];
    if (need <= BLOCK && b->nspare) { /* a kept block, already after the used ones */
        b->nspare--;
        return &b->blk[b->nblk++];
    }
    if (blk_room(b, b->nblk + b->nspare + 1) < 0) return NULL;
    size_t cap = need > BLOCK ? need : BLOCK;
    unsigned char *p = malloc(cap);
    if (!p) return NULL;
    /* The new block goes before the kept ones. */
    if (b->nspare) b->blk[b->nblk + b->nspare] = b->blk[b->nblk];
    b->blk[b->nblk] = (blk){.p = p, .len = 0, .cap = cap};
    return &b->blk[b->nblk++];
}

/*
 * Reserves room for one op with a key of klen and a value of vlen bytes,
 * writes its header and returns a pointer to where the key goes (the value
 * follows it), or NULL when the cap or malloc refuses.
 */
static unsigned char *op_reserve(ls_store_batch *b, int type, size_t klen, size_t vlen,
                                 uint64_t num)
{
    if (klen > STORE__BATCH_CAP || vlen > STORE__BATCH_CAP) return NULL;
    size_t need = OP_HDR + pad8(klen + vlen);
    if (need > STORE__BATCH_CAP - b->bytes) return NULL;
    blk *k = open_block(b, need);
    if (!k) return NULL;
    unsigned char *p = k->p + k->len;
    store__put_le32(p, (uint32_t)type);
    store__put_le32(p + 4, (uint32_t)klen);
    store__put_le64(p + 8, (uint64_t)vlen);
    store__put_le64(p + 16, num);
    /* Zero the padding so the blocks never hold uninitialised bytes. */
    if (pad8(klen + vlen) > klen + vlen)
        memset(p + OP_HDR + klen + vlen, 0, pad8(klen + vlen) - (klen + vlen));
    k->len += need;
    b->bytes += need;
    b->nops++;
    return p + OP_HDR;
}

int store__batch_next(const ls_store_batch *b, size_t *pos, store__op *op)
{
    size_t i = *pos / POS_SPAN, off = *pos % POS_SPAN;
    while (i < b->nblk && off >= b->blk[i].len) {
        i++;
        off = 0;
    }
    if (i >= b->nblk) return 0;
    const unsigned char *p = b->blk[i].p + off;
    op->type = (int)store__get_le32(p);
    op->klen = store__get_le32(p + 4);
    op->vlen = (size_t)store__get_le64(p + 8);
    op->num = store__get_le64(p + 16);
    op->key = p + OP_HDR;
    op->val = p + OP_HDR + op->klen;
    *pos = i * POS_SPAN + off + OP_HDR + pad8(op->klen + op->vlen);
    return 1;
}

int ls_store_device_encode(const ls_device_state *d, unsigned char *v, size_t cap)
{
    size_t tlen = d->type ? d->type_len : 0;
    if (tlen > UINT16_MAX) return -EINVAL;
    if (d->has_c8y && (d->response_interval < INT16_MIN || d->response_interval > INT16_MAX))
        return -EINVAL;
    size_t len = STORE__DEVICE_FIXED_V2 + tlen;
    if (len > cap) return (int)len;
    v[0] = STORE__DEVICE_VERSION;
    v[1] = d->active ? 1 : 0;
    store__put_le16(v + 2, (uint16_t)tlen);
    store__put_le32(v + 4, d->sessions);
    store__put_le64(v + 8, (uint64_t)d->timeout_ms);
    store__put_le64(v + 16, (uint64_t)d->last_activity);
    store__put_le64(v + 24, (uint64_t)d->last_connect);
    store__put_le64(v + 32, (uint64_t)d->last_disconnect);
    store__put_le64(v + 40, (uint64_t)d->inactivity_alarm);
    v[48] = d->has_c8y ? 1 : 0;
    v[49] = 0;
    store__put_le16(v + 50, (uint16_t)(int16_t)(d->has_c8y ? d->response_interval : 0));
    if (tlen) memcpy(v + STORE__DEVICE_FIXED_V2, d->type, tlen);
    return (int)len;
}

int ls_store_batch_put_device(ls_store_batch *b, const ls_device_state *d)
{
    return ls_store_batch_put_device_tagged(b, d, 0);
}

int ls_store_batch_put_device_tagged(ls_store_batch *b, const ls_device_state *d, uint64_t tag)
{
    int len = ls_store_device_encode(d, NULL, 0);
    if (len < 0 || !d->id || d->id_len == 0 || d->id_len > STORE__MAX_KEY) return -EINVAL;
    unsigned char *k = op_reserve(b, STORE__OP_PUT_DEVICE, d->id_len, (size_t)len, tag);
    if (!k) return -ENOMEM;
    memcpy(k, d->id, d->id_len);
    ls_store_device_encode(d, k + d->id_len, (size_t)len);
    return 0;
}

int ls_store_batch_put_device_encoded(ls_store_batch *b, const char *id, size_t id_len,
                                      const unsigned char *rec, size_t len, uint64_t tag)
{
    if (!id || id_len == 0 || id_len > STORE__MAX_KEY || len < STORE__DEVICE_FIXED_V2 ||
        len != (size_t)STORE__DEVICE_FIXED_V2 + store__get_le16(rec + 2))
        return -EINVAL;
    unsigned char *k = op_reserve(b, STORE__OP_PUT_DEVICE, id_len, len, tag);
    if (!k) return -ENOMEM;
    memcpy(k, id, id_len);
    memcpy(k + id_len, rec, len);
    return 0;
}

int ls_store_batch_del_device(ls_store_batch *b, const char *id, size_t len)
{
    return ls_store_batch_del_device_tagged(b, id, len, 0);
}

int ls_store_batch_del_device_tagged(ls_store_batch *b, const char *id, size_t len, uint64_t tag)
{
    if (!id || len == 0 || len > STORE__MAX_KEY) return -EINVAL;
    unsigned char *k = op_reserve(b, STORE__OP_DEL_DEVICE, len, 0, tag);
    if (!k) return -ENOMEM;
    memcpy(k, id, len);
    return 0;
}

int ls_store_batch_put_event(ls_store_batch *b, const ls_store_event *ev)
{
    size_t dlen = ev->device ? ev->device_len : 0;
    if (ev->seq == 0 || (!ev->line && ev->line_len) || ev->line_len > UINT32_MAX ||
        dlen > UINT16_MAX || ev->type < -1 || ev->type >= STORE__EVENT_UNTYPED ||
        ev->state_off > ev->line_len || ev->state_len > ev->line_len - ev->state_off)
        return -EINVAL;
    /* An id the JSON did not have to escape is in the line already. */
    uintptr_t dp = (uintptr_t)ev->device, lp = (uintptr_t)ev->line;
    int inside = dlen && dp >= lp && dp - lp <= ev->line_len && dlen <= ev->line_len - (dp - lp);
    size_t dev_off = inside ? (size_t)(dp - lp) : ev->line_len;
    unsigned char *v = op_reserve(b, STORE__OP_EVENT, 0,
                                  STORE__EVENT_HDR + ev->line_len + (inside ? 0 : dlen), ev->seq);
    if (!v) return -ENOMEM;
    v[0] = STORE__EVENT_VERSION;
    v[1] = (unsigned char)(ev->type < 0 ? STORE__EVENT_UNTYPED : ev->type);
    store__put_le16(v + 2, (uint16_t)dlen);
    store__put_le32(v + 4, (uint32_t)ev->line_len);
    store__put_le32(v + 8, (uint32_t)dev_off);
    store__put_le32(v + 12, (uint32_t)ev->state_off);
    store__put_le32(v + 16, (uint32_t)ev->state_len);
    if (ev->line_len) memcpy(v + STORE__EVENT_HDR, ev->line, ev->line_len);
    if (dlen && !inside) memcpy(v + STORE__EVENT_HDR + ev->line_len, ev->device, dlen);
    return 0;
}

int ls_store_batch_event(ls_store_batch *b, uint64_t seq, const char *line, size_t len)
{
    ls_store_event ev = {.seq = seq, .type = -1, .line = line, .line_len = len};
    return ls_store_batch_put_event(b, &ev);
}

const char *store__event_decode(uint64_t seq, const unsigned char *v, size_t n, ls_store_event *ev)
{
    *ev = (ls_store_event){.seq = seq, .type = -1};
    if (n == 0 || v[0] != STORE__EVENT_VERSION) { /* version 1: the line alone */
        ev->line = (const char *)v;
        ev->line_len = n;
        return n && v[0] != '{' ? "unknown record version" : NULL;
    }
    if (n < STORE__EVENT_HDR) return "record shorter than its header";
    size_t dlen = store__get_le16(v + 2), llen = store__get_le32(v + 4);
    size_t doff = store__get_le32(v + 8), soff = store__get_le32(v + 12);
    size_t slen = store__get_le32(v + 16);
    size_t rest = n - STORE__EVENT_HDR;
    /* The device is right after the line, or inside it (doff < llen). */
    size_t after_line = dlen && doff == llen ? dlen : 0;
    if (llen > rest || rest - llen != after_line || soff > llen || slen > llen - soff ||
        (dlen && !after_line && (doff > llen || dlen > llen - doff)))
        return "lengths do not add up";
    ev->type = v[1] == STORE__EVENT_UNTYPED ? -1 : v[1];
    ev->line = (const char *)v + STORE__EVENT_HDR;
    ev->line_len = llen;
    ev->device = dlen ? ev->line + doff : NULL;
    ev->device_len = dlen;
    ev->state_off = soff;
    ev->state_len = slen;
    return NULL;
}

int ls_store_batch_cursor(ls_store_batch *b, const char *sink, uint64_t seq)
{
    size_t len = sink ? strlen(sink) : 0;
    if (len == 0 || len > STORE__MAX_KEY) return -EINVAL;
    unsigned char *k = op_reserve(b, STORE__OP_CURSOR, len, 0, seq);
    if (!k) return -ENOMEM;
    memcpy(k, sink, len);
    return 0;
}

int ls_store_batch_prune(ls_store_batch *b, uint64_t upto)
{
    return op_reserve(b, STORE__OP_PRUNE, 0, 0, upto) ? 0 : -ENOMEM;
}

int ls_store_batch_mark(ls_store_batch *b, uint64_t seq, int64_t wall)
{
    if (seq == 0) return -EINVAL;
    unsigned char *v = op_reserve(b, STORE__OP_MARK, 0, 8, seq);
    if (!v) return -ENOMEM;
    store__put_le64(v, (uint64_t)wall);
    return 0;
}

int ls_store_batch_put_type(ls_store_batch *b, const char *name, size_t len,
                            const ls_type_config *c)
{
    if (!name || len == 0 || len > STORE__MAX_KEY || c->monitored < -1 || c->monitored > 1 ||
        (int)c->severity < 0 || (int)c->severity > 255 || c->response_interval < INT16_MIN ||
        c->response_interval > INT16_MAX)
        return -EINVAL;
    unsigned char *k = op_reserve(b, STORE__OP_PUT_TYPE, len, STORE__TYPE_SIZE, 0);
    if (!k) return -ENOMEM;
    memcpy(k, name, len);
    unsigned char *v = k + len;
    v[0] = STORE__TYPE_VERSION;
    v[1] = c->has_ri ? 1 : 0;
    v[2] = (unsigned char)(c->monitored + 1);
    v[3] = (unsigned char)c->severity;
    store__put_le16(v + 4, (uint16_t)(int16_t)c->response_interval);
    v[6] = v[7] = 0;
    store__put_le64(v + 8, (uint64_t)c->timeout_ms);
    return 0;
}

int ls_store_batch_del_type(ls_store_batch *b, const char *name, size_t len)
{
    if (!name || len == 0 || len > STORE__MAX_KEY) return -EINVAL;
    unsigned char *k = op_reserve(b, STORE__OP_DEL_TYPE, len, 0, 0);
    if (!k) return -ENOMEM;
    memcpy(k, name, len);
    return 0;
}

int ls_store_batch_put_alarm(ls_store_batch *b, const ls_alarm *a)
{
    if (a->id == 0 || !a->source || a->source_len == 0) return -EINVAL;
    unsigned char *v =
        op_reserve(b, STORE__OP_PUT_ALARM, 0, STORE__ALARM_FIXED + a->source_len, a->id);
    if (!v) return -ENOMEM;
    v[0] = STORE__ALARM_VERSION;
    v[1] = a->status;
    v[2] = a->severity;
    v[3] = 0;
    store__put_le32(v + 4, a->count);
    store__put_le64(v + 8, (uint64_t)a->time);
    store__put_le64(v + 16, (uint64_t)a->first);
    store__put_le64(v + 24, (uint64_t)a->since);
    store__put_le64(v + 32, (uint64_t)a->updated);
    memcpy(v + STORE__ALARM_FIXED, a->source, a->source_len);
    return 0;
}

int ls_store_batch_del_alarm(ls_store_batch *b, uint64_t id)
{
    if (id == 0) return -EINVAL;
    return op_reserve(b, STORE__OP_DEL_ALARM, 0, 0, id) ? 0 : -ENOMEM;
}

int ls_store_batch_append(ls_store_batch *dst, ls_store_batch *src)
{
    if (src->nops == 0) return 0;
    if (src->bytes > STORE__BATCH_CAP - dst->bytes) return -ENOMEM;
    if (blk_room(dst, dst->nblk + dst->nspare + src->nblk) < 0) return -ENOMEM;
    /* dst's kept blocks move behind the ones taken over. */
    memmove(&dst->blk[dst->nblk + src->nblk], &dst->blk[dst->nblk], dst->nspare * sizeof(blk));
    memcpy(&dst->blk[dst->nblk], src->blk, src->nblk * sizeof(blk));
    dst->nblk += src->nblk;
    dst->bytes += src->bytes;
    dst->nops += src->nops;
    /* src keeps only its spare blocks, and is empty. */
    memmove(src->blk, &src->blk[src->nblk], src->nspare * sizeof(blk));
    src->nblk = 0;
    src->bytes = 0;
    src->nops = 0;
    return 0;
}

void ls_store_batch_each_device(const ls_store_batch *b,
                                void (*cb)(void *ud, const char *id, size_t len, uint64_t tag),
                                void *ud)
{
    size_t pos = 0;
    store__op op;
    while (store__batch_next(b, &pos, &op))
        if (op.type == STORE__OP_PUT_DEVICE || op.type == STORE__OP_DEL_DEVICE)
            cb(ud, (const char *)op.key, op.klen, op.num);
}

int64_t ls_store_batch_read_outbox(const ls_store_batch *b, size_t *pos, uint64_t after,
                                   uint64_t upto, size_t max, ls_store_outbox_cb cb, void *ud)
{
    int64_t n = 0;
    store__op op;
    ls_store_event ev;
    for (size_t at = *pos; (size_t)n < max && store__batch_next(b, pos, &op); at = *pos) {
        if (op.type != STORE__OP_EVENT || op.num <= after) continue;
        if (op.num > upto) {
            *pos = at;
            break;
        }
        store__event_decode(op.num, op.val, op.vlen, &ev); /* encoded here: adds up */
        int r = cb(ud, &ev);
        if (r < 0) {
            *pos = at; /* not taken: the next call starts with it */
            return r;
        }
        n++;
    }
    return n;
}

int64_t ls_store_batch_each_event(const ls_store_batch *b, uint64_t after, ls_store_event_cb cb,
                                  void *ud)
{
    size_t pos = 0;
    int64_t n = 0;
    store__op op;
    ls_store_event ev;
    while (store__batch_next(b, &pos, &op)) {
        if (op.type != STORE__OP_EVENT || op.num <= after) continue;
        store__event_decode(op.num, op.val, op.vlen, &ev); /* encoded here: adds up */
        if (cb(ud, op.num, ev.line, ev.line_len)) break;
        n++;
    }
    return n;
}
