/*
 * json_in.c - parsing request bodies with jansson.
 *
 * jansson rejects a whole document when one integer does not fit int64
 * ("too big integer").  One bad timestamp in a bulk of thousands must
 * reject that item only, so on that error the document is parsed again
 * from a copy in which every integer literal of 19 or more digits outside
 * strings gets a ".0": it becomes a real, which every integer field then
 * refuses with its own 422.  The copy is made only on that rare path.
 */
#include <string.h>
#include <stdlib.h>

#include "api/api.h"

static char *reals_for_big_ints(const char *p, size_t n, size_t *outn)
{
    char *out = malloc(n * 2 + 1); /* at most one ".0" per 19+ bytes */
    if (!out) return NULL;
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < n)
                out[o++] = p[++i];
            else if (c == '"')
                in_str = 0;
            i++;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            out[o++] = c;
            i++;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = i;
            if (c == '-') i++;
            size_t digits = 0;
            while (i < n && p[i] >= '0' && p[i] <= '9')
                i++, digits++;
            int frac = i < n && (p[i] == '.' || p[i] == 'e' || p[i] == 'E');
            memcpy(out + o, p + start, i - start);
            o += i - start;
            if (!frac && digits >= 19) {
                out[o++] = '.';
                out[o++] = '0';
            }
            continue;
        }
        out[o++] = c;
        i++;
    }
    *outn = o;
    return out;
}

json_t *ls_api_json_parse(const char *p, size_t n, size_t flags, json_error_t *err)
{
    flags |= JSON_ALLOW_NUL;
    json_t *j = json_loadb(p, n, flags, err);
    if (j || json_error_code(err) != json_error_numeric_overflow) return j;
    size_t m;
    char *copy = reals_for_big_ints(p, n, &m);
    if (!copy) return NULL;
    j = json_loadb(copy, m, flags, err);
    free(copy);
    return j;
}
