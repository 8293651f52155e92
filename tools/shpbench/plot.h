/*
 * tools/shpbench/plot.h - plots through gnuplot, run as a subprocess.
 *
 * Every plot NAME is written into a directory as
 *   NAME.dat   the data (plain columns, '#' comments)
 *   NAME.gp    a gnuplot script that reads NAME.dat from its own directory
 *              and writes NAME.svg and NAME.png (cd DIR && gnuplot NAME.gp
 *              renders it again, for instance after editing the script)
 *   NAME.svg, NAME.png
 * The .dat and .gp files are written even when gnuplot is missing, so the
 * data is never lost; only the images are then skipped.
 *
 * Series are drawn in a fixed style per pool kind (colour, point type), so
 * a pool looks the same in every plot.
 *
 * Not thread-safe: call from one thread.  Uses latency.h (the CDF's
 * histograms) and nothing else of shpbench.
 */
#ifndef SHPBENCH_PLOT_H
#define SHPBENCH_PLOT_H

#include <stdbool.h>

#include "shpbench/latency.h"

/* What gnuplot can do here, found by running it. */
typedef struct shpb_gnuplot {
    bool found;    /* gnuplot runs */
    bool svg;      /* the svg terminal */
    bool pngcairo; /* else png (libgd) if png */
    bool png;
} shpb_gnuplot;

/* Probes for gnuplot and its svg, pngcairo and png terminals. */
void shpb_gnuplot_probe(shpb_gnuplot *g);

/* Paths of files written, in order. */
typedef struct shpb_files {
    unsigned n;
    char *paths[256];
} shpb_files;

/* Adds dir/name (copied); silently drops it when the list is full. */
void shpb_files_add(shpb_files *fl, const char *dir, const char *name);
void shpb_files_free(shpb_files *fl);

#define SHPB_PLOT_MAX_SERIES 8

/* y against x, one line per series.  y[s * nx + i] is series s at x[i]
 * (NAN: missing).  x is ascending. */
typedef struct shpb_xy_plot {
    const char *name;
    const char *title;  /* may hold '\n' */
    const char *xlabel, *ylabel;
    bool xlog;          /* log2 x axis, ticks at the x values */
    bool ylog;          /* log10 y axis (else linear from 0) */
    unsigned nx;
    const double *x;
    unsigned nseries;
    const char *const *series;  /* names */
    const int *style;           /* per series: its style's index (a sweep: the pool kind) */
    const double *y;
    double mark_x;              /* > 0: a dashed vertical line here ... */
    const char *mark_label;     /* ... labelled so */
} shpb_xy_plot;

/* The distribution of each series' histogram: a CDF panel (fraction of
 * values <= x) over a tail panel (fraction > x, log scale), both on a log
 * x axis of nanoseconds. */
typedef struct shpb_cdf_plot {
    const char *name;
    const char *title;
    const char *xlabel;
    unsigned nseries;
    const char *const *series;
    const int *style;               /* as in shpb_xy_plot */
    const shpb_lat *const *hists;   /* NULL or empty: left out */
} shpb_cdf_plot;

/* Write the files of one plot into dir and, if g found gnuplot, render
 * them; every file written is added to fl.  Return 0, or -1 after printing
 * what failed (a gnuplot failure included). */
int shpb_plot_xy(const shpb_gnuplot *g, const char *dir, const shpb_xy_plot *p,
                 shpb_files *fl);
int shpb_plot_cdf(const shpb_gnuplot *g, const char *dir, const shpb_cdf_plot *p,
                  shpb_files *fl);

/* mkdir -p.  Returns 0 or -1 after printing the error. */
int shpb_mkdir_p(const char *dir);

#endif
