#include "tune/problem.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"
#include "tune/kernel.hpp"

namespace tune {
namespace {

constexpr std::array<std::string_view, 3> kActivations{"none", "gelu", "silu"};

constexpr std::array<DimSpec, 9> kGemmDims{{
    {"batch", DimKind::size, 1, 0, "independent products"},
    {"m", DimKind::size, 0, 0, "rows of C (tokens)"},
    {"n", DimKind::size, 0, 0, "columns of C (output features)"},
    {"k", DimKind::size, 0, 0, "reduction length (input features)"},
    {"trans_a", DimKind::exact, 0, 1, "A stored k x m"},
    {"trans_b", DimKind::exact, 0, 1, "B stored n x k (PyTorch Linear weight)"},
    {"bias", DimKind::exact, 0, 1, "add a bias vector of n"},
    {"act", DimKind::exact, 0, 2, "activation after the bias: none, gelu (tanh), silu", kActivations},
    {"residual", DimKind::exact, 0, 1, "add an m x n residual last"},
}};

constexpr std::array<DimSpec, 3> kSwigluDims{{
    {"m", DimKind::size, 0, 0, "rows (tokens)"},
    {"n", DimKind::size, 0, 0, "intermediate features (rows of each weight)"},
    {"k", DimKind::size, 0, 0, "hidden features (reduction length)"},
}};

// Paged KV cache (page > 0): K and V are pools of pages [pages][page][kv_heads][head_dim] and a
// block table [batch][ceil(kv_len / page)] of int32 page indices maps each sequence's keys. The
// pool holds batch * ceil(kv_len / page) pages, or, where the CPU templates are given a fifth
// input (a pointer to one int64), that many: a serving runtime's shared pool. Not part of the
// shape: where the pages lie does not change the work.
constexpr std::array<DimSpec, 10> kAttentionDims{{
    {"batch", DimKind::size, 1, 0, "sequences"},
    {"heads", DimKind::size, 0, 0, "query heads"},
    {"kv_heads", DimKind::size, 0, 0, "key/value heads (GQA/MQA when < heads)"},
    {"q_len", DimKind::size, 0, 0, "query length"},
    {"kv_len", DimKind::size, 0, 0, "key/value length"},
    {"head_dim", DimKind::size, 0, 0, "head dimension"},
    {"causal", DimKind::exact, 0, 1, "causal mask"},
    {"window", DimKind::exact, 0, std::numeric_limits<std::int64_t>::max(), "sliding window (0 = none)"},
    {"backward", DimKind::exact, 0, 1, "gradients dQ, dK, dV given dO (training), instead of the forward"},
    {"page", DimKind::exact, 0, 1 << 20, "paged KV cache: keys per page, K/V in pages through a block table (0 = contiguous)",
     {}, true},
}};

int dim_index(OpKind op, std::string_view name) {
    auto specs = dim_specs(op);
    for (std::size_t i = 0; i < specs.size(); ++i)
        if (specs[i].name == name) return static_cast<int>(i);
    return -1;
}

// Multiplies sizes, returning false on int64 overflow.
bool mul_ok(std::int64_t a, std::int64_t b, std::int64_t& out) {
    return !__builtin_mul_overflow(a, b, &out);
}

}  // namespace

std::span<const DimSpec> dim_specs(OpKind op) {
    switch (op) {
        case OpKind::gemm: return kGemmDims;
        case OpKind::attention: return kAttentionDims;
        case OpKind::swiglu: return kSwigluDims;
    }
    return {};
}

std::string dim_text(const DimSpec& spec, std::int64_t value) {
    if (!spec.labels.empty() && value >= 0 && value < static_cast<std::int64_t>(spec.labels.size()))
        return std::string(spec.labels[static_cast<std::size_t>(value)]);
    return std::to_string(value);
}

std::int64_t parse_dim_value(const DimSpec& spec, std::string_view text) {
    for (std::size_t i = 0; i < spec.labels.size(); ++i)
        if (spec.labels[i] == text) return static_cast<std::int64_t>(i);
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && ptr == text.data() + text.size() && text.size() > 0) return v;
    if (ec == std::errc::result_out_of_range)
        throw Error("dim '" + std::string(spec.name) + "': '" + std::string(text) + "' is out of the 64-bit range");
    std::string expected = "an integer";
    if (!spec.labels.empty()) {
        expected = "one of:";
        for (auto l : spec.labels) expected += " " + std::string(l);
    }
    throw Error("dim '" + std::string(spec.name) + "': '" + std::string(text) + "' is not " + expected);
}

