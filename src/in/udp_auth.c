/*
 * udp_auth.c - signed UDP heartbeats (udp.auth = hmac).
 *
 * A signed line is "<id> <ts> <source>:<mac>": the device id, the time of
 * the heartbeat in ms since the epoch, the name of the source whose key
 * signed it, and the first 16 bytes of HMAC-SHA256(key, "<id> <ts>") in
 * lower-case hex (32 characters; 128 bits, half the hash, as RFC 2104
 * allows; the verifier compares hex with hex, since encoding the 16 bytes it
 * computed costs less than decoding the 32 it was sent).  The MAC
 * covers the id and the timestamp, so a line can be neither moved to another
 * device nor to another time; what is left to an attacker is replaying a
 * line as it was captured, which udp.c bounds by the timestamp's window and
 * which can never move a device's lastActivityTime past the original
 * timestamp (docs/semantics.md).
 *
 * Keys live in a file (udp.keys_file), one a line, "<source> <hex key>": a
 * source is a name for whoever holds its keys (a gateway, a fleet, a
 * vendor), 1..32 letters, digits, '_', '-' or '.'; a key is 16..64 random
 * bytes in hex.  A source may have several keys at once, for rotation: the
 * verifier accepts any of them and tries first the one that matched last; a
 * signer uses the first one in the file.  The file is read at start and on
 * SIGHUP.
 *
 * Cost.  An HMAC is two SHA-256 compressions for a line up to 55 bytes of
 * id and timestamp (one more per further 64): the states after the key's
 * inner and outer pad blocks are computed once, when the key is loaded, and
 * copied per line, and the last block of each hash is padded here and
 * compressed with SHA256_Transform (OpenSSL's low-level SHA-256, which uses
 * the CPU's SHA instructions).  HMAC() sets up an EVP context per call and
 * measured ten times slower (1.5 us a line against 0.14 us with
 * SHA256_Update and SHA256_Final, less without them).  Looking up a source is
 * a binary search over the sorted source names.
 */
/* The low-level SHA-256 functions are deprecated in OpenSSL 3's API, not removed. */
#define OPENSSL_API_COMPAT 10101

#include "in/udp_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX (4 << 20)

struct ls_udp_key {
    char source[LS_UDP_SOURCE_MAX + 1];
    size_t source_len;
    unsigned line;           /* in the file: keeps a source's keys in file order */
    SHA256_CTX inner, outer; /* after the key XOR ipad / opad block */
};

typedef struct src_entry {
    const char *name; /* points into its first key */
    size_t len;
    size_t first, n; /* its keys: keys[first .. first + n) */
    size_t last_hit; /* index (in its keys) of the key that matched last */
} src_entry;

struct ls_udp_keys {
    ls_udp_key *keys;
    size_t nkeys;
    src_entry *srcs; /* sorted by name */
    size_t nsrcs;
};

/* A hex digit's value + 1, 0 for any other byte: a table, since branches on
 * random digits mispredict (they were most of a line's cost). */
static const unsigned char hex1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int hexval(char c)
{
    return (int)hex1[(unsigned char)c] - 1;
}

static int is_source_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static void key_init(ls_udp_key *k, const unsigned char *secret, size_t len)
{
    unsigned char block[64];
    memset(block, 0x36, sizeof(block));
    for (size_t i = 0; i < len; i++)
        block[i] ^= secret[i];
    SHA256_Init(&k->inner);
    SHA256_Update(&k->inner, block, sizeof(block));
    memset(block, 0x5c, sizeof(block));
    for (size_t i = 0; i < len; i++)
        block[i] ^= secret[i];
    SHA256_Init(&k->outer);
    SHA256_Update(&k->outer, block, sizeof(block));
    OPENSSL_cleanse(block, sizeof(block));
}

