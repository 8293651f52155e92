/* metrics.c - snapshots, histograms, alerts and history (in progress). */
#include "pool_internal.h"

#include <errno.h>
#include <shardpool/metrics.h>

static const char *const reason_names[SHP_CLOSE_NREASONS] = {
    "idle", "lifetime", "max_uses", "health", "broken", "evicted", "shutdown", "reset",
};

const char *shp_close_reason_name(shp_close_reason r)
{
    return (unsigned)r < SHP_CLOSE_NREASONS ? reason_names[r] : "unknown";
}

static const char *const alert_names[SHP_ALERT_N] = {
    "utilization", "acquire_p99", "failed_acquires", "error_rate",
};

const char *shp_alert_name(shp_alert a)
{
    return (unsigned)a < SHP_ALERT_N ? alert_names[a] : "unknown";
}

int shp_pool_metrics(shp_pool *p, shp_metrics *out) { (void)p; (void)out; return -ENOSYS; }
int shp_pool_conn_info(shp_pool *p, shp_conn_info *out, size_t cap) { (void)p; (void)out; (void)cap; return -ENOSYS; }
int shp_conn_error(shp_conn *c, int err) { (void)c; (void)err; return -ENOSYS; }
int shp_pool_evict(shp_pool *p) { (void)p; return -ENOSYS; }
int shp_pool_history(shp_pool *p, shp_metrics *out, size_t cap) { (void)p; (void)out; (void)cap; return -ENOSYS; }
