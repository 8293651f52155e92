/*
 * idle_test.c - moves of connections nobody holds: the FIFO waiter queue and
 * handoff (strict and with handoff_after_ns), and steals between shards.
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
    assert_int_equal(borrower_done(w), 0);
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
    shp_metrics m = metrics_of(f);
    int rrc = borrower_done(w);
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
    int rrc = borrower_done(w);
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
    int wrel = borrower_done(w);
    if (rc == 0)
        assert_int_equal(rel(c), 0); /* the waiter gave up: still ours */
    shp_metrics m = metrics_of(f);
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
        churn_run(&ch, T);
        shp_stats s = churn_check(f, &ch, T);
        shp_metrics m = metrics_of(f);
        assert_int_equal(s.timeouts, 0);
        assert_true(m.waits <= (uint64_t)T * ITER); /* once per acquire at most */
        fx_finish(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waiter_gets_released_conn),
        cmocka_unit_test(test_waiters_fifo),
        cmocka_unit_test(test_timed_out_waiter_loses_nothing),
        cmocka_unit_test(test_steal_between_shards),
        cmocka_unit_test(test_handoff_after_release_pushes),
        cmocka_unit_test(test_handoff_after_hands_over_past_bound),
        cmocka_unit_test(test_handoff_after_bounds_starvation),
        cmocka_unit_test(test_handoff_after_deadline_honoured),
        cmocka_unit_test(test_handoff_after_no_lost_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
