/*
 * tools/shpbench/report.c - see report.h.
 */
#include "shpbench/report.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

void shpb_print_header(const shpb_opts *o, shpb_backend *b, const bool *swept)
{
    static const bool none[SHPB_KEYS];
    if (swept == NULL)
        swept = none;
    char hold[64], think[64], dur[32], a[32], n[32];
    shpb_dist_format(&o->hold, hold, sizeof hold);
    shpb_dist_format(&o->think, think, sizeof think);
    if (o->ops)
        snprintf(dur, sizeof dur, "%" PRIu64 " ops", o->ops);
    else
        shpb_format_ns(o->duration_ns, dur, sizeof dur);
#define SWEPT_OR(k, fmt, v) (swept[k] ? "(swept)" : (snprintf(n, sizeof n, fmt, v), n))
    printf("shpbench: backend %s; %s threads on %u CPUs;", shpb_backend_describe(b),
           SWEPT_OR(SHPB_KEY_THREADS, "%u", o->threads), o->cpus);
    printf(" min %s", SWEPT_OR(SHPB_KEY_MIN, "%u", o->pool.min_size));
    printf(" max %s", SWEPT_OR(SHPB_KEY_MAX, "%u", o->pool.max_size));
    printf(" shards %s%s\n", SWEPT_OR(SHPB_KEY_SHARDS, "%u", o->pool.shards),
           !swept[SHPB_KEY_SHARDS] && o->pool.shards == 0 ? " (per CPU)" : "");
#undef SWEPT_OR
    printf("          hold %s, ", swept[SHPB_KEY_HOLD] ? "(swept)" : hold);
    if (o->rate > 0)
        printf("open loop at %.0f ops/s", o->rate);
    else
        printf("think %s", swept[SHPB_KEY_THINK] ? "(swept)" : think);
    if (shpb_backend_is_adapter(b))
        printf(", round trip %s, %s per pool",
               o->roundtrip_bytes == 0 ? "none"
               : strncmp(shpb_backend_describe(b), "redis", 5) == 0 ? "PING" : "SELECT 1", dur);
    else
        printf(", round trip %ld B, %s per pool", o->roundtrip_bytes, dur);
    if (o->backend.connect_latency_ns)
        printf(", connect +%s", shpb_format_ns(o->backend.connect_latency_ns, a, sizeof a));
    if (o->backend.check_cost_ns)
        printf(", check +%s", shpb_format_ns(o->backend.check_cost_ns, a, sizeof a));
    if (o->backend.backend_latency_ns)
        printf(", backend +%s", shpb_format_ns(o->backend.backend_latency_ns, a, sizeof a));
    if (o->backend.fail_rate > 0)
        printf(", connect fail rate %g", o->backend.fail_rate);
    printf(", seed %" PRIu64 "\n", o->backend.seed);
}

void shpb_print_table(const shpb_opts *o, const shpb_result *rs, unsigned n)
{
    char th[32];
    shpb_format_ns(o->wait_threshold_ns, th, sizeof th);
    printf("\n%-17s %12s %9s %9s %9s %7s %8s %7s %7s\n", "pool", "ops/s", "acq p50", "acq p99",
           "p99.9", "wait %", "steals %", "opened", "errors");
    for (unsigned i = 0; i < n; i++) {
        const shpb_result *r = &rs[i];
        char p50[32], p99[32], p999[32], steals[16];
        if (!r->ran) {
            printf("%-17s (not run)\n", shpb_pool_kind_name(r->kind));
            continue;
        }
        if (r->ops == 0) {
            printf("%-17s %12.0f %9s %9s %9s %7s %8s %7" PRIu64 " %7" PRIu64 "\n",
                   shpb_pool_kind_name(r->kind), 0.0, "-", "-", "-", "-", "-", r->bc.opened,
                   r->errors + r->timeouts);
            continue;
        }
        if (r->has_stats)
            snprintf(steals, sizeof steals, "%.2f", shpb_steals_pct(r));
        else
            snprintf(steals, sizeof steals, "-");
        printf("%-17s %12.0f %9s %9s %9s %7.2f %8s %7" PRIu64 " %7" PRIu64 "\n",
               shpb_pool_kind_name(r->kind), r->throughput,
               shpb_format_ns((int64_t)r->p50, p50, sizeof p50),
               shpb_format_ns((int64_t)r->p99, p99, sizeof p99),
               shpb_format_ns((int64_t)r->p999, p999, sizeof p999), r->wait_pct, steals,
               r->bc.opened, r->errors + r->timeouts);
    }
    printf("\nacq: time spent in the pool's acquire call (successful acquires); wait %%: "
           "acquires slower than %s;\nsteals %%: shardpool acquires served from another CPU's "
           "shard; opened: connections the backend accepted;\nerrors: failed acquires "
           "(connect failures, timeouts).\n",
           th);
}

