// GemmParams: the one kernel argument of every libtune CUDA GEMM kernel. Shared verbatim by
// the host code (C++20) and the kernels (NVRTC, C++17), so it uses plain types only.
#pragma once

namespace libtune {

// Epilogue bits (template argument EPI): C = act(A B + bias) + residual.
enum : int { kEpiBias = 1, kEpiGelu = 2, kEpiSilu = 4, kEpiResidual = 8 };

struct GemmParams {
    const void* a;          // [batch][m][k] (bf16/f16 bits, or f32 for tf32)
    const void* b;          // [batch][n][k] (trans_b) or [batch][k][n]
    float* c;               // [batch][m][n]
    const float* bias;      // [n]
    const float* residual;  // [batch][m][n]
    float* workspace;       // split-K partial sums: [split][batch][m][n]
    long long m, n, k, batch;
    long long k_per_split;  // a multiple of the block's k depth
};

// A CUtensorMap's bytes (the driver's opaque 128-byte, 64-aligned descriptor), passed by
// value as a __grid_constant__ kernel argument.
struct alignas(64) TmaDescriptor {
    unsigned long long words[16];
};

}  // namespace libtune
