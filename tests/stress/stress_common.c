/*
 * stress_common.c - the harness shared by shardpool's stress programs (tests
 * only): what each call does is described in stress_common.h.  Compiled once
 * per build variant (release, asan, tsan, broken) with that variant's flags.
 */
#include "stress_common.h"

st_state st;

/* ---- time, randomness, spinning ---------------------------------------- */

static int64_t st_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * ST_NS_PER_S + ts.tv_nsec;
}

static void st_nap_ns(int64_t ns)
{
    struct timespec ts = { .tv_sec = ns / ST_NS_PER_S, .tv_nsec = ns % ST_NS_PER_S };
    /* Bounded: a few EINTRs at most matter; give up after 100. */
    for (int i = 0; i < 100 && nanosleep(&ts, &ts) == -1 && errno == EINTR; i++)
        ;
}

uint64_t st_rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t st_mix(uint64_t z)
{
    /* splitmix64 finalizer: seeds per-thread generators from one seed */
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z ? z : 1;
}

void st_spin(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        atomic_signal_fence(memory_order_seq_cst);
}

double st_elapsed_s(void)
{
    return (double)(st_now_ns() - st.start_ns) / 1e9;
}

/* ---- async-signal-safe output (watchdog and fatal signals) ------------- */

typedef struct st_sbuf {
    char b[512];
    size_t n;
} st_sbuf;

static void st_sb_str(st_sbuf *sb, const char *s)
{
    while (s && *s && sb->n < sizeof sb->b - 1)
        sb->b[sb->n++] = *s++;
}

static void st_sb_u64(st_sbuf *sb, uint64_t v)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i < (int)sizeof tmp);
    while (i > 0 && sb->n < sizeof sb->b - 1)
        sb->b[sb->n++] = tmp[--i];
}

