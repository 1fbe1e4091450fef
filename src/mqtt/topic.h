/*
 * topic.h - topic patterns with a {device} placeholder, and publish
 * topic templates.  See mqtt_topic.c.
 */
#ifndef LS_MQTT_TOPIC_H
#define LS_MQTT_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define LS_TOPIC_LEVELS_MAX 32   /* levels in a pattern */
#define LS_TOPIC_PATTERN_MAX 512 /* bytes in a pattern */
#define LS_TOPIC_PATTERNS_MAX 32 /* patterns in a list */

enum { LS_LEVEL_LITERAL = 0, LS_LEVEL_PLUS, LS_LEVEL_DEVICE };

typedef struct ls_topic_level {
    uint16_t off, len; /* LITERAL: the bytes in `text` */
    uint8_t kind;      /* LS_LEVEL_* */
} ls_topic_level;

/*
 * A subscription pattern: MQTT topic filter syntax plus one level that is
 * exactly "{device}", e.g. "sensors/+/{device}/#".  `filter` is what is
 * subscribed (the placeholder becomes "+"); a topic that matches names the
 * device by the text of that level.
 */
typedef struct ls_topic_pattern {
    char text[LS_TOPIC_PATTERN_MAX + 1];
    char filter[LS_TOPIC_PATTERN_MAX + 1];
    ls_topic_level level[LS_TOPIC_LEVELS_MAX];
    uint8_t nlevels; /* levels before a trailing '#' */
    uint8_t multi;   /* ends in "/#" (or is "#") */
    int8_t device;   /* index of the {device} level */
} ls_topic_pattern;

/*
 * Parses n bytes of s as a pattern.  Returns 0, or -EINVAL with *why set
 * (empty, too long, a wildcard inside a level, '#' not last, no or two
 * {device} levels, a control character).
 */
int ls_topic_pattern_parse(ls_topic_pattern *p, const char *s, size_t n, const char **why);

/*
 * Matches an incoming topic (len bytes, not NUL-terminated) against p, with
 * MQTT's rules ('+' one level, '#' any number including none, a topic
 * starting with '$' never matched by a leading wildcard).  On a match sets
 * *dev, *dev_len to the {device} level inside `topic` and returns 1; else 0.
 */
int ls_topic_match(const ls_topic_pattern *p, const char *topic, size_t len, const char **dev,
                   size_t *dev_len);

/* A comma-separated list of patterns, e.g. "a/{device}, b/{device}/#". */
typedef struct ls_topic_list {
    ls_topic_pattern *v;
    size_t n;
} ls_topic_list;

/* Parses the list (empty or blank = no pattern).  0 or -EINVAL / -ENOMEM with *why. */
int ls_topic_list_parse(ls_topic_list *l, const char *s, size_t n, const char **why);
void ls_topic_list_free(ls_topic_list *l);

/* Config checks (cfg_check_fn): a pattern list; one pattern or empty. */
int ls_topic_list_check(const char *s, size_t n, const char **why);
int ls_topic_pattern_check(const char *s, size_t n, const char **why);

/*
 * A publish topic template: a valid topic name (no '+' or '#', no
 * controls) with at most one "{device}" anywhere.  `need_device` = 1
 * requires exactly one.  Returns 0 or -EINVAL with *why.
 */
int ls_topic_template_check(const char *s, size_t n, int need_device, const char **why);
/* The template check with need_device = 0, 1 (cfg_check_fn). */
int ls_topic_template_check0(const char *s, size_t n, const char **why);
int ls_topic_template_check1(const char *s, size_t n, const char **why);

/*
 * Appends the template with {device} replaced by the id, in which '+',
 * '#' and '%' are written as %2B, %23 and %25 ('/' is kept: a device id
 * with slashes becomes a deeper topic).  Returns 0 or -1 (buffer cap).
 */
int ls_topic_expand(ls_buf *out, const char *tmpl, const char *id, size_t len);

/* The bytes of the template before {device} (the whole template if none). */
size_t ls_topic_template_prefix(const char *tmpl);

#endif
