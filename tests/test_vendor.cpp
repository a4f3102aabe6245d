// The vendor GEMM templates (cpu.gemm.openblas, cpu.gemm.onednn) held to the fp64 reference:
// f32 (both) and bf16 (oneDNN), every transpose combination, batch 1 and 2, edge shapes; their `threads`
// knob, version strings, and what they refuse.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/workload.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

struct Shape {
    std::int64_t m, n, k;
};

// Single elements, decode rows (m = 1), k = 1, primes, and sizes past typical vendor blocks.
const std::vector<Shape> kEdgeShapes{{1, 1, 1},   {1, 100, 70}, {7, 13, 17},  {45, 70, 1},
                                     {50, 1, 33}, {31, 67, 129}, {2, 37, 1100}, {130, 257, 300}};

Config with_threads(std::int64_t threads) {
    Config c;
    c.set("threads", threads);
    return c;
}

// Runs (p, c) on poisoned outputs and checks the error against the problem's tolerance.
void check_against_reference(const Template& t, const Problem& p, const Config& c) {
    INFO(t.info().name << " " << shape_key(p) << " " << c.text());
    REQUIRE(t.supports(p));
    auto kernel = t.instantiate(p, c);
    Workload w(p, 1);
    w.poison_outputs();
    kernel->run(w.args());
    const double error = w.error();
    INFO("error " << error << " tolerance " << default_tolerance(p));
    CHECK(error <= default_tolerance(p));
}

// The input types each vendor template computes (Debian's OpenBLAS has no cblas_sbgemm).
std::vector<DType> dtypes_of(const Template& t) {
    if (t.info().name == "cpu.gemm.onednn") return {DType::f32, DType::bf16};
    return {DType::f32};
}

std::vector<std::unique_ptr<Template>> vendor_templates() {
    std::vector<std::unique_ptr<Template>> out;
    out.push_back(make_openblas_gemm_template(host()));
    out.push_back(make_onednn_gemm_template(host()));
    return out;
}

}  // namespace

TEST_CASE("vendor templates match the reference for f32 and bf16, all transposes, batch 1 and 2", "[vendor]") {
    for (const auto& t : vendor_templates()) {
        const Config c = t->space(make_gemm(4, 4, 4))->default_config();
        for (DType dtype : dtypes_of(*t))
            for (bool ta : {false, true})
                for (bool tb : {false, true})
                    for (std::int64_t batch : {1, 2})
                        for (const Shape& s : kEdgeShapes)
                            check_against_reference(*t, make_gemm(s.m, s.n, s.k, dtype, ta, tb, batch), c);
    }
}

TEST_CASE("vendor templates: every threads value computes the same product", "[vendor]") {
    for (const auto& t : vendor_templates()) {
        const auto space = t->space(make_gemm(4, 4, 4));
        REQUIRE(space->knobs().size() == 1);
        const Knob& threads = space->knobs()[0];
        CHECK(threads.name == "threads");
        CHECK(space->default_config().get_int("threads") == std::max(1, host().cores));
        REQUIRE(threads.values.size() == static_cast<std::size_t>(std::max(1, host().cores)));
        for (const KnobValue& v : threads.values)
            for (DType dtype : dtypes_of(*t))
                for (const Shape& s : {Shape{1, 300, 200}, Shape{97, 131, 211}, Shape{256, 256, 256}})
                    check_against_reference(*t, make_gemm(s.m, s.n, s.k, dtype, false, true),
                                            with_threads(std::get<std::int64_t>(v)));
    }
}

TEST_CASE("vendor templates reject thread counts outside 1..cores", "[vendor]") {
    for (const auto& t : vendor_templates()) {
        INFO(t->info().name);
        CHECK_THROWS_WITH(t->instantiate(make_gemm(4, 4, 4), with_threads(0)), Catch::Contains("threads"));
        CHECK_THROWS_WITH(t->instantiate(make_gemm(4, 4, 4), with_threads(host().cores + 1)),
                          Catch::Contains("threads"));
    }
}

