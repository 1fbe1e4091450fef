/*
 * lockfile.h - one process at a time owns a data directory.
 *
 * The daemon and `lastseen import` write the store; two writers on one
 * data directory would interleave their batches and each restore a state
 * the other never wrote.  Both take an exclusive flock(2) on
 * <data_dir>/lastseen.lock for their whole run and refuse to start when it
 * is held.  The kernel drops the lock when the process exits, however it
 * exits (kill -9 included), so a stale file never blocks a restart.
 * Readers (`lastseen export`) do not take it.
 */
#ifndef LS_LOCKFILE_H
#define LS_LOCKFILE_H

#define LS_LOCKFILE_NAME "lastseen.lock"

/*
 * Creates data_dir (and its parents) if missing, opens or creates
 * <data_dir>/lastseen.lock (mode 0644), takes an exclusive non-blocking
 * flock on it and writes this process's pid into it.  On success *fd_out
 * holds the lock until ls_lockfile_release().  When another process holds
 * it, logs "<data_dir> is in use by another lastseen process (pid N, ...):
 * <refusal>" and returns -EBUSY; other failures are logged with the path
 * and returned as -errno.
 */
int ls_lockfile_acquire(const char *data_dir, const char *refusal, int *fd_out);

/* mkdir -p with mode 0755, as for the lock (also what `lastseen token`
 * creates a missing data directory with).  0 or -errno. */
int ls_lockfile_mkdirs(const char *path);

/* Clears the pid and drops the lock; fd < 0 is a no-op. */
void ls_lockfile_release(int fd);

#endif