static void store_be32(unsigned char *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

/* The padding of a message's last block: `len` bytes of it are in
 * block[0..len) (len <= 55), `total` is the message's length in bytes
 * including the key's pad block before it. */
static void pad_block(unsigned char block[64], size_t len, uint64_t total)
{
    block[len] = 0x80;
    memset(block + len + 1, 0, 55 - len);
    uint64_t bits = __builtin_bswap64(total * 8);
    memcpy(block + 56, &bits, 8);
}

/*
 * The first LS_UDP_MAC_BYTES of HMAC-SHA256(key, id " " ts).  A message of up
 * to 55 bytes (a 36-character id and a 13-digit ts take 50) is one block
 * after the key's pad block: its padding is written here and each hash is a
 * single compression (SHA256_Transform), with none of SHA256_Update's and
 * SHA256_Final's bookkeeping.  Longer messages go the general way.
 */
static void mac(const ls_udp_key *k, const char *id, size_t id_len, const char *ts, size_t ts_len,
                unsigned char out[LS_UDP_MAC_BYTES])
{
    /* The outer hash's message is the 32-byte inner digest: its padding is fixed. */
    static const unsigned char outer_pad[32] = {0x80, [30] = 0x03, [31] = 0x00}; /* 768 bits */
    unsigned char block[64];
    SHA256_CTX c = k->inner;
    size_t n = id_len + 1 + ts_len;
    if (n <= 55) {
        memcpy(block, id, id_len);
        block[id_len] = ' ';
        memcpy(block + id_len + 1, ts, ts_len);
        pad_block(block, n, 64 + n);
        SHA256_Transform(&c, block);
        for (int i = 0; i < 8; i++)
            store_be32(block + 4 * i, c.h[i]);
    } else {
        SHA256_Update(&c, id, id_len);
        SHA256_Update(&c, " ", 1);
        SHA256_Update(&c, ts, ts_len);
        SHA256_Final(block, &c);
    }
    memcpy(block + 32, outer_pad, sizeof(outer_pad));
    c = k->outer;
    SHA256_Transform(&c, block);
    for (int i = 0; i < LS_UDP_MAC_BYTES / 4; i++)
        store_be32(out + 4 * i, c.h[i]);
}

static int key_cmp(const void *a, const void *b)
{
    const ls_udp_key *x = a, *y = b;
    int c = strcmp(x->source, y->source);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* One line's fields, trimmed, comment removed; returns the count (at most 3 kept). */
static int split(const char *p, const char *end, const char *f[3], size_t fl[3])
{
    int nf = 0;
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash) end = hash;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        if (p == end) break;
        const char *s = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (nf < 3) {
            f[nf] = s;
            fl[nf] = (size_t)(p - s);
        }
        nf++;
    }
    return nf;
}

