/*
 * tls.c - HTTPS: libmicrohttpd over GnuTLS, with a certificate that SIGHUP
 * replaces without dropping a connection.
 *
 * With http.tls_cert and http.tls_key set, the server speaks only HTTPS,
 * TLS 1.2 and 1.3 (MHD_OPTION_HTTPS_PRIORITIES "NORMAL:-VERS-ALL:
 * +VERS-TLS1.3:+VERS-TLS1.2": GnuTLS's default suites, older versions off).
 *
 * Reload.  Certificates are renewed while the daemon runs (ACME clients
 * every 60 days or so) and a reload must not cut the event streams and the
 * requests waiting for a commit.  Restarting the listener would: MHD stops
 * only after every suspended connection is resumed and closes all of them.
 * So the certificate is handed to GnuTLS per handshake instead, through
 * MHD_OPTION_HTTPS_CERT_CALLBACK: `cur` is what new handshakes get, and
 * ls_tls_reload() loads the files into a new ls_tls_cert and swaps it in.
 * GnuTLS keeps the pointers the callback returns for the whole session
 * and never frees them, so each certificate is reference counted: the
 * callback pins it to its connection (the guard's ls_conn, found through
 * the session's pointer, which MHD sets to the connection), and the
 * connection's close (guard.c, after MHD has deinitialised the session)
 * unpins it; the last unpin of a replaced certificate frees it.  A reload
 * that fails (a file missing, a key that does not match) changes nothing.
 *
 * Checks at load: the certificate list parses (PEM, sorted leaf first), the
 * key parses and is the certificate's (their public key ids agree); the
 * subject and expiry are logged.  Cost: one mutex acquisition per handshake.
 */
#include "api/tls.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/guard.h"
#include "base/log.h"

#define CHAIN_MAX 16
#define PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct ls_tls_cert {
    struct ls_tls *tls;
    gnutls_pcert_st pcerts[CHAIN_MAX];
    unsigned npcerts;
    gnutls_privkey_t key;
    unsigned refs; /* under tls->mu: the connections holding it, + 1 while it is `cur` */
};

struct ls_tls {
    pthread_mutex_t mu;
    struct ls_tls_cert *cur; /* under mu */
    char *cert_path, *key_path;
};

static void cert_free(struct ls_tls_cert *c)
{
    if (!c) return;
    for (unsigned i = 0; i < c->npcerts; i++)
        gnutls_pcert_deinit(&c->pcerts[i]);
    if (c->key) gnutls_privkey_deinit(c->key);
    free(c);
}

/* Whether key is the private half of the certificate's public key. */
static int key_matches(gnutls_privkey_t key, gnutls_pubkey_t cert_pub)
{
    gnutls_pubkey_t pub;
    unsigned char a[64], b[64];
    size_t na = sizeof(a), nb = sizeof(b);
    if (gnutls_pubkey_init(&pub) < 0) return 0;
    int ok = gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
             gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &na) == 0 &&
             gnutls_pubkey_get_key_id(cert_pub, GNUTLS_KEYID_USE_SHA256, b, &nb) == 0 && na == nb &&
             memcmp(a, b, na) == 0;
    gnutls_pubkey_deinit(pub);
    return ok;
}

