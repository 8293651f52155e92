/*
 * retry.h - connect retry with backoff, and the pool's circuit breaker
 * (internal; retry.c).  All thread-safe; slow paths only.
 */
#ifndef SHP_RETRY_H
#define SHP_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "pool_internal.h"

/* The pause before retry `attempt` (0-based): uniformly random in
 * [0, min(retry_cap_ns, retry_base_ns << attempt)] ("full jitter"). */
int64_t shp__backoff_ns(const shp_config *cfg, unsigned attempt);
/* Whether a failed connect (err) may succeed if tried again. */
bool shp__retryable(int err);
/* Whether p's breaker is open: connects are known to fail. */
bool shp__breaker_open(shp_pool *p);
/* A connect failed with err: counts it, and opens the breaker (or, for a
 * failed probe, restarts its probe interval) at breaker_threshold. */
void shp__breaker_failure(shp_pool *p, int err);
/* A connect succeeded: closes the breaker. */
void shp__breaker_success(shp_pool *p);
/* Whether the open breaker's probe (one connect by the reaper) is due. */
bool shp__breaker_probe_due(shp_pool *p, int64_t now);

#endif
