/*
 * tls.h - HTTPS for the API: the certificate and key, reloaded on SIGHUP.
 * See tls.c.
 */
#ifndef LS_TLS_H
#define LS_TLS_H

#include <microhttpd.h>

struct ls_tls;
struct ls_tls_cert;

/*
 * Checks that libmicrohttpd was built with TLS and the certificate
 * callback, and loads cert_path (PEM: the certificate, then any
 * intermediates) and key_path (PEM private key, unencrypted).  The paths
 * are copied.  0, or < 0 after logging what is wrong with which file.
 */
int ls_tls_open(struct ls_tls **out, const char *cert_path, const char *key_path);

/*
 * Loads the two files again; on success new handshakes get the new
 * certificate and connections keep the one they started with; on failure
 * the old one stays (the reason is logged).  0 or < 0.  Any thread.
 */
int ls_tls_reload(struct ls_tls *t);

/* Appends the TLS options (certificate callback, TLS 1.2+ priorities) to
 * opts[*n...]: at most LS_TLS_OPTIONS. */
#define LS_TLS_OPTIONS 2
void ls_tls_options(struct ls_tls *t, struct MHD_OptionItem *opts, int *n);

/* A connection that took a certificate (its handshake) has closed. */
void ls_tls_unpin(struct ls_tls_cert *c);

/* After the HTTP server has stopped: no connection holds a certificate. */
void ls_tls_free(struct ls_tls *t);

#endif
