/*
 * soak.c - the soak test behind `make soak` (not part of make check).
 *
 * One process runs, for --minutes N (default 30) or --seconds N:
 *   - SOAK_WORKERS threads (8x the 2 cores) doing acquire -> a real request
 *     -> release (sometimes shp_release_broken) against three pools: a
 *     PostgreSQL 15 pool (SELECT 1, small transactions, some left open or
 *     aborted so the release's rollback runs), a Redis pool (INCR, GET,
 *     SELECT, MULTI left open, CLIENT SETNAME: the tracked cleanup runs) and
 *     a TCP pool to an in-process echo server;
 *   - kill -9 of each server every 60 s, staggered, with a restart after
 *     SOAK_OUTAGE_NS (the echo server drops every connection with RST and
 *     stops listening for the outage); shp_pool_evict at random intervals
 *     (a few per second); reapers every 10 ms, health checks every 100 ms,
 *     validate-on-acquire after 20 ms idle, 10 s lifetimes, 200 ms idle
 *     timeout above min_size 2; a lull of reduced load in the last 10 s of
 *     every minute so that idle timeouts fire.
 * The servers are started, killed and restarted by a manager process forked
 * before anything else (so no pool socket is inherited by a server).
 *
 * FAIL when any of these holds (each is printed with its evidence):
 *   - hung: a request neither completed nor failed within its budget
 *     (acquire timeout + I/O timeouts + SOAK_MARGIN_NS; a watchdog thread
 *     reads per-worker progress timestamps);
 *   - late: shp_acquire returned more than SOAK_LATE_NS after its timeout
 *     (for timeout 0: after the adapter's connect + check timeouts, which
 *     bound an acquire that may not wait, see shp_connect_deadline_ns),
 *     not counting the time its thread waited for a CPU meanwhile (its
 *     run-queue wait, /proc/thread-self/schedstat: the machine is shared);
 *     each is printed with the time its thread spent in the connect, check
 *     and prepare callbacks ("late raw" in the table counts the acquires
 *     late before that deduction, "net max" is the largest overshoot after);
 *   - dirty: a connection handed out inside a PG transaction, or a Redis
 *     connection not on the configured db, inside MULTI or with a name;
 *   - bad reply: a wrong answer (SELECT 1 not 1, echo mismatch, a Redis
 *     error reply, an unexpected SQL error on a healthy connection);
 *   - a release or an evict returned an error;
 *   - a pool did not serve a request within SOAK_RECOVER_NS of its server's
 *     restart;
 *   - at the end, with the load stopped and everything released: a pool's
 *     gauges do not settle (in_use = connecting = checking = 0 and
 *     created - closed == live) within SOAK_SETTLE_NS; it cannot lend
 *     max_size connections at once; the backend's own count (PG
 *     pg_stat_activity for the application_name, Redis CLIENT LIST, the
 *     echo server's clients) does not match live; shp_pool_destroy(p, 5 s)
 *     is not 0; the backend still sees connections after destroy; the
 *     process's fd count after destroy differs from before the pools;
 *   - resources: RSS last > first + max(SOAK_RSS_PCT %, SOAK_RSS_BYTES), or
 *     fds (net of the pools' own sockets) last > first + SOAK_FD_SLACK,
 *     first = the first sample after SOAK_WARMUP_NS;
 *   - a shardpool log line contained one of the passwords.
 * Expected errors (acquire or request failures while a server is down) are
 * counted by errno and do not fail the run.
 *
 * Exit status 0 on PASS, 1 on FAIL, 2 if the harness itself could not run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "testutil.h"

/* ---- parameters ------------------------------------------------------------ */

#define MS ((int64_t)1000000)
#define S  ((int64_t)1000000000)

#define SOAK_WORKERS     16          /* 8x the 2 cores */
#define SOAK_ACQ_TMO_NS  (1000 * MS) /* acquire timeout of every pool */
#define PG_QUERY_NS      (1000 * MS) /* our queries' deadline; the adapter's
                                        health-check and rollback timeout */
#define REDIS_CMD_NS     (500 * MS)  /* Redis connect and command timeout */
#define REDIS_MAX_CMDS   4           /* commands in one Redis request */
#define TCP_IO_NS        (500 * MS)  /* TCP connect, read and write timeouts */
#define SOAK_MARGIN_NS   (3000 * MS) /* a request's budget beyond its timeouts */
#define SOAK_LATE_NS     (500 * MS)  /* tolerated acquire overshoot */
#define SOAK_KILL_EVERY  (60 * S)    /* each server is killed this often */
#define SOAK_OUTAGE_NS   (2000 * MS) /* from a kill to the restart */
#define SOAK_QUIET_END   (20 * S)    /* no kill this close to the end */
#define SOAK_RECOVER_NS  (10 * S)    /* restart -> first ok request, at most */
#define SOAK_EVICT_MEAN  (300 * MS)  /* mean interval between evicts */
#define SOAK_SAMPLE_NS   (2 * S)     /* RSS / fd sampling */
#define SOAK_WARMUP_NS   (30 * S)    /* samples before this are not "first" */
#define SOAK_RSS_PCT     20          /* RSS tolerance: +20 % ... */
#define SOAK_RSS_BYTES   (8LL << 20) /* ... or +8 MiB, whichever is larger */
#define SOAK_FD_SLACK    16          /* fd tolerance (net of pool sockets) */
#define SOAK_SETTLE_NS   (10 * S)    /* end: gauges and backends settle */
#define SOAK_DRAIN_NS    (5 * S)     /* shp_pool_destroy's drain */
#define SOAK_LULL_AT     (50 * S)    /* each minute from here: the lull */
#define SOAK_LULL_BUSY   4           /* workers at full speed in a lull */

#define PG_PASSWORD    "pgS0akPw-7f3a"
#define REDIS_PASSWORD "rdS0akPw-91c2"
#define PG_APPNAME     "shp-soak"
#define REDIS_DB       1

enum { P_PG, P_REDIS, P_TCP, NPOOL };
static const char *const pool_names[NPOOL] = { "pg", "redis", "tcp" };
static const unsigned pool_max[NPOOL] = { 6, 6, 4 };
static const int64_t kill_offset[NPOOL] = { 15 * S, 35 * S, 45 * S };

#define EMAX 160 /* errno values counted one by one; 0 collects the rest */

struct pool_rt {
    shp_pool *pool;
    shp_ops ops;
    int64_t budget_ns;              /* a request's watchdog budget */
    int64_t nowait_ns;              /* bound of an acquire with timeout 0 */
    _Atomic uint64_t started, ok, failed, broken;
    _Atomic uint64_t err_acq[EMAX], err_op[EMAX];
    _Atomic int64_t acq_max_ns, req_max_ns, late_max_ns;
    _Atomic int64_t late_net_max_ns; /* overshoot minus the thread's run-queue wait */
    _Atomic uint64_t late_raw;      /* acquires late by SOAK_LATE_NS, CPU waits included */
    _Atomic int64_t last_ok_ns;
    /* main thread only */
    unsigned kills, restart_failures /* kills and restarts */, recover_failures;
    bool down, awaiting;
    int64_t next_kill, down_at, restart_at, outage_max_ns, recover_max_ns;
    uint64_t min_ok, min_failed;    /* at the last minute's summary */
};
static struct pool_rt pools[NPOOL];

enum { PH_IDLE, PH_ACQUIRE, PH_OP, PH_RELEASE };
static const char *const phase_names[] = { "idle", "acquire", "request", "release" };

