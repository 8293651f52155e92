/*
 * tools/shpbench/sweep.h - shpbench --sweep: the comparison of every
 * selected pool at every point of a grid, its CSV/JSON, and its plots.
 *
 * A key given with one value is no dimension: it just sets that option.
 * Every key with several values is a dimension; the first one given varies
 * slowest.  Points with min > max are skipped.
 *
 * Call from one thread.  A mode: above points, report, run and plot; only
 * main uses it.
 */
#ifndef SHPBENCH_SWEEP_H
#define SHPBENCH_SWEEP_H

#include <stddef.h>

#include "shpbench/points.h"

#define SHPB_SWEEP_MAX_POINTS 4096

/* Parses "key=v1,v2,..." (or several such, separated by spaces) and adds
 * the axes to *axes (a key already there is refused).  Returns 0, or a
 * negative errno value after writing the reason, NUL-terminated, into
 * err[0..errlen). */
int shpb_sweep_parse(shpb_axes *axes, const char *spec, char *err, size_t errlen);

/* Runs the sweep over axes (at least one) with o's other options over b:
 * every grid point against every pool in o->pools; prints the results as
 * they come, writes o->csv_path / o->json_path and, with o->plot_dir, the
 * plots.  Returns the exit status (2 for a grid too large). */
int shpb_sweep_main(const shpb_opts *o, const shpb_axes *axes, shpb_backend *b);

/* Self-tests of the parser and the grid (for --self-test): 0, or -1 after
 * printing what failed. */
int shpb_sweep_self_test(void);

#endif
