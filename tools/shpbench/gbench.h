/*
 * tools/shpbench/gbench.h - shpbench --plot-gbench FILE --plot-dir DIR:
 * plots google-benchmark results in google-benchmark's CSV layout
 * (`make bench-micro` writes build/bench/micro.csv) with gnuplot: real time
 * per iteration against threads, one line per benchmark.
 *
 * Call from one thread.  A mode: above plot and util; runs no benchmark.
 */
#ifndef SHPBENCH_GBENCH_H
#define SHPBENCH_GBENCH_H

/* Reads csv_path, writes DIR/gbench-real-time[-N].dat/.gp/.svg/.png and
 * prints the paths.  Returns the exit status (1 for an unreadable or empty
 * file, or a failed plot). */
int shpb_plot_gbench(const char *csv_path, const char *dir);

/* Self-test of the CSV reader and the grouping (for --self-test): 0, or
 * nonzero after printing what failed. */
int shpb_gbench_self_test(void);

#endif
