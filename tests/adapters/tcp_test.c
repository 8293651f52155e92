/*
 * tcp_test.c - the TCP adapter (include/shardpool/adapters/tcp.h) against
 * real servers that the test runs in-process: listening sockets on
 * 127.0.0.1 and ::1 (port 0) and unix sockets in a mkdtemp directory.
 *
 * Each server is one thread with a poll loop that accepts, echoes (or stays
 * silent), and executes commands the test sends it through a pipe (close
 * or reset the n-th accepted connection, send it a byte), acknowledging
 * each; so a test knows exactly what the server did.  A test that needs the
 * client to have seen the server's action waits for it with poll() on the
 * client's socket.  Nothing sleeps in place of synchronisation; the only
 * timing assertions are bounds that fail only on a bug (a timeout that
 * fires before its time or more than a second after it).
 *
 * The adapter logs no failure of its callbacks: it records why with
 * shp_set_error_detail, which a test calling a callback directly reads with
 * detail_take (failtest.h), and the pool logs one line per failure.
 *
 * cmocka assertions are made on the main thread only.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "storm.h"
#include "failtest.h"

#include <shardpool.h>
#include <shardpool/adapters/tcp.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL
#define WAIT_MS 10000 /* bound on waits for events that must come */




/* Waits until fd is readable or has hung up; returns the revents (0 on the
 * WAIT_MS bound). */
static short wait_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    int n;
    do
        n = poll(&p, 1, WAIT_MS);
    while (n < 0 && errno == EINTR);
    return n > 0 ? p.revents : 0;
}

static bool send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* One request/response on an echo server. */
static bool echo_roundtrip(int fd, const char *msg)
{
    size_t len = strlen(msg);
    char back[256];
    if (len > sizeof back || !send_all(fd, msg, len) || !recv_all(fd, back, len))
        return false;
    return memcmp(back, msg, len) == 0;
}

/* ---- the in-test server ------------------------------------------------------ */

enum srv_mode { SRV_ECHO, SRV_SILENT };
enum srv_op { SRV_QUIT, SRV_CLOSE, SRV_RESET, SRV_SEND_BYTE };
#define SRV_MAX_CONNS 64

typedef struct srv {
    enum srv_mode mode;
    int lfd;
    int ctl[2];                 /* test -> server commands */
    pthread_t thread;
    char port[16];              /* TCP: the bound port */
    char dir[64], path[100];    /* unix: mkdtemp dir and socket path */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fds[SRV_MAX_CONNS];     /* accepted, in order; -1 once closed (server thread only) */
    int accepted;               /* under mu */
    int acks;                   /* commands done, under mu */
} srv;

typedef struct srv_cmd {
    int op, idx;
} srv_cmd;

static void srv_close_conn(srv *s, int idx, bool reset)
{
    if (idx < 0 || idx >= SRV_MAX_CONNS || s->fds[idx] < 0)
        return;
    if (reset) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 }; /* close sends RST */
        setsockopt(s->fds[idx], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->fds[idx]);
    s->fds[idx] = -1;
}

static void srv_ack(srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->acks++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Poll loop: control pipe, listener, and (echo mode) every open
 * connection.  Only this thread touches fds[] and the accepted sockets. */
static void *srv_main(void *arg)
{
    srv *s = arg;
    struct pollfd pf[2 + SRV_MAX_CONNS];
    int map[2 + SRV_MAX_CONNS];
    for (;;) {
        int n = 0, accepted;
        pthread_mutex_lock(&s->mu);
        accepted = s->accepted;
        pthread_mutex_unlock(&s->mu);
        pf[n++] = (struct pollfd){ .fd = s->ctl[0], .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = accepted < SRV_MAX_CONNS ? s->lfd : -1, .events = POLLIN };
        for (int i = 0; s->mode == SRV_ECHO && i < accepted; i++)
            if (s->fds[i] >= 0) {
                map[n] = i;
                pf[n++] = (struct pollfd){ .fd = s->fds[i], .events = POLLIN };
            }
        if (poll(pf, (nfds_t)n, -1) < 0)
            continue; /* EINTR */
        if (pf[0].revents) {
            srv_cmd c;
            if (read(s->ctl[0], &c, sizeof c) != (ssize_t)sizeof c || c.op == SRV_QUIT)
                break;
            if (c.op == SRV_SEND_BYTE && c.idx >= 0 && c.idx < SRV_MAX_CONNS && s->fds[c.idx] >= 0)
                send_all(s->fds[c.idx], "!", 1);
            else if (c.op == SRV_CLOSE || c.op == SRV_RESET)
                srv_close_conn(s, c.idx, c.op == SRV_RESET);
            srv_ack(s);
            continue; /* fds may have changed: rebuild the poll set */
        }
        if (pf[1].revents) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                s->fds[accepted] = fd;
                pthread_mutex_lock(&s->mu);
                s->accepted++;
                pthread_cond_broadcast(&s->cv);
                pthread_mutex_unlock(&s->mu);
            }
        }
        for (int k = 2; k < n; k++) {
            if (!pf[k].revents)
                continue;
            char buf[4096];
            ssize_t got = recv(pf[k].fd, buf, sizeof buf, 0);
            if (got <= 0 || !send_all(pf[k].fd, buf, (size_t)got))
                srv_close_conn(s, map[k], false);
        }
    }
    return NULL;
}

