// AVX-512F attention building blocks (see kernels.hpp). Register tiles: 4 query rows x 4 keys
// of dot products reduced in registers, and 4 rows x 64 columns of the P V accumulator.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels.hpp"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq")
// GCC 12 warns about the deliberately undefined pass-through operand inside the shuffle
// intrinsics' headers; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace tune::cpu_attention {
namespace {

__mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// K and V rows this many keys ahead are prefetched: a decode task streams one K and one V
// tile from memory, a single stream the hardware prefetcher alone kept at 13-17 GB/s.
constexpr int kPrefetchKeys = 16;

// Prefetches the `n` elements at p into L1, one request per 64-byte line.
template <class T>
inline void prefetch_row(const T* p, int n) {
    for (int e = 0; e < n; e += int(64 / sizeof(T))) _mm_prefetch(reinterpret_cast<const char*>(p + e), _MM_HINT_T0);
}

// 16 K or V elements as f32: f32 as they are, bf16 (uint16_t bits) widened exactly. The masked
// form reads only the first `left` (< 16) elements: a bf16 tail goes through a zeroed buffer,
// since a 16-bit masked load needs AVX512BW.
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const std::uint16_t* p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
inline __m512 load16(const float* p, __mmask16 m, int) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const std::uint16_t* p, __mmask16, int left) {
    alignas(32) std::uint16_t tail[16] = {};
    std::copy(p, p + left, tail);
    return load16(tail);
}

// e^x in f32: x = n ln2 + r with |r| <= ln2 / 2, degree-7 Taylor polynomial of e^r (relative
// error < 1e-8 before rounding), scaled by 2^n. Inputs below -87.3 give ~e^-87.3, which callers
// mask to 0.
inline __m512 exp_ps(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3f)), _mm512_set1_ps(-87.3f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

// Lanes j .. j + 15 that lie in [first, last).
inline __mmask16 visible(int j, int first, int last) {
    const __m512i idx = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(j));
    return __mmask16(_mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(first)) &
                     _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(last)));
}

// p_j = exp(s[j] - shift) on [first, last), 0 elsewhere in [0, n), handed to put(j, p) 16 at a
// time; returns their sum.
template <class Put>
inline float exp_masked(const float* s, int n, int first, int last, float shift, Put put) {
    const __m512 sh = _mm512_set1_ps(shift);
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        const __mmask16 keep = last > first ? visible(j, first, last) : __mmask16(0);
        const __m512 p = keep ? _mm512_maskz_mov_ps(keep, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(keep, s + j), sh)))
                              : _mm512_setzero_ps();
        sum = _mm512_add_ps(sum, p);
        put(j, p);
    }
    return _mm512_reduce_add_ps(sum);
}

// put() for exp_masked that writes the probabilities back over the scores s[0, n).
inline auto in_place(float* s, int n) {
    return [=](int j, __m512 p) { _mm512_mask_storeu_ps(s + j, tail_mask(n - j), p); };
}

// 16 floats rounded to bf16 (to nearest even, as vcvtneps2bf16 and tune::to_bf16 do), with
// AVX-512F integer arithmetic; NaN stays a quiet NaN.
inline __m256i bf16_bits(__m512 x) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
    rounded = _mm512_mask_or_epi32(rounded, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), bits, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
}

// One online-softmax step on a row of n scores, the probabilities handed to put (see
// softmax_step in kernels.hpp).
template <class Put>
float online_step(const float* s, int n, int first, int last, float& m, float& l, Put put) {
    first = std::max(first, 0);
    last = std::min(last, n);
    if (last <= first) return exp_masked(s, n, first, last, 0.0f, put), 1.0f;
    __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int j = first / 16 * 16; j < last; j += 16) {
        // A masked load: the row's last block may end where its buffer does.
        const __mmask16 keep = visible(j, first, last);
        top = _mm512_mask_max_ps(top, keep, top, _mm512_maskz_loadu_ps(keep, s + j));
    }
    const float m_new = std::max(m, _mm512_reduce_max_ps(top));
    const float alpha = m == -std::numeric_limits<float>::infinity()
                            ? 0.0f
                            : _mm512_cvtss_f32(exp_ps(_mm512_set1_ps(m - m_new)));
    l = l * alpha + exp_masked(s, n, first, last, m_new, put);
    m = m_new;
    return alpha;
}

