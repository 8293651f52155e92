/*
 * testutil.h - small helpers shared by the adapter and integration tests
 * (tests only; header-only, include after <cmocka.h>).
 */
#ifndef SHP_TEST_UTIL_H
#define SHP_TEST_UTIL_H

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <shardpool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "clock.h" /* now_ns, nap_ns */

static inline void nap_ms(int ms)
{
    nap_ns((int64_t)ms * 1000000LL);
}

/* Open descriptors of this process (the directory's own fd not counted),
 * or -1 if /proc cannot be read. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* Log capture: shardpool's log lines go to one buffer that tests search. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[65536];

static inline void log_capture(shp_log_level level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    pthread_mutex_lock(&log_mu);
    size_t o = strlen(log_buf);
    snprintf(log_buf + o, sizeof log_buf - o, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

/* Empties the buffer and captures lines up to level. */
static inline void log_start_level(shp_log_level level)
{
    pthread_mutex_lock(&log_mu);
    log_buf[0] = 0;
    pthread_mutex_unlock(&log_mu);
    shp_log_set(log_capture, NULL, level);
}

static inline void log_start(void)
{
    log_start_level(SHP_LOG_DEBUG);
}

static inline void log_stop(void)
{
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
}

/* Whether a captured line contains s. */
static inline bool log_has(const char *s)
{
    pthread_mutex_lock(&log_mu);
    bool r = strstr(log_buf, s) != NULL;
    pthread_mutex_unlock(&log_mu);
    return r;
}

/* An shp_ops that forwards to a real one and counts connect calls and the
 * most connects in flight at once (the no-reconnect-storm check). */
typedef struct counted_ops {
    shp_ops real;
    atomic_int inflight, max_inflight;
    atomic_long calls;
} counted_ops;

static inline int counted_connect(void *ctx, void **handle)
{
    counted_ops *co = ctx;
    int n = atomic_fetch_add(&co->inflight, 1) + 1;
    int m = atomic_load(&co->max_inflight);
    while (n > m && !atomic_compare_exchange_weak(&co->max_inflight, &m, n))
        ;
    atomic_fetch_add(&co->calls, 1);
    int err = co->real.connect(co->real.ctx, handle);
    atomic_fetch_sub(&co->inflight, 1);
    return err;
}

static inline void counted_close(void *ctx, void *handle)
{
    counted_ops *co = ctx;
    co->real.close(co->real.ctx, handle);
}

static inline int counted_check(void *ctx, void *handle)
{
    counted_ops *co = ctx;
    return co->real.check(co->real.ctx, handle);
}

static inline int counted_reset(void *ctx, void *handle)
{
    counted_ops *co = ctx;
    return co->real.reset(co->real.ctx, handle);
}

static inline int counted_prepare(void *ctx, void *handle)
{
    counted_ops *co = ctx;
    return co->real.prepare(co->real.ctx, handle);
}

/* An shp_ops that forwards every hook of real (the optional ones only when
 * real has them) and counts connects in flight. */
static inline shp_ops counted_wrap(counted_ops *co, const shp_ops *real)
{
    memset(co, 0, sizeof *co);
    co->real = *real;
    shp_ops o = {
        .connect = counted_connect,
        .close = counted_close,
        .check = real->check ? counted_check : NULL,
        .reset = real->reset ? counted_reset : NULL,
        .ctx = co,
        .prepare = real->prepare ? counted_prepare : NULL,
    };
    return o;
}

static inline void max_update(atomic_llong *max, long long v)
{
    long long m = atomic_load(max);
    while (v > m && !atomic_compare_exchange_weak(max, &m, v))
        ;
}

#endif
