// bench/pool_bench.cc - microbenchmarks of lib/acquire.c, release.c and idle.c, one per path of
// shp_acquire / shp_release (pair_bench compares the fast path with the
// baselines; this file takes the paths apart, shardpool only):
//
//   pair               acquire + read the handle + release on a pool of 64
//                      prefilled connections; no thread ever waits or
//                      connects.  1, 2 and 4 (= 2 x CPUs) threads.
//   reset_hook         pairs on two pools of 64, one with a trivial
//                      ops.reset, in alternating blocks of 1024 pairs, each
//                      block timed: plain_ns and hook_ns per pair (median
//                      block), and their difference overhead_ns, the hook's
//                      cost.  (Two separate runs differ by more than the
//                      hook costs: the pair's run-to-run noise here is
//                      ~3 ns, 10 %.)  1 and 4 threads.
//   steal              two threads pinned to two CPUs: the thief (CPU b)
//                      acquires, its own shard always empty, so every
//                      connection comes off the other shard; it passes each
//                      one through a ring to the returner (CPU a), which
//                      releases it onto shard a.  One op = one steal.
//   create             min 0: every acquire finds no idle connection and
//                      connects (the dummy connect is an aligned malloc);
//                      release_broken closes it (free + RCU-deferred reuse of
//                      the struct).  1 and 4 threads.
//   handoff            more threads than connections (4 threads / 1
//                      connection, 16 threads / 2), each holding it 1 us:
//                      every release goes straight to the oldest waiter.
//
// Every benchmark uses real (wall) time.  google-benchmark's "Time" column
// is wall time divided by the ops of ALL threads (1 / throughput); the
// counter ns_per_op is wall time divided by the ops of ONE thread, i.e. how
// long one op takes its caller (the two agree at 1 thread).  Other counters:
//   acquire_ns         steal: mean time of the thief's successful
//                      shp_acquire calls, clock reads included (ns_per_op
//                      there is the thief + returner pipeline's pace)
//   steals_per_op      pool steal counter delta / steals made (should be 1)
//   empty_per_op       thief's acquire(timeout 0) attempts that found no
//                      idle connection, per successful steal
//   created_per_op     connections created per acquire (should be 1)
//   rel_to_acq_ns      handoff latency: from just before shp_release to the
//                      moment the next borrower's shp_acquire returned,
//                      averaged over passes (the next borrower is another
//                      thread)
//   pass_per_op        passes per op (1 - the share of re-acquires by the
//                      thread that had just released the connection)
//   woken_per_release  stats.handoffs delta / releases: one release wakes at
//                      most one waiter, so it must never exceed 1
//   csw_per_op         context switches (voluntary + involuntary) of the
//                      benchmark threads per op: how often waiting slept
// Pools are made in each run's Setup callback and destroyed in its Teardown,
// outside the timed region.  A summary follows google-benchmark's lines.
//
// Flags: google-benchmark's own; MinTime(0.1) is set per benchmark unless
// --benchmark_min_time is given.

#include <benchmark/benchmark.h>

#include "shardpool/pool.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
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

constexpr double kDefaultMinTime = 0.1;  // seconds per benchmark run
constexpr uint64_t kBlock = 1024;        // reset_hook: pairs per block on one pool
constexpr unsigned kPairConns = 64;
constexpr unsigned kCreateMax = 64;
constexpr unsigned kStealConns = 64;
constexpr int kMaxThreads = 64;
constexpr int64_t kHandoffHoldNs = 1000;  // busy work while holding (handoff)

int64_t now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// ---- dummy connections -------------------------------------------------------

