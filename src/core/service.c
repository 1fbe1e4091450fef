/*
 * service.c - the operations behind the HTTP routes (the port is service.h).
 *
 * Every operation here is "validate nothing, lock, change, queue for the
 * store, unlock": the caller has checked its input, and the work under the
 * locks is the engine call plus what must go into the same pending batch
 * as it (the device record, a deletion, a type's settings, the alarm and
 * event records that alarming.c and persist.c add from the engine's
 * callbacks).  Leaving with ls_daemon_unlock_to_commit() asks the
 * committer for a commit at once and hands its generation back; leaving
 * with ls_daemon_unlock() lets a change without an event wait for the next
 * flush pass.  Nothing here waits for the disk: whoever acknowledges the
 * change does (api/http.c suspends the request; nothing blocks a thread).
 *
 * Formatting under the lock.  A device's JSON is written here, where the
 * engine and the alarms may be read, into the caller's buffer (service.h
 * says why); types and alarms are copied out as plain structs.
 *
 * The last part is not operations but what else the HTTP adapter needs of
 * the daemon (readiness, the commit generation and hook, the counters),
 * so that the daemon stays an opaque handle to api/.
 */
#include <errno.h>
#include "core/service.h"

#include <string.h>

#include "base/clock.h"
#include "core/alarming.h"
#include "core/daemon.h"
#include "core/format.h"
#include "core/persist.h"
#include "core/shards.h"

/* ---- audit -------------------------------------------------------------- */

#define AUDIT_JSON_MAX ((size_t)64 << 10) /* a device, type or alarm is well under */

/*
 * Queues the AUDIT event of a change made by `by` (under the lock of the
 * change): `before` is what the API showed of the thing before (empty: it
 * did not exist), after[0..after_len) what it shows now (after NULL: gone).
 */
static void audit(ls_daemon *d, const ls_actor *by, const char *action, const char *subject,
                  size_t subject_len, const char *target, size_t target_len, const ls_buf *before,
                  const char *after, size_t after_len)
{
    ls_audit a = {.who = by->who,
                  .action = action,
                  .subject = subject,
                  .subject_len = subject_len,
                  .target = target,
                  .target_len = target_len,
                  .before = before->len ? before->p : NULL,
                  .before_len = before->len,
                  .after = after,
                  .after_len = after_len,
                  .ts = ls_clock_now().wall};
    ls_persist_audit(d, &a);
}

/* ---- devices ------------------------------------------------------------ */

int ls_service_device_get(ls_daemon *d, const char *id, size_t len, ls_buf *out)
{
    ls_held h;
    ls_engine *e = ls_daemon_lock_id(d, &h, id, len);
    const ls_device *dev = ls_engine_find(e, id, len);
    if (dev) ls_format_device(out, e, d->alarms, dev);
    ls_daemon_unlock(d, &h);
    return dev ? 0 : LS_ENOTFOUND;
}

uint64_t ls_service_device_put(ls_daemon *d, const ls_device_put_req *req, ls_buf *out,
                               ls_service_result *res)
{
    *res = (ls_service_result){0};
    ls_held h;
    ls_engine *e = ls_daemon_lock_id(d, &h, req->id, req->len);
    ls_now now = ls_clock_now();
    const ls_device *dev = ls_engine_find(e, req->id, req->len);
    ls_buf before;
    ls_buf_init(&before, AUDIT_JSON_MAX);
    int audited = 0;
    if (req->ping && dev) {
        res->rc = ls_engine_activity(e, req->id, req->len, 0, now);
        if (res->rc == 0) ls_engine_urge(e, req->id, req->len); /* acknowledged once durable */
    } else if (req->ping_only) {
        res->rc = LS_ENOTFOUND; /* creating a device is configuring it */
    } else {
        audited = req->by != NULL;
        if (audited && dev) ls_format_device(&before, e, d->alarms, dev);
        res->rc = ls_engine_put(e, req->id, req->len, &req->cfg, now, &res->created);
    }
    if (res->rc < 0) {
        ls_daemon_unlock(d, &h);
        ls_buf_free(&before);
        return 0;
    }
    /* The answer shows the device as committed. */
    size_t at = out->len;
    ls_format_device(out, e, d->alarms, ls_engine_find(e, req->id, req->len));
    if (audited)
        audit(d, req->by, "device.put", req->id, req->len, req->id, req->len, &before, out->p + at,
              out->len - at);
    ls_buf_free(&before);
    return ls_daemon_unlock_to_commit(d, &h);
}

