/*
 * engine.c - the device state machine.
 *
 * States: a device is inactive (new devices start so) or active.  An
 * activity makes an inactive device active (ACTIVITY_EVENT) and arms its
 * timer at last_activity_mono + timeout; an active device's activity only
 * stores the new times (lazy re-arm: the timer is not touched on the hot
 * path).  When the timer fires, the device's real deadline is recomputed:
 * if it moved out, the timer is re-armed there (O(1)); otherwise the device
 * goes inactive (INACTIVITY_EVENT).  So a device heard every minute with a
 * ten-minute timeout costs one hash lookup and two stores per message, and
 * one wheel re-arm per ten minutes.
 *
 * Two clocks: deadlines run on the monotonic clock (now.mono), so a wall
 * clock step fires nothing early and delays nothing; reported times are
 * wall ms.  Each device keeps both its lastActivityTime (wall, what users
 * see) and its monotonic twin.  An activity carrying a device timestamp
 * maps to the monotonic clock by its age at arrival: mono = now.mono -
 * (now.wall - ts).  Each of the two only moves forward.
 *
 * Late reports: an activity whose ts is already older than now - timeout is
 * recorded (lastActivityTime moves if it is newer) but never makes an
 * inactive device active; otherwise a device that reports a backlog after
 * an outage would flip active and, a moment later, inactive again.
 *
 * Sessions: CONNECT_EVENT on every session opened (it counts as an
 * activity), DISCONNECT_EVENT when the last open session closes, or when
 * the device has been silent for session_timeout_ms (ThingsBoard's
 * transport session expiry).  The session deadline shares the device's one
 * wheel entry with the inactivity deadline: the entry sits at the earlier
 * of the two and both are recomputed when it fires.
 *
 * Timeouts and classes: a device's effective timeout comes from its own
 * inactivityTimeout, else its c8y_RequiredAvailability, else its type,
 * else the configured default (types.c resolves the type levels).  It is
 * resolved into the record whenever one of its sources changes (a type
 * change visits the type's devices anyway), so the hot path reads one field.  A device without a
 * timeout (not monitored, or in maintenance) never goes inactive.  Each
 * device's availability class is kept in its flags so that the counters
 * behind /stats (by class, by type) move in O(1) on every change.
 *
 * Source gating: a device's flags name the input source it was last heard
 * through.  While a gated source is held (down, or catching up a backlog)
 * a timer of one of its devices that fires is re-armed one timeout later
 * instead of raising INACTIVITY_EVENT; after the source is released, the
 * deadline is at least release time + timeout.  deadline_at() below is the
 * one place that decides; holding and releasing only flip a flag and store
 * a time, so an outage costs nothing up front, and each held device costs
 * one re-arm per timeout while it lasts (what a device that keeps
 * reporting costs anyway).  Devices restored under the grace policy belong
 * to the pseudo-source LS_SOURCE_RESTORED, held while any gated source is
 * not up: after a restart nobody knows yet which source they report
 * through.
 *
 * Events are emitted synchronously, after the state change, through the
 * callback; the callback must not call back into the engine.
 */
#include "engine/engine.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

/* Appends d to list l; on failure the list is flagged lost (drains then
 * scan the flags). */
static void list_push(eng__list *l, const ls_device *d)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint32_t *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv) {
            l->lost = 1; /* the flag alone still records it */
            return;
        }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = d->slot;
}

/* A list grown by a burst (every device heard at once) is given back once
 * it is found less than a quarter used. */
#define LIST_KEEP 65536

static void list_trim(eng__list *l, size_t used)
{
    if (l->cap <= LIST_KEEP || used >= l->cap / 4 || l->n) return;
    size_t cap = used * 2 > LIST_KEEP ? used * 2 : LIST_KEEP;
    uint32_t *nv = realloc(l->v, cap * sizeof(*nv));
    if (nv) {
        l->v = nv;
        l->cap = cap;
    }
}

/* Marks d changed (its activity times at least). */
static inline void mark(ls_engine *e, ls_device *d)
{
    if (d->flags & LS_DEV_DIRTY) return;
    d->flags |= LS_DEV_DIRTY;
    list_push(&e->dirty, d);
}

/* Marks d changed beyond its activity times: see engine.h. */
static void mark_urgent(ls_engine *e, ls_device *d)
{
    mark(e, d);
    if (d->flags & LS_DEV_URGENT) return;
    d->flags |= LS_DEV_URGENT;
    list_push(&e->urgent, d);
}

void eng__mark(ls_engine *e, ls_device *d)
{
    mark_urgent(e, d);
}

/*
 * A device event's own mark.  Every device event has its device's record
 * committed with it: either the engine marks the device urgent (the
 * committer copies it with the event), or, with cfg.event_snapshots, the
 * event callback copies the record itself, and the device needs no mark
 * for this change (the dirty one is cleared in emit(), after the change).
 */
static void mark_event(ls_engine *e, ls_device *d)
{
    if (!e->cfg.event_snapshots) mark_urgent(e, d);
}

