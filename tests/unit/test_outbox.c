/*
 * test_outbox.c - the committer and the outbox through the sinks' port
 * (core/outbox.h), on a real core: ls_core_open() and ls_core_start() on a
 * store in a new /tmp directory, events raised by calling the engines the
 * way the API's routes do (no HTTP), and read back as a sink reads them.
 *
 * Covers: a sink reads exactly the committed events, in seq order, with
 * their type, device id (one that the JSON escapes too) and state taken
 * from the record, the line being the events.jsonl line; a watch becomes
 * readable on a commit and ls_outbox_wait() returns the new committed seq;
 * a read stops at its bound and at a full buffer; an acknowledgement is
 * the sink's cursor after a restart and reading resumes after it; a sink
 * that holds its own copy makes seqs continue after it; retention prunes
 * nothing an unacknowledged sink still needs and counts it as behind; an
 * inline sink gets each commit's events before any other reader and
 * before the answers, may ask to be called again sooner, and holds
 * nothing up when it does not deliver; and an outbox written by store
 * format 1
 * (lines alone) reads with the same fields.
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "core/daemon.h"
#include "core/outbox.h"
#include "store/store.h"
#include "testutil.h"

#define MAXREC 256
#define BUF ((size_t)1 << 20)

typedef struct fixture {
    char dir[64];
    ls_daemon *d;
    ls_outbox_rec rec[MAXREC];
    char *buf;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (ls_test_tmpdir(f->dir, sizeof(f->dir), "outbox") < 0) return -1;
    f->buf = malloc(BUF);
    ls_log_set_level(LS_LOG_WARN);
    *state = f;
    return 0;
}

static void core_close(fixture *f)
{
    if (!f->d) return;
    ls_core_commit_waiting(f->d);
    ls_core_stop_ingest(f->d);
    ls_core_stop_committer(f->d);
    ls_core_close(f->d);
    free(f->d);
    f->d = NULL;
}

static int teardown(void **state)
{
    fixture *f = *state;
    core_close(f);
    ls_test_rmtree(f->dir);
    free(f->buf);
    free(f);
    return 0;
}

/* Opens the core on f->dir (not started): sinks may register now. */
static ls_daemon *core_open(fixture *f, int64_t retention_ms)
{
    ls_config cfg;
    ls_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", f->dir);
    cfg.store_sync = 0;
    cfg.engine_shards = 2;
    cfg.alarms_enabled = 0;
    if (retention_ms) cfg.events_retention = retention_ms;
    f->d = calloc(1, sizeof(ls_daemon));
    assert_int_equal(ls_core_open(f->d, &cfg), 0);
    return f->d;
}

static void core_start(fixture *f)
{
    assert_int_equal(ls_core_start(f->d), 0);
    ls_core_ready(f->d);
}

/* The API's way: one device's shard and the global lock, the engine call,
 * then back once the change is committed. */
