// cuda.attention.mma_backward's kernel source (templates/attention/cuda/attention_backward_mma.cu)
// run on the host by the GPU emulator (tests/emulation: mma.sync, ldmatrix, cp.async and
// shuffles in their PTX layouts) against the fp64 gradient reference, in both modes: the
// transposed fragments of the dK/dV pass, masks and tile skipping, GQA / MQA sums over the
// group, ragged tiles, rows that see no key, one and two 16-row slices per warp, both 16-bit
// input types, and what the split knob buys. Store mode's workspace starts as NaN, so a dS tile
// the dQ pass reads but the dK/dV pass never wrote fails the check.
#include "emulation/gpu_emulator.hpp"

#define __shared__  // the kernel's shared memory is the emulator's libtune::smem_raw
#include "../templates/attention/cuda/attention_backward_mma.cu"
#undef __shared__

#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "../templates/attention/gpu/attention_backward_space.hpp"
#include "emulation/attention_check.hpp"
#include "tune/workload.hpp"

using namespace tune;

namespace {

const gpu_attention::Target kSm80{"attention_backward_mma", 32, true, 163 * 1024};

Problem backward(std::int64_t heads, std::int64_t kv_heads, std::int64_t q_len, std::int64_t kv_len, std::int64_t d,
                 bool causal, std::int64_t window, DType dtype) {
    Problem p = make_attention(1, heads, kv_heads, q_len, kv_len, d, causal, window, dtype);
    p.set_dim("backward", 1);
    return p;
}

// Runs attention_backward_mma<ELEM, D, QT, KT, W, STORE, SPLIT> on `p` (both passes) and
// returns the error against the reference; the host plan must name that instance.
template <int ELEM, int D, int QT, int KT, int W, int STORE, int SPLIT>
double run(const Problem& p) {
    Config c = gpu_attention::build_backward_mma_space(p, kSm80)->default_config();
    c.set("mode", std::string(STORE ? "store" : "recompute"));
    c.set("q_tile", QT);
    c.set("k_tile", KT);
    c.set("warps", W);
    c.set("split", SPLIT);
    INFO(shape_key(p) << " " << c.text());
    REQUIRE_FALSE(gpu_attention::build_backward_mma_space(p, kSm80)->violation(c).has_value());
    const gpu_attention::BackwardLaunch l = gpu_attention::backward_mma_launch(p, c, kSm80);
    REQUIRE(l.instance == "libtune::attention_backward_mma<" + std::to_string(ELEM) + "," + std::to_string(D) + "," +
                              std::to_string(QT) + "," + std::to_string(KT) + "," + std::to_string(W) + "," +
                              std::to_string(STORE) + "," + std::to_string(SPLIT) + ">");
    REQUIRE(l.block == unsigned(W * 32));
    REQUIRE(l.shared_bytes <= sizeof libtune::smem_raw);
    Workload w(p, 5);
    w.poison_outputs();  // NaN: an element the kernel never writes fails the check
    std::vector<float> workspace(l.workspace_bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
    for (int pass = 0; pass < 2; ++pass) {
        const libtune::AttentionBackwardParams args = gpu_attention::backward_params(
            attention_dims(p), w.args(), l, workspace.empty() ? nullptr : workspace.data(), pass);
        gpu_emulator::launch(pass == 0 ? l.key_grid : l.query_grid, l.block, 32,
                             [&] { libtune::attention_backward_mma<ELEM, D, QT, KT, W, STORE, SPLIT>(args); });
    }
    return w.error();
}

// Both modes, copies landing at once and only at their wait, within `tolerance`.
template <int ELEM, int D, int QT, int KT, int W, int SPLIT = 1>
void check(const Problem& p, double tolerance) {
    for (auto timing : {gpu_emulator::CopyTiming::immediate, gpu_emulator::CopyTiming::at_wait}) {
        gpu_emulator::copy_timing = timing;
        INFO((timing == gpu_emulator::CopyTiming::immediate ? "copies land at once" : "copies land at their wait"));
        const double recompute = run<ELEM, D, QT, KT, W, 0, SPLIT>(p), store = run<ELEM, D, QT, KT, W, 1, SPLIT>(p);
        INFO("errors " << recompute << " (recompute) " << store << " (store), tolerance " << tolerance);
        CHECK(recompute <= tolerance);  // NaN fails too
        CHECK(store <= tolerance);
    }
}

}  // namespace

TEST_CASE("emulated cuda.attention.mma_backward: causal GQA, ragged tiles, keys in two chunks, bf16 at f32 accuracy",
          "[gpu_attention][emulated][backward]") {
    const Problem p = backward(4, 2, 37, 45, 64, true, 0, DType::bf16);
    check<0, 64, 32, 64, 2>(p, effective_tolerance(p));  // bf16's default is the f32 bound
}

TEST_CASE("emulated cuda.attention.mma_backward: f16 MQA, two-sided window, two key slices per warp",
          "[gpu_attention][emulated][backward]") {
    const Problem p = backward(3, 1, 20, 70, 80, false, 7, DType::f16);
    check<1, 80, 16, 32, 1>(p, attention_check::f32_level_tolerance(p));
}

TEST_CASE("emulated cuda.attention.mma_backward: rows that see no key, two query slices per warp",
          "[gpu_attention][emulated][backward]") {
    const Problem p = backward(2, 2, 40, 17, 96, true, 0, DType::bf16);
    check<0, 96, 64, 32, 2>(p, effective_tolerance(p));
}

TEST_CASE("emulated cuda.attention.mma_backward: head_dim 128, causal sliding window, one warp",
          "[gpu_attention][emulated][backward]") {
    const Problem p = backward(2, 1, 50, 50, 128, true, 9, DType::bf16);
    check<0, 128, 16, 16, 1>(p, effective_tolerance(p));
}

TEST_CASE("emulated cuda.attention.mma_backward: split = 0 rounds dO, P and dS once: within its own bound, not the f32 one",
          "[gpu_attention][emulated][backward]") {
    Problem p = backward(2, 2, 33, 33, 64, false, 0, DType::bf16);
    const double f32_bound = effective_tolerance(p);
    p.tolerance = gpu_attention::backward_single_rounding_tolerance(p);
    check<0, 64, 32, 32, 2, 0>(p, p.tolerance);
    const double rounded = run<0, 64, 32, 32, 2, 0, 0>(p), split = run<0, 64, 32, 32, 2, 0, 1>(p);
    INFO("error " << rounded << " rounded once, " << split << " split; f32 bound " << f32_bound);
    CHECK(rounded > f32_bound);  // the knob is what the f32 bound needs
    CHECK(split <= f32_bound);
}

TEST_CASE("cuda.attention.mma_backward space: head dims up to 128, defaults valid, single rounding needs a tolerance",
          "[gpu_attention][backward]") {
    for (const std::int64_t d : {64, 80, 96, 128}) {
        const Problem p = backward(32, 8, 4096, 4096, d, true, 0, DType::bf16);
        REQUIRE(gpu_attention::supports_backward_mma(p));
        const auto space = gpu_attention::build_backward_mma_space(p, kSm80);
        Config c = space->default_config();
        INFO("head_dim " << d << " " << c.text());
        CHECK_FALSE(space->violation(c).has_value());
        CHECK(gpu_attention::backward_mma_launch(p, c, kSm80).shared_bytes <= kSm80.max_shared_bytes);
        c.set("split", 0);
        CHECK(space->violation(c).has_value());  // the default tolerance is f32's
        c.set("mode", std::string("store"));
        c.set("split", 1);
        CHECK(gpu_attention::backward_mma_launch(p, c, kSm80).workspace_bytes ==
              std::size_t(32) * 4096 * 4096 * sizeof(float));
    }
    CHECK_FALSE(gpu_attention::supports_backward_mma(backward(8, 8, 128, 128, 256, true, 0, DType::bf16)));
    Problem forward = make_attention(1, 8, 8, 128, 128, 128, true, 0, DType::bf16);
    CHECK_FALSE(gpu_attention::supports_backward_mma(forward));
}
