/*
 * tools/shpbench.c - shardpool's workload and tuning tool (v1).
 *
 * Runs one workload against several pools, one pool after another, over the
 * same backend, and prints what each achieved:
 *
 *   worker thread (x --threads):
 *     t0 = now; acquire; t1 = now          -> acquire latency (histogram)
 *     hold: one echo round trip (--roundtrip), then wait until t1 + hold
 *     release
 *     think: wait a sampled think time
 *
 * Acquire latency is timed with clock_gettime(CLOCK_MONOTONIC) around the
 * pool's acquire call, so it includes a connect when the pool had to make a
 * connection, and a health check when it validated one.  "wait %" is the
 * share of successful acquires that took longer than --wait-threshold
 * (default 2 us): an acquire that fast found an idle connection at once,
 * a slower one waited for a release, spun, or connected.  Failed acquires
 * are counted apart (errors) and are not in the histogram.
 *
 * Every worker records into its own histogram; a pool's percentiles come
 * from the merge of its workers' histograms (the JSON also lists each
 * thread's own p50/p99).
 *
 * Modes besides the single run:
 *   --sweep threads=1,2,4 max=4,16 ...  runs the comparison at every point
 *       of a grid (shpbench_sweep.c) and plots it with gnuplot
 *       (shpbench_plot.c);
 *   --recommend  searches max/min/shards for a workload and prints the
 *       config that measured best, with the evidence (shpbench_recommend.c).
 *
 * TODO:
 *   redis:// and postgresql:// backends (through lib/adapters when built);
 *   reading google-benchmark JSON from bench/ for plotting.
 */
#include "shpbench.h"

#include <shardpool/log.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define SHPB_PROGRESS_MIN_NS (2 * SHPB_NS_PER_S)
#define SHPB_PROGRESS_EVERY_NS (250 * SHPB_NS_PER_MS)
#define SHPB_MAX_LOG_LINES 20

/* ---- options ------------------------------------------------------------- */


static void usage(FILE *f)
{
    fputs(
        "usage: shpbench [options]\n"
        "       shpbench --sweep KEY=V1,V2,... [KEY=...] [--plot-dir DIR] [options]\n"
        "       shpbench --recommend --threads N --hold DIST [--rate R] [options]\n"
        "Runs one workload against shardpool and the reference pools, one after another,\n"
        "over real loopback TCP connections, and prints throughput and acquire latency.\n"
        "\n"
        "Workload:\n"
        "  --threads N            worker threads (default: 2 x online CPUs)\n"
        "  --hold DIST            how long a worker keeps a connection (default exp:20us)\n"
        "  --think DIST           pause between release and the next acquire (default exp:20us)\n"
        "  --duration DUR         run each pool this long (default 2s)\n"
        "  --ops N                instead: N acquire attempts per pool, over all threads\n"
        "  --roundtrip BYTES      echo round trip of BYTES during each hold, 0 = none\n"
        "                         (default 1 for embedded, 0 for tcp://)\n"
        "  --no-roundtrip         same as --roundtrip 0\n"
        "  --seed N               random seed; the same seed gives every pool the same\n"
        "                         hold/think/failure draws per thread (default 1)\n"
        "  --spin-below DUR       busy-wait holds/thinks/latencies shorter than this,\n"
        "                         sleep longer ones (default 10us)\n"
        "  --rate R               open loop: each thread starts operations at Poisson\n"
        "                         arrivals so that all together aim at R ops/s (50000,\n"
        "                         50k, 1.5M); replaces --think.  A thread that falls\n"
        "                         behind starts its next operation at once.  Latency is\n"
        "                         timed from the acquire call, not the arrival\n"
        "\n"
        "Pool (same for every pool compared):\n"
        "  --min N                connections kept open / prefilled (default 0)\n"
        "  --max N                most connections (default 16)\n"
        "  --shards N             shardpool shards, 0 = one per CPU (default 0)\n"
        "  --validate-idle DUR    check a connection idle longer than this before handing\n"
        "                         it out; 'never' to disable (default 500ms)\n"
        "  --acquire-timeout DUR  shardpool's acquire timeout (default 5s; the baselines\n"
        "                         wait without limit)\n"
        "  --pools LIST           comma-separated subset of shardpool,shardpool-1shard,\n"
        "                         mutex,gstack (default: all, in that order)\n"
        "\n"
        "Backend:\n"
        "  --backend SPEC         embedded (default: an echo server on 127.0.0.1 that\n"
        "                         shpbench starts) or tcp://host:port (loopback only; an\n"
        "                         echo server if --roundtrip or --check echo is used),\n"
        "                         redis://[user:password@]host:port[/db] or\n"
        "                         postgresql://user:password@host:port/db (loopback only,\n"
        "                         through shardpool's Redis / PostgreSQL adapters when\n"
        "                         built: the adapter connects, checks and resets on\n"
        "                         release for every pool; a round trip is one PING or\n"
        "                         SELECT 1; the password is masked in all output)\n"
        "  --backend-latency DUR  embedded: wait before each echo (default 0)\n"
        "  --connect-latency DUR  added to every connect (default 0)\n"
        "  --check-cost DUR       added to every health check (default 0)\n"
        "  --check echo|peek      health check: 1-byte echo round trip, or MSG_PEEK\n"
        "                         liveness (default echo for embedded, peek for tcp://)\n"
        "  --fail-rate P          probability in [0, 1] that a connect fails (default 0)\n"
        "\n"
        "Sweep (--sweep):\n"
        "  --sweep KEY=V1,V2,...  run the full comparison (every selected pool) at every\n"
        "                         point of the grid of the given keys; KEYs: threads,\n"
        "                         max, min, shards (0 = per CPU), hold, think (durations:\n"
        "                         the mean/median of the --hold/--think distribution,\n"
        "                         or fixed:DUR / exp:DUR).  Several keys: repeat --sweep,\n"
        "                         or list them after it ('--sweep threads=1,2 max=4,16').\n"
        "                         Points with min > max are skipped.  --duration is per\n"
        "                         pool and point (default 1s in a sweep).  --csv/--json\n"
        "                         write every point\n"
        "  --plot-dir DIR         also write DIR/shpbench-sweep.csv/.json, gnuplot data and\n"
        "                         scripts, and SVG+PNG plots: throughput vs threads (one\n"
        "                         line per pool; one plot per combination of the other\n"
        "                         swept keys; vs the first key if threads is not swept)\n"
        "                         and the acquire latency CDF per pool at the largest\n"
        "                         thread count.  Needs gnuplot (Debian: gnuplot-nox)\n"
        "\n"
        "Google-benchmark plots:\n"
        "  --plot-gbench FILE     read google-benchmark JSON (make bench-micro writes\n"
        "                         build/bench/micro.json) and, with --plot-dir DIR, write\n"
        "                         DIR/gbench-real-time.dat/.gp/.svg/.png: real time per\n"
        "                         iteration vs threads, one line per benchmark (name\n"
        "                         without its run options); prints the paths, runs nothing\n"
        "\n"
        "Recommendation (--recommend):\n"
        "  --recommend            for the workload of --threads, --hold and optionally\n"
        "                         --rate (else --think), measure shardpool with max in\n"
        "                         {N/4, N/2, N, 2N}, shards in {1, per CPU}, min in\n"
        "                         {0, max/2}, and print the config that measured best\n"
        "                         here, with the evidence (default --duration 500ms per\n"
        "                         configuration)\n"
        "\n"
        "Output:\n"
        "  --wait-threshold DUR   an acquire slower than this counts as a wait (default 2us)\n"
        "  --csv FILE             also write the results as CSV\n"
        "  --json FILE            also write the configuration and results as JSON\n"
        "  --no-progress          no progress line (shown on stderr when stdout is a\n"
        "                         terminal and a pool's run is longer than 2 s)\n"
        "  --verbose              pass every shardpool log line through\n"
        "  --self-test            check the histogram and the parsers, then exit\n"
        "  --help                 this text\n"
        "\n"
        "DUR: 0, or a number with ns, us, ms or s (500ns, 20us, 1.5ms, 2s).\n"
        "DIST: fixed:DUR | exp:MEAN | lognormal:MEDIAN,SIGMA | DUR (fixed).\n"
        "Samples are capped at 10 s.\n",
        f);
}

