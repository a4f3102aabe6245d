// Attention: the fp64 reference and its masks, both CPU templates against it for every mask,
// MHA/GQA/MQA, odd head dims and lengths (1, primes), sampled configs; the workspace a config
// reports; and the memory cap as a tuning constraint.
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "fast_measure.hpp"
#include "gemm_checks.hpp"
#include "tune/db/database.hpp"
#include "tune/measurer.hpp"
#include "tune/templates/cpu_attention.hpp"
#include "tune/tuner.hpp"
#include "tune/workload.hpp"
#include "../templates/attention/cpu/kernels.hpp"

using namespace tune;

namespace {

const DeviceInfo& host() {
    static const DeviceInfo d = detect_cpu();
    return d;
}

bool have_avx512() { return host().isa.avx512f; }

struct Mask {
    bool causal;
    std::int64_t window;
};
constexpr Mask kMasks[] = {{false, 0}, {true, 0}, {true, 5}, {false, 4}};

// One sequence's heads, query and key lengths and head dim.
struct Shape {
    std::int64_t heads, kv_heads, q, kv, d;
};

// Every mask of kMasks with every shape: f(problem of dtype, the mask's and shape's dims).
template <std::size_t N, class F>
void for_masks_and_shapes(const Shape (&shapes)[N], DType dtype, F&& f) {
    for (const Mask& mask : kMasks)
        for (const Shape& sh : shapes)
            f(make_attention(1, sh.heads, sh.kv_heads, sh.q, sh.kv, sh.d, mask.causal, mask.window, dtype));
}

}  // namespace

TEST_CASE("attention masks: causal aligns the last query with the last key, windows count back", "[attention]") {
    AttentionDims a = attention_dims(make_attention(1, 2, 1, 3, 5, 8, true, 0));
    CHECK(a.key_range(0) == std::pair<std::int64_t, std::int64_t>{0, 3});  // query 0 sits at key 2
    CHECK(a.key_range(2) == std::pair<std::int64_t, std::int64_t>{0, 5});
    a.window = 2;
    CHECK(a.key_range(2) == std::pair<std::int64_t, std::int64_t>{3, 5});
    a.causal = false;  // a window alone looks both ways
    CHECK(a.key_range(0) == std::pair<std::int64_t, std::int64_t>{1, 4});
    AttentionDims empty = attention_dims(make_attention(1, 1, 1, 4, 2, 8, true, 0));
    CHECK(empty.key_range(0).first == empty.key_range(0).second);  // sits before the first key
    // Masked pairs are not counted as work.
    CHECK(flop_count(make_attention(1, 1, 1, 4, 4, 8, true)) == 4.0 * 8 * (1 + 2 + 3 + 4));
    CHECK_THROWS_WITH(validate(make_attention(1, 6, 4, 3, 3, 8)), Catch::Contains("multiple of kv_heads"));
}

TEST_CASE("attention templates need AVX-512F and f32 operands, or bf16 ones for the fused forward", "[attention]") {
    DeviceInfo plain = host();
    plain.isa.avx512f = false;
    Problem p = make_attention(1, 2, 1, 8, 8, 16);
    CHECK_FALSE(make_cpu_attention_fused_template(plain)->supports(p));
    CHECK_FALSE(make_cpu_attention_unfused_template(plain)->supports(p));
    DeviceInfo full = host();
    full.isa.avx512f = true;
    CHECK(make_cpu_attention_fused_template(full)->supports(p));
    p.dtype = DType::bf16;
    CHECK(make_cpu_attention_fused_template(full)->supports(p));
    CHECK_FALSE(make_cpu_attention_fused_template(plain)->supports(p));
    CHECK_FALSE(make_cpu_attention_unfused_template(full)->supports(p));
    p.dtype = DType::f16;
    CHECK_FALSE(make_cpu_attention_fused_template(full)->supports(p));
}

