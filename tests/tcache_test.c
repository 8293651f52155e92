/*
 * tcache_test.c - the per-thread connection cache (lib/tcache.h,
 * its opening comment): a release parks the connection in the releasing
 * thread's slot (state CACHED) when its shard has other idle connections and
 * nobody waits; the thread's next acquire claims it back.  A parked
 * connection is idle, never lost: another thread at max_size, a waiter, the
 * reaper, evict and destroy all reach it.  White-box where a test must know
 * that a connection really was parked (its state word, pool_internal.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "fakeconn.h"
#define FX_POOL_NAME "tcache"
#include "fixture.h"
#include "pool_internal.h"
#include "tcache.h"
#include "testutil.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL

/* One shard, so that which connections sit on it does not depend on the
 * CPU a test runs on. */
static fx *one_shard(unsigned min, unsigned max)
{
    fx *f = fx_new(min, max);
    f->cfg.shards = 1;
    fx_start(f);
    return f;
}

static uint32_t state_of(shp_conn *c) { return atomic_load(&c->state); }

/* Acquires one connection and releases it, so that it is parked: the shard
 * keeps max - 1 idle ones.  Returns the parked connection. */
static shp_conn *park_one(fx *f)
{
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(state_of(c), SHP__CACHED);
    return c;
}

/* ---- a thread that acquires n connections (each with timeout_ns) --------------------- */

struct grab {
    fx *f;
    int n;
    int64_t timeout_ns;
    bool release;        /* release them before returning */
    shp_conn *got[4];
    int rc[4];
};

static void *grab_main(void *arg)
{
    struct grab *g = arg;
    for (int i = 0; i < g->n; i++)
        g->rc[i] = shp_acquire(g->f->pool, &g->got[i], g->timeout_ns);
    if (g->release)
        for (int i = 0; i < g->n; i++)
            if (g->rc[i] == 0)
                assert_int_equal(shp_release(g->got[i]), 0);
    return NULL;
}

static void grab_run(struct grab *g)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, grab_main, g), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* ---- tests --------------------------------------------------------------------------- */

/* A release parks the connection; the same thread's next acquire gets that
 * very connection back, and the pool counts it idle meanwhile. */
static void test_park_and_claim(void **state)
{
    (void)state;
    fx *f = one_shard(2, 2);
    shp_conn *c = park_one(f);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 2);
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.in_use, 0);
    shp_conn *again;
    assert_int_equal(shp_acquire(f->pool, &again, 0), 0);
    assert_ptr_equal(again, c);
    assert_int_equal(state_of(c), SHP__IN_USE);
    assert_int_equal(stats_of(f).in_use, 1);
    assert_int_equal(shp_release(again), 0);
    fx_finish(f);
}

/* The shard is empty: the release pushes instead of parking, so that other
 * threads find the connection where they look first. */
static void test_no_park_on_empty_shard(void **state)
{
    (void)state;
    fx *f = one_shard(1, 1);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(state_of(c), SHP__IDLE);
    fx_finish(f);
}

/* At max_size, another thread with timeout 0 still gets the connection
 * parked in this thread's cache: nothing idle is out of reach. */
static void test_other_thread_takes_parked(void **state)
{
    (void)state;
    fx *f = one_shard(2, 2);
    shp_conn *parked = park_one(f);
    struct grab g = { .f = f, .n = 3, .timeout_ns = 0 };
    grab_run(&g);
    assert_int_equal(g.rc[0], 0);
    assert_int_equal(g.rc[1], 0);
    assert_int_equal(g.rc[2], -EAGAIN);
    assert_true(g.got[0] == parked || g.got[1] == parked);
    assert_ptr_not_equal(g.got[0], g.got[1]);
    /* Our slot still names it, but it is borrowed: our acquire misses. */
    shp_conn *x;
    assert_int_equal(shp_acquire(f->pool, &x, 0), -EAGAIN);
    assert_int_equal(shp_release(g.got[0]), 0);
    assert_int_equal(shp_release(g.got[1]), 0);
    assert_int_equal(atomic_load(&f->fb.opened), 2);
    fx_finish(f);
}

/* A thread that parked a connection and exited leaves it idle, not lost. */
static void test_thread_exit_leaves_parked_idle(void **state)
{
    (void)state;
    fx *f = one_shard(2, 2);
    struct grab g = { .f = f, .n = 1, .timeout_ns = 0, .release = true };
    grab_run(&g);
    assert_int_equal(g.rc[0], 0);
    assert_int_equal(state_of(g.got[0]), SHP__CACHED);
    shp_conn *a, *b;
    assert_int_equal(shp_acquire(f->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &b, 0), 0);
    assert_true(a == g.got[0] || b == g.got[0]);
    assert_int_equal(shp_release(a), 0);
    assert_int_equal(shp_release(b), 0);
    assert_int_equal(atomic_load(&f->fb.opened), 2);
    fx_finish(f);
}

struct waiter {
    fx *f;
    shp_conn *got;
    int rc;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->rc = shp_acquire(w->f->pool, &w->got, 30 * NS_PER_S);
    return NULL;
}

/* A release while a thread waits serves the waiter with that connection
 * (the release sees the waiter and hands over instead of parking). */
