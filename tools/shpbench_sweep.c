/*
 * tools/shpbench_sweep.c - shpbench --sweep: the comparison at every point of
 * a grid, its CSV/JSON, and its plots.
 *
 * A key given with one value is no dimension: it just sets that parameter.
 * Every key with several values is a dimension; the first one given varies
 * slowest.  The plots put threads on the x axis when it is a dimension (else
 * the first dimension), and draw one throughput plot and one latency CDF
 * per combination of the other dimensions' values.  The CDF is drawn for
 * the point with the most threads (when threads is not swept: the largest
 * x value); only those points keep their histograms.
 */
#include "shpbench.h"
#include "shpbench_plot.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const key_names[SHPB_KEYS] = {
    [SHPB_KEY_THREADS] = "threads", [SHPB_KEY_MAX] = "max",   [SHPB_KEY_MIN] = "min",
    [SHPB_KEY_SHARDS] = "shards",   [SHPB_KEY_HOLD] = "hold", [SHPB_KEY_THINK] = "think",
};

const char *shpb_key_name(shpb_key k)
{
    return (unsigned)k < SHPB_KEYS ? key_names[k] : "?";
}

static bool key_is_dist(shpb_key k)
{
    return k == SHPB_KEY_HOLD || k == SHPB_KEY_THINK;
}

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

