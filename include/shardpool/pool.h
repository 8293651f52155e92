/*
 * shardpool/pool.h - the connection pool.
 *
 * A pool keeps up to max_size connections made by the caller's shp_ops.
 * Idle connections sit on per-CPU lock-free stacks (shards), except one per
 * thread and pool: shp_release parks the connection in the calling thread's
 * cache when its shard has other idle ones and nobody waits, and that
 * thread's next shp_acquire takes it back with one compare-and-swap.
 * Otherwise shp_acquire pops from the calling CPU's shard, steals from the
 * others on a miss, claims connections parked by other threads, creates a
 * connection while under max_size, and otherwise waits in FIFO order for a
 * release.  A reaper thread per pool closes idle, old and unhealthy
 * connections and refills to min_size, never holding anything an acquirer
 * waits on.
 *
 * Synchronization table (which calls may run concurrently):
 *
 *                        acquire  release  stats  destroy
 *   shp_acquire            yes      yes     yes    yes (fails -ESHUTDOWN)
 *   shp_release[_broken]   yes      yes*    yes    yes (closed, see destroy)
 *   shp_pool_stats         yes      yes     yes    no
 *   shp_pool_shutdown      yes      yes     yes    no (call it once)
 *   shp_pool_destroy       yes      yes     no     no (call it once)
 *
 *   * a given connection is released once per acquire; releasing it twice
 *     is detected (-EALREADY) as long as it has not been handed out again
 *     (two threads releasing one connection at the same instant is a
 *     use-after-release by the caller, as in any pool: not detected).
 *   Threads calling the API need no registration.  No call may be made on a
 *   pool after shp_pool_destroy has returned, except releasing connections
 *   that were still borrowed at its deadline (see shp_pool_destroy); after
 *   shp_pool_shutdown every call is allowed and answers -ESHUTDOWN.
 *
 * Misuse detected (a negative errno and one log line; nothing is lost or
 * closed that should not be): a NULL pool, connection or output pointer, or
 * a connection pointer in the first page (-EINVAL); a pointer to readable
 * memory that is not a live connection struct (-EBADF, by its magic word);
 * a second release of a connection not yet handed out again (-EALREADY); a
 * connection released to another pool (shp_pool_release: -EXDEV); any call
 * after shutdown (-ESHUTDOWN); a bad configuration (-EINVAL, naming the
 * field); any call on a pool inherited across fork() (-ECHILD, below).  Not
 * detected, and undefined behaviour as with free(): any other pointer the
 * library never returned (it may crash on reading it), a pool used after
 * shp_pool_destroy returned, two threads releasing one connection at the
 * same instant.
 *
 * Deadlines: shp_acquire fixes its deadline once, at entry (now + timeout,
 * saturating: INT64_MAX waits forever), and every step it takes - waiting,
 * connect retries and their backoff, and the connect, check and prepare
 * callbacks, which read it with shp_connect_deadline_ns() - gets what is left
 * of it; nothing restarts it, and no callback is started after it.  With
 * callbacks that honour it (the adapters do, signals included), an acquire
 * returns within its timeout plus scheduling latency (README: "Guarantees").
 * Every duration accepted, in shp_config and in the calls, may be INT64_MAX.
 *
 * fork(): in the child, every pool inherited from the parent is unusable
 * and says so: every call on it and every release of one of its connections
 * returns -ECHILD; the child runs none of its callbacks (its connections,
 * borrowed or idle, belong to the parent) and frees none of its memory
 * (dropped with the child).  Pools the child creates work fully, destroy
 * and shp_quiesce included.  The parent is unaffected.  shardpool registers
 * liburcu-bp's fork hooks itself (pthread_atfork, at the first
 * shp_pool_create): a program that also uses liburcu-bp must not call them.
 * Do not fork from inside a pool callback.
 *
 * Connection states (each connection is in exactly one; an arrow is the only
 * way out of a state; '*' marks transitions made by CAS on the state word,
 * the others are made by the thread that solely owns the connection, which
 * it got by an ABA-safe pop from a shard or by creating it):
 *
 *                 connect ok                acquire (pop)
 *   CONNECTING ───────────────► IDLE ◄──────────────────────► IN_USE
 *       │ connect fails          │ ▲        release (*)         │   │
 *       ▼                        │ │ check ok                   │   │ destroy
 *     FAILED                     │ │                            │   │ deadline (*)
 *       │                reaper  ▼ │                   release_ │   ▼
 *       │               takes  CHECKING                broken,  │ ORPHANED
 *       │                 it     │ check fails         expired  │   │ late release
 *       │                        ▼                     (*)      ▼   ▼
 *       └────────────────────► CLOSING ◄──────────────────────────────
 *                                │ close callback returned
 *                                ▼
 *                              CLOSED  (its memory is reused for a later
 *                                       connection after an RCU grace period,
 *                                       and freed with the pool)
 *   IDLE → CLOSING also happens when the reaper retires an idle connection
 *   (idle timeout, lifetime, max_uses) and at destroy.
 *
 *   Parked (internal state CACHED, reported as idle): a release may make
 *   IN_USE → CACHED instead of → IDLE (the releaser owns it: a plain store).
 *   A CACHED connection belongs to nobody; it leaves by CAS only: → IN_USE
 *   when an acquire claims it, → IDLE (onto a shard) when the pool needs it
 *   elsewhere: an acquire that found the shards empty, a waiter not served
 *   within 1 ms, the reaper (parked and not released since its previous
 *   pass, or due for a health check, past its lifetime), evict and destroy.
 */
