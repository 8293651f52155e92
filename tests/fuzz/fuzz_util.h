/*
 * fuzz_util.h - what the libFuzzer targets under tests/fuzz/ share: reading
 * fields out of the fuzz input, planting a harness-made password in fuzzed
 * text, a log sink that captures lines, and the property checks.
 * Header-only: each target is one translation unit.
 *
 * A failed property prints what failed and aborts, so libFuzzer saves the
 * input as a crash- artifact.
 *
 * Known bugs.  A property that today's library is known to break (reported
 * to the lead, fixed elsewhere) is checked through fz_known(name, holds):
 * by default a break is skipped, and one line
 * "fuzz: known bug NAME ..." is printed per process (run.sh lists them);
 * with SHP_FUZZ_STRICT=1 in the environment it fails like any property.
 * Each such bug has its reproducer in the target's corpus as crash-NAME
 * (skipped by run.sh; `make fuzz-crashers` replays them strictly).  Once a
 * bug is fixed, drop its fz_known (make it FZ_CHECK) and rename the file:
 * it stays as a regression seed.  Bugs a sanitizer reports (an abort the
 * harness cannot skip after the fact) are avoided beforehand with
 * fz_take(name, would_trigger).
 * Names in use: none (every bug reported so far is fixed; the seeds that
 * reproduced them are named after what they hold).
 */
#ifndef SHP_FUZZ_UTIL_H
#define SHP_FUZZ_UTIL_H

#include <shardpool/log.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failing ------------------------------------------------------------ */

static bool fz_strict;

__attribute__((noreturn, format(printf, 4, 5))) static void
fz_fail(const char *file, int line, const char *what, const char *fmt, ...)
{
    fprintf(stderr, "\nfuzz: PROPERTY FAILED at %s:%d: %s\n  ", file, line, what);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* Fails the run (libFuzzer keeps the input) unless cond holds. */
#define FZ_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond))                                                         \
            fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                 \
    } while (0)

/* A property the library is known to break today (see the list above):
 * returns holds; a break fails only under SHP_FUZZ_STRICT=1. */
#define fz_known(name, holds, ...)                                           \
    fz_known_at(__FILE__, __LINE__, name, (holds), __VA_ARGS__)

__attribute__((format(printf, 5, 6))) static bool
fz_known_at(const char *file, int line, const char *name, bool holds, const char *fmt, ...)
{
    static const char *seen[16];
    if (holds)
        return true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (fz_strict)
        fz_fail(file, line, name, "(known bug, SHP_FUZZ_STRICT=1) %s", msg);
    for (char *p = msg; *p; p++) /* one line in the run's log */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++) {
        if (seen[i] && strcmp(seen[i], name) == 0)
            return false;
        if (!seen[i]) {
            seen[i] = name;
            fprintf(stderr, "fuzz: known bug %s hit at %s:%d (skipped; SHP_FUZZ_STRICT=1 fails on it): %s\n",
                    name, file, line, msg);
            return false;
        }
    }
    return false;
}

/* Whether to take a path of the input that the harness knows would trigger
 * known bug name (a sanitizer abort it cannot observe and skip): always
 * under SHP_FUZZ_STRICT=1, so the sanitizer reports it; otherwise only when
 * triggers is false. */
static bool fz_take(const char *name, bool triggers)
{
    if (!triggers || fz_strict)
        return true;
    fz_known_at(__FILE__, __LINE__, name, false, "%s", "path not taken");
    return false;
}

/* ---- reading the input -------------------------------------------------- */

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

