/*
 * config_test.c - shp_config_init(), shp_config_validate() and the argument
 * checks of shp_pool_create() (include/shardpool/pool.h).
 *
 * A rejected configuration creates nothing: the fake backend sees no connect.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <shardpool.h>

#include "fakeconn.h"
#include "fixture.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

/* Log lines from validate are expected here; keep them off stderr but keep
 * them, so a test can check that the bad field is named. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_lines[8][512];
static int n_lines;

static void quiet_log(shp_log_level level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    pthread_mutex_lock(&log_mu);
    snprintf(last_lines[n_lines % 8], sizeof last_lines[0], "%s", line);
    n_lines++;
    pthread_mutex_unlock(&log_mu);
}

/* Empties the recorder; installing the sink again makes the logger forget
 * the lines seen, so an identical line is not held back by the repeat
 * limit. */
static void log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    n_lines = 0;
    memset(last_lines, 0, sizeof last_lines);
    pthread_mutex_unlock(&log_mu);
    shp_log_set(quiet_log, NULL, SHP_LOG_DEBUG);
}

static int log_mentions(const char *word)
{
    int found = 0;
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < 8 && i < n_lines; i++)
        if (strstr(last_lines[i], word))
            found = 1;
    pthread_mutex_unlock(&log_mu);
    return found;
}

static int group_setup(void **state)
{
    (void)state;
    shp_log_set(quiet_log, NULL, SHP_LOG_DEBUG);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    shp_quiesce();
    return 0;
}

/* ---- defaults ---------------------------------------------------------------- */

static void test_init_defaults(void **state)
{
    (void)state;
    shp_config cfg;
    memset(&cfg, 0xa5, sizeof cfg); /* every field must be written */
    shp_config_init(&cfg);
    assert_int_equal(cfg.min_size, 0);
    assert_int_equal(cfg.max_size, 16);
    assert_int_equal(cfg.shards, 0);
    assert_int_equal(cfg.acquire_timeout_ns, 5 * NS_PER_S);
    assert_int_equal(cfg.idle_timeout_ns, 10 * 60 * NS_PER_S);
    assert_int_equal(cfg.max_lifetime_ns, 30 * 60 * NS_PER_S);
    assert_int_equal(cfg.health_interval_ns, 0);
    assert_int_equal(cfg.validate_idle_ns, 500 * NS_PER_MS);
    assert_int_equal(cfg.reaper_interval_ns, 100 * NS_PER_MS);
    assert_int_equal(cfg.max_uses, 0);
    /* "0 = 4": either spelling of the default is the documented one. */
    assert_true(cfg.max_connecting == 0 || cfg.max_connecting == 4);
    assert_non_null(cfg.name);
    assert_string_equal(cfg.name, "pool");
    assert_int_equal(cfg.handoff_after_ns, 0); /* strict FIFO handoff */
    assert_true(cfg.thread_cache);
}

static void test_defaults_validate(void **state)
{
    (void)state;
    shp_config cfg;
    shp_config_init(&cfg);
    assert_int_equal(shp_config_validate(&cfg), 0);
}

/* ---- validate: rejected ------------------------------------------------------- */

typedef void (*mutate_fn)(shp_config *);

static void m_min_gt_max(shp_config *c) { c->min_size = 5; c->max_size = 4; }
static void m_max_zero(shp_config *c) { c->min_size = 0; c->max_size = 0; }
static void m_idle_neg(shp_config *c) { c->idle_timeout_ns = -1; }
static void m_lifetime_neg(shp_config *c) { c->max_lifetime_ns = -NS_PER_S; }
static void m_health_neg(shp_config *c) { c->health_interval_ns = -1; }
static void m_reaper_zero(shp_config *c) { c->reaper_interval_ns = 0; }
static void m_reaper_neg(shp_config *c) { c->reaper_interval_ns = -NS_PER_MS; }
static void m_acquire_neg(shp_config *c) { c->acquire_timeout_ns = -1; }
static void m_idle_min(shp_config *c) { c->idle_timeout_ns = INT64_MIN; }
static void m_retry_base_neg(shp_config *c) { c->retry_base_ns = -1; }
static void m_retry_cap_lt_base(shp_config *c) { c->retry_base_ns = 10; c->retry_cap_ns = 5; }
static void m_probe_zero(shp_config *c) { c->breaker_threshold = 3; c->breaker_probe_ns = 0; }
static void m_handoff_neg(shp_config *c) { c->handoff_after_ns = -1; }
static void m_handoff_min(shp_config *c) { c->handoff_after_ns = INT64_MIN; }
static void m_name_64(shp_config *c)
{
    c->name = "n123456789012345678901234567890123456789012345678901234567890123";
}
static void m_name_newline(shp_config *c) { c->name = "orders\nlevel=error pool=x"; }
static void m_name_del(shp_config *c) { c->name = "del\x7f"; }
static void m_name_tab(shp_config *c) { c->name = "\torders"; }

