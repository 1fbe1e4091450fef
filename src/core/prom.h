/*
 * prom.h - writing the Prometheus text exposition format, version 0.0.4.
 * See prom.c.
 */
#ifndef LS_PROM_H
#define LS_PROM_H

#include <stdint.h>

#include "base/buf.h"
#include "core/metrics.h"

#define LS_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void ls_prom_family(ls_buf *b, const char *name, const char *type, const char *help);

/*
 * One sample: name{k1="v1",k2="v2"} value.  `labels` is NULL or a
 * NULL-terminated list of key, value, key, value...; values are escaped.
 */
void ls_prom_u64(ls_buf *b, const char *name, const char *const *labels, uint64_t v);
void ls_prom_i64(ls_buf *b, const char *name, const char *const *labels, int64_t v);

/* The _bucket (cumulative, le="+Inf" last), _sum (seconds) and _count
 * samples of a histogram, read atomically bucket by bucket. */
void ls_prom_histogram(ls_buf *b, const char *name, const char *const *labels,
                       const ls_histogram *h);

/* Writes ns as seconds in decimal, without trailing zeros: 1500000 -> "0.0015". */
void ls_prom_seconds(ls_buf *b, uint64_t ns);

#endif