/* The next byte, 0 once the input is used up. */
static uint8_t fz_u8(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* One of the n values of table, chosen by the next byte. */
static int64_t fz_pick(fz_in *in, const int64_t *table, size_t n)
{
    return table[fz_u8(in) % n];
}

/* The next n bytes (fewer at the end) as a reader of their own. */
static fz_in fz_sub(fz_in *in, size_t n)
{
    fz_in sub = { in->p, n < in->n ? n : in->n };
    in->p += sub.n;
    in->n -= sub.n;
    return sub;
}

/* The next string field: the bytes up to the next NUL (consumed) or the end
 * of the input, as a malloc'd C string (never NULL: aborts on OOM). */
static char *fz_str(fz_in *in)
{
    const uint8_t *nul = memchr(in->p, 0, in->n);
    size_t len = nul ? (size_t)(nul - in->p) : in->n;
    char *s = malloc(len + 1);
    if (!s)
        abort();
    memcpy(s, in->p, len);
    s[len] = '\0';
    in->p += len + (nul != NULL);
    in->n -= len + (nul != NULL);
    return s;
}

/* A growing string (aborts on OOM). */
typedef struct fz_buf {
    char *s;
    size_t len, cap;
} fz_buf;

static void fz_putn(fz_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s)
            abort();
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void fz_puts(fz_buf *b, const char *s)
{
    fz_putn(b, s, strlen(s));
}

static void fz_putc(fz_buf *b, char c)
{
    fz_putn(b, &c, 1);
}

/* ---- the planted secret --------------------------------------------------- */

/* How the password is written into the text.  Each form is one that
 * shp_mask_secrets' contract (shardpool/log.h) covers: "password=/pass=/
 * secret= values in key=value strings and the password of a URL's
 * user:password@ part".  The harness decides what "well-formed" means and
 * makes the planted piece so:
 *   - it stands alone: the text before it ends in whitespace (the harness
 *     writes a space or tab) and a separator follows it (whitespace, or for
 *     a URL one of / ? #, or '&' in a URL query), so that no fuzzed byte
 *     can join the key or the URL's authority;
 *   - the text before it holds no quote and does not end in '=': in
 *     "a='x password=SECRET" or "a= password=SECRET" the password is part
 *     of a's value, and as quoted values nest in log text (a libpq message
 *     quoted in msg="...") no quote before it can be told closed for sure
 *     (fz_stands_alone; the check is skipped otherwise);
 *   - an unquoted value has no whitespace and no quote (libpq reads a
 *     conninfo value up to whitespace, "a;b,c&d" included); in a URL query
 *     it has no '&' or '#' either (they end it; ';' and ',' do not);
 *   - a quoted value ('...' or "...", libpq's quoting) may hold anything
 *     but NUL, its quote escaped with a backslash;
 *   - a URL password uses the characters RFC 3986 allows in userinfo
 *     (unreserved, sub-delims, ':', %XX).
 * The secret starts and ends with a 4-character marker digit-upper-digit-
 * upper ("7Q2X"), a shape the library's own log text does not take; a line
 * that shows a marker shows part of the password (when the fuzzed text does
 * not hold that marker itself). */
enum fz_form {
    FZ_NONE,
    FZ_KV,         /* password=SECRET */
    FZ_KV_SPACED,  /* password = SECRET (libpq allows spaces around '=') */
    FZ_KV_SQUOTE,  /* password='SEC RET' */
    FZ_KV_DQUOTE,  /* password="SEC RET" */
    FZ_URL,        /* scheme://user:SECRET@host/... */
    FZ_URL_NOUSER, /* scheme://:SECRET@host */
    FZ_URL_QUERY,  /* scheme://host/db?user=u&password=SECRET&x=y */
    FZ_FORMS
};

typedef struct fz_secret {
    enum fz_form form;    /* FZ_NONE: nothing planted */
    bool checkable;       /* the text around it is well-formed (see above) */
    char s[40]; /* the password as written in the text */
    size_t len;
} fz_secret;

static const char fz_alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/* Unquoted key=value value: no whitespace, no quotes. */
static const char fz_kv_chars[] = "-._~!$*+:/@%^()[]{}|<>=#?\\&;,";
/* Quoted value (the quote itself is escaped separately). */
static const char fz_quoted_chars[] = " \t-._~!$*+:/@%^()[]{}|<>=#?&;,'\"";
/* RFC 3986 userinfo (besides alnum and %XX). */
static const char fz_userinfo_chars[] = "-._~!$&'()*+,;=:";

/* Fills sec->s for form from the input: marker, 4..27 more chars, marker. */
static void fz_make_secret(fz_in *in, enum fz_form form, fz_secret *sec)
{
    sec->form = form;
    size_t o = 0;
    sec->s[o++] = (char)('0' + fz_u8(in) % 10);
    sec->s[o++] = (char)('A' + fz_u8(in) % 26);
    sec->s[o++] = (char)('0' + fz_u8(in) % 10);
    sec->s[o++] = (char)('A' + fz_u8(in) % 26);
    size_t more = 4 + fz_u8(in) % 24;
    char quote = form == FZ_KV_SQUOTE ? '\'' : '"';
    while (more-- > 0 && o + 8 < sizeof sec->s) { /* room for an escape, the end marker */
        uint8_t b = fz_u8(in);
        uint8_t kind = b & 3, v = b >> 2;
        if (kind != 0) { /* mostly letters and digits */
            sec->s[o++] = fz_alnum[v % (sizeof fz_alnum - 1)];
            continue;
        }
        switch (form) {
        case FZ_KV:
        case FZ_KV_SPACED:
        case FZ_URL_QUERY:
            sec->s[o++] = fz_kv_chars[v % (sizeof fz_kv_chars - 1)];
            if (form == FZ_URL_QUERY && strchr("#&\\", sec->s[o - 1]))
                sec->s[o - 1] = '%'; /* '#' and '&' end a URL query's value */
            break;
        case FZ_KV_SQUOTE:
        case FZ_KV_DQUOTE: {
            char c = fz_quoted_chars[v % (sizeof fz_quoted_chars - 1)];
            if (c == quote || v % 7 == 0) /* the quote, or a backslash: escaped */
                sec->s[o++] = '\\';
            sec->s[o++] = v % 7 == 0 ? '\\' : c;
            break;
        }
        default: /* URL userinfo */
            if (v % 5 == 0) {
                static const char hex[] = "0123456789ABCDEF";
                sec->s[o++] = '%';
                sec->s[o++] = hex[(v >> 2) % 16];
                sec->s[o++] = hex[v % 16];
            } else {
                sec->s[o++] = fz_userinfo_chars[v % (sizeof fz_userinfo_chars - 1)];
            }
            break;
        }
    }
    sec->s[o++] = (char)('0' + fz_u8(in) % 10);
    sec->s[o++] = (char)('A' + fz_u8(in) % 26);
    sec->s[o++] = (char)('0' + fz_u8(in) % 10);
    sec->s[o++] = (char)('A' + fz_u8(in) % 26);
    sec->s[o] = '\0';
    sec->len = o;
    sec->checkable = true;
}

/* Appends the planted piece for sec (made with fz_make_secret) to b, choosing
 * key, scheme and separators from in (it reads at most FZ_PLANT_BYTES). */
#define FZ_PLANT_BYTES 8
static void fz_put_planted(fz_buf *b, fz_in *in, const fz_secret *sec)
{
    static const char *const keys[] = { "password", "pass", "secret" };
    static const char *const schemes[] = { "postgresql", "postgres", "redis", "rediss",
                                            "http",       "amqp",     "x" };
    static const char *const users[] = { "user", "app.user-1", "u%40x", "a~b" };
    static const char *const hosts[] = { "h", "db.example:5432", "[::1]:6379", "10.0.0.5" };
    static const char *const url_ends[] = { "", "/", "/db", "?sslmode=require", "#f", " ", "\t" };
    static const char *const kv_ends[] = { "", " ", "\t", " host=h", "\tport=1" };
    const char *key = keys[fz_u8(in) % 3];
    fz_putc(b, fz_u8(in) & 1 ? '\t' : ' ');
    switch (sec->form) {
    case FZ_KV:
    case FZ_KV_SPACED:
    case FZ_KV_SQUOTE:
    case FZ_KV_DQUOTE:
        fz_puts(b, key);
        fz_puts(b, sec->form == FZ_KV_SPACED ? (fz_u8(in) & 1 ? " = " : "\t=  ") : "=");
        if (sec->form == FZ_KV_SQUOTE || sec->form == FZ_KV_DQUOTE)
            fz_putc(b, sec->form == FZ_KV_SQUOTE ? '\'' : '"');
        fz_puts(b, sec->s);
        if (sec->form == FZ_KV_SQUOTE || sec->form == FZ_KV_DQUOTE)
            fz_putc(b, sec->form == FZ_KV_SQUOTE ? '\'' : '"');
        fz_puts(b, kv_ends[fz_u8(in) % 5]);
        if (b->s[b->len - 1] != ' ' && b->s[b->len - 1] != '\t')
            fz_putc(b, ' ');
        break;
    case FZ_URL:
    case FZ_URL_NOUSER:
        fz_puts(b, schemes[fz_u8(in) % 7]);
        fz_puts(b, "://");
        if (sec->form == FZ_URL)
            fz_puts(b, users[fz_u8(in) % 4]);
        fz_putc(b, ':');
        fz_puts(b, sec->s);
        fz_putc(b, '@');
        fz_puts(b, hosts[fz_u8(in) % 4]);
        fz_puts(b, url_ends[fz_u8(in) % 7]);
        fz_putc(b, ' ');
        break;
    case FZ_URL_QUERY:
        fz_puts(b, schemes[fz_u8(in) % 7]);
        fz_puts(b, "://");
        fz_puts(b, hosts[fz_u8(in) % 4]);
        fz_puts(b, "/db?");
        if (fz_u8(in) & 1)
            fz_puts(b, "user=u&");
        fz_puts(b, key);
        fz_putc(b, '=');
        fz_puts(b, sec->s);
        fz_puts(b, fz_u8(in) & 1 ? "&sslmode=require " : " ");
        break;
    default:
        break;
    }
}

/* Whether a planted piece stands alone after the fuzzed text before (see
 * above): that text holds no quote, and does not end in '=' (blanks
 * allowed after it).  Quoted values nest ambiguously in log text: in
 * msg="x password=" y=" 7Q2X..." the password's quote may close msg's value
 * or open its own.  And after "key=" (or "key= ") the piece is key's value:
 * in "x= password=7Q2X" libpq reads x as "password=7Q2X". */
static bool fz_stands_alone(const char *before)
{
    if (strpbrk(before, "'\""))
        return false;
    size_t n = strlen(before);
    while (n > 0 && (before[n - 1] == ' ' || (before[n - 1] >= '\t' && before[n - 1] <= '\r')))
        n--;
    return n == 0 || before[n - 1] != '=';
}

/* Whether fuzzed part s holds marker, as written or as a log line writes
 * it (log.h: a control byte becomes \xNN, so "\x11C1A" holds "1C1A"). */
static bool fz_part_holds(const char *s, const char *marker)
{
    if (strstr(s, marker))
        return true;
    static const char hex[] = "0123456789abcdef";
    fz_buf e = { 0 };
    fz_putn(&e, "", 0);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            fz_putc(&e, (char)*p);
        } else {
            char x[4] = { '\\', 'x', hex[*p >> 4], hex[*p & 15] };
            fz_putn(&e, x, 4);
        }
    }
    bool held = strstr(e.s, marker) != NULL;
    free(e.s);
    return held;
}

