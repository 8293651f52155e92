/*
 * pool.c - create, acquire, release, destroy and stats.
 *
 * Lifetime rule (I4, I6): shp_acquire and shp_release run inside RCU
 * read-side sections whenever they touch the pool or a connection they do
 * not own; across any step that may block (a callback, a wait) they hold a
 * pool reference instead.  The pool is freed after its last reference is
 * dropped, through call_rcu, so nothing that runs concurrently with
 * shp_pool_destroy can touch freed memory.
 */
#include "pool_internal.h"
#include "monitor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#if defined(SHP_TSAN)
char shp__rcu_tsan_token;
#endif

/* ---------------------------------------------------------------- helpers */

static void shp__ref(shp_pool *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

static void free_pool_cb(struct rcu_head *head)
{
    shp_pool *p = caa_container_of(head, shp_pool, rcu);
    SHP__TSAN_ACQUIRE();
    if (shp__inherited(p))
        return; /* queued in the parent, run in a child of fork(): not ours */
    shp__rcu_callback_begin();
    shp__fork_untrack(p);
    pthread_mutex_destroy(&p->wq_lock);
    pthread_mutex_destroy(&p->reg_lock);
    pthread_mutex_destroy(&p->rp_lock);
    pthread_mutex_destroy(&p->mx_lock);
    pthread_mutex_destroy(&p->err_lock);
    pthread_cond_destroy(&p->rp_cond);
    pthread_cond_destroy(&p->rp_done);
    shp__metrics_free(p);
    p->magic = SHP__POOL_DEAD;
    for (shp_conn *c = p->spare, *next; c; c = next) {
        next = c->rnext;
        c->magic = 0;
        free(c);
    }
    free((void *)p->cpu_shard);
    free(p->shards);
    free(p);
    shp__rcu_callback_end();
}

/* Drops a reference; the last one frees the pool after a grace period. */
static void shp__unref(shp_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        shp__call_rcu(&p->rcu, free_pool_cb);
}

/* Connection memory is type-stable for the pool's lifetime: a closed
 * connection goes, after a grace period, to the pool's spare list and is
 * reused by a later connect; spares are freed with the pool.  So a late or
 * second release of a closed connection reads a valid struct in state
 * CLOSED (-EALREADY) instead of freed memory.  The callback holds a pool
 * reference taken by shp__close. */
static void recycle_conn_cb(struct rcu_head *head)
{
    shp_conn *c = caa_container_of(head, shp_conn, rcu);
    SHP__TSAN_ACQUIRE();
    shp_pool *p = c->pool;
    if (shp__inherited(p))
        return; /* see free_pool_cb */
    shp__rcu_callback_begin();
    pthread_mutex_lock(&p->reg_lock);
    c->rnext = p->spare;
    p->spare = c;
    pthread_mutex_unlock(&p->reg_lock);
    shp__unref(p); /* may queue free_pool_cb */
    shp__rcu_callback_end();
}

/* A connection struct from the spare list, or a new one; NULL if out of
 * memory.  Its magic stays valid throughout. */
static shp_conn *conn_alloc(shp_pool *p)
{
    pthread_mutex_lock(&p->reg_lock);
    shp_conn *c = p->spare;
    if (c)
        p->spare = c->rnext;
    uint64_t gen = atomic_load_explicit(&p->evict_gen, memory_order_relaxed);
    pthread_mutex_unlock(&p->reg_lock);
    if (!c) {
        c = aligned_alloc(SHP_CACHELINE, sizeof *c);
        if (!c)
            return NULL;
        memset(c, 0, sizeof *c);
    }
    c->magic = SHP__CONN_MAGIC;
    c->pool = p;
    c->rnext = NULL;
    atomic_store_explicit(&c->state, SHP__CONNECTING, memory_order_relaxed);
    atomic_store_explicit(&c->uses, 0, memory_order_relaxed);
    atomic_store_explicit(&c->t_acquired, 0, memory_order_relaxed);
    atomic_store_explicit(&c->errors, 0, memory_order_relaxed);
    atomic_store_explicit(&c->last_error, 0, memory_order_relaxed);
    c->gen = gen;
    return c;
}

static void conn_unused(shp_pool *p, shp_conn *c)
{
    atomic_store_explicit(&c->state, SHP__FAILED, memory_order_relaxed);
    pthread_mutex_lock(&p->reg_lock);
    c->rnext = p->spare;
    p->spare = c;
    pthread_mutex_unlock(&p->reg_lock);
}

static int64_t tick(const shp_pool *p)
{
    return atomic_load_explicit(&p->tick, memory_order_relaxed);
}

static bool running(shp_pool *p)
{
    return atomic_load_explicit(&p->state, memory_order_seq_cst) == SHP__RUNNING;
}

/* The borrower of c counts its borrow (owner-written, metrics.h).  Release
 * order: a slow-path borrow's slow_hits count is visible with it. */
static inline void count_use(shp_conn *c)
{
    atomic_store_explicit(&c->uses, atomic_load_explicit(&c->uses, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* A borrow served by the slow path: not a home hit (metrics.c). */
static inline void count_slow(shp_pool *p)
{
#ifndef SHP_NO_METRICS
    atomic_fetch_add_explicit(&p->slow_hits, 1, memory_order_relaxed);
#else
    (void)p;
#endif
}

/* The owner of c (stolen, or handed over) makes it borrowed: a slow-path
 * borrow. */
static void take(shp_pool *p, shp_conn *c)
{
    atomic_store_explicit(&c->state, SHP__IN_USE, memory_order_relaxed);
    count_slow(p);
    count_use(c);
}

/* ---------------------------------------------------------------- thread caches */

/* Per thread: the connection it released last, per pool (pool_internal.h,
 * "Thread caches").  A pool's slot is tlc[id % SHP__TLC_WAYS]; pools whose
 * ids collide share it, and a slot taken by another pool's connection
 * leaves that connection CACHED for shp__uncache to find.  `conn` is only
 * a hint: it is claimed by CAS, and its memory stays a connection of pool
 * `pool` while that pool lives (type-stable, see recycle_conn_cb); a slot
 * is used only by a call on the pool with that id, which is alive. */
struct shp__tlc {
    uint64_t pool;
    shp_conn *conn;
};
static _Thread_local struct shp__tlc tlc[SHP__TLC_WAYS];

/* The shard this thread last popped from or pushed to (any pool; clamped
 * to the pool's shard count): where release_idle looks to see whether its
 * shard has other idle connections.  A hint, possibly stale after the
 * thread moved CPUs: the release's fast path then makes no CPU lookup. */
static _Thread_local unsigned home_hint;

static inline struct shp__shard *hint_shard(const shp_pool *p)
{
    unsigned h = home_hint;
    return &p->shards[h < p->nshards ? h : 0];
}

static inline struct shp__tlc *tlc_slot(const shp_pool *p)
{
    return &tlc[p->id % SHP__TLC_WAYS];
}

void shp__tlc_forget(void)
{
    memset(tlc, 0, sizeof tlc);
    home_hint = 0;
}

/* Claims the calling thread's cached connection of p: returns it IN_USE
 * (use not yet counted), or NULL. */
static inline shp_conn *tlc_claim(shp_pool *p)
{
    struct shp__tlc *e = tlc_slot(p);
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

bool shp__parked_fresh(shp_pool *p, shp_conn *c, void *arg)
{
    (void)arg;
    return !shp__stale(p, c);
}

unsigned shp__uncache(shp_pool *p, shp__parked_pred want, void *arg)
{
    shp_conn *stale = NULL;
    unsigned n = 0;
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
        n++;
        if (!shp__put_idle(p, c, sh)) {
            c->rnext = stale;
            stale = c;
        }
    }
    shp__rcu_unlock();
    for (shp_conn *c; (c = stale) != NULL;) {
        stale = c->rnext;
        shp__close(p, c, SHP__CLOSE_EVICTED);
    }
    return n;
}

static bool needs_validation(const shp_pool *p, const shp_conn *c)
{
    return p->validate_idle_ns >= 0 &&
           tick(p) - atomic_load_explicit(&c->last_used, memory_order_relaxed) > p->validate_idle_ns;
}

SHP__COLD int shp__misuse(shp_pool *p, int err, const char *event, const void *what)
{
    shp__log(SHP_LOG_WARN, p ? p->name : NULL, "event=%s ptr=%p err=%s", event, what,
             shp_err_name(err));
    return err;
}

/* ---------------------------------------------------------------- callback failures */

_Static_assert(sizeof(((shp_last_error *)0)->msg) == SHP_ERROR_DETAIL_MAX,
               "shp_last_error.msg holds one detail");

/* The calling thread's last callback failure (shp_acquire_last_error);
 * cleared when one of its acquires takes the slow path. */
static _Thread_local shp_last_error acq_error;

void shp__callback_failed(shp_pool *p, const char *op, int err, shp_log_level level,
                          const shp_conn *conn)
{
    shp_last_error e = { .err = err, .when_ns = shp__now_ns() };
    snprintf(e.op, sizeof e.op, "%s", op);
    if (shp__error_detail_take(e.msg, sizeof e.msg) == 0) {
        /* The callback's errno means what the system says, not what the
         * pool's table says (ETIMEDOUT here is a connect timeout). */
        const char *m = err < 0 && err > -4096 ? strerrordesc_np(-err) : NULL;
        snprintf(e.msg, sizeof e.msg, "%s", m ? m : shp_strerror(err));
    }
    if (conn)
        shp__log(level, p->name, "event=%s_failed conn=%p err=%s msg=\"%s\"", op, (const void *)conn,
                 shp_err_name(err), e.msg);
    else
        shp__log(level, p->name, "event=%s_failed err=%s msg=\"%s\"", op, shp_err_name(err), e.msg);
    pthread_mutex_lock(&p->err_lock);
    p->last_error = e;
    pthread_mutex_unlock(&p->err_lock);
    acq_error = e;
}

int shp_pool_last_error(shp_pool *p, shp_last_error *out)
{
    if (!p || p->magic != SHP__POOL_MAGIC || !out)
        return shp__bad_pool(p, "last_error_bad_arg");
    pthread_mutex_lock(&p->err_lock);
    *out = p->last_error;
    pthread_mutex_unlock(&p->err_lock);
    return 0;
}

int shp_acquire_last_error(shp_last_error *out)
{
    if (!out)
        return shp__misuse(NULL, -EINVAL, "last_error_bad_arg", out);
    *out = acq_error;
    return 0;
}

/* ---------------------------------------------------------------- capacity */

/* Reserves one connection slot and one connect slot.  Call inside a read-side
 * section or holding a reference.  Returns 0 (and the caller holds a new
 * pool reference, given back by shp__create), -EAGAIN at max_size, -EBUSY
 * when max_connecting connects are in flight. */
int shp__reserve(shp_pool *p)
{
    uint64_t c = atomic_load_explicit(&p->cap, memory_order_seq_cst);
    for (;;) {
        if (SHP__CAP_LIVE(c) >= p->cfg.max_size)
            return -EAGAIN;
        if (SHP__CAP_CONNECTING(c) >= p->cfg.max_connecting)
            return -EBUSY;
        if (atomic_compare_exchange_weak_explicit(&p->cap, &c, c + (1ULL << 32) + 1,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    shp__ref(p);
    return 0;
}

/* Gives waiter w its verdict, under the queue lock.  The waiter may see the
 * verdict and return at once (its frame is then gone), so after the
 * exchange only the futex address is used, and only if the waiter had
 * announced it sleeps; a stray wake of a reused address is harmless, as
 * every futex waiter re-checks its word. */
static void waiter_signal(struct shp__waiter *w, uint32_t verdict)
{
    uint32_t *addr = (uint32_t *)&w->word;
    if (atomic_exchange_explicit(&w->word, verdict, memory_order_acq_rel) == SHP__W_SLEEPING)
        shp__futex_wake(addr, 1);
}

/* Hands resources to waiters, oldest first: an idle connection from any
 * shard, else a reserved slot for it to connect with.  One resource wakes
 * one waiter.  Safe to call from any thread that may touch p.
 * A connection found here is handed over directly in both handoff modes:
 * this is the claim on what was freed while a waiter was not yet counted
 * (a waiter's enqueue, the re-check after a push in put_idle_to), rare
 * under load; releases that see waiters go through handoff. */
void shp__wake_waiters(shp_pool *p)
{
    if (atomic_load_explicit(&p->nwaiters, memory_order_seq_cst) == 0)
        return;
    pthread_mutex_lock(&p->wq_lock);
    while (p->wq_head && !p->wq_closed) {
        struct shp__waiter *w = p->wq_head;
        uint32_t verdict;
        shp__rcu_lock();
        shp_conn *c = shp__steal(p, shp__home(p));
        shp__rcu_unlock();
        if (c) {
            take(p, c);
            w->conn = c;
            verdict = SHP__W_CONN;
            atomic_fetch_add_explicit(&p->handoffs, 1, memory_order_relaxed);
        } else if (shp__breaker_open(p)) {
            /* Capacity is free but connecting is known to fail: tell the
             * waiter at once rather than leave it to its deadline. */
            if (SHP__CAP_LIVE(atomic_load(&p->cap)) >= p->cfg.max_size)
                break;
            verdict = SHP__W_DOWN;
        } else if (shp__reserve(p) == 0) {
            verdict = SHP__W_GRANT;
        } else {
            break;
        }
        p->wq_head = w->next;
        if (!p->wq_head)
            p->wq_tail = NULL;
        atomic_fetch_sub_explicit(&p->nwaiters, 1, memory_order_relaxed);
        waiter_signal(w, verdict);
    }
    pthread_mutex_unlock(&p->wq_lock);
}

/* ---------------------------------------------------------------- idle list */

/* Pops from the home shard, then from the others in order.  Call inside a
 * read-side section.  Returns an owned connection (state IDLE) or NULL. */
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

/* Releases owned connection c (state IDLE, not stale) to the oldest
 * waiter, under the queue lock.  With strict FIFO (handoff_after_ns == 0),
 * or once that waiter has waited handoff_after_ns, c is handed over.
 * Otherwise c is pushed on shard sh, where any running acquirer (usually
 * the releaser, coming back) may take it, and the waiter is unlinked with
 * SHP__W_RETRY - one waiter per release - to compete for it.  The push is
 * made under the lock: the woken waiter steals after it, and a waiter that
 * queues after we unlock steals after it in its own shp__wake_waiters, so
 * no fence and re-check are needed.  Returns false, having done nothing, if
 * no waiter is queued (or the queue is closed).  Call inside a read-side
 * section. */
SHP__COLD static bool handoff(shp_pool *p, shp_conn *c, struct shp__shard *sh)
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
            waiter_signal(w, SHP__W_RETRY);
        } else {
            take(p, c);
            w->conn = c;
            atomic_fetch_add_explicit(&p->handoffs, 1, memory_order_relaxed);
            waiter_signal(w, SHP__W_CONN);
        }
    }
    pthread_mutex_unlock(&p->wq_lock);
    return w != NULL;
}

/* Gives owned connection c, already in state IDLE, to the oldest waiter if
 * there is one (see handoff), else pushes it on shard sh.  Call inside a
 * read-side section. */
static inline void put_idle_to(shp_pool *p, shp_conn *c, struct shp__shard *sh)
{
    if (SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, memory_order_relaxed)) &&
        handoff(p, c, sh))
        return;
    shp__stack_push(&sh->free, &c->link);
    /* A waiter that queued after the check above must see this push, or we
     * must see it: its nwaiters increment and our push are both sequentially
     * consistent read-modify-writes, and the fence orders the load after. */
    shp__stack_fence_after_push();
    if (SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, memory_order_seq_cst)))
        shp__wake_waiters(p);
}

