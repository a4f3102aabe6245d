// cpu.gemm.blocked on bf16 operands: bf16 problems are offered only the bf16 micro-kernels
// (AMX where granted, AVX512-BF16 otherwise; none without AVX512-BF16), which always pack; every bf16 micro-kernel with
// sampled configs matches the fp64 reference on edge shapes (odd k included), every transpose
// pair, with and without an epilogue.
#include <catch2/catch.hpp>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "tune/device.hpp"
#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/workload.hpp"
#include "gemm_checks.hpp"

using namespace tune;
using tune::test::sample_with_ukernel;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

bool host_has_bf16() { return host().isa.avx512f && host().isa.avx512bw && host().isa.avx512_bf16; }

struct Shape {
    std::int64_t m, n, k;
};

// 1, primes, non-multiples of every tile, odd k (the VNNI pair padding), k = 1, shapes that
// cross mc/kc/nc so every blocking loop runs more than once; k = 1101 exceeds the largest kc
// and is odd; even k (trans_b packs B as 32-bit pairs then) with n off the 16-column transpose
// blocks, k = 1100 across kc blocks.
const std::vector<Shape> kEdgeShapes{{1, 1, 1},   {7, 13, 17},   {31, 67, 129}, {1, 100, 70},   {45, 70, 1},
                                     {50, 1, 33}, {61, 200, 151}, {16, 33, 65},  {2, 37, 1101}, {130, 400, 299},
                                     {3, 77, 1100}, {33, 45, 2},  {16, 50, 64}};


}  // namespace

TEST_CASE("bf16 problems get the bf16 micro-kernels only, where the CPU has AVX512-BF16", "[bf16]") {
    DeviceInfo no_bf16 = host();
    no_bf16.isa.avx512_bf16 = no_bf16.isa.amx_tile = no_bf16.isa.amx_bf16 = false;
    auto plain = make_cpu_gemm_template(no_bf16);
    CHECK_FALSE(plain->supports(make_gemm(8, 8, 8, DType::bf16)));

    DeviceInfo avx2_only = host();
    avx2_only.isa = CpuIsa{};
    avx2_only.isa.avx2 = avx2_only.isa.fma = true;
    avx2_only.isa.avx512_bf16 = true;  // without avx512f/bw no bf16 kernel runs
    CHECK_FALSE(make_cpu_gemm_template(avx2_only)->supports(make_gemm(8, 8, 8, DType::bf16)));

    if (!host_has_bf16()) return;
    auto t = make_cpu_gemm_template(host());
    const Problem p = make_gemm(8, 8, 8, DType::bf16);
    REQUIRE(t->supports(p));
    CHECK_FALSE(t->supports(make_gemm(8, 8, 8, DType::f64)));
    const auto bf = test::ukernel_labels(*t->space(p));
    CHECK(std::find(bf.begin(), bf.end(), "avx512bf16_8x32") != bf.end());
    auto is_bf16_kernel = [](const std::string& l) { return l.rfind("avx512bf16_", 0) == 0 || l.rfind("amx_", 0) == 0; };
    for (const auto& l : bf) CHECK(is_bf16_kernel(l));
    for (const auto& l : test::ukernel_labels(*t->space(make_gemm(8, 8, 8)))) CHECK_FALSE(is_bf16_kernel(l));
    // AMX where the CPU has it and the kernel grants it, else AVX512-BF16.
    const bool amx = host().isa.amx_tile && host().isa.amx_bf16 && request_amx_permission();
    CHECK((std::find(bf.begin(), bf.end(), "amx_32x32") != bf.end()) == amx);
    CHECK(t->space(p)->default_config().get_str("ukernel") == (amx ? "amx_32x32" : "avx512bf16_8x32"));
    CHECK(t->space(p) != t->space(make_gemm(8, 8, 8)));
    CHECK(t->space(p) == t->space(make_gemm(100, 300, 77, DType::bf16)));

    // bf16 kernels read only packed panels.
    Config c = t->space(p)->default_config();
    c.set("pack_a", std::int64_t{0});
    CHECK(t->space(p)->violation(c).value_or("").find("bf16_ukernel_packs") != std::string::npos);
    CHECK_THROWS_AS(t->instantiate(p, c), Error);
}

