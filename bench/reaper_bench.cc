// bench/reaper_bench.cc - what lib/reaper.c costs the acquirers.
//
// Two pool configurations that differ only in their reaper:
//
//   health  reaper_interval_ns = 1 ms, health_interval_ns = 10 ms and a
//           cheap check callback: the reaper wakes ~1000 times a second
//           and health-checks every idle connection every 10 ms (taking
//           each shard's idle list off its stack to do so).
//   off     reaper_interval_ns = 1 s, health_interval_ns = 0: effectively
//           no reaper.
//
// Both: 8 prefilled connections (min = max) dealt out evenly over the
// shards (one per CPU), no validate-on-acquire, no idle timeout or
// lifetime.  8, not the default max of 16: the reaper checks at most one
// connection per shard per pass (~900 passes/s here), and acquirers that
// meet a shard being swept steal from another shard and release at home,
// so under load the connections drift onto the busy shard; 16 connections
// then get ~900 checks/s of the ~1600/s that "every 10 ms" means, 8 get all
// theirs (see checks_per_s).
//
// "Same run", strictly: one benchmark run per thread count (1, and 4 = 2 x
// CPUs) alternates the two configurations in short slices (default 64
// slices of 75 ms, in the order off health health off off health ...),
// making a fresh pool for each slice and destroying it after, while all
// benchmark threads wait at a barrier.  This machine's own tail latency
// drifts from run to run (back-to-back clock_gettime calls have a p99.9 of
// 50 ns in one 0.3 s run and 170 ns in the next), so separate runs of the
// two pools compare the machine's moods more than the reaper; slices
// shorter than those moods give both configurations the same share of
// each.
//
// In a slice each thread loops acquire + read the handle + release and
// times every acquire with clock_gettime (the ~20 ns of one clock read are
// in every figure, for both pools alike) into its own histogram.  Counters
// (per configuration, prefix off_ or health_): p50_ns, p99_ns, p999_ns,
// max_ns of all acquires of all its slices; ns_per_op (slice wall time /
// one thread's ops); checks_per_s (health checks made; 100/s for each
// connection that stays idle); steals_per_mop (acquires that found their
// shard emptied by a sweep and took from another, per million).  Plus
// p999_ratio = health_p999_ns / off_p999_ns.  The summary prints the
// ratio per thread count and the target line for the worse one.
//
// Flags: google-benchmark's own (--benchmark_filter=threads:1 keeps one
// thread count; --benchmark_min_time does not apply, the slices set the
// length: ~15 s in all here) and
//   --shp-slices=N     slices per run, both configurations (default 64)
//   --shp-slice-ms=M   length of a slice (default 75)
//   --shp-enforce      exit status 1 if the target fails or was not computed

#include <benchmark/benchmark.h>

#include "bench_args.h"

#include "shardpool/pool.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

using shp_bench::has_flag;
using shp_bench::init_gbench;
using shp_bench::to_ns;

constexpr unsigned kConns = 8;
constexpr int kThreadCounts[] = {1, 4};
constexpr int kMaxThreads = 16;
constexpr double kTarget = 1.2;  // p99.9 with the reaper / without

int g_nslices = 64;
int64_t g_slice_ns = 75 * 1000000LL;

int64_t now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---- latency histogram --------------------------------------------------------

// A log-linear histogram of nanoseconds, written here rather than taken from
// a library: google-benchmark reports means (and statistics across
// repetitions), never percentiles of single ops; Debian ships no C
// HdrHistogram; and the library's own (lib/hist.h, which shpbench uses) is
// C11 <stdatomic.h>, which C++17 cannot include.
// Values below 2 * kSub ns are counted exactly; above, each power of two is
// split into kSub equal buckets, so a bucket is at most 1/32 (3 %) of its
// values wide.  One thread records into its own histogram (no atomics);
// they are merged after the run.
struct Hist {
    static constexpr int kSubBits = 5;
    static constexpr int kSub = 1 << kSubBits;
    static constexpr int kMaxLog2 = 40;  // ~18 minutes; larger values clamp
    static constexpr int kBuckets = (kMaxLog2 - kSubBits) * kSub + 2 * kSub;

