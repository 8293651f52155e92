/*
 * blackhole.c - shardpool against servers whose packets are dropped
 * (`make blackhole`, part of `make check`).  A fault program, not a cmocka
 * test: its assertions are timing bounds, each stated with its tolerance.
 *
 * The program moves itself into a network namespace of its own
 * (unshare(CLONE_NEWNET) before any thread exists), brings its loopback up,
 * and starts an echo server (tests/support/echo.c), redis-server
 * (tests/adapters/redisserver.c) and PostgreSQL 15
 * (tests/adapters/pgserver.c, as an unprivileged user) on that loopback.
 * A blackhole is an nftables rule in the namespace's output hook that drops
 * every TCP segment to or from the server's port: SYNs go unanswered and an
 * established connection's requests are never seen.  The host's network is
 * never touched; the namespace dies with the process.  If the namespace
 * cannot be made (no privilege), the program prints
 *   blackhole: SKIP - cannot create a network namespace: <reason>
 * and exits 0; every other problem is a failure.
 *
 * For each adapter (TCP, Redis, PostgreSQL) it runs six phases, each on a
 * pool of its own (max_size 4), with 16 acquiring threads (8x the 2 cores):
 *   connect   drop rule in place before any connect; breaker off.  Every
 *             connect attempt is timed: one that is not cut short by its
 *             acquire's deadline must fail after connect_timeout_ns
 *             (300 ms) +-10 % (270..330 ms).
 *   breaker   the breaker (threshold 5) must open; then acquires (500 ms
 *             timeout) must fail with -EHOSTDOWN within 100 ms each.
 *   validate  4 idle connections, validate_idle_ns = 0: every hand-out runs
 *             the check over the blackholed connection.
 *   health    4 idle connections checked by the reaper every 20 ms.
 *   handout   4 connections borrowed before the blackhole (a PostgreSQL
 *             transaction left open, a Redis command sent) are released into
 *             it while the threads wait for them (Redis: the default
 *             SHP_REDIS_CLEANUP_ALWAYS, whose answers prepare reads at
 *             hand-out; PostgreSQL: the release's ROLLBACK).
 *   revalidate  4 connections released into the blackhole sit idle until
 *             due for validation (validate_idle_ns = 0), then are handed
 *             out: ops.check runs first (Redis: it also collects the
 *             cleanup's answers).
 * The validate and health phases run the Redis adapter with
 * SHP_REDIS_CLEANUP_TRACKED, so that they measure the check alone.
 * In every phase no shp_acquire may return later than its deadline plus
 * 100 ms (the overshoot budget; acquire timeouts 200, 300, 500, 1000 ms),
 * nor with -EINTR or an error other than -ETIMEDOUT or -EHOSTDOWN; a
 * release into the blackhole must return within the adapter's I/O timeout
 * (1 s) plus 100 ms.
 * After each phase the rule is removed and, within 5 s, an acquire must
 * succeed and carry a real request (echo, PING, SELECT 1), the breaker must
 * be closed, 20 more borrows must all work, created - closed = live, and
 * shutdown and destroy must return 0 with every connection closed.
 * No log line may contain a server password.
 *
 * Usage: blackhole [--log FILE] [--only tcp|redis|pg]
 * Prints a table of the figures and "blackhole: N passed, M failed"; exits
 * 1 if any check failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <shardpool.h>
#include <shardpool/adapters/pg.h>
#include <shardpool/adapters/redis.h>
#include <shardpool/adapters/tcp.h>

#include "echo.h"
#include "pgserver.h"
#include "redisserver.h"
#include "clock.h" /* now_ns, nap_ns */

extern char **environ;

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL

#define THREADS          16                 /* 8x the 2 cores */
#define POOL_MAX         4
#define CONNECT_TMO_NS   (300 * NS_PER_MS)  /* the adapters' connect timeout */
#define CONNECT_TOL_NS   (CONNECT_TMO_NS / 10)
#define IO_TMO_NS        (1000 * NS_PER_MS) /* read / command / query timeout */
#define OVERSHOOT_NS     (100 * NS_PER_MS)  /* budget past an acquire's deadline */
#define FAILFAST_NS      (100 * NS_PER_MS)  /* an acquire with the breaker open */
#define RECOVER_NS       (5 * NS_PER_S)     /* after the rule is removed */
#define PHASE_NS         (1500 * NS_PER_MS) /* threads start acquires this long */
#define REDIS_PASSWORD   "bh-Redis-s3cret"
#define PG_PASSWORD      "bh-Pg-s3cret"

static double ms(int64_t ns) { return (double)ns / 1e6; }

/* ---- results ----------------------------------------------------------------- */

static int n_pass, n_fail;

/* Records one check (main thread only); prints a line for a failure.
 * Returns ok. */
static bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ok) {
        n_pass++;
    } else {
        n_fail++;
        printf("blackhole: FAIL - ");
        vprintf(fmt, ap);
        printf("\n");
        fflush(stdout);
    }
    va_end(ap);
    return ok;
}

