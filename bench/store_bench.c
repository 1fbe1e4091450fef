/*
 * store_bench.c - lastseen-bench subcommands for the LMDB store.
 *
 *   store-fill   --dir D --devices N [--order sorted|random] [--batch B] [--seed S]
 *   store-flush  [--devices N] [--store-devices M] [--runs R] [--sync 0|1]
 *                [--order random|sorted] [--dir D]
 *   store-events [--sizes 1,100,10000] [--store-devices M] [--runs R] [--sync 0|1] [--dir D]
 *   store-load   --dir D [--runs R]
 *
 * store-fill writes a store of N devices the way the daemon would find it
 * after running a fleet, directly through the ls_store API, in
 * transactions of B devices (default 250,000).  Ids are 36-character
 * UUIDs, uniformly random but generated in ascending order (the i-th id's
 * first 64 bits lie in the i-th of N equal slices), so no id table or sort
 * is needed for 10M devices, and each transaction touches a contiguous run
 * of pages.  LMDB fills pages completely on ascending inserts (about 99
 * bytes a device); a store that grew from devices created in random order
 * has its leaves about two thirds full.  --order random inserts in a random
 * order instead (ids kept in memory, transactions of 100,000 by default):
 * much slower to write, for comparing load times (it made no difference
 * to them at 1M devices).  The mix: 90 %
 * active (lastActivityTime within their timeout), 10 % inactive (silent past
 * it, inactivityAlarmTime set); 20 % with their own timeout (1 min, 5 min or
 * 1 h, else the 600 s default); 10 % with a type; 30 % with session times,
 * 5 % with a session open.  D is the store directory itself, the daemon's
 * store.data_dir/store.
 *
 * store-flush measures the committer's periodic flush: one ls_store_write()
 * of N dirty device records (whole records, as the committer writes them)
 * into a store of M devices (default M = N), in random order (the order the
 * engine's dirty list has) or sorted by key.  One untimed warm-up flush,
 * then R timed ones: median, min, max ms per flush, and the time to build
 * the batch (done under the engine lock in the daemon).
 *
 * store-events measures events committed per second: transactions of k
 * events each (for every k in --sizes), each event a realistic ~400-byte
 * JSON line plus the record of the device whose transition it is, and one
 * sink cursor update per transaction, as the committer writes them.  Each
 * size runs R times; the figure is the median events/s.
 *
 * store-load splits the daemon's start-up load of a store (made by
 * store-fill) in two: the LMDB scan alone (ls_store_load_devices with a
 * callback that only counts), and the scan with every device restored into
 * a fresh engine as the daemon does (ls_load_devices, grace policy); it
 * prints the process's RSS growth over the restore as the load leaves it
 * (the store's map pages it read included) and after ls_store_drop_pages(),
 * which the daemon calls once loaded.
 *
 * Without --dir, store-flush and store-events work in a fresh directory
 * under /tmp and remove it.  --sync 1 (the daemon's default) fsyncs each
 * commit; --sync 0 is store.sync = false.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "engine/engine.h"
#include "core/load.h"
#include "store/store.h"

#define MIN_MS 60000LL
#define DEFAULT_TIMEOUT_MS 600000LL
#define MAX_RUNS 64

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The i-th of n ascending UUID-shaped ids: hex digits most significant
 * first, so string order is numeric order; the top 64 bits fall in slice i
 * of n, the rest is random.
 */
static void sorted_uuid(char *out, uint64_t i, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t step = UINT64_MAX / n;
    uint64_t hi = i * step + bench_rng() % step, lo = bench_rng();
    for (int pos = 0, k = 0; pos < 36; pos++) {
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
            out[pos] = '-';
            continue;
        }
        uint64_t w = k < 16 ? hi : lo;
        int shift = 60 - 4 * (k % 16);
        out[pos] = hex[(w >> shift) & 15];
        k++;
    }
    out[36] = '\0';
}

