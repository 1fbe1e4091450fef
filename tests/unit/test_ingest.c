/*
 * test_ingest.c - the engine shards fed through the ingest port
 * (core/ingest.h), the way an input feeds them, without HTTP or an input.
 *
 * Each test opens a real core (ls_core_open()/ls_core_start(): shards with
 * their workers, the committer, a store in its own mkdtemp directory under
 * /tmp, removed after) and an ingest port on it, then checks a promise of
 * the port: per-device order of one producer's items, from one thread and
 * from two; the done callback's counts; no drop when every batch is in use
 * (backpressure); the applied watermark; sources held while down and a
 * full timeout after up; that stopping the shards applies what is
 * queued; and the critical sections the shards' holders are in.  Cluster
 * mode's parts of the port: a forwarding port hands every item to its
 * forwarder and none to the shards, reports each through `done` when the
 * forwarder settles it (from another thread too) and syncs on those
 * reports; ls_partition_drop() (core/partition.h) removes exactly the
 * devices its predicate picks, without an event.  Engine state is read from
 * snapshots of devices taken under the device's lock (ls_daemon_lock_id()), as the API reads it.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/log.h"
#include "core/daemon.h"
#include "core/ingest.h"
#include "core/partition.h"
#include "core/shards.h"
#include "testutil.h"

/* ---- a core in a temporary directory ------------------------------------- */

typedef struct core {
    char dir[64];
    ls_daemon *d;
    ls_ingest *in;
    int shards_stopped;
} core;

static core *core_open(unsigned shards, int64_t timeout_ms)
{
    core *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    assert_int_equal(ls_test_tmpdir(c->dir, sizeof(c->dir), "ingest"), 0);
    ls_config *cfg = calloc(1, sizeof(*cfg));
    assert_non_null(cfg);
    ls_config_defaults(cfg);
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", c->dir);
    cfg->engine_shards = shards;
    cfg->state_default_inactivity_timeout = timeout_ms;
    cfg->store_sync = 0;
    cfg->store_flush_interval = 3600000; /* no flush pass takes the locks meanwhile */
    c->d = calloc(1, sizeof(*c->d));
    assert_non_null(c->d);
    assert_int_equal(ls_core_open(c->d, cfg), 0);
    assert_int_equal(ls_core_start(c->d), 0);
    assert_int_equal(ls_ingest_open(&c->in, c->d), 0);
    assert_int_equal(c->d->shards->n, shards);
    free(cfg);
    return c;
}

/* Stops everything in the composition root's order and removes the directory. */
static void core_close(core *c)
{
    ls_ingest_close(c->in);
    if (!c->shards_stopped) ls_core_stop_ingest(c->d);
    ls_core_stop_committer(c->d);
    ls_core_close(c->d);
    ls_test_rmtree(c->dir);
    free(c->d);
    free(c);
}

/* What a device looks like now, read under its shard's lock. */
typedef struct snap {
    int found, active;
    uint32_t sessions;
    int64_t last_activity;
} snap;

static snap snapshot(core *c, const char *id)
{
    snap s = {0};
    ls_held h;
    ls_engine *e = ls_daemon_lock_id(c->d, &h, id, strlen(id));
    const ls_device *dev = ls_engine_find(e, id, strlen(id));
    if (dev) s = (snap){1, dev->active, dev->sessions, dev->last_activity};
    ls_daemon_unlock(c->d, &h);
    return s;
}

static uint64_t events_of(core *c, ls_event_type t)
{
    ls_held h;
    ls_daemon_lock(c->d, &h);
    uint64_t n = c->d->events_by_type[t];
    ls_daemon_unlock(c->d, &h);
    return n;
}

