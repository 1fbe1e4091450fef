/*
 * routes.h - the route table: which handler answers which method and path
 * (routes.c).
 */
#ifndef LS_ROUTES_H
#define LS_ROUTES_H

#include <stddef.h>
#include <stdio.h>

#include "api/api.h"
#include "api/auth.h"

/* Methods a row answers, as bits; Allow lists them in this order. */
enum {
    LS_M_GET = 1 << 0,
    LS_M_HEAD = 1 << 1,
    LS_M_POST = 1 << 2,
    LS_M_PUT = 1 << 3,
    LS_M_DELETE = 1 << 4,
};

/* A handler: the path parameter, if its pattern has one, is in r->param. */
typedef enum MHD_Result (*ls_handler)(ls_req *r);

typedef struct ls_route_def {
    unsigned methods;    /* LS_M_* bits */
    const char *pattern; /* "/api/v1/devices/{id}/activity"; see routes.c */
    ls_handler handler;
    ls_route metric; /* the template it is counted under in /metrics */
    int loading;     /* answered while the devices load (else 503 "starting") */
    unsigned access; /* the credential it needs: LS_SCOPE_* bits, LS_ACCESS_* (auth.h) */
} ls_route_def;

extern const ls_route_def ls_routes[];
extern const size_t ls_routes_count;

/* The metrics template of a raw request path: that of the rows its shape
 * matches (only the shape counts, not whether a parameter is valid), else
 * LS_ROUTE_OTHER. */
ls_route ls_routes_metric(const char *path);

/* Writes the Allow header of the rows matching `path` into buf ("GET, PUT,
 * DELETE").  0, or -1 when no row matches. */
int ls_routes_allow(const char *path, char *buf, size_t len);

/* What a request needs (auth.h): its row's access, LS_ACCESS_ANY when no row
 * has its path or its method (then any credential is checked before the 404
 * or 405, so that a route's existence is no answer to a stranger). */
unsigned ls_routes_access(const char *path, const char *method);

/* The table as Markdown (method, path, credential), for docs/api.md. */
void ls_routes_print_markdown(FILE *f);

/* Answers the request by the table (after its body is complete). */
enum MHD_Result ls_routes_dispatch(ls_req *r, const char *url);

#endif
