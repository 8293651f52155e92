/*
 * fixture.h - a pool over the fake backend for the cmocka tests (tests only;
 * header-only, include after <cmocka.h> and "fakeconn.h").  Define
 * FX_POOL_NAME before including it to name the pools (default "pooltest").
 */
#ifndef SHP_TEST_FIXTURE_H
#define SHP_TEST_FIXTURE_H

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <shardpool.h>

#include "fakeconn.h"

#ifndef FX_POOL_NAME
#define FX_POOL_NAME "pooltest"
#endif

typedef struct fx {
    fake_backend fb;
    shp_ops ops;
    shp_config cfg;
    shp_pool *pool;
} fx;

/* A pool config with min/max, the fake backend, and quiet maintenance (no
 * validate-on-acquire, so that checks happen only where a test asks). */
static inline fx *fx_new(unsigned min, unsigned max)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fake_init(&f->fb);
    f->ops = fake_ops(&f->fb);
    shp_config_init(&f->cfg);
    f->cfg.min_size = min;
    f->cfg.max_size = max;
    f->cfg.validate_idle_ns = -1;
    f->cfg.name = FX_POOL_NAME;
    return f;
}

static inline void fx_start(fx *f)
{
    assert_int_equal(shp_pool_create(&f->pool, &f->cfg, &f->ops), 0);
    assert_non_null(f->pool);
}

static inline fx *fx_make(unsigned min, unsigned max)
{
    fx *f = fx_new(min, max);
    fx_start(f);
    return f;
}

/* The pool's stats (asserting the call succeeds); poisoned first, so that a
 * field the call leaves unset shows. */
static inline shp_stats stats_of(fx *f)
{
    shp_stats s;
    memset(&s, 0xee, sizeof s);
    assert_int_equal(shp_pool_stats(f->pool, &s), 0);
    return s;
}

/* The pool's metrics (asserting the call succeeds and the snapshot's
 * layout version). */
static inline shp_metrics metrics_of(fx *f)
{
    shp_metrics m;
    memset(&m, 0xee, sizeof m);
    assert_int_equal(shp_pool_metrics(f->pool, &m), 0);
    assert_int_equal(m.version, SHP_METRICS_VERSION);
    return m;
}

/* Destroys the pool (every connection must be back) and checks the backend:
 * nothing open, no close of a bad handle. */
static inline void fx_finish(fx *f)
{
    assert_int_equal(shp_pool_destroy(f->pool, 0), 0);
    assert_int_equal(fake_open_now(&f->fb), 0);
    shp_quiesce();
    assert_int_equal(fake_open_now(&f->fb), 0);
    assert_int_equal(atomic_load(&f->fb.bad_close), 0);
    free(f);
}

#endif
