// Problem: what to compute (op, element type, dims) and its canonical shape key.
// A Problem never says how; that is a Config's job. The reference implementation reads only this.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>

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
    std::span<const std::string_view> labels = {};  // named values (index = value), e.g. act
    // Left out of the shape key when 0: a dim added after keys were stored keeps those keys.
    bool keyed_when_set = false;
};

// A dim's value as text (its label when it has labels) and back; the parser throws
// tune::Error naming the dim and listing the labels.
std::string dim_text(const DimSpec& spec, std::int64_t value);
std::int64_t parse_dim_value(const DimSpec& spec, std::string_view text);

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
    // Attention only: the factor on Q K^T; 0 = 1/sqrt(head_dim) (see attention_dims). Other
    // ops keep 0.
    double scale = 0;

    std::int64_t dim(std::string_view name) const;
    void set_dim(std::string_view name, std::int64_t value);

    friend bool operator==(const Problem&, const Problem&) = default;
};

// GEMM: C[m x n] = act(op(A)[m x k] * op(B)[k x n] + bias[n]) + residual[m x n], row-major,
// `batch` independent products. trans_a: A is stored k x m. trans_b: B is stored n x k
// (PyTorch Linear weights). Operands in order: A, B, bias (when bias=1), residual (when
// residual=1); output C. dtype bf16: A and B hold bf16, bias/residual/C are f32.
enum class Activation : std::uint8_t { none, gelu, silu };  // gelu: tanh approximation
Problem make_gemm(std::int64_t m, std::int64_t n, std::int64_t k, DType dtype = DType::f32,
                  bool trans_a = false, bool trans_b = false, std::int64_t batch = 1);

struct GemmDims {
    std::int64_t batch, m, n, k;
    bool trans_a, trans_b;
    bool bias = false;
    Activation act = Activation::none;
    bool residual = false;
    bool has_epilogue() const { return bias || act != Activation::none || residual; }
};
GemmDims gemm_dims(const Problem& p);  // throws unless p.op == gemm
Problem with_epilogue(Problem gemm, bool bias, Activation act, bool residual);

// SwiGLU (gated MLP): out[m x n] = silu(x W_gate^T) * (x W_up^T); x is m x k, both weights
// n x k (PyTorch layout). Operands: x, W_gate, W_up; output out. A problem of its own so a
// template can fuse both GEMMs and the activation.
Problem make_swiglu(std::int64_t m, std::int64_t n, std::int64_t k, DType dtype = DType::f32);

// Attention: O = softmax(scale * Q K^T + mask) V per (batch, query head); scale is the problem's
// (finite, > 0), 1/sqrt(head_dim) by default.
// Row-major operands: Q [batch, heads, q_len, head_dim], K and V [batch, kv_heads, kv_len,
// head_dim]; outputs O [batch, heads, q_len, head_dim] and LSE [batch, heads, q_len] (natural
// log of the softmax denominator of the scaled scores; -inf for a row that sees no key, whose
// O row is 0). Query head h reads kv head h / (heads / kv_heads) (GQA; MQA when kv_heads = 1).
// Query i sits at key position i + kv_len - q_len (the last query sees the last key).
// Dim `backward` = 1: the gradients instead; inputs Q, K, V, O, LSE (the forward's) and dO (O's
// layout), outputs dQ, dK, dV (the layouts of Q, K, V; dK and dV sum over the group's heads).
Problem make_attention(std::int64_t batch, std::int64_t heads, std::int64_t kv_heads, std::int64_t q_len,
                       std::int64_t kv_len, std::int64_t head_dim, bool causal = false, std::int64_t window = 0,
                       DType dtype = DType::f32);
// The same problem with an explicit softmax scale (throws unless finite and > 0).
Problem with_scale(Problem attention, double scale);

struct AttentionDims {
    std::int64_t batch, heads, kv_heads, q_len, kv_len, head_dim;
    bool causal;
    std::int64_t window;  // 0 = none
    bool backward = false;  // gradients instead of the forward (see make_attention)
    double scale = 0;       // the factor on Q K^T: the problem's, or 1/sqrt(head_dim)
    std::int64_t page = 0;  // paged KV cache: keys per page (0 = contiguous K and V)
    std::int64_t group() const { return heads / kv_heads; }
    std::int64_t pages_per_sequence() const { return page > 0 ? (kv_len + page - 1) / page : 0; }
    // A paged cache's pool holds batch * pages_per_sequence() pages [page][kv_heads][head_dim]
    // (a runtime's larger pool: see problem.cpp, the optional pool-size operand): its rows of
    // head_dim elements, and the row of (pool page, slot in it, kv head).
    std::int64_t page_pool_rows() const { return batch * pages_per_sequence() * page * kv_heads; }
    std::int64_t page_row(std::int64_t pool_page, std::int64_t slot, std::int64_t kv_head) const {
        return (pool_page * page + slot) * kv_heads + kv_head;
    }
    // The keys query i sees, [first, last): causal keeps keys at or before its position; a
    // window w keeps keys less than w positions before it (and, without causal, after it).
    // The one definition of the masks: every kernel and the reference call it.
    std::pair<std::int64_t, std::int64_t> key_range(std::int64_t i) const {
        const std::int64_t pos = i + kv_len - q_len;
        std::int64_t first = 0, last = kv_len;
        if (causal) last = std::min(last, pos + 1);
        if (window > 0) {
            first = std::max<std::int64_t>(0, pos - window + 1);
            if (!causal) last = std::min(last, pos + window);
        }
        first = std::min(first, kv_len);
        return {first, std::max(first, last)};
    }
};
AttentionDims attention_dims(const Problem& p);  // throws unless p.op == attention

// Scalar definitions shared by every template and the reference (double precision).
double gelu(double x);  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
double silu(double x);  // x / (1 + exp(-x))

// Throws tune::Error naming the dim when a size is < 1, a flag is not 0/1, or the
// operand sizes overflow 64-bit byte counts.
void validate(const Problem& p);

// Canonical text key, e.g. "gemm f32 batch=1 m=512 n=4096 k=4096 trans_a=0 trans_b=1 bias=0
// act=none residual=0", with " tol=<tolerance>" appended when the problem sets one (and, for
// attention, " scale=<scale>" before it when the problem sets a scale).
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
// The tolerance that admits computing f32 inputs in bf16 (f32 accumulation): what
// `--allow-bf16` sets. Rounding both inputs to bf16 costs up to 2 * 2^-8 relative per product.
double bf16_compute_tolerance(const Problem& p);
// An f32 problem whose stated tolerance admits that: templates may then offer bf16 compute.
bool admits_bf16_compute(const Problem& p);

// Distance between two shapes for nearest-match lookup: sum of |log2 ratio| over size dims;
// infinity when op, dtype or any exact dim differs.
double shape_distance(const Problem& a, const Problem& b);

void to_json(nlohmann::json& j, const Problem& p);
void from_json(const nlohmann::json& j, Problem& p);

}  // namespace tune
