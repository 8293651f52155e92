/*
 * tools/shpbench/gbench.c - see gbench.h.
 *
 * The file is google-benchmark's CSV layout (its --benchmark_out_format=csv,
 * or what `make bench-micro` converts its JSON to, build/bench/micro.csv):
 *   name,iterations,real_time,cpu_time,time_unit,...,error_occurred,...
 *   "pair/min_time:0.100/real_time/threads:4",123456,55.9,110.2,ns,,,,,
 * Columns are found by the header's names, fields may be quoted ("" is a
 * quote inside one), lines before the header (google-benchmark writes its
 * context there) and lines with fewer fields than the header are skipped.
 * A row's threads come from its name's "threads:N" (1 without); a name
 * ending in _mean, _median, _stddev, _cv, _BigO or _RMS is an aggregate of
 * --benchmark_repetitions.
 *
 * Benchmarks are grouped by name with the run options google-benchmark adds
 * (threads:N, real_time, min_time:X, iterations:N, repeats:N, ...) taken
 * out, so "pair/min_time:0.100/real_time/threads:4" is group "pair" at 4
 * threads, and "handoff/conns:1/..." stays its own group "handoff/conns:1".
 * The chart: real_time (converted to ns) against threads, one line per
 * group, log scales (the benchmarks span ns to ms), at most
 * SHPB_PLOT_MAX_SERIES groups per chart (more groups: more charts).  When
 * the file has _mean aggregates, only they are plotted; repeated iteration
 * rows of one point are averaged.
 */
#include "shpbench/gbench.h"

#include "shpbench/plot.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- grouping ----------------------------------------------------------- */

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

/* ---- reading ------------------------------------------------------------ */

#define GB_MAX_FIELDS 256

/* Splits line (no newline) into at most max fields, in place: unquotes
 * quoted fields and turns "" inside them into ".  Returns the number of
 * fields. */
static unsigned csv_split(char *line, char **field, unsigned max)
{
    unsigned n = 0;
    char *p = line;
    for (;;) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            for (; *p; p++) {
                if (*p == '"') {
                    if (p[1] != '"')
                        break;
                    p++;
                }
                *out++ = *p;
            }
            if (*p == '"')
                p++;
            while (*p && *p != ',') /* text after the closing quote: kept out */
                p++;
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
        }
        bool more = *p == ',';
        *out = '\0';
        if (n < max)
            field[n++] = start;
        if (!more)
            return n;
        p++;
    }
}

/* Strips a repetition aggregate's suffix from name (in place).  Returns 0
 * for an iteration run, 1 for a _mean, 2 for another aggregate. */
static int aggregate_kind(char *name)
{
    static const char *const aggs[] = { "mean", "median", "stddev", "cv", "BigO", "RMS" };
    char *slash = strrchr(name, '/');
    char *us = strrchr(slash ? slash : name, '_');
    if (us == NULL)
        return 0;
    for (size_t i = 0; i < sizeof aggs / sizeof aggs[0]; i++) {
        if (strcmp(us + 1, aggs[i]) == 0) {
            *us = '\0';
            return i == 0 ? 1 : 2;
        }
    }
    return 0;
}

/* What a file holds, grouped (groups[g].sum[x] / cnt[x] at threads xs[x]). */
typedef struct gb_data {
    gb_group groups[GB_MAX_GROUPS];
    unsigned ng, nx, used, skipped;
    double xs[GB_MAX_X];
    bool have_mean;
} gb_data;

typedef struct gb_row {
    char group[160];
    double threads, ns;
    int agg; /* aggregate_kind */
} gb_row;

