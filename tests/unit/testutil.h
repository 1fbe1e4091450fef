/*
 * testutil.h - what several unit tests share (linked into each of them as
 * ls_testutil): a scratch directory of their own under /tmp for the tests
 * that write files (a store, the events file, a whole core), removed with
 * everything in it afterwards, as a cmocka fixture or by hand; and raw
 * LMDB reads and writes of a closed store, for the tests that make a
 * store look as an older version, or damage, left it, and look at what
 * the store wrote.
 */
#ifndef LS_TESTUTIL_H
#define LS_TESTUTIL_H

#include <stddef.h>

/* Makes a new directory /tmp/lastseen-test-<name>-XXXXXX and writes its
 * path, NUL-terminated, into dir (size bytes: 64 hold any name up to 30
 * bytes).  0, or -1 with errno set (ENAMETOOLONG if it does not fit). */
int ls_test_tmpdir(char *dir, size_t size, const char *name);

/* Removes dir and everything below it, depth first, without following
 * links.  Best effort: what cannot be removed stays. */
void ls_test_rmtree(const char *dir);

/* A cmocka fixture: a scratch directory and one path in it (not created). */
typedef struct ls_test_scratch {
    char tmp[64];   /* the directory (ls_test_tmpdir()) */
    char path[128]; /* tmp/<leaf> */
} ls_test_scratch;

/* For a setup function: *state gets a new ls_test_scratch, its directory
 * named after `name` and its path `leaf` in it.  0, or -1. */
int ls_test_scratch_open(void **state, const char *name, const char *leaf);

/* A teardown function: removes the directory of the ls_test_scratch in
 * *state and frees it.  0. */
int ls_test_scratch_close(void **state);

/* Puts one raw key/value into database `db` (created if missing) of the
 * LMDB environment in directory `dir` (created if missing), which nothing
 * in this process has open.  Fails the test on an LMDB error. */
void ls_test_raw_put(const char *dir, const char *db, const void *k, size_t klen, const void *v,
                     size_t vlen);

/* Reads the value of key k of database `db` of the LMDB environment in
 * `dir` (nothing in this process has it open) into out, up to max bytes;
 * returns its whole length.  Fails the test if it is not there. */
size_t ls_test_raw_get(const char *dir, const char *db, const void *k, size_t klen, void *out,
                       size_t max);

#endif
