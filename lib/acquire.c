/*
 * acquire.c - shp_acquire.
 *
 * Read top-down: the fast path (shp_acquire; acquire_in_read_section: the
 * thread cache's claim, else a pop from the home shard), the general path
 * (bad arguments, a thread's first call, a sampled acquire, ops.prepare),
 * the slow path (acquire_slow: steal, flush the thread caches, validate,
 * connect, wait), connect retry, and the prepare refusal loop.  Lifetime
 * rule: ref.h; deadlines: deadline.h.
 */
#include "conn.h"
#include "deadline.h"
#include "fork.h"
#include "futex.h"
#include "idle.h"
#include "log_internal.h"
#include "ref.h"
#include "retry.h"
#include "tcache.h"

#include <errno.h>
#include <sched.h>

/* Which attempt of an acquire this is.  FIRST_ATTEMPT: a shp_acquire's own;
 * it fixes the acquire's deadline, its slow path is recorded in the acquire
 * histogram, and its shp_acquire_last_error starts empty.  Otherwise the
 * attempt replaces a connection ops.prepare refused (acquire_prepared), and
 * the value is the deadline of the acquire it continues: kept as it is,
 * and not recorded again. */
#define FIRST_ATTEMPT INT64_MIN

/* sampled_at, in the functions below: the CLOCK_MONOTONIC start of a
 * sampled acquire (1 in metrics_sample: timed, recorded with that weight,
 * and its hold time too), or 0.  0 is a constant in the fast path's inlined
 * copy, which so has no timing code: only its slow path is timed. */

static inline __attribute__((always_inline)) int
acquire_in_read_section(shp_pool *p, shp_conn **out, int64_t timeout_ns, int64_t sampled_at,
                        int64_t replaces, bool membarrier);
static __attribute__((noinline)) int acquire_general(shp_pool *p, shp_conn **out,
                                                     int64_t timeout_ns, uint32_t r);
#ifndef SHP_NO_METRICS
/* Per-thread draw deciding which acquires are sampled: each acquire of a
 * pool is sampled independently with probability 1/metrics_sample,
 * whatever the thread's pattern across pools (a countdown would alias with
 * it).  A 32-bit LCG: compared against a threshold, only its high bits
 * matter. */
static _Thread_local uint32_t sample_rng;
#endif

/* ---------------------------------------------------------------- the fast path */

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
    return acquire_in_read_section(p, out, timeout_ns, 0, FIRST_ATTEMPT, true);
}

SHP__COLD static int acquire_stopped(shp_pool *p);
static inline __attribute__((always_inline)) int acquire_hit(shp_pool *p, shp_conn *c,
                                                            shp_conn **out, int64_t sampled_at,
                                                            bool membarrier);
static __attribute__((noinline)) int acquire_from_shard_untimed(shp_pool *p, shp_conn **out,
                                                                int64_t timeout_ns);
static inline __attribute__((always_inline)) int
acquire_from_shard(shp_pool *p, shp_conn **out, int64_t timeout_ns, int64_t sampled_at,
                   int64_t replaces);
SHP__COLD static int acquire_slow(shp_pool *p, shp_conn **out, int64_t timeout_ns,
                                  shp_conn *popped, int64_t sampled_at, int64_t replaces);

static inline bool needs_validation(const shp_pool *p, const shp_conn *c)
{
    return p->validate_idle_ns >= 0 &&
           shp__tick(p) - atomic_load_explicit(&c->last_used, memory_order_relaxed) >
               p->validate_idle_ns;
}

/* One acquire attempt, inside the RCU read-side section it leaves (entered
 * with shp__rcu_lock_fast when membarrier: shp_acquire's fast path, where
 * liburcu-bp runs on membarrier; else shp__rcu_lock).  Every exit but the
 * hit is a tail call. */
