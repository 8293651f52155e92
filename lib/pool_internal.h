/*
 * pool_internal.h - the pool's and the connection's layout (internal).
 *
 * Ownership (invariant I1): a connection belongs to exactly one of a shard
 * stack, one borrower, the reaper, its creator or its closer - or, idle in
 * state CACHED, to nobody: parked in the cache of the thread that released
 * it last (see "Thread caches" below).  Ownership passes by an ABA-safe pop
 * (stack → thread), by a CAS on the state word (borrower → pool on release;
 * CACHED → whoever claims it; borrower → orphan at the destroy deadline), or
 * under the waiter-queue lock (releaser → waiter on handoff).
 *
 * Thread caches: each thread keeps, per pool, the connection it released
 * last (one slot per pool in a small per-thread table).  Its next acquire
 * of that pool claims it with one CAS (CACHED → IN_USE), touching no shared
 * cache line; the release that parked it made a plain store.  A slot is a
 * hint: anyone may claim a CACHED connection by CAS, and a slot whose
 * connection was claimed elsewhere just misses.  A release parks only when
 * its shard has other idle connections and nobody waits; shp__uncache()
 * moves parked connections back to the shards: for an acquire that found
 * the shards empty, for a waiter at its recheck 1 ms after it queued (after
 * the heavy fence, see shp__fence_light; on queueing it only steals from
 * the shards), for the reaper (those unused for a whole interval), for
 * evict and for shutdown.
 *
 * Capacity (I2): cap.live counts connecting + idle + in use + checking +
 * closing; it only grows by a CAS that keeps it <= max_size.
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
    SHP__CACHED,       /* idle in a thread cache: claimed by CAS only */
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
    shp_conn *rnext;              /* the reaper's private list while it owns it */
    int verdict;                  /* the reaper's judgement, while it owns it */
    struct rcu_head rcu;
} __attribute__((aligned(SHP_CACHELINE)));

struct shp__shard {
    shp__stack free;              /* idle connections */
    _Atomic uint64_t steals;      /* connections its CPU's acquirers took from other shards */
    struct shp__hist *acq_hist;   /* acquire latency, recorded by its CPU's acquirers */
    struct shp__hist *hold_hist;  /* hold time, recorded by its CPU's releasers */
} __attribute__((aligned(SHP_CACHELINE)));

/* What the reaper's metrics pass keeps between intervals (read and written
 * by the reaper only; what it publishes is in the pool, under mx_lock). */
struct shp__metrics_state {
    int64_t next_ns;              /* when the next pass is due */
    bool have_prev;
    shp_metrics prev;             /* the previous pass's snapshot */
    struct shp__hist_copy prev_acq;
    uint32_t raised;              /* alerts raised now (bit per shp_alert) */
};

/* A waiting acquirer, on its own stack frame, in the pool's FIFO queue.
 * word goes WAITING (→ SLEEPING, set by the waiter) → a verdict, set by one
 * exchange under the queue lock after the waiter was unlinked; see
 * waiter_signal for the frame's lifetime.  SHP__W_RETRY (only with
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
    bool tcache;                  /* cfg.thread_cache: releases may park */
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
    _Atomic uint64_t created, closed, timeouts, connect_failures;
    _Atomic uint64_t health_checks, health_failures, health_passes, handoffs;
    _Atomic uint64_t waits, acquire_failures, errors;
    _Atomic uint64_t closes[SHP_CLOSE_NREASONS];
    /* closed connections' share of the per-connection counters (reg_lock) */
    uint64_t closed_uses, closed_releases;
    /* acquisitions served by the slow path (steal, connect, handoff): the
     * rest are home hits (metrics.c); counted before the borrow's uses */
    _Atomic uint64_t slow_hits;
    _Atomic uint64_t home_hits_seen; /* the highest home_hits reported */
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
    struct shp__metrics_state *mx; /* the reaper's (allocated with the pool) */
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

/* fork.c */
/* Lists p among the process's pools (registering the fork handlers on the
 * first call), so that a child of fork() finds it inherited.  Returns 0 or
 * a negative errno (pthread_atfork failed). */
