/*
 * types.c - device types (profiles) and the timeout resolution.
 *
 * A device's effective timeout, highest first: its own inactivityTimeout;
 * its own c8y_RequiredAvailability (responseInterval minutes + grace, or
 * none in maintenance when <= 0); its type's inactivityTimeout; its type's
 * responseInterval (same rule); its type's `monitored`: false = none,
 * true = the default timeout; and last the configuration: the default
 * timeout, or none when state.monitor_by_default is false.  Maintenance
 * (no alarm, Cumulocity statuses MAINTENANCE) is decided by the device's
 * own responseInterval if it has one, else by its type's.
 *
 * The type levels are resolved once per type, when its settings change,
 * into type_timeout[], `maint` and `source`; then every device of the
 * type is refreshed, which copies its effective timeout into its record
 * (engine.c), so the hot path reads one field.
 *
 * Re-evaluation without a full scan: each type but "default" keeps an
 * array of its devices' slot numbers (4 bytes a typed device), appended
 * when a device takes the type and never updated when it leaves or is
 * deleted; walking it skips entries whose device no longer has the type
 * and drops them, together with repeats (a scratch flag bit marks the
 * devices already seen), so the array stays within twice the type's
 * device count and a walk costs O(devices of the type).  Devices of
 * "default" - all devices without a type - are found by a walk of the
 * table: changing "default" is changing (nearly) every device anyway.  If
 * an array cannot grow, the type falls back to table walks until one of
 * them rebuilds it.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

#define MS_MINUTE 60000LL

static const ls_type_config unconfigured = {.monitored = -1, .severity = LS_SEV_MAJOR};

int64_t eng__ri_timeout(const ls_engine *e, int ri)
{
    return (int64_t)ri * MS_MINUTE + e->cfg.grace_ms;
}

/* Resolves type i's levels: the timeout its plain devices get, maintenance, source. */
static void resolve(ls_engine *e, uint32_t i)
{
    eng__type *t = &e->types[i];
    const ls_type_config *c = &t->cfg;
    int64_t def = e->cfg.unmonitored_default ? LS_TIMEOUT_NONE : e->cfg.default_timeout_ms;
    int64_t to = def;
    t->maint = 0;
    t->source = "default";
    if (t->configured) {
        if (c->monitored == 0) {
            to = LS_TIMEOUT_NONE;
            t->source = "type";
        } else if (c->timeout_ms) {
            to = c->timeout_ms;
            t->source = "type";
            t->maint = c->has_ri && c->response_interval <= 0;
        } else if (c->has_ri) {
            to = c->response_interval > 0 ? eng__ri_timeout(e, c->response_interval)
                                          : LS_TIMEOUT_NONE;
            t->source = "type";
            t->maint = c->response_interval <= 0;
        } else if (c->monitored == 1) {
            to = e->cfg.default_timeout_ms;
        }
    }
    e->type_timeout[i] = to;
}

ls_avail eng__class_of(const ls_engine *e, const ls_device *d)
{
    int maint;
    int64_t ri;
    if ((d->flags & LS_DEV_C8Y) &&
        ls_map64_get(&e->c8y, (uint64_t)ls_table_slot_of(&e->table, d) + 1, &ri))
        maint = ri <= 0;
    else
        maint = e->types[d->type].maint;
    if (maint) return LS_AVAIL_MAINTENANCE;
    return eng__timeout(e, d) > 0 ? LS_AVAIL_MONITORED : LS_AVAIL_UNMONITORED;
}

int eng__types_init(ls_engine *e)
{
    e->types = calloc(1, sizeof(*e->types));
    e->type_timeout = calloc(1, sizeof(*e->type_timeout));
    if (!e->types || !e->type_timeout || !(e->types[0].name = strdup("default"))) return LS_ENOMEM;
    e->types[0].name_len = 7;
    e->types[0].cfg = unconfigured;
    e->ntypes = 1;
    resolve(e, 0);
    return 0;
}

void eng__types_close(ls_engine *e)
{
    for (uint32_t i = 0; e->types && i < e->ntypes; i++) {
        free(e->types[i].name);
        free(e->types[i].members);
    }
    if (e->types && e->ntypes == 0) free(e->types[0].name);
    free(e->types);
    free(e->type_timeout);
    e->types = NULL;
    e->type_timeout = NULL;
}

/* The index of a known type name, or -1. */
static int64_t find(const ls_engine *e, const char *name, size_t len)
{
    for (uint32_t i = 0; i < e->ntypes; i++)
        if (e->types[i].name_len == len && memcmp(e->types[i].name, name, len) == 0) return i;
    return -1;
}

static int valid_name(const char *name, size_t len)
{
    return len > 0 && len <= LS_TYPE_MAX && !ls_id_check(name, len);
}

int eng__type_intern(ls_engine *e, const char *name, size_t len, uint16_t *out)
{
    if (!valid_name(name, len)) return LS_EINVAL;
    int64_t i = find(e, name, len);
    if (i >= 0) {
        *out = (uint16_t)i;
        return 0;
    }
    if (e->ntypes >= ENG__MAX_TYPES) return LS_EFULL;
    eng__type *nt = realloc(e->types, (e->ntypes + 1) * sizeof(*nt));
    if (!nt) return LS_ENOMEM;
    e->types = nt;
    int64_t *tt = realloc(e->type_timeout, (e->ntypes + 1) * sizeof(*tt));
    if (!tt) return LS_ENOMEM;
    e->type_timeout = tt;
    eng__type *t = &nt[e->ntypes];
    *t = (eng__type){.cfg = unconfigured, .name_len = len};
    if (!(t->name = strndup(name, len))) return LS_ENOMEM;
    resolve(e, e->ntypes);
    *out = (uint16_t)e->ntypes++;
    return 0;
}

