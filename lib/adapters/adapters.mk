# lib/adapters/adapters.mk - the optional adapters (lib/adapters/*.c).
# Included by the main Makefile, which adds $(ADAPTER_SRC) to the library
# sources, $(ADAPTER_HDR) to the headers objects depend on and install, and
# $(ADAPTER_UNIT) (paths under tests/, without .c) to the unit tests, built
# like tests/*_test.c.  Each adapter is on by default; `make WITH_TCP=0`
# leaves it out of the library and the tests.

ADAPTER_SRC  ?=
ADAPTER_HDR  ?=
ADAPTER_UNIT ?=

# TCP and unix-domain stream sockets: no dependency beyond libc.
WITH_TCP ?= 1
ifeq ($(WITH_TCP),1)
ADAPTER_SRC  += lib/adapters/tcp.c
ADAPTER_HDR  += include/shardpool/adapters/tcp.h
ADAPTER_UNIT += adapters/tcp_test
endif

# Adapters with their own fragment (each sets ADAPTER_SRC/HDR/UNIT, and
# ADAPTER_LIBS / ADAPTER_DEB_PKGS for what it links and installs).
-include lib/adapters/pg.mk
-include lib/adapters/redis.mk

# Shared socket helpers (lib/adapters/net.c) for whichever adapters are
# built.  The adapters' internal headers are not in $(ADAPTER_HDR), which
# is installed: each adapter object depends on them here instead.
ifneq ($(strip $(ADAPTER_SRC)),)
ADAPTER_SRC += lib/adapters/net.c
ADAPTER_INTERNAL_HDR := lib/adapters/common.h lib/adapters/net.h
$(foreach v,release asan tsan broken,$(foreach s,$(ADAPTER_SRC),\
  $(eval $(B)/$(v)/$(s:lib/%.c=lib/%.o): $(ADAPTER_INTERNAL_HDR))))
endif
