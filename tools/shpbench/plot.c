/*
 * tools/shpbench/plot.c - see plot.h.
 */
#include "shpbench/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PLOT_W 900
#define PLOT_H 540
#define CDF_H  720

/* Per pool kind (pools.h order): Okabe-Ito colours, which stay
 * apart for colour-blind readers, and a point type each. */
static const struct {
    const char *color;
    int pt;
    int dt;
} styles[] = {
    { "#0072B2", 7, 1 },  /* shardpool: blue, filled circle */
    { "#56B4E9", 5, 2 },  /* shardpool-1shard: sky blue, filled square, dashed */
    { "#D55E00", 9, 1 },  /* mutex: vermillion, filled triangle */
    { "#009E73", 13, 1 }, /* gstack: green, filled diamond */
    { "#CC79A7", 11, 1 },
    { "#E69F00", 15, 1 },
    { "#000000", 3, 1 },  /* --plot-gbench's 7th and 8th series */
    { "#999999", 6, 3 },
};
#define NSTYLES (sizeof styles / sizeof styles[0])

/* ---- running gnuplot ------------------------------------------------------ */

/* Runs gnuplot with args (argv[0] excluded, NULL-terminated) in dir (NULL:
 * here), stdout to /dev/null, stderr to /dev/null if quiet.  Returns its
 * exit status, 127 if it could not be started, or -1 if it died. */
static int spawn_gnuplot(const char *dir, char *const args[], bool quiet)
{
    char *argv[8] = { "gnuplot" };
    unsigned n = 1;
    for (; args[n - 1] != NULL && n < 7; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;

    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return 127;
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    if (quiet)
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    if (dir != NULL)
        posix_spawn_file_actions_addchdir_np(&fa, dir);
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return 127;
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool has_terminal(const char *term)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "set terminal %s", term);
    char *args[] = { "-e", cmd, NULL };
    return spawn_gnuplot(NULL, args, true) == 0;
}

void shpb_gnuplot_probe(shpb_gnuplot *g)
{
    memset(g, 0, sizeof *g);
    char *args[] = { "-e", "exit", NULL };
    g->found = spawn_gnuplot(NULL, args, true) == 0;
    if (!g->found)
        return;
    g->svg = has_terminal("svg");
    g->pngcairo = has_terminal("pngcairo");
    g->png = g->pngcairo || has_terminal("png");
}

/* ---- files ---------------------------------------------------------------- */

void shpb_files_add(shpb_files *fl, const char *dir, const char *name)
{
    if (fl->n >= sizeof fl->paths / sizeof fl->paths[0])
        return;
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p == NULL)
        return;
    snprintf(p, len, "%s/%s", dir, name);
    fl->paths[fl->n++] = p;
}

void shpb_files_free(shpb_files *fl)
{
    for (unsigned i = 0; i < fl->n; i++)
        free(fl->paths[i]);
    fl->n = 0;
}

int shpb_mkdir_p(const char *dir)
{
    char *p = strdup(dir);
    if (p == NULL)
        return -1;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                fprintf(stderr, "shpbench: mkdir %s: %s\n", p, strerror(errno));
                free(p);
                return -1;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "shpbench: %s is not a directory\n", dir);
        return -1;
    }
    return 0;
}

static FILE *open_in(const char *dir, const char *name, const char *ext, char *path,
                     size_t len)
{
    snprintf(path, len, "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fprintf(stderr, "shpbench: %s: %s\n", path, strerror(errno));
    return f;
}

static int close_in(FILE *f, const char *path)
{
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "shpbench: %s: write error\n", path);
        return -1;
    }
    return 0;
}

/* ---- script pieces -------------------------------------------------------- */

/* s as a gnuplot double-quoted string ("\n" stays a line break). */
static void gp_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void gp_styles(FILE *f)
{
    for (unsigned i = 0; i < NSTYLES; i++)
        fprintf(f, "set linetype %u lc rgb '%s' lw 2 pt %d ps 1.2 dt %d\n", i + 1,
                styles[i].color, styles[i].pt, styles[i].dt);
}

/* The terminal section for output format fmt ("svg" or "png"), then
 * body(f, p, utf8). */
typedef void body_fn(FILE *f, const void *p, bool utf8);

