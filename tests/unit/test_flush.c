/*
 * test_flush.c - the chunked persistence of device changes: the engine's
 * urgent list and flush passes (engine.c), and flush.c writing a pass into
 * a real LMDB store while event commits write the same devices.
 *
 * Each store test works in its own mkdtemp directory under /tmp, removed
 * after.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/flush.h"
#include "engine/engine.h"
#include "store/store.h"
#include "testutil.h"

#define WALL0 1700000000000LL
#define N 5000
#define TMP_LEN 64 /* a tmp_store() directory's path */

static void no_events(void *ud, const ls_event *ev)
{
    (void)ud;
    (void)ev;
}

static ls_engine *make(void)
{
    ls_engine *e;
    ls_engine_config cfg = {.default_timeout_ms = 60000, .max_clock_skew_ms = 5000, .seed = 11};
    assert_int_equal(ls_engine_new(&e, &cfg, no_events, NULL), 0);
    return e;
}

static ls_now at(int64_t mono, int64_t wall)
{
    ls_now n = {mono, wall};
    return n;
}

static void dev_id(char *buf, size_t size, int i)
{
    snprintf(buf, size, "dev-%05d", i);
}

/* Visits: how often each device was seen, and its last activity then. */
typedef struct seen {
    int count[N + 16];
    int64_t last[N + 16];
    int total;
} seen;

static int index_of(const char *id)
{
    int i;
    if (sscanf(id, "dev-%d", &i) == 1 && i >= 0 && i < N) return i;
    return N; /* anything else */
}

static void seen_cb(void *ud, const ls_device *d)
{
    seen *s = ud;
    char buf[LS_ID_BUF];
    int i = index_of(ls_device_id(d, buf));
    s->count[i]++;
    s->last[i] = d->last_activity;
    s->total++;
}

/* Creates devices 0..n-1 (each active: an ACTIVITY_EVENT, so urgent) and
 * drains them, so that they start clean. */
/* An activity of devices 0..n-1, in id order. */
static void beat_all(ls_engine *e, int n, ls_now now)
{
    char id[32];
    for (int i = 0; i < n; i++) {
        dev_id(id, sizeof(id), i);
        assert_int_equal(ls_engine_activity(e, id, strlen(id), 0, now), 0);
    }
}

static void create_clean(ls_engine *e, int n, ls_now now)
{
    beat_all(e, n, now);
    seen s = {0};
    ls_engine_drain_dirty(e, seen_cb, &s);
    assert_int_equal(s.total, n);
}

/* Activity of an active device is not urgent; transitions, sessions,
 * configuration and ls_engine_urge() are. */
static void test_urgent_kinds(void **state)
{
    (void)state;
    ls_engine *e = make();
    create_clean(e, 4, at(1000, WALL0));
    ls_now now = at(2000, WALL0 + 1000);
    assert_int_equal(ls_engine_activity(e, "dev-00000", 9, 0, now), 0); /* activity only */
    assert_int_equal(ls_engine_connect(e, "dev-00001", 9, now), 0);
    ls_device_config cfg = {.set_timeout = 1, .timeout_ms = 5000};
    assert_int_equal(ls_engine_put(e, "dev-00002", 9, &cfg, now, NULL), 0);
    assert_int_equal(ls_engine_activity(e, "dev-00003", 9, 0, now), 0);
    assert_int_equal(ls_engine_urge(e, "dev-00003", 9), 0); /* a ping */
    assert_int_equal(ls_engine_urge(e, "nope", 4), LS_ENOTFOUND);
    seen u = {0};
    assert_int_equal(ls_engine_drain_urgent(e, 100, seen_cb, &u), 3);
    assert_int_equal(u.count[0], 0);
    assert_int_equal(u.count[1] + u.count[2] + u.count[3], 3);
    assert_int_equal(ls_engine_urgent_left(e), 0);
    /* The pass has what is left: the device that only reported activity. */
    seen p = {0};
    int done = 0;
    ls_engine_flush_begin(e);
    assert_int_equal(ls_engine_flush_next(e, 100, seen_cb, &p, &done), 1);
    assert_true(done);
    assert_int_equal(p.count[0], 1);
    assert_int_equal(p.last[0], WALL0 + 1000);
    ls_engine_close(e);
}

/* A pass in chunks: every device once, with its state when its chunk came;
 * changed again after its chunk: the next pass; changed before: once, the
 * newer state; deleted: never; urgent meanwhile: left to the urgent drain. */
