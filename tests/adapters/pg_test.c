/*
 * pg_test.c - the PostgreSQL adapter (include/shardpool/adapters/pg.h)
 * against a real PostgreSQL 15 server that the test starts itself
 * (pgserver.c, included at the end: the test build compiles one .c file).
 *
 * One server serves every test (initdb is the slow part); tests that need
 * it down stop and restart it.  Nothing sleeps in place of synchronisation:
 * a test that waits for the server or for counters to move polls them under
 * a bound.  Timing assertions are bounds that fail only on a bug.
 *
 * cmocka assertions are made on the main thread only; worker threads count.
 */
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "failtest.h"

#include <libpq-fe.h>

#include <shardpool.h>
#include <shardpool/adapters/pg.h>

#include "pgserver.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL
#define PASSWORD  "Tr0ub4dor-s3cret"
#define WRONG_PW  "Wr0ng-h0rse-s3cret"
/* no ~/.pgpass either: a connect without a password has none */
#define NO_PASSFILE "passfile=/nonexistent/shp-test-pgpass"

static pgserver srv;
static bool srv_ok;




/* ---- helpers ------------------------------------------------------------------ */

static shp_pool *make_pool(shp_ops *ops, const char *conninfo, unsigned max_size,
                           int64_t connect_timeout_ns)
{
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = conninfo;
    pc.name = "pgtest";
    if (connect_timeout_ns >= 0)
        pc.connect_timeout_ns = connect_timeout_ns;
    assert_int_equal(shp_pg_ops(ops, &pc), 0);
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = max_size;
    cfg.name = "pgtest";
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &cfg, ops), 0);
    return pool;
}

static void drop_pool(shp_pool *pool, shp_ops *ops)
{
    assert_int_equal(shp_pool_destroy(pool, 5 * NS_PER_S), 0);
    shp_pg_ops_free(ops);
}

/* Runs a statement that must succeed; returns its first value as int (or 0). */
static long exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    long v = (st == PGRES_TUPLES_OK && PQntuples(r) > 0) ? strtol(PQgetvalue(r, 0, 0), NULL, 10)
                                                          : 0;
    PQclear(r);
    return v;
}

static int backend_pid_of(shp_conn *c)
{
    return PQbackendPID(shp_pg_conn(shp_conn_handle(c)));
}

static int setup(void **state)
{
    (void)state;
    if (!srv_ok)
        return -1;
    return srv.pid ? 0 : pgserver_start(&srv);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    assert_string_equal(pc.application_name, "shardpool");
    assert_string_equal(pc.check_query, ";");
    assert_true(pc.connect_timeout_ns > 0);
    shp_ops ops;
    memset(&ops, 0, sizeof ops);
    log_start(); /* the invalid_config lines are expected */
    assert_int_equal(shp_pg_ops(&ops, &pc), -EINVAL); /* no conninfo */
    assert_int_equal(shp_pg_ops(NULL, &pc), -EINVAL);
    assert_int_equal(shp_pg_ops(&ops, NULL), -EINVAL);
    pc.conninfo = "host=x";
    pc.connect_timeout_ns = -1;
    assert_int_equal(shp_pg_ops(&ops, &pc), -EINVAL);
    pc.connect_timeout_ns = 0;
    pc.conninfo = "host=x password=" WRONG_PW " no_such_keyword=1";
    assert_int_equal(shp_pg_ops(&ops, &pc), -EINVAL);
    pc.conninfo = "postgresql://u:" WRONG_PW "@[::1/db"; /* libpq quotes the URI */
    assert_int_equal(shp_pg_ops(&ops, &pc), -EINVAL);
    /* ports libpq would refuse only at connect (or read as a number) */
    static const char *const bad_ports[] = {
        "host=x port=99999", "host=x port=0", "host=x port=+5432", "host=x port=5432x",
        "host=x,y port=5432,99999", "postgresql://u@x:99999/db", "host=x port=' 5432'",
    };
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        pc.conninfo = bad_ports[i];
        if (shp_pg_ops(&ops, &pc) != -EINVAL)
            fail_msg("%s: accepted", bad_ports[i]);
    }
    assert_true(log_has("field=conninfo reason=\"port outside 1..65535\""));
    assert_true(log_has("field=conninfo reason=\"port is not a number (digits only)\""));
    log_stop();
    static const char *const good_ports[] = { "host=x port=5432", "host=x,y port=5432,",
                                              "host=x port=1", "host=x port=65535",
                                              "postgresql://u@x:6543/db", "host=x" };
    for (size_t i = 0; i < sizeof good_ports / sizeof good_ports[0]; i++) {
        shp_ops good;
        pc.conninfo = good_ports[i];
        if (shp_pg_ops(&good, &pc) != 0)
            fail_msg("%s: refused", good_ports[i]);
        shp_pg_ops_free(&good);
    }
    /* what libpq quotes is withheld (see test_config_parse_error_withheld) */
    assert_true(log_has("reason=\"invalid connection option '****'\""));
    assert_false(log_has(WRONG_PW));
    assert_true(log_has("field=connect_timeout_ns"));
    assert_null(ops.connect);
    shp_pg_ops_free(&ops); /* zeroed: no-op */
    assert_null(shp_pg_conn(NULL));
    int not_ours = 0;
    assert_null(shp_pg_conn(&not_ours));
}

