/*
 * test_store.c - unit tests for src/store/ (the LMDB state store).
 *
 * Each test works in its own mkdtemp directory under /tmp (removed after),
 * with the store in a "db" subdirectory that ls_store_open() must create.
 * Covers device round trips across reopen (every field, 256-byte and UTF-8
 * ids, type NULL/""/set), deletes, the outbox (ranges, prune, first/last
 * seq, including after pruning everything), sink cursors, one 100k-op
 * batch, map growth from 1 MiB to ~50 MiB, the max_size cap (EFULL, nothing
 * of the batch applied, store still usable), and damaged stores: a newer
 * format, a foreign LMDB file, garbage and truncated data.mdb, a short
 * device record.  Version-2 device records (c8y_RequiredAvailability),
 * device types and alarms round trip, and a store written before those
 * databases existed opens and gains them.  Outbox event records keep the
 * type, device (inside the line or beside it) and state span; version-1
 * lines of a format-1 store read as bare lines, the store is marked
 * format 2 when opened for writing, and a record that does not add up is
 * damage.  Damage is made with raw LMDB calls or file writes while
 * the store is closed (LMDB forbids opening one env twice in a process).
 * Read-only opens: nothing created for a missing store, every read works,
 * writes refused and data.mdb unchanged, and a read-only reader keeps up
 * with a writer in another (forked) process that grows the map.  The pages
 * a load touched leave the resident set with ls_store_drop_pages().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "testutil.h"

#define MIB (1024 * 1024)

/* ---- fixtures ---------------------------------------------------------- */

/* The store is f->path, "db" in the test's directory. */
typedef ls_test_scratch fixture;

static int setup(void **state)
{
    return ls_test_scratch_open(state, "store", "db");
}

static int teardown(void **state)
{
    return ls_test_scratch_close(state);
}

static ls_store *open_ok(const fixture *f, uint64_t initial, uint64_t max)
{
    ls_store_options o = {.initial_size = initial, .max_size = max, .sync = 0};
    ls_store *s = NULL;
    assert_int_equal(ls_store_open(&s, f->path, &o), 0);
    assert_non_null(s);
    return s;
}

static int open_rc(const fixture *f)
{
    ls_store_options o = {.initial_size = MIB, .max_size = 0, .sync = 0};
    ls_store *s = (ls_store *)&o; /* must be reset to NULL on failure */
    int rc = ls_store_open(&s, f->path, &o);
    if (rc == 0)
        ls_store_close(s);
    else
        assert_null(s);
    return rc;
}

static char *path_in(const fixture *f, const char *name)
{
    static char p[160];
    snprintf(p, sizeof(p), "%s/%s", f->path, name);
    return p;
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

/* ---- device collection ------------------------------------------------- */

typedef struct got_dev {
    ls_device_state d;
    char id[512];
    char type[512];
    int type_null;
} got_dev;

typedef struct got {
    got_dev *v;
    size_t n, cap;
    int stop_after; /* >0: return -77 on that call */
} got;

static int collect_cb(void *ud, const ls_device_state *d)
{
    got *g = ud;
    if (g->stop_after && (int)g->n == g->stop_after) return -77;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->v = realloc(g->v, g->cap * sizeof(*g->v));
        assert_non_null(g->v);
    }
    got_dev *x = &g->v[g->n++];
    x->d = *d;
    assert_true(d->id_len < sizeof(x->id));
    memcpy(x->id, d->id, d->id_len);
    x->id[d->id_len] = 0;
    assert_int_equal(d->id[d->id_len], '\0'); /* the store NUL-terminates */
    x->type_null = d->type == NULL;
    if (d->type) {
        assert_true(d->type_len < sizeof(x->type));
        memcpy(x->type, d->type, d->type_len);
        x->type[d->type_len] = 0;
    }
    return 0;
}

static got load_all(ls_store *s)
{
    got g = {0};
    assert_int_equal(ls_store_load_devices(s, collect_cb, &g), 0);
    return g;
}

static const got_dev *find(const got *g, const char *id, size_t len)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i].d.id_len == len && memcmp(g->v[i].id, id, len) == 0) return &g->v[i];
    return NULL;
}

static void put_dev(ls_store_batch *b, const char *id, const char *type, int64_t t)
{
    ls_device_state d = {.id = id,
                         .id_len = strlen(id),
                         .type = type,
                         .type_len = type ? strlen(type) : 0,
                         .timeout_ms = t,
                         .last_activity = t + 1,
                         .last_connect = t + 2,
                         .last_disconnect = t + 3,
                         .inactivity_alarm = t + 4,
                         .sessions = (uint32_t)t,
                         .active = (uint8_t)(t & 1)};
    assert_int_equal(ls_store_batch_put_device(b, &d), 0);
}

/* ---- event collection -------------------------------------------------- */

typedef struct evs {
    uint64_t seq[256];
    char line[256][64];
    size_t n;
} evs;

static int ev_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    evs *e = ud;
    assert_true(e->n < 256 && len < 64);
    e->seq[e->n] = seq;
    memcpy(e->line[e->n], line, len);
    e->line[e->n][len] = 0;
    e->n++;
    return 0;
}

static void add_events(ls_store *s, uint64_t from, uint64_t to)
{
    ls_store_batch *b = ls_store_batch_new();
    char line[64];
    for (uint64_t q = from; q <= to; q++) {
        int n = snprintf(line, sizeof(line), "{\"seq\":%llu}", (unsigned long long)q);
        assert_int_equal(ls_store_batch_event(b, q, line, (size_t)n), 0);
    }
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
}

static void check_range(ls_store *s, uint64_t after, size_t max, uint64_t first, size_t count)
{
    evs e = {0};
    char want[64];
    assert_int_equal(ls_store_read_events(s, after, max, ev_cb, &e), (int64_t)count);
    assert_int_equal(e.n, count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(e.seq[i], first + i);
        snprintf(want, sizeof(want), "{\"seq\":%llu}", (unsigned long long)(first + i));
        assert_string_equal(e.line[i], want);
    }
}

/* ---- tests: contents --------------------------------------------------- */

static void test_devices_roundtrip(void **state)
{
    fixture *f = *state;
    char long_id[257];
    memset(long_id, 'L', 256);
    long_id[0] = 'z';
    long_id[256] = 0;
    const char *utf8 = "датчик-温度-📡";
    char big_type[300];
    memset(big_type, 't', 299);
    big_type[299] = 0;

    ls_store *s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_device_count(s), 0);
    ls_store_batch *b = ls_store_batch_new();
    ls_device_state full = {.id = "full",
                            .id_len = 4,
                            .type = "thermo",
                            .type_len = 6,
                            .timeout_ms = INT64_MAX,
                            .last_activity = INT64_MIN,
                            .last_connect = -1,
                            .last_disconnect = 1700000000123,
                            .inactivity_alarm = 42,
                            .sessions = UINT32_MAX,
                            .active = 1};
    assert_int_equal(ls_store_batch_put_device(b, &full), 0);
    put_dev(b, long_id, NULL, 5);
    put_dev(b, utf8, "", 6);
    put_dev(b, "typed", "sensor", 7);
    put_dev(b, "bigtype", big_type, 8);
    assert_int_equal(ls_store_batch_ops(b), 5);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_device_count(s), 5);
    got g = load_all(s);
    assert_int_equal(g.n, 5);
    for (size_t i = 1; i < g.n; i++) /* key order */
        assert_true(strcmp(g.v[i - 1].id, g.v[i].id) < 0);

    const got_dev *x = find(&g, "full", 4);
    assert_non_null(x);
    assert_string_equal(x->type, "thermo");
    assert_int_equal(x->d.type_len, 6);
    assert_true(x->d.timeout_ms == INT64_MAX);
    assert_true(x->d.last_activity == INT64_MIN);
    assert_true(x->d.last_connect == -1);
    assert_true(x->d.last_disconnect == 1700000000123);
    assert_true(x->d.inactivity_alarm == 42);
    assert_true(x->d.sessions == UINT32_MAX);
    assert_int_equal(x->d.active, 1);

    x = find(&g, long_id, 256);
    assert_non_null(x);
    assert_int_equal(x->d.id_len, 256);
    assert_true(x->type_null);
    assert_int_equal(x->d.type_len, 0);
    assert_true(x->d.timeout_ms == 5 && x->d.last_activity == 6 && x->d.last_connect == 7);
    assert_true(x->d.last_disconnect == 8 && x->d.inactivity_alarm == 9);
    assert_int_equal(x->d.sessions, 5);
    assert_int_equal(x->d.active, 1);

    x = find(&g, utf8, strlen(utf8));
    assert_non_null(x);
    assert_true(x->type_null); /* "" and NULL both mean "default" and load as NULL */
    assert_int_equal(x->d.active, 0);

    x = find(&g, "typed", 5);
    assert_non_null(x);
    assert_false(x->type_null);
    assert_string_equal(x->type, "sensor");

    x = find(&g, "bigtype", 7);
    assert_non_null(x);
    assert_string_equal(x->type, big_type);
    free(g.v);

    /* A negative callback result stops the walk and is returned. */
    got stop = {.stop_after = 2};
    assert_int_equal(ls_store_load_devices(s, collect_cb, &stop), -77);
    assert_int_equal(stop.n, 2);
    free(stop.v);

    /* Overwrite keeps one record per id. */
    b = ls_store_batch_new();
    put_dev(b, "typed", "other", 70);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    g = load_all(s);
    assert_int_equal(g.n, 5);
    assert_string_equal(find(&g, "typed", 5)->type, "other");
    free(g.v);
    ls_store_close(s);
}

static void test_delete(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    put_dev(b, "a", NULL, 1);
    put_dev(b, "b", NULL, 2);
    put_dev(b, "c", NULL, 3);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_clear(b);
    assert_int_equal(ls_store_batch_ops(b), 0);
    assert_int_equal(ls_store_batch_del_device(b, "b", 1), 0);
    assert_int_equal(ls_store_batch_del_device(b, "nope", 4), 0); /* missing: not an error */
    put_dev(b, "d", NULL, 4);
    assert_int_equal(ls_store_batch_del_device(b, "d", 1), 0); /* ops apply in order */
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    s = open_ok(f, MIB, 0);
    got g = load_all(s);
    assert_int_equal(g.n, 2);
    assert_non_null(find(&g, "a", 1));
    assert_null(find(&g, "b", 1));
    assert_non_null(find(&g, "c", 1));
    assert_null(find(&g, "d", 1));
    assert_int_equal(ls_store_device_count(s), 2);
    free(g.v);
    ls_store_close(s);
}

/*
 * Device ops are applied in key order (store.c), ops on one key in batch
 * order; batches are built of blocks (batch.c), an op larger than a block
 * gets its own, and append moves the blocks.  One batch crossing many
 * blocks, with puts and deletes of the same keys in a scrambled key order,
 * events around them and one event bigger than a block, appended to
 * another batch: the store ends as if every op had been applied in order.
 */
typedef struct seq_list {
    uint64_t seq[8];
    size_t n, stop_at; /* stop_at > 0: refuse the event after that many */
} seq_list;

static int seq_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    (void)line;
    (void)len;
    seq_list *l = ud;
    if (l->stop_at && l->n == l->stop_at) return -1;
    assert_true(l->n < 8);
    l->seq[l->n++] = seq;
    return 0;
}

static int big_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    (void)seq;
    for (size_t i = 0; i < len; i++)
        if (line[i] != 'x') return -1;
    *(size_t *)ud = len;
    return 0;
}

static void test_batch_order_and_blocks(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, 64 * MIB, 0);
    ls_store_batch *a = ls_store_batch_new(), *b = ls_store_batch_new();
    char id[32], line[64];
    enum { K = 3000 };
    uint64_t seq = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < K; i++) {
            int k = (i * 7919) % K; /* a scrambled order of the keys */
            snprintf(id, sizeof(id), "key-%05d", k);
            if (round == 1 && k % 3 == 0)
                assert_int_equal(ls_store_batch_del_device(b, id, strlen(id)), 0);
            else if (round < 2 || k % 5 == 0)
                put_dev(b, id, NULL, round * 100000 + k);
            int n = snprintf(line, sizeof(line), "{\"seq\":%llu}", (unsigned long long)++seq);
            assert_int_equal(ls_store_batch_event(b, seq, line, (size_t)n), 0);
        }
    /* One event larger than a block. */
    size_t big = (size_t)600 << 10;
    char *p = malloc(big);
    assert_non_null(p);
    memset(p, 'x', big);
    assert_int_equal(ls_store_batch_event(b, ++seq, p, big), 0);
    put_dev(a, "key-00000", NULL, 7); /* before b's ops: b's come after it */
    size_t nb = ls_store_batch_ops(b);
    assert_int_equal(ls_store_batch_append(a, b), 0);
    assert_int_equal(ls_store_batch_ops(b), 0);
    assert_int_equal(ls_store_batch_ops(a), nb + 1);
    /* The batch's own events, in order, after a given seq. */
    seq_list sl = {0};
    assert_int_equal(ls_store_batch_each_event(a, seq - 4, seq_cb, &sl), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(sl.seq[i], seq - 3 + (uint64_t)i);
    sl.stop_at = 2;
    sl.n = 0;
    assert_int_equal(ls_store_batch_each_event(a, 0, seq_cb, &sl), 2);
    put_dev(b, "key-00001", NULL, 9); /* b is usable again, and empty */
    assert_int_equal(ls_store_batch_ops(b), 1);
    assert_int_equal(ls_store_write(s, a), 0);

    got g = load_all(s);
    size_t want = 0;
    for (int k = 0; k < K; k++) {
        snprintf(id, sizeof(id), "key-%05d", k);
        const got_dev *d = find(&g, id, strlen(id));
        if (k % 3 == 0 && k % 5 != 0) { /* deleted in round 1, not put again */
            assert_null(d);
            continue;
        }
        want++;
        assert_non_null(d);
        /* the last put of the key: round 2 if k % 5 == 0, else round 1 */
        assert_int_equal(d->d.timeout_ms, (k % 5 == 0 ? 200000 : 100000) + k);
    }
    assert_int_equal(g.n, want);
    free(g.v);
    /* The events, in order, the big one whole. */
    assert_int_equal(ls_store_last_seq(s), seq);
    check_range(s, 0, 100, 1, 100);
    check_range(s, seq - 101, 100, seq - 100, 100);
    size_t len = 0;
    assert_int_equal(ls_store_read_events(s, seq - 1, 1, big_cb, &len), 1);
    assert_int_equal(len, big);
    free(p);
    ls_store_batch_free(a);
    ls_store_batch_free(b);
    ls_store_close(s);
}

