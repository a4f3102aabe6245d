// The GPU attention backward kernel (templates/attention/gpu/attention_backward.h, the source
// of cuda.attention.flash_backward and hip.attention.flash_backward) run on the host by the GPU
// emulator (tests/emulation) against the fp64 gradient reference, in both modes: masks and tile
// skipping, GQA / MQA sums over the group, ragged tiles, rows that see no key, both 16-bit
// input types, 32- and 64-lane waves. Store mode's workspace starts as NaN, so a dS tile the
// dQ pass reads but the dK/dV pass never wrote fails the check.
#include "emulation/gpu_emulator.hpp"

#define __shared__
namespace libtune {
float attention_backward_smem[64 * 1024 / sizeof(float)];  // the kernel's dynamic shared memory
}
#include "../templates/attention/gpu/attention_backward.h"
#undef __shared__

#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "../templates/attention/gpu/attention_backward_space.hpp"
#include "emulation/attention_check.hpp"
#include "tune/workload.hpp"

using namespace tune;

namespace {

const gpu_attention::Target kCuda{"attention_backward", 32, false, 163 * 1024};
const gpu_attention::Target kHip{"attention_backward", 64, false, 64 * 1024};

Problem backward(std::int64_t heads, std::int64_t kv_heads, std::int64_t q_len, std::int64_t kv_len, std::int64_t d,
                 bool causal, std::int64_t window, DType dtype) {
    Problem p = make_attention(1, heads, kv_heads, q_len, kv_len, d, causal, window, dtype);
    p.set_dim("backward", 1);
    // f16 and bf16 inputs multiply exactly in f32 and the kernel accumulates in f32: the f32
    // problem's bound applies (the 16-bit defaults would hide indexing mistakes).
    p.tolerance = attention_check::f32_level_tolerance(p);
    return p;
}

// Runs attention_backward<ELEM, D, QT, KT, warps x wave, STORE> in both modes and checks dQ, dK
// and dV against the reference; the host plan must name that instance.
template <int ELEM, int D, int QT, int KT, int THREADS>
void check(const Problem& p, const gpu_attention::Target& t) {
    for (const int store : {0, 1}) {
        Config c = gpu_attention::build_backward_space(p, t)->default_config();
        c.set("mode", std::string(store ? "store" : "recompute"));
        c.set("q_tile", QT);
        c.set("k_tile", KT);
        c.set("warps", THREADS / t.wave);
        INFO(shape_key(p) << " " << c.text());
        REQUIRE_FALSE(gpu_attention::build_backward_space(p, t)->violation(c).has_value());
        const gpu_attention::BackwardLaunch l = gpu_attention::backward_launch(p, c, t);
        REQUIRE(l.instance == "libtune::attention_backward<" + std::to_string(ELEM) + "," + std::to_string(D) + "," +
                                  std::to_string(QT) + "," + std::to_string(KT) + "," + std::to_string(THREADS) + "," +
                                  std::to_string(store) + ">");
        REQUIRE(l.shared_bytes <= sizeof libtune::attention_backward_smem);
        Workload w(p, 5);
        w.poison_outputs();  // NaN: an element the kernel never writes fails the check
        std::vector<float> workspace(l.workspace_bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
        for (int pass = 0; pass < 2; ++pass) {
            const libtune::AttentionBackwardParams args = gpu_attention::backward_params(
                attention_dims(p), w.args(), l, workspace.empty() ? nullptr : workspace.data(), pass);
            gpu_emulator::launch(pass == 0 ? l.key_grid : l.query_grid, l.block, t.wave, [&] {
                if (store) libtune::attention_backward<ELEM, D, QT, KT, THREADS, 1>(args);
                else libtune::attention_backward<ELEM, D, QT, KT, THREADS, 0>(args);
            });
        }
        const double error = w.error();
        INFO("error " << error << " tolerance " << effective_tolerance(p));
        CHECK(error <= effective_tolerance(p));  // NaN fails too
    }
}

}  // namespace

TEST_CASE("emulated attention backward: causal GQA, ragged query and key tiles", "[gpu_attention][emulated][backward]") {
    check<0, 64, 16, 16, 64>(backward(4, 2, 37, 45, 64, true, 0, DType::bf16), kCuda);
}

TEST_CASE("emulated attention backward: f16 MQA, two-sided window, more keys than queries", "[gpu_attention][emulated][backward]") {
    check<1, 80, 32, 32, 128>(backward(3, 1, 20, 33, 80, false, 7, DType::f16), kCuda);
}

TEST_CASE("emulated attention backward: rows that see no key (causal, q_len > kv_len), 64-lane waves", "[gpu_attention][emulated][backward]") {
    check<0, 96, 16, 32, 64>(backward(2, 2, 40, 17, 96, true, 0, DType::bf16), kHip);
}

TEST_CASE("emulated attention backward: head_dim 256, causal sliding window", "[gpu_attention][emulated][backward]") {
    check<0, 256, 16, 16, 64>(backward(1, 1, 9, 20, 256, true, 5, DType::bf16), kCuda);
}
