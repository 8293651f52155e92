/* log.c - the log sink, the repeat limit, misuse reports, secret masking
 * and the SHARDPOOL_* environment variables it reads (log_internal.h). */
#include "log_internal.h"
#include "util.h"

#include <shardpool/error.h>

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const level_names[] = { "error", "warn", "info", "debug" };

#define LINE_MAX_LEN 512 /* a line is cut to this, NUL included */

/* The sink: set rarely, read on every logged line.  Readers copy it under
 * the mutex and call it outside, so a callback may itself log or reset the
 * sink.  The level alone is an atomic so filtered-out lines take no lock. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static shp_log_fn sink_fn;
static void *sink_ud;
static _Atomic int sink_level = -1; /* -1: default sink, level from env */
static _Atomic int env_level = -1;

/* The repeat limit (log.h), under sink_lock: one slot per distinct line
 * delivered lately, found by a 64-bit hash of its level and text. */
struct repeat_slot {
    uint64_t hash;        /* 0: free */
    int64_t delivered_ns; /* when this text was last delivered */
    uint64_t suppressed;  /* dropped since then */
};
static struct repeat_slot repeats[SHP_LOG_REPEAT_SLOTS];
static int64_t repeat_window_ns = SHP_LOG_REPEAT_WINDOW_NS;
static int64_t (*repeat_clock)(void) = shp__now_ns;

/* ---- environment ---------------------------------------------------------- */

/* One warning line for an environment variable that holds none of the
 * accepted values (value shown cut to 40 bytes, quotes made single). */
static void bad_env(const char *var, const char *value, const char *expected, const char *using)
{
    char v[41];
    snprintf(v, sizeof v, "%s", value);
    for (char *q = v; *q; q++)
        if (*q == '"')
            *q = '\'';
    shp__log(SHP_LOG_WARN, NULL, "event=bad_env var=%s value=\"%s\" expected=\"%s\" using=%s",
             var, v, expected, using);
}

int shp__env_flag(const char *var, bool dflt)
{
    static const char *const on[] = { "1", "true", "yes", "on" };
    static const char *const off[] = { "0", "false", "no", "off" };
    const char *v = getenv(var);
    if (!v || !*v)
        return dflt;
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        if (strcasecmp(v, on[i]) == 0)
            return 1;
        if (strcasecmp(v, off[i]) == 0)
            return 0;
    }
    bad_env(var, v, "1, true, yes, on or 0, false, no, off", dflt ? "on" : "off");
    return dflt;
}

int shp__log_level_parse(const char *s)
{
    static const char *const alias[] = { "error", "warning", "info", "debug" };
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0 || strcasecmp(s, alias[i]) == 0)
            return i;
    if (s[0] >= '0' && s[0] <= '3' && s[1] == '\0')
        return s[0] - '0';
    return -1;
}

static int level_from_env(void)
{
    int lvl = atomic_load_explicit(&env_level, memory_order_acquire);
    if (lvl >= 0)
        return lvl;
    const char *e = getenv("SHARDPOOL_LOG_LEVEL");
    int parsed = e && *e ? shp__log_level_parse(e) : SHP_LOG_WARN;
    lvl = parsed >= 0 ? parsed : SHP_LOG_WARN;
    int unset = -1;
    /* Whoever stores the level first warns: once per process (per
     * shp__log_env_reset).  The warning reads env_level, now set. */
    if (atomic_compare_exchange_strong_explicit(&env_level, &unset, lvl, memory_order_acq_rel,
                                                memory_order_acquire)) {
        if (parsed < 0)
            bad_env("SHARDPOOL_LOG_LEVEL", e, "error, warn, info, debug or 0-3", "warn");
        return lvl;
    }
    return unset;
}

void shp__log_env_reset(void)
{
    atomic_store_explicit(&env_level, -1, memory_order_release);
}

static int max_level(void)
{
    int lvl = atomic_load_explicit(&sink_level, memory_order_acquire);
    return lvl >= 0 ? lvl : level_from_env();
}

/* ---- the sink ------------------------------------------------------------- */

void shp_log_set(shp_log_fn fn, void *ud, shp_log_level level)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_ud = fn ? ud : NULL;
    memset(repeats, 0, sizeof repeats);
    atomic_store_explicit(&sink_level, fn ? (int)level : -1, memory_order_release);
    pthread_mutex_unlock(&sink_lock);
}

