/*
 * auth.c - credentials on HTTP requests (auth.h says when they are
 * required and what a request presents).
 *
 * The tokens are read from <data_dir>/tokens at start and again whenever
 * the file changes: `lastseen token create` and `revoke` rewrite it (a new
 * file renamed over the old one) whether or not the daemon runs, and the
 * daemon notices on the next request at least a second after its last
 * look, by comparing the file's stat(2) (inode, size, modification and
 * change times) with what it loaded.  Why not inotify: it would need a
 * thread or a descriptor in some loop to watch, it misses changes on
 * network filesystems and when the data directory itself is replaced, and
 * a revocation that takes effect within a second is what an operator
 * expects; the cost is one stat(2) a second while requests come, none
 * while they do not.
 *
 * Threads.  MHD's threads check requests at once: the set of tokens is
 * read under a read lock (a lookup, a hash, a copy of the name and
 * scopes) and replaced whole under the write lock; the thread that finds
 * the second has passed (a compare-and-swap on `checked`) does the stat
 * and the parse outside the lock, under reload_mu so that two never
 * reload at once.
 */
#include "api/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/err.h"
#include "base/log.h"

#define MOD "auth"
#define RELOAD_MS 1000

struct ls_auth {
    int off;     /* http.auth = off */
    int public_; /* http.listen is not loopback: credentials always required */
    int healthz; /* http.auth_healthz */
    int metrics; /* http.auth_metrics */
    char path[4200];
    pthread_rwlock_t lock; /* guards tokens */
    ls_tokens tokens;
    _Atomic int required;
    _Atomic uint64_t gen;    /* moves with every change of tokens (ls_auth_poll()) */
    _Atomic int64_t checked; /* mono ms of the last look at the file */
    pthread_mutex_t reload_mu;
    struct stat seen; /* under reload_mu: the file as last read (st_ino 0: none) */
};

void ls_access_format(unsigned access, char *buf, size_t len)
{
    char scopes[32];
    ls_scopes_format(access & LS_SCOPES_ALL, scopes, sizeof(scopes));
    if ((access & LS_SCOPES_ALL) == 0)
        snprintf(buf, len, "none");
    else if (access & LS_ACCESS_PING)
        snprintf(buf, len, "%s; a ping: ingest", scopes);
    else if (access & LS_ACCESS_HEALTHZ) /* their switches' defaults: healthz open, metrics not */
        snprintf(buf, len, "none; %s with `http.auth_healthz = true`",
                 (access & LS_SCOPES_ALL) == LS_SCOPES_ALL ? "any" : scopes);
    else if (access & LS_ACCESS_METRICS)
        snprintf(buf, len, "%s; none with `http.auth_metrics = false`",
                 (access & LS_SCOPES_ALL) == LS_SCOPES_ALL ? "any" : scopes);
    else
        snprintf(buf, len, "%s", (access & LS_SCOPES_ALL) == LS_SCOPES_ALL ? "any" : scopes);
}

/* ---- the Authorization header ------------------------------------------- */

/* Does h start with `scheme` (any case) and a blank?  Then *rest is what follows the blanks. */
static int scheme_is(const char *h, const char *scheme, const char **rest)
{
    size_t n = strlen(scheme);
    if (strncasecmp(h, scheme, n) != 0 || (h[n] != ' ' && h[n] != '\t')) return 0;
    h += n;
    while (*h == ' ' || *h == '\t')
        h++;
    *rest = h;
    return 1;
}

