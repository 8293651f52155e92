/*
 * deadline_test.c - an acquire's deadline is the caller's, end to end.
 *
 * - Every hook an acquire runs (prepare; check and connect in
 *   test_no_callback_after_the_deadline) sees the acquire's own deadline through
 *   shp_connect_deadline_ns(), and a refused connection's replacement runs
 *   within what is left of it: nothing computes a new one.
 * - Durations saturate: INT64_MAX is a legal value of every duration the
 *   configuration and the API accept (the ASan+UBSan build of this test
 *   aborts on a signed overflow).
 * - An acquirer never spins for the reaper's sweep beyond its deadline.
 * Assertions are on values (the deadline a hook saw, who was still held when
 * the acquire returned), never on how long something took.  White-box where
 * it forces an interleaving (test points, lib/pool_internal.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "fakeconn.h"
#define FX_POOL_NAME "deadline"
#include "fixture.h"
#include "pool_internal.h"
#include "retry.h"
#include "testutil.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL

/* ---- prepare sees the acquire's deadline; a refusal does not restart it ---------------- */

/* A prepare hook that behaves like a backend read that never answers (the
 * Redis cleanup of a connection whose server stopped): it waits until the
 * acquire's deadline if it has one, else its own 1 s timeout, and fails
 * with -ETIMEDOUT.  It records the deadline each call saw. */
static struct {
    atomic_int calls;
    int64_t seen[8];
} stuck;

static int stuck_prepare(void *ctx, void *handle)
{
    (void)ctx;
    (void)handle;
    int i = atomic_fetch_add(&stuck.calls, 1);
    int64_t d = shp_connect_deadline_ns();
    if (i < 8)
        stuck.seen[i] = d;
    int64_t until = d >= 0 ? d : now_ns() + NS_PER_S;
    for (int64_t now; (now = now_ns()) < until;)
        poll(NULL, 0, (int)((until - now + NS_PER_MS - 1) / NS_PER_MS));
    return -ETIMEDOUT;
}

static void test_prepare_gets_what_is_left_of_the_deadline(void **state)
{
    (void)state;
    fx *f = fx_new(2, 2);
    f->ops.prepare = stuck_prepare;
    fx_start(f);
    memset(&stuck, 0, sizeof stuck);
    shp_conn *c;
    int64_t before = now_ns();
    int err = shp_acquire(f->pool, &c, 100 * NS_PER_MS);
    int64_t after = now_ns();
    assert_int_equal(err, -ETIMEDOUT);
    /* The hook ran with the acquire's own deadline... */
    assert_true(atomic_load(&stuck.calls) >= 1);
    assert_true(stuck.seen[0] >= before + 100 * NS_PER_MS);
    assert_true(stuck.seen[0] <= after);
    /* ...and no replacement was tried past it, with that or another one. */
    for (int i = 1; i < atomic_load(&stuck.calls) && i < 8; i++)
        assert_int_equal(stuck.seen[i], stuck.seen[0]);
    assert_int_equal(atomic_load(&stuck.calls), 1);
    shp_last_error e;
    assert_int_equal(shp_acquire_last_error(&e), 0);
    assert_int_equal(e.err, -ETIMEDOUT);
    assert_string_equal(e.op, "prepare");
    fx_finish(f);
}

static int recording_prepare(void *ctx, void *handle)
{
    (void)ctx;
    (void)handle;
    int i = atomic_fetch_add(&stuck.calls, 1);
    if (i < 8)
        stuck.seen[i] = shp_connect_deadline_ns();
    return 0;
}

/* A prepare of an acquire that may not wait (timeout 0) has no deadline;
 * one of an acquire with a timeout has start + timeout; outside a hook
 * there is none. */
