// Fusion in the blocked CPU templates, each pair differing only in the fusion knob (all cores;
// each mode at the best of a few blocking variants):
//   cpu.gemm.blocked   epilogue=fused vs separate on memory-bound decode shapes (m <= 16,
//                      trans_b = 1) with bias+silu and a residual
//   cpu.swiglu.blocked fusion=fused vs unfused at Llama-3-8B MLP sizes (n = 14336, k = 4096) at
//                      the suite's token counts 1, 16, 128 and 2048, f32 operands or (--dtype
//                      bf16) bf16 x and weights
// Prints the median time of each and the ratio slower/faster (> 1: fusion wins).
// Usage: bench_fusion [--reps N] [--only gemm|swiglu] [--tokens 1,16,...] [--dtype f32|bf16]
// (default 9 timed runs of each, alternating, after 2 warm-up runs; SwiGLU at 1, 16, 128 and
// 2048 tokens in f32).
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tune/bf16.hpp"
#include "tune/templates/cpu_gemm.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

// Random operands of the sizes the problem's inputs and output need; `bf16`: the first
// `bf16_inputs` inputs hold bf16 values (two per float slot), the rest stay f32.
struct Operands {
    std::vector<std::vector<float>> inputs;
    std::vector<float> output;
    std::vector<const void*> in;
    std::vector<void*> out;
    Operands(std::vector<std::size_t> input_sizes, std::size_t output_size, std::size_t bf16_inputs = 0)
        : output(output_size) {
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> dist(-1, 1);
        for (std::size_t i = 0; i < input_sizes.size(); ++i) {
            const std::size_t n = input_sizes[i];
            if (i < bf16_inputs) {
                inputs.emplace_back((n + 1) / 2);
                auto* h = reinterpret_cast<bf16*>(inputs.back().data());
                for (std::size_t j = 0; j < n; ++j) h[j] = to_bf16(dist(rng));
            } else {
                inputs.emplace_back(n);
                for (auto& x : inputs.back()) x = dist(rng);
            }
            in.push_back(inputs.back().data());
        }
        out = {output.data()};
    }
    OpArgs args() { return {in, out}; }
};

Operands operands_for(const Problem& p) {
    if (p.op == OpKind::swiglu) {
        const auto m = std::size_t(p.dims[0]), n = std::size_t(p.dims[1]), k = std::size_t(p.dims[2]);
        return Operands({m * k, n * k, n * k}, m * n, p.dtype == DType::bf16 ? 3 : 0);
    }
    const GemmDims d = gemm_dims(p);
    const auto m = std::size_t(d.m), n = std::size_t(d.n), k = std::size_t(d.k);
    std::vector<std::size_t> sizes{m * k, k * n};
    if (d.bias) sizes.push_back(n);
    if (d.residual) sizes.push_back(m * n);
    return Operands(sizes, m * n);
}

double seconds_of(const Kernel& kernel, Operands& o) {
    const auto start = std::chrono::steady_clock::now();
    kernel.run(o.args());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> t) {
    std::nth_element(t.begin(), t.begin() + std::ptrdiff_t(t.size() / 2), t.end());
    return t[t.size() / 2];
}

// Blocking variants each mode is timed with (on top of the default config); a mode's time is
// its best variant, as a tuner would pick. Smaller nc/kc keep two packed weight blocks in L2
// (fused SwiGLU packs a gate and an up block: kc = 256-512 x nc = 384 is 0.75-1.5 MiB of the
// 2 MiB L2); kc = 1024 packs whole 4 KiB pages of each weight row at once (decode is pack-bound).
// At decode sizes (m <= 16) the dot-form micro-kernels, which pack nothing, are variants too.
struct Variant {
    const char* ukernel = nullptr;  // null: the default's
    std::vector<std::pair<const char*, std::int64_t>> blocks;
};
const std::vector<Variant> kVariants{
    {},
    {nullptr, {{"nc", 384}}},
    {nullptr, {{"kc", 256}, {"nc", 384}}},
    {nullptr, {{"kc", 512}, {"nc", 384}}},
    {nullptr, {{"kc", 256}, {"nc", 768}}},
    {nullptr, {{"kc", 1024}, {"nc", 384}}},
    {nullptr, {{"kc", 1024}, {"nc", 768}}},
    {"avx512dot_1x8", {}},
    {"avx512dot_2x8", {}},
    {"avx512dot_4x6", {}},
    {"avx512bf16dot_1x8", {}},
    {"avx512bf16dot_2x8", {}},
    {"avx512bf16dot_4x6", {}}};

struct Timing {
    double seconds = 1e30;
    std::string variant;
};

