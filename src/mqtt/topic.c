/*
 * topic.c - topic patterns with a {device} placeholder.
 *
 * A pattern is an MQTT topic filter in which exactly one level is the
 * placeholder "{device}": "devices/{device}/telemetry",
 * "sensors/+/{device}/#".  It is subscribed with the placeholder turned
 * into "+", and an incoming topic is matched level by level against the
 * parsed pattern to find the device's level.  The broker already filtered
 * what it sends, but several patterns (and the status and Sparkplug
 * topics) share one connection, so the client must tell which pattern a
 * message belongs to; matching also re-checks what a broker with
 * overlapping subscriptions delivers.
 *
 * Cost: parsing happens once, at start-up.  Matching walks the topic once
 * per pattern tried, comparing literal levels with memcmp: O(topic length)
 * with no allocation.  Lists are bounded (LS_TOPIC_PATTERNS_MAX patterns of
 * at most LS_TOPIC_PATTERN_MAX bytes and LS_TOPIC_LEVELS_MAX levels).
 *
 * Publishing goes the other way: a template such as
 * "lastseen/events/{device}" is expanded with a device id.  Ids may hold
 * any character except controls, while a topic name must not contain '+'
 * or '#'; those (and '%', so the mapping can be undone) are
 * percent-encoded.  '/' is kept, so "site-1/pump-7" publishes under
 * lastseen/events/site-1/pump-7.
 */
#include "mqtt/topic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PLACEHOLDER "{device}"
#define PLACEHOLDER_LEN 8

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return -EINVAL;
}

/* Controls (C0 and DEL) are never part of a topic lastseen accepts. */
static int has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 1;
    return 0;
}

int ls_topic_pattern_parse(ls_topic_pattern *p, const char *s, size_t n, const char **why)
{
    memset(p, 0, sizeof(*p));
    p->device = -1;
    if (n == 0) return fail(why, "empty topic pattern");
    if (n > LS_TOPIC_PATTERN_MAX) return fail(why, "topic pattern longer than 512 bytes");
    if (has_control(s, n)) return fail(why, "control character in a topic pattern");
    memcpy(p->text, s, n);
    p->text[n] = '\0';

    size_t fl = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '/') continue;
        const char *lv = s + start;
        size_t ll = i - start;
        int last = i == n;
        if (ll == 1 && lv[0] == '#') {
            if (!last) return fail(why, "'#' must be the last level");
            p->multi = 1;
        } else {
            if (p->nlevels == LS_TOPIC_LEVELS_MAX) return fail(why, "more than 32 levels");
            ls_topic_level *l = &p->level[p->nlevels];
            if (ll == 1 && lv[0] == '+') {
                l->kind = LS_LEVEL_PLUS;
            } else if (ll == PLACEHOLDER_LEN && memcmp(lv, PLACEHOLDER, PLACEHOLDER_LEN) == 0) {
                if (p->device >= 0) return fail(why, "{device} appears twice");
                l->kind = LS_LEVEL_DEVICE;
                p->device = (int8_t)p->nlevels;
            } else {
                if (memchr(lv, '+', ll) || memchr(lv, '#', ll))
                    return fail(why, "'+' and '#' must be whole levels");
                for (size_t k = 0; k + PLACEHOLDER_LEN <= ll; k++)
                    if (memcmp(lv + k, PLACEHOLDER, PLACEHOLDER_LEN) == 0)
                        return fail(why, "{device} must be a whole level");
                l->kind = LS_LEVEL_LITERAL;
                l->off = (uint16_t)start;
                l->len = (uint16_t)ll;
            }
            p->nlevels++;
        }
        /* The subscription: the same text with {device} as '+'. */
        if (start) p->filter[fl++] = '/';
        if (ll == PLACEHOLDER_LEN && memcmp(lv, PLACEHOLDER, PLACEHOLDER_LEN) == 0) {
            p->filter[fl++] = '+';
        } else {
            memcpy(p->filter + fl, lv, ll);
            fl += ll;
        }
        start = i + 1;
    }
    p->filter[fl] = '\0';
    if (p->device < 0) return fail(why, "a topic pattern needs one {device} level");
    return 0;
}

