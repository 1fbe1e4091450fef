/*
 * device_in.h - the one reader of a device's JSON, for PUT
 * /api/v1/devices/{id} and for `lastseen import`, with one set of rules and
 * messages; format.h has the one writer.
 *
 * Two modes, one table of fields:
 *   SETTINGS  a PUT body: the settings a client changes - "type",
 *             "inactivityTimeout" (null: none of its own),
 *             "c8y_RequiredAvailability" (null: none) - and "id"; any
 *             other field is refused.
 *   RECORD    an export line, the GET shape: a whole device.  "id" is
 *             required; "active", the four times and "sessions" are read
 *             too; "inactivityTimeout" is the device's own only with
 *             "inactivityTimeoutSource": "device" (otherwise it is derived
 *             and, once checked, ignored); fields GET derives
 *             ("c8y_Availability", ...) and unknown fields are ignored.
 * Type "default" is read as no type (NULL), the way records hold it.
 */
#ifndef LS_DEVICE_IN_H
#define LS_DEVICE_IN_H

#include <stddef.h>

#include <jansson.h>

#include "engine/engine.h"

typedef enum ls_device_in_mode {
    LS_DEVICE_IN_SETTINGS = 0,
    LS_DEVICE_IN_RECORD,
} ls_device_in_mode;

/* The fields a reader found (bits of *given). */
enum {
    LS_DEVICE_IN_ID = 1u << 0,
    LS_DEVICE_IN_TYPE = 1u << 1,
    LS_DEVICE_IN_TIMEOUT = 1u << 2, /* its own inactivityTimeout (0: none) */
    LS_DEVICE_IN_C8Y = 1u << 3,     /* c8y_RequiredAvailability (has_c8y 0: none) */
    LS_DEVICE_IN_STATE = 1u << 4,   /* active, a time or sessions (RECORD) */
};

/*
 * Reads the JSON object o into *rec (fields absent keep their value: start
 * from a zeroed record for a new device) and sets *given.  Strings in rec
 * point into o.  Returns 0, or -1 with the reason, NUL-terminated, in why;
 * then rec may be partly filled.
 */
int ls_device_in(json_t *o, ls_device_in_mode mode, ls_device_state *rec, unsigned *given,
                 char *why, size_t whylen);

/* The change a SETTINGS read asks for, as ls_engine_put() takes it. */
void ls_device_in_config(const ls_device_state *rec, unsigned given, ls_device_config *out);

/*
 * Reads a Cumulocity responseInterval (minutes): an integer, or a real with
 * no fraction (how integers beyond 64 bits arrive), clamped to
 * LS_RI_MIN..LS_RI_MAX as Cumulocity does.  0 and *out, or -1.  (Also what
 * a device type's responseInterval is read with.)
 */
int ls_json_response_interval(json_t *v, int *out);

#endif
