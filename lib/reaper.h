/*
 * reaper.h - the maintenance thread of one pool (internal; reaper.c).
 * lifecycle.c starts it (shp_pool_create), stops it (shutdown) and kicks
 * it (evict); the reaper calls nothing of lifecycle.c.
 */
#ifndef SHP_REAPER_H
#define SHP_REAPER_H

#include "pool_internal.h"

/* The reaper thread's body (pthread_create's start routine; arg: the
 * pool).  Runs until shp__reaper_stop. */
void *shp__reaper_main(void *arg);
/* Stops the reaper and joins it.  Once, by shutdown. */
void shp__reaper_stop(shp_pool *p);
/* Makes the reaper run a pass now and, unless called from the reaper or
 * the pool is stopping, waits until a pass that began after the call has
 * completed.  Thread-safe. */
void shp__reaper_kick_wait(shp_pool *p);

#endif
