/*
 * test_eventlog.c - unit tests for src/out/eventlog.c (the file).
 *
 * Each test works in its own mkdtemp directory under /tmp (removed after).
 * Covers seq recovery from the file's tail across reopen (and skipping
 * lines the file already holds), cutting a torn last line, refusing a file
 * whose last line is not an event, and the failure contract the daemon's
 * delivery relies on: a failed write drops the unwritten lines, rewinds seq
 * to what the file holds and refuses more lines until a successful reopen;
 * a reopen continues after max(what was written, the new file's tail).
 * Failures are real: the path is a symlink to /dev/full (every write fails
 * with ENOSPC), a directory that disappears (open fails), or RLIMIT_FSIZE
 * (a short write that leaves a torn line, then EFBIG).  Rotation: a
 * renamed file is noticed by ls_eventlog_moved() and the next lines go to a
 * new file at the path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "out/eventlog.h"
#include "testutil.h"

/* The events file is f->path, "events.jsonl" in the test's directory. */
typedef ls_test_scratch fixture;

static int setup(void **state)
{
    return ls_test_scratch_open(state, "eventlog", "events.jsonl");
}

static int teardown(void **state)
{
    return ls_test_scratch_close(state);
}

/* The file's whole content, NUL-terminated ("" if missing). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);
    if (fp) {
        size_t n = fread(buf, 1, (1 << 16) - 1, fp);
        buf[n] = '\0';
        fclose(fp);
    }
    return buf;
}

static void put_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

/* An event line of about 100 bytes for seq. */
static int line_of(char *buf, size_t len, uint64_t seq)
{
    return snprintf(
        buf, len,
        "{\"seq\":%llu,\"type\":\"ACTIVITY_EVENT\",\"device\":\"dev-%llu\",\"pad\":\"%040d\"}",
        (unsigned long long)seq, (unsigned long long)seq, 0);
}

static int append(ls_eventlog *l, uint64_t seq)
{
    char line[256];
    int n = line_of(line, sizeof(line), seq);
    return ls_eventlog_append_line(l, seq, line, (size_t)n);
}

/* Asserts the file holds exactly the lines of seqs first..last, in order. */
static void assert_lines(const char *path, uint64_t first, uint64_t last)
{
    char *got = slurp(path);
    char want[1 << 14] = "";
    size_t used = 0;
    for (uint64_t s = first; first && s <= last; s++) {
        used += (size_t)line_of(want + used, sizeof(want) - used, s);
        want[used++] = '\n';
        want[used] = '\0';
    }
    assert_string_equal(got, want);
    free(got);
}

static void test_append_and_recover(void **state)
{
    fixture *f = *state;
    ls_eventlog l;
    assert_int_equal(ls_eventlog_open(&l, f->path, 0), 0);
    assert_int_equal(l.seq, 0);
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(append(&l, s), 0);
    assert_int_equal(l.written, 0); /* buffered, not yet written */
    assert_int_equal(ls_eventlog_flush(&l), 0);
    assert_int_equal(l.written, 3);
    ls_eventlog_close(&l);
    assert_lines(f->path, 1, 3);

    assert_int_equal(ls_eventlog_open(&l, f->path, 0), 0);
    assert_int_equal(l.seq, 3);
    assert_int_equal(l.written, 3);
    assert_int_equal(append(&l, 2), 0); /* already in the file: skipped */
    assert_int_equal(append(&l, 4), 0);
    ls_eventlog_close(&l);
    assert_lines(f->path, 1, 4);
}

static void test_torn_tail_is_cut(void **state)
{
    fixture *f = *state;
    char line[256], text[1024];
    int n = line_of(line, sizeof(line), 7);
    snprintf(text, sizeof(text), "%s\n{\"seq\":8,\"type\":\"INACT", line);
    put_file(f->path, text);
    ls_eventlog l;
    assert_int_equal(ls_eventlog_open(&l, f->path, 0), 0);
    assert_int_equal(l.seq, 7);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, n + 1);
    assert_int_equal(append(&l, 8), 0);
    ls_eventlog_close(&l);
    assert_lines(f->path, 7, 8);
}

static void test_last_line_not_an_event(void **state)
{
    fixture *f = *state;
    put_file(f->path, "hello\n");
    ls_eventlog l;
    assert_int_equal(ls_eventlog_open(&l, f->path, 0), -EINVAL);
    ls_eventlog_close(&l);
}

static void test_failed_write_then_file_replaced(void **state)
{
    fixture *f = *state;
    char repl[160];
    ls_eventlog l;
    assert_int_equal(symlink("/dev/full", f->path), 0);
    assert_int_equal(ls_eventlog_open(&l, f->path, 0), 0);
    assert_int_equal(append(&l, 1), 0);
    assert_int_equal(append(&l, 2), 0);
    assert_int_equal(ls_eventlog_flush(&l), -ENOSPC);
    assert_true(l.failed);
    assert_int_equal(l.write_errors, 1);
    assert_int_equal(l.seq, 0); /* rewound: the caller offers 1.. again */
    assert_int_equal(l.written, 0);
    assert_int_equal(l.pending.len, 0);
    /* Until reopened, nothing is taken. */
    assert_int_equal(append(&l, 1), -EIO);
    assert_int_equal(ls_eventlog_flush(&l), -EIO);
    /* Still /dev/full: the reopen works, the next write fails again. */
    assert_int_equal(ls_eventlog_reopen(&l), 0);
    assert_int_equal(append(&l, 1), 0);
    assert_int_equal(ls_eventlog_flush(&l), -ENOSPC);
    assert_int_equal(l.write_errors, 2);
    /* The operator puts a real file in place. */
    snprintf(repl, sizeof(repl), "%s/new", f->tmp);
    put_file(repl, "");
    assert_int_equal(rename(repl, f->path), 0);
    assert_int_equal(ls_eventlog_reopen(&l), 0);
    assert_false(l.failed);
    assert_int_equal(l.seq, 0);
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(append(&l, s), 0);
    assert_int_equal(ls_eventlog_flush(&l), 0);
    assert_int_equal(l.written, 3);
    ls_eventlog_close(&l);
    assert_lines(f->path, 1, 3);
}

