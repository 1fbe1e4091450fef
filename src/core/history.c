/*
 * history.c - a ring of fleet-count samples for the dashboard's chart.
 *
 * The timer loop calls ls_history_tick() every turn (it turns at least once
 * a second), under every shard's lock; a sample is three counters the engines
 * keep anyway, so the cost is a comparison per turn and a copy every ten
 * seconds.  The ring is fixed (360 samples, 11 KiB): the oldest sample is
 * overwritten.  Samples are not persisted: after a restart the chart starts
 * over (the event log keeps the detail).
 *
 * A late turn (a busy loop) does not make up for missed samples: the next
 * one is due a step after the one just taken, and each sample carries the
 * wall time it was taken, so a gap shows as a gap.
 */
#include "core/history.h"

int ls_history_tick(ls_history *h, ls_now now, const ls_engine_stats *st)
{
    if (h->n && now.mono < h->next_mono) return 0;
    h->ring[h->head] = (ls_history_sample){
        .t = now.wall, .devices = st->devices, .active = st->active, .inactive = st->inactive};
    h->head = (h->head + 1) % LS_HISTORY_LEN;
    if (h->n < LS_HISTORY_LEN) h->n++;
    h->next_mono = now.mono + LS_HISTORY_STEP_MS;
    return 1;
}

size_t ls_history_copy(const ls_history *h, ls_history_sample *out, size_t max)
{
    size_t n = h->n < max ? h->n : max;
    /* The oldest of the n newest samples. */
    size_t start = (h->head + LS_HISTORY_LEN - n) % LS_HISTORY_LEN;
    for (size_t i = 0; i < n; i++)
        out[i] = h->ring[(start + i) % LS_HISTORY_LEN];
    return n;
}