/* Whether text shows the secret: its first or its last 4 characters (both
 * markers, see above), each unless one of the fuzzed parts (nfuzzed
 * strings, NULL entries allowed) holds it itself (fz_part_holds).  A
 * cut-off password shows its head, a password masked only up to some
 * character its tail.  False when nothing was planted or the text around
 * it is not well-formed (sec->checkable). */
static bool fz_shows_secret(const char *text, const fz_secret *sec, const char *const *fuzzed,
                            size_t nfuzzed)
{
    if (!sec || sec->form == FZ_NONE || !sec->checkable || !text)
        return false;
    for (int end = 0; end < 2; end++) {
        char marker[5];
        memcpy(marker, end && sec->len >= 8 ? sec->s + sec->len - 4 : sec->s, 4);
        marker[4] = '\0';
        bool in_input = false;
        for (size_t i = 0; i < nfuzzed; i++)
            in_input = in_input || (fuzzed[i] && fz_part_holds(fuzzed[i], marker));
        if (!in_input && strstr(text, marker))
            return true;
    }
    return false;
}

/* Fails unless out (the masked text of what) hides the secret (seeds
 * mask/value-delims{,-query}: a value holding ';' ',' or '&'). */
static void fz_check_hidden(const char *out, const char *what, const fz_secret *sec,
                            const char *const *fuzzed, size_t nfuzzed)
{
    if (fz_shows_secret(out, sec, fuzzed, nfuzzed))
        fz_fail(__FILE__, __LINE__, "secret hidden", "secret \"%s\" shown:\n  in:  %s\n  out: %s",
                sec->s, what, out);
}