enum { ACT, CONNECT, DISCONNECT };
static void apply(ls_daemon *d, const char *id, int what)
{
    size_t len = strlen(id);
    ls_held h;
    ls_engine *e = ls_daemon_lock_id(d, &h, id, len);
    ls_now now = ls_clock_now();
    int rc = what == ACT       ? ls_engine_activity(e, id, len, 0, now)
             : what == CONNECT ? ls_engine_connect(e, id, len, now)
                               : ls_engine_disconnect(e, id, len, now);
    assert_int_equal(rc, 0);
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Checks that record r is the event (seq, type) of device dev, with the
 * fields agreeing with its line. */
static void check_rec(const ls_outbox_rec *r, uint64_t seq, ls_event_type type, const char *dev)
{
    assert_int_equal(r->seq, seq);
    assert_int_equal(r->type, type);
    assert_int_equal(r->device_len, strlen(dev));
    assert_memory_equal(r->device, dev, r->device_len);
    json_error_t err;
    json_t *line = json_loadb(r->line, r->line_len, 0, &err);
    assert_non_null(line);
    assert_int_equal(json_integer_value(json_object_get(line, "seq")), (json_int_t)seq);
    assert_string_equal(json_string_value(json_object_get(line, "type")), ls_event_name(type));
    assert_string_equal(json_string_value(json_object_get(line, "device")), dev);
    /* The state span is exactly the line's "state" object. */
    assert_non_null(r->state);
    assert_true(r->state > r->line && r->state + r->state_len < r->line + r->line_len);
    json_t *st = json_loadb(r->state, r->state_len, 0, &err);
    assert_non_null(st);
    assert_true(json_equal(st, json_object_get(line, "state")));
    json_decref(st);
    json_decref(line);
}

static int readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static void test_reads_committed_events_in_order(void **state)
{
    fixture *f = *state;
    ls_daemon *d = core_open(f, 0);
    uint64_t cursor = 99;
    int sink = ls_outbox_sink_open(d, "test", 0, &cursor);
    assert_true(sink >= 0);
    assert_int_equal(cursor, 0);
    assert_int_equal(ls_outbox_sink_open(d, "test", 0, &cursor), -EEXIST);
    assert_int_equal(ls_outbox_sink_open(d, "", 0, &cursor), -EINVAL);
    int fd = ls_outbox_watch(d);
    assert_true(fd >= 0);
    core_start(f);
    assert_int_equal(ls_outbox_committed(d), 0);
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, BUF), 0);

    apply(d, "a", ACT);        /* 1 ACTIVITY */
    apply(d, "q\"x", CONNECT); /* 2 CONNECT, 3 ACTIVITY: an id the JSON escapes */
    apply(d, "q\"x", DISCONNECT);
    apply(d, "a", ACT); /* active already: no event */
    assert_int_equal(ls_outbox_committed(d), 4);
    assert_true(readable(fd));
    assert_int_equal(ls_outbox_wait(d, fd, 3, 1000), 4);

    int64_t n = ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, BUF);
    assert_int_equal(n, 4);
    check_rec(&f->rec[0], 1, LS_EV_ACTIVITY, "a");
    check_rec(&f->rec[1], 2, LS_EV_CONNECT, "q\"x");
    check_rec(&f->rec[2], 3, LS_EV_ACTIVITY, "q\"x");
    check_rec(&f->rec[3], 4, LS_EV_DISCONNECT, "q\"x");

    /* Bounds: after, upto, max; a buffer that holds two of them; one that
     * holds none. */
    assert_int_equal(ls_outbox_read(d, 1, 3, f->rec, MAXREC, f->buf, BUF), 2);
    assert_int_equal(f->rec[0].seq, 2);
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, 1, f->buf, BUF), 1);
    assert_int_equal(ls_outbox_read(d, 4, UINT64_MAX, f->rec, MAXREC, f->buf, BUF), 0);
    /* "a" is inside its line; the escaped id is kept beside the second. */
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, BUF), 4);
    size_t two = f->rec[0].line_len + f->rec[1].line_len + 3;
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, two), 2);
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, two - 1), 1);
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, 10), -ENOBUFS);

    /* The wake: nothing new, the wait times out on the committed seq. */
    char tmp[8];
    while (read(fd, tmp, 8) > 0) {
    }
    assert_false(readable(fd));
    assert_int_equal(ls_outbox_wait(d, fd, 4, 50), 4);
    apply(d, "b", ACT);
    assert_true(readable(fd));
    assert_int_equal(ls_outbox_wait(d, fd, 4, 1000), 5);
    ls_outbox_unwatch(d, fd);
}

static void test_cursor_survives_restart(void **state)
{
    fixture *f = *state;
    ls_daemon *d = core_open(f, 0);
    uint64_t cursor;
    int sink = ls_outbox_sink_open(d, "resume", 0, &cursor);
    core_start(f);
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        apply(d, id, ACT);
    }
    assert_int_equal(ls_outbox_committed(d), 10);
    ls_outbox_ack(d, sink, 6);
    ls_outbox_ack(d, sink, 4);  /* going back: ignored */
    ls_outbox_ack(d, sink, 99); /* past the durable seq: ignored */
    apply(d, "dev-10", ACT);    /* seq 11: its commit saves the cursor */
    core_close(f);

    d = core_open(f, 0);
    assert_int_equal(ls_outbox_sink_open(d, "resume", 0, &cursor), 0);
    assert_int_equal(cursor, 6);
    core_start(f);
    int64_t n = ls_outbox_read(d, cursor, UINT64_MAX, f->rec, MAXREC, f->buf, BUF);
    assert_int_equal(n, 5);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "dev-%d", 6 + i);
        check_rec(&f->rec[i], (uint64_t)(7 + i), LS_EV_ACTIVITY, id);
    }
    apply(d, "dev-11", ACT);
    assert_int_equal(ls_outbox_committed(d), 12);
}

