#include "tune/workload.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "tune/bf16.hpp"
#include "tune/error.hpp"
#include "attention_reference.hpp"

namespace tune {
namespace {

constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();

std::vector<double> uniform(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<double> out(n);
    for (auto& x : out) x = dist(rng);
    return out;
}

// Stores `values` in an operand of `dtype`, and rounds `values` to what was stored, so the
// reference sees exactly the kernel's inputs.
AlignedBuffer store(std::vector<double>& values, DType dtype) {
    if (dtype == DType::bf16) {
        AlignedBuffer b(values.size() * sizeof(bf16));
        auto* out = b.as<bf16>();
        for (std::size_t i = 0; i < values.size(); ++i) {
            out[i] = to_bf16(static_cast<float>(values[i]));
            values[i] = to_float(out[i]);
        }
        return b;
    }
    if (dtype == DType::f16) {  // IEEE half, rounded to nearest even
        AlignedBuffer b(values.size() * sizeof(f16));
        auto* out = b.as<f16>();
        for (std::size_t i = 0; i < values.size(); ++i) {
            out[i] = to_f16(static_cast<float>(values[i]));
            values[i] = to_float(out[i]);
        }
        return b;
    }
    AlignedBuffer b(values.size() * sizeof(float));
    auto* out = b.as<float>();
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = static_cast<float>(values[i]);
    return b;
}

std::vector<double> absolute(const std::vector<double>& x) {
    std::vector<double> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::fabs(x[i]);
    return out;
}

// A paged cache's block table [batch][pages] (int32): the pool's pages in a seeded random order.
std::vector<std::int32_t> page_table(const AttentionDims& a, std::uint64_t seed) {
    std::vector<std::int32_t> table(static_cast<std::size_t>(a.batch * a.pages_per_sequence()));
    for (std::size_t i = 0; i < table.size(); ++i) table[i] = std::int32_t(i);
    std::mt19937_64 rng(seed);
    std::shuffle(table.begin(), table.end(), rng);
    return table;
}

// K or V ([batch][kv_heads][kv_len][head_dim], elements of `elem` bytes) in the page pool
// that `table` maps each sequence's keys to; keys past kv_len in a last page are zero.
AlignedBuffer paged(const AttentionDims& a, const AlignedBuffer& contiguous, std::size_t elem,
                    const std::vector<std::int32_t>& table) {
    const std::int64_t pages = a.pages_per_sequence();
    const std::size_t row = std::size_t(a.head_dim) * elem;  // one key of one head
    AlignedBuffer pool(std::size_t(a.page_pool_rows()) * row);
    std::memset(pool.data(), 0, pool.bytes());
    const std::byte* src = contiguous.data();
    std::byte* dst = pool.data();
    for (std::int64_t b = 0; b < a.batch; ++b)
        for (std::int64_t h = 0; h < a.kv_heads; ++h)
            for (std::int64_t j = 0; j < a.kv_len; ++j) {
                const std::size_t to = std::size_t(a.page_row(table[std::size_t(b * pages + j / a.page)], j % a.page, h)) * row;
                const std::size_t from = std::size_t((b * a.kv_heads + h) * a.kv_len + j) * row;
                std::memcpy(dst + to, src + from, row);
            }
    return pool;
}

// out[b] = op(A[b]) * op(B[b]) in double for each batch item.
void dgemm(const GemmDims& g, const double* a, const double* b, double* out) {
    const auto a_n = g.m * g.k, b_n = g.k * g.n, c_n = g.m * g.n;
    for (std::int64_t i = 0; i < g.batch; ++i)
        cblas_dgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
                    int(g.m), int(g.n), int(g.k), 1.0, a + i * a_n, int(g.trans_a ? g.m : g.k), b + i * b_n,
                    int(g.trans_b ? g.k : g.n), 0.0, out + i * c_n, int(g.n));
}

double apply(Activation act, double x) {
    switch (act) {
        case Activation::none: return x;
        case Activation::gelu: return gelu(x);
        case Activation::silu: return silu(x);
    }
    return x;
}

// Largest slope of the activations: errors before them grow by at most this factor.
constexpr double kActivationSlope = 1.2;

}  // namespace

