/*
 * fdlimit.c - raising the open-file limit.
 *
 * Every HTTP connection is a descriptor, and the soft limit a shell or an
 * init system hands a process is often 1024, which is also about what the
 * default listen backlog holds: a thousand idle connections from one client
 * are then enough to stop every other client (see api/guard.c).  The HTTP
 * server asks at start for what http.max_connections needs; the hard limit
 * (LimitNOFILE= in a systemd unit, ulimit -Hn) is as far as an unprivileged
 * process may go, and the caller says so when it is not enough.
 */
#include "base/fdlimit.h"

#include <errno.h>
#include <sys/resource.h>

static uint64_t as_u64(rlim_t v)
{
    return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t)v;
}

int ls_fdlimit_raise(uint64_t want, uint64_t *before, uint64_t *after, uint64_t *hard)
{
    struct rlimit rl;
    *before = *after = *hard = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return -errno;
    *before = *after = as_u64(rl.rlim_cur);
    *hard = as_u64(rl.rlim_max);
    uint64_t target = want < *hard ? want : *hard;
    if (*before >= target) return 0;
    struct rlimit raised = {.rlim_cur = (rlim_t)target, .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) < 0) return -errno;
    *after = target;
    return 0;
}