/* Emits a device event; d's change is complete (see mark_event()). */
static void emit(ls_engine *e, ls_event_type type, ls_device *d, int64_t ts, int64_t at)
{
    if (e->cfg.event_snapshots)
        d->flags &= (uint16_t)~LS_DEV_DIRTY; /* the callback's record holds this state */
    else
        mark_urgent(e, d);
    ls_event ev = {.type = type, .dev = d, .ts = ts, .detected_at = at};
    e->st.events[type]++;
    if (e->cb) e->cb(e->ud, &ev);
}

static void emit_source(ls_engine *e, ls_event_type type, const eng__source *s, int64_t at)
{
    ls_event ev = {.type = type, .source = s->name, .ts = at, .detected_at = at};
    e->st.events[type]++;
    if (e->cb) e->cb(e->ud, &ev);
}

/* The wheel's handles are slot + 1. */
static ls_wheel_entry *timer_at(void *ctx, uint32_t h)
{
    ls_engine *e = ctx;
    return &ls_table_slot(&e->table, h - 1)->timer;
}

int ls_engine_new(ls_engine **out, const ls_engine_config *cfg, ls_event_cb cb, void *ud)
{
    if (cfg->default_timeout_ms < LS_TIMEOUT_MIN_MS ||
        cfg->default_timeout_ms > LS_TIMEOUT_MAX_MS || cfg->max_clock_skew_ms < 0 ||
        cfg->grace_ms < 0 || cfg->grace_ms > LS_TIMEOUT_MAX_MS / 2 || cfg->session_timeout_ms < 0 ||
        cfg->session_timeout_ms > LS_TIMEOUT_MAX_MS)
        return LS_EINVAL;
    ls_engine *e = calloc(1, sizeof(*e));
    if (!e) return LS_ENOMEM;
    e->cfg = *cfg;
    e->cb = cb;
    e->ud = ud;
    if (eng__types_init(e) < 0 || ls_table_init(&e->table, cfg->seed) < 0) {
        eng__types_close(e);
        free(e);
        return LS_ENOMEM;
    }
    ls_wheel_init(&e->wheel, 0, timer_at, e);
    *out = e;
    return 0;
}

void ls_engine_close(ls_engine *e)
{
    if (!e) return;
    ls_table_close(&e->table);
    free(e->dirty.v);
    free(e->pass.v);
    free(e->urgent.v);
    eng__types_close(e);
    ls_map64_close(&e->c8y);
    free(e);
}

void ls_engine_set_avail_cb(ls_engine *e, ls_avail_cb cb, void *ud)
{
    e->avail_cb = cb;
    e->avail_ud = ud;
}

void ls_engine_availability(const ls_engine *e, const ls_device *d, ls_availability *out)
{
    eng__resolve(e, d, (d->flags & LS_DEV_OWN_TIMEOUT) ? d->timeout_ms : 0, out);
}

void ls_engine_snapshot(const ls_engine *e, const ls_device *d, char *idb, ls_device_state *rec,
                        ls_availability *av)
{
    /* Field by field, not a compound literal: this runs under the engine
     * lock for every device a flush pass stages. */
    const eng__type *t = &e->types[d->type];
    int64_t ri = 0;
    rec->id = ls_device_id(d, idb);
    rec->id_len = d->id_len;
    rec->type = d->type ? t->name : NULL;
    rec->type_len = d->type ? t->name_len : 0;
    rec->timeout_ms = (d->flags & LS_DEV_OWN_TIMEOUT) ? d->timeout_ms : 0;
    rec->last_activity = d->last_activity;
    rec->last_connect = d->last_connect;
    rec->last_disconnect = d->last_disconnect;
    rec->inactivity_alarm = d->inactivity_alarm;
    rec->sessions = d->sessions;
    rec->active = d->active;
    rec->has_c8y = (d->flags & LS_DEV_C8Y) &&
                   ls_map64_get(&e->c8y, (uint64_t)ls_table_slot_of(&e->table, d) + 1, &ri);
    rec->response_interval = rec->has_c8y ? (int)ri : 0;
    if (av)
        ls_availability_of(rec->timeout_ms, rec->has_c8y, rec->response_interval, &t->level,
                           &e->cfg, av);
}

int64_t ls_engine_timeout(const ls_engine *e, const ls_device *d, const char **source)
{
    if (source) {
        ls_availability av;
        ls_engine_availability(e, d, &av);
        *source = av.source;
    }
    return eng__timeout(e, d);
}

static inline void set_source(ls_device *d, unsigned source)
{
    d->flags = (uint16_t)((d->flags & ~LS_SOURCE_MASK) | (source << LS_SOURCE_SHIFT));
}

/*
 * Applies source gating to deadline dl of a `period` (the inactivity
 * timeout, or the session timeout) of device d, looked at from mono time t.
 * Unchanged unless d's source gates it: while the source is held, a
 * deadline that has come is pushed one period past t (looked at again
 * then); after the release, it is at least release + period.
 */
static int64_t gated(const ls_engine *e, const ls_device *d, int64_t dl, int64_t period, int64_t t)
{
    unsigned s = ls_device_source(d);
    int held, released;
    int64_t released_at;

    if (s == 0 || dl == INT64_MAX) return dl;
    if (s == LS_SOURCE_RESTORED) {
        held = e->nheld > 0;
        released = e->all_released;
        released_at = e->all_up_at;
    } else {
        if (s > e->nsrc || !e->src[s].gate) return dl;
        held = e->src[s].state != ENG__SRC_UP;
        released = e->src[s].released;
        released_at = e->src[s].released_at;
    }
    if (held) return dl > t ? dl : t + period;
    if (released && released_at + period > dl) dl = released_at + period;
    return dl;
}

