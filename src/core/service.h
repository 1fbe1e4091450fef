/*
 * service.h - the service port: the operations the HTTP routes ask of the
 * core (devices, device types, alarms, the fleet's history).
 *
 * Each call takes plain C inputs (ids already validated, a parsed request
 * struct; never jansson or libmicrohttpd), takes the locks it needs, does
 * the engine, persist and alarming work of one operation, and has left
 * every lock when it returns.  So a route handler only parses its request
 * into these inputs, calls one function here and formats the answer.
 *
 * Acknowledgement.  A call that changes state returns the commit
 * generation that holds its change (ls_daemon_unlock_to_commit()): the
 * caller must not acknowledge the change before ls_service_committed_gen()
 * reaches it (the HTTP server suspends the request until the committer's
 * hook, ls_service_on_commit(), resumes it: api/http.c).  0 means there is
 * nothing to wait for: the call failed and changed nothing, or changed
 * nothing that must be on disk before it is acknowledged (an activity
 * without a transition is flushed with the next pass).  No call here waits for a commit itself, so
 * none blocks its thread on the disk.
 *
 * Results.  res->rc is 0, or an LS_E* code (and then nothing changed).  A
 * device comes back as its JSON (format.h), written under the locks of the
 * change, so it shows exactly the state that is committed: a device's JSON
 * needs its engine (type names, the resolved availability) and the alarms,
 * both readable only under those locks, and format.c writes that one shape
 * for the API and the sinks alike.  Types and alarms come back as plain
 * copies (ls_type_info, ls_alarm_copy).
 *
 * Locks and costs (daemon.h has the order):
 *   - one device (get, put, delete, activity, connect, disconnect): that
 *     device's shard and the global lock (ls_daemon_lock_id()), O(1);
 *   - bulk activity: each shard's part under that shard's lock only, the
 *     global lock only if an activity raises an event (as a shard's worker
 *     does), so bulk requests on several threads run in parallel;
 *   - the device list: each shard in turn with the global lock, for at
 *     most LS_SERVICE_LIST_SCAN slots per shard, so a page that matches
 *     few devices never holds a shard's worker back for long;
 *   - types, alarms and the fleet's history: every shard and the global
 *     lock (ls_daemon_lock()); a type put or delete re-evaluates that
 *     type's devices in every shard, an alarm list looks at most
 *     LS_SERVICE_LIST_SCAN alarms.
 * Callbacks (the type and alarm lists) run under those locks: they must
 * only copy or format what they are given.
 *
 * The daemon is an opaque handle here: what the HTTP adapter needs of it
 * besides the operations (readiness, the commit generation and its hook,
 * the counters it adds to) is at the end of this header.
 */
#ifndef LS_SERVICE_H
#define LS_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "core/history.h"
#include "core/ingest.h"
#include "core/metrics.h"
#include "engine/alarms.h"
#include "engine/engine.h"

struct ls_daemon;

#define LS_SERVICE_LIST_SCAN 200000 /* slots (alarms) a list looks at per lock hold */

/*
 * Audit.  The admin operations (a device put that is not a ping of an
 * existing device, a device delete, a type put or delete, an alarm status)
 * take `by`, who asks.  Given, an AUDIT event (core/format.h, ls_audit)
 * with the thing changed before and after, as the API shows it, is queued
 * under the locks of the change, so that it is in the same commit: no
 * change is on disk without its record, and the acknowledgement waits for
 * both.  NULL: no AUDIT event.
 */
typedef struct ls_actor {
    const char *who; /* the credential's name; NULL: none was needed */
} ls_actor;

/* What a call that changes something reports besides its generation. */
typedef struct ls_service_result {
    int rc;            /* 0, or an LS_E* code: nothing changed */
    int created;       /* a put created the device / the type's settings */
    uint32_t sessions; /* connect, disconnect: the sessions open after it */
} ls_service_result;

/* ---- devices ------------------------------------------------------------ */

