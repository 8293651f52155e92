/*
 * shardpool/log.h - where shardpool's log lines go.
 *
 * shardpool logs misuse (bad arguments, double releases), connection failures
 * and maintenance events.  Lines are single-line key=value text such as
 *   level=warn pool=orders event=release_twice conn=0x5581... err=EALREADY
 * Secrets never appear: strings that may hold a password are masked with
 * shp_mask_secrets() before they are logged.
 */
#ifndef SHARDPOOL_LOG_H
#define SHARDPOOL_LOG_H

#include <stddef.h>

#include <shardpool/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shp_log_level {
    SHP_LOG_ERROR = 0,
    SHP_LOG_WARN  = 1,
    SHP_LOG_INFO  = 2,
    SHP_LOG_DEBUG = 3,
} shp_log_level;

/* Receives one formatted line (no trailing newline).  Called from any thread
 * that logs, possibly concurrently: the callback must be thread-safe.  It must
 * not call back into the pool that logged. */
typedef void (*shp_log_fn)(shp_log_level level, const char *line, void *ud);

/* Installs fn (NULL restores the default: stderr, at the level named by the
 * environment variable SHARDPOOL_LOG_LEVEL = error|warn|info|debug, default
 * warn) and the most verbose level passed to it.  Process-wide; safe to call
 * at any time from any thread. */
SHP_API void shp_log_set(shp_log_fn fn, void *ud, shp_log_level max_level);

/* Copies src into dst (size dstlen, always NUL-terminated when dstlen > 0)
 * with secrets replaced by "****": password=/pass=/secret= values in
 * key=value strings and the password of a URL's user:password@ part.
 * Returns dst.  Thread-safe. */
SHP_API char *shp_mask_secrets(char *dst, size_t dstlen, const char *src);

/* Longest detail kept by shp_set_error_detail, with its NUL. */
#define SHP_ERROR_DETAIL_MAX 256

/* For shp_ops callbacks (connect, check, prepare, reset): records why the
 * call running on this thread fails, typically the backend's own words
 * ("FATAL: database \"orders\" does not exist").  printf-style.  The pool
 * takes it when the callback returns an error: it goes, masked
 * (shp_mask_secrets) and on one line, into the pool's single log line for
 * that failure and into shp_pool_last_error().  A later call on the same
 * thread replaces it; the pool clears it before each callback.  Cut to
 * SHP_ERROR_DETAIL_MAX - 1 bytes.  Thread-safe (the detail is per thread). */
SHP_API void shp_set_error_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif
