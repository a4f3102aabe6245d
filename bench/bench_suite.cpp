// The CPU GEMM suite: own templates and the tuned pick against the libraries, in one binary.
// Shapes: squares 256..4096 and the layer GEMMs of Llama-3-8B, Mistral-7B and Qwen2-7B
// (examples/models/*.json, weights [out, in]) at 1, 16, 128 and 2048 tokens; 1 thread and all
// cores. Per (shape, threads):
//   openblas, onednn_f32, onednn_bf16   the vendor templates
//   own_f32, own_bf16                   cpu.gemm.blocked, the Tuner's best of its candidate sweep
//   pick_f32, pick_bf16                 the Tuner's pick with the vendors in its space
//   side_f32, side_bf16                 the pick and the libraries timed in turn (pick / best
//                                       library in one run: the target's ratio, side by side)
// Both come from one tuning per (shape, threads, dtype) with the protocol a user gets
// (bench::tune_pick: Measurer medians, then the confirmation round), run before the first
// timed benchmark that needs it. Counter GFLOP/s; a ratio table and the geometric means of the
// targets are printed at the end. Run with repetitions interleaved at random, so a load change
// on a shared machine hits every variant alike, and in parts with --benchmark_filter, e.g.
//   bench_suite --benchmark_filter='square_(1024|2048)' --benchmark_repetitions=3
//     --benchmark_enable_random_interleaving=true --benchmark_min_time=0.2   (one line)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "tune/error.hpp"
#include "tune/model.hpp"
#include "tune/openblas_env.hpp"
#include "tune/templates/cpu_gemm.hpp"

using namespace tune;
using bench::host;
using bench::Operands;

