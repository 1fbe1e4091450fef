/*
 * ui.c - the two read-only queries the dashboard needs beyond the device
 * routes: the fleet's recent history and the recent events, newest first.
 *
 * GET /api/v1/stats/history serves the ring of history.c: a sample of the
 * fleet counts every 10 s for the last hour, plus the counts now, so a
 * chart can show the last hour the moment a page opens.
 *
 * GET /api/v1/events/recent reads the committed event outbox backwards
 * (through core/outbox.h): the newest events first, where GET
 * /api/v1/events (events.c) reads forwards from a cursor.  It takes the
 * same `type`, `device` and `after` filters (ls_api_event_query(), matched
 * on the type and device each record carries).  The outbox is
 * indexed by seq only, so a filtered query scans windows of RECENT_WINDOW
 * events downwards from the newest (or from `before`), and stops after
 * RECENT_SCAN_MAX events per request; `next` says where to go on.  The
 * lines are returned as stored, so an event reads exactly as in
 * events.jsonl.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "base/clock.h"
#include "base/err.h"
#include "core/outbox.h"
#include "core/service.h"

#define RECENT_LIMIT_DEFAULT 50
#define RECENT_LIMIT_MAX 500
#define RECENT_WINDOW 1024
#define RECENT_SCAN_MAX 100000
#define RECENT_BODY_MAX ((size_t)16 << 20)
#define RECENT_READ_BUF ((size_t)1 << 20)

static enum MHD_Result respond_buf(ls_req *r, unsigned status, ls_buf *b)
{
    enum MHD_Result ok = b->overflow ? ls_api_error(r, 500, "internal", "response too large")
                                     : ls_api_respond(r, status, b);
    ls_buf_free(b);
    return ok;
}

enum MHD_Result ls_api_stats_history(ls_req *r)
{
    ls_history_sample *s = malloc(sizeof(*s) * LS_HISTORY_LEN);
    if (!s) return ls_api_error(r, 503, "unavailable", "out of memory");
    ls_engine_stats st;
    size_t n = ls_service_history(r->d, s, LS_HISTORY_LEN, &st);
    int64_t now = ls_clock_now().wall;

    ls_buf b;
    ls_buf_init(&b, (size_t)1 << 20);
    ls_buf_printf(&b, "{\"stepMs\":%d,\"samples\":[", LS_HISTORY_STEP_MS);
    for (size_t i = 0; i < n; i++)
        ls_buf_printf(&b, "%s{\"t\":%lld,\"devices\":%llu,\"active\":%llu,\"inactive\":%llu}",
                      i ? "," : "", (long long)s[i].t, (unsigned long long)s[i].devices,
                      (unsigned long long)s[i].active, (unsigned long long)s[i].inactive);
    ls_buf_printf(&b, "],\"now\":{\"t\":%lld,\"devices\":%llu,\"active\":%llu,\"inactive\":%llu}}",
                  (long long)now, (unsigned long long)st.devices, (unsigned long long)st.active,
                  (unsigned long long)st.inactive);
    free(s);
    return respond_buf(r, 200, &b);
}

/* What one request looks for, and what it found in the current window. */
typedef struct recent_q {
    ls_event_filter f;
    /* Matches of the window, in seq order: offsets into `lines`. */
    ls_buf lines;
    size_t nmatch;
    size_t off[RECENT_WINDOW + 1];
    uint64_t seq[RECENT_WINDOW];
    int oom;
    ls_outbox_rec rec[RECENT_WINDOW]; /* one read */
    char buf[RECENT_READ_BUF];
} recent_q;

/* Keeps the window's events (lo, hi] that match; 0, or -ENOMEM. */
static int recent_window(struct ls_daemon *d, recent_q *q, uint64_t lo, uint64_t hi)
{
    q->nmatch = 0;
    ls_buf_reset(&q->lines);
    while (lo < hi) {
        int64_t n = ls_outbox_read(d, lo, hi, q->rec, (size_t)(hi - lo), q->buf, RECENT_READ_BUF);
        if (n <= 0) return (int)n;
        for (int64_t i = 0; i < n; i++) {
            const ls_outbox_rec *r = &q->rec[i];
            if (!ls_event_filter_match(&q->f, r)) continue;
            q->off[q->nmatch] = q->lines.len;
            q->seq[q->nmatch] = r->seq;
            if (ls_buf_append(&q->lines, r->line, r->line_len) < 0) {
                q->oom = 1;
                return -ENOMEM;
            }
            q->nmatch++;
            q->off[q->nmatch] = q->lines.len;
        }
        lo = q->rec[n - 1].seq; /* the buffer may have held fewer than asked */
    }
    return 0;
}