std::int64_t Problem::dim(std::string_view name) const {
    int i = dim_index(op, name);
    require(i >= 0, "problem: " + std::string(to_string(op)) + " has no dim '" + std::string(name) + "'");
    return dims[static_cast<std::size_t>(i)];
}

void Problem::set_dim(std::string_view name, std::int64_t value) {
    int i = dim_index(op, name);
    require(i >= 0, "problem: " + std::string(to_string(op)) + " has no dim '" + std::string(name) + "'");
    dims[static_cast<std::size_t>(i)] = value;
}

Problem make_gemm(std::int64_t m, std::int64_t n, std::int64_t k, DType dtype, bool trans_a,
                  bool trans_b, std::int64_t batch) {
    Problem p;
    p.op = OpKind::gemm;
    p.dtype = dtype;
    p.dims = {batch, m, n, k, trans_a ? 1 : 0, trans_b ? 1 : 0};
    return p;
}

GemmDims gemm_dims(const Problem& p) {
    if (p.op != OpKind::gemm) throw Error("gemm_dims: problem is " + std::string(to_string(p.op)));
    return {p.dims[0], p.dims[1], p.dims[2], p.dims[3], p.dims[4] != 0, p.dims[5] != 0,
            p.dims[6] != 0, static_cast<Activation>(p.dims[7]), p.dims[8] != 0};
}

Problem with_epilogue(Problem gemm, bool bias, Activation act, bool residual) {
    gemm_dims(gemm);  // checks the op
    gemm.dims[6] = bias ? 1 : 0;
    gemm.dims[7] = static_cast<std::int64_t>(act);
    gemm.dims[8] = residual ? 1 : 0;
    return gemm;
}

Problem make_swiglu(std::int64_t m, std::int64_t n, std::int64_t k, DType dtype) {
    Problem p;
    p.op = OpKind::swiglu;
    p.dtype = dtype;
    p.dims = {m, n, k};
    return p;
}

Problem make_attention(std::int64_t batch, std::int64_t heads, std::int64_t kv_heads, std::int64_t q_len,
                       std::int64_t kv_len, std::int64_t head_dim, bool causal, std::int64_t window, DType dtype) {
    Problem p;
    p.op = OpKind::attention;
    p.dtype = dtype;
    p.dims = {batch, heads, kv_heads, q_len, kv_len, head_dim, causal ? 1 : 0, window};
    return p;
}

Problem with_scale(Problem attention, double scale) {
    if (attention.op != OpKind::attention)
        throw Error("problem: scale applies to attention only, not " + std::string(to_string(attention.op)));
    if (!(std::isfinite(scale) && scale > 0))
        throw Error("problem: attention scale must be finite and > 0, got " + std::to_string(scale));
    attention.scale = scale;
    return attention;
}

AttentionDims attention_dims(const Problem& p) {
    if (p.op != OpKind::attention) throw Error("attention_dims: problem is " + std::string(to_string(p.op)));
    // The one place the default scale is decided.
    const double scale = p.scale > 0 ? p.scale : 1.0 / std::sqrt(double(std::max<std::int64_t>(p.dims[5], 1)));
    return {p.dims[0], p.dims[1], p.dims[2], p.dims[3], p.dims[4], p.dims[5], p.dims[6] != 0, p.dims[7], p.dims[8] != 0,
            scale, p.dims[9]};
}

