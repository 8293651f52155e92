/*
 * redis_test.c - the Redis adapter (include/shardpool/adapters/redis.h)
 * against a real redis-server that each test starts on a free loopback
 * port in a temporary directory (redisserver.c, compiled in here: the
 * build compiles one .c per test) and stops at the end.
 *
 * Nothing sleeps in place of synchronisation: a test that needs something
 * to have happened polls for it (the server answering PING, a counter of
 * the worker threads moving), bounded by WAIT_MS.  Timing assertions are
 * bounds that fail only on a bug (a timeout that fires far too early or
 * far too late).  cmocka assertions are made on the main thread only.
 *
 * The adapter logs no failure of connect, check or prepare: it records why
 * with shp_set_error_detail, which a test calling a callback directly reads
 * with detail_take (failtest.h), and the pool logs one line per failure.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#include "fakeconn.h"
#include "fixture.h"
#include "testutil.h"
#include "storm.h"
#include "failtest.h"

#include <hiredis/hiredis.h>

#include <shardpool.h>
#include <shardpool/adapters/redis.h>

#include "redisserver.c"

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL
#define WAIT_MS   10000 /* bound on waits for events that must come */


/* The pause between two polls of a condition another thread makes true. */
static void poll_pause(void)
{
    struct timespec ts = { 0, 2 * NS_PER_MS };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}


/* The server of the running test (stopped by teardown if a test fails). */
static rsrv srv;

/* ---- helpers ---------------------------------------------------------------------- */

static shp_redis_config redis_cfg(int port, const char *password, int db)
{
    shp_redis_config c;
    shp_redis_config_init(&c);
    c.port = port;
    c.password = password;
    c.db = db;
    c.name = "redis_test";
    return c;
}

static shp_ops make_ops(const shp_redis_config *rc)
{
    shp_ops ops;
    assert_int_equal(shp_redis_ops(&ops, rc), 0);
    return ops;
}

static shp_config pool_cfg(unsigned max_size, int64_t acquire_timeout_ns)
{
    shp_config pc;
    shp_config_init(&pc);
    pc.max_size = max_size;
    pc.acquire_timeout_ns = acquire_timeout_ns;
    pc.name = "redis_test";
    return pc;
}

/* A direct connection for the test's own commands (not pooled). */
static redisContext *admin(const char *password, int db)
{
    struct timeval tv = { 5, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
    redisReply *r;
    if (password) {
        r = redisCommand(c, "AUTH %s", password);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    r = redisCommand(c, "SELECT %d", db);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return c;
}

/* Runs a command expected to give a status reply equal to want. */
static void expect_status(redisContext *c, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

/* A GET's reply r (freed here): the string want, or nil when want is NULL. */
static void expect_get_reply(redisReply *r, const char *want)
{
    assert_non_null(r);
    if (want) {
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_string_equal(r->str, want);
    } else {
        assert_int_equal(r->type, REDIS_REPLY_NIL);
    }
    freeReplyObject(r);
}

/* GET key: expects the string want, or nil when want is NULL. */
static void expect_get(redisContext *c, const char *key, const char *want)
{
    expect_get_reply(redisCommand(c, "GET %s", key), want);
}

/* After a SUBSCRIBE to chan (its reply r, an array; freed here), the admin
 * connection a publishes three messages that the subscriber never reads. */
static void publish_unread(redisContext *a, redisReply *r)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    for (int i = 0; i < 3; i++) {
        r = redisCommand(a, "PUBLISH chan m%d", i);
        assert_non_null(r);
        assert_int_equal(r->integer, 1);
        freeReplyObject(r);
    }
}

/* ---- configuration ------------------------------------------------------------------ */

static void test_config(void **state)
{
    (void)state;
    shp_redis_config c;
    memset(&c, 0x5a, sizeof c);
    shp_redis_config_init(&c);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 6379);
    assert_null(c.unix_path);
    assert_null(c.user);
    assert_null(c.password);
    assert_int_equal(c.db, 0);
    assert_true(c.connect_timeout_ns > 0);
    assert_true(c.command_timeout_ns > 0);
    assert_int_equal(c.cleanup, SHP_REDIS_CLEANUP_ALWAYS);
    shp_redis_config_init(NULL); /* no crash */

    shp_ops ops, untouched;
    memset(&untouched, 0x77, sizeof untouched);
    ops = untouched;
    log_start(); /* keep the expected error lines off stderr */
    assert_int_equal(shp_redis_ops(NULL, &c), -EINVAL);
    assert_int_equal(shp_redis_ops(&ops, NULL), -EINVAL);
    shp_redis_config b = c;
    b.port = 0;
    assert_int_equal(shp_redis_ops(&ops, &b), -EINVAL);
    b = c;
    b.host = "";
    assert_int_equal(shp_redis_ops(&ops, &b), -EINVAL);
    b = c;
    b.db = -1;
    assert_int_equal(shp_redis_ops(&ops, &b), -EINVAL);
    b = c;
    b.user = "u";
    assert_int_equal(shp_redis_ops(&ops, &b), -EINVAL);
    b = c;
    b.command_timeout_ns = -1;
    assert_int_equal(shp_redis_ops(&ops, &b), -EINVAL);
    b = c;
    b.cleanup = (shp_redis_cleanup)7;
    assert_int_equal(shp_redis_ops(&ops, &b), -EINVAL);
    b = c;
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    b.unix_path = longpath;
    assert_int_equal(shp_redis_ops(&ops, &b), -ENAMETOOLONG);
    assert_memory_equal(&ops, &untouched, sizeof ops);
    log_stop();
    assert_true(log_has("field=cleanup"));

    /* ops_free is a no-op on zeroed or foreign ops; the handle check. */
    shp_ops zero = { 0 };
    shp_redis_ops_free(&zero);
    shp_redis_ops_free(NULL);
    assert_null(shp_redis_ctx(NULL));
    uint64_t junk = 0;
    assert_null(shp_redis_ctx(&junk));
}

/* ---- happy path --------------------------------------------------------------------- */

#define HAPPY_THREADS 16
#define HAPPY_ITERS   300

typedef struct worker {
    pthread_t thread;
    shp_pool *pool;
    int id;
    int done;        /* iterations whose results all checked */
    int failures;
    char first_failure[160];
} worker;

static void fail_once(worker *w, const char *what, const redisContext *c)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof w->first_failure, "%s (%s)", what,
                 c && c->err ? c->errstr : "-");
}

static void *happy_main(void *arg)
{
    worker *w = arg;
    char key[32], val[48];
    for (int i = 0; i < HAPPY_ITERS; i++) {
        shp_conn *conn;
        int err = shp_acquire(w->pool, &conn, -1);
        if (err) {
            fail_once(w, shp_err_name(err), NULL);
            continue;
        }
        redisContext *c = shp_redis_ctx(shp_conn_handle(conn));
        bool ok = c != NULL;
        redisReply *r = ok ? redisCommand(c, "INCR hits") : NULL;
        ok = r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1;
        if (r)
            freeReplyObject(r);
        snprintf(key, sizeof key, "k:%d", w->id);
        snprintf(val, sizeof val, "v:%d:%d", w->id, i);
        if (ok) {
            r = redisCommand(c, "SET %s %s", key, val);
            ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK");
            if (r)
                freeReplyObject(r);
        }
        if (ok) {
            r = redisCommand(c, "GET %s", key);
            ok = r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, val);
            if (r)
                freeReplyObject(r);
        }
        if (ok)
            w->done++;
        else
            fail_once(w, "command", c);
        if (ok)
            shp_release(conn);
        else
            shp_release_broken(conn);
    }
    return NULL;
}

static void test_happy_path(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, NULL), 0);
    shp_redis_config rc = redis_cfg(srv.port, NULL, 0);
    shp_ops ops = make_ops(&rc);
    shp_config pc = pool_cfg(4, 10 * NS_PER_S);
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);

    worker w[HAPPY_THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < HAPPY_THREADS; i++) {
        w[i].pool = pool;
        w[i].id = i;
        assert_int_equal(pthread_create(&w[i].thread, NULL, happy_main, &w[i]), 0);
    }
    for (int i = 0; i < HAPPY_THREADS; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].failures)
            fail_msg("thread %d: %d failures, first: %s", i, w[i].failures, w[i].first_failure);
        assert_int_equal(w[i].done, HAPPY_ITERS);
    }
    shp_stats st;
    assert_int_equal(shp_pool_stats(pool, &st), 0);
    assert_true(st.creations <= 4);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.closed, 0); /* every reset kept its connection */

    redisContext *a = admin(NULL, 0);
    redisReply *r = redisCommand(a, "GET hits");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(atoi(r->str), HAPPY_THREADS * HAPPY_ITERS);
    freeReplyObject(r);
    redisFree(a);

    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);
    rsrv_stop(&srv);
}

