/*
 * conn.c - one connection's life (conn.h): memory, create, check, close,
 * lifetime, and callback failures.
 */
#include "conn.h"
#include "fork.h"
#include "idle.h"
#include "log_internal.h"
#include "metrics_internal.h"
#include "ref.h"
#include "retry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- memory */

/* A closed connection's struct goes to the spare list, a grace period after
 * its close.  The callback holds a pool reference taken by shp__close. */
static void recycle_conn_cb(struct rcu_head *head)
{
    shp_conn *c = caa_container_of(head, shp_conn, rcu);
    SHP__TSAN_ACQUIRE();
    shp_pool *p = c->pool;
    if (shp__inherited(p))
        return; /* queued in the parent, run in a child of fork(): not ours */
    shp__rcu_callback_begin();
    pthread_mutex_lock(&p->reg_lock);
    c->rnext = p->spare;
    p->spare = c;
    pthread_mutex_unlock(&p->reg_lock);
    shp__unref(p); /* may queue the pool's free */
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

/* A struct whose connect failed goes straight back to the spare list: no
 * reader ever saw it. */
static void conn_unused(shp_pool *p, shp_conn *c)
{
    atomic_store_explicit(&c->state, SHP__FAILED, memory_order_relaxed);
    pthread_mutex_lock(&p->reg_lock);
    c->rnext = p->spare;
    p->spare = c;
    pthread_mutex_unlock(&p->reg_lock);
}

/* ---------------------------------------------------------------- lifetime */

/* The tick at which a connection created at `now` reaches its lifetime:
 * max_lifetime_ns minus up to 2.5 % jitter, so a pool's connections do not
 * all expire at once.  INT64_MAX when lifetimes are off. */
static int64_t lifetime_end(shp_pool *p, int64_t now)
{
    int64_t life = p->cfg.max_lifetime_ns;
    if (life <= 0)
        return INT64_MAX;
    return shp__add_sat(now, life - (int64_t)(shp__rand64() % (uint64_t)(life / 40 + 1)));
}

/* A new connection's first health check falls at a random point of its
 * first interval, so that connections made together (prefill, refill) are
 * not all due in the same pass. */
static int64_t check_phase(shp_pool *p, int64_t now)
{
    int64_t iv = p->cfg.health_interval_ns;
    return iv > 0 ? now - (int64_t)(shp__rand64() % (uint64_t)iv) : now;
}

/* ---------------------------------------------------------------- create */

int shp__create(shp_pool *p, shp_conn **out, enum shp__conn_state as)
{
    if (as == SHP__IN_USE && !shp__running(p)) {
        shp__unreserve(p); /* destroy began after the reservation: connect nothing */
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
        atomic_fetch_sub_explicit(&p->cap, SHP__CAP_ONE_LIVE + SHP__CAP_ONE_CONNECTING,
                                  memory_order_seq_cst);
        shp__callback_failed(p, "connect", err, SHP_LOG_WARN, NULL);
        shp__breaker_failure(p, err);
        shp__live_dropped(p);
        shp__unref(p);
        return err;
    }
    shp__breaker_success(p);
    c->handle = h;
    c->created_ns = shp__now_ns();
    int64_t now = shp__tick(p);
    atomic_store_explicit(&c->last_used, now, memory_order_relaxed);
    atomic_store_explicit(&c->last_checked, check_phase(p, now), memory_order_relaxed);
    c->expires = lifetime_end(p, now);
    atomic_store_explicit(&c->gate, c->expires, memory_order_relaxed);
    atomic_store_explicit(&c->state, as == SHP__IN_USE ? SHP__IN_USE : SHP__IDLE,
                          memory_order_seq_cst);
    if (as == SHP__IN_USE) {
        shp__count_slow(p);
        atomic_store_explicit(&c->uses, 1, memory_order_release);
    }
    pthread_mutex_lock(&p->reg_lock);
    shp__reg_add_tail(&p->reg, &c->reg);
    pthread_mutex_unlock(&p->reg_lock);
    atomic_fetch_add_explicit(&p->creations, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&p->cap, SHP__CAP_ONE_CONNECTING, memory_order_seq_cst);
    shp__log(SHP_LOG_DEBUG, p->name, "event=connected conn=%p", (void *)c);

    int ret = 0;
    if (as == SHP__IN_USE && !shp__running(p)) {
        /* Destroy began while we connected: the borrower never sees it. */
        shp__give_up(p, c, SHP__CLOSE_SHUTDOWN);
        ret = -ESHUTDOWN;
    } else {
        *out = c;
    }
    shp__wake_waiters(p); /* a connect slot is free again */
    shp__unref(p);
    return ret;
}

/* ---------------------------------------------------------------- check and close */

bool shp__check(shp_pool *p, shp_conn *c, int64_t now)
{
    atomic_store_explicit(&c->state, SHP__CHECKING, memory_order_relaxed);
    if (!p->ops.check)
        return true;
    shp__error_detail_clear();
    int r = p->ops.check(p->ops.ctx, c->handle);
    atomic_fetch_add_explicit(&p->health_checks, 1, memory_order_relaxed);
    if (r == 0) {
        atomic_fetch_add_explicit(&p->health_passed, 1, memory_order_relaxed);
        atomic_store_explicit(&c->last_checked, now, memory_order_relaxed);
        return true;
    }
    atomic_fetch_add_explicit(&p->health_failed, 1, memory_order_relaxed);
    shp__callback_failed(p, "check", r < 0 ? r : -EIO, SHP_LOG_INFO, c);
    shp__close(p, c, SHP__CLOSE_HEALTH);
    return false;
}

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
    atomic_fetch_sub_explicit(&p->cap, SHP__CAP_ONE_LIVE, memory_order_seq_cst);
    shp__live_dropped(p);
}

void shp__close_list(shp_pool *p, shp_conn *list, enum shp__close_reason why)
{
    for (shp_conn *c; (c = list) != NULL;) {
        list = c->rnext;
        shp__close(p, c, why);
    }
}

void shp__give_up(shp_pool *p, shp_conn *c, enum shp__close_reason why)
{
    uint32_t s = SHP__IN_USE;
    bool orphan = !atomic_compare_exchange_strong(&c->state, &s, SHP__CLOSING);
    shp__close(p, c, why);
    if (orphan)
        shp__unref(p);
}

/* ---------------------------------------------------------------- the borrower's view */

/* NULL for a connection of a pool inherited across fork(): its handle is
 * the parent's, and using it would share the parent's socket. */
void *shp_conn_handle(const shp_conn *c)
{
    return c && !shp__inherited(c->pool) ? c->handle : NULL;
}

shp_pool *shp_conn_pool(const shp_conn *c) { return c ? c->pool : NULL; }

/* ---------------------------------------------------------------- callback failures */

_Static_assert(sizeof(((shp_last_error *)0)->msg) == SHP_ERROR_DETAIL_MAX,
               "shp_last_error.msg holds one detail");

/* The calling thread's last callback failure (shp_acquire_last_error);
 * cleared when one of its acquires takes the slow path. */
static _Thread_local shp_last_error acq_error;

void shp__acquire_error_clear(void)
{
    acq_error.err = 0;
}

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