// What a handle points to: a stand-in for a driver's connection object, on
// its own cache line.  released_ns and released_by are written by a borrower
// just before it releases (handoff benchmark), and read by the next one.
struct alignas(64) Dummy {
    uint64_t id;
    int64_t released_ns;
    int released_by;   // benchmark thread index
    uint64_t session;  // "session state" that the reset hook clears
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

// The trivial reset hook: clears the session word and keeps the connection.
int trivial_reset(void *, void *handle) {
    static_cast<Dummy *>(handle)->session = 0;
    return 0;
}

Dummy *dummy_of(shp_conn *c) { return static_cast<Dummy *>(shp_conn_handle(c)); }

// ---- the pool of the running benchmark ----------------------------------------

// Benchmarks run one after another, so one pool at a time: made by the
// run's Setup callback (main thread, before the benchmark threads start),
// destroyed by its Teardown (after they have all joined).
shp_pool *g_pool;

// A pool whose reaper stays out of the way (1 s, nothing to check, no
// timeouts) and whose acquires never validate; min connections prefilled.
shp_pool *make_pool(unsigned min, unsigned max, bool reset_hook, const char *name) {
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = min;
    cfg.max_size = max;
    cfg.reaper_interval_ns = 1000000000;
    cfg.validate_idle_ns = -1;
    cfg.idle_timeout_ns = 0;
    cfg.max_lifetime_ns = 0;
    cfg.health_interval_ns = 0;
    cfg.acquire_timeout_ns = 30 * 1000000000LL;
    cfg.name = name;
    shp_ops ops;
    std::memset(&ops, 0, sizeof(ops));
    ops.connect = dummy_connect;
    ops.close = dummy_close;
    if (reset_hook) ops.reset = trivial_reset;
    shp_pool *p = nullptr;
    int rc = shp_pool_create(&p, &cfg, &ops);
    if (rc != 0) {
        std::fprintf(stderr, "pool_bench: shp_pool_create(%s): %s\n", name, std::strerror(-rc));
        return nullptr;
    }
    // The prefill completes inside create unless a connect failed; give the
    // reaper's retry up to 2 s so that no benchmark pays for a connect.
    for (int i = 0; i < 200; i++) {
        shp_stats st;
        if (shp_pool_stats(p, &st) == 0 && st.idle >= min) break;
        usleep(10000);
    }
    return p;
}

void teardown_pool(const benchmark::State &) {
    if (g_pool == nullptr) return;
    int rc = shp_pool_destroy(g_pool, 1000000000);
    if (rc != 0) std::fprintf(stderr, "pool_bench: shp_pool_destroy: %s\n", std::strerror(-rc));
    g_pool = nullptr;
}

shp_stats stats_now() {
    shp_stats st;
    std::memset(&st, 0, sizeof(st));
    shp_pool_stats(g_pool, &st);
    return st;
}

// ---- per-thread results gathered by thread 0 -------------------------------------

// Each thread posts its own figures after its loop; thread 0 waits for all of
// them before it sets the run's counters (google-benchmark's end-of-loop
// barrier orders the loops, not what each thread does after its loop).
struct alignas(64) Slot {
    double lat_sum_ns;  // handoff: sum of release-to-acquire latencies of passes
    double lat_n;       // passes: acquires of a connection another thread released
    double csw;         // context switches during the loop
    double plain_ns;    // reset_hook: ns per pair on the pool without the hook
    double hook_ns;     // reset_hook: ns per pair on the pool with it
};
Slot g_slot[kMaxThreads];
std::atomic<int> g_posted{0};

void reset_slots() {
    std::memset(g_slot, 0, sizeof(g_slot));
    g_posted.store(0, std::memory_order_relaxed);
}

void post_slot() { g_posted.fetch_add(1, std::memory_order_acq_rel); }

void wait_slots(int threads) {
    while (g_posted.load(std::memory_order_acquire) < threads) sched_yield();
}

double thread_csw() {
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) return 0;
    return static_cast<double>(ru.ru_nvcsw + ru.ru_nivcsw);
}

// Thread 0's per-thread latency counter: wall time around the loop (whose
// start and end are barriers for all threads) over one thread's ops.
void set_ns_per_op(benchmark::State &state, int64_t t0, int64_t t1) {
    if (state.iterations() > 0)
        state.counters["ns_per_op"] =
            static_cast<double>(t1 - t0) / static_cast<double>(state.iterations());
}

// ---- CPU pinning (steal benchmark) ------------------------------------------------

int g_cpu_a = -1, g_cpu_b = -1;  // two CPUs this process may run on

void pick_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        if (g_cpu_a < 0) {
            g_cpu_a = c;
        } else {
            g_cpu_b = c;
            break;
        }
    }
}