Workload::Workload(const Problem& p, std::uint64_t seed) : problem_(p) {
    validate(p);
    require(p.dtype == DType::f32 || p.dtype == DType::bf16 || p.dtype == DType::f16,
            "workload: dtype " + std::string(to_string(p.dtype)) + " is not supported yet");
    if (p.op == OpKind::gemm) {
        auto g = gemm_dims(p);
        require(g.m <= kIntMax && g.n <= kIntMax && g.k <= kIntMax, "workload: gemm dims must fit in 32 bits");
        const auto c_n = std::size_t(g.batch * g.m * g.n);
        auto a = uniform(std::size_t(g.batch * g.m * g.k), seed * 4 + 1);
        auto b = uniform(std::size_t(g.batch * g.k * g.n), seed * 4 + 2);
        inputs_.push_back(store(a, p.dtype));
        inputs_.push_back(store(b, p.dtype));
        reference_.assign(c_n, 0.0);
        scale_.assign(c_n, 0.0);
        dgemm(g, a.data(), b.data(), reference_.data());
        dgemm(g, absolute(a).data(), absolute(b).data(), scale_.data());
        std::vector<double> bias, residual;
        if (g.bias) {
            bias = uniform(std::size_t(g.n), seed * 4 + 3);
            inputs_.push_back(store(bias, DType::f32));
        }
        if (g.residual) {
            residual = uniform(c_n, seed * 4 + 4);
            inputs_.push_back(store(residual, DType::f32));
        }
        // Epilogue in double; the scale grows with what each step adds.
        for (std::size_t i = 0; i < c_n; ++i) {
            const auto col = i % std::size_t(g.n);
            double y = reference_[i] + (g.bias ? bias[col] : 0.0);
            double s = scale_[i] + (g.bias ? std::fabs(bias[col]) : 0.0);
            if (g.act != Activation::none) {
                y = apply(g.act, y);
                s = kActivationSlope * s + std::fabs(y);
            }
            if (g.residual) {
                y += residual[i];
                s += std::fabs(residual[i]) + std::fabs(y);
            }
            reference_[i] = y;
            scale_[i] = s;
        }
        outputs_.emplace_back(c_n * sizeof(float));
    } else if (p.op == OpKind::swiglu) {
        const std::int64_t m = p.dims[0], n = p.dims[1], k = p.dims[2];
        require(m <= kIntMax && n <= kIntMax && k <= kIntMax, "workload: swiglu dims must fit in 32 bits");
        auto x = uniform(std::size_t(m * k), seed * 4 + 1);
        auto wg = uniform(std::size_t(n * k), seed * 4 + 2);
        auto wu = uniform(std::size_t(n * k), seed * 4 + 3);
        inputs_.push_back(store(x, p.dtype));
        inputs_.push_back(store(wg, p.dtype));
        inputs_.push_back(store(wu, p.dtype));
        GemmDims g{1, m, n, k, false, true};
        std::vector<double> gate(std::size_t(m * n)), up(gate.size()), sg(gate.size()), su(gate.size());
        auto xa = absolute(x);
        dgemm(g, x.data(), wg.data(), gate.data());
        dgemm(g, x.data(), wu.data(), up.data());
        dgemm(g, xa.data(), absolute(wg).data(), sg.data());
        dgemm(g, xa.data(), absolute(wu).data(), su.data());
        reference_.resize(gate.size());
        scale_.resize(gate.size());
        for (std::size_t i = 0; i < gate.size(); ++i) {
            double act = silu(gate[i]);
            reference_[i] = act * up[i];
            // d(out) = silu'(g) u dg + silu(g) du, plus the final product's rounding.
            scale_[i] = kActivationSlope * std::fabs(up[i]) * sg[i] + std::fabs(act) * su[i] + std::fabs(reference_[i]);
        }
        outputs_.emplace_back(gate.size() * sizeof(float));
    } else if (p.op == OpKind::attention) {
        const AttentionDims a = attention_dims(p);
        require(a.q_len <= kIntMax && a.kv_len <= kIntMax && a.head_dim <= kIntMax,
                "workload: attention lengths and head_dim must fit in 32 bits");
        auto q = uniform(std::size_t(a.batch * a.heads * a.q_len * a.head_dim), seed * 4 + 1);
        auto k = uniform(std::size_t(a.batch * a.kv_heads * a.kv_len * a.head_dim), seed * 4 + 2);
        auto v = uniform(k.size(), seed * 4 + 3);
        inputs_.push_back(store(q, p.dtype));
        if (a.page > 0) {  // the reference reads K and V contiguous, the kernel through pages
            const AlignedBuffer kc = store(k, p.dtype), vc = store(v, p.dtype);
            const std::vector<std::int32_t> table = page_table(a, seed * 4 + 4);
            inputs_.push_back(paged(a, kc, dtype_bytes(p.dtype), table));
            inputs_.push_back(paged(a, vc, dtype_bytes(p.dtype), table));
            AlignedBuffer t(table.size() * sizeof(std::int32_t));
            std::copy(table.begin(), table.end(), t.as<std::int32_t>());
            inputs_.push_back(std::move(t));
        } else {
            inputs_.push_back(store(k, p.dtype));
            inputs_.push_back(store(v, p.dtype));
        }
        detail::attention_reference(a, q, k, v, reference_, scale_);
        const auto rows = std::size_t(a.batch * a.heads * a.q_len);
        if (a.backward) {
            // The forward's outputs become inputs, as the kernel sees them (rounded to f32).
            std::vector<double> o(reference_.begin(), reference_.begin() + std::ptrdiff_t(q.size()));
            std::vector<double> lse(reference_.begin() + std::ptrdiff_t(q.size()), reference_.end());
            auto dout = uniform(q.size(), seed * 4 + 4);
            inputs_.push_back(store(o, DType::f32));
            inputs_.push_back(store(lse, DType::f32));
            inputs_.push_back(store(dout, DType::f32));
            detail::attention_backward_reference(a, q, k, v, o, lse, dout, reference_, scale_);
            outputs_.emplace_back(q.size() * sizeof(float));  // dQ
            outputs_.emplace_back(k.size() * sizeof(float));  // dK
            outputs_.emplace_back(v.size() * sizeof(float));  // dV
        } else {
            outputs_.emplace_back(rows * std::size_t(a.head_dim) * sizeof(float));  // O
            outputs_.emplace_back(rows * sizeof(float));                            // LSE
        }
    } else {
        throw Error("workload: op " + std::string(to_string(p.op)) + " is not supported yet");
    }
    for (auto& in : inputs_) input_ptrs_.push_back(in.data());
    for (auto& out : outputs_) output_ptrs_.push_back(out.data());
}

