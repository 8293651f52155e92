/*
 * pool_test.c - the behaviour of shp_pool (include/shardpool/pool.h), one
 * behaviour per test, against the fault-injecting fake backend.
 *
 * Every test makes its own pool and destroys it, and ends with no fake
 * connection open.  Threads synchronise with semaphores and barriers; a test
 * that needs a thread to be waiting inside shp_acquire polls
 * shp_pool_stats().waiters in a bounded loop.  Reaper behaviour (health
 * checks, idle timeout, lifetime) is observed by polling a condition in a
 * bounded loop.  No test asserts how long anything took.
 *
 * cmocka assertions are made on the main thread only: helper threads record
 * what they saw, the main thread checks it after joining them.
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

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

/* ---- fixture: tests/support/fixture.h ------------------------------------------- */

static fake_handle *fh(shp_conn *c)
{
    fake_handle *h = shp_conn_handle(c);
    assert_non_null(h);
    assert_true(h->magic == FAKE_MAGIC);
    return h;
}

/* Owner tags: a borrower stamps the handle; finding it already stamped means
 * two borrowers hold one connection (I1). */
static atomic_uint_fast64_t next_tag = 1;

static bool tag_take(fake_handle *h)
{
    uint64_t expect = 0;
    uint64_t tag = atomic_fetch_add(&next_tag, 1);
    return atomic_compare_exchange_strong(&h->owner, &expect, tag);
}

static void tag_drop(fake_handle *h)
{
    atomic_store(&h->owner, 0);
}

/* Acquire on the main thread: rc, and for 0 a valid, unshared handle. */
static int acq(fx *f, shp_conn **c, int64_t timeout_ns)
{
    *c = NULL;
    int rc = shp_acquire(f->pool, c, timeout_ns);
    if (rc == 0) {
        assert_non_null(*c);
        assert_ptr_equal(shp_conn_pool(*c), f->pool);
        fake_handle *h = fh(*c);
        if (!tag_take(h))
            fail_msg("connection id %llu handed to two borrowers",
                     (unsigned long long)h->id);
    }
    return rc;
}

static int rel(shp_conn *c)
{
    tag_drop(fh(c));
    return shp_release(c);
}

static int rel_broken(shp_conn *c)
{
    tag_drop(fh(c));
    return shp_release_broken(c);
}

static void nap_ns(int64_t ns)
{
    struct timespec ts = { .tv_sec = ns / NS_PER_S, .tv_nsec = ns % NS_PER_S };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Polls until stats.waiters == n; bounded.  Returns whether it was seen. */
static bool wait_waiters(fx *f, uint64_t n)
{
    for (long i = 0; i < 4000000; i++) {
        if (stats_of(f).waiters == n)
            return true;
        sched_yield();
    }
    return false;
}

/* Polls a condition about the pool every millisecond, at most ~1.5 s. */
typedef bool (*pool_pred)(fx *f, const shp_stats *s);

static bool poll_until(fx *f, pool_pred pred)
{
    for (int i = 0; i < 1500; i++) {
        shp_stats s = stats_of(f);
        if (pred(f, &s))
            return true;
        nap_ns(NS_PER_MS);
    }
    return false;
}

/* ---- a helper thread that acquires once ------------------------------------------ */

typedef struct borrower {
    fx *f;
    int64_t timeout_ns;
    bool hold;               /* after acquiring, wait for may_release, then release */
    atomic_int *seq;         /* order of acquisition among borrowers, if set */
    sem_t started, got, may_release;
    pthread_t thread;
    bool joined;
    /* results, published before posting got */
    atomic_int rc;
    atomic_int order;
    atomic_int release_rc;
    _Atomic uint64_t conn_id;
    shp_conn *_Atomic conn;
} borrower;

static void *borrower_main(void *p)
{
    borrower *b = p;
    sem_post(&b->started);
    shp_conn *c = NULL;
    int rc = shp_acquire(b->f->pool, &c, b->timeout_ns);
    if (rc == 0) {
        fake_handle *h = shp_conn_handle(c);
        atomic_store(&b->conn_id, h ? h->id : 0);
        if (!h || h->magic != FAKE_MAGIC || !tag_take(h))
            atomic_store(&b->conn_id, UINT64_MAX); /* checked by the main thread */
        if (b->seq)
            atomic_store(&b->order, atomic_fetch_add(b->seq, 1));
        atomic_store(&b->conn, c);
    }
    atomic_store(&b->rc, rc);
    sem_post(&b->got);
    if (rc == 0 && b->hold) {
        sem_wait(&b->may_release);
        tag_drop(shp_conn_handle(c));
        atomic_store(&b->release_rc, shp_release(c));
    }
    return NULL;
}

static borrower *borrower_start(fx *f, int64_t timeout_ns, bool hold, atomic_int *seq)
{
    borrower *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->f = f;
    b->timeout_ns = timeout_ns;
    b->hold = hold;
    b->seq = seq;
    atomic_init(&b->rc, 1);
    atomic_init(&b->order, -1);
    atomic_init(&b->release_rc, 1);
    sem_init(&b->started, 0, 0);
    sem_init(&b->got, 0, 0);
    sem_init(&b->may_release, 0, 0);
    assert_int_equal(pthread_create(&b->thread, NULL, borrower_main, b), 0);
    sem_wait(&b->started);
    return b;
}

/* Joins the thread (once; later calls only read its results). */
static void borrower_wait(borrower *b)
{
    if (!b->joined) {
        pthread_join(b->thread, NULL);
        b->joined = true;
    }
}

static void borrower_free(borrower *b)
{
    borrower_wait(b);
    sem_destroy(&b->started);
    sem_destroy(&b->got);
    sem_destroy(&b->may_release);
    free(b);
}

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
    assert_int_equal(s.created, 3);
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

/* acquire gives a valid handle of this pool; release returns 0. */
static void test_acquire_release(void **state)
{
    (void)state;
    fx *f = fx_make(0, 4);
    shp_conn *c;
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    assert_int_equal(fh(c)->id, 1);
    shp_stats s = stats_of(f);
    assert_int_equal(s.in_use, 1);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.acquired, 1);
    assert_int_equal(rel(c), 0);
    s = stats_of(f);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.idle, 1);
    assert_null(shp_conn_handle(NULL));
    assert_null(shp_conn_pool(NULL));
    fx_finish(f);
}

