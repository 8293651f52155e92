# tests/soak/soak.mk - the soak test (tests/soak/soak.c), included by the
# main Makefile; not part of make check.  Uses its CC, CSTD, WARN, INC, LIBS,
# B, CFLAGS_release and the release libshardpool.a.  Needs the three
# adapters (WITH_TCP, WITH_PG, WITH_REDIS = 1, the defaults) and the
# servers that make deps installs for the integration tests (postgresql-15,
# redis-server).
#
#   make soak                 30 minutes
#   make soak SOAK_MIN=3      a short run
#   make soak SOAK_ARGS="--seconds 90"
#
# Output: a line per minute and a final table on stdout; shardpool's own log
# lines (level info and up) in $(B)/soak/shardpool.log.  Exit status 0 on
# PASS.  timeout(1) gives the run 5 minutes beyond its length for the end
# checks; the servers are stopped when the program ends or dies.

SOAK_MIN  ?= 30
SOAK_ARGS ?=

SOAK_OBJ := $(B)/release/soak/pgserver.o $(B)/release/soak/redisserver.o $(B)/release/support/echo.o

$(B)/release/soak/%.o: tests/adapters/%.c tests/adapters/%.h | $(B)/.deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_release) $(INC) -c $< -o $@

$(B)/release/soak/soak: tests/soak/soak.c tests/support/testutil.h tests/support/echo.h tests/adapters/pgserver.h \
    tests/adapters/redisserver.h $(LIB_HDR) $(SOAK_OBJ) $(call SHP_ARCHIVES,release)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_release) $(INC) -I tests/support -I tests/adapters $< \
	  $(SOAK_OBJ) $(call SHP_ARCHIVES,release) $(LIBS) -lm -o $@

.PHONY: soak
ifeq ($(WITH_TCP)$(WITH_PG)$(WITH_REDIS),111)
soak: $(B)/release/soak/soak
	@mkdir -p $(B)/soak
	timeout $$(( $(SOAK_MIN) * 60 + 300 )) $(B)/release/soak/soak --minutes $(SOAK_MIN) \
	  --log $(B)/soak/shardpool.log $(SOAK_ARGS)
else
soak:
	@echo "soak: skipped (needs WITH_TCP=1 WITH_PG=1 WITH_REDIS=1)"
endif
