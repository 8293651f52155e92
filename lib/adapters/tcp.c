/* tcp.c - the TCP / unix-socket adapter (include/shardpool/adapters/tcp.h). */
#include "adapters/common.h"
#include "adapters/net.h"

#include <shardpool/adapters/tcp.h>
#include <shardpool/error.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define TCP_CTX_MAGIC  0x74637078u /* "tcpx" */
#define TCP_CONN_MAGIC 0x7463706eu /* "tcpn" */
#define TCP_DEAD_MAGIC 0x64656164u /* "dead": closed, for a late shp_tcp_fd */

/* Kernel limits of the keepalive options (include/net/tcp.h). */
#define TCP_KEEP_SECS_MAX 32767
#define TCP_KEEPCNT_MAX   127

/* The ops' ctx: a private, read-only copy of the config, so callbacks may
 * run concurrently on any number of threads. */
struct tcp_ctx {
    uint32_t magic;
    shp_tcp_config cfg;    /* string fields point at the copies below */
    char *host, *port, *name;
    char *target;          /* "host:port", "[v6]:port" or "unix:path", for logs */
    struct sockaddr_un sun;
    socklen_t sun_len;     /* 0 for a TCP target */
};

/* The connection handle. */
struct tcp_conn {
    uint32_t magic;
    int fd;
};

/* ---- small helpers ------------------------------------------------------- */

/* Records why a connect or check failed (the pool logs it, once) and
 * returns err.  addr: the resolved address tried, shown when it is not the
 * target itself (a host name); msg NULL: err's text. */
static int failed(const struct tcp_ctx *t, int err, const char *step, const char *addr,
                  const char *msg)
{
    return shp__adapter_failed_at(err, t->target, addr, step, msg);
}

static int setopt_int(int fd, int level, int opt, int val)
{
    return setsockopt(fd, level, opt, &val, sizeof val) == 0 ? 0 : -errno;
}

/* The options of a TCP socket, set before connect (shp__net_target's
 * sockopts; ud is the shp_tcp_config).  Returns 0 or the failing
 * setsockopt's error with *step naming the option. */
static int set_tcp_options(int fd, const void *ud, const char **step)
{
    const shp_tcp_config *c = ud;
    int err = 0;
    if (c->nodelay && (err = setopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1))) {
        *step = "TCP_NODELAY";
        return err;
    }
    if (!c->keepalive)
        return 0;
    if ((err = setopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1)))
        *step = "SO_KEEPALIVE";
    else if (c->keepidle_s > 0 && (err = setopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, c->keepidle_s)))
        *step = "TCP_KEEPIDLE";
    else if (c->keepintvl_s > 0 &&
             (err = setopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, c->keepintvl_s)))
        *step = "TCP_KEEPINTVL";
    else if (c->keepcnt > 0 && (err = setopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT, c->keepcnt)))
        *step = "TCP_KEEPCNT";
    return err;
}

/* Read and write timeouts of a connected socket (any int64_t saturates:
 * shp__ns_to_timeval). */
static int set_io_timeouts(const shp_tcp_config *c, int fd, const char **step)
{
    int err = shp__set_sock_timeout(fd, SO_RCVTIMEO, c->read_timeout_ns);
    if (err) {
        *step = "SO_RCVTIMEO";
        return err;
    }
    if ((err = shp__set_sock_timeout(fd, SO_SNDTIMEO, c->write_timeout_ns)))
        *step = "SO_SNDTIMEO";
    return err;
}

/* ---- connect ------------------------------------------------------------- */

/* host:port (every resolved address in turn) or the unix socket, within
 * connect_timeout_ns capped by the acquire's deadline (shp__net_connect),
 * then the I/O timeouts.  Returns 0 with *out set, or a negative errno
 * with the detail set. */
static int connect_target(const struct tcp_ctx *t, int *out)
{
    shp__net_target nt = {
        .host = t->sun_len ? NULL : t->host, .port = t->port,
        .sun = &t->sun, .sun_len = t->sun_len,
        .timeout_ns = t->cfg.connect_timeout_ns,
        .sockopts = t->sun_len ? NULL : set_tcp_options, .sockopts_ud = &t->cfg,
        .log_name = t->name, .log_target = t->target,
    };
    shp__net_conn nc;
    int err = shp__net_connect(&nt, &nc);
    if (!err && (err = set_io_timeouts(&t->cfg, nc.fd, &nc.step)))
        close(nc.fd);
    if (err)
        return failed(t, err, nc.step, nc.addr, nc.msg);
    if (nc.addr[0])
        shp__log(SHP_LOG_DEBUG, t->name, "event=connected target=%s addr=%s fd=%d", t->target,
                 nc.addr, nc.fd);
    else
        shp__log(SHP_LOG_DEBUG, t->name, "event=connected target=%s fd=%d", t->target, nc.fd);
    *out = nc.fd;
    return 0;
}

/* ---- the callbacks --------------------------------------------------------- */

