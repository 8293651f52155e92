/*
 * metrics_test.c - shardpool/metrics.h: the counters' exactness under
 * oversubscribed load, closes by reason, per-connection info, alerts with
 * hysteresis, and history (the histogram: hist_test.c; evict:
 * evict_test.c).
 *
 * The reaper's metrics pass is observed through shp_pool_history (the pass
 * appends one snapshot per interval): a test that needs "n more passes"
 * waits for the history to grow, in a bounded polling loop.  Alert callbacks
 * are recorded under a mutex and waited for on a condition variable with a
 * deadline.  No test asserts how long anything took.
 */
#include <errno.h>
#include <pthread.h>
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

#include <cmocka.h>

#include <shardpool.h>

#include "fakeconn.h"
#define FX_POOL_NAME "metrics"
#include "fixture.h"
#include "testutil.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL


/* ---- counters ------------------------------------------------------------------- */

static void test_counters_single_thread(void **state)
{
    (void)state;
    fx *f = fx_new(0, 4);
    f->cfg.metrics_sample = 1; /* time every acquire: counts are exact */
    fx_start(f);
    shp_conn *c[3];
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 3; i++)
            assert_int_equal(shp_acquire(f->pool, &c[i], 0), 0);
        for (int i = 0; i < 3; i++)
            assert_int_equal(shp_release(c[i]), 0);
    }
    shp_metrics m = metrics_of(f);
    assert_string_equal(m.pool, "metrics");
    assert_int_equal(m.acquisitions, 300);
    assert_int_equal(m.releases, 300);
    assert_int_equal(m.creations, 3);
    /* Every acquire came from the home shard, another shard, or a connect. */
    assert_int_equal(m.fast_hits + m.steals + m.creations, 300);
    assert_int_equal(m.acquire.count, 300);
    assert_int_equal(m.hold.count, 300);
    assert_true(m.acquire.p50_ns > 0 && m.acquire.p50_ns <= m.acquire.p99_ns);
    assert_true(m.acquire.p99_ns <= m.acquire.max_ns + m.acquire.max_ns / 32);
    assert_int_equal(m.acquire.le[SHP_METRICS_LE_N - 1], 300);
    assert_int_equal(m.live, 3);
    assert_int_equal(m.idle, 3);
    assert_int_equal(m.in_use, 0);
    assert_int_equal(m.max_size, 4);
    assert_true(m.age_min_ns > 0 && m.age_min_ns <= m.age_avg_ns && m.age_avg_ns <= m.age_max_ns);
    assert_int_equal(m.acquire_failures, 0);
    assert_true(m.utilization == 0.0);

    /* The exporters take a live snapshot as they take a hand-made one. */
    static char text[65536];
    int len = shp_metrics_prometheus(&m, 1, text, sizeof text);
    assert_true(len > 0 && len < (int)sizeof text);
    assert_non_null(strstr(text, "shardpool_acquisitions_total{pool=\"metrics\"} 300\n"));
    assert_non_null(strstr(text, "shardpool_acquire_duration_seconds_count{pool=\"metrics\"} 300\n"));
    len = shp_metrics_json(&m, 1, text, sizeof text);
    assert_true(len > 0 && len < (int)sizeof text);
    assert_non_null(strstr(text, "\"acquisitions\":300"));

    shp_stats st;
    assert_int_equal(shp_pool_stats(f->pool, &st), 0);
    assert_int_equal(st.acquisitions, 300);
    assert_int_equal(st.creations, 3);
    fx_finish(f);
}

