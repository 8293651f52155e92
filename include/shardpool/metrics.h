/*
 * shardpool/metrics.h - what a pool has done and how it feels: counters,
 * gauges, latency histograms, alerts, history, exporters, the live monitor.
 *
 * Cost on the fast path: the one counter every acquire bumps (acquisitions)
 * lives in the connection itself, written only by its current borrower with
 * a plain store, and is summed on read with the totals of closed
 * connections; no cache line is written that another CPU's acquirer writes
 * too.  fast_hits and releases are derived on read (acquisitions minus
 * those the slow path served; minus the borrows out now), so the fast path
 * writes nothing for them.  Slow-path counters (steals, waits, creations,
 * closes ...) are atomic adds on lines the fast path never writes.
 *
 * Latency histograms are log-linear (32 sub-buckets per power of two: every
 * reported quantile is within 1.6 % of a recorded value, from 1 ns to 2^41 ns
 * ~ 37 min; more is clamped), one per shard, merged on read.  An acquire that
 * takes the slow path (steal, wait, connect) is always timed.  A fast-path
 * hit costs less than reading the clock (~30 ns here), so each acquire is
 * timed with probability 1/cfg.metrics_sample (an independent per-thread
 * random draw, so no pattern of calls across pools can alias with it), and
 * a timed fast-path hit is recorded with weight metrics_sample: counts, sums
 * and quantiles are unbiased estimates (the acquisitions counter itself is
 * exact).  metrics_sample = 1 times every acquire.  Hold time (acquire to
 * release) is recorded for the timed acquires, with weight metrics_sample.
 *
 * Consistency of a snapshot: each counter is exact and monotonic (never goes
 * backwards between snapshots), but counters and gauges are read one after
 * another while the pool runs, so two fields may disagree by the operations
 * in flight during the read (e.g. idle + in_use + checking may differ from
 * live by a connection in transit).  Each histogram's count, quantiles and
 * le buckets come from one merged copy and agree with each other; its sum_ns
 * is read beside it.  A snapshot never blocks a fast-path acquire or
 * release: it walks the live connections under the registry lock, which
 * only connects and closes take (so with very large pools it delays those
 * by the length of the walk, ~10 ns per connection).
 *
 * Building the library with -DSHP_NO_METRICS (make METRICS=0) compiles the
 * fast-path recording out: every call below still works and answers as
 * documented, but the acquire and hold histograms stay empty (count 0, so
 * interval_acquire_p99_ns stays 0; alert_acquire_p99_ns defaults to 0 and
 * one set anyway is turned off at create, with one warning line,
 * event=alert_unavailable) and fast_hits and releases stay 0: in such a build these fields are not
 * measured, and 0 there does not mean "none".  Counters the pool keeps
 * anyway (acquisitions, the slow-path counters, closes), the gauges, the
 * other alerts, history, the exporters and the monitor are unaffected.
 *
 * A library built with -DSHP_NO_MONITOR (make MONITOR=0) has no live
 * monitor: shp_monitor_enable returns -ENOTSUP, shp_monitor_disable does
 * nothing, and SHARDPOOL_MONITOR=1 is ignored with one warning line
 * (event=monitor_unavailable) at the first pool create.
 */
#ifndef SHARDPOOL_METRICS_H
#define SHARDPOOL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <shardpool/common.h>
#include <shardpool/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHP_METRICS_VERSION 1

/* Why a connection was closed. */
typedef enum shp_close_reason {
    SHP_CLOSE_IDLE = 0,   /* idle longer than idle_timeout_ns, above min_size */
    SHP_CLOSE_LIFETIME,   /* older than max_lifetime_ns */
    SHP_CLOSE_MAX_USES,   /* borrowed max_uses times */
    SHP_CLOSE_HEALTH,     /* failed a health check (reaper or validate-on-acquire) */
    SHP_CLOSE_BROKEN,     /* shp_release_broken, or ops.prepare refused it */
    SHP_CLOSE_EVICTED,    /* shp_pool_evict */
    SHP_CLOSE_SHUTDOWN,   /* the pool was shut down */
    SHP_CLOSE_RESET,      /* ops.reset failed on release */
    SHP_CLOSE_NREASONS
} shp_close_reason;

/* "idle", "lifetime", "max_uses", "health", "broken", "evicted", "shutdown",
 * "reset"; "unknown" for anything else.  Never NULL; a static string, valid
 * for the life of the process (do not free it).  Thread-safe. */
SHP_API const char *shp_close_reason_name(shp_close_reason r);

