/*
 * err.h - lastseen's one error space.
 *
 * Every function that can fail returns 0 or a negative int from this one
 * space, and ls_strerror() names any of them:
 *
 *   -1 .. -4095   system errors, -errno (Linux never uses an errno above
 *                 4095: that is its MAX_ERRNO);
 *   -5001 ..      lastseen's own codes, listed once in LS_ERR_MAP below.
 *
 * The own range starts below -4095 so that no own code can ever equal a
 * -errno, whatever the platform adds to errno.h, and so that "is this a
 * system error" is the plain range test rc >= -4095 (libuv's rule: its
 * UV_E* are the -E* values, its own codes live in a range of their own).
 *
 * Which meanings are own codes and which are errno:
 *
 *   - LS_ENOMEM is -ENOMEM.  Running out of memory means the same thing
 *     wherever it happens (the engine's table, a store batch, a buffer,
 *     malloc in an adapter) and is handled the same way, so it is one code:
 *     a caller asks `rc == LS_ENOMEM` whoever failed below it, and a
 *     -ENOMEM from a library is not a different error.  ls_strerror() names
 *     it "out of memory", as lastseen always did.
 *
 *   - Everything else lastseen decides about its own data is an own code,
 *     even where errno has a look-alike (EINVAL, ENOENT, ENOSPC).  These are
 *     answers about the caller's input (an invalid value, an unknown device,
 *     a configured limit) that the HTTP API maps to 422, 404 or 507; a
 *     system -EINVAL (a bad argument to a call: a bug), -ENOENT (a missing
 *     file) or -ENOSPC (a full disk) from below must stay a failure of the
 *     daemon and never turn into one of those answers.
 *
 * Codes are stable within a build only: they are never written to disk or
 * sent on the wire (the API sends names and HTTP statuses).
 */
#ifndef LS_ERR_H
#define LS_ERR_H

#include <errno.h>

/* The first own code is LS_E__BASE - 1. */
#define LS_E__BASE (-5000)

/*
 * Every own code: XX(name, value, text).  ls_strerror() and the tests are
 * generated from this table; a new code is one line here.
 */
#define LS_ERR_MAP(XX)                                                                             \
    XX(LS_EINVAL, LS_E__BASE - 1, "invalid value")                                                 \
    XX(LS_EBADID, LS_E__BASE - 2, "invalid device id")                                             \
    XX(LS_ENOTFOUND, LS_E__BASE - 3, "no such device")                                             \
    XX(LS_EFULL, LS_E__BASE - 4, "limit reached")                                                  \
    XX(LS_STORE_EVERSION, LS_E__BASE - 5, "store written by a newer lastseen")                     \
    XX(LS_STORE_ECORRUPT, LS_E__BASE - 6, "store damaged or not a lastseen store")                 \
    XX(LS_STORE_EFULL, LS_E__BASE - 7, "store.max_size reached")

enum {
    LS_OK = 0,
#define LS_ERR__ENUM(name, value, text) name = (value),
    LS_ERR_MAP(LS_ERR__ENUM)
#undef LS_ERR__ENUM
    /* System errors that lastseen uses by name. */
    LS_ENOMEM = -ENOMEM, /* allocation failed, anywhere */
};

/*
 * The text for any code: "ok" for 0, the table's text for an own code,
 * "out of memory" for LS_ENOMEM, strerror(-rc) for other system errors
 * (the C locale's text), and "unknown error" for anything else (a positive
 * value, an unused own value, an errno the C library has no text for).
 * Safe from any thread.  The result is a constant string, never freed;
 * only without glibc 2.32 is an errno's text in a per-thread buffer,
 * valid until the same thread's next call.
 */
const char *ls_strerror(int rc);

#endif