// Pins the calling thread to cpu, saving its previous mask in *old.
bool pin_self(int cpu, cpu_set_t *old) {
    if (old != nullptr && pthread_getaffinity_np(pthread_self(), sizeof(*old), old) != 0)
        return false;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0 &&
           sched_getcpu() == cpu;
}

void unpin_self(const cpu_set_t *old) {
    pthread_setaffinity_np(pthread_self(), sizeof(*old), old);
}

// =================================================================== pair

void setup_pair(const benchmark::State &) { g_pool = make_pool(kPairConns, kPairConns, false, "pair"); }

// One op = acquire, read the handle's id, release.
void BM_pair(benchmark::State &state) {
    shp_pool *p = g_pool;
    if (p == nullptr) {
        state.SkipWithError("no pool (see stderr)");
        return;
    }
    int64_t t0 = now_ns();
    for (auto _ : state) {
        shp_conn *c = nullptr;
        int rc = shp_acquire(p, &c, -1);
        if (rc != 0) {
            state.SkipWithError("shp_acquire failed");
            break;
        }
        benchmark::DoNotOptimize(dummy_of(c)->id);
        if (shp_release(c) != 0) {
            state.SkipWithError("shp_release failed");
            break;
        }
    }
    int64_t t1 = now_ns();
    state.SetItemsProcessed(state.iterations());
    if (state.thread_index() == 0) set_ns_per_op(state, t0, t1);
}

// =================================================================== reset hook

shp_pool *g_pool_hook;  // reset_hook: the pool with the hook (g_pool: without)
// reset_hook: each thread's block times (ns per pair) on either pool.
std::vector<float> g_block_ns[kMaxThreads][2];

void setup_reset_hook(const benchmark::State &state) {
    reset_slots();
    for (int t = 0; t < state.threads() && t < kMaxThreads; t++)
        for (std::vector<float> &v : g_block_ns[t]) {
            v.clear();
            v.reserve(1 << 16);  // no reallocation inside the timed loop
        }
    g_pool = make_pool(kPairConns, kPairConns, false, "plain");
    g_pool_hook = make_pool(kPairConns, kPairConns, true, "reset_hook");
}

double median_of(std::vector<float> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
}

// One op = one pair, on the plain pool in even blocks of kBlock ops and on
// the hooked pool in odd ones; each block is timed (one clock read per
// block), so both pools see the same machine.  plain_ns and hook_ns are the
// median block's ns per pair (averaged over threads): a block that a
// preemption or an interrupt hit is an outlier, not a trend.  Their
// difference is the hook's cost: an indirect call that writes the handle's
// line, which the releasing thread owns anyway.
void BM_reset_hook(benchmark::State &state) {
    shp_pool *pools[2] = {g_pool, g_pool_hook};
    int me = state.thread_index();
    if (pools[0] == nullptr || pools[1] == nullptr || state.threads() > kMaxThreads) {
        state.SkipWithError("no pool (see stderr) or too many threads");
        return;
    }
    std::vector<float> *blocks = g_block_ns[me];
    uint64_t i = 0;
    int64_t t0 = now_ns(), block_start = t0;
    for (auto _ : state) {
        int which = static_cast<int>((i / kBlock) & 1);
        shp_conn *c = nullptr;
        if (shp_acquire(pools[which], &c, -1) != 0) {
            state.SkipWithError("shp_acquire failed");
            break;
        }
        benchmark::DoNotOptimize(dummy_of(c)->id);
        if (shp_release(c) != 0) {
            state.SkipWithError("shp_release failed");
            break;
        }
        if (++i % kBlock == 0) {
            int64_t now = now_ns();
            blocks[which].push_back(static_cast<float>(now - block_start) / kBlock);
            block_start = now;
        }
    }
    int64_t t1 = now_ns();
    g_slot[me].plain_ns = median_of(blocks[0]);
    g_slot[me].hook_ns = median_of(blocks[1]);
    post_slot();
    state.SetItemsProcessed(state.iterations());
    if (me != 0 || state.iterations() == 0) return;
    wait_slots(state.threads());
    double plain = 0, hook = 0;
    for (int t = 0; t < state.threads(); t++) {
        plain += g_slot[t].plain_ns / state.threads();
        hook += g_slot[t].hook_ns / state.threads();
    }
    set_ns_per_op(state, t0, t1);
    state.counters["plain_ns"] = plain;
    state.counters["hook_ns"] = hook;
    state.counters["overhead_ns"] = hook - plain;
}

