// bench/pair_bench.cc - acquire+release ("pair") throughput of shardpool
// against two baselines (bench/baselines.h):
//
//   pair/shardpool  shp_acquire + shp_release on one pool of 64 prefilled
//                   connections (min = max = 64, so no thread ever waits or
//                   connects; reaper every 1 s; no validate-on-acquire, no
//                   idle timeout, lifetime or health checks).
//   pair/mutex      the same over a mutex + condvar pool of 64 connections.
//   pair/gstack     the same over ONE global ck_stack of 64 connections.
//
// Every pair also reads one field of the connection's handle, as a user
// would.  Each benchmark runs at 1, 2 and 16 threads with real (wall) time.
// The three pools are created once in main() before any benchmark runs.
//
// Reading the output: google-benchmark's own lines come first ("Time" there
// is wall time divided by the pairs made by ALL threads, i.e. 1/throughput;
// items_per_second is the total pairs/s).  Then a summary table built from
// the MEDIAN of the repetitions (default 5):
//   ns/pair      per-thread latency = threads * 1e9 / (total pairs/s); at 1
//                thread it is simply the time of one pair.
//   Mpairs/s     total throughput of all threads together.
//   ratio vs X   shardpool total pairs/s divided by X's at the same thread
//                count: above 1 means shardpool is faster.
// The machine has 2 cores, so 16 threads measure behaviour under
// preemption, not extra parallelism: a scalable pool keeps its 2-thread
// throughput there; a shared stack or lock does not scale past one core.
// A WARNING line after the table means shardpool's or gstack's threads (which
// never sleep here) kept fewer cores busy than they could: something else
// was using the CPU, so the 2- and 16-thread figures are not trustworthy.
// The targets printed last are informative; --shp-enforce turns a FAIL (or
// a target that could not be computed) into exit status 1.
//
// Flags: any google-benchmark flag (--benchmark_filter=..., --benchmark_out=
// ...); --benchmark_repetitions=5 and --benchmark_enable_random_interleaving
// =true are added unless given: the repetitions of every pool and thread
// count run in random order, so that the machine's drift during the run
// falls on all of them alike instead of on whichever ran last (the 16- to
// 2-thread ratio compares two of them).  MinTime(0.2) is set unless
// --benchmark_min_time is given.  The console format is always the
// human one (use --benchmark_out/--benchmark_out_format for JSON or CSV).

#include <benchmark/benchmark.h>

#include "bench_args.h"

#include "baselines.h"
#include "shardpool/pool.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

using shp_bench::has_flag;
using shp_bench::init_gbench;
using shp_bench::to_ns;

constexpr unsigned kConns = 64;
constexpr int kThreadCounts[] = {1, 2, 16};
constexpr double kDefaultMinTime = 0.2;  // seconds per repetition
constexpr const char *kDefaultReps = "--benchmark_repetitions=5";
constexpr const char *kDefaultInterleave = "--benchmark_enable_random_interleaving=true";

shp_pool *g_shp;
bl_mutexpool *g_mutex;
bl_gstack *g_gstack;
std::atomic<uint64_t> g_next_id{0};

// ---- shardpool's dummy connection callbacks --------------------------------

// Makes a dummy connection object on its own cache line.  Returns 0 or
// -ENOMEM; thread-safe.
int dummy_connect(void *ctx, void **handle) {
    (void)ctx;
    void *p = aligned_alloc(64, sizeof(bl_dummy));
    if (p == nullptr) return -ENOMEM;
    auto *d = static_cast<bl_dummy *>(p);
    std::memset(d, 0, sizeof(*d));
    d->id = g_next_id.fetch_add(1, std::memory_order_relaxed);
    *handle = d;
    return 0;
}

// Frees a dummy connection made by dummy_connect; thread-safe.
void dummy_close(void *ctx, void *handle) {
    (void)ctx;
    std::free(handle);
}

// ---- the three pools behind one shape --------------------------------------

struct ShpPool {
    using Conn = shp_conn;
    static int acquire(Conn **c) { return shp_acquire(g_shp, c, -1); }
    static int release(Conn *c) { return shp_release(c); }
    static void *handle(const Conn *c) { return shp_conn_handle(c); }
};

struct MutexPool {
    using Conn = bl_conn;
    static int acquire(Conn **c) { return bl_mutexpool_acquire(g_mutex, c); }
    static int release(Conn *c) { return bl_mutexpool_release(c); }
    static void *handle(const Conn *c) { return bl_conn_handle(c); }
};

struct GstackPool {
    using Conn = bl_conn;
    static int acquire(Conn **c) { return bl_gstack_acquire(g_gstack, c); }
    static int release(Conn *c) { return bl_gstack_release(c); }
    static void *handle(const Conn *c) { return bl_conn_handle(c); }
};

