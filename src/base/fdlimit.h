/*
 * fdlimit.h - the process's open-file limit (RLIMIT_NOFILE).  See fdlimit.c.
 */
#ifndef LS_FDLIMIT_H
#define LS_FDLIMIT_H

#include <stdint.h>

/*
 * Raises the soft open-file limit to `want`, or to the hard limit if that is
 * lower; never lowers it.  *before and *after are the soft limit before and
 * after, *hard the hard limit (UINT64_MAX: unlimited).  Returns 0, or
 * -errno when the limits could not be read or set (*after is then what is
 * in force).
 */
int ls_fdlimit_raise(uint64_t want, uint64_t *before, uint64_t *after, uint64_t *hard);

#endif
