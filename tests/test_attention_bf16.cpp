// cpu.attention.fused's bf16 inner loops (AMX, AVX512-BF16): offered only when the CPU runs them
// and the problem's accuracy budget admits bf16 compute; within that budget against the fp64
// reference (masks, GQA, odd sizes, a user scale, split-KV), and visibly over an exact f32 one.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "tune/error.hpp"
#include "tune/templates/cpu_attention.hpp"
#include "tune/workload.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

bool is_bf16_inner(const std::string& label) { return label.rfind("avx512bf16_", 0) == 0 || label.rfind("amx_", 0) == 0; }

std::vector<std::string> bf16_inner(const Space& s) {
    std::vector<std::string> out;
    for (const auto& v : s.knob("inner")->values)
        if (is_bf16_inner(std::get<std::string>(v))) out.push_back(std::get<std::string>(v));
    return out;
}

Problem admitting_bf16(Problem p) {
    p.tolerance = bf16_compute_tolerance(p);
    return p;
}

// Runs c on p's workload twice (the second run reuses the kernel's scratch) and checks both.
void check_within_budget(const Template& t, const Problem& p, const Config& c, std::uint64_t seed) {
    INFO(shape_key(p) << " | " << c.text());
    Workload w(p, seed);
    auto kernel = t.instantiate(p, c);
    for (int i = 0; i < 2; ++i) {
        w.poison_outputs();
        kernel->run(w.args());
        CHECK(w.error() <= effective_tolerance(p));
    }
}

}  // namespace

TEST_CASE("attention offers bf16 inner kernels only under a bf16 budget on a CPU that runs them", "[attention][bf16]") {
    if (!host().isa.avx512f) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    for (std::int64_t q_len : {1, 256}) {
        Problem p = make_attention(1, 8, 2, q_len, 256, 128);
        CHECK(bf16_inner(*fused->space(p)).empty());
        p.tolerance = bf16_compute_tolerance(p) * 0.99;  // just under: exact f32 only
        CHECK(bf16_inner(*fused->space(p)).empty());
        p.tolerance = bf16_compute_tolerance(p);
        const bool runs_bf16 = host().isa.avx512_bf16 && host().isa.avx512bw;
        CHECK(bf16_inner(*fused->space(p)).empty() == !runs_bf16);
        CHECK_FALSE(is_bf16_inner(fused->space(p)->default_config().get_str("inner")));  // default stays f32
    }
    // Without the ISA the same budget offers nothing in bf16.
    DeviceInfo plain = host();
    plain.isa.avx512_bf16 = plain.isa.amx_bf16 = plain.isa.amx_tile = false;
    const Problem loose = admitting_bf16(make_attention(1, 8, 2, 256, 256, 128));
    CHECK(bf16_inner(*make_cpu_attention_fused_template(plain)->space(loose)).empty());
}

TEST_CASE("bf16 attention matches the fp64 reference within the bf16 budget", "[attention][bf16]") {
    if (!host().isa.avx512f) return;
    auto fused = make_cpu_attention_fused_template(host());
    struct Shape {
        std::int64_t heads, kv_heads, q, kv, d;
        bool causal;
        std::int64_t window;
        double scale;  // 0 = default
    };
    // Off every tile size (32-key panels, MR 8..32 rows, 32 V columns, odd head dims for the
    // VNNI pair padding), windows that start key ranges off a panel, a decode shape, a user scale.
    const Shape kShapes[] = {{4, 2, 45, 70, 37, false, 0, 0},  {4, 4, 37, 37, 80, true, 0, 0},
                             {3, 1, 29, 61, 128, true, 5, 0},  {2, 2, 50, 50, 64, false, 7, 0.9},
                             {8, 2, 1, 301, 128, true, 0, 0},  {2, 1, 33, 97, 96, true, 0, 0.05}};
    const Space& any = *fused->space(admitting_bf16(make_attention(1, 4, 2, 64, 64, 64)));
    const auto labels = bf16_inner(any);
    if (labels.empty()) return;  // no bf16 ISA here: covered by the test above
    std::uint64_t seed = 300;
    for (const Shape& sh : kShapes) {
        Problem p = make_attention(1, sh.heads, sh.kv_heads, sh.q, sh.kv, sh.d, sh.causal, sh.window);
        if (sh.scale > 0) p = with_scale(p, sh.scale);
        p = admitting_bf16(p);
        const Space& s = *fused->space(p);
        for (const std::string& label : labels)
            for (std::int64_t k_tile : {32, 64}) {
                Config c = s.default_config();
                c.set("inner", label).set("k_tile", k_tile);
                if (sh.q > 16) c.set("q_tile", std::int64_t(seed % 2 ? 8 : 32));
                if (s.knob("gqa_pack")) c.set("gqa_pack", std::int64_t(seed % 2));
                if (s.knob("split_kv")) c.set("split_kv", std::int64_t(seed % 2 ? 1 : 4));
                check_within_budget(*fused, p, c, seed++);
            }
    }
}

TEST_CASE("a bf16 KV cache takes the bf16 inner kernels only under the bf16 budget", "[attention][bf16]") {
    if (!host().isa.avx512f) return;
    auto fused = make_cpu_attention_fused_template(host());
    const Problem exact = make_attention(1, 4, 2, 45, 70, 37, true, 0, DType::bf16);
    CHECK(bf16_inner(*fused->space(exact)).empty());  // f32 arithmetic unless the caller opts in
    const auto labels = bf16_inner(*fused->space(admitting_bf16(exact)));
    if (labels.empty()) return;  // no bf16 ISA here
    Problem paged = make_attention(2, 8, 2, 16, 100, 64, true, 0, DType::bf16);
    paged.set_dim("page", 16);
    std::uint64_t seed = 700;
    for (const Problem& shape : {exact, make_attention(1, 8, 1, 1, 301, 128, false, 0, DType::bf16), paged}) {
        const Problem p = admitting_bf16(shape);
        const Space& s = *fused->space(p);
        for (const std::string& label : labels) {
            Config c = s.default_config();
            c.set("inner", label).set("k_tile", std::int64_t(seed % 2 ? 32 : 64));
            check_within_budget(*fused, p, c, seed++);
        }
    }
}

TEST_CASE("bf16 attention is over an exact f32 budget, so an exact problem never takes it", "[attention][bf16]") {
    if (!host().isa.avx512f) return;
    auto fused = make_cpu_attention_fused_template(host());
    const Problem exact = make_attention(1, 4, 2, 64, 96, 64, true);
    const Problem loose = admitting_bf16(exact);
    for (const std::string& label : bf16_inner(*fused->space(loose))) {
        Config c = fused->space(loose)->default_config();
        c.set("inner", label);
        INFO(c.text());
        // The measurer checks a candidate's error on the problem it tunes: the bf16 result is
        // visibly rounded, over what the exact problem accepts ...
        Workload w(exact, 17);
        fused->instantiate(loose, c)->run(w.args());
        CHECK(w.error() > default_tolerance(exact));
        CHECK(w.error() <= effective_tolerance(loose));
        // ... and the exact problem's space does not hold the config at all.
        CHECK_THROWS_AS(fused->instantiate(exact, c), Error);
    }
}
