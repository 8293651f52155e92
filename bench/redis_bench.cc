// bench/redis_bench.cc - issue 3's Redis benchmark: 16 threads through a
// shardpool pool of 4 Redis connections vs 4 dedicated connections (one
// per thread group), in the same run.
//
// One private redis-server (no password, loopback, persistence off) is
// started with the adapter tests' helper (tests/adapters/
// redisserver.h).  One operation = one INCR round trip on the thread's own
// key, checked: the reply must be the integer one above the last value
// that thread slot saw (keys are DEL'd first), and at the end the keys'
// values on the server must add up to the INCRs counted here.
//
//   redis/pooled_tracked  a shardpool pool over the Redis adapter with
//                    cleanup = SHP_REDIS_CLEANUP_TRACKED; each op is
//                    shp_acquire -> shp_redis_command(INCR) -> shp_release.
//                    INCR leaves the connection clean, so a release does no
//                    I/O: one round trip per op.  Strict FIFO handoff at
//                    max_size (handoff_after_ns = 0, the default).
//   redis/pooled_always   the same with cleanup = SHP_REDIS_CLEANUP_ALWAYS
//                    (the default): every release sends RESET, collected
//                    when the connection is next handed out, so an op
//                    costs two round trips under saturation.
//   redis/pooled_tracked_ho  the tracked pool with handoff_after_ns = 10 ms:
//                    a release with waiters pushes its connection and wakes
//                    the oldest waiter to compete for it (the releaser
//                    usually takes it straight back), handing it over
//                    directly only to a waiter that has waited 10 ms.  This
//                    is how a user would configure a pool that runs
//                    saturated, and the target is measured on this mode.
//   redis/dedicated  4 raw hiredis contexts (redisConnect); thread t uses
//                    context t / 4 under that context's pthread mutex
//                    (4 groups of 4 threads, one connection per group);
//                    each op is lock -> INCR -> unlock.  Same command, same
//                    reply check, same command timeout, no pipelining.
//   redis/dedicated_fifo  (informational) the same 4 contexts behind a
//                    strict FIFO lock: an unlock hands the context to the
//                    longest waiter, which yields 8 times and then sleeps on
//                    a futex - the default hand-over policy of a shardpool
//                    pool at max_size (lib/acquire.c wait_turn, lib/idle.c handoff).
//                    It shows what that policy costs without any pool code.
//
// All pools: min_size = max_size = 4 (prefilled, so no slice pays for a
// connect); everything else but handoff_after_ns is shp_config_init's
// default (one shard per CPU, acquire timeout 5 s - never reached here,
// validate_idle_ns 500 ms - a connection is never idle that long under
// this load).  The dedicated
// contexts get the adapter's default command timeout (5 s).
//
// Diagnostic: the mean "connection gap" of each mode - the time from a
// release (unlock) of a connection to the moment the next borrower has it
// in hand (acquire or lock returned, prepare included), measured on every
// op with CLOCK_MONOTONIC.  While a connection is in that gap nobody can
// use it, so with every connection busy, throughput ~ 4 / (round trip +
// client work + gap).  A pthread mutex lets the unlocking thread take the
// lock straight back (the gap is a few us); a FIFO hand-over waits for the
// woken waiter to be scheduled.
//
// The modes run at 16 threads, real time, through google-benchmark.  To
// cancel drift (CPU frequency, other load on the machine) they are not run
// as N repetitions of one then N of another: each mode runs once per round,
// the order rotating by one mode each round (default 7 rounds, MinTime 0.8 s
// per slice: about 65 s on 2 cores).  The summary takes the median ops/s of
// each mode over the rounds, prints every pool's ratio to dedicated, and
//   target redis pool(tracked, handoff_after_ns = 10 ms)/dedicated >= 0.9:
//   X.XX PASS/FAIL
// with X = median(pooled_tracked_ho) / median(dedicated); the medians of the
// per-round ratios are printed too, as a check that the rounds agree.
//
// Flags: --shp-rounds=N (1..50), --shp-enforce (exit 1 if the target fails
// or could not be computed), then any google-benchmark flag (MinTime 0.8 is
// set unless --benchmark_min_time is given; with --benchmark_repetitions
// the summary uses the last repetition of each slice).

