/*
 * release.c - shp_release, shp_release_broken, shp_pool_release.
 *
 * Read top-down: shp_release's fast path (the connection needs nothing: no
 * timed borrow, no lifetime end, no reset, the thread registered with RCU),
 * then where a kept connection goes (release_idle: parked in the thread
 * cache, or pushed on a shard or handed to a waiter), then the general
 * path every other release takes (release_impl: reset, closes, hold-time
 * recording), then misuse.  Lifetime rule: ref.h.
 */
#include "conn.h"
#include "fork.h"
#include "idle.h"
#include "log_internal.h"
#include "ref.h"
#include "tcache.h"

#include <errno.h>

/* Whether c cannot be a connection pointer at all: NULL or in the first
 * page (where no allocation lives); one compare, like a NULL test. */
static inline bool not_a_pointer(const shp_conn *c)
{
    return (uintptr_t)c < 4096;
}

static __attribute__((noinline)) int release_impl(shp_pool *expect, shp_conn *c, bool broken);
static inline __attribute__((always_inline)) int release_idle(shp_pool *p, shp_conn *c,
                                                             struct shp__shard *sh,
                                                             bool membarrier);
SHP__COLD static int release_bad(shp_pool *expect, shp_conn *c);

/* ---------------------------------------------------------------- the fast path */

int shp_release(shp_conn *c)
{
    if (SHP_UNLIKELY(not_a_pointer(c) || c->magic != SHP__CONN_MAGIC ||
                     atomic_load_explicit(&c->state, memory_order_acquire) != SHP__IN_USE))
        return release_bad(NULL, c);
    shp_pool *p = c->pool;
    int64_t now = shp__tick(p);
    if (SHP_UNLIKELY(now >= atomic_load_explicit(&c->gate, memory_order_relaxed) ||
                     atomic_load_explicit(&c->uses, memory_order_relaxed) >= p->fast_max_uses ||
                     !shp__rcu_registered()))
        return release_impl(NULL, c, false);
    shp__rcu_lock_fast();
    if (SHP_UNLIKELY(atomic_load_explicit(&p->state, memory_order_seq_cst) != SHP__RUNNING) ||
        shp__stale(p, c)) {
        shp__rcu_unlock();
        return release_impl(NULL, c, false); /* closes it */
    }
    atomic_store_explicit(&c->last_used, now, memory_order_relaxed);
    return release_idle(p, c, NULL, true);
}

/* ---------------------------------------------------------------- where a kept connection goes */

static __attribute__((noinline)) int release_push(shp_pool *p, shp_conn *c,
                                                  struct shp__shard *sh);
SHP__COLD static int release_unpark(shp_pool *p, struct shp__tcache_slot *e,
                                    struct shp__shard *sh);

/* Releases borrowed c, kept (not stale, pool running, last_used set): parks
 * it in this thread's cache when the slot is free, its shard (sh; NULL: the
 * calling CPU's) has other idle connections and nobody waits (a plain
 * store: we own it); else the push path.  Inside a read-side section,
 * which it leaves.  membarrier: the section was entered with
 * shp__rcu_lock_fast (shp_release's fast path: liburcu-bp and the thread
 * cache's fence both run on membarrier), and is left the same way. */
static inline __attribute__((always_inline)) int release_idle(shp_pool *p, shp_conn *c,
                                                             struct shp__shard *sh,
                                                             bool membarrier)
{
    struct shp__tcache_slot *e = shp__tcache_slot(p);
    if (SHP_UNLIKELY(!p->tcache) || SHP_UNLIKELY(e->conn && e->pool == p->id) ||
        SHP_UNLIKELY(shp__stack_empty(&(sh ? sh : shp__hint_shard(p))->free)) ||
        SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, memory_order_relaxed)))
        return release_push(p, c, sh);
    shp__tcache_park(e, p, c);
    if (membarrier)
        shp__fence_light_membarrier();
    else
        shp__fence_light();
    if (SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, SHP__PARK_LOAD_ORDER)))
        return release_unpark(p, e, sh);
    if (membarrier)
        shp__rcu_unlock_fast();
    else
        shp__rcu_unlock();
    return 0;
}

SHP__COLD static int not_borrowed(shp_pool *p, shp_conn *c, uint32_t s);

/* Releases borrowed c, kept (not stale, pool running, last_used set), to
 * shard sh (NULL: the calling CPU's) or a waiter: the push path, by CAS
 * from IN_USE.  Inside a read-side section, which it leaves. */
static __attribute__((noinline)) int release_push(shp_pool *p, shp_conn *c,
                                                  struct shp__shard *sh)
{
    if (!sh) {
        shp__home_hint = shp__home(p);
        sh = &p->shards[shp__home_hint];
    }
    uint32_t s = SHP__IN_USE;
    if (SHP_UNLIKELY(!atomic_compare_exchange_strong_explicit(
            &c->state, &s, SHP__IDLE, memory_order_acq_rel, memory_order_acquire))) {
        shp__rcu_unlock();
        return not_borrowed(p, c, s);
    }
    shp__put_idle_to(p, c, sh);
    shp__rcu_unlock();
    return 0;
}

/* A waiter queued while we parked a connection in slot e: take it back, if
 * nobody claimed it yet, and hand it over.  Inside a read-side section,
 * which it leaves. */
SHP__COLD static int release_unpark(shp_pool *p, struct shp__tcache_slot *e,
                                    struct shp__shard *sh)
{
    shp_conn *c = e->conn;
    uint32_t s = SHP__CACHED;
    e->conn = NULL;
    if (atomic_compare_exchange_strong(&c->state, &s, SHP__IDLE))
        shp__put_idle_to(p, c, sh ? sh : &p->shards[shp__home(p)]);
    shp__rcu_unlock();
    return 0;
}

