/*
 * monitor.h - the live monitor's publishing side (internal; public API in
 * shardpool/metrics.h: shp_monitor_enable / shp_monitor_disable).
 *
 * Built with -DSHP_NO_MONITOR (make MONITOR=0) the library has no monitor:
 * the calls below are no-op stubs (static inline, so their callers need no
 * #ifdef), except shp__monitor_pool_added, which logs once that
 * SHARDPOOL_MONITOR is ignored; shp_monitor_enable answers -ENOTSUP and the
 * library holds no shared-memory code (monitor.c compiles to the stubs).
 */
#ifndef SHP_MONITOR_H
#define SHP_MONITOR_H

#include <shardpool/metrics.h>
#include <stdbool.h>

/* At shp_pool_create, after the pool is fully built: the monitor learns of
 * p (and enables itself if SHARDPOOL_MONITOR=1 and this is the first pool).
 * Without the monitor: the first call reads SHARDPOOL_MONITOR and, if it
 * asks for the monitor, logs one line, event=monitor_unavailable; no
 * other call does anything.
 * Thread-safe. */
void shp__monitor_pool_added(shp_pool *p);

#ifndef SHP_NO_MONITOR
/* At shutdown/destroy, before p's memory can go: p's slot is freed and p is
 * never touched by the monitor again.  Thread-safe. */
void shp__monitor_pool_removed(shp_pool *p);
/* From p's reaper, every metrics_interval_ns, with a fresh snapshot: written
 * to p's slot if the monitor is enabled; a cheap no-op otherwise.  Never
 * blocks on a reader.  Thread-safe. */
void shp__monitor_publish(shp_pool *p, const shp_metrics *m);
/* fork() brackets (fork.c): the monitor's lock is held across fork; the
 * child starts with the monitor disabled and no pools. */
void shp__monitor_before_fork(void);
void shp__monitor_after_fork(bool child);
#else
static inline void shp__monitor_pool_removed(shp_pool *p) { (void)p; }
static inline void shp__monitor_publish(shp_pool *p, const shp_metrics *m)
{
    (void)p;
    (void)m;
}
static inline void shp__monitor_before_fork(void) {}
static inline void shp__monitor_after_fork(bool child) { (void)child; }
#endif

#endif
