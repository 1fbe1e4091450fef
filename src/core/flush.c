/*
 * flush.c - flush passes: lastActivityTime of devices that only reported
 * activity, written to the store without holding the engine lock for long
 * and without making events wait.
 *
 * A pass has two phases.
 *
 * Staging.  The committer calls ls_engine_flush_next() under the engine
 * lock for a chunk of a few thousand devices at a time (about a
 * millisecond), and ls_flush_stage_cb() takes each one's record
 * (ls_engine_snapshot()) and keeps its id and the record in the store's
 * encoding (ls_store_device_encode(): compact, and written later by a
 * plain copy) in arrays that belong to the committer; between chunks the
 * lock is free.
 * Urgent devices (transitions, sessions, configuration) are not staged:
 * they go with the events, in the committer's own commits (persist.c).
 *
 * Writing.  The staged records are sorted by id and written in slices, one
 * transaction each, sized to take about FLUSH_SLICE_MS.  LMDB copies on
 * write every page a transaction touches; records in id order touch each
 * leaf page once over the whole pass, however it is sliced, where slices
 * of random ids would each rewrite most of the store.  The committer writes
 * event commits between slices, so an event waits for at most one slice.
 * The sort is lazy: a counting pass spreads the records over 65536 buckets
 * by the first two bytes of the id after the prefix every staged id shares,
 * and each bucket is sorted when the writer reaches it.
 *
 * Ordering.  A device is written by a pass and by event commits, and the
 * store must never go back to an older state of it.  Every staged record
 * carries the chunk (epoch) it was copied in.  An event commit reports the
 * devices it writes or deletes with ls_flush_supersede(), each with the
 * last chunk k copied before its record was read from the engine (a record
 * taken with its event carries k in its tag, ls_flush_tag(); the others
 * were read while the commit was built, after every chunk so far); the
 * staged records of those devices from chunks <= k are then dropped: the
 * commit wrote a newer state, or deleted the device, and the pass must not
 * write the older one back over it.  Records staged in later chunks are newer
 * than the commit, and event commits of a pass are all written before its
 * first slice, so they land after it.  Within the pass, two records of one
 * id (a device deleted and created again) are written in staging order.
 * The check is a hash set of the superseded ids, empty (and free) when no
 * event commit happened during the pass.
 *
 * Cost: about 100 bytes a staged device plus its id and type (16-byte entry,
 * 52-byte encoded record, two 16-byte sort keys), freed at the end of a pass
 * that was large.
 */
#include "core/flush.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/clock.h"

#define FLUSH_SLICE_MS 8       /* aim of one slice's transaction */
#define FLUSH_SLICE_MIN 2048   /* records a slice, at least */
#define FLUSH_SLICE_MAX 262144 /* and at most */
#define FLUSH_KEEP 65536       /* arrays larger than this are freed after a pass */
#define BUCKETS 65536

typedef struct flush_ent {
    uint64_t off; /* id bytes, then the encoded record, in the arena */
    uint32_t epoch;
    uint16_t id_len, rec_len;
} flush_ent;

typedef struct flush_key {
    uint64_t key; /* 8 id bytes after the common prefix, big-endian, zero-padded */
    uint32_t idx; /* entry index: staging order */
    uint32_t pad;
} flush_key;

typedef struct sup_slot {
    uint64_t h;   /* 0 = empty */
    uint64_t off; /* id bytes in sup_arena */
    uint32_t len, epoch;
} sup_slot;

enum { IDLE = 0, STAGING, WRITING };

struct ls_flush {
    const ls_engine *engine;
    int state;
    uint32_t epoch;   /* chunks staged in this pass */
    uint32_t pass_no; /* passes begun since start */
    flush_ent *ents;
    size_t n, cap;
    char *arena;
    size_t alen, acap;
    size_t common; /* bytes every staged id shares at its start */
    uint64_t errors;
    /* Writing */
    flush_key *keys, *sorted;
    size_t *bstart;    /* BUCKETS + 1 */
    size_t pos;        /* next in sorted */
    size_t sorted_end; /* sorted[0..sorted_end) is in order */
    size_t slice;      /* records a slice */
    int retry;         /* `batch` holds a slice that failed */
    ls_store_batch *batch;
    /* Superseded ids */
    sup_slot *sup;
    size_t nsup, sup_cap;
    char *sup_arena;
    size_t sup_len, sup_acap;
    /* Stats */
    int64_t t0;
    uint64_t staged_pass, written_pass;
    ls_flush_stats st;
};