// One iteration = acquire, read the handle's id, release.
template <class P>
void BM_pair(benchmark::State &state) {
    for (auto _ : state) {
        typename P::Conn *c = nullptr;
        int rc = P::acquire(&c);
        if (rc != 0) {
            std::fprintf(stderr, "acquire failed: %s\n", std::strerror(-rc));
            state.SkipWithError("acquire failed (see stderr)");
            break;
        }
        uint64_t id = static_cast<const bl_dummy *>(P::handle(c))->id;
        benchmark::DoNotOptimize(id);
        rc = P::release(c);
        if (rc != 0) {
            std::fprintf(stderr, "release failed: %s\n", std::strerror(-rc));
            state.SkipWithError("release failed (see stderr)");
            break;
        }
    }
    // Summed over threads by google-benchmark: items_per_second is the total.
    state.SetItemsProcessed(state.iterations());
}

// ---- result collection -----------------------------------------------------

struct Result {
    double real_ns = 0;        // real time per iteration, as reported
    double cpu_ns = 0;         // CPU time of all threads per iteration
    double items_per_sec = 0;  // total pairs/s over all threads (0: unknown)
    bool median = false;       // from the median aggregate
    bool error = false;
};

// The normal console reporter, which also keeps, per (benchmark, threads),
// the median aggregate row (or the single run when there is no aggregate).
class CollectingReporter : public benchmark::ConsoleReporter {
  public:
    using benchmark::ConsoleReporter::ConsoleReporter;

    void ReportRuns(const std::vector<Run> &runs) override {
        for (const Run &r : runs) {
            bool is_median = r.run_type == Run::RT_Aggregate &&
                             r.aggregate_name == "median";
            if (r.run_type == Run::RT_Aggregate && !is_median) continue;
            Result &res = results_[{r.run_name.function_name,
                                    static_cast<int>(r.threads)}];
            if (res.median && !is_median) continue;  // keep the median
            res = Result{};
            res.median = is_median;
            res.error = r.error_occurred;
            res.real_ns = to_ns(r.GetAdjustedRealTime(), r.time_unit);
            res.cpu_ns = to_ns(r.GetAdjustedCPUTime(), r.time_unit);
            auto it = r.counters.find("items_per_second");
            if (it != r.counters.end()) res.items_per_sec = it->second.value;
        }
        benchmark::ConsoleReporter::ReportRuns(runs);
    }

    // Total pairs/s of benchmark name at threads, or 0 if it did not run.
    double rate(const std::string &name, int threads) const {
        auto it = results_.find({name, threads});
        if (it == results_.end() || it->second.error) return 0;
        if (it->second.items_per_sec > 0) return it->second.items_per_sec;
        // Fallback: with UseRealTime the reported time is wall time over the
        // iterations of all threads, so its inverse is the total rate.
        return it->second.real_ns > 0 ? 1e9 / it->second.real_ns : 0;
    }

    // CPU time over real time of benchmark name at threads: how many cores
    // its threads kept busy on average (0 if unknown).
    double cores_busy(const std::string &name, int threads) const {
        auto it = results_.find({name, threads});
        if (it == results_.end() || it->second.error || it->second.real_ns <= 0)
            return 0;
        return it->second.cpu_ns / it->second.real_ns;
    }

    bool any_median() const {
        for (const auto &kv : results_)
            if (kv.second.median) return true;
        return false;
    }

  private:
    std::map<std::pair<std::string, int>, Result> results_;
};

// ---- flags -----------------------------------------------------------------

// The value of --name=value (last one wins), or "" if absent.
std::string flag_value(const std::vector<std::string> &args, const char *name) {
    std::string prefix = std::string(name) + "=";
    std::string v;
    for (const std::string &a : args)
        if (a.compare(0, prefix.size(), prefix) == 0) v = a.substr(prefix.size());
        else if (a == name) v = "true";
    return v;
}

bool truthy(const std::string &v) {
    return v == "true" || v == "1" || v == "yes" || v == "on" || v == "t" ||
           v == "y" || v == "True" || v == "TRUE" || v == "Yes" || v == "YES";
}

// Console options as google-benchmark would pick them from the same flags.
benchmark::ConsoleReporter::OutputOptions console_options(
    const std::vector<std::string> &args) {
    int opts = benchmark::ConsoleReporter::OO_None;
    std::string color = flag_value(args, "--benchmark_color");
    if (color.empty() || color == "auto") {
        const char *term = std::getenv("TERM");
        if (isatty(STDOUT_FILENO) && term != nullptr && *term != '\0' &&
            std::strcmp(term, "dumb") != 0)
            opts |= benchmark::ConsoleReporter::OO_Color;
    } else if (truthy(color)) {
        opts |= benchmark::ConsoleReporter::OO_Color;
    }
    if (truthy(flag_value(args, "--benchmark_counters_tabular")))
        opts |= benchmark::ConsoleReporter::OO_Tabular;
    return static_cast<benchmark::ConsoleReporter::OutputOptions>(opts);
}

