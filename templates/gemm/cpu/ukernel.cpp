// ISA-independent parts of the micro-kernel layer: the portable transposing pack and the
// run-time ISA check (the template offers only what the device has; this guards against a
// DeviceInfo describing another machine).
#include "ukernel.hpp"

#include <algorithm>

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

bool host_supports(Isa isa) {
    __builtin_cpu_init();
    switch (isa) {
        case Isa::avx2_fma: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::avx512f: return __builtin_cpu_supports("avx512f");
    }
    return false;
}

}  // namespace tune::cpu_gemm
