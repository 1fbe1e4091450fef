/*
 * engine.h - lastseen's device state engine: the pure core.
 *
 * The engine owns the device table, the timing wheel and the per-device
 * state machine.  It performs no I/O and never reads a clock: every call
 * takes `ls_now`, a pair of monotonic milliseconds (which drive deadlines)
 * and wall-clock milliseconds since the Unix epoch (which are reported).
 * Observable changes are reported synchronously through the event callback
 * given to ls_engine_init(); the adapters around the engine (HTTP, event
 * log, later the store and other sinks) turn them into I/O.
 *
 * The engine is single-threaded: one writer.  Callers that share it between
 * threads serialise access themselves.
 *
 * Errors: every function that can fail returns 0 or a negative LS_E* code;
 * ls_strerror() names it.
 */
#ifndef LS_ENGINE_H
#define LS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/wheel.h"

/* Error codes, all negative. */
enum {
    LS_OK = 0,
    LS_EINVAL = -1,    /* invalid argument value (bad timeout, ts, type...) */
    LS_EBADID = -2,    /* device id not 1..256 bytes of UTF-8 without controls */
    LS_ENOTFOUND = -3, /* no such device */
    LS_EFULL = -4,     /* state.max_devices reached */
    LS_ENOMEM = -5,    /* allocation failed */
};

#define LS_ID_MAX 256
#define LS_TYPE_MAX 64
/* Timeouts are bounded so that deadlines never overflow the wheel. */
#define LS_TIMEOUT_MIN_MS 1
#define LS_TIMEOUT_MAX_MS (10LL * 365 * 24 * 3600 * 1000)

typedef struct ls_now {
    int64_t mono; /* monotonic ms: deadlines */
    int64_t wall; /* ms since the Unix epoch: what is reported */
} ls_now;

typedef enum ls_event_type {
    LS_EV_ACTIVITY = 0,
    LS_EV_INACTIVITY,
    LS_EV_CONNECT,
    LS_EV_DISCONNECT,
    LS_EV__COUNT
} ls_event_type;

/*
 * A device record: 128 bytes, two cache lines, 128-byte aligned.  Records
 * live in chunks that never move, so a pointer to one stays valid until the
 * device is deleted.  What an activity touches (times, timeout, flags, the
 * id) comes first.  Ids shorter than LS_ID_INLINE bytes (36-character UUIDs
 * among them) are stored in the record itself; longer ones on the heap.
 * Field names follow ThingsBoard's server-side attributes; all times are
 * wall ms, 0 = never.
 */
#define LS_ID_INLINE 40
typedef struct ls_device {
    uint32_t hash;               /* high bits of the id's hash */
    uint16_t id_len;
    uint16_t type;               /* index into the engine's type names */
    uint8_t active;
    uint8_t live;                /* slot holds a device */
    uint16_t flags;              /* LS_DEV_* */
    uint32_t sessions;           /* open sessions */
    int64_t last_activity_mono;  /* monotonic twin of lastActivityTime */
    int64_t last_activity;       /* lastActivityTime */
    int64_t timeout_ms;          /* own inactivityTimeout, 0 = use default */
    union {
        char inl[LS_ID_INLINE];  /* id_len < LS_ID_INLINE: NUL-terminated */
        char *heap;              /* else: malloc'd, NUL-terminated */
    } id;
    ls_wheel_entry timer;        /* intrusive: armed while active */
    int64_t last_connect;        /* lastConnectTime */
    int64_t last_disconnect;     /* lastDisconnectTime */
    int64_t inactivity_alarm;    /* inactivityAlarmTime */
} ls_device;

#define LS_DEV_DIRTY 1 /* changed since the last ls_engine_drain_dirty() */

/* The device's id, NUL-terminated, id_len bytes. */
static inline const char *ls_device_id(const ls_device *d)
{
    return d->id_len < LS_ID_INLINE ? d->id.inl : d->id.heap;
}

/* One activity of a batch (see ls_engine_activity_batch). */
typedef struct ls_activity {
    const char *id;
    uint32_t len;
    int64_t ts; /* wall ms, 0 = now */
} ls_activity;

