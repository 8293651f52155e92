/*
 * fork.c - what a process made by fork() may do with shardpool.
 *
 * The contract (shardpool/pool.h, "fork()"): in the child, every pool it
 * inherited from its parent is unusable and says so at once - every call on
 * it, and every release of one of its connections, returns -ECHILD - and
 * nothing of it is closed (its connections belong to the parent, which goes
 * on using them) or freed (its memory goes with the child).  Pools the child
 * creates work fully, destroy and shp_quiesce included.  The parent is
 * unaffected.
 *
 * How.  One pthread_atfork triple, registered when the library is loaded (a
 * constructor: registering it lazily races a fork that lands inside the
 * registration, and a child would then run it twice).  Its prepare handler
 * takes, in this order - one global order, each lock before the ones its
 * holders may take:
 *   1. the monitor's lock (code under it logs);
 *   2. the call_rcu gate: no thread of ours is inside urcu_bp_call_rcu or
 *      urcu_bp_barrier at the fork, because liburcu's queue enqueue is two
 *      stores, and a child forked between them inherits a queue whose link
 *      nobody will ever write (its call_rcu thread, and so every barrier,
 *      waits forever).  Callbacks are exempt: they run on call_rcu threads,
 *      which step 3 parks between callbacks, after their enqueues;
 *   3. liburcu's call_rcu threads parked between callbacks
 *      (urcu_bp_call_rcu_before_fork), then liburcu-bp's grace-period and
 *      reader registry locks (urcu_bp_before_fork);
 *   4. the pool list's lock, then the log sink's.
 * The parent handler releases all of it in reverse.  The child handler marks
 * every listed pool inherited - its magic (so that every entry point's
 * argument check answers -ECHILD) and its state (so that the release fast
 * path, which reads the state and not the magic, takes the general path that
 * checks) - empties the list, forgets the forking thread's thread cache (its
 * parked connections are the parent's), releases our locks, prunes
 * liburcu-bp's registry of the threads that did not survive, and starts a
 * call_rcu thread for the child (urcu_bp_call_rcu_after_fork_child); without
 * the last two the child's first grace period or barrier waits forever.
 * Callbacks queued in the parent that liburcu runs in the child (it moves
 * them to the child's call_rcu thread) skip inherited pools: their locks may
 * be held by threads that do not exist in the child.
 *
 * An application that also calls liburcu-bp's fork hooks itself must not:
 * they are not reentrant.
 */
#include "fork.h"
#include "log_internal.h"
#include "monitor.h"
#include "tcache.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static shp_pool *pools; /* live pools of this process (pools_lock) */
static int hooks_err;   /* pthread_atfork's, from the constructor */

/* The call_rcu gate (step 2 above). */
static _Atomic int rcu_inflight;      /* threads inside an enqueue or a barrier */
static _Atomic bool fork_pending;     /* set by the prepare handler */
static _Thread_local bool in_callback; /* this thread runs one of our RCU callbacks */

static void gate_enter(void)
{
    if (in_callback)
        return;
    for (;;) {
        atomic_fetch_add_explicit(&rcu_inflight, 1, memory_order_seq_cst);
        if (!atomic_load_explicit(&fork_pending, memory_order_seq_cst))
            return;
        atomic_fetch_sub_explicit(&rcu_inflight, 1, memory_order_seq_cst);
        while (atomic_load_explicit(&fork_pending, memory_order_acquire))
            sched_yield(); /* a fork takes milliseconds */
    }
}

static void gate_leave(void)
{
    if (!in_callback)
        atomic_fetch_sub_explicit(&rcu_inflight, 1, memory_order_release);
}

void shp__call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
    SHP__TSAN_RELEASE();
    gate_enter();
    shp__test_point(NULL, SHP__TP_RCU_ENQUEUE, head);
    urcu_bp_call_rcu(head, fn);
    gate_leave();
}

void shp__rcu_barrier(void)
{
    gate_enter();
    urcu_bp_barrier();
    gate_leave();
}

void shp__rcu_callback_begin(void) { in_callback = true; }
void shp__rcu_callback_end(void) { in_callback = false; }

static void before_fork(void)
{
    shp__monitor_before_fork();
    atomic_store_explicit(&fork_pending, true, memory_order_seq_cst);
    while (atomic_load_explicit(&rcu_inflight, memory_order_seq_cst) != 0)
        sched_yield();
    urcu_bp_call_rcu_before_fork();
    urcu_bp_before_fork();
    pthread_mutex_lock(&pools_lock);
    shp__log_before_fork();
}

static void after_fork_parent(void)
{
    shp__log_after_fork(false);
    pthread_mutex_unlock(&pools_lock);
    urcu_bp_after_fork_parent();
    urcu_bp_call_rcu_after_fork_parent();
    atomic_store_explicit(&fork_pending, false, memory_order_release);
    shp__monitor_after_fork(false);
}

static void after_fork_child(void)
{
    for (shp_pool *p = pools; p; p = p->fk_next) {
        p->fk_listed = false;
        p->magic = SHP__POOL_FORKED;
        atomic_store_explicit(&p->state, SHP__FORKED, memory_order_relaxed);
    }
    pools = NULL;
    shp__tcache_forget();
    shp__log_after_fork(true);
    pthread_mutex_unlock(&pools_lock);
    urcu_bp_after_fork_child();
    urcu_bp_call_rcu_after_fork_child();
    atomic_store_explicit(&rcu_inflight, 0, memory_order_relaxed);
    atomic_store_explicit(&fork_pending, false, memory_order_release);
    shp__monitor_after_fork(true);
}

__attribute__((constructor)) static void install_hooks(void)
{
    hooks_err = pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

int shp__fork_track(shp_pool *p)
{
    if (hooks_err)
        return -hooks_err;
    pthread_mutex_lock(&pools_lock);
    p->fk_prev = NULL;
    p->fk_next = pools;
    if (pools)
        pools->fk_prev = p;
    pools = p;
    p->fk_listed = true;
    pthread_mutex_unlock(&pools_lock);
    return 0;
}

void shp__fork_untrack(shp_pool *p)
{
    pthread_mutex_lock(&pools_lock);
    if (p->fk_listed) { /* not when inherited: the child's list never had it */
        if (p->fk_prev)
            p->fk_prev->fk_next = p->fk_next;
        else
            pools = p->fk_next;
        if (p->fk_next)
            p->fk_next->fk_prev = p->fk_prev;
        p->fk_listed = false;
    }
    pthread_mutex_unlock(&pools_lock);
}

SHP__COLD int shp__bad_pool(shp_pool *p, const char *event)
{
    if (p && p->magic == SHP__POOL_FORKED) {
        shp__log(SHP_LOG_WARN, p->name,
                 "event=%s ptr=%p err=ECHILD reason=\"pool inherited from the parent process\"",
                 event, (void *)p);
        return -ECHILD;
    }
    return shp__misuse(p && p->magic == SHP__POOL_MAGIC ? p->name : NULL, -EINVAL, event, p);
}
