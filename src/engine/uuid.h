/*
 * uuid.h - canonical UUID text packed into 16 bytes (see uuid.c).
 *
 * Device ids are very often UUIDs in their 36-character text form
 * (8-4-4-4-12 hex digits).  The device record keeps such an id as its 16
 * bytes plus one bit for the case of its letters, so the exact original
 * text comes back: only ids whose letters are all lower-case or all
 * upper-case qualify; anything else (mixed case, braces, other lengths,
 * dashes elsewhere) stays text.
 */
#ifndef LS_UUID_H
#define LS_UUID_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LS_UUID_TEXT 36

/*
 * Packs `text` into out[16] if it is a canonical UUID (see above): returns
 * 1 and sets *upper (1 if its letters are upper-case; an id without
 * letters counts as lower-case), else 0 and out is unspecified.
 */
int ls_uuid_pack(const char *text, size_t len, uint8_t out[16], int *upper);

/* Hex digits of 4 bytes b[0..3], in order, as 8 ASCII bytes in a
 * little-endian word; off is 'a' - '0' - 10 (lower) or 'A' - '0' - 10. */
static inline uint64_t ls_uuid__hex8(const uint8_t *b, uint64_t off)
{
    uint32_t x;
    memcpy(&x, b, 4);
    uint64_t y = ((uint64_t)x | ((uint64_t)x << 16)) & 0x0000FFFF0000FFFFULL;
    y = (y | (y << 8)) & 0x00FF00FF00FF00FFULL; /* b[i] in byte 2i */
    uint64_t n = ((y >> 4) & 0x000F000F000F000FULL) | ((y & 0x000F000F000F000FULL) << 8);
    uint64_t letter = ((n + 0x7676767676767676ULL) >> 7) & 0x0101010101010101ULL; /* nibble >= 10 */
    return n + 0x3030303030303030ULL + letter * off;
}

#define LS_UUID__OFF(upper) ((upper) ? 7u : 39u)

/* Writes the 36-character text of p (no NUL). */
static inline void ls_uuid_unpack(const uint8_t p[16], int upper, char out[LS_UUID_TEXT])
{
    uint64_t off = LS_UUID__OFF(upper);
    uint64_t w0 = ls_uuid__hex8(p, off), w1 = ls_uuid__hex8(p + 4, off);
    uint64_t w2 = ls_uuid__hex8(p + 8, off), w3 = ls_uuid__hex8(p + 12, off);
    uint32_t lo1 = (uint32_t)w1, hi1 = (uint32_t)(w1 >> 32);
    uint32_t lo2 = (uint32_t)w2, hi2 = (uint32_t)(w2 >> 32);
    memcpy(out, &w0, 8);
    out[8] = '-';
    memcpy(out + 9, &lo1, 4);
    out[13] = '-';
    memcpy(out + 14, &hi1, 4);
    out[18] = '-';
    memcpy(out + 19, &lo2, 4);
    out[23] = '-';
    memcpy(out + 24, &hi2, 4);
    memcpy(out + 28, &w3, 8);
}

/* Whether the 36 bytes at `text` are exactly the text of p: the lookup's
 * compare, without building the text. */
static inline int ls_uuid_equal(const uint8_t p[16], int upper, const char *text)
{
    uint64_t off = LS_UUID__OFF(upper);
    uint64_t t0, t3;
    uint32_t a, b, c, d;
    memcpy(&t0, text, 8);
    memcpy(&a, text + 9, 4);
    memcpy(&b, text + 14, 4);
    memcpy(&c, text + 19, 4);
    memcpy(&d, text + 24, 4);
    memcpy(&t3, text + 28, 8);
    uint64_t w1 = ls_uuid__hex8(p + 4, off), w2 = ls_uuid__hex8(p + 8, off);
    uint64_t diff = (t0 ^ ls_uuid__hex8(p, off)) | (t3 ^ ls_uuid__hex8(p + 12, off)) |
                    (((uint64_t)b << 32 | a) ^ w1) | (((uint64_t)d << 32 | c) ^ w2);
    return diff == 0 && text[8] == '-' && text[13] == '-' && text[18] == '-' && text[23] == '-';
}

#endif