TEST_CASE("the attention error metric rejects a result that ignores the mask", "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto t = make_cpu_attention_fused_template(host());
    Problem causal = make_attention(1, 2, 2, 9, 9, 16, true);
    Problem full = make_attention(1, 2, 2, 9, 9, 16, false);
    Workload w(causal, 3);
    auto kernel = t->instantiate(full, t->space(full)->default_config());
    w.poison_outputs();
    CHECK(std::isnan(w.error()));  // unwritten outputs
    kernel->run(w.args());
    CHECK(w.error() > 100 * default_tolerance(causal));
    auto right = t->instantiate(causal, t->space(causal)->default_config());
    right->run(w.args());
    CHECK(w.error() <= default_tolerance(causal));
}

TEST_CASE("both attention templates match the fp64 reference: masks, GQA/MQA, odd dims, prime lengths", "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    auto unfused = make_cpu_attention_unfused_template(host());
    std::mt19937_64 rng(7);
    struct Heads {
        std::int64_t heads, kv_heads;
    };
    const Heads kHeads[] = {{4, 4}, {4, 2}, {3, 1}};  // MHA, GQA, MQA
    const std::int64_t kDims[] = {64, 80, 96, 128, 256, 37};
    const std::pair<std::int64_t, std::int64_t> kLengths[] = {{1, 1}, {1, 97}, {13, 13}, {31, 61}, {61, 31}, {7, 131}};
    std::uint64_t seed = 1;
    for (const Mask& mask : kMasks)
        for (const Heads& h : kHeads)
            for (auto [q, kv] : kLengths) {
                const std::int64_t d = kDims[seed % std::size(kDims)];
                Problem p = make_attention(1 + std::int64_t(seed % 3 == 0), h.heads, h.kv_heads, q, kv, d, mask.causal,
                                           mask.window);
                REQUIRE(fused->supports(p));
                test::check_against_reference(*unfused, p, unfused->space(p)->default_config(), seed);
                test::check_against_reference(*fused, p, fused->space(p)->default_config(), seed, 2);
                for (int i = 0; i < 3; ++i) {
                    auto c = fused->space(p)->sample(rng);
                    REQUIRE(c.has_value());
                    test::check_against_reference(*fused, p, *c, seed);
                }
                ++seed;
            }
}

TEST_CASE("every inner kernel of the fused template matches the reference: masks, GQA, odd sizes", "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    // Lengths and head dims off the tile sizes (MR 8..14, 32 columns, k_tile 32..), so every
    // edge path (padded key panel, padded V columns, padding query rows) runs.
    const Shape kShapes[] = {{4, 4, 37, 37, 80}, {4, 2, 45, 70, 37}, {3, 1, 29, 29, 128}, {2, 2, 1, 53, 96}};
    std::uint64_t seed = 100;
    for_masks_and_shapes(kShapes, DType::f32, [&](const Problem& p) {
        const Space& s = *fused->space(p);
        for (const auto& inner : s.knob("inner")->values)
            for (std::int64_t q_tile : {8, 32})
                for (std::int64_t k_tile : {32, 64}) {
                    Config c = s.default_config();
                    c.set("inner", inner).set("k_tile", k_tile);
                    if (p.dim("q_len") > 16) c.set("q_tile", q_tile);
                    if (s.knob("gqa_pack")) c.set("gqa_pack", std::int64_t(seed % 2));
                    INFO(shape_key(p) << " " << c.text());
                    test::check_against_reference(*fused, p, c, seed++);
                }
    });
}

TEST_CASE("every head dim runs through the fused template", "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    std::mt19937_64 rng(11);
    for (std::int64_t d : {1, 15, 16, 17, 64, 80, 96, 128, 129, 256}) {
        Problem p = make_attention(1, 2, 1, 19, 23, d, true, 0);
        auto c = fused->space(p)->sample(rng);
        REQUIRE(c.has_value());
        test::check_against_reference(*fused, p, *c, std::uint64_t(d));
    }
}

TEST_CASE("split-KV decode matches the reference for every split count", "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    for (bool causal : {false, true})
        for (std::int64_t window : {0, 40}) {
            Problem p = make_attention(2, 8, 2, 1, 509, 128, causal, window);
            const Space& s = *fused->space(p);
            REQUIRE(s.knob("split_kv") != nullptr);
            for (const auto& split : s.knob("split_kv")->values) {
                Config c = s.default_config();
                c.set("split_kv", split);
                test::check_against_reference(*fused, p, c, 5);
            }
        }
}