// Lane i of the result is the sum of the lanes of a[i].
inline __m512 reduce16(const __m512 a[16]) {
    __m512 b[8], c[4];
    for (int i = 0; i < 8; ++i)
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; ++i) {
        const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
        c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    const __m512 e0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                    _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512 e1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                    _mm512_shuffle_f32x4(c[2], c[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// R rows x C keys (R * C = 16) of dot products over d; lane r * C + c of the result.
template <int R, int C, class T>
__m512 dot_block(const float* const q[R], const T* const k[C], int d) {
    __m512 acc[16];
    for (auto& a : acc) a = _mm512_setzero_ps();
    int e = 0;
    for (; e + 16 <= d; e += 16) {
        if constexpr (R == 1) {  // one row: each key's load feeds one FMA (no key registers to spill)
            const __m512 qv = _mm512_loadu_ps(q[0] + e);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(qv, load16(k[c] + e), acc[c]);
            continue;
        }
        __m512 kv[C];
#pragma GCC unroll 16
        for (int c = 0; c < C; ++c) kv[c] = load16(k[c] + e);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            const __m512 qv = _mm512_loadu_ps(q[r] + e);
#pragma GCC unroll 16
            for (int c = 0; c < C; ++c) acc[r * C + c] = _mm512_fmadd_ps(qv, kv[c], acc[r * C + c]);
        }
    }
    if (e < d) {
        const __mmask16 m = tail_mask(d - e);
        __m512 kv[C];
        for (int c = 0; c < C; ++c) kv[c] = load16(k[c] + e, m, d - e);
        for (int r = 0; r < R; ++r) {
            const __m512 qv = _mm512_maskz_loadu_ps(m, q[r] + e);
            for (int c = 0; c < C; ++c) acc[r * C + c] = _mm512_fmadd_ps(qv, kv[c], acc[r * C + c]);
        }
    }
    return reduce16(acc);
}

template <int R, int C, class T>
void score_rows(const float* const* q_rows, int r0, int rows, const T* k, std::int64_t ldk, int keys, int d,
                float scale, float* s, std::int64_t lds) {
    const float* q[R];
    for (int r = 0; r < R; ++r) q[r] = q_rows[std::min(r0 + r, rows - 1)];
    const int live_rows = std::min(R, rows - r0);
    alignas(64) float out[16];
    for (int j0 = 0; j0 < keys; j0 += C) {
        const T* kp[C];
        for (int c = 0; c < C; ++c) kp[c] = k + std::int64_t(std::min(j0 + c, keys - 1)) * ldk;
        if (r0 == 0)  // the first row group brings the keys in; later ones find them in cache
            for (int c = 0; c < C && j0 + c + kPrefetchKeys < keys; ++c) prefetch_row(kp[c] + kPrefetchKeys * ldk, d);
        const __m512 block = _mm512_mul_ps(dot_block<R, C, T>(q, kp, d), _mm512_set1_ps(scale));
        const int live_keys = std::min(C, keys - j0);
        if constexpr (C == 4) {
            if (live_rows == R && live_keys == C) {  // the full block: one 4-float store per row
                float* row = s + r0 * lds + j0;
                _mm_storeu_ps(row, _mm512_castps512_ps128(block));
                _mm_storeu_ps(row + lds, _mm512_extractf32x4_ps(block, 1));
                _mm_storeu_ps(row + 2 * lds, _mm512_extractf32x4_ps(block, 2));
                _mm_storeu_ps(row + 3 * lds, _mm512_extractf32x4_ps(block, 3));
                continue;
            }
        }
        _mm512_store_ps(out, block);
        for (int r = 0; r < live_rows; ++r)
            for (int c = 0; c < live_keys; ++c) s[(r0 + r) * lds + j0 + c] = out[r * C + c];
    }
}

// R rows x NV vectors of o += p v, starting at column col; the last vector is masked by `last`.
// ahead_floats > 0: also prefetches that many floats of the V row kPrefetchKeys keys ahead.
template <int R, int NV, class T>
void pv_block(const float* p, std::int64_t ldp, const float* alpha, const T* v, std::int64_t ldv, int keys,
              int col, __mmask16 last, float* o, std::int64_t ldo, int ahead_floats) {
    // Every loop over r and t fully unrolled: otherwise GCC keeps acc on the stack and stores
    // all of it back on every key (16 stores per 16 FMAs, the measured bottleneck of decode).
    __m512 acc[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
        const __m512 a = _mm512_set1_ps(alpha[r]);
#pragma GCC unroll 4
        for (int t = 0; t < NV; ++t) {
            const __mmask16 m = t == NV - 1 ? last : __mmask16(0xffff);
            acc[r][t] = _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m, o + r * ldo + col + 16 * t));
        }
    }
    for (int j = 0; j < keys; ++j) {
        if (ahead_floats && j + kPrefetchKeys < keys) prefetch_row(v + (j + kPrefetchKeys) * ldv, ahead_floats);
        __m512 vv[NV];
#pragma GCC unroll 4
        for (int t = 0; t < NV; ++t) {
            const T* vp = v + j * ldv + col + 16 * t;
            vv[t] = t == NV - 1 && last != 0xffff ? load16(vp, last, __builtin_popcount(last)) : load16(vp);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            const __m512 pb = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 4
            for (int t = 0; t < NV; ++t) acc[r][t] = _mm512_fmadd_ps(pb, vv[t], acc[r][t]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int t = 0; t < NV; ++t)
            _mm512_mask_storeu_ps(o + r * ldo + col + 16 * t, t == NV - 1 ? last : __mmask16(0xffff), acc[r][t]);
}

// `first`: the first row group of the tile, which brings V into cache (prefetching ahead).
template <int R, class T>
void pv_rows(const float* p, std::int64_t ldp, const float* alpha, const T* v, std::int64_t ldv, int keys, int d,
             float* o, std::int64_t ldo, bool first) {
    for (int col = 0; col < d; col += 64) {
        const int left = d - col, nv = std::min(4, (left + 15) / 16);
        const __mmask16 last = tail_mask(left - 16 * (nv - 1));
        const int ahead = first && col == 0 ? d : 0;  // the first column block brings whole rows in
        switch (nv) {
            case 1: pv_block<R, 1, T>(p, ldp, alpha, v, ldv, keys, col, last, o, ldo, ahead); break;
            case 2: pv_block<R, 2, T>(p, ldp, alpha, v, ldv, keys, col, last, o, ldo, ahead); break;
            case 3: pv_block<R, 3, T>(p, ldp, alpha, v, ldv, keys, col, last, o, ldo, ahead); break;
            default: pv_block<R, 4, T>(p, ldp, alpha, v, ldv, keys, col, last, o, ldo, ahead); break;
        }
    }
}

template <class T>
void scores_of(const float* const* q_rows, int rows, const T* k, std::int64_t ldk, int keys, int d, float scale,
               float* s, std::int64_t lds) {
    int r0 = 0;
    for (; r0 + 4 <= rows; r0 += 4) score_rows<4, 4>(q_rows, r0, rows, k, ldk, keys, d, scale, s, lds);
    for (; r0 < rows; ++r0) score_rows<1, 16>(q_rows, r0, rows, k, ldk, keys, d, scale, s, lds);
}

template <class T>
void pv_update_of(const float* p, std::int64_t ldp, int rows, const float* alpha, const T* v, std::int64_t ldv,
                  int keys, int d, float* o, std::int64_t ldo) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) pv_rows<4>(p + r * ldp, ldp, alpha + r, v, ldv, keys, d, o + r * ldo, ldo, r == 0);
    for (; r < rows; ++r) pv_rows<1>(p + r * ldp, ldp, alpha + r, v, ldv, keys, d, o + r * ldo, ldo, r == 0);
}

}  // namespace

