# tests/fuzz/fuzz.mk - libFuzzer targets for every parser and masker that
# takes outside text (included by the main Makefile after its variables and
# rules; uses CSTD, WARN, INC, LIBS, LIB_CFLAGS, LIB_SRC, LIB_HDR, B, and
# tools/shpbench.mk's SHPB_SRC, SHPB_HDR, SHPB_DEFS).
#
#   make fuzz          builds every target, runs each for FUZZ_SECONDS (60)
#                      on a scratch copy of its corpus, prints execs/s,
#                      coverage and findings per target
#   make fuzz-smoke    the same for FUZZ_SMOKE_SECONDS (4) each; fails on any
#                      finding (part of make check)
#   make fuzz-crashers replays the committed crash-* reproducers of known,
#                      reported bugs with SHP_FUZZ_STRICT=1 and says which
#                      still reproduce (informational, never fails; there
#                      are none while no known bug is open: fuzz_util.h)
#   make $(B)/fuzz/bin/fuzz_<target>   one target; run it by hand with
#                      libFuzzer's options, e.g. on one input to reproduce:
#                      build/fuzz/bin/fuzz_mask crash-...
#
# Targets (tests/fuzz/fuzz_<target>.c, seeds in tests/fuzz/corpus/<target>/):
#   mask           shp_mask_secrets
#   log            shp__log through shp_log_set with a capturing sink
#   tcp_config     shp_tcp_ops (and its connect-failure log, with socket,
#                  connect and getaddrinfo wrapped: no network)
#   pg_config      shp_pg_ops: conninfo / URI parsing and the log target
#   redis_config   shp_redis_ops
#   redis_reply    the Redis adapter's cleanup and handshake reply readers
#                  over a socketpair (and its deadline-bound I/O)
#   shpbench_opts  shpbench's duration, distribution, rate, count, pool list
#                  and --sweep parsers
#
# The library objects are compiled with the fuzzer's sanitizer flags into
# $(B)/fuzz/ (LIB_SRC, as the other variants).  Findings land in
# $(B)/fuzz/run/<target>/artifacts/; new corpus inputs stay under $(B).

FUZZ_CC      ?= clang-14
CHECK_DEB_PKGS += clang-14 libclang-rt-14-dev
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4

CFLAGS_fuzz  := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=all
LDFLAGS_fuzz := -fsanitize=fuzzer,address,undefined
# clang, unlike gcc, warns about a static inline function a .c file does not
# use (lib/idle.c's shp__put_idle).
FUZZ_WARN    := $(WARN) -Wno-unused-function
# Inputs larger than this are not tried (the Redis reply target writes the
# input to a socketpair in one go; 8 KiB fits its buffer many times over).
FUZZ_MAX_LEN := 8192

FUZZ_TARGETS := mask log shpbench_opts
ifeq ($(WITH_TCP),1)
FUZZ_TARGETS += tcp_config
endif
ifeq ($(WITH_PG),1)
FUZZ_TARGETS += pg_config
endif
ifeq ($(WITH_REDIS),1)
FUZZ_TARGETS += redis_config redis_reply
endif
FUZZ_BINS := $(addprefix $(B)/fuzz/bin/fuzz_,$(FUZZ_TARGETS))

# ---- objects ----------------------------------------------------------------
$(B)/fuzz/lib/%.o: lib/%.c $(LIB_HDR) | $(B)/.deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) $(FUZZ_WARN) $(CFLAGS_fuzz) $(LIB_CFLAGS) $(INC) -c $< -o $@

$(B)/fuzz/libshardpool.a: $(patsubst lib/%.c,$(B)/fuzz/lib/%.o,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

# shpbench's parsers: its sources but main.c (which fuzz_shpbench_opts.c
# includes, to reach its static parsers), and the baselines they link.
FUZZ_SHPB_OBJ := $(patsubst tools/shpbench/%.c,$(B)/fuzz/tools/shpbench/%.o,$(filter-out tools/shpbench/main.c,$(SHPB_SRC))) \
                 $(B)/fuzz/bench/baselines.o
$(B)/fuzz/tools/shpbench/%.o: tools/shpbench/%.c $(SHPB_HDR) $(LIB_HDR) | $(B)/.deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) $(FUZZ_WARN) $(CFLAGS_fuzz) $(INC) $(SHPB_DEFS) -I tools -I bench -c $< -o $@
$(B)/fuzz/bench/baselines.o: bench/baselines.c bench/baselines.h | $(B)/.deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) $(FUZZ_WARN) $(CFLAGS_fuzz) -c $< -o $@