TEST_CASE("key-major decode (a task walks the keys once for every head unit) matches the reference", "[attention][paged]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    std::uint64_t seed = 40;
    // GQA packed and per head, masks, every split, f32 and bf16 K/V, contiguous and paged
    // (pages of 16 and of 7, so runs end inside key tiles), 1 and 3 queries.
    for (const DType dtype : {DType::f32, DType::bf16})
        for (const std::int64_t page : {0, 16, 7})
            for (const bool causal : {true, false}) {
                Problem p = make_attention(2, 8, 2, causal ? 1 : 3, 301, 64, causal, causal ? 0 : 40, dtype);
                p.set_dim("page", page);
                const Space& s = *fused->space(p);
                for (const auto& split : s.knob("split_kv")->values)
                    for (const std::int64_t pack : {1, 0}) {
                        Config c = s.default_config();
                        c.set("loop_order", std::string("key_major")).set("split_kv", split).set("gqa_pack", pack);
                        c.set("k_tile", std::int64_t(seed % 2 ? 32 : 64));
                        test::check_against_reference(*fused, p, c, seed++, 2);
                    }
            }
    // Only the dot inner loops take it; with one head unit per sequence it is the same config.
    const Problem gqa = make_attention(1, 32, 8, 1, 4096, 128, true), mqa = make_attention(1, 8, 1, 1, 4096, 128, true);
    Config c = fused->space(gqa)->default_config();
    c.set("loop_order", std::string("key_major"));
    CHECK_FALSE(fused->space(gqa)->violation(c).has_value());
    CHECK(fused->space(gqa)->violation(Config(c).set("inner", std::string("avx512_8x32"))).has_value());
    CHECK(fused->equivalence_key(mqa, c) == fused->equivalence_key(mqa, Config(c).set("loop_order", std::string("head_major"))));
    CHECK_FALSE(fused->equivalence_key(gqa, c) ==
                fused->equivalence_key(gqa, Config(c).set("loop_order", std::string("head_major"))));
}

TEST_CASE("cpu.attention.fused: a query tile past q_len is one class, bit-identical in output and workspace",
          "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    for (const Problem& p : {make_attention(1, 8, 2, 1, 300, 64, true, 0), make_attention(1, 4, 4, 3, 77, 32, false, 0)}) {
        const Space& s = *fused->space(p);
        const std::int64_t q_len = attention_dims(p).q_len;
        Workload w(p, 9);
        std::vector<float> first;
        std::size_t first_ws = 0, same = 0;
        for (const auto& v : s.knob("q_tile")->values) {
            Config c = s.default_config();
            c.set("q_tile", v);
            if (std::get<std::int64_t>(v) < q_len) {
                Config other = c;
                CHECK(fused->equivalence_key(p, c) != fused->equivalence_key(p, other.set("q_tile", q_len * 100)));
                continue;
            }
            w.poison_outputs();
            fused->instantiate(p, c)->run(w.args());
            const auto* o = static_cast<const float*>(w.args().outputs[0]);
            std::vector<float> out(o, o + w.output_bytes(0) / sizeof(float));
            if (first.empty()) {
                first = out;
                first_ws = fused->workspace_bytes(p, c);
                continue;
            }
            ++same;
            Config base = s.default_config();
            CHECK(fused->equivalence_key(p, c) == fused->equivalence_key(p, base.set("q_tile", s.knob("q_tile")->values.back())));
            CHECK(fused->workspace_bytes(p, c) == first_ws);
            CHECK(std::memcmp(out.data(), first.data(), out.size() * sizeof(float)) == 0);
        }
        CHECK(same >= 1);
    }
}

