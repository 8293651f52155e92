/*
 * retry_test.c - connect retry with backoff and the circuit breaker
 * (lib/retry.c and their use by the pool).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "fakeconn.h"
#include "pool_internal.h"
#include "retry.h"

#define MS 1000000LL

static shp_pool *make_pool(fake_backend *fb, shp_ops *ops, shp_config *cfg)
{
    shp_pool *p = NULL;
    *ops = fake_ops(fb);
    assert_int_equal(shp_pool_create(&p, cfg, ops), 0);
    return p;
}

static shp_config base_cfg(unsigned min, unsigned max)
{
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = min;
    cfg.max_size = max;
    cfg.validate_idle_ns = -1;
    cfg.retry_base_ns = 1 * MS;
    cfg.retry_cap_ns = 4 * MS;
    cfg.name = "retrytest";
    return cfg;
}

static void finish(shp_pool *p, fake_backend *fb)
{
    assert_int_equal(shp_pool_destroy(p, 0), 0);
    assert_int_equal(fake_open_now(fb), 0);
    assert_int_equal(atomic_load(&fb->bad_close), 0);
}

static shp_stats stats(shp_pool *p)
{
    shp_stats s;
    assert_int_equal(shp_pool_stats(p, &s), 0);
    return s;
}

/* Full jitter: attempt i waits in [0, min(cap, base << i)], and the draws
 * use the range (1000 draws all in the lower half: probability 2^-1000). */
static void test_backoff_bounds(void **state)
{
    (void)state;
    shp_config cfg = base_cfg(0, 1);
    cfg.retry_base_ns = 10 * MS;
    cfg.retry_cap_ns = 80 * MS;
    for (unsigned a = 0; a < 8; a++) {
        int64_t ceiling = 10 * MS << a;
        if (ceiling > 80 * MS)
            ceiling = 80 * MS;
        int64_t max_seen = 0;
        for (int i = 0; i < 1000; i++) {
            int64_t d = shp__backoff_ns(&cfg, a);
            assert_true(d >= 0 && d <= ceiling);
            if (d > max_seen)
                max_seen = d;
        }
        assert_true(max_seen > ceiling / 2);
    }
}

static void test_retryable_errors(void **state)
{
    (void)state;
    assert_true(shp__retryable(-ECONNREFUSED));
    assert_true(shp__retryable(-ETIMEDOUT));
    assert_true(shp__retryable(-ECONNRESET));
    assert_true(shp__retryable(-EHOSTUNREACH)); /* also a temporary DNS failure */
    assert_true(shp__retryable(-EIO));
    assert_false(shp__retryable(-EINVAL));
    /* the adapters' permanent connect errors (error.h) */
    assert_false(shp__retryable(-EACCES));
    assert_false(shp__retryable(-ENOENT));
    assert_false(shp__retryable(-EPROTONOSUPPORT));
    assert_false(shp__retryable(-ENXIO));
}

/* Two transient failures, then success, within one acquire. */
static void test_retry_then_success(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_ops ops;
    shp_config cfg = base_cfg(0, 2);
    cfg.connect_attempts = 3;
    shp_pool *p = make_pool(&fb, &ops, &cfg);
    atomic_store(&fb.fail_next, 2);
    shp_conn *c;
    assert_int_equal(shp_acquire(p, &c, 2000 * MS), 0);
    assert_int_equal(atomic_load(&fb.connect_calls), 3);
    assert_int_equal(stats(p).retries, 2);
    assert_int_equal(stats(p).breaker_open, 0);
    assert_int_equal(shp_release(c), 0);
    finish(p, &fb);
}

/* Attempts used up: the connect error, not a timeout. */
static void test_retries_exhausted_return_connect_error(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_ops ops;
    shp_config cfg = base_cfg(0, 2);
    cfg.connect_attempts = 3;
    cfg.breaker_threshold = 0;
    shp_pool *p = make_pool(&fb, &ops, &cfg);
    atomic_store(&fb.connect_err, -ECONNREFUSED);
    shp_conn *c;
    assert_int_equal(shp_acquire(p, &c, 2000 * MS), -ECONNREFUSED);
    assert_int_equal(atomic_load(&fb.connect_calls), 3);
    assert_int_equal(stats(p).live, 0);
    finish(p, &fb);
}

/* A permanent error (bad password, no such database, TLS missing, a host
 * name that does not resolve) is not retried: the backend's error at once,
 * after one connect, with no backoff. */
static void test_auth_error_not_retried(void **state)
{
    (void)state;
    static const int permanent[] = { -EACCES, -ENOENT, -EPROTONOSUPPORT, -ENXIO };
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++) {
        fake_backend fb;
        fake_init(&fb);
        shp_ops ops;
        shp_config cfg = base_cfg(0, 2);
        cfg.connect_attempts = 0; /* until the deadline, for transient errors */
        shp_pool *p = make_pool(&fb, &ops, &cfg);
        atomic_store(&fb.connect_err, permanent[i]);
        shp_conn *c;
        assert_int_equal(shp_acquire(p, &c, 5000 * MS), permanent[i]);
        assert_int_equal(atomic_load(&fb.connect_calls), 1);
        assert_int_equal(stats(p).retries, 0);
        finish(p, &fb);
    }
}

/* K consecutive failures open the breaker; then an acquire that would
 * connect fails at once without calling connect. */