static int64_t mono_ms(void)
{
    return ls_clock_mono_ns() / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the done callback's counts ---------------------------------------------- */

typedef struct counts {
    uint64_t batches, applied, full, bad_ids, invalid, connects, disconnects;
} counts;

static void done_cb(void *ud, const ls_ingest_result *r)
{
    counts *n = ud;
    __atomic_fetch_add(&n->batches, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n->applied, r->applied, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n->full, r->full, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n->bad_ids, r->bad_ids, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n->invalid, r->invalid, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n->connects, r->connects, __ATOMIC_RELAXED);
    __atomic_fetch_add(&n->disconnects, r->disconnects, __ATOMIC_RELAXED);
}

static uint64_t get(uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* ---- order of one producer's items, one and two threads ----------------------- */

#define DEVICES 300
#define ROUNDS 40

typedef struct feeder {
    core *c;
    const char *prefix;
    counts n;
    uint64_t last_number;
} feeder;

/*
 * Each round hands over, for every device, ONLINE, an activity, OFFLINE
 * (and an activity after it, for the odd devices), so that each op only
 * counts when it is applied after the device's earlier ones: ONLINE opens
 * a session only if the OFFLINE before it was applied first, OFFLINE
 * closes one only if its ONLINE was.  The last round ends with a retained
 * ONLINE for the even devices, which must find no session and open one.
 */
static void *feed_main(void *arg)
{
    feeder *f = arg;
    ls_ingest_producer *p;
    assert_int_equal(ls_ingest_producer_open(f->c->in, &p, done_cb, &f->n), 0);
    char id[64];
    uint64_t expect = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < DEVICES; i++) {
            int len = snprintf(id, sizeof(id), "%s-%d", f->prefix, i);
            assert_int_equal(ls_ingest_producer_op(p, LS_INGEST_ONLINE, id, len, 0), ++expect);
            assert_int_equal(ls_ingest_producer_add(p, id, len, 0, 0), ++expect);
            assert_int_equal(ls_ingest_producer_op(p, LS_INGEST_OFFLINE, id, len, 0), ++expect);
            if (i % 2) assert_int_equal(ls_ingest_producer_add(p, id, len, 0, 0), ++expect);
        }
        if (r % 7 == 0) ls_ingest_producer_flush(p);
    }
    for (int i = 0; i < DEVICES; i += 2) {
        int len = snprintf(id, sizeof(id), "%s-%d", f->prefix, i);
        ls_ingest_producer_op(p, LS_INGEST_ONLINE | LS_INGEST_RETAINED, id, len, 0);
        expect++;
    }
    ls_ingest_producer_sync(p);
    f->last_number = ls_ingest_producer_applied(p);
    assert_int_equal(f->last_number, expect);
    ls_ingest_producer_close(p);
    return NULL;
}

static void check_fed(core *c, feeder *f)
{
    uint64_t sessions = (uint64_t)DEVICES * ROUNDS + DEVICES / 2;
    assert_int_equal(get(&f->n.connects), sessions);
    assert_int_equal(get(&f->n.disconnects), (uint64_t)DEVICES * ROUNDS);
    /* Every activity found its device (the ONLINE before it opened it). */
    assert_int_equal(get(&f->n.applied), (uint64_t)ROUNDS * (DEVICES + DEVICES / 2));
    assert_int_equal(get(&f->n.full) + get(&f->n.bad_ids) + get(&f->n.invalid), 0);
    char id[64];
    for (int i = 0; i < DEVICES; i++) {
        snprintf(id, sizeof(id), "%s-%d", f->prefix, i);
        snap s = snapshot(c, id);
        assert_true(s.found);
        assert_true(s.active);
        assert_int_equal(s.sessions, i % 2 ? 0 : 1);
    }
}

static void test_order_one_producer(void **state)
{
    (void)state;
    core *c = core_open(4, 60000);
    uint64_t connects0 = events_of(c, LS_EV_CONNECT);
    feeder f = {.c = c, .prefix = "one"};
    feed_main(&f);
    check_fed(c, &f);
    /* The batches were many and spread: the order held across them. */
    assert_true(get(&f.n.batches) > 4 * 4);
    assert_int_equal(events_of(c, LS_EV_CONNECT) - connects0,
                     (uint64_t)DEVICES * ROUNDS + DEVICES / 2);
    assert_int_equal(events_of(c, LS_EV_DISCONNECT), (uint64_t)DEVICES * ROUNDS);
    core_close(c);
}

static void test_order_two_producers(void **state)
{
    (void)state;
    core *c = core_open(3, 60000);
    feeder a = {.c = c, .prefix = "a"}, b = {.c = c, .prefix = "b"};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, feed_main, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, feed_main, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    check_fed(c, &a);
    check_fed(c, &b);
    ls_shards_stats st;
    ls_shards_get_stats(c->d->shards, &st);
    assert_int_equal(st.queued, 0);
    core_close(c);
}

