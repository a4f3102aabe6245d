// The CPU GEMM templates: every micro-kernel and sampled config against an fp64 reference on
// edge shapes and all transpose combinations, the space's rules and their names, and the
// OpenBLAS vendor template held to the same reference.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tune/error.hpp"
#include "tune/templates/cpu_gemm.hpp"
#include "tune/thread_pool.hpp"
#include "gemm_checks.hpp"

using namespace tune;

namespace {

struct Shape {
    std::int64_t m, n, k;
};

// 1x1x1, primes, non-multiples of every tile, decode rows (m = 1), k = 1, and sizes that
// cross the smallest mc (24), kc (64) and nc (192) so every blocking loop runs more than once;
// k = 1100 exceeds the largest kc.
const std::vector<Shape> kEdgeShapes{{1, 1, 1},   {7, 13, 17},   {31, 67, 129}, {1, 100, 70},
                                     {45, 70, 1}, {50, 1, 33},   {61, 200, 150}, {16, 33, 65},
                                     {2, 37, 1100}, {130, 400, 300}};

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

struct Operands {
    std::vector<float> a, b, c;
};

Operands random_operands(const Problem& p, std::uint64_t seed) {
    const GemmDims d = gemm_dims(p);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    Operands o{std::vector<float>(d.batch * d.m * d.k), std::vector<float>(d.batch * d.k * d.n),
               std::vector<float>(d.batch * d.m * d.n, std::nanf(""))};  // C must be overwritten
    for (auto& x : o.a) x = dist(rng);
    for (auto& x : o.b) x = dist(rng);
    return o;
}

// Largest violation of |C - ref| <= 2 k u sum_p |a||b| (plus a denormal floor); <= 0 passes.
double worst_excess(const Problem& p, const Operands& o) {
    const GemmDims d = gemm_dims(p);
    const double u = std::ldexp(1.0, -24);
    double worst = -1;
    for (std::int64_t item = 0; item < d.batch; ++item) {
        const float* A = o.a.data() + item * d.m * d.k;
        const float* B = o.b.data() + item * d.k * d.n;
        const float* C = o.c.data() + item * d.m * d.n;
        for (std::int64_t i = 0; i < d.m; ++i)
            for (std::int64_t j = 0; j < d.n; ++j) {
                double sum = 0, mag = 0;
                for (std::int64_t q = 0; q < d.k; ++q) {
                    const double a = d.trans_a ? A[q * d.m + i] : A[i * d.k + q];
                    const double b = d.trans_b ? B[j * d.k + q] : B[q * d.n + j];
                    sum += a * b;
                    mag += std::fabs(a * b);
                }
                const double c = C[i * d.n + j];
                const double excess = std::isfinite(c) ? std::fabs(c - sum) - (2.0 * d.k * u * mag + 1e-30)
                                                       : HUGE_VAL;
                worst = std::max(worst, excess);
            }
    }
    return worst;
}

void run_kernel(const Kernel& kernel, Operands& o) {
    const void* in[] = {o.a.data(), o.b.data()};
    void* out[] = {o.c.data()};
    kernel.run({in, out});
}

// Runs (p, c) on fresh operands and checks the result against the reference.
void check_config(const Template& t, const Problem& p, const Config& c) {
    INFO(shape_key(p) << " | " << c.text());
    Operands o = random_operands(p, Config(c).hash() ^ ProblemHash{}(p));
    auto kernel = t.instantiate(p, c);
    run_kernel(*kernel, o);
    CHECK(worst_excess(p, o) <= 0);
}

using test::sample_with_ukernel;
using test::ukernel_labels;

std::string violation_of(const Space& s, const Config& c) { return s.violation(c).value_or(""); }

}  // namespace

TEST_CASE("cpu.gemm.blocked describes itself and supports f32 (and bf16 where the CPU has it) gemm", "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    CHECK(t->info().name == "cpu.gemm.blocked");
    CHECK(t->info().op == OpKind::gemm);
    CHECK(t->info().backend == Backend::cpu);
    CHECK_FALSE(t->info().vendor);
    CHECK(t->info().version.size() == 16);
    CHECK(t->supports(make_gemm(8, 8, 8)));
    CHECK(t->supports(make_gemm(8, 8, 8, DType::bf16)) == (host().isa.avx512_bf16 && host().isa.avx512bw));
    CHECK_FALSE(t->supports(make_gemm(8, 8, 8, DType::f64)));
}

