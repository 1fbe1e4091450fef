/*
 * uuid.h - canonical UUID text packed into 16 bytes (see uuid.c).
 *
 * Device ids are very often UUIDs in their 36-character text form
 * (8-4-4-4-12 hex digits).  The device record keeps such an id as its 16
 * bytes plus one bit for the case of its letters, so the exact original
 * text comes back: only ids whose letters are all lower-case or all
 * upper-case qualify; anything else (mixed case, braces, other lengths,
 * dashes elsewhere) stays text.
 *
 * With SSE2 the digits are converted 16 at a time; without it (or with
 * LS_UUID_PORTABLE defined, which the unit tests use to cover that path)
 * plain 64-bit word operations do the same.
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

/* The 32 hex digits of p[0..15] as four little-endian words of 8 ASCII
 * bytes each: w[0] digits 0-7, w[1] 8-15, w[2] 16-23, w[3] 24-31. */
#if defined(__SSE2__) && !defined(LS_UUID_PORTABLE)
#include <emmintrin.h>
static inline void ls_uuid__digits(const uint8_t p[16], int upper, uint64_t w[4])
{
    const __m128i nib = _mm_set1_epi8(0x0f);
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), nib), lo = _mm_and_si128(x, nib);
    __m128i a = _mm_unpacklo_epi8(hi, lo), b = _mm_unpackhi_epi8(hi, lo);
    const __m128i nine = _mm_set1_epi8(9), zero = _mm_set1_epi8('0');
    const __m128i off = _mm_set1_epi8(upper ? 'A' - '0' - 10 : 'a' - '0' - 10);
    a = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), off));
    b = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), off));
    _mm_storeu_si128((__m128i *)(void *)w, a);
    _mm_storeu_si128((__m128i *)(void *)(w + 2), b);
}
#else
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

static inline void ls_uuid__digits(const uint8_t p[16], int upper, uint64_t w[4])
{
    uint64_t off = upper ? 'A' - '0' - 10 : 'a' - '0' - 10;
    for (int i = 0; i < 4; i++)
        w[i] = ls_uuid__hex8(p + 4 * i, off);
}
#endif

/* Writes the 36-character text of p (no NUL). */
static inline void ls_uuid_unpack(const uint8_t p[16], int upper, char out[LS_UUID_TEXT])
{
    uint64_t w[4];
    ls_uuid__digits(p, upper, w);
    uint32_t lo1 = (uint32_t)w[1], hi1 = (uint32_t)(w[1] >> 32);
    uint32_t lo2 = (uint32_t)w[2], hi2 = (uint32_t)(w[2] >> 32);
    memcpy(out, &w[0], 8);
    out[8] = '-';
    memcpy(out + 9, &lo1, 4);
    out[13] = '-';
    memcpy(out + 14, &hi1, 4);
    out[18] = '-';
    memcpy(out + 19, &lo2, 4);
    out[23] = '-';
    memcpy(out + 24, &hi2, 4);
    memcpy(out + 28, &w[3], 8);
}

/* Whether the 36 bytes at `text` are exactly the text of p: the lookup's
 * compare, without parsing the text. */
static inline int ls_uuid_equal(const uint8_t p[16], int upper, const char *text)
{
    uint64_t w[4], t0, t3;
    uint32_t a, b, c, d;
    ls_uuid__digits(p, upper, w);
    memcpy(&t0, text, 8);
    memcpy(&a, text + 9, 4);
    memcpy(&b, text + 14, 4);
    memcpy(&c, text + 19, 4);
    memcpy(&d, text + 24, 4);
    memcpy(&t3, text + 28, 8);
    uint64_t diff = (t0 ^ w[0]) | (((uint64_t)b << 32 | a) ^ w[1]) |
                    (((uint64_t)d << 32 | c) ^ w[2]) | (t3 ^ w[3]);
    unsigned dashes = ((unsigned char)text[8] ^ '-') | ((unsigned char)text[13] ^ '-') |
                      ((unsigned char)text[18] ^ '-') | ((unsigned char)text[23] ^ '-');
    return (diff | dashes) == 0;
}

#endif
