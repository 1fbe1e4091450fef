/*
 * stopper.h - a flag plus a condition variable: a stop request wakes every
 * thread sleeping on it at once (the MQTT threads between reconnects).
 */
#ifndef LS_STOPPER_H
#define LS_STOPPER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct ls_stopper {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    _Atomic int stop;  /* written under mu; ls_stopper_requested() reads it without */
} ls_stopper;

void ls_stopper_init(ls_stopper *s);
void ls_stopper_close(ls_stopper *s);
void ls_stopper_request(ls_stopper *s);
int ls_stopper_requested(ls_stopper *s);
/* Sleeps ms or until a stop request; returns 1 if stopping. */
int ls_stopper_sleep(ls_stopper *s, int64_t ms);

#endif
