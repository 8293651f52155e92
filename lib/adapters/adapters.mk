# lib/adapters/adapters.mk - the adapters (lib/adapters/*.c).  Included by
# the main Makefile, which builds:
#   CORE_ADAPTER_SRC   into libshardpool itself: the TCP adapter (no
#                      dependency beyond libc) and net.c, the socket helpers
#                      every adapter uses;
#   ADAPTER_LIBNAMES   one library each, libshardpool-<name>.{a,so} from
#                      the sources listed in ADAPTER_SRC_<name> (one or
#                      more lib/adapters/*.c), the shared one linked against
#                      libshardpool.so and ADAPTER_LIBS_<name>, with its
#                      lib/pkgconfig/shardpool-<name>.pc.in;
# installs $(ADAPTER_HDR), adds $(ADAPTER_UNIT) (paths under tests/, without
# .c) to the unit tests and $(ADAPTER_LIBS) to what programs using every
# part link.  Each adapter is on by default; `make WITH_TCP=0` leaves it out
# of the libraries and the tests.  An adapter's Debian packages go to
# BUILD_DEB_PKGS (its -dev package), CHECK_DEB_PKGS (the server its tests
# start) and BENCH_DEB_PKGS.

CORE_ADAPTER_SRC ?=
ADAPTER_HDR      ?=
ADAPTER_UNIT     ?=
ADAPTER_LIBNAMES ?=
ADAPTER_LIBS     ?=
# Every adapter library there is, built or not (make uninstall removes all).
ADAPTER_ALL_LIBNAMES := pg redis

# TCP and unix-domain stream sockets: no dependency beyond libc.
WITH_TCP ?= 1
ifeq ($(WITH_TCP),1)
CORE_ADAPTER_SRC += lib/adapters/tcp.c
ADAPTER_HDR      += include/shardpool/adapters/tcp.h
ADAPTER_UNIT     += adapters/tcp_test
endif

# Adapters with their own fragment and library.
-include lib/adapters/pg.mk
-include lib/adapters/redis.mk

# Shared socket helpers (lib/adapters/net.c) for whichever adapters are
# built, in libshardpool (libshardpool-pg.so and -redis.so call them there:
# lib/util.h, SHP_ADAPTER_API).  The adapters' internal headers
# (lib/adapters/*.h) are not in $(ADAPTER_HDR), which is installed: each
# adapter object, in every variant and the fuzz build, depends on them here
# instead.
ifneq ($(strip $(CORE_ADAPTER_SRC)$(ADAPTER_LIBNAMES)),)
CORE_ADAPTER_SRC += lib/adapters/net.c
ADAPTER_INTERNAL_HDR := $(wildcard lib/adapters/*.h)
$(foreach v,release asan tsan broken fuzz,$(foreach s,$(CORE_ADAPTER_SRC) \
  $(foreach a,$(ADAPTER_LIBNAMES),$(ADAPTER_SRC_$(a))),\
  $(eval $(B)/$(v)/$(s:lib/%.c=lib/%.o): $(ADAPTER_INTERNAL_HDR))))
endif
