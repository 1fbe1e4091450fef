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
 * Besides the ThingsBoard state machine it resolves each device's timeout
 * (own inactivityTimeout, Cumulocity's c8y_RequiredAvailability, its device
 * type, the default; types.c), keeps every device's availability class
 * (monitored, maintenance, not monitored) with O(1) counters by class and
 * by type, and closes the sessions of devices silent for the session
 * timeout.  Alarms are a separate pure module (alarms.h) driven by the
 * events.
 *
 * The engine is single-threaded: one writer.  Callers that share it between
 * threads serialise access themselves.
 *
 * Errors: every function that can fail returns 0 or a negative code of
 * base/err.h (LS_EINVAL, LS_EBADID, LS_ENOTFOUND, LS_EFULL, LS_ENOMEM);
 * ls_strerror() names it.
 */
#ifndef LS_ENGINE_H
#define LS_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/now.h"
#include "engine/uuid.h"
#include "engine/wheel.h"

#define LS_ID_MAX 256
#define LS_TYPE_MAX 64
/* Timeouts are bounded so that deadlines never overflow the wheel. */
#define LS_TIMEOUT_MIN_MS 1
#define LS_TIMEOUT_MAX_MS (10LL * 365 * 24 * 3600 * 1000)
/* An effective timeout of "never": the device is not monitored. */
#define LS_TIMEOUT_NONE (-1)
/* Cumulocity's c8y_RequiredAvailability.responseInterval range (minutes). */
#define LS_RI_MIN (-32768)
#define LS_RI_MAX 32767

typedef enum ls_event_type {
    LS_EV_ACTIVITY = 0,
    LS_EV_INACTIVITY,
    LS_EV_CONNECT,
    LS_EV_DISCONNECT,
    /* Alarm changes (alarms.h): they carry the alarm, not a device. */
    LS_EV_ALARM_RAISED,
    LS_EV_ALARM_UPDATED,
    LS_EV_ALARM_CLEARED,
    /* Input source health: they carry the source's name, not a device. */
    LS_EV_SOURCE_DOWN, /* an input source stopped being heard */
    LS_EV_SOURCE_UP,   /* it is heard live again */
    /* An admin change through the API (who, what, before and after): raised
     * by the core beside the change (core/persist.h), never by the engine. */
    LS_EV_AUDIT,
    LS_EV__COUNT
} ls_event_type;

/* Alarm severities, Cumulocity's names (alarms.h has their text). */
typedef enum ls_severity {
    LS_SEV_CRITICAL = 0,
    LS_SEV_MAJOR,
    LS_SEV_MINOR,
    LS_SEV_WARNING,
    LS_SEV__COUNT
} ls_severity;

/*
 * How a device is watched, resolved from its own settings, its type's and
 * the configuration (see ls_engine_availability()):
 *   MONITORED    it has a timeout: active/inactive, AVAILABLE/UNAVAILABLE;
 *   MAINTENANCE  c8y_RequiredAvailability.responseInterval <= 0 (its own, or
 *                its type's): no alarm, Cumulocity statuses MAINTENANCE;
 *   UNMONITORED  no timeout from any source: tracked, never times out.
 */
typedef enum ls_avail {
    LS_AVAIL_MONITORED = 0,
    LS_AVAIL_MAINTENANCE,
    LS_AVAIL_UNMONITORED,
    LS_AVAIL__COUNT
} ls_avail;

/*
 * A device record: 96 bytes.  Records live in chunks that never move, so a
 * pointer to one stays valid until the device is deleted.  What an activity
 * touches (flags, times, timeout, the id) comes first, in bytes 0..55.
 *
 *    0 slot    4 id_len/id_form    6 type    8 flags   10 active   11 live
 *   12 sessions      16 last_activity_mono      24 last_activity
 *   32 timeout_ms    40 id (16 bytes)           56 timer (next, prev, expire)
 *   72 last_connect  80 last_disconnect         88 inactivity_alarm
 *
 * The id takes 16 bytes in one of three forms (id_form): text of up to 16
 * bytes; a canonical UUID (36 characters, 8-4-4-4-12 hex digits, letters
 * all lower-case or all upper-case: uuid.h) as its 16 bytes, the case in
 * the form; or, for any other id longer than 16 bytes, a pointer to a
 * malloc'd copy.  ls_device_id() gives the exact original text back.
 * The timer links other records by slot number, not by pointer (wheel.h).
 * Field names follow ThingsBoard's server-side attributes; all times are
 * wall ms, 0 = never.
 */