/* A conninfo that does not parse is logged with libpq's reason, and
 * whatever libpq quotes in it withheld: what it quotes may be the password
 * or a piece of it (a bad %-escape in a URI password, the half of an
 * unquoted password with a blank in it that libpq reads as a keyword or an
 * option, the whole URI). */
static void test_config_parse_error_withheld(void **state)
{
    (void)state;
    static const struct { const char *conninfo, *reason; } cases[] = {
        { "postgresql://app:p%ss" PASSWORD "@db/orders",
          "reason=\"invalid percent-encoded token: '****'\"" },
        { "postgresql://app@db/orders?password=p%00" PASSWORD,
          "reason=\"forbidden value %00 in percent-encoded value: '****'\"" },
        { "host=x password=Tr0ub4dor " PASSWORD " user=u",
          "reason=\"missing '****' in connection info string\"" },
        { "host=x password=Tr0ub4dor " PASSWORD "=1 user=u",
          "reason=\"invalid connection option '****'\"" },
        { "postgresql://app:" PASSWORD "@[::1/orders", "reason=\"end of string reached when "
                                                       "looking for matching '****'\"" },
        { "host=x password='" PASSWORD, "reason=\"unterminated quoted string in connection "
                                        "info string\"" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        shp_pg_config pc;
        shp_pg_config_init(&pc);
        pc.conninfo = cases[i].conninfo;
        pc.name = "pgparse";
        shp_ops ops;
        log_start();
        assert_int_equal(shp_pg_ops(&ops, &pc), -EINVAL);
        if (!log_has("level=error pool=pgparse event=invalid_config field=conninfo ") ||
            !log_has(cases[i].reason))
            fail_msg("%s: no line with %s", cases[i].conninfo, cases[i].reason);
        /* no piece of it: "Tr0ub4dor-s3cret", "Tr0ub4dor", "s3cret" */
        if (log_has("Tr0ub") || log_has("s3cret"))
            fail_msg("%s: the password shows", cases[i].conninfo);
        log_stop();
    }
}

/* The target in log lines and details ("user@host:port/dbname") stands
 * unquoted in key=value text: every blank, control byte, '"' and '=' of
 * the conninfo's values is written as '_' (a tab, CR, VT or FF included). */
static void test_target_no_blanks(void **state)
{
    (void)state;
    shp_ops ops;
    log_start();
    shp_pool *pool = make_pool(&ops,
                               "host='/nonexistent-shp\tdir\r\v\fx' port=5432 user='u\tv' "
                               "dbname='d b\x7f\x01" "c=\"' " NO_PASSFILE,
                               1, 2 * NS_PER_S);
    shp_conn *c = NULL;
    assert_true(shp_acquire(pool, &c, 300 * NS_PER_MS) < 0);
    if (!log_has("u_v@/nonexistent-shp_dir___x:5432/d_b__c__: "))
        fail_msg("no line with the target made blank-free:\n%s", log_buf);
    drop_pool(pool, &ops);
    log_stop();
}

struct worker {
    shp_pool *pool;
    int id, iters;
    int ok, wrong, errors;
};

static void *happy_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->iters; i++) {
        shp_conn *c;
        if (shp_acquire(w->pool, &c, 10 * NS_PER_S) != 0) {
            w->errors++;
            continue;
        }
        PGconn *pg = shp_pg_conn(shp_conn_handle(c));
        char val[32];
        int x = w->id * 100000 + i;
        snprintf(val, sizeof val, "%d", x);
        const char *params[1] = { val };
        PGresult *r = PQexecParams(pg, "SELECT $1::int + 1, current_setting('application_name')",
                                   1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            w->errors++;
        } else if (strtol(PQgetvalue(r, 0, 0), NULL, 10) != x + 1 ||
                   strcmp(PQgetvalue(r, 0, 1), "shardpool") != 0) {
            w->wrong++;
        } else {
            w->ok++;
        }
        PQclear(r);
        shp_release(c);
    }
    return NULL;
}