static int die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "shpbench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see shpbench --help)\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == '\0' || strspn(s, "0123456789") != strlen(s))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno != 0 || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

enum {
    O_THREADS = 256, O_MIN, O_MAX, O_SHARDS, O_HOLD, O_THINK, O_DURATION, O_OPS,
    O_CONNECT_LAT, O_CHECK_COST, O_FAIL_RATE, O_SEED, O_BACKEND, O_BACKEND_LAT,
    O_ROUNDTRIP, O_NO_ROUNDTRIP, O_CHECK, O_POOLS, O_CSV, O_JSON, O_WAIT_THR,
    O_SPIN_BELOW, O_VALIDATE_IDLE, O_ACQ_TIMEOUT, O_NO_PROGRESS, O_VERBOSE,
    O_SELF_TEST, O_HELP, O_RATE, O_SWEEP, O_PLOT_DIR, O_RECOMMEND, O_PLOT_GBENCH,
};

static const struct option long_opts[] = {
    { "threads", required_argument, NULL, O_THREADS },
    { "min", required_argument, NULL, O_MIN },
    { "max", required_argument, NULL, O_MAX },
    { "shards", required_argument, NULL, O_SHARDS },
    { "hold", required_argument, NULL, O_HOLD },
    { "think", required_argument, NULL, O_THINK },
    { "duration", required_argument, NULL, O_DURATION },
    { "ops", required_argument, NULL, O_OPS },
    { "connect-latency", required_argument, NULL, O_CONNECT_LAT },
    { "check-cost", required_argument, NULL, O_CHECK_COST },
    { "fail-rate", required_argument, NULL, O_FAIL_RATE },
    { "seed", required_argument, NULL, O_SEED },
    { "backend", required_argument, NULL, O_BACKEND },
    { "backend-latency", required_argument, NULL, O_BACKEND_LAT },
    { "roundtrip", required_argument, NULL, O_ROUNDTRIP },
    { "no-roundtrip", no_argument, NULL, O_NO_ROUNDTRIP },
    { "check", required_argument, NULL, O_CHECK },
    { "pools", required_argument, NULL, O_POOLS },
    { "csv", required_argument, NULL, O_CSV },
    { "json", required_argument, NULL, O_JSON },
    { "wait-threshold", required_argument, NULL, O_WAIT_THR },
    { "spin-below", required_argument, NULL, O_SPIN_BELOW },
    { "validate-idle", required_argument, NULL, O_VALIDATE_IDLE },
    { "acquire-timeout", required_argument, NULL, O_ACQ_TIMEOUT },
    { "no-progress", no_argument, NULL, O_NO_PROGRESS },
    { "verbose", no_argument, NULL, O_VERBOSE },
    { "self-test", no_argument, NULL, O_SELF_TEST },
    { "help", no_argument, NULL, O_HELP },
    { "rate", required_argument, NULL, O_RATE },
    { "sweep", required_argument, NULL, O_SWEEP },
    { "plot-dir", required_argument, NULL, O_PLOT_DIR },
    { "plot-gbench", required_argument, NULL, O_PLOT_GBENCH },
    { "recommend", no_argument, NULL, O_RECOMMEND },
    { NULL, 0, NULL, 0 },
};