/* One row of the summary table. */
struct row {
    char adapter[8], phase[12];
    long acquires, ok, timedout, hostdown, other, eintr;
    int64_t max_over;   /* worst (return - deadline) of any acquire, may be < 0 */
    char note[96];
};
static struct row rows[32];
static int nrows;

/* ---- logging ----------------------------------------------------------------- */

static FILE *log_file;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_long log_lines, log_leaks;

/* Every line: counted, checked for a password, written to --log FILE. */
static void log_line(shp_log_level level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    atomic_fetch_add(&log_lines, 1);
    if (strstr(line, REDIS_PASSWORD) || strstr(line, PG_PASSWORD))
        atomic_fetch_add(&log_leaks, 1);
    if (log_file) {
        pthread_mutex_lock(&log_mu);
        fprintf(log_file, "%s\n", line);
        pthread_mutex_unlock(&log_mu);
    }
}

/* ---- the network namespace and the drop rule --------------------------------- */

/* Runs argv (PATH lookup) and waits.  Returns its exit status, or -1 if it
 * could not run. */
static int run(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Enters a new network namespace and brings its loopback up.  Returns 0;
 * 1 with *why set if no namespace can be made here (the one skip); -1 with
 * *why set on another failure. */
static int netns_enter(char *why, size_t len)
{
    if (unshare(CLONE_NEWNET) != 0) {
        snprintf(why, len, "unshare(CLONE_NEWNET): %s", strerror(errno));
        return 1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 ? -1 : 0;
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    if (rc != 0)
        snprintf(why, len, "bringing lo up in the new namespace: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc ? -1 : 0;
}

#define NFT_TABLE "shp_blackhole"

static int nft_setup(void)
{
    char *t[] = { "nft", "add", "table", "inet", NFT_TABLE, NULL };
    char *c[] = { "nft", "add", "chain", "inet", NFT_TABLE, "out",
                  "{ type filter hook output priority 0; policy accept; }", NULL };
    return run(t) == 0 && run(c) == 0 ? 0 : -1;
}

/* Drops every TCP segment to or from port (loopback traffic passes the
 * output hook once per direction). */
static bool blackhole_on(int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    char *to[] = { "nft", "add", "rule", "inet", NFT_TABLE, "out", "tcp", "dport", p, "drop", NULL };
    char *from[] = { "nft", "add", "rule", "inet", NFT_TABLE, "out", "tcp", "sport", p, "drop", NULL };
    return check(run(to) == 0 && run(from) == 0, "nft: adding the drop rule for port %d", port);
}

static bool blackhole_off(void)
{
    char *f[] = { "nft", "flush", "chain", "inet", NFT_TABLE, "out", NULL };
    return check(run(f) == 0, "nft: removing the drop rule");
}

/* Whether a plain connect to 127.0.0.1:port fails to complete within
 * 100 ms (the rule works). */
static bool port_blackholed(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool dropped = false;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == EINPROGRESS) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int n;
        while ((n = poll(&p, 1, 100)) < 0 && errno == EINTR)
            ;
        dropped = n == 0;
    }
    if (fd >= 0)
        close(fd);
    return dropped;
}

/* ---- the echo server (tests/support/echo.c) ------------------------------------ */

static echo_server *echo;

/* ---- adapters ------------------------------------------------------------------ */

/* What a phase asks of an adapter's ops. */
enum ops_kind { OPS_PLAIN, OPS_HANDOUT };

struct adapter {
    const char *name;
    int port;                   /* the server's: what the rule drops */
    /* ops for a phase (Redis: TRACKED cleanup unless OPS_HANDOUT) */
    int (*make_ops)(shp_ops *ops, enum ops_kind kind);
    void (*free_ops)(shp_ops *ops);
    /* a real request on a borrowed connection, bounded by 1 s: 0 if it worked */
    int (*roundtrip)(shp_conn *c);
    /* on a connection borrowed before the handout phase's blackhole: leave
     * it as a user would (PostgreSQL: a transaction open) */
    int (*dirty)(shp_conn *c);
};

static rsrv redis_srv;
static pgserver pg_srv;

static int tcp_make_ops(shp_ops *ops, enum ops_kind kind)
{
    (void)kind;
    shp_tcp_config tc;
    echo_tcp_config(echo, &tc); /* its ping: one echo within IO_TMO_NS (1 s) */
    tc.connect_timeout_ns = CONNECT_TMO_NS;
    tc.read_timeout_ns = tc.write_timeout_ns = IO_TMO_NS;
    tc.name = "bh-tcp";
    return shp_tcp_ops(ops, &tc);
}

static int tcp_roundtrip(shp_conn *c)
{
    int fd = shp_tcp_fd(shp_conn_handle(c));
    return fd < 0 ? fd : echo_ping(fd, NULL);
}

static int redis_make_ops(shp_ops *ops, enum ops_kind kind)
{
    shp_redis_config rc;
    shp_redis_config_init(&rc);
    rc.host = "127.0.0.1";
    rc.port = redis_srv.port;
    rc.password = REDIS_PASSWORD;
    rc.db = 1;
    rc.connect_timeout_ns = CONNECT_TMO_NS;
    rc.command_timeout_ns = IO_TMO_NS;
    rc.name = "bh-redis";
    /* The checks of validate and health are measured on their own: with
     * TRACKED a release that sent nothing leaves no cleanup pending. */
    rc.cleanup = kind == OPS_HANDOUT ? SHP_REDIS_CLEANUP_ALWAYS : SHP_REDIS_CLEANUP_TRACKED;
    return shp_redis_ops(ops, &rc);
}

static int redis_roundtrip(shp_conn *c)
{
    redisReply *r = shp_redis_command(c, "PING");
    int err = !r ? -EIO : r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG") ? 0 : -EPROTO;
    if (r)
        freeReplyObject(r);
    return err;
}

static int redis_dirty(shp_conn *c)
{
    redisReply *r = shp_redis_command(c, "SET %s %s", "bh-key", "bh-value");
    int err = r && r->type == REDIS_REPLY_STATUS ? 0 : -EIO;
    if (r)
        freeReplyObject(r);
    return err;
}

static int pg_make_ops(shp_ops *ops, enum ops_kind kind)
{
    (void)kind;
    char ci[256];
    pgserver_conninfo(&pg_srv, NULL, ci, sizeof ci);
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = ci; /* copied by shp_pg_ops */
    pc.connect_timeout_ns = CONNECT_TMO_NS;
    pc.query_timeout_ns = IO_TMO_NS;
    pc.name = "bh-pg";
    return shp_pg_ops(ops, &pc);
}

/* sql on a borrowed connection within 1 s; 0 if every result succeeded. */
static int pg_exec(shp_conn *c, const char *sql)
{
    PGconn *pg = shp_pg_conn(shp_conn_handle(c));
    if (!pg || !PQsendQuery(pg, sql))
        return -EIO;
    int64_t deadline = now_ns() + IO_TMO_NS;
    int err = 0;
    for (;;) {
        while (PQisBusy(pg)) {
            int64_t left = deadline - now_ns();
            if (left <= 0)
                return -ETIMEDOUT;
            struct pollfd p = { .fd = PQsocket(pg), .events = POLLIN };
            if (poll(&p, 1, (int)((left + NS_PER_MS - 1) / NS_PER_MS)) < 0 && errno != EINTR)
                return -errno;
            if (!PQconsumeInput(pg))
                return -EPIPE;
        }
        PGresult *r = PQgetResult(pg);
        if (!r)
            return err;
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            err = -EPROTO;
        PQclear(r);
    }
}

static int pg_roundtrip(shp_conn *c) { return pg_exec(c, "SELECT 1"); }
static int pg_dirty(shp_conn *c) { return pg_exec(c, "BEGIN"); }

/* ---- connect attempts -------------------------------------------------------------- */

/* ops.connect, timed: every attempt's duration and the deadline it was given. */
struct attempt {
    int64_t took, budget; /* budget: the adapter's timeout, or less if capped by the acquire */
    int rc;
    bool capped;          /* the acquire's deadline came before connect_timeout_ns */
};
#define MAX_ATTEMPTS 4096
static struct {
    shp_ops real;
    struct attempt a[MAX_ATTEMPTS];
    atomic_int n;
} timed;

static int timed_connect(void *ctx, void **handle)
{
    (void)ctx;
    int64_t t0 = now_ns(), dl = shp_connect_deadline_ns();
    int rc = timed.real.connect(timed.real.ctx, handle);
    int64_t t1 = now_ns();
    int i = atomic_fetch_add(&timed.n, 1);
    if (i < MAX_ATTEMPTS) {
        bool capped = dl >= 0 && dl < t0 + CONNECT_TMO_NS;
        timed.a[i] = (struct attempt){ .took = t1 - t0, .rc = rc, .capped = capped,
                                       .budget = capped ? dl - t0 : CONNECT_TMO_NS };
    }
    return rc;
}
static void timed_close(void *ctx, void *h) { (void)ctx; timed.real.close(timed.real.ctx, h); }
static int timed_check(void *ctx, void *h) { (void)ctx; return timed.real.check(timed.real.ctx, h); }
static int timed_reset(void *ctx, void *h) { (void)ctx; return timed.real.reset(timed.real.ctx, h); }
static int timed_prepare(void *ctx, void *h) { (void)ctx; return timed.real.prepare(timed.real.ctx, h); }

static shp_ops timed_wrap(const shp_ops *real)
{
    timed.real = *real;
    atomic_store(&timed.n, 0);
    return (shp_ops){ .connect = timed_connect, .close = timed_close,
                      .check = real->check ? timed_check : NULL,
                      .reset = real->reset ? timed_reset : NULL, .ctx = &timed,
                      .prepare = real->prepare ? timed_prepare : NULL };
}

/* ---- acquiring threads ---------------------------------------------------------------- */

struct load {
    shp_pool *pool;
    int64_t stop_at;            /* no acquire starts after this */
    int64_t tmo[2];             /* thread i uses tmo[i % 2] */
    int64_t think_ns;           /* pause after each borrow (the workload's shape) */
    bool stop_on_breaker;       /* end when the breaker is seen open */
    atomic_bool stop;
    atomic_long acquires, ok, timedout, hostdown, other, eintr;
    atomic_long bad_releases;   /* shp_release of a borrowed connection != 0 */
    _Atomic int64_t max_over;
    atomic_int other_err;       /* the last unexpected error */
};

struct worker {
    struct load *ld;
    int idx;
    pthread_t th;
};

static void max_store(_Atomic int64_t *m, int64_t v)
{
    int64_t cur = atomic_load(m);
    while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
        ;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct load *ld = w->ld;
    int64_t tmo = ld->tmo[w->idx % 2];
    while (!atomic_load(&ld->stop) && now_ns() < ld->stop_at) {
        shp_conn *c = NULL;
        int64_t t0 = now_ns();
        int rc = shp_acquire(ld->pool, &c, tmo);
        int64_t t1 = now_ns();
        atomic_fetch_add(&ld->acquires, 1);
        max_store(&ld->max_over, t1 - (t0 + tmo));
        if (rc == 0) {
            atomic_fetch_add(&ld->ok, 1);
            if (shp_release(c) != 0)
                atomic_fetch_add(&ld->bad_releases, 1);
            if (ld->think_ns)
                nap_ns(ld->think_ns);
        } else if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&ld->timedout, 1);
        } else if (rc == -EHOSTDOWN) {
            atomic_fetch_add(&ld->hostdown, 1);
            nap_ns(NS_PER_MS); /* as a client backs off: not 10^6 failures a second */
        } else {
            if (rc == -EINTR)
                atomic_fetch_add(&ld->eintr, 1);
            atomic_fetch_add(&ld->other, 1);
            atomic_store(&ld->other_err, rc);
        }
        if (ld->stop_on_breaker) {
            shp_stats st;
            if (shp_pool_stats(ld->pool, &st) == 0 && st.breaker_open)
                atomic_store(&ld->stop, true);
        }
    }
    return NULL;
}

