/*
 * stats.c - GET /api/v1/stats: the daemon's figures as one JSON object.
 *
 * It renders one snapshot of the core (core/stats.h, ls_stats_take()),
 * the same one /metrics renders (metrics.c), then appends the adapters'
 * members through their ports.  No daemon lock is taken here and no
 * daemon field read: whatever the two routes share, they agree on.  The
 * availability part (availability.c) renders the same snapshot.
 * docs/api.md describes every member.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

#define STATS_BUF_MAX ((size_t)32 << 20)

typedef unsigned long long ull;

static void render_outbox(ls_buf *b, const ls_stats_snapshot *s)
{
    ls_buf_printf(b,
                  ",\"outbox\":{\"firstSeq\":%llu,\"committedSeq\":%llu,\"prunedEvents\":%llu,"
                  "\"sinksBehindRetention\":%llu,\"sinks\":[",
                  (ull)s->first_seq, (ull)s->committed_seq, (ull)s->pruned_events,
                  (ull)s->sinks_behind);
    for (int i = 0; i < s->nsinks; i++) {
        ls_buf_append(b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        ls_buf_json_str(b, s->sinks[i].name, strlen(s->sinks[i].name));
        ls_buf_printf(b, ",\"cursor\":%llu,\"lag\":%llu}", (ull)s->sinks[i].cursor,
                      (ull)ls_stats_lag(s, s->sinks[i].cursor));
    }
    ls_buf_append(b, "]}", 2);
}

static void render_store(ls_buf *b, const ls_stats_snapshot *s)
{
    const ls_flush_stats *fs = &s->flush;
    ls_buf_printf(b,
                  ",\"store\":{\"commits\":%llu,\"commitMsTotal\":%llu,\"flushes\":%llu,"
                  "\"flushedRecords\":%llu,\"flushSuperseded\":%llu,\"flushSlices\":%llu,"
                  "\"lastFlush\":{\"records\":%llu,\"ms\":%llu},"
                  "\"largestFlush\":{\"records\":%llu,\"ms\":%llu},"
                  "\"committerLockMaxUs\":%llu,\"failing\":%s,\"error\":\"%s\","
                  "\"failedCommits\":%llu}",
                  (ull)s->commits, (ull)(s->commit_ns / 1000000), (ull)fs->passes, (ull)fs->records,
                  (ull)fs->superseded, (ull)fs->slices, (ull)fs->last_staged,
                  (ull)(fs->last_ns / 1000000), (ull)fs->max_staged, (ull)(fs->max_ns / 1000000),
                  (ull)(s->lock_hold_max_ns / 1000), s->store_error ? "true" : "false",
                  s->store_error ? ls_strerror(s->store_error) : "", (ull)s->store_failures);
}

enum MHD_Result ls_api_stats(ls_req *r)
{
    ls_stats_snapshot *s = malloc(sizeof(*s));
    if (!s) return ls_api_error(r, 503, "unavailable", "out of memory");
    ls_stats_take(r->d, s);
    const ls_engine_stats *st = &s->engine;

    ls_buf b;
    ls_buf_init(&b, STATS_BUF_MAX);
    ls_buf_printf(&b,
                  "{\"devices\":%llu,\"active\":%llu,\"inactive\":%llu,\"sessions\":%llu,"
                  "\"activities\":%llu,\"staleActivities\":%llu,\"clampedFutureTimestamps\":%llu,"
                  "\"events\":{",
                  (ull)st->devices, (ull)st->active, (ull)st->inactive, (ull)st->sessions,
                  (ull)st->activities, (ull)st->stale_activities, (ull)st->clamped_future);
    for (int t = 0; t < LS_EV__COUNT; t++)
        ls_buf_printf(&b, "%s\"%s\":%llu", t ? "," : "", ls_event_name((ls_event_type)t),
                      (ull)s->events[t]);
    ls_buf_printf(&b, "},\"lastSeq\":%llu", (ull)s->last_seq);
    render_outbox(&b, s);
    render_store(&b, s);
    ls_buf_printf(&b,
                  ",\"shards\":{\"count\":%u,\"batches\":%llu,\"activities\":%llu,\"queued\":%llu,"
                  "\"producerWaits\":%llu}",
                  s->shards, (ull)s->ingest.batches, (ull)s->ingest.activities,
                  (ull)s->ingest.queued, (ull)s->ingest.producer_waits);
    ls_buf_printf(&b, ",\"streams\":{\"open\":%llu,\"dropped\":%llu,\"refused\":%llu}",
                  (ull)s->streams_open, (ull)s->streams_dropped, (ull)s->streams_refused);
    ls_api_stats_availability(&b, s); /* ,"sessionsExpired":..,"availability":{..},.. */
    ls_stats_ports_json(r->d, &b, s->committed_seq);
    ls_buf_putc(&b, '}');
    ls_stats_release(s);
    free(s);

    enum MHD_Result ok = b.overflow ? ls_api_error(r, 500, "internal",
                                                   "stats do not fit in %zu bytes", STATS_BUF_MAX)
                                    : ls_api_respond(r, 200, &b);
    ls_buf_free(&b);
    return ok;
}