int ls_flush_new(ls_flush **out, const ls_engine *engine)
{
    ls_flush *f = calloc(1, sizeof(*f));
    if (!f) return -ENOMEM;
    f->batch = ls_store_batch_new();
    f->bstart = malloc((BUCKETS + 1) * sizeof(*f->bstart));
    if (!f->batch || !f->bstart) {
        ls_flush_free(f);
        return -ENOMEM;
    }
    f->engine = engine;
    f->slice = 16384;
    f->pass_no = 1; /* a tag is never 0 (0 = untagged) */
    *out = f;
    return 0;
}

static void free_arrays(ls_flush *f)
{
    free(f->ents);
    free(f->arena);
    free(f->keys);
    free(f->sorted);
    f->ents = NULL;
    f->arena = NULL;
    f->keys = f->sorted = NULL;
    f->cap = f->acap = 0;
}

static void free_sup(ls_flush *f)
{
    free(f->sup);
    free(f->sup_arena);
    f->sup = NULL;
    f->sup_arena = NULL;
    f->nsup = f->sup_cap = f->sup_len = f->sup_acap = 0;
}

void ls_flush_free(ls_flush *f)
{
    if (!f) return;
    free_arrays(f);
    free_sup(f);
    free(f->bstart);
    ls_store_batch_free(f->batch);
    free(f);
}

int ls_flush_active(const ls_flush *f)
{
    return f->state != IDLE;
}

void ls_flush_chunk(ls_flush *f)
{
    if (f->state == IDLE) {
        f->state = STAGING;
        f->epoch = 0;
        f->pass_no++;
        f->n = f->alen = 0;
        f->common = SIZE_MAX;
        f->errors = 0;
        f->t0 = ls_clock_mono_ns();
    }
    f->epoch++;
}

uint64_t ls_flush_errors(const ls_flush *f)
{
    return f->errors;
}

/* Grows *p (elements of `size`) to hold `need`; 0 or -ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    void *np = realloc(*p, c * size);
    if (!np) return -ENOMEM;
    *p = np;
    *cap = c;
    return 0;
}

void ls_flush_set_engine(ls_flush *f, const ls_engine *engine)
{
    f->engine = engine;
}

/* The most arena one staged device takes: its id and its encoded record. */
#define ENT_MAX (LS_ID_MAX + LS_STORE_DEVICE_FIXED + LS_TYPE_MAX)

int ls_flush_reserve(ls_flush *f, size_t records)
{
    if (grow((void **)&f->ents, &f->cap, f->n + records, sizeof(*f->ents)) < 0 ||
        grow((void **)&f->arena, &f->acap, f->alen + records * ENT_MAX, 1) < 0)
        return -ENOMEM;
    return 0;
}

void ls_flush_stage_cb(void *ud, const ls_device *dev)
{
    ls_flush *f = ud;
    char idbuf[LS_ID_BUF];
    ls_device_state rec;
    ls_engine_snapshot(f->engine, dev, idbuf, &rec, NULL);
    size_t room = rec.id_len + LS_STORE_DEVICE_FIXED + rec.type_len;
    int len;
    if (grow((void **)&f->ents, &f->cap, f->n + 1, sizeof(*f->ents)) < 0 ||
        grow((void **)&f->arena, &f->acap, f->alen + room, 1) < 0 ||
        (len = ls_store_device_encode(&rec, (unsigned char *)f->arena + f->alen + rec.id_len,
                                      room - rec.id_len)) < 0 ||
        (size_t)len > room - rec.id_len || len > UINT16_MAX) {
        f->errors++;
        return;
    }
    flush_ent *e = &f->ents[f->n++];
    *e = (flush_ent){
        .off = f->alen,
        .epoch = f->epoch,
        .id_len = (uint16_t)rec.id_len,
        .rec_len = (uint16_t)len,
    };
    memcpy(f->arena + f->alen, rec.id, rec.id_len);
    /* The prefix every id shares so far, against the first one. */
    if (f->n == 1) {
        f->common = rec.id_len;
    } else {
        const char *first = f->arena + f->ents[0].off;
        size_t c = 0, max = f->common < rec.id_len ? f->common : rec.id_len;
        while (c < max && first[c] == rec.id[c])
            c++;
        f->common = c;
    }
    f->alen += rec.id_len + (size_t)len;
}

static uint64_t id_hash(const char *id, size_t len)
{
    uint64_t h = XXH3_64bits(id, len);
    return h ? h : 1;
}

