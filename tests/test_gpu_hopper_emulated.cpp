// The sm_90a kernel sources (cuda.gemm.wgmma's gemm_wgmma.cu, cuda.attention.wgmma's
// attention_wgmma.cu) run on the host by the GPU emulator with its Hopper twins
// (tests/emulation/hopper.cuh, wgmma_ops.cuh: mbarrier phases and transaction bytes, TMA boxes
// through the 128-byte swizzle, wgmma from descriptors and register fragments) against the fp64
// reference. The GEMM kernel passed its device tests on an H200, so it checks the twins; the
// attention kernel shares their tile, barrier and fragment conventions.
#include "emulation/gpu_emulator.hpp"

#define __shared__  // the kernels' shared memory is the emulator's libtune::smem_raw
#include "gemm_wgmma.cu"  // a copy outside templates/gemm/cuda: its includes find the twins
#include "../templates/attention/cuda/attention_wgmma.cu"
#undef __shared__

#include <catch2/catch.hpp>

#include "../templates/attention/gpu/attention_space.hpp"
#include "gemm_args.hpp"
#include "tune/workload.hpp"

using namespace tune;

namespace {

libtune::TmaDescriptor tensor_map(const void* base, long long inner, long long rows, int box_rows) {
    const gpu_emulator::TensorMap m{base, inner, rows, box_rows};
    libtune::TmaDescriptor d{};
    std::memcpy(&d, &m, sizeof m);
    return d;
}

// gemm_wgmma<bf16, BM, BN, STAGES, CONSUMERS, GROUP_M, EPI, OVERLAP> on `blocks` blocks
// (fewer than the tiles: the persistent walk).
template <int BM, int BN, int STAGES, int CONSUMERS, int GROUP_M, int EPI, int OVERLAP>
void check_gemm(const Problem& p, unsigned blocks = 0) {
    INFO(shape_key(p) << " BM " << BM << " BN " << BN << " stages " << STAGES << " consumers " << CONSUMERS
                      << " overlap " << OVERLAP << " blocks " << blocks);
    const GemmDims d = gemm_dims(p);
    REQUIRE(epilogue_bits(d) == EPI);
    Workload w(p, 7);
    w.poison_outputs();
    libtune::GemmParams args = gemm_params(d, w.args(), "emulated gemm_wgmma");
    args.k_per_split = d.k;
    const auto ta = tensor_map(args.a, d.k, d.batch * d.m, BM), tb = tensor_map(args.b, d.k, d.batch * d.n, BN);
    const unsigned tiles = unsigned(((d.m + BM - 1) / BM) * ((d.n + BN - 1) / BN) * d.batch);
    const unsigned grid[3] = {blocks ? blocks : tiles, 1, 1};
    gpu_emulator::launch(grid, (CONSUMERS + 1) * 128, 32,
                         [&] { libtune::gemm_wgmma<0, BM, BN, STAGES, CONSUMERS, GROUP_M, EPI, OVERLAP>(args, ta, tb); });
    INFO("error " << w.error() << " tolerance " << effective_tolerance(p));
    CHECK(w.error() <= effective_tolerance(p));
}

// attention_wgmma<ELEM, HEAD_DIM, K_TILE, STAGES, CONSUMERS, P_SPLIT>, one block per (query
// tile, head) as cuda.attention.wgmma launches it.
template <int ELEM, int D, int KT, int STAGES, int CONSUMERS, int P_SPLIT, int OVERLAP = 0>
void check_attention(const Problem& p) {
    INFO(shape_key(p) << " k_tile " << KT << " stages " << STAGES << " consumers " << CONSUMERS << " p_split " << P_SPLIT
                      << " overlap " << OVERLAP);
    const AttentionDims a = attention_dims(p);
    REQUIRE(a.head_dim == D);
    Workload w(p, 11);
    w.poison_outputs();
    const libtune::AttentionParams args = gpu_attention::params(a, w.args(), gpu_attention::Launch{}, nullptr);
    const int rows = 64 * CONSUMERS;
    const auto tq = tensor_map(args.q, D, a.batch * a.heads * a.q_len, rows);
    const auto tk = tensor_map(args.k, D, a.batch * a.kv_heads * a.kv_len, KT);
    const auto tv = tensor_map(args.v, D, a.batch * a.kv_heads * a.kv_len, KT);
    const unsigned grid[3] = {unsigned((a.q_len + rows - 1) / rows), unsigned(a.batch * a.heads), 1};
    gpu_emulator::launch(grid, (CONSUMERS + 1) * 128, 32,
                         [&] { libtune::attention_wgmma<ELEM, D, KT, STAGES, CONSUMERS, P_SPLIT, OVERLAP>(args, tq, tk, tv); });
    INFO("error " << w.error() << " tolerance " << effective_tolerance(p));
    CHECK(w.error() <= effective_tolerance(p));
}

}  // namespace

TEST_CASE("emulated cuda.gemm.wgmma: ragged tiles, two batch items, pipelined and persistent", "[gpu_hopper][emulated]") {
    const Problem p = make_gemm(150, 136, 200, DType::bf16, false, true, 2);
    check_gemm<128, 128, 2, 2, 1, 0, 1>(p);      // overlapped groups, 2 consumers
    check_gemm<64, 64, 3, 1, 4, 0, 0>(p, 5);     // one consumer, 3 stages, 5 blocks walk 18 tiles
}

TEST_CASE("emulated cuda.gemm.wgmma: fused bias + GELU epilogue, a 256-wide tile", "[gpu_hopper][emulated]") {
    const Problem p = with_epilogue(make_gemm(70, 300, 136, DType::bf16, false, true), true, Activation::gelu, false);
    check_gemm<128, 256, 2, 2, 8, libtune::kEpiBias | libtune::kEpiGelu, 1>(p, 1);
}

TEST_CASE("emulated cuda.attention.wgmma: causal GQA prefill, ragged queries and keys, both head dims", "[gpu_hopper][emulated]") {
    check_attention<0, 128, 128, 2, 2, 1>(make_attention(1, 4, 2, 150, 150, 128, true, 0, DType::bf16));
    check_attention<0, 64, 64, 3, 1, 1>(make_attention(2, 2, 1, 100, 190, 64, true, 0, DType::bf16));
}

TEST_CASE("emulated cuda.attention.wgmma: window without causal, rows without keys, f16, P rounded once", "[gpu_hopper][emulated]") {
    Problem window = make_attention(1, 2, 2, 90, 70, 64, false, 20, DType::f16);
    window.tolerance = gpu_attention::single_rounding_tolerance(window);
    check_attention<1, 64, 64, 1, 1, 0>(window);
    check_attention<0, 128, 64, 2, 2, 1>(make_attention(1, 2, 2, 130, 40, 128, true, 0, DType::bf16));  // q_len > kv_len
}

TEST_CASE("emulated cuda.attention.wgmma: the next tile's scores overlapped with the softmax", "[gpu_hopper][emulated]") {
    check_attention<0, 128, 64, 2, 2, 1, 1>(make_attention(1, 4, 2, 150, 300, 128, true, 0, DType::bf16));
    check_attention<0, 64, 64, 3, 1, 1, 1>(make_attention(1, 2, 2, 100, 100, 64, false, 30, DType::bf16));
    check_attention<0, 128, 64, 2, 1, 1, 1>(make_attention(1, 2, 1, 130, 40, 128, true, 0, DType::bf16));  // rows without keys
}