static inline __attribute__((always_inline)) int
acquire_in_read_section(shp_pool *p, shp_conn **out, int64_t timeout_ns, int64_t sampled_at,
                        int64_t replaces, bool membarrier)
{
    if (SHP_UNLIKELY(atomic_load_explicit(&p->state, memory_order_relaxed) != SHP__RUNNING))
        return acquire_stopped(p); /* unlocks */
    shp_conn *c = shp__tcache_claim(p);
    if (SHP_UNLIKELY(c == NULL))
        return sampled_at == 0 && replaces == FIRST_ATTEMPT
                   ? acquire_from_shard_untimed(p, out, timeout_ns)
                   : acquire_from_shard(p, out, timeout_ns, sampled_at, replaces);
    if (SHP_UNLIKELY(needs_validation(p, c)))
        return acquire_slow(p, out, timeout_ns, c, sampled_at, replaces); /* unlocks */
    return acquire_hit(p, c, out, sampled_at, membarrier);
}

#ifndef SHP_NO_METRICS
SHP__COLD static void timed_hit(shp_pool *p, shp_conn *c, int64_t sampled_at);
#endif

/* A hit: borrowed c (IN_USE) goes out.  Inside the read-side section,
 * which it leaves (see acquire_in_read_section for membarrier). */
static inline __attribute__((always_inline)) int acquire_hit(shp_pool *p, shp_conn *c,
                                                            shp_conn **out, int64_t sampled_at,
                                                            bool membarrier)
{
    shp__count_use(c);
#ifndef SHP_NO_METRICS
    if (sampled_at > 0)
        timed_hit(p, c, sampled_at);
#else
    (void)p;
    (void)sampled_at;
#endif
    if (membarrier)
        shp__rcu_unlock_fast();
    else
        shp__rcu_unlock();
    *out = c;
    return 0;
}

/* The thread cache missed: pop from the home shard.  Inside the read-side
 * section, which it leaves. */
static inline __attribute__((always_inline)) int
acquire_from_shard(shp_pool *p, shp_conn **out, int64_t timeout_ns, int64_t sampled_at,
                   int64_t replaces)
{
    unsigned home = shp__home(p);
    shp__home_hint = home;
    shp_conn *c = (shp_conn *)shp__stack_pop(&p->shards[home].free);
    if (SHP_UNLIKELY(c == NULL) || SHP_UNLIKELY(needs_validation(p, c)))
        return acquire_slow(p, out, timeout_ns, c, sampled_at, replaces); /* unlocks */
    atomic_store_explicit(&c->state, SHP__IN_USE, memory_order_relaxed);
    return acquire_hit(p, c, out, sampled_at, false);
}

/* acquire_from_shard of an unsampled first attempt, out of line: its CPU
 * lookup may call, which would cost the thread cache's hit a stack frame. */
static __attribute__((noinline)) int acquire_from_shard_untimed(shp_pool *p, shp_conn **out,
                                                                int64_t timeout_ns)
{
    return acquire_from_shard(p, out, timeout_ns, 0, FIRST_ATTEMPT);
}

/* ---------------------------------------------------------------- the general path */

/* One acquire attempt (arguments checked here); see acquire_in_read_section. */
static inline __attribute__((always_inline)) int acquire_one(shp_pool *p, shp_conn **out,
                                                            int64_t timeout_ns,
                                                            int64_t sampled_at, int64_t replaces)
{
    if (SHP_UNLIKELY(!p || !out || p->magic != SHP__POOL_MAGIC))
        return shp__bad_pool(p, "acquire_bad_arg");
    shp__rcu_lock();
    return acquire_in_read_section(p, out, timeout_ns, sampled_at, replaces, false);
}

#ifndef SHP_NO_METRICS
SHP__COLD static int acquire_timed(shp_pool *p, shp_conn **out, int64_t timeout_ns)
{
    return acquire_one(p, out, timeout_ns, shp__now_ns(), FIRST_ATTEMPT);
}
#endif

static int64_t acquire_deadline(const shp_pool *p, int64_t timeout_ns, int64_t now);
SHP__COLD static int acquire_prepared(shp_pool *p, shp_conn **out, int64_t deadline);

/* Everything shp_acquire's fast path leaves out: bad arguments, a thread's
 * first call (urcu-bp registration), a sampled acquire, ops.prepare.  r:
 * the acquire's sampling draw. */
