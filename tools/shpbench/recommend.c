/*
 * tools/shpbench/recommend.c - see recommend.h.
 *
 * For the workload given by --threads N, --hold and either --rate R (open
 * loop) or --think (closed loop), measures shardpool with
 *   max_size in {N/4, N/2, N, 2N} (at least 1, duplicates dropped)
 *   shards   in {1, one per CPU}  (just 1 on a one-CPU machine)
 *   min_size in {0, max/2}
 * and picks, in this order:
 *   max_size  the smallest max whose best configuration is as good as the
 *             best overall: with a rate, it reaches 97 % of R and its p99
 *             is within 1.5x (or 1 us) of the best p99 and its wait % within
 *             one point of the best; without a rate, its throughput is within
 *             5 % of the best.  Connections cost the server, so the smallest
 *             pool that does the job wins.
 *   shards    at that max, the better of 1 and per-CPU by the same measure;
 *             a difference within noise (3 % throughput, or 10 % / 300 ns of
 *             p99) keeps the default, per-CPU.
 *   min_size  at that max and shards, max/2 if it lowered p99.9 by more than
 *             20 % and 1 us (fewer connects on the acquire path), else 0.
 *   acquire_timeout_ns  the largest of 10x the chosen configuration's p99.9,
 *             2x its slowest acquire and 10x the mean hold; at least 1 ms, rounded
 *             up to 1-2-5.
 *   idle_timeout_ns     the default: a run of seconds cannot see the idle
 *             periods of real traffic.
 * A configuration with failed or timed-out acquires is never chosen.  What
 * it prints is what measured best on this machine for this workload, and it
 * says so.
 */
#include "shpbench/recommend.h"

#include "shpbench/points.h"
#include "shpbench/report.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CANDS 16
#define RATE_MET  0.97

typedef struct cand {
    shpb_point *p;
    const shpb_result *r;
    bool valid; /* ran, with acquires and no errors */
    bool meets; /* reached the rate (or no rate given) */
    bool eligible;
} cand;

typedef struct rec {
    bool by_rate;   /* judged by latency at the target rate */
    bool rate_met;  /* some configuration reached the rate */
    const cand *chosen;
    const cand *best; /* the best overall, by the same measure */
    unsigned max_size, min_size, shards;
    int64_t acquire_timeout_ns, idle_timeout_ns;
    char why_max[768], why_shards[512], why_min[512], why_timeout[512], why_idle[512];
} rec;

/* Is a better than b?  by_rate: lower p99, then lower p99.9; else higher
 * throughput. */
static bool better(const cand *a, const cand *b, bool by_rate)
{
    if (b == NULL)
        return true;
    if (by_rate) {
        if (a->r->p99 != b->r->p99)
            return a->r->p99 < b->r->p99;
        return a->r->p999 < b->r->p999;
    }
    return a->r->throughput > b->r->throughput;
}

/* Within run-to-run noise of each other, by the deciding measure. */
static bool close_enough(const cand *a, const cand *b, bool by_rate)
{
    if (by_rate) {
        double x = (double)a->r->p99, y = (double)b->r->p99;
        return fabs(x - y) <= fmax(0.10 * fmax(x, y), 300);
    }
    double x = a->r->throughput, y = b->r->throughput;
    return fabs(x - y) <= 0.03 * fmax(x, y);
}

static int64_t nice_ceil(double ns)
{
    double d = pow(10, floor(log10(ns)));
    static const double m[] = { 1, 2, 5, 10 };
    for (unsigned i = 0; i < 4; i++)
        if (m[i] * d >= ns * 0.9999)
            return (int64_t)llround(m[i] * d);
    return (int64_t)llround(10 * d);
}

/* shpb_format_ns, shorter: the reasons below format many durations. */
static const char *ns_str(int64_t ns, char *buf, size_t len)
{
    return shpb_format_ns(ns, buf, len);
}

static const char *shards_str(unsigned s, char *buf, size_t len)
{
    if (s == 0)
        snprintf(buf, len, "per-CPU");
    else
        snprintf(buf, len, "%u", s);
    return buf;
}

/* The eligible configuration best by the deciding measure among those with
 * the given max (and shards, min unless ~0u). */
