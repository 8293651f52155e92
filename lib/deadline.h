/*
 * deadline.h - an acquire's deadline, as its callbacks and waits see it
 * (internal; deadline.c).
 *
 * A deadline is the caller's, end to end: shp_acquire fixes it once, as an
 * absolute CLOCK_MONOTONIC time (< 0: none, the acquire may not wait;
 * INT64_MAX: never), and every wait, backoff and callback gets what is left
 * of it.  While an acquire runs a connect, check or prepare callback, the
 * deadline is published for the calling thread (shp_connect_deadline_ns),
 * so that the callback - an adapter - caps its own blocking by it.
 */
#ifndef SHP_DEADLINE_H
#define SHP_DEADLINE_H

#include <shardpool/pool.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Whether the absolute deadline (< 0: none) has passed: checked before
 * every callback an acquire would start, so that none starts after it, and
 * by every spin or yield an acquire makes. */
static inline bool shp__past(int64_t deadline)
{
    return deadline >= 0 && shp__now_ns() >= deadline;
}

/* For a callback: now + own_timeout_ns (<= 0: none), capped by the deadline
 * of the acquire the callback serves on this thread
 * (shp_connect_deadline_ns).  Absolute CLOCK_MONOTONIC ns, or -1 for none.
 * Thread-safe (per thread). */
static inline int64_t shp__connect_deadline(int64_t own_timeout_ns)
{
    int64_t d = own_timeout_ns > 0 ? shp__add_sat(shp__now_ns(), own_timeout_ns) : -1;
    int64_t a = shp_connect_deadline_ns();
    return a >= 0 && (d < 0 || a < d) ? a : d;
}

/* Publishes deadline as the calling thread's shp_connect_deadline_ns, for
 * the callback an acquire is about to run, and returns the one it replaces:
 * the caller restores it after the callback (which may itself acquire from
 * another pool).  Thread-safe (per thread). */
int64_t shp__callback_deadline_swap(int64_t deadline);

#endif
