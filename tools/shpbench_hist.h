/*
 * tools/shpbench_hist.h - a log-linear latency histogram.
 *
 * Hand-written rather than linked: Debian packages HdrHistogram only for Java
 * and Go, and no C library in Debian offers a mergeable, allocation-free
 * recorder that a benchmark's hot loop can afford.  The layout is the usual
 * log-linear one: values below 2*SUB are counted exactly; above, each power
 * of two is cut into SUB equal buckets, so a bucket's width is at most 1/SUB
 * (1.6 %) of its value, from 1 ns up to the full uint64_t range.
 *
 * A histogram belongs to one thread while it records; shpb_hist_merge and
 * the readers run once the recording threads are done.
 */
#ifndef SHPBENCH_HIST_H
#define SHPBENCH_HIST_H

#include <stdint.h>

#define SHPB_HIST_SUB_BITS 6
#define SHPB_HIST_SUB      (1u << SHPB_HIST_SUB_BITS)
/* Largest index: shift 63 - SUB_BITS, mantissa 2*SUB - 1. */
#define SHPB_HIST_BUCKETS  ((64 - SHPB_HIST_SUB_BITS) * SHPB_HIST_SUB + SHPB_HIST_SUB)

typedef struct shpb_hist {
    uint64_t count;
    uint64_t sum;  /* of recorded values, saturating */
    uint64_t min;  /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t buckets[SHPB_HIST_BUCKETS];
} shpb_hist;

/* Empties h. */
void shpb_hist_reset(shpb_hist *h);

/* Bucket index of v (exposed for the self-test). */
static inline unsigned shpb_hist_index(uint64_t v)
{
    if (v < 2 * SHPB_HIST_SUB)
        return (unsigned)v;
    unsigned shift = 63u - (unsigned)__builtin_clzll(v) - SHPB_HIST_SUB_BITS;
    return shift * SHPB_HIST_SUB + (unsigned)(v >> shift);
}

/* Counts one value.  Not thread-safe: one recording thread per histogram. */
static inline void shpb_hist_record(shpb_hist *h, uint64_t v)
{
    h->buckets[shpb_hist_index(v)]++;
    h->count++;
    h->sum = h->sum + v < h->sum ? UINT64_MAX : h->sum + v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* Adds src's counts to dst. */
void shpb_hist_merge(shpb_hist *dst, const shpb_hist *src);

/* The smallest and largest value that fall into bucket idx. */
uint64_t shpb_hist_bucket_lo(unsigned idx);
uint64_t shpb_hist_bucket_hi(unsigned idx);

/* The value at quantile q in [0, 1]: the upper bound of the bucket holding
 * the ceil(q * count)-th smallest value, capped at the largest value
 * recorded (so it never under-reports, and p100 is exact).  0 if empty. */
uint64_t shpb_hist_quantile(const shpb_hist *h, double q);

/* Mean of recorded values, 0 if empty. */
double shpb_hist_mean(const shpb_hist *h);

/* Checks the bucket layout (index/bounds round trip, monotonicity) and the
 * quantiles of a known data set.  Returns 0, or -1 after printing what
 * failed to stderr.  Used by shpbench --self-test. */
int shpb_hist_self_test(void);

#endif
