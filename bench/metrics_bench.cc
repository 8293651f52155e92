// bench/metrics_bench.cc - what metrics cost on the fast path: the
// acquire+release pair on a pool with metrics (the normal library, shp_*)
// against the same pool on a copy of the library built with -DSHP_NO_METRICS
// (nm_shp_*), in the same process.  Target: metrics on at most 10 % slower
// (ratio on/off <= 1.10) at 1 and 2 threads; 16 threads is for information.
//
// Method
//  * Two libraries, one process.  bench/metrics_bench.mk compiles lib/ a
//    second time with -DSHP_NO_METRICS (release flags otherwise) and renames
//    every global symbol of that copy with objcopy --redefine-syms, shp_x ->
//    nm_shp_x, references between its own objects included, so that both
//    archives link into this binary without a clash; static functions and
//    static (TLS) variables are local symbols, so each copy keeps its own.
//    bench/metrics_syms.sh checks both points.  The nm_ functions are
//    declared below with the shp_ signatures.  One process, because the
//    machine is noisy: both variants see the same CPUs, neighbours, drift.
//  * Code layout.  Where a copy's code lands moves its hot loops across
//    cache lines and changes its speed by a few percent even when the code
//    is the same (measured here: identical code gave on/off 0.98 in one link
//    order, 1.01 in the other).  So both archives are linked with every
//    .text section page-aligned (objcopy --set-section-alignment; the code
//    is untouched: the "on" archive is the release one so aligned): a
//    function then sits at the same offset in its page in both copies
//    unless their code differs.  The two instantiations of BM_pair below
//    start on a cache line each, for the same reason.
//  * Pools: one per library, the same config: min = max = 64 prefilled
//    connections, shards = 0 (one per CPU), default metrics config, reaper
//    every 1 s, no validation, idle timeout or lifetime.  connect makes a
//    dummy 64-byte handle: no I/O.  One pair = acquire, read the handle,
//    release.  Threads are not pinned.
//  * Interleaving.  A calibration (both variants, also the warm-up) fixes
//    the pairs per thread of each run so that on a quiet machine a run
//    lasts ~--run-time (16 threads: 5x, see below).  Then --rounds rounds; in each, for 1 and
//    2 threads, the two variants run back to back as two google-benchmark
//    runs (fixed iterations), "on" first in even rounds and "off" first in
//    odd ones (ABBA): drift and any first-after-switch effect fall on both.
//    16 threads (preemption, not parallelism, on 2 cores) runs in every 10th
//    round only, alternating the same way.  Many short back-to-back pairs
//    rather than a few long repetitions: the noise here is bursty, and a
//    pair of adjacent runs shares most of it.
//  * Figures.  For each run: CPU ns/pair = CPU time of all its threads /
//    pairs, and wall ns/pair = threads * wall time / pairs (per-thread
//    latency, as bench/pair_bench.cc).  The threads never block (64
//    connections for at most 16 threads), so up to one thread per CPU the
//    two agree on a quiet machine (at 16 threads wall is ~8x CPU: 8 threads
//    share each core); when other processes take the CPU, wall time grows
//    by the time they took and CPU time does not.  Per thread count: the median
//    over rounds of each variant's ns/pair, and the median over rounds of
//    the paired ratio on/off of the same round, with its 25th-75th
//    percentile as the spread.  The verdict uses the CPU ratio (on this VM
//    its spread is narrower, ~5x under load); the wall ratio is printed
//    beside it, and a warning if one variant kept fewer cores busy than the
//    other (it would be waiting, which CPU time does not show).
//  * Output: a line per block of rounds (running medians), the table,
//    PASS/FAIL at 1 and 2 threads, and --json=PATH (build/bench/metrics.json
//    from make) with every run's figures.  Exit status 0 on PASS and FAIL
//    alike (it reports, it does not gate); 1 only when it could not run.
//  * At the end each pool is asked for its metrics: if the no-metrics copy
//    still records acquire latencies, -DSHP_NO_METRICS had no effect and the
//    ratio compares identical code (the noise floor, ~1.00).
//
// Flags: --rounds=N (default 250), --run-time=SECONDS per run (default
// 0.02), --max-time=SECONDS (default 45: no block of 25 rounds starts that
// would end later, judging by the last; the table says how many rounds ran), --json=PATH, --verbose
// (a line per round); google-benchmark flags pass through, except
// --benchmark_repetitions (use --rounds) and --benchmark_out (use --json).

