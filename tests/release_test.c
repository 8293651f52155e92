/*
 * release_test.c - shp_release, shp_release_broken and shp_pool_release:
 * reuse, broken connections, reset failure, max_uses, double and foreign
 * releases, bad arguments.
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
    assert_int_equal(stats_of(f).acquisitions, 5);
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
    int rrc = borrower_done(w);
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

/* Every release of c - plain, broken, through its pool - is -EALREADY. */
static void assert_released_already(fx *f, shp_conn *c)
{
    assert_int_equal(shp_release(c), -EALREADY);
    assert_int_equal(shp_release_broken(c), -EALREADY);
    assert_int_equal(shp_pool_release(f->pool, c), -EALREADY);
}

/* The pool (max_size 2) still works: two distinct connections at once, no
 * third, both released. */
static void assert_serves_two(fx *f)
{
    shp_conn *c1, *c2, *x;
    assert_int_equal(acq(f, &c1, 0), 0);
    assert_int_equal(acq(f, &c2, 0), 0);
    assert_int_equal(acq(f, &x, 0), -EAGAIN);
    assert_true(fh(c1)->id != fh(c2)->id);
    assert_int_equal(rel(c1), 0);
    assert_int_equal(rel(c2), 0);
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
    assert_released_already(f, c);
    shp_stats s = stats_of(f);
    assert_int_equal(s.live, 1);
    assert_int_equal(s.idle, 1);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.closed, before.closed);
    assert_int_equal(atomic_load(&f->fb.closed), 0);
    /* the pool still works: the idle one plus one new, then max_size */
    assert_serves_two(f);
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
    assert_released_already(f, c);
    assert_int_equal(atomic_load(&f->fb.reset_calls), 0);

    /* reset fails: the release closes it; a second release is -EALREADY */
    assert_int_equal(acq(f, &c, 0), 0);
    atomic_store(&fh(c)->dirty, 1);
    assert_int_equal(rel(c), 0);
    assert_int_equal(atomic_load(&f->fb.reset_calls), 1);
    assert_int_equal(atomic_load(&f->fb.closed), 2);
    assert_int_equal(shp_release(c), -EALREADY);
    shp_quiesce();
    assert_released_already(f, c);
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
    assert_serves_two(f);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_then_reacquire_reuses),
        cmocka_unit_test(test_release_broken_closes),
        cmocka_unit_test(test_release_broken_wakes_waiter),
        cmocka_unit_test(test_reset_failure_closes),
        cmocka_unit_test(test_max_uses),
        cmocka_unit_test(test_double_release),
        cmocka_unit_test(test_release_after_release_broken),
        cmocka_unit_test(test_pool_release_exdev),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_not_a_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