void shpb_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void shpb_json_config(FILE *f, const shpb_opts *o, shpb_backend *b, int in)
{
    char hold[64], think[64];
    fprintf(f, "%*s\"backend\": ", in, "");
    shpb_json_str(f, o->backend.spec);
    fprintf(f, ",\n%*s\"backend_address\": ", in, "");
    shpb_json_str(f, shpb_backend_describe(b));
    fprintf(f, ",\n%*s\"cpus\": %u,\n%*s\"threads\": %u,\n%*s\"min\": %u,\n%*s\"max\": %u,\n"
               "%*s\"shards\": %u,\n",
            in, "", o->cpus, in, "", o->threads, in, "", o->pool.min_size, in, "",
            o->pool.max_size, in, "", o->pool.shards);
    fprintf(f, "%*s\"hold\": ", in, "");
    shpb_json_str(f, shpb_dist_format(&o->hold, hold, sizeof hold));
    fprintf(f, ",\n%*s\"think\": ", in, "");
    shpb_json_str(f, shpb_dist_format(&o->think, think, sizeof think));
    if (o->rate > 0)
        fprintf(f, ",\n%*s\"rate_ops_s\": %.1f", in, "", o->rate);
    else
        fprintf(f, ",\n%*s\"rate_ops_s\": null", in, "");
    fprintf(f, ",\n%*s\"duration_ns\": ", in, "");
    if (o->ops)
        fprintf(f, "null,\n%*s\"ops\": %" PRIu64 ",\n", in, "", o->ops);
    else
        fprintf(f, "%" PRId64 ",\n%*s\"ops\": null,\n", o->duration_ns, in, "");
    fprintf(f,
            "%*s\"roundtrip_bytes\": %ld,\n%*s\"check\": \"%s\",\n"
            "%*s\"connect_latency_ns\": %" PRId64 ",\n%*s\"check_cost_ns\": %" PRId64 ",\n"
            "%*s\"backend_latency_ns\": %" PRId64 ",\n%*s\"fail_rate\": %.17g,\n"
            "%*s\"seed\": %" PRIu64 ",\n%*s\"validate_idle_ns\": %" PRId64 ",\n"
            "%*s\"acquire_timeout_ns\": %" PRId64 ",\n%*s\"wait_threshold_ns\": %" PRId64 ",\n"
            "%*s\"spin_below_ns\": %" PRId64 "\n",
            in, "", o->roundtrip_bytes, in, "",
            o->backend.check_mode == SHPB_CHECK_ECHO ? "echo" : "peek", in, "",
            o->backend.connect_latency_ns, in, "", o->backend.check_cost_ns, in, "",
            o->backend.backend_latency_ns, in, "", o->backend.fail_rate, in, "",
            o->backend.seed, in, "", o->pool.validate_idle_ns, in, "",
            o->pool.acquire_timeout_ns, in, "", o->wait_threshold_ns, in, "",
            o->backend.spin_below_ns);
}

