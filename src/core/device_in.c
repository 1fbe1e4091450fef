/*
 * device_in.c - reading a device's JSON (device_in.h): PUT bodies and
 * import lines.
 *
 * One table of fields, each with its reader, its record field and the
 * modes that read it; the checks and messages are the reader's, so a PUT
 * and an import line refuse the same value with the same words.  The
 * fields are read in the table's order (so the message does not depend on
 * the order of the keys), after an unknown field has been looked for
 * (SETTINGS only).  Cost: one pass over the object's keys and one lookup a
 * field; nothing allocated.
 */
#include "core/device_in.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* 9999-12-31T23:59:59.999Z: bounds every time, so no deadline arithmetic can overflow. */
#define TIME_MAX_MS INT64_C(253402300799999)

typedef struct field field;
/* Reads v into rec; 0, or -1 with why set. */
typedef int (*read_fn)(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen);

struct field {
    const char *name;
    unsigned bit;    /* LS_DEVICE_IN_* */
    int record_only; /* read in RECORD mode only (in SETTINGS it is unknown) */
    read_fn read;
    size_t off;     /* read_time: where the time goes in the record */
    int64_t lo, hi; /* read_time, read_sessions: the range */
};

int ls_json_response_interval(json_t *v, int *out)
{
    double x;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *out = i < LS_RI_MIN ? LS_RI_MIN : i > LS_RI_MAX ? LS_RI_MAX : (int)i;
        return 0;
    }
    if (!json_is_real(v) || !isfinite(x = json_real_value(v)) || x != trunc(x)) return -1;
    *out = x < LS_RI_MIN ? LS_RI_MIN : x > LS_RI_MAX ? LS_RI_MAX : (int)x;
    return 0;
}

static int read_id(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen)
{
    (void)f;
    const char *bad;
    if (!json_is_string(v)) {
        snprintf(why, whylen, "id must be a string");
        return -1;
    }
    if ((bad = ls_id_check(json_string_value(v), json_string_length(v)))) {
        snprintf(why, whylen, "invalid id: %s", bad);
        return -1;
    }
    rec->id = json_string_value(v);
    rec->id_len = json_string_length(v);
    return 0;
}

static int read_type(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen)
{
    (void)f;
    size_t len = json_is_string(v) ? json_string_length(v) : 0;
    if (len == 0 || len > LS_TYPE_MAX || ls_id_check(json_string_value(v), len)) {
        snprintf(why, whylen,
                 "type must be a string of 1..%d bytes of UTF-8 without control characters",
                 LS_TYPE_MAX);
        return -1;
    }
    /* The built-in type is no type in a record. */
    int is_default = len == 7 && memcmp(json_string_value(v), "default", 7) == 0;
    rec->type = is_default ? NULL : json_string_value(v);
    rec->type_len = is_default ? 0 : len;
    return 0;
}

static int read_timeout(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen)
{
    (void)f;
    if (json_is_null(v)) {
        rec->timeout_ms = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < LS_TIMEOUT_MIN_MS ||
        json_integer_value(v) > LS_TIMEOUT_MAX_MS) {
        snprintf(why, whylen,
                 "inactivityTimeout must be an integer of ms between %d and %lld, or null",
                 LS_TIMEOUT_MIN_MS, (long long)LS_TIMEOUT_MAX_MS);
        return -1;
    }
    rec->timeout_ms = json_integer_value(v);
    return 0;
}

static int read_c8y(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen)
{
    (void)f;
    if (json_is_null(v)) {
        rec->has_c8y = 0;
        rec->response_interval = 0;
        return 0;
    }
    json_t *ri = json_is_object(v) ? json_object_get(v, "responseInterval") : NULL;
    if (!ri || json_object_size(v) != 1 ||
        ls_json_response_interval(ri, &rec->response_interval) < 0) {
        snprintf(why, whylen,
                 "c8y_RequiredAvailability must be {\"responseInterval\": minutes} with an "
                 "integer (clamped to %d..%d), or null",
                 LS_RI_MIN, LS_RI_MAX);
        return -1;
    }
    rec->has_c8y = 1;
    return 0;
}

static int read_active(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen)
{
    (void)f;
    if (!json_is_boolean(v)) {
        snprintf(why, whylen, "active must be true or false");
        return -1;
    }
    rec->active = json_is_true(v);
    return 0;
}

