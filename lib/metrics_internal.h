/*
 * metrics_internal.h - the library's side of the metrics (internal;
 * metrics.c): set-up, the closed connections' totals, the reaper's metrics
 * pass.  What is counted where is in shardpool/metrics.h.
 */
#ifndef SHP_METRICS_INTERNAL_H
#define SHP_METRICS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "pool_internal.h"

/* What the reaper's metrics pass keeps between intervals (read and written
 * by the reaper only; what it publishes is in the pool, under mx_lock). */
struct shp__metrics_state {
    int64_t next_ns;              /* when the next pass is due */
    bool have_prev;
    shp_metrics prev;             /* the previous pass's snapshot */
    struct shp__hist_copy prev_acq;
    uint32_t raised;              /* alerts raised now (bit per shp_alert) */
};

/* Allocates p's histograms, the reaper's metrics state and the history
 * ring (p->shards made).  Returns 0 or -ENOMEM (then shp__metrics_free). */
int shp__metrics_init(shp_pool *p);
/* Frees what shp__metrics_init made (also after it failed halfway). */
void shp__metrics_free(shp_pool *p);
/* Runs the reaper's metrics pass (alerts, history, monitor) if due.  The
 * reaper's thread only. */
void shp__metrics_tick(shp_pool *p, int64_t now_ns);
/* Adds conn c's counters to the pool's closed totals; reg_lock held. */
void shp__metrics_retire(shp_pool *p, shp_conn *c);

#endif
