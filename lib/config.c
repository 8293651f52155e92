/* config.c - defaults and validation of shp_config (config.h). */
#include "config.h"
#include "log_internal.h"
#include "pool_internal.h"

#include <errno.h>
#include <shardpool/pool.h>
#include <string.h>

/* The defaults of the fields whose 0 also means "the default". */
#define DEFAULT_MAX_CONNECTING 4
#define DEFAULT_METRICS_SAMPLE 256
/* Without metrics (SHP_NO_METRICS) no acquire latency is measured, so the
 * p99 alert is off by default there, and shp__config_resolve turns off one
 * that is asked for, with a line. */
#ifdef SHP_NO_METRICS
#define DEFAULT_ALERT_ACQUIRE_P99_NS 0
#else
#define DEFAULT_ALERT_ACQUIRE_P99_NS SHP_NS_PER_S
#endif

void shp_config_init(shp_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->min_size = 0;
    cfg->max_size = 16;
    cfg->shards = 0;
    cfg->acquire_timeout_ns = 5 * SHP_NS_PER_S;
    cfg->idle_timeout_ns = 600 * SHP_NS_PER_S;
    cfg->max_lifetime_ns = 1800 * SHP_NS_PER_S;
    cfg->health_interval_ns = 0;
    cfg->validate_idle_ns = 500 * 1000000LL;
    cfg->reaper_interval_ns = 100 * 1000000LL;
    cfg->max_uses = 0;
    cfg->max_connecting = DEFAULT_MAX_CONNECTING;
    cfg->name = "pool";
    cfg->connect_attempts = 3;
    cfg->retry_base_ns = 10 * 1000000LL;
    cfg->retry_cap_ns = SHP_NS_PER_S;
    cfg->breaker_threshold = 5;
    cfg->breaker_probe_ns = 250 * 1000000LL;
    cfg->metrics_sample = DEFAULT_METRICS_SAMPLE;
    cfg->metrics_interval_ns = SHP_NS_PER_S;
    cfg->history_len = 60;
    cfg->alert_utilization = 0.8;
    cfg->alert_acquire_p99_ns = DEFAULT_ALERT_ACQUIRE_P99_NS;
    cfg->alert_failed_acquires = 5;
    cfg->alert_error_rate = 0.05;
    cfg->handoff_after_ns = 0;
    cfg->thread_cache = true;
}

void shp__config_resolve(shp_config *cfg)
{
    if (cfg->max_connecting == 0)
        cfg->max_connecting = DEFAULT_MAX_CONNECTING;
    if (cfg->metrics_sample == 0)
        cfg->metrics_sample = DEFAULT_METRICS_SAMPLE;
#ifdef SHP_NO_METRICS
    if (cfg->alert_acquire_p99_ns > 0) {
        shp__log(SHP_LOG_WARN, cfg->name,
                 "event=alert_unavailable alert=acquire_p99 reason=built_without_metrics "
                 "alert_acquire_p99_ns=off");
        cfg->alert_acquire_p99_ns = 0;
    }
#endif
}

#define SHP__MAX_POOL_SIZE 1000000u
#define SHP__MAX_SHARDS    4096u
/* Longest pool name, in bytes: the pool keeps a copy in a fixed array. */
#define SHP__NAME_MAX      63
_Static_assert(sizeof(((shp_pool *)0)->name) == SHP__NAME_MAX + 1,
               "shp_pool.name holds a name of SHP__NAME_MAX bytes");

static int bad(const shp_config *cfg, const char *field, const char *why)
{
    shp__log(SHP_LOG_ERROR, cfg->name, "event=invalid_config field=%s reason=\"%s\"", field, why);
    return -EINVAL;
}

int shp_config_validate(const shp_config *cfg)
{
    if (!cfg) {
        shp__log(SHP_LOG_ERROR, NULL, "event=invalid_config reason=\"NULL config\"");
        return -EINVAL;
    }
    if (cfg->name) {
        /* A name goes into every log line of the pool: one that is cut or
         * holds a control character (a newline forges lines) is refused. */
        size_t len = strnlen(cfg->name, SHP__NAME_MAX + 1);
        if (len > SHP__NAME_MAX)
            return bad(cfg, "name", "longer than 63 bytes");
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)cfg->name[i];
            if (c < 0x20 || c == 0x7f)
                return bad(cfg, "name", "contains a control character");
        }
    }
    if (cfg->max_size == 0)
        return bad(cfg, "max_size", "must be at least 1");
    if (cfg->max_size > SHP__MAX_POOL_SIZE)
        return bad(cfg, "max_size", "larger than 1000000");
    if (cfg->min_size > cfg->max_size)
        return bad(cfg, "min_size", "greater than max_size");
    if (cfg->shards > SHP__MAX_SHARDS)
        return bad(cfg, "shards", "more than 4096");
    if (cfg->acquire_timeout_ns < 0)
        return bad(cfg, "acquire_timeout_ns", "negative");
    if (cfg->idle_timeout_ns < 0)
        return bad(cfg, "idle_timeout_ns", "negative");
    if (cfg->max_lifetime_ns < 0)
        return bad(cfg, "max_lifetime_ns", "negative");
    if (cfg->health_interval_ns < 0)
        return bad(cfg, "health_interval_ns", "negative");
    if (cfg->reaper_interval_ns <= 0)
        return bad(cfg, "reaper_interval_ns", "must be positive");
    if (cfg->retry_base_ns < 0)
        return bad(cfg, "retry_base_ns", "negative");
    if (cfg->retry_cap_ns < cfg->retry_base_ns)
        return bad(cfg, "retry_cap_ns", "smaller than retry_base_ns");
    if (cfg->breaker_threshold && cfg->breaker_probe_ns <= 0)
        return bad(cfg, "breaker_probe_ns", "must be positive with a breaker");
    if (cfg->metrics_interval_ns < 0)
        return bad(cfg, "metrics_interval_ns", "negative");
    if (cfg->history_len > 1000000u)
        return bad(cfg, "history_len", "more than 1000000");
    if (cfg->metrics_sample > (1u << 20))
        return bad(cfg, "metrics_sample", "more than 1048576");
    if (cfg->alert_utilization != cfg->alert_utilization ||
        cfg->alert_error_rate != cfg->alert_error_rate)
        return bad(cfg, "alert_utilization/alert_error_rate", "not a number");
    if (cfg->handoff_after_ns < 0)
        return bad(cfg, "handoff_after_ns", "negative");
    return 0;
}
