// The AVX-512 building blocks of the CPU attention templates (kernels_avx512.cpp): score
// tiles, the online-softmax step and the P V update, and the bf16 roundings of the bf16 inner
// loops. The drivers (fused.cpp, fused_bf16.cpp, unfused.cpp, backward.cpp) hold the loops,
// masks, tiling and threading; these and the GEMM micro-kernels are the only ISA-specific code.
#pragma once

#include <cstdint>

namespace tune::cpu_attention {

// s[r * lds + j] = scale * dot(q_rows[r], k + j * ldk) over d elements, r < rows, j < keys.
// K as f32, or as bf16 bits widened in registers (a bf16 KV cache read in place).
void scores(const float* const* q_rows, int rows, const float* k, std::int64_t ldk, int keys, int d, float scale,
            float* s, std::int64_t lds);
void scores(const float* const* q_rows, int rows, const std::uint16_t* k, std::int64_t ldk, int keys, int d,
            float scale, float* s, std::int64_t lds);

// Prefetches `rows` rows of d elements, ld apart, into L1: the next page's rows of a paged
// cache, which the kernels' own prefetch (a fixed distance within one run of rows) never reaches.
void prefetch_rows(const float* p, std::int64_t ld, int rows, int d);
void prefetch_rows(const std::uint16_t* p, std::int64_t ld, int rows, int d);

// One online-softmax step on a row of n scores: entries outside [first, last) are masked.
// Updates the running max m and denominator l, replaces s[0, n) with exp(s - m_new) (0 where
// masked) and returns the factor exp(m_old - m_new) by which earlier sums must be rescaled.
// A row with nothing visible so far keeps m = -inf, l = 0 and gets zeros.
float softmax_step(float* s, int n, int first, int last, float& m, float& l);

// o[r] = alpha[r] * o[r] + sum_j p[r * ldp + j] * v[j * ldv] for r < rows over keys j < keys
// and d columns (o rows ldo apart).
void pv_update(const float* p, std::int64_t ldp, int rows, const float* alpha, const float* v, std::int64_t ldv,
               int keys, int d, float* o, std::int64_t ldo);
void pv_update(const float* p, std::int64_t ldp, int rows, const float* alpha, const std::uint16_t* v,
               std::int64_t ldv, int keys, int d, float* o, std::int64_t ldo);

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

// bf16 values are bit patterns (std::uint16_t), rounded to nearest even like tune::to_bf16.
// dst[j] = bf16(factor * src[j]) for j < n, 0 for n <= j < n_pad.
void to_bf16(const float* src, int n, float factor, std::uint16_t* dst, int n_pad);

// The VNNI pairs of two rows: dst[2 j] = bf16(r0[j]), dst[2 j + 1] = bf16(r1[j]) for j < n, zeros
// for n <= j < n_pad (n_pad a multiple of 16); a null row reads as zeros.
void interleave_bf16(const float* r0, const float* r1, int n, std::uint16_t* dst, int n_pad);

// softmax_step on each of `rows` row-major score rows (s, lds apart) of a tile of n keys from
// key j0, row r seeing keys [lo[r], hi[r]): updates m[r], l[r], sets alpha[r], and writes the
// row's probabilities as bf16 to p[r * ldp, + width) (0 where masked and past n; width a
// multiple of 16), leaving s as it was.
void softmax_rows_bf16(const float* s, std::int64_t lds, int rows, int n, int width, std::int32_t j0,
                       const std::int32_t* lo, const std::int32_t* hi, float* m, float* l, float* alpha,
                       std::uint16_t* p, std::int64_t ldp);

// dst[j] = src[j] widened from bf16 to f32 (exact) for j < n; src is prefetched ahead, as a
// decode step streams a bf16 K and V through here once.
void widen_bf16(const std::uint16_t* src, std::int64_t n, float* dst);

}  // namespace tune::cpu_attention
