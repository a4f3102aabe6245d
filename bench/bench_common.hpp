// Pieces shared by the GEMM benchmarks: the host, seeded operands in the problem's input type,
// a quick best-of timing for candidate sweeps, and a reporter that keeps GFLOP/s per run name
// for the ratio tables printed at the end.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tune/bf16.hpp"
#include "tune/buffer.hpp"
#include "tune/device.hpp"
#include "tune/kernel.hpp"
#include "tune/problem.hpp"
#include "tune/templates/cpu_gemm.hpp"

namespace tune::bench {

inline const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

// The GEMM templates, made once for the host.
inline const Template& own_gemm() {
    static const auto t = make_cpu_gemm_template(host());
    return *t;
}
inline const Template& openblas_gemm() {
    static const auto t = make_openblas_gemm_template(host());
    return *t;
}
inline const Template& onednn_gemm() {
    static const auto t = make_onednn_gemm_template(host());
    return *t;
}

// Seeded A and B in the problem's input type (f32 or bf16); C is f32.
struct Operands {
    AlignedBuffer a, b, c;
    std::vector<const void*> in;
    std::vector<void*> out;
    explicit Operands(const Problem& p) {
        const GemmDims d = gemm_dims(p);
        const bool bf = p.dtype == DType::bf16;
        const std::size_t elem = bf ? sizeof(bf16) : sizeof(float);
        a = AlignedBuffer(static_cast<std::size_t>(d.batch * d.m * d.k) * elem);
        b = AlignedBuffer(static_cast<std::size_t>(d.batch * d.k * d.n) * elem);
        c = AlignedBuffer(static_cast<std::size_t>(d.batch * d.m * d.n) * sizeof(float));
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> dist(-1, 1);
        for (AlignedBuffer* buf : {&a, &b})
            for (std::size_t i = 0; i < buf->bytes() / elem; ++i) {
                if (bf) buf->as<bf16>()[i] = to_bf16(dist(rng));
                else buf->as<float>()[i] = dist(rng);
            }
        in = {a.data(), b.data()};
        out = {c.data()};
    }
    OpArgs args() { return {in, out}; }
};

// Best of `reps` calls after one warm-up: a quick estimate for picking among candidates before
// the timed runs (the benchmark framework times the picks properly).
template <class Ops = Operands>
double seconds_of(const Kernel& k, Ops& o, int reps = 2) {
    k.run(o.args());
    double best = 1e30;
    for (int rep = 0; rep < reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        k.run(o.args());
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

inline void set_gflops(benchmark::State& state, const Problem& p) {
    state.counters["GFLOP/s"] = benchmark::Counter(flop_count(p) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Console output plus GFLOP/s per run name (without the /real_time suffix); with --benchmark_repetitions the median aggregate
// replaces the single runs.
class GflopsReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            auto it = r.counters.find("GFLOP/s");
            if (it == r.counters.end()) continue;
            std::string name = r.run_name.str();
            if (const auto pos = name.rfind("/real_time"); pos != std::string::npos) name.erase(pos);
            if ((r.run_type == Run::RT_Iteration && !gflops.count(name)) ||
                (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median"))
                gflops[name] = it->second;
        }
    }
    double get(const std::string& name) const {
        auto it = gflops.find(name);
        return it == gflops.end() ? 0.0 : it->second;
    }
    std::map<std::string, double> gflops;
};

}  // namespace tune::bench
