/*
 * log_internal.h - the library's side of the logger (internal; log.c): log
 * lines, misuse reports, callback failure details, and the SHARDPOOL_*
 * environment variables.  The public side is shardpool/log.h.
 */
#ifndef SHP_LOG_INTERNAL_H
#define SHP_LOG_INTERNAL_H

#include <shardpool/log.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h" /* SHP_ADAPTER_API */

/* Logs one line "level=… pool=<name> " followed by fmt (key=value pairs).
 * pool NULL: no pool name.  Thread-safe. */
SHP_ADAPTER_API void shp__log(shp_log_level level, const char *pool, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether a line at level would be delivered now.  Thread-safe. */
int shp__log_enabled(shp_log_level level);
/* Logs misuse (level=warn event=<event> ptr=<what> err=<name>) against the
 * pool named pool (NULL: none) and returns err.  Thread-safe. */
int shp__misuse(const char *pool, int err, const char *event, const void *what);

/* The calling thread's callback failure detail (shp_set_error_detail):
 * copies it (masked, one line, no double quote) into buf, clears it, and
 * returns its length; 0 and buf = "" when none was recorded.  len > 0. */
SHP_ADAPTER_API size_t shp__error_detail_take(char *buf, size_t len);
/* Forgets the calling thread's detail: the pool calls it before a callback. */
void shp__error_detail_clear(void);

/* fork() brackets (fork.c): hold the log sink's lock across fork, so that a
 * child's first line does not wait for a thread of the parent. */
void shp__log_before_fork(void);
void shp__log_after_fork(bool child);

/* A boolean SHARDPOOL_* environment variable: 1 for 1/true/yes/on, 0 for
 * 0/false/no/off (any case), dflt when unset or empty; anything else logs
 * one warning line (event=bad_env) and gives dflt.  Callers read each
 * variable once per process.  Thread-safe. */
int shp__env_flag(const char *var, bool dflt);
/* A log level by name (error, warn, warning, info, debug; any case) or
 * number (0-3): the shp_log_level, or -1. */
int shp__log_level_parse(const char *s);
/* Tests: SHARDPOOL_LOG_LEVEL is read again (and warned about again) at the
 * next line under the default sink. */
void shp__log_env_reset(void);
/* Tests: the repeat limit's window (0 = off, < 0 = SHP_LOG_REPEAT_WINDOW_NS)
 * and clock (NULL = CLOCK_MONOTONIC, shp__now_ns); forgets the lines seen.
 * Thread-safe. */
void shp__log_set_repeat(int64_t window_ns, int64_t (*clock_ns)(void));

#endif