static void test_outbox(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_last_seq(s), 0);
    assert_int_equal(ls_store_first_seq(s), 0);
    assert_int_equal(ls_store_read_events(s, 0, 10, ev_cb, &(evs){0}), 0);

    add_events(s, 1, 60);
    add_events(s, 61, 100);
    assert_int_equal(ls_store_first_seq(s), 1);
    assert_int_equal(ls_store_last_seq(s), 100);
    check_range(s, 0, 10, 1, 10);
    check_range(s, 10, 5, 11, 5);
    check_range(s, 95, 10, 96, 5);
    check_range(s, 99, 200, 100, 1);
    check_range(s, 100, 10, 0, 0);
    check_range(s, UINT64_MAX, 10, 0, 0);
    check_range(s, 0, 0, 0, 0);

    ls_store_batch *b = ls_store_batch_new();
    assert_int_equal(ls_store_batch_prune(b, 50), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    assert_int_equal(ls_store_first_seq(s), 51);
    assert_int_equal(ls_store_last_seq(s), 100);
    check_range(s, 0, 3, 51, 3);
    check_range(s, 49, 3, 51, 3);
    ls_store_close(s);

    /* Pruning everything keeps last_seq, across a reopen. */
    s = open_ok(f, MIB, 0);
    check_range(s, 0, 100, 51, 50);
    ls_store_batch_clear(b);
    assert_int_equal(ls_store_batch_prune(b, 1000), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    assert_int_equal(ls_store_first_seq(s), 0);
    assert_int_equal(ls_store_last_seq(s), 100); /* highest actually pruned, not 1000 */
    check_range(s, 0, 10, 0, 0);
    ls_store_close(s);

    s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_last_seq(s), 100);
    assert_int_equal(ls_store_first_seq(s), 0);
    add_events(s, 101, 110);
    assert_int_equal(ls_store_first_seq(s), 101);
    assert_int_equal(ls_store_last_seq(s), 110);
    check_range(s, 0, 100, 101, 10);

    /* Events, a prune and more events in one batch apply in order. */
    ls_store_batch_clear(b);
    assert_int_equal(ls_store_batch_event(b, 111, "{\"seq\":111}", 11), 0);
    assert_int_equal(ls_store_batch_prune(b, 105), 0);
    assert_int_equal(ls_store_batch_event(b, 112, "{\"seq\":112}", 11), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    assert_int_equal(ls_store_first_seq(s), 106);
    assert_int_equal(ls_store_last_seq(s), 112);
    check_range(s, 0, 100, 106, 7);

    /* An empty line is a valid value; seq 0 is not a valid seq. */
    ls_store_batch_clear(b);
    assert_int_equal(ls_store_batch_event(b, 0, "x", 1), -EINVAL);
    assert_int_equal(ls_store_batch_event(b, 113, "", 0), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    evs e = {0};
    assert_int_equal(ls_store_read_events(s, 112, 10, ev_cb, &e), 1);
    assert_int_equal(e.seq[0], 113);
    assert_string_equal(e.line[0], "");
    ls_store_batch_free(b);
    ls_store_close(s);
}

/* Outbox records as ls_store_read_outbox() hands them over, copied. */
typedef struct recs {
    int n;
    struct {
        uint64_t seq;
        int type;
        char line[256], device[64], state[128];
        int has_device;
    } r[16];
} recs;

static int rec_cb(void *ud, const ls_store_event *ev)
{
    recs *g = ud;
    assert_true(g->n < 16);
    g->r[g->n].seq = ev->seq;
    g->r[g->n].type = ev->type;
    snprintf(g->r[g->n].line, sizeof(g->r[0].line), "%.*s", (int)ev->line_len, ev->line);
    g->r[g->n].has_device = ev->device != NULL;
    if (ev->device)
        snprintf(g->r[g->n].device, sizeof(g->r[0].device), "%.*s", (int)ev->device_len,
                 ev->device);
    assert_true(ev->state_off + ev->state_len <= ev->line_len);
    snprintf(g->r[g->n].state, sizeof(g->r[0].state), "%.*s", (int)ev->state_len,
             ev->line + ev->state_off);
    g->n++;
    return 0;
}

/* Type, device and state span round trip, the device stored inside the
 * line or after it; reads stop at `upto`; bad records are refused. */
static void test_event_records(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    const char *l1 =
        "{\"seq\":1,\"type\":\"ACTIVITY_EVENT\",\"device\":\"d1\",\"state\":{\"id\":\"d1\"}}";
    const char *l2 = "{\"seq\":2,\"type\":\"ALARM_RAISED\",\"device\":\"a\\\"b\",\"alarm\":{}}";
    const char *st1 = strstr(l1, "{\"id\"");
    ls_store_event e1 = {.seq = 1,
                         .type = 0,
                         .line = l1,
                         .line_len = strlen(l1),
                         .device = strstr(l1, "d1"), /* a slice of the line */
                         .device_len = 2,
                         .state_off = (size_t)(st1 - l1),
                         .state_len = strlen(st1) - 1};
    ls_store_event e2 = {.seq = 2,
                         .type = 4,
                         .line = l2,
                         .line_len = strlen(l2),
                         .device = "a\"b", /* escaped in the line: stored beside it */
                         .device_len = 3};
    assert_int_equal(ls_store_batch_put_event(b, &e1), 0);
    assert_int_equal(ls_store_batch_put_event(b, &e2), 0);
    assert_int_equal(ls_store_batch_event(b, 3, "{}", 2), 0);
    /* Bad arguments: seq 0, a type the record cannot hold, a state past the line. */
    ls_store_event bad = e1;
    bad.seq = 0;
    assert_int_equal(ls_store_batch_put_event(b, &bad), -EINVAL);
    bad = e1;
    bad.type = 255;
    assert_int_equal(ls_store_batch_put_event(b, &bad), -EINVAL);
    bad = e1;
    bad.state_len = bad.line_len;
    assert_int_equal(ls_store_batch_put_event(b, &bad), -EINVAL);
    assert_int_equal(ls_store_batch_ops(b), 3);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_close(s);
    s = open_ok(f, MIB, 0);

    recs g = {0};
    assert_int_equal(ls_store_read_outbox(s, 0, UINT64_MAX, 10, rec_cb, &g), 3);
    assert_int_equal(g.r[0].seq, 1);
    assert_int_equal(g.r[0].type, 0);
    assert_string_equal(g.r[0].line, l1);
    assert_string_equal(g.r[0].device, "d1");
    assert_string_equal(g.r[0].state, "{\"id\":\"d1\"}");
    assert_int_equal(g.r[1].type, 4);
    assert_string_equal(g.r[1].line, l2);
    assert_string_equal(g.r[1].device, "a\"b");
    assert_string_equal(g.r[1].state, "");
    assert_int_equal(g.r[2].type, -1); /* written without type or device */
    assert_false(g.r[2].has_device);
    assert_string_equal(g.r[2].line, "{}");
    /* The bound: nothing past upto, nothing when after >= upto. */
    g.n = 0;
    assert_int_equal(ls_store_read_outbox(s, 0, 2, 10, rec_cb, &g), 2);
    assert_int_equal(ls_store_read_outbox(s, 2, 2, 10, rec_cb, &g), 0);
    /* The line-only reader and the batch's own iterator see the bare line. */
    evs e = {0};
    assert_int_equal(ls_store_read_events(s, 1, 1, ev_cb, &e), 1);
    assert_string_equal(e.line[0], l2);
    ls_store_batch_clear(b);
    assert_int_equal(ls_store_batch_put_event(b, &e2), 0);
    seq_list sl = {0};
    assert_int_equal(ls_store_batch_each_event(b, 0, seq_cb, &sl), 1);
    ls_store_batch_free(b);
    ls_store_close(s);

    /* A version-2 record whose lengths do not add up is damage, named. */
    unsigned char rec[24] = {2, 0, 3, 0, 200, 0, 0, 0};
    ls_test_raw_put(f->path, "outbox", "\0\0\0\0\0\0\0\4", 8, rec, sizeof(rec));
    s = open_ok(f, MIB, 0);
    g.n = 0;
    assert_int_equal(ls_store_read_outbox(s, 3, UINT64_MAX, 10, rec_cb, &g), LS_STORE_ECORRUPT);
    assert_int_equal(g.n, 0);
    ls_store_close(s);
}

/* A format-1 store: its bare lines read as such, and opening it for
 * writing marks it format 2 (an older lastseen then refuses it). */
static void test_format1_outbox(void **state)
{
    fixture *f = *state;
    unsigned char v1[4] = {1, 0, 0, 0}, fmt[4];
    const char *line = "{\"seq\":7,\"type\":\"CONNECT_EVENT\",\"device\":\"x\"}";
    ls_test_raw_put(f->path, "meta", "format", 6, v1, 4);
    ls_test_raw_put(f->path, "devices", "d", 1, (unsigned char[48]){1}, 48);
    ls_test_raw_put(f->path, "cursors", "events.jsonl", 12, "\7\0\0\0\0\0\0\0", 8);
    ls_test_raw_put(f->path, "outbox", "\0\0\0\0\0\0\0\7", 8, line, strlen(line));

    ls_store_options ro = {.read_only = 1};
    ls_store *s = NULL;
    assert_int_equal(ls_store_open(&s, f->path, &ro), 0);
    ls_store_close(s);
    assert_int_equal(ls_test_raw_get(f->path, "meta", "format", 6, fmt, 4), 4);
    assert_int_equal(fmt[0], 1); /* read-only: left as it was */

    s = open_ok(f, MIB, 0);
    recs g = {0};
    assert_int_equal(ls_store_read_outbox(s, 0, UINT64_MAX, 10, rec_cb, &g), 1);
    assert_int_equal(g.r[0].seq, 7);
    assert_int_equal(g.r[0].type, -1);
    assert_false(g.r[0].has_device);
    assert_string_equal(g.r[0].line, line);
    assert_int_equal(ls_store_last_seq(s), 7);
    assert_int_equal(ls_store_cursor(s, "events.jsonl"), 7);
    ls_store_close(s);
    assert_int_equal(ls_test_raw_get(f->path, "meta", "format", 6, fmt, 4), 4);
    assert_int_equal(fmt[0], LS_STORE_FORMAT);

    /* A version-1 value that is not a line is not ours. */
    ls_test_raw_put(f->path, "outbox", "\0\0\0\0\0\0\0\10", 8, "\1zz", 3);
    s = open_ok(f, MIB, 0);
    g.n = 0;
    assert_int_equal(ls_store_read_outbox(s, 7, UINT64_MAX, 10, rec_cb, &g), LS_STORE_ECORRUPT);
    ls_store_close(s);
}

static int stop_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    (void)line;
    (void)len;
    int *n = ud;
    if (++*n == 3) return -5;
    assert_true(seq > 0);
    return 0;
}

static void test_read_events_cb_stops(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    add_events(s, 1, 10);
    int n = 0;
    assert_int_equal(ls_store_read_events(s, 0, 10, stop_cb, &n), -5);
    assert_int_equal(n, 3);
    ls_store_close(s);
}

static void test_cursors(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_cursor(s, "http"), 0);
    ls_store_batch *b = ls_store_batch_new();
    assert_int_equal(ls_store_batch_cursor(b, "http", 5), 0);
    assert_int_equal(ls_store_batch_cursor(b, "mqtt", 7), 0);
    assert_int_equal(ls_store_batch_cursor(b, "http", 9), 0);
    assert_int_equal(ls_store_batch_cursor(b, "", 9), -EINVAL);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_cursor(s, "http"), 9);
    assert_int_equal(ls_store_cursor(s, "mqtt"), 7);
    assert_int_equal(ls_store_cursor(s, "missing"), 0);
    assert_int_equal(ls_store_cursor(s, ""), 0);
    ls_store_close(s);
}

