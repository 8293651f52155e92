/*
 * failtest.h - checks shared by the adapter tests for failing callbacks
 * (tests only; header-only, include after <cmocka.h> and "testutil.h").
 *
 * An adapter does not log a failed connect or check: it records why with
 * shp_set_error_detail and the pool logs one line.  A test that calls a
 * callback directly reads that detail with detail_take; a test through a
 * pool counts the captured log lines (testutil.h's log capture) and reads
 * shp_acquire_last_error and shp_pool_last_error.
 */
#ifndef SHP_TEST_FAILTEST_H
#define SHP_TEST_FAILTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <shardpool.h>

#include "log_internal.h" /* shp__error_detail_take */

/* The detail the calling thread's last callback recorded ("" if none),
 * into a static buffer; taking it clears it. */
static inline const char *detail_take(void)
{
    static char buf[SHP_ERROR_DETAIL_MAX];
    shp__error_detail_take(buf, sizeof buf);
    return buf;
}

/* Captured lines containing needle. */
static inline int log_count(const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&log_mu);
    for (const char *line = log_buf; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        for (const char *p = line; p + strlen(needle) <= line + len; p++)
            if (strncmp(p, needle, strlen(needle)) == 0) {
                n++;
                break;
            }
        line += len + (end != NULL);
    }
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* Captured lines at level warn or error. */
static inline int log_count_warn(void)
{
    return log_count("level=warn ") + log_count("level=error ");
}

/* One acquire on pool (min_size 0, nothing idle) whose connect fails with a
 * permanent error: asserts that shp_acquire returns want at once (the
 * connect callback ran once: *connect_calls went up by exactly 1, the pool
 * counted 1 failure and 0 retries), that shp_acquire_last_error and
 * shp_pool_last_error carry want and words (the backend's own), that
 * exactly one line at warn or above was logged, the pool's connect_failed
 * line with words, and that secret (if not NULL) is in no line and no
 * message.  The log capture is started and stopped here. */
static inline void expect_permanent_failure(shp_pool *pool, atomic_long *connect_calls, int want,
                                            const char *words, const char *secret)
{
    shp_stats before, after;
    assert_int_equal(shp_pool_stats(pool, &before), 0);
    long calls = atomic_load(connect_calls);
    log_start_level(SHP_LOG_DEBUG);
    shp_conn *c = NULL;
    int rc = shp_acquire(pool, &c, 5 * 1000000000LL);
    log_stop();
    if (rc == 0)
        shp_release(c);
    if (rc != want)
        fail_msg("acquire returned %s, want %s; log:\n%s", shp_err_name(rc), shp_err_name(want),
                 log_buf);
    assert_int_equal(atomic_load(connect_calls) - calls, 1);
    assert_int_equal(shp_pool_stats(pool, &after), 0);
    assert_int_equal(after.connect_failures - before.connect_failures, 1);
    assert_int_equal(after.retries - before.retries, 0);
    assert_int_equal(after.creations - before.creations, 0);

    shp_last_error mine, pools;
    assert_int_equal(shp_acquire_last_error(&mine), 0);
    assert_int_equal(shp_pool_last_error(pool, &pools), 0);
    assert_int_equal(mine.err, want);
    assert_int_equal(pools.err, want);
    assert_string_equal(mine.op, "connect");
    if (!strstr(mine.msg, words))
        fail_msg("shp_acquire_last_error: \"%s\" lacks \"%s\"", mine.msg, words);
    assert_non_null(strstr(pools.msg, words));

    if (log_count_warn() != 1 || log_count("event=connect_failed") != 1)
        fail_msg("want one failure line, got:\n%s", log_buf);
    char want_line[96];
    snprintf(want_line, sizeof want_line, "event=connect_failed err=%s msg=\"", shp_err_name(want));
    assert_int_equal(log_count(want_line), 1);
    assert_int_equal(log_count(words), 1);
    if (secret) {
        assert_false(log_has(secret));
        assert_null(strstr(mine.msg, secret));
        assert_null(strstr(pools.msg, secret));
    }
}

#endif
