# tools/shptop.mk - shptop, the live monitor (tools/shptop.c), and its test.
# Included by the main Makefile; uses its CC, CSTD, WARN, INC, LIBS, B and the
# per-variant CFLAGS_/LDFLAGS_.
#
#   make build/release/tools/shptop   the tool (-O2), linked against the
#                                     release libshardpool.a
#   make build/asan/tools/shptop      ASan+UBSan build
#   make shptop-test                  tests/monitor/shptop_test.sh: shptop
#                                     against tests/monitor/monitor_demo.c, a
#                                     process with two monitored pools

SHPTOP_HDR := lib/monitor_shm.h include/shardpool/metrics.h

$(B)/release/tools/shptop: tools/shptop.c $(SHPTOP_HDR) $(B)/release/libshardpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g $(INC) tools/shptop.c $(B)/release/libshardpool.a $(LIBS) -lm -o $@

$(B)/asan/tools/shptop: tools/shptop.c $(SHPTOP_HDR) $(B)/asan/libshardpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_asan) $(INC) tools/shptop.c $(B)/asan/libshardpool.a $(LIBS) -lm \
	  $(LDFLAGS_asan) -o $@

# The demo programs are tests, built like the unit tests but without cmocka.
$(B)/%/monitor/monitor_real: tests/monitor/monitor_real.c tests/support/fakeconn.h \
    $(B)/%/support/fakeconn.o $(B)/%/libshardpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$*) $(INC) -I tests/support $< $(B)/$*/support/fakeconn.o \
	  $(B)/$*/libshardpool.a $(LIBS) -lm $(LDFLAGS_$*) -o $@

$(B)/%/monitor/monitor_demo: tests/monitor/monitor_demo.c tests/support/fakeconn.h lib/monitor.h \
    $(B)/%/support/fakeconn.o $(B)/%/libshardpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS_$*) $(INC) -I tests/support $< $(B)/$*/support/fakeconn.o \
	  $(B)/$*/libshardpool.a $(LIBS) -lm $(LDFLAGS_$*) -o $@

.PHONY: shptop-test
shptop-test: $(B)/release/tools/shptop $(B)/release/monitor/monitor_demo $(B)/release/monitor/monitor_real
	timeout 120 bash tests/monitor/shptop_test.sh $(B)/release/tools/shptop \
	  $(B)/release/monitor/monitor_demo
	timeout 120 bash tests/monitor/shptop_real_test.sh $(B)/release/tools/shptop \
	  $(B)/release/monitor/monitor_real
