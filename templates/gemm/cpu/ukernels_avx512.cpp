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

}  // namespace
#pragma GCC pop_options

namespace tune::cpu_gemm {
namespace {

template <int MR, int NV>
constexpr Ukernel avx512(std::string_view label) {
    return {label, Isa::avx512f, MR, NV * 16, &microkernel<Avx512Ops, MR, NV, false>,
            &microkernel<Avx512Ops, MR, NV, true>};
}

constexpr Ukernel kAvx512Kernels[] = {
    avx512<6, 2>("avx512_6x32"),   avx512<8, 2>("avx512_8x32"),  avx512<12, 2>("avx512_12x32"),
    avx512<14, 2>("avx512_14x32"), avx512<8, 3>("avx512_8x48"),  avx512<4, 4>("avx512_4x64"),
};

}  // namespace

std::span<const Ukernel> avx512_ukernels() { return kAvx512Kernels; }

}  // namespace tune::cpu_gemm