TEST_CASE("both CPU templates read a paged KV cache: decode with every split, prefill with masks and GQA", "[attention][paged]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    auto unfused = make_cpu_attention_unfused_template(host());
    auto paged = [](Problem p, std::int64_t page) {
        p.set_dim("page", page);
        return p;
    };
    // Decode over 509 keys in pages of 16 (the last one partial), every split count, both
    // inner loops (the dot kernels read the pages in place; the micro-kernel loops gather each
    // key tile), f32 and bf16 K/V.
    for (const DType dtype : {DType::f32, DType::bf16}) {
        const Problem decode = paged(make_attention(2, 8, 2, 1, 509, 128, true, 0, dtype), 16);
        const Space& s = *fused->space(decode);
        for (const auto& split : s.knob("split_kv")->values)
            for (const char* inner : {"dot", "avx512_8x32"}) {
                Config c = s.default_config();
                c.set("split_kv", split).set("inner", std::string(inner));
                test::check_against_reference(*fused, decode, c, 5, 2);
            }
    }
    // Pages in pool order (runs merge across pages) and partly in order, every split.
    {
        const Problem decode = paged(make_attention(2, 8, 2, 1, 509, 128, true, 0), 16);
        const Space& s = *fused->space(decode);
        for (const bool partly : {false, true})
            for (const auto& split : s.knob("split_kv")->values) {
                Workload w(decode, 8);
                auto* table = static_cast<std::int32_t*>(const_cast<void*>(w.args().inputs[3]));
                const std::int64_t entries = 2 * 32;  // batch x ceil(509 / 16)
                // The workload laid its pages out through its own table: move them to pool order.
                std::vector<std::int32_t> order(table, table + entries);
                for (std::int64_t i = 0; i < entries; ++i) order[std::size_t(i)] = std::int32_t(i);
                if (partly) std::swap(order[5], order[40]);
                const auto* k = static_cast<const float*>(w.args().inputs[1]);
                const auto* v = static_cast<const float*>(w.args().inputs[2]);
                const std::size_t page_floats = 16 * 2 * 128;
                std::vector<float> k_pool(std::size_t(entries) * page_floats), v_pool(k_pool.size());
                for (std::int64_t i = 0; i < entries; ++i) {
                    std::copy(k + table[i] * page_floats, k + (table[i] + 1) * page_floats, k_pool.begin() + order[std::size_t(i)] * page_floats);
                    std::copy(v + table[i] * page_floats, v + (table[i] + 1) * page_floats, v_pool.begin() + order[std::size_t(i)] * page_floats);
                }
                std::copy(order.begin(), order.end(), table);
                std::vector<const void*> in(w.args().inputs.begin(), w.args().inputs.end());
                in[1] = k_pool.data(), in[2] = v_pool.data();
                Config c = s.default_config();
                c.set("split_kv", split);
                INFO("partly in order " << partly << " " << c.text());
                fused->instantiate(decode, c)->run({in, w.args().outputs});
                CHECK(w.error() <= effective_tolerance(decode));
            }
    }
    // Prefill, pages of 7 keys (never a multiple of a key tile, so tiles span pages), every
    // mask; GQA and MQA; both inner loops.
    for (const Mask& m : kMasks)
        for (std::int64_t kv_heads : {2, 1}) {
            const Problem p = paged(make_attention(2, 4, kv_heads, 37, 53, 48, m.causal, m.window), 7);
            Config c = fused->space(p)->default_config();
            test::check_against_reference(*fused, p, c, 3);
            test::check_against_reference(*fused, p, c.set("inner", std::string("dot")), 4);
            test::check_against_reference(*unfused, p, unfused->space(p)->default_config(), 3);
        }
    // Read in place: the dot kernels need no more workspace than on a contiguous cache, the
    // micro-kernel loops a K and a V tile per thread (not a copy of K and V).
    const Problem decode = paged(make_attention(2, 8, 2, 1, 509, 128, true, 0), 16);
    Problem plain = decode;
    plain.set_dim("page", 0);
    Config c = fused->space(decode)->default_config();
    c.set("inner", std::string("dot"));
    CHECK(fused->workspace_bytes(decode, c) == fused->workspace_bytes(plain, c));
    CHECK(fused->instantiate(decode, c)->workspace_bytes() == fused->workspace_bytes(decode, c));
    c.set("inner", std::string("avx512_8x32"));
    const auto tiles = std::size_t(c.get_int("threads") * 2 * c.get_int("k_tile") * 128) * sizeof(float);
    CHECK(fused->workspace_bytes(decode, c) == fused->workspace_bytes(plain, c) + tiles);
    CHECK(fused->instantiate(decode, c)->workspace_bytes() == fused->workspace_bytes(decode, c));
    // The unfused template copies K and V out of their pages: workspace it reports.
    const std::size_t copy = 2 * 2 * 2 * 509 * 128 * sizeof(float);
    const Config u = unfused->space(decode)->default_config();
    CHECK(unfused->workspace_bytes(decode, u) == unfused->workspace_bytes(plain, u) + copy);
}

