// Host twin of templates/gemm/cuda/common.cuh for kernel unit tests (gpu_emulator.hpp): the same
// helpers written from the PTX ISA's definitions instead of inline PTX. ldmatrix and mma.sync gather the warp's fragments
// through the emulator's per-warp exchange and hand each lane its elements in the documented
// fragment layouts (m8n8.x4(.trans).b16; m16n8k16 row.col, f32 accumulate).
#pragma once

#include <cstring>

#include "gemm_epilogue.h"  // as the real common.cuh: rasterisation, the GEMM epilogue
#include "gpu_emulator.hpp"
#include "tune/bf16.hpp"

namespace libtune {

typedef unsigned short u16;

enum : int { kBf16 = 0, kF16 = 1, kTf32 = 2 };

// cp.async: copies either land at once or, with CopyTiming::at_wait, only when a
// cp.async.wait_group retires their commit group: the earliest and the latest moment the
// hardware may complete them, so a read before its wait or a miscounted group shows.
inline void cp_async16(void* smem, const void* gmem, bool valid) {
    gpu_emulator::AsyncCopy copy{smem, gmem, valid};
    if (gpu_emulator::copy_timing == gpu_emulator::CopyTiming::immediate) copy.run();
    else gpu_emulator::copies.open.push_back(copy);
}
inline void cp_async_commit() {
    auto& c = gpu_emulator::copies;
    c.committed.push_back(std::move(c.open));
    c.open.clear();
}
template <int N>
inline void cp_async_wait() {  // all but the newest N committed groups complete
    auto& c = gpu_emulator::copies;
    while (c.committed.size() > std::size_t(N)) {
        for (auto& copy : c.committed.front()) copy.run();
        c.committed.pop_front();
    }
}

// x4: lanes 8i .. 8i + 7 give the rows of matrix i; lane l receives, of each matrix, row l / 4,
// columns 2 (l % 4) and 2 (l % 4) + 1 (.trans: rows 2 (l % 4) and 2 (l % 4) + 1 of column l / 4).
inline void ldmatrix_x4_impl(unsigned (&r)[4], const void* row, bool trans) {
    gpu_emulator::Warp& w = *gpu_emulator::self.warp;
    const int lane = gpu_emulator::self.lane;
    w.pointers[std::size_t(lane)] = row;
    w.barrier.arrive_and_wait();
    for (int i = 0; i < 4; ++i) {
        auto at = [&](int m_row, int col) { return static_cast<const u16*>(w.pointers[std::size_t(8 * i + m_row)])[col]; };
        const int g = lane / 4, t = lane % 4;
        const u16 lo = trans ? at(2 * t, g) : at(g, 2 * t);
        const u16 hi = trans ? at(2 * t + 1, g) : at(g, 2 * t + 1);
        r[i] = unsigned(lo) | unsigned(hi) << 16;
    }
    w.barrier.arrive_and_wait();
}
inline void ldmatrix_x4(unsigned (&r)[4], const void* smem) { ldmatrix_x4_impl(r, smem, false); }
inline void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) { ldmatrix_x4_impl(r, smem, true); }

template <int ELEM>
inline float half_to_float(u16 bits) {
    if constexpr (ELEM == kBf16) return tune::to_float(tune::bf16{bits});
    else return float(__builtin_bit_cast(_Float16, bits));
}
template <int ELEM>
inline u16 float_to_half(float x) {  // round to nearest even, as cvt.rn
    if constexpr (ELEM == kBf16) return tune::to_bf16(x).bits;
    else return __builtin_bit_cast(u16, static_cast<_Float16>(x));
}

// D += A B, m16n8k16. Lane l (g = l / 4, t = l % 4) holds A rows g / g + 8 at columns 2t, 2t + 1
// (a0, a1) and 2t + 8, 2t + 9 (a2, a3); B column g at rows 2t, 2t + 1 (b0) and 2t + 8, 2t + 9
// (b1); D rows g (d0, d1) and g + 8 (d2, d3) at columns 2t, 2t + 1.
template <int ELEM>
inline void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    static_assert(ELEM != kTf32, "the emulation covers the 16-bit element types");
    const std::uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
    float A[16][16], B[16][8];
    gpu_emulator::exchange(mine, 6, [&](auto read) {
        for (int l = 0; l < 32; ++l) {
            const int g = l / 4, t = l % 4;
            const int rows[4] = {g, g + 8, g, g + 8}, cols[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
            for (int f = 0; f < 4; ++f) {
                const std::uint32_t v = read(l, f);
                A[rows[f]][cols[f]] = half_to_float<ELEM>(u16(v & 0xffffu));
                A[rows[f]][cols[f] + 1] = half_to_float<ELEM>(u16(v >> 16));
            }
            for (int f = 0; f < 2; ++f) {
                const std::uint32_t v = read(l, 4 + f);
                B[2 * t + 8 * f][g] = half_to_float<ELEM>(u16(v & 0xffffu));
                B[2 * t + 8 * f + 1][g] = half_to_float<ELEM>(u16(v >> 16));
            }
        }
    });
    const int g = gpu_emulator::self.lane / 4, t = gpu_emulator::self.lane % 4;
    for (int e = 0; e < 4; ++e) {
        const int row = g + 8 * (e / 2), col = 2 * t + e % 2;
        float sum = d[e];
        for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
        d[e] = sum;
    }
}

template <int ELEM>
inline unsigned pack_half2(float lo, float hi) {
    return unsigned(float_to_half<ELEM>(lo)) | unsigned(float_to_half<ELEM>(hi)) << 16;
}
template <int ELEM>
inline void unpack_half2(unsigned r, float& lo, float& hi) {
    lo = half_to_float<ELEM>(u16(r & 0xffffu));
    hi = half_to_float<ELEM>(u16(r >> 16));
}

}  // namespace libtune