#ifndef SHARDPOOL_POOL_H
#define SHARDPOOL_POOL_H

#include <stdint.h>
#include <stdbool.h>

#include <shardpool/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shp_pool shp_pool; /* opaque */
typedef struct shp_conn shp_conn; /* opaque: one pooled connection */

/* How to make and keep one connection.  Callbacks are called from acquiring
 * threads (connect, check for validate-on-acquire), releasing threads (reset,
 * close) and the reaper thread (connect, check, close), possibly
 * concurrently for different connections; never concurrently for the same
 * connection.  No pool lock is held during a callback.  Callbacks must not
 * call shp_pool_destroy on their own pool. */
typedef struct shp_ops {
    /* Makes a connection and stores it in *handle.  Returns 0 or a negative
     * errno value, which shp_acquire passes to its caller. */
    int (*connect)(void *ctx, void **handle);
    /* Closes a connection made by connect.  Required. */
    void (*close)(void *ctx, void *handle);
    /* Optional health check: 0 healthy, anything else closes it. */
    int (*check)(void *ctx, void *handle);
    /* Optional, on release: 0 keeps it, nonzero closes it. */
    int (*reset)(void *ctx, void *handle);
    void *ctx;
    /* Optional, on hand-out, in the acquiring thread, before the borrower
     * sees the connection: 0 hands it out, nonzero closes it and the acquire
     * goes on with another.  Lets a reset send its cleanup at release and
     * collect the answer here, off the release's critical path.  (Last, so
     * positional initializers of the fields above keep working.) */
    int (*prepare)(void *ctx, void *handle);
} shp_ops;

/* Alert callback (see shardpool/metrics.h: alert is a shp_alert). */
typedef void (*shp_alert_fn)(shp_pool *pool, int alert, bool raised, double value,
                             double threshold, void *ud);