static void test_batch_args(void **state)
{
    (void)state;
    ls_store_batch *b = ls_store_batch_new();
    char id[600];
    memset(id, 'x', sizeof(id));
    ls_device_state d = {.id = id, .id_len = 0};
    assert_int_equal(ls_store_batch_put_device(b, &d), -EINVAL);
    d.id_len = 512;
    assert_int_equal(ls_store_batch_put_device(b, &d), -EINVAL);
    d.id_len = 511;
    assert_int_equal(ls_store_batch_put_device(b, &d), 0);
    d.type = id;
    d.type_len = 70000;
    assert_int_equal(ls_store_batch_put_device(b, &d), -EINVAL);
    assert_int_equal(ls_store_batch_del_device(b, id, 0), -EINVAL);
    assert_int_equal(ls_store_batch_del_device(b, id, 512), -EINVAL);
    assert_int_equal(ls_store_batch_ops(b), 1);
    /* Clearing keeps the arena: refilling after a clear reuses it. */
    for (int round = 0; round < 3; round++) {
        ls_store_batch_clear(b);
        for (int i = 0; i < 1000; i++)
            assert_int_equal(ls_store_batch_prune(b, (uint64_t)i), 0);
        assert_int_equal(ls_store_batch_ops(b), 1000);
    }
    ls_store_batch_free(b);
    ls_store_batch_free(NULL);
}

static void test_big_batch(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, 64 * MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    char id[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "dev-%07d", i);
        put_dev(b, id, (i % 3) ? "sensor" : NULL, i);
    }
    assert_int_equal(ls_store_batch_ops(b), 100000);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    assert_int_equal(ls_store_device_count(s), 100000);
    ls_store_close(s);

    s = open_ok(f, 64 * MIB, 0);
    got g = load_all(s);
    assert_int_equal(g.n, 100000);
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "dev-%07d", i);
        assert_string_equal(g.v[i].id, id);
        assert_int_equal(g.v[i].d.sessions, (uint32_t)i);
        assert_int_equal(g.v[i].type_null, (i % 3) == 0);
    }
    free(g.v);
    ls_store_close(s);
}

/* kB of the process's resident pages mapped from the file `name` (smaps). */
static long resident_kb_of(const char *name)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[4352];
    long kb = 0;
    int in = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            in = strstr(line, name) != NULL;
            continue;
        }
        long v;
        if (in && sscanf(line, "Rss: %ld kB", &v) == 1) kb += v;
    }
    fclose(f);
    return kb;
}

/*
 * ls_store_drop_pages() takes the map's pages a load touched out of the
 * process's resident set, and the store reads the same afterwards; a batch
 * arena grown by a big batch is reused for small ones after it shrank.
 */
static void test_drop_pages(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, 64 * MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    char id[32];
    for (int round = 0; round < 2; round++) {
        int n = round == 0 ? 100000 : 10;
        for (int i = 0; i < n; i++) {
            snprintf(id, sizeof(id), "dev-%07d", i);
            put_dev(b, id, NULL, i + round);
        }
        assert_int_equal(ls_store_write(s, b), 0);
        ls_store_batch_clear(b); /* after the big round: shrinks */
    }
    ls_store_batch_free(b);
    got g = load_all(s);
    assert_int_equal(g.n, 100000);
    free(g.v);
    assert_true(resident_kb_of(path_in(f, "data.mdb")) > 1024); /* the load read ~10 MiB */
    ls_store_drop_pages(s);
    assert_true(resident_kb_of(path_in(f, "data.mdb")) < 256);
    g = load_all(s);
    assert_int_equal(g.n, 100000);
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "dev-%07d", i);
        assert_string_equal(g.v[i].id, id);
        assert_int_equal(g.v[i].d.sessions, (uint32_t)(i < 10 ? i + 1 : i));
    }
    free(g.v);
    ls_store_close(s);
}

/* ---- tests: growth and the cap ----------------------------------------- */

static void fill_line(char *buf, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (seq * 31 + i) % 26);
}

/* Writes events [from, from + n) of `len` bytes each in one batch. */
static int write_big_events(ls_store *s, uint64_t from, int n, size_t len)
{
    ls_store_batch *b = ls_store_batch_new();
    char *line = malloc(len);
    for (int i = 0; i < n; i++) {
        fill_line(line, len, from + (uint64_t)i);
        assert_int_equal(ls_store_batch_event(b, from + (uint64_t)i, line, len), 0);
    }
    int rc = ls_store_write(s, b);
    free(line);
    ls_store_batch_free(b);
    return rc;
}