/* An integer in [f->lo, f->hi]; *out. */
static int read_int(const field *f, json_t *v, int64_t *out, char *why, size_t whylen)
{
    if (!json_is_integer(v) || json_integer_value(v) < f->lo || json_integer_value(v) > f->hi) {
        snprintf(why, whylen, "%s must be an integer between %lld and %lld", f->name,
                 (long long)f->lo, (long long)f->hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int read_time(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen)
{
    return read_int(f, v, (int64_t *)((char *)rec + f->off), why, whylen);
}

static int read_sessions(const field *f, json_t *v, ls_device_state *rec, char *why, size_t whylen)
{
    int64_t n;
    if (read_int(f, v, &n, why, whylen) < 0) return -1;
    rec->sessions = (uint32_t)n;
    return 0;
}

#define TIME(name, member)                                                                         \
    {                                                                                              \
        name, LS_DEVICE_IN_STATE, 1, read_time, offsetof(ls_device_state, member), 0, TIME_MAX_MS  \
    }

/* In the order of GET's fields. */
static const field fields[] = {
    {"id", LS_DEVICE_IN_ID, 0, read_id, 0, 0, 0},
    {"type", LS_DEVICE_IN_TYPE, 0, read_type, 0, 0, 0},
    {"active", LS_DEVICE_IN_STATE, 1, read_active, 0, 0, 0},
    TIME("lastActivityTime", last_activity),
    TIME("lastConnectTime", last_connect),
    TIME("lastDisconnectTime", last_disconnect),
    TIME("inactivityAlarmTime", inactivity_alarm),
    {"inactivityTimeout", LS_DEVICE_IN_TIMEOUT, 0, read_timeout, 0, 0, 0},
    {"sessions", LS_DEVICE_IN_STATE, 1, read_sessions, 0, 0, UINT32_MAX},
    {"c8y_RequiredAvailability", LS_DEVICE_IN_C8Y, 0, read_c8y, 0, 0, 0},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static const field *known(const char *key, ls_device_in_mode mode)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].name, key) == 0 &&
            (mode == LS_DEVICE_IN_RECORD || !fields[i].record_only))
            return &fields[i];
    return NULL;
}

int ls_device_in(json_t *o, ls_device_in_mode mode, ls_device_state *rec, unsigned *given,
                 char *why, size_t whylen)
{
    *given = 0;
    if (!json_is_object(o)) {
        snprintf(why, whylen, "not a JSON object");
        return -1;
    }
    if (mode == LS_DEVICE_IN_SETTINGS) {
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v)
        {
            if (!known(key, mode)) {
                snprintf(why, whylen,
                         "unknown field \"%.64s\"; known: inactivityTimeout, type, "
                         "c8y_RequiredAvailability, id",
                         key);
                return -1;
            }
        }
    } else if (!json_object_get(o, "id")) {
        snprintf(why, whylen, "no id");
        return -1;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &fields[i];
        json_t *v = json_object_get(o, f->name);
        if (!v || (f->record_only && mode != LS_DEVICE_IN_RECORD)) continue;
        if (f->read(f, v, rec, why, whylen) < 0) return -1;
        *given |= f->bit;
    }
    if (mode == LS_DEVICE_IN_RECORD) {
        /* The timeout GET shows is the device's own only when it says so. */
        json_t *src = json_object_get(o, "inactivityTimeoutSource");
        if (json_is_string(src) && strcmp(json_string_value(src), "device") == 0) {
            if (!(*given & LS_DEVICE_IN_TIMEOUT) || rec->timeout_ms == 0) {
                snprintf(why, whylen,
                         "inactivityTimeoutSource is \"device\" but there is no inactivityTimeout");
                return -1;
            }
        } else {
            rec->timeout_ms = 0;
            *given &= ~(unsigned)LS_DEVICE_IN_TIMEOUT;
        }
    }
    return 0;
}

void ls_device_in_config(const ls_device_state *rec, unsigned given, ls_device_config *out)
{
    *out = (ls_device_config){0};
    if (given & LS_DEVICE_IN_TIMEOUT) {
        out->set_timeout = 1;
        out->timeout_ms = rec->timeout_ms;
    }
    if (given & LS_DEVICE_IN_TYPE) {
        out->type = rec->type ? rec->type : "default";
        out->type_len = rec->type ? rec->type_len : 7;
    }
    if (given & LS_DEVICE_IN_C8Y) {
        out->set_c8y = 1;
        out->has_c8y = rec->has_c8y;
        out->response_interval = rec->response_interval;
    }
}