static void test_sampled_counts_are_weighted(void **state)
{
    (void)state;
    /* Two pools used alternately by one thread: A times every acquire, B
     * one in 16.  A pattern with the sampling period must not alias: A's
     * counts are exact, B's unbiased (200 * 16 samples expected: the bounds
     * are over 6 standard deviations wide). */
    fx *a = fx_new(1, 1), *b = fx_new(1, 1);
    a->cfg.metrics_sample = 1;
    b->cfg.metrics_sample = 16;
    a->cfg.name = "a";
    b->cfg.name = "b";
    fx_start(a);
    fx_start(b);
    enum { N = 16 * 2000 };
    for (int i = 0; i < N; i++) {
        shp_conn *c;
        assert_int_equal(shp_acquire(a->pool, &c, -1), 0);
        assert_int_equal(shp_release(c), 0);
        assert_int_equal(shp_acquire(b->pool, &c, -1), 0);
        assert_int_equal(shp_release(c), 0);
    }
    shp_metrics ma = metrics_of(a), mb = metrics_of(b);
    assert_int_equal(ma.acquisitions, N);
    assert_int_equal(ma.acquire.count, N);
    assert_int_equal(ma.hold.count, N);
    assert_int_equal(mb.acquisitions, N); /* the counter itself is exact */
    assert_true(mb.acquire.count >= N * 85 / 100 && mb.acquire.count <= N * 115 / 100);
    assert_true(mb.hold.count >= N * 85 / 100 && mb.hold.count <= N * 115 / 100);
    assert_int_equal(mb.hold.count % 16, 0);
    fx_finish(a);
    fx_finish(b);
}

struct churn {
    shp_pool *pool;
    int ops;
    int failures;
};

static void *churn_main(void *arg)
{
    struct churn *ch = arg;
    for (int i = 0; i < ch->ops; i++) {
        shp_conn *c;
        if (shp_acquire(ch->pool, &c, 10 * NS_PER_S) != 0) {
            ch->failures++;
            continue;
        }
        if (i % 97 == 0)
            sched_yield(); /* vary hold times */
        if (shp_release(c) != 0)
            ch->failures++;
    }
    return NULL;
}

struct watcher {
    shp_pool *pool;
    atomic_bool stop;
    int snapshots;
    int backwards;
};

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    shp_metrics prev;
    memset(&prev, 0, sizeof prev);
    while (!atomic_load(&w->stop)) {
        shp_metrics m;
        if (shp_pool_metrics(w->pool, &m) != 0) {
            w->backwards++;
            break;
        }
        if (m.acquisitions < prev.acquisitions || m.releases < prev.releases ||
            m.fast_hits < prev.fast_hits || m.acquire.count < prev.acquire.count ||
            m.creations < prev.creations)
            w->backwards++;
        prev = m;
        w->snapshots++;
    }
    return NULL;
}

/* 16 threads on 2 cores, a pool of 4 with an aggressive reaper, every
 * acquire timed: the counters add up exactly and never go backwards. */
