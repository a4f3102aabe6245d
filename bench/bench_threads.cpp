// Library threads that outlive their call: an own cpu.gemm.blocked GEMM timed `delay_ms` after a
// call of another template on the same cores (oneDNN: OpenMP workers spin before they sleep;
// OpenBLAS: its pthreads spin), and after an own call as the baseline. What TemplateInfo::settle_s
// holds per template, and what a runtime that interleaves kernels of several libraries pays.
//   bench_threads [--benchmark_filter=onednn] [--benchmark_repetitions=3]
// Each iteration: the other template's call and the pause are untimed; only the own GEMM is.
#include <thread>

#include "bench_common.hpp"
#include "tune/openblas_env.hpp"

namespace {

using namespace tune;
using namespace tune::bench;

// A prefill-sized layer GEMM (Llama-3-8B qkv_proj at 64 tokens), all cores.
Problem problem() { return make_gemm(64, 6144, 4096, DType::f32, false, true); }

void own_after(benchmark::State& state, const Template& before) {
    const Problem p = problem();
    const int threads = host().cores;
    const auto own = own_gemm().instantiate(p, with_threads(own_gemm(), p, threads));
    const auto other = before.instantiate(p, with_threads(before, p, threads));
    Operands o(p);
    const auto delay = std::chrono::milliseconds(state.range(0));
    own->run(o.args());
    other->run(o.args());
    for (auto _ : state) {
        state.PauseTiming();
        other->run(o.args());
        std::this_thread::sleep_for(delay);
        state.ResumeTiming();
        own->run(o.args());
    }
    set_gflops(state, p);
    settle(before);
}

void register_all() {
    for (const Template* t : {&own_gemm(), &onednn_gemm(), &openblas_gemm()}) {
        if (!t->supports(problem())) continue;
        const std::string name = "own_after_" + t->info().name.substr(t->info().name.rfind('.') + 1);
        auto* b = benchmark::RegisterBenchmark(name.c_str(), [t](benchmark::State& s) { own_after(s, *t); });
        for (int ms : {0, 2, 5, 10, 20, 50, 200}) b->Arg(ms);
        b->ArgName("delay_ms")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(20);
    }
}

}  // namespace

int main(int argc, char** argv) {
    tune::use_best_openblas_core(argv);
    benchmark::Initialize(&argc, argv);
    register_all();
    std::printf("device: %s\n", host().summary().c_str());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