typedef struct verify {
    uint64_t next;
    size_t len;
    char *want;
} verify;

static int verify_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    verify *v = ud;
    assert_int_equal(seq, v->next);
    assert_int_equal(len, v->len);
    fill_line(v->want, len, seq);
    assert_memory_equal(line, v->want, len);
    v->next++;
    return 0;
}

static void verify_events(ls_store *s, uint64_t first, uint64_t last, size_t len)
{
    verify v = {.next = first, .len = len, .want = malloc(len)};
    uint64_t after = first - 1;
    while (after < last) {
        uint64_t want = last - after < 1000 ? last - after : 1000;
        int64_t n = ls_store_read_events(s, after, (size_t)want, verify_cb, &v);
        assert_true(n >= 0);
        if (n == 0) break;
        after = v.next - 1;
    }
    assert_int_equal(v.next, last + 1);
    free(v.want);
}

static void test_map_growth(void **state)
{
    fixture *f = *state;
    uint64_t map, used, map0;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_usage(s, &map0, &used);
    assert_int_equal(map0, MIB);
    /* 50 batches of 1000 x 1000-byte events: ~50 MiB through a 1 MiB map. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(write_big_events(s, 1 + (uint64_t)i * 1000, 1000, 1000), 0);
    /* And one batch far bigger than the map at that point: several doublings in one write. */
    ls_store_usage(s, &map, &used);
    assert_true(map >= used);
    assert_true(used >= 50 * 1000 * 1000);
    assert_int_equal(write_big_events(s, 50001, 20000, 3000), 0);
    ls_store_batch *b = ls_store_batch_new();
    put_dev(b, "after-growth", "t", 1);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    /* Reopen with a small initial size: the map starts at least at the file size. */
    s = open_ok(f, MIB, 0);
    ls_store_usage(s, &map, &used);
    assert_true(map >= (uint64_t)file_size(path_in(f, "data.mdb")));
    verify_events(s, 1, 50000, 1000);
    verify_events(s, 50001, 70000, 3000);
    assert_int_equal(ls_store_device_count(s), 1);
    ls_store_close(s);
}

static void test_max_size(void **state)
{
    fixture *f = *state;
    uint64_t map, used;
    ls_store *s = open_ok(f, MIB, 4 * MIB);
    assert_int_equal(write_big_events(s, 1, 1000, 1000), 0); /* ~1 MiB: fits after growth */
    ls_store_batch *b = ls_store_batch_new();
    put_dev(b, "keep", "x", 3);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_clear(b);

    /* 8 MiB in one batch, mixed with other ops: refused whole. */
    put_dev(b, "lost", NULL, 4);
    assert_int_equal(ls_store_batch_cursor(b, "sink", 99), 0);
    char *line = malloc(1000);
    for (int i = 0; i < 8000; i++) {
        fill_line(line, 1000, 1001 + (uint64_t)i);
        assert_int_equal(ls_store_batch_event(b, 1001 + (uint64_t)i, line, 1000), 0);
    }
    free(line);
    assert_int_equal(ls_store_write(s, b), LS_STORE_EFULL);
    assert_int_equal(ls_store_write(s, b), LS_STORE_EFULL); /* again: logged once, same result */
    ls_store_usage(s, &map, &used);
    assert_int_equal(map, 4 * MIB);
    assert_int_equal(ls_store_last_seq(s), 1000);
    assert_int_equal(ls_store_cursor(s, "sink"), 0);
    assert_int_equal(ls_store_device_count(s), 1);
    verify_events(s, 1, 1000, 1000);

    /* Still usable for small writes. */
    ls_store_batch_clear(b);
    put_dev(b, "small", NULL, 5);
    assert_int_equal(ls_store_batch_event(b, 1001, "{}", 2), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    assert_int_equal(ls_store_device_count(s), 2);
    assert_int_equal(ls_store_last_seq(s), 1001);
    ls_store_close(s);

    s = open_ok(f, MIB, 4 * MIB);
    got g = load_all(s);
    assert_int_equal(g.n, 2);
    assert_non_null(find(&g, "keep", 4));
    assert_non_null(find(&g, "small", 5));
    free(g.v);
    verify_events(s, 1, 1000, 1000);
    ls_store_close(s);
}

typedef struct reader_arg {
    ls_store *s;
    volatile int stop;
    long reads;
} reader_arg;

static int count_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    (void)seq;
    (void)ud;
    /* Touch every byte: a remap under a reader would fault here. */
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)line[i];
    return sum == 0xFFFFFFFFu ? -1 : 0;
}

static void *reader_main(void *p)
{
    reader_arg *a = p;
    while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
        uint64_t first = ls_store_first_seq(a->s), map, used;
        assert_true(ls_store_read_events(a->s, first ? first - 1 : 0, 200, count_cb, NULL) >= 0);
        ls_store_usage(a->s, &map, &used);
        assert_true(used <= map);
        a->reads++;
    }
    return NULL;
}

/* Readers on other threads while the writer grows the map several times. */
static void test_reads_during_growth(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    assert_int_equal(write_big_events(s, 1, 100, 1000), 0);
    reader_arg a[2] = {{.s = s}, {.s = s}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &a[i]), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(write_big_events(s, 101 + (uint64_t)i * 1000, 1000, 1000), 0);
    for (int i = 0; i < 2; i++) {
        __atomic_store_n(&a[i].stop, 1, __ATOMIC_RELEASE);
        pthread_join(t[i], NULL);
        assert_true(a[i].reads > 0);
    }
    verify_events(s, 1, 16100, 1000);
    ls_store_close(s);
}

/* ---- tests: read-only ------------------------------------------------------ */

static int open_ro(const fixture *f, ls_store **s)
{
    ls_store_options o = {.read_only = 1};
    *s = (ls_store *)&o; /* must be reset to NULL on failure */
    int rc = ls_store_open(s, f->path, &o);
    if (rc < 0) assert_null(*s);
    return rc;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void test_read_only_missing(void **state)
{
    fixture *f = *state;
    struct stat sb;
    ls_store *s;
    /* No directory: not created. */
    assert_int_equal(open_ro(f, &s), -ENOENT);
    assert_int_equal(stat(f->path, &sb), -1);
    /* An empty directory: nothing created in it. */
    assert_int_equal(mkdir(f->path, 0755), 0);
    assert_int_equal(open_ro(f, &s), -ENOENT);
    assert_int_equal(stat(path_in(f, "data.mdb"), &sb), -1);
    assert_int_equal(stat(path_in(f, "lock.mdb"), &sb), -1);
    /* An LMDB environment nobody initialised as a store: still no store, still untouched. */
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, f->path, MDB_NOTLS, 0644), 0);
    mdb_env_close(env);
    off_t before = file_size(path_in(f, "data.mdb"));
    assert_int_equal(open_ro(f, &s), -ENOENT);
    assert_int_equal(file_size(path_in(f, "data.mdb")), before);
    /* The writable open turns it into a store; then read-only works. */
    assert_int_equal(open_rc(f), 0);
    assert_int_equal(open_ro(f, &s), 0);
    assert_int_equal(ls_store_device_count(s), 0);
    ls_store_close(s);
}