static int tcp_connect(void *ctx, void **handle)
{
    const struct tcp_ctx *t = ctx;
    struct tcp_conn *c = malloc(sizeof *c);
    if (!c)
        return failed(t, -ENOMEM, "alloc", NULL, NULL);
    int fd = -1;
    int err = connect_target(t, &fd);
    if (err) {
        free(c);
        return err;
    }
    c->magic = TCP_CONN_MAGIC;
    c->fd = fd;
    *handle = c;
    return 0;
}

static void tcp_close(void *ctx, void *handle)
{
    (void)ctx;
    struct tcp_conn *c = handle;
    if (!c)
        return;
    c->magic = TCP_DEAD_MAGIC;
    close(c->fd); /* on Linux the fd is released even if close fails */
    free(c);
}

/* The user's ping, its socket timeouts capped by the deadline of the
 * acquire validating the connection (then restored): a ping that hits that
 * deadline is -ETIMEDOUT.  Returns 0 or a negative errno, with the detail
 * set. */
static int run_ping(const struct tcp_ctx *t, int fd)
{
    bool rcap, wcap;
    int64_t rt = shp__hook_timeout_ns(t->cfg.read_timeout_ns, &rcap);
    int64_t wt = shp__hook_timeout_ns(t->cfg.write_timeout_ns, &wcap);
    if (rt < 0 || wt < 0)
        return failed(t, -ETIMEDOUT, "check", NULL,
                      "the acquire's deadline passed before the ping");
    int err = 0;
    if ((rcap && (err = shp__set_sock_timeout(fd, SO_RCVTIMEO, rt))) ||
        (wcap && (err = shp__set_sock_timeout(fd, SO_SNDTIMEO, wt))))
        return failed(t, err, "check", NULL, "could not cap the ping's timeouts");
    int r = t->cfg.ping(fd, t->cfg.ping_ud);
    r = r > 0 ? -EIO : r;
    if ((rcap || wcap) && (r == -EAGAIN || r == -EWOULDBLOCK || r == -ETIMEDOUT))
        return failed(t, -ETIMEDOUT, "ping", NULL, "timed out at the acquire's deadline");
    if (r)
        return failed(t, r, "ping", NULL, NULL);
    if ((rcap && (err = shp__set_sock_timeout(fd, SO_RCVTIMEO, t->cfg.read_timeout_ns))) ||
        (wcap && (err = shp__set_sock_timeout(fd, SO_SNDTIMEO, t->cfg.write_timeout_ns))))
        return failed(t, err, "check", NULL, "could not restore the socket timeouts");
    return 0;
}

/* Liveness without blocking: an idle pooled connection must have nothing
 * to read.  End of stream means the peer closed; bytes mean the peer spoke
 * out of turn (an error or goodbye message, or a desynchronised protocol);
 * an error is a reset or a keepalive timeout.  Then the user's ping.  A
 * failure is not logged here: the pool logs it, with the detail set. */
static int tcp_check(void *ctx, void *handle)
{
    const struct tcp_ctx *t = ctx;
    const struct tcp_conn *c = handle;
    char byte;
    ssize_t n;
    do
        n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);

    if (n == 0)
        return failed(t, -EPIPE, "check", NULL, "the peer closed the connection");
    if (n > 0)
        return failed(t, -EPROTO, "check", NULL, "unread data on an idle connection");
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        return failed(t, -errno, "check", NULL, NULL);
    return t->cfg.ping ? run_ping(t, c->fd) : 0;
}

/* ---- public API -------------------------------------------------------------- */

void shp_tcp_config_init(shp_tcp_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->connect_timeout_ns = 5 * SHP_NS_PER_S;
    cfg->nodelay = true;
    cfg->keepalive = true;
    cfg->keepidle_s = 60;
    cfg->keepintvl_s = 10;
    cfg->keepcnt = 6;
}

static int bad_config(const shp_tcp_config *cfg, int err, const char *field, const char *why)
{
    return shp__adapter_bad_config(cfg && cfg->name ? cfg->name : "tcp", err, field, why);
}

/* Why port_or_service is neither a port number (digits only, 1..65535) nor
 * a service name (a letter, then letters, digits, '-', '_' or '.'), or NULL.
 * getaddrinfo would otherwise read "99999" as port 34463 (modulo 65536) and
 * "+80", " 80" or "-1" as numbers too. */