static void test_pass_in_chunks(void **state)
{
    (void)state;
    ls_engine *e = make();
    create_clean(e, N, at(1000, WALL0));
    beat_all(e, N, at(2000, WALL0 + 1000));
    assert_int_equal(ls_engine_urgent_left(e), 0);
    seen p = {0};
    int done = 0, chunks = 0;
    ls_engine_flush_begin(e);
    assert_int_equal(ls_engine_dirty_left(e), 0); /* all in the pass */
    while (!done) {
        size_t n = ls_engine_flush_next(e, 700, seen_cb, &p, &done);
        assert_true(n <= 700);
        if (++chunks == 2) {
            /* Between chunks: every device changes again; some are deleted,
             * one is created, one connects (urgent). */
            beat_all(e, N, at(3000, WALL0 + 2000));
            assert_int_equal(ls_engine_delete(e, "dev-04000", 9), 0);
            assert_int_equal(ls_engine_delete(e, "dev-00001", 9), 0); /* already visited or not */
            assert_int_equal(ls_engine_connect(e, "dev-04001", 9, at(3000, WALL0 + 2000)), 0);
        }
    }
    assert_true(chunks >= N / 700);
    for (int i = 0; i < N; i++) {
        if (i == 4000 || i == 4001) continue;
        if (i == 1) continue;
        assert_int_equal(p.count[i], 1);
        /* Visited in the first two chunks: the old state; later: the new one. */
        assert_true(p.last[i] == WALL0 + 1000 || p.last[i] == WALL0 + 2000);
    }
    assert_int_equal(p.count[4000], 0);
    assert_int_equal(p.count[4001], 0);
    /* The urgent drain has the connected device. */
    seen u = {0};
    ls_engine_drain_urgent(e, 10, seen_cb, &u);
    assert_int_equal(u.total, 1);
    assert_int_equal(u.count[4001], 1);
    /* The next pass has exactly the devices visited before their second
     * change, with the newer state. */
    seen q = {0};
    ls_engine_flush_begin(e);
    do
        ls_engine_flush_next(e, 10000, seen_cb, &q, &done);
    while (!done);
    for (int i = 0; i < N; i++) {
        if (i == 1 || i == 4000 || i == 4001) {
            assert_int_equal(q.count[i], 0);
            continue;
        }
        if (p.last[i] == WALL0 + 1000) {
            assert_int_equal(q.count[i], 1);
            assert_int_equal(q.last[i], WALL0 + 2000);
        } else {
            assert_int_equal(q.count[i], 0);
        }
    }
    ls_engine_close(e);
}

/* Re-created between chunks, in the slot of a device still listed in the
 * pass: visited once, as the new device, and only if not urgent. */
static void test_recreated_in_listed_slot(void **state)
{
    (void)state;
    ls_engine *e = make();
    create_clean(e, 10, at(1000, WALL0));
    for (int i = 0; i < 10; i++) {
        char id[32];
        dev_id(id, sizeof(id), i);
        ls_engine_activity(e, id, strlen(id), 0, at(2000, WALL0 + 1000));
    }
    seen p = {0};
    int done = 0;
    ls_engine_flush_begin(e);
    ls_engine_flush_next(e, 2, seen_cb, &p, &done);
    /* dev-00009 (listed, maybe not visited yet) deleted; "dev-00042" takes
     * its slot (last freed first): its first activity is a transition. */
    assert_int_equal(ls_engine_delete(e, "dev-00009", 9), 0);
    assert_int_equal(p.count[9], 0); /* the list is in marking order: 0, 1 first */
    {
        assert_int_equal(ls_engine_activity(e, "dev-00042", 9, 0, at(3000, WALL0 + 2000)), 0);
        do
            ls_engine_flush_next(e, 2, seen_cb, &p, &done);
        while (!done);
        assert_int_equal(p.count[9], 0);
        assert_int_equal(p.count[42], 0); /* urgent: not the pass's */
        seen u = {0};
        ls_engine_drain_urgent(e, 10, seen_cb, &u);
        assert_int_equal(u.count[42], 1);
    }
    ls_engine_close(e);
}

