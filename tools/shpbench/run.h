/*
 * tools/shpbench/run.h - one pool's run: the options that describe a
 * workload, the workers that play it against one pool, and what they
 * measured.
 *
 *   worker thread (x threads):
 *     t0 = now; acquire; t1 = now          -> acquire latency (latency.h)
 *     hold: one round trip (roundtrip_bytes), then wait until t1 + hold
 *     release
 *     think: wait a sampled think time (or, with a rate, until the next
 *            Poisson arrival)
 *
 * Acquire latency is timed with CLOCK_MONOTONIC around the pool's acquire
 * call, so it includes a connect when the pool had to make a connection,
 * and a health check when it validated one.  "wait %" is the share of
 * successful acquires slower than wait_threshold_ns: an acquire that fast
 * found an idle connection at once, a slower one waited for a release,
 * spun, or connected.  Failed acquires are counted apart (errors, timeouts)
 * and are not in the histogram.  Every worker records into its own
 * histogram; a pool's percentiles come from their merge.
 *
 * Above util, latency, backend and pools; below report, points and the
 * modes.  shpb_run_pool runs on the caller's thread and starts and joins
 * its workers itself.
 */
#ifndef SHPBENCH_RUN_H
#define SHPBENCH_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include <shardpool.h>

#include "shpbench/backend.h"
#include "shpbench/latency.h"
#include "shpbench/pools.h"
#include "shpbench/util.h"

#define SHPB_MAX_THREADS 4096

/* The options every mode shares (the mode's own, such as --sweep's axes,
 * stay with main and the mode). */
typedef struct shpb_opts {
    /* the workload */
    unsigned threads;
    shpb_pool_cfg pool;
    shpb_dist hold, think;
    int64_t duration_ns; /* per pool; used when ops == 0 */
    uint64_t ops;        /* total acquire attempts per pool; 0: by duration */
    double rate;         /* open loop: target ops/s over all threads; 0: closed loop */
    shpb_backend_opts backend;
    long roundtrip_bytes; /* < 0: not given (main sets the backend's default) */
    bool check_set;
    int64_t wait_threshold_ns;
    bool pools[SHPB_POOL_KINDS]; /* the pools compared */
    unsigned cpus;               /* online CPUs */
    /* output */
    const char *csv_path, *json_path; /* NULL: not written */
    const char *plot_dir;             /* NULL: no plots */
    bool progress;                    /* progress line on a terminal */
    bool verbose;
    /* given on the command line (rather than defaults) */
    bool threads_set, hold_set, think_set, duration_set, pools_set;
    bool min_set, max_set, shards_set;
} shpb_opts;

/* The options a point (of a sweep, or a --recommend candidate) sets, in
 * the order the sweep's CSV lists them. */
typedef enum shpb_key {
    SHPB_KEY_THREADS, /* threads */
    SHPB_KEY_MAX,     /* pool.max_size */
    SHPB_KEY_MIN,     /* pool.min_size */
    SHPB_KEY_SHARDS,  /* pool.shards */
    SHPB_KEY_HOLD,    /* hold */
    SHPB_KEY_THINK,   /* think */
    SHPB_KEYS
} shpb_key;

/* The key's name on the command line and in the output ("threads", ...);
 * "?" for none. */
const char *shpb_key_name(shpb_key k);

/* What one pool's run measured. */
typedef struct shpb_result {
    shpb_pool_kind kind;
    bool ran; /* false: not run (see shpb_run_pool) */
    uint64_t ops, errors, timeouts, waited, rt_failures;
    double elapsed_s, throughput;
    /* acquire latency, ns: percentiles as shpb_lat_quantile reads them */
    uint64_t p50, p90, p99, p999, min, max;
    double mean;
    double wait_pct;
    double in_use_avg; /* mean connections held by workers (busy time / elapsed) */
    bool has_stats;    /* st is set (shardpool's pools only) */
    shp_stats st;
    shpb_backend_counters bc;
    int close_rc;
    unsigned nthreads;
    struct {
        uint64_t ops, p50, p99;
    } *per_thread;
    shpb_lat *hist; /* the merge of the workers' latencies; NULL if not run or dropped */
} shpb_result;

/* Runs o's workload (threads, pool, hold, think, rate, duration or ops)
 * against a pool of kind kind over b and fills *res.  no and of number the
 * progress line ("[no/of]").  Returns 0, or -1 after printing why the pool
 * could not be run (res->ran is then false).  Free res with
 * shpb_result_free. */
int shpb_run_pool(const shpb_opts *o, shpb_backend *b, shpb_pool_kind kind, unsigned no,
                  unsigned of, shpb_result *res);

/* Frees what shpb_run_pool allocated in res (per_thread, hist). */
void shpb_result_free(shpb_result *res);

/* Frees res->hist only (a sweep keeps histograms only for its CDF plots). */
void shpb_result_drop_hist(shpb_result *res);

/* Shardpool acquires served from another shard, in % of acquires (0 for
 * a result without stats). */
double shpb_steals_pct(const shpb_result *r);

#endif