TEST_CASE("a block table entry outside the page pool is an error, not a read outside it", "[attention][paged]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    Problem p = make_attention(1, 4, 2, 1, 40, 32, true, 0);
    p.set_dim("page", 16);
    Workload w(p, 2);
    auto kernel = fused->instantiate(p, fused->space(p)->default_config());
    auto* table = static_cast<std::int32_t*>(const_cast<void*>(w.args().inputs[3]));
    const std::vector<std::int32_t> original(table, table + 3);
    table[1] = 3;  // the pool has pages 0..2
    CHECK_THROWS_WITH(kernel->run(w.args()), Catch::Contains("block table entry 1 is 3"));
    table[1] = -1;
    CHECK_THROWS_WITH(kernel->run(w.args()), Catch::Contains("outside the pool"));
    // A fifth input names a larger pool (a runtime's shared one): its pages become legal, the
    // ones past it still are not; a count that cannot be a pool is refused.
    std::copy(original.begin(), original.end(), table);
    std::vector<float> k_pool(std::size_t(5 * 16 * 2 * 32)), v_pool(k_pool.size());
    std::vector<const void*> in(w.args().inputs.begin(), w.args().inputs.end());
    const auto* k = static_cast<const float*>(in[1]);
    const auto* v = static_cast<const float*>(in[2]);
    std::copy(k, k + 3 * 16 * 2 * 32, k_pool.begin());  // pages 0..2 as the workload laid them out
    std::copy(v, v + 3 * 16 * 2 * 32, v_pool.begin());
    in[1] = k_pool.data(), in[2] = v_pool.data();
    std::int64_t pool_pages = 5;
    in.push_back(&pool_pages);
    const OpArgs args{in, w.args().outputs};
    const std::int32_t moved = table[0];
    std::copy(k_pool.begin() + moved * 16 * 2 * 32, k_pool.begin() + (moved + 1) * 16 * 2 * 32, k_pool.begin() + 4 * 16 * 2 * 32);
    std::copy(v_pool.begin() + moved * 16 * 2 * 32, v_pool.begin() + (moved + 1) * 16 * 2 * 32, v_pool.begin() + 4 * 16 * 2 * 32);
    table[0] = 4;  // the first page moved to page 4 of the larger pool
    kernel->run(args);
    CHECK(w.error() <= effective_tolerance(p));
    table[0] = 5;
    CHECK_THROWS_WITH(kernel->run(args), Catch::Contains("block table entry 0 is 5"));
    table[0] = 4;
    pool_pages = 0;
    CHECK_THROWS_WITH(kernel->run(args), Catch::Contains("pool's page count"));
}

TEST_CASE("attention configs report their peak workspace", "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    auto unfused = make_cpu_attention_unfused_template(host());
    Problem p = make_attention(1, 8, 2, 2048, 2048, 64, true);
    // The unfused schedule holds one head's q_len x kv_len scores.
    const Config uc = unfused->space(p)->default_config();
    CHECK(unfused->workspace_bytes(p, uc) == 2048u * 2048u * sizeof(float));
    CHECK(unfused->instantiate(p, uc)->workspace_bytes() == unfused->workspace_bytes(p, uc));
    // The fused one holds tiles only: far less, and the same figure the kernel reports.
    const Config fc = fused->space(p)->default_config();
    CHECK(fused->workspace_bytes(p, fc) < unfused->workspace_bytes(p, uc) / 4);
    CHECK(fused->instantiate(p, fc)->workspace_bytes() == fused->workspace_bytes(p, fc));
}

