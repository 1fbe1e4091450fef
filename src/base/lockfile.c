/*
 * lockfile.c - the data directory lock (see lockfile.h).
 *
 * flock(2) rather than fcntl(2) locks: fcntl locks belong to the process
 * and vanish when any descriptor of the file is closed, and LMDB's own
 * lock.mdb already uses them; a flock belongs to the open file description
 * and lives exactly as long as our descriptor.  The pid written into the
 * file is only there to name the holder in the refusal; the lock itself is
 * the flock, never the file's content or existence.
 */
#include "base/lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"

#define MOD "lock"

int ls_lockfile_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp)) return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -errno;
            tmp[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* The pid the holder wrote, 0 if none can be read. */
static long read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && (*end == '\n' || *end == '\0') ? pid : 0;
}

int ls_lockfile_acquire(const char *data_dir, const char *refusal, int *fd_out)
{
    char path[PATH_MAX];
    int rc;

    *fd_out = -1;
    if (snprintf(path, sizeof(path), "%s/%s", data_dir, LS_LOCKFILE_NAME) >= (int)sizeof(path)) {
        ls_error(MOD, "%s: path too long", data_dir);
        return -ENAMETOOLONG;
    }
    if ((rc = ls_lockfile_mkdirs(data_dir)) < 0) {
        ls_error(MOD, "cannot create the data directory %s: %s", data_dir, ls_strerror(rc));
        return rc;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        ls_error(MOD, "%s: cannot open: %s", path, strerror(errno));
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (rc == -EBUSY) {
            long pid = read_pid(fd);
            char who[48] = "";
            if (pid) snprintf(who, sizeof(who), "pid %ld, ", pid);
            ls_error(MOD, "%s is in use by another lastseen process (%sholding %s): %s", data_dir,
                     who, path, refusal ? refusal : "refusing to use it");
        } else {
            ls_error(MOD, "%s: flock: %s", path, ls_strerror(rc));
        }
        close(fd);
        return rc;
    }
    /* Ours now: record who holds it. */
    char line[32];
    int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)n, 0) != n)
        ls_warn(MOD, "%s: cannot write the pid: %s (the lock is held anyway)", path,
                strerror(errno));
    *fd_out = fd;
    return 0;
}

void ls_lockfile_release(int fd)
{
    if (fd < 0) return;
    int r = ftruncate(fd, 0); /* a stale pid would be harmless: only the flock counts */
    (void)r;
    close(fd);
}
