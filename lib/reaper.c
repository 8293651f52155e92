/*
 * reaper.c - the maintenance thread of one pool.
 *
 * Every reaper_interval_ns it refreshes the pool's coarse clock, then takes
 * each shard's idle connections off the stack, puts the ones with nothing to
 * do back at once (order kept), and only then, holding nothing an acquirer
 * waits on, closes what is past its idle timeout (down to min_size), its
 * lifetime or max_uses, and health-checks what is due.  Finally it refills
 * to min_size, at most max_connecting connects at once.
 */
#include "reaper.h"
#include "conn.h"
#include "idle.h"
#include "log_internal.h"
#include "metrics_internal.h"
#include "retry.h"

#include <errno.h>

/* What the reaper will do with a connection it judged (c->reap_action). */
enum reap_action { KEEP, CHECK, CLOSE_IDLE, CLOSE_LIFETIME, CLOSE_USES };

/* What is due for c at `now` other than its idle timeout. */
static enum reap_action judge_busy(shp_pool *p, shp_conn *c, int64_t now)
{
    const shp_config *cfg = &p->cfg;
    if (now >= c->expires || shp__stale(p, c))
        return CLOSE_LIFETIME; /* or evicted: shp__close tells */
    if (atomic_load_explicit(&c->uses, memory_order_relaxed) >= p->max_uses)
        return CLOSE_USES;
    /* last <= now - interval, not now - last >= interval: a first check's
     * phase may sit up to an interval (INT64_MAX) before now. */
    if (cfg->health_interval_ns > 0 && p->ops.check &&
        atomic_load_explicit(&c->last_checked, memory_order_relaxed) <= now - cfg->health_interval_ns)
        return CHECK;
    return KEEP;
}

/* What is due for idle connection c; *live counts down the connections left
 * after the idle closes so far (never below min_size). */
static enum reap_action judge(shp_pool *p, shp_conn *c, int64_t now, uint32_t *live)
{
    const shp_config *cfg = &p->cfg;
    if (cfg->idle_timeout_ns > 0 && *live > cfg->min_size &&
        now - atomic_load_explicit(&c->last_used, memory_order_relaxed) >= cfg->idle_timeout_ns) {
        (*live)--;
        return CLOSE_IDLE;
    }
    return judge_busy(p, c, now);
}

/* Which parked connections (state CACHED, in a thread's cache) the reaper
 * moves back to the shards, where reap_shard judges them: those not
 * released since its last pass (their thread is not using them: the idle
 * timeout applies), and those with anything else due (judge_busy: a health
 * check, lifetime, evict, max_uses), however busy (a connection its thread
 * reuses in a tight loop would otherwise never be checked). */
struct parked_since {
    int64_t last; /* the tick of the previous pass */
    int64_t now;
};

static bool parked_due(shp_pool *p, shp_conn *c, void *arg)
{
    const struct parked_since *ps = arg;
    return atomic_load_explicit(&c->last_used, memory_order_relaxed) < ps->last ||
           judge_busy(p, c, ps->now) != KEEP;
}

/* Whether any idle connection is due for a close or a check, judged from
 * the registry without taking anything off a shard.  Most passes find none
 * and leave the shards alone, so acquirers never see them emptied for
 * nothing. */
static bool any_due(shp_pool *p, int64_t now)
{
    bool due = false;
    uint32_t live = SHP__CAP_LIVE(atomic_load(&p->cap));
    struct shp__reg *node;
    shp__rcu_lock();
    shp__reg_for_each(node, &p->reg) {
        shp_conn *c = caa_container_of(node, shp_conn, reg);
        if (atomic_load_explicit(&c->state, memory_order_relaxed) == SHP__IDLE &&
            judge(p, c, now, &live) != KEEP) {
            due = true;
            break;
        }
    }
    shp__rcu_unlock();
    return due;
}

static void reap_shard(shp_pool *p, struct shp__shard *sh, int64_t now, uint32_t *live)
{
    shp_conn *taken = NULL, *c;
    unsigned n = 0;
    atomic_fetch_add_explicit(&p->sweep_seq, 1, memory_order_seq_cst); /* odd: sweeping */
    shp__rcu_lock();
    while (n < p->cfg.max_size && (c = (shp_conn *)shp__stack_pop(&sh->free)) != NULL) {
        c->rnext = taken;
        taken = c;
        n++;
    }
    shp__test_point(p, SHP__TP_SWEEP_HELD, sh);
    /* taken is bottom-first: pushing in list order keeps the stack's order.
     * At most half of a shard's idle connections (at least one) are taken
     * out for health checks per pass, so that a shard whose connections fell
     * due together is never emptied for a run of checks; the rest are
     * checked in later passes. */
    shp_conn *work = NULL, **tail = &work;
    unsigned checks = 0, max_checks = n / 2 ? n / 2 : 1;
    for (c = taken; c; c = taken) {
        taken = c->rnext;
        c->reap_action = judge(p, c, now, live);
        if (c->reap_action == CHECK && checks == max_checks)
            c->reap_action = KEEP;
        checks += c->reap_action == CHECK;
        if (c->reap_action == KEEP) {
            shp__test_point(p, SHP__TP_REAPER_KEEP, c);
            /* Back where it was (CPU-local).  It was judged fresh, but an
             * evict since may have made it stale (shp__stale: the generation
             * is bumped before evict's grace period, which waits for this
             * section): put_idle then refuses it, and it is closed with the
             * rest, never left on no shard while counted live. */
            if (shp__put_idle(p, c, sh))
                continue;
            c->reap_action = CLOSE_LIFETIME; /* shp__close reports it evicted */
        }
        c->rnext = NULL;
        *tail = c;
        tail = &c->rnext;
    }
    shp__rcu_unlock();
    atomic_fetch_add_explicit(&p->sweep_seq, 1, memory_order_release); /* even: done */

    for (c = work; c; c = work) {
        work = c->rnext;
        switch (c->reap_action) {
        case CHECK:
            if (shp__check(p, c, now)) {
                atomic_store_explicit(&c->state, SHP__IDLE, memory_order_relaxed);
                shp__rcu_lock();
                bool kept = shp__put_idle(p, c, sh);
                shp__rcu_unlock();
                if (!kept)
                    shp__close(p, c, SHP__CLOSE_EVICTED);
            }
            break;
        case CLOSE_LIFETIME:
            shp__close(p, c, SHP__CLOSE_LIFETIME);
            break;
        case CLOSE_USES:
            shp__close(p, c, SHP__CLOSE_USES);
            break;
        default:
            shp__close(p, c, SHP__CLOSE_IDLE);
            break;
        }
    }
}