static __attribute__((noinline)) int acquire_general(shp_pool *p, shp_conn **out,
                                                     int64_t timeout_ns, uint32_t r)
{
    if (SHP_UNLIKELY(!p || !out || p->magic != SHP__POOL_MAGIC))
        return acquire_one(p, out, timeout_ns, 0, FIRST_ATTEMPT); /* reports it */
    /* With a prepare hook the acquire's deadline runs from here, through
     * the hook and any replacement of a refused connection. */
    int64_t deadline = p->ops.prepare ? acquire_deadline(p, timeout_ns, shp__now_ns()) : -1;
    int ret;
#ifndef SHP_NO_METRICS
    if (r <= p->sample_below)
        ret = acquire_timed(p, out, timeout_ns);
    else
        ret = acquire_one(p, out, timeout_ns, 0, FIRST_ATTEMPT);
#else
    (void)r;
    ret = acquire_one(p, out, timeout_ns, 0, FIRST_ATTEMPT);
#endif
    if (SHP_UNLIKELY(ret == 0 && p->ops.prepare))
        return acquire_prepared(p, out, deadline);
    return ret;
}

SHP__COLD static int acquire_stopped(shp_pool *p)
{
    shp__acquire_error_clear();
    atomic_fetch_add_explicit(&p->acquire_failures, 1, memory_order_relaxed);
    shp__rcu_unlock();
    return -ESHUTDOWN;
}

#ifndef SHP_NO_METRICS
/* A sampled fast-path hit: recorded with weight metrics_sample, and its
 * hold time will be (see metrics.h).  Inside the read-side section. */
SHP__COLD static void timed_hit(shp_pool *p, shp_conn *c, int64_t sampled_at)
{
    int64_t now = shp__now_ns();
    shp__hist_record(p->shards[shp__home(p)].acq_hist, now - sampled_at, p->metrics_sample);
    atomic_store_explicit(&c->t_acquired, now, memory_order_relaxed);
    atomic_store_explicit(&c->gate, INT64_MIN, memory_order_relaxed); /* release: general path */
}
#endif

/* ---------------------------------------------------------------- the slow path */

/* The absolute deadline of an acquire that started at `now` with
 * shp_acquire's timeout_ns (< 0: the pool's acquire_timeout_ns): -1 for one
 * that may not wait (0); INT64_MAX when now + timeout does not fit. */
static int64_t acquire_deadline(const shp_pool *p, int64_t timeout_ns, int64_t now)
{
    int64_t wait_ns = timeout_ns < 0 ? p->cfg.acquire_timeout_ns : timeout_ns;
    return wait_ns > 0 ? shp__add_sat(now, wait_ns) : -1;
}

/* hand_out_checked, create_for and the slow path's helpers return TRY_AGAIN
 * when the acquire goes on: the connection failed its validation (closed),
 * an evict made a new one stale (closed), or a failed connect is retried. */
#define TRY_AGAIN 1

/* How hand_out_checked counts the borrow: not at all (handed over, counted
 * by shp__take), as a fast hit (from the caller's thread cache or home
 * shard), or as a slow-path borrow (stolen). */
enum count_as { COUNT_NONE, COUNT_FAST, COUNT_SLOW };

/* Validates c, popped by the caller, which holds a reference.  Returns 0 and
 * sets *out, TRY_AGAIN if c failed (closed), or -ESHUTDOWN. */
static int hand_out_checked(shp_pool *p, shp_conn *c, shp_conn **out, enum count_as count)
{
    int64_t now = shp__tick(p);
    if (now >= c->expires || shp__stale(p, c)) {
        shp__close(p, c, SHP__CLOSE_LIFETIME); /* or evicted */
        return TRY_AGAIN;
    }
    if (!shp__check(p, c, now))
        return TRY_AGAIN;
    /* seq_cst store, then seq_cst load of the pool state: either destroy's
     * orphan scan sees IN_USE, or we see STOPPING and give it up. */
    atomic_store_explicit(&c->state, SHP__IN_USE, memory_order_seq_cst);
    if (count == COUNT_SLOW)
        shp__count_slow(p);
    if (count != COUNT_NONE)
        shp__count_use(c);
    if (!shp__running(p)) {
        shp__give_up(p, c, SHP__CLOSE_SHUTDOWN);
        return -ESHUTDOWN;
    }
    *out = c;
    return 0;
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
 * between a retry answer and queueing again) is claimed then, so no push
 * is missed.  Returns SHP__W_CONN (with *out set), SHP__W_GRANT,
 * SHP__W_RETRY, SHP__W_SHUTDOWN, SHP__W_DOWN or -ETIMEDOUT. */