static void srv_init(srv *s, enum srv_mode mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->lfd = s->ctl[0] = s->ctl[1] = -1; /* -1: not running */
    for (int i = 0; i < SRV_MAX_CONNS; i++)
        s->fds[i] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void srv_run(srv *s)
{
    assert_int_equal(pipe2(s->ctl, O_CLOEXEC), 0);
    int rc = pthread_create(&s->thread, NULL, srv_main, s);
    if (rc != 0) {
        close(s->ctl[0]);
        close(s->ctl[1]);
        s->ctl[0] = s->ctl[1] = -1;
    }
    assert_int_equal(rc, 0);
}

/* A TCP listener on addr (numeric), port 0.  Returns the fd or -errno. */
static int listen_inet(const char *addr, int backlog, char *port, size_t portlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        if (inet_pton(AF_INET, addr, &a->sin_addr) != 1)
            return -EINVAL;
        len = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || (backlog >= 0 && listen(fd, backlog) != 0)) {
        int e = -errno;
        close(fd);
        return e;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    unsigned p = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(port, portlen, "%u", p);
    return fd;
}

/* A unix-socket listener in a fresh mkdtemp directory (backlog < 0: bound
 * only, not listening).  Returns the fd or -errno. */
static int listen_unix(char *dir, size_t dirlen, char *path, size_t pathlen, int backlog)
{
    snprintf(dir, dirlen, "/tmp/shp_tcp_XXXXXX");
    if (!mkdtemp(dir))
        return -errno;
    snprintf(path, pathlen, "%s/s.sock", dir);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
        (backlog >= 0 && listen(fd, backlog) != 0)) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void unix_cleanup(const char *dir, const char *path)
{
    if (path[0])
        unlink(path);
    if (dir[0])
        rmdir(dir);
}

/* Servers still running, so that a failed test's teardown can stop them
 * (a failed assertion leaves the test function at once).  Main thread. */
#define SRV_LIVE_MAX 8
static srv *srv_live[SRV_LIVE_MAX];

static srv *srv_alloc(enum srv_mode mode)
{
    srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    srv_init(s, mode);
    for (int i = 0; i < SRV_LIVE_MAX; i++)
        if (!srv_live[i]) {
            srv_live[i] = s;
            return s;
        }
    fail_msg("too many live servers");
    return NULL;
}

static void srv_free(srv *s)
{
    for (int i = 0; i < SRV_LIVE_MAX; i++)
        if (srv_live[i] == s)
            srv_live[i] = NULL;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* Starts a server on addr ("127.0.0.1", "::1").  Returns it, or NULL with
 * *err = -errno when the address cannot be listened on (the caller may
 * skip). */
static srv *srv_start_inet(enum srv_mode mode, const char *addr, int *err)
{
    srv *s = srv_alloc(mode);
    s->lfd = listen_inet(addr, 64, s->port, sizeof s->port);
    if (s->lfd < 0) {
        if (err)
            *err = s->lfd;
        srv_free(s);
        return NULL;
    }
    srv_run(s);
    return s;
}

static srv *srv_start_unix(enum srv_mode mode)
{
    srv *s = srv_alloc(mode);
    s->lfd = listen_unix(s->dir, sizeof s->dir, s->path, sizeof s->path, 64);
    assert_true(s->lfd >= 0);
    srv_run(s);
    return s;
}

/* Sends a command and waits for the server to have executed it. */
static void srv_do(srv *s, int op, int idx)
{
    pthread_mutex_lock(&s->mu);
    int want = s->acks + 1;
    pthread_mutex_unlock(&s->mu);
    srv_cmd c = { .op = op, .idx = idx };
    assert_int_equal(write(s->ctl[1], &c, sizeof c), (ssize_t)sizeof c);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->acks < want && rc == 0)
        rc = pthread_cond_timedwait(&s->cv, &s->mu, &dl);
    bool done = s->acks >= want;
    pthread_mutex_unlock(&s->mu);
    assert_true(done);
}

/* Waits until the server accepted at least n connections. */
static void srv_wait_accepted(srv *s, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->accepted < n && rc == 0)
        rc = pthread_cond_timedwait(&s->cv, &s->mu, &dl);
    bool done = s->accepted >= n;
    pthread_mutex_unlock(&s->mu);
    assert_true(done);
}

static int srv_accepted(srv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->accepted;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void srv_stop(srv *s)
{
    srv_cmd c = { .op = SRV_QUIT };
    if (s->ctl[1] >= 0 && write(s->ctl[1], &c, sizeof c) == (ssize_t)sizeof c)
        pthread_join(s->thread, NULL);
    for (int i = 0; i < SRV_MAX_CONNS; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->ctl[0] >= 0) {
        close(s->ctl[0]);
        close(s->ctl[1]);
    }
    unix_cleanup(s->dir, s->path);
    srv_free(s);
}

/* ---- adapter helpers ------------------------------------------------------------ */

static shp_tcp_config cfg_inet(const char *host, const char *port)
{
    shp_tcp_config c;
    shp_tcp_config_init(&c);
    c.host = host;
    c.port_or_service = port;
    c.read_timeout_ns = 5 * NS_PER_S; /* a hung test fails instead of hanging */
    c.write_timeout_ns = 5 * NS_PER_S;
    c.name = "tcptest";
    return c;
}

static shp_tcp_config cfg_unix(const char *path)
{
    shp_tcp_config c;
    shp_tcp_config_init(&c);
    c.unix_path = path;
    c.read_timeout_ns = 5 * NS_PER_S;
    c.write_timeout_ns = 5 * NS_PER_S;
    c.name = "tcptest";
    return c;
}

static shp_ops make_ops(const shp_tcp_config *cfg)
{
    shp_ops ops;
    memset(&ops, 0, sizeof ops);
    assert_int_equal(shp_tcp_ops(&ops, cfg), 0);
    assert_non_null(ops.connect);
    assert_non_null(ops.close);
    assert_non_null(ops.check);
    assert_null(ops.reset);
    assert_non_null(ops.ctx);
    return ops;
}

static int do_connect(shp_ops *ops, void **h)
{
    *h = NULL;
    int rc = ops->connect(ops->ctx, h);
    if (rc == 0) {
        assert_non_null(*h);
        assert_true(shp_tcp_fd(*h) >= 0);
    }
    return rc;
}

static int getopt_int(int fd, int level, int opt)
{
    int v = -1;
    socklen_t l = sizeof v;
    assert_int_equal(getsockopt(fd, level, opt, &v, &l), 0);
    return v;
}

static int64_t getopt_timeout_ns(int fd, int opt)
{
    struct timeval tv;
    socklen_t l = sizeof tv;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, opt, &tv, &l), 0);
    return (int64_t)tv.tv_sec * NS_PER_S + (int64_t)tv.tv_usec * 1000;
}

/* Connects, checks a round trip and a healthy check, closes. */
static void connect_and_echo(const shp_tcp_config *cfg, const char *msg)
{
    shp_ops ops = make_ops(cfg);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    assert_true(echo_roundtrip(shp_tcp_fd(h), msg));
    assert_int_equal(ops.check(ops.ctx, h), 0);
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);
}

/* ---- configuration ------------------------------------------------------------------ */