typedef struct shp_config {
    unsigned min_size;           /* kept open (prefilled at create); default 0 */
    unsigned max_size;           /* never more live than this; default 16 */
    unsigned shards;             /* 0 = one per CPU (default) */
    int64_t acquire_timeout_ns;  /* default wait of shp_acquire; default 5 s */
    int64_t idle_timeout_ns;     /* close idle connections beyond min after
                                    this; 0 = never; default 10 min */
    int64_t max_lifetime_ns;     /* close after this age, minus up to 2.5 %
                                    jitter; 0 = never; default 30 min */
    int64_t health_interval_ns;  /* reaper checks idle connections this often;
                                    0 = never (default) */
    int64_t validate_idle_ns;    /* on acquire, check first if idle longer than
                                    this; < 0 = never; default 500 ms */
    int64_t reaper_interval_ns;  /* how often the reaper runs; also the
                                    resolution of idle and lifetime clocks;
                                    default 100 ms */
    unsigned max_uses;           /* close after this many borrows; 0 = unlimited */
    unsigned max_connecting;     /* cap on concurrent connects; 0 = 4 */
    const char *name;            /* for log lines; copied; default "pool";
                                    at most 63 bytes and no control characters
                                    (bytes < 0x20 or 0x7f), else
                                    shp_config_validate fails with -EINVAL and
                                    logs which limit */
    /* Connect retry: an acquire whose connect fails with a transient error
     * (refused, timed out, unreachable, reset, EIO, EAGAIN) tries again after
     * a random pause in [0, min(cap, base * 2^attempt)] ("full jitter"),
     * never past its deadline.  Other errors are returned at once, among
     * them the adapters' permanent ones (error.h): EACCES bad credentials,
     * ENOENT no such database or user, EPROTONOSUPPORT TLS required but not
     * offered, ENXIO unknown host. */
    unsigned connect_attempts;   /* tries per acquire; 0 = until the deadline;
                                    default 3 */
    int64_t retry_base_ns;       /* default 10 ms */
    int64_t retry_cap_ns;        /* default 1 s */
    /* Circuit breaker: after breaker_threshold consecutive connect failures
     * it opens; while open, an acquire that would have to connect fails at
     * once with -EHOSTDOWN (idle connections are still handed out, and an
     * acquire at max_size still waits for a release); the reaper tries one
     * connect every breaker_probe_ns and closes it when that succeeds. */
    unsigned breaker_threshold;  /* 0 = no breaker; default 5 */
    int64_t breaker_probe_ns;    /* default 250 ms */
    /* Metrics, alerts, history, monitor (shardpool/metrics.h). */
    unsigned metrics_sample;     /* time 1 in this many fast-path acquires;
                                    1 = all; default 256 */
    int64_t metrics_interval_ns; /* the reaper's snapshot for alerts, history
                                    and the live monitor; 0 = none; default 1 s */
    unsigned history_len;        /* snapshots kept; default 60 */
    double alert_utilization;    /* in_use / max_size; <= 0 off; default 0.8 */
    int64_t alert_acquire_p99_ns; /* p99 acquire latency in an interval; <= 0
                                     off; default 1 s (0 in a library built
                                     with SHP_NO_METRICS, which measures no
                                     latency: there create turns a set one off
                                     with one warning, event=alert_unavailable) */
    uint64_t alert_failed_acquires; /* failed acquires per interval; 0 off;
                                       default 5 */
    double alert_error_rate;     /* errors / attempts in an interval; <= 0 off;
                                    default 0.05 */
    shp_alert_fn alert_fn;       /* on alert raise and clear; NULL: alerts are
                                    only logged (warn on raise, info on clear) */
    void *alert_ud;
    /* Hand-over at max_size (last, so positional initializers of the fields
     * above keep working).  0 (default) = strict FIFO handoff: a release
     * hands its connection to the oldest waiter.  > 0: a release pushes it
     * on its shard and wakes the oldest waiter to compete for it (the
     * releaser, or any running thread, may take it first; the waiter then
     * queues again in its place), and hands it over directly only once that
     * waiter has waited this long: unfairness bounded by this, higher
     * throughput when the pool is saturated.  Negative: -EINVAL. */
    int64_t handoff_after_ns;
    /* true (default): a release parks its connection in the calling
     * thread's cache when its shard has other idle connections and nobody
     * waits, and the thread's next acquire takes it back with one CAS (see
     * the top of this file).  false: every release goes to a shard or a
     * waiter, every acquire pops. */
    bool thread_cache;
} shp_config;

/* A snapshot of one pool.  Gauges are read one after another without
 * stopping the pool, so under load they may disagree by the operations in
 * flight; counters are monotonic.  Counters have the names of the same
 * counters in shp_metrics (shardpool/metrics.h); the old names created,
 * acquired and health_failures still compile, with a deprecation warning,
 * until 0.2. */
