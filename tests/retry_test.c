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
#define FX_POOL_NAME "retrytest"
#include "fixture.h"
#include "pool_internal.h"
#include "retry.h"

#define MS 1000000LL

/* The fixture's pool config with a fast backoff (1 ms base, 4 ms cap). */
static fx *retry_fx(unsigned min, unsigned max)
{
    fx *f = fx_new(min, max);
    f->cfg.retry_base_ns = 1 * MS;
    f->cfg.retry_cap_ns = 4 * MS;
    return f;
}

/* retry_fx with one connect attempt per acquire and the breaker opening
 * after threshold consecutive failures, probing every probe_ns. */
#define NO_PROBE (3600 * 1000 * MS) /* no probe during a test */
static fx *breaker_fx(unsigned min, unsigned max, unsigned threshold, int64_t probe_ns)
{
    fx *f = retry_fx(min, max);
    f->cfg.connect_attempts = 1;
    f->cfg.breaker_threshold = threshold;
    f->cfg.breaker_probe_ns = probe_ns;
    return f;
}

/* Full jitter: attempt i waits in [0, min(cap, base << i)], and the draws
 * use the range (1000 draws all in the lower half: probability 2^-1000). */
static void test_backoff_bounds(void **state)
{
    (void)state;
    fx *f = retry_fx(0, 1); /* its config only: no pool */
    f->cfg.retry_base_ns = 10 * MS;
    f->cfg.retry_cap_ns = 80 * MS;
    for (unsigned a = 0; a < 8; a++) {
        int64_t ceiling = 10 * MS << a;
        if (ceiling > 80 * MS)
            ceiling = 80 * MS;
        int64_t max_seen = 0;
        for (int i = 0; i < 1000; i++) {
            int64_t d = shp__backoff_ns(&f->cfg, a);
            assert_true(d >= 0 && d <= ceiling);
            if (d > max_seen)
                max_seen = d;
        }
        assert_true(max_seen > ceiling / 2);
    }
    free(f);
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
    fx *f = retry_fx(0, 2);
    f->cfg.connect_attempts = 3;
    fx_start(f);
    shp_pool *p = f->pool;
    atomic_store(&f->fb.fail_next, 2);
    shp_conn *c;
    assert_int_equal(shp_acquire(p, &c, 2000 * MS), 0);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 3);
    assert_int_equal(stats_of(f).retries, 2);
    assert_int_equal(stats_of(f).breaker_open, 0);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

/* Attempts used up: the connect error, not a timeout. */
static void test_retries_exhausted_return_connect_error(void **state)
{
    (void)state;
    fx *f = retry_fx(0, 2);
    f->cfg.connect_attempts = 3;
    f->cfg.breaker_threshold = 0;
    fx_start(f);
    shp_pool *p = f->pool;
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    shp_conn *c;
    assert_int_equal(shp_acquire(p, &c, 2000 * MS), -ECONNREFUSED);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 3);
    assert_int_equal(stats_of(f).live, 0);
    fx_finish(f);
}

/* A permanent error (bad password, no such database, TLS missing, a host
 * name that does not resolve) is not retried: the backend's error at once,
 * after one connect, with no backoff. */
static void test_auth_error_not_retried(void **state)
{
    (void)state;
    static const int permanent[] = { -EACCES, -ENOENT, -EPROTONOSUPPORT, -ENXIO };
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++) {
        fx *f = retry_fx(0, 2);
        f->cfg.connect_attempts = 0; /* until the deadline, for transient errors */
        fx_start(f);
        shp_pool *p = f->pool;
        atomic_store(&f->fb.connect_err, permanent[i]);
        shp_conn *c;
        assert_int_equal(shp_acquire(p, &c, 5000 * MS), permanent[i]);
        assert_int_equal(atomic_load(&f->fb.connect_calls), 1);
        assert_int_equal(stats_of(f).retries, 0);
        fx_finish(f);
    }
}

/* K consecutive failures open the breaker; then an acquire that would
 * connect fails at once without calling connect. */
static void test_breaker_opens_and_fails_fast(void **state)
{
    (void)state;
    fx *f = breaker_fx(0, 2, 3, NO_PROBE);
    fx_start(f);
    shp_pool *p = f->pool;
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    shp_conn *c;
    for (int i = 0; i < 3; i++)
        assert_int_equal(shp_acquire(p, &c, 100 * MS), -ECONNREFUSED);
    shp_stats s = stats_of(f);
    assert_int_equal(s.breaker_open, 1);
    assert_int_equal(s.breaker_opens, 1);
    uint64_t calls = atomic_load(&f->fb.connect_calls);
    assert_int_equal(shp_acquire(p, &c, 1000 * MS), -EHOSTDOWN);
    assert_int_equal(shp_acquire(p, &c, 0), -EHOSTDOWN);
    assert_int_equal(atomic_load(&f->fb.connect_calls), calls);
    fx_finish(f);
}

/* While open, idle connections are still handed out, and an acquire at
 * max_size waits for a release instead of failing. */
static void test_breaker_open_still_serves_idle(void **state)
{
    (void)state;
    fx *f = breaker_fx(1, 2, 1, NO_PROBE);
    fx_start(f);
    shp_pool *p = f->pool;
    shp_conn *c1, *c2;
    assert_int_equal(shp_acquire(p, &c1, 0), 0); /* the prefilled one */
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    assert_int_equal(shp_acquire(p, &c2, 100 * MS), -ECONNREFUSED);
    assert_int_equal(stats_of(f).breaker_open, 1);
    assert_int_equal(shp_release(c1), 0);
    assert_int_equal(shp_acquire(p, &c1, 0), 0); /* idle: handed out while open */
    assert_int_equal(shp_release(c1), 0);
    fx_finish(f);
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
    fx *f = breaker_fx(1, 1, 1, NO_PROBE);
    fx_start(f);
    shp_pool *p = f->pool;
    shp_conn *held;
    assert_int_equal(shp_acquire(p, &held, 0), 0);
    struct waiter_arg w = { .p = p };
    atomic_init(&w.done, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
    for (long i = 0; i < 100000000 && stats_of(f).waiters != 1; i++)
        sched_yield();
    assert_int_equal(stats_of(f).waiters, 1);
    /* Open the breaker: a failed probe-like connect from the pool's side. */
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    shp__breaker_failure(p, -ECONNREFUSED);
    assert_int_equal(stats_of(f).breaker_open, 1);
    assert_int_equal(shp_release_broken(held), 0); /* frees the only slot */
    pthread_join(t, NULL);
    assert_int_equal(w.rc, -EHOSTDOWN);
    fx_finish(f);
}

/* The reaper's probe closes the breaker once the backend answers. */
static void test_breaker_probe_closes_it(void **state)
{
    (void)state;
    fx *f = breaker_fx(0, 2, 1, 1 * MS);
    f->cfg.reaper_interval_ns = 1 * MS;
    fx_start(f);
    shp_pool *p = f->pool;
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    shp_conn *c;
    assert_int_equal(shp_acquire(p, &c, 100 * MS), -ECONNREFUSED);
    assert_int_equal(stats_of(f).breaker_open, 1);
    atomic_store(&f->fb.connect_err, 0);
    bool closed = false;
    for (int i = 0; i < 10000 && !closed; i++) { /* polls the reaper's progress */
        closed = stats_of(f).breaker_open == 0;
        if (!closed) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
    }
    assert_true(closed);
    assert_int_equal(shp_acquire(p, &c, 1000 * MS), 0);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
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
