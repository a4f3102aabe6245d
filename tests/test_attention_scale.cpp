// Attention's user scale: validation, the shape key and JSON, and every CPU template (fused
// with each inner kernel and split-KV, unfused, backward) against the fp64 reference under it.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "gemm_checks.hpp"
#include "tune/templates/cpu_attention.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

}  // namespace

TEST_CASE("an attention scale defaults to 1/sqrt(head_dim) and must be finite and positive", "[attention][scale]") {
    const Problem p = make_attention(1, 4, 2, 8, 8, 64);
    CHECK(attention_dims(p).scale == 0.125);
    CHECK(attention_dims(with_scale(p, 0.3)).scale == 0.3);
    for (double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()})
        CHECK_THROWS_WITH(with_scale(p, bad), Catch::Contains("scale must be finite and > 0"));
    Problem negative = p;
    negative.scale = -0.5;
    CHECK_THROWS_WITH(validate(negative), Catch::Contains("scale must be finite and > 0"));
    Problem gemm = make_gemm(8, 8, 8);
    CHECK_THROWS_WITH(with_scale(gemm, 0.5), Catch::Contains("attention only"));
    gemm.scale = 0.5;
    CHECK_THROWS_WITH(validate(gemm), Catch::Contains("attention only"));
}

TEST_CASE("an attention scale is part of the shape key and round-trips through key and JSON", "[attention][scale]") {
    const Problem plain = make_attention(1, 4, 2, 8, 8, 64, true);
    CHECK(shape_key(plain).find("scale") == std::string::npos);  // existing keys are unchanged
    Problem scaled = with_scale(plain, 0.1);
    scaled.tolerance = 0.01;
    const std::string key = shape_key(scaled);
    CHECK(key.find(" scale=0.1 tol=0.01") != std::string::npos);
    CHECK(key != shape_key(plain));
    CHECK(parse_shape_key(key) == scaled);
    CHECK(parse_shape_key(shape_key(with_scale(plain, 1.0 / 3))) == with_scale(plain, 1.0 / 3));
    CHECK_THROWS_WITH(parse_shape_key(shape_key(plain) + " scale=-2"), Catch::Contains("'scale' must be a positive"));
    nlohmann::json j = scaled;
    CHECK(j["scale"] == 0.1);
    CHECK(j.get<Problem>() == scaled);
    j["scale"] = 0;
    CHECK_THROWS_WITH(j.get<Problem>(), Catch::Contains("'scale' must be finite and > 0"));
    nlohmann::json gemm = make_gemm(8, 8, 8);
    gemm["scale"] = 0.5;
    CHECK_THROWS_WITH(gemm.get<Problem>(), Catch::Contains("unknown field 'scale'"));
}

TEST_CASE("every attention template honours the problem's scale", "[attention][scale]") {
    if (!host().isa.avx512f) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    auto unfused = make_cpu_attention_unfused_template(host());
    auto backward = make_cpu_attention_backward_template(host());
    std::uint64_t seed = 40;
    for (double scale : {0.05, 0.37, 1.5})
        for (bool causal : {false, true}) {
            const Problem prefill = with_scale(make_attention(1, 4, 2, 37, 45, 80, causal), scale);
            test::check_against_reference(*unfused, prefill, unfused->space(prefill)->default_config(), seed);
            const Space& s = *fused->space(prefill);
            for (const auto& inner : s.knob("inner")->values) {
                Config c = s.default_config();
                test::check_against_reference(*fused, prefill, c.set("inner", inner), seed);
            }
            const Problem decode = with_scale(make_attention(1, 8, 2, 1, 301, 64, causal), scale);
            Config split = fused->space(decode)->default_config();
            test::check_against_reference(*fused, decode, split.set("split_kv", std::int64_t{4}), seed);
            Problem grad = prefill;
            grad.set_dim("backward", 1);
            for (const char* mode : {"store", "recompute"}) {
                Config c = backward->space(grad)->default_config();
                test::check_against_reference(*backward, grad, c.set("mode", std::string(mode)), seed);
            }
            ++seed;
        }
}

TEST_CASE("the attention reference checks the scale: a kernel with the default scale fails a scaled problem",
          "[attention][scale]") {
    if (!host().isa.avx512f) return;
    auto fused = make_cpu_attention_fused_template(host());
    const Problem plain = make_attention(1, 2, 1, 16, 16, 32);
    const Problem scaled = with_scale(plain, 0.5);
    Workload w(scaled, 9);
    fused->instantiate(plain, fused->space(plain)->default_config())->run(w.args());
    CHECK(w.error() > 100 * default_tolerance(scaled));
    fused->instantiate(scaled, fused->space(scaled)->default_config())->run(w.args());
    CHECK(w.error() <= default_tolerance(scaled));
}

TEST_CASE("a peaked softmax whose small weights underflow in f32 passes the check", "[attention][scale]") {
    // At scale 20 most weights are far below 1e-38: f32 computes them as 0 or (the kernels'
    // exp clamps its argument) about 1e-38. Neither is wrong, but a relative error model made
    // every backward config fail: a gradient of 1e-46 came out as 1e-37.
    if (!host().isa.avx512f) return;
    auto fused = make_cpu_attention_fused_template(host());
    auto backward = make_cpu_attention_backward_template(host());
    for (double scale : {6.0, 20.0}) {
        const Problem forward = with_scale(make_attention(1, 2, 2, 13, 33, 96, false), scale);
        test::check_against_reference(*fused, forward, fused->space(forward)->default_config(), 3);
        Problem grad = forward;
        grad.set_dim("backward", 1);
        for (const char* mode : {"store", "recompute"}) {
            Config c = backward->space(grad)->default_config();
            test::check_against_reference(*backward, grad, c.set("mode", std::string(mode)), 3);
        }
    }
}