TEST_CASE("the ukernel knob offers only kernels the device's ISA runs", "[gemm]") {
    DeviceInfo avx2_only = host();
    avx2_only.isa = CpuIsa{};
    avx2_only.isa.avx2 = avx2_only.isa.fma = true;
    auto t2 = make_cpu_gemm_template(avx2_only);
    REQUIRE(t2->supports(make_gemm(4, 4, 4)));
    for (const auto& label : ukernel_labels(*t2->space(make_gemm(4, 4, 4)))) CHECK(label.rfind("avx2_", 0) == 0);

    DeviceInfo none = host();
    none.isa = CpuIsa{};
    auto t0 = make_cpu_gemm_template(none);
    CHECK_FALSE(t0->supports(make_gemm(4, 4, 4)));
    CHECK_THROWS_AS(t0->space(make_gemm(4, 4, 4)), Error);

    if (host().isa.avx512f) {
        auto t = make_cpu_gemm_template(host());
        const auto labels = ukernel_labels(*t->space(make_gemm(4, 4, 4)));
        CHECK(std::find(labels.begin(), labels.end(), "avx512_14x32") != labels.end());
        CHECK(std::find(labels.begin(), labels.end(), "avx2_6x16") != labels.end());
    }
}

TEST_CASE("space(p) is built once per transpose pair and shared", "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    CHECK(t->space(make_gemm(8, 8, 8)) == t->space(make_gemm(100, 3, 7)));
    CHECK(t->space(make_gemm(8, 8, 8, DType::f32, false, true)) ==
          t->space(make_gemm(1, 4096, 4096, DType::f32, false, true)));
    CHECK(t->space(make_gemm(8, 8, 8)) != t->space(make_gemm(8, 8, 8, DType::f32, false, true)));
}

TEST_CASE("the default config is valid for every transpose pair and computes correctly", "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            const Problem p = make_gemm(37, 53, 71, DType::f32, ta, tb);
            const Config def = t->space(p)->default_config();
            CHECK_FALSE(t->space(p)->violation(def).has_value());
            CHECK(def.get_int("pack_b") == 1);
            CHECK(def.get_int("threads") == std::max(1, host().cores));
            check_config(*t, p, def);
        }
}

TEST_CASE("space rules are named: pack_b with trans_b, mc a multiple of the tile rows", "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    const Problem nt = make_gemm(16, 64, 64, DType::f32, false, true);
    const Problem nn = make_gemm(16, 64, 64);
    Config c = t->space(nt)->default_config();

    c.set("pack_b", std::int64_t{0});
    CHECK_THAT(violation_of(*t->space(nt), c), Catch::Contains("pack_b_needed_for_trans_b"));
    CHECK_FALSE(t->space(nn)->violation(c).has_value());  // B read in place when not transposed
    CHECK_THROWS_WITH(t->instantiate(nt, c), Catch::Contains("pack_b_needed_for_trans_b"));

    Config odd = t->space(nn)->default_config();
    odd.set("ukernel", std::string("avx2_6x16"));
    odd.set("mc", std::int64_t{28});  // 28 % 6 != 0
    CHECK_THAT(violation_of(*t->space(nn), odd), Catch::Contains("mc_multiple_of_tile_rows"));
    CHECK_THROWS_AS(t->instantiate(nn, odd), Error);

    Config single = t->space(nn)->default_config();
    single.set("threads", std::int64_t{1});
    single.set("split", std::string("n"));
    CHECK_THAT(violation_of(*t->space(nn), single), Catch::Contains("split_m_when_single_thread"));

    Config unknown = t->space(nn)->default_config();
    unknown.set("ukernel", std::string("avx512_99x99"));
    CHECK_THROWS_WITH(t->instantiate(nn, unknown), Catch::Contains("ukernel"));
    Config bad_kc = t->space(nn)->default_config();
    bad_kc.set("kc", std::int64_t{100});
    CHECK_THROWS_WITH(t->instantiate(nn, bad_kc), Catch::Contains("kc"));
}