/* Whether s holds the secret's marker (the check above is then void). */
static bool fz_has_marker(const char *s, const fz_secret *sec)
{
    char marker[5];
    memcpy(marker, sec->s, 4);
    marker[4] = '\0';
    return s && strstr(s, marker);
}

/* ---- captured log lines --------------------------------------------------- */

#define FZ_MAX_LINES 64
#define FZ_LINE_BOUND (1 << 16) /* a line longer than this is not NUL-terminated */

typedef struct fz_log {
    unsigned n, calls;
    int level[FZ_MAX_LINES];
    char *line[FZ_MAX_LINES];
} fz_log;

static fz_log fz_cap;

static void fz_sink(shp_log_level level, const char *line, void *ud)
{
    fz_log *l = ud;
    l->calls++;
    FZ_CHECK(line != NULL, "the log callback got a NULL line");
    FZ_CHECK(strnlen(line, FZ_LINE_BOUND) < FZ_LINE_BOUND, "a log line is not NUL-terminated");
    FZ_CHECK((int)level >= SHP_LOG_ERROR && level <= SHP_LOG_DEBUG, "log level %d", (int)level);
    if (l->n < FZ_MAX_LINES) {
        l->level[l->n] = (int)level;
        l->line[l->n] = strdup(line);
        if (!l->line[l->n])
            abort();
        l->n++;
    }
}