int ls_topic_match(const ls_topic_pattern *p, const char *topic, size_t len, const char **dev,
                   size_t *dev_len)
{
    size_t pos = 0;
    if (len > 0 && topic[0] == '$' && (p->nlevels == 0 || p->level[0].kind != LS_LEVEL_LITERAL))
        return 0;
    for (unsigned i = 0; i < p->nlevels; i++) {
        if (pos > len) return 0; /* the topic has fewer levels */
        const char *lv = topic + pos;
        const char *slash = memchr(lv, '/', len - pos);
        size_t ll = slash ? (size_t)(slash - lv) : len - pos;
        const ls_topic_level *l = &p->level[i];
        if (l->kind == LS_LEVEL_LITERAL) {
            if (ll != l->len || memcmp(lv, p->text + l->off, ll) != 0) return 0;
        } else if (l->kind == LS_LEVEL_DEVICE) {
            *dev = lv;
            *dev_len = ll;
        }
        pos += ll + 1; /* past the '/' (or one past the end: no more levels) */
    }
    /* All pattern levels consumed: the topic must end here, unless '#'. */
    if (pos == len + 1) return 1;
    return p->multi ? 1 : 0;
}

int ls_topic_list_parse(ls_topic_list *l, const char *s, size_t n, const char **why)
{
    l->v = NULL;
    l->n = 0;
    size_t start = 0, blank = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') blank = 0;
    if (blank) return 0; /* no pattern */
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',') continue;
        size_t a = start, b = i;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        start = i + 1;
        int rc;
        ls_topic_pattern *nv;
        if (a == b) {
            rc = fail(why, "empty pattern in the list (a stray comma?)");
        } else if (l->n == LS_TOPIC_PATTERNS_MAX) {
            rc = fail(why, "more than 32 patterns");
        } else if (!(nv = realloc(l->v, (l->n + 1) * sizeof(*nv)))) {
            *why = "out of memory";
            rc = -ENOMEM;
        } else {
            l->v = nv;
            rc = ls_topic_pattern_parse(&l->v[l->n], s + a, b - a, why);
        }
        if (rc < 0) {
            ls_topic_list_free(l);
            return rc;
        }
        l->n++;
    }
    return 0;
}

void ls_topic_list_free(ls_topic_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int ls_topic_list_check(const char *s, size_t n, const char **why)
{
    ls_topic_list l;
    int rc = ls_topic_list_parse(&l, s, n, why);
    ls_topic_list_free(&l);
    return rc;
}

int ls_topic_pattern_check(const char *s, size_t n, const char **why)
{
    ls_topic_pattern *p;
    if (n == 0) return 0;
    if (!(p = malloc(sizeof(*p)))) {
        *why = "out of memory";
        return -ENOMEM;
    }
    int rc = ls_topic_pattern_parse(p, s, n, why);
    free(p);
    return rc;
}

int ls_topic_template_check(const char *s, size_t n, int need_device, const char **why)
{
    int found = 0;
    if (n == 0) return fail(why, "empty topic");
    if (n > LS_TOPIC_PATTERN_MAX) return fail(why, "topic longer than 512 bytes");
    if (has_control(s, n)) return fail(why, "control character in a topic");
    if (memchr(s, '+', n) || memchr(s, '#', n))
        return fail(why, "'+' and '#' are not allowed in a topic");
    for (size_t k = 0; k + PLACEHOLDER_LEN <= n; k++)
        if (memcmp(s + k, PLACEHOLDER, PLACEHOLDER_LEN) == 0) found++;
    if (found > 1) return fail(why, "{device} appears twice");
    if (need_device > 0 && !found) return fail(why, "the topic needs a {device} placeholder");
    return 0;
}

/* Empty disables the topic; otherwise {device} optional / required. */
int ls_topic_template_check0(const char *s, size_t n, const char **why)
{
    return n == 0 ? 0 : ls_topic_template_check(s, n, 0, why);
}

int ls_topic_template_check1(const char *s, size_t n, const char **why)
{
    return n == 0 ? 0 : ls_topic_template_check(s, n, 1, why);
}

size_t ls_topic_template_prefix(const char *tmpl)
{
    const char *ph = strstr(tmpl, PLACEHOLDER);
    return ph ? (size_t)(ph - tmpl) : strlen(tmpl);
}

int ls_topic_expand(ls_buf *out, const char *tmpl, const char *id, size_t len)
{
    const char *ph = strstr(tmpl, PLACEHOLDER);
    if (!ph) return ls_buf_append(out, tmpl, strlen(tmpl));
    ls_buf_append(out, tmpl, (size_t)(ph - tmpl));
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = id[i] == '+' ? "%2B" : id[i] == '#' ? "%23" : id[i] == '%' ? "%25" : NULL;
        if (!esc) continue;
        ls_buf_append(out, id + run, i - run);
        ls_buf_append(out, esc, 3);
        run = i + 1;
    }
    ls_buf_append(out, id + run, len - run);
    const char *rest = ph + PLACEHOLDER_LEN;
    ls_buf_append(out, rest, strlen(rest));
    return out->overflow ? -1 : 0;
}