/* Mono time active device d goes inactive at, as seen at t; INT64_MAX for never. */
static int64_t inactive_at(const ls_engine *e, const ls_device *d, int64_t t)
{
    int64_t to = eng__timeout(e, d);
    return d->active && to > 0 ? gated(e, d, d->last_activity_mono + to, to, t) : INT64_MAX;
}

/* Mono time d's sessions expire at (state.session_timeout), as seen at t; INT64_MAX for never. */
static int64_t sessions_end_at(const ls_engine *e, const ls_device *d, int64_t t)
{
    int64_t st = e->cfg.session_timeout_ms;
    return d->sessions && st ? gated(e, d, d->last_activity_mono + st, st, t) : INT64_MAX;
}

void eng__count(ls_engine *e, const ls_device *d, int sign)
{
    uint64_t s = (uint64_t)(int64_t)sign;
    ls_avail c = ls_device_avail(d);
    e->st.avail[c] += s;
    e->types[d->type].devices += s;
    if (d->active) {
        e->st.avail_active[c] += s;
        e->types[d->type].active += s;
    }
    if (d->sessions) e->st.avail_connected[c] += s;
}

static void set_active(ls_engine *e, ls_device *d, int on)
{
    uint64_t s = on ? 1 : (uint64_t)-1;
    d->active = on ? 1 : 0;
    e->st.active += s;
    e->st.avail_active[ls_device_avail(d)] += s;
    e->types[d->type].active += s;
}

/* Arms d's timer at the earlier of its inactivity and session deadlines as
 * seen at mono time t (source gating applied), or disarms it when it has
 * neither. */
static void arm_next(ls_engine *e, ls_device *d, int64_t t)
{
    int64_t next = inactive_at(e, d, t), s = sessions_end_at(e, d, t);
    if (s < next) next = s;
    if (next == INT64_MAX)
        ls_wheel_remove(&e->wheel, d->slot + 1);
    else
        ls_wheel_add(&e->wheel, d->slot + 1, next);
}

/*
 * Finds (or creates) the device of id, whose hash tag is `tag`.  The id is
 * validated only when it is not found: a stored id was valid when it was
 * inserted, so one that matches it byte for byte is too (LOOKUP_CHECKED in
 * `create`: the caller has validated it).  LS_EBADID for an invalid id,
 * else LS_ENOTFOUND (create 0), LS_EFULL, LS_ENOMEM.
 */
#define LOOKUP_CHECKED 2
static int lookup_tagged(ls_engine *e, const char *id, size_t len, uint32_t tag, int create,
                         ls_device **out, int *created)
{
    ls_device *d = ls_table_find(&e->table, id, len, tag);
    if (created) *created = 0;
    if (!d) {
        if (!(create & LOOKUP_CHECKED) && ls_id_check(id, len)) return LS_EBADID;
        if (!create) return LS_ENOTFOUND;
        _Atomic uint64_t *shared = e->cfg.shared_devices;
        if (shared && e->cfg.max_devices) { /* reserve a place among all engines sharing the cap */
            if (atomic_fetch_add_explicit(shared, 1, memory_order_relaxed) >= e->cfg.max_devices) {
                atomic_fetch_sub_explicit(shared, 1, memory_order_relaxed);
                return LS_EFULL;
            }
        } else if (e->cfg.max_devices && e->table.count >= e->cfg.max_devices) {
            return LS_EFULL;
        } else if (shared) {
            atomic_fetch_add_explicit(shared, 1, memory_order_relaxed);
        }
        int rc = ls_table_insert(&e->table, id, len, tag, &d);
        if (rc < 0) {
            if (shared) atomic_fetch_sub_explicit(shared, 1, memory_order_relaxed);
            return rc;
        }
        d->timeout_ms = e->type_timeout[0];
        d->flags = (uint16_t)(eng__class_of(e, d) << LS_DEV_CLASS_SHIFT);
        eng__count(e, d, 1);
        if (created) *created = 1;
    }
    *out = d;
    return 0;
}

/* Lengths no valid id has are refused before hashing. */
static inline int bad_len(size_t len)
{
    return len == 0 || len > LS_ID_MAX;
}

static int lookup(ls_engine *e, const char *id, size_t len, int create, ls_device **out,
                  int *created)
{
    if (bad_len(len)) return LS_EBADID;
    return lookup_tagged(e, id, len, ls_table_hash(&e->table, id, len), create, out, created);
}

const ls_device *ls_engine_find(const ls_engine *e, const char *id, size_t len)
{
    /* Found means valid (see lookup_tagged). */
    if (bad_len(len)) return NULL;
    return ls_table_find(&e->table, id, len, ls_table_hash(&e->table, id, len));
}

