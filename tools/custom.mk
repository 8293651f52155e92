# tools/custom.mk - custom builds (README "Custom builds"): the feature
# switches, the amalgamation and their checks.  Included by the main Makefile
# once its sources, units and flags are set (LIB_SRC, ADAPTER_*, UNIT,
# LIB_CFLAGS) and BEFORE its per-variant rules are instantiated, because the
# switches add to LIB_CFLAGS, which those rules bake in.  The check targets
# are made prerequisites of `check` here (the main Makefile's CHECK_EXTRA is
# reset after this point).
#
# Switches (each defaults to on; 0 leaves the part out of the library and
# its tests out of `make unit`; use a build directory of its own, e.g.
# `make B=build/nomon MONITOR=0`, as objects do not track flags):
#
#   WITH_TCP=0 WITH_PG=0 WITH_REDIS=0   the adapters (lib/adapters/*.mk)
#   METRICS=0    -DSHP_NO_METRICS: no fast-path latency recording
#                (include/shardpool/metrics.h says what snapshots hold then)
#   MONITOR=0    -DSHP_NO_MONITOR: no live monitor (lib/monitor.h);
#                shp_monitor_enable answers -ENOTSUP

METRICS ?= 1
MONITOR ?= 1

# The unit tests about a part that is switched off (paths under tests/,
# without .c): left out of $(UNIT).  metrics_test checks recorded histograms
# and the derived home_hits/releases; monitor_test reads the segment.
SWITCH_UNITS_METRICS ?= metrics_test
SWITCH_UNITS_MONITOR ?= monitor_test

ifeq ($(METRICS),0)
LIB_CFLAGS += -DSHP_NO_METRICS
UNIT := $(filter-out $(SWITCH_UNITS_METRICS),$(UNIT))
endif
ifeq ($(MONITOR),0)
LIB_CFLAGS += -DSHP_NO_MONITOR
UNIT := $(filter-out $(SWITCH_UNITS_MONITOR),$(UNIT))
endif

# The fragments below define rules; the default goal stays what it was (or
# is left to the Makefile's next rule if none was set yet).
custom_goal := $(.DEFAULT_GOAL)
include tools/amalgamation.mk
include tests/custom/switches.mk
.DEFAULT_GOAL := $(custom_goal)
