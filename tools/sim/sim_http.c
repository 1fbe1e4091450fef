/*
 * sim_http.c - lastseen-sim's HTTP transport and device API, on libcurl.
 *
 * A batch is one POST /api/v1/activity with a JSON array of ids (the bulk
 * endpoint: one request per tick, however many devices are due), on one
 * easy handle, so the connection is kept alive between ticks.  The answer's
 * "accepted" and "rejectedCount" are what the daemon took; a transport
 * failure or a status other than 202 counts every item of the batch as
 * failed.  The device API (timeouts) has its own handle and connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "sim.h"

#define RESP_MAX (1 << 20)
#define REQUEST_TIMEOUT_MS 10000L

typedef struct resp_buf {
    char *p;
    size_t len, cap;
} resp_buf;

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    resp_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > RESP_MAX) return n; /* keep the head only; the counts come first */
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

long sim_json_str(char *out, size_t off, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (off + 1 >= cap) return -1;
    out[off++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (off + 7 >= cap) return -1;
        if (*p == '"' || *p == '\\') {
            out[off++] = '\\';
            out[off++] = (char)*p;
        } else if (*p < 0x20) {
            memcpy(out + off, "\\u00", 4);
            out[off + 4] = hex[*p >> 4];
            out[off + 5] = hex[*p & 15];
            off += 6;
        } else {
            out[off++] = (char)*p;
        }
    }
    if (off + 1 >= cap) return -1;
    out[off++] = '"';
    out[off] = '\0';
    return (long)off;
}

long sim_pct_encode(char *out, size_t off, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (off + 4 >= cap) return -1;
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[off++] = (char)*p;
        } else {
            out[off++] = '%';
            out[off++] = hex[*p >> 4];
            out[off++] = hex[*p & 15];
        }
    }
    out[off] = '\0';
    return (long)off;
}

/* ------------------------------------------------------------------ reports */

typedef struct http_out {
    sim_out base;
    CURL *curl;
    struct curl_slist *headers;
    char url[1024];
    char *body;
    size_t body_cap;
    resp_buf resp;
} http_out;

static int http_send(sim_out *o, const sim_batch *b, sim_result *res)
{
    http_out *h = (http_out *)o;
    /* ["id","id",...]: every id is at most 6x its length once escaped. */
    size_t need = 16;
    for (size_t i = 0; i < b->n; i++)
        need += strlen(b->ids[i]) * 6 + 4;
    if (need > h->body_cap) {
        char *p = realloc(h->body, need);
        if (!p) return -ENOMEM;
        h->body = p;
        h->body_cap = need;
    }
    size_t off = 0;
    h->body[off++] = '[';
    for (size_t i = 0; i < b->n; i++) {
        if (i) h->body[off++] = ',';
        long n = sim_json_str(h->body, off, h->body_cap, b->ids[i]);
        if (n < 0) return -ENOMEM;
        off = (size_t)n;
    }
    h->body[off++] = ']';
    h->body[off] = '\0';

    h->resp.len = 0;
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)off);
    CURLcode rc = curl_easy_perform(h->curl);
    long status = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        res->failed += b->n;
        snprintf(res->error, sizeof(res->error), "POST %.200s: %s", h->url, curl_easy_strerror(rc));
        return 0;
    }
    if (status != 202) {
        res->failed += b->n;
        snprintf(res->error, sizeof(res->error), "POST %.200s: HTTP %ld: %.160s", h->url, status,
                 h->resp.p ? h->resp.p : "");
        return 0;
    }
    json_error_t err;
    json_t *j = h->resp.p ? json_loadb(h->resp.p, h->resp.len, 0, &err) : NULL;
    json_t *acc = json_object_get(j, "accepted"), *rej = json_object_get(j, "rejectedCount");
    if (!json_is_integer(acc) || !json_is_integer(rej)) {
        res->failed += b->n;
        snprintf(res->error, sizeof(res->error), "POST %.200s: unexpected answer: %.160s", h->url,
                 h->resp.p ? h->resp.p : "");
    } else {
        res->accepted += (uint64_t)json_integer_value(acc);
        res->rejected += (uint64_t)json_integer_value(rej);
        if (json_integer_value(rej) > 0) {
            json_t *first = json_array_get(json_object_get(j, "rejected"), 0);
            snprintf(res->error, sizeof(res->error), "rejected: %.200s",
                     json_string_value(json_object_get(first, "error"))
                         ? json_string_value(json_object_get(first, "error"))
                         : "?");
        }
    }
    json_decref(j);
    return 0;
}

