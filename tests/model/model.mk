# tests/model/model.mk - `make model`: the Promela model of the pool's
# park / claim / flush (shp__tcache_flush) / wait / handoff / release protocol and of the
# reaper's sweep against shp_pool_evict (tests/model/pool.pml), checked
# exhaustively by spin.  Included by the main Makefile; part of make check.
#
# Each line is one -D variant of the one model and the verdict it must get:
# the fixed protocol must hold, each broken variant must be caught.
#   waiters       3 threads x 2 connections: I1, no connection on no list,
#                 no deadlock, and the LTL claim no_starvation
#   evict         2 threads, the reaper's sweep and evict: I1, no connection
#                 on no list, no invalid end state
#   bug1-unfixed  the reaper ignores shp__put_idle's refusal
#   no-recheck    release_idle without its nwaiters re-load (release_unpark)
#   no-membarrier the waiter's recheck without shp__fence_heavy
#   unpark-plain  release_unpark takes its connection back without a CAS

MODEL_DIR := tests/model
MODEL_OUT := $(B)/model
MODEL_PML := $(MODEL_DIR)/pool.pml
MODEL_RUN := CC="$(CC)" sh $(MODEL_DIR)/verify.sh

CHECK_DEB_PKGS += spin
CHECK_EXTRA += model

.PHONY: model
model: $(MODEL_PML) $(MODEL_DIR)/verify.sh | $(B)/.deps-check
	@command -v spin >/dev/null || $(MAKE) --no-print-directory deps
	@fail=0; \
	$(MODEL_RUN) waiters       holds        live   $(MODEL_OUT)/waiters       $(MODEL_PML) || fail=1; \
	$(MODEL_RUN) evict         holds        safety $(MODEL_OUT)/evict         $(MODEL_PML) -DMODEL_EVICT || fail=1; \
	$(MODEL_RUN) bug1-unfixed  lost_conn    safety $(MODEL_OUT)/bug1-unfixed  $(MODEL_PML) -DMODEL_EVICT -DBUG1_UNFIXED || fail=1; \
	$(MODEL_RUN) no-recheck    starvation   live   $(MODEL_OUT)/no-recheck    $(MODEL_PML) -DNO_PARK_RECHECK || fail=1; \
	$(MODEL_RUN) no-membarrier starvation   live   $(MODEL_OUT)/no-membarrier $(MODEL_PML) -DNO_MEMBARRIER || fail=1; \
	$(MODEL_RUN) unpark-plain  double_owner live   $(MODEL_OUT)/unpark-plain  $(MODEL_PML) -DUNPARK_PLAIN || fail=1; \
	if [ $$fail = 0 ]; then echo "model: PASS - the protocol holds, every broken variant is caught"; \
	else echo "model: FAIL"; exit 1; fi

# Larger configurations, not part of make check (several minutes): the
# waiter model with three threads of two rounds; the evict model with the
# no_starvation claim; the evict model with the reaper's idle-timeout takes
# (REAP_FRESH), the pass evict kicks (REAP_KICKED) and broken releases.
.PHONY: model-big
model-big: $(MODEL_PML) $(MODEL_DIR)/verify.sh | $(B)/.deps-check
	@command -v spin >/dev/null || $(MAKE) --no-print-directory deps
	@fail=0; \
	$(MODEL_RUN) waiters-222   holds        live   $(MODEL_OUT)/waiters-222   $(MODEL_PML) -DROUNDS2=2 || fail=1; \
	$(MODEL_RUN) evict-live    holds        live   $(MODEL_OUT)/evict-live    $(MODEL_PML) -DMODEL_EVICT -DLIVENESS || fail=1; \
	$(MODEL_RUN) evict-full    holds        safety $(MODEL_OUT)/evict-full    $(MODEL_PML) -DMODEL_EVICT -DREAP_FRESH -DREAP_KICKED -DBROKEN_RELEASE || fail=1; \
	if [ $$fail = 0 ]; then echo "model-big: PASS"; else echo "model-big: FAIL"; exit 1; fi
