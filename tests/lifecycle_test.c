/*
 * lifecycle_test.c - create (prefill, and the reaper's retry of a failed
 * prefill), shutdown, destroy (drain, late releases, waiters woken) and
 * destroy racing acquires.
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

/* ---- basics ------------------------------------------------------------------------ */

/* create opens min_size connections. */
static void test_prefill_to_min(void **state)
{
    (void)state;
    fx *f = fx_make(3, 8);
    assert_int_equal(atomic_load(&f->fb.opened), 3);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 3);
    assert_int_equal(s.idle, 3);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.creations, 3);
    fx_finish(f);
}

static bool prefilled(fx *f, const shp_stats *s)
{
    return s->live == f->cfg.min_size && s->idle == f->cfg.min_size &&
           fake_open_now(&f->fb) == f->cfg.min_size;
}

/* A failed prefill does not fail create; the reaper fills up later. */
static void test_prefill_failure_retried_by_reaper(void **state)
{
    (void)state;
    fx *f = fx_new(2, 4);
    f->cfg.reaper_interval_ns = NS_PER_MS;
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    fx_start(f);
    shp_stats s = stats_of(f); /* live may count a connect of the reaper */
    assert_int_equal(s.idle, 0);
    assert_true(s.connect_failures >= 1);
    assert_int_equal(atomic_load(&f->fb.opened), 0);
    atomic_store(&f->fb.connect_err, 0);
    assert_true(poll_until(f, prefilled));
    fx_finish(f);
}

/* ---- shutdown ------------------------------------------------------------------------- */

/* shp_pool_shutdown keeps the object: acquires answer -ESHUTDOWN, stats
 * still work, a connection borrowed across the deadline is closed by its
 * late release, and destroy then frees the pool (0). */
static void test_shutdown_then_destroy(void **state)
{
    (void)state;
    fx *f = fx_make(2, 4);
    shp_conn *held;
    assert_int_equal(acq(f, &held, 0), 0);
    assert_int_equal(shp_pool_shutdown(f->pool, 0), -EBUSY);
    assert_int_equal(shp_pool_shutdown(f->pool, 0), -EALREADY);

    shp_conn *c = NULL;
    assert_int_equal(shp_acquire(f->pool, &c, 0), -ESHUTDOWN);
    assert_int_equal(shp_acquire(f->pool, &c, 1000000), -ESHUTDOWN);
    assert_null(c);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 1);        /* only the borrowed one is left */
    assert_int_equal(s.in_use, 1);
    assert_int_equal(fake_open_now(&f->fb), 1);

    assert_int_equal(rel(held), -ESHUTDOWN);
    assert_int_equal(fake_open_now(&f->fb), 0);
    assert_int_equal(stats_of(f).live, 0);
    assert_int_equal(shp_pool_destroy(f->pool, 0), 0);
    shp_quiesce();
    assert_int_equal(atomic_load(&f->fb.bad_close), 0);
    free(f);
}

/* destroy with connections still borrowed at its deadline returns -EBUSY; a
 * waiter is woken with -ESHUTDOWN; the borrowed connections stay valid, and
 * their late releases return -ESHUTDOWN and close them. */
static void test_destroy_busy_then_late_release(void **state)
{
    (void)state;
    fx *f = fx_make(0, 2);
    shp_conn *c1, *c2;
    assert_int_equal(acq(f, &c1, 0), 0);
    assert_int_equal(acq(f, &c2, 0), 0);
    fake_handle *h1 = fh(c1), *h2 = fh(c2);
    borrower *w = borrower_start(f, 5 * NS_PER_S, false, NULL);
    assert_true(wait_waiters(f, 1));

    assert_int_equal(shp_pool_destroy(f->pool, 0), -EBUSY);
    borrower_wait(w);
    int wrc = atomic_load(&w->rc);
    borrower_free(w);
    assert_int_equal(wrc, -ESHUTDOWN);

    /* still valid for their borrowers */
    assert_int_equal(fake_open_now(&f->fb), 2);
    assert_true(h1->magic == FAKE_MAGIC);
    assert_true(h2->magic == FAKE_MAGIC);
    assert_ptr_equal(shp_conn_handle(c1), h1);

    tag_drop(h1);
    assert_int_equal(shp_release(c1), -ESHUTDOWN);
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    tag_drop(h2);
    assert_int_equal(shp_release_broken(c2), -ESHUTDOWN);
    assert_int_equal(atomic_load(&f->fb.closed), 2);

    shp_quiesce();
    assert_int_equal(fake_open_now(&f->fb), 0);
    assert_int_equal(atomic_load(&f->fb.bad_close), 0);
    free(f);
}

