// cpu.gemm.blocked against OpenBLAS cblas_sgemm at the same thread count, in one binary:
// squares 256..2048 and Llama-3-8B layer shapes (trans_b = 1). For each (shape, threads):
//   own/default  the template's fallback config
//   own/tuned    the Tuner's best of the shared candidate sweep (bench::tune_pick, before timing)
//   openblas     the vendor template (cblas_sgemm)
// Counter GFLOP/s; a ratio table own/openblas is printed at the end.
// OpenBLAS 0.3.21 may not recognise newer Xeons and fall back to SSE3 kernels ("Prescott");
// main() re-executes with OPENBLAS_CORETYPE set to the best core then (tune/openblas_env.hpp).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "tune/error.hpp"
#include "tune/openblas_env.hpp"
#include "tune/templates/cpu_gemm.hpp"

using namespace tune;

namespace {

using bench::host;
using bench::Operands;

const Template& own() { return bench::own_gemm(); }
const Template& openblas() { return bench::openblas_gemm(); }

// The Tuner's best cpu.gemm.blocked config (bench::tune_pick), cached per benchmark name so
// repeated invocations by the framework tune only once.
const Config& tuned_config(const std::string& name, const Problem& p, int threads) {
    static std::map<std::string, Config> cache;
    auto it = cache.find(name);
    if (it != cache.end()) return it->second;
    const TuneResult r = bench::tune_pick(p, threads);
    const auto own_it = r.template_best.find(own().info().name);
    if (own_it == r.template_best.end()) throw Error("bench: no correct own candidate for " + name);
    return cache.emplace(name, own_it->second.config).first->second;
}

enum class Variant { own_default, own_tuned, openblas };

void bench_gemm(benchmark::State& state, std::string name, Problem p, int threads, Variant v) {
    Operands o(p);
    std::unique_ptr<Kernel> k;
    Config c;
    if (v == Variant::openblas) {
        c.set("threads", std::int64_t{threads});
        k = openblas().instantiate(p, c);
    } else {
        c = v == Variant::own_tuned ? tuned_config(name, p, threads) : bench::with_threads(own(), p, threads);
        k = own().instantiate(p, c);
    }
    for (auto _ : state) k->run(o.args());
    if (v == Variant::openblas) bench::settle(openblas());
    bench::set_gflops(state, p);
    state.SetLabel(v == Variant::openblas ? std::string(openblas_get_corename()) : c.text());
}

struct Case {
    std::string name;
    Problem p;
};

std::vector<Case> cases() {
    std::vector<Case> out;
    for (std::int64_t s : {256, 512, 1024, 2048})
        out.push_back({"square_" + std::to_string(s), make_gemm(s, s, s)});
    const std::pair<std::int64_t, std::int64_t> llama[] = {{6144, 4096}, {4096, 4096}, {14336, 4096}, {4096, 14336}};
    for (std::int64_t m : {1, 16, 512})
        for (auto [n, k] : llama)
            out.push_back({"llama3_8b_m" + std::to_string(m) + "_n" + std::to_string(n) + "_k" + std::to_string(k),
                           make_gemm(m, n, k, DType::f32, false, true)});
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    use_best_openblas_core(argv);  // re-executes with OPENBLAS_CORETYPE set when OpenBLAS fell back
    std::vector<int> thread_counts{1};
    if (host().cores > 1) thread_counts.push_back(host().cores);
    for (const Case& c : cases())
        for (int t : thread_counts) {
            const std::string suffix = "/" + c.name + "/threads:" + std::to_string(t);
            for (auto [prefix, v] : {std::pair{"own_default", Variant::own_default},
                                     std::pair{"own_tuned", Variant::own_tuned},
                                     std::pair{"openblas", Variant::openblas}}) {
                const std::string name = prefix + suffix;
                benchmark::RegisterBenchmark(name.c_str(), bench_gemm, name, c.p, t, v)
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime();
            }
        }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (std::strcmp(openblas_get_corename(), "Prescott") == 0)
        std::fprintf(stderr, "warning: OpenBLAS runs its generic SSE3 kernels (core Prescott); "
                             "set OPENBLAS_CORETYPE=SkylakeX for a fair baseline\n");
    bench::GflopsReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    std::printf("\n%-52s %10s %10s %10s %8s %8s\n", "shape/threads", "default", "tuned", "openblas", "def/ob", "tun/ob");
    for (const auto& [name, counters] : reporter.counters) {
        if (name.rfind("openblas/", 0) != 0) continue;
        const double ob = reporter.get(name);
        const std::string key = name.substr(std::strlen("openblas"));
        auto get = [&](const std::string& prefix) { return reporter.get(prefix + key); };
        const double def = get("own_default"), tun = get("own_tuned");
        std::printf("%-52s %10.1f %10.1f %10.1f %8.2f %8.2f\n", key.c_str() + 1, def, tun, ob, def / ob, tun / ob);
    }
    benchmark::Shutdown();
    return 0;
}