void shp__log_set_repeat(int64_t window_ns, int64_t (*clock_ns)(void))
{
    pthread_mutex_lock(&sink_lock);
    repeat_window_ns = window_ns < 0 ? SHP_LOG_REPEAT_WINDOW_NS : window_ns;
    repeat_clock = clock_ns ? clock_ns : shp__now_ns;
    memset(repeats, 0, sizeof repeats);
    pthread_mutex_unlock(&sink_lock);
}

int shp__log_enabled(shp_log_level level)
{
    return (int)level <= max_level();
}

/* FNV-1a over the level and the line, never 0 (0 marks a free slot). */
static uint64_t line_hash(shp_log_level level, const char *line)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)level;
    for (const unsigned char *p = (const unsigned char *)line; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h ? h : 1;
}

/* The repeat limit for one line; sink_lock held.  Returns false when the
 * line is to be dropped, else true with *suppressed = the lines of this
 * text dropped since its previous delivery. */
static bool repeat_admit(shp_log_level level, const char *line, uint64_t *suppressed)
{
    *suppressed = 0;
    if (repeat_window_ns <= 0)
        return true;
    int64_t now = repeat_clock();
    uint64_t h = line_hash(level, line);
    struct repeat_slot *victim = &repeats[0];
    for (size_t i = 0; i < SHP_LOG_REPEAT_SLOTS; i++) {
        struct repeat_slot *s = &repeats[i];
        if (s->hash == h) {
            if (now - s->delivered_ns < repeat_window_ns) {
                s->suppressed++;
                return false;
            }
            *suppressed = s->suppressed;
            s->suppressed = 0;
            s->delivered_ns = now;
            return true;
        }
        /* a free slot, else the least recently delivered line */
        if (victim->hash != 0 && (s->hash == 0 || s->delivered_ns < victim->delivered_ns))
            victim = s;
    }
    *victim = (struct repeat_slot){ .hash = h, .delivered_ns = now };
    return true;
}

/* Copies src into dst (size len, NUL-terminated) with every control byte
 * (< 0x20, 0x7f) written as \xNN; an escape that does not fit is left out
 * whole. */
static void escape_controls(char *dst, size_t len, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            if (o + 1 >= len)
                break;
            dst[o++] = (char)*p;
        } else {
            if (o + 4 >= len)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[*p >> 4];
            dst[o++] = hex[*p & 15];
        }
    }
    dst[o] = '\0';
}

/* Formats fmt with ap, whole, into buf (size len) if it fits, else into a
 * malloc'd buffer.  Returns the text (buf or the heap copy, which the
 * caller frees), or NULL if formatting fails or no memory is left.
 * Consumes ap. */
static char *format_whole(char *buf, size_t len, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(buf, len, fmt, ap);
    char *out = NULL;
    if (n >= 0 && (size_t)n < len)
        out = buf;
    else if (n >= 0 && (out = malloc((size_t)n + 1)) != NULL)
        vsnprintf(out, (size_t)n + 1, fmt, again);
    va_end(again);
    return out;
}

/* Formats "level=<lvl> pool=<pool> " and fmt with ap, whole, into buf
 * (size len) if it fits, else into a malloc'd buffer.  Returns the text
 * (buf or the heap copy, which the caller frees), or NULL if formatting
 * fails or no memory is left.  Consumes ap. */
