# tools/shpbench.mk - shpbench, the workload/tuning tool (tools/shpbench/).
# Included by the main Makefile; uses its CC, CSTD, WARN, INC, LIBS and B.
#
# The sources include each other as "shpbench/NAME.h" (-I tools) and the
# library's internal histogram as "hist.h" (INC's -I lib).  Layers, each
# using only those below it:
#   main.c                         options, dispatch
#   single sweep recommend gbench  the modes
#   points                         parameter points, each run against the pools
#   report                         table, CSV and JSON writers
#   run                            one pool's run: options, workers, result
#   pools                          the four pools compared
#   backend plot                   the connections; gnuplot
#   util latency                   clocks, distributions; latency histogram
#
#   make build/release/tools/shpbench   the tool (-O2), linked against the
#                                       release libshardpool.a and the bench
#                                       baselines (mutex and gstack pools)
#   make shpbench-smoke                 the self-test, a 2-second run of all
#                                       four pools (checks the JSON parses), a
#                                       tiny --sweep (checks its SVG plots are
#                                       written), a tiny --recommend, and
#                                       --plot-gbench of $(B)/bench/micro.csv
#                                       when that exists (make bench-micro)
#   make shpbench-plots                 a small sweep (threads 1..16, max 16,
#                                       300 ms per pool and point, all four
#                                       pools): CSV, JSON, gnuplot data and
#                                       scripts, SVG and PNG plots in
#                                       $(B)/bench/, paths printed
#   make build/asan/tools/shpbench      ASan+UBSan build (make B=/tmp/x ... to
#                                       keep it out of the tree)

SHPB_SRC := $(wildcard tools/shpbench/*.c)

# The redis:// and postgresql:// backends go through the adapters, so they
# are compiled in only when the Makefile builds those adapters (shpbench then
# links libshardpool-redis.a / libshardpool-pg.a through SHP_ARCHIVES and
# -lhiredis / -lpq through LIBS); without them the backend answers "built without the ... adapter".
SHPB_DEFS :=
ifeq ($(WITH_REDIS),1)
SHPB_DEFS += -DSHPB_WITH_REDIS
endif
ifeq ($(WITH_PG),1)
SHPB_DEFS += -DSHPB_WITH_PG -I/usr/include/postgresql
endif
SHPB_HDR := $(wildcard tools/shpbench/*.h) lib/hist.h

$(B)/release/tools/shpbench: $(SHPB_SRC) $(SHPB_HDR) bench/baselines.h \
    $(call SHP_ARCHIVES,release) $(B)/release/bench/baselines.o
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g $(INC) $(SHPB_DEFS) -I tools -I bench $(SHPB_SRC) $(B)/release/bench/baselines.o \
	  $(call SHP_ARCHIVES,release) $(LIBS) -lm -o $@

# The sanitizer build compiles the baselines itself: the main Makefile only
# builds them for release.
$(B)/asan/tools/shpbench: $(SHPB_SRC) $(SHPB_HDR) bench/baselines.c bench/baselines.h \
    $(call SHP_ARCHIVES,asan)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_asan) $(INC) $(SHPB_DEFS) -I tools -I bench $(SHPB_SRC) bench/baselines.c \
	  $(call SHP_ARCHIVES,asan) $(LIBS) -lm $(LDFLAGS_asan) -o $@

SHPB_SMOKE_PLOTS := $(B)/shpbench-smoke-plots

.PHONY: shpbench-smoke shpbench-plots
shpbench-smoke: $(B)/release/tools/shpbench
	$(B)/release/tools/shpbench --self-test
	timeout 60 $(B)/release/tools/shpbench --duration 500ms --threads 4 --no-progress \
	  --json $(B)/shpbench-smoke.json --csv $(B)/shpbench-smoke.csv
	@if command -v python3 >/dev/null; then \
	  python3 -m json.tool $(B)/shpbench-smoke.json >/dev/null && echo "shpbench-smoke: JSON ok"; \
	else echo "shpbench-smoke: python3 not found, JSON not checked"; fi
	rm -rf $(SHPB_SMOKE_PLOTS)
	timeout 60 $(B)/release/tools/shpbench --sweep threads=1,2 --duration 100ms --no-progress \
	  --plot-dir $(SHPB_SMOKE_PLOTS)
	@for f in shpbench-throughput-vs-threads.svg shpbench-acquire-cdf.svg; do \
	  if ! test -s $(SHPB_SMOKE_PLOTS)/$$f; then \
	    echo "shpbench-smoke: FAIL - $(SHPB_SMOKE_PLOTS)/$$f missing or empty (is gnuplot installed? make deps)"; \
	    exit 1; fi; done; \
	if command -v python3 >/dev/null; then \
	  python3 -m json.tool $(SHPB_SMOKE_PLOTS)/shpbench-sweep.json >/dev/null || exit 1; fi; \
	echo "shpbench-smoke: sweep plots ok"
	timeout 60 $(B)/release/tools/shpbench --recommend --threads 2 --hold 20us --duration 50ms \
	  --no-progress > $(B)/shpbench-smoke-recommend.txt
	@if grep -q 'cfg.max_size = ' $(B)/shpbench-smoke-recommend.txt; then \
	  echo "shpbench-smoke: recommend ok"; \
	else cat $(B)/shpbench-smoke-recommend.txt; echo "shpbench-smoke: FAIL - no recommendation"; exit 1; fi
	@if test -f $(B)/bench/micro.csv; then \
	  rm -rf $(SHPB_SMOKE_PLOTS)/gbench && \
	  $(B)/release/tools/shpbench --plot-gbench $(B)/bench/micro.csv \
	    --plot-dir $(SHPB_SMOKE_PLOTS)/gbench || exit 1; \
	  test -s $(SHPB_SMOKE_PLOTS)/gbench/gbench-real-time.svg || \
	    { echo "shpbench-smoke: FAIL - gbench plot missing"; exit 1; }; \
	  echo "shpbench-smoke: gbench plot ok"; \
	else echo "shpbench-smoke: $(B)/bench/micro.csv not found (make bench-micro), gbench plot skipped"; fi

# The plots for `make bench` and the README (bench/shpbench-example.svg is the
# throughput plot of one such run).
shpbench-plots: $(B)/release/tools/shpbench
	@mkdir -p $(B)/bench
	timeout 300 $(B)/release/tools/shpbench --sweep threads=1,2,4,8,16 max=16 --duration 300ms \
	  --pools all --no-progress --plot-dir $(B)/bench
