/*
 * aba.c - ABA torture of the shard stacks (invariants I1 and I4).
 *
 * Two connections on two shards, 16 threads (default) on every CPU doing
 * 4,000,000 (default, total) acquire/release pairs with no hold time: each
 * connection is popped and pushed back at once, over and over, by threads
 * that are preempted at random points -- the pattern in which a pop that
 * compares only the head pointer (single-word CAS) installs a stale next
 * and hands one connection to two threads.  The reaper is kept out of the
 * way (100 ms interval, no idle timeout, no lifetime, no health checks, no
 * validation on acquire), so every pop and push is an acquirer's.
 *
 * Nested pairs: with zero hold time each CPU soon keeps "its" connection on
 * its own shard (released where it was popped) and a stack never holds two
 * entries, so no pop can read a stale next: a broken pop then survives about
 * half of the runs.  So 1 pair in NESTED_PERIOD is nested: holding its
 * connection, the thread try-acquires (timeout 0, never waits) the other
 * one and releases both in random order, which leaves both on one shard,
 * two deep, where the ABA can happen.  Holding one connection while
 * claiming a second also catches a pool that returns the same one twice.
 *
 * Checked: every borrow (owner tag CAS, magic), every acquire succeeds
 * within the 10 s default (a timeout means a lost wakeup or a lost
 * connection: nothing should wait that long), every release returns 0, I2
 * sampled; every second (census, workers paused) and at the end the
 * conservation of counts and both connections borrowable at once (a pop
 * that drops a stack entry loses a connection for good, and the run would
 * then crawl on one); finally destroy returning 0 and nothing left open or
 * closed twice.
 *
 * The pool's thread cache is off unless --thread-cache 1: with it on, a
 * thread takes back the connection it released last with one CAS, and the
 * stacks see few pops; with it on, the run tortures the claims of parked
 * connections instead (two connections, sixteen threads: most claims race).
 *
 * --handoff-after-ns N runs the same with the pool's handoff_after_ns = N:
 * a waiter that keeps losing the race for pushed connections must still be
 * served within the 10 s timeout (the bound hands it one).
 *
 * Exit status: 0 pass, 1 violation, 2 usage error.
 */
#include "stress_common.h"

#define PROG "aba"
#define MAX_SIZE 2u
#define DEFAULT_ACQUIRE_TIMEOUT_NS (10 * ST_NS_PER_S)
#define DRAIN_NS (5 * ST_NS_PER_S)

/* 1 in NESTED_PERIOD pairs is nested: see the comment at the top. */
#define NESTED_PERIOD 16u

static _Atomic uint64_t g_nested;      /* nested pairs that got both connections */
static _Atomic uint64_t g_nested_miss; /* nested tries that found none (-EAGAIN) */

/* One pair: acquire (pool default timeout), check, release at once; now and
 * then, while still holding it, try to take the other connection too. */
static void aba_cycle(st_worker *w)
{
    shp_conn *c = NULL;
    int rc = shp_acquire(st.pool, &c, -1);
    if (rc == -ETIMEDOUT) {
        atomic_fetch_add(&st.timeouts, 1);
        st_violation("shp_acquire timed out after the 10 s default (lost wakeup or lost "
                     "connection)");
        return;
    }
    if (rc != 0 || !c) {
        atomic_fetch_add(&st.acquire_errors, 1);
        st_violation("shp_acquire returned %d (%s), conn %p", rc, shp_err_name(rc), (void *)c);
        return;
    }
    fake_handle *h = st_claim(c, w->tag);
    uint64_t r = st_rng(&w->rng);
    shp_conn *c2 = NULL;
    fake_handle *h2 = NULL;
    if (r % NESTED_PERIOD == 0) {
        /* Never waits: holding one connection while waiting for the other
         * could deadlock two threads until the 10 s timeout. */
        rc = shp_acquire(st.pool, &c2, 0);
        if (rc == 0 && c2) {
            atomic_fetch_add_explicit(&g_nested, 1, memory_order_relaxed);
            /* Holding c, so the same connection again fails this CAS. */
            h2 = st_claim(c2, w->tag);
        } else if (rc == -EAGAIN) {
            atomic_fetch_add_explicit(&g_nested_miss, 1, memory_order_relaxed);
            c2 = NULL;
        } else {
            atomic_fetch_add(&st.acquire_errors, 1);
            st_violation("shp_acquire(timeout 0) returned %d (%s), conn %p", rc,
                         shp_err_name(rc), (void *)c2);
            c2 = NULL;
        }
    }
    /* Each owner tag is cleared just before its own release; the order of
     * the two releases is random, so either connection can end on top. */
    shp_conn *first = c, *second = c2;
    fake_handle *hf = h, *hs = h2;
    if (c2 && (r >> 32) % 2) {
        first = c2, second = c;
        hf = h2, hs = h;
    }
    if (hf)
        st_unclaim(hf, w->tag);
    st_check_release(shp_release(first), "shp_release");
    if (second) {
        if (hs)
            st_unclaim(hs, w->tag);
        st_check_release(shp_release(second), "shp_release");
    }
}