bool shp__put_idle(shp_pool *p, shp_conn *c, struct shp__shard *sh)
{
    if (shp__stale(p, c))
        return false;
    put_idle_to(p, c, sh ? sh : &p->shards[shp__home(p)]);
    return true;
}

/* ---------------------------------------------------------------- open/close */

static void give_up(shp_pool *p, shp_conn *c, enum shp__close_reason why);

/* After live went down: tells a draining destroy to look again. */
static void drain_progress(shp_pool *p)
{
    if (atomic_load_explicit(&p->state, memory_order_seq_cst) != SHP__RUNNING) {
        atomic_fetch_add_explicit(&p->drain_seq, 1, memory_order_release);
        shp__futex_wake((uint32_t *)&p->drain_seq, 1);
    }
}

/* Gives back a reservation of shp__reserve that will not be used (the pool
 * stopped, or the acquire's deadline passed first), with its pool
 * reference. */
static void unreserve(shp_pool *p)
{
    atomic_fetch_sub_explicit(&p->cap, (1ULL << 32) + 1, memory_order_seq_cst);
    drain_progress(p);
    shp__wake_waiters(p);
    shp__unref(p);
}

/* Connects with a slot reserved by shp__reserve (whose reference it gives
 * back).  On success *out is owned by the caller in state `as` (IN_USE or
 * IDLE) and registered.  Returns 0, the connect callback's error, -ENOMEM,
 * or -ESHUTDOWN (the pool stopped meanwhile; the connection was closed). */