/* A device PUT: the fields given (unset ones keep their value). */
typedef struct ls_device_put_req {
    const char *id; /* valid (ls_id_check()) */
    size_t len;
    ls_device_config cfg;
    int ping;           /* no field but the id: an activity at now if the device exists */
    int ping_only;      /* the caller may only ping: an unknown device is LS_ENOTFOUND */
    const ls_actor *by; /* see Audit above */
} ls_device_put_req;

/*
 * Appends the device's JSON to `out`.  0, or LS_ENOTFOUND.
 */
int ls_service_device_get(struct ls_daemon *d, const char *id, size_t len, ls_buf *out);

/*
 * Creates or configures a device (a ping of an existing one is an activity
 * at now, marked urgent so that its acknowledgement means it is on disk).
 * On success appends the device's JSON after the change to `out` and sets
 * res->created.  Errors: LS_EFULL (state.max_devices), LS_EINVAL.  Always
 * a generation to wait for on success.
 */
uint64_t ls_service_device_put(struct ls_daemon *d, const ls_device_put_req *req, ls_buf *out,
                               ls_service_result *res);

/*
 * Deletes a device: its record, its open alarm (cleared) and what the HTTP
 * reporter holds of it.  Errors: LS_ENOTFOUND.
 */
uint64_t ls_service_device_delete(struct ls_daemon *d, const char *id, size_t len,
                                  const ls_actor *by, ls_service_result *res);

/*
 * One activity of the device at `ts` (0 = now) through the HTTP input's
 * reporting strategy (its shard's reporter).  A generation only if it
 * caused events.  Errors: LS_EFULL, LS_EINVAL (ts).
 */
uint64_t ls_service_device_activity(struct ls_daemon *d, const char *id, size_t len, int64_t ts,
                                    ls_service_result *res);

/* Opens (connect) or closes (disconnect) a session; res->sessions gets the
 * count after it.  Errors: LS_EFULL (connect), LS_ENOTFOUND (disconnect). */
uint64_t ls_service_device_connect(struct ls_daemon *d, const char *id, size_t len,
                                   ls_service_result *res);
uint64_t ls_service_device_disconnect(struct ls_daemon *d, const char *id, size_t len,
                                      ls_service_result *res);

/*
 * Bulk activity: n activities (ids valid, ts 0 = now) through the HTTP
 * input's reporting strategy, split by shard, each shard's part under its
 * lock only (ls_shards_apply()); per-device order is kept.  rcs[i] gets
 * item i's result: 0, LS_EFULL or LS_EINVAL (ts).  A generation only if
 * they caused events.
 */
uint64_t ls_service_activities(struct ls_daemon *d, const ls_activity *a, size_t n, int *rcs);

/* A page of the device list. */
typedef struct ls_device_query {
    int active;      /* -1 every device, 0 inactive ones, 1 active ones */
    uint64_t limit;  /* devices at most, >= 1 */
    uint64_t cursor; /* 0 = from the start, else a `next` returned before */
    const char *q;   /* id substring (ASCII case-insensitive), NULL = any */
    size_t qlen;
} ls_device_query;

/*
 * Appends the page's devices to `out` as JSON objects separated by commas
 * and returns the cursor of the next page (0 = this was the last).  The
 * cursor is the engine's cursor times the shard count plus the shard.
 */
uint64_t ls_service_device_list(struct ls_daemon *d, const ls_device_query *q, ls_buf *out);

/* ---- device types ------------------------------------------------------- */

/* A type PUT: which settings it sets, and to what (the others keep theirs). */
typedef struct ls_type_patch {
    int set_timeout, set_ri, set_monitored, set_severity;
    ls_type_config v;
} ls_type_patch;

/* The type `name` (valid, NUL-terminated) into *out, whose name then
 * points at `name`.  0, or LS_ENOTFOUND. */
int ls_service_type_get(struct ls_daemon *d, const char *name, size_t len, ls_type_info *out);

/* Every type known, by ls_shards_types(), under every lock. */
void ls_service_types(struct ls_daemon *d, void (*cb)(void *ud, const ls_type_info *t), void *ud);

