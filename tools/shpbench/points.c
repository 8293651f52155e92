/*
 * tools/shpbench/points.c - see points.h.
 */
#include "shpbench/points.h"

#include "shpbench/report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool shpb_key_is_dist(shpb_key k)
{
    return k == SHPB_KEY_HOLD || k == SHPB_KEY_THINK;
}

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

void shpb_point_apply(shpb_point *p, const shpb_axis *a, unsigned i)
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
        printf(" %*s", w[c], shpb_key_name(cols[c]));
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
        w[c] = (int)strlen(shpb_key_name(cols[c]));
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
                fprintf(stderr, " %s %s", shpb_key_name(cols[c]),
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

/* ---- CSV and JSON ------------------------------------------------------- */

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
                           const char *mode, const shpb_axes *sw, const shpb_point *pts,
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
            fprintf(f, "%s\"%s\": [", a ? ", " : "", shpb_key_name(ax->key));
            for (unsigned i = 0; i < ax->n; i++) {
                if (i)
                    fprintf(f, ", ");
                if (shpb_key_is_dist(ax->key)) {
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