static void load_run(struct load *ld, struct worker *w, int n)
{
    atomic_store(&ld->max_over, INT64_MIN);
    for (int i = 0; i < n; i++) {
        w[i] = (struct worker){ .ld = ld, .idx = i };
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "blackhole: pthread_create failed\n");
            exit(2);
        }
    }
}

static void load_join(struct worker *w, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(w[i].th, NULL);
}

static struct row *row_add(const struct adapter *ad, const char *phase, const struct load *ld)
{
    struct row *r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->adapter, sizeof r->adapter, "%s", ad->name);
    snprintf(r->phase, sizeof r->phase, "%s", phase);
    if (ld) {
        r->acquires = atomic_load(&ld->acquires);
        r->ok = atomic_load(&ld->ok);
        r->timedout = atomic_load(&ld->timedout);
        r->hostdown = atomic_load(&ld->hostdown);
        r->other = atomic_load(&ld->other);
        r->eintr = atomic_load(&ld->eintr);
        r->max_over = atomic_load(&ld->max_over);
    }
    return r;
}

/* The phase's row, with the checks every phase makes of its acquires. */
static struct row *load_verdict(const struct adapter *ad, const char *phase, struct load *ld)
{
    struct row *r = row_add(ad, phase, ld);
    check(r->acquires > 0, "%s/%s: no acquire ran", ad->name, phase);
    check(r->max_over <= OVERSHOOT_NS,
          "%s/%s: an acquire returned %.1f ms after its deadline (budget %.0f ms)", ad->name,
          phase, ms(r->max_over), ms(OVERSHOOT_NS));
    check(r->eintr == 0, "%s/%s: %ld acquires returned -EINTR", ad->name, phase, r->eintr);
    check(r->other == 0, "%s/%s: %ld acquires failed with an unexpected error (last %s)",
          ad->name, phase, r->other, shp_err_name(atomic_load(&ld->other_err)));
    check(atomic_load(&ld->bad_releases) == 0, "%s/%s: %ld releases did not return 0", ad->name,
          phase, atomic_load(&ld->bad_releases));
    return r;
}

