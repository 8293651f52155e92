/*
 * fork.h - what a child of fork() may do with an inherited pool, and the
 * call_rcu gate (internal; fork.c, whose top comment states the contract).
 * The RCU wrappers the gate guards are declared in rcu.h.
 */
#ifndef SHP_FORK_H
#define SHP_FORK_H

#include "pool_internal.h"

/* Lists p among the process's pools, so that a child of fork() finds it
 * inherited.  Returns 0 or a negative errno (pthread_atfork had failed). */
int shp__fork_track(shp_pool *p);
/* Takes p off the list (the pool is being freed).  Thread-safe. */
void shp__fork_untrack(shp_pool *p);
/* The error for a call whose pool argument p is not a usable pool, logged
 * as misuse `event`: -ECHILD for a pool inherited across fork(), else
 * -EINVAL (NULL, not a pool, destroyed).  Thread-safe. */
int shp__bad_pool(shp_pool *p, const char *event);

#endif
