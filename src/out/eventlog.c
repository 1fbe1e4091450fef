/*
 * eventlog.c - append-only JSON-lines event log.
 *
 * Each event becomes one line `{"seq":..,...}\n`.  Lines are formatted into
 * a buffer as the engine emits them and written with one write(2) per
 * flush; the daemon flushes after every engine call that emitted events,
 * so a line reaches the file within the same loop turn, and a burst (a
 * fleet expiring in one tick) is written every 1 MiB.  The buffer is
 * capped at 256 MiB; on a write error lines stay buffered and are retried
 * on the next flush (counted in write_errors).
 *
 * seq strictly increases across restarts: at open, the tail of the file is
 * read back to find the last complete line and its seq.  A last line
 * without its newline is a torn write from a crash and is truncated away.
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

#include "app/log.h"

#define TAIL_MAX 65536
#define PENDING_MAX ((size_t)256 << 20) /* only reached while writes fail */
#define FLUSH_AT ((size_t)1 << 20)

/* Finds the seq of the last complete line; truncates a torn tail. */
static int recover_seq(ls_eventlog *l)
{
    struct stat st;
    if (fstat(l->fd, &st) < 0) return -errno;
    off_t size = st.st_size;
    if (size == 0) return 0;
    size_t n = size < TAIL_MAX ? (size_t)size : TAIL_MAX;
    char *tail = malloc(n + 1);
    if (!tail) return -ENOMEM;
    ssize_t got = pread(l->fd, tail, n, size - (off_t)n);
    if (got != (ssize_t)n) {
        free(tail);
        return got < 0 ? -errno : -EIO;
    }
    /* end = one past the last newline */
    size_t end = n;
    while (end > 0 && tail[end - 1] != '\n') end--;
    if (end < n) {
        ls_warn("eventlog", "%s: cutting a torn last line of %zu bytes", l->path, n - end);
        if (ftruncate(l->fd, size - (off_t)(n - end)) < 0) {
            int err = errno;
            free(tail);
            return -err;
        }
    }
    if (end > 0) {
        size_t start = end - 1;
        while (start > 0 && tail[start - 1] != '\n') start--;
        json_error_t jerr;
        json_t *line = json_loadb(tail + start, end - 1 - start, 0, &jerr);
        json_t *seq = line ? json_object_get(line, "seq") : NULL;
        if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
            ls_error("eventlog", "%s: last line is not an event (%s); refusing to guess the next seq",
                     l->path, line ? "no seq" : jerr.text);
            json_decref(line);
            free(tail);
            return -EINVAL;
        }
        l->seq = (uint64_t)json_integer_value(seq);
        json_decref(line);
    }
    free(tail);
    return 0;
}

int ls_eventlog_open(ls_eventlog *l, const char *dir, int to_stdout)
{
    *l = (ls_eventlog){.fd = -1, .to_stdout = to_stdout};
    ls_buf_init(&l->pending, PENDING_MAX);
    snprintf(l->path, sizeof(l->path), "%s/events.jsonl", dir);
    l->fd = open(l->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        int err = errno;
        ls_error("eventlog", "cannot open %s: %s", l->path, strerror(err));
        return -err;
    }
    int rc = recover_seq(l);
    l->written = l->seq;
    if (rc < 0) {
        if (rc != -EINVAL) ls_error("eventlog", "cannot read %s: %s", l->path, strerror(-rc));
        close(l->fd);
        l->fd = -1;
        return rc;
    }
    return 0;
}

int ls_eventlog_append_line(ls_eventlog *l, uint64_t seq, const char *line, size_t len)
{
    if (seq <= l->seq) return 0; /* already in the file */
    size_t mark = l->pending.len;
    if (ls_buf_append(&l->pending, line, len) < 0 || ls_buf_putc(&l->pending, '\n') < 0) {
        l->pending.len = mark; /* never a partial line */
        l->pending.overflow = 0;
        return -1;
    }
    l->seq = seq;
    /* A tick that expires a whole fleet writes as it goes, in 1 MiB pieces. */
    if (l->pending.len >= FLUSH_AT) ls_eventlog_flush(l);
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
        *done += (size_t)w;
    }
    return 0;
}

int ls_eventlog_flush(ls_eventlog *l)
{
    if (l->pending.len == 0) {
        l->written = l->seq;
        return 0;
    }
    size_t done;
    int rc = write_all(l->fd, l->pending.p, l->pending.len, &done);
    if (rc < 0) {
        __atomic_fetch_add(&l->write_errors, 1, __ATOMIC_RELAXED);
        ls_error("eventlog", "write to %s failed: %s; %zu bytes kept for retry", l->path, strerror(-rc),
                 l->pending.len - done);
    }
    if (l->to_stdout && done) {
        size_t ignored;
        write_all(STDOUT_FILENO, l->pending.p, done, &ignored);
    }
    memmove(l->pending.p, l->pending.p + done, l->pending.len - done);
    l->pending.len -= done;
    if (l->pending.len == 0) l->written = l->seq;
    return rc < 0 ? -1 : 0;
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
