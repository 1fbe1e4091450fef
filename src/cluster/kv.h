/*
 * kv.h - compare-and-swap writes and consistent reads of one key of a KV
 * bucket, each with its own bounded wait, and what became of them in the
 * terms the lease state machine needs (lease_sm.h).  See kv.c.
 */
#ifndef LS_KV_H
#define LS_KV_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/lease_sm.h"
#include "cluster/nats.h"

#define LS_KV_VALUE_MAX 256

/* A key of a bucket, and the wait of every call on it. */
typedef struct ls_kv_key {
    jsCtx *js;
    const char *bucket;
    const char *key;
    int64_t wait_ms;
} ls_kv_key;

/* Creates the key with value v (it must not hold a value; a delete
 * marker is fine).  *rev gets the revision on LS_LEASE_OK. */
ls_lease_outcome ls_kv_create(const ls_kv_key *k, const char *v, size_t n, uint64_t *rev);

/* Writes v if the key is at revision `last`; *rev the new one. */
ls_lease_outcome ls_kv_update(const ls_kv_key *k, const char *v, size_t n, uint64_t last,
                              uint64_t *rev);

/* Deletes the key if it is at revision `last` (a delete marker). */
ls_lease_outcome ls_kv_delete(const ls_kv_key *k, uint64_t last);

/* Deletes the key whatever it holds (a delete marker). */
ls_lease_outcome ls_kv_delete_any(const ls_kv_key *k);

/* Writes v whatever the key holds. */
ls_lease_outcome ls_kv_put(const ls_kv_key *k, const char *v, size_t n);

/*
 * Reads the key from the stream's leader: 1 with *exists (0 for no value
 * or a delete marker), its revision and value (up to LS_KV_VALUE_MAX - 1
 * bytes and a NUL into val), or 0 when no answer came in time.
 */
int ls_kv_read(const ls_kv_key *k, int *exists, uint64_t *rev, char *val, size_t *n);

#endif
