/*
 * http.h - the HTTP API server (libmicrohttpd).
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

struct ls_daemon;
struct ls_http;

/* Starts listening on cfg.http_listen; logs the bound address. */
int ls_http_start(struct ls_http **out, struct ls_daemon *d);
void ls_http_stop(struct ls_http *h);

#endif
