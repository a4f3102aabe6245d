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

// exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 (two-part ln 2, |r| <= ln2 / 2),
// exp(r) by the Cephes degree-6 polynomial: within 2 ulp of expf. |x| is clamped to 100,
// beyond which scalef gives inf / 0 as expf does; NaN passes through.
inline __m512 exp_avx512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-100.0f), _mm512_min_ps(_mm512_set1_ps(100.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// Both activations are x * sigmoid(t): silu t = x; gelu (tanh form) t = 2 sqrt(2/pi) (x + 0.044715 x^3),
// since 0.5 (1 + tanh(u)) = sigmoid(2u).
template <tune::Activation A>
inline __m512 activate_avx512(__m512 x) {
    if constexpr (A == tune::Activation::none) {
        return x;
    } else {
        __m512 t = x;
        if constexpr (A == tune::Activation::gelu) {
            const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
            t = _mm512_mul_ps(_mm512_set1_ps(1.5957691216057308f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
        }
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), t));
        return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    }
}

inline __mmask16 tail_mask(std::int64_t left) {
    return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

template <tune::Activation A>
void epilogue_rows(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, const float* bias,
                   const float* residual, std::int64_t ld_residual) {
    for (std::int64_t i = 0; i < rows; ++i) {
        float* row = c + i * ldc;
        const float* res = residual ? residual + i * ld_residual : nullptr;
        for (std::int64_t j = 0; j < cols; j += 16) {
            const __mmask16 m = tail_mask(cols - j);
            __m512 v = _mm512_maskz_loadu_ps(m, row + j);
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
            v = activate_avx512<A>(v);
            if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + j));
            _mm512_mask_storeu_ps(row + j, m, v);
        }
    }
}

void epilogue_avx512(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols, const float* bias,
                     tune::Activation act, const float* residual, std::int64_t ld_residual) {
    switch (act) {
        case tune::Activation::none: return epilogue_rows<tune::Activation::none>(c, ldc, rows, cols, bias, residual, ld_residual);
        case tune::Activation::gelu: return epilogue_rows<tune::Activation::gelu>(c, ldc, rows, cols, bias, residual, ld_residual);
        case tune::Activation::silu: return epilogue_rows<tune::Activation::silu>(c, ldc, rows, cols, bias, residual, ld_residual);
    }
}

void glu_avx512(float* out, std::int64_t ldo, const float* gate, std::int64_t ldg, const float* up,
                std::int64_t ldu, std::int64_t rows, std::int64_t cols) {
    for (std::int64_t i = 0; i < rows; ++i) {
        float* o = out + i * ldo;
        const float* g = gate + i * ldg;
        const float* u = up + i * ldu;
        for (std::int64_t j = 0; j < cols; j += 16) {
            const __mmask16 m = tail_mask(cols - j);
            const __m512 a = activate_avx512<tune::Activation::silu>(_mm512_maskz_loadu_ps(m, g + j));
            _mm512_mask_storeu_ps(o + j, m, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m, u + j)));
        }
    }
}


// The dot-form kernel on f32 operands (16 per vector, one FMA per step).
namespace dot_f32 {
struct Ops {
    using E = float;
    using V = __m512;
    using M = __mmask16;
    static constexpr int step = 16;
    static constexpr M full = 0xffff;
    static M tail(std::int64_t left) { return static_cast<M>((1u << left) - 1); }
    static V load(M m, const E* p) { return _mm512_maskz_loadu_ps(m, p); }
    static __m512 dot(__m512 acc, V a, V b) { return _mm512_fmadd_ps(a, b, acc); }
};
// _mm512_reduce_add_ps shuffles with an undefined pass-through operand (see above).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "ukernel_dot_impl.hpp"
#pragma GCC diagnostic pop
}  // namespace dot_f32

}  // namespace
#pragma GCC pop_options

