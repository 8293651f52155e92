# tools/amalgamation.mk - `make amalgamation` and `make amalgamation-test`
# (included by tools/custom.mk; see README "Custom builds").
#
#   make amalgamation   writes $(B)/amalgamation/: shardpool.c + shardpool.h
#                       (the core: every library source but the separately
#                       shipped adapters, i.e. core + TCP), and for each adapter
#                       that needs a client library (pg: libpq, redis:
#                       hiredis) shardpool-<name>.c (its ADAPTER_SRC_<name>
#                       as one translation unit) + shardpool-<name>.h, which
#                       include shardpool.h.  The file list comes from the
#                       Makefile's variables, so WITH_TCP=0 etc. apply.
#   make amalgamation-test
#       1. shardpool.c compiles with -Wall -Wextra -Werror and no -I: plain
#          (`cc -O2 -c`), -std=c11 -fPIC without -D_GNU_SOURCE, the library's
#          own flags, and with -DSHP_NO_METRICS -DSHP_NO_MONITOR; it reads no
#          header of this tree, libpq or hiredis (checked on cc -M); the
#          separate adapters compile beside it with their client's cflags;
#       2. the amalgamation object defines exactly the global symbols of the
#          same sources compiled one by one (nm -g --defined-only), all shp_*;
#          so does each separate adapter's shardpool-<name>.o;
#       3. tests/custom/amalg_fixture, whose sources clash in every way the
#          script handles, answers the same built as separate objects,
#          amalgamated, and amalgamated with three of its sources as a
#          separate unit (-S, as the adapters);
#       4. the unit tests that use only the public API and tests/support build
#          against shardpool.h + the amalgamation object alone and pass
#          (tests/custom/amalg_tests.sh picks them and says why it leaves the
#          others out).

AMALG_DIR := $(B)/amalgamation
AMALG_T   := $(B)/amalgamation-test