typedef struct ls_event {
    ls_event_type type;
    const ls_device *dev; /* state after the change */
    int64_t ts;           /* when it happened (for INACTIVITY: the deadline) */
    int64_t detected_at;  /* wall ms when the engine saw it */
} ls_event;

typedef void (*ls_event_cb)(void *ud, const ls_event *ev);

typedef struct ls_engine_config {
    int64_t default_timeout_ms; /* state.default_inactivity_timeout */
    int64_t max_clock_skew_ms;  /* state.max_clock_skew */
    uint64_t max_devices;       /* state.max_devices, 0 = unlimited */
    uint64_t seed;              /* hash seed (randomised by the daemon) */
} ls_engine_config;

typedef struct ls_engine_stats {
    uint64_t devices;
    uint64_t active;
    uint64_t inactive;
    uint64_t sessions;             /* open sessions, all devices */
    uint64_t activities;           /* activities accepted */
    uint64_t stale_activities;     /* older than now - timeout: recorded only */
    uint64_t clamped_future;       /* ts beyond max_clock_skew, clamped */
    uint64_t events[LS_EV__COUNT]; /* by type */
} ls_engine_stats;

/* Device configuration for ls_engine_put().  Unset fields keep their value. */
typedef struct ls_device_config {
    int set_timeout;     /* apply timeout_ms */
    int64_t timeout_ms;  /* 0 = back to the default */
    const char *type;    /* NULL = keep; "" is invalid */
    size_t type_len;
} ls_device_config;

typedef struct ls_engine ls_engine;

/* Creates an engine; *out is owned by the caller until ls_engine_close(). */
int ls_engine_new(ls_engine **out, const ls_engine_config *cfg, ls_event_cb cb, void *ud);
void ls_engine_close(ls_engine *e);

/*
 * Records an activity of device `id` at `ts` (wall ms; 0 = now), creating
 * the device if it is new.  A stale activity (ts older than now - timeout)
 * is recorded but does not make an inactive device active.  A ts more than
 * max_clock_skew in the future is clamped to now.  Returns 0 or LS_EBADID,
 * LS_EINVAL (ts < 0), LS_EFULL, LS_ENOMEM.
 */
int ls_engine_activity(ls_engine *e, const char *id, size_t len, int64_t ts, ls_now now);

/*
 * Applies n activities in order, as ls_engine_activity() would one by one,
 * but pipelined: the index buckets and records of later items are
 * prefetched while earlier ones are applied, hiding memory latency.  If
 * rcs is not NULL, rcs[i] gets item i's result.  Returns the number applied.
 */
size_t ls_engine_activity_batch(ls_engine *e, const ls_activity *a, size_t n, ls_now now, int *rcs);

/* Opens a session (CONNECT_EVENT; counts as an activity at now). */
int ls_engine_connect(ls_engine *e, const char *id, size_t len, ls_now now);

/*
 * Closes a session; the last one closing emits DISCONNECT_EVENT.  Closing
 * with no open session changes nothing.  LS_ENOTFOUND if unknown.
 */
int ls_engine_disconnect(ls_engine *e, const char *id, size_t len, ls_now now);

/*
 * Creates or updates a device's configuration.  A changed timeout is applied
 * at once: an active device whose new deadline has passed goes inactive now.
 * *created (if not NULL) is set to 1 when the device is new.
 */
int ls_engine_put(ls_engine *e, const char *id, size_t len, const ls_device_config *c, ls_now now,
                  int *created);

/* Removes a device and cancels its timer.  LS_ENOTFOUND if unknown. */
int ls_engine_delete(ls_engine *e, const char *id, size_t len);

/* Looks a device up; NULL if unknown or the id is invalid. */
const ls_device *ls_engine_find(const ls_engine *e, const char *id, size_t len);

/* Advances time: fires every deadline <= now.mono.  Returns events emitted. */
uint64_t ls_engine_tick(ls_engine *e, ls_now now);

/* Monotonic ms of the next wheel event, INT64_MAX when nothing is armed. */
int64_t ls_engine_next_wakeup(const ls_engine *e);

/* The effective timeout and where it comes from ("device" or "default"). */
int64_t ls_engine_timeout(const ls_engine *e, const ls_device *d, const char **source);
const char *ls_engine_type_name(const ls_engine *e, const ls_device *d);