static void test_reopen_fails_until_dir_is_back(void **state)
{
    fixture *f = *state;
    char dir[128], path[160];
    ls_eventlog l;
    snprintf(dir, sizeof(dir), "%s/sub", f->tmp);
    snprintf(path, sizeof(path), "%s/events.jsonl", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(ls_eventlog_open(&l, path, 0), 0);
    assert_int_equal(append(&l, 1), 0);
    assert_int_equal(ls_eventlog_flush(&l), 0);
    assert_false(ls_eventlog_moved(&l));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_true(ls_eventlog_moved(&l));
    assert_int_equal(ls_eventlog_reopen(&l), -ENOENT);
    assert_true(l.failed);
    assert_int_equal(l.fd, -1);
    assert_int_equal(l.write_errors, 1);
    assert_int_equal(append(&l, 2), -EIO);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(ls_eventlog_reopen(&l), 0);
    assert_int_equal(l.seq, 1); /* a fresh file continues after what was written */
    assert_int_equal(append(&l, 1), 0);
    assert_int_equal(append(&l, 2), 0);
    ls_eventlog_close(&l);
    assert_lines(path, 2, 2);
}

static void test_rotation_by_rename(void **state)
{
    fixture *f = *state;
    char old[160];
    ls_eventlog l;
    snprintf(old, sizeof(old), "%s.1", f->path);
    assert_int_equal(ls_eventlog_open(&l, f->path, 0), 0);
    assert_int_equal(append(&l, 1), 0);
    assert_int_equal(append(&l, 2), 0);
    assert_int_equal(ls_eventlog_flush(&l), 0);
    assert_int_equal(rename(f->path, old), 0);
    assert_true(ls_eventlog_moved(&l));
    assert_int_equal(ls_eventlog_reopen(&l), 0);
    assert_false(ls_eventlog_moved(&l));
    assert_int_equal(l.reopens, 1);
    assert_int_equal(l.seq, 2);
    assert_int_equal(append(&l, 3), 0);
    ls_eventlog_close(&l);
    assert_lines(old, 1, 2);
    assert_lines(f->path, 3, 3);
}

/* A replaced file that already holds later lines: those are not written twice. */
static void test_reopen_onto_a_longer_file(void **state)
{
    fixture *f = *state;
    char repl[160], text[1024];
    size_t used = 0;
    ls_eventlog l;
    assert_int_equal(ls_eventlog_open(&l, f->path, 0), 0);
    assert_int_equal(append(&l, 1), 0);
    assert_int_equal(ls_eventlog_flush(&l), 0);
    for (uint64_t s = 1; s <= 3; s++) {
        used += (size_t)line_of(text + used, sizeof(text) - used, s);
        text[used++] = '\n';
        text[used] = '\0';
    }
    snprintf(repl, sizeof(repl), "%s/new", f->tmp);
    put_file(repl, text);
    assert_int_equal(rename(repl, f->path), 0);
    assert_int_equal(ls_eventlog_reopen(&l), 0);
    assert_int_equal(l.seq, 3);
    assert_int_equal(append(&l, 2), 0);
    assert_int_equal(append(&l, 3), 0);
    assert_int_equal(append(&l, 4), 0);
    ls_eventlog_close(&l);
    assert_lines(f->path, 1, 4);
}

/* A short write (file size limit) leaves a torn line; the reopen cuts it and
 * the lines after the last complete one are written again, whole. */
static void test_short_write_torn_line(void **state)
{
    fixture *f = *state;
    char line[256];
    size_t one = (size_t)line_of(line, sizeof(line), 1) + 1;
    struct rlimit old, lim;
    ls_eventlog l;
    assert_int_equal(ls_eventlog_open(&l, f->path, 0), 0);
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(append(&l, s), 0);

    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)(2 * one + one / 2); /* two lines and half of the third */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = ls_eventlog_flush(&l);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);

    assert_int_equal(rc, -EFBIG);
    assert_true(l.failed);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, (off_t)(2 * one + one / 2));
    assert_int_equal(ls_eventlog_reopen(&l), 0);
    assert_int_equal(l.seq, 2); /* the two complete lines count */
    for (uint64_t s = 1; s <= 4; s++)
        assert_int_equal(append(&l, s), 0);
    ls_eventlog_close(&l);
    assert_lines(f->path, 1, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_and_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_line_not_an_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_then_file_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_fails_until_dir_is_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_by_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_onto_a_longer_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_write_torn_line, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
