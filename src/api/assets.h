/*
 * assets.h - the dashboard's files (web/), embedded in the binary at build
 * time by cmake/embed_web.cmake into a generated web_assets.c.
 */
#ifndef LS_ASSETS_H
#define LS_ASSETS_H

#include <stddef.h>

typedef struct ls_asset {
    const char *name;         /* file name under web/, e.g. "app.js" */
    const char *content_type; /* from the extension, with charset for text */
    const char *etag;         /* quoted strong validator: a hash of the bytes */
    const unsigned char *data;
    size_t len;
} ls_asset;

extern const ls_asset ls_assets[];
extern const size_t ls_assets_count;

#endif