static void test_read_only_reads(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    put_dev(b, "a", NULL, 10);
    put_dev(b, "b", "pump", 11);
    assert_int_equal(ls_store_batch_cursor(b, "sink", 2), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    add_events(s, 1, 3);
    ls_store_close(s);
    size_t len0, len1;
    char *before = read_file(path_in(f, "data.mdb"), &len0);

    assert_int_equal(open_ro(f, &s), 0);
    got g = load_all(s);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.v[0].id, "a");
    assert_true(g.v[0].type_null);
    assert_int_equal(g.v[0].d.timeout_ms, 10);
    assert_int_equal(g.v[0].d.inactivity_alarm, 14);
    assert_string_equal(g.v[1].type, "pump");
    assert_int_equal(g.v[1].d.sessions, 11);
    assert_int_equal(g.v[1].d.active, 1);
    free(g.v);
    check_range(s, 0, 10, 1, 3);
    assert_int_equal(ls_store_last_seq(s), 3);
    assert_int_equal(ls_store_cursor(s, "sink"), 2);
    /* Writes are refused, and nothing changed on disk. */
    assert_int_equal(ls_store_write(s, b), -EROFS);
    ls_store_batch_free(b);
    ls_store_close(s);
    char *after = read_file(path_in(f, "data.mdb"), &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);

    /* A newer format is refused read-only too. */
    unsigned char newer[4] = {LS_STORE_FORMAT + 1, 0, 0, 0};
    ls_test_raw_put(f->path, "meta", "format", 6, newer, 4);
    assert_int_equal(open_ro(f, &s), LS_STORE_EVERSION);
}

/*
 * A reader opened read-only while another process writes: the writer grows
 * the map far past the reader's (1 MiB), so the reader's next transaction
 * gets MDB_MAP_RESIZED and must adopt the new size, then see everything.
 */
static void test_read_only_other_process_grows(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    put_dev(b, "first", NULL, 1);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    ls_store *ro;
    assert_int_equal(open_ro(f, &ro), 0);
    uint64_t map0, used;
    ls_store_usage(ro, &map0, &used);
    assert_true(map0 <= 2 * MIB);
    assert_int_equal(ls_store_device_count(ro), 1);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child is the writer; no cmocka here. */
        ls_store_options o = {.initial_size = MIB};
        ls_store *w;
        int ok = ls_store_open(&w, f->path, &o) == 0;
        for (int i = 0; ok && i < 20; i++)
            ok = write_big_events(w, 1 + (uint64_t)i * 1000, 1000, 1000) == 0;
        ls_store_batch *wb = ls_store_batch_new();
        char id[32];
        for (int i = 0; ok && i < 1000; i++) {
            snprintf(id, sizeof(id), "dev-%04d", i);
            ls_device_state d = {.id = id, .id_len = strlen(id), .timeout_ms = i + 1};
            ok = ls_store_batch_put_device(wb, &d) == 0;
        }
        ok = ok && ls_store_write(w, wb) == 0;
        ls_store_batch_free(wb);
        if (ok) ls_store_close(w);
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    got g = load_all(ro);
    assert_int_equal(g.n, 1001);
    assert_string_equal(g.v[1000].id, "first");
    assert_int_equal(g.v[999].d.timeout_ms, 1000);
    free(g.v);
    verify_events(ro, 1, 20000, 1000);
    uint64_t map1;
    ls_store_usage(ro, &map1, &used);
    assert_true(map1 > map0 && used >= 20 * 1000 * 1000);
    ls_store_close(ro);
}

/* ---- tests: damaged and foreign stores --------------------------------- */

static void test_format_newer(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_close(s);
    unsigned char newer[4] = {LS_STORE_FORMAT + 1, 0, 0, 0};
    ls_test_raw_put(f->path, "meta", "format", 6, newer, 4);
    off_t before = file_size(path_in(f, "data.mdb"));
    assert_int_equal(open_rc(f), LS_STORE_EVERSION);
    assert_int_equal(open_rc(f), LS_STORE_EVERSION); /* and nothing was changed */
    assert_int_equal(file_size(path_in(f, "data.mdb")), before);
    assert_string_equal(ls_strerror(LS_STORE_EVERSION), "store written by a newer lastseen");

    unsigned char bad[3] = {1, 0, 0};
    ls_test_raw_put(f->path, "meta", "format", 6, bad, 3);
    assert_int_equal(open_rc(f), LS_STORE_ECORRUPT);
    unsigned char v1[4] = {1, 0, 0, 0};
    ls_test_raw_put(f->path, "meta", "format", 6, v1, 4);
    assert_int_equal(open_rc(f), 0);
}

static void test_foreign_lmdb(void **state)
{
    fixture *f = *state;
    /* Some other program's LMDB store: not ours. */
    ls_test_raw_put(f->path, "other", "k", 1, "v", 1);
    assert_int_equal(open_rc(f), LS_STORE_ECORRUPT);
}

static void test_meta_without_format(void **state)
{
    fixture *f = *state;
    ls_test_raw_put(f->path, "meta", "something", 9, "v", 1);
    assert_int_equal(open_rc(f), LS_STORE_ECORRUPT);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void test_garbage_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->path, 0755), 0);
    size_t sizes[] = {100, 4096, 65536};
    unsigned char *junk = malloc(65536);
    uint32_t x = 12345;
    for (size_t i = 0; i < 65536; i++) {
        x = x * 1103515245 + 12345;
        junk[i] = (unsigned char)(x >> 16);
    }
    for (size_t i = 0; i < 3; i++) {
        write_file(path_in(f, "data.mdb"), junk, sizes[i]);
        assert_int_equal(open_rc(f), LS_STORE_ECORRUPT);
    }
    free(junk);
    /* A garbage lock file alone is rebuilt by LMDB: a store with a bad lock.mdb still opens. */
    unlink(path_in(f, "data.mdb"));
    write_file(path_in(f, "lock.mdb"), "garbage garbage garbage", 23);
    assert_int_equal(open_rc(f), 0);
}

static void test_retention_marks(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_prunable(s, INT64_MAX), 0); /* no marks: nothing known old */
    for (int i = 0; i < 3; i++) {
        ls_store_batch *b = ls_store_batch_new();
        uint64_t first = 1 + (uint64_t)i * 10;
        assert_int_equal(ls_store_batch_mark(b, first, 1000 * (i + 1)), 0);
        for (uint64_t q = first; q < first + 10; q++)
            assert_int_equal(ls_store_batch_event(b, q, "{}", 2), 0);
        assert_int_equal(ls_store_write(s, b), 0);
        ls_store_batch_free(b);
    }
    assert_int_equal(ls_store_prunable(s, 999), 0);
    assert_int_equal(ls_store_prunable(s, 1000), 0); /* events from 1 on: none older */
    assert_int_equal(ls_store_prunable(s, 2500), 10);
    assert_int_equal(ls_store_prunable(s, 3000), 20);
    assert_int_equal(ls_store_prunable(s, INT64_MAX), 20); /* the last batch has no later mark */

    ls_store_batch *b = ls_store_batch_new();
    assert_int_equal(ls_store_batch_prune(b, 10), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    assert_int_equal(ls_store_first_seq(s), 11);
    assert_int_equal(ls_store_prunable(s, 2500), 10); /* mark 11 stays: it bounds what is left */
    assert_int_equal(ls_store_prunable(s, 5000), 20);
    assert_int_equal(ls_store_batch_mark(NULL, 0, 1), -EINVAL);
    ls_store_close(s);

    /* Marks survive a reopen. */
    s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_prunable(s, 5000), 20);
    assert_int_equal(ls_store_last_seq(s), 30);
    ls_store_close(s);
}