int shp__create(shp_pool *p, shp_conn **out, enum shp__conn_state as)
{
    if (as == SHP__IN_USE && !running(p)) {
        unreserve(p); /* destroy began after the reservation: connect nothing */
        return -ESHUTDOWN;
    }
    shp_conn *c = conn_alloc(p);
    void *h = NULL;
    shp__error_detail_clear();
    int err = c ? p->ops.connect(p->ops.ctx, &h) : -ENOMEM;
    if (err) {
        if (c)
            conn_unused(p, c);
        atomic_fetch_add_explicit(&p->connect_failures, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&p->cap, (1ULL << 32) + 1, memory_order_seq_cst);
        shp__callback_failed(p, "connect", err, SHP_LOG_WARN, NULL);
        shp__breaker_failure(p, err);
        drain_progress(p);
        shp__wake_waiters(p);
        shp__unref(p);
        return err;
    }
    shp__breaker_success(p);
    c->handle = h;
    c->created_ns = shp__now_ns();
    int64_t now = tick(p);
    atomic_store_explicit(&c->last_used, now, memory_order_relaxed);
    atomic_store_explicit(&c->last_checked, shp__check_phase(p, now), memory_order_relaxed);
    c->expires = shp__lifetime_end(p, now);
    atomic_store_explicit(&c->gate, c->expires, memory_order_relaxed);
    atomic_store_explicit(&c->state, as == SHP__IN_USE ? SHP__IN_USE : SHP__IDLE,
                          memory_order_seq_cst);
    if (as == SHP__IN_USE) {
        count_slow(p);
        atomic_store_explicit(&c->uses, 1, memory_order_release);
    }
    pthread_mutex_lock(&p->reg_lock);
    shp__reg_add_tail(&p->reg, &c->reg);
    pthread_mutex_unlock(&p->reg_lock);
    atomic_fetch_add_explicit(&p->created, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&p->cap, 1, memory_order_seq_cst); /* connect slot */
    shp__log(SHP_LOG_DEBUG, p->name, "event=connected conn=%p", (void *)c);

    int ret = 0;
    if (as == SHP__IN_USE && !running(p)) {
        /* Destroy began while we connected: the borrower never sees it. */
        give_up(p, c, SHP__CLOSE_SHUTDOWN);
        ret = -ESHUTDOWN;
    } else {
        *out = c;
    }
    shp__wake_waiters(p); /* a connect slot is free again */
    shp__unref(p);
    return ret;
}

/* Closes owned connection c and gives its capacity back (to a waiter if
 * one is queued).  Caller may touch p (read-side section or reference). */
void shp__close(shp_pool *p, shp_conn *c, enum shp__close_reason why)
{
    if ((why == SHP__CLOSE_LIFETIME || why == SHP__CLOSE_IDLE || why == SHP__CLOSE_USES) &&
        shp__stale(p, c))
        why = SHP__CLOSE_EVICTED;
    atomic_store_explicit(&c->state, SHP__CLOSING, memory_order_relaxed);
    p->ops.close(p->ops.ctx, c->handle);
    atomic_store_explicit(&c->state, SHP__CLOSED, memory_order_relaxed);
    shp__log(SHP_LOG_DEBUG, p->name, "event=closed conn=%p reason=%s uses=%" PRIu64,
             (void *)c, shp_close_reason_name((shp_close_reason)why),
             atomic_load_explicit(&c->uses, memory_order_relaxed));
    pthread_mutex_lock(&p->reg_lock);
    shp__reg_del(&c->reg);
    shp__metrics_retire(p, c);
    pthread_mutex_unlock(&p->reg_lock);
    atomic_fetch_add_explicit(&p->closes[why], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->closed, 1, memory_order_relaxed);
    shp__ref(p); /* dropped by recycle_conn_cb */
    shp__call_rcu(&c->rcu, recycle_conn_cb);
    atomic_fetch_sub_explicit(&p->cap, 1ULL << 32, memory_order_seq_cst);
    drain_progress(p);
    shp__wake_waiters(p);
}

/* The acquirer owns c (IN_USE) but will not hand it out (the pool is
 * stopping, or an evict made it stale): close it for `why`.  Destroy may
 * have orphaned it meanwhile, in which case we drop the orphan's ref. */
static void give_up(shp_pool *p, shp_conn *c, enum shp__close_reason why)
{
    uint32_t s = SHP__IN_USE;
    bool orphan = !atomic_compare_exchange_strong(&c->state, &s, SHP__CLOSING);
    shp__close(p, c, why);
    if (orphan)
        shp__unref(p);
}

/* Runs the health check on owned connection c (caller holds a reference or
 * is the reaper), which is left in state CHECKING.  Returns true if healthy
 * (or there is no check); a failing connection is closed. */
bool shp__check(shp_pool *p, shp_conn *c, int64_t now)
{
    atomic_store_explicit(&c->state, SHP__CHECKING, memory_order_relaxed);
    if (!p->ops.check)
        return true;
    shp__error_detail_clear();
    int r = p->ops.check(p->ops.ctx, c->handle);
    atomic_fetch_add_explicit(&p->health_checks, 1, memory_order_relaxed);
    if (r == 0) {
        atomic_fetch_add_explicit(&p->health_passes, 1, memory_order_relaxed);
        atomic_store_explicit(&c->last_checked, now, memory_order_relaxed);
        return true;
    }
    atomic_fetch_add_explicit(&p->health_failures, 1, memory_order_relaxed);
    shp__callback_failed(p, "check", r < 0 ? r : -EIO, SHP_LOG_INFO, c);
    shp__close(p, c, SHP__CLOSE_HEALTH);
    return false;
}

/* ---------------------------------------------------------------- acquire */

/* How hand_out_checked counts the borrow: not at all (handed over, counted
 * by take), as a home hit (from the caller's cache or shard), or as a
 * slow-path borrow (stolen). */
enum count_as { COUNT_NONE, COUNT_HOME, COUNT_SLOW };

/* Validates c, popped by the caller, which holds a reference.  Returns 0 and
 * sets *out, 1 if c failed (closed), or -ESHUTDOWN. */