static void test_release_with_waiter_hands_over(void **state)
{
    (void)state;
    fx *f = one_shard(2, 2);
    shp_conn *a, *b;
    assert_int_equal(shp_acquire(f->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &b, 0), 0);
    struct waiter w = { .f = f };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
    bool queued = false;
    for (long i = 0; i < 4000000 && !queued; i++) {
        queued = stats_of(f).waiters == 1;
        if (!queued)
            sched_yield();
    }
    assert_true(queued);
    assert_int_equal(shp_release(a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.rc, 0);
    assert_ptr_equal(w.got, a);
    assert_int_equal(shp_release(w.got), 0);
    assert_int_equal(shp_release(b), 0);
    fx_finish(f);
}

static bool live_is(fx *f, uint64_t n)
{
    for (int i = 0; i < 3000; i++) { /* ~3 s */
        if (stats_of(f).live == n)
            return true;
        nap_ms(1);
    }
    return false;
}

/* A parked connection its thread stopped using goes back to the shard at
 * the next reaper pass, where the idle timeout closes it. */
static void test_reaper_reaps_parked(void **state)
{
    (void)state;
    fx *f = fx_new(0, 2);
    f->cfg.shards = 1;
    f->cfg.idle_timeout_ns = NS_PER_MS;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *a, *b;
    assert_int_equal(shp_acquire(f->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &b, 0), 0);
    assert_int_equal(shp_release(a), 0); /* shard empty: pushed */
    assert_int_equal(shp_release(b), 0); /* parked */
    assert_true(live_is(f, 0));
    assert_int_equal(atomic_load(&f->fb.closed), 2);
    fx_finish(f);
}

/* shp_pool_evict closes the connections parked in thread caches too: when
 * it returns, no connection made before it is idle anywhere. */
static void test_evict_closes_parked(void **state)
{
    (void)state;
    fx *f = one_shard(0, 2);
    shp_conn *a, *b;
    assert_int_equal(shp_acquire(f->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &b, 0), 0);
    assert_int_equal(shp_release(a), 0);
    assert_int_equal(shp_release(b), 0);
    assert_int_equal(state_of(b), SHP__CACHED);
    assert_int_equal(shp_pool_evict(f->pool), 0);
    shp_metrics m = metrics_of(f);
    assert_int_equal(m.closes[SHP_CLOSE_EVICTED], 2);
    assert_int_equal(m.live, 0);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0); /* a new one */
    assert_int_equal(atomic_load(&f->fb.opened), 3);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

/* Destroy closes parked connections (fx_finish: nothing left open). */
static void test_destroy_closes_parked(void **state)
{
    (void)state;
    fx *f = one_shard(2, 2);
    park_one(f);
    fx_finish(f);
}

/* Pools whose slots collide: parking in the second leaves the first's
 * parked connection unnamed by any slot; it is still reached. */
static void test_slot_collision(void **state)
{
    (void)state;
    enum { N = SHP__TCACHE_WAYS + 1 };
    fx *f[N];
    for (int i = 0; i < N; i++)
        f[i] = one_shard(2, 2);
    /* SHP__TCACHE_WAYS + 1 consecutive ids: two of them share a slot */
    int x = -1, y = -1;
    for (int i = 0; i < N && x < 0; i++)
        for (int j = i + 1; j < N; j++)
            if (f[i]->pool->id % SHP__TCACHE_WAYS == f[j]->pool->id % SHP__TCACHE_WAYS) {
                x = i;
                y = j;
                break;
            }
    assert_true(x >= 0);
    shp_conn *px = park_one(f[x]);
    park_one(f[y]);
    assert_int_equal(state_of(px), SHP__CACHED);
    shp_conn *a, *b;
    assert_int_equal(shp_acquire(f[x]->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f[x]->pool, &b, 0), 0);
    assert_true(a == px || b == px);
    assert_int_equal(shp_release(a), 0);
    assert_int_equal(shp_release(b), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&f[i]->fb.opened), 2);
        fx_finish(f[i]);
    }
}

/* Releasing a parked connection again is -EALREADY and changes nothing. */
static void test_double_release_of_parked(void **state)
{
    (void)state;
    fx *f = one_shard(2, 2);
    shp_conn *c = park_one(f);
    assert_int_equal(shp_release(c), -EALREADY);
    assert_int_equal(shp_release_broken(c), -EALREADY);
    assert_int_equal(shp_pool_release(f->pool, c), -EALREADY);
    assert_int_equal(state_of(c), SHP__CACHED);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 2);
    assert_int_equal(s.idle, 2);
    assert_int_equal(atomic_load(&f->fb.closed), 0);
    fx_finish(f);
}

/* max_uses holds across parking: the cache hands the same connection back
 * until the release that reaches max_uses closes it. */
static void test_max_uses_with_parking(void **state)
{
    (void)state;
    fx *f = fx_new(2, 2);
    f->cfg.shards = 1;
    f->cfg.max_uses = 3;
    fx_start(f);
    shp_conn *c = park_one(f), *d;
    assert_int_equal(shp_acquire(f->pool, &d, 0), 0);
    assert_ptr_equal(d, c);
    assert_int_equal(shp_release(d), 0); /* 2 uses: parked again */
    assert_int_equal(state_of(c), SHP__CACHED);
    assert_int_equal(shp_acquire(f->pool, &d, 0), 0);
    assert_ptr_equal(d, c);
    assert_int_equal(shp_release(d), 0); /* 3 uses: closed */
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    fx_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_park_and_claim),
        cmocka_unit_test(test_no_park_on_empty_shard),
        cmocka_unit_test(test_other_thread_takes_parked),
        cmocka_unit_test(test_thread_exit_leaves_parked_idle),
        cmocka_unit_test(test_release_with_waiter_hands_over),
        cmocka_unit_test(test_reaper_reaps_parked),
        cmocka_unit_test(test_evict_closes_parked),
        cmocka_unit_test(test_destroy_closes_parked),
        cmocka_unit_test(test_slot_collision),
        cmocka_unit_test(test_double_release_of_parked),
        cmocka_unit_test(test_max_uses_with_parking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
