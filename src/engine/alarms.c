/*
 * alarms.c - the unavailability alarms.
 *
 * Every alarm lives on the heap and is listed in `all`, an array sorted by
 * id (new ids are the largest, so creation appends): lookup by id is a
 * binary search, listing pages walk it in order.  Open alarms (ACTIVE or
 * ACKNOWLEDGED) are also indexed by device id, which is what makes the
 * deduplication rule O(1): a device has at most one open alarm, and raising
 * while it has one increments its count and moves its time.
 *
 * Life cycle (Cumulocity's): ACTIVE -> ACKNOWLEDGED -> CLEARED, or ACTIVE ->
 * CLEARED; CLEARED is final.  The daemon clears a device's open alarm when
 * the device becomes active again (or is deleted); users acknowledge and
 * clear through the API.  CLEARED alarms stay listed until pruned by age.
 *
 * Cost: O(1) raise, clear and dedup (amortised; the array doubles), O(log n)
 * get, O(n) per prune pass.  Memory: ~64 bytes an alarm plus its device id,
 * 8 bytes in `all`, and 32 / load bytes in the index while it is open.
 */
#include "engine/alarms.h"

#include <stdlib.h>
#include <string.h>

#include "engine/strmap.h"

struct ls_alarms {
    ls_alarm_cb cb;
    void *ud;
    ls_alarm **all; /* sorted by id */
    size_t n, cap;
    ls_strmap open; /* device id -> open alarm */
    uint64_t last_id;
    ls_alarm_stats st;
};

static const char *const status_names[LS_ALARM__COUNT] = {"ACTIVE", "ACKNOWLEDGED", "CLEARED"};
static const char *const severity_names[LS_SEV__COUNT] = {"CRITICAL", "MAJOR", "MINOR", "WARNING"};
static const char *const severity_keys[LS_SEV__COUNT] = {"critical", "major", "minor", "warning"};

const char *ls_alarm_status_name(int status)
{
    return (unsigned)status < LS_ALARM__COUNT ? status_names[status] : "UNKNOWN";
}

const char *ls_severity_name(int sev)
{
    return (unsigned)sev < LS_SEV__COUNT ? severity_names[sev] : "UNKNOWN";
}

const char *ls_severity_key(int sev)
{
    return (unsigned)sev < LS_SEV__COUNT ? severity_keys[sev] : "unknown";
}

static int parse(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return i;
    return -1;
}

int ls_alarm_status_parse(const char *s, size_t len)
{
    return parse(status_names, LS_ALARM__COUNT, s, len);
}

int ls_severity_parse(const char *s, size_t len)
{
    return parse(severity_names, LS_SEV__COUNT, s, len);
}

int ls_alarms_new(ls_alarms **out, ls_alarm_cb cb, void *ud, uint64_t seed)
{
    ls_alarms *a = calloc(1, sizeof(*a));
    if (!a) return LS_ENOMEM;
    a->cb = cb;
    a->ud = ud;
    ls_strmap_init(&a->open, seed);
    *out = a;
    return 0;
}

static void alarm_free(ls_alarm *al)
{
    if (!al) return;
    free(al->source);
    free(al);
}

void ls_alarms_close(ls_alarms *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++)
        alarm_free(a->all[i]);
    free(a->all);
    ls_strmap_close(&a->open);
    free(a);
}

static int is_open(const ls_alarm *al)
{
    return al->status != LS_ALARM_CLEARED;
}

/* Adds (sign 1) or removes (-1) al's contribution to the counters. */
static void count(ls_alarms *a, const ls_alarm *al, int sign)
{
    uint64_t s = (uint64_t)(int64_t)sign;
    a->st.by_status[al->status] += s;
    if (is_open(al)) a->st.open_by_severity[al->severity] += s;
}

static void notify(ls_alarms *a, ls_event_type what, const ls_alarm *al, int64_t now)
{
    if (a->cb) a->cb(a->ud, what, al, now);
}

/* Inserts al into `all` at its place by id.  0 or LS_ENOMEM. */
static int list_insert(ls_alarms *a, ls_alarm *al)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        ls_alarm **na = realloc(a->all, cap * sizeof(*na));
        if (!na) return LS_ENOMEM;
        a->all = na;
        a->cap = cap;
    }
    size_t at = a->n;
    while (at > 0 && a->all[at - 1]->id > al->id)
        at--;
    memmove(a->all + at + 1, a->all + at, (a->n - at) * sizeof(*a->all));
    a->all[at] = al;
    a->n++;
    return 0;
}

/* The position of the first alarm with id > after. */
static size_t lower(const ls_alarms *a, uint64_t after)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->all[mid]->id <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const ls_alarm *ls_alarms_get(const ls_alarms *a, uint64_t id)
{
    if (id == 0) return NULL;
    size_t i = lower(a, id - 1);
    return i < a->n && a->all[i]->id == id ? a->all[i] : NULL;
}

const ls_alarm *ls_alarms_open(const ls_alarms *a, const char *source, size_t len)
{
    return ls_strmap_get(&a->open, source, len);
}

