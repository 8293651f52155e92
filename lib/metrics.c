/*
 * metrics.c - snapshots, per-connection info and error reports, and the
 * reaper's metrics pass (alerts, history, live monitor); the histogram is
 * hist.c's.  See shardpool/metrics.h for what is counted where and what a
 * snapshot guarantees.
 */
#include "fork.h"
#include "log_internal.h"
#include "metrics_internal.h"
#include "monitor.h"
#include "retry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[SHP_CLOSE_NREASONS] = {
    "idle", "lifetime", "max_uses", "health", "broken", "evicted", "shutdown", "reset",
};

const char *shp_close_reason_name(shp_close_reason r)
{
    return (unsigned)r < SHP_CLOSE_NREASONS ? reason_names[r] : "unknown";
}

static const char *const alert_names[SHP_ALERT_N] = {
    "utilization", "acquire_p99", "failed_acquires", "error_rate",
};

const char *shp_alert_name(shp_alert a)
{
    return (unsigned)a < SHP_ALERT_N ? alert_names[a] : "unknown";
}

/* ---------------------------------------------------------------- set-up */

int shp__metrics_init(shp_pool *p)
{
    for (unsigned i = 0; i < p->nshards; i++) {
        p->shards[i].acq_hist = aligned_alloc(SHP_CACHELINE, sizeof(struct shp__hist));
        p->shards[i].hold_hist = aligned_alloc(SHP_CACHELINE, sizeof(struct shp__hist));
        if (!p->shards[i].acq_hist || !p->shards[i].hold_hist)
            return -ENOMEM;
        memset(p->shards[i].acq_hist, 0, sizeof(struct shp__hist));
        memset(p->shards[i].hold_hist, 0, sizeof(struct shp__hist));
    }
    p->mx = calloc(1, sizeof *p->mx);
    if (!p->mx)
        return -ENOMEM;
    if (p->cfg.history_len) {
        p->history = calloc(p->cfg.history_len, sizeof *p->history);
        if (!p->history)
            return -ENOMEM;
    }
    return 0;
}

void shp__metrics_free(shp_pool *p)
{
    for (unsigned i = 0; p->shards && i < p->nshards; i++) {
        free(p->shards[i].acq_hist);
        free(p->shards[i].hold_hist);
    }
    free(p->mx);
    free(p->history);
    p->mx = NULL;
    p->history = NULL;
}

void shp__metrics_retire(shp_pool *p, shp_conn *c)
{
    p->closed_uses += atomic_load_explicit(&c->uses, memory_order_acquire);
    p->closed_releases += atomic_load_explicit(&c->uses, memory_order_acquire); /* all ended */
}


/* ---------------------------------------------------------------- snapshots */

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SHP_NS_PER_S + ts.tv_nsec;
}

/* Fast hits (reported as fast_hits: served from the thread cache or the
 * home shard) are the acquisitions the slow path did not serve.  A slow-path
 * borrow counts itself in slow_hits before its uses (release order; read
 * here after the uses, with acquire), so a snapshot can only see too few
 * fast hits, by the borrows in flight: reporting the highest value yet keeps
 * the counter monotonic, and it is exact when nothing is in flight. */
/* v, or the highest value *seen reported before if that is higher. */
static inline uint64_t monotonic(_Atomic uint64_t *seen, uint64_t v)
{
    uint64_t s = atomic_load_explicit(seen, memory_order_relaxed);
    while (v > s && !atomic_compare_exchange_weak_explicit(seen, &s, v, memory_order_relaxed,
                                                          memory_order_relaxed))
        ;
    return v > s ? v : s;
}

static uint64_t fast_hits(shp_pool *p, uint64_t acquisitions)
{
#ifndef SHP_NO_METRICS
    uint64_t slow = atomic_load_explicit(&p->slow_hits, memory_order_acquire);
    return monotonic(&p->fast_hits_seen, acquisitions > slow ? acquisitions - slow : 0);
#else
    (void)p;
    (void)acquisitions;
    return 0;
#endif
}

