/* export.c - Prometheus and JSON text of metrics snapshots (placeholder). */
#include <errno.h>
#include <shardpool/metrics.h>

int shp_metrics_prometheus(const shp_metrics *m, size_t n, char *buf, size_t len)
{
    (void)m; (void)n; (void)buf; (void)len;
    return -ENOSYS;
}

int shp_metrics_json(const shp_metrics *m, size_t n, char *buf, size_t len)
{
    (void)m; (void)n; (void)buf; (void)len;
    return -ENOSYS;
}
