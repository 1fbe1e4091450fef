/*
 * fuzz_input.c - libFuzzer target for the parsers of outside input that
 * need no running daemon: device id validation, strict percent-decoding of
 * paths and query parameters, request-body JSON parsing (with the
 * big-integer fallback), the clamped responseInterval of Cumulocity's
 * fragments, and the configuration value parsers.
 *
 *   make fuzz            # builds build-fuzz/fuzz_input with clang
 *   build-fuzz/fuzz_input -max_total_time=60
 *
 * The first input byte picks the parser; the rest is its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app/config.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char *s = malloc(n + 1);
    if (!s) return 0;
    memcpy(s, p, n);
    s[n] = '\0';
    switch (data[0] % 5) {
    case 0: {
        const char *why = ls_id_check(p, n);
        /* A valid id never holds a control byte. */
        if (!why)
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) abort();
        break;
    }
    case 1: {
        char *out = malloc(n + 1);
        size_t len;
        if (out && ls_api_pct_decode(p, n, out, &len) == 0 && len > n) abort();
        free(out);
        break;
    }
    case 2: {
        json_error_t err;
        json_t *j = ls_api_json_parse(p, n, JSON_DECODE_ANY, &err);
        int ri;
        /* Whatever number came in, a responseInterval is within Cumulocity's range. */
        if (j && ls_api_response_interval(j, &ri) == 0 && (ri < LS_RI_MIN || ri > LS_RI_MAX)) abort();
        json_decref(j);
        break;
    }
    case 3: {
        int64_t v;
        if (ls_parse_duration_ms(s, &v) == 0 && v < 0) abort();
        if (ls_parse_size(s, &v) == 0 && v < 0) abort();
        break;
    }
    case 4: {
        int b;
        (void)ls_parse_bool(s, &b);
        break;
    }
    }
    free(s);
    return 0;
}