int ls_engine_admit(const ls_engine *e, const char *id, size_t len)
{
    if (bad_len(len)) return LS_EBADID;
    if (ls_table_find(&e->table, id, len, ls_table_hash(&e->table, id, len))) return 0;
    if (ls_id_check(id, len)) return LS_EBADID;
    uint64_t count = e->cfg.shared_devices
                         ? atomic_load_explicit(e->cfg.shared_devices, memory_order_relaxed)
                         : e->table.count;
    if (e->cfg.max_devices && count >= e->cfg.max_devices) return LS_EFULL;
    return 0;
}

/* Makes d inactive, detected at wall time `at`.  The caller re-arms. */
static void go_inactive(ls_engine *e, ls_device *d, int64_t at)
{
    mark_event(e, d);
    set_active(e, d, 0);
    d->inactivity_alarm = at;
    emit(e, LS_EV_INACTIVITY, d, d->last_activity + eng__timeout(e, d), at);
}

/* Closes every session of d: it was silent for session_timeout_ms. */
static void expire_sessions(ls_engine *e, ls_device *d, int64_t at)
{
    mark_event(e, d);
    e->st.sessions -= d->sessions;
    e->st.avail_connected[ls_device_avail(d)]--;
    d->sessions = 0;
    d->last_disconnect = at;
    e->st.sessions_expired++;
    emit(e, LS_EV_DISCONNECT, d, at, at);
}

/*
 * Applies an activity at wall time `wall` (0 = now).  Returns 1 when the
 * device became active (the caller emits ACTIVITY_EVENT), else 0.  With
 * can_activate 0 it only records (a deferred report).
 */
static inline int apply_activity(ls_engine *e, ls_device *d, int64_t wall, unsigned source,
                                 ls_now now, int can_activate)
{
    if (wall == 0) wall = now.wall;
    if (wall > now.wall + e->cfg.max_clock_skew_ms) {
        wall = now.wall;
        e->st.clamped_future++;
    }
    int64_t mono = now.mono - (now.wall - wall);
    int64_t timeout = eng__timeout(e, d);

    e->st.activities++;
    mark(e, d);
    set_source(d, source);
    if (mono > d->last_activity_mono || d->last_activity == 0) d->last_activity_mono = mono;
    if (wall > d->last_activity) d->last_activity = wall;
    if (timeout > 0 && now.wall - wall >= timeout) {
        e->st.stale_activities++;
        return 0;
    }
    if (d->active || !can_activate) return 0;
    set_active(e, d, 1);
    arm_next(e, d, now.mono);
    return 1;
}

int ls_engine_activity(ls_engine *e, const char *id, size_t len, int64_t ts, ls_now now)
{
    ls_device *d;
    int rc;
    if (ts < 0) return LS_EINVAL;
    if ((rc = lookup(e, id, len, 1, &d, NULL)) < 0) return rc;
    if (apply_activity(e, d, ts, 0, now, 1)) emit(e, LS_EV_ACTIVITY, d, d->last_activity, now.wall);
    return 0;
}

int ls_engine_record(ls_engine *e, const char *id, size_t len, int64_t ts, ls_now now)
{
    ls_device *d;
    int rc;
    if (ts < 0) return LS_EINVAL;
    if ((rc = lookup(e, id, len, 0, &d, NULL)) < 0) return rc;
    apply_activity(e, d, ts, 0, now, 0);
    return 0;
}

/*
 * The pipeline runs three stages over a window of items: hash item i + 2D
 * and prefetch its bucket; read item i + D's bucket (now cached) and
 * prefetch its record; apply item i.  D = 8 keeps ~16 misses in flight.
 */
#define PIPE_D 8
#define PIPE_W 32 /* ring of tags, > 2D, power of two */

size_t ls_engine_activity_batch(ls_engine *e, const ls_activity *a, size_t n, ls_now now, int *rcs)
{
    uint32_t tags[PIPE_W];
    uint8_t bad[PIPE_W];
    size_t applied = 0;

    for (size_t i = 0; i < n + 2 * PIPE_D; i++) {
        if (i < n) {
            size_t k = i & (PIPE_W - 1);
            bad[k] = bad_len(a[i].len); /* the rest is checked if it is new */
            if (!bad[k]) {
                tags[k] = ls_table_hash(&e->table, a[i].id, a[i].len);
                ls_table_prefetch_bucket(&e->table, tags[k]);
            }
        }
        if (i >= PIPE_D && i - PIPE_D < n) {
            size_t k = (i - PIPE_D) & (PIPE_W - 1);
            if (!bad[k]) ls_table_prefetch_record(&e->table, tags[k]);
        }
        if (i >= 2 * PIPE_D) {
            size_t j = i - 2 * PIPE_D, k = j & (PIPE_W - 1);
            ls_device *d;
            int rc = a[j].ts < 0 || a[j].source > LS_SOURCE_MAX ? LS_EINVAL
                     : bad[k]                                   ? LS_EBADID
                                                                : 0;
            if (rc == 0) rc = lookup_tagged(e, a[j].id, a[j].len, tags[k], 1, &d, NULL);
            if (rc == 0) {
                applied++;
                if (apply_activity(e, d, a[j].ts, a[j].source, now, 1))
                    emit(e, LS_EV_ACTIVITY, d, d->last_activity, now.wall);
            }
            if (rcs) rcs[j] = rc;
        }
    }
    return applied;
}

