/*
 * bench.h - helpers shared by the lastseen-bench subcommands: a clock, RSS,
 * a seeded generator and UUID-shaped device ids.
 */
#ifndef LS_BENCH_H
#define LS_BENCH_H

#include <stdint.h>

double bench_secs(void);        /* monotonic seconds */
double bench_cpu_secs(void);    /* CPU seconds used by this process */
long bench_rss_bytes(void);     /* resident set of this process */
long bench_huge_bytes(void);    /* of which on transparent huge pages */
void bench_seed(uint64_t seed); /* seeds bench_rng() */
uint64_t bench_rng(void);       /* splitmix64 */
void bench_uuid(char *out);     /* 36 characters and a NUL */

/* Parses a positive decimal number; 0 on success, -1 with a message. */
int bench_arg_u64(const char *opt, const char *val, uint64_t *out);

/* Median, min and max of v[0..n) (sorted in place). */
void bench_stats(double *v, int n, double *med, double *lo, double *hi);

/* The store subcommands (store_bench.c): argv[0] is the subcommand. */
int bench_store_fill(int argc, char **argv);
int bench_store_flush(int argc, char **argv);
int bench_store_events(int argc, char **argv);
int bench_store_load(int argc, char **argv);

/* The MQTT load generator (mqtt_pub.c) for bench/mqtt_ingest.py. */
int bench_mqtt_pub(int argc, char **argv);

/* The timing wheel alone (wheel_bench.c). */
int bench_wheel(int argc, char **argv);

/* How late a thread that only sleeps wakes up (jitter_bench.c). */
int bench_jitter(int argc, char **argv);

/* How long a stats snapshot holds the daemon's locks (stats_bench.c). */
int bench_stats_take(int argc, char **argv);

/* The UDP load generator (udp_bench.c). */
int bench_udp(int argc, char **argv);

/* GET path from 127.0.0.1:port; 0 with the body (caller frees) on 200, else -1. */
int bench_http_get(int port, const char *path, char **body);

#endif
