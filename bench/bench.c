/*
 * bench.c - lastseen-bench: in-process benchmarks of the engine and the store,
 * and a UDP load generator for the daemon.
 *
 *   lastseen-bench engine --devices N --updates M [--timeout-ms T] [--seed S] [--single]
 *   lastseen-bench store-fill | store-flush | store-events ...   (see store_bench.c)
 *   lastseen-bench udp --port P --http-port H ...                (see udp_bench.c)
 *   lastseen-bench wheel [--entries N] [--ms D]                  (see wheel_bench.c)
 *   lastseen-bench stats [--devices N] [--shards S] ...          (see stats_bench.c)
 *
 * Creates N devices with 36-character UUID-shaped ids, then applies M
 * activities to devices in random order (the ids are generated up front so
 * the timing covers only the engine), then lets every device expire and
 * measures the expiries.  Prints updates/s, expiries/s, and bytes per
 * device (process RSS growth over the device load, divided by N; the ids
 * array of the benchmark itself is excluded).
 *
 * Updates go through ls_engine_activity_batch() in batches of 1024 (the
 * path ingest adapters use), or one call each with --single.  The update
 * phase is timed twice: wall time, and the process's CPU time, which is
 * what "one core" means on a machine shared with other work (the wall time
 * then also counts the time the benchmark waited for the CPU).  The clock is
 * simulated: one engine tick per batch advancing 1 ms, so the wheel does
 * the work it does in the daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "engine/engine.h"

double bench_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_cpu_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long bench_rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

long bench_huge_bytes(void)
{
    char line[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

void bench_seed(uint64_t seed)
{
    rng_state = seed;
}

uint64_t bench_rng(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void bench_uuid(char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = bench_rng(), b = bench_rng();
    for (int i = 0, k = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            out[i] = '-';
            continue;
        }
        uint64_t *src = k < 16 ? &a : &b;
        out[i] = hex[*src & 15];
        *src >>= 4;
        k++;
    }
    out[36] = '\0';
}

static uint64_t events_seen;
static void count_cb(void *ud, const ls_event *ev)
{
    (void)ud;
    (void)ev;
    events_seen++;
}

static int bench_engine(uint64_t n, uint64_t m, int64_t timeout, int single)
{
    char *ids = malloc(n * 37);
    uint32_t *order = malloc(m * sizeof(uint32_t));
    if (!ids || !order) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (uint64_t i = 0; i < n; i++)
        bench_uuid(ids + i * 37);
    for (uint64_t i = 0; i < m; i++)
        order[i] = (uint32_t)(bench_rng() % n);

    ls_engine *e;
    ls_engine_config cfg = {
        .default_timeout_ms = timeout, .max_clock_skew_ms = 5000, .seed = bench_rng()};
    if (ls_engine_new(&e, &cfg, count_cb, NULL) < 0) return 1;
    ls_now now = {.mono = 1000, .wall = 1700000000000};

    long rss0 = bench_rss_bytes();
    double t0 = bench_secs();
    for (uint64_t i = 0; i < n; i++) {
        if (ls_engine_activity(e, ids + i * 37, 36, 0, now) < 0) return 1;
        if ((i & 1023) == 1023) {
            now.mono++;
            now.wall++;
            ls_engine_tick(e, now);
        }
    }
    double t_load = bench_secs() - t0;
    long rss1 = bench_rss_bytes();

    /* Updates arrive in batches of 1024, as from a datagram burst or a bulk
     * request: their ids are copied into one buffer first (untimed, as the
     * network would have written them), then the engine is timed. */
    enum { BATCH = 1024 };
    static char wire[BATCH * 36];
    static ls_activity batch[BATCH];
    double t_upd = 0, c_upd = 0;
    for (uint64_t i = 0; i < m; i += BATCH) {
        size_t k = m - i < BATCH ? (size_t)(m - i) : BATCH;
        for (size_t j = 0; j < k; j++) {
            memcpy(wire + j * 36, ids + (uint64_t)order[i + j] * 37, 36);
            batch[j] = (ls_activity){.id = wire + j * 36, .len = 36, .ts = 0};
        }
        t0 = bench_secs();
        double c0 = bench_cpu_secs();
        if (single) {
            for (size_t j = 0; j < k; j++)
                ls_engine_activity(e, batch[j].id, 36, 0, now);
        } else {
            ls_engine_activity_batch(e, batch, k, now, NULL);
        }
        now.mono++;
        now.wall++;
        ls_engine_tick(e, now);
        t_upd += bench_secs() - t0;
        c_upd += bench_cpu_secs() - c0;
    }

    uint64_t before = events_seen;
    now.mono += timeout + 1;
    now.wall += timeout + 1;
    t0 = bench_secs();
    uint64_t fired = ls_engine_tick(e, now);
    double t_exp = bench_secs() - t0;

    ls_engine_stats st;
    ls_engine_get_stats(e, &st);
    printf("engine: devices=%llu updates=%llu timeout=%lldms path=%s\n", (unsigned long long)n,
           (unsigned long long)m, (long long)timeout, single ? "single" : "batch");
    printf("  insert:    %.0f devices/s (%.3f s)\n", (double)n / t_load, t_load);
    printf("  update:    %.0f updates/s (%.1f ns/update, %.3f s)\n", (double)m / t_upd,
           t_upd * 1e9 / (double)m, t_upd);
    printf("  update:    %.0f updates/s of CPU time (%.1f ns/update, %.3f s; %.0f %% of the wall "
           "time)\n",
           (double)m / c_upd, c_upd * 1e9 / (double)m, c_upd, 100.0 * c_upd / t_upd);
    printf("  expire:    %.0f expiries/s (%llu fired, %llu events, %.3f s)\n",
           (double)fired / t_exp, (unsigned long long)fired,
           (unsigned long long)(events_seen - before), t_exp);
    printf("  memory:    %.1f bytes/device (RSS growth %.1f MiB; %.1f MiB of the process on huge "
           "pages)\n",
           (double)(rss1 - rss0) / (double)n, (double)(rss1 - rss0) / 1048576.0,
           (double)bench_huge_bytes() / 1048576.0);
    printf("  check:     active=%llu inactive=%llu\n", (unsigned long long)st.active,
           (unsigned long long)st.inactive);
    ls_engine_close(e);
    free(ids);
    free(order);
    return fired == n ? 0 : 1;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: lastseen-bench engine --devices N --updates M [--timeout-ms T] [--seed S] "
        "[--single]\n"
        "       lastseen-bench store-fill --dir D --devices N [--order sorted|random] [--batch B] "
        "[--seed S]\n"
        "       lastseen-bench store-flush [--devices N] [--store-devices M] [--runs R] [--sync "
        "0|1]\n"
        "                                  [--order random|sorted] [--dir D]\n"
        "       lastseen-bench store-events [--sizes 1,100,10000] [--store-devices M] [--runs R] "
        "[--sync 0|1]\n"
        "                                   [--dir D]\n"
        "       lastseen-bench store-load --dir D [--runs R]\n"
        "       lastseen-bench mqtt-pub --port P [--devices D] [--messages N] [--qos Q] [--rate "
        "R]\n"
        "                               [--window W] [--size B] [--prefix P]\n"

        "       lastseen-bench udp --port P --http-port H [--devices N] [--lines L] [--vlen V]\n"
        "                          [--rates R1,R2,...] [--duration-ms D] [--runs R] [--max] "
        "[--keep-going]\n"
        "                          [--no-warm] [--seed S] [--keys FILE --sign SOURCE]\n"
        "       lastseen-bench wheel [--entries N] [--ms D] [--seed S]\n"
        "       lastseen-bench jitter [--ms D] [--period-us P]\n"
        "       lastseen-bench stats [--devices N] [--shards S] [--types T] [--runs R] [--dir "
        "D]\n");
}

