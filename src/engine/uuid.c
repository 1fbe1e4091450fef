/*
 * uuid.c - packing canonical UUID text (uuid.h).
 *
 * Packing runs once per new device (10M of them in a start-up load), and
 * its test must be exact: a packed id is reproduced from its bytes and the
 * case bit alone.  With SSE2 (every x86-64) the 32 digits are checked and
 * converted 16 at a time; elsewhere a table-driven loop over the 16 digit
 * pairs does it.  The per-lookup work, comparing a stored id with incoming
 * text, is in uuid.h and never parses.
 */
#include "engine/uuid.h"

#if defined(__SSE2__) && !defined(LS_UUID_PORTABLE)
#include <emmintrin.h>

/* Bytes of c in [lo, lo + n), as a mask (signed compares only in SSE2). */
static inline __m128i in_range(__m128i c, int lo, int n)
{
    return _mm_cmplt_epi8(_mm_sub_epi8(c, _mm_set1_epi8((char)(lo + 128))),
                          _mm_set1_epi8((char)(n - 128)));
}

/* Checks and converts 16 hex digits: 1 and 8 bytes into *out, with the
 * letters' cases or'ed into *cases (1 lower, 2 upper), else 0. */
static inline int pack16(__m128i c, uint8_t *out, unsigned *cases)
{
    __m128i digit = in_range(c, '0', 10), lower = in_range(c, 'a', 6), upper = in_range(c, 'A', 6);
    __m128i letter = _mm_or_si128(lower, upper);
    if (_mm_movemask_epi8(_mm_or_si128(digit, letter)) != 0xffff) return 0;
    if (_mm_movemask_epi8(lower)) *cases |= 1;
    if (_mm_movemask_epi8(upper)) *cases |= 2;
    /* Digit values: the low nibble, + 9 for letters. */
    __m128i v = _mm_add_epi8(_mm_and_si128(c, _mm_set1_epi8(0x0f)),
                             _mm_and_si128(letter, _mm_set1_epi8(9)));
    /* Each 16-bit lane holds a pair, first digit low: first << 4 | second. */
    __m128i pairs = _mm_or_si128(_mm_and_si128(_mm_slli_epi16(v, 4), _mm_set1_epi16(0x00f0)),
                                 _mm_srli_epi16(v, 8));
    __m128i packed = _mm_packus_epi16(pairs, pairs);
    _mm_storel_epi64((__m128i *)(void *)out, packed);
    return 1;
}

int ls_uuid_pack(const char *text, size_t len, uint8_t out[16], int *upper)
{
    const unsigned char *p = (const unsigned char *)text;
    if (len != LS_UUID_TEXT || p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-')
        return 0;
    uint64_t w0, w3;
    uint32_t a, b, c, d;
    memcpy(&w0, p, 8);
    memcpy(&a, p + 9, 4);
    memcpy(&b, p + 14, 4);
    memcpy(&c, p + 19, 4);
    memcpy(&d, p + 24, 4);
    memcpy(&w3, p + 28, 8);
    unsigned cases = 0;
    __m128i lo = _mm_set_epi64x((long long)((uint64_t)b << 32 | a), (long long)w0);
    __m128i hi = _mm_set_epi64x((long long)w3, (long long)((uint64_t)d << 32 | c));
    if (!pack16(lo, out, &cases) || !pack16(hi, out + 8, &cases)) return 0;
    if (cases == 3) return 0; /* mixed case: kept as text */
    *upper = cases == 2;
    return 1;
}
#else
/* Hex digits: 0x80 | value, plus 0x20 for a-f and 0x40 for A-F; 0 = not a digit. */
#define D(v) (0x80 | (v))
static const uint8_t hexval[256] = {
    ['0'] = D(0),         ['1'] = D(1),         ['2'] = D(2),         ['3'] = D(3),
    ['4'] = D(4),         ['5'] = D(5),         ['6'] = D(6),         ['7'] = D(7),
    ['8'] = D(8),         ['9'] = D(9),         ['a'] = D(0x20 | 10), ['b'] = D(0x20 | 11),
    ['c'] = D(0x20 | 12), ['d'] = D(0x20 | 13), ['e'] = D(0x20 | 14), ['f'] = D(0x20 | 15),
    ['A'] = D(0x40 | 10), ['B'] = D(0x40 | 11), ['C'] = D(0x40 | 12), ['D'] = D(0x40 | 13),
    ['E'] = D(0x40 | 14), ['F'] = D(0x40 | 15),
};
#undef D

/* Where the 16 digit pairs of the text start. */
static const uint8_t pair_at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};

int ls_uuid_pack(const char *text, size_t len, uint8_t out[16], int *upper)
{
    const unsigned char *p = (const unsigned char *)text;
    if (len != LS_UUID_TEXT || p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-')
        return 0;
    unsigned all = 0xff, any = 0;
    for (int k = 0; k < 16; k++) {
        unsigned hi = hexval[p[pair_at[k]]], lo = hexval[p[pair_at[k] + 1]];
        all &= hi & lo;
        any |= hi | lo;
        out[k] = (uint8_t)((hi & 15u) << 4 | (lo & 15u));
    }
    if (!(all & 0x80)) return 0;        /* not a hex digit */
    if ((any & 0x60) == 0x60) return 0; /* mixed case: kept as text */
    *upper = (any & 0x40) != 0;
    return 1;
}
#endif
