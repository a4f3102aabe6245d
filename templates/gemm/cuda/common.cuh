// Device helpers shared by libtune's CUDA kernels (GEMM, attention): PTX wrappers (cp.async,
// ldmatrix, mma.sync, f32 <-> 16-bit pair conversions); rasterisation, the GEMM epilogue and
// split-K reduction come from the portable gemm_epilogue.h (shared with HIP). Compiled by
// NVRTC (C++17); tests/emulation/common.cuh is its host twin for kernel unit tests.
#pragma once

#include "gemm_epilogue.h"

namespace libtune {

typedef unsigned short u16;  // bf16 / f16 bits: the kernels never convert inputs on the host

// std::conditional without <type_traits> (NVRTC programs include no standard headers).
template <bool C, class A, class B>
struct pick { typedef A type; };
template <class A, class B>
struct pick<false, A, B> { typedef B type; };

__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; a false `valid` zero-fills (src-size 0) so tails read as 0.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
}

// Element kinds (template argument ELEM).
enum : int { kBf16 = 0, kF16 = 1, kTf32 = 2 };

// D += A B for one m16n8 tile: k16 for bf16/f16, k8 for tf32 (operands already tf32-rounded).
template <int ELEM>
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    if constexpr (ELEM == kBf16) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
            "{%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else if constexpr (ELEM == kF16) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
            "{%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
            "{%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
}

// Two floats as one register of 16-bit elements (lo in the low half), as mma's A operand.
template <int ELEM>
__device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
    unsigned r;
    if constexpr (ELEM == kBf16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    else asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
// The two values pack_half2 stored, back in f32 (for the rounding residual of p_split).
template <int ELEM>
__device__ __forceinline__ void unpack_half2(unsigned r, float& lo, float& hi) {
    if constexpr (ELEM == kBf16) {
        lo = __uint_as_float(r << 16);
        hi = __uint_as_float(r & 0xffff0000u);
    } else {
        const unsigned short l = (unsigned short)(r & 0xffffu), h = (unsigned short)(r >> 16);
        asm("cvt.f32.f16 %0, %1;\n" : "=f"(lo) : "h"(l));
        asm("cvt.f32.f16 %0, %1;\n" : "=f"(hi) : "h"(h));
    }
}

__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

}  // namespace libtune