static void fz_log_clear(void)
{
    for (unsigned i = 0; i < fz_cap.n; i++)
        free(fz_cap.line[i]);
    memset(&fz_cap, 0, sizeof fz_cap);
}

/* line holds no control byte (log.h: each is written as \xNN, so no
 * string can split a line or forge another). */
static void fz_check_one_line(const char *line)
{
    for (const char *p = line; *p; p++)
        FZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "byte 0x%02x at %zu in line: %s",
                 (unsigned char)*p, (size_t)(p - line), line);
}

/* Every captured line is one line and does not show the secret (sec may be
 * NULL). */
static void fz_check_lines(const fz_secret *sec, const char *const *fuzzed, size_t nfuzzed)
{
    for (unsigned i = 0; i < fz_cap.n; i++) {
        fz_check_one_line(fz_cap.line[i]);
        fz_check_hidden(fz_cap.line[i], "(a log line)", sec, fuzzed, nfuzzed);
    }
}

/* Per-process set-up: strictness from the environment, the capturing sink
 * at the most verbose level. */
static void fz_init(void)
{
    const char *e = getenv("SHP_FUZZ_STRICT");
    fz_strict = e && *e && strcmp(e, "0") != 0;
    shp_log_set(fz_sink, &fz_cap, SHP_LOG_DEBUG);
}

#endif
