# tests/install/install.mk - `make install-test` (part of make check):
# tests/install/install_test.sh installs into $(B)/install-test/root
# (PREFIX=/opt/shardpool, LIBDIR=.../lib/<multiarch>), builds every README
# example with pkg-config alone, dynamic and static, runs the core one,
# checks SONAMEs, links and that libshardpool.so needs neither libpq nor
# hiredis, and requires make uninstall to remove every file.

# The test runs make install / uninstall itself: through INSTALL_TEST_MAKE,
# not a literal $$(MAKE), so that `make -n check` does not run it, and
# without the parent's MAKEFLAGS (everything is built by then).
INSTALL_TEST_MAKE = $(MAKE)
.PHONY: install-test print-VERSION
install-test: all
	MAKEFLAGS= timeout 300 bash tests/install/install_test.sh $(B)/install-test \
	  $(INSTALL_TEST_MAKE) --no-print-directory B=$(B) WITH_TCP=$(WITH_TCP) WITH_PG=$(WITH_PG) WITH_REDIS=$(WITH_REDIS)

print-VERSION:
	@echo $(VERSION)

CHECK_EXTRA += install-test