struct worker {
    int id;
    pthread_t th;
    uint64_t rng;
    _Atomic int64_t op_start;       /* CLOCK_MONOTONIC of the request, 0 between */
    _Atomic int phase, pool;
    _Atomic uint64_t seq;           /* requests begun */
    uint64_t reported;              /* watchdog: seq of the request reported hung */
};
static struct worker workers[SOAK_WORKERS];

static atomic_bool stop_load, stop_aux, lull;
static int64_t t_start;

/* Failures: any nonzero count fails the run. */
enum { F_HUNG, F_LATE, F_DIRTY, F_BAD, F_RELEASE, F_EVICT, F_PWLEAK, F_RECOVER, F_N };
static struct {
    const char *name;
    _Atomic uint64_t n;
    _Atomic unsigned printed;
} fails[F_N] = {
    [F_HUNG] = { .name = "hung requests" },      [F_LATE] = { .name = "late acquires" },
    [F_DIRTY] = { .name = "dirty hand-outs" },   [F_BAD] = { .name = "bad replies" },
    [F_RELEASE] = { .name = "release errors" },  [F_EVICT] = { .name = "evict errors" },
    [F_PWLEAK] = { .name = "password leaks" },   [F_RECOVER] = { .name = "unrecovered restarts" },
};
#define FAIL_PRINT 5 /* lines printed per kind */
static _Atomic uint64_t evicts;
static _Atomic int64_t evict_max_ns;

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static double secs(int64_t ns) { return (double)ns / (double)S; }
static double msecs(int64_t ns) { return (double)ns / (double)MS; }

/* Prints one line prefixed with the run's elapsed time; thread-safe. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_mu);
    printf("[%7.1f] ", t_start ? secs(now_ns() - t_start) : 0.0);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    va_end(ap);
}

/* A failure of one kind (F_*): counted; the first FAIL_PRINT of each kind
 * are printed (on one line, at most 300 characters). */
