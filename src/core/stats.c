/*
 * stats.c - the adapters' stats ports (see stats.h).  The table is written
 * before the daemon is ready and only read after, so reads take no lock.
 */
#include "core/stats.h"

#include <errno.h>
#include <string.h>

#include "core/daemon.h"

int ls_stats_register(ls_daemon *d, const ls_stats_port *p)
{
    if (d->nstats_ports >= LS_STATS_PORTS_MAX) return -ENOSPC;
    d->stats_ports[d->nstats_ports++] = *p;
    return 0;
}

void ls_stats_ports_json(ls_daemon *d, ls_buf *b, uint64_t committed)
{
    for (int i = 0; i < d->nstats_ports; i++) {
        const ls_stats_port *p = &d->stats_ports[i];
        ls_buf_printf(b, ",\"%s\":", p->key);
        p->json(p->ud, b, committed);
    }
}

void ls_stats_ports_prom(ls_daemon *d, ls_buf *b, uint64_t committed)
{
    for (int i = 0; i < d->nstats_ports; i++) {
        const ls_stats_port *p = &d->stats_ports[i];
        if (p->prom) p->prom(p->ud, b, committed);
    }
}