/* The length of s without trailing blanks. */
static size_t trimmed(const char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

int ls_auth_parse(const char *header, ls_auth_cred *c)
{
    const char *rest;
    c->kind = LS_CRED_NONE;
    c->name = c->token = NULL;
    c->name_len = c->token_len = 0;
    if (!header) return 0;
    if (scheme_is(header, "Bearer", &rest)) {
        c->kind = LS_CRED_BEARER;
        c->token = rest;
        c->token_len = trimmed(rest);
        return c->token_len ? 0 : -1;
    }
    if (!scheme_is(header, "Basic", &rest)) {
        c->kind = LS_CRED_OTHER;
        return -1;
    }
    c->kind = LS_CRED_BASIC;
    size_t n = trimmed(rest);
    /* base64 of at most sizeof(buf) - 1 bytes, padded: EVP_DecodeBlock
     * writes 3 bytes per 4 and counts the padding as bytes. */
    if (n == 0 || n % 4 || n / 4 * 3 >= sizeof(c->buf)) return -1;
    int len = EVP_DecodeBlock((unsigned char *)c->buf, (const unsigned char *)rest, (int)n);
    if (len < 0) return -1;
    if (rest[n - 1] == '=') len--;
    if (rest[n - 2] == '=') len--;
    if (len < 0) return -1;
    c->buf[len] = '\0';
    char *colon = memchr(c->buf, ':', (size_t)len);
    if (!colon) return -1;
    c->name = c->buf;
    c->name_len = (size_t)(colon - c->buf);
    c->token = colon + 1;
    c->token_len = (size_t)len - c->name_len - 1;
    return 0;
}

/* ---- the token file ----------------------------------------------------- */

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Swaps in `fresh` (taking it over); a reload says what changed. */
static void install(ls_auth *a, ls_tokens *fresh, int reloaded)
{
    pthread_rwlock_wrlock(&a->lock);
    ls_tokens old = a->tokens;
    a->tokens = *fresh;
    size_t n = a->tokens.n;
    atomic_store_explicit(&a->required, !a->off && (a->public_ || n > 0), memory_order_relaxed);
    atomic_fetch_add_explicit(&a->gen, 1, memory_order_release);
    pthread_rwlock_unlock(&a->lock);
    ls_tokens_free(&old);
    *fresh = (ls_tokens){0};
    if (reloaded) ls_auth_log(a);
}

void ls_auth_log(ls_auth *a)
{
    pthread_rwlock_rdlock(&a->lock);
    size_t n = a->tokens.n;
    pthread_rwlock_unlock(&a->lock);
    if (a->off)
        ls_warn(MOD, "http.auth = off: the API asks no credential of anyone who reaches it");
    else if (n)
        ls_info(MOD, "%zu API token%s in %s: every API route needs a credential", n,
                n == 1 ? "" : "s", a->path);
    else if (a->public_)
        ls_warn(MOD, "no API token in %s: every API request is refused until one is created",
                a->path);
    else
        ls_info(MOD,
                "no API token in %s: the API needs no credential (loopback only); "
                "`lastseen token create` turns credentials on",
                a->path);
}

/* Looks at the file; reloads it if it changed.  Under reload_mu. */
static void reload(ls_auth *a)
{
    struct stat st;
    if (stat(a->path, &st) < 0) {
        if (errno != ENOENT) return; /* keep what we have */
        memset(&st, 0, sizeof(st));
    }
    if (same_file(&st, &a->seen)) return;
    a->seen = st;
    ls_tokens fresh = {0};
    char why[256];
    int rc = ls_tokens_load(&fresh, a->path, why, sizeof(why));
    if (rc < 0) { /* a->tokens changes only here, under reload_mu: n may be read */
        ls_error(MOD, "%s: %s; keeping the %zu tokens read before", a->path, why, a->tokens.n);
        return;
    }
    install(a, &fresh, 1);
}

/* Loads the tokens of cfg's data directory into *t (path gets the file's
 * name) and says whether the daemon may start with them.  0, or < 0 with
 * one line in err. */
static int load_checked(const ls_config *cfg, int loopback, ls_tokens *t, char *path,
                        size_t pathlen, char *err, size_t errlen)
{
    char why[256];
    if (snprintf(path, pathlen, "%s/%s", cfg->data_dir, LS_TOKENS_FILE) >= (int)pathlen) {
        snprintf(err, errlen, "store.data_dir is too long");
        return -ENAMETOOLONG;
    }
    int rc = ls_tokens_load(t, path, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s (fix or remove it; `lastseen token` rewrites it)", path, why);
        return rc;
    }
    if (cfg->http_auth != LS_HTTP_AUTH_OFF && !loopback && t->n == 0) {
        snprintf(err, errlen,
                 "http.listen = %s is not a loopback address and no API token exists: refusing "
                 "to serve the API to the network without credentials; create one with "
                 "`lastseen token create NAME --scope read,ingest,admin --data-dir %s`, or set "
                 "http.auth = off to serve it without (docs/security.md)",
                 cfg->http_listen, cfg->data_dir);
        ls_tokens_free(t);
        return -EPERM;
    }
    return 0;
}

int ls_auth_precheck(const ls_config *cfg, int loopback, char *err, size_t errlen)
{
    ls_tokens t = {0};
    char path[4200];
    int rc = load_checked(cfg, loopback, &t, path, sizeof(path), err, errlen);
    ls_tokens_free(&t);
    return rc;
}

int ls_auth_open(ls_auth **out, const ls_config *cfg, int loopback)
{
    ls_auth *a = calloc(1, sizeof(*a));
    if (!a) return LS_ENOMEM;
    a->off = cfg->http_auth == LS_HTTP_AUTH_OFF;
    a->public_ = !loopback;
    a->healthz = cfg->http_auth_healthz;
    a->metrics = cfg->http_auth_metrics;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->reload_mu, NULL);
    ls_tokens t = {0};
    char err[1024];
    /* The file's stat before its text: a change in between is read again. */
    snprintf(a->path, sizeof(a->path), "%s/%s", cfg->data_dir, LS_TOKENS_FILE);
    if (stat(a->path, &a->seen) < 0) memset(&a->seen, 0, sizeof(a->seen));
    int rc = load_checked(cfg, loopback, &t, a->path, sizeof(a->path), err, sizeof(err));
    if (rc < 0) {
        ls_error(MOD, "%s", err);
        ls_auth_close(a);
        return rc;
    }
    install(a, &t, 0);
    *out = a;
    return 0;
}