static void st_sb_write(st_sbuf *sb)
{
    size_t off = 0;
    for (int i = 0; i < 10 && off < sb->n; i++) {
        ssize_t w = write(STDOUT_FILENO, sb->b + off, sb->n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* Prints a FAIL result line made only of counters and exits 1 at once.
 * Used when the program cannot finish normally (hang, crash). */
static void st_die_line(const char *why, const char *detail, uint64_t num)
{
    st_sbuf sb = { .n = 0 };
    st_sb_str(&sb, st.prog);
    st_sb_str(&sb, ": ops>=");
    st_sb_u64(&sb, atomic_load(&st.done));
    st_sb_str(&sb, " threads=");
    st_sb_u64(&sb, st.args.threads);
    st_sb_str(&sb, " ");
    st_sb_str(&sb, st.dup_name);
    st_sb_str(&sb, "=");
    st_sb_u64(&sb, atomic_load(&st.double_handouts));
    st_sb_str(&sb, " bad_magic=");
    st_sb_u64(&sb, atomic_load(&st.bad_magic));
    st_sb_str(&sb, " violations=");
    st_sb_u64(&sb, atomic_load(&st.violations));
    st_sb_str(&sb, " RESULT=FAIL (");
    st_sb_str(&sb, why);
    st_sb_str(&sb, detail);
    if (num != UINT64_MAX)
        st_sb_u64(&sb, num);
    st_sb_str(&sb, ")\n");
    st_sb_write(&sb);
    _exit(ST_EXIT_FAIL);
}

static void st_fatal_signal(int sig)
{
    st_die_line("fatal signal ", "", (uint64_t)sig);
}

static void st_install_signal_handlers(void)
{
    if (ST_SANITIZED)
        return; /* the sanitizer's own reports are more useful */
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = st_fatal_signal;
        sa.sa_flags = (int)SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---- watchdog ---------------------------------------------------------- */

void st_arm(const char *phase, double secs)
{
    atomic_store(&st.wd_phase, phase);
    atomic_store(&st.wd_deadline_ns, st_now_ns() + (int64_t)(secs * 1e9));
}

void st_disarm(void)
{
    atomic_store(&st.wd_deadline_ns, 0);
}

static void *st_watchdog_main(void *arg)
{
    (void)arg;
    for (;;) { /* ends with the process */
        st_nap_ns(50 * ST_NS_PER_MS);
        int64_t d = atomic_load(&st.wd_deadline_ns);
        if (d != 0 && st_now_ns() > d)
            st_die_line("watchdog: hang in phase ", atomic_load(&st.wd_phase), UINT64_MAX);
    }
    return NULL;
}

static int st_start_watchdog(void)
{
    pthread_t t;
    pthread_attr_t a;
    if (pthread_attr_init(&a) != 0)
        return -1;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, st_watchdog_main, NULL);
    pthread_attr_destroy(&a);
    return rc == 0 ? 0 : -1;
}

/* ---- violations and stopping ------------------------------------------ */

static void st_request_stop(int reason)
{
    int none = ST_STOP_NONE;
    atomic_compare_exchange_strong(&st.stop_reason, &none, reason);
    atomic_store(&st.stop, true);
}

static bool st_stopping(void)
{
    return atomic_load_explicit(&st.stop, memory_order_relaxed);
}

/* Records one violation: prints the first ST_MAX_PRINTED and, unless
 * --keep-going, ends the run soon after so that a broken pool fails fast. */
void st_violation(const char *fmt, ...)
{
    uint64_t n = atomic_fetch_add(&st.violations, 1);
    if (n < ST_MAX_PRINTED) {
        char buf[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s: VIOLATION: %s\n", st.prog, buf);
    } else if (n == ST_MAX_PRINTED) {
        fprintf(stderr, "%s: further violations are counted, not printed\n", st.prog);
    }
    if (!st.args.keep_going) {
        /* Stop soon, not at once: a short grace lets one broken invariant
         * show its other symptoms (a double release is often followed by
         * duplicate owners).  The monitor enforces the deadline. */
        int64_t none = 0;
        atomic_compare_exchange_strong(&st.violation_deadline_ns, &none,
                                       st_now_ns() + ST_VIOLATION_GRACE_NS);
        int reason = ST_STOP_NONE;
        atomic_compare_exchange_strong(&st.stop_reason, &reason, ST_STOP_VIOLATION);
        if (n + 1 >= ST_VIOLATION_MAX)
            st_request_stop(ST_STOP_VIOLATION);
    }
}

const char *st_stop_name(int reason)
{
    switch (reason) {
    case ST_STOP_OPS: return "ops";
    case ST_STOP_TIME: return "seconds";
    case ST_STOP_VIOLATION: return "violation";
    case ST_STOP_SETUP: return "setup";
    default: return "none";
    }
}

/* ---- library log --------------------------------------------------------- */

/* Counts the pool's log lines and shows the first few warnings and errors
 * (injected connect and health failures would otherwise flood stderr). */
static void st_log(shp_log_level level, const char *line, void *ud)
{
    (void)ud;
    unsigned i = (unsigned)level <= 3u ? (unsigned)level : 3u;
    atomic_fetch_add(&st.log_lines[i], 1);
    if (level <= SHP_LOG_WARN && atomic_fetch_add(&st.log_printed, 1) < 5)
        fprintf(stderr, "%s: pool log: %s\n", st.prog, line);
}

/* ---- command line -------------------------------------------------------- */

static void st_usage(FILE *f, const st_args *def)
{
    fprintf(f,
            "usage: %s [--threads N] [--ops N] [--seconds S] [--quick] [--seed N] [--keep-going]\n"
            "          [--handoff-after-ns N] [--thread-cache 0|1]\n"
            "  --threads N   worker threads (1..%u; default %u)\n"
            "  --ops N       acquire/release cycles in total across threads (default %" PRIu64 ")\n"
            "  --seconds S   stop after S seconds if the ops are not done (default %.0f)\n"
            "  --quick       ops /= 20, for sanitizer builds\n"
            "  --seed N      seed of the workers' random choices (default: from the clock)\n"
            "  --keep-going  do not stop at the first violation\n"
            "  --handoff-after-ns N  the pool's handoff_after_ns: 0 = strict FIFO handoff\n"
            "                (default); > 0 = releases push and wake a waiter to compete,\n"
            "                handing over directly past N ns of waiting\n"
            "  --thread-cache 0|1  the pool's thread_cache (default %d)\n"
            "exit status: 0 pass, 1 violation, 2 usage error\n",
            st.prog, ST_MAX_THREADS, def->threads, def->ops, def->seconds, def->thread_cache);
}

static bool st_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || !end || *end != '\0')
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool st_parse_seconds(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || !end || *end != '\0' || !isfinite(v) || v <= 0 || v > 1e6)
        return false;
    *out = v;
    return true;
}

/* Parses argv into st.args (starting from *def).  Exits 0 after --help and
 * 2 on a usage error. */
static void st_parse_args(int argc, char **argv, const st_args *def)
{
    st_args a = *def;
    bool seeded = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char name[32];
        const char *eq = strchr(arg, '=');
        if (eq && (size_t)(eq - arg) < sizeof name) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        bool takes_value = !strcmp(name, "--threads") || !strcmp(name, "--ops") ||
                           !strcmp(name, "--seconds") || !strcmp(name, "--seed") ||
                           !strcmp(name, "--handoff-after-ns") ||
                           !strcmp(name, "--thread-cache");
        if (takes_value && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: %s needs a value\n", st.prog, name);
                st_usage(stderr, def);
                exit(ST_EXIT_USAGE);
            }
            val = argv[++i];
        } else if (!takes_value && val) {
            fprintf(stderr, "%s: %s takes no value\n", st.prog, name);
            st_usage(stderr, def);
            exit(ST_EXIT_USAGE);
        }
        uint64_t u = 0;
        bool ok = true;
        if (!strcmp(name, "--threads")) {
            ok = st_parse_u64(val, &u) && u >= 1 && u <= ST_MAX_THREADS;
            a.threads = (unsigned)u;
        } else if (!strcmp(name, "--ops")) {
            ok = st_parse_u64(val, &u) && u >= 1 && u <= (UINT64_MAX >> 2);
            a.ops = u;
        } else if (!strcmp(name, "--seconds")) {
            ok = st_parse_seconds(val, &a.seconds);
        } else if (!strcmp(name, "--seed")) {
            ok = st_parse_u64(val, &u);
            a.seed = u;
            seeded = true;
        } else if (!strcmp(name, "--handoff-after-ns")) {
            ok = st_parse_u64(val, &u) && u <= (uint64_t)INT64_MAX;
            a.handoff_after_ns = (int64_t)u;
        } else if (!strcmp(name, "--thread-cache")) {
            ok = st_parse_u64(val, &u) && u <= 1;
            a.thread_cache = u == 1;
        } else if (!strcmp(name, "--quick")) {
            a.quick = true;
        } else if (!strcmp(name, "--keep-going")) {
            a.keep_going = true;
        } else if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            st_usage(stdout, def);
            exit(ST_EXIT_PASS);
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n", st.prog, arg);
            st_usage(stderr, def);
            exit(ST_EXIT_USAGE);
        }
        if (!ok) {
            fprintf(stderr, "%s: bad value '%s' for %s\n", st.prog, val ? val : "", name);
            st_usage(stderr, def);
            exit(ST_EXIT_USAGE);
        }
    }
    if (a.quick)
        a.ops = a.ops / 20 ? a.ops / 20 : 1;
    if (!seeded)
        a.seed = (uint64_t)st_now_ns() ^ ((uint64_t)getpid() << 32);
    st.args = a;
}