#include <benchmark/benchmark.h>

#include "bench_args.h"

#include "shardpool/metrics.h"
#include "shardpool/pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

// The renamed no-metrics copy (build/nometrics/libshardpool_nm.a): the
// same functions as shardpool/pool.h and metrics.h, prefixed nm_.  Its
// objects (pools, connections) must only be passed to nm_ functions.
extern "C" {
void nm_shp_config_init(shp_config *cfg);
int nm_shp_pool_create(shp_pool **pool, const shp_config *cfg, const shp_ops *ops);
int nm_shp_pool_destroy(shp_pool *pool, int64_t drain_timeout_ns);
int nm_shp_acquire(shp_pool *pool, shp_conn **conn, int64_t timeout_ns);
int nm_shp_release(shp_conn *conn);
void *nm_shp_conn_handle(const shp_conn *conn);
int nm_shp_pool_stats(shp_pool *pool, shp_stats *out);
int nm_shp_pool_metrics(shp_pool *pool, shp_metrics *out);
void nm_shp_quiesce(void);
}

namespace {

using shp_bench::has_flag;
using shp_bench::init_gbench;
using shp_bench::to_ns;

constexpr unsigned kConns = 64;
constexpr double kMaxRatio = 1.10;
constexpr int kDefaultRounds = 250;
constexpr double kDefaultRunTime = 0.02;  // seconds per run
constexpr double kDefaultMaxTime = 45;    // seconds for all the rounds
constexpr int kBlock = 25;                // rounds per progress line and per
                                          // google-benchmark session

// The thread counts: gated ones run in every round; the others every
// `stride` rounds, each run `time_scale` times longer.
struct ThreadCount {
    int threads;
    bool gated;
    int stride;
    double time_scale;
    double calibration_s;
};
constexpr ThreadCount kThreadCounts[] = {
    {1, true, 1, 1, 0.05},
    {2, true, 1, 1, 0.05},
    {16, false, 10, 5, 0.2},
};

// ---- the two libraries behind one shape -------------------------------------

struct alignas(64) Dummy {
    uint64_t id;
};
static_assert(sizeof(Dummy) == 64, "one handle per cache line");

std::atomic<uint64_t> g_next_id{0};

// Makes a dummy connection handle.  Returns 0 or -ENOMEM; thread-safe.
int dummy_connect(void *ctx, void **handle) {
    (void)ctx;
    Dummy *d = new (std::nothrow) Dummy();
    if (d == nullptr) return -ENOMEM;
    d->id = g_next_id.fetch_add(1, std::memory_order_relaxed);
    *handle = d;
    return 0;
}

// Frees a handle made by dummy_connect; thread-safe.
void dummy_close(void *ctx, void *handle) {
    (void)ctx;
    delete static_cast<Dummy *>(handle);
}

shp_pool *g_pool_on;   // normal library
shp_pool *g_pool_off;  // renamed -DSHP_NO_METRICS copy

struct On {
    static constexpr const char *kName = "on";
    static shp_pool *&pool() { return g_pool_on; }
    static void config_init(shp_config *c) { shp_config_init(c); }
    static int create(shp_pool **p, const shp_config *c, const shp_ops *o) {
        return shp_pool_create(p, c, o);
    }
    static int destroy(shp_pool *p) { return shp_pool_destroy(p, 1000000000); }
    static int stats(shp_pool *p, shp_stats *s) { return shp_pool_stats(p, s); }
    static int metrics(shp_pool *p, shp_metrics *m) { return shp_pool_metrics(p, m); }
    static void quiesce() { shp_quiesce(); }
    static int acquire(shp_conn **c) { return shp_acquire(g_pool_on, c, -1); }
    static int release(shp_conn *c) { return shp_release(c); }
    static void *handle(const shp_conn *c) { return shp_conn_handle(c); }
};

struct Off {
    static constexpr const char *kName = "off";
    static shp_pool *&pool() { return g_pool_off; }
    static void config_init(shp_config *c) { nm_shp_config_init(c); }
    static int create(shp_pool **p, const shp_config *c, const shp_ops *o) {
        return nm_shp_pool_create(p, c, o);
    }
    static int destroy(shp_pool *p) { return nm_shp_pool_destroy(p, 1000000000); }
    static int stats(shp_pool *p, shp_stats *s) { return nm_shp_pool_stats(p, s); }
    static int metrics(shp_pool *p, shp_metrics *m) { return nm_shp_pool_metrics(p, m); }
    static void quiesce() { nm_shp_quiesce(); }
    static int acquire(shp_conn **c) { return nm_shp_acquire(g_pool_off, c, -1); }
    static int release(shp_conn *c) { return nm_shp_release(c); }
    static void *handle(const shp_conn *c) { return nm_shp_conn_handle(c); }
};

// One iteration = acquire, read the handle's id, release.  Both
// instantiations start on a cache line, so that their identical loops are
// laid out alike (see "Code layout" above).
template <class L>
[[gnu::aligned(64)]] void BM_pair(benchmark::State &state) {
    for (auto _ : state) {
        shp_conn *c = nullptr;
        int rc = L::acquire(&c);
        if (rc != 0) {
            std::fprintf(stderr, "%s: acquire failed: %s\n", L::kName, std::strerror(-rc));
            state.SkipWithError("acquire failed (see stderr)");
            break;
        }
        uint64_t id = static_cast<const Dummy *>(L::handle(c))->id;
        benchmark::DoNotOptimize(id);
        rc = L::release(c);
        if (rc != 0) {
            std::fprintf(stderr, "%s: release failed: %s\n", L::kName, std::strerror(-rc));
            state.SkipWithError("release failed (see stderr)");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());  // summed over threads
}

// Creates L's pool and waits (up to 2 s) for its prefill.  Returns 0 or 1.
template <class L>
int create_pool() {
    shp_config cfg;
    L::config_init(&cfg);  // metrics fields stay at their defaults
    cfg.min_size = kConns;
    cfg.max_size = kConns;
    cfg.shards = 0;                       // one per CPU
    cfg.reaper_interval_ns = 1000000000;  // the reaper stays out of the way
    cfg.validate_idle_ns = -1;
    cfg.idle_timeout_ns = 0;
    cfg.max_lifetime_ns = 0;
    cfg.health_interval_ns = 0;
    cfg.name = "metrics_bench";
    shp_ops ops;
    std::memset(&ops, 0, sizeof(ops));
    ops.connect = dummy_connect;
    ops.close = dummy_close;
    int rc = L::create(&L::pool(), &cfg, &ops);
    if (rc != 0) {
        std::fprintf(stderr, "metrics_bench: %s: pool create: %s\n", L::kName,
                     std::strerror(-rc));
        L::pool() = nullptr;
        return 1;
    }
    for (int i = 0; i < 200; i++) {
        shp_stats st;
        if (L::stats(L::pool(), &st) == 0 && st.idle >= kConns) return 0;
        usleep(10000);
    }
    std::fprintf(stderr, "metrics_bench: %s: prefill incomplete after 2 s\n", L::kName);
    return 0;
}

template <class L>
void destroy_pool() {
    if (L::pool() == nullptr) return;
    int rc = L::destroy(L::pool());
    if (rc != 0)
        std::fprintf(stderr, "metrics_bench: %s: pool destroy: %s\n", L::kName,
                     std::strerror(-rc));
    L::pool() = nullptr;
    L::quiesce();
}

// ---- statistics --------------------------------------------------------------

// The q-quantile (0..1) of v, linear between order statistics; NAN if empty.
double quantile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    double pos = q * static_cast<double>(v.size() - 1);
    size_t lo = static_cast<size_t>(pos);
    size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double median(const std::vector<double> &v) { return quantile(v, 0.5); }

// ---- runs and their results --------------------------------------------------

struct RunKey {
    int variant;  // 0 = on, 1 = off
    int threads;
    int round;    // -1 = calibration
};

struct RunResult {
    double cpu_ns = 0;   // CPU time of all threads / pairs
    double wall_ns = 0;  // threads * wall time / pairs
    double cores = 0;    // CPU time / wall time
    bool ok = false;
};

// Paired figures of one (round, threads).
struct Pair {
    double cpu_ratio, wall_ratio;
};

// Collects every run by the name it was registered under.  When progress
// is on, prints a line per round (verbose) or per kBlock rounds.
class Collector : public benchmark::ConsoleReporter {
  public:
    Collector(const std::map<std::string, RunKey> &keys, int rounds, bool progress,
              bool verbose)
        : keys_(keys), rounds_(rounds), progress_(progress), verbose_(verbose) {
        for (const auto &kv : keys_)
            if (kv.second.round >= 0) expected_[kv.second.round]++;
    }

    bool ReportContext(const Context &ctx) override {
        if (!verbose_ || context_printed_) return true;  // once, not per block
        context_printed_ = true;
        return benchmark::ConsoleReporter::ReportContext(ctx);
    }

    void ReportRuns(const std::vector<Run> &runs) override {
        for (const Run &r : runs) {
            if (r.run_type != Run::RT_Iteration) continue;
            auto k = keys_.find(r.run_name.function_name);
            if (k == keys_.end()) continue;
            const RunKey &key = k->second;
            RunResult res;
            double real = to_ns(r.GetAdjustedRealTime(), r.time_unit);  // per pair
            double cpu = to_ns(r.GetAdjustedCPUTime(), r.time_unit);    // per pair
            res.ok = !r.error_occurred && real > 0 && cpu > 0;
            res.cpu_ns = cpu;
            // google-benchmark divides the mean per-thread wall time by the
            // pairs of all threads: times threads gives per-thread latency.
            res.wall_ns = key.threads * real;
            res.cores = real > 0 ? cpu / real : 0;
            results_[{key.round, key.threads}][key.variant] = res;
            if (key.round >= 0 && ++done_[key.round] == expected_[key.round]) round_done(key.round);
        }
    }

    // Results of round (-1: calibration) at threads; variant 0 = on, 1 = off.
    const RunResult *get(int round, int threads, int variant) const {
        auto it = results_.find({round, threads});
        if (it == results_.end() || !it->second[variant].ok) return nullptr;
        return &it->second[variant];
    }

    // The paired ratios of threads over rounds [from, to).
    std::vector<Pair> pairs(int threads, int from, int to) const {
        std::vector<Pair> v;
        for (int r = from; r < to; r++) {
            const RunResult *on = get(r, threads, 0), *off = get(r, threads, 1);
            if (on != nullptr && off != nullptr)
                v.push_back({on->cpu_ns / off->cpu_ns, on->wall_ns / off->wall_ns});
        }
        return v;
    }

  private:
    void round_done(int round) {
        if (!progress_) return;
        if (verbose_) {
            for (const ThreadCount &tc : kThreadCounts) {
                const RunResult *on = get(round, tc.threads, 0), *off = get(round, tc.threads, 1);
                if (on == nullptr || off == nullptr) continue;
                std::printf("round %3d  %2d threads  CPU ns/pair on %7.2f off %7.2f "
                            "on/off %.3f | wall on %7.2f off %7.2f on/off %.3f\n",
                            round, tc.threads, on->cpu_ns, off->cpu_ns,
                            on->cpu_ns / off->cpu_ns, on->wall_ns, off->wall_ns,
                            on->wall_ns / off->wall_ns);
            }
        } else if ((round + 1) % kBlock == 0 || round + 1 == rounds_) {
            int from = round / kBlock * kBlock;
            std::printf("rounds %3d-%3d  on/off CPU (wall) median:", from, round);
            for (const ThreadCount &tc : kThreadCounts) {
                std::vector<Pair> p = pairs(tc.threads, from, round + 1);
                std::vector<double> c, w;
                for (const Pair &x : p) c.push_back(x.cpu_ratio), w.push_back(x.wall_ratio);
                if (!p.empty())
                    std::printf("  %d thr %.3f (%.3f)", tc.threads, median(c), median(w));
            }
            std::printf("\n");
        }
        std::fflush(stdout);
    }

    const std::map<std::string, RunKey> &keys_;
    int rounds_;
    bool progress_, verbose_;
    bool context_printed_ = false;
    std::map<std::pair<int, int>, RunResult[2]> results_;
    std::map<int, int> expected_, done_;
};

// One google-benchmark run to make: variant at threads in round (-1 =
// calibration), iterations per thread (0: for min_time seconds instead).
struct Planned {
    RunKey key;
    int64_t iterations;
    double min_time;
};

std::string run_name(const RunKey &k) {
    return std::string(k.round < 0 ? "calibrate" : "pair") + "/" +
           (k.variant == 0 ? On::kName : Off::kName) + "/round:" + std::to_string(k.round) +
           "/t:" + std::to_string(k.threads);
}

void register_run(const Planned &p) {
    benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
        run_name(p.key).c_str(), p.key.variant == 0 ? BM_pair<On> : BM_pair<Off>);
    b->Unit(benchmark::kNanosecond)->UseRealTime()->Threads(p.key.threads);
    if (p.iterations > 0)
        b->Iterations(p.iterations);
    else
        b->MinTime(p.min_time);
}

// ---- summary -----------------------------------------------------------------

struct Stat {
    std::vector<double> on, off, ratio;
    double on_med = NAN, off_med = NAN, ratio_med = NAN, ratio_p25 = NAN, ratio_p75 = NAN;