static void test_prepare_deadline_per_acquire(void **state)
{
    (void)state;
    fx *f = fx_new(1, 1);
    f->ops.prepare = recording_prepare;
    fx_start(f);
    memset(&stuck, 0, sizeof stuck);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
    assert_int_equal(shp_release(c), 0);
    int64_t before = now_ns();
    assert_int_equal(shp_acquire(f->pool, &c, 7 * NS_PER_S), 0);
    int64_t after = now_ns();
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(atomic_load(&stuck.calls), 2);
    assert_int_equal(stuck.seen[0], -1);
    assert_true(stuck.seen[1] >= before + 7 * NS_PER_S && stuck.seen[1] <= after + 7 * NS_PER_S);
    assert_int_equal(shp_connect_deadline_ns(), -1);
    fx_finish(f);
}

/* The fake backend's prepare (which refuses while prepare_fail_next > 0) and
 * connect, each recording the deadline it saw in stuck.seen, in call order. */
static int (*plain_connect)(void *, void **);

static int recording_refusing_prepare(void *ctx, void *handle)
{
    recording_prepare(ctx, handle);
    return fake_prepare(ctx, handle);
}

static int recording_connect(void *ctx, void **handle)
{
    recording_prepare(ctx, NULL);
    return plain_connect(ctx, handle);
}

/* A refused connection's replacement continues the acquire: its connect and
 * its prepare see exactly the deadline the refused prepare saw, not one
 * computed anew. */
static void test_replacement_continues_the_deadline(void **state)
{
    (void)state;
    fx *f = fx_new(1, 1);
    plain_connect = f->ops.connect;
    f->ops.connect = recording_connect;
    f->ops.prepare = recording_refusing_prepare;
    fx_start(f); /* the prefill's connect is outside any acquire */
    memset(&stuck, 0, sizeof stuck);
    atomic_store(&f->fb.prepare_fail_next, 1);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 500 * NS_PER_MS), 0);
    assert_int_equal(atomic_load(&stuck.calls), 3); /* prepare (refused), connect, prepare */
    assert_true(stuck.seen[0] > 0);
    assert_int_equal(stuck.seen[1], stuck.seen[0]);
    assert_int_equal(stuck.seen[2], stuck.seen[0]);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

/* ---- no callback starts after the acquire's deadline --------------------------------- */

/* Hooks that record whether they were started past the deadline of the
 * acquire they serve; the check behaves like a backend that never answers:
 * it waits out the deadline and fails with -ETIMEDOUT. */
static struct {
    atomic_int checks, connects, late;
} hk;

static void note_start(atomic_int *n)
{
    atomic_fetch_add(n, 1);
    int64_t d = shp_connect_deadline_ns();
    if (d >= 0 && now_ns() >= d)
        atomic_fetch_add(&hk.late, 1);
}

static int silent_check(void *ctx, void *handle)
{
    (void)ctx;
    (void)handle;
    note_start(&hk.checks);
    int64_t d = shp_connect_deadline_ns();
    if (d < 0)
        return 0; /* the reaper's: healthy */
    for (int64_t now; (now = now_ns()) < d;)
        poll(NULL, 0, (int)((d - now + NS_PER_MS - 1) / NS_PER_MS));
    return -ETIMEDOUT;
}

static shp_ops recording_ops(fx *f)
{
    shp_ops ops = fake_ops(&f->fb);
    ops.check = silent_check;
    return ops;
}

/* The first idle connection's validation eats the whole deadline: the
 * acquire must neither validate the second one nor connect a new one after
 * it, so one timeout costs one connection, not every one it touches. */