/* ---- the borrow check ---------------------------------------------------- */

fake_handle *st_claim(shp_conn *conn, uint64_t tag)
{
    if (shp_conn_pool(conn) != st.pool) {
        atomic_fetch_add(&st.foreign_pool, 1);
        st_violation("shp_conn_pool() of a borrowed connection is %p, not the pool %p",
                     (void *)shp_conn_pool(conn), (void *)st.pool);
    }
    fake_handle *h = shp_conn_handle(conn);
    if (!h) {
        atomic_fetch_add(&st.null_handles, 1);
        st_violation("borrowed connection %p has a NULL handle", (void *)conn);
        return NULL;
    }
    uint64_t magic = h->magic;
    if (magic != FAKE_MAGIC) {
        atomic_fetch_add(&st.bad_magic, 1);
        st_violation("CLOSED/FREED HANDLE HANDED OUT: conn %p handle %p magic=%#" PRIx64
                     " (expected %#llx)", (void *)conn, (void *)h, magic, FAKE_MAGIC);
        return NULL;
    }
    uint64_t prev = 0;
    if (!atomic_compare_exchange_strong(&h->owner, &prev, tag)) {
        atomic_fetch_add(&st.double_handouts, 1);
        st_violation("DOUBLE HAND-OUT: connection id=%" PRIu64 " handed to owner %#" PRIx64
                     " while owner %#" PRIx64 " holds it", h->id, tag, prev);
        return NULL;
    }
    return h;
}

