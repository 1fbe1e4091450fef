/*
 * uuid.c - packing canonical UUID text (uuid.h).
 *
 * Packing runs once per new device, and its test must be exact: a packed
 * id is reproduced from its bytes and the case bit alone.  It is a
 * table-driven loop over the 16 digit pairs.  The per-lookup work,
 * comparing a stored id with incoming text, is in uuid.h and never parses.
 */
#include "engine/uuid.h"

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
    if (len != LS_UUID_TEXT || p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-') return 0;
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