// ---- pools -----------------------------------------------------------------

int create_pools() {
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = kConns;
    cfg.max_size = kConns;
    cfg.reaper_interval_ns = 1000000000;  // 1 s: the reaper stays out of the way
    cfg.validate_idle_ns = -1;            // never check on acquire
    cfg.idle_timeout_ns = 0;              // keep every connection
    cfg.max_lifetime_ns = 0;
    cfg.health_interval_ns = 0;
    cfg.name = "pair_bench";
    shp_ops ops;
    std::memset(&ops, 0, sizeof(ops));
    ops.connect = dummy_connect;
    ops.close = dummy_close;

    int rc = shp_pool_create(&g_shp, &cfg, &ops);
    if (rc != 0) {
        std::fprintf(stderr, "shp_pool_create: %s\n", std::strerror(-rc));
        return 1;
    }
    // The prefill normally completes inside create; give a retried prefill
    // up to 2 s so that no benchmark pays for a connect.
    for (int i = 0; i < 200; i++) {
        shp_stats st;
        if (shp_pool_stats(g_shp, &st) == 0 && st.idle >= kConns) break;
        usleep(10000);
    }
    rc = bl_mutexpool_create(&g_mutex, kConns);
    if (rc != 0) {
        std::fprintf(stderr, "bl_mutexpool_create: %s\n", std::strerror(-rc));
        return 1;
    }
    rc = bl_gstack_create(&g_gstack, kConns);
    if (rc != 0) {
        std::fprintf(stderr, "bl_gstack_create: %s\n", std::strerror(-rc));
        return 1;
    }
    return 0;
}

// Destroys the pools, first printing shardpool's counters if print_stats.
void destroy_pools(bool print_stats) {
    if (g_shp != nullptr) {
        shp_stats st;
        if (print_stats && shp_pool_stats(g_shp, &st) == 0)
            std::printf("shardpool stats: created %llu, acquired %llu, steals "
                        "%llu, handoffs %llu, timeouts %llu\n",
                        static_cast<unsigned long long>(st.creations),
                        static_cast<unsigned long long>(st.acquisitions),
                        static_cast<unsigned long long>(st.steals),
                        static_cast<unsigned long long>(st.handoffs),
                        static_cast<unsigned long long>(st.timeouts));
        int rc = shp_pool_destroy(g_shp, 1000000000);
        if (rc != 0)
            std::fprintf(stderr, "shp_pool_destroy: %s\n", std::strerror(-rc));
        shp_quiesce();
    }
    bl_mutexpool_destroy(g_mutex);
    bl_gstack_destroy(g_gstack);
}

// ---- summary ---------------------------------------------------------------

void print_cell(double v, const char *fmt, int width) {
    if (v > 0)
        std::printf(fmt, width, v);
    else
        std::printf("%*s", width, "n/a");
}

