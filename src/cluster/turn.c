/*
 * turn.c - a thread's turns: see turn.h.
 */
#include "cluster/turn.h"

#include <time.h>

void ls_turn_init(ls_turn *t)
{
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->stopping = t->woken = 0;
}

void ls_turn_destroy(ls_turn *t)
{
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

int ls_turn_wait(ls_turn *t, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&t->mu);
    while (!t->stopping && !t->woken && pthread_cond_timedwait(&t->cv, &t->mu, &ts) == 0)
        ;
    t->woken = 0;
    int stop = t->stopping;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

void ls_turn_wake(ls_turn *t)
{
    pthread_mutex_lock(&t->mu);
    t->woken = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void ls_turn_stop(ls_turn *t)
{
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}