    void finish() {
        on_med = median(on);
        off_med = median(off);
        ratio_med = median(ratio);
        ratio_p25 = quantile(ratio, 0.25);
        ratio_p75 = quantile(ratio, 0.75);
    }
};

struct Row {
    int threads = 0;
    bool gated = false;
    int pairs = 0;  // rounds where both variants ran
    Stat cpu, wall;
    std::vector<double> cores_on, cores_off;
    const char *verdict = "info";
};

Row summarize(const Collector &col, const ThreadCount &tc, int rounds) {
    Row row;
    row.threads = tc.threads;
    row.gated = tc.gated;
    for (int r = 0; r < rounds; r++) {
        const RunResult *on = col.get(r, tc.threads, 0), *off = col.get(r, tc.threads, 1);
        if (on == nullptr || off == nullptr) continue;
        row.cpu.on.push_back(on->cpu_ns);
        row.cpu.off.push_back(off->cpu_ns);
        row.cpu.ratio.push_back(on->cpu_ns / off->cpu_ns);
        row.wall.on.push_back(on->wall_ns);
        row.wall.off.push_back(off->wall_ns);
        row.wall.ratio.push_back(on->wall_ns / off->wall_ns);
        row.cores_on.push_back(on->cores);
        row.cores_off.push_back(off->cores);
    }
    row.pairs = static_cast<int>(row.cpu.ratio.size());
    row.cpu.finish();
    row.wall.finish();
    if (tc.gated)
        row.verdict = std::isnan(row.cpu.ratio_med)     ? "NOT RUN"
                      : row.cpu.ratio_med <= kMaxRatio ? "PASS"
                                                       : "FAIL";
    return row;
}

// What the pools' metrics say about the no-metrics copy: "compiled out"
// (it records no acquire latency, the normal copy does), "identical" (it
// records too: SHP_NO_METRICS had no effect), or "unknown".
std::string nometrics_state() {
    shp_metrics mon, moff;
    std::memset(&mon, 0, sizeof(mon));
    std::memset(&moff, 0, sizeof(moff));
    if (On::metrics(g_pool_on, &mon) != 0 || Off::metrics(g_pool_off, &moff) != 0)
        return "unknown";
    if (moff.acquire.count > 0) return "identical";
    return mon.acquire.count > 0 ? "compiled out" : "unknown";
}

void json_num(FILE *f, double v) {
    if (std::isnan(v))
        std::fputs("null", f);
    else
        std::fprintf(f, "%.6g", v);
}

void json_array(FILE *f, const std::vector<double> &v) {
    std::fputc('[', f);
    for (size_t i = 0; i < v.size(); i++) {
        if (i) std::fputc(',', f);
        json_num(f, v[i]);
    }
    std::fputc(']', f);
}

void json_stat(FILE *f, const char *name, const Stat &s) {
    std::fprintf(f, "     \"%s\": {\"on_ns_per_pair_median\": ", name);
    json_num(f, s.on_med);
    std::fputs(", \"off_ns_per_pair_median\": ", f);
    json_num(f, s.off_med);
    std::fputs(", \"ratio_on_off_median\": ", f);
    json_num(f, s.ratio_med);
    std::fputs(", \"ratio_on_off_p25\": ", f);
    json_num(f, s.ratio_p25);
    std::fputs(", \"ratio_on_off_p75\": ", f);
    json_num(f, s.ratio_p75);
    std::fputs(", \"ratio_of_medians\": ", f);
    json_num(f, s.on_med / s.off_med);
    std::fputs(",\n       \"on_ns_per_pair\": ", f);
    json_array(f, s.on);
    std::fputs(",\n       \"off_ns_per_pair\": ", f);
    json_array(f, s.off);
    std::fputs("}", f);
}

bool write_json(const std::string &path, const std::vector<Row> &rows, int rounds,
                double run_time, const std::string &state, bool pass) {
    FILE *f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
        std::fprintf(stderr, "metrics_bench: %s: %s\n", path.c_str(), std::strerror(errno));
        return false;
    }
    std::fprintf(f,
                 "{\n  \"benchmark\": \"metrics_bench\",\n"
                 "  \"what\": \"acquire+release pair, metrics on (shp_) vs compiled out "
                 "(nm_shp_, -DSHP_NO_METRICS), same process, paired interleaved runs\",\n"
                 "  \"rounds\": %d,\n  \"run_time_s\": %g,\n  \"max_ratio\": %g,\n"
                 "  \"judged\": \"cpu.ratio_on_off_median at gated thread counts\",\n"
                 "  \"nometrics_copy\": \"%s\",\n  \"pass\": %s,\n  \"results\": [\n",
                 rounds, run_time, kMaxRatio, state.c_str(), pass ? "true" : "false");
    for (size_t i = 0; i < rows.size(); i++) {
        const Row &r = rows[i];
        std::fprintf(f,
                     "    {\"threads\": %d, \"gated\": %s, \"verdict\": \"%s\", "
                     "\"pairs\": %d,\n",
                     r.threads, r.gated ? "true" : "false", r.verdict, r.pairs);
        json_stat(f, "cpu", r.cpu);
        std::fputs(",\n", f);
        json_stat(f, "wall", r.wall);
        std::fputs(",\n     \"cores_busy_median\": {\"on\": ", f);
        json_num(f, median(r.cores_on));
        std::fputs(", \"off\": ", f);
        json_num(f, median(r.cores_off));
        std::fprintf(f, "}}%s\n", i + 1 < rows.size() ? "," : "");
    }
    std::fputs("  ]\n}\n", f);
    bool ok = std::ferror(f) == 0;
    if (std::fclose(f) != 0) ok = false;
    if (!ok) std::fprintf(stderr, "metrics_bench: %s: write failed\n", path.c_str());
    return ok;
}

