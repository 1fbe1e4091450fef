/*
 * uuid.c - packing canonical UUID text (uuid.h).
 *
 * Packing runs once per new device (and its test must be exact: a packed
 * id is reproduced from its bytes and the case bit alone), so it is a
 * plain table-driven loop; the per-lookup work, comparing a stored id
 * with incoming text, is in uuid.h and never parses.
 */
#include "engine/uuid.h"

/* Hex digit values: 0..15; 16 for non-digits; +32 for letters a-f, +64 A-F. */
static const uint8_t hexval[256] = {
    ['0'] = 0,       ['1'] = 1,       ['2'] = 2,       ['3'] = 3,       ['4'] = 4,
    ['5'] = 5,       ['6'] = 6,       ['7'] = 7,       ['8'] = 8,       ['9'] = 9,
    ['a'] = 32 + 10, ['b'] = 32 + 11, ['c'] = 32 + 12, ['d'] = 32 + 13, ['e'] = 32 + 14,
    ['f'] = 32 + 15, ['A'] = 64 + 10, ['B'] = 64 + 11, ['C'] = 64 + 12, ['D'] = 64 + 13,
    ['E'] = 64 + 14, ['F'] = 64 + 15,
};

static int is_digit_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int ls_uuid_pack(const char *text, size_t len, uint8_t out[16], int *upper)
{
    const unsigned char *p = (const unsigned char *)text;
    unsigned cases = 0; /* bit 5: a lower-case letter seen, bit 6: upper */
    size_t k = 0;
    if (len != LS_UUID_TEXT) return 0;
    for (size_t i = 0; i < LS_UUID_TEXT;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-') return 0;
            i++;
            continue;
        }
        if (!is_digit_char(p[i]) || !is_digit_char(p[i + 1])) return 0;
        unsigned hi = hexval[p[i]], lo = hexval[p[i + 1]];
        cases |= (hi | lo) & 96u;
        out[k++] = (uint8_t)((hi & 15u) << 4 | (lo & 15u));
        i += 2;
    }
    if (cases == 96u) return 0; /* mixed case: kept as text */
    *upper = cases == 64u;
    return 1;
}
