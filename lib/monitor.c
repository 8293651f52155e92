/* monitor.c - live monitor publisher (placeholder). */
#include "monitor.h"

#include <errno.h>

void shp__monitor_pool_added(shp_pool *p) { (void)p; }
void shp__monitor_pool_removed(shp_pool *p) { (void)p; }
void shp__monitor_publish(shp_pool *p, const shp_metrics *m) { (void)p; (void)m; }
int shp_monitor_enable(void) { return -ENOSYS; }
void shp_monitor_disable(void) {}