/* A released connection is reused: no second connect. */
static void test_release_then_reacquire_reuses(void **state)
{
    (void)state;
    fx *f = fx_make(0, 4);
    for (int i = 0; i < 5; i++) {
        shp_conn *c;
        assert_int_equal(acq(f, &c, 0), 0);
        assert_int_equal(fh(c)->id, 1);
        assert_int_equal(rel(c), 0);
    }
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    assert_int_equal(stats_of(f).acquired, 5);
    fx_finish(f);
}

/* max_size: the next acquire gets -EAGAIN without waiting, -ETIMEDOUT with. */
static void test_max_size_respected(void **state)
{
    (void)state;
    fx *f = fx_make(0, 3);
    shp_conn *c[3], *x;
    for (int i = 0; i < 3; i++)
        assert_int_equal(acq(f, &c[i], NS_PER_S), 0);
    assert_int_equal(acq(f, &x, 0), -EAGAIN);
    assert_int_equal(acq(f, &x, 20 * NS_PER_MS), -ETIMEDOUT);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 3);
    assert_int_equal(s.in_use, 3);
    assert_int_equal(s.waiters, 0);
    assert_true(s.timeouts >= 1);
    assert_int_equal(atomic_load(&f->fb.opened), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rel(c[i]), 0);
    fx_finish(f);
}

/* A negative timeout means the pool's acquire_timeout_ns. */
static void test_default_acquire_timeout(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    f->cfg.acquire_timeout_ns = 20 * NS_PER_MS;
    fx_start(f);
    shp_conn *c, *x;
    assert_int_equal(acq(f, &c, 0), 0);
    assert_int_equal(acq(f, &x, -1), -ETIMEDOUT);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

/* ---- waiting ------------------------------------------------------------------------- */

/* A waiter blocked at max_size is handed the connection another thread
 * releases. */
static void test_waiter_gets_released_conn(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    borrower *w = borrower_start(f, 2 * NS_PER_S, true, NULL);
    assert_true(wait_waiters(f, 1));
    assert_int_equal(rel(c), 0);
    sem_wait(&w->got);
    assert_int_equal(atomic_load(&w->rc), 0);
    assert_ptr_equal(atomic_load(&w->conn), c);
    assert_int_equal(atomic_load(&w->conn_id), 1);
    shp_stats s = stats_of(f);
    assert_int_equal(s.handoffs, 1);
    assert_int_equal(s.waiters, 0);
    sem_post(&w->may_release);
    borrower_wait(w);
    assert_int_equal(atomic_load(&w->release_rc), 0);
    borrower_free(w);
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    fx_finish(f);
}

/* Two waiters are served in arrival order. */
static void test_waiters_fifo(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    atomic_int seq;
    atomic_init(&seq, 0);
    borrower *a = borrower_start(f, 2 * NS_PER_S, true, &seq);
    assert_true(wait_waiters(f, 1));
    borrower *b = borrower_start(f, 2 * NS_PER_S, true, &seq);
    assert_true(wait_waiters(f, 2));

    assert_int_equal(rel(c), 0);
    sem_wait(&a->got);                  /* must be the first served... */
    int b_early = sem_trywait(&b->got) == 0;
    int a_order = atomic_load(&a->order);
    sem_post(&a->may_release);          /* ...and its release serves b */
    if (!b_early)
        sem_wait(&b->got);
    int b_order = atomic_load(&b->order);
    sem_post(&b->may_release);

    borrower_wait(a);
    borrower_wait(b);
    int a_rc = atomic_load(&a->rc), b_rc = atomic_load(&b->rc);
    int a_rel = atomic_load(&a->release_rc), b_rel = atomic_load(&b->release_rc);
    uint64_t a_id = atomic_load(&a->conn_id), b_id = atomic_load(&b->conn_id);
    borrower_free(a);
    borrower_free(b);

    assert_int_equal(a_rc, 0);
    assert_int_equal(b_rc, 0);
    assert_false(b_early);
    assert_int_equal(a_order, 0);
    assert_int_equal(b_order, 1);
    assert_int_equal(a_rel, 0);
    assert_int_equal(b_rel, 0);
    assert_int_equal(a_id, 1); /* the one connection, unshared */
    assert_int_equal(b_id, 1);
    assert_int_equal(stats_of(f).handoffs, 2);
    fx_finish(f);
}

/* A waiter whose deadline passes while a release is under way either gets
 * the connection or times out; the connection is never lost. */
static void test_timed_out_waiter_loses_nothing(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    int handed = 0, timed_out = 0, bad_rc = 0, lost = 0;
    for (int i = 0; i < 100; i++) {
        borrower *w = borrower_start(f, NS_PER_MS, false, NULL);
        for (int k = 0; k < i % 7; k++)
            sched_yield();
        assert_int_equal(rel(c), 0);
        borrower_wait(w);
        int rc = atomic_load(&w->rc);
        if (rc == 0) {
            handed++;
            if (atomic_load(&w->conn_id) != 1)
                lost++; /* not the one connection, or shared */
            c = atomic_load(&w->conn);
            /* the borrower stamped it; it is ours now */
            tag_drop(fh(c));
            assert_true(tag_take(fh(c)));
        } else if (rc == -ETIMEDOUT) {
            timed_out++;
            if (acq(f, &c, 0) != 0)
                lost++;
        } else {
            bad_rc++;
        }
        borrower_free(w);
        if (lost || bad_rc)
            break;
    }
    assert_int_equal(bad_rc, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(handed + timed_out, 100);
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.waiters, 0);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

/* ---- connecting -------------------------------------------------------------------- */

/* A failed connect returns the callback's error and gives the capacity back. */
static void test_connect_failure_returns_error(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 200 * NS_PER_MS), -ECONNREFUSED);
    assert_int_equal(acq(f, &c, 0), -ECONNREFUSED); /* not -EAGAIN: capacity back */
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.connecting, 0);
    assert_true(s.connect_failures >= 2);
    atomic_store(&f->fb.connect_err, 0);
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    assert_int_equal(stats_of(f).live, 1);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

