// ISA-independent parts of the micro-kernel layer: the portable transposing pack and the
// run-time ISA check (the template offers only what the device has; this guards against a
// DeviceInfo describing another machine).
#include "ukernel.hpp"

#include <algorithm>
#include <cmath>

namespace tune::cpu_gemm {

void transpose_scalar(const float* src, std::int64_t src_stride, int rows, std::int64_t depth,
                      float* dst, std::int64_t dst_stride) {
    constexpr std::int64_t kBlock = 32;  // p per pass, so the rows written stay in L1
    for (std::int64_t pb = 0; pb < depth; pb += kBlock) {
        const std::int64_t pe = std::min(depth, pb + kBlock);
        for (int r = 0; r < rows; ++r) {
            const float* s = src + r * src_stride;
            for (std::int64_t p = pb; p < pe; ++p) dst[p * dst_stride + r] = s[p];
        }
    }
}

namespace {

// Both activations are x * sigmoid(t): silu t = x, gelu (tanh form) t = 2 sqrt(2/pi) (x + 0.044715 x^3).
float activate(Activation act, float x) {
    switch (act) {
        case Activation::none: return x;
        case Activation::silu: return x / (1.0f + std::exp(-x));
        case Activation::gelu: {
            const float t = 1.5957691216057308f * (x + 0.044715f * x * x * x);
            return x / (1.0f + std::exp(-t));
        }
    }
    return x;
}

}  // namespace

void epilogue_scalar(float* c, std::int64_t ldc, std::int64_t rows, std::int64_t cols,
                     const float* bias, Activation act, const float* residual,
                     std::int64_t ld_residual) {
    for (std::int64_t i = 0; i < rows; ++i) {
        float* row = c + i * ldc;
        for (std::int64_t j = 0; j < cols; ++j) {
            float y = activate(act, bias ? row[j] + bias[j] : row[j]);
            row[j] = residual ? y + residual[i * ld_residual + j] : y;
        }
    }
}

void glu_scalar(float* out, std::int64_t ldo, const float* gate, std::int64_t ldg, const float* up,
                std::int64_t ldu, std::int64_t rows, std::int64_t cols) {
    for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j)
            out[i * ldo + j] = activate(Activation::silu, gate[i * ldg + j]) * up[i * ldu + j];
}

bool host_supports(Isa isa) {
    __builtin_cpu_init();
    switch (isa) {
        case Isa::avx2_fma: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::avx512f: return __builtin_cpu_supports("avx512f");
        case Isa::avx512bf16:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512bf16");
        case Isa::amx_bf16: return __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16");
    }
    return false;
}

}  // namespace tune::cpu_gemm