TEST_CASE("every micro-kernel with sampled configs matches the fp64 reference on edge shapes",
          "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    std::mt19937_64 rng(20240601);
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            const auto space = t->space(make_gemm(1, 1, 1, DType::f32, ta, tb));
            for (const auto& label : ukernel_labels(*space))
                for (const Shape& s : kEdgeShapes)
                    for (int draw = 0; draw < 3; ++draw)
                        check_config(*t, make_gemm(s.m, s.n, s.k, DType::f32, ta, tb),
                                     sample_with_ukernel(*space, rng, label));
        }
}

TEST_CASE("packing, threads and split never change the result", "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    const auto space = t->space(make_gemm(1, 1, 1));
    for (const Shape& s : {Shape{61, 200, 150}, Shape{3, 211, 97}, Shape{1, 13, 5}})
        for (bool ta : {false, true})
            for (bool tb : {false, true})
                for (int pack_a = 0; pack_a < 2; ++pack_a)
                    for (int pack_b = tb ? 1 : 0; pack_b < 2; ++pack_b)
                        for (const auto& split : {"m", "n"}) {
                            Config c = space->default_config();
                            c.set("mc", std::int64_t{24}).set("kc", std::int64_t{64}).set("nc", std::int64_t{192});
                            c.set("ukernel", std::string(host().isa.avx512f ? "avx512_8x32" : "avx2_6x16"));
                            c.set("pack_a", std::int64_t{pack_a}).set("pack_b", std::int64_t{pack_b});
                            c.set("split", std::string(split));
                            check_config(*t, make_gemm(s.m, s.n, s.k, DType::f32, ta, tb), c);
                        }
}

TEST_CASE("configs in one equivalence class compute bit-identical results with the same workspace", "[gemm]") {
    // Template::equivalence_key: blocks at least the dim they block are one class. Every
    // legal mc, kc, nc value is tried on sampled configs; members of the sample's class must
    // be the same computation (bitwise equal C, equal scratch), and smaller blocks a new class.
    auto t = make_cpu_gemm_template(host());
    std::mt19937_64 rng(7);
    std::size_t merged = 0;
    for (const Shape& s : {Shape{5, 40, 70}, Shape{16, 200, 130}, Shape{30, 33, 300}})
        for (bool tb : {false, true}) {
            const Problem p = make_gemm(s.m, s.n, s.k, DType::f32, false, tb);
            const auto space = t->space(p);
            for (int sample = 0; sample < 6; ++sample) {
                auto c = space->sample(rng);
                REQUIRE(c.has_value());
                const std::uint64_t key = t->equivalence_key(p, *c).hash();
                Operands base = random_operands(p, 11);
                run_kernel(*t->instantiate(p, *c), base);
                for (const char* knob : {"mc", "kc", "nc"})
                    for (const auto& v : space->knob(knob)->values) {
                        Config other = *c;
                        other.set(knob, std::get<std::int64_t>(v));
                        if (other == *c || space->violation(other)) continue;
                        const std::int64_t value = std::get<std::int64_t>(v), was = c->get_int(knob);
                        const std::int64_t dim = std::string(knob) == "mc" ? s.m : std::string(knob) == "kc" ? s.k : s.n;
                        if (t->equivalence_key(p, other).hash() != key) {
                            CHECK((value < dim || was < dim));  // a block that splits its dim: another class
                            continue;
                        }
                        INFO(shape_key(p) << " | " << c->text() << " ~ " << other.text());
                        ++merged;
                        CHECK(t->workspace_bytes(p, other) == t->workspace_bytes(p, *c));
                        Operands o = random_operands(p, 11);
                        run_kernel(*t->instantiate(p, other), o);
                        CHECK(std::memcmp(o.c.data(), base.c.data(), o.c.size() * sizeof(float)) == 0);
                    }
            }
        }
    CHECK(merged > 50);

    // Decode rows: every mc is one class; at m = 512 mc matters.
    const Problem decode = make_gemm(16, 1024, 1024, DType::f32, false, true);
    Config a = t->space(decode)->default_config(), b = a;
    a.set("mc", std::int64_t{48});
    b.set("mc", std::int64_t{384});
    CHECK(t->equivalence_key(decode, a) == t->equivalence_key(decode, b));
    const Problem prefill = make_gemm(512, 1024, 1024, DType::f32, false, true);
    CHECK(t->equivalence_key(prefill, a) != t->equivalence_key(prefill, b));
}