int ls_engine_connect(ls_engine *e, const char *id, size_t len, ls_now now)
{
    return ls_engine_connect_src(e, id, len, 0, now);
}

int ls_engine_connect_src(ls_engine *e, const char *id, size_t len, unsigned source, ls_now now)
{
    ls_device *d;
    int rc;
    if (source > LS_SOURCE_MAX) return LS_EINVAL;
    if ((rc = lookup(e, id, len, 1, &d, NULL)) < 0) return rc;
    mark_event(e, d); /* CONNECT follows */
    if (d->sessions == 0) e->st.avail_connected[ls_device_avail(d)]++;
    d->sessions++;
    e->st.sessions++;
    d->last_connect = now.wall;
    int became = apply_activity(e, d, 0, source, now, 1);
    arm_next(e, d, now.mono); /* the session deadline may come before the armed one */
    emit(e, LS_EV_CONNECT, d, now.wall, now.wall);
    if (became) emit(e, LS_EV_ACTIVITY, d, d->last_activity, now.wall);
    return 0;
}

int ls_engine_disconnect(ls_engine *e, const char *id, size_t len, ls_now now)
{
    ls_device *d;
    int rc;
    if ((rc = lookup(e, id, len, 0, &d, NULL)) < 0) return rc;
    if (d->sessions == 0) return 0;
    mark_urgent(e, d);
    d->sessions--;
    e->st.sessions--;
    if (d->sessions == 0) {
        e->st.avail_connected[ls_device_avail(d)]--;
        d->last_disconnect = now.wall;
        emit(e, LS_EV_DISCONNECT, d, now.wall, now.wall);
    }
    return 0;
}

/* Resolves d's effective timeout (ls_availability_of()): `own` (its
 * inactivityTimeout, 0 = none), else its c8y_RequiredAvailability, else
 * its type's level. */
static void set_level(ls_engine *e, ls_device *d, int64_t own)
{
    ls_availability av;
    eng__resolve(e, d, own, &av);
    if (own)
        d->flags |= LS_DEV_OWN_TIMEOUT;
    else
        d->flags &= (uint16_t)~LS_DEV_OWN_TIMEOUT;
    d->timeout_ms = av.timeout_ms;
}

/* Gives or removes d's c8y_RequiredAvailability.  0 or LS_ENOMEM. */
static int set_c8y(ls_engine *e, ls_device *d, int has, int ri)
{
    uint64_t key = (uint64_t)ls_table_slot_of(&e->table, d) + 1;
    if (has) {
        int rc = ls_map64_put(&e->c8y, key, ri);
        if (rc < 0) return rc;
        d->flags |= LS_DEV_C8Y;
    } else {
        if (d->flags & LS_DEV_C8Y) ls_map64_del(&e->c8y, key);
        d->flags &= (uint16_t)~LS_DEV_C8Y;
    }
    return 0;
}

void eng__refresh(ls_engine *e, ls_device *d, ls_now now)
{
    set_level(e, d, (d->flags & LS_DEV_OWN_TIMEOUT) ? d->timeout_ms : 0);
    ls_avail old = ls_device_avail(d), nc = eng__class_of(e, d);
    int was_active = d->active;
    if (nc != old) {
        mark_urgent(e, d);
        eng__count(e, d, -1);
        d->flags = (uint16_t)((d->flags & ~LS_DEV_CLASS_MASK) | (nc << LS_DEV_CLASS_SHIFT));
        eng__count(e, d, 1);
    }
    if (inactive_at(e, d, now.mono) <= now.mono) go_inactive(e, d, now.wall);
    arm_next(e, d, now.mono);
    if (nc != old && e->avail_cb) e->avail_cb(e->avail_ud, d, old, was_active, now);
}

int ls_engine_put(ls_engine *e, const char *id, size_t len, const ls_device_config *c, ls_now now,
                  int *created)
{
    ls_device *d;
    int rc;
    uint16_t type = 0;

    if (c->set_timeout && c->timeout_ms != 0 &&
        (c->timeout_ms < LS_TIMEOUT_MIN_MS || c->timeout_ms > LS_TIMEOUT_MAX_MS))
        return LS_EINVAL;
    if (c->type &&
        (c->type_len == 0 || c->type_len > LS_TYPE_MAX || ls_id_check(c->type, c->type_len)))
        return LS_EINVAL;
    if (c->set_c8y && c->has_c8y &&
        (c->response_interval < LS_RI_MIN || c->response_interval > LS_RI_MAX))
        return LS_EINVAL;
    if ((rc = lookup(e, id, len, 1, &d, created)) < 0) return rc;
    mark_urgent(e, d);
    /* Interned only once the device exists: a refused put adds no type. */
    if (c->type && (rc = eng__type_intern(e, c->type, c->type_len, &type)) < 0) return rc;
    if (c->set_c8y && (rc = set_c8y(e, d, c->has_c8y, c->response_interval)) < 0) return rc;
    if (c->type && type != d->type) {
        eng__count(e, d, -1);
        d->type = type;
        eng__count(e, d, 1);
        eng__type_join(e, d);
    }
    if (c->set_timeout) {
        if (c->timeout_ms)
            d->flags |= LS_DEV_OWN_TIMEOUT;
        else
            d->flags &= (uint16_t)~LS_DEV_OWN_TIMEOUT;
        d->timeout_ms = c->timeout_ms;
    }
    eng__refresh(e, d, now); /* resolves the timeout and applies it */
    return 0;
}