static void test_counters_exact_under_load(void **state)
{
    (void)state;
    fx *f = fx_new(0, 4);
    f->cfg.metrics_sample = 1;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    f->cfg.idle_timeout_ns = 2 * NS_PER_MS; /* connections come and go */
    f->cfg.metrics_interval_ns = 5 * NS_PER_MS;
    fx_start(f);
    enum { T = 16, OPS = 20000 };
    pthread_t th[T], wt;
    struct churn ch[T];
    struct watcher w = { .pool = f->pool };
    assert_int_equal(pthread_create(&wt, NULL, watch_main, &w), 0);
    for (int i = 0; i < T; i++) {
        ch[i] = (struct churn){ .pool = f->pool, .ops = OPS };
        assert_int_equal(pthread_create(&th[i], NULL, churn_main, &ch[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ch[i].failures, 0);
    }
    atomic_store(&w.stop, true);
    pthread_join(wt, NULL);
    assert_int_equal(w.backwards, 0);
    assert_true(w.snapshots > 0);
    shp_metrics m = metrics_of(f);
    assert_int_equal(m.acquisitions, (uint64_t)T * OPS);
    assert_int_equal(m.releases, (uint64_t)T * OPS);
    assert_int_equal(m.acquire.count, (uint64_t)T * OPS);
    assert_int_equal(m.hold.count, (uint64_t)T * OPS);
    assert_int_equal(m.acquire_failures, 0);
    uint64_t closed = 0;
    for (int r = 0; r < SHP_CLOSE_NREASONS; r++)
        closed += m.closes[r];
    assert_int_equal(m.creations - closed, m.live);
    assert_int_equal(m.in_use, 0);
    fx_finish(f);
}

/* ---- closes, failures, errors, evict --------------------------------------------- */

static void test_closes_by_reason(void **state)
{
    (void)state;
    fx *f = fx_new(0, 4);
    f->cfg.max_uses = 2;
    fx_start(f);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
    assert_int_equal(shp_release_broken(c), 0);
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0); /* its second use */
    assert_int_equal(shp_release(c), 0);              /* closed: max_uses */
    atomic_store(&f->fb.connect_err, -ECONNREFUSED);
    assert_int_equal(shp_acquire(f->pool, &c, 0), -ECONNREFUSED);
    shp_metrics m = metrics_of(f);
    assert_int_equal(m.closes[SHP_CLOSE_BROKEN], 1);
    assert_int_equal(m.closes[SHP_CLOSE_MAX_USES], 1);
    assert_int_equal(m.closes[SHP_CLOSE_IDLE], 0);
    assert_int_equal(m.acquire_failures, 1);
    assert_true(m.connect_failures >= 1);
    assert_int_equal(m.releases, 3);
    assert_string_equal(shp_close_reason_name(SHP_CLOSE_EVICTED), "evicted");
    assert_string_equal(shp_close_reason_name((shp_close_reason)99), "unknown");
    atomic_store(&f->fb.connect_err, 0);
    fx_finish(f);
}

static void test_timeouts_counted(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1);
    fx_start(f);
    shp_conn *c, *d;
    assert_int_equal(shp_acquire(f->pool, &c, 0), 0);
    assert_int_equal(shp_acquire(f->pool, &d, 0), -EAGAIN);
    assert_int_equal(shp_acquire(f->pool, &d, NS_PER_MS), -ETIMEDOUT);
    shp_metrics m = metrics_of(f);
    assert_int_equal(m.timeouts, 2);
    assert_int_equal(m.acquire_failures, 2);
    assert_int_equal(m.waits, 1);
    assert_int_equal(m.in_use, 1);
    assert_true(m.utilization == 1.0);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

static void test_conn_error_and_info(void **state)
{
    (void)state;
    log_start_level(SHP_LOG_WARN);
    fx *f = fx_new(2, 4);
    fx_start(f);
    shp_conn *c;
    assert_int_equal(shp_acquire(f->pool, &c, -1), 0);
    assert_int_equal(shp_conn_error(c, -EIO), 0);
    assert_int_equal(shp_conn_error(c, -EPIPE), 0);
    assert_int_equal(shp_conn_error(c, 5), -EINVAL);
    assert_int_equal(shp_conn_error(NULL, -EIO), -EINVAL);
    shp_conn_info info[8];
    int n = shp_pool_conn_info(f->pool, info, 8);
    assert_int_equal(n, 2);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (info[i].id != (const void *)c)
            continue;
        seen++;
        assert_string_equal(info[i].state, "in_use");
        assert_int_equal(info[i].errors, 2);
        assert_int_equal(info[i].last_error, -EPIPE);
        assert_int_equal(info[i].uses, 1);
        assert_true(info[i].created_ns > 0);
    }
    assert_int_equal(seen, 1);
    assert_int_equal(shp_pool_conn_info(f->pool, info, 1), 2); /* more than cap */
    assert_int_equal(shp_pool_conn_info(f->pool, NULL, 0), 2);
    assert_int_equal(shp_pool_conn_info(f->pool, NULL, 3), -EINVAL);
    assert_int_equal(metrics_of(f).errors, 2);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(shp_conn_error(c, -EIO), -EALREADY); /* not borrowed */
    assert_non_null(strstr(log_buf, "event=conn_error_not_borrowed"));
    fx_finish(f);
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
}

