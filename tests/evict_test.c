/*
 * evict_test.c - shp_pool_evict: what it promises (idle connections
 * closed when it returns, borrowed ones on release, nothing older than the
 * evict handed out after it, even under churn), and against the reaper's
 * sweep: no connection is ever lost.
 *
 * The reaper takes a shard's idle connections off the stack, judges each,
 * and pushes the fresh ones back (reap_shard).  An evict that bumps the
 * generation between the judgement and the push makes shp__put_idle refuse
 * the connection; a refusal that is ignored leaves it IDLE on no shard,
 * counted live and never closed (the pool then serves max_size - 1 and
 * destroy returns -EBUSY with nothing borrowed).  The first test forces that
 * interleaving with a test point (lib/pool_internal.h); the second churns
 * evicts against a sweeping reaper and checks the books balance.  White-box:
 * it reads the connection's generation and state (pool_internal.h).
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
#define FX_POOL_NAME "evict"
#include "fixture.h"
#include "pool_internal.h"
#include "testutil.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL

/* ---- what evict promises ------------------------------------------------------------ */

static void test_evict(void **state)
{
    (void)state;
    fx *f = fx_new(2, 4); /* no validate-on-acquire: the fast path alone */
    fx_start(f);
    shp_conn *borrowed;
    assert_int_equal(shp_acquire(f->pool, &borrowed, -1), 0);
    uint64_t opened_before = atomic_load(&f->fb.opened);
    assert_int_equal(shp_pool_evict(f->pool), 0);
    /* When evict returns, the idle one is gone. */
    shp_metrics m = metrics_of(f);
    assert_int_equal(m.closes[SHP_CLOSE_EVICTED], 1);
    /* Nothing old is handed out again: a new acquire gets a new connection. */
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, -1), 0);
    assert_true(((fake_handle *)shp_conn_handle(c))->id > opened_before);
    /* The borrowed one goes when it comes back. */
    assert_int_equal(shp_release(borrowed), 0);
    m = metrics_of(f);
    assert_int_equal(m.closes[SHP_CLOSE_EVICTED], 2);
    assert_int_equal(shp_release(c), 0); /* a new one: kept */
    m = metrics_of(f);
    assert_int_equal(m.closes[SHP_CLOSE_EVICTED], 2);
    assert_int_equal(shp_pool_evict(NULL), -EINVAL);
    fx_finish(f);
}

struct evict_churn {
    shp_pool *pool;
    atomic_bool stop;
    int errors;
};

static void *evict_churn_main(void *arg)
{
    struct evict_churn *e = arg;
    while (!atomic_load(&e->stop)) {
        shp_conn *c;
        if (shp_acquire(e->pool, &c, 10 * NS_PER_S) != 0) {
            e->errors++;
            continue;
        }
        if (shp_release(c) != 0)
            e->errors++;
    }
    return NULL;
}

/* Evict while 16 threads churn: after each evict returns, an acquire never
 * gets a connection opened before it started - neither an idle one left on
 * a shard nor one pushed back by a release racing the evict. */
static void test_evict_under_load(void **state)
{
    (void)state;
    fx *f = fx_new(2, 8);
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    enum { T = 16 };
    pthread_t th[T];
    struct evict_churn e = { .pool = f->pool };
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&th[i], NULL, evict_churn_main, &e), 0);
    int stale = 0;
    for (int round = 0; round < 50; round++) {
        uint64_t before = atomic_load(&f->fb.next_id);
        assert_int_equal(shp_pool_evict(f->pool), 0);
        /* Hold every connection we can get without waiting: each must be
         * newer than the evict, except those borrowed during the evict
         * (at most T), which are closed on release, not handed out. */
        shp_conn *c[8];
        int n = 0;
        while (n < 8 && shp_acquire(f->pool, &c[n], 0) == 0)
            n++;
        for (int i = 0; i < n; i++) {
            if (((fake_handle *)shp_conn_handle(c[i]))->id <= before)
                stale++;
            assert_int_equal(shp_release(c[i]), 0);
        }
    }
    atomic_store(&e.stop, true);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(e.errors, 0);
    assert_int_equal(stale, 0);
    assert_true(metrics_of(f).closes[SHP_CLOSE_EVICTED] > 0);
    fx_finish(f);
}

