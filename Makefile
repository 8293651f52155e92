# shardpool - see README.md.  `make` builds the libraries, `make check` runs
# every test (unit, stress, ASan+UBSan, TSan, the broken-variant proof),
# `make bench` runs the benchmark, `make deps` installs Debian packages.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= gcc
CXX     ?= g++
B       := build

SOVER   := 0
VERSION := 0.1.0

DEB_PKGS := gcc g++ make pkg-config liburcu-dev libck-dev libcmocka-dev libbenchmark-dev gnuplot-nox python3 prometheus jq

WARN    := -Wall -Wextra -Werror
CSTD    := -std=c11 -D_GNU_SOURCE
# The library reaches liburcu-bp's TLS reader on every acquire and release:
# initial-exec (liburcu-bp is a load-time dependency) avoids __tls_get_addr.
LIB_CFLAGS := -fPIC -ftls-model=initial-exec -fvisibility=hidden
INC     := -I include -I lib
LIBS    := -lck -lurcu-bp -lurcu-common -lpthread

LIB_SRC := lib/error.c lib/log.c lib/futex.c lib/config.c lib/pool.c lib/reaper.c lib/retry.c \
           lib/metrics.c lib/export.c lib/monitor.c lib/fork.c
LIB_HDR := $(wildcard include/*.h include/shardpool/*.h lib/*.h)
UNIT    := $(basename $(notdir $(wildcard tests/*_test.c)))

# Optional adapters (make WITH_TCP=0 ... builds the core without them).
include lib/adapters/adapters.mk
LIB_SRC += $(ADAPTER_SRC)
LIB_HDR += $(ADAPTER_HDR)
UNIT    += $(ADAPTER_UNIT)
LIBS    += $(ADAPTER_LIBS)
DEB_PKGS += $(ADAPTER_DEB_PKGS)
# Feature switches METRICS=0, MONITOR=0: before the variant rules bake LIB_CFLAGS.
include tools/features.mk
STRESS  := conservation aba

# Per-variant flags: release (-O2), asan (ASan+UBSan), tsan (same algorithm
# on __atomic builtins, see lib/stack.h), broken (tests only: single-word CAS
# pop plus a widened ABA window; the stress tests must fail on it).
CFLAGS_release := -O2 -g
CFLAGS_asan    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
CFLAGS_tsan    := -O1 -g -fsanitize=thread -DSHP_TSAN=1 -mcx16
CFLAGS_broken  := -O2 -g -DSHP_BROKEN_POP=1 -DSHP_STRESS_WINDOW=1 -mcx16
LDFLAGS_asan   := -fsanitize=address,undefined
LDFLAGS_tsan   := -fsanitize=thread
LDFLAGS_broken := -latomic
LDFLAGS_tsan   += -latomic

.PHONY: all deps check unit stress asan tsan broken-proof bench install clean readme-example
.DELETE_ON_ERROR:

all: $(B)/release/libshardpool.a $(B)/release/libshardpool.so

# ---- dependencies (Debian) ------------------------------------------------
$(B)/.deps-ok:
	@mkdir -p $(B)
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "make deps: missing packages; run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
	@touch $@

deps:
	@rm -f $(B)/.deps-ok
	@$(MAKE) --no-print-directory $(B)/.deps-ok

# ---- objects per variant --------------------------------------------------
define variant
$(B)/$(1)/lib/%.o: lib/%.c $(LIB_HDR) | $(B)/.deps-ok
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(LIB_CFLAGS) $(INC) -c $$< -o $$@

$(B)/$(1)/libshardpool.a: $(patsubst lib/%.c,$(B)/$(1)/lib/%.o,$(LIB_SRC))
	@rm -f $$@
	ar rcs $$@ $$^

$(B)/$(1)/support/%.o: tests/support/%.c tests/support/%.h $(LIB_HDR) | $(B)/.deps-ok
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INC) -I tests/support -c $$< -o $$@

$(B)/$(1)/tests/%: tests/%.c $(wildcard tests/support/*.h) $(B)/$(1)/support/fakeconn.o $(B)/$(1)/libshardpool.a
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INC) -I tests/support $$< $(B)/$(1)/support/fakeconn.o \
	  $(B)/$(1)/libshardpool.a -lcmocka $(LIBS) -lm $(LDFLAGS_$(1)) -o $$@

$(B)/$(1)/stress/%: tests/stress/%.c $(B)/$(1)/support/fakeconn.o $(B)/$(1)/libshardpool.a
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INC) -I tests/support $$< $(B)/$(1)/support/fakeconn.o \
	  $(B)/$(1)/libshardpool.a $(LIBS) -lm $(LDFLAGS_$(1)) -o $$@
endef
$(foreach v,release asan tsan broken,$(eval $(call variant,$(v))))

$(B)/release/libshardpool.so: $(patsubst lib/%.c,$(B)/release/lib/%.o,$(LIB_SRC))
	$(CC) -shared -Wl,-soname,libshardpool.so.$(SOVER) $^ $(LIBS) -o $@
	ln -sf libshardpool.so $(B)/release/libshardpool.so.$(SOVER)

# ---- tests ------------------------------------------------------------------
UNIT_BINS = $(addprefix $(B)/$(1)/tests/,$(UNIT))

# Each unit binary runs on its own, under a timeout, so one hang cannot stall CI.
define run_units
	@set -e; for t in $(UNIT); do echo "== $(1) $$t"; \
	  $(2) timeout 300 $(B)/$(1)/tests/$$t; done
endef

unit: $(call UNIT_BINS,release)
	$(call run_units,release,)

stress: $(addprefix $(B)/release/stress/,$(STRESS))
	timeout 600 $(B)/release/stress/conservation
	timeout 300 $(B)/release/stress/aba
	timeout 300 $(B)/release/stress/conservation --ops 4000000 --handoff-after-ns 1000000
	timeout 300 $(B)/release/stress/aba --ops 4000000 --handoff-after-ns 1000000
	timeout 300 $(B)/release/stress/aba --ops 4000000 --thread-cache 1
	timeout 300 $(B)/release/stress/conservation --ops 4000000 --thread-cache 0

asan: $(call UNIT_BINS,asan) $(addprefix $(B)/asan/stress/,$(STRESS))
	$(call run_units,asan,ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp)
	ASAN_OPTIONS=detect_leaks=1 timeout 600 $(B)/asan/stress/conservation
	ASAN_OPTIONS=detect_leaks=1 timeout 600 $(B)/asan/stress/aba --ops 1000000
	ASAN_OPTIONS=detect_leaks=1 timeout 600 $(B)/asan/stress/conservation --ops 1000000 --handoff-after-ns 1000000
	ASAN_OPTIONS=detect_leaks=1 timeout 600 $(B)/asan/stress/aba --ops 1000000 --handoff-after-ns 1000000
	ASAN_OPTIONS=detect_leaks=1 timeout 600 $(B)/asan/stress/aba --ops 1000000 --thread-cache 1

# TSAN_OPTIONS: halt_on_error makes any report fail the run.  die_after_fork=0:
# a child of a multi-threaded process starts liburcu's call_rcu thread in
# shardpool's fork handler (lib/fork.c), which TSan otherwise kills; the
# tests that fork under TSan (monitor_test) only exit in the child.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0 suppressions=$(CURDIR)/tests/tsan.supp"
$(B)/tsan/tsan_canary: tests/tsan_canary.c | $(B)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_tsan) $< $(LDFLAGS_tsan) -o $@

tsan: $(call UNIT_BINS,tsan) $(addprefix $(B)/tsan/stress/,$(STRESS)) $(B)/tsan/tsan_canary
	@if $(TSAN_ENV) setarch -R $(B)/tsan/tsan_canary >/dev/null 2>&1; then \
	  echo "tsan: FAIL - the canary race was not reported: this build is not instrumented"; exit 1; \
	else echo "tsan: canary race reported, instrumentation is live"; fi
	$(call run_units,tsan,$(TSAN_ENV) setarch -R)
	$(TSAN_ENV) setarch -R timeout 600 $(B)/tsan/stress/conservation --ops 2000000
	$(TSAN_ENV) setarch -R timeout 600 $(B)/tsan/stress/aba --ops 400000
	$(TSAN_ENV) setarch -R timeout 600 $(B)/tsan/stress/conservation --ops 1000000 --handoff-after-ns 1000000
	$(TSAN_ENV) setarch -R timeout 600 $(B)/tsan/stress/aba --ops 1000000 --handoff-after-ns 1000000
	$(TSAN_ENV) setarch -R timeout 600 $(B)/tsan/stress/aba --ops 400000 --thread-cache 1

# Proof that the stress tests can fail: the broken pop must be caught.
broken-proof: $(addprefix $(B)/broken/stress/,$(STRESS))
	@if timeout 300 $(B)/broken/stress/aba --seconds 60; then \
	  echo "broken-proof: FAIL - the ABA torture did not catch the single-word CAS pop"; exit 1; \
	else echo "broken-proof: PASS - the ABA torture caught the single-word CAS pop"; fi

# The README's example must compile against the headers and library as shipped.
readme-example: $(B)/release/libshardpool.a
	@mkdir -p $(B)/release/readme
	awk '/^```c$$/{f=1;next} /^```$$/{if(f)exit} f' README.md > $(B)/release/readme/example.c
	$(CC) $(CSTD) $(WARN) -O2 -I include $(B)/release/readme/example.c $(B)/release/libshardpool.a $(LIBS) \
	  -o $(B)/release/readme/example
	@echo "readme-example: the README's example compiles"


# ---- benchmark ----------------------------------------------------------------
$(B)/release/bench/baselines.o: bench/baselines.c bench/baselines.h | $(B)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -c $< -o $@

$(B)/release/bench/pair_bench: bench/pair_bench.cc bench/bench_args.h $(B)/release/bench/baselines.o $(B)/release/libshardpool.a
	$(CXX) -std=c++17 -O2 $(WARN) -I include -I bench $< $(B)/release/bench/baselines.o \
	  $(B)/release/libshardpool.a -lbenchmark $(LIBS) -o $@

# The pair benchmark (google-benchmark, ratios against the baselines), then
# shpbench's default workload over real TCP connections to its embedded echo
# backend, every pool in the same run.
bench: $(B)/release/bench/pair_bench $(B)/release/tools/shpbench
	$(B)/release/bench/pair_bench
	@mkdir -p $(B)/bench
	$(B)/release/tools/shpbench --duration 2s --threads 4 \
	  --json $(B)/bench/shpbench.json --csv $(B)/bench/shpbench.csv
	@echo "bench: shpbench results in $(B)/bench/shpbench.json and .csv"
	@$(MAKE) --no-print-directory shpbench-plots
	@$(MAKE) --no-print-directory bench-micro
	@$(MAKE) --no-print-directory bench-redis
	@$(MAKE) --no-print-directory bench-metrics

# ---- install ------------------------------------------------------------------
install: all $(B)/release/tools/shptop
	install -d $(DESTDIR)$(PREFIX)/include/shardpool $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/release/tools/shptop $(DESTDIR)$(PREFIX)/bin/
	install -m 644 include/shardpool.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/shardpool/*.h $(DESTDIR)$(PREFIX)/include/shardpool/
	$(if $(ADAPTER_HDR),install -d $(DESTDIR)$(PREFIX)/include/shardpool/adapters && \
	  install -m 644 $(ADAPTER_HDR) $(DESTDIR)$(PREFIX)/include/shardpool/adapters/)
	install -m 644 $(B)/release/libshardpool.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/release/libshardpool.so $(DESTDIR)$(PREFIX)/lib/libshardpool.so.$(VERSION)
	ln -sf libshardpool.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libshardpool.so.$(SOVER)
	ln -sf libshardpool.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libshardpool.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@LIBS@|$(LIBS)|g' tools/shardpool.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/shardpool.pc

clean:
	rm -rf $(B)

include tools/shpbench.mk
include bench/bench.mk
include bench/redis_bench.mk
include bench/metrics_bench.mk
include tools/shptop.mk

# Hardening fragments (issue 9).  Each may add its targets to CHECK_EXTRA
# (run by make check) and its Debian packages to DEB_PKGS.
CHECK_EXTRA :=
-include tests/model/model.mk
-include tests/fuzz/fuzz.mk
-include tests/netns/netns.mk
-include tests/soak/soak.mk
-include tools/custom.mk

# Last, so that every fragment's CHECK_EXTRA is in.
check: all readme-example unit stress broken-proof asan tsan shpbench-smoke shptop-test $(CHECK_EXTRA)
	@echo "make check: all passed"