void Workload::poison_outputs() {
    for (auto& out : outputs_) {
        float* c = out.as<float>();
        std::fill(c, c + out.bytes() / sizeof(float), std::numeric_limits<float>::quiet_NaN());
    }
}

double Workload::error() const {
    // The reference holds every output's elements, in output order.
    std::vector<const float*> parts;
    std::vector<std::size_t> ends;
    for (const auto& out : outputs_) {
        parts.push_back(out.as<float>());
        ends.push_back((ends.empty() ? 0 : ends.back()) + out.bytes() / sizeof(float));
    }
    double worst = 0;
    std::size_t part = 0;
    for (std::size_t i = 0; i < reference_.size(); ++i) {
        while (i >= ends[part]) ++part;
        double v = parts[part][i - (part ? ends[part - 1] : 0)];
        if (v == reference_[i]) continue;  // also an exact infinity (attention LSE of an empty row)
        if (!std::isfinite(v)) return std::numeric_limits<double>::quiet_NaN();
        double err = std::fabs(v - reference_[i]) / std::max(scale_[i], std::numeric_limits<double>::min());
        worst = std::max(worst, err);
    }
    return worst;
}

std::size_t Workload::bytes() const {
    std::size_t n = 0;
    for (const auto& b : inputs_) n += b.bytes();
    for (const auto& b : outputs_) n += b.bytes();
    return n;
}

}  // namespace tune