/* "50000", "50k", "1.5M": a positive rate in ops/s. */
static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0)
        return -EINVAL;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'M')
        v *= 1e6, end++;
    if (*end != '\0' || !(v > 0) || v > 1e10)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_pools(const char *list, bool out[SHPB_POOL_KINDS])
{
    char *copy = strdup(list), *save = NULL;
    if (copy == NULL)
        return -ENOMEM;
    bool any = false;
    memset(out, 0, SHPB_POOL_KINDS * sizeof out[0]);
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        shpb_pool_kind k;
        if (strcmp(t, "all") == 0) {
            for (unsigned i = 0; i < SHPB_POOL_KINDS; i++)
                out[i] = true;
        } else if (shpb_pool_kind_parse(t, &k) == 0) {
            out[k] = true;
        } else {
            fprintf(stderr, "shpbench: unknown pool '%s'\n", t);
            free(copy);
            return -EINVAL;
        }
        any = true;
    }
    free(copy);
    return any ? 0 : -EINVAL;
}

static int self_test(void);

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, shpb_opts *o)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->cpus = ncpu > 0 ? (unsigned)ncpu : 1;
    o->threads = 2 * o->cpus;
    o->pool = (shpb_pool_cfg){ .min_size = 0, .max_size = 16, .shards = 0,
                               .acquire_timeout_ns = 5 * SHPB_NS_PER_S,
                               .validate_idle_ns = 500 * SHPB_NS_PER_MS };
    shpb_dist_parse("exp:20us", &o->hold);
    shpb_dist_parse("exp:20us", &o->think);
    o->duration_ns = 2 * SHPB_NS_PER_S;
    o->backend = (shpb_backend_opts){ .spec = "embedded", .seed = 1,
                                      .spin_below_ns = 10 * SHPB_NS_PER_US };
    o->roundtrip_bytes = -1;
    o->wait_threshold_ns = 2 * SHPB_NS_PER_US;
    for (unsigned i = 0; i < SHPB_POOL_KINDS; i++)
        o->pools[i] = true;
    o->progress = true;

    int c;
    uint64_t u;
    int64_t d;
    bool sweep_given = false;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case O_THREADS:
            if (parse_u64(optarg, SHPB_MAX_THREADS, &u) != 0 || u == 0)
                return die_usage("--threads: expected 1..4096, got '%s'", optarg);
            o->threads = (unsigned)u;
            o->threads_set = true;
            break;
        case O_MIN:
            if (parse_u64(optarg, 1000000, &u) != 0)
                return die_usage("--min: expected a count, got '%s'", optarg);
            o->pool.min_size = (unsigned)u;
            o->min_set = true;
            break;
        case O_MAX:
            if (parse_u64(optarg, 1000000, &u) != 0 || u == 0)
                return die_usage("--max: expected 1..1000000, got '%s'", optarg);
            o->pool.max_size = (unsigned)u;
            o->max_set = true;
            break;
        case O_SHARDS:
            if (parse_u64(optarg, 4096, &u) != 0)
                return die_usage("--shards: expected 0..4096, got '%s'", optarg);
            o->pool.shards = (unsigned)u;
            o->shards_set = true;
            break;
        case O_HOLD:
        case O_THINK:
            if (shpb_dist_parse(optarg, c == O_HOLD ? &o->hold : &o->think) != 0)
                return die_usage("bad distribution '%s' (fixed:DUR, exp:MEAN, "
                                 "lognormal:MEDIAN,SIGMA)", optarg);
            if (c == O_HOLD)
                o->hold_set = true;
            else
                o->think_set = true;
            break;
        case O_DURATION:
            if (shpb_parse_duration(optarg, &d) != 0 || d <= 0)
                return die_usage("--duration: expected a positive duration, got '%s'", optarg);
            o->duration_ns = d;
            o->duration_set = true;
            o->ops = 0;
            break;
        case O_OPS:
            if (parse_u64(optarg, UINT64_MAX / 2, &u) != 0 || u == 0)
                return die_usage("--ops: expected a positive count, got '%s'", optarg);
            o->ops = u;
            break;
        case O_CONNECT_LAT:
        case O_CHECK_COST:
        case O_BACKEND_LAT:
        case O_WAIT_THR:
        case O_SPIN_BELOW:
        case O_ACQ_TIMEOUT:
            if (shpb_parse_duration(optarg, &d) != 0)
                return die_usage("expected a duration (0, 500ns, 20us, 1ms, 2s), got '%s'",
                                 optarg);
            if (c == O_CONNECT_LAT)
                o->backend.connect_latency_ns = d;
            else if (c == O_CHECK_COST)
                o->backend.check_cost_ns = d;
            else if (c == O_BACKEND_LAT)
                o->backend.backend_latency_ns = d;
            else if (c == O_WAIT_THR)
                o->wait_threshold_ns = d;
            else if (c == O_SPIN_BELOW)
                o->backend.spin_below_ns = d;
            else
                o->pool.acquire_timeout_ns = d;
            break;
        case O_VALIDATE_IDLE:
            if (strcmp(optarg, "never") == 0)
                o->pool.validate_idle_ns = -1;
            else if (shpb_parse_duration(optarg, &o->pool.validate_idle_ns) != 0)
                return die_usage("--validate-idle: expected a duration or 'never', got '%s'",
                                 optarg);
            break;
        case O_FAIL_RATE: {
            char *end;
            errno = 0;
            double p = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || errno != 0 || !(p >= 0 && p <= 1))
                return die_usage("--fail-rate: expected a probability in [0, 1], got '%s'",
                                 optarg);
            o->backend.fail_rate = p;
            break;
        }
        case O_SEED:
            if (parse_u64(optarg, UINT64_MAX, &u) != 0)
                return die_usage("--seed: expected a non-negative integer, got '%s'", optarg);
            o->backend.seed = u;
            break;
        case O_BACKEND:
            o->backend.spec = optarg;
            break;
        case O_ROUNDTRIP:
            if (parse_u64(optarg, SHPB_MAX_ROUNDTRIP, &u) != 0)
                return die_usage("--roundtrip: expected 0..65536 bytes, got '%s'", optarg);
            o->roundtrip_bytes = (long)u;
            break;
        case O_NO_ROUNDTRIP:
            o->roundtrip_bytes = 0;
            break;
        case O_CHECK:
            if (strcmp(optarg, "echo") == 0)
                o->backend.check_mode = SHPB_CHECK_ECHO;
            else if (strcmp(optarg, "peek") == 0)
                o->backend.check_mode = SHPB_CHECK_PEEK;
            else
                return die_usage("--check: expected echo or peek, got '%s'", optarg);
            o->check_set = true;
            break;
        case O_POOLS:
            if (parse_pools(optarg, o->pools) != 0)
                return die_usage("--pools: expected a list of shardpool, shardpool-1shard, "
                                 "mutex, gstack; got '%s'", optarg);
            o->pools_set = true;
            break;
        case O_RATE:
            if (parse_rate(optarg, &o->rate) != 0)
                return die_usage("--rate: expected a positive rate in ops/s (50000, 50k, "
                                 "1.5M), got '%s'", optarg);
            break;
        case O_SWEEP: {
            char err[256];
            if (shpb_sweep_parse(&o->sweep, optarg, err, sizeof err) != 0)
                return die_usage("--sweep: %s", err);
            sweep_given = true;
            break;
        }
        case O_PLOT_DIR:
            o->plot_dir = optarg;
            break;
        case O_PLOT_GBENCH:
            o->plot_gbench = optarg;
            break;
        case O_RECOMMEND:
            o->recommend = true;
            break;
        case O_CSV:
            o->csv_path = optarg;
            break;
        case O_JSON:
            o->json_path = optarg;
            break;
        case O_NO_PROGRESS:
            o->progress = false;
            break;
        case O_VERBOSE:
            o->verbose = true;
            break;
        case O_SELF_TEST:
            return self_test();
        case 'h':
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "(see shpbench --help)\n");
            return 2;
        }
    }
    /* After --sweep, further KEY=VALUES arguments belong to the sweep
     * (getopt_long moved them to the end). */
    for (; optind < argc; optind++) {
        char err[256];
        if (!sweep_given || strchr(argv[optind], '=') == NULL)
            return die_usage("unexpected argument '%s'", argv[optind]);
        if (shpb_sweep_parse(&o->sweep, argv[optind], err, sizeof err) != 0)
            return die_usage("--sweep: %s", err);
    }
    if (o->recommend && sweep_given)
        return die_usage("--recommend and --sweep do not go together%s", "");
    if (o->recommend && (!o->threads_set || !o->hold_set))
        return die_usage("--recommend needs your workload's --threads N and --hold DIST "
                         "(and --rate R if you know it)%s", "");
    if (o->plot_gbench != NULL) {
        if (o->plot_dir == NULL)
            return die_usage("--plot-gbench needs --plot-dir DIR%s", "");
        if (sweep_given || o->recommend)
            return die_usage("--plot-gbench only plots: no --sweep or --recommend with it%s", "");
        return -1;
    }
    if (o->plot_dir != NULL && !sweep_given)
        return die_usage("--plot-dir goes with --sweep or --plot-gbench%s", "");
    if (o->rate > 0 && o->think_set)
        fprintf(stderr, "shpbench: note: --rate paces the threads; --think is not used\n");
    if (!sweep_given && !o->recommend && o->pool.min_size > o->pool.max_size)
        return die_usage("--min is greater than --max%s", "");
    if (!o->duration_set && o->ops == 0) {
        if (sweep_given)
            o->duration_ns = SHPB_NS_PER_S;
        else if (o->recommend)
            o->duration_ns = 500 * SHPB_NS_PER_MS;
    }
    bool embedded = strcmp(o->backend.spec, "embedded") == 0;
    /* redis:// and postgresql:// speak a known protocol: one command (PING,
     * SELECT 1) per hold by default, as the echo byte of embedded. */
    bool adapter = strncmp(o->backend.spec, "redis://", 8) == 0 ||
                   strncmp(o->backend.spec, "postgresql://", 13) == 0 ||
                   strncmp(o->backend.spec, "postgres://", 11) == 0;
    if (o->roundtrip_bytes < 0)
        o->roundtrip_bytes = embedded || adapter ? 1 : 0;
    if (!o->check_set)
        o->backend.check_mode = embedded ? SHPB_CHECK_ECHO : SHPB_CHECK_PEEK;
    if (!embedded && o->backend.backend_latency_ns > 0)
        return die_usage("--backend-latency applies to the embedded backend only%s", "");
    return -1;
}