void scores(const float* const* q_rows, int rows, const float* k, std::int64_t ldk, int keys, int d, float scale,
            float* s, std::int64_t lds) {
    scores_of(q_rows, rows, k, ldk, keys, d, scale, s, lds);
}

void scores(const float* const* q_rows, int rows, const std::uint16_t* k, std::int64_t ldk, int keys, int d,
            float scale, float* s, std::int64_t lds) {
    scores_of(q_rows, rows, k, ldk, keys, d, scale, s, lds);
}

void prefetch_rows(const float* p, std::int64_t ld, int rows, int d) {
    for (int r = 0; r < rows; ++r) prefetch_row(p + r * ld, d);
}

void prefetch_rows(const std::uint16_t* p, std::int64_t ld, int rows, int d) {
    for (int r = 0; r < rows; ++r) prefetch_row(p + r * ld, d);
}

float softmax_step(float* s, int n, int first, int last, float& m, float& l) {
    return online_step(s, n, first, last, m, l, in_place(s, n));
}

void widen_bf16(const std::uint16_t* src, std::int64_t n, float* dst) {
    constexpr std::int64_t kAhead = 1024;  // elements (2 KiB) ahead of the loads
    std::int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        if (j % 32 == 0 && j + kAhead < n) _mm_prefetch(reinterpret_cast<const char*>(src + j + kAhead), _MM_HINT_T0);
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j));
        _mm512_storeu_ps(dst + j, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    }
    for (; j < n; ++j) {
        const std::uint32_t bits = std::uint32_t(src[j]) << 16;
        std::memcpy(dst + j, &bits, sizeof bits);
    }
}

