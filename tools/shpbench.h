/*
 * tools/shpbench.h - what shpbench's parts share: the options, one pool's
 * run and its result, and the CSV/JSON pieces that the single run, the
 * sweep (shpbench_sweep.c) and the recommendation (shpbench_recommend.c)
 * all write.
 *
 * Everything here runs on shpbench's main thread, except the workers that
 * shpb_run_pool starts and joins itself.
 */
#ifndef SHPBENCH_H
#define SHPBENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <shardpool.h>

#include "shpbench_backend.h"
#include "shpbench_hist.h"
#include "shpbench_pools.h"
#include "shpbench_util.h"

#define SHPB_MAX_THREADS 4096

/* ---- --sweep ------------------------------------------------------------ */

/* The workload and pool parameters a sweep can vary. */
typedef enum shpb_key {
    SHPB_KEY_THREADS,
    SHPB_KEY_MAX,
    SHPB_KEY_MIN,
    SHPB_KEY_SHARDS,
    SHPB_KEY_HOLD,
    SHPB_KEY_THINK,
    SHPB_KEYS
} shpb_key;

#define SHPB_SWEEP_MAX_VALUES 64
#define SHPB_SWEEP_MAX_POINTS 4096

/* One key's values: counts for threads/max/min/shards, distributions for
 * hold/think. */
typedef struct shpb_axis {
    shpb_key key;
    unsigned n;
    unsigned u[SHPB_SWEEP_MAX_VALUES];
    shpb_dist d[SHPB_SWEEP_MAX_VALUES];
    /* hold/think given as a bare duration: it replaces the mean (median)
     * of the --hold/--think distribution, whose kind is kept */
    bool scale[SHPB_SWEEP_MAX_VALUES];
} shpb_axis;

/* The keys in the order given; the first varies slowest. */
typedef struct shpb_sweep {
    unsigned naxes;
    shpb_axis axes[SHPB_KEYS];
} shpb_sweep;

/* ---- options ------------------------------------------------------------ */

typedef struct shpb_opts {
    unsigned threads;
    shpb_pool_cfg pool;
    shpb_dist hold, think;
    int64_t duration_ns; /* used when ops == 0 */
    uint64_t ops;        /* total acquire attempts per pool; 0: by duration */
    double rate;         /* open loop: target ops/s over all threads; 0: closed loop */
    shpb_backend_opts backend;
    long roundtrip_bytes; /* < 0: backend's default */
    bool check_set;
    int64_t wait_threshold_ns;
    bool pools[SHPB_POOL_KINDS];
    const char *csv_path, *json_path;
    bool progress;
    bool verbose;
    unsigned cpus;
    /* given on the command line (rather than defaults) */
    bool threads_set, hold_set, think_set, duration_set, pools_set;
    bool min_set, max_set, shards_set;
    /* modes */
    shpb_sweep sweep;      /* naxes == 0: no sweep */
    const char *plot_dir;  /* NULL: no plots */
    const char *plot_gbench; /* --plot-gbench FILE: plot it, run nothing */
    bool recommend;
} shpb_opts;

/* ---- one pool's run ----------------------------------------------------- */

typedef struct shpb_result {
    shpb_pool_kind kind;
    bool ran;
    uint64_t ops, errors, timeouts, waited, rt_failures;
    double elapsed_s, throughput;
    uint64_t p50, p90, p99, p999, min, max;
    double mean;
    double wait_pct;
    double in_use_avg; /* mean connections held by workers (busy time / elapsed) */
    bool has_stats;
    shp_stats st;
    shpb_backend_counters bc;
    int close_rc;
    unsigned nthreads;
    struct {
        uint64_t ops, p50, p99;
    } *per_thread;
    shpb_hist *hist; /* the merge of the workers' acquire histograms; NULL if not run */
} shpb_result;

/* Runs o's workload (threads, pool, hold, think, rate, duration or ops)
 * against a pool of kind kind over b and fills *res; no and of number the
 * progress line.  Returns 0, or -1 after printing why the pool could not be
 * run (res->ran is then false).  Free res with shpb_result_free. */
int shpb_run_pool(const shpb_opts *o, shpb_backend *b, shpb_pool_kind kind, unsigned no,
                  unsigned of, shpb_result *res);

/* Frees what shpb_run_pool allocated in res (per_thread, hist). */
void shpb_result_free(shpb_result *res);

/* Frees res->hist only (a sweep keeps histograms only for its CDF plots). */
void shpb_result_drop_hist(shpb_result *res);

/* Shardpool acquires served from another shard, in % of acquires. */
double shpb_steals_pct(const shpb_result *r);

