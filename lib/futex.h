/* futex.h - futex wait and wake on one 32-bit word (internal; futex.c). */
#ifndef SHP_FUTEX_H
#define SHP_FUTEX_H

#include <stdint.h>

/* Waits while *word == expect, until woken or the absolute CLOCK_MONOTONIC
 * deadline (< 0: none).  Returns 0 when woken or the value differed,
 * -ETIMEDOUT at the deadline, -EINTR on a signal (callers loop). */
int shp__futex_wait(uint32_t *word, uint32_t expect, int64_t deadline_ns);
/* Wakes up to n threads waiting on word. */
void shp__futex_wake(uint32_t *word, int n);

#endif
