/*
 * token.c - device ids <-> NATS subject tokens; FNV-1a partitions.
 *
 * The safe set (docs/cluster.md: letters, digits and _:@!$%&'()+,;=-) is
 * printable ASCII that NATS subjects and MQTT topics both carry
 * unchanged: without what either treats specially ('.', blanks, '*',
 * '>', '/', '#'; '+' is kept, MQTT gives it a meaning only in filters,
 * which a device's publish topic never is), without '~', which marks the
 * escaped form, and without quotes and brackets.  Most real ids (serial
 * numbers, MAC addresses with ':', UUIDs) are safe and read as
 * themselves in the streams; the rest cost a third more bytes.
 *
 * base64url here is RFC 4648 section 5 without padding; decoding is
 * strict (no padding, no other alphabet, the unused low bits of the last
 * character zero), so that each id has one token.
 */
#include "cluster/token.h"

#include <string.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int ls_token_safe_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != 0 && strchr("_:@!$%&'()+,;=-", c) != NULL;
}

static int all_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ls_token_safe_char((unsigned char)s[i])) return 0;
    return 1;
}

size_t ls_token_encode(const char *id, size_t len, char *out)
{
    if (all_safe(id, len)) {
        memcpy(out, id, len);
        out[len] = '\0';
        return len;
    }
    const unsigned char *p = (const unsigned char *)id;
    size_t o = 0, i = 0;
    out[o++] = '~';
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int ls_token_decode(const char *tok, size_t n, char *out, size_t *len)
{
    if (n == 0 || n > LS_TOKEN_MAX) return LS_EINVAL;
    if (tok[0] != '~') {
        if (n > LS_ID_MAX || !all_safe(tok, n)) return LS_EINVAL;
        memcpy(out, tok, n);
        out[n] = '\0';
        *len = n;
        return 0;
    }
    const char *s = tok + 1;
    size_t m = n - 1, o = 0;
    if (m == 0 || m % 4 == 1) return LS_EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < m; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) return LS_EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= LS_ID_MAX) return LS_EINVAL;
            out[o++] = (char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return LS_EINVAL; /* the unused low bits must be zero */
    out[o] = '\0';
    if (ls_id_check(out, o) || all_safe(out, o)) return LS_EINVAL;
    *len = o;
    return 0;
}

uint32_t ls_token_fnv1a32(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}
