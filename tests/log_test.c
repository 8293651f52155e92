/*
 * log_test.c - shp_log_set() and shp_mask_secrets() (include/shardpool/log.h),
 * the repeat limit, control-character escaping and SHARDPOOL_LOG_LEVEL.
 *
 * Log lines are provoked through the public API: an invalid configuration
 * (shp_config_validate logs which field) and a double release (misuse); the
 * repeat limit and escaping are driven through shp__log itself, with the
 * limit's clock replaced by one the test advances (no sleeps).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <shardpool.h>

#include "fakeconn.h"
#define FX_POOL_NAME "logtest"
#include "fixture.h"
#include "util.h"
#include "log_internal.h"

/* ---- a thread-safe line recorder ---------------------------------------- */

#define REC_MAX 256
#define REC_LINE 512

typedef struct recorder {
    pthread_mutex_t mu;
    int n;                     /* lines received (may exceed REC_MAX) */
    int bad_newline;           /* lines containing '\n' */
    int bad_level_name;        /* "level=x" disagreeing with the level argument */
    int max_level_seen;
    shp_log_level levels[REC_MAX];
    char lines[REC_MAX][REC_LINE];
} recorder;

static const char *level_word(shp_log_level l)
{
    switch (l) {
    case SHP_LOG_ERROR: return "error";
    case SHP_LOG_WARN: return "warn";
    case SHP_LOG_INFO: return "info";
    case SHP_LOG_DEBUG: return "debug";
    }
    return "?";
}

static void rec_fn(shp_log_level level, const char *line, void *ud)
{
    recorder *r = ud;
    pthread_mutex_lock(&r->mu);
    if (strchr(line, '\n'))
        r->bad_newline++;
    const char *lv = strstr(line, "level=");
    if (lv) {
        const char *w = level_word(level);
        size_t wl = strlen(w);
        if (strncmp(lv + 6, w, wl) != 0 || (lv[6 + wl] != ' ' && lv[6 + wl] != '\0'))
            r->bad_level_name++;
    }
    if ((int)level > r->max_level_seen)
        r->max_level_seen = (int)level;
    if (r->n < REC_MAX) {
        r->levels[r->n] = level;
        snprintf(r->lines[r->n], REC_LINE, "%s", line);
    }
    r->n++;
    pthread_mutex_unlock(&r->mu);
}

static recorder *rec_new(void)
{
    recorder *r = calloc(1, sizeof *r);
    assert_non_null(r);
    pthread_mutex_init(&r->mu, NULL);
    r->max_level_seen = -1;
    return r;
}

