/*
 * metrics.c - GET /metrics: everything lastseen counts, in the Prometheus
 * text format 0.0.4 (core/prom.c writes it).
 *
 * A scrape renders one snapshot of the core (core/stats.h,
 * ls_stats_take()), the same one /api/v1/stats renders (stats.c), then
 * appends the adapters' families through their ports (webhooks, MQTT).
 * No daemon lock is taken here and no daemon field read, so every figure
 * the two routes share is the same figure.  Names follow the Prometheus
 * conventions: lastseen_ prefix, _total for counters, _seconds for times,
 * base units.  docs/api.md lists every metric.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/prom.h"

#define METRICS_BUF_MAX ((size_t)8 << 20)

static void counter(ls_buf *b, const char *name, const char *help, uint64_t v)
{
    ls_prom_family(b, name, "counter", help);
    ls_prom_u64(b, name, NULL, v);
}

static void gauge(ls_buf *b, const char *name, const char *help, uint64_t v)
{
    ls_prom_family(b, name, "gauge", help);
    ls_prom_u64(b, name, NULL, v);
}

static void http_requests(ls_buf *b, const ls_stats_snapshot *s)
{
    ls_prom_family(b, "lastseen_http_requests_total", "counter",
                   "HTTP requests answered, by route template, method and status code.");
    for (int rt = 0; rt < LS_ROUTE__COUNT; rt++)
        for (int me = 0; me < LS_METHODS; me++)
            for (int co = 0; co < LS_CODES; co++) {
                uint64_t v = s->http[rt][me][co];
                if (!v) continue;
                const char *l[] = {"route",  ls_route_name((ls_route)rt),
                                   "method", ls_method_name(me),
                                   "code",   ls_code_name(co),
                                   NULL};
                ls_prom_u64(b, "lastseen_http_requests_total", l, v);
            }
}

static void inputs(ls_buf *b, const ls_stats_snapshot *s)
{
    ls_prom_family(b, "lastseen_activities_total", "counter",
                   "Activity reports accepted, by input.");
    for (int i = 0; i < s->nsources; i++) {
        const char *l[] = {"source", s->source_names[i], NULL};
        ls_prom_u64(b, "lastseen_activities_total", l, s->activities[i]);
    }
    ls_prom_family(
        b, "lastseen_rejected_inputs_total", "counter",
        "Inputs refused, by input and reason (malformed, invalid, too_large, device_limit).");
    for (int i = 0; i < s->nsources; i++)
        for (int why = 0; why < LS_REJECT__COUNT; why++) {
            const char *l[] = {"source", s->source_names[i], "reason",
                               ls_reject_name((ls_reject_reason)why), NULL};
            ls_prom_u64(b, "lastseen_rejected_inputs_total", l, s->rejected[i][why]);
        }
}

/* Devices, sessions, events and activities. */
static void fleet(ls_buf *b, const ls_stats_snapshot *s)
{
    const ls_engine_stats *st = &s->engine;
    ls_prom_family(b, "lastseen_devices", "gauge", "Devices by status.");
    const char *act[] = {"status", "active", NULL}, *inact[] = {"status", "inactive", NULL};
    ls_prom_u64(b, "lastseen_devices", act, st->active);
    ls_prom_u64(b, "lastseen_devices", inact, st->inactive);
    gauge(b, "lastseen_sessions", "Open sessions, all devices.", st->sessions);
    ls_prom_family(b, "lastseen_events_total", "counter", "Events produced, by type.");
    for (int t = 0; t < LS_EV__COUNT; t++) {
        const char *l[] = {"type", ls_event_name((ls_event_type)t), NULL};
        ls_prom_u64(b, "lastseen_events_total", l, s->events[t]);
    }
    inputs(b, s);
    counter(b, "lastseen_stale_activities_total",
            "Activities recorded without activating their device (older than its timeout).",
            st->stale_activities);
    counter(b, "lastseen_clamped_timestamps_total",
            "Activity timestamps too far in the future, clamped to now.", st->clamped_future);
    ls_prom_family(b, "lastseen_detection_lateness_seconds", "histogram",
                   "detectedAt - ts of each INACTIVITY_EVENT.");
    ls_prom_histogram(b, "lastseen_detection_lateness_seconds", NULL, &s->lateness);
}

