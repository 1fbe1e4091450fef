/*
 * test_routes.c - unit tests for the route table (api/routes.c): the
 * metrics template of raw paths, the Allow header computed from the rows,
 * and the table's own consistency (every pattern parses, templates match
 * the metric labels, no two rows of a pattern answer the same method).
 * The dispatch itself, with its status codes and bodies, is covered by the
 * black-box tests (test_bad_input.py, test_api.py, ...).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "api/routes.h"
#include "core/metrics.h"

static void test_metric_templates(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        const char *route;
    } cases[] = {
        {"/healthz", "/healthz"},
        {"/metrics", "/metrics"},
        {"/api/v1/stats", "/api/v1/stats"},
        {"/api/v1/activity", "/api/v1/activity"},
        {"/api/v1/devices", "/api/v1/devices"},
        {"/api/v1/devices/pump-7", "/api/v1/devices/{id}"},
        {"/api/v1/devices/a%2Fb", "/api/v1/devices/{id}"},
        {"/api/v1/devices/", "/api/v1/devices/{id}"},
        {"/api/v1/devices/x/activity", "/api/v1/devices/{id}/activity"},
        {"/api/v1/devices/x/connect", "/api/v1/devices/{id}/connect"},
        {"/api/v1/devices/x/disconnect", "/api/v1/devices/{id}/disconnect"},
        {"/api/v1/devices//activity", "/api/v1/devices/{id}/activity"},
        {"/api/v1/devices/x/reboot", "other"},
        {"/api/v1/devices/x/activity/more", "other"},
        {"/api/v1/devices/x/y/z", "other"},
        {"/api/v1/events", "/api/v1/events"},
        {"/api/v1/events/stream", "/api/v1/events/stream"},
        {"/api/v1/events/other", "other"},
        {"/api/v1/events/recent", "other"},
        {"/api/v1/device-types/meter", "other"},
        {"/api/v1/alarms/7", "other"},
        {"/", "other"},
        {"/ui/app.js", "other"},
        {"/api/v2/stats", "other"},
        {"/api/v1/stats/", "other"},
        {"/healthz/x", "other"},
        {"", "other"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(ls_route_name(ls_routes_metric(cases[i].path)), cases[i].route) != 0)
            fail_msg("%s: route %s, want %s", cases[i].path,
                     ls_route_name(ls_routes_metric(cases[i].path)), cases[i].route);
    assert_string_equal(ls_route_name((ls_route)999), "other");
}

static void test_allow(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        const char *allow; /* NULL: no route */
    } cases[] = {
        {"/healthz", "GET, HEAD"},
        {"/", "GET, HEAD"},
        {"/ui/app.js", "GET, HEAD"},
        {"/ui/a/b", "GET, HEAD"}, /* the shape matches; the file is looked up later (404) */
        {"/metrics", "GET"},
        {"/api/v1/stats", "GET"},
        {"/api/v1/activity", "POST"},
        {"/api/v1/devices", "GET"},
        {"/api/v1/devices/x", "GET, PUT, DELETE"},
        {"/api/v1/devices/x/activity", "POST"},
        {"/api/v1/devices/x/connect", "POST"},
        {"/api/v1/devices/x/disconnect", "POST"},
        {"/api/v1/device-types", "GET"},
        {"/api/v1/device-types/meter", "GET, PUT, DELETE"},
        {"/api/v1/device-types/", "GET, PUT, DELETE"},
        {"/api/v1/alarms", "GET"},
        {"/api/v1/alarms/12", "GET, PUT"},
        {"/api/v1/alarms/x", "GET, PUT"}, /* not a number: 422 after the method check */
        {"/api/v1/device-typesx", NULL},
        {"/api/v1/device-types/a/b", NULL},
        {"/api/v1/alarms/1/x", NULL},
        {"/API/V1/ACTIVITY", NULL},
        {"/nope", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64] = "unset";
        int rc = ls_routes_allow(cases[i].path, buf, sizeof(buf));
        if (!cases[i].allow) {
            if (rc != -1) fail_msg("%s: matched (Allow %s), want no route", cases[i].path, buf);
        } else if (rc != 0 || strcmp(buf, cases[i].allow) != 0) {
            fail_msg("%s: Allow \"%s\" (rc %d), want \"%s\"", cases[i].path, buf, rc,
                     cases[i].allow);
        }
    }
}