#define LS_ID_INLINE 16
#define LS_ID_BUF (LS_ID_MAX + 1) /* room for any id and its NUL */
enum {
    LS_ID_TEXT = 0,   /* id.inl, id_len <= LS_ID_INLINE, not NUL-terminated */
    LS_ID_HEAP,       /* id.heap, malloc'd, NUL-terminated */
    LS_ID_UUID_LOWER, /* id.uuid, id_len 36 */
    LS_ID_UUID_UPPER,
};
typedef struct ls_device {
    uint32_t slot;        /* its slot in the table (stable while it lives) */
    uint16_t id_len : 9;  /* 1..LS_ID_MAX */
    uint16_t id_form : 2; /* LS_ID_* */
    uint16_t type;        /* index into the engine's type names */
    uint16_t flags;       /* LS_DEV_* */
    uint8_t active;
    uint8_t live;               /* slot holds a device */
    uint32_t sessions;          /* open sessions */
    int64_t last_activity_mono; /* monotonic twin of lastActivityTime */
    int64_t last_activity;      /* lastActivityTime */
    int64_t timeout_ms;         /* effective timeout: see below */
    union {
        char inl[LS_ID_INLINE];
        uint8_t uuid[16];
        char *heap;
    } id;
    ls_wheel_entry timer;     /* intrusive, handle slot + 1: armed while active */
    int64_t last_connect;     /* lastConnectTime */
    int64_t last_disconnect;  /* lastDisconnectTime */
    int64_t inactivity_alarm; /* inactivityAlarmTime */
} ls_device;

/*
 * timeout_ms is the device's effective timeout (LS_TIMEOUT_NONE: never),
 * resolved from its sources whenever one changes, so an activity reads one
 * field: its own inactivityTimeout (LS_DEV_OWN_TIMEOUT set), else its
 * c8y_RequiredAvailability (LS_DEV_C8Y set: responseInterval minutes +
 * grace, or none in maintenance), else its type's or the default.  The
 * responseInterval itself lives in a side table (rarely set).
 *
 * flags: bit 0 dirty; bits 1-2 the ls_avail class (kept so counters can be
 * moved when it changes); bits 3-6 below; bits 12-15 the input source the
 * device was last heard through (LS_SOURCE_*, further below).
 */
#define LS_DEV_DIRTY 1 /* changed since it was last drained for the store */
#define LS_DEV_CLASS_SHIFT 1
#define LS_DEV_CLASS_MASK (3u << LS_DEV_CLASS_SHIFT)
#define LS_DEV_OWN_TIMEOUT (1u << 3) /* timeout_ms is its own inactivityTimeout */
#define LS_DEV_C8Y (1u << 4)         /* has c8y_RequiredAvailability */
#define LS_DEV_MARK (1u << 5)        /* scratch bit of engine-internal walks */
#define LS_DEV_URGENT                                                                              \
    (1u << 6) /* changed beyond its activity times: see ls_engine_drain_urgent() */

static inline ls_avail ls_device_avail(const ls_device *d)
{
    return (ls_avail)((d->flags & LS_DEV_CLASS_MASK) >> LS_DEV_CLASS_SHIFT);
}

/*
 * Input sources.  The top four bits of `flags` name the source a device was
 * last heard through: 0 = none of the registered ones (HTTP, or never
 * heard), 1..LS_SOURCE_MAX = a source from ls_engine_source_add(), and
 * LS_SOURCE_RESTORED = restored at start-up under the grace policy and not
 * heard from since (held while any gated source is not up).
 */
#define LS_SOURCE_SHIFT 12
#define LS_SOURCE_MASK 0xF000u
#define LS_SOURCE_MAX 14
#define LS_SOURCE_RESTORED 15
#define LS_ENGINE_SOURCE_NAME_MAX 31

static inline unsigned ls_device_source(const ls_device *d)
{
    return (d->flags & LS_SOURCE_MASK) >> LS_SOURCE_SHIFT;
}

/*
 * The device's id, id_len bytes and a NUL: written into buf (LS_ID_BUF
 * bytes) unless it is held whole on the heap, in which case that copy is
 * returned.  Valid while buf and the device are.
 */
const char *ls_device_id(const ls_device *d, char *buf);

/* One activity of a batch (see ls_engine_activity_batch). */
typedef struct ls_activity {
    const char *id;
    uint32_t len;
    uint8_t source; /* 0 or a source from ls_engine_source_add() */
    int64_t ts;     /* wall ms, 0 = now */
} ls_activity;

