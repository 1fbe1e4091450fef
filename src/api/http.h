/*
 * http.h - the HTTP API server (libmicrohttpd).
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stddef.h>

#include "conf/config.h"

struct ls_daemon;
struct ls_http;

/* Whether the HTTP server may start with cfg (api/auth.h: an address that
 * is not loopback needs an API token, or http.auth = off; the token file
 * must parse).  0, or < 0 with one line in err.  Reads only: for start-up
 * before anything is created, and --check-config. */
int ls_http_check(const ls_config *cfg, char *err, size_t errlen);

/* Starts listening on cfg.http_listen (cfg must outlive the server); logs
 * the bound address.  It sets the daemon's commit hook. */
int ls_http_start(struct ls_http **out, struct ls_daemon *d, const ls_config *cfg);

/* Stops serving: requests whose commit is on disk get their answer, those
 * still waiting for one are answered 503 (their outcome is unknown to them),
 * event streams end; up to a second goes to sending all that, then
 * connections are closed.  The commit hook stays harmless until
 * ls_http_free(), which the daemon calls after the committer has stopped. */
void ls_http_stop(struct ls_http *h);
void ls_http_free(struct ls_http *h);

/* Loads http.tls_cert and http.tls_key again (SIGHUP): new connections get
 * the new certificate, open ones keep theirs; a failed load keeps the old
 * one.  0, < 0 (logged), or 1 when TLS is off.  Main thread. */
int ls_http_reload_tls(struct ls_http *h);

#endif
