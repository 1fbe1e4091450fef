/*
 * eventlog.c - append-only JSON-lines event log, a sink of the outbox.
 *
 * The sink.  An inline sink of the outbox (core/outbox.h): the committer
 * calls it right after each commit, before the events are committed for
 * anyone else and before the requests waiting for that commit are
 * answered, so a client that got its answer, or saw an event anywhere
 * else, finds the event in the file.  It scans the events after its cursor
 * in place (ls_outbox_scan(): no copy but the one into the pending buffer),
 * in chunks of at most READ_MAX events or FLUSH_AT bytes, writes each
 * chunk with one write(2) once the scan's read transaction is over, and
 * acknowledges what write(2) accepted; the cursor "events.jsonl" is saved
 * with the next commit.  Inline rather than on a thread of its own: the
 * hop to another thread and the read back from the map cost about 15 %
 * of the events per second the core could commit and write (core/outbox.h),
 * and a local file is quick to write.
 *
 * The file also knows its own last seq (below), so the sink opens with
 * that as the seq it holds: after a crash between writing lines and
 * saving the cursor, what the file already has is skipped (at least once,
 * in order, and in practice exactly once for the file), and the daemon's
 * seqs continue after the file's last line.  At start-up, before the
 * committer runs and before the API opens, the file is caught up with
 * what the store committed but never reached it.  Knobs: events.file,
 * events.stdout.
 *
 * Each event becomes one line `{"seq":..,...}\n`.  Lines are formatted into
 * a buffer as the committer hands them over and written with one write(2)
 * per flush; a burst (a fleet expiring in one tick) is written every 1 MiB.
 * The buffer is capped at 256 MiB; a line that does not fit is refused and
 * offered again by the caller.
 *
 * seq strictly increases across restarts: at open, the tail of the file is
 * read back to find the last complete line and its seq.  A last line
 * without its newline is a torn write from a crash and is truncated away.
 *
 * Failures.  The log is not the durable copy of the events (the store's
 * outbox is), so it keeps no backlog of its own: when a write fails (disk
 * full, an I/O error, a path that points at a device that refuses writes)
 * the lines not yet complete in the file are dropped, `seq` goes back to
 * the last seq known to be in the file, and the log is marked failed.  The
 * caller retries later with ls_eventlog_reopen(), which opens the path
 * afresh and reads its tail again, and then offers the missing lines again
 * from the outbox.  Reopening the path rather than retrying on the old
 * descriptor is what lets an operator repair the situation by replacing
 * the file, and it cuts a line that a short write left torn.
 *
 * Rotation.  ls_eventlog_moved() tells whether the path still names the
 * open file (one stat(2)); the caller checks it now and then and reopens,
 * so `mv events.jsonl events.jsonl.1` is enough to rotate: the next lines
 * go to a new events.jsonl, and seq continues after the old file's last.
 */
#include "out/eventlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "core/outbox.h"
#include "core/prom.h"
#include "core/stats.h"

#define TAIL_MAX 65536
#define PENDING_MAX ((size_t)256 << 20)
#define FLUSH_AT ((size_t)1 << 20)
#define SINK_NAME "events.jsonl" /* the cursor's key in the store, whatever events.file says */
#define READ_MAX 4096            /* events per outbox scan (or FLUSH_AT bytes of lines) */
#define RETRY_MS 1000            /* a failed file is opened again this often */
#define CHECK_MS 1000            /* and the path checked for a rename this often */

/*
 * Finds the seq of the last complete line of the open file `fd` (0 if it has
 * none) and truncates a torn tail.  A last line that is not an event is
 * -EINVAL (logged at `level`): the next seq cannot be known.
 */