#define SHP__WAIT_YIELDS 8

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
    if (!shp__waiter_enqueue(p, &w, !first && p->handoff_after_ns > 0))
        return SHP__W_SHUTDOWN;
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
                    !shp__past(deadline);
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
            /* hands what it finds to the oldest waiter */
            shp__close_list(p, shp__tcache_flush(p, shp__tcache_fresh, NULL), SHP__CLOSE_EVICTED);
            if (at_recheck)
                continue;
            v = atomic_load_explicit(&w.word, memory_order_acquire);
            if (v != SHP__W_WAITING && v != SHP__W_SLEEPING)
                break; /* served by that scan */
        }
        if (shp__waiter_cancel(p, &w))
            return -ETIMEDOUT;
        v = atomic_load_explicit(&w.word, memory_order_acquire); /* answered: final */
        break;
    }
    if (v == SHP__W_CONN)
        *out = w.conn;
    return (int)v;
}

/* shp__create for an acquire: the connect callback sees the acquire's
 * deadline through shp_connect_deadline_ns (saved and restored, so that a
 * callback may itself acquire from another pool).  Returns shp__create's
 * result, or TRY_AGAIN when the connection was made but an shp_pool_evict came
 * while it connected (it was made for the generation before, e.g. to the
 * old primary): it is closed, and the caller tries again. */
static int create_for(shp_pool *p, shp_conn **out, int64_t deadline)
{
    int64_t outer = shp__callback_deadline_swap(deadline);
    int ret = shp__create(p, out, SHP__IN_USE);
    shp__callback_deadline_swap(outer);
    if (ret == 0 && shp__stale(p, *out)) {
        shp__give_up(p, *out, SHP__CLOSE_EVICTED);
        return TRY_AGAIN;
    }
    return ret;
}

/* hand_out_checked for an acquire: the check callback sees the acquire's
 * deadline through shp_connect_deadline_ns. */
static int checked_for(shp_pool *p, shp_conn *c, shp_conn **out, enum count_as count,
                       int64_t deadline)
{
    int64_t outer = shp__callback_deadline_swap(deadline);
    int ret = hand_out_checked(p, c, out, count);
    shp__callback_deadline_swap(outer);
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
    while (shp__running(p) && shp__now_ns() < until)
        shp__futex_wait((uint32_t *)&p->stop_word, 0, until);
    atomic_fetch_add_explicit(&p->retries, 1, memory_order_relaxed);
    return shp__running(p);
}

/* The reaper holds the shards' idle connections while sweep_seq is odd;
 * they come back within its sweep, which runs no callback.  Yields while it
 * is odd, at most SHP__SWEEP_YIELDS times and never past deadline (< 0:
 * none), so that an acquirer the reaper cannot preempt (SCHED_FIFO on its
 * CPU) never spins for it: it goes on to connect or wait, and a connection
 * the sweep pushes back reaches a waiter through shp__put_idle. */
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
            shp__give_up(p, c, SHP__CLOSE_SHUTDOWN); /* orphaned: closes it, drops its ref */
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
    if (!shp__running(p)) {
        shp__rcu_unlock();
        shp__close(p, c, SHP__CLOSE_SHUTDOWN);
        return;
    }
    bool kept = shp__put_idle(p, c, NULL);
    shp__rcu_unlock();
    if (!kept)
        shp__close(p, c, SHP__CLOSE_EVICTED);
}

static void wait_sweep(shp_pool *p, int64_t deadline)
{
    for (int i = 0; i < SHP__SWEEP_YIELDS &&
                    (atomic_load_explicit(&p->sweep_seq, memory_order_acquire) & 1);
         i++) {
        if (shp__past(deadline))
            return;
        sched_yield();
    }
}