uint64_t ls_service_device_delete(ls_daemon *d, const char *id, size_t len, const ls_actor *by,
                                  ls_service_result *res)
{
    *res = (ls_service_result){0};
    ls_held h;
    ls_engine *e = ls_daemon_lock_id(d, &h, id, len);
    ls_buf before;
    ls_buf_init(&before, AUDIT_JSON_MAX);
    const ls_device *dev = by ? ls_engine_find(e, id, len) : NULL;
    if (dev) ls_format_device(&before, e, d->alarms, dev);
    res->rc = ls_engine_delete(e, id, len);
    if (res->rc < 0) {
        ls_daemon_unlock(d, &h);
        ls_buf_free(&before);
        return 0;
    }
    ls_persist_delete(d, id, len);
    ls_alarming_deleted(d, id, len, ls_clock_now().wall);
    ls_reporter_forget(ls_shards_of(d->shards, id, len)->reporter, id, len);
    if (by) audit(d, by, "device.delete", id, len, id, len, &before, NULL, 0);
    ls_buf_free(&before);
    return ls_daemon_unlock_to_commit(d, &h);
}

uint64_t ls_service_device_activity(ls_daemon *d, const char *id, size_t len, int64_t ts,
                                    ls_service_result *res)
{
    *res = (ls_service_result){0};
    ls_held h;
    ls_daemon_lock_id(d, &h, id, len);
    uint64_t seq0 = d->seq;
    ls_activity a = {.id = id, .len = (uint32_t)len, .ts = ts};
    ls_reporter_activity_batch(ls_shards_of(d->shards, id, len)->reporter, &a, 1, ls_clock_now(),
                               &res->rc);
    /* A transition is acknowledged once committed; a plain activity is
     * flushed with the next pass. */
    if (res->rc == 0 && d->seq != seq0) return ls_daemon_unlock_to_commit(d, &h);
    ls_daemon_unlock(d, &h);
    return 0;
}

/* connect (1) or disconnect (0): a session change is acknowledged once committed. */
static uint64_t session(ls_daemon *d, const char *id, size_t len, int open, ls_service_result *res)
{
    *res = (ls_service_result){0};
    ls_held h;
    ls_engine *e = ls_daemon_lock_id(d, &h, id, len);
    ls_now now = ls_clock_now();
    res->rc = open ? ls_engine_connect(e, id, len, now) : ls_engine_disconnect(e, id, len, now);
    if (res->rc < 0) {
        ls_daemon_unlock(d, &h);
        return 0;
    }
    const ls_device *dev = ls_engine_find(e, id, len);
    res->sessions = dev ? dev->sessions : 0;
    return ls_daemon_unlock_to_commit(d, &h);
}

uint64_t ls_service_device_connect(ls_daemon *d, const char *id, size_t len, ls_service_result *res)
{
    return session(d, id, len, 1, res);
}

uint64_t ls_service_device_disconnect(ls_daemon *d, const char *id, size_t len,
                                      ls_service_result *res)
{
    return session(d, id, len, 0, res);
}

uint64_t ls_service_activities(ls_daemon *d, const ls_activity *a, size_t n, int *rcs)
{
    uint64_t gen;
    ls_shards_apply(d->shards, a, n, 1, rcs, &gen);
    return gen;
}

typedef struct list_state {
    const ls_engine *e;
    const ls_alarms *alarms;
    ls_buf *b;
    size_t n;
    const char *q; /* substring filter (ASCII case-insensitive), NULL = none */
    size_t qlen;
} list_state;

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Does the device's id contain s->q, ignoring ASCII case? */
static int list_match(void *ud, const ls_device *d)
{
    const list_state *s = ud;
    char idb[LS_ID_BUF];
    const char *id = ls_device_id(d, idb);
    if (s->qlen > d->id_len) return 0;
    for (size_t i = 0; i + s->qlen <= d->id_len; i++) {
        size_t k = 0;
        while (k < s->qlen && lower((unsigned char)id[i + k]) == lower((unsigned char)s->q[k]))
            k++;
        if (k == s->qlen) return 1;
    }
    return 0;
}

static void list_visit(void *ud, const ls_device *d)
{
    list_state *s = ud;
    if (s->n++) ls_buf_putc(s->b, ',');
    ls_format_device(s->b, s->e, s->alarms, d);
}