void print_summary(const std::vector<Row> &rows, int rounds) {
    std::printf("\nSummary over %d rounds (16 threads: every 10th).  ns/pair: median over "
                "rounds; on/off: median of the rounds' paired ratios,\n[p25..p75] their "
                "spread.  CPU = CPU time of all threads / pairs (judged); wall = threads "
                "* wall time / pairs.\n", rounds);
    std::printf("threads | pairs | CPU ns/pair on |    off | on/off [p25..p75]     | "
                "wall ns/pair on |    off | on/off [p25..p75]     | verdict (CPU on/off <= %.2f)\n",
                kMaxRatio);
    for (const Row &r : rows)
        std::printf("%7d | %5d | %14.2f | %6.2f | %6.3f [%.3f..%.3f] | %15.2f | %6.2f | "
                    "%6.3f [%.3f..%.3f] | %s\n",
                    r.threads, r.pairs, r.cpu.on_med, r.cpu.off_med, r.cpu.ratio_med,
                    r.cpu.ratio_p25, r.cpu.ratio_p75, r.wall.on_med, r.wall.off_med,
                    r.wall.ratio_med, r.wall.ratio_p25, r.wall.ratio_p75, r.verdict);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (const Row &r : rows) {
        if (r.pairs == 0) continue;
        double want = std::min<double>(r.threads, ncpu > 0 ? static_cast<double>(ncpu) : 1);
        double on = median(r.cores_on), off = median(r.cores_off);
        if (std::min(on, off) < 0.85 * want)
            std::printf("note: at %d thread%s the runs kept %.2f (on) / %.2f (off) of %.0f "
                        "core%s busy: other processes took the CPU (wall figures include "
                        "that, CPU figures do not)\n",
                        r.threads, r.threads == 1 ? "" : "s", on, off, want,
                        want == 1 ? "" : "s");
        if (r.gated && std::fabs(on - off) > 0.1 * want)
            std::printf("WARNING: at %d threads on kept %.2f cores busy and off %.2f: one "
                        "variant waits where the other runs; look at the wall ratio\n",
                        r.threads, on, off);
    }
}