static void test_config(void **state)
{
    (void)state;
    shp_tcp_config c;
    memset(&c, 0x5a, sizeof c);
    shp_tcp_config_init(&c);
    assert_null(c.host);
    assert_null(c.port_or_service);
    assert_null(c.unix_path);
    assert_true(c.connect_timeout_ns > 0);
    assert_int_equal(c.read_timeout_ns, 0);
    assert_int_equal(c.write_timeout_ns, 0);
    assert_true(c.nodelay);
    assert_true(c.keepalive);
    assert_null(c.ping);
    shp_tcp_config_init(NULL); /* no crash */

    shp_ops ops, untouched;
    memset(&untouched, 0x77, sizeof untouched);
    ops = untouched;
    log_start_level(SHP_LOG_INFO); /* keep the expected error lines off stderr */
    assert_int_equal(shp_tcp_ops(NULL, &c), -EINVAL);
    assert_int_equal(shp_tcp_ops(&ops, NULL), -EINVAL);
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL); /* no target */
    c.host = "127.0.0.1";
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL); /* host without port */
    c.port_or_service = "1";
    c.unix_path = "/tmp/x";
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL); /* both */
    c.unix_path = NULL;
    c.connect_timeout_ns = -1;
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL);
    c.connect_timeout_ns = 0;
    c.read_timeout_ns = -1;
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL);
    c.read_timeout_ns = 0;
    c.write_timeout_ns = -5;
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL);
    c.write_timeout_ns = 0;
    c.keepidle_s = 40000;
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL);
    c.keepidle_s = 1;
    c.keepcnt = -1;
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL);
    c.keepcnt = 128;
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL);
    c.keepcnt = 1;
    c.host = "";
    assert_int_equal(shp_tcp_ops(&ops, &c), -EINVAL);

    /* port_or_service: digits in 1..65535 or a service name, nothing else
     * (getaddrinfo would take "99999" as port 34463) */
    static const char *const bad_ports[] = { "99999", "65536", "0", "00000", "+80", "-1",
                                             " 80", "80 ", "80x", "0x50", "8_0", "-http",
                                             "http port", "4294967377" };
    c.host = "127.0.0.1";
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        c.port_or_service = bad_ports[i];
        log_start_level(SHP_LOG_INFO);
        if (shp_tcp_ops(&ops, &c) != -EINVAL)
            fail_msg("port_or_service \"%s\" accepted", bad_ports[i]);
        if (log_count("event=invalid_config field=port_or_service") != 1)
            fail_msg("port_or_service \"%s\": no log line", bad_ports[i]);
    }
    assert_true(log_has("reason=\"'4294967377': port number outside 1..65535\""));
    log_start_level(SHP_LOG_INFO);
    static const char *const good_ports[] = { "1", "80", "065535", "65535", "http",
                                              "postgresql", "x11-ssh", "no-such-service" };
    for (size_t i = 0; i < sizeof good_ports / sizeof good_ports[0]; i++) {
        shp_ops ok;
        c.port_or_service = good_ports[i];
        if (shp_tcp_ops(&ok, &c) != 0)
            fail_msg("port_or_service \"%s\" refused", good_ports[i]);
        shp_tcp_ops_free(&ok);
    }
    c.host = "";
    c.port_or_service = "1";

    shp_tcp_config u;
    shp_tcp_config_init(&u);
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    u.unix_path = longpath;
    assert_int_equal(shp_tcp_ops(&ops, &u), -ENAMETOOLONG);
    u.unix_path = "";
    assert_int_equal(shp_tcp_ops(&ops, &u), -EINVAL);
    log_stop();
    assert_memory_equal(&ops, &untouched, sizeof ops); /* failures leave *ops alone */
    assert_true(log_has("event=invalid_config"));

    /* A good config; freeing zeroes the ops. */
    c.host = "127.0.0.1";
    c.port_or_service = "9";
    assert_int_equal(shp_tcp_ops(&ops, &c), 0);
    shp_tcp_ops_free(&ops);
    assert_null(ops.ctx);
    assert_null(ops.connect);
    shp_tcp_ops_free(&ops); /* zeroed: no-op */
    shp_tcp_ops_free(NULL);
    shp_ops other = { .connect = (int (*)(void *, void **))1, .ctx = &c };
    shp_tcp_ops_free(&other); /* not ours: untouched */
    assert_ptr_equal(other.ctx, &c);

    assert_int_equal(shp_tcp_fd(NULL), -EINVAL);
    uint64_t junk[2] = { 0, 0 };
    assert_int_equal(shp_tcp_fd(junk), -EBADF);
}

/* ---- connect -------------------------------------------------------------------------- */

static void test_connect_ipv4_options(void **state)
{
    (void)state;
    srv *s = srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
    assert_non_null(s);
    char host[] = "127.0.0.1", port[16];
    snprintf(port, sizeof port, "%s", s->port);
    shp_tcp_config c = cfg_inet(host, port);
    c.keepidle_s = 30;
    c.keepintvl_s = 7;
    c.keepcnt = 3;
    c.read_timeout_ns = 1500 * NS_PER_MS;
    c.write_timeout_ns = 2500 * NS_PER_MS + 1; /* rounds up to the next microsecond */
    shp_ops ops = make_ops(&c);
    memset(host, 'x', sizeof host - 1); /* the ops keep their own copies */
    memset(port, 'x', sizeof port - 1);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    int fd = shp_tcp_fd(h);

    assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    assert_int_equal(getopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 7);
    assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    /* The kernel keeps timeouts in jiffies: allow its rounding. */
    int64_t rt = getopt_timeout_ns(fd, SO_RCVTIMEO), wt = getopt_timeout_ns(fd, SO_SNDTIMEO);
    assert_true(rt >= 1490 * NS_PER_MS && rt <= 1520 * NS_PER_MS);
    assert_true(wt >= 2490 * NS_PER_MS && wt <= 2520 * NS_PER_MS);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0); /* blocking again */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    assert_true(echo_roundtrip(fd, "hello over IPv4"));
    assert_int_equal(ops.check(ops.ctx, h), 0);
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

