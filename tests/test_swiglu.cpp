// cpu.swiglu.blocked: out = silu(x W_gate^T) * (x W_up^T) on the blocked GEMM driver; both
// `fusion` modes with sampled blocking configs and every micro-kernel match the fp64
// reference on edge shapes, the workspace each mode needs is reported, and the tuner
// verifies swiglu and GEMM-epilogue candidates like any other.
#include <catch2/catch.hpp>
#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "fast_measure.hpp"
#include "tune/db/database.hpp"
#include "tune/error.hpp"
#include "tune/measurer.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/tuner.hpp"
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

const std::vector<Shape> kEdgeShapes{{1, 1, 1},  {7, 13, 17},   {31, 67, 129}, {1, 100, 70},  {45, 70, 1},
                                     {50, 1, 33}, {61, 200, 150}, {16, 33, 65},  {2, 37, 1100}, {130, 400, 300}};

Config with_fusion(Config c, const char* fusion) {
    c.set("fusion", std::string(fusion));
    return c;
}

bool host_has_bf16() { return host().isa.avx512f && host().isa.avx512bw && host().isa.avx512_bf16; }

bool is_bf16_kernel(const std::string& label) {
    return label.rfind("avx512bf16", 0) == 0 || label.rfind("amx_", 0) == 0;
}

void check(const Template& t, const Problem& p, const Config& c, std::uint64_t seed) {
    test::check_against_reference(t, p, c, seed, 2);
}

}  // namespace

TEST_CASE("cpu.swiglu.blocked describes itself, supports f32 swiglu and has the fusion knob", "[swiglu]") {
    auto t = make_cpu_swiglu_template(host());
    CHECK(t->info().name == "cpu.swiglu.blocked");
    CHECK(t->info().op == OpKind::swiglu);
    CHECK(t->info().backend == Backend::cpu);
    CHECK(t->info().version.size() == 16);
    CHECK(t->info().version != make_cpu_gemm_template(host())->info().version);
    CHECK(t->supports(make_swiglu(4, 8, 8)));
    CHECK_FALSE(t->supports(make_gemm(4, 8, 8)));
    CHECK(t->supports(make_swiglu(4, 8, 8, DType::bf16)) == host_has_bf16());
    auto s = t->space(make_swiglu(4, 8, 8));
    CHECK(s == t->space(make_swiglu(1, 14336, 4096)));
    REQUIRE(s->knob("fusion") != nullptr);
    CHECK(s->default_config().get_str("fusion") == "fused");
    for (const char* shared : {"ukernel", "mc", "kc", "nc", "pack_a", "pack_b", "threads", "split"})
        CHECK(s->knob(shared) != nullptr);
    Config c = s->default_config();
    c.set("pack_b", std::int64_t{0});  // weights are n x k: the trans_b rule applies
    CHECK_THAT(s->violation(c).value_or(""), Catch::Contains("pack_b_needed_for_trans_b"));
    CHECK_THROWS_AS(t->instantiate(make_gemm(4, 8, 8), s->default_config()), Error);
}

TEST_CASE("the unfused mode reports its 2 m n intermediate floats of workspace", "[swiglu]") {
    auto t = make_cpu_swiglu_template(host());
    const Problem p = make_swiglu(16, 1000, 256);
    const Config def = t->space(p)->default_config();
    const auto fused = t->instantiate(p, with_fusion(def, "fused"))->workspace_bytes();
    const auto unfused = t->instantiate(p, with_fusion(def, "unfused"))->workspace_bytes();
    CHECK(unfused >= 2 * 16 * 1000 * sizeof(float));
    CHECK(fused > 0);  // packing of both weight blocks and the up tiles, no m x n intermediate
    const Problem tall = make_swiglu(1024, 1000, 256);
    CHECK(t->instantiate(tall, with_fusion(def, "unfused"))->workspace_bytes() >= 2 * 1024 * 1000 * sizeof(float));
}

TEST_CASE("fused and unfused swiglu match the reference on edge shapes with sampled configs", "[swiglu]") {
    auto t = make_cpu_swiglu_template(host());
    std::mt19937_64 rng(5);
    std::size_t i = 0;
    for (const Shape& s : kEdgeShapes)
        for (const char* fusion : {"fused", "unfused"})
            for (int rep = 0; rep < 3; ++rep) {
                const Problem p = make_swiglu(s.m, s.n, s.k);
                auto c = rep == 0 ? std::optional<Config>(t->space(p)->default_config()) : t->space(p)->sample(rng);
                REQUIRE(c.has_value());
                check(*t, p, with_fusion(*c, fusion), ++i);
            }
}