static char *format_line(char *buf, size_t len, const char *lvl, const char *pool,
                         const char *fmt, va_list ap)
{
    int p = snprintf(NULL, 0, "level=%s pool=%s ", lvl, pool);
    if (p < 0)
        return NULL;
    size_t plen = (size_t)p;
    va_list again;
    va_copy(again, ap);
    int n = plen < len ? vsnprintf(buf + plen, len - plen, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
    char *out = NULL;
    if (n >= 0 && plen + (size_t)n < len)
        out = buf;
    else if (n >= 0 && (out = malloc(plen + (size_t)n + 1)) != NULL)
        vsnprintf(out + plen, (size_t)n + 1, fmt, again);
    va_end(again);
    if (out) { /* the prefix's NUL lands on the text's first byte: put it back */
        char first = out[plen];
        snprintf(out, plen + 1, "level=%s pool=%s ", lvl, pool);
        out[plen] = first;
    }
    return out;
}

void shp__log(shp_log_level level, const char *pool, const char *fmt, ...)
{
    if ((int)level > max_level())
        return;
    /* The whole text is masked before anything is cut or escaped.  Cut
     * first, a secret whose end falls past the cut would show its start;
     * escaped first, a control byte before a key ("\tpassword=") would join
     * it ("x09password") and the key would no longer be recognised. */
    char stack[2 * LINE_MAX_LEN], masked[LINE_MAX_LEN], line[LINE_MAX_LEN + 32];
    const char *lvl = level_names[level < 4 ? level : 3];
    va_list ap;
    va_start(ap, fmt);
    char *raw = format_line(stack, sizeof stack, lvl, pool ? pool : "-", fmt, ap);
    va_end(ap);
    if (!raw) {
        /* No memory for a long line: its text is dropped rather than cut
         * unmasked; so is a pool name that would not fit whole. */
        static const char dropped[] = "level=%s pool=%s event=log_line_dropped reason=out_of_memory";
        int n = snprintf(stack, sizeof stack, dropped, lvl, pool ? pool : "-");
        if (n < 0 || (size_t)n >= sizeof stack)
            snprintf(stack, sizeof stack, dropped, lvl, "-");
        raw = stack;
    }
    /* A prefix of masked text shows nothing the whole does not: the cut to
     * the line's length comes after the masking. */
    shp_mask_secrets(masked, sizeof masked, raw);
    if (raw != stack)
        free(raw);
    escape_controls(line, LINE_MAX_LEN, masked);
    uint64_t suppressed;
    pthread_mutex_lock(&sink_lock);
    bool admit = repeat_admit(level, line, &suppressed);
    shp_log_fn fn = sink_fn;
    void *ud = sink_ud;
    pthread_mutex_unlock(&sink_lock);
    if (!admit)
        return;
    if (suppressed) {
        size_t len = strlen(line);
        snprintf(line + len, sizeof line - len, " suppressed=%llu", (unsigned long long)suppressed);
    }
    if (fn)
        fn(level, line, ud);
    else
        fprintf(stderr, "shardpool: %s\n", line);
}

SHP__COLD int shp__misuse(const char *pool, int err, const char *event, const void *what)
{
    shp__log(SHP_LOG_WARN, pool, "event=%s ptr=%p err=%s", event, what, shp_err_name(err));
    return err;
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

/* Where the key that ends at eq (its '=', blanks allowed before it)
 * starts, if it names a secret; NULL otherwise.  start: the text's
 * beginning. */
static const char *secret_key_at(const char *start, const char *eq)
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
            return k;
    }
    return NULL;
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
        const char *key = *p == '=' ? secret_key_at(src, p) : NULL;
        if (key) {
            /* A URL query's parameter: the key follows '?' or '&'. */
            bool query = key > src && (key[-1] == '?' || key[-1] == '&');
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
                /* Unquoted, a value ends at whitespace only: libpq reads
                 * "ab;cd,e&f#g" as one value.  In a URL query '&' ends it
                 * too; nothing else does ('#' and ';' do not end a value
                 * for libpq), and masking more than the value is safe. */
                while (*p && !isspace((unsigned char)*p) && !(query && *p == '&'))
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
    char stack[2 * SHP_ERROR_DETAIL_MAX];
    char *raw = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        raw = format_whole(stack, sizeof stack, fmt, ap);
        va_end(ap);
    }
    if (!raw) { /* a bad format, or no memory for a long text (never cut unmasked) */
        detail[0] = '\0';
        return;
    }
    /* Masked whole first (see shp__log): a cut could show the start of a
     * secret; control bytes or quotes made spaces and single quotes first
     * could end a value early ("password=a\x01b" is one value to libpq) or
     * reopen a quoted one. */
    shp_mask_secrets(detail, sizeof detail, raw);
    if (raw != stack)
        free(raw);
    /* One line that fits in key="value": control characters become spaces,
     * double quotes single ones; trailing spaces go. */
    size_t len = strlen(detail);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)detail[i];
        if (c < 0x20 || c == 0x7f)
            detail[i] = ' ';
        else if (c == '"')
            detail[i] = '\'';
    }
    while (len > 0 && detail[len - 1] == ' ')
        detail[--len] = '\0';
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
