/*
 * shardpool/adapters/tcp.h - a ready shp_ops for plain TCP and unix-domain
 * stream sockets.
 *
 * The adapter connects to host:port (numeric IPv4, numeric IPv6 or a host
 * name, every resolved address tried in turn) or to a unix socket path, with
 * a connect timeout, TCP_NODELAY, TCP keepalive and read/write timeouts.  Its
 * health check finds, without blocking, a peer that closed or reset the
 * connection, and then runs an optional user ping.  Connections need no
 * cleanup on release (ops.reset is NULL).
 *
 *   shp_tcp_config tc;
 *   shp_tcp_config_init(&tc);
 *   tc.host = "db.internal";
 *   tc.port_or_service = "7000";
 *   tc.read_timeout_ns = tc.write_timeout_ns = 2 * 1000000000LL;
 *
 *   shp_ops ops;
 *   shp_pool *pool;
 *   if (shp_tcp_ops(&ops, &tc) == 0 && shp_pool_create(&pool, NULL, &ops) == 0) {
 *       shp_conn *c;
 *       if (shp_acquire(pool, &c, -1) == 0) {
 *           int fd = shp_tcp_fd(shp_conn_handle(c));
 *           ... send / recv on fd ...
 *           shp_release(c);          (or shp_release_broken on an I/O error)
 *       }
 *       shp_pool_destroy(pool, -1);
 *   }
 *   shp_tcp_ops_free(&ops);
 *
 * Synchronization: the ops made by shp_tcp_ops may be used by any number of
 * pools and threads at once (its ctx is read-only).  A connection's fd
 * belongs to whoever holds the connection: the borrower between
 * shp_acquire and shp_release, the pool otherwise.
 *
 * Errors are 0 or negative errno values.  A failed connect or check is not
 * logged by the adapter: it records why with shp_set_error_detail
 * ("<target>: <step>: <reason>", e.g. "db.internal:7000 ([::1]:7000):
 * connect: Connection refused"), which the pool's one log line for the
 * failure, shp_pool_last_error and shp_acquire_last_error carry.  A connect
 * error is returned by shp_acquire unchanged:
 *   -ENXIO         the host or service name does not resolve (not retried)
 *   -EHOSTUNREACH  the resolver cannot answer now (retried), or no route
 *   -ECONNREFUSED  nothing listens (also a unix socket path with no socket
 *                  file: no server there yet)
 *   -ETIMEDOUT     connect_timeout_ns or the acquire's deadline passed
 *   others         the failing system call's errno
 * The health check's ping runs with its read and write timeouts capped by
 * the deadline of the acquire that validates the connection (then
 * restored); a ping that hits that deadline fails the check with
 * -ETIMEDOUT, and the pool closes the connection.
 * Signals: the connect's waits (poll() for a TCP connect, the kernel's
 * wait for room in a full unix backlog) go on after a signal with the time
 * then left, also under handlers installed without SA_RESTART, so a signal
 * neither stretches the connect timeout nor makes a callback return
 * -EINTR.
 */
#ifndef SHARDPOOL_ADAPTERS_TCP_H
#define SHARDPOOL_ADAPTERS_TCP_H

#include <stdbool.h>
#include <stdint.h>