// Prints the table and the target lines; returns the number of targets that
// failed or could not be computed.
int print_summary(const CollectingReporter &rep) {
    const char *kShp = "pair/shardpool", *kMutex = "pair/mutex",
               *kGstack = "pair/gstack";
    std::printf("\nSummary (%s of the repetitions; ns/pair = per-thread "
                "latency = threads * 1e9 / total pairs/s;\n"
                "Mpairs/s = total of all threads; ratio = shardpool total "
                "pairs/s / baseline's, > 1 = shardpool faster)\n",
                rep.any_median() ? "median" : "single run, no median");
    std::printf("threads | shardpool ns/pair | mutex ns/pair | gstack ns/pair "
                "| shardpool Mpairs/s | ratio vs mutex | ratio vs gstack\n");
    for (int t : kThreadCounts) {
        double s = rep.rate(kShp, t), m = rep.rate(kMutex, t),
               g = rep.rate(kGstack, t);
        std::printf("%7d | ", t);
        print_cell(s > 0 ? t * 1e9 / s : 0, "%*.1f", 17);
        std::printf(" | ");
        print_cell(m > 0 ? t * 1e9 / m : 0, "%*.1f", 13);
        std::printf(" | ");
        print_cell(g > 0 ? t * 1e9 / g : 0, "%*.1f", 14);
        std::printf(" | ");
        print_cell(s / 1e6, "%*.2f", 18);
        std::printf(" | ");
        print_cell(s > 0 && m > 0 ? s / m : 0, "%*.2f", 14);
        std::printf(" | ");
        print_cell(s > 0 && g > 0 ? s / g : 0, "%*.2f", 15);
        std::printf("\n");
    }

    // shardpool and gstack never sleep with 64 connections for 16 threads,
    // so their threads should keep min(threads, CPUs) cores busy; if they
    // did not, another process took the CPU and the multi-thread rows (and
    // the targets built on them) measure time-slicing, not the pools.
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    for (const char *name : {kShp, kGstack}) {
        for (int t : kThreadCounts) {
            if (t < 2) continue;
            double want = t < ncpu ? t : static_cast<double>(ncpu);
            double got = rep.cores_busy(name, t);
            if (got > 0 && got < 0.85 * want)
                std::printf("WARNING: %s at %d threads kept %.2f of %.0f cores "
                            "busy (CPU time / real time): another process is "
                            "using the CPU, multi-thread figures are not "
                            "trustworthy\n",
                            name, t, got, want);
        }
    }

    int failed = 0;
    double s1 = rep.rate(kShp, 1), s2 = rep.rate(kShp, 2),
           s16 = rep.rate(kShp, 16), m2 = rep.rate(kMutex, 2);
    if (s1 > 0) {
        double ns = 1e9 / s1;
        bool ok = ns <= 20.0;
        failed += !ok;
        std::printf("target 1-thread <= 20 ns/pair: %.1f ns  %s\n", ns,
                    ok ? "PASS" : "FAIL");
    } else {
        failed++;
        std::printf("target 1-thread <= 20 ns/pair: n/a  NOT RUN\n");
    }
    if (s2 > 0 && m2 > 0) {
        double r = s2 / m2;
        bool ok = r >= 8.0;
        failed += !ok;
        std::printf("target 2-thread >= 8x mutex: %.1fx %s\n", r,
                    ok ? "PASS" : "FAIL");
    } else {
        failed++;
        std::printf("target 2-thread >= 8x mutex: n/a NOT RUN\n");
    }
    if (s16 > 0 && s2 > 0) {
        double r = s16 / s2;
        bool ok = r >= 0.9;
        failed += !ok;
        std::printf("target 16-thread >= 0.9x own 2-thread: %.2fx %s\n", r,
                    ok ? "PASS" : "FAIL");
    } else {
        failed++;
        std::printf("target 16-thread >= 0.9x own 2-thread: n/a NOT RUN\n");
    }
    return failed;
}

void register_benchmarks(bool set_min_time) {
    struct Entry {
        const char *name;
        void (*fn)(benchmark::State &);
    };
    const Entry entries[] = {
        {"pair/shardpool", BM_pair<ShpPool>},
        {"pair/mutex", BM_pair<MutexPool>},
        {"pair/gstack", BM_pair<GstackPool>},
    };
    for (const Entry &e : entries) {
        benchmark::internal::Benchmark *b =
            benchmark::RegisterBenchmark(e.name, e.fn);
        b->Unit(benchmark::kNanosecond)->UseRealTime()->DisplayAggregatesOnly();
        for (int t : kThreadCounts) b->Threads(t);
        if (set_min_time) b->MinTime(kDefaultMinTime);
    }
}

}  // namespace

int main(int argc, char **argv) {
    // Our own flag comes out before google-benchmark sees argv.
    bool enforce = false;
    std::vector<std::string> args;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--shp-enforce") == 0)
            enforce = true;
        else
            args.emplace_back(argv[i]);
    }
    if (has_flag(args, "--help"))
        std::printf("pair_bench: also --shp-enforce (exit 1 if a target "
                    "fails); google-benchmark flags follow.\n");
    if (!has_flag(args, "--benchmark_repetitions")) args.emplace_back(kDefaultReps);
    if (!has_flag(args, "--benchmark_enable_random_interleaving"))
        args.emplace_back(kDefaultInterleave);
    if (has_flag(args, "--benchmark_format"))
        std::fprintf(stderr, "pair_bench: --benchmark_format is ignored for "
                             "the console; use --benchmark_out_format\n");
    bool set_min_time = !has_flag(args, "--benchmark_min_time");

    if (!init_gbench(argv[0], args)) return 1;

    if (create_pools() != 0) {
        destroy_pools(false);
        return 1;
    }
    register_benchmarks(set_min_time);

    CollectingReporter reporter(console_options(args));
    benchmark::RunSpecifiedBenchmarks(&reporter);
    bool listing = truthy(flag_value(args, "--benchmark_list_tests"));
    int failed = listing ? 0 : print_summary(reporter);
    std::fflush(stdout);
    benchmark::Shutdown();
    destroy_pools(!listing);
    return enforce && failed > 0 ? 1 : 0;
}
