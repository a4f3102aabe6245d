// The one generic micro-kernel body, instantiated per ISA by ukernels_<isa>.cpp inside a
// `#pragma GCC target` region and an anonymous namespace (so no ISA-specific code can be
// merged into other translation units). Include it after <immintrin.h> and <cstdint>, which
// must not themselves be inside the target region; this header includes nothing.
//
// Ops: a vector type V of Ops::lanes floats with load/store (unaligned), set1, fma, add, zero.

// Accumulators live in registers: MR * NV + NV vectors must fit the register file.
template <class Ops, int MR, int NV, bool kStridedRows>
void microkernel(std::int64_t k, const float* a, std::int64_t a_stride, const float* b,
                 std::int64_t b_stride, float* c, std::int64_t ldc, bool accumulate) {
    using V = typename Ops::V;
    constexpr int L = Ops::lanes;
    V acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] = Ops::zero();

#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) __builtin_prefetch(c + i * ldc, 1, 3);

    const std::int64_t a_step = kStridedRows ? 1 : a_stride;
#pragma GCC unroll 4
    for (std::int64_t p = 0; p < k; ++p) {
        V bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            bv[v] = Ops::load(b + v * L);
            // One prefetch per 64-byte line of the B row 8 steps ahead.
            if ((v * L) % 16 == 0) __builtin_prefetch(b + 8 * b_stride + v * L, 0, 3);
        }
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const V ai = Ops::set1(kStridedRows ? a[i * a_stride] : a[i]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[i][v] = Ops::fma(ai, bv[v], acc[i][v]);
        }
        a += a_step;
        b += b_stride;
    }

#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            float* cp = c + i * ldc + v * L;
            Ops::store(cp, accumulate ? Ops::add(acc[i][v], Ops::load(cp)) : acc[i][v]);
        }
    }
}
