/*
 * msg.c - subjects and the `Ls` header of the input stream's messages.
 *
 * Why a header and not a payload: devices publish to dev.<token> with
 * payloads of their own (telemetry, anything), and the server maps them
 * into the same stream, so the payload cannot carry lastseen's meaning
 * without being confused with theirs.  A header is out of their way, and
 * the common case, an activity at the time the stream stores it, needs
 * none: its message is the subject alone, as small as a message can be.
 *
 * Strict: an unknown word or a repeated one refuses the value, so that a
 * message a newer writer means differently is counted as refused rather
 * than misapplied.
 */
#include "cluster/msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/ingest.h"

size_t ls_msg_subject(char *buf, unsigned p, const char *tok, size_t n)
{
    int k = snprintf(buf, LS_MSG_SUBJECT_BUF, LS_MSG_PREFIX "%u.%.*s", p, (int)n, tok);
    return k < 0 ? 0 : (size_t)k;
}

int ls_msg_parse_subject(const char *s, size_t len, unsigned partitions, unsigned *p,
                         const char **tok, size_t *n)
{
    size_t pre = sizeof(LS_MSG_PREFIX) - 1, i;
    if (len <= pre || memcmp(s, LS_MSG_PREFIX, pre) != 0) return LS_EINVAL;
    uint64_t v = 0;
    for (i = pre; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v >= partitions) return LS_EINVAL;
    }
    if (i == pre || i >= len || s[i] != '.') return LS_EINVAL;
    if (i - pre > 1 && s[pre] == '0') return LS_EINVAL; /* "07" */
    i++;
    if (i >= len || memchr(s + i, '.', len - i)) return LS_EINVAL;
    *p = (unsigned)v;
    *tok = s + i;
    *n = len - i;
    return 0;
}

size_t ls_msg_header(char *buf, unsigned kind, int64_t ts)
{
    int k;
    unsigned op = kind & ~(unsigned)LS_INGEST_RETAINED;
    const char *r = (kind & LS_INGEST_RETAINED) ? " r" : "";
    if (op == LS_INGEST_ONLINE)
        k = snprintf(buf, LS_MSG_HEADER_BUF, "on%s", r);
    else if (op == LS_INGEST_OFFLINE)
        k = snprintf(buf, LS_MSG_HEADER_BUF, "off%s", r);
    else if (ts > 0)
        k = snprintf(buf, LS_MSG_HEADER_BUF, "act ts=%" PRId64, ts);
    else
        k = 0;
    if (k <= 0) buf[0] = '\0';
    return k < 0 ? 0 : (size_t)k;
}

/* The word at *i (up to a blank or the end) of v[0..n); moves *i past it and its blank. */
static size_t word(const char *v, size_t n, size_t *i, const char **w)
{
    size_t a = *i;
    while (*i < n && v[*i] != ' ')
        (*i)++;
    *w = v + a;
    size_t len = *i - a;
    if (*i < n) (*i)++; /* the blank */
    return len;
}

static int word_is(const char *w, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(w, lit, len) == 0;
}

/* "ts=" and 1..19 digits, 1..INT64_MAX. */
static int parse_ts(const char *w, size_t len, int64_t *ts)
{
    if (len < 4 || len > 3 + 19 || memcmp(w, "ts=", 3) != 0) return LS_EINVAL;
    uint64_t v = 0;
    for (size_t i = 3; i < len; i++) {
        if (w[i] < '0' || w[i] > '9') return LS_EINVAL;
        v = v * 10 + (uint64_t)(w[i] - '0');
        if (v > (uint64_t)INT64_MAX) return LS_EINVAL;
    }
    if (v == 0) return LS_EINVAL;
    *ts = (int64_t)v;
    return 0;
}

int ls_msg_parse_header(const char *v, size_t n, ls_msg_item *out)
{
    *out = (ls_msg_item){0};
    if (!v) return 0;
    size_t i = 0;
    const char *w;
    size_t len = word(v, n, &i, &w);
    int act = 0;
    if (word_is(w, len, "act"))
        act = 1;
    else if (word_is(w, len, "on"))
        out->kind = LS_INGEST_ONLINE;
    else if (word_is(w, len, "off"))
        out->kind = LS_INGEST_OFFLINE;
    else
        return LS_EINVAL;
    int seen_ts = 0, seen_r = 0;
    while (i < n) {
        len = word(v, n, &i, &w);
        if (act && !seen_ts && parse_ts(w, len, &out->ts) == 0)
            seen_ts = 1;
        else if (!act && !seen_r && word_is(w, len, "r"))
            seen_r = 1;
        else
            return LS_EINVAL;
    }
    if (n && v[n - 1] == ' ') return LS_EINVAL; /* a trailing blank */
    if (seen_r) out->kind |= LS_INGEST_RETAINED;
    return 0;
}
