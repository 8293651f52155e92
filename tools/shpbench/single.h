/*
 * tools/shpbench/single.h - shpbench's default mode: the workload once
 * against each selected pool, one after another, over the same backend;
 * the table, and o->csv_path / o->json_path if given.
 *
 * Call from one thread.  A mode: above report and run; only main uses it.
 */
#ifndef SHPBENCH_SINGLE_H
#define SHPBENCH_SINGLE_H

#include "shpbench/run.h"

/* Runs and reports.  Returns the exit status: 0, or 1 if a pool could not
 * be run or a file not written. */
int shpb_single_main(const shpb_opts *o, shpb_backend *b);

#endif