/* ---- shardpool's log lines ----------------------------------------------- */

static atomic_uint log_lines;
static atomic_bool log_suppress_connect_failed;

/* Forwards shardpool's warnings and errors, at most SHPB_MAX_LOG_LINES of
 * them.  Connect failures injected by --fail-rate are expected and counted
 * in the results instead. */
static void log_cb(shp_log_level level, const char *line, void *ud)
{
    bool verbose = ud != NULL;
    if (!verbose) {
        if (level > SHP_LOG_WARN)
            return;
        if (atomic_load(&log_suppress_connect_failed) &&
            strstr(line, "event=connect_failed") != NULL)
            return;
    }
    unsigned n = atomic_fetch_add(&log_lines, 1);
    if (verbose || n < SHPB_MAX_LOG_LINES)
        fprintf(stderr, "shardpool: %s\n", line);
    else if (n == SHPB_MAX_LOG_LINES)
        fprintf(stderr, "shardpool: (further log lines suppressed; --verbose shows them)\n");
}

/* ---- one pool's run ------------------------------------------------------ */

typedef struct worker {
    pthread_t thread;
    unsigned idx;
    struct run *run;
    shpb_rng rng;
    /* written by the worker alone; ops is also read for the progress line */
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t ops;
    uint64_t errors, timeouts, waited, rt_failures;
    uint64_t held_ns; /* sum over operations of acquire return to release */
    int64_t end_ns;
    shpb_hist hist;
} worker;