/* A device in the mix described above; id must outlive the record's use. */
static void make_device(ls_device_state *d, const char *id, int64_t now)
{
    static const char *const types[] = {"sensor", "gateway", "meter"};
    static const int64_t timeouts[] = {MIN_MS, 5 * MIN_MS, 60 * MIN_MS};
    uint64_t r = bench_rng();
    *d = (ls_device_state){.id = id, .id_len = 36};
    if (r % 100 < 10) {
        d->type = types[(r >> 8) % 3];
        d->type_len = strlen(d->type);
    }
    if ((r >> 16) % 100 < 20) d->timeout_ms = timeouts[(r >> 24) % 3];
    int64_t timeout = d->timeout_ms ? d->timeout_ms : DEFAULT_TIMEOUT_MS;
    uint64_t r2 = bench_rng();
    if ((r >> 32) % 100 < 90) {
        d->active = 1;
        d->last_activity = now - (int64_t)(r2 % (uint64_t)timeout);
    } else {
        d->last_activity = now - timeout - (int64_t)(r2 % (86400000ULL));
        d->inactivity_alarm = d->last_activity + timeout + (int64_t)((r2 >> 32) % 1000);
    }
    uint64_t s = (r >> 40) % 100;
    if (s < 30) {
        d->last_connect = d->last_activity - (int64_t)((r2 >> 20) % 3600000ULL);
        if (s < 5 && d->active)
            d->sessions = 1;
        else
            d->last_disconnect = d->last_connect + (int64_t)((r2 >> 40) % 60000ULL);
    }
}

static int open_store(ls_store **s, const char *dir, uint64_t devices, int sync)
{
    uint64_t initial = devices * 300;
    if (initial < ((uint64_t)64 << 20)) initial = (uint64_t)64 << 20;
    ls_store_options o = {.initial_size = initial, .max_size = 0, .sync = sync};
    int rc = ls_store_open(s, dir, &o);
    if (rc < 0) fprintf(stderr, "cannot open the store in %s: %s\n", dir, ls_strerror(rc));
    return rc;
}

/*
 * Writes devices [0, n) in transactions of `batch`, in ascending id order,
 * or in a random order with `random_order` (which needs ids).  ids[] (37
 * bytes each) receives the ids if not NULL.
 */
static int fill(ls_store *s, uint64_t n, uint64_t batch, char *ids, int random_order, int verbose)
{
    ls_store_batch *b = ls_store_batch_new();
    uint32_t *order = NULL;
    char id[37];
    int64_t now = wall_ms();
    double t0 = bench_secs();
    int rc = 0;
    if (!b) return -ENOMEM;
    if (random_order) {
        if (!ids || !(order = malloc(n * sizeof(uint32_t)))) {
            ls_store_batch_free(b);
            return -ENOMEM;
        }
        for (uint64_t i = 0; i < n; i++) {
            sorted_uuid(ids + i * 37, i, n);
            order[i] = (uint32_t)i;
        }
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = bench_rng() % (i + 1);
            uint32_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        char *p = ids ? ids + (order ? order[i] : i) * 37 : id;
        ls_device_state d;
        if (!order) sorted_uuid(p, i, n);
        make_device(&d, p, now);
        rc = ls_store_batch_put_device(b, &d);
        if (rc == 0 && (ls_store_batch_ops(b) == batch || i + 1 == n)) {
            if ((rc = ls_store_write(s, b)) < 0)
                fprintf(stderr, "store write failed at device %llu: %s\n", (unsigned long long)i,
                        ls_strerror(rc));
            ls_store_batch_clear(b);
            if (verbose && (i + 1) % (batch * 8) == 0)
                fprintf(stderr, "  %llu devices, %.1f s\n", (unsigned long long)(i + 1),
                        bench_secs() - t0);
        }
    }
    ls_store_batch_free(b);
    free(order);
    return rc;
}

static long long file_size(const char *dir)
{
    char path[4200];
    struct stat st;
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path)) return -1;
    return stat(path, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* A scratch directory under /tmp with the store in "store" inside it. */
static int scratch(char *tmp, size_t tmplen, char *dir, size_t dirlen)
{
    snprintf(tmp, tmplen, "/tmp/lastseen-bench-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(dir, dirlen, "%s/store", tmp);
    return 0;
}

/* mkdir -p of the parents of dir (the store creates dir itself). */
static void make_parents(const char *dir)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp)) return;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(tmp, 0755);
        *p = '/';
    }
}