#include <benchmark/benchmark.h>

#include "bench_args.h"

#include <hiredis/hiredis.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "shardpool/adapters/redis.h"
#include "shardpool/pool.h"

extern "C" {
#include "redisserver.h"
}

namespace {

using shp_bench::has_flag;
using shp_bench::init_gbench;
using shp_bench::to_ns;

constexpr int kThreads = 16;
constexpr unsigned kConns = 4;
constexpr int kGroupSize = kThreads / kConns;  // threads per dedicated conn
constexpr int kDefaultRounds = 7;
constexpr double kDefaultMinTime = 0.8;        // seconds per slice
constexpr int kFifoYields = 8;                 // as lib/acquire.c's wait_turn

// The pool modes come first (they index g_pool).
enum Mode { kTracked, kAlways, kHandoff, kDedicated, kFifo, kModes };
constexpr int kPools = kDedicated;
constexpr int64_t kHandoffAfterNs = 10 * 1000000LL;  // kHandoff's handoff_after_ns
const char *const kModeName[kModes] = {"redis/pooled_tracked", "redis/pooled_always",
                                       "redis/pooled_tracked_ho",
                                       "redis/dedicated", "redis/dedicated_fifo"};
const char *const kModeShort[kModes] = {"pool tracked", "pool always", "tracked+ho", "dedicated",
                                        "dedic. fifo"};

int64_t now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---- a strict FIFO lock (dedicated_fifo) --------------------------------------

// An unlock with waiters hands the lock to the oldest one (it stays held);
// a waiter yields kFifoYields times, then sleeps on its own futex word.
class FifoLock {
  public:
    FifoLock() { pthread_mutex_init(&mu_, nullptr); }
    ~FifoLock() { pthread_mutex_destroy(&mu_); }
    void lock() {
        Waiter w;
        pthread_mutex_lock(&mu_);
        if (!held_) {
            held_ = true;
            pthread_mutex_unlock(&mu_);
            return;
        }
        if (tail_) tail_->next = &w;
        else head_ = &w;
        tail_ = &w;
        pthread_mutex_unlock(&mu_);
        for (int i = 0; i < kFifoYields && w.word.load(std::memory_order_acquire) == kWaiting; i++)
            sched_yield();
        uint32_t v = kWaiting;
        if (w.word.compare_exchange_strong(v, kSleeping, std::memory_order_acq_rel))
            while (w.word.load(std::memory_order_acquire) == kSleeping)
                syscall(SYS_futex, reinterpret_cast<uint32_t *>(&w.word), FUTEX_WAIT_PRIVATE,
                        kSleeping, nullptr, nullptr, 0);
    }
    void unlock() {
        pthread_mutex_lock(&mu_);
        Waiter *w = head_;
        if (w == nullptr) {
            held_ = false;
            pthread_mutex_unlock(&mu_);
            return;
        }
        head_ = w->next;
        if (head_ == nullptr) tail_ = nullptr;
        // The waiter may return as soon as it sees kGranted: only the word's
        // address is used after the exchange (a stray wake is harmless).
        uint32_t *addr = reinterpret_cast<uint32_t *>(&w->word);
        if (w->word.exchange(kGranted, std::memory_order_acq_rel) == kSleeping)
            syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
        pthread_mutex_unlock(&mu_);
    }

