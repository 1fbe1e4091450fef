/*
 * stats_bench.c - lastseen-bench stats: how long one stats snapshot
 * (core/stats.h, ls_stats_take()) holds the daemon's locks, on a core
 * holding --devices devices of --types types in --shards shards.
 *
 * Opens a real core (store in --dir, else a mkdtemp directory under /tmp,
 * removed after; no HTTP), creates the types and the devices (UUID-shaped
 * ids, through ls_shards_apply() as a bulk request does), waits for the
 * committer to write them, then takes --runs snapshots and prints one JSON
 * object: the hold (locks taken to locks released: what every shard's
 * worker and the committer may wait for) and the whole take (with the
 * wait for the locks and the reads after them), median, p99 and max in
 * us.
 * Both are O(shards + types + sinks), not O(devices).
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "bench.h"
#include "conf/config.h"
#include "core/daemon.h"
#include "core/shards.h"
#include "core/stats.h"

#define APPLY_CHUNK 4096

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Creates n devices through ls_shards_apply(), APPLY_CHUNK at a time. */
static int load_devices(ls_daemon *d, uint64_t n)
{
    char(*ids)[40] = malloc(APPLY_CHUNK * sizeof(*ids));
    ls_activity *a = malloc(APPLY_CHUNK * sizeof(*a));
    if (!ids || !a) {
        free(ids);
        free(a);
        return -1;
    }
    for (uint64_t done = 0; done < n;) {
        size_t k = n - done < APPLY_CHUNK ? (size_t)(n - done) : APPLY_CHUNK;
        for (size_t i = 0; i < k; i++) {
            bench_uuid(ids[i]);
            a[i] = (ls_activity){.id = ids[i], .len = 36};
        }
        uint64_t gen = 0;
        ls_shards_apply(d->shards, a, k, 0, NULL, &gen);
        done += k;
    }
    free(ids);
    free(a);
    return 0;
}

int bench_stats_take(int argc, char **argv)
{
    uint64_t devices = 1000000, shards = 4, types = 10, runs = 100;
    const char *dir = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dst = !strcmp(argv[i], "--devices")  ? &devices
                        : !strcmp(argv[i], "--shards") ? &shards
                        : !strcmp(argv[i], "--types")  ? &types
                        : !strcmp(argv[i], "--runs")   ? &runs
                                                       : NULL;
        if (!strcmp(argv[i], "--dir") && val) {
            dir = val;
        } else if (!dst || bench_arg_u64(argv[i], val, dst) < 0) {
            fprintf(stderr, "usage: lastseen-bench stats [--devices N] [--shards S] [--types T] "
                            "[--runs R] [--dir D]\n");
            return 2;
        }
    }
    if (shards > LS_SHARDS_MAX || runs > 100000 || types > 60000) {
        fprintf(stderr, "stats: --shards at most %d, --runs at most 100000, --types 60000\n",
                LS_SHARDS_MAX);
        return 2;
    }

    char tmp[64] = "";
    if (!dir) {
        snprintf(tmp, sizeof(tmp), "/tmp/lastseen-bench-stats-XXXXXX");
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmp;
    }
    ls_config cfg;
    ls_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.engine_shards = (int64_t)shards;
    ls_daemon *d = calloc(1, sizeof(*d));
    double *hold = malloc(runs * sizeof(double)), *take = malloc(runs * sizeof(double));
    ls_stats_snapshot *s = malloc(sizeof(*s));
    int rc = 1;
    if (!d || !hold || !take || !s || ls_core_open(d, &cfg) < 0 || ls_core_start(d) < 0) goto out;
    ls_core_ready(d);

    ls_type_config tc = {.timeout_ms = 600000, .monitored = -1};
    ls_held h;
    ls_daemon_lock(d, &h);
    for (uint64_t i = 0; i < types; i++) {
        char name[32];
        int len = snprintf(name, sizeof(name), "type-%llu", (unsigned long long)i);
        ls_shards_type_put(d->shards, name, (size_t)len, &tc, ls_clock_now(), NULL);
    }
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
    double t0 = bench_secs();
    if (load_devices(d, devices) < 0) goto out;
    ls_daemon_lock(d, &h);
    ls_daemon_commit_unlock(d, &h, INT64_MAX);
    double loaded = bench_secs() - t0;

    for (uint64_t r = 0; r < runs; r++) {
        int64_t a = ls_clock_mono_ns();
        ls_stats_take(d, s);
        take[r] = (double)(ls_clock_mono_ns() - a) / 1000.0;
        hold[r] = (double)s->hold_ns / 1000.0;
        if (s->engine.devices != devices) {
            fprintf(stderr, "stats: %llu devices in the snapshot, not %llu\n",
                    (unsigned long long)s->engine.devices, (unsigned long long)devices);
            ls_stats_release(s);
            goto out;
        }
        ls_stats_release(s);
    }
    double hmed, hlo, hmax, tmed, tlo, tmax;
    bench_stats(hold, (int)runs, &hmed, &hlo, &hmax); /* sorts */
    bench_stats(take, (int)runs, &tmed, &tlo, &tmax);
    size_t p99 = (size_t)(0.99 * (double)(runs - 1) + 0.5);
    printf("{\"devices\":%llu,\"shards\":%llu,\"types\":%llu,\"runs\":%llu,\"load_s\":%.1f,"
           "\"hold_us\":{\"median\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
           "\"take_us\":{\"median\":%.1f,\"p99\":%.1f,\"max\":%.1f}}\n",
           (unsigned long long)devices, (unsigned long long)shards, (unsigned long long)types,
           (unsigned long long)runs, loaded, hmed, hold[p99], hmax, tmed, take[p99], tmax);
    rc = 0;
out:
    if (d && d->shards) {
        ls_core_stop_ingest(d);
        ls_core_stop_committer(d);
        ls_core_close(d);
    }
    if (tmp[0]) nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(s);
    free(hold);
    free(take);
    free(d);
    return rc;
}