    uint64_t count;
    uint64_t max;
    uint64_t bucket[kBuckets];

    void clear() { std::memset(this, 0, sizeof(*this)); }

    static int index(uint64_t v) {
        if (v < 2 * kSub) return static_cast<int>(v);
        int log2 = 63 - __builtin_clzll(v);
        if (log2 > kMaxLog2) return kBuckets - 1;
        int shift = log2 - kSubBits;  // >= 1
        return shift * kSub + static_cast<int>(v >> shift);
    }
    // The smallest value of bucket i and the bucket's width.
    static uint64_t low(int i) {
        if (i < 2 * kSub) return static_cast<uint64_t>(i);
        int shift = i / kSub - 1;
        return static_cast<uint64_t>(i % kSub + kSub) << shift;
    }
    static uint64_t width(int i) { return i < 2 * kSub ? 1 : uint64_t{1} << (i / kSub - 1); }

    void record(uint64_t v) {
        bucket[index(v)]++;
        count++;
        if (v > max) max = v;
    }
    void merge(const Hist &o) {
        for (int i = 0; i < kBuckets; i++) bucket[i] += o.bucket[i];
        count += o.count;
        max = std::max(max, o.max);
    }
    // The value at quantile q (0..1): the middle of the bucket holding the
    // ceil(q * count)-th smallest value, capped at the largest value seen.
    double quantile(double q) const {
        if (count == 0) return 0;
        uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count));
        if (rank < q * static_cast<double>(count)) rank++;
        if (rank == 0) rank = 1;
        uint64_t seen = 0;
        for (int i = 0; i < kBuckets; i++) {
            seen += bucket[i];
            if (seen >= rank) {
                double mid = static_cast<double>(low(i)) + static_cast<double>(width(i) - 1) / 2;
                return std::min(mid, static_cast<double>(max));
            }
        }
        return static_cast<double>(max);
    }
};


// ---- dummy connections --------------------------------------------------------

struct alignas(64) Dummy {
    uint64_t id;
};

std::atomic<uint64_t> g_next_id{0};

int dummy_connect(void *, void **handle) {
    void *p = std::aligned_alloc(alignof(Dummy), sizeof(Dummy));
    if (p == nullptr) return -ENOMEM;
    Dummy *d = new (p) Dummy();
    d->id = g_next_id.fetch_add(1, std::memory_order_relaxed);
    *handle = d;
    return 0;
}

void dummy_close(void *, void *handle) { std::free(handle); }

// The cheap health check: reads the connection object, finds it healthy.
int cheap_check(void *, void *handle) {
    return static_cast<const Dummy *>(handle)->id == UINT64_MAX ? -EIO : 0;
}

// ---- pools --------------------------------------------------------------------------

enum Mode { kOff = 0, kHealth = 1 };
const char *const kModeName[] = {"off", "health"};

shp_pool *make_pool(Mode mode) {
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = kConns;
    cfg.max_size = kConns;
    cfg.validate_idle_ns = -1;
    cfg.idle_timeout_ns = 0;
    cfg.max_lifetime_ns = 0;
    cfg.acquire_timeout_ns = 30 * 1000000000LL;
    if (mode == kHealth) {
        cfg.reaper_interval_ns = 1000000;   // 1 ms
        cfg.health_interval_ns = 10000000;  // 10 ms
    } else {
        cfg.reaper_interval_ns = 1000000000;  // 1 s
        cfg.health_interval_ns = 0;
    }
    cfg.name = kModeName[mode];
    shp_ops ops;
    std::memset(&ops, 0, sizeof(ops));
    ops.connect = dummy_connect;
    ops.close = dummy_close;
    ops.check = cheap_check;
    shp_pool *p = nullptr;
    int rc = shp_pool_create(&p, &cfg, &ops);
    if (rc != 0) {
        std::fprintf(stderr, "reaper_bench: shp_pool_create: %s\n", std::strerror(-rc));
        return nullptr;
    }
    for (int i = 0; i < 200; i++) {  // a failed prefill is retried by the reaper
        shp_stats st;
        if (shp_pool_stats(p, &st) == 0 && st.idle >= kConns) break;
        usleep(10000);
    }
    return p;
}