/* destroy closes idle connections at once, even with others borrowed. */
static void test_destroy_closes_idle_keeps_borrowed(void **state)
{
    (void)state;
    fx *f = fx_make(2, 4);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    assert_int_equal(fake_open_now(&f->fb), 2);
    assert_int_equal(shp_pool_destroy(f->pool, 0), -EBUSY);
    assert_int_equal(fake_open_now(&f->fb), 1); /* the idle one is closed */
    assert_true(fh(c)->magic == FAKE_MAGIC);
    tag_drop(fh(c));
    assert_int_equal(shp_release(c), -ESHUTDOWN);
    shp_quiesce();
    assert_int_equal(fake_open_now(&f->fb), 0);
    assert_int_equal(atomic_load(&f->fb.bad_close), 0);
    free(f);
}

/* While destroy drains (waiting forever), acquire fails with -ESHUTDOWN;
 * the borrowed connection's release lets destroy finish with 0. */
struct destroyer {
    shp_pool *pool;
    sem_t started;
    atomic_int rc;
};

static void *destroyer_main(void *p)
{
    struct destroyer *d = p;
    sem_post(&d->started);
    atomic_store(&d->rc, shp_pool_destroy(d->pool, -1));
    return NULL;
}

static void test_destroy_drains_then_returns_0(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c, *x;
    assert_int_equal(acq(f, &c, 0), 0);
    struct destroyer d = { .pool = f->pool };
    atomic_init(&d.rc, 1);
    sem_init(&d.started, 0, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, destroyer_main, &d), 0);
    sem_wait(&d.started);
    /* destroy cannot return while c is borrowed, so the pool is still
     * there to be asked; before shutdown starts the answer is -EAGAIN. */
    int rc = -EAGAIN, other = 0;
    for (long i = 0; i < 4000000; i++) {
        rc = shp_acquire(f->pool, &x, 0);
        if (rc == -ESHUTDOWN)
            break;
        if (rc != -EAGAIN) {
            other = rc;
            break;
        }
        sched_yield();
    }
    int destroy_early = atomic_load(&d.rc) != 1;
    assert_true(fh(c)->magic == FAKE_MAGIC);
    tag_drop(fh(c));
    int rrc = shp_release(c);
    pthread_join(t, NULL);
    sem_destroy(&d.started);
    assert_int_equal(other, 0);
    assert_int_equal(rc, -ESHUTDOWN);
    assert_false(destroy_early);
    assert_true(rrc == 0 || rrc == -ESHUTDOWN);
    assert_int_equal(atomic_load(&d.rc), 0);
    assert_int_equal(fake_open_now(&f->fb), 0);
    shp_quiesce();
    assert_int_equal(atomic_load(&f->fb.bad_close), 0);
    free(f);
}

/* The fake backend with a health check that can be held: while armed, the
 * next check posts `entered` and blocks until `go` is posted. */
typedef struct held_check {
    shp_ops fake;
    atomic_int armed;
    sem_t entered, go;
} held_check;

static int held_connect(void *ctx, void **handle)
{
    held_check *hc = ctx;
    return hc->fake.connect(hc->fake.ctx, handle);
}

static void held_close(void *ctx, void *handle)
{
    held_check *hc = ctx;
    hc->fake.close(hc->fake.ctx, handle);
}

static int held_reset(void *ctx, void *handle)
{
    held_check *hc = ctx;
    return hc->fake.reset(hc->fake.ctx, handle);
}

static int held_check_cb(void *ctx, void *handle)
{
    held_check *hc = ctx;
    if (atomic_exchange(&hc->armed, 0)) {
        sem_post(&hc->entered);
        sem_wait_intr(&hc->go);
    }
    return hc->fake.check(hc->fake.ctx, handle);
}

static void held_init(held_check *hc, fx *f)
{
    hc->fake = fake_ops(&f->fb);
    atomic_init(&hc->armed, 0);
    sem_init(&hc->entered, 0, 0);
    sem_init(&hc->go, 0, 0);
    f->ops = (shp_ops){ .connect = held_connect, .close = held_close,
                        .check = held_check_cb, .reset = held_reset, .ctx = hc };
}

