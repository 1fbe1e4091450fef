/*
 * metrics.c - the daemon's counters and histograms (see metrics.h), and the
 * label tables of /metrics: routes, methods, status codes, reasons.
 *
 * Histogram buckets: detection lateness from 1 ms to 10 s (the engine's
 * tick is 1 ms, so the first bucket holds the normal case and the rest
 * show scheduling trouble) and flush passes, both 1 ms to 10 s; store
 * commits from 100 us to 1 s; the committer's holds of the engine lock
 * from 10 us to 100 ms.  An
 * observation finds its bucket by a linear scan of at most 13 bounds.
 */
#include "core/metrics.h"

#include <errno.h>
#include <string.h>

static const uint64_t lateness_le_ns[] = {
    1000000,   2500000,   5000000,    10000000,   25000000,   50000000,    100000000,
    250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
static const char *const lateness_le_text[] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                               "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                               "2.5",   "5",      "10"};
static const uint64_t commit_le_ns[] = {
    100000,   250000,   500000,    1000000,   2500000,   5000000,    10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
};
static const char *const commit_le_text[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                             "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                             "0.25",   "0.5",     "1"};
static const uint64_t hold_le_ns[] = {
    10000,   25000,   50000,    100000,   250000,   500000,    1000000,
    2500000, 5000000, 10000000, 25000000, 50000000, 100000000,
};
static const char *const hold_le_text[] = {"0.00001", "0.000025", "0.00005", "0.0001", "0.00025",
                                           "0.0005",  "0.001",    "0.0025",  "0.005",  "0.01",
                                           "0.025",   "0.05",     "0.1"};
_Static_assert(sizeof hold_le_ns / sizeof hold_le_ns[0] ==
                   sizeof hold_le_text / sizeof hold_le_text[0],
               "lock hold buckets");
_Static_assert(sizeof lateness_le_ns / sizeof lateness_le_ns[0] ==
                   sizeof lateness_le_text / sizeof lateness_le_text[0],
               "lateness buckets");
_Static_assert(sizeof commit_le_ns / sizeof commit_le_ns[0] ==
                   sizeof commit_le_text / sizeof commit_le_text[0],
               "commit buckets");

static const char *const route_names[LS_ROUTE__COUNT] = {
    [LS_ROUTE_OTHER] = "other",
    [LS_ROUTE_HEALTHZ] = "/healthz",
    [LS_ROUTE_METRICS] = "/metrics",
    [LS_ROUTE_STATS] = "/api/v1/stats",
    [LS_ROUTE_BULK_ACTIVITY] = "/api/v1/activity",
    [LS_ROUTE_DEVICES] = "/api/v1/devices",
    [LS_ROUTE_DEVICE] = "/api/v1/devices/{id}",
    [LS_ROUTE_DEVICE_ACTIVITY] = "/api/v1/devices/{id}/activity",
    [LS_ROUTE_DEVICE_CONNECT] = "/api/v1/devices/{id}/connect",
    [LS_ROUTE_DEVICE_DISCONNECT] = "/api/v1/devices/{id}/disconnect",
    [LS_ROUTE_EVENTS] = "/api/v1/events",
    [LS_ROUTE_EVENTS_STREAM] = "/api/v1/events/stream",
};

static const char *const method_names[LS_METHODS] = {"GET", "HEAD",   "POST",
                                                     "PUT", "DELETE", "other"};

static const unsigned codes[LS_CODES - 1] = {200, 201, 202, 204, 301, 302, 304, 400, 401, 403,
                                             404, 405, 406, 408, 413, 414, 422, 500, 503, 507};
static const char *const code_names[LS_CODES] = {"200", "201", "202", "204", "301", "302", "304",
                                                 "400", "401", "403", "404", "405", "406", "408",
                                                 "413", "414", "422", "500", "503", "507", "other"};

static const char *const reject_names[LS_REJECT__COUNT] = {
    [LS_REJECT_MALFORMED] = "malformed",
    [LS_REJECT_INVALID] = "invalid",
    [LS_REJECT_TOO_LARGE] = "too_large",
    [LS_REJECT_DEVICE_LIMIT] = "device_limit",
    [LS_REJECT_UNAUTHENTICATED] = "unauthenticated",
};

const char *ls_reject_name(ls_reject_reason r)
{
    return (unsigned)r < LS_REJECT__COUNT ? reject_names[r] : "other";
}

const char *ls_route_name(ls_route r)
{
    return (unsigned)r < LS_ROUTE__COUNT ? route_names[r] : "other";
}

const char *ls_method_name(int i)
{
    return i >= 0 && i < LS_METHODS ? method_names[i] : "other";
}

int ls_method_index(const char *method)
{
    for (int i = 0; i < LS_METHODS - 1; i++)
        if (strcmp(method, method_names[i]) == 0) return i;
    return LS_METHODS - 1;
}

int ls_code_index(unsigned status)
{
    for (int i = 0; i < LS_CODES - 1; i++)
        if (codes[i] == status) return i;
    return LS_CODES - 1;
}

const char *ls_code_name(int i)
{
    return i >= 0 && i < LS_CODES ? code_names[i] : "other";
}

void ls_histogram_observe(ls_histogram *h, uint64_t ns)
{
    int i = 0;
    while (i < h->n && ns > h->le_ns[i])
        i++;
    ls_metrics_add(&h->counts[i], 1);
    ls_metrics_add(&h->sum_ns, ns);
}

void ls_metrics_init(ls_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->lateness.n = (int)(sizeof lateness_le_ns / sizeof lateness_le_ns[0]);
    m->lateness.le_ns = lateness_le_ns;
    m->lateness.le_text = lateness_le_text;
    m->commit.n = (int)(sizeof commit_le_ns / sizeof commit_le_ns[0]);
    m->commit.le_ns = commit_le_ns;
    m->commit.le_text = commit_le_text;
    m->flush.n = m->lateness.n; /* 1 ms .. 10 s */
    m->flush.le_ns = m->lateness.le_ns;
    m->flush.le_text = m->lateness.le_text;
    m->lock_hold.n = (int)(sizeof hold_le_ns / sizeof hold_le_ns[0]);
    m->lock_hold.le_ns = hold_le_ns;
    m->lock_hold.le_text = hold_le_text;
}

int ls_metrics_source(ls_metrics *m, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    int count = atomic_load_explicit(&m->nsources, memory_order_acquire);
    if (n == 0 || n >= LS_SOURCE_NAME_MAX) return -EINVAL;
    for (int i = 0; i < count; i++)
        if (strcmp(m->source_names[i], name) == 0) return i;
    if (count >= LS_SOURCES_MAX) return -ENOSPC;
    memcpy(m->source_names[count], name, n + 1);
    atomic_store_explicit(&m->nsources, count + 1, memory_order_release);
    return count;
}

void ls_metrics_activities(ls_metrics *m, int src, uint64_t n)
{
    if (src >= 0 && src < LS_SOURCES_MAX && n) ls_metrics_add(&m->activities[src], n);
}

void ls_metrics_rejected(ls_metrics *m, int src, ls_reject_reason why, uint64_t n)
{
    if (src >= 0 && src < LS_SOURCES_MAX && (unsigned)why < LS_REJECT__COUNT && n)
        ls_metrics_add(&m->rejected[src][why], n);
}

void ls_metrics_http(ls_metrics *m, ls_route route, const char *method, unsigned status)
{
    if ((unsigned)route >= LS_ROUTE__COUNT) route = LS_ROUTE_OTHER;
    ls_metrics_add(&m->http[route][ls_method_index(method)][ls_code_index(status)], 1);
}