int ls_udp_keys_parse(const char *text, size_t n, ls_udp_keys **out, char *err, size_t errlen)
{
    ls_udp_keys *k = calloc(1, sizeof(*k));
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    *out = NULL;
    if (!k) return -ENOMEM;
    for (const char *p = text, *end = text + n; p < end && rc == 0;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
        const char *f[3];
        size_t fl[3];
        lineno++;
        int nf = split(p, le, f, fl);
        p = nl ? nl + 1 : end;
        if (nf == 0) continue;
        if (nf != 2) {
            rc = fail(err, errlen, "line %u: expected \"<source> <hex key>\"", lineno);
            break;
        }
        if (fl[0] > LS_UDP_SOURCE_MAX) {
            rc = fail(err, errlen, "line %u: source name longer than %d bytes", lineno,
                      LS_UDP_SOURCE_MAX);
            break;
        }
        for (size_t i = 0; i < fl[0] && rc == 0; i++)
            if (!is_source_char(f[0][i]))
                rc = fail(err, errlen, "line %u: a source name is letters, digits, '_', '-' or '.'",
                          lineno);
        if (rc) break;
        if (fl[1] % 2 || fl[1] < 2 * LS_UDP_KEY_MIN || fl[1] > 2 * LS_UDP_KEY_MAX) {
            rc = fail(err, errlen, "line %u: a key is %d to %d hex digits (%d to %d bytes)", lineno,
                      2 * LS_UDP_KEY_MIN, 2 * LS_UDP_KEY_MAX, LS_UDP_KEY_MIN, LS_UDP_KEY_MAX);
            break;
        }
        unsigned char secret[LS_UDP_KEY_MAX];
        for (size_t i = 0; i < fl[1] / 2 && rc == 0; i++) {
            int hi = hexval(f[1][2 * i]), lo = hexval(f[1][2 * i + 1]);
            if (hi < 0 || lo < 0)
                rc = fail(err, errlen, "line %u: the key is not hex", lineno);
            else
                secret[i] = (unsigned char)(hi << 4 | lo);
        }
        if (rc) {
            OPENSSL_cleanse(secret, sizeof(secret));
            break;
        }
        if (k->nkeys == LS_UDP_KEYS_MAX) {
            rc = fail(err, errlen, "line %u: more than %d keys", lineno, LS_UDP_KEYS_MAX);
            break;
        }
        if (k->nkeys == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            ls_udp_key *nk = realloc(k->keys, ncap * sizeof(*nk));
            if (!nk) {
                rc = -ENOMEM;
                break;
            }
            k->keys = nk;
            cap = ncap;
        }
        ls_udp_key *key = &k->keys[k->nkeys++];
        memset(key, 0, sizeof(*key));
        memcpy(key->source, f[0], fl[0]);
        key->source_len = fl[0];
        key->line = lineno;
        key_init(key, secret, fl[1] / 2);
        OPENSSL_cleanse(secret, sizeof(secret));
    }
    if (rc == 0 && k->nkeys == 0) rc = fail(err, errlen, "no key in it");
    if (rc == 0) {
        qsort(k->keys, k->nkeys, sizeof(*k->keys), key_cmp);
        if (!(k->srcs = calloc(k->nkeys, sizeof(*k->srcs)))) rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < k->nkeys; i++) {
        if (i == 0 || strcmp(k->keys[i].source, k->keys[i - 1].source) != 0)
            k->srcs[k->nsrcs++] =
                (src_entry){.name = k->keys[i].source, .len = k->keys[i].source_len, .first = i};
        k->srcs[k->nsrcs - 1].n++;
    }
    if (rc < 0) {
        if (rc == -ENOMEM) fail(err, errlen, "out of memory");
        ls_udp_keys_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int ls_udp_keys_load(const char *path, ls_udp_keys **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        snprintf(err, errlen, "cannot read: %s", strerror(e));
        return -e;
    }
    if (st.st_size > FILE_MAX) {
        close(fd);
        snprintf(err, errlen, "larger than %d bytes", FILE_MAX);
        return -EFBIG;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf) return -ENOMEM;
    int rc = ls_udp_keys_parse(buf, got, out, err, errlen);
    OPENSSL_cleanse(buf, got);
    free(buf);
    return rc;
}

void ls_udp_keys_free(ls_udp_keys *k)
{
    if (!k) return;
    if (k->keys) OPENSSL_cleanse(k->keys, k->nkeys * sizeof(*k->keys));
    free(k->keys);
    free(k->srcs);
    free(k);
}

size_t ls_udp_keys_count(const ls_udp_keys *k, size_t *sources)
{
    if (sources) *sources = k ? k->nsrcs : 0;
    return k ? k->nkeys : 0;
}

static src_entry *src_find(const ls_udp_keys *k, const char *name, size_t len)
{
    size_t lo = 0, hi = k->nsrcs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const src_entry *s = &k->srcs[mid];
        size_t m = s->len < len ? s->len : len;
        int c = memcmp(s->name, name, m);
        if (c == 0) c = (s->len > len) - (s->len < len);
        if (c == 0) return &k->srcs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const ls_udp_key *ls_udp_keys_signer(const ls_udp_keys *k, const char *source)
{
    const src_entry *s = k ? src_find(k, source, strlen(source)) : NULL;
    return s ? &k->keys[s->first] : NULL;
}

/* out[0..32): the MAC in lower-case hex. */
static void mac_hex(const unsigned char mac[LS_UDP_MAC_BYTES], char out[LS_UDP_MAC_HEX])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < LS_UDP_MAC_BYTES; i++) {
        unsigned b = mac[i];
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
}

/* Whether a[0..32) equals b[0..32), in a time that does not depend on where they differ. */
static int equal32(const char *a, const char *b)
{
    uint64_t x = 0, u, v;
    for (int i = 0; i < 32; i += 8) {
        memcpy(&u, a + i, 8);
        memcpy(&v, b + i, 8);
        x |= u ^ v;
    }
    return x == 0;
}

size_t ls_udp_sign(const ls_udp_key *key, const char *id, size_t id_len, int64_t ts, char *out,
                   size_t cap)
{
    char tsb[24], *t = tsb + sizeof(tsb);
    uint64_t v = ts < 0 ? 0 : (uint64_t)ts;
    do
        *--t = (char)('0' + v % 10);
    while (v /= 10);
    size_t tl = (size_t)(tsb + sizeof(tsb) - t);
    size_t len = id_len + 1 + tl + 1 + key->source_len + 1 + LS_UDP_MAC_HEX;
    if (ts < 0 || len > cap) return 0;
    unsigned char d[LS_UDP_MAC_BYTES];
    mac(key, id, id_len, t, tl, d);
    char *o = out;
    memcpy(o, id, id_len);
    o += id_len;
    *o++ = ' ';
    memcpy(o, t, tl);
    o += tl;
    *o++ = ' ';
    memcpy(o, key->source, key->source_len);
    o += key->source_len;
    *o++ = ':';
    mac_hex(d, o);
    return len;
}

int ls_udp_verify(ls_udp_keys *k, const char *id, size_t id_len, const char *ts, size_t ts_len,
                  const char *sig, size_t sig_len)
{
    const char *colon = memchr(sig, ':', sig_len);
    if (!colon) return 2;
    src_entry *s = src_find(k, sig, (size_t)(colon - sig));
    if (!s) return 1;
    if (sig + sig_len - (colon + 1) != LS_UDP_MAC_HEX) return 2;
    /* The MAC is compared as the hex the signer writes (lower case): encoding
     * 16 bytes costs less than decoding 32 characters. */
    for (size_t t = 0; t < s->n; t++) {
        size_t i = (s->last_hit + t) % s->n;
        unsigned char d[LS_UDP_MAC_BYTES];
        char h[LS_UDP_MAC_HEX];
        mac(&k->keys[s->first + i], id, id_len, ts, ts_len, d);
        mac_hex(d, h);
        if (equal32(h, colon + 1)) {
            s->last_hit = i;
            return 0;
        }
    }
    return 2;
}