uint64_t ls_service_device_list(ls_daemon *d, const ls_device_query *q, ls_buf *out)
{
    list_state s = {.alarms = d->alarms, .b = out, .q = q->q, .qlen = q->q ? q->qlen : 0};
    /* Shard after shard, each locked on its own for at most
     * LS_SERVICE_LIST_SCAN slots: the cursor is the engine's cursor times
     * the shard count plus the shard (a cursor of 0 in shard k is k: its
     * beginning). */
    ls_shards *sh = d->shards;
    unsigned k = (unsigned)(q->cursor % sh->n);
    uint64_t c = q->cursor / sh->n, next = 0, left = q->limit;
    for (; k < sh->n; k++, c = 0) {
        ls_shard *shard = &sh->shard[k];
        ls_mutex_lock(&shard->lock);
        ls_mutex_lock(&d->lock); /* the alarms in each device's JSON */
        s.e = shard->engine;
        size_t before = s.n;
        uint64_t nc = ls_engine_scan_match(shard->engine, c, q->active, left, LS_SERVICE_LIST_SCAN,
                                           s.qlen ? list_match : NULL, list_visit, &s);
        ls_mutex_unlock(&d->lock);
        ls_mutex_unlock(&shard->lock);
        left -= s.n - before;
        if (nc) {
            next = nc * sh->n + k;
            break;
        }
        if (left == 0) {
            next = k + 1 < sh->n ? k + 1 : 0;
            break;
        }
    }
    return next;
}

/* ---- device types ------------------------------------------------------- */

int ls_service_type_get(ls_daemon *d, const char *name, size_t len, ls_type_info *out)
{
    ls_held h;
    ls_daemon_lock(d, &h);
    int rc = ls_shards_type_get(d->shards, name, len, out);
    ls_daemon_unlock(d, &h);
    out->name = name; /* the engine's copy may move once the lock is left */
    return rc;
}

void ls_service_types(ls_daemon *d, ls_type_visit_cb cb, void *ud)
{
    ls_held h;
    ls_daemon_lock(d, &h);
    ls_shards_types(d->shards, cb, ud);
    ls_daemon_unlock(d, &h);
}

/* The type `name` as GET shows it into b, if the name is known.  Under the lock. */
static void type_json(ls_daemon *d, const char *name, size_t len, ls_buf *b)
{
    ls_type_info t;
    if (ls_shards_type_get(d->shards, name, len, &t) < 0) return;
    t.name = name;
    ls_format_type(b, &t);
}

uint64_t ls_service_type_put(ls_daemon *d, const char *name, size_t len, const ls_type_patch *p,
                             const ls_actor *by, ls_type_info *out, ls_service_result *res)
{
    *res = (ls_service_result){0};
    ls_held h;
    ls_daemon_lock(d, &h);
    ls_type_info cur;
    ls_type_config c = {.monitored = -1, .severity = LS_SEV_MAJOR};
    if (ls_shards_type_get(d->shards, name, len, &cur) == 0 && cur.configured) c = cur.cfg;
    ls_buf before, after;
    ls_buf_init(&before, AUDIT_JSON_MAX);
    ls_buf_init(&after, AUDIT_JSON_MAX);
    if (by) type_json(d, name, len, &before);
    if (p->set_timeout) c.timeout_ms = p->v.timeout_ms;
    if (p->set_ri) {
        c.has_ri = p->v.has_ri;
        c.response_interval = p->v.has_ri ? p->v.response_interval : 0;
    }
    if (p->set_monitored) c.monitored = p->v.monitored;
    if (p->set_severity) c.severity = p->v.severity;
    res->rc = ls_shards_type_put(d->shards, name, len, &c, ls_clock_now(), &res->created);
    if (res->rc == 0) {
        ls_persist_type(d, name, len, &c);
        ls_shards_type_get(d->shards, name, len, out);
        out->name = name;
        if (by) {
            type_json(d, name, len, &after);
            audit(d, by, "deviceType.put", name, len, name, len, &before, after.p, after.len);
        }
    }
    ls_buf_free(&before);
    ls_buf_free(&after);
    if (res->rc < 0) {
        ls_daemon_unlock(d, &h);
        return 0;
    }
    return ls_daemon_unlock_to_commit(d, &h);
}

uint64_t ls_service_type_delete(ls_daemon *d, const char *name, size_t len, const ls_actor *by,
                                ls_service_result *res)
{
    *res = (ls_service_result){0};
    ls_held h;
    ls_daemon_lock(d, &h);
    ls_buf before, after;
    ls_buf_init(&before, AUDIT_JSON_MAX);
    ls_buf_init(&after, AUDIT_JSON_MAX);
    if (by) type_json(d, name, len, &before);
    res->rc = ls_shards_type_delete(d->shards, name, len, ls_clock_now());
    if (res->rc == 0) {
        ls_persist_type(d, name, len, NULL);
        if (by) {
            type_json(d, name, len, &after); /* still known while devices have it */
            audit(d, by, "deviceType.delete", name, len, name, len, &before,
                  after.len ? after.p : NULL, after.len);
        }
    }
    ls_buf_free(&before);
    ls_buf_free(&after);
    if (res->rc < 0) {
        ls_daemon_unlock(d, &h);
        return 0;
    }
    return ls_daemon_unlock_to_commit(d, &h);
}

/* ---- alarms ------------------------------------------------------------- */

