// GPU attention host logic, in every build (no GPU, no GPU compiler): the device twins of the
// masks, row mapping, key-tile skipping and split-KV partitioning (attention_params.h) against
// the Problem's definitions; the shared space, launch geometry, workspace and kernel arguments
// of cuda.attention.flash / hip.attention.flash (templates/attention/gpu).
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "../templates/attention/gpu/attention_space.hpp"
#include "tune/error.hpp"

using namespace tune;
using namespace tune::gpu_attention;

namespace {

// sm_80's opt-in shared memory per block, and the HIP generic path's 64 KiB of LDS.
const Target kCuda{"attention_flash", 32, true, 163 * 1024};
const Target kHip{"attention_flash_generic", 64, false, 64 * 1024};

libtune::AttentionParams device_params(const AttentionDims& a) {
    libtune::AttentionParams p{};
    p.batch = a.batch, p.heads = a.heads, p.kv_heads = a.kv_heads, p.q_len = a.q_len, p.kv_len = a.kv_len;
    p.causal = a.causal, p.window = a.window, p.splits = 1;
    return p;
}

std::vector<Problem> mask_cases() {
    std::vector<Problem> out;
    for (auto [q, kv] : {std::pair{1, 1}, {1, 37}, {13, 13}, {40, 17}, {17, 300}, {64, 64}})
        for (bool causal : {false, true})
            for (std::int64_t window : {0, 1, 5, 64}) out.push_back(make_attention(1, 4, 2, q, kv, 64, causal, window, DType::bf16));
    return out;
}

}  // namespace

TEST_CASE("the kernels' key range is the Problem's mask for every position", "[gpu_attention]") {
    for (const Problem& p : mask_cases()) {
        const AttentionDims a = attention_dims(p);
        for (std::int64_t i = 0; i < a.q_len; ++i) {
            long long first = -1, last = -1;
            libtune::attention_key_range(i + a.kv_len - a.q_len, a.kv_len, a.causal, a.window, &first, &last);
            INFO(shape_key(p) << " query " << i);
            CHECK(std::pair<std::int64_t, std::int64_t>(first, last) == a.key_range(i));
        }
    }
}

TEST_CASE("row blocks cover every (head, position) once, packed or not", "[gpu_attention]") {
    const AttentionDims a = attention_dims(make_attention(2, 8, 2, 5, 40, 64, true, 0, DType::bf16));
    for (int gqa : {0, 1}) {
        const libtune::RowMap m = libtune::row_map(device_params(a), gqa);
        CHECK(m.units == (gqa ? 2 : 8));
        CHECK(m.unit_rows == (gqa ? 20 : 5));
        std::set<std::pair<long long, long long>> seen;
        for (long long unit = 0; unit < m.units; ++unit)
            for (long long r = 0; r < m.unit_rows; ++r) {
                const long long head = m.head(unit, r);
                CHECK(head / a.group() == m.kv_head(unit));  // the block's K/V serve the row's head
                CHECK(seen.insert({head, m.position(r)}).second);
            }
        CHECK(seen.size() == std::size_t(a.heads * a.q_len));
    }
}

TEST_CASE("a block visits every key its rows see and skips the mask only where all rows see the tile", "[gpu_attention]") {
    for (const Problem& p : mask_cases())
        for (int gqa : {0, 1})
            for (int q_tile : {16, 32})
                for (int k_tile : {16, 32, 64}) {
                    const AttentionDims a = attention_dims(p);
                    const libtune::AttentionParams dp = device_params(a);
                    const libtune::RowMap m = libtune::row_map(dp, gqa);
                    for (long long row0 = 0; row0 < m.unit_rows; row0 += q_tile) {
                        const long long row_end = std::min<long long>(row0 + q_tile, m.unit_rows);
                        int begin = 0, end = 0;
                        long long all_first = 0, all_last = 0;
                        libtune::block_key_tiles(dp, m, row0, row_end, k_tile, &begin, &end, &all_first, &all_last);
                        INFO(shape_key(p) << " gqa " << gqa << " rows " << row0 << ".." << row_end << " k_tile " << k_tile);
                        REQUIRE(begin <= end);
                        for (long long r = row0; r < row_end; ++r) {
                            const auto [first, last] = a.key_range(m.position(r));
                            if (first == last) continue;
                            CHECK(first >= std::int64_t(begin) * k_tile);
                            CHECK(last <= std::int64_t(end) * k_tile);
                            for (long long key = all_first; key < all_last; ++key) CHECK((key >= first && key < last));
                        }
                    }
                }
}

