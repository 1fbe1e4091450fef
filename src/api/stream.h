/*
 * stream.h - the event streams of GET /api/v1/events/stream (stream.c).
 */
#ifndef LS_STREAM_H
#define LS_STREAM_H

#include "conf/config.h"
#include "core/metrics.h"

struct ls_auth;
struct ls_daemon;
struct ls_streams;

/* Sets up the stream table (http.max_streams, http.stream_* of cfg) and
 * starts its pump thread, which reads the outbox of d and counts streams
 * in m; `auth` (may be NULL) ends the streams whose credential is
 * revoked.  0 or negative. */
int ls_streams_start(struct ls_streams **out, struct ls_daemon *d, const ls_config *cfg,
                     ls_metrics *m, struct ls_auth *auth);

/* Ends every stream: resumes the suspended ones (their callbacks then end
 * the response) and stops the pump.  Call before MHD_stop_daemon(). */
void ls_streams_quiesce(struct ls_streams *h);

/* Frees the table, once MHD has released every stream (after it stopped). */
void ls_streams_free(struct ls_streams *h);

#endif
