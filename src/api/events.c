/*
 * events.c - GET /api/v1/events: committed events read back from the
 * outbox, and the query parameters it shares with the event stream.
 *
 * The outbox is read through its port (core/outbox.h): LMDB, in its own
 * read-only transaction, so a replay never takes the engine lock and never
 * waits for the committer.  Only events up to ls_outbox_committed() are
 * returned: those are on disk and have been (or are being) handed to the
 * sinks, so a reader never sees an event that a crash could still take
 * back.
 *
 * Filters compare the type and device each record carries (no JSON
 * parsing), and a request looks at most at SCAN_MAX events, so a rare
 * device or type costs a bounded amount of work per request; the `next`
 * cursor says where the next request continues.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define SCAN_MAX 100000 /* events looked at per request */
#define READ_CHUNK 1024 /* events per outbox read */
#define READ_BUF ((size_t)1 << 20)
#define SEQ_MAX ((uint64_t)INT64_MAX)

int ls_event_filter_match(const ls_event_filter *f, const ls_outbox_rec *r)
{
    if (r->type < LS_EV__COUNT && !(f->types & (INT64_C(1) << r->type))) return 0;
    return f->dev_len == 0 || !r->device ||
           (r->device_len == f->dev_len && memcmp(r->device, f->dev, f->dev_len) == 0);
}

int ls_api_event_query(ls_req *r, ls_event_filter *f, uint64_t *after, int *has_after,
                       enum MHD_Result *ok)
{
    char abuf[32], tbuf[256], dbuf[LS_ID_MAX * 3 + 1];
    int ha = ls_api_arg(r, "after", abuf, sizeof(abuf));
    int ht = ls_api_arg(r, "type", tbuf, sizeof(tbuf));
    int hd = ls_api_arg(r, "device", dbuf, sizeof(dbuf));

    memset(f, 0, sizeof(*f));
    f->types = ((int64_t)1 << LS_EV__COUNT) - 1; /* every type unless type= says */
    *after = 0;
    *has_after = ha > 0;
    if (ha < 0 || (ha && ls_api_parse_u64(abuf, 0, SEQ_MAX, after) < 0)) {
        *ok =
            ls_api_error(r, 422, "invalid", "after must be an event seq: an integer from 0 to %llu",
                         (unsigned long long)SEQ_MAX);
        return -1;
    }
    if (ht < 0 || (ht && ls_parse_event_types(tbuf, &f->types) < 0)) {
        *ok = ls_api_error(r, 422, "invalid",
                           "type must be one or more of ACTIVITY_EVENT, INACTIVITY_EVENT, "
                           "CONNECT_EVENT, DISCONNECT_EVENT, separated by commas");
        return -1;
    }
    if (hd) {
        const char *why = hd < 0 ? "malformed percent-encoding" : ls_id_check(dbuf, strlen(dbuf));
        if (why) {
            *ok = ls_api_error(r, 422, "invalid", "device must be a device id: %s", why);
            return -1;
        }
        f->dev_len = strlen(dbuf); /* at most LS_ID_MAX: ls_id_check() */
        memcpy(f->dev, dbuf, f->dev_len);
    }
    return 0;
}

typedef struct page_state {
    const ls_event_filter *f;
    ls_buf *b;
    uint64_t committed, next, limit, n, scanned;
    int stop;
} page_state;

/* Looks at one event; sets stop once the page is full. */
static void page_one(page_state *st, const ls_outbox_rec *r)
{
    st->next = r->seq;
    st->scanned++;
    if (ls_event_filter_match(st->f, r)) {
        if (st->n++) ls_buf_putc(st->b, ',');
        ls_buf_append(st->b, r->line, r->line_len);
        if (st->n >= st->limit) st->stop = 1;
    }
}

enum MHD_Result ls_api_events(ls_req *r)
{
    ls_event_filter f;
    uint64_t after, limit = LIMIT_DEFAULT;
    int has_after;
    enum MHD_Result ok;
    char lbuf[32];

    if (ls_api_event_query(r, &f, &after, &has_after, &ok) < 0) return ok;
    int hl = ls_api_arg(r, "limit", lbuf, sizeof(lbuf));
    if (hl < 0 || (hl && ls_api_parse_u64(lbuf, 1, LIMIT_MAX, &limit) < 0))
        return ls_api_error(r, 422, "invalid", "limit must be an integer between 1 and %d",
                            LIMIT_MAX);

    struct ls_daemon *d = r->d;
    ls_outbox_rec *rec = malloc(sizeof(*rec) * READ_CHUNK);
    char *buf = malloc(READ_BUF);
    if (!rec || !buf) {
        free(rec);
        free(buf);
        return ls_api_error(r, 503, "unavailable", "out of memory");
    }
    ls_buf b;
    ls_buf_init(&b, (size_t)16 << 20);
    ls_buf_append(&b, "{\"events\":[", 11);
    page_state st = {
        .f = &f, .b = &b, .committed = ls_outbox_committed(d), .next = after, .limit = limit};
    while (!st.stop && st.next < st.committed && st.scanned < SCAN_MAX) {
        /* Read what the page has room for, at least a chunk's worth when filtered. */
        size_t want = f.dev_len || f.types != ((int64_t)1 << LS_EV__COUNT) - 1
                          ? READ_CHUNK
                          : (size_t)(limit - st.n);
        if (want > READ_CHUNK) want = READ_CHUNK;
        int64_t n = ls_outbox_read(d, st.next, st.committed, rec, want, buf, READ_BUF);
        if (n < 0) {
            free(rec);
            free(buf);
            ls_buf_free(&b);
            return ls_api_error(r, 500, "internal", "the outbox cannot be read");
        }
        if (n == 0) st.next = st.committed; /* nothing left up to it */
        for (int64_t i = 0; i < n && !st.stop; i++)
            page_one(&st, &rec[i]);
    }
    free(rec);
    free(buf);
    uint64_t first = ls_outbox_first(d);
    ls_buf_printf(&b, "],\"next\":%llu,\"more\":%s,\"firstSeq\":%llu,\"committedSeq\":%llu}",
                  (unsigned long long)st.next, st.next < st.committed ? "true" : "false",
                  (unsigned long long)first, (unsigned long long)st.committed);
    if (b.overflow) {
        ls_buf_free(&b);
        return ls_api_error(r, 500, "internal", "the page does not fit in memory");
    }
    ok = ls_api_respond(r, 200, &b);
    ls_buf_free(&b);
    return ok;
}