static const cand *best_of(const cand *c, unsigned n, unsigned max, unsigned shards,
                           unsigned min, bool by_rate)
{
    const cand *b = NULL;
    for (unsigned i = 0; i < n; i++) {
        const shpb_pool_cfg *pc = &c[i].p->pool;
        if (!c[i].eligible || pc->max_size != max)
            continue;
        if (shards != ~0u && pc->shards != shards)
            continue;
        if (min != ~0u && pc->min_size != min)
            continue;
        if (better(&c[i], b, by_rate))
            b = &c[i];
    }
    return b;
}

static int decide(const shpb_opts *o, cand *c, unsigned n, rec *out)
{
    memset(out, 0, sizeof *out);
    char a[32], b2[32], s1[32], s2[32];
    out->by_rate = o->rate > 0;
    bool any_valid = false;
    for (unsigned i = 0; i < n; i++) {
        c[i].valid = c[i].r->ran && c[i].r->ops > 0 && c[i].r->errors == 0 &&
                     c[i].r->timeouts == 0;
        c[i].meets = o->rate <= 0 || c[i].r->throughput >= RATE_MET * o->rate;
        any_valid |= c[i].valid;
        out->rate_met |= c[i].valid && c[i].meets && o->rate > 0;
    }
    if (!any_valid)
        return -1;
    /* No configuration reached the rate: judge by throughput instead. */
    if (out->by_rate && !out->rate_met)
        out->by_rate = false;
    for (unsigned i = 0; i < n; i++)
        c[i].eligible = c[i].valid && (!out->by_rate || c[i].meets);

    const cand *best = NULL;
    for (unsigned i = 0; i < n; i++)
        if (c[i].eligible && better(&c[i], best, out->by_rate))
            best = &c[i];
    out->best = best;

    /* max: the smallest that is good enough. */
    const cand *pick = NULL;
    for (unsigned i = 0; i < n; i++) {
        const cand *x = &c[i];
        if (!x->eligible)
            continue;
        bool good;
        if (out->by_rate)
            good = (double)x->r->p99 <= fmax(1.5 * (double)best->r->p99,
                                             (double)best->r->p99 + 1000) &&
                   x->r->wait_pct <= best->r->wait_pct + 1.0;
        else
            good = x->r->throughput >= 0.95 * best->r->throughput;
        if (good && (pick == NULL || x->p->pool.max_size < pick->p->pool.max_size))
            pick = x;
    }
    unsigned m = pick->p->pool.max_size;
    out->max_size = m;
    pick = best_of(c, n, m, ~0u, ~0u, out->by_rate); /* the best at that max, for the text */
    double mean_hold = shpb_dist_mean_ns(&o->hold);
    int w;
    /* The best a smaller pool did, for contrast. */
    const cand *smaller = NULL;
    for (unsigned i = 0; i < n; i++) {
        const cand *x = &c[i];
        if (!x->valid || x->p->pool.max_size >= m)
            continue;
        if (smaller == NULL || x->p->pool.max_size > smaller->p->pool.max_size ||
            (x->p->pool.max_size == smaller->p->pool.max_size &&
             x->r->throughput > smaller->r->throughput))
            smaller = x;
    }
    if (out->by_rate) {
        if (best->p->pool.max_size == m)
            w = snprintf(out->why_max, sizeof out->why_max,
                         "max %u is the smallest pool that reached the target (>= %.0f%% of "
                         "%.0f ops/s), and its p99 %s is the best measured",
                         m, RATE_MET * 100, o->rate, ns_str((int64_t)best->r->p99, a, sizeof a));
        else
            w = snprintf(out->why_max, sizeof out->why_max,
                         "max %u is the smallest pool that reached the target (>= %.0f%% of "
                         "%.0f ops/s) with p99 %s, within 1.5x (or 1us) of the best p99 %s "
                         "(max %u)",
                         m, RATE_MET * 100, o->rate, ns_str((int64_t)pick->r->p99, a, sizeof a),
                         ns_str((int64_t)best->r->p99, b2, sizeof b2), best->p->pool.max_size);
        if (w > 0 && (size_t)w < sizeof out->why_max && smaller != NULL)
            w += snprintf(out->why_max + w, sizeof out->why_max - (size_t)w,
                          "; max %u reached %.1f%% of it with p99 %s",
                          smaller->p->pool.max_size, 100 * smaller->r->throughput / o->rate,
                          ns_str((int64_t)smaller->r->p99, a, sizeof a));
    } else if (o->rate > 0) {
        w = snprintf(out->why_max, sizeof out->why_max,
                     "no configuration reached %.0f ops/s without errors (best %.0f ops/s, "
                     "at most %.0f ops/s are possible with %u threads each holding %s per "
                     "operation), so max %u is the smallest pool within 5%% of the best "
                     "throughput measured",
                     o->rate, best->r->throughput, (double)o->threads * 1e9 / fmax(mean_hold, 1),
                     o->threads, ns_str((int64_t)mean_hold, a, sizeof a), m);
    } else {
        w = snprintf(out->why_max, sizeof out->why_max,
                     "max %u is the smallest pool within 5%% of the best throughput measured "
                     "(%.0f vs %.0f ops/s at max %u); a larger pool bought nothing more here, "
                     "and every connection costs the server",
                     m, pick->r->throughput, best->r->throughput, best->p->pool.max_size);
    }
    size_t why_max_len = w > 0 && (size_t)w < sizeof out->why_max ? (size_t)w : 0;

    /* shards, at max m */
    const cand *sh1 = best_of(c, n, m, 1, ~0u, out->by_rate);
    const cand *shc = best_of(c, n, m, 0, ~0u, out->by_rate);
    const cand *sh = sh1 != NULL && shc != NULL ? NULL : (sh1 != NULL ? sh1 : shc);
    if (sh != NULL) {
        snprintf(out->why_shards, sizeof out->why_shards,
                 "shards %s: the only sharding that ran cleanly at max %u%s.",
                 shards_str(sh->p->pool.shards, s1, sizeof s1), m,
                 o->cpus == 1 ? " (one CPU: per-CPU is one shard)" : "");
    } else {
        bool tie = close_enough(sh1, shc, out->by_rate);
        sh = tie || better(shc, sh1, out->by_rate) ? shc : sh1;
        const cand *other = sh == shc ? sh1 : shc;
        snprintf(out->why_shards, sizeof out->why_shards,
                 "shards %s: at max %u (each with its better min) it measured %.0f ops/s, p99 "
                 "%s against %.0f ops/s, p99 %s with shards %s%s.",
                 shards_str(sh->p->pool.shards, s1, sizeof s1), m, sh->r->throughput,
                 ns_str((int64_t)sh->r->p99, a, sizeof a), other->r->throughput,
                 ns_str((int64_t)other->r->p99, b2, sizeof b2),
                 shards_str(other->p->pool.shards, s2, sizeof s2),
                 tie ? ": within run-to-run noise, so the default (one shard per CPU) stays"
                     : "");
    }
    unsigned shards = sh->p->pool.shards;
    out->shards = shards;

    /* min, at max m and those shards */
    const cand *m0 = best_of(c, n, m, shards, 0, out->by_rate);
    const cand *mh = m / 2 > 0 ? best_of(c, n, m, shards, m / 2, out->by_rate) : NULL;
    const cand *chosen;
    if (m0 != NULL && mh != NULL) {
        double p0 = (double)m0->r->p999, ph = (double)mh->r->p999;
        bool prefill_helps = ph < 0.8 * p0 && p0 - ph > 1000;
        chosen = prefill_helps ? mh : m0;
        if (prefill_helps)
            snprintf(out->why_min, sizeof out->why_min,
                     "min %u: opening max/2 connections at create cut p99.9 from %s to %s; in "
                     "a run this short that is mostly the first acquires not paying for a "
                     "connect, which a long-running server pays again only after idle_timeout "
                     "closes connections above min (model your backend's connect cost with "
                     "--connect-latency).",
                     m / 2, ns_str((int64_t)p0, a, sizeof a), ns_str((int64_t)ph, b2, sizeof b2));
        else
            snprintf(out->why_min, sizeof out->why_min,
                     "min 0: prefilling %u connections did not measurably help (p99.9 %s with "
                     "min %u, %s with min 0); raise it if your traffic has quiet spells then "
                     "bursts, since connections above min close after idle_timeout.",
                     m / 2, ns_str((int64_t)ph, a, sizeof a), m / 2,
                     ns_str((int64_t)p0, b2, sizeof b2));
    } else {
        chosen = m0 != NULL ? m0 : mh;
        snprintf(out->why_min, sizeof out->why_min,
                 "min %u: the only min that ran cleanly at max %u (max/2 = %u).",
                 chosen->p->pool.min_size, m, m / 2);
    }
    out->chosen = chosen;
    out->min_size = chosen->p->pool.min_size;

    /* The measured hold, by Little's law, against the nominal one. */
    if (why_max_len > 0)
        snprintf(out->why_max + why_max_len, sizeof out->why_max - why_max_len,
                 "; the workers held %.1f connections on average, where Little's law with the "
                 "nominal hold predicts %.1f (the round trip and sleep overshoot make real "
                 "holds longer).",
                 chosen->r->in_use_avg, chosen->r->throughput * mean_hold / 1e9);

    double base = fmax(fmax(10.0 * (double)chosen->r->p999, 2.0 * (double)chosen->r->max),
                       10.0 * mean_hold);
    out->acquire_timeout_ns = nice_ceil(fmax(base, 1e6));
    char mx[32];
    snprintf(out->why_timeout, sizeof out->why_timeout,
             "acquire_timeout_ns %s: the largest of 10x the measured p99.9 acquire (%s), 2x "
             "the slowest acquire (%s) and 10x the mean hold (%s), at least 1ms, rounded up, "
             "so that it fires on a stuck backend or an undersized pool rather than on "
             "ordinary queueing; keep it below your request deadline.",
             ns_str(out->acquire_timeout_ns, s1, sizeof s1),
             ns_str((int64_t)chosen->r->p999, a, sizeof a), ns_str((int64_t)chosen->r->max, mx,
                                                              sizeof mx),
             ns_str((int64_t)mean_hold, b2, sizeof b2));
    out->idle_timeout_ns = 600 * SHPB_NS_PER_S;
    snprintf(out->why_idle, sizeof out->why_idle,
             "idle_timeout_ns 600s (the default): a run of seconds cannot see your traffic's "
             "idle periods; set it below the server's own idle timeout (PostgreSQL "
             "idle_session_timeout, Redis timeout) if it has one.");
    return 0;
}