bool st_unclaim(fake_handle *h, uint64_t tag)
{
    uint64_t magic = h->magic;
    if (magic != FAKE_MAGIC) {
        atomic_fetch_add(&st.bad_magic, 1);
        st_violation("handle %p closed while borrowed (magic=%#" PRIx64 ")", (void *)h, magic);
        return false;
    }
    uint64_t prev = tag;
    if (!atomic_compare_exchange_strong(&h->owner, &prev, 0)) {
        atomic_fetch_add(&st.double_handouts, 1);
        st_violation("DOUBLE HAND-OUT: owner tag of connection id=%" PRIu64
                     " changed from %#" PRIx64 " to %#" PRIx64 " while borrowed", h->id, tag, prev);
        return false;
    }
    return true;
}

void st_check_release(int rc, const char *what)
{
    if (rc != 0) {
        atomic_fetch_add(&st.release_errors, 1);
        st_violation("%s returned %d (%s)", what, rc, shp_err_name(rc));
    }
}

/* ---- checks at quiescent points (censuses and the end of the run) ---------- */

static bool st_stats_same(const shp_stats *a, const shp_stats *b)
{
    return a->live == b->live && a->idle == b->idle && a->in_use == b->in_use &&
           a->connecting == b->connecting && a->checking == b->checking &&
           a->creations == b->creations && a->closed == b->closed;
}

bool st_check_conservation(const char *where, shp_stats *last, uint64_t *open_now)
{
    bool stable_seen = false;
    shp_stats s1, s2;
    uint64_t o = 0;
    memset(&s1, 0, sizeof s1);
    for (int attempt = 0; attempt < 3000; attempt++) {
        if (attempt)
            st_nap_ns(ST_NS_PER_MS);
        if (shp_pool_stats(st.pool, &s1) != 0)
            continue;
        o = fake_open_now(&st.fb);
        if (shp_pool_stats(st.pool, &s2) != 0 || !st_stats_same(&s1, &s2) ||
            o != fake_open_now(&st.fb))
            continue;
        stable_seen = true;
        *last = s1;
        *open_now = o;
        if (s1.creations - s1.closed == s1.live && s1.live <= st.max_size && s1.in_use == 0 &&
            o == s1.live)
            return true;
    }
    if (!stable_seen) {
        *last = s1;
        *open_now = o;
    }
    st_violation("%s: conservation (3 s of snapshots, none adds up%s): created=%" PRIu64
                 " closed=%" PRIu64 " live=%" PRIu64 " (want created-closed == live) "
                 "in_use=%" PRIu64 " (want 0) max_size=%u backend_open=%" PRIu64 " (want == live)",
                 where, stable_seen ? "" : ", none stable", last->creations, last->closed, last->live,
                 last->in_use, st.max_size, *open_now);
    return false;
}

