// bench_cuda_gemm: own bf16 GEMM (cuda.gemm.wgmma / cuda.gemm.mma, tuned) vs cuBLAS (cuBLASLt's
// default heuristic pick) at 4096^3, 8192^3 and the Llama-3-8B layer GEMMs at 2048 tokens;
// the tuned pick (any template, cuBLASLt's algorithms included) vs cuBLAS's default; tuning
// throughput (candidates measured per minute, compile time hidden behind measurement).
// Needs a CUDA device: without one it prints why and exits 0.
//   bench_cuda_gemm [--budget N] [--summary file.json] [--db file.sqlite] [benchmark flags]
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench_common.hpp"
#include "bench_cuda_common.hpp"
#include "tune/error.hpp"

using namespace tune;

namespace {

struct Shape {
    std::string name;
    Problem problem;
};

// Llama-3-8B: hidden 4096, 32 query / 8 kv heads of 128, MLP 14336; weights n x k (trans_b).
std::vector<Shape> shapes() {
    const std::int64_t t = 2048;
    auto g = [](std::int64_t m, std::int64_t n, std::int64_t k) { return make_gemm(m, n, k, DType::bf16, false, true); };
    return {{"square_4096", g(4096, 4096, 4096)},  {"square_8192", g(8192, 8192, 8192)},
            {"llama3_8b_qo_proj", g(t, 4096, 4096)}, {"llama3_8b_kv_proj", g(t, 1024, 4096)},
            {"llama3_8b_gate_up", g(t, 14336, 4096)}, {"llama3_8b_down", g(t, 4096, 14336)}};
}

bool own(const std::string& name) { return name == "cuda.gemm.mma" || name == "cuda.gemm.wgmma"; }

// Times one kernel on device operands with CUDA events (manual time per iteration).
void time_kernel(benchmark::State& state, const Template& t, const Problem& p, const Config& c) {
    const bench::Operands host(p);
    cuda::DeviceMemory a(host.a.bytes()), b(host.b.bytes()), out(host.c.bytes());
    a.upload(host.a.data(), host.a.bytes());
    b.upload(host.b.data(), host.b.bytes());
    const void* in[] = {a.as_ptr(), b.as_ptr()};
    void* outs[] = {out.as_ptr()};
    const OpArgs args{in, outs};
    auto kernel = t.instantiate(p, c);  // from the binary cache: tuning compiled it
    bench::time_on_device(state, *kernel, args);
    state.counters["TFLOP/s"] = benchmark::Counter(flop_count(p) * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(t.info().name + " " + c.text());
}

// Tunes every shape, compares with cuBLAS's default, and registers the timings.
void tune_and_register(bench::CudaSession& session, nlohmann::json& summary) {
    const TemplateRegistry& registry = session.registry;
    const Template& cublaslt = *registry.find("cuda.gemm.cublaslt");
    auto& compiler = cuda::shared_runtime()->compiler();
    std::size_t total_measured = 0;
    double total_tuning_s = 0;
    const auto compile_before = compiler.stats();
    for (const auto& shape : shapes()) {
        const auto t0 = std::chrono::steady_clock::now();
        TuneResult r = session.tune(shape.problem);
        const double tuning_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        total_measured += r.measured;
        total_tuning_s += tuning_s;
        const Measurement cublas_default =
            session.measurer->measure(shape.problem, cublaslt, Config{{"algo", std::int64_t{0}}});
        const Measurement* own_best = nullptr;
        for (const auto& [name, m] : r.template_best)
            if (own(name) && (!own_best || m.stats.median_s < own_best->stats.median_s)) own_best = &m;
        auto ratio = [&](const Measurement* m) {
            return m && cublas_default.status == Status::ok ? cublas_default.stats.median_s / m->stats.median_s : 0.0;
        };
        nlohmann::json js = {{"name", shape.name},
                             {"problem", shape_key(shape.problem)},
                             {"measured", r.measured},
                             {"failed", r.failed},
                             {"tuning_s", tuning_s},
                             {"cublas_default", cublas_default},
                             {"own_vs_cublas", ratio(own_best)},
                             {"tuned_vs_cublas", ratio(r.best ? &*r.best : nullptr)}};
        if (own_best) js["own_best"] = *own_best;
        if (r.best) js["tuned_pick"] = *r.best;
        summary["shapes"].push_back(js);
        std::printf("%-20s own %.3f ms (%s)  cuBLAS %.3f ms  tuned %.3f ms (%s)  own/cuBLAS %.2fx  tuned/cuBLAS %.2fx\n",
                    shape.name.c_str(), own_best ? own_best->stats.median_s * 1e3 : 0.0,
                    own_best ? own_best->template_name.c_str() : "-", cublas_default.stats.median_s * 1e3,
                    r.best ? r.best->stats.median_s * 1e3 : 0.0, r.best ? r.best->template_name.c_str() : "-",
                    ratio(own_best), ratio(r.best ? &*r.best : nullptr));
        const Problem p = shape.problem;
        if (own_best)
            bench::register_device_timed("own_bf16/" + shape.name,
                                         [&t = *registry.find(own_best->template_name), p, c = own_best->config](
                                             benchmark::State& s) { time_kernel(s, t, p, c); });
        bench::register_device_timed("cublas_default/" + shape.name, [&cublaslt, p](benchmark::State& s) {
            time_kernel(s, cublaslt, p, Config{{"algo", std::int64_t{0}}});
        });
        if (r.best)
            bench::register_device_timed("tuned_pick/" + shape.name,
                                         [&t = *registry.find(r.best->template_name), p, c = r.best->config](
                                             benchmark::State& s) { time_kernel(s, t, p, c); });
    }
    const auto compile_after = compiler.stats();
    const double compile_s = compile_after.compile_seconds - compile_before.compile_seconds;
    summary["candidates_per_minute"] = total_tuning_s > 0 ? 60.0 * double(total_measured) / total_tuning_s : 0.0;
    summary["tuning_s"] = total_tuning_s;
    summary["compile_s_summed_over_threads"] = compile_s;
    summary["compiles"] = compile_after.compiled - compile_before.compiled;
    summary["compile_cache_hits"] = compile_after.cache_hits - compile_before.cache_hits;
    std::printf("tuning: %zu candidates in %.1f s = %.1f per minute; %.1f s of NVRTC time on %d compiles ran beside it\n",
                total_measured, total_tuning_s, summary["candidates_per_minute"].get<double>(), compile_s,
                compile_after.compiled - compile_before.compiled);
}

}  // namespace

int main(int argc, char** argv) { return bench::run_cuda_bench(argc, argv, "bench_cuda_gemm", 24, tune_and_register); }
