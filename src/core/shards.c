/*
 * shards.c - shards, their workers, and the producers feeding them
 * (shards.h has the model: ownership, queues, lock order).
 *
 * Worker loop.  Pop a batch; if there is one, apply it under the shard's
 * mutex and fire the expiries due by then, so a flood that never lets the
 * queue run dry still gets its deadlines on time (one wheel check per
 * batch).  When the queue is empty, tick the wheel, note the next
 * deadline in wake_at, announce `sleeping` and sleep in ppoll(2) on the
 * shard's eventfd until that deadline, to the nanosecond.  A producer
 * pushes, then reads `sleeping` (with a read-modify-write) and writes the
 * eventfd only if the worker sleeps; the worker sets `sleeping` (an
 * exchange) and looks at the queue once more before it sleeps (Dekker's
 * handshake), so a wake-up is never lost and a busy worker costs producers
 * no system call.
 * An API call that arms an earlier deadline wakes the worker the same way
 * (ls_shard_wake_if_earlier()).
 *
 * Events.  The engine calls shard_event_cb() (and shard_avail_cb())
 * synchronously, with only the shard to go on: the section hung on it
 * (shards.h, "Critical sections") says what to do about the global lock.
 * The worker applies each batch and fires each tick in a lazy section
 * (the first event takes the global lock, the leave releases it), as does
 * ls_shards_apply(); the daemon's critical sections (an API thread, the
 * committer, the main loop: daemon.c) hold the global lock already and
 * enter GLOBAL_HELD sections.
 *
 * Hash.  The shard of an id is a seeded 64-bit FNV-1a with a final mix,
 * reduced by multiply-shift: independent of the engine's table hash, fixed
 * for the life of the process (the seed is drawn at start-up).
 */
#include "core/shards.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/alarming.h"
#include "base/clock.h"
#include "core/daemon.h"
#include "base/log.h"

#define IDLE_WAKE_MS 1000
#define SPINS_BEFORE_SLEEP 64
#define WAIT_SLEEP_NS 50000

unsigned ls_shards_index(const ls_shards *sh, const char *id, size_t len)
{
    if (sh->n == 1) return 0;
    uint64_t h = 14695981039346656037ULL ^ sh->seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (unsigned)(((h >> 32) * sh->n) >> 32);
}

/* With assertions on: the calling thread holds every shard's lock. */
static inline void assert_all_held(const ls_shards *sh)
{
    for (unsigned i = 0; i < sh->n; i++)
        LS_ASSERT_LOCKED(&sh->shard[i].lock);
}

void ls_shard_section_enter(ls_shard *s, ls_shard_section *sec, ls_section_mode mode)
{
    LS_ASSERT_LOCKED(&s->lock);
    LS_ASSERT(s->section == NULL); /* one section at a time */
    if (mode == LS_SECTION_GLOBAL_HELD)
        LS_ASSERT_LOCKED(&s->set->d->lock);
    else
        LS_ASSERT_NOT_LOCKED(&s->set->d->lock); /* the first event takes it */
    *sec = (ls_shard_section){.mode = mode};
    s->section = sec;
}

uint64_t ls_shard_section_leave(ls_shard *s, ls_shard_section *sec)
{
    LS_ASSERT_LOCKED(&s->lock);
    LS_ASSERT(s->section == sec);
    s->section = NULL;
    if (sec->mode == LS_SECTION_GLOBAL_HELD) {
        LS_ASSERT_LOCKED(&s->set->d->lock); /* held for the whole section */
        return 0;
    }
    if (!sec->global_taken) return 0;
    ls_daemon *d = s->set->d;
    LS_ASSERT_LOCKED(&d->lock);
    uint64_t gen = d->pending_gen;
    if (d->want_commit) pthread_cond_signal(&d->work_cv);
    ls_mutex_unlock(&d->lock);
    sec->global_taken = 0;
    return gen;
}

/* At an event: the global lock, as the shard's section has it (taken at
 * the first event of a lazy section, held already in the others). */