static void http_close(sim_out *o)
{
    http_out *h = (http_out *)o;
    if (!h) return;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h->body);
    free(h->resp.p);
    free(h);
}

/* A handle with what both kinds of request share. */
static CURL *easy_new(resp_buf *resp)
{
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "lastseen-sim");
    return c;
}

int sim_http_open(sim_out **out, const char *base)
{
    http_out *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    h->base.send = http_send;
    h->base.close = http_close;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    if (snprintf(h->url, sizeof(h->url), "%.*s/api/v1/activity", (int)bl, base) >=
        (int)sizeof(h->url)) {
        free(h);
        return -ENAMETOOLONG;
    }
    h->curl = easy_new(&h->resp);
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before large bodies. */
    if (h->headers) h->headers = curl_slist_append(h->headers, "Expect:");
    if (!h->curl || !h->headers) {
        http_close(&h->base);
        return -ENOMEM;
    }
    curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->curl, CURLOPT_POST, 1L);
    *out = &h->base;
    return 0;
}

/* ------------------------------------------------------------------ device API */

struct sim_api {
    CURL *curl;
    struct curl_slist *headers;
    char base[1024];
    resp_buf resp;
};

int sim_api_open(sim_api **out, const char *base)
{
    sim_api *a = calloc(1, sizeof(*a));
    if (!a) return -ENOMEM;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    if (bl >= sizeof(a->base) - 64) {
        free(a);
        return -ENAMETOOLONG;
    }
    memcpy(a->base, base, bl);
    a->base[bl] = '\0';
    a->curl = easy_new(&a->resp);
    a->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!a->curl || !a->headers) {
        sim_api_close(a);
        return -ENOMEM;
    }
    curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(a->curl, CURLOPT_CUSTOMREQUEST, "PUT");
    *out = a;
    return 0;
}

int sim_api_set_timeout(sim_api *a, const char *id, int64_t timeout_ms, char *err, size_t errlen)
{
    char url[4096], body[64];
    int n = snprintf(url, sizeof(url), "%s/api/v1/devices/", a->base);
    if (n < 0 || (size_t)n >= sizeof(url) || sim_pct_encode(url, (size_t)n, sizeof(url), id) < 0) {
        snprintf(err, errlen, "device id too long for a URL");
        return -ENAMETOOLONG;
    }
    int bn = snprintf(body, sizeof(body), "{\"inactivityTimeout\":%lld}", (long long)timeout_ms);
    a->resp.len = 0;
    curl_easy_setopt(a->curl, CURLOPT_URL, url);
    curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(a->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bn);
    CURLcode rc = curl_easy_perform(a->curl);
    long status = 0;
    curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "PUT %.200s: %s", url, curl_easy_strerror(rc));
        return -EIO;
    }
    if (status != 200 && status != 201) {
        snprintf(err, errlen, "PUT %.200s: HTTP %ld: %.160s", url, status,
                 a->resp.p ? a->resp.p : "");
        return -EPROTO;
    }
    return 0;
}

void sim_api_close(sim_api *a)
{
    if (!a) return;
    curl_easy_cleanup(a->curl);
    curl_slist_free_all(a->headers);
    free(a->resp.p);
    free(a);
}