/* Drops stale and repeated entries of t's member array (type index i). */
static void compact(ls_engine *e, eng__type *t, uint16_t i)
{
    size_t w = 0;
    for (size_t k = 0; k < t->nmembers; k++) {
        ls_device *d = ls_table_slot(&e->table, t->members[k]);
        if (!d->live || d->type != i || (d->flags & LS_DEV_MARK)) continue;
        d->flags |= LS_DEV_MARK;
        t->members[w++] = t->members[k];
    }
    for (size_t k = 0; k < w; k++)
        ls_table_slot(&e->table, t->members[k])->flags &= (uint16_t)~LS_DEV_MARK;
    t->nmembers = w;
}

/* members_cap == SIZE_MAX: the array is lost, walks scan the table. */
#define LOST SIZE_MAX

void eng__type_join(ls_engine *e, ls_device *d)
{
    if (d->type == 0) return;
    eng__type *t = &e->types[d->type];
    if (t->members_cap == LOST) return;
    if (t->nmembers == t->members_cap) {
        if (t->nmembers > 2 * t->devices + 16) compact(e, t, d->type);
        if (t->nmembers == t->members_cap) {
            size_t cap = t->members_cap ? t->members_cap * 2 : 16;
            uint32_t *nm = realloc(t->members, cap * sizeof(*nm));
            if (!nm) {
                free(t->members);
                t->members = NULL;
                t->nmembers = 0;
                t->members_cap = LOST;
                return;
            }
            t->members = nm;
            t->members_cap = cap;
        }
    }
    t->members[t->nmembers++] = ls_table_slot_of(&e->table, d);
}

/* Re-evaluates every device of type i after its settings changed. */
static void walk(ls_engine *e, uint16_t i, ls_now now)
{
    eng__type *t = &e->types[i];
    if (i == 0 || t->members_cap == LOST) {
        if (i) t->members_cap = 0; /* rebuilt by the joins below */
        for (uint32_t s = 0; s < e->table.high; s++) {
            ls_device *d = ls_table_slot(&e->table, s);
            if (!d->live || d->type != i) continue;
            if (i) eng__type_join(e, d);
            e->st.type_visits++;
            eng__refresh(e, d, now);
        }
        return;
    }
    compact(e, t, i);
    e->st.type_visits += t->nmembers;
    for (size_t k = 0; k < t->nmembers; k++)
        eng__refresh(e, ls_table_slot(&e->table, t->members[k]), now);
}

static int valid_config(const ls_type_config *c)
{
    if (c->timeout_ms && (c->timeout_ms < LS_TIMEOUT_MIN_MS || c->timeout_ms > LS_TIMEOUT_MAX_MS))
        return 0;
    if (c->has_ri && (c->response_interval < LS_RI_MIN || c->response_interval > LS_RI_MAX))
        return 0;
    if (c->monitored < -1 || c->monitored > 1) return 0;
    return (unsigned)c->severity < LS_SEV__COUNT;
}

int ls_engine_type_put(ls_engine *e, const char *name, size_t len, const ls_type_config *c,
                       ls_now now, int *created)
{
    uint16_t i;
    int rc;
    if (!valid_config(c)) return LS_EINVAL;
    if ((rc = eng__type_intern(e, name, len, &i)) < 0) return rc;
    eng__type *t = &e->types[i];
    if (created) *created = !t->configured;
    t->configured = 1;
    t->cfg = *c;
    resolve(e, i);
    walk(e, i, now);
    return 0;
}

int ls_engine_type_delete(ls_engine *e, const char *name, size_t len, ls_now now)
{
    int64_t i = valid_name(name, len) ? find(e, name, len) : -1;
    if (i < 0 || !e->types[i].configured) return LS_ENOTFOUND;
    e->types[i].configured = 0;
    e->types[i].cfg = unconfigured;
    resolve(e, (uint32_t)i);
    walk(e, (uint16_t)i, now);
    return 0;
}

uint32_t ls_engine_type_count(const ls_engine *e)
{
    return e->ntypes;
}

void ls_engine_type_at(const ls_engine *e, uint32_t i, ls_type_info *out)
{
    const eng__type *t = &e->types[i];
    *out = (ls_type_info){.name = t->name,
                          .configured = t->configured,
                          .cfg = t->cfg,
                          .devices = t->devices,
                          .active = t->active};
}

int ls_engine_type_get(const ls_engine *e, const char *name, size_t len, ls_type_info *out)
{
    int64_t i = valid_name(name, len) ? find(e, name, len) : -1;
    if (i < 0) return LS_ENOTFOUND;
    ls_engine_type_at(e, (uint32_t)i, out);
    return 0;
}

const char *ls_engine_type_name(const ls_engine *e, const ls_device *d)
{
    return e->types[d->type].name;
}

ls_severity ls_engine_severity(const ls_engine *e, const ls_device *d)
{
    const eng__type *t = &e->types[d->type];
    return t->configured ? t->cfg.severity : LS_SEV_MAJOR;
}
