// AVX-512F f32 micro-kernels: 16-lane zmm tiles, at most 30 of the 32 zmm registers live.
#include <immintrin.h>

#include <cstdint>

#include "ukernel.hpp"

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace {

struct Avx512Ops {
    using V = __m512;
    static constexpr int lanes = 16;
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V zero() { return _mm512_setzero_ps(); }
};

#include "ukernel_impl.hpp"

// GCC 12 warns about the deliberately undefined pass-through operand inside the shuffle
// intrinsics' headers; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

inline __m512 unpacklo_pairs(__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
inline __m512 unpackhi_pairs(__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

// In-register 16x16 transpose of r[0..15] (rows become columns).
inline void transpose16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = unpacklo_pairs(t[i], t[i + 2]);
        r[i + 1] = unpackhi_pairs(t[i], t[i + 2]);
        r[i + 2] = unpacklo_pairs(t[i + 1], t[i + 3]);
        r[i + 3] = unpackhi_pairs(t[i + 1], t[i + 3]);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; ++i) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; ++i) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

// TransposeFn: 16 x 16 blocks through registers, masked at the row and depth edges.
void transpose_avx512(const float* src, std::int64_t src_stride, int rows, std::int64_t depth,
                      float* dst, std::int64_t dst_stride) {
    const __mmask16 row_mask = static_cast<__mmask16>((1u << rows) - 1);
    for (std::int64_t p = 0; p < depth; p += 16) {
        const int count = depth - p < 16 ? static_cast<int>(depth - p) : 16;
        const __mmask16 depth_mask = static_cast<__mmask16>((1u << count) - 1);
        __m512 r[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i)
            r[i] = i < rows ? _mm512_maskz_loadu_ps(depth_mask, src + i * src_stride + p) : _mm512_setzero_ps();
        transpose16x16(r);
        for (int q = 0; q < count; ++q) _mm512_mask_storeu_ps(dst + (p + q) * dst_stride, row_mask, r[q]);
    }
}

#pragma GCC diagnostic pop

}  // namespace
#pragma GCC pop_options

namespace tune::cpu_gemm {
namespace {

template <int MR, int NV>
constexpr Ukernel avx512(std::string_view label) {
    return {label, Isa::avx512f, MR, NV * 16, &microkernel<Avx512Ops, MR, NV, false>,
            &microkernel<Avx512Ops, MR, NV, true>, &transpose_avx512};
}

constexpr Ukernel kAvx512Kernels[] = {
    avx512<6, 2>("avx512_6x32"),   avx512<8, 2>("avx512_8x32"),  avx512<12, 2>("avx512_12x32"),
    avx512<14, 2>("avx512_14x32"), avx512<8, 3>("avx512_8x48"),  avx512<4, 4>("avx512_4x64"),
};

}  // namespace

std::span<const Ukernel> avx512_ukernels() { return kAvx512Kernels; }

}  // namespace tune::cpu_gemm
