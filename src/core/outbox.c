/*
 * outbox.c - the port for sinks (outbox.h): durable cursors, reads of the
 * committed outbox, watches, and the inline sinks the committer calls.
 *
 * Records.  The committer stores each event with its type, device id and
 * the place of the device's state in the line (store.h, ls_store_event),
 * so a read hands them over as they are: no sink or route parses a line to
 * learn what it is about.  Records of store format 1 hold the line alone;
 * for those (an outbox written before the upgrade, until retention prunes
 * it) the type and device come from the line's fixed prefix
 * (ls_format_event_peek(), the id unescaped with jansson) and the state
 * from a search for its member: one read path per record version.
 *
 * A read copies the events into the caller's buffer inside one LMDB read
 * transaction and closes it, so a sink may take its time with them (a
 * publish, a POST) without pinning the map; the copy is the price.  A
 * scan hands them over in place instead, inside the transaction: for a
 * sink that only copies them on (the events file), one copy less.  An
 * inline sink's scan of the events the commit just wrote reads the
 * committer's batch, still in memory, rather than the map: as cheap as
 * when the committer wrote the file from the batch itself, with no read
 * transaction and no page of the map touched.
 *
 * Cursors.  A sink's acknowledgement is kept in d->sinks under the
 * daemon's lock; the committer writes the moved ones with its next
 * commit, and retention never prunes past the lowest (persist.c).
 *
 * Watches.  Each is an eventfd; the committer writes every one after each
 * commit that moved the committed seq, and at stop.  An eventfd works for
 * both kinds of sink: one that polls (the webhooks' curl_multi_poll) and
 * one that blocks (ls_outbox_wait() is a poll(2) on it).  It replaces a
 * condition variable, which a polling sink cannot wait on.
 *
 * Inline sinks.  The committer moves durable_seq once a commit is on
 * disk, calls the inline sinks (the events file) with it, and only then
 * moves committed_seq, which every other reader waits for, and answers the
 * requests that wait for the commit (persist.c).  So the events file comes
 * first, as it did when the committer wrote it itself, and costs no hop
 * to another thread; an inline sink that cannot deliver simply returns,
 * and the commit goes on without it.
 */
#include "core/outbox.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/log.h"
#include "core/daemon.h"
#include "core/format.h"

#define MOD "outbox"

/* ---- sinks ------------------------------------------------------------- */

int ls_outbox_sink_open(ls_daemon *d, const char *name, uint64_t holds, uint64_t *cursor)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= LS_SINK_NAME_MAX) {
        ls_error(MOD, "sink name of %zu bytes: 1 to %d", n, LS_SINK_NAME_MAX - 1);
        return -EINVAL;
    }
    ls_mutex_lock(&d->lock);
    int id = -ENOSPC;
    for (int i = 0; i < d->nsinks; i++)
        if (!strcmp(d->sinks[i].name, name)) id = -EEXIST;
    if (holds > d->seq && d->committer_running) id = -EBUSY;
    if (id == -ENOSPC && d->nsinks < LS_SINKS_MAX) {
        uint64_t c = ls_store_cursor(d->store, name);
        if (c > d->durable_seq) c = d->durable_seq; /* never past the outbox */
        if (holds > c) c = holds;
        if (holds > d->seq) d->seq = holds; /* seqs continue after the sink's own copy */
        id = d->nsinks++;
        ls_sink *k = &d->sinks[id];
        *k = (ls_sink){.acked = c, .saved = c};
        memcpy(k->name, name, n + 1);
        *cursor = c;
    }
    ls_mutex_unlock(&d->lock);
    if (id < 0) ls_error(MOD, "sink %s: cannot register: %s", name, ls_strerror(id));
    return id;
}

int ls_outbox_sink_inline(ls_daemon *d, int sink, ls_outbox_deliver_cb deliver, void *ud)
{
    int rc = 0;
    ls_mutex_lock(&d->lock);
    if (sink < 0 || sink >= d->nsinks)
        rc = -EINVAL;
    else if (d->committer_running)
        rc = -EBUSY; /* the committer reads these without the lock */
    else {
        d->sinks[sink].deliver = deliver;
        d->sinks[sink].deliver_ud = ud;
    }
    ls_mutex_unlock(&d->lock);
    return rc;
}

void ls_outbox_ack(ls_daemon *d, int sink, uint64_t seq)
{
    if (sink < 0) return;
    ls_mutex_lock(&d->lock);
    if (sink < d->nsinks && seq > d->sinks[sink].acked && seq <= d->durable_seq)
        d->sinks[sink].acked = seq;
    ls_mutex_unlock(&d->lock);
}

uint64_t ls_outbox_committed(ls_daemon *d)
{
    return atomic_load_explicit(&d->committed_seq, memory_order_acquire);
}