static void failure(int kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failure(int kind, const char *fmt, ...)
{
    atomic_fetch_add(&fails[kind].n, 1);
    if (atomic_fetch_add(&fails[kind].printed, 1) >= FAIL_PRINT)
        return;
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    say("FAILURE (%s): %s", fails[kind].name, buf);
}

static uint64_t failures_total(void)
{
    uint64_t n = 0;
    for (int k = 0; k < F_N; k++)
        n += atomic_load(&fails[k].n);
    return n;
}

static const char *errname(int e)
{
    if (e == 0)
        return "other";
    const char *n = strerrorname_np(e < 0 ? -e : e);
    return n ? n : "?";
}

static int eidx(int err)
{
    return err < 0 && -err < EMAX ? -err : 0;
}

static void max_store(_Atomic int64_t *m, int64_t v)
{
    int64_t cur = atomic_load(m);
    while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
        ;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ULL;
}

/* Sleeps ns: think time and the auxiliary threads' pacing, never a stand-in
 * for synchronisation. */
static void pause_ns(int64_t ns)
{
    struct timespec ts = { .tv_sec = ns / S, .tv_nsec = ns % S };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ---- shardpool's log: to a file, counted per event, checked for passwords ---- */

static pthread_mutex_t log_mu2 = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static uint64_t log_levels[4];
static struct { char name[40]; uint64_t n; } log_events[64];
static unsigned log_nevents;

static void lib_log(shp_log_level level, const char *line, void *ud)
{
    (void)ud;
    bool leak = strstr(line, PG_PASSWORD) || strstr(line, REDIS_PASSWORD);
    char ev[40] = "-";
    const char *e = strstr(line, "event=");
    if (e) {
        e += 6;
        size_t n = strcspn(e, " ");
        if (n >= sizeof ev)
            n = sizeof ev - 1;
        memcpy(ev, e, n);
        ev[n] = 0;
    }
    pthread_mutex_lock(&log_mu2);
    log_levels[(unsigned)level < 4 ? level : 3]++;
    unsigned i;
    for (i = 0; i < log_nevents && strcmp(log_events[i].name, ev); i++)
        ;
    if (i == log_nevents && log_nevents < 64)
        snprintf(log_events[log_nevents++].name, sizeof log_events[0].name, "%s", ev);
    if (i < 64)
        log_events[i].n++;
    if (log_file)
        fprintf(log_file, "%.3f %s\n", secs(now_ns() - t_start),
                leak ? "(line withheld: it held a password)" : line);
    pthread_mutex_unlock(&log_mu2);
    if (leak)
        failure(F_PWLEAK, "a shardpool log line held a password (event=%s)", ev);
}

/* ---- the server manager (a process forked first) ---------------------------- */

enum { M_PG_KILL = 'K', M_PG_START = 'S', M_REDIS_KILL = 'k', M_REDIS_START = 's', M_QUIT = 'Q' };
struct mgr_reply {
    int32_t rc, pg_port, redis_port;
};
static int mgr_fd = -1;
static pid_t mgr_pid;

static void mgr_main(int fd)
{
    pgserver pg;
    rsrv rs;
    memset(&rs, 0, sizeof rs);
    struct mgr_reply r = { 0, 0, 0 };
    bool pg_ok = false;
    r.rc = pgserver_init(&pg, PG_PASSWORD);
    if (r.rc == 0)
        r.rc = pgserver_start(&pg);
    pg_ok = true; /* pgserver_destroy cleans any partial init */
    if (r.rc == 0)
        r.rc = rsrv_start(&rs, REDIS_PASSWORD);
    r.pg_port = pg.port;
    r.redis_port = rs.port;
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
        r.rc = -EIO;
    while (r.rc == 0) {
        char cmd;
        ssize_t n = read(fd, &cmd, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1 || cmd == M_QUIT)
            break; /* EOF: the soak process died; clean up */
        int rc = -EINVAL;
        switch (cmd) {
        case M_PG_KILL: rc = pgserver_kill9(&pg); break;
        case M_PG_START: rc = pgserver_start(&pg); break;
        case M_REDIS_KILL: rc = rsrv_kill9(&rs); break;
        case M_REDIS_START: rc = rsrv_restart(&rs); break;
        }
        struct mgr_reply a = { rc, pg.port, rs.port };
        if (write(fd, &a, sizeof a) != (ssize_t)sizeof a)
            break;
    }
    rsrv_stop(&rs);
    if (pg_ok)
        pgserver_destroy(&pg);
    struct mgr_reply bye = { 0, 0, 0 };
    ssize_t w = write(fd, &bye, sizeof bye);
    (void)w;
    _exit(0);
}

/* Reads the manager's reply (bounded: a server start takes seconds). */
static int mgr_reply(struct mgr_reply *r)
{
    struct pollfd p = { .fd = mgr_fd, .events = POLLIN };
    int n;
    while ((n = poll(&p, 1, 90 * 1000)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        return -ETIMEDOUT;
    return read(mgr_fd, r, sizeof *r) == (ssize_t)sizeof *r ? 0 : -EIO;
}

static int mgr_call(char cmd)
{
    struct mgr_reply r;
    if (write(mgr_fd, &cmd, 1) != 1)
        return -EIO;
    int err = mgr_reply(&r);
    return err ? err : r.rc;
}

/* ---- the echo server (the TCP pool's backend; tests/support/echo.c) ------------ */

static echo_server *echo;

/* ---- attributing a late acquire ---------------------------------------------------- */

/* Time spent in the adapters' callbacks by the calling thread: the pool is
 * given a copy of each adapter's ops whose connect, check and prepare are
 * timed here (the reaper's calls land in the reaper thread's copy). */
enum { CB_CONNECT, CB_CHECK, CB_PREPARE, CB_N };
static const char *const cb_names[CB_N] = { "connect", "check", "prepare" };
struct cb_time {
    int64_t ns[CB_N];
    unsigned n[CB_N];
};
static _Thread_local struct cb_time cbt;
static shp_ops real_ops[NPOOL]; /* ctx of the timed copies */

#define TIMED(which, call)                                                                         \
    do {                                                                                           \
        int64_t t0_ = now_ns();                                                                    \
        int r_ = (call);                                                                           \
        cbt.ns[which] += now_ns() - t0_;                                                           \
        cbt.n[which]++;                                                                            \
        return r_;                                                                                 \
    } while (0)

static int timed_connect(void *ctx, void **h)
{
    const shp_ops *o = ctx;
    TIMED(CB_CONNECT, o->connect(o->ctx, h));
}
static int timed_check(void *ctx, void *h)
{
    const shp_ops *o = ctx;
    TIMED(CB_CHECK, o->check(o->ctx, h));
}
static int timed_prepare(void *ctx, void *h)
{
    const shp_ops *o = ctx;
    TIMED(CB_PREPARE, o->prepare(o->ctx, h));
}
static void fwd_close(void *ctx, void *h)
{
    const shp_ops *o = ctx;
    o->close(o->ctx, h);
}
static int fwd_reset(void *ctx, void *h)
{
    const shp_ops *o = ctx;
    return o->reset(o->ctx, h);
}

/* The timed copy of real (which must outlive the pool). */
static shp_ops timed_ops(const shp_ops *real)
{
    shp_ops t = {
        .connect = timed_connect,
        .close = fwd_close,
        .check = real->check ? timed_check : NULL,
        .reset = real->reset ? fwd_reset : NULL,
        .ctx = (void *)real,
        .prepare = real->prepare ? timed_prepare : NULL,
    };
    return t;
}

/* The calling thread's time spent runnable but not running (the second
 * field of /proc/thread-self/schedstat), or -1: an acquire's overshoot
 * minus this wait is the pool's, the rest the machine's (it is shared). */
static _Thread_local int sched_fd = -1;

static int64_t runq_wait_ns(void)
{
    if (sched_fd < 0)
        sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    char b[96];
    ssize_t n = sched_fd >= 0 ? pread(sched_fd, b, sizeof b - 1, 0) : -1;
    if (n <= 0)
        return -1;
    b[n] = 0;
    unsigned long long run, wait;
    return sscanf(b, "%llu %llu", &run, &wait) == 2 ? (int64_t)wait : -1;
}

/* Scheduler stalls, for the table's picture of the machine: a thread that
 * sleeps STALL_TICK at a time records how much later than asked it woke. */
#define STALL_TICK (5 * MS)
static _Atomic int64_t stall_max_ns;
static _Atomic uint64_t stalls_100ms, stalls_500ms;

static void *stall_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_aux)) {
        int64_t t0 = now_ns();
        pause_ns(STALL_TICK);
        int64_t over = now_ns() - t0 - STALL_TICK;
        max_store(&stall_max_ns, over);
        if (over >= 100 * MS)
            atomic_fetch_add(&stalls_100ms, 1);
        if (over >= 500 * MS)
            atomic_fetch_add(&stalls_500ms, 1);
    }
    return NULL;
}

/* ---- the requests --------------------------------------------------------------- */

/* Runs sql on pg until deadline (no query in flight before).  Returns 0
 * with *last the last result's status, val the first value of the last
 * tuples result and state the SQLSTATE of the first error result ("" if
 * none); -ETIMEDOUT (the query is still in flight), -ECONNRESET (the
 * connection is lost) or -EIO (libpq would not send). */
static int pg_exec(PGconn *pg, const char *sql, int64_t deadline, ExecStatusType *last,
                   char *val, size_t vlen, char state[6], char *msg, size_t mlen)
{
    *last = PGRES_EMPTY_QUERY;
    val[0] = state[0] = msg[0] = 0;
    if (!PQsendQuery(pg, sql))
        return PQstatus(pg) == CONNECTION_BAD ? -ECONNRESET : -EIO;
    for (;;) {
        while (PQisBusy(pg)) {
            int64_t left = deadline - now_ns();
            if (left <= 0)
                return -ETIMEDOUT;
            struct pollfd p = { .fd = PQsocket(pg), .events = POLLIN };
            if (p.fd < 0)
                return -ECONNRESET;
            int n = poll(&p, 1, (int)((left + MS - 1) / MS));
            if (n < 0 && errno != EINTR)
                return -errno;
            if (n > 0 && !PQconsumeInput(pg))
                return -ECONNRESET;
        }
        PGresult *r = PQgetResult(pg);
        if (!r)
            break;
        *last = PQresultStatus(r);
        if (*last == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0)
            snprintf(val, vlen, "%s", PQgetvalue(r, 0, 0));
        if (*last == PGRES_FATAL_ERROR && !state[0]) {
            const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(state, 6, "%s", s ? s : "?");
            snprintf(msg, mlen, "%s", PQresultErrorMessage(r));
            msg[strcspn(msg, "\n")] = 0;
        }
        PQclear(r);
    }
    return PQstatus(pg) == CONNECTION_BAD ? -ECONNRESET : 0;
}

static int pg_request(struct worker *w, shp_conn *c)
{
    PGconn *pg = shp_pg_conn(shp_conn_handle(c));
    if (!pg) {
        failure(F_BAD, "pg: shp_pg_conn gave NULL for a borrowed connection");
        return -EPROTO;
    }
    PGTransactionStatusType ts = PQtransactionStatus(pg);
    if (ts != PQTRANS_IDLE) {
        failure(F_DIRTY, "pg: connection handed out in transaction state %d (backend %d)",
                (int)ts, PQbackendPID(pg));
        return -EPROTO;
    }
    unsigned r = (unsigned)(rnd(&w->rng) % 100), key = (unsigned)(rnd(&w->rng) % 64);
    char sql[256];
    const char *want = NULL;      /* expected value of the last result */
    bool div0 = false;            /* the 1/0 error is expected */
    const char *upsert = "INSERT INTO soak_kv VALUES (%u, 1) ON CONFLICT (k) "
                         "DO UPDATE SET v = soak_kv.v + 1";
    if (r < 55) {
        snprintf(sql, sizeof sql, "SELECT 1");
        want = "1";
    } else if (r < 70) { /* committed transaction */
        int n = snprintf(sql, sizeof sql, "BEGIN; ");
        n += snprintf(sql + n, sizeof sql - (size_t)n, upsert, key);
        snprintf(sql + n, sizeof sql - (size_t)n, "; COMMIT");
    } else if (r < 85) { /* left open: the release rolls it back */
        int n = snprintf(sql, sizeof sql, "BEGIN; ");
        snprintf(sql + n, sizeof sql - (size_t)n, upsert, key);
    } else if (r < 92) { /* aborted and left: the release rolls it back */
        snprintf(sql, sizeof sql, "BEGIN; SELECT 1/0");
        div0 = true;
    } else {
        snprintf(sql, sizeof sql, "SELECT %u + 1", key);
        static _Thread_local char buf[16];
        snprintf(buf, sizeof buf, "%u", key + 1);
        want = buf;
    }
    ExecStatusType last;
    char val[32], state[6], msg[256];
    int err = pg_exec(pg, sql, now_ns() + PG_QUERY_NS, &last, val, sizeof val, state, msg,
                      sizeof msg);
    if (err)
        return err;
    if (state[0]) {
        if (div0 && !strcmp(state, "22012"))
            return 0;
        if (!strncmp(state, "57", 2) || !strncmp(state, "08", 2))
            return -ECONNRESET; /* the server is going away */
        failure(F_BAD, "pg: unexpected error %s for \"%s\": %s", state, sql, msg);
        return -EIO;
    }
    if (div0 || (want && strcmp(val, want))) {
        failure(F_BAD, "pg: \"%s\" answered \"%s\" (status %s)", sql, val, PQresStatus(last));
        return -EPROTO;
    }
    return 0;
}

/* The errno of a failed Redis command (its context's err). */
static int redis_errno(shp_conn *c)
{
    redisContext *rc = shp_redis_ctx(shp_conn_handle(c));
    if (!rc || !rc->err)
        return -EIO;
    if (rc->err == REDIS_ERR_EOF)
        return -ECONNRESET;
    if (rc->err == REDIS_ERR_PROTOCOL)
        return -EPROTO;
    static const int io[] = { EAGAIN, ETIMEDOUT, ECONNRESET, EPIPE, ECONNREFUSED };
    for (size_t i = 0; i < sizeof io / sizeof io[0]; i++) {
        const char *s = strerrordesc_np(io[i]);
        if (s && strstr(rc->errstr, s))
            return io[i] == EAGAIN ? -ETIMEDOUT : -io[i];
    }
    return -EIO;
}

/* Runs one command; 0 if its reply has type `type` (and, for a status,
 * the text `status`), else a failure. */
static int rcmd(shp_conn *c, int type, const char *status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = shp_redis_vcommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        return redis_errno(c);
    int err = 0;
    bool nil_ok = type == REDIS_REPLY_STRING && r->type == REDIS_REPLY_NIL;
    if ((r->type != type && !nil_ok) || (status && (!r->str || strcmp(r->str, status)))) {
        failure(F_BAD, "redis: \"%s\" answered type %d \"%s\"", fmt, r->type,
                r->str ? r->str : "");
        err = -EPROTO;
    }
    freeReplyObject(r);
    return err;
}

static int redis_request(struct worker *w, shp_conn *c)
{
    int err;
    if (rnd(&w->rng) % 4 == 0) { /* hand-out check: the cleanup's work */
        redisReply *r = shp_redis_command(c, "CLIENT INFO");
        if (!r)
            return redis_errno(c);
        char want_db[16];
        snprintf(want_db, sizeof want_db, " db=%d ", REDIS_DB);
        bool clean = r->type == REDIS_REPLY_STRING && strstr(r->str, want_db) &&
                     strstr(r->str, " multi=-1 ") && strstr(r->str, " name= ");
        if (!clean)
            failure(F_DIRTY, "redis: connection handed out dirty: %s",
                    r->str ? r->str : "(no text)");
        freeReplyObject(r);
        if (!clean)
            return -EPROTO;
    }
    unsigned k = (unsigned)(rnd(&w->rng) % 100);
    if (k < 45)
        return rcmd(c, REDIS_REPLY_INTEGER, NULL, "INCR soak:n");
    if (k < 65)
        return rcmd(c, REDIS_REPLY_STRING, NULL, "GET soak:n");
    if (k < 75) { /* another db: the cleanup's SELECT brings it back */
        if ((err = rcmd(c, REDIS_REPLY_STATUS, "OK", "SELECT 2")))
            return err;
        return rcmd(c, REDIS_REPLY_STATUS, "OK", "SET soak:other 1");
    }
    if (k < 95) { /* MULTI, then EXEC, or left open for the cleanup's RESET */
        if ((err = rcmd(c, REDIS_REPLY_STATUS, "OK", "MULTI")) ||
            (err = rcmd(c, REDIS_REPLY_STATUS, "QUEUED", "INCR soak:n")))
            return err;
        return k < 85 ? rcmd(c, REDIS_REPLY_ARRAY, NULL, "EXEC") : 0;
    }
    return rcmd(c, REDIS_REPLY_STATUS, "OK", "CLIENT SETNAME soak-%d", w->id);
}

static int tcp_request(struct worker *w, shp_conn *c)
{
    int fd = shp_tcp_fd(shp_conn_handle(c));
    if (fd < 0) {
        failure(F_BAD, "tcp: shp_tcp_fd gave %d for a borrowed connection", fd);
        return -EPROTO;
    }
    uint64_t out[2] = { rnd(&w->rng), rnd(&w->rng) }, in[2];
    ssize_t n = send(fd, out, sizeof out, MSG_NOSIGNAL);
    if (n != (ssize_t)sizeof out)
        return n < 0 ? (errno == EAGAIN ? -ETIMEDOUT : -errno) : -EIO;
    size_t got = 0;
    while (got < sizeof in) {
        n = recv(fd, (char *)in + got, sizeof in - got, 0);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        got += (size_t)n;
    }
    if (memcmp(in, out, sizeof in)) {
        failure(F_BAD, "tcp: echo answered other bytes");
        return -EPROTO;
    }
    return 0;
}

/* The TCP pool's health-check ping: one byte there and back. */
static int tcp_ping(int fd, void *ud)
{
    (void)ud;
    char b = 'p';
    if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
        return -errno;
    ssize_t n;
    while ((n = recv(fd, &b, 1, 0)) < 0 && errno == EINTR)
        ;
    return n == 1 && b == 'p' ? 0 : n == 0 ? -ECONNRESET : -EIO;
}

static void one_request(struct worker *w, int pi)
{
    struct pool_rt *P = &pools[pi];
    unsigned t = (unsigned)(rnd(&w->rng) % 100);
    int64_t tmo = t < 90 ? SOAK_ACQ_TMO_NS : t < 95 ? -1 : 0; /* -1: the config's (same) */
    /* The longest this acquire may take: its timeout; for a no-wait acquire
     * the adapter's own connect and check timeouts, which bound a connect
     * or a validation made without an acquire deadline (pool.h,
     * shp_connect_deadline_ns). */
    int64_t eff = tmo < 0 ? SOAK_ACQ_TMO_NS : tmo == 0 ? P->nowait_ns : tmo;
    atomic_store(&w->pool, pi);
    atomic_store(&w->phase, PH_ACQUIRE);
    atomic_fetch_add(&w->seq, 1);
    int64_t t0 = now_ns();
    atomic_store(&w->op_start, t0);
    atomic_fetch_add(&P->started, 1);

    shp_conn *c = NULL;
    memset(&cbt, 0, sizeof cbt);
    int64_t rq0 = runq_wait_ns();
    int err = shp_acquire(P->pool, &c, tmo);
    int64_t t1 = now_ns(), rq1 = runq_wait_ns();
    max_store(&P->acq_max_ns, t1 - t0);
    if (t1 - t0 > eff + SOAK_LATE_NS) {
        int64_t rq = rq0 >= 0 && rq1 >= rq0 ? rq1 - rq0 : 0;
        atomic_fetch_add(&P->late_raw, 1);
        max_store(&P->late_max_ns, t1 - t0 - eff);
        max_store(&P->late_net_max_ns, t1 - t0 - eff - rq);
        if (t1 - t0 - rq > eff + SOAK_LATE_NS) {
            char cb[160];
            int o = 0;
            for (int k = 0; k < CB_N; k++)
                o += snprintf(cb + o, sizeof cb - (size_t)o, "%s %u in %.0f ms%s", cb_names[k],
                              cbt.n[k], msecs(cbt.ns[k]), k + 1 < CB_N ? ", " : "");
            failure(F_LATE,
                    "%s: shp_acquire(timeout %.0f ms, bound %.0f ms) returned %s after %.0f ms, "
                    "of which %.0f ms waiting for a CPU; in callbacks: %s",
                    pool_names[pi], tmo < 0 ? msecs(SOAK_ACQ_TMO_NS) : msecs(tmo), msecs(eff),
                    err ? errname(err) : "0", msecs(t1 - t0), msecs(rq), cb);
        }
    }
    if (err) {
        atomic_fetch_add(&P->err_acq[eidx(err)], 1);
        atomic_fetch_add(&P->failed, 1);
        atomic_store(&w->op_start, 0);
        atomic_store(&w->phase, PH_IDLE);
        return;
    }
    atomic_store(&w->phase, PH_OP);
    int oerr = pi == P_PG ? pg_request(w, c) : pi == P_REDIS ? redis_request(w, c)
                                                             : tcp_request(w, c);
    atomic_store(&w->phase, PH_RELEASE);
    /* After an I/O error: TCP must not reuse it (bytes may be left); PG and
     * Redis are released either way (their reset hooks refuse a broken one). */
    bool broken = oerr ? (pi == P_TCP || rnd(&w->rng) % 2) : rnd(&w->rng) % 50 == 0;
    int rerr = broken ? shp_release_broken(c) : shp_release(c);
    if (rerr)
        failure(F_RELEASE, "%s: %s returned %s", pool_names[pi],
                broken ? "shp_release_broken" : "shp_release", errname(rerr));
    if (broken)
        atomic_fetch_add(&P->broken, 1);
    int64_t t2 = now_ns();
    max_store(&P->req_max_ns, t2 - t0);
    if (oerr) {
        atomic_fetch_add(&P->err_op[eidx(oerr)], 1);
        atomic_fetch_add(&P->failed, 1);
    } else {
        atomic_fetch_add(&P->ok, 1);
        atomic_store(&P->last_ok_ns, t2);
    }
    atomic_store(&w->op_start, 0);
    atomic_store(&w->phase, PH_IDLE);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(&stop_load)) {
        unsigned r = (unsigned)(rnd(&w->rng) % 100);
        one_request(w, r < 40 ? P_PG : r < 80 ? P_REDIS : P_TCP);
        /* think time: exponential, mean 1 ms; 100 ms for most workers in a lull */
        double u = (double)((rnd(&w->rng) >> 11) + 1) / 9007199254740993.0;
        int64_t think = (int64_t)(-log(u) * (double)MS);
        if (atomic_load(&lull) && w->id >= SOAK_LULL_BUSY)
            think = 100 * MS;
        pause_ns(think);
    }
    if (sched_fd >= 0)
        close(sched_fd);
    return NULL;
}