/* destroy wakes waiters with -ESHUTDOWN before it stops the reaper: a
 * waiter returns while the reaper is still blocked inside a health check
 * (of the only connection, which is why the waiter waits), and destroy
 * finishes with 0 once the check returns. */
static void test_waiters_woken_before_reaper_stops(void **state)
{
    (void)state;
    fx *f = fx_new(1, 1);
    f->cfg.health_interval_ns = NS_PER_MS;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    held_check hc;
    held_init(&hc, f);
    atomic_store(&hc.armed, 1); /* the reaper's first check blocks */
    fx_start(f);

    bool in_check = sem_wait_bounded(&hc.entered, 10);
    uint64_t checking = in_check ? stats_of(f).checking : 0;
    borrower *w = NULL;
    bool queued = false, woke = false;
    int destroy_rc_while_held = 1;
    struct destroyer d = { .pool = f->pool };
    atomic_init(&d.rc, 1);
    sem_init(&d.started, 0, 0);
    pthread_t t;
    if (in_check) {
        /* max 1 and the one connection is being checked: the acquirer waits */
        w = borrower_start(f, 60 * NS_PER_S, true, NULL);
        queued = wait_waiters(f, 1);
        assert_int_equal(pthread_create(&t, NULL, destroyer_main, &d), 0);
        sem_wait(&d.started);
        woke = sem_wait_bounded(&w->got, 10);
        /* destroy cannot be done: it has a reaper to stop */
        destroy_rc_while_held = atomic_load(&d.rc);
    }
    atomic_store(&hc.armed, 0);
    sem_post(&hc.go); /* let the check, the reaper and destroy finish */
    if (!in_check) {
        fx_finish(f);
        sem_destroy(&hc.entered);
        sem_destroy(&hc.go);
        fail_msg("the reaper never ran the health check");
    }
    if (!woke)
        sem_wait(&w->got);
    sem_post(&w->may_release); /* if it did get a connection, give it back */
    pthread_join(t, NULL);
    borrower_wait(w);
    int wrc = atomic_load(&w->rc);
    borrower_free(w);
    sem_destroy(&d.started);

    assert_int_equal(checking, 1);
    assert_true(queued);
    assert_true(woke); /* not only after the check was let go */
    assert_int_equal(wrc, -ESHUTDOWN);
    assert_int_equal(destroy_rc_while_held, 1);
    assert_int_equal(atomic_load(&d.rc), 0);
    assert_int_equal(fake_open_now(&f->fb), 0);
    shp_quiesce();
    assert_int_equal(fake_open_now(&f->fb), 0);
    assert_int_equal(atomic_load(&f->fb.bad_close), 0);
    assert_true(atomic_load(&f->fb.check_calls) >= 1);
    sem_destroy(&hc.entered);
    sem_destroy(&hc.go);
    free(f);
}

/* Acquirers racing destroy.  Workers loop acquire/release until acquire
 * says -ESHUTDOWN; the main thread destroys the pool at a random point.
 *
 * The contract forbids any call on the pool after destroy has returned
 * (bar releasing what was borrowed at its deadline), yet a worker between
 * its release and its next acquire holds nothing that keeps destroy from
 * returning.  So one more connection, the sentinel, is borrowed for the
 * whole round by a thread that gives it back only after every worker has
 * stopped: destroy cannot return 0 before that, and when it returns -EBUSY
 * the sentinel's orphan keeps the pool's memory alive until then.  In every
 * fifth round the sentinel is held past destroy's deadline as well, so that
 * -EBUSY and the late release of an orphan happen every run. */
enum { RD_THREADS = 16, RD_ROUNDS = 20, RD_MAX_ITER = 1000000 };

struct race_destroy {
    shp_pool *pool;
    shp_conn *sentinel;
    bool hold_past_destroy;
    atomic_int started;
    atomic_long acquires;        /* acquire calls returned, all workers */
    atomic_int destroy_rc;
    atomic_int destroy_done;     /* set after destroy_rc, once destroy returned */
    sem_t worker_done;           /* each worker posts once it stopped */
    sem_t destroyed;
    atomic_int sentinel_rc;
    /* what the workers saw */
    atomic_int bad_acquire, bad_acquire_rc;
    atomic_int bad_release, bad_release_rc;
    atomic_int late_release_not_shutdown;
    atomic_int shared;
    atomic_int never_shut_down;
};

