// Host twin of templates/gemm/cuda/wgmma_ops.cuh (gpu_emulator.hpp): wgmma.mma_async m64nNk16
// with f32 accumulators from the PTX ISA's layouts. The warpgroup's 128 threads deposit their
// accumulators (and register A fragments), one computes D += A B reading shared-memory operands
// through hopper.cuh's swizzle, and each takes its elements back. Accumulator layout: warp w
// holds rows 16 w + g and 16 w + g + 8, element 4 j + e at column 8 j + 2 t + e % 2 (g = lane /
// 4, t = lane % 4). Register A: per warp the m16n8k16 A fragment of its 16 rows.
#pragma once

#include "hopper.cuh"

namespace libtune {
namespace wgmma_emulation {

// Element (row, k) of a K-major tile of 128-byte rows (8-row groups 1024 bytes apart) whose
// descriptor points at `start` (the tile plus the k offset of this instruction); and element
// (k, n) of an MN-major one (rows along k, 64 elements of n per row).
template <int ELEM>
inline float k_major(std::uintptr_t start, int row, int k) {
    u16 v;
    std::memcpy(&v, reinterpret_cast<const void*>(gpu_emulator::swizzle128(start + std::uintptr_t((row % 8) * 128 + (row / 8) * 1024 + k * 2))), 2);
    return half_to_float<ELEM>(v);
}
template <int ELEM>
inline float mn_major(std::uintptr_t start, int k, int n) {
    u16 v;
    std::memcpy(&v, reinterpret_cast<const void*>(gpu_emulator::swizzle128(start + std::uintptr_t((k % 8) * 128 + (k / 8) * 1024 + n * 2))), 2);
    return half_to_float<ELEM>(v);
}

// a(row, k) and b(k, n) give the operands; every thread of the warpgroup calls this.
template <int N, class A, class B>
inline void run(float* d, const std::uint32_t* a_regs, A&& a, B&& b) {
    auto& self = gpu_emulator::self;
    const int tid = int(self.thread.x % 128);
    gpu_emulator::WarpGroup& wg = *self.group->warpgroups[self.thread.x / 128];
    std::memcpy(&wg.d[std::size_t(tid) * 128], d, sizeof(float) * N / 2);
    if (a_regs) std::memcpy(&wg.a[std::size_t(tid) * 4], a_regs, 16);
    wg.barrier.arrive_and_wait();
    if (tid == 0) {
        static thread_local float A_[64][16], D[64][256];
        for (int m = 0; m < 64; ++m)
            for (int k = 0; k < 16; ++k) A_[m][k] = a(wg, m, k);
        for (int th = 0; th < 128; ++th) {
            const int w = th / 32, g = th % 32 / 4, t = th % 4;
            for (int j = 0; j < N / 8; ++j)
                for (int e = 0; e < 4; ++e) D[16 * w + g + 8 * (e / 2)][8 * j + 2 * t + e % 2] = wg.d[std::size_t(th) * 128 + 4 * j + e];
        }
        for (int m = 0; m < 64; ++m)
            for (int n = 0; n < N; ++n) {
                float sum = D[m][n];
                for (int k = 0; k < 16; ++k) sum += A_[m][k] * b(k, n);
                D[m][n] = sum;
            }
        for (int th = 0; th < 128; ++th) {
            const int w = th / 32, g = th % 32 / 4, t = th % 4;
            for (int j = 0; j < N / 8; ++j)
                for (int e = 0; e < 4; ++e) wg.d[std::size_t(th) * 128 + 4 * j + e] = D[16 * w + g + 8 * (e / 2)][8 * j + 2 * t + e % 2];
        }
    }
    wg.barrier.arrive_and_wait();
    std::memcpy(d, &wg.d[std::size_t(tid) * 128], sizeof(float) * N / 2);
    wg.barrier.arrive_and_wait();
}

}  // namespace wgmma_emulation

// Both operands K-major in shared memory.
template <int N, int ELEM>
struct Wgmma {
    static void run(float (&d)[N / 2], unsigned long long desc_a, unsigned long long desc_b) {
        wgmma_emulation::run<N>(
            d, nullptr, [&](gpu_emulator::WarpGroup&, int m, int k) { return wgmma_emulation::k_major<ELEM>(desc_a, m, k); },
            [&](int k, int n) { return wgmma_emulation::k_major<ELEM>(desc_b, n, k); });
    }
};

// A from registers (lane l of warp w: rows 16 w + l / 4 (+ 8), columns 2 (l % 4) (+ 8), pairs),
// B MN-major in shared memory, one 64-element column block (N = 64).
template <int N, int ELEM>
struct WgmmaRegA {
    static_assert(N == 64, "the twin reads one MN-major column block");
    static void run(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long desc_b) {
        const std::uint32_t regs[4] = {a[0], a[1], a[2], a[3]};
        wgmma_emulation::run<N>(
            d, regs,
            [&](gpu_emulator::WarpGroup& wg, int m, int k) {
                const int w = m / 16, r = m % 16, g = r % 8, t = (k % 8) / 2;
                const int f = (r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);  // a0: (g, 2t), a1: (g + 8, 2t), a2: (g, 2t + 8), a3: (g + 8, 2t + 8)
                const std::uint32_t v = wg.a[std::size_t(32 * w + 4 * g + t) * 4 + std::size_t(f)];
                return half_to_float<ELEM>(u16(k % 2 ? v >> 16 : v & 0xffffu));
            },
            [&](int k, int n) { return wgmma_emulation::mn_major<ELEM>(desc_b, k, n); });
    }
};

}  // namespace libtune