/* ---- pools ----------------------------------------------------------------------------------- */

static shp_config pool_cfg(const char *name)
{
    shp_config c;
    shp_config_init(&c);
    c.name = name;
    c.max_size = POOL_MAX;
    c.validate_idle_ns = -1;
    c.reaper_interval_ns = 10 * NS_PER_MS;
    c.acquire_timeout_ns = 300 * NS_PER_MS;
    c.metrics_interval_ns = 0;
    return c;
}

static shp_stats stats(shp_pool *p)
{
    shp_stats s;
    memset(&s, 0, sizeof s);
    if (shp_pool_stats(p, &s) != 0)
        check(false, "shp_pool_stats failed");
    return s;
}

/* Polls cond until it holds or bound_ns passes (pace 5 ms).  Returns the
 * time it took, or -1. */
#define WAIT_FOR(cond, bound_ns)                                              \
    ({                                                                        \
        int64_t t0_ = now_ns(), r_ = -1;                                      \
        for (;;) {                                                            \
            if (cond) {                                                       \
                r_ = now_ns() - t0_;                                          \
                break;                                                        \
            }                                                                 \
            if (now_ns() - t0_ > (bound_ns))                                  \
                break;                                                        \
            nap_ns(5 * NS_PER_MS);                                            \
        }                                                                     \
        r_;                                                                   \
    })