namespace {

const Template& own() { return bench::own_gemm(); }
const Template& onednn() { return bench::onednn_gemm(); }
const Template& openblas() { return bench::openblas_gemm(); }

struct Case {
    std::string name;  // square_N or <model>_<gemm>_m<tokens>
    std::int64_t m, n, k;
    bool trans_b;
    Problem problem(DType dtype) const { return make_gemm(m, n, k, dtype, false, trans_b); }
};

std::vector<Case> cases() {
    std::vector<Case> out;
    for (std::int64_t s : {256, 512, 1024, 2048, 4096}) out.push_back({"square_" + std::to_string(s), s, s, s, false});
    for (const char* model : {"llama-3-8b", "mistral-7b", "qwen2-7b"}) {
        const ModelShape shape =
            load_model_config(std::string(LIBTUNE_SOURCE_DIR) + "/examples/models/" + model + ".json");
        for (const NamedProblem& np : layer_gemms(shape, {1, 16, 128, 2048}, DType::f32)) {
            const GemmDims d = gemm_dims(np.problem);
            bool seen = false;  // Mistral-7B's layer has Llama-3-8B's shapes: time each once
            for (const Case& c : out) seen = seen || (c.m == d.m && c.n == d.n && c.k == d.k && c.trans_b == d.trans_b);
            if (seen) continue;
            out.push_back({std::string(model) + "_" + np.name + "_m" + std::to_string(np.tokens), d.m, d.n, d.k,
                           d.trans_b});
        }
    }
    return out;
}

struct Pick {
    Config own_best;                  // own template's fastest (confirmed when a finalist)
    const Template* pick = nullptr;   // the Tuner's pick, vendors included
    Config pick_config;
};

// Tunes once per (case, threads, dtype) with bench::tune_pick; later benchmarks of the key
// reuse the result.
const Pick& tuned(const Case& cs, int threads, DType dtype) {
    static std::map<std::string, Pick> cache;
    const std::string key = cs.name + "/" + std::to_string(threads) + "/" + std::string(to_string(dtype));
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    const TuneResult r = bench::tune_pick(cs.problem(dtype), threads);
    if (!r.best) throw Error("bench: no correct candidate for " + key);
    const auto own_it = r.template_best.find(own().info().name);
    if (own_it == r.template_best.end()) throw Error("bench: no correct own candidate for " + key);
    Pick pk{own_it->second.config, &bench::named(r.best->template_name), r.best->config};
    // Each template's best as the Tuner ranked it: a side-by-side ratio below 1 is then either
    // a different ranking in the Tuner's rounds or the same ranking within the tie band.
    std::string ranked;
    for (const auto& [name, m] : r.template_best) {
        char ms[32];
        std::snprintf(ms, sizeof ms, " %.3f ms", ranking_time(m.stats) * 1e3);
        ranked += (ranked.empty() ? "" : ", ") + name + ms;
    }
    std::fprintf(stderr, "tuned %s: %zu measured, %zu confirmations; pick %s %s (ranked: %s)\n", key.c_str(),
                 r.measured, r.confirmed, r.best->template_name.c_str(), r.best->config.text().c_str(), ranked.c_str());
    return cache.emplace(key, std::move(pk)).first->second;
}

enum class Kind { vendor, own, pick };

// The pick and each library of its dtype in turn, kRounds rounds. Every turn starts alike:
// after the longest settle of them all (OpenBLAS's spinning threads gone, and every kernel
// after the same idle gap: whichever followed the gap alone ran 10% slower), one untimed call
// (threads awake, caches warm), then kCalls timed calls; each kernel's fastest timed call
// counts. Separate benchmarks of one kernel a few seconds apart differ here by up to 20% on
// memory-bound shapes; timed in turn, a slow period hits all of them. Counter "pick/lib": best library time / pick time (>= 1: the pick is as
// fast); where the pick is one of the library columns' configs it is timed once, as both (two
// instances of one config measured 0-7% apart here). The benchmark's own time is the contest.
void side_by_side(benchmark::State& state, const Case& cs, int threads, DType dtype) {
    constexpr int kRounds = 9, kCalls = 3;
    const Problem p = cs.problem(dtype);
    const Pick& pk = tuned(cs, threads, dtype);
    std::vector<const Template*> libs;
    for (const Template* t : {&openblas(), &onednn()})
        if (t->supports(p)) libs.push_back(t);
    Operands o(p);
    std::vector<std::unique_ptr<Kernel>> kernels;
    std::vector<const Template*> owners{pk.pick};
    kernels.push_back(pk.pick->instantiate(p, pk.pick_config));
    bool pick_is_lib = false;  // the pick is a library column's config: one kernel, timed as both
    for (const Template* t : libs) {
        const Config c = bench::with_threads(*t, p, threads);
        if (t == pk.pick && c == pk.pick_config) {
            pick_is_lib = true;
            continue;
        }
        kernels.push_back(t->instantiate(p, c));
        owners.push_back(t);
    }
    std::vector<double> fastest(kernels.size(), 1e30);
    const Template* slowest_to_settle = *std::max_element(
        owners.begin(), owners.end(), [](const Template* a, const Template* b) { return a->info().settle_s < b->info().settle_s; });
    for (auto _ : state) {
        for (int r = 0; r < kRounds; ++r)
            for (std::size_t i = 0; i < kernels.size(); ++i) {
                bench::settle(*slowest_to_settle);
                kernels[i]->run(o.args());
                for (int c = 0; c < kCalls; ++c) {
                    const auto t0 = std::chrono::steady_clock::now();
                    kernels[i]->run(o.args());
                    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                    fastest[i] = std::min(fastest[i], s);
                }
            }
    }
    // A pick that is a library column counts among the libraries (a ratio above 1 is then impossible).
    const double best_lib = *std::min_element(fastest.begin() + (pick_is_lib ? 0 : 1), fastest.end());
    state.counters["pick/lib"] = best_lib / fastest[0];
    state.counters["pick_ms"] = fastest[0] * 1e3;
    state.counters["lib_ms"] = best_lib * 1e3;
    state.SetLabel(pk.pick->info().name + " " + pk.pick_config.text());
}

void run(benchmark::State& state, const Case& cs, int threads, DType dtype, Kind kind, const Template* vendor) {
    const Problem p = cs.problem(dtype);
    const Template* t = vendor;
    Config c;
    if (kind == Kind::vendor) {
        c = bench::with_threads(*vendor, p, threads);
    } else {
        const Pick& pk = tuned(cs, threads, dtype);
        t = kind == Kind::own ? &own() : pk.pick;
        c = kind == Kind::own ? pk.own_best : pk.pick_config;
    }
    Operands o(p);
    auto k = t->instantiate(p, c);
    k->run(o.args());  // warm-up: first touch of C, lazy set-up in the libraries
    for (auto _ : state) k->run(o.args());
    bench::settle(*t);
    bench::set_gflops(state, p);
    state.SetLabel(t->info().name + " " + c.text());
}

struct Variant {
    const char* name;
    DType dtype;
    Kind kind;
    const Template* vendor;
};

double geomean(const std::vector<double>& xs) {
    if (xs.empty()) return 0;
    double s = 0;
    for (double x : xs) s += std::log(x);
    return std::exp(s / static_cast<double>(xs.size()));
}

}  // namespace