void softmax_rows_bf16(const float* s, std::int64_t lds, int rows, int n, int width, std::int32_t j0,
                       const std::int32_t* lo, const std::int32_t* hi, float* m, float* l, float* alpha,
                       std::uint16_t* p, std::int64_t ldp) {
    for (int r = 0; r < rows; ++r) {
        std::uint16_t* out = p + r * ldp;
        const auto put = [out](int j, __m512 x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), bf16_bits(x)); };
        alpha[r] = online_step(s + r * lds, width, lo[r] - j0, std::min(hi[r] - j0, n), m[r], l[r], put);
    }
}

void to_bf16(const float* src, int n, float factor, std::uint16_t* dst, int n_pad) {
    const __m512 f = _mm512_set1_ps(factor);
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), bf16_bits(_mm512_mul_ps(_mm512_loadu_ps(src + j), f)));
    if (j < n) {  // the last block through a buffer: 16-bit masked stores need AVX512BW
        alignas(32) std::uint16_t last[16];
        const __mmask16 m = tail_mask(n - j);
        _mm256_store_si256(reinterpret_cast<__m256i*>(last), bf16_bits(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + j), f)));
        std::copy(last, last + (n - j), dst + j);
    }
    std::fill(dst + n, dst + n_pad, std::uint16_t{0});
}

void interleave_bf16(const float* r0, const float* r1, int n, std::uint16_t* dst, int n_pad) {
    for (int j = 0; j < n_pad; j += 16) {
        const __mmask16 m = j < n ? tail_mask(n - j) : __mmask16(0);
        const __m512i lo = _mm512_cvtepu16_epi32(m && r0 ? bf16_bits(_mm512_maskz_loadu_ps(m, r0 + j)) : _mm256_setzero_si256());
        const __m512i hi = _mm512_cvtepu16_epi32(m && r1 ? bf16_bits(_mm512_maskz_loadu_ps(m, r1 + j)) : _mm256_setzero_si256());
        // Column j's pair as one 32-bit element: r0's value in the low half, r1's in the high.
        _mm512_storeu_si512(dst + 2 * j, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
}

void exp_shifted(float* s, int n, int first, int last, float shift) {
    exp_masked(s, n, std::max(first, 0), std::min(last, n), shift, in_place(s, n));
}

void softmax_grad(const float* p, float* dp, int n, float dot) {
    const __m512 d = _mm512_set1_ps(dot);
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 g = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dp + j), d);
        _mm512_mask_storeu_ps(dp + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + j), g));
    }
}