void teardown_reset_hook(const benchmark::State &state) {
    teardown_pool(state);
    if (g_pool_hook == nullptr) return;
    int rc = shp_pool_destroy(g_pool_hook, 1000000000);
    if (rc != 0) std::fprintf(stderr, "pool_bench: shp_pool_destroy: %s\n", std::strerror(-rc));
    g_pool_hook = nullptr;
}

// =================================================================== steal

// Single-producer single-consumer ring from the thief to the returner; it
// holds every connection at once (capacity > kStealConns), so the thief
// never waits on it.
struct Ring {
    static constexpr unsigned kCap = 128;
    static_assert(kCap > kStealConns, "the ring must hold every connection");
    alignas(64) std::atomic<unsigned> head{0};  // next slot the returner takes
    alignas(64) std::atomic<unsigned> tail{0};  // next slot the thief fills
    alignas(64) shp_conn *slot[kCap];

    void push(shp_conn *c) {
        unsigned t = tail.load(std::memory_order_relaxed);
        slot[t % kCap] = c;
        tail.store(t + 1, std::memory_order_release);
    }
    shp_conn *pop() {
        unsigned h = head.load(std::memory_order_relaxed);
        if (h == tail.load(std::memory_order_acquire)) return nullptr;
        shp_conn *c = slot[h % kCap];
        head.store(h + 1, std::memory_order_release);
        return c;
    }
};
Ring g_ring;
std::atomic<bool> g_steal_abort{false};
std::atomic<uint64_t> g_steal_empty{0};

// A pool of one shard per CPU (the default) whose connections all sit on
// CPU a's shard: a helper thread pinned to CPU a connects them and releases
// them there.  The pool (and its reaper) is made from the unpinned main
// thread, so the reaper is not pinned.
void setup_steal(const benchmark::State &) {
    g_ring.head.store(0);
    g_ring.tail.store(0);
    g_steal_abort.store(false);
    g_steal_empty.store(0);
    if (g_cpu_b < 0) return;  // fewer than 2 CPUs: the benchmark skips
    shp_pool *p = make_pool(0, kStealConns, false, "steal");
    if (p == nullptr) return;
    bool ok = true;
    std::thread helper([p, &ok] {
        shp_conn *held[kStealConns];
        unsigned n = 0;
        ok = pin_self(g_cpu_a, nullptr);
        while (ok && n < kStealConns && shp_acquire(p, &held[n], 0) == 0) n++;
        ok = ok && n == kStealConns;
        for (unsigned i = 0; i < n; i++) shp_release(held[i]);
    });
    helper.join();
    if (!ok) {
        std::fprintf(stderr, "pool_bench: steal setup could not pin or fill the pool\n");
        shp_pool_destroy(p, 0);
        return;
    }
    g_pool = p;
}

