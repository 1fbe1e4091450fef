/*
 * metrics.h - counters and histograms the daemon keeps for /metrics.
 *
 * Every counter here is an _Atomic uint64_t updated with relaxed atomics: one
 * atomic add per HTTP request, per bulk request, per INACTIVITY_EVENT and
 * per store commit, and no lock anywhere.  Readers (the /metrics route)
 * load each value with a relaxed load; a scrape is therefore not one consistent
 * snapshot, which Prometheus does not need.  What already has a home (the
 * engine's stats, the outbox cursors, webhooks) is read from there when
 * /metrics is scraped instead of being counted twice.
 */
#ifndef LS_METRICS_H
#define LS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A histogram over fixed bucket bounds, in nanoseconds. */
#define LS_HIST_BUCKETS_MAX 16
typedef struct ls_histogram {
    int n;                      /* finite buckets */
    const uint64_t *le_ns;      /* their upper bounds, increasing */
    const char *const *le_text; /* the same bounds in seconds, as text: "0.001" */
    _Atomic uint64_t counts[LS_HIST_BUCKETS_MAX + 1]; /* per bucket, not cumulative; [n] is +Inf */
    _Atomic uint64_t sum_ns;
} ls_histogram;

/* Counts one observation of `ns` nanoseconds.  Any thread. */
void ls_histogram_observe(ls_histogram *h, uint64_t ns);

/* Inputs that count activities and rejections ("http", later "mqtt", "udp"). */
#define LS_SOURCES_MAX 8
#define LS_SOURCE_NAME_MAX 16

/* Why an input was refused; the label values of lastseen_rejected_inputs_total. */
typedef enum ls_reject_reason {
    LS_REJECT_MALFORMED = 0,   /* not parseable: HTTP 400 */
    LS_REJECT_INVALID,         /* a bad id, ts or value: HTTP 422 */
    LS_REJECT_TOO_LARGE,       /* over a size limit: HTTP 413 */
    LS_REJECT_DEVICE_LIMIT,    /* state.max_devices: HTTP 507 */
    LS_REJECT_UNAUTHENTICATED, /* a signature missing, unknown, wrong, or out of its window */
    LS_REJECT__COUNT
} ls_reject_reason;
const char *ls_reject_name(ls_reject_reason r);

/* HTTP routes by template; the label values of lastseen_http_requests_total.
 * The route table (api/routes.c) says which paths each one covers. */
typedef enum ls_route {
    LS_ROUTE_OTHER = 0, /* no route matched */
    LS_ROUTE_HEALTHZ,
    LS_ROUTE_METRICS,
    LS_ROUTE_STATS,
    LS_ROUTE_BULK_ACTIVITY,
    LS_ROUTE_DEVICES,
    LS_ROUTE_DEVICE,
    LS_ROUTE_DEVICE_ACTIVITY,
    LS_ROUTE_DEVICE_CONNECT,
    LS_ROUTE_DEVICE_DISCONNECT,
    LS_ROUTE_EVENTS,
    LS_ROUTE_EVENTS_STREAM,
    LS_ROUTE__COUNT
} ls_route;
const char *ls_route_name(ls_route r);

#define LS_METHODS 6 /* GET HEAD POST PUT DELETE other */
#define LS_CODES 21  /* the status codes lastseen sends, and "other" */
int ls_method_index(const char *method);
const char *ls_method_name(int i);
int ls_code_index(unsigned status);
const char *ls_code_name(int i);

typedef struct ls_metrics {
    _Atomic int nsources; /* sources register before the daemon is ready (release / acquire) */
    char source_names[LS_SOURCES_MAX][LS_SOURCE_NAME_MAX];
    _Atomic uint64_t activities[LS_SOURCES_MAX];
    _Atomic uint64_t rejected[LS_SOURCES_MAX][LS_REJECT__COUNT];
    ls_histogram lateness;             /* detectedAt - ts of INACTIVITY_EVENTs */
    ls_histogram commit;               /* one store commit of events and urgent records */
    ls_histogram flush;                /* one flush pass, begin to end */
    ls_histogram lock_hold;            /* one hold of the engine lock by the committer */
    _Atomic uint64_t lock_hold_max_ns; /* the longest of them since start (committer writes) */
    _Atomic uint64_t http[LS_ROUTE__COUNT][LS_METHODS][LS_CODES];
    _Atomic uint64_t streams_open, streams_dropped, streams_refused;
} ls_metrics;

/* Sets up the histograms' buckets and zeroes the counters. */
void ls_metrics_init(ls_metrics *m);

/*
 * Registers input `name` (1..15 bytes; the same name returns the same id)
 * and returns its id for the two calls below, or -ENOSPC / -EINVAL.  Call
 * before the daemon is ready (not thread-safe against itself).
 */
int ls_metrics_source(ls_metrics *m, const char *name);

/* Counts n accepted activities / n rejected inputs of source `src`.  Any thread. */
void ls_metrics_activities(ls_metrics *m, int src, uint64_t n);
void ls_metrics_rejected(ls_metrics *m, int src, ls_reject_reason why, uint64_t n);

/* Counts one answered HTTP request.  Any thread. */
void ls_metrics_http(ls_metrics *m, ls_route route, const char *method, unsigned status);

static inline uint64_t ls_metrics_get(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static inline void ls_metrics_add(_Atomic uint64_t *v, uint64_t n)
{
    atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

#endif