int bench_arg_u64(const char *opt, const char *val, uint64_t *out)
{
    char *end;
    if (!val) {
        fprintf(stderr, "%s needs a value\n", opt);
        return -1;
    }
    unsigned long long v = strtoull(val, &end, 10);
    if (*end || end == val || v == 0 || val[0] == '-') {
        fprintf(stderr, "bad value for %s: %s\n", opt, val);
        return -1;
    }
    *out = v;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_stats(double *v, int n, double *med, double *lo, double *hi)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    *lo = v[0];
    *hi = v[n - 1];
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000, m = 20000000;
    int64_t timeout = 600000;
    int single = 0;
    if (argc >= 2 && !strcmp(argv[1], "mqtt-pub")) return bench_mqtt_pub(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "store-fill")) return bench_store_fill(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "store-flush")) return bench_store_flush(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "store-events"))
        return bench_store_events(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "store-load")) return bench_store_load(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "udp")) return bench_udp(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "wheel")) return bench_wheel(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "jitter")) return bench_jitter(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "stats")) return bench_stats_take(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "engine")) {
        usage();
        return 2;
    }
    for (int i = 2; i < argc; i += 2) {
        char *end;
        if (!strcmp(argv[i], "--single")) {
            single = 1;
            i--;
            continue;
        }
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        unsigned long long v = strtoull(argv[i + 1], &end, 10);
        if (*end || v == 0) {
            fprintf(stderr, "bad value for %s: %s\n", argv[i], argv[i + 1]);
            return 2;
        }
        if (!strcmp(argv[i], "--devices"))
            n = v;
        else if (!strcmp(argv[i], "--updates"))
            m = v;
        else if (!strcmp(argv[i], "--timeout-ms"))
            timeout = (int64_t)v;
        else if (!strcmp(argv[i], "--seed"))
            rng_state = v;
        else {
            usage();
            return 2;
        }
    }
    if (n > UINT32_MAX) {
        fprintf(stderr, "--devices must be below 2^32\n");
        return 2;
    }
    return bench_engine(n, m, timeout, single);
}
