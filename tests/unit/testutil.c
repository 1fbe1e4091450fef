/*
 * testutil.c - what several unit tests share (testutil.h).
 */
#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <lmdb.h>

int ls_test_tmpdir(char *dir, size_t size, const char *name)
{
    int n = snprintf(dir, size, "/tmp/lastseen-test-%s-XXXXXX", name);
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

void ls_test_rmtree(const char *dir)
{
    nftw(dir, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int ls_test_scratch_open(void **state, const char *name, const char *leaf)
{
    ls_test_scratch *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    if (ls_test_tmpdir(f->tmp, sizeof(f->tmp), name) < 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/%s", f->tmp, leaf);
    *state = f;
    return 0;
}

int ls_test_scratch_close(void **state)
{
    ls_test_scratch *f = *state;
    ls_test_rmtree(f->tmp);
    free(f);
    return 0;
}

/* Opens database `db` of the environment in `dir` in a transaction:
 * read-only, or read-write with the database (and dir) created. */
static void raw_open(const char *dir, const char *db, int rdonly, MDB_env **env, MDB_txn **txn,
                     MDB_dbi *dbi)
{
    assert_int_equal(mdb_env_create(env), 0);
    assert_int_equal(mdb_env_set_maxdbs(*env, 8), 0);
    if (!rdonly) {
        assert_int_equal(mdb_env_set_mapsize(*env, (size_t)64 << 20), 0);
        mkdir(dir, 0755);
    }
    assert_int_equal(mdb_env_open(*env, dir, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0644), 0);
    assert_int_equal(mdb_txn_begin(*env, NULL, rdonly ? MDB_RDONLY : 0, txn), 0);
    assert_int_equal(mdb_dbi_open(*txn, db, rdonly ? 0 : MDB_CREATE, dbi), 0);
}

void ls_test_raw_put(const char *dir, const char *db, const void *k, size_t klen, const void *v,
                     size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    raw_open(dir, db, 0, &env, &txn, &dbi);
    MDB_val kv = {klen, (void *)k}, vv = {vlen, (void *)v};
    assert_int_equal(mdb_put(txn, dbi, &kv, &vv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

size_t ls_test_raw_get(const char *dir, const char *db, const void *k, size_t klen, void *out,
                       size_t max)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    raw_open(dir, db, 1, &env, &txn, &dbi);
    MDB_val kv = {klen, (void *)k}, vv;
    assert_int_equal(mdb_get(txn, dbi, &kv, &vv), 0);
    size_t n = vv.mv_size < max ? vv.mv_size : max;
    memcpy(out, vv.mv_data, n);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return vv.mv_size;
}