// Times `knob` = a and = b over the blocking variants, alternating runs so load from other
// processes hits both alike; prints each mode's best median and returns time(b) / time(a).
double compare(const Template& t, const Problem& p, const char* knob, const char* a, const char* b, int reps) {
    Operands o = operands_for(p);
    Timing best_a, best_b;
    const std::int64_t m = p.op == OpKind::swiglu ? p.dims[0] : gemm_dims(p).m;
    for (const auto& variant : kVariants) {
        Config ca = t.space(p)->default_config();
        std::string label = variant.ukernel || !variant.blocks.empty() ? "" : "default";
        if (variant.ukernel) {
            if (m > 16 || t.space(p)->knob("ukernel")->index_of(std::string(variant.ukernel)) < 0) continue;
            ca.set("ukernel", std::string(variant.ukernel));
            label = variant.ukernel;
        }
        for (const auto& [name, value] : variant.blocks) {
            ca.set(name, value);
            if (!label.empty()) label += ' ';
            label.append(name).append("=").append(std::to_string(value));
        }
        if (t.space(p)->violation(ca)) continue;
        Config cb = ca;
        ca.set(knob, std::string(a));
        cb.set(knob, std::string(b));
        const auto ka = t.instantiate(p, ca), kb = t.instantiate(p, cb);
        for (int i = 0; i < 2; ++i) {
            ka->run(o.args());
            kb->run(o.args());
        }
        std::vector<double> sa, sb;
        for (int i = 0; i < reps; ++i) {
            sa.push_back(seconds_of(*ka, o));
            sb.push_back(seconds_of(*kb, o));
        }
        if (median(sa) < best_a.seconds) best_a = {median(sa), label};
        if (median(sb) < best_b.seconds) best_b = {median(sb), label};
    }
    std::printf("%s\n  %s=%-8s %9.3f ms (%s)\n  %s=%-8s %9.3f ms (%s)\n  ratio %.2fx\n", shape_key(p).c_str(), knob, a,
                best_a.seconds * 1e3, best_a.variant.c_str(), knob, b, best_b.seconds * 1e3, best_b.variant.c_str(),
                best_b.seconds / best_a.seconds);
    std::fflush(stdout);
    return best_b.seconds / best_a.seconds;
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 9;
    std::string only;  // "gemm" or "swiglu": run one half
    DType swiglu_dtype = DType::f32;
    std::vector<std::int64_t> tokens{1, 16, 128, 2048};
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--reps") == 0) reps = std::max(1, std::atoi(argv[i + 1]));
        if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
        if (std::strcmp(argv[i], "--dtype") == 0) {
            if (std::strcmp(argv[i + 1], "f32") != 0 && std::strcmp(argv[i + 1], "bf16") != 0) {
                std::fprintf(stderr, "bench_fusion: --dtype wants f32 or bf16, got '%s'\n", argv[i + 1]);
                return 2;
            }
            swiglu_dtype = std::strcmp(argv[i + 1], "bf16") == 0 ? DType::bf16 : DType::f32;
        }
        if (std::strcmp(argv[i], "--tokens") == 0) {
            tokens.clear();
            for (const char* p = argv[i + 1]; *p;) {
                char* end = nullptr;
                const long long t = std::strtoll(p, &end, 10);
                if (end == p || t < 1) {
                    std::fprintf(stderr, "bench_fusion: --tokens wants positive integers separated by commas, got '%s'\n",
                                 argv[i + 1]);
                    return 2;
                }
                tokens.push_back(t);
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') {
                    std::fprintf(stderr, "bench_fusion: bad --tokens '%s'\n", argv[i + 1]);
                    return 2;
                }
            }
        }
    }
    std::printf("device: %s\n", host().summary().c_str());

    const auto gemm = make_cpu_gemm_template(host());
    if (only != "swiglu") {
    std::printf("\n== cpu.gemm.blocked: epilogue fused vs separate (ratio = separate / fused) ==\n");
    struct Case {
        std::int64_t m, n, k;
        bool bias;
        Activation act;
        bool residual;
    };
    const Case cases[] = {
        {1, 4096, 4096, true, Activation::silu, false},   {16, 4096, 4096, true, Activation::silu, false},
        {1, 4096, 4096, false, Activation::none, true},   {16, 4096, 4096, false, Activation::none, true},
        {16, 14336, 4096, true, Activation::silu, false}, {16, 14336, 4096, true, Activation::silu, true},
        {16, 4096, 14336, false, Activation::none, true},
    };
    for (const Case& c : cases)
        compare(*gemm, with_epilogue(make_gemm(c.m, c.n, c.k, DType::f32, false, true), c.bias, c.act, c.residual),
                "epilogue", "fused", "separate", reps);
    }

    if (only == "gemm") return 0;
    const auto swiglu = make_cpu_swiglu_template(host());
    if (!swiglu->supports(make_swiglu(1, 14336, 4096, swiglu_dtype))) {
        std::fprintf(stderr, "bench_fusion: cpu.swiglu.blocked has no %s kernels on this CPU\n",
                     std::string(to_string(swiglu_dtype)).c_str());
        return 1;
    }
    std::printf("\n== cpu.swiglu.blocked: fused vs unfused, Llama-3-8B MLP, %s (ratio = unfused / fused) ==\n",
                std::string(to_string(swiglu_dtype)).c_str());
    for (std::int64_t m : tokens)
        compare(*swiglu, make_swiglu(m, 14336, 4096, swiglu_dtype), "fusion", "fused", "unfused", reps);
    return 0;
}
