# tests/install/install.mk - `make install-test` (part of make check):
# tests/install/install_test.sh installs into $(B)/install-test/root
# (PREFIX=/opt/shardpool, LIBDIR=.../lib/<multiarch>), builds every README
# example with pkg-config alone, dynamic and static, runs the core one,
# checks SONAMEs, links and that libshardpool.so needs neither libpq nor
# hiredis, and requires make uninstall to remove every file.

.PHONY: install-test print-VERSION
install-test: all
	timeout 300 bash tests/install/install_test.sh $(B)/install-test \
	  $(MAKE) --no-print-directory B=$(B) WITH_TCP=$(WITH_TCP) WITH_PG=$(WITH_PG) WITH_REDIS=$(WITH_REDIS)

print-VERSION:
	@echo $(VERSION)

CHECK_EXTRA += install-test