int bench_store_fill(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t n = 0, batch = 0, seed = 0;
    int random_order = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--dir") && v)
            dir = v;
        else if (!strcmp(argv[i], "--order") && v && (!strcmp(v, "random") || !strcmp(v, "sorted")))
            random_order = v[0] == 'r';
        else if (!strcmp(argv[i], "--devices")) {
            if (bench_arg_u64(argv[i], v, &n) < 0) return 2;
        } else if (!strcmp(argv[i], "--batch")) {
            if (bench_arg_u64(argv[i], v, &batch) < 0) return 2;
        } else if (!strcmp(argv[i], "--seed")) {
            if (bench_arg_u64(argv[i], v, &seed) < 0) return 2;
        } else {
            fprintf(stderr, "store-fill: unknown or incomplete option %s\n", argv[i]);
            return 2;
        }
    }
    if (!dir || !n) {
        fprintf(stderr, "usage: lastseen-bench store-fill --dir D --devices N [--order "
                        "sorted|random] [--batch B] "
                        "[--seed S]\n");
        return 2;
    }
    if (!batch) batch = random_order ? 100000 : 250000;
    char *ids = random_order ? malloc(n * 37) : NULL;
    if (random_order && !ids) {
        fprintf(stderr, "store-fill: out of memory\n");
        return 1;
    }
    if (seed) bench_seed(seed);
    make_parents(dir);
    ls_store *s;
    if (open_store(&s, dir, n, 1) < 0) return 1;
    if (ls_store_device_count(s) != 0) {
        fprintf(stderr, "store-fill: %s already holds devices; give an empty directory\n", dir);
        ls_store_close(s);
        free(ids);
        return 1;
    }
    double t0 = bench_secs();
    int rc = fill(s, n, batch, ids, random_order, 1);
    double t = bench_secs() - t0;
    free(ids);
    uint64_t count = ls_store_device_count(s), map, used;
    ls_store_usage(s, &map, &used);
    ls_store_close(s);
    if (rc < 0) return 1;
    printf("store-fill: devices=%llu order=%s batch=%llu dir=%s\n", (unsigned long long)n,
           random_order ? "random" : "sorted", (unsigned long long)batch, dir);
    printf("  written:   %.0f devices/s (%.2f s)\n", (double)n / t, t);
    printf(
        "  store:     %llu devices, %.1f MiB used, data.mdb %.1f MiB on disk (%.0f bytes/device)\n",
        (unsigned long long)count, (double)used / 1048576.0, (double)file_size(dir) / 1048576.0,
        (double)used / (double)n);
    return count == n ? 0 : 1;
}