int shp__fork_track(shp_pool *p);
/* Takes p off the list (the pool is being freed).  Thread-safe. */
void shp__fork_untrack(shp_pool *p);
/* The error for a call whose pool argument p is not a usable pool, logged
 * as misuse `event`: -ECHILD for a pool inherited across fork(), else
 * -EINVAL (NULL, not a pool, destroyed). */
int shp__bad_pool(shp_pool *p, const char *event);
/* Whether p was inherited across fork() (fork.c): every call on it answers
 * -ECHILD. */
static inline bool shp__inherited(const shp_pool *p)
{
    return p->magic == SHP__POOL_FORKED;
}

/* pool.c */
/* Forgets the calling thread's thread cache (fork.c: in a child, the
 * forking thread's parked connections are the parent's). */
void shp__tlc_forget(void);
/* Callback `op` ("connect", "check", "prepare") failed with err on the
 * calling thread: logs one line at `level` (event=<op>_failed, with conn
 * when not NULL) carrying the callback's detail (shp_set_error_detail) or
 * the errno's text, and keeps it for shp_pool_last_error and the thread's
 * shp_acquire_last_error.  Caller may touch p. */
void shp__callback_failed(shp_pool *p, const char *op, int err, shp_log_level level,
                          const shp_conn *conn);
/* Logs misuse (level=warn event=<event> ptr=<what> err=<name>) against p
 * (NULL: no pool name) and returns err. */
int shp__misuse(shp_pool *p, int err, const char *event, const void *what);
shp_conn *shp__steal(shp_pool *p, unsigned home);
int shp__create(shp_pool *p, shp_conn **out, enum shp__conn_state as);
int shp__reserve(shp_pool *p);
/* Pushes c (state IDLE) on shard sh (NULL: the calling CPU's), or hands it
 * to a waiter.  Inside a read-side section.  Returns false and does nothing
 * if c is stale (shp_pool_evict): the caller closes it. */
bool shp__put_idle(shp_pool *p, shp_conn *c, struct shp__shard *sh);
void shp__close(shp_pool *p, shp_conn *c, enum shp__close_reason why);
void shp__wake_waiters(shp_pool *p);
bool shp__check(shp_pool *p, shp_conn *c, int64_t now);
/* Moves CACHED connections back to the shards (or to waiters): those for
 * which want(p, c, arg) is true (want NULL: every one); stale ones (evict)
 * are closed.  Outside read-side sections; the caller may touch p.  Returns
 * how many it took.  Acquirers pass shp__parked_fresh, which leaves stale
 * connections to evict and the reaper, so that an acquire rarely runs a
 * close: only when an evict lands between that test and the push (the
 * push refuses it, and the acquirer closes it; tests/model reaches this). */
typedef bool (*shp__parked_pred)(shp_pool *p, shp_conn *c, void *arg);
/* Slots in each thread's cache: a thread parks one connection per pool,
 * for up to this many pools (ids modulo it); beyond, a release in one pool
 * may displace another's parked connection, which stays CACHED for
 * shp__uncache to find. */
#define SHP__TLC_WAYS 8
unsigned shp__uncache(shp_pool *p, shp__parked_pred want, void *arg);
bool shp__parked_fresh(shp_pool *p, shp_conn *c, void *arg);

/* The asymmetric fence between a release that parks a connection (store
 * CACHED, then load nwaiters) and a waiter (nwaiters++, then, at its
 * recheck, scan for CACHED connections): either the releaser's re-load of
 * nwaiters sees the waiter and it takes its connection back to hand it
 * over (release_unpark), or the waiter's scan sees the parked connection.
 * Both halves are needed: a park that lands after the waiter's one scan is
 * caught only by the releaser's re-load, and a park store still in its
 * CPU's store buffer only by the membarrier (tests/model: variants
 * no-recheck, no-membarrier).  The releaser's side is a compiler barrier when the heavy
 * side can be membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a
 * full barrier on every CPU running this process; without membarrier both
 * sides are full fences.  The TSan build uses sequentially consistent
 * accesses instead (TSan does not model fences), same algorithm. */