struct ls_alarm;
typedef struct ls_event {
    ls_event_type type;
    const ls_device *dev;         /* state after the change; NULL for alarm and source events */
    const struct ls_alarm *alarm; /* alarm events: the alarm after the change */
    const char *source;           /* SOURCE_*: the source's name; else NULL */
    int64_t ts;                   /* when it happened (for INACTIVITY: the deadline) */
    int64_t detected_at;          /* wall ms when it was seen */
} ls_event;

typedef void (*ls_event_cb)(void *ud, const ls_event *ev);

typedef struct ls_engine_config {
    int64_t default_timeout_ms; /* state.default_inactivity_timeout */
    int64_t max_clock_skew_ms;  /* state.max_clock_skew */
    uint64_t max_devices;       /* state.max_devices, 0 = unlimited */
    /* Optional: engines sharing one max_devices (shards) count their devices
     * here (relaxed atomics); NULL = this engine's own count.  Set, the cap
     * is exact across the engines: a new device reserves its place first. */
    _Atomic uint64_t *shared_devices;
    uint64_t seed;              /* hash seed (randomised by the daemon) */
    int64_t grace_ms;           /* availability.grace: added to responseInterval */
    int unmonitored_default;    /* state.monitor_by_default = false */
    int64_t session_timeout_ms; /* transport.session_inactivity_timeout, 0 = never */
    /* The event callback persists the device's whole record with each of
     * its events (the daemon's store does): a device event then leaves its
     * device neither urgent nor dirty, the record taken with the event
     * covers it.  0 = every device event marks its device urgent. */
    int event_snapshots;
} ls_engine_config;

typedef struct ls_engine_stats {
    uint64_t devices;
    uint64_t active;
    uint64_t inactive;
    uint64_t sessions;                         /* open sessions, all devices */
    uint64_t activities;                       /* activities accepted */
    uint64_t stale_activities;                 /* older than now - timeout: recorded only */
    uint64_t clamped_future;                   /* ts beyond max_clock_skew, clamped */
    uint64_t events[LS_EV__COUNT];             /* by type (the engine's own) */
    uint64_t sessions_expired;                 /* closed by session_timeout_ms */
    uint64_t type_visits;                      /* devices visited by type re-evaluations */
    uint64_t avail[LS_AVAIL__COUNT];           /* devices by class */
    uint64_t avail_active[LS_AVAIL__COUNT];    /* ... of them active */
    uint64_t avail_connected[LS_AVAIL__COUNT]; /* ... of them with a session */
} ls_engine_stats;

/* Device configuration for ls_engine_put().  Unset fields keep their value. */
typedef struct ls_device_config {
    int set_timeout;    /* apply timeout_ms */
    int64_t timeout_ms; /* 0 = back to the default */
    const char *type;   /* NULL = keep; "" is invalid */
    size_t type_len;
    int set_c8y;           /* apply has_c8y and response_interval */
    int has_c8y;           /* 0 = remove c8y_RequiredAvailability */
    int response_interval; /* minutes, LS_RI_MIN..LS_RI_MAX (callers clamp) */
} ls_device_config;

/*
 * A device type's (profile's) settings.  Devices of the type that have no
 * timeout of their own take it from here: inactivityTimeout, else
 * responseInterval (as c8y_RequiredAvailability), else `monitored`.
 */
typedef struct ls_type_config {
    int64_t timeout_ms;    /* inactivityTimeout, 0 = unset */
    int has_ri;            /* responseInterval set */
    int response_interval; /* minutes, LS_RI_MIN..LS_RI_MAX */
    int monitored;         /* -1 unset (state.monitor_by_default), 0 no, 1 yes */
    ls_severity severity;  /* alarmSeverity */
} ls_type_config;

typedef struct ls_type_info {
    const char *name;
    int configured; /* has settings (PUT /device-types); else cfg is the default */
    ls_type_config cfg;
    uint64_t devices, active;
} ls_type_info;

/* A device's resolved availability settings. */
typedef struct ls_availability {
    int64_t timeout_ms; /* effective timeout, LS_TIMEOUT_NONE = never */
    const char *source; /* "device", "c8y_RequiredAvailability", "type" or "default" */
    ls_avail cls;
    int has_c8y;
    int response_interval; /* its own c8y_RequiredAvailability, if has_c8y */
} ls_availability;

