// The one dot-form kernel body (UkernelDotFn, UkernelDotBf16Fn), included by ukernels_avx512.cpp
// once per operand type, each time inside its own `#pragma GCC target` region and namespace so
// that each instance is compiled for its ISA. Include it after <immintrin.h> and <cstdint>; this
// header includes nothing.
//
// Ops: E (operand element), V (one vector of operands), M (lane mask), step (elements per V),
// full (mask of a whole V), tail(left) (mask of the first `left` < step elements),
// load(m, p) (masked, zeros past the mask), dot(acc, a, b) (acc += products of a and b summed
// into 16 f32 lanes).

// MR x NR accumulators; per `step` depth elements MR loads of A, NR of B (one register at a
// time) and MR * NR dot steps. Rows past mr / nr repeat the last valid row (computed from
// cache, never stored), so edges need no padding. Each accumulator is reduced once at the end.
template <class Ops, int MR, int NR>
void dot_kernel(std::int64_t k, const typename Ops::E* a, std::int64_t lda, int mr, const typename Ops::E* b,
                std::int64_t ldb, int nr, float* c, std::int64_t ldc, bool accumulate) {
    static_assert(MR * NR + MR + 1 <= 32);
    using E = typename Ops::E;
    const E* ar[MR];
    const E* br[NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) ar[i] = a + (i < mr ? i : mr - 1) * lda;
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) br[j] = b + (j < nr ? j : nr - 1) * ldb;
    __m512 acc[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    auto step = [&](std::int64_t p, typename Ops::M m) {
        typename Ops::V av[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) av[i] = Ops::load(m, ar[i] + p);
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) {
            const typename Ops::V bv = Ops::load(m, br[j] + p);
#pragma GCC unroll 8
            for (int i = 0; i < MR; ++i) acc[i][j] = Ops::dot(acc[i][j], av[i], bv);
        }
    };
    std::int64_t p = 0;
#pragma GCC unroll 2
    for (; p + Ops::step <= k; p += Ops::step) step(p, Ops::full);
    if (p < k) step(p, Ops::tail(k - p));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
        for (int j = 0; j < NR; ++j) {
            if (i >= mr || j >= nr) continue;
            const float s = _mm512_reduce_add_ps(acc[i][j]);
            float& out = c[i * ldc + j];
            out = accumulate ? out + s : s;
        }
}
