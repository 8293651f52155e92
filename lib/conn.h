/*
 * conn.h - one connection's life (internal; conn.c): its memory, create,
 * health check, close and lifetime, and what a failed callback leaves for
 * shp_pool_last_error / shp_acquire_last_error.
 *
 * Connection memory is type-stable for the pool's lifetime: a closed
 * connection goes, after a grace period, to the pool's spare list and is
 * reused by a later create; spares are freed with the pool (ref.c).  So a
 * late or second release of a closed connection reads a valid struct in
 * state CLOSED (-EALREADY) instead of freed memory.
 */
#ifndef SHP_CONN_H
#define SHP_CONN_H

#include <shardpool/log.h>
#include <stdbool.h>
#include <stdint.h>

#include "pool_internal.h"

/* Connects with a slot reserved by shp__reserve (whose reference it gives
 * back).  On success *out is owned by the caller in state `as` (IN_USE or
 * IDLE) and registered.  Returns 0, the connect callback's error, -ENOMEM,
 * or -ESHUTDOWN (the pool stopped meanwhile; the connection was closed). */
int shp__create(shp_pool *p, shp_conn **out, enum shp__conn_state as);
/* Closes owned connection c and gives its capacity back (to a waiter if
 * one is queued).  Caller may touch p (read-side section or reference). */
void shp__close(shp_pool *p, shp_conn *c, enum shp__close_reason why);
/* shp__close for each connection of a list through rnext (NULL: none). */
void shp__close_list(shp_pool *p, shp_conn *list, enum shp__close_reason why);
/* The acquirer owns c (IN_USE) but will not hand it out (the pool is
 * stopping, or an evict made it stale): closes it for `why`.  Destroy may
 * have orphaned it meanwhile, in which case the orphan's reference is
 * dropped.  Caller holds a reference. */
void shp__give_up(shp_pool *p, shp_conn *c, enum shp__close_reason why);
/* Runs the health check on owned connection c (caller holds a reference or
 * is the reaper), which is left in state CHECKING.  Returns true if healthy
 * (or there is no check); a failing connection is closed. */
bool shp__check(shp_pool *p, shp_conn *c, int64_t now);

/* Callback `op` ("connect", "check", "prepare") failed with err on the
 * calling thread: logs one line at `level` (event=<op>_failed, with conn
 * when not NULL) carrying the callback's detail (shp_set_error_detail) or
 * the errno's text, and keeps it for shp_pool_last_error and the thread's
 * shp_acquire_last_error.  Caller may touch p. */
void shp__callback_failed(shp_pool *p, const char *op, int err, shp_log_level level,
                          const shp_conn *conn);
/* A shp_acquire begins: its shp_acquire_last_error starts empty. */
void shp__acquire_error_clear(void);

#endif