uint64_t ls_outbox_first(ls_daemon *d)
{
    return atomic_load_explicit(&d->pruned_upto, memory_order_relaxed) + 1;
}

/* ---- reads ------------------------------------------------------------- */

/* A format-1 record (the line alone): its type, device and state from the
 * line; the id is unescaped into idb. */
static void legacy_fields(ls_outbox_rec *r, char idb[LS_ID_BUF])
{
    const char *dev;
    size_t dev_len;
    int type = ls_format_event_peek(r->line, r->line_len, &dev, &dev_len);
    if (type < 0) return; /* not an event line: the record says nothing more */
    r->type = (ls_event_type)type;
    json_t *s = json_loadb(dev, dev_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (json_is_string(s) && json_string_length(s) > 0 && json_string_length(s) < LS_ID_BUF) {
        r->device_len = json_string_length(s);
        memcpy(idb, json_string_value(s), r->device_len);
        r->device = idb;
    }
    json_decref(s);
    /* ls_format_event() writes "state" last, closing the line after it. */
    static const char key[] = ",\"state\":{";
    const char *p = r->line, *end = r->line + r->line_len;
    for (; p + sizeof(key) - 1 <= end; p++)
        if (*p == key[0] && memcmp(p, key, sizeof(key) - 1) == 0) break;
    if (p + sizeof(key) - 1 <= end && end[-1] == '}') {
        r->state = p + sizeof(key) - 2;
        r->state_len = (size_t)(end - 1 - r->state);
    }
}

/* The record of a stored event, pointing into it (and into idb). */
static void rec_of(const ls_store_event *ev, ls_outbox_rec *r, char idb[LS_ID_BUF])
{
    *r = (ls_outbox_rec){
        .seq = ev->seq, .type = LS_EV__COUNT, .line = ev->line, .line_len = ev->line_len};
    if (ev->type < 0) {
        legacy_fields(r, idb);
        return;
    }
    if (ev->type < LS_EV__COUNT) r->type = (ls_event_type)ev->type;
    if (ev->device) {
        r->device = ev->device;
        r->device_len = ev->device_len;
    }
    if (ev->state_len) {
        r->state = ev->line + ev->state_off;
        r->state_len = ev->state_len;
    }
}

typedef struct read_ctx {
    ls_outbox_rec *rec;
    size_t n;
    char *buf;
    size_t len, cap;
} read_ctx;

/* Copies n bytes into the read buffer; NULL when they do not fit. */
static const char *put(read_ctx *c, const char *p, size_t n)
{
    if (n > c->cap - c->len) return NULL;
    char *at = c->buf + c->len;
    if (n) memcpy(at, p, n);
    c->len += n;
    return at;
}

/* Copies one event out of the map into the caller's buffer. */
static int read_cb(void *ud, const ls_store_event *ev)
{
    read_ctx *c = ud;
    size_t mark = c->len;
    char idb[LS_ID_BUF];
    ls_outbox_rec r, *out = &c->rec[c->n];
    rec_of(ev, &r, idb);
    *out = r;
    if (!(out->line = put(c, r.line, r.line_len))) return -ENOBUFS;
    uintptr_t dp = (uintptr_t)r.device, lp = (uintptr_t)r.line;
    if (r.device && dp >= lp && dp - lp < r.line_len) {
        out->device = out->line + (dp - lp); /* a slice of the line */
    } else if (r.device && !(out->device = put(c, r.device, r.device_len))) {
        c->len = mark;
        return -ENOBUFS;
    }
    if (r.state) out->state = out->line + (r.state - r.line);
    c->n++;
    return 0;
}

int64_t ls_outbox_read(ls_daemon *d, uint64_t after, uint64_t upto, ls_outbox_rec *rec, size_t max,
                       char *buf, size_t buflen)
{
    uint64_t durable = atomic_load_explicit(&d->durable_seq, memory_order_acquire);
    if (upto > durable) upto = durable;
    read_ctx c = {.rec = rec, .buf = buf, .cap = buflen};
    int64_t rc = ls_store_read_outbox(d->store, after, upto, max, read_cb, &c);
    if (rc == -ENOBUFS && c.n == 0) {
        ls_error(MOD, "an event after seq %llu does not fit in a read buffer of %zu bytes",
                 (unsigned long long)after, buflen);
        return -ENOBUFS;
    }
    if (rc < 0 && rc != -ENOBUFS) return rc;
    return (int64_t)c.n;
}

typedef struct scan_ctx {
    ls_outbox_scan_cb cb;
    void *ud;
    uint64_t last; /* a scan of the committer's batch: the last seq handed over */
} scan_ctx;

static int scan_cb(void *ud, const ls_store_event *ev)
{
    scan_ctx *c = ud;
    char idb[LS_ID_BUF];
    ls_outbox_rec r;
    rec_of(ev, &r, idb);
    return c->cb(c->ud, &r);
}

/* A scan of the batch the committer just wrote: notes the last seq. */
static int batch_scan_cb(void *ud, const ls_store_event *ev)
{
    scan_ctx *c = ud;
    int rc = scan_cb(ud, ev);
    if (rc >= 0) c->last = ev->seq;
    return rc;
}

int64_t ls_outbox_scan(ls_daemon *d, uint64_t after, uint64_t upto, size_t max,
                       ls_outbox_scan_cb cb, void *ud)
{
    uint64_t durable = atomic_load_explicit(&d->durable_seq, memory_order_acquire);
    if (upto > durable) upto = durable;
    scan_ctx c = {.cb = cb, .ud = ud};
    /* An inline sink scanning what the commit just wrote: from memory. */
    if (pthread_equal(pthread_self(), d->committer) && d->deliver_batch &&
        after + 1 >= d->deliver_first && after < d->deliver_last) {
        if (after != d->deliver_pos_seq) d->deliver_pos = 0; /* not where the last one stopped */
        c.last = after;
        int64_t n = ls_store_batch_read_outbox(d->deliver_batch, &d->deliver_pos, after, upto, max,
                                               batch_scan_cb, &c);
        d->deliver_pos_seq = c.last;
        return n;
    }
    return ls_store_read_outbox(d->store, after, upto, max, scan_cb, &c);
}

/* ---- watches ----------------------------------------------------------- */

int ls_outbox_watch(ls_daemon *d)
{
    int rc = -ENOSPC;
    ls_mutex_lock(&d->lock);
    if (d->nwatch < LS_OUTBOX_WATCHES) {
        rc = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (rc < 0)
            rc = -errno;
        else
            d->watch_fds[d->nwatch++] = rc;
    }
    ls_mutex_unlock(&d->lock);
    return rc;
}

void ls_outbox_unwatch(ls_daemon *d, int fd)
{
    int found = 0;
    if (fd < 0) return;
    ls_mutex_lock(&d->lock);
    for (int i = 0; i < d->nwatch; i++)
        if (d->watch_fds[i] == fd) {
            d->watch_fds[i] = d->watch_fds[--d->nwatch];
            found = 1;
            break;
        }
    ls_mutex_unlock(&d->lock);
    if (found) close(fd);
}

uint64_t ls_outbox_wait(ls_daemon *d, int fd, uint64_t after, int timeout_ms)
{
    uint64_t c = ls_outbox_committed(d);
    if (c > after) return c;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) > 0 && (p.revents & POLLIN)) {
        uint64_t v;
        ssize_t r = read(fd, &v, sizeof(v));
        (void)r; /* EAGAIN: another reader of the same fd took it */
    }
    return ls_outbox_committed(d);
}

