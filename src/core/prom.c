/*
 * prom.c - the Prometheus text exposition format, version 0.0.4, written
 * by hand into an ls_buf: a HELP and a TYPE line per metric family, then
 * one line per sample.  Label values are escaped as the format requires
 * (backslash, double quote, newline); HELP text escapes backslash and
 * newline.  Numbers are integers except histogram sums, which are written
 * as exact decimal seconds from integer nanoseconds (no floating point).
 * A histogram's buckets are stored per bucket and made cumulative here, so
 * that an observation costs one atomic add per counter touched.
 */
#include "core/prom.h"

#include <stdio.h>
#include <string.h>

static void put_escaped(ls_buf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            ls_buf_append(b, "\\\\", 2);
        else if (*s == '\n')
            ls_buf_append(b, "\\n", 2);
        else if (*s == '"' && quote)
            ls_buf_append(b, "\\\"", 2);
        else
            ls_buf_putc(b, *s);
    }
}

void ls_prom_family(ls_buf *b, const char *name, const char *type, const char *help)
{
    ls_buf_printf(b, "# HELP %s ", name);
    put_escaped(b, help, 0);
    ls_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* name{labels[,extra_k="extra_v"]} and a blank; extra may be NULL. */
static void sample_head(ls_buf *b, const char *name, const char *suffix, const char *const *labels,
                        const char *extra_k, const char *extra_v)
{
    ls_buf_append(b, name, strlen(name));
    if (suffix) ls_buf_append(b, suffix, strlen(suffix));
    int n = 0;
    for (const char *const *l = labels; l && l[0] && l[1]; l += 2, n++) {
        ls_buf_putc(b, n ? ',' : '{');
        ls_buf_printf(b, "%s=\"", l[0]);
        put_escaped(b, l[1], 1);
        ls_buf_putc(b, '"');
    }
    if (extra_k) {
        ls_buf_putc(b, n++ ? ',' : '{');
        ls_buf_printf(b, "%s=\"", extra_k);
        put_escaped(b, extra_v, 1);
        ls_buf_putc(b, '"');
    }
    if (n) ls_buf_putc(b, '}');
    ls_buf_putc(b, ' ');
}

void ls_prom_u64(ls_buf *b, const char *name, const char *const *labels, uint64_t v)
{
    sample_head(b, name, NULL, labels, NULL, NULL);
    ls_buf_printf(b, "%llu\n", (unsigned long long)v);
}

void ls_prom_i64(ls_buf *b, const char *name, const char *const *labels, int64_t v)
{
    sample_head(b, name, NULL, labels, NULL, NULL);
    ls_buf_printf(b, "%lld\n", (long long)v);
}

void ls_prom_seconds(ls_buf *b, uint64_t ns)
{
    char frac[16];
    unsigned long long whole = ns / 1000000000u, part = ns % 1000000000u;
    if (!part) {
        ls_buf_printf(b, "%llu", whole);
        return;
    }
    int n = snprintf(frac, sizeof frac, "%09llu", part);
    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    ls_buf_printf(b, "%llu.%s", whole, frac);
}

void ls_prom_histogram(ls_buf *b, const char *name, const char *const *labels,
                       const ls_histogram *h)
{
    uint64_t cum = 0;
    for (int i = 0; i <= h->n; i++) {
        cum += ls_metrics_get(&h->counts[i]);
        sample_head(b, name, "_bucket", labels, "le", i < h->n ? h->le_text[i] : "+Inf");
        ls_buf_printf(b, "%llu\n", (unsigned long long)cum);
    }
    sample_head(b, name, "_sum", labels, NULL, NULL);
    ls_prom_seconds(b, ls_metrics_get(&h->sum_ns));
    ls_buf_putc(b, '\n');
    /* The count is the +Inf bucket, so the two always agree in one scrape. */
    sample_head(b, name, "_count", labels, NULL, NULL);
    ls_buf_printf(b, "%llu\n", (unsigned long long)cum);
}