static void test_options_off(void **state)
{
    (void)state;
    srv *s = srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
    assert_non_null(s);
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    c.nodelay = false;
    c.keepalive = false;
    c.read_timeout_ns = c.write_timeout_ns = 0;
    c.connect_timeout_ns = 0; /* no connect timeout: plain wait */
    shp_ops ops = make_ops(&c);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    int fd = shp_tcp_fd(h);
    assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    assert_int_equal(getopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    assert_int_equal(getopt_timeout_ns(fd, SO_RCVTIMEO), 0);
    assert_int_equal(getopt_timeout_ns(fd, SO_SNDTIMEO), 0);
    assert_true(echo_roundtrip(fd, "no options"));
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);

    /* 1 ns is a timeout, not "none": it rounds up to 1 us, never to 0. */
    c.read_timeout_ns = c.write_timeout_ns = 1;
    ops = make_ops(&c);
    assert_int_equal(do_connect(&ops, &h), 0);
    assert_true(getopt_timeout_ns(shp_tcp_fd(h), SO_RCVTIMEO) > 0);
    assert_true(getopt_timeout_ns(shp_tcp_fd(h), SO_SNDTIMEO) > 0);
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

static void test_connect_ipv6(void **state)
{
    (void)state;
    int rc = 0;
    srv *s = srv_start_inet(SRV_ECHO, "::1", &rc);
    if (!s) {
        print_message("skip: cannot listen on ::1 (%s)\n", strerror(-rc));
        skip();
    }
    shp_tcp_config c = cfg_inet("::1", s->port);
    connect_and_echo(&c, "hello over IPv6");
    srv_stop(s);
}

/* "localhost" through the resolver; the server listens on the last address
 * it resolves to, so earlier ones (if any) must be tried and passed over. */
static void test_connect_hostname(void **state)
{
    (void)state;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    if (getaddrinfo("localhost", "1", &hints, &res) != 0 || !res) {
        print_message("skip: \"localhost\" does not resolve here\n");
        skip();
    }
    char addr[INET6_ADDRSTRLEN] = "";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    int rc = 0;
    srv *s = srv_start_inet(SRV_ECHO, addr, &rc);
    if (!s) {
        print_message("skip: cannot listen on %s (%s)\n", addr, strerror(-rc));
        skip();
    }
    shp_tcp_config c = cfg_inet("localhost", s->port);
    connect_and_echo(&c, "hello localhost");
    srv_stop(s);
}

static void test_connect_unix(void **state)
{
    (void)state;
    srv *s = srv_start_unix(SRV_ECHO);
    shp_tcp_config c = cfg_unix(s->path);
    connect_and_echo(&c, "hello over a unix socket");

    /* The abstract namespace ("@name"). */
    srv *a = srv_alloc(SRV_ECHO);
    char name[64];
    snprintf(name, sizeof name, "@shp_tcp_test_%ld", (long)getpid());
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    memcpy(sun.sun_path + 1, name + 1, strlen(name) - 1);
    a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(a->lfd >= 0);
    assert_int_equal(bind(a->lfd, (struct sockaddr *)&sun,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
                     0);
    assert_int_equal(listen(a->lfd, 8), 0);
    srv_run(a);
    shp_tcp_config ca = cfg_unix(name);
    connect_and_echo(&ca, "hello abstract");
    srv_stop(a);
    srv_stop(s);
}

/* ---- connect failures -------------------------------------------------------------------- */

static void test_refused_tcp(void **state)
{
    (void)state;
    /* A bound socket that does not listen holds the port: a SYN to it is
     * answered with RST. */
    char port[16];
    int hold = listen_inet("127.0.0.1", -1, port, sizeof port);
    assert_true(hold >= 0);
    shp_tcp_config c = cfg_inet("127.0.0.1", port);
    c.connect_timeout_ns = 30 * NS_PER_S;
    shp_ops ops = make_ops(&c);
    void *h;
    log_start_level(SHP_LOG_INFO);
    int64_t t0 = now_ns();
    int rc = do_connect(&ops, &h);
    int64_t took = now_ns() - t0;
    log_stop();
    assert_int_equal(rc, -ECONNREFUSED);
    assert_true(took < 5 * NS_PER_S); /* refused, not waited out */
    char want[96];
    snprintf(want, sizeof want, "127.0.0.1:%s: connect: Connection refused", port);
    assert_string_equal(detail_take(), want);
    assert_int_equal(log_count_warn(), 0); /* the pool logs it, not the adapter */
    shp_tcp_ops_free(&ops);
    close(hold);
}

static void test_refused_unix(void **state)
{
    (void)state;
    char dir[64] = "", path[100] = "";
    int hold = listen_unix(dir, sizeof dir, path, sizeof path, -1); /* bound, not listening */
    assert_true(hold >= 0);
    shp_tcp_config c = cfg_unix(path);
    shp_ops ops = make_ops(&c);
    void *h;
    log_start_level(SHP_LOG_INFO);
    assert_int_equal(do_connect(&ops, &h), -ECONNREFUSED);
    shp_tcp_ops_free(&ops);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.sock", dir);
    c = cfg_unix(missing);
    ops = make_ops(&c);
    /* no socket file: no server there, refused (and retried by a pool) */
    assert_int_equal(do_connect(&ops, &h), -ECONNREFUSED);
    assert_non_null(strstr(detail_take(), "missing.sock: connect: no socket file"));
    log_stop();
    assert_int_equal(log_count_warn(), 0);
    shp_tcp_ops_free(&ops);
    close(hold);
    unix_cleanup(dir, path);
}

static void test_resolve_failure(void **state)
{
    (void)state;
    shp_tcp_config c = cfg_inet("127.0.0.1", "no-such-service-shp-test");
    shp_ops ops = make_ops(&c);
    void *h;
    log_start_level(SHP_LOG_INFO);
    assert_int_equal(do_connect(&ops, &h), -ENXIO);
    log_stop();
    assert_non_null(strstr(detail_take(), "127.0.0.1:no-such-service-shp-test: resolve: "));
    assert_int_equal(log_count_warn(), 0);
    shp_tcp_ops_free(&ops);
}

/* A host name that does not exist: -ENXIO at once through a pool (one
 * connect, no retry), with the resolver's words in the pool's one line and
 * in the last errors. */
static void test_unknown_host_fails_fast(void **state)
{
    (void)state;
    static const char host[] = "no-such-host-shp-test.invalid";
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, "80", NULL, &res);
    if (g == 0)
        freeaddrinfo(res);
    if (g != EAI_NONAME && g != EAI_NODATA) {
        print_message("skip: the resolver answers %s for %s (no DNS here?)\n", gai_strerror(g),
                      host);
        skip();
    }
    shp_tcp_config c = cfg_inet(host, "7");
    shp_ops real = make_ops(&c);
    static counted_ops co;
    shp_ops ops = counted_wrap(&co, &real);
    shp_config pc;
    shp_config_init(&pc);
    pc.max_size = 2;
    pc.name = "tcpnohost";
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    char words[128];
    snprintf(words, sizeof words, "%s:7: resolve: %s", host, gai_strerror(g));
    expect_permanent_failure(pool, &co.calls, -ENXIO, words, NULL);
    assert_true(log_has("level=warn pool=tcpnohost event=connect_failed err=ENXIO"));
    assert_int_equal(shp_pool_destroy(pool, 0), 0);
    shp_tcp_ops_free(&real);
}

/* Connect timeout over TCP: a listener with backlog 0 that never accepts
 * holds one established connection in its accept queue and then drops
 * every SYN, so a further connect hangs in SYN_SENT until our timeout.
 * The filler's arrival in the queue is observed with TCP_INFO on the
 * listener (tcpi_unacked is the accept-queue length of a listener). */
static void test_connect_timeout_tcp(void **state)
{
    (void)state;
    char port[16];
    int lfd = listen_inet("127.0.0.1", 0, port, sizeof port);
    assert_true(lfd >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&sin, sizeof sin), 0);
    bool full = false;
    for (int i = 0; i < WAIT_MS && !full; i++) {
        struct tcp_info ti;
        socklen_t l = sizeof ti;
        assert_int_equal(getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &l), 0);
        full = ti.tcpi_unacked >= 1;
        if (!full)
            nap_ms(1);
    }
    if (!full) {
        close(filler);
        close(lfd);
        print_message("skip: the listener's accept queue never showed the filler\n");
        skip();
    }

    const int64_t timeout = 300 * NS_PER_MS;
    shp_tcp_config c = cfg_inet("127.0.0.1", port);
    c.connect_timeout_ns = timeout;
    shp_ops ops = make_ops(&c);
    void *h;
    log_start_level(SHP_LOG_INFO);
    int64_t t0 = now_ns();
    int rc = do_connect(&ops, &h);
    int64_t took = now_ns() - t0;
    if (rc == 0) {
        ops.close(ops.ctx, h);
        log_stop();
        shp_tcp_ops_free(&ops);
        close(filler);
        close(lfd);
        print_message("skip: this kernel completed a connect to a full accept queue\n");
        skip();
    }
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(took >= timeout);
    assert_true(took < timeout + NS_PER_S);

    /* Through a pool: the acquire fails with the connect error, in time. */
    shp_config pc;
    shp_config_init(&pc);
    pc.max_size = 2;
    pc.name = "tcptimeout";
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
    shp_conn *conn = NULL;
    const int64_t acquire_timeout = 400 * NS_PER_MS;
    t0 = now_ns();
    rc = shp_acquire(pool, &conn, acquire_timeout);
    took = now_ns() - t0;
    log_stop();
    assert_int_equal(rc, -ETIMEDOUT);
    assert_null(conn);
    assert_true(took < acquire_timeout + NS_PER_S);
    assert_int_equal(shp_pool_destroy(pool, 0), 0);
    assert_true(log_has("pool=tcptimeout event=connect_failed err=ETIMEDOUT msg=\"127.0.0.1:"));
    assert_true(log_has(": connect: Connection timed out\""));
    shp_tcp_ops_free(&ops);
    close(filler);
    close(lfd);
}

