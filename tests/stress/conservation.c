/*
 * conservation.c - stress test of invariants I1, I2 and I6: under heavy,
 * oversubscribed churn no connection is handed to two borrowers, handed out
 * after it was closed, lost or leaked.
 *
 * 16 threads (default) do 10,000,000 (default, total) acquire/release
 * cycles on a pool of min 4, max 12, one shard per CPU, whose reaper runs
 * every millisecond and retires connections for idleness (2 ms), age
 * (50 ms), use (1000 borrows) and failed health checks; the fake backend
 * fails 2 % of health checks, 0.1 % of connects and 0.01 % of resets, and
 * 1 in 1000 releases is a release-broken.  Hold times are mostly zero,
 * sometimes a short spin, rarely a sched_yield().
 *
 * Checked: every borrow (owner tag CAS, magic), every acquire result
 * (0, -ECONNREFUSED or -ETIMEDOUT), every release result (0), I2 sampled
 * by a monitor; every second (census, workers paused) and at the end (workers
 * joined) the conservation of counts (pool stats against the backend) and
 * the whole capacity borrowable at once; finally destroy returning 0 and
 * nothing left open or closed twice.
 *
 * The pool's thread cache is on (the default) unless --thread-cache 0.
 *
 * --handoff-after-ns N runs the same with the pool's handoff_after_ns = N
 * (releases push and wake a waiter to compete; direct handoff past N ns).
 *
 * Exit status: 0 pass, 1 violation, 2 usage error.
 */
#include "stress_common.h"

#define PROG "conservation"
#define MAX_SIZE 12u
#define ACQUIRE_TIMEOUT_NS (1 * ST_NS_PER_S)
#define DRAIN_NS (5 * ST_NS_PER_S)

/* One cycle: acquire (1 s timeout), check, hold, release. */
static void conservation_cycle(st_worker *w)
{
    shp_conn *c = NULL;
    int rc = shp_acquire(st.pool, &c, ACQUIRE_TIMEOUT_NS);
    if (rc == -ETIMEDOUT) {
        atomic_fetch_add_explicit(&st.timeouts, 1, memory_order_relaxed);
        return;
    }
    if (rc == -ECONNREFUSED) { /* injected by the backend */
        atomic_fetch_add_explicit(&st.connect_errors, 1, memory_order_relaxed);
        return;
    }
    if (rc != 0 || !c) {
        atomic_fetch_add(&st.acquire_errors, 1);
        st_violation("shp_acquire returned %d (%s), conn %p", rc, shp_err_name(rc), (void *)c);
        return;
    }
    fake_handle *h = st_claim(c, w->tag);
    if (!h) {
        st_check_release(shp_release(c), "shp_release (after a failed claim)");
        return;
    }

    uint64_t r = st_rng(&w->rng);
    unsigned hold = (unsigned)(r % 1000);
    if (hold >= 999)
        sched_yield();
    else if (hold >= 900)
        st_spin(100 + (unsigned)((r >> 20) % 400));

    st_unclaim(h, w->tag);
    unsigned how = (unsigned)((r >> 40) % 1000);
    if (how == 0) {
        atomic_fetch_add_explicit(&st.broken_releases, 1, memory_order_relaxed);
        st_check_release(shp_release_broken(c), "shp_release_broken");
    } else if (how % 8 == 1) {
        st_check_release(shp_pool_release(st.pool, c), "shp_pool_release");
    } else {
        st_check_release(shp_release(c), "shp_release");
    }
}

static void print_line(FILE *f, const char *result, const shp_stats *s, double elapsed)
{
    fprintf(f,
            "%s: ops=%" PRIu64 " threads=%u double_handouts=%" PRIu64 " timeouts=%" PRIu64
            " connect_errors=%" PRIu64 " created=%" PRIu64 " closed=%" PRIu64
            " health_failures=%" PRIu64 " steals=%" PRIu64 " bad_magic=%" PRIu64
            " violations=%" PRIu64 " elapsed=%.2fs RESULT=%s\n",
            PROG, atomic_load(&st.done), st.args.threads, atomic_load(&st.double_handouts),
            atomic_load(&st.timeouts), atomic_load(&st.connect_errors), s->creations, s->closed,
            s->health_failed, s->steals, atomic_load(&st.bad_magic),
            atomic_load(&st.violations), elapsed, result);
}