static const struct bad_case {
    const char *what;
    const char *field; /* named in the log line (without a unit suffix) */
    mutate_fn mutate;
} bad_cases[] = {
    { "min > max", "_size", m_min_gt_max },
    { "max 0", "max_size", m_max_zero },
    { "idle_timeout_ns < 0", "idle_timeout", m_idle_neg },
    { "max_lifetime_ns < 0", "max_lifetime", m_lifetime_neg },
    { "health_interval_ns < 0", "health_interval", m_health_neg },
    { "reaper_interval_ns == 0", "reaper_interval", m_reaper_zero },
    { "reaper_interval_ns < 0", "reaper_interval", m_reaper_neg },
    { "acquire_timeout_ns < 0", "acquire_timeout", m_acquire_neg },
    { "idle_timeout_ns INT64_MIN", "idle_timeout", m_idle_min },
    { "retry_base_ns < 0", "retry_base", m_retry_base_neg },
    { "retry_cap_ns < retry_base_ns", "retry_cap", m_retry_cap_lt_base },
    { "breaker_probe_ns 0 with a breaker", "breaker_probe", m_probe_zero },
    { "handoff_after_ns < 0", "handoff_after", m_handoff_neg },
    { "handoff_after_ns INT64_MIN", "handoff_after", m_handoff_min },
    { "name of 64 bytes", "field=name reason=\"longer than 63 bytes\"", m_name_64 },
    { "name with a newline", "field=name reason=\"contains a control character\"",
      m_name_newline },
    { "name with DEL", "field=name reason=\"contains a control character\"", m_name_del },
    { "name with a tab", "field=name reason=\"contains a control character\"", m_name_tab },
};
#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

static void test_validate_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_BAD; i++) {
        shp_config cfg;
        shp_config_init(&cfg);
        bad_cases[i].mutate(&cfg);
        int rc = shp_config_validate(&cfg);
        if (rc != -EINVAL)
            fail_msg("%s: validate returned %d, want -EINVAL", bad_cases[i].what, rc);
    }
}

/* "logs which field" */
static void test_validate_logs_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_BAD; i++) {
        shp_config cfg;
        shp_config_init(&cfg);
        bad_cases[i].mutate(&cfg);
        log_reset();
        (void)shp_config_validate(&cfg);
        if (!log_mentions(bad_cases[i].field))
            fail_msg("%s: no log line names \"%s\"", bad_cases[i].what, bad_cases[i].field);
    }
}

/* A rejected name is logged escaped: the line stays one line. */
static void test_validate_name_line_escaped(void **state)
{
    (void)state;
    shp_config cfg;
    shp_config_init(&cfg);
    m_name_newline(&cfg);
    log_reset();
    assert_int_equal(shp_config_validate(&cfg), -EINVAL);
    assert_true(log_mentions("pool=orders\\x0alevel=error pool=x event=invalid_config field=name"));
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < 8 && i < n_lines; i++)
        assert_null(strchr(last_lines[i], '\n'));
    pthread_mutex_unlock(&log_mu);
}

/* ---- validate: accepted -------------------------------------------------------- */

static void m_validate_never(shp_config *c) { c->validate_idle_ns = -1; }
static void m_validate_min(shp_config *c) { c->validate_idle_ns = INT64_MIN; }
static void m_validate_zero(shp_config *c) { c->validate_idle_ns = 0; }
static void m_min_eq_max(shp_config *c) { c->min_size = 3; c->max_size = 3; }
static void m_max_one(shp_config *c) { c->max_size = 1; }
static void m_never_idle(shp_config *c) { c->idle_timeout_ns = 0; }
static void m_never_lifetime(shp_config *c) { c->max_lifetime_ns = 0; }
static void m_health_on(shp_config *c) { c->health_interval_ns = NS_PER_MS; }
static void m_reaper_1ns(shp_config *c) { c->reaper_interval_ns = 1; }
static void m_uses(shp_config *c) { c->max_uses = 1; }
static void m_connecting(shp_config *c) { c->max_connecting = 1; }
static void m_shards(shp_config *c) { c->shards = 3; }
static void m_handoff_1ns(shp_config *c) { c->handoff_after_ns = 1; }
static void m_handoff_max(shp_config *c) { c->handoff_after_ns = INT64_MAX; }
static void m_name_63(shp_config *c)
{
    c->name = "n12345678901234567890123456789012345678901234567890123456789012";
}
static void m_name_utf8(shp_config *c) { c->name = "b\xc3\xa9" "b\xc3\xa9 orders"; }
static void m_name_null(shp_config *c) { c->name = NULL; }