static void test_sink_holding_its_own_copy(void **state)
{
    fixture *f = *state;
    ls_daemon *d = core_open(f, 0);
    uint64_t cursor;
    int sink = ls_outbox_sink_open(d, "file", 40, &cursor);
    assert_true(sink >= 0);
    assert_int_equal(cursor, 40);
    core_start(f);
    assert_int_equal(ls_outbox_sink_open(d, "late", 100, &cursor), -EBUSY);
    apply(d, "a", ACT);
    assert_int_equal(ls_outbox_committed(d), 41); /* after the sink's copy */
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, BUF), 1);
    check_rec(&f->rec[0], 41, LS_EV_ACTIVITY, "a");
}

static void test_retention_keeps_what_a_sink_lacks(void **state)
{
    fixture *f = *state;
    ls_daemon *d = core_open(f, 1000); /* events.retention = 1 s */
    uint64_t c;
    int slow = ls_outbox_sink_open(d, "slow", 0, &c);
    int fast = ls_outbox_sink_open(d, "fast", 0, &c);
    core_start(f);
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "r-%d", i);
        apply(d, id, ACT);
    }
    ls_outbox_ack(d, fast, 5);
    ls_outbox_ack(d, slow, 2);
    /* Well past the retention, with commits (and retention passes) going on. */
    for (int i = 0; i < 30; i++) {
        sleep_ms(100);
        snprintf(id, sizeof(id), "later-%d", i);
        apply(d, id, ACT);
        ls_outbox_ack(d, fast, ls_outbox_committed(d));
    }
    assert_int_equal(ls_outbox_first(d), 3); /* nothing past the slow sink's cursor */
    assert_int_equal(__atomic_load_n(&d->sinks_behind, __ATOMIC_RELAXED), 1);
    assert_int_equal(ls_outbox_read(d, 2, UINT64_MAX, f->rec, 1, f->buf, BUF), 1);
    check_rec(&f->rec[0], 3, LS_EV_ACTIVITY, "r-2");

    /* Once it has them, they go. */
    uint64_t last = ls_outbox_committed(d);
    ls_outbox_ack(d, slow, last);
    ls_outbox_ack(d, fast, last);
    for (int i = 0; i < 30 && ls_outbox_first(d) <= 5; i++) {
        sleep_ms(100);
        snprintf(id, sizeof(id), "more-%d", i);
        apply(d, id, ACT);
    }
    assert_true(ls_outbox_first(d) > 5);
    assert_int_equal(__atomic_load_n(&d->sinks_behind, __ATOMIC_RELAXED), 0);
    int64_t n = ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, BUF);
    assert_true(n >= 0);
    if (n > 0) assert_true(f->rec[0].seq >= ls_outbox_first(d));
}

/* An inline sink that notes what it was called with. */
typedef struct probe {
    ls_daemon *d;
    int sink;
    int calls;
    uint64_t durable, committed; /* at the last call: its argument, and what others saw */
    uint64_t scanned;            /* last seq scanned */
    int64_t retry;               /* returned: 1 = "in 20 ms" */
    int stall;                   /* acknowledge nothing */
    ls_event_type types[8];
    char devices[8][8];
    int ntypes;
    int errors; /* scans that failed (checked by the test's thread) */
} probe;

/* Runs on the committer's thread: notes, the test's thread asserts. */
static int probe_scan_cb(void *ud, const ls_outbox_rec *r)
{
    probe *p = ud;
    if (p->ntypes < 8) {
        p->types[p->ntypes] = r->type;
        snprintf(p->devices[p->ntypes++], 8, "%.*s", (int)r->device_len, r->device);
    }
    p->scanned = r->seq;
    return 0;
}

static int64_t probe_deliver(void *ud, uint64_t durable)
{
    probe *p = ud;
    __atomic_fetch_add(&p->calls, 1, __ATOMIC_RELAXED); /* read while idle commits run */
    p->durable = durable;
    p->committed = ls_outbox_committed(p->d);
    if (__atomic_load_n(&p->stall, __ATOMIC_RELAXED)) return 0;
    if (ls_outbox_scan(p->d, p->scanned, durable, 100, probe_scan_cb, p) < 0) p->errors++;
    ls_outbox_ack(p->d, p->sink, durable);
    return __atomic_load_n(&p->retry, __ATOMIC_RELAXED) ? ls_clock_mono_ns() / 1000000 + 20 : 0;
}

