/*
 * tools/shpbench/latency.h - acquire latencies, recorded in the library's
 * histogram (lib/hist.h: struct shp__hist, log-linear, relaxed atomics) with
 * the little shpbench needs on top: the smallest value, and percentiles
 * kept within the smallest and largest values recorded.
 *
 * Resolution is lib/hist.h's, so shpbench and shp_pool_metrics report alike:
 * values below 64 ns exactly; above, a bucket is at most 1/32 of its lower
 * bound wide and a percentile (its bucket's midpoint) is within 1/64
 * (1.6 %) of the value it stands for; values from 2^41 ns (~37 min) up
 * share the last bucket.  Each worker records into its own recorder with
 * shp__hist_record_owned: no read-modify-write between two timings.
 *
 * A recorder (shpb_lat_rec) belongs to one thread while it records; the
 * read side (shpb_lat) is a plain copy, filled by shpb_lat_add once the
 * recording thread is done.  Uses no other part of shpbench.
 */
#ifndef SHPBENCH_LATENCY_H
#define SHPBENCH_LATENCY_H

#include <stdint.h>

#include "hist.h" /* lib/hist.h */

/* One thread's recorder.  min is a plain field: only its thread writes it. */
typedef struct shpb_lat_rec {
    struct shp__hist h;
    uint64_t min; /* UINT64_MAX while empty */
} shpb_lat_rec;

/* Empties r. */
void shpb_lat_rec_reset(shpb_lat_rec *r);

/* Counts one value (ns).  Only r's own thread may call it. */
static inline void shpb_lat_record(shpb_lat_rec *r, uint64_t ns)
{
    shp__hist_record_owned(&r->h, ns > INT64_MAX ? INT64_MAX : (int64_t)ns, 1);
    if (ns < r->min)
        r->min = ns;
}

/* The merge of one or more recorders, for reading.  h.count, h.sum and
 * h.max are lib's totals. */
typedef struct shpb_lat {
    struct shp__hist_copy h;
    uint64_t min; /* UINT64_MAX while empty */
} shpb_lat;

/* Empties l. */
void shpb_lat_reset(shpb_lat *l);

/* Adds r's counts to l.  r's thread must be done recording. */
void shpb_lat_add(shpb_lat *l, shpb_lat_rec *r);

/* The value at quantile q in [0, 1]: the midpoint of the bucket that holds
 * the ceil(q * count)-th smallest value (lib's shp__hist_quantile), kept
 * within the smallest and largest values recorded, so q = 1 is exact; q <= 0
 * gives the smallest value.  0 if l is empty. */
uint64_t shpb_lat_quantile(const shpb_lat *l, double q);

/* The mean of the values recorded, 0 if none. */
double shpb_lat_mean(const shpb_lat *l);

/* The largest value that falls into bucket i (< SHP__HIST_N); the last
 * bucket has no bound: UINT64_MAX. */
uint64_t shpb_lat_bucket_hi(unsigned i);

/* Checks quantiles, min, max and mean of a known data set recorded by two
 * recorders.  Returns 0, or -1 after printing what failed to stderr.  Used
 * by shpbench --self-test. */
int shpb_lat_self_test(void);

#endif