double gelu(double x) {
    constexpr double kSqrt2OverPi = 0.7978845608028654;
    return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

void validate(const Problem& p) {
    // On the dispatcher's unseen-shape path: messages are built only on failure.
    auto specs = dim_specs(p.op);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const auto& s = specs[i];
        std::int64_t v = p.dims[i];
        if (s.kind == DimKind::size && v < 1)
            throw Error("problem: dim '" + std::string(s.name) + "' must be >= 1, got " + std::to_string(v));
        if (s.kind == DimKind::exact && (v < 0 || v > s.max_value))
            throw Error("problem: dim '" + std::string(s.name) + "' must be in [0, " + std::to_string(s.max_value) +
                        "], got " + std::to_string(v));
    }
    for (std::size_t i = specs.size(); i < kMaxDims; ++i)
        if (p.dims[i] != 0) throw Error("problem: unused dim slot " + std::to_string(i) + " must be 0");
    // A relative error: past 1 it accepts any output (the C API and the CLI say the same).
    if (!(p.tolerance >= 0 && p.tolerance <= 1))
        throw Error("problem: tolerance must be in [0, 1] (a relative error), got " + std::to_string(p.tolerance));
    // 0 = the default scale; an explicit one must be usable as a float factor.
    if (!(std::isfinite(p.scale) && p.scale >= 0 && p.scale <= std::numeric_limits<float>::max()))
        throw Error("problem: attention scale must be finite and > 0, got " + std::to_string(p.scale));
    if (p.scale != 0 && p.op != OpKind::attention)
        throw Error("problem: scale applies to attention only, not " + std::string(to_string(p.op)));
    // Every operand's byte count must fit in 63 bits (and so in size_t and ptrdiff_t).
    const auto bytes = static_cast<std::int64_t>(dtype_bytes(p.dtype));
    auto check = [&](std::initializer_list<std::int64_t> factors, const char* what) {
        std::int64_t acc = bytes;
        for (auto f : factors)
            if (!mul_ok(acc, f, acc)) throw Error(std::string("problem: size of ") + what + " overflows 64 bits");
    };
    if (p.op == OpKind::gemm) {
        auto g = gemm_dims(p);
        check({g.batch, g.m, g.k}, "A (batch*m*k)");
        check({g.batch, g.k, g.n}, "B (batch*k*n)");
        check({g.batch, g.m, g.n}, "C (batch*m*n)");
        check({g.batch, g.m, g.n, g.k, 2}, "the flop count (2*batch*m*n*k)");
    } else if (p.op == OpKind::swiglu) {
        check({p.dims[0], p.dims[2]}, "x (m*k)");
        check({p.dims[1], p.dims[2], 2}, "the weights (2*n*k)");
        check({p.dims[0], p.dims[1], p.dims[2], 4}, "the flop count (4*m*n*k)");
    } else {
        std::int64_t b = p.dims[0], h = p.dims[1], kvh = p.dims[2], q = p.dims[3], kv = p.dims[4], d = p.dims[5];
        if (h % kvh != 0)
            throw Error("problem: heads (" + std::to_string(h) + ") must be a multiple of kv_heads (" +
                        std::to_string(kvh) + ")");
        check({b, h, q, d}, "Q (batch*heads*q_len*head_dim)");
        check({b, kvh, kv, d}, "K (batch*kv_heads*kv_len*head_dim)");
        check({b, h, q, kv, d, 4}, "the flop count (4*batch*heads*q_len*kv_len*head_dim)");
        if (const std::int64_t page = p.dims[9]; page > 0) {
            if (p.dims[8] != 0) throw Error("problem: a paged KV cache (page > 0) is for the forward only, not backward");
            const std::int64_t pages = (kv + page - 1) / page;  // per sequence
            check({b, pages, page, kvh, d}, "the K/V page pool (batch*pages*page*kv_heads*head_dim)");
            if (b * pages > std::numeric_limits<std::int32_t>::max())
                throw Error("problem: the page pool's indices (batch*pages) must fit the int32 block table");
        }
    }
}

std::string shape_key(const Problem& p) {
    std::string key;
    key.reserve(96);
    key += to_string(p.op);
    key += ' ';
    key += to_string(p.dtype);
    auto specs = dim_specs(p.op);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        if (specs[i].keyed_when_set && p.dims[i] == 0) continue;
        key += ' ';
        key += specs[i].name;
        key += '=';
        key += dim_text(specs[i], p.dims[i]);
    }
    if (p.scale > 0) {
        // Shortest text that reads back as the same double: keys round-trip exactly.
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, p.scale);
        key += " scale=";
        key.append(buf, end);
    }
    if (p.tolerance > 0) {
        // The accuracy budget is part of what to compute: a looser one admits other configs.
        char buf[40];
        std::snprintf(buf, sizeof buf, " tol=%.9g", p.tolerance);
        key += buf;
    }
    return key;
}