/* A waiter queued behind a connect that fails is woken by the capacity it
 * frees, and tries itself (its own error, not a timeout). */
static void test_failed_connect_wakes_waiter(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    atomic_store(&f->fb.connect_delay_ns, 200 * NS_PER_MS);
    borrower *a = borrower_start(f, 1500 * NS_PER_MS, false, NULL);
    bool connecting = false;
    for (long i = 0; i < 4000000 && !connecting; i++) {
        connecting = atomic_load(&f->fb.connecting_now) == 1;
        if (!connecting)
            sched_yield();
    }
    assert_true(connecting);
    borrower *b = borrower_start(f, 1500 * NS_PER_MS, false, NULL);
    /* b waits at max (a's connect holds the capacity) unless a is done. */
    for (long i = 0; i < 4000000; i++) {
        if (stats_of(f).waiters == 1 || sem_trywait(&a->got) == 0)
            break;
        sched_yield();
    }
    borrower_wait(a);
    borrower_wait(b);
    int a_rc = atomic_load(&a->rc), b_rc = atomic_load(&b->rc);
    borrower_free(a);
    borrower_free(b);
    assert_int_equal(a_rc, -ECONNREFUSED);
    assert_int_equal(b_rc, -ECONNREFUSED);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.waiters, 0);
    fx_finish(f);
}

/* At most max_connecting connects run at once. */
struct conn_storm {
    fx *f;
    pthread_barrier_t held;
    atomic_int failures;
    atomic_int shared;
};

static void *storm_main(void *p)
{
    struct conn_storm *cs = p;
    shp_conn *c = NULL;
    int rc = shp_acquire(cs->f->pool, &c, 5 * NS_PER_S);
    fake_handle *h = rc == 0 ? shp_conn_handle(c) : NULL;
    if (rc != 0)
        atomic_fetch_add(&cs->failures, 1);
    else if (!tag_take(h))
        atomic_fetch_add(&cs->shared, 1);
    pthread_barrier_wait(&cs->held); /* all hold theirs at once */
    pthread_barrier_wait(&cs->held); /* the main thread has looked */
    if (rc == 0) {
        tag_drop(h);
        if (shp_release(c) != 0)
            atomic_fetch_add(&cs->failures, 1);
    }
    return NULL;
}

static void test_max_connecting_bound(void **state)
{
    (void)state;
    enum { N = 8 };
    fx *f = fx_new(0, N);
    f->cfg.max_connecting = 2;
    atomic_store(&f->fb.connect_delay_ns, 20 * NS_PER_MS);
    fx_start(f);
    struct conn_storm cs = { .f = f };
    atomic_init(&cs.failures, 0);
    atomic_init(&cs.shared, 0);
    pthread_barrier_init(&cs.held, NULL, N + 1);
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, storm_main, &cs), 0);
    pthread_barrier_wait(&cs.held);
    shp_stats s = stats_of(f);
    pthread_barrier_wait(&cs.held);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&cs.held);
    assert_int_equal(atomic_load(&cs.failures), 0);
    assert_int_equal(atomic_load(&cs.shared), 0);
    assert_int_equal(s.in_use, N);
    assert_int_equal(atomic_load(&f->fb.opened), N);
    int most = atomic_load(&f->fb.connecting_max);
    assert_true(most >= 1);
    assert_true(most <= 2);
    fx_finish(f);
}

/* ---- release variants ------------------------------------------------------------------ */

/* release_broken closes the connection and frees its capacity. */
static void test_release_broken_closes(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    assert_int_equal(rel_broken(c), 0);
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.closed, 1);
    assert_int_equal(acq(f, &c, 0), 0); /* capacity is free again */
    assert_int_equal(fh(c)->id, 2);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

/* release_broken at max gives the capacity to a waiter. */
static void test_release_broken_wakes_waiter(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    borrower *w = borrower_start(f, 2 * NS_PER_S, true, NULL);
    assert_true(wait_waiters(f, 1));
    assert_int_equal(rel_broken(c), 0);
    sem_wait(&w->got);
    int rc = atomic_load(&w->rc);
    uint64_t id = atomic_load(&w->conn_id);
    sem_post(&w->may_release);
    borrower_wait(w);
    int rrc = atomic_load(&w->release_rc);
    borrower_free(w);
    assert_int_equal(rc, 0);
    assert_int_equal(id, 2);
    assert_int_equal(rrc, 0);
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    fx_finish(f);
}

/* A failing reset hook closes the connection on release. */
static void test_reset_failure_closes(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    atomic_store(&fh(c)->dirty, 1);
    assert_int_equal(rel(c), 0);
    assert_int_equal(atomic_load(&f->fb.reset_calls), 1);
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    assert_int_equal(stats_of(f).live, 0);
    assert_int_equal(acq(f, &c, 0), 0);
    assert_int_equal(fh(c)->id, 2);
    assert_int_equal(rel(c), 0);
    assert_int_equal(atomic_load(&f->fb.reset_calls), 2);
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    fx_finish(f);
}