int bench_store_flush(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t n = 100000, m = 0, runs = 5, sync = 1;
    int sorted = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(argv[i], "--dir") && v)
            dir = v;
        else if (!strcmp(argv[i], "--devices"))
            rc = bench_arg_u64(argv[i], v, &n);
        else if (!strcmp(argv[i], "--store-devices"))
            rc = bench_arg_u64(argv[i], v, &m);
        else if (!strcmp(argv[i], "--runs"))
            rc = bench_arg_u64(argv[i], v, &runs);
        else if (!strcmp(argv[i], "--sync") && v && (!strcmp(v, "0") || !strcmp(v, "1")))
            sync = (uint64_t)(v[0] - '0');
        else if (!strcmp(argv[i], "--order") && v && (!strcmp(v, "random") || !strcmp(v, "sorted")))
            sorted = v[0] == 's';
        else {
            fprintf(stderr, "store-flush: unknown or incomplete option %s\n", argv[i]);
            return 2;
        }
        if (rc < 0) return 2;
    }
    if (!m) m = n;
    if (n > m || runs > MAX_RUNS) {
        fprintf(stderr, "store-flush: need --devices <= --store-devices and --runs <= %d\n",
                MAX_RUNS);
        return 2;
    }
    char tmp[64] = "", sdir[128];
    if (!dir) {
        if (scratch(tmp, sizeof(tmp), sdir, sizeof(sdir)) < 0) return 1;
        dir = sdir;
    }
    char *ids = malloc(m * 37);
    uint32_t *idx = malloc(m * sizeof(uint32_t));
    ls_store_batch *b = ls_store_batch_new();
    ls_store *s = NULL;
    int status = 1;
    if (!ids || !idx || !b) goto out;
    if (open_store(&s, dir, m, (int)sync) < 0) goto out;
    if (fill(s, m, 250000, ids, 0, 0) < 0) goto out;
    for (uint64_t i = 0; i < m; i++)
        idx[i] = (uint32_t)i;

    double write_ms[MAX_RUNS], build_ms[MAX_RUNS];
    long long size0 = file_size(dir);
    int64_t now = wall_ms();
    for (uint64_t run = 0; run <= runs; run++) { /* run 0: warm-up */
        /* N distinct devices, a partial Fisher-Yates shuffle. */
        for (uint64_t i = 0; i < n; i++) {
            uint64_t j = i + bench_rng() % (m - i);
            uint32_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        if (sorted) {
            /* Ids ascend with their index: sorting indices sorts keys. */
            uint32_t *sel = malloc(n * sizeof(uint32_t));
            uint8_t *mark = calloc(m, 1);
            if (!sel || !mark) {
                free(sel);
                free(mark);
                goto out;
            }
            for (uint64_t i = 0; i < n; i++)
                mark[idx[i]] = 1;
            for (uint64_t i = 0, k = 0; i < m; i++)
                if (mark[i]) sel[k++] = (uint32_t)i;
            memcpy(idx, sel, n * sizeof(uint32_t));
            /* idx[n..m) no longer a permutation; rebuild it for the next run. */
            for (uint64_t i = 0, k = n; i < m; i++)
                if (!mark[i]) idx[k++] = (uint32_t)i;
            free(sel);
            free(mark);
        }
        now += 1000;
        double t0 = bench_secs();
        ls_store_batch_clear(b);
        for (uint64_t i = 0; i < n; i++) {
            ls_device_state d;
            make_device(&d, ids + (uint64_t)idx[i] * 37, now);
            d.active = 1;
            d.inactivity_alarm = 0;
            d.last_activity = now;
            if (ls_store_batch_put_device(b, &d) < 0) goto out;
        }
        double t1 = bench_secs();
        int rc = ls_store_write(s, b);
        double t2 = bench_secs();
        if (rc < 0) {
            fprintf(stderr, "store write failed: %s\n", ls_strerror(rc));
            goto out;
        }
        if (run > 0) {
            build_ms[run - 1] = (t1 - t0) * 1000;
            write_ms[run - 1] = (t2 - t1) * 1000;
        }
    }
    double med, lo, hi, bmed, blo, bhi;
    bench_stats(write_ms, (int)runs, &med, &lo, &hi);
    bench_stats(build_ms, (int)runs, &bmed, &blo, &bhi);
    printf("store-flush: dirty=%llu store=%llu order=%s sync=%llu runs=%llu\n",
           (unsigned long long)n, (unsigned long long)m, sorted ? "sorted" : "random",
           (unsigned long long)sync, (unsigned long long)runs);
    printf("  write:     %.1f ms per flush [%.1f..%.1f] (%.0f records/s)\n", med, lo, hi,
           (double)n / (med / 1000));
    printf("  batch:     %.1f ms to build [%.1f..%.1f]\n", bmed, blo, bhi);
    printf("  store:     data.mdb %.1f MiB after the fill, %.1f MiB after the flushes\n",
           (double)size0 / 1048576.0, (double)file_size(dir) / 1048576.0);
    status = 0;
out:
    ls_store_close(s);
    ls_store_batch_free(b);
    free(ids);
    free(idx);
    if (tmp[0]) nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}

/* A realistic event line, as format.c writes them (about 400 bytes). */
static int event_line(char *buf, size_t len, uint64_t seq, const ls_device_state *d, int64_t now)
{
    return snprintf(
        buf, len,
        "{\"seq\":%llu,\"type\":\"INACTIVITY_EVENT\",\"device\":\"%s\",\"ts\":%lld,\"detectedAt\":%"
        "lld,"
        "\"state\":{\"id\":\"%s\",\"type\":\"default\",\"active\":false,\"lastActivityTime\":%lld,"
        "\"lastConnectTime\":%lld,\"lastDisconnectTime\":%lld,\"inactivityAlarmTime\":%lld,"
        "\"inactivityTimeout\":600000,\"inactivityTimeoutSource\":\"default\",\"sessions\":0}}",
        (unsigned long long)seq, d->id, (long long)(d->last_activity + 600000), (long long)now,
        d->id, (long long)d->last_activity, (long long)d->last_connect,
        (long long)d->last_disconnect, (long long)now);
}