TEST_CASE("every micro-kernel computes fused and unfused swiglu", "[swiglu]") {
    auto t = make_cpu_swiglu_template(host());
    std::mt19937_64 rng(9);
    const Problem probe = make_swiglu(4, 4, 4);
    std::size_t i = 0;
    for (const auto& v : t->space(probe)->knob("ukernel")->values)
        for (const char* fusion : {"fused", "unfused"})
            for (const char* split : {"m", "n"}) {
                const Shape& s = kEdgeShapes[2 + i++ % (kEdgeShapes.size() - 2)];
                const Problem p = make_swiglu(s.m, s.n, s.k);
                std::optional<Config> c;
                do c = t->space(p)->sample(rng);
                while (c && (c->get_str("ukernel") != std::get<std::string>(v) ||
                             (host().cores > 1 && c->get_str("split") != split)));
                REQUIRE(c.has_value());
                check(*t, p, with_fusion(*c, fusion), i);
            }
}

TEST_CASE("the tuner measures and verifies swiglu (f32 and bf16) and epilogue candidates", "[swiglu][epilogue]") {
    auto db = make_memory_database();
    TemplateRegistry reg;
    reg.add(make_cpu_swiglu_template(host()));
    reg.add(make_cpu_gemm_template(host()));
    MeasureOptions fast = test::fast_measure_options();
    fast.max_reps = 5;
    Measurer m(host(), fast);
    Tuner tuner(*db, reg, m, db->start_run({0, "test", "random", 0, "", ""}, m.device()));
    TuneOptions opt;
    opt.strategy = "random";
    opt.budget = 6;
    std::vector<Problem> problems{make_swiglu(5, 70, 33),
                                  with_epilogue(make_gemm(5, 70, 33, DType::f32, false, true), true, Activation::gelu, true)};
    if (host_has_bf16()) problems.push_back(make_swiglu(16, 96, 64, DType::bf16));
    for (const Problem& p : problems) {
        INFO(shape_key(p));
        auto r = tuner.tune(p, opt);
        REQUIRE(r.best);
        CHECK(r.failed == 0);
        CHECK(r.measured > 0);
        if (p.dtype == DType::bf16) CHECK(is_bf16_kernel(r.best->config.get_str("ukernel")));
    }
}

TEST_CASE("a swiglu decode row defaults to the dot-form kernel, and that default runs correctly", "[swiglu]") {
    auto t = make_cpu_swiglu_template(host());
    const Problem one = make_swiglu(1, 70, 33), many = make_swiglu(40, 70, 33);
    CHECK(t->default_config(many) == t->space(many)->default_config());
    if (host().isa.avx512f) CHECK(t->default_config(one).get_str("ukernel") == "avx512dot_1x8");
    for (const char* fusion : {"fused", "unfused"}) check(*t, one, with_fusion(t->default_config(one), fusion), 1);
    // One row group per thread takes the weights in chunks of columns (1024 for 1x8, 252 for
    // 4x6): several chunks with a ragged last one, on one thread and split over threads.
    if (!host().isa.avx512f) return;
    for (const auto& [m, n, kernel] : {std::tuple{1, 2100, "avx512dot_1x8"}, std::tuple{3, 600, "avx512dot_4x6"},
                                       std::tuple{7, 530, "avx512dot_4x6"}})
        for (const char* threads : {"threads=1 split=m", "threads=2 split=m", "threads=2 split=n"}) {
            if (host().cores < 2 && threads[8] == '2') continue;
            const Problem p = make_swiglu(m, n, 40);
            Config c = t->default_config(p);
            c.set("ukernel", std::string(kernel));
            const Config fixed = Config::parse(threads);
            for (const auto& [name, value] : fixed.values()) c.set(name, value);
            check(*t, p, with_fusion(c, "fused"), std::uint64_t(n));
        }
}

