/*
 * monitor_real.c - one real pool published by its own reaper, end to end
 * (tests only; run by tests/monitor/shptop_real_test.sh).
 *
 * Enables the monitor through SHARDPOOL_MONITOR=1 (the environment, as a
 * user would), creates pool "real" (fake backend, max 4, metrics every
 * 5 ms), makes N acquire/release pairs, holds 3 connections, fails 2
 * acquires, waits (bounded) until the reaper's history shows all of that,
 * then prints "ready pid=<pid> acquisitions=<n> in_use=3 failures=2" and
 * waits for end of input; then it releases, destroys and exits 0.
 * Exit status 1 if anything fails (message on stderr).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <shardpool.h>

#include "fakeconn.h"

#define N 1000

static int fail(const char *what, int err)
{
    fprintf(stderr, "monitor_real: %s: %s\n", what, shp_strerror(err));
    return 1;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
    static fake_backend fb;
    fake_init(&fb);
    shp_ops ops = fake_ops(&fb);
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.name = "real";
    cfg.max_size = 4;
    cfg.reaper_interval_ns = 1000000;
    cfg.metrics_interval_ns = 5000000;
    cfg.alert_utilization = 0; /* quiet */
    cfg.alert_failed_acquires = 0;
    cfg.alert_error_rate = 0;
    shp_pool *p;
    int err = shp_pool_create(&p, &cfg, &ops);
    if (err)
        return fail("create", err);
    shp_conn *c[4];
    for (int i = 0; i < N; i++) {
        if ((err = shp_acquire(p, &c[0], -1)) != 0 || (err = shp_release(c[0])) != 0)
            return fail("acquire/release", err);
    }
    for (int i = 0; i < 3; i++)
        if ((err = shp_acquire(p, &c[i], -1)) != 0)
            return fail("hold", err);
    shp_conn *x;
    if ((err = shp_acquire(p, &c[3], 0)) != 0) /* the 4th: the pool is then full */
        return fail("fill", err);
    for (int i = 0; i < 2; i++)
        if (shp_acquire(p, &x, 0) != -EAGAIN)
            return fail("expected -EAGAIN", -EINVAL);
    shp_release(c[3]);
    /* Until a published snapshot (the newest history entry, published in
     * the same pass) shows all of it. */
    int64_t end = mono_ns() + 10 * 1000000000LL;
    shp_metrics h;
    for (;;) {
        if (shp_pool_history(p, &h, 1) == 1 && h.acquisitions == N + 4 && h.in_use == 3 &&
            h.acquire_failures == 2)
            break;
        if (mono_ns() > end)
            return fail("the reaper never published the final state", -ETIMEDOUT);
        usleep(1000);
    }
    /* The pass after the one we saw has also been published. */
    int64_t seen = h.mono_ns;
    while (shp_pool_history(p, &h, 1) == 1 && h.mono_ns == seen && mono_ns() < end)
        usleep(1000);
    printf("ready pid=%d acquisitions=%d in_use=3 failures=2\n", (int)getpid(), N + 4);
    fflush(stdout);
    while (getchar() != EOF)
        ;
    for (int i = 0; i < 3; i++)
        shp_release(c[i]);
    if ((err = shp_pool_destroy(p, 1000000000LL)) != 0)
        return fail("destroy", err);
    return 0;
}
