/*
 * common.h - helpers shared by the adapters (internal).
 */
#ifndef SHP_ADAPTERS_COMMON_H
#define SHP_ADAPTERS_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "log_internal.h"
#include "util.h"

/* strdup(s), or NULL for NULL; sets *oom when the copy fails. */
static inline char *shp__dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

/* Logs an invalid adapter setting (level error) and returns err. */
static inline int shp__adapter_bad_config(const char *name, int err, const char *field,
                                          const char *why)
{
    shp__log(SHP_LOG_ERROR, name, "event=invalid_config field=%s reason=\"%s\"", field, why);
    return err;
}

/* For a hook's blocking socket I/O (check, prepare, reset): the socket
 * timeout to use, own_ns (the connection's own timeout, 0 = none) capped by
 * what is left until the deadline of the shp_acquire the hook serves on
 * this thread (shp_connect_deadline_ns(); -1 = none, as for the reaper and
 * for release).  Returns own_ns with *capped false when there is no such
 * deadline or own_ns ends first (nothing to restore); else what is left, at
 * least 1 us, with *capped true: the caller sets it, does the I/O, restores
 * own_ns, and reports a timeout as -ETIMEDOUT; or -ETIMEDOUT (with *capped
 * true) when that deadline has passed already: do no I/O.  Thread-safe. */
static inline int64_t shp__hook_timeout_ns(int64_t own_ns, bool *capped)
{
    *capped = false;
    int64_t deadline = shp_connect_deadline_ns();
    if (deadline < 0)
        return own_ns;
    int64_t left = deadline - shp__now_ns();
    *capped = true;
    if (left <= 0)
        return -ETIMEDOUT;
    if (own_ns > 0 && own_ns <= left) {
        *capped = false;
        return own_ns;
    }
    return left < 1000 ? 1000 : left;
}

/* Records why a callback fails, as "<target>: <step>: <msg>" (msg NULL:
 * err's system text), with shp_set_error_detail: the pool's one log line
 * for the failure and shp_pool_last_error / shp_acquire_last_error carry
 * it.  msg must hold no password (the detail is masked again anyway).
 * Returns err. */
static inline int shp__adapter_failed(int err, const char *target, const char *step,
                                      const char *msg)
{
    const char *m = msg ? msg : (err < 0 ? strerrordesc_np(-err) : NULL);
    shp_set_error_detail("%s: %s: %s", target, step, m ? m : "unknown error");
    return err;
}

/* As shp__adapter_failed, with the address tried shown after the target
 * ("<target> (<addr>): <step>: <msg>") when it says more than the target
 * itself (a host name and the address it resolved to).  addr may be NULL
 * or "".  Returns err. */
static inline int shp__adapter_failed_at(int err, const char *target, const char *addr,
                                         const char *step, const char *msg)
{
    if (addr && addr[0] && strcmp(addr, target) != 0) {
        char where[320];
        snprintf(where, sizeof where, "%s (%s)", target, addr);
        return shp__adapter_failed(err, where, step, msg);
    }
    return shp__adapter_failed(err, target, step, msg);
}

#endif