static const char *bad_port(const char *s)
{
    size_t digits = strspn(s, "0123456789");
    if (s[digits] == '\0') {
        unsigned long v = 0;
        for (size_t i = 0; i < digits && v <= 65535; i++)
            v = v * 10 + (unsigned long)(s[i] - '0');
        return v >= 1 && v <= 65535 ? NULL : "port number outside 1..65535";
    }
    if (digits > 0)
        return "not a port number: junk after the digits";
    bool letter = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z');
    if (!letter || s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-_.")] != '\0')
        return "neither a port number (1..65535) nor a service name";
    return NULL;
}

static int validate(const shp_tcp_config *cfg)
{
    bool inet = cfg->host || cfg->port_or_service;
    if (cfg->unix_path && inet)
        return bad_config(cfg, -EINVAL, "unix_path", "both unix_path and host/port given");
    if (!cfg->unix_path && !(cfg->host && cfg->port_or_service))
        return bad_config(cfg, -EINVAL, "host", "need host and port_or_service, or unix_path");
    if (cfg->unix_path) {
        size_t len = strlen(cfg->unix_path);
        if (len == 0 || (cfg->unix_path[0] == '@' && len == 1))
            return bad_config(cfg, -EINVAL, "unix_path", "empty");
        /* A path needs its NUL inside sun_path; an abstract name does not
         * (its '@' becomes the leading NUL). */
        if (len >= sizeof(((struct sockaddr_un *)0)->sun_path) + (cfg->unix_path[0] == '@'))
            return bad_config(cfg, -ENAMETOOLONG, "unix_path", "longer than sockaddr_un allows");
    } else if (!cfg->host[0] || !cfg->port_or_service[0]) {
        return bad_config(cfg, -EINVAL, "host", "empty host or port_or_service");
    } else if (bad_port(cfg->port_or_service)) {
        char why[128];
        snprintf(why, sizeof why, "'%.32s': %s", cfg->port_or_service,
                 bad_port(cfg->port_or_service));
        for (char *q = why + 1; *q; q++)
            if (*q == '"')
                *q = '\'';
        return bad_config(cfg, -EINVAL, "port_or_service", why);
    }
    if (cfg->connect_timeout_ns < 0)
        return bad_config(cfg, -EINVAL, "connect_timeout_ns", "negative");
    if (cfg->read_timeout_ns < 0)
        return bad_config(cfg, -EINVAL, "read_timeout_ns", "negative");
    if (cfg->write_timeout_ns < 0)
        return bad_config(cfg, -EINVAL, "write_timeout_ns", "negative");
    if (cfg->keepidle_s < 0 || cfg->keepidle_s > TCP_KEEP_SECS_MAX)
        return bad_config(cfg, -EINVAL, "keepidle_s", "outside 0..32767");
    if (cfg->keepintvl_s < 0 || cfg->keepintvl_s > TCP_KEEP_SECS_MAX)
        return bad_config(cfg, -EINVAL, "keepintvl_s", "outside 0..32767");
    if (cfg->keepcnt < 0 || cfg->keepcnt > TCP_KEEPCNT_MAX)
        return bad_config(cfg, -EINVAL, "keepcnt", "outside 0..127");
    return 0;
}

static void ctx_free(struct tcp_ctx *t)
{
    if (!t)
        return;
    t->magic = 0;
    free(t->host);
    free(t->port);
    free(t->name);
    free(t->target);
    free(t);
}

int shp_tcp_ops(shp_ops *ops, const shp_tcp_config *cfg)
{
    if (!ops || !cfg)
        return bad_config(cfg, -EINVAL, ops ? "cfg" : "ops", "NULL");
    int err = validate(cfg);
    if (err)
        return err;

    struct tcp_ctx *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    bool oom = false;
    t->cfg = *cfg;
    t->host = shp__dup_or_null(cfg->host, &oom);
    t->port = shp__dup_or_null(cfg->port_or_service, &oom);
    t->name = shp__dup_or_null(cfg->name ? cfg->name : "tcp", &oom);
    const char *ua = cfg->unix_path;
    bool v6 = t->host && strchr(t->host, ':');
    int n = ua ? snprintf(NULL, 0, "unix:%s", ua)
               : snprintf(NULL, 0, v6 ? "[%s]:%s" : "%s:%s", cfg->host, cfg->port_or_service);
    t->target = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (oom || !t->target) {
        ctx_free(t);
        return -ENOMEM;
    }
    if (ua)
        snprintf(t->target, (size_t)n + 1, "unix:%s", ua);
    else
        snprintf(t->target, (size_t)n + 1, v6 ? "[%s]:%s" : "%s:%s", t->host, t->port);
    if (ua) {
        size_t len = strlen(ua);
        t->sun.sun_family = AF_UNIX;
        if (ua[0] == '@') { /* abstract: leading NUL, length counts the name only */
            memcpy(t->sun.sun_path + 1, ua + 1, len - 1);
            t->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        } else {
            memcpy(t->sun.sun_path, ua, len + 1);
            t->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        }
    }
    t->cfg.host = t->host;
    t->cfg.port_or_service = t->port;
    t->cfg.unix_path = NULL; /* kept as t->sun */
    t->cfg.name = t->name;
    t->magic = TCP_CTX_MAGIC;

    *ops = (shp_ops){ .connect = tcp_connect, .close = tcp_close, .check = tcp_check,
                      .reset = NULL, .ctx = t };
    return 0;
}

void shp_tcp_ops_free(shp_ops *ops)
{
    if (!ops || ops->connect != tcp_connect)
        return;
    struct tcp_ctx *t = ops->ctx;
    if (t && t->magic == TCP_CTX_MAGIC)
        ctx_free(t);
    memset(ops, 0, sizeof *ops);
}

int shp_tcp_fd(const void *handle)
{
    const struct tcp_conn *c = handle;
    if (!c)
        return -EINVAL;
    if (c->magic != TCP_CONN_MAGIC)
        return -EBADF;
    return c->fd;
}