TEST_CASE("a workspace cap keeps configs over it out of the tuning run", "[attention][tuner]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto store = make_memory_database();
    Database& db = *store;
    TemplateRegistry registry = builtin_registry(host());
    Measurer measurer(host(), test::fast_measure_options());
    Tuner tuner(db, registry, measurer, db.start_run({0, "test", "random", 1, "", ""}, host()));
    Problem p = make_attention(1, 4, 2, 96, 96, 32, true);
    const std::size_t cap = 96 * 96 * sizeof(float) - 1;  // below the unfused score matrix
    TuneOptions opt;
    opt.budget = 10;
    opt.strategy = "random";
    opt.max_workspace_bytes = cap;
    TuneResult r = tuner.tune(p, opt);
    REQUIRE(r.best.has_value());
    auto all = db.query({shape_key(p), "", "", "", std::nullopt});
    REQUIRE(!all.empty());
    for (const auto& m : all) {
        INFO(m.template_name << " " << m.config.text());
        CHECK(m.template_name == "cpu.attention.fused");
        CHECK(std::size_t(m.workspace_bytes) <= cap);
    }
}

TEST_CASE("a decode step's default splits its keys only until every thread has a task, and picks its inner loops by rows", "[attention]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto split_for = [](int cores, const Problem& p) {
        DeviceInfo d = host();
        d.cores = cores;
        const auto t = make_cpu_attention_fused_template(d);
        const Config c = t->default_config(p);
        CHECK_FALSE(t->space(p)->violation(c).has_value());
        Config others = c;  // only the split depends on the shape
        CHECK(others.set("split_kv", *t->space(p)->default_config().find("split_kv")) == t->space(p)->default_config());
        return c.get_int("split_kv");
    };
    const Problem gqa = make_attention(1, 32, 8, 1, 8192, 128, true), mqa = make_attention(1, 8, 1, 1, 8192, 128, true);
    CHECK(split_for(2, gqa) == 1);   // 8 KV-head tasks for 2 threads
    CHECK(split_for(16, gqa) == 2);  // 16 tasks
    CHECK(split_for(2, mqa) == 2);
    CHECK(split_for(8, mqa) == 8);
    CHECK(split_for(64, mqa) == 16);  // the largest split there is
    CHECK(split_for(1, mqa) == 1);
    CHECK(split_for(4, make_attention(2, 8, 1, 1, 4096, 64, true)) == 2);  // batch 2: 2 tasks already
    CHECK(split_for(2, make_attention(1, 4, 4, 16, 4096, 64, true)) == 1); // MHA, 16 queries: 4 head tasks
    // Prefill has no split and keeps the space's default.
    const auto t = make_cpu_attention_fused_template(host());
    const Problem prefill = make_attention(1, 8, 2, 512, 512, 128, true);
    CHECK(t->default_config(prefill) == t->space(prefill)->default_config());
    // From 128 query rows per task (16 positions of a group of 8) a decode task runs the 8 x 32
    // GEMM micro-kernel; below, the dot kernels.
    CHECK(t->default_config(make_attention(1, 8, 1, 16, 4096, 128, true)).get_str("inner") == "avx512_8x32");
    CHECK(t->default_config(make_attention(1, 32, 8, 16, 4096, 128, true)).get_str("inner") == "dot");  // 64 rows
    CHECK(t->default_config(make_attention(1, 8, 8, 16, 4096, 128, true)).get_str("inner") == "dot");  // MHA: 16 rows
    // A paged cache with several KV heads is read key-major, split until both threads have a task.
    Problem paged = gqa;
    paged.set_dim("page", 16);
    CHECK(t->default_config(gqa).get_str("loop_order") == "head_major");
    CHECK(t->default_config(paged).get_str("loop_order") == "key_major");
    std::int64_t splits = 1;  // one task per sequence: split until every core has one
    while (splits < host().cores && splits < 16) splits *= 2;
    CHECK(t->default_config(paged).get_int("split_kv") == splits);
    paged.set_dim("kv_heads", 1);
    CHECK(t->default_config(paged).get_str("loop_order") == "head_major");  // one KV head: one order
    // The default computes what the reference does.
    Problem small_paged = make_attention(2, 8, 2, 1, 300, 64, true);
    small_paged.set_dim("page", 16);
    for (const Problem& p : {mqa, make_attention(1, 4, 4, 16, 300, 64, true), make_attention(1, 8, 1, 16, 300, 64, true), small_paged})
        test::check_against_reference(*t, p, t->default_config(p), 7, 2);
}