/* Connect timeout over a unix socket: with backlog 0 the one pending
 * connection fills the listener (synchronously: a unix connect is queued
 * before connect returns), and the next connect waits for room.
 *
 * With storm, the same under a 10 kHz signal storm (tests/support/storm.h):
 * every signal ends the kernel's wait with EINTR, and the adapter connects
 * again with SO_SNDTIMEO set to what is left, so the connect still fails
 * with -ETIMEDOUT at its timeout (never -EINTR, never a fresh full timeout
 * per signal). */
static void connect_timeout_unix(bool storm)
{
    char dir[64] = "", path[100] = "";
    int lfd = listen_unix(dir, sizeof dir, path, sizeof path, 0);
    assert_true(lfd >= 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int filler = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&sun, sizeof sun), 0);

    const int64_t timeout = (storm ? 200 : 250) * NS_PER_MS;
    shp_tcp_config c = cfg_unix(path);
    c.connect_timeout_ns = timeout;
    shp_ops ops = make_ops(&c);
    void *h;
    log_start_level(SHP_LOG_INFO);
    long sig0 = storm_count();
    if (storm)
        storm_start();
    int64_t t0 = now_ns();
    int rc = do_connect(&ops, &h);
    int64_t took = now_ns() - t0;
    if (storm)
        storm_stop();
    long sigs = storm_count() - sig0;
    log_stop();
    if (storm)
        print_message("unix connect to a full backlog under %ld signals: %s after %.1f ms "
                      "(timeout %d ms)\n", sigs, shp_err_name(rc), (double)took / NS_PER_MS,
                      (int)(timeout / NS_PER_MS));
    assert_int_equal(rc, -ETIMEDOUT);
    /* The kernel's wait is in jiffies (it may end up to one early). */
    assert_true(took >= timeout - 20 * NS_PER_MS);
    if (storm) {
        assert_true(sigs >= 100); /* the storm was on */
        assert_true(took <= timeout + STORM_MARGIN_NS);
        assert_non_null(strstr(detail_take(), "s.sock: connect: "));
    } else {
        assert_true(took < timeout + NS_PER_S);
    }
    shp_tcp_ops_free(&ops);
    close(filler);
    close(lfd);
    unix_cleanup(dir, path);
}

static void test_connect_timeout_unix(void **state)
{
    (void)state;
    connect_timeout_unix(false);
}

/* ---- signal storm -------------------------------------------------------------------- */

static void test_connect_timeout_unix_signals(void **state)
{
    (void)state;
    connect_timeout_unix(true);
}

/* ---- read and write timeouts ---------------------------------------------------------------- */

static atomic_int ping_calls;

/* Sends "ping\n" and expects it back (on an echo server). */
static int ping_echo(int fd, void *ud)
{
    (void)ud;
    atomic_fetch_add(&ping_calls, 1);
    char back[5];
    if (!send_all(fd, "ping\n", 5))
        return -errno;
    if (!recv_all(fd, back, 5))
        return errno ? -errno : -EPIPE;
    return memcmp(back, "ping\n", 5) == 0 ? 0 : -EPROTO;
}

static int ping_ret_value;

static int ping_returns(int fd, void *ud)
{
    (void)fd;
    atomic_fetch_add(&ping_calls, 1);
    return *(int *)ud;
}

/* A server that accepts but never answers: the ping's read times out after
 * read_timeout, and the check reports it. */