/* An acquire that ends at its deadline (or, with err a connect error, after
 * retrying it until then): counted as a timeout.  Returns err. */
static int timed_out(shp_pool *p, int err)
{
    atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed);
    return err;
}

/* Validates c, which the acquire holds (CHECKING), unless the deadline
 * passed: then c goes back (put_back).  Returns 0 with *out, TRY_AGAIN,
 * -ETIMEDOUT or -ESHUTDOWN. */
static int validate(shp_pool *p, shp_conn *c, shp_conn **out, enum count_as count,
                    int64_t deadline)
{
    if (shp__past(deadline)) { /* validation ate the time: do not start another */
        put_back(p, c);
        return timed_out(p, -ETIMEDOUT);
    }
    return checked_for(p, c, out, count, deadline);
}

/* Connects with a reservation (shp__reserve, or a waiter's grant), unless
 * the deadline passed: then the reservation goes back.  *attempts and
 * *last_err carry the acquire's connect retries.  Returns 0 with *out,
 * TRY_AGAIN, or a negative errno. */
static int connect_reserved(shp_pool *p, shp_conn **out, int64_t deadline, unsigned *attempts,
                            int *last_err)
{
    if (shp__past(deadline)) {
        shp__unreserve(p);
        return timed_out(p, *last_err ? *last_err : -ETIMEDOUT);
    }
    int ret = create_for(p, out, deadline);
    if (ret == TRY_AGAIN || (ret < 0 && retry_after_failure(p, ret, attempts, deadline))) {
        *last_err = ret < 0 ? ret : *last_err;
        return TRY_AGAIN;
    }
    return ret;
}

/* *out was handed over by a release, already borrowed (IN_USE, use
 * counted), outside any read-side section: destroy's orphan scan may have
 * taken it meanwhile, so it is claimed by CAS before it is checked.
 * Returns 0 with *out, TRY_AGAIN, or a negative errno. */
static int take_handed_over(shp_pool *p, shp_conn **out, int64_t deadline)
{
    shp_conn *c = *out;
    if (needs_validation(p, c)) {
        if (shp__past(deadline)) {
            put_back(p, c);
            return timed_out(p, -ETIMEDOUT);
        }
        uint32_t s = SHP__IN_USE;
        if (!atomic_compare_exchange_strong(&c->state, &s, SHP__CHECKING)) {
            shp__give_up(p, c, SHP__CLOSE_SHUTDOWN); /* orphaned: closes it, drops its ref */
            return -ESHUTDOWN;
        }
        return checked_for(p, c, out, COUNT_NONE, deadline);
    }
    if (!shp__running(p)) {
        shp__give_up(p, c, SHP__CLOSE_SHUTDOWN);
        return -ESHUTDOWN;
    }
    return 0;
}

/* The slow path of an attempt: popped (or NULL) is what the fast path took
 * and must validate.  Entered inside the caller's read-side section, which
 * it leaves.  Returns 0 with *out borrowed, or a negative errno
 * (shp_acquire's). */
