/*
 * pool_internal.h - the pool's and the connection's layout, their states,
 * and tiny inlines on them (internal).  Each module's functions are
 * declared in its own header: tcache.h (the thread cache), idle.h
 * (connections nobody holds, capacity, waiters), conn.h (one connection's
 * life), ref.h (what keeps a pool's memory alive), reaper.h, retry.h,
 * metrics_internal.h, fork.h, config.h, deadline.h, log_internal.h,
 * futex.h, util.h.
 *
 * Ownership (invariant I1): a connection belongs to exactly one of a shard
 * stack, one borrower, the reaper, its creator or its closer - or, idle in
 * state CACHED, to nobody: parked in the thread cache of the thread that
 * released it last (tcache.h).  Ownership passes by an ABA-safe pop
 * (stack → thread), by a CAS on the state word (borrower → pool on release;
 * CACHED → whoever claims it; borrower → orphan at the destroy deadline), or
 * under the waiter-queue lock (releaser → waiter on handoff).
 *
 * Capacity (I2): cap.live counts connecting + idle + in use + checking +
 * closing; it only grows by a CAS that keeps it <= max_size (idle.c).
 */
#ifndef SHP_POOL_INTERNAL_H
#define SHP_POOL_INTERNAL_H

#include <pthread.h>
#include <shardpool/error.h>
#include <shardpool/metrics.h>
#include <shardpool/pool.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sched.h>
#include <sys/rseq.h>

#include "hist.h"
#include "rcu.h"
#include "registry.h"
#include "stack.h"
#include "util.h"

#define SHP__POOL_MAGIC 0x73687020706f6f6cULL /* "shp pool" */
#define SHP__POOL_DEAD  0x646561642020706fULL
#define SHP__POOL_FORKED 0x666f726b65642020ULL /* "forked  ": inherited across fork() (fork.c) */
#define SHP__CONN_MAGIC 0x73687063u           /* "shpc" */

enum shp__conn_state {
    SHP__CONNECTING = 1,
    SHP__IDLE,
    SHP__IN_USE,
    SHP__CHECKING,
    SHP__FAILED,
    SHP__CLOSING,
    SHP__CLOSED,
    SHP__ORPHANED,
    SHP__CACHED,       /* idle in a thread cache (tcache.h): claimed by CAS only */
};

enum shp__pool_state { SHP__RUNNING = 1, SHP__STOPPING, SHP__STOPPED,
                       SHP__FORKED /* inherited across fork(): unusable (fork.c) */ };

enum shp__close_reason { /* the public shp_close_reason */
    SHP__CLOSE_IDLE = SHP_CLOSE_IDLE, SHP__CLOSE_LIFETIME = SHP_CLOSE_LIFETIME,
    SHP__CLOSE_USES = SHP_CLOSE_MAX_USES, SHP__CLOSE_HEALTH = SHP_CLOSE_HEALTH,
    SHP__CLOSE_BROKEN = SHP_CLOSE_BROKEN, SHP__CLOSE_EVICTED = SHP_CLOSE_EVICTED,
    SHP__CLOSE_SHUTDOWN = SHP_CLOSE_SHUTDOWN, SHP__CLOSE_RESET = SHP_CLOSE_RESET,
};

struct shp_conn {
    shp__stack_entry link;        /* first: the shard stack's entry */
    _Atomic uint32_t state;       /* enum shp__conn_state */
    uint32_t magic;               /* SHP__CONN_MAGIC while the struct is ours */
    shp_pool *pool;
    void *handle;                 /* made by ops.connect */
    /* Written only by the owner; atomics so that stats and the reaper may
     * read them racily (relaxed: values, not synchronization).  The
     * per-connection counters are the pool's fast-path counters: summed on
     * read (metrics.c), folded into the pool's totals when it closes. */
    _Atomic uint64_t uses;        /* borrows so far (= acquisitions); stored with
                                     release order after a slow-path borrow has
                                     counted itself in the pool's slow_hits */
    _Atomic int64_t gate;         /* shp_release's fast path takes this borrow
                                     when tick < gate: expires, or INT64_MIN
                                     while a timed borrow is out (t_acquired) */
    _Atomic int64_t last_used;    /* pool tick at the last release */
    /* second cache line */
    int64_t expires;              /* tick at which its lifetime ends */
    uint64_t gen;                 /* the pool's evict_gen when it was made: older = evicted */
    _Atomic int64_t t_acquired;   /* CLOCK_MONOTONIC hand-out time of a timed
                                     (sampled) borrow, for the hold histogram; 0 if not */
    _Atomic int64_t last_checked; /* pool tick at the last health check */
    int64_t created_ns;
    _Atomic uint64_t errors;      /* shp_conn_error reports */
    _Atomic int last_error;
    struct shp__reg reg;          /* pool registry (RCU list) */
    shp_conn *rnext;              /* a private list of its owner (the reaper's
                                     work, stale ones to close, spares) */
    int reap_action;              /* what the reaper will do with it, while it
                                     owns it (reaper.c) */
    struct rcu_head rcu;
} __attribute__((aligned(SHP_CACHELINE)));

