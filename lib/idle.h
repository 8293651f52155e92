/*
 * idle.h - every move of a connection nobody holds (internal; idle.c):
 * capacity reservation, the shards (put, steal), the FIFO waiter queue and
 * its handoff, and flushing the thread caches back to the shards.
 *
 * idle.c never closes a connection: one it cannot place (stale after an
 * evict) it hands back to the caller, which closes it (conn.h).  It sits
 * below conn.c, which calls it when a create or close changes capacity.
 */
#ifndef SHP_IDLE_H
#define SHP_IDLE_H

#include <stdbool.h>

#include "pool_internal.h"

/* ---- capacity (I2) */

/* Reserves one connection slot and one connect slot.  Call inside a
 * read-side section or holding a reference.  Returns 0 (and the caller
 * holds a new pool reference, given back by shp__create or
 * shp__unreserve), -EAGAIN at max_size, -EBUSY when max_connecting
 * connects are in flight.  Thread-safe. */
int shp__reserve(shp_pool *p);
/* Gives back a reservation of shp__reserve that will not be used (the pool
 * stopped, or the acquire's deadline passed first), with its pool
 * reference.  Thread-safe. */
void shp__unreserve(shp_pool *p);
/* After cap.live went down: tells a draining destroy to look again, and
 * gives the capacity to a waiter.  Caller may touch p. */
void shp__live_dropped(shp_pool *p);

/* ---- waiters */

/* Hands resources to waiters, oldest first: an idle connection from any
 * shard, else a reserved slot for it to connect with.  One resource wakes
 * one waiter.  Safe to call from any thread that may touch p. */
void shp__wake_waiters(shp_pool *p);
/* Queues w (word WAITING), at the tail, or (in_order) before the first
 * waiter whose `since` is later than w's.  Returns false, queueing nothing,
 * if the queue is closed (shutdown).  The caller then runs
 * shp__wake_waiters, to claim what was freed while it was not counted. */
bool shp__waiter_enqueue(shp_pool *p, struct shp__waiter *w, bool in_order);
/* Unlinks w if it is still queued (no answer yet) and returns true; false
 * if it was answered meanwhile (read its word). */
bool shp__waiter_cancel(shp_pool *p, struct shp__waiter *w);
/* Closes the queue and answers every waiter SHP__W_SHUTDOWN (shutdown). */
void shp__waiters_close(shp_pool *p);

/* ---- shards */

/* Pops from the home shard, then from the others in order.  Call inside a
 * read-side section.  Returns an owned connection (state IDLE) or NULL. */
shp_conn *shp__steal(shp_pool *p, unsigned home);
/* Releases owned connection c (state IDLE, not stale) to the oldest waiter
 * (see idle.c); false, having done nothing, if none is queued.  Inside a
 * read-side section. */
SHP__COLD bool shp__handoff(shp_pool *p, shp_conn *c, struct shp__shard *sh);
/* Pushes c (state IDLE) on shard sh (NULL: the calling CPU's), or hands it
 * to a waiter.  Inside a read-side section.  Returns false and does nothing
 * if c is stale (shp_pool_evict): the caller closes it. */
bool shp__put_idle(shp_pool *p, shp_conn *c, struct shp__shard *sh);

/* Gives owned connection c, already in state IDLE and not stale, to the
 * oldest waiter if there is one (see shp__handoff), else pushes it on
 * shard sh.  Call inside a read-side section. */
static inline void shp__put_idle_to(shp_pool *p, shp_conn *c, struct shp__shard *sh)
{
    if (SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, memory_order_relaxed)) &&
        shp__handoff(p, c, sh))
        return;
    shp__stack_push(&sh->free, &c->link);
    /* A waiter that queued after the check above must see this push, or we
     * must see it: its nwaiters increment and our push are both sequentially
     * consistent read-modify-writes, and the fence orders the load after. */
    shp__stack_fence_after_push();
    if (SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, memory_order_seq_cst)))
        shp__wake_waiters(p);
}

/* ---- thread caches (tcache.h) */

/* Which parked connections shp__tcache_flush takes: want(p, c, arg). */
typedef bool (*shp__tcache_pred)(shp_pool *p, shp_conn *c, void *arg);
/* Moves CACHED connections back to the shards (or to waiters): those for
 * which want(p, c, arg) is true (want NULL: every one).  Outside read-side
 * sections; the caller may touch p.  Returns the stale ones it took (evict;
 * a list through rnext, owned, state IDLE): the caller closes them
 * (shp__close_list, SHP__CLOSE_EVICTED).  Acquirers pass
 * shp__tcache_fresh, which leaves stale connections to evict and the
 * reaper, so that an acquire rarely runs a close: only when an evict lands
 * between that test and the push (the push refuses it; tests/model reaches
 * this). */
shp_conn *shp__tcache_flush(shp_pool *p, shp__tcache_pred want, void *arg);
bool shp__tcache_fresh(shp_pool *p, shp_conn *c, void *arg);

#endif
