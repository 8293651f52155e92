# lib/adapters/pg.mk - the PostgreSQL adapter (libpq): libshardpool-pg,
# included by lib/adapters/adapters.mk.  `make WITH_PG=0` leaves it out.
# Building it needs libpq-dev; its integration test starts a PostgreSQL 15
# server of its own (tests/adapters/pgserver.c), so make check installs
# the server.

WITH_PG ?= 1
ifeq ($(WITH_PG),1)
ADAPTER_LIBNAMES += pg
ADAPTER_SRC_pg   := lib/adapters/pg.c
ADAPTER_HDR      += include/shardpool/adapters/pg.h
ADAPTER_UNIT     += adapters/pg_test
ADAPTER_LIBS_pg  := -lpq
ADAPTER_LIBS     += $(ADAPTER_LIBS_pg)
BUILD_DEB_PKGS   += libpq-dev
CHECK_DEB_PKGS   += postgresql-15
# libpq's headers (pkg-config --cflags libpq).
INC              += -I/usr/include/postgresql
endif
