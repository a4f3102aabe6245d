// cuda.attention.flash's kernel source (templates/attention/cuda/attention_flash.cu) run on the
// host by the GPU emulator (tests/emulation): mma.sync, ldmatrix and shuffles in their PTX
// fragment layouts, so the fragment bookkeeping, masks, tile skipping, online softmax, GQA
// packing, p_split, both 16-bit input types and split-KV with its combine are checked against the fp64 reference
// without a GPU. Each case runs twice: cp.async copies landing at once and only at their
// wait_group, so the pipeline's group accounting is checked too.
#include "emulation/gpu_emulator.hpp"

#define __shared__  // the kernel's shared memory is the emulator's libtune::smem_raw
#include "../templates/attention/cuda/attention_flash.cu"
#undef __shared__

#include "emulation/attention_check.hpp"

using namespace tune;
using attention_check::config;

namespace {

const gpu_attention::Target kSm80{"attention_flash", 32, true, 163 * 1024};

template <int ELEM, int D, int QT, int KT, int W, int ST, int GQA, int SPLIT, int PS>
void check(const Problem& p, const Config& c, const std::string& instance) {
    REQUIRE(gpu_attention::launch(p, c, kSm80).shared_bytes <= sizeof libtune::smem_raw);
    // cp.async landing as early and as late as the hardware may let it.
    for (auto timing : {gpu_emulator::CopyTiming::immediate, gpu_emulator::CopyTiming::at_wait}) {
        gpu_emulator::copy_timing = timing;
        INFO((timing == gpu_emulator::CopyTiming::immediate ? "copies land at once" : "copies land at their wait"));
        attention_check::expect_correct(
            p, c, kSm80, instance,
            [](const libtune::AttentionParams& a) { libtune::attention_flash<ELEM, D, QT, KT, W, ST, GQA, SPLIT, PS>(a); },
            [](const libtune::AttentionParams& a) { libtune::attention_combine<D>(a); });
    }
}

}  // namespace

TEST_CASE("emulated cuda.attention.flash: GQA-packed full attention, ragged rows and keys", "[gpu_attention][emulated]") {
    const Problem p = make_attention(1, 4, 2, 70, 70, 64, false, 0, DType::bf16);
    check<0, 64, 64, 32, 4, 2, 1, 0, 1>(p, config(p, kSm80, {{"q_tile", 64}, {"k_tile", 32}, {"warps", 4}, {"stages", 2}}),
                                       "libtune::attention_flash<0,64,64,32,4,2,1,0,1>");
}

TEST_CASE("emulated cuda.attention.flash: f16 inputs, GQA-packed causal prefill", "[gpu_attention][emulated]") {
    Problem p = make_attention(1, 4, 2, 70, 70, 64, true, 0, DType::f16);
    p.tolerance = attention_check::f32_level_tolerance(p);
    check<1, 64, 64, 32, 4, 2, 1, 0, 1>(p, config(p, kSm80, {{"q_tile", 64}, {"k_tile", 32}, {"warps", 4}, {"stages", 2}}),
                                       "libtune::attention_flash<1,64,64,32,4,2,1,0,1>");
}

TEST_CASE("emulated cuda.attention.flash: causal sliding window over a longer KV, two slices per warp, one stage", "[gpu_attention][emulated]") {
    const Problem p = make_attention(1, 2, 2, 40, 100, 80, true, 30, DType::bf16);
    check<0, 80, 32, 32, 1, 1, 0, 0, 1>(p, config(p, kSm80, {{"q_tile", 32}, {"k_tile", 32}, {"warps", 1}, {"stages", 1}}),
                                       "libtune::attention_flash<0,80,32,32,1,1,0,0,1>");
}

TEST_CASE("emulated cuda.attention.flash: decode with split-KV and combine, P rounded once", "[gpu_attention][emulated]") {
    Problem p = make_attention(1, 8, 2, 1, 300, 128, true, 0, DType::bf16);
    p.tolerance = gpu_attention::single_rounding_tolerance(p);
    check<0, 128, 16, 64, 1, 3, 1, 1, 0>(
        p, config(p, kSm80, {{"q_tile", 16}, {"k_tile", 64}, {"warps", 1}, {"stages", 3}, {"split_kv", 4}, {"p_split", 0}}),
        "libtune::attention_flash<0,128,16,64,1,3,1,1,0>");
}

TEST_CASE("emulated cuda.attention.flash: rows that see no key (causal, q_len > kv_len), MQA unpacked", "[gpu_attention][emulated]") {
    const Problem p = make_attention(1, 2, 1, 40, 17, 96, true, 0, DType::bf16);
    check<0, 96, 16, 64, 1, 2, 0, 0, 1>(
        p, config(p, kSm80, {{"q_tile", 16}, {"k_tile", 64}, {"warps", 1}, {"stages", 2}, {"gqa_pack", 0}}),
        "libtune::attention_flash<0,96,16,64,1,2,0,0,1>");
}

TEST_CASE("emulated cuda.attention.flash: head_dim 256 with a two-sided window", "[gpu_attention][emulated]") {
    const Problem p = make_attention(1, 1, 1, 17, 33, 256, false, 9, DType::bf16);
    check<0, 256, 16, 32, 1, 2, 0, 0, 1>(p, config(p, kSm80, {{"q_tile", 16}, {"k_tile", 32}, {"warps", 1}, {"stages", 2}}),
                                        "libtune::attention_flash<0,256,16,32,1,2,0,0,1>");
}

namespace {

Problem paged(Problem p, std::int64_t page) {
    p.set_dim("page", page);
    return p;
}

}  // namespace

TEST_CASE("emulated cuda.attention.flash: paged KV cache, decode with split-KV over pages in shuffled order", "[gpu_attention][emulated][paged]") {
    // Two sequences, pages of 16 keys (key tiles of 64 span four pages; the last page is partial).
    Problem p = paged(make_attention(2, 8, 2, 1, 300, 128, true, 0, DType::bf16), 16);
    p.tolerance = gpu_attention::single_rounding_tolerance(p);
    check<0, 128, 16, 64, 1, 3, 1, 1, 0>(
        p, config(p, kSm80, {{"q_tile", 16}, {"k_tile", 64}, {"warps", 1}, {"stages", 3}, {"split_kv", 4}, {"p_split", 0}}),
        "libtune::attention_flash<0,128,16,64,1,3,1,1,0>");
}

TEST_CASE("emulated cuda.attention.flash: paged KV cache, causal prefill with pages smaller than a key tile and a window", "[gpu_attention][emulated][paged]") {
    const Problem p = paged(make_attention(2, 4, 2, 37, 70, 64, true, 20, DType::bf16), 7);
    check<0, 64, 64, 32, 4, 2, 1, 0, 1>(p, config(p, kSm80, {{"q_tile", 64}, {"k_tile", 32}, {"warps", 4}, {"stages", 2}}),
                                       "libtune::attention_flash<0,64,64,32,4,2,1,0,1>");
}
