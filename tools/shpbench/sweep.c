/*
 * tools/shpbench/sweep.c - see sweep.h.
 *
 * The plots put threads on the x axis when it is a dimension (else the
 * first dimension), and draw one throughput plot and one latency CDF per
 * combination of the other dimensions' values.  The CDF is drawn for the
 * point with the most threads (when threads is not swept: the largest x
 * value); only those points keep their histograms.
 */
#include "shpbench/sweep.h"

#include "shpbench/plot.h"
#include "shpbench/report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- parsing -------------------------------------------------------------- */

static int parse_count(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    if (*s == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9)
        return -EINVAL;
    unsigned long v = strtoul(s, NULL, 10);
    if (v < lo || v > hi)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int parse_one(shpb_axes *sw, const char *tok, char *err, size_t errlen)
{
    const char *eq = strchr(tok, '=');
    if (eq == NULL || eq == tok) {
        snprintf(err, errlen, "expected KEY=V1,V2,..., got '%s'", tok);
        return -EINVAL;
    }
    size_t klen = (size_t)(eq - tok);
    shpb_key key = SHPB_KEYS;
    for (unsigned k = 0; k < SHPB_KEYS; k++)
        if (strlen(shpb_key_name(k)) == klen && strncmp(tok, shpb_key_name(k), klen) == 0)
            key = (shpb_key)k;
    if (key == SHPB_KEYS) {
        snprintf(err, errlen, "unknown key '%.*s' (threads, max, min, shards, hold, think)",
                 (int)klen, tok);
        return -EINVAL;
    }
    for (unsigned i = 0; i < sw->naxes; i++) {
        if (sw->axes[i].key == key) {
            snprintf(err, errlen, "key '%s' given twice", shpb_key_name(key));
            return -EINVAL;
        }
    }
    shpb_axis ax;
    memset(&ax, 0, sizeof ax);
    ax.key = key;
    char *vals = strdup(eq + 1), *save = NULL;
    if (vals == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    for (char *v = strtok_r(vals, ",", &save); v != NULL; v = strtok_r(NULL, ",", &save)) {
        if (ax.n == SHPB_AXIS_MAX_VALUES) {
            snprintf(err, errlen, "%s: more than %d values", shpb_key_name(key),
                     SHPB_AXIS_MAX_VALUES);
            rc = -EINVAL;
            break;
        }
        unsigned i = ax.n;
        if (shpb_key_is_dist(key)) {
            int64_t ns;
            if (shpb_parse_duration(v, &ns) == 0) {
                ax.d[i] = (shpb_dist){ .kind = SHPB_DIST_FIXED, .a_ns = ns };
                ax.scale[i] = true;
            } else if (shpb_dist_parse(v, &ax.d[i]) != 0) {
                snprintf(err, errlen, "%s: expected a duration (20us) or fixed:DUR / exp:DUR, "
                         "got '%s'", shpb_key_name(key), v);
                rc = -EINVAL;
                break;
            }
            for (unsigned j = 0; j < i; j++) {
                if (ax.scale[j] == ax.scale[i] && ax.d[j].kind == ax.d[i].kind &&
                    ax.d[j].a_ns == ax.d[i].a_ns && ax.d[j].sigma == ax.d[i].sigma) {
                    snprintf(err, errlen, "%s: value '%s' given twice", shpb_key_name(key), v);
                    rc = -EINVAL;
                }
            }
        } else {
            unsigned lo = 0, hi = 1000000;
            if (key == SHPB_KEY_THREADS)
                lo = 1, hi = SHPB_MAX_THREADS;
            else if (key == SHPB_KEY_MAX)
                lo = 1;
            else if (key == SHPB_KEY_SHARDS)
                hi = 4096;
            if (parse_count(v, lo, hi, &ax.u[i]) != 0) {
                snprintf(err, errlen, "%s: expected an integer in %u..%u, got '%s'",
                         shpb_key_name(key), lo, hi, v);
                rc = -EINVAL;
                break;
            }
            for (unsigned j = 0; j < i; j++) {
                if (ax.u[j] == ax.u[i]) {
                    snprintf(err, errlen, "%s: value %u given twice", shpb_key_name(key), ax.u[i]);
                    rc = -EINVAL;
                }
            }
        }
        if (rc != 0)
            break;
        ax.n++;
    }
    free(vals);
    if (rc == 0 && ax.n == 0) {
        snprintf(err, errlen, "%s: no values", shpb_key_name(key));
        rc = -EINVAL;
    }
    if (rc == 0)
        sw->axes[sw->naxes++] = ax;
    return rc;
}

int shpb_sweep_parse(shpb_axes *sw, const char *spec, char *err, size_t errlen)
{
    char *copy = strdup(spec), *save = NULL;
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    bool any = false;
    for (char *t = strtok_r(copy, " \t", &save); t != NULL && rc == 0;
         t = strtok_r(NULL, " \t", &save)) {
        rc = parse_one(sw, t, err, errlen);
        any = true;
    }
    free(copy);
    if (rc == 0 && !any) {
        snprintf(err, errlen, "empty sweep");
        rc = -EINVAL;
    }
    return rc;
}

/* ---- the grid ---------------------------------------------------------------- */

/* A sweep with only its dimensions (keys with several values); the
 * single-valued keys are folded into base. */
typedef struct grid {
    shpb_axes dims;
    shpb_point base;
    unsigned npoints;
    int xdim;         /* the dimension on the plots' x axis */
    unsigned ngroups; /* combinations of the other dimensions */
} grid;

static int grid_make(const shpb_opts *o, const shpb_axes *axes, grid *g, char *err,
                     size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->base.threads = o->threads;
    g->base.pool = o->pool;
    g->base.hold = o->hold;
    g->base.think = o->think;
    for (unsigned a = 0; a < axes->naxes; a++) {
        const shpb_axis *ax = &axes->axes[a];
        if (ax->n == 1)
            shpb_point_apply(&g->base, ax, 0);
        else
            g->dims.axes[g->dims.naxes++] = *ax;
    }
    if (g->dims.naxes == 0) /* nothing swept: one point, plotted against the first key */
        g->dims.axes[g->dims.naxes++] = axes->axes[0];
    g->xdim = 0;
    for (unsigned d = 0; d < g->dims.naxes; d++)
        if (g->dims.axes[d].key == SHPB_KEY_THREADS)
            g->xdim = (int)d;
    uint64_t np = 1, ng = 1;
    for (unsigned d = 0; d < g->dims.naxes; d++) {
        np *= g->dims.axes[d].n;
        if ((int)d != g->xdim)
            ng *= g->dims.axes[d].n;
        if (np > SHPB_SWEEP_MAX_POINTS) {
            snprintf(err, errlen, "more than %d grid points", SHPB_SWEEP_MAX_POINTS);
            return -EINVAL;
        }
    }
    g->npoints = (unsigned)np;
    g->ngroups = (unsigned)ng;
    return 0;
}

/* Point i of the grid: the last dimension varies fastest. */
static void grid_point(const grid *g, unsigned i, shpb_point *p)
{
    *p = g->base;
    for (int d = (int)g->dims.naxes - 1; d >= 0; d--) {
        const shpb_axis *ax = &g->dims.axes[d];
        p->vi[d] = i % ax->n;
        i /= ax->n;
        shpb_point_apply(p, ax, p->vi[d]);
    }
    if (p->pool.min_size > p->pool.max_size)
        p->skip = "min > max";
}

/* The group of a point: its value indices of the dimensions other than x. */
static unsigned grid_group(const grid *g, const shpb_point *p)
{
    unsigned gi = 0;
    for (unsigned d = 0; d < g->dims.naxes; d++)
        if ((int)d != g->xdim)
            gi = gi * g->dims.axes[d].n + p->vi[d];
    return gi;
}

/* The plotted value of axis ax's value i. */
static double axis_x(const shpb_axis *ax, unsigned i, const shpb_point *base, unsigned cpus)
{
    switch (ax->key) {
    case SHPB_KEY_SHARDS:
        return ax->u[i] ? ax->u[i] : cpus;
    case SHPB_KEY_HOLD:
    case SHPB_KEY_THINK: {
        shpb_dist d = ax->key == SHPB_KEY_HOLD ? base->hold : base->think;
        if (ax->scale[i])
            d.a_ns = ax->d[i].a_ns;
        else
            d = ax->d[i];
        return shpb_dist_mean_ns(&d) / 1e3;
    }
    default:
        return ax->u[i];
    }
}

static const char *axis_label(shpb_key k)
{
    switch (k) {
    case SHPB_KEY_THREADS:
        return "worker threads";
    case SHPB_KEY_MAX:
        return "max connections (max_size)";
    case SHPB_KEY_MIN:
        return "connections kept open (min_size)";
    case SHPB_KEY_SHARDS:
        return "shardpool shards (per CPU plotted at the CPU count)";
    case SHPB_KEY_HOLD:
        return "mean hold time (us)";
    default:
        return "mean think time (us)";
    }
}

/* "hold exp:20us, think exp:20us, max 16, min 0, shards per-CPU" for p,
 * without the key skip (SHPB_KEYS: none). */
static void describe(const shpb_opts *o, const shpb_point *p, shpb_key skip, char *buf,
                     size_t len)
{
    static const shpb_key order[] = { SHPB_KEY_THREADS, SHPB_KEY_HOLD, SHPB_KEY_THINK,
                                      SHPB_KEY_MAX,     SHPB_KEY_MIN,  SHPB_KEY_SHARDS };
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++) {
        shpb_key k = order[i];
        if (k == skip)
            continue;
        char v[64];
        if (k == SHPB_KEY_THINK && o->rate > 0)
            snprintf(v, sizeof v, "open loop %.0f ops/s", o->rate);
        else
            shpb_point_value(p, k, v, sizeof v);
        int w = snprintf(buf + used, len - used, "%s%s%s%s", used ? ", " : "",
                         k == SHPB_KEY_THINK && o->rate > 0 ? "" : shpb_key_name(k),
                         k == SHPB_KEY_THINK && o->rate > 0 ? "" : " ", v);
        if (w < 0 || (size_t)w >= len - used)
            return;
        used += (size_t)w;
    }
}

/* "-max16-holdexp20us": the group's values, for file names. */
static void group_tag(const grid *g, const shpb_point *p, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned d = 0; d < g->dims.naxes; d++) {
        if ((int)d == g->xdim)
            continue;
        char v[64], clean[64];
        shpb_point_value(p, g->dims.axes[d].key, v, sizeof v);
        size_t c = 0;
        for (const char *s = v; *s && c + 1 < sizeof clean; s++)
            if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                (*s >= '0' && *s <= '9') || *s == '.')
                clean[c++] = *s;
        clean[c] = '\0';
        int w = snprintf(buf + used, len - used, "-%s%s",
                         shpb_key_name(g->dims.axes[d].key), clean);
        if (w < 0 || (size_t)w >= len - used)
            return;
        used += (size_t)w;
    }
}