// Deals the pool's idle connections out evenly over the shards of the CPUs
// this process may use, as threads on every CPU would leave them (the
// prefill puts them all on the creating thread's shard).  This matters to
// the reaper: it health-checks at most one connection per shard per pass.
// A thread pinned to each CPU releases its share.
void spread_over_cpus(shp_pool *p) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    shp_conn *held[kConns];
    size_t n = 0;
    while (n < kConns && shp_acquire(p, &held[n], 0) == 0) n++;
    size_t done = 0;
    for (size_t i = 0; i < cpus.size(); i++) {
        size_t share = (n - done) / (cpus.size() - i);
        std::thread t([&, i] {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpus[i], &one);
            pthread_setaffinity_np(pthread_self(), sizeof(one), &one);  // best effort
            for (size_t j = 0; j < share; j++) shp_release(held[done + j]);
        });
        t.join();
        done += share;
    }
}

// ---- one run: slices of alternating configurations ---------------------------------

// Set by thread 0 (the conductor) before the barrier that starts a slice,
// read by every thread after it.
shp_pool *g_slice_pool;
Mode g_slice_mode;
int64_t g_slice_deadline;
pthread_barrier_t g_barrier;
bool g_barrier_ok;

Hist g_thread_hist[kMaxThreads];  // each thread's, for the current slice
bool g_thread_failed[kMaxThreads];

// What the conductor adds up per configuration over a run.
struct ModeTotals {
    Hist hist;
    std::vector<double> slice_p999;
    double wall_ns;      // slice time, summed
    double ops;          // acquires of all threads
    double checks;
    double steals;
};
ModeTotals g_total[2];

// off health health off off health health off ...: a linear drift of the
// machine weighs on both alike.
Mode slice_mode(int s) { return ((s + 1) / 2) % 2 ? kHealth : kOff; }

void setup_run(const benchmark::State &state) {
    for (ModeTotals &t : g_total) {
        t.hist.clear();
        t.slice_p999.clear();
        t.wall_ns = t.ops = t.checks = t.steals = 0;
    }
    std::memset(g_thread_failed, 0, sizeof(g_thread_failed));
    g_barrier_ok = state.threads() <= kMaxThreads &&
                   pthread_barrier_init(&g_barrier, nullptr,
                                        static_cast<unsigned>(state.threads())) == 0;
}

void teardown_run(const benchmark::State &) {
    if (g_barrier_ok) pthread_barrier_destroy(&g_barrier);
    g_barrier_ok = false;
}

void wait_all() { pthread_barrier_wait(&g_barrier); }

