# tests/custom/switch-check.mk - `make switch-check`: every "off"
# configuration of the feature switches (tools/features.mk,
# lib/adapters/*.mk) builds in a directory of its own, B=$(B)/off-<name>, in
# release only, and runs the unit tests that apply to it (those about a part
# that is off are left out by the switch itself), then `switch-verify`
# proves the part is gone.  Recursive make calls, so it keeps working
# whatever the link rules are.  Included by tools/custom.mk.
#
#   make switch-check               every configuration below
#   make switch-check-monitor       one of them
#   make switch-verify              (in a configured build) the checks below

SWITCH_CONFIGS := tcp pg redis metrics monitor all
SWITCH_ARGS_tcp     := WITH_TCP=0
SWITCH_ARGS_pg      := WITH_PG=0
SWITCH_ARGS_redis   := WITH_REDIS=0
SWITCH_ARGS_metrics := METRICS=0
SWITCH_ARGS_monitor := MONITOR=0
SWITCH_ARGS_all     := WITH_TCP=0 WITH_PG=0 WITH_REDIS=0 METRICS=0 MONITOR=0

.PHONY: switch-check switch-verify

# Two configurations at a time, sharing two job slots (the tests mostly
# wait: one configuration alone leaves the cores idle); -Orecurse keeps each
# configuration's output together.  Inside a `make -jN` the jobserver is
# shared instead of forcing -j2.
SWITCH_J = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j2)

switch-check:
	$(MAKE) --no-print-directory $(SWITCH_J) -Orecurse $(addprefix switch-check-,$(SWITCH_CONFIGS))
	@echo "switch-check: every off configuration built and passed its unit tests"

# (a pattern rule, so that the configurations are not .PHONY targets of
# their own; no file of these names is ever made)
switch-check-%:
	@echo "== switch-check $*: $(SWITCH_ARGS_$*) (B=$(B)/off-$*)"
	$(MAKE) --no-print-directory $(SWITCH_J) B=$(B)/off-$* $(SWITCH_ARGS_$*) unit switch-verify

# What must be gone from the library ($(B)/release/libshardpool.a of this
# configuration), and the switched-off calls' answers (switch_test.c).
SWITCH_LIB := $(B)/release/libshardpool.a
SWITCH_DEFS := $(if $(filter 0,$(METRICS)),-DEXPECT_NO_METRICS) $(if $(filter 0,$(MONITOR)),-DEXPECT_NO_MONITOR)

$(B)/release/switch_test: tests/custom/switch_test.c $(B)/release/support/fakeconn.o $(SWITCH_LIB)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_release) $(SWITCH_DEFS) -I include -I tests/support $< \
	  $(B)/release/support/fakeconn.o $(SWITCH_LIB) $(LIBS) -lm -o $@

switch-verify: $(SWITCH_LIB) $(B)/release/switch_test
	@nm $(SWITCH_LIB) > $(B)/release/switch-nm.txt 2>/dev/null
	@fail=0; \
	 no() { if grep -qE "$$2" $(B)/release/switch-nm.txt; then \
	   echo "switch-verify: FAIL - $$1: $$(grep -E "$$2" $(B)/release/switch-nm.txt | head -3 | tr '\n' ' ')"; fail=1; fi; }; \
	 $(if $(filter 0,$(WITH_TCP)),no "WITH_TCP=0 left TCP code" ' [TD] shp_tcp_';) \
	 $(if $(filter 0,$(WITH_PG)),no "WITH_PG=0 left pg code or libpq references" ' [TDU] (shp_pg_|PQ)';) \
	 $(if $(filter 0,$(WITH_REDIS)),no "WITH_REDIS=0 left redis code or hiredis references" ' [TDU] (shp_redis_|redis)';) \
	 $(if $(filter 0,$(MONITOR)),no "MONITOR=0 left shared-memory code" ' [TU] (shm_open|shm_unlink|shp__monitor_publish|shp__monitor_mapping)$$';) \
	 [ $$fail = 0 ] || exit 1
	timeout 60 $(B)/release/switch_test
	@echo "switch-verify: $(or $(strip $(filter WITH_%=0 METRICS=0 MONITOR=0,$(foreach v,WITH_TCP WITH_PG WITH_REDIS METRICS MONITOR,$(v)=$($(v))))),nothing switched off): what is off is gone, size $$(size -t $(SWITCH_LIB) | awk 'END {print $$1 + $$2}') bytes text+data"