  private:
    static constexpr uint32_t kWaiting = 0, kSleeping = 1, kGranted = 2;
    struct Waiter {
        Waiter *next = nullptr;
        std::atomic<uint32_t> word{kWaiting};
    };
    pthread_mutex_t mu_;
    bool held_ = false;
    Waiter *head_ = nullptr, *tail_ = nullptr;
};

// ---- state --------------------------------------------------------------------

rsrv g_srv;
shp_ops g_ops_tracked, g_ops_always, g_ops_tracked_ho;
shp_pool *g_pool[kPools];  // [kTracked], [kAlways], [kHandoff]
redisContext *g_ded[kConns];
pthread_mutex_t g_ded_mu[kConns];
FifoLock g_ded_fifo[kConns];

// The pools' connection handles (filled at setup), to find a connection's
// gap slot; a handle not found (a replaced connection) is not measured.
void *g_handles[kPools][kConns];

// The last value of key shpbench:<slot> seen by thread slot <slot>: the
// next INCR must answer exactly one more.  Slots are never run by two
// threads at once (benchmarks run one after another).
long long g_expect[kThreads];
std::atomic<uint64_t> g_ops_done{0};

// Connection gap: per connection, when it was last released (0: not in
// this run); per mode, the sum and count of the gaps seen.
std::atomic<int64_t> g_released_at[kConns];
std::atomic<int64_t> g_gap_ns[kModes];
std::atomic<int64_t> g_gap_n[kModes];

void key_of(int slot, char *buf, size_t n) {
    std::snprintf(buf, n, "shpbench:%d", slot);
}

// Checks one INCR reply against the slot's expected value; frees it.
// Returns true if it is the integer expected (and advances the slot).
bool check_incr(redisReply *rep, int slot, const redisContext *c) {
    if (rep == nullptr) {
        std::fprintf(stderr, "INCR failed: %s\n",
                     c != nullptr && c->err ? c->errstr : "no reply");
        return false;
    }
    bool ok = rep->type == REDIS_REPLY_INTEGER &&
              rep->integer == g_expect[slot] + 1;
    if (ok)
        g_expect[slot] = rep->integer;
    else
        std::fprintf(stderr, "INCR slot %d: unexpected reply (type %d, "
                             "integer %lld, expected %lld)\n",
                     slot, rep->type, rep->integer, g_expect[slot] + 1);
    freeReplyObject(rep);
    return ok;
}

// Per-thread gap accounting, added to the mode's totals at the end.
struct GapSum {
    int64_t ns = 0, n = 0;
    // The connection in slot k was just taken.
    void taken(int k) {
        if (k < 0) return;
        int64_t at = g_released_at[k].load(std::memory_order_relaxed);
        if (at > 0) {
            ns += now_ns() - at;
            n++;
        }
    }
    void flush(Mode m) {
        g_gap_ns[m].fetch_add(ns, std::memory_order_relaxed);
        g_gap_n[m].fetch_add(n, std::memory_order_relaxed);
    }
};

void released(int k) {
    if (k >= 0) g_released_at[k].store(now_ns(), std::memory_order_relaxed);
}

// Run start, on thread 0 before the loop (google-benchmark starts the loop
// of every thread together, after this).
void start_run(const benchmark::State &state) {
    if (state.thread_index() != 0) return;
    for (auto &r : g_released_at) r.store(0, std::memory_order_relaxed);
}

// ---- the benchmarks -----------------------------------------------------------

// One iteration = acquire, INCR (through the adapter's wrapper), release.
void BM_pooled(benchmark::State &state, Mode mode) {
    shp_pool *pool = g_pool[mode];
    const int slot = state.thread_index();
    char key[32];
    key_of(slot, key, sizeof key);
    uint64_t done = 0;
    GapSum gap;
    start_run(state);
    for (auto _ : state) {
        shp_conn *c = nullptr;
        int rc = shp_acquire(pool, &c, -1);
        if (rc != 0) {
            std::fprintf(stderr, "shp_acquire: %s\n", std::strerror(-rc));
            state.SkipWithError("acquire failed (see stderr)");
            break;
        }
        void *h = shp_conn_handle(c);
        int k = -1;
        for (unsigned i = 0; i < kConns; i++)
            if (g_handles[mode][i] == h) k = static_cast<int>(i);
        gap.taken(k);
        bool ok = check_incr(shp_redis_command(c, "INCR %s", key), slot,
                             shp_redis_ctx(h));
        released(k);
        rc = ok ? shp_release(c) : shp_release_broken(c);
        if (!ok) {
            state.SkipWithError("INCR failed (see stderr)");
            break;
        }
        if (rc != 0) {
            std::fprintf(stderr, "shp_release: %s\n", std::strerror(-rc));
            state.SkipWithError("release failed (see stderr)");
            break;
        }
        done++;
    }
    gap.flush(mode);
    g_ops_done.fetch_add(done, std::memory_order_relaxed);
    // Summed over threads by google-benchmark: items_per_second is the total.
    state.SetItemsProcessed(state.iterations());
}

// One iteration = lock the group's connection, INCR, unlock.
template <Mode M>
void BM_dedicated(benchmark::State &state) {
    const int slot = state.thread_index();
    const int group = slot / kGroupSize;
    redisContext *r = g_ded[group];
    char key[32];
    key_of(slot, key, sizeof key);
    uint64_t done = 0;
    GapSum gap;
    start_run(state);
    for (auto _ : state) {
        if (M == kFifo) g_ded_fifo[group].lock();
        else pthread_mutex_lock(&g_ded_mu[group]);
        gap.taken(group);
        bool ok = check_incr(static_cast<redisReply *>(redisCommand(r, "INCR %s", key)),
                             slot, r);
        released(group);
        if (M == kFifo) g_ded_fifo[group].unlock();
        else pthread_mutex_unlock(&g_ded_mu[group]);
        if (!ok) {
            state.SkipWithError("INCR failed (see stderr)");
            break;
        }
        done++;
    }
    gap.flush(M);
    g_ops_done.fetch_add(done, std::memory_order_relaxed);
    state.SetItemsProcessed(state.iterations());
}

// ---- setup and teardown -------------------------------------------------------

int make_pool(shp_pool **pool, const shp_ops *ops, const char *name, void *handles[kConns],
              int64_t handoff_after_ns) {
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = kConns;
    cfg.max_size = kConns;
    cfg.name = name;
    cfg.handoff_after_ns = handoff_after_ns;
    int rc = shp_pool_create(pool, &cfg, ops);
    if (rc != 0) {
        std::fprintf(stderr, "shp_pool_create(%s): %s\n", name, std::strerror(-rc));
        return 1;
    }
    // Borrow all 4 (connecting those a failed prefill left out) to learn
    // their handles, then give them back.
    shp_conn *c[kConns];
    for (unsigned i = 0; i < kConns; i++) {
        if ((rc = shp_acquire(*pool, &c[i], 2000000000)) != 0) {
            std::fprintf(stderr, "%s: acquire %u of %u: %s\n", name, i + 1, kConns,
                         std::strerror(-rc));
            while (i-- > 0) shp_release(c[i]);
            return 1;
        }
        handles[i] = shp_conn_handle(c[i]);
    }
    for (unsigned i = 0; i < kConns; i++) shp_release(c[i]);
    return 0;
}

int make_ops(shp_ops *ops, shp_redis_cleanup cleanup, const char *name) {
    shp_redis_config rc;
    shp_redis_config_init(&rc);
    rc.host = "127.0.0.1";
    rc.port = g_srv.port;
    rc.name = name;
    rc.cleanup = cleanup;
    int err = shp_redis_ops(ops, &rc);
    if (err != 0) std::fprintf(stderr, "shp_redis_ops: %s\n", std::strerror(-err));
    return err != 0;
}

int setup() {
    int rc = rsrv_start(&g_srv, nullptr);
    if (rc != 0) {
        std::fprintf(stderr, "rsrv_start: %s (is redis-server installed? "
                             "`make deps`)\n", std::strerror(-rc));
        return 1;
    }
    std::printf("redis-server pid %d on 127.0.0.1:%d\n", static_cast<int>(g_srv.pid),
                g_srv.port);
    // The server's RESET count starts at 0 before the pools exist.
    {
        redisContext *a = redisConnect("127.0.0.1", g_srv.port);
        auto *rep = a != nullptr && !a->err
                        ? static_cast<redisReply *>(redisCommand(a, "CONFIG RESETSTAT"))
                        : nullptr;
        if (rep == nullptr) {
            std::fprintf(stderr, "CONFIG RESETSTAT: %s\n", a ? a->errstr : "out of memory");
            if (a) redisFree(a);
            return 1;
        }
        freeReplyObject(rep);
        redisFree(a);
    }
    if (make_ops(&g_ops_tracked, SHP_REDIS_CLEANUP_TRACKED, "redis_bench_tracked") ||
        make_ops(&g_ops_always, SHP_REDIS_CLEANUP_ALWAYS, "redis_bench_always") ||
        make_ops(&g_ops_tracked_ho, SHP_REDIS_CLEANUP_TRACKED, "redis_bench_tracked_ho") ||
        make_pool(&g_pool[kTracked], &g_ops_tracked, "redis_bench_tracked", g_handles[kTracked],
                  0) ||
        make_pool(&g_pool[kAlways], &g_ops_always, "redis_bench_always", g_handles[kAlways], 0) ||
        make_pool(&g_pool[kHandoff], &g_ops_tracked_ho, "redis_bench_tracked_ho",
                  g_handles[kHandoff], kHandoffAfterNs))
        return 1;

    // The dedicated connections get the adapter's default command timeout.
    shp_redis_config defaults;
    shp_redis_config_init(&defaults);
    struct timeval tv = {static_cast<time_t>(defaults.command_timeout_ns / 1000000000),
                         static_cast<suseconds_t>(defaults.command_timeout_ns % 1000000000 / 1000)};
    for (unsigned i = 0; i < kConns; i++) {
        pthread_mutex_init(&g_ded_mu[i], nullptr);
        g_ded[i] = redisConnect("127.0.0.1", g_srv.port);
        if (g_ded[i] == nullptr || g_ded[i]->err) {
            std::fprintf(stderr, "redisConnect: %s\n",
                         g_ded[i] ? g_ded[i]->errstr : "out of memory");
            return 1;
        }
        if (redisSetTimeout(g_ded[i], tv) != REDIS_OK) {
            std::fprintf(stderr, "redisSetTimeout: %s\n", g_ded[i]->errstr);
            return 1;
        }
    }
    // Fresh keys: every slot starts at 0.
    for (int s = 0; s < kThreads; s++) {
        char key[32];
        key_of(s, key, sizeof key);
        auto *rep = static_cast<redisReply *>(redisCommand(g_ded[0], "DEL %s", key));
        if (rep == nullptr) {
            std::fprintf(stderr, "DEL: %s\n", g_ded[0]->errstr);
            return 1;
        }
        freeReplyObject(rep);
        g_expect[s] = 0;
    }
    return 0;
}

// Adds up the keys on the server; returns true if the sum is the number of
// INCRs that succeeded here (and each key is its slot's last value).
bool verify_totals() {
    if (g_ded[0] == nullptr) return false;
    long long sum = 0;
    bool ok = true;
    for (int s = 0; s < kThreads; s++) {
        char key[32];
        key_of(s, key, sizeof key);
        auto *rep = static_cast<redisReply *>(redisCommand(g_ded[0], "GET %s", key));
        if (rep == nullptr) {
            std::fprintf(stderr, "GET: %s\n", g_ded[0]->errstr);
            return false;
        }
        long long v = rep->type == REDIS_REPLY_STRING ? std::atoll(rep->str) : 0;
        if (v != g_expect[s]) ok = false;
        sum += v;
        freeReplyObject(rep);
    }
    uint64_t done = g_ops_done.load();
    ok = ok && sum >= 0 && static_cast<uint64_t>(sum) == done;
    std::printf("check: %" PRIu64 " INCRs counted, keys on the server add up to "
                "%lld: %s\n", done, sum, ok ? "OK" : "MISMATCH");
    return ok;
}

// RESETs the server ran since setup (INFO commandstats), or -1.
long long server_resets() {
    auto *rep = static_cast<redisReply *>(redisCommand(g_ded[0], "INFO commandstats"));
    if (rep == nullptr || rep->type != REDIS_REPLY_STRING) {
        if (rep) freeReplyObject(rep);
        return -1;
    }
    const char *p = std::strstr(rep->str, "cmdstat_reset:calls=");
    long long n = p ? std::atoll(p + std::strlen("cmdstat_reset:calls=")) : 0;
    freeReplyObject(rep);
    return n;
}

// The pools' counters, and where the server's RESETs came from: every
// release of the ALWAYS pool sends one (the warm-up borrows at setup
// included), a clean release of a TRACKED pool none.  The ALWAYS pool's
// connections are borrowed while the server is asked, so that every RESET
// sent has been answered (collected by prepare), hence counted.
bool print_pool_stats() {
    shp_stats st[kPools] = {};
    shp_conn *held[kConns] = {};
    unsigned nheld = 0;
    for (int m = 0; m < kPools; m++) {
        if (g_pool[m] == nullptr || shp_pool_stats(g_pool[m], &st[m]) != 0) return false;
        std::printf("%s pool: created %" PRIu64 ", closed %" PRIu64 ", acquired %" PRIu64
                    ", handoffs %" PRIu64 " (%.0f%% of acquires), timeouts %" PRIu64
                    ", health checks %" PRIu64 "\n",
                    kModeShort[m], st[m].creations, st[m].closed, st[m].acquisitions, st[m].handoffs,
                    st[m].acquisitions ? 100.0 * static_cast<double>(st[m].handoffs) /
                                         static_cast<double>(st[m].acquisitions)
                                   : 0.0,
                    st[m].timeouts, st[m].health_checks);
    }
    while (nheld < kConns && shp_acquire(g_pool[kAlways], &held[nheld], 0) == 0) nheld++;
    long long resets = server_resets();
    for (unsigned i = 0; i < nheld; i++) shp_release(held[i]);
    bool ok = nheld == kConns && resets >= 0 &&
              static_cast<uint64_t>(resets) == st[kAlways].acquisitions;
    std::printf("check: the server ran %lld RESETs, the always pool released %" PRIu64
                " times, so the tracked pools' %" PRIu64 " releases sent %lld: %s\n",
                resets, st[kAlways].acquisitions, st[kTracked].acquisitions + st[kHandoff].acquisitions,
                resets - static_cast<long long>(st[kAlways].acquisitions),
                ok ? "OK" : "MISMATCH");
    return ok;
}

void teardown() {
    for (shp_pool *&p : g_pool) {
        if (p == nullptr) continue;
        int rc = shp_pool_destroy(p, 1000000000);
        if (rc != 0) std::fprintf(stderr, "shp_pool_destroy: %s\n", std::strerror(-rc));
        p = nullptr;
    }
    shp_quiesce();
    shp_redis_ops_free(&g_ops_tracked);
    shp_redis_ops_free(&g_ops_always);
    shp_redis_ops_free(&g_ops_tracked_ho);
    for (unsigned i = 0; i < kConns; i++) {
        if (g_ded[i] != nullptr) {
            redisFree(g_ded[i]);
            g_ded[i] = nullptr;
            pthread_mutex_destroy(&g_ded_mu[i]);
        }
    }
    rsrv_stop(&g_srv);
}

// ---- results ------------------------------------------------------------------

// The console reporter, which also keeps the total ops/s of every slice,
// keyed by the slice's registered name ("redis/dedicated/round:3").
class CollectingReporter : public benchmark::ConsoleReporter {
  public:
    // Colour only on a terminal (the log of `make bench-redis` stays plain).
    CollectingReporter()
        : benchmark::ConsoleReporter(isatty(STDOUT_FILENO)
                                         ? OO_Defaults
                                         : OO_Tabular) {}
    void ReportRuns(const std::vector<Run> &runs) override {
        for (const Run &r : runs) {
            if (r.run_type != Run::RT_Iteration) continue;
            double rate = 0;
            if (!r.error_occurred) {
                auto it = r.counters.find("items_per_second");
                if (it != r.counters.end()) rate = it->second.value;
            }
            rates_[r.run_name.function_name] = rate;
        }
        benchmark::ConsoleReporter::ReportRuns(runs);
    }
    // Total ops/s of a slice; 0 if it failed or did not run.
    double rate(const std::string &slice) const {
        auto it = rates_.find(slice);
        return it == rates_.end() ? 0 : it->second;
    }