// Thread 0 is the thief (pinned to CPU b), thread 1 the returner (CPU a).
// The thief's own shard is empty at every acquire (nothing is ever released
// on CPU b), so each acquire misses its shard and steals from shard a -
// while the returner pushes onto that same shard from the other core, which
// is the contended case a steal meets under load.  The thief asks with
// timeout 0 and retries on -EAGAIN (counted as empty_per_op), so that it
// never sleeps as a waiter and so never receives a handoff instead of
// stealing.
void BM_steal(benchmark::State &state) {
    shp_pool *p = g_pool;
    if (p == nullptr || state.threads() != 2) {
        state.SkipWithError(g_cpu_b < 0 ? "needs 2 CPUs" : "no pool (see stderr)");
        return;
    }
    bool thief = state.thread_index() == 0;
    cpu_set_t old;
    if (!pin_self(thief ? g_cpu_b : g_cpu_a, &old)) {
        state.SkipWithError("could not pin the thread");
        g_steal_abort.store(true);
        return;
    }
    shp_stats before = thief ? stats_now() : shp_stats();
    int64_t steal_ns = 0;  // thief: time in the successful acquire calls
    int64_t t0 = now_ns();
    for (auto _ : state) {
        if (thief) {
            shp_conn *c = nullptr;
            int64_t a = now_ns();
            int rc;
            while ((rc = shp_acquire(p, &c, 0)) == -EAGAIN &&
                   !g_steal_abort.load(std::memory_order_relaxed)) {
                g_steal_empty.fetch_add(1, std::memory_order_relaxed);
                cpu_relax();
                a = now_ns();
            }
            steal_ns += now_ns() - a;
            if (rc != 0) {
                g_steal_abort.store(true);
                state.SkipWithError("shp_acquire failed");
                break;
            }
            benchmark::DoNotOptimize(dummy_of(c)->id);
            g_ring.push(c);
        } else {
            shp_conn *c;
            while ((c = g_ring.pop()) == nullptr) {
                if (g_steal_abort.load(std::memory_order_relaxed)) break;
                cpu_relax();
            }
            if (c == nullptr || shp_release(c) != 0) {
                g_steal_abort.store(true);
                state.SkipWithError("no connection to release, or shp_release failed");
                break;
            }
        }
    }
    int64_t t1 = now_ns();
    unpin_self(&old);
    if (!thief || state.iterations() == 0) return;
    shp_stats after = stats_now();
    double ops = static_cast<double>(state.iterations());
    state.counters["ns_per_op"] = static_cast<double>(t1 - t0) / ops;  // per steal
    state.counters["acquire_ns"] = static_cast<double>(steal_ns) / ops;
    state.counters["steals_per_op"] = static_cast<double>(after.steals - before.steals) / ops;
    state.counters["empty_per_op"] = static_cast<double>(g_steal_empty.load()) / ops;
    state.SetItemsProcessed(state.iterations());
}

// =================================================================== create

void setup_create(const benchmark::State &) { g_pool = make_pool(0, kCreateMax, false, "create"); }

// One op = an acquire that connects (no idle connection anywhere: every
// connection is closed by release_broken) + release_broken, which closes it.
void BM_create(benchmark::State &state) {
    shp_pool *p = g_pool;
    if (p == nullptr) {
        state.SkipWithError("no pool (see stderr)");
        return;
    }
    shp_stats before = state.thread_index() == 0 ? stats_now() : shp_stats();
    int64_t t0 = now_ns();
    for (auto _ : state) {
        shp_conn *c = nullptr;
        int rc = shp_acquire(p, &c, -1);
        if (rc != 0) {
            state.SkipWithError("shp_acquire failed");
            break;
        }
        benchmark::DoNotOptimize(dummy_of(c)->id);
        if (shp_release_broken(c) != 0) {
            state.SkipWithError("shp_release_broken failed");
            break;
        }
    }
    int64_t t1 = now_ns();
    state.SetItemsProcessed(state.iterations());
    if (state.thread_index() != 0 || state.iterations() == 0) return;
    shp_stats after = stats_now();
    set_ns_per_op(state, t0, t1);
    double ops = static_cast<double>(state.iterations()) * state.threads();
    state.counters["created_per_op"] = static_cast<double>(after.creations - before.creations) / ops;
}

// =================================================================== handoff

// range(0) connections, all prefilled; the benchmark runs more threads.
void setup_handoff(const benchmark::State &state) {
    unsigned n = static_cast<unsigned>(state.range(0));
    reset_slots();
    g_pool = make_pool(n, n, false, "handoff");
}