static void take_global(ls_shard *s)
{
    LS_ASSERT_LOCKED(&s->lock); /* an engine runs under its shard's lock */
    ls_shard_section *sec = s->section;
    LS_ASSERT(sec != NULL); /* and raises events only inside a section */
    if (sec->mode == LS_SECTION_GLOBAL_HELD) {
        LS_ASSERT_LOCKED(&s->set->d->lock);
    } else if (!sec->global_taken) {
        ls_mutex_lock(&s->set->d->lock);
        sec->global_taken = 1;
    }
}

static void shard_event_cb(void *ud, const ls_event *ev)
{
    ls_shard *s = ud;
    /* Source health is the same in every shard: announce it once. */
    if ((ev->type == LS_EV_SOURCE_DOWN || ev->type == LS_EV_SOURCE_UP) && s->index != 0) return;
    take_global(s);
    ls_daemon__event(s->set->d, ev);
}

static void shard_avail_cb(void *ud, const ls_device *dev, ls_avail old_cls, int was_active,
                           ls_now now)
{
    ls_shard *s = ud;
    take_global(s);
    ls_alarming_avail_cb(s->set->d, dev, old_cls, was_active, now);
}

int ls_shards_new(ls_shards **out, ls_daemon *d, unsigned n, const ls_engine_config *ec)
{
    *out = NULL;
    if (n < 1 || n > LS_SHARDS_MAX) return -EINVAL;
    ls_shards *sh = calloc(1, sizeof(*sh));
    if (!sh) return -ENOMEM;
    sh->d = d;
    sh->n = n;
    sh->seed = ec->seed * 7 + 11;
    size_t nb = (size_t)n * LS_SHARD_POOL_PER_SHARD;
    int rc = 0;
    if (!(sh->shard = calloc(n, sizeof(*sh->shard))) ||
        !(sh->batches = calloc(nb, sizeof(*sh->batches)))) {
        free(sh->shard);
        free(sh);
        return -ENOMEM;
    }
    if ((rc = ls_ring_init(&sh->pool, nb)) < 0) goto fail;
    for (size_t i = 0; i < nb; i++)
        ls_ring_push(&sh->pool, &sh->batches[i]);
    for (unsigned i = 0; i < n; i++) {
        ls_shard *s = &sh->shard[i];
        s->set = sh;
        s->index = i;
        s->wake_fd = -1;
        s->wake_at = INT64_MAX;
        ls_mutex_init(&s->lock);
        if ((rc = ls_ring_init(&s->queue, nb)) < 0) goto fail;
        if ((s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
            rc = -errno;
            goto fail;
        }
        if ((rc = ls_engine_new(&s->engine, ec, shard_event_cb, s)) < 0) {
            ls_error("shards", "engine of shard %u: %s", i, ls_strerror(rc));
            goto fail;
        }
        ls_engine_set_avail_cb(s->engine, shard_avail_cb, s);
    }
    *out = sh;
    return 0;
fail:
    ls_shards_close(sh);
    return rc;
}

/* Counts a refused item's result. */
static void count_rc(ls_ingest_result *r, int rc)
{
    if (rc == LS_EFULL || rc == LS_ENOMEM)
        r->full++;
    else if (rc == LS_EBADID)
        r->bad_ids++;
    else if (rc < 0)
        r->invalid++;
}

/* A run of activities of a batch with ops: their results are classified. */
static void apply_run(ls_shard *s, const ls_activity *a, size_t n, ls_now now, ls_ingest_result *r)
{
    LS_ASSERT_THREAD(&s->worker); /* s->rcs is the worker's */
    if (n == 0) return;
    size_t ok = ls_engine_activity_batch(s->engine, a, n, now, s->rcs);
    r->applied += ok;
    if (ok < n)
        for (size_t i = 0; i < n; i++)
            count_rc(r, s->rcs[i]);
}

/* A presence op: sessions are a state (see ls_shard_producer_op()). */
static void apply_op(ls_shard *s, const ls_activity *a, unsigned kind, ls_now now,
                     ls_ingest_result *r)
{
    const ls_device *dev = ls_engine_find(s->engine, a->id, a->len);
    int rc = 0;
    if ((kind & ~LS_INGEST_RETAINED) == LS_INGEST_ONLINE) {
        if (!dev || dev->sessions == 0) {
            if ((rc = ls_engine_connect_src(s->engine, a->id, a->len, a->source, now)) == 0)
                r->connects++;
        } else if (!(kind & LS_INGEST_RETAINED)) {
            ls_activity one = {.id = a->id, .len = a->len, .source = a->source};
            if (ls_engine_activity_batch(s->engine, &one, 1, now, &rc) == 1) r->applied++;
        }
    } else if (dev && dev->sessions > 0) {
        if ((rc = ls_engine_disconnect(s->engine, a->id, a->len, now)) == 0) r->disconnects++;
    }
    count_rc(r, rc);
}

/* Applies one batch under the shard's lock, fires due expiries, returns the batch. */
static void apply(ls_shard *s, ls_shard_batch *b)
{
    ls_ingest_result r = {0};
    LS_ASSERT_THREAD(&s->worker);
    ls_mutex_lock(&s->lock);
    ls_shard_section sec;
    ls_shard_section_enter(s, &sec, LS_SECTION_LAZY_GLOBAL);
    ls_now now = ls_clock_now();
    if (b->nops == 0) {
        r.applied = ls_engine_activity_batch(s->engine, b->items, b->n, now, NULL);
        r.full = b->n - r.applied; /* producers' ids are valid: only the device limit refuses */
    } else {
        size_t from = 0;
        for (uint32_t k = 0; k < b->nops; k++) {
            const ls_shard_op *o = &b->ops[k];
            apply_run(s, b->items + from, o->at - from, now, &r);
            apply_op(s, &b->items[o->at], o->kind, now, &r);
            from = (size_t)o->at + 1;
        }
        apply_run(s, b->items + from, b->n - from, now, &r);
    }
    if (ls_engine_next_wakeup(s->engine) <= now.mono) ls_engine_tick(s->engine, now);
    if (s->reporter && ls_reporter_next_wakeup(s->reporter) <= now.mono)
        ls_reporter_tick(s->reporter, now);
    ls_shard_section_leave(s, &sec);
    ls_mutex_unlock(&s->lock);
    atomic_fetch_add_explicit(&s->batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->activities, r.applied, memory_order_relaxed);
    ls_shard_producer *p = b->prod;
    if (p->done) p->done(p->ud, &r);
    atomic_store_explicit(&p->applied_last[s->index], b->last, memory_order_release);
    atomic_fetch_sub_explicit(&p->inflight, 1, memory_order_release);
    b->n = b->used = b->nops = 0;
    b->prod = NULL;
    ls_ring_push(&s->set->pool, b); /* the pool ring holds every batch: never full */
}

/* Under lock: the earliest of the wheel's and the reporter's deadlines. */
static int64_t next_wakeup(const ls_shard *s)
{
    LS_ASSERT_LOCKED(&s->lock);
    int64_t next = ls_engine_next_wakeup(s->engine);
    if (s->reporter) {
        int64_t r = ls_reporter_next_wakeup(s->reporter);
        if (r < next) next = r;
    }
    return next;
}

static void *worker_main(void *arg)
{
    ls_shard *s = arg;
    char name[16];
    snprintf(name, sizeof(name), "ls-shard%u", s->index);
    pthread_setname_np(pthread_self(), name);
    ls_thread_claim(&s->worker);
    for (;;) {
        ls_shard_batch *b = ls_ring_pop(&s->queue);
        if (b) {
            apply(s, b);
            continue;
        }
        ls_mutex_lock(&s->lock);
        ls_shard_section sec;
        ls_shard_section_enter(s, &sec, LS_SECTION_LAZY_GLOBAL);
        ls_now now = ls_clock_now();
        if (s->reporter) ls_reporter_tick(s->reporter, now); /* may arm the wheel: first */
        ls_engine_tick(s->engine, now);
        ls_shard_section_leave(s, &sec);
        int64_t next = next_wakeup(s);
        if (next > now.mono + IDLE_WAKE_MS) next = now.mono + IDLE_WAKE_MS;
        s->wake_at = next;
        ls_mutex_unlock(&s->lock);

        atomic_exchange_explicit(&s->sleeping, 1, memory_order_seq_cst);
        if (!ls_ring_empty(&s->queue)) {
            atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
            continue;
        }
        if (atomic_load_explicit(&s->set->stopping, memory_order_acquire)) break;
        int64_t wait_ns = next * 1000000 - ls_clock_mono_ns();
        if (wait_ns < 0) wait_ns = 0;
        struct timespec ts = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
        struct pollfd pf = {.fd = s->wake_fd, .events = POLLIN};
        if (ppoll(&pf, 1, &ts, NULL) > 0) {
            uint64_t v;
            ssize_t r = read(s->wake_fd, &v, sizeof(v));
            (void)r;
        }
        atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
    }
    return NULL;
}

/* After a push: wakes the worker if it sleeps.  The read of `sleeping` is
 * a read-modify-write, like the worker's exchange: the two are ordered in
 * `sleeping`'s modification order, so either the producer sees 1 and
 * writes the eventfd, or the worker's exchange comes after this one and
 * synchronises with it, and the worker sees the batch in its queue. */
static void wake(ls_shard *s)
{
    if (!atomic_fetch_or_explicit(&s->sleeping, 0, memory_order_seq_cst)) return;
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof(one));
    (void)w;
}