typedef struct run {
    const shpb_opts *o;
    shpb_pool *pool;
    shpb_backend *backend;
    pthread_barrier_t start;
    _Alignas(SHPB_CACHELINE) atomic_bool stop;
    atomic_int_fast64_t stop_ns; /* when stop was set (duration mode) */
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t issued; /* --ops mode */
    _Alignas(SHPB_CACHELINE) atomic_uint finished;
} run;


static void *worker_main(void *arg)
{
    worker *w = arg;
    run *r = w->run;
    const shpb_opts *o = r->o;
    const bool by_ops = o->ops > 0;
    const size_t rt = (size_t)o->roundtrip_bytes;
    const int64_t spin = o->backend.spin_below_ns;

    /* --rate: this thread's share of the arrivals, a Poisson process of
     * rate/threads, replaces the think time. */
    const bool paced = o->rate > 0;
    const shpb_dist gap = { .kind = SHPB_DIST_EXP,
                            .a_ns = paced ? (int64_t)((double)o->threads * 1e9 / o->rate) : 0 };

    shpb_rng_seed(&w->rng, o->backend.seed, w->idx);
    shpb_backend_seed_thread(r->backend, w->idx);
    shpb_hist_reset(&w->hist);
    pthread_barrier_wait(&r->start);

    uint64_t ops = 0;
    int64_t next_arrival = paced ? shpb_now_ns() + shpb_dist_sample(&gap, &w->rng) : 0;
    bool stopped_idle = false;
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (by_ops && atomic_fetch_add_explicit(&r->issued, 1, memory_order_relaxed) >= o->ops)
            break;
        /* Draw both samples up front so every pool sees the same sequence. */
        int64_t hold = shpb_dist_sample(&o->hold, &w->rng);
        int64_t think = shpb_dist_sample(paced ? &gap : &o->think, &w->rng);
        if (paced) {
            /* Wait for the arrival in slices, so that a stop is seen. */
            for (int64_t now = shpb_now_ns(); now < next_arrival; now = shpb_now_ns()) {
                if (atomic_load_explicit(&r->stop, memory_order_relaxed)) {
                    stopped_idle = true;
                    break;
                }
                int64_t slice = now + 10 * SHPB_NS_PER_MS;
                shpb_wait_until(slice < next_arrival ? slice : next_arrival, spin);
            }
            if (stopped_idle)
                break;
            next_arrival += think;
        }

        shpb_lease lease;
        int64_t t0 = shpb_now_ns();
        int rc = shpb_pool_acquire(r->pool, &lease);
        int64_t t1 = shpb_now_ns();
        if (rc == 0) {
            uint64_t lat = (uint64_t)(t1 - t0);
            shpb_hist_record(&w->hist, lat);
            if (lat > (uint64_t)o->wait_threshold_ns)
                w->waited++;
            bool broken = false;
            if (rt > 0 && shpb_backend_roundtrip(r->backend, lease.handle, rt) != 0) {
                broken = true;
                w->rt_failures++;
            }
            shpb_wait_until(t1 + hold, spin);
            w->held_ns += (uint64_t)(shpb_now_ns() - t1);
            shpb_pool_release(r->pool, &lease, broken);
            atomic_store_explicit(&w->ops, ++ops, memory_order_relaxed);
        } else if (rc == -ETIMEDOUT) {
            w->timeouts++;
        } else {
            w->errors++;
        }
        if (!paced && think > 0)
            shpb_wait_until(shpb_now_ns() + think, spin);
    }
    /* A paced thread that was only waiting for its next arrival when the
     * run ended did not extend the run. */
    w->end_ns = stopped_idle ? atomic_load(&r->stop_ns) : shpb_now_ns();
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static uint64_t sum_ops(worker *ws, unsigned n)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < n; i++)
        t += atomic_load_explicit(&ws[i].ops, memory_order_relaxed);
    return t;
}