/*
 * Appends to b, comma-separated and newest first, up to `limit` events that
 * match q->f with after < seq < before (before 0: any), scanning windows of
 * the outbox downwards from the newest committed event.  *next gets the
 * `before` to go on with, 0 when nothing older is left.  0 or a negative
 * store error.
 */
static int recent_scan(struct ls_daemon *d, recent_q *q, uint64_t after, uint64_t limit,
                       uint64_t before, ls_buf *b, uint64_t *next)
{
    uint64_t committed = ls_outbox_committed(d);
    uint64_t first = ls_outbox_first(d);
    uint64_t hi = before && before - 1 < committed ? before - 1 : committed;
    uint64_t floor = first > after + 1 ? first : after + 1; /* the lowest seq wanted */
    uint64_t scanned = 0, found = 0;
    *next = 0;
    while (hi >= floor && found < limit && scanned < RECENT_SCAN_MAX) {
        uint64_t w = hi - floor + 1 < RECENT_WINDOW ? hi - floor + 1 : RECENT_WINDOW;
        uint64_t lo = hi - w; /* this window: (lo, hi] */
        int rc = recent_window(d, q, lo, hi);
        if (rc < 0) return rc;
        scanned += w;
        size_t i = q->nmatch;
        while (i > 0 && found < limit) {
            i--;
            if (found++) ls_buf_putc(b, ',');
            ls_buf_append(b, q->lines.p + q->off[i], q->off[i + 1] - q->off[i]);
        }
        /* Matches left in this window: go on below the last one taken. */
        *next = i > 0 ? q->seq[i] : lo + 1;
        hi = lo;
    }
    if (*next <= floor) *next = 0; /* nothing older is left to look at */
    return 0;
}

enum MHD_Result ls_api_events_recent(ls_req *r)
{
    recent_q *q = calloc(1, sizeof(*q));
    if (!q) return ls_api_error(r, 503, "unavailable", "out of memory");
    uint64_t after = 0, limit = RECENT_LIMIT_DEFAULT, before = 0;
    int has_after;
    enum MHD_Result res;
    if (ls_api_event_query(r, &q->f, &after, &has_after, &res) < 0) {
        free(q);
        return res;
    }
    char lbuf[32], bbuf[32];
    int hl = ls_api_arg(r, "limit", lbuf, sizeof(lbuf));
    int hb = ls_api_arg(r, "before", bbuf, sizeof(bbuf));
    if (hl < 0 || (hl && ls_api_parse_u64(lbuf, 1, RECENT_LIMIT_MAX, &limit) < 0)) {
        free(q);
        return ls_api_error(r, 422, "invalid", "limit must be an integer between 1 and %d",
                            RECENT_LIMIT_MAX);
    }
    if (hb < 0 || (hb && ls_api_parse_u64(bbuf, 1, (uint64_t)INT64_MAX, &before) < 0)) {
        free(q);
        return ls_api_error(r, 422, "invalid",
                            "before must be an event seq, as returned in \"next\"");
    }

    ls_buf_init(&q->lines, RECENT_BODY_MAX);
    ls_buf b;
    ls_buf_init(&b, RECENT_BODY_MAX + 4096);
    ls_buf_append(&b, "{\"events\":[", 11);
    uint64_t next = 0;
    int rc = recent_scan(r->d, q, after, limit, before, &b, &next);
    ls_buf_free(&q->lines);
    free(q);
    if (rc < 0) {
        ls_buf_free(&b);
        return ls_api_error(r, 500, "internal", "reading the outbox: %s", ls_strerror(rc));
    }
    if (next)
        ls_buf_printf(&b, "],\"next\":\"%llu\"}", (unsigned long long)next);
    else
        ls_buf_append(&b, "],\"next\":null}", 14);
    return respond_buf(r, 200, &b);
}
