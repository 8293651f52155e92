/*
 * reaper_test.c - the reaper: health checks, idle timeout, lifetime, and that
 * its passes neither check borrowed connections nor disturb the shards.
 * The helpers (owner-checked acq/rel, borrower threads, bounded polls) are in
 * tests/support/pooltest.h, the pool in tests/support/fixture.h.
 *
 * Every test makes its own pool and destroys it, and ends with no fake
 * connection open.  Threads synchronise with semaphores and barriers; a test
 * that needs a thread to be waiting inside shp_acquire polls
 * shp_pool_stats().waiters in a bounded loop.  No test asserts how long
 * anything took.  cmocka assertions are made on the main thread only.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <shardpool.h>

#include "fakeconn.h"
#include "fixture.h"
#include "pooltest.h"

static bool checked_often(fx *f, const shp_stats *s)
{
    (void)f;
    return s->health_checks >= 5;
}

/* The reaper checks idle connections only, never a borrowed one (I1). */
static void test_reaper_never_checks_borrowed(void **state)
{
    (void)state;
    fx *f = fx_new(2, 2);
    f->cfg.health_interval_ns = NS_PER_MS;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    fake_handle *h = fh(c);
    int before = atomic_load(&h->checks); /* may have been checked while idle */
    assert_true(poll_until(f, checked_often));
    assert_int_equal(atomic_load(&h->checks), before);
    assert_int_equal(atomic_load(&h->owner) != 0, 1);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

static bool broken_replaced(fx *f, const shp_stats *s)
{
    return atomic_load(&f->fb.closed) >= 1 && atomic_load(&f->fb.opened) >= 2 &&
           s->live == f->cfg.min_size && s->idle == f->cfg.min_size;
}

/* The reaper's health check closes an idle connection that fails it and
 * refills to min_size. */
static void test_reaper_health_check(void **state)
{
    (void)state;
    /* max 1: an acquire racing the reaper's check of the only connection
     * waits for it instead of opening a second one. */
    fx *f = fx_new(1, 1);
    f->cfg.health_interval_ns = NS_PER_MS;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    fake_handle *h = fh(c);
    uint64_t bad_id = h->id;
    assert_int_equal(rel(c), 0);
    atomic_store(&h->broken, 1); /* idle: the reaper's next check fails */
    assert_true(poll_until(f, broken_replaced));
    shp_stats s = stats_of(f);
    assert_true(s.health_checks >= 1);
    assert_true(s.health_failed >= 1);
    assert_true(atomic_load(&f->fb.check_calls) >= 1);
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    assert_true(fh(c)->id != bad_id);
    assert_int_equal(atomic_load(&fh(c)->broken), 0);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

static bool back_to_min(fx *f, const shp_stats *s)
{
    return s->live == f->cfg.min_size && s->idle == f->cfg.min_size &&
           fake_open_now(&f->fb) == f->cfg.min_size;
}

/* Idle connections beyond min_size are closed after idle_timeout_ns. */
static void test_idle_timeout_shrinks_to_min(void **state)
{
    (void)state;
    fx *f = fx_new(1, 4);
    f->cfg.idle_timeout_ns = NS_PER_MS;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *c[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(acq(f, &c[i], NS_PER_S), 0);
    assert_int_equal(stats_of(f).live, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rel(c[i]), 0);
    assert_true(poll_until(f, back_to_min));
    assert_true(atomic_load(&f->fb.closed) >= 3);
    shp_conn *x;
    assert_int_equal(acq(f, &x, NS_PER_S), 0);
    assert_int_equal(rel(x), 0);
    fx_finish(f);
}

static bool replaced_many(fx *f, const shp_stats *s)
{
    (void)s;
    return atomic_load(&f->fb.opened) >= 6 && atomic_load(&f->fb.closed) >= 4;
}

static bool at_min(fx *f, const shp_stats *s)
{
    return s->live == f->cfg.min_size;
}

/* Connections past max_lifetime_ns are replaced; min_size is kept. */
static void test_max_lifetime_replaces(void **state)
{
    (void)state;
    fx *f = fx_new(2, 4);
    f->cfg.max_lifetime_ns = NS_PER_MS;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    assert_true(poll_until(f, replaced_many));
    assert_true(poll_until(f, at_min));
    shp_stats s = stats_of(f);
    assert_true(s.live <= 4);
    assert_true(s.creations >= 6);
    shp_conn *c;
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* acquire(0)/release pairs on one thread: at least min_pairs, and for at
 * least min_ns, so that they overlap some thousands of reaper passes even
 * where pairs are fast (a run length for exposure, not a timing assertion).
 * Counts what acquire returned other than 0, and releases that were not 0. */
struct pairs {
    long n, eagain, other;
    int other_rc;
};

static struct pairs run_pairs(fx *f, long min_pairs, int64_t min_ns)
{
    struct pairs r = { 0, 0, 0, 0 };
    int64_t end = mono_ns() + min_ns;
    while (r.n < min_pairs || mono_ns() < end) {
        for (int i = 0; i < 1000; i++, r.n++) {
            shp_conn *c = NULL;
            int rc = shp_acquire(f->pool, &c, 0);
            if (rc == 0)
                rc = shp_release(c);
            if (rc == -EAGAIN) {
                r.eagain++;
            } else if (rc != 0) {
                r.other++;
                r.other_rc = rc;
            }
        }
    }
    return r;
}

/* A quiet pool config for the reaper tests below: a reaper that runs every
 * 200 us and has nothing to close or check. */
static fx *fx_new_fast_idle_reaper(unsigned min, unsigned max)
{
    fx *f = fx_new(min, max);
    f->cfg.reaper_interval_ns = 200 * 1000;
    f->cfg.idle_timeout_ns = 0;
    f->cfg.max_lifetime_ns = 0;
    f->cfg.health_interval_ns = 0;
    return f;
}

/* Whether CPUs 0 and 1 are both ours to pin to. */
static bool two_cpus(cpu_set_t *saved)
{
    return sched_getaffinity(0, sizeof *saved, saved) == 0 && CPU_COUNT(saved) >= 2 &&
           CPU_ISSET(0, saved) && CPU_ISSET(1, saved);
}

/* Creates f's pool from CPU 1, so that its reaper (which inherits the
 * creator's affinity) runs on CPU 1, then pins the caller to CPU 0: the
 * reaper's passes then run alongside the caller's acquires instead of
 * preempting them.  Returns whether both pinnings took; the pool is made
 * either way. */
static bool start_with_reaper_apart(fx *f, bool can_pin)
{
    bool apart = can_pin && pin_to_cpu(1);
    fx_start(f);
    return apart && pin_to_cpu(0);
}

/* A reaper pass with nothing to do leaves the shards alone: a lone thread
 * doing acquire/release pairs (at least 200000, over at least ~2500 reaper
 * passes) always finds the one idle connection, never sees an empty pool
 * (-EAGAIN, or a needless connect). */
static void test_no_needless_connect_during_reaper_pass(void **state)
{
    (void)state;
    enum { PAIRS = 200000 };
    cpu_set_t saved;
    bool can_pin = two_cpus(&saved);
    fx *f = fx_new_fast_idle_reaper(1, 4);
    start_with_reaper_apart(f, can_pin); /* pinned or not, the test holds */
    struct pairs r = run_pairs(f, PAIRS, 2500 * f->cfg.reaper_interval_ns);
    if (can_pin)
        sched_setaffinity(0, sizeof saved, &saved);
    shp_stats s = stats_of(f);
    assert_int_equal(r.other_rc, 0);
    assert_int_equal(r.other, 0);
    assert_int_equal(r.eagain, 0);
    assert_int_equal(s.creations, 1);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 1);
    assert_int_equal(s.acquisitions, r.n);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.idle, 1);
    fx_finish(f);
}

/* With two shards and the only user pinned to CPU 0 (the reaper on CPU 1),
 * the connection stays on CPU 0's shard across reaper passes: no steals,
 * no second connection. */
static void test_reaper_keeps_connection_on_its_shard(void **state)
{
    (void)state;
    enum { PAIRS = 200000 };
    cpu_set_t saved;
    if (!two_cpus(&saved)) {
        skip();
        return;
    }
    fx *f = fx_new_fast_idle_reaper(1, 4);
    f->cfg.shards = 2;
    bool pinned = start_with_reaper_apart(f, true);
    shp_stats s0 = { 0 }, s1 = { 0 };
    struct pairs r = { 0, 0, 0, 0 };
    if (pinned) {
        /* the prefill went to the creator's shard (CPU 1): bring it home */
        shp_conn *c;
        assert_int_equal(acq(f, &c, 0), 0);
        assert_int_equal(rel(c), 0);
        s0 = stats_of(f);
        r = run_pairs(f, PAIRS, 2500 * f->cfg.reaper_interval_ns);
        s1 = stats_of(f);
        pinned = sched_getcpu() == 0;
    }
    sched_setaffinity(0, sizeof saved, &saved);
    if (!pinned) {
        fx_finish(f);
        skip();
        return;
    }
    assert_int_equal(r.other_rc, 0);
    assert_int_equal(r.other, 0);
    assert_int_equal(r.eagain, 0);
    assert_int_equal(s1.steals - s0.steals, 0);
    assert_int_equal(s1.creations, 1);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 1);
    assert_int_equal(s1.acquisitions - s0.acquisitions, r.n);
    fx_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reaper_health_check),
        cmocka_unit_test(test_reaper_never_checks_borrowed),
        cmocka_unit_test(test_idle_timeout_shrinks_to_min),
        cmocka_unit_test(test_max_lifetime_replaces),
        cmocka_unit_test(test_no_needless_connect_during_reaper_pass),
        cmocka_unit_test(test_reaper_keeps_connection_on_its_shard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