int bench_store_events(int argc, char **argv)
{
    const char *dir = NULL, *sizes = "1,100,10000";
    uint64_t runs = 3, sync = 1, devices = 100000;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(argv[i], "--dir") && v)
            dir = v;
        else if (!strcmp(argv[i], "--sizes") && v)
            sizes = v;
        else if (!strcmp(argv[i], "--runs"))
            rc = bench_arg_u64(argv[i], v, &runs);
        else if (!strcmp(argv[i], "--store-devices"))
            rc = bench_arg_u64(argv[i], v, &devices);
        else if (!strcmp(argv[i], "--sync") && v && (!strcmp(v, "0") || !strcmp(v, "1")))
            sync = (uint64_t)(v[0] - '0');
        else {
            fprintf(stderr, "store-events: unknown or incomplete option %s\n", argv[i]);
            return 2;
        }
        if (rc < 0) return 2;
    }
    if (runs > MAX_RUNS) {
        fprintf(stderr, "store-events: --runs <= %d\n", MAX_RUNS);
        return 2;
    }
    char tmp[64] = "", sdir[128];
    if (!dir) {
        if (scratch(tmp, sizeof(tmp), sdir, sizeof(sdir)) < 0) return 1;
        dir = sdir;
    }
    char *ids = malloc(devices * 37);
    ls_store_batch *b = ls_store_batch_new();
    ls_store *s = NULL;
    int status = 1;
    if (!ids || !b) goto out;
    if (open_store(&s, dir, devices, (int)sync) < 0) goto out;
    if (fill(s, devices, 250000, ids, 0, 0) < 0) goto out;
    uint64_t seq = ls_store_last_seq(s);
    printf(
        "store-events: store=%llu devices sync=%llu runs=%llu; each event = line + device record, "
        "one cursor update per transaction\n",
        (unsigned long long)devices, (unsigned long long)sync, (unsigned long long)runs);
    for (const char *p = sizes; *p;) {
        char *end;
        unsigned long long k = strtoull(p, &end, 10);
        if (end == p || k == 0 || (*end && *end != ',')) {
            fprintf(stderr, "store-events: bad --sizes %s\n", sizes);
            goto out;
        }
        p = *end ? end + 1 : end;
        /* Enough transactions to take a second or so, at least 20. */
        uint64_t txns = 200000 / k;
        if (txns < 20) txns = 20;
        if (txns > 500) txns = 500;
        double rate[MAX_RUNS], txn_ms[MAX_RUNS];
        for (uint64_t run = 0; run < runs; run++) {
            double busy = 0;
            for (uint64_t t = 0; t < txns; t++) {
                int64_t now = wall_ms();
                char line[1024];
                double t0 = bench_secs();
                ls_store_batch_clear(b);
                for (uint64_t e = 0; e < k; e++) {
                    ls_device_state d;
                    make_device(&d, ids + (bench_rng() % devices) * 37, now);
                    d.active = 0;
                    d.inactivity_alarm = now;
                    int n = event_line(line, sizeof(line), ++seq, &d, now);
                    if (ls_store_batch_put_device(b, &d) < 0 ||
                        ls_store_batch_event(b, seq, line, (size_t)n) < 0)
                        goto out;
                }
                if (ls_store_batch_cursor(b, "events.jsonl", seq - k) < 0) goto out;
                int rc = ls_store_write(s, b);
                if (rc < 0) {
                    fprintf(stderr, "store write failed: %s\n", ls_strerror(rc));
                    goto out;
                }
                busy += bench_secs() - t0;
            }
            rate[run] = (double)(k * txns) / busy;
            txn_ms[run] = busy * 1000 / (double)txns;
        }
        double med, lo, hi, tmed, tlo, thi;
        bench_stats(rate, (int)runs, &med, &lo, &hi);
        bench_stats(txn_ms, (int)runs, &tmed, &tlo, &thi);
        printf("  %6llu events/txn: %9.0f events/s [%.0f..%.0f], %.2f ms/txn [%.2f..%.2f], %llu "
               "txns/run\n",
               k, med, lo, hi, tmed, tlo, thi, (unsigned long long)txns);
    }
    status = 0;