static const struct good_case {
    const char *what;
    mutate_fn mutate;
} good_cases[] = {
    { "validate_idle_ns -1", m_validate_never },
    { "validate_idle_ns INT64_MIN", m_validate_min },
    { "validate_idle_ns 0", m_validate_zero },
    { "min == max", m_min_eq_max },
    { "max 1", m_max_one },
    { "idle_timeout_ns 0", m_never_idle },
    { "max_lifetime_ns 0", m_never_lifetime },
    { "health_interval_ns 1 ms", m_health_on },
    { "reaper_interval_ns 1", m_reaper_1ns },
    { "max_uses 1", m_uses },
    { "max_connecting 1", m_connecting },
    { "shards 3", m_shards },
    { "handoff_after_ns 1", m_handoff_1ns },
    { "handoff_after_ns INT64_MAX", m_handoff_max },
    { "name of 63 bytes", m_name_63 },
    { "name in UTF-8 with a space", m_name_utf8 },
    { "name NULL (the default)", m_name_null },
};

static void test_validate_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++) {
        shp_config cfg;
        shp_config_init(&cfg);
        good_cases[i].mutate(&cfg);
        int rc = shp_config_validate(&cfg);
        if (rc != 0)
            fail_msg("%s: validate returned %d, want 0", good_cases[i].what, rc);
    }
}

/* An accepted config also makes a working pool (validate_idle_ns < 0 here). */
static void test_create_validate_never(void **state)
{
    (void)state;
    fx *f = fx_make(1, 2); /* the fixture's config has validate_idle_ns = -1 */
    assert_true(f->cfg.validate_idle_ns < 0);
    shp_conn *c = NULL;
    assert_int_equal(shp_acquire(f->pool, &c, NS_PER_S), 0);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

/* ---- create: rejected configs create nothing ----------------------------------- */

static void test_create_rejects_bad_config(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_BAD; i++) {
        fx *f = fx_new(2, 4); /* a created pool would prefill */
        bad_cases[i].mutate(&f->cfg);
        int rc = shp_pool_create(&f->pool, &f->cfg, &f->ops);
        if (rc != -EINVAL)
            fail_msg("%s: create returned %d, want -EINVAL", bad_cases[i].what, rc);
        shp_quiesce();
        assert_int_equal(atomic_load(&f->fb.connect_calls), 0);
        assert_int_equal(atomic_load(&f->fb.opened), 0);
        free(f);
    }
}

static void test_create_null_pool_ptr(void **state)
{
    (void)state;
    fx *f = fx_new(2, 4);
    assert_int_equal(shp_pool_create(NULL, &f->cfg, &f->ops), -EINVAL);
    assert_int_equal(shp_pool_create(NULL, NULL, &f->ops), -EINVAL);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 0);
    assert_int_equal(atomic_load(&f->fb.opened), 0);
    free(f);
}

static void test_create_null_ops(void **state)
{
    (void)state;
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = 2;
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &cfg, NULL), -EINVAL);
    assert_int_equal(shp_pool_create(&pool, NULL, NULL), -EINVAL);
}

static void test_create_ops_missing_callbacks(void **state)
{
    (void)state;
    fx *f = fx_new(2, 4);
    shp_pool *pool = NULL;

    shp_ops no_connect = f->ops;
    no_connect.connect = NULL;
    assert_int_equal(shp_pool_create(&pool, &f->cfg, &no_connect), -EINVAL);

    shp_ops no_close = f->ops;
    no_close.close = NULL;
    assert_int_equal(shp_pool_create(&pool, &f->cfg, &no_close), -EINVAL);

    shp_ops neither = f->ops;
    neither.connect = NULL;
    neither.close = NULL;
    assert_int_equal(shp_pool_create(&pool, &f->cfg, &neither), -EINVAL);

    shp_quiesce();
    assert_int_equal(atomic_load(&f->fb.connect_calls), 0);
    assert_int_equal(atomic_load(&f->fb.opened), 0);
    free(f);
}