void ls_auth_close(ls_auth *a)
{
    if (!a) return;
    ls_tokens_free(&a->tokens);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->reload_mu);
    free(a);
}

int ls_auth_required(ls_auth *a)
{
    return a && atomic_load_explicit(&a->required, memory_order_relaxed);
}

/* ---- a request ---------------------------------------------------------- */

static void deny(ls_auth_result *res, unsigned status, const char *detail)
{
    res->status = status;
    snprintf(res->detail, sizeof(res->detail), "%s", detail);
}

uint64_t ls_auth_poll(ls_auth *a, int64_t now_ms)
{
    if (!a || a->off) return 0;
    int64_t last = atomic_load_explicit(&a->checked, memory_order_relaxed);
    if (now_ms - last >= RELOAD_MS &&
        atomic_compare_exchange_strong_explicit(&a->checked, &last, now_ms, memory_order_relaxed,
                                                memory_order_relaxed) &&
        pthread_mutex_trylock(&a->reload_mu) == 0) {
        reload(a);
        pthread_mutex_unlock(&a->reload_mu);
    }
    return atomic_load_explicit(&a->gen, memory_order_acquire);
}

/* The scopes that let a request in on `access`; 0: it needs none. */
static unsigned needed(const ls_auth *a, unsigned access)
{
    unsigned need = access & LS_SCOPES_ALL;
    if (!atomic_load_explicit(&a->required, memory_order_relaxed) ||
        ((access & LS_ACCESS_HEALTHZ) && !a->healthz) ||
        ((access & LS_ACCESS_METRICS) && !a->metrics))
        return 0;
    return access & LS_ACCESS_PING ? need | LS_SCOPE_INGEST : need;
}

int ls_auth_holds(ls_auth *a, const ls_auth_result *res, unsigned access)
{
    if (!a || a->off) return 1;
    unsigned need = needed(a, access);
    if (!need) return 1;
    if (!res->who[0]) return 0; /* let in without one, which no longer goes */
    pthread_rwlock_rdlock(&a->lock);
    const ls_token *k = ls_tokens_find(&a->tokens, res->who, strlen(res->who));
    int ok = k && memcmp(k->tag, res->tag, sizeof(k->tag)) == 0 && (k->scopes & need);
    pthread_rwlock_unlock(&a->lock);
    return ok;
}

void ls_auth_check(ls_auth *a, const char *authorization, unsigned access, int64_t now_ms,
                   ls_auth_result *res)
{
    memset(res, 0, sizeof(*res));
    res->scopes = LS_SCOPES_ALL;
    if (!a || a->off) return;
    ls_auth_poll(a, now_ms);
    unsigned need = needed(a, access);
    if (!need) return;

    ls_auth_cred c;
    int bad = ls_auth_parse(authorization, &c);
    res->bearer = c.kind == LS_CRED_BEARER;
    if (c.kind == LS_CRED_NONE) {
        deny(res, 401,
             "this route needs a credential: Authorization: Bearer <token>, or HTTP "
             "Basic with the token's name and the token (see docs/security.md)");
        return;
    }
    if (bad) {
        deny(res, 401,
             c.kind == LS_CRED_OTHER ? "unsupported Authorization scheme: use Bearer or Basic"
                                     : "malformed Authorization header");
        return;
    }
    pthread_rwlock_rdlock(&a->lock);
    const ls_token *k =
        c.kind == LS_CRED_BEARER
            ? ls_tokens_check(&a->tokens, c.token, c.token_len)
            : ls_tokens_check_named(&a->tokens, c.name, c.name_len, c.token, c.token_len);
    if (k) {
        memcpy(res->who, k->name, sizeof(res->who));
        memcpy(res->tag, k->tag, sizeof(res->tag));
        res->scopes = k->scopes;
    }
    pthread_rwlock_unlock(&a->lock);
    if (c.kind == LS_CRED_BASIC) OPENSSL_cleanse(c.buf, sizeof(c.buf));
    if (!k) {
        res->scopes = 0;
        deny(res, 401, "unknown or revoked token");
        return;
    }
    if (!(res->scopes & need)) {
        char want[32];
        ls_scopes_format(need, want, sizeof(want));
        res->status = 403;
        res->need = need;
        if (access & LS_ACCESS_PING) snprintf(want, sizeof(want), "admin (a ping: ingest)");
        snprintf(res->detail, sizeof(res->detail), "token \"%s\" lacks the scope this needs: %s%s",
                 res->who, strchr(want, ',') ? "one of " : "", want);
    }
}