static void run_happy(const char *conninfo)
{
    enum { THREADS = 8, ITERS = 150 };
    shp_ops ops;
    shp_pool *pool = make_pool(&ops, conninfo, 4, -1);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .pool = pool, .id = i, .iters = ITERS };
        assert_int_equal(pthread_create(&th[i], NULL, happy_main, &w[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
        assert_int_equal(w[i].wrong, 0);
        ok += w[i].ok;
    }
    assert_int_equal(ok, THREADS * ITERS);
    shp_stats st;
    assert_int_equal(shp_pool_stats(pool, &st), 0);
    assert_true(st.creations >= 1 && st.creations <= 8); /* 4 live at most; some may be replaced */
    assert_true(st.live <= 4);
    drop_pool(pool, &ops);
}

static void test_happy_conninfo(void **state)
{
    (void)state;
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    int fds = count_fds();
    run_happy(ci);
    assert_int_equal(count_fds(), fds);
}

static void test_happy_uri_and_unix_socket(void **state)
{
    (void)state;
    char ci[512];
    snprintf(ci, sizeof ci, "postgresql://%s:%s@127.0.0.1:%d/postgres?sslmode=disable",
             PGSERVER_USER, PASSWORD, srv.port);
    run_happy(ci);
    /* the unix socket in the server's directory, URI with a host parameter */
    snprintf(ci, sizeof ci, "postgresql:///postgres?host=%s&port=%d&user=%s&password=%s", srv.dir,
             srv.port, PGSERVER_USER, PASSWORD);
    run_happy(ci);
}

static void test_bad_password(void **state)
{
    (void)state;
    char ci[256];
    pgserver_conninfo(&srv, WRONG_PW, ci, sizeof ci);
    log_start();
    shp_ops ops;
    shp_pool *pool = make_pool(&ops, ci, 2, -1);
    shp_conn *c = NULL;
    int64_t t0 = now_ns();
    int rc = shp_acquire(pool, &c, 5 * NS_PER_S);
    int64_t el = now_ns() - t0;
    assert_int_equal(rc, -EACCES);
    assert_true(el < 2 * NS_PER_S); /* at once, not after the acquire timeout */
    drop_pool(pool, &ops);

    /* the same as a URI: user:password@ */
    char uri[256];
    snprintf(uri, sizeof uri, "postgres://%s:%s@127.0.0.1:%d/postgres", PGSERVER_USER, WRONG_PW,
             srv.port);
    pool = make_pool(&ops, uri, 2, -1);
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), -EACCES);
    drop_pool(pool, &ops);
    log_stop();

    assert_true(log_has("event=connect_failed"));
    assert_true(log_has("err=EACCES"));
    assert_true(log_has("authentication failed")); /* libpq's message is carried */
    assert_false(log_has(WRONG_PW));
    assert_false(log_has(PASSWORD));
}

/* A pool over the adapter, wrapped to count connects (connect_attempts and
 * the breaker at their defaults). */
static shp_pool *counted_pool(counted_ops *co, shp_ops *real, const char *conninfo)
{
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = conninfo;
    pc.name = "pgadapter"; /* not the pool's name: the line must be the pool's */
    assert_int_equal(shp_pg_ops(real, &pc), 0);
    shp_ops ops = counted_wrap(co, real);
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = 2;
    cfg.name = "pgperm";
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &cfg, &ops), 0);
    return pool;
}

static counted_ops perm_co;

/* One case of test_permanent_errors: conninfo fails with want at once. */
static void expect_permanent(const char *conninfo, int want, const char *words)
{
    shp_ops real;
    shp_pool *pool = counted_pool(&perm_co, &real, conninfo);
    expect_permanent_failure(pool, &perm_co.calls, want, words, PASSWORD);
    assert_false(log_has(WRONG_PW));
    assert_int_equal(log_count("pool=pgadapter"), 0); /* the adapter logged nothing */
    drop_pool(pool, &real);
}

/* Adds (line != NULL) or removes a first line of the server's pg_hba.conf
 * and reloads it; then waits until a connect as user shows the change
 * (probe: a substring of the message libpq gives once it applies). */
static void hba_first_line(const char *line, const char *user, const char *probe)
{
    char path[160];
    static char old[65536];
    snprintf(path, sizeof path, "%s/pg_hba.conf", srv.datadir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(old, 1, sizeof old - 1, f);
    old[n] = '\0';
    fclose(f);
    const char *rest = old;
    if (!line && strncmp(old, "host all ghost", 14) == 0)
        rest = strchr(old, '\n') + 1; /* drop the line added before */
    f = fopen(path, "w"); /* keeps the file's owner */
    assert_non_null(f);
    fprintf(f, "%s%s%s", line ? line : "", line ? "\n" : "", rest);
    assert_int_equal(fclose(f), 0);
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    PGconn *a = PQconnectdb(ci);
    assert_int_equal(PQstatus(a), CONNECTION_OK);
    exec_ok(a, "SELECT pg_reload_conf()");
    PQfinish(a);
    /* the postmaster rereads the file on SIGHUP: poll until it did */
    char probe_ci[256];
    snprintf(probe_ci, sizeof probe_ci, "host=127.0.0.1 port=%d dbname=postgres user=%s %s",
             srv.port, user, NO_PASSFILE);
    bool seen = false;
    char last[512] = "";
    for (int i = 0; i < 2000 && !seen; i++) {
        PGconn *p = PQconnectdb(probe_ci);
        snprintf(last, sizeof last, "%s", PQerrorMessage(p));
        seen = strstr(last, probe) != NULL;
        PQfinish(p);
        if (!seen)
            nap_ms(5);
    }
    if (!seen)
        fail_msg("pg_hba.conf change not seen after 10 s; last message: %s", last);
}

/* Permanent connect errors fail the acquire at once (one connect, no
 * retry, no backoff) with their own errno, the backend's words in the last
 * errors and in the pool's one log line, and the password nowhere. */
static void test_permanent_errors(void **state)
{
    (void)state;
    char ci[512];
    pgserver_conninfo(&srv, WRONG_PW, ci, sizeof ci);
    expect_permanent(ci, -EACCES, "password authentication failed for user 'shp'");

    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=postgres user=%s %s", srv.port,
             PGSERVER_USER, NO_PASSFILE);
    expect_permanent(ci, -EACCES, "no password supplied");

    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=no_such_db user=%s password=%s",
             srv.port, PGSERVER_USER, PASSWORD);
    expect_permanent(ci, -ENOENT, "database 'no_such_db' does not exist");

    snprintf(ci, sizeof ci,
             "host=127.0.0.1 port=%d dbname=postgres user=%s password=%s sslmode=require",
             srv.port, PGSERVER_USER, PASSWORD);
    expect_permanent(ci, -EPROTONOSUPPORT, "server does not support SSL, but SSL was required");

    /* A role that does not exist: with password authentication the server
     * says only "authentication failed" (-EACCES above); a trust line for
     * it makes the server name the missing role. */
    hba_first_line("host all ghost 127.0.0.1/32 trust", "ghost", "role \"ghost\" does not exist");
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=postgres user=ghost password=%s",
             srv.port, PASSWORD);
    expect_permanent(ci, -ENOENT, "role 'ghost' does not exist");
    hba_first_line(NULL, "ghost", "no password supplied");

    static const char host[] = "no-such-host-shp-test.invalid";
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, "5432", NULL, &res);
    if (g == 0)
        freeaddrinfo(res);
    if (g == EAI_NONAME || g == EAI_NODATA) {
        snprintf(ci, sizeof ci, "host=%s port=%d dbname=postgres user=%s password=%s", host,
                 srv.port, PGSERVER_USER, PASSWORD);
        expect_permanent(ci, -ENXIO, "could not translate host name");
    } else {
        print_message("host name typo not tested: the resolver answers %s\n", gai_strerror(g));
    }
}