# Adapters shipped as their own single file (they need a client library's
# headers, which shardpool.h must not); any other adapter is in the core.
AMALG_SEP     ?= $(or $(ADAPTER_LIBNAMES),$(if $(filter 1,$(WITH_PG)),pg) $(if $(filter 1,$(WITH_REDIS)),redis))
# Each one's sources (ADAPTER_SRC_<name>; lib/adapters/<name>.c if unset).
amalg_sep_src  = $(or $(ADAPTER_SRC_$(1)),lib/adapters/$(1).c)
AMALG_SEP_SRC := $(foreach a,$(AMALG_SEP),$(call amalg_sep_src,$(a)))
AMALG_SEP_HDR := $(foreach a,$(AMALG_SEP),include/shardpool/adapters/$(a).h)
AMALG_SEP_CFLAGS_pg    ?= $$(pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
AMALG_SEP_CFLAGS_redis ?=
# Core sources in link order: the library's, and the built-in adapters
# (whether or not the Makefile lists them in LIB_SRC), minus the separate ones.
AMALG_CORE_SRC ?= $(filter-out $(AMALG_SEP_SRC),$(LIB_SRC) $(filter-out $(LIB_SRC),$(ADAPTER_SRC)))
# Core public headers, the umbrella first.
AMALG_PUB_HDR  ?= include/shardpool.h $(sort $(wildcard include/shardpool/*.h)) \
                  $(filter-out $(AMALG_SEP_HDR),$(ADAPTER_HDR))
AMALG_LIBS     ?= $(or $(CORE_LIBS),$(filter-out $(ADAPTER_LIBS),$(LIBS)))
# A make list as amalgamate.sh's -S wants it: "a.c b.c" -> "a.c,b.c".
amalg_empty :=
amalg_space := $(amalg_empty) $(amalg_empty)
amalg_comma := ,
amalg_comma_list = $(subst $(amalg_space),$(amalg_comma),$(strip $(1)))

.PHONY: amalgamation amalgamation-test

# Always regenerated (a second): its input is a list of make variables too.
amalgamation:
	@mkdir -p $(AMALG_DIR)
	sh tools/amalgamate.sh -o $(AMALG_DIR) -P include -I lib $(addprefix -H ,$(AMALG_PUB_HDR)) \
	  $(foreach a,$(AMALG_SEP),-S $(a):$(call amalg_comma_list,$(call amalg_sep_src,$(a))):include/shardpool/adapters/$(a).h) \
	  $(AMALG_CORE_SRC)
	@echo "amalgamation: $(AMALG_DIR)/shardpool.c ($$(wc -l < $(AMALG_DIR)/shardpool.c) lines), shardpool.h$(foreach a,$(AMALG_SEP),, shardpool-$(a).c/.h)"

# The same sources compiled one by one, for the symbol comparison.
$(AMALG_T)/ref/%.o: %.c $(LIB_HDR) $(ADAPTER_INTERNAL_HDR) | $(B)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_release) $(LIB_CFLAGS) $(INC) -c $< -o $@

AMALG_FLAGS = $(CSTD) $(WARN) $(CFLAGS_release) $(LIB_CFLAGS)

# $(1): a separate adapter.  Its shardpool-$(1).o must define the global
# symbols of its sources compiled one by one.  A shell snippet (for a recipe).
amalg_sep_syms = nm -g --defined-only $(AMALG_T)/obj/shardpool-$(1).o | awk 'NF == 3 {print $$3}' | sort -u \
	  > $(AMALG_T)/syms.$(1).amalg; \
	nm -g --defined-only $(patsubst %.c,$(AMALG_T)/ref/%.o,$(call amalg_sep_src,$(1))) | awk 'NF == 3 {print $$3}' | \
	  sort -u > $(AMALG_T)/syms.$(1).lib; \
	if ! cmp -s $(AMALG_T)/syms.$(1).amalg $(AMALG_T)/syms.$(1).lib; then \
	  echo "amalgamation-test: FAIL - shardpool-$(1).o: global symbols differ (< amalgamation, > objects):"; \
	  diff $(AMALG_T)/syms.$(1).amalg $(AMALG_T)/syms.$(1).lib; exit 1; fi; \
	echo "amalgamation-test: shardpool-$(1).o: the same $$(wc -l < $(AMALG_T)/syms.$(1).amalg) global symbols" \
	  "as the objects of $(call amalg_sep_src,$(1))"

# The clash fixture: a tiny library whose sources clash in every way the
# script handles (tests/custom/amalg_fixture/README).
AMALG_FX        := tests/custom/amalg_fixture
AMALG_FX_T      := $(AMALG_T)/fixture
AMALG_FX_SRC    := $(sort $(wildcard $(AMALG_FX)/lib/*.c))
# ... and again with all but a.c as a separate unit (-S, as the adapters).
AMALG_FX_UNIT   := $(filter-out %/a.c,$(AMALG_FX_SRC))
AMALG_FX_CFLAGS  = -std=c11 $(WARN) -O2

amalgamation-test: amalgamation $(patsubst %.c,$(AMALG_T)/ref/%.o,$(AMALG_CORE_SRC) $(AMALG_SEP_SRC)) | $(B)/.deps-ok
	@rm -rf $(AMALG_T)/obj $(AMALG_T)/inc $(AMALG_T)/tests && mkdir -p $(AMALG_T)/obj $(AMALG_T)/inc/shardpool $(AMALG_T)/tests
	@echo "== amalgamation-test: compile shardpool.c (no -I, -Werror)"
	cd $(AMALG_DIR) && $(CC) -O2 -Wall -Wextra -Werror -c shardpool.c -o $(CURDIR)/$(AMALG_T)/obj/plain.o
	cd $(AMALG_DIR) && $(CC) -std=c11 -O2 -Wall -Wextra -Werror -fPIC -c shardpool.c -o $(CURDIR)/$(AMALG_T)/obj/c11.o
	cd $(AMALG_DIR) && $(CC) -O2 -Wall -Wextra -Werror -DSHP_NO_METRICS -DSHP_NO_MONITOR -c shardpool.c \
	  -o $(CURDIR)/$(AMALG_T)/obj/off.o
	cd $(AMALG_DIR) && $(CC) $(AMALG_FLAGS) -c shardpool.c -o $(CURDIR)/$(AMALG_T)/obj/shardpool.o
	$(foreach a,$(AMALG_SEP),(cd $(AMALG_DIR) && $(CC) $(AMALG_FLAGS) $(AMALG_SEP_CFLAGS_$(a)) -c shardpool-$(a).c \
	  -o $(CURDIR)/$(AMALG_T)/obj/shardpool-$(a).o) &&) true
	@cd $(AMALG_DIR) && $(CC) -M shardpool.c > $(CURDIR)/$(AMALG_T)/deps.txt && \
	  if tr ' \\' '\n\n' < $(CURDIR)/$(AMALG_T)/deps.txt | grep -E '^$(CURDIR)/(include|lib)/|postgresql|hiredis|libpq'; then \
	    echo "amalgamation-test: FAIL - shardpool.c reads the headers above"; exit 1; fi
	@if grep -n '^[ \t]*#[ \t]*include[ \t]*"' $(AMALG_DIR)/shardpool.c | grep -v '"shardpool.h"'; then \
	  echo "amalgamation-test: FAIL - project includes left in shardpool.c"; exit 1; fi
	@echo "== amalgamation-test: exported symbols"
	@nm -g --defined-only $(AMALG_T)/obj/shardpool.o | awk 'NF == 3 {print $$3}' | sort -u > $(AMALG_T)/syms.amalg
	@nm -g --defined-only $(patsubst %.c,$(AMALG_T)/ref/%.o,$(AMALG_CORE_SRC)) | awk 'NF == 3 {print $$3}' | sort -u \
	  > $(AMALG_T)/syms.lib
	@if ! cmp -s $(AMALG_T)/syms.amalg $(AMALG_T)/syms.lib; then \
	  echo "amalgamation-test: FAIL - global symbols differ (< amalgamation, > library objects):"; \
	  diff $(AMALG_T)/syms.amalg $(AMALG_T)/syms.lib; exit 1; fi
	@if grep -v '^shp_' $(AMALG_T)/syms.amalg; then \
	  echo "amalgamation-test: FAIL - global symbols outside shp_ (above)"; exit 1; fi
	@echo "amalgamation-test: the same $$(wc -l < $(AMALG_T)/syms.amalg) global symbols as the library's core objects" \
	  "($$(grep -vc '^shp__' $(AMALG_T)/syms.amalg) public shp_, the rest internal shp__)"
	@set -e; $(foreach a,$(AMALG_SEP),$(call amalg_sep_syms,$(a));) true
	@echo "== amalgamation-test: the clash fixture (tests/custom/amalg_fixture) built three ways"
	@rm -rf $(AMALG_FX_T) && mkdir -p $(AMALG_FX_T)/sep $(AMALG_FX_T)/amalg $(AMALG_FX_T)/unit
	@set -e; for f in $(AMALG_FX_SRC); do \
	  $(CC) $(AMALG_FX_CFLAGS) -I $(AMALG_FX)/include -I $(AMALG_FX)/lib -c $$f -o $(AMALG_FX_T)/sep/$$(basename $$f .c).o; done; \
	  $(CC) $(AMALG_FX_CFLAGS) -I $(AMALG_FX)/include $(AMALG_FX)/main.c $(AMALG_FX_T)/sep/*.o -o $(AMALG_FX_T)/sep/main
	sh tools/amalgamate.sh -o $(AMALG_FX_T)/amalg -P $(AMALG_FX)/include -I $(AMALG_FX)/lib \
	  -H $(AMALG_FX)/include/shardpool.h -H $(AMALG_FX)/include/shardpool/fx.h $(AMALG_FX_SRC)
	$(CC) $(AMALG_FX_CFLAGS) -I $(AMALG_FX_T)/amalg $(AMALG_FX)/main.c $(AMALG_FX_T)/amalg/shardpool.c -o $(AMALG_FX_T)/amalg/main
	sh tools/amalgamate.sh -o $(AMALG_FX_T)/unit -P $(AMALG_FX)/include -I $(AMALG_FX)/lib \
	  -H $(AMALG_FX)/include/shardpool.h -H $(AMALG_FX)/include/shardpool/fx.h \
	  -S fx:$(call amalg_comma_list,$(AMALG_FX_UNIT)):$(AMALG_FX)/include/shardpool/fx.h \
	  $(filter-out $(AMALG_FX_UNIT),$(AMALG_FX_SRC))
	$(CC) $(AMALG_FX_CFLAGS) -I $(AMALG_FX_T)/unit $(AMALG_FX)/main.c $(AMALG_FX_T)/unit/shardpool.c \
	  $(AMALG_FX_T)/unit/shardpool-fx.c -o $(AMALG_FX_T)/unit/main
	@a=$$($(AMALG_FX_T)/sep/main) && b=$$($(AMALG_FX_T)/amalg/main) && c=$$($(AMALG_FX_T)/unit/main) && \
	  if [ "$$a" != "$$b" ]; then echo "amalgamation-test: FAIL - the fixture answers '$$b' amalgamated, '$$a' as separate objects"; exit 1; fi; \
	  if [ "$$a" != "$$c" ]; then echo "amalgamation-test: FAIL - the fixture answers '$$c' with a separate unit, '$$a' as separate objects"; exit 1; fi; \
	  echo "amalgamation-test: the fixture answers the same all three ways ($$a)"
	@echo "== amalgamation-test: unit tests against shardpool.h + shardpool.o"
	@rm -f $(AMALG_T)/libshardpool-amalg.a && ar rcs $(AMALG_T)/libshardpool-amalg.a $(AMALG_T)/obj/shardpool.o
	@cp $(AMALG_DIR)/shardpool.h $(AMALG_T)/inc/shardpool.h
	@for h in $(patsubst include/%,%,$(filter-out include/shardpool.h,$(AMALG_PUB_HDR))); do \
	  mkdir -p $(AMALG_T)/inc/$$(dirname $$h) && echo '#include <shardpool.h>' > $(AMALG_T)/inc/$$h; done
	$(CC) $(CSTD) $(WARN) $(CFLAGS_release) -I $(AMALG_T)/inc -I tests/support -c tests/support/fakeconn.c \
	  -o $(AMALG_T)/obj/fakeconn.o
	@tests=$$(sh tests/custom/amalg_tests.sh tests "$(AMALG_T)/inc" lib $(UNIT)) || exit 1; \
	  set -e; for t in $$tests; do \
	  echo "$(CC) ... -I $(AMALG_T)/inc tests/$$t.c -> $(AMALG_T)/tests/$$t"; mkdir -p $(AMALG_T)/tests/$$(dirname $$t); \
	  $(CC) $(CSTD) $(WARN) $(CFLAGS_release) -I $(AMALG_T)/inc -I tests/support tests/$$t.c $(AMALG_T)/obj/fakeconn.o \
	    $(AMALG_T)/libshardpool-amalg.a -lcmocka $(AMALG_LIBS) -lm -o $(AMALG_T)/tests/$$t; done; \
	  for t in $$tests; do echo "== amalgamation $$t"; timeout 300 $(AMALG_T)/tests/$$t; done; \
	  echo "amalgamation-test: PASS ($$(echo $$tests | wc -w) unit tests against the amalgamation: '$$(echo $$tests)')"
