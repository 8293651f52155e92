// bench/redis_bench.cc - issue 3's Redis benchmark: 16 threads through a
// shardpool pool of 4 Redis connections vs 4 dedicated connections (one
// per thread group), in the same run.
//
// One private redis-server (no password, loopback, persistence off) is
// started with the integration tests' helper (tests/integration/
// redisserver.h).  One operation = one INCR round trip on the thread's own
// key, checked: the reply must be the integer one above the last value
// that thread slot saw (keys are DEL'd first), and at the end the keys'
// values on the server must add up to the INCRs counted here.
//
//   redis/pooled     one shardpool pool over the Redis adapter as shipped
//                    (shp_redis_ops, min = max = 4, otherwise the default
//                    config); each op is shp_acquire -> INCR -> shp_release.
//                    The adapter's reset hook sends RESET on every release
//                    (see include/shardpool/adapters/redis.h), so one op
//                    costs two round trips to the server: INCR and RESET.
//   redis/dedicated  4 raw hiredis contexts (redisConnect); thread t uses
//                    context t / 4 under that context's pthread mutex
//                    (4 groups of 4 threads, one connection per group);
//                    each op is lock -> INCR -> unlock.
//   redis/pooled_noreset  (informational, not part of the target) the same
//                    pool with the reset hook taken out of the ops
//                    (ops.reset = NULL): what the pool itself costs once
//                    the per-release RESET round trip is gone.
//
// All run at 16 threads, real time, through google-benchmark.  To cancel
// drift (CPU frequency, the server's memory, other load) they are not run
// as N repetitions of one then N of the other: each mode is registered once
// per round, and the rounds run A/B/C, A/B/C, ... (default 5 rounds,
// MinTime 0.8 s per slice; whole run ~30 s on 2 cores).  The summary takes
// the median ops/s of each mode over the rounds and prints
//   target redis pool/dedicated >= 0.9: X.XX PASS/FAIL
// with X = median(pooled) / median(dedicated); the median of the per-round
// ratios is printed too, as a check that the rounds agree.
//
// Flags: --shp-rounds=N (1..50), --shp-enforce (exit 1 if the target fails
// or could not be computed), then any google-benchmark flag (MinTime 0.8 is
// set unless --benchmark_min_time is given; --benchmark_repetitions is
// left to the user but the summary then uses the last repetition of each
// slice).

#include <benchmark/benchmark.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
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

constexpr int kThreads = 16;
constexpr unsigned kConns = 4;
constexpr int kGroupSize = kThreads / kConns;  // threads per dedicated conn
constexpr int kDefaultRounds = 5;
constexpr double kDefaultMinTime = 0.8;        // seconds per slice

const char *const kPooled = "redis/pooled";
const char *const kDedicated = "redis/dedicated";
const char *const kNoReset = "redis/pooled_noreset";

rsrv g_srv;
shp_ops g_ops;          // the adapter as shipped
shp_ops g_ops_noreset;  // a copy with reset = NULL (same ctx, not freed twice)
shp_pool *g_pool;
shp_pool *g_pool_noreset;
redisContext *g_ded[kConns];
pthread_mutex_t g_ded_mu[kConns];

// The last value of key shpbench:<slot> seen by thread slot <slot>: the
// next INCR must answer exactly one more.  Slots are never run by two
// threads at once (benchmarks run one after another).
long long g_expect[kThreads];
std::atomic<uint64_t> g_ops_done{0};

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

// ---- the benchmarks ---------------------------------------------------------

