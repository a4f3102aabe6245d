// cuda.attention.wgmma: Hopper (sm_90a) attention forward, bf16 / f16 Q, K, V; f32 softmax,
// O and LSE. Warp-specialised like cuda.gemm.wgmma: the first thread of warpgroup 0 loads the
// block's Q tile once and streams K and V tiles by TMA (128-byte swizzle, in 64-dim column
// blocks) through a STAGES-deep mbarrier ring; each of CONSUMERS warpgroups owns 64 query rows
// of one head. Per key tile: S = Q K^T by wgmma from shared memory (both K-major), the online
// softmax in registers (base 2; the four lanes of a row reduce by shuffles), then O += P V with
// P straight from registers as wgmma's A operand and V MN-major in shared memory. Key tiles no
// row sees are never loaded; tiles every row sees skip the mask. P_SPLIT adds P's 16-bit
// rounding residual as a second product (f32-level accuracy), as cuda.attention.flash does.
// OVERLAP issues the next key tile's S = Q K^T before this tile's softmax, so the tensor cores
// work while the softmax runs (FlashAttention-3's intra-warpgroup overlap).
// Prefill only: one head per block (no GQA packing), no split-KV, contiguous K and V.
#include "attention_combine.h"  // AttentionParams, masks, attention_neg_inf
#include "attention_softmax.cuh"
#include "common.cuh"
#include "hopper.cuh"
#include "wgmma_ops.cuh"

namespace libtune {

template <int ELEM, int HEAD_DIM, int K_TILE, int STAGES, int CONSUMERS, int P_SPLIT, int OVERLAP>
__global__ void __launch_bounds__((CONSUMERS + 1) * 128, 1)
    attention_wgmma(AttentionParams p, const __grid_constant__ TmaDescriptor tma_q,
                    const __grid_constant__ TmaDescriptor tma_k, const __grid_constant__ TmaDescriptor tma_v) {
    constexpr int kBlocks = HEAD_DIM / 64;  // 64-dim (128-byte) column blocks of Q, K and V
    constexpr int kRows = 64 * CONSUMERS;   // query rows per thread block
    constexpr int kQBlock = kRows * 64;     // elements of one Q column block
    constexpr int kKvBlock = K_TILE * 64;   // elements of one K or V column block
    constexpr int kStage = 2 * kBlocks * kKvBlock;  // K's column blocks, then V's
    constexpr int kNiS = K_TILE / 8;                // n8 column slices of S
    static_assert(HEAD_DIM % 64 == 0 && (K_TILE == 64 || K_TILE == 128) && STAGES >= 1, "tile shape");
    static_assert(!OVERLAP || STAGES >= 2, "the next tile's scores need its own stage");

    extern __shared__ unsigned char smem_raw[];
    u16* sq = reinterpret_cast<u16*>((reinterpret_cast<unsigned long long>(smem_raw) + 1023) & ~1023ull);
    u16* skv = sq + kBlocks * kQBlock;
    unsigned long long* full = reinterpret_cast<unsigned long long*>(skv + STAGES * kStage);
    unsigned long long* empty = full + STAGES;
    unsigned long long* q_full = empty + STAGES;

    const int q_tiles = (int)((p.q_len + kRows - 1) / kRows);
    const int tile = q_tiles - 1 - (int)blockIdx.x;  // last rows first: under a causal mask they see the most keys
    const long long bh = blockIdx.y, batch = bh / p.heads, head = bh % p.heads;
    const long long kv_head = head / (p.heads / p.kv_heads);
    const long long row0 = (long long)tile * kRows, row_end = min(row0 + kRows, p.q_len);
    const RowMap map = row_map(p, 0);  // rows are positions of one head
    int tile_begin, tile_end;
    long long all_first, all_last;
    block_key_tiles(p, map, row0, row_end, K_TILE, &tile_begin, &tile_end, &all_first, &all_last);
    const int tiles = tile_end - tile_begin;
    const int warpgroup = threadIdx.x / 128, tid = threadIdx.x % 128;

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], CONSUMERS);
        }
        mbar_init(q_full, 1);
        mbar_init_fence();
    }
    __syncthreads();

    if (warpgroup == 0) {
        set_max_registers_dec<40>();
        if (tid == 0) {
            // Q, K and V are 2-D tensors of rows x head_dim: this head's rows start at bh * q_len
            // (Q) and (batch * kv_heads + kv_head) * kv_len (K, V). Rows past the head's end
            // belong to the next one or are zero-filled: never stored (Q), masked (K, V).
            mbar_expect_tx(q_full, kBlocks * kQBlock * 2);
            for (int c = 0; c < kBlocks; ++c) tma_load_2d(sq + c * kQBlock, &tma_q, q_full, c * 64, (int)(bh * p.q_len + row0));
            const long long kv_row0 = (batch * p.kv_heads + kv_head) * p.kv_len;
            for (int it = 0; it < tiles; ++it) {
                const int s = it % STAGES;
                if (it >= STAGES) mbar_wait(&empty[s], ((it / STAGES) - 1) & 1);
                mbar_expect_tx(&full[s], kStage * 2);
                const int key_row = (int)(kv_row0 + (long long)(tile_begin + it) * K_TILE);
                u16* stage = skv + s * kStage;
                for (int c = 0; c < kBlocks; ++c) {
                    tma_load_2d(stage + c * kKvBlock, &tma_k, &full[s], c * 64, key_row);
                    tma_load_2d(stage + (kBlocks + c) * kKvBlock, &tma_v, &full[s], c * 64, key_row);
                }
            }
        }
        return;
    }

    set_max_registers_inc<(CONSUMERS == 1 ? 240 : 232)>();
    const int consumer = warpgroup - 1, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    // This lane's rows: g and g + 8 of its warp's 16 (the m64 accumulator layout).
    const long long shift = p.kv_len - p.q_len;
    long long first[2], last[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const long long r = row0 + consumer * 64 + warp * 16 + g + 8 * h;
        first[h] = last[h] = 0;
        if (r < row_end) attention_key_range(r + shift, p.kv_len, p.causal, p.window, &first[h], &last[h]);
    }
    float o[kBlocks][32];  // O's column block c: m64n64 accumulators
    float row_max[2], row_sum[2];
