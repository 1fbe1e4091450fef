/*
 * root.h - the daemon as main() runs it: start everything, run the main
 * loop until SIGINT/SIGTERM, stop everything (root.c).
 */
#ifndef LS_ROOT_H
#define LS_ROOT_H

#include "core/daemon.h"

/* Opens the core and starts every configured adapter.  0 or < 0; on
 * failure ls_daemon_stop() still undoes what was started. */
int ls_daemon_start(ls_daemon *d, const ls_config *cfg);

/* Runs the main loop until SIGINT/SIGTERM.  Returns 0 on a clean stop. */
int ls_daemon_run(ls_daemon *d);

void ls_daemon_stop(ls_daemon *d);

#endif