/* ---- backpressure: every batch in use, nothing dropped ------------------------- */

#define BP_ITEMS 200000
#define BP_DEVICES 5000

typedef struct bp {
    core *c;
    counts n;
    int finished;
} bp;

static void *bp_main(void *arg)
{
    bp *b = arg;
    ls_ingest_producer *p;
    assert_int_equal(ls_ingest_producer_open(b->c->in, &p, done_cb, &b->n), 0);
    char id[32];
    for (int i = 0; i < BP_ITEMS; i++) {
        int len = snprintf(id, sizeof(id), "bp-%d", i % BP_DEVICES);
        ls_ingest_producer_add(p, id, len, 0, 0);
    }
    ls_ingest_producer_close(p);
    __atomic_store_n(&b->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

/*
 * With every shard held (as a long API query holds them), the workers
 * apply nothing: the producer fills the pool (16 batches a shard, far
 * fewer than it needs), then waits.  Once the shards are released it goes
 * on, and every item is applied.
 */
static void test_backpressure(void **state)
{
    (void)state;
    core *c = core_open(2, 60000);
    ls_shards_stats st0, st;
    ls_shards_get_stats(c->d->shards, &st0);
    bp b = {.c = c};
    ls_held h;
    ls_daemon_lock(c->d, &h);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bp_main, &b), 0);
    int64_t until = mono_ms() + 10000;
    do {
        sleep_ms(5);
        ls_shards_get_stats(c->d->shards, &st);
    } while (st.producer_waits == st0.producer_waits && mono_ms() < until);
    assert_true(st.producer_waits > st0.producer_waits);
    sleep_ms(50);
    assert_false(__atomic_load_n(&b.finished, __ATOMIC_ACQUIRE)); /* it waits */
    assert_int_equal(get(&b.n.applied), 0);
    ls_daemon_unlock(c->d, &h);
    pthread_join(t, NULL);
    assert_int_equal(get(&b.n.applied), BP_ITEMS);
    assert_int_equal(get(&b.n.full) + get(&b.n.bad_ids) + get(&b.n.invalid), 0);
    ls_shards_get_stats(c->d->shards, &st);
    assert_int_equal(st.activities - st0.activities, BP_ITEMS);
    ls_engine_stats es;
    ls_daemon_lock(c->d, &h);
    ls_shards_engine_stats(c->d->shards, &es);
    ls_daemon_unlock(c->d, &h);
    assert_int_equal(es.devices, BP_DEVICES);
    core_close(c);
}

/* ---- the applied watermark ----------------------------------------------------- */

/* The i-th id (from 0) that lands in shard k. */
static int id_in_shard(core *c, unsigned k, int i, char *id, size_t size)
{
    for (int j = 0;; j++) {
        int len = snprintf(id, size, "w-%d", j);
        if (ls_shards_index(c->d->shards, id, (size_t)len) == k && i-- == 0) return len;
    }
}

/*
 * A held shard holds the watermark back to the last item of its last
 * applied batch, however far the other shard has gone; released, the
 * watermark reaches every item handed over.
 */
