/*
 * alarms.h - Cumulocity-style unavailability alarms (c8y_UnavailabilityAlarm).
 *
 * Pure like the engine (no I/O, no clock: every call takes the wall time)
 * and driven by it: the daemon raises an alarm for a device's
 * INACTIVITY_EVENT, clears it on the device's next ACTIVITY_EVENT, and
 * turns every change into an ALARM_* event and a store record through the
 * callback.  At most one alarm per device is open (ACTIVE or ACKNOWLEDGED):
 * raising again counts another occurrence of it.  See alarms.c.
 */
#ifndef LS_ALARMS_H
#define LS_ALARMS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define LS_ALARM_TYPE "c8y_UnavailabilityAlarm"

typedef enum ls_alarm_status {
    LS_ALARM_ACTIVE = 0,
    LS_ALARM_ACKNOWLEDGED,
    LS_ALARM_CLEARED,
    LS_ALARM__COUNT
} ls_alarm_status;

typedef struct ls_alarm {
    uint64_t id;      /* > 0, increasing in creation order */
    int64_t time;     /* last occurrence, wall ms */
    int64_t first;    /* firstOccurrenceTime */
    int64_t since;    /* the lastActivityTime its text quotes, 0 = never */
    int64_t updated;  /* lastUpdated: its last change of any kind */
    uint32_t count;   /* occurrences */
    uint8_t status;   /* ls_alarm_status */
    uint8_t severity; /* ls_severity */
    uint16_t source_len;
    char *source; /* device id, NUL-terminated */
} ls_alarm;

/* An alarm changed: `what` is LS_EV_ALARM_RAISED, _UPDATED or _CLEARED. */
typedef void (*ls_alarm_cb)(void *ud, ls_event_type what, const ls_alarm *a, int64_t now);

typedef struct ls_alarm_stats {
    uint64_t by_status[LS_ALARM__COUNT];
    uint64_t open_by_severity[LS_SEV__COUNT]; /* ACTIVE + ACKNOWLEDGED */
    uint64_t raised, deduplicated, pruned;    /* since start */
} ls_alarm_stats;

typedef struct ls_alarms ls_alarms;

int ls_alarms_new(ls_alarms **out, ls_alarm_cb cb, void *ud, uint64_t seed);
void ls_alarms_close(ls_alarms *a);

/*
 * Raises the unavailability alarm of device `source` at `now`: a new ACTIVE
 * alarm (ALARM_RAISED), or, when the device has an open one, count + 1 and
 * time = now on it (ALARM_UPDATED).  `since` is the device's
 * lastActivityTime.  0, LS_EINVAL (bad id) or LS_ENOMEM.
 */
int ls_alarms_raise(ls_alarms *a, const char *source, size_t len, ls_severity sev, int64_t since,
                    int64_t now);

/* Clears the open alarm of `source` (ALARM_CLEARED).  1 if there was one, else 0. */
int ls_alarms_clear_source(ls_alarms *a, const char *source, size_t len, int64_t now);

/*
 * Sets alarm `id` to ACKNOWLEDGED (ALARM_UPDATED) or CLEARED (ALARM_CLEARED).
 * Returns 0 when it changed, 1 when it already had that status, LS_ENOTFOUND,
 * or LS_EINVAL: ACTIVE cannot be set, and a CLEARED alarm is final.
 */
int ls_alarms_set_status(ls_alarms *a, uint64_t id, ls_alarm_status st, int64_t now);

const ls_alarm *ls_alarms_get(const ls_alarms *a, uint64_t id);
/* The open (ACTIVE or ACKNOWLEDGED) alarm of a device, or NULL. */
const ls_alarm *ls_alarms_open(const ls_alarms *a, const char *source, size_t len);

typedef struct ls_alarm_filter {
    int status;         /* ls_alarm_status, -1 = any */
    int severity;       /* ls_severity, -1 = any */
    const char *source; /* NULL = any */
    size_t source_len;
} ls_alarm_filter;

/*
 * Visits alarms with id > after, in id order, that match f: at most
 * `limit`, looking at most at `max_scan` alarms.  Returns the cursor to go
 * on from (the last id looked at), or 0 at the end.
 */
uint64_t ls_alarms_list(const ls_alarms *a, uint64_t after, const ls_alarm_filter *f, size_t limit,
                        size_t max_scan, void (*cb)(void *ud, const ls_alarm *al), void *ud);

/* Start-up: puts back a stored alarm (no callback).  0, LS_EINVAL (a bad
 * record or a repeated id), LS_ENOMEM. */
int ls_alarms_restore(ls_alarms *a, const ls_alarm *rec);
/* Start-up: ids continue after `last` (the highest ever given). */
void ls_alarms_set_last_id(ls_alarms *a, uint64_t last);
uint64_t ls_alarms_last_id(const ls_alarms *a);

/* Forgets up to `max` CLEARED alarms last updated before `cutoff`, calling
 * cb with each id (to delete it from the store).  Returns how many. */
size_t ls_alarms_prune(ls_alarms *a, int64_t cutoff, size_t max, void (*cb)(void *ud, uint64_t id),
                       void *ud);

void ls_alarms_get_stats(const ls_alarms *a, ls_alarm_stats *out);

/* Names: "ACTIVE".., "CRITICAL"..; lower-case severities for c8y_ActiveAlarmsStatus. */
const char *ls_alarm_status_name(int status);
const char *ls_severity_name(int sev);
const char *ls_severity_key(int sev);
/* Parses an exact upper-case name; the value or -1. */
int ls_alarm_status_parse(const char *s, size_t len);
int ls_severity_parse(const char *s, size_t len);

#endif
