/*
 * ref.h - what keeps a pool's memory alive (internal; ref.c).
 *
 * Lifetime rule (I4, I6): shp_acquire and shp_release run inside RCU
 * read-side sections whenever they touch the pool or a connection they do
 * not own; across any step that may block (a callback, a wait) they hold a
 * pool reference instead.  References: 1 for the owner (dropped by
 * shp_pool_destroy), one per reservation or creator in flight (idle.c,
 * conn.c), one per closed connection until its memory is recycled, one per
 * orphan (lifecycle.c).  The pool is freed after its last reference is
 * dropped, through call_rcu, so nothing that runs concurrently with
 * shp_pool_destroy can touch freed memory.
 */
#ifndef SHP_REF_H
#define SHP_REF_H

#include "pool_internal.h"

/* Takes a reference on p.  Caller may touch p (read-side section or a
 * reference of its own).  Thread-safe. */
static inline void shp__ref(shp_pool *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

/* Drops a reference; the last one frees the pool (and its spare connection
 * structs) after a grace period.  Thread-safe. */
void shp__unref(shp_pool *p);

#endif