/* ---- alerts and history ------------------------------------------------------------ */

struct alert_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int alert[64];
    bool raised[64];
    double value[64];
};

static struct alert_log alog = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {0}, {0} };

static void on_alert(shp_pool *p, int alert, bool raised, double value, double threshold, void *ud)
{
    (void)p;
    (void)threshold;
    (void)ud;
    pthread_mutex_lock(&alog.mu);
    if (alog.n < 64) {
        alog.alert[alog.n] = alert;
        alog.raised[alog.n] = raised;
        alog.value[alog.n] = value;
        alog.n++;
    }
    pthread_cond_broadcast(&alog.cv);
    pthread_mutex_unlock(&alog.mu);
}

static void alog_reset(void)
{
    pthread_mutex_lock(&alog.mu);
    alog.n = 0;
    pthread_mutex_unlock(&alog.mu);
}

/* Waits (10 s at most) for the n-th alert event; returns its index or -1. */
static int alog_wait(int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&alog.mu);
    while (alog.n < n)
        if (pthread_cond_timedwait(&alog.cv, &alog.mu, &ts) != 0)
            break;
    int got = alog.n >= n ? n - 1 : -1;
    pthread_mutex_unlock(&alog.mu);
    return got;
}

static int alog_count(void)
{
    pthread_mutex_lock(&alog.mu);
    int n = alog.n;
    pthread_mutex_unlock(&alog.mu);
    return n;
}

/* Waits until the reaper has run `passes` more metrics passes. */
static void wait_passes(shp_pool *p, int passes)
{
    static shp_metrics h[4];
    int n = shp_pool_history(p, h, 1);
    int64_t last = n == 1 ? h[0].mono_ns : 0;
    int64_t end = now_ns() + 10 * NS_PER_S;
    while (passes > 0 && now_ns() < end) {
        nap_ms(1);
        if (shp_pool_history(p, h, 1) == 1 && h[0].mono_ns != last) {
            last = h[0].mono_ns;
            passes--;
        }
    }
    assert_int_equal(passes, 0);
}

static fx *alert_fx(unsigned max, double utilization)
{
    fx *f = fx_new(0, max);
    f->cfg.alert_utilization = utilization;
    f->cfg.reaper_interval_ns = NS_PER_MS;
    f->cfg.metrics_interval_ns = 2 * NS_PER_MS;
    f->cfg.alert_fn = on_alert;
    alog_reset();
    fx_start(f);
    return f;
}

static void test_alert_utilization_hysteresis(void **state)
{
    (void)state;
    fx *f = alert_fx(20, 0.8);
    shp_conn *c[20];
    int held = 0;
    while (held < 18) /* 0.9 > 0.8 */
        assert_int_equal(shp_acquire(f->pool, &c[held++], -1), 0);
    assert_int_equal(alog_wait(1), 0);
    assert_int_equal(alog.alert[0], SHP_ALERT_UTILIZATION);
    assert_true(alog.raised[0]);
    assert_true(alog.value[0] > 0.8);
    assert_true(metrics_of(f).alerts & (1u << SHP_ALERT_UTILIZATION));
    /* 0.8, then 0.75: above 90 % of the threshold (0.72), it stays raised. */
    while (held > 16)
        assert_int_equal(shp_release(c[--held]), 0);
    wait_passes(f->pool, 3);
    assert_int_equal(shp_release(c[--held]), 0);
    wait_passes(f->pool, 3);
    assert_int_equal(alog_count(), 1);
    /* 0.7 <= 0.72: it clears, once. */
    assert_int_equal(shp_release(c[--held]), 0);
    assert_int_equal(alog_wait(2), 1);
    assert_int_equal(alog.alert[1], SHP_ALERT_UTILIZATION);
    assert_false(alog.raised[1]);
    wait_passes(f->pool, 3);
    assert_int_equal(alog_count(), 2);
    assert_int_equal(metrics_of(f).alerts, 0);
    while (held > 0)
        assert_int_equal(shp_release(c[--held]), 0);
    fx_finish(f);
}

