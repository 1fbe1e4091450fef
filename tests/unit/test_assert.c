/*
 * test_assert.c - the assertion macros (app/assert.h), built with
 * assertions on whatever the build type: a false condition aborts the
 * process (checked in a forked child), ls_mutex knows which thread holds
 * it (also across a condition wait), and a thread owner is only its own
 * thread.
 */
#define LS_ASSERTS 1

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/assert.h"

/* Runs fn(arg) in a child process (stderr to /dev/null); returns the
 * signal that ended it, 0 if it exited normally. */
static int in_child(void (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, STDERR_FILENO);
        fn(arg);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

static void assert_value(void *arg)
{
    LS_ASSERT(*(int *)arg == 1);
}

static void test_assert_aborts_on_false(void **state)
{
    (void)state;
    int one = 1, two = 2;
    LS_ASSERT(one == 1); /* true: nothing happens */
    assert_int_equal(in_child(assert_value, &one), 0);
    assert_int_equal(in_child(assert_value, &two), SIGABRT);
}

typedef struct probe {
    ls_mutex *m;
    ls_thread_owner *o;
    int held, owns;
} probe;

static void *probe_main(void *arg)
{
    probe *p = arg;
    p->held = ls_mutex_held(p->m);
    p->owns = ls_thread_owns(p->o);
    return NULL;
}

/* What another thread sees of m and o. */
static probe from_other_thread(ls_mutex *m, ls_thread_owner *o)
{
    probe p = {.m = m, .o = o, .held = -1, .owns = -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, probe_main, &p), 0);
    pthread_join(t, NULL);
    return p;
}

static void assert_locked(void *arg)
{
    LS_ASSERT_LOCKED((ls_mutex *)arg);
}

static void test_mutex_owner(void **state)
{
    (void)state;
    ls_mutex m;
    ls_thread_owner o = {0};
    ls_mutex_init(&m);
    assert_false(ls_mutex_held(&m));
    assert_int_equal(in_child(assert_locked, &m), SIGABRT);

    ls_mutex_lock(&m);
    assert_true(ls_mutex_held(&m));
    LS_ASSERT_LOCKED(&m);
    assert_int_equal(from_other_thread(&m, &o).held, 0); /* held, but not by that thread */

    /* A condition wait gives the mutex up and takes it back. */
    pthread_cond_t cv;
    pthread_cond_init(&cv, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    assert_int_equal(ls_cond_timedwait(&cv, &m, &ts), ETIMEDOUT);
    assert_true(ls_mutex_held(&m));
    pthread_cond_destroy(&cv);

    ls_mutex_unlock(&m);
    assert_false(ls_mutex_held(&m));
    ls_mutex_destroy(&m);
}

static void assert_owner(void *arg)
{
    LS_ASSERT_THREAD((ls_thread_owner *)arg);
}

static void test_thread_owner(void **state)
{
    (void)state;
    ls_mutex m;
    ls_mutex_init(&m);
    ls_thread_owner o = {0};
    assert_false(ls_thread_owns(&o)); /* nobody yet */
    assert_int_equal(in_child(assert_owner, &o), SIGABRT);
    ls_thread_claim(&o);
    assert_true(ls_thread_owns(&o));
    LS_ASSERT_THREAD(&o);
    assert_int_equal(from_other_thread(&m, &o).owns, 0);
    ls_mutex_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assert_aborts_on_false),
        cmocka_unit_test(test_mutex_owner),
        cmocka_unit_test(test_thread_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