static int hand_out_checked(shp_pool *p, shp_conn *c, shp_conn **out, enum count_as count)
{
    int64_t now = tick(p);
    if (now >= c->expires || shp__stale(p, c)) {
        shp__close(p, c, SHP__CLOSE_LIFETIME); /* or evicted */
        return 1;
    }
    if (!shp__check(p, c, now))
        return 1;
    /* seq_cst store, then seq_cst load of the pool state: either destroy's
     * orphan scan sees IN_USE, or we see STOPPING and give it up. */
    atomic_store_explicit(&c->state, SHP__IN_USE, memory_order_seq_cst);
    if (count == COUNT_SLOW)
        count_slow(p);
    if (count != COUNT_NONE)
        count_use(c);
    if (!running(p)) {
        give_up(p, c, SHP__CLOSE_SHUTDOWN);
        return -ESHUTDOWN;
    }
    *out = c;
    return 0;
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

/* Queues the caller and sleeps until it is handed a connection, a slot, a
 * retry, the deadline or shutdown.  Caller holds a reference.  *since < 0
 * on an acquire's first wait: counted in waits, queued at the tail, and
 * *since set to the time (handoff_after_ns > 0; else 0).  A later wait of
 * the same acquire passes *since back: with handoff_after_ns > 0 it queues
 * in order of *since, so a waiter that lost the race for a pushed
 * connection is back ahead of every waiter that came after it and keeps
 * its claim on the starvation bound; otherwise it queues at the tail.
 * Every queueing is followed by a shp__wake_waiters: whatever was freed
 * while we were not counted in nwaiters (before the first queueing, or
 * between a retry verdict and queueing again) is claimed then, so no push
 * is missed.  Returns SHP__W_CONN (with *out set), SHP__W_GRANT,
 * SHP__W_RETRY, SHP__W_SHUTDOWN, SHP__W_DOWN or -ETIMEDOUT. */
#define SHP__WAIT_YIELDS 8

/* Whether the absolute deadline (< 0: none) has passed: checked before
 * every callback an acquire would start, so that none starts after it, and
 * by every spin or yield an acquire makes. */
static bool past(int64_t deadline)
{
    return deadline >= 0 && shp__now_ns() >= deadline;
}
#define SHP__PARK_RECHECK_NS (1000 * 1000)

static int wait_turn(shp_pool *p, shp_conn **out, int64_t deadline, int64_t *since)
{
    struct shp__waiter w = { .next = NULL, .conn = NULL };
    atomic_init(&w.word, SHP__W_WAITING);
    bool first = *since < 0;
    int64_t now = shp__now_ns();
    if (first)
        *since = p->handoff_after_ns > 0 ? now : 0;
    w.since = *since;
    int64_t recheck = now + SHP__PARK_RECHECK_NS; /* 0 once done; see below */
    pthread_mutex_lock(&p->wq_lock);
    if (p->wq_closed) {
        pthread_mutex_unlock(&p->wq_lock);
        return SHP__W_SHUTDOWN;
    }
    if (SHP_UNLIKELY(!first && p->handoff_after_ns > 0)) {
        queue_in_order(p, &w);
    } else {
        if (p->wq_tail)
            p->wq_tail->next = &w;
        else
            p->wq_head = &w;
        p->wq_tail = &w;
    }
    atomic_fetch_add_explicit(&p->nwaiters, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&p->wq_lock);
    if (first) /* an acquire that waits again is counted once */
        atomic_fetch_add_explicit(&p->waits, 1, memory_order_relaxed);
    /* Resources freed before our increment was visible: claim them now. */
    shp__wake_waiters(p);

    uint32_t v;
    /* A release usually comes within microseconds when the pool is merely
     * busy: yield a few times before sleeping, so that a handoff does not
     * cost a futex wake-up plus a scheduler round trip per connection (the
     * convoy that strict FIFO handoff otherwise causes). */
    /* On busy CPUs a yield may last a scheduler time slice: stop at the
     * deadline (the futex wait below then times out at once). */
    for (int i = 0; i < SHP__WAIT_YIELDS &&
                    atomic_load_explicit(&w.word, memory_order_acquire) == SHP__W_WAITING &&
                    !past(deadline);
         i++)
        sched_yield();
    /* A release that parked a connection between acquire_slow's scan of the
     * thread caches and our enqueue may not have seen us, nor we its
     * connection: a waiter not served SHP__PARK_RECHECK_NS after its enqueue,
     * or at its deadline if that comes first, runs the heavy side of the
     * fence (shp__fence_heavy) and scans the thread caches, once.  Only
     * such waits pay for a membarrier. */
    for (;;) {
        v = atomic_load_explicit(&w.word, memory_order_acquire);
        if (v != SHP__W_WAITING && v != SHP__W_SLEEPING)
            break;
        /* Announce the sleep in the word itself: a waker's exchange then
         * tells it whether a futex wake is needed. */
        if (v == SHP__W_WAITING &&
            !atomic_compare_exchange_strong(&w.word, &v, SHP__W_SLEEPING))
            continue;
        bool at_recheck = recheck > 0 && (deadline < 0 || recheck < deadline);
        if (shp__futex_wait((uint32_t *)&w.word, SHP__W_SLEEPING,
                            at_recheck ? recheck : deadline) != -ETIMEDOUT)
            continue;
        if (recheck > 0) {
            recheck = 0;
            shp__fence_heavy();
            shp__uncache(p, shp__parked_fresh, NULL); /* hands what it finds to the oldest waiter */
            if (at_recheck)
                continue;
            v = atomic_load_explicit(&w.word, memory_order_acquire);
            if (v != SHP__W_WAITING && v != SHP__W_SLEEPING)
                break; /* served by that scan */
        }
        pthread_mutex_lock(&p->wq_lock);
        v = atomic_load_explicit(&w.word, memory_order_acquire);
        bool still_queued = v == SHP__W_WAITING || v == SHP__W_SLEEPING;
        if (still_queued) {
            struct shp__waiter **pp = &p->wq_head, *prev = NULL;
            while (*pp != &w) {
                prev = *pp;
                pp = &(*pp)->next;
            }
            *pp = w.next;
            if (p->wq_tail == &w)
                p->wq_tail = prev;
            atomic_fetch_sub_explicit(&p->nwaiters, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&p->wq_lock);
        if (still_queued)
            return -ETIMEDOUT;
        break;
    }
    if (v == SHP__W_CONN)
        *out = w.conn;
    return (int)v;
}

/* The deadline of the acquire whose callback runs on this thread, for
 * shp_connect_deadline_ns; -1 outside one. */
static _Thread_local int64_t connect_deadline = -1;

int64_t shp_connect_deadline_ns(void)
{
    return connect_deadline;
}

/* The absolute deadline of an acquire that started at `now` with
 * shp_acquire's timeout_ns (< 0: the pool's acquire_timeout_ns): -1 for one
 * that may not wait (0); INT64_MAX when now + timeout does not fit. */
static int64_t acquire_deadline(const shp_pool *p, int64_t timeout_ns, int64_t now)
{
    int64_t wait_ns = timeout_ns < 0 ? p->cfg.acquire_timeout_ns : timeout_ns;
    return wait_ns > 0 ? shp__add_sat(now, wait_ns) : -1;
}

/* shp__create for an acquire: the connect callback sees the acquire's
 * deadline through shp_connect_deadline_ns (saved and restored, so that a
 * callback may itself acquire from another pool).  Returns shp__create's
 * result, or 1 when the connection was made but an shp_pool_evict came
 * while it connected (it was made for the generation before, e.g. to the
 * old primary): it is closed, and the caller tries again. */
static int create_for(shp_pool *p, shp_conn **out, int64_t deadline)
{
    int64_t outer = connect_deadline;
    connect_deadline = deadline;
    int ret = shp__create(p, out, SHP__IN_USE);
    connect_deadline = outer;
    if (ret == 0 && shp__stale(p, *out)) {
        give_up(p, *out, SHP__CLOSE_EVICTED);
        return 1;
    }
    return ret;
}

/* hand_out_checked for an acquire: the check callback sees the acquire's
 * deadline through shp_connect_deadline_ns. */
static int checked_for(shp_pool *p, shp_conn *c, shp_conn **out, enum count_as count,
                       int64_t deadline)
{
    int64_t outer = connect_deadline;
    connect_deadline = deadline;
    int ret = hand_out_checked(p, c, out, count);
    connect_deadline = outer;
    return ret;
}

/* After a failed connect (err): whether to try again, having waited the
 * backoff.  No for errors that are not transient, for an acquire that may
 * not wait (deadline < 0), when the attempts are used up, when the breaker
 * opened, when the backoff would pass the deadline, or when destroy began
 * (it interrupts the wait). */
static bool retry_after_failure(shp_pool *p, int err, unsigned *attempts, int64_t deadline)
{
    if (err == -ESHUTDOWN || !shp__retryable(err) || deadline < 0 || shp__breaker_open(p))
        return false;
    ++*attempts;
    if (p->cfg.connect_attempts && *attempts >= p->cfg.connect_attempts)
        return false;
    int64_t until = shp__add_sat(shp__now_ns(), shp__backoff_ns(&p->cfg, *attempts - 1));
    if (until >= deadline)
        return false;
    while (running(p) && shp__now_ns() < until)
        shp__futex_wait((uint32_t *)&p->stop_word, 0, until);
    atomic_fetch_add_explicit(&p->retries, 1, memory_order_relaxed);
    return running(p);
}

/* The reaper holds the shards' idle connections while sweep_seq is odd;
 * they come back within its sweep, which runs no callback.  Yields while it
 * is odd, at most SHP__SWEEP_YIELDS times and never past deadline (< 0:
 * none), so that an acquirer the reaper cannot preempt (SCHED_FIFO on its
 * CPU) never spins for it: it goes on to connect or wait, and a connection
 * the sweep pushes back reaches a waiter through put_idle_to. */
#define SHP__SWEEP_YIELDS 16

/* Puts back c, which the acquire holds (CHECKING: taken for validation; or
 * IN_USE: handed over or acquired, as its borrow) but will not hand out as
 * its deadline passed: idle on a shard, unvalidated and without a reset, or
 * closed if stale; orphaned by destroy meanwhile, given up.  Caller holds a
 * pool reference. */
static void put_back(shp_pool *p, shp_conn *c)
{
    uint32_t s = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (s == SHP__IN_USE) {
        if (!atomic_compare_exchange_strong(&c->state, &s, SHP__IDLE)) {
            give_up(p, c, SHP__CLOSE_SHUTDOWN); /* orphaned: closes it, drops its ref */
            return;
        }
    } else {
        atomic_store_explicit(&c->state, SHP__IDLE, memory_order_relaxed);
    }
    atomic_store_explicit(&c->t_acquired, 0, memory_order_relaxed);
    atomic_store_explicit(&c->gate, c->expires, memory_order_relaxed);
    shp__rcu_lock();
    /* inside the section: destroy's grace period after STOPPING orders our
     * push before its drain, or we see STOPPING and close it */
    if (!running(p)) {
        shp__rcu_unlock();
        shp__close(p, c, SHP__CLOSE_SHUTDOWN);
        return;
    }
    bool kept = shp__put_idle(p, c, NULL);
    shp__rcu_unlock();
    if (!kept)
        shp__close(p, c, SHP__CLOSE_EVICTED);
}

/* The deadline acquire_prepared gives the acquire that replaces a refused
 * connection (acquire_again), so that it is the same, not recomputed; -2
 * when none is set. */
static _Thread_local int64_t again_deadline = -2;

static void wait_sweep(shp_pool *p, int64_t deadline)
{
    for (int i = 0; i < SHP__SWEEP_YIELDS &&
                    (atomic_load_explicit(&p->sweep_seq, memory_order_acquire) & 1);
         i++) {
        if (past(deadline))
            return;
        sched_yield();
    }
}

SHP__COLD static int acquire_slow(shp_pool *p, shp_conn **out, int64_t timeout_ns, shp_conn *popped,
                                  int64_t t0)
{
    int64_t start = t0 > 0 ? t0 : shp__now_ns();
    /* Fixed here, once (or by acquire_prepared, for a replacement): every
     * callback, backoff and wait below gets what is left of it, nothing
     * restarts it, and no callback starts after it (past()). */
    int64_t deadline = t0 < 0 && again_deadline != -2 ? again_deadline
                                                      : acquire_deadline(p, timeout_ns, start);
    int64_t since = -1; /* wait_turn's: first enqueue of this acquire */
    int ret, sweep_retries = 0;
    bool uncached = false; /* this acquire moved thread caches back once */
    unsigned attempts = 0;
    bool retry = false; /* a retry verdict brought us back here */
    int last_err = 0; /* a connect error we retried after: reported over a timeout */
    /* Entered inside the caller's read-side section; from here on a
     * reference keeps the pool alive across callbacks and waits. */
    shp__ref(p);
    if (popped)
        atomic_store_explicit(&popped->state, SHP__CHECKING, memory_order_relaxed);
    shp__rcu_unlock();
    if (t0 >= 0) /* the first attempt of a shp_acquire (see acquire_prepared) */
        acq_error.err = 0; /* shp_acquire_last_error describes this acquire */
    if (popped) {
        if (past(deadline)) {
            put_back(p, popped);
            ret = -ETIMEDOUT;
            atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
            goto done;
        }
        ret = checked_for(p, popped, out, COUNT_HOME, deadline);
        if (ret <= 0)
            goto done;
    }
    for (;;) {
        /* The state check, the steal and the take (or the reservation) share
         * one read-side section, so destroy's grace period after STOPPING
         * finds the connection borrowed (IN_USE), being checked (with our
         * reference), or counted in cap - never lost in between. */
        shp__rcu_lock();
        if (!running(p)) {
            shp__rcu_unlock();
            ret = -ESHUTDOWN;
            goto done;
        }
        uint32_t sweep = atomic_load_explicit(&p->sweep_seq, memory_order_acquire);
        shp_conn *c = shp__steal(p, shp__home(p));
        if (c && !needs_validation(p, c)) {
            take(p, c);
            shp__rcu_unlock();
            *out = c;
            ret = 0;
            goto done;
        }
        if (!c && sweep_retries < 8 &&
            ((sweep & 1) || atomic_load_explicit(&p->sweep_seq, memory_order_acquire) != sweep)) {
            /* The reaper held the shards' connections while we looked. */
            shp__rcu_unlock();
            sweep_retries++;
            wait_sweep(p, deadline);
            continue;
        }
        if (!c && !uncached) {
            /* Idle connections may sit in other threads' caches: move them
             * to the shards and steal again, before connecting or waiting. */
            shp__rcu_unlock();
            uncached = true;
            shp__uncache(p, shp__parked_fresh, NULL);
            continue;
        }
        if (c)
            atomic_store_explicit(&c->state, SHP__CHECKING, memory_order_relaxed);
        if (!c && shp__breaker_open(p) &&
            SHP__CAP_LIVE(atomic_load(&p->cap)) < p->cfg.max_size) {
            /* We would have to connect, and the backend is known down. */
            shp__rcu_unlock();
            ret = -EHOSTDOWN;
            goto done;
        }
        ret = c ? 0 : shp__reserve(p);
        shp__rcu_unlock();
        if (c) {
            if (past(deadline)) { /* validation ate the time: do not start another */
                put_back(p, c);
                ret = -ETIMEDOUT;
                atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
                goto done;
            }
            ret = checked_for(p, c, out, COUNT_SLOW, deadline);
            if (ret <= 0)
                goto done;
            continue;
        }
        if (ret == 0 && past(deadline)) {
            unreserve(p);
            ret = last_err ? last_err : -ETIMEDOUT;
            atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
            goto done;
        }
        if (ret == 0) {
            ret = create_for(p, out, deadline);
            if (ret == 1 || (ret < 0 && retry_after_failure(p, ret, &attempts, deadline))) {
                last_err = ret < 0 ? ret : last_err;
                continue;
            }
            goto done;
        }
        if (deadline < 0) { /* may not wait */
            if (!last_err)
                atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
            ret = last_err ? last_err : -EAGAIN;
            goto done;
        }
        if (retry && shp__now_ns() >= deadline) {
            /* Lost the race for a pushed connection, and out of time.  We
             * hold no claim on anything: whoever took it has it. */
            atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
            ret = last_err ? last_err : -ETIMEDOUT;
            goto done;
        }
        ret = wait_turn(p, out, deadline, &since);
        retry = false;
        switch (ret) {
        case SHP__W_CONN:
            /* Handed over already borrowed (IN_USE, use counted), outside
             * any read-side section: destroy's orphan scan may have taken
             * it meanwhile, so claim it by CAS before checking it. */
            if (needs_validation(p, *out)) {
                if (past(deadline)) {
                    put_back(p, *out);
                    ret = -ETIMEDOUT;
                    atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
                    goto done;
                }
                uint32_t s = SHP__IN_USE;
                if (!atomic_compare_exchange_strong(&(*out)->state, &s, SHP__CHECKING)) {
                    give_up(p, *out, SHP__CLOSE_SHUTDOWN); /* orphaned: closes it, drops its ref */
                    ret = -ESHUTDOWN;
                    goto done;
                }
                ret = checked_for(p, *out, out, COUNT_NONE, deadline);
                if (ret <= 0)
                    goto done;
                continue;
            }
            ret = 0;
            if (!running(p)) {
                give_up(p, *out, SHP__CLOSE_SHUTDOWN);
                ret = -ESHUTDOWN;
            }
            goto done;
        case SHP__W_GRANT:
            if (past(deadline)) {
                unreserve(p);
                ret = last_err ? last_err : -ETIMEDOUT;
                atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
                goto done;
            }
            ret = create_for(p, out, deadline);
            if (ret == 1 || (ret < 0 && retry_after_failure(p, ret, &attempts, deadline))) {
                last_err = ret < 0 ? ret : last_err;
                continue;
            }
            goto done;
        case SHP__W_RETRY:
            /* A connection was pushed for us to compete for: steal again
             * from the top; if someone else was faster, queue again. */
            retry = true;
            continue;
        case SHP__W_SHUTDOWN:
            ret = -ESHUTDOWN;
            goto done;
        case SHP__W_DOWN:
            ret = last_err ? last_err : -EHOSTDOWN;
            goto done;
        default:
            atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
            if (last_err)
                ret = last_err;
            goto done;
        }
    }
done:
    if (ret < 0)
        atomic_fetch_add_explicit(&p->acquire_failures, 1, memory_order_relaxed);
#ifndef SHP_NO_METRICS
    if (t0 >= 0) {
        /* Slow acquires are all timed, with weight 1 (see metrics.h). */
        int64_t t1 = shp__now_ns();
        shp__hist_record(p->shards[shp__home(p)].acq_hist, t1 - start, 1);
        if (ret == 0 && t0 > 0) {
            atomic_store_explicit(&(*out)->t_acquired, t1, memory_order_relaxed);
            atomic_store_explicit(&(*out)->gate, INT64_MIN, memory_order_relaxed);
        }
    }
#endif
    shp__unref(p);
    return ret;
}

SHP__COLD static int acquire_stopped(shp_pool *p)
{
    acq_error.err = 0;
    atomic_fetch_add_explicit(&p->acquire_failures, 1, memory_order_relaxed);
    shp__rcu_unlock();
    return -ESHUTDOWN;
}

#ifndef SHP_NO_METRICS
/* A timed fast-path hit (1 in metrics_sample): recorded with that weight,
 * and its hold time will be (see metrics.h).  Inside the read-side section. */
SHP__COLD static void timed_hit(shp_pool *p, shp_conn *c, int64_t t0)
{
    int64_t t1 = shp__now_ns();
    shp__hist_record(p->shards[shp__home(p)].acq_hist, t1 - t0, p->metrics_sample);
    atomic_store_explicit(&c->t_acquired, t1, memory_order_relaxed);
    atomic_store_explicit(&c->gate, INT64_MIN, memory_order_relaxed); /* release: general path */
}
#endif

/* A hit: borrowed c (IN_USE) goes out.  Inside the read-side section,
 * which it leaves. */
static inline __attribute__((always_inline)) int acquire_hit(shp_pool *p, shp_conn *c,
                                                            shp_conn **out, int64_t t0, bool fast)
{
    count_use(c);
#ifndef SHP_NO_METRICS
    if (t0 > 0)
        timed_hit(p, c, t0);
#else
    (void)p;
    (void)t0;
#endif
    if (fast)
        shp__rcu_unlock_fast();
    else
        shp__rcu_unlock();
    *out = c;
    return 0;
}

/* The thread cache missed: pop from the home shard.  Inside the read-side
 * section, which it leaves. */
static inline __attribute__((always_inline)) int acquire_shard_t(shp_pool *p, shp_conn **out,
                                                                int64_t timeout_ns, int64_t t0)
{
    unsigned home = shp__home(p);
    home_hint = home;
    shp_conn *c = (shp_conn *)shp__stack_pop(&p->shards[home].free);
    if (SHP_UNLIKELY(c == NULL) || SHP_UNLIKELY(needs_validation(p, c)))
        return acquire_slow(p, out, timeout_ns, c, t0); /* unlocks */
    atomic_store_explicit(&c->state, SHP__IN_USE, memory_order_relaxed);
    return acquire_hit(p, c, out, t0, false);
}

/* acquire_shard_t of an untimed acquire, out of line: its CPU lookup may
 * call, which would cost the cache hit a stack frame. */
static __attribute__((noinline)) int acquire_shard(shp_pool *p, shp_conn **out, int64_t timeout_ns)
{
    return acquire_shard_t(p, out, timeout_ns, 0);
}

/* acquire_one's body, inside the read-side section it leaves.  t0: the
 * CLOCK_MONOTONIC start of a timed acquire; 0 untimed (a constant in the
 * untimed inlined copy, which so has no timing code: only its slow path is
 * timed); < 0 not recorded at all (a retry inside one shp_acquire, which is
 * recorded once).  Every exit but the hit is a tail call.  fast: called
 * from shp_acquire's fast path (see shp__rcu_lock_fast). */
static inline __attribute__((always_inline)) int acquire_locked(shp_pool *p, shp_conn **out,
                                                               int64_t timeout_ns, int64_t t0,
                                                               bool fast)
{
    if (SHP_UNLIKELY(atomic_load_explicit(&p->state, memory_order_relaxed) != SHP__RUNNING))
        return acquire_stopped(p); /* unlocks */
    shp_conn *c = tlc_claim(p);
    if (SHP_UNLIKELY(c == NULL))
        return t0 == 0 ? acquire_shard(p, out, timeout_ns) : acquire_shard_t(p, out, timeout_ns, t0);
    if (SHP_UNLIKELY(needs_validation(p, c)))
        return acquire_slow(p, out, timeout_ns, c, t0); /* unlocks */
    return acquire_hit(p, c, out, t0, fast);
}

/* One acquire attempt (arguments checked here); see acquire_locked. */
static inline __attribute__((always_inline)) int acquire_one(shp_pool *p, shp_conn **out,
                                                            int64_t timeout_ns, int64_t t0)
{
    if (SHP_UNLIKELY(!p || !out || p->magic != SHP__POOL_MAGIC))
        return shp__bad_pool(p, "acquire_bad_arg");
    shp__rcu_lock();
    return acquire_locked(p, out, timeout_ns, t0, false);
}

/* acquire_one out of line, for the refusal path (keeps shp_acquire small);
 * not recorded in the histograms: the first attempt was. */
SHP__COLD static int acquire_again(shp_pool *p, shp_conn **out, int64_t timeout_ns)
{
    return acquire_one(p, out, timeout_ns, -1);
}

#ifndef SHP_NO_METRICS
/* Per-thread draw deciding which acquires are timed: each acquire of a pool
 * is timed independently with probability 1/metrics_sample, whatever the
 * thread's pattern across pools (a countdown would alias with it).  A
 * 32-bit LCG: compared against a threshold, only its high bits matter. */
static _Thread_local uint32_t sample_rng;

SHP__COLD static int acquire_timed(shp_pool *p, shp_conn **out, int64_t timeout_ns)
{
    return acquire_one(p, out, timeout_ns, shp__now_ns());
}
#endif

/* An acquire whose prepare refusals ended it: counted as a failed acquire
 * (and a timeout for -ETIMEDOUT).  Returns err. */
static int refusal_failed(shp_pool *p, int err)
{
    if (err == -ETIMEDOUT)
        atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->acquire_failures, 1, memory_order_relaxed);
    return err;
}

/* Runs ops.prepare on *out, just acquired (borrowed, so the pool is alive),
 * with the acquire's deadline visible to it (shp_connect_deadline_ns).  On
 * a refusal it closes the connection and acquires another within what is
 * left of the same deadline (deadline < 0: an acquire that may not wait
 * tries without waiting), never past it: -ETIMEDOUT once it has passed,
 * -EIO once more connections than max_size were refused in a row.
 * Returns 0 with *out prepared, or a negative errno. */
SHP__COLD static int acquire_prepared(shp_pool *p, shp_conn **out, int64_t deadline)
{
    for (unsigned tries = 0;; tries++) {
        if (past(deadline)) {
            /* acquired at its deadline: no prepare starts after it; the
             * connection goes back as it was (its cleanup, if any, still
             * pending for the next hand-out) */
            shp__ref(p);
            put_back(p, *out);
            shp__unref(p);
            return refusal_failed(p, -ETIMEDOUT);
        }
        int64_t outer = connect_deadline;
        connect_deadline = deadline;
        shp__error_detail_clear();
        int r = p->ops.prepare(p->ops.ctx, (*out)->handle);
        connect_deadline = outer;
        if (r == 0)
            return 0;
        shp__callback_failed(p, "prepare", r < 0 ? r : -EIO, SHP_LOG_INFO, *out);
        /* its borrow never reached the caller: no hold time */
        atomic_store_explicit(&(*out)->t_acquired, 0, memory_order_relaxed);
        shp_release_broken(*out);
        if (tries >= p->cfg.max_size) /* every connection refused: give up */
            return refusal_failed(p, -EIO);
        int64_t left = 0;
        if (deadline >= 0 && (left = deadline - shp__now_ns()) <= 0)
            return refusal_failed(p, -ETIMEDOUT);
        again_deadline = deadline;
        int ret = acquire_again(p, out, left);
        again_deadline = -2;
        if (ret != 0)
            return ret;
    }
}

/* Everything shp_acquire's fast path leaves out: bad arguments, a thread's
 * first call (urcu-bp registration), a timed acquire, ops.prepare.  r: the
 * acquire's sampling draw. */
static __attribute__((noinline)) int acquire_general(shp_pool *p, shp_conn **out,
                                                     int64_t timeout_ns, uint32_t r)
{
    if (SHP_UNLIKELY(!p || !out || p->magic != SHP__POOL_MAGIC))
        return acquire_one(p, out, timeout_ns, 0); /* reports it */
    /* With a prepare hook the acquire's deadline runs from here, through
     * the hook and any replacement of a refused connection. */
    int64_t deadline = p->ops.prepare ? acquire_deadline(p, timeout_ns, shp__now_ns()) : -1;
    int ret;
#ifndef SHP_NO_METRICS
    if (r <= p->sample_below)
        ret = acquire_timed(p, out, timeout_ns);
    else
        ret = acquire_one(p, out, timeout_ns, 0);
#else
    (void)r;
    ret = acquire_one(p, out, timeout_ns, 0);
#endif
    if (SHP_UNLIKELY(ret == 0 && p->ops.prepare))
        return acquire_prepared(p, out, deadline);
    return ret;
}

int shp_acquire(shp_pool *p, shp_conn **out, int64_t timeout_ns)
{
#ifndef SHP_NO_METRICS
    uint32_t r = sample_rng * 1664525u + 1013904223u;
    sample_rng = r;
    if (SHP_UNLIKELY(!p || !out || p->magic != SHP__POOL_MAGIC || r <= p->fast_below ||
                     !shp__rcu_registered()))
        return acquire_general(p, out, timeout_ns, r);
#else
    if (SHP_UNLIKELY(!p || !out || p->magic != SHP__POOL_MAGIC || p->fast_below ||
                     !shp__rcu_registered()))
        return acquire_general(p, out, timeout_ns, UINT32_MAX);
#endif
    shp__rcu_lock_fast();
    return acquire_locked(p, out, timeout_ns, 0, true);
}

/* ---------------------------------------------------------------- release */

/* Releases an orphan (its pool was destroyed while it was borrowed). */
SHP__COLD static int release_orphan(shp_pool *p, shp_conn *c)
{
    uint32_t s = SHP__ORPHANED;
    if (!atomic_compare_exchange_strong(&c->state, &s, SHP__CLOSING))
        return shp__misuse(p, -EALREADY, "release_twice", c);
    shp__close(p, c, SHP__CLOSE_SHUTDOWN);
    shp__unref(p);
    return -ESHUTDOWN;
}

SHP__COLD static int not_borrowed(shp_pool *p, shp_conn *c, uint32_t s)
{
    if (s == SHP__ORPHANED)
        return release_orphan(p, c);
    return shp__misuse(p, -EALREADY, "release_twice", c);
}

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

/* Whether c cannot be a connection pointer at all: NULL or in the first
 * page (where no allocation lives); one compare, like a NULL test. */
static inline bool not_a_pointer(const shp_conn *c)
{
    return (uintptr_t)c < 4096;
}

SHP__COLD static int release_bad(shp_pool *expect, shp_conn *c)
{
    if (not_a_pointer(c))
        return shp__misuse(expect, -EINVAL, c ? "release_bad_pointer" : "release_null", c);
    if (c->magic != SHP__CONN_MAGIC)
        return shp__misuse(expect, -EBADF, "release_not_a_conn", c);
    if (shp__inherited(c->pool)) /* nothing is closed: it is the parent's */
        return shp__misuse(c->pool, -ECHILD, "release_inherited", c);
    if (expect && expect != c->pool)
        return shp__misuse(expect, -EXDEV, "release_foreign", c);
    return not_borrowed(c->pool, c, atomic_load_explicit(&c->state, memory_order_acquire));
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

/* Releases borrowed c, kept (not stale, pool running, last_used set), to
 * shard sh (NULL: the calling CPU's) or a waiter: the push path, by CAS
 * from IN_USE.  Inside a read-side section, which it leaves. */
static __attribute__((noinline)) int release_push(shp_pool *p, shp_conn *c,
                                                  struct shp__shard *sh)
{
    if (!sh) {
        home_hint = shp__home(p);
        sh = &p->shards[home_hint];
    }
    uint32_t s = SHP__IN_USE;
    if (SHP_UNLIKELY(!atomic_compare_exchange_strong_explicit(
            &c->state, &s, SHP__IDLE, memory_order_acq_rel, memory_order_acquire))) {
        shp__rcu_unlock();
        return not_borrowed(p, c, s);
    }
    put_idle_to(p, c, sh);
    shp__rcu_unlock();
    return 0;
}

/* A waiter queued while we parked a connection in slot e: take it back, if
 * nobody claimed it yet, and hand it over.  Inside a read-side section,
 * which it leaves. */
SHP__COLD static int release_unpark(shp_pool *p, struct shp__tlc *e, struct shp__shard *sh)
{
    shp_conn *c = e->conn;
    uint32_t s = SHP__CACHED;
    e->conn = NULL;
    if (atomic_compare_exchange_strong(&c->state, &s, SHP__IDLE))
        put_idle_to(p, c, sh ? sh : &p->shards[shp__home(p)]);
    shp__rcu_unlock();
    return 0;
}

/* Releases borrowed c, kept (not stale, pool running, last_used set): parks
 * it in this thread's cache when the slot is free, its shard (sh; NULL: the
 * calling CPU's) has other idle connections and nobody waits (a plain
 * store: we own it); else the push path.  Inside a read-side section,
 * which it leaves.  fast: called from shp_release's fast path (see
 * shp__rcu_lock_fast; the pool has membarrier). */
static inline __attribute__((always_inline)) int release_idle(shp_pool *p, shp_conn *c,
                                                             struct shp__shard *sh, bool fast)
{
    struct shp__tlc *e = tlc_slot(p);
    if (SHP_UNLIKELY(!p->tcache) || SHP_UNLIKELY(e->conn && e->pool == p->id) ||
        SHP_UNLIKELY(shp__stack_empty(&(sh ? sh : hint_shard(p))->free)) ||
        SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, memory_order_relaxed)))
        return release_push(p, c, sh);
    atomic_store_explicit(&c->state, SHP__CACHED, SHP__PARK_ORDER);
    e->pool = p->id;
    e->conn = c;
    if (fast)
        shp__fence_light_membarrier();
    else
        shp__fence_light();
    if (SHP_UNLIKELY(atomic_load_explicit(&p->nwaiters, SHP__PARK_LOAD_ORDER)))
        return release_unpark(p, e, sh);
    if (fast)
        shp__rcu_unlock_fast();
    else
        shp__rcu_unlock();
    return 0;
}

