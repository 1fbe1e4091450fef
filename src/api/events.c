/*
 * events.c - GET /api/v1/events: committed events read back from the
 * outbox, and the query parameters it shares with the event stream.
 *
 * The outbox is LMDB, read in its own read-only transaction, so a replay
 * never takes the engine lock and never waits for the committer.  Only
 * events up to ls_persist_committed() are returned: those are on disk
 * and have been (or are being) handed to the other sinks, so a reader
 * never sees an event that a crash could still take back.
 *
 * Filters are applied to the raw lines through ls_format_event_peek()
 * (type and device from the line's fixed prefix, no JSON parsing), and a
 * request looks at most at SCAN_MAX events, so a rare device or type costs
 * a bounded amount of work per request; the `next` cursor says where the
 * next request continues.
 */
#include <string.h>

#include "api/api.h"
#include "core/persist.h"
#include "core/format.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define SCAN_MAX 100000 /* events looked at per request */
#define READ_CHUNK 4096 /* events per outbox read */
#define SEQ_MAX ((uint64_t)INT64_MAX)

int ls_event_filter_match(const ls_event_filter *f, const char *line, size_t len, int *type)
{
    const char *dev;
    size_t dev_len;
    *type = ls_format_event_peek(line, len, &dev, &dev_len);
    if (*type < 0) return 1; /* unknown shape: never hide an event */
    if (!(f->types & (INT64_C(1) << *type))) return 0;
    return f->dev_len == 0 || (dev_len == f->dev_len && memcmp(dev, f->dev, dev_len) == 0);
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
        ls_buf b;
        ls_buf_init(&b, sizeof(f->dev));
        if (ls_buf_json_str(&b, dbuf, strlen(dbuf)) < 0 || b.len >= sizeof(f->dev)) {
            ls_buf_free(&b);
            *ok = ls_api_error(r, 422, "invalid", "device must be a device id");
            return -1;
        }
        memcpy(f->dev, b.p, b.len);
        f->dev_len = b.len;
        ls_buf_free(&b);
    }
    return 0;
}

typedef struct page_state {
    const ls_event_filter *f;
    ls_buf *b;
    uint64_t committed, next, limit, n, scanned;
    int stop;
} page_state;

static int page_cb(void *ud, uint64_t seq, const char *line, size_t len)
{
    page_state *st = ud;
    int type;
    if (seq > st->committed) {
        st->stop = 1;
        return -1;
    }
    st->next = seq;
    st->scanned++;
    if (ls_event_filter_match(st->f, line, len, &type)) {
        if (st->n++) ls_buf_putc(st->b, ',');
        ls_buf_append(st->b, line, len);
        if (st->n >= st->limit) {
            st->stop = 1;
            return -1;
        }
    }
    return 0;
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

    ls_daemon *d = r->d;
    ls_buf b;
    ls_buf_init(&b, (size_t)16 << 20);
    ls_buf_append(&b, "{\"events\":[", 11);
    page_state st = {
        .f = &f, .b = &b, .committed = ls_persist_committed(d), .next = after, .limit = limit};
    while (!st.stop && st.next < st.committed && st.scanned < SCAN_MAX) {
        uint64_t before = st.next;
        int64_t n = ls_store_read_events(d->store, st.next, READ_CHUNK, page_cb, &st);
        if (n < 0 && !st.stop) {
            ls_buf_free(&b);
            return ls_api_error(r, 500, "internal", "the outbox cannot be read");
        }
        if (n == 0 && st.next == before) st.next = st.committed; /* nothing left up to it */
    }
    uint64_t first = atomic_load_explicit(&d->pruned_upto, memory_order_relaxed) + 1;
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