/* The unix socket the server also listens on. */
static void test_unix_socket(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, NULL), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/redis.sock", srv.dir);
    shp_redis_config rc = redis_cfg(srv.port, NULL, 2);
    rc.unix_path = path;
    shp_ops ops = make_ops(&rc);
    void *h = NULL;
    assert_int_equal(ops.connect(ops.ctx, &h), 0);
    redisContext *c = shp_redis_ctx(h);
    assert_non_null(c);
    expect_status(c, "OK", "SET where unix");
    assert_int_equal(ops.check(ops.ctx, h), 0);
    assert_int_equal(ops.reset(ops.ctx, h), 0);
    assert_int_equal(ops.prepare(ops.ctx, h), 0); /* collects the cleanup sent by reset */
    ops.close(ops.ctx, h);
    shp_redis_ops_free(&ops);

    redisContext *a = admin(NULL, 2); /* SELECT 2 was made */
    expect_get(a, "where", "unix");
    redisFree(a);

    /* A socket file that is not there: no server there, refused. */
    snprintf(path, sizeof path, "%s/none.sock", srv.dir);
    ops = make_ops(&rc);
    log_start();
    assert_int_equal(ops.connect(ops.ctx, &h), -ECONNREFUSED);
    assert_non_null(strstr(detail_take(), "none.sock: connect: "));
    shp_redis_ops_free(&ops);

    /* A db the server does not have (16 by default). */
    rc = redis_cfg(srv.port, NULL, 99);
    ops = make_ops(&rc);
    assert_int_equal(ops.connect(ops.ctx, &h), -ENOENT);
    log_stop();
    assert_non_null(strstr(detail_take(), ": select: ERR DB index is out of range"));
    assert_int_equal(log_count("failed"), 0); /* the adapter logged nothing */
    shp_redis_ops_free(&ops);
    rsrv_stop(&srv);
}

/* ---- authentication ------------------------------------------------------------------ */

#define GOOD_PW "Gd-pw 8841 %s" /* a space and a % on purpose */
#define BAD_PW  "Bd-pw-1907"

static void test_auth(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, GOOD_PW), 0);
    log_start();

    /* Wrong password: -EACCES at once, through the pool. */
    shp_redis_config rc = redis_cfg(srv.port, BAD_PW, 0);
    shp_ops ops = make_ops(&rc);
    shp_config pc = pool_cfg(4, 5 * NS_PER_S);
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    shp_conn *conn;
    int64_t t0 = now_ns();
    assert_int_equal(shp_acquire(pool, &conn, -1), -EACCES);
    int64_t took = now_ns() - t0;
    assert_true(took < 1 * NS_PER_S);
    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);

    /* No password against a server that wants one: NOAUTH, -EACCES. */
    rc = redis_cfg(srv.port, NULL, 0);
    ops = make_ops(&rc);
    void *h;
    assert_int_equal(ops.connect(ops.ctx, &h), -EACCES);
    assert_non_null(strstr(detail_take(), ": ping: NOAUTH"));
    shp_redis_ops_free(&ops);

    /* A user with a wrong password (AUTH user password form). */
    rc = redis_cfg(srv.port, BAD_PW, 0);
    rc.user = "default";
    ops = make_ops(&rc);
    assert_int_equal(ops.connect(ops.ctx, &h), -EACCES);
    shp_redis_ops_free(&ops);

    /* The good password, both forms; the config's copy is private. */
    for (int form = 0; form < 2; form++) {
        char pw[32];
        snprintf(pw, sizeof pw, "%s", GOOD_PW);
        rc = redis_cfg(srv.port, pw, 0);
        rc.user = form ? "default" : NULL;
        ops = make_ops(&rc);
        memset(pw, 'x', sizeof pw - 1);
        assert_int_equal(ops.connect(ops.ctx, &h), 0);
        assert_int_equal(ops.check(ops.ctx, h), 0);
        assert_int_equal(ops.reset(ops.ctx, h), 0); /* RESET deauthenticates; AUTH again */
        assert_int_equal(ops.prepare(ops.ctx, h), 0);
        expect_status(shp_redis_ctx(h), "OK", "SET authed %d", form);
        if (form == 0) /* a named ACL user for the checks below */
            expect_status(shp_redis_ctx(h), "OK", "ACL SETUSER app on >App-pw1 ~* +@all");
        ops.close(ops.ctx, h);
        shp_redis_ops_free(&ops);
    }

    /* A named ACL user (AUTH user password): the right password logs in as
     * that user, also again after the release cleanup; a wrong one is
     * -EACCES at once. */
    rc = redis_cfg(srv.port, "App-pw1", 0);
    rc.user = "app";
    ops = make_ops(&rc);
    assert_int_equal(ops.connect(ops.ctx, &h), 0);
    redisReply *who = redisCommand(shp_redis_ctx(h), "ACL WHOAMI");
    assert_non_null(who);
    assert_string_equal(who->str, "app");
    freeReplyObject(who);
    assert_int_equal(ops.reset(ops.ctx, h), 0);
    assert_int_equal(ops.prepare(ops.ctx, h), 0);
    who = redisCommand(shp_redis_ctx(h), "ACL WHOAMI");
    assert_non_null(who);
    assert_string_equal(who->str, "app");
    freeReplyObject(who);
    ops.close(ops.ctx, h);
    shp_redis_ops_free(&ops);
    rc = redis_cfg(srv.port, BAD_PW, 0);
    rc.user = "app";
    ops = make_ops(&rc);
    assert_int_equal(ops.connect(ops.ctx, &h), -EACCES);
    shp_redis_ops_free(&ops);

    log_stop();
    assert_true(log_has("event=connect_failed"));
    assert_true(log_has("err=EACCES"));
    assert_false(log_has(BAD_PW));
    assert_false(log_has("Gd-pw"));
    assert_false(log_has("App-pw1"));
    rsrv_stop(&srv);
}

/* ---- permanent errors ------------------------------------------------------------------ */

static counted_ops perm_co;

/* A pool over the adapter for rc, wrapped to count connects (connect
 * attempts and the breaker at their defaults); expects one acquire to fail
 * with want at once (failtest.h), then frees it all. */
static void expect_permanent(shp_redis_config rc, int want, const char *words)
{
    rc.name = "redisadapter"; /* not the pool's name: the line must be the pool's */
    shp_ops real = make_ops(&rc);
    shp_ops ops = counted_wrap(&perm_co, &real);
    shp_config pc = pool_cfg(2, 5 * NS_PER_S);
    pc.name = "redisperm";
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    expect_permanent_failure(pool, &perm_co.calls, want, words, GOOD_PW);
    assert_false(log_has(BAD_PW));
    assert_false(log_has("Gd-pw"));
    assert_int_equal(log_count("pool=redisadapter"), 0); /* the adapter logged nothing */
    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&real);
}

/* Permanent connect errors fail the acquire at once (one connect, no
 * retry, no backoff) with their own errno, the server's words in the last
 * errors and in the pool's one log line, and the password nowhere. */
static void test_permanent_errors(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, GOOD_PW), 0);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d: auth: WRONGPASS", srv.port);
    expect_permanent(redis_cfg(srv.port, BAD_PW, 0), -EACCES, where);
    expect_permanent(redis_cfg(srv.port, NULL, 0), -EACCES, ": ping: NOAUTH");
    expect_permanent(redis_cfg(srv.port, GOOD_PW, 99), -ENOENT,
                     ": select: ERR DB index is out of range");

    /* An ACL user that may not SELECT: NOPERM on the handshake's SELECT. */
    redisContext *a = admin(GOOD_PW, 0);
    expect_status(a, "OK", "ACL SETUSER noselect on >Ns-pw5 ~* +@all -select");
    redisFree(a);
    shp_redis_config rc = redis_cfg(srv.port, "Ns-pw5", 1);
    rc.user = "noselect";
    expect_permanent(rc, -EACCES, ": select: NOPERM");
    assert_false(log_has("Ns-pw5"));

    static const char host[] = "no-such-host-shp-test.invalid";
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, "6379", NULL, &res);
    if (g == 0)
        freeaddrinfo(res);
    if (g == EAI_NONAME || g == EAI_NODATA) {
        rc = redis_cfg(srv.port, GOOD_PW, 0);
        rc.host = host;
        snprintf(where, sizeof where, "%s:%d: resolve: ", host, srv.port);
        expect_permanent(rc, -ENXIO, where);
    } else {
        print_message("host name typo not tested: the resolver answers %s\n", gai_strerror(g));
    }
    rsrv_stop(&srv);
}

/* The cleanup's answers are read when the pool hands a connection out
 * (prepare), capped by the acquire's deadline: against a server that
 * stopped answering, with two released connections whose cleanup is
 * pending, shp_acquire(300 ms) fails with -ETIMEDOUT by its deadline (plus
 * 100 ms), not after the 2 s command timeout per connection.  Needs the
 * pool to pass the acquire's deadline to prepare (shp_connect_deadline_ns)
 * and to keep it when prepare refuses a connection. */
