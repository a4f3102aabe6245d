// AVX2+FMA f32 micro-kernels: 8-lane ymm tiles, at most 15 of the 16 ymm registers live.
#include <immintrin.h>

#include <cstdint>

#include "ukernel.hpp"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace {

struct Avx2Ops {
    using V = __m256;
    static constexpr int lanes = 8;
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V zero() { return _mm256_setzero_ps(); }
};

#include "ukernel_impl.hpp"

}  // namespace
#pragma GCC pop_options

namespace tune::cpu_gemm {
namespace {

template <int MR, int NV>
constexpr Ukernel avx2(std::string_view label) {
    return {label, Isa::avx2_fma, MR, NV * 8, &microkernel<Avx2Ops, MR, NV, false>,
            &microkernel<Avx2Ops, MR, NV, true>, &transpose_scalar,
            &epilogue_scalar, &glu_scalar, nullptr};
}

constexpr Ukernel kAvx2Kernels[] = {avx2<6, 2>("avx2_6x16"), avx2<4, 3>("avx2_4x24")};

}  // namespace

std::span<const Ukernel> avx2_ukernels() { return kAvx2Kernels; }

}  // namespace tune::cpu_gemm
