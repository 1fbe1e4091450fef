/*
 * outbox.c - the port for sinks (outbox.h): durable cursors, reads of the
 * committed outbox, watches, and the answers that wait for awaited sinks.
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
 * publish, a POST) without pinning the map; the copy is the price.
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
 * Release.  The committer moves durable_seq; what readers see,
 * committed_seq, is released here: the durable events every awaited sink
 * has acknowledged (all of them while there is none).  A request that
 * waits for a commit (ls_daemon_commit_unlock(), the HTTP server's
 * on_commit hook) waits for committed_gen, released at the same point:
 * once the last seq that commit made durable is released.  The commits
 * not yet released wait in a ring of LS_UNRELEASED_MAX; when it is full the
 * newest two are merged (the older generation is then released with the
 * newer one: later, never earlier).  Both only move forward: an awaited
 * sink that takes up waiting again (ls_outbox_sink_await()) holds back
 * what comes after, not what was released meanwhile.
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

/*
 * Under the lock: releases the events and the commits every awaited sink
 * has caught up with, and writes the watches if `woke` (the durable seq
 * moved) or the committed seq moved.  Returns the newly released
 * generation (committed_gen is set and commit_cv broadcast), or 0 if it
 * did not move; the caller then runs the on_commit hook without the lock.
 */
static uint64_t release_locked(ls_daemon *d, int woke)
{
    uint64_t floor = d->durable_seq, gen = 0;
    for (int i = 0; i < d->nsinks; i++)
        if (d->sinks[i].awaited && d->sinks[i].acked < floor) floor = d->sinks[i].acked;
    if (floor > d->committed_seq) {
        atomic_store_explicit(&d->committed_seq, floor, memory_order_release);
        woke = 1;
    }
    if (woke) ls_outbox__wake_all(d);
    while (d->unrel_n && d->unreleased[d->unrel_head].upto <= d->committed_seq) {
        gen = d->unreleased[d->unrel_head].gen;
        d->unrel_head = (d->unrel_head + 1) % LS_UNRELEASED_MAX;
        d->unrel_n--;
    }
    if (gen <= d->committed_gen) return 0;
    atomic_store_explicit(&d->committed_gen, gen, memory_order_release);
    if (d->cvs_ready) pthread_cond_broadcast(&d->commit_cv);
    return gen;
}

/* Leaves the lock, then tells the HTTP server about a released generation. */
static void unlock_and_hook(ls_daemon *d, uint64_t gen)
{
    void (*hook)(void *, uint64_t) = d->on_commit;
    void *ud = d->on_commit_ud;
    ls_mutex_unlock(&d->lock);
    if (gen && hook) hook(ud, gen);
}

int ls_outbox_sink_open(ls_daemon *d, const char *name, int flags, uint64_t holds, uint64_t *cursor)
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
        *k = (ls_sink){.acked = c, .saved = c, .awaited = (flags & LS_OUTBOX_AWAITED) != 0};
        memcpy(k->name, name, n + 1);
        *cursor = c;
    }
    ls_mutex_unlock(&d->lock);
    if (id < 0) ls_error(MOD, "sink %s: cannot register: %s", name, ls_strerror(id));
    return id;
}

void ls_outbox_ack(ls_daemon *d, int sink, uint64_t seq)
{
    uint64_t gen = 0;
    if (sink < 0) return;
    ls_mutex_lock(&d->lock);
    if (sink < d->nsinks && seq > d->sinks[sink].acked && seq <= d->durable_seq) {
        d->sinks[sink].acked = seq;
        if (d->sinks[sink].awaited) gen = release_locked(d, 0);
    }
    unlock_and_hook(d, gen);
}

void ls_outbox_sink_await(ls_daemon *d, int sink, int on)
{
    uint64_t gen = 0;
    if (sink < 0) return;
    ls_mutex_lock(&d->lock);
    if (sink < d->nsinks) {
        d->sinks[sink].awaited = on != 0;
        gen = release_locked(d, 0);
    }
    unlock_and_hook(d, gen);
}

uint64_t ls_outbox_committed(ls_daemon *d)
{
    return atomic_load_explicit(&d->committed_seq, memory_order_acquire);
}

