# tools/shpbench.mk - shpbench, the workload/tuning tool (tools/shpbench*.c).
# Included by the main Makefile; uses its CC, CSTD, WARN, INC, LIBS and B.
#
#   make build/release/tools/shpbench   the tool (-O2), linked against the
#                                       release libshardpool.a and the bench
#                                       baselines (mutex and gstack pools)
#   make shpbench-smoke                 a 2-second run of all four pools plus
#                                       the self-test; checks the JSON parses
#   make build/asan/tools/shpbench      ASan+UBSan build (make B=/tmp/x ... to
#                                       keep it out of the tree)

SHPB_SRC := $(wildcard tools/shpbench*.c)
SHPB_HDR := $(wildcard tools/shpbench*.h)

$(B)/release/tools/shpbench: $(SHPB_SRC) $(SHPB_HDR) bench/baselines.h \
    $(B)/release/libshardpool.a $(B)/release/bench/baselines.o
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g $(INC) -I bench $(SHPB_SRC) $(B)/release/bench/baselines.o \
	  $(B)/release/libshardpool.a $(LIBS) -lm -o $@

# The sanitizer build compiles the baselines itself: the main Makefile only
# builds them for release.
$(B)/asan/tools/shpbench: $(SHPB_SRC) $(SHPB_HDR) bench/baselines.c bench/baselines.h \
    $(B)/asan/libshardpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_asan) $(INC) -I bench $(SHPB_SRC) bench/baselines.c \
	  $(B)/asan/libshardpool.a $(LIBS) -lm $(LDFLAGS_asan) -o $@

.PHONY: shpbench-smoke
shpbench-smoke: $(B)/release/tools/shpbench
	$(B)/release/tools/shpbench --self-test
	timeout 60 $(B)/release/tools/shpbench --duration 500ms --threads 4 --no-progress \
	  --json $(B)/shpbench-smoke.json --csv $(B)/shpbench-smoke.csv
	@if command -v python3 >/dev/null; then \
	  python3 -m json.tool $(B)/shpbench-smoke.json >/dev/null && echo "shpbench-smoke: JSON ok"; \
	else echo "shpbench-smoke: python3 not found, JSON not checked"; fi
