/*
 * shardpool/log.h - where shardpool's log lines go.
 *
 * shardpool logs misuse (bad arguments, double releases), connection failures
 * and maintenance events.  Lines are single-line key=value text such as
 *   level=warn pool=orders event=release_twice conn=0x5581... err=EALREADY
 * Secrets never appear: every line is masked with shp_mask_secrets() as a
 * whole, before it is cut to its length (511 bytes, plus " suppressed=N")
 * and before control characters are escaped, so neither a cut nor an
 * escape can show part of a secret.  (A long line whose whole text cannot
 * be allocated says event=log_line_dropped reason=out_of_memory instead:
 * it is never cut unmasked.)  A line never holds a raw control character:
 * any byte below 0x20 or 0x7f that reaches a line (through a pool name, a
 * backend's message, any string) is written as \xNN, so no string can
 * split a line or forge another.
 *
 * Repeated lines are rate-limited: a line identical to one delivered less
 * than SHP_LOG_REPEAT_WINDOW_NS ago (same level, same text) is not
 * delivered but counted, and the next delivery of that text, once the
 * window has passed, ends with " suppressed=N" (the lines dropped since the
 * previous delivery).  The logger remembers the last SHP_LOG_REPEAT_SLOTS
 * distinct lines; beyond that the least recently delivered one is forgotten
 * (its count with it, and its next occurrence is delivered as new).  Counts
 * still pending are never flushed on their own: a text that stops repeating
 * leaves its last suppressed=N unreported (no line is written at exit or
 * when the window ends).  shp_log_set forgets every line seen: a new sink
 * gets each line once before any is suppressed.
 */
#ifndef SHARDPOOL_LOG_H
#define SHARDPOOL_LOG_H

#include <stddef.h>

#include <shardpool/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The repeat window and how many distinct lines it tracks (see above). */
#define SHP_LOG_REPEAT_WINDOW_NS 10000000000LL /* 10 s */
#define SHP_LOG_REPEAT_SLOTS     32

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
 * environment variable SHARDPOOL_LOG_LEVEL: error, warn (or warning), info,
 * debug in any case, or 0-3 for the same; default warn; any other value
 * gives one warning line, once per process, and warn) and the most verbose
 * level passed to it.  Forgets the lines seen by the repeat limit.
 * Process-wide; safe to call at any time from any thread.  ud is passed to
 * fn as is and never freed: it must stay valid until a later shp_log_set
 * has returned and the lines being logged at that moment have reached fn
 * (a line in flight may still be delivered to the previous fn and ud). */
SHP_API void shp_log_set(shp_log_fn fn, void *ud, shp_log_level max_level);

/* Copies src into dst (size dstlen, always NUL-terminated when dstlen > 0)
 * with secrets replaced by "****": the password of a URL's user:password@
 * part, and the values of secret keys (password, passwd, pass, pwd, secret,
 * token, auth, or a key ending in _ or - and one of those) in key=value
 * text, blanks allowed around '='.  A value is quoted ('...' or "...",
 * backslash escapes, masked up to its closing quote) or unquoted; an
 * unquoted one ends at whitespace only, as libpq reads it ("ab;cd,e&f" is
 * one value), except in a URL query (the key follows '?' or '&'), where
 * '&' ends it too.  Where text is ambiguous it masks more rather than
 * less.  dst is the first dstlen - 1 bytes of the whole result: a short
 * dst cuts the masked text, never a secret.  Returns dst.  Thread-safe. */
SHP_API char *shp_mask_secrets(char *dst, size_t dstlen, const char *src);

/* Longest detail kept by shp_set_error_detail, with its NUL. */
#define SHP_ERROR_DETAIL_MAX 256

/* For shp_ops callbacks (connect, check, prepare, reset): records why the
 * call running on this thread fails, typically the backend's own words
 * ("FATAL: database \"orders\" does not exist").  printf-style.  The pool
 * takes it when the callback returns an error: it goes, masked
 * (shp_mask_secrets) and on one line, into the pool's single log line for
 * that failure and into shp_pool_last_error().  A later call on the same
 * thread replaces it; the pool clears it before each callback.  Masked
 * whole, then cut to SHP_ERROR_DETAIL_MAX - 1 bytes.  Thread-safe (the
 * detail is per thread). */
SHP_API void shp_set_error_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif
