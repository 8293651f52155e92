# lib/adapters/redis.mk - the Redis adapter (hiredis), included by
# lib/adapters/adapters.mk.  `make WITH_REDIS=0` leaves it out of the
# library and the tests.  Its integration test starts a redis-server of its
# own on a free loopback port (tests/adapters/redisserver.c, compiled
# into redis_test.c as one translation unit).

WITH_REDIS ?= 1
ifeq ($(WITH_REDIS),1)
ADAPTER_SRC      += lib/adapters/redis.c
ADAPTER_HDR      += include/shardpool/adapters/redis.h
ADAPTER_UNIT     += adapters/redis_test
ADAPTER_LIBS     += -lhiredis
ADAPTER_DEB_PKGS += libhiredis-dev redis-server
endif