static void test_prepare_capped_by_acquire_deadline(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, NULL), 0);
    shp_redis_config rc = redis_cfg(srv.port, NULL, 0);
    rc.command_timeout_ns = 2 * NS_PER_S;
    shp_ops ops = make_ops(&rc);
    shp_config pc = pool_cfg(2, 5 * NS_PER_S);
    pc.validate_idle_ns = -1; /* prepare, not a check, reads the cleanup */
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    shp_conn *c1, *c2;
    assert_int_equal(shp_acquire(pool, &c1, -1), 0);
    assert_int_equal(shp_acquire(pool, &c2, -1), 0);
    assert_int_equal(rsrv_sigstop(&srv), 0);
    assert_int_equal(shp_release(c1), 0); /* the cleanup is written, its answers pending */
    assert_int_equal(shp_release(c2), 0);

    const int64_t deadline = 300 * NS_PER_MS;
    log_start_level(SHP_LOG_INFO);
    shp_conn *conn = NULL;
    int64_t t0 = now_ns();
    int err = shp_acquire(pool, &conn, deadline);
    int64_t took = now_ns() - t0;
    log_stop();
    assert_int_equal(rsrv_sigcont(&srv), 0);
    if (err == 0)
        shp_release(conn);
    print_message("prepare against a stopped server: acquire gave %s after %.0f ms "
                  "(deadline %d ms, command timeout %d ms)\n",
                  shp_err_name(err), (double)took / NS_PER_MS, (int)(deadline / NS_PER_MS),
                  (int)(rc.command_timeout_ns / NS_PER_MS));
    if (err != -ETIMEDOUT || took > deadline + 100 * NS_PER_MS)
        print_message("log:\n%s", log_buf);
    assert_int_equal(err, -ETIMEDOUT);
    assert_true(took <= deadline + 100 * NS_PER_MS);
    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);
    rsrv_stop(&srv);
}

/* The health check's PING while an acquire validates the connection is
 * capped by that acquire's deadline, not the 2 s command timeout: against a
 * server that stopped answering, shp_acquire(300 ms) fails with -ETIMEDOUT
 * by its deadline (plus 100 ms), and the pool closes the connection.
 * Tracked cleanup keeps prepare out of it (a clean release sends nothing). */
static void test_check_capped_by_acquire_deadline(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, NULL), 0);
    shp_redis_config rc = redis_cfg(srv.port, NULL, 0);
    rc.command_timeout_ns = 2 * NS_PER_S;
    rc.cleanup = SHP_REDIS_CLEANUP_TRACKED;
    shp_ops ops = make_ops(&rc);
    shp_config pc = pool_cfg(1, 5 * NS_PER_S);
    pc.validate_idle_ns = 0;
    pc.reaper_interval_ns = NS_PER_MS; /* the idle clock's resolution */
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    shp_conn *conn;
    assert_int_equal(shp_acquire(pool, &conn, -1), 0);
    assert_int_equal(shp_release(conn), 0);
    assert_int_equal(rsrv_sigstop(&srv), 0);

    const int64_t deadline = 300 * NS_PER_MS;
    log_start_level(SHP_LOG_INFO);
    shp_stats st = { 0 };
    int err = 0;
    int64_t took = 0;
    /* Acquires hand the connection out unchecked (and with no I/O) until
     * the idle clock has moved past the release; the first that checks it
     * sends PING. */
    for (int i = 0; i < WAIT_MS && st.health_checks == 0; i++) {
        int64_t t0 = now_ns();
        err = shp_acquire(pool, &conn, deadline);
        took = now_ns() - t0;
        assert_int_equal(shp_pool_stats(pool, &st), 0);
        if (err == 0) {
            assert_int_equal(shp_release(conn), 0);
            if (st.health_checks == 0)
                poll_pause();
        }
    }
    log_stop();
    assert_int_equal(rsrv_sigcont(&srv), 0);
    print_message("check against a stopped server: acquire gave %s after %.0f ms "
                  "(deadline %d ms, command timeout %d ms)\n",
                  shp_err_name(err), (double)took / NS_PER_MS, (int)(deadline / NS_PER_MS),
                  (int)(rc.command_timeout_ns / NS_PER_MS));
    assert_int_equal(st.health_failed, 1);
    assert_int_equal(err, -ETIMEDOUT);
    assert_true(took <= deadline + 100 * NS_PER_MS);
    assert_true(log_has("event=check_failed"));
    assert_true(log_has(": check: timed out at the acquire's deadline\""));
    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);
    rsrv_stop(&srv);
}

/* ---- backend down ---------------------------------------------------------------------- */

static void test_backend_down(void **state)
{
    (void)state;
    int port = rsrv_free_port(); /* nothing listens there */
    assert_true(port > 0);
    shp_redis_config rc = redis_cfg(port, NULL, 0);
    shp_ops ops = make_ops(&rc);
    const int64_t tmo = 500 * NS_PER_MS;
    shp_config pc = pool_cfg(4, tmo);
    shp_pool *pool;
    log_start();
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    shp_conn *conn;
    int64_t t0 = now_ns();
    int err = shp_acquire(pool, &conn, -1);
    int64_t took = now_ns() - t0;
    log_stop();
    assert_int_equal(err, -ECONNREFUSED); /* a connect error, not -ETIMEDOUT */
    assert_true(took <= tmo + 100 * NS_PER_MS);
    assert_true(log_has("err=ECONNREFUSED"));
    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);
}

/* ---- dirty release -------------------------------------------------------------------- */

/* Borrows the pool's only connection and checks it is the one expected. */
static redisContext *borrow(shp_pool *pool, shp_conn **conn, void *want_handle)
{
    assert_int_equal(shp_acquire(pool, conn, -1), 0);
    if (want_handle)
        assert_ptr_equal(shp_conn_handle(*conn), want_handle);
    redisContext *c = shp_redis_ctx(shp_conn_handle(*conn));
    assert_non_null(c);
    return c;
}

/* The connection is clean: on db 3 (the marker is visible), authenticated,
 * not in MULTI (a command runs instead of QUEUED), not subscribed (PING
 * answers a status, not a pub/sub array), no reply left unread. */
static void expect_clean(redisContext *c)
{
    expect_get(c, "marker", "db3");
    expect_status(c, "PONG", "PING");
    redisReply *r = redisCommand(c, "EXEC");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR); /* EXEC without MULTI */
    freeReplyObject(r);
}

static void test_dirty_release(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, GOOD_PW), 0);
    redisContext *a = admin(GOOD_PW, 3);
    expect_status(a, "OK", "SET marker db3");

    shp_redis_config rc = redis_cfg(srv.port, GOOD_PW, 3);
    shp_ops ops = make_ops(&rc);
    shp_config pc = pool_cfg(1, 5 * NS_PER_S);
    pc.validate_idle_ns = -1; /* the reset alone must make it clean */
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    shp_conn *conn;
    redisContext *c = borrow(pool, &conn, NULL);
    void *h = shp_conn_handle(conn);
    expect_clean(c);

    /* SELECT 5 */
    expect_status(c, "OK", "SELECT 5");
    expect_get(c, "marker", NULL);
    assert_int_equal(shp_release(conn), 0);
    expect_clean(borrow(pool, &conn, h));

    /* MULTI with a queued command */
    c = shp_redis_ctx(h);
    expect_status(c, "OK", "MULTI");
    expect_status(c, "QUEUED", "SET queued 1");
    assert_int_equal(shp_release(conn), 0);
    c = borrow(pool, &conn, h);
    expect_clean(c);
    expect_get(c, "queued", NULL); /* discarded, not executed */

    /* SUBSCRIBE, with messages arriving that the borrower never reads */
    publish_unread(a, redisCommand(c, "SUBSCRIBE chan"));
    redisReply *r;
    assert_int_equal(shp_release(conn), 0);
    c = borrow(pool, &conn, h);
    expect_clean(c);
    r = redisCommand(a, "PUBSUB NUMSUB chan");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[1]->integer, 0); /* unsubscribed */
    freeReplyObject(r);

    /* Replies sent for but never read, and MULTI on another db together */
    expect_status(c, "OK", "SELECT 7");
    expect_status(c, "OK", "MULTI");
    assert_int_equal(redisAppendCommand(c, "GET marker"), REDIS_OK);
    assert_int_equal(redisAppendCommand(c, "PING"), REDIS_OK);
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);
    assert_int_equal(shp_release(conn), 0);
    expect_clean(borrow(pool, &conn, h));

    shp_stats st;
    assert_int_equal(shp_pool_stats(pool, &st), 0);
    assert_int_equal(st.creations, 1); /* the same connection throughout */
    assert_int_equal(st.closed, 0);

    /* A connection the server killed: its reset fails, the pool closes it
     * and the next borrower gets a new, clean one. */
    c = shp_redis_ctx(h);
    r = redisCommand(c, "CLIENT ID");
    assert_non_null(r);
    long long id = r->integer;
    freeReplyObject(r);
    r = redisCommand(a, "CLIENT KILL ID %lld", id);
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(c, "PING");
    assert_null(r); /* the context saw the close */
    assert_int_not_equal(c->err, 0);
    log_start();
    assert_int_equal(shp_release(conn), 0);
    log_stop();
    assert_true(log_has("event=reset_failed"));
    assert_int_equal(shp_pool_stats(pool, &st), 0);
    assert_int_equal(st.closed, 1);
    expect_clean(borrow(pool, &conn, NULL));
    assert_int_equal(shp_release(conn), 0);

    redisFree(a);
    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);
    rsrv_stop(&srv);
}

/* ---- tracked cleanup ------------------------------------------------------------------ */

/* How many RESET commands the server has run, from INFO commandstats (0
 * before the first). */