/*
 * The availability rule (types.c has it in words), pure so that what reads
 * a store without an engine (`lastseen export`) resolves a device exactly
 * as the engine does; the engine resolves its devices with it too.
 *
 * A type's level is what a device of the type gets from it when the device
 * has no setting of its own.  ls_type_level_of() resolves it from the
 * type's settings (NULL: the type has none) and the configuration
 * (default_timeout_ms, grace_ms, unmonitored_default of cfg).
 */
typedef struct ls_type_level {
    int64_t timeout_ms; /* LS_TIMEOUT_NONE = never */
    const char *source; /* "type" or "default" */
    int maint;          /* the type's responseInterval <= 0: maintenance */
} ls_type_level;
void ls_type_level_of(const ls_type_config *c, const ls_engine_config *cfg, ls_type_level *out);

/*
 * A device's availability from its own settings - its inactivityTimeout
 * (own_timeout, 0 = none) and its c8y_RequiredAvailability (has_c8y,
 * response_interval) - and its type's level.
 */
void ls_availability_of(int64_t own_timeout, int has_c8y, int response_interval,
                        const ls_type_level *type, const ls_engine_config *cfg,
                        ls_availability *out);

/*
 * Called when a device's class changes through a configuration change (of
 * the device or of its type), after the change and any INACTIVITY_EVENT it
 * caused; `was_active` is whether the device was active before.  Not called
 * for new or restored devices.  Like the event callback it must not change
 * the engine (reading is fine).
 */
typedef void (*ls_avail_cb)(void *ud, const ls_device *d, ls_avail old_cls, int was_active,
                            ls_now now);

typedef struct ls_engine ls_engine;

/* Creates an engine; *out is owned by the caller until ls_engine_close(). */
int ls_engine_new(ls_engine **out, const ls_engine_config *cfg, ls_event_cb cb, void *ud);
void ls_engine_close(ls_engine *e);

/* Sets the class-change callback (NULL to clear). */
void ls_engine_set_avail_cb(ls_engine *e, ls_avail_cb cb, void *ud);

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

/*
 * Records a held activity reported late (the reporting strategy FIRST's
 * deferred last activity): like ls_engine_activity() on a device that is
 * active, but it never makes an inactive device active and never creates a
 * device.  Returns 0, LS_ENOTFOUND, LS_EBADID or LS_EINVAL.
 */
int ls_engine_record(ls_engine *e, const char *id, size_t len, int64_t ts, ls_now now);

/* Whether an activity of `id` would be taken: 0 (the device exists or may
 * be created), LS_EBADID or LS_EFULL.  Changes nothing. */
int ls_engine_admit(const ls_engine *e, const char *id, size_t len);

/* Opens a session (CONNECT_EVENT; counts as an activity at now). */
int ls_engine_connect(ls_engine *e, const char *id, size_t len, ls_now now);
/* The same, heard through `source` (0 = none). */
int ls_engine_connect_src(ls_engine *e, const char *id, size_t len, unsigned source, ls_now now);

/*
 * Closes a session; the last one closing emits DISCONNECT_EVENT.  Closing
 * with no open session changes nothing.  LS_ENOTFOUND if unknown.  Sessions
 * of a device silent for session_timeout_ms are all closed by the engine
 * (DISCONNECT_EVENT at the detection time).
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

/* The effective timeout (LS_TIMEOUT_NONE = never) and where it comes from
 * ("device", "c8y_RequiredAvailability", "type" or "default"). */
int64_t ls_engine_timeout(const ls_engine *e, const ls_device *d, const char **source);
void ls_engine_availability(const ls_engine *e, const ls_device *d, ls_availability *out);
const char *ls_engine_type_name(const ls_engine *e, const ls_device *d);
/* The alarmSeverity of the device's type (MAJOR unless configured). */
ls_severity ls_engine_severity(const ls_engine *e, const ls_device *d);

/*
 * Device types.  A type name is interned the first time a device or a PUT
 * names it; it carries settings once put.  Putting or deleting a type's
 * settings re-evaluates exactly the devices of that type (each type keeps
 * a list of its devices; the "default" type, which every untyped device
 * has, is re-evaluated by a walk of the table): a deadline that passed
 * under the new timeout fires at once, the others move.  Names follow the
 * device type rules (1..64 bytes).  Put returns 0, LS_EINVAL, LS_EFULL
 * (65535 names), LS_ENOMEM; *created = 1 when it had no settings before.
 * Delete returns LS_ENOTFOUND when the type has no settings.
 */