typedef struct shp_stats {
    /* gauges */
    uint64_t live;        /* connecting + idle + in_use + checking */
    uint64_t idle;
    uint64_t in_use;
    uint64_t connecting;
    uint64_t checking;
    uint64_t waiters;
    /* counters since create */
    SHP_RENAMED(creations, created);       /* connections made */
    uint64_t closed;
    SHP_RENAMED(acquisitions, acquired);   /* successful acquires */
    uint64_t timeouts;
    uint64_t steals;
    uint64_t connect_failures;
    uint64_t health_checks;
    SHP_RENAMED(health_failed, health_failures);
    uint64_t handoffs;    /* releases handed straight to a waiter */
    uint64_t retries;     /* connect attempts after a failed one */
    uint64_t breaker_opens;
    uint64_t breaker_open; /* gauge: 1 while the breaker is open */
} shp_stats;

/* Fills cfg with the defaults above (a NULL cfg is ignored).  Thread-safe:
 * touches *cfg only. */
SHP_API void shp_config_init(shp_config *cfg);

/* Returns 0 if cfg is usable, else -EINVAL (and logs which field; also
 * for a NULL cfg).  Thread-safe: reads *cfg only. */
SHP_API int shp_config_validate(const shp_config *cfg);

/* Creates a pool, starts its reaper and opens min_size connections (a failed
 * prefill is logged and retried by the reaper; it does not fail create).
 * cfg NULL means defaults; *cfg and *ops are copied.  Returns 0 and sets
 * *pool, or -EINVAL (NULL pool or ops, ops without connect or close, bad
 * config) or -ENOMEM.  Thread-safe. */
SHP_API int shp_pool_create(shp_pool **pool, const shp_config *cfg, const shp_ops *ops);

/* Shuts the pool down and frees it.  New acquires fail with -ESHUTDOWN at
 * once and waiters are woken with -ESHUTDOWN; the reaper stops; idle
 * connections are closed; borrowed connections are waited for until
 * drain_timeout_ns (< 0: wait forever, 0: do not wait) and closed as they
 * come back.
 * Returns 0 when every connection was closed: no callback of ops runs
 * again, and ops.ctx may be freed.  Returns -EBUSY when some connections
 * were still borrowed (or being connected or checked) at the deadline: the
 * pool is then gone for every other use, but each such connection stays
 * valid for its borrower, is closed by its release (which returns
 * -ESHUTDOWN), and the last one frees what is left of the pool; ops
 * callbacks run for those, so ops.ctx must outlive them.
 * -EINVAL if pool is NULL, not a pool, or already being destroyed;
 * -ECHILD for a pool inherited across fork().  Call it once, from a thread
 * that is not a pool callback; acquires and releases may run concurrently
 * (see the table above), shp_pool_shutdown and shp_pool_stats may not. */
SHP_API int shp_pool_destroy(shp_pool *pool, int64_t drain_timeout_ns);

/* Shuts the pool down as shp_pool_destroy does, returning the same values
 * (-EALREADY if it was shut down before), but keeps the pool object: later
 * calls get -ESHUTDOWN from shp_acquire, close what shp_release returns,
 * and shp_pool_stats still works.  Free it with shp_pool_destroy, which then
 * returns 0, or -EBUSY while connections borrowed at the deadline are still
 * out.  Call it once; acquires, releases and stats may run concurrently,
 * shp_pool_destroy may not. */
SHP_API int shp_pool_shutdown(shp_pool *pool, int64_t drain_timeout_ns);

/* Borrows a connection.  timeout_ns < 0: the pool's acquire_timeout_ns;
 * 0: never wait for a release (a connect or validation it must make still
 * runs, bounded by the callback's own timeouts, shp_connect_deadline_ns()
 * being -1); INT64_MAX: wait forever.  The deadline is end to end (see
 * "Deadlines" above).  Returns 0 and sets *conn; -ETIMEDOUT (or -EAGAIN
 * when timeout_ns is 0 and the pool is at max_size); -ESHUTDOWN; the connect
 * callback's error when this call tried to create a connection and that
 * failed (shp_acquire_last_error says why); -EHOSTDOWN while the circuit
 * breaker is open; -EINVAL for NULL arguments; -ECHILD for a pool inherited
 * across fork().  Lock-free when an idle connection is on any shard.
 * Thread-safe. */
SHP_API int shp_acquire(shp_pool *pool, shp_conn **conn, int64_t timeout_ns);