/* Makes one idle connection; false if at a cap or the connect failed. */
static bool add_idle(shp_pool *p)
{
    static _Thread_local unsigned next_shard; /* the reaper's own: spreads refills */
    shp_conn *c = NULL;
    if (shp__reserve(p) != 0 || shp__create(p, &c, SHP__IDLE) != 0)
        return false;
    shp__rcu_lock();
    bool kept = shp__put_idle(p, c, &p->shards[next_shard++ % p->nshards]);
    shp__rcu_unlock();
    if (!kept)
        shp__close(p, c, SHP__CLOSE_EVICTED);
    return true;
}

/* Refills to min_size.  While the breaker is open only its probe connects:
 * one attempt per breaker_probe_ns, whose success closes the breaker. */
static void refill(shp_pool *p, int64_t now)
{
    if (shp__breaker_open(p)) {
        if (!shp__breaker_probe_due(p, now))
            return;
        if (SHP__CAP_LIVE(atomic_load(&p->cap)) < p->cfg.max_size) {
            shp__log(SHP_LOG_INFO, p->name, "event=breaker_probe");
            if (!add_idle(p))
                return;
        }
    }
    while (atomic_load_explicit(&p->state, memory_order_relaxed) == SHP__RUNNING &&
           SHP__CAP_LIVE(atomic_load(&p->cap)) < p->cfg.min_size) {
        if (!add_idle(p))
            return; /* at a cap, or the backend refused: next interval */
    }
}

void *shp__reaper_main(void *arg)
{
    shp_pool *p = arg;
    pthread_mutex_lock(&p->rp_lock);
    while (!p->rp_stop) {
        int64_t wake = shp__add_sat(shp__now_ns(), p->cfg.reaper_interval_ns);
        if (p->cfg.metrics_interval_ns > 0 && p->mx->next_ns < wake)
            wake = p->mx->next_ns;
        struct timespec ts = { .tv_sec = wake / SHP_NS_PER_S, .tv_nsec = wake % SHP_NS_PER_S };
        while (!p->rp_stop && !p->rp_kick &&
               pthread_cond_timedwait(&p->rp_cond, &p->rp_lock, &ts) != ETIMEDOUT)
            ;
        if (p->rp_stop)
            break;
        p->rp_kick = false;
        pthread_mutex_unlock(&p->rp_lock);

        int64_t now = shp__now_ns();
        struct parked_since ps = {
            .last = atomic_exchange_explicit(&p->tick, now, memory_order_relaxed), .now = now };
        shp__close_list(p, shp__tcache_flush(p, parked_due, &ps), SHP__CLOSE_EVICTED);
        uint32_t live = SHP__CAP_LIVE(atomic_load(&p->cap));
        if (any_due(p, now))
            for (unsigned i = 0; i < p->nshards; i++)
                reap_shard(p, &p->shards[i], now, &live);
        refill(p, now);
        shp__metrics_tick(p, shp__now_ns());

        pthread_mutex_lock(&p->rp_lock);
        p->rp_passes++;
        pthread_cond_broadcast(&p->rp_done);
    }
    pthread_mutex_unlock(&p->rp_lock);
    return NULL;
}

void shp__reaper_stop(shp_pool *p)
{
    pthread_mutex_lock(&p->rp_lock);
    p->rp_stop = true;
    pthread_cond_signal(&p->rp_cond);
    pthread_cond_broadcast(&p->rp_done);
    pthread_mutex_unlock(&p->rp_lock);
    pthread_join(p->reaper, NULL);
}

void shp__reaper_kick_wait(shp_pool *p)
{
    bool wait = p->reaper_started && !pthread_equal(pthread_self(), p->reaper);
    pthread_mutex_lock(&p->rp_lock);
    /* A pass in progress may have passed some shards already: the one after
     * it is the first to begin after the kick.  Each wake-up kicks again,
     * so that the second pass follows the first at once, whatever the
     * reaper's interval. */
    uint64_t until = p->rp_passes + 2;
    for (;;) {
        p->rp_kick = true;
        pthread_cond_signal(&p->rp_cond);
        if (!wait || p->rp_stop || p->rp_passes >= until)
            break;
        pthread_cond_wait(&p->rp_done, &p->rp_lock);
    }
    pthread_mutex_unlock(&p->rp_lock);
}