static long long reset_calls(redisContext *a)
{
    redisReply *r = redisCommand(a, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long n = 0;
    const char *p = strstr(r->str, "cmdstat_reset:calls=");
    if (p)
        n = atoll(p + strlen("cmdstat_reset:calls="));
    freeReplyObject(r);
    return n;
}

/* Through the wrapper: a command expected to answer the status want. */
static void w_status(shp_conn *conn, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = shp_redis_vcommand(conn, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STATUS)
        fail_msg("%s: reply type %d (%s), want status %s", fmt, r->type, r->str ? r->str : "-",
                 want);
    assert_string_equal(r->str, want);
    freeReplyObject(r);
}

/* Through the wrapper: a command expected to answer an error. */
static void w_error(shp_conn *conn, const char *fmt)
{
    redisReply *r = shp_redis_command(conn, fmt);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* Through the wrapper: GET key is the string want, or nil when want is NULL. */
static void w_get(shp_conn *conn, const char *key, const char *want)
{
    const char *argv[2] = { "GET", key };
    expect_get_reply(shp_redis_command_argv(conn, 2, argv, NULL), want);
}

/* expect_clean through the wrapper (which it leaves clean): on db 3, not in
 * MULTI, not subscribed, nothing unread. */
static void w_expect_clean(shp_conn *conn)
{
    w_get(conn, "marker", "db3");
    w_status(conn, "PONG", "PING");
    w_error(conn, "EXEC"); /* EXEC without MULTI */
}

/* One borrow of the pool's only connection (handle h, unless NULL) under
 * TRACKED cleanup, and what the release costs: returns how many RESETs the
 * server ran between the release and the next borrow's clean check. */
typedef struct tracked {
    shp_pool *pool;
    redisContext *admin;
    void *h;
} tracked;

static shp_conn *t_borrow(tracked *t)
{
    shp_conn *conn;
    assert_int_equal(shp_acquire(t->pool, &conn, -1), 0);
    if (t->h)
        assert_ptr_equal(shp_conn_handle(conn), t->h);
    return conn;
}

/* Releases conn, borrows again, checks the connection is clean; returns the
 * RESETs the server ran meanwhile and the new borrow in *next. */
static long long t_cycle(tracked *t, shp_conn *conn, shp_conn **next)
{
    long long before = reset_calls(t->admin);
    assert_int_equal(shp_release(conn), 0);
    *next = t_borrow(t);
    w_expect_clean(*next);
    return reset_calls(t->admin) - before;
}

/* The cleanup tests' start: a server (password pw), its admin connection on
 * db 3 holding marker=db3, and a pool of one connection to db 3 with this
 * cleanup and validate_idle_ns = -1 (no PING on acquire: only the cleanup
 * counts).  Returns the first borrow; its handle is t->h. */
static shp_conn *t_start(tracked *t, const char *pw, shp_redis_cleanup cleanup, shp_ops *ops)
{
    assert_int_equal(rsrv_start(&srv, pw), 0);
    *t = (tracked){ .admin = admin(pw, 3) };
    expect_status(t->admin, "OK", "SET marker db3");
    shp_redis_config rc = redis_cfg(srv.port, pw, 3);
    rc.cleanup = cleanup;
    *ops = make_ops(&rc);
    shp_config pc = pool_cfg(1, 5 * NS_PER_S);
    pc.validate_idle_ns = -1;
    assert_int_equal(shp_pool_create(&t->pool, &pc, ops), 0);
    shp_conn *conn = t_borrow(t);
    t->h = shp_conn_handle(conn);
    return conn;
}

static void t_end(tracked *t, shp_ops *ops)
{
    redisFree(t->admin);
    assert_int_equal(shp_pool_destroy(t->pool, -1), 0);
    shp_redis_ops_free(ops);
    rsrv_stop(&srv);
}

static void test_tracked_cleanup(void **state)
{
    (void)state;
    tracked t;
    shp_ops ops;
    shp_conn *conn = t_start(&t, GOOD_PW, SHP_REDIS_CLEANUP_TRACKED, &ops);
    redisContext *a = t.admin;
    w_expect_clean(conn);

    /* Clean releases send nothing: no RESET on the server. */
    for (int i = 0; i < 5; i++) {
        w_status(conn, "OK", "SET k%d %d", i, i);
        assert_int_equal(t_cycle(&t, conn, &conn), 0);
    }

    /* SELECT 5: comes back on the configured db 3. */
    w_status(conn, "OK", "SELECT 5");
    w_get(conn, "marker", NULL);
    assert_int_equal(t_cycle(&t, conn, &conn), 1);

    /* MULTI left open: comes back with no transaction, the queued command
     * discarded. */
    w_status(conn, "OK", "MULTI");
    w_status(conn, "QUEUED", "SET queued 1");
    assert_int_equal(t_cycle(&t, conn, &conn), 1);
    w_get(conn, "queued", NULL);

    /* SUBSCRIBE with messages never read: comes back usable, unsubscribed. */
    publish_unread(a, shp_redis_command(conn, "SUBSCRIBE chan"));
    redisReply *r;
    assert_int_equal(t_cycle(&t, conn, &conn), 1);
    r = redisCommand(a, "PUBSUB NUMSUB chan");
    assert_non_null(r);
    assert_int_equal(r->element[1]->integer, 0);
    freeReplyObject(r);

    /* A finished transaction leaves it clean: MULTI ... EXEC, and WATCH ...
     * MULTI ... EXEC, in any case. */
    w_status(conn, "OK", "multi");
    w_status(conn, "QUEUED", "SET tx 1");
    r = shp_redis_command(conn, "exec");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    w_status(conn, "OK", "WATCH tx");
    w_status(conn, "OK", "MULTI");
    w_status(conn, "QUEUED", "INCR tx");
    r = shp_redis_command(conn, "EXEC");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    w_status(conn, "OK", "MULTI");
    w_status(conn, "OK", "DISCARD");
    w_status(conn, "OK", "WATCH tx");
    w_status(conn, "OK", "UNWATCH");
    assert_int_equal(t_cycle(&t, conn, &conn), 0);
    w_get(conn, "tx", "2");

    /* WATCH left behind is cleaned: the next borrower's transaction is not
     * aborted by a change to the key the last one watched. */
    w_status(conn, "OK", "WATCH tx");
    assert_int_equal(t_cycle(&t, conn, &conn), 1);
    expect_status(a, "OK", "SET tx changed");
    w_status(conn, "OK", "MULTI");
    w_status(conn, "QUEUED", "SET other 1");
    r = shp_redis_command(conn, "EXEC");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY); /* not nil: nothing watched */
    freeReplyObject(r);
    assert_int_equal(t_cycle(&t, conn, &conn), 0);

    /* An error inside MULTI makes it dirty, also once EXEC aborted. */
    w_status(conn, "OK", "MULTI");
    w_error(conn, "SET onlyakey");
    w_error(conn, "EXEC"); /* EXECABORT */
    assert_int_equal(t_cycle(&t, conn, &conn), 1);

    /* CLIENT: reading subcommands are clean, the others dirty. */
    r = shp_redis_command(conn, "CLIENT ID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    assert_int_equal(t_cycle(&t, conn, &conn), 0);
    w_status(conn, "OK", "CLIENT SETNAME borrower1");
    assert_int_equal(t_cycle(&t, conn, &conn), 1);

    /* shp_redis_mark_dirty, then raw use of the context. */
    assert_int_equal(shp_redis_mark_dirty(conn), 0);
    redisContext *c = shp_redis_ctx(shp_conn_handle(conn));
    expect_status(c, "OK", "SELECT 9");
    assert_int_equal(redisAppendCommand(c, "PING"), REDIS_OK);
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);
    assert_int_equal(t_cycle(&t, conn, &conn), 1);

    /* The safety net: a command appended to the raw context but never sent
     * (a broken promise) still gets the cleanup. */
    assert_int_equal(redisAppendCommand(shp_redis_ctx(shp_conn_handle(conn)), "SELECT 4"),
                     REDIS_OK);
    assert_int_equal(t_cycle(&t, conn, &conn), 1);

    shp_stats st;
    assert_int_equal(shp_pool_stats(t.pool, &st), 0);
    assert_int_equal(st.creations, 1); /* the same connection throughout */
    assert_int_equal(st.closed, 0);

    /* QUIT: the release closes it, the next borrower gets a new one. */
    w_status(conn, "OK", "QUIT");
    log_start();
    assert_int_equal(shp_release(conn), 0);
    log_stop();
    assert_true(log_has("event=reset_failed"));
    assert_int_equal(shp_pool_stats(t.pool, &st), 0);
    assert_int_equal(st.closed, 1);
    t.h = NULL;
    conn = t_borrow(&t);
    t.h = shp_conn_handle(conn);
    w_expect_clean(conn);

    /* A command that fails (the server killed the connection): NULL, a log
     * line, and the release closes it. */
    r = shp_redis_command(conn, "CLIENT ID");
    assert_non_null(r);
    long long id = r->integer;
    freeReplyObject(r);
    r = redisCommand(a, "CLIENT KILL ID %lld", id);
    assert_non_null(r);
    freeReplyObject(r);
    log_start();
    assert_null(shp_redis_command(conn, "GET marker"));
    assert_true(log_has("event=command_failed"));
    assert_int_equal(shp_release(conn), 0);
    log_stop();
    assert_int_equal(shp_pool_stats(t.pool, &st), 0);
    assert_int_equal(st.closed, 2);
    t.h = NULL;
    conn = t_borrow(&t);
    w_expect_clean(conn);
    assert_int_equal(shp_release(conn), 0);

    t_end(&t, &ops);
}

/* The default, ALWAYS: every release cleans, also after wrapper-only use. */
static void test_always_cleanup(void **state)
{
    (void)state;
    tracked t;
    shp_ops ops;
    shp_conn *conn = t_start(&t, NULL, SHP_REDIS_CLEANUP_ALWAYS, &ops);
    for (int i = 0; i < 3; i++) {
        w_get(conn, "marker", "db3");
        assert_int_equal(t_cycle(&t, conn, &conn), 1);
    }
    /* Raw use of the context is allowed in this mode. */
    expect_status(shp_redis_ctx(t.h), "OK", "SELECT 6");
    assert_int_equal(t_cycle(&t, conn, &conn), 1);
    assert_int_equal(shp_release(conn), 0);
    t_end(&t, &ops);
}

/* The wrapper on bad arguments: NULL and a log line, nothing sent, the
 * connection unchanged (its release stays free). */
static void test_command_bad_args(void **state)
{
    (void)state;
    tracked t;
    shp_ops ops;
    shp_conn *conn = t_start(&t, NULL, SHP_REDIS_CLEANUP_TRACKED, &ops);

    const char *argv[2] = { "GET", NULL };
    log_start();
    assert_null(shp_redis_command(NULL, "PING"));
    assert_true(log_has("event=command_bad_arg") && log_has("conn NULL"));
    log_start();
    assert_null(shp_redis_command(conn, NULL));
    assert_true(log_has("fmt NULL"));
    log_start();
    assert_null(shp_redis_command(conn, "GET %q", "x")); /* no such directive */
    assert_true(log_has("does not format"));
    log_start();
    assert_null(shp_redis_command(conn, " "));
    assert_true(log_has("empty command"));
    log_start();
    assert_null(shp_redis_command_argv(conn, 0, argv, NULL));
    assert_true(log_has("argc < 1"));
    log_start();
    assert_null(shp_redis_command_argv(conn, 2, NULL, NULL));
    assert_true(log_has("argv NULL"));
    log_start();
    assert_null(shp_redis_command_argv(conn, 2, argv, NULL));
    assert_true(log_has("argv[i] NULL"));
    log_start();
    assert_null(shp_redis_command_argv(NULL, 2, argv, NULL));
    assert_int_equal(shp_redis_mark_dirty(NULL), -EINVAL);
    log_stop();
    /* Nothing was sent and nothing marked: the connection works, its
     * release sends no RESET. */
    w_get(conn, "marker", "db3");
    assert_int_equal(t_cycle(&t, conn, &conn), 0);
    assert_int_equal(shp_release(conn), 0);

    /* A connection of another adapter (the fixture's fake backend). */
    fx *f = fx_make(0, 1);
    shp_conn *fc;
    assert_int_equal(shp_acquire(f->pool, &fc, -1), 0);
    log_start();
    assert_null(shp_redis_command(fc, "PING"));
    assert_int_equal(shp_redis_mark_dirty(fc), -EINVAL);
    log_stop();
    assert_true(log_has("not a redis adapter connection"));
    assert_int_equal(shp_release(fc), 0);
    fx_finish(f);

    t_end(&t, &ops);
}

/* ---- a server that accepts but never answers --------------------------------------------- */

static void test_stopped_server(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, NULL), 0);
    const int64_t cmd_tmo = 300 * NS_PER_MS, conn_tmo = 300 * NS_PER_MS;
    const int64_t acq_tmo = 1 * NS_PER_S;
    shp_redis_config rc = redis_cfg(srv.port, NULL, 0);
    rc.command_timeout_ns = cmd_tmo;
    rc.connect_timeout_ns = conn_tmo;
    shp_ops ops = make_ops(&rc);
    shp_config pc = pool_cfg(2, acq_tmo);
    pc.validate_idle_ns = 0; /* every acquire checks */
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    shp_conn *c1, *c2;
    assert_int_equal(shp_acquire(pool, &c1, -1), 0);
    assert_int_equal(shp_acquire(pool, &c2, -1), 0);
    assert_int_equal(shp_release(c2), 0); /* one idle, one borrowed */

    log_start();
    assert_int_equal(rsrv_sigstop(&srv), 0);

    /* The borrower's command times out after the command timeout. */
    redisContext *c = shp_redis_ctx(shp_conn_handle(c1));
    int64_t t0 = now_ns();
    redisReply *r = redisCommand(c, "GET x");
    int64_t took = now_ns() - t0;
    assert_null(r);
    assert_int_equal(c->err, REDIS_ERR_IO);
    print_message("command timeout %d ms: fired after %.0f ms\n", (int)(cmd_tmo / NS_PER_MS),
                  (double)took / NS_PER_MS);
    assert_true(took >= cmd_tmo * 9 / 10);
    assert_true(took <= cmd_tmo + 200 * NS_PER_MS);
    assert_int_equal(shp_release_broken(c1), 0);

    /* An acquire: the idle one fails its check (PING times out), a new
     * connect's handshake times out; the acquire fails near its deadline
     * (a connect in progress at the deadline finishes first: up to the
     * connect timeout later). */
    shp_conn *conn;
    t0 = now_ns();
    int err = shp_acquire(pool, &conn, -1);
    took = now_ns() - t0;
    print_message("acquire against a stopped server: %s after %.0f ms (timeout %d ms)\n",
                  shp_err_name(err), (double)took / NS_PER_MS, (int)(acq_tmo / NS_PER_MS));
    assert_int_not_equal(err, 0);
    assert_true(err == -ETIMEDOUT || err == -EHOSTDOWN);
    assert_true(took <= acq_tmo + conn_tmo + 150 * NS_PER_MS);
    log_stop();
    assert_true(log_has("event=check_failed"));
    assert_true(log_has(": handshake: ") || log_has(": ping: ") || log_has(": check: "));

    /* It answers again: the pool recovers. */
    assert_int_equal(rsrv_sigcont(&srv), 0);
    int64_t deadline = now_ns() + WAIT_MS * NS_PER_MS;
    log_start(); /* failures until it is back are expected */
    while ((err = shp_acquire(pool, &conn, -1)) != 0 && now_ns() < deadline)
        poll_pause();
    log_stop();
    assert_int_equal(err, 0);
    expect_status(shp_redis_ctx(shp_conn_handle(conn)), "OK", "SET back 1");
    assert_int_equal(shp_release(conn), 0);

    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);
    rsrv_stop(&srv);
}