static void test_inline_sink_comes_first(void **state)
{
    fixture *f = *state;
    ls_daemon *d = core_open(f, 0);
    uint64_t c;
    static probe p;
    p = (probe){.d = d};
    p.sink = ls_outbox_sink_open(d, "inline", 0, &c);
    assert_int_equal(ls_outbox_sink_inline(d, p.sink, probe_deliver, &p), 0);
    assert_int_equal(ls_outbox_sink_inline(d, 99, probe_deliver, &p), -EINVAL);
    core_start(f);
    assert_int_equal(ls_outbox_sink_inline(d, p.sink, NULL, NULL), -EBUSY);

    /* Answered after the inline sink had the events, which nobody else saw
     * then; it could read them. */
    apply(d, "i1", CONNECT); /* CONNECT, ACTIVITY: seqs 1, 2 */
    assert_true(p.calls >= 1);
    assert_int_equal(p.durable, 2);
    assert_int_equal(p.committed, 0);
    assert_int_equal(p.errors, 0);
    assert_int_equal(p.ntypes, 2);
    assert_int_equal(p.types[0], LS_EV_CONNECT);
    assert_int_equal(p.types[1], LS_EV_ACTIVITY);
    assert_string_equal(p.devices[0], "i1");
    assert_string_equal(p.devices[1], "i1");
    assert_int_equal(ls_outbox_committed(d), 2);

    /* A retry it asks for comes sooner than the idle commits (1 s). */
    __atomic_store_n(&p.retry, 1, __ATOMIC_RELAXED);
    apply(d, "i1", DISCONNECT);
    int calls = __atomic_load_n(&p.calls, __ATOMIC_RELAXED);
    sleep_ms(500);
    assert_true(__atomic_load_n(&p.calls, __ATOMIC_RELAXED) - calls >= 5);
    __atomic_store_n(&p.retry, 0, __ATOMIC_RELAXED);

    /* One that does not deliver holds nothing up: answers and the other
     * readers go on; its cursor stays. */
    __atomic_store_n(&p.stall, 1, __ATOMIC_RELAXED);
    apply(d, "i2", ACT);
    assert_int_equal(ls_outbox_committed(d), 4);
    assert_int_equal(p.durable, 4);
    assert_int_equal(p.scanned, 3);
}

static void test_format1_lines_read_the_same(void **state)
{
    fixture *f = *state;
    char store[128];
    snprintf(store, sizeof(store), "%s/store", f->dir);
    unsigned char v1[4] = {1, 0, 0, 0};
    const char *l1 = "{\"seq\":1,\"type\":\"DISCONNECT_EVENT\",\"device\":\"q\\\"x\",\"ts\":5,"
                     "\"detectedAt\":5,\"state\":{\"id\":\"q\\\"x\",\"sessions\":0}}";
    const char *l2 = "{\"seq\":2,\"type\":\"SOURCE_DOWN\",\"device\":\"mqtt\",\"ts\":6,"
                     "\"detectedAt\":6,\"source\":true}";
    ls_test_raw_put(store, "meta", "format", 6, v1, 4);
    ls_test_raw_put(store, "outbox", "\0\0\0\0\0\0\0\1", 8, l1, strlen(l1));
    ls_test_raw_put(store, "outbox", "\0\0\0\0\0\0\0\2", 8, l2, strlen(l2));
    ls_test_raw_put(store, "devices", "d", 1, (unsigned char[48]){1}, 48);
    ls_test_raw_put(store, "cursors", "x", 1, "\0\0\0\0\0\0\0\0", 8);

    ls_daemon *d = core_open(f, 0);
    core_start(f);
    assert_int_equal(ls_outbox_committed(d), 2);
    assert_int_equal(ls_outbox_read(d, 0, UINT64_MAX, f->rec, MAXREC, f->buf, BUF), 2);
    check_rec(&f->rec[0], 1, LS_EV_DISCONNECT, "q\"x");
    assert_int_equal(f->rec[0].line_len, strlen(l1));
    assert_memory_equal(f->rec[0].line, l1, strlen(l1));
    assert_int_equal(f->rec[1].type, LS_EV_SOURCE_DOWN);
    assert_int_equal(f->rec[1].device_len, 4);
    assert_memory_equal(f->rec[1].device, "mqtt", 4);
    assert_null(f->rec[1].state);
    /* New events are version-2 records beside them. */
    apply(d, "n", ACT);
    assert_int_equal(ls_outbox_read(d, 2, UINT64_MAX, f->rec, MAXREC, f->buf, BUF), 1);
    check_rec(&f->rec[0], 3, LS_EV_ACTIVITY, "n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_committed_events_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_holding_its_own_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_keeps_what_a_sink_lacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_sink_comes_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format1_lines_read_the_same, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