static void gp_output(FILE *f, const shpb_gnuplot *g, const char *fmt, const char *name,
                      int height, body_fn *body, const void *p)
{
    bool utf8 = true;
    if (strcmp(fmt, "svg") == 0) {
        fprintf(f, "set terminal svg size %d,%d dynamic font 'sans,12' background rgb 'white'\n",
                PLOT_W, height);
    } else if (g == NULL || g->pngcairo) {
        fprintf(f, "set terminal pngcairo size %d,%d font 'sans,11' background rgb 'white'\n",
                PLOT_W, height);
    } else {
        /* libgd's png: its default font may lack the micro sign */
        fprintf(f, "set terminal png size %d,%d background rgb 'white'\n", PLOT_W, height);
        utf8 = false;
    }
    fprintf(f, "set termoption noenhanced\nset encoding %s\nset output '%s.%s'\n",
            utf8 ? "utf8" : "default", name, fmt);
    body(f, p, utf8);
    fprintf(f, "set output\n\n");
}

/* Writes NAME.gp (both outputs, whatever this gnuplot has: the script is
 * also for later use) and runs it when g can.  Adds what exists to fl. */
static int render(const shpb_gnuplot *g, const char *dir, const char *name, int height,
                  body_fn *body, const void *p, shpb_files *fl)
{
    char path[4096];
    FILE *f = open_in(dir, name, ".gp", path, sizeof path);
    if (f == NULL)
        return -1;
    fprintf(f, "# Written by shpbench; re-render with: cd <this directory> && gnuplot %s.gp\n"
               "# Reads %s.dat, writes %s.svg and %s.png.\nreset\n",
            name, name, name, name);
    gp_styles(f);
    gp_output(f, g, "svg", name, height, body, p);
    gp_output(f, g, "png", name, height, body, p);
    if (close_in(f, path) != 0)
        return -1;
    char gp[512];
    snprintf(gp, sizeof gp, "%s.gp", name);
    shpb_files_add(fl, dir, gp);

    if (g == NULL || !g->found || !g->svg || !g->png)
        return 0; /* the caller has said why */
    char *args[] = { gp, NULL };
    int rc = spawn_gnuplot(dir, args, false);
    if (rc != 0) {
        fprintf(stderr, "shpbench: gnuplot %s/%s failed (exit status %d)\n", dir, gp, rc);
        return -1;
    }
    char out[512];
    snprintf(out, sizeof out, "%s.svg", name);
    shpb_files_add(fl, dir, out);
    snprintf(out, sizeof out, "%s.png", name);
    shpb_files_add(fl, dir, out);
    return 0;
}

/* ---- y against x ---------------------------------------------------------- */

static void xy_body(FILE *f, const void *arg, bool utf8)
{
    const shpb_xy_plot *p = arg;
    (void)utf8;
    fprintf(f, "set title ");
    gp_str(f, p->title);
    fprintf(f, "\nset xlabel ");
    gp_str(f, p->xlabel);
    fprintf(f, "\nset ylabel ");
    gp_str(f, p->ylabel);
    fprintf(f, "\nset grid\nset key outside right top vertical Left reverse\n"
               "set format y '%%.0s%%c'\nset datafile missing NaN\n");
    if (p->ylog)
        fprintf(f, "set logscale y 10\nset yrange [*:*]\n");
    else
        fprintf(f, "unset logscale y\nset yrange [0:*]\n");
    double lo = p->x[0], hi = p->x[p->nx - 1];
    if (p->xlog && lo > 0) {
        fprintf(f, "set logscale x 2\nset xrange [%g:%g]\n", lo / 1.25, hi * 1.25);
    } else {
        double pad = hi > lo ? (hi - lo) * 0.05 : (lo > 0 ? lo * 0.1 : 1);
        fprintf(f, "unset logscale x\nset xrange [%g:%g]\n", lo - pad, hi + pad);
    }
    fprintf(f, "set xtics (");
    for (unsigned i = 0; i < p->nx; i++)
        fprintf(f, "%s%g", i ? ", " : "", p->x[i]);
    fprintf(f, ")\n");
    if (p->mark_x > 0 && p->mark_x >= lo && p->mark_x <= hi) {
        fprintf(f, "set arrow 1 from %g, graph 0 to %g, graph 1 nohead dt 3 lc rgb 'gray40'\n",
                p->mark_x, p->mark_x);
        fprintf(f, "set label 1 ");
        gp_str(f, p->mark_label ? p->mark_label : "");
        fprintf(f, " at %g, graph 0.04 offset 0.6,0 tc rgb 'gray30'\n", p->mark_x);
    } else {
        fprintf(f, "unset arrow 1\nunset label 1\n");
    }
    fprintf(f, "plot ");
    for (unsigned s = 0; s < p->nseries; s++) {
        fprintf(f, "%s'%s.dat' using 1:%u with linespoints lt %u title ", s ? ", \\\n     " : "",
                p->name, s + 2, (unsigned)((unsigned)p->style[s] % NSTYLES + 1));
        gp_str(f, p->series[s]);
    }
    fprintf(f, "\n");
}

