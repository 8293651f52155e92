/*
 * net.h - socket helpers shared by the adapters (internal; net.c).
 *
 * Every wait here is bounded by an absolute CLOCK_MONOTONIC deadline in ns
 * (< 0: none) and survives signals: a call interrupted by one (EINTR, also
 * under handlers installed without SA_RESTART) is retried with the time
 * then left, so no EINTR comes out and no signal extends a wait.  Every
 * duration may be INT64_MAX: conversions saturate instead of overflowing.
 * All functions are thread-safe (no shared state).
 */
#ifndef SHP_ADAPTERS_NET_H
#define SHP_ADAPTERS_NET_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "util.h" /* SHP_ADAPTER_API */

/* The poll() timeout for what is left from now until deadline, in ms
 * rounded up (a wait never ends before the deadline), at most INT_MAX;
 * -1 (no timeout) when deadline < 0; 0 when it has passed. */
int shp__poll_ms_left(int64_t deadline, int64_t now);

/* ns as a socket timeout (SO_RCVTIMEO, SO_SNDTIMEO): rounded up to whole
 * microseconds, since a zero timeval means "no timeout"; ns <= 0 gives the
 * zero timeval (none).  Any int64_t, INT64_MAX included, converts without
 * overflow (the kernel reads anything beyond its range as "none"). */
SHP_ADAPTER_API struct timeval shp__ns_to_timeval(int64_t ns);

/* Sets SO_RCVTIMEO or SO_SNDTIMEO (opt) of fd to ns (0: none), as
 * shp__ns_to_timeval converts it.  Returns 0 or a negative errno. */
int shp__set_sock_timeout(int fd, int opt, int64_t ns);

/* Waits until fd reports one of events (or POLLERR/POLLHUP, which the
 * caller's next read or write turns into its error) or deadline passes.
 * Signals do not end the wait early nor late: poll() is called again with
 * the time left.  A deadline already past is -ETIMEDOUT without a poll:
 * nothing succeeds after its deadline.
 * Returns 0 (ready), -ETIMEDOUT, or poll()'s error (-ENOMEM, ...). */
SHP_ADAPTER_API int shp__wait_fd(int fd, short events, int64_t deadline);

/* getaddrinfo's error g as a negative errno: -ENXIO for a name or service
 * that does not exist (permanent: the pool does not retry it),
 * -EHOSTUNREACH for a resolver that cannot answer now (retried), -ENOMEM,
 * sys_errno for EAI_SYSTEM, else -EIO. */
int shp__gai_errno(int g, int sys_errno);

/* What shp__net_connect connects to. */
typedef struct shp__net_target {
    /* host and port (numeric or names, resolved with getaddrinfo, every
     * address tried in turn), or, when host is NULL, the unix socket
     * sun of sun_len bytes. */
    const char *host;
    const char *port;
    const struct sockaddr_un *sun;
    socklen_t sun_len;
    /* The connect timeout (0 = none), counted from after name resolution
     * and capped by the deadline of the shp_acquire the caller serves
     * (shp__connect_deadline). */
    int64_t timeout_ns;
    /* Called on each new TCP socket before its connect, or NULL: returns 0
     * or a negative errno with *step naming the option that failed. */
    int (*sockopts)(int fd, const void *ud, const char **step);
    const void *sockopts_ud;
    /* For the debug line of each address that failed (event=
     * connect_attempt_failed): the adapter's pool name and the target as
     * logs show it.  Never a secret. */
    const char *log_name;
    const char *log_target;
} shp__net_target;

/* What shp__net_connect made, or why it failed. */
typedef struct shp__net_conn {
    int fd;             /* the connected socket, blocking, close-on-exec
                           (owned by the caller); -1 on failure */
    int64_t deadline;   /* the connect deadline used (-1: none): a
                           handshake that follows may keep to it */
    const char *step;   /* on failure: "resolve", "socket", "connect",
                           "fcntl", "SO_SNDTIMEO" or a sockopts step */
    const char *msg;    /* on failure: a static message, or NULL for the
                           errno's own text */
    char addr[INET6_ADDRSTRLEN + 24]; /* the last address tried ("[::1]:80",
                                         "10.0.0.5:80"); "" if none (unix) */
} shp__net_conn;

/* Connects to t within its timeout.  TCP: a non-blocking connect waited
 * for in poll() (shp__wait_fd) and read back with SO_ERROR; an address
 * that fails passes to the next one, except on a timeout or a shortage of
 * descriptors, buffers or memory.  Unix: a blocking connect whose wait for
 * room in a full backlog is bounded by SO_SNDTIMEO set to the time left
 * (a non-blocking one could not be waited for), restarted after a signal;
 * SO_SNDTIMEO is cleared afterwards.  The socket is left blocking with no
 * I/O timeouts: the caller sets its own.
 * Returns 0 with out->fd set, or a negative errno with out->step (and
 * out->msg, out->addr): shp__gai_errno's for a name that fails to resolve,
 * -ETIMEDOUT when the deadline passed (also a unix backlog that stayed
 * full), -ECONNREFUSED (also a unix path with no socket file: no server
 * there yet), or the failing call's errno. */
SHP_ADAPTER_API int shp__net_connect(const shp__net_target *t, shp__net_conn *out);

#endif