/* ---- the forced interleaving ---------------------------------------------------------- */

/* The reaper, at SHP__TP_REAPER_KEEP for `target`, announces it and waits
 * (inside its read-side section) until evict has bumped the generation -
 * which evict does before its grace period, so evict then waits for us. */
static struct keep_race {
    shp_pool *pool;
    shp_conn *target;
    atomic_int reached;     /* the reaper is at the point */
    atomic_bool bumped;     /* it saw the new generation */
} race;

static void keep_hook(shp_pool *p, enum shp__test_point where, void *arg)
{
    if (where != SHP__TP_REAPER_KEEP || p != race.pool || arg != race.target ||
        atomic_exchange(&race.reached, 1) != 0)
        return;
    uint64_t gen = atomic_load(&p->evict_gen);
    int64_t give_up = now_ns() + 10 * NS_PER_S; /* only if evict never comes */
    while (atomic_load(&p->evict_gen) == gen && now_ns() < give_up)
        sched_yield();
    atomic_store(&race.bumped, atomic_load(&p->evict_gen) != gen);
}

/* Two idle connections on one shard: A due for a health check (so the
 * reaper sweeps the shard), B fresh (judged KEEP).  Evict lands between B's
 * judgement and its push back.  B must be closed (as evicted), not lost. */
static void test_evict_between_judgement_and_push(void **state)
{
    (void)state;
    fx *f = fx_new(0, 2);
    f->cfg.shards = 1;
    f->cfg.thread_cache = false;
    f->cfg.health_interval_ns = 3600 * NS_PER_S; /* due only when a test says so */
    f->cfg.idle_timeout_ns = 0;
    f->cfg.max_lifetime_ns = 0;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *a, *b;
    assert_int_equal(shp_acquire(f->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &b, 0), 0);
    assert_int_equal(shp_release(a), 0);
    assert_int_equal(shp_release(b), 0);

    race = (struct keep_race){ .pool = f->pool, .target = b };
    __atomic_store_n(&shp__test_hook, keep_hook, __ATOMIC_RELEASE);
    atomic_store(&b->last_checked, INT64_MAX / 2); /* fresh for an hour and more */
    atomic_store(&a->last_checked, INT64_MIN / 2); /* due: the next pass sweeps */

    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while (!atomic_load(&race.reached) && now_ns() < give_up)
        sched_yield();
    assert_true(atomic_load(&race.reached)); /* the reaper judged B fresh */
    assert_int_equal(shp_pool_evict(f->pool), 0);
    __atomic_store_n(&shp__test_hook, NULL, __ATOMIC_RELEASE);
    assert_true(atomic_load(&race.bumped)); /* evict landed inside the window */

    /* Both connections were made before the evict: both are closed by the
     * time it returns, none left counted live. */
    shp_stats st = stats_of(f);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.creations - st.closed, st.live);
    assert_int_equal(metrics_of(f).closes[SHP_CLOSE_EVICTED], 2);
    assert_int_equal(fake_open_now(&f->fb), 0);
    /* And the pool serves its whole max_size again. */
    assert_int_equal(shp_acquire(f->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &b, 0), 0);
    assert_int_equal(shp_release(a), 0);
    assert_int_equal(shp_release(b), 0);
    fx_finish(f); /* destroy(p, 0) == 0: nothing is out */
}

/* ---- a connect in flight across an evict ---------------------------------------------- */

/* The first connect waits until the test has evicted: the connection it
 * makes belongs to the generation before (say, the old primary).  The
 * acquire must not hand it out: it closes it and connects again. */
static struct {
    fake_backend *fb;
    shp_ops inner;
    atomic_int entered;
    atomic_bool evicted;
} slow;

