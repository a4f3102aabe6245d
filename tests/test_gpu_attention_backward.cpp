// GPU attention backward host logic, in every build (no GPU, no GPU compiler): which problems
// cuda.attention.flash_backward / hip.attention.flash_backward take, their space (defaults,
// register and shared-memory constraints), the two passes' launch geometry, the workspace of
// each mode and the kernel argument (templates/attention/gpu/attention_backward_space.hpp).
#include <catch2/catch.hpp>

#include <vector>

#include "../templates/attention/gpu/attention_backward_space.hpp"
#include "tune/error.hpp"

using namespace tune;
using namespace tune::gpu_attention;

namespace {

const Target kCuda{"attention_backward", 32, false, 163 * 1024};
const Target kHip{"attention_backward", 64, false, 64 * 1024};

Problem backward(Problem p) {
    p.set_dim("backward", 1);
    return p;
}

Config config(const Problem& p, const Target& t, const std::string& mode, std::int64_t q_tile, std::int64_t k_tile,
              std::int64_t warps) {
    Config c = build_backward_space(p, t)->default_config();
    c.set("mode", mode);
    c.set("q_tile", q_tile);
    c.set("k_tile", k_tile);
    c.set("warps", warps);
    return c;
}

}  // namespace

TEST_CASE("the backward templates take 16-bit backward problems, the forward ones do not", "[gpu_attention][backward]") {
    const Problem fwd = make_attention(1, 8, 2, 100, 100, 128, true, 0, DType::bf16);
    CHECK(supports_backward(backward(fwd)));
    CHECK(supports_backward(backward(make_attention(1, 8, 2, 100, 100, 80, false, 16, DType::f16))));
    CHECK_FALSE(supports_backward(fwd));
    CHECK_FALSE(supports(backward(fwd)));
    CHECK_FALSE(supports_backward(backward(make_attention(1, 8, 2, 100, 100, 128, true, 0, DType::f32))));
    CHECK_FALSE(supports_backward(backward(make_attention(1, 8, 2, 100, 100, 100, true, 0, DType::bf16))));
}

TEST_CASE("backward workspace: store keeps dS for every (head, query, key), recompute needs none", "[gpu_attention][backward]") {
    const Problem p = backward(make_attention(2, 8, 2, 100, 300, 64, true, 0, DType::bf16));
    for (const Target& t : {kCuda, kHip}) {
        CHECK(backward_launch(p, config(p, t, "recompute", 32, 32, 4), t).workspace_bytes == 0);
        CHECK(backward_launch(p, config(p, t, "store", 32, 32, 4), t).workspace_bytes == std::size_t(2) * 8 * 100 * 300 * 4);
    }
    CHECK(backward_workspace_bytes(attention_dims(p), true) == std::size_t(2) * 8 * 100 * 300 * 4);
}

TEST_CASE("backward launch: a dK/dV block per (key tile, kv head), a dQ block per (query tile, head)", "[gpu_attention][backward]") {
    const Problem p = backward(make_attention(3, 8, 2, 100, 300, 64, true, 0, DType::f16));
    const BackwardLaunch l = backward_launch(p, config(p, kCuda, "recompute", 32, 64, 2), kCuda);
    CHECK(l.key_grid[0] == 5);  // ceil(300 / 64)
    CHECK(l.key_grid[1] == 3 * 2);
    CHECK(l.key_grid[2] == 1);
    CHECK(l.query_grid[0] == 4);  // ceil(100 / 32)
    CHECK(l.query_grid[1] == 3 * 8);
    CHECK(l.query_grid[2] == 1);
    CHECK(l.block == 64);
    // f32 dO (32 x 64), P / dS (32 x 64), two row statistics; 16-bit Q (32 x 64), K and V (64 x 64).
    CHECK(l.shared_bytes == 4 * (32 * 64 + 32 * 64 + 2 * 32) + 2 * (32 + 2 * 64) * 64);
    CHECK(l.instance == "libtune::attention_backward<1,64,32,64,64,0>");
    CHECK(backward_launch(p, config(p, kHip, "store", 16, 32, 4), kHip).instance ==
          "libtune::attention_backward<1,64,16,32,256,1>");
}

TEST_CASE("backward defaults are valid for every head_dim on both waves", "[gpu_attention][backward]") {
    for (std::int64_t d : {64, 80, 96, 128, 256})
        for (const Target& t : {kCuda, kHip}) {
            const Problem p = backward(make_attention(1, 4, 1, 50, 70, d, true, 0, DType::bf16));
            const auto space = build_backward_space(p, t);
            INFO("head_dim " << d << " wave " << t.wave);
            CHECK_FALSE(space->violation(space->default_config()).has_value());
            CHECK(space->enumerate_all().size() > 1);
        }
}

TEST_CASE("backward space: register shares over 64 floats and shared memory over the limit are rejected", "[gpu_attention][backward]") {
    const Problem p = backward(make_attention(1, 4, 1, 50, 70, 256, true, 0, DType::bf16));
    const auto space = build_backward_space(p, kCuda);
    // 64 keys x 256 columns over 32 threads: 512 floats of dK (and of dV) per thread.
    CHECK_THAT(*space->violation(config(p, kCuda, "recompute", 16, 64, 1)), Catch::Contains("key_tile_share_fits_registers"));
    CHECK_THAT(*space->violation(config(p, kCuda, "recompute", 64, 16, 2)), Catch::Contains("query_tile_share_fits_registers"));
    // 64 x 256 f32 dO alone is 64 KiB: over the HIP generic path's LDS.
    CHECK_THAT(*build_backward_space(p, kHip)->violation(config(p, kHip, "recompute", 64, 16, 8)),
               Catch::Contains("shared_memory_limit"));
}

TEST_CASE("backward kernel argument: operands in order, pass and workspace checked", "[gpu_attention][backward]") {
    const Problem p = backward(make_attention(1, 4, 2, 5, 9, 64, true, 3, DType::bf16));
    const AttentionDims a = attention_dims(p);
    float buffers[9][4] = {};
    const void* in[6] = {buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5]};
    void* out[3] = {buffers[6], buffers[7], buffers[8]};
    const OpArgs args{in, out};
    const BackwardLaunch rec = backward_launch(p, config(p, kCuda, "recompute", 16, 16, 2), kCuda);
    const libtune::AttentionBackwardParams b = backward_params(a, args, rec, nullptr, 1);
    CHECK(b.a.q == in[0]);
    CHECK(b.a.v == in[2]);
    CHECK(b.a.o == buffers[3]);
    CHECK(b.a.lse == buffers[4]);
    CHECK(b.dout == buffers[5]);
    CHECK((b.dq == buffers[6] && b.dk == buffers[7] && b.dv == buffers[8]));
    CHECK((b.pass == 1 && b.a.causal == 1 && b.a.window == 3 && b.a.kv_heads == 2));
    CHECK_THROWS_WITH(backward_params(a, args, rec, nullptr, 2), Catch::Contains("pass"));
    const BackwardLaunch store = backward_launch(p, config(p, kCuda, "store", 16, 16, 2), kCuda);
    CHECK_THROWS_WITH(backward_params(a, args, store, nullptr, 0), Catch::Contains("mode=store needs its workspace"));
    const OpArgs forward_args{std::span<const void* const>(in, 3), std::span<void* const>(out, 2)};
    CHECK_THROWS_WITH(backward_params(a, forward_args, rec, nullptr, 0), Catch::Contains("{Q, K, V, O, LSE, dO}"));
}
