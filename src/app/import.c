/*
 * import.c - `lastseen import FILE`: load devices from JSON lines.
 *
 * The input is what `lastseen export` writes: one device a line, the fields
 * of GET /api/v1/devices/{id}, read by the reader PUT uses
 * (core/device_in.h, in RECORD mode: the same checks and messages).  `id`
 * is required; every other field is optional (absent: "default" type,
 * inactive, times 0, no sessions, no timeout of its own) and unknown and
 * derived fields are ignored, so a hand-written line like {"id":"pump-7"}
 * is a device too.  inactivityTimeoutSource "device" makes
 * inactivityTimeout the device's own timeout; anything else means it was
 * derived (from the type, c8y_RequiredAvailability or the default) and the
 * device has none of its own, which is why export -> import -> export
 * gives the same bytes (but for the alarms and type settings, which are
 * not exported).  Blank lines are skipped; a later line with the same id
 * replaces an earlier one.
 *
 * All or nothing.  Every line is parsed and checked before anything is
 * written; each bad line is reported as FILE:LINE: reason and one is
 * enough to import nothing.  The checked devices wait in memory as
 * encoded store records (about 60 bytes plus id and type each), then go to
 * the store in batches of IMPORT_BATCH devices, one transaction each: a
 * failure there (disk full, store.max_size) is reported with how many
 * devices were written before it.
 *
 * Only one writer.  import takes the data directory lock (lockfile.h)
 * before reading its input, so it refuses to run next to a daemon (whose
 * in-memory state would overwrite the import and ignore it) and a daemon
 * cannot start while an import runs.  To change devices of a running
 * daemon, use the HTTP API.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "base/buf.h"
#include "app/export.h"
#include "base/lockfile.h"
#include "base/err.h"
#include "base/log.h"
#include "core/device_in.h"
#include "engine/engine.h"

#define IMPORT_BATCH 10000
#define LINE_MAX_BYTES (1 << 20)
#define BAD_LINES_SHOWN 20

/* ---- one line -------------------------------------------------------- */

