// cuda.attention.flash: FlashAttention-2 style forward for sm_80+. Each warp owns 16 (or 32)
// query rows; S = Q K^T and O += P V run on mma.sync m16n8k16 (bf16 / f16 in, f32 out) from
// ldmatrix fragments; the online softmax (base 2, f32) keeps each row's max and sum in the
// registers of the four lanes that hold it. K and V tiles stream through a cp.async pipeline
// of STAGES buffers; key tiles no row of the block sees are never visited, and tiles every row
// sees entirely skip the mask. GQA packing puts a kv head's query heads in one block; split-KV
// (decode) writes per-split partials that attention_combine merges. Knobs are template
// arguments; the host instantiates one per config with NVRTC.
#include "common.cuh"
#include "attention_combine.h"
#include "attention_softmax.cuh"

namespace libtune {

template <int ELEM, int HEAD_DIM, int Q_TILE, int K_TILE, int WARPS, int STAGES, int GQA, int SPLIT, int P_SPLIT>
__global__ void __launch_bounds__(WARPS * 32) attention_flash(AttentionParams p) {
    constexpr int kThreads = WARPS * 32, kWarpRows = Q_TILE / WARPS, kMi = kWarpRows / 16;
    constexpr int kLd = HEAD_DIM + 8;  // 16 bytes of padding: ldmatrix rows hit distinct banks
    constexpr int kChunks = HEAD_DIM / 8;  // 16-byte copies per row
    constexpr int kNiS = K_TILE / 8, kNiO = HEAD_DIM / 8;
    static_assert(kWarpRows % 16 == 0 && HEAD_DIM % 16 == 0 && K_TILE % 16 == 0 && STAGES >= 1, "tile shape");
    static_assert(kNiO % 2 == 0, "head_dim: V fragments load in pairs of 8 columns");

    extern __shared__ __align__(128) unsigned char smem_raw[];
    u16* sq = reinterpret_cast<u16*>(smem_raw);
    u16* sk = sq + Q_TILE * kLd;
    u16* sv = sk + STAGES * K_TILE * kLd;

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
    const RowMap map = row_map(p, GQA);
    const int row_tiles = (int)((map.unit_rows + Q_TILE - 1) / Q_TILE);
    const int tile = row_tiles - 1 - (int)blockIdx.x;  // last rows first: under a causal mask they see the most keys
    const long long batch = blockIdx.y / map.units, unit = blockIdx.y % map.units;
    const long long row0 = (long long)tile * Q_TILE;
    const long long row_end = min(row0 + Q_TILE, map.unit_rows);
    const long long kv_head = map.kv_head(unit);
    const long long shift = p.kv_len - p.q_len;
    const u16* q = static_cast<const u16*>(p.q);
    const u16* k = static_cast<const u16*>(p.k);
    const u16* v = static_cast<const u16*>(p.v);
    // Output row (b, head, position) of block row r.
    auto out_row = [&](long long r) { return (batch * p.heads + map.head(unit, r)) * p.q_len + map.position(r); };

    int tile_begin, tile_end;
    long long all_first, all_last;
    block_key_tiles(p, map, row0, row_end, K_TILE, &tile_begin, &tile_end, &all_first, &all_last);
    if constexpr (SPLIT) split_tiles(tile_begin, tile_end, p.splits, (int)blockIdx.z, &tile_begin, &tile_end);
    const int tiles = tile_end - tile_begin;

    // Q rows past the block's end are zero-filled; they are computed and never stored.
    for (int c = tid; c < Q_TILE * kChunks; c += kThreads) {
        const int r = c / kChunks, col = (c % kChunks) * 8;
        const bool ok = row0 + r < row_end;
        cp_async16(sq + r * kLd + col, ok ? q + out_row(row0 + r) * HEAD_DIM + col : q, ok);
    }
    auto load_kv = [&](int stage, int kt) {
        const long long key0 = (long long)kt * K_TILE;
        u16* ks = sk + stage * K_TILE * kLd;
        u16* vs = sv + stage * K_TILE * kLd;
        for (int c = tid; c < K_TILE * kChunks; c += kThreads) {
            const int r = c / kChunks, col = (c % kChunks) * 8;
            const bool ok = key0 + r < p.kv_len;  // keys past the end read as 0 (never NaN)
            const long long at = ok ? kv_offset(p, batch, kv_head, key0 + r, HEAD_DIM) + col : 0;
            cp_async16(ks + r * kLd + col, k + at, ok);
            cp_async16(vs + r * kLd + col, v + at, ok);
        }
    };

    // The key range of each row this lane holds: rows g and g + 8 of each 16-row slice.
    long long first[kMi][2], last[kMi][2];
#pragma unroll
    for (int i = 0; i < kMi; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const long long r = row0 + warp * kWarpRows + i * 16 + g + 8 * h;
            first[i][h] = last[i][h] = 0;
            if (r < row_end) attention_key_range(map.position(r) + shift, p.kv_len, p.causal, p.window, &first[i][h], &last[i][h]);
        }

    float o[kMi][kNiO][4];
    float row_max[kMi][2], row_sum[kMi][2];  // running max (base-2 scaled scores) and this lane's part of the sum
#pragma unroll
    for (int i = 0; i < kMi; ++i) {
#pragma unroll
        for (int j = 0; j < kNiO; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[i][j][e] = 0.f;
        row_max[i][0] = row_max[i][1] = attention_neg_inf();
        row_sum[i][0] = row_sum[i][1] = 0.f;
    }

    auto compute = [&](int stage, int kt) {
        const u16* ks = sk + stage * K_TILE * kLd;
        const u16* vs = sv + stage * K_TILE * kLd;
        const u16* qs = sq + warp * kWarpRows * kLd;
        float s[kMi][kNiS][4];
#pragma unroll
        for (int i = 0; i < kMi; ++i)
#pragma unroll
            for (int j = 0; j < kNiS; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[i][j][e] = 0.f;
        // S = Q K^T: K rows (keys) are the n x k operand, as gemm_mma's B stored n x k.
#pragma unroll
        for (int kk = 0; kk < HEAD_DIM; kk += 16) {
            unsigned af[kMi][4];
#pragma unroll
            for (int i = 0; i < kMi; ++i) ldmatrix_x4(af[i], qs + (i * 16 + lane % 16) * kLd + kk + (lane / 16) * 8);
#pragma unroll
            for (int j = 0; j < kNiS; j += 2) {
                unsigned r[4];
                ldmatrix_x4(r, ks + (j * 8 + lane % 8 + (lane / 16) * 8) * kLd + kk + ((lane / 8) % 2) * 8);
                const unsigned b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
#pragma unroll
                for (int i = 0; i < kMi; ++i) {
                    mma<ELEM>(s[i][j], af[i], b0);
                    mma<ELEM>(s[i][j + 1], af[i], b1);
                }
            }
        }
        // Online softmax (attention_softmax.cuh), then O rescaled by each row's alpha.
        const long long key0 = (long long)kt * K_TILE;
        const bool masked = !(key0 >= all_first && key0 + K_TILE <= all_last);
#pragma unroll
        for (int i = 0; i < kMi; ++i) {
            float alpha[2];
            online_softmax_step<kNiS>(&s[i][0][0], key0, t, masked, first[i], last[i], p.scale_log2, row_max[i],
                                      row_sum[i], alpha);
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int j = 0; j < kNiO; ++j) o[i][j][2 * h] *= alpha[h], o[i][j][2 * h + 1] *= alpha[h];
        }
        // O += P V. The accumulator layout of S is the A-operand layout of m16n8k16, so P stays
        // in registers: keys kk..kk+15 are S slices kk/8 and kk/8 + 1. V (keys x head_dim) is
        // the k x n operand, as gemm_mma's B stored k x n (ldmatrix .trans).
#pragma unroll
        for (int kk = 0; kk < K_TILE; kk += 16) {
            unsigned pa[kMi][4], pl[kMi][4];
#pragma unroll
            for (int i = 0; i < kMi; ++i) p_fragments<ELEM, P_SPLIT>(&s[i][kk / 8][0], pa[i], pl[i]);
#pragma unroll
            for (int j = 0; j < kNiO; j += 2) {
                unsigned r[4];
                ldmatrix_x4_trans(r, vs + (kk + lane % 8 + ((lane / 8) % 2) * 8) * kLd + j * 8 + (lane / 16) * 8);
                const unsigned b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
#pragma unroll
                for (int i = 0; i < kMi; ++i) {
                    mma<ELEM>(o[i][j], pa[i], b0);
                    mma<ELEM>(o[i][j + 1], pa[i], b1);
                    if constexpr (P_SPLIT) {
                        mma<ELEM>(o[i][j], pl[i], b0);
                        mma<ELEM>(o[i][j + 1], pl[i], b1);
                    }
                }
            }
        }
    };

    if constexpr (STAGES == 1) {  // one buffer: load, wait, compute
        for (int it = 0; it < tiles; ++it) {
            load_kv(0, tile_begin + it);
            cp_async_commit();
            cp_async_wait<0>();
            __syncthreads();
            compute(0, tile_begin + it);
            __syncthreads();  // the buffer is free for the next tile
        }
    } else {
        // STAGES - 1 tiles in flight while one is computed; one commit group per tile (empty
        // past the end) keeps wait_group's count exact. Q travels in the first group.
#pragma unroll
        for (int st = 0; st < STAGES - 1; ++st) {
            if (st < tiles) load_kv(st, tile_begin + st);
            cp_async_commit();
        }
        for (int it = 0; it < tiles; ++it) {
            cp_async_wait<STAGES - 2>();
            __syncthreads();  // tile it landed for all threads; buffer (it - 1) % STAGES is free
            const int next = it + STAGES - 1;
            if (next < tiles) load_kv(next % STAGES, tile_begin + next);
            cp_async_commit();
            compute(it % STAGES, tile_begin + it);
        }
    }
    cp_async_wait<0>();

    // Each row's sum over its four lanes, then O / sum and LSE = ln(2^max * sum).
    const long long rows = p.batch * p.heads * p.q_len;
    float* o_out = SPLIT ? p.partial_o + (long long)blockIdx.z * rows * HEAD_DIM : p.o;
    float* lse_out = SPLIT ? p.partial_lse + (long long)blockIdx.z * rows : p.lse;
#pragma unroll
    for (int i = 0; i < kMi; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float sum = row_sum[i][h];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const long long r = row0 + warp * kWarpRows + i * 16 + g + 8 * h;
            if (r >= row_end) continue;
            const long long orow = out_row(r);
            const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
            for (int j = 0; j < kNiO; ++j) {
                float2 pair = make_float2(o[i][j][2 * h] * inv, o[i][j][2 * h + 1] * inv);
                *reinterpret_cast<float2*>(o_out + orow * HEAD_DIM + j * 8 + 2 * t) = pair;
            }
            if (t == 0)
                lse_out[orow] = sum > 0.f ? row_max[i][h] * 0.6931471805599453f + logf(sum) : attention_neg_inf();
        }
}

}  // namespace libtune
