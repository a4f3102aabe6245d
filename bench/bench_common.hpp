// Pieces shared by the GEMM benchmarks: the host, seeded operands in the problem's input type,
// the candidate sweep of cpu.gemm.blocked and the tuned pick (the Tuner's protocol, vendors
// included), a quick best-of timing, and a reporter that keeps GFLOP/s per run name for the
// ratio tables printed at the end.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tune/bf16.hpp"
#include "tune/buffer.hpp"
#include "tune/device.hpp"
#include "tune/kernel.hpp"
#include "tune/problem.hpp"
#include "tune/db/database.hpp"
#include "tune/error.hpp"
#include "tune/measurer.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/tuner.hpp"

namespace tune::bench {

inline const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

// The library's templates, made once for the host; the GEMM ones by name.
inline const TemplateRegistry& registry() {
    static const TemplateRegistry r = builtin_registry(host());
    return r;
}
inline const Template& named(std::string_view name) {
    const Template* t = registry().find(name);
    if (!t) throw Error("bench: no template '" + std::string(name) + "' on this host");
    return *t;
}
inline const Template& own_gemm() { return named("cpu.gemm.blocked"); }
inline const Template& openblas_gemm() { return named("cpu.gemm.openblas"); }
inline const Template& onednn_gemm() { return named("cpu.gemm.onednn"); }

// The template's default config at a fixed thread count (one thread splits M: nothing to share).
inline Config with_threads(const Template& t, const Problem& p, int threads) {
    Config c = t.space(p)->default_config();
    c.set("threads", std::int64_t{threads});
    if (c.find("split") && threads == 1) c.set("split", std::string("m"));
    return c;
}

// cpu.gemm.blocked candidates covering the axes that decide speed on this machine: register
// tile, depth, split and (for decode) in-place A and the dot-form kernels. Earlier sweeps over 14x32/12x32/8x48/6x32/
// 4x64 and kc 256..1024 picked 8x48 or 14x32 with kc 512 or 1024 on every suite shape.
inline std::vector<Config> own_candidates(const Problem& p, int threads) {
    const Space& s = *own_gemm().space(p);
    const GemmDims d = gemm_dims(p);
    const Config base = with_threads(own_gemm(), p, threads);
    std::vector<std::string> tiles, dot_tiles;
    for (const auto& v : s.knob("ukernel")->values) {
        const auto& label = std::get<std::string>(v);
        if (label.find("dot_") != std::string::npos) dot_tiles.push_back(label);
        else if (p.dtype == DType::bf16) tiles.push_back(label);
    }
    if (p.dtype == DType::bf16) {
        if (tiles.front().rfind("amx_", 0) == 0) tiles.resize(1);  // AMX beats AVX512-BF16 by ~10x
    } else if (host().isa.avx512f) {
        tiles = {"avx512_8x48", "avx512_14x32"};
    } else {
        tiles = {std::get<std::string>(s.knob("ukernel")->default_value)};
    }
    std::vector<std::string> splits{"m"};
    if (threads > 1) splits.push_back("n");
    std::vector<Config> out;
    for (const auto& tile : tiles)
        for (std::int64_t kc : {512, 1024})
            for (const auto& split : splits)
                for (std::int64_t pack_a : {0, 1}) {
                    if (pack_a == 0 && d.m > 16) continue;  // in-place A only pays off for decode
                    Config c = base;
                    c.set("ukernel", tile).set("kc", kc).set("split", split).set("pack_a", pack_a);
                    if (!s.violation(c)) out.push_back(c);
                }
    // Decode rows: the dot-form kernels (blocks and packing do not apply to them).
    if (d.m <= 16)
        for (const auto& tile : dot_tiles)
            for (const auto& split : splits) {
                Config c = base;
                c.set("ukernel", tile).set("split", split);
                if (!s.violation(c)) out.push_back(c);
            }
    return out;
}

// What a user of the Tuner gets at a fixed thread count: cpu.gemm.blocked's sweep and the
// vendor templates that support p, each measured with the Measurer's protocol (median until
// stable, a quarter second cap per candidate here), then the confirmation round: finalists
// re-measured three times in turn (more on a close call) and ranked by choose_confirmed. In a
// memory store.
inline TuneResult tune_pick(const Problem& p, int threads) {
    MeasureOptions mo;
    mo.max_time_s = 0.25;
    Measurer measurer(host(), mo);
    auto db = make_memory_database();
    Tuner tuner(*db, registry(), measurer, db->start_run({0, "bench", "annealing", 0, "", ""}, host()));
    TuneOptions opt;
    opt.templates = {own_gemm().info().name};
    for (const Template* v : {&openblas_gemm(), &onednn_gemm()})
        if (v->supports(p)) opt.templates.push_back(v->info().name);
    opt.fixed_knobs.set("threads", std::int64_t{threads});
    opt.initial_configs[own_gemm().info().name] = own_candidates(p, threads);
    // The default (when it has this thread count), the sweep, one config per vendor: no search.
    opt.budget = 1 + opt.initial_configs.begin()->second.size() + opt.templates.size() - 1;
    opt.confirm_rounds = 3;
    opt.contest_rounds = 12;  // as the CLI: close calls get more repetitions
    return tuner.tune(p, opt);
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

// After a benchmark of t: waits while t's library threads may still hold the cores
// (TemplateInfo::settle_s, e.g. OpenBLAS's spinning workers), so the next benchmark is not
// timed against them. Call it outside the timing loop.
inline void settle(const Template& t) {
    if (t.info().settle_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(t.info().settle_s));
}

inline void set_gflops(benchmark::State& state, const Problem& p) {
    state.counters["GFLOP/s"] = benchmark::Counter(flop_count(p) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Console output plus every counter (GFLOP/s among them) per run name (without the /real_time
// suffix); with --benchmark_repetitions the median aggregate replaces the single runs.
class GflopsReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            std::string name = r.run_name.str();
            if (const auto pos = name.rfind("/real_time"); pos != std::string::npos) name.erase(pos);
            if (const auto pos = name.rfind("/iterations:"); pos != std::string::npos) name.erase(pos);
            const bool first = r.run_type == Run::RT_Iteration && !counters.count(name);
            if (!first && !(r.run_type == Run::RT_Aggregate && r.aggregate_name == "median")) continue;
            for (const auto& [counter, value] : r.counters) counters[name][counter] = value;
        }
    }
    double get(const std::string& name, const std::string& counter = "GFLOP/s") const {
        auto it = counters.find(name);
        if (it == counters.end()) return 0.0;
        auto c = it->second.find(counter);
        return c == it->second.end() ? 0.0 : double(c->second);
    }
    std::map<std::string, std::map<std::string, double>> counters;  // every counter, by benchmark name
};

}  // namespace tune::bench
