// 16-bit float storage types for operands: bfloat16 (the upper 16 bits of an IEEE float) and
// IEEE half (f16). Conversions round to nearest even, as AVX512-BF16, AMX and the GPUs' cvt
// instructions do; NaN stays NaN. Plain integer code, so every compiler builds it (clang 14
// has no _Float16 on x86-64).
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

struct f16 {
    std::uint16_t bits = 0;
};

inline f16 to_f16(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    const std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return f16{static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu))};  // NaN
    if (a >= 0x47800000u) {  // >= 65536 (or inf): inf; below it, rounding may still carry into inf
        return f16{static_cast<std::uint16_t>(sign | 0x7c00u)};
    }
    if (a >= 0x38800000u) {  // normal half (>= 2^-14): rebias the exponent, round 13 mantissa bits
        const std::uint32_t r = a - (112u << 23);  // exponent bias 127 -> 15
        const std::uint32_t rounded = r + 0xfffu + ((r >> 13) & 1u);
        return f16{static_cast<std::uint16_t>(sign | (rounded >> 13))};  // a carry past 0x7bff gives inf
    }
    if (a < 0x33000000u) return f16{sign};  // below half the smallest subnormal (2^-25): zero
    // Subnormal half: the value in units of 2^-24, rounded to nearest even.
    const std::uint32_t mantissa = (a & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(a >> 23);  // 14..24 for 2^-25 <= |f| < 2^-14
    const std::uint32_t q = mantissa >> shift, rest = mantissa & ((1u << shift) - 1u), half = 1u << (shift - 1);
    const std::uint32_t h = q + ((rest > half || (rest == half && (q & 1u))) ? 1u : 0u);
    return f16{static_cast<std::uint16_t>(sign | h)};
}

inline float to_float(f16 h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
    const std::uint32_t exponent = (h.bits >> 10) & 0x1fu, mantissa = h.bits & 0x3ffu;
    std::uint32_t u;
    if (exponent == 0x1f) {
        u = sign | 0x7f800000u | (mantissa << 13);  // inf, NaN
    } else if (exponent != 0) {
        u = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else {  // zero or subnormal: mantissa x 2^-24, exact in float
        float f = static_cast<float>(mantissa) * 0x1p-24f;
        return sign ? -f : f;
    }
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

}  // namespace tune
