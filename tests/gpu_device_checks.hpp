// What the GPU device tests (cuda_device_tests.cpp, hip_device_tests.cpp) share: the device,
// its registry and a Measurer (the path tuning uses: results against the host fp64
// reference), covering samples of a space, and the problem lists each template is checked on.
// The lists are plain functions so that host-only tests can check every problem is supported.
#pragma once

#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tune/backends.hpp"
#include "tune/compile_service.hpp"
#include "tune/measurer.hpp"
#include "tune/runtime_compile.hpp"

namespace tune::device_checks {

struct DeviceEnv {
    DeviceInfo device;
    TemplateRegistry registry;
    std::unique_ptr<Measurer> measurer;
};

// The process's device of `backend` (one backend per test binary); throws tune::Error when
// there is none, which main() turns into "skipped".
inline DeviceEnv& device_env(Backend backend) {
    static DeviceEnv e = [&] {
        DeviceEnv x;
        x.device = detect_device(backend);
        x.registry = builtin_registry(x.device);
        MeasureOptions o;
        o.pin_cpu = -1;
        o.warmup_s = 0.002;
        o.max_time_s = 0.05;
        o.min_reps = 3;
        x.measurer = std::make_unique<Measurer>(x.device, o, make_accelerator(x.device));
        return x;
    }();
    return e;
}

#ifdef CATCH_CONFIG_RUNNER  // a device test binary, with its own main()
// main() of a device test binary: the device's summary, then the tests; exit 77 (CTest:
// skipped) with the reason when there is no device of `backend`.
inline int run_device_tests(Backend backend, int argc, char** argv) {
    try {
        device_env(backend);
    } catch (const std::exception& e) {
        std::printf("skipped: %s device tests: %s\n", std::string(to_string(backend)).c_str(), e.what());
        return 77;
    }
    std::printf("device: %s\n", device_env(backend).device.summary().c_str());
    return Catch::Session().run(argc, argv);
}
#endif

inline const Template& tmpl(DeviceEnv& env, const std::string& name) {
    const Template* t = env.registry.find(name);
    REQUIRE(t != nullptr);
    return *t;
}

inline void expect_ok(DeviceEnv& env, const Problem& p, const Template& t, const Config& c) {
    INFO(t.info().name << " " << c.text() << " on " << shape_key(p));
    const Measurement m = env.measurer->measure(p, t, c);
    INFO(m.reason);
    CHECK(m.status == Status::ok);
    CHECK(m.stats.median_s > 0);
}

// Compiles every (problem, config) on the runtime's threads before measuring them in turn.
inline void expect_all_ok(DeviceEnv& env, const Template& t, const std::vector<std::pair<Problem, Config>>& cases) {
    const auto& rc = dynamic_cast<const RuntimeCompiled&>(t);
    for (const auto& [p, c] : cases) rc.precompile(p, c);
    for (const auto& [p, c] : cases) expect_ok(env, p, t, c);
}

// A measured config instantiated again (the Dispatcher's path) reuses its binary: `compiler`
// (the runtime's compile service) compiles nothing more.
inline void expect_binary_reused(DeviceEnv& env, const Template& t, CompileService& compiler) {
    const Problem p = make_gemm(256, 256, 256, DType::bf16, false, true);
    const Config c = t.space(p)->default_config();
    expect_ok(env, p, t, c);  // compiles and caches the binary
    const int compiled = compiler.stats().compiled;
    auto kernel = t.instantiate(p, c);
    CHECK(compiler.stats().compiled == compiled);
}

// The helpers above bound to one backend's device: a test binary's `using D = On<...>`.
template <Backend B>
struct On {
    static DeviceEnv& env() { return device_env(B); }
    static const Template& tmpl(const std::string& name) { return device_checks::tmpl(env(), name); }
    static void expect_ok(const Problem& p, const Template& t, const Config& c) {
        device_checks::expect_ok(env(), p, t, c);
    }
    static void expect_all_ok(const Template& t, const std::vector<std::pair<Problem, Config>>& cases) {
        device_checks::expect_all_ok(env(), t, cases);
    }
    static void expect_binary_reused(const Template& t, CompileService& compiler) {
        device_checks::expect_binary_reused(env(), t, compiler);
    }
};

using Cases = std::vector<std::pair<Problem, Config>>;

// Each problem with the template's default config; every problem must be supported.
inline Cases defaults(const Template& t, const std::vector<Problem>& problems) {
    Cases out;
    for (const Problem& p : problems) {
        INFO(t.info().name << " on " << shape_key(p));
        REQUIRE(t.supports(p));
        out.emplace_back(p, t.space(p)->default_config());
    }
    return out;
}

// Every value of every knob at least once (greedy, as in the compile sample).
inline std::vector<Config> covering(const Space& s) {
    std::vector<Config> out;
    std::set<std::string> covered;
    const auto all = s.enumerate_all();
    while (true) {
        const Config* best = nullptr;
        std::size_t best_new = 0;
        for (const auto& c : all) {
            std::size_t fresh = 0;
            for (const auto& [n, v] : c.values()) fresh += !covered.count(n + "=" + to_string(v));
            if (fresh > best_new) best = &c, best_new = fresh;
        }
        if (!best) return out;
        for (const auto& [n, v] : best->values()) covered.insert(n + "=" + to_string(v));
        out.push_back(*best);
    }
}

// The head dims every attention template is checked at.
inline constexpr std::int64_t kHeadDims[] = {64, 80, 96, 128, 256};

// GEMMs: square, ragged tiles in m, n and k, batched with bias and GELU, SiLU with a residual,
// a long k with bias and residual. f32 problems admit bf16 compute (tensor cores).
inline std::vector<Problem> gemm_variants(DType dtype, bool trans_b) {
    auto base = [&](std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t batch = 1) {
        Problem p = make_gemm(m, n, k, dtype, false, trans_b, batch);
        if (dtype == DType::f32) p.tolerance = bf16_compute_tolerance(p);
        return p;
    };
    return {base(256, 256, 512),
            base(333, 264, 520),
            with_epilogue(base(192, 136, 264, 2), true, Activation::gelu, false),
            with_epilogue(base(128, 512, 1024), false, Activation::silu, true),
            with_epilogue(base(64, 64, 4096), true, Activation::none, true)};
}

// Attention forward (bf16) over every mask and mapping: ragged tiles, causal with
// q_len < kv_len (a KV cache), a sliding window, GQA and MQA, no mask, and decode steps long
// enough for split-KV.
inline std::vector<Problem> attention_variants(std::int64_t d) {
    return {make_attention(1, 8, 2, 333, 333, d, true, 0, DType::bf16),
            make_attention(2, 4, 4, 100, 420, d, true, 0, DType::bf16),
            make_attention(1, 8, 1, 257, 257, d, true, 64, DType::bf16),
            make_attention(1, 4, 2, 77, 150, d, false, 0, DType::bf16),
            make_attention(1, 32, 8, 1, 9000, d, true, 0, DType::bf16),
            make_attention(2, 8, 2, 16, 3000, d, true, 1000, DType::bf16)};
}

// Host side, no device: every case is supported, valid in its space, and asks for at least
// one compile. Returns how many cases were checked.
inline std::size_t expect_valid(const Template& t, const Cases& cases) {
    for (const auto& [p, c] : cases) {
        INFO(t.info().name << " " << c.text() << " on " << shape_key(p));
        REQUIRE(t.supports(p));
        CHECK_FALSE(t.space(p)->violation(c).has_value());
        CHECK(dynamic_cast<const RuntimeCompiled&>(t).compile_requests(p, c).size() >= 1);
    }
    return cases.size();
}

// Each problem with every config of its covering sample.
inline Cases covering_cases(const Template& t, const std::vector<Problem>& problems) {
    Cases out;
    for (const Problem& p : problems)
        for (const Config& c : covering(*t.space(p))) out.emplace_back(p, c);
    return out;
}

// A paged KV cache (page 16 and 7, a key tile spanning pages): a split-KV decode step and a
// causal prefill.
inline std::vector<Problem> paged_attention_variants() {
    std::vector<Problem> out;
    for (std::int64_t page : {16, 7}) {
        Problem decode = make_attention(2, 32, 8, 1, 5000, 128, true, 0, DType::bf16);
        Problem prefill = make_attention(1, 8, 2, 200, 333, 128, true, 0, DType::bf16);
        decode.set_dim("page", page);
        prefill.set_dim("page", page);
        out.push_back(decode);
        out.push_back(prefill);
    }
    return out;
}

// attention_variants(128) with f16 inputs, held to the f32 bound (exact products, f32 sums).
inline std::vector<Problem> f16_attention_variants() {
    std::vector<Problem> out;
    for (Problem p : attention_variants(128)) {
        p.dtype = DType::f16;
        Problem f32 = p;
        f32.dtype = DType::f32;
        p.tolerance = default_tolerance(f32);
        out.push_back(p);
    }
    return out;
}

// The forward's default-config problems: every head dim's attention_variants, the paged ones,
// and the f16 ones.
inline std::vector<Problem> attention_default_problems() {
    std::vector<Problem> out;
    for (std::int64_t d : kHeadDims)
        for (const Problem& p : attention_variants(d)) out.push_back(p);
    for (const Problem& p : paged_attention_variants()) out.push_back(p);
    for (const Problem& p : f16_attention_variants()) out.push_back(p);
    return out;
}

// The forward's covering-sample problems, under a tolerance that admits rounding P once
// (p_split = 0).
inline std::vector<Problem> attention_covering_problems() {
    std::vector<Problem> out = {make_attention(1, 8, 2, 300, 300, 128, true, 0, DType::bf16),
                                make_attention(1, 16, 2, 3, 5000, 64, true, 0, DType::bf16),
                                make_attention(1, 4, 4, 200, 200, 256, false, 48, DType::bf16)};
    for (Problem& p : out) p.tolerance = 0.02;
    return out;
}

// Attention backward: causal GQA, a window with MQA-like packing, no mask in f16, and rows
// without keys.
inline std::vector<Problem> backward_variants(std::int64_t d) {
    std::vector<Problem> out = {make_attention(1, 8, 2, 333, 333, d, true, 0, DType::bf16),
                                make_attention(2, 4, 1, 100, 420, d, true, 64, DType::bf16),
                                make_attention(1, 4, 4, 77, 150, d, false, 0, DType::f16),
                                make_attention(1, 4, 2, 150, 40, d, true, 0, DType::bf16)};
    for (Problem& p : out) p.set_dim("backward", 1);
    return out;
}

inline std::vector<Problem> backward_covering_problems() {
    std::vector<Problem> out = {make_attention(1, 8, 2, 300, 300, 128, true, 0, DType::bf16),
                                make_attention(1, 4, 4, 200, 200, 64, false, 48, DType::f16)};
    for (Problem& p : out) p.set_dim("backward", 1);
    return out;
}

// Every head dim's (up to max_head_dim) backward_variants with the default config in each mode
// (recompute, store).
inline Cases backward_mode_cases(const Template& t, std::int64_t max_head_dim = 256) {
    Cases out;
    for (std::int64_t d : kHeadDims) {
        if (d > max_head_dim) continue;
        for (auto [p, c] : defaults(t, backward_variants(d)))
            for (const char* mode : {"recompute", "store"}) out.emplace_back(p, c.set("mode", std::string(mode)));
    }
    return out;
}

}  // namespace tune::device_checks