int ls_engine_type_put(ls_engine *e, const char *name, size_t len, const ls_type_config *c,
                       ls_now now, int *created);
int ls_engine_type_delete(ls_engine *e, const char *name, size_t len, ls_now now);
/* Whether ls_engine_type_put() would take the name and settings: 0 or LS_EINVAL. */
int ls_engine_type_check(const char *name, size_t len, const ls_type_config *c);
/* 0 and *out (configured or not), LS_ENOTFOUND for a name never seen. */
int ls_engine_type_get(const ls_engine *e, const char *name, size_t len, ls_type_info *out);
/* Types by index, 0 .. ls_engine_type_count() - 1 (index 0 is "default"). */
uint32_t ls_engine_type_count(const ls_engine *e);
void ls_engine_type_at(const ls_engine *e, uint32_t i, ls_type_info *out);

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
 * Persistence support.  Every change to a device marks it dirty (one flag
 * test on the hot path), so a store writes exactly what changed.  Changes
 * come in two kinds:
 *   - urgent: a transition (every device event marks its device, unless
 *     cfg.event_snapshots: then the event callback takes the record), a
 *     session opened or closed, a configuration change, ls_engine_urge().
 *     Its record must be committed together with the events it produced
 *     and before the change is acknowledged: ls_engine_drain_urgent().
 *   - activity only (lastActivityTime moved, nothing else): may lag on
 *     disk by the flush interval; written by flush passes,
 *     ls_engine_flush_begin() / ls_engine_flush_next().
 * Each drain visits a device at most once per mark and clears its marks;
 * a device deleted meanwhile is skipped (its record is zeroed), and a slot
 * reused by a new device is visited as that device.  The callback gets the
 * device's current state.  The lists hold 4 bytes a listed device, and
 * memory a burst made one take is given back once a drain finds it less
 * than a quarter used.
 */

/* Drains everything at once (both kinds); the count visited. */
size_t ls_engine_drain_dirty(ls_engine *e, ls_visit_cb cb, void *ud);

/* Visits up to `max` urgent devices (clearing LS_DEV_URGENT and
 * LS_DEV_DIRTY: the visit writes the whole record); the count visited. */
size_t ls_engine_drain_urgent(ls_engine *e, size_t max, ls_visit_cb cb, void *ud);

/* Urgent devices not drained yet (an upper bound: entries may be stale;
 * 0 means none). */
size_t ls_engine_urgent_left(const ls_engine *e);

/* Marks an existing device urgent (an activity the caller acknowledges
 * only once it is durable, e.g. a ping).  0 or LS_ENOTFOUND. */
int ls_engine_urge(ls_engine *e, const char *id, size_t len);

/*
 * Flush passes.  ls_engine_flush_begin() starts a pass over the devices
 * marked dirty so far (O(1): the list is swapped); later marks wait for the
 * next pass.  Each ls_engine_flush_next() visits up to `max` of the pass's
 * devices that are still dirty, clearing LS_DEV_DIRTY, and skips the urgent
 * ones (ls_engine_drain_urgent() writes those); it looks at no more than
 * 8 * max entries, so each call is bounded.  Returns the count visited and
 * sets *done once the pass is exhausted.  ls_engine_flush_begin() while a
 * pass is unfinished does nothing.
 */
void ls_engine_flush_begin(ls_engine *e);
size_t ls_engine_flush_next(ls_engine *e, size_t max, ls_visit_cb cb, void *ud, int *done);

/* Devices marked dirty and not yet in a pass (an upper bound, like above). */
size_t ls_engine_dirty_left(const ls_engine *e);

/* How devices that were active when the daemon stopped are restored. */
typedef enum ls_restart_policy {
    LS_RESTART_GRACE = 0, /* deadline = max(old deadline, now + timeout) */
    LS_RESTART_STRICT,    /* deadline = old deadline; passed ones fire at once */
} ls_restart_policy;

/*
 * A device's record: what lastseen keeps of a device beyond its live
 * timers - its id, its own settings, its times and sessions - in one
 * shape for everything that copies a device out of an engine or into one:
 * the snapshots taken with events and by flush passes, the store's
 * encoding (store.h), the start-up load, `lastseen export` and `lastseen
 * import`, and the reader and writer of a device's JSON (core/format.h,
 * core/device_in.h).  What a device's JSON shows beyond it is derived: the
 * effective timeout, its source and the class come from the record's own
 * settings and its type's (ls_availability_of()), alarms from the alarms.
 * The hot ls_device is not this: it is laid out for the activity path and
 * holds the effective timeout, the class and the timer instead.
 *
 * Strings are not NUL-terminated (len bytes) and belong to whoever filled
 * the record.
 */
