/* log.c - the log sink and secret masking. */
#include "util.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* The sink: set rarely, read on every logged line.  Readers copy it under
 * the mutex and call it outside, so a callback may itself log or reset the
 * sink.  The level alone is an atomic so filtered-out lines take no lock. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static shp_log_fn sink_fn;
static void *sink_ud;
static _Atomic int sink_level = -1; /* -1: default sink, level from env */
static _Atomic int env_level = -1;

static int level_from_env(void)
{
    int lvl = atomic_load_explicit(&env_level, memory_order_relaxed);
    if (lvl >= 0)
        return lvl;
    lvl = SHP_LOG_WARN;
    const char *e = getenv("SHARDPOOL_LOG_LEVEL");
    for (int i = 0; e && i < 4; i++)
        if (strcasecmp(e, level_names[i]) == 0)
            lvl = i;
    atomic_store_explicit(&env_level, lvl, memory_order_relaxed);
    return lvl;
}

static int max_level(void)
{
    int lvl = atomic_load_explicit(&sink_level, memory_order_acquire);
    return lvl >= 0 ? lvl : level_from_env();
}

void shp_log_set(shp_log_fn fn, void *ud, shp_log_level level)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_ud = fn ? ud : NULL;
    atomic_store_explicit(&sink_level, fn ? (int)level : -1, memory_order_release);
    pthread_mutex_unlock(&sink_lock);
}

int shp__log_enabled(shp_log_level level)
{
    return (int)level <= max_level();
}

void shp__log(shp_log_level level, const char *pool, const char *fmt, ...)
{
    if ((int)level > max_level())
        return;
    char raw[512], line[512];
    int n = snprintf(raw, sizeof raw, "level=%s pool=%s ",
                     level_names[level < 4 ? level : 3], pool ? pool : "-");
    if (n < 0)
        return;
    if ((size_t)n < sizeof raw) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw + n, sizeof raw - (size_t)n, fmt, ap);
        va_end(ap);
    }
    shp_mask_secrets(line, sizeof line, raw);
    pthread_mutex_lock(&sink_lock);
    shp_log_fn fn = sink_fn;
    void *ud = sink_ud;
    pthread_mutex_unlock(&sink_lock);
    if (fn)
        fn(level, line, ud);
    else
        fprintf(stderr, "shardpool: %s\n", line);
}

/* Appends c to dst if room remains (one byte is kept for the NUL). */
static void put(char *dst, size_t len, size_t *o, char c)
{
    if (*o + 1 < len)
        dst[(*o)++] = c;
}

static void puts_(char *dst, size_t len, size_t *o, const char *s)
{
    while (*s)
        put(dst, len, o, *s++);
}

static int secret_key_ends_at(const char *start, const char *eq)
{
    static const char *const keys[] = { "password", "passwd", "pass", "pwd",
                                        "secret", "token", "auth" };
    while (eq > start && (eq[-1] == ' ' || eq[-1] == '\t'))
        eq--; /* libpq allows "password = x" */
    const char *k = eq;
    while (k > start && (isalnum((unsigned char)k[-1]) || k[-1] == '_' || k[-1] == '-'))
        k--;
    size_t klen = (size_t)(eq - k);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t n = strlen(keys[i]);
        /* key equals a secret name, or ends with it after '_' (db_password) */
        if (klen >= n && strncasecmp(eq - n, keys[i], n) == 0 &&
            (klen == n || eq[-(long)n - 1] == '_' || eq[-(long)n - 1] == '-'))
            return 1;
    }
    return 0;
}

char *shp_mask_secrets(char *dst, size_t len, const char *src)
{
    size_t o = 0;
    if (!dst || len == 0)
        return dst;
    if (!src) {
        dst[0] = '\0';
        return dst;
    }
    const char *p = src;
    while (*p) {
        /* scheme://user:password@host — mask what is between ':' and '@'. */
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            const char *auth = p + 3;
            const char *end = auth + strcspn(auth, "/?# \t");
            const char *at = NULL;
            for (const char *q = auth; q < end; q++)
                if (*q == '@')
                    at = q;
            const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
            if (colon) {
                for (const char *q = p; q <= colon; q++)
                    put(dst, len, &o, *q);
                puts_(dst, len, &o, "****");
                p = at;
                continue;
            }
        }
        /* key=value where key names a secret — mask the value (quoted or not). */
        if (*p == '=' && secret_key_ends_at(src, p)) {
            put(dst, len, &o, '=');
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                while (*p && *p != q)
                    p += (*p == '\\' && p[1]) ? 2 : 1;
                if (*p)
                    p++;
            } else {
                while (*p && !isspace((unsigned char)*p) && *p != '&' && *p != ';' && *p != ',')
                    p++;
            }
            puts_(dst, len, &o, "****");
            continue;
        }
        put(dst, len, &o, *p++);
    }
    dst[o] = '\0';
    return dst;
}

/* ---- callback failure details ------------------------------------------ */

/* Per thread: set by a callback, taken by the pool on the same thread right
 * after the callback returns, so no locking. */
static _Thread_local char detail[SHP_ERROR_DETAIL_MAX];

void shp_set_error_detail(const char *fmt, ...)
{
    char raw[SHP_ERROR_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = fmt ? vsnprintf(raw, sizeof raw, fmt, ap) : -1;
    va_end(ap);
    if (n < 0) {
        detail[0] = '\0';
        return;
    }
    /* One line that fits in key="value": control characters become spaces,
     * double quotes single ones; trailing spaces go. */
    size_t len = strlen(raw);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x20 || c == 0x7f)
            raw[i] = ' ';
        else if (c == '"')
            raw[i] = '\'';
    }
    while (len > 0 && raw[len - 1] == ' ')
        raw[--len] = '\0';
    shp_mask_secrets(detail, sizeof detail, raw);
}

size_t shp__error_detail_take(char *buf, size_t len)
{
    size_t n = strlen(detail);
    if (n >= len)
        n = len - 1;
    memcpy(buf, detail, n);
    buf[n] = '\0';
    detail[0] = '\0';
    return n;
}

void shp__error_detail_clear(void)
{
    detail[0] = '\0';
}

void shp__log_before_fork(void)
{
    pthread_mutex_lock(&sink_lock);
}

void shp__log_after_fork(bool child)
{
    (void)child; /* the sink and the level stay what they were */
    pthread_mutex_unlock(&sink_lock);
}
