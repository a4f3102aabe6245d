// Split-KV combine, shared by the CUDA and HIP attention programs: each row's splits hold a
// normalised partial O and its LSE; the row's O is their LSE-weighted mean and its LSE the
// log of the summed weights. One thread per output element.
#pragma once

#include "attention_params.h"

namespace libtune {

__device__ inline float attention_neg_inf() { return __int_as_float(0xff800000); }

template <int HEAD_DIM>
__global__ void attention_combine(AttentionParams p) {
    const long long rows = p.batch * p.heads * p.q_len;
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= rows * HEAD_DIM) return;
    const long long row = e / HEAD_DIM;
    const int col = (int)(e % HEAD_DIM);
    float top = attention_neg_inf();
    for (int s = 0; s < p.splits; ++s) top = fmaxf(top, p.partial_lse[s * rows + row]);
    if (top == attention_neg_inf()) {  // the row sees no key at all
        p.o[e] = 0.f;
        if (col == 0) p.lse[row] = top;
        return;
    }
    float sum = 0.f, acc = 0.f;
    for (int s = 0; s < p.splits; ++s) {
        const float w = expf(p.partial_lse[s * rows + row] - top);  // 0 for an empty split
        sum += w;
        acc += w * p.partial_o[(s * rows + row) * HEAD_DIM + col];
    }
    p.o[e] = acc / sum;
    if (col == 0) p.lse[row] = top + logf(sum);
}

}  // namespace libtune