static void *rd_worker(void *arg)
{
    struct race_destroy *rd = arg;
    atomic_fetch_add(&rd->started, 1);
    bool shut_down = false;
    long i;
    for (i = 0; i < RD_MAX_ITER && !atomic_load(&rd->destroy_done); i++) {
        shp_conn *c = NULL;
        int rc = shp_acquire(rd->pool, &c, 10 * NS_PER_MS);
        atomic_fetch_add(&rd->acquires, 1);
        if (rc == -ESHUTDOWN) {
            shut_down = true;
            break;
        }
        if (rc == -ETIMEDOUT || rc == -EAGAIN)
            continue;
        if (rc != 0) {
            atomic_fetch_add(&rd->bad_acquire, 1);
            atomic_store(&rd->bad_acquire_rc, rc);
            continue;
        }
        fake_handle *h = shp_conn_handle(c);
        if (!h || h->magic != FAKE_MAGIC || !tag_take(h)) {
            atomic_fetch_add(&rd->shared, 1);
            continue; /* not ours to release */
        }
        if (i % 4 == 0)
            sched_yield();
        tag_drop(h);
        bool after_destroy = atomic_load(&rd->destroy_done);
        rc = i % 31 == 30 ? shp_release_broken(c) : shp_release(c);
        if (rc != 0 && rc != -ESHUTDOWN) {
            atomic_fetch_add(&rd->bad_release, 1);
            atomic_store(&rd->bad_release_rc, rc);
        }
        if (after_destroy && atomic_load(&rd->destroy_rc) == -EBUSY && rc != -ESHUTDOWN)
            atomic_fetch_add(&rd->late_release_not_shutdown, 1);
    }
    /* Stopping because destroy has returned is not a failure (this worker
     * sat out the whole drain); running out of iterations is. */
    if (!shut_down && i == RD_MAX_ITER)
        atomic_fetch_add(&rd->never_shut_down, 1);
    sem_post(&rd->worker_done);
    return NULL;
}

static void *rd_sentinel(void *arg)
{
    struct race_destroy *rd = arg;
    for (int i = 0; i < RD_THREADS; i++)
        sem_wait_intr(&rd->worker_done);
    if (rd->hold_past_destroy)
        sem_wait_intr(&rd->destroyed);
    tag_drop(shp_conn_handle(rd->sentinel));
    atomic_store(&rd->sentinel_rc, shp_release(rd->sentinel));
    return NULL;
}