int shpb_plot_xy(const shpb_gnuplot *g, const char *dir, const shpb_xy_plot *p,
                 shpb_files *fl)
{
    char path[4096];
    FILE *f = open_in(dir, p->name, ".dat", path, sizeof path);
    if (f == NULL)
        return -1;
    fprintf(f, "# %s: ", p->name);
    for (const char *s = p->title; *s; s++)
        fputc(*s == '\n' ? ' ' : *s, f);
    fprintf(f, "\n# x = %s; then one column per series: %s\n#", p->xlabel, p->ylabel);
    fprintf(f, " x");
    for (unsigned s = 0; s < p->nseries; s++)
        fprintf(f, " %s", p->series[s]);
    fputc('\n', f);
    for (unsigned i = 0; i < p->nx; i++) {
        fprintf(f, "%g", p->x[i]);
        for (unsigned s = 0; s < p->nseries; s++) {
            double y = p->y[s * p->nx + i];
            if (isnan(y))
                fprintf(f, " NaN");
            else
                fprintf(f, " %.1f", y);
        }
        fputc('\n', f);
    }
    if (close_in(f, path) != 0)
        return -1;
    char dat[512];
    snprintf(dat, sizeof dat, "%s.dat", p->name);
    shpb_files_add(fl, dir, dat);
    return render(g, dir, p->name, PLOT_H, xy_body, p, fl);
}

/* ---- CDF ------------------------------------------------------------------ */

typedef struct cdf_ctx {
    const shpb_cdf_plot *p;
    double xlo, xhi;     /* ns */
    double tail_lo;      /* smallest positive tail fraction */
    unsigned block[SHPB_PLOT_MAX_SERIES]; /* data block of series s, or ~0u */
} cdf_ctx;

static void fmt_ns_tic(double ns, bool utf8, char *buf, size_t len)
{
    static const struct {
        double div;
        const char *unit, *ascii;
    } u[] = { { 1e9, "s", "s" }, { 1e6, "ms", "ms" }, { 1e3, "\xc2\xb5s", "us" },
              { 1, "ns", "ns" } };
    for (unsigned i = 0; i < 4; i++) {
        if (ns >= u[i].div || i == 3) {
            snprintf(buf, len, "%g%s", ns / u[i].div, utf8 ? u[i].unit : u[i].ascii);
            return;
        }
    }
}

static void cdf_xaxis(FILE *f, const cdf_ctx *c, bool utf8)
{
    fprintf(f, "set logscale x 10\nset xrange [%g:%g]\nset xtics (", c->xlo, c->xhi);
    bool first = true;
    for (double d = pow(10, floor(log10(c->xlo))); d <= c->xhi * 1.0001; d *= 10) {
        if (d < c->xlo * 0.9999)
            continue;
        char lab[32];
        fmt_ns_tic(d, utf8, lab, sizeof lab);
        fprintf(f, "%s\"%s\" %g", first ? "" : ", ", lab, d);
        first = false;
    }
    fprintf(f, ")\nset mxtics 10\n");
}

static void cdf_plot_cmd(FILE *f, const cdf_ctx *c, unsigned col, bool titles)
{
    const shpb_cdf_plot *p = c->p;
    fprintf(f, "plot ");
    bool first = true;
    for (unsigned s = 0; s < p->nseries; s++) {
        if (c->block[s] == ~0u)
            continue;
        fprintf(f, "%s'%s.dat' index %u using 1:%u with steps lt %u", first ? "" : ", \\\n     ",
                p->name, c->block[s], col, (unsigned)((unsigned)p->style[s] % NSTYLES + 1));
        if (titles) {
            fprintf(f, " title ");
            gp_str(f, p->series[s]);
        } else {
            fprintf(f, " notitle");
        }
        first = false;
    }
    fprintf(f, "\n");
}

