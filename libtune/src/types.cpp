#include "tune/types.hpp"

#include <array>
#include <utility>

#include "tune/error.hpp"

namespace tune {
namespace {

template <class E, std::size_t N>
E parse_enum(const std::array<std::pair<std::string_view, E>, N>& table, std::string_view text,
             std::string_view what) {
    std::string options;
    for (const auto& [name, value] : table) {
        if (name == text) return value;
        options += options.empty() ? "" : ", ";
        options += name;
    }
    throw Error(std::string(what) + ": unknown value '" + std::string(text) + "' (expected one of: " +
                options + ")");
}

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::pair<std::string_view, E>, N>& table, E value) {
    for (const auto& [name, v] : table)
        if (v == value) return name;
    return "?";
}

constexpr std::array<std::pair<std::string_view, OpKind>, 3> kOps{{
    {"gemm", OpKind::gemm}, {"attention", OpKind::attention}, {"swiglu", OpKind::swiglu}}};
constexpr std::array<std::pair<std::string_view, DType>, 4> kDTypes{{
    {"f32", DType::f32}, {"bf16", DType::bf16}, {"f16", DType::f16}, {"f64", DType::f64}}};
constexpr std::array<std::pair<std::string_view, Backend>, 3> kBackends{{
    {"cpu", Backend::cpu}, {"cuda", Backend::cuda}, {"hip", Backend::hip}}};

}  // namespace

std::string_view to_string(OpKind op) { return name_of(kOps, op); }
std::string_view to_string(DType d) { return name_of(kDTypes, d); }
std::string_view to_string(Backend b) { return name_of(kBackends, b); }
OpKind parse_op(std::string_view t, std::string_view what) { return parse_enum(kOps, t, what); }
DType parse_dtype(std::string_view t, std::string_view what) { return parse_enum(kDTypes, t, what); }
Backend parse_backend(std::string_view t, std::string_view what) {
    return parse_enum(kBackends, t, what);
}

std::size_t dtype_bytes(DType d) {
    switch (d) {
        case DType::f32: return 4;
        case DType::bf16:
        case DType::f16: return 2;
        case DType::f64: return 8;
    }
    return 0;
}

double unit_roundoff(DType d) {
    switch (d) {
        case DType::f32: return 0x1p-24;
        case DType::bf16: return 0x1p-8;
        case DType::f16: return 0x1p-11;
        case DType::f64: return 0x1p-53;
    }
    return 0;
}

}  // namespace tune
