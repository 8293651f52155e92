/*
 * idle.c - every move of a connection nobody holds (idle.h): capacity
 * reservation, the shards, the FIFO waiter queue and handoff, and the
 * thread caches' flush.
 */
#include "idle.h"
#include "futex.h"
#include "ref.h"
#include "retry.h"
#include "tcache.h"

#include <errno.h>

/* ---------------------------------------------------------------- capacity */

int shp__reserve(shp_pool *p)
{
    uint64_t c = atomic_load_explicit(&p->cap, memory_order_seq_cst);
    for (;;) {
        if (SHP__CAP_LIVE(c) >= p->cfg.max_size)
            return -EAGAIN;
        if (SHP__CAP_CONNECTING(c) >= p->cfg.max_connecting)
            return -EBUSY;
        if (atomic_compare_exchange_weak_explicit(&p->cap, &c,
                                                  c + SHP__CAP_ONE_LIVE + SHP__CAP_ONE_CONNECTING,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    shp__ref(p);
    return 0;
}

/* After live went down: tells a draining destroy to look again. */
static void drain_progress(shp_pool *p)
{
    if (atomic_load_explicit(&p->state, memory_order_seq_cst) != SHP__RUNNING) {
        atomic_fetch_add_explicit(&p->drain_seq, 1, memory_order_release);
        shp__futex_wake((uint32_t *)&p->drain_seq, 1);
    }
}

void shp__live_dropped(shp_pool *p)
{
    drain_progress(p);
    shp__wake_waiters(p);
}

void shp__unreserve(shp_pool *p)
{
    atomic_fetch_sub_explicit(&p->cap, SHP__CAP_ONE_LIVE + SHP__CAP_ONE_CONNECTING,
                              memory_order_seq_cst);
    shp__live_dropped(p);
    shp__unref(p);
}

/* ---------------------------------------------------------------- waiters */

/* Gives waiter w its answer, under the queue lock.  The waiter may see the
 * answer and return at once (its frame is then gone), so after the
 * exchange only the futex address is used, and only if the waiter had
 * announced it sleeps; a stray wake of a reused address is harmless, as
 * every futex waiter re-checks its word. */
static void waiter_answer(struct shp__waiter *w, uint32_t answer)
{
    uint32_t *addr = (uint32_t *)&w->word;
    if (atomic_exchange_explicit(&w->word, answer, memory_order_acq_rel) == SHP__W_SLEEPING)
        shp__futex_wake(addr, 1);
}

/* A connection found here is handed over directly in both handoff modes:
 * this is the claim on what was freed while a waiter was not yet counted
 * (a waiter's enqueue, the re-check after a push in shp__put_idle_to),
 * rare under load; releases that see waiters go through shp__handoff. */
void shp__wake_waiters(shp_pool *p)
{
    if (atomic_load_explicit(&p->nwaiters, memory_order_seq_cst) == 0)
        return;
    pthread_mutex_lock(&p->wq_lock);
    while (p->wq_head && !p->wq_closed) {
        struct shp__waiter *w = p->wq_head;
        uint32_t answer;
        shp__rcu_lock();
        shp_conn *c = shp__steal(p, shp__home(p));
        shp__rcu_unlock();
        if (c) {
            shp__take(p, c);
            w->conn = c;
            answer = SHP__W_CONN;
            atomic_fetch_add_explicit(&p->handoffs, 1, memory_order_relaxed);
        } else if (shp__breaker_open(p)) {
            /* Capacity is free but connecting is known to fail: tell the
             * waiter at once rather than leave it to its deadline. */
            if (SHP__CAP_LIVE(atomic_load(&p->cap)) >= p->cfg.max_size)
                break;
            answer = SHP__W_DOWN;
        } else if (shp__reserve(p) == 0) {
            answer = SHP__W_GRANT;
        } else {
            break;
        }
        p->wq_head = w->next;
        if (!p->wq_head)
            p->wq_tail = NULL;
        atomic_fetch_sub_explicit(&p->nwaiters, 1, memory_order_relaxed);
        waiter_answer(w, answer);
    }
    pthread_mutex_unlock(&p->wq_lock);
}

/* Links w into the queue before the first waiter that queued after it
 * (since later than w's).  Queue lock held. */
static void queue_in_order(shp_pool *p, struct shp__waiter *w)
{
    struct shp__waiter **pp = &p->wq_head;
    while (*pp && (*pp)->since <= w->since)
        pp = &(*pp)->next;
    w->next = *pp;
    *pp = w;
    if (!w->next)
        p->wq_tail = w;
}

bool shp__waiter_enqueue(shp_pool *p, struct shp__waiter *w, bool in_order)
{
    pthread_mutex_lock(&p->wq_lock);
    if (p->wq_closed) {
        pthread_mutex_unlock(&p->wq_lock);
        return false;
    }
    if (SHP_UNLIKELY(in_order)) {
        queue_in_order(p, w);
    } else {
        if (p->wq_tail)
            p->wq_tail->next = w;
        else
            p->wq_head = w;
        p->wq_tail = w;
    }
    atomic_fetch_add_explicit(&p->nwaiters, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&p->wq_lock);
    return true;
}

bool shp__waiter_cancel(shp_pool *p, struct shp__waiter *w)
{
    pthread_mutex_lock(&p->wq_lock);
    uint32_t v = atomic_load_explicit(&w->word, memory_order_acquire);
    bool still_queued = v == SHP__W_WAITING || v == SHP__W_SLEEPING;
    if (still_queued) {
        struct shp__waiter **pp = &p->wq_head, *prev = NULL;
        while (*pp != w) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = w->next;
        if (p->wq_tail == w)
            p->wq_tail = prev;
        atomic_fetch_sub_explicit(&p->nwaiters, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&p->wq_lock);
    return still_queued;
}

void shp__waiters_close(shp_pool *p)
{
    pthread_mutex_lock(&p->wq_lock);
    p->wq_closed = true;
    for (struct shp__waiter *w = p->wq_head, *next; w; w = next) {
        next = w->next;
        waiter_answer(w, SHP__W_SHUTDOWN);
    }
    p->wq_head = p->wq_tail = NULL;
    atomic_store(&p->nwaiters, 0);
    pthread_mutex_unlock(&p->wq_lock);
}

/* ---------------------------------------------------------------- shards */

shp_conn *shp__steal(shp_pool *p, unsigned home)
{
    for (unsigned i = 0; i < p->nshards; i++) {
        unsigned s = home + i < p->nshards ? home + i : home + i - p->nshards;
        shp_conn *c = (shp_conn *)shp__stack_pop(&p->shards[s].free);
        if (c) {
            /* Counted on the thief's own shard: writing the victim's line
             * would slow the victim's next pop. */
            if (i)
                atomic_fetch_add_explicit(&p->shards[home].steals, 1, memory_order_relaxed);
            return c;
        }
    }
    return NULL;
}

/* With strict FIFO (handoff_after_ns == 0), or once the oldest waiter has
 * waited handoff_after_ns, c is handed over.  Otherwise c is pushed on
 * shard sh, where any running acquirer (usually the releaser, coming back)
 * may take it, and the waiter is unlinked with SHP__W_RETRY - one waiter
 * per release - to compete for it.  The push is made under the lock: the
 * woken waiter steals after it, and a waiter that queues after we unlock
 * steals after it in its own shp__wake_waiters, so no fence and re-check
 * are needed.  No waiter when the queue is closed. */
SHP__COLD bool shp__handoff(shp_pool *p, shp_conn *c, struct shp__shard *sh)
{
    int64_t now = p->handoff_after_ns > 0 ? shp__now_ns() : 0; /* outside the lock */
    pthread_mutex_lock(&p->wq_lock);
    struct shp__waiter *w = p->wq_closed ? NULL : p->wq_head;
    if (w) {
        p->wq_head = w->next;
        if (!p->wq_head)
            p->wq_tail = NULL;
        atomic_fetch_sub_explicit(&p->nwaiters, 1, memory_order_relaxed);
        if (p->handoff_after_ns > 0 && now - w->since < p->handoff_after_ns) {
            shp__stack_push(&sh->free, &c->link);
            waiter_answer(w, SHP__W_RETRY);
        } else {
            shp__take(p, c);
            w->conn = c;
            atomic_fetch_add_explicit(&p->handoffs, 1, memory_order_relaxed);
            waiter_answer(w, SHP__W_CONN);
        }
    }
    pthread_mutex_unlock(&p->wq_lock);
    return w != NULL;
}

bool shp__put_idle(shp_pool *p, shp_conn *c, struct shp__shard *sh)
{
    if (shp__stale(p, c))
        return false;
    shp__put_idle_to(p, c, sh ? sh : &p->shards[shp__home(p)]);
    return true;
}

/* ---------------------------------------------------------------- thread caches */

bool shp__tcache_fresh(shp_pool *p, shp_conn *c, void *arg)
{
    (void)arg;
    return !shp__stale(p, c);
}

shp_conn *shp__tcache_flush(shp_pool *p, shp__tcache_pred want, void *arg)
{
    shp_conn *stale = NULL;
    struct shp__reg *node;
    shp__rcu_lock();
    struct shp__shard *sh = &p->shards[shp__home(p)];
    shp__reg_for_each(node, &p->reg) {
        shp_conn *c = caa_container_of(node, shp_conn, reg);
        uint32_t s = SHP__CACHED;
        if (atomic_load_explicit(&c->state, SHP__PARK_LOAD_ORDER) != SHP__CACHED ||
            (want && !want(p, c, arg)) ||
            !atomic_compare_exchange_strong_explicit(&c->state, &s, SHP__IDLE,
                                                     memory_order_acquire, memory_order_relaxed))
            continue;
        if (!shp__put_idle(p, c, sh)) {
            c->rnext = stale;
            stale = c;
        }
    }
    shp__rcu_unlock();
    return stale;
}
