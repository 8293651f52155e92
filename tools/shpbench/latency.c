/*
 * tools/shpbench/latency.c - see latency.h.
 */
#include "shpbench/latency.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void shpb_lat_rec_reset(shpb_lat_rec *r)
{
    memset(r, 0, sizeof *r);
    r->min = UINT64_MAX;
}

void shpb_lat_reset(shpb_lat *l)
{
    memset(l, 0, sizeof *l);
    l->min = UINT64_MAX;
}

void shpb_lat_add(shpb_lat *l, shpb_lat_rec *r)
{
    shp__hist_merge(&l->h, &r->h);
    if (r->min < l->min)
        l->min = r->min;
}

uint64_t shpb_lat_bucket_hi(unsigned i)
{
    if (i >= SHP__HIST_N - 1)
        return UINT64_MAX;
    return (uint64_t)(shp__hist_lo(i) + shp__hist_width(i) - 1);
}

uint64_t shpb_lat_quantile(const shpb_lat *l, double q)
{
    if (l->h.count == 0)
        return 0;
    if (q <= 0)
        return l->min;
    if (q >= 1)
        return l->h.max;
    uint64_t v = (uint64_t)shp__hist_quantile(&l->h, q);
    return v < l->min ? l->min : v > l->h.max ? l->h.max : v;
}

double shpb_lat_mean(const shpb_lat *l)
{
    return l->h.count ? (double)l->h.sum / (double)l->h.count : 0.0;
}

int shpb_lat_self_test(void)
{
    int bad = 0;
    /* 1..100000 ns, each once, recorded in two halves. */
    static shpb_lat_rec a, b;
    static shpb_lat l;
    shpb_lat_rec_reset(&a);
    shpb_lat_rec_reset(&b);
    shpb_lat_reset(&l);
    for (uint64_t v = 1; v <= 100000; v++)
        shpb_lat_record(v % 2 ? &a : &b, v);
    shpb_lat_add(&l, &a);
    shpb_lat_add(&l, &b);
    static const struct {
        double q;
        double want;
    } qs[] = { { 0.5, 50000 }, { 0.99, 99000 }, { 0.999, 99900 }, { 1.0, 100000 } };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double got = (double)shpb_lat_quantile(&l, qs[i].q);
        if (fabs(got - qs[i].want) > qs[i].want / (2.0 * SHP__HIST_SUB) + 1) {
            fprintf(stderr, "latency self-test: q%.3f = %.0f, want %.0f (within 1/%u)\n",
                    qs[i].q, got, qs[i].want, 2 * SHP__HIST_SUB);
            bad = 1;
        }
    }
    if (l.h.count != 100000 || l.min != 1 || l.h.max != 100000 ||
        fabs(shpb_lat_mean(&l) - 50000.5) > 1e-6 || shpb_lat_quantile(&l, 0) != 1) {
        fprintf(stderr, "latency self-test: count/min/max/mean wrong\n");
        bad = 1;
    }
    /* Upper bounds tile the range: bucket i + 1 starts right after i. */
    for (unsigned i = 0; i + 1 < SHP__HIST_N; i++) {
        if ((uint64_t)shp__hist_lo(i + 1) != shpb_lat_bucket_hi(i) + 1 ||
            shp__hist_index((int64_t)shpb_lat_bucket_hi(i)) != i) {
            fprintf(stderr, "latency self-test: bucket %u's upper bound is off\n", i);
            bad = 1;
            break;
        }
    }
    return bad ? -1 : 0;
}