/* Waits until the pool holds want idle connections (bounded). */
static bool fill_wait(shp_pool *p, const char *what, unsigned want)
{
    return check(WAIT_FOR(stats(p).idle >= want, 5 * NS_PER_S) >= 0,
                 "%s: the pool never held %u idle connections", what, want);
}

/* The drop rule is removed: the pool must serve real requests again within
 * RECOVER_NS, close its breaker, conserve its connections and shut down
 * clean.  Destroys the pool; frees nothing else. */
static void recover_and_destroy(const struct adapter *ad, const char *phase, shp_pool *pool,
                                struct row *r)
{
    int64_t t0 = now_ns();
    bool served = false;
    while (!served && now_ns() - t0 < RECOVER_NS) {
        shp_conn *c = NULL;
        int rc = shp_acquire(pool, &c, 500 * NS_PER_MS);
        if (rc == 0) {
            served = ad->roundtrip(c) == 0;
            if (served)
                shp_release(c);
            else
                shp_release_broken(c);
        } else if (rc == -EHOSTDOWN) {
            nap_ns(5 * NS_PER_MS); /* pace: the breaker's probe decides */
        }
    }
    int64_t took = now_ns() - t0;
    check(served, "%s/%s: no request served within %.0f s of the rule's removal", ad->name,
          phase, ms(RECOVER_NS) / 1000);
    int64_t closed_in = WAIT_FOR(stats(pool).breaker_open == 0, RECOVER_NS - (now_ns() - t0));
    check(closed_in >= 0, "%s/%s: the breaker still open %.0f s after the rule's removal",
          ad->name, phase, ms(RECOVER_NS) / 1000);
    int failed = 0;
    for (int i = 0; i < 20; i++) {
        shp_conn *c = NULL;
        int rc = shp_acquire(pool, &c, 1000 * NS_PER_MS);
        if (rc != 0 || ad->roundtrip(c) != 0)
            failed++;
        if (rc == 0)
            shp_release(c);
    }
    check(failed == 0, "%s/%s: %d of 20 borrows failed after recovery", ad->name, phase, failed);
    /* Conservation, once no connect or borrow is in flight. */
    WAIT_FOR(({ shp_stats s_ = stats(pool); s_.connecting == 0 && s_.in_use == 0; }), NS_PER_S);
    shp_stats s = stats(pool);
    check(s.creations - s.closed == s.live,
          "%s/%s: created %" PRIu64 " - closed %" PRIu64 " != live %" PRIu64, ad->name, phase,
          s.creations, s.closed, s.live);
    int rc = shp_pool_shutdown(pool, 2 * NS_PER_S);
    check(rc == 0, "%s/%s: shp_pool_shutdown returned %s", ad->name, phase, shp_err_name(rc));
    s = stats(pool);
    check(s.live == 0 && s.creations == s.closed,
          "%s/%s: after shutdown live %" PRIu64 ", created %" PRIu64 ", closed %" PRIu64,
          ad->name, phase, s.live, s.creations, s.closed);
    rc = shp_pool_destroy(pool, 2 * NS_PER_S);
    check(rc == 0, "%s/%s: shp_pool_destroy returned %s", ad->name, phase, shp_err_name(rc));
    size_t o = strlen(r->note);
    snprintf(r->note + o, sizeof r->note - o, "%srecovered %.0f ms", o ? ", " : "", ms(took));
}

static shp_pool *pool_make(const shp_config *cfg, shp_ops *ops)
{
    shp_pool *p = NULL;
    int rc = shp_pool_create(&p, cfg, ops);
    if (rc != 0) {
        fprintf(stderr, "blackhole: shp_pool_create(%s): %s\n", cfg->name, shp_err_name(rc));
        exit(2);
    }
    return p;
}

/* ---- the phases -------------------------------------------------------------------------------- */

/* connect: every connect goes into the blackhole.  Half the threads wait
 * 1000 ms (connects time out on their own: 300 ms +-10 %), half 200 ms
 * (connects are cut at the acquire's deadline). */