/* Each call looks at a bounded number of entries, even when all are stale. */
static void test_pass_bounded(void **state)
{
    (void)state;
    ls_engine *e = make();
    char id[32];
    create_clean(e, N, at(1000, WALL0));
    beat_all(e, N, at(2000, WALL0 + 1000));
    seen s = {0};
    assert_int_equal(ls_engine_drain_dirty(e, seen_cb, &s), N); /* everything clean again */
    for (int i = 0; i < N; i++) {
        dev_id(id, sizeof(id), i);
        ls_engine_activity(e, id, strlen(id), 0, at(3000, WALL0 + 2000));
        ls_engine_delete(e, id, strlen(id));
    }
    int done = 0, calls = 0;
    ls_engine_flush_begin(e);
    while (!done) {
        assert_int_equal(ls_engine_flush_next(e, 10, seen_cb, &s, &done), 0);
        calls++;
    }
    assert_true(calls >= N / 80); /* at most 8 * 10 looked at per call */
    ls_engine_close(e);
}

/* ---- flush.c against a store ---- */

/* A store in a new directory under /tmp (its path into tmp). */
static ls_store *tmp_store(char tmp[TMP_LEN], uint64_t size)
{
    assert_int_equal(ls_test_tmpdir(tmp, TMP_LEN, "flush"), 0);
    ls_store *s;
    ls_store_options o = {.initial_size = size, .sync = 0};
    assert_int_equal(ls_store_open(&s, tmp, &o), 0);
    return s;
}

/* Closes a store of tmp_store() and removes its directory. */
static void tmp_store_close(ls_store *s, const char *tmp)
{
    ls_store_close(s);
    ls_test_rmtree(tmp);
}

typedef struct loaded {
    int count[N + 16];
    int64_t last[N + 16];
    uint32_t sessions[N + 16];
    int64_t timeout[N + 16];
    int total;
} loaded;

static int load_cb(void *ud, const ls_device_state *d)
{
    loaded *l = ud;
    char id[64];
    snprintf(id, sizeof(id), "%.*s", (int)d->id_len, d->id);
    int i = index_of(id);
    l->count[i]++;
    l->last[i] = d->last_activity;
    l->sessions[i] = d->sessions;
    l->timeout[i] = d->timeout_ms;
    l->total++;
    return 0;
}

/* The event commit's records, as persist.c builds them. */
static void put_cb(void *ud, const ls_device *dev)
{
    char buf[LS_ID_BUF];
    ls_device_state rec = {.id = ls_device_id(dev, buf),
                           .id_len = dev->id_len,
                           .timeout_ms = (dev->flags & LS_DEV_OWN_TIMEOUT) ? dev->timeout_ms : 0,
                           .last_activity = dev->last_activity,
                           .sessions = dev->sessions,
                           .active = dev->active};
    assert_int_equal(ls_store_batch_put_device(ud, &rec), 0);
}

/* Commits the urgent devices (and `extra`) as the committer does: after
 * telling the flush. */
static void commit_urgent(ls_engine *e, ls_flush *f, ls_store *s, ls_store_batch *extra)
{
    ls_store_batch *b = ls_store_batch_new();
    if (extra) assert_int_equal(ls_store_batch_append(b, extra), 0);
    ls_engine_drain_urgent(e, 1000000, put_cb, b);
    ls_flush_supersede(f, b);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
}

/*
 * A pass staged in chunks while event commits write some of its devices:
 * connected (a newer state), deleted, deleted and created again, given a
 * timeout.  The store ends with the newest state of every device and
 * without the deleted ones: the pass never writes an older state back.
 */