static void test_truncated_file(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    assert_int_equal(write_big_events(s, 1, 2000, 1000), 0);
    ls_store_batch *b = ls_store_batch_new();
    put_dev(b, "d", NULL, 1);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    uint64_t map, used;
    ls_store_usage(s, &map, &used);
    ls_store_close(s);

    const char *p = path_in(f, "data.mdb");
    /* The file always spans the whole map, so no commit can end past it. */
    assert_int_equal((uint64_t)file_size(p), map);
    off_t full = (off_t)used;
    assert_true(full > 2 * MIB);
    /* Up to the map's end the tail is unused: losing it is harmless. */
    assert_int_equal(truncate(p, full), 0);
    assert_int_equal(open_rc(f), 0);
    assert_true(file_size(p) > full); /* extended again to the (new) map */
    assert_int_equal(truncate(p, full), 0);
    /* One page short, half, just the meta pages, one meta page: each refused, never a crash. */
    off_t cuts[] = {full - 4096, full / 2, 8192, 4096};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_int_equal(truncate(p, cuts[i]), 0);
        int rc = open_rc(f);
        assert_int_equal(rc, LS_STORE_ECORRUPT);
    }
    /* An empty data.mdb is what LMDB leaves after a crash while creating: a new store. */
    assert_int_equal(truncate(p, 0), 0);
    assert_int_equal(open_rc(f), 0);
}

static void test_corrupt_device_record(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    put_dev(b, "aaa", NULL, 1);
    put_dev(b, "zzz", NULL, 2);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    ls_test_raw_put(f->path, "devices", "mmm", 3, "abc", 3); /* short */
    s = open_ok(f, MIB, 0);
    got g = {0};
    assert_int_equal(ls_store_load_devices(s, collect_cb, &g), LS_STORE_ECORRUPT);
    assert_int_equal(g.n, 1); /* "aaa" came first, then the walk stopped */
    free(g.v);
    ls_store_close(s);

    /* Right length, unknown record version. */
    unsigned char rec[48] = {9};
    ls_test_raw_put(f->path, "devices", "mmm", 3, rec, sizeof(rec));
    s = open_ok(f, MIB, 0);
    g = (got){0};
    assert_int_equal(ls_store_load_devices(s, collect_cb, &g), LS_STORE_ECORRUPT);
    free(g.v);
    ls_store_close(s);

    /* Version 1, but the type length runs past the end. */
    rec[0] = 1;
    rec[2] = 10;
    ls_test_raw_put(f->path, "devices", "mmm", 3, rec, sizeof(rec));
    s = open_ok(f, MIB, 0);
    g = (got){0};
    assert_int_equal(ls_store_load_devices(s, collect_cb, &g), LS_STORE_ECORRUPT);
    free(g.v);
    ls_store_close(s);

    /* Fixing the record makes the store whole again. */
    rec[2] = 0;
    ls_test_raw_put(f->path, "devices", "mmm", 3, rec, sizeof(rec));
    s = open_ok(f, MIB, 0);
    g = load_all(s);
    assert_int_equal(g.n, 3);
    free(g.v);
    ls_store_close(s);
}

/* ---- tests: version-2 devices, types, alarms ---------------------------- */

static void test_device_c8y_roundtrip(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    ls_device_state d = {.id = "c8y",
                         .id_len = 3,
                         .type = "meter",
                         .type_len = 5,
                         .has_c8y = 1,
                         .response_interval = -32768,
                         .last_activity = 5};
    assert_int_equal(ls_store_batch_put_device(b, &d), 0);
    d.id = "c8y2";
    d.id_len = 4;
    d.response_interval = 32767;
    assert_int_equal(ls_store_batch_put_device(b, &d), 0);
    put_dev(b, "plain", NULL, 7);
    d.response_interval = 32768; /* does not fit the record */
    assert_int_equal(ls_store_batch_put_device(b, &d), -EINVAL);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    s = open_ok(f, MIB, 0);
    got g = load_all(s);
    assert_int_equal(g.n, 3);
    const got_dev *x = find(&g, "c8y", 3);
    assert_non_null(x);
    assert_int_equal(x->d.has_c8y, 1);
    assert_int_equal(x->d.response_interval, -32768);
    assert_string_equal(x->type, "meter");
    x = find(&g, "c8y2", 4);
    assert_int_equal(x->d.response_interval, 32767);
    x = find(&g, "plain", 5);
    assert_int_equal(x->d.has_c8y, 0);
    assert_int_equal(x->d.timeout_ms, 7);
    free(g.v);
    ls_store_close(s);
}

/* A record encoded once (as flush passes keep them) and put later is the
 * same device as one put directly, byte for byte on disk. */
static void test_device_encoded(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    ls_device_state d = {.id = "direct",
                         .id_len = 6,
                         .type = "meter",
                         .type_len = 5,
                         .timeout_ms = 9000,
                         .last_activity = 11,
                         .last_connect = 12,
                         .last_disconnect = 13,
                         .inactivity_alarm = 14,
                         .sessions = 3,
                         .active = 1,
                         .has_c8y = 1,
                         .response_interval = -7};
    unsigned char buf[LS_STORE_DEVICE_FIXED + 5];
    assert_int_equal(ls_store_device_encode(&d, NULL, 0), LS_STORE_DEVICE_FIXED + 5);
    assert_int_equal(ls_store_device_encode(&d, buf, sizeof(buf)), sizeof(buf));
    assert_int_equal(buf[0], 2); /* record version 2, as documented in store.c */
    assert_int_equal(buf[48], 1);
    assert_int_equal(ls_store_batch_put_device(b, &d), 0);
    assert_int_equal(ls_store_batch_put_device_encoded(b, "encoded", 7, buf, sizeof(buf), 0), 0);
    assert_int_equal(ls_store_batch_put_device_encoded(b, "short", 5, buf, sizeof(buf) - 1, 0),
                     -EINVAL);
    assert_int_equal(ls_store_batch_put_device_encoded(b, "", 0, buf, sizeof(buf), 0), -EINVAL);
    ls_device_state bad = d;
    bad.response_interval = 40000;
    assert_int_equal(ls_store_device_encode(&bad, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);

    got g = load_all(s);
    assert_int_equal(g.n, 2);
    const got_dev *x = find(&g, "direct", 6), *y = find(&g, "encoded", 7);
    assert_non_null(x);
    assert_non_null(y);
    assert_string_equal(x->type, "meter");
    assert_string_equal(y->type, "meter");
    const ls_device_state *a = &x->d, *c = &y->d;
    assert_int_equal(a->type_len, c->type_len);
    assert_int_equal(a->timeout_ms, c->timeout_ms);
    assert_int_equal(a->last_activity, c->last_activity);
    assert_int_equal(a->last_connect, c->last_connect);
    assert_int_equal(a->last_disconnect, c->last_disconnect);
    assert_int_equal(a->inactivity_alarm, c->inactivity_alarm);
    assert_int_equal(a->sessions, c->sessions);
    assert_int_equal(a->active, c->active);
    assert_int_equal(a->has_c8y, c->has_c8y);
    assert_int_equal(a->response_interval, c->response_interval);
    assert_int_equal(c->timeout_ms, 9000);
    assert_int_equal(c->inactivity_alarm, 14);
    assert_int_equal(c->sessions, 3);
    assert_int_equal(c->response_interval, -7);
    free(g.v);
    ls_store_close(s);
}

typedef struct got_types {
    ls_type_config t[8];
    char name[8][64];
    int n;
} got_types;

static int type_cb(void *ud, const char *name, size_t len, const ls_type_config *t)
{
    got_types *g = ud;
    assert_true(g->n < 8 && len < 64);
    g->t[g->n] = *t;
    memcpy(g->name[g->n], name, len);
    g->name[g->n][len] = 0;
    g->n++;
    return 0;
}

static void test_types_roundtrip(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_batch *b = ls_store_batch_new();
    ls_type_config a = {
        .timeout_ms = 60000, .has_ri = 1, .response_interval = -3, .monitored = 1, .severity = 3};
    ls_type_config z = {.monitored = -1, .severity = 1};
    ls_type_config gone = {.monitored = 0};
    assert_int_equal(ls_store_batch_put_type(b, "alpha", 5, &a), 0);
    assert_int_equal(ls_store_batch_put_type(b, "zulu", 4, &z), 0);
    assert_int_equal(ls_store_batch_put_type(b, "gone", 4, &gone), 0);
    assert_int_equal(ls_store_batch_del_type(b, "gone", 4), 0);
    ls_type_config bad = a;
    bad.monitored = 2;
    assert_int_equal(ls_store_batch_put_type(b, "alpha", 5, &bad), -EINVAL);
    bad = a;
    assert_int_equal(ls_store_batch_put_type(b, "alpha", 0, &bad), -EINVAL);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    s = open_ok(f, MIB, 0);
    got_types g = {0};
    assert_int_equal(ls_store_load_types(s, type_cb, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.name[0], "alpha");
    assert_int_equal(g.t[0].timeout_ms, 60000);
    assert_int_equal(g.t[0].has_ri, 1);
    assert_int_equal(g.t[0].response_interval, -3);
    assert_int_equal(g.t[0].monitored, 1);
    assert_int_equal(g.t[0].severity, 3);
    assert_string_equal(g.name[1], "zulu");
    assert_int_equal(g.t[1].monitored, -1);
    assert_int_equal(g.t[1].has_ri, 0);
    ls_store_close(s);
}

typedef struct got_alarms {
    ls_alarm a[8];
    char src[8][64];
    int n;
} got_alarms;

static int alarm_cb(void *ud, const ls_alarm *a)
{
    got_alarms *g = ud;
    assert_true(g->n < 8 && a->source_len < 64);
    g->a[g->n] = *a;
    memcpy(g->src[g->n], a->source, a->source_len);
    g->src[g->n][a->source_len] = 0;
    g->n++;
    return 0;
}

static void test_alarms_roundtrip(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_alarm_last_id(s), 0);
    ls_store_batch *b = ls_store_batch_new();
    ls_alarm a = {.id = 300,
                  .source = (char *)"dev-1",
                  .source_len = 5,
                  .time = 11,
                  .first = 10,
                  .since = 9,
                  .updated = 12,
                  .count = 4,
                  .status = 1,
                  .severity = 2};
    assert_int_equal(ls_store_batch_put_alarm(b, &a), 0);
    a.id = 2; /* a lower id later: key order is id order */
    a.source = (char *)"dev-2";
    assert_int_equal(ls_store_batch_put_alarm(b, &a), 0);
    a.id = 400;
    assert_int_equal(ls_store_batch_put_alarm(b, &a), 0);
    assert_int_equal(ls_store_batch_del_alarm(b, 400), 0); /* the highest, pruned */
    a.id = 0;
    assert_int_equal(ls_store_batch_put_alarm(b, &a), -EINVAL);
    assert_int_equal(ls_store_batch_del_alarm(b, 0), -EINVAL);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);

    s = open_ok(f, MIB, 0);
    got_alarms g = {0};
    assert_int_equal(ls_store_load_alarms(s, alarm_cb, &g), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.a[0].id, 2);
    assert_string_equal(g.src[0], "dev-2");
    assert_int_equal(g.a[1].id, 300);
    assert_string_equal(g.src[1], "dev-1");
    assert_int_equal(g.a[1].time, 11);
    assert_int_equal(g.a[1].first, 10);
    assert_int_equal(g.a[1].since, 9);
    assert_int_equal(g.a[1].updated, 12);
    assert_int_equal(g.a[1].count, 4);
    assert_int_equal(g.a[1].status, 1);
    assert_int_equal(g.a[1].severity, 2);
    assert_int_equal(ls_store_alarm_last_id(s), 400); /* ids are never given twice */
    ls_store_close(s);
}

