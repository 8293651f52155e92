/*
 * hist.h - log-linear latency histogram (internal).
 *
 * Values (ns) below 64 have a bucket each; above, each power of two
 * [2^e, 2^(e+1)) is cut into 32 equal buckets, so a bucket is at most 1/32
 * of its lower bound wide and its midpoint is within 1/64 (1.6 %) of every
 * value in it.  Values from 2^41 ns (~37 min) up land in the last bucket.
 * Hand-written (not HdrHistogram_c, which Debian does not package) because
 * recording must be a relaxed atomic add that ThreadSanitizer sees.
 *
 * A recording histogram (struct shp__hist) is written concurrently with
 * relaxed atomics and merged into a plain one (struct shp__hist_copy) for
 * reading.
 */
#ifndef SHP_HIST_H
#define SHP_HIST_H

#include <shardpool/metrics.h>
#include <stdatomic.h>
#include <stdint.h>

#define SHP__HIST_SUB_BITS 5                       /* 32 buckets per power of two */
#define SHP__HIST_SUB      (1u << SHP__HIST_SUB_BITS)
#define SHP__HIST_MAX_EXP  40                      /* last exact power: [2^40, 2^41) */
#define SHP__HIST_N        ((SHP__HIST_MAX_EXP - SHP__HIST_SUB_BITS + 1) * SHP__HIST_SUB + SHP__HIST_SUB)

struct shp__hist {
    _Atomic uint64_t n[SHP__HIST_N];
    _Atomic uint64_t sum;                          /* of value * weight */
    _Atomic uint64_t max;
} __attribute__((aligned(64))); /* a cache line multiple: own lines, aligned_alloc-able */

struct shp__hist_copy {
    uint64_t n[SHP__HIST_N];
    uint64_t count, sum, max;
};

/* The bucket of value v (ns; negatives count as 0). */
static inline unsigned shp__hist_index(int64_t v)
{
    if (v < (int64_t)(2 * SHP__HIST_SUB))
        return v < 0 ? 0 : (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll((uint64_t)v);
    if (e > SHP__HIST_MAX_EXP)
        return SHP__HIST_N - 1;
    unsigned shift = e - SHP__HIST_SUB_BITS;
    return (e - SHP__HIST_SUB_BITS) * SHP__HIST_SUB + (unsigned)((uint64_t)v >> shift);
}

/* Lowest value of bucket i, and its width. */
static inline int64_t shp__hist_lo(unsigned i)
{
    if (i < 2 * SHP__HIST_SUB)
        return i;
    unsigned e = i / SHP__HIST_SUB + SHP__HIST_SUB_BITS - 1;
    uint64_t sub = i % SHP__HIST_SUB + SHP__HIST_SUB;
    return (int64_t)(sub << (e - SHP__HIST_SUB_BITS));
}

static inline int64_t shp__hist_width(unsigned i)
{
    if (i < 2 * SHP__HIST_SUB)
        return 1;
    return (int64_t)1 << (i / SHP__HIST_SUB - 1);
}

/* Adds weight observations of value v.  Thread-safe, lock-free. */
static inline void shp__hist_record(struct shp__hist *h, int64_t v, uint64_t weight)
{
    if (v < 0)
        v = 0;
    atomic_fetch_add_explicit(&h->n[shp__hist_index(v)], weight, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, (uint64_t)v * weight, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    while ((uint64_t)v > m &&
           !atomic_compare_exchange_weak_explicit(&h->max, &m, (uint64_t)v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* shp__hist_record for a histogram that only the calling thread records
 * into (others may merge it meanwhile): relaxed loads and stores, no
 * read-modify-write, so it costs what plain adds cost.  Two threads
 * recording into one histogram this way lose counts. */
static inline void shp__hist_record_owned(struct shp__hist *h, int64_t v, uint64_t weight)
{
    if (v < 0)
        v = 0;
    _Atomic uint64_t *b = &h->n[shp__hist_index(v)];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + weight,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum,
                          atomic_load_explicit(&h->sum, memory_order_relaxed) + (uint64_t)v * weight,
                          memory_order_relaxed);
    if ((uint64_t)v > atomic_load_explicit(&h->max, memory_order_relaxed))
        atomic_store_explicit(&h->max, (uint64_t)v, memory_order_relaxed);
}

/* Adds h's current counts into *out (which the caller zeroed). */
void shp__hist_merge(struct shp__hist_copy *out, struct shp__hist *h);
/* The value below which a fraction q (0..1) of the observations fall: the
 * midpoint of the bucket holding that rank; 0 if empty. */
int64_t shp__hist_quantile(const struct shp__hist_copy *h, double q);
/* *out = a - b bucket by bucket (b an earlier copy of the same histogram). */
void shp__hist_diff(struct shp__hist_copy *out, const struct shp__hist_copy *a,
                    const struct shp__hist_copy *b);
/* Fills the public summary from a merged copy. */
void shp__hist_summarize(shp_hist_summary *out, const struct shp__hist_copy *h);

#endif
