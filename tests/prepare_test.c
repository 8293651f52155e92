/*
 * prepare_test.c - the optional ops.prepare hook: run on every hand-out,
 * a refusal closes that connection and the acquire goes on with another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "fakeconn.h"

#define MS 1000000LL

static shp_pool *make(fake_backend *fb, unsigned min, unsigned max)
{
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = min;
    cfg.max_size = max;
    cfg.validate_idle_ns = -1;
    cfg.name = "preparetest";
    shp_ops ops = fake_ops(fb);
    ops.prepare = fake_prepare;
    shp_pool *p = NULL;
    assert_int_equal(shp_pool_create(&p, &cfg, &ops), 0);
    return p;
}

static void finish(shp_pool *p, fake_backend *fb)
{
    assert_int_equal(shp_pool_destroy(p, 0), 0);
    assert_int_equal(fake_open_now(fb), 0);
    assert_int_equal(atomic_load(&fb->bad_close), 0);
}

static void test_prepare_runs_on_every_hand_out(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_pool *p = make(&fb, 1, 2);
    shp_conn *c;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(shp_acquire(p, &c, 0), 0);
        assert_int_equal(shp_release(c), 0);
    }
    assert_int_equal(atomic_load(&fb.prepare_calls), 5);
    finish(p, &fb);
}

/* A refused connection is closed and the caller gets another. */
static void test_refused_connection_is_replaced(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_pool *p = make(&fb, 1, 2);
    shp_conn *c;
    atomic_store(&fb.prepare_fail_next, 1);
    assert_int_equal(shp_acquire(p, &c, 100 * MS), 0);
    fake_handle *h = shp_conn_handle(c);
    assert_true(h->magic == FAKE_MAGIC);
    assert_int_equal(atomic_load(&fb.closed), 1);   /* the refused one */
    assert_int_equal(atomic_load(&fb.opened), 2);   /* and a new one */
    assert_int_equal(shp_release(c), 0);
    finish(p, &fb);
}

/* Every connection refused: the acquire ends with an error, nothing leaks. */
static void test_all_refused_gives_up(void **state)
{
    (void)state;
    fake_backend fb;
    fake_init(&fb);
    shp_pool *p = make(&fb, 0, 2);
    shp_conn *c;
    atomic_store(&fb.prepare_fail_next, 1000);
    int rc = shp_acquire(p, &c, 200 * MS);
    assert_true(rc == -EIO || rc == -ETIMEDOUT || rc == -EHOSTDOWN);
    shp_stats s;
    assert_int_equal(shp_pool_stats(p, &s), 0);
    assert_int_equal(s.in_use, 0);
    atomic_store(&fb.prepare_fail_next, 0);
    finish(p, &fb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_runs_on_every_hand_out),
        cmocka_unit_test(test_refused_connection_is_replaced),
        cmocka_unit_test(test_all_refused_gives_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