static void cdf_body(FILE *f, const void *arg, bool utf8)
{
    const cdf_ctx *c = arg;
    const shpb_cdf_plot *p = c->p;
    /* Both panels at fixed screen margins, so that their x axes line up
     * whatever the width of their tic labels. */
    fprintf(f, "set multiplot title ");
    gp_str(f, p->title);
    fprintf(f, "\nset grid xtics mxtics ytics\nset datafile missing NaN\n"
               "set lmargin at screen 0.15\nset rmargin at screen 0.96\n");
    /* top: the CDF */
    cdf_xaxis(f, c, utf8);
    fprintf(f, "unset logscale y\nset yrange [0:1.02]\nset ytics 0.1\nset format y '%%.1f'\n"
               "set xlabel ''\nset ylabel 'fraction of acquires <= x'\n"
               "set key bottom right box opaque\n"
               "set tmargin at screen 0.89\nset bmargin at screen 0.52\n");
    cdf_plot_cmd(f, c, 2, true);
    /* bottom: the tail, on a log scale */
    double lo = c->tail_lo > 0 ? pow(10, floor(log10(c->tail_lo))) : 1e-4;
    if (lo > 1e-2)
        lo = 1e-2;
    fprintf(f, "set logscale y 10\nset yrange [%g:1.05]\nset ytics (", lo);
    static const struct {
        double v;
        const char *lab;
    } yt[] = { /* tic labels are gnuplot formats: %% is a per cent sign */
               { 1, "100%%" }, { 0.1, "10%% (p90)" }, { 0.01, "1%% (p99)" },
               { 1e-3, "0.1%% (p99.9)" }, { 1e-4, "0.01%% (p99.99)" }, { 1e-5, "0.001%%" },
               { 1e-6, "0.0001%%" }, { 1e-7, "1e-7" }, { 1e-8, "1e-8" }, { 1e-9, "1e-9" } };
    bool first = true;
    for (unsigned i = 0; i < sizeof yt / sizeof yt[0]; i++) {
        if (yt[i].v < lo * 0.999)
            break;
        fprintf(f, "%s\"%s\" %g", first ? "" : ", ", yt[i].lab, yt[i].v);
        first = false;
    }
    fprintf(f, ")\nset xlabel ");
    gp_str(f, p->xlabel);
    fprintf(f, "\nset ylabel 'fraction of acquires slower than x'\nunset key\n"
               "set tmargin at screen 0.47\nset bmargin at screen 0.09\n");
    cdf_plot_cmd(f, c, 3, false);
    fprintf(f, "unset multiplot\n");
}

int shpb_plot_cdf(const shpb_gnuplot *g, const char *dir, const shpb_cdf_plot *p,
                  shpb_files *fl)
{
    cdf_ctx c = { .p = p, .xlo = INFINITY, .xhi = 0, .tail_lo = 1 };
    char path[4096];
    FILE *f = open_in(dir, p->name, ".dat", path, sizeof path);
    if (f == NULL)
        return -1;
    fprintf(f, "# %s: ", p->name);
    for (const char *s = p->title; *s; s++)
        fputc(*s == '\n' ? ' ' : *s, f);
    fprintf(f, "\n# One block per series (gnuplot 'index'); per histogram bucket that holds\n"
               "# values: the bucket's upper bound in ns (capped at the largest value),\n"
               "# the fraction of values <= it, and the fraction above it (NaN at 0).\n");
    unsigned blocks = 0;
    for (unsigned s = 0; s < p->nseries && s < SHPB_PLOT_MAX_SERIES; s++) {
        const shpb_lat *l = p->hists[s];
        c.block[s] = ~0u;
        if (l == NULL || l->h.count == 0)
            continue;
        const uint64_t count = l->h.count, max = l->h.max;
        c.block[s] = blocks++;
        fprintf(f, "%s# %s: %llu values\n", blocks > 1 ? "\n\n" : "", p->series[s],
                (unsigned long long)count);
        uint64_t seen = 0;
        double lo = l->min > 0 ? (double)l->min : 1;
        /* start the step at the smallest value, at 0 */
        fprintf(f, "%g 0 1\n", lo);
        for (unsigned i = 0; i < SHP__HIST_N && seen < count; i++) {
            if (l->h.n[i] == 0)
                continue;
            seen += l->h.n[i];
            uint64_t hi = shpb_lat_bucket_hi(i);
            if (hi > max)
                hi = max;
            double x = hi > 0 ? (double)hi : 1;
            double frac = (double)seen / (double)count;
            double tail = (double)(count - seen) / (double)count;
            if (tail > 0) {
                fprintf(f, "%g %.9f %.9g\n", x, frac, tail);
                if (tail < c.tail_lo)
                    c.tail_lo = tail;
            } else {
                fprintf(f, "%g %.9f NaN\n", x, frac);
            }
        }
        if (lo < c.xlo)
            c.xlo = lo;
        if ((double)max > c.xhi)
            c.xhi = (double)max;
    }
    if (close_in(f, path) != 0)
        return -1;
    char dat[512];
    snprintf(dat, sizeof dat, "%s.dat", p->name);
    shpb_files_add(fl, dir, dat);
    if (blocks == 0) {
        fprintf(stderr, "shpbench: %s: no acquires recorded, no plot\n", p->name);
        return 0;
    }
    /* whole decades around the data */
    c.xlo = pow(10, floor(log10(c.xlo)));
    c.xhi = pow(10, ceil(log10(c.xhi > c.xlo ? c.xhi : c.xlo * 10)));
    return render(g, dir, p->name, CDF_H, cdf_body, &c, fl);
}
