/*
 * shardpool.h - umbrella header: a lock-free, per-CPU sharded connection pool.
 */
#ifndef SHARDPOOL_H
#define SHARDPOOL_H

#define SHP_VERSION_MAJOR 0
#define SHP_VERSION_MINOR 1
#define SHP_VERSION_PATCH 0

#include <shardpool/common.h>
#include <shardpool/error.h>
#include <shardpool/log.h>
#include <shardpool/pool.h>
#include <shardpool/metrics.h>

#endif