static void test_no_callback_after_the_deadline(void **state)
{
    (void)state;
    fx *f = fx_new(0, 3);
    f->cfg.shards = 1;
    f->cfg.thread_cache = false;
    f->cfg.validate_idle_ns = 0; /* every hand-out of an idle one is validated */
    f->cfg.breaker_threshold = 0;
    f->cfg.reaper_interval_ns = NS_PER_MS; /* the coarse clock moves */
    f->ops = recording_ops(f);
    fx_start(f);
    shp_conn *a, *b;
    assert_int_equal(shp_acquire(f->pool, &a, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &b, 0), 0);
    assert_int_equal(shp_release(a), 0);
    assert_int_equal(shp_release(b), 0);
    memset(&hk, 0, sizeof hk);
    uint64_t connects_before = atomic_load(&f->fb.connect_calls);
    /* idle past validate_idle_ns (0) on the pool's coarse clock */
    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while ((atomic_load(&f->pool->tick) <= atomic_load(&a->last_used) ||
            atomic_load(&f->pool->tick) <= atomic_load(&b->last_used)) && now_ns() < give_up)
        sched_yield();

    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 50 * NS_PER_MS), -ETIMEDOUT);
    assert_int_equal(atomic_load(&hk.late), 0);
    assert_int_equal(atomic_load(&hk.checks), 1);
    assert_int_equal(atomic_load(&f->fb.connect_calls), connects_before);
    shp_stats st = stats_of(f);
    assert_int_equal(st.health_failed, 1); /* the one it validated */
    assert_int_equal(st.live, 1);            /* the other is still there, idle */
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.connect_failures, 0);
    fx_finish(f);
}

/* ---- INT64_MAX everywhere a duration is accepted ------------------------------------ */

struct waiter {
    shp_pool *pool;
    int64_t timeout_ns;
    shp_conn *got;
    int err;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->err = shp_acquire(w->pool, &w->got, w->timeout_ns);
    return NULL;
}

static void wait_for_waiters(fx *f, uint64_t n)
{
    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while (stats_of(f).waiters != n && now_ns() < give_up)
        sched_yield();
    assert_int_equal(stats_of(f).waiters, n);
}

/* A waiter with timeout INT64_MAX (or the pool's, INT64_MAX) waits - its
 * deadline "never", not a wrapped one in the past - and is served by a
 * release. */
static void serve_waiter(fx *f, int64_t timeout_ns)
{
    shp_conn *held;
    assert_int_equal(shp_acquire(f->pool, &held, 0), 0);
    struct waiter w = { .pool = f->pool, .timeout_ns = timeout_ns };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    wait_for_waiters(f, 1);
    assert_int_equal(shp_release(held), 0);
    pthread_join(th, NULL);
    assert_int_equal(w.err, 0);
    assert_ptr_equal(w.got, held);
    assert_int_equal(shp_release(w.got), 0);
}

static void test_int64_max_durations(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    f->cfg.acquire_timeout_ns = INT64_MAX;
    f->cfg.idle_timeout_ns = INT64_MAX;
    f->cfg.max_lifetime_ns = INT64_MAX;
    f->cfg.health_interval_ns = INT64_MAX;
    f->cfg.validate_idle_ns = INT64_MAX;
    f->cfg.reaper_interval_ns = INT64_MAX;
    f->cfg.retry_base_ns = INT64_MAX;
    f->cfg.retry_cap_ns = INT64_MAX;
    f->cfg.breaker_probe_ns = INT64_MAX;
    f->cfg.metrics_interval_ns = INT64_MAX;
    f->cfg.alert_acquire_p99_ns = INT64_MAX;
    f->cfg.handoff_after_ns = INT64_MAX;
    assert_int_equal(shp_config_validate(&f->cfg), 0);
    fx_start(f);

    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, INT64_MAX), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(shp_acquire(f->pool, &c, -1), 0);
    assert_int_equal(shp_release(c), 0);
    serve_waiter(f, INT64_MAX);
    serve_waiter(f, -1);
    /* evict kicks the reaper: a pass (with its metrics tick) at these
     * intervals, and a new connection made at the lifetime INT64_MAX */
    assert_int_equal(shp_pool_evict(f->pool), 0);
    assert_int_equal(shp_acquire(f->pool, &c, INT64_MAX), 0);
    assert_int_equal(shp_release(c), 0);
    /* a connect failure's backoff at base INT64_MAX: no retry fits a
     * finite deadline, none overflows */
    assert_int_equal(shp_pool_evict(f->pool), 0);
    atomic_store(&f->fb.fail_next, 1);
    assert_int_equal(shp_acquire(f->pool, &c, 50 * NS_PER_MS), -ECONNREFUSED);

    /* the doubling of the backoff ceiling saturates at the cap */
    shp_config rc;
    shp_config_init(&rc);
    rc.retry_base_ns = 1;
    rc.retry_cap_ns = INT64_MAX;
    for (unsigned attempt = 0; attempt < 200; attempt += 7)
        assert_true(shp__backoff_ns(&rc, attempt) >= 0);
    assert_true(shp__add_sat(INT64_MAX, 1) == INT64_MAX);
    assert_true(shp__add_sat(INT64_MIN, -1) == INT64_MIN);
    assert_true(shp__add_sat(5, -7) == -2);

    assert_int_equal(shp_pool_destroy(f->pool, INT64_MAX), 0);
    assert_int_equal(fake_open_now(&f->fb), 0);
    shp_quiesce();
    free(f);
}