/* max_uses = 3: the third release closes the connection. */
static void test_max_uses(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    f->cfg.max_uses = 3;
    fx_start(f);
    shp_conn *c;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(acq(f, &c, 0), 0);
        assert_int_equal(fh(c)->id, 1);
        assert_int_equal(rel(c), 0);
        assert_int_equal(atomic_load(&f->fb.closed), i == 3 ? 1 : 0);
    }
    assert_int_equal(stats_of(f).live, 0);
    assert_int_equal(acq(f, &c, 0), 0);
    assert_int_equal(fh(c)->id, 2);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

/* A second release is -EALREADY and changes nothing. */
static void test_double_release(void **state)
{
    (void)state;
    fx *f = fx_make(0, 2);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    assert_int_equal(rel(c), 0);
    shp_stats before = stats_of(f);
    assert_int_equal(shp_release(c), -EALREADY);
    assert_int_equal(shp_release_broken(c), -EALREADY);
    assert_int_equal(shp_pool_release(f->pool, c), -EALREADY);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.idle, 1);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.closed, before.closed);
    assert_int_equal(atomic_load(&f->fb.closed), 0);
    /* the pool still works: the idle one plus one new, then max_size */
    shp_conn *c1, *c2, *x;
    assert_int_equal(acq(f, &c1, 0), 0);
    assert_int_equal(acq(f, &c2, 0), 0);
    assert_int_equal(acq(f, &x, 0), -EAGAIN);
    assert_true(fh(c1)->id != fh(c2)->id);
    assert_int_equal(rel(c1), 0);
    assert_int_equal(rel(c2), 0);
    assert_int_equal(atomic_load(&f->fb.opened), 2);
    fx_finish(f);
}

/* A release after the pool closed the connection - by release_broken, or by
 * a release whose reset failed - is -EALREADY: connection memory stays a
 * connection while the pool lives (also once it is recycled), so the second
 * release reads a closed connection, not freed memory.  The fake handle is
 * freed by the close, so only shp_* calls touch the connection afterwards. */
static void test_release_after_release_broken(void **state)
{
    (void)state;
    fx *f = fx_make(0, 2);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    assert_int_equal(rel_broken(c), 0);
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    assert_int_equal(shp_release(c), -EALREADY);
    shp_quiesce(); /* its memory is on the pool's spare list now */
    assert_int_equal(shp_release(c), -EALREADY);
    assert_int_equal(shp_release_broken(c), -EALREADY);
    assert_int_equal(shp_pool_release(f->pool, c), -EALREADY);
    assert_int_equal(atomic_load(&f->fb.reset_calls), 0);

    /* reset fails: the release closes it; a second release is -EALREADY */
    assert_int_equal(acq(f, &c, 0), 0);
    atomic_store(&fh(c)->dirty, 1);
    assert_int_equal(rel(c), 0);
    assert_int_equal(atomic_load(&f->fb.reset_calls), 1);
    assert_int_equal(atomic_load(&f->fb.closed), 2);
    assert_int_equal(shp_release(c), -EALREADY);
    shp_quiesce();
    assert_int_equal(shp_release(c), -EALREADY);
    assert_int_equal(shp_release_broken(c), -EALREADY);
    assert_int_equal(shp_pool_release(f->pool, c), -EALREADY);
    assert_int_equal(atomic_load(&f->fb.reset_calls), 1); /* no reset for those */

    /* nothing changed: no close, no capacity given back twice */
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.idle, 0);
    assert_int_equal(s.closed, 2);
    assert_int_equal(atomic_load(&f->fb.closed), 2);
    assert_int_equal(fake_open_now(&f->fb), 0);
    /* the pool still works, up to max_size and no further */
    shp_conn *c1, *c2, *x;
    assert_int_equal(acq(f, &c1, 0), 0);
    assert_int_equal(acq(f, &c2, 0), 0);
    assert_int_equal(acq(f, &x, 0), -EAGAIN);
    assert_true(fh(c1)->id != fh(c2)->id);
    assert_int_equal(rel(c1), 0);
    assert_int_equal(rel(c2), 0);
    s = stats_of(f);
    assert_int_equal(s.live, 2);
    assert_int_equal(s.idle, 2);
    assert_int_equal(atomic_load(&f->fb.opened), 4);
    fx_finish(f);
}

/* shp_pool_release with another pool's connection: -EXDEV, conn untouched. */
static void test_pool_release_exdev(void **state)
{
    (void)state;
    fx *a = fx_make(0, 1);
    fx *b = fx_make(0, 1);
    shp_conn *c;
    assert_int_equal(acq(a, &c, 0), 0);
    assert_int_equal(shp_pool_release(b->pool, c), -EXDEV);
    assert_int_equal(stats_of(a).in_use, 1);
    assert_int_equal(stats_of(b).live, 0);
    tag_drop(fh(c));
    assert_int_equal(shp_pool_release(a->pool, c), 0);
    assert_int_equal(stats_of(a).idle, 1);
    fx_finish(b);
    fx_finish(a);
}

/* NULL arguments. */
static void test_null_args(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    shp_conn *c = NULL;
    shp_stats s;
    assert_int_equal(shp_release(NULL), -EINVAL);
    assert_int_equal(shp_release_broken(NULL), -EINVAL);
    assert_int_equal(shp_pool_release(f->pool, NULL), -EINVAL);
    assert_int_equal(shp_acquire(NULL, &c, 0), -EINVAL);
    assert_int_equal(shp_acquire(f->pool, NULL, 0), -EINVAL);
    assert_int_equal(shp_pool_stats(NULL, &s), -EINVAL);
    assert_int_equal(shp_pool_stats(f->pool, NULL), -EINVAL);
    assert_int_equal(shp_pool_destroy(NULL, 0), -EINVAL);
    /* pointers in the first page are rejected like NULL, never read */
    assert_int_equal(shp_release((shp_conn *)0x10), -EINVAL);
    assert_int_equal(shp_release_broken((shp_conn *)0x10), -EINVAL);
    assert_int_equal(shp_pool_release(f->pool, (shp_conn *)0xff8), -EINVAL);
    assert_int_equal(stats_of(f).live, 0);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 0);
    fx_finish(f);
}