// One op = acquire (waiting: the pool is exhausted), hold the connection
// for kHandoffHoldNs of busy work, stamp, release (which hands it to the
// oldest waiter).  The hold makes the threads overlap.  Without it a run
// has two modes: first one thread runs through thousands of 30 ns pairs
// alone in its time slice while nobody waits, then, once the waiters have
// queued, the FIFO handoff convoy (~3 us/op) sets in and lasts; the figure
// then depends on the run's length, and google-benchmark, extrapolating
// from the fast start, overshoots (measured: 0.013 s for 10^4 ops per
// thread, then 5.4 s for 10^5).  rel_to_acq_ns does not include the hold.
void BM_handoff(benchmark::State &state) {
    shp_pool *p = g_pool;
    int me = state.thread_index();
    if (p == nullptr || state.threads() > kMaxThreads) {
        state.SkipWithError("no pool (see stderr) or too many threads");
        return;
    }
    shp_stats before = me == 0 ? stats_now() : shp_stats();
    double lat_sum = 0, lat_n = 0;
    double csw0 = thread_csw();
    int64_t t0 = now_ns();
    for (auto _ : state) {
        shp_conn *c = nullptr;
        int rc = shp_acquire(p, &c, -1);
        int64_t got = now_ns();
        if (rc != 0) {
            state.SkipWithError("shp_acquire failed");
            break;
        }
        Dummy *d = dummy_of(c);
        // A pass: released by another thread in this run (fresh connections
        // carry released_ns 0).
        if (d->released_by != me && d->released_ns >= t0) {
            lat_sum += static_cast<double>(got - d->released_ns);
            lat_n += 1;
        }
        while (now_ns() - got < kHandoffHoldNs) cpu_relax();
        d->released_by = me;
        d->released_ns = now_ns();
        if (shp_release(c) != 0) {
            state.SkipWithError("shp_release failed");
            break;
        }
    }
    int64_t t1 = now_ns();
    g_slot[me].lat_sum_ns = lat_sum;
    g_slot[me].lat_n = lat_n;
    g_slot[me].csw = thread_csw() - csw0;
    post_slot();
    state.SetItemsProcessed(state.iterations());
    if (me != 0 || state.iterations() == 0) return;
    wait_slots(state.threads());
    shp_stats after = stats_now();
    double sum = 0, n = 0, csw = 0;
    for (int i = 0; i < state.threads(); i++) {
        sum += g_slot[i].lat_sum_ns;
        n += g_slot[i].lat_n;
        csw += g_slot[i].csw;
    }
    double releases = static_cast<double>(state.iterations()) * state.threads();
    set_ns_per_op(state, t0, t1);
    state.counters["rel_to_acq_ns"] = n > 0 ? sum / n : 0;
    state.counters["pass_per_op"] = n / releases;
    state.counters["woken_per_release"] =
        static_cast<double>(after.handoffs - before.handoffs) / releases;
    state.counters["csw_per_op"] = csw / releases;
}

// =================================================================== summary

struct Row {
    bool error = false;
    bool median = false;  // the median of repetitions, not a single run
    double time_ns = 0;   // google-benchmark's Time (wall / ops of all threads)
    std::map<std::string, double> counters;
    double get(const char *k) const {
        auto it = counters.find(k);
        return it == counters.end() ? -1 : it->second;
    }
};

// The row key of a benchmark: its name and arguments, then "@threads"
// (google-benchmark's full name also carries min_time and real_time).
std::string row_key(const std::string &name, int threads) {
    return name + "@" + std::to_string(threads);
}

// The console reporter (colour only on a terminal), also keeping every
// run's counters by row_key: the median of the repetitions where there are
// some, else the single run.
class CollectingReporter : public benchmark::ConsoleReporter {
  public:
    CollectingReporter()
        : benchmark::ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Color : OO_None) {}

    void ReportRuns(const std::vector<Run> &runs) override {
        for (const Run &r : runs) {
            bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
            if (r.run_type != Run::RT_Iteration && !median) continue;
            std::string name = r.run_name.function_name;
            if (!r.run_name.args.empty()) name += "/" + r.run_name.args;
            Row &row = rows_[row_key(name, static_cast<int>(r.threads))];
            if (row.median && !median) continue;  // keep the median of repetitions
            row = Row();
            row.median = median;
            row.error = r.error_occurred;
            row.time_ns = r.GetAdjustedRealTime();  // Unit(kNanosecond)
            for (const auto &kv : r.counters) row.counters[kv.first] = kv.second.value;
        }
        benchmark::ConsoleReporter::ReportRuns(runs);
    }
    const Row *find(const std::string &name, int threads) const {
        auto it = rows_.find(row_key(name, threads));
        return it == rows_.end() || it->second.error ? nullptr : &it->second;
    }

  private:
    std::map<std::string, Row> rows_;
};