/* The pattern with each parameter replaced by "x": a path of its shape. */
static void sample_path(const char *pat, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = pat; *p && o + 2 < len; p++) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            assert_non_null(end);
            out[o++] = 'x';
            p = end;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static void test_table(void **state)
{
    (void)state;
    int covered[LS_ROUTE__COUNT] = {0};
    assert_true(ls_routes_count > 0);
    for (size_t i = 0; i < ls_routes_count; i++) {
        const ls_route_def *row = &ls_routes[i];
        assert_non_null(row->handler);
        assert_true(row->methods != 0);
        /* A path of the row's shape reaches this row's pattern, and its
         * Allow lists the row's methods. */
        char path[256], allow[64];
        sample_path(row->pattern, path, sizeof(path));
        if (ls_routes_allow(path, allow, sizeof(allow)) != 0)
            fail_msg("row %zu (%s): its own shape %s matches no row", i, row->pattern, path);
        assert_int_equal(ls_routes_metric(path), row->metric);
        /* A metric label is the row's pattern, as /metrics shows it. */
        if (row->metric != LS_ROUTE_OTHER) {
            assert_string_equal(ls_route_name(row->metric), row->pattern);
            covered[row->metric]++;
        }
        /* Rows of one pattern answer different methods. */
        for (size_t k = i + 1; k < ls_routes_count; k++)
            if (strcmp(ls_routes[k].pattern, row->pattern) == 0 &&
                (ls_routes[k].methods & row->methods))
                fail_msg("rows %zu and %zu both answer a method of %s", i, k, row->pattern);
    }
    /* Every template /metrics knows is some row's. */
    for (int m = 1; m < LS_ROUTE__COUNT; m++)
        if (!covered[m]) fail_msg("no route is counted as %s", ls_route_name((ls_route)m));
}

/* The credential each request needs: its row's, any for no row or method. */
static void test_access(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        unsigned access;
    } cases[] = {
        {"GET", "/", LS_ACCESS_PUBLIC},
        {"HEAD", "/ui/app.js", LS_ACCESS_PUBLIC},
        {"GET", "/healthz", LS_ACCESS_ANY | LS_ACCESS_HEALTHZ},
        {"GET", "/metrics", LS_SCOPE_READ | LS_ACCESS_METRICS},
        {"GET", "/api/v1/devices/x", LS_SCOPE_READ},
        {"PUT", "/api/v1/devices/x", LS_SCOPE_ADMIN | LS_ACCESS_PING},
        {"DELETE", "/api/v1/devices/x", LS_SCOPE_ADMIN},
        {"POST", "/api/v1/devices/x/activity", LS_SCOPE_INGEST},
        {"POST", "/api/v1/activity", LS_SCOPE_INGEST},
        {"GET", "/api/v1/events/stream", LS_SCOPE_READ},
        {"PUT", "/api/v1/alarms/7", LS_SCOPE_ADMIN},
        {"POST", "/api/v1/devices/x", LS_ACCESS_ANY}, /* no such method: 405 to any */
        {"PATCH", "/api/v1/stats", LS_ACCESS_ANY},
        {"GET", "/nope", LS_ACCESS_ANY}, /* no such route: 404 to any */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (ls_routes_access(cases[i].path, cases[i].method) != cases[i].access)
            fail_msg("%s %s: access %#x, want %#x", cases[i].method, cases[i].path,
                     ls_routes_access(cases[i].path, cases[i].method), cases[i].access);
    /* Every row that changes state needs ingest or admin; no GET needs either. */
    for (size_t i = 0; i < ls_routes_count; i++) {
        unsigned a = ls_routes[i].access & LS_SCOPES_ALL;
        if (ls_routes[i].methods & ~(unsigned)(LS_M_GET | LS_M_HEAD)) {
            if (!(a & (LS_SCOPE_INGEST | LS_SCOPE_ADMIN)) || (a & LS_SCOPE_READ))
                fail_msg("%s: changes state, access %#x", ls_routes[i].pattern, a);
        } else if (a & (LS_SCOPE_INGEST | LS_SCOPE_ADMIN) && a != LS_SCOPES_ALL) {
            fail_msg("%s: a read needing %#x", ls_routes[i].pattern, a);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_templates),
        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_access),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
