/*
 * err.c - names for the codes of err.h.
 *
 * Own codes are a switch generated from LS_ERR_MAP.  System errors take
 * the C library's text without strerror(): that may format unknown values
 * into a buffer shared between threads (and translate by locale).  glibc
 * 2.32 and later have strerrordesc_np(), a constant string from a fixed
 * table, NULL for a value it does not know; elsewhere the XSI strerror_r()
 * formats into a per-thread buffer, so the result is this thread's until
 * its next call.
 */
#include "base/err.h"

#include <string.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#define HAVE_STRERRORDESC_NP 1
#endif

#define UNKNOWN "unknown error"

static const char *system_text(int e)
{
#ifdef HAVE_STRERRORDESC_NP
    const char *s = strerrordesc_np(e);
    return s ? s : UNKNOWN;
#else
    static _Thread_local char buf[128];
    return strerror_r(e, buf, sizeof(buf)) == 0 ? buf : UNKNOWN;
#endif
}

const char *ls_strerror(int rc)
{
    switch (rc) {
    case LS_OK:
        return "ok";
    case LS_ENOMEM:
        return "out of memory";
#define LS_ERR__NAME(name, value, text)                                                            \
    case name:                                                                                     \
        return text;
        LS_ERR_MAP(LS_ERR__NAME)
#undef LS_ERR__NAME
    }
    if (rc < 0 && rc >= -4095) return system_text(-rc);
    return UNKNOWN;
}
