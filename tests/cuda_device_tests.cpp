// tune_cuda_device_tests: numerical tests of the CUDA templates (GEMM and attention) on a real
// device, against the host fp64 reference through the Measurer (the path tuning uses). Without a CUDA device it
// prints why and exits 77 (CTest: skipped); scripts/gpu-check.sh runs it on a GPU machine.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "gpu_device_checks.hpp"
#include "tune/cuda/runtime.hpp"
#include "tune/error.hpp"

using namespace tune;
using namespace tune::device_checks;

using D = On<Backend::cuda>;

TEST_CASE("cuda.gemm.mma default config is correct on every dtype, layout, ragged shape and epilogue", "[cuda]") {
    const Template& t = D::tmpl("cuda.gemm.mma");
    for (DType dt : {DType::bf16, DType::f32})
        for (bool tb : {false, true})
            for (const Problem& p : gemm_variants(dt, tb)) D::expect_ok(p, t, t.space(p)->default_config());
}

TEST_CASE("cuda.gemm.mma covering sample (every knob value) is correct", "[cuda]") {
    const Template& t = D::tmpl("cuda.gemm.mma");
    for (bool tb : {false, true}) {
        const Problem p = make_gemm(520, 392, 1032, DType::bf16, false, tb);
        for (const Config& c : covering(*t.space(p))) D::expect_ok(p, t, c);
    }
}

TEST_CASE("cuda.gemm.wgmma (sm_90a) default and covering sample are correct", "[cuda]") {
    const Template& t = D::tmpl("cuda.gemm.wgmma");
    const Problem square = make_gemm(1024, 1024, 1024, DType::bf16, false, true);
    if (!t.supports(square)) {
        WARN("device is " << D::env().device.arch << ": cuda.gemm.wgmma needs sm_90a");
        return;
    }
    for (const Problem& p : gemm_variants(DType::bf16, true)) D::expect_ok(p, t, t.space(p)->default_config());
    const Problem ragged = make_gemm(520, 392, 1032, DType::bf16, false, true, 2);
    for (const Config& c : covering(*t.space(ragged))) D::expect_ok(ragged, t, c);
}

TEST_CASE("cuda.gemm.cublaslt algorithms are correct or say the heuristic list is shorter", "[cuda]") {
    const Template& t = D::tmpl("cuda.gemm.cublaslt");
    const Problem p = with_epilogue(make_gemm(512, 384, 640, DType::bf16, false, true), true, Activation::gelu, false);
    REQUIRE(t.supports(p));
    D::expect_ok(p, t, Config{{"algo", std::int64_t{0}}});
    for (std::int64_t a = 1; a < 4; ++a) {
        const Measurement m = D::env().measurer->measure(p, t, Config{{"algo", a}});
        INFO(m.reason);
        CHECK((m.status == Status::ok || m.reason.find("heuristic returned") != std::string::npos));
    }
}

TEST_CASE("instantiating a measured config (the Dispatcher's path) reuses its binary without compiling", "[cuda]") {
    D::expect_binary_reused(D::tmpl("cuda.gemm.mma"), cuda::shared_runtime()->compiler());
}

TEST_CASE("cuda.attention.flash default config is correct for every head dim, mask, GQA, decode split, paged KV and both 16-bit types", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.flash");
    D::expect_all_ok(t, defaults(t, attention_default_problems()));
}

TEST_CASE("cuda.attention.flash covering samples (every knob value, p_split off under a loose tolerance) are correct", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.flash");
    D::expect_all_ok(t, covering_cases(t, attention_covering_problems()));
}

TEST_CASE("cuda.attention.wgmma (sm_90a) default and covering sample are correct: masks, GQA, ragged tiles, both head dims and 16-bit types", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.wgmma");
    std::vector<Problem> problems = {make_attention(1, 8, 2, 333, 333, 128, true, 0, DType::bf16),
                                     make_attention(2, 4, 4, 100, 420, 128, true, 0, DType::bf16),
                                     make_attention(1, 8, 1, 257, 257, 64, true, 64, DType::bf16),
                                     make_attention(1, 4, 2, 77, 150, 128, false, 0, DType::bf16),
                                     make_attention(1, 4, 2, 200, 200, 64, false, 48, DType::f16),
                                     make_attention(1, 4, 2, 150, 40, 128, true, 0, DType::bf16)};  // rows without keys
    if (!t.supports(problems.front())) {
        WARN("device is " << D::env().device.arch << ": cuda.attention.wgmma needs sm_90a");
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
    D::expect_all_ok(t, cases);
}

TEST_CASE("cuda.attention.flash split-KV reports its workspace, a memory cap can exclude it", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.flash");
    const Problem p = make_attention(1, 32, 8, 1, 16384, 128, true, 0, DType::bf16);
    Config c = t.space(p)->default_config();
    c.set("split_kv", std::int64_t{16});
    const std::size_t expected = std::size_t(16) * 32 * (128 + 1) * sizeof(float);
    CHECK(t.workspace_bytes(p, c) == expected);
    CHECK(t.instantiate(p, c)->workspace_bytes() == expected);
    D::expect_ok(p, t, c);
}

TEST_CASE("cuda.attention.flash_backward default config is correct in both modes for every head dim, mask and GQA", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.flash_backward");
    D::expect_all_ok(t, backward_mode_cases(t));
}

TEST_CASE("cuda.attention.flash_backward covering sample (every knob value) is correct, store reports its dS workspace", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.flash_backward");
    D::expect_all_ok(t, covering_cases(t, backward_covering_problems()));
    Problem p = make_attention(1, 8, 2, 300, 300, 128, true, 0, DType::bf16);
    p.set_dim("backward", 1);
    Config c = t.space(p)->default_config();
    c.set("mode", std::string("store"));
    CHECK(t.workspace_bytes(p, c) == std::size_t(8) * 300 * 300 * sizeof(float));
    CHECK(t.instantiate(p, c)->workspace_bytes() == t.workspace_bytes(p, c));
    c.set("mode", std::string("recompute"));
    CHECK(t.workspace_bytes(p, c) == 0);
}

TEST_CASE("cuda.attention.mma_backward default config is correct in both modes for every head dim up to 128, mask and GQA", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.mma_backward");
    D::expect_all_ok(t, backward_mode_cases(t, 128));
}

TEST_CASE("cuda.attention.mma_backward covering sample (every knob value, split = 0 under a tolerance) is correct", "[cuda][attention]") {
    const Template& t = D::tmpl("cuda.attention.mma_backward");
    std::vector<Problem> problems = backward_covering_problems();
    for (Problem& p : problems)
        if (p.dtype == DType::bf16) p.tolerance = 0.02;  // admits rounding dO, P and dS once
    D::expect_all_ok(t, covering_cases(t, problems));
}

int main(int argc, char** argv) { return run_device_tests(Backend::cuda, argc, argv); }