TEST_CASE("batched problems compute each product independently", "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    std::mt19937_64 rng(7);
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            const Problem p = make_gemm(19, 45, 33, DType::f32, ta, tb, 2);
            check_config(*t, p, t->space(p)->default_config());
            for (int draw = 0; draw < 3; ++draw) check_config(*t, p, *t->space(p)->sample(rng));
        }
}

TEST_CASE("a kernel reports its packing workspace and runs from several threads at once", "[gemm]") {
    auto t = make_cpu_gemm_template(host());
    const Problem p = make_gemm(70, 90, 130, DType::f32, false, true);
    const Config c = t->space(p)->default_config();
    auto kernel = t->instantiate(p, c);
    CHECK(kernel->workspace_bytes() >= sizeof(float) * 130 * 32);  // at least one packed B panel

    std::vector<Operands> ops;
    for (int i = 0; i < 3; ++i) ops.push_back(random_operands(p, 100 + i));
    std::vector<std::thread> callers;
    for (auto& o : ops)
        callers.emplace_back([&kernel, &o] {
            for (int rep = 0; rep < 20; ++rep) run_kernel(*kernel, o);
        });
    for (auto& th : callers) th.join();
    for (auto& o : ops) CHECK(worst_excess(p, o) <= 0);
}

TEST_CASE("the thread pool runs every index once and rethrows task errors", "[gemm]") {
    ThreadPool pool(3, false);
    for (int threads = 1; threads <= 3; ++threads) {
        std::vector<int> hits(3, 0);
        for (int rep = 0; rep < 100; ++rep) pool.parallel_for(threads, [&](int t) { ++hits[t]; });
        for (int t = 0; t < 3; ++t) CHECK(hits[t] == (t < threads ? 100 : 0));
    }
    CHECK_THROWS_WITH(pool.parallel_for(2, [](int t) { if (t == 1) throw Error("worker failed"); }),
                      "worker failed");
    CHECK_THROWS_AS(pool.parallel_for(4, [](int) {}), Error);
}

TEST_CASE("cpu.gemm.openblas is a vendor template that matches the reference", "[gemm]") {
    auto t = make_openblas_gemm_template(host());
    CHECK(t->info().name == "cpu.gemm.openblas");
    CHECK(t->info().vendor);
    CHECK_FALSE(t->info().version.empty());
    CHECK_FALSE(t->supports(make_gemm(4, 4, 4, DType::bf16)));
    const auto space = t->space(make_gemm(4, 4, 4));
    REQUIRE(space->knobs().size() == 1);
    CHECK(space->knobs()[0].name == "threads");
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const Shape& s : {Shape{1, 1, 1}, Shape{31, 67, 129}, Shape{1, 100, 70}}) {
                check_config(*t, make_gemm(s.m, s.n, s.k, DType::f32, ta, tb, 2), space->default_config());
            }
    Config bad;
    bad.set("threads", std::int64_t{host().cores + 1});
    CHECK_THROWS_WITH(t->instantiate(make_gemm(4, 4, 4), bad), Catch::Contains("threads"));
}