/* Memory that is not a connection: -EBADF; not a pool: -EINVAL. */
static void test_not_a_handle(void **state)
{
    (void)state;
    fx *f = fx_make(0, 1);
    void *buf = aligned_alloc(64, 4096);
    assert_non_null(buf);
    memset(buf, 0, 4096);
    shp_conn *bogus = buf;
    assert_int_equal(shp_release(bogus), -EBADF);
    assert_int_equal(shp_release_broken(bogus), -EBADF);
    int rc = shp_pool_release(f->pool, bogus);
    assert_true(rc == -EBADF || rc == -EXDEV);
    assert_int_equal(shp_pool_destroy((shp_pool *)buf, 0), -EINVAL);
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(((unsigned char *)buf)[i], 0);
    free(buf);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.closed, 0);
    assert_int_equal(atomic_load(&f->fb.bad_close), 0);
    fx_finish(f);
}

/* ---- shutdown ------------------------------------------------------------------------- */

/* destroy with connections still borrowed at its deadline returns -EBUSY; a
 * waiter is woken with -ESHUTDOWN; the borrowed connections stay valid, and
 * their late releases return -ESHUTDOWN and close them. */
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

/* Waits for s at most `seconds` (a bound against a hang, not a timing
 * assertion).  Returns whether it was posted. */
static bool sem_wait_bounded(sem_t *s, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    int r;
    while ((r = sem_timedwait(s, &ts)) == -1 && errno == EINTR)
        ;
    return r == 0;
}

static void sem_wait_intr(sem_t *s)
{
    while (sem_wait(s) == -1 && errno == EINTR)
        ;
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

/* ---- maintenance --------------------------------------------------------------------- */

/* validate-on-acquire: an idle connection that fails its check is closed and
 * the acquirer gets another, healthy one. */
static void test_validate_on_acquire(void **state)
{
    (void)state;
    fx *f = fx_new(1, 2);
    f->cfg.validate_idle_ns = 0;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    fake_handle *h = fh(c);
    uint64_t bad_id = h->id;
    assert_int_equal(rel(c), 0);
    int checks0 = atomic_load(&h->checks);
    atomic_store(&h->broken, 1); /* idle, and its next check fails */
    /* The connection must have been idle longer than validate_idle_ns on
     * the pool's coarse clock, whose resolution is reaper_interval_ns
     * (1 ms): let it stay idle a few ms (not synchronisation).  If the clock
     * has not moved yet (a loaded machine), an unchecked hand-out of the
     * broken one is not a failure; put it back and let it idle again. */
    int tries = 0;
    for (;;) {
        nap_ns(5 * NS_PER_MS);
        assert_int_equal(acq(f, &c, NS_PER_S), 0);
        if (fh(c)->id != bad_id || ++tries == 100)
            break;
        /* handed out unchecked: a check of it would have failed */
        assert_int_equal(atomic_load(&h->checks), checks0);
        assert_int_equal(rel(c), 0);
    }
    fake_handle *h2 = fh(c);
    assert_true(h2->id != bad_id);
    assert_int_equal(atomic_load(&h2->broken), 0);
    assert_true(atomic_load(&f->fb.check_calls) >= 1);
    assert_int_equal(atomic_load(&f->fb.closed), 1);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

/* A connection used again soon after its release is not checked when
 * validate_idle_ns is longer than that. */
static void test_validate_skipped_when_recent(void **state)
{
    (void)state;
    fx *f = fx_new(0, 2);
    f->cfg.validate_idle_ns = 60 * NS_PER_S;
    fx_start(f);
    for (int i = 0; i < 5; i++) {
        shp_conn *c;
        assert_int_equal(acq(f, &c, NS_PER_S), 0);
        assert_int_equal(rel(c), 0);
    }
    assert_int_equal(atomic_load(&f->fb.check_calls), 0);
    fx_finish(f);
}

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
    assert_true(s.health_failures >= 1);
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
    assert_true(s.created >= 6);
    shp_conn *c;
    assert_int_equal(acq(f, &c, NS_PER_S), 0);
    assert_int_equal(rel(c), 0);
    fx_finish(f);
}

/* ---- stats ------------------------------------------------------------------------------ */

static void assert_gauges_add_up(const shp_stats *s)
{
    assert_int_equal(s->live, s->idle + s->in_use + s->connecting + s->checking);
    assert_int_equal(s->created - s->closed, s->live);
}

/* On a quiet pool the gauges add up and the counters count. */
static void test_stats_consistent(void **state)
{
    (void)state;
    fx *f = fx_make(2, 4);
    shp_stats s = stats_of(f);
    assert_gauges_add_up(&s);
    assert_int_equal(s.created, 2);
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.acquired, 0);
    assert_int_equal(s.waiters, 0);

    shp_conn *c[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(acq(f, &c[i], NS_PER_S), 0);
    s = stats_of(f);
    assert_gauges_add_up(&s);
    assert_int_equal(s.acquired, 3);
    assert_int_equal(s.in_use, 3);
    assert_int_equal(s.idle, 0);
    assert_int_equal(s.created, 3);

    assert_int_equal(rel(c[0]), 0);
    assert_int_equal(rel(c[1]), 0);
    assert_int_equal(rel_broken(c[2]), 0);
    s = stats_of(f);
    assert_gauges_add_up(&s);
    assert_int_equal(s.live, 2);
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.created, atomic_load(&f->fb.opened));
    assert_int_equal(s.closed, atomic_load(&f->fb.closed));
    assert_int_equal(s.connect_failures, 0);
    assert_int_equal(s.timeouts, 0);
    assert_int_equal(s.health_failures, 0);
    assert_int_equal(s.handoffs, 0);
    assert_int_equal(s.waiters, 0);
    fx_finish(f);
}

static bool pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        return false;
    sched_yield();
    return sched_getcpu() == cpu;
}

