# tests/netns/netns.mk - fault programs: network blackhole and signal storm.
# Included by the main Makefile after its variables and rules; adds its
# targets to make check through CHECK_EXTRA and its packages to CHECK_DEB_PKGS.
#
#   make blackhole     shardpool's TCP, Redis and PostgreSQL adapters against
#                      servers whose packets an nftables rule drops, inside a
#                      network namespace of the program's own (root; prints a
#                      SKIP line and passes where no namespace can be made)
#   make signal-storm  a 10 kHz SIGALRM storm (no SA_RESTART) against threads
#                      waiting, connecting (TCP and Redis adapters, a sleeping
#                      connect), checking, backing off and draining; release,
#                      ASan+UBSan and TSan builds

CHECK_DEB_PKGS += nftables

NETNS_INTEG := tests/adapters/redisserver.c tests/adapters/pgserver.c tests/support/echo.c
NETNS_INTEG_H := tests/adapters/redisserver.h tests/adapters/pgserver.h tests/support/echo.h

ifeq ($(WITH_TCP)$(WITH_REDIS)$(WITH_PG),111)
$(B)/release/netns/blackhole: tests/netns/blackhole.c $(NETNS_INTEG) $(NETNS_INTEG_H) \
                              $(call SHP_ARCHIVES,release) | $(B)/.deps-check
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_release) $(INC) -I tests/adapters -I tests/support $< $(NETNS_INTEG) \
	  $(call SHP_ARCHIVES,release) $(LIBS) -o $@

# About 60 s; the timeout only stops a hang.
blackhole: $(B)/release/netns/blackhole
	timeout 300 $< --log $(B)/release/netns/blackhole.log
else
blackhole:
	@echo "blackhole: FAIL - needs the TCP, Redis and PostgreSQL adapters (WITH_TCP, WITH_REDIS, WITH_PG)"; exit 1
endif

# The signal storm: one program per variant (the variant's library and
# flags), each run for 3 s of storm.  Needs the TCP adapter; its Redis
# scenarios are built when the Redis adapter is.
ifeq ($(WITH_TCP),1)
STORM_DEFS := -DSTORM_WITH_REDIS=$(if $(filter 1,$(WITH_REDIS)),1,0)
define netns_storm
$(B)/$(1)/netns/signal_storm: tests/netns/signal_storm.c $(wildcard tests/support/*.h) \
                              $(B)/$(1)/support/fakeconn.o $(B)/$(1)/support/echo.o $(call SHP_ARCHIVES,$(1))
	@mkdir -p $$(dir $$@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(STORM_DEFS) $(INC) -I tests/support $$< \
	  $(B)/$(1)/support/fakeconn.o $(B)/$(1)/support/echo.o $(call SHP_ARCHIVES,$(1)) $(LIBS) -lrt $(LDFLAGS_$(1)) -o $$@
endef
$(foreach v,release asan tsan,$(eval $(call netns_storm,$(v))))

# Each build runs even if an earlier one failed; the target fails if any did.
signal-storm: $(addprefix $(B)/,$(addsuffix /netns/signal_storm,release asan tsan))
	@rc=0; \
	echo "== signal_storm release"; timeout 120 $(B)/release/netns/signal_storm || rc=1; \
	echo "== signal_storm asan"; ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp timeout 120 $(B)/asan/netns/signal_storm || rc=1; \
	echo "== signal_storm tsan"; $(TSAN_ENV) setarch -R timeout 120 $(B)/tsan/netns/signal_storm || rc=1; \
	exit $$rc
else
signal-storm:
	@echo "signal-storm: FAIL - needs the TCP adapter (WITH_TCP=1)"; exit 1
endif

.PHONY: blackhole signal-storm
CHECK_EXTRA += blackhole signal-storm
