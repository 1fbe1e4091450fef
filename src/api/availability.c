/*
 * availability.c - the fleet-wide view of availability in /api/v1/stats:
 * devices by Cumulocity availability and connection status, by type, open
 * alarms by status and severity (the fleet's c8y_ActiveAlarmsStatus), and
 * the HTTP input's reporting strategy.  Every figure is a counter kept up
 * to date as devices change (engine, alarms, reporter), so this costs
 * O(types), never a walk of the devices.
 */
#include <string.h>

#include "api/api.h"
#include "core/shards.h"

static void type_entry(ls_buf *b, const ls_type_info *t, int first)
{
    if (!first) ls_buf_putc(b, ',');
    ls_buf_json_str(b, t->name, strlen(t->name));
    ls_buf_printf(b, ":{\"devices\":%llu,\"active\":%llu,\"configured\":%s}",
                  (unsigned long long)t->devices, (unsigned long long)t->active,
                  t->configured ? "true" : "false");
}

typedef struct types_state {
    ls_buf *b;
    int first;
} types_state;

static void type_visit(void *ud, const ls_type_info *t)
{
    types_state *ts = ud;
    if (!t->devices && !t->configured) return; /* a name nothing uses any more */
    type_entry(ts->b, t, ts->first);
    ts->first = 0;
}

void ls_api_stats_availability(ls_buf *b, ls_daemon *d)
{
    ls_engine_stats st;
    ls_alarm_stats as;
    ls_reporter_stats rs;
    ls_shards_engine_stats(d->shards, &st);
    ls_alarms_get_stats(d->alarms, &as);
    ls_shards_reporter_stats(d->shards, &rs);
    const int M = LS_AVAIL_MONITORED, X = LS_AVAIL_MAINTENANCE, U = LS_AVAIL_UNMONITORED;

    ls_buf_printf(
        b,
        ",\"sessionsExpired\":%llu"
        ",\"availability\":{\"AVAILABLE\":%llu,\"UNAVAILABLE\":%llu,\"MAINTENANCE\":%llu}"
        ",\"unmonitored\":%llu"
        ",\"connection\":{\"CONNECTED\":%llu,\"DISCONNECTED\":%llu,\"MAINTENANCE\":%llu}",
        (unsigned long long)st.sessions_expired, (unsigned long long)st.avail_active[M],
        (unsigned long long)(st.avail[M] - st.avail_active[M]), (unsigned long long)st.avail[X],
        (unsigned long long)st.avail[U], (unsigned long long)st.avail_connected[M],
        (unsigned long long)(st.avail[M] - st.avail_connected[M]), (unsigned long long)st.avail[X]);

    ls_buf_append(b, ",\"types\":{", 10);
    types_state ts = {.b = b, .first = 1};
    ls_shards_types(d->shards, type_visit, &ts);
    ls_buf_printf(
        b,
        "},\"alarms\":{\"ACTIVE\":%llu,\"ACKNOWLEDGED\":%llu,\"CLEARED\":%llu,\"raised\":%llu,"
        "\"deduplicated\":%llu,\"pruned\":%llu},\"c8y_ActiveAlarmsStatus\":{",
        (unsigned long long)as.by_status[LS_ALARM_ACTIVE],
        (unsigned long long)as.by_status[LS_ALARM_ACKNOWLEDGED],
        (unsigned long long)as.by_status[LS_ALARM_CLEARED], (unsigned long long)as.raised,
        (unsigned long long)as.deduplicated, (unsigned long long)as.pruned);
    int k = 0;
    for (int s = 0; s < LS_SEV__COUNT; s++)
        if (as.open_by_severity[s])
            ls_buf_printf(b, "%s\"%s\":%llu", k++ ? "," : "", ls_severity_key(s),
                          (unsigned long long)as.open_by_severity[s]);
    ls_buf_printf(
        b,
        "},\"inputs\":{\"http\":{\"reportingStrategy\":\"%s\",\"reportingPeriod\":%lld,"
        "\"forwarded\":%llu,\"held\":%llu,\"reported\":%llu,\"recorded\":%llu,\"failed\":%llu,"
        "\"tracking\":%llu}}",
        ls_report_strategy_name((ls_report_strategy)d->cfg.http_reporting_strategy),
        (long long)d->cfg.http_reporting_period, (unsigned long long)rs.forwarded,
        (unsigned long long)rs.held, (unsigned long long)rs.reported,
        (unsigned long long)rs.recorded, (unsigned long long)rs.failed,
        (unsigned long long)rs.tracking);
}