// ---- flags -------------------------------------------------------------------

// If arg is --name=value, sets *value and returns true.
bool take_flag(const char *arg, const char *name, std::string *value) {
    size_t n = std::strlen(name);
    if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
    *value = arg + n + 1;
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    int rounds = kDefaultRounds;
    double run_time = kDefaultRunTime;
    double max_time = kDefaultMaxTime;
    bool verbose = false;
    std::string json_path;
    std::vector<std::string> args;
    for (int i = 1; i < argc; i++) {
        std::string v;
        if (take_flag(argv[i], "--rounds", &v)) {
            rounds = std::atoi(v.c_str());
            if (rounds < 1 || rounds > 10000) {
                std::fprintf(stderr, "metrics_bench: --rounds: 1..10000\n");
                return 1;
            }
        } else if (take_flag(argv[i], "--run-time", &v)) {
            run_time = std::atof(v.c_str());
            if (!(run_time > 0 && run_time <= 10)) {
                std::fprintf(stderr, "metrics_bench: --run-time: seconds, (0, 10]\n");
                return 1;
            }
        } else if (take_flag(argv[i], "--max-time", &v)) {
            max_time = std::atof(v.c_str());
            if (!(max_time > 0)) {
                std::fprintf(stderr, "metrics_bench: --max-time: seconds, > 0\n");
                return 1;
            }
        } else if (take_flag(argv[i], "--json", &v)) {
            json_path = v;
        } else if (std::strcmp(argv[i], "--verbose") == 0) {
            verbose = true;
        } else if (std::strncmp(argv[i], "--benchmark_repetitions", 23) == 0) {
            std::fprintf(stderr, "metrics_bench: use --rounds=N, not --benchmark_repetitions\n");
            return 1;
        } else if (std::strncmp(argv[i], "--benchmark_out", 15) == 0) {
            // Each block of rounds is its own google-benchmark session: the
            // file would hold the last block only.
            std::fprintf(stderr, "metrics_bench: use --json=PATH, not --benchmark_out\n");
            return 1;
        } else {
            if (std::strcmp(argv[i], "--help") == 0)
                std::printf("metrics_bench: --rounds=N (%d), --run-time=SECONDS (%g), "
                            "--max-time=SECONDS (%g), --json=PATH, --verbose; "
                            "google-benchmark flags follow.\n",
                            kDefaultRounds, kDefaultRunTime, kDefaultMaxTime);
            args.emplace_back(argv[i]);
        }
    }
    if (!init_gbench(argv[0], args)) return 1;

    // Both copies would publish to the same monitor segment name.
    unsetenv("SHARDPOOL_MONITOR");
    if (create_pool<On>() != 0 || create_pool<Off>() != 0) {
        destroy_pool<On>();
        destroy_pool<Off>();
        return 1;
    }

    // Calibration and warm-up: both variants per thread count.  The pairs
    // per thread of a run follow from their mean CPU ns/pair, which other
    // processes inflate far less than wall time: one thread needs that per
    // pair on a core of its own, threads/ncpu times as long when they share.
    std::map<std::string, RunKey> keys;
    for (const ThreadCount &tc : kThreadCounts)
        for (int v = 0; v < 2; v++) {
            Planned p{RunKey{v, tc.threads, -1}, 0, tc.calibration_s};
            keys[run_name(p.key)] = p.key;
            register_run(p);
        }
    Collector cal(keys, 0, false, false);
    benchmark::RunSpecifiedBenchmarks(&cal);
    benchmark::ClearRegisteredBenchmarks();

    std::printf("metrics_bench: %d rounds of back-to-back on/off runs (ABBA), ~%g s per "
                "run (16 threads: every 10th round, 5x longer), at most %g s\n", rounds,
                run_time, max_time);
    std::map<int, int64_t> iters;
    long ncpu = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    for (const ThreadCount &tc : kThreadCounts) {
        const RunResult *a = cal.get(-1, tc.threads, 0), *b = cal.get(-1, tc.threads, 1);
        if (a == nullptr || b == nullptr) continue;  // filtered out or failed
        double share = std::max(1.0, tc.threads / static_cast<double>(ncpu));
        double ns = (a->cpu_ns + b->cpu_ns) / 2 * share;  // one thread's time per pair
        iters[tc.threads] =
            std::max<int64_t>(1000, static_cast<int64_t>(run_time * tc.time_scale * 1e9 / ns));
        std::printf("calibration: %2d threads  CPU ns/pair on %.2f off %.2f -> %lld pairs "
                    "per thread per run\n", tc.threads, a->cpu_ns, b->cpu_ns,
                    static_cast<long long>(iters[tc.threads]));
    }

    std::vector<Planned> plan;
    keys.clear();
    for (int r = 0; r < rounds; r++)
        for (const ThreadCount &tc : kThreadCounts) {
            if (iters.count(tc.threads) == 0 || r % tc.stride != 0) continue;
            int first = (r / tc.stride) % 2;  // 0: on first, 1: off first
            for (int v : {first, 1 - first}) {
                plan.push_back(Planned{RunKey{v, tc.threads, r}, iters[tc.threads], 0});
                keys[run_name(plan.back().key)] = plan.back().key;
            }
        }
    // Run kBlock rounds at a time, and no block that would end past
    // max_time (if it takes as long as the last one): on a loaded machine
    // fixed-size runs take longer.
    Collector col(keys, rounds, true, verbose);
    using Clock = std::chrono::steady_clock;
    Clock::time_point start = Clock::now();
    int done = 0;
    for (size_t i = 0; i < plan.size() && done < rounds;) {
        Clock::time_point block_start = Clock::now();
        int block_end = std::min(rounds, done + kBlock);
        for (; i < plan.size() && plan[i].key.round < block_end; i++) register_run(plan[i]);
        benchmark::RunSpecifiedBenchmarks(&col);
        benchmark::ClearRegisteredBenchmarks();
        done = block_end;
        std::chrono::duration<double> spent = Clock::now() - start,
                                      last = Clock::now() - block_start;
        if (done < rounds && spent.count() + last.count() > max_time) {
            std::printf("metrics_bench: time budget (%g s) reached: stopping after %d of %d "
                        "rounds\n", max_time, done, rounds);
            break;
        }
    }
    rounds = done;

    std::vector<Row> rows;
    for (const ThreadCount &tc : kThreadCounts) rows.push_back(summarize(col, tc, rounds));
    std::string state = nometrics_state();
    print_summary(rows, rounds);

    bool pass = true;
    for (const Row &r : rows)
        if (r.gated && std::strcmp(r.verdict, "PASS") != 0) pass = false;
    if (state == "identical")
        std::printf("NOTE: the no-metrics copy still records acquire latencies: "
                    "-DSHP_NO_METRICS has no effect yet, both sides run the same code "
                    "(this measures the noise floor)\n");
    else if (state == "compiled out")
        std::printf("no-metrics copy: records no acquire latency (compiled out), as expected\n");
    else
        std::printf("no-metrics copy: shp_pool_metrics cannot tell whether its recording "
                    "is compiled out\n");
    std::printf("metrics_bench: %s (metrics on at most %.0f %% slower at 1 and 2 threads)\n",
                pass ? "PASS" : "FAIL", (kMaxRatio - 1) * 100);

    if (!json_path.empty() && write_json(json_path, rows, rounds, run_time, state, pass))
        std::printf("metrics_bench: results in %s\n", json_path.c_str());
    std::fflush(stdout);
    benchmark::Shutdown();
    destroy_pool<On>();
    destroy_pool<Off>();
    return 0;
}