/* ---- watchdog and evictor ---------------------------------------------------------- */

static void *watchdog_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_aux)) {
        int64_t now = now_ns();
        for (int i = 0; i < SOAK_WORKERS; i++) {
            struct worker *w = &workers[i];
            int64_t st = atomic_load(&w->op_start);
            uint64_t seq = atomic_load(&w->seq);
            int pi = atomic_load(&w->pool);
            if (st && now - st > pools[pi].budget_ns && w->reported != seq &&
                atomic_load(&w->op_start) == st) {
                w->reported = seq;
                failure(F_HUNG, "worker %d: %s request in phase %s for %.1f s (budget %.1f s)",
                        i, pool_names[pi], phase_names[atomic_load(&w->phase)], secs(now - st),
                        secs(pools[pi].budget_ns));
            }
        }
        pause_ns(100 * MS); /* the watchdog's period */
    }
    return NULL;
}

static void *evictor_main(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
    while (!atomic_load(&stop_aux)) {
        double u = (double)((rnd(&rng) >> 11) + 1) / 9007199254740993.0;
        pause_ns((int64_t)(-log(u) * (double)SOAK_EVICT_MEAN));
        int pi = (int)(rnd(&rng) % NPOOL);
        int64_t t0 = now_ns();
        int err = shp_pool_evict(pools[pi].pool);
        int64_t d = now_ns() - t0;
        max_store(&evict_max_ns, d);
        atomic_fetch_add(&evicts, 1);
        if (err)
            failure(F_EVICT, "%s: shp_pool_evict returned %s", pool_names[pi], errname(err));
    }
    return NULL;
}