/* The slot of id in the superseded set, or the empty slot where it goes. */
static sup_slot *sup_find(ls_flush *f, const char *id, size_t len, uint64_t h)
{
    size_t mask = f->sup_cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        sup_slot *s = &f->sup[i];
        if (s->h == 0) return s;
        if (s->h == h && s->len == len && memcmp(f->sup_arena + s->off, id, len) == 0) return s;
    }
}

static int sup_grow(ls_flush *f)
{
    size_t cap = f->sup_cap ? f->sup_cap * 2 : 1024;
    sup_slot *old = f->sup, *ns = calloc(cap, sizeof(*ns));
    if (!ns) return -ENOMEM;
    size_t ocap = f->sup_cap;
    f->sup = ns;
    f->sup_cap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].h) *sup_find(f, f->sup_arena + old[i].off, old[i].len, old[i].h) = old[i];
    free(old);
    return 0;
}

typedef struct sup_ctx {
    ls_flush *f;
    int failed;
} sup_ctx;

uint64_t ls_flush_tag(const ls_flush *f)
{
    return f ? (uint64_t)f->pass_no << 32 | f->epoch : 0;
}

static void supersede_cb(void *ud, const char *id, size_t len, uint64_t tag)
{
    sup_ctx *c = ud;
    ls_flush *f = c->f;
    uint32_t epoch = f->epoch; /* untagged: read after every chunk staged so far */
    if (tag) {
        /* A record taken with an event, before the commit was built: it
         * is newer than the chunks staged before it, and only those.
         * Taken before this pass began: every chunk is newer. */
        if ((uint32_t)(tag >> 32) != f->pass_no) return;
        epoch = (uint32_t)tag;
        if (epoch == 0) return;
    }
    if ((f->nsup + 1) * 2 > f->sup_cap && sup_grow(f) < 0) {
        c->failed = 1;
        return;
    }
    uint64_t h = id_hash(id, len);
    sup_slot *s = sup_find(f, id, len, h);
    if (s->h == 0) {
        if (grow((void **)&f->sup_arena, &f->sup_acap, f->sup_len + len, 1) < 0) {
            c->failed = 1;
            return;
        }
        memcpy(f->sup_arena + f->sup_len, id, len);
        *s = (sup_slot){.h = h, .off = f->sup_len, .len = (uint32_t)len};
        f->sup_len += len;
        f->nsup++;
    }
    if (epoch > s->epoch) s->epoch = epoch; /* the newest record counts */
}

void ls_flush_supersede(ls_flush *f, const ls_store_batch *b)
{
    if (f->state == IDLE) return;
    sup_ctx c = {.f = f};
    ls_store_batch_each_device(b, supersede_cb, &c);
    if (c.failed) {
        /* Without the set the pass could write an older state back: drop
         * the rest of it instead; the devices stay as committed, and their
         * lastActivityTime is written by the next activity's pass. */
        f->errors += f->n > f->pos ? f->n - f->pos : 0;
        f->n = f->pos = 0;
    }
}

static const char *ent_id(const ls_flush *f, const flush_ent *e)
{
    return f->arena + e->off;
}

static int key_cmp(const void *a, const void *b, void *ud)
{
    const flush_key *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    const ls_flush *f = ud;
    const flush_ent *ex = &f->ents[x->idx], *ey = &f->ents[y->idx];
    size_t skip = f->common + 8, lx = ex->id_len, ly = ey->id_len;
    size_t m = (lx < ly ? lx : ly);
    if (m > skip) {
        int c = memcmp(ent_id(f, ex) + skip, ent_id(f, ey) + skip, m - skip);
        if (c) return c;
    }
    if (lx != ly) return lx < ly ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx; /* one id twice: staging order */
}

/* Sorts with key_cmp; small buckets, so a plain sort is enough. */
static void sort_keys(flush_key *k, size_t n, ls_flush *f)
{
    qsort_r(k, n, sizeof(*k), key_cmp, f);
}

