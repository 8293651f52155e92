/*
 * clock.h - the tests' clock: CLOCK_MONOTONIC in ns and a sleep that
 * survives signals (tests only; header-only, no cmocka needed).  A sleep
 * stands for time itself (an age, a think time, a poll's pace), never for
 * synchronisation.
 */
#ifndef SHP_TEST_CLOCK_H
#define SHP_TEST_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleeps ns (its whole length, across signals). */
static inline void nap_ns(int64_t ns)
{
    struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

#endif