/* check and reset are optional: a pool without them works. */
static void test_create_optional_callbacks_absent(void **state)
{
    (void)state;
    fx *f = fx_new(1, 2);
    f->ops.check = NULL;
    f->ops.reset = NULL;
    f->cfg.validate_idle_ns = 0;
    fx_start(f);
    shp_conn *c = NULL;
    assert_int_equal(shp_acquire(f->pool, &c, NS_PER_S), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(shp_acquire(f->pool, &c, NS_PER_S), 0);
    assert_int_equal(shp_release(c), 0);
    fx_finish(f);
}

/* cfg NULL means defaults: min 0 (nothing prefilled), max 16. */
static void test_create_null_cfg_defaults(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1); /* its backend and ops; the pool is made with cfg NULL */
    assert_int_equal(shp_pool_create(&f->pool, NULL, &f->ops), 0);
    assert_non_null(f->pool);
    assert_int_equal(atomic_load(&f->fb.opened), 0);
    shp_conn *c[16];
    for (int i = 0; i < 16; i++)
        assert_int_equal(shp_acquire(f->pool, &c[i], NS_PER_S), 0);
    shp_conn *extra = NULL;
    assert_int_equal(shp_acquire(f->pool, &extra, 0), -EAGAIN);
    for (int i = 0; i < 16; i++)
        assert_int_equal(shp_release(c[i]), 0);
    fx_finish(f);
}

/* *cfg is copied: changing or freeing it after create has no effect, and the
 * name is copied too. */
static void test_create_copies_config(void **state)
{
    (void)state;
    fx *f = fx_new(0, 1); /* its backend and ops; the pool is made from *cfg */
    shp_config *cfg = malloc(sizeof *cfg);
    assert_non_null(cfg);
    shp_config_init(cfg);
    char *name = strdup("copied-name");
    assert_non_null(name);
    cfg->name = name;
    cfg->max_size = 2;
    assert_int_equal(shp_pool_create(&f->pool, cfg, &f->ops), 0);
    cfg->max_size = 100;
    memset(name, 'Z', strlen(name));
    free(name);
    free(cfg);
    shp_conn *c1 = NULL, *c2 = NULL, *c3 = NULL;
    assert_int_equal(shp_acquire(f->pool, &c1, NS_PER_S), 0);
    assert_int_equal(shp_acquire(f->pool, &c2, NS_PER_S), 0);
    assert_int_equal(shp_acquire(f->pool, &c3, 0), -EAGAIN);
    assert_int_equal(shp_release(c1), 0);
    assert_int_equal(shp_release(c2), 0);
    fx_finish(f);
}

/* A name of 63 bytes is kept whole: the pool's log lines carry all of it. */
static void test_create_name_63_whole(void **state)
{
    (void)state;
    fx *f = fx_new(0, 16);
    m_name_63(&f->cfg);
    char want[96];
    snprintf(want, sizeof want, "pool=%s event=created", f->cfg.name);
    log_reset();
    fx_start(f);
    assert_true(log_mentions(want));

    m_name_64(&f->cfg); /* one more byte: refused, nothing made */
    shp_pool *pool = NULL;
    assert_int_equal(shp_pool_create(&pool, &f->cfg, &f->ops), -EINVAL);
    assert_null(pool);
    assert_int_equal(atomic_load(&f->fb.connect_calls), 0);
    fx_finish(f); /* the first pool; nothing left open */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_defaults_validate),
        cmocka_unit_test(test_validate_rejects),
        cmocka_unit_test(test_validate_logs_field),
        cmocka_unit_test(test_validate_name_line_escaped),
        cmocka_unit_test(test_validate_accepts),
        cmocka_unit_test(test_create_validate_never),
        cmocka_unit_test(test_create_rejects_bad_config),
        cmocka_unit_test(test_create_null_pool_ptr),
        cmocka_unit_test(test_create_null_ops),
        cmocka_unit_test(test_create_ops_missing_callbacks),
        cmocka_unit_test(test_create_optional_callbacks_absent),
        cmocka_unit_test(test_create_null_cfg_defaults),
        cmocka_unit_test(test_create_copies_config),
        cmocka_unit_test(test_create_name_63_whole),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