/* Returns a borrowed connection: the reset hook runs, then it goes to the
 * oldest waiter, or is parked in the calling thread's cache (when its shard
 * has other idle connections and nobody waits: see the top of this file),
 * or goes to the calling CPU's shard.  A connection past its
 * lifetime or max_uses, or whose reset fails, is closed instead.  Returns 0;
 * -EALREADY if it is not borrowed (a second release, also after the pool
 * closed it: connection memory is reused, never freed, while the pool
 * lives); -EBADF if conn is not a connection handle; -EINVAL if NULL or in
 * the first page; -ECHILD if its pool was inherited across fork() (nothing
 * is closed: it is the parent's);
 * -ESHUTDOWN if the pool is being or was destroyed (it is closed).  A
 * second release cannot be told from a release by a new borrower once the
 * pool has handed the connection out again.  Thread-safe. */
SHP_API int shp_release(shp_conn *conn);

/* Like shp_release, but the pool checks conn belongs to pool first
 * (-EXDEV otherwise; -EINVAL or -ECHILD for a bad pool).  Thread-safe. */
SHP_API int shp_pool_release(shp_pool *pool, shp_conn *conn);

/* Closes a borrowed connection instead of reusing it; its capacity is freed
 * (and given to a waiter, if any).  Returns as shp_release.  Thread-safe. */
SHP_API int shp_release_broken(shp_conn *conn);

/* The handle made by the connect callback, or NULL if conn is NULL or
 * belongs to a pool inherited across fork() (the handle is the parent's).
 * Valid while conn is borrowed.  Thread-safe. */
SHP_API void *shp_conn_handle(const shp_conn *conn);

/* The pool conn belongs to, or NULL if conn is NULL.  Valid while conn is
 * borrowed.  Thread-safe. */
SHP_API shp_pool *shp_conn_pool(const shp_conn *conn);

/* For ops.connect, ops.check and ops.prepare callbacks: the absolute
 * CLOCK_MONOTONIC deadline (ns) of the shp_acquire that runs the callback on
 * the calling thread, or -1 when there is none (the reaper's connects and
 * checks, an acquire that may not wait, outside a callback).  INT64_MAX for
 * an acquire that waits forever.  A callback that caps its own blocking by
 * it never makes an acquire overshoot its deadline; the adapters do.
 * Thread-safe (per thread). */
SHP_API int64_t shp_connect_deadline_ns(void);

/* Fills *out.  Returns 0 or -EINVAL.  Thread-safe; not during destroy. */
SHP_API int shp_pool_stats(shp_pool *pool, shp_stats *out);

/* Why a callback failed: what shp_pool_last_error and shp_acquire_last_error
 * report. */
typedef struct shp_last_error {
    int err;              /* the callback's negative errno; 0: no failure */
    char op[12];          /* "connect", "check" or "prepare" */
    int64_t when_ns;      /* CLOCK_MONOTONIC of the failure */
    /* The backend's own words where the callback recorded them with
     * shp_set_error_detail (the adapters do), else the errno's text; one
     * line, secrets masked. */
    char msg[256];
} shp_last_error;

/* The pool's most recent failure of a connect, check or prepare callback,
 * on any thread (out->err == 0 if none yet).  Returns 0, or -EINVAL for a
 * NULL or invalid argument.  Thread-safe; not after destroy. */
SHP_API int shp_pool_last_error(shp_pool *pool, shp_last_error *out);

/* Read right after a shp_acquire that failed: the last callback failure
 * (connect, validation check, prepare) during that acquire on the calling
 * thread, so that an acquire failing with a backend's error (-EACCES, ...)
 * can show its caller the backend's words, which no other thread's failure
 * overwrites.  out->err == 0 when no callback failed during it (it timed out
 * waiting, the pool was shut down).  Returns 0, or -EINVAL for a NULL out.
 * Thread-safe (per thread). */
SHP_API int shp_acquire_last_error(shp_last_error *out);

/* Waits until memory that shardpool deferred for an RCU grace period has
 * been reclaimed (useful before exit under a leak checker).  Thread-safe;
 * must not be called from a pool callback. */
SHP_API void shp_quiesce(void);

#ifdef __cplusplus
}
#endif
#endif
