/*
 * assets.c - serves the dashboard: "/" is web/index.html, "/ui/NAME" is
 * web/NAME, all embedded in the binary (see assets.h), so the page works on
 * a machine without internet and always matches the daemon that serves it.
 *
 * Each file carries its content type, an ETag (a hash of its bytes) and
 * "Cache-Control: no-cache": browsers keep a copy and revalidate it with
 * If-None-Match, which is answered 304 without a body.  The page is served
 * with a Content-Security-Policy that allows only this origin's scripts,
 * styles and connections: the page builds its DOM from data with
 * textContent, and the policy is a second fence should that ever slip.
 * These routes need no engine, so they answer while the daemon loads.
 */
#include <string.h>

#include "api/api.h"
#include "api/assets.h"

#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const ls_asset *ls_api_asset_find(const char *name)
{
    for (size_t i = 0; i < ls_assets_count; i++)
        if (strcmp(ls_assets[i].name, name) == 0) return &ls_assets[i];
    return NULL;
}

/* Does an If-None-Match header list this ETag (or "*")? */
static int etag_matches(const char *header, const char *etag)
{
    size_t n = strlen(etag);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p) break;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end - start == 1 && *start == '*') return 1;
        if (end - start > 2 && start[0] == 'W' && start[1] == '/') start += 2; /* weak comparison */
        if ((size_t)(end - start) == n && memcmp(start, etag, n) == 0) return 1;
    }
    return 0;
}

/* "/" is index.html; "/ui/{file*}" the file the router found. */
enum MHD_Result ls_api_asset(ls_req *r)
{
    const ls_asset *a = r->param.asset ? r->param.asset : ls_api_asset_find("index.html");
    if (!a) return ls_api_error(r, 404, "not_found", "no route for /");
    const char *inm =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    unsigned status = inm && etag_matches(inm, a->etag) ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        status == MHD_HTTP_OK ? a->len : 0, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    if (status == MHD_HTTP_OK)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (strncmp(a->content_type, "text/html", 9) == 0) {
        MHD_add_response_header(resp, "Content-Security-Policy", CSP);
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->responded = 1;
    r->status = status;
    return ok;
}
