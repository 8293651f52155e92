/*
 * retry.c - connect retry with backoff, and the pool's circuit breaker.
 *
 * Backoff is "full jitter": attempt i (0-based) waits a uniformly random
 * time in [0, min(cap, base << i)], which spreads the retries of many
 * acquirers instead of synchronising them.  The breaker counts consecutive
 * connect failures pool-wide; it is a few atomics on slow paths only.
 */
#include "retry.h"
#include "log_internal.h"

#include <errno.h>

int64_t shp__backoff_ns(const shp_config *cfg, unsigned attempt)
{
    int64_t ceiling = cfg->retry_base_ns;
    for (unsigned i = 0; i < attempt && ceiling < cfg->retry_cap_ns; i++)
        ceiling = ceiling > cfg->retry_cap_ns / 2 ? cfg->retry_cap_ns : ceiling * 2;
    if (ceiling > cfg->retry_cap_ns)
        ceiling = cfg->retry_cap_ns;
    if (ceiling <= 0)
        return 0;
    uint64_t span = (uint64_t)ceiling + 1; /* no overflow: ceiling <= INT64_MAX */
    return (int64_t)(shp__rand64() % span);
}

/* Whether a failed connect may succeed if tried again: the transient errors
 * below.  The adapters' permanent errors (error.h: EACCES, ENOENT,
 * EPROTONOSUPPORT, ENXIO) and every other value are returned at once. */
bool shp__retryable(int err)
{
    switch (-err) {
    case ECONNREFUSED: case ETIMEDOUT: case EHOSTUNREACH: case ENETUNREACH:
    case ECONNRESET: case ECONNABORTED: case EPIPE: case ENOTCONN:
    case EAGAIN: case EIO: case EINTR: case ENOMEM:
        return true;
    case EACCES: case ENOENT: case EPROTONOSUPPORT: case ENXIO:
    default:
        return false;
    }
}

bool shp__breaker_open(shp_pool *p)
{
    return atomic_load_explicit(&p->breaker_opened_at, memory_order_acquire) != 0;
}

void shp__breaker_failure(shp_pool *p, int err)
{
    if (!p->cfg.breaker_threshold)
        return;
    uint32_t n = atomic_fetch_add_explicit(&p->connect_fail_run, 1, memory_order_acq_rel) + 1;
    if (n < p->cfg.breaker_threshold)
        return;
    int64_t now = shp__now_ns(), closed = 0;
    if (atomic_compare_exchange_strong(&p->breaker_opened_at, &closed, now)) {
        atomic_fetch_add_explicit(&p->breaker_opens, 1, memory_order_relaxed);
        shp__log(SHP_LOG_WARN, p->name, "event=breaker_open failures=%u last_err=%s", n,
                 shp_err_name(err));
    } else {
        /* a failed probe: wait a full probe interval again */
        atomic_store_explicit(&p->breaker_opened_at, now, memory_order_release);
    }
}

void shp__breaker_success(shp_pool *p)
{
    atomic_store_explicit(&p->connect_fail_run, 0, memory_order_relaxed);
    if (atomic_exchange_explicit(&p->breaker_opened_at, 0, memory_order_acq_rel) != 0)
        shp__log(SHP_LOG_INFO, p->name, "event=breaker_closed");
}

bool shp__breaker_probe_due(shp_pool *p, int64_t now)
{
    int64_t at = atomic_load_explicit(&p->breaker_opened_at, memory_order_acquire);
    return at != 0 && now - at >= p->cfg.breaker_probe_ns;
}