/* A health check that fails (the server ended the backend) is one line,
 * the pool's, with libpq's words; the pool replaces the connection. */
static void test_check_failure_one_line(void **state)
{
    (void)state;
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = ci;
    pc.name = "pgadapter";
    shp_ops ops;
    assert_int_equal(shp_pg_ops(&ops, &pc), 0);
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = 1;
    cfg.validate_idle_ns = 0;
    cfg.reaper_interval_ns = NS_PER_MS; /* the idle clock's resolution */
    cfg.name = "pgcheck";
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &cfg, &ops), 0);
    shp_conn *c;
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    int pid = backend_pid_of(c);
    assert_int_equal(shp_release(c), 0);
    PGconn *a = PQconnectdb(ci);
    assert_int_equal(PQstatus(a), CONNECTION_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
    exec_ok(a, sql);
    PQfinish(a);

    log_start_level(SHP_LOG_INFO);
    shp_stats st = { 0 };
    /* acquires validate only once the idle clock passed the release */
    for (int i = 0; i < 5000 && st.health_failed == 0; i++) {
        assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
        assert_int_equal(shp_pool_stats(pool, &st), 0);
        if (st.health_failed == 0) {
            assert_int_equal(shp_release(c), 0);
            nap_ms(1);
        }
    }
    log_stop();
    assert_int_equal(st.health_failed, 1);
    assert_int_not_equal(backend_pid_of(c), pid); /* a new connection */
    assert_int_equal(shp_release(c), 0);
    if (log_count("failed") != 1 || log_count("pool=pgcheck event=check_failed") != 1)
        fail_msg("want one check_failed line, got:\n%s", log_buf);
    if (!log_has("msg=\"shp@127.0.0.1:") || !log_has(": check read: "))
        fail_msg("want libpq's words, got:\n%s", log_buf);
    assert_int_equal(log_count("pool=pgadapter"), 0);
    assert_false(log_has(PASSWORD));
    drop_pool(pool, &ops);
}

static void test_backend_down(void **state)
{
    (void)state;
    int port = pgserver_free_port();
    assert_true(port > 0);
    char ci[256];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=postgres user=%s password=%s", port,
             PGSERVER_USER, PASSWORD);
    log_start();
    shp_ops ops;
    shp_pool *pool = make_pool(&ops, ci, 2, -1);
    shp_conn *c = NULL;
    int64_t t0 = now_ns();
    int rc = shp_acquire(pool, &c, 2 * NS_PER_S);
    int64_t el = now_ns() - t0;
    assert_int_equal(rc, -ECONNREFUSED);
    assert_true(el < 2 * NS_PER_S + 100 * NS_PER_MS);
    drop_pool(pool, &ops);

    /* a unix socket directory without a server */
    snprintf(ci, sizeof ci, "host=%s port=%d dbname=postgres user=%s password=%s", srv.dir, port,
             PGSERVER_USER, PASSWORD);
    pool = make_pool(&ops, ci, 2, -1);
    assert_int_equal(shp_acquire(pool, &c, 2 * NS_PER_S), -ECONNREFUSED);
    drop_pool(pool, &ops);
    log_stop();
    assert_false(log_has(PASSWORD));
}

/* A listener that never accepts: the TCP handshake completes in the kernel
 * but no startup response comes, so only the adapter's deadline ends the
 * connect, well under libpq's 2-second minimum. */
