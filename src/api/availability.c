/*
 * availability.c - the fleet-wide view of availability in /api/v1/stats:
 * devices by Cumulocity availability and connection status, by type, open
 * alarms by status and severity (the fleet's c8y_ActiveAlarmsStatus), and
 * the HTTP input's reporting strategy.  Every figure comes from the stats
 * snapshot (core/stats.h), whose counters are kept up to date as devices
 * change (engine, alarms, reporter), so this costs O(types), never a walk
 * of the devices, and takes no lock.
 */
#include <string.h>

#include "api/api.h"

typedef unsigned long long ull;

void ls_api_stats_availability(ls_buf *b, const ls_stats_snapshot *s)
{
    const ls_engine_stats *st = &s->engine;
    const ls_alarm_stats *as = &s->alarms;
    const ls_reporter_stats *rs = &s->http_reports;
    const int M = LS_AVAIL_MONITORED, X = LS_AVAIL_MAINTENANCE, U = LS_AVAIL_UNMONITORED;

    ls_buf_printf(b,
                  ",\"sessionsExpired\":%llu"
                  ",\"availability\":{\"AVAILABLE\":%llu,\"UNAVAILABLE\":%llu,\"MAINTENANCE\":%llu}"
                  ",\"unmonitored\":%llu"
                  ",\"connection\":{\"CONNECTED\":%llu,\"DISCONNECTED\":%llu,\"MAINTENANCE\":%llu}",
                  (ull)st->sessions_expired, (ull)st->avail_active[M],
                  (ull)(st->avail[M] - st->avail_active[M]), (ull)st->avail[X], (ull)st->avail[U],
                  (ull)st->avail_connected[M], (ull)(st->avail[M] - st->avail_connected[M]),
                  (ull)st->avail[X]);

    ls_buf_append(b, ",\"types\":{", 10);
    for (size_t i = 0; i < s->ntypes; i++) {
        const ls_stats_type *t = &s->types[i];
        if (i) ls_buf_putc(b, ',');
        ls_buf_json_str(b, t->name, strlen(t->name));
        ls_buf_printf(b, ":{\"devices\":%llu,\"active\":%llu,\"configured\":%s}", (ull)t->devices,
                      (ull)t->active, t->configured ? "true" : "false");
    }
    ls_buf_printf(b,
                  "},\"alarms\":{\"ACTIVE\":%llu,\"ACKNOWLEDGED\":%llu,\"CLEARED\":%llu,"
                  "\"raised\":%llu,\"deduplicated\":%llu,\"pruned\":%llu},"
                  "\"c8y_ActiveAlarmsStatus\":{",
                  (ull)as->by_status[LS_ALARM_ACTIVE], (ull)as->by_status[LS_ALARM_ACKNOWLEDGED],
                  (ull)as->by_status[LS_ALARM_CLEARED], (ull)as->raised, (ull)as->deduplicated,
                  (ull)as->pruned);
    int k = 0;
    for (int sev = 0; sev < LS_SEV__COUNT; sev++)
        if (as->open_by_severity[sev])
            ls_buf_printf(b, "%s\"%s\":%llu", k++ ? "," : "", ls_severity_key(sev),
                          (ull)as->open_by_severity[sev]);
    ls_buf_printf(
        b,
        "},\"inputs\":{\"http\":{\"reportingStrategy\":\"%s\",\"reportingPeriod\":%lld,"
        "\"forwarded\":%llu,\"held\":%llu,\"reported\":%llu,\"recorded\":%llu,\"failed\":%llu,"
        "\"tracking\":%llu}}",
        ls_report_strategy_name((ls_report_strategy)s->http_reporting_strategy),
        (long long)s->http_reporting_period, (ull)rs->forwarded, (ull)rs->held, (ull)rs->reported,
        (ull)rs->recorded, (ull)rs->failed, (ull)rs->tracking);
}
