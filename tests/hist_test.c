/*
 * hist_test.c - lib/hist.c, the log-linear latency histogram: every value
 * lands in the bucket that holds it, quantiles are within the stated
 * precision, and a summary's le buckets and weights agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <shardpool.h>

#include "hist.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

/* ---- histogram ------------------------------------------------------------------- */

static void test_hist_buckets_cover_values(void **state)
{
    (void)state;
    /* Every value lands in the bucket whose range holds it, buckets are
     * contiguous, and no bucket is wider than 1/32 of its lower bound. */
    for (unsigned i = 0; i + 1 < SHP__HIST_N; i++) {
        assert_int_equal(shp__hist_lo(i) + shp__hist_width(i), shp__hist_lo(i + 1));
        if (shp__hist_lo(i) >= 64)
            assert_true(shp__hist_width(i) * 32 <= shp__hist_lo(i));
    }
    uint64_t x = 88172645463325252ULL;
    for (int k = 0; k < 200000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t v = (int64_t)(x >> (23 + x % 40)); /* spread over all magnitudes */
        unsigned i = shp__hist_index(v);
        assert_true(i < SHP__HIST_N);
        if (v < ((int64_t)1 << 41)) {
            assert_true(shp__hist_lo(i) <= v);
            assert_true(v < shp__hist_lo(i) + shp__hist_width(i));
        } else {
            assert_int_equal(i, SHP__HIST_N - 1);
        }
    }
    assert_int_equal(shp__hist_index(-5), 0);
    assert_int_equal(shp__hist_index(INT64_MAX), SHP__HIST_N - 1);
}

static struct shp__hist *hist_new(void)
{
    struct shp__hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    return h;
}

static void test_hist_quantiles_within_3pct(void **state)
{
    (void)state;
    /* 10 ns .. 100 s: quantiles of a uniform sweep of each decade. */
    for (int64_t base = 10; base <= 10 * NS_PER_S; base *= 10) {
        struct shp__hist *h = hist_new();
        struct shp__hist_copy *c = calloc(1, sizeof *c);
        assert_non_null(c);
        for (int k = 1; k <= 1000; k++)
            shp__hist_record(h, base * k / 100, 1); /* base/100 .. 10*base */
        shp__hist_merge(c, h);
        assert_int_equal(c->count, 1000);
        const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
        for (unsigned q = 0; q < 4; q++) {
            double exact = (double)(base * (int64_t)(qs[q] * 1000) / 100);
            double got = (double)shp__hist_quantile(c, qs[q]);
            if (exact >= 10) /* the range starts at 10 ns */
                assert_true(got >= exact * 0.97 && got <= exact * 1.03);
        }
        assert_int_equal(c->max, (uint64_t)(base * 10));
        free(c);
        free(h);
    }
}

static void test_hist_summary_le_and_weights(void **state)
{
    (void)state;
    struct shp__hist *h = hist_new();
    struct shp__hist_copy *c = calloc(1, sizeof *c);
    assert_non_null(c);
    shp__hist_record(h, 90, 64);        /* 90 ns, weight 64 */
    shp__hist_record(h, 900, 1);        /* 0.9 us */
    shp__hist_record(h, 3 * NS_PER_MS, 2);
    shp__hist_record(h, 200 * NS_PER_S, 1); /* beyond every bound */
    shp__hist_merge(c, h);
    shp_hist_summary s;
    shp__hist_summarize(&s, c);
    assert_int_equal(s.count, 68);
    assert_int_equal(s.sum_ns, 90 * 64 + 900 + 6 * NS_PER_MS + 200 * NS_PER_S);
    static const double le[SHP_METRICS_LE_N] = SHP_METRICS_LE_INIT;
    for (unsigned j = 0; j < SHP_METRICS_LE_N; j++) {
        uint64_t want = (le[j] >= 100e-9 ? 64 : 0) + (le[j] >= 1e-6 ? 1 : 0) +
                        (le[j] >= 5e-3 ? 2 : 0);
        assert_int_equal(s.le[j], want);
        if (j)
            assert_true(s.le[j] >= s.le[j - 1]);
    }
    assert_true(s.p50_ns >= 88 && s.p50_ns <= 92);
    assert_true(s.max_ns == 200 * NS_PER_S);
    free(c);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_buckets_cover_values),
        cmocka_unit_test(test_hist_quantiles_within_3pct),
        cmocka_unit_test(test_hist_summary_le_and_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