/* Walks the registry under reg_lock: every connection is counted exactly
 * once, either live here or in the closed totals (shp__metrics_retire runs
 * under the same lock), so the summed counters never go backwards. */
static void gather_conns(shp_pool *p, shp_metrics *m)
{
    uint64_t uses = 0, rels = 0, n = 0;
    int64_t age_sum = 0;
    struct shp__reg *node;
    pthread_mutex_lock(&p->reg_lock);
    int64_t now = shp__now_ns(); /* after every registration we will see */
    shp__reg_for_each(node, &p->reg) {
        shp_conn *c = caa_container_of(node, shp_conn, reg);
        /* uses first: a borrow's uses store follows its IN_USE (see
         * releases below) */
        uint64_t u = atomic_load_explicit(&c->uses, memory_order_acquire);
        bool borrowed = false;
        switch (atomic_load_explicit(&c->state, memory_order_relaxed)) {
        case SHP__IDLE: case SHP__CACHED: m->idle++; break;
        case SHP__IN_USE: case SHP__ORPHANED: m->in_use++; borrowed = true; break;
        case SHP__CHECKING: m->checking++; break;
        default: break;
        }
        uses += u;
        rels += u > 0 && borrowed ? u - 1 : u;
        int64_t age = now - c->created_ns;
        if (n == 0 || age < m->age_min_ns)
            m->age_min_ns = age;
        if (age > m->age_max_ns)
            m->age_max_ns = age;
        age_sum += age;
        n++;
    }
    m->acquisitions = uses + p->closed_uses;
#ifndef SHP_NO_METRICS
    m->releases = rels + p->closed_releases;
#else
    (void)rels;
#endif
    pthread_mutex_unlock(&p->reg_lock);
#ifndef SHP_NO_METRICS
    /* Released = every borrow but the one out now.  A borrow stores IN_USE
     * before its uses, so reading uses first can only count it as out
     * (too few releases, by the borrows in flight): the highest value yet
     * keeps the counter monotonic, exact when nothing is in flight. */
    m->releases = monotonic(&p->releases_seen, m->releases);
#endif
    m->fast_hits = fast_hits(p, m->acquisitions);
    m->age_avg_ns = n ? age_sum / (int64_t)n : 0;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void gather_counters(shp_pool *p, shp_metrics *m)
{
    m->waits = LOAD(p->waits);
    m->timeouts = LOAD(p->timeouts);
    m->acquire_failures = LOAD(p->acquire_failures);
    m->creations = LOAD(p->creations);
    m->connect_failures = LOAD(p->connect_failures);
    m->retries = LOAD(p->retries);
    m->breaker_opens = LOAD(p->breaker_opens);
    m->handoffs = LOAD(p->handoffs);
    m->errors = LOAD(p->errors);
    m->health_passed = LOAD(p->health_passed);
    m->health_failed = LOAD(p->health_failed);
    for (unsigned r = 0; r < SHP_CLOSE_NREASONS; r++)
        m->closes[r] = LOAD(p->closes[r]);
    for (unsigned i = 0; i < p->nshards; i++)
        m->steals += LOAD(p->shards[i].steals);
    uint64_t cap = atomic_load(&p->cap);
    m->live = SHP__CAP_LIVE(cap);
    m->connecting = SHP__CAP_CONNECTING(cap);
    m->waiters = LOAD(p->nwaiters);
    m->breaker_open = shp__breaker_open(p);
}

/* Fills *m, except the histograms (gather_hists). */
static void gather(shp_pool *p, shp_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->version = SHP_METRICS_VERSION;
    snprintf(m->pool, sizeof m->pool, "%s", p->name);
    m->mono_ns = shp__now_ns();
    m->wall_ns = wall_ns();
    m->min_size = p->cfg.min_size;
    m->max_size = p->cfg.max_size;
    gather_counters(p, m);
    gather_conns(p, m);
    m->utilization = (double)m->in_use / (double)p->cfg.max_size;
    if (m->utilization > 1.0)
        m->utilization = 1.0;
    pthread_mutex_lock(&p->mx_lock);
    m->interval_ns = p->last_interval.interval_ns;
    m->interval_acquisitions = p->last_interval.interval_acquisitions;
    m->interval_failed_acquires = p->last_interval.interval_failed_acquires;
    m->interval_error_rate = p->last_interval.interval_error_rate;
    m->interval_acquire_p99_ns = p->last_interval.interval_acquire_p99_ns;
    m->alerts = p->last_interval.alerts;
    pthread_mutex_unlock(&p->mx_lock);
}

/* Merges the shards' histograms into m's summaries; *acq receives the
 * merged acquire histogram.  Out of memory: the summaries stay empty. */
static void gather_hists(shp_pool *p, shp_metrics *m, struct shp__hist_copy *acq)
{
    memset(acq, 0, sizeof *acq);
    struct shp__hist_copy *hold = calloc(1, sizeof *hold);
    if (!hold)
        return;
    for (unsigned i = 0; i < p->nshards; i++) {
        shp__hist_merge(acq, p->shards[i].acq_hist);
        shp__hist_merge(hold, p->shards[i].hold_hist);
    }
    shp__hist_summarize(&m->acquire, acq);
    shp__hist_summarize(&m->hold, hold);
    free(hold);
}

static bool valid_pool(const shp_pool *p)
{
    return p && p->magic == SHP__POOL_MAGIC;
}

SHP__COLD static int bad_arg(shp_pool *p, const char *event)
{
    return shp__bad_pool(p, event);
}

int shp_pool_metrics(shp_pool *p, shp_metrics *out)
{
    if (!valid_pool(p) || !out)
        return bad_arg(p, "metrics_bad_arg");
    gather(p, out);
    struct shp__hist_copy *acq = malloc(sizeof *acq);
    if (acq)
        gather_hists(p, out, acq);
    free(acq);
    return 0;
}

int shp_pool_stats(shp_pool *p, shp_stats *out)
{
    if (!valid_pool(p) || !out)
        return bad_arg(p, "stats_bad_arg");
    shp_metrics m;
    gather(p, &m);
    memset(out, 0, sizeof *out);
    out->live = m.live;
    out->idle = m.idle;
    out->in_use = m.in_use;
    out->connecting = m.connecting;
    out->checking = m.checking;
    out->waiters = m.waiters;
    out->creations = m.creations;
    out->closed = LOAD(p->closed);
    out->acquisitions = m.acquisitions;
    out->timeouts = m.timeouts;
    out->steals = m.steals;
    out->connect_failures = m.connect_failures;
    out->health_checks = m.health_passed + m.health_failed;
    out->health_failed = m.health_failed;
    out->handoffs = m.handoffs;
    out->retries = m.retries;
    out->breaker_opens = m.breaker_opens;
    out->breaker_open = m.breaker_open;
    return 0;
}

static const char *state_name(uint32_t s)
{
    switch (s) {
    case SHP__CONNECTING: return "connecting";
    case SHP__IDLE: case SHP__CACHED: return "idle";
    case SHP__IN_USE: return "in_use";
    case SHP__CHECKING: return "checking";
    case SHP__FAILED: return "failed";
    case SHP__CLOSING: return "closing";
    case SHP__CLOSED: return "closed";
    case SHP__ORPHANED: return "orphaned";
    default: return "unknown";
    }
}

int shp_pool_conn_info(shp_pool *p, shp_conn_info *out, size_t cap)
{
    if (!valid_pool(p) || (!out && cap))
        return bad_arg(p, "conn_info_bad_arg");
    size_t n = 0;
    struct shp__reg *node;
    pthread_mutex_lock(&p->reg_lock);
    shp__reg_for_each(node, &p->reg) {
        shp_conn *c = caa_container_of(node, shp_conn, reg);
        if (n < cap) {
            shp_conn_info *i = &out[n];
            i->id = c;
            i->state = state_name(atomic_load_explicit(&c->state, memory_order_relaxed));
            i->created_ns = c->created_ns;
            i->last_used_ns = atomic_load_explicit(&c->last_used, memory_order_relaxed);
            i->uses = atomic_load_explicit(&c->uses, memory_order_relaxed);
            i->errors = atomic_load_explicit(&c->errors, memory_order_relaxed);
            i->last_error = atomic_load_explicit(&c->last_error, memory_order_relaxed);
        }
        n++;
    }
    pthread_mutex_unlock(&p->reg_lock);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int shp_conn_error(shp_conn *c, int err)
{
    if (!c || c->magic != SHP__CONN_MAGIC || err >= 0) {
        shp__log(SHP_LOG_WARN, NULL, "event=conn_error_bad_arg conn=%p err_arg=%d", (void *)c, err);
        return -EINVAL;
    }
    if (shp__inherited(c->pool))
        return shp__bad_pool(c->pool, "conn_error_inherited");
    if (atomic_load_explicit(&c->state, memory_order_acquire) != SHP__IN_USE)
        return shp__misuse(c->pool->name, -EALREADY, "conn_error_not_borrowed", c);
    atomic_store_explicit(&c->errors, atomic_load_explicit(&c->errors, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&c->last_error, err, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->pool->errors, 1, memory_order_relaxed);
    return 0;
}

int shp_pool_history(shp_pool *p, shp_metrics *out, size_t cap)
{
    if (!valid_pool(p) || (!out && cap))
        return bad_arg(p, "history_bad_arg");
    pthread_mutex_lock(&p->mx_lock);
    size_t n = p->hist_count < cap ? p->hist_count : cap;
    unsigned len = p->cfg.history_len;
    /* the newest n, oldest first */
    for (size_t i = 0; i < n; i++) {
        unsigned idx = (p->hist_head + len - (unsigned)n + (unsigned)i) % len;
        out[i] = p->history[idx];
    }
    pthread_mutex_unlock(&p->mx_lock);
    return (int)n;
}

/* ---------------------------------------------------------------- the reaper's pass */

struct alert_eval {
    double value, threshold, clear_at;
    bool enabled;
};

static void eval_alerts(shp_pool *p, const shp_metrics *m, struct alert_eval *ev)
{
    const shp_config *cfg = &p->cfg;
    ev[SHP_ALERT_UTILIZATION] = (struct alert_eval){
        m->utilization, cfg->alert_utilization, 0.9 * cfg->alert_utilization,
        cfg->alert_utilization > 0 };
    ev[SHP_ALERT_ACQUIRE_P99] = (struct alert_eval){
        (double)m->interval_acquire_p99_ns, (double)cfg->alert_acquire_p99_ns,
        0.9 * (double)cfg->alert_acquire_p99_ns, cfg->alert_acquire_p99_ns > 0 };
    double fa = (double)cfg->alert_failed_acquires;
    ev[SHP_ALERT_FAILED_ACQUIRES] = (struct alert_eval){
        (double)m->interval_failed_acquires, fa, fa - 1 < 0.9 * fa ? fa - 1 : 0.9 * fa,
        cfg->alert_failed_acquires > 0 };
    ev[SHP_ALERT_ERROR_RATE] = (struct alert_eval){
        m->interval_error_rate, cfg->alert_error_rate, 0.9 * cfg->alert_error_rate,
        cfg->alert_error_rate > 0 };
}

/* Raises and clears alerts with hysteresis (logging each change); returns
 * the raised set.  ev receives the values, for the callbacks. */
static uint32_t update_alerts(shp_pool *p, const shp_metrics *m, uint32_t raised,
                              struct alert_eval *ev)
{
    eval_alerts(p, m, ev);
    for (unsigned a = 0; a < SHP_ALERT_N; a++) {
        bool up = raised & (1u << a);
        bool now_up = up;
        if (!ev[a].enabled)
            now_up = false;
        else if (!up && ev[a].value > ev[a].threshold)
            now_up = true;
        else if (up && ev[a].value <= ev[a].clear_at)
            now_up = false;
        if (now_up == up)
            continue;
        raised ^= 1u << a;
        shp__log(now_up ? SHP_LOG_WARN : SHP_LOG_INFO, p->name,
                 "event=alert_%s alert=%s value=%g threshold=%g", now_up ? "raised" : "cleared",
                 shp_alert_name((shp_alert)a), ev[a].value, ev[a].threshold);
    }
    return raised;
}

/* Calls the alert callback for each alert in changed (after the snapshot
 * that holds the new state is published, so the callback may read it). */
static void notify_alerts(shp_pool *p, uint32_t changed, uint32_t raised,
                          const struct alert_eval *ev)
{
    for (unsigned a = 0; p->cfg.alert_fn && a < SHP_ALERT_N; a++)
        if (changed & (1u << a))
            p->cfg.alert_fn(p, (int)a, raised & (1u << a), ev[a].value, ev[a].threshold,
                            p->cfg.alert_ud);
}

static void compute_interval(shp_metrics *m, const shp_metrics *prev,
                             const struct shp__hist_copy *acq, const struct shp__hist_copy *prev_acq)
{
    m->interval_ns = m->mono_ns - prev->mono_ns;
    m->interval_acquisitions = m->acquisitions - prev->acquisitions;
    m->interval_failed_acquires = m->acquire_failures - prev->acquire_failures;
    uint64_t errs = m->interval_failed_acquires + (m->errors - prev->errors) +
                    (m->closes[SHP_CLOSE_BROKEN] - prev->closes[SHP_CLOSE_BROKEN]);
    uint64_t attempts = m->interval_acquisitions + m->interval_failed_acquires;
    m->interval_error_rate = attempts ? (double)errs / (double)attempts : 0.0;
    struct shp__hist_copy *d = malloc(sizeof *d);
    if (d) {
        shp__hist_diff(d, acq, prev_acq);
        m->interval_acquire_p99_ns = shp__hist_quantile(d, 0.99);
        free(d);
    }
}

void shp__metrics_tick(shp_pool *p, int64_t now)
{
    struct shp__metrics_state *st = p->mx;
    if (p->cfg.metrics_interval_ns <= 0 || now < st->next_ns)
        return;
    st->next_ns = shp__add_sat(now, p->cfg.metrics_interval_ns);
    struct shp__hist_copy *acq = malloc(sizeof *acq);
    if (!acq)
        return;
    shp_metrics m;
    struct alert_eval ev[SHP_ALERT_N];
    uint32_t before = st->raised;
    gather(p, &m);
    gather_hists(p, &m, acq);
    if (st->have_prev) {
        compute_interval(&m, &st->prev, acq, &st->prev_acq);
        st->raised = update_alerts(p, &m, st->raised, ev);
    }
    m.alerts = st->raised;

    pthread_mutex_lock(&p->mx_lock);
    p->last_interval = m;
    if (p->cfg.history_len) {
        p->history[p->hist_head] = m;
        p->hist_head = (p->hist_head + 1) % p->cfg.history_len;
        if (p->hist_count < p->cfg.history_len)
            p->hist_count++;
    }
    pthread_mutex_unlock(&p->mx_lock);
    shp__monitor_publish(p, &m);
    if (st->raised != before)
        notify_alerts(p, st->raised ^ before, st->raised, ev);

    st->prev = m;
    st->prev_acq = *acq;
    st->have_prev = true;
    free(acq);
}