void pv_update(const float* p, std::int64_t ldp, int rows, const float* alpha, const float* v, std::int64_t ldv,
               int keys, int d, float* o, std::int64_t ldo) {
    pv_update_of(p, ldp, rows, alpha, v, ldv, keys, d, o, ldo);
}

void pv_update(const float* p, std::int64_t ldp, int rows, const float* alpha, const std::uint16_t* v,
               std::int64_t ldv, int keys, int d, float* o, std::int64_t ldo) {
    pv_update_of(p, ldp, rows, alpha, v, ldv, keys, d, o, ldo);
}

void scale_row(float* x, std::int64_t n, float factor) {
    const __m512 f = _mm512_set1_ps(factor);
    for (std::int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(int(std::min<std::int64_t>(16, n - j)));
        _mm512_mask_storeu_ps(x + j, m, _mm512_mul_ps(f, _mm512_maskz_loadu_ps(m, x + j)));
    }
}

void softmax_columns(float* s, std::int64_t lds, int keys, int cols, std::int32_t j0, const std::int32_t* lo,
                     const std::int32_t* hi, bool all_visible, float* m, float* l, float* alpha) {
    const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int c = 0; c < cols; c += 16) {
        const __m512i first = _mm512_loadu_si512(lo + c), last = _mm512_loadu_si512(hi + c);
        // Lanes of key j that this block's rows see.
        auto seen = [&](int j) -> __mmask16 {
            if (all_visible) return 0xffff;
            const __m512i key = _mm512_set1_epi32(j0 + j);
            return __mmask16(_mm512_cmple_epi32_mask(first, key) & _mm512_cmpgt_epi32_mask(last, key));
        };
        __m512 top = neg_inf;
        for (int j = 0; j < keys; ++j) top = _mm512_mask_max_ps(top, seen(j), top, _mm512_loadu_ps(s + j * lds + c));
        const __m512 m_old = _mm512_loadu_ps(m + c);
        const __m512 m_new = _mm512_max_ps(m_old, top);
        // Rows with nothing visible yet keep m = -inf: shift by 0 (their p are all masked to 0)
        // and rescale by 0 (their sums are 0 anyway), never exp(-inf - -inf).
        const __mmask16 live_old = _mm512_cmp_ps_mask(m_old, neg_inf, _CMP_NEQ_OQ);
        const __mmask16 live_new = _mm512_cmp_ps_mask(m_new, neg_inf, _CMP_NEQ_OQ);
        const __m512 shift = _mm512_maskz_mov_ps(live_new, m_new);
        const __m512 a = _mm512_maskz_mov_ps(live_old, exp_ps(_mm512_sub_ps(m_old, shift)));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < keys; ++j) {
            float* row = s + j * lds + c;
            const __m512 p = _mm512_maskz_mov_ps(seen(j), exp_ps(_mm512_sub_ps(_mm512_loadu_ps(row), shift)));
            sum = _mm512_add_ps(sum, p);
            _mm512_storeu_ps(row, p);
        }
        _mm512_storeu_ps(l + c, _mm512_fmadd_ps(_mm512_loadu_ps(l + c), a, sum));
        _mm512_storeu_ps(m + c, m_new);
        _mm512_storeu_ps(alpha + c, a);
    }
}

void scale_rows(float* o, std::int64_t ldo, int rows, int cols, const float* alpha) {
    for (int r = 0; r < rows; ++r)
        if (alpha[r] != 1.0f) scale_row(o + r * ldo, cols, alpha[r]);
}

}  // namespace tune::cpu_attention

#pragma GCC diagnostic pop
#pragma GCC pop_options