void ls_shard_wake_if_earlier(ls_shard *s)
{
    LS_ASSERT_LOCKED(&s->lock); /* wake_at */
    int64_t next = next_wakeup(s);
    if (next < s->wake_at) {
        s->wake_at = next;
        uint64_t one = 1;
        ssize_t w = write(s->wake_fd, &one, sizeof(one));
        (void)w;
    }
}

int ls_shards_set_reporting(ls_shards *sh, ls_report_strategy st, int64_t period_ms, uint64_t seed)
{
    for (unsigned i = 0; i < sh->n; i++) {
        ls_shard *s = &sh->shard[i];
        int rc = ls_reporter_new(&s->reporter, s->engine, st, period_ms, seed + i);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Adds a struct of uint64_t counters into another of the same type. */
static void add_counters(void *out, const void *in, size_t size)
{
    uint64_t *o = out;
    const uint64_t *p = in;
    for (size_t k = 0; k < size / sizeof(uint64_t); k++)
        o[k] += p[k];
}

void ls_shards_reporter_stats(ls_shards *sh, ls_reporter_stats *out)
{
    assert_all_held(sh);
    _Static_assert(sizeof(ls_reporter_stats) % sizeof(uint64_t) == 0,
                   "ls_reporter_stats is all uint64_t");
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < sh->n; i++) {
        if (!sh->shard[i].reporter) continue;
        ls_reporter_stats st;
        ls_reporter_get_stats(sh->shard[i].reporter, &st);
        add_counters(out, &st, sizeof(st));
    }
}

int ls_shards_start(ls_shards *sh)
{
    for (unsigned i = 0; i < sh->n; i++) {
        ls_shard *s = &sh->shard[i];
        int rc = pthread_create(&s->thread, NULL, worker_main, s);
        if (rc) {
            ls_error("shards", "cannot start the worker of shard %u: %s", i, strerror(rc));
            return -rc;
        }
        s->running = 1;
    }
    return 0;
}

void ls_shards_stop(ls_shards *sh)
{
    if (!sh) return;
    atomic_store_explicit(&sh->stopping, 1, memory_order_release);
    for (unsigned i = 0; i < sh->n; i++) {
        ls_shard *s = &sh->shard[i];
        if (!s->running) continue;
        uint64_t one = 1;
        ssize_t w = write(s->wake_fd, &one, sizeof(one));
        (void)w;
        pthread_join(s->thread, NULL);
        s->running = 0;
    }
}

void ls_shards_close(ls_shards *sh)
{
    if (!sh) return;
    for (unsigned i = 0; i < sh->n; i++) {
        ls_shard *s = &sh->shard[i];
        if (s->set != sh) continue; /* never initialised (failed start) */
        ls_reporter_close(s->reporter);
        ls_engine_close(s->engine);
        if (s->wake_fd >= 0) close(s->wake_fd);
        ls_ring_close(&s->queue);
        ls_mutex_destroy(&s->lock);
    }
    ls_ring_close(&sh->pool);
    free(sh->batches);
    free(sh->shard);
    free(sh);
}

void ls_shards_lock_all(ls_shards *sh)
{
    for (unsigned i = 0; i < sh->n; i++)
        ls_mutex_lock(&sh->shard[i].lock);
}

void ls_shards_unlock_all(ls_shards *sh)
{
    for (unsigned i = sh->n; i-- > 0;)
        ls_mutex_unlock(&sh->shard[i].lock);
}

#define APPLY_CHUNK 256

/* A chunk of at most APPLY_CHUNK activities, split by shard: part() gives
 * shard k's items in their order and where each stands in the chunk. */
typedef struct apply_split {
    size_t m; /* items in the chunk */
    uint8_t which[APPLY_CHUNK];
    ls_activity part[APPLY_CHUNK];
    uint16_t pos[APPLY_CHUNK];
    int prc[APPLY_CHUNK];
} apply_split;

static void split_chunk(const ls_shards *sh, apply_split *sp, const ls_activity *a, size_t m)
{
    sp->m = m;
    for (size_t i = 0; i < m; i++)
        sp->which[i] = (uint8_t)ls_shards_index(sh, a[i].id, a[i].len);
}

/* Gathers shard k's items of the chunk into sp->part; returns their count. */
static size_t split_part(apply_split *sp, const ls_activity *a, unsigned k)
{
    size_t np = 0;
    for (size_t i = 0; i < sp->m; i++)
        if (sp->which[i] == k) {
            sp->part[np] = a[i];
            sp->pos[np++] = (uint16_t)i;
        }
    return np;
}

/* Scatters the part's results back to the chunk's places in rcs (if any). */
static void split_results(const apply_split *sp, size_t np, int *rcs)
{
    if (rcs)
        for (size_t j = 0; j < np; j++)
            rcs[sp->pos[j]] = sp->prc[j];
}

size_t ls_shards_apply(ls_shards *sh, const ls_activity *a, size_t n, int report, int *rcs,
                       uint64_t *gen)
{
    size_t applied = 0;
    apply_split sp;
    *gen = 0;
    for (size_t base = 0; base < n; base += APPLY_CHUNK) {
        split_chunk(sh, &sp, a + base, n - base < APPLY_CHUNK ? n - base : APPLY_CHUNK);
        for (unsigned k = 0; k < sh->n; k++) {
            size_t np = split_part(&sp, a + base, k);
            if (!np) continue;
            ls_shard *s = &sh->shard[k];
            ls_mutex_lock(&s->lock);
            ls_shard_section sec; /* events take the global lock, as in the worker */
            ls_shard_section_enter(s, &sec, LS_SECTION_LAZY_GLOBAL);
            if (report && s->reporter)
                applied +=
                    ls_reporter_activity_batch(s->reporter, sp.part, np, ls_clock_now(), sp.prc);
            else
                applied += ls_engine_activity_batch(s->engine, sp.part, np, ls_clock_now(), sp.prc);
            uint64_t g = ls_shard_section_leave(s, &sec);
            if (g > *gen) *gen = g;
            ls_shard_wake_if_earlier(s);
            ls_mutex_unlock(&s->lock);
            split_results(&sp, np, rcs ? rcs + base : NULL);
        }
    }
    return applied;
}

void ls_shards_engine_stats(ls_shards *sh, ls_engine_stats *out)
{
    assert_all_held(sh);
    _Static_assert(sizeof(ls_engine_stats) % sizeof(uint64_t) == 0,
                   "ls_engine_stats is all uint64_t");
    ls_engine_get_stats(sh->shard[0].engine, out);
    for (unsigned i = 1; i < sh->n; i++) {
        ls_engine_stats st;
        ls_engine_get_stats(sh->shard[i].engine, &st);
        add_counters(out, &st, sizeof(st));
    }
}

int ls_shards_type_get(ls_shards *sh, const char *name, size_t len, ls_type_info *out)
{
    assert_all_held(sh);
    int found = 0;
    for (unsigned i = 0; i < sh->n; i++) {
        ls_type_info t;
        if (ls_engine_type_get(sh->shard[i].engine, name, len, &t) < 0) continue;
        if (!found) {
            *out = t;
            found = 1;
        } else {
            out->devices += t.devices;
            out->active += t.active;
        }
    }
    return found ? 0 : LS_ENOTFOUND;
}

void ls_shards_types(ls_shards *sh, ls_type_visit_cb cb, void *ud)
{
    assert_all_held(sh);
    for (unsigned i = 0; i < sh->n; i++) {
        ls_engine *e = sh->shard[i].engine;
        uint32_t n = ls_engine_type_count(e);
        for (uint32_t k = 0; k < n; k++) {
            ls_type_info t;
            ls_engine_type_at(e, k, &t);
            size_t len = strlen(t.name);
            int seen = 0;
            for (unsigned j = 0; j < i && !seen; j++) {
                ls_type_info u;
                seen = ls_engine_type_get(sh->shard[j].engine, t.name, len, &u) == 0;
            }
            if (seen) continue;
            if (sh->n > 1) ls_shards_type_get(sh, t.name, len, &t);
            cb(ud, &t);
        }
    }
}

int ls_shards_type_put(ls_shards *sh, const char *name, size_t len, const ls_type_config *c,
                       ls_now now, int *created)
{
    assert_all_held(sh);
    int rc0 = ls_engine_type_put(sh->shard[0].engine, name, len, c, now, created);
    if (rc0 < 0) return rc0;
    for (unsigned i = 1; i < sh->n; i++) {
        int rc = ls_engine_type_put(sh->shard[i].engine, name, len, c, now, NULL);
        if (rc < 0)
            ls_error("shards", "device type %.*s not applied in shard %u: %s", (int)len, name, i,
                     ls_strerror(rc));
    }
    return 0;
}

int ls_shards_type_delete(ls_shards *sh, const char *name, size_t len, ls_now now)
{
    assert_all_held(sh);
    int rc0 = ls_engine_type_delete(sh->shard[0].engine, name, len, now);
    if (rc0 < 0) return rc0;
    for (unsigned i = 1; i < sh->n; i++)
        ls_engine_type_delete(sh->shard[i].engine, name, len, now);
    return 0;
}

int ls_shards_source_add(ls_shards *sh, const char *name, int gate)
{
    assert_all_held(sh);
    int rc0 = ls_engine_source_add(sh->shard[0].engine, name, gate);
    if (rc0 < 0) return rc0;
    for (unsigned i = 1; i < sh->n; i++) {
        int rc = ls_engine_source_add(sh->shard[i].engine, name, gate);
        if (rc != rc0) {
            ls_error("shards", "source %s: index %d in shard %u, %d in shard 0", name, rc, i, rc0);
            return LS_EINVAL;
        }
    }
    return rc0;
}

void ls_shards_source_down(ls_shards *sh, unsigned source, ls_now now)
{
    assert_all_held(sh);
    for (unsigned i = 0; i < sh->n; i++)
        ls_engine_source_down(sh->shard[i].engine, source, now);
}

void ls_shards_source_up(ls_shards *sh, unsigned source, ls_now now)
{
    assert_all_held(sh);
    for (unsigned i = 0; i < sh->n; i++)
        ls_engine_source_up(sh->shard[i].engine, source, now);
}

void ls_shards_get_stats(ls_shards *sh, ls_shards_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < sh->n; i++) {
        ls_shard *s = &sh->shard[i];
        out->batches += atomic_load_explicit(&s->batches, memory_order_relaxed);
        out->activities += atomic_load_explicit(&s->activities, memory_order_relaxed);
        uint64_t h = atomic_load_explicit(&s->queue.head, memory_order_relaxed);
        uint64_t t = atomic_load_explicit(&s->queue.tail, memory_order_relaxed);
        out->queued += h > t ? h - t : 0;
    }
    out->producer_waits = atomic_load_explicit(&sh->producer_waits, memory_order_relaxed);
}

