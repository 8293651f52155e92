/*
 * switch_test.c - what the public calls answer in a build with parts
 * switched off (tools/custom.mk), through the public API only.  Built by
 * `make switch-verify` with -DEXPECT_NO_MONITOR when the library has
 * MONITOR=0 and -DEXPECT_NO_METRICS when it has METRICS=0; with neither it
 * checks the default build's answers.  Exit 0 when every check held.
 *
 *   monitor off: shp_monitor_enable answers -ENOTSUP; with
 *     SHARDPOOL_MONITOR=1 two pool creates log exactly one line,
 *     event=monitor_unavailable; no /dev/shm segment of this process.
 *   metrics off: shp_pool_metrics still answers 0 with exact counters
 *     (acquisitions), and the fast-path recording is gone as
 *     shardpool/metrics.h documents: empty acquire/hold histograms and
 *     fast_hits = releases = 0, even with metrics_sample = 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shardpool.h>

#include "fakeconn.h"

static int failures;

#define CHECK(cond, ...)                                             \
    do {                                                             \
        if (!(cond)) {                                               \
            fprintf(stderr, "switch_test: FAIL %s: ", #cond);        \
            fprintf(stderr, __VA_ARGS__);                            \
            fputc('\n', stderr);                                     \
            failures++;                                              \
        }                                                            \
    } while (0)

static int unavailable_lines;
static int alert_unavailable_lines;

static void sink(shp_log_level level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    if (strstr(line, "event=monitor_unavailable"))
        unavailable_lines++;
    if (strstr(line, "event=alert_unavailable"))
        alert_unavailable_lines++;
}

static shp_pool *make_pool(fake_backend *fb, const char *name)
{
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = 1;
    cfg.max_size = 4;
    cfg.name = name;
    cfg.metrics_sample = 1; /* time every acquire */
    shp_ops ops = fake_ops(fb);
    shp_pool *p = NULL;
    int err = shp_pool_create(&p, &cfg, &ops);
    CHECK(err == 0, "shp_pool_create: %d", err);
    return p;
}

int main(void)
{
    fake_backend fb;
    fake_init(&fb);
    shp_log_set(sink, NULL, SHP_LOG_DEBUG);

#ifdef EXPECT_NO_MONITOR
    setenv("SHARDPOOL_MONITOR", "1", 1);
#endif
    shp_pool *p = make_pool(&fb, "switchtest");
    shp_pool *q = make_pool(&fb, "switchtest2");
    if (!p || !q)
        return 1;

#ifdef EXPECT_NO_MONITOR
    int e = shp_monitor_enable();
    CHECK(e == -ENOTSUP, "shp_monitor_enable answered %d (%s), not -ENOTSUP", e, shp_err_name(e));
    CHECK(unavailable_lines == 1, "%d monitor_unavailable lines for two creates, not 1",
          unavailable_lines);
    char seg[96];
    snprintf(seg, sizeof seg, "/dev/shm/shardpool.%u.%d", (unsigned)getuid(), (int)getpid());
    CHECK(access(seg, F_OK) != 0, "%s exists", seg);
    shp_monitor_disable(); /* a no-op */
#endif

    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        shp_conn *c = NULL;
        int err = shp_acquire(p, &c, 1000000000LL);
        CHECK(err == 0, "acquire %d: %d", i, err);
        if (err)
            break;
        CHECK(shp_release(c) == 0, "release %d", i);
    }
    shp_metrics m;
    int err = shp_pool_metrics(p, &m);
    CHECK(err == 0, "shp_pool_metrics: %d", err);
    CHECK(m.acquisitions == N, "acquisitions %llu, not %d", (unsigned long long)m.acquisitions, N);
#ifdef EXPECT_NO_METRICS
    CHECK(m.acquire.count == 0 && m.hold.count == 0, "histograms not empty: acquire %llu hold %llu",
          (unsigned long long)m.acquire.count, (unsigned long long)m.hold.count);
    CHECK(m.fast_hits == 0 && m.releases == 0, "fast_hits %llu releases %llu, not 0",
          (unsigned long long)m.fast_hits, (unsigned long long)m.releases);
#else
    CHECK(m.acquire.count >= N, "acquire histogram holds %llu of %d timed acquires",
          (unsigned long long)m.acquire.count, N);
    CHECK(m.releases == N, "releases %llu, not %d", (unsigned long long)m.releases, N);
#endif

    /* The p99 alert: off by default without metrics, and one asked for is
     * turned off with one line; with metrics, on by default and silent. */
    shp_config dflt;
    shp_config_init(&dflt);
    shp_config acfg = dflt;
    acfg.name = "alerttest";
    acfg.alert_acquire_p99_ns = 1000000;
    shp_ops aops = fake_ops(&fb);
    shp_pool *a = NULL;
    CHECK(shp_pool_create(&a, &acfg, &aops) == 0, "create with the p99 alert");
    if (a)
        CHECK(shp_pool_destroy(a, 0) == 0, "destroy");
#ifdef EXPECT_NO_METRICS
    CHECK(dflt.alert_acquire_p99_ns == 0, "default alert_acquire_p99_ns %lld, not 0",
          (long long)dflt.alert_acquire_p99_ns);
    CHECK(alert_unavailable_lines == 1, "%d alert_unavailable lines, not 1",
          alert_unavailable_lines);
#else
    CHECK(dflt.alert_acquire_p99_ns > 0, "default alert_acquire_p99_ns off");
    CHECK(alert_unavailable_lines == 0, "%d alert_unavailable lines, not 0",
          alert_unavailable_lines);
#endif

    CHECK(shp_pool_destroy(p, 0) == 0, "destroy");
    CHECK(shp_pool_destroy(q, 0) == 0, "destroy");
    CHECK(fake_open_now(&fb) == 0, "%llu connections left open",
          (unsigned long long)fake_open_now(&fb));
    if (failures)
        return 1;
    printf("switch_test: PASS (%s, %s)\n",
#ifdef EXPECT_NO_MONITOR
           "monitor off: -ENOTSUP, one log line, no segment",
#else
           "monitor on",
#endif
#ifdef EXPECT_NO_METRICS
           "metrics off: exact counters, empty histograms, fast_hits = releases = 0, p99 alert off"
#else
           "metrics on: histograms recorded"
#endif
    );
    return 0;
}