/* ---- resources --------------------------------------------------------------------- */

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (!f)
        return -1;
    int n = fscanf(f, "%ld %ld", &size, &res);
    fclose(f);
    return n == 2 ? res * sysconf(_SC_PAGESIZE) : -1;
}

/* The pools' own sockets: each live connection is one fd (connecting ones
 * may not have theirs yet), plus the echo server's side of TCP ones. */
static long pool_sockets(void)
{
    long n = echo_clients(echo);
    for (int i = 0; i < NPOOL; i++) {
        shp_stats st;
        if (shp_pool_stats(pools[i].pool, &st) == 0)
            n += (long)st.live;
    }
    return n;
}

struct series {
    long first, last, max;
    bool have_first;
};
static struct series s_rss, s_fds, s_fdnet;

static void series_add(struct series *s, long v, bool warm)
{
    if (warm && !s->have_first) {
        s->first = v;
        s->have_first = true;
    }
    s->last = v;
    if (v > s->max)
        s->max = v;
}

/* ---- setup ------------------------------------------------------------------------- */

static void pool_cfg(shp_config *cfg, int pi)
{
    shp_config_init(cfg);
    cfg->name = pool_names[pi];
    cfg->min_size = 2;
    cfg->max_size = pool_max[pi];
    cfg->acquire_timeout_ns = SOAK_ACQ_TMO_NS;
    cfg->reaper_interval_ns = 10 * MS;
    cfg->health_interval_ns = 100 * MS;
    cfg->validate_idle_ns = 20 * MS;
    cfg->max_lifetime_ns = 10 * S;
    cfg->idle_timeout_ns = 200 * MS;
    cfg->max_connecting = 2;
}

static char pg_conninfo[256];

static int make_pools(int pg_port, int redis_port)
{
    int err;
    shp_config cfg;
    snprintf(pg_conninfo, sizeof pg_conninfo,
             "host=127.0.0.1 port=%d dbname=postgres user=%s password=%s", pg_port,
             PGSERVER_USER, PG_PASSWORD);
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = pg_conninfo;
    pc.application_name = PG_APPNAME;
    pc.connect_timeout_ns = SOAK_ACQ_TMO_NS;
    pc.query_timeout_ns = PG_QUERY_NS;
    pc.name = "pg";
    if ((err = shp_pg_ops(&real_ops[P_PG], &pc)))
        return err;
    pools[P_PG].ops = timed_ops(&real_ops[P_PG]);
    pool_cfg(&cfg, P_PG);
    if ((err = shp_pool_create(&pools[P_PG].pool, &cfg, &pools[P_PG].ops)))
        return err;
    pools[P_PG].budget_ns = SOAK_ACQ_TMO_NS + PG_QUERY_NS + PG_QUERY_NS + SOAK_MARGIN_NS;
    pools[P_PG].nowait_ns = SOAK_ACQ_TMO_NS + PG_QUERY_NS; /* connect, check */

    shp_redis_config rc;
    shp_redis_config_init(&rc);
    rc.port = redis_port;
    rc.password = REDIS_PASSWORD;
    rc.db = REDIS_DB;
    rc.connect_timeout_ns = REDIS_CMD_NS;
    rc.command_timeout_ns = REDIS_CMD_NS;
    rc.cleanup = SHP_REDIS_CLEANUP_TRACKED;
    rc.name = "redis";
    if ((err = shp_redis_ops(&real_ops[P_REDIS], &rc)))
        return err;
    pools[P_REDIS].ops = timed_ops(&real_ops[P_REDIS]);
    pool_cfg(&cfg, P_REDIS);
    if ((err = shp_pool_create(&pools[P_REDIS].pool, &cfg, &pools[P_REDIS].ops)))
        return err;
    /* acquire, the commands, the release's cleanup write */
    pools[P_REDIS].budget_ns =
        SOAK_ACQ_TMO_NS + (REDIS_MAX_CMDS + 1) * REDIS_CMD_NS + SOAK_MARGIN_NS;
    pools[P_REDIS].nowait_ns = 2 * REDIS_CMD_NS; /* connect; or check (cleanup read, PING) */

    shp_tcp_config tc;
    echo_tcp_config(echo, &tc);
    tc.connect_timeout_ns = TCP_IO_NS;
    tc.read_timeout_ns = tc.write_timeout_ns = TCP_IO_NS;
    tc.ping = tcp_ping;
    tc.name = "tcp";
    if ((err = shp_tcp_ops(&real_ops[P_TCP], &tc)))
        return err;
    pools[P_TCP].ops = timed_ops(&real_ops[P_TCP]);
    pool_cfg(&cfg, P_TCP);
    if ((err = shp_pool_create(&pools[P_TCP].pool, &cfg, &pools[P_TCP].ops)))
        return err;
    pools[P_TCP].budget_ns = SOAK_ACQ_TMO_NS + 2 * TCP_IO_NS + SOAK_MARGIN_NS;
    pools[P_TCP].nowait_ns = 3 * TCP_IO_NS; /* connect, check (ping: write, read) */
    return 0;
}