TEST_CASE("every bf16 micro-kernel with sampled configs matches the fp64 reference", "[bf16]") {
    if (!host_has_bf16()) return;
    auto t = make_cpu_gemm_template(host());
    std::mt19937_64 rng(7);
    std::uint64_t seed = 1;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            const auto space = t->space(make_gemm(4, 4, 4, DType::bf16, ta != 0, tb != 0));
            for (const auto& label : test::ukernel_labels(*space))
                for (const Shape& s : kEdgeShapes) {
                    const Problem p = make_gemm(s.m, s.n, s.k, DType::bf16, ta != 0, tb != 0);
                    test::check_against_reference(*t, p, sample_with_ukernel(*space, rng, label), seed++);
                }
        }
}

TEST_CASE("bf16 default config, threads, split and batches match the reference", "[bf16]") {
    if (!host_has_bf16()) return;
    auto t = make_cpu_gemm_template(host());
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            const Problem p = make_gemm(67, 130, 95, DType::bf16, ta != 0, tb != 0, 3);
            Config c = t->space(p)->default_config();
            test::check_against_reference(*t, p, c, 11);
            for (std::int64_t threads = 1; threads <= std::min(host().cores, 3); ++threads)
                for (const char* split : {"m", "n"}) {
                    c.set("threads", threads);
                    c.set("split", std::string(split));
                    if (!t->space(p)->violation(c)) test::check_against_reference(*t, p, c, 12);
                }
        }
}

TEST_CASE("bf16 problems with an epilogue: both placements match the reference", "[bf16]") {
    if (!host_has_bf16()) return;
    auto t = make_cpu_gemm_template(host());
    std::mt19937_64 rng(3);
    std::uint64_t seed = 100;
    const std::vector<Shape> shapes{{1, 1, 1}, {7, 13, 17}, {45, 70, 1}, {61, 200, 151}, {2, 37, 1101}};
    constexpr Activation kActs[] = {Activation::none, Activation::gelu, Activation::silu};
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (const Activation act : kActs) {
                const bool bias = act != Activation::silu, residual = act != Activation::gelu;
                const auto space =
                    t->space(with_epilogue(make_gemm(4, 4, 4, DType::bf16, ta != 0, tb != 0), bias, act, residual));
                REQUIRE(space->knob("epilogue") != nullptr);
                for (const auto& label : test::ukernel_labels(*space))
                    for (const char* placement : {"fused", "separate"}) {
                        const Shape& s = shapes[rng() % shapes.size()];
                        const Problem p =
                            with_epilogue(make_gemm(s.m, s.n, s.k, DType::bf16, ta != 0, tb != 0), bias, act, residual);
                        Config c = sample_with_ukernel(*space, rng, label);
                        c.set("epilogue", std::string(placement));
                        test::check_against_reference(*t, p, c, seed++);
                    }
            }
}

TEST_CASE("f32 problems get the bf16 micro-kernels only when their accuracy budget admits bf16", "[bf16]") {
    if (!host_has_bf16()) return;
    auto t = make_cpu_gemm_template(host());
    auto is_bf16_kernel = [](const std::string& l) { return l.rfind("avx512bf16_", 0) == 0 || l.rfind("amx_", 0) == 0; };
    Problem p = make_gemm(61, 200, 301, DType::f32, false, true);
    for (const auto& l : test::ukernel_labels(*t->space(p))) CHECK_FALSE(is_bf16_kernel(l));

    p.tolerance = bf16_compute_tolerance(p) * 0.99;  // just under: still exact f32 only
    for (const auto& l : test::ukernel_labels(*t->space(p))) CHECK_FALSE(is_bf16_kernel(l));

    p.tolerance = bf16_compute_tolerance(p);
    const auto space = t->space(p);
    CHECK_FALSE(is_bf16_kernel(space->default_config().get_str("ukernel")));  // default stays f32
    // Local search starts from both precisions.
    const auto starts = space->starts();
    REQUIRE(starts.size() == 2);
    CHECK(is_bf16_kernel(starts[1].get_str("ukernel")));
    std::vector<std::string> bf;
    for (const auto& l : test::ukernel_labels(*space))
        if (is_bf16_kernel(l)) bf.push_back(l);
    REQUIRE_FALSE(bf.empty());
    Problem exact = p;
    exact.tolerance = 0;
    std::mt19937_64 rng(5);
    for (const auto& label : bf) {
        const Config c = sample_with_ukernel(*space, rng, label);
        INFO(c.text());
        Workload w(p, 21);
        w.poison_outputs();
        t->instantiate(p, c)->run(w.args());
        // Within the bf16 budget, and visibly rounded: over what exact f32 would allow.
        CHECK(w.error() <= effective_tolerance(p));
        CHECK(w.error() > default_tolerance(exact));
        CHECK_THROWS_AS(t->instantiate(exact, c), Error);  // not a valid config for an exact problem
    }
}
