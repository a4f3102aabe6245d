// Device helpers shared by libtune's CUDA GEMM kernels: PTX wrappers (cp.async, ldmatrix,
// mma.sync), block rasterisation and the fused epilogue. Compiled by NVRTC (C++17).
#pragma once

#include "gemm_params.h"

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

__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

// Block index -> (tile row, tile col), grouped by GROUP_M tile rows so that consecutive
// blocks share A rows and B columns in L2 (the "swizzle" knob). GROUP_M = 1: row-major order.
template <int GROUP_M>
__device__ __forceinline__ void tile_coords(int tiles_m, int tiles_n, int& tile_m, int& tile_n) {
    const int pid = blockIdx.x;
    const int per_group = GROUP_M * tiles_n;
    const int first_m = (pid / per_group) * GROUP_M;
    const int rows = min(tiles_m - first_m, GROUP_M);
    tile_m = first_m + (pid % per_group) % rows;
    tile_n = (pid % per_group) / rows;
}

// The fused epilogue, the same formula as the CPU templates and the reference:
// act(v + bias[col]) + residual[row][col]; gelu is the tanh approximation.
template <int EPI>
__device__ __forceinline__ float epilogue(float v, const GemmParams& p, long long batch, long long row, long long col) {
    if constexpr ((EPI & kEpiBias) != 0) v += p.bias[col];
    if constexpr ((EPI & kEpiGelu) != 0) {
        const float x = v;
        v = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    }
    if constexpr ((EPI & kEpiSilu) != 0) v = v / (1.0f + expf(-v));
    if constexpr ((EPI & kEpiResidual) != 0) v += p.residual[(batch * p.m + row) * p.n + col];
    return v;
}

// Stores one accumulator element: through the epilogue into C, or raw into this split's
// slice of the workspace (the reduction applies the epilogue once, after summing).
template <int EPI, bool SPLIT>
__device__ __forceinline__ void store_element(const GemmParams& p, long long batch, long long row, long long col,
                                              float v) {
    if (row >= p.m || col >= p.n) return;
    if constexpr (SPLIT) {
        p.workspace[((blockIdx.z * p.batch + batch) * p.m + row) * p.n + col] = v;
    } else {
        p.c[(batch * p.m + row) * p.n + col] = epilogue<EPI>(v, p, batch, row, col);
    }
}

// Sums the split-K partials and applies the epilogue: deterministic (no atomics).
template <int EPI>
__global__ void splitk_reduce(GemmParams p, int splits) {
    const long long total = p.batch * p.m * p.n;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        float v = 0.f;
        for (int s = 0; s < splits; ++s) v += p.workspace[s * total + i];
        const long long col = i % p.n, row = (i / p.n) % p.m, batch = i / (p.n * p.m);
        p.c[i] = epilogue<EPI>(v, p, batch, row, col);
    }
}

}  // namespace libtune
