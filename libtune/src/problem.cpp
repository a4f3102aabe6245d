#include "tune/problem.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"

namespace tune {
namespace {

constexpr std::array<DimSpec, 6> kGemmDims{{
    {"batch", DimKind::size, 1, 0, "independent products"},
    {"m", DimKind::size, 0, 0, "rows of C (tokens)"},
    {"n", DimKind::size, 0, 0, "columns of C (output features)"},
    {"k", DimKind::size, 0, 0, "reduction length (input features)"},
    {"trans_a", DimKind::exact, 0, 1, "A stored k x m"},
    {"trans_b", DimKind::exact, 0, 1, "B stored n x k (PyTorch Linear weight)"},
}};

constexpr std::array<DimSpec, 8> kAttentionDims{{
    {"batch", DimKind::size, 1, 0, "sequences"},
    {"heads", DimKind::size, 0, 0, "query heads"},
    {"kv_heads", DimKind::size, 0, 0, "key/value heads (GQA/MQA when < heads)"},
    {"q_len", DimKind::size, 0, 0, "query length"},
    {"kv_len", DimKind::size, 0, 0, "key/value length"},
    {"head_dim", DimKind::size, 0, 0, "head dimension"},
    {"causal", DimKind::exact, 0, 1, "causal mask"},
    {"window", DimKind::exact, 0, std::numeric_limits<std::int64_t>::max(), "sliding window (0 = none)"},
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
    if (op == OpKind::gemm) return kGemmDims;
    return kAttentionDims;
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
    return {p.dims[0], p.dims[1], p.dims[2], p.dims[3], p.dims[4] != 0, p.dims[5] != 0};
}

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
    if (!(std::isfinite(p.tolerance) && p.tolerance >= 0))
        throw Error("problem: tolerance must be finite and >= 0, got " + std::to_string(p.tolerance));
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
    } else {
        std::int64_t b = p.dims[0], h = p.dims[1], kvh = p.dims[2], q = p.dims[3], kv = p.dims[4], d = p.dims[5];
        if (h % kvh != 0)
            throw Error("problem: heads (" + std::to_string(h) + ") must be a multiple of kv_heads (" +
                        std::to_string(kvh) + ")");
        check({b, h, q, d}, "Q (batch*heads*q_len*head_dim)");
        check({b, kvh, kv, d}, "K (batch*kv_heads*kv_len*head_dim)");
        check({b, h, q, kv, d, 4}, "the flop count (4*batch*heads*q_len*kv_len*head_dim)");
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
        key += ' ';
        key += specs[i].name;
        key += '=';
        key += std::to_string(p.dims[i]);
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
    if (words.size() != 2 + specs.size()) throw fail("expected " + std::to_string(specs.size()) + " dims");
    for (std::size_t i = 0; i < specs.size(); ++i) {
        auto w = words[2 + i];
        auto eq = w.find('=');
        if (eq == std::string_view::npos || w.substr(0, eq) != specs[i].name)
            throw fail("expected dim '" + std::string(specs[i].name) + "' at position " + std::to_string(i));
        std::int64_t v = 0;
        auto val = w.substr(eq + 1);
        auto [ptr, ec] = std::from_chars(val.data(), val.data() + val.size(), v);
        if (ec != std::errc() || ptr != val.data() + val.size())
            throw fail("dim '" + std::string(specs[i].name) + "' is not an integer: '" + std::string(val) + "'");
        p.dims[i] = v;
    }
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
    // QK^T and PV: 2 * 2 * b * h * q * kv * d (causal masks are not discounted here).
    return 4.0 * double(p.dims[0]) * double(p.dims[1]) * double(p.dims[3]) * double(p.dims[4]) * double(p.dims[5]);
}

double default_tolerance(const Problem& p) {
    // GEMM error metric: max |C - C_ref| / (|A| |B|) elementwise. Any summation order in the
    // problem's dtype stays within gamma_k = k u / (1 - k u) of the exact result, so a
    // candidate over that bound computed something else.
    double u = unit_roundoff(p.dtype);
    double k = p.op == OpKind::gemm ? double(p.dims[3]) : double(p.dims[5] + p.dims[4]);
    double ku = std::min(k * u, 0.5);
    return 2.0 * ku / (1.0 - ku);
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
    for (std::size_t i = 0; i < specs.size(); ++i) j[std::string(specs[i].name)] = p.dims[i];
    if (p.tolerance > 0) j["tolerance"] = p.tolerance;
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
        require(j[name].is_number_integer(), "problem JSON: dim '" + name + "' must be an integer");
        out.dims[i] = j[name].get<std::int64_t>();
    }
    for (const auto& [key, value] : j.items()) {
        bool known = key == "op" || key == "dtype" || key == "tolerance";
        for (const auto& s : specs) known = known || key == s.name;
        require(known, "problem JSON: unknown field '" + key + "'");
    }
    if (j.contains("tolerance")) {
        require(j["tolerance"].is_number(), "problem JSON: 'tolerance' must be a number");
        out.tolerance = j["tolerance"].get<double>();
    }
    validate(out);
    p = out;
}

}  // namespace tune