/* Copies alarm `id` into *out, under the lock.  0 or LS_ENOTFOUND. */
static int alarm_copy(ls_daemon *d, uint64_t id, ls_alarm_copy *out)
{
    const ls_alarm *a = ls_alarms_get(d->alarms, id);
    if (!a) return LS_ENOTFOUND;
    out->a = *a;
    size_t n = a->source_len < LS_ID_MAX ? a->source_len : LS_ID_MAX;
    memcpy(out->source, a->source, n);
    out->source[n] = '\0';
    out->a.source = out->source;
    out->a.source_len = (uint16_t)n;
    return 0;
}

int ls_service_alarm_get(ls_daemon *d, uint64_t id, ls_alarm_copy *out)
{
    ls_held h;
    ls_daemon_lock(d, &h);
    int rc = alarm_copy(d, id, out);
    ls_daemon_unlock(d, &h);
    return rc;
}

uint64_t ls_service_alarm_set_status(ls_daemon *d, uint64_t id, ls_alarm_status st,
                                     const ls_actor *by, ls_alarm_copy *out, ls_service_result *res)
{
    *res = (ls_service_result){0};
    ls_held h;
    ls_daemon_lock(d, &h);
    ls_buf before, after;
    ls_buf_init(&before, AUDIT_JSON_MAX);
    ls_buf_init(&after, AUDIT_JSON_MAX);
    const ls_alarm *a = by ? ls_alarms_get(d->alarms, id) : NULL;
    if (a) ls_format_alarm(&before, a);
    int rc = ls_alarms_set_status(d->alarms, id, st, ls_clock_now().wall);
    if (rc >= 0) alarm_copy(d, id, out);
    if (rc == 0 && by) { /* changed */
        char num[24];
        int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)id);
        ls_format_alarm(&after, &out->a);
        audit(d, by, "alarm.status", out->a.source, out->a.source_len, num, (size_t)n, &before,
              after.p, after.len);
    }
    ls_buf_free(&before);
    ls_buf_free(&after);
    if (rc == 0) return ls_daemon_unlock_to_commit(d, &h); /* changed: on disk before the answer */
    ls_daemon_unlock(d, &h);
    res->rc = rc < 0 ? rc : 0; /* 1: it had that status already */
    return 0;
}

uint64_t ls_service_alarms(ls_daemon *d, uint64_t after, const ls_alarm_filter *f, size_t limit,
                           void (*cb)(void *ud, const ls_alarm *a), void *ud)
{
    ls_held h;
    ls_daemon_lock(d, &h);
    uint64_t next = ls_alarms_list(d->alarms, after, f, limit, LS_SERVICE_LIST_SCAN, cb, ud);
    ls_daemon_unlock(d, &h);
    return next;
}

/* ---- the fleet ---------------------------------------------------------- */

size_t ls_service_history(ls_daemon *d, ls_history_sample *out, size_t max, ls_engine_stats *now)
{
    ls_held h;
    ls_daemon_lock(d, &h);
    size_t n = ls_history_copy(&d->history, out, max);
    ls_shards_engine_stats(d->shards, now);
    ls_daemon_unlock(d, &h);
    return n;
}

/* ---- the HTTP adapter's handle on the core ------------------------------ */

int ls_service_ready(ls_daemon *d, uint64_t *loaded)
{
    *loaded = atomic_load_explicit(&d->loaded, memory_order_relaxed);
    return atomic_load_explicit(&d->ready, memory_order_acquire);
}

int ls_service_store_error(ls_daemon *d, int64_t *since, uint64_t *failures)
{
    if (since) *since = atomic_load_explicit(&d->store_failing_since, memory_order_relaxed);
    if (failures) *failures = atomic_load_explicit(&d->store_failures, memory_order_relaxed);
    return atomic_load_explicit(&d->store_error, memory_order_relaxed);
}

uint64_t ls_service_committed_gen(ls_daemon *d)
{
    return atomic_load_explicit(&d->committed_gen, memory_order_acquire);
}

void ls_service_on_commit(ls_daemon *d, void (*hook)(void *ud, uint64_t gen), void *ud)
{
    ls_mutex_lock(&d->lock); /* the committer reads them under it */
    d->on_commit = hook;
    d->on_commit_ud = ud;
    ls_mutex_unlock(&d->lock);
}

ls_metrics *ls_service_metrics(ls_daemon *d, int *http_source)
{
    *http_source = d->http_source;
    return &d->metrics;
}

int ls_service_forwarding(ls_daemon *d)
{
    return d->ingest && ls_ingest_forwarding(d->ingest);
}

int ls_service_forward(ls_daemon *d, const ls_ingest_item *items, size_t n,
                       ls_ingest_stored_cb stored, void *ud)
{
    return d->ingest ? ls_ingest_forward(d->ingest, items, n, stored, ud) : -ENOTSUP;
}
