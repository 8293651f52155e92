/*
 * monitor_demo.c - a process with two monitored pools, "orders" and
 * "sessions", for tests/monitor/shptop_test.sh and the README's shptop
 * screen (tests only).
 *
 * The pools are real (fake backend): orders holds 7 of its 8 connections;
 * sessions holds 1 of its 2 and its circuit breaker is really open (its
 * backend refuses connects from then on).  Gauges and the breaker come from
 * shp_pool_stats.
 *
 * Line protocol, stdin -> stdout:
 *   at start    one "published pool=<name> key=value ..." line per pool (what
 *               went into the segment), then "ready pid=<pid>"
 *   "step"      publishes the next snapshot of both pools: published lines, "ok"
 *   "auto <ms>" from now on publishes the next snapshot every <ms> ms, printing
 *               nothing; answers "ok"
 *   end of input  releases the connections, destroys the pools and exits 0
 *               without shp_monitor_disable: the atexit handler removes the
 *               segment.
 * Exit status 1 when setting up failed (message on stderr).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shardpool.h>
#include <shardpool/metrics.h>

#include "fakeconn.h"
#include "monitor.h"

#define NS_PER_S 1000000000LL

struct demo_pool {
    const char *name;
    fake_backend fb;
    shp_config cfg;
    shp_pool *pool;
    shp_conn *held[8];
    unsigned nheld;
    /* DEMO-ONLY synthetic counters (see snapshot()) */
    uint64_t acq0, acq_step, fail0, fail_step;
    int64_t p99_ns;
};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int die(const char *what, int err)
{
    fprintf(stderr, "monitor_demo: %s: %s\n", what, shp_strerror(err));
    return 1;
}

/* ---- DEMO-ONLY: hand-filled snapshots ------------------------------------------
 * Until the reaper publishes shp_pool_metrics() snapshots (metrics_interval_ns
 * is 0 here so that it never does), the demo publishes itself.  Gauges and the
 * breaker are the pool's (shp_pool_stats); the counters, the p99 and the
 * alerts are synthetic, and mono_ns advances exactly 1 s per step so that the
 * rates shptop derives are exact: acq_step/s and fail_step/s.  Remove this
 * block (and the shp__monitor_* calls marked DEMO-ONLY) once the reaper
 * publishes, and read shp_pool_metrics() instead. */
static int64_t t0_ns;

static shp_metrics snapshot(struct demo_pool *d, uint64_t step)
{
    shp_stats st;
    shp_metrics m;
    memset(&m, 0, sizeof m);
    if (shp_pool_stats(d->pool, &st) != 0)
        memset(&st, 0, sizeof st);
    m.version = SHP_METRICS_VERSION;
    snprintf(m.pool, sizeof m.pool, "%s", d->name);
    m.mono_ns = t0_ns + (int64_t)step * NS_PER_S;
    m.wall_ns = clock_ns(CLOCK_REALTIME);
    m.min_size = d->cfg.min_size;
    m.max_size = d->cfg.max_size;
    m.acquisitions = d->acq0 + step * d->acq_step;
    m.acquire_failures = d->fail0 + step * d->fail_step;
    m.creations = st.creations;
    m.connect_failures = st.connect_failures;
    m.retries = st.retries;
    m.breaker_opens = st.breaker_opens;
    m.live = st.live, m.idle = st.idle, m.in_use = st.in_use;
    m.connecting = st.connecting, m.checking = st.checking, m.waiters = st.waiters;
    m.breaker_open = (uint32_t)st.breaker_open;
    m.utilization = m.max_size ? (double)m.in_use / (double)m.max_size : 0;
    m.acquire.count = m.acquisitions;
    m.acquire.p99_ns = d->p99_ns;
    m.interval_ns = NS_PER_S;
    m.interval_acquisitions = d->acq_step;
    m.interval_failed_acquires = d->fail_step;
    m.interval_acquire_p99_ns = d->p99_ns;
    if (m.utilization > d->cfg.alert_utilization)
        m.alerts |= 1u << SHP_ALERT_UTILIZATION;
    if (d->cfg.alert_failed_acquires && d->fail_step > d->cfg.alert_failed_acquires)
        m.alerts |= 1u << SHP_ALERT_FAILED_ACQUIRES;
    if (m.breaker_open)
        m.alerts |= 1u << SHP_ALERT_ERROR_RATE;
    return m;
}