/* The outbox and the cursor of each sink. */
static void outbox(ls_buf *b, const ls_stats_snapshot *s)
{
    uint64_t committed = s->committed_seq, first = s->first_seq;
    gauge(b, "lastseen_outbox_events", "Events in the outbox.",
          committed + 1 > first ? committed + 1 - first : 0);
    gauge(b, "lastseen_outbox_committed_seq", "The newest committed event.", committed);
    counter(b, "lastseen_outbox_pruned_events_total", "Events pruned by events.retention.",
            s->pruned_events);
    gauge(b, "lastseen_sinks_behind_retention", "Sinks holding events older than events.retention.",
          s->sinks_behind);
    ls_prom_family(b, "lastseen_sink_cursor", "gauge", "The last seq a sink delivered.");
    for (int i = 0; i < s->nsinks; i++) {
        const char *l[] = {"sink", s->sinks[i].name, NULL};
        ls_prom_u64(b, "lastseen_sink_cursor", l, s->sinks[i].cursor);
    }
    ls_prom_family(b, "lastseen_sink_lag_events", "gauge",
                   "Committed events a sink has yet to deliver.");
    for (int i = 0; i < s->nsinks; i++) {
        const char *l[] = {"sink", s->sinks[i].name, NULL};
        ls_prom_u64(b, "lastseen_sink_lag_events", l, ls_stats_lag(s, s->sinks[i].cursor));
    }
}

/* The committer: commits, flush passes, its hold of the engine lock. */
static void store(ls_buf *b, const ls_stats_snapshot *s)
{
    ls_prom_family(
        b, "lastseen_store_commit_duration_seconds", "histogram",
        "Time to write one group commit (events and urgent device records) to the store.");
    ls_prom_histogram(b, "lastseen_store_commit_duration_seconds", NULL, &s->commit);
    ls_prom_family(b, "lastseen_store_flush_duration_seconds", "histogram",
                   "Time of one flush pass: copying the devices that only reported activity, and "
                   "writing their records in slices.");
    ls_prom_histogram(b, "lastseen_store_flush_duration_seconds", NULL, &s->flush_time);
    counter(b, "lastseen_store_flushed_records_total", "Device records written by flush passes.",
            s->flush.records);
    counter(b, "lastseen_store_flush_superseded_total",
            "Records a flush pass dropped because a later commit wrote their device.",
            s->flush.superseded);
    counter(b, "lastseen_store_flush_slices_total", "Transactions written by flush passes.",
            s->flush.slices);
    ls_prom_family(b, "lastseen_committer_lock_hold_seconds", "histogram",
                   "How long the committer held the engine lock, each time.");
    ls_prom_histogram(b, "lastseen_committer_lock_hold_seconds", NULL, &s->lock_hold);
    ls_prom_family(b, "lastseen_committer_lock_hold_max_seconds", "gauge",
                   "The longest hold of the engine lock by the committer since start.");
    ls_buf_append(b, "lastseen_committer_lock_hold_max_seconds ", 41);
    ls_prom_seconds(b, s->lock_hold_max_ns);
    ls_buf_putc(b, '\n');
    counter(b, "lastseen_store_errors_total",
            "Changes or events that could not be queued for the store.", s->persist_errors);
    gauge(
        b, "lastseen_store_failing",
        "1 while store writes fail (disk full, quota, I/O error: the log and /healthz say which).",
        s->store_error != 0);
    counter(b, "lastseen_store_failed_commits_total",
            "Store writes that failed (each retry counts).", s->store_failures);
}

enum MHD_Result ls_api_metrics(ls_req *r)
{
    ls_stats_snapshot *s = malloc(sizeof(*s));
    if (!s) return ls_api_error(r, 503, "unavailable", "out of memory");
    ls_stats_take(r->d, s);

    ls_buf b;
    ls_buf_init(&b, METRICS_BUF_MAX);
    ls_prom_family(&b, "lastseen_build_info", "gauge", "lastseen's version; always 1.");
    const char *ver[] = {"version", s->version, NULL};
    ls_prom_u64(&b, "lastseen_build_info", ver, 1);
    gauge(&b, "lastseen_start_time_seconds", "When the daemon started, in Unix seconds.",
          (uint64_t)(s->started_wall / 1000));
    fleet(&b, s);
    outbox(&b, s);
    store(&b, s);
    http_requests(&b, s);
    gauge(&b, "lastseen_event_streams", "Open event streams.", s->streams_open);
    counter(&b, "lastseen_event_streams_dropped_total",
            "Event streams closed for falling too far behind.", s->streams_dropped);
    counter(&b, "lastseen_event_streams_refused_total",
            "Event streams refused by http.max_streams.", s->streams_refused);
    ls_stats_ports_prom(r->d, &b, s->committed_seq);
    ls_stats_release(s);
    free(s);

    if (b.overflow) {
        ls_buf_free(&b);
        return ls_api_error(r, 500, "internal", "metrics do not fit in %zu bytes", METRICS_BUF_MAX);
    }
    enum MHD_Result ok = ls_api_respond_type(r, 200, &b, LS_PROM_CONTENT_TYPE);
    ls_buf_free(&b);
    return ok;
}
