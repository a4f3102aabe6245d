// Problem: what to compute (op, element type, dims) and its canonical shape key.
// A Problem never says how; that is a Config's job. The reference implementation reads only this.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>

#include "tune/types.hpp"

namespace tune {

// How a dim takes part in shape matching: sizes (>= 1) may differ between a tuned and a
// looked-up shape (nearest match); exact dims (flags, windows) must be equal.
enum class DimKind : std::uint8_t { size, exact };

struct DimSpec {
    std::string_view name;
    DimKind kind;
    std::int64_t default_value;  // used when JSON/CLI omit it; 0 for sizes = required
    std::int64_t max_value;      // exact dims: legal range is [0, max_value]
    std::string_view help;
};

// The named dims of an op, in canonical order. The single table every parser, key and
// printer reads from.
std::span<const DimSpec> dim_specs(OpKind op);

inline constexpr std::size_t kMaxDims = 10;

struct Problem {
    OpKind op = OpKind::gemm;
    DType dtype = DType::f32;
    std::array<std::int64_t, kMaxDims> dims{};  // meaning given by dim_specs(op)
    // Largest error the caller accepts, as defined by the op's error metric; 0 = what the
    // dtype implies (see default_tolerance).
    double tolerance = 0;

    std::int64_t dim(std::string_view name) const;
    void set_dim(std::string_view name, std::int64_t value);

    friend bool operator==(const Problem&, const Problem&) = default;
};

// GEMM: C[m x n] = op(A)[m x k] * op(B)[k x n], row-major, `batch` independent products.
// trans_a: A is stored k x m. trans_b: B is stored n x k (PyTorch Linear weights).
Problem make_gemm(std::int64_t m, std::int64_t n, std::int64_t k, DType dtype = DType::f32,
                  bool trans_a = false, bool trans_b = false, std::int64_t batch = 1);

struct GemmDims {
    std::int64_t batch, m, n, k;
    bool trans_a, trans_b;
};
GemmDims gemm_dims(const Problem& p);  // throws unless p.op == gemm

// Throws tune::Error naming the dim when a size is < 1, a flag is not 0/1, or the
// operand sizes overflow 64-bit byte counts.
void validate(const Problem& p);

// Canonical text key, e.g. "gemm f32 batch=1 m=512 n=4096 k=4096 trans_a=0 trans_b=1".
// The one place a shape key is computed.
std::string shape_key(const Problem& p);
Problem parse_shape_key(std::string_view key);

// Fast hash over (op, dtype, dims) for in-memory indexes.
struct ProblemHash {
    std::size_t operator()(const Problem& p) const noexcept;
};

double flop_count(const Problem& p);
double default_tolerance(const Problem& p);
double effective_tolerance(const Problem& p);  // tolerance, or the default when 0

// Distance between two shapes for nearest-match lookup: sum of |log2 ratio| over size dims;
// infinity when op, dtype or any exact dim differs.
double shape_distance(const Problem& a, const Problem& b);

void to_json(nlohmann::json& j, const Problem& p);
void from_json(const nlohmann::json& j, Problem& p);

}  // namespace tune
