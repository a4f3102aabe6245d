// bfloat16 storage type: the upper 16 bits of an IEEE float. Conversion rounds to nearest
// even, as AVX512-BF16 and AMX do; NaN stays NaN.
#pragma once

#include <cstdint>
#include <cstring>

namespace tune {

struct bf16 {
    std::uint16_t bits = 0;
};

inline bf16 to_bf16(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40)};  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return bf16{static_cast<std::uint16_t>(u >> 16)};
}

inline float to_float(bf16 h) {
    std::uint32_t u = static_cast<std::uint32_t>(h.bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

}  // namespace tune