unsigned st_check_capacity(const char *where, int64_t wait_ns, unsigned refused_retries)
{
    unsigned max = st.max_size;
    shp_conn **held = calloc((size_t)max + 1, sizeof *held);
    fake_handle **hs = calloc((size_t)max + 1, sizeof *hs);
    if (!held || !hs) {
        free(held);
        free(hs);
        st_violation("%s: capacity check: out of memory", where);
        return 0;
    }
    unsigned n = 0, refused = 0;
    bool ended_full = false;
    for (unsigned attempt = 0; attempt < max + 2 + refused_retries; attempt++) {
        shp_conn *c = NULL;
        int rc = shp_acquire(st.pool, &c, wait_ns);
        if (rc == 0) {
            fake_handle *h = st_claim(c, ST_DRAIN_TAG);
            if (!h) {
                st_check_release(shp_release(c), "shp_release (capacity check)");
                break;
            }
            held[n] = c;
            hs[n] = h;
            n++;
            if (n > max) {
                atomic_fetch_add(&st.i2_violations, 1);
                st_violation("%s: I2: %u connections borrowed at once, max_size=%u", where, n,
                             max);
                break;
            }
            continue;
        }
        if (rc == -ETIMEDOUT || rc == -EAGAIN) {
            ended_full = true;
            break;
        }
        if (rc == -ECONNREFUSED && refused < refused_retries) {
            refused++;
            continue;
        }
        atomic_fetch_add(&st.acquire_errors, 1);
        st_violation("%s: capacity check: shp_acquire returned %d (%s) holding %u", where, rc,
                     shp_err_name(rc), n);
        break;
    }
    if (n != max && n <= max && ended_full)
        st_violation("%s: capacity check: only %u of max_size=%u connections could be "
                     "borrowed at once (capacity lost)", where, n, max);
    for (unsigned i = 0; i < n; i++) {
        st_unclaim(hs[i], ST_DRAIN_TAG);
        st_check_release(shp_release(held[i]), "shp_release (capacity check)");
    }
    free(held);
    free(hs);
    return n;
}

/* ---- workers --------------------------------------------------------------- */

/* Parks a worker (holding nothing) while a census runs.  Bounded: the
 * monitor lifts the pause after a bounded census; the loop cap is a last
 * resort behind the watchdog. */
static void st_park(void)
{
    atomic_fetch_add(&st.parked, 1);
    for (long i = 0; i < 1200000 && atomic_load(&st.pause); i++)
        st_nap_ns(100000);
    atomic_fetch_sub(&st.parked, 1);
}

static void *st_worker_main(void *arg)
{
    st_worker *w = arg;
    /* Bounded: each pass claims ST_BATCH ops of a finite budget. */
    while (!st_stopping()) {
        uint64_t first = atomic_fetch_add(&st.claimed, ST_BATCH);
        if (first >= st.args.ops) {
            /* The budget is spent: this worker is done, the others finish
             * the batches they hold. */
            int none = ST_STOP_NONE;
            atomic_compare_exchange_strong(&st.stop_reason, &none, ST_STOP_OPS);
            break;
        }
        uint64_t n = st.args.ops - first < ST_BATCH ? st.args.ops - first : ST_BATCH;
        uint64_t i = 0;
        for (; i < n && !st_stopping(); i++) {
            if (atomic_load_explicit(&st.pause, memory_order_relaxed))
                st_park();
            st.cycle(w);
        }
        atomic_fetch_add(&st.done, i);
    }
    atomic_fetch_add(&st.exited, 1);
    return NULL;
}

/* A census, run by the monitor every census_period_ns: pauses the workers
 * between two cycles, runs the conservation and capacity checks on the
 * quiet pool (the reaper still runs), and resumes them.  A lost or
 * duplicated connection is found within a period instead of at the end. */
