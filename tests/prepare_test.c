/*
 * prepare_test.c - the optional ops.prepare hook: run on every hand-out,
 * a refusal closes that connection and the acquire goes on with another,
 * recorded once in the acquire histogram, with the refusal kept for
 * shp_acquire_last_error (the deadline it keeps: deadline_test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "fakeconn.h"
#define FX_POOL_NAME "preparetest"
#include "fixture.h"

#define MS 1000000LL

/* The fixture's pool with the fake prepare hook. */
static fx *make(unsigned min, unsigned max)
{
    fx *f = fx_new(min, max);
    f->ops.prepare = fake_prepare;
    fx_start(f);
    return f;
}

static void test_prepare_runs_on_every_hand_out(void **state)
{
    (void)state;
    fx *f = make(1, 2);
    shp_conn *c;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
        assert_int_equal(shp_release(c), 0);
    }
    assert_int_equal(atomic_load(&f->fb.prepare_calls), 5);
    fx_finish(f);
}

/* A refused connection is closed and the caller gets another. */
static void test_refused_connection_is_replaced(void **state)
{
    (void)state;
    fx *f = make(1, 2);
    shp_conn *c;
    atomic_store(&f->fb.prepare_fail_next, 1);
    assert_int_equal(shp_acquire(f->pool, &c, 100 * MS), 0);
    fake_handle *h = shp_conn_handle(c);
    assert_true(h->magic == FAKE_MAGIC);
    assert_int_equal(atomic_load(&f->fb.closed), 1);   /* the refused one */
    assert_int_equal(atomic_load(&f->fb.opened), 2);   /* and a new one */
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

/* Every connection refused: the acquire ends with an error, nothing leaks. */
static void test_all_refused_gives_up(void **state)
{
    (void)state;
    fx *f = make(0, 2);
    shp_conn *c;
    atomic_store(&f->fb.prepare_fail_next, 1000);
    int rc = shp_acquire(f->pool, &c, 200 * MS);
    assert_true(rc == -EIO || rc == -ETIMEDOUT || rc == -EHOSTDOWN);
    shp_stats s;
    assert_int_equal(shp_pool_stats(f->pool, &s), 0);
    assert_int_equal(s.in_use, 0);
    atomic_store(&f->fb.prepare_fail_next, 0);
    fx_finish(f);
}

/* ---- the replacement of a refused connection continues the acquire ------------ */
/* (that it keeps the acquire's deadline: deadline_test) */

/* The refusal stays what shp_acquire_last_error reports, though the
 * replacement succeeded. */
static void test_refusal_kept_as_last_error(void **state)
{
    (void)state;
    fx *f = make(1, 1);
    atomic_store(&f->fb.prepare_fail_next, 1);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 500 * MS), 0);
    shp_last_error e;
    assert_int_equal(shp_acquire_last_error(&e), 0);
    assert_int_equal(e.err, -EIO);
    assert_string_equal(e.op, "prepare");
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

/* An acquire that replaced a refused connection is recorded once in the
 * acquire histogram (its first attempt), not once per attempt. */
static void test_replacement_not_recorded_again(void **state)
{
    (void)state;
    fx *f = fx_new(1, 1);
    f->ops.prepare = fake_prepare;
    f->cfg.metrics_sample = 1; /* every acquire sampled */
    fx_start(f);
    /* One acquire without a refusal: what one acquire records (1; 0 in a
     * library built without metrics, where there is nothing to check). */
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 500 * MS), 0);
    assert_int_equal(shp_release(c), 0);
    uint64_t one = metrics_of(f).acquire.count;
    if (one == 0) {
        fx_finish(f);
        skip(); /* METRICS=0 */
    }
    assert_int_equal(one, 1);
    atomic_store(&f->fb.prepare_fail_next, 1);
    assert_int_equal(shp_acquire(f->pool, &c, 500 * MS), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(metrics_of(f).acquire.count, 2); /* its first attempt only */
    fx_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_runs_on_every_hand_out),
        cmocka_unit_test(test_refused_connection_is_replaced),
        cmocka_unit_test(test_all_refused_gives_up),
        cmocka_unit_test(test_refusal_kept_as_last_error),
        cmocka_unit_test(test_replacement_not_recorded_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
