// tune_hip_device_tests: numerical tests of the HIP templates (GEMM and attention, forward and
// backward) on a real AMD GPU, against the host fp64 reference through the Measurer (the path
// tuning uses), on the problem lists the CUDA device tests use (gpu_device_checks.hpp).
// Without a HIP device it prints why and exits 77 (CTest: skipped). test_hip.cpp checks on
// any machine that every problem here is supported and every config valid.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "gpu_device_checks.hpp"
#include "tune/error.hpp"
#include "tune/hip/runtime.hpp"

using namespace tune;
using namespace tune::device_checks;

using D = On<Backend::hip>;

TEST_CASE("hip.gemm.mfma default config is correct on both 16-bit types, both layouts, ragged shapes and epilogues", "[hip]") {
    const Template& t = D::tmpl("hip.gemm.mfma");
    for (DType dt : {DType::bf16, DType::f16})
        for (bool tb : {false, true}) D::expect_all_ok(t, defaults(t, gemm_variants(dt, tb)));
}

TEST_CASE("hip.gemm.mfma covering sample (every knob value) is correct", "[hip]") {
    const Template& t = D::tmpl("hip.gemm.mfma");
    D::expect_all_ok(t, covering_cases(t, {make_gemm(520, 392, 1032, DType::bf16, false, false),
                                            make_gemm(520, 392, 1032, DType::bf16, false, true)}));
}

TEST_CASE("hip: instantiating a measured config (the Dispatcher's path) reuses its binary without compiling", "[hip]") {
    D::expect_binary_reused(D::tmpl("hip.gemm.mfma"), hip::shared_runtime()->compiler());
}

TEST_CASE("hip.attention.flash default config is correct for every head dim, mask, GQA, decode split, paged KV and both 16-bit types", "[hip][attention]") {
    const Template& t = D::tmpl("hip.attention.flash");
    D::expect_all_ok(t, defaults(t, attention_default_problems()));
}

TEST_CASE("hip.attention.flash covering samples (every knob value) are correct", "[hip][attention]") {
    const Template& t = D::tmpl("hip.attention.flash");
    D::expect_all_ok(t, covering_cases(t, attention_covering_problems()));
}

TEST_CASE("hip.attention.flash_backward default config in both modes and a covering sample are correct", "[hip][attention]") {
    const Template& t = D::tmpl("hip.attention.flash_backward");
    D::expect_all_ok(t, backward_mode_cases(t));
    D::expect_all_ok(t, covering_cases(t, backward_covering_problems()));
}

int main(int argc, char** argv) { return run_device_tests(Backend::hip, argc, argv); }
