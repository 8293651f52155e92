# bench/bench.mk - the per-module google-benchmark microbenchmarks
# (bench/<module>_bench.cc for lib/<module>.c).  Included by the main
# Makefile; uses its CXX, WARN, LIBS, B and LIB_HDR.
#
#   make build/release/bench/pool_bench     acquire/release paths (lib/acquire.c, release.c, idle.c)
#   make build/release/bench/reaper_bench   reaper impact on acquirers (lib/reaper.c)
#   make bench-micro                        runs both (~20 s on 2 cores); their
#                                           results, in google-benchmark's JSON
#                                           format, end up in one file,
#                                           build/bench/micro.json, and in its
#                                           CSV layout in build/bench/micro.csv
#                                           (what shpbench --plot-gbench reads)
#   make bench-micro MICRO_ARGS=--benchmark_filter=steal   extra flags for both

MICRO_BENCH := pool_bench reaper_bench
MICRO_ARGS  ?=

$(B)/release/bench/pool_bench: bench/pool_bench.cc $(LIB_HDR) $(B)/release/libshardpool.a
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 $(WARN) -I include -I bench $< \
	  $(B)/release/libshardpool.a -lbenchmark $(LIBS) -o $@

$(B)/release/bench/reaper_bench: bench/reaper_bench.cc bench/bench_args.h $(LIB_HDR) $(B)/release/libshardpool.a
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 $(WARN) -I include -I bench $< \
	  $(B)/release/libshardpool.a -lbenchmark $(LIBS) -o $@

# Each binary writes its own JSON, build/bench/micro-<name>.json (missing
# or empty when a filter left it nothing to run); the benchmarks of all of
# them are then joined under the first one's context into
# build/bench/micro.json, which stays google-benchmark's format, and written
# as build/bench/micro.csv in google-benchmark's CSV layout without the user
# counters.  (google-benchmark 1.7 cannot write that CSV itself here: its CSV
# writer aborts when a later benchmark has a counter the first did not.)
.PHONY: bench-micro
bench-micro: $(addprefix $(B)/release/bench/,$(MICRO_BENCH))
	@mkdir -p $(B)/bench
	@rm -f $(B)/bench/micro.json $(B)/bench/micro.csv $(patsubst %,$(B)/bench/micro-%.json,$(MICRO_BENCH))
	@set -e; for b in $(MICRO_BENCH); do \
	  echo "== $$b"; \
	  timeout 300 $(B)/release/bench/$$b $(MICRO_ARGS) \
	    --benchmark_out=$(B)/bench/micro-$$b.json --benchmark_out_format=json; \
	done
	@python3 -c 'import json, os, sys; \
	  runs = [json.load(open(f)) for f in sys.argv[2:] \
	    if os.path.exists(f) and os.path.getsize(f) > 0]; \
	  out = runs[0] if runs else sys.exit("bench-micro: no results"); \
	  [out["benchmarks"].extend(r["benchmarks"]) for r in runs[1:]]; \
	  json.dump(out, open(sys.argv[1], "w"), indent=2)' \
	  $(B)/bench/micro.json $(patsubst %,$(B)/bench/micro-%.json,$(MICRO_BENCH))
	@python3 -m json.tool $(B)/bench/micro.json >/dev/null
	@python3 -c 'import csv, json, sys; \
	  cols = ["name", "iterations", "real_time", "cpu_time", "time_unit", "bytes_per_second", \
	          "items_per_second", "label", "error_occurred", "error_message"]; \
	  w = csv.writer(open(sys.argv[2], "w", newline=""), lineterminator="\n"); \
	  w.writerow(cols); \
	  [w.writerow([("true" if b.get(c) else "") if c == "error_occurred" else b.get(c, "") \
	    for c in cols]) for b in json.load(open(sys.argv[1]))["benchmarks"]]' \
	  $(B)/bench/micro.json $(B)/bench/micro.csv
	@echo "bench-micro: results in $(B)/bench/micro.json (google-benchmark JSON, valid)" \
	  "and $(B)/bench/micro.csv (its CSV layout)"