/* Every release: checks, the reset hook, closes, hold-time recording, then
 * release_idle.  shp_release's fast path handles the common case itself. */
static __attribute__((noinline)) int release_impl(shp_pool *expect, shp_conn *c, bool broken)
{
    if (SHP_UNLIKELY(not_a_pointer(c) || c->magic != SHP__CONN_MAGIC ||
                     (expect && expect != c->pool) || c->pool->magic != SHP__POOL_MAGIC ||
                     atomic_load_explicit(&c->state, memory_order_acquire) != SHP__IN_USE))
        return release_bad(expect, c);
    shp_pool *p = c->pool;
    int64_t now = tick(p);
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

int shp_release(shp_conn *c)
{
    if (SHP_UNLIKELY(not_a_pointer(c) || c->magic != SHP__CONN_MAGIC ||
                     atomic_load_explicit(&c->state, memory_order_acquire) != SHP__IN_USE))
        return release_bad(NULL, c);
    shp_pool *p = c->pool;
    int64_t now = tick(p);
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

int shp_release_broken(shp_conn *c) { return release_impl(NULL, c, true); }

int shp_pool_release(shp_pool *p, shp_conn *c)
{
    if (!p || p->magic != SHP__POOL_MAGIC)
        return shp__bad_pool(p, "release_bad_pool");
    return release_impl(p, c, false);
}

/* NULL for a connection of a pool inherited across fork(): its handle is
 * the parent's, and using it would share the parent's socket. */
void *shp_conn_handle(const shp_conn *c)
{
    return c && !shp__inherited(c->pool) ? c->handle : NULL;
}
shp_pool *shp_conn_pool(const shp_conn *c) { return c ? c->pool : NULL; }

/* ---------------------------------------------------------------- create */

static int build_cpu_map(shp_pool *p)
{
    long n = sysconf(_SC_NPROCESSORS_CONF);
    if (n < 1)
        n = 1;
    p->ncpu_map = (unsigned)n;
    p->nshards = p->cfg.shards ? p->cfg.shards : (unsigned)n;
    uint16_t *map = malloc(sizeof *map * (size_t)n);
    if (!map)
        return -ENOMEM;
    for (long i = 0; i < n; i++)
        map[i] = (uint16_t)((unsigned long)i % p->nshards);
    p->cpu_shard = map;
    return 0;
}

int shp_pool_create(shp_pool **out, const shp_config *cfg_in, const shp_ops *ops)
{
    shp_config cfg;
    if (!out || !ops || !ops->connect || !ops->close) {
        shp__log(SHP_LOG_ERROR, cfg_in ? cfg_in->name : NULL,
                 "event=create_bad_arg reason=\"NULL pool, ops, connect or close\"");
        return -EINVAL;
    }
    if (cfg_in)
        cfg = *cfg_in;
    else
        shp_config_init(&cfg);
    int err = shp_config_validate(&cfg);
    if (err)
        return err;
    if (cfg.max_connecting == 0)
        cfg.max_connecting = 4;
    if (cfg.metrics_sample == 0)
        cfg.metrics_sample = 256;

    shp_pool *p = aligned_alloc(SHP_CACHELINE, sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    p->ops = *ops;
    snprintf(p->name, sizeof p->name, "%s", cfg.name ? cfg.name : "pool");
    p->cfg.name = p->name;
    if (build_cpu_map(p) ||
        !(p->shards = aligned_alloc(SHP_CACHELINE, sizeof *p->shards * p->nshards))) {
        free((void *)p->cpu_shard);
        free(p);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < p->nshards; i++) {
        shp__stack_init(&p->shards[i].free);
        atomic_init(&p->shards[i].steals, 0);
        p->shards[i].acq_hist = p->shards[i].hold_hist = NULL;
    }
    if (shp__metrics_init(p)) {
        shp__metrics_free(p);
        free(p->shards);
        free((void *)p->cpu_shard);
        free(p);
        return -ENOMEM;
    }
    p->validate_idle_ns = cfg.validate_idle_ns;

    p->handoff_after_ns = cfg.handoff_after_ns;
    p->metrics_sample = cfg.metrics_sample;
    p->sample_below = (uint32_t)(UINT32_MAX / cfg.metrics_sample);
    p->max_uses = cfg.max_uses ? cfg.max_uses : UINT64_MAX;
    shp__membarrier_init();
    /* The fast paths need membarrier, ours and liburcu's (shp__rcu_lock_fast,
     * shp__fence_light_membarrier); without, every call takes the general
     * paths, which test for it. */
    bool fast = shp__rcu_fast_ok() && __atomic_load_n(&shp__membarrier_ok, __ATOMIC_RELAXED) > 0;
#ifndef SHP_NO_METRICS
    p->fast_below = ops->prepare || !fast ? UINT32_MAX : p->sample_below;
#else
    p->fast_below = ops->prepare || !fast ? UINT32_MAX : 0;
#endif
    p->fast_max_uses = ops->reset || !fast ? 0 : p->max_uses;
    p->tcache = cfg.thread_cache;
    atomic_init(&p->tick, shp__now_ns());
    atomic_init(&p->refs, 1);
    atomic_init(&p->state, SHP__RUNNING);
    pthread_mutex_init(&p->wq_lock, NULL);
    pthread_mutex_init(&p->reg_lock, NULL);
    pthread_mutex_init(&p->rp_lock, NULL);
    pthread_mutex_init(&p->mx_lock, NULL);
    pthread_mutex_init(&p->err_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->rp_cond, &ca);
    pthread_cond_init(&p->rp_done, NULL);
    pthread_condattr_destroy(&ca);
    shp__reg_init(&p->reg);
    static _Atomic uint64_t last_id;
    p->id = atomic_fetch_add_explicit(&last_id, 1, memory_order_relaxed) + 1;
    p->magic = SHP__POOL_MAGIC;
    if ((err = shp__fork_track(p)) != 0) {
        shp__log(SHP_LOG_ERROR, p->name, "event=create_failed step=pthread_atfork err=%s",
                 shp_err_name(err));
        shp_pool_destroy(p, 0);
        return err;
    }

    for (unsigned i = 0; i < cfg.min_size; i++) {
        shp_conn *c = NULL;
        if (shp__reserve(p) != 0 || shp__create(p, &c, SHP__IDLE) != 0)
            break; /* logged; the reaper refills to min */
        shp__rcu_lock();
        bool kept = shp__put_idle(p, c, &p->shards[i % p->nshards]); /* spread over the CPUs */
        shp__rcu_unlock();
        if (!kept) /* stale: not before create returns, but never ignored */
            shp__close(p, c, SHP__CLOSE_EVICTED);
    }
    err = pthread_create(&p->reaper, NULL, shp__reaper_main, p);
    if (err) {
        shp__log(SHP_LOG_ERROR, p->name, "event=reaper_start_failed err=%d", err);
        shp_pool_destroy(p, 0);
        return -err;
    }
    p->reaper_started = true;
    shp__monitor_pool_added(p);
    shp__log(SHP_LOG_INFO, p->name, "event=created min=%u max=%u shards=%u", cfg.min_size,
             cfg.max_size, p->nshards);
    *out = p;
    return 0;
}

/* ---------------------------------------------------------------- destroy */

static void drain_idle(shp_pool *p)
{
    shp__uncache(p, NULL, NULL);
    for (unsigned i = 0; i < p->nshards; i++) {
        shp_conn *c;
        shp__rcu_lock();
        while ((c = (shp_conn *)shp__stack_pop(&p->shards[i].free)) != NULL) {
            shp__rcu_unlock();
            shp__close(p, c, SHP__CLOSE_SHUTDOWN);
            shp__rcu_lock();
        }
        shp__rcu_unlock();
    }
}

static uint32_t live_now(shp_pool *p)
{
    return SHP__CAP_LIVE(atomic_load_explicit(&p->cap, memory_order_seq_cst));
}

/* Marks every borrowed connection ORPHANED, each holding a pool reference,
 * so that its late release closes it and the last one frees the pool. */
static unsigned orphan_borrowed(shp_pool *p)
{
    unsigned n = 0;
    struct shp__reg *node;
    shp__rcu_lock();
    shp__reg_for_each(node, &p->reg) {
        shp_conn *c = caa_container_of(node, shp_conn, reg);
        uint32_t s = SHP__IN_USE;
        shp__ref(p);
        if (atomic_compare_exchange_strong(&c->state, &s, SHP__ORPHANED))
            n++;
        else
            shp__unref(p);
    }
    shp__rcu_unlock();
    return n;
}

/* Stops p (its state already moved RUNNING -> STOPPING by the caller) and
 * drains it; see shp_pool_shutdown.  Leaves the owner's reference. */
static int shutdown_impl(shp_pool *p, int64_t drain_timeout_ns)
{
    atomic_store(&p->stop_word, 1);
    shp__futex_wake((uint32_t *)&p->stop_word, INT32_MAX);
    pthread_mutex_lock(&p->wq_lock);
    p->wq_closed = true;
    for (struct shp__waiter *w = p->wq_head, *next; w; w = next) {
        next = w->next;
        waiter_signal(w, SHP__W_SHUTDOWN);
    }
    p->wq_head = p->wq_tail = NULL;
    atomic_store(&p->nwaiters, 0);
    pthread_mutex_unlock(&p->wq_lock);
    if (p->reaper_started)
        shp__reaper_stop(p);
    shp__monitor_pool_removed(p);

    /* Every acquire or release that saw RUNNING has finished its read-side
     * section: later ones see STOPPING and close what they return. */
    shp__rcu_sync();
    int64_t deadline = drain_timeout_ns < 0 ? -1 : shp__add_sat(shp__now_ns(), drain_timeout_ns);
    for (;;) {
        drain_idle(p);
        uint32_t seq = atomic_load_explicit(&p->drain_seq, memory_order_acquire);
        if (live_now(p) == 0)
            break;
        int64_t now = shp__now_ns();
        if (deadline >= 0 && now >= deadline)
            break;
        int64_t until = now + 10 * 1000000LL; /* re-check at least every 10 ms */
        if (deadline >= 0 && deadline < until)
            until = deadline;
        shp__futex_wait((uint32_t *)&p->drain_seq, seq, until);
    }
    unsigned orphans = 0;
    if (live_now(p) != 0) {
        orphans = orphan_borrowed(p);
        shp__rcu_sync();
        drain_idle(p);
    }
    uint32_t left = live_now(p);
    atomic_store(&p->state, SHP__STOPPED);
    shp__log(left ? SHP_LOG_WARN : SHP_LOG_INFO, p->name,
             "event=shut_down created=%" PRIu64 " closed=%" PRIu64 " orphaned=%u pending=%u",
             atomic_load(&p->created), atomic_load(&p->closed), orphans, left);
    return left ? -EBUSY : 0;
}

int shp_pool_shutdown(shp_pool *p, int64_t drain_timeout_ns)
{
    if (!p || p->magic != SHP__POOL_MAGIC)
        return shp__bad_pool(p, "shutdown_bad_pool");
    int expect = SHP__RUNNING;
    if (!atomic_compare_exchange_strong(&p->state, &expect, SHP__STOPPING))
        return shp__misuse(p, -EALREADY, "shutdown_twice", p);
    return shutdown_impl(p, drain_timeout_ns);
}

int shp_pool_destroy(shp_pool *p, int64_t drain_timeout_ns)
{
    if (!p || p->magic != SHP__POOL_MAGIC)
        return shp__bad_pool(p, "destroy_bad_pool");
    if (atomic_exchange(&p->destroyed, true))
        return shp__misuse(p, -EINVAL, "destroy_twice", p);
    int ret, expect = SHP__RUNNING;
    if (atomic_compare_exchange_strong(&p->state, &expect, SHP__STOPPING))
        ret = shutdown_impl(p, drain_timeout_ns);
    else /* shut down before: what is still out is the orphans' business */
        ret = live_now(p) ? -EBUSY : 0;
    if (ret == 0) {
        /* Be done when we return: deferred recycling has run, and closers
         * that lowered live just before we looked have dropped their refs,
         * so ours is the last and the pool is freed before we return. */
        shp_quiesce();
        while (atomic_load(&p->refs) > 1)
            sched_yield();
        shp__unref(p);
        shp_quiesce();
    } else {
        shp__unref(p);
    }
    return ret;
}

void shp_quiesce(void)
{
    /* Twice: a connection's recycle callback may drop the pool's last
     * reference and so queue the pool's own free behind the first barrier. */
    shp__rcu_barrier();
    shp__rcu_barrier();
}