void ls_engine_get_stats(const ls_engine *e, ls_engine_stats *out);

/*
 * Paged iteration in slot order, stable under concurrent change: a device
 * that exists during the whole walk is visited exactly once.  Starts after
 * `cursor` (0 = from the beginning), visits at most `limit` devices matching
 * `filter` (-1 any, 0 inactive, 1 active), scanning at most `max_scan` slots
 * (0 = no bound).  Returns the cursor to continue from, 0 at the end.
 */
typedef void (*ls_visit_cb)(void *ud, const ls_device *d);
uint64_t ls_engine_scan(const ls_engine *e, uint64_t cursor, int filter, size_t limit,
                        uint64_t max_scan, ls_visit_cb cb, void *ud);

/*
 * ls_engine_scan() with one more filter: only devices for which match(ud, d)
 * returns non-zero are visited and count towards `limit` (NULL = all).
 * Every scanned slot counts towards max_scan, matching or not.
 */
typedef int (*ls_match_cb)(void *ud, const ls_device *d);
uint64_t ls_engine_scan_match(const ls_engine *e, uint64_t cursor, int filter, size_t limit,
                              uint64_t max_scan, ls_match_cb match, ls_visit_cb cb, void *ud);

/*
 * Validates a device id: 1..256 bytes of well-formed UTF-8 with no control
 * characters (C0, DEL, C1).  Returns NULL if valid, else a short reason.
 */
const char *ls_id_check(const char *id, size_t len);

/*
 * Persistence support.  Every change to a device (activity, session, config,
 * transition) marks it dirty; ls_engine_drain_dirty() visits each dirty
 * device once and clears the marks, so a store can write exactly what
 * changed.  Marking costs one flag test on the hot path.
 */
size_t ls_engine_drain_dirty(ls_engine *e, ls_visit_cb cb, void *ud);

/* How devices that were active when the daemon stopped are restored. */
typedef enum ls_restart_policy {
    LS_RESTART_GRACE = 0, /* deadline = max(old deadline, now + timeout) */
    LS_RESTART_STRICT,    /* deadline = old deadline; passed ones fire at once */
} ls_restart_policy;

/* A device's persisted state, as loaded from a store. */
typedef struct ls_device_state {
    const char *type; /* NULL = default */
    size_t type_len;
    int64_t timeout_ms; /* 0 = default */
    int64_t last_activity, last_connect, last_disconnect, inactivity_alarm;
    uint32_t sessions;
    uint8_t active;
} ls_device_state;

/*
 * Re-creates a device from its persisted state at start-up (no event; the
 * device is not marked dirty).  An active device is re-armed per `policy`:
 * under STRICT a deadline that passed while the daemon was down fires on the
 * next tick, with ts = the real deadline; under GRACE the daemon's own
 * downtime never makes a device inactive.  A last activity more than
 * max_clock_skew ahead of now.wall (the wall clock was stepped back) counts
 * as at now under both policies.  Returns 0, LS_EBADID, LS_EINVAL
 * (bad type or timeout), LS_EFULL, LS_ENOMEM; an existing id is replaced.
 */
int ls_engine_restore(ls_engine *e, const char *id, size_t len, const ls_device_state *st,
                      ls_restart_policy policy, ls_now now);

/* One device of ls_engine_restore_batch(). */
typedef struct ls_restore_item {
    const char *id;
    size_t len;
    ls_device_state st;
} ls_restore_item;

/*
 * Restores n devices as ls_engine_restore() would one by one, pipelined
 * like ls_engine_activity_batch(): at start-up most ids are new, and each
 * costs a cache miss in the index that prefetching hides.  rcs[i] (if not
 * NULL) gets item i's result.  Returns the number restored.
 */
size_t ls_engine_restore_batch(ls_engine *e, const ls_restore_item *items, size_t n, ls_restart_policy policy,
                               ls_now now, int *rcs);

/* Sizes the index for `devices` devices at once, so that loading them does
 * not rehash it again and again.  0 or LS_ENOMEM. */
int ls_engine_reserve(ls_engine *e, uint64_t devices);

const char *ls_strerror(int rc);
const char *ls_event_name(ls_event_type t);

#endif