static int rec_count(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Whether some recorded line contains needle. */
static int rec_has(recorder *r, const char *needle)
{
    int found = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n && i < REC_MAX; i++)
        if (strstr(r->lines[i], needle))
            found = 1;
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* Reads a field of r under its lock (the callback may run on any thread). */
static int rec_get(recorder *r, const int *field)
{
    pthread_mutex_lock(&r->mu);
    int v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}
#define REC_GET(r, f) rec_get((r), &(r)->f)

static void rec_free(recorder *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- ways to make the library log --------------------------------------- */

/* An invalid configuration: validate logs which field. */
static void provoke_bad_config(void)
{
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = 5;
    cfg.max_size = 2;
    assert_int_equal(shp_config_validate(&cfg), -EINVAL);
}

/* A pool whose only connection is released twice (misuse: logged). */
static void provoke_double_release(void)
{
    fx *f = fx_make(0, 1);
    shp_conn *c = NULL;
    assert_int_equal(shp_acquire(f->pool, &c, 1000000000), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(shp_release(c), -EALREADY);
    fx_finish(f);
}

static int restore_log(void **state)
{
    (void)state;
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    return 0;
}

/* ---- shp_log_set ---------------------------------------------------------- */

/* The callback receives single-line, non-empty lines. */
static void test_log_callback_receives_lines(void **state)
{
    (void)state;
    recorder *r = rec_new();
    shp_log_set(rec_fn, r, SHP_LOG_DEBUG);
    provoke_bad_config();
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    assert_true(rec_count(r) >= 1);
    assert_int_equal(REC_GET(r, bad_newline), 0);
    assert_int_equal(REC_GET(r, bad_level_name), 0);
    for (int i = 0; i < r->n && i < REC_MAX; i++)
        assert_true(r->lines[i][0] != '\0');
    rec_free(r);
}

/* validate says which field is wrong. */
static void test_log_bad_config_names_field(void **state)
{
    (void)state;
    recorder *r = rec_new();
    shp_log_set(rec_fn, r, SHP_LOG_DEBUG);
    provoke_bad_config();
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    assert_true(rec_has(r, "min_size") || rec_has(r, "max_size"));
    rec_free(r);
}

/* A double release is logged at warn or above (misuse). */
static void test_log_double_release_logged(void **state)
{
    (void)state;
    recorder *r = rec_new();
    shp_log_set(rec_fn, r, SHP_LOG_WARN);
    provoke_double_release();
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    assert_true(rec_count(r) >= 1);
    assert_true(REC_GET(r, max_level_seen) <= SHP_LOG_WARN);
    assert_int_equal(REC_GET(r, bad_newline), 0);
    assert_int_equal(REC_GET(r, bad_level_name), 0);
    rec_free(r);
}

/* Lines more verbose than max_level are not delivered, at every level. */
static void test_log_level_filtering(void **state)
{
    (void)state;
    static const shp_log_level lv[] = { SHP_LOG_ERROR, SHP_LOG_WARN, SHP_LOG_INFO,
                                        SHP_LOG_DEBUG };
    int counts[4];
    for (int i = 0; i < 4; i++) {
        recorder *r = rec_new();
        shp_log_set(rec_fn, r, lv[i]);
        provoke_bad_config();
        provoke_double_release();
        shp_log_set(NULL, NULL, SHP_LOG_WARN);
        counts[i] = rec_count(r);
        assert_true(REC_GET(r, max_level_seen) <= (int)lv[i]);
        assert_int_equal(REC_GET(r, bad_newline), 0);
        assert_int_equal(REC_GET(r, bad_level_name), 0);
        rec_free(r);
    }
    /* The same events at a more verbose level give at least as many lines
     * (pool events other than these, e.g. from the reaper, only add). */
    assert_true(counts[1] >= 1);
    assert_true(counts[3] >= counts[1]);
}

/* Installing another callback replaces the first; NULL restores the default
 * (the earlier callback gets nothing more). */
static void test_log_replace_and_restore(void **state)
{
    (void)state;
    recorder *a = rec_new(), *b = rec_new();
    shp_log_set(rec_fn, a, SHP_LOG_DEBUG);
    shp_log_set(rec_fn, b, SHP_LOG_DEBUG);
    provoke_bad_config();
    assert_int_equal(rec_count(a), 0);
    int nb = rec_count(b);
    assert_true(nb >= 1);
    /* The default writes to stderr; our recorders see nothing. */
    shp_log_set(NULL, NULL, SHP_LOG_ERROR);
    provoke_bad_config();
    assert_int_equal(rec_count(a), 0);
    assert_int_equal(rec_count(b), nb);
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    rec_free(a);
    rec_free(b);
}

/* shp_log_set may be called at any time from any thread, while others log. */
struct flip_arg {
    recorder *r;
    atomic_int stop;
};

static void *flipper(void *p)
{
    struct flip_arg *fa = p;
    /* Bounded: each call may allocate (the sink is swapped as a whole). */
    for (int i = 0; i < 2000 && !atomic_load(&fa->stop); i++)
        shp_log_set(rec_fn, fa->r, (i & 1) ? SHP_LOG_DEBUG : SHP_LOG_ERROR);
    return NULL;
}

static void *logger(void *p)
{
    (void)p;
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.max_size = 0;
    for (int i = 0; i < 300; i++)
        (void)shp_config_validate(&cfg);
    return NULL;
}

static void test_log_set_concurrent(void **state)
{
    (void)state;
    struct flip_arg fa = { .r = rec_new() };
    atomic_init(&fa.stop, 0);
    shp_log_set(rec_fn, fa.r, SHP_LOG_ERROR);
    pthread_t f, l1, l2;
    assert_int_equal(pthread_create(&f, NULL, flipper, &fa), 0);
    assert_int_equal(pthread_create(&l1, NULL, logger, NULL), 0);
    assert_int_equal(pthread_create(&l2, NULL, logger, NULL), 0);
    pthread_join(l1, NULL);
    pthread_join(l2, NULL);
    atomic_store(&fa.stop, 1);
    pthread_join(f, NULL);
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
    assert_int_equal(REC_GET(fa.r, bad_newline), 0);
    assert_int_equal(REC_GET(fa.r, bad_level_name), 0);
    rec_free(fa.r);
}

/* ---- shp_mask_secrets ------------------------------------------------------ */

static void mask_eq(const char *src, const char *want)
{
    char out[512];
    memset(out, 'Q', sizeof out);
    char *ret = shp_mask_secrets(out, sizeof out, src);
    assert_ptr_equal(ret, out);
    assert_string_equal(out, want);
}

static void mask_hides(const char *src, const char *secret)
{
    char out[512];
    memset(out, 'Q', sizeof out);
    char *ret = shp_mask_secrets(out, sizeof out, src);
    assert_ptr_equal(ret, out);
    assert_non_null(memchr(out, '\0', sizeof out));
    if (strstr(out, secret))
        fail_msg("\"%s\" -> \"%s\" still shows \"%s\"", src, out, secret);
    assert_non_null(strstr(out, "****"));
}

static void test_mask_conninfo(void **state)
{
    (void)state;
    mask_hides("host=h password=hunter2 user=u", "hunter2");
    mask_eq("host=h password=hunter2 user=u", "host=h password=**** user=u");
    mask_eq("password=hunter2", "password=****");
    mask_eq("host=h pass=hunter2", "host=h pass=****");
    mask_eq("secret=hunter2 port=1", "secret=**** port=1");
}

/* libpq allows spaces around '=' ("password = x"); the value is still a
 * secret. */
static void test_mask_conninfo_spaces_around_equals(void **state)
{
    (void)state;
    mask_hides("host=h password = hunter2 user=u", "hunter2");
    mask_hides("host=h password =hunter2 user=u", "hunter2");
    mask_hides("host=h password= hunter2 user=u", "hunter2");
    char out[256];
    shp_mask_secrets(out, sizeof out, "host=h password = hunter2 user=u");
    assert_non_null(strstr(out, "host=h"));
    assert_non_null(strstr(out, "user=u"));
}

/* A password given as a URL query parameter. */
static void test_mask_url_query_password(void **state)
{
    (void)state;
    mask_hides("postgresql://h/db?user=u&password=hunter2", "hunter2");
    mask_eq("postgresql://h/db?user=u&password=hunter2&sslmode=require",
            "postgresql://h/db?user=u&password=****&sslmode=require");
}

/* An unquoted value ends at whitespace only, as libpq reads it: ';' ','
 * '&' '#' are part of it.  In a URL query (key after '?' or '&') '&' ends
 * it, ';' and ',' do not. */
static void test_mask_value_delimiters(void **state)
{
    (void)state;
    mask_eq("host=h password=ab;cd user=u", "host=h password=**** user=u");
    mask_eq("host=h password=ab,cd&ef#gh user=u", "host=h password=**** user=u");
    mask_eq("host=h\tpassword=ab;cd\tuser=u", "host=h\tpassword=****\tuser=u");
    mask_eq("postgresql://h/db?password=ab;cd&sslmode=require",
            "postgresql://h/db?password=****&sslmode=require");
    mask_eq("postgresql://h/db?user=u&password=ab,cd", "postgresql://h/db?user=u&password=****");
    mask_eq("postgresql://h/db?user=u&password=ab,cd#x y=1",
            "postgresql://h/db?user=u&password=**** y=1");
}

/* The rest of the string around the secret is kept. */
static void test_mask_conninfo_keeps_rest(void **state)
{
    (void)state;
    char out[256];
    shp_mask_secrets(out, sizeof out,
                     "host=db.example port=5432 password=hunter2 dbname=orders sslmode=require");
    assert_null(strstr(out, "hunter2"));
    assert_non_null(strstr(out, "host=db.example"));
    assert_non_null(strstr(out, "port=5432"));
    assert_non_null(strstr(out, "dbname=orders"));
    assert_non_null(strstr(out, "sslmode=require"));
}

static void test_mask_redis_url(void **state)
{
    (void)state;
    mask_hides("redis://user:hunter2@host:6379/0", "hunter2");
    mask_eq("redis://user:hunter2@host:6379/0", "redis://user:****@host:6379/0");
    mask_hides("redis://:hunter2@host:6379", "hunter2");
}

static void test_mask_postgres_url(void **state)
{
    (void)state;
    mask_hides("postgresql://u:hunter2@h/db", "hunter2");
    mask_eq("postgresql://u:hunter2@h/db", "postgresql://u:****@h/db");
    mask_hides("postgres://u:hunter2@h:5432/db?sslmode=disable", "hunter2");
}

/* A quoted value is masked whole: neither part of it survives. */
static void test_mask_quoted(void **state)
{
    (void)state;
    char out[256];
    shp_mask_secrets(out, sizeof out, "password='a b' host=h");
    assert_null(strstr(out, "a b"));
    assert_null(strstr(out, "b'"));
    assert_null(strstr(out, " b"));
    assert_non_null(strstr(out, "****"));
    assert_non_null(strstr(out, "host=h"));

    shp_mask_secrets(out, sizeof out, "user=u password='hunter2 x\\'y' host=h");
    assert_null(strstr(out, "hunter2"));
    assert_null(strstr(out, "y'"));
    assert_non_null(strstr(out, "user=u"));
    assert_non_null(strstr(out, "host=h"));
}

/* Truncation: NUL-terminated inside dstlen, never a piece of the secret. */
static void test_mask_truncation(void **state)
{
    (void)state;
    static const char *srcs[] = {
        "host=h password=XYZZY user=u",
        "redis://u:XYZZY@h:6379/0",
        "password='XY ZZY' host=h",
    };
    char full[256];
    for (size_t s = 0; s < sizeof srcs / sizeof srcs[0]; s++) {
        shp_mask_secrets(full, sizeof full, srcs[s]);
        size_t flen = strlen(full);
        for (size_t len = 1; len <= flen + 4; len++) {
            char out[300];
            memset(out, 'Q', sizeof out);
            char *ret = shp_mask_secrets(out, len, srcs[s]);
            assert_ptr_equal(ret, out);
            size_t n = strnlen(out, len);
            assert_true(n < len);                /* NUL inside dstlen */
            assert_int_equal(out[len], 'Q');     /* nothing written past it */
            assert_null(strpbrk(out, "XYZ"));    /* no piece of the secret */
        }
    }
}

/* dstlen 0: nothing is written. */
static void test_mask_zero_len(void **state)
{
    (void)state;
    char out[4] = { 'Q', 'Q', 'Q', 'Q' };
    char *ret = shp_mask_secrets(out, 0, "password=hunter2");
    assert_ptr_equal(ret, out);
    assert_int_equal(out[0], 'Q');
}

/* Strings without secrets are copied unchanged. */
static void test_mask_no_secret_unchanged(void **state)
{
    (void)state;
    mask_eq("", "");
    mask_eq("host=h port=5432 user=u dbname=d", "host=h port=5432 user=u dbname=d");
    mask_eq("redis://host:6379/0", "redis://host:6379/0");
    mask_eq("redis://user@host:6379/0", "redis://user@host:6379/0");
    mask_eq("postgresql://u@h/db", "postgresql://u@h/db");
    mask_eq("level=warn pool=orders event=release_twice err=EALREADY",
            "level=warn pool=orders event=release_twice err=EALREADY");
    mask_eq("http://h:8080/path", "http://h:8080/path");
}

/* Without truncation, the output fits exactly when the input has no secret. */
static void test_mask_exact_fit(void **state)
{
    (void)state;
    const char *src = "host=h user=u";
    char out[32];
    memset(out, 'Q', sizeof out);
    shp_mask_secrets(out, strlen(src) + 1, src);
    assert_string_equal(out, src);
    memset(out, 'Q', sizeof out);
    shp_mask_secrets(out, strlen(src), src);
    assert_int_equal(strlen(out), strlen(src) - 1);
    assert_memory_equal(out, src, strlen(src) - 1);
}

/* ---- the repeat limit ------------------------------------------------------------ */

static _Atomic int64_t fake_now;

static int64_t fake_clock(void)
{
    return atomic_load(&fake_now);
}

/* A recorder as the sink and the fake clock at 0 for the repeat limit. */
static recorder *repeat_start(void)
{
    recorder *r = rec_new();
    atomic_store(&fake_now, 0);
    shp_log_set(rec_fn, r, SHP_LOG_DEBUG);
    shp__log_set_repeat(-1, fake_clock); /* the default window */
    return r;
}

static int restore_repeat(void **state)
{
    shp__log_set_repeat(-1, NULL);
    return restore_log(state);
}

static const char *rec_line(recorder *r, int i)
{
    assert_true(i < REC_MAX);
    return r->lines[i];
}

/* Identical lines within the window are dropped and counted; the first one
 * after the window carries the count; the window starts again there. */
static void test_repeat_suppressed_and_counted(void **state)
{
    (void)state;
    recorder *r = repeat_start();
    for (int i = 0; i < 5; i++)
        shp__log(SHP_LOG_WARN, "rl", "event=connect_failed err=ECONNREFUSED msg=\"%s\"", "down");
    assert_int_equal(rec_count(r), 1);
    assert_null(strstr(rec_line(r, 0), "suppressed="));

    atomic_store(&fake_now, SHP_LOG_REPEAT_WINDOW_NS - 1); /* still inside */
    shp__log(SHP_LOG_WARN, "rl", "event=connect_failed err=ECONNREFUSED msg=\"%s\"", "down");
    assert_int_equal(rec_count(r), 1);

    atomic_store(&fake_now, SHP_LOG_REPEAT_WINDOW_NS); /* the window has passed */
    shp__log(SHP_LOG_WARN, "rl", "event=connect_failed err=ECONNREFUSED msg=\"%s\"", "down");
    assert_int_equal(rec_count(r), 2);
    assert_string_equal(rec_line(r, 1),
                        "level=warn pool=rl event=connect_failed err=ECONNREFUSED msg=\"down\" "
                        "suppressed=5");
    /* a new window from that delivery: dropped again, then counted anew */
    shp__log(SHP_LOG_WARN, "rl", "event=connect_failed err=ECONNREFUSED msg=\"%s\"", "down");
    assert_int_equal(rec_count(r), 2);
    atomic_store(&fake_now, 3 * SHP_LOG_REPEAT_WINDOW_NS);
    shp__log(SHP_LOG_WARN, "rl", "event=connect_failed err=ECONNREFUSED msg=\"%s\"", "down");
    assert_int_equal(rec_count(r), 3);
    assert_non_null(strstr(rec_line(r, 2), " suppressed=1"));
    /* nothing dropped since: no count */
    atomic_store(&fake_now, 5 * SHP_LOG_REPEAT_WINDOW_NS);
    shp__log(SHP_LOG_WARN, "rl", "event=connect_failed err=ECONNREFUSED msg=\"%s\"", "down");
    assert_int_equal(rec_count(r), 4);
    assert_null(strstr(rec_line(r, 3), "suppressed="));
    rec_free(r);
}

/* Only identical lines are limited: another text, another pool or another
 * level is a line of its own. */
static void test_repeat_only_identical(void **state)
{
    (void)state;
    recorder *r = repeat_start();
    shp__log(SHP_LOG_WARN, "a", "event=x n=%d", 1);
    shp__log(SHP_LOG_WARN, "a", "event=x n=%d", 2);
    shp__log(SHP_LOG_WARN, "b", "event=x n=%d", 1);
    shp__log(SHP_LOG_ERROR, "a", "event=x n=%d", 1);
    shp__log(SHP_LOG_WARN, "a", "event=x n=%d", 1);
    shp__log(SHP_LOG_WARN, "a", "event=x n=%d", 2);
    assert_int_equal(rec_count(r), 4);
    rec_free(r);
}

/* The table remembers SHP_LOG_REPEAT_SLOTS lines: that many distinct lines
 * all stay limited; one more makes it forget the least recently delivered,
 * whose next occurrence is delivered as new. */
static void test_repeat_table_size(void **state)
{
    (void)state;
    recorder *r = repeat_start();
    for (int i = 0; i < SHP_LOG_REPEAT_SLOTS; i++) {
        atomic_store(&fake_now, i); /* line i delivered at i ns */
        shp__log(SHP_LOG_INFO, "t", "event=line n=%d", i);
    }
    for (int i = 0; i < SHP_LOG_REPEAT_SLOTS; i++)
        shp__log(SHP_LOG_INFO, "t", "event=line n=%d", i);
    assert_int_equal(rec_count(r), SHP_LOG_REPEAT_SLOTS);
    shp__log(SHP_LOG_INFO, "t", "event=line n=%d", SHP_LOG_REPEAT_SLOTS); /* evicts n=0 */
    assert_int_equal(rec_count(r), SHP_LOG_REPEAT_SLOTS + 1);
    shp__log(SHP_LOG_INFO, "t", "event=line n=%d", 0);
    assert_int_equal(rec_count(r), SHP_LOG_REPEAT_SLOTS + 2);
    assert_string_equal(rec_line(r, SHP_LOG_REPEAT_SLOTS + 1), "level=info pool=t event=line n=0");
    shp__log(SHP_LOG_INFO, "t", "event=line n=%d", 2); /* still remembered */
    assert_int_equal(rec_count(r), SHP_LOG_REPEAT_SLOTS + 2);
    rec_free(r);
}

/* shp_log_set forgets what was seen: a new sink gets the line; window 0
 * turns the limit off. */
static void test_repeat_reset_and_off(void **state)
{
    (void)state;
    recorder *a = repeat_start(), *b = rec_new();
    shp__log(SHP_LOG_WARN, "s", "event=same");
    shp__log(SHP_LOG_WARN, "s", "event=same");
    assert_int_equal(rec_count(a), 1);
    shp_log_set(rec_fn, b, SHP_LOG_DEBUG);
    shp__log(SHP_LOG_WARN, "s", "event=same");
    assert_int_equal(rec_count(b), 1);
    shp__log_set_repeat(0, fake_clock);
    for (int i = 0; i < 3; i++)
        shp__log(SHP_LOG_WARN, "s", "event=same");
    assert_int_equal(rec_count(b), 4);
    rec_free(a);
    rec_free(b);
}

/* Every control byte that reaches a line through a string (a pool name, a
 * backend's message) is written as \xNN: no line can be split or forged. */
static void test_control_characters_escaped(void **state)
{
    (void)state;
    recorder *r = repeat_start();
    shp__log(SHP_LOG_WARN, "evil\nlevel=error pool=x", "msg=\"%s\" t=%s", "a\r\nb\x1b[31m\x7f",
             "tab\there");
    assert_int_equal(rec_count(r), 1);
    const char *l = rec_line(r, 0);
    for (const char *p = l; *p; p++)
        assert_false((unsigned char)*p < 0x20 || *p == 0x7f);
    assert_string_equal(l, "level=warn pool=evil\\x0alevel=error pool=x msg=\"a\\x0d\\x0ab"
                           "\\x1b[31m\\x7f\" t=tab\\x09here");
    /* a long string is cut whole escapes at a time, never half an escape */
    char big[700];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    shp__log(SHP_LOG_WARN, NULL, "v=%s", big);
    assert_int_equal(rec_count(r), 2);
    l = rec_line(r, 1);
    size_t len = strlen(l);
    assert_true(len < 512);
    assert_int_equal((len - strlen("level=warn pool=- v=")) % 4, 0);
    assert_string_equal(l + len - 4, "\\x0a");
    assert_int_equal(REC_GET(r, bad_newline), 0);
    rec_free(r);
}

/* A line longer than the sink's length is masked whole before it is cut:
 * a URL whose '@' lies past the cut, or a key=value secret the cut falls
 * inside, shows no part of its password.  Lines of any length are masked
 * (the text goes to the heap when it does not fit the stack). */
static void test_long_line_masked_before_cut(void **state)
{
    (void)state;
    recorder *r = repeat_start();
    shp__log_set_repeat(0, fake_clock); /* lines cut alike are not repeats here */
    for (size_t pad = 440; pad < 520; pad++) {
        char filler[600];
        memset(filler, 'f', pad);
        filler[pad] = '\0';
        rec_free(r);
        r = rec_new();
        shp_log_set(rec_fn, r, SHP_LOG_DEBUG);
        shp__log(SHP_LOG_WARN, "p", "v=%s url=postgresql://app:Hunter2Secret@db/orders", filler);
        shp__log(SHP_LOG_WARN, "p", "v=%s password=Hunter2Secret host=h", filler);
        shp__log(SHP_LOG_WARN, "p", "v=%s msg=\"redis://:Hunter2Secret@h:6379\"", filler);
        assert_int_equal(rec_count(r), 3);
        for (int i = 0; i < 3; i++) {
            const char *l = rec_line(r, i);
            assert_true(strlen(l) < 512);
            if (strstr(l, "Hunt") || strstr(l, "Secret"))
                fail_msg("pad %zu: line %d shows the password: %s", pad, i, l);
        }
    }
    /* far longer than any buffer: still masked, still cut */
    size_t big = 100000;
    char *filler = malloc(big + 1);
    assert_non_null(filler);
    memset(filler, 'g', big);
    filler[big] = '\0';
    shp__log(SHP_LOG_WARN, "p", "v=%s password=Hunter2Secret", filler);
    assert_int_equal(rec_count(r), 4);
    assert_int_equal(strlen(rec_line(r, 3)), 511);
    assert_null(strstr(rec_line(r, 3), "Hunt"));
    free(filler);
    rec_free(r);
}

/* Masking sees the text as written, control bytes raw: a tab or any other
 * control byte before a key separates it (escaped first, "\tpassword="
 * would read as the key "x09password"), and one inside an unquoted value
 * does not end it (libpq reads "ab\x01cd" as one value). */
static void test_control_bytes_masked_before_escaped(void **state)
{
    (void)state;
    recorder *r = repeat_start();
    shp__log(SHP_LOG_WARN, "p", "a=x\tpassword=Hunter2Secret\tb=y");
    shp__log(SHP_LOG_WARN, "p", "a=x\x01pass=Hunter2Secret b=y");
    shp__log(SHP_LOG_WARN, "p", "a=x password=Hunt\x01er2Secret b=y");
    assert_int_equal(rec_count(r), 3);
    assert_string_equal(rec_line(r, 0), "level=warn pool=p a=x\\x09password=****\\x09b=y");
    assert_string_equal(rec_line(r, 1), "level=warn pool=p a=x\\x01pass=**** b=y");
    assert_string_equal(rec_line(r, 2), "level=warn pool=p a=x password=**** b=y");
    rec_free(r);
}

/* shp_set_error_detail masks the whole detail before cutting it to
 * SHP_ERROR_DETAIL_MAX - 1 bytes and before making control bytes spaces and
 * double quotes single: no cut, control byte or quote shows a piece of the
 * password. */
static void test_error_detail_masked_whole(void **state)
{
    (void)state;
    char got[SHP_ERROR_DETAIL_MAX];
    for (int pad = 200; pad < 270; pad++) {
        shp_set_error_detail("%*s password=Hunter2Secret x=%s", pad, "e",
                             "postgresql://u:Hunter2Secret@h/db");
        shp__error_detail_take(got, sizeof got);
        assert_true(strlen(got) < SHP_ERROR_DETAIL_MAX);
        if (strstr(got, "Hunt") || strstr(got, "Secret"))
            fail_msg("pad %d: detail shows the password: %s", pad, got);
    }
    shp_set_error_detail("a password=Hunt\x01er2Secret b=\"q\"\n");
    shp__error_detail_take(got, sizeof got);
    assert_string_equal(got, "a password=**** b='q'");
    shp_set_error_detail("a password=\"Hunt'er2 Secret\" b=c");
    shp__error_detail_take(got, sizeof got);
    assert_string_equal(got, "a password=**** b=c");
}

/* ---- SHARDPOOL_LOG_LEVEL ----------------------------------------------------------- */

static void test_level_parse(void **state)
{
    (void)state;
    static const struct { const char *s; int want; } cases[] = {
        { "error", SHP_LOG_ERROR }, { "ERROR", SHP_LOG_ERROR }, { "0", SHP_LOG_ERROR },
        { "warn", SHP_LOG_WARN },   { "Warning", SHP_LOG_WARN }, { "1", SHP_LOG_WARN },
        { "info", SHP_LOG_INFO },   { "INFO", SHP_LOG_INFO },    { "2", SHP_LOG_INFO },
        { "debug", SHP_LOG_DEBUG }, { "Debug", SHP_LOG_DEBUG },  { "3", SHP_LOG_DEBUG },
        { "4", -1 }, { "-1", -1 }, { "01", -1 }, { "", -1 }, { "garbage", -1 },
        { "warn ", -1 }, { "infox", -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (shp__log_level_parse(cases[i].s) != cases[i].want)
            fail_msg("\"%s\": %d, want %d", cases[i].s, shp__log_level_parse(cases[i].s),
                     cases[i].want);
    assert_int_equal(shp__log_level_parse(NULL), -1);
}

/* Runs fn with the default sink's stderr in a temporary file; returns what
 * was written (static buffer). */
static const char *stderr_of(void (*fn)(void))
{
    static char out[8192];
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(fileno(stderr));
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), fileno(stderr)) >= 0);
    fn();
    fflush(stderr);
    dup2(saved, fileno(stderr));
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void log_three_levels_twice(void)
{
    for (int i = 0; i < 2; i++) {
        shp__log(SHP_LOG_ERROR, "envtest", "event=e%d", i);
        shp__log(SHP_LOG_WARN, "envtest", "event=w%d", i);
        shp__log(SHP_LOG_INFO, "envtest", "event=i%d", i);
    }
}

/* The default sink takes its level from SHARDPOOL_LOG_LEVEL, by name or
 * number; anything else gives one warning (not one per line) and warn. */
static void test_level_from_env(void **state)
{
    (void)state;
    shp_log_set(NULL, NULL, SHP_LOG_WARN); /* the default sink */
    shp__log_set_repeat(0, NULL);          /* the same lines are logged again below */
    setenv("SHARDPOOL_LOG_LEVEL", "Info", 1);
    shp__log_env_reset();
    const char *out = stderr_of(log_three_levels_twice);
    assert_int_equal(count_of(out, "event=e"), 2);
    assert_int_equal(count_of(out, "event=i"), 2);
    assert_int_equal(count_of(out, "event=bad_env"), 0);

    setenv("SHARDPOOL_LOG_LEVEL", "0", 1);
    shp__log_env_reset();
    out = stderr_of(log_three_levels_twice);
    assert_int_equal(count_of(out, "event=e"), 2);
    assert_int_equal(count_of(out, "event=w"), 0);

    setenv("SHARDPOOL_LOG_LEVEL", "verbose\nlevel=error", 1);
    shp__log_env_reset();
    out = stderr_of(log_three_levels_twice);
    assert_int_equal(count_of(out, "event=bad_env"), 1);
    assert_non_null(strstr(out, "level=warn pool=- event=bad_env var=SHARDPOOL_LOG_LEVEL "
                                "value=\"verbose\\x0alevel=error\""));
    assert_non_null(strstr(out, "using=warn"));
    assert_int_equal(count_of(out, "event=w"), 2); /* warn, the fallback */
    assert_int_equal(count_of(out, "event=i"), 0);
    assert_int_equal(count_of(out, "\n"), 5);      /* no line split */
    out = stderr_of(log_three_levels_twice);       /* warned once only */
    assert_int_equal(count_of(out, "event=bad_env"), 0);

    unsetenv("SHARDPOOL_LOG_LEVEL");
    shp__log_env_reset();
    out = stderr_of(log_three_levels_twice);
    assert_int_equal(count_of(out, "event=w"), 2);
    assert_int_equal(count_of(out, "event=i"), 0);
    assert_int_equal(count_of(out, "event=bad_env"), 0);
}

static int restore_env(void **state)
{
    unsetenv("SHARDPOOL_LOG_LEVEL");
    shp__log_env_reset();
    return restore_repeat(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_log_callback_receives_lines, restore_log),
        cmocka_unit_test_teardown(test_log_bad_config_names_field, restore_log),
        cmocka_unit_test_teardown(test_log_double_release_logged, restore_log),
        cmocka_unit_test_teardown(test_log_level_filtering, restore_log),
        cmocka_unit_test_teardown(test_log_replace_and_restore, restore_log),
        cmocka_unit_test_teardown(test_log_set_concurrent, restore_log),
        cmocka_unit_test(test_mask_conninfo),
        cmocka_unit_test(test_mask_conninfo_keeps_rest),
        cmocka_unit_test(test_mask_conninfo_spaces_around_equals),
        cmocka_unit_test(test_mask_url_query_password),
        cmocka_unit_test(test_mask_value_delimiters),
        cmocka_unit_test(test_mask_redis_url),
        cmocka_unit_test(test_mask_postgres_url),
        cmocka_unit_test(test_mask_quoted),
        cmocka_unit_test(test_mask_truncation),
        cmocka_unit_test(test_mask_zero_len),
        cmocka_unit_test(test_mask_no_secret_unchanged),
        cmocka_unit_test(test_mask_exact_fit),
        cmocka_unit_test_teardown(test_repeat_suppressed_and_counted, restore_repeat),
        cmocka_unit_test_teardown(test_repeat_only_identical, restore_repeat),
        cmocka_unit_test_teardown(test_repeat_table_size, restore_repeat),
        cmocka_unit_test_teardown(test_repeat_reset_and_off, restore_repeat),
        cmocka_unit_test_teardown(test_control_characters_escaped, restore_repeat),
        cmocka_unit_test_teardown(test_long_line_masked_before_cut, restore_repeat),
        cmocka_unit_test_teardown(test_control_bytes_masked_before_escaped, restore_repeat),
        cmocka_unit_test(test_error_detail_masked_whole),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test_teardown(test_level_from_env, restore_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