// One iteration = acquire, INCR, release.
void BM_pooled(benchmark::State &state, shp_pool *pool) {
    const int slot = state.thread_index();
    char key[32];
    key_of(slot, key, sizeof key);
    uint64_t done = 0;
    for (auto _ : state) {
        shp_conn *c = nullptr;
        int rc = shp_acquire(pool, &c, -1);
        if (rc != 0) {
            std::fprintf(stderr, "shp_acquire: %s\n", std::strerror(-rc));
            state.SkipWithError("acquire failed (see stderr)");
            break;
        }
        redisContext *r = shp_redis_ctx(shp_conn_handle(c));
        bool ok = r != nullptr &&
                  check_incr(static_cast<redisReply *>(
                                 redisCommand(r, "INCR %s", key)),
                             slot, r);
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
    g_ops_done.fetch_add(done, std::memory_order_relaxed);
    // Summed over threads by google-benchmark: items_per_second is the total.
    state.SetItemsProcessed(state.iterations());
}

// One iteration = lock the group's connection, INCR, unlock.
void BM_dedicated(benchmark::State &state) {
    const int slot = state.thread_index();
    const int group = slot / kGroupSize;
    redisContext *r = g_ded[group];
    pthread_mutex_t *mu = &g_ded_mu[group];
    char key[32];
    key_of(slot, key, sizeof key);
    uint64_t done = 0;
    for (auto _ : state) {
        pthread_mutex_lock(mu);
        bool ok = check_incr(static_cast<redisReply *>(
                                 redisCommand(r, "INCR %s", key)),
                             slot, r);
        pthread_mutex_unlock(mu);
        if (!ok) {
            state.SkipWithError("INCR failed (see stderr)");
            break;
        }
        done++;
    }
    g_ops_done.fetch_add(done, std::memory_order_relaxed);
    state.SetItemsProcessed(state.iterations());
}

// ---- setup and teardown -----------------------------------------------------

int make_pool(shp_pool **pool, const shp_ops *ops, const char *name) {
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.min_size = kConns;
    cfg.max_size = kConns;
    cfg.name = name;
    int rc = shp_pool_create(pool, &cfg, ops);
    if (rc != 0) {
        std::fprintf(stderr, "shp_pool_create(%s): %s\n", name, std::strerror(-rc));
        return 1;
    }
    // The prefill normally completes inside create; give a retried prefill
    // up to 2 s so that no slice pays for a connect.
    for (int i = 0; i < 200; i++) {
        shp_stats st;
        if (shp_pool_stats(*pool, &st) == 0 && st.idle >= kConns) return 0;
        usleep(10000);
    }
    std::fprintf(stderr, "%s: the pool did not fill to %u connections\n", name, kConns);
    return 1;
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

    shp_redis_config rc_cfg;
    shp_redis_config_init(&rc_cfg);
    rc_cfg.host = "127.0.0.1";
    rc_cfg.port = g_srv.port;
    rc_cfg.name = "redis_bench";
    if ((rc = shp_redis_ops(&g_ops, &rc_cfg)) != 0) {
        std::fprintf(stderr, "shp_redis_ops: %s\n", std::strerror(-rc));
        return 1;
    }
    g_ops_noreset = g_ops;
    g_ops_noreset.reset = nullptr;
    if (make_pool(&g_pool, &g_ops, "redis_bench") != 0 ||
        make_pool(&g_pool_noreset, &g_ops_noreset, "redis_bench_noreset") != 0)
        return 1;

    // The dedicated connections get the adapter's default command timeout.
    struct timeval tv = {static_cast<time_t>(rc_cfg.command_timeout_ns / 1000000000),
                         static_cast<suseconds_t>(rc_cfg.command_timeout_ns % 1000000000 / 1000)};
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

void print_pool_stats(shp_pool *pool, const char *name) {
    shp_stats st;
    if (pool == nullptr || shp_pool_stats(pool, &st) != 0) return;
    std::printf("%s pool: created %" PRIu64 ", closed %" PRIu64 ", acquired %" PRIu64
                ", handoffs %" PRIu64 ", timeouts %" PRIu64 ", health checks %" PRIu64
                ", connect failures %" PRIu64 "\n",
                name, st.created, st.closed, st.acquired, st.handoffs, st.timeouts,
                st.health_checks, st.connect_failures);
}

void teardown() {
    for (shp_pool **p : {&g_pool, &g_pool_noreset}) {
        if (*p == nullptr) continue;
        int rc = shp_pool_destroy(*p, 1000000000);
        if (rc != 0) std::fprintf(stderr, "shp_pool_destroy: %s\n", std::strerror(-rc));
        *p = nullptr;
    }
    shp_quiesce();
    shp_redis_ops_free(&g_ops);  // g_ops_noreset shares its ctx
    for (unsigned i = 0; i < kConns; i++) {
        if (g_ded[i] != nullptr) {
            redisFree(g_ded[i]);
            g_ded[i] = nullptr;
            pthread_mutex_destroy(&g_ded_mu[i]);
        }
    }
    rsrv_stop(&g_srv);
}

// ---- results ----------------------------------------------------------------

// The console reporter, which also keeps the total ops/s of every slice,
// keyed by the slice's registered name ("redis/pooled/round:3").
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

std::string slice_name(const char *mode, int round) {
    return std::string(mode) + "/round:" + std::to_string(round);
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Prints the table and the target line; returns true if the target passed.
bool print_summary(const CollectingReporter &rep, int rounds) {
    const char *modes[] = {kPooled, kDedicated, kNoReset};
    std::map<std::string, std::vector<double>> rates;
    std::vector<double> round_ratios;
    bool complete = true;
    std::printf("\nSummary: total INCR ops/s of all %d threads, per round "
                "(slices run A/B/C in each round)\n", kThreads);
    std::printf("round | %14s | %14s | %14s | pooled/dedicated\n", "pooled",
                "dedicated", "pooled_noreset");
    for (int r = 1; r <= rounds; r++) {
        std::printf("%5d", r);
        for (const char *m : modes) {
            double v = rep.rate(slice_name(m, r));
            if (v > 0) rates[m].push_back(v);
            else if (m != kNoReset) complete = false;
            if (v > 0) std::printf(" | %14.0f", v);
            else std::printf(" | %14s", "n/a");
        }
        double p = rep.rate(slice_name(kPooled, r)), d = rep.rate(slice_name(kDedicated, r));
        if (p > 0 && d > 0) {
            round_ratios.push_back(p / d);
            std::printf(" | %.3f\n", p / d);
        } else {
            std::printf(" | n/a\n");
        }
    }
    double mp = median(rates[kPooled]), md = median(rates[kDedicated]),
           mn = median(rates[kNoReset]);
    std::printf("median| %14.0f | %14.0f | %14.0f | %.3f (median of the "
                "per-round ratios)\n", mp, md, mn, median(round_ratios));
    if (mn > 0 && md > 0)
        std::printf("informational: pooled_noreset/dedicated = %.2f (the pool "
                    "without the adapter's per-release RESET round trip)\n",
                    mn / md);
    if (!complete || mp <= 0 || md <= 0) {
        std::printf("target redis pool/dedicated >= 0.9: n/a NOT RUN\n");
        return false;
    }
    double ratio = mp / md;
    bool ok = ratio >= 0.9;
    std::printf("target redis pool/dedicated >= 0.9: %.2f %s\n", ratio,
                ok ? "PASS" : "FAIL");
    return ok;
}

// ---- flags ------------------------------------------------------------------

bool has_flag(const std::vector<std::string> &args, const char *name) {
    size_t n = std::strlen(name);
    for (const std::string &a : args)
        if (a.compare(0, n, name) == 0 && (a.size() == n || a[n] == '='))
            return true;
    return false;
}

void register_benchmarks(int rounds, bool set_min_time) {
    for (int r = 1; r <= rounds; r++) {
        benchmark::internal::Benchmark *bs[] = {
            benchmark::RegisterBenchmark(slice_name(kPooled, r).c_str(), BM_pooled, g_pool),
            benchmark::RegisterBenchmark(slice_name(kDedicated, r).c_str(), BM_dedicated),
            benchmark::RegisterBenchmark(slice_name(kNoReset, r).c_str(), BM_pooled,
                                         g_pool_noreset),
        };
        for (benchmark::internal::Benchmark *b : bs) {
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
    std::vector<char *> bargv;
    bargv.push_back(argv[0]);
    for (std::string &a : args) bargv.push_back(&a[0]);
    int bargc = static_cast<int>(bargv.size());
    bargv.push_back(nullptr);
    benchmark::Initialize(&bargc, bargv.data());
    if (benchmark::ReportUnrecognizedArguments(bargc, bargv.data())) return 2;

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
        ok = print_summary(reporter, rounds) && checked;
        print_pool_stats(g_pool, "pooled");
        print_pool_stats(g_pool_noreset, "pooled_noreset");
    }
    std::fflush(stdout);
    benchmark::Shutdown();
    teardown();
    return enforce && !ok ? 1 : 0;
}
