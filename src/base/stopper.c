/*
 * stopper.c - a stop flag that sleepers can wait on (see stopper.h).
 */
#include "base/stopper.h"

#include <time.h>

void ls_stopper_init(ls_stopper *s)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->stop, 0);
}

void ls_stopper_close(ls_stopper *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

void ls_stopper_request(ls_stopper *s)
{
    pthread_mutex_lock(&s->mu);
    atomic_store_explicit(&s->stop, 1, memory_order_release);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int ls_stopper_requested(ls_stopper *s)
{
    return atomic_load_explicit(&s->stop, memory_order_acquire);
}

int ls_stopper_sleep(ls_stopper *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&s->mu);
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0) {
    }
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}