/* With two shards, a connection released on one CPU is stolen by an acquire
 * on the other (not a new connect). */
static void test_steal_between_shards(void **state)
{
    (void)state;
    cpu_set_t saved;
    if (sched_getaffinity(0, sizeof saved, &saved) != 0 || CPU_COUNT(&saved) < 2 ||
        !CPU_ISSET(0, &saved) || !CPU_ISSET(1, &saved)) {
        skip();
        return;
    }
    fx *f = fx_new(0, 2);
    f->cfg.shards = 2;
    fx_start(f);
    shp_conn *c;
    bool pinned = pin_to_cpu(0);
    if (pinned) {
        assert_int_equal(acq(f, &c, 0), 0);
        assert_int_equal(rel(c), 0);
        pinned = pin_to_cpu(1);
    }
    if (pinned) {
        assert_int_equal(acq(f, &c, 0), 0);
        assert_int_equal(fh(c)->id, 1);
        assert_int_equal(rel(c), 0);
    }
    sched_setaffinity(0, sizeof saved, &saved);
    if (!pinned) {
        fx_finish(f);
        skip();
        return;
    }
    shp_stats s = stats_of(f);
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    assert_int_equal(s.steals, 1);
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
    assert_int_equal(s.created, 1);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 1);
    assert_int_equal(s.acquired, r.n);
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
    assert_int_equal(s1.created, 1);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 1);
    assert_int_equal(s1.acquired - s0.acquired, r.n);
    fx_finish(f);
}

/* ---- concurrency ------------------------------------------------------------------------ */

/* Each thread: acquire (waiting up to timeout_ns), check it is the only
 * borrower, yield every yield_every-th cycle, release - broken when
 * i % broken_every == broken_at. */
struct churn {
    fx *f;
    int iterations;
    int64_t timeout_ns;
    int yield_every, broken_every, broken_at;
    atomic_int errors;
    atomic_int shared;
    atomic_int broken;
    pthread_barrier_t go;
};

static void *churn_main(void *p)
{
    struct churn *ch = p;
    pthread_barrier_wait(&ch->go);
    for (int i = 0; i < ch->iterations; i++) {
        shp_conn *c = NULL;
        int rc = shp_acquire(ch->f->pool, &c, ch->timeout_ns);
        if (rc != 0) {
            atomic_fetch_add(&ch->errors, 1);
            continue;
        }
        fake_handle *h = shp_conn_handle(c);
        if (!h || h->magic != FAKE_MAGIC || !tag_take(h)) {
            atomic_fetch_add(&ch->shared, 1);
            continue; /* do not release what is not ours */
        }
        if (i % ch->yield_every == 0)
            sched_yield();
        tag_drop(h);
        if (i % ch->broken_every == ch->broken_at) {
            atomic_fetch_add(&ch->broken, 1);
            rc = shp_release_broken(c);
        } else {
            rc = shp_release(c);
        }
        if (rc != 0)
            atomic_fetch_add(&ch->errors, 1);
    }
    return NULL;
}

/* Threads churning on a small pool: never two borrowers, no error, and the
 * books balance afterwards (I1, I2). */
static void test_concurrent_single_owner(void **state)
{
    (void)state;
    enum { T = 4, ITER = 1500 };
    fx *f = fx_make(1, 3);
    struct churn ch = { .f = f, .iterations = ITER, .timeout_ns = 2 * NS_PER_S,
                        .yield_every = 5, .broken_every = 97, .broken_at = 0 };
    atomic_init(&ch.errors, 0);
    atomic_init(&ch.shared, 0);
    atomic_init(&ch.broken, 0);
    pthread_barrier_init(&ch.go, NULL, T);
    pthread_t t[T];
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn_main, &ch), 0);
    for (int i = 0; i < T; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&ch.go);
    assert_int_equal(atomic_load(&ch.shared), 0);
    assert_int_equal(atomic_load(&ch.errors), 0);
    shp_stats s = stats_of(f);
    assert_true(s.live <= 3);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.waiters, 0);
    assert_int_equal(s.acquired, (uint64_t)T * ITER);
    assert_int_equal(s.live, s.idle + s.connecting + s.checking);
    assert_int_equal(atomic_load(&f->fb.closed), atomic_load(&ch.broken));
    assert_int_equal(fake_open_now(&f->fb), s.created - s.closed);
    fx_finish(f);
}

/* ---- waiting with handoff_after_ns > 0 ------------------------------------------------ */

/* handoff_after_ns > 0: a release with a waiter queued pushes its connection
 * and wakes the waiter, which takes it from the shard - no handoff (the
 * waiter has not waited a minute) - and the acquire counts one wait. */
static void test_handoff_after_release_pushes(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    f->cfg.handoff_after_ns = 60 * NS_PER_S;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    borrower *w = borrower_start(f, 30 * NS_PER_S, true, NULL);
    assert_true(wait_waiters(f, 1));
    assert_int_equal(rel(c), 0);
    sem_wait(&w->got);
    int rc = atomic_load(&w->rc);
    shp_conn *got = atomic_load(&w->conn);
    uint64_t id = atomic_load(&w->conn_id);
    shp_stats s = stats_of(f);
    shp_metrics m;
    assert_int_equal(shp_pool_metrics(f->pool, &m), 0);
    sem_post(&w->may_release);
    borrower_wait(w);
    int rrc = atomic_load(&w->release_rc);
    borrower_free(w);
    assert_int_equal(rc, 0);
    assert_ptr_equal(got, c);
    assert_int_equal(id, 1);
    assert_int_equal(s.handoffs, 0);
    assert_int_equal(s.waiters, 0);
    assert_int_equal(m.waits, 1);
    assert_int_equal(rrc, 0);
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    fx_finish(f);
}

/* handoff_after_ns > 0, past the bound: a waiter that has been queued
 * longer than handoff_after_ns is handed the released connection directly
 * (a handoff; the releaser's next try at once finds nothing), as in strict
 * FIFO mode.  Nothing else touches the pool meanwhile, so the waiter stays
 * queued while the bound passes. */