static void test_applied_watermark(void **state)
{
    (void)state;
    core *c = core_open(2, 60000);
    counts n = {0};
    ls_ingest_producer *p;
    assert_int_equal(ls_ingest_producer_open(c->in, &p, done_cb, &n), 0);
    assert_int_equal(ls_ingest_producer_applied(p), 0);
    char id[32];
    uint64_t k = 0;
    /* Items 1..25 go to shard 0, 26..60 to shard 1. */
    for (int i = 0; i < 60; i++) {
        int len = id_in_shard(c, i < 25 ? 0 : 1, i < 25 ? i : i - 25, id, sizeof(id));
        assert_int_equal(ls_ingest_producer_add(p, id, len, 0, 0), ++k);
    }
    assert_int_equal(ls_ingest_producer_applied(p), 0); /* still in the open batches */
    ls_ingest_producer_sync(p);
    assert_int_equal(ls_ingest_producer_applied(p), 60);
    ls_core_commit_waiting(c->d); /* the new devices' events: the committer is idle after */

    /* Shard 1 held: items 61..110 alternate between the shards (the same,
     * now active, devices: no event, so nothing else wants the locks). */
    ls_shard *s1 = &c->d->shards->shard[1];
    ls_mutex_lock(&s1->lock);
    for (int i = 0; i < 50; i++) {
        int len = id_in_shard(c, (unsigned)(i % 2), i / 2, id, sizeof(id));
        assert_int_equal(ls_ingest_producer_add(p, id, len, 0, 0), ++k);
    }
    ls_ingest_producer_flush(p);
    int64_t until = mono_ms() + 10000;
    while (get(&n.applied) < 60 + 25 && mono_ms() < until)
        sleep_ms(1);
    assert_int_equal(get(&n.applied), 60 + 25); /* shard 0's part is applied */
    assert_int_equal(ls_ingest_producer_applied(p), 60);
    ls_mutex_unlock(&s1->lock);
    ls_ingest_producer_sync(p);
    assert_int_equal(ls_ingest_producer_applied(p), 110);
    assert_int_equal(get(&n.applied), 110);
    ls_ingest_producer_close(p);
    core_close(c);
}

/* ---- sources: held while down, a full timeout after up ------------------------- */

#define TO 1000

/* Mono ms at which the device is first seen inactive, polling until `until`;
 * INT64_MAX if it stays active. */
static int64_t inactive_at(core *c, const char *id, int64_t until)
{
    do {
        if (!snapshot(c, id).active) return mono_ms();
        sleep_ms(10);
    } while (mono_ms() < until);
    return snapshot(c, id).active ? INT64_MAX : mono_ms();
}

static void test_source_down_up(void **state)
{
    (void)state;
    core *c = core_open(2, TO);
    int src = ls_ingest_source_add(c->in, "test", 1);
    assert_true(src >= 1);
    assert_int_equal(ls_ingest_source_add(c->in, "", 1), LS_EINVAL);
    counts n = {0};
    ls_ingest_producer *p;
    assert_int_equal(ls_ingest_producer_open(c->in, &p, done_cb, &n), 0);
    ls_ingest_source_up(c->in, p, (unsigned)src);
    uint64_t downs0 = events_of(c, LS_EV_SOURCE_DOWN), ups0 = events_of(c, LS_EV_SOURCE_UP);

    /* "held" is heard through the source, "free" through none. */
    ls_ingest_producer_add(p, "held", 4, 0, (unsigned)src);
    ls_ingest_producer_add(p, "free", 4, 0, 0);
    ls_ingest_source_down(c->in, p, (unsigned)src); /* applies both first */
    assert_int_equal(get(&n.applied), 2);
    assert_true(snapshot(c, "held").active);
    assert_true(snapshot(c, "free").active);
    assert_int_equal(events_of(c, LS_EV_SOURCE_DOWN) - downs0, 1);

    /* Down for 2.5 timeouts: the free device times out, the held one never. */
    int64_t down_until = mono_ms() + 5 * TO / 2;
    assert_true(inactive_at(c, "free", down_until) < down_until);
    assert_int_equal(inactive_at(c, "held", down_until), INT64_MAX);

    /* Up: a full timeout from now, not the deadline that passed while down. */
    int64_t up = mono_ms();
    ls_ingest_source_up(c->in, p, (unsigned)src);
    assert_int_equal(events_of(c, LS_EV_SOURCE_UP) - ups0, 1);
    int64_t gone = inactive_at(c, "held", up + 4 * TO);
    assert_true(gone != INT64_MAX);
    assert_true(gone >= up + TO);
    assert_int_equal(events_of(c, LS_EV_SOURCE_DOWN) - downs0, 1);

    /* A second up changes nothing and announces nothing. */
    ls_ingest_source_up(c->in, NULL, (unsigned)src);
    assert_int_equal(events_of(c, LS_EV_SOURCE_UP) - ups0, 1);
    ls_ingest_producer_close(p);
    core_close(c);
}

/* ---- counters ------------------------------------------------------------------ */