static void print_evidence(const shpb_opts *o, const cand *c, unsigned n, const rec *rc)
{
    printf("\n%4s %4s %8s %11s %8s %9s %9s %9s %7s %7s %7s  %s\n", "max", "min", "shards",
           "ops/s", o->rate > 0 ? "% target" : "", "acq p50", "acq p99", "p99.9", "wait %",
           "in use", "errors", "");
    for (unsigned i = 0; i < n; i++) {
        const cand *x = &c[i];
        const shpb_result *r = x->r;
        char sh[16], p50[32], p99[32], p999[32], pct[16] = "";
        if (o->rate > 0)
            snprintf(pct, sizeof pct, "%.1f", 100.0 * r->throughput / o->rate);
        printf("%4u %4u %8s ", x->p->pool.max_size, x->p->pool.min_size,
               shards_str(x->p->pool.shards, sh, sizeof sh));
        if (!r->ran || r->ops == 0) {
            printf("%11s %8s %9s %9s %9s %7s %7s %7" PRIu64 "  %s\n", "0", pct, "-", "-", "-",
                   "-", "-", r->errors + r->timeouts, r->ran ? "no acquires" : "not run");
            continue;
        }
        const char *note = x == rc->chosen ? "<- recommended"
                           : !x->valid     ? "(errors)"
                           : !x->meets     ? "(below target)"
                                           : "";
        printf("%11.0f %8s %9s %9s %9s %7.2f %7.1f %7" PRIu64 "  %s\n", r->throughput, pct,
               shpb_format_ns((int64_t)r->p50, p50, sizeof p50),
               shpb_format_ns((int64_t)r->p99, p99, sizeof p99),
               shpb_format_ns((int64_t)r->p999, p999, sizeof p999), r->wait_pct, r->in_use_avg,
               r->errors + r->timeouts, note);
    }
}

