/*
 * metrics.c - GET /metrics: everything lastseen counts, in the Prometheus
 * text format 0.0.4 (out/prom.c writes it).
 *
 * A scrape reads the engines' figures under the daemon's locks once (as
 * /api/v1/stats does: a copy of a few counters and the sink cursors), then
 * formats without any lock; counters kept elsewhere (app/metrics.h,
 * webhooks, streams) are read atomically.  Names follow the Prometheus
 * conventions: lastseen_ prefix, _total for counters, _seconds for times,
 * base units.  docs/api.md lists every metric.
 */
#include <string.h>

#include "api/api.h"
#include "app/persist.h"
#include "app/shards.h"
#include "in/mqtt.h"
#include "out/prom.h"
#include "out/webhook.h"

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

static void http_requests(ls_buf *b, ls_metrics *m)
{
    ls_prom_family(b, "lastseen_http_requests_total", "counter",
                   "HTTP requests answered, by route template, method and status code.");
    for (int rt = 0; rt < LS_ROUTE__COUNT; rt++)
        for (int me = 0; me < LS_METHODS; me++)
            for (int co = 0; co < LS_CODES; co++) {
                uint64_t v = ls_metrics_get(&m->http[rt][me][co]);
                if (!v) continue;
                const char *l[] = {"route", ls_route_name((ls_route)rt), "method", ls_method_name(me),
                                   "code", ls_code_name(co), NULL};
                ls_prom_u64(b, "lastseen_http_requests_total", l, v);
            }
}

static void inputs(ls_buf *b, ls_metrics *m)
{
    int n = atomic_load_explicit(&m->nsources, memory_order_acquire);
    ls_prom_family(b, "lastseen_activities_total", "counter", "Activity reports accepted, by input.");
    for (int i = 0; i < n; i++) {
        const char *l[] = {"source", m->source_names[i], NULL};
        ls_prom_u64(b, "lastseen_activities_total", l, ls_metrics_get(&m->activities[i]));
    }
    ls_prom_family(b, "lastseen_rejected_inputs_total", "counter",
                   "Inputs refused, by input and reason (malformed, invalid, too_large, device_limit).");
    for (int i = 0; i < n; i++)
        for (int why = 0; why < LS_REJECT__COUNT; why++) {
            const char *l[] = {"source", m->source_names[i], "reason", ls_reject_name((ls_reject_reason)why),
                               NULL};
            ls_prom_u64(b, "lastseen_rejected_inputs_total", l, ls_metrics_get(&m->rejected[i][why]));
        }
}

static void webhooks(ls_buf *b, ls_daemon *d, uint64_t committed)
{
    ls_webhook_stats ws[LS_WEBHOOKS_MAX];
    int n = ls_webhooks_stats(d->webhooks, ws, LS_WEBHOOKS_MAX);
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"lastseen_webhook_delivered_events_total", "counter", "Events a webhook endpoint accepted (2xx)."},
        {"lastseen_webhook_skipped_events_total", "counter",
         "Events left out by a webhook's events filter (acknowledged without sending)."},
        {"lastseen_webhook_failed_attempts_total", "counter",
         "Webhook POSTs that failed: no connection, timeout or a non-2xx status."},
        {"lastseen_webhook_last_status", "gauge", "HTTP status of a webhook's last attempt; 0 = no response."},
        {"lastseen_webhook_lag_events", "gauge", "Committed events a webhook has yet to deliver."},
    };
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        ls_prom_family(b, fam[f].name, fam[f].type, fam[f].help);
        for (int i = 0; i < n; i++) {
            const char *l[] = {"webhook", ws[i].name, NULL};
            uint64_t v = f == 0   ? ws[i].delivered
                         : f == 1 ? ws[i].skipped
                         : f == 2 ? ws[i].failed
                         : f == 3 ? (uint64_t)ws[i].last_status
                                  : (committed > ws[i].cursor ? committed - ws[i].cursor : 0);
            ls_prom_u64(b, fam[f].name, l, v);
        }
    }
}

enum MHD_Result ls_api_metrics(ls_req *r)
{
    ls_daemon *d = r->d;
    ls_metrics *m = &d->metrics;
    ls_engine_stats st;
    ls_sink sinks[LS_SINKS_MAX];

    ls_daemon_lock(d);
    ls_shards_engine_stats(d->shards, &st);
    uint64_t committed = d->committed_seq;
    int nsinks = d->nsinks;
    memcpy(sinks, d->sinks, sizeof(ls_sink) * (size_t)nsinks);
    ls_flush_stats fs = d->flush_stats;
    ls_daemon_unlock(d);
    uint64_t written = atomic_load_explicit(&d->events.written, memory_order_relaxed);
    uint64_t first = atomic_load_explicit(&d->pruned_upto, memory_order_relaxed) + 1;

    ls_buf b;
    ls_buf_init(&b, METRICS_BUF_MAX);

    ls_prom_family(&b, "lastseen_build_info", "gauge", "lastseen's version; always 1.");
    const char *ver[] = {"version", LS_VERSION, NULL};
    ls_prom_u64(&b, "lastseen_build_info", ver, 1);
    gauge(&b, "lastseen_start_time_seconds", "When the daemon started, in Unix seconds.",
          (uint64_t)(d->started_wall / 1000));