static void test_counters(void **state)
{
    (void)state;
    core *c = core_open(1, 60000);
    ls_ingest_counters a, b;
    assert_int_equal(ls_ingest_counters_open(c->in, "in-a", &a), 0);
    assert_int_equal(ls_ingest_counters_open(c->in, "in-a", &b), 0);
    assert_int_equal(a.src, b.src); /* the same name, the same counters */
    ls_ingest_accepted(&a, 5);
    ls_ingest_accepted(&b, 2);
    ls_ingest_rejected(&a, LS_REJECT_INVALID, 3);
    assert_int_equal(ls_metrics_get(&c->d->metrics.activities[a.src]), 7);
    assert_int_equal(ls_metrics_get(&c->d->metrics.rejected[a.src][LS_REJECT_INVALID]), 3);
    assert_int_equal(ls_ingest_counters_open(c->in, "", &b), -EINVAL);
    core_close(c);
}

/* ---- stop drains the queues ------------------------------------------------------ */

/* Stops the shards from another thread (it joins the workers). */
static void *stop_main(void *arg)
{
    ls_core_stop_ingest(arg);
    return NULL;
}

/*
 * Batches queued while every shard is held are still queued when the
 * shards are told to stop; the workers apply them all before they end.
 */
static void test_stop_drains(void **state)
{
    (void)state;
    core *c = core_open(2, 60000);
    counts n = {0};
    ls_ingest_producer *p;
    assert_int_equal(ls_ingest_producer_open(c->in, &p, done_cb, &n), 0);
    ls_held h;
    ls_daemon_lock(c->d, &h);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(id, sizeof(id), "s-%d", i);
        ls_ingest_producer_add(p, id, len, 0, 0);
    }
    ls_ingest_producer_flush(p);
    ls_shards_stats st;
    ls_shards_get_stats(c->d->shards, &st);
    assert_true(st.queued >= 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_main, c->d), 0);
    sleep_ms(50); /* the stop is asked for while the batches wait */
    assert_int_equal(get(&n.applied), 0);
    ls_daemon_unlock(c->d, &h);
    pthread_join(t, NULL);
    c->shards_stopped = 1;
    assert_int_equal(get(&n.applied), 5000);
    ls_shards_get_stats(c->d->shards, &st);
    assert_int_equal(st.queued, 0);
    ls_ingest_producer_close(p); /* nothing in flight: returns at once */
    core_close(c);
}

/* ---- critical sections ------------------------------------------------------- */

/* Shard k's section, read under its lock (its worker enters its own). */
static ls_shard_section *section_of(core *c, unsigned k)
{
    ls_shard *s = &c->d->shards->shard[k];
    ls_mutex_lock(&s->lock);
    ls_shard_section *sec = s->section;
    ls_mutex_unlock(&s->lock);
    return sec;
}

/*
 * The daemon's critical sections hang the caller's token on the shards it
 * holds (global held), and take it off when they are left; a lazy section
 * takes the global lock at its first event and its leave gives it back
 * with the generation that event commits as.
 */
static void test_sections(void **state)
{
    (void)state;
    core *c = core_open(2, 60000);
    ls_shards *sh = c->d->shards;
    unsigned k = ls_shards_index(sh, "a", 1);

    ls_held h;
    ls_engine *e = ls_daemon_lock_id(c->d, &h, "a", 1);
    assert_ptr_equal(e, sh->shard[k].engine);
    assert_int_equal(h.shard, (int)k);
    assert_int_equal(h.sec.mode, LS_SECTION_GLOBAL_HELD);
    assert_ptr_equal(sh->shard[k].section, &h.sec);
    ls_daemon_unlock(c->d, &h);
    assert_int_equal(h.shard, LS_HELD_NONE);
    assert_null(section_of(c, k));

    ls_daemon_lock(c->d, &h);
    assert_int_equal(h.shard, LS_HELD_ALL);
    for (unsigned i = 0; i < sh->n; i++)
        assert_ptr_equal(sh->shard[i].section, &h.sec);
    ls_daemon_unlock(c->d, &h);
    for (unsigned i = 0; i < sh->n; i++)
        assert_null(section_of(c, i));

    /* A new device's activity raises an event: the lazy section takes the
     * global lock for it. */
    uint64_t before = events_of(c, LS_EV_ACTIVITY);
    ls_shard *s = &sh->shard[k];
    ls_mutex_lock(&s->lock);
    ls_shard_section sec;
    ls_shard_section_enter(s, &sec, LS_SECTION_LAZY_GLOBAL);
    assert_false(sec.global_taken);
    ls_activity a = {.id = "a", .len = 1};
    assert_int_equal(ls_engine_activity_batch(s->engine, &a, 1, ls_clock_now(), NULL), 1);
    assert_true(sec.global_taken);
    uint64_t gen = ls_shard_section_leave(s, &sec);
    assert_false(sec.global_taken);
    ls_mutex_unlock(&s->lock);
    assert_true(gen > 0);
    assert_int_equal(events_of(c, LS_EV_ACTIVITY) - before, 1);

    /* The device is active now: no event, the global lock is not taken. */
    ls_mutex_lock(&s->lock);
    ls_shard_section_enter(s, &sec, LS_SECTION_LAZY_GLOBAL);
    assert_int_equal(ls_engine_activity_batch(s->engine, &a, 1, ls_clock_now(), NULL), 1);
    assert_false(sec.global_taken);
    assert_int_equal(ls_shard_section_leave(s, &sec), 0);
    ls_mutex_unlock(&s->lock);
    core_close(c);
}

