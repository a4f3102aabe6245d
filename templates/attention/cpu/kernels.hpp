// The AVX-512 building blocks of the CPU attention templates (kernels_avx512.cpp): score
// tiles, the online-softmax step and the P V update. The drivers (fused.cpp, unfused.cpp)
// hold the loops, masks, tiling and threading; these are the only ISA-specific code.
#pragma once

#include <cstdint>

namespace tune::cpu_attention {

// s[r * lds + j] = scale * dot(q_rows[r], k + j * ldk) over d elements, r < rows, j < keys.
void scores(const float* const* q_rows, int rows, const float* k, std::int64_t ldk, int keys, int d, float scale,
            float* s, std::int64_t lds);

// One online-softmax step on a row of n scores: entries outside [first, last) are masked.
// Updates the running max m and denominator l, replaces s[0, n) with exp(s - m_new) (0 where
// masked) and returns the factor exp(m_old - m_new) by which earlier sums must be rescaled.
// A row with nothing visible so far keeps m = -inf, l = 0 and gets zeros.
float softmax_step(float* s, int n, int first, int last, float& m, float& l);

// o[r] = alpha[r] * o[r] + sum_j p[r * ldp + j] * v[j * ldv] for r < rows over keys j < keys
// and d columns (o rows ldo apart).
void pv_update(const float* p, std::int64_t ldp, int rows, const float* alpha, const float* v, std::int64_t ldv,
               int keys, int d, float* o, std::int64_t ldo);

// s[j] = exp(s[j] - shift) for j in [first, last), 0 elsewhere in [0, n) (backward: P from the
// saved log-sum-exp).
void exp_shifted(float* s, int n, int first, int last, float shift);

// dp[j] = p[j] * (dp[j] - dot) for j < n: the softmax gradient dS of one row.
void softmax_grad(const float* p, float* dp, int n, float dot);

// x[0, n) *= factor.
void scale_row(float* x, std::int64_t n, float factor);

// One online-softmax step on a key-major score tile (the GEMM-tiled schedule): s[j * lds + c]
// is key j0 + j of query row c, for j < keys and c < cols (a multiple of 16). Row c sees keys
// [lo[c], hi[c]); `all_visible` says every row sees the whole tile (no mask work). Per row,
// updates the running max m[c] and denominator l[c], replaces its scores with
// exp(s - m_new) (0 where masked) and sets alpha[c] = exp(m_old - m_new), the factor for its
// earlier sums (0 while nothing was visible). Columns are reduced 16 at a time down the keys,
// so no horizontal reductions are needed.
void softmax_columns(float* s, std::int64_t lds, int keys, int cols, std::int32_t j0, const std::int32_t* lo,
                     const std::int32_t* hi, bool all_visible, float* m, float* l, float* alpha);

// o[r * ldo + e] *= alpha[r] for r < rows, e < cols.
void scale_rows(float* o, std::int64_t ldo, int rows, int cols, const float* alpha);

}  // namespace tune::cpu_attention
