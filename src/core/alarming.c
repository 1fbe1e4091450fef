/*
 * alarming.c - when unavailability alarms are raised and cleared.
 *
 * Raised (or, when the device has an open one, counted again) when:
 *   - a MONITORED device goes inactive (INACTIVITY_EVENT): a device in
 *     maintenance gets none, as Cumulocity says;
 *   - an inactive device that was heard from before becomes MONITORED (it
 *     leaves maintenance, or gets a timeout after having none) while it was
 *     already inactive: it is UNAVAILABLE from then on, so it gets the
 *     alarm an INACTIVITY_EVENT would have raised.  This is how an alarm
 *     left open through a maintenance window counts a second occurrence.
 * Cleared when the device becomes active again (ACTIVITY_EVENT: a late
 * report that does not make it active clears nothing) or is deleted.
 * alarms.enabled = false raises nothing new; open alarms still clear.
 *
 * Every change becomes an ALARM_* event (its seq and outbox line through
 * ls_persist_event()) and an alarm record in the same pending batch, so
 * the alarm is on disk before anyone hears of it, together with the
 * device state that caused it.  Ids continue across restarts from the
 * store's highest id ever given.
 */
#include "core/alarming.h"

#include <stdlib.h>

#include "base/err.h"
#include "base/log.h"
#include "core/persist.h"

#define PRUNE_MAX 100000

static void queue_alarm(ls_daemon *d, const ls_alarm *a)
{
    LS_ASSERT_LOCKED(&d->lock); /* d->pending */
    if (ls_store_batch_put_alarm(d->pending, a) < 0)
        atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
}

static void alarm_cb(void *ud, ls_event_type what, const ls_alarm *a, int64_t now)
{
    ls_daemon *d = ud;
    queue_alarm(d, a);
    ls_event ev = {.type = what, .alarm = a, .ts = a->updated, .detected_at = now};
    ls_persist_event(d, &ev);
}

int ls_alarming_open(ls_daemon *d, uint64_t seed)
{
    int rc = ls_alarms_new(&d->alarms, alarm_cb, d, seed);
    if (rc < 0) ls_error("alarms", "cannot start: %s", ls_strerror(rc));
    return rc;
}

void ls_alarming_close(ls_daemon *d)
{
    ls_alarms_close(d->alarms);
    d->alarms = NULL;
}

typedef struct load_state {
    ls_daemon *d;
    uint64_t loaded, refused;
} load_state;

static int load_cb(void *ud, const ls_alarm *rec)
{
    load_state *ls = ud;
    int rc = ls_alarms_restore(ls->d->alarms, rec);
    if (rc == LS_ENOMEM) return rc; /* stops the load */
    if (rc < 0) {
        ls->refused++;
        ls_error("alarms", "stored alarm %llu not restored: invalid record",
                 (unsigned long long)rec->id);
        return 0;
    }
    ls->loaded++;
    return 0;
}

int ls_alarming_load(ls_daemon *d)
{
    load_state ls = {.d = d};
    int rc = ls_store_load_alarms(d->store, load_cb, &ls);
    if (rc < 0) {
        ls_error("alarms", "cannot load alarms from %s/store: %s", d->cfg.data_dir,
                 ls_strerror(rc));
        return rc;
    }
    ls_alarms_set_last_id(d->alarms, ls_store_alarm_last_id(d->store));
    ls_alarm_stats st;
    ls_alarms_get_stats(d->alarms, &st);
    ls_info("alarms",
            "loaded %llu alarms (%llu refused): %llu active, %llu acknowledged, %llu cleared",
            (unsigned long long)ls.loaded, (unsigned long long)ls.refused,
            (unsigned long long)st.by_status[LS_ALARM_ACTIVE],
            (unsigned long long)st.by_status[LS_ALARM_ACKNOWLEDGED],
            (unsigned long long)st.by_status[LS_ALARM_CLEARED]);
    return 0;
}

static void raise_for(ls_daemon *d, const ls_device *dev, int64_t now)
{
    if (!d->cfg.alarms_enabled) return;
    char idb[LS_ID_BUF];
    const char *id = ls_device_id(dev, idb);
    const ls_engine *e = ls_daemon_engine(d, id, dev->id_len);
    int rc = ls_alarms_raise(d->alarms, id, dev->id_len, ls_engine_severity(e, dev),
                             dev->last_activity, now);
    if (rc < 0) {
        atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
        ls_error("alarms", "cannot raise the alarm of %s: %s", id, ls_strerror(rc));
    }
}

void ls_alarming_event(ls_daemon *d, const ls_event *ev)
{
    LS_ASSERT_LOCKED(&d->lock);
    if (!ev->dev) return; /* alarm events themselves */
    if (ev->type == LS_EV_INACTIVITY && ls_device_avail(ev->dev) == LS_AVAIL_MONITORED)
        raise_for(d, ev->dev, ev->detected_at);
    else if (ev->type == LS_EV_ACTIVITY) {
        char idb[LS_ID_BUF];
        const char *id = ls_device_id(ev->dev, idb);
        ls_alarms_clear_source(d->alarms, id, ev->dev->id_len, ev->detected_at);
    }
}

void ls_alarming_avail_cb(void *ud, const ls_device *dev, ls_avail old_cls, int was_active,
                          ls_now now)
{
    ls_daemon *d = ud;
    LS_ASSERT_LOCKED(&d->lock);
    if (ls_device_avail(dev) == LS_AVAIL_MONITORED && old_cls != LS_AVAIL_MONITORED &&
        !was_active && !dev->active && dev->last_activity)
        raise_for(d, dev, now.wall);
}

void ls_alarming_deleted(ls_daemon *d, const char *id, size_t len, int64_t now_wall)
{
    LS_ASSERT_LOCKED(&d->lock);
    ls_alarms_clear_source(d->alarms, id, len, now_wall);
}

static void prune_cb(void *ud, uint64_t id)
{
    ls_daemon *d = ud;
    if (ls_store_batch_del_alarm(d->pending, id) < 0)
        atomic_fetch_add_explicit(&d->persist_errors, 1, memory_order_relaxed);
}

void ls_alarming_prune(ls_daemon *d, int64_t now_wall)
{
    LS_ASSERT_LOCKED(&d->lock);
    if (ls_alarms_prune(d->alarms, now_wall - d->cfg.alarms_retention, PRUNE_MAX, prune_cb, d))
        d->want_commit = 1;
}