static void test_handoff_after_hands_over_past_bound(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    f->cfg.handoff_after_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *c, *x;
    assert_int_equal(acq(f, &c, 0), 0);
    borrower *w = borrower_start(f, 60 * NS_PER_S, true, NULL);
    assert_true(wait_waiters(f, 1));
    /* Let the bound pass (the waiter stamped its wait before it queued):
     * the state under test, not a stand-in for synchronisation. */
    nap_ns(2 * NS_PER_MS);
    assert_int_equal(rel(c), 0);
    int again = acq(f, &x, 0);
    sem_wait(&w->got);
    int rc = atomic_load(&w->rc);
    shp_conn *got = atomic_load(&w->conn);
    shp_stats s = stats_of(f);
    sem_post(&w->may_release);
    borrower_wait(w);
    int rrc = atomic_load(&w->release_rc);
    borrower_free(w);
    assert_int_equal(again, -EAGAIN);
    assert_int_equal(rc, 0);
    assert_ptr_equal(got, c);
    assert_int_equal(s.handoffs, 1);
    assert_int_equal(s.waiters, 0);
    assert_int_equal(rrc, 0);
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    fx_finish(f);
}

/* The starvation bound under a barging releaser.  The one connection's
 * holder releases and at once takes it back (timeout 0), over and over, on
 * one thread: a waiter woken by those releases mostly loses the race and
 * queues again, keeping its first enqueue time, and once it has waited
 * handoff_after_ns a release hands the connection to it directly.  So the
 * loop ends with the holder refused (-EAGAIN) and the waiter served, never
 * with the waiter timing out (after a minute).  (It may also win a race
 * before the bound; the outcome is the same, which is why the handover
 * itself is pinned down by test_handoff_after_hands_over_past_bound.)  Its
 * re-queueings count as one wait. */
static void test_handoff_after_bounds_starvation(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    f->cfg.handoff_after_ns = 5 * NS_PER_MS;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    borrower *w = borrower_start(f, 60 * NS_PER_S, true, NULL);
    assert_true(wait_waiters(f, 1));
    int rc = 0, bad_rc = 0;
    long rounds = 0;
    while (atomic_load(&w->rc) == 1) { /* the waiter has not returned */
        if (rel(c) != 0)
            bad_rc++;
        rounds++;
        rc = acq(f, &c, 0);
        if (rc != 0)
            break; /* the waiter has it */
    }
    sem_wait(&w->got);
    int wrc = atomic_load(&w->rc);
    uint64_t id = atomic_load(&w->conn_id);
    sem_post(&w->may_release);
    borrower_wait(w);
    int wrel = atomic_load(&w->release_rc);
    borrower_free(w);
    if (rc == 0)
        assert_int_equal(rel(c), 0); /* the waiter gave up: still ours */
    shp_metrics m;
    assert_int_equal(shp_pool_metrics(f->pool, &m), 0);
    assert_int_equal(bad_rc, 0);
    assert_true(rounds >= 1);
    assert_int_equal(wrc, 0);
    assert_int_equal(rc, -EAGAIN);
    assert_int_equal(id, 1);
    assert_int_equal(wrel, 0);
    assert_int_equal(m.waits, 1);
    assert_int_equal(m.waiters, 0);
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    fx_finish(f);
}

/* A waiter that acquires once with a short timeout and gives back at once
 * whatever it gets. */
typedef struct quick_waiter {
    fx *f;
    int64_t timeout_ns;
    pthread_t thread;
    atomic_int rc;      /* 1 until its acquire returned */
    atomic_int shared;  /* it was handed a connection someone else held */
} quick_waiter;

static void *quick_waiter_main(void *p)
{
    quick_waiter *q = p;
    shp_conn *c = NULL;
    int rc = shp_acquire(q->f->pool, &c, q->timeout_ns);
    if (rc == 0) {
        fake_handle *h = shp_conn_handle(c);
        if (!h || h->magic != FAKE_MAGIC || !tag_take(h)) {
            atomic_store(&q->shared, 1);
        } else {
            tag_drop(h);
            shp_release(c);
        }
    }
    atomic_store(&q->rc, rc);
    return NULL;
}

/* Deadlines hold when waiters keep losing: with a bound of a minute, the
 * holder's release-and-take-back loop wakes waiters (20 ms timeouts) that
 * mostly lose the race and queue again; each must come back - served or
 * -ETIMEDOUT - while the loop still runs, never spin on retries past its
 * deadline.  (The loop stops when all have returned, or after 60 s: a
 * bound against a hang, not a timing assertion.) */