static void phase_connect(const struct adapter *ad)
{
    shp_ops real, ops;
    if (!check(ad->make_ops(&real, OPS_PLAIN) == 0, "%s: make ops", ad->name))
        return;
    ops = timed_wrap(&real);
    shp_config cfg = pool_cfg("bh-connect");
    cfg.breaker_threshold = 0;
    blackhole_on(ad->port);
    check(port_blackholed(ad->port), "%s: the drop rule does not stop a connect", ad->name);
    shp_pool *pool = pool_make(&cfg, &ops);
    struct load ld = { .pool = pool, .stop_at = now_ns() + PHASE_NS,
                       .tmo = { 1000 * NS_PER_MS, 200 * NS_PER_MS } };
    struct worker w[THREADS];
    load_run(&ld, w, THREADS);
    load_join(w, THREADS);
    struct row *r = load_verdict(ad, "connect", &ld);

    /* Each attempt: uncapped timeouts within +-10 %, capped ones by their
     * acquire's deadline plus the budget. */
    int n = atomic_load(&timed.n);
    n = n < MAX_ATTEMPTS ? n : MAX_ATTEMPTS;
    int own = 0, cut = 0, bad = 0, early = 0;
    int64_t own_min = INT64_MAX, own_max = 0, cut_over = INT64_MIN;
    printf("blackhole: %s connect attempts timing out on their own (timeout %.0f ms, allowed "
           "%.0f-%.0f ms):",
           ad->name, ms(CONNECT_TMO_NS), ms(CONNECT_TMO_NS - CONNECT_TOL_NS),
           ms(CONNECT_TMO_NS + CONNECT_TOL_NS));
    for (int i = 0; i < n; i++) {
        const struct attempt *a = &timed.a[i];
        if (a->rc == 0) {
            bad++;
            continue;
        }
        if (a->capped) {
            cut++;
            if (a->took - a->budget > cut_over)
                cut_over = a->took - a->budget;
            continue;
        }
        own++;
        printf(" %.1f", ms(a->took));
        own_min = a->took < own_min ? a->took : own_min;
        own_max = a->took > own_max ? a->took : own_max;
        if (a->took < CONNECT_TMO_NS - CONNECT_TOL_NS || a->took > CONNECT_TMO_NS + CONNECT_TOL_NS)
            early++;
        if (a->rc != -ETIMEDOUT)
            bad++;
    }
    printf("\n");
    if (cut)
        printf("blackhole: %s connect attempts cut by the acquire's deadline: %d, worst %.1f ms "
               "past it\n",
               ad->name, cut, ms(cut_over));
    check(own >= 4, "%s/connect: only %d connect attempts ran to their own timeout", ad->name, own);
    check(early == 0, "%s/connect: %d of %d connect timeouts outside %.0f-%.0f ms (min %.1f, max "
                      "%.1f)",
          ad->name, early, own, ms(CONNECT_TMO_NS - CONNECT_TOL_NS),
          ms(CONNECT_TMO_NS + CONNECT_TOL_NS), ms(own_min), ms(own_max));
    check(bad == 0, "%s/connect: %d connects into the blackhole succeeded or failed other than "
                    "-ETIMEDOUT",
          ad->name, bad);
    check(cut == 0 || cut_over <= OVERSHOOT_NS,
          "%s/connect: a connect ran %.1f ms past its acquire's deadline", ad->name, ms(cut_over));
    if (own)
        snprintf(r->note, sizeof r->note, "connect %.1f-%.1f ms (n=%d)", ms(own_min), ms(own_max),
                 own);

    blackhole_off();
    recover_and_destroy(ad, "connect", pool, r);
    ad->free_ops(&real);
}

/* breaker: consecutive connect failures open it; acquires then fail fast. */
static void phase_breaker(const struct adapter *ad)
{
    shp_ops ops;
    if (!check(ad->make_ops(&ops, OPS_PLAIN) == 0, "%s: make ops", ad->name))
        return;
    shp_config cfg = pool_cfg("bh-breaker");
    cfg.breaker_threshold = 5;
    cfg.breaker_probe_ns = 250 * NS_PER_MS;
    blackhole_on(ad->port);
    shp_pool *pool = pool_make(&cfg, &ops);
    struct load ld = { .pool = pool, .stop_at = now_ns() + 5 * NS_PER_S,
                       .tmo = { 500 * NS_PER_MS, 500 * NS_PER_MS }, .stop_on_breaker = true };
    struct worker w[THREADS];
    load_run(&ld, w, THREADS);
    load_join(w, THREADS);
    shp_stats s = stats(pool);
    check(s.breaker_open == 1 && s.breaker_opens >= 1,
          "%s/breaker: not open after 5 s of failing connects (open %" PRIu64 ", opens %" PRIu64
          ")",
          ad->name, s.breaker_open, s.breaker_opens);
    int64_t worst = 0;
    int not_down = 0, last = 0;
    for (int i = 0; i < 20; i++) {
        shp_conn *c = NULL;
        int64_t t0 = now_ns();
        int rc = shp_acquire(pool, &c, 500 * NS_PER_MS);
        int64_t took = now_ns() - t0;
        worst = took > worst ? took : worst;
        if (rc != -EHOSTDOWN) {
            not_down++;
            last = rc;
        }
        if (rc == 0)
            shp_release(c);
    }
    struct row *r = load_verdict(ad, "breaker", &ld);
    check(not_down == 0, "%s/breaker: %d of 20 acquires with the breaker open did not fail with "
                         "-EHOSTDOWN (last %s)",
          ad->name, not_down, shp_err_name(last));
    check(worst <= FAILFAST_NS, "%s/breaker: an acquire with the breaker open took %.1f ms "
                                "(fail-fast bound %.0f ms)",
          ad->name, ms(worst), ms(FAILFAST_NS));
    snprintf(r->note, sizeof r->note, "opens %" PRIu64 ", fail-fast max %.2f ms",
             s.breaker_opens, ms(worst));
    blackhole_off();
    recover_and_destroy(ad, "breaker", pool, r);
    ad->free_ops(&ops);
}