struct shp__shard {
    shp__stack free;              /* idle connections */
    _Atomic uint64_t steals;      /* connections its CPU's acquirers took from other shards */
    struct shp__hist *acq_hist;   /* acquire latency, recorded by its CPU's acquirers */
    struct shp__hist *hold_hist;  /* hold time, recorded by its CPU's releasers */
} __attribute__((aligned(SHP_CACHELINE)));

/* A waiting acquirer, on its own stack frame, in the pool's FIFO queue.
 * word goes WAITING (→ SLEEPING, set by the waiter) → an answer (CONN,
 * GRANT, SHUTDOWN, DOWN, RETRY), set by one exchange under the queue lock
 * after the waiter was unlinked; see waiter_answer (idle.c) for the
 * frame's lifetime.  SHP__W_RETRY (only with
 * cfg.handoff_after_ns > 0): a release pushed a connection on a shard
 * instead of handing it over; the waiter, no longer queued, tries to take
 * one and otherwise queues again in order of its first enqueue (`since`). */
enum { SHP__W_WAITING = 0, SHP__W_CONN, SHP__W_GRANT, SHP__W_SHUTDOWN, SHP__W_SLEEPING,
       SHP__W_DOWN /* breaker open: capacity free but no connect */,
       SHP__W_RETRY /* a connection was pushed: compete for it */ };
struct shp__waiter {
    struct shp__waiter *next;
    shp_conn *conn;               /* SHP__W_CONN: handed to us */
    int64_t since;                /* CLOCK_MONOTONIC of the acquire's first enqueue
                                     (handoff_after_ns > 0; else 0) */
    _Atomic uint32_t word;
};

struct shp_pool {
    /* read-mostly line: everything the fast path reads */
    uint64_t magic;
    uint64_t id;                  /* unique in the process, never 0: thread-cache key */
    _Atomic int state;            /* enum shp__pool_state */
    _Atomic bool destroyed;       /* shp_pool_destroy was called */
    unsigned nshards;
    unsigned ncpu_map;
    const uint16_t *cpu_shard;    /* cpu → shard */
    struct shp__shard *shards;
    int64_t validate_idle_ns;
    uint64_t max_uses;            /* UINT64_MAX when unlimited */
    uint32_t metrics_sample;      /* cfg.metrics_sample: weight of a timed fast-path acquire */
    /* shp_acquire's and shp_release's fast paths test one field each for
     * "take the general path": */
    uint32_t fast_below;          /* draws <= this go general: sample_below, or
                                     UINT32_MAX with ops.prepare (every acquire) */
    uint64_t fast_max_uses;       /* uses >= this go general: max_uses, or 0 with
                                     ops.reset (every release) */
    bool tcache;                  /* cfg.thread_cache: releases may park (tcache.h) */
    uint32_t sample_below;        /* a fast-path acquire is timed when a per-thread
                                     32-bit random draw is <= this (~ 2^32 / metrics_sample) */
    _Atomic uint64_t evict_gen;   /* bumped by shp_pool_evict (under reg_lock) */
    _Atomic int64_t tick;         /* coarse clock (ns), kept by the reaper */

    /* waiters: written only when the pool is exhausted */
    _Atomic uint32_t nwaiters __attribute__((aligned(SHP_CACHELINE)));
    bool wq_closed;
    int64_t handoff_after_ns;     /* cfg.handoff_after_ns (read-only): 0 = strict FIFO handoff */
    struct shp__waiter *wq_head, *wq_tail;
    pthread_mutex_t wq_lock;

    /* capacity and counters (slow paths) */
    _Atomic uint64_t cap __attribute__((aligned(SHP_CACHELINE))); /* live<<32 | connecting */
    _Atomic long refs;            /* 1 (owner) + creators in flight + orphans */
    _Atomic uint64_t creations, closed, timeouts, connect_failures;
    _Atomic uint64_t health_checks, health_failed, health_passed, handoffs;
    _Atomic uint64_t waits, acquire_failures, errors;
    _Atomic uint64_t closes[SHP_CLOSE_NREASONS];
    /* closed connections' share of the per-connection counters (reg_lock) */
    uint64_t closed_uses, closed_releases;
    /* acquisitions served by the slow path (steal, connect, handoff): the
     * rest are fast hits, from the thread cache or the home shard
     * (metrics.c, reported as fast_hits); counted before the borrow's uses */
    _Atomic uint64_t slow_hits;
    _Atomic uint64_t fast_hits_seen; /* the highest fast-hit count reported */
    _Atomic uint64_t releases_seen;  /* the highest releases reported */
    _Atomic uint32_t drain_seq;   /* bumped (and futex-woken) by closes while stopping */
    _Atomic uint32_t sweep_seq;   /* odd while the reaper holds a shard's idle list */
    _Atomic uint32_t connect_fail_run;  /* consecutive connect failures */
    _Atomic int64_t breaker_opened_at;  /* 0 = closed; else when it (re)opened */
    _Atomic uint64_t breaker_opens, retries;
    _Atomic uint32_t stop_word;   /* 1 once stopping: wakes backoff sleepers */