int main(int argc, char** argv) {
    use_best_openblas_core(argv);  // re-executes with OPENBLAS_CORETYPE set when OpenBLAS fell back
    const std::vector<Variant> variants{
        {"openblas", DType::f32, Kind::vendor, &openblas()},   {"onednn_f32", DType::f32, Kind::vendor, &onednn()},
        {"own_f32", DType::f32, Kind::own, nullptr},           {"pick_f32", DType::f32, Kind::pick, nullptr},
        {"onednn_bf16", DType::bf16, Kind::vendor, &onednn()}, {"own_bf16", DType::bf16, Kind::own, nullptr},
        {"pick_bf16", DType::bf16, Kind::pick, nullptr}};
    std::vector<int> thread_counts{1};
    if (host().cores > 1) thread_counts.push_back(host().cores);
    const std::vector<Case> all = cases();
    for (const Case& cs : all)
        for (int threads : thread_counts)
            for (const Variant& v : variants) {
                const Problem p = cs.problem(v.dtype);
                if (!(v.vendor ? v.vendor : &own())->supports(p)) continue;
                const std::string name = std::string(v.name) + "/" + cs.name + "/threads:" + std::to_string(threads);
                benchmark::RegisterBenchmark(name.c_str(), run, cs, threads, v.dtype, v.kind, v.vendor)
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime();
            }
    for (const Case& cs : all)
        for (int threads : thread_counts)
            for (DType dtype : {DType::f32, DType::bf16}) {
                if (!own().supports(cs.problem(dtype)) || !onednn().supports(cs.problem(dtype))) continue;
                const std::string name = std::string(dtype == DType::f32 ? "side_f32" : "side_bf16") + "/" + cs.name +
                                         "/threads:" + std::to_string(threads);
                benchmark::RegisterBenchmark(name.c_str(), side_by_side, cs, threads, dtype)
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime()
                    ->Iterations(1);
            }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    std::fprintf(stderr, "OpenBLAS core %s; own template %s\n", openblas_get_corename(), own().info().version.c_str());
    bench::GflopsReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    // Ratio table over the (shape, threads) rows that ran, and the targets' geometric means.
    std::printf("\n%-40s %8s %8s %8s %8s %8s %8s %8s | %7s %7s %7s %7s %7s %7s\n", "shape/threads", "openblas",
                "dnn_f32", "own_f32", "pick_f32", "dnn_bf16", "own_bf16", "pick_bf", "own/ob", "ownb/dn", "pick/lib",
                "pickb/dn", "side", "side_bf");
    std::vector<double> sq_f32, decode_f32, sq_bf16;
    double worst_pick = 1e30, worst_side = 1e30;
    int sides = 0, at_least_one = 0;
    for (const Case& cs : all)
        for (int threads : thread_counts) {
            const std::string key = "/" + cs.name + "/threads:" + std::to_string(threads);
            std::map<std::string, double> g;
            for (const Variant& v : variants) g[v.name] = reporter.get(v.name + key);
            const double side = reporter.get("side_f32" + key, "pick/lib");
            const double side_bf = reporter.get("side_bf16" + key, "pick/lib");
            if (std::all_of(g.begin(), g.end(), [](const auto& kv) { return kv.second == 0; }) && side == 0 &&
                side_bf == 0)
                continue;
            auto ratio = [](double a, double b) { return a > 0 && b > 0 ? a / b : 0.0; };
            const double own_ob = ratio(g["own_f32"], g["openblas"]);
            const double ownb_dn = ratio(g["own_bf16"], g["onednn_bf16"]);
            const double pick_lib = ratio(g["pick_f32"], std::max(g["openblas"], g["onednn_f32"]));
            const double pickb_dn = ratio(g["pick_bf16"], g["onednn_bf16"]);
            std::printf("%-40s", key.c_str() + 1);
            for (const Variant& v : variants) std::printf(" %8.1f", g[v.name]);
            std::printf(" | %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f\n", own_ob, ownb_dn, pick_lib, pickb_dn, side, side_bf);
            const bool square = cs.name.rfind("square_", 0) == 0;
            if (own_ob > 0 && square && cs.m >= 1024) sq_f32.push_back(own_ob);
            if (own_ob > 0 && cs.m <= 16) decode_f32.push_back(own_ob);
            if (ownb_dn > 0 && square && cs.m >= 1024) sq_bf16.push_back(ownb_dn);
            for (double r : {pick_lib, pickb_dn})
                if (r > 0) worst_pick = std::min(worst_pick, r);
            for (double r : {side, side_bf})
                if (r > 0) worst_side = std::min(worst_side, r), ++sides, at_least_one += r >= 1.0;
        }
    std::printf("\nown f32 / OpenBLAS, squares >= 1024: geomean %.2f over %zu (target >= 0.9)\n", geomean(sq_f32),
                sq_f32.size());
    std::printf("own f32 / OpenBLAS, decode m <= 16:  geomean %.2f over %zu (target >= 1.1)\n", geomean(decode_f32),
                decode_f32.size());
    std::printf("own bf16 / oneDNN bf16, squares >= 1024: geomean %.2f over %zu (target >= 0.7)\n", geomean(sq_bf16),
                sq_bf16.size());
    if (worst_pick < 1e30)
        std::printf("tuned pick / best library, worst row: %.2f (target >= 1.0)\n", worst_pick);
    if (worst_side < 1e30)
        std::printf("tuned pick / best library timed side by side: worst %.2f, %d of %d >= 1.0 (target >= 1.0)\n",
                    worst_side, at_least_one, sides);
    benchmark::Shutdown();
    return 0;
}
