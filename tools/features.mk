# tools/features.mk - the feature switches beyond the adapters' WITH_TCP/
# WITH_PG/WITH_REDIS (lib/adapters/*.mk); README "Custom builds".  Included
# by the main Makefile right after the adapters, BEFORE its per-variant
# rules are instantiated: they bake LIB_CFLAGS in, and this adds to it.
# Defines no rule.  Each switch defaults to on; 0 leaves the part out of the
# library and its unit tests out of $(UNIT).  Objects do not record the
# flags they were built with: use a build directory of its own, e.g.
# `make B=build/nomon MONITOR=0`.
#
#   METRICS=0    -DSHP_NO_METRICS: no fast-path latency recording
#                (include/shardpool/metrics.h says what snapshots hold then)
#   MONITOR=0    -DSHP_NO_MONITOR: no live monitor (lib/monitor.h);
#                shp_monitor_enable answers -ENOTSUP

METRICS ?= 1
MONITOR ?= 1

# The unit tests about a part that is switched off (paths under tests/,
# without .c).  metrics_test asserts recorded histograms and the derived
# fast_hits/releases (4 of its 15 tests fail with METRICS=0); monitor_test
# reads the segment and calls shp__monitor_publish, which MONITOR=0 removes.
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