static void test_connect_timeout(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    char ci[256];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=postgres user=%s password=%s",
             ntohs(sa.sin_port), PGSERVER_USER, PASSWORD);
    log_start();
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = ci;
    pc.connect_timeout_ns = 300 * NS_PER_MS;
    shp_ops ops;
    assert_int_equal(shp_pg_ops(&ops, &pc), 0);
    /* the callback itself: the pool's retries would blur the bound */
    void *h = NULL;
    int64_t t0 = now_ns();
    int rc = ops.connect(ops.ctx, &h);
    int64_t el = now_ns() - t0;
    assert_int_equal(rc, -ETIMEDOUT);
    assert_null(h);
    assert_true(el >= 300 * NS_PER_MS);
    assert_true(el < 300 * NS_PER_MS + 100 * NS_PER_MS);

    /* through a pool: the acquire ends by its own deadline, never later */
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = 2;
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &cfg, &ops), 0);
    shp_conn *c = NULL;
    t0 = now_ns();
    assert_int_equal(shp_acquire(pool, &c, NS_PER_S), -ETIMEDOUT);
    el = now_ns() - t0;
    assert_true(el < NS_PER_S + 100 * NS_PER_MS);
    drop_pool(pool, &ops);
    log_stop();
    assert_true(log_has("err=ETIMEDOUT"));
    assert_false(log_has(PASSWORD));
    close(lfd);
}

/* One connection (max_size 1), so each acquire gets the one released. */
static void test_dirty_release(void **state)
{
    (void)state;
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    shp_ops ops;
    shp_pool *pool = make_pool(&ops, ci, 1, -1);
    shp_conn *c;
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    PGconn *pg = shp_pg_conn(shp_conn_handle(c));
    exec_ok(pg, "CREATE TABLE dirty (x int)");
    int pid = backend_pid_of(c);
    assert_int_equal(shp_release(c), 0);

    /* open transaction with an insert, released without COMMIT */
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    pg = shp_pg_conn(shp_conn_handle(c));
    assert_int_equal(backend_pid_of(c), pid);
    exec_ok(pg, "BEGIN");
    exec_ok(pg, "INSERT INTO dirty VALUES (42)");
    assert_int_equal(exec_ok(pg, "SELECT count(*) FROM dirty"), 1);
    exec_ok(pg, "SET LOCAL statement_timeout = 1234");
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_INTRANS);
    assert_int_equal(shp_release(c), 0);

    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    pg = shp_pg_conn(shp_conn_handle(c));
    assert_int_equal(backend_pid_of(c), pid); /* the same connection, kept */
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    assert_int_equal(exec_ok(pg, "SELECT count(*) FROM dirty"), 0); /* rolled back */

    /* aborted transaction */
    exec_ok(pg, "BEGIN");
    PGresult *r = PQexec(pg, "SELECT 1/0");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_INERROR);
    assert_int_equal(shp_release(c), 0);

    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    pg = shp_pg_conn(shp_conn_handle(c));
    assert_int_equal(backend_pid_of(c), pid);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    assert_int_equal(exec_ok(pg, "SELECT 7"), 7);

    /* a query in flight: the connection is closed, a new one replaces it */
    assert_int_equal(PQsendQuery(pg, "SELECT pg_sleep(0.2)"), 1);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_ACTIVE);
    shp_stats before;
    assert_int_equal(shp_pool_stats(pool, &before), 0);
    assert_int_equal(shp_release(c), 0);
    shp_stats after;
    assert_int_equal(shp_pool_stats(pool, &after), 0);
    assert_int_equal(after.closed, before.closed + 1);

    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    pg = shp_pg_conn(shp_conn_handle(c));
    assert_int_not_equal(backend_pid_of(c), pid);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    exec_ok(pg, "DROP TABLE dirty");
    assert_int_equal(shp_release(c), 0);
    drop_pool(pool, &ops);
}

/* reset_query runs on every release: session state does not leak to the
 * next borrower. */
static void test_reset_query(void **state)
{
    (void)state;
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = ci;
    pc.reset_query = "DISCARD ALL";
    pc.application_name = NULL; /* conninfo's (none: libpq's default, empty) */
    shp_ops ops;
    assert_int_equal(shp_pg_ops(&ops, &pc), 0);
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = 1;
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &cfg, &ops), 0);
    shp_conn *c;
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    PGconn *pg = shp_pg_conn(shp_conn_handle(c));
    int pid = backend_pid_of(c);
    exec_ok(pg, "SET statement_timeout = 4321");
    PGresult *r = PQexec(pg, "SELECT current_setting('application_name')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "");
    PQclear(r);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    pg = shp_pg_conn(shp_conn_handle(c));
    assert_int_equal(backend_pid_of(c), pid);
    assert_int_equal(exec_ok(pg, "SELECT current_setting('statement_timeout')::int"), 0);
    assert_int_equal(shp_release(c), 0);
    drop_pool(pool, &ops);
}

static bool within_10pct(int64_t el, int64_t want)
{
    return el >= want - want / 10 && el <= want + want / 10;
}

/* A server that accepts but never answers (SIGSTOPped): the connect and the
 * health check end at their timeouts, and an acquirer at its deadline. */