static void progress_line(const shpb_opts *o, const char *name, unsigned no, unsigned of,
                          int64_t elapsed, uint64_t ops, run *r)
{
    char el[32], tot[32];
    shpb_format_ns(elapsed, el, sizeof el);
    double rate = elapsed > 0 ? (double)ops * 1e9 / (double)elapsed : 0;
    if (o->ops > 0) {
        uint64_t issued = atomic_load_explicit(&r->issued, memory_order_relaxed);
        fprintf(stderr, "\r\033[Kshpbench: [%u/%u] %-16s %8s  %" PRIu64 "/%" PRIu64
                        " ops  %.0f ops/s",
                no, of, name, el, issued < o->ops ? issued : o->ops, o->ops, rate);
    } else {
        shpb_format_ns(o->duration_ns, tot, sizeof tot);
        fprintf(stderr, "\r\033[Kshpbench: [%u/%u] %-16s %8s/%-8s  %" PRIu64 " ops  %.0f ops/s",
                no, of, name, el, tot, ops, rate);
    }
    fflush(stderr);
}

/* Runs the workload against one pool.  Returns 0, or -1 after printing why
 * the pool could not be run. */
int shpb_run_pool(const shpb_opts *o, shpb_backend *b, shpb_pool_kind kind, unsigned no,
                  unsigned of, shpb_result *res)
{
    const char *name = shpb_pool_kind_name(kind);
    memset(res, 0, sizeof *res);
    res->kind = kind;
    shpb_backend_counters_reset(b);

    run r = { .o = o, .backend = b };
    atomic_init(&r.stop, false);
    atomic_init(&r.stop_ns, 0);
    atomic_init(&r.issued, 0);
    atomic_init(&r.finished, 0);
    int rc = shpb_pool_open(&r.pool, kind, &o->pool, b);
    if (rc != 0) {
        fprintf(stderr, "shpbench: %s: cannot create the pool: %s\n", name, shp_strerror(rc));
        return -1;
    }
    size_t wsize = (sizeof(worker) + SHPB_CACHELINE - 1) / SHPB_CACHELINE * SHPB_CACHELINE;
    worker *ws = aligned_alloc(SHPB_CACHELINE, wsize * o->threads);
    res->per_thread = calloc(o->threads, sizeof *res->per_thread);
    if (ws == NULL || res->per_thread == NULL) {
        fprintf(stderr, "shpbench: out of memory\n");
        free(ws);
        free(res->per_thread);
        res->per_thread = NULL;
        shpb_pool_close(r.pool);
        return -1;
    }
    memset(ws, 0, wsize * o->threads);
    shpb_hist *merged = malloc(sizeof *merged);
    if (merged == NULL) {
        fprintf(stderr, "shpbench: out of memory\n");
        free(ws);
        free(res->per_thread);
        res->per_thread = NULL;
        shpb_pool_close(r.pool);
        return -1;
    }
    shpb_hist_reset(merged);
    pthread_barrier_init(&r.start, NULL, o->threads + 1);

    unsigned started = 0;
    for (; started < o->threads; started++) {
        ws[started].idx = started;
        ws[started].run = &r;
        atomic_init(&ws[started].ops, 0);
        rc = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
        if (rc != 0) {
            fprintf(stderr, "shpbench: %s: pthread_create: %s\n", name, strerror(rc));
            exit(1); /* the barrier cannot be released with fewer threads */
        }
    }

    pthread_barrier_wait(&r.start);
    int64_t start = shpb_now_ns();
    bool tty_progress = o->progress && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    bool shown = false;
    if (o->ops == 0) {
        int64_t end = start + o->duration_ns;
        bool show = tty_progress && o->duration_ns > SHPB_PROGRESS_MIN_NS;
        for (int64_t now = start; now < end; now = shpb_now_ns()) {
            int64_t next = now + SHPB_PROGRESS_EVERY_NS;
            shpb_wait_until(next < end ? next : end, 0);
            if (show) {
                progress_line(o, name, no, of, shpb_now_ns() - start, sum_ops(ws, o->threads), &r);
                shown = true;
            }
        }
        atomic_store(&r.stop_ns, shpb_now_ns());
        atomic_store(&r.stop, true);
    } else {
        while (atomic_load(&r.finished) < o->threads) {
            shpb_wait_until(shpb_now_ns() + SHPB_PROGRESS_EVERY_NS / 5, 0);
            int64_t el = shpb_now_ns() - start;
            if (tty_progress && el > SHPB_PROGRESS_MIN_NS) {
                progress_line(o, name, no, of, el, sum_ops(ws, o->threads), &r);
                shown = true;
            }
        }
    }
    int64_t last_end = start;
    uint64_t held_ns = 0;
    for (unsigned i = 0; i < started; i++) {
        worker *w = &ws[i];
        pthread_join(w->thread, NULL);
        if (w->end_ns > last_end)
            last_end = w->end_ns;
        shpb_hist_merge(merged, &w->hist);
        held_ns += w->held_ns;
        res->ops += atomic_load(&w->ops);
        res->errors += w->errors;
        res->timeouts += w->timeouts;
        res->waited += w->waited;
        res->rt_failures += w->rt_failures;
        res->per_thread[i].ops = atomic_load(&w->ops);
        res->per_thread[i].p50 = shpb_hist_quantile(&w->hist, 0.5);
        res->per_thread[i].p99 = shpb_hist_quantile(&w->hist, 0.99);
    }
    if (shown)
        fprintf(stderr, "\r\033[K");
    res->nthreads = started;
    pthread_barrier_destroy(&r.start);
    free(ws);

    res->has_stats = shpb_pool_stats(r.pool, &res->st) == 0;
    res->close_rc = shpb_pool_close(r.pool);
    if (res->close_rc != 0)
        fprintf(stderr, "shpbench: %s: closing the pool: %s\n", name, shp_strerror(res->close_rc));
    shpb_backend_counters_read(b, &res->bc);

    res->ran = true;
    res->elapsed_s = (double)(last_end - start) / 1e9;
    res->throughput = res->elapsed_s > 0 ? (double)res->ops / res->elapsed_s : 0;
    res->in_use_avg = last_end > start ? (double)held_ns / (double)(last_end - start) : 0;
    res->p50 = shpb_hist_quantile(merged, 0.5);
    res->p90 = shpb_hist_quantile(merged, 0.9);
    res->p99 = shpb_hist_quantile(merged, 0.99);
    res->p999 = shpb_hist_quantile(merged, 0.999);
    res->min = merged->count ? merged->min : 0;
    res->max = merged->max;
    res->mean = shpb_hist_mean(merged);
    res->wait_pct = res->ops ? 100.0 * (double)res->waited / (double)res->ops : 0;
    res->hist = merged;
    return 0;
}

