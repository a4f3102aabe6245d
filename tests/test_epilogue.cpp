// cpu.gemm.blocked with an epilogue (C = act(op(A) op(B) + bias) + residual): the `epilogue`
// knob exists only where there is one, and both placements (fused into the tile store,
// separate pass) match the fp64 reference for every activation x bias x residual x transpose
// combination, sampled configs, every micro-kernel and edge shapes.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "tune/templates/cpu_gemm.hpp"
#include "tune/workload.hpp"
#include "gemm_checks.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

struct Shape {
    std::int64_t m, n, k;
};

// 1, primes, non-multiples of every tile, k = 1, shapes that cross mc/kc/nc so every blocking
// loop (and the last-k-block test) runs more than once; k = 1100 exceeds the largest kc.
const std::vector<Shape> kEdgeShapes{{1, 1, 1},  {7, 13, 17},   {31, 67, 129}, {1, 100, 70},  {45, 70, 1},
                                     {50, 1, 33}, {61, 200, 150}, {16, 33, 65},  {2, 37, 1100}, {130, 400, 300}};
constexpr Activation kActs[] = {Activation::none, Activation::gelu, Activation::silu};

Config with_placement(Config c, const char* placement) {
    c.set("epilogue", std::string(placement));
    return c;
}

using test::check_against_reference;

}  // namespace

TEST_CASE("the epilogue knob exists only in spaces of problems with an epilogue", "[epilogue]") {
    auto t = make_cpu_gemm_template(host());
    const Problem plain = make_gemm(16, 64, 64, DType::f32, false, true);
    const Problem fused = with_epilogue(plain, true, Activation::silu, false);
    CHECK(t->space(plain)->knob("epilogue") == nullptr);
    REQUIRE(t->space(fused)->knob("epilogue") != nullptr);
    CHECK(t->space(fused)->default_config().get_str("epilogue") == "fused");
    // One space per class: any epilogue, any size shares it; the plain class has its own.
    CHECK(t->space(fused) == t->space(with_epilogue(make_gemm(1, 4096, 4096, DType::f32, false, true), false,
                                                    Activation::none, true)));
    CHECK(t->space(fused) != t->space(plain));
    CHECK(t->space(fused) != t->space(with_epilogue(make_gemm(16, 64, 64), true, Activation::silu, false)));
    CHECK(t->supports(fused));

    Config bad = t->space(fused)->default_config();
    bad.set("epilogue", std::string("later"));
    CHECK_THROWS(t->instantiate(fused, bad));
}

TEST_CASE("fused and separate epilogues match the reference for every act x bias x residual x transpose",
          "[epilogue]") {
    auto t = make_cpu_gemm_template(host());
    std::mt19937_64 rng(7);
    std::size_t shape = 0;
    for (Activation act : kActs)
        for (bool bias : {false, true})
            for (bool residual : {false, true})
                for (bool ta : {false, true})
                    for (bool tb : {false, true})
                        for (const char* placement : {"fused", "separate"})
                            for (int rep = 0; rep < 2; ++rep) {
                                const Shape& s = kEdgeShapes[shape++ % kEdgeShapes.size()];
                                const Problem p =
                                    with_epilogue(make_gemm(s.m, s.n, s.k, DType::f32, ta, tb), bias, act, residual);
                                auto sp = t->space(p);
                                auto c = rep == 0 ? std::optional<Config>(sp->default_config()) : sp->sample(rng);
                                REQUIRE(c.has_value());
                                if (!p.dims[6] && !p.dims[7] && !p.dims[8]) {
                                    check_against_reference(*t, p, *c, shape);  // no knob: the plain class
                                } else {
                                    check_against_reference(*t, p, with_placement(*c, placement), shape);
                                }
                            }
}

TEST_CASE("every micro-kernel applies both epilogue placements on every edge shape", "[epilogue]") {
    auto t = make_cpu_gemm_template(host());
    std::mt19937_64 rng(11);
    const Problem probe = with_epilogue(make_gemm(8, 8, 8), true, Activation::gelu, true);
    std::vector<std::string> labels;
    for (const auto& v : t->space(probe)->knob("ukernel")->values) labels.push_back(std::get<std::string>(v));
    std::size_t i = 0;
    for (const auto& label : labels)
        for (const char* placement : {"fused", "separate"})
            for (int rep = 0; rep < 3; ++rep) {
                const Shape& s = kEdgeShapes[i++ % kEdgeShapes.size()];
                const Activation act = kActs[1 + i % 2];
                const Problem p = with_epilogue(make_gemm(s.m, s.n, s.k, DType::f32, i % 3 == 0, i % 2 == 0),
                                                i % 4 != 0, act, i % 5 != 0);
                std::optional<Config> c;
                do c = t->space(p)->sample(rng);
                while (c && c->get_str("ukernel") != label);
                REQUIRE(c.has_value());
                check_against_reference(*t, p, with_placement(*c, placement), i);
            }
}

TEST_CASE("a batched epilogue shares the bias and takes each item's own residual", "[epilogue]") {
    auto t = make_cpu_gemm_template(host());
    const Problem p = with_epilogue(make_gemm(19, 45, 33, DType::f32, false, true, 3), true, Activation::silu, true);
    for (const char* placement : {"fused", "separate"})
        for (const char* split : {"m", "n"}) {
            Config c = with_placement(t->space(p)->default_config(), placement);
            c.set("split", std::string(split));
            c.set("threads", std::int64_t{std::min(2, std::max(1, host().cores))});
            if (t->space(p)->violation(c)) c.set("split", std::string("m"));  // one core: split m only
            check_against_reference(*t, p, c, 3);
        }
}

TEST_CASE("vectorised gelu and silu stay within a few ulp over a wide input range", "[epilogue]") {
    // C = act(A B) with k = 1, A = 1: C is the activation of B's entries, checked against the
    // double definitions (relative a few float ulp, or the |x| u the GEMM bound grants anyway).
    auto t = make_cpu_gemm_template(host());
    std::vector<float> xs;
    for (float x = -30.0f; x <= 30.0f; x += 0.0137f) xs.push_back(x);
    for (float x : {-1e4f, -100.0f, -88.0f, -1e-30f, 0.0f, 1e-30f, 88.0f, 100.0f, 1e4f, 1e20f, -1e20f}) xs.push_back(x);
    const auto n = static_cast<std::int64_t>(xs.size());
    const double u = std::ldexp(1.0, -24);
    for (Activation act : {Activation::gelu, Activation::silu}) {
        const Problem p = with_epilogue(make_gemm(1, n, 1), false, act, false);
        for (const char* placement : {"fused", "separate"}) {
            auto kernel = t->instantiate(p, with_placement(t->space(p)->default_config(), placement));
            const float one = 1.0f;
            std::vector<float> c(xs.size(), std::nanf(""));
            const void* in[] = {&one, xs.data()};
            void* out[] = {c.data()};
            kernel->run({in, out});
            for (std::size_t j = 0; j < xs.size(); ++j) {
                const double x = xs[j], ref = act == Activation::gelu ? gelu(x) : silu(x);
                const double allowed = 6 * u * std::fabs(ref) + 2 * u * std::fabs(x) + 1e-37;
                INFO("act " << int(act) << " " << placement << " x = " << x << " got " << c[j] << " want " << ref);
                REQUIRE(std::isfinite(c[j]));
                CHECK(std::fabs(c[j] - ref) <= allowed);
            }
        }
    }
}