static void publish(struct demo_pool *pools, size_t n, uint64_t step, bool print)
{
    for (size_t i = 0; i < n; i++) {
        shp_metrics m = snapshot(&pools[i], step);
        shp__monitor_publish(pools[i].pool, &m); /* DEMO-ONLY */
        if (print)
            printf("published pool=%s step=%" PRIu64 " live=%" PRIu64 " idle=%" PRIu64
                   " in_use=%" PRIu64 " max=%" PRIu64 " waiters=%" PRIu64
                   " acquisitions=%" PRIu64 " acquire_failures=%" PRIu64
                   " p99_ns=%" PRId64 " utilization=%.17g breaker_open=%u alerts=%u\n",
                   m.pool, step, m.live, m.idle, m.in_use, m.max_size, m.waiters,
                   m.acquisitions, m.acquire_failures, m.interval_acquire_p99_ns,
                   m.utilization, m.breaker_open, m.alerts);
    }
    fflush(stdout);
}
/* ---- end of DEMO-ONLY ------------------------------------------------------------ */

static int make_pool(struct demo_pool *d, unsigned min, unsigned max)
{
    fake_init(&d->fb);
    shp_ops ops = fake_ops(&d->fb);
    shp_config_init(&d->cfg);
    d->cfg.name = d->name;
    d->cfg.min_size = min;
    d->cfg.max_size = max;
    d->cfg.breaker_threshold = 2;
    d->cfg.alert_utilization = 0.8; /* DEMO-ONLY: the thresholds snapshot() applies */
    d->cfg.alert_failed_acquires = 5;
    d->cfg.metrics_interval_ns = 0; /* the reaper publishes nothing: see DEMO-ONLY */
    int err = shp_pool_create(&d->pool, &d->cfg, &ops);
    if (err)
        return err;
    shp__monitor_pool_added(d->pool); /* DEMO-ONLY: until shp_pool_create calls it */
    return 0;
}

static int hold(struct demo_pool *d, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        int err = shp_acquire(d->pool, &d->held[d->nheld], NS_PER_S);
        if (err)
            return err;
        d->nheld++;
    }
    return 0;
}

int main(void)
{
    t0_ns = clock_ns(CLOCK_MONOTONIC);
    int err = shp_monitor_enable();
    if (err)
        return die("shp_monitor_enable", err);

    struct demo_pool pools[2] = {
        { .name = "orders", .acq0 = 120000, .acq_step = 250, .fail0 = 7, .fail_step = 3,
          .p99_ns = 1500000 },
        { .name = "sessions", .acq0 = 4200, .acq_step = 40, .fail0 = 1, .fail_step = 6,
          .p99_ns = 42000 },
    };
    if ((err = make_pool(&pools[0], 0, 8)) || (err = make_pool(&pools[1], 2, 4)))
        return die("shp_pool_create", err);

    /* orders: 7 of 8 borrowed, 1 idle. */
    if ((err = hold(&pools[0], 8)))
        return die("acquire orders", err);
    shp_release(pools[0].held[--pools[0].nheld]);

    /* sessions: 1 of its 2 borrowed; then the backend refuses, and of two
     * more acquires the second must connect: 3 refused attempts open the
     * breaker (threshold 2).  The first one is given back: 1 idle. */
    if ((err = hold(&pools[1], 1)))
        return die("acquire sessions", err);
    atomic_store(&pools[1].fb.connect_err, -ECONNREFUSED);
    shp_conn *extra[2] = { NULL, NULL };
    for (int i = 0; i < 2; i++)
        if (shp_acquire(pools[1].pool, &extra[i], NS_PER_S) != 0)
            extra[i] = NULL;
    for (int i = 0; i < 2; i++)
        if (extra[i])
            shp_release(extra[i]);
    shp_stats st;
    if (shp_pool_stats(pools[1].pool, &st) != 0 || !st.breaker_open)
        return die("opening the sessions breaker", -EAGAIN);

    uint64_t step = 0;
    publish(pools, 2, step, true);
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);

    int auto_ms = 0;
    char line[128];
    size_t used = 0;
    for (;;) {
        struct pollfd pf = { .fd = STDIN_FILENO, .events = POLLIN };
        int r = poll(&pf, 1, auto_ms > 0 ? auto_ms : -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            publish(pools, 2, ++step, false);
            continue;
        }
        ssize_t n = read(STDIN_FILENO, line + used, sizeof line - 1 - used);
        if (n <= 0)
            break; /* end of input */
        used += (size_t)n;
        line[used] = '\0';
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            int ms;
            if (strcmp(line, "step") == 0) {
                publish(pools, 2, ++step, true);
                puts("ok");
            } else if (sscanf(line, "auto %d", &ms) == 1 && ms > 0) {
                auto_ms = ms;
                puts("ok");
            } else {
                printf("error unknown command '%s'\n", line);
            }
            fflush(stdout);
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest + 1);
            used = rest;
        }
        if (used == sizeof line - 1)
            used = 0; /* an overlong line: dropped */
    }

    for (size_t i = 0; i < 2; i++) {
        while (pools[i].nheld)
            shp_release(pools[i].held[--pools[i].nheld]);
        shp__monitor_pool_removed(pools[i].pool); /* DEMO-ONLY: until destroy calls it */
        shp_pool_destroy(pools[i].pool, 0);
    }
    return 0;
}
