/*
 * buf.c - growable buffer.  Doubles on growth up to `max`; an append that
 * would pass it fails, sets `overflow` and leaves the contents unchanged.
 * Appends return 0, or LS_ENOMEM when the cap or malloc refuses.
 */
#include "base/buf.h"
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ls_buf_init(ls_buf *b, size_t max)
{
    *b = (ls_buf){.max = max};
}

void ls_buf_free(ls_buf *b)
{
    free(b->p);
    *b = (ls_buf){.max = b->max};
}

void ls_buf_reset(ls_buf *b)
{
    b->len = 0;
    b->overflow = 0;
}

static int reserve(ls_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return 0;
    if (b->len + extra + 1 > b->max) {
        b->overflow = 1;
        return LS_ENOMEM;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    if (cap > b->max) cap = b->max;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->overflow = 1;
        return LS_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int ls_buf_append(ls_buf *b, const void *data, size_t len)
{
    int rc;
    if ((rc = reserve(b, len)) < 0) return rc;
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

int ls_buf_putc(ls_buf *b, char c)
{
    return ls_buf_append(b, &c, 1);
}

int ls_buf_printf(ls_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) return -EOVERFLOW; /* longer than INT_MAX */
    if ((size_t)n < sizeof(small)) return ls_buf_append(b, small, (size_t)n);
    int rc;
    if ((rc = reserve(b, (size_t)n)) < 0) return rc;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int ls_buf_i64(ls_buf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    return ls_buf_append(b, tmp, (size_t)n);
}

int ls_buf_json_str(ls_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int rc;
    if ((rc = reserve(b, len * 6 + 2)) < 0) return rc;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    return 0;
}

void ls_str_join_bits(char *out, size_t len, unsigned bits, const char *const *names, size_t n,
                      const char *sep)
{
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!(bits & (1u << i))) continue;
        int w = snprintf(out + at, len - at, "%s%s", at ? sep : "", names[i]);
        if (w < 0 || (size_t)w >= len - at) return;
        at += (size_t)w;
    }
}