#pragma unroll
    for (int c = 0; c < kBlocks; ++c)
#pragma unroll
        for (int i = 0; i < 32; ++i) o[c][i] = 0.f;
    row_max[0] = row_max[1] = attention_neg_inf();
    row_sum[0] = row_sum[1] = 0.f;

    mbar_wait(q_full, 0);
    const u16* q_rows = sq + consumer * 64 * 64;  // this warpgroup's 64 rows of each Q column block
    // S = Q K^T for key tile `it` into acc (zeroed here), issued and committed, not waited for:
    // Q rows (M) and K rows (N) both K-major, 16 head dims per instruction.
    auto issue_scores = [&](int it, float (&acc)[K_TILE / 2]) {
        const int s = it % STAGES;
        mbar_wait(&full[s], (it / STAGES) & 1);
        const u16* ks = skv + s * kStage;
#pragma unroll
        for (int i = 0; i < K_TILE / 2; ++i) acc[i] = 0.f;
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < HEAD_DIM; kk += 16)
            Wgmma<K_TILE, ELEM>::run(acc, smem_descriptor(q_rows + (kk / 64) * kQBlock + kk % 64),
                                     smem_descriptor(ks + (kk / 64) * kKvBlock + kk % 64));
        wgmma_commit();
    };
    float sc[K_TILE / 2];
    if constexpr (OVERLAP) {  // the first tile's scores, before the loop
        if (tiles > 0) {
            issue_scores(0, sc);
            wgmma_wait<0>();
        }
    }
    for (int it = 0; it < tiles; ++it) {
        const int s = it % STAGES;
        const u16* vs = skv + s * kStage + kBlocks * kKvBlock;
        // OVERLAP: the next tile's S = Q K^T runs on the tensor cores while this tile's softmax
        // runs on the other units (its stage is another one: stages >= 2); else S waits here.
        [[maybe_unused]] float sn[OVERLAP ? K_TILE / 2 : 1];
        if constexpr (OVERLAP) {
            if (it + 1 < tiles) issue_scores(it + 1, sn);
        } else {
            issue_scores(it, sc);
            wgmma_wait<0>();
        }

        // Online softmax (attention_softmax.cuh: S's accumulators are in the m16n8 layout per
        // warp), then O rescaled by each row's alpha.
        const long long key0 = (long long)(tile_begin + it) * K_TILE;
        const bool masked = !(key0 >= all_first && key0 + K_TILE <= all_last);
        float alpha[2];
        online_softmax_step<kNiS>(sc, key0, t, masked, first, last, p.scale_log2, row_max, row_sum, alpha);
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int c = 0; c < kBlocks; ++c)
#pragma unroll
                for (int j = 0; j < 8; ++j) o[c][4 * j + 2 * h] *= alpha[h], o[c][4 * j + 2 * h + 1] *= alpha[h];

        // O += P V, 16 keys per instruction. P's registers for keys kk..kk+15 are S slices
        // kk/8 and kk/8 + 1 (the m16n8k16 A layout per warp), converted before the fence: no
        // register a wgmma reads may be written between its fence and it. V's column block c is
        // the MN-major B, its 16 key rows 16 x 128 bytes from the block's start.
        unsigned pa[K_TILE / 16][4], pl[K_TILE / 16][4];
#pragma unroll
        for (int kc = 0; kc < K_TILE / 16; ++kc) p_fragments<ELEM, P_SPLIT>(sc + 8 * kc, pa[kc], pl[kc]);
        wgmma_fence();  // after the accumulators' rescaling and P's conversion
#pragma unroll
        for (int kc = 0; kc < K_TILE / 16; ++kc)
#pragma unroll
            for (int c = 0; c < kBlocks; ++c) {
                const unsigned long long v_desc = smem_descriptor(vs + c * kKvBlock + kc * 16 * 64);
                WgmmaRegA<64, ELEM>::run(o[c], pa[kc], v_desc);
                if constexpr (P_SPLIT) WgmmaRegA<64, ELEM>::run(o[c], pl[kc], v_desc);
            }
        wgmma_commit();
        wgmma_wait<0>();  // P V (and, with OVERLAP, the next tile's S)
        if (tid == 0) mbar_arrive(&empty[s]);  // this warpgroup is done with the stage
        if constexpr (OVERLAP) {
#pragma unroll
            for (int i = 0; i < K_TILE / 2; ++i) sc[i] = sn[i];
        }
    }

    // Each row's sum over its four lanes, then O / sum and LSE = ln(2^max * sum).
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float sum = row_sum[h];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const long long r = row0 + consumer * 64 + warp * 16 + g + 8 * h;
        if (r >= row_end) continue;
        const long long orow = bh * p.q_len + r;
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
        for (int c = 0; c < kBlocks; ++c)
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const float2 pair = make_float2(o[c][4 * j + 2 * h] * inv, o[c][4 * j + 2 * h + 1] * inv);
                *reinterpret_cast<float2*>(p.o + orow * HEAD_DIM + c * 64 + j * 8 + 2 * t) = pair;
            }
        if (t == 0) p.lse[orow] = sum > 0.f ? row_max[h] * 0.6931471805599453f + logf(sum) : attention_neg_inf();
    }
}

}  // namespace libtune