static void pool_series(const shpb_opts *o, const char **names, int *style, unsigned *n)
{
    *n = 0;
    for (unsigned k = 0; k < SHPB_POOL_KINDS; k++) {
        if (!o->pools[k])
            continue;
        names[*n] = shpb_pool_kind_name((shpb_pool_kind)k);
        style[*n] = (int)k;
        (*n)++;
    }
}

static int plot_group(const shpb_opts *o, const grid *g, const shpb_point *pts,
                      unsigned group, const shpb_gnuplot *gp, shpb_files *fl)
{
    const shpb_axis *xa = &g->dims.axes[g->xdim];
    const char *names[SHPB_POOL_KINDS];
    int style[SHPB_POOL_KINDS];
    unsigned ns;
    pool_series(o, names, style, &ns);

    /* The group's points in ascending x. */
    unsigned order[SHPB_AXIS_MAX_VALUES], nx = 0;
    const shpb_point *at[SHPB_AXIS_MAX_VALUES] = { 0 };
    const shpb_point *any = NULL;
    for (unsigned i = 0; i < g->npoints; i++) {
        if (grid_group(g, &pts[i]) != group || pts[i].skip != NULL)
            continue;
        at[pts[i].vi[g->xdim]] = &pts[i];
        any = &pts[i];
    }
    if (any == NULL)
        return 0; /* every point skipped (min > max): nothing to draw */
    for (unsigned i = 0; i < xa->n; i++) {
        unsigned j = nx++;
        double xi = axis_x(xa, i, &g->base, o->cpus);
        while (j > 0 && axis_x(xa, order[j - 1], &g->base, o->cpus) > xi) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    double x[SHPB_AXIS_MAX_VALUES];
    double *y = malloc(sizeof(double) * ns * nx);
    if (y == NULL)
        return -1;
    bool xlog = true;
    for (unsigned j = 0; j < nx; j++) {
        x[j] = axis_x(xa, order[j], &g->base, o->cpus);
        if (!(x[j] > 0))
            xlog = false;
        for (unsigned s = 0; s < ns; s++) {
            const shpb_point *p = at[order[j]];
            const shpb_result *r = p != NULL ? &p->res[style[s]] : NULL;
            y[s * nx + j] = r != NULL && r->ran ? r->throughput : NAN;
        }
    }
    if (nx > 1 && x[nx - 1] / x[0] < 4)
        xlog = false;
    for (unsigned j = 1; j < nx; j++)
        if (x[j] == x[j - 1])
            xlog = false; /* e.g. shards 0 and the CPU count: keep it simple */

    char tag[256], desc[512], title[1024], name[512], dur[32], mark[64];
    group_tag(g, any, tag, sizeof tag);
    describe(o, any, xa->key, desc, sizeof desc);
    if (o->ops)
        snprintf(dur, sizeof dur, "%" PRIu64 " ops", o->ops);
    else
        shpb_format_ns(o->duration_ns, dur, sizeof dur);
    snprintf(title, sizeof title,
             "shpbench: throughput vs %s, %u CPUs\n%s\n%s backend, %ld B round trip, "
             "%s per pool and point",
             shpb_key_name(xa->key), o->cpus, desc, o->backend.spec, o->roundtrip_bytes, dur);
    snprintf(name, sizeof name, "shpbench-throughput-vs-%s%s", shpb_key_name(xa->key), tag);
    shpb_xy_plot xy = {
        .name = name, .title = title, .xlabel = axis_label(xa->key),
        .ylabel = "throughput (acquire-hold-release cycles/s)", .xlog = xlog, .nx = nx,
        .x = x, .nseries = ns, .series = names, .style = style, .y = y,
    };
    if (xa->key == SHPB_KEY_THREADS) {
        xy.mark_x = o->cpus;
        snprintf(mark, sizeof mark, "%u CPU%s", o->cpus, o->cpus == 1 ? "" : "s");
        xy.mark_label = mark;
    } else if (xa->key == SHPB_KEY_MAX) {
        xy.mark_x = any->threads;
        snprintf(mark, sizeof mark, "= threads");
        xy.mark_label = mark;
    }
    int rc = shpb_plot_xy(gp, o->plot_dir, &xy, fl);
    free(y);

    /* The CDF at the point that kept its histograms. */
    const shpb_point *cp = NULL;
    for (unsigned i = 0; i < g->npoints; i++)
        if (pts[i].keep_hist && grid_group(g, &pts[i]) == group)
            cp = &pts[i];
    if (cp == NULL)
        return rc;
    const shpb_lat *hists[SHPB_POOL_KINDS];
    for (unsigned s = 0; s < ns; s++)
        hists[s] = cp->res[style[s]].hist;
    char at_what[128];
    if (xa->key == SHPB_KEY_THREADS)
        snprintf(at_what, sizeof at_what, "%u threads (the most swept)", cp->threads);
    else
        snprintf(at_what, sizeof at_what, "%s %s (the largest swept)", shpb_key_name(xa->key),
                 shpb_point_value(cp, xa->key, desc, sizeof desc));
    describe(o, cp, xa->key, desc, sizeof desc);
    snprintf(title, sizeof title,
             "shpbench: acquire latency per pool at %s, %u CPUs\n%s; %s backend, %s per pool",
             at_what, o->cpus, desc, o->backend.spec, dur);
    snprintf(name, sizeof name, "shpbench-acquire-cdf%s", tag);
    shpb_cdf_plot cdf = {
        .name = name, .title = title,
        .xlabel = "acquire latency (time in the pool's acquire call, log scale)",
        .nseries = ns, .series = names, .style = style, .hists = hists,
    };
    if (shpb_plot_cdf(gp, o->plot_dir, &cdf, fl) != 0)
        rc = -1;
    return rc;
}

int shpb_sweep_main(const shpb_opts *o, const shpb_axes *axes, shpb_backend *b)
{
    char err[256];
    grid g;
    if (grid_make(o, axes, &g, err, sizeof err) != 0) {
        fprintf(stderr, "shpbench: --sweep: %s\n", err);
        return 2;
    }
    shpb_point *pts = calloc(g.npoints, sizeof *pts);
    if (pts == NULL) {
        fprintf(stderr, "shpbench: out of memory\n");
        return 1;
    }
    unsigned runnable = 0;
    for (unsigned i = 0; i < g.npoints; i++) {
        grid_point(&g, i, &pts[i]);
        runnable += pts[i].skip == NULL;
    }
    /* Which points keep histograms: per group, the most threads (or the
     * largest x value), among the points that run. */
    const shpb_axis *xa = &g.dims.axes[g.xdim];
    for (unsigned gi = 0; gi < g.ngroups; gi++) {
        shpb_point *best = NULL;
        for (unsigned i = 0; i < g.npoints; i++) {
            shpb_point *p = &pts[i];
            if (p->skip != NULL || grid_group(&g, p) != gi)
                continue;
            if (best == NULL || axis_x(xa, p->vi[g.xdim], &g.base, o->cpus) >
                                    axis_x(xa, best->vi[g.xdim], &g.base, o->cpus))
                best = p;
        }
        if (best != NULL)
            best->keep_hist = true;
    }

    /* The header: the fixed parameters, then what is swept. */
    shpb_opts fixed = *o;
    shpb_point_opts(o, &g.base, &fixed);
    bool swept[SHPB_KEYS] = { false };
    for (unsigned d = 0; d < g.dims.naxes; d++)
        swept[g.dims.axes[d].key] = g.dims.axes[d].n > 1;
    shpb_print_header(&fixed, b, swept);
    unsigned npools = 0;
    for (unsigned k = 0; k < SHPB_POOL_KINDS; k++)
        npools += o->pools[k];
    printf("sweep:");
    for (unsigned d = 0; d < g.dims.naxes; d++) {
        const shpb_axis *ax = &g.dims.axes[d];
        printf(" %s=", shpb_key_name(ax->key));
        for (unsigned i = 0; i < ax->n; i++) {
            shpb_point tmp = g.base;
            char v[64];
            shpb_point_apply(&tmp, ax, i);
            printf("%s%s", i ? "," : "", shpb_point_value(&tmp, ax->key, v, sizeof v));
        }
    }
    if (o->ops)
        printf("; %u points x %u pools x %" PRIu64 " ops\n", runnable, npools, o->ops);
    else
        printf("; %u points x %u pools x %s = %.1f s\n", runnable, npools,
               shpb_format_ns(o->duration_ns, err, sizeof err),
               (double)runnable * npools * (double)o->duration_ns / 1e9);

    shpb_key cols[SHPB_KEYS];
    unsigned ncols = 0;
    for (unsigned d = 0; d < g.dims.naxes; d++)
        cols[ncols++] = g.dims.axes[d].key;
    int status = shpb_run_points(&fixed, b, pts, g.npoints, o->pools, cols, ncols, true);

    shpb_files fl = { 0 };
    if (o->csv_path != NULL) {
        if (shpb_write_points_csv(o->csv_path, pts, g.npoints) == 0)
            fl.paths[fl.n++] = strdup(o->csv_path);
        else
            status = 1;
    }
    if (o->json_path != NULL) {
        if (shpb_write_points_json(o->json_path, &fixed, b, "sweep", axes, pts, g.npoints,
                                   NULL, NULL) == 0)
            fl.paths[fl.n++] = strdup(o->json_path);
        else
            status = 1;
    }
    if (o->plot_dir == NULL) {
        printf("\nno plots: give --plot-dir DIR to write gnuplot plots of this sweep.\n");
    } else if (shpb_mkdir_p(o->plot_dir) != 0) {
        status = 1;
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/shpbench-sweep.csv", o->plot_dir);
        if (shpb_write_points_csv(path, pts, g.npoints) == 0)
            shpb_files_add(&fl, o->plot_dir, "shpbench-sweep.csv");
        else
            status = 1;
        snprintf(path, sizeof path, "%s/shpbench-sweep.json", o->plot_dir);
        if (shpb_write_points_json(path, &fixed, b, "sweep", axes, pts, g.npoints, NULL,
                                   NULL) == 0)
            shpb_files_add(&fl, o->plot_dir, "shpbench-sweep.json");
        else
            status = 1;
        shpb_gnuplot gp;
        shpb_gnuplot_probe(&gp);
        if (!gp.found)
            fprintf(stderr, "\nshpbench: gnuplot not found: no SVG/PNG plots.  Install it "
                            "(Debian: apt-get install gnuplot-nox, or make deps) and render "
                            "the scripts below with: cd %s && gnuplot NAME.gp\n",
                    o->plot_dir);
        else if (!gp.svg || !gp.png)
            fprintf(stderr, "\nshpbench: this gnuplot lacks the %s terminal: no plots; the "
                            "data and scripts are written\n",
                    !gp.svg ? "svg" : "png");
        for (unsigned gi = 0; gi < g.ngroups; gi++)
            if (plot_group(o, &g, pts, gi, &gp, &fl) != 0)
                status = 1;
    }
    if (fl.n > 0) {
        printf("\nfiles written:\n");
        for (unsigned i = 0; i < fl.n; i++) {
            printf("  %s\n", fl.paths[i]);
        }
    }
    shpb_files_free(&fl);
    shpb_points_free(pts, g.npoints);
    return status;
}

/* ---- self-test ---------------------------------------------------------------- */

int shpb_sweep_self_test(void)
{
    int bad = 0;
    char err[256];
    static shpb_axes sw;
    memset(&sw, 0, sizeof sw);
    if (shpb_sweep_parse(&sw, "threads=1,2,4 max=16", err, sizeof err) != 0 ||
        shpb_sweep_parse(&sw, "hold=10us,exp:5us", err, sizeof err) != 0 || sw.naxes != 3 ||
        sw.axes[0].key != SHPB_KEY_THREADS || sw.axes[0].n != 3 || sw.axes[0].u[2] != 4 ||
        sw.axes[1].n != 1 || sw.axes[1].u[0] != 16 || !sw.axes[2].scale[0] ||
        sw.axes[2].d[0].a_ns != 10000 || sw.axes[2].scale[1] ||
        sw.axes[2].d[1].kind != SHPB_DIST_EXP) {
        fprintf(stderr, "sweep self-test: parsing a good sweep failed\n");
        bad = 1;
    }
    static const char *const bad_specs[] = { "threads=", "foo=1", "threads=0", "threads=1,1",
                                             "hold=xx", "max=0", "threads", "=1", "" };
    for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
        static shpb_axes s2;
        memset(&s2, 0, sizeof s2);
        if (shpb_sweep_parse(&s2, bad_specs[i], err, sizeof err) == 0) {
            fprintf(stderr, "sweep self-test: '%s' accepted\n", bad_specs[i]);
            bad = 1;
        }
    }
    /* The grid: max=4,16 x min=0,8; the last key varies fastest; min 8 >
     * max 4 is skipped; groups split by min (x is max, threads not swept). */
    static shpb_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 2;
    o.pool.max_size = 16;
    shpb_dist_parse("exp:20us", &o.hold);
    shpb_dist_parse("exp:20us", &o.think);
    static shpb_axes ax;
    memset(&ax, 0, sizeof ax);
    if (shpb_sweep_parse(&ax, "max=4,16 min=0,8 shards=1", err, sizeof err) != 0) {
        fprintf(stderr, "sweep self-test: %s\n", err);
        return -1;
    }
    static grid g;
    if (grid_make(&o, &ax, &g, err, sizeof err) != 0 || g.npoints != 4 || g.ngroups != 2 ||
        g.xdim != 0 || g.base.pool.shards != 1) {
        fprintf(stderr, "sweep self-test: grid of max=4,16 min=0,8 shards=1 wrong\n");
        return -1;
    }
    static const unsigned want[4][2] = { { 4, 0 }, { 4, 8 }, { 16, 0 }, { 16, 8 } };
    for (unsigned i = 0; i < 4; i++) {
        static shpb_point p;
        grid_point(&g, i, &p);
        if (p.pool.max_size != want[i][0] || p.pool.min_size != want[i][1] ||
            (p.skip != NULL) != (i == 1) || grid_group(&g, &p) != (want[i][1] ? 1u : 0u)) {
            fprintf(stderr, "sweep self-test: grid point %u wrong\n", i);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}