// AVX512-BF16 micro-kernels: each vdpbf16ps multiplies 16 columns x one k-pair of B by a
// broadcast k-pair of one A row, accumulating both products in f32.
#pragma GCC push_options
#pragma GCC target("avx512bf16,avx512f,avx512bw")
namespace {

// The dot-form kernel on bf16 operands: vdpbf16ps multiplies 32 consecutive bf16 of an A row
// and a B row pairwise and adds each pair's sum into one of 16 f32 lanes.
namespace dot_bf16 {
struct Ops {
    using E = std::uint16_t;
    using V = __m512bh;
    using M = __mmask32;
    static constexpr int step = 32;
    static constexpr M full = 0xffffffffu;
    static M tail(std::int64_t left) { return static_cast<M>((std::uint64_t{1} << left) - 1); }
    static V load(M m, const E* p) { return (__m512bh)_mm512_maskz_loadu_epi16(m, p); }
    static __m512 dot(__m512 acc, V a, V b) { return _mm512_dpbf16_ps(acc, a, b); }
};
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "ukernel_dot_impl.hpp"
#pragma GCC diagnostic pop
}  // namespace dot_bf16

// MR * NV accumulators + NV B vectors + one broadcast must fit the 32 zmm registers.
template <int MR, int NV>
void microkernel_bf16(std::int64_t pairs, const std::uint16_t* a, const std::uint16_t* b, float* c,
                      std::int64_t ldc, bool accumulate) {
    static_assert(MR * NV + NV + 1 <= 32);
    constexpr int NR = NV * 16;
    __m512 acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();

#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) __builtin_prefetch(c + i * ldc, 1, 3);

#pragma GCC unroll 4
    for (std::int64_t q = 0; q < pairs; ++q) {
        __m512bh bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            bv[v] = (__m512bh)_mm512_loadu_si512(b + v * 32);
            __builtin_prefetch(b + 8 * 2 * NR + v * 32, 0, 3);
        }
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            std::int32_t pair;
            __builtin_memcpy(&pair, a + 2 * i, sizeof pair);
            const __m512bh ai = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
        }
        a += 2 * MR;
        b += 2 * NR;
    }

#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            float* cp = c + i * ldc + v * 16;
            _mm512_storeu_ps(cp, accumulate ? _mm512_add_ps(acc[i][v], _mm512_loadu_ps(cp)) : acc[i][v]);
        }
    }
}

}  // namespace
#pragma GCC pop_options