static void test_read_timeout_ping(void **state)
{
    (void)state;
    srv *s = srv_start_inet(SRV_SILENT, "127.0.0.1", NULL);
    assert_non_null(s);
    const int64_t timeout = 200 * NS_PER_MS;
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    c.read_timeout_ns = timeout;
    c.ping = ping_echo;
    shp_ops ops = make_ops(&c);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    log_start_level(SHP_LOG_INFO);
    int64_t t0 = now_ns();
    int rc = ops.check(ops.ctx, h);
    int64_t took = now_ns() - t0;
    log_stop();
    assert_true(rc == -EAGAIN || rc == -ETIMEDOUT);
    assert_true(took >= timeout - 20 * NS_PER_MS); /* jiffies, as above */
    assert_true(took < timeout + NS_PER_S);
    assert_non_null(strstr(detail_take(), ": ping: "));
    assert_int_equal(log_count_warn(), 0);
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

/* The same server, writing: once the peer's window and our send buffer are
 * full, a send waits write_timeout and fails with EAGAIN. */
static void test_write_timeout(void **state)
{
    (void)state;
    srv *s = srv_start_inet(SRV_SILENT, "127.0.0.1", NULL);
    assert_non_null(s);
    const int64_t timeout = 200 * NS_PER_MS;
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    c.write_timeout_ns = timeout;
    shp_ops ops = make_ops(&c);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    int fd = shp_tcp_fd(h);
    static char chunk[256 * 1024];
    int64_t longest = 0, total = 0;
    int last_errno = 0;
    while (total < (512LL << 20)) {
        int64_t t0 = now_ns();
        ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        int64_t took = now_ns() - t0;
        longest = took > longest ? took : longest;
        if (n < 0) {
            last_errno = errno;
            if (last_errno != EINTR)
                break;
            continue;
        }
        total += n;
    }
    assert_true(last_errno == EAGAIN || last_errno == EWOULDBLOCK);
    assert_true(longest >= timeout - 20 * NS_PER_MS);
    assert_true(longest < timeout + NS_PER_S);
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

/* ---- health check --------------------------------------------------------------------------- */

static void test_check_states(void **state)
{
    (void)state;
    srv *s = srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
    assert_non_null(s);
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    shp_ops ops = make_ops(&c);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    int fd = shp_tcp_fd(h);
    srv_wait_accepted(s, 1);
    assert_int_equal(ops.check(ops.ctx, h), 0);

    log_start_level(SHP_LOG_INFO);
    /* Unsolicited bytes on an idle connection: desynchronised. */
    srv_do(s, SRV_SEND_BYTE, 0);
    assert_true(wait_readable(fd) & POLLIN);
    assert_int_equal(ops.check(ops.ctx, h), -EPROTO);
    assert_non_null(strstr(detail_take(), ": check: unread data on an idle connection"));
    char b;
    assert_int_equal(recv(fd, &b, 1, 0), 1);
    assert_int_equal(ops.check(ops.ctx, h), 0);

    /* Orderly close by the peer. */
    srv_do(s, SRV_CLOSE, 0);
    assert_true(wait_readable(fd) & (POLLIN | POLLRDHUP));
    int64_t t0 = now_ns();
    assert_int_equal(ops.check(ops.ctx, h), -EPIPE);
    assert_true(now_ns() - t0 < NS_PER_S); /* never blocks */
    assert_non_null(strstr(detail_take(), ": check: the peer closed the connection"));
    ops.close(ops.ctx, h);

    /* Reset by the peer. */
    assert_int_equal(do_connect(&ops, &h), 0);
    fd = shp_tcp_fd(h);
    srv_wait_accepted(s, 2);
    srv_do(s, SRV_RESET, 1);
    assert_true(wait_readable(fd) != 0);
    assert_int_equal(ops.check(ops.ctx, h), -ECONNRESET);
    assert_non_null(strstr(detail_take(), ": check: Connection reset by peer"));
    ops.close(ops.ctx, h);
    log_stop();
    assert_int_equal(log_count("failed"), 0); /* the adapter logs no failure */

    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

static void test_check_unix_peer_closed(void **state)
{
    (void)state;
    srv *s = srv_start_unix(SRV_ECHO);
    shp_tcp_config c = cfg_unix(s->path);
    shp_ops ops = make_ops(&c);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    srv_wait_accepted(s, 1);
    assert_int_equal(ops.check(ops.ctx, h), 0);
    srv_do(s, SRV_CLOSE, 0);
    assert_true(wait_readable(shp_tcp_fd(h)) != 0);
    log_start_level(SHP_LOG_INFO);
    assert_int_equal(ops.check(ops.ctx, h), -EPIPE);
    log_stop();
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

static void test_check_ping(void **state)
{
    (void)state;
    srv *s = srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
    assert_non_null(s);
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    c.ping = ping_echo;
    shp_ops ops = make_ops(&c);
    void *h;
    assert_int_equal(do_connect(&ops, &h), 0);
    atomic_store(&ping_calls, 0);
    assert_int_equal(ops.check(ops.ctx, h), 0);
    assert_int_equal(ops.check(ops.ctx, h), 0);
    assert_int_equal(atomic_load(&ping_calls), 2);
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);

    /* The ping's verdict is the check's; a positive one becomes -EIO. */
    c.ping = ping_returns;
    c.ping_ud = &ping_ret_value;
    ops = make_ops(&c);
    assert_int_equal(do_connect(&ops, &h), 0);
    log_start_level(SHP_LOG_INFO);
    ping_ret_value = -ENOTCONN;
    assert_int_equal(ops.check(ops.ctx, h), -ENOTCONN);
    ping_ret_value = 7;
    assert_int_equal(ops.check(ops.ctx, h), -EIO);
    ping_ret_value = 0;
    assert_int_equal(ops.check(ops.ctx, h), 0);
    log_stop();

    /* No ping on a connection the liveness test already failed. */
    srv_wait_accepted(s, 2);
    srv_do(s, SRV_CLOSE, 1);
    assert_true(wait_readable(shp_tcp_fd(h)) != 0);
    atomic_store(&ping_calls, 0);
    log_start_level(SHP_LOG_INFO);
    assert_int_equal(ops.check(ops.ctx, h), -EPIPE);
    log_stop();
    assert_int_equal(atomic_load(&ping_calls), 0);
    ops.close(ops.ctx, h);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

/* ---- through a pool ----------------------------------------------------------------------- */

/* A pool of one connection over ops that validates it on every hand-out
 * (validate_idle_ns = 0; the reaper moves the idle clock every ms). */
static shp_pool *validating_pool(const shp_ops *ops, const char *name)
{
    shp_config pc;
    shp_config_init(&pc);
    pc.max_size = 1;
    pc.validate_idle_ns = 0;
    pc.reaper_interval_ns = NS_PER_MS; /* the idle clock's resolution */
    pc.name = name;
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &pc, ops), 0);
    return pool;
}

/* The server closes (or resets) the pooled connection while it is idle;
 * the next acquire validates it (validate_idle_ns = 0), finds it dead,
 * closes it and hands out a new, working connection. */
static void pool_replaces_dead_peer(int op)
{
    srv *s = srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
    assert_non_null(s);
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    shp_ops ops = make_ops(&c);
    shp_pool *pool = validating_pool(&ops, "tcpreplace");

    shp_conn *conn;
    assert_int_equal(shp_acquire(pool, &conn, 5 * NS_PER_S), 0);
    int fd = shp_tcp_fd(shp_conn_handle(conn));
    assert_true(fd >= 0);
    assert_true(echo_roundtrip(fd, "first"));
    assert_int_equal(shp_release(conn), 0);
    srv_wait_accepted(s, 1);

    srv_do(s, op, 0);
    /* The pool holds the idle connection (nothing else of the pool touches
     * it: no health interval, no idle timeout this short); wait until the
     * peer's FIN or RST has arrived on it. */
    assert_true(wait_readable(fd) != 0);

    log_start_level(SHP_LOG_INFO);
    shp_stats st;
    bool replaced = false;
    /* The acquire validates only once the pool's idle clock (one tick per
     * reaper pass) has moved past the release: retry until it did. */
    for (int i = 0; i < WAIT_MS && !replaced; i++) {
        assert_int_equal(shp_acquire(pool, &conn, 5 * NS_PER_S), 0);
        assert_int_equal(shp_pool_stats(pool, &st), 0);
        replaced = st.health_failed >= 1;
        if (!replaced) {
            assert_int_equal(shp_release(conn), 0);
            nap_ms(1);
        }
    }
    log_stop();
    assert_true(replaced);
    assert_int_equal(st.health_failed, 1);
    assert_int_equal(st.creations, 2);
    assert_int_equal(st.closed, 1);
    fd = shp_tcp_fd(shp_conn_handle(conn));
    assert_true(echo_roundtrip(fd, "second"));
    assert_int_equal(srv_accepted(s), 2);
    /* one line, the pool's, with the adapter's reason */
    assert_int_equal(log_count("event=check_failed"), 1);
    assert_int_equal(log_count("failed"), 1);
    assert_true(log_has(op == SRV_RESET ? "err=ECONNRESET msg=\"127.0.0.1:"
                                        : "err=EPIPE msg=\"127.0.0.1:"));
    assert_true(log_has(op == SRV_RESET ? ": check: Connection reset by peer\""
                                        : ": check: the peer closed the connection\""));
    assert_int_equal(shp_release(conn), 0);
    assert_int_equal(shp_pool_destroy(pool, 0), 0);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

static void test_pool_replaces_closed(void **state)
{
    (void)state;
    pool_replaces_dead_peer(SRV_CLOSE);
}

static void test_pool_replaces_reset(void **state)
{
    (void)state;
    pool_replaces_dead_peer(SRV_RESET);
}

/* A ping that blocks (a silent server) while an acquire validates the
 * connection: its read timeout (5 s) is capped by the acquire's deadline,
 * so the acquire fails with -ETIMEDOUT at its deadline and the pool closes
 * the connection; the socket's own timeouts are restored after a ping that
 * succeeds under a cap. */
static void test_ping_capped_by_acquire_deadline(void **state)
{
    (void)state;
    srv *s = srv_start_inet(SRV_SILENT, "127.0.0.1", NULL);
    assert_non_null(s);
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    c.read_timeout_ns = 5 * NS_PER_S;
    c.ping = ping_echo;
    shp_ops ops = make_ops(&c);
    shp_pool *pool = validating_pool(&ops, "tcpcap");
    shp_conn *conn;
    assert_int_equal(shp_acquire(pool, &conn, 5 * NS_PER_S), 0);
    assert_int_equal(shp_release(conn), 0);

    const int64_t deadline = 300 * NS_PER_MS;
    log_start_level(SHP_LOG_INFO);
    atomic_store(&ping_calls, 0);
    int rc = 0;
    int64_t took = 0;
    /* Acquires hand the connection out unchecked until the idle clock has
     * moved past the release; the first one that checks it pings. */
    for (int i = 0; i < WAIT_MS && atomic_load(&ping_calls) == 0; i++) {
        int64_t t0 = now_ns();
        rc = shp_acquire(pool, &conn, deadline);
        took = now_ns() - t0;
        if (rc == 0) {
            assert_int_equal(shp_release(conn), 0);
            nap_ms(1);
        }
    }
    log_stop();
    print_message("ping capped: acquire gave %s after %.0f ms (deadline %d ms)\n", shp_err_name(rc),
                  (double)took / NS_PER_MS, (int)(deadline / NS_PER_MS));
    assert_int_equal(atomic_load(&ping_calls), 1);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(took < deadline + 100 * NS_PER_MS);
    shp_stats st;
    assert_int_equal(shp_pool_stats(pool, &st), 0);
    assert_int_equal(st.health_failed, 1);
    assert_int_equal(st.closed, 1);
    assert_true(log_has("event=check_failed"));
    assert_true(log_has("err=ETIMEDOUT msg=\"127.0.0.1:"));
    assert_true(log_has(": ping: timed out at the acquire's deadline\""));
    assert_int_equal(shp_pool_destroy(pool, 0), 0);
    shp_tcp_ops_free(&ops);
    srv_stop(s);

    /* Under a cap that the ping does not reach, the socket's own timeouts
     * come back afterwards (an echo server answers the ping). */
    s = srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
    assert_non_null(s);
    c = cfg_inet("127.0.0.1", s->port);
    c.read_timeout_ns = 5 * NS_PER_S;
    c.write_timeout_ns = 0;
    c.ping = ping_echo;
    ops = make_ops(&c);
    pool = validating_pool(&ops, "tcpcap2");
    assert_int_equal(shp_acquire(pool, &conn, 5 * NS_PER_S), 0);
    int fd = shp_tcp_fd(shp_conn_handle(conn));
    assert_int_equal(shp_release(conn), 0);
    atomic_store(&ping_calls, 0);
    for (int i = 0; i < WAIT_MS && atomic_load(&ping_calls) == 0; i++) {
        assert_int_equal(shp_acquire(pool, &conn, deadline), 0);
        assert_int_equal(shp_release(conn), 0);
        if (atomic_load(&ping_calls) == 0)
            nap_ms(1);
    }
    assert_int_equal(atomic_load(&ping_calls), 1);
    int64_t rt = getopt_timeout_ns(fd, SO_RCVTIMEO), wt = getopt_timeout_ns(fd, SO_SNDTIMEO);
    assert_true(rt >= 4990 * NS_PER_MS && rt <= 5020 * NS_PER_MS);
    assert_int_equal(wt, 0);
    assert_int_equal(shp_pool_destroy(pool, 0), 0);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
}

/* ---- INT64_MAX timeouts ----------------------------------------------------------------- */

/* INT64_MAX is a legal duration: connect, read and write timeouts at
 * INT64_MAX (and an acquire timeout of INT64_MAX) connect, carry requests
 * and run the ping, capped by the acquire's deadline or not, without a
 * signed overflow (the ASan+UBSan build aborts on one); over TCP and a
 * unix socket. */
static void test_timeouts_int64_max(void **state)
{
    (void)state;
    for (int unix_sock = 0; unix_sock < 2; unix_sock++) {
        srv *s = unix_sock ? srv_start_unix(SRV_ECHO) : srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
        assert_non_null(s);
        shp_tcp_config c = unix_sock ? cfg_unix(s->path) : cfg_inet("127.0.0.1", s->port);
        c.connect_timeout_ns = c.read_timeout_ns = c.write_timeout_ns = INT64_MAX;
        c.ping = ping_echo;
        shp_ops ops = make_ops(&c);

        /* The callbacks on their own: no acquire's deadline caps the ping. */
        void *h;
        assert_int_equal(do_connect(&ops, &h), 0);
        int fd = shp_tcp_fd(h);
        /* About 292 years, as the kernel keeps it (read back as a timeval:
         * in ns it would not fit an int64_t). */
        for (int k = 0; k < 2; k++) {
            struct timeval tv;
            socklen_t l = sizeof tv;
            assert_int_equal(getsockopt(fd, SOL_SOCKET, k ? SO_SNDTIMEO : SO_RCVTIMEO, &tv, &l), 0);
            assert_true(tv.tv_sec > 1000000000L);
        }
        assert_true(echo_roundtrip(fd, "int64 max"));
        atomic_store(&ping_calls, 0);
        assert_int_equal(ops.check(ops.ctx, h), 0);
        assert_int_equal(atomic_load(&ping_calls), 1);
        ops.close(ops.ctx, h);

        /* Through a pool that validates every acquire: the ping runs capped
         * by the acquire's deadline (INT64_MAX from now: saturated). */
        shp_config pc;
        shp_config_init(&pc);
        pc.max_size = 1;
        pc.validate_idle_ns = 0;
        pc.reaper_interval_ns = NS_PER_MS; /* the idle clock's resolution */
        pc.name = "tcpmax";
        shp_pool *pool;
        assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);
        atomic_store(&ping_calls, 0);
        for (int i = 0; i < WAIT_MS && atomic_load(&ping_calls) < 2; i++) {
            shp_conn *conn;
            assert_int_equal(shp_acquire(pool, &conn, INT64_MAX), 0);
            assert_true(echo_roundtrip(shp_tcp_fd(shp_conn_handle(conn)), "pooled"));
            assert_int_equal(shp_release(conn), 0);
            if (atomic_load(&ping_calls) < 2)
                nap_ms(1);
        }
        assert_true(atomic_load(&ping_calls) >= 2);
        shp_stats st;
        assert_int_equal(shp_pool_stats(pool, &st), 0);
        assert_int_equal(st.health_failed, 0);
        assert_int_equal(st.creations, 1);
        assert_int_equal(shp_pool_destroy(pool, 0), 0);
        shp_tcp_ops_free(&ops);
        srv_stop(s);
    }
}

/* 8 threads through a pool of 4 real connections to the echo server. */
#define ECHO_THREADS 8
#define ECHO_ROUNDS 400

typedef struct echo_worker {
    shp_pool *pool;
    int id;
    pthread_t thread;
    int ok, bad_reply, acquire_err, last_err;
} echo_worker;

static void *echo_main(void *arg)
{
    echo_worker *w = arg;
    for (int i = 0; i < ECHO_ROUNDS; i++) {
        shp_conn *conn;
        int rc = shp_acquire(w->pool, &conn, 10 * NS_PER_S);
        if (rc) {
            w->acquire_err++;
            w->last_err = rc;
            break; /* a failed worker stops: the test fails fast */
        }
        char msg[64];
        snprintf(msg, sizeof msg, "worker %d round %d payload %08x\n", w->id, i,
                 (unsigned)(w->id * 7919 + i));
        if (echo_roundtrip(shp_tcp_fd(shp_conn_handle(conn)), msg)) {
            w->ok++;
            shp_release(conn);
        } else {
            w->bad_reply++;
            shp_release_broken(conn);
            break;
        }
    }
    return NULL;
}

static void test_pool_echo_threads(void **state)
{
    (void)state;
    int baseline = count_fds();
    srv *s = srv_start_inet(SRV_ECHO, "127.0.0.1", NULL);
    assert_non_null(s);
    shp_tcp_config c = cfg_inet("127.0.0.1", s->port);
    shp_ops ops = make_ops(&c);
    shp_config pc;
    shp_config_init(&pc);
    pc.max_size = 4;
    pc.name = "tcpecho";
    shp_pool *pool;
    assert_int_equal(shp_pool_create(&pool, &pc, &ops), 0);

    echo_worker w[ECHO_THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < ECHO_THREADS; i++) {
        w[i].pool = pool;
        w[i].id = i;
        assert_int_equal(pthread_create(&w[i].thread, NULL, echo_main, &w[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < ECHO_THREADS; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].bad_reply || w[i].acquire_err)
            print_message("worker %d: ok %d bad %d acquire errors %d (last %s)\n", i, w[i].ok,
                          w[i].bad_reply, w[i].acquire_err, shp_err_name(w[i].last_err));
        ok += w[i].ok;
    }
    assert_int_equal(ok, ECHO_THREADS * ECHO_ROUNDS);
    shp_stats st;
    assert_int_equal(shp_pool_stats(pool, &st), 0);
    assert_true(st.creations >= 1 && st.creations <= 4); /* nothing failed: no replacement */
    assert_int_equal(st.acquisitions, ECHO_THREADS * ECHO_ROUNDS);
    assert_int_equal(srv_accepted(s), (int)st.creations);

    assert_int_equal(shp_pool_destroy(pool, 5 * NS_PER_S), 0);
    shp_tcp_ops_free(&ops);
    srv_stop(s);
    shp_quiesce();
    assert_int_equal(count_fds(), baseline);
}

/* Runs after every test, passed or failed: stops the servers a failed
 * test left running and restores the default log sink. */
static int teardown(void **state)
{
    (void)state;
    storm_stop();
    for (int i = 0; i < SRV_LIVE_MAX; i++)
        if (srv_live[i])
            srv_stop(srv_live[i]);
    log_stop();
    return 0;
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
    /* Resolve once so that whatever the resolver keeps open (if anything)
     * is already in the descriptor baseline. */
    struct addrinfo *res = NULL;
    if (getaddrinfo("localhost", "1", NULL, &res) == 0)
        freeaddrinfo(res);

    const struct CMUnitTest tests[] = {
        T(test_config),
        T(test_connect_ipv4_options),
        T(test_options_off),
        T(test_connect_ipv6),
        T(test_connect_hostname),
        T(test_connect_unix),
        T(test_refused_tcp),
        T(test_refused_unix),
        T(test_resolve_failure),
        T(test_unknown_host_fails_fast),
        T(test_connect_timeout_tcp),
        T(test_connect_timeout_unix),
        T(test_connect_timeout_unix_signals),
        T(test_read_timeout_ping),
        T(test_write_timeout),
        T(test_check_states),
        T(test_check_unix_peer_closed),
        T(test_check_ping),
        T(test_pool_replaces_closed),
        T(test_pool_replaces_reset),
        T(test_ping_capped_by_acquire_deadline),
        T(test_pool_echo_threads),
        T(test_timeouts_int64_max),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    shp_quiesce();
    return failed;
}
