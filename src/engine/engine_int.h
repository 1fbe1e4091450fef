/*
 * engine_int.h - what engine.c (the state machine) and types.c (device
 * types and the timeout resolution) share.  Not for use outside
 * src/engine/.
 */
#ifndef LS_ENGINE_INT_H
#define LS_ENGINE_INT_H

#include "engine/engine.h"
#include "engine/map64.h"
#include "engine/table.h"

#define ENG__MAX_TYPES 65535

/* A list of devices (their slots) to persist; `lost`: it could not grow, so a drain
 * scans every slot for the flag instead. */
typedef struct eng__list {
    uint32_t *v; /* slots */
    size_t n, cap;
    int lost;
} eng__list;

/* A type name and its settings; index 0 is "default". */
typedef struct eng__type {
    char *name;
    size_t name_len;
    int configured;
    ls_type_config cfg;
    ls_type_level level; /* for its devices without settings of their own (types.c) */
    uint64_t devices, active;
    /* Slots of the type's devices (not for type 0), possibly stale (moved
     * to another type, deleted) or repeated: checked when walked. */
    uint32_t *members;
    size_t nmembers, members_cap;
} eng__type;

/* An input source (see ls_engine_source_add). */
enum { ENG__SRC_UNKNOWN = 0, ENG__SRC_DOWN, ENG__SRC_UP };
typedef struct eng__source {
    char name[LS_ENGINE_SOURCE_NAME_MAX + 1];
    uint8_t gate;
    uint8_t state;       /* ENG__SRC_* */
    uint8_t released;    /* released_at is set */
    int64_t released_at; /* mono ms of the last release */
} eng__source;

struct ls_engine {
    ls_engine_config cfg;
    ls_event_cb cb;
    void *ud;
    ls_avail_cb avail_cb;
    void *avail_ud;
    ls_table table;
    ls_wheel wheel;
    eng__type *types;
    int64_t *type_timeout; /* per type: the timeout its plain devices get */
    uint32_t ntypes;
    ls_map64 c8y; /* slot + 1 -> own c8y_RequiredAvailability.responseInterval */
    ls_engine_stats st;
    int64_t tick_wall; /* wall time of the ls_engine_tick() in progress */
    /* Persistence lists (engine.c): devices marked LS_DEV_DIRTY since the
     * last flush pass began; the pass being drained; devices marked
     * LS_DEV_URGENT.  Entries may be stale (deleted, already drained): the
     * flags are the truth. */
    eng__list dirty, pass, urgent;
    size_t pass_pos;                    /* next entry of `pass` */
    uint32_t pass_scan;                 /* pass.lost: next slot of the scan */
    eng__source src[LS_SOURCE_MAX + 1]; /* [1..nsrc] */
    unsigned nsrc;
    unsigned nheld;       /* gated sources not up */
    uint8_t all_released; /* every gated source has been up */
    int64_t all_up_at;    /* mono ms when the last gated source came up */
};

/* The device's effective timeout, LS_TIMEOUT_NONE for never: the hot path.
 * It is resolved into the record whenever a source changes (eng__refresh). */
static inline int64_t eng__timeout(const ls_engine *e, const ls_device *d)
{
    (void)e;
    return d->timeout_ms;
}

/* types.c */
int eng__types_init(ls_engine *e);
void eng__types_close(ls_engine *e);
/* Finds or adds a type name (validated here); 0 and *out, or LS_EINVAL, LS_EFULL, LS_ENOMEM. */
int eng__type_intern(ls_engine *e, const char *name, size_t len, uint16_t *out);
/* Records d as a member of its type (call after d->type changed). */
void eng__type_join(ls_engine *e, ls_device *d);
/* Resolves d's availability by the rule (ls_availability_of()) from `own`
 * (its inactivityTimeout, 0 = none), its c8y_RequiredAvailability and its
 * type's level. */
void eng__resolve(const ls_engine *e, const ls_device *d, int64_t own, ls_availability *out);
/* Resolves d's class from its settings and its type. */
ls_avail eng__class_of(const ls_engine *e, const ls_device *d);

/* engine.c */
/* Adds (sign 1) or removes (-1) d's contribution to every counter. */
void eng__count(ls_engine *e, const ls_device *d, int sign);
/* Recomputes d's class and timer after its settings or its type's changed:
 * fires INACTIVITY_EVENT now if its deadline passed; calls the avail_cb. */
void eng__refresh(ls_engine *e, ls_device *d, ls_now now);
void eng__mark(ls_engine *e, ls_device *d);

#endif
