/*
 * wheel_bench.c - lastseen-bench wheel: the timing wheel alone, one ms at a
 * time, to show the cost of the worst single tick.
 *
 *   lastseen-bench wheel [--entries N] [--ms D] [--seed S]
 *
 * N entries (default 1M) live in one array (handle i + 1 = element i, as in
 * the engine's device table), armed 50..100 s ahead; each one that fires is
 * re-armed at now + 50..100 s (a device heard every 50 s with a 100 s
 * timeout, in steady state).  The clock starts at 0 and advances 1 ms per
 * ls_wheel_run() call for D ms (default 300000, which crosses the level-3
 * boundary at 262144 ms).  Each call is timed; prints the max, p99.9, p99 and
 * median tick time (wall; and the max in thread CPU time, which leaves out
 * preemption by other work on a shared machine), the entries fired, the entries moved between
 * levels (w.moved), the most moved in one tick, and the time per move: the time of the ticks that
 * moved more entries than they fired, divided by their moves (at large N the moves dominate those
 * ticks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "engine/wheel.h"

typedef struct wb {
    ls_wheel w;
    ls_wheel_entry *ent;
    uint64_t rearmed;
} wb;

static ls_wheel_entry *wb_at(void *ctx, uint32_t h)
{
    return &((ls_wheel_entry *)ctx)[h - 1];
}

static void wb_fire(void *ud, uint32_t h, int64_t t)
{
    wb *b = ud;
    ls_wheel_add(&b->w, h, t + 50000 + (int64_t)(bench_rng() % 50001));
    b->rearmed++;
}

static double ns_now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

int bench_wheel(int argc, char **argv)
{
    uint64_t n = 1000000, ms = 300000, seed = 1;
    for (int i = 1; i < argc; i += 2) {
        uint64_t *dst = !strcmp(argv[i], "--entries") ? &n
                        : !strcmp(argv[i], "--ms")    ? &ms
                        : !strcmp(argv[i], "--seed")  ? &seed
                                                      : NULL;
        if (!dst) {
            fprintf(stderr, "usage: lastseen-bench wheel [--entries N] [--ms D] [--seed S]\n");
            return 2;
        }
        if (bench_arg_u64(argv[i], i + 1 < argc ? argv[i + 1] : NULL, dst) < 0) return 2;
    }
    if (n > LS_WHEEL_HANDLE_MAX - 1) {
        fprintf(stderr, "--entries too large\n");
        return 2;
    }
    bench_seed(seed);
    static wb b;
    b.ent = calloc(n, sizeof(*b.ent));
    float *tick_ns = malloc(ms * sizeof(*tick_ns));
    if (!b.ent || !tick_ns) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    ls_wheel_init(&b.w, 0, wb_at, b.ent);
    for (uint64_t i = 0; i < n; i++)
        ls_wheel_add(&b.w, (uint32_t)(i + 1), 50000 + (int64_t)(bench_rng() % 50001));

    double move_ns = 0, total_ns = 0, max_cpu = 0;
    uint64_t max_at = 0;
    uint64_t move_ticks_moves = 0, moves0 = b.w.moved, max_moves = 0;
    for (uint64_t t = 1; t <= ms; t++) {
        uint64_t m0 = b.w.moved, f0 = b.rearmed;
        double a = ns_now(CLOCK_MONOTONIC), c = ns_now(CLOCK_THREAD_CPUTIME_ID);
        ls_wheel_run(&b.w, (int64_t)t, wb_fire, &b);
        double d = ns_now(CLOCK_MONOTONIC) - a;
        c = ns_now(CLOCK_THREAD_CPUTIME_ID) - c;
        if (c > max_cpu) {
            max_cpu = c;
            max_at = t;
        }
        tick_ns[t - 1] = (float)d;
        total_ns += d;
        uint64_t mv = b.w.moved - m0;
        if (mv > max_moves) max_moves = mv;
        if (mv > b.rearmed - f0) {
            move_ns += d;
            move_ticks_moves += mv;
        }
    }
    qsort(tick_ns, ms, sizeof(*tick_ns), cmp_f);
    double med = tick_ns[ms / 2], p99 = tick_ns[ms * 99 / 100], p999 = tick_ns[ms * 999 / 1000];
    double mx = tick_ns[ms - 1];
    printf("wheel: entries=%llu ms=%llu fired=%llu moved=%llu max_moves_per_tick=%llu\n",
           (unsigned long long)n, (unsigned long long)ms, (unsigned long long)b.rearmed,
           (unsigned long long)(b.w.moved - moves0), (unsigned long long)max_moves);
    printf("wheel: tick max=%.3fms p99.9=%.3fms p99=%.3fms median=%.1fus total=%.2fs\n", mx / 1e6,
           p999 / 1e6, p99 / 1e6, med / 1e3, total_ns / 1e9);
    printf(
        "wheel: tick max in thread CPU time=%.3fms at %llu ms (without preemption by other work)\n",
        max_cpu / 1e6, (unsigned long long)max_at);
    printf("wheel: %.1f ns per move (ticks that moved more than they fired)\n",
           move_ticks_moves ? move_ns / (double)move_ticks_moves : 0.0);
    free(tick_ns);
    free(b.ent);
    return 0;
}