TEST_CASE("bf16 Q, K and V (a bf16 KV cache) run through every f32 inner kernel of the fused template", "[attention][bf16]") {
    if (!have_avx512()) return;  // covered by "attention templates need AVX-512F"
    auto fused = make_cpu_attention_fused_template(host());
    auto unfused = make_cpu_attention_unfused_template(host());
    // Prefill, decode with and without a group, odd lengths and head dims (tails of the widening).
    const Shape kShapes[] = {{4, 2, 37, 37, 80}, {8, 1, 1, 301, 128}, {3, 3, 4, 67, 37}, {4, 1, 16, 90, 64}};
    std::uint64_t seed = 500;
    for_masks_and_shapes(kShapes, DType::bf16, [&](const Problem& p) {
        REQUIRE(fused->supports(p));
        CHECK_FALSE(unfused->supports(p));  // OpenBLAS GEMMs: f32 only
        const Space& s = *fused->space(p);
        for (const auto& inner : s.knob("inner")->values) {
            const std::string label = std::get<std::string>(inner);
            CHECK((label == "dot" || label.rfind("avx512_", 0) == 0));  // never a bf16-compute kernel
            Config c = s.default_config();
            c.set("inner", inner).set("k_tile", std::int64_t(seed % 2 ? 32 : 64));
            if (s.knob("split_kv")) c.set("split_kv", std::int64_t(1) << (seed % 3));
            test::check_against_reference(*fused, p, c, seed++);
        }
        test::check_against_reference(*fused, p, fused->default_config(p), seed++, 2);
    });
    // A paged bf16 cache, and the backward (f32 only).
    Problem paged = make_attention(2, 8, 2, 1, 100, 64, true, 0, DType::bf16);
    paged.set_dim("page", 16);
    REQUIRE(fused->supports(paged));
    test::check_against_reference(*fused, paged, fused->default_config(paged), 9, 2);
    Problem grad = make_attention(1, 4, 2, 16, 16, 64, true, 0, DType::bf16);
    grad.set_dim("backward", 1);
    CHECK_FALSE(fused->supports(grad));
    CHECK_FALSE(make_cpu_attention_backward_template(host())->supports(grad));
}

TEST_CASE("the softmax step reads no score past the end of its row", "[attention]") {
    // A row whose length is not a multiple of 16 ending where its buffer does (the last row
    // of a score tile), the next page inaccessible. Its last block's max was taken from a full
    // 16-wide load, 11 floats past the end here (found by AddressSanitizer). An optimised build
    // may fold that load into the masked max, whose masked-off lanes do not fault, so there
    // this checks the row-end result; where the load stays separate (-O0) it would crash.
    if (!have_avx512()) return;
    const auto page = std::size_t(::sysconf(_SC_PAGESIZE));
    void* map = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(map != MAP_FAILED);
    REQUIRE(::mprotect(static_cast<char*>(map) + page, page, PROT_NONE) == 0);
    constexpr int n = 37;
    float* s = reinterpret_cast<float*>(static_cast<char*>(map) + page) - n;
    for (int j = 0; j < n; ++j) s[j] = 0.1f * float(j % 7);
    float m = -std::numeric_limits<float>::infinity(), l = 0;
    cpu_attention::softmax_step(s, n, 0, n, m, l);
    CHECK(m == Approx(0.6f));
    double sum = 0;
    for (int j = 0; j < n; ++j) sum += s[j];
    CHECK(sum == Approx(l).epsilon(1e-5));
    ::munmap(map, 2 * page);
}
