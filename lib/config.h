/* config.h - shp_config's defaults, once (internal; config.c). */
#ifndef SHP_CONFIG_H
#define SHP_CONFIG_H

#include <shardpool/pool.h>

/* Replaces the fields whose 0 means "the default" (max_connecting,
 * metrics_sample) by the default shp_config_init sets, and in a build
 * without metrics turns alert_acquire_p99_ns off (one warning line if it was
 * set: nothing measures it).  cfg validated. */
void shp__config_resolve(shp_config *cfg);

#endif
