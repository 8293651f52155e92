/*
 * tools/shpbench_gbench.c - shpbench --plot-gbench FILE.json --plot-dir DIR:
 * plots google-benchmark results (bench/'s JSON, `make bench-micro` writes
 * build/bench/micro.json) with gnuplot.
 *
 * The file is google-benchmark's own format:
 *   {"context": {...}, "benchmarks": [{"name": "pair/min_time:0.100/
 *    real_time/threads:4", "run_type": "iteration", "threads": 4,
 *    "real_time": 55.9, "time_unit": "ns", ...counters}, ...]}
 * Benchmarks are grouped by name with the run options google-benchmark adds
 * (threads:N, real_time, min_time:X, iterations:N, repeats:N, ...) taken
 * out, so "pair/min_time:0.100/real_time/threads:4" is group "pair" at 4
 * threads, and "handoff/conns:1/..." stays its own group "handoff/conns:1".
 * The chart: real_time (converted to ns) against threads, one line per
 * group, log scales (the benchmarks span ns to ms), at most
 * SHPB_PLOT_MAX_SERIES groups per chart (more groups: more charts).  When
 * the file has aggregates (--benchmark_repetitions), only the means are
 * plotted; repeated iteration runs of one point are averaged.
 *
 * The JSON reader is hand-written and small on purpose: the build has no
 * JSON library (the Makefile links only ck, liburcu and the adapters' client
 * libraries), and the tool must not add a dependency for one input format.
 * It is a strict recursive-descent parser of RFC 8259 into a small tree, with
 * a depth limit; \u escapes are decoded to UTF-8 (surrogate pairs included).
 */
#include "shpbench.h"
#include "shpbench_plot.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small JSON reader -------------------------------------------------- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    double num;          /* J_NUM; J_BOOL: 0 or 1 */
    char *str;           /* J_STR */
    unsigned n;          /* J_ARR, J_OBJ: items */
    struct jval *items;  /* J_ARR, J_OBJ */
    char **keys;         /* J_OBJ: keys[i] names items[i] */
} jval;

typedef struct jparser {
    const char *p, *end;
    int depth;
    char err[128];
} jparser;

#define J_MAX_DEPTH 64

