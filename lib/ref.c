/* ref.c - a pool's last reference frees it, after a grace period (ref.h). */
#include "ref.h"
#include "fork.h"
#include "metrics_internal.h"

#include <stdlib.h>

#if defined(SHP_TSAN)
char shp__rcu_tsan_token;
#endif

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

void shp__unref(shp_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        shp__call_rcu(&p->rcu, free_pool_cb);
}
