# lib/adapters/pg.mk - the PostgreSQL adapter (libpq), included by
# lib/adapters/adapters.mk.  `make WITH_PG=0` leaves it out.  Its integration
# test starts a PostgreSQL 15 server of its own (tests/adapters/pgserver.c),
# so make deps installs the server as well as libpq.

WITH_PG ?= 1
ifeq ($(WITH_PG),1)
ADAPTER_SRC      += lib/adapters/pg.c
ADAPTER_HDR      += include/shardpool/adapters/pg.h
ADAPTER_UNIT     += adapters/pg_test
ADAPTER_LIBS     += -lpq
ADAPTER_DEB_PKGS += libpq-dev postgresql-15
INC              += -I/usr/include/postgresql
endif