void shpb_result_drop_hist(shpb_result *res)
{
    free(res->hist);
    res->hist = NULL;
}

void shpb_result_free(shpb_result *res)
{
    shpb_result_drop_hist(res);
    free(res->per_thread);
    res->per_thread = NULL;
}

double shpb_dist_mean_ns(const shpb_dist *d)
{
    if (d->kind == SHPB_DIST_LOGNORMAL)
        return (double)d->a_ns * exp(d->sigma * d->sigma / 2);
    return (double)d->a_ns;
}

/* ---- output -------------------------------------------------------------- */

double shpb_steals_pct(const shpb_result *r)
{
    return r->st.acquired ? 100.0 * (double)r->st.steals / (double)r->st.acquired : 0;
}

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

static void print_table(const shpb_opts *o, const shpb_result *rs, unsigned n)
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
                in, "", s->created, s->closed, s->acquired, s->timeouts, s->steals,
                s->connect_failures, s->health_checks, s->health_failures, s->handoffs);
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

static int write_json(const char *path, const shpb_opts *o, shpb_backend *b,
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

static int write_csv(const char *path, const shpb_result *rs, unsigned n)
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

/* ---- self-test ----------------------------------------------------------- */

static int self_test(void)
{
    int bad = shpb_hist_self_test() != 0;
    static const struct {
        const char *s;
        int64_t ns;
    } durs[] = { { "0", 0 }, { "500ns", 500 }, { "20us", 20000 }, { "1ms", 1000000 },
                 { "1.5ms", 1500000 }, { "2s", 2000000000 } };
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
        int64_t v = -1;
        if (shpb_parse_duration(durs[i].s, &v) != 0 || v != durs[i].ns) {
            fprintf(stderr, "self-test: duration '%s' -> %lld\n", durs[i].s, (long long)v);
            bad = 1;
        }
    }
    static const char *const bad_durs[] = { "", "5", "-1us", "1x", "ms", "1e30s" };
    for (size_t i = 0; i < sizeof bad_durs / sizeof bad_durs[0]; i++) {
        int64_t v;
        if (shpb_parse_duration(bad_durs[i], &v) == 0) {
            fprintf(stderr, "self-test: duration '%s' accepted\n", bad_durs[i]);
            bad = 1;
        }
    }
    /* Distributions: parse/format round trip and sample means. */
    static const char *const dists[] = { "fixed:20us", "exp:20us", "lognormal:20us,0.5" };
    for (size_t i = 0; i < sizeof dists / sizeof dists[0]; i++) {
        shpb_dist d;
        char buf[64];
        if (shpb_dist_parse(dists[i], &d) != 0 ||
            strcmp(shpb_dist_format(&d, buf, sizeof buf), dists[i]) != 0) {
            fprintf(stderr, "self-test: distribution '%s' does not round-trip\n", dists[i]);
            bad = 1;
            continue;
        }
        shpb_rng rng;
        shpb_rng_seed(&rng, 42, 0);
        double sum = 0;
        const int n = 200000;
        static shpb_hist h;
        shpb_hist_reset(&h);
        for (int k = 0; k < n; k++) {
            int64_t v = shpb_dist_sample(&d, &rng);
            sum += (double)v;
            shpb_hist_record(&h, (uint64_t)v);
        }
        /* fixed and exp: the mean is 20 us; lognormal: the median is. */
        double got = d.kind == SHPB_DIST_LOGNORMAL ? (double)shpb_hist_quantile(&h, 0.5)
                                                   : sum / n;
        if (got < 19400 || got > 20600) {
            fprintf(stderr, "self-test: '%s' sample mean/median %.0f, want ~20000\n", dists[i],
                    got);
            bad = 1;
        }
    }
    static const char *const bad_dists[] = { "uniform:1us", "lognormal:20us", "exp:",
                                             "lognormal:1us,-1" };
    for (size_t i = 0; i < sizeof bad_dists / sizeof bad_dists[0]; i++) {
        shpb_dist d;
        if (shpb_dist_parse(bad_dists[i], &d) == 0) {
            fprintf(stderr, "self-test: distribution '%s' accepted\n", bad_dists[i]);
            bad = 1;
        }
    }
    if (shpb_sweep_self_test() != 0)
        bad = 1;
    if (shpb_gbench_self_test() != 0)
        bad = 1;
    printf("shpbench self-test: %s\n", bad ? "FAILED" : "passed");
    return bad ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    shpb_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.plot_gbench != NULL)
        return shpb_plot_gbench(o.plot_gbench, o.plot_dir);

    /* 1 ns timer slack (inherited by every thread started from here on):
     * sleeps of tens of microseconds otherwise overshoot by 50 us. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    atomic_store(&log_suppress_connect_failed, o.backend.fail_rate > 0);
    shp_log_set(log_cb, o.verbose ? (void *)&o : NULL,
                o.verbose ? SHP_LOG_DEBUG : SHP_LOG_WARN);

    char err[256];
    shpb_backend *b;
    /* hiredis writes with write(2): a server that goes away must not kill
     * the run with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    rc = shpb_backend_start(&b, &o.backend, err, sizeof err);
    /* From here on the spec is only printed (table header, JSON, CSV, sweep
     * and recommend output): keep a masked copy, never the password. */
    static char masked_spec[512];
    shp_mask_secrets(masked_spec, sizeof masked_spec, o.backend.spec);
    o.backend.spec = masked_spec;
    if (rc != 0) {
        fprintf(stderr, "shpbench: %s\n", err);
        return 1;
    }

    int status = 0;
    if (o.sweep.naxes > 0 || o.recommend) {
        status = o.recommend ? shpb_recommend_main(&o, b) : shpb_sweep_main(&o, b);
        shpb_backend_stop(b);
        shp_quiesce();
        return status;
    }

    unsigned of = 0, no = 0;
    for (unsigned k = 0; k < SHPB_POOL_KINDS; k++)
        of += o.pools[k];
    shpb_result rs[SHPB_POOL_KINDS];
    unsigned n = 0;
    shpb_print_header(&o, b, NULL);
    fflush(stdout);
    for (unsigned k = 0; k < SHPB_POOL_KINDS; k++) {
        if (!o.pools[k])
            continue;
        if (shpb_run_pool(&o, b, (shpb_pool_kind)k, ++no, of, &rs[n]) != 0)
            status = 1;
        n++;
    }
    print_table(&o, rs, n);
    if (o.csv_path != NULL && write_csv(o.csv_path, rs, n) != 0)
        status = 1;
    if (o.json_path != NULL && write_json(o.json_path, &o, b, rs, n) != 0)
        status = 1;
    shpb_backend_stop(b);
    shp_quiesce(); /* RCU-deferred frees, before a leak checker looks */
    for (unsigned i = 0; i < n; i++)
        shpb_result_free(&rs[i]);
    return status;
}