static int recover_tail(int fd, const char *path, int level, uint64_t *seq_out)
{
    struct stat st;
    *seq_out = 0;
    if (fstat(fd, &st) < 0) return -errno;
    off_t size = st.st_size;
    if (size == 0) return 0;
    size_t n = size < TAIL_MAX ? (size_t)size : TAIL_MAX;
    char *tail = malloc(n + 1);
    if (!tail) return -ENOMEM;
    ssize_t got = pread(fd, tail, n, size - (off_t)n);
    if (got != (ssize_t)n) {
        free(tail);
        return got < 0 ? -errno : -EIO;
    }
    /* end = one past the last newline */
    size_t end = n;
    while (end > 0 && tail[end - 1] != '\n')
        end--;
    if (end < n) {
        ls_warn("eventlog", "%s: cutting a torn last line of %zu bytes", path, n - end);
        if (ftruncate(fd, size - (off_t)(n - end)) < 0) {
            int err = errno;
            free(tail);
            return -err;
        }
    }
    if (end > 0) {
        size_t start = end - 1;
        while (start > 0 && tail[start - 1] != '\n')
            start--;
        json_error_t jerr;
        json_t *line = json_loadb(tail + start, end - 1 - start, 0, &jerr);
        json_t *seq = line ? json_object_get(line, "seq") : NULL;
        if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
            ls_log(level, "eventlog",
                   "%s: last line is not an event (%s); refusing to guess the next seq", path,
                   line ? "no seq" : jerr.text);
            json_decref(line);
            free(tail);
            return -EINVAL;
        }
        *seq_out = (uint64_t)json_integer_value(seq);
        json_decref(line);
    }
    free(tail);
    return 0;
}

