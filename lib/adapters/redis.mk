# lib/adapters/redis.mk - the Redis adapter (hiredis): libshardpool-redis,
# included by lib/adapters/adapters.mk.  `make WITH_REDIS=0` leaves it out
# of the libraries and the tests.  Building it needs libhiredis-dev; its
# integration test (and bench-redis) start a redis-server of their own on
# a free loopback port (tests/adapters/redisserver.c, compiled into
# redis_test.c as one translation unit).

WITH_REDIS ?= 1
ifeq ($(WITH_REDIS),1)
ADAPTER_LIBNAMES   += redis
ADAPTER_SRC_redis  := lib/adapters/redis.c lib/adapters/redis_io.c lib/adapters/redis_cmd.c
ADAPTER_HDR        += include/shardpool/adapters/redis.h
ADAPTER_UNIT       += adapters/redis_test
ADAPTER_LIBS_redis := -lhiredis
ADAPTER_LIBS       += $(ADAPTER_LIBS_redis)
BUILD_DEB_PKGS     += libhiredis-dev
CHECK_DEB_PKGS     += redis-server
BENCH_DEB_PKGS     += redis-server
endif