/* Logs the leaf's subject and expiry; `what` is "loaded" or "reloaded". */
static void cert_describe(const struct ls_tls_cert *c, const char *path, const char *what)
{
    gnutls_x509_crt_t crt;
    char dn[512] = "?", until[32] = "?";
    size_t dl = sizeof(dn);
    if (gnutls_x509_crt_init(&crt) < 0) return;
    if (gnutls_x509_crt_import(crt, &c->pcerts[0].cert, GNUTLS_X509_FMT_DER) == 0) {
        if (gnutls_x509_crt_get_dn(crt, dn, &dl) < 0) snprintf(dn, sizeof(dn), "?");
        time_t t = gnutls_x509_crt_get_expiration_time(crt);
        struct tm tm;
        if (t != (time_t)-1 && gmtime_r(&t, &tm))
            strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    gnutls_x509_crt_deinit(crt);
    ls_info("http", "TLS certificate %s from %s: %s, %u in chain, valid until %s; TLS 1.2 and 1.3",
            what, path, dn, c->npcerts, until);
}

/* Loads the two files into a new certificate (refs 1); 0 or < 0, logged. */
static int cert_load(struct ls_tls *t, struct ls_tls_cert **out)
{
    gnutls_datum_t cd = {0}, kd = {0};
    struct ls_tls_cert *c = calloc(1, sizeof(*c));
    int rc;
    if (!c) return -ENOMEM;
    c->tls = t;
    c->refs = 1;
    if ((rc = gnutls_load_file(t->cert_path, &cd)) < 0) {
        ls_error("http", "http.tls_cert %s: cannot read: %s", t->cert_path, gnutls_strerror(rc));
        goto fail;
    }
    if ((rc = gnutls_load_file(t->key_path, &kd)) < 0) {
        ls_error("http", "http.tls_key %s: cannot read: %s", t->key_path, gnutls_strerror(rc));
        goto fail;
    }
    c->npcerts = CHAIN_MAX;
    if ((rc = gnutls_pcert_list_import_x509_raw(c->pcerts, &c->npcerts, &cd, GNUTLS_X509_FMT_PEM,
                                                GNUTLS_X509_CRT_LIST_SORT)) < 0) {
        c->npcerts = 0;
        ls_error("http", "http.tls_cert %s: not a PEM certificate list (at most %d): %s",
                 t->cert_path, CHAIN_MAX, gnutls_strerror(rc));
        goto fail;
    }
    if (c->npcerts == 0) {
        ls_error("http", "http.tls_cert %s: no certificate in it", t->cert_path);
        rc = GNUTLS_E_NO_CERTIFICATE_FOUND;
        goto fail;
    }
    if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        ls_error("http", "http.tls_key %s: not an unencrypted PEM private key: %s", t->key_path,
                 gnutls_strerror(rc));
        goto fail;
    }
    if (!key_matches(c->key, c->pcerts[0].pubkey)) {
        ls_error("http", "http.tls_key %s is not the key of http.tls_cert %s", t->key_path,
                 t->cert_path);
        rc = GNUTLS_E_CERTIFICATE_KEY_MISMATCH;
        goto fail;
    }
    gnutls_free(cd.data);
    gnutls_free(kd.data);
    *out = c;
    return 0;
fail:
    gnutls_free(cd.data);
    gnutls_free(kd.data);
    cert_free(c);
    return rc == GNUTLS_E_FILE_ERROR ? -ENOENT : -EINVAL;
}

static void unpin_locked(struct ls_tls_cert *c)
{
    if (--c->refs == 0) cert_free(c);
}

void ls_tls_unpin(struct ls_tls_cert *c)
{
    if (!c) return;
    struct ls_tls *t = c->tls;
    pthread_mutex_lock(&t->mu);
    unpin_locked(c);
    pthread_mutex_unlock(&t->mu);
}

/*
 * GnuTLS asks for the server's certificate (gnutls_certificate_retrieve_function2):
 * the current one, pinned to the connection.  -1 fails the handshake.
 */
static int cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
                   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                   gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct MHD_Connection *conn = gnutls_session_get_ptr(s);
    ls_conn *lc = conn ? ls_guard_conn(conn) : NULL;
    struct ls_tls *t = lc ? ls_guard_tls(lc->guard) : NULL;
    if (!t) return -1;
    pthread_mutex_lock(&t->mu);
    struct ls_tls_cert *c = t->cur, *old = lc->cert;
    c->refs++;
    lc->cert = c;
    if (old) unpin_locked(old);
    pthread_mutex_unlock(&t->mu);
    *pcert = c->pcerts;
    *pcert_length = c->npcerts;
    *privkey = c->key;
    return 0;
}

int ls_tls_open(struct ls_tls **out, const char *cert_path, const char *key_path)
{
    *out = NULL;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
        ls_error("http", "http.tls_cert is set, but this libmicrohttpd was built without TLS "
                         "or without its certificate callback");
        return -ENOTSUP;
    }
    struct ls_tls *t = calloc(1, sizeof(*t));
    if (!t || !(t->cert_path = strdup(cert_path)) || !(t->key_path = strdup(key_path))) {
        ls_tls_free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    int rc = cert_load(t, &t->cur);
    if (rc < 0) {
        ls_tls_free(t);
        return rc;
    }
    cert_describe(t->cur, t->cert_path, "loaded");
    *out = t;
    return 0;
}

int ls_tls_reload(struct ls_tls *t)
{
    struct ls_tls_cert *c;
    int rc = cert_load(t, &c);
    if (rc < 0) {
        ls_error("http", "TLS certificate not reloaded: the one loaded before stays in use");
        return rc;
    }
    cert_describe(c, t->cert_path, "reloaded");
    pthread_mutex_lock(&t->mu);
    struct ls_tls_cert *old = t->cur;
    t->cur = c;
    unpin_locked(old);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

void ls_tls_options(struct ls_tls *t, struct MHD_OptionItem *opts, int *n)
{
    (void)t;
    opts[(*n)++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)(intptr_t)cert_cb};
    opts[(*n)++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)PRIORITIES};
}

void ls_tls_free(struct ls_tls *t)
{
    if (!t) return;
    if (t->cur) {
        pthread_mutex_lock(&t->mu);
        unpin_locked(t->cur);
        pthread_mutex_unlock(&t->mu);
        pthread_mutex_destroy(&t->mu);
    }
    free(t->cert_path);
    free(t->key_path);
    free(t);
}