void shpb_json_result(FILE *f, const shpb_result *r, int in)
{
    fprintf(f, "%*s{\n%*s\"pool\": \"%s\",\n", in, "", in + 2, "", shpb_pool_kind_name(r->kind));
    in += 2;
    fprintf(f,
            "%*s\"ops\": %" PRIu64 ",\n%*s\"elapsed_s\": %.6f,\n"
            "%*s\"throughput_ops_s\": %.1f,\n"
            "%*s\"acquire_ns\": {\"count\": %" PRIu64 ", \"min\": %" PRIu64 ", \"p50\": %" PRIu64
            ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64
            ", \"max\": %" PRIu64 ", \"mean\": %.1f},\n"
            "%*s\"wait_pct\": %.4f,\n",
            in, "", r->ops, in, "", r->elapsed_s, in, "", r->throughput, in, "", r->ops, r->min,
            r->p50, r->p90, r->p99, r->p999, r->max, r->mean, in, "", r->wait_pct);
    if (r->has_stats)
        fprintf(f, "%*s\"steals_pct\": %.4f,\n", in, "", shpb_steals_pct(r));
    else
        fprintf(f, "%*s\"steals_pct\": null,\n", in, "");
    fprintf(f,
            "%*s\"connections_in_use_avg\": %.3f,\n"
            "%*s\"connections_opened\": %" PRIu64 ",\n"
            "%*s\"connections_closed\": %" PRIu64 ",\n"
            "%*s\"connect_failures\": %" PRIu64 ",\n"
            "%*s\"health_checks\": %" PRIu64 ",\n"
            "%*s\"health_check_failures\": %" PRIu64 ",\n"
            "%*s\"acquire_errors\": %" PRIu64 ",\n"
            "%*s\"acquire_timeouts\": %" PRIu64 ",\n"
            "%*s\"roundtrip_failures\": %" PRIu64 ",\n",
            in, "", r->in_use_avg, in, "", r->bc.opened, in, "", r->bc.closed, in, "",
            r->bc.connect_failures, in, "", r->bc.checks, in, "", r->bc.check_failures, in, "",
            r->errors, in, "", r->timeouts, in, "", r->rt_failures);
    if (r->has_stats) {
        const shp_stats *s = &r->st;
        fprintf(f,
                "%*s\"shardpool_stats\": {\"created\": %" PRIu64 ", \"closed\": %" PRIu64
                ", \"acquired\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", \"steals\": %" PRIu64
                ", \"connect_failures\": %" PRIu64 ", \"health_checks\": %" PRIu64
                ", \"health_failures\": %" PRIu64 ", \"handoffs\": %" PRIu64 "},\n",
                in, "", s->creations, s->closed, s->acquisitions, s->timeouts, s->steals,
                s->connect_failures, s->health_checks, s->health_failed, s->handoffs);
    } else {
        fprintf(f, "%*s\"shardpool_stats\": null,\n", in, "");
    }
    fprintf(f, "%*s\"per_thread\": [", in, "");
    for (unsigned t = 0; t < r->nthreads; t++)
        fprintf(f, "%s{\"thread\": %u, \"ops\": %" PRIu64 ", \"p50\": %" PRIu64
                   ", \"p99\": %" PRIu64 "}",
                t ? ", " : "", t, r->per_thread[t].ops, r->per_thread[t].p50,
                r->per_thread[t].p99);
    fprintf(f, "]\n%*s}", in - 2, "");
}

FILE *shpb_open_out(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fprintf(stderr, "shpbench: %s: %s\n", path, strerror(errno));
    return f;
}

int shpb_close_out(FILE *f, const char *path)
{
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "shpbench: %s: %s\n", path, bad ? "write error" : strerror(errno));
        return -1;
    }
    return 0;
}

int shpb_write_results_json(const char *path, const shpb_opts *o, shpb_backend *b,
                            const shpb_result *rs, unsigned n)
{
    FILE *f = shpb_open_out(path);
    if (f == NULL)
        return -1;
    fprintf(f, "{\n  \"tool\": \"shpbench\",\n  \"version\": \"%d.%d.%d\",\n", SHP_VERSION_MAJOR,
            SHP_VERSION_MINOR, SHP_VERSION_PATCH);
    fprintf(f, "  \"config\": {\n");
    shpb_json_config(f, o, b, 4);
    fprintf(f, "  },\n  \"results\": [");
    bool first = true;
    for (unsigned i = 0; i < n; i++) {
        if (!rs[i].ran)
            continue;
        fprintf(f, "%s\n", first ? "" : ",");
        first = false;
        shpb_json_result(f, &rs[i], 4);
    }
    fprintf(f, "\n  ]\n}\n");
    return shpb_close_out(f, path);
}

void shpb_csv_result_header(FILE *f)
{
    fprintf(f, "pool,throughput_ops_s,ops,elapsed_s,acquire_p50_ns,acquire_p90_ns,"
               "acquire_p99_ns,acquire_p999_ns,acquire_max_ns,acquire_mean_ns,wait_pct,"
               "steals_pct,connections_opened,connect_failures,acquire_errors,"
               "acquire_timeouts,connections_in_use_avg");
}

void shpb_csv_result_row(FILE *f, const shpb_result *r)
{
    fprintf(f, "%s,%.1f,%" PRIu64 ",%.6f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
               ",%" PRIu64 ",%.1f,%.4f,",
            shpb_pool_kind_name(r->kind), r->throughput, r->ops, r->elapsed_s, r->p50, r->p90,
            r->p99, r->p999, r->max, r->mean, r->wait_pct);
    if (r->has_stats)
        fprintf(f, "%.4f", shpb_steals_pct(r));
    fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.3f", r->bc.opened,
            r->bc.connect_failures, r->errors, r->timeouts, r->in_use_avg);
}

int shpb_write_results_csv(const char *path, const shpb_result *rs, unsigned n)
{
    FILE *f = shpb_open_out(path);
    if (f == NULL)
        return -1;
    shpb_csv_result_header(f);
    fputc('\n', f);
    for (unsigned i = 0; i < n; i++) {
        if (!rs[i].ran)
            continue;
        shpb_csv_result_row(f, &rs[i]);
        fputc('\n', f);
    }
    return shpb_close_out(f, path);
}
