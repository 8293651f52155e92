/*
 * lifecycle.c - a pool's life as its owner sees it: create, shutdown,
 * destroy, shp_quiesce, and evict (a new generation of connections).
 *
 * Its memory's life is ref.h's: destroy drops the owner's reference, and
 * the last reference frees the pool after a grace period.  lifecycle.c
 * starts, stops and kicks the reaper (reaper.h), which calls nothing of
 * it.
 */
#include "config.h"
#include "conn.h"
#include "fork.h"
#include "futex.h"
#include "idle.h"
#include "log_internal.h"
#include "metrics_internal.h"
#include "monitor.h"
#include "reaper.h"
#include "ref.h"
#include "tcache.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    shp__config_resolve(&cfg);

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
    bool membarrier =
        shp__rcu_fast_ok() && __atomic_load_n(&shp__membarrier_ok, __ATOMIC_RELAXED) > 0;
#ifndef SHP_NO_METRICS
    p->fast_below = ops->prepare || !membarrier ? UINT32_MAX : p->sample_below;
#else
    p->fast_below = ops->prepare || !membarrier ? UINT32_MAX : 0;
#endif
    p->fast_max_uses = ops->reset || !membarrier ? 0 : p->max_uses;
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
    shp__close_list(p, shp__tcache_flush(p, NULL, NULL), SHP__CLOSE_EVICTED);
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
    shp__waiters_close(p);
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
             atomic_load(&p->creations), atomic_load(&p->closed), orphans, left);
    return left ? -EBUSY : 0;
}

int shp_pool_shutdown(shp_pool *p, int64_t drain_timeout_ns)
{
    if (!p || p->magic != SHP__POOL_MAGIC)
        return shp__bad_pool(p, "shutdown_bad_pool");
    int expect = SHP__RUNNING;
    if (!atomic_compare_exchange_strong(&p->state, &expect, SHP__STOPPING))
        return shp__misuse(p->name, -EALREADY, "shutdown_twice", p);
    return shutdown_impl(p, drain_timeout_ns);
}

int shp_pool_destroy(shp_pool *p, int64_t drain_timeout_ns)
{
    if (!p || p->magic != SHP__POOL_MAGIC)
        return shp__bad_pool(p, "destroy_bad_pool");
    if (atomic_exchange(&p->destroyed, true))
        return shp__misuse(p->name, -EINVAL, "destroy_twice", p);
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

/* ---------------------------------------------------------------- evict */

int shp_pool_evict(shp_pool *p)
{
    if (!p || p->magic != SHP__POOL_MAGIC)
        return shp__bad_pool(p, "evict_bad_arg");
    if (atomic_load(&p->state) != SHP__RUNNING)
        return -ESHUTDOWN;
    unsigned n = 0;
    struct shp__reg *node;
    pthread_mutex_lock(&p->reg_lock); /* creators read the generation under it */
    atomic_fetch_add_explicit(&p->evict_gen, 1, memory_order_seq_cst);
    shp__reg_for_each(node, &p->reg)
        n++;
    pthread_mutex_unlock(&p->reg_lock);
    /* Every push of an idle connection checks the generation inside a
     * read-side section: after this grace period, none that saw the old one
     * is still in flight, so the reaper pass below finds every stale idle
     * connection on a shard, and later pushes see the new generation. */
    shp__rcu_sync();
    /* the stale ones parked in thread caches */
    shp__close_list(p, shp__tcache_flush(p, NULL, NULL), SHP__CLOSE_EVICTED);
    shp__reaper_kick_wait(p);
    shp__log(SHP_LOG_INFO, p->name, "event=evict connections=%u", n);
    return 0;
}