int ls_engine_delete(ls_engine *e, const char *id, size_t len)
{
    ls_device *d;
    int rc;
    if (bad_len(len)) return LS_EBADID;
    uint32_t tag = ls_table_hash(&e->table, id, len);
    if ((rc = lookup_tagged(e, id, len, tag, 0, &d, NULL)) < 0) return rc;
    ls_wheel_remove(&e->wheel, d->slot + 1);
    eng__count(e, d, -1);
    if (d->active) e->st.active--;
    e->st.sessions -= d->sessions;
    set_c8y(e, d, 0, 0);
    ls_table_remove(&e->table, d, tag);
    if (e->cfg.shared_devices)
        atomic_fetch_sub_explicit(e->cfg.shared_devices, 1, memory_order_relaxed);
    return 0;
}

static void fire_cb(void *ud, uint32_t h, int64_t t)
{
    ls_engine *e = ud;
    ls_device *d = ls_table_slot(&e->table, h - 1);
    int64_t inact = inactive_at(e, d, t), sess = sessions_end_at(e, d, t);
    /* Due ones fire in deadline order; whatever is left re-arms (heard from
     * since, or held by its source). */
    if (sess <= t && sess < inact) {
        expire_sessions(e, d, e->tick_wall);
        sess = INT64_MAX;
    }
    if (inact <= t) go_inactive(e, d, e->tick_wall);
    if (sess <= t) expire_sessions(e, d, e->tick_wall);
    arm_next(e, d, t);
}

uint64_t ls_engine_tick(ls_engine *e, ls_now now)
{
    uint64_t before = e->st.events[LS_EV_INACTIVITY] + e->st.sessions_expired;
    e->tick_wall = now.wall;
    ls_wheel_run(&e->wheel, now.mono, fire_cb, e);
    return e->st.events[LS_EV_INACTIVITY] + e->st.sessions_expired - before;
}

int64_t ls_engine_next_wakeup(const ls_engine *e)
{
    return ls_wheel_next(&e->wheel);
}

void ls_engine_get_stats(const ls_engine *e, ls_engine_stats *out)
{
    *out = e->st;
    out->devices = e->table.count;
    out->inactive = out->devices - out->active;
}

uint64_t ls_engine_scan(const ls_engine *e, uint64_t cursor, int filter, size_t limit,
                        uint64_t max_scan, ls_visit_cb cb, void *ud)
{
    return ls_engine_scan_match(e, cursor, filter, limit, max_scan, NULL, cb, ud);
}

uint64_t ls_engine_scan_match(const ls_engine *e, uint64_t cursor, int filter, size_t limit,
                              uint64_t max_scan, ls_match_cb match, ls_visit_cb cb, void *ud)
{
    const ls_table *t = &e->table;
    size_t found = 0;
    uint64_t scanned = 0;
    for (uint64_t i = cursor; i < t->high; i++) {
        const ls_device *d = ls_table_slot(t, (uint32_t)i);
        if (d->live && (filter < 0 || d->active == filter) && (!match || match(ud, d))) {
            cb(ud, d);
            if (++found == limit) return i + 1 < t->high ? i + 1 : 0;
        }
        if (max_scan && ++scanned >= max_scan) return i + 1 < t->high ? i + 1 : 0;
    }
    return 0;
}

/* Visits d if it carries any of `flags`, clearing `clear`.  1 if visited. */
static inline int visit_marked(ls_device *d, uint16_t flags, uint16_t clear, ls_visit_cb cb,
                               void *ud)
{
    if (!d->live || !(d->flags & flags)) return 0;
    d->flags &= (uint16_t)~clear;
    cb(ud, d);
    return 1;
}

size_t ls_engine_drain_dirty(ls_engine *e, ls_visit_cb cb, void *ud)
{
    const uint16_t both = LS_DEV_DIRTY | LS_DEV_URGENT;
    size_t n = 0;
    if (e->dirty.lost || e->pass.lost || e->urgent.lost) {
        /* A list missed some marks: the flags are the truth. */
        for (uint32_t i = 0; i < e->table.high; i++)
            n += (size_t)visit_marked(ls_table_slot(&e->table, i), both, both, cb, ud);
    } else {
        /* Deleted records are zeroed (flags gone); a device listed twice
         * is visited once. */
        for (size_t i = 0; i < e->urgent.n; i++)
            n += (size_t)visit_marked(ls_table_slot(&e->table, e->urgent.v[i]), both, both, cb, ud);
        for (size_t i = e->pass_pos; i < e->pass.n; i++)
            n += (size_t)visit_marked(ls_table_slot(&e->table, e->pass.v[i]), both, both, cb, ud);
        for (size_t i = 0; i < e->dirty.n; i++)
            n += (size_t)visit_marked(ls_table_slot(&e->table, e->dirty.v[i]), both, both, cb, ud);
    }
    e->urgent = (eng__list){.v = e->urgent.v, .cap = e->urgent.cap};
    e->pass = (eng__list){.v = e->pass.v, .cap = e->pass.cap};
    e->dirty = (eng__list){.v = e->dirty.v, .cap = e->dirty.cap};
    e->pass_pos = 0;
    e->pass_scan = 0;
    list_trim(&e->pass, n);
    list_trim(&e->dirty, n);
    return n;
}