void print_summary(const CollectingReporter &rep) {
    std::printf("\npool_bench summary (ns per op as seen by one thread: wall time / its ops)\n");
    std::printf("  %-34s %10s %10s %10s\n", "", "1 thread", "2 threads", "4 threads");
    for (const char *name : {"pair", "create"}) {
        std::printf("  %-34s", name);
        for (int t : {1, 2, 4}) {
            const Row *r = rep.find(name, t);
            if (r != nullptr)
                std::printf(" %10.1f", r->get("ns_per_op"));
            else
                std::printf(" %10s", "-");
        }
        std::printf("\n");
    }
    for (int t : {1, 4})
        if (const Row *r = rep.find("reset_hook", t))
            std::printf("  reset hook at %d thread%s: %.1f ns per pair with it, %.1f without: "
                        "%+.1f ns per release\n",
                        t, t > 1 ? "s" : "", r->get("hook_ns"), r->get("plain_ns"),
                        r->get("overhead_ns"));
    if (const Row *r = rep.find("create", 1))
        std::printf("  create: %.2f connections created per acquire\n", r->get("created_per_op"));
    if (const Row *r = rep.find("steal", 2))
        std::printf("  steal (thief on one CPU, returner on another): %.0f ns per stealing "
                    "acquire, %.0f ns per op of the pair of threads, %.3f steals/op, "
                    "%.3f empty tries/op\n",
                    r->get("acquire_ns"), r->get("ns_per_op"), r->get("steals_per_op"),
                    r->get("empty_per_op"));
    int bad = 0;
    struct {
        const char *name;
        int threads;
    } handoffs[] = {{"handoff/conns:1", 4}, {"handoff/conns:2", 16}};
    for (const auto &h : handoffs) {
        const Row *r = rep.find(h.name, h.threads);
        if (r == nullptr) continue;
        double w = r->get("woken_per_release");
        bool ok = w <= 1.0;
        bad += !ok;
        std::printf("  %s, %d threads: %.0f ns per op, %.0f ns release->acquire over "
                    "%.2f passes/op, %.3f woken/release (<= 1: %s), %.2f context switches/op\n",
                    h.name, h.threads, r->get("ns_per_op"), r->get("rel_to_acq_ns"),
                    r->get("pass_per_op"), w, ok ? "PASS" : "FAIL", r->get("csw_per_op"));
    }
    if (bad) std::printf("WARNING: a release woke more than one waiter\n");
}

void register_benchmarks(bool set_min_time) {
    auto common = [set_min_time](benchmark::internal::Benchmark *b) {
        b->Unit(benchmark::kNanosecond)->UseRealTime()->Teardown(teardown_pool);
        if (set_min_time) b->MinTime(kDefaultMinTime);
        return b;
    };
    common(benchmark::RegisterBenchmark("pair", BM_pair)->Setup(setup_pair))
        ->Threads(1)->Threads(2)->Threads(4);
    common(benchmark::RegisterBenchmark("reset_hook", BM_reset_hook)->Setup(setup_reset_hook))
        ->Teardown(teardown_reset_hook)->Threads(1)->Threads(4);
    common(benchmark::RegisterBenchmark("steal", BM_steal)->Setup(setup_steal))->Threads(2);
    common(benchmark::RegisterBenchmark("create", BM_create)->Setup(setup_create))
        ->Threads(1)->Threads(4);
    common(benchmark::RegisterBenchmark("handoff", BM_handoff)->Setup(setup_handoff))
        ->ArgName("conns")->Arg(1)->Threads(4);
    common(benchmark::RegisterBenchmark("handoff", BM_handoff)->Setup(setup_handoff))
        ->ArgName("conns")->Arg(2)->Threads(16);
}

bool has_flag(int argc, char **argv, const char *name) {
    size_t n = std::strlen(name);
    for (int i = 1; i < argc; i++)
        if (std::strncmp(argv[i], name, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
            return true;
    return false;
}

}  // namespace

int main(int argc, char **argv) {
    bool set_min_time = !has_flag(argc, argv, "--benchmark_min_time");
    bool listing = has_flag(argc, argv, "--benchmark_list_tests");
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    pick_cpus();
    register_benchmarks(set_min_time);
    CollectingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    if (!listing) print_summary(reporter);
    std::fflush(stdout);
    benchmark::Shutdown();
    shp_quiesce();
    return 0;
}