static void test_flush_pass_with_commits_between(void **state)
{
    (void)state;
    char tmp[TMP_LEN];
    ls_store *s = tmp_store(tmp, (uint64_t)8 << 20);
    ls_engine *e = make();
    ls_flush *f;
    assert_int_equal(ls_flush_new(&f, e), 0);
    char id[32];
    for (int i = 0; i < N; i++) {
        dev_id(id, sizeof(id), N - 1 - i); /* created in descending id order */
        assert_int_equal(ls_engine_activity(e, id, strlen(id), 0, at(1000, WALL0)), 0);
    }
    commit_urgent(e, f, s, NULL); /* all new: urgent */
    beat_all(e, N, at(2000, WALL0 + 1000));
    /* The pass: chunks of 500, with commits after the first ones.  The
     * list holds every device twice, in the order of the marks: created
     * (4999 down to 0, drained since), then the activities (0 up); the
     * first entries find them dirty again, so the chunks go from 4999 down. */
    int done = 0, chunk = 0;
    ls_engine_flush_begin(e);
    ls_store_batch *dels = ls_store_batch_new();
    while (!done) {
        ls_flush_chunk(f);
        ls_engine_flush_next(e, 500, ls_flush_stage_cb, f, &done);
        assert_true(ls_flush_active(f));
        if (++chunk == 3) {
            /* Devices of chunks 1..3 and later ones change; the commit
             * carries them.  */
            ls_now now = at(3000, WALL0 + 2000);
            for (int i = 0; i < N; i += 97)
                if (i < 4900 || i > 4902) {
                    dev_id(id, sizeof(id), i);
                    ls_engine_connect(e, id, strlen(id), now);
                }
            ls_device_config cfg = {.set_timeout = 1, .timeout_ms = 4242};
            assert_int_equal(ls_engine_put(e, "dev-04901", 9, &cfg, now, NULL), 0);
            ls_engine_delete(e, "dev-04900", 9);
            assert_int_equal(ls_store_batch_del_device(dels, "dev-04900", 9), 0);
            ls_engine_delete(e, "dev-04902", 9);
            assert_int_equal(ls_store_batch_del_device(dels, "dev-04902", 9), 0);
            assert_int_equal(ls_engine_activity(e, "dev-04902", 9, 0, at(3000, WALL0 + 2500)), 0);
            commit_urgent(e, f, s, dels);
            /* And activity only, after the commit: newer than it, in a chunk to come or the next
             * pass. */
            ls_engine_activity(e, "dev-04850", 9, 0, at(4000, WALL0 + 3000));
        }
    }
    int wdone = 0, slices = 0;
    while (!wdone) {
        assert_int_equal(ls_flush_write(f, s, &wdone), 0);
        slices++;
        if (slices == 1) {
            /* A commit between slices supersedes every staged record of its devices. */
            ls_engine_connect(e, "dev-00001", 9, at(5000, WALL0 + 4000));
            commit_urgent(e, f, s, NULL);
        }
    }
    assert_false(ls_flush_active(f));
    assert_int_equal(ls_flush_errors(f), 0);
    ls_flush_stats fs;
    ls_flush_get_stats(f, &fs);
    assert_int_equal(fs.passes, 1);

    loaded l = {0};
    assert_int_equal(ls_store_load_devices(s, load_cb, &l), 0);
    assert_int_equal(l.count[4900], 0); /* deleted: not written back */
    assert_int_equal(l.count[4902], 1); /* deleted and created: the new one */
    assert_int_equal(l.last[4902], WALL0 + 2500);
    assert_int_equal(l.sessions[4902], 0);
    assert_int_equal(l.timeout[4901], 4242);
    assert_int_equal(l.sessions[1], 1);
    assert_int_equal(l.last[1], WALL0 + 4000);
    for (int i = 0; i < N; i++) {
        if (i == 4900) continue;
        assert_int_equal(l.count[i], 1);
        const ls_device *d;
        dev_id(id, sizeof(id), i);
        assert_non_null(d = ls_engine_find(e, id, strlen(id)));
        /* The store has the engine's state, except lastActivityTime of a
         * device changed after its chunk (the next pass writes it). */
        assert_int_equal(l.sessions[i], d->sessions);
        if (!(d->flags & LS_DEV_DIRTY))
            assert_int_equal(l.last[i], d->last_activity);
        else
            assert_true(l.last[i] <= d->last_activity && l.last[i] >= WALL0 + 1000);
    }
    assert_true(fs.superseded > 0);
    /* The next pass catches up with what changed after its chunk. */
    ls_engine_flush_begin(e);
    done = 0;
    while (!done) {
        ls_flush_chunk(f);
        ls_engine_flush_next(e, 500, ls_flush_stage_cb, f, &done);
    }
    wdone = 0;
    while (!wdone)
        assert_int_equal(ls_flush_write(f, s, &wdone), 0);
    loaded m = {0};
    assert_int_equal(ls_store_load_devices(s, load_cb, &m), 0);
    for (int i = 0; i < N; i++) {
        if (i == 4900) continue;
        dev_id(id, sizeof(id), i);
        assert_int_equal(m.last[i], ls_engine_find(e, id, strlen(id))->last_activity);
    }
    ls_store_batch_free(dels);
    ls_flush_free(f);
    ls_engine_close(e);
    tmp_store_close(s, tmp);
}

typedef struct one_dev {
    const char *id;
    int found;
    uint32_t sessions;
    int64_t last;
} one_dev;

