/*
 * tcache.h - the thread cache (internal; tcache.c).
 *
 * Each thread keeps, per pool, the connection it released last: one slot
 * per pool in a small per-thread table, shp__tcache.  Two verbs:
 *   park  - a release stores its connection in its slot: state IN_USE →
 *           CACHED by a plain store (the releaser owns it), slot ← c.  It
 *           parks only when the pool has the thread cache on, its shard has
 *           other idle connections and nobody waits (release.c).
 *   claim - CACHED → IN_USE (or → IDLE, onto a shard) by one CAS.  The
 *           slot's own thread claims it on its next acquire, touching no
 *           shared cache line; anyone else may claim a CACHED connection
 *           too, so a slot is only a hint: a slot whose connection was
 *           claimed elsewhere just misses.
 * A CACHED connection belongs to nobody.  shp__tcache_flush (idle.c) moves
 * parked connections back to the shards: for an acquire that found the
 * shards empty, for a waiter at its recheck 1 ms after it queued (after the
 * heavy fence, below; on queueing it only steals from the shards), for the
 * reaper (those unused for a whole interval), for evict and for shutdown.
 *
 * The fence pair.  A release that parks (store CACHED, then load nwaiters)
 * and a waiter (nwaiters++, then, at its recheck, scan for CACHED
 * connections) are ordered by an asymmetric fence: either the releaser's
 * re-load of nwaiters sees the waiter and it takes its connection back to
 * hand it over (release_unpark), or the waiter's scan sees the parked
 * connection.  Both halves are needed: a park that lands after the waiter's
 * one scan is caught only by the releaser's re-load, and a park store still
 * in its CPU's store buffer only by the membarrier (tests/model: variants
 * no-recheck, no-membarrier).  The releaser's side (shp__fence_light) is a
 * compiler barrier when the heavy side (shp__fence_heavy) can be
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full barrier
 * on every CPU running this process; without membarrier both sides are
 * full fences.  The TSan build uses sequentially consistent accesses
 * instead (TSan does not model fences), same algorithm.
 */
#ifndef SHP_TCACHE_H
#define SHP_TCACHE_H

#include <stdatomic.h>
#include <stdint.h>

#include "pool_internal.h"

/* Slots in each thread's cache: a thread parks one connection per pool,
 * for up to this many pools (ids modulo it); beyond, a release in one pool
 * may displace another's parked connection, which stays CACHED for
 * shp__tcache_flush to find. */
#define SHP__TCACHE_WAYS 8

/* A pool's slot is shp__tcache[id % SHP__TCACHE_WAYS]; pools whose ids
 * collide share it.  `conn` is only a hint: it is claimed by CAS, and its
 * memory stays a connection of pool `pool` while that pool lives
 * (type-stable, see conn.c); a slot is used only by a call on the pool
 * with that id, which is alive. */
struct shp__tcache_slot {
    uint64_t pool;
    shp_conn *conn;
};
extern _Thread_local struct shp__tcache_slot shp__tcache[SHP__TCACHE_WAYS];

/* The shard this thread last popped from or pushed to (any pool; clamped
 * to the pool's shard count): where a release looks to see whether its
 * shard has other idle connections before it parks.  A hint, possibly
 * stale after the thread moved CPUs: the release's fast path then makes no
 * CPU lookup. */
extern _Thread_local unsigned shp__home_hint;

static inline struct shp__shard *shp__hint_shard(const shp_pool *p)
{
    unsigned h = shp__home_hint;
    return &p->shards[h < p->nshards ? h : 0];
}

static inline struct shp__tcache_slot *shp__tcache_slot(const shp_pool *p)
{
    return &shp__tcache[p->id % SHP__TCACHE_WAYS];
}

/* Forgets the calling thread's thread cache (fork.c: in a child, the
 * forking thread's parked connections are the parent's). */
void shp__tcache_forget(void);

#if defined(SHP_TSAN)
#define SHP__PARK_ORDER      memory_order_seq_cst
#define SHP__PARK_LOAD_ORDER memory_order_seq_cst
#else
#define SHP__PARK_ORDER      memory_order_release
#define SHP__PARK_LOAD_ORDER memory_order_relaxed
#endif

/* Claims the calling thread's parked connection of p: returns it IN_USE
 * (use not yet counted), or NULL. */
static inline shp_conn *shp__tcache_claim(shp_pool *p)
{
    struct shp__tcache_slot *e = shp__tcache_slot(p);
    shp_conn *c = e->conn;
    if (!c || e->pool != p->id)
        return NULL;
    e->conn = NULL;
    uint32_t s = SHP__CACHED;
    if (SHP_LIKELY(atomic_compare_exchange_strong_explicit(&c->state, &s, SHP__IN_USE,
                                                           memory_order_acquire,
                                                           memory_order_relaxed)))
        return c;
    return NULL; /* claimed by someone else since */
}

/* Parks borrowed c, which the caller owns, in slot e of p.  The caller then
 * runs the light fence and re-loads nwaiters (release.c). */
static inline void shp__tcache_park(struct shp__tcache_slot *e, shp_pool *p, shp_conn *c)
{
    atomic_store_explicit(&c->state, SHP__CACHED, SHP__PARK_ORDER);
    e->pool = p->id;
    e->conn = c;
}

/* 1: membarrier private expedited is registered; -1: unavailable (full
 * fences on both sides); 0: not probed yet.  Probed by every
 * shp_pool_create (shp__membarrier_init) before the pool can be used, so
 * the fast path reads a settled value. */
extern int shp__membarrier_ok;
void shp__membarrier_init(void);
/* The waiter's side of the fence pair. */
void shp__fence_heavy(void);

/* The releaser's side of the fence pair. */
static inline void shp__fence_light(void)
{
#if !defined(SHP_TSAN)
    if (SHP_LIKELY(__atomic_load_n(&shp__membarrier_ok, __ATOMIC_RELAXED) > 0))
        __asm__ __volatile__("" ::: "memory");
    else
        atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* shp__fence_light where membarrier is known to be registered. */
static inline void shp__fence_light_membarrier(void)
{
#if !defined(SHP_TSAN)
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
