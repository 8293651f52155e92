/*
 * util.h - clocks, futexes, logging and small helpers (internal).
 */
#ifndef SHP_UTIL_H
#define SHP_UTIL_H

#include <shardpool/log.h>
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

/* The deadline for a callback: now + own_timeout_ns (<= 0: none), capped
 * by the deadline of the acquire the callback serves on this thread
 * (shp_connect_deadline_ns).  Absolute CLOCK_MONOTONIC ns, or -1 for none. */
static inline int64_t shp__connect_deadline(int64_t own_timeout_ns)
{
    int64_t d = own_timeout_ns > 0 ? shp__add_sat(shp__now_ns(), own_timeout_ns) : -1;
    int64_t a = shp_connect_deadline_ns();
    return a >= 0 && (d < 0 || a < d) ? a : d;
}

/* Waits while *word == expect, until woken or the absolute CLOCK_MONOTONIC
 * deadline (< 0: none).  Returns 0 when woken or the value differed,
 * -ETIMEDOUT at the deadline, -EINTR on a signal (callers loop). */
int shp__futex_wait(uint32_t *word, uint32_t expect, int64_t deadline_ns);
/* Wakes up to n threads waiting on word. */
void shp__futex_wake(uint32_t *word, int n);

/* Logs one line "level=… pool=<name> " followed by fmt (key=value pairs). */
SHP_ADAPTER_API void shp__log(shp_log_level level, const char *pool, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int shp__log_enabled(shp_log_level level);

/* The calling thread's callback failure detail (shp_set_error_detail):
 * copies it (masked, one line, no double quote) into buf, clears it, and
 * returns its length; 0 and buf = "" when none was recorded.  len > 0. */
SHP_ADAPTER_API size_t shp__error_detail_take(char *buf, size_t len);
/* Forgets the calling thread's detail: the pool calls it before a callback. */
void shp__error_detail_clear(void);

/* fork() brackets (fork.c): hold the log sink's lock across fork, so that a
 * child's first line does not wait for a thread of the parent. */
void shp__log_before_fork(void);
void shp__log_after_fork(bool child);

/* A boolean SHARDPOOL_* environment variable: 1 for 1/true/yes/on, 0 for
 * 0/false/no/off (any case), dflt when unset or empty; anything else logs
 * one warning line (event=bad_env) and gives dflt.  Callers read each
 * variable once per process.  Thread-safe. */
int shp__env_flag(const char *var, bool dflt);
/* A log level by name (error, warn, warning, info, debug; any case) or
 * number (0-3): the shp_log_level, or -1. */
int shp__log_level_parse(const char *s);
/* Tests: SHARDPOOL_LOG_LEVEL is read again (and warned about again) at the
 * next line under the default sink. */
void shp__log_env_reset(void);
/* Tests: the repeat limit's window (0 = off, < 0 = SHP_LOG_REPEAT_WINDOW_NS)
 * and clock (NULL = CLOCK_MONOTONIC, shp__now_ns); forgets the lines seen.
 * Thread-safe. */
void shp__log_set_repeat(int64_t window_ns, int64_t (*clock_ns)(void));

#endif
