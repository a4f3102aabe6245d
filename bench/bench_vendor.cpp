// The vendor GEMM templates side by side, in one binary: oneDNN matmul (f32, and bf16 on AMX
// where the CPU has it) and OpenBLAS cblas_sgemm (Debian's build has no cblas_sbgemm) on
// squares 256..4096 and Llama-3-8B layer shapes (trans_b = 1) at m in {1, 16, 128, 2048},
// with 1 thread and all cores.
// Counter GFLOP/s; a table of the three per (shape, threads) is printed at the end.
// Select a subset with --benchmark_filter, e.g. 'square_1024|m16_n4096_k4096'.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tune/bf16.hpp"
#include "tune/buffer.hpp"
#include "tune/openblas_env.hpp"
#include "tune/templates/cpu_gemm.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}
const Template& onednn() {
    static const auto t = make_onednn_gemm_template(host());
    return *t;
}
const Template& openblas() {
    static const auto t = make_openblas_gemm_template(host());
    return *t;
}

// Seeded operands in the problem's input type (f32 or bf16); C is f32.
struct Operands {
    AlignedBuffer a, b, c;
    std::vector<const void*> in;
    std::vector<void*> out;
    explicit Operands(const Problem& p) {
        const GemmDims d = gemm_dims(p);
        const bool bf = p.dtype == DType::bf16;
        const std::size_t elem = bf ? sizeof(bf16) : sizeof(float);
        a = AlignedBuffer(d.batch * d.m * d.k * elem);
        b = AlignedBuffer(d.batch * d.k * d.n * elem);
        c = AlignedBuffer(d.batch * d.m * d.n * sizeof(float));
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

void bench_vendor(benchmark::State& state, const Template* t, Problem p, int threads) {
    Operands o(p);
    Config c;
    c.set("threads", std::int64_t{threads});
    auto k = t->instantiate(p, c);
    k->run(o.args());  // warm-up (first-touch of C, oneDNN's lazy kernel set-up)
    for (auto _ : state) k->run(o.args());
    state.counters["GFLOP/s"] = benchmark::Counter(flop_count(p) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(t == &openblas() ? std::string(openblas_get_corename()) : std::string());
}

class TableReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            auto it = r.counters.find("GFLOP/s");
            if (it == r.counters.end()) continue;
            if ((r.run_type == Run::RT_Iteration && !gflops.count(r.run_name.str())) ||
                (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median"))
                gflops[r.run_name.str()] = it->second;
        }
    }
    std::map<std::string, double> gflops;
};

struct Case {
    std::string name;
    std::int64_t m, n, k;
    bool trans_b;
};

std::vector<Case> cases() {
    std::vector<Case> out;
    for (std::int64_t s : {256, 512, 1024, 2048, 4096}) out.push_back({"square_" + std::to_string(s), s, s, s, false});
    const std::pair<std::int64_t, std::int64_t> llama[] = {{6144, 4096}, {4096, 4096}, {14336, 4096}, {4096, 14336}};
    for (std::int64_t m : {1, 16, 128, 2048})
        for (auto [n, k] : llama)
            out.push_back({"llama3_8b_m" + std::to_string(m) + "_n" + std::to_string(n) + "_k" + std::to_string(k), m,
                           n, k, true});
    return out;
}

struct Variant {
    const char* prefix;
    const Template* t;
    DType dtype;
};

}  // namespace

int main(int argc, char** argv) {
    use_best_openblas_core(argv);  // re-executes with OPENBLAS_CORETYPE set when OpenBLAS fell back
    const std::vector<Variant> variants{{"onednn_f32", &onednn(), DType::f32},
                                        {"onednn_bf16", &onednn(), DType::bf16},
                                        {"openblas_f32", &openblas(), DType::f32}};
    std::vector<int> thread_counts{1};
    if (host().cores > 1) thread_counts.push_back(host().cores);
    for (const Case& c : cases())
        for (int threads : thread_counts)
            for (const Variant& v : variants) {
                const Problem p = make_gemm(c.m, c.n, c.k, v.dtype, false, c.trans_b);
                if (!v.t->supports(p)) continue;
                const std::string name = std::string(v.prefix) + "/" + c.name + "/threads:" + std::to_string(threads);
                benchmark::RegisterBenchmark(name.c_str(), bench_vendor, v.t, p, threads)
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime();
            }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    std::fprintf(stderr, "oneDNN template %s, OpenBLAS core %s\n", onednn().info().version.c_str(),
                 openblas_get_corename());
    TableReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    // One row per (shape, threads) that any variant ran.
    std::map<std::string, std::map<std::string, double>> rows;
    for (const auto& [name, gf] : reporter.gflops) {
        const auto slash = name.find('/');
        rows[name.substr(slash + 1)][name.substr(0, slash)] = gf;
    }
    std::printf("\nGFLOP/s\n%-48s", "shape/threads");
    for (const Variant& v : variants) std::printf(" %13s", v.prefix);
    std::printf("\n");
    for (const auto& [key, by_variant] : rows) {
        std::printf("%-48s", key.c_str());
        for (const Variant& v : variants) {
            auto it = by_variant.find(v.prefix);
            if (it == by_variant.end()) std::printf(" %13s", "-");
            else std::printf(" %13.1f", it->second);
        }
        std::printf("\n");
    }
    benchmark::Shutdown();
    return 0;
}
