/*
 * tools/shpbench_hist.c - see shpbench_hist.h.
 */
#include "shpbench_hist.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void shpb_hist_reset(shpb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void shpb_hist_merge(shpb_hist *dst, const shpb_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < SHPB_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum = dst->sum + src->sum < dst->sum ? UINT64_MAX : dst->sum + src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t shpb_hist_bucket_lo(unsigned idx)
{
    if (idx < 2 * SHPB_HIST_SUB)
        return idx;
    unsigned shift = idx / SHPB_HIST_SUB - 1;
    uint64_t mantissa = idx - shift * SHPB_HIST_SUB; /* in [SUB, 2*SUB) */
    return mantissa << shift;
}

uint64_t shpb_hist_bucket_hi(unsigned idx)
{
    if (idx < 2 * SHPB_HIST_SUB)
        return idx;
    unsigned shift = idx / SHPB_HIST_SUB - 1;
    return shpb_hist_bucket_lo(idx) + ((1ULL << shift) - 1);
}

uint64_t shpb_hist_quantile(const shpb_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SHPB_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t hi = shpb_hist_bucket_hi(i);
            return hi < h->max ? hi : h->max;
        }
    }
    return h->max;
}

double shpb_hist_mean(const shpb_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

int shpb_hist_self_test(void)
{
    int bad = 0;
    /* Every bucket's bounds map back to it, and buckets tile the range. */
    for (unsigned i = 0; i < SHPB_HIST_BUCKETS; i++) {
        uint64_t lo = shpb_hist_bucket_lo(i), hi = shpb_hist_bucket_hi(i);
        if (shpb_hist_index(lo) != i || shpb_hist_index(hi) != i) {
            fprintf(stderr, "hist self-test: bucket %u [%llu, %llu] does not round-trip\n", i,
                    (unsigned long long)lo, (unsigned long long)hi);
            bad = 1;
            break;
        }
        if (i + 1 < SHPB_HIST_BUCKETS && shpb_hist_bucket_lo(i + 1) != hi + 1) {
            fprintf(stderr, "hist self-test: gap after bucket %u\n", i);
            bad = 1;
            break;
        }
        if (hi - lo > lo / SHPB_HIST_SUB) {
            fprintf(stderr, "hist self-test: bucket %u wider than 1/%u\n", i, SHPB_HIST_SUB);
            bad = 1;
            break;
        }
    }
    if (shpb_hist_bucket_hi(SHPB_HIST_BUCKETS - 1) != UINT64_MAX) {
        fprintf(stderr, "hist self-test: last bucket does not end at UINT64_MAX\n");
        bad = 1;
    }
    /* 1..100000 ns, each once, recorded in two halves and merged. */
    static shpb_hist a, b;
    shpb_hist_reset(&a);
    shpb_hist_reset(&b);
    for (uint64_t v = 1; v <= 100000; v++)
        shpb_hist_record(v % 2 ? &a : &b, v);
    shpb_hist_merge(&a, &b);
    static const struct {
        double q;
        double want;
    } qs[] = { { 0.5, 50000 }, { 0.99, 99000 }, { 0.999, 99900 }, { 1.0, 100000 } };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double got = (double)shpb_hist_quantile(&a, qs[i].q);
        if (got < qs[i].want || got > qs[i].want * (1.0 + 1.0 / SHPB_HIST_SUB)) {
            fprintf(stderr, "hist self-test: q%.3f = %.0f, want %.0f (+1/%u)\n", qs[i].q, got,
                    qs[i].want, SHPB_HIST_SUB);
            bad = 1;
        }
    }
    if (a.count != 100000 || a.min != 1 || a.max != 100000 ||
        fabs(shpb_hist_mean(&a) - 50000.5) > 1e-6) {
        fprintf(stderr, "hist self-test: count/min/max/mean wrong\n");
        bad = 1;
    }
    return bad ? -1 : 0;
}