static uint64_t rd_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_acquire_racing_destroy(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL | 1;
    uint64_t rng = seed;
    for (int round = 0; round < RD_ROUNDS; round++) {
        /* max 4 for the workers plus the sentinel; min 1 so the reaper
         * refills (connects) while destroy runs */
        fx *f = fx_new(1, RD_THREADS / 4 + 1);
        f->cfg.reaper_interval_ns = NS_PER_MS;
        fx_start(f);
        struct race_destroy rd = { .pool = f->pool, .hold_past_destroy = round % 5 == 4 };
        atomic_init(&rd.started, 0);
        atomic_init(&rd.acquires, 0);
        atomic_init(&rd.destroy_rc, 1);
        atomic_init(&rd.destroy_done, 0);
        atomic_init(&rd.sentinel_rc, 1);
        atomic_init(&rd.bad_acquire, 0);
        atomic_init(&rd.bad_acquire_rc, 0);
        atomic_init(&rd.bad_release, 0);
        atomic_init(&rd.bad_release_rc, 0);
        atomic_init(&rd.late_release_not_shutdown, 0);
        atomic_init(&rd.shared, 0);
        atomic_init(&rd.never_shut_down, 0);
        sem_init(&rd.worker_done, 0, 0);
        sem_init(&rd.destroyed, 0, 0);
        assert_int_equal(acq(f, &rd.sentinel, 0), 0);

        pthread_t sentinel, t[RD_THREADS];
        assert_int_equal(pthread_create(&sentinel, NULL, rd_sentinel, &rd), 0);
        for (int i = 0; i < RD_THREADS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, rd_worker, &rd), 0);
        for (long i = 0; i < 40000000 && atomic_load(&rd.started) < RD_THREADS; i++)
            sched_yield();
        /* a random point: after 0..~20000 acquires of the workers */
        long target = (long)(rd_rand(&rng) % 20000);
        for (long i = 0; i < 40000000 && atomic_load(&rd.acquires) < target; i++)
            sched_yield();
        int drc = shp_pool_destroy(f->pool, NS_PER_S);
        atomic_store(&rd.destroy_rc, drc);
        atomic_store(&rd.destroy_done, 1);
        sem_post(&rd.destroyed);
        for (int i = 0; i < RD_THREADS; i++)
            pthread_join(t[i], NULL);
        pthread_join(sentinel, NULL);
        sem_destroy(&rd.worker_done);
        sem_destroy(&rd.destroyed);
        shp_quiesce();

        uint64_t open_now = fake_open_now(&f->fb);
        uint64_t bad_close = atomic_load(&f->fb.bad_close);
        free(f);
        if (drc != 0 && drc != -EBUSY)
            fail_msg("round %d (seed %llu): destroy returned %d", round,
                     (unsigned long long)seed, drc);
        if (rd.hold_past_destroy && drc != -EBUSY)
            fail_msg("round %d: destroy returned %d with the sentinel borrowed", round, drc);
        if (atomic_load(&rd.bad_acquire))
            fail_msg("round %d (seed %llu): %d acquires returned e.g. %d", round,
                     (unsigned long long)seed, atomic_load(&rd.bad_acquire),
                     atomic_load(&rd.bad_acquire_rc));
        if (atomic_load(&rd.bad_release))
            fail_msg("round %d (seed %llu): %d releases returned e.g. %d", round,
                     (unsigned long long)seed, atomic_load(&rd.bad_release),
                     atomic_load(&rd.bad_release_rc));
        if (atomic_load(&rd.late_release_not_shutdown))
            fail_msg("round %d: %d releases after destroy's -EBUSY were not -ESHUTDOWN", round,
                     atomic_load(&rd.late_release_not_shutdown));
        if (atomic_load(&rd.shared))
            fail_msg("round %d: a connection was handed to two borrowers", round);
        if (atomic_load(&rd.never_shut_down))
            fail_msg("round %d: %d workers stopped without seeing -ESHUTDOWN", round,
                     atomic_load(&rd.never_shut_down));
        if (atomic_load(&rd.sentinel_rc) != -ESHUTDOWN)
            fail_msg("round %d: the sentinel's release returned %d, not -ESHUTDOWN", round,
                     atomic_load(&rd.sentinel_rc));
        if (open_now != 0)
            fail_msg("round %d (seed %llu, destroy %d): %llu fake connections left open", round,
                     (unsigned long long)seed, drc, (unsigned long long)open_now);
        if (bad_close != 0)
            fail_msg("round %d: %llu closes of a bad handle", round,
                     (unsigned long long)bad_close);
    }
}

/* Shutdown wakes every queued waiter with -ESHUTDOWN, in both handoff
 * modes. */
static void test_shutdown_wakes_waiters_both_modes(void **state)
{
    (void)state;
    enum { W = 4 };
    const int64_t modes[] = { 0, 10 * NS_PER_MS };
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        fx *f = fx_new(0, 2);
        f->cfg.handoff_after_ns = modes[k];
        fx_start(f);
        shp_conn *c[2];
        assert_int_equal(acq(f, &c[0], 0), 0);
        assert_int_equal(acq(f, &c[1], 0), 0);
        borrower *w[W];
        for (int i = 0; i < W; i++)
            w[i] = borrower_start(f, 60 * NS_PER_S, false, NULL);
        bool queued = wait_waiters(f, W);
        int src = shp_pool_shutdown(f->pool, 0);
        int wrc[W];
        for (int i = 0; i < W; i++) {
            borrower_wait(w[i]);
            wrc[i] = atomic_load(&w[i]->rc);
            borrower_free(w[i]);
        }
        shp_stats s = stats_of(f);
        assert_true(queued);
        assert_int_equal(src, -EBUSY);
        for (int i = 0; i < W; i++)
            assert_int_equal(wrc[i], -ESHUTDOWN);
        assert_int_equal(s.waiters, 0);
        assert_int_equal(rel(c[0]), -ESHUTDOWN);
        assert_int_equal(rel(c[1]), -ESHUTDOWN);
        assert_int_equal(shp_pool_destroy(f->pool, 0), 0);
        shp_quiesce();
        assert_int_equal(fake_open_now(&f->fb), 0);
        assert_int_equal(atomic_load(&f->fb.bad_close), 0);
        free(f);
    }
}