/* validate / health: 4 idle connections, then the blackhole; every
 * hand-out checks (validate_idle_ns = 0), or the reaper checks every 20 ms. */
static void phase_checks(const struct adapter *ad, bool validate)
{
    const char *name = validate ? "validate" : "health";
    shp_ops ops;
    if (!check(ad->make_ops(&ops, OPS_PLAIN) == 0, "%s: make ops", ad->name))
        return;
    shp_config cfg = pool_cfg(validate ? "bh-validate" : "bh-health");
    cfg.min_size = POOL_MAX;
    if (validate)
        cfg.validate_idle_ns = 0;
    else
        cfg.health_interval_ns = 20 * NS_PER_MS;
    shp_pool *pool = pool_make(&cfg, &ops);
    fill_wait(pool, name, POOL_MAX);
    /* A connection is due for validation once the pool's clock (advanced
     * by the reaper every 10 ms) has moved past its last use: a matter of
     * time, not of an event. */
    nap_ns(3 * cfg.reaper_interval_ns);
    uint64_t checks0 = stats(pool).health_checks;
    blackhole_on(ad->port);
    /* Borrowers that think between borrows leave the connections idle most
     * of the time, for the reaper (health) to take. */
    struct load ld = { .pool = pool, .stop_at = now_ns() + PHASE_NS,
                       .tmo = { 300 * NS_PER_MS, 300 * NS_PER_MS }, .think_ns = 5 * NS_PER_MS };
    struct worker w[THREADS];
    load_run(&ld, w, THREADS);
    load_join(w, THREADS);
    shp_stats s = stats(pool);
    struct row *r = load_verdict(ad, name, &ld);
    check(s.health_failed >= 1,
          "%s/%s: no check failed on a blackholed connection (%" PRIu64 " checks)", ad->name, name,
          s.health_checks - checks0);
    snprintf(r->note, sizeof r->note, "checks %" PRIu64 ", failed %" PRIu64,
             s.health_checks - checks0, s.health_failed);
    blackhole_off();
    recover_and_destroy(ad, name, pool, r);
    ad->free_ops(&ops);
}

struct releaser {
    shp_conn *c;
    int rc;
    int64_t took;
    pthread_t th;
};

static void *release_main(void *arg)
{
    struct releaser *r = arg;
    int64_t t0 = now_ns();
    r->rc = shp_release(r->c);
    r->took = now_ns() - t0;
    return NULL;
}

/* handout: connections borrowed before the blackhole are released into it
 * (each by a thread of its own) while the acquirers wait for them, and are
 * handed straight to them (ops.prepare runs).  revalidate: they are
 * released first and sit idle until due for validation, so that the
 * acquirers' hand-out runs ops.check on them (then ops.prepare). */
static void phase_handout(const struct adapter *ad, bool revalidate)
{
    const char *name = revalidate ? "revalidate" : "handout";
    shp_ops ops;
    if (!check(ad->make_ops(&ops, OPS_HANDOUT) == 0, "%s: make ops", ad->name))
        return;
    shp_config cfg = pool_cfg(revalidate ? "bh-revalidate" : "bh-handout");
    if (revalidate)
        cfg.validate_idle_ns = 0;
    shp_pool *pool = pool_make(&cfg, &ops);
    struct releaser rel[POOL_MAX];
    int held = 0;
    for (int i = 0; i < POOL_MAX; i++) {
        shp_conn *c = NULL;
        if (!check(shp_acquire(pool, &c, 2 * NS_PER_S) == 0,
                   "%s/%s: acquire before the blackhole", ad->name, name))
            break;
        if (ad->dirty && !revalidate)
            check(ad->dirty(c) == 0, "%s/%s: the request before the blackhole", ad->name, name);
        rel[held++] = (struct releaser){ .c = c };
    }
    blackhole_on(ad->port);
    struct load ld = { .pool = pool, .tmo = { 300 * NS_PER_MS, 300 * NS_PER_MS },
                       .think_ns = NS_PER_MS };
    struct worker w[THREADS];
    if (!revalidate) {
        ld.stop_at = now_ns() + PHASE_NS;
        load_run(&ld, w, THREADS);
        /* The acquirers are queued (the pool is at max_size) or about to be. */
        WAIT_FOR(stats(pool).waiters >= 1, NS_PER_S);
    }
    for (int i = 0; i < held; i++)
        pthread_create(&rel[i].th, NULL, release_main, &rel[i]);
    int64_t rel_max = 0;
    for (int i = 0; i < held; i++) {
        pthread_join(rel[i].th, NULL);
        check(rel[i].rc == 0, "%s/%s: release returned %s", ad->name, name,
              shp_err_name(rel[i].rc));
        rel_max = rel[i].took > rel_max ? rel[i].took : rel_max;
    }
    uint64_t checks0 = stats(pool).health_checks;
    if (revalidate) {
        /* Due for validation once the pool's clock has moved past their
         * release: a matter of time (see phase_checks). */
        nap_ns(3 * cfg.reaper_interval_ns);
        ld.stop_at = now_ns() + PHASE_NS;
        load_run(&ld, w, THREADS);
    }
    load_join(w, THREADS);
    struct row *r = load_verdict(ad, name, &ld);
    /* A release has no deadline; the adapters bound its I/O by their
     * command / query timeout. */
    check(rel_max <= IO_TMO_NS + OVERSHOOT_NS,
          "%s/%s: a release into the blackhole took %.1f ms (I/O timeout %.0f ms)", ad->name,
          name, ms(rel_max), ms(IO_TMO_NS));
    snprintf(r->note, sizeof r->note, "release max %.1f ms", ms(rel_max));
    if (revalidate) {
        size_t o = strlen(r->note);
        snprintf(r->note + o, sizeof r->note - o, ", checks %" PRIu64,
                 stats(pool).health_checks - checks0);
    }
    blackhole_off();
    recover_and_destroy(ad, name, pool, r);
    ad->free_ops(&ops);
}