Problem parse_shape_key(std::string_view key) {
    auto fail = [&](const std::string& why) -> Error {
        return Error("shape key '" + std::string(key) + "': " + why);
    };
    std::vector<std::string_view> words;
    for (std::size_t pos = 0; pos < key.size();) {
        auto end = key.find(' ', pos);
        if (end == std::string_view::npos) end = key.size();
        if (end > pos) words.push_back(key.substr(pos, end - pos));
        pos = end + 1;
    }
    if (words.size() < 2) throw fail("expected '<op> <dtype> name=value ...'");
    Problem p;
    p.op = parse_op(words[0], "shape key op");
    p.dtype = parse_dtype(words[1], "shape key dtype");
    auto specs = dim_specs(p.op);
    // Optional trailing fields, in key order: scale= (attention), then tol=.
    auto trailing = [&](std::string_view name, double& out) {
        if (words.size() <= 2 || !words.back().starts_with(name)) return;
        std::string text(words.back().substr(name.size()));
        char* end = nullptr;
        out = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(out) || out <= 0)
            throw fail("'" + std::string(name.substr(0, name.size() - 1)) + "' must be a positive number, got '" + text + "'");
        words.pop_back();
    };
    trailing("tol=", p.tolerance);
    if (p.op == OpKind::attention) trailing("scale=", p.scale);
    std::size_t next = 2;  // the next word to read; a dim keyed only when set may be absent (0)
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const std::string_view w = next < words.size() ? words[next] : std::string_view();
        auto eq = w.find('=');
        if (eq == std::string_view::npos || w.substr(0, eq) != specs[i].name) {
            if (specs[i].keyed_when_set) continue;
            throw fail("expected dim '" + std::string(specs[i].name) + "' at position " + std::to_string(i));
        }
        try {
            p.dims[i] = parse_dim_value(specs[i], w.substr(eq + 1));
        } catch (const Error& e) {
            throw fail(e.what());
        }
        if (specs[i].keyed_when_set && p.dims[i] == 0) throw fail("'" + std::string(specs[i].name) + "=0' is written by leaving it out");
        ++next;
    }
    if (next != words.size()) throw fail("expected " + std::to_string(specs.size()) + " dims, then scale= and tol=");
    validate(p);
    return p;
}

std::size_t ProblemHash::operator()(const Problem& p) const noexcept {
    // FNV-1a over the raw fields; dims are small so this is a handful of multiplies.
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&](std::uint64_t v) {
        h ^= v;
        h *= 1099511628211ull;
    };
    mix(static_cast<std::uint64_t>(p.op) << 8 | static_cast<std::uint64_t>(p.dtype));
    for (auto d : p.dims) mix(static_cast<std::uint64_t>(d));
    return static_cast<std::size_t>(h ^ (h >> 29));
}

double flop_count(const Problem& p) {
    if (p.op == OpKind::gemm) {
        auto g = gemm_dims(p);
        return 2.0 * double(g.batch) * double(g.m) * double(g.n) * double(g.k);
    }
    if (p.op == OpKind::swiglu) return 4.0 * double(p.dims[0]) * double(p.dims[1]) * double(p.dims[2]);
    // QK^T and PV: 2 * 2 * head_dim per (query, visible key) pair; masked pairs are not work.
    // Backward: Q K^T again, dO V^T, dS K, dS^T Q and P^T dO: 5 * 2 * head_dim per pair.
    const AttentionDims a = attention_dims(p);
    double pairs = 0;
    for (std::int64_t i = 0; i < a.q_len; ++i) {
        auto [first, last] = a.key_range(i);
        pairs += double(last - first);
    }
    return (a.backward ? 10.0 : 4.0) * double(a.batch) * double(a.heads) * double(a.head_dim) * pairs;
}

