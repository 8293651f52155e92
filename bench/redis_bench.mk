# bench/redis_bench.mk - issue 3's Redis benchmark: 16 threads through a
# shardpool pool of 4 Redis connections (cleanup TRACKED, ALWAYS, and
# TRACKED with handoff_after_ns = 10 ms, the configuration the target is
# measured on) vs 4 dedicated hiredis connections (one per group of 4
# threads, behind a mutex; and, informational, behind a FIFO lock), same
# run, 7 interleaved rounds (bench/redis_bench.cc).  Included
# by the main Makefile; uses its CC, CXX, CSTD, WARN, LIBS and B.  Needs
# the Redis adapter (WITH_REDIS=1, the default) and redis-server on PATH
# (`make deps` installs it).
#
#   make build/release/bench/redis_bench
#   make bench-redis                          runs it (~65 s)
#   make bench-redis REDIS_BENCH_ARGS=--shp-enforce   exit 1 unless >= 0.9

REDIS_BENCH_ARGS ?=

ifeq ($(WITH_REDIS),1)
# The server helper is C (designated initializers, void * from
# redisCommand) and does not compile as C++, so it is built as its own C
# object and the benchmark includes only its header.
$(B)/release/bench/redisserver.o: tests/adapters/redisserver.c tests/adapters/redisserver.h | $(B)/.deps-bench
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g -I tests/adapters -c $< -o $@

$(B)/release/bench/redis_bench: bench/redis_bench.cc bench/bench_args.h $(LIB_HDR) $(call SHP_ARCHIVES,release) \
                                $(B)/release/bench/redisserver.o
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 $(WARN) -I include -I lib -I bench -I tests/adapters $< \
	  $(B)/release/bench/redisserver.o $(call SHP_ARCHIVES,release) -lbenchmark $(LIBS) -o $@

.PHONY: bench-redis
bench-redis: $(B)/release/bench/redis_bench
	timeout 300 $(B)/release/bench/redis_bench $(REDIS_BENCH_ARGS)
else
.PHONY: bench-redis
bench-redis:
	@echo "bench-redis: skipped (WITH_REDIS=0)"
endif