size_t ls_engine_drain_urgent(ls_engine *e, size_t max, ls_visit_cb cb, void *ud)
{
    const uint16_t both = LS_DEV_DIRTY | LS_DEV_URGENT;
    size_t n = 0;
    if (e->urgent.lost) {
        /* Out of memory at some mark: scan every slot once (rare). */
        e->urgent.lost = 0;
        e->urgent.n = 0;
        for (uint32_t i = 0; i < e->table.high; i++)
            n += (size_t)visit_marked(ls_table_slot(&e->table, i), LS_DEV_URGENT, both, cb, ud);
        return n;
    }
    /* Newest first: order does not matter, the list only shrinks from its end. */
    while (n < max && e->urgent.n > 0)
        n += (size_t)visit_marked(ls_table_slot(&e->table, e->urgent.v[--e->urgent.n]),
                                  LS_DEV_URGENT, both, cb, ud);
    return n;
}

size_t ls_engine_urgent_left(const ls_engine *e)
{
    return e->urgent.n + (size_t)e->urgent.lost;
}

int ls_engine_urge(ls_engine *e, const char *id, size_t len)
{
    ls_device *d;
    int rc;
    if ((rc = lookup(e, id, len, 0, &d, NULL)) < 0) return rc;
    mark_urgent(e, d);
    return 0;
}

static int pass_done(const ls_engine *e)
{
    return !e->pass.lost && e->pass_pos >= e->pass.n;
}

void ls_engine_flush_begin(ls_engine *e)
{
    if (!pass_done(e)) return;
    eng__list t = e->pass;
    e->pass = e->dirty;
    e->dirty = (eng__list){.v = t.v, .cap = t.cap};
    e->pass_pos = 0;
    e->pass_scan = 0;
}

size_t ls_engine_flush_next(ls_engine *e, size_t max, ls_visit_cb cb, void *ud, int *done)
{
    size_t n = 0, looked = 0, limit = max * 8;
    if (e->pass.lost) {
        /* The pass's list missed some marks: scan the slots for the flag;
         * the listed entries are covered by the scan. */
        while (n < max && looked < limit && e->pass_scan < e->table.high) {
            ls_device *d = ls_table_slot(&e->table, e->pass_scan++);
            looked++;
            if (d->live && (d->flags & LS_DEV_URGENT))
                d->flags &= (uint16_t)~LS_DEV_DIRTY;
            else
                n += (size_t)visit_marked(d, LS_DEV_DIRTY, LS_DEV_DIRTY, cb, ud);
        }
        if (e->pass_scan >= e->table.high) {
            e->pass.lost = 0;
            e->pass.n = 0;
            e->pass_pos = 0;
        }
    } else {
        while (n < max && looked < limit && e->pass_pos < e->pass.n) {
            ls_device *d = ls_table_slot(&e->table, e->pass.v[e->pass_pos++]);
            looked++;
            /* An urgent device is written whole by the urgent drain. */
            if (d->live && (d->flags & LS_DEV_URGENT))
                d->flags &= (uint16_t)~LS_DEV_DIRTY;
            else
                n += (size_t)visit_marked(d, LS_DEV_DIRTY, LS_DEV_DIRTY, cb, ud);
        }
    }
    if (pass_done(e)) {
        size_t used = e->pass.n;
        e->pass.n = 0;
        e->pass_pos = 0;
        list_trim(&e->pass, used);
    }
    *done = pass_done(e);
    return n;
}

size_t ls_engine_dirty_left(const ls_engine *e)
{
    return e->dirty.n + (size_t)e->dirty.lost;
}

