// Micro-kernels of the blocked CPU GEMM: each computes one MR x NR tile of C from a k-long
// sliver of A and B. They are the only ISA-specific code; everything else is the driver.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "tune/problem.hpp"

namespace tune::cpu_gemm {

// x rounded up to a multiple of `to` (a tile or block edge).
inline std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

// C[MR x NR] (=|+=) A-sliver * B-sliver, f32.
//  a: element (i, p) at a[i + p * a_stride] (contiguous rows: packed panel, or trans_a in
//     place), or at a[i * a_stride + p] for the strided-rows variant (A read in place).
//  b: element (p, j) at b[p * b_stride + j], j contiguous (packed panel or B in place).
//  c: element (i, j) at c[i * ldc + j]; overwritten unless `accumulate`.
using UkernelFn = void (*)(std::int64_t k, const float* a, std::int64_t a_stride, const float* b,
                           std::int64_t b_stride, float* c, std::int64_t ldc, bool accumulate);

// Transposing copy for packing: dst[p * dst_stride + r] = src[r * src_stride + p] for
// r < rows (<= 16) and p < depth. Entries of dst for r >= rows are left untouched.
using TransposeFn = void (*)(const float* src, std::int64_t src_stride, int rows, std::int64_t depth,
                             float* dst, std::int64_t dst_stride);
inline constexpr int kMaxTransposeRows = 16;

// Portable TransposeFn (works on any x86-64).
void transpose_scalar(const float* src, std::int64_t src_stride, int rows, std::int64_t depth,
                      float* dst, std::int64_t dst_stride);

// Epilogue on a finished rows x cols region of C (element (i, j) at c[i * ldc + j]):
//   c = act(c + bias[j]) + residual[i * ld_residual + j]; bias / residual may be null.
using EpilogueFn = void (*)(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols,
                            const float* bias, Activation act, const float* residual,
                            std::int64_t ld_residual);

// SwiGLU combine on a finished region: out[i * ldo + j] = silu(gate[i * ldg + j]) * up[i * ldu + j]
// (out may be gate).
using GluFn = void (*)(float* out, std::int64_t ldo, const float* gate, std::int64_t ldg,
                       const float* up, std::int64_t ldu, std::int64_t rows, std::int64_t cols);

// Portable EpilogueFn / GluFn (float arithmetic, libm exp).
void epilogue_scalar(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols,
                     const float* bias, Activation act, const float* residual,
                     std::int64_t ld_residual);
void glu_scalar(float* out, std::int64_t ldo, const float* gate, std::int64_t ldg, const float* up,
                std::int64_t ldu, std::int64_t rows, std::int64_t cols);

// bf16 micro-kernel on VNNI-packed panels (k in pairs): C[MR x NR] (=|+=) A * B over
// `pairs` k-pairs, products of bf16 accumulated in f32.
//  a: pair q of row i at a[(q * MR + i) * 2 + {0, 1}] (one 32-bit element per row and pair).
//  b: pair q of column j at b[(q * NR + j) * 2 + {0, 1}].
//  c: element (i, j) at c[i * ldc + j]; overwritten unless `accumulate`.
// With Ukernel::a_rows, A's element (i, p) is at a[i * 2 * pairs + p] instead.
// Packed panels hold bf16 bit patterns (std::uint16_t); an odd k is padded with a zero pair half.
using UkernelBf16Fn = void (*)(std::int64_t pairs, const std::uint16_t* a, const std::uint16_t* b, float* c,
                               std::int64_t ldc, bool accumulate);

// Ends a call's use of a kernel's per-thread state (AMX: releases the tiles).
using ReleaseFn = void (*)();

// Dot-form kernel for A m x k and B n x k (trans_b), both read in place, nothing packed:
// C[i][j] (=|+=) sum_p a[i * lda + p] * b[j * ldb + p] for i < mr <= MR, j < nr <= NR. Each
// accumulator sums 16 (f32) or 32 (bf16 pairs) lanes of one (i, j) over the whole depth, then
// reduces once. At decode sizes the packed path pads A to MR rows and transposes every B
// panel before its single use; this form streams each weight row once, as stored.
using UkernelDotFn = void (*)(std::int64_t k, const float* a, std::int64_t lda, int mr, const float* b,
                              std::int64_t ldb, int nr, float* c, std::int64_t ldc, bool accumulate);
using UkernelDotBf16Fn = void (*)(std::int64_t k, const std::uint16_t* a, std::int64_t lda, int mr,
                                  const std::uint16_t* b, std::int64_t ldb, int nr, float* c, std::int64_t ldc,
                                  bool accumulate);

enum class Isa : std::uint8_t { avx2_fma, avx512f, avx512bf16, amx_bf16 };

struct Ukernel {
    std::string_view label;  // knob value, e.g. "avx512_14x32"
    Isa isa;
    int mr, nr;              // register tile
    UkernelFn contiguous;    // a[i + p * a_stride]
    UkernelFn strided_rows;  // a[i * a_stride + p]
    TransposeFn transpose;   // the ISA's transposing pack (A row-major, B trans_b)
    EpilogueFn epilogue;     // bias / activation / residual on a stored tile
    GluFn glu;               // silu(gate) * up on a stored tile
    UkernelBf16Fn bf16;      // non-null: a bf16 kernel on VNNI-packed panels (contiguous,
                             // strided_rows and transpose unused; A and B are always packed)
    int k_align = 1;         // bf16: packed depth is padded with zeros to a multiple of this
    bool a_rows = false;     // bf16: A panel row-major (element (i, p) at a[i * depth + p])
                             // instead of the VNNI pairs layout
    ReleaseFn release = nullptr;  // called by each thread at the end of a call (may be null)
    // Non-null: a dot-form kernel (mr x nr tile of A rows times B rows, trans_b and !trans_a
    // only; blocks and packing do not apply). dot takes f32 operands, dot_bf16 bf16 ones.
    UkernelDotFn dot = nullptr;
    UkernelDotBf16Fn dot_bf16 = nullptr;
    bool is_dot() const { return dot != nullptr || dot_bf16 != nullptr; }
};

// Instantiated kernels per ISA (defined in ukernels_<isa>.cpp). Calling one on a CPU without
// the ISA is undefined: choose with host_supports() / the device's CpuIsa.
std::span<const Ukernel> avx512_ukernels();
std::span<const Ukernel> avx2_ukernels();
std::span<const Ukernel> avx512bf16_ukernels();
std::span<const Ukernel> amx_ukernels();
std::span<const Ukernel> avx512_dot_ukernels();      // f32 operands
std::span<const Ukernel> avx512bf16_dot_ukernels();  // bf16 operands

// Largest tile of any kernel (bounds the driver's on-stack edge tile).
inline constexpr int kMaxTileElems = 32 * 32;  // largest MR x NR tile (AMX 32x32)

// Whether the CPU running this process can execute kernels of `isa`.
bool host_supports(Isa isa);

}  // namespace tune::cpu_gemm