/* Opens l->path into l->fd and recovers its tail.  0 or a negative errno, logged at `level`. */
static int open_path(ls_eventlog *l, int level, uint64_t *file_seq)
{
    int fd = open(l->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        ls_log(level, "eventlog", "cannot open %s: %s", l->path, strerror(err));
        return -err;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : recover_tail(fd, l->path, level, file_seq);
    if (rc < 0) {
        if (rc != -EINVAL)
            ls_log(level, "eventlog", "cannot read %s: %s", l->path, ls_strerror(rc));
        close(fd);
        return rc;
    }
    l->fd = fd;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    return 0;
}

int ls_eventlog_open(ls_eventlog *l, const char *path, int to_stdout)
{
    *l = (ls_eventlog){.fd = -1, .to_stdout = to_stdout};
    ls_buf_init(&l->pending, PENDING_MAX);
    if (snprintf(l->path, sizeof(l->path), "%s", path) >= (int)sizeof(l->path)) {
        ls_error("eventlog", "events file path too long (%zu bytes)", strlen(path));
        return -ENAMETOOLONG;
    }
    uint64_t file_seq = 0;
    int rc = open_path(l, LS_LOG_ERROR, &file_seq);
    if (rc < 0) return rc;
    l->seq = file_seq;
    l->written = file_seq;
    return 0;
}

int ls_eventlog_append_line(ls_eventlog *l, uint64_t seq, const char *line, size_t len)
{
    if (seq <= l->seq) return 0; /* already in the file (or buffered) */
    if (l->failed) return -EIO;
    size_t mark = l->pending.len;
    int rc;
    if ((rc = ls_buf_append(&l->pending, line, len)) < 0 ||
        (rc = ls_buf_putc(&l->pending, '\n')) < 0) {
        l->pending.len = mark; /* never a partial line */
        l->pending.overflow = 0;
        return rc;
    }
    l->seq = seq;
    /* A tick that expires a whole fleet writes as it goes, in 1 MiB pieces. */
    if (l->pending.len >= FLUSH_AT && (rc = ls_eventlog_flush(l)) < 0) return rc;
    return 0;
}

static int write_all(int fd, const char *p, size_t n, size_t *done)
{
    *done = 0;
    while (*done < n) {
        ssize_t w = write(fd, p + *done, n - *done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -EIO;
        *done += (size_t)w;
    }
    return 0;
}

int ls_eventlog_flush(ls_eventlog *l)
{
    if (l->failed || l->fd < 0) return -EIO;
    if (l->pending.len == 0) {
        l->written = l->seq;
        return 0;
    }
    size_t done;
    int rc = write_all(l->fd, l->pending.p, l->pending.len, &done);
    /* Mirror complete lines only: a torn one is written again whole. */
    size_t whole = done;
    while (whole > 0 && l->pending.p[whole - 1] != '\n')
        whole--;
    if (l->to_stdout && whole) {
        size_t ignored;
        write_all(STDOUT_FILENO, l->pending.p, whole, &ignored);
    }
    l->pending.len = 0;
    if (rc == 0) {
        if (l->outage)
            ls_info("eventlog", "%s: writing again, from seq %llu on", l->path,
                    (unsigned long long)l->written + 1);
        l->outage = 0;
        l->written = l->seq;
        return 0;
    }
    atomic_fetch_add_explicit(&l->write_errors, 1, memory_order_relaxed);
    if (!l->outage)
        ls_error("eventlog",
                 "write to %s failed: %s; retrying, events after seq %llu will follow in order",
                 l->path, ls_strerror(rc), (unsigned long long)l->written);
    else
        ls_debug("eventlog", "write to %s failed again: %s", l->path, ls_strerror(rc));
    l->outage = 1;
    l->failed = 1;
    l->seq = l->written;
    return rc;
}

int ls_eventlog_reopen(ls_eventlog *l)
{
    uint64_t old_seq = 0, file_seq = 0;
    if (l->fd >= 0) {
        /* A short write may have left a torn line in the old file: cut it,
         * and count the complete lines it got. */
        if (l->failed && recover_tail(l->fd, l->path, LS_LOG_DEBUG, &old_seq) < 0) old_seq = 0;
        close(l->fd);
        l->fd = -1;
    }
    if (old_seq > l->written) l->written = old_seq;
    l->pending.len = 0;
    l->seq = l->written;
    int rc = open_path(l, l->outage ? LS_LOG_DEBUG : LS_LOG_ERROR, &file_seq);
    if (rc < 0) {
        atomic_fetch_add_explicit(&l->write_errors, 1, memory_order_relaxed);
        l->failed = 1;
        l->outage = 1;
        return rc;
    }
    if (file_seq > l->written) l->written = file_seq;
    l->seq = l->written;
    l->failed = 0;
    l->reopens++;
    if (!l->outage)
        ls_info("eventlog", "%s was renamed or replaced: reopened, continuing after seq %llu",
                l->path, (unsigned long long)l->written);
    return 0;
}

int ls_eventlog_moved(const ls_eventlog *l)
{
    struct stat st;
    if (l->fd < 0 || stat(l->path, &st) < 0) return 1;
    return st.st_dev != l->dev || st.st_ino != l->ino;
}

void ls_eventlog_close(ls_eventlog *l)
{
    if (l->fd >= 0) {
        ls_eventlog_flush(l);
        close(l->fd);
    }
    ls_buf_free(&l->pending);
    l->fd = -1;
}

/* ---- the sink ---------------------------------------------------------- */

struct ls_eventlog_sink {
    struct ls_daemon *d;
    ls_eventlog log;
    int sink;         /* the outbox sink */
    uint64_t cursor;  /* last seq the file is known to hold */
    uint64_t acked;   /* last seq acknowledged: the cursor, but never past `durable` */
    int64_t retry_at; /* mono ms: next reopen of a failed file */
    int64_t check_at; /* mono ms: next check for a rename */
};

static int64_t mono_ms(void)
{
    return ls_clock_mono_ns() / 1000000;
}

/* The file failed: it is retried in a while. */
static void failing(ls_eventlog_sink *s, int64_t now)
{
    s->cursor = s->log.written;
    s->retry_at = now + RETRY_MS;
}

/* An ls_outbox_scan() of lines into the pending buffer, up to FLUSH_AT. */
typedef struct append_ctx {
    ls_eventlog *l;
    size_t n;
    int full; /* stopped: the lines make FLUSH_AT */
} append_ctx;

static int append_cb(void *ud, const ls_outbox_rec *r)
{
    append_ctx *ac = ud;
    ls_eventlog *l = ac->l;
    /* No write(2) inside the read transaction: stop short of FLUSH_AT. */
    if (ac->n && l->pending.len + r->line_len + 1 >= FLUSH_AT) {
        ac->full = 1;
        return -1;
    }
    if (ls_eventlog_append_line(l, r->seq, r->line, r->line_len) < 0) {
        ac->full = 1; /* the buffer refused it: write what is there first */
        return -1;
    }
    ac->n++;
    return 0;
}

/*
 * The inline delivery (ls_outbox_deliver_cb): writes the events after the
 * cursor, up to `durable`, and acknowledges them.  A failed write rewinds
 * the cursor to what the file holds; the next call at or after retry_at
 * (it returns that time, for the committer to call it then) opens the
 * path again and writes the missing events from the outbox, so the file
 * gets every event once, in seq order, however long the outage.  Every
 * CHECK_MS it also opens the path again if it was renamed away
 * (rotation).  Committer thread (or start-up, before it runs).
 */
static int64_t deliver_cb(void *ud, uint64_t durable)
{
    ls_eventlog_sink *s = ud;
    ls_eventlog *l = &s->log;
    int64_t now = mono_ms();
    if (l->failed) {
        if (now < s->retry_at) return s->retry_at;
        if (ls_eventlog_reopen(l) < 0) {
            failing(s, now);
            return s->retry_at;
        }
        s->cursor = l->written;
    } else if (now >= s->check_at) {
        s->check_at = now + CHECK_MS;
        if (ls_eventlog_moved(l)) {
            /* Pending lines go to the old file first: they belong before the rename. */
            if (ls_eventlog_flush(l) == 0) ls_eventlog_reopen(l);
            s->cursor = l->written;
            if (l->failed) {
                failing(s, now);
                return s->retry_at;
            }
        }
    }
    while (s->cursor < durable) {
        append_ctx ac = {.l = l};
        int64_t n = ls_outbox_scan(s->d, s->cursor, durable, READ_MAX, append_cb, &ac);
        if (n < 0 && !ac.full) { /* tried again with the next commit */
            ls_error("eventlog", "cannot read events after seq %llu from the outbox",
                     (unsigned long long)s->cursor);
            break;
        }
        if (ac.n == 0 && !ac.full) { /* none left up to durable (pruned): nothing to write */
            s->cursor = durable;
            break;
        }
        if (ls_eventlog_flush(l) < 0) {
            failing(s, now);
            break;
        }
        uint64_t before = s->cursor;
        s->cursor = l->written; /* lines the file had already were skipped */
        if (s->cursor <= before) break;
    }
    uint64_t ack = s->cursor < durable ? s->cursor : durable;
    if (ack > s->acked) {
        s->acked = ack;
        ls_outbox_ack(s->d, s->sink, ack);
    }
    return l->failed ? s->retry_at : 0;
}

static void stats_json_cb(void *ud, ls_buf *b, uint64_t committed)
{
    ls_eventlog_sink *s = ud;
    (void)committed;
    ls_buf_printf(
        b, "%llu",
        (unsigned long long)atomic_load_explicit(&s->log.write_errors, memory_order_relaxed));
}

static void stats_prom_cb(void *ud, ls_buf *b, uint64_t committed)
{
    ls_eventlog_sink *s = ud;
    (void)committed;
    ls_prom_family(b, "lastseen_event_log_write_errors_total", "counter",
                   "Failed writes to events.jsonl.");
    ls_prom_u64(b, "lastseen_event_log_write_errors_total", NULL,
                atomic_load_explicit(&s->log.write_errors, memory_order_relaxed));
}

static void sink_free(ls_eventlog_sink *s)
{
    ls_outbox_sink_inline(s->d, s->sink, NULL, NULL); /* the committer has stopped */
    ls_eventlog_close(&s->log);
    free(s);
}

int ls_eventlog_sink_start(ls_eventlog_sink **out, struct ls_daemon *d, const ls_config *cfg)
{
    char path[LS_EVENTLOG_PATH_MAX];
    int rc;
    *out = NULL;
    if (snprintf(path, sizeof(path), "%s%s%s", cfg->events_file[0] == '/' ? "" : cfg->data_dir,
                 cfg->events_file[0] == '/' ? "" : "/", cfg->events_file) >= (int)sizeof(path)) {
        ls_error("eventlog", "events.file: path too long");
        return -ENAMETOOLONG;
    }
    ls_eventlog_sink *s = calloc(1, sizeof(*s));
    if (!s) return -ENOMEM;
    s->d = d;
    s->sink = -1;
    if ((rc = ls_eventlog_open(&s->log, path, cfg->events_stdout)) < 0 ||
        (rc = s->sink = ls_outbox_sink_open(d, SINK_NAME, s->log.seq, &s->cursor)) < 0 ||
        (rc = ls_outbox_sink_inline(d, s->sink, deliver_cb, s)) < 0) {
        sink_free(s);
        return rc;
    }
    s->acked = s->cursor;
    s->check_at = mono_ms() + CHECK_MS;
    /* Catch the file up with what the store committed but never delivered
     * (the committer does not run yet: what is on disk is committed). */
    deliver_cb(s, ls_outbox_committed(d));
    *out = s;
    ls_stats_port port = {
        .key = "eventLogWriteErrors", .json = stats_json_cb, .prom = stats_prom_cb, .ud = s};
    return ls_stats_register(d, &port);
}

void ls_eventlog_sink_stop(ls_eventlog_sink *s)
{
    if (s) sink_free(s);
}