# ---- targets ------------------------------------------------------------------
# Per target: extra objects (FUZZ_OBJ_<t>) and link flags (FUZZ_LD_<t>).
# Targets that include an adapter's .c (to reach its static functions)
# depend on it; the archive's copy of that adapter is then not linked in.
# The Redis targets include lib/adapters/redis.c (the ops and the hooks)
# and link the adapter's other sources (ADAPTER_SRC_redis), compiled here.
FUZZ_REDIS_OBJ := $(patsubst lib/%.c,$(B)/fuzz/lib/%.o,$(filter-out lib/adapters/redis.c,$(ADAPTER_SRC_redis)))
FUZZ_OBJ_redis_config := $(FUZZ_REDIS_OBJ)
FUZZ_OBJ_redis_reply  := $(FUZZ_REDIS_OBJ)
# shpbench's backends call the adapter libraries (redis://, postgresql://):
# every built adapter's sources, compiled here.
FUZZ_ADAPTER_OBJ := $(patsubst lib/%.c,$(B)/fuzz/lib/%.o,$(foreach a,$(ADAPTER_LIBNAMES),$(ADAPTER_SRC_$(a))))
FUZZ_OBJ_shpbench_opts := $(FUZZ_SHPB_OBJ) $(FUZZ_ADAPTER_OBJ)
FUZZ_CFLAGS_shpbench_opts := $(SHPB_DEFS) -I bench -I tools
# tcp_config wraps the adapter's socket, connect, poll and getaddrinfo calls:
# its connect callback runs without a resolver or a connection.
FUZZ_LD_tcp_config := -Wl,--wrap=socket,--wrap=connect,--wrap=getaddrinfo,--wrap=freeaddrinfo,--wrap=poll
$(B)/fuzz/bin/fuzz_pg_config: lib/adapters/pg.c
$(B)/fuzz/bin/fuzz_redis_config $(B)/fuzz/bin/fuzz_redis_reply: lib/adapters/redis.c \
    lib/adapters/redis_internal.h $(FUZZ_REDIS_OBJ)
$(B)/fuzz/bin/fuzz_shpbench_opts: tools/shpbench/main.c $(FUZZ_SHPB_OBJ) $(FUZZ_ADAPTER_OBJ)

$(B)/fuzz/bin/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(B)/fuzz/libshardpool.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) $(FUZZ_WARN) $(CFLAGS_fuzz) $(INC) -I tests/fuzz $(FUZZ_CFLAGS_$*) $< \
	  $(FUZZ_OBJ_$*) $(B)/fuzz/libshardpool.a $(LIBS) -lm $(LDFLAGS_fuzz) $(FUZZ_LD_$*) -o $@

# ---- runs ---------------------------------------------------------------------
.PHONY: fuzz fuzz-smoke fuzz-build fuzz-crashers
fuzz-build: $(FUZZ_BINS)

# $(1): seconds per target, $(2): scratch dir under $(B)/fuzz.
define fuzz_run_all
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  tests/fuzz/run.sh $(B)/fuzz/bin/fuzz_$$t tests/fuzz/corpus/$$t $(B)/fuzz/$(2)/$$t $(1) \
	    -max_len=$(FUZZ_MAX_LEN) || fail=1; \
	done; exit $$fail
endef

fuzz: $(FUZZ_BINS)
	$(call fuzz_run_all,$(FUZZ_SECONDS),run)

fuzz-smoke: $(FUZZ_BINS)
	$(call fuzz_run_all,$(FUZZ_SMOKE_SECONDS),smoke)

fuzz-crashers: $(FUZZ_BINS)
	@n=0; for t in $(FUZZ_TARGETS); do for f in tests/fuzz/corpus/$$t/crash-*; do \
	  [ -f "$$f" ] || continue; n=$$((n + 1)); \
	  if SHP_FUZZ_STRICT=1 $(B)/fuzz/bin/fuzz_$$t "$$f" >$(B)/fuzz/crasher.log 2>&1; then \
	    echo "fuzz-crashers: $$f: passes now (fixed? make its property strict, rename the file)"; \
	  else echo "fuzz-crashers: $$f: still reproduces"; fi; \
	done; done; [ $$n -gt 0 ] || echo "fuzz-crashers: no crash-* reproducers: no known bug is open"

CHECK_EXTRA += fuzz-smoke
