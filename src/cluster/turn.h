/*
 * turn.h - what the cluster's own threads (ls-lease, ls-cluster) share:
 * a turn every so often, sooner when woken, until told to stop.  A mutex
 * (also the owner's lock for its small shared state), a condition
 * variable on the monotonic clock (a wall clock step neither shortens nor
 * stretches a wait) and the flags.
 */
#ifndef LS_TURN_H
#define LS_TURN_H

#include <pthread.h>
#include <stdint.h>

typedef struct ls_turn {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping; /* under mu */
    int woken;    /* under mu */
} ls_turn;

void ls_turn_init(ls_turn *t);
void ls_turn_destroy(ls_turn *t);

/* Waits until ms have passed, ls_turn_wake() or ls_turn_stop(); returns 1
 * once stopping.  The thread that turns. */
int ls_turn_wait(ls_turn *t, int64_t ms);

/* The next wait returns at once.  Any thread. */
void ls_turn_wake(ls_turn *t);

/* Every wait returns 1 from now on.  Any thread. */
void ls_turn_stop(ls_turn *t);

#endif