/* ---- signal storm -------------------------------------------------------------------- */

/* The storm: tests/support/storm.h. */

/* A listener on 127.0.0.1 with backlog 0 that never accepts, its accept
 * queue held full by one connection (*filler): the kernel drops every
 * further SYN, so a connect to *port waits in SYN_SENT.  Returns the
 * listener, or -1 (then the test skips) if the queue never showed the
 * filler. */
static int full_accept_queue(int *filler, int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof sin;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &l), 0);
    *port = ntohs(sin.sin_port);
    *filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(*filler, (struct sockaddr *)&sin, sizeof sin), 0);
    /* tcpi_unacked of a listener is its accept queue's length. */
    for (int i = 0; i < WAIT_MS; i++) {
        struct tcp_info ti;
        socklen_t tl = sizeof ti;
        assert_int_equal(getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
        if (ti.tcpi_unacked >= 1)
            return lfd;
        poll_pause();
    }
    close(*filler);
    close(lfd);
    return -1;
}

/* Asserts a call that timed out under the storm: it returned err (want
 * -ETIMEDOUT) no earlier than its deadline (from) and at most
 * STORM_MARGIN_NS after it, while signals kept coming. */
static void expect_storm_timeout(const char *what, int err, int64_t took, int64_t deadline_ns,
                                 long sigs)
{
    print_message("%s under %ld signals: %s after %.1f ms (deadline %.0f ms)\n", what, sigs,
                  shp_err_name(err), (double)took / NS_PER_MS, (double)deadline_ns / NS_PER_MS);
    assert_int_equal(err, -ETIMEDOUT);
    assert_true(sigs >= 100); /* the storm was on */
    assert_true(took >= deadline_ns - NS_PER_MS); /* poll rounds up: never early */
    assert_true(took <= deadline_ns + STORM_MARGIN_NS);
}

/* Under a 10 kHz signal storm (no SA_RESTART), everything that has a
 * server to talk to still works: connects and handshakes (over TCP with
 * AUTH and SELECT, and over the unix socket), borrows whose every release
 * runs the cleanup and every hand-out collects it, and commands through
 * the wrapper.  (hiredis' own connect failed under a signal with EIO.) */
