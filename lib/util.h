/*
 * util.h - clocks, saturating time arithmetic, the thread-local random
 * generator, test points and compiler hints (internal; util.c).
 */
#ifndef SHP_UTIL_H
#define SHP_UTIL_H

#include <shardpool/pool.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define SHP_LIKELY(x)   __builtin_expect(!!(x), 1)
#define SHP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SHP_CACHELINE   64
/* Slow paths: kept out of line so the fast paths keep small frames. */
#define SHP__COLD       __attribute__((noinline, cold))
#define SHP_NS_PER_S    1000000000LL
/* The few internal functions libshardpool-pg.so and libshardpool-redis.so
 * call in libshardpool.so: exported from it (the rest of the library is
 * built -fvisibility=hidden), but not API: no header under include/
 * declares them and they may change with any release. */
#define SHP_ADAPTER_API __attribute__((visibility("default")))

/* CLOCK_MONOTONIC in ns.  ~20 ns: slow paths and the reaper only; the fast
 * path reads the pool's tick instead. */
static inline int64_t shp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SHP_NS_PER_S + ts.tv_nsec;
}

/* a + b, saturating at INT64_MAX / INT64_MIN instead of overflowing: every
 * "now + duration" goes through it, since INT64_MAX is a legal duration
 * (deadlines then read "never"). */
static inline int64_t shp__add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Thread-local xorshift64 (seeded from the clock and the thread): backoff
 * and lifetime jitter need spread, not quality, and no shared state on the
 * connect path.  Thread-safe. */
uint64_t shp__rand64(void);

/* Test points: a test (which links the static library and includes this
 * header) may set shp__test_hook to run its own code at these points of
 * the maintenance paths, and so force an interleaving deterministically
 * instead of hoping for it.  NULL outside tests; a test point costs a load
 * and a branch, and none is on shp_acquire's or shp_release's paths. */
enum shp__test_point {
    SHP__TP_SWEEP_HELD,  /* reap_shard, in its read-side section, the shard's idle
                            list taken (sweep_seq odd); arg: the shard */
    SHP__TP_REAPER_KEEP, /* reap_shard, in its read-side section: arg, a connection
                            judged KEEP, is about to go back on its shard */
    SHP__TP_RCU_ENQUEUE, /* shp__call_rcu, inside fork.c's call_rcu gate, before
                            liburcu's enqueue; p NULL, arg the rcu_head */
};
typedef void (*shp__test_hook_fn)(shp_pool *p, enum shp__test_point where, void *arg);
extern shp__test_hook_fn shp__test_hook;
static inline void shp__test_point(shp_pool *p, enum shp__test_point where, void *arg)
{
    shp__test_hook_fn fn = __atomic_load_n(&shp__test_hook, __ATOMIC_ACQUIRE);
    if (SHP_UNLIKELY(fn != NULL))
        fn(p, where, arg);
}

#endif
