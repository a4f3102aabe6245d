// hip.attention.flash: the flash-attention forward of cuda.attention.flash on the generic path
// for AMD GPUs (f32 scalar arithmetic, any arch hiprtc knows): the same row mapping, GQA
// packing, masks, key-tile skipping, online softmax (base 2) and split-KV partials, from
// attention_params.h and attention_combine.h. Per key tile: K and V staged in LDS, one
// thread per score, one thread per row for the softmax step, then each thread updates its
// fixed share of O (registers). Knobs are template arguments; compiled at run time with hiprtc.
#include "attention_combine.h"

namespace libtune {

typedef unsigned short u16;

template <int ELEM>
__device__ inline float element_to_float(u16 bits) {
    if constexpr (ELEM == 0) return __uint_as_float(unsigned(bits) << 16);  // bf16
    else return float(__builtin_bit_cast(_Float16, bits));                  // f16
}

template <int ELEM, int HEAD_DIM, int Q_TILE, int K_TILE, int WARPS, int GQA, int SPLIT>
__global__ void __launch_bounds__(WARPS * 64) attention_flash_generic(AttentionParams p) {
    constexpr int kThreads = WARPS * 64, kPer = Q_TILE * HEAD_DIM / kThreads;
    static_assert(Q_TILE * HEAD_DIM % kThreads == 0, "each thread owns an equal share of O");
    __shared__ u16 sq[Q_TILE * HEAD_DIM];
    __shared__ u16 sk[K_TILE * HEAD_DIM];
    __shared__ u16 sv[K_TILE * HEAD_DIM];
    __shared__ float ss[Q_TILE * K_TILE];  // scores, then probabilities
    __shared__ float row_max[Q_TILE], row_sum[Q_TILE], row_alpha[Q_TILE];

    const int tid = threadIdx.x;
    const RowMap map = row_map(p, GQA);
    const int row_tiles = (int)((map.unit_rows + Q_TILE - 1) / Q_TILE);
    const int tile = row_tiles - 1 - (int)blockIdx.x;  // last rows first (causal: the most keys)
    const long long batch = blockIdx.y / map.units, unit = blockIdx.y % map.units;
    const long long row0 = (long long)tile * Q_TILE;
    const long long row_end = row0 + Q_TILE < map.unit_rows ? row0 + Q_TILE : map.unit_rows;
    const long long kv_head = map.kv_head(unit);
    const long long shift = p.kv_len - p.q_len;
    const u16* q = static_cast<const u16*>(p.q);
    const u16* k = static_cast<const u16*>(p.k);
    const u16* v = static_cast<const u16*>(p.v);
    auto out_row = [&](long long r) { return (batch * p.heads + map.head(unit, r)) * p.q_len + map.position(r); };

    int tile_begin, tile_end;
    long long all_first, all_last;
    block_key_tiles(p, map, row0, row_end, K_TILE, &tile_begin, &tile_end, &all_first, &all_last);
    if constexpr (SPLIT) split_tiles(tile_begin, tile_end, p.splits, (int)blockIdx.z, &tile_begin, &tile_end);

    for (int i = tid; i < Q_TILE * HEAD_DIM; i += kThreads) {
        const int r = i / HEAD_DIM, c = i % HEAD_DIM;
        sq[i] = row0 + r < row_end ? q[out_row(row0 + r) * HEAD_DIM + c] : u16(0);
    }
    for (int r = tid; r < Q_TILE; r += kThreads) row_max[r] = attention_neg_inf(), row_sum[r] = 0.f;
    float o[kPer];
    for (int x = 0; x < kPer; ++x) o[x] = 0.f;

    for (int kt = tile_begin; kt < tile_end; ++kt) {
        const long long key0 = (long long)kt * K_TILE;
        __syncthreads();  // the previous tile's readers are done
        for (int i = tid; i < K_TILE * HEAD_DIM; i += kThreads) {
            const long long key = key0 + i / HEAD_DIM;
            const bool ok = key < p.kv_len;  // keys past the end read as 0 (never NaN)
            const long long at = ok ? kv_offset(p, batch, kv_head, key, HEAD_DIM) + i % HEAD_DIM : 0;
            sk[i] = ok ? k[at] : u16(0);
            sv[i] = ok ? v[at] : u16(0);
        }
        __syncthreads();
        const bool masked = !(key0 >= all_first && key0 + K_TILE <= all_last);
        for (int i = tid; i < Q_TILE * K_TILE; i += kThreads) {
            const int r = i / K_TILE, j = i % K_TILE;
            float dot = 0.f;
            for (int c = 0; c < HEAD_DIM; ++c)
                dot += element_to_float<ELEM>(sq[r * HEAD_DIM + c]) * element_to_float<ELEM>(sk[j * HEAD_DIM + c]);
            float x = dot * p.scale_log2;
            if (masked) {
                long long first = 0, last = 0;
                if (row0 + r < row_end)
                    attention_key_range(map.position(row0 + r) + shift, p.kv_len, p.causal, p.window, &first, &last);
                if (key0 + j < first || key0 + j >= last) x = attention_neg_inf();
            }
            ss[i] = x;
        }
        __syncthreads();
        for (int r = tid; r < Q_TILE; r += kThreads) {
            float top = attention_neg_inf();
            for (int j = 0; j < K_TILE; ++j) top = fmaxf(top, ss[r * K_TILE + j]);
            const float next = fmaxf(row_max[r], top);
            const float base = next == attention_neg_inf() ? 0.f : next;  // no inf - inf for a row without keys yet
            const float alpha = exp2f(row_max[r] - base);
            float sum = 0.f;
            for (int j = 0; j < K_TILE; ++j) {
                const float pe = exp2f(ss[r * K_TILE + j] - base);
                ss[r * K_TILE + j] = pe;
                sum += pe;
            }
            row_sum[r] = row_sum[r] * alpha + sum;
            row_max[r] = next;
            row_alpha[r] = alpha;
        }
        __syncthreads();
        for (int x = 0; x < kPer; ++x) {
            const int e = tid + x * kThreads, r = e / HEAD_DIM, c = e % HEAD_DIM;
            float acc = o[x] * row_alpha[r];
            for (int j = 0; j < K_TILE; ++j) acc += ss[r * K_TILE + j] * element_to_float<ELEM>(sv[j * HEAD_DIM + c]);
            o[x] = acc;
        }
    }
    __syncthreads();

    const long long rows = p.batch * p.heads * p.q_len;
    float* o_out = SPLIT ? p.partial_o + (long long)blockIdx.z * rows * HEAD_DIM : p.o;
    float* lse_out = SPLIT ? p.partial_lse + (long long)blockIdx.z * rows : p.lse;
    for (int x = 0; x < kPer; ++x) {
        const int e = tid + x * kThreads, r = e / HEAD_DIM, c = e % HEAD_DIM;
        if (row0 + r >= row_end) continue;
        const float sum = row_sum[r];
        o_out[out_row(row0 + r) * HEAD_DIM + c] = sum > 0.f ? o[x] / sum : 0.f;
    }
    for (int r = tid; r < Q_TILE; r += kThreads) {
        if (row0 + r >= row_end) continue;
        const float sum = row_sum[r];
        lse_out[out_row(row0 + r)] = sum > 0.f ? row_max[r] * 0.6931471805599453f + logf(sum) : attention_neg_inf();
    }
}

}  // namespace libtune