static int one_cb(void *ud, const ls_device_state *d)
{
    one_dev *o = ud;
    if (d->id_len == strlen(o->id) && memcmp(d->id, o->id, d->id_len) == 0) {
        o->found++;
        o->sessions = d->sessions;
        o->last = d->last_activity;
    }
    return 0;
}

/* A commit between two slices: the later slices drop their copies of its
 * devices (written by the commit, newer). */
static void test_flush_commit_between_slices(void **state)
{
    (void)state;
    enum { M = 60000 };
    char tmp[TMP_LEN];
    ls_store *s = tmp_store(tmp, (uint64_t)32 << 20);
    ls_engine *e = make();
    ls_flush *f;
    assert_int_equal(ls_flush_new(&f, e), 0);
    char id[32];
    for (int i = 0; i < M; i++) {
        snprintf(id, sizeof(id), "x-%06d", i);
        assert_int_equal(ls_engine_activity(e, id, strlen(id), 0, at(1000, WALL0)), 0);
    }
    commit_urgent(e, f, s, NULL);
    for (int i = 0; i < M; i++) {
        snprintf(id, sizeof(id), "x-%06d", i);
        ls_engine_activity(e, id, strlen(id), 0, at(2000, WALL0 + 1000));
    }
    int done = 0;
    ls_engine_flush_begin(e);
    while (!done) {
        assert_int_equal(ls_flush_reserve(f, 4096), 0);
        ls_flush_chunk(f);
        ls_engine_flush_next(e, 4096, ls_flush_stage_cb, f, &done);
    }
    int wdone = 0, slices = 0;
    while (!wdone) {
        assert_int_equal(ls_flush_write(f, s, &wdone), 0);
        if (++slices == 1) {
            assert_false(wdone); /* more than one slice */
            assert_int_equal(ls_engine_connect(e, "x-059999", 8, at(3000, WALL0 + 2000)), 0);
            commit_urgent(e, f, s, NULL);
        }
    }
    one_dev last = {.id = "x-059999"}, first = {.id = "x-000000"};
    assert_int_equal(ls_store_load_devices(s, one_cb, &last), 0);
    assert_int_equal(ls_store_load_devices(s, one_cb, &first), 0);
    assert_int_equal(last.found, 1);
    assert_int_equal(last.sessions, 1);
    assert_int_equal(last.last, WALL0 + 2000);
    assert_int_equal(first.last, WALL0 + 1000);
    assert_int_equal(ls_store_device_count(s), M);
    ls_flush_free(f);
    ls_engine_close(e);
    tmp_store_close(s, tmp);
}

/* An empty pass ends at once and writes nothing. */
/* Records taken with their events, as persist.c takes them (event_snapshots). */
typedef struct snap_ctx {
    ls_flush *f;
    ls_store_batch *pending;
    int events;
} snap_ctx;

static void snapshot_cb(void *ud, const ls_event *ev)
{
    snap_ctx *c = ud;
    if (!ev->dev) return;
    const ls_device *dev = ev->dev;
    char buf[LS_ID_BUF];
    ls_device_state rec = {.id = ls_device_id(dev, buf),
                           .id_len = dev->id_len,
                           .last_activity = dev->last_activity,
                           .sessions = dev->sessions,
                           .active = dev->active};
    assert_int_equal(ls_store_batch_put_device_tagged(c->pending, &rec, ls_flush_tag(c->f)), 0);
    c->events++;
}

/*
 * With event_snapshots, an event leaves its device neither urgent nor
 * dirty, and the record taken with it is tagged with the pass's chunk at
 * that moment.  A commit built later drops the staged records older than
 * the record (x: staged before its event) and keeps the newer ones (y:
 * changed again after its event, staged after it), which the pass writes
 * after the commit: the store ends with the newest state of both.
 */