/* ---- forwarding (cluster mode) ---------------------------------------------------- */

#define FWD_MAX 64

/* A forwarder that records what it gets and settles it at once (rc) or,
 * with `later`, from a thread of its own. */
typedef struct fake_fwd {
    ls_ingest_item items[FWD_MAX];
    char ids[FWD_MAX][LS_ID_BUF];
    size_t n;
    int rc, later, refuse;
    ls_ingest_stored_cb cb[FWD_MAX];
    void *ud[FWD_MAX];
} fake_fwd;

static int fake_forward(void *fud, const ls_ingest_item *items, size_t n,
                        ls_ingest_stored_cb stored, void *ud)
{
    fake_fwd *f = fud;
    if (f->refuse) return -ESHUTDOWN;
    for (size_t i = 0; i < n && f->n < FWD_MAX; i++) {
        f->items[f->n] = items[i];
        memcpy(f->ids[f->n], items[i].id, items[i].len);
        f->ids[f->n][items[i].len] = '\0';
        f->items[f->n].id = f->ids[f->n];
        f->cb[f->n] = stored;
        f->ud[f->n] = ud;
        f->n++;
    }
    if (!f->later && stored) stored(ud, f->rc);
    return 0;
}

static void *settle_main(void *arg)
{
    fake_fwd *f = arg;
    sleep_ms(50);
    for (size_t i = 0; i < f->n; i++)
        if (f->cb[i]) f->cb[i](f->ud[i], 0);
    return NULL;
}