TEST_CASE("vendor templates are named, marked vendor, versioned by their library, and settle", "[vendor]") {
    auto openblas = make_openblas_gemm_template(host());
    auto onednn = make_onednn_gemm_template(host());
    CHECK(openblas->info().name == "cpu.gemm.openblas");
    CHECK(onednn->info().name == "cpu.gemm.onednn");
    for (const Template* t : {openblas.get(), onednn.get()}) {
        CHECK(t->info().vendor);
        CHECK(t->info().op == OpKind::gemm);
        CHECK(t->info().backend == Backend::cpu);
        CHECK_FALSE(t->info().version.empty());
    }
    CHECK(openblas->info().version != onednn->info().version);
    CHECK_THAT(onednn->info().version, Catch::Contains("-onednn2."));
    // Stable within a process: the version is what stored results are keyed on.
    CHECK(make_onednn_gemm_template(host())->info().version == onednn->info().version);
    // Both libraries' threads spin after a call: the Measurer waits that out before the next candidate.
    CHECK(openblas->info().settle_s == kOpenblasSettleSeconds);
    CHECK(onednn->info().settle_s == kOnednnSettleSeconds);
    CHECK(kOnednnSettleSeconds >= 0.01);  // the window measured by bench_threads
}

TEST_CASE("vendor templates refuse epilogues, other dtypes and other ops", "[vendor]") {
    for (const auto& t : vendor_templates()) {
        INFO(t->info().name);
        const std::vector<DType> computed = dtypes_of(*t);
        for (DType dtype : {DType::f32, DType::bf16}) {
            const bool listed = std::find(computed.begin(), computed.end(), dtype) != computed.end();
            CHECK(t->supports(make_gemm(8, 8, 8, dtype)) == listed);
        }
        CHECK_FALSE(t->supports(make_gemm(8, 8, 8, DType::f16)));
        CHECK_FALSE(t->supports(make_gemm(8, 8, 8, DType::f64)));
        CHECK_FALSE(t->supports(with_epilogue(make_gemm(8, 8, 8), true, Activation::none, false)));
        CHECK_FALSE(t->supports(with_epilogue(make_gemm(8, 8, 8), false, Activation::silu, false)));
        CHECK_FALSE(t->supports(with_epilogue(make_gemm(8, 8, 8, DType::bf16), false, Activation::none, true)));
        CHECK_FALSE(t->supports(make_swiglu(8, 8, 8)));
        const Problem epilogue = with_epilogue(make_gemm(8, 8, 8), true, Activation::gelu, false);
        CHECK_THROWS_WITH(t->instantiate(epilogue, t->space(epilogue)->default_config()),
                          Catch::Contains("unsupported problem"));
    }
}

TEST_CASE("vendor kernels check their operands", "[vendor]") {
    for (const auto& t : vendor_templates()) {
        INFO(t->info().name);
        const Problem p = make_gemm(4, 4, 4);
        auto kernel = t->instantiate(p, t->space(p)->default_config());
        Workload w(p, 1);
        const void* one_input[] = {w.args().inputs[0]};
        CHECK_THROWS_AS(kernel->run({one_input, w.args().outputs}), Error);
        const void* null_inputs[] = {nullptr, w.args().inputs[1]};
        CHECK_THROWS_WITH(kernel->run({null_inputs, w.args().outputs}), Catch::Contains("null operand"));
    }
}

TEST_CASE("cpu.gemm.onednn kernels run concurrently with different thread counts", "[vendor]") {
    // OpenMP's thread count is per calling thread, so two kernels built with different
    // `threads` may run side by side; one kernel shared by two threads serialises itself.
    auto t = make_onednn_gemm_template(host());
    const Problem p = make_gemm(96, 160, 224, DType::f32, false, true, 2);
    auto one = t->instantiate(p, with_threads(1));
    auto all = t->instantiate(p, with_threads(std::max(1, host().cores)));
    std::vector<std::unique_ptr<Workload>> workloads;
    for (int i = 0; i < 4; ++i) workloads.push_back(std::make_unique<Workload>(p, 1));
    auto loop = [](const Kernel& k, Workload& w) {
        for (int rep = 0; rep < 20; ++rep) {
            w.poison_outputs();
            k.run(w.args());
        }
    };
    std::thread a(loop, std::cref(*one), std::ref(*workloads[0]));
    std::thread b(loop, std::cref(*all), std::ref(*workloads[1]));
    std::thread c(loop, std::cref(*all), std::ref(*workloads[2]));
    loop(*one, *workloads[3]);
    a.join();
    b.join();
    c.join();
    for (const auto& w : workloads) CHECK(w->error() <= default_tolerance(p));
}