static void test_alert_failed_acquires_and_error_rate(void **state)
{
    (void)state;
    fx *f = alert_fx(1, 0); /* no utilization alert: the pool is full */
    shp_conn *c, *d;
    assert_int_equal(shp_acquire(f->pool, &c, -1), 0);
    wait_passes(f->pool, 1);
    for (int i = 0; i < 50; i++)
        assert_int_equal(shp_acquire(f->pool, &d, 0), -EAGAIN);
    /* Both fire from the interval holding the 50 failures, in either order. */
    bool failed = false, rate = false;
    for (int k = 1; k <= 2; k++) {
        int i = alog_wait(k);
        assert_true(i >= 0);
        assert_true(alog.raised[i]);
        failed |= alog.alert[i] == SHP_ALERT_FAILED_ACQUIRES;
        rate |= alog.alert[i] == SHP_ALERT_ERROR_RATE;
        if (alog.alert[i] == SHP_ALERT_FAILED_ACQUIRES)
            assert_true(alog.value[i] > 5);
        if (alog.alert[i] == SHP_ALERT_ERROR_RATE)
            assert_true(alog.value[i] > 0.05 && alog.value[i] <= 1.0);
    }
    assert_true(failed && rate);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

static void test_history_ring(void **state)
{
    (void)state;
    fx *f = fx_new(1, 2);
    f->cfg.reaper_interval_ns = NS_PER_MS;
    f->cfg.metrics_interval_ns = NS_PER_MS;
    f->cfg.history_len = 5;
    fx_start(f);
    shp_metrics h[8];
    wait_passes(f->pool, 8);
    int n = shp_pool_history(f->pool, h, 8);
    assert_int_equal(n, 5); /* capped at history_len */
    for (int i = 1; i < n; i++) {
        assert_true(h[i].mono_ns > h[i - 1].mono_ns);
        assert_true(h[i].interval_ns > 0);
        assert_string_equal(h[i].pool, "metrics");
    }
    shp_metrics newest[2];
    assert_int_equal(shp_pool_history(f->pool, newest, 2), 2);
    assert_true(newest[1].mono_ns >= h[4].mono_ns); /* the newest, oldest first */
    assert_true(newest[0].mono_ns < newest[1].mono_ns);
    assert_int_equal(shp_pool_history(f->pool, NULL, 0), 0);
    assert_int_equal(shp_pool_history(NULL, h, 8), -EINVAL);
    fx_finish(f);
}

static void test_bad_args(void **state)
{
    (void)state;
    shp_metrics m;
    _Alignas(64) uint64_t junk[64] = { 0 };
    assert_int_equal(shp_pool_metrics(NULL, &m), -EINVAL);
    assert_int_equal(shp_pool_metrics((shp_pool *)junk, &m), -EINVAL);
    assert_int_equal(shp_pool_conn_info(NULL, NULL, 0), -EINVAL);
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.metrics_interval_ns = -1;
    assert_int_equal(shp_config_validate(&cfg), -EINVAL);
    shp_config_init(&cfg);
    assert_int_equal(cfg.metrics_sample, 256);
    assert_int_equal(cfg.history_len, 60);
    assert_true(cfg.alert_utilization == 0.8);
    assert_string_equal(shp_alert_name(SHP_ALERT_ACQUIRE_P99), "acquire_p99");
    assert_string_equal(shp_alert_name((shp_alert)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_single_thread),
        cmocka_unit_test(test_sampled_counts_are_weighted),
        cmocka_unit_test(test_counters_exact_under_load),
        cmocka_unit_test(test_closes_by_reason),
        cmocka_unit_test(test_timeouts_counted),
        cmocka_unit_test(test_conn_error_and_info),
        cmocka_unit_test(test_alert_utilization_hysteresis),
        cmocka_unit_test(test_alert_failed_acquires_and_error_rate),
        cmocka_unit_test(test_history_ring),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
