/*
 * assert.h - assertions of the invariants lastseen relies on: a condition,
 * "this thread holds this lock", "only this thread touches this".
 *
 * On when NDEBUG is not defined or LS_ASSERTS is: Debug builds and the
 * sanitizer builds (CMake defines LS_ASSERTS with LS_SANITIZE and LS_TSAN).
 * Off in release builds (RelWithDebInfo defines NDEBUG): then every macro
 * here compiles to nothing, its argument is not evaluated, ls_mutex is a
 * bare pthread mutex and ls_thread_claim() stores nothing.
 *
 * A failed assertion prints "file:line: function: assertion `expr' failed"
 * to stderr (not through the log: it may be what is broken) and aborts,
 * so that a core, ASan or the test harness shows where.
 *
 * Lock ownership.  ls_mutex is a pthread mutex that, with assertions on,
 * remembers which thread holds it: ls_mutex_lock()/ls_mutex_unlock() and
 * the condition waits below keep `owner` up to date (one relaxed store
 * each), and LS_ASSERT_LOCKED(&m) checks that the calling thread is the
 * holder, LS_ASSERT_NOT_LOCKED(&m) that it is not.  Use
 * ls_cond_wait()/ls_cond_timedwait() on it, never the pthread calls on
 * m.m, or `owner` goes stale.
 *
 * Thread ownership.  An ls_thread_owner names the one thread allowed to
 * touch some fields (the committer's, a shard worker's): that thread calls
 * ls_thread_claim() on it (a hand-over from the thread that started it is
 * fine: pthread_create() orders the two), and LS_ASSERT_THREAD(&owner)
 * checks that the calling thread is the owner.
 *
 * Threads are told apart by pthread_self(), an integer or a pointer on
 * Linux: unique among the threads alive.
 */
#ifndef LS_ASSERT_H
#define LS_ASSERT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if !defined(NDEBUG) || defined(LS_ASSERTS)
#define LS_ASSERTS_ON 1
#else
#define LS_ASSERTS_ON 0
#endif

__attribute__((noreturn, cold)) static inline void
ls__assert_fail(const char *file, int line, const char *func, const char *expr)
{
    fprintf(stderr, "%s:%d: %s: assertion `%s' failed\n", file, line, func, expr);
    fflush(stderr);
    abort();
}

#if LS_ASSERTS_ON
#define LS_ASSERT(cond)                                                                            \
    (__builtin_expect(!!(cond), 1) ? (void)0 : ls__assert_fail(__FILE__, __LINE__, __func__, #cond))
#else
#define LS_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

/* The calling thread, as a non-zero integer. */
static inline uintptr_t ls_thread_self(void)
{
    return (uintptr_t)pthread_self();
}

/* ---- "only this thread" ------------------------------------------------- */

typedef struct ls_thread_owner {
    _Atomic uintptr_t id; /* ls_thread_self() of the owner, 0 = none yet */
} ls_thread_owner;

/* The calling thread becomes the owner. */
static inline void ls_thread_claim(ls_thread_owner *o)
{
#if LS_ASSERTS_ON
    atomic_store_explicit(&o->id, ls_thread_self(), memory_order_relaxed);
#else
    (void)o;
#endif
}

#if LS_ASSERTS_ON
/* Whether the calling thread is the owner. */
static inline int ls_thread_owns(const ls_thread_owner *o)
{
    return atomic_load_explicit(&o->id, memory_order_relaxed) == ls_thread_self();
}
#define LS_ASSERT_THREAD(owner) LS_ASSERT(ls_thread_owns(owner))
#else
#define LS_ASSERT_THREAD(owner) ((void)sizeof(owner))
#endif

/* ---- "this lock is held by this thread" --------------------------------- */

typedef struct ls_mutex {
    pthread_mutex_t m;
#if LS_ASSERTS_ON
    _Atomic uintptr_t owner; /* ls_thread_self() of the holder, 0 = free */
#endif
} ls_mutex;

static inline void ls_mutex__took(ls_mutex *l)
{
#if LS_ASSERTS_ON
    LS_ASSERT(atomic_load_explicit(&l->owner, memory_order_relaxed) == 0);
    atomic_store_explicit(&l->owner, ls_thread_self(), memory_order_relaxed);
#else
    (void)l;
#endif
}

static inline void ls_mutex__leaving(ls_mutex *l)
{
#if LS_ASSERTS_ON
    LS_ASSERT(atomic_load_explicit(&l->owner, memory_order_relaxed) == ls_thread_self());
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
#else
    (void)l;
#endif
}

static inline void ls_mutex_init(ls_mutex *l)
{
    pthread_mutex_init(&l->m, NULL);
#if LS_ASSERTS_ON
    atomic_init(&l->owner, 0);
#endif
}

static inline void ls_mutex_destroy(ls_mutex *l)
{
    pthread_mutex_destroy(&l->m);
}

static inline void ls_mutex_lock(ls_mutex *l)
{
    pthread_mutex_lock(&l->m);
    ls_mutex__took(l);
}

static inline void ls_mutex_unlock(ls_mutex *l)
{
    ls_mutex__leaving(l);
    pthread_mutex_unlock(&l->m);
}

static inline void ls_cond_wait(pthread_cond_t *cv, ls_mutex *l)
{
    ls_mutex__leaving(l);
    pthread_cond_wait(cv, &l->m);
    ls_mutex__took(l);
}

/* pthread_cond_timedwait()'s result. */
static inline int ls_cond_timedwait(pthread_cond_t *cv, ls_mutex *l, const struct timespec *abs)
{
    ls_mutex__leaving(l);
    int rc = pthread_cond_timedwait(cv, &l->m, abs);
    ls_mutex__took(l);
    return rc;
}

#if LS_ASSERTS_ON
/* Whether the calling thread holds l (another thread's hold reads as 0). */
static inline int ls_mutex_held(const ls_mutex *l)
{
    return atomic_load_explicit(&l->owner, memory_order_relaxed) == ls_thread_self();
}
#define LS_ASSERT_LOCKED(mutex) LS_ASSERT(ls_mutex_held(mutex))
#define LS_ASSERT_NOT_LOCKED(mutex) LS_ASSERT(!ls_mutex_held(mutex))
#else
#define LS_ASSERT_LOCKED(mutex) ((void)sizeof(mutex))
#define LS_ASSERT_NOT_LOCKED(mutex) ((void)sizeof(mutex))
#endif

#endif