/*
 * Applies the patch to the type's settings (those it had, else the
 * defaults) in every shard and queues them for the store; *out gets the
 * type after it (as ls_service_type_get()), res->created whether the name
 * is new.  Errors: LS_EFULL (65535 names exist), LS_ENOMEM.
 */
uint64_t ls_service_type_put(struct ls_daemon *d, const char *name, size_t len,
                             const ls_type_patch *p, const ls_actor *by, ls_type_info *out,
                             ls_service_result *res);

/* Drops the type's settings (its devices keep the name).  Errors:
 * LS_ENOTFOUND when it has none. */
uint64_t ls_service_type_delete(struct ls_daemon *d, const char *name, size_t len,
                                const ls_actor *by, ls_service_result *res);

/* ---- alarms ------------------------------------------------------------- */

/* An alarm copied out of the table: a.source points at source. */
typedef struct ls_alarm_copy {
    ls_alarm a;
    char source[LS_ID_BUF];
} ls_alarm_copy;

/* 0 and *out, or LS_ENOTFOUND. */
int ls_service_alarm_get(struct ls_daemon *d, uint64_t id, ls_alarm_copy *out);

/*
 * Sets the alarm's status (ACKNOWLEDGED or CLEARED): an ALARM_UPDATED or
 * ALARM_CLEARED event.  Setting the status it has changes nothing (no
 * generation).  *out gets the alarm after it.  Errors: LS_ENOTFOUND, and
 * LS_EINVAL for an alarm that is CLEARED already (that is final).
 */
uint64_t ls_service_alarm_set_status(struct ls_daemon *d, uint64_t id, ls_alarm_status st,
                                     const ls_actor *by, ls_alarm_copy *out,
                                     ls_service_result *res);

/* Visits up to `limit` alarms with id > after that match f, in id order
 * (ls_alarms_list()); returns the cursor of the next page, 0 = none. */
uint64_t ls_service_alarms(struct ls_daemon *d, uint64_t after, const ls_alarm_filter *f,
                           size_t limit, void (*cb)(void *ud, const ls_alarm *a), void *ud);

/* ---- the fleet ----------------------------------------------------------- */

/* Copies the newest `max` samples of the fleet's history (history.h) into
 * out, oldest first, and the engines' statistics now into *now, under the
 * same locks; returns how many samples. */
size_t ls_service_history(struct ls_daemon *d, ls_history_sample *out, size_t max,
                          ls_engine_stats *now);

/* ---- the HTTP adapter's handle on the core ------------------------------ */

/* 1 once the devices are loaded and the API is open (ls_core_ready()),
 * else 0; *loaded gets the devices restored so far.  Any thread. */
int ls_service_ready(struct ls_daemon *d, uint64_t *loaded);

/* The store's health: 0 while writes succeed, else the code of the last
 * failed write (a -errno such as -ENOSPC, or LS_STORE_EFULL), with in
 * *since the wall ms the failures began and in *failures the failed writes
 * since start (either may be NULL).  Any thread. */
int ls_service_store_error(struct ls_daemon *d, int64_t *since, uint64_t *failures);

/* The last commit generation on disk, whose events are delivered to the
 * inline sinks (acquire).  Any thread. */
uint64_t ls_service_committed_gen(struct ls_daemon *d);

/* Sets the hook the committer calls after each commit, without any lock,
 * with the generation committed (at most one hook; NULL removes it). */
void ls_service_on_commit(struct ls_daemon *d, void (*hook)(void *ud, uint64_t gen), void *ud);

/* The daemon's counters (metrics.h), to which the HTTP adapter adds its
 * requests, streams, activities and rejections, and in *http_source the
 * index of its input in them.  Atomics: any thread. */
ls_metrics *ls_service_metrics(struct ls_daemon *d, int *http_source);

/* Cluster mode (docs/cluster.md): 1 when the inputs' port forwards to the
 * cluster's input stream, and ls_ingest_forward() on that port. */
int ls_service_forwarding(struct ls_daemon *d);
int ls_service_forward(struct ls_daemon *d, const ls_ingest_item *items, size_t n,
                       ls_ingest_stored_cb stored, void *ud);

#endif