    /* registry of live connections (RCU list; writers hold reg_lock) */
    pthread_mutex_t reg_lock;     /* also guards spare */
    struct shp__reg reg;
    shp_conn *spare;              /* closed connections' memory, for reuse */

    /* metrics: the reaper's interval results, history ring (mx_lock) */
    pthread_mutex_t mx_lock;
    struct shp__metrics_state *mx; /* the reaper's (metrics_internal.h) */
    shp_metrics last_interval;    /* interval_* and alerts fields of the last pass */
    shp_metrics *history;         /* ring of cfg.history_len */
    unsigned hist_head, hist_count;

    /* the latest callback failure, for shp_pool_last_error (err_lock) */
    pthread_mutex_t err_lock;
    shp_last_error last_error;

    /* reaper */
    pthread_t reaper;
    bool reaper_started;
    pthread_mutex_t rp_lock;
    pthread_cond_t rp_cond;
    bool rp_stop;
    bool rp_kick;                 /* run a pass now (shp_pool_evict) */
    uint64_t rp_passes;           /* passes completed (rp_lock) */
    pthread_cond_t rp_done;       /* broadcast after each pass */

    /* the process's list of live pools (fork.c, its lock) */
    shp_pool *fk_prev, *fk_next;
    bool fk_listed;

    shp_ops ops;
    shp_config cfg;
    char name[64];
    struct rcu_head rcu;
};

#define SHP__CAP_LIVE(c)       ((uint32_t)((c) >> 32))
#define SHP__CAP_CONNECTING(c) ((uint32_t)(c))
#define SHP__CAP_ONE_LIVE       (1ULL << 32)
#define SHP__CAP_ONE_CONNECTING 1ULL

/* The pool's name for log lines, or NULL for no pool. */
static inline const char *shp__pool_name(const shp_pool *p)
{
    return p ? p->name : NULL;
}

/* Whether p was inherited across fork() (fork.c): every call on it answers
 * -ECHILD. */
static inline bool shp__inherited(const shp_pool *p)
{
    return p->magic == SHP__POOL_FORKED;
}

/* Whether c was made before the last shp_pool_evict.  Checked inside a
 * read-side section before every push of an idle connection, so that
 * evict's grace period orders every such push before its sweep. */
static inline bool shp__stale(const shp_pool *p, const shp_conn *c)
{
    return SHP_UNLIKELY(c->gen != atomic_load_explicit(&p->evict_gen, memory_order_acquire));
}

/* The pool's coarse clock (ns), kept by the reaper: what the fast paths
 * read instead of the clock. */
static inline int64_t shp__tick(const shp_pool *p)
{
    return atomic_load_explicit(&p->tick, memory_order_relaxed);
}

static inline bool shp__running(shp_pool *p)
{
    return atomic_load_explicit(&p->state, memory_order_seq_cst) == SHP__RUNNING;
}

/* The borrower of c counts its borrow (owner-written, metrics.h).  Release
 * order: a slow-path borrow's slow_hits count is visible with it. */
static inline void shp__count_use(shp_conn *c)
{
    atomic_store_explicit(&c->uses, atomic_load_explicit(&c->uses, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* A borrow served by the slow path: not a fast hit (metrics.c). */
static inline void shp__count_slow(shp_pool *p)
{
#ifndef SHP_NO_METRICS
    atomic_fetch_add_explicit(&p->slow_hits, 1, memory_order_relaxed);
#else
    (void)p;
#endif
}

/* The owner of c (stolen, or handed over) makes it borrowed: a slow-path
 * borrow. */
static inline void shp__take(shp_pool *p, shp_conn *c)
{
    atomic_store_explicit(&c->state, SHP__IN_USE, memory_order_relaxed);
    shp__count_slow(p);
    shp__count_use(c);
}

/* The calling thread's CPU.  glibc (2.35+) registers an rseq area per
 * thread, in which the kernel keeps cpu_id current: reading it costs ~0.6 ns
 * here against ~4 ns for sched_getcpu() (vDSO getcpu on this glibc).  Falls
 * back to sched_getcpu() where rseq is not registered. */
static inline int shp__cpu(void)
{
    if (SHP_LIKELY(__rseq_size >= 8)) {
        const struct rseq *r =
            (const struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
        int32_t cpu = (int32_t)__atomic_load_n(&r->cpu_id, __ATOMIC_RELAXED);
        if (SHP_LIKELY(cpu >= 0))
            return cpu;
    }
    return sched_getcpu();
}

/* The shard of the calling CPU. */
static inline unsigned shp__home(const shp_pool *p)
{
    int cpu = shp__cpu();
    if (SHP_UNLIKELY(cpu < 0))
        return 0;
    /* One shard per CPU (the default): the CPU is the shard, no map load. */
    if (SHP_LIKELY((unsigned)cpu < p->nshards))
        return p->nshards == p->ncpu_map ? (unsigned)cpu : p->cpu_shard[cpu];
    return (unsigned)cpu < p->ncpu_map ? p->cpu_shard[cpu] : (unsigned)cpu % p->nshards;
}

#endif