static int slow_first_connect(void *ctx, void **h)
{
    (void)ctx;
    if (atomic_fetch_add(&slow.entered, 1) == 0) {
        int64_t give_up = now_ns() + 10 * NS_PER_S;
        while (!atomic_load(&slow.evicted) && now_ns() < give_up)
            sched_yield();
    }
    return slow.inner.connect(slow.inner.ctx, h);
}

struct acq { shp_pool *pool; shp_conn *got; int err; };

static void *acq_main(void *arg)
{
    struct acq *a = arg;
    a->err = shp_acquire(a->pool, &a->got, 10 * NS_PER_S);
    return NULL;
}

static void test_connect_in_flight_across_evict(void **state)
{
    (void)state;
    fx *f = fx_new(0, 2);
    memset(&slow, 0, sizeof slow);
    slow.inner = f->ops;
    f->ops.connect = slow_first_connect;
    fx_start(f);
    struct acq a = { .pool = f->pool };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, acq_main, &a), 0);
    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while (atomic_load(&slow.entered) == 0 && now_ns() < give_up)
        sched_yield();
    assert_int_equal(shp_pool_evict(f->pool), 0); /* returns with the connect still in flight */
    atomic_store(&slow.evicted, true);
    pthread_join(th, NULL);
    assert_int_equal(a.err, 0);
    assert_int_equal(atomic_load(&slow.entered), 2); /* connected again */
    assert_int_equal(((fake_handle *)shp_conn_handle(a.got))->id, 2);
    assert_int_equal(metrics_of(f).closes[SHP_CLOSE_EVICTED], 1);
    assert_int_equal(shp_release(a.got), 0);
    fx_finish(f);
}

/* ---- evicts against a sweeping reaper, under load ------------------------------------- */

struct churn {
    shp_pool *pool;
    atomic_bool stop;
    atomic_int errors;
};

static void *churn_main(void *arg)
{
    struct churn *e = arg;
    while (!atomic_load(&e->stop)) {
        shp_conn *c;
        int err = shp_acquire(e->pool, &c, 10 * NS_PER_S);
        if (err == 0)
            err = shp_release(c);
        if (err)
            atomic_fetch_add(&e->errors, 1);
    }
    return NULL;
}

/* 16 threads churn 8 connections while the reaper sweeps every millisecond
 * (every connection due for a check each pass) and the main thread evicts
 * in a loop: whatever interleavings occur, the books balance and the whole
 * pool can be borrowed at the end. */
static void test_evict_churn_with_sweeping_reaper(void **state)
{
    (void)state;
    enum { T = 16, MAX = 8 };
    fx *f = fx_new(2, MAX);
    f->cfg.reaper_interval_ns = NS_PER_MS;
    f->cfg.health_interval_ns = NS_PER_MS;
    fx_start(f);
    pthread_t th[T];
    struct churn e = { .pool = f->pool };
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn_main, &e), 0);
    for (int round = 0; round < 300; round++)
        assert_int_equal(shp_pool_evict(f->pool), 0);
    atomic_store(&e.stop, true);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&e.errors), 0);

    shp_stats st = stats_of(f);
    assert_int_equal(st.creations - st.closed, st.live);
    assert_int_equal(fake_open_now(&f->fb), st.live);
    shp_conn *c[MAX];
    for (int i = 0; i < MAX; i++)
        assert_int_equal(shp_acquire(f->pool, &c[i], 5 * NS_PER_S), 0);
    for (int i = 0; i < MAX; i++)
        assert_int_equal(shp_release(c[i]), 0);
    assert_true(metrics_of(f).closes[SHP_CLOSE_EVICTED] > 0);
    fx_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evict),
        cmocka_unit_test(test_evict_under_load),
        cmocka_unit_test(test_evict_between_judgement_and_push),
        cmocka_unit_test(test_connect_in_flight_across_evict),
        cmocka_unit_test(test_evict_churn_with_sweeping_reaper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