static void run_adapter(const struct adapter *ad)
{
    int64_t t0 = now_ns();
    phase_connect(ad);
    phase_breaker(ad);
    phase_checks(ad, true);
    phase_checks(ad, false);
    phase_handout(ad, false);
    phase_handout(ad, true);
    printf("blackhole: %s done in %.1f s\n", ad->name, ms(now_ns() - t0) / 1000);
    fflush(stdout);
}

/* ---- main ---------------------------------------------------------------------------------------- */

static void print_table(void)
{
    printf("\nblackhole: acquire deadlines (budget: return <= deadline + %.0f ms)\n",
           ms(OVERSHOOT_NS));
    printf("%-6s %-10s %8s %6s %8s %8s %6s %12s  %s\n", "adapter", "phase", "acquires", "ok",
           "timedout", "hostdown", "other", "max over ms", "notes");
    for (int i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        char over[24];
        if (r->max_over == INT64_MIN)
            snprintf(over, sizeof over, "-");
        else
            snprintf(over, sizeof over, "%.1f", ms(r->max_over));
        printf("%-6s %-10s %8ld %6ld %8ld %8ld %6ld %12s%s %s\n", r->adapter, r->phase,
               r->acquires, r->ok, r->timedout, r->hostdown, r->other, over,
               r->max_over > OVERSHOOT_NS ? "!" : " ", r->note);
    }
    printf("(max over: the latest return relative to its deadline; negative = all early; "
           "! = over budget)\n");
}

int main(int argc, char **argv)
{
    const char *log_path = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--log") && i + 1 < argc)
            log_path = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--log FILE] [--only tcp|redis|pg]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* First, while this is the only thread: threads made later share it. */
    char why[256];
    int ns = netns_enter(why, sizeof why);
    if (ns == 1) {
        printf("blackhole: SKIP - cannot create a network namespace: %s\n", why);
        return 0;
    }
    if (ns < 0) {
        printf("blackhole: FAIL - %s\n", why);
        return 1;
    }
    if (nft_setup() != 0) {
        printf("blackhole: FAIL - nft cannot make its table in the namespace (is nftables "
               "installed? make deps)\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
    if (log_path && !(log_file = fopen(log_path, "w"))) {
        perror(log_path);
        return 2;
    }
    shp_log_set(log_line, NULL, SHP_LOG_DEBUG);

    int64_t t0 = now_ns();
    int err;
    if ((err = echo_start(&echo, NULL)) != 0) {
        printf("blackhole: FAIL - echo server: %s\n", strerror(-err));
        return 1;
    }
    const struct adapter tcp = { "tcp", echo_port(echo), tcp_make_ops, shp_tcp_ops_free,
                                 tcp_roundtrip, NULL };
    if (!only || !strcmp(only, "tcp"))
        run_adapter(&tcp);

    if (!only || !strcmp(only, "redis")) {
        err = rsrv_start(&redis_srv, REDIS_PASSWORD);
        if (check(err == 0, "redis-server: %s", strerror(-err))) {
            const struct adapter redis = { "redis", redis_srv.port, redis_make_ops,
                                           shp_redis_ops_free, redis_roundtrip, redis_dirty };
            run_adapter(&redis);
            rsrv_stop(&redis_srv);
        }
    }

    if (!only || !strcmp(only, "pg")) {
        err = pgserver_init(&pg_srv, PG_PASSWORD);
        if (check(err == 0, "initdb: %s", strerror(-err))) {
            err = pgserver_start(&pg_srv);
            if (check(err == 0, "postgres: %s", strerror(-err))) {
                const struct adapter pg = { "pg", pg_srv.port, pg_make_ops, shp_pg_ops_free,
                                            pg_roundtrip, pg_dirty };
                run_adapter(&pg);
            }
        }
        pgserver_destroy(&pg_srv);
    }
    echo_stop(echo);
    shp_quiesce();

    long leaks = atomic_load(&log_leaks);
    check(leaks == 0, "%ld log lines contain a server password", leaks);
    print_table();
    printf("blackhole: %ld log lines%s%s, none with a password: %s; %.1f s in all\n",
           atomic_load(&log_lines), log_path ? " in " : "", log_path ? log_path : "",
           leaks ? "NO" : "yes", ms(now_ns() - t0) / 1000);
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    if (log_file)
        fclose(log_file);
    printf("blackhole: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