TEST_CASE("dot-form micro-kernels join only the A m x k times B n x k spaces and match the reference there",
          "[gemm]") {
    if (!host().isa.avx512f) return;  // the dot-form kernels are AVX-512
    auto t = make_cpu_gemm_template(host());
    auto dot_labels = [](const Space& s) {
        std::vector<std::string> out;
        for (const auto& l : ukernel_labels(s))
            if (l.find("dot_") != std::string::npos) out.push_back(l);
        return out;
    };
    const auto labels = dot_labels(*t->space(make_gemm(1, 8, 8, DType::f32, false, true)));
    CHECK(labels == std::vector<std::string>{"avx512dot_1x8", "avx512dot_2x8", "avx512dot_4x6"});
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            if (!ta && tb) continue;
            const Problem p = make_gemm(1, 8, 8, DType::f32, ta, tb);
            CHECK(dot_labels(*t->space(p)).empty());
            Config c = t->space(p)->default_config();
            c.set("ukernel", std::string("avx512dot_1x8"));
            CHECK_THROWS_WITH(t->instantiate(p, c), Catch::Contains("ukernel"));
        }

    // Every dot kernel: m and n below, at and past its tile, k off the 16-lane vector (and
    // k = 1), both splits, 1 and 2 threads, every epilogue, 3 batch items.
    const Shape shapes[] = {{1, 1, 1}, {1, 9, 17}, {3, 37, 1100}, {5, 13, 33}, {16, 50, 64}, {7, 200, 129}};
    std::size_t i = 0;
    for (const auto& label : labels)
        for (const Shape& s : shapes)
            for (const char* split : {"m", "n"}) {
                ++i;
                const Activation act = i % 3 == 0 ? Activation::none : i % 3 == 1 ? Activation::gelu : Activation::silu;
                Problem p = make_gemm(s.m, s.n, s.k, DType::f32, false, true, i % 2 == 0 ? 3 : 1);
                if (i % 4 != 0) p = with_epilogue(p, i % 2 == 0, act, i % 5 != 0);
                Config c = t->space(p)->default_config();
                c.set("ukernel", label).set("split", std::string(split));
                c.set("threads", std::int64_t{i % 3 == 0 ? 1 : host().cores});
                if (c.get_int("threads") == 1) c.set("split", std::string("m"));
                if (c.find("epilogue")) c.set("epilogue", std::string(i % 2 == 0 ? "fused" : "separate"));
                test::check_against_reference(*t, p, c, i, 2);
            }

    // The template's default at decode sizes: the dot kernel whose rows fit m.
    auto default_ukernel = [&](const Problem& q) {
        const Config c = t->default_config(q);
        CHECK_FALSE(t->space(q)->violation(c).has_value());
        return c.get_str("ukernel");
    };
    const std::string packed = t->space(make_gemm(1, 1, 1))->default_config().get_str("ukernel");
    CHECK(default_ukernel(make_gemm(1, 64, 64, DType::f32, false, true)) == "avx512dot_1x8");
    CHECK(default_ukernel(make_gemm(2, 64, 64, DType::f32, false, true)) == "avx512dot_2x8");
    CHECK(default_ukernel(make_gemm(9, 64, 64, DType::f32, false, true)) == "avx512dot_4x6");
    CHECK(default_ukernel(make_gemm(17, 64, 64, DType::f32, false, true)) == packed);
    CHECK(default_ukernel(make_gemm(1, 64, 64)) == packed);
    CHECK(default_ukernel(make_gemm(1, 64, 64, DType::f32, true, true)) == packed);
    if (host().isa.avx512_bf16 && host().isa.avx512bw)
        CHECK(default_ukernel(make_gemm(1, 64, 64, DType::bf16, false, true)) == "avx512bf16dot_1x8");
    check_config(*t, make_gemm(3, 70, 33, DType::f32, false, true), t->default_config(make_gemm(3, 70, 33, DType::f32, false, true)));

    // Blocks and packing do not apply: one equivalence class, no scratch.
    const Problem p = make_gemm(4, 100, 300, DType::f32, false, true);
    Config a = t->space(p)->default_config();
    a.set("ukernel", std::string("avx512dot_4x6"));
    Config b = a;
    b.set("mc", std::int64_t{24}).set("kc", std::int64_t{64}).set("nc", std::int64_t{192}).set("pack_a", std::int64_t{0});
    CHECK(t->equivalence_key(p, a) == t->equivalence_key(p, b));
    CHECK(t->workspace_bytes(p, a) == 0);
}
