/*
 * udp_auth.h - signed UDP heartbeats: the key file and the truncated
 * HMAC-SHA256 of a line.  See udp_auth.c.  Depends on OpenSSL's libcrypto
 * only, so that lastseen-sim and lastseen-bench sign with the same code.
 */
#ifndef LS_UDP_AUTH_H
#define LS_UDP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define LS_UDP_SOURCE_MAX 32 /* bytes of a source name */
#define LS_UDP_MAC_BYTES 16  /* HMAC-SHA256 truncated to 128 bits */
#define LS_UDP_MAC_HEX (2 * LS_UDP_MAC_BYTES)
#define LS_UDP_KEY_MIN 16 /* bytes of a key */
#define LS_UDP_KEY_MAX 64
#define LS_UDP_KEYS_MAX 10000 /* keys in a file */

typedef struct ls_udp_key ls_udp_key;
typedef struct ls_udp_keys ls_udp_keys;

/*
 * Parses a key file's text: one key a line, "<source> <hex key>", '#'
 * comments and blank lines ignored; a source may have several keys.  0 and
 * a new table in *out, or -EINVAL with "line N: why" in err (no key is
 * quoted).  An empty file is an error.
 */
int ls_udp_keys_parse(const char *text, size_t n, ls_udp_keys **out, char *err, size_t errlen);

/* Reads and parses the file at path (at most 4 MiB).  0 or < 0, err set. */
int ls_udp_keys_load(const char *path, ls_udp_keys **out, char *err, size_t errlen);

void ls_udp_keys_free(ls_udp_keys *k);

/* How many keys and sources the table has. */
size_t ls_udp_keys_count(const ls_udp_keys *k, size_t *sources);

/* The key a signer of `source` uses: its first in the file; NULL if none. */
const ls_udp_key *ls_udp_keys_signer(const ls_udp_keys *k, const char *source);

/*
 * Writes the signed line "<id> <ts> <source>:<mac>" (no newline) into
 * out[0..cap) and returns its length, or 0 if it does not fit.  The MAC is
 * the first LS_UDP_MAC_BYTES of HMAC-SHA256(key, "<id> <ts>"), in lower-case
 * hex.
 */
size_t ls_udp_sign(const ls_udp_key *key, const char *id, size_t id_len, int64_t ts, char *out,
                   size_t cap);

/*
 * Checks a signed line's fields: `id` and `ts` (the decimal digits as sent)
 * and `sig` ("<source>:<mac>").  0 if one of the source's keys made the
 * MAC; 1 if the source is not in the table; 2 if the signature is
 * malformed or no key of its source made it (the MAC must be in lower-case
 * hex, as ls_udp_sign() writes it).  Keeps, per source, which key
 * matched last and tries it first, so a rotation costs one extra MAC only
 * on the lines signed with the key that is not current.  Not thread-safe:
 * one verifying thread per table.
 */
int ls_udp_verify(ls_udp_keys *k, const char *id, size_t id_len, const char *ts, size_t ts_len,
                  const char *sig, size_t sig_len);

#endif