/* ---- a list of configurations, each run against several pools ----------- */

/* One grid point of a sweep, or one candidate of --recommend. */
typedef struct shpb_point {
    unsigned threads;
    shpb_pool_cfg pool;
    shpb_dist hold, think;
    unsigned vi[SHPB_KEYS];           /* sweep: value index, per axis position */
    const char *skip;                 /* non-NULL: not run, and why */
    bool keep_hist;                   /* keep the results' histograms */
    shpb_result res[SHPB_POOL_KINDS]; /* by pool kind; .ran false if not run */
} shpb_point;

/* *out = *o with p's threads, pool sizes, hold and think. */
void shpb_point_opts(const shpb_opts *o, const shpb_point *p, shpb_opts *out);

/* p's value of k as text ("16", "exp:20us"). */
char *shpb_point_value(const shpb_point *p, shpb_key k, char *buf, size_t len);

/* Runs each point that is not skipped against each pool kind set in pools.
 * With rows, prints a row per result as it comes: the point's number, its
 * values of cols[0..ncols), the pool and the metrics; without, only a
 * progress line on a terminal.  Histograms are freed unless the point
 * keeps them.  Returns 0, or 1 if some pool could not be run. */
int shpb_run_points(const shpb_opts *o, shpb_backend *b, shpb_point *pts, unsigned n,
                    const bool *pools, const shpb_key *cols, unsigned ncols, bool rows);

/* Every result of every point, one CSV row each, with the point's
 * parameters first. */
int shpb_write_points_csv(const char *path, const shpb_point *pts, unsigned n);

/* The whole run as JSON: mode ("sweep", "recommend"), o's config, the
 * sweep's axes (NULL: none), every point with its results, then, if extra
 * is not NULL, the members extra writes (each line indented by 2, no
 * trailing comma). */
int shpb_write_points_json(const char *path, const shpb_opts *o, shpb_backend *b,
                           const char *mode, const shpb_sweep *sw, const shpb_point *pts,
                           unsigned n, void (*extra)(FILE *f, const void *arg),
                           const void *extra_arg);

void shpb_points_free(shpb_point *pts, unsigned n);

/* ---- output pieces ------------------------------------------------------ */

/* Writes s as a JSON string, quotes included. */
void shpb_json_str(FILE *f, const char *s);

/* Writes the "config" object's members (no braces), each line prefixed by
 * indent spaces. */
void shpb_json_config(FILE *f, const shpb_opts *o, shpb_backend *b, int indent);

/* Writes one result as a JSON object, its lines indented by indent spaces. */
void shpb_json_result(FILE *f, const shpb_result *r, int indent);

/* The CSV columns of a result, and one result's values (no newline). */
void shpb_csv_result_header(FILE *f);
void shpb_csv_result_row(FILE *f, const shpb_result *r);

/* Opens path for writing, printing the error on failure; shpb_close_out
 * closes it and returns 0 or -1 (after printing the error). */
FILE *shpb_open_out(const char *path);
int shpb_close_out(FILE *f, const char *path);

/* Prints the two header lines of a run: backend, threads, pool sizes,
 * workload.  swept[k] (NULL: none) shows key k as "(swept)". */
void shpb_print_header(const shpb_opts *o, shpb_backend *b, const bool *swept);

/* The mean of a hold/think distribution, in ns. */
double shpb_dist_mean_ns(const shpb_dist *d);

/* ---- modes -------------------------------------------------------------- */

/* Parses "key=v1,v2,..." (or several such, separated by spaces) into s.
 * Returns 0, or -EINVAL after writing the reason into err. */
int shpb_sweep_parse(shpb_sweep *s, const char *spec, char *err, size_t errlen);

/* The key's name ("threads", ...). */
const char *shpb_key_name(shpb_key k);

/* Runs o->sweep over b: every grid point against every selected pool,
 * prints the results as they come, writes CSV/JSON and plots.  Returns the
 * exit status. */
int shpb_sweep_main(const shpb_opts *o, shpb_backend *b);

/* Runs the --recommend search over b and prints the recommendation.
 * Returns the exit status. */
int shpb_recommend_main(const shpb_opts *o, shpb_backend *b);

/* Self-tests of the sweep parser and grid (for --self-test): 0 or -1. */
int shpb_sweep_self_test(void);

/* --plot-gbench (shpbench_gbench.c): plots google-benchmark JSON json_path
 * into dir; prints the paths.  Returns the exit status. */
int shpb_plot_gbench(const char *json_path, const char *dir);
int shpb_gbench_self_test(void);

#endif