#include <shardpool/common.h>
#include <shardpool/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shp_tcp_config {
    /* Where to connect: host and port_or_service, or unix_path (not both). */
    const char *host;             /* "10.0.0.5", "::1", "db.internal" */
    const char *port_or_service;  /* "5432" (digits only, 1..65535) or a
                                     service name ("http", resolved at
                                     connect); "99999", "+80", "80x" are
                                     refused by shp_tcp_ops */
    const char *unix_path;        /* a socket file; a leading '@' names the
                                     Linux abstract namespace */
    /* Timeouts; 0 = none; any value up to INT64_MAX (no overflow: a
     * timeout that long is kept as the kernel's longest). */
    int64_t connect_timeout_ns;   /* bounds the whole connect (every address
                                     tried) but not name resolution, which
                                     follows the resolver's own timeouts
                                     (resolv.conf); default 5 s */
    int64_t read_timeout_ns;      /* SO_RCVTIMEO: a recv that waits this long
                                     fails with EAGAIN; default 0 */
    int64_t write_timeout_ns;     /* SO_SNDTIMEO, likewise for send; default 0 */
    /* TCP options (ignored for unix sockets). */
    bool nodelay;                 /* TCP_NODELAY; default true */
    bool keepalive;               /* SO_KEEPALIVE; default true */
    int keepidle_s;               /* TCP_KEEPIDLE, 0..32767 (0 = system
                                     default); default 60 */
    int keepintvl_s;              /* TCP_KEEPINTVL, 0..32767; default 10 */
    int keepcnt;                  /* TCP_KEEPCNT, 0..127; default 6 */
    /* Optional ping, run by the health check after the liveness test, on
     * the blocking socket (so bounded only by the read and write timeouts:
     * set them when a ping is used).  Returns 0 if healthy, else a negative
     * errno value (a positive value is reported as -EIO).  Called from the
     * pool's threads, concurrently for different connections; must leave no
     * unread bytes behind; should send with MSG_NOSIGNAL (a write to a
     * closed socket otherwise raises SIGPIPE).  The socket timeouts are
     * set once, before the call: a ping that retries a recv or send
     * interrupted by a signal (EINTR) gets the full timeout again, so
     * under frequent signals it should bound its retries itself, e.g. by
     * waiting in poll() until shp_connect_deadline_ns() (the acquire's
     * deadline; -1: none) or a deadline of its own. */
    int (*ping)(int fd, void *ud);
    void *ping_ud;
    /* For log lines ("pool=<name>"); copied; NULL = "tcp". */
    const char *name;
} shp_tcp_config;

/* Fills cfg with the defaults above (no target: set host and
 * port_or_service, or unix_path).  Does nothing if cfg is NULL.
 * Thread-safe. */
SHP_API void shp_tcp_config_init(shp_tcp_config *cfg);

/* Fills *ops with the TCP adapter: connect, close and check as described
 * above, reset NULL, and a ctx holding a private copy of *cfg (strings
 * included: cfg may be freed once this returns).
 * Returns 0; -EINVAL if ops or cfg is NULL, if neither a host and port nor a
 * unix path is given or both are, if port_or_service is neither a port
 * number in 1..65535 (digits only: no sign, blank or trailing junk) nor a
 * service name (a letter first), if a timeout is negative or a keepalive
 * setting is out of range (each logged, level error, event=invalid_config,
 * naming the field); -ENAMETOOLONG if unix_path does not fit a
 * sockaddr_un; -ENOMEM.  On error *ops is left untouched.  Thread-safe.
 * Ownership: the caller owns the ctx and frees it with shp_tcp_ops_free
 * once no pool uses the ops any more (after shp_pool_destroy returned 0). */
SHP_API int shp_tcp_ops(shp_ops *ops, const shp_tcp_config *cfg);

/* Frees the ctx that shp_tcp_ops put in *ops and zeroes *ops.  Does nothing
 * if ops is NULL or was not filled by shp_tcp_ops (a zeroed shp_ops is
 * fine, so it may be called on every exit path).  Not concurrently with any
 * use of *ops or of a pool made with it. */
SHP_API void shp_tcp_ops_free(shp_ops *ops);

/* The socket of a connection made by the adapter (shp_conn_handle of a
 * borrowed connection), >= 0; -EINVAL if handle is NULL; -EBADF if handle
 * does not carry the adapter's mark (a best-effort check against handles
 * made by other ops; handle must still point to live memory).  The fd stays
 * owned by the connection: use it while the connection is borrowed, never
 * close it (release the connection with shp_release_broken instead).
 * Thread-safe. */
SHP_API int shp_tcp_fd(const void *handle);

#ifdef __cplusplus
}
#endif
#endif