/* A store written before "types" and "alarms" existed opens, gains them and
 * keeps its version-1 device records readable. */
static void test_old_store_gains_databases(void **state)
{
    fixture *f = *state;
    unsigned char v1[4] = {1, 0, 0, 0};
    unsigned char rec[48] = {1, 1};
    rec[8] = 0x10; /* timeout_ms = 0x2710 = 10000 */
    rec[9] = 0x27;
    ls_test_raw_put(f->path, "meta", "format", 6, v1, 4);
    ls_test_raw_put(f->path, "devices", "old", 3, rec, sizeof(rec));
    ls_test_raw_put(f->path, "outbox", "\0\0\0\0\0\0\0\1", 8, "{}", 2);
    ls_test_raw_put(f->path, "cursors", "events.jsonl", 12, "\1\0\0\0\0\0\0\0", 8);
    ls_store *s = open_ok(f, MIB, 0);
    got g = load_all(s);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].d.active, 1);
    assert_int_equal(g.v[0].d.timeout_ms, 10000);
    assert_int_equal(g.v[0].d.has_c8y, 0);
    free(g.v);
    got_types gt = {0};
    assert_int_equal(ls_store_load_types(s, type_cb, &gt), 0);
    assert_int_equal(gt.n, 0);
    assert_int_equal(ls_store_last_seq(s), 1);
    ls_store_batch *b = ls_store_batch_new();
    ls_type_config t = {.monitored = -1};
    assert_int_equal(ls_store_batch_put_type(b, "t", 1, &t), 0);
    assert_int_equal(ls_store_write(s, b), 0);
    ls_store_batch_free(b);
    ls_store_close(s);
    s = open_ok(f, MIB, 0);
    gt.n = 0;
    assert_int_equal(ls_store_load_types(s, type_cb, &gt), 0);
    assert_int_equal(gt.n, 1);
    ls_store_close(s);
}

static void test_corrupt_type_and_alarm_records(void **state)
{
    fixture *f = *state;
    ls_store *s = open_ok(f, MIB, 0);
    ls_store_close(s);
    unsigned char t[16] = {9};
    ls_test_raw_put(f->path, "types", "bad", 3, t, sizeof(t));
    s = open_ok(f, MIB, 0);
    got_types gt = {0};
    assert_int_equal(ls_store_load_types(s, type_cb, &gt), LS_STORE_ECORRUPT);
    ls_store_close(s);
    t[0] = 1;
    t[2] = 3; /* monitored out of range */
    ls_test_raw_put(f->path, "types", "bad", 3, t, sizeof(t));
    s = open_ok(f, MIB, 0);
    assert_int_equal(ls_store_load_types(s, type_cb, &gt), LS_STORE_ECORRUPT);
    ls_store_close(s);

    unsigned char a[40] = {1}; /* no source */
    ls_test_raw_put(f->path, "alarms", "\0\0\0\0\0\0\0\5", 8, a, sizeof(a));
    s = open_ok(f, MIB, 0);
    got_alarms ga = {0};
    assert_int_equal(ls_store_load_alarms(s, alarm_cb, &ga), LS_STORE_ECORRUPT);
    ls_store_close(s);

    /* Version-2 device record with bad c8y flags. */
    unsigned char d[52] = {2};
    d[48] = 7;
    ls_test_raw_put(f->path, "devices", "dd", 2, d, sizeof(d));
    s = open_ok(f, MIB, 0);
    got g = {0};
    assert_int_equal(ls_store_load_devices(s, collect_cb, &g), LS_STORE_ECORRUPT);
    free(g.v);
    ls_store_close(s);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(ls_strerror(LS_STORE_EFULL), "store.max_size reached");
    assert_string_equal(ls_strerror(LS_STORE_ECORRUPT), "store damaged or not a lastseen store");
    assert_string_equal(ls_strerror(-ENOENT), strerror(ENOENT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_devices_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_order_and_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_events_cb_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format1_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursors, setup, teardown),
        cmocka_unit_test(test_batch_args),
        cmocka_unit_test_setup_teardown(test_big_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_during_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_lmdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_without_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_device_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_c8y_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_encoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alarms_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_store_gains_databases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_type_and_alarm_records, setup, teardown),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test_setup_teardown(test_read_only_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_other_process_grows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