uint64_t ls_outbox_durable(ls_daemon *d)
{
    return atomic_load_explicit(&d->durable_seq, memory_order_acquire);
}

uint64_t ls_outbox_first(ls_daemon *d)
{
    return atomic_load_explicit(&d->pruned_upto, memory_order_relaxed) + 1;
}

/* ---- reads ------------------------------------------------------------- */

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

/* A format-1 record (the line alone): its type, device and state from the
 * line.  Returns 0, or -1 when the id does not fit in the buffer. */
static int legacy_fields(read_ctx *c, ls_outbox_rec *r)
{
    const char *dev;
    size_t dev_len;
    int type = ls_format_event_peek(r->line, r->line_len, &dev, &dev_len);
    if (type < 0) return 0; /* not an event line: the record says nothing more */
    r->type = (ls_event_type)type;
    json_t *s = json_loadb(dev, dev_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    int rc = 0;
    if (json_is_string(s) && json_string_length(s) > 0) {
        r->device = put(c, json_string_value(s), json_string_length(s));
        r->device_len = r->device ? json_string_length(s) : 0;
        rc = r->device ? 0 : -1;
    }
    json_decref(s);
    if (rc < 0) return rc;
    /* ls_format_event() writes "state" last, closing the line after it. */
    static const char key[] = ",\"state\":{";
    const char *p = r->line, *end = r->line + r->line_len;
    for (; p + sizeof(key) - 1 <= end; p++)
        if (*p == key[0] && memcmp(p, key, sizeof(key) - 1) == 0) break;
    if (p + sizeof(key) - 1 <= end && end[-1] == '}') {
        r->state = p + sizeof(key) - 2;
        r->state_len = (size_t)(end - 1 - r->state);
    }
    return 0;
}

static int read_cb(void *ud, const ls_store_event *ev)
{
    read_ctx *c = ud;
    size_t mark = c->len;
    ls_outbox_rec *r = &c->rec[c->n];
    *r = (ls_outbox_rec){.seq = ev->seq, .type = LS_EV__COUNT, .line_len = ev->line_len};
    if (!(r->line = put(c, ev->line, ev->line_len))) return -ENOBUFS;
    if (ev->type < 0) {
        if (legacy_fields(c, r) < 0) {
            c->len = mark;
            return -ENOBUFS;
        }
    } else {
        r->type = ev->type < LS_EV__COUNT ? (ls_event_type)ev->type : LS_EV__COUNT;
        uintptr_t dp = (uintptr_t)ev->device, lp = (uintptr_t)ev->line;
        if (ev->device && dp >= lp && dp - lp < ev->line_len)
            r->device = r->line + (dp - lp); /* a slice of the line */
        else if (ev->device && !(r->device = put(c, ev->device, ev->device_len))) {
            c->len = mark;
            return -ENOBUFS;
        }
        r->device_len = r->device ? ev->device_len : 0;
        if (ev->state_len) {
            r->state = r->line + ev->state_off;
            r->state_len = ev->state_len;
        }
    }
    c->n++;
    return 0;
}

int64_t ls_outbox_read(ls_daemon *d, uint64_t after, uint64_t upto, ls_outbox_rec *rec, size_t max,
                       char *buf, size_t buflen)
{
    uint64_t durable = ls_outbox_durable(d);
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

uint64_t ls_outbox__committed(ls_daemon *d, uint64_t gen, uint64_t upto, int ok)
{
    int woke = ok && upto > d->durable_seq;
    if (woke) atomic_store_explicit(&d->durable_seq, upto, memory_order_release);
    ls_unreleased u = {.gen = gen, .upto = ok ? upto : 0};
    if (d->unrel_n == LS_UNRELEASED_MAX) { /* merged into the newest: released with it */
        d->unreleased[(d->unrel_head + d->unrel_n - 1) % LS_UNRELEASED_MAX] = u;
    } else {
        d->unreleased[(d->unrel_head + d->unrel_n) % LS_UNRELEASED_MAX] = u;
        d->unrel_n++;
    }
    return release_locked(d, woke);
}

void ls_outbox__close(ls_daemon *d)
{
    for (int i = 0; i < d->nwatch; i++)
        close(d->watch_fds[i]);
    d->nwatch = 0;
}