TEST_CASE("the tuner measures a decode row's shape default first, then the space's default", "[swiglu][tuner]") {
    if (!host().isa.avx512f) return;
    auto db = make_memory_database();
    TemplateRegistry reg;
    reg.add(make_cpu_gemm_template(host()));
    Measurer m(host(), test::fast_measure_options());
    Tuner tuner(*db, reg, m, db->start_run({0, "test", "random", 0, "", ""}, m.device()));
    TuneOptions opt;
    opt.strategy = "random";
    opt.budget = 2;
    opt.confirm_rounds = 0;
    const Problem p = make_gemm(1, 70, 33, DType::f32, false, true);
    auto r = tuner.tune(p, opt);
    REQUIRE(r.default_config);
    CHECK(r.default_config->config == reg.find("cpu.gemm.blocked")->default_config(p));
    std::vector<std::string> measured;
    for (const auto& row : db->query({})) measured.push_back(row.config.get_str("ukernel"));
    CHECK(measured.size() == 2);
    CHECK(std::count(measured.begin(), measured.end(), "avx512dot_1x8") == 1);
    // With threads fixed to 1 the shape default keeps its kernel and takes the fixed value.
    opt.fixed_knobs = Config::parse("threads=1 split=m");
    auto one = tuner.tune(make_gemm(1, 71, 33, DType::f32, false, true), opt);
    REQUIRE(one.default_config);
    CHECK(one.default_config->config.get_str("ukernel") == "avx512dot_1x8");
    CHECK(one.default_config->config.get_int("threads") == 1);
}

TEST_CASE("bf16 swiglu: every bf16 micro-kernel, fused and unfused, both splits, matches the reference", "[swiglu][bf16]") {
    if (!host_has_bf16()) return;
    auto t = make_cpu_swiglu_template(host());
    const auto space = t->space(make_swiglu(4, 4, 4, DType::bf16));
    CHECK(space == t->space(make_swiglu(1, 14336, 4096, DType::bf16)));
    CHECK(space != t->space(make_swiglu(4, 4, 4)));
    const auto labels = test::ukernel_labels(*space);
    REQUIRE_FALSE(labels.empty());
    for (const auto& l : labels) CHECK(is_bf16_kernel(l));  // the dot-form ones too
    CHECK(std::find(labels.begin(), labels.end(), "avx512bf16dot_4x6") != labels.end());
    std::mt19937_64 rng(17);
    std::size_t i = 0;
    for (const auto& label : labels)
        for (const char* fusion : {"fused", "unfused"})
            for (const char* split : {"m", "n"}) {
                const Shape& s = kEdgeShapes[i++ % kEdgeShapes.size()];
                const Problem p = make_swiglu(s.m, s.n, s.k, DType::bf16);
                Config c;
                do c = test::sample_with_ukernel(*t->space(p), rng, label);
                while (host().cores > 1 && c.get_str("split") != split);
                check(*t, p, with_fusion(c, fusion), i);
            }
    // The decode default is the bf16 dot kernel, and it runs.
    const Problem one = make_swiglu(1, 70, 33, DType::bf16);
    CHECK(t->default_config(one).get_str("ukernel") == "avx512bf16dot_1x8");
    for (const char* fusion : {"fused", "unfused"}) check(*t, one, with_fusion(t->default_config(one), fusion), 99);
}

TEST_CASE("f32 swiglu gets the bf16 micro-kernels only when its accuracy budget admits bf16 compute", "[swiglu][bf16]") {
    if (!host_has_bf16()) return;
    auto t = make_cpu_swiglu_template(host());
    Problem p = make_swiglu(45, 70, 300);
    for (const auto& l : test::ukernel_labels(*t->space(p))) CHECK_FALSE(is_bf16_kernel(l));
    p.tolerance = bf16_compute_tolerance(p) * 0.99;  // just under: exact f32 only
    for (const auto& l : test::ukernel_labels(*t->space(p))) CHECK_FALSE(is_bf16_kernel(l));

    p.tolerance = bf16_compute_tolerance(p);
    const auto space = t->space(p);
    CHECK_FALSE(is_bf16_kernel(space->default_config().get_str("ukernel")));  // the default stays f32
    const auto starts = space->starts();
    REQUIRE(starts.size() == 2);  // local search starts from both precisions
    CHECK(is_bf16_kernel(starts[1].get_str("ukernel")));
    std::mt19937_64 rng(23);
    std::size_t bf16_kernels = 0;
    for (const auto& label : test::ukernel_labels(*space)) {
        if (!is_bf16_kernel(label)) continue;
        ++bf16_kernels;
        for (const char* fusion : {"fused", "unfused"}) {
            // Rounded to bf16 as they are packed: within the stated budget, over the exact one.
            const Config c = with_fusion(test::sample_with_ukernel(*space, rng, label), fusion);
            INFO(c.text());
            Workload w(p, bf16_kernels);
            t->instantiate(p, c)->run(w.args());
            CHECK(w.error() <= p.tolerance);
            CHECK(w.error() > default_tolerance(make_swiglu(45, 70, 300)));
        }
    }
    CHECK(bf16_kernels > 0);
    // A config with a bf16 kernel is not valid for the exact problem.
    Config bf = starts[1];
    CHECK_THROWS_AS(t->instantiate(make_swiglu(45, 70, 300), bf), Error);
}