// AMX bf16 micro-kernel: a 32x32 C block as 2x2 tiles of 16x16 f32 (tmm0..3), A tiles 16 rows
// x 32 bf16 (tmm4, 5, row-major A panel), B tiles 16 k-pairs x 16 columns (tmm6, 7, VNNI
// panel rows of 2 * 32 bf16). Every tile is 16 rows x 64 bytes; each thread loads the
// configuration once and releases the tiles at the end of a call.
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f")
namespace {

struct alignas(64) TileConfig {
    std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
    std::uint16_t colsb[16] = {};
    std::uint8_t rows[16] = {};
};

thread_local bool amx_configured = false;

inline void amx_configure() {
    if (amx_configured) return;
    TileConfig cfg;
    for (int t = 0; t < 8; ++t) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    amx_configured = true;
}

void amx_release() {
    if (!amx_configured) return;
    _tile_release();
    amx_configured = false;
}

// a: A panel row-major, row i at a + i * depth (depth = 2 * pairs, a multiple of 32).
// b: VNNI panel, k-pair q of the 32 columns at b + q * 64.
void amx_32x32(std::int64_t pairs, const std::uint16_t* a, const std::uint16_t* b, float* c, std::int64_t ldc,
               bool accumulate) {
    amx_configure();
    const std::int64_t depth = 2 * pairs;
    const std::int64_t c_stride = ldc * 4;
    if (accumulate) {
        _tile_loadd(0, c, c_stride);
        _tile_loadd(1, c + 16, c_stride);
        _tile_loadd(2, c + 16 * ldc, c_stride);
        _tile_loadd(3, c + 16 * ldc + 16, c_stride);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    const std::int64_t a_stride = depth * 2;
    for (std::int64_t p = 0; p < depth; p += 32) {
        const std::uint16_t* bp = b + p * 32;  // k-pair p / 2, 64 bf16 per pair
        _tile_loadd(4, a + p, a_stride);
        _tile_loadd(5, a + 16 * depth + p, a_stride);
        _tile_loadd(6, bp, 128);
        _tile_loadd(7, bp + 32, 128);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, c_stride);
    _tile_stored(1, c + 16, c_stride);
    _tile_stored(2, c + 16 * ldc, c_stride);
    _tile_stored(3, c + 16 * ldc + 16, c_stride);
}

}  // namespace
#pragma GCC pop_options

namespace tune::cpu_gemm {
namespace {

template <int MR, int NV>
constexpr Ukernel avx512(std::string_view label) {
    return {label, Isa::avx512f, MR, NV * 16, &microkernel<Avx512Ops, MR, NV, false>,
            &microkernel<Avx512Ops, MR, NV, true>, &transpose_avx512,
            &epilogue_avx512, &glu_avx512, nullptr};
}

constexpr Ukernel kAvx512Kernels[] = {
    avx512<6, 2>("avx512_6x32"),   avx512<8, 2>("avx512_8x32"),  avx512<12, 2>("avx512_12x32"),
    avx512<14, 2>("avx512_14x32"), avx512<8, 3>("avx512_8x48"),  avx512<4, 4>("avx512_4x64"),
};

template <int MR, int NV>
constexpr Ukernel avx512bf16(std::string_view label) {
    return {label, Isa::avx512bf16, MR, NV * 16, nullptr, nullptr, &transpose_avx512,
            &epilogue_avx512, &glu_avx512, &microkernel_bf16<MR, NV>, 2};
}

constexpr Ukernel kAvx512Bf16Kernels[] = {
    avx512bf16<8, 2>("avx512bf16_8x32"),   avx512bf16<12, 2>("avx512bf16_12x32"),
    avx512bf16<14, 2>("avx512bf16_14x32"), avx512bf16<6, 4>("avx512bf16_6x64"),
};

constexpr Ukernel kAmxKernels[] = {
    {"amx_32x32", Isa::amx_bf16, 32, 32, nullptr, nullptr, &transpose_avx512, &epilogue_avx512, &glu_avx512,
     &amx_32x32, 32, true, &amx_release},
};

// Dot-form kernels: no packing, no register transposes (epilogue and glu as the f32 kernels').
template <int MR, int NR>
constexpr Ukernel avx512_dot(std::string_view label) {
    Ukernel u{label, Isa::avx512f, MR, NR, nullptr, nullptr, &transpose_avx512, &epilogue_avx512, &glu_avx512, nullptr};
    u.dot = &dot_f32::dot_kernel<dot_f32::Ops, MR, NR>;
    return u;
}

template <int MR, int NR>
constexpr Ukernel avx512bf16_dot(std::string_view label) {
    Ukernel u{label, Isa::avx512bf16, MR, NR, nullptr, nullptr, &transpose_avx512, &epilogue_avx512, &glu_avx512,
              nullptr};
    u.dot_bf16 = &dot_bf16::dot_kernel<dot_bf16::Ops, MR, NR>;
    return u;
}

constexpr Ukernel kAvx512DotKernels[] = {
    avx512_dot<1, 8>("avx512dot_1x8"), avx512_dot<2, 8>("avx512dot_2x8"), avx512_dot<4, 6>("avx512dot_4x6"),
};

constexpr Ukernel kAvx512Bf16DotKernels[] = {
    avx512bf16_dot<1, 8>("avx512bf16dot_1x8"), avx512bf16_dot<2, 8>("avx512bf16dot_2x8"),
    avx512bf16_dot<4, 6>("avx512bf16dot_4x6"),
};

}  // namespace

std::span<const Ukernel> avx512_ukernels() { return kAvx512Kernels; }
std::span<const Ukernel> avx512_dot_ukernels() { return kAvx512DotKernels; }
std::span<const Ukernel> avx512bf16_dot_ukernels() { return kAvx512Bf16DotKernels; }
std::span<const Ukernel> avx512bf16_ukernels() { return kAvx512Bf16Kernels; }
std::span<const Ukernel> amx_ukernels() { return kAmxKernels; }

}  // namespace tune::cpu_gemm