static void jfree(jval *v)
{
    if (v->t == J_STR)
        free(v->str);
    if (v->t == J_ARR || v->t == J_OBJ) {
        for (unsigned i = 0; i < v->n; i++) {
            jfree(&v->items[i]);
            if (v->keys != NULL)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof *v);
}

static int jfail(jparser *jp, const char *what)
{
    if (jp->err[0] == '\0')
        snprintf(jp->err, sizeof jp->err, "%s", what);
    return -1;
}

static void jws(jparser *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

static int jhex4(jparser *jp, unsigned *out)
{
    if (jp->end - jp->p < 4)
        return jfail(jp, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *jp->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return jfail(jp, "bad \\u escape");
    }
    *out = v;
    return 0;
}

/* Parses a string at jp->p (at its opening quote) into a malloc'd copy. */
static int jstring(jparser *jp, char **out)
{
    jp->p++; /* '"' */
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    if (s == NULL)
        return jfail(jp, "out of memory");
    for (;;) {
        if (jp->p >= jp->end) {
            free(s);
            return jfail(jp, "unterminated string");
        }
        unsigned char c = (unsigned char)*jp->p++;
        char buf[4];
        size_t k = 0;
        if (c == '"')
            break;
        if (c < 0x20) {
            free(s);
            return jfail(jp, "control character in string");
        }
        if (c != '\\') {
            buf[k++] = (char)c;
        } else {
            if (jp->p >= jp->end) {
                free(s);
                return jfail(jp, "unterminated string");
            }
            char e = *jp->p++;
            switch (e) {
            case '"': buf[k++] = '"'; break;
            case '\\': buf[k++] = '\\'; break;
            case '/': buf[k++] = '/'; break;
            case 'b': buf[k++] = '\b'; break;
            case 'f': buf[k++] = '\f'; break;
            case 'n': buf[k++] = '\n'; break;
            case 'r': buf[k++] = '\r'; break;
            case 't': buf[k++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (jhex4(jp, &cp) != 0) {
                    free(s);
                    return -1;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF && jp->end - jp->p >= 6 && jp->p[0] == '\\' &&
                    jp->p[1] == 'u') {
                    unsigned lo;
                    jp->p += 2;
                    if (jhex4(jp, &lo) != 0) {
                        free(s);
                        return -1;
                    }
                    cp = lo >= 0xDC00 && lo <= 0xDFFF ? 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                                                      : 0xFFFD;
                } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                    cp = 0xFFFD;
                }
                if (cp < 0x80) {
                    buf[k++] = (char)cp;
                } else if (cp < 0x800) {
                    buf[k++] = (char)(0xC0 | cp >> 6);
                    buf[k++] = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    buf[k++] = (char)(0xE0 | cp >> 12);
                    buf[k++] = (char)(0x80 | (cp >> 6 & 0x3F));
                    buf[k++] = (char)(0x80 | (cp & 0x3F));
                } else {
                    buf[k++] = (char)(0xF0 | cp >> 18);
                    buf[k++] = (char)(0x80 | (cp >> 12 & 0x3F));
                    buf[k++] = (char)(0x80 | (cp >> 6 & 0x3F));
                    buf[k++] = (char)(0x80 | (cp & 0x3F));
                }
                break;
            }
            default:
                free(s);
                return jfail(jp, "bad escape in string");
            }
        }
        if (n + k + 1 > cap) {
            cap *= 2;
            char *t = realloc(s, cap);
            if (t == NULL) {
                free(s);
                return jfail(jp, "out of memory");
            }
            s = t;
        }
        memcpy(s + n, buf, k);
        n += k;
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

static int jvalue(jparser *jp, jval *v);

static int jpush(jparser *jp, jval *v, jval *item, char *key, unsigned *cap)
{
    if (v->n == *cap) {
        unsigned nc = *cap ? *cap * 2 : 8;
        jval *ni = realloc(v->items, nc * sizeof *ni);
        if (ni == NULL)
            return jfail(jp, "out of memory");
        v->items = ni;
        if (v->t == J_OBJ) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (nk == NULL)
                return jfail(jp, "out of memory");
            v->keys = nk;
        }
        *cap = nc;
    }
    v->items[v->n] = *item;
    if (v->t == J_OBJ)
        v->keys[v->n] = key;
    v->n++;
    return 0;
}

/* Array or object at jp->p (at '[' or '{'). */
static int jcontainer(jparser *jp, jval *v, bool obj)
{
    char close = obj ? '}' : ']';
    v->t = obj ? J_OBJ : J_ARR;
    unsigned cap = 0;
    if (++jp->depth > J_MAX_DEPTH)
        return jfail(jp, "nested too deeply");
    jp->p++;
    jws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        jp->depth--;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        if (obj) {
            jws(jp);
            if (jp->p >= jp->end || *jp->p != '"')
                return jfail(jp, "expected a key");
            if (jstring(jp, &key) != 0)
                return -1;
            jws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                return jfail(jp, "expected ':'");
            }
            jp->p++;
        }
        jval item;
        memset(&item, 0, sizeof item);
        if (jvalue(jp, &item) != 0 || jpush(jp, v, &item, key, &cap) != 0) {
            jfree(&item);
            free(key);
            return -1;
        }
        jws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == close) {
            jp->p++;
            jp->depth--;
            return 0;
        }
        return jfail(jp, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int jvalue(jparser *jp, jval *v)
{
    memset(v, 0, sizeof *v);
    jws(jp);
    if (jp->p >= jp->end)
        return jfail(jp, "unexpected end of input");
    char c = *jp->p;
    if (c == '{' || c == '[')
        return jcontainer(jp, v, c == '{');
    if (c == '"') {
        v->t = J_STR;
        return jstring(jp, &v->str);
    }
    static const struct { const char *w; jtype t; double n; } words[] = {
        { "null", J_NULL, 0 }, { "true", J_BOOL, 1 }, { "false", J_BOOL, 0 },
        /* not JSON, but google-benchmark writes them for infinite or undefined
         * counters (e.g. items_per_second of a zero-time run) */
        { "NaN", J_NUM, NAN }, { "Infinity", J_NUM, INFINITY }, { "-Infinity", J_NUM, -INFINITY },
        { "inf", J_NUM, INFINITY }, { "-inf", J_NUM, -INFINITY }, { "nan", J_NUM, NAN },
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t l = strlen(words[i].w);
        if ((size_t)(jp->end - jp->p) >= l && memcmp(jp->p, words[i].w, l) == 0) {
            jp->p += l;
            v->t = words[i].t;
            v->num = words[i].n;
            return 0;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        /* the input is NUL-terminated (read_file), so strtod stops in it */
        char *e;
        errno = 0;
        v->num = strtod(jp->p, &e);
        if (e == jp->p)
            return jfail(jp, "bad number");
        jp->p = e;
        v->t = J_NUM;
        return 0;
    }
    return jfail(jp, "unexpected character");
}

static const jval *jget(const jval *o, const char *key)
{
    if (o == NULL || o->t != J_OBJ)
        return NULL;
    for (unsigned i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

static const char *jget_str(const jval *o, const char *key)
{
    const jval *v = jget(o, key);
    return v != NULL && v->t == J_STR ? v->str : NULL;
}

static bool jget_num(const jval *o, const char *key, double *out)
{
    const jval *v = jget(o, key);
    if (v == NULL || v->t != J_NUM)
        return false;
    *out = v->num;
    return true;
}

/* Reads a whole file, NUL-terminated.  Returns NULL after printing why. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "shpbench: --plot-gbench %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n < cap - 1)
            break;
        cap *= 2;
        char *t = realloc(buf, cap);
        if (t == NULL) {
            free(buf);
            buf = NULL;
        } else {
            buf = t;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad) {
        fprintf(stderr, "shpbench: --plot-gbench %s: %s\n", path,
                buf == NULL ? "out of memory" : "read error");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- grouping and plotting ------------------------------------------------ */

#define GB_MAX_GROUPS 64
#define GB_MAX_X      64

typedef struct gb_group {
    char name[160];
    double sum[GB_MAX_X];  /* ns, per x index */
    unsigned cnt[GB_MAX_X];
} gb_group;

/* name without the run options google-benchmark appends. */
static void group_name(const char *name, char *out, size_t len, double *threads)
{
    static const char *const drop[] = { "threads:", "min_time:", "min_warmup_time:",
                                        "iterations:", "repeats:", "real_time", "process_time",
                                        "manual_time" };
    out[0] = '\0';
    size_t o = 0;
    const char *p = name;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        bool skip = false;
        for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
            size_t dl = strlen(drop[i]);
            if (l >= dl && strncmp(p, drop[i], dl) == 0 &&
                (drop[i][dl - 1] == ':' || l == dl)) {
                skip = true;
                if (strcmp(drop[i], "threads:") == 0 && threads != NULL && *threads <= 0)
                    *threads = strtod(p + dl, NULL);
            }
        }
        if (!skip && o + l + 2 < len) {
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, l);
            o += l;
            out[o] = '\0';
        }
        p += l;
        if (*p == '/')
            p++;
    }
    if (o == 0)
        snprintf(out, len, "%s", name);
}

static double unit_to_ns(const char *u)
{
    if (u == NULL || strcmp(u, "ns") == 0)
        return 1;
    if (strcmp(u, "us") == 0)
        return 1e3;
    if (strcmp(u, "ms") == 0)
        return 1e6;
    if (strcmp(u, "s") == 0)
        return 1e9;
    return NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int shpb_plot_gbench(const char *json_path, const char *dir)
{
    size_t len;
    char *text = read_file(json_path, &len);
    if (text == NULL)
        return 1;
    jparser jp = { .p = text, .end = text + len };
    jval root;
    int rc = jvalue(&jp, &root);
    if (rc == 0) {
        jws(&jp);
        if (jp.p != jp.end)
            rc = jfail(&jp, "trailing data after the JSON value");
    }
    if (rc != 0) {
        fprintf(stderr, "shpbench: --plot-gbench %s: not valid JSON at byte %zu: %s\n", json_path,
                (size_t)(jp.p - text), jp.err);
        jfree(&root);
        free(text);
        return 1;
    }
    free(text);
    const jval *benches = jget(&root, "benchmarks");
    if (benches == NULL || benches->t != J_ARR) {
        fprintf(stderr, "shpbench: --plot-gbench %s: no \"benchmarks\" array (is it "
                        "google-benchmark's --benchmark_format=json output?)\n", json_path);
        jfree(&root);
        return 1;
    }
    /* Means of aggregates if there are any, else the iteration runs. */
    bool have_mean = false;
    for (unsigned i = 0; i < benches->n; i++) {
        const char *rt = jget_str(&benches->items[i], "run_type");
        const char *ag = jget_str(&benches->items[i], "aggregate_name");
        if (rt != NULL && strcmp(rt, "aggregate") == 0 && ag != NULL && strcmp(ag, "mean") == 0)
            have_mean = true;
    }

    static gb_group groups[GB_MAX_GROUPS];
    memset(groups, 0, sizeof groups);
    unsigned ng = 0, nx = 0, used = 0, skipped = 0;
    double xs[GB_MAX_X];
    for (unsigned i = 0; i < benches->n; i++) {
        const jval *b = &benches->items[i];
        const char *name = jget_str(b, "name");
        const char *rt = jget_str(b, "run_type");
        const char *ag = jget_str(b, "aggregate_name");
        bool is_agg = rt != NULL && strcmp(rt, "aggregate") == 0;
        if (name == NULL || jget(b, "error_occurred") != NULL)
            continue;
        if (have_mean ? !(is_agg && ag != NULL && strcmp(ag, "mean") == 0) : is_agg)
            continue;
        double t, threads = 0;
        if (!jget_num(b, "real_time", &t) || !isfinite(t)) {
            skipped++;
            continue;
        }
        t *= unit_to_ns(jget_str(b, "time_unit"));
        if (!isfinite(t) || t <= 0) {
            skipped++;
            continue;
        }
        char gname[160];
        (void)jget_num(b, "threads", &threads);
        double tn = 0;
        group_name(name, gname, sizeof gname, &tn);
        if (threads <= 0)
            threads = tn > 0 ? tn : 1;
        unsigned g = 0;
        while (g < ng && strcmp(groups[g].name, gname) != 0)
            g++;
        unsigned x = 0;
        while (x < nx && xs[x] != threads)
            x++;
        if ((g == ng && ng == GB_MAX_GROUPS) || (x == nx && nx == GB_MAX_X)) {
            skipped++;
            continue;
        }
        if (g == ng)
            snprintf(groups[ng++].name, sizeof groups[0].name, "%s", gname);
        if (x == nx)
            xs[nx++] = threads;
        groups[g].sum[x] += t;
        groups[g].cnt[x]++;
        used++;
    }
    jfree(&root);
    if (used == 0) {
        fprintf(stderr, "shpbench: --plot-gbench %s: no benchmark with a real_time to plot\n",
                json_path);
        return 1;
    }
    /* x ascending: remap the columns. */
    double sorted[GB_MAX_X];
    memcpy(sorted, xs, nx * sizeof *xs);
    qsort(sorted, nx, sizeof *sorted, cmp_double);

    if (shpb_mkdir_p(dir) != 0)
        return 1;
    shpb_gnuplot gp;
    shpb_gnuplot_probe(&gp);
    if (!gp.found)
        fprintf(stderr, "shpbench: gnuplot not found: writing the data and scripts only "
                        "(make deps installs it)\n");
    shpb_files fl = { 0 };
    int status = 0;
    unsigned nplots = (ng + SHPB_PLOT_MAX_SERIES - 1) / SHPB_PLOT_MAX_SERIES;
    const char *base = strrchr(json_path, '/');
    base = base ? base + 1 : json_path;
    for (unsigned pi = 0; pi < nplots; pi++) {
        unsigned g0 = pi * SHPB_PLOT_MAX_SERIES;
        unsigned ns = ng - g0 < SHPB_PLOT_MAX_SERIES ? ng - g0 : SHPB_PLOT_MAX_SERIES;
        const char *series[SHPB_PLOT_MAX_SERIES];
        int style[SHPB_PLOT_MAX_SERIES];
        double *y = malloc((size_t)ns * nx * sizeof *y);
        if (y == NULL) {
            status = 1;
            break;
        }
        for (unsigned s = 0; s < ns; s++) {
            const gb_group *g = &groups[g0 + s];
            series[s] = g->name;
            style[s] = (int)s;
            for (unsigned i = 0; i < nx; i++) {
                unsigned x = 0;
                while (xs[x] != sorted[i])
                    x++;
                y[s * nx + i] = g->cnt[x] ? g->sum[x] / g->cnt[x] : NAN;
            }
        }
        char name[64], title[512];
        if (nplots == 1)
            snprintf(name, sizeof name, "gbench-real-time");
        else
            snprintf(name, sizeof name, "gbench-real-time-%u", pi + 1);
        snprintf(title, sizeof title, "google-benchmark real time per iteration (%s%s)\n"
                 "one line per benchmark, x = threads", base,
                 have_mean ? ", means of repetitions" : "");
        shpb_xy_plot xy = {
            .name = name, .title = title, .xlabel = "threads",
            .ylabel = "real time per iteration, ns (log; 1k = 1 us, 1M = 1 ms)", .xlog = sorted[0] > 0,
            .ylog = true, .nx = nx, .x = sorted, .nseries = ns, .series = series,
            .style = style, .y = y,
        };
        if (shpb_plot_xy(&gp, dir, &xy, &fl) != 0)
            status = 1;
        free(y);
    }
    printf("shpbench: %u benchmarks in %u groups from %s%s\n", used, ng, json_path,
           have_mean ? " (means of repetitions)" : "");
    if (skipped)
        printf("shpbench: %u entries skipped (no usable real_time, or too many groups)\n", skipped);
    for (unsigned i = 0; i < fl.n; i++)
        printf("  %s\n", fl.paths[i]);
    shpb_files_free(&fl);
    return status;
}

/* ---- self-test ------------------------------------------------------------ */

int shpb_gbench_self_test(void)
{
    static const char *const good[] = {
        "{\"a\": [1, 2.5e3, -0.5, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\"], \"b\": {}}",
        "[]", " \"s\" ", "{\"benchmarks\": [{\"name\": \"x\", \"v\": NaN}]}",
    };
    static const char *const bad[] = { "{", "[1,]", "{\"a\" 1}", "\"\\x\"", "[1] 2", "nul",
                                       "\"a\nb\"" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        jparser jp = { .p = good[i], .end = good[i] + strlen(good[i]) };
        jval v;
        int rc = jvalue(&jp, &v);
        jws(&jp);
        if (rc != 0 || jp.p != jp.end) {
            fprintf(stderr, "gbench self-test: rejected %s (%s)\n", good[i], jp.err);
            jfree(&v);
            return 1;
        }
        if (i == 0) {
            const jval *a = jget(&v, "a");
            if (a == NULL || a->n != 7 || a->items[1].num != 2500 ||
                strcmp(a->items[6].str, "x\xc3\xa9\xf0\x9f\x98\x80\n") != 0) {
                fprintf(stderr, "gbench self-test: wrong values for %s\n", good[i]);
                jfree(&v);
                return 1;
            }
        }
        jfree(&v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jparser jp = { .p = bad[i], .end = bad[i] + strlen(bad[i]) };
        jval v;
        int rc = jvalue(&jp, &v);
        jws(&jp);
        jfree(&v);
        if (rc == 0 && jp.p == jp.end) {
            fprintf(stderr, "gbench self-test: accepted %s\n", bad[i]);
            return 1;
        }
    }
    char g[160];
    double th = 0;
    group_name("handoff/conns:2/min_time:0.100/real_time/threads:16", g, sizeof g, &th);
    if (strcmp(g, "handoff/conns:2") != 0 || th != 16) {
        fprintf(stderr, "gbench self-test: group_name gave '%s' %g\n", g, th);
        return 1;
    }
    return 0;
}