static void free_ops(void)
{
    shp_pg_ops_free(&real_ops[P_PG]);
    shp_redis_ops_free(&real_ops[P_REDIS]);
    shp_tcp_ops_free(&real_ops[P_TCP]);
}

static PGconn *pg_direct(void)
{
    char ci[320];
    snprintf(ci, sizeof ci, "%s application_name=shp-soak-check connect_timeout=5", pg_conninfo);
    PGconn *pg = PQconnectdb(ci);
    if (PQstatus(pg) != CONNECTION_OK) {
        say("pg: direct connection failed: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* ---- chaos (main thread) ------------------------------------------------------------ */

static int kill_server(int pi)
{
    return pi == P_PG ? mgr_call(M_PG_KILL) : pi == P_REDIS ? mgr_call(M_REDIS_KILL)
                                                            : echo_down(echo);
}

static int start_server(int pi)
{
    return pi == P_PG ? mgr_call(M_PG_START) : pi == P_REDIS ? mgr_call(M_REDIS_START)
                                                             : echo_up(echo);
}

static void chaos_step(int64_t now, int64_t end)
{
    for (int pi = 0; pi < NPOOL; pi++) {
        struct pool_rt *P = &pools[pi];
        if (!P->down && now >= P->next_kill) {
            P->next_kill += SOAK_KILL_EVERY;
            if (now + SOAK_OUTAGE_NS + SOAK_QUIET_END > end)
                continue;
            int err = kill_server(pi);
            if (err) {
                P->restart_failures++;
                say("%s: kill failed: %s", pool_names[pi], errname(err));
                continue;
            }
            P->down = true;
            P->awaiting = false;
            P->down_at = now_ns();
            P->kills++;
            say("%s: server killed (kill %u)", pool_names[pi], P->kills);
        } else if (P->down && now >= P->down_at + SOAK_OUTAGE_NS) {
            int err = start_server(pi);
            if (err) {
                P->restart_failures++;
                say("%s: restart failed: %s (will retry)", pool_names[pi], errname(err));
                continue;
            }
            P->down = false;
            P->restart_at = now_ns();
            P->awaiting = true;
            int64_t outage = P->restart_at - P->down_at;
            if (outage > P->outage_max_ns)
                P->outage_max_ns = outage;
            say("%s: server back after %.1f s", pool_names[pi], secs(outage));
        }
        if (P->awaiting) {
            int64_t ok_at = atomic_load(&P->last_ok_ns);
            if (ok_at > P->restart_at) {
                P->awaiting = false;
                if (ok_at - P->restart_at > P->recover_max_ns)
                    P->recover_max_ns = ok_at - P->restart_at;
            } else if (now_ns() - P->restart_at > SOAK_RECOVER_NS) {
                P->awaiting = false;
                P->recover_failures++;
                failure(F_RECOVER, "%s: no request succeeded within %.0f s of the restart",
                        pool_names[pi], secs(SOAK_RECOVER_NS));
            }
        }
    }
}

/* ---- end checks -------------------------------------------------------------------- */

/* The backend's count of the pool's connections, or -1. */
static long backend_count(int pi, PGconn *pg, redisContext *rc)
{
    if (pi == P_PG) {
        PGresult *r = PQexec(pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '"
                                 PG_APPNAME "'");
        long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        return n;
    }
    if (pi == P_REDIS) {
        redisReply *r = redisCommand(rc, "CLIENT LIST");
        long n = -1;
        if (r && r->type == REDIS_REPLY_STRING) {
            n = 0;
            for (const char *p = r->str; (p = strstr(p, "id=")); p += 3)
                n++;
            n--; /* ourselves */
        }
        if (r)
            freeReplyObject(r);
        return n;
    }
    return echo_clients(echo);
}

struct endcheck {
    bool settled, agreed, gone;
    shp_stats st;
    long backend, backend_after;
    int got, works, destroy;
};
static struct endcheck endc[NPOOL];

static bool settled(const shp_stats *a)
{
    return a->in_use == 0 && a->connecting == 0 && a->checking == 0 && a->waiters == 0 &&
           a->creations - a->closed == a->live;
}

/* Waits (bounded) for the pool's gauges to settle. */
static bool wait_settled(int pi, shp_stats *st)
{
    int64_t deadline = now_ns() + SOAK_SETTLE_NS;
    do {
        if (shp_pool_stats(pools[pi].pool, st) == 0 && settled(st))
            return true;
        pause_ns(20 * MS); /* polling a condition under a deadline */
    } while (now_ns() < deadline);
    return false;
}

/* Borrows max_size connections at once and runs a request on each. */
static void capacity(int pi, struct endcheck *e)
{
    shp_conn *cs[16];
    struct worker w = { .id = 99, .rng = 0x9e3779b97f4a7c15ULL };
    e->got = e->works = 0;
    for (unsigned i = 0; i < pool_max[pi]; i++) {
        int err = shp_acquire(pools[pi].pool, &cs[e->got], 2 * S);
        if (err) {
            say("%s: capacity: acquire %u of %u failed: %s", pool_names[pi], i + 1,
                pool_max[pi], errname(err));
            break;
        }
        e->got++;
    }
    for (int i = 0; i < e->got; i++) {
        int err = pi == P_PG ? pg_request(&w, cs[i]) : pi == P_REDIS ? redis_request(&w, cs[i])
                                                                     : tcp_request(&w, cs[i]);
        e->works += err == 0;
        int rerr = err ? shp_release_broken(cs[i]) : shp_release(cs[i]);
        if (rerr)
            failure(F_RELEASE, "%s: capacity: release returned %s", pool_names[pi],
                    errname(rerr));
    }
}

/* Waits (bounded) until stats and the backend agree at a stable moment. */
static bool agree(int pi, PGconn *pg, redisContext *rc, struct endcheck *e)
{
    int64_t deadline = now_ns() + SOAK_SETTLE_NS;
    do {
        shp_stats a, b;
        if (shp_pool_stats(pools[pi].pool, &a) == 0) {
            e->backend = backend_count(pi, pg, rc);
            if (shp_pool_stats(pools[pi].pool, &b) == 0 && settled(&a) && settled(&b) &&
                a.live == b.live && a.creations == b.creations && e->backend == (long)a.live) {
                e->st = a;
                return true;
            }
            e->st = b;
        }
        pause_ns(50 * MS); /* polling a condition under a deadline */
    } while (now_ns() < deadline);
    return false;
}

static bool backend_gone(int pi, PGconn *pg, redisContext *rc, struct endcheck *e)
{
    int64_t deadline = now_ns() + SOAK_SETTLE_NS;
    do {
        if ((e->backend_after = backend_count(pi, pg, rc)) == 0)
            return true;
        pause_ns(50 * MS); /* polling a condition under a deadline */
    } while (now_ns() < deadline);
    return false;
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: soak [--minutes N | --seconds N] [--log FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int64_t duration = 30 * 60 * S;
    const char *log_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--minutes") && i + 1 < argc)
            duration = (int64_t)(atof(argv[++i]) * 60.0 * (double)S);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            duration = (int64_t)(atof(argv[++i]) * (double)S);
        else if (!strcmp(argv[i], "--log") && i + 1 < argc)
            log_path = argv[++i];
        else
            usage();
    }
    if (duration < 10 * S)
        usage();
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* The manager first: no thread and no pool socket exists yet. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return perror("socketpair"), 2;
    fflush(NULL);
    mgr_pid = fork();
    if (mgr_pid < 0)
        return perror("fork"), 2;
    if (mgr_pid == 0) {
        close(sv[0]);
        mgr_main(sv[1]);
    }
    close(sv[1]);
    mgr_fd = sv[0];
    struct mgr_reply boot;
    int err = mgr_reply(&boot);
    if (err || boot.rc) {
        fprintf(stderr, "soak: servers did not start: %s\n", errname(err ? err : boot.rc));
        return 2;
    }

    if (log_path && !(log_file = fopen(log_path, "w")))
        return perror(log_path), 2;
    if (log_file)
        setvbuf(log_file, NULL, _IOFBF, 1 << 16);
    shp_log_set(lib_log, NULL, SHP_LOG_INFO);

    int eerr = echo_start(&echo, NULL);
    if (eerr != 0)
        return fprintf(stderr, "soak: echo server: %s\n", strerror(-eerr)), 2;

    snprintf(pg_conninfo, sizeof pg_conninfo,
             "host=127.0.0.1 port=%d dbname=postgres user=%s password=%s", boot.pg_port,
             PGSERVER_USER, PG_PASSWORD);
    PGconn *pg = pg_direct();
    if (!pg)
        return 2;
    PGresult *r = PQexec(pg, "CREATE TABLE IF NOT EXISTS soak_kv (k int PRIMARY KEY, v bigint NOT NULL)");
    bool made = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(pg);
    if (!made)
        return fprintf(stderr, "soak: CREATE TABLE failed\n"), 2;

    int fds_before = count_fds();
    uint64_t seed = (uint64_t)now_ns();
    t_start = now_ns();
    if ((err = make_pools(boot.pg_port, boot.redis_port)))
        return fprintf(stderr, "soak: pools: %s\n", errname(err)), 2;
    int64_t end = t_start + duration;
    say("soak: %.0f s, %d workers, pools pg/redis/tcp max %u/%u/%u, pg port %d, redis port %d, "
        "echo port %d, seed %" PRIu64 ", fds before pools %d",
        secs(duration), SOAK_WORKERS, pool_max[P_PG], pool_max[P_REDIS], pool_max[P_TCP],
        boot.pg_port, boot.redis_port, echo_port(echo), seed, fds_before);
    for (int pi = 0; pi < NPOOL; pi++)
        pools[pi].next_kill = t_start + kill_offset[pi];

    for (int i = 0; i < SOAK_WORKERS; i++) {
        workers[i].id = i;
        workers[i].rng = (seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1))) | 1;
        pthread_create(&workers[i].th, NULL, worker_main, &workers[i]);
    }
    pthread_t wd, ev, sm;
    pthread_create(&sm, NULL, stall_main, NULL);
    pthread_create(&wd, NULL, watchdog_main, NULL);
    pthread_create(&ev, NULL, evictor_main, (void *)(uintptr_t)(seed * 31));

    int64_t next_sample = t_start, next_minute = t_start + 60 * S;
    int minute = 0;
    for (int64_t now = now_ns(); now < end; now = now_ns()) {
        atomic_store(&lull, (now - t_start) % (60 * S) >= SOAK_LULL_AT);
        chaos_step(now, end);
        if (now >= next_sample) {
            next_sample += SOAK_SAMPLE_NS;
            bool warm = now - t_start >= SOAK_WARMUP_NS;
            long fds = count_fds();
            series_add(&s_rss, rss_bytes(), warm);
            series_add(&s_fds, fds, warm);
            series_add(&s_fdnet, fds - pool_sockets(), warm);
        }
        if (now >= next_minute) {
            next_minute += 60 * S;
            minute++;
            char line[512];
            int n = snprintf(line, sizeof line, "minute %d:", minute);
            for (int pi = 0; pi < NPOOL; pi++) {
                struct pool_rt *P = &pools[pi];
                uint64_t ok = atomic_load(&P->ok), fl = atomic_load(&P->failed);
                shp_stats st;
                shp_pool_stats(P->pool, &st);
                n += snprintf(line + n, sizeof line - (size_t)n,
                              " %s ok %" PRIu64 " failed %" PRIu64 " live %" PRIu64 " kills %u |",
                              pool_names[pi], ok - P->min_ok, fl - P->min_failed, st.live,
                              P->kills);
                P->min_ok = ok;
                P->min_failed = fl;
            }
            say("%s evicts %" PRIu64 " | rss %.1f MiB fds %ld | failures %" PRIu64, line,
                atomic_load(&evicts), (double)s_rss.last / (1 << 20), s_fds.last,
                failures_total());
        }
        pause_ns(50 * MS); /* the main loop's period */
    }

    /* ---- stop the load: every worker must come back within its budget ---- */
    say("load stops");
    atomic_store(&stop_load, true);
    int stuck = 0;
    for (int i = 0; i < SOAK_WORKERS; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 30;
        if (pthread_timedjoin_np(workers[i].th, NULL, &ts) != 0) {
            stuck++;
            say("FAILURE: worker %d did not stop (phase %s, %s)", i,
                phase_names[atomic_load(&workers[i].phase)],
                pool_names[atomic_load(&workers[i].pool)]);
        }
    }
    atomic_store(&stop_aux, true);
    pthread_join(ev, NULL);
    pthread_join(wd, NULL);
    pthread_join(sm, NULL);
    if (stuck) {
        say("RESULT: FAIL (%d workers hung; no end checks)", stuck);
        fflush(NULL);
        _exit(1);
    }
    for (int pi = 0; pi < NPOOL; pi++) /* a server still down comes back */
        if (pools[pi].down && start_server(pi) != 0)
            say("%s: final restart failed", pool_names[pi]);

    /* ---- end checks ---- */
    pg = pg_direct();
    struct timeval tv = { 5, 0 };
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", boot.redis_port, tv);
    redisReply *ar = rc && !rc->err ? redisCommand(rc, "AUTH %s", REDIS_PASSWORD) : NULL;
    if (ar)
        freeReplyObject(ar);
    if (!pg || !rc || rc->err) {
        say("RESULT: FAIL (cannot reach the servers for the end checks)");
        return 1;
    }
    redisSetTimeout(rc, tv);
    bool end_ok = true;
    for (int pi = 0; pi < NPOOL; pi++) {
        struct endcheck *e = &endc[pi];
        e->settled = wait_settled(pi, &e->st);
        capacity(pi, e);
        e->agreed = agree(pi, pg, rc, e);
        if (!e->settled || e->got != (int)pool_max[pi] || !e->agreed) {
            end_ok = false;
            say("%s: end state: settled %d, lent %d of %u, backend %ld vs live %" PRIu64
                " (created %" PRIu64 " closed %" PRIu64 " idle %" PRIu64 " in_use %" PRIu64
                " connecting %" PRIu64 " checking %" PRIu64 ")",
                pool_names[pi], e->settled, e->got, pool_max[pi], e->backend, e->st.live,
                e->st.creations, e->st.closed, e->st.idle, e->st.in_use, e->st.connecting,
                e->st.checking);
        }
    }
    for (int pi = 0; pi < NPOOL; pi++) {
        struct endcheck *e = &endc[pi];
        e->destroy = shp_pool_destroy(pools[pi].pool, SOAK_DRAIN_NS);
        e->gone = backend_gone(pi, pg, rc, e);
        if (e->destroy || !e->gone) {
            end_ok = false;
            say("%s: shp_pool_destroy returned %s; backend connections after it: %ld",
                pool_names[pi], errname(e->destroy), e->backend_after);
        }
    }
    PQfinish(pg);
    redisFree(rc);
    shp_quiesce();
    int fds_after = count_fds();
    free_ops();
    echo_stop(echo);

    /* ---- resources ---- */
    long rss_limit = s_rss.first + (long)fmax((double)s_rss.first * SOAK_RSS_PCT / 100.0,
                                              (double)SOAK_RSS_BYTES);
    bool rss_ok = s_rss.have_first && s_rss.last <= rss_limit;
    bool fd_ok = s_fdnet.have_first && s_fdnet.last <= s_fdnet.first + SOAK_FD_SLACK;
    bool fd_end_ok = fds_after == fds_before;
    unsigned restart_failures = 0;
    for (int pi = 0; pi < NPOOL; pi++)
        restart_failures += pools[pi].restart_failures;

    /* ---- the table ---- */
    printf("\n==== soak: %.0f s, %d workers ====\n", secs(duration), SOAK_WORKERS);
    printf("%-6s %10s %10s %8s %8s  %s\n", "pool", "requests", "ok", "failed", "broken",
           "errors (stage:errno count)");
    uint64_t started_total = 0, ended_total = 0;
    for (int pi = 0; pi < NPOOL; pi++) {
        struct pool_rt *P = &pools[pi];
        char errs[1024] = "";
        size_t o = 0;
        for (int k = 0; k < 2; k++)
            for (int e = 0; e < EMAX; e++) {
                uint64_t n = atomic_load(k ? &P->err_op[e] : &P->err_acq[e]);
                if (n && o < sizeof errs)
                    o += (size_t)snprintf(errs + o, sizeof errs - o, "%s:%s %" PRIu64 "  ",
                                          k ? "request" : "acquire", errname(e), n);
            }
        uint64_t st = atomic_load(&P->started), ok = atomic_load(&P->ok),
                 fl = atomic_load(&P->failed);
        started_total += st;
        ended_total += ok + fl;
        printf("%-6s %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %8" PRIu64 "  %s\n", pool_names[pi],
               st, ok, fl, atomic_load(&P->broken), errs[0] ? errs : "-");
    }
    printf("\n%-6s %6s %6s %12s %12s %12s %14s %12s %10s %9s %9s\n", "pool", "kills", "down",
           "outage max", "recover max", "acquire max", "request max", "budget", "late max",
           "net max", "late raw");
    for (int pi = 0; pi < NPOOL; pi++) {
        struct pool_rt *P = &pools[pi];
        printf("%-6s %6u %6u %10.0fms %10.0fms %10.0fms %12.0fms %10.0fms %8.0fms %7.0fms %9" PRIu64
               "\n",
               pool_names[pi], P->kills, P->recover_failures + P->restart_failures,
               msecs(P->outage_max_ns), msecs(P->recover_max_ns),
               msecs(atomic_load(&P->acq_max_ns)), msecs(atomic_load(&P->req_max_ns)),
               msecs(P->budget_ns), msecs(atomic_load(&P->late_max_ns)),
               msecs(atomic_load(&P->late_net_max_ns)), atomic_load(&P->late_raw));
    }
    printf("\n%-6s %9s %9s %6s %6s %9s %10s %9s %9s\n", "pool", "created", "closed", "live", "idle",
           "backend", "lent", "destroy", "after");
    for (int pi = 0; pi < NPOOL; pi++) {
        struct endcheck *e = &endc[pi];
        char lent[16];
        snprintf(lent, sizeof lent, "%d/%u", e->got, pool_max[pi]);
        printf("%-6s %9" PRIu64 " %9" PRIu64 " %6" PRIu64 " %6" PRIu64 " %9ld %10s %9s %9ld\n",
               pool_names[pi], e->st.creations, e->st.closed, e->st.live, e->st.idle, e->backend,
               lent, e->destroy ? errname(e->destroy) : "0", e->backend_after);
    }
    printf("\nevicts %" PRIu64 " (longest %.0f ms)\n", atomic_load(&evicts),
           msecs(atomic_load(&evict_max_ns)));
    printf("stalls (a %lld ms sleep woke late): longest %.0f ms, >= 100 ms %" PRIu64
           ", >= 500 ms %" PRIu64 "\n",
           (long long)(STALL_TICK / MS), msecs(atomic_load(&stall_max_ns)),
           atomic_load(&stalls_100ms), atomic_load(&stalls_500ms));
    printf("rss   first %.1f MiB  last %.1f MiB  max %.1f MiB  (limit %.1f MiB: +%d %% or +%lld MiB)  %s\n",
           (double)s_rss.first / (1 << 20), (double)s_rss.last / (1 << 20),
           (double)s_rss.max / (1 << 20), (double)rss_limit / (1 << 20), SOAK_RSS_PCT,
           SOAK_RSS_BYTES >> 20, rss_ok ? "ok" : "FAIL");
    printf("fds   first %ld  last %ld  max %ld (raw); net of pool sockets first %ld  last %ld  max %ld "
           "(limit +%d)  %s\n",
           s_fds.first, s_fds.last, s_fds.max, s_fdnet.first, s_fdnet.last, s_fdnet.max,
           SOAK_FD_SLACK, fd_ok ? "ok" : "FAIL");
    printf("fds   before the pools %d, after destroy %d  %s\n", fds_before, fds_after,
           fd_end_ok ? "ok" : "FAIL");
    printf("log   error %" PRIu64 " warn %" PRIu64 " info %" PRIu64 ":", log_levels[0],
           log_levels[1], log_levels[2]);
    for (unsigned i = 0; i < log_nevents; i++)
        printf(" %s %" PRIu64, log_events[i].name, log_events[i].n);
    printf("\nchecks:");
    for (int k = 0; k < F_N; k++)
        printf(" %s %" PRIu64 ",", fails[k].name, atomic_load(&fails[k].n));
    printf(" kills or restarts failed %u, requests unaccounted %" PRIu64 "\n", restart_failures,
           started_total - ended_total);
    bool pass = end_ok && rss_ok && fd_ok && fd_end_ok && restart_failures == 0 &&
                started_total == ended_total && failures_total() == 0;
    printf("RESULT: %s\n", pass ? "PASS" : "FAIL");
    fflush(NULL);
    if (log_file)
        fclose(log_file);

    char q = M_QUIT;
    struct mgr_reply bye;
    if (write(mgr_fd, &q, 1) == 1)
        mgr_reply(&bye);
    waitpid(mgr_pid, NULL, 0);
    return pass ? 0 : 1;
}