/* Shutdown while 16 threads churn on a pool of 2, in both handoff modes:
 * waiters are queued, woken to retry, or between the two when it comes;
 * every thread's acquire ends with -ESHUTDOWN (none waits out its 60 s),
 * releases answer 0 or -ESHUTDOWN, and the drain returns 0. */
struct sdchurn {
    fx *f;
    atomic_long cycles;
    atomic_int bad;          /* an acquire or release result out of contract */
    atomic_int shared;
    atomic_int shut_down;    /* threads whose acquire said -ESHUTDOWN */
};

static void *sdchurn_main(void *p)
{
    struct sdchurn *sd = p;
    for (long i = 0; i < 100000000L; i++) {
        shp_conn *c = NULL;
        int rc = shp_acquire(sd->f->pool, &c, 60 * NS_PER_S);
        if (rc == -ESHUTDOWN) {
            atomic_fetch_add(&sd->shut_down, 1);
            return NULL;
        }
        if (rc != 0) {
            atomic_fetch_add(&sd->bad, 1);
            return NULL;
        }
        fake_handle *h = shp_conn_handle(c);
        if (!h || h->magic != FAKE_MAGIC || !tag_take(h)) {
            atomic_fetch_add(&sd->shared, 1);
            return NULL;
        }
        if (i % 3 == 0)
            sched_yield();
        tag_drop(h);
        rc = shp_release(c);
        if (rc != 0 && rc != -ESHUTDOWN)
            atomic_fetch_add(&sd->bad, 1);
        atomic_fetch_add(&sd->cycles, 1);
    }
    return NULL;
}

static void test_shutdown_during_churn_both_modes(void **state)
{
    (void)state;
    enum { T = 16 };
    const int64_t modes[] = { 0, NS_PER_MS, 60 * NS_PER_S };
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        fx *f = fx_new(0, 2);
        f->cfg.handoff_after_ns = modes[k];
        fx_start(f);
        struct sdchurn sd = { .f = f };
        atomic_init(&sd.cycles, 0);
        atomic_init(&sd.bad, 0);
        atomic_init(&sd.shared, 0);
        atomic_init(&sd.shut_down, 0);
        pthread_t t[T];
        for (int i = 0; i < T; i++)
            assert_int_equal(pthread_create(&t[i], NULL, sdchurn_main, &sd), 0);
        /* Let it churn a while (bounded), so that waiters have queued. */
        for (long i = 0; i < 4000000 && atomic_load(&sd.cycles) < 3000; i++)
            sched_yield();
        long before = atomic_load(&sd.cycles);
        int src = shp_pool_shutdown(f->pool, -1);
        for (int i = 0; i < T; i++)
            pthread_join(t[i], NULL);
        shp_stats s = stats_of(f);
        assert_true(before >= 3000);
        assert_int_equal(src, 0);
        assert_int_equal(atomic_load(&sd.bad), 0);
        assert_int_equal(atomic_load(&sd.shared), 0);
        assert_int_equal(atomic_load(&sd.shut_down), T);
        assert_int_equal(s.waiters, 0);
        assert_int_equal(s.live, 0);
        assert_int_equal(s.timeouts, 0);
        assert_int_equal(shp_pool_destroy(f->pool, 0), 0);
        shp_quiesce();
        assert_int_equal(fake_open_now(&f->fb), 0);
        assert_int_equal(atomic_load(&f->fb.bad_close), 0);
        free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefill_to_min),
        cmocka_unit_test(test_shutdown_then_destroy),
        cmocka_unit_test(test_prefill_failure_retried_by_reaper),
        cmocka_unit_test(test_destroy_busy_then_late_release),
        cmocka_unit_test(test_destroy_closes_idle_keeps_borrowed),
        cmocka_unit_test(test_destroy_drains_then_returns_0),
        cmocka_unit_test(test_waiters_woken_before_reaper_stops),
        cmocka_unit_test(test_acquire_racing_destroy),
        cmocka_unit_test(test_shutdown_wakes_waiters_both_modes),
        cmocka_unit_test(test_shutdown_during_churn_both_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