// One benchmark iteration is the whole run: g_nslices slices, each of
// g_slice_ns, with the threads stopped at a barrier in between while the
// conductor swaps the pool.
void BM_reaper_impact(benchmark::State &state) {
    const int me = state.thread_index(), nthreads = state.threads();
    if (!g_barrier_ok) {
        state.SkipWithError("too many threads or no barrier");
        return;
    }
    shp_stats before{}, after{};
    int64_t slice_start = 0;
    for (auto _ : state) {
        for (int s = 0; s < g_nslices; s++) {
            if (me == 0) {  // make this slice's pool
                g_slice_mode = slice_mode(s);
                g_slice_pool = make_pool(g_slice_mode);
                if (g_slice_pool != nullptr) {
                    spread_over_cpus(g_slice_pool);
                    shp_pool_stats(g_slice_pool, &before);
                }
                slice_start = now_ns();
                g_slice_deadline = slice_start + g_slice_ns;
            }
            wait_all();
            shp_pool *p = g_slice_pool;
            const int64_t deadline = g_slice_deadline;
            Hist &h = g_thread_hist[me];
            h.clear();
            while (p != nullptr && !g_thread_failed[me]) {
                shp_conn *c = nullptr;
                int64_t a = now_ns();
                int rc = shp_acquire(p, &c, -1);
                int64_t b = now_ns();
                if (rc != 0) {
                    g_thread_failed[me] = true;
                    break;
                }
                h.record(static_cast<uint64_t>(b - a));
                benchmark::DoNotOptimize(static_cast<const Dummy *>(shp_conn_handle(c))->id);
                if (shp_release(c) != 0) {
                    g_thread_failed[me] = true;
                    break;
                }
                if (b >= deadline) break;
            }
            wait_all();
            if (me == 0 && p != nullptr) {  // account for the slice, drop its pool
                int64_t slice_end = now_ns();
                shp_pool_stats(p, &after);
                int rc = shp_pool_destroy(p, 1000000000);
                if (rc != 0)
                    std::fprintf(stderr, "reaper_bench: shp_pool_destroy: %s\n", std::strerror(-rc));
                ModeTotals &t = g_total[g_slice_mode];
                Hist slice;
                slice.clear();
                for (int i = 0; i < nthreads; i++) slice.merge(g_thread_hist[i]);
                t.hist.merge(slice);
                t.slice_p999.push_back(slice.quantile(0.999));
                t.wall_ns += static_cast<double>(slice_end - slice_start);
                t.ops += static_cast<double>(slice.count);
                t.checks += static_cast<double>(after.health_checks - before.health_checks);
                t.steals += static_cast<double>(after.steals - before.steals);
            }
        }
    }
    if (g_thread_failed[me]) state.SkipWithError("shp_acquire or shp_release failed");
    if (me != 0) return;
    for (Mode m : {kOff, kHealth}) {
        const ModeTotals &t = g_total[m];
        if (t.ops == 0) {
            state.SkipWithError("a configuration made no ops (see stderr)");
            return;
        }
        std::string k = kModeName[m];
        state.counters[k + "_p50_ns"] = t.hist.quantile(0.50);
        state.counters[k + "_p99_ns"] = t.hist.quantile(0.99);
        state.counters[k + "_p999_ns"] = t.hist.quantile(0.999);
        state.counters[k + "_max_ns"] = static_cast<double>(t.hist.max);
        state.counters[k + "_ns_per_op"] = t.wall_ns * nthreads / t.ops;
        state.counters[k + "_checks_per_s"] = t.checks / (t.wall_ns / 1e9);
        state.counters[k + "_steals_per_mop"] = 1e6 * t.steals / t.ops;
    }
    state.counters["p999_ratio"] = g_total[kHealth].hist.quantile(0.999) /
                                   g_total[kOff].hist.quantile(0.999);
}

// ---- summary -------------------------------------------------------------------------

// The console reporter (colour only on a terminal) that also keeps each
// run's counters by thread count.
class CollectingReporter : public benchmark::ConsoleReporter {
  public:
    CollectingReporter()
        : benchmark::ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Color : OO_None) {}

    void ReportRuns(const std::vector<Run> &runs) override {
        for (const Run &r : runs) {
            if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
            auto &row = rows_[static_cast<int>(r.threads)];
            for (const auto &kv : r.counters) row[kv.first] = kv.second.value;
        }
        benchmark::ConsoleReporter::ReportRuns(runs);
    }
    // Counter k of the run at threads, or -1 if it did not run or failed.
    double get(int threads, const std::string &k) const {
        auto it = rows_.find(threads);
        if (it == rows_.end()) return -1;
        auto c = it->second.find(k);
        return c == it->second.end() ? -1 : c->second;
    }

  private:
    std::map<int, std::map<std::string, double>> rows_;
};

std::string min_med_max(std::vector<double> v) {
    if (v.empty()) return "-";
    std::sort(v.begin(), v.end());
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.0f / %.0f / %.0f", v.front(), v[v.size() / 2], v.back());
    return buf;
}

// Slice p99.9 spreads of the last run, by thread count (the reporter sees
// counters only).
std::map<int, std::string> g_spread[2];