static void test_stopped_server(void **state)
{
    (void)state;
    const int64_t tmo = 400 * NS_PER_MS;
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = ci;
    pc.connect_timeout_ns = tmo;
    pc.query_timeout_ns = tmo;
    shp_ops ops;
    assert_int_equal(shp_pg_ops(&ops, &pc), 0);
    void *h = NULL;
    assert_int_equal(ops.connect(ops.ctx, &h), 0);
    assert_int_equal(ops.check(ops.ctx, h), 0);

    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = 2;
    cfg.validate_idle_ns = 0; /* every acquire of an idle connection checks it */
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &cfg, &ops), 0);
    shp_conn *c;
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    assert_int_equal(shp_release(c), 0);

    log_start();
    assert_int_equal(pgserver_sigstop(&srv), 0);
    int64_t t0 = now_ns();
    int rc = ops.check(ops.ctx, h);
    int64_t el = now_ns() - t0;
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(within_10pct(el, tmo));

    void *h2 = NULL;
    t0 = now_ns();
    rc = ops.connect(ops.ctx, &h2);
    el = now_ns() - t0;
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(within_10pct(el, tmo));

    /* The pool cannot interrupt a callback (shp_ops passes no deadline):
     * a check or connect begun before the acquire deadline runs to its own
     * timeout.  The core also starts connect retries whose timeout ends past
     * the deadline (retry_after_failure compares only the backoff with it),
     * so this asserts only that the acquire ends, within a few timeouts;
     * the measured time is printed. */
    const int64_t deadline = 700 * NS_PER_MS;
    t0 = now_ns();
    rc = shp_acquire(pool, &c, deadline);
    el = now_ns() - t0;
    if (rc == 0)
        shp_release(c);
    print_message("stopped server: acquire returned %d after %lld ms (deadline %lld ms)\n", rc,
                  (long long)(el / NS_PER_MS), (long long)(deadline / NS_PER_MS));
    assert_int_not_equal(rc, 0);
    assert_true(el <= deadline + 4 * tmo + 100 * NS_PER_MS);
    assert_int_equal(pgserver_sigcont(&srv), 0);
    log_stop();

    ops.close(ops.ctx, h); /* a check query was left in flight: closing is the cure */
    assert_int_equal(shp_acquire(pool, &c, 5 * NS_PER_S), 0);
    assert_int_equal(exec_ok(shp_pg_conn(shp_conn_handle(c)), "SELECT 5"), 5);
    assert_int_equal(shp_release(c), 0);
    drop_pool(pool, &ops);
}

/* ---- kill -9 under load, then restart ------------------------------------------- */

/* A counting wrapper around the adapter's ops: how many connect callbacks
 * run at once (the most seen), to show the pool never exceeds
 * max_connecting, also right after a restart. */
#define LOAD_THREADS    16
#define LOAD_POOL       4
#define LOAD_CONNECTING 2
#define LOAD_TMO        NS_PER_S /* acquire timeout and connect timeout */

struct load {
    shp_pool *pool;
    atomic_bool stop;
    atomic_long ok, err, started, finished;
    atomic_long hostdown, timedout;  /* acquire results -EHOSTDOWN, -ETIMEDOUT */
    atomic_llong max_op_ns;
    atomic_llong max_hostdown_ns;    /* the longest acquire that gave -EHOSTDOWN */
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    while (!atomic_load(&l->stop)) {
        atomic_fetch_add(&l->started, 1);
        int64_t t0 = now_ns();
        shp_conn *c;
        int rc = shp_acquire(l->pool, &c, LOAD_TMO);
        int64_t acq_ns = now_ns() - t0;
        bool ok = false;
        if (rc == 0) {
            PGconn *pg = shp_pg_conn(shp_conn_handle(c));
            PGresult *r = PQexec(pg, "SELECT 41 + 1");
            ok = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "42") == 0;
            PQclear(r);
            if (ok || PQstatus(pg) == CONNECTION_OK)
                shp_release(c);
            else
                shp_release_broken(c);
        } else if (rc == -EHOSTDOWN) {
            atomic_fetch_add(&l->hostdown, 1);
            max_update(&l->max_hostdown_ns, acq_ns);
        } else if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&l->timedout, 1);
        }
        atomic_fetch_add(ok ? &l->ok : &l->err, 1);
        atomic_fetch_add(&l->finished, 1);
        max_update(&l->max_op_ns, now_ns() - t0);
        if (!ok)
            nap_ms(5); /* pace a failing client; not synchronisation */
    }
    return NULL;
}

/* Waits (polling, bounded) until counter reaches target. */
static bool wait_count(atomic_long *counter, long target, int timeout_ms)
{
    int64_t deadline = now_ns() + (int64_t)timeout_ms * NS_PER_MS;
    while (atomic_load(counter) < target) {
        if (now_ns() > deadline)
            return false;
        nap_ms(2);
    }
    return true;
}

/* Polls (bounded) until the pool's breaker is open (want) or closed. */
static bool wait_breaker(shp_pool *pool, bool want, int timeout_ms)
{
    int64_t deadline = now_ns() + (int64_t)timeout_ms * NS_PER_MS;
    shp_stats st;
    while (!(shp_pool_stats(pool, &st) == 0 && (st.breaker_open != 0) == want)) {
        if (now_ns() > deadline)
            return false;
        nap_ms(2);
    }
    return true;
}

static struct load l;      /* static: outlive a failed test's frame */
static counted_ops counted;