static int parse_one(shpb_sweep *sw, const char *tok, char *err, size_t errlen)
{
    const char *eq = strchr(tok, '=');
    if (eq == NULL || eq == tok) {
        snprintf(err, errlen, "expected KEY=V1,V2,..., got '%s'", tok);
        return -EINVAL;
    }
    size_t klen = (size_t)(eq - tok);
    shpb_key key = SHPB_KEYS;
    for (unsigned k = 0; k < SHPB_KEYS; k++)
        if (strlen(key_names[k]) == klen && strncmp(tok, key_names[k], klen) == 0)
            key = (shpb_key)k;
    if (key == SHPB_KEYS) {
        snprintf(err, errlen, "unknown key '%.*s' (threads, max, min, shards, hold, think)",
                 (int)klen, tok);
        return -EINVAL;
    }
    for (unsigned i = 0; i < sw->naxes; i++) {
        if (sw->axes[i].key == key) {
            snprintf(err, errlen, "key '%s' given twice", key_names[key]);
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
        if (ax.n == SHPB_SWEEP_MAX_VALUES) {
            snprintf(err, errlen, "%s: more than %d values", key_names[key],
                     SHPB_SWEEP_MAX_VALUES);
            rc = -EINVAL;
            break;
        }
        unsigned i = ax.n;
        if (key_is_dist(key)) {
            int64_t ns;
            if (shpb_parse_duration(v, &ns) == 0) {
                ax.d[i] = (shpb_dist){ .kind = SHPB_DIST_FIXED, .a_ns = ns };
                ax.scale[i] = true;
            } else if (shpb_dist_parse(v, &ax.d[i]) != 0) {
                snprintf(err, errlen, "%s: expected a duration (20us) or fixed:DUR / exp:DUR, "
                         "got '%s'", key_names[key], v);
                rc = -EINVAL;
                break;
            }
            for (unsigned j = 0; j < i; j++) {
                if (ax.scale[j] == ax.scale[i] && ax.d[j].kind == ax.d[i].kind &&
                    ax.d[j].a_ns == ax.d[i].a_ns && ax.d[j].sigma == ax.d[i].sigma) {
                    snprintf(err, errlen, "%s: value '%s' given twice", key_names[key], v);
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
                         key_names[key], lo, hi, v);
                rc = -EINVAL;
                break;
            }
            for (unsigned j = 0; j < i; j++) {
                if (ax.u[j] == ax.u[i]) {
                    snprintf(err, errlen, "%s: value %u given twice", key_names[key], ax.u[i]);
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
        snprintf(err, errlen, "%s: no values", key_names[key]);
        rc = -EINVAL;
    }
    if (rc == 0)
        sw->axes[sw->naxes++] = ax;
    return rc;
}

int shpb_sweep_parse(shpb_sweep *sw, const char *spec, char *err, size_t errlen)
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

/* ---- points ---------------------------------------------------------------- */

void shpb_point_opts(const shpb_opts *o, const shpb_point *p, shpb_opts *out)
{
    *out = *o;
    out->threads = p->threads;
    out->pool = p->pool;
    out->hold = p->hold;
    out->think = p->think;
}

char *shpb_point_value(const shpb_point *p, shpb_key k, char *buf, size_t len)
{
    switch (k) {
    case SHPB_KEY_THREADS:
        snprintf(buf, len, "%u", p->threads);
        break;
    case SHPB_KEY_MAX:
        snprintf(buf, len, "%u", p->pool.max_size);
        break;
    case SHPB_KEY_MIN:
        snprintf(buf, len, "%u", p->pool.min_size);
        break;
    case SHPB_KEY_SHARDS:
        if (p->pool.shards == 0)
            snprintf(buf, len, "per-CPU");
        else
            snprintf(buf, len, "%u", p->pool.shards);
        break;
    case SHPB_KEY_HOLD:
        shpb_dist_format(&p->hold, buf, len);
        break;
    case SHPB_KEY_THINK:
    default:
        shpb_dist_format(&p->think, buf, len);
        break;
    }
    return buf;
}

/* Sets p's value of axis a to value i. */
static void apply_value(shpb_point *p, const shpb_axis *a, unsigned i)
{
    switch (a->key) {
    case SHPB_KEY_THREADS:
        p->threads = a->u[i];
        break;
    case SHPB_KEY_MAX:
        p->pool.max_size = a->u[i];
        break;
    case SHPB_KEY_MIN:
        p->pool.min_size = a->u[i];
        break;
    case SHPB_KEY_SHARDS:
        p->pool.shards = a->u[i];
        break;
    case SHPB_KEY_HOLD:
    case SHPB_KEY_THINK: {
        shpb_dist *d = a->key == SHPB_KEY_HOLD ? &p->hold : &p->think;
        if (a->scale[i])
            d->a_ns = a->d[i].a_ns;
        else
            *d = a->d[i];
        break;
    }
    default:
        break;
    }
}

void shpb_points_free(shpb_point *pts, unsigned n)
{
    if (pts == NULL)
        return;
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = 0; k < SHPB_POOL_KINDS; k++)
            shpb_result_free(&pts[i].res[k]);
    free(pts);
}

static void print_rows_header(const shpb_key *cols, unsigned ncols, const int *w)
{
    printf("\n%4s", "pt");
    for (unsigned c = 0; c < ncols; c++)
        printf(" %*s", w[c], key_names[cols[c]]);
    printf(" %-17s %11s %9s %9s %9s %7s %8s %7s %7s %7s\n", "pool", "ops/s", "acq p50",
           "acq p99", "p99.9", "wait %", "steals %", "in use", "opened", "errors");
}

static void print_row(unsigned no, const shpb_point *p, const shpb_result *r,
                      const shpb_key *cols, unsigned ncols, const int *w)
{
    char v[64], p50[32], p99[32], p999[32], steals[16];
    printf("%4u", no);
    for (unsigned c = 0; c < ncols; c++)
        printf(" %*s", w[c], shpb_point_value(p, cols[c], v, sizeof v));
    if (!r->ran) {
        printf(" %-17s (not run)\n", shpb_pool_kind_name(r->kind));
        return;
    }
    if (r->ops == 0) {
        printf(" %-17s %11.0f %9s %9s %9s %7s %8s %7s %7" PRIu64 " %7" PRIu64 "\n",
               shpb_pool_kind_name(r->kind), 0.0, "-", "-", "-", "-", "-", "-", r->bc.opened,
               r->errors + r->timeouts);
        return;
    }
    if (r->has_stats)
        snprintf(steals, sizeof steals, "%.2f", shpb_steals_pct(r));
    else
        snprintf(steals, sizeof steals, "-");
    printf(" %-17s %11.0f %9s %9s %9s %7.2f %8s %7.1f %7" PRIu64 " %7" PRIu64 "\n",
           shpb_pool_kind_name(r->kind), r->throughput,
           shpb_format_ns((int64_t)r->p50, p50, sizeof p50),
           shpb_format_ns((int64_t)r->p99, p99, sizeof p99),
           shpb_format_ns((int64_t)r->p999, p999, sizeof p999), r->wait_pct, steals,
           r->in_use_avg, r->bc.opened, r->errors + r->timeouts);
}

int shpb_run_points(const shpb_opts *o, shpb_backend *b, shpb_point *pts, unsigned n,
                    const bool *pools, const shpb_key *cols, unsigned ncols, bool rows)
{
    bool tty = isatty(STDERR_FILENO) && o->progress;
    int w[SHPB_KEYS];
    for (unsigned c = 0; c < ncols; c++) {
        w[c] = (int)strlen(key_names[cols[c]]);
        for (unsigned i = 0; i < n; i++) {
            char v[64];
            int l = (int)strlen(shpb_point_value(&pts[i], cols[c], v, sizeof v));
            if (l > w[c])
                w[c] = l;
        }
    }
    unsigned of = 0;
    for (unsigned k = 0; k < SHPB_POOL_KINDS; k++)
        of += pools[k];
    if (rows) {
        print_rows_header(cols, ncols, w);
        fflush(stdout);
    }
    int status = 0;
    for (unsigned i = 0; i < n; i++) {
        shpb_point *p = &pts[i];
        for (unsigned k = 0; k < SHPB_POOL_KINDS; k++)
            p->res[k].kind = (shpb_pool_kind)k;
        if (p->skip != NULL) {
            if (rows)
                printf("%4u skipped: %s\n", i + 1, p->skip);
            continue;
        }
        if (!rows && tty) {
            fprintf(stderr, "\r\033[Kshpbench: measuring %u/%u", i + 1, n);
            for (unsigned c = 0; c < ncols; c++) {
                char v[64];
                fprintf(stderr, " %s %s", key_names[cols[c]],
                        shpb_point_value(p, cols[c], v, sizeof v));
            }
            fflush(stderr);
        }
        shpb_opts po;
        shpb_point_opts(o, p, &po);
        unsigned no = 0;
        for (unsigned k = 0; k < SHPB_POOL_KINDS; k++) {
            if (!pools[k])
                continue;
            if (shpb_run_pool(&po, b, (shpb_pool_kind)k, ++no, of, &p->res[k]) != 0)
                status = 1;
            if (!p->keep_hist)
                shpb_result_drop_hist(&p->res[k]);
            if (rows) {
                print_row(i + 1, p, &p->res[k], cols, ncols, w);
                fflush(stdout);
            }
        }
    }
    if (!rows) {
        if (tty)
            fprintf(stderr, "\r\033[K");
        return status;
    }
    char th[32];
    shpb_format_ns(o->wait_threshold_ns, th, sizeof th);
    printf("\nacq: time in the pool's acquire call (successful acquires); wait %%: acquires "
           "slower than %s;\nsteals %%: shardpool acquires served from another CPU's shard; "
           "in use: connections held\nby the workers on average; opened: connections the "
           "backend accepted; errors: failed acquires.\n",
           th);
    return status;
}

/* ---- CSV and JSON ---------------------------------------------------------- */

int shpb_write_points_csv(const char *path, const shpb_point *pts, unsigned n)
{
    FILE *f = shpb_open_out(path);
    if (f == NULL)
        return -1;
    fprintf(f, "point,threads,max,min,shards,hold,think,");
    shpb_csv_result_header(f);
    fputc('\n', f);
    for (unsigned i = 0; i < n; i++) {
        const shpb_point *p = &pts[i];
        char hold[64], think[64];
        shpb_dist_format(&p->hold, hold, sizeof hold);
        shpb_dist_format(&p->think, think, sizeof think);
        for (unsigned k = 0; k < SHPB_POOL_KINDS; k++) {
            if (!p->res[k].ran)
                continue;
            /* a lognormal's comma: quote the field */
            fprintf(f, "%u,%u,%u,%u,%u,\"%s\",\"%s\",", i + 1, p->threads, p->pool.max_size,
                    p->pool.min_size, p->pool.shards, hold, think);
            shpb_csv_result_row(f, &p->res[k]);
            fputc('\n', f);
        }
    }
    return shpb_close_out(f, path);
}

int shpb_write_points_json(const char *path, const shpb_opts *o, shpb_backend *b,
                           const char *mode, const shpb_sweep *sw, const shpb_point *pts,
                           unsigned n, void (*extra)(FILE *f, const void *arg),
                           const void *extra_arg)
{
    FILE *f = shpb_open_out(path);
    if (f == NULL)
        return -1;
    fprintf(f, "{\n  \"tool\": \"shpbench\",\n  \"version\": \"%d.%d.%d\",\n  \"mode\": ",
            SHP_VERSION_MAJOR, SHP_VERSION_MINOR, SHP_VERSION_PATCH);
    shpb_json_str(f, mode);
    fprintf(f, ",\n  \"config\": {\n");
    shpb_json_config(f, o, b, 4);
    fprintf(f, "  },\n  \"sweep\": ");
    if (sw == NULL || sw->naxes == 0) {
        fprintf(f, "null");
    } else {
        fprintf(f, "{");
        for (unsigned a = 0; a < sw->naxes; a++) {
            const shpb_axis *ax = &sw->axes[a];
            fprintf(f, "%s\"%s\": [", a ? ", " : "", key_names[ax->key]);
            for (unsigned i = 0; i < ax->n; i++) {
                if (i)
                    fprintf(f, ", ");
                if (key_is_dist(ax->key)) {
                    char d[64];
                    shpb_dist_format(&ax->d[i], d, sizeof d);
                    /* a bare duration keeps the distribution's kind */
                    shpb_json_str(f, ax->scale[i] ? strchr(d, ':') + 1 : d);
                } else {
                    fprintf(f, "%u", ax->u[i]);
                }
            }
            fprintf(f, "]");
        }
        fprintf(f, "}");
    }
    fprintf(f, ",\n  \"points\": [");
    for (unsigned i = 0; i < n; i++) {
        const shpb_point *p = &pts[i];
        char hold[64], think[64];
        fprintf(f, "%s\n    {\"point\": %u, \"threads\": %u, \"max\": %u, \"min\": %u, "
                   "\"shards\": %u, \"hold\": ",
                i ? "," : "", i + 1, p->threads, p->pool.max_size, p->pool.min_size,
                p->pool.shards);
        shpb_json_str(f, shpb_dist_format(&p->hold, hold, sizeof hold));
        fprintf(f, ", \"think\": ");
        shpb_json_str(f, shpb_dist_format(&p->think, think, sizeof think));
        fprintf(f, ", \"skipped\": ");
        if (p->skip != NULL)
            shpb_json_str(f, p->skip);
        else
            fprintf(f, "null");
        fprintf(f, ",\n     \"results\": [");
        bool first = true;
        for (unsigned k = 0; k < SHPB_POOL_KINDS; k++) {
            if (!p->res[k].ran)
                continue;
            fprintf(f, "%s\n", first ? "" : ",");
            first = false;
            shpb_json_result(f, &p->res[k], 6);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ]");
    if (extra != NULL) {
        fprintf(f, ",\n");
        extra(f, extra_arg);
    }
    fprintf(f, "\n}\n");
    return shpb_close_out(f, path);
}

/* ---- the grid ---------------------------------------------------------------- */

/* A sweep with only its dimensions (keys with several values); the
 * single-valued keys are folded into base. */
typedef struct grid {
    shpb_sweep dims;
    shpb_point base;
    unsigned npoints;
    int xdim;         /* the dimension on the plots' x axis */
    unsigned ngroups; /* combinations of the other dimensions */
} grid;

static int grid_make(const shpb_opts *o, grid *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->base.threads = o->threads;
    g->base.pool = o->pool;
    g->base.hold = o->hold;
    g->base.think = o->think;
    for (unsigned a = 0; a < o->sweep.naxes; a++) {
        const shpb_axis *ax = &o->sweep.axes[a];
        if (ax->n == 1)
            apply_value(&g->base, ax, 0);
        else
            g->dims.axes[g->dims.naxes++] = *ax;
    }
    if (g->dims.naxes == 0) /* nothing swept: one point, plotted against the first key */
        g->dims.axes[g->dims.naxes++] = o->sweep.axes[0];
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
        apply_value(p, ax, p->vi[d]);
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
                         k == SHPB_KEY_THINK && o->rate > 0 ? "" : key_names[k],
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
        int w = snprintf(buf + used, len - used, "-%s%s", key_names[g->dims.axes[d].key],
                         clean);
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
    unsigned order[SHPB_SWEEP_MAX_VALUES], nx = 0;
    const shpb_point *at[SHPB_SWEEP_MAX_VALUES] = { 0 };
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
    double x[SHPB_SWEEP_MAX_VALUES];
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
             key_names[xa->key], o->cpus, desc, o->backend.spec, o->roundtrip_bytes, dur);
    snprintf(name, sizeof name, "shpbench-throughput-vs-%s%s", key_names[xa->key], tag);
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
    const shpb_hist *hists[SHPB_POOL_KINDS];
    for (unsigned s = 0; s < ns; s++)
        hists[s] = cp->res[style[s]].hist;
    char at_what[128];
    if (xa->key == SHPB_KEY_THREADS)
        snprintf(at_what, sizeof at_what, "%u threads (the most swept)", cp->threads);
    else
        snprintf(at_what, sizeof at_what, "%s %s (the largest swept)", key_names[xa->key],
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

int shpb_sweep_main(const shpb_opts *o, shpb_backend *b)
{
    char err[256];
    grid g;
    if (grid_make(o, &g, err, sizeof err) != 0) {
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
        printf(" %s=", key_names[ax->key]);
        for (unsigned i = 0; i < ax->n; i++) {
            shpb_point tmp = g.base;
            char v[64];
            apply_value(&tmp, ax, i);
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
        if (shpb_write_points_json(o->json_path, &fixed, b, "sweep", &o->sweep, pts, g.npoints,
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
        if (shpb_write_points_json(path, &fixed, b, "sweep", &o->sweep, pts, g.npoints, NULL,
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
    static shpb_sweep sw;
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
        static shpb_sweep s2;
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
    if (shpb_sweep_parse(&o.sweep, "max=4,16 min=0,8 shards=1", err, sizeof err) != 0) {
        fprintf(stderr, "sweep self-test: %s\n", err);
        return -1;
    }
    static grid g;
    if (grid_make(&o, &g, err, sizeof err) != 0 || g.npoints != 4 || g.ngroups != 2 ||
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
