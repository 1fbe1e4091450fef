/*
 * jitter_bench.c - lastseen-bench jitter: how late a thread that only
 * sleeps wakes up, on this machine, now.
 *
 * The baseline of a lateness figure: the daemon's workers sleep until the
 * next deadline and fire it when they wake; this thread sleeps --period-us
 * at a time (absolute deadlines, CLOCK_MONOTONIC, like the workers' timed
 * waits) at the default priority and does nothing else, so how late it
 * wakes is the machine's share of any lateness measured meanwhile (other
 * jobs, the load generator, the kernel's own work).  Runs for --ms, or
 * until SIGTERM or SIGINT, then prints one JSON object: samples and
 * lateness p50, p99, p99.9 and max in ms.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The p-th percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double p)
{
    return v[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)];
}

int bench_jitter(int argc, char **argv)
{
    uint64_t ms = 10000, period_us = 1000;
    for (int i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--ms")) {
            if (bench_arg_u64(argv[i], val, &ms) < 0) return 2;
        } else if (!strcmp(argv[i], "--period-us")) {
            if (bench_arg_u64(argv[i], val, &period_us) < 0) return 2;
        } else {
            fprintf(stderr, "usage: lastseen-bench jitter [--ms D] [--period-us P]\n");
            return 2;
        }
        i++;
    }
    if (period_us > 1000000 || ms > 24ULL * 3600 * 1000) {
        fprintf(stderr, "jitter: --period-us at most 1000000, --ms at most a day\n");
        return 2;
    }
    size_t cap = (size_t)(ms * 1000 / period_us) + 1, n = 0;
    double *late = malloc(cap * sizeof(*late)); /* ms */
    if (!late) {
        fprintf(stderr, "jitter: out of memory for %zu samples\n", cap);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int64_t end = mono_ns() + (int64_t)ms * 1000000, due = mono_ns();
    while (!stop && n < cap) {
        due += (int64_t)period_us * 1000;
        struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc == EINTR) continue;
        int64_t now = mono_ns();
        late[n++] = (double)(now - due) / 1e6;
        if (now > due) due = now; /* a late wake-up does not make the next ones look late */
        if (now >= end) break;
    }
    if (n == 0) {
        fprintf(stderr, "jitter: no sample\n");
        free(late);
        return 1;
    }
    double med, lo, hi;
    bench_stats(late, (int)n, &med, &lo, &hi); /* sorts */
    printf("{\"samples\": %zu, \"period_us\": %llu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"p999_ms\": %.3f, "
           "\"max_ms\": %.3f}\n",
           n, (unsigned long long)period_us, pct(late, n, 50), pct(late, n, 99), pct(late, n, 99.9),
           hi);
    free(late);
    return 0;
}