TEST_CASE("split-KV cuts a tile range into ordered, disjoint, complete parts", "[gpu_attention]") {
    for (int begin : {0, 3})
        for (int n : {0, 1, 5, 16, 17})
            for (int splits : {1, 2, 4, 8, 32}) {
                int next = begin;
                for (int s = 0; s < splits; ++s) {
                    int b = 0, e = 0;
                    libtune::split_tiles(begin, begin + n, splits, s, &b, &e);
                    INFO("tiles " << begin << "+" << n << " split " << s << "/" << splits);
                    CHECK(b == next);
                    CHECK(e >= b);
                    CHECK(e - b <= (n + splits - 1) / splits);
                    next = e;
                }
                CHECK(next == begin + n);
            }
}

TEST_CASE("gpu attention supports bf16 / f16 forward problems with the kernels' head dims", "[gpu_attention]") {
    CHECK(supports(make_attention(1, 32, 8, 512, 512, 128, true, 0, DType::bf16)));
    CHECK(supports(make_attention(1, 32, 8, 1, 8192, 80, false, 0, DType::f16)));
    CHECK_FALSE(supports(make_attention(1, 32, 8, 512, 512, 128, true, 0, DType::f32)));
    CHECK_FALSE(supports(make_attention(1, 32, 8, 512, 512, 112, true, 0, DType::bf16)));
    Problem backward = make_attention(1, 32, 8, 512, 512, 128, true, 0, DType::bf16);
    backward.set_dim("backward", 1);
    CHECK_FALSE(supports(backward));
    CHECK_FALSE(supports(make_attention(2048, 64, 8, 16, 16, 64, false, 0, DType::bf16)));  // grid y > 65535
    CHECK_FALSE(supports(make_gemm(64, 64, 64, DType::bf16)));
}

TEST_CASE("gpu attention spaces: defaults valid for every head dim, knobs by problem, constraints named", "[gpu_attention]") {
    for (DType dt : {DType::bf16, DType::f16})
        for (std::int64_t d : {64, 80, 96, 128, 256})
            for (std::int64_t q : {1, 16, 2048})
                for (const Target& t : {kCuda, kHip}) {
                    const Problem p = make_attention(1, 32, 8, q, 4096, d, true, 0, dt);
                    const auto s = build_space(p, t);
                    INFO(shape_key(p) << " " << t.kernel);
                    CHECK_FALSE(s->violation(s->default_config()).has_value());
                    CHECK(s->count() > 0);
                    CHECK((s->knob("split_kv") != nullptr) == (q <= kDecodeQLen));
                    CHECK(s->knob("gqa_pack") != nullptr);
                    CHECK((s->knob("stages") != nullptr) == t.tensor_cores);
                    CHECK((s->knob("p_split") != nullptr) == t.tensor_cores);
                }
    CHECK(build_space(make_attention(1, 8, 8, 512, 512, 64, false, 0, DType::bf16), kCuda)->knob("gqa_pack") == nullptr);

    const Problem p = make_attention(1, 32, 8, 4096, 4096, 128, true, 0, DType::bf16);
    const auto s = build_space(p, kCuda);
    auto with = [&](std::initializer_list<std::pair<const char*, std::int64_t>> values) {
        Config c = s->default_config();
        for (auto [k, v] : values) c.set(k, v);
        return s->violation(c);
    };
    CHECK_THAT(*with({{"q_tile", 128}, {"warps", 2}}), Catch::Contains("rows_per_warp_16_or_32"));  // 64 rows per warp
    CHECK_THAT(*with({{"q_tile", 16}, {"warps", 2}}), Catch::Contains("rows_per_warp_16_or_32"));
    // 2 slices x (128 + 128) / 2 = 256 accumulator registers.
    CHECK_THAT(*with({{"q_tile", 128}, {"warps", 4}, {"k_tile", 128}}), Catch::Contains("accumulators_fit_registers"));
    // (64 + 2 x 3 x 128) x 136 x 2 bytes = 221 KiB > 163 KiB.
    CHECK_THAT(*with({{"k_tile", 128}, {"stages", 3}}), Catch::Contains("shared_memory_limit"));
    // Rounding P once needs a looser tolerance than the dtype's default.
    CHECK_THAT(*with({{"p_split", 0}}), Catch::Contains("p_rounding_within_tolerance"));
    Problem loose = p;
    loose.tolerance = single_rounding_tolerance(p);
    Config single = build_space(loose, kCuda)->default_config();
    single.set("p_split", std::int64_t{0});
    CHECK_FALSE(build_space(loose, kCuda)->violation(single).has_value());

    const Problem dec = make_attention(1, 32, 8, 1, 100, 128, true, 0, DType::bf16);
    const auto ds = build_space(dec, kCuda);
    Config c = ds->default_config();
    c.set("split_kv", std::int64_t{4});
    c.set("k_tile", std::int64_t{32});
    CHECK_FALSE(ds->violation(c).has_value());  // 100 keys: 4 tiles of 32
    c.set("split_kv", std::int64_t{8});
    CHECK_THAT(*ds->violation(c), Catch::Contains("split_leaves_a_tile_per_split"));
    c.set("split_kv", std::int64_t{1});
    c.set("q_tile", std::int64_t{64});
    c.set("warps", std::int64_t{4});
    CHECK_THAT(*ds->violation(c), Catch::Contains("q_tile_within_rows"));  // 4 query heads x 1 position

    const auto hs = build_space(p, kHip);
    Config h = hs->default_config();
    h.set("warps", std::int64_t{1});  // 64 x 128 elements of O over 64 threads: 128 each
    CHECK_THAT(*hs->violation(h), Catch::Contains("o_elements_divide_threads"));
}

