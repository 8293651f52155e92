/*
 * tools/shpbench/points.h - a list of parameter points, each run against
 * several pools: the grid of a sweep, or the candidates of --recommend.
 * A point sets the shpb_key options (threads, pool sizes, hold, think) of
 * a base shpb_opts; an axis is one key with the values a grid gives it.
 *
 * Call from one thread (shpb_run_points starts the workers of each run
 * through run.h).  Above run and report; below sweep and recommend.
 */
#ifndef SHPBENCH_POINTS_H
#define SHPBENCH_POINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "shpbench/run.h"

#define SHPB_AXIS_MAX_VALUES 64

/* One key's values: counts for threads/max/min/shards, distributions for
 * hold/think. */
typedef struct shpb_axis {
    shpb_key key;
    unsigned n;
    unsigned u[SHPB_AXIS_MAX_VALUES];
    shpb_dist d[SHPB_AXIS_MAX_VALUES];
    /* hold/think given as a bare duration: it replaces the mean (median)
     * of the --hold/--think distribution, whose kind is kept */
    bool scale[SHPB_AXIS_MAX_VALUES];
} shpb_axis;

/* The axes of a grid, in the order given (the first varies slowest); each
 * key at most once. */
typedef struct shpb_axes {
    unsigned naxes;
    shpb_axis axes[SHPB_KEYS];
} shpb_axes;

/* True for the keys whose values are distributions (hold, think). */
bool shpb_key_is_dist(shpb_key k);

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

/* Sets p's value of a->key to the axis' value i. */
void shpb_point_apply(shpb_point *p, const shpb_axis *a, unsigned i);

/* p's value of k as text ("16", "per-CPU", "exp:20us").  Returns buf. */
char *shpb_point_value(const shpb_point *p, shpb_key k, char *buf, size_t len);

/* Runs each point that is not skipped against each pool kind set in pools.
 * With rows, prints a row per result as it comes: the point's number, its
 * values of cols[0..ncols), the pool and the metrics, then a legend;
 * without, only a progress line on a terminal.  Histograms are freed
 * unless the point keeps them.  Returns 0, or 1 if some pool could not be
 * run. */
int shpb_run_points(const shpb_opts *o, shpb_backend *b, shpb_point *pts, unsigned n,
                    const bool *pools, const shpb_key *cols, unsigned ncols, bool rows);

/* Every result of every point, one CSV row each, with the point's
 * parameters first.  Returns 0 or -1. */
int shpb_write_points_csv(const char *path, const shpb_point *pts, unsigned n);

/* The whole run as JSON: mode ("sweep", "recommend"), o's config, the
 * axes under "sweep" (NULL or none: null), every point with its results,
 * then, if extra is not NULL, the members extra writes (each line indented
 * by 2, no trailing comma).  Returns 0 or -1. */
int shpb_write_points_json(const char *path, const shpb_opts *o, shpb_backend *b,
                           const char *mode, const shpb_axes *axes, const shpb_point *pts,
                           unsigned n, void (*extra)(FILE *f, const void *arg),
                           const void *extra_arg);

/* Frees the points' results and pts (calloc'd); NULL is fine. */
void shpb_points_free(shpb_point *pts, unsigned n);

#endif