typedef struct json_arg {
    const shpb_opts *o;
    const rec *rc;
} json_arg;

static void json_reason(FILE *f, const char *key, const char *s, bool last)
{
    fprintf(f, "      \"%s\": ", key);
    shpb_json_str(f, s);
    fprintf(f, "%s\n", last ? "" : ",");
}

static void json_extra(FILE *f, const void *arg)
{
    const json_arg *ja = arg;
    const rec *rc = ja->rc;
    fprintf(f, "  \"recommendation\": {\n    \"max_size\": %u,\n    \"min_size\": %u,\n"
               "    \"shards\": %u,\n    \"acquire_timeout_ns\": %" PRId64 ",\n"
               "    \"idle_timeout_ns\": %" PRId64 ",\n    \"target_rate_ops_s\": ",
            rc->max_size, rc->min_size, rc->shards, rc->acquire_timeout_ns, rc->idle_timeout_ns);
    if (ja->o->rate > 0)
        fprintf(f, "%.1f,\n    \"rate_met\": %s,\n", ja->o->rate, rc->rate_met ? "true" : "false");
    else
        fprintf(f, "null,\n    \"rate_met\": null,\n");
    fprintf(f, "    \"throughput_ops_s\": %.1f,\n    \"acquire_p99_ns\": %" PRIu64
               ",\n    \"acquire_p999_ns\": %" PRIu64 ",\n    \"wait_pct\": %.4f,\n"
               "    \"reasons\": {\n",
            rc->chosen->r->throughput, rc->chosen->r->p99, rc->chosen->r->p999,
            rc->chosen->r->wait_pct);
    json_reason(f, "max_size", rc->why_max, false);
    json_reason(f, "shards", rc->why_shards, false);
    json_reason(f, "min_size", rc->why_min, false);
    json_reason(f, "acquire_timeout_ns", rc->why_timeout, false);
    json_reason(f, "idle_timeout_ns", rc->why_idle, true);
    fprintf(f, "    },\n    \"caveat\": \"measured best on this machine for this workload, "
               "not a universal optimum\"\n  }");
}