/* 16 threads through a pool of 4 with max_connecting 2 and the default
 * breaker (threshold 5, a probe every 250 ms).  While the server is down
 * the breaker opens and acquirers that would connect fail fast with
 * -EHOSTDOWN; connects in flight never exceed 2, also when all threads
 * rush back after the restart; the first request succeeds within 1 s of
 * the server accepting again; every descriptor is given back. */
static void test_kill9_restart(void **state)
{
    (void)state;
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    int fds = count_fds();
    log_start(); /* quiet: the failures below are expected */
    shp_pg_config pgc;
    shp_pg_config_init(&pgc);
    pgc.conninfo = ci;
    pgc.name = "pgtest";
    pgc.connect_timeout_ns = LOAD_TMO;
    shp_ops real;
    assert_int_equal(shp_pg_ops(&real, &pgc), 0);
    shp_ops ops = counted_wrap(&counted, &real);
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = LOAD_POOL;
    cfg.max_connecting = LOAD_CONNECTING;
    cfg.name = "pgtest";
    /* breaker_threshold and breaker_probe_ns: the defaults */
    memset(&l, 0, sizeof l);
    assert_int_equal(shp_pool_create(&l.pool, &cfg, &ops), 0);
    pthread_t th[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, load_main, &l), 0);

    /* Waits record their outcome and are asserted only once the workers
     * are stopped: a failed assertion must not leave them running. */
    bool loaded = wait_count(&l.ok, 200, 10000), killed = false, failing = false;
    bool opened = false, fast_failed = false, restarted = false, recovered = false;
    bool kept_on = false;
    long ok_at_kill = 0;
    shp_stats at_kill = { 0 };
    int64_t first_ok = -1;
    int max_connecting_down = -1;
    if (loaded) {
        killed = pgserver_kill9(&srv) == 0;
        ok_at_kill = atomic_load(&l.ok);
        shp_pool_stats(l.pool, &at_kill); /* how many connections the kill left dead */
    }
    if (killed)
        failing = wait_count(&l.err, 20, 10000); /* requests fail, they do not hang */
    if (failing)
        opened = wait_breaker(l.pool, true, 10000);
    if (opened) {
        long hd0 = atomic_load(&l.hostdown);
        fast_failed = wait_count(&l.hostdown, hd0 + 20, 10000); /* acquirers fail fast */
        max_connecting_down = atomic_load(&counted.max_inflight);
    }
    if (fast_failed)
        restarted = pgserver_start(&srv) == 0; /* returns once PQping answers */
    if (restarted) {
        int64_t back = now_ns(); /* the restarted server accepts */
        long ok_after = atomic_load(&l.ok);
        recovered = wait_count(&l.ok, ok_after + 1, 5000);
        first_ok = now_ns() - back;
        kept_on = recovered && wait_count(&l.ok, ok_after + 200, 10000);
    }
    shp_stats after;
    int after_err = shp_pool_stats(l.pool, &after); /* traffic succeeds again */

    atomic_store(&l.stop, true);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(th[i], NULL);
    log_stop();
    assert_true(loaded);
    assert_true(killed);
    assert_true(failing);
    assert_true(opened);
    assert_true(fast_failed);
    assert_true(restarted);
    assert_true(recovered);
    assert_true(kept_on);
    assert_int_equal(after_err, 0);

    shp_stats st;
    assert_int_equal(shp_pool_stats(l.pool, &st), 0);
    print_message("kill9: ok=%ld err=%ld (EHOSTDOWN %ld, longest %.1f ms; ETIMEDOUT %ld), "
                  "first ok %lld ms after the server was back, slowest request %lld ms, "
                  "created=%llu closed=%llu connect_failures=%llu retries=%llu breaker_opens=%llu, "
                  "connects %ld, in flight max %d (%d while down, cap %d)\n",
                  atomic_load(&l.ok), atomic_load(&l.err), atomic_load(&l.hostdown),
                  (double)atomic_load(&l.max_hostdown_ns) / NS_PER_MS, atomic_load(&l.timedout),
                  (long long)(first_ok / NS_PER_MS), (long long)(atomic_load(&l.max_op_ns) / NS_PER_MS),
                  (unsigned long long)st.creations, (unsigned long long)st.closed,
                  (unsigned long long)st.connect_failures, (unsigned long long)st.retries,
                  (unsigned long long)st.breaker_opens, atomic_load(&counted.calls),
                  atomic_load(&counted.max_inflight), max_connecting_down, LOAD_CONNECTING);

    assert_int_equal(atomic_load(&l.started), atomic_load(&l.finished));
    assert_int_equal(atomic_load(&l.ok) + atomic_load(&l.err), atomic_load(&l.finished));
    assert_true(atomic_load(&l.ok) > ok_at_kill);
    /* acquire timeout 1 s + connect timeout 1 s + a query on a dead socket */
    assert_true(atomic_load(&l.max_op_ns) < 3 * NS_PER_S);
    /* The breaker opened while it was down and is closed once requests
     * succeed again. */
    assert_true(after.breaker_opens >= 1);
    assert_int_equal(after.breaker_open, 0);
    assert_int_equal(st.breaker_open, 0);
    /* While open, acquires that had to connect failed at once, far from
     * their timeout. */
    assert_true(atomic_load(&l.hostdown) >= 20);
    assert_true(atomic_load(&l.max_hostdown_ns) < LOAD_TMO / 2);
    /* No reconnect storm: never more connects at once than max_connecting. */
    assert_true(atomic_load(&counted.max_inflight) >= 1);
    assert_true(atomic_load(&counted.max_inflight) <= LOAD_CONNECTING);
    assert_int_equal(atomic_load(&counted.inflight), 0);
    assert_true(first_ok <= 1 * NS_PER_S);
    /* Dead connections were replaced: more were made than existed at the
     * kill (all of max_size only if the load had needed them all by then;
     * under TSan a slow load may have used one), and dead ones were closed. */
    assert_true(at_kill.creations >= 1);
    assert_true(st.creations > at_kill.creations);
    assert_true(st.closed >= 1);
    assert_true(st.connect_failures >= cfg.breaker_threshold); /* while the server was down */
    assert_true(st.live <= LOAD_POOL);
    assert_int_equal(st.in_use, 0);
    drop_pool(l.pool, &real);
    assert_int_equal(count_fds(), fds);
}