static void test_signals_normal_work(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, GOOD_PW), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/redis.sock", srv.dir);
    shp_redis_config rc = redis_cfg(srv.port, GOOD_PW, 4);
    shp_redis_config ru = rc;
    ru.unix_path = path;
    shp_ops ops = make_ops(&rc), uops = make_ops(&ru);
    shp_config pc = pool_cfg(2, 5 * NS_PER_S);
    pc.validate_idle_ns = 0; /* every hand-out checks too */
    pc.reaper_interval_ns = NS_PER_MS;
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);

    /* Each part runs for at least 200 ms of storm (thousands of signals,
     * many landing in the adapter's waits for replies). */
    const int64_t part_ns = 200 * NS_PER_MS;
    int connects = 0, cycles = 0, bad = 0, n_connect = 0, n_cycle = 0;
    char first_bad[320] = "";
    long sig0 = storm_count();
    storm_start();
    int64_t until = now_ns() + part_ns;
    for (int i = 0; i < 20 || (now_ns() < until && i < 100000); i++, n_connect++) {
        void *h = NULL;
        int err = (i % 2 ? uops : ops).connect((i % 2 ? uops : ops).ctx, &h);
        if (err == 0) {
            connects++;
            ops.close(ops.ctx, h);
        } else if (!bad++) {
            snprintf(first_bad, sizeof first_bad, "connect %s: %s", shp_err_name(err), detail_take());
        }
    }
    until = now_ns() + part_ns;
    for (int i = 0; i < 100 || (now_ns() < until && i < 100000); i++, n_cycle++) {
        shp_conn *conn;
        int err = shp_acquire(pool, &conn, -1);
        if (err) {
            if (!bad++)
                snprintf(first_bad, sizeof first_bad, "acquire %s", shp_err_name(err));
            continue;
        }
        redisReply *r1 = shp_redis_command(conn, "SET k%d v%d", i % 4, i);
        redisReply *r2 = shp_redis_command(conn, "GET k%d", i % 4);
        char want[16];
        snprintf(want, sizeof want, "v%d", i);
        bool ok = r1 && r1->type == REDIS_REPLY_STATUS && r2 && r2->type == REDIS_REPLY_STRING &&
                  !strcmp(r2->str, want);
        if (r1)
            freeReplyObject(r1);
        if (r2)
            freeReplyObject(r2);
        if (ok) {
            cycles++;
        } else if (!bad++) {
            redisContext *c = shp_redis_ctx(shp_conn_handle(conn));
            snprintf(first_bad, sizeof first_bad, "command: %s", c && c->err ? c->errstr : "-");
        }
        shp_release(conn);
    }
    storm_stop();
    long sigs = storm_count() - sig0;
    shp_stats st;
    assert_int_equal(shp_pool_stats(pool, &st), 0);
    print_message("under %ld signals: %d/%d connects, %d/%d borrows with 2 commands each, "
                  "%llu health checks, %llu created%s%s\n", sigs, connects, n_connect, cycles,
                  n_cycle, (unsigned long long)st.health_checks, (unsigned long long)st.creations,
                  bad ? "; first failure: " : "", first_bad);
    assert_true(sigs >= 1000);
    assert_int_equal(bad, 0);
    assert_int_equal(connects, n_connect);
    assert_int_equal(cycles, n_cycle);
    assert_int_equal(st.health_failed, 0);
    assert_int_equal(st.closed, 0); /* every cleanup was collected */
    assert_int_equal(shp_pool_destroy(pool, -1), 0);
    shp_redis_ops_free(&ops);
    shp_redis_ops_free(&uops);
    rsrv_stop(&srv);
}

/* Under a 10 kHz signal storm, every wait of the adapter ends at its
 * deadline with -ETIMEDOUT, never -EINTR, -EIO or a fresh timeout per
 * signal: a connect to a full accept queue (connect_timeout_ns); a
 * handshake, a check, the cleanup's answers and a command whose replies
 * never come (a stopped server: connect_timeout_ns, command_timeout_ns,
 * or the acquire's deadline when it is sooner). */
static void test_signals_deadlines(void **state)
{
    (void)state;
    const int64_t tmo = 200 * NS_PER_MS, acq = 300 * NS_PER_MS, long_tmo = 5 * NS_PER_S;
    int64_t t0, took;
    long sig0;
    int err;

    /* connect: SYNs dropped */
    int filler, port;
    int lfd = full_accept_queue(&filler, &port);
    if (lfd < 0) {
        print_message("skip: the listener's accept queue never showed the filler\n");
        skip();
    }
    shp_redis_config rc = redis_cfg(port, NULL, 0);
    rc.connect_timeout_ns = tmo;
    shp_ops ops = make_ops(&rc);
    void *h = NULL;
    sig0 = storm_count();
    storm_start();
    t0 = now_ns();
    err = ops.connect(ops.ctx, &h);
    took = now_ns() - t0;
    storm_stop();
    expect_storm_timeout("connect to a full accept queue", err, took, tmo, storm_count() - sig0);
    assert_non_null(strstr(detail_take(), ": connect: Connection timed out"));
    shp_redis_ops_free(&ops);
    close(filler);
    close(lfd);

    assert_int_equal(rsrv_start(&srv, NULL), 0);

    /* Connections made while the server answers: two for the pool whose
     * cleanup is pending (prepare), one checked on every hand-out
     * (check), one borrowed (command), one for a direct check. */
    rc = redis_cfg(srv.port, NULL, 0);
    rc.connect_timeout_ns = tmo;
    rc.command_timeout_ns = tmo;
    shp_ops cops = make_ops(&rc);
    shp_redis_config rl = rc;
    rl.command_timeout_ns = long_tmo; /* the acquire's deadline is sooner */
    rl.cleanup = SHP_REDIS_CLEANUP_TRACKED;
    shp_ops vops = make_ops(&rl); /* for the check through a pool */
    rl.cleanup = SHP_REDIS_CLEANUP_ALWAYS;
    shp_ops pops = make_ops(&rl); /* for prepare through a pool */

    shp_config pc = pool_cfg(1, long_tmo);
    pc.validate_idle_ns = 0;
    pc.reaper_interval_ns = NS_PER_MS;
    shp_pool *vpool;
    assert_int_equal(shp_pool_create(&vpool, &pc, &vops), 0);
    shp_conn *conn;
    assert_int_equal(shp_acquire(vpool, &conn, -1), 0);
    assert_int_equal(shp_release(conn), 0); /* clean: no cleanup sent */
    pc = pool_cfg(2, long_tmo);
    pc.validate_idle_ns = -1; /* prepare alone reads the cleanup */
    shp_pool *ppool;
    assert_int_equal(shp_pool_create(&ppool, &pc, &pops), 0);
    shp_conn *p1, *p2;
    assert_int_equal(shp_acquire(ppool, &p1, -1), 0);
    assert_int_equal(shp_acquire(ppool, &p2, -1), 0);
    pc = pool_cfg(1, long_tmo);
    shp_pool *cpool;
    assert_int_equal(shp_pool_create(&cpool, &pc, &cops), 0);
    shp_conn *borrowed;
    assert_int_equal(shp_acquire(cpool, &borrowed, -1), 0);
    void *direct = NULL;
    assert_int_equal(cops.connect(cops.ctx, &direct), 0);

    assert_int_equal(rsrv_sigstop(&srv), 0);
    assert_int_equal(shp_release(p1), 0); /* cleanup written, answers pending */
    assert_int_equal(shp_release(p2), 0);
    log_start_level(SHP_LOG_INFO);

    /* handshake: the connect succeeds (the kernel accepts), PING is never
     * answered */
    sig0 = storm_count();
    storm_start();
    t0 = now_ns();
    err = cops.connect(cops.ctx, &h);
    took = now_ns() - t0;
    storm_stop();
    expect_storm_timeout("handshake with a stopped server", err, took, tmo, storm_count() - sig0);
    assert_non_null(strstr(detail_take(), ": ping: Connection timed out (connect_timeout_ns)"));

    /* a command through the wrapper: command_timeout_ns for the whole call */
    sig0 = storm_count();
    storm_start();
    t0 = now_ns();
    redisReply *r = shp_redis_command(borrowed, "GET x");
    took = now_ns() - t0;
    storm_stop();
    redisContext *bc = shp_redis_ctx(shp_conn_handle(borrowed));
    expect_storm_timeout("shp_redis_command to a stopped server", r ? 0 : -ETIMEDOUT, took, tmo,
                         storm_count() - sig0);
    assert_null(r);
    assert_int_equal(bc->err, REDIS_ERR_IO);
    assert_string_equal(bc->errstr, "Connection timed out (command_timeout_ns)");
    assert_true(log_has("event=command_failed") && log_has("err=ETIMEDOUT"));
    assert_int_equal(shp_release(borrowed), 0); /* the reset refuses it: closed */
    shp_stats st;
    assert_int_equal(shp_pool_stats(cpool, &st), 0);
    assert_int_equal(st.closed, 1);

    /* a direct check (no acquire): its own command_timeout_ns */
    sig0 = storm_count();
    storm_start();
    t0 = now_ns();
    err = cops.check(cops.ctx, direct);
    took = now_ns() - t0;
    storm_stop();
    expect_storm_timeout("direct check of a stopped server", err, took, tmo, storm_count() - sig0);
    assert_non_null(strstr(detail_take(), ": check: Connection timed out (command_timeout_ns)"));
    assert_int_not_equal(shp_redis_ctx(direct)->err, 0); /* never used again */
    cops.close(cops.ctx, direct);

    /* the check of a validating acquire: the acquire's deadline, not the
     * 5 s command timeout (the first acquire past the idle clock checks) */
    err = 0;
    took = 0;
    for (int i = 0; i < WAIT_MS && st.health_checks == 0; i++) {
        sig0 = storm_count();
        storm_start();
        t0 = now_ns();
        err = shp_acquire(vpool, &conn, acq);
        took = now_ns() - t0;
        storm_stop();
        assert_int_equal(shp_pool_stats(vpool, &st), 0);
        if (err == 0) {
            assert_int_equal(st.health_checks, 0); /* handed out unchecked */
            assert_int_equal(shp_release(conn), 0);
            poll_pause();
        }
    }
    expect_storm_timeout("validating acquire on a stopped server", err, took, acq,
                         storm_count() - sig0);
    assert_int_equal(st.health_failed, 1);
    assert_true(log_has(": check: timed out at the acquire's deadline\""));

    /* prepare collecting the cleanup of two connections: the acquire's
     * deadline for both together */
    sig0 = storm_count();
    storm_start();
    t0 = now_ns();
    err = shp_acquire(ppool, &conn, acq);
    took = now_ns() - t0;
    storm_stop();
    expect_storm_timeout("acquire collecting cleanups from a stopped server", err, took, acq,
                         storm_count() - sig0);
    log_stop();

    assert_int_equal(rsrv_sigcont(&srv), 0);
    assert_int_equal(shp_pool_destroy(vpool, -1), 0);
    assert_int_equal(shp_pool_destroy(ppool, -1), 0);
    assert_int_equal(shp_pool_destroy(cpool, -1), 0);
    shp_redis_ops_free(&cops);
    shp_redis_ops_free(&vops);
    shp_redis_ops_free(&pops);
    rsrv_stop(&srv);
}