/* ---- the reaper's sweep never holds an acquirer past its deadline ------------------ */

/* The reaper, at SHP__TP_SWEEP_HELD for `pool`, holds every idle connection
 * of the shard until the test lets go (or 10 s pass: the failure case). */
static struct sweep_hold {
    shp_pool *pool;
    atomic_int held;      /* 1 while the reaper is held */
    atomic_bool let_go;
    atomic_bool gave_up;  /* the test never let go: the acquire did not return */
} hold;

static void sweep_hook(shp_pool *p, enum shp__test_point where, void *arg)
{
    (void)arg;
    if (where != SHP__TP_SWEEP_HELD || p != hold.pool || atomic_exchange(&hold.held, 1) != 0)
        return;
    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while (!atomic_load(&hold.let_go) && now_ns() < give_up)
        sched_yield();
    atomic_store(&hold.gave_up, !atomic_load(&hold.let_go));
    atomic_store(&hold.held, 2);
}

static void test_acquire_does_not_spin_on_the_sweep(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    f->cfg.shards = 1;
    f->cfg.thread_cache = false;
    f->cfg.health_interval_ns = 3600 * NS_PER_S;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
    assert_int_equal(shp_release(c), 0);

    hold = (struct sweep_hold){ .pool = f->pool };
    __atomic_store_n(&shp__test_hook, sweep_hook, __ATOMIC_RELEASE);
    atomic_store(&c->last_checked, INT64_MIN / 2); /* due: the next pass sweeps */
    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while (atomic_load(&hold.held) != 1 && now_ns() < give_up)
        sched_yield();
    assert_int_equal(atomic_load(&hold.held), 1);

    /* The only connection is in the reaper's hands and the pool is at
     * max_size: the acquire must time out while the reaper is still held. */
    int err = shp_acquire(f->pool, &c, 50 * NS_PER_MS);
    int still_held = atomic_load(&hold.held);
    atomic_store(&hold.let_go, true);
    while (atomic_load(&hold.held) != 2)
        sched_yield();
    __atomic_store_n(&shp__test_hook, NULL, __ATOMIC_RELEASE);
    assert_int_equal(still_held, 1);
    assert_false(atomic_load(&hold.gave_up));
    assert_int_equal(err, -ETIMEDOUT);
    /* Once the sweep ends, the connection is back. */
    assert_int_equal(shp_acquire(f->pool, &c, 5 * NS_PER_S), 0);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_gets_what_is_left_of_the_deadline),
        cmocka_unit_test(test_prepare_deadline_per_acquire),
        cmocka_unit_test(test_replacement_continues_the_deadline),
        cmocka_unit_test(test_no_callback_after_the_deadline),
        cmocka_unit_test(test_int64_max_durations),
        cmocka_unit_test(test_acquire_does_not_spin_on_the_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
