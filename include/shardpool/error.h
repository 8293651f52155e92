/*
 * shardpool/error.h - error codes and their names.
 *
 * Every shardpool function that can fail returns 0 on success or a negative
 * errno value.  The pool-specific meanings are listed in SHP_ERRNO_MAP; any
 * other negative errno value (for example one returned by a user's connect
 * callback) is passed through unchanged and described by strerror().
 *
 * Permanent connect failures: the adapters (shardpool/adapters/) return
 * these four when retrying cannot help, and the pool then fails the
 * acquire at once, without retries; the backend's own message is in
 * shp_acquire_last_error() and shp_pool_last_error():
 *   -EACCES           authentication or permission refused (bad or missing
 *                     password, no pg_hba.conf entry, WRONGPASS, NOAUTH,
 *                     an ACL that forbids a command the adapter needs)
 *   -ENOENT           the database or user does not exist (PostgreSQL
 *                     database or role; Redis db index out of range)
 *   -EPROTONOSUPPORT  the backend lacks a protocol the configuration
 *                     requires (sslmode=require against a server without TLS)
 *   -ENXIO            the host name (or service name) does not resolve
 * Transient failures (refused, timed out, unreachable, reset, a temporary
 * DNS failure as -EHOSTUNREACH, -EIO) are retried; see shp_config.
 */
#ifndef SHARDPOOL_ERROR_H
#define SHARDPOOL_ERROR_H

#include <shardpool/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, errno, text): the errors shardpool itself returns, with what they
 * mean for a pool.  One table generates shp_strerror() and shp_err_name(). */
#define SHP_ERRNO_MAP(X)                                                        \
    X(EINVAL,    "invalid argument or configuration")                          \
    X(ENOMEM,    "out of memory")                                              \
    X(ETIMEDOUT, "timed out waiting for a connection")                         \
    X(EAGAIN,    "no connection available without waiting")                   \
    X(ESHUTDOWN, "pool is shut down")                                          \
    X(EALREADY,  "connection already released")                                \
    X(EXDEV,     "connection belongs to another pool")                         \
    X(EBADF,     "not a shardpool connection handle")                          \
    X(EBUSY,     "connections still borrowed at the drain deadline")           \
    X(ECANCELED, "connection closed by the pool")                              \
    X(EIO,       "I/O error with the backend (see shp_acquire_last_error)")   \
    X(EHOSTDOWN, "backend unavailable: the pool's circuit breaker is open")   \
    X(EACCES,    "access denied: the backend refused the credentials or permission") \
    X(ENOENT,    "not found: the backend has no such database or user")       \
    X(EPROTONOSUPPORT, "the backend lacks a protocol the configuration requires (TLS)") \
    X(ENXIO,     "no such host or service: the name does not resolve")

/* Returns a static, human-readable description of err (a negative errno
 * value, or 0).  Never returns NULL.  Thread-safe. */
SHP_API const char *shp_strerror(int err);

/* Returns the symbolic name of err ("ETIMEDOUT"), "OK" for 0, or "UNKNOWN".
 * Never returns NULL.  Thread-safe. */
SHP_API const char *shp_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