// Prints the summary; returns 1 if the target failed or could not be
// computed, else 0.
int print_summary(const CollectingReporter &rep) {
    std::printf("\nreaper impact on shp_acquire latency, %u connections, %d slices of %.0f ms "
                "alternating in one run\n"
                "  health: reaper every 1 ms, health check of each idle connection every 10 ms"
                " (a connection idle throughout is due 100 times/s)\n"
                "  off:    reaper every 1 s, no health checks\n",
                kConns, g_nslices, static_cast<double>(g_slice_ns) / 1e6);
    std::printf("  %7s %-7s %7s %7s %8s %10s %9s %10s  %s\n", "threads", "pool", "p50 ns",
                "p99 ns", "p99.9 ns", "max ns", "checks/s", "steals/Mop",
                "slice p99.9 min / median / max");
    double worst = -1;
    for (int t : kThreadCounts) {
        double ratio = rep.get(t, "p999_ratio");
        if (ratio < 0) continue;
        for (Mode m : {kOff, kHealth}) {
            std::string k = kModeName[m];
            std::printf("  %7d %-7s %7.0f %7.0f %8.0f %10.0f %9.0f %10.2f  %s\n", t, kModeName[m],
                        rep.get(t, k + "_p50_ns"), rep.get(t, k + "_p99_ns"),
                        rep.get(t, k + "_p999_ns"), rep.get(t, k + "_max_ns"),
                        rep.get(t, k + "_checks_per_s"), rep.get(t, k + "_steals_per_mop"),
                        g_spread[m][t].c_str());
        }
        std::printf("  ratio p99.9(health)/p99.9(off) at %d thread%s: %.2fx\n", t,
                    t > 1 ? "s" : "", ratio);
        worst = std::max(worst, ratio);
    }
    if (worst < 0) {
        std::printf("target reaper impact <= %.1fx: n/a NOT RUN\n", kTarget);
        return 1;
    }
    bool ok = worst <= kTarget;
    std::printf("target reaper impact <= %.1fx: %.2fx %s\n", kTarget, worst, ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}

// Teardown of a run also files the slice spreads for the summary.
void teardown_and_file(const benchmark::State &state) {
    for (Mode m : {kOff, kHealth}) g_spread[m][state.threads()] = min_med_max(g_total[m].slice_p999);
    teardown_run(state);
}

void register_benchmarks() {
    for (int t : kThreadCounts)
        benchmark::RegisterBenchmark("reaper_impact", BM_reaper_impact)
            ->Setup(setup_run)
            ->Teardown(teardown_and_file)
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->Threads(t);
}

// The integer value of --name=N in arg, or fallback.
long int_flag(const std::string &arg, const char *name, long fallback) {
    std::string prefix = std::string(name) + "=";
    if (arg.compare(0, prefix.size(), prefix) != 0) return fallback;
    char *end = nullptr;
    long v = std::strtol(arg.c_str() + prefix.size(), &end, 10);
    return end != nullptr && *end == '\0' && v > 0 ? v : -1;
}

}  // namespace

int main(int argc, char **argv) {
    // Our own flags come out before google-benchmark sees argv.
    bool enforce = false;
    std::vector<std::string> args;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        long v;
        if (a == "--shp-enforce") {
            enforce = true;
        } else if ((v = int_flag(a, "--shp-slices", 0)) != 0) {
            if (v < 0) return std::fprintf(stderr, "reaper_bench: bad %s\n", a.c_str()), 1;
            g_nslices = static_cast<int>(v);
        } else if ((v = int_flag(a, "--shp-slice-ms", 0)) != 0) {
            if (v < 0) return std::fprintf(stderr, "reaper_bench: bad %s\n", a.c_str()), 1;
            g_slice_ns = v * 1000000LL;
        } else {
            args.emplace_back(a);
        }
    }
    if (has_flag(args, "--help"))
        std::printf("reaper_bench: also --shp-slices=N (default 64), --shp-slice-ms=M (default "
                    "75), --shp-enforce; google-benchmark flags follow.\n");
    bool listing = has_flag(args, "--benchmark_list_tests");
    if (!init_gbench(argv[0], args)) return 1;
    register_benchmarks();
    CollectingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    int failed = listing ? 0 : print_summary(reporter);
    std::fflush(stdout);
    benchmark::Shutdown();
    shp_quiesce();
    return enforce && failed ? 1 : 0;
}
