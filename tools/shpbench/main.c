/*
 * tools/shpbench/main.c - shpbench, shardpool's workload and tuning tool:
 * parses the command line and hands it to one mode.
 *
 *   (default)       single.h: the workload once against each selected pool
 *   --sweep ...     sweep.h: the comparison at every point of a grid, plots
 *   --recommend     recommend.h: max/min/shards measured for a workload
 *   --plot-gbench   gbench.h: plots google-benchmark CSV, runs nothing
 *   --self-test     every part's self-test
 *
 * What one run measures and how is run.h's; the output formats are
 * report.h's.  Besides parsing, main sets up the process for a run (timer
 * slack, SIGPIPE, shardpool's log, the backend, the masked backend spec)
 * and tears it down.
 */
#include "shpbench/gbench.h"
#include "shpbench/recommend.h"
#include "shpbench/run.h"
#include "shpbench/single.h"
#include "shpbench/sweep.h"

#include <shardpool/log.h>

#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define SHPB_MAX_LOG_LINES 20

/* What the command line asks for: the options every mode shares, and the
 * modes' own. */
typedef struct args {
    shpb_opts o;
    shpb_axes sweep;         /* naxes == 0: no --sweep */
    const char *plot_gbench; /* --plot-gbench FILE: plot it, run nothing */
    bool recommend;
} args;

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
        "  --plot-gbench FILE     read google-benchmark CSV (make bench-micro writes\n"
        "                         build/bench/micro.csv) and, with --plot-dir DIR, write\n"
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

/* Fills *a from the command line (a zeroed by the caller).  Returns -1 to
 * go on, or the exit status (--help, --self-test, a usage error). */
static int parse_args(int argc, char **argv, args *a)
{
    shpb_opts *o = &a->o;
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
            if (shpb_sweep_parse(&a->sweep, optarg, err, sizeof err) != 0)
                return die_usage("--sweep: %s", err);
            sweep_given = true;
            break;
        }
        case O_PLOT_DIR:
            o->plot_dir = optarg;
            break;
        case O_PLOT_GBENCH:
            a->plot_gbench = optarg;
            break;
        case O_RECOMMEND:
            a->recommend = true;
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
        if (shpb_sweep_parse(&a->sweep, argv[optind], err, sizeof err) != 0)
            return die_usage("--sweep: %s", err);
    }
    if (a->recommend && sweep_given)
        return die_usage("--recommend and --sweep do not go together%s", "");
    if (a->recommend && (!o->threads_set || !o->hold_set))
        return die_usage("--recommend needs your workload's --threads N and --hold DIST "
                         "(and --rate R if you know it)%s", "");
    if (a->plot_gbench != NULL) {
        if (o->plot_dir == NULL)
            return die_usage("--plot-gbench needs --plot-dir DIR%s", "");
        if (sweep_given || a->recommend)
            return die_usage("--plot-gbench only plots: no --sweep or --recommend with it%s", "");
        return -1;
    }
    if (o->plot_dir != NULL && !sweep_given)
        return die_usage("--plot-dir goes with --sweep or --plot-gbench%s", "");
    if (o->rate > 0 && o->think_set)
        fprintf(stderr, "shpbench: note: --rate paces the threads; --think is not used\n");
    if (!sweep_given && !a->recommend && o->pool.min_size > o->pool.max_size)
        return die_usage("--min is greater than --max%s", "");
    if (!o->duration_set && o->ops == 0) {
        if (sweep_given)
            o->duration_ns = SHPB_NS_PER_S;
        else if (a->recommend)
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

/* ---- self-test ----------------------------------------------------------- */

static int self_test(void)
{
    int bad = shpb_lat_self_test() != 0;
    bad |= shpb_util_self_test() != 0;
    bad |= shpb_sweep_self_test() != 0;
    bad |= shpb_gbench_self_test() != 0;
    printf("shpbench self-test: %s\n", bad ? "FAILED" : "passed");
    return bad ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static args a; /* the sweep's axes are large: not on the stack */
    memset(&a, 0, sizeof a);
    shpb_opts *o = &a.o;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.plot_gbench != NULL)
        return shpb_plot_gbench(a.plot_gbench, o->plot_dir);

    /* 1 ns timer slack (inherited by every thread started from here on):
     * sleeps of tens of microseconds otherwise overshoot by 50 us. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    atomic_store(&log_suppress_connect_failed, o->backend.fail_rate > 0);
    shp_log_set(log_cb, o->verbose ? (void *)o : NULL, o->verbose ? SHP_LOG_DEBUG : SHP_LOG_WARN);

    char err[256];
    shpb_backend *b;
    /* hiredis writes with write(2): a server that goes away must not kill
     * the run with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    rc = shpb_backend_start(&b, &o->backend, err, sizeof err);
    /* From here on the spec is only printed (table header, JSON, CSV, sweep
     * and recommend output): keep a masked copy, never the password. */
    static char masked_spec[512];
    shp_mask_secrets(masked_spec, sizeof masked_spec, o->backend.spec);
    o->backend.spec = masked_spec;
    if (rc != 0) {
        fprintf(stderr, "shpbench: %s\n", err);
        return 1;
    }

    int status;
    if (a.recommend)
        status = shpb_recommend_main(o, b);
    else if (a.sweep.naxes > 0)
        status = shpb_sweep_main(o, &a.sweep, b);
    else
        status = shpb_single_main(o, b);
    shpb_backend_stop(b);
    shp_quiesce(); /* RCU-deferred frees, before a leak checker looks */
    return status;
}