/* After the last chunk: the keys, spread over the buckets. */
static int prepare(ls_flush *f)
{
    if (f->n == 0) return 0;
    free(f->keys);
    free(f->sorted);
    f->keys = malloc(f->n * sizeof(*f->keys));
    f->sorted = malloc(f->n * sizeof(*f->sorted));
    if (!f->keys || !f->sorted) return -ENOMEM;
    size_t common = f->common == SIZE_MAX ? 0 : f->common;
    f->common = common;
    memset(f->bstart, 0, (BUCKETS + 1) * sizeof(*f->bstart));
    for (size_t i = 0; i < f->n; i++) {
        const flush_ent *e = &f->ents[i];
        const unsigned char *id = (const unsigned char *)ent_id(f, e);
        uint64_t k = 0;
        for (size_t j = 0; j < 8; j++)
            k = k << 8 | (common + j < e->id_len ? id[common + j] : 0);
        f->keys[i] = (flush_key){.key = k, .idx = (uint32_t)i};
        f->bstart[(k >> 48) + 1]++;
    }
    for (size_t b = 0; b < BUCKETS; b++)
        f->bstart[b + 1] += f->bstart[b];
    /* Scatter in staging order: each bucket keeps it until sorted. */
    size_t *next = malloc(BUCKETS * sizeof(*next));
    if (!next) return -ENOMEM;
    memcpy(next, f->bstart, BUCKETS * sizeof(*next));
    for (size_t i = 0; i < f->n; i++)
        f->sorted[next[f->keys[i].key >> 48]++] = f->keys[i];
    free(next);
    free(f->keys);
    f->keys = NULL;
    f->pos = f->sorted_end = 0;
    return 0;
}

/* 1 if a commit after the record's chunk wrote or deleted its device. */
static int superseded(ls_flush *f, const flush_ent *e)
{
    if (f->nsup == 0) return 0;
    const char *id = ent_id(f, e);
    sup_slot *s = sup_find(f, id, e->id_len, id_hash(id, e->id_len));
    return s->h && s->epoch >= e->epoch;
}

static void end_pass(ls_flush *f)
{
    f->st.passes++;
    f->st.records += f->written_pass;
    f->st.last_staged = f->n;
    f->st.last_ns = (uint64_t)(ls_clock_mono_ns() - f->t0);
    if (f->n >= f->st.max_staged) {
        f->st.max_staged = f->n;
        f->st.max_ns = f->st.last_ns;
    }
    f->written_pass = 0;
    f->state = IDLE;
    f->n = f->alen = f->pos = f->sorted_end = 0;
    free_sup(f);
    if (f->cap > FLUSH_KEEP)
        free_arrays(f);
    else {
        free(f->sorted);
        f->sorted = NULL;
    }
}

int ls_flush_write(ls_flush *f, ls_store *s, int *done)
{
    int rc;
    *done = 0;
    if (f->state == IDLE) {
        *done = 1;
        return 0;
    }
    if (f->state == STAGING) {
        if ((rc = prepare(f)) < 0) {
            /* Nothing written: the devices keep their last committed state
             * until their next activity. */
            f->errors += f->n;
            f->n = 0;
        }
        f->state = WRITING;
    }
    if (!f->retry) {
        ls_store_batch_clear(f->batch);
        size_t taken = 0;
        while (taken < f->slice && f->pos < f->n) {
            if (f->pos == f->sorted_end) {
                size_t b = (size_t)(f->sorted[f->pos].key >> 48);
                f->sorted_end = f->bstart[b + 1];
                sort_keys(f->sorted + f->pos, f->sorted_end - f->pos, f);
            }
            const flush_ent *e = &f->ents[f->sorted[f->pos++].idx];
            if (superseded(f, e)) {
                f->st.superseded++;
                continue;
            }
            const char *id = ent_id(f, e);
            const unsigned char *rec = (const unsigned char *)id + e->id_len;
            if (ls_store_batch_put_device_encoded(f->batch, id, e->id_len, rec, e->rec_len, 0) < 0)
                f->errors++;
            else
                taken++;
        }
    }
    if (ls_store_batch_ops(f->batch) > 0) {
        int64_t t0 = ls_clock_mono_ns();
        if ((rc = ls_store_write(s, f->batch)) < 0) {
            f->retry = 1;
            return rc;
        }
        f->retry = 0;
        int64_t took_ms = (ls_clock_mono_ns() - t0) / 1000000;
        f->st.slices++;
        f->written_pass += ls_store_batch_ops(f->batch);
        /* Aim at FLUSH_SLICE_MS a slice. */
        if (took_ms < FLUSH_SLICE_MS / 2 && f->slice < FLUSH_SLICE_MAX)
            f->slice *= 2;
        else if (took_ms > FLUSH_SLICE_MS * 2 && f->slice > FLUSH_SLICE_MIN)
            f->slice /= 2;
    }
    if (f->pos >= f->n) {
        end_pass(f);
        *done = 1;
    }
    return 0;
}

void ls_flush_get_stats(const ls_flush *f, ls_flush_stats *out)
{
    *out = f->st;
}