/* ---- INT64_MAX timeouts ----------------------------------------------------------------- */

/* INT64_MAX is a legal duration: connect and command timeouts at INT64_MAX
 * (and acquires with an INT64_MAX timeout) connect, handshake, run
 * commands, checks, cleanups, over TCP and the unix socket, without a
 * signed overflow (the ASan+UBSan build aborts on one). */
static void test_timeouts_int64_max(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, GOOD_PW), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/redis.sock", srv.dir);
    for (int unix_sock = 0; unix_sock < 2; unix_sock++) {
        shp_redis_config rc = redis_cfg(srv.port, GOOD_PW, 2);
        rc.unix_path = unix_sock ? path : NULL;
        rc.connect_timeout_ns = rc.command_timeout_ns = INT64_MAX;
        shp_ops ops = make_ops(&rc);

        /* The hooks on their own: no acquire's deadline caps them. */
        void *h = NULL;
        assert_int_equal(ops.connect(ops.ctx, &h), 0);
        expect_status(shp_redis_ctx(h), "OK", "SET max %d", unix_sock); /* raw, SO_RCVTIMEO */
        assert_int_equal(ops.check(ops.ctx, h), 0);
        assert_int_equal(ops.reset(ops.ctx, h), 0);
        assert_int_equal(ops.prepare(ops.ctx, h), 0);
        expect_get(shp_redis_ctx(h), "max", unix_sock ? "1" : "0"); /* still on db 2 */
        ops.close(ops.ctx, h);

        /* A pool that validates every hand-out and cleans every release. */
        shp_config pc = pool_cfg(1, INT64_MAX);
        pc.validate_idle_ns = 0;
        pc.reaper_interval_ns = NS_PER_MS;
        shp_pool *pool;
        assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
        shp_stats st = { 0 };
        for (int i = 0; i < WAIT_MS && st.health_checks < 2; i++) {
            shp_conn *conn;
            assert_int_equal(shp_acquire(pool, &conn, INT64_MAX), 0);
            redisReply *r = shp_redis_command(conn, "INCR maxn");
            assert_non_null(r);
            assert_int_equal(r->type, REDIS_REPLY_INTEGER);
            freeReplyObject(r);
            assert_int_equal(shp_release(conn), 0);
            assert_int_equal(shp_pool_stats(pool, &st), 0);
            if (st.health_checks < 2)
                poll_pause();
        }
        assert_true(st.health_checks >= 2);
        assert_int_equal(st.health_failed, 0);
        assert_int_equal(st.creations, 1);
        assert_int_equal(st.closed, 0);
        assert_int_equal(shp_pool_destroy(pool, -1), 0);
        shp_redis_ops_free(&ops);
    }
    rsrv_stop(&srv);
}

/* ---- kill -9 under load, then restart --------------------------------------------------- */

/* A counting wrapper around the adapter's ops: how many connect callbacks
 * run at once (the most seen), to show the pool never exceeds
 * max_connecting, also right after a restart. */
#define LOAD_THREADS    16
#define LOAD_POOL       4
#define LOAD_CONNECTING 2

typedef struct load {
    shp_pool *pool;
    atomic_bool stop;
    atomic_long ok, cmd_err, acq_err;
    atomic_long hostdown, timedout;  /* acquire results -EHOSTDOWN, -ETIMEDOUT */
    atomic_llong max_op_ns;          /* the longest acquire + command + release */
    atomic_llong max_hostdown_ns;    /* the longest acquire that gave -EHOSTDOWN */
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    while (!atomic_load(&l->stop)) {
        int64_t t0 = now_ns();
        shp_conn *conn;
        int err = shp_acquire(l->pool, &conn, -1);
        int64_t acq_ns = now_ns() - t0;
        if (err == 0) {
            redisContext *c = shp_redis_ctx(shp_conn_handle(conn));
            redisReply *r = redisCommand(c, "INCR n");
            bool ok = r && r->type == REDIS_REPLY_INTEGER;
            if (r)
                freeReplyObject(r);
            atomic_fetch_add(ok ? &l->ok : &l->cmd_err, 1);
            if (ok)
                shp_release(conn);
            else
                shp_release_broken(conn);
        } else {
            atomic_fetch_add(&l->acq_err, 1);
            if (err == -EHOSTDOWN) {
                atomic_fetch_add(&l->hostdown, 1);
                max_update(&l->max_hostdown_ns, acq_ns);
            } else if (err == -ETIMEDOUT) {
                atomic_fetch_add(&l->timedout, 1);
            }
        }
        max_update(&l->max_op_ns, now_ns() - t0);
        if (err)
            poll_pause(); /* pace a failing client; not synchronisation */
    }
    return NULL;
}

/* Polls until *counter reaches at least target; false on the WAIT_MS bound. */
static bool wait_count(atomic_long *counter, long target)
{
    int64_t deadline = now_ns() + WAIT_MS * NS_PER_MS;
    while (atomic_load(counter) < target)
        if (now_ns() >= deadline)
            return false;
        else
            poll_pause();
    return true;
}

/* Polls until the pool's breaker is open (want) or closed; false on the
 * WAIT_MS bound. */
static bool wait_breaker(shp_pool *pool, bool want)
{
    int64_t deadline = now_ns() + WAIT_MS * NS_PER_MS;
    shp_stats st;
    while (!(shp_pool_stats(pool, &st) == 0 && (st.breaker_open != 0) == want))
        if (now_ns() >= deadline)
            return false;
        else
            poll_pause();
    return true;
}

static load l; /* static: outlives a failed test's frame */
static counted_ops counted;

/* 16 threads through a pool of 4 with max_connecting 2 and the default
 * breaker (threshold 5, a probe every 250 ms).  While the server is down
 * the breaker opens and acquirers that would connect fail fast with
 * -EHOSTDOWN; connects in flight never exceed 2, also when all threads
 * rush back after the restart; the first request succeeds within 1 s of
 * the server answering again; every descriptor is given back. */
