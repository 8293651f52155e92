/*
 * tools/shpbench/pools.h - the pools shpbench compares, behind one interface.
 *
 *   shardpool         shp_pool with --shards (0: one shard per CPU)
 *   shardpool-1shard  shp_pool with shards = 1: the same code, sharding off
 *   mutex             bench/baselines.h's bl_mutexpool (one mutex + condvar
 *                     around a LIFO of idle slots)
 *   gstack            bench/baselines.h's bl_gstack (one global ck_stack,
 *                     lock-free, not sharded; spins and yields when empty)
 *
 * The two baselines hand out max preallocated slots.  Here each slot carries
 * a real backend connection, opened lazily the first time the slot is
 * borrowed without one (as shardpool creates a connection only when no idle
 * one is left and it is under max), prefilled to min at open, and reopened
 * after a failed check or a broken release.  Connect, check and close run
 * outside either baseline's lock, like shardpool's callbacks.  Validation on
 * acquire follows shardpool's rule and clock: a connection idle for more
 * than validate_idle_ns, measured in ticks of shardpool's default reaper
 * interval (100 ms), is checked before it is handed out.  The baselines
 * have no acquire timeout (they wait for as long as it takes), no reaper and
 * no lifetime limits; over a benchmark run of seconds shardpool's reaper has
 * nothing to retire either, with the default idle and lifetime limits.
 *
 * With a redis:// or postgresql:// backend, the adapter's reset hook runs
 * on every release in all four pools (shardpool as its shp_ops reset, the
 * baselines in their release, outside their lock), so they pay the same
 * per-release round trip; a failed reset closes the connection.
 *
 * Thread-safety: open and close from one thread; acquire and release from
 * any number of threads in between.  Uses backend.h and util.h and nothing
 * else of shpbench.
 */
#ifndef SHPBENCH_POOLS_H
#define SHPBENCH_POOLS_H

#include <stdbool.h>
#include <stdint.h>

#include <shardpool/pool.h>

#include "shpbench/backend.h"

typedef enum shpb_pool_kind {
    SHPB_POOL_SHARDPOOL,
    SHPB_POOL_SHARDPOOL_1SHARD,
    SHPB_POOL_MUTEX,
    SHPB_POOL_GSTACK,
    SHPB_POOL_KINDS
} shpb_pool_kind;

/* The name used on the command line and in the output. */
const char *shpb_pool_kind_name(shpb_pool_kind k);

/* Returns 0 and sets *k for a known name, else -EINVAL. */
int shpb_pool_kind_parse(const char *name, shpb_pool_kind *k);

typedef struct shpb_pool_cfg {
    unsigned min_size;
    unsigned max_size;
    unsigned shards;            /* shardpool only; 0 = per CPU */
    int64_t acquire_timeout_ns; /* shardpool only */
    int64_t validate_idle_ns;   /* < 0: never validate on acquire */
} shpb_pool_cfg;

typedef struct shpb_pool shpb_pool;

/* What shpb_pool_acquire hands out: a connection handle made by
 * shpb_backend_connect, and the pool's own token for release. */
typedef struct shpb_lease {
    void *handle;
    void *token;
} shpb_lease;

/* Opens a pool of kind k over backend b.  Returns 0 and sets *out, or a
 * negative errno value. */
int shpb_pool_open(shpb_pool **out, shpb_pool_kind k, const shpb_pool_cfg *cfg,
                   shpb_backend *b);

/* Borrows a connection.  Returns 0 and fills *lease; -ETIMEDOUT (shardpool
 * only); or the connect callback's error when a connection had to be made
 * and that failed.  Thread-safe. */
int shpb_pool_acquire(shpb_pool *p, shpb_lease *lease);

/* Gives the lease back; broken closes its connection instead of keeping it.
 * Thread-safe. */
void shpb_pool_release(shpb_pool *p, shpb_lease *lease, bool broken);

/* shardpool's counters; returns -ENOTSUP for the baselines. */
int shpb_pool_stats(shpb_pool *p, shp_stats *out);

/* Closes every connection and frees p.  Every lease must have been
 * released.  Returns 0 or a negative errno value (shp_pool_destroy's). */
int shpb_pool_close(shpb_pool *p);

#endif
