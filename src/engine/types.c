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
 * The rule is two pure functions, ls_type_level_of() (the type levels)
 * and ls_availability_of() (a device's own settings over its type's level),
 * which `lastseen export` calls too, on what it reads from a store: so
 * the export reports what the engine would.  The type levels are resolved
 * once per type, when its settings change, into its `level` and
 * type_timeout[]; then every device of the type is refreshed, which copies
 * its effective timeout into its record (engine.c), so the hot path reads
 * one field.
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

/* The timeout of c8y_RequiredAvailability.responseInterval ri: none in maintenance. */
static int64_t ri_timeout(int ri, const ls_engine_config *cfg)
{
    return ri > 0 ? (int64_t)ri * MS_MINUTE + cfg->grace_ms : LS_TIMEOUT_NONE;
}

void ls_type_level_of(const ls_type_config *c, const ls_engine_config *cfg, ls_type_level *out)
{
    *out = (ls_type_level){
        .timeout_ms = cfg->unmonitored_default ? LS_TIMEOUT_NONE : cfg->default_timeout_ms,
        .source = "default",
    };
    if (!c) return;
    if (c->monitored == 0) {
        out->timeout_ms = LS_TIMEOUT_NONE;
        out->source = "type";
    } else if (c->timeout_ms) {
        out->timeout_ms = c->timeout_ms;
        out->source = "type";
        out->maint = c->has_ri && c->response_interval <= 0;
    } else if (c->has_ri) {
        out->timeout_ms = ri_timeout(c->response_interval, cfg);
        out->source = "type";
        out->maint = c->response_interval <= 0;
    } else if (c->monitored == 1) {
        out->timeout_ms = cfg->default_timeout_ms;
    }
}

void ls_availability_of(int64_t own_timeout, int has_c8y, int response_interval,
                        const ls_type_level *type, const ls_engine_config *cfg,
                        ls_availability *out)
{
    out->has_c8y = has_c8y ? 1 : 0;
    out->response_interval = has_c8y ? response_interval : 0;
    if (own_timeout) {
        out->timeout_ms = own_timeout;
        out->source = "device";
    } else if (has_c8y) {
        out->timeout_ms = ri_timeout(response_interval, cfg);
        out->source = "c8y_RequiredAvailability";
    } else {
        out->timeout_ms = type->timeout_ms;
        out->source = type->source;
    }
    /* Maintenance follows the device's own responseInterval, else its type's,
     * whatever gives the timeout. */
    if (has_c8y ? response_interval <= 0 : type->maint)
        out->cls = LS_AVAIL_MAINTENANCE;
    else
        out->cls = out->timeout_ms > 0 ? LS_AVAIL_MONITORED : LS_AVAIL_UNMONITORED;
}

/* Resolves type i's level. */
static void resolve(ls_engine *e, uint32_t i)
{
    eng__type *t = &e->types[i];
    ls_type_level_of(t->configured ? &t->cfg : NULL, &e->cfg, &t->level);
    e->type_timeout[i] = t->level.timeout_ms;
}

void eng__resolve(const ls_engine *e, const ls_device *d, int64_t own, ls_availability *out)
{
    int64_t ri = 0;
    int has = (d->flags & LS_DEV_C8Y) &&
              ls_map64_get(&e->c8y, (uint64_t)ls_table_slot_of(&e->table, d) + 1, &ri);
    ls_availability_of(own, has, (int)ri, &e->types[d->type].level, &e->cfg, out);
}

ls_avail eng__class_of(const ls_engine *e, const ls_device *d)
{
    ls_availability av;
    eng__resolve(e, d, (d->flags & LS_DEV_OWN_TIMEOUT) ? d->timeout_ms : 0, &av);
    return av.cls;
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

int ls_engine_type_check(const char *name, size_t len, const ls_type_config *c)
{
    return valid_name(name, len) && valid_config(c) ? 0 : LS_EINVAL;
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