/* Upper bounds (seconds) of the exported histogram buckets, ascending; the
 * +Inf bucket is the count.  Bound i is SHP_METRICS_LE[i]. */
#define SHP_METRICS_LE_N 29
#define SHP_METRICS_LE_INIT { 25e-9, 50e-9, 100e-9, 250e-9, 500e-9,                       \
                              1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, \
                              1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, \
                              1.0, 2.5, 5.0, 10.0, 30.0, 100.0 }

/* One latency distribution, in nanoseconds. */
typedef struct shp_hist_summary {
    uint64_t count;       /* observations (weighted, see above) */
    uint64_t sum_ns;      /* their total */
    int64_t mean_ns;      /* sum_ns / count; 0 when empty (so are the quantiles) */
    int64_t p50_ns, p90_ns, p99_ns, p999_ns;
    int64_t max_ns;       /* largest value recorded; quantiles never exceed it */
    /* Cumulative: observations <= SHP_METRICS_LE[i] seconds.  Fine buckets
     * straddling a bound are counted in the next one, so an observation up
     * to 1.6 % below a bound may be counted above it. */
    uint64_t le[SHP_METRICS_LE_N];
} shp_hist_summary;

/* Alerts, evaluated by the reaper every metrics_interval_ns. */
typedef enum shp_alert {
    SHP_ALERT_UTILIZATION = 0, /* in_use / max_size above cfg.alert_utilization */
    SHP_ALERT_ACQUIRE_P99,     /* the interval's p99 acquire latency above cfg.alert_acquire_p99_ns */
    SHP_ALERT_FAILED_ACQUIRES, /* more than cfg.alert_failed_acquires failed acquires in the interval */
    SHP_ALERT_ERROR_RATE,      /* the interval's error rate above cfg.alert_error_rate */
    SHP_ALERT_N
} shp_alert;

/* "utilization", "acquire_p99", "failed_acquires", "error_rate"; "unknown"
 * for anything else.  Never NULL; a static string, valid for the life of
 * the process (do not free it).  Thread-safe. */
SHP_API const char *shp_alert_name(shp_alert a);

/* shp_alert_fn (declared in shardpool/pool.h, set in shp_config) is called
 * by the reaper thread when an alert is raised (raised = true) and when it
 * clears; alert is a shp_alert.  An alert is raised when its value goes
 * above its threshold and clears only when the value falls to 90 % of the
 * threshold or below (for failed_acquires: to the threshold minus one or
 * below, and 90 % of it when that is lower): a value hovering around the
 * threshold does not flap.  The callback must not block for long and must
 * not destroy the pool. */

/* A snapshot of one pool. */
typedef struct shp_metrics {
    uint32_t version;            /* SHP_METRICS_VERSION */
    char pool[64];               /* cfg.name */
    int64_t mono_ns;             /* CLOCK_MONOTONIC when taken */
    int64_t wall_ns;             /* CLOCK_REALTIME when taken */
    uint64_t min_size, max_size;

    /* counters since create */
    uint64_t acquisitions;       /* successful acquires */
    /* of those, served on the fast path: from the caller's thread cache or
     * its own shard (called home_hits before; that name is a deprecated alias until 0.2) */
    SHP_RENAMED(fast_hits, home_hits);
    uint64_t steals;             /* taken from another CPU's shard */
    uint64_t waits;              /* acquires that queued for a release */
    uint64_t timeouts;           /* acquires that ended in -ETIMEDOUT or -EAGAIN */
    uint64_t acquire_failures;   /* acquires that failed, for any reason but bad arguments */
    uint64_t creations;          /* connections made */
    uint64_t connect_failures;
    uint64_t retries;            /* connect attempts after a failed one */
    uint64_t breaker_opens;
    uint64_t handoffs;           /* releases handed straight to a waiter */
    uint64_t releases;           /* borrows that ended: shp_release[_broken] of a
                                    borrowed connection (also those answered
                                    -ESHUTDOWN, which close it), and the few the
                                    pool ends itself (a borrow given up at
                                    shutdown, an orphan's late release) */
    uint64_t errors;             /* shp_conn_error reports */
    uint64_t health_passed;
    uint64_t health_failed;
    uint64_t closes[SHP_CLOSE_NREASONS]; /* by shp_close_reason */

    /* gauges */
    uint64_t live, idle, in_use, connecting, checking, waiters;
    uint32_t breaker_open;       /* 1 while open */
    double utilization;          /* in_use / max_size, 0..1 */
    int64_t age_min_ns, age_avg_ns, age_max_ns; /* of live connections; 0 if none */

    shp_hist_summary acquire;    /* shp_acquire latency, successful or not */
    shp_hist_summary hold;       /* acquire to release */

    /* the reaper's last completed interval (zero before the first) */
    int64_t interval_ns;
    uint64_t interval_acquisitions;
    uint64_t interval_failed_acquires;
    double interval_error_rate;  /* (failed acquires + broken releases + errors)
                                    / (acquisitions + failed acquires) */
    int64_t interval_acquire_p99_ns;

    uint32_t alerts;             /* bit (1u << shp_alert) set while raised */
} shp_metrics;

