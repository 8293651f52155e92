/*
 * tools/shpbench/recommend.h - shpbench --recommend: for a workload
 * (threads, hold, and a rate or a think time), measures shardpool over a
 * small set of max_size / shards / min_size candidates and prints the
 * configuration that measured best here, the reasons and the evidence
 * (recommend.c says how it picks).  With o->csv_path / o->json_path it also
 * writes every candidate, and the JSON has the recommendation.
 *
 * Call from one thread.  A mode: above points, report and run; only main
 * uses it.
 */
#ifndef SHPBENCH_RECOMMEND_H
#define SHPBENCH_RECOMMEND_H

#include "shpbench/run.h"

/* Runs the search over b and prints the recommendation.  Returns the exit
 * status (1 when no candidate ran without errors). */
int shpb_recommend_main(const shpb_opts *o, shpb_backend *b);

#endif