typedef struct ls_device_state {
    const char *id; /* 1..LS_ID_MAX bytes for an engine */
    size_t id_len;
    const char *type; /* NULL (or type_len 0) = "default" */
    size_t type_len;
    int64_t timeout_ms; /* own inactivityTimeout, 0 = none */
    int64_t last_activity, last_connect, last_disconnect, inactivity_alarm;
    uint32_t sessions;
    uint8_t active;
    uint8_t has_c8y;       /* has c8y_RequiredAvailability */
    int response_interval; /* its responseInterval, LS_RI_MIN..LS_RI_MAX */
} ls_device_state;

/*
 * A device's record, and (if av is not NULL) its resolved availability, as
 * ls_engine_availability() gives it.  The id is written into idb
 * (LS_ID_BUF bytes) unless the device holds it whole; the type points at
 * the engine's name of it (NULL for "default").  Valid while idb, the
 * device and the engine's types are.  Costs a lookup only for a device
 * with c8y_RequiredAvailability.
 */
void ls_engine_snapshot(const ls_engine *e, const ls_device *d, char *idb, ls_device_state *rec,
                        ls_availability *av);

/*
 * Re-creates device st->id from its record at start-up (no event; the
 * device is not marked dirty).  An active device is re-armed per `policy`:
 * under STRICT a deadline that passed while the daemon was down fires on the
 * next tick, with ts = the real deadline; under GRACE the daemon's own
 * downtime never makes a device inactive, and the device is attributed to
 * LS_SOURCE_RESTORED until it is heard from again, so that a source that is
 * not up yet after the restart does not make it inactive either.  A last
 * activity more than max_clock_skew ahead of now.wall (the wall clock was
 * stepped back) counts as at now under both policies.  Returns 0, LS_EBADID, LS_EINVAL
 * (bad type or timeout), LS_EFULL, LS_ENOMEM; an existing id is replaced.
 */
int ls_engine_restore(ls_engine *e, const ls_device_state *st, ls_restart_policy policy,
                      ls_now now);

/*
 * Restores n devices as ls_engine_restore() would one by one, pipelined
 * like ls_engine_activity_batch(): at start-up most ids are new, and each
 * costs a cache miss in the index that prefetching hides.  rcs[i] (if not
 * NULL) gets item i's result.  Returns the number restored.
 */
size_t ls_engine_restore_batch(ls_engine *e, const ls_device_state *recs, size_t n,
                               ls_restart_policy policy, ls_now now, int *rcs);

/* Sizes the index for `devices` devices at once, so that loading them does
 * not rehash it again and again.  0 or LS_ENOMEM. */
int ls_engine_reserve(ls_engine *e, uint64_t devices);

/*
 * Source health gating.  Each input source (an MQTT connection, ...) is
 * registered once; every activity and connect names the source it came
 * through, and the device remembers the last one.  While a gated source is
 * held (down, or catching up a backlog) its devices do not go inactive:
 * when such a device's timer fires it is re-armed one timeout later
 * instead.  Once the source is up again, a device whose deadline is earlier
 * than release time + its timeout gets that instead (the grace of a
 * restart).  All of it is decided lazily when a timer fires: holding and
 * releasing cost O(1), never a scan of the devices.
 *
 * ls_engine_source_add() registers `name` (1..31 bytes, copied) and returns
 * its index 1..LS_SOURCE_MAX, or LS_EINVAL / LS_EFULL.  A new source is in
 * state "unknown": held (if gated), never announced.
 */
int ls_engine_source_add(ls_engine *e, const char *name, int gate);

/* Marks the source down (held if gated).  Emits SOURCE_DOWN unless it was
 * already down.  Returns 0 or LS_EINVAL for an unknown index. */
int ls_engine_source_down(ls_engine *e, unsigned source, ls_now now);

/* Marks the source up (released at now.mono).  Emits SOURCE_UP unless it
 * was already up.  Returns 0 or LS_EINVAL. */
int ls_engine_source_up(ls_engine *e, unsigned source, ls_now now);

/* 1 if the source is up, 0 if down or unknown, LS_EINVAL if no such source. */
int ls_engine_source_is_up(const ls_engine *e, unsigned source);
const char *ls_engine_source_name(const ls_engine *e, unsigned source);

const char *ls_event_name(ls_event_type t);

#endif
