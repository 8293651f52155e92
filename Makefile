# shardpool - see README.md.  `make` builds the libraries and the tools,
# `make check` runs every test (unit, stress, ASan+UBSan, TSan, the
# broken-variant proof, the install test, ...), `make bench` runs the
# benchmarks, `make deps` installs every Debian package; `make help` lists
# every target.

.DEFAULT_GOAL := all

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR    ?=
CC      ?= gcc
CXX     ?= g++
B       := build

# Shared libraries: lib<name>.so.$(VERSION), with the links .so.$(SOVER)
# (the SONAME) and .so (for -l<name>).
VERSION := 0.1.0
SOVER   := $(firstword $(subst ., ,$(VERSION)))

# Debian packages, by what needs them (see "dependencies" below).  Adapter
# and test fragments add to these; DEB_PKGS (the old single list) still
# counts as build dependencies.
BUILD_DEB_PKGS = gcc make pkg-config liburcu-dev libck-dev $(DEB_PKGS)
CHECK_DEB_PKGS := libcmocka-dev python3 jq prometheus gnuplot-nox
BENCH_DEB_PKGS := g++ libbenchmark-dev gnuplot-nox python3
DEB_PKGS :=

WARN    := -Wall -Wextra -Werror
CSTD    := -std=c11 -D_GNU_SOURCE
# The library reaches liburcu-bp's TLS reader on every acquire and release:
# initial-exec (liburcu-bp is a load-time dependency) avoids __tls_get_addr.
LIB_CFLAGS := -fPIC -ftls-model=initial-exec -fvisibility=hidden
INC     := -I include -I lib
# What libshardpool (core + TCP adapter) links.  liburcu-bp needs
# liburcu-common after it in a static link.
CORE_LIBS := -lck -lurcu-bp -lurcu-common -lpthread

LIB_SRC := lib/util.c lib/error.c lib/log.c lib/futex.c lib/hist.c lib/config.c lib/deadline.c \
           lib/tcache.c lib/fork.c lib/ref.c lib/retry.c lib/idle.c lib/conn.c lib/acquire.c \
           lib/release.c lib/reaper.c lib/lifecycle.c lib/metrics.c lib/export.c lib/monitor.c
