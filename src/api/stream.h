/*
 * stream.h - the event streams of GET /api/v1/events/stream (stream.c).
 */
#ifndef LS_STREAM_H
#define LS_STREAM_H

#include "core/daemon.h"

struct ls_auth;

/* Sets up the stream table and starts its pump thread; `auth` (may be
 * NULL) ends the streams whose credential is revoked.  0 or negative. */
int ls_streams_start(struct ls_streams **out, ls_daemon *d, struct ls_auth *auth);

/* Ends every stream: resumes the suspended ones (their callbacks then end
 * the response) and stops the pump.  Call before MHD_stop_daemon(). */
void ls_streams_quiesce(struct ls_streams *h);

/* Frees the table, once MHD has released every stream (after it stopped). */
void ls_streams_free(struct ls_streams *h);

#endif