static void test_forwarding(void **state)
{
    (void)state;
    core *c = core_open(2, 60000);
    fake_fwd *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(ls_ingest_forwarding(c->in), 0);
    assert_int_equal(ls_ingest_forward(c->in, NULL, 0, NULL, NULL), -ENOTSUP);
    ls_ingest_forwarder fw = {.forward = fake_forward, .fud = f};
    ls_ingest_forward_set(c->in, &fw);
    assert_int_equal(ls_ingest_forwarding(c->in), 1);

    /* Settled at once: one `done` report per item; nothing reaches the shards. */
    counts n = {0};
    ls_ingest_producer *p;
    assert_int_equal(ls_ingest_producer_open(c->in, &p, done_cb, &n), 0);
    assert_int_equal(ls_ingest_producer_add(p, "fw-a", 4, 1234, 0), 1);
    assert_int_equal(ls_ingest_producer_op(p, LS_INGEST_ONLINE | LS_INGEST_RETAINED, "fw-b", 4, 0),
                     2);
    ls_ingest_producer_flush(p);
    assert_int_equal(ls_ingest_producer_applied(p), 2);
    assert_int_equal(f->n, 2);
    assert_string_equal(f->items[0].id, "fw-a");
    assert_int_equal(f->items[0].kind, 0);
    assert_int_equal(f->items[0].ts, 1234);
    assert_int_equal(f->items[1].kind, LS_INGEST_ONLINE | LS_INGEST_RETAINED);
    assert_int_equal(get(&n.applied), 2);
    assert_int_equal(get(&n.batches), 2);
    assert_false(snapshot(c, "fw-a").found);

    /* A failure is reported as unstored, not applied. */
    f->rc = -ETIMEDOUT;
    ls_ingest_producer_add(p, "fw-c", 4, 0, 0);
    assert_int_equal(get(&n.applied), 2);
    assert_int_equal(get(&n.batches), 3);
    f->refuse = 1; /* a forwarder that takes nothing: reported as unstored too */
    ls_ingest_producer_add(p, "fw-d", 4, 0, 0);
    assert_int_equal(get(&n.batches), 4);
    assert_int_equal(ls_ingest_producer_applied(p), 4);
    ls_ingest_producer_close(p);

    /* Settled later, from another thread: applied trails, sync waits for it. */
    f->n = 0;
    f->rc = 0;
    f->refuse = 0;
    f->later = 1;
    counts m = {0};
    assert_int_equal(ls_ingest_producer_open(c->in, &p, done_cb, &m), 0);
    for (int i = 0; i < 10; i++)
        ls_ingest_producer_add(p, "fw-e", 4, 0, 0);
    assert_int_equal(ls_ingest_producer_applied(p), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, settle_main, f), 0);
    ls_ingest_producer_sync(p);
    assert_int_equal(get(&m.applied), 10);
    assert_int_equal(ls_ingest_producer_applied(p), 10);
    pthread_join(t, NULL);
    ls_ingest_producer_close(p);

    /* The HTTP API's way in; cleared, items go to the shards again. */
    f->later = 0;
    f->n = 0;
    ls_ingest_item it[2] = {{.id = "fw-f", .len = 4},
                            {.kind = LS_INGEST_OFFLINE, .id = "fw-g", .len = 4}};
    assert_int_equal(ls_ingest_forward(c->in, it, 2, NULL, NULL), 0);
    assert_int_equal(f->n, 2);
    ls_ingest_forward_set(c->in, NULL);
    assert_int_equal(ls_ingest_forwarding(c->in), 0);
    assert_int_equal(ls_ingest_producer_open(c->in, &p, NULL, NULL), 0);
    ls_ingest_producer_add(p, "fw-h", 4, 0, 0);
    ls_ingest_producer_sync(p);
    ls_ingest_producer_close(p);
    assert_true(snapshot(c, "fw-h").found);
    free(f);
    core_close(c);
}

/* ---- partition drop --------------------------------------------------------------- */

static int odd_match(void *ud, const char *id, size_t len)
{
    (void)ud;
    return len > 0 && (id[len - 1] - '0') % 2 == 1;
}

static void test_partition_drop(void **state)
{
    (void)state;
    core *c = core_open(3, 300); /* devices go inactive 300 ms after their last activity */
    ls_ingest_producer *p;
    assert_int_equal(ls_ingest_producer_open(c->in, &p, NULL, NULL), 0);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(id, sizeof(id), "pd-%d", i);
        ls_ingest_producer_add(p, id, (size_t)len, 0, 0);
    }
    ls_ingest_producer_sync(p);
    uint64_t before = events_of(c, LS_EV_INACTIVITY);
    assert_int_equal(ls_partition_drop(c->d, odd_match, NULL), 500);
    assert_int_equal(ls_partition_drop(c->d, odd_match, NULL), 0);
    assert_true(snapshot(c, "pd-2").found);
    assert_false(snapshot(c, "pd-3").found);
    assert_int_equal(atomic_load(&c->d->devices), 500);
    /* The dropped ones raise nothing; the kept ones go inactive as usual. */
    sleep_ms(600);
    assert_int_equal(events_of(c, LS_EV_INACTIVITY) - before, 500);
    assert_int_equal(ls_partition_drop(c->d, NULL, NULL), 500);
    assert_false(snapshot(c, "pd-2").found);
    ls_ingest_producer_close(p);
    core_close(c);
}

int main(void)
{
    ls_log_set_level(LS_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_one_producer), cmocka_unit_test(test_order_two_producers),
        cmocka_unit_test(test_backpressure),       cmocka_unit_test(test_applied_watermark),
        cmocka_unit_test(test_source_down_up),     cmocka_unit_test(test_counters),
        cmocka_unit_test(test_stop_drains),        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_forwarding),         cmocka_unit_test(test_partition_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
