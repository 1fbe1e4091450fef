/*
 * buf.h - a growable byte buffer with a cap (every buffer has one).
 */
#ifndef LS_BUF_H
#define LS_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ls_buf {
    char *p;
    size_t len, cap;
    size_t max;   /* growth stops here: appends fail with LS_ENOMEM */
    int overflow; /* an append was refused */
} ls_buf;

void ls_buf_init(ls_buf *b, size_t max);
void ls_buf_free(ls_buf *b);
void ls_buf_reset(ls_buf *b);
int ls_buf_append(ls_buf *b, const void *data, size_t len);
int ls_buf_putc(ls_buf *b, char c);
int ls_buf_printf(ls_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ls_buf_i64(ls_buf *b, int64_t v);
/* Appends s as a JSON string literal, quotes included. */
int ls_buf_json_str(ls_buf *b, const char *s, size_t len);

/* Writes into out (len bytes, NUL-terminated, cut short if need be) the
 * names[i] whose bit (1u << i) is set in bits, i < n, separated by sep:
 * the text of a set of flags ("GET, PUT", "read,admin"). */
void ls_str_join_bits(char *out, size_t len, unsigned bits, const char *const *names, size_t n,
                      const char *sep);

#endif
