/*
 * fork.c - what a process made by fork() may do with shardpool.
 *
 * The contract (shardpool/pool.h, "fork()"): in the child, every pool it
 * inherited from its parent is unusable and says so at once - every call on
 * it, and every release of one of its connections, returns -ECHILD - and
 * nothing of it is closed (its connections belong to the parent, which goes
 * on using them) or freed (its memory goes with the child).  Pools the child
 * creates work fully, destroy included.  The parent is unaffected.
 *
 * How.  The first shp_pool_create registers one pthread_atfork triple:
 *   prepare  liburcu's call_rcu threads pause between callbacks
 *            (urcu_bp_call_rcu_before_fork: ours take pool locks, so this
 *            comes before we take any), liburcu-bp's grace-period and reader
 *            registry locks (urcu_bp_before_fork), then the pool list's and
 *            the log sink's locks;
 *   parent   releases all of it in reverse;
 *   child    marks every listed pool inherited - its magic (so that every
 *            entry point's argument check answers -ECHILD) and its state (so
 *            that the release fast path, which reads the state and not the
 *            magic, takes the general path that checks) - empties the list,
 *            forgets the forking thread's thread cache (its parked
 *            connections are the parent's), releases our locks, prunes
 *            liburcu-bp's registry of the threads that did not survive, and
 *            starts a call_rcu thread for the child
 *            (urcu_bp_call_rcu_after_fork_child).  Without the last two the
 *            child's first grace period or barrier waits forever.
 * Callbacks queued in the parent that liburcu runs in the child (it moves
 * them to the child's new call_rcu thread) skip inherited pools: their
 * locks may be held by threads that do not exist in the child.
 *
 * An application that also calls liburcu-bp's fork hooks itself must not:
 * they are not reentrant.
 */
#include "pool_internal.h"

#include <errno.h>
#include <pthread.h>

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static shp_pool *pools; /* live pools of this process (pools_lock) */
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static int hooks_err;

static void before_fork(void)
{
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
}

static void after_fork_child(void)
{
    for (shp_pool *p = pools; p; p = p->fk_next) {
        p->fk_listed = false;
        p->magic = SHP__POOL_FORKED;
        atomic_store_explicit(&p->state, SHP__FORKED, memory_order_relaxed);
    }
    pools = NULL;
    shp__tlc_forget();
    shp__log_after_fork(true);
    pthread_mutex_unlock(&pools_lock);
    urcu_bp_after_fork_child();
    urcu_bp_call_rcu_after_fork_child();
}

static void install_hooks(void)
{
    hooks_err = pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

int shp__fork_track(shp_pool *p)
{
    pthread_once(&hooks_once, install_hooks);
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
    return shp__misuse(p && p->magic == SHP__POOL_MAGIC ? p : NULL, -EINVAL, event, p);
}