int ls_alarms_raise(ls_alarms *a, const char *source, size_t len, ls_severity sev, int64_t since,
                    int64_t now)
{
    if (len == 0 || len > LS_ID_MAX || (unsigned)sev >= LS_SEV__COUNT) return LS_EINVAL;
    ls_alarm *al = ls_strmap_get(&a->open, source, len);
    if (al) {
        al->count++;
        al->time = now;
        al->updated = now;
        a->st.deduplicated++;
        notify(a, LS_EV_ALARM_UPDATED, al, now);
        return 0;
    }
    if (!(al = calloc(1, sizeof(*al))) || !(al->source = malloc(len + 1))) {
        free(al);
        return LS_ENOMEM;
    }
    memcpy(al->source, source, len);
    al->source[len] = '\0';
    al->source_len = (uint16_t)len;
    al->id = a->last_id + 1;
    al->time = al->first = al->updated = now;
    al->since = since;
    al->count = 1;
    al->status = LS_ALARM_ACTIVE;
    al->severity = (uint8_t)sev;
    if (list_insert(a, al) < 0) {
        alarm_free(al);
        return LS_ENOMEM;
    }
    if (ls_strmap_put(&a->open, al->source, len, al) < 0) {
        a->n--; /* it was appended last */
        alarm_free(al);
        return LS_ENOMEM;
    }
    a->last_id = al->id;
    count(a, al, 1);
    a->st.raised++;
    notify(a, LS_EV_ALARM_RAISED, al, now);
    return 0;
}

/* Moves an alarm to a new status and tells the callback. */
static void set_status(ls_alarms *a, ls_alarm *al, ls_alarm_status st, int64_t now)
{
    count(a, al, -1);
    if (st == LS_ALARM_CLEARED) ls_strmap_del(&a->open, al->source, al->source_len);
    al->status = (uint8_t)st;
    al->updated = now;
    count(a, al, 1);
    notify(a, st == LS_ALARM_CLEARED ? LS_EV_ALARM_CLEARED : LS_EV_ALARM_UPDATED, al, now);
}

int ls_alarms_clear_source(ls_alarms *a, const char *source, size_t len, int64_t now)
{
    ls_alarm *al = ls_strmap_get(&a->open, source, len);
    if (!al) return 0;
    set_status(a, al, LS_ALARM_CLEARED, now);
    return 1;
}

int ls_alarms_set_status(ls_alarms *a, uint64_t id, ls_alarm_status st, int64_t now)
{
    ls_alarm *al = (ls_alarm *)ls_alarms_get(a, id);
    if (!al) return LS_ENOTFOUND;
    if (al->status == st) return 1;
    if (st == LS_ALARM_ACTIVE || al->status == LS_ALARM_CLEARED || (unsigned)st >= LS_ALARM__COUNT)
        return LS_EINVAL;
    set_status(a, al, st, now);
    return 0;
}

uint64_t ls_alarms_list(const ls_alarms *a, uint64_t after, const ls_alarm_filter *f, size_t limit,
                        size_t max_scan, void (*cb)(void *ud, const ls_alarm *al), void *ud)
{
    size_t found = 0, scanned = 0;
    for (size_t i = lower(a, after); i < a->n; i++) {
        const ls_alarm *al = a->all[i];
        int match = (f->status < 0 || al->status == f->status) &&
                    (f->severity < 0 || al->severity == f->severity) &&
                    (!f->source || (al->source_len == f->source_len &&
                                    !memcmp(al->source, f->source, f->source_len)));
        if (match) {
            cb(ud, al);
            if (++found == limit) return i + 1 < a->n ? al->id : 0;
        }
        if (max_scan && ++scanned >= max_scan) return i + 1 < a->n ? al->id : 0;
    }
    return 0;
}

int ls_alarms_restore(ls_alarms *a, const ls_alarm *rec)
{
    if (rec->id == 0 || rec->source_len == 0 || rec->source_len > LS_ID_MAX || !rec->source ||
        rec->status >= LS_ALARM__COUNT || rec->severity >= LS_SEV__COUNT ||
        ls_alarms_get(a, rec->id))
        return LS_EINVAL;
    ls_alarm *al = malloc(sizeof(*al));
    if (!al) return LS_ENOMEM;
    *al = *rec;
    if (!(al->source = malloc(rec->source_len + 1))) {
        free(al);
        return LS_ENOMEM;
    }
    memcpy(al->source, rec->source, rec->source_len);
    al->source[rec->source_len] = '\0';
    if (list_insert(a, al) < 0) {
        alarm_free(al);
        return LS_ENOMEM;
    }
    if (is_open(al)) {
        /* Two open alarms of one device cannot be written by this code; if
         * a store holds them anyway, the newer one takes further raises. */
        const ls_alarm *cur = ls_strmap_get(&a->open, al->source, al->source_len);
        if ((!cur || cur->id < al->id) &&
            ls_strmap_put(&a->open, al->source, al->source_len, al) < 0) {
            size_t i = lower(a, al->id - 1);
            memmove(a->all + i, a->all + i + 1, (a->n - i - 1) * sizeof(*a->all));
            a->n--;
            alarm_free(al);
            return LS_ENOMEM;
        }
    }
    if (al->id > a->last_id) a->last_id = al->id;
    count(a, al, 1);
    return 0;
}

void ls_alarms_set_last_id(ls_alarms *a, uint64_t last)
{
    if (last > a->last_id) a->last_id = last;
}

uint64_t ls_alarms_last_id(const ls_alarms *a)
{
    return a->last_id;
}

size_t ls_alarms_prune(ls_alarms *a, int64_t cutoff, size_t max, void (*cb)(void *ud, uint64_t id),
                       void *ud)
{
    size_t w = 0, pruned = 0;
    for (size_t i = 0; i < a->n; i++) {
        ls_alarm *al = a->all[i];
        if (pruned < max && al->status == LS_ALARM_CLEARED && al->updated < cutoff) {
            if (cb) cb(ud, al->id);
            count(a, al, -1);
            alarm_free(al);
            pruned++;
            continue;
        }
        a->all[w++] = al;
    }
    a->n = w;
    a->st.pruned += pruned;
    return pruned;
}

void ls_alarms_get_stats(const ls_alarms *a, ls_alarm_stats *out)
{
    *out = a->st;
}
