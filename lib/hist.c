/* hist.c - reading the log-linear latency histogram (hist.h): merge,
 * quantiles, interval differences, the public summary. */
#include "hist.h"

#include <string.h>

void shp__hist_merge(struct shp__hist_copy *out, struct shp__hist *h)
{
    for (unsigned i = 0; i < SHP__HIST_N; i++) {
        uint64_t n = atomic_load_explicit(&h->n[i], memory_order_relaxed);
        out->n[i] += n;
        out->count += n;
    }
    out->sum += atomic_load_explicit(&h->sum, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    if (m > out->max)
        out->max = m;
}

int64_t shp__hist_quantile(const struct shp__hist_copy *h, double q)
{
    if (h->count == 0)
        return 0;
    /* The smallest bucket whose cumulative count reaches rank ceil(q * n). */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < SHP__HIST_N; i++) {
        cum += h->n[i];
        if (cum >= rank)
            return shp__hist_lo(i) + shp__hist_width(i) / 2;
    }
    return shp__hist_lo(SHP__HIST_N - 1);
}

void shp__hist_diff(struct shp__hist_copy *out, const struct shp__hist_copy *a,
                    const struct shp__hist_copy *b)
{
    out->count = 0;
    for (unsigned i = 0; i < SHP__HIST_N; i++) {
        out->n[i] = a->n[i] >= b->n[i] ? a->n[i] - b->n[i] : 0;
        out->count += out->n[i];
    }
    out->sum = a->sum >= b->sum ? a->sum - b->sum : 0;
    out->max = a->max; /* the max is since create, not per interval */
}

void shp__hist_summarize(shp_hist_summary *out, const struct shp__hist_copy *h)
{
    static const double le[SHP_METRICS_LE_N] = SHP_METRICS_LE_INIT;
    memset(out, 0, sizeof *out);
    out->count = h->count;
    out->sum_ns = h->sum;
    if (h->count == 0)
        return;
    out->mean_ns = (int64_t)(h->sum / h->count);
    out->p50_ns = shp__hist_quantile(h, 0.50);
    out->p90_ns = shp__hist_quantile(h, 0.90);
    out->p99_ns = shp__hist_quantile(h, 0.99);
    out->p999_ns = shp__hist_quantile(h, 0.999);
    out->max_ns = (int64_t)h->max;
    /* a bucket's midpoint may lie above the largest value recorded in it */
    int64_t *q[] = { &out->p50_ns, &out->p90_ns, &out->p99_ns, &out->p999_ns };
    for (unsigned i = 0; i < 4; i++)
        if (*q[i] > out->max_ns)
            *q[i] = out->max_ns;
    /* A fine bucket counts towards bound j when all of it lies at or below
     * the bound (upper edge lo + width - 1 <= bound). */
    unsigned j = 0;
    uint64_t cum = 0;
    for (unsigned i = 0; i < SHP__HIST_N && j < SHP_METRICS_LE_N; i++) {
        int64_t top = shp__hist_lo(i) + shp__hist_width(i) - 1;
        while (j < SHP_METRICS_LE_N && (double)top > le[j] * 1e9)
            out->le[j++] = cum;
        cum += h->n[i];
    }
    while (j < SHP_METRICS_LE_N)
        out->le[j++] = cum;
}
