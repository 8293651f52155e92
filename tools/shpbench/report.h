/*
 * tools/shpbench/report.h - how results are shown and written: the run
 * header, the table of a single run, and the CSV and JSON pieces that the
 * single run, the sweep and the recommendation all write.
 *
 * The formats (table columns, CSV columns, JSON members) are shpbench's
 * output contract: scripts read them.  Every writer here reports an I/O
 * error on stderr and returns -1; nothing here runs anything.  Call from
 * one thread.  Above run; below points and the modes.
 */
#ifndef SHPBENCH_REPORT_H
#define SHPBENCH_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "shpbench/run.h"

/* Prints the two header lines of a run: backend, threads, pool sizes,
 * workload.  swept[k] (NULL: none) shows key k as "(swept)". */
void shpb_print_header(const shpb_opts *o, shpb_backend *b, const bool *swept);

/* Prints the results rs[0..n) as a table, one row per pool (a pool not run
 * says so), with the legend under it. */
void shpb_print_table(const shpb_opts *o, const shpb_result *rs, unsigned n);

/* ---- JSON pieces -------------------------------------------------------- */

/* Writes s as a JSON string, quotes included. */
void shpb_json_str(FILE *f, const char *s);

/* Writes the "config" object's members (no braces), each line prefixed by
 * indent spaces. */
void shpb_json_config(FILE *f, const shpb_opts *o, shpb_backend *b, int indent);

/* Writes one result as a JSON object, its lines indented by indent spaces. */
void shpb_json_result(FILE *f, const shpb_result *r, int indent);

/* ---- CSV pieces --------------------------------------------------------- */

/* The CSV columns of a result, and one result's values (no newline). */
void shpb_csv_result_header(FILE *f);
void shpb_csv_result_row(FILE *f, const shpb_result *r);

/* ---- files -------------------------------------------------------------- */

/* Opens path for writing, printing the error on failure; shpb_close_out
 * closes it and returns 0 or -1 (after printing the error). */
FILE *shpb_open_out(const char *path);
int shpb_close_out(FILE *f, const char *path);

/* A single run's files: the results that ran, one CSV row each; or the
 * JSON document {tool, version, config, results}.  Return 0 or -1. */
int shpb_write_results_csv(const char *path, const shpb_result *rs, unsigned n);
int shpb_write_results_json(const char *path, const shpb_opts *o, shpb_backend *b,
                            const shpb_result *rs, unsigned n);

#endif