static void print_line(FILE *f, const char *result, double elapsed)
{
    fprintf(f,
            "%s: ops=%" PRIu64 " threads=%u duplicate_owners=%" PRIu64 " bad_magic=%" PRIu64
            " timeouts=%" PRIu64 " errors=%" PRIu64 " violations=%" PRIu64
            " elapsed=%.2fs RESULT=%s\n",
            PROG, atomic_load(&st.done), st.args.threads, atomic_load(&st.double_handouts),
            atomic_load(&st.bad_magic), atomic_load(&st.timeouts),
            atomic_load(&st.acquire_errors) + atomic_load(&st.release_errors),
            atomic_load(&st.violations), elapsed, result);
}

int main(int argc, char **argv)
{
    /* Thread cache off by default: this tortures the shard stacks, and with
     * the cache on most pairs never touch them. */
    const st_args def = { .threads = 16, .ops = 4000000, .seconds = 120, .thread_cache = false };
    st_setup(PROG, "duplicate_owners", argc, argv, &def);

    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = MAX_SIZE;
    cfg.max_size = MAX_SIZE;
    cfg.shards = 2;
    cfg.acquire_timeout_ns = DEFAULT_ACQUIRE_TIMEOUT_NS;
    cfg.reaper_interval_ns = 100 * ST_NS_PER_MS;
    cfg.idle_timeout_ns = 0;
    cfg.max_lifetime_ns = 0;
    cfg.health_interval_ns = 0;
    cfg.validate_idle_ns = -1;
    cfg.max_uses = 0;
    cfg.name = PROG;
    cfg.handoff_after_ns = st.args.handoff_after_ns; /* --handoff-after-ns */
    cfg.thread_cache = st.args.thread_cache;         /* --thread-cache */
    st.max_size = MAX_SIZE;
    st.census_period_ns = 1 * ST_NS_PER_S;
    st.census_wait_ns = 20 * ST_NS_PER_MS;

    if (!st_create_pool(&cfg, aba_cycle))
        return ST_EXIT_FAIL;

    double elapsed = st_run();
    if (elapsed < 0 || atomic_load(&st.violations) != 0) {
        /* Do not walk a pool that may be corrupt: report and leave. */
        print_line(stdout, "FAIL", elapsed < 0 ? st_elapsed_s() : elapsed);
        st_fail_fast();
    }
    st_report_run("pairs", elapsed);

    st_final fin = st_final_checks(100 * ST_NS_PER_MS, 0);
    const shp_stats s = fin.s, after = fin.after;
    fprintf(stderr, "%s: before destroy: live=%" PRIu64 " idle=%" PRIu64 " in_use=%" PRIu64
            " created=%" PRIu64 " closed=%" PRIu64 " backend_open=%" PRIu64
            "; capacity check held %u of %u; acquired=%" PRIu64 " steals=%" PRIu64
            " waits=%" PRIu64 " handoffs=%" PRIu64 " pool_timeouts=%" PRIu64 "; nested pairs=%" PRIu64
            " (tries that found none: %" PRIu64 ")\n",
            PROG, s.live, s.idle, s.in_use, s.creations, s.closed, fin.open_now, fin.held, MAX_SIZE,
            after.acquisitions, after.steals, fin.waits, after.handoffs, after.timeouts,
            atomic_load(&g_nested), atomic_load(&g_nested_miss));

    int drc = 0;
    st_destroy_and_check(DRAIN_NS, &drc);
    fprintf(stderr, "%s: destroy=%d backend: opened=%" PRIu64 " closed=%" PRIu64
            " bad_close=%" PRIu64 "; pool log lines: error=%" PRIu64 " warn=%" PRIu64 "\n",
            PROG, drc, atomic_load(&st.fb.opened), atomic_load(&st.fb.closed),
            atomic_load(&st.fb.bad_close), atomic_load(&st.log_lines[SHP_LOG_ERROR]),
            atomic_load(&st.log_lines[SHP_LOG_WARN]));

    bool pass = atomic_load(&st.violations) == 0;
    print_line(stdout, pass ? "PASS" : "FAIL", elapsed);
    return pass ? ST_EXIT_PASS : ST_EXIT_FAIL;
}