  private:
    std::map<std::string, double> rates_;
};

std::string slice_name(int mode, int round) {
    return std::string(kModeName[mode]) + "/round:" + std::to_string(round);
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Prints the table, every pool's ratio to dedicated and the target line
// (on kHandoff); returns true if the target passed.
bool print_summary(const CollectingReporter &rep, int rounds) {
    std::vector<double> rates[kModes], ratios[kPools];
    bool complete = true;
    std::printf("\nSummary: total INCR ops/s of all %d threads through %u connections, per "
                "round (the order of the modes rotates each round)\n", kThreads, kConns);
    std::printf("round");
    for (const char *m : kModeShort) std::printf(" | %12s", m);
    for (int m = 0; m < kPools; m++) std::printf(" | %s/ded", kModeShort[m]);
    std::printf("\n");
    for (int r = 1; r <= rounds; r++) {
        std::printf("%5d", r);
        double v[kModes];
        for (int m = 0; m < kModes; m++) {
            v[m] = rep.rate(slice_name(m, r));
            if (v[m] > 0) {
                rates[m].push_back(v[m]);
                std::printf(" | %12.0f", v[m]);
            } else {
                if (m != kFifo) complete = false;
                std::printf(" | %12s", "n/a");
            }
        }
        for (int m = 0; m < kPools; m++) {
            int w = static_cast<int>(std::strlen(kModeShort[m])) + 4;
            if (v[kDedicated] > 0 && v[m] > 0) {
                ratios[m].push_back(v[m] / v[kDedicated]);
                std::printf(" | %*.3f", w, ratios[m].back());
            } else {
                std::printf(" | %*s", w, "n/a");
            }
        }
        std::printf("\n");
    }
    double med[kModes];
    std::printf("  med");
    for (int m = 0; m < kModes; m++) {
        med[m] = median(rates[m]);
        std::printf(" | %12.0f", med[m]);
    }
    for (int m = 0; m < kPools; m++)
        std::printf(" | %*.3f", static_cast<int>(std::strlen(kModeShort[m])) + 4,
                    median(ratios[m]));
    std::printf("  (ratios: medians of the per-round ratios)\n");
    std::printf("connection gap, release to next borrower holding it, mean us:");
    for (int m = 0; m < kModes; m++) {
        int64_t n = g_gap_n[m].load();
        if (n > 0)
            std::printf(" %s %.1f%s", kModeShort[m],
                        static_cast<double>(g_gap_ns[m].load()) / static_cast<double>(n) / 1e3,
                        m + 1 < kModes ? ";" : "\n");
        else
            std::printf(" %s n/a%s", kModeShort[m], m + 1 < kModes ? ";" : "\n");
    }
    if (med[kFifo] > 0 && med[kDedicated] > 0)
        std::printf("informational: dedicated_fifo/dedicated = %.2f (the same 4 connections "
                    "handed over in strict FIFO order, as the pool does at max_size by "
                    "default)\n",
                    med[kFifo] / med[kDedicated]);
    const char *const config[kPools] = {
        "cleanup TRACKED, strict FIFO handoff (handoff_after_ns = 0, the default)",
        "cleanup ALWAYS (the adapter's default: RESET on every release), strict FIFO handoff",
        "cleanup TRACKED, handoff_after_ns = 10 ms"};
    for (int m = 0; m < kPools; m++)
        if (med[m] > 0 && med[kDedicated] > 0)
            std::printf("pool(%s)/dedicated = %.2f [%s]\n", kModeShort[m],
                        med[m] / med[kDedicated], config[m]);
    std::printf("target: the pool configured as a user would for a saturated pool - "
                "%s, min = max = %u, the rest default\n", config[kHandoff], kConns);
    if (!complete || med[kHandoff] <= 0 || med[kDedicated] <= 0) {
        std::printf("target redis pool(tracked, handoff_after_ns = 10 ms)/dedicated >= 0.9: "
                    "n/a NOT RUN\n");
        return false;
    }
    double ratio = med[kHandoff] / med[kDedicated];
    bool ok = ratio >= 0.9;
    std::printf("target redis pool(tracked, handoff_after_ns = 10 ms)/dedicated >= 0.9: "
                "%.2f %s\n", ratio, ok ? "PASS" : "FAIL");
    return ok;
}

// ---- flags --------------------------------------------------------------------

void register_benchmarks(int rounds, bool set_min_time) {
    for (int r = 1; r <= rounds; r++) {
        for (int i = 0; i < kModes; i++) {
            int m = (i + r - 1) % kModes;  // rotate the order each round
            std::string name = slice_name(m, r);
            benchmark::internal::Benchmark *b =
                m < kPools ? benchmark::RegisterBenchmark(name.c_str(), BM_pooled,
                                                          static_cast<Mode>(m))
                : m == kDedicated ? benchmark::RegisterBenchmark(name.c_str(),
                                                                 BM_dedicated<kDedicated>)
                                  : benchmark::RegisterBenchmark(name.c_str(), BM_dedicated<kFifo>);
            b->Unit(benchmark::kMicrosecond)->UseRealTime()->Threads(kThreads);
            if (set_min_time) b->MinTime(kDefaultMinTime);
        }
    }
}

}  // namespace

int main(int argc, char **argv) {
    // hiredis writes with write(2): a server that went away must not kill us.
    signal(SIGPIPE, SIG_IGN);

    bool enforce = false;
    int rounds = kDefaultRounds;
    std::vector<std::string> args;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--shp-enforce") == 0) {
            enforce = true;
        } else if (std::strncmp(argv[i], "--shp-rounds=", 13) == 0) {
            rounds = std::atoi(argv[i] + 13);
            if (rounds < 1 || rounds > 50) {
                std::fprintf(stderr, "redis_bench: --shp-rounds must be 1..50\n");
                return 2;
            }
        } else {
            args.emplace_back(argv[i]);
        }
    }
    if (has_flag(args, "--help"))
        std::printf("redis_bench: also --shp-rounds=N (default %d), --shp-enforce "
                    "(exit 1 unless the target passes); google-benchmark flags "
                    "follow.\n", kDefaultRounds);
    bool set_min_time = !has_flag(args, "--benchmark_min_time");
    if (!init_gbench(argv[0], args)) return 2;

    if (setup() != 0) {
        teardown();
        return 1;
    }
    register_benchmarks(rounds, set_min_time);
    CollectingReporter reporter;
    size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
    bool ok = false;
    if (ran > 0) {
        bool checked = verify_totals();
        bool resets_ok = print_pool_stats();
        ok = print_summary(reporter, rounds) && checked && resets_ok;
    }
    std::fflush(stdout);
    benchmark::Shutdown();
    teardown();
    return enforce && !ok ? 1 : 0;
}