int shpb_recommend_main(const shpb_opts *o, shpb_backend *b)
{
    if (o->max_set || o->min_set || o->shards_set)
        fprintf(stderr, "shpbench: note: --recommend searches max, min and shards; the "
                        "values given are not used\n");
    if (o->pools_set)
        fprintf(stderr, "shpbench: note: --recommend measures shardpool only\n");

    unsigned n_threads = o->threads;
    unsigned maxes[4] = { n_threads / 4, n_threads / 2, n_threads, 2 * n_threads }, nm = 0;
    unsigned uniq[4];
    for (unsigned i = 0; i < 4; i++) {
        unsigned v = maxes[i] < 1 ? 1 : maxes[i];
        bool dup = false;
        for (unsigned j = 0; j < nm; j++)
            dup |= uniq[j] == v;
        if (!dup)
            uniq[nm++] = v;
    }
    unsigned shard_opts[2] = { 1, 0 }, nsh = o->cpus > 1 ? 2 : 1;

    shpb_point *pts = calloc(MAX_CANDS, sizeof *pts);
    cand *c = calloc(MAX_CANDS, sizeof *c);
    if (pts == NULL || c == NULL) {
        free(pts);
        free(c);
        fprintf(stderr, "shpbench: out of memory\n");
        return 1;
    }
    unsigned n = 0;
    for (unsigned i = 0; i < nm; i++) {
        for (unsigned s = 0; s < nsh; s++) {
            unsigned mins[2] = { 0, uniq[i] / 2 };
            for (unsigned k = 0; k < (mins[1] > 0 ? 2u : 1u); k++) {
                shpb_point *p = &pts[n++];
                p->threads = o->threads;
                p->pool = o->pool;
                p->pool.max_size = uniq[i];
                p->pool.min_size = mins[k];
                p->pool.shards = shard_opts[s];
                p->hold = o->hold;
                p->think = o->think;
            }
        }
    }

    bool swept[SHPB_KEYS] = { [SHPB_KEY_MAX] = true, [SHPB_KEY_MIN] = true,
                              [SHPB_KEY_SHARDS] = true };
    char hold[64], dur[32];
    double load[1] = { -1 };
    printf("shpbench --recommend: %u threads, hold %s, ", o->threads,
           shpb_dist_format(&o->hold, hold, sizeof hold));
    if (o->rate > 0)
        printf("target %.0f ops/s (open loop)\n", o->rate);
    else
        printf("no target rate: closed loop with think %s, judged by throughput\n",
               shpb_dist_format(&o->think, hold, sizeof hold));
    shpb_print_header(o, b, swept);
    if (o->ops)
        snprintf(dur, sizeof dur, "%" PRIu64 " ops", o->ops);
    else
        shpb_format_ns(o->duration_ns, dur, sizeof dur);
    printf("measuring shardpool in %u configurations x %s: max {", n, dur);
    for (unsigned i = 0; i < nm; i++)
        printf("%s%u", i ? "," : "", uniq[i]);
    printf("} x shards {1%s} x min {0, max/2}", nsh > 1 ? ", per-CPU" : "");
    if (o->ops == 0)
        printf(", about %.0f s", (double)n * (double)o->duration_ns / 1e9);
    if (getloadavg(load, 1) == 1)
        printf("; load average now %.2f", load[0]);
    printf("\n");
    if (o->rate > 0 && o->ops == 0 && o->rate * (double)o->duration_ns / 1e9 < 5000)
        printf("note: %.0f operations per configuration are few for a p99.9; a longer "
               "--duration gives steadier numbers\n",
               o->rate * (double)o->duration_ns / 1e9);
    fflush(stdout);

    bool pools[SHPB_POOL_KINDS] = { [SHPB_POOL_SHARDPOOL] = true };
    shpb_key cols[3] = { SHPB_KEY_MAX, SHPB_KEY_MIN, SHPB_KEY_SHARDS };
    int status = shpb_run_points(o, b, pts, n, pools, cols, 3, false);
    for (unsigned i = 0; i < n; i++) {
        c[i].p = &pts[i];
        c[i].r = &pts[i].res[SHPB_POOL_SHARDPOOL];
    }

    rec rc;
    if (decide(o, c, n, &rc) != 0) {
        for (unsigned i = 0; i < n; i++)
            c[i].valid = false, c[i].meets = true;
        memset(&rc, 0, sizeof rc);
        print_evidence(o, c, n, &rc);
        printf("\nno recommendation: every configuration had failed or timed-out acquires "
               "(see the errors column); check the backend (--fail-rate, --connect-latency) "
               "and --acquire-timeout.\n");
        shpb_points_free(pts, n);
        free(c);
        return 1;
    }
    print_evidence(o, c, n, &rc);
    char th[32];
    printf("\nacq: time in shardpool's acquire call; wait %%: acquires slower than %s; in use: "
           "connections held by the\nworkers on average; errors: failed or timed-out "
           "acquires (such configurations are never chosen).\n",
           shpb_format_ns(o->wait_threshold_ns, th, sizeof th));

    char a[32], s[32];
    printf("\nRecommended config: what measured best on this machine (%u CPUs, shared with "
           "whatever else runs)\nfor this workload over the %s backend; it is not a universal "
           "optimum.\n\n",
           o->cpus, o->backend.spec);
    printf("    shp_config cfg;\n    shp_config_init(&cfg);\n");
    printf("    cfg.max_size = %u;\n    cfg.min_size = %u;\n", rc.max_size, rc.min_size);
    printf("    cfg.shards = %u;%s\n", rc.shards, rc.shards == 0 ? "  /* one per CPU */" : "");
    printf("    cfg.acquire_timeout_ns = %" PRId64 ";  /* %s */\n", rc.acquire_timeout_ns,
           ns_str(rc.acquire_timeout_ns, a, sizeof a));
    printf("    cfg.idle_timeout_ns = %" PRId64 ";  /* %s, the default */\n", rc.idle_timeout_ns,
           ns_str(rc.idle_timeout_ns, s, sizeof s));
    printf("\nWhy:\n  - %s\n  - %s\n  - %s\n  - %s\n  - %s\n", rc.why_max, rc.why_shards,
           rc.why_min, rc.why_timeout, rc.why_idle);
    if (o->rate > 0 && !rc.rate_met)
        printf("\nThe target rate was not reached by any configuration: the numbers above "
               "are the best throughput instead.\n");
    printf("\nDifferences of a few per cent are within run-to-run noise on a shared machine: "
           "check the pick with\na longer --duration, and with your real backend "
           "(--backend tcp://host:port) and hold times.\n");

    json_arg ja = { .o = o, .rc = &rc };
    if (o->csv_path != NULL) {
        if (shpb_write_points_csv(o->csv_path, pts, n) != 0)
            status = 1;
        else
            printf("wrote %s\n", o->csv_path);
    }
    if (o->json_path != NULL) {
        if (shpb_write_points_json(o->json_path, o, b, "recommend", NULL, pts, n, json_extra,
                                   &ja) != 0)
            status = 1;
        else
            printf("wrote %s\n", o->json_path);
    }
    shpb_points_free(pts, n);
    free(c);
    return status;
}