static void test_kill9_restart(void **state)
{
    (void)state;
    assert_int_equal(rsrv_start(&srv, NULL), 0);
    int fds_before = count_fds();
    const int64_t tmo = 500 * NS_PER_MS;
    shp_redis_config rc = redis_cfg(srv.port, NULL, 0);
    rc.command_timeout_ns = tmo;
    rc.connect_timeout_ns = tmo;
    shp_ops real = make_ops(&rc);
    shp_ops ops = counted_wrap(&counted, &real); /* forwards prepare: the cleanup's answers */
    shp_config pc = pool_cfg(LOAD_POOL, tmo);
    pc.max_connecting = LOAD_CONNECTING;
    /* breaker_threshold and breaker_probe_ns: the defaults */
    memset(&l, 0, sizeof l);
    assert_int_equal(shp_pool_create(&l.pool, &pc, &ops), 0);
    pthread_t th[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, load_main, &l), 0);

    /* Waits record their outcome and are asserted only once the workers
     * are stopped: a failed assertion must not leave them running. */
    log_start(); /* connect failures while it is down are expected */
    bool loaded = wait_count(&l.ok, 500), killed = false, detected = false, opened = false;
    bool fast_failed = false, restarted = false, recovered = false, kept_on = false;
    int64_t first_ok = -1;
    int max_connecting_down = -1;
    if (loaded)
        killed = rsrv_kill9(&srv) == 0;
    if (killed) {
        /* Every connection made before the kill is dead: each must be
         * found so (failed command, failed reset on release, or failed
         * check) and closed.  None can be made while it is down. */
        shp_stats st;
        shp_pool_stats(l.pool, &st);
        uint64_t made = st.creations;
        int64_t deadline = now_ns() + WAIT_MS * NS_PER_MS;
        while (!(detected = shp_pool_stats(l.pool, &st) == 0 && st.closed >= made) &&
               now_ns() < deadline)
            poll_pause();
        detected = detected && wait_count(&l.acq_err, 10);
    }
    if (detected)
        opened = wait_breaker(l.pool, true);
    if (opened) {
        long hd0 = atomic_load(&l.hostdown);
        fast_failed = wait_count(&l.hostdown, hd0 + 20); /* acquirers fail fast */
        max_connecting_down = atomic_load(&counted.max_inflight);
    }
    if (fast_failed)
        restarted = rsrv_restart(&srv) == 0; /* same port; returns once it answers PING */
    long cmd_err_restart = -1;
    if (restarted) {
        int64_t back = now_ns(); /* the restarted server answers */
        cmd_err_restart = atomic_load(&l.cmd_err);
        long ok0 = atomic_load(&l.ok);
        recovered = wait_count(&l.ok, ok0 + 1);
        first_ok = now_ns() - back;
        kept_on = recovered && wait_count(&l.ok, ok0 + 500); /* and it keeps working */
    }
    shp_stats after;
    int after_err = shp_pool_stats(l.pool, &after); /* traffic succeeds again */
    atomic_store(&l.stop, true);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(th[i], NULL); /* none hangs */
    log_stop();
    assert_true(loaded);
    assert_true(killed);
    assert_true(detected);
    assert_true(opened);
    assert_true(fast_failed);
    assert_true(restarted);
    assert_true(recovered);
    assert_true(kept_on);
    assert_int_equal(after_err, 0);

    shp_stats st;
    assert_int_equal(shp_pool_stats(l.pool, &st), 0);
    print_message("kill -9: ok=%ld cmd_err=%ld acq_err=%ld (EHOSTDOWN %ld, longest %.1f ms; "
                  "ETIMEDOUT %ld), first ok %.0f ms after restart, longest op %.0f ms, "
                  "created=%llu closed=%llu connect_failures=%llu retries=%llu "
                  "breaker_opens=%llu, connects %ld, in flight max %d (%d while down, cap %d)\n",
                  atomic_load(&l.ok), atomic_load(&l.cmd_err), atomic_load(&l.acq_err),
                  atomic_load(&l.hostdown), (double)atomic_load(&l.max_hostdown_ns) / NS_PER_MS,
                  atomic_load(&l.timedout), (double)first_ok / NS_PER_MS,
                  (double)atomic_load(&l.max_op_ns) / NS_PER_MS, (unsigned long long)st.creations,
                  (unsigned long long)st.closed, (unsigned long long)st.connect_failures,
                  (unsigned long long)st.retries, (unsigned long long)st.breaker_opens,
                  atomic_load(&counted.calls), atomic_load(&counted.max_inflight),
                  max_connecting_down, LOAD_CONNECTING);
    /* The breaker opened while it was down and is closed once requests
     * succeed again. */
    assert_true(after.breaker_opens >= 1);
    assert_int_equal(after.breaker_open, 0);
    assert_int_equal(st.breaker_open, 0);
    /* While open, acquires that had to connect failed at once, far from
     * their timeout. */
    assert_true(atomic_load(&l.hostdown) >= 20);
    assert_true(atomic_load(&l.max_hostdown_ns) < tmo / 2);
    /* No reconnect storm: never more connects at once than max_connecting. */
    assert_true(atomic_load(&counted.max_inflight) >= 1);
    assert_true(atomic_load(&counted.max_inflight) <= LOAD_CONNECTING);
    assert_int_equal(atomic_load(&counted.inflight), 0);
    assert_true(first_ok <= 1 * NS_PER_S);
    /* Every op ends: acquire deadline, plus a connect or command in
     * progress at it, plus margin. */
    assert_true(atomic_load(&l.max_op_ns) <= 2 * tmo + 500 * NS_PER_MS);
    assert_true(st.creations > LOAD_POOL); /* dead connections were replaced */
    /* Every connection dead since the kill was closed before the restart,
     * and the new ones are handed out clean: no command fails after it. */
    assert_int_equal(atomic_load(&l.cmd_err), cmd_err_restart);
    assert_true(st.live <= LOAD_POOL);
    assert_int_equal(st.in_use, 0);
    assert_true(st.connect_failures >= pc.breaker_threshold);

    assert_int_equal(shp_pool_destroy(l.pool, -1), 0);
    shp_redis_ops_free(&real);
    assert_int_equal(count_fds(), fds_before); /* every socket closed */
    rsrv_stop(&srv);
}

/* ---- replies compared byte for byte --------------------------------------------------- */

/* A server on 127.0.0.1 for one connection that answers each of the
 * client's writes with the next scripted reply (any bytes, NULs included),
 * then shuts its side for writing (the client reads the end of the
 * stream) and waits for the client to close. */
struct script_reply {
    const char *bytes;
    size_t len;
};
#define SCRIPT(lit) { lit, sizeof lit - 1 }

struct scripted {
    int lfd, port;
    const struct script_reply *replies;
    size_t n;
    pthread_t th;
};

static void *scripted_main(void *arg)
{
    struct scripted *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[4096];
    for (size_t i = 0; i < s->n; i++) {
        if (read(fd, buf, sizeof buf) <= 0)
            break;
        if (write(fd, s->replies[i].bytes, s->replies[i].len) != (ssize_t)s->replies[i].len)
            break;
    }
    shutdown(fd, SHUT_WR);
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    return NULL;
}

static void scripted_start(struct scripted *s, const struct script_reply *replies, size_t n)
{
    s->replies = replies;
    s->n = n;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof sin;
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(s->lfd, 1), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &l), 0);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, scripted_main, s), 0);
}

static void scripted_join(struct scripted *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* A status reply is its whole line: "+PONG\0x", "+OK\0x" and "+RESET\0x"
 * (a NUL, then more) are not +PONG, +OK and +RESET, in the handshake, the
 * check and the cleanup's answers alike. */
static void test_status_reply_with_nul(void **state)
{
    (void)state;
    struct scripted s;
    shp_redis_config rc;
    shp_ops ops;
    void *h;

    /* the handshake's PING */
    static const struct script_reply pong_nul[] = { SCRIPT("+PONG\0x\r\n") };
    scripted_start(&s, pong_nul, 1);
    rc = redis_cfg(s.port, NULL, 0);
    ops = make_ops(&rc);
    h = NULL;
    assert_int_equal(ops.connect(ops.ctx, &h), -EPROTO);
    assert_non_null(strstr(detail_take(), ": ping: unexpected reply to PING"));
    shp_redis_ops_free(&ops);
    scripted_join(&s);

    /* the handshake's AUTH */
    static const struct script_reply ok_nul[] = { SCRIPT("+OK\0x\r\n+PONG\r\n") };
    scripted_start(&s, ok_nul, 1);
    rc = redis_cfg(s.port, GOOD_PW, 0);
    ops = make_ops(&rc);
    h = NULL;
    assert_int_equal(ops.connect(ops.ctx, &h), -EPROTO);
    assert_non_null(strstr(detail_take(), ": auth: unexpected reply"));
    shp_redis_ops_free(&ops);
    scripted_join(&s);

    /* the check's PING */
    static const struct script_reply check_nul[] = { SCRIPT("+PONG\r\n"),
                                                     SCRIPT("+PONG\0x\r\n") };
    scripted_start(&s, check_nul, 2);
    rc = redis_cfg(s.port, NULL, 0);
    ops = make_ops(&rc);
    h = NULL;
    assert_int_equal(ops.connect(ops.ctx, &h), 0);
    assert_int_equal(ops.check(ops.ctx, h), -EPROTO);
    assert_non_null(strstr(detail_take(), ": check: unexpected reply to PING"));
    ops.close(ops.ctx, h);
    shp_redis_ops_free(&ops);
    scripted_join(&s);

    /* the cleanup's RESET: "+RESET\0x" counts as a leftover reply, and
     * the real +RESET never comes (the server's stream ends) */
    static const struct script_reply reset_nul[] = { SCRIPT("+PONG\r\n"),
                                                     SCRIPT("+RESET\0x\r\n") };
    scripted_start(&s, reset_nul, 2);
    rc = redis_cfg(s.port, NULL, 0);
    rc.command_timeout_ns = 2 * NS_PER_S;
    ops = make_ops(&rc);
    h = NULL;
    assert_int_equal(ops.connect(ops.ctx, &h), 0);
    assert_int_equal(ops.reset(ops.ctx, h), 0);
    assert_int_equal(ops.prepare(ops.ctx, h), -ECONNRESET);
    assert_non_null(strstr(detail_take(), ": cleanup: "));
    ops.close(ops.ctx, h);
    shp_redis_ops_free(&ops);
    scripted_join(&s);
}

/* ---- main ---------------------------------------------------------------------------- */

/* Runs after every test, passed or failed: stops the server a failed test
 * left running and restores the default log sink. */
static int teardown(void **state)
{
    (void)state;
    storm_stop();
    if (srv.pid > 0)
        rsrv_sigcont(&srv);
    rsrv_stop(&srv);
    log_stop();
    return 0;
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
    /* hiredis writes with write(2): a server that went away must give
     * EPIPE, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_config),
        T(test_happy_path),
        T(test_unix_socket),
        T(test_auth),
        T(test_permanent_errors),
        T(test_check_capped_by_acquire_deadline),
        T(test_prepare_capped_by_acquire_deadline),
        T(test_backend_down),
        T(test_dirty_release),
        T(test_tracked_cleanup),
        T(test_always_cleanup),
        T(test_command_bad_args),
        T(test_status_reply_with_nul),
        T(test_stopped_server),
        T(test_signals_normal_work),
        T(test_signals_deadlines),
        T(test_timeouts_int64_max),
        T(test_kill9_restart),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    shp_quiesce();
    return failed;
}