/* Reads f into *d.  Returns 0, or -1 after writing why into err. */
static int gb_collect(FILE *f, gb_data *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    gb_row *rows = NULL;
    size_t nrows = 0, cap = 0, linecap = 0;
    char *line = NULL;
    ssize_t len;
    int col_name = -1, col_time = -1, col_unit = -1, col_err = -1;
    unsigned ncols = 0;
    int rc = 0;
    while ((len = getline(&line, &linecap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *fld[GB_MAX_FIELDS];
        if (strncmp(line, "name,", 5) == 0) { /* a header */
            ncols = csv_split(line, fld, GB_MAX_FIELDS);
            col_name = col_time = col_unit = col_err = -1;
            for (unsigned i = 0; i < ncols; i++) {
                if (strcmp(fld[i], "name") == 0)
                    col_name = (int)i;
                else if (strcmp(fld[i], "real_time") == 0)
                    col_time = (int)i;
                else if (strcmp(fld[i], "time_unit") == 0)
                    col_unit = (int)i;
                else if (strcmp(fld[i], "error_occurred") == 0)
                    col_err = (int)i;
            }
            continue;
        }
        if (col_name < 0 || col_time < 0 || csv_split(line, fld, GB_MAX_FIELDS) < ncols)
            continue; /* before the header, or google-benchmark's context */
        if (col_err >= 0 && strcmp(fld[col_err], "true") == 0)
            continue;
        char *end;
        double t = strtod(fld[col_time], &end);
        t *= unit_to_ns(col_unit >= 0 ? fld[col_unit] : NULL);
        if (end == fld[col_time] || !isfinite(t) || t <= 0) {
            d->skipped++;
            continue;
        }
        if (nrows == cap) {
            cap = cap ? 2 * cap : 64;
            gb_row *r = realloc(rows, cap * sizeof *rows);
            if (r == NULL) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            rows = r;
        }
        gb_row *r = &rows[nrows++];
        r->agg = aggregate_kind(fld[col_name]);
        r->threads = 0;
        group_name(fld[col_name], r->group, sizeof r->group, &r->threads);
        if (r->threads <= 0)
            r->threads = 1;
        r->ns = t;
        d->have_mean |= r->agg == 1;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "read error");
        rc = -1;
    }
    if (rc == 0 && col_name < 0) {
        snprintf(err, errlen, "no header line \"name,...,real_time,...\" (is it "
                 "google-benchmark's CSV?)");
        rc = -1;
    }
    free(line);
    /* Means of aggregates if there are any, else the iteration runs. */
    for (size_t i = 0; rc == 0 && i < nrows; i++) {
        const gb_row *r = &rows[i];
        if (r->agg != (d->have_mean ? 1 : 0))
            continue;
        unsigned g = 0;
        while (g < d->ng && strcmp(d->groups[g].name, r->group) != 0)
            g++;
        unsigned x = 0;
        while (x < d->nx && d->xs[x] != r->threads)
            x++;
        if ((g == d->ng && d->ng == GB_MAX_GROUPS) || (x == d->nx && d->nx == GB_MAX_X)) {
            d->skipped++;
            continue;
        }
        if (g == d->ng)
            snprintf(d->groups[d->ng++].name, sizeof d->groups[0].name, "%s", r->group);
        if (x == d->nx)
            d->xs[d->nx++] = r->threads;
        d->groups[g].sum[x] += r->ns;
        d->groups[g].cnt[x]++;
        d->used++;
    }
    free(rows);
    return rc;
}

/* ---- plotting ----------------------------------------------------------- */

int shpb_plot_gbench(const char *csv_path, const char *dir)
{
    FILE *in = fopen(csv_path, "r");
    if (in == NULL) {
        fprintf(stderr, "shpbench: --plot-gbench %s: %s\n", csv_path, strerror(errno));
        return 1;
    }
    static gb_data data;
    gb_data *d = &data;
    char err[160];
    int rc = gb_collect(in, d, err, sizeof err);
    fclose(in);
    if (rc != 0) {
        fprintf(stderr, "shpbench: --plot-gbench %s: %s\n", csv_path, err);
        return 1;
    }
    if (d->used == 0) {
        fprintf(stderr, "shpbench: --plot-gbench %s: no benchmark with a real_time to plot\n",
                csv_path);
        return 1;
    }
    const unsigned ng = d->ng, nx = d->nx, used = d->used, skipped = d->skipped;
    const bool have_mean = d->have_mean;
    const double *xs = d->xs;
    const gb_group *groups = d->groups;
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
    const char *base = strrchr(csv_path, '/');
    base = base ? base + 1 : csv_path;
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
            .ylabel = "real time per iteration, ns (log; 1k = 1 us, 1M = 1 ms)",
            .xlog = sorted[0] > 0, .ylog = true, .nx = nx, .x = sorted, .nseries = ns, .series = series,
            .style = style, .y = y,
        };
        if (shpb_plot_xy(&gp, dir, &xy, &fl) != 0)
            status = 1;
        free(y);
    }
    printf("shpbench: %u benchmarks in %u groups from %s%s\n", used, ng, csv_path,
           have_mean ? " (means of repetitions)" : "");
    if (skipped)
        printf("shpbench: %u entries skipped (no usable real_time, or too many groups)\n", skipped);
    for (unsigned i = 0; i < fl.n; i++)
        printf("  %s\n", fl.paths[i]);
    shpb_files_free(&fl);
    return status;
}