/* ---- producers ---------------------------------------------------------- */

void ls_shard_producer_init(ls_shard_producer *p, ls_shards *sh, ls_ingest_done_cb done, void *ud)
{
    memset(p, 0, sizeof(*p));
    p->sh = sh;
    p->done = done;
    p->ud = ud;
}

static void push(ls_shard_producer *p, unsigned k)
{
    ls_shard_batch *b = p->open[k];
    if (!b) return;
    p->open[k] = NULL;
    if (b->n == 0) {
        ls_ring_push(&p->sh->pool, b);
        return;
    }
    ls_shard *s = &p->sh->shard[k];
    p->pushed_last[k] = b->last;
    atomic_fetch_add_explicit(&p->inflight, 1, memory_order_relaxed);
    ls_ring_push(&s->queue, b); /* as large as the pool: never full */
    wake(s);
}

/* A free batch for shard k; waits (counted) while every batch is in use,
 * queuing this producer's other open batches so that they can come back. */
static ls_shard_batch *take_batch(ls_shard_producer *p)
{
    ls_shard_batch *b = ls_ring_pop(&p->sh->pool);
    if (b) return b;
    atomic_fetch_add_explicit(&p->sh->producer_waits, 1, memory_order_relaxed);
    for (unsigned k = 0; k < p->sh->n; k++)
        push(p, k);
    for (unsigned spins = 0; !(b = ls_ring_pop(&p->sh->pool)); spins++) {
        if (spins < SPINS_BEFORE_SLEEP) {
            sched_yield();
        } else {
            struct timespec ts = {0, WAIT_SLEEP_NS};
            nanosleep(&ts, NULL);
        }
    }
    return b;
}