double default_tolerance(const Problem& p) {
    // GEMM error metric: max |C - C_ref| / (|A| |B|) elementwise. Any summation order in the
    // problem's dtype stays within gamma_k = k u / (1 - k u) of the exact result, so a
    // (attention: k = head_dim + kv_len, plus q_len * group for the gradients' sums)
    // candidate over that bound computed something else.
    // bf16 inputs multiply exactly in f32, so they too accumulate with f32 roundoff. A few
    // extra roundings cover the epilogue (bias, activation, residual).
    double u = unit_roundoff(p.dtype == DType::bf16 ? DType::f32 : p.dtype);
    double k = p.op == OpKind::gemm     ? double(p.dims[3])
               : p.op == OpKind::swiglu ? double(p.dims[2])
                                        : double(p.dims[5] + p.dims[4] + (p.dims[8] ? p.dims[3] * (p.dims[1] / p.dims[2]) : 0));
    double ku = std::min((k + 8) * u, 0.5);
    return 2.0 * ku / (1.0 - ku);
}

double bf16_compute_tolerance(const Problem& p) {
    Problem f32 = p;
    f32.dtype = DType::f32;
    return 2.0 * unit_roundoff(DType::bf16) * 1.01 + default_tolerance(f32);
}

bool admits_bf16_compute(const Problem& p) {
    return p.dtype == DType::f32 && p.tolerance > 0 && p.tolerance >= bf16_compute_tolerance(p);
}

double effective_tolerance(const Problem& p) {
    return p.tolerance > 0 ? p.tolerance : default_tolerance(p);
}

double shape_distance(const Problem& a, const Problem& b) {
    if (a.op != b.op || a.dtype != b.dtype) return std::numeric_limits<double>::infinity();
    auto specs = dim_specs(a.op);
    double d = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        if (specs[i].kind == DimKind::exact) {
            if (a.dims[i] != b.dims[i]) return std::numeric_limits<double>::infinity();
        } else {
            d += std::abs(std::log2(double(a.dims[i])) - std::log2(double(b.dims[i])));
        }
    }
    return d;
}

void to_json(nlohmann::json& j, const Problem& p) {
    j = nlohmann::json::object();
    j["op"] = to_string(p.op);
    j["dtype"] = to_string(p.dtype);
    auto specs = dim_specs(p.op);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        if (specs[i].labels.empty())
            j[std::string(specs[i].name)] = p.dims[i];
        else
            j[std::string(specs[i].name)] = dim_text(specs[i], p.dims[i]);
    }
    if (p.tolerance > 0) j["tolerance"] = p.tolerance;
    if (p.scale > 0) j["scale"] = p.scale;
}

void from_json(const nlohmann::json& j, Problem& p) {
    require(j.is_object(), "problem JSON: expected an object");
    auto str = [&](const char* key) {
        require(j.contains(key) && j[key].is_string(), std::string("problem JSON: '") + key + "' must be a string");
        return j[key].get<std::string>();
    };
    Problem out;
    out.op = parse_op(str("op"), "problem JSON 'op'");
    out.dtype = parse_dtype(str("dtype"), "problem JSON 'dtype'");
    auto specs = dim_specs(out.op);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        std::string name(specs[i].name);
        if (!j.contains(name)) {
            out.dims[i] = specs[i].default_value;
            require(specs[i].kind == DimKind::exact || specs[i].default_value > 0,
                    "problem JSON: missing dim '" + name + "'");
            continue;
        }
        if (!specs[i].labels.empty() && j[name].is_string()) {
            out.dims[i] = parse_dim_value(specs[i], j[name].get<std::string>());
            continue;
        }
        require(j[name].is_number_integer(), "problem JSON: dim '" + name + "' must be an integer");
        out.dims[i] = j[name].get<std::int64_t>();
    }
    for (const auto& [key, value] : j.items()) {
        bool known = key == "op" || key == "dtype" || key == "tolerance" || (key == "scale" && out.op == OpKind::attention);
        for (const auto& s : specs) known = known || key == s.name;
        require(known, "problem JSON: unknown field '" + key + "'");
    }
    if (j.contains("tolerance")) {
        require(j["tolerance"].is_number(), "problem JSON: 'tolerance' must be a number");
        out.tolerance = j["tolerance"].get<double>();
    }
    if (j.contains("scale")) {
        require(j["scale"].is_number(), "problem JSON: 'scale' must be a number");
        out.scale = j["scale"].get<double>();
        require(out.scale > 0, "problem JSON: 'scale' must be finite and > 0");
    }
    validate(out);
    p = out;
}

