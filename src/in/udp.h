/*
 * udp.h - UDP heartbeat input.  See udp.c.
 */
#ifndef LS_UDP_H
#define LS_UDP_H

#include <stddef.h>
#include <stdint.h>

struct ls_config;
struct ls_ingest;
struct ls_udp;

/* Why a line was skipped (counted per reason). */
typedef enum ls_udp_reject {
    LS_UDP_BAD_ID = 0, /* empty, over 256 bytes, bad UTF-8 or controls */
    LS_UDP_BAD_TS,     /* the timestamp is not 1..int64 decimal ms */
    LS_UDP_BAD_LINE,   /* more than two fields */
    LS_UDP_TRUNCATED,  /* the datagram was larger than the receive buffer */
    LS_UDP_REFUSED,    /* the engine refused it (state.max_devices) */
    /* udp.auth = hmac (udp_auth.c): */
    LS_UDP_UNSIGNED,       /* no signature field */
    LS_UDP_UNKNOWN_SOURCE, /* signed by a source that has no key */
    LS_UDP_FORGED,         /* a malformed signature, or none of its source's keys made it */
    LS_UDP_OUT_OF_WINDOW,  /* ts older than udp.auth_window or ahead by state.max_clock_skew */
    LS_UDP__REJECTS
} ls_udp_reject;

typedef struct ls_udp_stats {
    uint64_t datagrams;
    uint64_t activities; /* lines applied */
    uint64_t rejected[LS_UDP__REJECTS];
} ls_udp_stats;

/* Binds cfg's udp.listen and starts the receiving thread, which hands the
 * activities to the shards through the ingest port `in` (core/ingest.h).
 * cfg is read only here.  0 or < 0 (logged). */
int ls_udp_start(struct ls_udp **out, struct ls_ingest *in, const struct ls_config *cfg);
void ls_udp_stop(struct ls_udp *u);

/* A consistent-enough copy of the counters (each read with a relaxed load). */
void ls_udp_get_stats(const struct ls_udp *u, ls_udp_stats *out);
const char *ls_udp_reject_name(ls_udp_reject r);

/*
 * Parses one line "<device-id>[ <ts-ms>]" (no newline; a trailing '\r' and
 * spaces around the fields are ignored).  On success sets *id, *len and *ts
 * (0 = now) and returns 0; an empty line returns 1 (skipped silently); a bad
 * one returns -1 with *why set.  Pure, for the tests and the fuzzer.
 */
int ls_udp_parse_line(const char *p, size_t n, const char **id, size_t *len, int64_t *ts,
                      ls_udp_reject *why);

struct ls_udp_keys;

/*
 * Parses one signed line "<device-id> <ts-ms> <source>:<mac>" (udp_auth.h)
 * and checks it: the MAC with `keys`, then the timestamp, which must lie in
 * [now - back_ms, now + ahead_ms] (wall ms).  Returns 0 with *id, *len and
 * *ts set, 1 for an empty line, or -1 with *why: LS_UDP_UNSIGNED for a line
 * of one or two fields, the reasons of ls_udp_parse_line() for a bad id or
 * ts or too many fields, then LS_UDP_UNKNOWN_SOURCE, LS_UDP_FORGED,
 * LS_UDP_OUT_OF_WINDOW.  For the tests and the fuzzer too; `keys` is the
 * caller's (ls_udp_verify() remembers which key matched).
 */
int ls_udp_parse_signed(struct ls_udp_keys *keys, const char *p, size_t n, int64_t now,
                        int64_t back_ms, int64_t ahead_ms, const char **id, size_t *len,
                        int64_t *ts, ls_udp_reject *why);

/*
 * Reads udp.keys_file again (SIGHUP): the receiving thread takes the new
 * keys before its next datagram; a file that cannot be loaded leaves the
 * keys in use (logged).  0, < 0, or 1 when udp.auth is off (or u NULL).
 * Main thread.
 */
int ls_udp_reload_keys(struct ls_udp *u);

#endif