/* The open batch of shard k with room for an id of len bytes. */
static inline ls_shard_batch *room(ls_shard_producer *p, unsigned k, size_t len)
{
    ls_shard_batch *b = p->open[k];
    if (b && (b->n == LS_SHARD_BATCH_ITEMS || b->used + len + 1 > LS_SHARD_BATCH_BYTES)) {
        push(p, k);
        b = NULL;
    }
    if (!b) {
        b = take_batch(p);
        b->prod = p;
        p->open[k] = b;
    }
    return b;
}

uint64_t ls_shard_producer_add(ls_shard_producer *p, const char *id, size_t len, int64_t ts,
                               uint8_t source)
{
    ls_shard_batch *b = room(p, ls_shards_index(p->sh, id, len), len);
    char *dst = b->ids + b->used;
    memcpy(dst, id, len);
    dst[len] = '\0';
    b->used += (uint32_t)len + 1;
    b->items[b->n++] = (ls_activity){.id = dst, .len = (uint32_t)len, .source = source, .ts = ts};
    return b->last = ++p->added;
}

uint64_t ls_shard_producer_op(ls_shard_producer *p, unsigned kind, const char *id, size_t len,
                              uint8_t source)
{
    ls_shard_batch *b = room(p, ls_shards_index(p->sh, id, len), len);
    b->ops[b->nops++] = (ls_shard_op){.at = (uint16_t)b->n, .kind = (uint8_t)kind};
    char *dst = b->ids + b->used;
    memcpy(dst, id, len);
    dst[len] = '\0';
    b->used += (uint32_t)len + 1;
    b->items[b->n++] = (ls_activity){.id = dst, .len = (uint32_t)len, .source = source};
    return b->last = ++p->added;
}

uint64_t ls_shard_producer_applied(ls_shard_producer *p)
{
    uint64_t upto = p->added;
    for (unsigned k = 0; p->sh && k < p->sh->n; k++) {
        uint64_t done = atomic_load_explicit(&p->applied_last[k], memory_order_acquire);
        int waiting = done != p->pushed_last[k] || (p->open[k] && p->open[k]->n > 0);
        if (waiting && done < upto) upto = done;
    }
    return upto;
}

void ls_shard_producer_flush(ls_shard_producer *p)
{
    for (unsigned k = 0; k < p->sh->n; k++)
        push(p, k);
}

void ls_shard_producer_sync(ls_shard_producer *p)
{
    if (!p->sh) return;
    ls_shard_producer_flush(p);
    while (atomic_load_explicit(&p->inflight, memory_order_acquire) > 0) {
        struct timespec ts = {0, WAIT_SLEEP_NS};
        nanosleep(&ts, NULL);
    }
}

void ls_shard_producer_close(ls_shard_producer *p)
{
    ls_shard_producer_sync(p);
    p->sh = NULL;
}
