/*
 * test_err.c - the one error space of base/err.h: every own code has a
 * name of its own, lies outside the -errno range and collides with no
 * errno the C library knows; system errors are named by strerror(); the
 * rest gets one stable "unknown error".
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "engine/engine.h"
#include "store/store.h"

static const struct {
    int code;
    const char *name;
} own[] = {
#define XX(name, value, text) {name, #name},
    LS_ERR_MAP(XX)
#undef XX
};
#define NOWN (sizeof(own) / sizeof(own[0]))

/* strerror() says "Unknown error N" for a value it has no text for. */
static int known_errno(int e)
{
    char unknown[32];
    snprintf(unknown, sizeof(unknown), "Unknown error %d", e);
    return strcmp(strerror(e), unknown) != 0;
}

static void test_own_codes_named_distinctly(void **state)
{
    (void)state;
    assert_true(NOWN >= 7);
    for (size_t i = 0; i < NOWN; i++) {
        const char *t = ls_strerror(own[i].code);
        assert_non_null(t);
        assert_true(t[0] != '\0');
        assert_string_not_equal(t, "unknown error");
        assert_string_not_equal(t, "ok");
        assert_string_not_equal(t, ls_strerror(LS_ENOMEM));
        for (size_t j = 0; j < i; j++) {
            if (own[i].code == own[j].code || strcmp(t, ls_strerror(own[j].code)) == 0)
                fail_msg("%s and %s share a code or a name", own[i].name, own[j].name);
        }
    }
    /* The texts lastseen has always used (the API shows some of them). */
    assert_string_equal(ls_strerror(LS_OK), "ok");
    assert_string_equal(ls_strerror(LS_EINVAL), "invalid value");
    assert_string_equal(ls_strerror(LS_EBADID), "invalid device id");
    assert_string_equal(ls_strerror(LS_ENOTFOUND), "no such device");
    assert_string_equal(ls_strerror(LS_EFULL), "limit reached");
    assert_string_equal(ls_strerror(LS_ENOMEM), "out of memory");
    assert_string_equal(ls_strerror(LS_STORE_EVERSION), "store written by a newer lastseen");
    assert_string_equal(ls_strerror(LS_STORE_ECORRUPT), "store damaged or not a lastseen store");
    assert_string_equal(ls_strerror(LS_STORE_EFULL), "store.max_size reached");
}

static void test_own_codes_never_errno(void **state)
{
    (void)state;
    for (size_t i = 0; i < NOWN; i++) {
        /* Below Linux's MAX_ERRNO: not a -errno on any platform we run on. */
        if (own[i].code >= -4095)
            fail_msg("%s = %d is in the -errno range", own[i].name, own[i].code);
        assert_true(own[i].code < LS_E__BASE);
        for (int e = 1; e <= 4095; e++)
            if (known_errno(e) && own[i].code == -e)
                fail_msg("%s = -%d, the errno %s", own[i].name, e, strerror(e));
    }
    /* The one system error lastseen uses by name is the errno itself. */
    assert_int_equal(LS_ENOMEM, -ENOMEM);
}

static void test_system_errors_named_by_strerror(void **state)
{
    (void)state;
    int known = 0;
    for (int e = 1; e <= 4095; e++) {
        if (!known_errno(e)) continue;
        known++;
        if (e == ENOMEM) continue; /* LS_ENOMEM: "out of memory" */
        if (strcmp(ls_strerror(-e), strerror(e)) != 0)
            fail_msg("-%d: \"%s\", strerror says \"%s\"", e, ls_strerror(-e), strerror(e));
    }
    assert_true(known > 100);
    assert_string_equal(ls_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(ls_strerror(-EINVAL), "Invalid argument"); /* not LS_EINVAL's text */
    assert_string_equal(ls_strerror(-ENOSPC), "No space left on device");
#ifdef __GLIBC__
    /* A constant string: another call does not overwrite it. */
    const char *a = ls_strerror(-EACCES);
    ls_strerror(-EPERM);
    ls_strerror(-4000);
    assert_string_equal(a, strerror(EACCES));
    assert_ptr_equal(a, ls_strerror(-EACCES));
#endif
}

static void test_unknown_codes(void **state)
{
    (void)state;
    const char *u = ls_strerror(LS_E__BASE);
    assert_string_equal(u, "unknown error");
    int unknown[] = {1,
                     42,
                     INT_MAX,
                     INT_MIN,
                     -4096,
                     LS_E__BASE,
                     LS_E__BASE - (int)NOWN - 1,
                     LS_E__BASE - 999,
                     LS_E__BASE + 1};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_string_equal(ls_strerror(unknown[i]), "unknown error");
    /* An errno value the C library has no text for is unknown too, not
     * "Unknown error N" formatted into some buffer. */
    int seen = 0;
    for (int e = 1; e <= 4095; e++) {
        if (known_errno(e)) continue;
        seen++;
        assert_string_equal(ls_strerror(-e), "unknown error");
    }
    assert_true(seen > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_codes_named_distinctly),
        cmocka_unit_test(test_own_codes_never_errno),
        cmocka_unit_test(test_system_errors_named_by_strerror),
        cmocka_unit_test(test_unknown_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
