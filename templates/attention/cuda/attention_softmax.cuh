// The online-softmax step of libtune's CUDA attention kernels (cuda.attention.flash on
// mma.sync, cuda.attention.wgmma), over scores in the m16n8 accumulator layout that both
// tensor-core paths produce: lane (g, t) holds rows g (h = 0) and g + 8 (h = 1) of a 16-row
// slice, s[4 j + 2 h + e] being key key0 + 8 j + 2 t + e; the four lanes t = 0..3 share a row;
// and P's conversion to the 16-bit A operand of P V.
#pragma once

#include "attention_combine.h"
#include "common.cuh"

namespace libtune {

// Scales the scores to base 2, masks keys outside [first[h], last[h]) when `masked` (a tile
// some row does not wholly see), replaces them by exp2(s - new max), updates each row's
// running max and this lane's share of its sum, and returns in alpha[h] the factor the row's
// O accumulators must be multiplied by. A row with no visible key yet keeps max -inf and
// subtracts 0 (no inf - inf).
template <int NI>
__device__ __forceinline__ void online_softmax_step(float* s, long long key0, int t, bool masked,
                                                    const long long (&first)[2], const long long (&last)[2],
                                                    float scale_log2, float (&row_max)[2], float (&row_sum)[2],
                                                    float (&alpha)[2]) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float top = attention_neg_inf();
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                float x = s[4 * j + 2 * h + e] * scale_log2;
                const long long key = key0 + j * 8 + 2 * t + e;
                if (masked && (key < first[h] || key >= last[h])) x = attention_neg_inf();
                s[4 * j + 2 * h + e] = x;
                top = fmaxf(top, x);
            }
        top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 1));
        top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 2));
        const float next = fmaxf(row_max[h], top);
        const float base = next == attention_neg_inf() ? 0.f : next;
        alpha[h] = exp2f(row_max[h] - base);
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const float pe = exp2f(s[4 * j + 2 * h + e] - base);
                s[4 * j + 2 * h + e] = pe;
                sum += pe;
            }
        row_sum[h] = row_sum[h] * alpha[h] + sum;
        row_max[h] = next;
    }
}

// P for the A operand of one k16 step of P V (mma.sync m16n8k16, or wgmma k16 per warp): keys
// kk..kk+15 are the slices at s and s + 4, register f taking slice f / 2 of row g (even f) or
// g + 8. pl: with P_SPLIT the rounding residual as a second 16-bit term, else 0.
template <int ELEM, int P_SPLIT>
__device__ __forceinline__ void p_fragments(const float* s, unsigned (&pa)[4], unsigned (&pl)[4]) {
#pragma unroll
    for (int f = 0; f < 4; ++f) {
        const float* x = s + 4 * (f / 2) + 2 * (f % 2);
        pa[f] = pack_half2<ELEM>(x[0], x[1]);
        pl[f] = 0u;
        if constexpr (P_SPLIT != 0) {
            float lo, hi;
            unpack_half2<ELEM>(pa[f], lo, hi);
            pl[f] = pack_half2<ELEM>(x[0] - lo, x[1] - hi);
        }
    }
}

}  // namespace libtune