/* ls_engine_restore() for an id already checked and hashed into `tag`. */
static int restore_tagged(ls_engine *e, const char *id, size_t len, uint32_t tag,
                          const ls_device_state *st, ls_restart_policy policy, ls_now now)
{
    ls_device *d;
    int rc;
    uint16_t type = 0;
    if (st->timeout_ms != 0 &&
        (st->timeout_ms < LS_TIMEOUT_MIN_MS || st->timeout_ms > LS_TIMEOUT_MAX_MS))
        return LS_EINVAL;
    if (st->has_c8y && (st->response_interval < LS_RI_MIN || st->response_interval > LS_RI_MAX))
        return LS_EINVAL;
    if (st->type && st->type_len && (rc = eng__type_intern(e, st->type, st->type_len, &type)) < 0)
        return rc;
    if ((rc = lookup_tagged(e, id, len, tag, 1 | LOOKUP_CHECKED, &d, NULL)) < 0) return rc;
    if ((rc = set_c8y(e, d, st->has_c8y, st->response_interval)) < 0) return rc;
    /* Replace whatever was there. */
    ls_wheel_remove(&e->wheel, d->slot + 1);
    eng__count(e, d, -1);
    if (d->active) e->st.active--;
    e->st.sessions -= d->sessions;

    d->type = type;
    set_level(e, d, st->timeout_ms);
    d->last_activity = st->last_activity;
    d->last_connect = st->last_connect;
    d->last_disconnect = st->last_disconnect;
    d->inactivity_alarm = st->inactivity_alarm;
    d->sessions = st->sessions;
    d->active = st->active ? 1 : 0;
    set_source(d, policy == LS_RESTART_GRACE ? LS_SOURCE_RESTORED : 0);
    d->flags =
        (uint16_t)((d->flags & ~LS_DEV_CLASS_MASK) | (eng__class_of(e, d) << LS_DEV_CLASS_SHIFT));
    eng__count(e, d, 1);
    eng__type_join(e, d);
    e->st.sessions += st->sessions;
    if (d->active) e->st.active++;
    /* The activity's place on this process's monotonic clock, by its age.  One
     * further in the future than max_clock_skew means the wall clock was stepped
     * back since it was recorded: how long ago it really was is unknown, so it
     * counts as now, as a live activity's future ts would (else a 2 h step back
     * would hold the device active for 2 h beyond its timeout).  Under GRACE
     * neither the inactivity deadline nor the session deadline counts the
     * daemon's own downtime. */
    if (st->last_activity > now.wall + e->cfg.max_clock_skew_ms)
        d->last_activity_mono = now.mono;
    else
        d->last_activity_mono = now.mono - (now.wall - st->last_activity);
    if (policy == LS_RESTART_GRACE && (d->active || d->sessions) &&
        d->last_activity_mono < now.mono)
        d->last_activity_mono = now.mono;
    arm_next(e, d, now.mono);
    return 0;
}

int ls_engine_restore(ls_engine *e, const ls_device_state *st, ls_restart_policy policy, ls_now now)
{
    if (ls_id_check(st->id, st->id_len)) return LS_EBADID;
    return restore_tagged(e, st->id, st->id_len, ls_table_hash(&e->table, st->id, st->id_len), st,
                          policy, now);
}

size_t ls_engine_restore_batch(ls_engine *e, const ls_device_state *items, size_t n,
                               ls_restart_policy policy, ls_now now, int *rcs)
{
    uint32_t tags[PIPE_W];
    uint8_t bad[PIPE_W];
    size_t done = 0;

    for (size_t i = 0; i < n + PIPE_D; i++) {
        if (i < n) {
            size_t k = i & (PIPE_W - 1);
            bad[k] = ls_id_check(items[i].id, items[i].id_len) != NULL;
            if (!bad[k]) {
                tags[k] = ls_table_hash(&e->table, items[i].id, items[i].id_len);
                ls_table_prefetch_bucket(&e->table, tags[k]);
            }
        }
        if (i >= PIPE_D) {
            size_t j = i - PIPE_D, k = j & (PIPE_W - 1);
            int rc = bad[k] ? LS_EBADID
                            : restore_tagged(e, items[j].id, items[j].id_len, tags[k], &items[j],
                                             policy, now);
            if (rc == 0) done++;
            if (rcs) rcs[j] = rc;
        }
    }
    return done;
}

int ls_engine_reserve(ls_engine *e, uint64_t devices)
{
    return ls_table_reserve(&e->table, devices);
}

/* ---- sources ------------------------------------------------------------ */

int ls_engine_source_add(ls_engine *e, const char *name, int gate)
{
    size_t n = strlen(name);
    if (n == 0 || n > LS_ENGINE_SOURCE_NAME_MAX || ls_id_check(name, n)) return LS_EINVAL;
    if (e->nsrc >= LS_SOURCE_MAX) return LS_EFULL;
    eng__source *s = &e->src[++e->nsrc];
    memcpy(s->name, name, n + 1);
    s->gate = gate ? 1 : 0;
    s->state = ENG__SRC_UNKNOWN;
    if (s->gate) e->nheld++;
    return (int)e->nsrc;
}

int ls_engine_source_down(ls_engine *e, unsigned source, ls_now now)
{
    if (source == 0 || source > e->nsrc) return LS_EINVAL;
    eng__source *s = &e->src[source];
    if (s->state == ENG__SRC_DOWN) return 0;
    if (s->state == ENG__SRC_UP && s->gate) e->nheld++;
    s->state = ENG__SRC_DOWN;
    emit_source(e, LS_EV_SOURCE_DOWN, s, now.wall);
    return 0;
}

int ls_engine_source_up(ls_engine *e, unsigned source, ls_now now)
{
    if (source == 0 || source > e->nsrc) return LS_EINVAL;
    eng__source *s = &e->src[source];
    if (s->state == ENG__SRC_UP) return 0;
    s->state = ENG__SRC_UP;
    s->released = 1;
    s->released_at = now.mono;
    if (s->gate && --e->nheld == 0) {
        e->all_released = 1;
        e->all_up_at = now.mono;
    }
    emit_source(e, LS_EV_SOURCE_UP, s, now.wall);
    return 0;
}

int ls_engine_source_is_up(const ls_engine *e, unsigned source)
{
    if (source == 0 || source > e->nsrc) return LS_EINVAL;
    return e->src[source].state == ENG__SRC_UP;
}

const char *ls_engine_source_name(const ls_engine *e, unsigned source)
{
    if (source == 0 || source > e->nsrc) return NULL;
    return e->src[source].name;
}