/* ---- the committer's side ---------------------------------------------- */

void ls_outbox__wake_all(ls_daemon *d)
{
    for (int i = 0; i < d->nwatch; i++) {
        uint64_t one = 1;
        ssize_t w = write(d->watch_fds[i], &one, sizeof(one));
        (void)w; /* full (EAGAIN): the reader has a wake-up pending anyway */
    }
}

int64_t ls_outbox__deliver(ls_daemon *d, uint64_t upto, const ls_store_batch *batch, uint64_t first)
{
    LS_ASSERT_THREAD(&d->committer_thread);
    int64_t due = 0;
    if (upto > atomic_load_explicit(&d->durable_seq, memory_order_relaxed))
        atomic_store_explicit(&d->durable_seq, upto, memory_order_release);
    uint64_t durable = atomic_load_explicit(&d->durable_seq, memory_order_relaxed);
    /* The inline sinks are fixed while the committer runs; other sinks may
     * still open (hence the lock for the count). */
    ls_mutex_lock(&d->lock);
    int n = d->nsinks;
    ls_mutex_unlock(&d->lock);
    d->deliver_batch = batch;
    d->deliver_first = first;
    d->deliver_last = upto;
    d->deliver_pos = 0;
    d->deliver_pos_seq = first - 1;
    for (int i = 0; i < n; i++) {
        ls_sink *k = &d->sinks[i];
        if (!k->deliver) continue;
        int64_t at = k->deliver(k->deliver_ud, durable);
        if (at && (!due || at < due)) due = at;
    }
    d->deliver_batch = NULL;
    return due;
}

void ls_outbox__committed(ls_daemon *d, uint64_t upto)
{
    if (upto <= d->committed_seq) return;
    atomic_store_explicit(&d->committed_seq, upto, memory_order_release);
    ls_outbox__wake_all(d);
}

void ls_outbox__close(ls_daemon *d)
{
    for (int i = 0; i < d->nwatch; i++)
        close(d->watch_fds[i]);
    d->nwatch = 0;
}
