// tune_cuda_device_tests: numerical tests of the CUDA templates (GEMM and attention) on a real
// device, against the host fp64 reference through the Measurer (the path tuning uses). Without a CUDA device it
// prints why and exits 77 (CTest: skipped); scripts/gpu-check.sh runs it on a GPU machine.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <set>

#include "tune/backends.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/dispatcher.hpp"
#include "tune/error.hpp"
#include "tune/measurer.hpp"
#include "tune/runtime_compile.hpp"

using namespace tune;

namespace {

struct Env {
    DeviceInfo device;
    TemplateRegistry registry;
    std::unique_ptr<Measurer> measurer;
};

Env& env() {
    static Env e = [] {
        Env x;
        x.device = detect_device(Backend::cuda);
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

const Template& tmpl(const std::string& name) {
    const Template* t = env().registry.find(name);
    REQUIRE(t != nullptr);
    return *t;
}

void expect_ok(const Problem& p, const Template& t, const Config& c) {
    INFO(t.info().name << " " << c.text() << " on " << shape_key(p));
    const Measurement m = env().measurer->measure(p, t, c);
    INFO(m.reason);
    CHECK(m.status == Status::ok);
    CHECK(m.stats.median_s > 0);
}

// Every value of every knob at least once (greedy, as in the compile sample).
std::vector<Config> covering(const Space& s) {
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

std::vector<Problem> gemm_variants(DType dtype, bool trans_b) {
    auto base = [&](std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t batch = 1) {
        Problem p = make_gemm(m, n, k, dtype, false, trans_b, batch);
        if (dtype == DType::f32) p.tolerance = bf16_compute_tolerance(p);
        return p;
    };
    return {base(256, 256, 512),
            base(333, 264, 520),  // ragged tiles in m, n and k
            with_epilogue(base(192, 136, 264, 2), true, Activation::gelu, false),
            with_epilogue(base(128, 512, 1024), false, Activation::silu, true),
            with_epilogue(base(64, 64, 4096), true, Activation::none, true)};
}

}  // namespace

TEST_CASE("cuda.gemm.mma default config is correct on every dtype, layout, ragged shape and epilogue", "[cuda]") {
    const Template& t = tmpl("cuda.gemm.mma");
    for (DType dt : {DType::bf16, DType::f32})
        for (bool tb : {false, true})
            for (const Problem& p : gemm_variants(dt, tb)) expect_ok(p, t, t.space(p)->default_config());
}

TEST_CASE("cuda.gemm.mma covering sample (every knob value) is correct", "[cuda]") {
    const Template& t = tmpl("cuda.gemm.mma");
    for (bool tb : {false, true}) {
        const Problem p = make_gemm(520, 392, 1032, DType::bf16, false, tb);
        for (const Config& c : covering(*t.space(p))) expect_ok(p, t, c);
    }
}

TEST_CASE("cuda.gemm.wgmma (sm_90a) default and covering sample are correct", "[cuda]") {
    const Template& t = tmpl("cuda.gemm.wgmma");
    const Problem square = make_gemm(1024, 1024, 1024, DType::bf16, false, true);
    if (!t.supports(square)) {
        WARN("device is " << env().device.arch << ": cuda.gemm.wgmma needs sm_90a");
        return;
    }
    for (const Problem& p : gemm_variants(DType::bf16, true)) expect_ok(p, t, t.space(p)->default_config());
    const Problem ragged = make_gemm(520, 392, 1032, DType::bf16, false, true, 2);
    for (const Config& c : covering(*t.space(ragged))) expect_ok(ragged, t, c);
}

TEST_CASE("cuda.gemm.cublaslt algorithms are correct or say the heuristic list is shorter", "[cuda]") {
    const Template& t = tmpl("cuda.gemm.cublaslt");
    const Problem p = with_epilogue(make_gemm(512, 384, 640, DType::bf16, false, true), true, Activation::gelu, false);
    REQUIRE(t.supports(p));
    expect_ok(p, t, Config{{"algo", std::int64_t{0}}});
    for (std::int64_t a = 1; a < 4; ++a) {
        const Measurement m = env().measurer->measure(p, t, Config{{"algo", a}});
        INFO(m.reason);
        CHECK((m.status == Status::ok || m.reason.find("heuristic returned") != std::string::npos));
    }
}

TEST_CASE("instantiating a measured config (the Dispatcher's path) reuses its binary without compiling", "[cuda]") {
    const Template& t = tmpl("cuda.gemm.mma");
    const Problem p = make_gemm(256, 256, 256, DType::bf16, false, true);
    const Config c = t.space(p)->default_config();
    expect_ok(p, t, c);  // compiles and caches the binary
    auto& compiler = cuda::shared_runtime()->compiler();
    const int compiled = compiler.stats().compiled;
    auto kernel = t.instantiate(p, c);
    CHECK(compiler.stats().compiled == compiled);
}

namespace {

// Attention problems (bf16) that exercise every mask and mapping:
// ragged tiles, causal with q_len < kv_len (a KV cache), a sliding window, GQA and MQA, no mask,
// and decode steps long enough for split-KV.
std::vector<Problem> attention_variants(std::int64_t d) {
    return {make_attention(1, 8, 2, 333, 333, d, true, 0, DType::bf16),
            make_attention(2, 4, 4, 100, 420, d, true, 0, DType::bf16),
            make_attention(1, 8, 1, 257, 257, d, true, 64, DType::bf16),
            make_attention(1, 4, 2, 77, 150, d, false, 0, DType::bf16),
            make_attention(1, 32, 8, 1, 9000, d, true, 0, DType::bf16),
            make_attention(2, 8, 2, 16, 3000, d, true, 1000, DType::bf16)};
}

// Compiles every (problem, config) on the runtime's threads before measuring them in turn.
void expect_all_ok(const Template& t, const std::vector<std::pair<Problem, Config>>& cases) {
    const auto& rc = dynamic_cast<const RuntimeCompiled&>(t);
    for (const auto& [p, c] : cases) rc.precompile(p, c);
    for (const auto& [p, c] : cases) expect_ok(p, t, c);
}

}  // namespace

TEST_CASE("cuda.attention.flash default config is correct for every head dim, mask, GQA, decode split, paged KV and both 16-bit types", "[cuda][attention]") {
    const Template& t = tmpl("cuda.attention.flash");
    std::vector<std::pair<Problem, Config>> cases;
    for (std::int64_t d : {64, 80, 96, 128, 256})
        for (const Problem& p : attention_variants(d)) {
            REQUIRE(t.supports(p));
            cases.emplace_back(p, t.space(p)->default_config());
        }
    for (std::int64_t page : {16, 7}) {  // a paged KV cache: decode with split-KV, and a causal prefill
        Problem decode = make_attention(2, 32, 8, 1, 5000, 128, true, 0, DType::bf16), prefill = make_attention(1, 8, 2, 200, 333, 128, true, 0, DType::bf16);
        decode.set_dim("page", page);
        prefill.set_dim("page", page);
        for (const Problem& p : {decode, prefill}) {
            REQUIRE(t.supports(p));
            cases.emplace_back(p, t.space(p)->default_config());
        }
    }
    for (Problem p : attention_variants(128)) {  // f16 inputs, held to the f32 bound (exact products, f32 sums)
        p.dtype = DType::f16;
        Problem f32 = p;
        f32.dtype = DType::f32;
        p.tolerance = default_tolerance(f32);
        cases.emplace_back(p, t.space(p)->default_config());
    }
    expect_all_ok(t, cases);
}

TEST_CASE("cuda.attention.flash covering samples (every knob value, p_split off under a loose tolerance) are correct", "[cuda][attention]") {
    const Template& t = tmpl("cuda.attention.flash");
    std::vector<std::pair<Problem, Config>> cases;
    for (Problem p : {make_attention(1, 8, 2, 300, 300, 128, true, 0, DType::bf16),
                      make_attention(1, 16, 2, 3, 5000, 64, true, 0, DType::bf16),
                      make_attention(1, 4, 4, 200, 200, 256, false, 48, DType::bf16)}) {
        p.tolerance = 0.02;  // admits rounding P once (p_split = 0)
        for (const Config& c : covering(*t.space(p))) cases.emplace_back(p, c);
    }
    expect_all_ok(t, cases);
}

TEST_CASE("cuda.attention.wgmma (sm_90a) default and covering sample are correct: masks, GQA, ragged tiles, both head dims and 16-bit types", "[cuda][attention]") {
    const Template& t = tmpl("cuda.attention.wgmma");
    std::vector<Problem> problems = {make_attention(1, 8, 2, 333, 333, 128, true, 0, DType::bf16),
                                     make_attention(2, 4, 4, 100, 420, 128, true, 0, DType::bf16),
                                     make_attention(1, 8, 1, 257, 257, 64, true, 64, DType::bf16),
                                     make_attention(1, 4, 2, 77, 150, 128, false, 0, DType::bf16),
                                     make_attention(1, 4, 2, 200, 200, 64, false, 48, DType::f16),
                                     make_attention(1, 4, 2, 150, 40, 128, true, 0, DType::bf16)};  // rows without keys
    if (!t.supports(problems.front())) {
        WARN("device is " << env().device.arch << ": cuda.attention.wgmma needs sm_90a");
        return;
    }
    std::vector<std::pair<Problem, Config>> cases;
    for (const Problem& p : problems) {
        REQUIRE(t.supports(p));
        cases.emplace_back(p, t.space(p)->default_config());
    }
    Problem loose = make_attention(1, 8, 2, 300, 300, 128, true, 0, DType::bf16);
    loose.tolerance = 0.02;  // admits rounding P once (p_split = 0)
    for (const Config& c : covering(*t.space(loose))) cases.emplace_back(loose, c);
    expect_all_ok(t, cases);
}

TEST_CASE("cuda.attention.flash split-KV reports its workspace, a memory cap can exclude it", "[cuda][attention]") {
    const Template& t = tmpl("cuda.attention.flash");
    const Problem p = make_attention(1, 32, 8, 1, 16384, 128, true, 0, DType::bf16);
    Config c = t.space(p)->default_config();
    c.set("split_kv", std::int64_t{16});
    const std::size_t expected = std::size_t(16) * 32 * (128 + 1) * sizeof(float);
    CHECK(t.workspace_bytes(p, c) == expected);
    CHECK(t.instantiate(p, c)->workspace_bytes() == expected);
    expect_ok(p, t, c);
}

std::vector<Problem> backward_variants(std::int64_t d) {
    std::vector<Problem> out = {make_attention(1, 8, 2, 333, 333, d, true, 0, DType::bf16),
                                make_attention(2, 4, 1, 100, 420, d, true, 64, DType::bf16),
                                make_attention(1, 4, 4, 77, 150, d, false, 0, DType::f16),
                                make_attention(1, 4, 2, 150, 40, d, true, 0, DType::bf16)};  // rows without keys
    for (Problem& p : out) p.set_dim("backward", 1);
    return out;
}

TEST_CASE("cuda.attention.flash_backward default config is correct in both modes for every head dim, mask and GQA", "[cuda][attention]") {
    const Template& t = tmpl("cuda.attention.flash_backward");
    std::vector<std::pair<Problem, Config>> cases;
    for (std::int64_t d : {64, 80, 96, 128, 256})
        for (const Problem& p : backward_variants(d)) {
            REQUIRE(t.supports(p));
            for (const char* mode : {"recompute", "store"}) {
                Config c = t.space(p)->default_config();
                c.set("mode", std::string(mode));
                cases.emplace_back(p, c);
            }
        }
    expect_all_ok(t, cases);
}

TEST_CASE("cuda.attention.flash_backward covering sample (every knob value) is correct, store reports its dS workspace", "[cuda][attention]") {
    const Template& t = tmpl("cuda.attention.flash_backward");
    std::vector<std::pair<Problem, Config>> cases;
    for (Problem p : {make_attention(1, 8, 2, 300, 300, 128, true, 0, DType::bf16),
                      make_attention(1, 4, 4, 200, 200, 64, false, 48, DType::f16)}) {
        p.set_dim("backward", 1);
        for (const Config& c : covering(*t.space(p))) cases.emplace_back(p, c);
    }
    expect_all_ok(t, cases);
    Problem p = make_attention(1, 8, 2, 300, 300, 128, true, 0, DType::bf16);
    p.set_dim("backward", 1);
    Config c = t.space(p)->default_config();
    c.set("mode", std::string("store"));
    CHECK(t.workspace_bytes(p, c) == std::size_t(8) * 300 * 300 * sizeof(float));
    CHECK(t.instantiate(p, c)->workspace_bytes() == t.workspace_bytes(p, c));
    c.set("mode", std::string("recompute"));
    CHECK(t.workspace_bytes(p, c) == 0);
}

int main(int argc, char** argv) {
    try {
        env();
    } catch (const std::exception& e) {
        std::printf("skipped: CUDA device tests: %s\n", e.what());
        return 77;
    }
    std::printf("device: %s\n", env().device.summary().c_str());
    return Catch::Session().run(argc, argv);
}