out:
    ls_store_close(s);
    ls_store_batch_free(b);
    free(ids);
    if (tmp[0]) nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}

typedef struct load_ctx {
    ls_engine *e;
    ls_now now;
    uint64_t n, bytes;
} load_ctx;

static int count_cb(void *ud, const ls_device_state *d)
{
    load_ctx *c = ud;
    c->n++;
    c->bytes += d->id_len; /* touch the record so the scan cannot be skipped */
    return 0;
}

int bench_store_load(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t runs = 3;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--dir") && v)
            dir = v;
        else if (!strcmp(argv[i], "--runs")) {
            if (bench_arg_u64(argv[i], v, &runs) < 0) return 2;
        } else {
            fprintf(stderr, "store-load: unknown or incomplete option %s\n", argv[i]);
            return 2;
        }
    }
    if (!dir || runs > MAX_RUNS) {
        fprintf(stderr, "usage: lastseen-bench store-load --dir D [--runs R<=%d]\n", MAX_RUNS);
        return 2;
    }
    ls_store *s;
    if (open_store(&s, dir, 0, 1) < 0) return 1;
    double scan[MAX_RUNS], full[MAX_RUNS];
    uint64_t n = 0;
    long rss = 0, rss_kept = 0;
    for (uint64_t r = 0; r < runs; r++) {
        load_ctx c = {0};
        double t0 = bench_secs();
        if (ls_store_load_devices(s, count_cb, &c) < 0) break;
        scan[r] = (bench_secs() - t0) * 1000;
        n = c.n;

        ls_engine_config cfg = {.default_timeout_ms = DEFAULT_TIMEOUT_MS,
                                .max_clock_skew_ms = 5000,
                                .seed = bench_rng()};
        load_ctx e = {.now = {.mono = 1000, .wall = wall_ms()}};
        if (ls_engine_new(&e.e, &cfg, NULL, NULL) < 0) break;
        ls_store_drop_pages(s); /* the scan's pages: not the restore's */
        long rss0 = bench_rss_bytes();
        t0 = bench_secs();
        ls_load_result res;
        int rc = ls_load_devices(s, e.e, LS_RESTART_GRACE, e.now, NULL, &res);
        full[r] = (bench_secs() - t0) * 1000;
        rss = bench_rss_bytes() - rss0;
        ls_store_drop_pages(s); /* as the daemon does after its load */
        rss_kept = bench_rss_bytes() - rss0;
        ls_engine_close(e.e);
        if (rc < 0 || res.loaded != n) {
            fprintf(stderr, "store-load: restore failed after %llu devices\n",
                    (unsigned long long)res.loaded);
            ls_store_close(s);
            return 1;
        }
    }
    ls_store_close(s);
    double med, lo, hi, fmed, flo, fhi;
    bench_stats(scan, (int)runs, &med, &lo, &hi);
    bench_stats(full, (int)runs, &fmed, &flo, &fhi);
    printf("store-load: devices=%llu runs=%llu (page cache warm after the first scan)\n",
           (unsigned long long)n, (unsigned long long)runs);
    printf("  scan only:        %.0f ms [%.0f..%.0f] (%.0f ns/device)\n", med, lo, hi,
           med * 1e6 / (double)n);
    printf("  scan + restore:   %.0f ms [%.0f..%.0f] (%.0f ns/device), RSS growth %.0f MiB (%.1f "
           "B/device)\n"
           "                    with the map's pages it read, %.0f MiB (%.1f B/device) once they "
           "are dropped\n",
           fmed, flo, fhi, fmed * 1e6 / (double)n, (double)rss / 1048576.0, (double)rss / (double)n,
           (double)rss_kept / 1048576.0, (double)rss_kept / (double)n);
    return 0;
}