LIB_HDR := $(wildcard include/*.h include/shardpool/*.h lib/*.h)
UNIT    := $(basename $(notdir $(wildcard tests/*_test.c)))

# The adapters (make WITH_TCP=0 WITH_PG=0 WITH_REDIS=0 builds the core
# alone).  TCP (and net.c, which every adapter uses) is part of
# libshardpool; each other adapter is a library of its own,
# libshardpool-<name> (ADAPTER_LIBNAMES), linking ADAPTER_LIBS_<name>.
include lib/adapters/adapters.mk
LIB_SRC += $(CORE_ADAPTER_SRC)
LIB_HDR += $(ADAPTER_HDR)
UNIT    += $(ADAPTER_UNIT)
# Everything a program using every built part links, after the archives.
LIBS    := $(CORE_LIBS) $(ADAPTER_LIBS)

# The static archives of variant $(1) a program using every built part
# links, in link order (the adapters' before the core they call).
SHP_ARCHIVES = $(foreach a,$(ADAPTER_LIBNAMES),$(B)/$(1)/libshardpool-$(a).a) $(B)/$(1)/libshardpool.a

CORE_OBJ = $(patsubst lib/%.c,$(B)/$(1)/lib/%.o,$(LIB_SRC))
# The objects of adapter library $(2) (its ADAPTER_SRC_$(2)) in variant $(1).
ADAPTER_OBJ = $(patsubst lib/%.c,$(B)/$(1)/lib/%.o,$(ADAPTER_SRC_$(2)))
# Feature switches METRICS=0, MONITOR=0: before the variant rules bake LIB_CFLAGS.
include tools/features.mk

# Per-variant flags: release (-O2), asan (ASan+UBSan), tsan (same algorithm
# on __atomic builtins, see lib/stack.h), broken (tests only: single-word CAS
# pop plus a widened ABA window; the stress tests must fail on it).
VARIANTS       := release asan tsan broken
CFLAGS_release := -O2 -g
CFLAGS_asan    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
CFLAGS_tsan    := -O1 -g -fsanitize=thread -DSHP_TSAN=1 -mcx16
CFLAGS_broken  := -O2 -g -DSHP_BROKEN_POP=1 -DSHP_STRESS_WINDOW=1 -mcx16
LDFLAGS_asan   := -fsanitize=address,undefined
LDFLAGS_tsan   := -fsanitize=thread
LDFLAGS_broken := -latomic
LDFLAGS_tsan   += -latomic

SHARED_LIBS := $(foreach l,libshardpool $(addprefix libshardpool-,$(ADAPTER_LIBNAMES)),\
                 $(B)/release/$(l).so.$(VERSION) $(B)/release/$(l).so.$(SOVER) $(B)/release/$(l).so)
STATIC_LIBS := $(call SHP_ARCHIVES,release)
TOOLS       := $(B)/release/tools/shpbench $(B)/release/tools/shptop

.PHONY: all libs tools deps deps-build deps-check deps-bench check unit stress asan tsan broken-proof \
        bench install uninstall clean readme-example help help-check
.DELETE_ON_ERROR:
# Keep what pattern chains build (adapter objects, the .so.$(VERSION) files).
.SECONDARY:

# The default target: what the README uses.
all: libs tools
libs: $(STATIC_LIBS) $(SHARED_LIBS)
tools: $(TOOLS)

# ---- dependencies (Debian) ------------------------------------------------
# Three sets, each with its stamp: build (the compiler, liburcu, ck, and the
# -dev packages of the adapters that are on), check (cmocka, servers, tools
# the tests call) and bench (g++, google-benchmark, gnuplot).  A rule that
# needs a set names its stamp as an order-only prerequisite.  A stamp holds
# its list: when the list changes (make WITH_PG=1 after WITH_PG=0), the set
# is checked again.  As root the missing packages are installed (one
# apt-get at a time: flock); otherwise the apt-get line is printed and make
# stops.
# $(1): set name, $(2): packages.  A shell snippet (for a recipe).
deps_install = missing=""; for p in $(sort $(2)); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps ($(1)): installing$$missing"; \
	    flock $(B)/.deps-lock sh -c 'apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$@" >/dev/null' apt $$missing || exit 1; \
	  else \
	    echo "make deps ($(1)): missing packages; run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# $(1): set name, $(2): packages, $(3): the stamp to wait for.
define deps_set
$(B)/.deps-$(1): $(if $(filter-out $(file <$(B)/.deps-$(1)),$(sort $(2))),FORCE) $(if $(3),| $(3))
	@mkdir -p $(B)
	@$$(call deps_install,$(1),$(2))
	@echo "$(sort $(2))" > $$@
endef
.PHONY: FORCE
FORCE:

# Fragments used to name $(B)/.deps-ok: the build set.
$(B)/.deps-ok: $(B)/.deps-build

deps-build: $(B)/.deps-build
deps-check: $(B)/.deps-check
deps-bench: $(B)/.deps-bench
# Every set at once (one apt-get line).
deps:
	@mkdir -p $(B)
	@$(call deps_install,all,$(BUILD_DEB_PKGS) $(CHECK_DEB_PKGS) $(BENCH_DEB_PKGS))
	@echo "$(sort $(BUILD_DEB_PKGS))" > $(B)/.deps-build
	@echo "$(sort $(CHECK_DEB_PKGS))" > $(B)/.deps-check
	@echo "$(sort $(BENCH_DEB_PKGS))" > $(B)/.deps-bench

# ---- libraries and test programs, per variant ---------------------------------
define variant
$(B)/$(1)/lib/%.o: lib/%.c $(LIB_HDR) | $(B)/.deps-build
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(LIB_CFLAGS) $(INC) -c $$< -o $$@

$(B)/$(1)/libshardpool.a: $(call CORE_OBJ,$(1))
	@rm -f $$@
	ar rcs $$@ $$^

$(B)/$(1)/support/%.o: tests/support/%.c tests/support/%.h $(LIB_HDR) | $(B)/.deps-check
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INC) -I tests/support -c $$< -o $$@

$(B)/$(1)/tests/%: tests/%.c $(wildcard tests/support/*.h) $(B)/$(1)/support/fakeconn.o \
    $(call SHP_ARCHIVES,$(1)) | $(B)/.deps-check
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INC) -I tests/support $$< $(B)/$(1)/support/fakeconn.o \
	  $(call SHP_ARCHIVES,$(1)) -lcmocka $(LIBS) -lm $(LDFLAGS_$(1)) -o $$@

$(B)/$(1)/stress/stress_common.o: tests/stress/stress_common.c tests/stress/stress_common.h \
                                  tests/support/fakeconn.h $(LIB_HDR) | $(B)/.deps-check
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INC) -I tests/support -c $$< -o $$@

$(B)/$(1)/stress/%: tests/stress/%.c tests/stress/stress_common.h $(B)/$(1)/stress/stress_common.o \
                    $(B)/$(1)/support/fakeconn.o $(B)/$(1)/libshardpool.a | $(B)/.deps-check
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INC) -I tests/support $$< $(B)/$(1)/stress/stress_common.o \
	  $(B)/$(1)/support/fakeconn.o $(B)/$(1)/libshardpool.a $(CORE_LIBS) -lm $(LDFLAGS_$(1)) -o $$@
endef
$(foreach v,$(VARIANTS),$(eval $(call variant,$(v))))

# Each adapter's archive, per variant: $(1) variant, $(2) adapter name.
define adapter_archive
$(B)/$(1)/libshardpool-$(2).a: $(call ADAPTER_OBJ,$(1),$(2))
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach v,$(VARIANTS),$(foreach a,$(ADAPTER_LIBNAMES),$(eval $(call adapter_archive,$(v),$(a)))))

# Shared libraries (release flags).  --no-undefined: each names every
# library it needs, so libshardpool.so, linked with $(CORE_LIBS) only, is
# proof that the core needs neither libpq nor hiredis.
$(B)/release/libshardpool.so.$(VERSION): $(call CORE_OBJ,release)
	$(CC) -shared -Wl,-soname,libshardpool.so.$(SOVER) -Wl,--no-undefined $^ $(CORE_LIBS) -o $@

# Each adapter's: $(1) adapter name.
define adapter_shared
$(B)/release/libshardpool-$(1).so.$(VERSION): $(call ADAPTER_OBJ,release,$(1)) $(B)/release/libshardpool.so
	$(CC) -shared -Wl,-soname,libshardpool-$(1).so.$(SOVER) -Wl,--no-undefined $$(filter %.o,$$^) \
	  -L$(B)/release -lshardpool $(ADAPTER_LIBS_$(1)) -o $$@
endef
$(foreach a,$(ADAPTER_LIBNAMES),$(eval $(call adapter_shared,$(a))))

$(B)/release/%.so.$(SOVER): $(B)/release/%.so.$(VERSION)
	ln -sf $(notdir $<) $@
$(B)/release/%.so: $(B)/release/%.so.$(SOVER)
	ln -sf $(notdir $<) $@

# ---- tests ------------------------------------------------------------------
UNIT_BINS = $(addprefix $(B)/$(1)/tests/,$(UNIT))

# Each unit binary runs on its own, under a timeout, so one hang cannot stall CI.
define run_units
	@set -e; for t in $(UNIT); do echo "== $(1) $$t"; \
	  $(2) timeout 300 $(B)/$(1)/tests/$$t; done
endef

# The stress runs, written once: program:ops[:extra,args] with the release
# op counts; variant v runs ops / STRESS_DIV_v.  The timeouts only stop a hang.
STRESS  := conservation aba
STRESS_RUNS := \
  conservation:10000000 \
  aba:4000000 \
  conservation:4000000:--handoff-after-ns,1000000 \
  aba:4000000:--handoff-after-ns,1000000 \
  aba:4000000:--thread-cache,1 \
  conservation:4000000:--thread-cache,0
STRESS_DIV_release := 1
STRESS_DIV_asan    := 4
STRESS_DIV_tsan    := 5

# $(1): variant, $(2): environment and wrapper of each run.
define run_stress
	@set -e; for r in $(STRESS_RUNS); do \
	  set -- $$(echo $$r | tr ':,' '  '); p=$$1; n=$$(( $$2 / $(STRESS_DIV_$(1)) )); shift 2; \
	  echo "== $(1) stress $$p --ops $$n $$*"; \
	  $(2) timeout 600 $(B)/$(1)/stress/$$p --ops $$n "$$@"; \
	done
endef

unit: $(call UNIT_BINS,release)
	$(call run_units,release,)

stress: $(addprefix $(B)/release/stress/,$(STRESS))
	$(call run_stress,release,)

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp
asan: $(call UNIT_BINS,asan) $(addprefix $(B)/asan/stress/,$(STRESS))
	$(call run_units,asan,$(ASAN_ENV))
	$(call run_stress,asan,$(ASAN_ENV))

# TSAN_OPTIONS: halt_on_error makes any report fail the run.  die_after_fork=0:
# a child of a multi-threaded process starts liburcu's call_rcu thread in
# shardpool's fork handler (lib/fork.c), which TSan otherwise kills; the
# tests that fork under TSan (monitor_test) only exit in the child.
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0 suppressions=$(CURDIR)/tests/tsan.supp"
$(B)/tsan/tsan_canary: tests/tsan_canary.c | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_tsan) $< $(LDFLAGS_tsan) -o $@

tsan: $(call UNIT_BINS,tsan) $(addprefix $(B)/tsan/stress/,$(STRESS)) $(B)/tsan/tsan_canary
	@if $(TSAN_ENV) setarch -R $(B)/tsan/tsan_canary >/dev/null 2>&1; then \
	  echo "tsan: FAIL - the canary race was not reported: this build is not instrumented"; exit 1; \
	else echo "tsan: canary race reported, instrumentation is live"; fi
	$(call run_units,tsan,$(TSAN_ENV) setarch -R)
	$(call run_stress,tsan,$(TSAN_ENV) setarch -R)

# Proof that the stress tests can fail: the broken pop must be caught.
broken-proof: $(addprefix $(B)/broken/stress/,$(STRESS))
	@if timeout 300 $(B)/broken/stress/aba --seconds 60; then \
	  echo "broken-proof: FAIL - the ABA torture did not catch the single-word CAS pop"; exit 1; \
	else echo "broken-proof: PASS - the ABA torture caught the single-word CAS pop"; fi

# The README's first example must compile against the headers and library
# as built (tests/install/ builds every example against the installed tree).
readme-example: $(B)/release/libshardpool.a
	@mkdir -p $(B)/release/readme
	awk '/^```c$$/{f=1;next} /^```$$/{if(f)exit} f' README.md > $(B)/release/readme/example.c
	$(CC) $(CSTD) $(WARN) -O2 -I include $(B)/release/readme/example.c $(B)/release/libshardpool.a \
	  $(CORE_LIBS) -o $(B)/release/readme/example
	@echo "readme-example: the README's example compiles"


# ---- benchmark ----------------------------------------------------------------
# baselines.o is C and also linked into shpbench (built by `make`).
$(B)/release/bench/baselines.o: bench/baselines.c bench/baselines.h | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -c $< -o $@

$(B)/release/bench/pair_bench: bench/pair_bench.cc bench/bench_args.h $(B)/release/bench/baselines.o \
    $(B)/release/libshardpool.a | $(B)/.deps-bench
	$(CXX) -std=c++17 -O2 $(WARN) -I include -I bench $< $(B)/release/bench/baselines.o \
	  $(B)/release/libshardpool.a -lbenchmark $(CORE_LIBS) -o $@

# The pair benchmark (google-benchmark, ratios against the baselines), then
# shpbench's default workload over real TCP connections to its embedded echo
# backend, every pool in the same run.
bench: $(B)/release/bench/pair_bench $(B)/release/tools/shpbench | $(B)/.deps-bench
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
# make install [DESTDIR=/tmp/stage] [PREFIX=/usr] [LIBDIR=/usr/lib/x86_64-linux-gnu]:
# headers, static and shared libraries (with their .so.$(SOVER) and .so
# links), a pkg-config file per library, the tools and their man pages.
# make uninstall (same variables) removes those files and the include
# directories install made, if empty.
PC_DIR      := lib/pkgconfig
PC_NAMES    := shardpool $(addprefix shardpool-,$(ADAPTER_LIBNAMES))
LIB_NAMES   := libshardpool $(addprefix libshardpool-,$(ADAPTER_LIBNAMES))
MAN_PAGES   := tools/man/shpbench.1 tools/man/shptop.1
# The .pc files name libdir and includedir relative to prefix when they are
# under it.
pc_path = $(if $(filter $(PREFIX)/%,$(1)),$${prefix}/$(patsubst $(PREFIX)/%,%,$(1)),$(1))
PC_SED := -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
          -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g'

I_INC := $(DESTDIR)$(INCLUDEDIR)
I_LIB := $(DESTDIR)$(LIBDIR)

install: all
	install -d $(I_INC)/shardpool $(I_LIB) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(MANDIR)/man1
	install -m 644 include/shardpool.h $(I_INC)/
	install -m 644 include/shardpool/*.h $(I_INC)/shardpool/
	$(if $(ADAPTER_HDR),install -d $(I_INC)/shardpool/adapters && \
	  install -m 644 $(ADAPTER_HDR) $(I_INC)/shardpool/adapters/)
	set -e; for l in $(LIB_NAMES); do \
	  install -m 644 $(B)/release/$$l.a $(I_LIB)/; \
	  install -m 755 $(B)/release/$$l.so.$(VERSION) $(I_LIB)/; \
	  ln -sf $$l.so.$(VERSION) $(I_LIB)/$$l.so.$(SOVER); \
	  ln -sf $$l.so.$(SOVER) $(I_LIB)/$$l.so; \
	done
	set -e; for p in $(PC_NAMES); do \
	  sed $(PC_SED) $(PC_DIR)/$$p.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/$$p.pc; done
	install -m 755 $(TOOLS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/

# Every name install may have put, whatever WITH_* it ran with.
uninstall:
	rm -f $(I_INC)/shardpool.h $(addprefix $(I_INC)/shardpool/,$(notdir $(wildcard include/shardpool/*.h))) \
	  $(addprefix $(I_INC)/shardpool/adapters/,$(notdir $(wildcard include/shardpool/adapters/*.h)))
	for l in libshardpool $(addprefix libshardpool-,$(ADAPTER_ALL_LIBNAMES)); do \
	  rm -f $(I_LIB)/$$l.a $(I_LIB)/$$l.so.$(VERSION) $(I_LIB)/$$l.so.$(SOVER) $(I_LIB)/$$l.so; done
	rm -f $(addprefix $(DESTDIR)$(PKGCONFIGDIR)/,$(addsuffix .pc,shardpool $(addprefix shardpool-,$(ADAPTER_ALL_LIBNAMES))))
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(TOOLS))) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN_PAGES)))
	-rmdir $(I_INC)/shardpool/adapters $(I_INC)/shardpool 2>/dev/null || true

clean:
	rm -rf $(B)

include tools/shpbench.mk
include bench/bench.mk
include bench/redis_bench.mk
include bench/metrics_bench.mk
include tools/shptop.mk

# The benchmarks need the bench packages (the fragments' binaries too).
BENCH_TARGETS := bench bench-micro bench-redis bench-metrics shpbench-plots \
  $(addprefix $(B)/release/bench/,pair_bench pool_bench reaper_bench redis_bench metrics_bench)
$(BENCH_TARGETS): | $(B)/.deps-bench

# Hardening fragments (issue 9).  Each may add its targets to CHECK_EXTRA
# (run by make check) and its Debian packages to CHECK_DEB_PKGS.
CHECK_EXTRA :=
-include tests/model/model.mk
-include tests/fuzz/fuzz.mk
-include tests/netns/netns.mk
-include tests/soak/soak.mk
-include tests/install/install.mk
-include tools/custom.mk

# ---- help -------------------------------------------------------------------
# One line per target: "target|what".  Fragments' targets are listed here
# too, so that this is the one list.
HELP := \
  "all|the default: libshardpool and the adapter libraries (.a, .so), shpbench, shptop (build/release/)" \
  "libs|the libraries only" \
  "tools|build/release/tools/shpbench and shptop" \
  "install|headers, libraries, pkg-config files, tools, man pages (PREFIX, LIBDIR, DESTDIR, ...)" \
  "uninstall|removes what install put (same PREFIX, LIBDIR, DESTDIR)" \
  "check|every test below marked [check]; installs the test packages" \
  "unit|[check] the cmocka unit and adapter tests (release)" \
  "stress|[check] conservation and ABA torture (release)" \
  "asan|[check] unit and stress tests under ASan+UBSan" \
  "tsan|[check] unit and stress tests under ThreadSanitizer (and its canary)" \
  "broken-proof|[check] the ABA torture must catch a deliberately broken pop" \
  "readme-example|[check] the README's first example compiles against the build tree" \
  "install-test|[check] install into a DESTDIR, build every README example with pkg-config, uninstall" \
  "shpbench-smoke|[check] shpbench self-test, short run, sweep plots, recommend" \
  "shptop-test|[check] shptop against demo processes with monitored pools" \
  "model|[check] spin checks the pool protocol model and its broken variants" \
  "model-big|larger spin configurations (minutes)" \
  "fuzz-smoke|[check] every libFuzzer target for a few seconds" \
  "fuzz|every libFuzzer target for FUZZ_SECONDS (60) each" \
  "fuzz-build|builds every libFuzzer target without running it" \
  "fuzz-crashers|replays committed crash reproducers (informational)" \
  "blackhole|[check] adapters against servers whose packets are dropped (netns)" \
  "signal-storm|[check] a 10 kHz SIGALRM storm: no -EINTR, deadlines hold" \
  "soak|30 minutes (SOAK_MIN) of real servers killed under load" \
  "amalgamation|build/amalgamation/shardpool.c and shardpool.h, single-file build" \
  "amalgamation-test|[check] the amalgamation compiles warning-free, exports the library's symbols, passes the public-API unit tests" \
  "switch-check|[check] builds each switched-off configuration (WITH_TCP/PG/REDIS=0, METRICS=0, MONITOR=0, all) and runs its unit tests" \
  "switch-verify|in one switched configuration: nm shows the part gone; runs tests/custom/switch_test" \
  "bench|pair_bench, shpbench, shpbench-plots, bench-micro, bench-redis, bench-metrics; installs the bench packages" \
  "bench-micro|per-module google-benchmark microbenchmarks (build/bench/micro.json)" \
  "bench-redis|pool vs dedicated hiredis connections (needs WITH_REDIS=1)" \
  "bench-metrics|metrics on vs compiled out, one process" \
  "shpbench-plots|a small shpbench sweep with SVG/PNG plots in build/bench/" \
  "deps|installs every Debian package (build, check and bench sets)" \
  "deps-build|the build packages (what plain make installs): gcc, liburcu, ck, enabled adapters' -dev" \
  "deps-check|the test packages (what make check installs): cmocka, servers, spin, clang, ..." \
  "deps-bench|the benchmark packages (what make bench installs): g++, google-benchmark, gnuplot" \
  "clean|removes build/" \
  "print-VERSION|prints the version (used by install-test)" \
  "help-check|[check] make help lists every .PHONY target" \
  "help|this list"

# make help-check (part of make check): every .PHONY target of the
# Makefile and its fragments has its line in HELP.
help-check:
	@listed=$$(for l in $(HELP); do printf '%s\n' "$${l%%|*}"; done); \
	missing=$$($(MAKE) --no-print-directory -pqrR -f $(firstword $(MAKEFILE_LIST)) : 2>/dev/null | \
	  sed -n 's/^\.PHONY: *//p' | tr ' ' '\n' | sort -u | grep -v '^FORCE$$' | grep . | \
	  while read t; do printf '%s\n' "$$listed" | grep -qx -- "$$t" || echo $$t; done); \
	if [ -n "$$missing" ]; then echo "help-check: FAIL - make help does not list:" $$missing; exit 1; fi; \
	echo "help-check: make help lists every target"

help:
	@echo "make [target] [WITH_TCP=0] [WITH_PG=0] [WITH_REDIS=0] [PREFIX=...] [LIBDIR=...] [DESTDIR=...]"
	@for l in $(HELP); do \
	  t=$${l%%|*}; w=$${l#*|}; printf '  %-16s %s\n' "$$t" "$$w"; done

# Last, so that every fragment's packages and CHECK_EXTRA are in.
$(eval $(call deps_set,build,$(BUILD_DEB_PKGS),))
$(eval $(call deps_set,check,$(CHECK_DEB_PKGS),$(B)/.deps-build))
$(eval $(call deps_set,bench,$(BENCH_DEB_PKGS),$(B)/.deps-build))

CHECK_TARGETS := help-check readme-example unit stress broken-proof asan tsan shpbench-smoke shptop-test $(CHECK_EXTRA)
$(CHECK_TARGETS): | $(B)/.deps-check
check: all $(CHECK_TARGETS)
	@echo "make check: all passed"