/* ---- self-test ----------------------------------------------------------- */

int shpb_gbench_self_test(void)
{
    char line[] = "\"a,\"\"b\"\"\",1,,x\"y\",\"\"";
    char *f[8];
    unsigned n = csv_split(line, f, 8);
    if (n != 5 || strcmp(f[0], "a,\"b\"") != 0 || strcmp(f[1], "1") != 0 || f[2][0] != '\0' ||
        strcmp(f[3], "x\"y\"") != 0 || f[4][0] != '\0') {
        fprintf(stderr, "gbench self-test: csv_split gave %u fields\n", n);
        return 1;
    }
    char g[160];
    double th = 0;
    group_name("handoff/conns:2/min_time:0.100/real_time/threads:16", g, sizeof g, &th);
    if (strcmp(g, "handoff/conns:2") != 0 || th != 16) {
        fprintf(stderr, "gbench self-test: group_name gave '%s' %g\n", g, th);
        return 1;
    }
    /* google-benchmark's context, a header, iteration rows (one an error),
     * and the aggregates of a repeated benchmark: only the _mean is used. */
    static const char doc[] =
        "2026-01-01T00:00:00+00:00\nRunning ./pool_bench\nLoad Average: 0.5, 0.4, 0.3\n"
        "name,iterations,real_time,cpu_time,time_unit,bytes_per_second,items_per_second,"
        "label,error_occurred,error_message,\"ns_per_op\"\n"
        "\"pair/real_time/threads:1\",100,50,50,ns,,,,,,\n"
        "\"pair/real_time/threads:2\",100,2,2,us,,,,,,7\n"
        "\"bad/threads:2\",,,,,,,,true,\"no\"\n"
        "\"rep/repeats:2_mean\",2,300,300,ns,,,,,,\n"
        "\"rep/repeats:2_stddev\",2,5,5,ns,,,,,,\n";
    FILE *in = fmemopen((void *)doc, sizeof doc - 1, "r");
    static gb_data d;
    char err[160];
    if (in == NULL || gb_collect(in, &d, err, sizeof err) != 0) {
        fprintf(stderr, "gbench self-test: reading the sample failed\n");
        if (in != NULL)
            fclose(in);
        return 1;
    }
    fclose(in);
    if (!d.have_mean || d.used != 1 || d.ng != 1 || strcmp(d.groups[0].name, "rep") != 0 ||
        d.groups[0].sum[0] != 300) {
        fprintf(stderr, "gbench self-test: sample with aggregates read wrong\n");
        return 1;
    }
    static const char doc2[] =
        "name,iterations,real_time,cpu_time,time_unit,bytes_per_second,items_per_second,"
        "label,error_occurred,error_message\n"
        "\"pair/real_time/threads:1\",100,50,50,ns,,,,,\n"
        "\"pair/real_time/threads:2\",100,2,2,us,,,,,\n"
        "\"pair/real_time/threads:2\",100,4,4,us,,,,,\n";
    in = fmemopen((void *)doc2, sizeof doc2 - 1, "r");
    if (in == NULL || gb_collect(in, &d, err, sizeof err) != 0) {
        fprintf(stderr, "gbench self-test: reading the second sample failed\n");
        if (in != NULL)
            fclose(in);
        return 1;
    }
    fclose(in);
    if (d.have_mean || d.used != 3 || d.ng != 1 || d.nx != 2 || d.xs[1] != 2 ||
        d.groups[0].sum[1] / d.groups[0].cnt[1] != 3000) {
        fprintf(stderr, "gbench self-test: sample of iteration runs read wrong\n");
        return 1;
    }
    return 0;
}
