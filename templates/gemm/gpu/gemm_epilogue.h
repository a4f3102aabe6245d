// Device code shared by the CUDA (NVRTC) and HIP (hiprtc) GEMM kernels: block rasterisation,
// the fused epilogue and the split-K reduction. Portable C++17, no inline assembly.
#pragma once

#include "gemm_params.h"

namespace libtune {

// Block index -> (tile row, tile col), grouped by GROUP_M tile rows so that consecutive
// blocks share A rows and B columns in L2 (the "group_m" knob). GROUP_M = 1: row-major order.
template <int GROUP_M>
__device__ __forceinline__ void tile_coords(int pid, int tiles_m, int tiles_n, int& tile_m, int& tile_n) {
    const int per_group = GROUP_M * tiles_n;
    const int first_m = (pid / per_group) * GROUP_M;
    const int rows = min(tiles_m - first_m, GROUP_M);
    tile_m = first_m + (pid % per_group) % rows;
    tile_n = (pid % per_group) / rows;
}
template <int GROUP_M>
__device__ __forceinline__ void tile_coords(int tiles_m, int tiles_n, int& tile_m, int& tile_n) {
    tile_coords<GROUP_M>((int)blockIdx.x, tiles_m, tiles_n, tile_m, tile_n);
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