int ls_import_line(ls_store_batch *b, const char *p, size_t n, char *why, size_t whylen)
{
    json_error_t err;
    ls_device_state d = {0};
    unsigned given;
    int rc = -1;

    json_t *o = ls_api_json_parse(p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        snprintf(why, whylen, "malformed JSON at column %d: %s", err.column, err.text);
        return -1;
    }
    if (ls_device_in(o, LS_DEVICE_IN_RECORD, &d, &given, why, whylen) < 0) goto out;
    if (ls_store_batch_put_device(b, &d) < 0) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* ---- the input -------------------------------------------------------- */

/*
 * Reads one line (without its "\n", and without a "\r" before it) into b.
 * Returns 1 with a line, 0 at the end of the input, -1 on a read error.
 * A line longer than b's cap is read to its end and reported with
 * *too_long set; b then holds its beginning.
 */
static int read_line(FILE *f, ls_buf *b, int *too_long)
{
    int c;
    ls_buf_reset(b);
    *too_long = 0;
    while ((c = getc_unlocked(f)) != EOF && c != '\n')
        if (ls_buf_putc(b, (char)c) < 0) *too_long = 1;
    if (c == EOF && ferror(f)) return -1;
    if (c == EOF && b->len == 0 && !*too_long) return 0;
    if (b->len && b->p[b->len - 1] == '\r') b->len--;
    return 1;
}

static int blank(const ls_buf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (!strchr(" \t\r", b->p[i]) || b->p[i] == '\0') return 0;
    return 1;
}

typedef struct batches {
    ls_store_batch **v;
    size_t n, cap;
    size_t in_last; /* devices in v[n - 1] */
} batches;

static void batches_free(batches *bs)
{
    for (size_t i = 0; i < bs->n; i++)
        ls_store_batch_free(bs->v[i]);
    free(bs->v);
    *bs = (batches){0};
}

/* The batch the next device goes into; NULL when out of memory. */
static ls_store_batch *batches_next(batches *bs)
{
    if (bs->n && bs->in_last < IMPORT_BATCH) return bs->v[bs->n - 1];
    if (bs->n == bs->cap) {
        size_t cap = bs->cap ? bs->cap * 2 : 16;
        ls_store_batch **v = realloc(bs->v, cap * sizeof(*v));
        if (!v) return NULL;
        bs->v = v;
        bs->cap = cap;
    }
    if (!(bs->v[bs->n] = ls_store_batch_new())) return NULL;
    bs->n++;
    bs->in_last = 0;
    return bs->v[bs->n - 1];
}

/*
 * Reads and checks every line of f into bs.  Returns the number of bad
 * lines (each reported), or -1 on a read error or lack of memory.
 */
static long parse_input(FILE *f, const char *name, batches *bs, uint64_t *devices)
{
    ls_buf line;
    char why[256];
    long bad = 0;
    int too_long, r;

    ls_buf_init(&line, LINE_MAX_BYTES);
    for (unsigned long lineno = 1; (r = read_line(f, &line, &too_long)) > 0; lineno++) {
        if (!too_long && blank(&line)) continue;
        ls_store_batch *b = too_long ? NULL : batches_next(bs);
        if (too_long) {
            snprintf(why, sizeof(why), "line longer than %d bytes", LINE_MAX_BYTES);
        } else if (!b) {
            fprintf(stderr, "lastseen import: out of memory at %s:%lu\n", name, lineno);
            r = -1;
            break;
        } else if (ls_import_line(b, line.p ? line.p : "", line.len, why, sizeof(why)) == 0) {
            bs->in_last++;
            (*devices)++;
            continue;
        }
        if (bad++ < BAD_LINES_SHOWN) fprintf(stderr, "%s:%lu: %s\n", name, lineno, why);
    }
    if (r < 0 && ferror(f))
        fprintf(stderr, "lastseen import: cannot read %s: %s\n", name, strerror(errno));
    ls_buf_free(&line);
    if (r < 0) return -1;
    if (bad > BAD_LINES_SHOWN)
        fprintf(stderr, "%s: ... and %ld more bad lines\n", name, bad - BAD_LINES_SHOWN);
    return bad;
}

/* ---- the command -------------------------------------------------------- */

int ls_import_main(int argc, char **argv)
{
    ls_cli c;
    batches bs = {0};
    uint64_t devices = 0, written = 0;
    int lock_fd = -1, exit_code = 1, rc = ls_cli__setup(&c, argc, argv, 1);
    if (rc >= 0) return rc;

    const char *name = strcmp(c.file, "-") ? c.file : "<stdin>";
    FILE *f = strcmp(c.file, "-") ? fopen(c.file, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "lastseen import: cannot open %s: %s\n", c.file, strerror(errno));
        return 1;
    }
    if ((rc = ls_lockfile_acquire(c.cfg.data_dir, "stop the daemon first or use the HTTP API",
                                  &lock_fd)) < 0) {
        fprintf(stderr, "lastseen import: %s %s; nothing imported\n", c.cfg.data_dir,
                rc == -EBUSY ? "is in use by another lastseen process" : "cannot be locked");
        goto out;
    }

    long bad = parse_input(f, name, &bs, &devices);
    if (bad != 0) {
        if (bad > 0)
            fprintf(stderr, "lastseen import: %ld bad lines in %s; nothing imported\n", bad, name);
        else
            fprintf(stderr, "lastseen import: nothing imported\n");
        goto out;
    }

    ls_store *s;
    ls_store_options o = {.initial_size = (uint64_t)64 << 20,
                          .max_size = (uint64_t)c.cfg.store_max_size,
                          .sync = c.cfg.store_sync};
    if ((rc = ls_store_open(&s, c.store_dir, &o)) < 0) {
        fprintf(stderr, "lastseen import: cannot open the store in %s: %s; nothing imported\n",
                c.store_dir, ls_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < bs.n; i++) {
        uint64_t in_batch = i + 1 < bs.n ? IMPORT_BATCH : bs.in_last;
        if ((rc = ls_store_write(s, bs.v[i])) < 0) {
            fprintf(stderr,
                    "lastseen import: writing to %s failed after %llu of %llu devices: %s\n",
                    c.store_dir, (unsigned long long)written, (unsigned long long)devices,
                    ls_strerror(rc));
            break;
        }
        written += in_batch;
        ls_store_batch_free(bs.v[i]); /* done with it: keep the peak memory that of the input */
        bs.v[i] = NULL;
    }
    ls_store_close(s);
    if (rc >= 0) {
        fprintf(stderr, "imported %llu devices\n", (unsigned long long)devices);
        exit_code = 0;
    }
out:
    batches_free(&bs);
    ls_lockfile_release(lock_fd);
    if (f != stdin) fclose(f);
    return exit_code;
}
