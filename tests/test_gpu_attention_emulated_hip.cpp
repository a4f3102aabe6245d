// hip.attention.flash's kernel source (templates/attention/hip/attention_flash.hip) run on the
// host by the GPU emulator (tests/emulation, 64-lane waves; its LDS arrays become statics shared
// by the block's threads) against the fp64 reference: masks, tile skipping, online softmax,
// GQA packing and split-KV with the combine kernel, without an AMD GPU.
#include "emulation/gpu_emulator.hpp"

#define __shared__ static
#include "../templates/attention/hip/attention_flash.hip"
#undef __shared__

#include "emulation/attention_check.hpp"

using namespace tune;
using attention_check::config;

namespace {

const gpu_attention::Target kGfx90a{"attention_flash_generic", 64, false, 64 * 1024};

template <int ELEM, int D, int QT, int KT, int W, int GQA, int SPLIT>
void check(const Problem& p, const Config& c, const std::string& instance) {
    attention_check::expect_correct(
        p, c, kGfx90a, instance,
        [](const libtune::AttentionParams& a) { libtune::attention_flash_generic<ELEM, D, QT, KT, W, GQA, SPLIT>(a); },
        [](const libtune::AttentionParams& a) { libtune::attention_combine<D>(a); });
}

}  // namespace

TEST_CASE("emulated hip.attention.flash: causal GQA-packed prefill, ragged tiles", "[gpu_attention][emulated]") {
    const Problem p = make_attention(1, 4, 2, 70, 70, 64, true, 0, DType::bf16);
    check<0, 64, 32, 32, 2, 1, 0>(p, config(p, kGfx90a, {{"q_tile", 32}, {"k_tile", 32}, {"warps", 2}}),
                                  "libtune::attention_flash_generic<0,64,32,32,2,1,0>");
}

TEST_CASE("emulated hip.attention.flash: decode steps with split-KV and combine", "[gpu_attention][emulated]") {
    const Problem p = make_attention(1, 8, 2, 3, 500, 128, true, 0, DType::bf16);
    check<0, 128, 16, 64, 1, 1, 1>(p, config(p, kGfx90a, {{"q_tile", 16}, {"k_tile", 64}, {"warps", 1}, {"split_kv", 8}}),
                                   "libtune::attention_flash_generic<0,128,16,64,1,1,1>");
}

TEST_CASE("emulated hip.attention.flash: f16, window without causal, rows without keys, unpacked", "[gpu_attention][emulated]") {
    Problem p = make_attention(1, 2, 1, 40, 17, 80, false, 5, DType::f16);
    p.tolerance = attention_check::f32_level_tolerance(p);
    check<1, 80, 16, 32, 4, 0, 0>(p, config(p, kGfx90a, {{"q_tile", 16}, {"k_tile", 32}, {"warps", 4}, {"gqa_pack", 0}}),
                                  "libtune::attention_flash_generic<1,80,16,32,4,0,0>");
}

TEST_CASE("emulated hip.attention.flash: paged KV cache, decode with split-KV over shuffled pages", "[gpu_attention][emulated][paged]") {
    Problem p = make_attention(2, 8, 2, 2, 500, 128, true, 0, DType::bf16);
    p.set_dim("page", 32);
    check<0, 128, 16, 64, 1, 1, 1>(p, config(p, kGfx90a, {{"q_tile", 16}, {"k_tile", 64}, {"warps", 1}, {"split_kv", 8}}),
                                   "libtune::attention_flash_generic<0,128,16,64,1,1,1>");
}