/* ---------------------------------------------------------------- the general path */

SHP__COLD static int release_retire(shp_pool *p, shp_conn *c, enum shp__close_reason why);
#ifndef SHP_NO_METRICS
SHP__COLD static void record_hold(shp_pool *p, shp_conn *c, struct shp__shard *sh);
#endif

/* Every release: checks, the reset hook, closes, hold-time recording, then
 * release_idle.  shp_release's fast path handles the common case itself. */
static __attribute__((noinline)) int release_impl(shp_pool *expect, shp_conn *c, bool broken)
{
    if (SHP_UNLIKELY(not_a_pointer(c) || c->magic != SHP__CONN_MAGIC ||
                     (expect && expect != c->pool) || c->pool->magic != SHP__POOL_MAGIC ||
                     atomic_load_explicit(&c->state, memory_order_acquire) != SHP__IN_USE))
        return release_bad(expect, c);
    shp_pool *p = c->pool;
    int64_t now = shp__tick(p);
    int why = -1;
    if (broken)
        why = SHP__CLOSE_BROKEN;
    else if (p->ops.reset && p->ops.reset(p->ops.ctx, c->handle) != 0)
        why = SHP__CLOSE_RESET;
    else if (SHP_UNLIKELY(now >= c->expires))
        why = SHP__CLOSE_LIFETIME;
    else if (SHP_UNLIKELY(atomic_load_explicit(&c->uses, memory_order_relaxed) >= p->max_uses))
        why = SHP__CLOSE_USES;

    /* The shard is picked before the CAS so that the CPU lookup's loads
     * overlap with the checks instead of queuing behind the locked CAS. */
    struct shp__shard *sh = &p->shards[shp__home(p)];
#ifndef SHP_NO_METRICS
    if (SHP_UNLIKELY(atomic_load_explicit(&c->t_acquired, memory_order_relaxed) != 0))
        record_hold(p, c, sh);
#endif
    shp__rcu_lock();
    if (SHP_UNLIKELY(atomic_load_explicit(&p->state, memory_order_seq_cst) != SHP__RUNNING))
        return release_retire(p, c, SHP__CLOSE_SHUTDOWN);
    if (SHP_UNLIKELY(why >= 0))
        return release_retire(p, c, (enum shp__close_reason)why);
    if (shp__stale(p, c)) /* inside the section: see shp__stale */
        return release_retire(p, c, SHP__CLOSE_EVICTED);
    atomic_store_explicit(&c->last_used, now, memory_order_relaxed);
    return release_idle(p, c, sh, false);
}

int shp_release_broken(shp_conn *c) { return release_impl(NULL, c, true); }

int shp_pool_release(shp_pool *p, shp_conn *c)
{
    if (!p || p->magic != SHP__POOL_MAGIC)
        return shp__bad_pool(p, "release_bad_pool");
    return release_impl(p, c, false);
}

#ifndef SHP_NO_METRICS
/* Records the hold time of a timed borrow (the borrower still owns c). */
SHP__COLD static void record_hold(shp_pool *p, shp_conn *c, struct shp__shard *sh)
{
    int64_t t = atomic_load_explicit(&c->t_acquired, memory_order_relaxed);
    shp__hist_record(sh->hold_hist, shp__now_ns() - t, p->metrics_sample);
    atomic_store_explicit(&c->t_acquired, 0, memory_order_relaxed);
    atomic_store_explicit(&c->gate, c->expires, memory_order_relaxed);
}
#endif

/* Takes c from its borrower by CAS and closes it outside the read-side
 * section, holding a reference.  Called inside a read-side section, which
 * it leaves. */
SHP__COLD static int release_retire(shp_pool *p, shp_conn *c, enum shp__close_reason why)
{
    uint32_t s = SHP__IN_USE;
    if (!atomic_compare_exchange_strong(&c->state, &s, SHP__CLOSING)) {
        shp__rcu_unlock();
        return not_borrowed(p, c, s);
    }
    shp__ref(p);
    shp__rcu_unlock();
    shp__close(p, c, why);
    shp__unref(p);
    return why == SHP__CLOSE_SHUTDOWN ? -ESHUTDOWN : 0;
}

/* ---------------------------------------------------------------- not borrowed: orphans and misuse */

/* Releases an orphan (its pool was destroyed while it was borrowed). */
SHP__COLD static int release_orphan(shp_pool *p, shp_conn *c)
{
    uint32_t s = SHP__ORPHANED;
    if (!atomic_compare_exchange_strong(&c->state, &s, SHP__CLOSING))
        return shp__misuse(p->name, -EALREADY, "release_twice", c);
    shp__close(p, c, SHP__CLOSE_SHUTDOWN);
    shp__unref(p);
    return -ESHUTDOWN;
}

SHP__COLD static int not_borrowed(shp_pool *p, shp_conn *c, uint32_t s)
{
    if (s == SHP__ORPHANED)
        return release_orphan(p, c);
    return shp__misuse(p->name, -EALREADY, "release_twice", c);
}

SHP__COLD static int release_bad(shp_pool *expect, shp_conn *c)
{
    const char *name = shp__pool_name(expect);
    if (not_a_pointer(c))
        return shp__misuse(name, -EINVAL, c ? "release_bad_pointer" : "release_null", c);
    if (c->magic != SHP__CONN_MAGIC)
        return shp__misuse(name, -EBADF, "release_not_a_conn", c);
    if (shp__inherited(c->pool)) /* nothing is closed: it is the parent's */
        return shp__misuse(c->pool->name, -ECHILD, "release_inherited", c);
    if (expect && expect != c->pool)
        return shp__misuse(name, -EXDEV, "release_foreign", c);
    return not_borrowed(c->pool, c, atomic_load_explicit(&c->state, memory_order_acquire));
}