static void st_census(void)
{
    atomic_store(&st.pause, true);
    /* Every worker finishes its cycle within its acquire timeout (10 s at
     * most); allow 15 s. */
    int64_t until = st_now_ns() + 15 * ST_NS_PER_S;
    while (atomic_load(&st.parked) + atomic_load(&st.exited) < st.args.threads &&
           st_now_ns() < until)
        st_nap_ns(100000);
    if (atomic_load(&st.parked) + atomic_load(&st.exited) < st.args.threads) {
        st_violation("census: %u of %u workers did not pause within 15 s (stuck in the pool?)",
                     st.args.threads - atomic_load(&st.parked) - atomic_load(&st.exited),
                     st.args.threads);
    } else {
        char where[48];
        snprintf(where, sizeof where, "census %" PRIu64 " at %.2f s",
                 atomic_load(&st.censuses) + 1, st_elapsed_s());
        shp_stats s;
        uint64_t open_now;
        st_check_conservation(where, &s, &open_now);
        st_check_capacity(where, st.census_wait_ns, 100);
        atomic_fetch_add(&st.censuses, 1);
    }
    atomic_store(&st.pause, false);
}

/* ---- monitor: I2 sampling and the time cap ------------------------------- */

static void *st_monitor_main(void *arg)
{
    (void)arg;
    int64_t end = st.start_ns + (int64_t)(st.args.seconds * 1e9);
    int64_t next_census = st.start_ns + st.census_period_ns;
    /* Bounded by monitor_exit, which main sets after joining the workers,
     * whose own run is bounded by the ops budget, the time cap set here and
     * their acquire timeouts (the watchdog backs all of it). */
    while (!atomic_load(&st.monitor_exit)) {
        shp_stats s;
        int rc = shp_pool_stats(st.pool, &s);
        if (rc != 0) {
            atomic_fetch_add(&st.stats_errors, 1);
            st_violation("shp_pool_stats returned %d (%s)", rc, shp_err_name(rc));
        } else {
            atomic_fetch_add(&st.i2_samples, 1);
            uint64_t seen = atomic_load(&st.max_live_seen);
            while (s.live > seen && !atomic_compare_exchange_weak(&st.max_live_seen, &seen, s.live))
                ;
            if (s.live > st.max_size) {
                atomic_fetch_add(&st.i2_violations, 1);
                st_violation("I2: live=%" PRIu64 " > max_size=%u (idle=%" PRIu64 " in_use=%" PRIu64
                             " connecting=%" PRIu64 " checking=%" PRIu64 ")",
                             s.live, st.max_size, s.idle, s.in_use, s.connecting, s.checking);
            }
        }
        if (st.census_period_ns > 0 && st_now_ns() >= next_census && !st_stopping()) {
            st_census();
            next_census = st_now_ns() + st.census_period_ns;
        }
        int64_t now = st_now_ns(), vd = atomic_load(&st.violation_deadline_ns);
        if (vd != 0 && now >= vd && !st_stopping())
            st_request_stop(ST_STOP_VIOLATION);
        if (now >= end && !st_stopping())
            st_request_stop(ST_STOP_TIME);
        st_nap_ns(ST_NS_PER_MS);
    }
    return NULL;
}

bool st_create_pool(const shp_config *cfg, st_cycle_fn cycle)
{
    shp_ops ops = fake_ops(&st.fb);
    st_arm("create", 30.0);
    int rc = shp_pool_create(&st.pool, cfg, &ops);
    st_disarm();
    if (rc != 0) {
        printf("%s: shp_pool_create returned %d (%s) RESULT=FAIL\n", st.prog, rc,
               shp_err_name(rc));
        return false;
    }
    st.cycle = cycle;
    fprintf(stderr, "%s: threads=%u ops=%" PRIu64 " seconds=%.0f seed=%" PRIu64
            " handoff_after_ns=%" PRId64 " thread_cache=%d\n", st.prog, st.args.threads,
            st.args.ops, st.args.seconds, st.args.seed, cfg->handoff_after_ns, cfg->thread_cache);
    return true;
}

