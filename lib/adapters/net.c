/* net.c - socket helpers shared by the adapters (lib/adapters/net.h). */
#include "adapters/net.h"
#include "adapters/common.h"

#include <shardpool/error.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int shp__poll_ms_left(int64_t deadline, int64_t now)
{
    if (deadline < 0)
        return -1;
    if (deadline <= now)
        return 0;
    int64_t left = deadline - now; /* > 0, no overflow: both are >= 0 */
    int64_t ms = left / 1000000 + (left % 1000000 != 0);
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

struct timeval shp__ns_to_timeval(int64_t ns)
{
    if (ns <= 0)
        return (struct timeval){ 0, 0 };
    int64_t us = ns / 1000 + (ns % 1000 != 0);
    return (struct timeval){ .tv_sec = (time_t)(us / 1000000),
                             .tv_usec = (suseconds_t)(us % 1000000) };
}

int shp__set_sock_timeout(int fd, int opt, int64_t ns)
{
    struct timeval tv = shp__ns_to_timeval(ns);
    return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv) == 0 ? 0 : -errno;
}

int shp__wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t now = shp__now_ns();
        if (deadline >= 0 && now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, shp__poll_ms_left(deadline, now));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
        /* Timed out (poll() rounds up to whole ms: at or after the
         * deadline), or a signal: the clock decides, and a wait that is
         * not over goes on with the time left. */
    }
}

int shp__gai_errno(int g, int sys_errno)
{
    switch (g) {
    case EAI_NONAME:
    case EAI_SERVICE:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENXIO;        /* no such host or service */
    case EAI_AGAIN:
        return -EHOSTUNREACH; /* the name cannot be resolved now */
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -EIO;
    default:
        return -EIO;
    }
}

static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN], serv[16];
    if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, outlen, "?");
    else if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, serv);
    else
        snprintf(out, outlen, "%s:%s", host, serv);
}

/* Non-blocking connect of fd (O_NONBLOCK set), waited for until deadline.
 * Returns 0, -ETIMEDOUT or the connect error. */
static int connect_until(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    if (connect(fd, sa, len) == 0)
        return 0;
    /* EINTR: the connect goes on asynchronously, as with EINPROGRESS. */
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    int err = shp__wait_fd(fd, POLLOUT, deadline);
    if (err)
        return err;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        return -errno;
    return -soerr;
}

/* One resolved address: socket, options, connect, back to blocking.
 * Returns 0 with *fd_out set, or an error with out->step. */
static int connect_addr(const shp__net_target *t, const struct addrinfo *ai, shp__net_conn *out,
                        int *fd_out)
{
    if (out->deadline >= 0 && shp__now_ns() >= out->deadline) {
        out->step = "connect"; /* no SYN for a connect that cannot be waited for */
        return -ETIMEDOUT;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        out->step = "socket";
        return -errno;
    }
    int err = t->sockopts ? t->sockopts(fd, t->sockopts_ud, &out->step) : 0;
    if (!err && (err = connect_until(fd, ai->ai_addr, ai->ai_addrlen, out->deadline)))
        out->step = "connect";
    if (!err) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
            err = -errno;
            out->step = "fcntl";
        }
    }
    if (err) {
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

static int connect_inet(const shp__net_target *t, shp__net_conn *out)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_protocol = IPPROTO_TCP };
    struct addrinfo *res = NULL;
    out->step = "resolve";
    int g = getaddrinfo(t->host, t->port, &hints, &res);
    if (g != 0) {
        out->msg = gai_strerror(g);
        return shp__gai_errno(g, errno);
    }
    out->deadline = shp__connect_deadline(t->timeout_ns);
    int err = -EHOSTUNREACH;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        format_addr(ai->ai_addr, ai->ai_addrlen, out->addr, sizeof out->addr);
        err = connect_addr(t, ai, out, &out->fd);
        if (err == 0)
            break;
        if (err == -ETIMEDOUT || err == -EMFILE || err == -ENFILE || err == -ENOMEM ||
            err == -ENOBUFS || !ai->ai_next)
            break;
        shp__log(SHP_LOG_DEBUG, t->log_name,
                 "event=connect_attempt_failed target=%s addr=%s step=%s err=%s", t->log_target,
                 out->addr, out->step, shp_err_name(err));
    }
    freeaddrinfo(res);
    return err;
}

/* A unix-domain connect completes at once except when the listener's
 * backlog is full; the kernel then waits for room for up to SO_SNDTIMEO
 * (EAGAIN when it expires), and a non-blocking connect would fail with
 * EAGAIN instead of giving something to poll for.  So: blocking, with
 * SO_SNDTIMEO set to the time left before each try. */
static int connect_unix(const shp__net_target *t, shp__net_conn *out)
{
    out->deadline = shp__connect_deadline(t->timeout_ns);
    out->step = "socket";
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err;
    for (;;) {
        if (out->deadline >= 0) {
            int64_t left = out->deadline - shp__now_ns();
            if (left <= 0) {
                out->step = "connect";
                err = -ETIMEDOUT;
                break;
            }
            if ((err = shp__set_sock_timeout(fd, SO_SNDTIMEO, left))) {
                out->step = "SO_SNDTIMEO";
                break;
            }
        }
        out->step = "connect";
        if (connect(fd, (const struct sockaddr *)t->sun, t->sun_len) == 0) {
            err = 0;
            break;
        }
        err = -errno;
        if (err == -EINTR)
            continue; /* not connected: a signal ended the wait for room */
        if (err == -EISCONN)
            err = 0;
        else if (err == -EAGAIN || err == -EWOULDBLOCK)
            err = -ETIMEDOUT;
        break;
    }
    if (!err && out->deadline >= 0 && (err = shp__set_sock_timeout(fd, SO_SNDTIMEO, 0)))
        out->step = "SO_SNDTIMEO";
    if (err) {
        close(fd);
        if (err == -ENOENT) { /* no socket file: no server there (yet) */
            out->msg = "no socket file (no server listening)";
            return -ECONNREFUSED;
        }
        return err;
    }
    out->fd = fd;
    return 0;
}

int shp__net_connect(const shp__net_target *t, shp__net_conn *out)
{
    out->fd = -1;
    out->deadline = -1;
    out->step = "connect";
    out->msg = NULL;
    out->addr[0] = '\0';
    return t->host ? connect_inet(t, out) : connect_unix(t, out);
}
