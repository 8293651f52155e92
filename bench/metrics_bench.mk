# bench/metrics_bench.mk - the cost of metrics: the acquire+release pair with
# metrics on vs metrics compiled out (-DSHP_NO_METRICS), both in ONE process
# (bench/metrics_bench.cc says how it measures).  Included by the main
# Makefile; uses its CC, CXX, CSTD, WARN, CFLAGS_release, LIB_CFLAGS, INC,
# LIB_SRC, LIB_HDR, LIBS and B.
#
#   make build/nometrics/libshardpool_nm.a   the library again, with
#       -DSHP_NO_METRICS and otherwise the release flags, every global
#       symbol renamed shp_x -> nm_shp_x (bench/metrics_syms.sh checks that
#       no global is left or shared with the normal library)
#   make build/release/bench/metrics_bench
#   make bench-metrics      runs it (~30 s, at most ~60): medians, on/off ratios,
#                           PASS/FAIL against <= 1.10 at 1 and 2 threads,
#                           also in build/bench/metrics.json; exit 0 on FAIL
#   make bench-metrics METRICS_BENCH_ARGS="--rounds=100 --verbose"
#
# Code layout: where a copy's code lands in the binary moves its hot loops
# across cache lines and changes its speed by a few percent, even for
# identical code (measured: on/off 0.98 one link order, 1.01 the other).  So
# the benchmark links both libraries with every .text section aligned to a
# page (objcopy --set-section-alignment; the code itself is untouched): each
# function then sits at the same offset in its page in both copies as long
# as their code is the same, and only a real difference moves it.
# build/nometrics/libshardpool_on.a is the release archive so aligned.

METRICS_BENCH_ARGS ?=
NM_PREFIX  := nm_
NM_ALIGN   := --set-section-alignment .text=4096

NM_OBJ := $(patsubst lib/%.c,$(B)/nometrics/lib/%.o,$(LIB_SRC))

$(B)/nometrics/lib/%.o: lib/%.c $(LIB_HDR) | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_release) -DSHP_NO_METRICS $(LIB_CFLAGS) $(INC) -c $< -o $@

# The copy before renaming (not linked anywhere).
$(B)/nometrics/libshardpool.a: $(NM_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/nometrics/libshardpool_nm.a: $(B)/nometrics/libshardpool.a $(B)/release/libshardpool.a \
                                  bench/metrics_syms.sh
	sh bench/metrics_syms.sh rename $(NM_PREFIX) $< $@ $(B)/release/libshardpool.a $(NM_ALIGN)

$(B)/nometrics/libshardpool_on.a: $(B)/release/libshardpool.a
	@mkdir -p $(dir $@)
	objcopy $(NM_ALIGN) $< $@

# Both libraries in one link; then the binary is checked to hold both
# copies of what the benchmark calls.
$(B)/release/bench/metrics_bench: bench/metrics_bench.cc bench/bench_args.h $(LIB_HDR) bench/metrics_syms.sh \
                                  $(B)/nometrics/libshardpool_on.a $(B)/nometrics/libshardpool_nm.a
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 $(WARN) -I include -I bench $< \
	  $(B)/nometrics/libshardpool_on.a $(B)/nometrics/libshardpool_nm.a -lbenchmark $(LIBS) -o $@
	sh bench/metrics_syms.sh check-bin $(NM_PREFIX) $@ \
	  shp_pool_create shp_acquire shp_release shp_conn_handle shp_pool_destroy

.PHONY: bench-metrics
bench-metrics: $(B)/release/bench/metrics_bench
	@mkdir -p $(B)/bench
	timeout 300 $(B)/release/bench/metrics_bench --json=$(B)/bench/metrics.json $(METRICS_BENCH_ARGS)