double st_run(void)
{
    unsigned n = st.args.threads;
    st_worker *ws = calloc(n, sizeof *ws);
    if (!ws)
        return -1;
    pthread_t mon;
    st.start_ns = st_now_ns();
    /* The workers stop by the time cap; the slowest acquire may then still
     * wait its timeout (at most 10 s); allow a generous margin on top. */
    st_arm("run", st.args.seconds + 90.0);
    if (pthread_create(&mon, NULL, st_monitor_main, NULL) != 0) {
        free(ws);
        return -1;
    }
    unsigned started = 0;
    for (; started < n; started++) {
        st_worker *w = &ws[started];
        w->idx = started;
        w->tag = (uint64_t)started + 1;
        w->rng = st_mix(st.args.seed + started);
        if (pthread_create(&w->tid, NULL, st_worker_main, w) != 0)
            break;
    }
    if (started < n) {
        fprintf(stderr, "%s: could not start thread %u of %u\n", st.prog, started + 1, n);
        st_request_stop(ST_STOP_SETUP);
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(ws[i].tid, NULL);
    double elapsed = st_elapsed_s();
    atomic_store(&st.monitor_exit, true);
    pthread_join(mon, NULL);
    st_disarm();
    free(ws);
    return started < n ? -1 : elapsed;
}

void st_report_run(const char *unit, double elapsed)
{
    fprintf(stderr, "%s: run ended by %s after %" PRIu64 " %s in %.2f s (%.0f %s/s); "
            "I2 samples=%" PRIu64 " max live seen=%" PRIu64 " censuses=%" PRIu64 "\n",
            st.prog, st_stop_name(atomic_load(&st.stop_reason)), atomic_load(&st.done), unit,
            elapsed, (double)atomic_load(&st.done) / (elapsed > 0 ? elapsed : 1), unit,
            atomic_load(&st.i2_samples), atomic_load(&st.max_live_seen),
            atomic_load(&st.censuses));
}

st_final st_final_checks(int64_t wait_ns, unsigned refused_retries)
{
    st_final r;
    memset(&r, 0, sizeof r);
    st_arm("final checks", 60.0);
    st_check_conservation("end of run", &r.s, &r.open_now);
    r.held = st_check_capacity("end of run", wait_ns, refused_retries);
    if (shp_pool_stats(st.pool, &r.after) != 0)
        r.after = r.s;
    shp_metrics mx;
    r.waits = shp_pool_metrics(st.pool, &mx) == 0 ? mx.waits : 0;
    st_disarm();
    return r;
}

bool st_destroy_and_check(int64_t drain_ns, int *destroy_rc)
{
    bool ok = true;
    st_arm("destroy", (double)drain_ns / 1e9 + 30.0);
    int rc = shp_pool_destroy(st.pool, drain_ns);
    st.pool = NULL;
    *destroy_rc = rc;
    if (rc != 0) {
        ok = false;
        st_violation("shp_pool_destroy returned %d (%s), want 0", rc, shp_err_name(rc));
    }
    st_arm("quiesce", 30.0);
    shp_quiesce();
    st_disarm();
    uint64_t bad = atomic_load(&st.fb.bad_close);
    if (bad != 0) {
        ok = false;
        st_violation("backend saw %" PRIu64 " closes of a handle that was not open", bad);
    }
    uint64_t open = fake_open_now(&st.fb);
    if (open != 0) {
        ok = false;
        st_violation("after destroy the backend still has %" PRIu64 " connections open "
                     "(opened=%" PRIu64 " closed=%" PRIu64 ")",
                     open, atomic_load(&st.fb.opened), atomic_load(&st.fb.closed));
    }
    return ok;
}

void st_setup(const char *prog, const char *dup_name, int argc, char **argv,
              const st_args *def)
{
    st.prog = prog;
    st.dup_name = dup_name;
    st_parse_args(argc, argv, def);
    setvbuf(stdout, NULL, _IOLBF, 0);
    st_install_signal_handlers();
    shp_log_set(st_log, NULL, SHP_LOG_WARN);
    fake_init(&st.fb);
    if (st_start_watchdog() != 0) {
        printf("%s: RESULT=FAIL (could not start the watchdog)\n", prog);
        exit(ST_EXIT_FAIL);
    }
}

void st_fail_fast(void)
{
    fflush(stdout);
    fflush(stderr);
    _exit(ST_EXIT_FAIL);
}