static void test_handoff_after_deadline_honoured(void **state)
{
    (void)state;
    enum { W = 4 };
    fx *f = fx_new(0, 1);
    f->cfg.handoff_after_ns = 60 * NS_PER_S;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(acq(f, &c, 0), 0);
    quick_waiter q[W];
    for (int i = 0; i < W; i++) {
        q[i].f = f;
        q[i].timeout_ns = 20 * NS_PER_MS;
        atomic_init(&q[i].rc, 1);
        atomic_init(&q[i].shared, 0);
        assert_int_equal(pthread_create(&q[i].thread, NULL, quick_waiter_main, &q[i]), 0);
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool held = true, all_back = false;
    int bad_rc = 0;
    uint64_t refused = 0; /* our -EAGAINs, which count as timeouts too */
    for (;;) {
        all_back = true;
        for (int i = 0; i < W; i++)
            all_back = all_back && atomic_load(&q[i].rc) != 1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (all_back || t.tv_sec - t0.tv_sec > 60)
            break;
        if (held) {
            bad_rc += rel(c) != 0;
            held = false;
        }
        int rc = acq(f, &c, 0);
        if (rc == 0) {
            held = true;
        } else {
            bad_rc += rc != -EAGAIN;
            refused++;
            sched_yield(); /* a waiter has it and gives it back */
        }
    }
    for (int i = 0; i < W; i++)
        pthread_join(q[i].thread, NULL);
    if (held)
        assert_int_equal(rel(c), 0);
    int served = 0, timed_out = 0;
    for (int i = 0; i < W; i++) {
        int rc = atomic_load(&q[i].rc);
        served += rc == 0;
        timed_out += rc == -ETIMEDOUT;
        assert_int_equal(atomic_load(&q[i].shared), 0);
    }
    shp_stats s = stats_of(f);
    assert_true(all_back);
    assert_int_equal(bad_rc, 0);
    assert_int_equal(served + timed_out, W);
    assert_int_equal(s.timeouts, (uint64_t)timed_out + refused);
    assert_int_equal(s.waiters, 0);
    assert_int_equal(s.live, 1);
    assert_int_equal(atomic_load(&f->fb.opened), 1);
    fx_finish(f);
}

/* 16 threads on a pool of 2, each acquiring (60 s timeout) and releasing
 * many times, holding across a yield now and then, 1 in 101 releases a
 * release_broken (so capacity grants mix with pushes): with a bound that
 * is often reached (1 ms) and with one that never is (an hour, so every
 * waiter is served by winning a race or by a claim after queueing), every
 * acquire succeeds - a waiter whose wake-up was lost would wait until its
 * timeout - never with a connection someone holds, and the books balance. */
static void test_handoff_after_no_lost_wakeup(void **state)
{
    (void)state;
    enum { T = 16, ITER = 1500 };
    const int64_t bounds[] = { NS_PER_MS, 3600 * NS_PER_S };
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        fx *f = fx_new(0, 2);
        f->cfg.handoff_after_ns = bounds[b];
        fx_start(f);
        struct churn ch = { .f = f, .iterations = ITER, .timeout_ns = 60 * NS_PER_S,
                            .yield_every = 3, .broken_every = 101, .broken_at = 50 };
        atomic_init(&ch.errors, 0);
        atomic_init(&ch.shared, 0);
        atomic_init(&ch.broken, 0);
        pthread_barrier_init(&ch.go, NULL, T);
        pthread_t t[T];
        for (int i = 0; i < T; i++)
            assert_int_equal(pthread_create(&t[i], NULL, churn_main, &ch), 0);
        for (int i = 0; i < T; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&ch.go);
        shp_stats s = stats_of(f);
        shp_metrics m;
        assert_int_equal(shp_pool_metrics(f->pool, &m), 0);
        assert_int_equal(atomic_load(&ch.shared), 0);
        assert_int_equal(atomic_load(&ch.errors), 0);
        assert_int_equal(s.timeouts, 0);
        assert_true(s.live <= 2);
        assert_int_equal(s.in_use, 0);
        assert_int_equal(s.waiters, 0);
        assert_int_equal(s.acquired, (uint64_t)T * ITER);
        assert_true(m.waits <= (uint64_t)T * ITER); /* once per acquire at most */
        assert_int_equal(s.live, s.idle + s.connecting + s.checking);
        assert_int_equal(atomic_load(&f->fb.closed), atomic_load(&ch.broken));
        assert_int_equal(fake_open_now(&f->fb), s.created - s.closed);
        fx_finish(f);
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
        cmocka_unit_test(test_acquire_release),
        cmocka_unit_test(test_release_then_reacquire_reuses),
        cmocka_unit_test(test_max_size_respected),
        cmocka_unit_test(test_default_acquire_timeout),
        cmocka_unit_test(test_waiter_gets_released_conn),
        cmocka_unit_test(test_waiters_fifo),
        cmocka_unit_test(test_timed_out_waiter_loses_nothing),
        cmocka_unit_test(test_connect_failure_returns_error),
        cmocka_unit_test(test_failed_connect_wakes_waiter),
        cmocka_unit_test(test_max_connecting_bound),
        cmocka_unit_test(test_release_broken_closes),
        cmocka_unit_test(test_release_broken_wakes_waiter),
        cmocka_unit_test(test_reset_failure_closes),
        cmocka_unit_test(test_max_uses),
        cmocka_unit_test(test_double_release),
        cmocka_unit_test(test_release_after_release_broken),
        cmocka_unit_test(test_pool_release_exdev),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_not_a_handle),
        cmocka_unit_test(test_destroy_busy_then_late_release),
        cmocka_unit_test(test_destroy_closes_idle_keeps_borrowed),
        cmocka_unit_test(test_destroy_drains_then_returns_0),
        cmocka_unit_test(test_waiters_woken_before_reaper_stops),
        cmocka_unit_test(test_acquire_racing_destroy),
        cmocka_unit_test(test_validate_on_acquire),
        cmocka_unit_test(test_validate_skipped_when_recent),
        cmocka_unit_test(test_reaper_health_check),
        cmocka_unit_test(test_reaper_never_checks_borrowed),
        cmocka_unit_test(test_idle_timeout_shrinks_to_min),
        cmocka_unit_test(test_max_lifetime_replaces),
        cmocka_unit_test(test_stats_consistent),
        cmocka_unit_test(test_steal_between_shards),
        cmocka_unit_test(test_no_needless_connect_during_reaper_pass),
        cmocka_unit_test(test_reaper_keeps_connection_on_its_shard),
        cmocka_unit_test(test_concurrent_single_owner),
        cmocka_unit_test(test_handoff_after_release_pushes),
        cmocka_unit_test(test_handoff_after_hands_over_past_bound),
        cmocka_unit_test(test_handoff_after_bounds_starvation),
        cmocka_unit_test(test_handoff_after_deadline_honoured),
        cmocka_unit_test(test_handoff_after_no_lost_wakeup),
        cmocka_unit_test(test_shutdown_wakes_waiters_both_modes),
        cmocka_unit_test(test_shutdown_during_churn_both_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