SHP__COLD static int acquire_slow(shp_pool *p, shp_conn **out, int64_t timeout_ns,
                                  shp_conn *popped, int64_t sampled_at, int64_t replaces)
{
    bool first = replaces == FIRST_ATTEMPT;
    int64_t start = sampled_at > 0 ? sampled_at : shp__now_ns();
    /* Fixed here, once (or by acquire_prepared, for a replacement): every
     * callback, backoff and wait below gets what is left of it, nothing
     * restarts it, and no callback starts after it (shp__past()). */
    int64_t deadline = first ? acquire_deadline(p, timeout_ns, start) : replaces;
    int64_t since = -1; /* wait_turn's: first enqueue of this acquire */
    int ret, sweep_retries = 0;
    bool flushed = false; /* this acquire flushed the thread caches once */
    unsigned attempts = 0;
    bool retry = false; /* a retry answer brought us back here */
    int last_err = 0; /* a connect error we retried after: reported over a timeout */
    /* Entered inside the caller's read-side section; from here on a
     * reference keeps the pool alive across callbacks and waits. */
    shp__ref(p);
    if (popped)
        atomic_store_explicit(&popped->state, SHP__CHECKING, memory_order_relaxed);
    shp__rcu_unlock();
    if (first)
        shp__acquire_error_clear(); /* shp_acquire_last_error describes this acquire */
    if (popped) {
        ret = validate(p, popped, out, COUNT_FAST, deadline);
        if (ret != TRY_AGAIN)
            goto done;
    }
    for (;;) {
        /* The state check, the steal and the take (or the reservation) share
         * one read-side section, so destroy's grace period after STOPPING
         * finds the connection borrowed (IN_USE), being checked (with our
         * reference), or counted in cap - never lost in between. */
        shp__rcu_lock();
        if (!shp__running(p)) {
            shp__rcu_unlock();
            ret = -ESHUTDOWN;
            goto done;
        }
        uint32_t sweep = atomic_load_explicit(&p->sweep_seq, memory_order_acquire);
        shp_conn *c = shp__steal(p, shp__home(p));
        if (c && !needs_validation(p, c)) {
            shp__take(p, c);
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
        if (!c && !flushed) {
            /* Idle connections may sit in other threads' caches: move them
             * to the shards and steal again, before connecting or waiting. */
            shp__rcu_unlock();
            flushed = true;
            shp__close_list(p, shp__tcache_flush(p, shp__tcache_fresh, NULL),
                            SHP__CLOSE_EVICTED);
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
        if (c || ret == 0) {
            ret = c ? validate(p, c, out, COUNT_SLOW, deadline)
                    : connect_reserved(p, out, deadline, &attempts, &last_err);
            if (ret == TRY_AGAIN)
                continue;
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
            ret = timed_out(p, last_err ? last_err : -ETIMEDOUT);
            goto done;
        }
        ret = wait_turn(p, out, deadline, &since);
        retry = false;
        switch (ret) {
        case SHP__W_CONN:
            ret = take_handed_over(p, out, deadline);
            break;
        case SHP__W_GRANT:
            ret = connect_reserved(p, out, deadline, &attempts, &last_err);
            break;
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
        default: /* -ETIMEDOUT */
            ret = timed_out(p, last_err ? last_err : ret);
            goto done;
        }
        if (ret != TRY_AGAIN) /* handed over, or granted */
            goto done;
    }
done:
    if (ret < 0)
        atomic_fetch_add_explicit(&p->acquire_failures, 1, memory_order_relaxed);
#ifndef SHP_NO_METRICS
    if (first) {
        /* Slow acquires are all timed, with weight 1 (see metrics.h). */
        int64_t end = shp__now_ns();
        shp__hist_record(p->shards[shp__home(p)].acq_hist, end - start, 1);
        if (ret == 0 && sampled_at > 0) {
            atomic_store_explicit(&(*out)->t_acquired, end, memory_order_relaxed);
            atomic_store_explicit(&(*out)->gate, INT64_MIN, memory_order_relaxed);
        }
    }
#endif
    shp__unref(p);
    return ret;
}

/* ---------------------------------------------------------------- prepare refusal */

/* acquire_one out of line, for the refusal path (keeps shp_acquire small),
 * continuing the acquire whose deadline is `deadline`; not recorded in the
 * histograms: the first attempt was. */
SHP__COLD static int acquire_again(shp_pool *p, shp_conn **out, int64_t timeout_ns,
                                   int64_t deadline)
{
    return acquire_one(p, out, timeout_ns, 0, deadline);
}

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
        if (shp__past(deadline)) {
            /* acquired at its deadline: no prepare starts after it; the
             * connection goes back as it was (its cleanup, if any, still
             * pending for the next hand-out) */
            shp__ref(p);
            put_back(p, *out);
            shp__unref(p);
            return refusal_failed(p, -ETIMEDOUT);
        }
        int64_t outer = shp__callback_deadline_swap(deadline);
        shp__error_detail_clear();
        int r = p->ops.prepare(p->ops.ctx, (*out)->handle);
        shp__callback_deadline_swap(outer);
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
        int ret = acquire_again(p, out, left, deadline);
        if (ret != 0)
            return ret;
    }
}