static void test_breaker_opens_and_fails_fast(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_ops ops;
    shp_config cfg = base_cfg(0, 2);
    cfg.connect_attempts = 1;
    cfg.breaker_threshold = 3;
    cfg.breaker_probe_ns = 3600 * 1000 * MS; /* no probe during the test */
    shp_pool *p = make_pool(&fb, &ops, &cfg);
    atomic_store(&fb.connect_err, -ECONNREFUSED);
    shp_conn *c;
    for (int i = 0; i < 3; i++)
        assert_int_equal(shp_acquire(p, &c, 100 * MS), -ECONNREFUSED);
    shp_stats s = stats(p);
    assert_int_equal(s.breaker_open, 1);
    assert_int_equal(s.breaker_opens, 1);
    uint64_t calls = atomic_load(&fb.connect_calls);
    assert_int_equal(shp_acquire(p, &c, 1000 * MS), -EHOSTDOWN);
    assert_int_equal(shp_acquire(p, &c, 0), -EHOSTDOWN);
    assert_int_equal(atomic_load(&fb.connect_calls), calls);
    finish(p, &fb);
}

/* While open, idle connections are still handed out, and an acquire at
 * max_size waits for a release instead of failing. */
static void test_breaker_open_still_serves_idle(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_ops ops;
    shp_config cfg = base_cfg(1, 2);
    cfg.connect_attempts = 1;
    cfg.breaker_threshold = 1;
    cfg.breaker_probe_ns = 3600 * 1000 * MS;
    shp_pool *p = make_pool(&fb, &ops, &cfg);
    shp_conn *c1, *c2;
    assert_int_equal(shp_acquire(p, &c1, 0), 0); /* the prefilled one */
    atomic_store(&fb.connect_err, -ECONNREFUSED);
    assert_int_equal(shp_acquire(p, &c2, 100 * MS), -ECONNREFUSED);
    assert_int_equal(stats(p).breaker_open, 1);
    assert_int_equal(shp_release(c1), 0);
    assert_int_equal(shp_acquire(p, &c1, 0), 0); /* idle: handed out while open */
    assert_int_equal(shp_release(c1), 0);
    finish(p, &fb);
}

/* A waiter queued at max_size when the breaker is open, and whose capacity
 * then frees (a broken release), fails fast instead of sleeping on. */
struct waiter_arg {
    shp_pool *p;
    int rc;
    atomic_int done;
};

static void *waiter_main(void *a)
{
    struct waiter_arg *w = a;
    shp_conn *c;
    w->rc = shp_acquire(w->p, &c, 20000 * MS);
    if (w->rc == 0)
        shp_release(c);
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_breaker_open_wakes_waiter_with_free_capacity(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_ops ops;
    shp_config cfg = base_cfg(1, 1);
    cfg.connect_attempts = 1;
    cfg.breaker_threshold = 1;
    cfg.breaker_probe_ns = 3600 * 1000 * MS;
    shp_pool *p = make_pool(&fb, &ops, &cfg);
    shp_conn *held;
    assert_int_equal(shp_acquire(p, &held, 0), 0);
    struct waiter_arg w = { .p = p };
    atomic_init(&w.done, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
    for (long i = 0; i < 100000000 && stats(p).waiters != 1; i++)
        sched_yield();
    assert_int_equal(stats(p).waiters, 1);
    /* Open the breaker: a failed probe-like connect from the pool's side. */
    atomic_store(&fb.connect_err, -ECONNREFUSED);
    shp__breaker_failure(p, -ECONNREFUSED);
    assert_int_equal(stats(p).breaker_open, 1);
    assert_int_equal(shp_release_broken(held), 0); /* frees the only slot */
    pthread_join(t, NULL);
    assert_int_equal(w.rc, -EHOSTDOWN);
    finish(p, &fb);
}

/* The reaper's probe closes the breaker once the backend answers. */
static void test_breaker_probe_closes_it(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_ops ops;
    shp_config cfg = base_cfg(0, 2);
    cfg.connect_attempts = 1;
    cfg.breaker_threshold = 1;
    cfg.breaker_probe_ns = 1 * MS;
    cfg.reaper_interval_ns = 1 * MS;
    shp_pool *p = make_pool(&fb, &ops, &cfg);
    atomic_store(&fb.connect_err, -ECONNREFUSED);
    shp_conn *c;
    assert_int_equal(shp_acquire(p, &c, 100 * MS), -ECONNREFUSED);
    assert_int_equal(stats(p).breaker_open, 1);
    atomic_store(&fb.connect_err, 0);
    bool closed = false;
    for (int i = 0; i < 10000 && !closed; i++) { /* polls the reaper's progress */
        closed = stats(p).breaker_open == 0;
        if (!closed) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
    }
    assert_true(closed);
    assert_int_equal(shp_acquire(p, &c, 1000 * MS), 0);
    assert_int_equal(shp_release(c), 0);
    finish(p, &fb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_retryable_errors),
        cmocka_unit_test(test_retry_then_success),
        cmocka_unit_test(test_retries_exhausted_return_connect_error),
        cmocka_unit_test(test_auth_error_not_retried),
        cmocka_unit_test(test_breaker_opens_and_fails_fast),
        cmocka_unit_test(test_breaker_open_still_serves_idle),
        cmocka_unit_test(test_breaker_open_wakes_waiter_with_free_capacity),
        cmocka_unit_test(test_breaker_probe_closes_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
