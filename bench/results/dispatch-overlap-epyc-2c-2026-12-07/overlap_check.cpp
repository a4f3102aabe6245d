#include <benchmark/benchmark.h>
#include "tune/kernel.hpp"
#include <vector>
static void BM_Overlap(benchmark::State& st) {
    tune::Problem p = tune::make_gemm(1, 64, 64, tune::DType::f32, false, true);
    std::vector<float> a(64), b(64 * 64), c(64);
    const void* in[] = {a.data(), b.data()};
    void* out[] = {c.data()};
    for (auto _ : st) { auto s = tune::overlapping_operands(p, {in, out}); benchmark::DoNotOptimize(s); }
}
BENCHMARK(BM_Overlap)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK_MAIN();