static void test_event_snapshots_tagged(void **state)
{
    (void)state;
    char tmp[TMP_LEN];
    ls_store *s = tmp_store(tmp, (uint64_t)8 << 20);
    snap_ctx c = {.pending = ls_store_batch_new()};
    ls_engine *e;
    ls_engine_config cfg = {
        .default_timeout_ms = 60000, .max_clock_skew_ms = 5000, .seed = 11, .event_snapshots = 1};
    assert_int_equal(ls_engine_new(&e, &cfg, snapshot_cb, &c), 0);
    assert_int_equal(ls_flush_new(&c.f, e), 0);
    char id[32];
    beat_all(e, N, at(1000, WALL0));
    /* Every new device had its ACTIVITY_EVENT: records taken, nothing urgent or dirty. */
    assert_int_equal(c.events, N);
    assert_int_equal(ls_engine_urgent_left(e), 0);
    const ls_device *d = ls_engine_find(e, "dev-00010", 9);
    assert_int_equal(d->flags & (LS_DEV_DIRTY | LS_DEV_URGENT), 0);
    assert_int_equal(ls_store_write(s, c.pending), 0);
    ls_store_batch_clear(c.pending);

    beat_all(e, N, at(2000, WALL0 + 1000)); /* heartbeats: dirty, no event */
    assert_int_equal(c.events, N);
    ls_engine_flush_begin(e);
    int done = 0, chunk = 0;
    while (!done) {
        ls_flush_chunk(c.f);
        ls_engine_flush_next(e, 500, ls_flush_stage_cb, c.f, &done);
        if (++chunk == 1) {
            /* x (dev-00010) was in chunk 1; y (dev-04000) comes in a later one. */
            ls_now now = at(3000, WALL0 + 2000);
            assert_int_equal(ls_engine_connect(e, "dev-00010", 9, now), 0);
            assert_int_equal(ls_engine_connect(e, "dev-04000", 9, now), 0);
            assert_int_equal(ls_engine_urgent_left(e), 0);
            d = ls_engine_find(e, "dev-04000", 9);
            assert_int_equal(d->flags & LS_DEV_DIRTY, 0); /* its record is in `pending` */
            assert_int_equal(ls_engine_activity(e, "dev-04000", 9, 0, at(3500, WALL0 + 2500)), 0);
        }
    }
    assert_true(chunk > 2);
    /* The commit is built after every chunk, yet only chunk 1 is older than its records. */
    ls_flush_supersede(c.f, c.pending);
    assert_int_equal(ls_store_write(s, c.pending), 0);
    int wdone = 0;
    while (!wdone)
        assert_int_equal(ls_flush_write(c.f, s, &wdone), 0);
    ls_flush_stats fs;
    ls_flush_get_stats(c.f, &fs);
    assert_int_equal(fs.superseded, 1); /* x's record of chunk 1 */

    loaded l = {0};
    assert_int_equal(ls_store_load_devices(s, load_cb, &l), 0);
    assert_int_equal(l.sessions[10], 1);
    assert_int_equal(l.last[10], WALL0 + 2000);
    assert_int_equal(l.sessions[4000], 1);
    assert_int_equal(l.last[4000], WALL0 + 2500); /* the staged record, newer than the event's */
    for (int i = 0; i < N; i++) {
        dev_id(id, sizeof(id), i);
        d = ls_engine_find(e, id, strlen(id));
        assert_int_equal(l.count[i], 1);
        assert_int_equal(l.last[i], d->last_activity);
        assert_int_equal(l.sessions[i], d->sessions);
    }
    ls_store_batch_free(c.pending);
    ls_flush_free(c.f);
    ls_engine_close(e);
    tmp_store_close(s, tmp);
}

static void test_flush_empty_pass(void **state)
{
    (void)state;
    char tmp[TMP_LEN];
    ls_store *s = tmp_store(tmp, (uint64_t)8 << 20);
    ls_engine *e = make();
    ls_flush *f;
    assert_int_equal(ls_flush_new(&f, e), 0);
    int done = 0;
    ls_engine_flush_begin(e);
    ls_flush_chunk(f);
    assert_int_equal(ls_engine_flush_next(e, 10, ls_flush_stage_cb, f, &done), 0);
    assert_true(done);
    int wdone = 0;
    assert_int_equal(ls_flush_write(f, s, &wdone), 0);
    assert_true(wdone);
    assert_int_equal(ls_store_device_count(s), 0);
    ls_flush_free(f);
    ls_engine_close(e);
    tmp_store_close(s, tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urgent_kinds),
        cmocka_unit_test(test_pass_in_chunks),
        cmocka_unit_test(test_recreated_in_listed_slot),
        cmocka_unit_test(test_pass_bounded),
        cmocka_unit_test(test_flush_pass_with_commits_between),
        cmocka_unit_test(test_flush_commit_between_slices),
        cmocka_unit_test(test_flush_empty_pass),
        cmocka_unit_test(test_event_snapshots_tagged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