int main(int argc, char **argv)
{
    const st_args def = { .threads = 16, .ops = 10000000, .seconds = 300, .thread_cache = true };
    st_setup(PROG, "double_handouts", argc, argv, &def);

    atomic_store(&st.fb.check_fail_ppm, 20000);
    atomic_store(&st.fb.connect_fail_ppm, 1000);
    atomic_store(&st.fb.reset_fail_ppm, 100);

    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = 4;
    cfg.max_size = MAX_SIZE;
    cfg.shards = 0;
    cfg.acquire_timeout_ns = ACQUIRE_TIMEOUT_NS;
    cfg.reaper_interval_ns = 1 * ST_NS_PER_MS;
    cfg.idle_timeout_ns = 2 * ST_NS_PER_MS;
    cfg.health_interval_ns = 1 * ST_NS_PER_MS;
    cfg.max_lifetime_ns = 50 * ST_NS_PER_MS;
    cfg.max_uses = 1000;
    cfg.validate_idle_ns = 1 * ST_NS_PER_MS;
    cfg.name = PROG;
    cfg.handoff_after_ns = st.args.handoff_after_ns; /* --handoff-after-ns */
    cfg.thread_cache = st.args.thread_cache;         /* --thread-cache */
    st.max_size = MAX_SIZE;
    st.census_period_ns = 1 * ST_NS_PER_S;
    st.census_wait_ns = 50 * ST_NS_PER_MS;

    if (!st_create_pool(&cfg, conservation_cycle))
        return ST_EXIT_FAIL;

    double elapsed = st_run();
    shp_stats s;
    memset(&s, 0, sizeof s);
    if (elapsed < 0 || atomic_load(&st.violations) != 0) {
        /* Do not walk a pool that may be corrupt: report and leave. */
        if (elapsed >= 0)
            shp_pool_stats(st.pool, &s);
        print_line(stdout, "FAIL", &s, elapsed < 0 ? st_elapsed_s() : elapsed);
        st_fail_fast();
    }
    st_report_run("ops", elapsed);

    st_final fin = st_final_checks(200 * ST_NS_PER_MS, 100);
    s = fin.s;
    const shp_stats after = fin.after;
    fprintf(stderr, "%s: before destroy: live=%" PRIu64 " idle=%" PRIu64 " in_use=%" PRIu64
            " backend_open=%" PRIu64 "; capacity check held %u of %u; acquired=%" PRIu64
            " waits=%" PRIu64 " handoffs=%" PRIu64 " health_checks=%" PRIu64 " pool_timeouts=%" PRIu64
            " connect_failures=%" PRIu64 " broken_releases=%" PRIu64 "\n",
            PROG, s.live, s.idle, s.in_use, fin.open_now, fin.held, MAX_SIZE, after.acquisitions,
            fin.waits, after.handoffs, after.health_checks, after.timeouts, after.connect_failures,
            atomic_load(&st.broken_releases));

    int drc = 0;
    st_destroy_and_check(DRAIN_NS, &drc);
    fprintf(stderr, "%s: destroy=%d backend: opened=%" PRIu64 " closed=%" PRIu64
            " bad_close=%" PRIu64 " connect_calls=%" PRIu64 " check_calls=%" PRIu64
            " reset_calls=%" PRIu64 " max_concurrent_connects=%d; pool log lines: error=%" PRIu64
            " warn=%" PRIu64 "\n",
            PROG, drc, atomic_load(&st.fb.opened), atomic_load(&st.fb.closed),
            atomic_load(&st.fb.bad_close), atomic_load(&st.fb.connect_calls),
            atomic_load(&st.fb.check_calls), atomic_load(&st.fb.reset_calls),
            atomic_load(&st.fb.connecting_max), atomic_load(&st.log_lines[SHP_LOG_ERROR]),
            atomic_load(&st.log_lines[SHP_LOG_WARN]));

    bool pass = atomic_load(&st.violations) == 0;
    print_line(stdout, pass ? "PASS" : "FAIL", &s, elapsed);
    return pass ? ST_EXIT_PASS : ST_EXIT_FAIL;
}