/* Takes a snapshot of pool into *out.  Returns 0, or -EINVAL (NULL, not a
 * pool).  Thread-safe; works after shp_pool_shutdown; not during or after
 * shp_pool_destroy.  Costs a walk of the live connections and a merge of
 * the shards' histograms (tens of microseconds). */
SHP_API int shp_pool_metrics(shp_pool *pool, shp_metrics *out);

/* One live connection. */
typedef struct shp_conn_info {
    const void *id;              /* the shp_conn address: stable while it lives */
    const char *state;           /* "idle", "in_use", "checking", "connecting", ... (static) */
    int64_t created_ns;          /* CLOCK_MONOTONIC */
    int64_t last_used_ns;        /* last release (pool clock, reaper_interval_ns resolution) */
    uint64_t uses;
    uint64_t errors;             /* shp_conn_error reports */
    int last_error;              /* the last one reported (negative errno), 0 if none */
} shp_conn_info;

/* Lists up to cap live connections into out.  Returns how many live
 * connections there are (may exceed cap: only cap are written), or -EINVAL.
 * Thread-safe; the same consistency as a snapshot. */
SHP_API int shp_pool_conn_info(shp_pool *pool, shp_conn_info *out, size_t cap);

/* Records that an operation on borrowed connection conn failed with err
 * (a negative errno value) without closing it; counted in the pool's errors
 * and the error-rate alert.  Returns 0, -EINVAL (NULL, err >= 0) or
 * -EALREADY (not borrowed).  Call it from the borrowing thread. */
SHP_API int shp_conn_error(shp_conn *conn, int err);

/* Retires every connection alive now (after a failover, a credentials
 * change ...): when it returns, no idle connection made before the call is
 * left on a shard (the reaper closed them: the call waits for its pass),
 * connections borrowed or being checked or connected at the call are
 * closed when they come back, and new ones are made as needed.  Counted as
 * SHP_CLOSE_EVICTED.  Returns 0, -EINVAL, or -ESHUTDOWN.  Thread-safe; from
 * a pool callback it does not wait for the reaper. */
SHP_API int shp_pool_evict(shp_pool *pool);

/* Copies up to cap of the pool's history (one snapshot per
 * metrics_interval_ns, the last cfg.history_len of them) into out, oldest
 * first.  Returns the number copied, or -EINVAL.  Thread-safe. */
SHP_API int shp_pool_history(shp_pool *pool, shp_metrics *out, size_t cap);

/* Prometheus text exposition format 0.0.4 of n snapshots (families
 * shardpool_*, one series per pool, label pool="<name>"; histograms as
 * _bucket{le=...}/_sum/_count in seconds).  Writes at most len bytes
 * (NUL-terminated when len > 0) and returns the length of the whole text, as
 * snprintf does, -EINVAL (m NULL with n > 0, buf NULL with len > 0), or
 * -EOVERFLOW if the text would exceed INT_MAX bytes.  Thread-safe. */
SHP_API int shp_metrics_prometheus(const shp_metrics *m, size_t n, char *buf, size_t len);

/* JSON {"version":1,"pools":[{...},...]} of n snapshots; returns as
 * shp_metrics_prometheus.  Thread-safe. */
SHP_API int shp_metrics_json(const shp_metrics *m, size_t n, char *buf, size_t len);

/* Live monitor: opt in (off by default), and from then on every pool of
 * this process publishes its snapshot every metrics_interval_ns to a shared
 * memory segment /dev/shm/shardpool.<uid>.<pid>, mode 0600 (readable by
 * this user only), which `shptop` reads.  Setting the environment variable
 * SHARDPOOL_MONITOR=1 enables it at the first pool create.  Returns 0 or a
 * negative errno (segment not created).  Thread-safe. */
SHP_API int shp_monitor_enable(void);
/* Stops publishing and removes the segment; pools keep running, and
 * shp_monitor_enable may start it again.  A no-op when not enabled.
 * Thread-safe. */
SHP_API void shp_monitor_disable(void);

#ifdef __cplusplus
}
#endif
#endif
