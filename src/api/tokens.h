/*
 * tokens.h - API credentials: the token file and checking a presented
 * token against it (tokens.c).  The request side (which route needs what,
 * the Authorization header, reloading) is auth.h.
 *
 * A token has a name (1..LS_TOKEN_NAME_MAX of A-Z a-z 0-9 . _ -, starting
 * with a letter or digit) and one or more scopes.  Its text is "lst_" and
 * 32 random bytes (getrandom(2)) in base64url, 47 characters; it is shown
 * once, when it is made, and stored only hashed: a random 16-byte salt
 * and SHA-256(salt || text), compared in constant time (CRYPTO_memcmp).
 * Beside them the file keeps a lookup tag, the first 8 bytes of
 * SHA-256(text), so that a bearer token (which comes without its name) is
 * found with one hash and a binary search instead of one salted hash per
 * token; 64 bits of a hash of 256 random bits give nothing away.
 *
 * The file, <store.data_dir>/tokens, is text, one token a line after a
 * version line:
 *
 *   lastseen-tokens 1
 *   NAME SCOPES CREATED_MS TAG SALT HASH        (hex; SCOPES like read,ingest)
 *
 * Lines that are empty or start with '#' are skipped.  It is written
 * whole (a temporary file, fsync, rename, fsync of the directory) with
 * mode 0600, so a reader sees the old file or the new one, never half.
 */
#ifndef LS_TOKENS_H
#define LS_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#define LS_TOKENS_FILE "tokens" /* in store.data_dir */
#define LS_TOKEN_NAME_MAX 64
#define LS_TOKENS_MAX 1024
#define LS_TOKEN_PREFIX "lst_"
#define LS_TOKEN_TEXT_LEN 47 /* "lst_" + base64url of 32 bytes */

/* Scopes, as bits; a credential has one or more. */
enum {
    LS_SCOPE_READ = 1u << 0,   /* GET routes, the event stream, the dashboard's data */
    LS_SCOPE_INGEST = 1u << 1, /* activity, bulk, connect/disconnect */
    LS_SCOPE_ADMIN = 1u << 2,  /* device and type configuration, deletes, alarm status */
    LS_SCOPES_ALL = (1u << 3) - 1,
};

typedef struct ls_token {
    char name[LS_TOKEN_NAME_MAX + 1];
    unsigned scopes;
    int64_t created; /* wall ms */
    uint8_t tag[8];  /* SHA-256(text)[0..8] */
    uint8_t salt[16];
    uint8_t hash[32]; /* SHA-256(salt || text) */
} ls_token;

/* A set of tokens, kept sorted by tag.  {0} is an empty set. */
typedef struct ls_tokens {
    ls_token *v;
    size_t n, cap;
} ls_tokens;

void ls_tokens_free(ls_tokens *t);

/* "read,ingest" (any order and case, commas and/or blanks) into bits.
 * 0, or -EINVAL for an unknown or missing name. */
int ls_scopes_parse(const char *s, unsigned *out);
/* "read,ingest,admin" (those set, in this order); "" for none. */
void ls_scopes_format(unsigned scopes, char *buf, size_t len);

/* NULL if `name` (n bytes) is a valid token name, else why not. */
const char *ls_token_name_check(const char *name, size_t n);

/*
 * Parses the file's text (n bytes) into *t (emptied first).  0, or
 * -EINVAL with "line N: reason" in why.
 */
int ls_tokens_parse(ls_tokens *t, const char *text, size_t n, char *why, size_t whylen);

/* Reads and parses `path`; a missing file is an empty set.  0, or
 * -EINVAL (with why) / -errno. */
int ls_tokens_load(ls_tokens *t, const char *path, char *why, size_t whylen);

/* Writes the set to `path` as above.  0 or -errno. */
int ls_tokens_save(const ls_tokens *t, const char *path);

/*
 * Makes a token `name` with `scopes`, created at `now` (wall ms): its text
 * into text (room for LS_TOKEN_TEXT_LEN + 1).  0, or LS_EINVAL (bad name
 * or no scope), -EEXIST (the name is taken), LS_EFULL (LS_TOKENS_MAX),
 * -errno from getrandom.
 */
int ls_tokens_add(ls_tokens *t, const char *name, unsigned scopes, int64_t now, char *text);

/* Removes token `name`: 0, or LS_ENOTFOUND. */
int ls_tokens_remove(ls_tokens *t, const char *name);

/* The token named `name` (n bytes), or NULL. */
const ls_token *ls_tokens_find(const ls_tokens *t, const char *name, size_t n);

/*
 * The token whose text is tok (n bytes), or NULL: by its tag (a bearer
 * token), then the salted hash compared in constant time.
 */
const ls_token *ls_tokens_check(const ls_tokens *t, const char *tok, size_t n);

/* The same for a name and a token (HTTP Basic): the token `name` if tok is its text. */
const ls_token *ls_tokens_check_named(const ls_tokens *t, const char *name, size_t name_len,
                                      const char *tok, size_t n);

#endif