TEST_CASE("launch geometry, shared memory, split-KV workspace and instances follow the config", "[gpu_attention]") {
    const Problem prefill = make_attention(2, 32, 8, 1000, 1000, 128, true, 0, DType::bf16);
    Config c = build_space(prefill, kCuda)->default_config();  // q_tile 64, k_tile 64, 4 warps, 2 stages, packed
    Launch l = launch(prefill, c, kCuda);
    CHECK(l.grid[0] == 63);       // 1000 positions x 4 heads / 64 rows
    CHECK(l.grid[1] == 2 * 8);    // batch x kv heads
    CHECK(l.grid[2] == 1);
    CHECK(l.block == 128);
    CHECK(l.shared_bytes == (64 + 2 * 2 * 64) * 136 * 2);
    CHECK(l.workspace_bytes == 0);
    CHECK(l.instance == "libtune::attention_flash<0,128,64,64,4,2,1,0,1>");
    CHECK(l.combine_instance.empty());
    c.set("gqa_pack", false);
    l = launch(prefill, c, kCuda);
    CHECK(l.grid[0] == 16);  // ceil(1000 / 64)
    CHECK(l.grid[1] == 2 * 32);

    const Problem decode = make_attention(1, 32, 8, 1, 8192, 96, false, 0, DType::f16);
    Config d = build_space(decode, kHip)->default_config();
    d.set("split_kv", std::int64_t{16});
    l = launch(decode, d, kHip);
    CHECK(l.grid[2] == 16);
    CHECK(l.splits == 16);
    CHECK(l.workspace_bytes == std::size_t(16) * 32 * (96 + 1) * sizeof(float));
    CHECK(l.combine_blocks == (32 * 96 + 255) / 256);
    CHECK(l.combine_instance == "libtune::attention_combine<96>");
    CHECK(l.instance == "libtune::attention_flash_generic<1,96,16,32,1,1,1>");
    CHECK(l.shared_bytes == 2 * (16 * 96 + 2 * 32 * 96) + 4 * (16 * 32 + 3 * 16));
}

TEST_CASE("kernel arguments: operands, split-KV partials in the workspace, base-2 scale", "[gpu_attention]") {
    const Problem decode = make_attention(1, 32, 8, 2, 4096, 128, true, 7, DType::bf16);
    const AttentionDims a = attention_dims(decode);
    Config c = build_space(decode, kCuda)->default_config();
    c.set("split_kv", std::int64_t{4});
    const Launch l = launch(decode, c, kCuda);
    std::vector<float> buffers(8), workspace(l.workspace_bytes / sizeof(float));
    const void* in[] = {&buffers[0], &buffers[1], &buffers[2]};
    void* out[] = {&buffers[3], &buffers[4]};
    const libtune::AttentionParams p = params(a, OpArgs{in, out}, l, workspace.data());
    CHECK(p.q == in[0]);
    CHECK(p.v == in[2]);
    CHECK(p.lse == out[1]);
    CHECK(p.partial_o == workspace.data());
    CHECK(p.partial_lse == workspace.data() + 4 * 32 * 2 * 128);
    CHECK(p.partial_lse + 4 * 32 * 2 == workspace.data() + workspace.size());  // the workspace holds exactly both
    CHECK(p.splits == 4);
    CHECK(p.causal == 1);
    CHECK(p.window == 7);
    CHECK(p.scale_log2 == Approx(1.0 / std::sqrt(128.0) / std::log(2.0)));
    CHECK_THROWS_WITH(params(a, OpArgs{std::span<const void* const>(in, 2), out}, l, workspace.data()),
                      Catch::Contains("inputs {Q, K, V}"));
    CHECK_THROWS_WITH(params(a, OpArgs{in, out}, l, nullptr), Catch::Contains("workspace"));
}
