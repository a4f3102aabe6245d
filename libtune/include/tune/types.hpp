// Small vocabulary enums shared by every layer (op kind, element type, backend) and their names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tune {

enum class OpKind : std::uint8_t { gemm, attention, swiglu };
enum class DType : std::uint8_t { f32, bf16, f16, f64 };
enum class Backend : std::uint8_t { cpu, cuda, hip };

std::string_view to_string(OpKind op);
std::string_view to_string(DType dtype);
std::string_view to_string(Backend backend);

// Parsers throw tune::Error naming `what` (e.g. "--dtype") and the rejected text.
OpKind parse_op(std::string_view text, std::string_view what = "op");
DType parse_dtype(std::string_view text, std::string_view what = "dtype");
Backend parse_backend(std::string_view text, std::string_view what = "backend");

std::size_t dtype_bytes(DType dtype);
// Unit roundoff of the type (2^-24 for f32, 2^-8 for bf16, ...).
double unit_roundoff(DType dtype);

}  // namespace tune
