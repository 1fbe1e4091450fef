/*
 * id.c - device id validation and the engine's names (error codes are
 * named by ls_strerror() in base/err.c).
 *
 * A device id is 1..256 bytes of well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF) without control characters:
 * C0 (U+0000..U+001F), DEL (U+007F) and C1 (U+0080..U+009F).  Ids end up in
 * JSON, log lines, MQTT topics and file names; rejecting these at the door
 * keeps every one of those safe.
 */
#include "engine/engine.h"

#include <string.h>

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Bytes of x below n (n <= 128), for words without high bits set. */
#define HAS_LESS(x, n) (((x)-ONES * (n)) & ~(x)&HIGHS)

const char *ls_id_check(const char *id, size_t len)
{
    const unsigned char *p = (const unsigned char *)id;
    if (len == 0) return "empty";
    if (len > LS_ID_MAX) return "longer than 256 bytes";
    for (size_t i = 0; i < len;) {
        /* Fast path: eight printable ASCII bytes at a time. */
        if (i + 8 <= len) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            if (!(x & HIGHS) && !HAS_LESS(x, 0x20) && !HAS_LESS(x ^ (ONES * 0x7f), 1)) {
                i += 8;
                continue;
            }
        }
        unsigned c = p[i];
        if (c < 0x20 || c == 0x7f) return "control character";
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0)
            n = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            n = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            n = 4, cp = c & 0x07, min = 0x10000;
        else
            return "invalid UTF-8";
        if (i + n > len) return "truncated UTF-8";
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return "invalid UTF-8";
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min) return "overlong UTF-8";
        if (cp >= 0xd800 && cp <= 0xdfff) return "UTF-16 surrogate in UTF-8";
        if (cp > 0x10ffff) return "code point above U+10FFFF";
        if (cp >= 0x80 && cp <= 0x9f) return "control character";
        i += n;
    }
    return NULL;
}

const char *ls_event_name(ls_event_type t)
{
    static const char *const names[LS_EV__COUNT] = {
        [LS_EV_ACTIVITY] = "ACTIVITY_EVENT",     [LS_EV_INACTIVITY] = "INACTIVITY_EVENT",
        [LS_EV_CONNECT] = "CONNECT_EVENT",       [LS_EV_DISCONNECT] = "DISCONNECT_EVENT",
        [LS_EV_ALARM_RAISED] = "ALARM_RAISED",   [LS_EV_ALARM_UPDATED] = "ALARM_UPDATED",
        [LS_EV_ALARM_CLEARED] = "ALARM_CLEARED", [LS_EV_SOURCE_DOWN] = "SOURCE_DOWN",
        [LS_EV_SOURCE_UP] = "SOURCE_UP",         [LS_EV_AUDIT] = "AUDIT",
    };
    return (unsigned)t < LS_EV__COUNT ? names[t] : "UNKNOWN";
}