extern int shp__membarrier_ok;
void shp__membarrier_init(void);
void shp__fence_heavy(void);
static inline void shp__fence_light(void)
{
#if !defined(SHP_TSAN)
    if (SHP_LIKELY(__atomic_load_n(&shp__membarrier_ok, __ATOMIC_RELAXED) > 0))
        __asm__ __volatile__("" ::: "memory");
    else
        atomic_thread_fence(memory_order_seq_cst);
#endif
}
/* shp__fence_light where membarrier is known to be registered. */
static inline void shp__fence_light_membarrier(void)
{
#if !defined(SHP_TSAN)
    __asm__ __volatile__("" ::: "memory");
#endif
}
#if defined(SHP_TSAN)
#define SHP__PARK_ORDER      memory_order_seq_cst
#define SHP__PARK_LOAD_ORDER memory_order_seq_cst
#else
#define SHP__PARK_ORDER      memory_order_release
#define SHP__PARK_LOAD_ORDER memory_order_relaxed
#endif

/* Test points: a test (which links the static library and includes this
 * header) may set shp__test_hook to run its own code at these points of
 * the maintenance paths, and so force an interleaving deterministically
 * instead of hoping for it.  NULL outside tests; a test point costs a load
 * and a branch, and none is on shp_acquire's or shp_release's paths. */
enum shp__test_point {
    SHP__TP_SWEEP_HELD,  /* reap_shard, in its read-side section, the shard's idle
                            list taken (sweep_seq odd); arg: the shard */
    SHP__TP_REAPER_KEEP, /* reap_shard, in its read-side section: arg, a connection
                            judged KEEP, is about to go back on its shard */
    SHP__TP_RCU_ENQUEUE, /* shp__call_rcu, inside fork.c's call_rcu gate, before
                            liburcu's enqueue; p NULL, arg the rcu_head */
};
typedef void (*shp__test_hook_fn)(shp_pool *p, enum shp__test_point where, void *arg);
extern shp__test_hook_fn shp__test_hook;
static inline void shp__test_point(shp_pool *p, enum shp__test_point where, void *arg)
{
    shp__test_hook_fn fn = __atomic_load_n(&shp__test_hook, __ATOMIC_ACQUIRE);
    if (SHP_UNLIKELY(fn != NULL))
        fn(p, where, arg);
}

/* metrics.c */
int shp__metrics_init(shp_pool *p);
void shp__metrics_free(shp_pool *p);
/* Runs the reaper's metrics pass (alerts, history, monitor) if due. */
void shp__metrics_tick(shp_pool *p, int64_t now_ns);
/* Adds conn c's counters to the pool's closed totals; reg_lock held. */
void shp__metrics_retire(shp_pool *p, shp_conn *c);
/* Whether c was made before the last shp_pool_evict.  Checked inside a
 * read-side section before every push of an idle connection, so that
 * evict's grace period orders every such push before its sweep. */
static inline bool shp__stale(const shp_pool *p, const shp_conn *c)
{
    return SHP_UNLIKELY(c->gen != atomic_load_explicit(&p->evict_gen, memory_order_acquire));
}

/* retry.c */
/* Thread-local xorshift64 (seeded from the clock and the thread): backoff
 * and lifetime jitter need spread, not quality, and no shared state on the
 * connect path.  Thread-safe. */
uint64_t shp__rand64(void);
int64_t shp__backoff_ns(const shp_config *cfg, unsigned attempt);
bool shp__retryable(int err);
bool shp__breaker_open(shp_pool *p);
void shp__breaker_failure(shp_pool *p, int err);
void shp__breaker_success(shp_pool *p);
bool shp__breaker_probe_due(shp_pool *p, int64_t now);

/* reaper.c */
void *shp__reaper_main(void *arg);
void shp__reaper_stop(shp_pool *p);
/* Makes the reaper run a pass now and, unless called from the reaper or
 * the pool is stopping, waits until a pass that began after the call has
 * completed.  Thread-safe. */
void shp__reaper_kick_wait(shp_pool *p);
int64_t shp__lifetime_end(shp_pool *p, int64_t now);
int64_t shp__check_phase(shp_pool *p, int64_t now);

/* The calling thread's CPU.  glibc (2.35+) registers an rseq area per
 * thread, in which the kernel keeps cpu_id current: reading it costs ~0.6 ns
 * here against ~4 ns for sched_getcpu() (vDSO getcpu on this glibc).  Falls
 * back to sched_getcpu() where rseq is not registered. */
#include <sched.h>
#include <sys/rseq.h>
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
