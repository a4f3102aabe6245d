// bench_cuda_attention: cuda.attention.flash (and, on sm_90a, cuda.attention.wgmma for the
// prefill shapes) on a CUDA device, tuned (the Tuner's protocol:
// every candidate verified against the fp64 reference) and at its default config. Forward:
// Llama-3-8B attention (32 / 8 heads, head_dim 128, bf16) at 8k tokens, causal and full,
// reported in TFLOP/s (visible query-key pairs only). Decode: one query step against 8k and 32k
// cached keys (batch 1 and 8), reported in GB/s of K and V read. Backward: the same heads at
// 4k tokens, causal, in TFLOP/s of the gradients' visible pairs; the default config is
// cuda.attention.flash_backward's (f32 scalar arithmetic), the summary's template_best has
// each template's best, cuda.attention.mma_backward (mma.sync) among them. Without a device
// it prints why and exits 0.
//   bench_cuda_attention [--budget N] [--summary file.json] [--db file.sqlite] [benchmark flags]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_cuda_common.hpp"
#include "tune/bf16.hpp"
#include "tune/error.hpp"

using namespace tune;

namespace {

struct Shape {
    std::string name;
    Problem problem;
    bool decode;
    std::string default_template = "cuda.attention.flash";  // the template whose default config is timed
};

Problem backward(Problem p) {
    p.set_dim("backward", 1);
    return p;
}

Problem paged(Problem p, std::int64_t page) {
    p.set_dim("page", page);
    return p;
}

std::vector<Shape> shapes() {
    auto a = [](std::int64_t batch, std::int64_t q, std::int64_t kv, bool causal) {
        return make_attention(batch, 32, 8, q, kv, 128, causal, 0, DType::bf16);
    };
    return {{"fwd_hd128_8k_causal", a(1, 8192, 8192, true), false},
            {"fwd_hd128_8k_full", a(1, 8192, 8192, false), false},
            {"decode_hd128_kv8k", a(1, 1, 8192, true), true},
            {"decode_hd128_kv32k", a(1, 1, 32768, true), true},
            {"decode_hd128_kv8k_batch8", a(8, 1, 8192, true), true},
            {"decode_hd128_kv32k_paged16", paged(a(1, 1, 32768, true), 16), true},
            {"bwd_hd128_4k_causal", backward(a(1, 4096, 4096, true)), false, "cuda.attention.flash_backward"}};
}

// Bytes a decode step must move: K and V once (bf16), plus Q, O and LSE.
double decode_bytes(const Problem& p) {
    const AttentionDims a = attention_dims(p);
    const double kv = 2.0 * double(a.batch * a.kv_heads * a.kv_len * a.head_dim) * 2;
    const double rows = double(a.batch * a.heads * a.q_len);
    return kv + rows * double(a.head_dim) * (2 + 4) + rows * 4;
}

// Device operands: Q, K, V with bf16 values in [-1, 1] (paged: K and V as pages in order,
// with their block table); O and LSE (forward). Backward: also
// O = 0, LSE = 0 and dO in [-1, 1] (f32) in; dQ, dK, dV out (timing only: not a consistent O).
struct DeviceOperands {
    std::vector<cuda::DeviceMemory> in, out;
    std::vector<const void*> in_ptrs;
    std::vector<void*> out_ptrs;
    explicit DeviceOperands(const Problem& p) {
        const AttentionDims a = attention_dims(p);
        const std::size_t q = std::size_t(a.batch * a.heads * a.q_len * a.head_dim);
        const std::size_t kv = std::size_t(a.batch * a.kv_heads * a.kv_len * a.head_dim);
        // K and V contiguous, or as their page pool.
        const std::size_t kv_stored = a.page > 0 ? std::size_t(a.page_pool_rows() * a.head_dim) : kv;
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        for (std::size_t n : {q, kv_stored, kv_stored}) {
            std::vector<bf16> host(n);
            for (auto& x : host) x = to_bf16(dist(rng));
            in.emplace_back(n * sizeof(bf16));
            in.back().upload(host.data(), n * sizeof(bf16));
            in_ptrs.push_back(in.back().as_ptr());
        }
        if (a.page > 0) {  // pages 0, 1, ... in sequence order: timing only needs a valid table
            std::vector<std::int32_t> table(std::size_t(a.batch * a.pages_per_sequence()));
            for (std::size_t i = 0; i < table.size(); ++i) table[i] = std::int32_t(i);
            in.emplace_back(table.size() * sizeof(std::int32_t));
            in.back().upload(table.data(), table.size() * sizeof(std::int32_t));
            in_ptrs.push_back(in.back().as_ptr());
        }
        const std::size_t rows = std::size_t(a.batch * a.heads * a.q_len);
        if (a.backward) {
            for (const auto& [n, random] : {std::pair{q, false}, std::pair{rows, false}, std::pair{q, true}}) {  // O, LSE, dO
                std::vector<float> host(n, 0.f);
                if (random)
                    for (auto& x : host) x = dist(rng);
                in.emplace_back(n * sizeof(float));
                in.back().upload(host.data(), n * sizeof(float));
                in_ptrs.push_back(in.back().as_ptr());
            }
            for (std::size_t n : {q, kv, kv}) out.emplace_back(n * sizeof(float));
        } else {
            out.emplace_back(q * sizeof(float));
            out.emplace_back(rows * sizeof(float));
        }
        for (auto& m : out) out_ptrs.push_back(m.as_ptr());
    }
    OpArgs args() const { return {in_ptrs, out_ptrs}; }
};

void time_kernel(benchmark::State& state, const Template& t, const Shape& shape, const Config& c) {
    const DeviceOperands ops(shape.problem);
    auto kernel = t.instantiate(shape.problem, c);  // from the binary cache: tuning compiled it
    bench::time_on_device(state, *kernel, ops.args());
    if (shape.decode)
        state.counters["GB/s"] = benchmark::Counter(decode_bytes(shape.problem) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    else
        state.counters["TFLOP/s"] = benchmark::Counter(flop_count(shape.problem) * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(t.info().name + " " + c.text());
}

// Tunes every shape, measures its default config, and registers the timings.
void tune_and_register(bench::CudaSession& session, nlohmann::json& summary) {
    static std::vector<Shape> all = shapes();  // outlives the registered benchmarks
    for (const Shape& shape : all) {
        TuneResult r = session.tune(shape.problem);
        const Template& flash = *session.registry.find(shape.default_template);
        const Config def = flash.space(shape.problem)->default_config();
        const Measurement at_default = session.measurer->measure(shape.problem, flash, def);
        auto rate = [&](const Measurement& m) {
            if (m.status != Status::ok) return 0.0;
            return shape.decode ? decode_bytes(shape.problem) / m.stats.median_s * 1e-9
                                : flop_count(shape.problem) / m.stats.median_s * 1e-12;
        };
        const char* unit = shape.decode ? "GB/s" : "TFLOP/s";
        nlohmann::json js = {{"name", shape.name}, {"problem", shape_key(shape.problem)}, {"measured", r.measured},
                             {"failed", r.failed}, {"unit", unit}, {"default", at_default},
                             {"default_rate", rate(at_default)}};
        if (r.best) js["tuned_pick"] = *r.best, js["tuned_rate"] = rate(*r.best);
        for (const auto& [name, m] : r.template_best)  // each template's best: flash vs the Hopper kernel
            js["template_best"][name] = {{"measurement", m}, {"rate", rate(m)}};
        summary["shapes"].push_back(js);
        std::printf("%-26s default %.3f ms (%.1f %s)  tuned %.3f ms (%.1f %s) %s\n", shape.name.c_str(),
                    at_default.stats.median_s * 1e3, rate(at_default), unit, r.best ? r.best->stats.median_s * 1e3 : 0.0,
                    r.best ? rate(*r.best) : 0.0, unit, r.best ? r.best->config.text().c_str() : "(no correct candidate)");
        bench::register_device_timed("default/" + shape.name,
                                     [&t = flash, &shape, def](benchmark::State& s) { time_kernel(s, t, shape, def); });
        if (r.best)
            bench::register_device_timed("tuned_pick/" + shape.name,
                                         [&t = *session.registry.find(r.best->template_name), &shape, c = r.best->config](
                                             benchmark::State& s) { time_kernel(s, t, shape, c); });
    }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_cuda_bench(argc, argv, "bench_cuda_attention", 16, tune_and_register); }
