/*
 * auth.h - credentials on HTTP requests: whether a request may use its
 * route (auth.c).  The tokens and their file are tokens.h; which route
 * needs which scope is a column of the route table (routes.c).
 *
 * When credentials are required: with http.auth = on (the default), once
 * the token file holds a token, and always when http.listen is not a
 * loopback address (then an empty file lets nobody in: revoking the last
 * token does not open the API to the network).  With http.auth = off,
 * never.  A request presents `Authorization: Bearer <token>` or HTTP Basic
 * with the token's name as user and the token as password.
 */
#ifndef LS_AUTH_H
#define LS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "api/tokens.h"
#include "conf/config.h"

/*
 * What a route needs: the LS_SCOPE_* bits of tokens.h (any one of them
 * suffices), or one of these.
 */
enum {
    LS_ACCESS_PUBLIC = 0,          /* no credential, ever: the dashboard's files */
    LS_ACCESS_ANY = LS_SCOPES_ALL, /* any valid credential: no such route or method */
    LS_ACCESS_HEALTHZ = 1u << 8,   /* with its scopes: only when http.auth_healthz */
    LS_ACCESS_METRICS = 1u << 9,   /* with its scopes: only when http.auth_metrics */
    LS_ACCESS_PING = 1u << 10,     /* with admin: ingest suffices for a ping (devices.c) */
};

/* "admin; a ping: ingest", "read (with http.auth_metrics)", "none" ... for the docs. */
void ls_access_format(unsigned access, char *buf, size_t len);

typedef struct ls_auth ls_auth;

/*
 * Reads <data_dir>/tokens and decides, from http.auth and whether
 * http.listen is loopback, when credentials are required.  Refuses (and
 * logs why) a token file that does not parse, and a listen address that
 * is not loopback while no token exists and http.auth is on.  0, or
 * -EPERM / -EINVAL / -errno.
 */
int ls_auth_open(ls_auth **out, const ls_config *cfg, int loopback);
void ls_auth_close(ls_auth *a);

/* Logs when credentials are required and how many tokens there are (at start). */
void ls_auth_log(ls_auth *a);

/* What ls_auth_open() would refuse, without opening: 0, or < 0 with one
 * line in err (for start-up and --check-config, before anything is created). */
int ls_auth_precheck(const ls_config *cfg, int loopback, char *err, size_t errlen);

typedef struct ls_auth_result {
    unsigned status; /* 0 allowed; 401 (no or a wrong credential) or 403 (lacks the scope) */
    int bearer;      /* 401: a bearer token was presented (and refused) */
    unsigned need;   /* 403: the scopes any of which would do */
    char who[LS_TOKEN_NAME_MAX + 1]; /* the credential's name; "" when none was needed */
    uint8_t tag[8];                  /* and its token's tag (tokens.h): which token it was */
    unsigned scopes;                 /* its scopes; LS_SCOPES_ALL when none was needed */
    char detail[192];                /* 401, 403: why, for the error body */
} ls_auth_result;

/*
 * Checks a request's Authorization header (NULL: none) against `access`,
 * what its route needs.  Any thread; now_ms is the monotonic clock: at
 * most once a second it looks whether the token file changed (stat(2))
 * and reloads it, so that a token created or revoked by `lastseen token`
 * counts within a second.  A file that no longer parses is logged and the
 * tokens read before are kept.
 */
void ls_auth_check(ls_auth *a, const char *authorization, unsigned access, int64_t now_ms,
                   ls_auth_result *res);

/* Credentials are required now (tokens exist, or the address is not loopback). */
int ls_auth_required(ls_auth *a);

/*
 * For what outlives its request (an event stream): ls_auth_poll() looks at
 * the token file when a second has passed, as a request would, and returns
 * the generation of the tokens, which moves whenever they change;
 * ls_auth_holds() says whether the credential a request was let in with
 * (res of ls_auth_check()) would still be let in with `access`: its token
 * not revoked (nor replaced by another of the same name), and, when it
 * came with none, credentials still not required.  Any thread.
 */
uint64_t ls_auth_poll(ls_auth *a, int64_t now_ms);
int ls_auth_holds(ls_auth *a, const ls_auth_result *res, unsigned access);

/*
 * An Authorization header taken apart (no token looked up): the scheme
 * and, for Basic, the decoded name and password.  Pointers are into the
 * header or into buf.
 */
typedef struct ls_auth_cred {
    enum { LS_CRED_NONE = 0, LS_CRED_BEARER, LS_CRED_BASIC, LS_CRED_OTHER } kind;
    const char *name, *token; /* Basic: name and password; Bearer: token */
    size_t name_len, token_len;
    char buf[384]; /* a Basic credential, decoded */
} ls_auth_cred;

/* Parses the header; 0, or -1 when it is malformed (kind is then what it claimed to be). */
int ls_auth_parse(const char *header, ls_auth_cred *c);

#endif