/* ---- INT64_MAX timeouts ---------------------------------------------------------------- */

/* INT64_MAX is a legal duration ("no timeout" in practice): connect_timeout_ns
 * and query_timeout_ns at INT64_MAX (and an acquire timeout of INT64_MAX)
 * must connect, run queries, check and reset without a signed overflow
 * (the ASan+UBSan build aborts on one) and without libpq refusing the
 * connect_timeout derived from it. */
static void test_timeouts_int64_max(void **state)
{
    (void)state;
    char ci[256];
    pgserver_conninfo(&srv, NULL, ci, sizeof ci);
    shp_pg_config pc;
    shp_pg_config_init(&pc);
    pc.conninfo = ci;
    pc.name = "pgmax";
    pc.connect_timeout_ns = INT64_MAX;
    pc.query_timeout_ns = INT64_MAX;
    shp_ops ops;
    assert_int_equal(shp_pg_ops(&ops, &pc), 0);

    /* The callbacks on their own (no acquire's deadline to cap them). */
    void *h = NULL;
    assert_int_equal(ops.connect(ops.ctx, &h), 0);
    assert_int_equal(exec_ok(shp_pg_conn(h), "SELECT 41 + 1"), 42);
    assert_int_equal(ops.check(ops.ctx, h), 0);
    exec_ok(shp_pg_conn(h), "BEGIN");
    assert_int_equal(ops.reset(ops.ctx, h), 0); /* the ROLLBACK, under the query deadline */
    assert_int_equal(PQtransactionStatus(shp_pg_conn(h)), PQTRANS_IDLE);
    ops.close(ops.ctx, h);

    /* Through a pool whose every acquire validates (check under the
     * acquire's deadline), with INT64_MAX acquire timeouts. */
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = 1;
    cfg.validate_idle_ns = 0;
    cfg.reaper_interval_ns = NS_PER_MS; /* the idle clock's resolution */
    cfg.name = "pgmax";
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &cfg, &ops), 0);
    shp_stats st = { 0 };
    for (int i = 0; i < 5000 && st.health_checks < 2; i++) {
        shp_conn *c;
        assert_int_equal(shp_acquire(pool, &c, INT64_MAX), 0);
        PGconn *pg = shp_pg_conn(shp_conn_handle(c));
        assert_int_equal(exec_ok(pg, "SELECT 7"), 7);
        exec_ok(pg, "BEGIN"); /* rolled back by the release */
        assert_int_equal(shp_release(c), 0);
        assert_int_equal(shp_pool_stats(pool, &st), 0);
        if (st.health_checks < 2)
            nap_ms(1);
    }
    assert_true(st.health_checks >= 2);
    assert_int_equal(st.health_failed, 0);
    assert_int_equal(st.creations, 1); /* the same connection throughout */
    assert_int_equal(st.closed, 0);
    drop_pool(pool, &ops);
}

/* A failed test must not leave the server frozen for the next ones. */
static int teardown(void **state)
{
    (void)state;
    log_stop();
    if (srv.stopped_sig)
        pgserver_sigcont(&srv);
    return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    if (pgserver_init(&srv, PASSWORD) == 0 && pgserver_start(&srv) == 0)
        srv_ok = true;
    else
        fprintf(stderr, "pg_test: could not start PostgreSQL; every test fails\n");

    const struct CMUnitTest tests[] = {
        T(test_config),
        T(test_config_parse_error_withheld),
        T(test_target_no_blanks),
        T(test_happy_conninfo),
        T(test_happy_uri_and_unix_socket),
        T(test_bad_password),
        T(test_permanent_errors),
        T(test_check_failure_one_line),
        T(test_backend_down),
        T(test_connect_timeout),
        T(test_dirty_release),
        T(test_reset_query),
        T(test_stopped_server),
        T(test_kill9_restart),
        T(test_timeouts_int64_max),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed && srv.logfile[0])
        fprintf(stderr, "pg_test: server log in %s (removed at exit)\n", srv.logfile);
    pgserver_destroy(&srv);
    shp_quiesce();
    return failed ? 1 : 0;
}

#include "pgserver.c"
