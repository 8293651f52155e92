// bench_args.h - command-line and unit helpers shared by the google-benchmark
// programs in bench/ (header-only, C++17).
#ifndef SHP_BENCH_ARGS_H
#define SHP_BENCH_ARGS_H

#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

namespace shp_bench {

// Whether args holds --name or --name=value.
inline bool has_flag(const std::vector<std::string> &args, const char *name) {
    size_t n = std::strlen(name);
    for (const std::string &a : args)
        if (a.compare(0, n, name) == 0 && (a.size() == n || a[n] == '='))
            return true;
    return false;
}

// A google-benchmark time in unit u, in nanoseconds.
inline double to_ns(double t, benchmark::TimeUnit u) {
    switch (u) {
    case benchmark::kNanosecond: return t;
    case benchmark::kMicrosecond: return t * 1e3;
    case benchmark::kMillisecond: return t * 1e6;
    case benchmark::kSecond: return t * 1e9;
    }
    return t;
}

// Hands argv0 and args (the google-benchmark flags left after the program's
// own) to benchmark::Initialize.  Returns false, having printed why, if an
// argument is not recognized.  args must outlive the benchmarks' run.
inline bool init_gbench(char *argv0, std::vector<std::string> &args) {
    static std::vector<char *> bargv; // google-benchmark may keep argv
    bargv.assign(1, argv0);
    for (std::string &a : args) bargv.push_back(&a[0]);
    int bargc = static_cast<int>(bargv.size());
    bargv.push_back(nullptr);
    benchmark::Initialize(&bargc, bargv.data());
    return !benchmark::ReportUnrecognizedArguments(bargc, bargv.data());
}

} // namespace shp_bench

#endif