std::string overlapping_operands(const Problem& p, const OpArgs& args) {
    // On every Dispatcher::run: plain arithmetic on the dims, a string only for an overlap.
    // Each operand's bytes, inputs then outputs, as the kernels of the op read and write them.
    struct Operand {
        const char* name;
        std::size_t bytes;
    };
    Operand in[6], out[3];
    std::size_t inputs = 0, outputs = 0;
    const std::size_t elt = dtype_bytes(p.dtype), f32 = sizeof(float);
    if (p.op == OpKind::gemm) {
        const GemmDims d = gemm_dims(p);
        const auto mn = std::size_t(d.batch * d.m * d.n);
        in[inputs++] = {"A", std::size_t(d.batch * d.m * d.k) * elt};
        in[inputs++] = {"B", std::size_t(d.batch * d.k * d.n) * elt};
        if (d.bias) in[inputs++] = {"bias", std::size_t(d.n) * f32};
        if (d.residual) in[inputs++] = {"residual", mn * f32};
        out[outputs++] = {"C", mn * f32};
    } else if (p.op == OpKind::swiglu) {
        const auto m = std::size_t(p.dims[0]), n = std::size_t(p.dims[1]), k = std::size_t(p.dims[2]);
        in[inputs++] = {"x", m * k * elt};
        in[inputs++] = {"w_gate", n * k * elt};
        in[inputs++] = {"w_up", n * k * elt};
        out[outputs++] = {"out", m * n * f32};
    } else {
        const AttentionDims a = attention_dims(p);
        const auto q = std::size_t(a.batch * a.heads * a.q_len * a.head_dim);
        std::size_t kv = std::size_t(a.batch * a.kv_heads * a.kv_len * a.head_dim);
        // K and V are page pools. A CPU caller may pass a larger pool's page count as a fifth
        // input; it is not read here (on a GPU that pointer would not be the host's), so a
        // larger pool is checked over the batch x pages per sequence pages it holds at least.
        if (a.page > 0) kv = std::size_t(a.batch * a.pages_per_sequence()) * std::size_t(a.page * a.kv_heads * a.head_dim);
        in[inputs++] = {"Q", q * elt};
        in[inputs++] = {"K", kv * elt};
        in[inputs++] = {"V", kv * elt};
        if (a.backward) {
            in[inputs++] = {"O", q * f32};
            in[inputs++] = {"LSE", std::size_t(a.batch * a.heads * a.q_len) * f32};
            in[inputs++] = {"dO", q * f32};
            out[outputs++] = {"dQ", q * f32};
            out[outputs++] = {"dK", kv * f32};
            out[outputs++] = {"dV", kv * f32};
        } else {
            if (a.page > 0) in[inputs++] = {"block table", std::size_t(a.batch * a.pages_per_sequence()) * sizeof(std::int32_t)};
            out[outputs++] = {"O", q * f32};
            out[outputs++] = {"LSE", std::size_t(a.batch * a.heads * a.q_len) * f32};
        }
    }
    auto overlap = [](const void* x, std::size_t xn, const void* y, std::size_t yn) {
        const auto x0 = reinterpret_cast<std::uintptr_t>(x), y0 = reinterpret_cast<std::uintptr_t>(y);
        return x && y && xn && yn && x0 < y0 + yn && y0 < x0 + xn;
    };
    for (std::size_t o = 0; o < outputs && o < args.outputs.size(); ++o) {
        for (std::size_t i = 0; i < inputs && i < args.inputs.size(); ++i)
            if (overlap(args.outputs[o], out[o].bytes, args.inputs[i], in[i].bytes))
                return std::string("output ") + out[o].name + " overlaps input " + in[i].name;
        for (std::size_t e = 0; e < o && e < args.outputs.size(); ++e)
            if (overlap(args.outputs[o], out[o].bytes, args.outputs[e], out[e].bytes))
                return std::string("output ") + out[o].name + " overlaps output " + out[e].name;
    }
    return {};
}

}  // namespace tune