    ls_prom_family(&b, "lastseen_devices", "gauge", "Devices by status.");
    const char *act[] = {"status", "active", NULL}, *inact[] = {"status", "inactive", NULL};
    ls_prom_u64(&b, "lastseen_devices", act, st.active);
    ls_prom_u64(&b, "lastseen_devices", inact, st.inactive);
    gauge(&b, "lastseen_sessions", "Open sessions, all devices.", st.sessions);
    ls_prom_family(&b, "lastseen_events_total", "counter", "Events produced, by type.");
    for (int t = 0; t < LS_EV__COUNT; t++) {
        const char *l[] = {"type", ls_event_name((ls_event_type)t), NULL};
        ls_prom_u64(&b, "lastseen_events_total", l, st.events[t]);
    }
    inputs(&b, m);
    if (d->mqtt) {
        ls_prom_family(&b, "lastseen_source_up", "gauge",
                       "1 while an input source is heard live; its devices are held otherwise.");
        const char *l[] = {"source", "mqtt", NULL};
        ls_prom_u64(&b, "lastseen_source_up", l, (uint64_t)ls_mqtt_is_up(d->mqtt));
    }
    counter(&b, "lastseen_stale_activities_total",
            "Activities recorded without activating their device (older than its timeout).",
            st.stale_activities);
    counter(&b, "lastseen_clamped_timestamps_total",
            "Activity timestamps too far in the future, clamped to now.", st.clamped_future);
    ls_prom_family(&b, "lastseen_detection_lateness_seconds", "histogram",
                   "detectedAt - ts of each INACTIVITY_EVENT.");
    ls_prom_histogram(&b, "lastseen_detection_lateness_seconds", NULL, &m->lateness);

    gauge(&b, "lastseen_outbox_events", "Events in the outbox.",
          committed + 1 > first ? committed + 1 - first : 0);
    gauge(&b, "lastseen_outbox_committed_seq", "The newest committed event.", committed);
    counter(&b, "lastseen_outbox_pruned_events_total", "Events pruned by events.retention.",
            atomic_load_explicit(&d->pruned_events, memory_order_relaxed));
    gauge(&b, "lastseen_sinks_behind_retention",
          "Sinks holding events older than events.retention.",
          atomic_load_explicit(&d->sinks_behind, memory_order_relaxed));
    ls_prom_family(&b, "lastseen_sink_cursor", "gauge", "The last seq a sink delivered.");
    const char *jsonl[] = {"sink", "events.jsonl", NULL};
    ls_prom_u64(&b, "lastseen_sink_cursor", jsonl, written);
    for (int i = 0; i < nsinks; i++) {
        const char *l[] = {"sink", sinks[i].name, NULL};
        ls_prom_u64(&b, "lastseen_sink_cursor", l, sinks[i].acked);
    }
    ls_prom_family(&b, "lastseen_sink_lag_events", "gauge", "Committed events a sink has yet to deliver.");
    ls_prom_u64(&b, "lastseen_sink_lag_events", jsonl, committed > written ? committed - written : 0);
    for (int i = 0; i < nsinks; i++) {
        const char *l[] = {"sink", sinks[i].name, NULL};
        ls_prom_u64(&b, "lastseen_sink_lag_events", l,
                    committed > sinks[i].acked ? committed - sinks[i].acked : 0);
    }
    ls_prom_family(&b, "lastseen_store_commit_duration_seconds", "histogram",
                   "Time to write one group commit (events and urgent device records) to the store.");
    ls_prom_histogram(&b, "lastseen_store_commit_duration_seconds", NULL, &m->commit);
    ls_prom_family(&b, "lastseen_store_flush_duration_seconds", "histogram",
                   "Time of one flush pass: copying the devices that only reported activity, and "
                   "writing their records in slices.");
    ls_prom_histogram(&b, "lastseen_store_flush_duration_seconds", NULL, &m->flush);
    counter(&b, "lastseen_store_flushed_records_total", "Device records written by flush passes.", fs.records);
    counter(&b, "lastseen_store_flush_superseded_total",
            "Records a flush pass dropped because a later commit wrote their device.", fs.superseded);
    counter(&b, "lastseen_store_flush_slices_total", "Transactions written by flush passes.", fs.slices);
    ls_prom_family(&b, "lastseen_committer_lock_hold_seconds", "histogram",
                   "How long the committer held the engine lock, each time.");
    ls_prom_histogram(&b, "lastseen_committer_lock_hold_seconds", NULL, &m->lock_hold);
    ls_prom_family(&b, "lastseen_committer_lock_hold_max_seconds", "gauge",
                   "The longest hold of the engine lock by the committer since start.");
    ls_buf_append(&b, "lastseen_committer_lock_hold_max_seconds ", 41);
    ls_prom_seconds(&b, ls_metrics_get(&m->lock_hold_max_ns));
    ls_buf_putc(&b, '\n');
    counter(&b, "lastseen_store_errors_total",
            "Changes or events that could not be queued for the store.",
            atomic_load_explicit(&d->persist_errors, memory_order_relaxed));
    counter(&b, "lastseen_event_log_write_errors_total", "Failed writes to events.jsonl.",
            atomic_load_explicit(&d->events.write_errors, memory_order_relaxed));

    http_requests(&b, m);
    gauge(&b, "lastseen_event_streams", "Open event streams.", ls_metrics_get(&m->streams_open));
    counter(&b, "lastseen_event_streams_dropped_total", "Event streams closed for falling too far behind.",
            ls_metrics_get(&m->streams_dropped));
    counter(&b, "lastseen_event_streams_refused_total", "Event streams refused by http.max_streams.",
            ls_metrics_get(&m->streams_refused));
    webhooks(&b, d, committed);

    if (b.overflow) {
        ls_buf_free(&b);
        return ls_api_error(r, 500, "internal", "metrics do not fit in %zu bytes", METRICS_BUF_MAX);
    }
    enum MHD_Result ok = ls_api_respond_type(r, 200, &b, LS_PROM_CONTENT_TYPE);
    ls_buf_free(&b);
    return ok;
}
